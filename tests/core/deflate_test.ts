// permessage-deflate in the core: negotiation of the client's offers (RFC
// 7692 §5, §7.1) and RSV1 in the engine once it is negotiated (compressed
// messages come out as `compressed`, still compressed; RSV1 on a control or
// continuation frame, or without negotiation, is a protocol error).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deflateRawSync } from "node:zlib";
import { type DeflateParams, negotiateDeflate } from "../../core/deflate.ts";
import { Engine, type EngineEvent } from "../../core/engine.ts";
import { ProtocolError, UsageError } from "../../core/errors.ts";
import { parseExtensions } from "../../core/handshake_offers.ts";
import { acceptedEngine, bytes, cat, closeBody, decodeServerFrames, frame, splits } from "./_util.ts";

function negotiate(header: string, options = {}): { response: string; params: DeflateParams } | undefined {
  return negotiateDeflate(parseExtensions(header), options);
}

const DEFAULTS: DeflateParams = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};

describe("permessage-deflate negotiation", () => {
  it("accepts a plain offer with the defaults, and no offer gives no agreement", () => {
    assert.deepEqual(negotiate("permessage-deflate"), { response: "permessage-deflate", params: DEFAULTS });
    assert.equal(negotiate(""), undefined);
    assert.equal(negotiate("x-webkit-deflate-frame"), undefined);
    assert.deepEqual(negotiate("PerMessage-Deflate")?.params, DEFAULTS);
  });

  it("accepts what browsers offer: a bare client_max_window_bits", () => {
    const agreement = negotiate("permessage-deflate; client_max_window_bits");
    // Bare: the client supports the parameter; with no limit of ours, nothing to answer.
    assert.deepEqual(agreement, { response: "permessage-deflate", params: DEFAULTS });
    assert.deepEqual(negotiate("permessage-deflate; client_max_window_bits", { clientMaxWindowBits: 10 }), {
      response: "permessage-deflate; client_max_window_bits=10",
      params: { ...DEFAULTS, clientMaxWindowBits: 10 },
    });
  });

  it("honours each of the four parameters", () => {
    assert.deepEqual(negotiate("permessage-deflate; server_no_context_takeover"), {
      response: "permessage-deflate; server_no_context_takeover",
      params: { ...DEFAULTS, serverNoContextTakeover: true },
    });
    assert.deepEqual(negotiate("permessage-deflate; client_no_context_takeover"), {
      response: "permessage-deflate; client_no_context_takeover",
      params: { ...DEFAULTS, clientNoContextTakeover: true },
    });
    for (let bits = 9; bits <= 15; bits++) {
      assert.deepEqual(negotiate(`permessage-deflate; server_max_window_bits=${bits}`), {
        response: `permessage-deflate; server_max_window_bits=${bits}`,
        params: { ...DEFAULTS, serverMaxWindowBits: bits },
      });
      assert.deepEqual(negotiate(`permessage-deflate; client_max_window_bits=${bits}`), {
        response: `permessage-deflate; client_max_window_bits=${bits}`,
        params: { ...DEFAULTS, clientMaxWindowBits: bits },
      });
      assert.equal(negotiate(`permessage-deflate; server_max_window_bits="${bits}"`)?.params.serverMaxWindowBits, bits);
    }
  });

  it("applies the server's own limits: the smaller window wins, no-context-takeover is announced", () => {
    assert.deepEqual(negotiate("permessage-deflate; server_max_window_bits=12", { serverMaxWindowBits: 10 }), {
      response: "permessage-deflate; server_max_window_bits=10",
      params: { ...DEFAULTS, serverMaxWindowBits: 10 },
    });
    assert.deepEqual(negotiate("permessage-deflate; server_max_window_bits=9", { serverMaxWindowBits: 10 })?.params.serverMaxWindowBits, 9);
    assert.deepEqual(
      negotiate("permessage-deflate", { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 11 }),
      {
        response: "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11",
        params: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 11, clientMaxWindowBits: 15 },
      },
    );
    assert.deepEqual(negotiate("permessage-deflate; client_max_window_bits=12", { clientMaxWindowBits: 10 })?.params.clientMaxWindowBits, 10);
    assert.deepEqual(negotiate("permessage-deflate; client_max_window_bits=9", { clientMaxWindowBits: 10 })?.params.clientMaxWindowBits, 9);
  });

  it("declines what it cannot honour, and takes the next offer", () => {
    // zlib's raw deflate cannot hold a window of 8 bits either way.
    assert.equal(negotiate("permessage-deflate; server_max_window_bits=8"), undefined);
    assert.equal(negotiate("permessage-deflate; client_max_window_bits=8"), undefined);
    assert.deepEqual(
      negotiate("permessage-deflate; client_max_window_bits=8, permessage-deflate; client_max_window_bits=9"),
      { response: "permessage-deflate; client_max_window_bits=9", params: { ...DEFAULTS, clientMaxWindowBits: 9 } },
    );
    assert.deepEqual(
      negotiate("permessage-deflate; server_max_window_bits=8, permessage-deflate; server_no_context_takeover, permessage-deflate"),
      { response: "permessage-deflate; server_no_context_takeover", params: { ...DEFAULTS, serverNoContextTakeover: true } },
    );
    // A limit on the client's window needs a client that supports it.
    assert.equal(negotiate("permessage-deflate", { clientMaxWindowBits: 10 }), undefined);
    assert.equal(
      negotiate("permessage-deflate, permessage-deflate; client_max_window_bits", { clientMaxWindowBits: 10 })?.response,
      "permessage-deflate; client_max_window_bits=10",
    );
  });

  it("declines malformed offers: unknown parameters, bad values, leading zeros, values on flags", () => {
    for (
      const bad of [
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=09",
        "permessage-deflate; server_no_context_takeover=1",
        'permessage-deflate; client_no_context_takeover="x"',
      ]
    ) {
      assert.equal(negotiate(bad), undefined, bad);
      // ...and the next offer is still considered.
      assert.equal(negotiate(`${bad}, permessage-deflate`)?.response, "permessage-deflate", bad);
    }
    // A parameter repeated in one offer: that offer is declined (RFC 7692 §5.1), the next one taken.
    assert.equal(negotiate("permessage-deflate; server_no_context_takeover; server_no_context_takeover"), undefined);
    assert.equal(
      negotiate("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10, permessage-deflate")?.response,
      "permessage-deflate",
    );
  });

  it("refuses bad server options with a typed error", () => {
    for (const options of [{ serverMaxWindowBits: 8 }, { clientMaxWindowBits: 16 }, { serverMaxWindowBits: 9.5 }, { serverNoContextTakeover: "yes" }]) {
      assert.throws(() => negotiateDeflate([], options as never), (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_OPTION");
    }
  });
});

/** An engine that accepted permessage-deflate (or not), with its first events drained. */
function engineWith(deflate: DeflateParams | undefined): Engine {
  const { engine, response } = acceptedEngine(
    { maxMessageBytes: 1 << 20 },
    deflate === undefined ? {} : { extensions: "permessage-deflate", deflate },
    { "sec-websocket-extensions": "permessage-deflate; client_max_window_bits" },
  );
  if (deflate !== undefined) assert.match(response, /\r\nSec-WebSocket-Extensions: permessage-deflate\r\n/);
  else assert.doesNotMatch(response, /Sec-WebSocket-Extensions/);
  return engine;
}

function events(engine: Engine, chunks: Uint8Array[]): EngineEvent[] {
  const out: EngineEvent[] = [];
  for (const chunk of chunks) {
    engine.receive(chunk.slice());
    for (let e = engine.nextEvent(); e; e = engine.nextEvent()) out.push(e);
  }
  return out;
}

/** A raw deflate payload as permessage-deflate sends it: sync-flushed, 00 00 ff ff removed. */
function squeeze(data: string | Uint8Array): Uint8Array {
  const out = deflateRawSync(bytes(data), { finishFlush: 2 /* Z_SYNC_FLUSH */ });
  assert.deepEqual([...out.subarray(-4)], [0, 0, 0xff, 0xff]);
  return new Uint8Array(out.subarray(0, -4));
}

describe("engine: RSV1 with permessage-deflate", () => {
  it("reports a compressed text or binary message, whole, however the bytes are split", () => {
    const text = squeeze("hello ".repeat(50));
    const binary = squeeze(new Uint8Array(300).fill(7));
    const input = cat(frame(0x1, text, { rsv: 4 }), frame(0x2, binary, { rsv: 4 }), frame(0x1, "plain"));
    for (const chunks of splits(input, 64)) {
      const got = events(engineWith(DEFAULTS), chunks);
      assert.deepEqual(got, [
        { type: "compressed", data: text, binary: false },
        { type: "compressed", data: binary, binary: true },
        { type: "message", data: "plain" },
      ]);
    }
  });

  it("accepts RSV1 on frames that arrived with the request, before the deflate agreement", () => {
    const text = squeeze("early ".repeat(20));
    const request = "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
      "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
    const engine = new Engine();
    engine.receive(cat(bytes(request), frame(0x1, text, { rsv: 4 })));
    assert.deepEqual(engine.nextEvent()?.type, "upgrade");
    engine.accept({ extensions: "permessage-deflate", deflate: DEFAULTS });
    const got: EngineEvent[] = [];
    for (let e = engine.nextEvent(); e; e = engine.nextEvent()) got.push(e);
    assert.deepEqual(got, [{ type: "open", protocol: "", extensions: "permessage-deflate" }, { type: "compressed", data: text, binary: false }]);
  });

  it("joins a fragmented compressed message: RSV1 on the first frame only", () => {
    const payload = squeeze("fragmented ".repeat(40));
    const a = payload.subarray(0, 10), b = payload.subarray(10, 20), c = payload.subarray(20);
    const input = cat(frame(0x1, a, { fin: false, rsv: 4 }), frame(0x9, "mid"), frame(0x0, b, { fin: false }), frame(0x0, c));
    for (const chunks of splits(input, 64)) {
      const got = events(engineWith(DEFAULTS), chunks);
      assert.deepEqual(got.map((e) => e.type), ["ping", "compressed"]);
      assert.deepEqual((got[1] as { data: Uint8Array }).data, payload);
    }
  });

  it("does not check UTF-8 before inflating: compressed bytes are not text", () => {
    // The compressed form of a valid string is arbitrary bytes, invalid as UTF-8.
    const payload = new Uint8Array([0xff, 0xfe, 0x80, 0x00]);
    const got = events(engineWith(DEFAULTS), [frame(0x1, payload, { rsv: 4 })]);
    assert.deepEqual(got, [{ type: "compressed", data: payload, binary: false }]);
  });

  for (
    const [name, input] of [
      ["RSV1 without permessage-deflate", null],
      ["RSV1 on a ping", frame(0x9, "x", { rsv: 4 })],
      ["RSV1 on a close", frame(0x8, closeBody(1000), { rsv: 4 })],
      ["RSV1 on a continuation", cat(frame(0x1, squeeze("ab"), { fin: false, rsv: 4 }), frame(0x0, [], { rsv: 4 }))],
      ["RSV2", frame(0x1, "x", { rsv: 2 })],
      ["RSV3", frame(0x1, "x", { rsv: 1 })],
    ] as const
  ) {
    it(`fails the connection with 1002 on ${name}`, () => {
      const engine = engineWith(input === null ? undefined : DEFAULTS);
      const got = events(engine, [input ?? frame(0x1, squeeze("ab"), { rsv: 4 })]);
      assert.deepEqual(got.map((e) => e.type), ["error", "close"]);
      assert.equal((got[1] as { code: number }).code, 1002);
      assert.deepEqual(decodeServerFrames(cat(...engine.takeOutput())), [{ type: "close", code: 1002, reason: "" }]);
    });
  }

  it("applies the message limit to the compressed bytes too", () => {
    const engine = engineWith(DEFAULTS);
    const big = new Uint8Array((1 << 20) + 1);
    const got = events(engine, [frame(0x2, big, { rsv: 4 })]);
    assert.deepEqual(got.map((e) => e.type), ["error", "close"]);
    assert.equal((got[1] as { code: number }).code, 1009);
  });

  it("sends a compressed message as one RSV1 frame, only once negotiated", () => {
    const payload = squeeze("abc");
    const engine = engineWith(DEFAULTS);
    engine.sendCompressed(payload, false);
    const out = cat(...engine.takeOutput());
    assert.equal(out[0], 0x80 | 0x40 | 0x1, "FIN + RSV1 + text");
    assert.equal(out[1], payload.length);
    assert.deepEqual(out.subarray(2), payload);
    assert.deepEqual(engine.deflate, DEFAULTS);
    const plain = engineWith(undefined);
    assert.equal(plain.deflate, undefined);
    assert.throws(() => plain.sendCompressed(payload, true), (e: unknown) => e instanceof UsageError && e.code === "ERR_NOT_NEGOTIATED");
  });

  it("fails the connection on a fault found outside the engine, with one close frame even while closing", () => {
    const engine = engineWith(DEFAULTS);
    engine.close(1000);
    engine.takeOutput();
    engine.fail(new ProtocolError("WS_ERR_MESSAGE_TOO_BIG", 1009, "too big"));
    const got: EngineEvent[] = [];
    for (let e = engine.nextEvent(); e; e = engine.nextEvent()) got.push(e);
    assert.deepEqual(got.map((e) => e.type), ["error", "close"]);
    assert.equal((got[1] as { code: number }).code, 1009);
    assert.deepEqual(engine.takeOutput(), [], "our close frame was already sent: no second one");

    const open = engineWith(DEFAULTS);
    open.fail(new ProtocolError("WS_ERR_INVALID_UTF8", 1007, "bad text"));
    assert.deepEqual(decodeServerFrames(cat(...open.takeOutput())), [{ type: "close", code: 1007, reason: "" }]);
    open.fail(new ProtocolError("WS_ERR_INVALID_UTF8", 1007, "again"));
    assert.deepEqual(open.takeOutput(), [], "once closed, fail() does nothing");
  });
});

