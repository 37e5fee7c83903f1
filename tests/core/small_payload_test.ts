// Small payloads: a whole frame of up to 128 bytes in one chunk is copied out
// of it, unmasked on the way (small text decoded from a shared buffer), and
// short ASCII text is framed without the scratch buffer. The same results as
// the general path, whatever the split, and the same faults.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProtocolError } from "../../core/errors.ts";
import { encodeFrame, encodeTextFrame, Opcode } from "../../core/frame.ts";
import { Receiver } from "../../core/receiver.ts";
import { cat, frame, splits } from "./_util.ts";

const TEXT = 0x1, BINARY = 0x2, PING = 0x9;
const SIZES = [0, 1, 2, 3, 4, 5, 7, 31, 32, 33, 125, 126, 127, 128, 129, 130, 200];
const encoder = new TextEncoder();

function payload(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7 + 1) & 0xff;
  return out;
}

/** Feeds `chunks` (copies: the receiver unmasks in place) and returns every item. */
function receiveAll(chunks: Uint8Array[], options: ConstructorParameters<typeof Receiver>[0] = {}): unknown[] {
  const receiver = new Receiver(options);
  const items: unknown[] = [];
  for (const chunk of chunks) {
    receiver.push(chunk.slice());
    for (let item = receiver.next(); item !== undefined; item = receiver.next()) items.push(item);
  }
  return items;
}

function failure(chunks: Uint8Array[]): ProtocolError | undefined {
  try {
    receiveAll(chunks);
  } catch (err) {
    if (err instanceof ProtocolError) return err;
    throw err;
  }
  return undefined;
}

describe("small payloads, copied out of the read", () => {
  it("binary messages of every small size, after another frame, whole and split", () => {
    for (const n of SIZES) {
      const a = payload(n, 1), b = payload(n, 2);
      // A second frame behind the first: its payload starts mid-chunk.
      const input = cat(frame(BINARY, a, { mask: [0x01, 0x82, 0x43, 0xf4] }), frame(BINARY, b));
      const want = [{ type: "message", data: a }, { type: "message", data: b }];
      for (const chunks of splits(input, 64)) assert.deepEqual(receiveAll(chunks), want, `size ${n}, split ${chunks.map((c) => c.length)}`);
    }
  });

  it("a binary message is not a view of the read: later bytes do not change it", () => {
    const receiver = new Receiver();
    const chunk = cat(frame(BINARY, [1, 2, 3]), frame(BINARY, [4, 5, 6]));
    receiver.push(chunk);
    const first = receiver.next() as { data: Uint8Array };
    chunk.fill(0);
    assert.deepEqual([...first.data], [1, 2, 3]);
  });

  it("unmasked frames (the client's receiver) copy as they are", () => {
    const data = payload(40, 3);
    assert.deepEqual(receiveAll([frame(BINARY, data, { mask: null })], { role: "client" }), [{ type: "message", data }]);
  });

  it("text of every small size, ASCII and not, several in one chunk, whole and split", () => {
    for (const n of SIZES) {
      const ascii = "x".repeat(n);
      // Whole code points (1 to 4 bytes each), up to about n bytes.
      let mixed = "";
      for (const c of "é€😀a".repeat(n)) {
        if (encoder.encode(mixed + c).length > n) break;
        mixed += c;
      }
      const input = cat(frame(TEXT, ascii), frame(TEXT, mixed), frame(TEXT, ascii.toUpperCase()));
      const want = [ascii, mixed, ascii.toUpperCase()].map((data) => ({ type: "message", data }));
      for (const chunks of splits(input, 48)) assert.deepEqual(receiveAll(chunks), want, `size ${n}`);
    }
  });

  it("text as bytes: small payloads validated and copied", () => {
    const text = "héllo, wörld";
    const items = receiveAll([cat(frame(TEXT, text), frame(TEXT, "ok"))], { textAs: "bytes" });
    assert.deepEqual(items, [{ type: "message", data: encoder.encode(text), text: true }, { type: "message", data: encoder.encode("ok"), text: true }]);
  });

  it("invalid UTF-8 in a small text frame fails with 1007, whole and split", () => {
    const bad = [[0xff], [0xc0, 0x80], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x61, 0x62, 0xf0, 0x9f, 0x98]];
    for (const bytes of bad) {
      for (const pad of [0, 1, 60, 124]) {
        const body = cat(new Uint8Array(pad).fill(0x41), new Uint8Array(bytes));
        if (body.length > 125) continue;
        const input = cat(frame(TEXT, "fine"), frame(TEXT, body));
        for (const chunks of splits(input, 16)) {
          const err = failure(chunks);
          assert.ok(err, `${bytes} after ${pad}`);
          assert.equal(err.closeCode, 1007);
          assert.equal(err.code, "WS_ERR_INVALID_UTF8");
        }
      }
    }
  });

  it("a failed small decode leaves nothing behind for the next receiver", () => {
    assert.ok(failure([frame(TEXT, [0x41, 0xff])]));
    assert.deepEqual(receiveAll([frame(TEXT, "AB")]), [{ type: "message", data: "AB" }]);
  });

  it("pings of every size up to 125, whole and split", () => {
    for (const n of [0, 1, 5, 64, 125]) {
      const data = payload(n, 4);
      for (const chunks of splits(frame(PING, data), 16)) assert.deepEqual(receiveAll(chunks), [{ type: "ping", data }]);
    }
  });
});

describe("short ASCII text frames", () => {
  const general = (text: string, options: { fin?: boolean; rsv1?: boolean } = {}) => encodeFrame(Opcode.Text, encoder.encode(text), options);

  it("the same bytes as the general encoder, every length around the limit", () => {
    for (let n = 0; n <= 130; n++) {
      const text = "abcdefghij".repeat(13).slice(0, n);
      assert.deepEqual(encodeTextFrame(text), general(text), `length ${n}`);
    }
  });

  it("non-ASCII at any position falls back to the general encoding", () => {
    for (const odd of ["é", "€", "😀", "\u0080", "\u07ff", "\ud800", "\udc00x"]) {
      for (const at of [0, 1, 30, 120]) {
        const text = "a".repeat(at) + odd + "b".repeat(3);
        assert.deepEqual(encodeTextFrame(text), general(text), `${JSON.stringify(odd)} at ${at}`);
      }
    }
  });

  it("keeps fin and rsv1, and masks as before", () => {
    assert.deepEqual(encodeTextFrame("hi", { fin: false }), general("hi", { fin: false }));
    assert.deepEqual(encodeTextFrame("hi", { rsv1: true }), general("hi", { rsv1: true }));
    const mask = new Uint8Array([1, 2, 3, 4]);
    assert.deepEqual(encodeTextFrame("hi", { mask }), encodeFrame(Opcode.Text, encoder.encode("hi"), { mask }));
  });

  it("returns a frame of its own each time", () => {
    const [a] = encodeTextFrame("one");
    const [b] = encodeTextFrame("two");
    assert.notEqual(a!.buffer, b!.buffer);
    assert.deepEqual([...a!.subarray(2)], [...encoder.encode("one")]);
  });
});
