/**
 * XOR masking with the key held as one 32-bit number (the first key byte in
 * the top bits), so a connection keeps four bytes of key without an
 * ArrayBuffer of its own.
 *
 * @module
 */

/** Whether this machine stores the low byte of a word first. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * From this many bytes on, the bulk is XORed 16 bytes at a time by a tiny
 * WebAssembly function (SIMD), or else 4 at a time through a `Uint32Array`
 * view. Either costs about as much to set up as XORing 100 bytes one by one,
 * so small frames keep the byte loop. Measured per 64 KiB on this project's
 * machine: WebAssembly, copies in and out included, 2.3–2.6 µs on each of
 * the three runtimes; the word loop 16 µs on Node 20 and 5 µs on the other
 * two. WebAssembly wins from 256 bytes on every one of them.
 */
const WORDS_FROM = 256;

/** Bytes the WebAssembly memory holds: one page, the most XORed per call. */
const BLOCK = 65536;

/**
 * The WebAssembly module, written out by hand so that nothing is generated:
 * one memory of one page exported as `m`, and `x(ptr, len, key)` that XORs
 * the 16-byte blocks from `ptr` up to `ptr + len` (rounded up) with `key`
 * splatted to 128 bits. In the text format:
 *
 * ```wat
 * (module
 *   (memory (export "m") 1)
 *   (func (export "x") (param $p i32) (param $len i32) (param $key i32)
 *     (local $end i32) (local $k v128)
 *     (local.set $end (i32.add (local.get $p) (local.get $len)))
 *     (local.set $k (i32x4.splat (local.get $key)))
 *     (block $done
 *       (loop $next
 *         (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
 *         (v128.store (local.get $p) (v128.xor (v128.load (local.get $p)) (local.get $k)))
 *         (local.set $p (i32.add (local.get $p) (i32.const 16)))
 *         (br $next)))))
 * ```
 */
const WASM_BODY = [
  0x02, 0x01, 0x7f, 0x01, 0x7b, // locals: 1 × i32 ($end), 1 × v128 ($k)
  0x20, 0x00, 0x20, 0x01, 0x6a, 0x21, 0x03, // $end = $p + $len
  0x20, 0x02, 0xfd, 0x11, 0x21, 0x04, // $k = i32x4.splat($key)
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x20, 0x00, 0x20, 0x03, 0x4f, 0x0d, 0x01, // br_if done ($p >= $end)
  0x20, 0x00, 0x20, 0x00, 0xfd, 0x00, 0x04, 0x00, // $p, v128.load($p)
  0x20, 0x04, 0xfd, 0x51, 0xfd, 0x0b, 0x04, 0x00, // v128.xor $k, v128.store
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, 0x0c, 0x00, // $p += 16, br loop
  0x0b, 0x0b, 0x0b, // end loop, end block, end func
];
const WASM_MODULE = [
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  0x01, 0x07, 0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00, // type: (i32, i32, i32) -> ()
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1 page
  0x07, 0x09, 0x02, 0x01, 0x6d, 0x02, 0x00, 0x01, 0x78, 0x00, 0x00, // export "m" memory 0, "x" func 0
  0x0a, WASM_BODY.length + 2, 0x01, WASM_BODY.length, ...WASM_BODY, // code
];

interface SimdXor {
  /** The module's memory, as bytes. */
  heap: Uint8Array;
  /** XORs `heap[0 .. len)` (rounded up to 16) with `key`, a word as memory holds it. */
  xor(ptr: number, len: number, key: number): void;
  /** The last view of the heap's start that was made, `heap[0 .. last.length)`: messages of one size in a row reuse it. */
  last: Uint8Array;
}

/**
 * The SIMD XOR, or `undefined` where WebAssembly or its SIMD is missing
 * (then the word loop does the work). Compiled once, on first use: the
 * module is under 100 bytes, far under any limit on compiling synchronously.
 */
let simd: SimdXor | null | undefined = null;

/**
 * Turns the WebAssembly path off (`false`) or back to its default (`true`),
 * so that tests can check the word loop on runtimes that have WebAssembly.
 *
 * @example
 * ```ts
 * import { useSimd } from "./_mask.ts";
 *
 * useSimd(false); // the word loop from now on
 * useSimd(true);
 * ```
 */
export function useSimd(enabled: boolean): void {
  simd = enabled ? null : undefined;
}

/**
 * Whether large payloads go through WebAssembly on this runtime.
 *
 * @example
 * ```ts
 * import { simdEnabled } from "./_mask.ts";
 *
 * console.log(simdEnabled()); // true on Node, Deno and Bun
 * ```
 */
export function simdEnabled(): boolean {
  return simdXor() !== undefined;
}

function simdXor(): SimdXor | undefined {
  if (simd !== null) return simd;
  try {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(WASM_MODULE)));
    const memory = instance.exports.m as WebAssembly.Memory;
    const heap = new Uint8Array(memory.buffer, 0, BLOCK);
    simd = { heap, xor: instance.exports.x as SimdXor["xor"], last: heap };
  } catch {
    simd = undefined;
  }
  return simd;
}

/** The key's bytes as the machine reads a word of them from memory. */
function wordOf(k: number): number {
  return LITTLE_ENDIAN ? ((k & 0xff) << 24) | ((k & 0xff00) << 8) | ((k >>> 8) & 0xff00) | (k >>> 24) : k | 0;
}

/**
 * XORs `data` in place with the masking key `key`, starting at key position
 * `offset` (masking and unmasking are the same operation).
 *
 * @param data Bytes to (un)mask in place.
 * @param key The 4-byte key as a number, `key0 << 24 | key1 << 16 | key2 << 8 | key3`.
 * @param offset Position of `data[0]` in the frame payload.
 *
 * @example
 * ```ts
 * import { xorKey } from "./_mask.ts";
 *
 * const data = new Uint8Array([1, 2, 3]);
 * xorKey(data, 0x01020304);
 * console.log(data); // Uint8Array [0, 0, 0]
 * ```
 */
export function xorKey(data: Uint8Array, key: number, offset = 0): void {
  const shift = (offset & 3) * 8;
  // Rotate the key so that its byte for data[0] comes first.
  let k = shift === 0 ? key : ((key << shift) | (key >>> (32 - shift))) >>> 0;
  const n = data.length;
  let i = 0;
  if (n >= WORDS_FROM) {
    const fast = simdXor();
    if (fast !== undefined) {
      simdCopy(fast, data, data, 0, wordOf(k));
      return;
    }
    // Byte by byte up to a 4-byte boundary, then a word at a time.
    const head = (4 - (data.byteOffset & 3)) & 3;
    for (; i < head; i++) {
      data[i] = data[i]! ^ (k >>> 24);
      k = ((k << 8) | (k >>> 24)) >>> 0;
    }
    const words = (n - i) >>> 2;
    const view = new Uint32Array(data.buffer, data.byteOffset + i, words);
    const w = wordOf(k);
    for (let j = 0; j < words; j++) view[j] = view[j]! ^ w;
    i += words * 4;
  }
  const m0 = k >>> 24, m1 = (k >>> 16) & 0xff, m2 = (k >>> 8) & 0xff, m3 = k & 0xff;
  const whole = i + ((n - i) & ~3);
  for (; i < whole; i += 4) {
    data[i] = data[i]! ^ m0;
    data[i + 1] = data[i + 1]! ^ m1;
    data[i + 2] = data[i + 2]! ^ m2;
    data[i + 3] = data[i + 3]! ^ m3;
  }
  if (i < n) data[i] = data[i]! ^ m0;
  if (i + 1 < n) data[i + 1] = data[i + 1]! ^ m1;
  if (i + 2 < n) data[i + 2] = data[i + 2]! ^ m2;
}

/**
 * XORs `source` with `w` (the key as a word of memory) into `target` from
 * `at`, block by block through the module's memory: BLOCK is a multiple of
 * 4, so every block starts at the same key position.
 */
function simdCopy(fast: SimdXor, source: Uint8Array, target: Uint8Array, at: number, w: number): void {
  const heap = fast.heap;
  const n = source.length;
  for (let i = 0; i < n; i += BLOCK) {
    const len = Math.min(BLOCK, n - i);
    heap.set(i === 0 && len === n ? source : source.subarray(i, i + len));
    fast.xor(0, len, w);
    let out = fast.last;
    if (out.length !== len) out = fast.last = heap.subarray(0, len);
    target.set(out, at + i);
  }
}

/**
 * Writes `source` XOR the masking key into `target` from `at`, the key
 * starting at position `offset`: the copy and the unmasking of a payload
 * that arrived in pieces in one pass through the WebAssembly memory, which
 * copies in and out anyway (`source` is left as it was).
 *
 * @param source The masked bytes.
 * @param target Where the unmasked bytes go; room for `source` from `at`.
 * @param at Where in `target`.
 * @param key The 4-byte key as a number, as for {@linkcode xorKey}.
 * @param offset Position of `source[0]` in the frame payload.
 *
 * @example
 * ```ts
 * import { xorCopy } from "./_mask.ts";
 *
 * const out = new Uint8Array(4);
 * xorCopy(new Uint8Array([1, 2, 3]), out, 1, 0x01020304);
 * console.log(out); // Uint8Array [0, 0, 0, 0]
 * ```
 */
export function xorCopy(source: Uint8Array, target: Uint8Array, at: number, key: number, offset = 0): void {
  const n = source.length;
  if (n >= WORDS_FROM) {
    const fast = simdXor();
    if (fast !== undefined) {
      const shift = (offset & 3) * 8;
      simdCopy(fast, source, target, at, wordOf(shift === 0 ? key : ((key << shift) | (key >>> (32 - shift))) >>> 0));
      return;
    }
  }
  target.set(source, at);
  xorKey(target.subarray(at, at + n), key, offset);
}
