// The client over real sockets: a tiny duplex.v1 server written here on
// ws's WebSocketServer (one history per topic, publishes stored once per
// key, replay then live), which cuts every connection now and then and
// sometimes right after storing a publish, before its ack. The client runs
// on ws's WebSocket on Node (20 has no global one) and on the global
// WebSocket on Deno and Bun. Publishes must all be acked, stored once each,
// and the subscriber must get 1…COUNT once each, in order.
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, it } from "node:test";
import { WebSocketServer, type WebSocket as WsSocket } from "ws";
import { type ClientMessage, decodeClient, encode, PROTOCOL_V1 } from "../../client/_wire.ts";
import { DuplexClient, type Position, type StatusEvent, type WebSocketConstructor } from "../../client/mod.ts";

const g = globalThis as Record<string, unknown>;
const WebSocket: WebSocketConstructor = typeof g.WebSocket === "function" ? g.WebSocket as WebSocketConstructor : (await import("ws")).WebSocket;

const EPOCH = "test-epoch";

/** The server: histories, keys, connections; `cutAfterStore` cuts a connection once per that many stores instead of acking. */
class TinyServer {
  readonly wss: WebSocketServer;
  readonly logs = new Map<string, string[]>();
  readonly keys = new Map<string, number>();
  readonly subs = new Map<WsSocket, Set<string>>();
  cutAfterStore = 0;
  /** Cuts every connection once per that many stores, before the entry is sent to anyone. */
  cutAllEvery = 0;
  /** Answers nothing. */
  silent = false;
  stores = 0;
  cuts = 0;

  constructor() {
    this.wss = new WebSocketServer({
      port: 0,
      host: "127.0.0.1",
      handleProtocols: (protocols) => (protocols.has(PROTOCOL_V1) ? PROTOCOL_V1 : false),
    });
    this.wss.on("connection", (ws) => {
      this.subs.set(ws, new Set());
      ws.on("message", (data, isBinary) => {
        const m = isBinary ? "binary" : decodeClient(String(data));
        if (typeof m === "string") return ws.close(4400, m);
        this.#handle(ws, m);
      });
      ws.on("close", () => this.subs.delete(ws));
      ws.on("error", () => {});
    });
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/`;
  }

  #log(topic: string): string[] {
    let log = this.logs.get(topic);
    if (!log) this.logs.set(topic, log = []);
    return log;
  }

  #handle(ws: WsSocket, m: ClientMessage): void {
    if (this.silent) return;
    switch (m.type) {
      case "ping":
        return ws.send(encode({ type: "pong", id: m.id }));
      case "unsubscribe":
        this.subs.get(ws)?.delete(m.topic);
        return ws.send(encode({ type: "unsubscribed", id: m.id, topic: m.topic }));
      case "subscribe": {
        const log = this.#log(m.topic);
        const after = m.from === "now" ? log.length : m.from === "start" ? 0 : m.from.epoch === EPOCH ? Math.min(m.from.offset, log.length) : 0;
        const result = typeof m.from === "object" ? (m.from.epoch === EPOCH ? "recovered" : "gap") : "fresh";
        ws.send(encode({
          type: "subscribed",
          id: m.id,
          topic: m.topic,
          position: { epoch: EPOCH, offset: after },
          result,
          ...(result === "gap" && typeof m.from === "object" ? { gap: { reason: "epoch" as const, epoch: m.from.epoch, from: m.from.offset + 1 } } : {}),
        }));
        for (let o = after + 1; o <= log.length; o++) ws.send(encode({ type: "message", topic: m.topic, epoch: EPOCH, offset: o, data: log[o - 1]! }));
        this.subs.get(ws)?.add(m.topic);
        return;
      }
      case "publish": {
        let offset = this.keys.get(m.key);
        if (offset === undefined) {
          const log = this.#log(m.topic);
          log.push(typeof m.data === "string" ? m.data : "?");
          offset = log.length;
          this.keys.set(m.key, offset);
          this.stores++;
          if (this.cutAllEvery > 0 && this.stores % this.cutAllEvery === 0) return this.cutAll(); // before anyone hears of it
          for (const [peer, topics] of this.subs) {
            if (topics.has(m.topic)) peer.send(encode({ type: "message", topic: m.topic, epoch: EPOCH, offset, data: log[offset - 1]! }));
          }
          if (this.cutAfterStore > 0 && this.stores % this.cutAfterStore === 0) {
            this.cuts++;
            return ws.terminate(); // stored, never acked: the client must retry with the same key
          }
        }
        return ws.send(encode({ type: "ack", id: m.id, topic: m.topic, epoch: EPOCH, offset }));
      }
    }
  }

  /** Cuts every connection (no close frame). */
  cutAll(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.cuts++;
  }

  close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    return new Promise((resolve) => this.wss.close(() => resolve()));
  }
}

let server: TinyServer;
before(async () => {
  server = new TinyServer();
  await new Promise<void>((resolve) => server.wss.once("listening", () => resolve()));
});
after(() => server.close());

const options = { WebSocket, reconnect: { initialDelayMs: 5, maxDelayMs: 50 }, heartbeat: { intervalMs: 2000, timeoutMs: 2000 } };

it("publishes and receives exactly once, in order, through cuts", async () => {
  const COUNT = 300;
  server.cutAfterStore = 37;
  server.cutAllEvery = 50;
  const received: string[] = [];
  const statuses: StatusEvent[] = [];
  let resolveAll!: () => void;
  const all = new Promise<void>((resolve) => (resolveAll = resolve));

  const subscriber = new DuplexClient(server.url, options);
  subscriber.on("status", (e) => void statuses.push(e));
  subscriber.subscribe("count", (m) => {
    received.push(String(m.data));
    if (received.length === COUNT) resolveAll();
  }, { from: "start" });

  const publisher = new DuplexClient(server.url, options);
  const timer = setInterval(() => server.cutAll(), 40);
  const positions: Position[] = [];
  try {
    for (let i = 1; i <= COUNT; i++) positions.push(await publisher.publish("count", `${i}`));
    await all;
  } finally {
    clearInterval(timer);
  }
  assert.deepEqual(received, Array.from({ length: COUNT }, (_, i) => `${i + 1}`));
  assert.deepEqual(positions.map((p) => p.offset), Array.from({ length: COUNT }, (_, i) => i + 1));
  assert.equal(server.logs.get("count")?.length, COUNT, "each publish stored once");
  assert.ok(server.cuts >= 5, `the connections were cut (${server.cuts} times)`);
  assert.ok(statuses.some((s) => s.status === "reconnecting"));

  publisher.close();
  subscriber.close();
  assert.equal(subscriber.status, "closed");
});

it("resumes a subscription from a saved position and reports a gap for an unknown epoch", async () => {
  const client = new DuplexClient(server.url, options);
  const got: number[] = [];
  const results: string[] = [];
  await new Promise<void>((resolve) => {
    client.subscribe("count", (m) => {
      got.push(m.offset);
      if (m.offset === 300) resolve();
    }, { from: { epoch: EPOCH, offset: 297 }, onResult: (r) => void results.push(r.result) });
  });
  assert.deepEqual(got, [298, 299, 300]);
  const gap = await new Promise<unknown>((resolve) => {
    client.subscribe("other", () => {}, { from: { epoch: "gone", offset: 5 }, onResult: (r) => resolve(r.gap) });
  });
  assert.deepEqual(gap, { reason: "epoch", epoch: "gone", from: 6 });
  assert.deepEqual(results, ["recovered"]);
  client.close();
});

it("reconnects on a heartbeat timeout when the server stops answering", async () => {
  server.cutAfterStore = server.cutAllEvery = 0;
  const client = new DuplexClient(server.url, { ...options, heartbeat: { intervalMs: 100, timeoutMs: 100 } });
  const statuses: StatusEvent[] = [];
  client.on("status", (e) => void statuses.push(e));
  await new Promise<void>((resolve) => client.on("status", (e) => e.status === "open" && resolve()));
  server.silent = true; // a dead link, as far as the client can tell: nothing comes back
  const started = Date.now();
  await new Promise<void>((resolve) => client.on("status", (e) => e.reason === "Heartbeat timeout" && resolve()));
  const took = Date.now() - started;
  assert.ok(took < 2000, `noticed in ${took} ms (intervalMs + timeoutMs: 200)`);
  server.silent = false;
  await new Promise<void>((resolve) => client.on("status", (e) => e.status === "open" && resolve()));
  client.close();
});
