// Streaming UTF-8 validation (fail fast, 1007) and the close rules of §5.5.1 and §7.4.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { cat, closeBody, frame, openEngine, runEcho, splits, summary } from "./_util.ts";
import { fuzzSeed } from "./_fuzz_props.ts";

const TEXT = 0x1, CONT = 0x0, CLOSE = 0x8, PING = 0x9;

const msg = (data: string) => ({ type: "message", kind: "text", data });
const closeEvent = (code: number, wasClean: boolean) => ({ type: "close", code, wasClean });
const error = (code: string, closeCode: number) => ({ type: "error", code, closeCode });
const closeFrame = (code: number) => ({ type: "close", code });

function expectAll(input: Uint8Array, events: unknown[], frames: unknown[]): void {
  for (const chunks of splits(input)) {
    const run = runEcho(chunks);
    const where = `split ${chunks.map((c) => c.length).join("+")}`;
    assert.deepEqual(summary(run.events), events, where);
    assert.deepEqual(summary(run.frames), frames, where);
  }
}

const invalid = error("WS_ERR_INVALID_UTF8", 1007);

describe("UTF-8: valid text", () => {
  const samples = ["κόσμε", "Hello-µ@ßöäüàá-UTF-8!!", "\u{10FFFF}\u{10000}\uFFFD\u0080\u07FF\u0800\uFFFF", "😀 emoji"];
  for (const text of samples) {
    it(`echoes ${JSON.stringify(text)} in one frame and fragmented at every byte`, () => {
      expectAll(frame(TEXT, text), [msg(text)], [msg(text)]);
      const b = new TextEncoder().encode(text);
      const fragments = Array.from(b, (byte, i) => frame(i === 0 ? TEXT : CONT, [byte], { fin: i === b.length - 1 }));
      const run = runEcho([cat(...fragments)]);
      assert.deepEqual(summary(run.events), [msg(text)]);
    });
  }
});

describe("UTF-8: U+FFFD in valid text", () => {
  it("keeps a real U+FFFD, whole and fragmented", () => {
    expectAll(frame(TEXT, "a\uFFFDb"), [msg("a\uFFFDb")], [msg("a\uFFFDb")]);
    expectAll(frame(CLOSE, closeBody(1000, "\uFFFD")), [closeEvent(1000, true)], [closeFrame(1000)]);
  });
});

describe("UTF-8: invalid text fails with 1007", () => {
  const cases: [string, number[]][] = [
    ["a lone continuation byte", [0x80]],
    ["an overlong encoding of '/'", [0xc0, 0xaf]],
    ["an overlong 3-byte NUL", [0xe0, 0x80, 0x80]],
    ["a UTF-16 surrogate", [0xed, 0xa0, 0x80]],
    ["a code point past U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ["byte 0xFF", [0xff]],
    ["byte 0xFE", [0xfe]],
    ["a 5-byte sequence", [0xf8, 0x88, 0x80, 0x80, 0x80]],
    ["a sequence cut short by ASCII", [0xce, 0x41]],
    ["an invalid byte next to a real U+FFFD", [0xef, 0xbf, 0xbd, 0xff]],
  ];
  for (const [name, seq] of cases) {
    it(`fails on ${name}`, () => {
      const input = frame(TEXT, [0x61, ...seq, 0x62]);
      expectAll(input, [invalid, closeEvent(1007, false)], [closeFrame(1007)]);
    });
  }

  it("fails on a sequence left incomplete at the end of the message", () => {
    expectAll(frame(TEXT, [0x61, 0xe2, 0x82]), [invalid, closeEvent(1007, false)], [closeFrame(1007)]);
  });

  it("fails fast mid-frame: the bad byte fails the connection before the rest of the payload arrives", () => {
    const payload = new Uint8Array(10_000).fill(0x61);
    payload[10] = 0xff;
    const whole = frame(TEXT, payload);
    // Header (4 bytes) + mask (4 bytes) + the first 11 payload bytes only.
    const partial = whole.slice(0, 8 + 11);
    const run = runEcho([partial]);
    assert.deepEqual(summary(run.events), [invalid, closeEvent(1007, false)]);
    assert.deepEqual(summary(run.frames), [closeFrame(1007)]);
    // Fed one byte at a time the failure comes at the same byte, not later.
    const bytewise = Array.from(partial, (b) => new Uint8Array([b]));
    assert.deepEqual(summary(runEcho(bytewise).events), [invalid, closeEvent(1007, false)]);
    assert.deepEqual(summary(runEcho([whole.slice(0, 8 + 10)]).events), [], "no failure before the bad byte");
  });

  it("fails fast across fragments: a valid first fragment, the bad byte in the second, no final frame", () => {
    // U+10FFFF plus one: F4 90 80 80, split F4 | 90 80 80 across fragments.
    const input = cat(frame(TEXT, [0x61, 0xf4], { fin: false }), frame(CONT, [0x90, 0x80, 0x80], { fin: false }));
    expectAll(input, [invalid, closeEvent(1007, false)], [closeFrame(1007)]);
  });

  it("does not fail a fragment that ends inside a valid sequence", () => {
    const input = cat(frame(TEXT, [0x61, 0xe2], { fin: false }), frame(CONT, [0x82, 0xac], { fin: true }));
    expectAll(input, [msg("a€")], [msg("a€")]);
  });
});

describe("UTF-8: piecewise validation against the WHATWG streaming decoder", () => {
  // Bytes that make UTF-8 edge cases likely: ASCII, every kind of lead
  // (valid, overlong, past U+10FFFF), and continuations at the range limits.
  const utf8ish = fc.oneof(
    fc.constantFrom(0x61, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff),
    fc.integer({ min: 0, max: 255 }),
  );
  const valid = fc.string({ unit: "grapheme", maxLength: 12 }).map((t) => Array.from(new TextEncoder().encode(t)));
  const payload = fc.array(fc.oneof(valid, fc.array(utf8ish, { maxLength: 4 })), { maxLength: 6 }).map((parts) => parts.flat());

  /** The index of the byte at which a streaming fatal decoder first throws, or -1 (valid); `payload.length` if only the end is bad. */
  function firstBadByte(bytes: number[]): number {
    const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    for (let i = 0; i < bytes.length; i++) {
      try {
        decoder.decode(new Uint8Array([bytes[i]!]), { stream: true });
      } catch {
        return i;
      }
    }
    try {
      decoder.decode();
      return -1;
    } catch {
      return bytes.length;
    }
  }

  it("accepts what it accepts, and fails on the same byte, for any split into frames and reads", () => {
    fc.assert(
      fc.property(payload, fc.array(fc.nat(64), { maxLength: 6 }), fc.array(fc.nat(64), { maxLength: 6 }), (bytes, fragmentCuts, readCuts) => {
        const bad = firstBadByte(bytes);
        // The message as fragments, cut at fragmentCuts.
        const cuts = [...new Set(fragmentCuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const pieces: number[][] = [];
        let from = 0;
        for (const cut of [...cuts, bytes.length]) {
          pieces.push(bytes.slice(from, Math.max(from, cut)));
          from = Math.max(from, cut);
        }
        // Where each payload byte ends up on the wire.
        const frames: Uint8Array[] = [];
        const payloadEnds: number[] = []; // wire offset just past payload byte i
        let wire = 0;
        pieces.forEach((piece, i) => {
          const f = frame(i === 0 ? TEXT : CONT, piece, { fin: i === pieces.length - 1 });
          const header = f.length - piece.length;
          for (let k = 0; k < piece.length; k++) payloadEnds.push(wire + header + k + 1);
          frames.push(f);
          wire += f.length;
        });
        const input = cat(...frames);
        // Reads of the wire bytes, cut at readCuts.
        const reads = [...new Set(readCuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
        const engine = openEngine();
        let at = 0;
        let failedAfter = -1; // the wire offset at which the 1007 came
        for (const end of [...reads, input.length]) {
          if (end <= at) continue;
          engine.receive(input.subarray(at, end));
          at = end;
          for (let e = engine.nextEvent(); e; e = engine.nextEvent()) {
            if (e.type === "error") {
              assert.equal(e.error.code, "WS_ERR_INVALID_UTF8");
              if (failedAfter < 0) failedAfter = at;
            }
            if (e.type === "message") {
              assert.equal(bad, -1, "a message only for valid text");
              assert.equal(e.data, new TextDecoder().decode(new Uint8Array(bytes)));
            }
          }
          if (failedAfter >= 0) break;
        }
        if (bad === -1) {
          assert.equal(failedAfter, -1, "valid text never fails");
          return;
        }
        // It fails in the read that brought the first bad byte (or the end
        // of the message, for a sequence left incomplete), not earlier, not later.
        const badWire = bad < bytes.length ? payloadEnds[bad]! : input.length;
        const readEnds = [...reads.filter((r) => r > 0), input.length];
        const expected = readEnds.find((r) => r >= badWire)!;
        assert.equal(failedAfter, expected, `bad byte ${bad} at wire ${badWire}`);
      }),
      { seed: fuzzSeed(), numRuns: 2000 },
    );
  });
});

describe("close frames", () => {
  it("answers an empty close with an empty close and reports 1005", () => {
    expectAll(frame(CLOSE), [closeEvent(1005, true)], [closeFrame(1005)]);
    const run = runEcho([frame(CLOSE)]);
    assert.deepEqual(Array.from(run.output), [0x88, 0x00], "the echo has no payload");
  });

  it("echoes the code of a close with a reason, without the reason", () => {
    expectAll(frame(CLOSE, closeBody(1000, "bye")), [closeEvent(1000, true)], [closeFrame(1000)]);
    const run = runEcho([frame(CLOSE, closeBody(4000, "x".repeat(123)))]);
    const event = run.events[0];
    assert.ok(event?.type === "close");
    assert.equal(event.reason, "x".repeat(123));
    assert.deepEqual(Array.from(run.output), [0x88, 0x02, 0x0f, 0xa0]);
  });

  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) {
    it(`echoes valid code ${code}`, () => {
      expectAll(frame(CLOSE, closeBody(code)), [closeEvent(code, true)], [closeFrame(code)]);
    });
  }

  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
    it(`fails with 1002 on code ${code}, which may not be on the wire`, () => {
      expectAll(frame(CLOSE, closeBody(code)), [error("WS_ERR_INVALID_CLOSE_CODE", 1002), closeEvent(1002, false)], [closeFrame(1002)]);
    });
  }

  it("fails with 1002 on a close payload of 1 byte", () => {
    expectAll(frame(CLOSE, [0x03]), [error("WS_ERR_INVALID_CLOSE_PAYLOAD", 1002), closeEvent(1002, false)], [closeFrame(1002)]);
  });

  it("fails with 1007 on a reason that is not UTF-8", () => {
    const body = cat(closeBody(1000), new Uint8Array([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64]));
    expectAll(frame(CLOSE, body), [invalid, closeEvent(1007, false)], [closeFrame(1007)]);
  });

  it("ignores everything after the close frame", () => {
    const input = cat(frame(TEXT, "a"), frame(CLOSE, closeBody(1000)), frame(TEXT, "b"), frame(PING));
    expectAll(input, [msg("a"), closeEvent(1000, true)], [msg("a"), closeFrame(1000)]);
  });

  it("accepts a close in the middle of a fragmented message", () => {
    const input = cat(frame(TEXT, "par", { fin: false }), frame(CLOSE, closeBody(1000)));
    expectAll(input, [closeEvent(1000, true)], [closeFrame(1000)]);
  });

  it("reports 1006 when the transport ends without a close, after delivering complete frames", () => {
    const run = runEcho([cat(frame(TEXT, "last"), frame(TEXT, "cut").subarray(0, 3))], {}, true);
    assert.deepEqual(summary(run.events), [msg("last"), closeEvent(1006, false)]);
    assert.equal(run.state, 3);
  });
});

describe("splits helper", () => {
  it("covers whole, every offset and bytewise", () => {
    const all = [...splits(new Uint8Array([1, 2, 3]))];
    assert.deepEqual(all.map((s) => s.map((c) => c.length)), [[3], [1, 2], [2, 1], [1, 1, 1]]);
  });
});

describe("UTF-8: inflated messages (Engine.inflated)", () => {
  const drain = (engine: ReturnType<typeof openEngine>) => {
    const events = [];
    for (let e = engine.nextEvent(); e; e = engine.nextEvent()) events.push(e);
    return summary(events);
  };

  it("returns the text of a valid inflated text message and the bytes of a binary one", () => {
    const engine = openEngine();
    const text = new TextEncoder().encode("κόσμε");
    assert.equal(engine.inflated(text, false), "κόσμε");
    const bytes = new Uint8Array([0xff, 0xfe]);
    assert.equal(engine.inflated(bytes, true), bytes);
    assert.deepEqual(drain(engine), []);
    assert.deepEqual(engine.takeOutput(), []);
  });

  it("fails the connection with 1007 for inflated text that is not UTF-8, as for an uncompressed one", () => {
    for (const bytes of [[0xce, 0xba, 0xe1, 0xbd], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xff]]) {
      const engine = openEngine();
      assert.equal(engine.inflated(new Uint8Array(bytes), false), undefined);
      assert.deepEqual(drain(engine), [invalid, closeEvent(1007, false)]);
      const run = cat(...engine.takeOutput());
      assert.deepEqual([run[0], run[1], run[2]! * 256 + run[3]!], [0x88, 2, 1007]);
      assert.equal(engine.state, 3);
    }
  });

  it("does nothing more once the connection is closed", () => {
    const engine = openEngine();
    engine.abort();
    drain(engine);
    assert.equal(engine.inflated(new Uint8Array([0xff]), false), undefined);
    assert.deepEqual(drain(engine), []);
    assert.deepEqual(engine.takeOutput(), []);
  });
});
