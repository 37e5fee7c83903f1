// FrameArena: engines that share one encode their small data frames side by
// side into it. The bytes on the wire are the same as without one, whatever
// the sizes, kinds and interleaving; frames that follow each other come back
// as one chunk; the memory is reused once nobody holds frames in it, and
// frames still held survive a full arena.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Engine } from "../../core/engine.ts";
import { FrameArena } from "../../core/frame_arena.ts";
import { acceptedEngine, cat } from "./_util.ts";

const encoder = new TextEncoder();
const SIZES = [0, 1, 2, 31, 32, 41, 42, 100, 125, 126, 127, 1000, 1024, 4090, 4096, 16_380, 16_384, 16_400, 70_000];

function open(arena?: FrameArena): Engine {
  return acceptedEngine({}, {}, {}, arena).engine;
}

/** Sends of every kind and size: ASCII and non-ASCII strings, bytes as binary and as text, views. */
function sends(): [string | Uint8Array | Uint16Array, boolean | undefined][] {
  const out: [string | Uint8Array | Uint16Array, boolean | undefined][] = [];
  for (const n of SIZES) {
    out.push(["a".repeat(n), undefined]);
    out.push(["é".repeat(n >> 1) + "x".repeat(n & 1), undefined]);
    out.push(["€".repeat(Math.ceil(n / 3)), undefined]);
    out.push(["b".repeat(n), true]);
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i++) bytes[i] = (i * 31 + n) & 0xff;
    out.push([bytes, undefined]);
    out.push([encoder.encode("t".repeat(n)), false]);
    out.push([new Uint16Array(bytes.buffer, 0, n >> 1), undefined]);
  }
  return out;
}

describe("FrameArena", () => {
  it("the output is byte for byte the same as without an arena, sent one at a time or in a row", () => {
    for (const arenaSize of [1024, 4096, 64 * 1024]) {
      const arena = new FrameArena(arenaSize);
      const plain = open(), framed = open(arena);
      const all: Uint8Array[] = [];
      for (const [data, binary] of sends()) {
        plain.send(data, binary);
        framed.send(data, binary);
        assert.equal(framed.outputBytes, plain.outputBytes);
        const want = cat(...plain.takeOutput()), got = cat(...framed.takeOutput());
        assert.deepEqual(got, want, `arena ${arenaSize}: ${typeof data} of ${data.length}, binary ${binary}`);
        all.push(want);
      }
      // In a row, with controls between: the same bytes in the same order.
      const row = open(arena);
      for (const [i, [data, binary]] of sends().entries()) {
        row.send(data, binary);
        if (i % 5 === 0) row.ping(new Uint8Array([i & 0xff]));
      }
      const pings = open();
      for (const [i, [data, binary]] of sends().entries()) {
        pings.send(data, binary);
        if (i % 5 === 0) pings.ping(new Uint8Array([i & 0xff]));
      }
      assert.deepEqual(cat(...row.takeOutput()), cat(...pings.takeOutput()), `arena ${arenaSize}: in a row`);
      assert.equal(arena.holders, 0);
    }
  });

  it("frames sent in a row come back as one chunk, over the arena's memory", () => {
    const arena = new FrameArena();
    const engine = open(arena);
    for (let i = 0; i < 16; i++) engine.send("x".repeat(32));
    engine.send(new Uint8Array(1024));
    const chunks = engine.takeOutput();
    assert.equal(chunks.length, 1);
    assert.equal(chunks[0]!.length, 16 * 34 + 1028);
    assert.ok(arena.holds(chunks[0]!));
    assert.ok(!arena.holds(new Uint8Array(4)));
  });

  it("two engines that interleave keep their own frames, in order", () => {
    const arena = new FrameArena(4096);
    const a = open(arena), b = open(arena);
    const wantA = open(), wantB = open();
    for (let i = 0; i < 200; i++) {
      const m = `${i}:` + "y".repeat(i % 130);
      a.send(m), wantA.send(m);
      b.send(encoder.encode(m)), wantB.send(encoder.encode(m));
    }
    // Over several buffers (4 KiB each, both holding): the older views stay intact.
    assert.ok(arena.generation > 0);
    assert.deepEqual(cat(...a.takeOutput()), cat(...wantA.takeOutput()));
    assert.deepEqual(cat(...b.takeOutput()), cat(...wantB.takeOutput()));
    assert.equal(arena.holders, 0);
  });

  it("reuses its memory from the start once every engine has handed its frames out", () => {
    const arena = new FrameArena();
    const a = open(arena), b = open(arena);
    a.send("first");
    const buffer = arena.bytes;
    b.send("second");
    assert.equal(arena.holders, 2);
    assert.equal(arena.used, 7 + 8);
    a.takeOutput();
    b.send("third"); // a let go, b still holds: after b's frames
    assert.equal(arena.used, 7 + 8 + 7);
    const [chunk] = b.takeOutput();
    assert.deepEqual(chunk, cat(new Uint8Array([0x81, 6]), encoder.encode("second"), new Uint8Array([0x81, 5]), encoder.encode("third")));
    a.send("again");
    assert.equal(arena.bytes, buffer);
    assert.equal(arena.used, 7); // from the start
    assert.equal(arena.generation, 0);
  });

  it("an engine without an arena encodes as before, and a bad size is refused", () => {
    const engine = open();
    engine.send("hi");
    engine.send("there");
    assert.equal(engine.takeOutput().length, 2);
    assert.throws(() => new FrameArena(100), RangeError);
    assert.throws(() => new FrameArena(1024.5), RangeError);
    assert.equal(new FrameArena(1 << 20).maxFrameBytes, 16 * 1024);
    assert.equal(new FrameArena(4096).maxFrameBytes, 1024);
  });
});
