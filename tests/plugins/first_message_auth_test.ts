// authenticateWithin(): first-message auth against a deadline on a fake clock.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import { App } from "../../plugins/app.ts";
import { authenticateWithin, type FirstMessageAuthOptions } from "../../plugins/auth.ts";
import { connect, deferred, errorLog, flush, frame } from "./_harness.ts";

const DEADLINE = 1234; // distinct from the pump's own timeouts, to tell the timers apart

function guardedApp(verify: FirstMessageAuthOptions<{ user?: string }>["verify"]) {
  const seen: string[] = [];
  const closes: { code: number; reason: string; wasClean: boolean }[] = [];
  const errors = errorLog();
  const app = new App<{ user?: string }>()
    .use(
      authenticateWithin({ timeoutMs: DEADLINE, verify }),
      {
        message(ctx) {
          seen.push(String(ctx.data));
          ctx.send(`${ctx.state.user ?? "?"} said ${String(ctx.data)}`);
        },
        close: (ctx) => void closes.push({ code: ctx.code, reason: ctx.reason, wasClean: ctx.wasClean }),
      },
    )
    .onError(errors.handler);
  return { app, seen, closes, errors };
}

const checkToken = (data: string | Uint8Array, ctx: { state: { user?: string } }) => {
  if (data !== "token:secret") return false;
  ctx.state.user = "alice";
  return true;
};

describe("authenticateWithin", () => {
  it("closes with 1008 Authentication timeout when nothing arrives in time", async () => {
    const { app, seen, closes, errors } = guardedApp(checkToken);
    const conn = await connect(app);
    assert.ok(conn.clock.pendingDelays.includes(DEADLINE), "the deadline is on the connection's clock");
    await conn.advance(DEADLINE - 1);
    assert.deepEqual(conn.frames(), [], "nothing before the deadline");
    assert.equal(conn.readyState, 1);
    await conn.advance(1);
    assert.deepEqual(conn.frames(), [{ type: "close", code: 1008, reason: "Authentication timeout" }]);
    assert.equal(conn.readyState, 2);
    await conn.text("token:secret");
    assert.deepEqual(seen, [], "a message after the deadline reaches nothing");
    await conn.close(1008);
    assert.deepEqual(closes, [{ code: 1008, reason: "", wasClean: true }]);
    assert.deepEqual(errors.errors, []);
  });

  it("closes with 1008 Authentication failed on a wrong first message, which reaches nothing", async () => {
    const verified: unknown[] = [];
    const { app, seen, errors } = guardedApp((data, ctx) => {
      verified.push(data);
      return checkToken(data, ctx);
    });
    const conn = await connect(app);
    await conn.advance(500);
    await conn.text("token:wrong");
    assert.deepEqual(conn.frames(), [{ type: "close", code: 1008, reason: "Authentication failed" }]);
    assert.deepEqual(seen, [], "the wrong message was not passed on");
    assert.deepEqual(verified, ["token:wrong"]);
    assert.ok(!conn.clock.pendingDelays.includes(DEADLINE), "the deadline timer was cleared");
    await conn.advance(DEADLINE);
    assert.equal(conn.closes().length, 1, "no second close frame at the old deadline");
    assert.deepEqual(errors.errors, []);
  });

  it("consumes a right first message, lets later ones flow, and clears the deadline", async () => {
    const { app, seen, errors } = guardedApp(checkToken);
    const conn = await connect(app);
    await conn.advance(DEADLINE - 100);
    await conn.text("token:secret");
    assert.deepEqual(seen, [], "the auth message itself is consumed");
    assert.deepEqual(conn.frames(), []);
    assert.ok(!conn.clock.pendingDelays.includes(DEADLINE), "the deadline timer was cleared");
    await conn.text("hello");
    await conn.text("again");
    assert.deepEqual(seen, ["hello", "again"]);
    assert.deepEqual(conn.texts(), ["alice said hello", "alice said again"], "verify set the state");
    const fired = await conn.advance(DEADLINE * 10);
    assert.equal(fired, 0, "no timer left to fire");
    assert.equal(conn.readyState, 1, "still open long after the deadline");
    assert.deepEqual(conn.closes(), []);
    assert.deepEqual(errors.errors, []);
  });

  it("passes binary data to verify as bytes", async () => {
    const got: unknown[] = [];
    const { app } = guardedApp((data) => {
      got.push(data instanceof Uint8Array ? Array.from(data) : data);
      return true;
    });
    const conn = await connect(app);
    await conn.binary([9, 8]);
    assert.deepEqual(got, [[9, 8]]);
  });

  it("awaits an async verify, holding later messages until it answers", async () => {
    const answer = deferred<boolean>();
    const { app, seen } = guardedApp(() => answer.promise);
    const conn = await connect(app);
    await conn.text("token:?");
    await conn.text("queued");
    assert.deepEqual(seen, [], "nothing passes while verify runs");
    answer.resolve(true);
    await flush();
    assert.deepEqual(seen, ["queued"], "the message sent during verification flows after it");
    assert.ok(!conn.clock.pendingDelays.includes(DEADLINE));
    await conn.advance(DEADLINE * 2);
    assert.equal(conn.readyState, 1);
  });

  it("closes with Authentication failed when an async verify says no", async () => {
    const { app, seen } = guardedApp(async () => {
      await Promise.resolve();
      return false;
    });
    const conn = await connect(app);
    await conn.text("x");
    await conn.text("y");
    assert.deepEqual(conn.closes(), [{ code: 1008, reason: "Authentication failed" }]);
    assert.deepEqual(seen, []);
  });

  it("keeps the deadline while an async verify is still running", async () => {
    const answer = deferred<boolean>();
    const { app, seen } = guardedApp(() => answer.promise);
    const conn = await connect(app);
    await conn.text("token");
    await conn.advance(DEADLINE);
    assert.deepEqual(conn.closes(), [{ code: 1008, reason: "Authentication timeout" }], "the close frame goes out at the deadline");
    answer.resolve(true);
    await flush();
    await conn.text("late");
    assert.deepEqual(seen, [], "nothing flows on a connection that timed out");
    assert.equal(conn.closes().length, 1);
  });

  it("reports a verify that throws and closes with 1011", async () => {
    const boom = new Error("verify bug");
    const { app, errors } = guardedApp(() => {
      throw boom;
    });
    const conn = await connect(app);
    await conn.text("x");
    assert.deepEqual(errors.errors, [boom]);
    assert.deepEqual(conn.closes(), [{ code: 1011, reason: "Internal error" }]);
  });

  it("clears the deadline when the peer leaves before authenticating", async () => {
    const { app, closes } = guardedApp(checkToken);
    const conn = await connect(app);
    await conn.close(1000, "bye");
    assert.deepEqual(closes, [{ code: 1000, reason: "bye", wasClean: true }]);
    assert.ok(!conn.clock.pendingDelays.includes(DEADLINE), "the deadline timer was cleared on close");
    await conn.socketClosed();
    assert.equal(conn.clock.pending, 0, "no timer at all once the socket closed");
  });

  it("times each connection on its own", async () => {
    const { app } = guardedApp(checkToken);
    const a = await connect(app);
    await a.advance(1000);
    const b = await connect(app, { clock: a.clock });
    await b.text("token:secret");
    await a.advance(DEADLINE - 1000);
    assert.deepEqual(a.closes(), [{ code: 1008, reason: "Authentication timeout" }]);
    assert.deepEqual(b.closes(), []);
    await b.advance(DEADLINE);
    assert.deepEqual(b.closes(), [], "b authenticated");
  });

  it("refuses invalid options with ERR_INVALID_OPTION", () => {
    const isOption = (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_OPTION";
    for (const timeoutMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, "5" as unknown as number]) {
      assert.throws(() => authenticateWithin({ timeoutMs, verify: () => true }), isOption, String(timeoutMs));
    }
    assert.throws(() => authenticateWithin({ timeoutMs: 10 } as never), isOption);
    assert.throws(() => authenticateWithin(undefined as never), isOption);
  });

  it("drops a message fed in the same chunk as the timed-out deadline's close", async () => {
    const { app, seen } = guardedApp(checkToken);
    const conn = await connect(app);
    await conn.advance(DEADLINE);
    conn.feed(frame(0x1, "token:secret"));
    await flush();
    assert.deepEqual(seen, []);
  });
});
