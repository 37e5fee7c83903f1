// observe().prometheus(): the text exposition after a real session, checked by
// Prometheus's own `promtool check metrics` (syntax and its lint rules: HELP,
// TYPE, units in names, `_total` counters), with label values that need
// escaping. promtool is a Debian package (`prometheus`), installed by .ci/run:
// without it the check is skipped locally and fails under CI.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import { App, observe, serve } from "../../mod.ts";
import { Client, rawHandshake, until, upgradeRequest } from "../runtimes/_helpers.ts";

const inCi = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false";
const PROMTOOL = ["/usr/bin/promtool", "/usr/local/bin/promtool"].find((path) => existsSync(path));

function promtool(text: string): { status: number | null; output: string } {
  const run = spawnSync(PROMTOOL!, ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

async function session(): Promise<{ text: string; head: Response }> {
  const obs = observe({
    // A route label with every character the format escapes.
    route: (ctx) => (ctx.request.url.includes("odd") ? 'a "quoted"\\ back\nslash' : "/plain"),
    backplane: { stats: { queued: 2, queuedBytes: 64, dropped: 1, published: 5, received: 4 } },
    reliable: { stats: { fresh: 3, recovered: 2, gap: 1 } },
    sampleEvery: 1,
  });
  const app = new App().use(obs, {
    upgrade: (ctx, next) => (ctx.path === "/no" ? ctx.reject(401) : next()),
    open: (ctx) => void ctx.subscribe("room"),
    message: (ctx) => void ctx.publish("room", ctx.data, { self: true }),
  });
  const server = await serve(app, { port: 0, hostname: "127.0.0.1" });
  try {
    const a = await Client.open(`ws://127.0.0.1:${server.port}/odd`);
    const b = await Client.open(`ws://127.0.0.1:${server.port}/plain`);
    await a.roundTrip("hello");
    await b.messagesUntil(1);
    const refused = await rawHandshake(server.port, upgradeRequest({}, "GET /no HTTP/1.1"));
    assert.equal(refused.status, 401);
    refused.socket.destroy();
    b.ws.close(1001);
    await b.closed;
    await until(() => obs.snapshot().totals.open === 1, 3000, "b closed");
    const text = await obs.prometheus(new Request("http://localhost/metrics")).text();
    const head = obs.prometheus(new Request("http://localhost/metrics", { method: "HEAD" }));
    a.ws.close();
    await a.closed;
    return { text, head };
  } finally {
    await server.close();
  }
}

describe("observe().prometheus()", () => {
  it("writes text that promtool check metrics accepts", { skip: PROMTOOL === undefined && !inCi && "promtool is not installed (Debian package prometheus; .ci/run installs it)" }, async () => {
    assert.ok(PROMTOOL, "promtool is required under CI (.ci/run installs Debian's prometheus package)");
    const { text } = await session();
    const { status, output } = promtool(text);
    assert.equal(status, 0, `promtool check metrics:\n${output}\n---\n${text}`);
    assert.equal(output.trim(), "", "no lint warnings either");
  });

  it("escapes label values and carries the session's numbers", async () => {
    const { text, head } = await session();
    assert.match(text, /^# HELP duplex_server_active_connections /m);
    assert.match(text, /^# TYPE duplex_server_active_connections gauge$/m);
    assert.ok(text.includes('route="a \\"quoted\\"\\\\ back\\nslash"'), "quote, backslash and newline escaped");
    assert.match(text, /^duplex_server_upgrades_total\{runtime="\w+",status="401"\} 1$/m);
    assert.match(text, /^duplex_server_closes_total\{route="\/plain",runtime="\w+",code="1001",initiator="client"\} 1$/m);
    assert.match(text, /^duplex_pubsub_deliveries_total\{runtime="\w+"\} 2$/m);
    assert.match(text, /^duplex_backplane_queue_messages\{runtime="\w+"\} 2$/m);
    assert.match(text, /^duplex_reliable_subscriptions_total\{runtime="\w+",result="recovered"\} 2$/m);
    assert.match(text, /^duplex_server_handshake_duration_seconds_count\{route="\/plain",transport="raw",runtime="\w+"\} 1$/m);
    assert.ok(text.endsWith("\n"));
    assert.equal(head.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(await head.text(), "");
  });

  it("refuses methods other than GET and HEAD with 405", () => {
    const response = observe().prometheus(new Request("http://localhost/metrics", { method: "POST" }));
    assert.equal(response.status, 405);
    assert.equal(response.headers.get("allow"), "GET, HEAD");
  });
});
