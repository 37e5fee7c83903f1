// observe(): option checks, the route label derived from the router's
// parameters, and the server's own refusals (503 when full) on a fake
// transport with a fake clock (handshake time is exact there).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { App, observe, UsageError } from "../../mod.ts";
import { ConnectionSet } from "../../runtimes/_registry.ts";
import { connect, FakeClock, flush } from "../plugins/_harness.ts";

describe("observe() options", () => {
  for (
    const [name, options] of [
      ["slowBufferedBytes", { slowBufferedBytes: -1 }],
      ["recentCloses", { recentCloses: 1.5 }],
      ["sampleEvery", { sampleEvery: 0 }],
      ["spans", { spans: "all" }],
      ["meter", { meter: 3 }],
      ["route", { route: "/x" }],
    ] as const
  ) {
    it(`refuses a bad ${name}`, () => {
      assert.throws(() => observe(options as never), (error: unknown) => error instanceof UsageError && error.code === "ERR_INVALID_OPTION");
    });
  }

  it("is accepted by use() with its read-outs, and makes no message or send phase by default", () => {
    const obs = observe();
    new App().use(obs);
    assert.equal((obs as { message?: unknown }).message, undefined);
    assert.equal((obs as { send?: unknown }).send, undefined);
    assert.equal(typeof observe({ sampleEvery: 4 }).message, "function");
  });
});

describe("observe() on a fake transport", () => {
  it("labels connections with the route template and times the handshake on the connection's clock", async () => {
    const obs = observe();
    const app = new App().use(obs)
      .route("/rooms/:room/users/:user", {})
      .route("/files/*", {});
    const clock = new FakeClock();
    const a = await connect(app, { clock, request: { path: "/rooms/lobby/users/ann%20b?x=1" } });
    const b = await connect(app, { clock, request: { path: "/files/a/b/c" } });
    assert.deepEqual(obs.snapshot().connections.map((c) => c.route).sort(), ["/files/*", "/rooms/:room/users/:user"]);
    const text = await obs.prometheus(new Request("http://x/")).text();
    assert.match(text, /duplex_server_handshake_duration_seconds_sum\{route="\/files\/\*",transport="raw",runtime="\w+"\} 0\n/);
    a.pump.terminate();
    b.pump.terminate();
    await flush();
    assert.deepEqual(obs.snapshot().recentCloses.map((c) => [c.code, c.by]), [[1006, "server"], [1006, "server"]]);
  });

  it("counts the server's own refusals (full: 503) by status", async () => {
    const obs = observe();
    const app = new App().use(obs);
    const set = new ConnectionSet({ maxConnections: 1 });
    await connect(app, { set });
    const refused = await connect(app, { set });
    assert.equal(refused.answer.status, 503);
    assert.deepEqual(obs.snapshot().totals.upgradesRefused, { 503: 1 });
    assert.equal(obs.snapshot().totals.upgradesAccepted, 1);
  });
});
