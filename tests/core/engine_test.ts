// The engine's state machine: handshake, local close, timeouts, misuse.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Engine, type EngineEvent } from "../../core/engine.ts";
import { UsageError } from "../../core/errors.ts";
import { ReadyState, transition } from "../../core/state.ts";
import { acceptedEngine, bytes, cat, closeBody, decodeServerFrames, frame, openEngine, REQUEST, splits, summary } from "./_util.ts";

const decoder = new TextDecoder();

function drain(engine: Engine): EngineEvent[] {
  const events: EngineEvent[] = [];
  for (let e = engine.nextEvent(); e; e = engine.nextEvent()) events.push(e);
  return events;
}

function output(engine: Engine): Uint8Array {
  return cat(...engine.takeOutput());
}

describe("engine: opening handshake from raw bytes", () => {
  it("parses a request split anywhere, keeps the frames behind it, and answers 101 on accept", () => {
    const input = cat(bytes(REQUEST), frame(0x1, "early"));
    for (const chunks of splits(input)) {
      const engine = new Engine();
      const events: EngineEvent[] = [];
      for (const chunk of chunks) {
        engine.receive(chunk);
        events.push(...drain(engine));
      }
      assert.equal(events.length, 1);
      assert.equal(events[0]!.type, "upgrade");
      assert.equal(engine.state, ReadyState.Connecting);
      engine.accept();
      const response = decoder.decode(output(engine));
      assert.match(response, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
      assert.match(response, /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
      assert.deepEqual(summary(drain(engine)), [{ type: "open" }, { type: "message", kind: "text", data: "early" }]);
      assert.equal(engine.state, ReadyState.Open);
    }
  });

  it("decodes the first frames of a connection that was idle after the 101 (its decoder is made then)", () => {
    // Fragmented text with a ping between the fragments, split anywhere.
    const input = cat(frame(0x1, "fra", { fin: false }), frame(0x9, "p"), frame(0x0, "gm", { fin: false }), frame(0x0, "ent"));
    for (const chunks of splits(input)) {
      const engine = openEngine();
      assert.equal(engine.inputBytes, 0);
      assert.equal(engine.nextEvent(), undefined);
      engine.send("before");
      assert.deepEqual(summary(decodeServerFrames(output(engine))), [{ type: "message", kind: "text", data: "before" }]);
      const events: EngineEvent[] = [];
      for (const chunk of chunks) {
        engine.receive(chunk.slice());
        events.push(...drain(engine));
      }
      assert.deepEqual(events.map((e) => e.type), ["ping", "message"]);
      assert.equal((events[1] as { data: unknown }).data, "fragment");
      assert.equal(engine.inputBytes, 0);
    }
  });

  it("ends an idle connection whose transport ends before any frame: 1006", () => {
    const engine = openEngine();
    engine.receive(null);
    const events = drain(engine);
    assert.deepEqual(events.map((e) => e.type), ["close"]);
    assert.equal((events[0] as { code: number }).code, 1006);
    assert.equal(engine.state, ReadyState.Closed);
  });

  it("answers an invalid request itself, reports it, and ends", () => {
    const engine = new Engine();
    engine.receive(bytes(REQUEST.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8")));
    const events = drain(engine);
    assert.equal(events.length, 1);
    const rejected = events[0]!;
    assert.ok(rejected.type === "rejected");
    assert.equal(rejected.error.status, 426);
    const response = decoder.decode(output(engine));
    assert.match(response, /^HTTP\/1\.1 426 /);
    assert.match(response, /\r\nSec-WebSocket-Version: 13\r\n/i);
    assert.equal(engine.state, ReadyState.Closed);
    engine.receive(frame(0x1, "ignored"));
    assert.equal(engine.nextEvent(), undefined);
  });

  it("answers 431 when the header block passes maxHeaderBytes", () => {
    const engine = new Engine({ maxHeaderBytes: 64 });
    engine.receive(bytes(REQUEST));
    const [event] = drain(engine);
    assert.ok(event?.type === "rejected");
    assert.equal(event.error.status, 431);
    assert.match(decoder.decode(output(engine)), /^HTTP\/1\.1 431 /);
  });

  it("rejects with the application's status, headers and body", () => {
    const engine = new Engine();
    engine.receive(bytes(REQUEST));
    drain(engine);
    engine.reject(401, "no token", { "WWW-Authenticate": "Bearer" });
    const response = decoder.decode(output(engine));
    assert.match(response, /^HTTP\/1\.1 401 Unauthorized\r\n/);
    assert.match(response, /\r\nWWW-Authenticate: Bearer\r\n/);
    assert.ok(response.endsWith("\r\n\r\nno token"));
    assert.equal(engine.state, ReadyState.Closed);
  });

  it("accepts only a subprotocol the client offered", () => {
    const engine = new Engine();
    engine.receive(bytes(REQUEST.replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat.v2, chat.v1\r\n\r\n")));
    const [event] = drain(engine);
    assert.ok(event?.type === "upgrade");
    assert.deepEqual(event.request.protocols, ["chat.v2", "chat.v1"]);
    assert.throws(() => engine.accept({ protocol: "other" }), (err: unknown) => err instanceof UsageError && err.code === "ERR_INVALID_PROTOCOL");
    engine.accept({ protocol: "chat.v1" });
    assert.match(decoder.decode(output(engine)), /\r\nSec-WebSocket-Protocol: chat\.v1\r\n/);
    assert.equal(engine.protocol, "chat.v1");
  });

  it("drops a connection whose transport ends during the handshake", () => {
    const engine = new Engine();
    engine.receive(bytes(REQUEST.slice(0, 20)));
    engine.receive(null);
    assert.equal(engine.state, ReadyState.Closed);
    assert.deepEqual(drain(engine), []);
  });

  it("refuses a second head and accept/reject with nothing pending", () => {
    const engine = new Engine();
    assert.throws(() => engine.accept(), UsageError);
    assert.throws(() => engine.reject(400), UsageError);
    engine.receive(bytes(REQUEST));
    assert.throws(() => engine.receiveHead({ method: "GET", url: "/", httpVersion: "1.1", headers: {} }), UsageError);
  });
});

describe("engine: closing", () => {
  it("closes from this side: close frame, Closing, then Closed when the peer answers", () => {
    const engine = openEngine();
    engine.close(1000, "done");
    assert.equal(engine.state, ReadyState.Closing);
    assert.deepEqual(summary(decodeServerFrames(output(engine))), [{ type: "close", code: 1000 }]);
    // Messages the peer sent before seeing our close are still delivered; pings are not answered.
    engine.receive(cat(frame(0x1, "late"), frame(0x9, "p"), frame(0x8, closeBody(1000))));
    assert.deepEqual(summary(drain(engine)), [
      { type: "message", kind: "text", data: "late" },
      { type: "ping", kind: "binary", data: [0x70] },
      { type: "close", code: 1000, wasClean: true },
    ]);
    assert.deepEqual(engine.takeOutput(), [], "no pong and no second close frame");
    assert.equal(engine.state, ReadyState.Closed);
  });

  it("reports 1006 when the close timer aborts a connection in Closing", () => {
    const engine = openEngine();
    engine.close(1001);
    engine.takeOutput();
    engine.abort();
    assert.deepEqual(summary(drain(engine)), [{ type: "close", code: 1006, wasClean: false }]);
    assert.equal(engine.state, ReadyState.Closed);
    engine.abort();
    assert.deepEqual(drain(engine), [], "abort is reported once");
  });

  it("makes close idempotent", () => {
    const engine = openEngine();
    engine.close();
    engine.close(1001);
    assert.deepEqual(summary(decodeServerFrames(output(engine))), [{ type: "close", code: 1000 }]);
  });

  it("reports the peer's close once, even with data after it", () => {
    const engine = openEngine();
    engine.receive(frame(0x8, closeBody(1001)));
    engine.receive(frame(0x8, closeBody(1000)));
    engine.receive(null);
    assert.deepEqual(summary(drain(engine)), [{ type: "close", code: 1001, wasClean: true }]);
  });
});

describe("engine: local misuse throws UsageError", () => {
  const expectUsage = (fn: () => void, code: string) =>
    assert.throws(fn, (err: unknown) => err instanceof UsageError && err instanceof TypeError && err.code === code);

  it("send, ping and pong after close", () => {
    const engine = openEngine();
    engine.close();
    expectUsage(() => engine.send("x"), "ERR_SEND_AFTER_CLOSE");
    expectUsage(() => engine.ping(), "ERR_SEND_AFTER_CLOSE");
    expectUsage(() => engine.pong(), "ERR_SEND_AFTER_CLOSE");
  });

  it("send before the handshake is accepted", () => {
    expectUsage(() => new Engine().send("x"), "ERR_NOT_OPEN");
  });

  for (const code of [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 1000.5]) {
    it(`close with code ${code}`, () => expectUsage(() => openEngine().close(code), "ERR_INVALID_CLOSE_CODE"));
  }

  it("a close reason over 123 bytes (counted in UTF-8)", () => {
    const engine = openEngine();
    expectUsage(() => engine.close(1000, "é".repeat(62)), "ERR_CLOSE_REASON_TOO_LONG");
    engine.close(1000, "x".repeat(123));
    assert.equal(engine.state, ReadyState.Closing);
  });

  it("a ping payload over 125 bytes", () => {
    expectUsage(() => openEngine().ping(new Uint8Array(126)), "ERR_CONTROL_TOO_LONG");
  });

  it("data of the wrong type", () => {
    expectUsage(() => openEngine().send(42 as unknown as string), "ERR_INVALID_DATA");
  });

  it("invalid limits", () => {
    expectUsage(() => new Engine({ maxMessageBytes: 0 }), "ERR_INVALID_OPTION");
    expectUsage(() => new Engine({ closeTimeoutMs: -1 }), "ERR_INVALID_OPTION");
    expectUsage(() => new Engine({ maxFrameBytes: 1.5 }), "ERR_INVALID_OPTION");
  });
});

describe("engine: sending", () => {
  it("sends strings as text and bytes of any view as binary", () => {
    const engine = openEngine();
    engine.send("héllo");
    engine.send(new Uint16Array([0x0201]));
    engine.send(new Uint8Array([9, 8]).buffer);
    engine.ping("hb");
    engine.pong();
    assert.deepEqual(summary(decodeServerFrames(output(engine))), [
      { type: "message", kind: "text", data: "héllo" },
      { type: "message", kind: "binary", data: [1, 2] },
      { type: "message", kind: "binary", data: [9, 8] },
      { type: "ping", kind: "binary", data: [0x68, 0x62] },
      { type: "pong", kind: "binary", data: [] },
    ]);
  });

  it("sends large text and binary with the 64-bit length form", () => {
    const engine = openEngine();
    const text = "€".repeat(30_000);
    engine.send(text);
    engine.send(new Uint8Array(70_000));
    const frames = decodeServerFrames(output(engine));
    assert.equal(frames[0]?.type === "message" && frames[0].data, text);
    assert.equal(frames[1]?.type === "message" && frames[1].data.length, 70_000);
    assert.equal(engine.outputBytes, 0);
  });
});

describe("state table", () => {
  it("follows CONNECTING → OPEN → CLOSING → CLOSED and refuses the rest", () => {
    assert.equal(transition(ReadyState.Connecting, "accept"), ReadyState.Open);
    assert.equal(transition(ReadyState.Connecting, "reject"), ReadyState.Closed);
    assert.equal(transition(ReadyState.Open, "localClose"), ReadyState.Closing);
    assert.equal(transition(ReadyState.Open, "peerClose"), ReadyState.Closed);
    assert.equal(transition(ReadyState.Closing, "peerClose"), ReadyState.Closed);
    assert.equal(transition(ReadyState.Closing, "abort"), ReadyState.Closed);
    assert.equal(transition(ReadyState.Open, "accept"), undefined);
    assert.equal(transition(ReadyState.Closing, "localClose"), undefined);
    assert.equal(transition(ReadyState.Closed, "peerClose"), undefined);
    assert.equal(transition(ReadyState.Connecting, "localClose"), undefined);
  });
});

describe("engine: what an idle connection leaves unset", () => {
  it("reports the defaults, then who closed, for a connection that negotiated nothing", () => {
    const byPeerFin = openEngine();
    drain(byPeerFin);
    assert.equal(byPeerFin.protocol, "");
    assert.equal(byPeerFin.extensions, "");
    assert.equal(byPeerFin.deflate, undefined);
    assert.equal(byPeerFin.closedBy, undefined);
    byPeerFin.receive(null);
    assert.deepEqual(drain(byPeerFin), [{ type: "close", code: 1006, reason: "", wasClean: false }]);
    assert.equal(byPeerFin.closedBy, "peer");

    const byUs = openEngine();
    drain(byUs);
    byUs.close(4000);
    assert.equal(byUs.closedBy, "local");
    byUs.receive(frame(8, closeBody(4000, "")));
    assert.equal(drain(byUs).at(-1)?.type, "close");
    assert.equal(byUs.closedBy, "local", "the first to close stays");
  });

  it("keeps a subprotocol agreed without extensions, and extensions without a subprotocol", () => {
    const chat = acceptedEngine({}, { protocol: "chat" }, { "sec-websocket-protocol": "chat" }).engine;
    assert.equal(chat.protocol, "chat");
    assert.equal(chat.extensions, "");
    const ext = acceptedEngine({}, { extensions: "x-test" }).engine;
    assert.equal(ext.protocol, "");
    assert.equal(ext.extensions, "x-test");
    assert.equal(ext.deflate, undefined);
  });
});
