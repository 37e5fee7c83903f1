// heartbeat(): pings, dead-peer detection and timer hygiene on a fake clock.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import { App } from "../../plugins/app.ts";
import { heartbeat, type HeartbeatOptions } from "../../plugins/heartbeat.ts";
import { connect, deferred, FakeClock, flush, frame } from "./_harness.ts";

const INTERVAL = 1000;
const TIMEOUT = 300;

function beatingApp(options: HeartbeatOptions = { intervalMs: INTERVAL, timeoutMs: TIMEOUT }) {
  const closes: { code: number; reason: string; wasClean: boolean }[] = [];
  const messages: string[] = [];
  const app = new App().use(
    heartbeat(options),
    {
      message: (ctx) => void messages.push(String(ctx.data)),
      close: (ctx) => void closes.push({ code: ctx.code, reason: ctx.reason, wasClean: ctx.wasClean }),
    },
  );
  return { app, closes, messages };
}

const pings = (frames: { type: string }[]) => frames.filter((f) => f.type === "ping").length;

describe("heartbeat", () => {
  it("pings a silent peer after intervalMs, with an empty payload", async () => {
    const { app } = beatingApp();
    const conn = await connect(app);
    await conn.advance(INTERVAL - 1);
    assert.deepEqual(conn.frames(), [], "no ping before the interval");
    await conn.advance(1);
    assert.deepEqual(conn.frames(), [{ type: "ping", data: [] }], "one ping at the interval");
  });

  it("drops a peer that does not answer within timeoutMs: destroyed, no close frame, close hears 1006", async () => {
    const { app, closes } = beatingApp();
    const conn = await connect(app);
    await conn.advance(INTERVAL);
    const writesAfterPing = conn.transport.writes.length;
    await conn.advance(TIMEOUT - 1);
    assert.equal(conn.destroyed, false, "still alive just before the timeout");
    assert.deepEqual(closes, []);
    await conn.advance(1);
    assert.equal(conn.destroyed, true, "the transport was destroyed");
    assert.equal(conn.ended, false, "destroyed, not ended gracefully");
    assert.equal(conn.transport.writes.length, writesAfterPing, "nothing written after the ping");
    assert.deepEqual(conn.frames(), [{ type: "ping", data: [] }], "no close frame to a dead peer");
    assert.deepEqual(closes, [{ code: 1006, reason: "", wasClean: false }]);
    assert.equal(conn.readyState, 3);
    assert.equal(conn.clock.pending, 0, "no timer left");
  });

  it("keeps a peer that answers the ping in time, and pings it again one interval after the last ping", async () => {
    const { app, closes } = beatingApp();
    const conn = await connect(app);
    await conn.advance(INTERVAL); // ping 1 at 1000
    await conn.advance(TIMEOUT - 1);
    await conn.pong();
    await conn.advance(1); // 1300: the check sees life
    assert.equal(conn.destroyed, false, "a pong within the timeout keeps the connection");
    assert.equal(pings(conn.frames()), 1);
    await conn.advance(INTERVAL - TIMEOUT - 1);
    assert.equal(pings(conn.frames()), 1, "no new ping before the interval is over");
    await conn.advance(1); // 2000
    assert.equal(pings(conn.frames()), 2, "pinged again every interval");
    await conn.advance(TIMEOUT);
    assert.equal(conn.destroyed, true, "the second ping went unanswered");
    assert.deepEqual(closes, [{ code: 1006, reason: "", wasClean: false }]);
  });

  it("drops a peer that dies after being busy within intervalMs + timeoutMs", async () => {
    const { app } = beatingApp();
    const conn = await connect(app);
    await conn.advance(INTERVAL + 1); // just after ping 1
    await conn.text("last words"); // life after the ping, then silence
    await conn.advance(INTERVAL + TIMEOUT - 2);
    assert.equal(conn.destroyed, false, "still within one interval and a timeout of the last frame");
    await conn.advance(1);
    assert.equal(conn.destroyed, true, "dropped at the next ping's deadline");
  });

  it("counts a message after the ping as an answer", async () => {
    const { app } = beatingApp();
    const conn = await connect(app);
    await conn.advance(INTERVAL);
    await conn.text("busy, not ponging");
    await conn.advance(TIMEOUT);
    assert.equal(conn.destroyed, false);
    assert.equal(conn.readyState, 1);
  });

  it("keeps a busy peer that never answers pings: its messages count as life", async () => {
    const { app, messages } = beatingApp();
    const conn = await connect(app);
    for (let i = 0; i < 40; i++) {
      await conn.advance(TIMEOUT - 1);
      await conn.text(`m${i}`);
    }
    assert.ok(conn.clock.now() > 3 * (INTERVAL + TIMEOUT), "long enough to have dropped a silent peer several times");
    assert.equal(messages.length, 40);
    assert.ok(pings(conn.frames()) >= 10, `pinged every interval all along (${pings(conn.frames())} pings)`);
    assert.equal(conn.destroyed, false, "never dropped");
  });

  it("counts a partial frame fed byte by byte as life", async () => {
    const { app, messages } = beatingApp();
    const conn = await connect(app);
    const bytes = frame(0x1, "slowly");
    for (const byte of bytes) {
      await conn.advance(TIMEOUT - 1);
      conn.feed(new Uint8Array([byte]));
    }
    await flush();
    assert.ok(conn.clock.now() > INTERVAL + TIMEOUT, "long enough to have dropped a silent peer");
    assert.deepEqual(messages, ["slowly"], "the message arrived whole");
    assert.equal(conn.destroyed, false, "single bytes of an unfinished frame kept it alive");
    await conn.advance(INTERVAL + TIMEOUT);
    assert.equal(conn.destroyed, true, "dropped once silence starts");
  });

  it("clears its timers on a clean close: nothing pending once the socket closed", async () => {
    const { app, closes } = beatingApp();
    const conn = await connect(app);
    await conn.advance(INTERVAL / 2);
    await conn.close(1000, "bye");
    assert.deepEqual(closes, [{ code: 1000, reason: "bye", wasClean: true }]);
    assert.ok(!conn.clock.pendingDelays.includes(INTERVAL), "the heartbeat timer was cleared by close");
    await conn.socketClosed();
    assert.equal(conn.clock.pending, 0, "no timer left at all");
    const writes = conn.transport.writes.length;
    assert.equal(await conn.advance(INTERVAL * 10), 0, "nothing fires later");
    assert.equal(conn.transport.writes.length, writes, "no ping after close");
  });

  it("clears its timers while waiting for a pong when the peer closes", async () => {
    const { app } = beatingApp();
    const conn = await connect(app);
    await conn.advance(INTERVAL);
    assert.ok(conn.clock.pendingDelays.includes(TIMEOUT), "the pong deadline is pending");
    await conn.end();
    assert.ok(!conn.clock.pendingDelays.includes(TIMEOUT), "cleared by close");
    await conn.socketClosed();
    assert.equal(conn.clock.pending, 0);
  });

  it("clears its timers when the socket dies under the connection", async () => {
    const { app, closes } = beatingApp();
    const conn = await connect(app);
    await conn.socketClosed();
    assert.deepEqual(closes, [{ code: 1006, reason: "", wasClean: false }]);
    assert.equal(conn.clock.pending, 0);
  });

  it("watches each connection on its own", async () => {
    const { app } = beatingApp();
    const a = await connect(app);
    const b = await connect(app, { clock: a.clock });
    for (let i = 0; i < 3; i++) {
      await a.advance(INTERVAL / 2);
      await b.text("alive");
    }
    assert.equal(a.destroyed, true, "the silent one was dropped");
    assert.equal(b.destroyed, false, "the talkative one was kept");
    assert.equal(pings(b.frames()), 1, "both are pinged every interval");
  });

  it("shares one timer among its connections on a clock, and still pings each at its own time", async () => {
    const { app } = beatingApp();
    // The heartbeat's timers: the only ones due within an interval (the idle timeout's are minutes away).
    const beats = (clock: FakeClock) => clock.pendingDelays.filter((ms) => ms <= INTERVAL).length;
    const a = await connect(app);
    assert.equal(beats(a.clock), 1);
    await a.advance(INTERVAL / 2);
    const b = await connect(app, { clock: a.clock });
    const c = await connect(app, { clock: a.clock });
    assert.equal(beats(a.clock), 1, "no timer per connection");
    await a.advance(INTERVAL / 2);
    assert.equal(pings(a.frames()), 1, "a pinged one interval after its open");
    assert.equal(pings(b.frames()) + pings(c.frames()), 0, "b and c not yet");
    await a.advance(INTERVAL / 2);
    assert.equal(pings(b.frames()), 1, "b pinged one interval after its open");
    assert.equal(pings(c.frames()), 1);
    await b.close(1000, "bye");
    await b.socketClosed();
    await a.advance(INTERVAL * 3);
    assert.equal(a.destroyed && c.destroyed, true, "the silent ones dropped");
    await a.socketClosed();
    await c.socketClosed();
    assert.equal(beats(a.clock), 0, "the shared timer is gone with the last connection");
  });

  it("uses 30 s and 10 s by default", async () => {
    const { app } = beatingApp({});
    const conn = await connect(app);
    await conn.advance(29_999);
    assert.equal(pings(conn.frames()), 0);
    await conn.advance(1);
    assert.equal(pings(conn.frames()), 1);
    await conn.advance(9_999);
    assert.equal(conn.destroyed, false);
    await conn.advance(1);
    assert.equal(conn.destroyed, true);
  });

  it("stops at once on a closing connection instead of pinging it", async () => {
    const app = new App().use(heartbeat({ intervalMs: INTERVAL, timeoutMs: TIMEOUT }), { open: (ctx) => ctx.close(4000, "bye") });
    const conn = await connect(app, { options: { closeTimeoutMs: 100_000 } });
    await conn.advance(INTERVAL * 3);
    assert.deepEqual(conn.frames(), [{ type: "close", code: 4000, reason: "bye" }], "no ping on a closing connection");
  });

  it("drops a silent peer even while one of its hooks is still pending", async () => {
    const stuck = deferred();
    const app = new App().use(heartbeat({ intervalMs: INTERVAL, timeoutMs: TIMEOUT }), { message: () => stuck.promise });
    const conn = await connect(app);
    await conn.text("this hook never ends");
    // The message came before the ping: nothing answers the ping, the timeout drops.
    await conn.advance(INTERVAL + TIMEOUT);
    assert.equal(pings(conn.frames()), 1, "pinged");
    assert.equal(conn.destroyed, true, "the silent peer is dropped although a hook is pending");
    stuck.resolve();
  });

  it("refuses invalid options with ERR_INVALID_OPTION", () => {
    const isOption = (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_OPTION";
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, "1000" as unknown as number]) {
      assert.throws(() => heartbeat({ intervalMs: bad }), isOption, `intervalMs ${String(bad)}`);
      assert.throws(() => heartbeat({ timeoutMs: bad }), isOption, `timeoutMs ${String(bad)}`);
    }
  });
});

describe("heartbeat() on a path that cannot ping", () => {
  it("stops for that connection, keeps it open, and says so once", async () => {
    const clock = new FakeClock();
    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(" "));
    try {
      const middleware = heartbeat({ intervalMs: INTERVAL, timeoutMs: TIMEOUT });
      let terminated = 0;
      const peerThatCannotPing = () => ({
        readyState: 1,
        bytesReceived: 0,
        clock,
        ping(): void {
          throw new UsageError("ERR_UNSUPPORTED", "Deno.serve cannot send pings");
        },
        terminate(): void {
          terminated++;
        },
      });
      for (const peer of [peerThatCannotPing(), peerThatCannotPing()]) {
        await middleware.open!({ peer, clock } as never, () => undefined);
      }
      clock.advance(INTERVAL * 5);
      assert.equal(terminated, 0, "a live peer is not dropped because it cannot be pinged");
      assert.equal(warnings.length, 1, "one warning, not one per connection");
      assert.match(warnings[0]!, /^duplex: heartbeat\(\) cannot ping on this path, so it is off for its connections \(Deno\.serve cannot send pings\)/);
    } finally {
      console.warn = warn;
    }
  });
});
