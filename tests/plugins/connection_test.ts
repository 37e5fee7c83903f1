// The App's connection phase on the real Pump: open, message, send, close
// and error middleware, failures and their close codes, event order.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CloseCode } from "../../core/close_code.ts";
import { ProtocolError, UsageError } from "../../core/errors.ts";
import { App } from "../../plugins/app.ts";
import type { CloseContext, EventContext } from "../../plugins/context.ts";
import { CloseError } from "../../plugins/errors.ts";
import { PHASES } from "../../plugins/pipeline.ts";
import { connect, deferred, errorLog, flush, frame } from "./_harness.ts";

type CloseSeen = { code: number; reason: string; wasClean: boolean; type: string };

function closeRecorder(): { closes: CloseSeen[]; close: (ctx: CloseContext) => void } {
  const closes: CloseSeen[] = [];
  return {
    closes,
    close: (ctx) => void closes.push({ code: ctx.code, reason: ctx.reason, wasClean: ctx.wasClean, type: ctx.type }),
  };
}

describe("App connection phase", () => {
  it("runs open once the 101 is sent, and what it sends follows the 101", async () => {
    const states: number[] = [];
    const app = new App().use({
      open(ctx) {
        states.push(ctx.readyState);
        ctx.send("welcome");
        ctx.send(new Uint8Array([1, 2, 3]));
      },
    });
    const conn = await connect(app);
    assert.equal(conn.status, 101);
    assert.deepEqual(states, [1], "open runs once, with the connection open");
    assert.deepEqual(conn.frames(), [{ type: "text", data: "welcome" }, { type: "binary", data: [1, 2, 3] }]);
  });

  it("delivers text and binary messages to message middleware", async () => {
    const got: unknown[] = [];
    const app = new App().use({
      message(ctx) {
        got.push(typeof ctx.data === "string" ? ctx.data : Array.from(ctx.data));
        ctx.send(ctx.data);
      },
    });
    const conn = await connect(app);
    await conn.text("héllo");
    await conn.binary([0, 255]);
    assert.deepEqual(got, ["héllo", [0, 255]]);
    assert.deepEqual(conn.frames(), [{ type: "text", data: "héllo" }, { type: "binary", data: [0, 255] }]);
  });

  it("lets message middleware transform data before next() and consume by not calling it", async () => {
    const seen: unknown[] = [];
    const app = new App().use(
      {
        message(ctx, next) {
          if (ctx.data === "secret") return; // consumed
          if (typeof ctx.data === "string") ctx.data = ctx.data.toUpperCase();
          return next();
        },
      },
      {
        message(ctx) {
          seen.push(ctx.data);
          ctx.send(`got ${String(ctx.data)}`);
        },
      },
    );
    const conn = await connect(app);
    await conn.text("hello");
    await conn.text("secret");
    await conn.text("bye");
    assert.deepEqual(seen, ["HELLO", "BYE"], "the consumed message never reached the second middleware");
    assert.deepEqual(conn.texts(), ["got HELLO", "got BYE"]);
  });

  it("runs send middleware: transforms what goes out, drops silently, and send() still returns true", async () => {
    const results: boolean[] = [];
    const sendSeen: unknown[] = [];
    const app = new App().use(
      {
        send(ctx, next) {
          sendSeen.push(ctx.data);
          if (ctx.data === "drop me") return; // dropped
          if (typeof ctx.data === "string") ctx.data = `[${ctx.data}]`;
          return next();
        },
      },
      {
        message(ctx) {
          results.push(ctx.send("drop me"));
          results.push(ctx.send(String(ctx.data)));
        },
      },
    );
    const conn = await connect(app);
    await conn.text("x");
    assert.deepEqual(sendSeen, ["drop me", "x"], "the send chain saw both");
    assert.deepEqual(conn.frames(), [{ type: "text", data: "[x]" }], "the dropped message never hit the wire");
    assert.deepEqual(results, [true, true], "send() answers true for a dropped message and for a sent one");
  });

  it("runs send middleware in order and lets peer.send() go through it too", async () => {
    const app = new App().use(
      { send: (ctx, next) => ((ctx.data = `${String(ctx.data)}1`), next()) },
      { send: (ctx, next) => ((ctx.data = `${String(ctx.data)}2`), next()) },
      { open: (ctx) => void ctx.peer.send("p") },
    );
    const conn = await connect(app);
    assert.deepEqual(conn.texts(), ["p12"]);
  });

  it("a throwing send middleware closes with 1011, reports once, and send() returns true", async () => {
    const errors = errorLog();
    const boom = new Error("encode failed");
    let result: boolean | undefined;
    const app = new App().use(
      {
        send() {
          throw boom;
        },
      },
      { open: (ctx) => void (result = ctx.send("x")) },
    ).onError(errors.handler);
    const conn = await connect(app);
    assert.equal(result, true);
    assert.deepEqual(errors.errors, [boom]);
    assert.deepEqual(errors.contexts, ["send"]);
    assert.deepEqual(conn.frames(), [{ type: "close", code: 1011, reason: "Internal error" }]);
  });

  it("sending after close answers false and drops the message, even through send middleware", async () => {
    const errors = errorLog();
    let late: (() => boolean) | undefined;
    const app = new App().use(
      { send: (_ctx, next) => next() },
      { open: (ctx) => void (late = () => ctx.send("late")) },
    ).onError(errors.handler);
    const conn = await connect(app);
    await conn.close(1000);
    const before = conn.frames().length;
    assert.equal(late!(), false);
    await flush();
    assert.equal(conn.frames().length, before, "nothing written");
    assert.deepEqual(errors.errors, [], "a late send is not reported to onError");
  });

  it("gives a function middleware every event type through ctx.type", async () => {
    const types: string[] = [];
    let errorSeen: unknown;
    const app = new App().use(
      (ctx: EventContext, next) => {
        types.push(ctx.type);
        if (ctx.type === "error") errorSeen = ctx.error;
        return next();
      },
      {
        message(ctx) {
          ctx.send(`echo ${String(ctx.data)}`);
        },
      },
    );
    const conn = await connect(app);
    await conn.text("m");
    await conn.ping([1]);
    await conn.pong([2]);
    // Make the output wait, then drain.
    conn.transport.accepting = false;
    await conn.text("m2");
    conn.transport.accepting = true;
    conn.pump.onDrain();
    await flush();
    void conn.set.shutdown(1001, "Server shutting down");
    await flush();
    conn.feed(frame(0x3, "reserved opcode"));
    await flush();
    assert.deepEqual(types, [
      "upgrade",
      "open",
      "message",
      "send",
      "ping",
      "pong",
      "message",
      "send",
      "drain",
      "shutdown",
      "error",
      "close",
    ]);
    assert.deepEqual([...new Set(types)].sort(), [...PHASES].sort(), "every phase was seen");
    assert.ok(errorSeen instanceof ProtocolError);
  });

  it("passes ping and pong payloads to their middleware after the pong went out", async () => {
    const seen: unknown[] = [];
    const app = new App().use({
      ping: (ctx) => void seen.push([ctx.type, Array.from(ctx.data)]),
      pong: (ctx) => void seen.push([ctx.type, Array.from(ctx.data)]),
    });
    const conn = await connect(app);
    await conn.ping("hi");
    await conn.pong([7]);
    assert.deepEqual(seen, [["ping", [104, 105]], ["pong", [7]]]);
    assert.deepEqual(conn.frames(), [{ type: "pong", data: [104, 105] }], "the engine answered the ping");
  });

  it("reports a clean client close: 1000, the reason, wasClean true, and answers it", async () => {
    const rec = closeRecorder();
    const conn = await connect(new App().use({ close: rec.close }));
    await conn.close(1000, "bye");
    assert.deepEqual(rec.closes, [{ code: 1000, reason: "bye", wasClean: true, type: "close" }]);
    assert.deepEqual(conn.closes(), [{ code: 1000, reason: "" }], "the server answered the close");
    assert.equal(conn.ended, true, "FIN after the close frame");
    assert.equal(conn.readyState, 3);
  });

  it("reports a close frame without a code as 1005", async () => {
    const rec = closeRecorder();
    const conn = await connect(new App().use({ close: rec.close }));
    await conn.close();
    assert.deepEqual(rec.closes, [{ code: 1005, reason: "", wasClean: true, type: "close" }]);
  });

  it("reports a FIN without a close frame as 1006, wasClean false", async () => {
    const rec = closeRecorder();
    const conn = await connect(new App().use({ close: rec.close }));
    await conn.end();
    assert.deepEqual(rec.closes, [{ code: 1006, reason: "", wasClean: false, type: "close" }]);
    assert.deepEqual(conn.frames(), [], "no close frame to a peer that left");
  });

  it("reports a socket that closes under the connection as 1006, once", async () => {
    const rec = closeRecorder();
    const conn = await connect(new App().use({ close: rec.close }));
    await conn.socketClosed();
    await conn.socketClosed();
    assert.deepEqual(rec.closes, [{ code: 1006, reason: "", wasClean: false, type: "close" }]);
  });

  it("reports a server-initiated close once the peer answers it", async () => {
    const rec = closeRecorder();
    const app = new App().use({
      open: (ctx) => ctx.close(4000, "server bye"),
      close: rec.close,
    });
    const conn = await connect(app);
    assert.deepEqual(conn.closes(), [{ code: 4000, reason: "server bye" }], "our close frame");
    assert.equal(conn.readyState, 2, "closing until the peer answers");
    assert.deepEqual(rec.closes, [], "no close event before the handshake completes");
    await conn.close(4000, "ok");
    assert.deepEqual(rec.closes, [{ code: 4000, reason: "ok", wasClean: true, type: "close" }]);
    assert.equal(conn.ended, true);
    assert.deepEqual(conn.closes(), [{ code: 4000, reason: "server bye" }], "no second close frame");
  });

  it("reports 1006 when the peer never answers a server close (close timeout on the clock)", async () => {
    const rec = closeRecorder();
    const app = new App().use({ open: (ctx) => ctx.close(1000), close: rec.close });
    const conn = await connect(app, { options: { closeTimeoutMs: 500 } });
    await conn.advance(499);
    assert.deepEqual(rec.closes, []);
    await conn.advance(1);
    assert.deepEqual(rec.closes, [{ code: 1006, reason: "", wasClean: false, type: "close" }]);
    assert.equal(conn.destroyed, true);
  });

  it("gives the error phase a ProtocolError for a reserved opcode, then closes with 1002", async () => {
    const errors: unknown[] = [];
    const rec = closeRecorder();
    const app = new App().use({ error: (ctx) => void errors.push(ctx.error), close: rec.close });
    const conn = await connect(app);
    conn.feed(frame(0x3, "x"));
    await flush();
    assert.equal(errors.length, 1, "one error event");
    assert.ok(errors[0] instanceof ProtocolError, "a ProtocolError");
    assert.equal((errors[0] as ProtocolError).closeCode, 1002);
    assert.deepEqual(conn.closes(), [{ code: 1002, reason: "" }]);
    assert.equal(rec.closes.length, 1);
    assert.equal(rec.closes[0]!.code, 1002);
    assert.equal(rec.closes[0]!.wasClean, false);
  });

  it("gives the error phase a 1007 ProtocolError for invalid UTF-8", async () => {
    const errors: ProtocolError[] = [];
    const conn = await connect(new App().use({ error: (ctx) => void errors.push(ctx.error as ProtocolError) }));
    conn.feed(frame(0x1, [0xff, 0xfe]));
    await flush();
    assert.equal(errors[0]?.closeCode, 1007);
    assert.deepEqual(conn.closes(), [{ code: 1007, reason: "" }]);
  });

  it("a throwing message handler reports once and closes that connection only with 1011", async () => {
    const errors = errorLog();
    const errorPhase: unknown[] = [];
    const boom = new Error("handler bug");
    const app = new App().use({
      message(ctx) {
        if (ctx.data === "crash") throw boom;
        if (ctx.readyState === 1) ctx.send(`ok ${String(ctx.data)}`);
      },
      error: (ctx) => void errorPhase.push(ctx.error),
    }).onError(errors.handler);
    const a = await connect(app);
    const b = await connect(app);
    await a.text("crash");
    assert.deepEqual(errors.errors, [boom], "onError once, with the error");
    assert.deepEqual(errors.contexts, ["message"]);
    assert.deepEqual(errorPhase, [], "a middleware's error does not go to the error phase");
    assert.deepEqual(a.frames(), [{ type: "close", code: 1011, reason: "Internal error" }]);
    assert.equal(a.readyState, 2);
    await b.text("still here");
    assert.deepEqual(b.frames(), [{ type: "text", data: "ok still here" }], "the other connection keeps working");
    assert.equal(b.readyState, 1);
    await a.text("after crash");
    assert.deepEqual(errors.errors, [boom], "no more errors");
    assert.deepEqual(a.frames(), [{ type: "close", code: 1011, reason: "Internal error" }], "nothing else sent on the failed connection");
  });

  it("an async rejection in a message handler reports once and closes with 1011", async () => {
    const errors = errorLog();
    const boom = new Error("async bug");
    const app = new App().use({
      async message() {
        await Promise.resolve();
        throw boom;
      },
    }).onError(errors.handler);
    const conn = await connect(app);
    await conn.text("x");
    assert.deepEqual(errors.errors, [boom]);
    assert.deepEqual(conn.closes(), [{ code: 1011, reason: "Internal error" }]);
  });

  it("a throwing open handler closes with 1011", async () => {
    const errors = errorLog();
    const app = new App().use({
      open() {
        throw new Error("open bug");
      },
    }).onError(errors.handler);
    const conn = await connect(app);
    assert.equal(conn.status, 101);
    assert.equal(errors.errors.length, 1);
    assert.deepEqual(errors.contexts, ["open"]);
    assert.deepEqual(conn.closes(), [{ code: 1011, reason: "Internal error" }]);
  });

  it("a throwing close handler is reported without sending anything", async () => {
    const errors = errorLog();
    const app = new App().use({
      close() {
        throw new Error("close bug");
      },
    }).onError(errors.handler);
    const conn = await connect(app);
    await conn.close(1000);
    assert.equal(errors.errors.length, 1);
    assert.deepEqual(errors.contexts, ["close"]);
    assert.deepEqual(conn.closes(), [{ code: 1000, reason: "" }], "only the answer to the peer's close");
  });

  for (const [code, reason] of [[4001, "x"], [CloseCode.PolicyViolation, "policy"], [CloseCode.TryAgainLater, "busy"]] as const) {
    it(`throw new CloseError(${code}) closes with ${code} and its reason, without onError`, async () => {
      const errors = errorLog();
      const rec = closeRecorder();
      const app = new App().use({
        message() {
          throw new CloseError(code, reason);
        },
        close: rec.close,
      }).onError(errors.handler);
      const conn = await connect(app);
      await conn.text("go");
      assert.deepEqual(conn.closes(), [{ code, reason }]);
      assert.deepEqual(errors.errors, [], "a CloseError is not reported");
      await conn.close(code);
      assert.equal(rec.closes[0]?.code, code);
      assert.equal(rec.closes[0]?.wasClean, true);
    });
  }

  it("an async CloseError closes with its code too", async () => {
    const errors = errorLog();
    const app = new App().use({
      async message() {
        await Promise.resolve();
        throw new CloseError(4999, "async");
      },
    }).onError(errors.handler);
    const conn = await connect(app);
    await conn.text("go");
    assert.deepEqual(conn.closes(), [{ code: 4999, reason: "async" }]);
    assert.deepEqual(errors.errors, []);
  });

  it("CloseError refuses codes that may not be sent, and reasons over 123 bytes", () => {
    for (const code of [1005, 1006, 1015, 5000, 999, 1004, 2999, 1000.5]) {
      assert.throws(
        () => new CloseError(code, "x"),
        (e) => e instanceof UsageError && e.code === "ERR_INVALID_CLOSE_CODE",
        `CloseError(${code}) must throw`,
      );
    }
    assert.throws(() => new CloseError(4000, "é".repeat(62)), (e) => e instanceof UsageError && e.code === "ERR_CLOSE_REASON_TOO_LONG");
    const ok = new CloseError(4000, "é".repeat(61) + "x");
    assert.equal(ok.code, 4000);
    assert.equal(ok.name, "CloseError");
    assert.equal(new CloseError(1000).reason, "");
  });

  it("runs the events of one connection one at a time: an async handler delays the next message", async () => {
    const gate = deferred();
    const log: string[] = [];
    const app = new App().use({
      async message(ctx) {
        log.push(`start ${String(ctx.data)}`);
        if (ctx.data === "slow") await gate.promise;
        log.push(`end ${String(ctx.data)}`);
        ctx.send(`done ${String(ctx.data)}`);
      },
      close: (ctx) => void log.push(`close ${ctx.code}`),
    });
    const conn = await connect(app);
    conn.feed(frame(0x1, "slow"));
    conn.feed(frame(0x1, "fast"));
    conn.feed(frame(0x8, [0x03, 0xe8]));
    await flush();
    assert.deepEqual(log, ["start slow"], "the second message waits for the first");
    assert.equal(conn.transport.paused, true, "reading paused meanwhile");
    gate.resolve();
    await flush();
    assert.deepEqual(log, ["start slow", "end slow", "start fast", "end fast", "close 1000"]);
    assert.deepEqual(conn.texts(), ["done slow", "done fast"]);
  });

  it("close() from outside the hooks goes out at once even while a hook is pending", async () => {
    const stuck = deferred();
    let peer: { close(code?: number, reason?: string): void; terminate(): void } | undefined;
    const app = new App().use({ open: (ctx) => void (peer = ctx.peer), message: () => stuck.promise });
    const conn = await connect(app, { options: { closeTimeoutMs: 500 } });
    await conn.text("a hook that takes its time");
    peer!.close(4000, "admin kick"); // e.g. from a timer or another connection's handler
    await flush();
    assert.deepEqual(conn.closes(), [{ code: 4000, reason: "admin kick" }], "the close frame was written");
    assert.ok(conn.clock.pendingDelays.includes(500), "the close timeout runs");
    stuck.resolve();
  });

  it("keeps separate connections independent while one of them waits", async () => {
    const gate = deferred();
    const app = new App().use({
      async message(ctx) {
        if (ctx.data === "slow") await gate.promise;
        ctx.send(`done ${String(ctx.data)}`);
      },
    });
    const a = await connect(app);
    const b = await connect(app);
    await a.text("slow");
    await b.text("quick");
    assert.deepEqual(a.texts(), []);
    assert.deepEqual(b.texts(), ["done quick"]);
    gate.resolve();
    await flush();
    assert.deepEqual(a.texts(), ["done slow"]);
  });

  it("gives each connection its own id and params, and the peer stays the same across events", async () => {
    const peers = new Set<unknown>();
    const ids = new Set<string>();
    const app = new App().use({
      open: (ctx) => void (peers.add(ctx.peer), ids.add(ctx.id)),
      message: (ctx) => void (peers.add(ctx.peer), ids.add(ctx.id)),
      close: (ctx) => void (peers.add(ctx.peer), ids.add(ctx.id)),
    });
    const conn = await connect(app);
    await conn.text("a");
    await conn.close(1000);
    assert.equal(peers.size, 1, "one peer for the connection's whole life");
    assert.deepEqual([...ids], [conn.pump.id]);
    const other = await connect(app);
    await other.text("b");
    assert.equal(peers.size, 2);
    assert.equal(ids.size, 2);
  });

  it("keeps each connection's peer when their messages interleave, and a new one for a connection after its close", async () => {
    const seen: [string, unknown][] = [];
    const app = new App().use({
      message: (ctx) => void seen.push([ctx.id, ctx.peer]),
      close: (ctx) => void seen.push([`${ctx.id} closed`, ctx.peer]),
    });
    const a = await connect(app);
    const b = await connect(app);
    await a.text("1");
    await a.text("2");
    await b.text("3");
    await a.text("4");
    await b.text("5");
    const peerOf = (id: string) => new Set(seen.filter(([seenId]) => seenId === id).map(([, peer]) => peer));
    assert.equal(peerOf(a.pump.id).size, 1);
    assert.equal(peerOf(b.pump.id).size, 1);
    assert.notEqual([...peerOf(a.pump.id)][0], [...peerOf(b.pump.id)][0]);
    // The last connection looked up closes: its peer goes with it, and an
    // event the adapter still delivers for it gets a fresh one, as before.
    await b.close(1000);
    const closed = seen.at(-1)!;
    assert.equal(closed[0], `${b.pump.id} closed`);
    assert.equal(closed[1], [...peerOf(b.pump.id)][0]);
    await app.message(b.pump, "late");
    assert.equal(seen.at(-1)![0], b.pump.id);
    assert.notEqual(seen.at(-1)![1], closed[1], "a fresh peer after the close");
    await a.text("6");
    assert.equal(seen.at(-1)![1], [...peerOf(a.pump.id)][0], "the other connection keeps its peer");
  });

  it("runs a phase method replaced after use(), with its object as this", async () => {
    const got: string[] = [];
    class Tagged {
      readonly #tag = "first";
      message(ctx: { data: unknown }): void {
        got.push(`${this.#tag} ${String(ctx.data)}`);
      }
    }
    const middleware = new Tagged();
    const app = new App().use(middleware);
    const conn = await connect(app);
    await conn.text("a");
    middleware.message = function (this: Tagged, ctx: { data: unknown }) {
      got.push(`replaced ${this === middleware} ${String(ctx.data)}`);
    };
    await conn.text("b");
    assert.deepEqual(got, ["first a", "replaced true b"]);
  });

  it("refuses middleware that is not a function or an object of phase functions", () => {
    const app = new App();
    for (const bad of [null, 1, "x", undefined]) {
      assert.throws(() => app.use(bad as never), (e) => e instanceof UsageError && e.code === "ERR_INVALID_MIDDLEWARE", String(bad));
    }
    assert.throws(() => app.use({ message: "nope" } as never), (e) => e instanceof UsageError && e.code === "ERR_INVALID_MIDDLEWARE");
    assert.throws(() => app.onError("x" as never), TypeError);
  });
});
