// The allocator a runtime adapter may install (core/_alloc.ts) hands out
// bytes that are not zeroed: every byte core takes from it must be written
// before it is read. Checked with an allocator whose bytes are garbage, on
// the paths that use it: a masked frame joined from many reads (the key
// itself split between reads), a fragmented message, and the encoders.
import assert from "node:assert/strict";
import { after, beforeEach, describe, it } from "node:test";
import { useAllocator } from "../../core/_alloc.ts";
import { encodeFrame, encodeTextFrame, Opcode } from "../../core/frame.ts";
import { Receiver } from "../../core/receiver.ts";
import { cat, frame } from "./_util.ts";

let calls = 0;

/** Bytes full of 0xa5 in a larger buffer, as a pooled allocator's may be. */
function garbage(size: number): Uint8Array {
  calls++;
  return new Uint8Array(size + 16).fill(0xa5).subarray(8, 8 + size);
}

function payload(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

/** Cuts `input` at the given offsets. */
function cut(input: Uint8Array, offsets: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const to of [...offsets, input.length]) {
    chunks.push(input.slice(from, to));
    from = to;
  }
  return chunks;
}

function receiveAll(chunks: Uint8Array[]): unknown[] {
  const receiver = new Receiver();
  const items: unknown[] = [];
  for (const chunk of chunks) {
    receiver.push(chunk);
    for (let item = receiver.next(); item !== undefined; item = receiver.next()) items.push(item);
  }
  return items;
}

describe("an installed allocator whose bytes are not zeroed", () => {
  beforeEach(() => {
    useAllocator(garbage);
    calls = 0;
  });
  after(() => useAllocator(undefined));

  it("joins a masked 64 KiB frame from many reads, its key split between two", () => {
    const data = payload(65536 + 3, 1);
    const input = frame(Opcode.Binary, data, { mask: [0x11, 0x22, 0x33, 0x44] });
    // 64-bit length: the key is bytes 10 to 13; cut inside it, then in odd places.
    const offsets = [1, 5, 12, 13, 100, 4099, 30001, 65536, input.length - 1];
    const items = receiveAll(cut(input, offsets));
    assert.equal(items.length, 1);
    assert.deepEqual(items[0], { type: "message", data });
    assert.ok(calls > 0, "the allocator was used");
  });

  it("joins a masked frame cut every 997 bytes, and a small one cut byte by byte", () => {
    const big = payload(200_000, 2), small = payload(300, 3);
    const input = cat(frame(Opcode.Binary, big), frame(Opcode.Binary, small));
    const chunks: Uint8Array[] = [];
    const smallStart = input.length - (small.length + 8);
    for (let i = 0; i < smallStart; i += 997) chunks.push(input.slice(i, Math.min(i + 997, smallStart)));
    for (let i = smallStart; i < input.length; i++) chunks.push(input.slice(i, i + 1));
    assert.deepEqual(receiveAll(chunks), [{ type: "message", data: big }, { type: "message", data: small }]);
  });

  it("joins a fragmented message whose fragments came in separate reads", () => {
    const parts = [payload(5000, 4), payload(70000, 5), payload(3, 6)];
    const input = cat(
      frame(Opcode.Binary, parts[0]!, { fin: false }),
      frame(Opcode.Continuation, parts[1]!, { fin: false }),
      frame(Opcode.Continuation, parts[2]!),
    );
    const items = receiveAll(cut(input, [7, 5010, 40000, input.length - 2]));
    assert.deepEqual(items, [{ type: "message", data: cat(...parts) }]);
  });

  it("decodes a masked text frame split across reads", () => {
    const text = "héllo wörld ".repeat(6000);
    const input = frame(Opcode.Text, text);
    assert.deepEqual(receiveAll(cut(input, [3, 11, 12, 20000, 50000])), [{ type: "message", data: text }]);
  });

  it("encodes the same frames as with zeroed bytes", () => {
    const sizes = [0, 5, 125, 126, 16384, 16385, 65535, 65536, 70000];
    const encoded = (alloc: ((size: number) => Uint8Array) | undefined) => {
      useAllocator(alloc);
      return sizes.flatMap((size) => [
        cat(...encodeFrame(Opcode.Binary, payload(size, size))),
        cat(...encodeFrame(Opcode.Binary, payload(size, size), { mask: new Uint8Array([1, 2, 3, 4]), fin: false, rsv1: true })),
        cat(...encodeTextFrame("x".repeat(size))),
      ]);
    };
    const zeroed = encoded(undefined);
    const withGarbage = encoded(garbage);
    assert.ok(calls > 0, "the allocator was used");
    assert.deepEqual(withGarbage, zeroed);
  });
});
