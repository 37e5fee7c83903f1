// textAs: "bytes": text messages delivered as their validated UTF-8 bytes
// (still failed with 1007 when invalid, whole, fragmented, split anywhere),
// and bytes sent back as text with send(bytes, false).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Engine, type EngineEvent } from "../../core/engine.ts";
import { isUtf8 as nodeIsUtf8 } from "node:buffer";
import { scanUtf8 } from "../../core/_utf8.ts";
import { UsageError } from "../../core/errors.ts";
import { cat, decodeServerFrames, frame, openEngine } from "./_util.ts";
import { fuzzSeed } from "./_fuzz_props.ts";

const TEXT = 0x1, BINARY = 0x2, CONT = 0x0;
const encoder = new TextEncoder();

/** Feeds `chunks` to an open engine and collects its events. */
function feed(engine: Engine, chunks: Uint8Array[]): EngineEvent[] {
  const events: EngineEvent[] = [];
  for (const chunk of chunks) {
    engine.receive(chunk.slice());
    for (let e = engine.nextEvent(); e; e = engine.nextEvent()) events.push(e);
  }
  return events;
}

/** Every way to cut `input` in two, and one byte at a time. */
function splitsOf(input: Uint8Array): Uint8Array[][] {
  const out = [[input]];
  for (let i = 1; i < input.length; i++) out.push([input.subarray(0, i), input.subarray(i)]);
  out.push(Array.from(input, (b) => new Uint8Array([b])));
  return out;
}

const summary = (events: EngineEvent[]) =>
  events.map((e) =>
    e.type === "message"
      ? { type: "message", text: e.text === true, data: typeof e.data === "string" ? e.data : Array.from(e.data) }
      : e.type === "error"
      ? { type: "error", code: e.error.code, closeCode: e.error.closeCode }
      : e.type === "close"
      ? { type: "close", code: e.code }
      : { type: e.type }
  );

describe("textAs: \"bytes\"", () => {
  it("delivers a text message as its bytes, marked text, split anywhere", () => {
    const text = "héllo wörld ✓ 😀";
    const utf8 = Array.from(encoder.encode(text));
    for (const chunks of splitsOf(frame(TEXT, text))) {
      assert.deepEqual(summary(feed(openEngine({ textAs: "bytes" }), chunks)), [{ type: "message", text: true, data: utf8 }]);
    }
  });

  it("delivers a text message fragmented at every byte (a code point across fragments) as its bytes", () => {
    const utf8 = encoder.encode("a😀é✓");
    const fragments = Array.from(utf8, (b, i) => frame(i === 0 ? TEXT : CONT, [b], { fin: i === utf8.length - 1 }));
    for (const chunks of [[cat(...fragments)], fragments]) {
      assert.deepEqual(summary(feed(openEngine({ textAs: "bytes" }), chunks)), [{ type: "message", text: true, data: Array.from(utf8) }]);
    }
  });

  it("leaves binary messages unmarked, and an empty text message is empty bytes", () => {
    const events = feed(openEngine({ textAs: "bytes" }), [cat(frame(BINARY, [1, 2]), frame(TEXT, ""))]);
    assert.deepEqual(summary(events), [
      { type: "message", text: false, data: [1, 2] },
      { type: "message", text: true, data: [] },
    ]);
  });

  it("keeps the default: text is a string", () => {
    assert.deepEqual(summary(feed(openEngine(), [frame(TEXT, "hé")])), [{ type: "message", text: false, data: "hé" }]);
    assert.deepEqual(summary(feed(openEngine({ textAs: "string" }), [frame(TEXT, "hé")])), [{ type: "message", text: false, data: "hé" }]);
  });

  const invalid = [
    { type: "error", code: "WS_ERR_INVALID_UTF8", closeCode: 1007 },
    { type: "close", code: 1007 },
  ];
  const cases: [string, number[]][] = [
    ["a lone continuation byte", [0x61, 0x80]],
    ["an overlong '/'", [0xc0, 0xaf]],
    ["an overlong 3-byte NUL", [0xe0, 0x80, 0x80]],
    ["a UTF-16 surrogate", [0xed, 0xa0, 0x80]],
    ["a code point past U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ["byte 0xFF after ASCII words", [...encoder.encode("abcdefghijklmnopqrstuvwxyz0123456789"), 0xff]],
    ["a sequence cut short by ASCII", [0xce, 0x41]],
    ["a sequence cut by the end", [0x61, 0xe2, 0x9c]],
  ];
  for (const [name, seq] of cases) {
    it(`fails ${name} with 1007, whole, split anywhere and fragmented at every byte`, () => {
      for (const chunks of splitsOf(frame(TEXT, seq))) {
        assert.deepEqual(summary(feed(openEngine({ textAs: "bytes" }), chunks)), invalid, `split ${chunks.map((c) => c.length)}`);
      }
      const fragments = seq.map((b, i) => frame(i === 0 ? TEXT : CONT, [b], { fin: i === seq.length - 1 }));
      assert.deepEqual(summary(feed(openEngine({ textAs: "bytes" }), [cat(...fragments)])), invalid);
    });
  }

  it("fails a code point split across fragments whose second half is wrong, at once", () => {
    // 0xE2 0x9C then, in the next fragment, 0x41: fails without waiting for the end.
    const events = feed(openEngine({ textAs: "bytes" }), [cat(frame(TEXT, [0x61, 0xe2, 0x9c], { fin: false }), frame(CONT, [0x41], { fin: false }))]);
    assert.deepEqual(summary(events), invalid);
  });

  it("sends the close frame 1007 to the peer", () => {
    const engine = openEngine({ textAs: "bytes" });
    feed(engine, [frame(TEXT, [0xff])]);
    const out = decodeServerFrames(cat(...engine.takeOutput()));
    assert.deepEqual(out.map((r) => r.type === "close" ? r.code : r.type), [1007]);
  });

  it("checks an inflated text message without decoding it: bytes back, or 1007", () => {
    const engine = openEngine({ textAs: "bytes" });
    const utf8 = encoder.encode("ünï");
    assert.equal(engine.inflated(utf8, false), utf8);
    assert.equal(engine.inflated(new Uint8Array([0xff]), false), undefined);
    const events: EngineEvent[] = [];
    for (let e = engine.nextEvent(); e; e = engine.nextEvent()) events.push(e);
    assert.deepEqual(summary(events), invalid);
  });

  it("refuses a bad textAs", () => {
    assert.throws(() => new Engine({ textAs: "buffer" as "bytes" }), UsageError);
  });
});

describe("send(bytes, false): bytes as text", () => {
  it("frames bytes as a text message without decoding them, and a string as binary with true", () => {
    const engine = openEngine({ textAs: "bytes" });
    const [event] = feed(engine, [frame(TEXT, "ünïcode")]);
    assert.ok(event?.type === "message" && event.data instanceof Uint8Array);
    engine.send(event.data, false);
    engine.send("bin", true);
    engine.send("str");
    const out = decodeServerFrames(cat(...engine.takeOutput()));
    assert.deepEqual(out, [
      { type: "message", data: "ünïcode" },
      { type: "message", data: encoder.encode("bin") },
      { type: "message", data: "str" },
    ]);
  });
});

describe("the JavaScript UTF-8 scan (and node:buffer's isUtf8, which the node adapter installs) agree with a fatal TextDecoder", () => {
  const fatal = new TextDecoder("utf-8", { fatal: true });
  const agrees = (bytes: Uint8Array): boolean => {
    let expected = true;
    try {
      fatal.decode(bytes);
    } catch {
      expected = false;
    }
    return scanUtf8(bytes) === expected && nodeIsUtf8(bytes) === expected;
  };
  it("on random bytes, random text, and text with a byte changed, at every alignment", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(3), (b, shift) => agrees(cat(new Uint8Array(shift), b).subarray(shift))), { seed: fuzzSeed(), numRuns: 2000 });
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 60 }), fc.nat(), fc.integer({ min: 0, max: 255 }), (s, at, byte) => {
        const b = encoder.encode("0123456789abcdef" + s + "0123456789abcdef");
        if (!agrees(b)) return false;
        b[at % b.length] = byte;
        return agrees(b);
      }),
      { seed: fuzzSeed(), numRuns: 2000 },
    );
  });
});
