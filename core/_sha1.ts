/**
 * Synchronous SHA-1 (FIPS 180-4), for the `Sec-WebSocket-Accept` digest only.
 * `crypto.subtle.digest` is asynchronous, and the opening handshake must be
 * answerable synchronously. SHA-1 is not used here for security.
 *
 * Internal: not exported from `@duplex/ws/core`.
 *
 * @module
 */

/**
 * Computes the SHA-1 digest of `data`.
 *
 * @param data Bytes to hash.
 * @returns The 20-byte digest.
 *
 * @example
 * ```ts
 * import { sha1 } from "./_sha1.ts";
 *
 * const digest = sha1(new TextEncoder().encode("abc"));
 * console.log(digest.length); // 20
 * ```
 */
export function sha1(data: Uint8Array): Uint8Array {
  const h = new Int32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0]);
  const w = new Int32Array(80);
  const length = data.length;
  const full = length - (length % 64);

  const input = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let offset = 0; offset < full; offset += 64) compress(h, w, input, offset);

  // Padding: 0x80, zeros, then the length in bits as a 64-bit big-endian integer.
  const remaining = length - full;
  const tail = new Uint8Array(remaining < 56 ? 64 : 128);
  tail.set(data.subarray(full));
  tail[remaining] = 0x80;
  const tailView = new DataView(tail.buffer);
  tailView.setUint32(tail.length - 8, Math.floor(length / 0x20000000));
  tailView.setUint32(tail.length - 4, (length << 3) >>> 0);
  for (let offset = 0; offset < tail.length; offset += 64) compress(h, w, tailView, offset);

  const out = new Uint8Array(20);
  const outView = new DataView(out.buffer);
  for (let i = 0; i < 5; i++) outView.setInt32(i * 4, h[i]!);
  return out;
}

/** Processes one 64-byte block at `offset` of `view` into the state `h`. */
function compress(h: Int32Array, w: Int32Array, view: DataView, offset: number): void {
  for (let i = 0; i < 16; i++) w[i] = view.getInt32(offset + i * 4);
  for (let i = 16; i < 80; i++) {
    const x = w[i - 3]! ^ w[i - 8]! ^ w[i - 14]! ^ w[i - 16]!;
    w[i] = (x << 1) | (x >>> 31);
  }
  let a = h[0]!, b = h[1]!, c = h[2]!, d = h[3]!, e = h[4]!;
  for (let i = 0; i < 80; i++) {
    let f: number, k: number;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5a827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ed9eba1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8f1bbcdc;
    } else {
      f = b ^ c ^ d;
      k = 0xca62c1d6;
    }
    const t = (((a << 5) | (a >>> 27)) + f + e + k + w[i]!) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  h[0] = h[0]! + a;
  h[1] = h[1]! + b;
  h[2] = h[2]! + c;
  h[3] = h[3]! + d;
  h[4] = h[4]! + e;
}
