// The server limits on the pump, with a fake clock and transport: admission
// (503, 429), the idle timeout, the message rate limit, the output cap, the
// shutdown hook and deadline, and the checks of their options.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProtocolError, UsageError } from "../../core/errors.ts";
import type { Connection, Handler } from "../../plugins/hooks.ts";
import { App } from "../../plugins/app.ts";
import { ConnectionSet } from "../../runtimes/_registry.ts";
import { resolveConnectionOptions } from "../../runtimes/_options.ts";
import { addressKey, RateLimiter } from "../../runtimes/_limits.ts";
import { connect, deferred, FakeClock, flush, frame } from "../plugins/_harness.ts";

const echo: Handler = { message: (ctx, data) => void ctx.send(data) };

function serverSet(options: Parameters<typeof resolveConnectionOptions>[0], clock = new FakeClock()) {
  return { set: new ConnectionSet(resolveConnectionOptions({ ...options, clock })), clock };
}

describe("admission", () => {
  it("answers 503 with Retry-After past maxConnections, and admits again once one closed", async () => {
    const { set, clock } = serverSet({ maxConnections: 2, retryAfterSeconds: 7 });
    let upgrades = 0;
    const handler: Handler = { upgrade: () => void upgrades++ };
    const a = await connect(handler, { set, clock });
    const b = await connect(handler, { set, clock });
    assert.equal(a.status, 101);
    assert.equal(b.status, 101);
    const c = await connect(handler, { set, clock });
    assert.equal(c.status, 503);
    assert.equal(c.answer.header("retry-after"), "7");
    assert.equal(upgrades, 2, "the app never saw the refused upgrade");
    assert.equal(c.destroyed || c.ended, true, "the refused socket is closed");
    await c.socketClosed();
    await a.close(1000);
    await a.socketClosed();
    assert.equal(set.admitted, 1);
    const d = await connect(handler, { set, clock });
    assert.equal(d.status, 101, "a slot freed");
  });

  it("counts an upgrade from the moment it passed the checks, while its upgrade hook runs", async () => {
    const { set, clock } = serverSet({ maxConnections: 1 });
    const gate = deferred();
    const slow = await connect({ upgrade: () => gate.promise }, { set, clock });
    assert.equal(slow.answered, false, "the hook is still running");
    const other = await connect(echo, { set, clock });
    assert.equal(other.status, 503, "no overshoot through a slow upgrade hook");
    gate.resolve();
    await flush();
    assert.equal(slow.status, 101);
  });

  it("releases the slot of an upgrade the app refused", async () => {
    const { set, clock } = serverSet({ maxConnections: 1 });
    const refused = await connect({ upgrade: () => new Response("no", { status: 401 }) }, { set, clock });
    assert.equal(refused.status, 401);
    await refused.socketClosed();
    assert.equal(set.admitted, 0);
    assert.equal((await connect(echo, { set, clock })).status, 101);
  });

  it("answers 429 with Retry-After past maxConnectionsPerAddress, per address", async () => {
    const { set, clock } = serverSet({ maxConnectionsPerAddress: 1 });
    const first = await connect(echo, { set, clock, remoteAddress: "198.51.100.7" });
    assert.equal(first.status, 101);
    const same = await connect(echo, { set, clock, remoteAddress: "::ffff:198.51.100.7" });
    assert.equal(same.status, 429, "an IPv4-mapped address is the same peer");
    assert.equal(same.answer.header("retry-after"), "5", "the default");
    const other = await connect(echo, { set, clock, remoteAddress: "198.51.100.8" });
    assert.equal(other.status, 101);
    await first.close(1000);
    await first.socketClosed();
    assert.equal((await connect(echo, { set, clock, remoteAddress: "198.51.100.7" })).status, 101);
  });

  it("answers 503 to an upgrade that completes after shutdown began", async () => {
    const { set, clock } = serverSet({});
    const open = await connect(echo, { set, clock });
    void set.shutdown(1001, "Server shutting down");
    const late = await connect(echo, { set, clock });
    assert.equal(late.status, 503);
    assert.match(late.answer.body, /shutting down/);
    await open.close(1001);
  });

  it("normalizes IPv4-mapped addresses and the case of IPv6 ones", () => {
    assert.equal(addressKey("::ffff:10.0.0.1"), "10.0.0.1");
    assert.equal(addressKey("2001:DB8::1"), "2001:db8::1");
    assert.equal(addressKey(""), "");
  });
});

describe("idle timeout", () => {
  it("pings a silent peer at half the timeout and closes it with 1001 at the end", async () => {
    const closes: number[] = [];
    const conn = await connect({ close: (_ctx, info) => void closes.push(info.code) }, { options: { idleTimeoutMs: 10_000 } });
    await conn.advance(4_999);
    assert.deepEqual(conn.frames(), []);
    await conn.advance(1);
    assert.deepEqual(conn.frames(), [{ type: "ping", data: [] }]);
    await conn.advance(4_999);
    assert.equal(conn.readyState, 1);
    await conn.advance(1);
    assert.deepEqual(conn.closes(), [{ code: 1001, reason: "Idle timeout" }]);
    assert.equal(conn.readyState, 2);
  });

  it("keeps a peer that answers the ping, or sends anything", async () => {
    const conn = await connect(echo, { options: { idleTimeoutMs: 10_000 } });
    for (let round = 0; round < 5; round++) {
      await conn.advance(5_000);
      await conn.pong();
    }
    await conn.advance(4_000);
    await conn.text("still here");
    await conn.advance(9_000);
    assert.equal(conn.readyState, 1, "open after 34 s of a live peer");
    assert.equal(conn.frames().filter((f) => f.type === "ping").length, 6);
    assert.deepEqual(conn.closes(), []);
  });

  it("does not count a hook that holds the events as the peer's silence", async () => {
    const gate = deferred();
    const conn = await connect({ message: () => gate.promise }, { options: { idleTimeoutMs: 10_000 } });
    await conn.text("slow");
    await conn.advance(30_000);
    assert.deepEqual(conn.closes(), [], "reading was paused by the app, not by the peer");
    gate.resolve();
    await flush();
    await conn.advance(10_000);
    assert.deepEqual(conn.closes(), [{ code: 1001, reason: "Idle timeout" }]);
  });

  it("is off with 0, and leaves no timer once the connection closed", async () => {
    const off = await connect(echo, { options: { idleTimeoutMs: 0 } });
    assert.equal(off.clock.pending, 0);
    const on = await connect(echo, { options: { idleTimeoutMs: 10_000 } });
    assert.equal(on.clock.pending, 1);
    await on.close(1000);
    await on.socketClosed();
    assert.equal(on.clock.pending, 0);
  });
});

describe("rate limit", () => {
  it("closes with 1008 at the first message over the limit, after the ones before it", async () => {
    const errors: unknown[] = [];
    const conn = await connect({ ...echo, error: (_ctx, error) => void errors.push(error) }, {
      options: { rateLimit: { messages: 3, intervalMs: 1000 } },
    });
    for (const text of ["a", "b", "c", "d", "e"]) conn.feed(frame(0x1, text));
    await flush();
    assert.deepEqual(conn.texts(), ["a", "b", "c"]);
    assert.deepEqual(conn.closes(), [{ code: 1008, reason: "" }], "a fault closes without a reason, as every protocol error");
    assert.ok(errors[0] instanceof ProtocolError);
    assert.equal((errors[0] as ProtocolError).code, "WS_ERR_RATE_LIMIT");
  });

  it("drops messages over the limit and refills over the interval", async () => {
    const conn = await connect(echo, { options: { rateLimit: { messages: 2, intervalMs: 1000, action: "drop" } } });
    for (const text of ["1", "2", "3", "4"]) conn.feed(frame(0x1, text));
    await flush();
    assert.deepEqual(conn.texts(), ["1", "2"]);
    await conn.advance(500); // one token back
    for (const text of ["5", "6"]) conn.feed(frame(0x1, text));
    await flush();
    assert.deepEqual(conn.texts(), ["1", "2", "5"]);
    await conn.advance(5_000); // full, never more than the burst
    for (const text of ["7", "8", "9"]) conn.feed(frame(0x1, text));
    await flush();
    assert.deepEqual(conn.texts(), ["1", "2", "5", "7", "8"]);
    assert.equal(conn.readyState, 1);
    await conn.ping([1]);
    assert.deepEqual(conn.frames().at(-1), { type: "pong", data: [1] }, "control frames are not counted");
  });

  it("counts time with a token bucket", () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ messages: 4, intervalMs: 100 }, clock);
    assert.deepEqual([1, 2, 3, 4, 5].map(() => limiter.take()), [true, true, true, true, false]);
    clock.advance(25);
    assert.deepEqual([limiter.take(), limiter.take()], [true, false]);
    assert.equal(limiter.action, "close");
  });
});

describe("output cap (maxBufferedBytes)", () => {
  async function flooded(bufferPolicy: "close" | "drop") {
    const results: boolean[] = [];
    const errors: unknown[] = [];
    const conn = await connect({
      message(ctx) {
        for (let i = 0; i < 10; i++) results.push(ctx.send(new Uint8Array(1000)));
      },
      error: (_ctx, error) => void errors.push(error),
    }, { options: { maxBufferedBytes: 4000, highWaterMark: 1024, bufferPolicy } });
    conn.transport.accepting = false; // the peer does not read: everything stays buffered
    conn.transport.buffered = 0;
    const writes = conn.transport.writes;
    // Count what the socket holds as the pump hands it over.
    const write = conn.transport.write.bind(conn.transport);
    conn.transport.write = (chunks) => {
      for (const c of chunks) conn.transport.buffered += c.length;
      return write(chunks);
    };
    await conn.text("go");
    return { conn, results, errors, writes };
  }

  it("closes with 1013 and refuses the send that would go over (policy close)", async () => {
    const { conn, results, errors } = await flooded("close");
    const accepted = results.filter((r, i) => r || i < 4).length;
    assert.ok(conn.transport.buffered <= 4000 + 1010 + 40, `held ${conn.transport.buffered} bytes`);
    assert.ok(accepted < 10);
    assert.equal(conn.readyState, 2, "closing");
    assert.ok(errors[0] instanceof ProtocolError);
    assert.equal((errors[0] as ProtocolError).code, "WS_ERR_BUFFER_FULL");
    assert.equal((errors[0] as ProtocolError).closeCode, 1013);
    await conn.advance(5_000);
    assert.equal(conn.destroyed, true, "a peer that never reads is dropped at the close timeout");
  });

  it("drops the sends over the cap and keeps the connection (policy drop)", async () => {
    const { conn, results, errors } = await flooded("drop");
    assert.equal(conn.readyState, 1);
    assert.deepEqual(errors, []);
    assert.equal(results.at(-1), false);
    const messages = conn.frames().filter((f) => f.type === "binary").length;
    assert.ok(messages >= 4 && messages < 10, `${messages} of 10 sent`);
    assert.ok(conn.transport.buffered <= 4000 + 1010, `held ${conn.transport.buffered} bytes`);
  });

  it("accepts every send while the peer reads", async () => {
    const results: boolean[] = [];
    const conn = await connect({
      message(ctx) {
        for (let i = 0; i < 100; i++) results.push(ctx.send(new Uint8Array(1000)));
      },
    }, { options: { maxBufferedBytes: 4000, highWaterMark: 1024 } });
    await conn.text("go");
    assert.equal(conn.frames().filter((f) => f.type === "binary").length, 100);
    assert.equal(conn.readyState, 1);
  });
});

describe("shutdown", () => {
  it("runs the shutdown hook before the close frame, and delivers what it sent", async () => {
    const set = new ConnectionSet();
    const conn = await connect({
      message: (ctx) => void ctx.send("queued"),
      shutdown: (ctx) => void ctx.send("bye"),
    }, { set });
    await conn.text("x");
    const done = set.shutdown(1001, "Server shutting down");
    await flush();
    assert.deepEqual(conn.frames(), [
      { type: "text", data: "queued" },
      { type: "text", data: "bye" },
      { type: "close", code: 1001, reason: "Server shutting down" },
    ]);
    await conn.close(1001);
    await conn.socketClosed();
    await done;
  });

  it("waits for an async shutdown hook, after the hook in progress", async () => {
    const set = new ConnectionSet();
    const order: string[] = [];
    const busy = deferred();
    const hook = deferred();
    const conn = await connect({
      async message(ctx) {
        order.push("message");
        await busy.promise;
        ctx.send("answer");
      },
      async shutdown(ctx) {
        order.push("shutdown");
        await hook.promise;
        ctx.send("bye");
      },
    }, { set });
    await conn.text("x");
    void set.shutdown(1001, "Server shutting down");
    await flush();
    assert.deepEqual(order, ["message"], "the shutdown hook waits for the hook in progress");
    busy.resolve();
    await flush();
    assert.deepEqual(order, ["message", "shutdown"]);
    assert.deepEqual(conn.closes(), []);
    hook.resolve();
    await flush();
    assert.deepEqual(conn.frames(), [
      { type: "text", data: "answer" },
      { type: "text", data: "bye" },
      { type: "close", code: 1001, reason: "Server shutting down" },
    ]);
  });

  it("destroys what is left at shutdownTimeoutMs: a hook that never returns, a lingering socket", async () => {
    const clock = new FakeClock();
    const set = new ConnectionSet(resolveConnectionOptions({ shutdownTimeoutMs: 3_000, closeTimeoutMs: 60_000, clock }));
    const stuck = await connect({ shutdown: () => new Promise(() => {}) }, { set, clock });
    const silent = await connect(echo, { set, clock });
    let done = false;
    const shutdown = set.shutdown(1001, "Server shutting down").then(() => (done = true));
    await flush();
    assert.deepEqual(stuck.closes(), []);
    assert.deepEqual(silent.closes(), [{ code: 1001, reason: "Server shutting down" }]);
    await clock.advanceAsync(2_999);
    assert.equal(stuck.destroyed || silent.destroyed, false);
    await clock.advanceAsync(1);
    assert.equal(stuck.destroyed, true);
    assert.equal(silent.destroyed, true);
    await stuck.socketClosed();
    await silent.socketClosed();
    await shutdown;
    assert.equal(done, true);
    assert.equal(clock.pending, 0, "no timer left");
  });

  it("runs the App's shutdown middleware", async () => {
    const set = new ConnectionSet();
    const app = new App().use({ shutdown: (ctx) => void ctx.send(`bye ${ctx.type}`) });
    const conn = await connect(app, { set });
    void set.shutdown(1001, "Server shutting down");
    await flush();
    assert.deepEqual(conn.frames(), [{ type: "text", data: "bye shutdown" }, { type: "close", code: 1001, reason: "Server shutting down" }]);
  });

  it("closes with 1011 after a shutdown hook that throws, and reports it", async () => {
    const set = new ConnectionSet();
    const errors: unknown[] = [];
    const conn = await connect({
      shutdown: () => {
        throw new Error("boom");
      },
      error: (_ctx: Connection, error: unknown) => void errors.push(error),
    }, { set });
    void set.shutdown(1001, "Server shutting down");
    await flush();
    assert.equal((errors[0] as Error).message, "boom");
    assert.deepEqual(conn.closes(), [{ code: 1011, reason: "Internal error" }]);
  });
});

describe("limit options", () => {
  const bad: [string, Record<string, unknown>][] = [
    ["maxBufferedBytes", { maxBufferedBytes: 0 }],
    ["bufferPolicy", { bufferPolicy: "block" }],
    ["idleTimeoutMs", { idleTimeoutMs: -1 }],
    ["maxConnections", { maxConnections: 1.5 }],
    ["maxConnectionsPerAddress", { maxConnectionsPerAddress: 0 }],
    ["retryAfterSeconds", { retryAfterSeconds: "5" }],
    ["shutdownTimeoutMs", { shutdownTimeoutMs: NaN }],
    ["rateLimit", { rateLimit: 10 }],
    ["rateLimit.messages", { rateLimit: { messages: 0 } }],
    ["rateLimit.intervalMs", { rateLimit: { messages: 1, intervalMs: 0 } }],
    ["rateLimit.action", { rateLimit: { messages: 1, action: "kick" } }],
  ];
  for (const [name, options] of bad) {
    it(`refuses a bad ${name} with ERR_INVALID_OPTION naming it`, () => {
      assert.throws(() => resolveConnectionOptions(options), (err: unknown) => {
        assert.ok(err instanceof UsageError);
        assert.equal(err.code, "ERR_INVALID_OPTION");
        assert.ok(err.message.includes(name), err.message);
        return true;
      });
    });
  }

  it("takes Infinity to turn the connection limits off", () => {
    resolveConnectionOptions({ maxConnections: Infinity, maxConnectionsPerAddress: Infinity, idleTimeoutMs: 0 });
  });
});
