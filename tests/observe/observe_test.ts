// observe(): a scripted session over real sockets (connect, text and binary
// messages, a refused upgrade, a protocol error, closes from both sides), with
// the recorded values read back through the real OpenTelemetry SDKs and from
// snapshot(). Runs on Node, Deno and Bun, on the runtime's raw transport; the
// native transports (Deno.serve, Bun.serve) get a shorter session below.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as otel from "@opentelemetry/api";
import { type MetricData, MeterProvider, MetricReader, type ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { App, CloseError, MemoryTopicLog, observe, type Observer, reliable, runtime, type Server, serve, type TransportName } from "../../mod.ts";
import { Client, rawHandshake, until, upgradeRequest } from "../runtimes/_helpers.ts";
import { encodeFrame } from "../runtimes/_wsclient.ts";

/** A reader the test collects from when it wants (no timer). */
class TestReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

type Attrs = Record<string, unknown>;

function metric(result: ResourceMetrics, name: string): MetricData {
  for (const scope of result.scopeMetrics) {
    for (const m of scope.metrics) if (m.descriptor.name === name) return m;
  }
  throw new Error(`no metric ${name}`);
}

/** The value of the data point whose attributes include `match`. */
function value(result: ResourceMetrics, name: string, match: Attrs = {}): number {
  const points = (metric(result, name).dataPoints as { attributes: Attrs; value: unknown }[]).filter((p) =>
    Object.entries(match).every(([k, v]) => p.attributes[k] === v)
  );
  let sum = 0;
  for (const p of points) sum += typeof p.value === "number" ? p.value : (p.value as { count: number }).count;
  return sum;
}

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";

function scripted(transport: TransportName) {
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const obs: Observer = observe({
    meter: meterProvider.getMeter("duplex-test"),
    tracer: tracerProvider.getTracer("duplex-test"),
    api: otel,
    spans: "message",
    sampleEvery: 1,
  });
  const app = new App().use(obs).route("/rooms/:room", {
    message(ctx) {
      if (ctx.data === "close-me") throw new CloseError(4001, "bye");
      ctx.send(ctx.data);
    },
  });
  return { reader, exporter, tracerProvider, obs, app, transport };
}

describe(`observe() on ${runtime()} (raw transport)`, () => {
  const s = scripted("raw");
  let server: Server;
  let collected: ResourceMetrics;

  before(async () => {
    server = await serve(s.app, { port: 0, hostname: "127.0.0.1" });
    const url = `ws://127.0.0.1:${server.port}`;
    // A: text and binary, traced from the request's traceparent, closes itself.
    const a = await Client.open(`${url}/rooms/lobby`, undefined, { headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } });
    assert.equal((await a.roundTrip("héllo")).data.toString(), "héllo");
    assert.equal((await a.roundTrip(new Uint8Array([1, 2, 3]))).data.length, 3);
    // A refused upgrade: no route.
    const refused = await rawHandshake(server.port, upgradeRequest({}, "GET /nowhere HTTP/1.1"));
    assert.equal(refused.status, 404);
    refused.socket.destroy();
    // B breaks the protocol: a text frame that is not UTF-8 (the server closes with 1007).
    const b = await rawHandshake(server.port, upgradeRequest({}, "GET /rooms/b HTTP/1.1"));
    assert.equal(b.status, 101);
    b.socket.resume();
    b.socket.write(encodeFrame({ opcode: 1, payload: new Uint8Array([0xc3, 0x28]) }));
    // C: the server closes it with 4001.
    const c = await Client.open(`${url}/rooms/c`);
    c.ws.send("close-me");
    assert.equal((await c.closed).code, 4001);
    a.ws.close(1000, "done");
    await a.closed;
    await until(() => s.obs.snapshot().totals.open === 0, 3000, "every connection closed");
    b.socket.destroy();
    collected = (await s.reader.collect()).resourceMetrics;
    await s.tracerProvider.forceFlush(); // the processor exports asynchronously
  });

  after(async () => {
    await server?.close();
  });

  it("counts connections, upgrades accepted and refused by status", () => {
    const route = { "duplex.route": "/rooms/:room", "duplex.transport": "raw", "duplex.runtime": runtime() };
    assert.equal(value(collected, "duplex.server.active_connections", route), 0);
    assert.equal(value(collected, "duplex.server.upgrades", { ...route, "http.response.status_code": 101 }), 3);
    assert.equal(value(collected, "duplex.server.upgrades", { "http.response.status_code": 404 }), 1);
    assert.equal(metric(collected, "duplex.server.active_connections").descriptor.unit, "{connection}");
  });

  it("counts messages both ways, and the sockets' bytes", () => {
    const io = (direction: string) => ({ "duplex.route": "/rooms/:room", "network.io.direction": direction });
    assert.equal(value(collected, "duplex.server.messages", io("receive")), 3); // héllo, 3 bytes, close-me
    assert.equal(value(collected, "duplex.server.messages", io("transmit")), 2);
    // Raw transport: socket bytes, the handshakes included (3 requests, 3 answers of 129+ bytes).
    const received = value(collected, "duplex.server.io", io("receive"));
    const sent = value(collected, "duplex.server.io", io("transmit"));
    assert.ok(received >= 3 * 100 + (6 + 3 + 8) + 3 * 6 + 2, `received ${received}`);
    assert.ok(sent >= 3 * 129 + (6 + 3) + 2 * 2, `sent ${sent}`); // three 101 answers, two echoes
    assert.equal(s.obs.snapshot().totals.bytesIn, received);
    assert.equal(s.obs.snapshot().totals.bytesOut, sent);
    assert.equal(metric(collected, "duplex.server.io").descriptor.unit, "By");
  });

  it("counts closes by code and initiator, and protocol errors by close code", () => {
    assert.equal(value(collected, "duplex.server.closes", { "duplex.close.code": 1000, "duplex.close.initiator": "client" }), 1);
    assert.equal(value(collected, "duplex.server.closes", { "duplex.close.code": 4001, "duplex.close.initiator": "server" }), 1);
    assert.equal(value(collected, "duplex.server.closes", { "duplex.close.code": 1007, "duplex.close.initiator": "server" }), 1);
    assert.equal(value(collected, "duplex.server.protocol_errors", { "duplex.close.code": 1007, "error.type": "WS_ERR_INVALID_UTF8" }), 1);
  });

  it("records handshake and connection durations and phase time as histograms", () => {
    assert.equal(value(collected, "duplex.server.handshake.duration"), 3);
    assert.equal(value(collected, "duplex.server.connection.duration"), 3);
    assert.equal(metric(collected, "duplex.server.handshake.duration").descriptor.unit, "s");
    assert.ok(value(collected, "duplex.server.middleware.duration", { "duplex.phase": "open" }) === 3);
  });

  it("spans the upgrade under the request's traceparent, and each message under its upgrade", () => {
    const spans: ReadableSpan[] = s.exporter.getFinishedSpans();
    const upgrades = spans.filter((span) => span.name === "duplex.upgrade");
    assert.equal(upgrades.length, 4, "three accepted, one refused");
    const traced = upgrades.find((span) => span.spanContext().traceId === TRACE_ID);
    assert.ok(traced, "the upgrade span continues the client's trace");
    assert.equal(traced.parentSpanContext?.spanId, PARENT_ID);
    assert.equal(traced.attributes["http.response.status_code"], 101);
    assert.equal(traced.attributes["duplex.route"], "/rooms/:room");
    assert.deepEqual(upgrades.map((span) => span.attributes["http.response.status_code"]).sort(), [101, 101, 101, 404]);
    const messages = spans.filter((span) => span.name === "duplex.message");
    assert.equal(messages.length, 3);
    const ofA = messages.filter((span) => span.spanContext().traceId === TRACE_ID);
    assert.equal(ofA.length, 2);
    for (const span of ofA) assert.equal(span.parentSpanContext?.spanId, traced.spanContext().spanId);
  });

  it("keeps the same numbers in snapshot() and the recent closes with who closed", () => {
    const snap = s.obs.snapshot();
    assert.equal(snap.runtime, runtime());
    const { bytesIn, bytesOut, ...rest } = snap.totals;
    assert.ok(bytesIn > 17 && bytesOut > 9);
    assert.deepEqual(rest, {
      open: 0,
      upgradesAccepted: 3,
      upgradesRefused: { 404: 1 },
      messagesIn: 3,
      messagesOut: 2,
      drains: 0,
      closesByCode: { 1000: 1, 1007: 1, 4001: 1 },
    });
    assert.deepEqual(snap.recentCloses.map((c) => [c.code, c.by]).sort(), [[1000, "client"], [1007, "server"], [4001, "server"]]);
    assert.deepEqual(snap.connections, []);
  });
});

describe(`observe(): snapshot and closePeer on ${runtime()}`, () => {
  it("lists open connections with their topics, and closes one by id", async () => {
    const obs = observe();
    const app = new App().use(obs, {
      open(ctx) {
        ctx.subscribe("news");
        if (ctx.request.url.endsWith("?both")) ctx.subscribe("sport");
      },
      message: (ctx) => void ctx.send(ctx.data),
    });
    const server = await serve(app, { port: 0, hostname: "127.0.0.1" });
    try {
      const one = await Client.open(`ws://127.0.0.1:${server.port}/live?both`);
      const two = await Client.open(`ws://127.0.0.1:${server.port}/live`);
      await one.roundTrip("x");
      await two.roundTrip("yy");
      const snap = obs.snapshot();
      assert.equal(snap.totals.open, 2);
      assert.deepEqual(snap.topics, [{ topic: "news", subscribers: 2 }, { topic: "sport", subscribers: 1 }]);
      const ids = snap.connections.map((c) => c.id);
      assert.equal(new Set(ids).size, 2);
      const first = snap.connections.toSorted((x, y) => Number(x.id) - Number(y.id))[0]!; // raw ids count up: \`one\`
      assert.equal(first.route, "/live");
      assert.equal(first.remote, "127.0.0.1");
      assert.equal(first.messagesOut, 1);
      assert.equal(obs.closePeer("no-such-id"), false);
      assert.equal(obs.closePeer(first.id, 4000, "kicked"), true);
      const closed = await one.closed;
      assert.deepEqual(closed, { code: 4000, reason: "kicked" });
      await until(() => obs.snapshot().totals.open === 1, 3000, "one left");
      const last = obs.snapshot().recentCloses.at(-1)!;
      assert.deepEqual([last.id, last.code, last.by], [first.id, 4000, "server"]);
      assert.equal(obs.closePeer(first.id), false, "already closed");
      two.ws.close();
      await two.closed;
    } finally {
      await server.close();
    }
  });
});

describe(`observe(): recovery results of reliable() on ${runtime()}`, () => {
  it("exports fresh, recovered and gap subscriptions", async () => {
    const live = reliable({ log: new MemoryTopicLog({ maxMessages: 2 }) });
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const obs = observe({ reliable: live, meter: meterProvider.getMeter("t") });
    const server = await serve(new App().use(obs, live), { port: 0, hostname: "127.0.0.1" });
    try {
      let epoch = "";
      for (let i = 1; i <= 4; i++) epoch = (await live.publish("t", `m${i}`)).epoch;
      const c = await Client.open(`ws://127.0.0.1:${server.port}/`, "duplex.v1");
      c.ws.send(JSON.stringify({ type: "subscribe", id: 1, topic: "t", from: "now" }));
      c.ws.send(JSON.stringify({ type: "subscribe", id: 2, topic: "u", from: { epoch, offset: 0 } }));
      c.ws.send(JSON.stringify({ type: "subscribe", id: 3, topic: "t", from: { epoch, offset: 3 } }));
      const c2 = await Client.open(`ws://127.0.0.1:${server.port}/`, "duplex.v1");
      c2.ws.send(JSON.stringify({ type: "subscribe", id: 1, topic: "t", from: { epoch, offset: 0 } }));
      await until(() => live.stats.fresh + live.stats.recovered + live.stats.gap === 4, 3000, "four answers");
      const results = (await reader.collect()).resourceMetrics;
      const by = (result: string) => value(results, "duplex.reliable.subscriptions", { "duplex.reliable.result": result });
      assert.deepEqual([by("fresh"), by("recovered"), by("gap")], [live.stats.fresh, live.stats.recovered, live.stats.gap]);
      assert.equal(live.stats.recovered, 1, "offset 3 of t is still there");
      const subscribed = live.subscribers("t");
      assert.ok(subscribed > 0);
      assert.deepEqual(obs.snapshot().topics.find((t) => t.topic === "t"), { topic: "t", subscribers: subscribed }, "reliable's topics listed");
      assert.ok(live.stats.gap >= 1, "offset 0 of t was trimmed");
      c.ws.close();
      c2.ws.close();
      await Promise.all([c.closed, c2.closed]);
    } finally {
      await server.close();
      await live.close();
    }
  });
});

const native = runtime() !== "node";
describe(`observe() on ${runtime()} (native transport)`, () => {
  it("tracks native connections with transport=native", { skip: !native && "Node has no native WebSocket server" }, async () => {
    const obs = observe();
    const app = new App().use(obs, { message: (ctx) => void ctx.send(ctx.data) });
    const server = await serve(app, { port: 0, hostname: "127.0.0.1", transport: "native" });
    try {
      const a = await Client.open(`ws://127.0.0.1:${server.port}/n`);
      await a.roundTrip("abc");
      const refused = await rawHandshake(server.port, upgradeRequest({ "Sec-WebSocket-Version": "8" }, "GET /n HTTP/1.1"));
      assert.notEqual(refused.status, 101);
      refused.socket.destroy();
      const text = await obs.prometheus(new Request("http://x/metrics")).text();
      assert.match(text, new RegExp(`duplex_server_active_connections\\{route="/n",runtime="${runtime()}",transport="native"\\} 1`));
      a.ws.close(1000);
      await a.closed;
      await until(() => obs.snapshot().totals.open === 0, 3000, "closed");
      const snap = obs.snapshot();
      assert.equal(snap.totals.messagesIn, 1);
      assert.equal(snap.totals.bytesOut, 3, "native: payload lengths");
      assert.deepEqual(snap.totals.upgradesRefused, { [refused.status]: 1 });
      assert.deepEqual(snap.recentCloses.map((c) => [c.code, c.by]), [[1000, "client"]]);
    } finally {
      await server.close();
    }
  });
});
