// The shared pump against a fake transport: batching, backpressure both
// ways, timers and teardown, without sockets.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import type { Connection, Handler } from "../../plugins/hooks.ts";
import { Pump } from "../../runtimes/_pump.ts";
import { ConnectionSet } from "../../runtimes/_registry.ts";
import { resolveConnectionOptions } from "../../runtimes/_options.ts";
import { FakeTransport as RecordingTransport } from "../plugins/_harness.ts";
import { bytes, cat, closeBody, decodeServerFrames, frame, REQUEST, summary } from "../core/_util.ts";
import { delay, until } from "./_helpers.ts";

/** The pipeline tests' fake socket, plus the server frames after the 101. */
class FakeTransport extends RecordingTransport {
  /** Everything written after the 101, decoded. */
  frames() {
    const all = this.output();
    const text = new TextDecoder("latin1").decode(all);
    const headEnd = text.indexOf("\r\n\r\n") + 4;
    return decodeServerFrames(all.subarray(headEnd));
  }
}

function setup<S = Record<string, unknown>>(handler: Handler<S>, options = {}) {
  const transport = new FakeTransport();
  const set = new ConnectionSet();
  const pump = new Pump<S>(transport, handler, resolveConnectionOptions(options), set);
  pump.start();
  return { transport, set, pump };
}

const echo: Handler = { message: (ctx, data) => void ctx.send(data) };

describe("pump", () => {
  it("answers a chunk holding the handshake and three frames with one write", () => {
    const { transport, pump } = setup(echo);
    pump.onData(cat(bytes(REQUEST), frame(1, "a"), frame(1, "b"), frame(9, "p")));
    assert.equal(transport.writes.length, 1, "one write for the 101, two echoes and a pong");
    assert.equal(transport.writes[0]!.length, 4);
    assert.deepEqual(summary(transport.frames()), [
      { type: "message", kind: "text", data: "a" },
      { type: "message", kind: "text", data: "b" },
      { type: "pong", kind: "binary", data: [0x70] },
    ]);
    pump.terminate();
  });

  it("batches sends made in one tick outside a hook into one write", async () => {
    let ctx!: Connection;
    const { transport, pump } = setup({ open: (c) => void (ctx = c) });
    pump.onData(bytes(REQUEST));
    const before = transport.writes.length;
    ctx.send("x");
    ctx.send("y");
    ctx.send(new Uint8Array([1]));
    assert.equal(transport.writes.length, before, "nothing written synchronously");
    await Promise.resolve();
    assert.equal(transport.writes.length, before + 1);
    assert.equal(transport.writes.at(-1)!.length, 3);
    pump.terminate();
  });

  it("stops reading while an async hook is pending and resumes after, keeping order", async () => {
    const seen: string[] = [];
    let release!: () => void;
    const { transport, pump } = setup({
      message(_ctx, data) {
        seen.push(String(data));
        if (data === "slow") return new Promise<void>((resolve) => (release = resolve));
      },
    });
    pump.onData(cat(bytes(REQUEST), frame(1, "slow")));
    pump.onData(frame(1, "next"));
    assert.deepEqual(seen, ["slow"]);
    assert.equal(transport.paused, true, "reading paused while the hook runs");
    release();
    await until(() => seen.length === 2);
    assert.deepEqual(seen, ["slow", "next"]);
    assert.equal(transport.paused, false);
    pump.terminate();
  });

  it("pauses reading while the transport is over its high-water mark, and resumes on drain", async () => {
    let ctx!: Connection;
    const drains: number[] = [];
    const { transport, pump } = setup({ open: (c) => void (ctx = c), drain: () => void drains.push(1) });
    pump.onData(bytes(REQUEST));
    transport.accepting = false;
    assert.equal(ctx.send("x".repeat(10)), true, "below the mark until the transport refuses");
    await Promise.resolve();
    assert.equal(transport.paused, true);
    assert.equal(ctx.send("more"), false);
    let drained = false;
    const waiting = ctx.drained().then(() => (drained = true));
    await delay(1);
    assert.equal(drained, false);
    transport.accepting = true;
    pump.onDrain();
    await waiting;
    assert.equal(transport.paused, false);
    assert.deepEqual(drains, [1]);
    pump.terminate();
  });

  it("counts bytes still in the engine and in the socket against the high-water mark", () => {
    let ctx!: Connection;
    const { transport, pump } = setup({ open: (c) => void (ctx = c) }, { highWaterMark: 100 });
    pump.onData(bytes(REQUEST));
    assert.equal(ctx.send("x".repeat(50)), true);
    transport.buffered = 80; // the socket still holds bytes of earlier writes
    assert.equal(ctx.send("x".repeat(30)), false, "52 + 32 queued + 80 in the socket");
    assert.equal(ctx.bufferedAmount, 52 + 32 + 80);
    pump.terminate();
  });

  it("ends TCP after the close handshake and destroys it if the peer never closes", async () => {
    const closes: unknown[] = [];
    const { transport, pump, set } = setup({ close: (_c, info) => void closes.push(info) }, { closeTimeoutMs: 20 });
    pump.onData(bytes(REQUEST));
    pump.onData(frame(8, closeBody(1000, "bye")));
    assert.deepEqual(closes, [{ code: 1000, reason: "bye", wasClean: true }]);
    assert.deepEqual(summary(transport.frames()), [{ type: "close", code: 1000 }]);
    assert.equal(transport.ended, true, "FIN after the close frame");
    assert.equal(transport.destroyed, false);
    await until(() => transport.destroyed, 1000, "linger timeout");
    pump.onClosed();
    assert.equal(set.size, 0);
  });

  it("aborts with 1006 and destroys when the peer does not answer our close in time", async () => {
    let ctx!: Connection;
    const closes: unknown[] = [];
    const { transport, pump } = setup({ open: (c) => void (ctx = c), close: (_c, info) => void closes.push(info) }, { closeTimeoutMs: 20 });
    pump.onData(bytes(REQUEST));
    ctx.close(4000, "going");
    assert.equal(ctx.readyState, 2);
    await until(() => transport.destroyed, 1000, "close timeout");
    assert.deepEqual(closes, [{ code: 1006, reason: "", wasClean: false }]);
    assert.equal(transport.ended, false, "destroyed, not ended");
    const written = transport.frames().length;
    assert.equal(ctx.send("late"), false, "a closed connection drops the message");
    ctx.ping(); // nothing, no throw
    await ctx.drained(); // resolves at once
    assert.equal(transport.frames().length, written, "nothing written after the close");
    assert.throws(() => ctx.ping(new Uint8Array(126)), UsageError, "a bad argument still throws");
  });

  it("fails the connection: close frame first, then FIN", () => {
    const errors: unknown[] = [];
    const { transport, pump } = setup({ error: (_c, e) => void errors.push(e) });
    pump.onData(cat(bytes(REQUEST), frame(1, "x", { mask: null })));
    assert.equal((errors[0] as { closeCode: number }).closeCode, 1002);
    assert.deepEqual(summary(transport.frames()), [{ type: "close", code: 1002 }]);
    assert.equal(transport.ended, true);
    pump.onClosed();
  });

  it("delivers the close hook once, after a pending hook, when the socket closes under it", async () => {
    const calls: string[] = [];
    let release!: () => void;
    const { pump, set } = setup({
      message: () => new Promise<void>((resolve) => (release = resolve)),
      close: (_c, info) => void calls.push(`close ${info.code}`),
    });
    pump.onData(cat(bytes(REQUEST), frame(1, "x")));
    pump.onClosed();
    assert.deepEqual(calls, []);
    assert.equal(set.size, 0);
    release();
    await until(() => calls.length === 1);
    assert.deepEqual(calls, ["close 1006"]);
  });

  it("drops a handshake that does not complete in time", async () => {
    const { transport, pump } = setup(echo, { handshakeTimeoutMs: 20 });
    pump.onData(bytes(REQUEST.slice(0, 10)));
    await until(() => transport.destroyed, 1000, "handshake timeout");
    assert.equal(transport.writes.length, 0);
  });

  it("runs its handshake, close and linger timers one after the other on a connection that used nothing else", async () => {
    // One field holds the three timers, and the deflate, shutdown and drain
    // state is made on first use: an idle connection touched none of it.
    let ctx!: Connection;
    const closes: unknown[] = [];
    const { transport, pump, set } = setup({ open: (c) => void (ctx = c), close: (_c, info) => void closes.push(info) }, {
      handshakeTimeoutMs: 20,
      closeTimeoutMs: 30,
    });
    pump.onData(bytes(REQUEST));
    await delay(60);
    assert.equal(ctx.readyState, 1, "the handshake timer stopped at the 101");
    assert.equal(transport.destroyed, false);
    assert.equal(ctx.deflate, undefined);
    assert.equal(ctx.protocol, "");
    assert.equal(ctx.extensions, "");
    ctx.close(4000, "going");
    await delay(10);
    assert.deepEqual(closes, [], "the close timer runs its full time");
    pump.onData(frame(8, closeBody(4000, "")));
    assert.deepEqual(closes, [{ code: 4000, reason: "", wasClean: true }]);
    assert.equal(transport.ended, true, "FIN after the close handshake");
    assert.equal(transport.destroyed, false, "lingering for the peer's FIN");
    await until(() => transport.destroyed, 1000, "linger timeout");
    pump.onClosed();
    assert.equal(set.size, 0);
    assert.equal(closes.length, 1);
  });

  it("answers 500 when the upgrade hook throws, and reports the error", () => {
    const errors: unknown[] = [];
    const { transport, pump } = setup({
      upgrade() {
        throw new Error("db down");
      },
      error: (_c, e) => void errors.push(e),
    });
    pump.onData(bytes(REQUEST));
    assert.match(new TextDecoder().decode(transport.writes[0]![0]), /^HTTP\/1\.1 500 /);
    assert.equal((errors[0] as Error).message, "db down");
    assert.equal(transport.ended, true);
  });

  it("refuses invalid options when the server is created", () => {
    assert.throws(() => resolveConnectionOptions({ highWaterMark: 0 }), UsageError);
    assert.throws(() => resolveConnectionOptions({ protocols: [""] }), UsageError);
    assert.throws(() => resolveConnectionOptions({ maxMessageBytes: -1 }), UsageError);
  });
});
