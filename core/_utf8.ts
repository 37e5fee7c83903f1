/**
 * UTF-8 validation without building a string, for text messages delivered
 * as their bytes (`textAs: "bytes"`). Web APIs only: `TextDecoder` with
 * `fatal: true` would build the string this mode exists to avoid, and
 * `isUtf8` from `node:buffer` is Node's.
 *
 * Measured on 64 KiB payloads (µs per call, Node 22 / Deno 2 / Bun 1):
 * ASCII: a replacing decode plus a search for U+FFFD 12 / 5 / 3, a byte
 * loop 212 / 54 / 18, this file's word scan 17 / 6 / 7; mixed text (2- to
 * 4-byte sequences): the decode 272 / 54 / 46, the byte loop 68 / 31 / 29.
 * So ASCII runs are skipped four bytes at a time (eight words per step),
 * and the rest goes through the byte loop (RFC 3629 table: no overlong
 * form, no surrogate, nothing above U+10FFFF).
 *
 * @module
 */

import { describeValue } from "./_describe.ts";
import { UsageError } from "./errors.ts";

/**
 * The length of the ASCII run at the start of `bytes`.
 *
 * @param bytes The bytes.
 * @param from Where to start.
 * @returns The index of the first byte at or above 0x80, or `bytes.length`.
 */
function asciiEnd(bytes: Uint8Array, from: number): number {
  const n = bytes.length;
  let i = from;
  // Up to the first 4-byte boundary of the underlying buffer, byte by byte.
  const aligned = Math.min(n, i + ((4 - ((bytes.byteOffset + i) & 3)) & 3));
  for (; i < aligned; i++) if (bytes[i]! >= 0x80) return i;
  const words = (n - i) >>> 2;
  if (words > 0) {
    const u32 = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
    let w = 0;
    for (const last = words - 7; w < last; w += 8) {
      if ((u32[w]! | u32[w + 1]! | u32[w + 2]! | u32[w + 3]! | u32[w + 4]! | u32[w + 5]! | u32[w + 6]! | u32[w + 7]!) & 0x80808080) break;
    }
    for (; w < words; w++) if (u32[w]! & 0x80808080) break;
    i += w * 4;
  }
  for (; i < n; i++) if (bytes[i]! >= 0x80) return i;
  return n;
}

/**
 * A faster validator of the same rule that a runtime adapter may install
 * (`node:buffer`'s `isUtf8`, SIMD: 3 µs per 64 KiB of ASCII against this
 * file's 17 µs on Node). `core/` itself stays on web APIs: it only calls
 * what it was given.
 */
let native: ((bytes: Uint8Array) => boolean) | undefined;

/**
 * Installs a runtime's own UTF-8 validator, which must hold bytes to RFC
 * 3629 exactly as {@linkcode isUtf8} does (no overlong form, no surrogate,
 * nothing above U+10FFFF, no sequence cut at the end).
 *
 * @param validate The validator.
 */
export function useNativeUtf8(validate: (bytes: Uint8Array) => boolean): void {
  native = validate;
}

/**
 * Whether `bytes` is well-formed UTF-8 (RFC 3629), as a whole: a sequence
 * cut at the end makes it invalid.
 *
 * @param bytes The bytes.
 * @returns `true` when they are UTF-8.
 */
export function isUtf8(bytes: Uint8Array): boolean {
  return native !== undefined ? native(bytes) : scanUtf8(bytes);
}

/**
 * {@linkcode isUtf8} in JavaScript.
 *
 * @param bytes The bytes.
 * @returns `true` when they are UTF-8.
 */
export function scanUtf8(bytes: Uint8Array): boolean {
  const n = bytes.length;
  let i = asciiEnd(bytes, 0);
  while (i < n) {
    const c = bytes[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c < 0xc2) return false;
    if (c < 0xe0) {
      if (i + 1 >= n || (bytes[i + 1]! & 0xc0) !== 0x80) return false;
      i += 2;
      continue;
    }
    if (c < 0xf0) {
      if (i + 2 >= n) return false;
      const c1 = bytes[i + 1]!;
      if (c === 0xe0 ? c1 < 0xa0 || c1 > 0xbf : c === 0xed ? c1 < 0x80 || c1 > 0x9f : (c1 & 0xc0) !== 0x80) return false;
      if ((bytes[i + 2]! & 0xc0) !== 0x80) return false;
      i += 3;
      continue;
    }
    if (c > 0xf4 || i + 3 >= n) return false;
    const c1 = bytes[i + 1]!;
    if (c === 0xf0 ? c1 < 0x90 || c1 > 0xbf : c === 0xf4 ? c1 < 0x80 || c1 > 0x8f : (c1 & 0xc0) !== 0x80) return false;
    if ((bytes[i + 2]! & 0xc0) !== 0x80 || (bytes[i + 3]! & 0xc0) !== 0x80) return false;
    i += 4;
  }
  return true;
}

/**
 * Checks the `textAs` option.
 *
 * @param value The option.
 * @returns `true` for `"bytes"`.
 * @throws {UsageError} `ERR_INVALID_OPTION` when it is neither `"string"` nor `"bytes"` nor `undefined`.
 */
export function textAsBytes(value: unknown): boolean {
  if (value === undefined || value === "string") return false;
  if (value === "bytes") return true;
  throw new UsageError("ERR_INVALID_OPTION", `Invalid option: textAs must be "string" or "bytes", got ${describeValue(value)}`);
}
