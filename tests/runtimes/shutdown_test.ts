// A server going away: ConnectionSet.shutdown() on pumps running an App.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { App } from "../../plugins/app.ts";
import { ConnectionSet } from "../../runtimes/_registry.ts";
import { connect, deferred, FakeClock, flush } from "../plugins/_harness.ts";

function recordingApp() {
  const closes: { id: string; code: number; reason: string; wasClean: boolean }[] = [];
  const app = new App().use({
    message: (ctx) => void ctx.send(`echo ${String(ctx.data)}`),
    close: (ctx) => void closes.push({ id: ctx.id, code: ctx.code, reason: ctx.reason, wasClean: ctx.wasClean }),
  });
  return { app, closes };
}

describe("server shutdown", () => {
  it("sends 1001 Server shutting down, and resolves once the sockets are closed", async () => {
    const { app, closes } = recordingApp();
    const set = new ConnectionSet();
    const conn = await connect(app, { set });
    assert.equal(set.size, 1, "the pump joined the set");
    let done = false;
    const shutdown = set.shutdown(1001, "Server shutting down").then(() => (done = true));
    await flush();
    assert.equal(set.closing, true);
    assert.deepEqual(conn.frames(), [{ type: "close", code: 1001, reason: "Server shutting down" }]);
    assert.equal(conn.readyState, 2, "closing, waiting for the peer");
    assert.equal(done, false, "not done while the connection lives");
    await conn.close(1001);
    assert.deepEqual(closes, [{ id: conn.pump.id, code: 1001, reason: "", wasClean: true }]);
    assert.equal(conn.ended, true, "FIN after the handshake");
    assert.equal(done, false, "still waiting for the socket to close");
    await conn.socketClosed();
    await shutdown;
    assert.equal(done, true);
    assert.equal(set.size, 0);
  });

  it("closes every connection of the set, and destroys those that never answer", async () => {
    const { app, closes } = recordingApp();
    const set = new ConnectionSet();
    const clock = new FakeClock();
    const a = await connect(app, { set, clock, options: { closeTimeoutMs: 2000 } });
    const b = await connect(app, { set, clock, options: { closeTimeoutMs: 2000 } });
    const shutdown = set.shutdown(1001, "Server shutting down");
    await flush();
    for (const conn of [a, b]) assert.deepEqual(conn.closes(), [{ code: 1001, reason: "Server shutting down" }]);
    await a.close(1001);
    await a.socketClosed();
    assert.equal(set.size, 1);
    await clock.advanceAsync(1999);
    assert.equal(b.destroyed, false);
    await clock.advanceAsync(1);
    assert.equal(b.destroyed, true, "the silent peer is destroyed at the close timeout");
    await b.socketClosed();
    await shutdown;
    assert.equal(set.size, 0);
    assert.deepEqual(closes.map((c) => [c.code, c.wasClean]), [[1001, true], [1006, false]]);
  });

  it("drops a handshake in progress without answering it", async () => {
    const { app, closes } = recordingApp();
    const set = new ConnectionSet();
    const conn = await connect(app, { set, request: "GET / HTTP/1.1\r\nHost: x\r\n" });
    assert.equal(conn.answered, false);
    const shutdown = set.shutdown(1001, "Server shutting down");
    await flush();
    assert.equal(conn.destroyed, true);
    assert.equal(conn.transport.writes.length, 0, "nothing written");
    await conn.socketClosed();
    await shutdown;
    assert.deepEqual(closes, [], "no close event for a connection that never opened");
  });

  it("resolves at once with no connection", async () => {
    await new ConnectionSet().shutdown(1001, "Server shutting down");
  });

  it("closes a connection whose hook is still pending", async () => {
    const stuck = deferred();
    const app = new App().use({ message: () => stuck.promise });
    const set = new ConnectionSet();
    const conn = await connect(app, { set, options: { closeTimeoutMs: 2000 } });
    await conn.text("slow");
    void set.shutdown(1001, "Server shutting down");
    await flush();
    assert.deepEqual(conn.closes(), [{ code: 1001, reason: "Server shutting down" }], "the close frame went out");
    await conn.advance(2000);
    assert.equal(conn.destroyed, true, "the close timeout ran");
    stuck.resolve();
  });
});
