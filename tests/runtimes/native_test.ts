// The native paths' session (runtimes/_native.ts) against a fake runtime
// socket: the handshake answers, the upgrade hook, hooks one at a time,
// maxMessageBytes, the close timer, backpressure and typed errors. It runs
// on every runtime; the real Deno.serve and Bun.serve paths are in the
// black-box suite (suite_test.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProtocolError, UsageError } from "../../core/errors.ts";
import { PreparedMessage } from "../../core/prepared.ts";
import type { CloseInfo, Handler } from "../../plugins/hooks.ts";
import { type NativeSession, type NativeSocket, prepareUpgrade } from "../../runtimes/_native.ts";
import { ConnectionSet } from "../../runtimes/_registry.ts";
import { resolveConnectionOptions } from "../../runtimes/_options.ts";
import { delay, until } from "./_helpers.ts";

const UPGRADE_HEADERS = {
  Upgrade: "websocket",
  Connection: "Upgrade",
  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
  "Sec-WebSocket-Version": "13",
};

/**
 * A request as a runtime's server hands it over. Not a `new Request()`: fetch
 * forbids setting `Host` there, and a runtime's server passes it through.
 */
function request(headers: Record<string, string> = {}, url = "http://127.0.0.1/chat?x=1", method = "GET"): Request {
  const all = new Headers({ Host: new URL(url).host, ...UPGRADE_HEADERS, ...headers });
  return { url, method, headers: all } as unknown as Request;
}

class FakeSocket implements NativeSocket {
  sent: (string | Uint8Array)[] = [];
  closes: [number, string][] = [];
  pings: Uint8Array[] = [];
  terminated = false;
  paused = false;
  buffered = 0;
  accept = true;
  drainEvents?: boolean;
  send(data: string | Uint8Array): boolean {
    this.sent.push(data);
    return this.accept;
  }
  ping(data: Uint8Array): void {
    this.pings.push(data);
  }
  close(code: number, reason: string): void {
    this.closes.push([code, reason]);
  }
  terminate(): void {
    this.terminated = true;
  }
  get bufferedAmount(): number {
    return this.buffered;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
}

async function open<S = Record<string, unknown>, T extends NativeSocket = FakeSocket>(
  handler: Handler<S>,
  options = {},
  socket: T = new FakeSocket() as unknown as T,
) {
  const set = new ConnectionSet();
  const decision = await prepareUpgrade(request(), "192.0.2.7", handler, resolveConnectionOptions(options), set);
  assert.ok(decision.session, `upgraded, not answered ${decision.response?.status}`);
  decision.session.attach(socket, decision.protocol);
  return { session: decision.session as NativeSession<S>, socket, set, decision };
}

describe("native session: the handshake", () => {
  const options = resolveConnectionOptions({ protocols: ["chat.v2", "chat.v1"], maxHeaderBytes: 512 });

  const refusals: [string, Request, number][] = [
    ["a plain GET", { url: "http://a/", method: "GET", headers: new Headers({ Host: "a" }) } as unknown as Request, 426],
    ["no Host", { url: "http://a/", method: "GET", headers: new Headers(UPGRADE_HEADERS) } as unknown as Request, 400],
    ["version 8", request({ "Sec-WebSocket-Version": "8" }), 426],
    ["a key of the wrong size", request({ "Sec-WebSocket-Key": "AAAA" }), 400],
    ["POST", request({}, undefined, "POST"), 400],
    ["headers over maxHeaderBytes", request({ "X-Big": "x".repeat(600) }), 431],
  ];
  for (const [name, req, status] of refusals) {
    it(`answers ${status} to ${name} and opens nothing`, async () => {
      const set = new ConnectionSet();
      const decision = await prepareUpgrade(req, "", {}, options, set);
      assert.equal(decision.response?.status, status);
      if (status === 426) assert.equal(decision.response?.headers.get("sec-websocket-version"), "13");
      assert.equal(set.size, 0);
    });
  }

  it("chooses the subprotocol by the server's preference and keeps the request", async () => {
    const set = new ConnectionSet();
    const decision = await prepareUpgrade(request({ "Sec-WebSocket-Protocol": "chat.v1,chat.v2" }), "", {}, options, set);
    assert.ok(decision.session);
    assert.equal(decision.protocol, "chat.v2");
    assert.equal(decision.session?.request.url, "/chat?x=1");
    assert.deepEqual(decision.session?.request.protocols, ["chat.v1", "chat.v2"]);
    assert.equal(set.size, 1, "a session counts from its handshake");
  });

  it("returns the upgrade hook's refusal as it is, and its headers and state on success", async () => {
    const handler: Handler<{ user?: string }> = {
      async upgrade(ctx) {
        await delay(1);
        if (ctx.request.headers.get("authorization") !== "Bearer t") return new Response("no", { status: 401 });
        ctx.state.user = "ada";
        return { headers: { "X-Hello": "1" } };
      },
    };
    const set = new ConnectionSet();
    const refused = await prepareUpgrade(request(), "", handler, options, set);
    assert.equal(refused.response?.status, 401);
    assert.equal(await refused.response?.text(), "no");
    assert.equal(set.size, 0);
    const accepted = await prepareUpgrade(request({ Authorization: "Bearer t" }), "", handler, options, set);
    assert.ok(accepted.session);
    assert.deepEqual(accepted.headers, [["X-Hello", "1"]], "headers become pairs, so a name may repeat");
    assert.deepEqual(accepted.session?.state, { user: "ada" });
  });

  it("answers 500 and reports why when the hook throws, refuses with a 2xx, or picks a protocol not offered", async () => {
    const errors: unknown[] = [];
    const error = (_ctx: unknown, err: unknown) => void errors.push(err);
    const answers = [
      await prepareUpgrade(request(), "", { upgrade: () => { throw new Error("boom"); }, error }, options, new ConnectionSet()),
      await prepareUpgrade(request(), "", { upgrade: () => new Response("ok"), error }, options, new ConnectionSet()),
      await prepareUpgrade(request(), "", { upgrade: () => ({ protocol: "mqtt" }), error }, options, new ConnectionSet()),
    ];
    assert.deepEqual(answers.map((a) => a.response?.status), [500, 500, 500]);
    assert.equal((errors[0] as Error).message, "boom");
    assert.equal((errors[1] as UsageError).code, "ERR_INVALID_STATUS");
    assert.equal((errors[2] as UsageError).code, "ERR_INVALID_PROTOCOL");
  });

  it("closes with 1001, and tells the app nothing, when shut down between the answer and the open", async () => {
    const set = new ConnectionSet();
    const opens: unknown[] = [];
    const closes: unknown[] = [];
    const handler: Handler = { open: (ctx) => void opens.push(ctx.id), close: (_ctx, info) => void closes.push(info) };
    const decision = await prepareUpgrade(request(), "", handler, options, set);
    assert.ok(decision.session);
    const shutdown = set.shutdown(1001, "Server shutting down");
    const socket = new FakeSocket();
    decision.session.attach(socket, "");
    decision.session.onClose(1001, "Server shutting down", true);
    await shutdown;
    assert.deepEqual(socket.closes, [[1001, "Server shutting down"]]);
    assert.deepEqual(opens, []);
    assert.deepEqual(closes, []);
  });

  it("answers 503 once the server is shutting down", async () => {
    const set = new ConnectionSet();
    await set.shutdown(1001, "bye");
    const decision = await prepareUpgrade(request(), "", {}, options, set);
    assert.equal(decision.response?.status, 503);
  });
});

describe("native session: a connection", () => {
  it("runs async hooks one at a time, pausing the socket meanwhile, in order", async () => {
    const seen: string[] = [];
    const { session, socket } = await open({
      async message(ctx, data) {
        await delay(2);
        seen.push(String(data));
        ctx.send(data);
      },
    });
    for (const m of ["a", "b", "c"]) session.onMessage(m);
    assert.equal(socket.paused, true, "reading pauses while a hook is pending");
    await until(() => seen.length === 3);
    assert.deepEqual(seen, ["a", "b", "c"]);
    assert.deepEqual(socket.sent, ["a", "b", "c"]);
    await until(() => !socket.paused, 1000, "resume");
  });

  it("refuses a message over maxMessageBytes with 1009 and reports it", async () => {
    const errors: unknown[] = [];
    const closes: CloseInfo[] = [];
    const messages: unknown[] = [];
    const { session, socket } = await open({
      message: (_ctx, data) => void messages.push(data),
      error: (_ctx, err) => void errors.push(err),
      close: (_ctx, info) => void closes.push(info),
    }, { maxMessageBytes: 4 });
    session.onMessage("ééé"); // 6 bytes in UTF-8, 3 characters
    assert.deepEqual(messages, []);
    assert.deepEqual(socket.closes, [[1009, "Message too big"]]);
    assert.ok(errors[0] instanceof ProtocolError);
    assert.equal((errors[0] as ProtocolError).closeCode, 1009);
    session.onClose(1009, "", true);
    assert.deepEqual(closes, [{ code: 1009, reason: "Message too big: over the limit of 4 bytes", wasClean: false }]);
  });

  it("throws for sends before open and bad close codes; after close, send() drops and answers false", async () => {
    const set = new ConnectionSet();
    const decision = await prepareUpgrade(request(), "", {}, resolveConnectionOptions({}), set);
    const session = decision.session!;
    assert.throws(() => session.send("early"), (e: unknown) => e instanceof UsageError && e.code === "ERR_NOT_OPEN");
    const socket = new FakeSocket();
    session.attach(socket, "");
    assert.throws(() => session.close(1006), (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_CLOSE_CODE");
    session.close(4000, "done");
    assert.equal(session.send("late"), false);
    assert.equal(session.sendPrepared(new PreparedMessage("late")), false);
    session.ping(); // nothing, no throw
    await session.drained(); // the close is under way: nothing waits
    assert.throws(() => session.send(42 as unknown as string), (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_DATA");
    session.close(4001); // a second close does nothing
    session.onClose(4000, "done", true);
    assert.equal(session.send("closed"), false);
    await session.drained();
    assert.deepEqual(socket.sent, [], "nothing written after close");
    assert.deepEqual(socket.pings, []);
    assert.deepEqual(socket.closes, [[4000, "done"]]);
  });

  it("terminates a peer that does not answer the close within closeTimeoutMs and reports 1006", async () => {
    const closes: CloseInfo[] = [];
    const { session, socket, set } = await open({ close: (_ctx, info) => void closes.push(info) }, { closeTimeoutMs: 30 });
    session.close(1000);
    assert.deepEqual(socket.closes, [[1000, ""]]);
    await until(() => socket.terminated, 1000, "terminate");
    assert.deepEqual(closes, [{ code: 1006, reason: "", wasClean: false }]);
    assert.equal(set.size, 0);
    session.onClose(1000, "", true); // the runtime's late report is ignored
    assert.equal(closes.length, 1);
  });

  it("reports backpressure and resolves drained() by polling when the runtime has no drain event", async () => {
    const drains: number[] = [];
    const socket = new FakeSocket();
    const { session } = await open({ drain: (ctx) => void drains.push(ctx.bufferedAmount) }, { highWaterMark: 100 }, socket);
    socket.buffered = 500;
    assert.equal(session.send("x"), false);
    let drained = false;
    const waiting = session.drained().then(() => (drained = true));
    await delay(30);
    assert.equal(drained, false);
    socket.buffered = 0;
    await waiting;
    assert.deepEqual(drains, [0]);
    assert.equal(session.send("y"), true);
  });

  it("refuses pings over 125 bytes, and pings where the runtime has none", async () => {
    const { session, socket } = await open({});
    session.ping("hello");
    assert.equal(new TextDecoder().decode(socket.pings[0]), "hello");
    assert.throws(() => session.ping(new Uint8Array(126)), (e: unknown) => e instanceof UsageError && e.code === "ERR_CONTROL_TOO_LONG");
    const fake = new FakeSocket();
    const bare: NativeSocket = {
      send: (data) => fake.send(data),
      close: (code, reason) => fake.close(code, reason),
      terminate: () => fake.terminate(),
      bufferedAmount: 0,
    };
    const other = await open({}, {}, bare);
    assert.throws(() => other.session.ping(), (e: unknown) => e instanceof UsageError && e.code === "ERR_UNSUPPORTED");
  });

  it("takes a send the runtime says left nothing queued (queueCheck: send) without reading bufferedAmount", async () => {
    class Counted extends FakeSocket {
      readonly queueCheck = "send";
      reads = 0;
      override get bufferedAmount(): number {
        this.reads++;
        return this.buffered;
      }
    }
    const socket = new Counted();
    const drains: number[] = [];
    const { session } = await open({ drain: (ctx) => void drains.push(ctx.bufferedAmount) }, { highWaterMark: 100 }, socket);
    socket.drainEvents = true;
    for (let i = 0; i < 10; i++) assert.equal(session.send(`m${i}`), true);
    assert.equal(socket.reads, 0, "no bufferedAmount read per send");
    socket.accept = false; // the runtime reports backpressure (Bun: -1), whatever it holds
    assert.equal(session.send("held"), false);
    socket.buffered = 0;
    session.onDrain();
    assert.deepEqual(drains, [0]);
    socket.accept = true;
    assert.equal(session.send("after"), true);
  });

  it("with queueCheck: sends, reads bufferedAmount once what was sent since could reach the high-water mark", async () => {
    // A runtime whose queue grows only by sends, as Deno's: what send() queued until it is written.
    class Queueing extends FakeSocket {
      readonly queueCheck = "sends";
      reads = 0;
      override send(data: string | Uint8Array): boolean {
        this.buffered += typeof data === "string" ? new TextEncoder().encode(data).length : data.length;
        return super.send(data);
      }
      override get bufferedAmount(): number {
        this.reads++;
        return this.buffered;
      }
    }
    const socket = new Queueing();
    const { session } = await open({}, { highWaterMark: 1000 }, socket);
    for (let i = 0; i < 9; i++) assert.equal(session.send(new Uint8Array(90)), true); // 9 × (90 + 10) = 900: under the mark
    assert.equal(socket.reads, 0);
    assert.equal(session.send(new Uint8Array(90)), true, "read: 900 queued, under the mark");
    assert.equal(socket.reads, 1);
    socket.buffered = 0; // written out
    const text = "é".repeat(30); // 60 bytes, counted as 3 × 30 + 10
    assert.equal(session.send(text), true, "read: the bound was at the mark, 60 queued");
    assert.equal(socket.reads, 2);
    for (let i = 0; i < 9; i++) assert.equal(session.send(text), true);
    assert.equal(socket.reads, 2, "60 + 9 × 100: under the mark");
    assert.equal(session.send(text), true, "read again: 660 queued");
    assert.equal(socket.reads, 3);
    assert.equal(session.send(new Uint8Array(500)), false, "1,160 queued: over the mark, as reading after every send says");
    assert.equal(socket.reads, 4);
  });

  it("checks the output cap on every send when it is under twice the high-water mark, else while waiting for drain", async () => {
    for (const [options, everySend] of [[{ highWaterMark: 100, maxBufferedBytes: 150 }, true], [{ highWaterMark: 100, maxBufferedBytes: 200 }, false]] as const) {
      const errors: unknown[] = [];
      const socket = new FakeSocket();
      const { session } = await open({ error: (_ctx, err) => void errors.push(err) }, { ...options, bufferPolicy: "drop" }, socket);
      socket.buffered = 300; // held back by something else than a send (pongs the runtime answered, say)
      // Refused by the cap, or sent (the output under the mark at the last send) and then over the mark.
      assert.equal(session.send("a"), false);
      assert.equal(socket.sent.length, everySend ? 0 : 1);
      assert.equal(session.send("b"), false, "over the cap while waiting for drain: refused");
      assert.equal(socket.sent.length, everySend ? 0 : 1);
      assert.deepEqual(errors, []);
    }
  });

  it("reports a message hook's rejection with 1011, and holds later messages until it settles", async () => {
    const errors: unknown[] = [];
    const seen: string[] = [];
    let fail!: (err: Error) => void;
    const { session, socket } = await open({
      message(_ctx, data) {
        seen.push(String(data));
        if (data === "first") return new Promise<void>((_resolve, reject) => (fail = reject));
      },
      error: (_ctx, err) => void errors.push(err),
    });
    session.onMessage("first");
    session.onMessage("second");
    assert.deepEqual(seen, ["first"], "the second waits");
    assert.equal(socket.paused, true);
    fail(new Error("async hook failed"));
    await until(() => socket.closes.length > 0);
    assert.deepEqual(socket.closes, [[1011, "Internal error"]]);
    assert.equal((errors[0] as Error).message, "async hook failed");
    assert.deepEqual(seen, ["first", "second"], "then the second runs, as queued");
  });

  it("closes with 1011 when a hook throws, and reports 1005 for an empty close", async () => {
    const closes: CloseInfo[] = [];
    const errors: unknown[] = [];
    const { session, socket } = await open({
      message() {
        throw new Error("hook failed");
      },
      error: (_ctx, err) => void errors.push(err),
      close: (_ctx, info) => void closes.push(info),
    });
    session.onMessage("x");
    assert.deepEqual(socket.closes, [[1011, "Internal error"]]);
    assert.equal((errors[0] as Error).message, "hook failed");
    session.onClose(0, "", true);
    assert.deepEqual(closes, [{ code: 1005, reason: "", wasClean: true }]);
  });
});
