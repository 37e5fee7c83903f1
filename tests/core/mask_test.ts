// Masking (RFC 6455 §5.3): the XOR of a payload with the 4-byte key, checked
// byte for byte against the definition, on both bulk paths (WebAssembly SIMD
// and the 32-bit word loop), at every key position and memory alignment, and
// across the 64 KiB blocks of the WebAssembly memory.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { simdEnabled, useSimd, xorCopy, xorKey } from "../../core/_mask.ts";

const KEY = [0x9e, 0x37, 0x79, 0xb9];
const KEY_NUMBER = ((KEY[0]! << 24) | (KEY[1]! << 16) | (KEY[2]! << 8) | KEY[3]!) >>> 0;
const SIZES = [0, 1, 2, 3, 4, 5, 15, 16, 17, 255, 256, 257, 1023, 1024, 4099, 65535, 65536, 65537, 65536 * 3 + 7];

/** The definition: byte i of the payload XOR key byte (offset + i) mod 4. */
function reference(data: Uint8Array, offset: number): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ KEY[(offset + i) & 3]!;
  return out;
}

function payload(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function checkAll(): void {
  for (const size of SIZES) {
    for (let align = 0; align < 4; align++) {
      for (let offset = 0; offset < 4; offset++) {
        // A view that starts `align` bytes into its buffer, with guard bytes around it.
        const backing = payload(size + 8, size * 16 + align * 4 + offset);
        const before = backing.slice();
        const view = backing.subarray(align, align + size);
        const expected = reference(view, offset);
        xorKey(view, KEY_NUMBER, offset);
        assert.deepEqual(view, expected, `size ${size}, alignment ${align}, key position ${offset}`);
        for (let i = 0; i < backing.length; i++) {
          if (i < align || i >= align + size) assert.equal(backing[i], before[i], `byte ${i} outside the view changed`);
        }
        // Masking twice gives the payload back.
        xorKey(view, KEY_NUMBER, offset);
        assert.deepEqual(view, before.subarray(align, align + size));
      }
    }
  }
}

/** xorCopy: the same XOR written into another buffer at `at`, the source untouched. */
function checkCopy(): void {
  for (const size of SIZES) {
    for (const at of [0, 1, 3, 6]) {
      for (let offset = 0; offset < 4; offset++) {
        const source = payload(size, size * 8 + at + offset);
        const before = source.slice();
        const target = new Uint8Array(size + at + 5).fill(0x5a);
        xorCopy(source, target, at, KEY_NUMBER, offset);
        const where = `size ${size}, at ${at}, key position ${offset}`;
        assert.deepEqual(target.subarray(at, at + size), reference(source, offset), where);
        assert.deepEqual(source, before, `${where}: the source changed`);
        for (let i = 0; i < target.length; i++) {
          if (i < at || i >= at + size) assert.equal(target[i], 0x5a, `${where}: byte ${i} outside the copy changed`);
        }
      }
    }
  }
}

describe("masking", () => {
  after(() => useSimd(true));

  it("has WebAssembly SIMD on this runtime, so large payloads take the fast path", () => {
    useSimd(true);
    assert.equal(simdEnabled(), true);
  });

  it("XORs every byte with the right key byte through WebAssembly", () => {
    useSimd(true);
    checkAll();
  });

  it("XORs every byte with the right key byte through the word loop", () => {
    useSimd(false);
    assert.equal(simdEnabled(), false);
    checkAll();
    useSimd(true);
  });

  it("copies and XORs in one pass into another buffer, through WebAssembly and the word loop", () => {
    useSimd(true);
    checkCopy();
    useSimd(false);
    checkCopy();
    useSimd(true);
  });
});
