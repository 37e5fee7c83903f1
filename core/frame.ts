/**
 * Frame opcodes and the frame encoder: server frames (unmasked) and client
 * frames (masked). The header and a large payload come back as separate
 * chunks so that a big message is never copied just to prepend two bytes.
 *
 * @module
 */

import { allocBytes } from "./_alloc.ts";
import { xorKey } from "./_mask.ts";
import { UsageError } from "./errors.ts";

/**
 * Frame opcodes of RFC 6455 §5.2.
 *
 * @example
 * ```ts
 * import { Opcode } from "@duplex/ws/core";
 *
 * console.log(Opcode.Text, Opcode.Ping); // 1 9
 * ```
 */
export const Opcode = {
  /** Continuation of a fragmented message. */
  Continuation: 0x0,
  /** A text frame: UTF-8 payload. */
  Text: 0x1,
  /** A binary frame. */
  Binary: 0x2,
  /** Close frame: optional code and reason. */
  Close: 0x8,
  /** Ping: the peer answers with a pong of the same payload. */
  Ping: 0x9,
  /** Pong: the answer to a ping, or a unidirectional heartbeat. */
  Pong: 0xa,
} as const;

/**
 * A frame opcode value.
 *
 * @example
 * ```ts
 * import type { Opcode } from "@duplex/ws/core";
 *
 * const op: Opcode = 0x1;
 * ```
 */
export type Opcode = typeof Opcode[keyof typeof Opcode];

/**
 * How to encode one frame.
 *
 * @example
 * ```ts
 * import type { FrameOptions } from "@duplex/ws/core";
 *
 * const last: FrameOptions = { fin: true };
 * ```
 */
export interface FrameOptions {
  /** Final fragment of the message. Default `true`. */
  fin?: boolean;
  /** Set RSV1 (the per-message compressed bit of permessage-deflate). Default `false`. */
  rsv1?: boolean;
  /** A 4-byte masking key: client frames are masked, server frames never. Default: unmasked. */
  mask?: Uint8Array;
}

/** Payloads up to this size are copied behind their header into one chunk. */
const COALESCE_BYTES = 16 * 1024;

const encoder = new TextEncoder();

/**
 * Writes a frame header into `target` ending right before `end`, and returns
 * where it starts. Used to put a header in front of a payload that already
 * sits in the same buffer.
 *
 * @example
 * ```ts ignore
 * const frame = new Uint8Array(4);
 * frame.set([0x48, 0x69], 2);
 * writeHeader(frame, 2, Opcode.Text, 2, true, false, undefined); // 81 02 48 69
 * ```
 */
export function writeHeader(
  target: Uint8Array,
  end: number,
  opcode: number,
  length: number,
  fin: boolean,
  rsv1: boolean,
  mask: Uint8Array | undefined,
): number {
  const maskBytes = mask === undefined ? 0 : 4;
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const start = end - 2 - lengthBytes - maskBytes;
  target[start] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  const maskBit = mask === undefined ? 0 : 0x80;
  if (lengthBytes === 0) {
    target[start + 1] = maskBit | length;
  } else if (lengthBytes === 2) {
    target[start + 1] = maskBit | 126;
    target[start + 2] = length >>> 8;
    target[start + 3] = length & 0xff;
  } else {
    target[start + 1] = maskBit | 127;
    const high = Math.floor(length / 0x1_0000_0000);
    const low = length >>> 0;
    target[start + 2] = 0;
    target[start + 3] = 0;
    target[start + 4] = (high >>> 8) & 0xff;
    target[start + 5] = high & 0xff;
    target[start + 6] = low >>> 24;
    target[start + 7] = (low >>> 16) & 0xff;
    target[start + 8] = (low >>> 8) & 0xff;
    target[start + 9] = low & 0xff;
  }
  if (mask !== undefined) target.set(mask.subarray(0, 4), end - 4);
  return start;
}

function checkMask(mask: Uint8Array | undefined): void {
  if (mask !== undefined && mask.length !== 4) {
    throw new UsageError("ERR_INVALID_MASK", `Masking key must be 4 bytes, got ${mask.length} bytes`);
  }
}

/**
 * XORs `data` in place with a 4-byte masking key, starting at key position
 * `offset` (masking and unmasking are the same operation).
 *
 * @param data Bytes to (un)mask in place.
 * @param mask The 4-byte masking key.
 * @param offset Position of `data[0]` in the frame payload, for a payload
 *   handled in pieces.
 *
 * @example
 * ```ts
 * import { applyMask } from "@duplex/ws/core";
 *
 * const data = new Uint8Array([1, 2, 3]);
 * applyMask(data, new Uint8Array([1, 2, 3, 4]));
 * console.log(data); // Uint8Array [0, 0, 0]
 * ```
 */
export function applyMask(data: Uint8Array, mask: Uint8Array, offset = 0): void {
  xorKey(data, ((mask[0]! << 24) | (mask[1]! << 16) | (mask[2]! << 8) | mask[3]!) >>> 0, offset);
}

/**
 * Encodes one frame. Small payloads come back in one chunk with their
 * header; a large unmasked payload comes back as `[header, payload]` without
 * being copied (do not modify it until it is written). A masked payload is
 * always copied: the caller's bytes are never changed.
 *
 * @param opcode The frame's opcode.
 * @param payload The frame's payload.
 * @param options `fin`, `rsv1` and the masking key.
 * @returns The chunks to write, in order.
 * @throws {UsageError} When the mask is not 4 bytes.
 *
 * @example
 * ```ts
 * import { encodeFrame, Opcode } from "@duplex/ws/core";
 *
 * const [frame] = encodeFrame(Opcode.Text, new TextEncoder().encode("Hi"));
 * console.log(frame); // Uint8Array [0x81, 0x02, 0x48, 0x69]
 * ```
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  options: FrameOptions = {},
): Uint8Array[] {
  const { fin = true, rsv1 = false, mask } = options;
  checkMask(mask);
  const length = payload.length;
  const headerBytes = 2 + (length < 126 ? 0 : length < 65536 ? 2 : 8) + (mask ? 4 : 0);
  if (mask !== undefined || length <= COALESCE_BYTES) {
    const out = allocBytes(headerBytes + length);
    writeHeader(out, headerBytes, opcode, length, fin, rsv1, mask);
    out.set(payload, headerBytes);
    if (mask !== undefined) applyMask(out.subarray(headerBytes), mask);
    return [out];
  }
  const header = allocBytes(headerBytes);
  writeHeader(header, headerBytes, opcode, length, fin, rsv1, undefined);
  return [header, payload];
}

/** Strings up to this many UTF-16 units are encoded through the shared scratch buffer. */
const SCRATCH_CHARS = 64 * 1024;
/** Grows on demand up to 14 + 3 × SCRATCH_CHARS bytes; only ever used synchronously. */
let scratch = new Uint8Array(0);
/** `scratch` past room for the longest header, made once per growth rather than once per frame. */
let scratchBody = scratch;
/**
 * Strings up to this many UTF-16 units (the longest payload of a 2-byte
 * header) are first tried as ASCII, written straight into their frame: short
 * ASCII text (chat, JSON) skips the scratch buffer, its view and its copy
 * (about 30 ns for 32 characters against 110 where measured).
 */
const ASCII_CHARS = 125;

/**
 * Writes `text` as one unmasked text frame with a short header at `at` in
 * `target` (room for `2 + text.length` bytes), when it is all ASCII (at
 * most {@linkcode ASCII_CHARS} units).
 *
 * @returns Whether it was: `false` at the first unit above 0x7f, with the
 *   bytes written so far left as they are.
 *
 * @example
 * ```ts ignore
 * const frame = new Uint8Array(4);
 * writeAsciiText(frame, 0, "hi", true, false); // true: 81 02 68 69
 * ```
 */
export function writeAsciiText(target: Uint8Array, at: number, text: string, fin: boolean, rsv1: boolean): boolean {
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) return false;
    target[at + 2 + i] = c;
  }
  writeHeader(target, at + 2, Opcode.Text, n, fin, rsv1, undefined);
  return true;
}

/**
 * Frames `text` as one unmasked text frame with a short header, when it is
 * all ASCII (at most {@linkcode ASCII_CHARS} units).
 *
 * @returns The frame, or `undefined` at the first unit above 0x7f.
 */
function asciiTextFrame(text: string, fin: boolean, rsv1: boolean): Uint8Array | undefined {
  const out = allocBytes(2 + text.length);
  return writeAsciiText(out, 0, text, fin, rsv1) ? out : undefined;
}

/**
 * Encodes a string as one text frame. A string of up to 64 Ki UTF-16 units
 * is UTF-8 encoded into a shared scratch buffer right behind room for its
 * header, and the frame is copied out once at its exact size (cheaper than
 * allocating the worst case or encoding then copying); a longer one comes
 * back as `[header, payload]`.
 *
 * @param text The message.
 * @param options `fin`, `rsv1` and the masking key.
 * @returns The chunks to write, in order.
 * @throws {UsageError} When the mask is not 4 bytes.
 *
 * @example
 * ```ts
 * import { encodeTextFrame } from "@duplex/ws/core";
 *
 * const [frame] = encodeTextFrame("Hi");
 * console.log(frame.length); // 4
 * ```
 */
export function encodeTextFrame(text: string, options: FrameOptions = {}): Uint8Array[] {
  if (text.length > SCRATCH_CHARS) {
    return encodeFrame(Opcode.Text, encoder.encode(text), options);
  }
  const { fin = true, rsv1 = false, mask } = options;
  checkMask(mask);
  if (mask === undefined && text.length <= ASCII_CHARS) {
    const frame = asciiTextFrame(text, fin, rsv1);
    if (frame !== undefined) return [frame];
  }
  // Room for the longest header (14 bytes) in front of the worst-case UTF-8 size.
  const need = 14 + text.length * 3;
  if (scratch.length < need) {
    scratch = new Uint8Array(Math.max(need, Math.min(2 * scratch.length, 14 + 3 * SCRATCH_CHARS), 1024));
    scratchBody = scratch.subarray(14);
  }
  const { written } = encoder.encodeInto(text, scratchBody);
  const start = writeHeader(scratch, 14, Opcode.Text, written, fin, rsv1, mask);
  if (mask !== undefined) applyMask(scratch.subarray(14, 14 + written), mask);
  const out = allocBytes(14 + written - start);
  out.set(scratch.subarray(start, 14 + written));
  return [out];
}
