// The permessage-deflate codec: byte-exact against zlib and ws's own
// PerMessageDeflate both ways, ordering, the size cap on inflation, close(),
// and the zlib limiter.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { ProtocolError, UsageError } from "../../core/errors.ts";
import { DeflateCodec, type DeflateParams, ZlibLimiter } from "../../runtimes/_deflate_codec.ts";

/** The part of ws's `PerMessageDeflate` the tests drive (ws's own class, as its client). */
interface WsDeflate {
  accept(offers: Record<string, (string | number | boolean)[]>[]): unknown;
  compress(data: Uint8Array, fin: boolean, callback: (error: Error | null, out?: Uint8Array) => void): void;
  decompress(data: Uint8Array, fin: boolean, callback: (error: Error | null, out?: Uint8Array) => void): void;
  cleanup(): void;
}

// By path: ws's package exports hide lib/, and Bun resolves "ws" to its own built-in.
const PerMessageDeflate = createRequire(import.meta.url)(
  fileURLToPath(new URL("../../node_modules/ws/lib/permessage-deflate.js", import.meta.url)),
) as new (
  options: { isServer: boolean },
) => WsDeflate;

const TRAILER = new Uint8Array([0x00, 0x00, 0xff, 0xff]);
const WINDOWS = [9, 10, 11, 12, 13, 14, 15];
const encoder = new TextEncoder();

function params(overrides: Partial<DeflateParams> = {}): DeflateParams {
  return {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
    ...overrides,
  };
}

/** A ws client that agreed on the same parameters as our server-side codec. */
function wsClient(p: DeflateParams): WsDeflate {
  const client = new PerMessageDeflate({ isServer: false });
  const response: Record<string, (number | boolean)[]> = {
    server_max_window_bits: [p.serverMaxWindowBits],
    client_max_window_bits: [p.clientMaxWindowBits],
  };
  if (p.serverNoContextTakeover) response.server_no_context_takeover = [true];
  if (p.clientNoContextTakeover) response.client_no_context_takeover = [true];
  client.accept([response]);
  return client;
}

/** Plain zlib as the peer: one whole message, the trailer appended back, no final block expected. */
function zlibInflate(packed: Uint8Array, windowBits = 15): Uint8Array {
  return inflateRawSync(concat(packed, TRAILER), { windowBits, finishFlush: constants.Z_SYNC_FLUSH });
}

function wsCompress(client: WsDeflate, data: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => client.compress(data, true, (e, out) => e ? reject(e) : resolve(out!)));
}

function wsDecompress(client: WsDeflate, data: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => client.decompress(data, true, (e, out) => e ? reject(e) : resolve(out!)));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Byte equality without a 1 MiB diff on failure. */
function sameBytes(actual: Uint8Array, expected: Uint8Array, message: string): void {
  assert.equal(actual.length, expected.length, `${message}: length`);
  assert.ok(Buffer.from(actual.buffer, actual.byteOffset, actual.length).equals(expected), `${message}: bytes`);
}

/** A mixed sequence: JSON that repeats across messages, random bytes, text. */
function messages(count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 3 === 0) out.push(encoder.encode(JSON.stringify({ type: "chat", room: "lobby", n: i, text: "hello ".repeat(i % 7 + 1) })));
    else if (i % 3 === 1) out.push(new Uint8Array(randomBytes(1 + (i * 37) % 700)));
    else out.push(encoder.encode(`message ${i}: ${"abcdefghij".repeat(50)}`));
  }
  return out;
}

const tooBig = (e: unknown) => e instanceof ProtocolError && e.code === "WS_ERR_MESSAGE_TOO_BIG" && e.closeCode === 1009;
const invalid = (e: unknown) => e instanceof ProtocolError && e.code === "WS_ERR_INFLATE" && e.closeCode === 1007;
const closed = (e: unknown) => e instanceof UsageError && e.code === "ERR_CODEC_CLOSED";

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("DeflateCodec: compress", () => {
  for (const bits of WINDOWS) {
    it(`without context takeover, each message inflates alone with zlib (window ${bits})`, async () => {
      const codec = new DeflateCodec(params({ serverNoContextTakeover: true, serverMaxWindowBits: bits }));
      for (const message of messages(12)) {
        const out = await codec.compress(message);
        assert.notDeepEqual([...out.subarray(-4)], [...TRAILER], "the trailer is stripped");
        sameBytes(zlibInflate(out, bits), message, "zlib inflates it");
        assert.equal(codec.streams.deflate, false, "the deflater is freed after each message");
      }
      codec.close();
    });

    it(`with context takeover, ws inflates the sequence in order (window ${bits})`, async () => {
      const p = params({ serverMaxWindowBits: bits });
      const codec = new DeflateCodec(p);
      const client = wsClient(p);
      for (const message of messages(30)) {
        sameBytes(await wsDecompress(client, await codec.compress(message)), message, "ws inflates it");
      }
      assert.equal(codec.streams.deflate, true, "the deflater is kept between messages");
      codec.close();
      client.cleanup();
    });
  }

  it("with context takeover a repeated message shrinks; without, it does not", async () => {
    const message = encoder.encode(JSON.stringify({ type: "state", items: Array.from({ length: 40 }, (_, i) => ({ id: i, name: `item-${i * 7919}` })) }));
    const takeover = new DeflateCodec(params());
    const first = await takeover.compress(message);
    const second = await takeover.compress(message);
    assert.ok(second.length * 10 < first.length, `${second.length} bytes after ${first.length}: the second refers back to the first`);
    const reference = wsClient(params());
    sameBytes(await wsDecompress(reference, first), message, "first");
    sameBytes(await wsDecompress(reference, second), message, "second, through the shared window");
    reference.cleanup();

    const alone = new DeflateCodec(params({ serverNoContextTakeover: true }));
    const a = await alone.compress(message);
    const b = await alone.compress(message);
    assert.equal(b.length, a.length);
    sameBytes(b, a, "without takeover each message compresses the same");
    takeover.close();
    alone.close();
  });

  it("compresses an empty message to the single byte 00 (RFC 7692 §7.2.3.6), and 1 byte", async () => {
    const codec = new DeflateCodec(params({ serverNoContextTakeover: true }));
    assert.deepEqual([...await codec.compress(new Uint8Array(0))], [0x00]);
    const one = await codec.compress(new Uint8Array([0x61]));
    sameBytes(zlibInflate(one), new Uint8Array([0x61]), "one byte");
    codec.close();
  });

  it("compresses 1 MiB of random and of repetitive bytes, which ws and zlib inflate", async () => {
    const random = new Uint8Array(randomBytes(1 << 20));
    const repetitive = encoder.encode("0123456789abcdef".repeat(1 << 16));
    const p = params();
    const codec = new DeflateCodec(p);
    const client = wsClient(p);
    const packedRandom = await codec.compress(random);
    const packedRepetitive = await codec.compress(repetitive);
    assert.ok(packedRepetitive.length < 10_000, `repetitive: ${packedRepetitive.length} bytes`);
    sameBytes(await wsDecompress(client, packedRandom), random, "random");
    sameBytes(await wsDecompress(client, packedRepetitive), repetitive, "repetitive");
    sameBytes(zlibInflate(packedRandom), random, "the first message alone, with zlib");
    codec.close();
    client.cleanup();
  });

  it("resolves concurrent calls in call order, each with its own content", async () => {
    const p = params();
    const codec = new DeflateCodec(p);
    const client = wsClient(p);
    const inputs = messages(100);
    const settled: number[] = [];
    const outputs = await Promise.all(inputs.map((m, i) => codec.compress(m).then((out) => (settled.push(i), out))));
    assert.deepEqual(settled, inputs.map((_, i) => i), "settled in call order");
    for (const [i, out] of outputs.entries()) sameBytes(await wsDecompress(client, out), inputs[i]!, `message ${i}`);
    codec.close();
    client.cleanup();
  });
});

describe("DeflateCodec: decompress", () => {
  for (const bits of WINDOWS) {
    for (const noTakeover of [false, true]) {
      it(`inflates what ws compresses (window ${bits}, ${noTakeover ? "no " : ""}context takeover)`, async () => {
        const p = params({ clientMaxWindowBits: bits, clientNoContextTakeover: noTakeover });
        const client = wsClient(p);
        const codec = new DeflateCodec(p);
        const repeated = encoder.encode(`{"type":"tick","payload":"${"xyz0123456789".repeat(12)}"}`);
        const sizes: number[] = [];
        for (const message of [...messages(20), repeated, repeated]) {
          const packed = await wsCompress(client, message);
          sizes.push(packed.length);
          sameBytes(await codec.decompress(packed, 1 << 20), message, "inflated");
          assert.equal(codec.streams.inflate, !noTakeover, "the inflater is kept only with context takeover");
        }
        const [first, second] = sizes.slice(-2) as [number, number];
        if (noTakeover) assert.equal(second, first, "each message stands alone");
        else assert.ok(second * 4 < first, `${second} bytes after ${first}: ws referred back, and we followed`);
        codec.close();
        client.cleanup();
      });
    }
  }

  it("inflates an empty message, 1 byte, and 1 MiB random and repetitive from ws", async () => {
    const p = params();
    const client = wsClient(p);
    const codec = new DeflateCodec(p);
    sameBytes(await codec.decompress(new Uint8Array([0x00]), 0), new Uint8Array(0), "the single byte 00");
    for (const message of [
      new Uint8Array(0),
      new Uint8Array([0xff]),
      new Uint8Array(randomBytes(1 << 20)),
      encoder.encode("abc".repeat(349_526)).subarray(0, 1 << 20),
    ]) {
      sameBytes(await codec.decompress(await wsCompress(client, message), 1 << 20), message, `${message.length} bytes`);
    }
    codec.close();
    client.cleanup();
  });

  it("resolves concurrent calls in call order", async () => {
    const p = params();
    const client = wsClient(p);
    const inputs = messages(60);
    const packed: Uint8Array[] = [];
    for (const m of inputs) packed.push(await wsCompress(client, m));
    const codec = new DeflateCodec(p);
    const settled: number[] = [];
    const outputs = await Promise.all(packed.map((d, i) => codec.decompress(d, 1 << 20).then((out) => (settled.push(i), out))));
    assert.deepEqual(settled, inputs.map((_, i) => i));
    for (const [i, out] of outputs.entries()) sameBytes(out, inputs[i]!, `message ${i}`);
    codec.close();
    client.cleanup();
  });

  it("stops a 100 MB bomb near maxBytes with 1009, without inflating the rest", async () => {
    const bomb = deflateRawSync(new Uint8Array(100 * 1024 * 1024));
    assert.ok(bomb.length < 200_000, `the bomb is ${bomb.length} bytes`);
    const codec = new DeflateCodec(params({ clientNoContextTakeover: true }));
    const maxBytes = 1 << 20;
    await assert.rejects(codec.decompress(bomb, maxBytes), tooBig);
    assert.ok(codec.inflatedBytes > maxBytes, `${codec.inflatedBytes} bytes inflated`);
    assert.ok(codec.inflatedBytes <= maxBytes + 16 * 1024, `${codec.inflatedBytes} bytes: at most one chunk past the limit`);
    assert.equal(codec.streams.inflate, false, "the inflater is freed");
    const next = encoder.encode("after");
    sameBytes(await codec.decompress(deflateRawSync(next), 100), next, "a fresh inflater takes the next message");
    codec.close();
  });

  it("takes a message of exactly maxBytes and refuses one byte more", async () => {
    const message = new Uint8Array(randomBytes(50_000));
    const packed = deflateRawSync(message);
    const codec = new DeflateCodec(params({ clientNoContextTakeover: true }));
    sameBytes(await codec.decompress(packed, message.length), message, "exactly at the limit");
    await assert.rejects(codec.decompress(packed, message.length - 1), tooBig);
    assert.equal(codec.inflatedBytes, message.length);
    codec.close();
  });

  it("rejects corrupt data with 1007, and the codec still closes and works", async () => {
    const codec = new DeflateCodec(params());
    await assert.rejects(codec.decompress(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x01]), 1 << 20), invalid);
    assert.equal(codec.streams.inflate, false, "the broken inflater is freed");
    const next = encoder.encode("still usable");
    sameBytes(await codec.decompress(deflateRawSync(next), 100), next, "a fresh inflater");
    codec.close();
    codec.close();
  });

  it("rejects with 1007 a client that keeps its context after agreeing not to", async () => {
    // The second message refers back into the first: a fresh inflater has no such bytes.
    const message = encoder.encode("the same words again and again, ".repeat(8));
    const client = wsClient(params());
    await wsCompress(client, message);
    const second = await wsCompress(client, message);
    const codec = new DeflateCodec(params({ clientNoContextTakeover: true }));
    await assert.rejects(codec.decompress(second, 1 << 20), invalid);
    codec.close();
    client.cleanup();
  });

  it("throws a RangeError for a maxBytes that is not a size", () => {
    const codec = new DeflateCodec(params());
    assert.throws(() => codec.decompress(new Uint8Array(1), -1), RangeError);
    assert.throws(() => codec.decompress(new Uint8Array(1), Number.NaN), RangeError);
    codec.close();
  });
});

describe("DeflateCodec: lifecycle", () => {
  it("makes no zlib stream before the first call", () => {
    const codec = new DeflateCodec(params());
    assert.deepEqual(codec.streams, { deflate: false, inflate: false });
    codec.close();
  });

  it("refuses window bits outside 9–15 and bad levels with a RangeError", () => {
    for (const bad of [8, 16, 12.5, Number.NaN]) {
      assert.throws(() => new DeflateCodec(params({ serverMaxWindowBits: bad })), RangeError, `server ${bad}`);
      assert.throws(() => new DeflateCodec(params({ clientMaxWindowBits: bad })), RangeError, `client ${bad}`);
    }
    assert.throws(() => new DeflateCodec(params(), { level: 10 }), RangeError);
    assert.throws(() => new DeflateCodec(params(), { memLevel: 0 }), RangeError);
  });

  it("close() rejects the calls under way and waiting, and later ones; it is idempotent", async () => {
    const p = params();
    const codec = new DeflateCodec(p);
    const client = wsClient(p);
    const packed = await wsCompress(client, encoder.encode("queued"));
    const calls = [
      codec.compress(new Uint8Array(randomBytes(1 << 20))),
      codec.compress(encoder.encode("waiting")),
      codec.decompress(packed, 1 << 20),
      codec.decompress(packed, 1 << 20),
    ];
    codec.close();
    const results = await Promise.allSettled(calls);
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, "rejected", `call ${i}`);
      assert.ok(closed((r as PromiseRejectedResult).reason), `call ${i}: ${(r as PromiseRejectedResult).reason}`);
    }
    await assert.rejects(codec.compress(encoder.encode("later")), closed);
    await assert.rejects(codec.decompress(packed, 100), closed);
    codec.close();
    assert.deepEqual(codec.streams, { deflate: false, inflate: false });
    client.cleanup();
  });

  it("close() during a call frees the limiter slot", async () => {
    const limiter = new ZlibLimiter(1);
    const codec = new DeflateCodec(params(), { limiter });
    const pending = codec.compress(new Uint8Array(randomBytes(4 << 20)));
    assert.equal(limiter.active, 1, "the call is under way");
    codec.close();
    await assert.rejects(pending, closed);
    assert.equal(limiter.active, 0);
    const other = new DeflateCodec(params({ serverNoContextTakeover: true }), { limiter });
    const out = await other.compress(encoder.encode("next"));
    sameBytes(zlibInflate(out), encoder.encode("next"), "the next codec runs");
    other.close();
  });

  it("shares its limiter: with concurrency 1, one zlib call runs across codecs", async () => {
    const limiter = new ZlibLimiter(1);
    const a = new DeflateCodec(params(), { limiter });
    const b = new DeflateCodec(params(), { limiter });
    const calls = [a, b, a, b].map((codec) => codec.compress(new Uint8Array(randomBytes(100_000))));
    assert.equal(limiter.active, 1);
    assert.equal(limiter.queued, 1, "each codec queues its next call itself: one head per codec waits here");
    await Promise.all(calls);
    assert.equal(limiter.active, 0);
    assert.equal(limiter.queued, 0);
    a.close();
    b.close();
  });
});

describe("ZlibLimiter", () => {
  it("runs at most `concurrency` jobs, in FIFO order", async () => {
    const limiter = new ZlibLimiter(2);
    const gates = Array.from({ length: 6 }, () => deferred());
    const started: number[] = [];
    let peak = 0;
    const runs = gates.map((gate, i) =>
      limiter.run(async () => {
        started.push(i);
        peak = Math.max(peak, limiter.active);
        await gate.promise;
        return i;
      })
    );
    assert.deepEqual(started, [0, 1]);
    assert.equal(limiter.active, 2);
    assert.equal(limiter.queued, 4);
    gates[1]!.resolve();
    await runs[1];
    assert.deepEqual(started, [0, 1, 2], "the first one queued takes the free slot");
    for (const gate of gates) gate.resolve();
    assert.deepEqual(await Promise.all(runs), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5]);
    assert.equal(peak, 2);
    assert.equal(limiter.active, 0);
  });

  it("frees the slot of a job that rejects or throws", async () => {
    const limiter = new ZlibLimiter(1);
    const boom = new Error("boom");
    const rejecting = limiter.run(() => Promise.reject(boom));
    const throwing = limiter.run((): Promise<number> => {
      throw boom;
    });
    const after = limiter.run(() => Promise.resolve("ran"));
    await assert.rejects(rejecting, (e) => e === boom);
    await assert.rejects(throwing, (e) => e === boom);
    assert.equal(await after, "ran");
    assert.equal(limiter.active, 0);
    assert.equal(limiter.queued, 0);
  });

  it("refuses a concurrency that is not a positive integer", () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => new ZlibLimiter(bad), RangeError, String(bad));
    assert.equal(new ZlibLimiter(Infinity).active, 0);
  });
});
