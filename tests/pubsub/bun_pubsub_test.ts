// Pub/sub over Bun's own topics on the native path (Bun.serve), over real
// sockets. These tests need Bun: the hub hands subscribers to `ws.subscribe()`
// and publishes with `server.publish()` / `ws.publish()`, which only
// `Bun.serve` has, so they are skipped on Node and Deno (the hub's decisions
// are also tested with fakes, on every runtime, in
// tests/plugins/pubsub_native_test.ts). The server here is a `Bun.serve` of
// the test's own around `nativeHandler`, with a stand-in for Bun's server
// that counts the runtime publishes: each test checks who got what and
// whether one runtime publish or the per-subscriber loop carried it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { App, type AppOptions, type Middleware } from "../../mod.ts";
import { type BunServer, type BunWebSocket, type BunWebSocketHandler, nativeHandler, serve } from "../../runtimes/bun.ts";
import { Client, delay, rawHandshake, until, upgradeRequest, within } from "../runtimes/_helpers.ts";

// The part of Bun's API these tests use (typed here: deno check has no Bun types).
interface RealServer {
  readonly port: number;
  upgrade(request: Request, options: { data: unknown; headers?: [string, string][] }): boolean;
  requestIP(request: Request): { address: string } | null;
  publish(topic: string, data: string | Uint8Array, compress?: boolean): number;
  subscriberCount(topic: string): number;
  stop(closeActiveConnections?: boolean): Promise<void>;
}
interface BunApi {
  serve(options: {
    port: number;
    hostname: string;
    fetch(request: Request, server: RealServer): Response | undefined | Promise<Response | undefined>;
    websocket: BunWebSocketHandler;
  }): RealServer;
}

const Bun = (globalThis as { Bun?: BunApi }).Bun;
const skip = Bun === undefined && "Bun only: Bun.serve's topics";

/** The runtime publishes that carried messages. */
interface Counts {
  server: number;
  ws: number;
}

/** A Bun.serve running `handlers` by path (`/a` → the first…), each a Duplex native handler; counts the runtime publishes. */
function bunServe(...apps: App<any>[]): { url: string; counts: Counts; real: RealServer; close(): Promise<void> } {
  const handlers = apps.map((app) => nativeHandler(app));
  const counts: Counts = { server: 0, ws: 0 };
  let stand: BunServer | undefined;
  const websocket: BunWebSocketHandler = {
    ...handlers[0]!.websocket,
    open(ws: BunWebSocket) {
      const publish = ws.publish!;
      (ws as { publish: typeof publish }).publish = (topic, data, compress) => {
        counts.ws++;
        return publish.call(ws, topic, data, compress);
      };
      handlers[0]!.websocket.open(ws);
    },
  };
  const real = Bun!.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(request, server) {
      stand ??= {
        upgrade: (r, o) => server.upgrade(r, o),
        requestIP: (r) => server.requestIP(r),
        publish(topic, data, compress) {
          counts.server++;
          return server.publish(topic, data, compress);
        },
        subscriberCount: (topic) => server.subscriberCount(topic),
      };
      const index = new URL(request.url).pathname === "/b" ? 1 : 0;
      return handlers[index]!.upgrade(request, stand);
    },
    websocket,
  });
  return {
    url: `ws://127.0.0.1:${real.port}`,
    counts,
    real,
    async close() {
      await Promise.all(handlers.map((h) => h.close()));
      await real.stop(true);
    },
  };
}

interface State {
  topics: string[];
  pub: string | null;
  self: boolean;
  upper: boolean;
  mute: boolean;
}

/**
 * Subscribes each connection to its `?sub=` topics on open; publishes what it
 * sends to `?pub=` (to itself too with `?self`); the message "leave:<topic>"
 * unsubscribes instead.
 */
function pubsubApp(options: AppOptions = {}, ...middleware: Middleware<State>[]): App<State> {
  return new App<State>(options).use({
    upgrade(ctx, next) {
      const q = ctx.query;
      ctx.state = { topics: q.getAll("sub"), pub: q.get("pub"), self: q.has("self"), upper: q.has("upper"), mute: q.has("mute") };
      return next();
    },
    open(ctx, next) {
      for (const topic of ctx.state.topics) ctx.subscribe(topic);
      return next();
    },
    message(ctx) {
      if (typeof ctx.data === "string" && ctx.data.startsWith("leave:")) {
        ctx.unsubscribe(ctx.data.slice(6));
        ctx.send("left");
        return;
      }
      if (ctx.state.pub !== null) ctx.publish(ctx.state.pub, ctx.data, { self: ctx.state.self });
    },
  }, ...middleware);
}

const show = (client: Client) => client.messages.map((m) => `${m.isBinary ? "binary" : "text"}:${m.data.toString()}`);

async function closeAll(clients: Client[]): Promise<void> {
  for (const client of clients) client.ws.close();
  await Promise.all(clients.map((client) => within(client.closed)));
}

describe("Bun.serve (native): pub/sub on Bun's topics", { skip }, () => {
  let app: App<State>;
  let server: ReturnType<typeof bunServe>;
  before(() => {
    app = pubsubApp();
    server = bunServe(app);
  });
  after(() => server.close());

  it("delivers every message to every subscriber, in order, text as text and binary as binary, with one server.publish each", async () => {
    const subscribers = await Promise.all(Array.from({ length: 10 }, () => Client.open(`${server.url}/?sub=news`)));
    const other = await Client.open(`${server.url}/?sub=sports`);
    const publisher = await Client.open(`${server.url}/?pub=news`);
    await until(() => app.subscribers("news") === 10, 3000, "the subscriptions");
    const before = { ...app.pubsubStats };
    const counted = server.counts.server;
    const sent = Array.from({ length: 50 }, (_, i) => `news ${i} ${"é".repeat(i % 5)}`);
    for (const message of sent) publisher.ws.send(message);
    publisher.ws.send(Buffer.from([0, 1, 255]));
    for (const client of subscribers) {
      const got = await client.messagesUntil(51, 5000);
      assert.deepEqual(got.slice(0, 50).map((m) => [m.isBinary, m.data.toString()]), sent.map((m) => [false, m]), "every text, in order");
      assert.equal(got[50]!.isBinary, true, "binary stays binary");
      assert.deepEqual([...got[50]!.data], [0, 1, 255]);
    }
    await delay(50);
    for (const client of subscribers) assert.equal(client.messages.length, 51, "each message once");
    assert.deepEqual(other.messages, []);
    assert.deepEqual(publisher.messages, []);
    assert.equal(server.counts.server - counted, 51, "one server.publish per message");
    assert.equal(app.pubsubStats.published - before.published, 51);
    assert.equal(app.pubsubStats.delivered - before.delivered, 510, "delivered counts each subscriber");
    assert.equal(app.publish("news", "from the app"), 10, "app.publish returns the subscribers reached");
    for (const client of subscribers) assert.equal((await client.messagesUntil(52))[51]!.data.toString(), "from the app");
    await closeAll([...subscribers, other, publisher]);
  });

  it("leaves the sender out with its own ws.publish, and includes it with self", async () => {
    const quiet = await Client.open(`${server.url}/?sub=room&pub=room`);
    const loud = await Client.open(`${server.url}/?sub=room&pub=room&self`);
    const listener = await Client.open(`${server.url}/?sub=room`);
    await until(() => app.subscribers("room") === 3, 3000, "the subscriptions");
    const counts = { ...server.counts };
    quiet.ws.send("from quiet");
    await listener.messagesUntil(1);
    loud.ws.send(Buffer.from("from loud"));
    await listener.messagesUntil(2);
    await loud.messagesUntil(2);
    await delay(50);
    assert.deepEqual(show(quiet), ["binary:from loud"]);
    assert.deepEqual(show(loud), ["text:from quiet", "binary:from loud"]);
    assert.deepEqual(show(listener), ["text:from quiet", "binary:from loud"]);
    assert.deepEqual({ server: server.counts.server - counts.server, ws: server.counts.ws - counts.ws }, { server: 1, ws: 1 });
    await closeAll([quiet, loud, listener]);
  });

  it("stops delivering after an unsubscribe and after a close, and counts only who was reached", async () => {
    const [stay, leave, closing] = await Promise.all([1, 2, 3].map(() => Client.open(`${server.url}/?sub=exit`)));
    await until(() => app.subscribers("exit") === 3, 3000, "three subscribers");
    assert.equal(app.publish("exit", "one"), 3);
    for (const client of [stay!, leave!, closing!]) await client.messagesUntil(1);
    assert.equal((await leave!.roundTrip("leave:exit")).data.toString(), "left");
    assert.equal(app.subscribers("exit"), 2);
    closing!.ws.close();
    await within(closing!.closed);
    await until(() => app.subscribers("exit") === 1, 3000, "the closed one to leave");
    const counted = server.counts.server;
    assert.equal(app.publish("exit", "two"), 1);
    assert.equal(server.counts.server - counted, 1, "still one server.publish");
    await stay!.messagesUntil(2);
    await delay(50);
    assert.deepEqual(show(stay!), ["text:one", "text:two"]);
    assert.deepEqual(show(leave!), ["text:one", "text:left"]);
    assert.deepEqual(show(closing!), ["text:one"]);
    await closeAll([stay!, leave!]);
    await until(() => app.subscribers("exit") === 0, 3000, "every subscriber gone");
    assert.equal(app.publish("exit", "anyone?"), 0);
  });

  it("keeps a direct send and the published messages in the order they were made", async () => {
    const orderApp = new App().use({
      open(ctx) {
        ctx.subscribe("t");
      },
      message(ctx) {
        for (let i = 0; i < 20; i++) {
          orderApp.publish("t", `p${i}`);
          ctx.send(`s${i}`);
        }
      },
    });
    const own = bunServe(orderApp);
    const client = await Client.open(own.url);
    await until(() => orderApp.subscribers("t") === 1, 3000, "the subscription");
    client.ws.send("go");
    await client.messagesUntil(40);
    assert.deepEqual(show(client), Array.from({ length: 20 }, (_, i) => [`text:p${i}`, `text:s${i}`]).flat());
    assert.equal(own.counts.server, 20);
    await closeAll([client]);
    await own.close();
  });
});

describe("Bun.serve (native): pub/sub backpressure on Bun's topics", { skip }, () => {
  it("has a subscriber that Bun's publish backpressured wait for drain, as a send would: the drain middleware runs", async () => {
    let subscriber: { bufferedAmount: number; drained(): Promise<void> } | undefined;
    let drains = 0;
    const app = pubsubApp({ maxBufferedBytes: 256 * 1024 * 1024 }, {
      open(ctx, next) {
        subscriber = ctx.peer;
        return next();
      },
      drain(_ctx, next) {
        drains++;
        return next();
      },
    });
    const server = bunServe(app);
    const reader = await rawHandshake(server.real.port, upgradeRequest({}, "GET /?sub=big HTTP/1.1"));
    assert.equal(reader.status, 101);
    reader.socket.on("error", () => {});
    await until(() => app.subscribers("big") === 1, 3000, "the subscription");
    const chunk = new Uint8Array(64 * 1024);
    let published = 0;
    while (subscriber!.bufferedAmount === 0 && published < 4096) {
      assert.equal(app.publish("big", chunk), 1);
      published++;
    }
    assert.ok(subscriber!.bufferedAmount > 0, "Bun holds output for the reader");
    assert.equal(server.counts.server, published, "every message by Bun's publish");
    let drained = false;
    void subscriber!.drained().then(() => (drained = true));
    await delay(20);
    assert.equal(drained, false, "drained() waits, as after a send that met backpressure");
    assert.equal(drains, 0);
    reader.socket.on("data", () => {});
    reader.socket.resume();
    await until(() => drains === 1 && drained, 10_000, "the drain middleware and drained()");
    reader.socket.destroy();
    await server.close();
  });
});

describe("Bun.serve (native): pub/sub where Bun's topics must not be used", { skip }, () => {
  it("runs the send middleware for every subscriber (the loop), transforming and dropping per subscriber", async () => {
    const app = pubsubApp({}, {
      send(ctx, next) {
        if (ctx.state.mute) return;
        if (ctx.state.upper && typeof ctx.data === "string") ctx.data = ctx.data.toUpperCase();
        return next();
      },
    });
    const server = bunServe(app);
    const plain = await Client.open(`${server.url}/?sub=t`);
    const upper = await Client.open(`${server.url}/?sub=t&upper`);
    const mute = await Client.open(`${server.url}/?sub=t&mute`);
    await until(() => app.subscribers("t") === 3, 3000, "the subscriptions");
    assert.equal(app.publish("t", "hello"), 3, "handed to all three (the middleware dropped one)");
    app.publish("t", new Uint8Array([7]));
    await plain.messagesUntil(2);
    await upper.messagesUntil(2);
    await delay(50);
    assert.deepEqual(show(plain), ["text:hello", "binary:\x07"]);
    assert.deepEqual(show(upper), ["text:HELLO", "binary:\x07"]);
    assert.deepEqual(mute.messages, []);
    assert.deepEqual(server.counts, { server: 0, ws: 0 }, "no runtime publish");
    await closeAll([plain, upper, mute]);
    await server.close();
  });

  it("reaches raw Bun.listen subscribers and native ones of one app, each native server with one publish", async () => {
    const app = pubsubApp();
    const native = bunServe(app);
    const raw = await serve(app, { port: 0, hostname: "127.0.0.1" });
    const clients = [
      await Client.open(`${native.url}/?sub=mix`),
      await Client.open(`${raw.url}/?sub=mix`),
      await Client.open(`${native.url}/?sub=mix`),
      await Client.open(`${raw.url}/?sub=mix`),
    ];
    await until(() => app.subscribers("mix") === 4, 3000, "the subscriptions");
    for (let i = 0; i < 10; i++) assert.equal(app.publish("mix", `m${i}`), 4);
    for (const client of clients) {
      await client.messagesUntil(10);
      assert.deepEqual(show(client), Array.from({ length: 10 }, (_, i) => `text:m${i}`));
    }
    assert.equal(native.counts.server, 10);
    assert.equal(app.pubsubStats.delivered, 40);
    await closeAll(clients);
    await raw.close();
    await native.close();
  });

  it("keeps the topics of two apps on one Bun server apart", async () => {
    const a = pubsubApp();
    const b = pubsubApp();
    const server = bunServe(a, b);
    const inA = await Client.open(`${server.url}/a?sub=t`);
    const inB = await Client.open(`${server.url}/b?sub=t`);
    await until(() => a.subscribers("t") === 1 && b.subscribers("t") === 1, 3000, "the subscriptions");
    assert.equal(a.publish("t", "for a"), 1);
    assert.equal(b.publish("t", "for b"), 1);
    await inA.messagesUntil(1);
    await inB.messagesUntil(1);
    await delay(50);
    assert.deepEqual([show(inA), show(inB)], [["text:for a"], ["text:for b"]]);
    assert.equal(server.counts.server, 2);
    await closeAll([inA, inB]);
    await server.close();
  });
});

describe("Bun.serve (native): pub/sub slow subscribers on Bun's topics", { skip }, () => {
  /**
   * A fast client that publishes to "flood" with self (paced: one message in
   * flight) beside a raw client subscribed to "flood" that never reads;
   * 32 KiB messages until `done(stats)` (at most 64 MiB).
   */
  async function flood(options: AppOptions, done: (stats: App["pubsubStats"]) => boolean) {
    const app = pubsubApp({ maxBufferedBytes: 64 * 1024, ...options });
    const server = bunServe(app);
    const fast = await Client.open(`${server.url}/?sub=flood&pub=flood&self`);
    const slow = await rawHandshake(server.real.port, upgradeRequest({}, "GET /?sub=flood HTTP/1.1"));
    assert.equal(slow.status, 101);
    slow.socket.on("error", () => {}); // paused by rawHandshake: it reads nothing more
    await until(() => app.subscribers("flood") === 2, 3000, "two subscribers");
    const payload = (n: number) => {
      const bytes = Buffer.alloc(32 * 1024, n & 0xff);
      bytes.writeUInt32BE(n, 0);
      return bytes;
    };
    let count = 0;
    const deadline = Date.now() + 30_000;
    while (!done(app.pubsubStats) && count < 2048 && Date.now() < deadline) {
      const back = await fast.roundTrip(payload(count), 5000);
      assert.ok(back.isBinary && back.data.equals(payload(count)), `message ${count} came back intact, in order`);
      count++;
    }
    assert.equal(fast.messages.length, count, "the fast client got every message, and nothing else");
    return { app, server, fast, slow, count };
  }

  it("uses one publish while the reader keeps up, the loop once it is slow: drops for it only, counted", async () => {
    const { app, server, fast, slow, count } = await flood({}, (stats) => stats.dropped >= 5);
    const stats = app.pubsubStats;
    assert.ok(stats.dropped >= 5);
    assert.equal(stats.published, count);
    assert.equal(stats.delivered + stats.dropped, 2 * count, "every message delivered or dropped, per subscriber");
    assert.equal(stats.closedSlow, 0);
    assert.ok(server.counts.server > 0, "Bun's publish while nobody was slow");
    assert.ok(server.counts.server <= count - stats.dropped, "the loop for every drop");
    slow.socket.destroy();
    await closeAll([fast]);
    await server.close();
  });

  it("closes the slow reader with 1013 under slowPolicy close, counts it, and goes back to one publish", async () => {
    const { app, server, fast, slow, count } = await flood({ slowPolicy: "close" }, (stats) => stats.closedSlow === 1);
    assert.equal(app.pubsubStats.closedSlow, 1);
    assert.equal(app.pubsubStats.dropped, 0);
    await until(() => app.subscribers("flood") === 1, 3000, "the slow one to leave");
    const published = server.counts.server;
    const back = await fast.roundTrip("after", 5000);
    assert.equal(back.data.toString(), "after");
    assert.equal(server.counts.server, published + 1, "one publish again");
    assert.ok(app.pubsubStats.delivered >= count + 1);
    slow.socket.destroy();
    await closeAll([fast]);
    await server.close();
  });
});
