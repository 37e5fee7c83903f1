// Frame rules of RFC 6455 §5, fed whole and split at every offset.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import { applyMask, encodeFrame, encodeTextFrame } from "../../core/frame.ts";
import { Receiver } from "../../core/receiver.ts";
import { cat, frame, runEcho, splits, summary } from "./_util.ts";

const TEXT = 0x1, BINARY = 0x2, CONT = 0x0, CLOSE = 0x8, PING = 0x9, PONG = 0xa;

/** Asserts that every split of `input` gives the same events and output. */
function expectAll(input: Uint8Array, events: unknown[], frames: unknown[], options = {}, maxEveryOffset?: number): void {
  for (const chunks of splits(input, maxEveryOffset)) {
    const run = runEcho(chunks, options);
    const where = `split ${chunks.map((c) => c.length).join("+")}`;
    assert.deepEqual(summary(run.events), events, where);
    assert.deepEqual(summary(run.frames), frames, where);
  }
}

const msg = (data: string | number[] | number, kind = typeof data === "string" ? "text" : "binary") => ({ type: "message", kind, data });
const closeEvent = (code: number, wasClean: boolean) => ({ type: "close", code, wasClean });
const error = (code: string, closeCode: number) => ({ type: "error", code, closeCode });
const closeFrame = (code: number) => ({ type: "close", code });

describe("framing: valid frames", () => {
  it("echoes a masked text frame", () => {
    expectAll(frame(TEXT, "Hello"), [msg("Hello")], [msg("Hello")]);
  });

  it("echoes an empty text and an empty binary message", () => {
    expectAll(cat(frame(TEXT, ""), frame(BINARY, [])), [msg(""), msg([])], [msg(""), msg([])]);
  });

  for (const size of [0, 1, 125, 126, 127, 65535, 65536, 1 << 20]) {
    it(`echoes a binary message of ${size} bytes (length form ${size < 126 ? 7 : size < 65536 ? 16 : 64} bits)`, () => {
      const payload = new Uint8Array(size);
      for (let i = 0; i < size; i++) payload[i] = (i * 7) & 0xff;
      const input = frame(BINARY, payload);
      for (const chunks of splits(input, 300)) {
        const run = runEcho(chunks);
        assert.equal(run.frames.length, 1);
        const echoed = run.frames[0]!;
        assert.equal(echoed.type, "message");
        assert.deepEqual(echoed.type === "message" && echoed.data, payload);
        // The server frame uses the minimal length form and no mask.
        const lengthByte = run.output[1]!;
        assert.equal(lengthByte & 0x80, 0, "server frames are unmasked");
        assert.equal(lengthByte, size < 126 ? size : size < 65536 ? 126 : 127);
        assert.equal(run.output.length, size + (size < 126 ? 2 : size < 65536 ? 4 : 10));
      }
    });
  }

  it("assembles a fragmented text message with pings in between, answering each ping at once", () => {
    const input = cat(
      frame(TEXT, "frag", { fin: false }),
      frame(PING, "p1"),
      frame(CONT, "men", { fin: false }),
      frame(PING, "p2"),
      frame(CONT, "ted", { fin: true }),
    );
    expectAll(
      input,
      [{ type: "ping", kind: "binary", data: [0x70, 0x31] }, { type: "ping", kind: "binary", data: [0x70, 0x32] }, msg("fragmented")],
      [{ type: "pong", kind: "binary", data: [0x70, 0x31] }, { type: "pong", kind: "binary", data: [0x70, 0x32] }, msg("fragmented")],
    );
  });

  it("assembles a fragmented binary message, empty fragments included", () => {
    const input = cat(frame(BINARY, [1, 2], { fin: false }), frame(CONT, [], { fin: false }), frame(CONT, [3], { fin: true }));
    expectAll(input, [msg([1, 2, 3])], [msg([1, 2, 3])]);
  });

  it("answers a ping with a pong of the same payload, up to 125 bytes", () => {
    const payload = Array.from({ length: 125 }, (_, i) => i);
    expectAll(frame(PING, payload), [{ type: "ping", kind: "binary", data: payload.length }], [{ type: "pong", kind: "binary", data: 125 }]);
  });

  it("reports unsolicited pongs and answers nothing", () => {
    expectAll(frame(PONG, "x"), [{ type: "pong", kind: "binary", data: [0x78] }], []);
  });

  it("keeps a leading byte order mark in text", () => {
    expectAll(frame(TEXT, "\uFEFFhi"), [msg("\uFEFFhi")], [msg("\uFEFFhi")]);
  });
});

describe("framing: protocol errors fail with 1002", () => {
  const cases: [string, Uint8Array, string][] = [
    ["an unmasked client frame", frame(TEXT, "hi", { mask: null }), "WS_ERR_UNMASKED_FRAME"],
    ["RSV1 without an extension", frame(TEXT, "hi", { rsv: 4 }), "WS_ERR_UNEXPECTED_RSV"],
    ["RSV2", frame(TEXT, "hi", { rsv: 2 }), "WS_ERR_UNEXPECTED_RSV"],
    ["RSV3", frame(BINARY, [1], { rsv: 1 }), "WS_ERR_UNEXPECTED_RSV"],
    ["RSV bits on a ping", frame(PING, "", { rsv: 7 }), "WS_ERR_UNEXPECTED_RSV"],
    ["a fragmented ping", frame(PING, "x", { fin: false }), "WS_ERR_FRAGMENTED_CONTROL"],
    ["a fragmented pong", frame(PONG, "x", { fin: false }), "WS_ERR_FRAGMENTED_CONTROL"],
    ["a ping of 126 bytes", frame(PING, new Uint8Array(126)), "WS_ERR_CONTROL_TOO_LONG"],
    ["a close of 126 bytes", frame(CLOSE, new Uint8Array(126)), "WS_ERR_CONTROL_TOO_LONG"],
    ["a continuation with nothing to continue", frame(CONT, "x"), "WS_ERR_UNEXPECTED_CONTINUATION"],
    ["a final continuation with nothing to continue", frame(CONT, "x", { fin: true }), "WS_ERR_UNEXPECTED_CONTINUATION"],
    [
      "a new text frame inside a fragmented message",
      cat(frame(TEXT, "a", { fin: false }), frame(TEXT, "b")),
      "WS_ERR_EXPECTED_CONTINUATION",
    ],
    [
      "a new binary frame inside a fragmented message",
      cat(frame(BINARY, [1], { fin: false }), frame(BINARY, [2])),
      "WS_ERR_EXPECTED_CONTINUATION",
    ],
    [
      "a 64-bit length with the top bit set",
      frame(BINARY, [], { rawLength: new Uint8Array([127, 0x80, 0, 0, 0, 0, 0, 0, 1]) }),
      "WS_ERR_INVALID_LENGTH",
    ],
  ];
  for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    cases.push([`reserved opcode ${opcode}`, frame(opcode, "x"), "WS_ERR_INVALID_OPCODE"]);
  }
  for (const [name, input, code] of cases) {
    it(`fails on ${name}`, () => {
      expectAll(input, [error(code, 1002), closeEvent(1002, false)], [closeFrame(1002)]);
    });
  }

  it("echoes the message before the bad frame, then fails, and ignores what follows", () => {
    const input = cat(frame(TEXT, "Hello"), frame(TEXT, "Hello", { rsv: 2 }), frame(PING));
    expectAll(input, [msg("Hello"), error("WS_ERR_UNEXPECTED_RSV", 1002), closeEvent(1002, false)], [msg("Hello"), closeFrame(1002)]);
  });

  it("fails at the header: the payload of a bad frame is never awaited", () => {
    // Only the 2-byte header of a 100-byte unmasked frame arrives.
    const run = runEcho([new Uint8Array([0x82, 100])]);
    assert.deepEqual(summary(run.events), [error("WS_ERR_UNMASKED_FRAME", 1002), closeEvent(1002, false)]);
    assert.equal(run.state, 3);
  });
});

describe("framing: limits fail with 1009", () => {
  it("rejects a frame over maxFrameBytes from its header alone", () => {
    const header = frame(BINARY, new Uint8Array(1001)).subarray(0, 8);
    const run = runEcho([header.slice()], { maxFrameBytes: 1000 });
    assert.deepEqual(summary(run.events), [error("WS_ERR_FRAME_TOO_BIG", 1009), closeEvent(1009, false)]);
    assert.deepEqual(summary(run.frames), [closeFrame(1009)]);
  });

  it("accepts a frame of exactly maxFrameBytes", () => {
    expectAll(frame(BINARY, new Uint8Array(100)), [msg(100)], [msg(100)], { maxFrameBytes: 100 }, 0);
  });

  it("rejects a fragmented message whose total passes maxMessageBytes", () => {
    const input = cat(frame(TEXT, "a".repeat(60), { fin: false }), frame(CONT, "b".repeat(41), { fin: true }));
    expectAll(input, [error("WS_ERR_MESSAGE_TOO_BIG", 1009), closeEvent(1009, false)], [closeFrame(1009)], { maxMessageBytes: 100 });
  });

  it("rejects a 64-bit length far past the limit without waiting for the payload", () => {
    const header = frame(BINARY, [], { rawLength: new Uint8Array([127, 0, 0, 0, 1, 0, 0, 0, 0]) });
    expectAll(header, [error("WS_ERR_FRAME_TOO_BIG", 1009), closeEvent(1009, false)], [closeFrame(1009)]);
  });

  it("rejects more fragments than maxFragments", () => {
    const input = cat(frame(BINARY, [1], { fin: false }), frame(CONT, [2], { fin: false }), frame(CONT, [3], { fin: false }));
    expectAll(input, [error("WS_ERR_TOO_MANY_FRAGMENTS", 1009), closeEvent(1009, false)], [closeFrame(1009)], { maxFragments: 2 });
  });

  it("accepts exactly maxFragments fragments", () => {
    const input = cat(frame(BINARY, [1], { fin: false }), frame(CONT, [2], { fin: true }));
    expectAll(input, [msg([1, 2])], [msg([1, 2])], { maxFragments: 2 });
  });

  it("allows one frame more than maxFragments per minFragmentBytes of payload", () => {
    // 2 free frames, then each 4 bytes of payload pay for one more: 5 frames of 2 bytes (10 bytes) earn 2 extra.
    const pieces = (sizes: number[]) =>
      cat(...sizes.map((n, i) => frame(i === 0 ? BINARY : CONT, Array.from({ length: n }, () => i), { fin: i === sizes.length - 1 })));
    expectAll(pieces([4, 4, 4, 0]), [msg([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])], [msg([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])], {
      maxFragments: 2,
      minFragmentBytes: 4,
    });
    expectAll(pieces([1, 1, 1, 1]), [error("WS_ERR_TOO_MANY_FRAGMENTS", 1009), closeEvent(1009, false)], [closeFrame(1009)], {
      maxFragments: 2,
      minFragmentBytes: 4,
    });
    // Above maxMessageBytes, no payload can pay for a frame: maxFragments is a hard cap.
    expectAll(pieces([4, 4, 4]), [error("WS_ERR_TOO_MANY_FRAGMENTS", 1009), closeEvent(1009, false)], [closeFrame(1009)], {
      maxFragments: 2,
      minFragmentBytes: 1 << 30,
    });
  });

  it("does not count control frames against the message limits", () => {
    const input = cat(frame(TEXT, "abc", { fin: false }), frame(PING, "0123456789"), frame(CONT, "d", { fin: true }));
    expectAll(
      input,
      [{ type: "ping", kind: "binary", data: Array.from(new TextEncoder().encode("0123456789")) }, msg("abcd")],
      [{ type: "pong", kind: "binary", data: Array.from(new TextEncoder().encode("0123456789")) }, msg("abcd")],
      { maxMessageBytes: 4, maxFragments: 2 },
    );
  });
});

/** A message cut into `count` frames of `size` bytes with the default masking key, as one buffer. */
function fragmentedMessage(opcode: number, size: number, count: number, emptyFinal: boolean): Uint8Array {
  const payload = new Uint8Array(size).fill(0x2a); // "*"
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    frames.push(frame(i === 0 ? opcode : CONT, payload, { fin: !emptyFinal && i === count - 1 }));
  }
  if (emptyFinal) frames.push(frame(CONT, [], { fin: true }));
  return cat(...frames);
}

/** Feeds `input` to a default Receiver in 64 KiB chunks; returns the items, or the error and how many frames it took. */
function receiveAll(input: Uint8Array): { items: number; data?: string | Uint8Array; error?: { code: string; closeCode: number } } {
  const receiver = new Receiver();
  let items = 0;
  let data: string | Uint8Array | undefined;
  try {
    for (let i = 0; i < input.length; i += 65536) {
      receiver.push(input.slice(i, i + 65536));
      for (let item = receiver.next(); item; item = receiver.next()) {
        items++;
        if (item.type === "message") data = item.data;
      }
    }
  } catch (e) {
    const err = e as { code: string; closeCode: number };
    return { items, error: { code: err.code, closeCode: err.closeCode } };
  }
  return { items, data };
}

describe("framing: the fragment limit with the default limits", () => {
  it("accepts 4 MiB in 64-byte fragments plus an empty final frame (Autobahn 9.3.1 and 9.4.1: 65,537 frames)", () => {
    for (const opcode of [TEXT, BINARY]) {
      const result = receiveAll(fragmentedMessage(opcode, 64, 65_536, true));
      assert.equal(result.error, undefined);
      assert.equal(result.items, 1);
      assert.equal(result.data!.length, 4 * 1024 * 1024);
      if (opcode === TEXT) assert.equal(result.data, "*".repeat(4 * 1024 * 1024));
    }
  });

  it("refuses a flood of empty fragments at frame 65,537, the free count plus one", () => {
    const flood = fragmentedMessage(BINARY, 0, 70_000, false);
    const receiver = new Receiver();
    let frames = 0;
    assert.throws(
      () => {
        // One frame (6 bytes: header and mask) at a time, to count where it stops.
        for (let i = 0; i < flood.length; i += 6) {
          receiver.push(flood.slice(i, i + 6));
          frames++;
          receiver.next();
        }
      },
      { code: "WS_ERR_TOO_MANY_FRAGMENTS", closeCode: 1009 },
    );
    assert.equal(frames, 65_537);
  });

  it("refuses a flood of 1-byte fragments after 66,576 frames: memory stays bounded by the frame count", () => {
    // Frame f is refused once (f - 65,536) * 64 > f bytes, at f = 66,577.
    const flood = fragmentedMessage(TEXT, 1, 70_000, false);
    const receiver = new Receiver();
    let frames = 0;
    assert.throws(
      () => {
        for (let i = 0; i < flood.length; i += 7) {
          receiver.push(flood.slice(i, i + 7));
          frames++;
          receiver.next();
        }
      },
      { code: "WS_ERR_TOO_MANY_FRAGMENTS", closeCode: 1009 },
    );
    assert.equal(frames, 66_577);
  });

  it("closes such a flood with 1009 through the engine", () => {
    const run = runEcho([fragmentedMessage(BINARY, 1, 70_000, false)]);
    assert.deepEqual(summary(run.events), [error("WS_ERR_TOO_MANY_FRAGMENTS", 1009), closeEvent(1009, false)]);
    assert.deepEqual(summary(run.frames), [closeFrame(1009)]);
  });
});

describe("encoder", () => {
  const mask = new Uint8Array([0xde, 0xad, 0xbe, 0xef]);

  for (const size of [0, 5, 125, 126, 65535, 65536, 70_000]) {
    it(`encodes a masked client frame of ${size} bytes that a server receiver decodes, leaving the payload untouched`, () => {
      const payload = new Uint8Array(size).map((_, i) => i & 0xff);
      const copy = payload.slice();
      const chunks = encodeFrame(0x2, payload, { mask });
      assert.deepEqual(payload, copy, "the caller's bytes are not masked in place");
      const receiver = new Receiver({ role: "server" });
      for (const c of chunks) receiver.push(c.slice());
      const item = receiver.next();
      assert.equal(item?.type, "message");
      assert.deepEqual(item?.type === "message" && item.data, copy);
    });
  }

  it("encodes masked and unmasked text frames, small and large", () => {
    for (const text of ["", "héllo", "€".repeat(10_000)]) {
      for (const options of [{}, { mask }]) {
        const receiver = new Receiver({ role: "mask" in options ? "server" : "client" });
        for (const c of encodeTextFrame(text, options)) receiver.push(c.slice());
        assert.deepEqual(receiver.next(), { type: "message", data: text });
      }
    }
  });

  it("encodes text on both sides of the scratch-buffer limit, and frames never share bytes", () => {
    const receiver = new Receiver({ role: "client", maxMessageBytes: 1 << 20, maxFrameBytes: 1 << 20 });
    const texts = ["x".repeat(65_536), "y".repeat(65_537), "é".repeat(65_536), "short"];
    const frames = texts.map((t) => encodeTextFrame(t));
    for (const chunks of frames) for (const c of chunks) receiver.push(c.slice());
    for (const text of texts) assert.deepEqual(receiver.next(), { type: "message", data: text });
    // A later encode must not change an earlier frame.
    const [first] = encodeTextFrame("first");
    encodeTextFrame("second");
    assert.deepEqual(Array.from(first!.subarray(2)), Array.from(new TextEncoder().encode("first")));
  });

  it("masks at every key offset and length like the byte-by-byte definition", () => {
    const key = new Uint8Array([0x12, 0x34, 0xab, 0xff]);
    for (let offset = 0; offset < 8; offset++) {
      for (let length = 0; length < 11; length++) {
        const data = new Uint8Array(length).map((_, i) => (i * 37 + 5) & 0xff);
        const expected = data.map((b, i) => b ^ key[(offset + i) & 3]!);
        applyMask(data, key, offset);
        assert.deepEqual(data, expected, `offset ${offset}, length ${length}`);
      }
    }
  });

  it("masks word-sized runs like the byte-by-byte definition, at every alignment, offset and tail", () => {
    const key = new Uint8Array([0x9c, 0x01, 0x7e, 0xe3]);
    const backing = new Uint8Array(400);
    for (const length of [63, 64, 65, 100, 255, 256, 257, 258, 259, 300, 390]) {
      for (let start = 0; start < 4; start++) {
        for (let offset = 0; offset < 5; offset++) {
          backing.forEach((_, i) => (backing[i] = (i * 29 + 7) & 0xff));
          const data = backing.subarray(start, start + length);
          const expected = data.map((b, i) => b ^ key[(offset + i) & 3]!);
          const around = [backing[start - 1], backing[start + length]];
          applyMask(data, key, offset);
          assert.deepEqual(data, expected, `length ${length}, byteOffset ${start}, key offset ${offset}`);
          assert.deepEqual([backing[start - 1], backing[start + length]], around, "bytes outside untouched");
        }
      }
    }
  });

  it("sets FIN and RSV1 as asked", () => {
    const [frame0] = encodeFrame(0x1, new Uint8Array([0x61]), { fin: false, rsv1: true });
    assert.equal(frame0![0], 0x41);
  });

  it("returns a large unmasked payload as its own chunk, uncopied", () => {
    const payload = new Uint8Array(100_000);
    const chunks = encodeFrame(0x2, payload);
    assert.equal(chunks.length, 2);
    assert.equal(chunks[1], payload);
  });

  it("refuses a mask that is not 4 bytes", () => {
    assert.throws(() => encodeFrame(0x2, new Uint8Array(1), { mask: new Uint8Array(3) }), UsageError);
  });
});
