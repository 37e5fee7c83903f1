// reliable() on the real Pump without sockets: the subprotocol choice,
// subscribe from start / now / a position, recovered and gap answers for
// each cause, the replay/live seam under concurrent publishes on a slow
// async log, publish authorization and acks, idempotency, the close codes
// (4400, 4429, 1003, 1013), and that a closed connection leaves nothing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import { App } from "../../plugins/app.ts";
import { type HonoContext, upgradeWebSocket } from "../../runtimes/hono.ts";
import { reliable, type ReliableOptions } from "../../plugins/reliable.ts";
import { MemoryTopicLog, type TopicLog } from "../../plugins/topic_log.ts";
import { prng } from "../_prng.ts";
import { connect, deferred, flush } from "../plugins/_harness.ts";
import {
  CountingLog,
  dataOf,
  feed,
  offsetsOf,
  received,
  send,
  settle,
  SlowLog,
  v1,
} from "./_util.ts";

const isUsage = (code: string) => (e: unknown) =>
  e instanceof UsageError && e.code === code;

function setup<S = Record<string, unknown>>(options: ReliableOptions<S> = {}) {
  const errors: unknown[] = [];
  const live = reliable<S>({ onError: (e) => void errors.push(e), ...options });
  const app = new App<S>().use(live);
  return { live, app, errors };
}

describe("reliable: the subprotocol", () => {
  it("chooses duplex.v1 when offered; other connections pass through untouched", async () => {
    const seen: string[] = [];
    const live = reliable();
    const app = new App().use(live, {
      message: (ctx) => void seen.push(String(ctx.data)),
    });
    const conn = await v1(app);
    assert.equal(conn.answer.header("sec-websocket-protocol"), "duplex.v1");
    const plain = await connect(app);
    assert.equal(plain.answer.header("sec-websocket-protocol"), undefined);
    await plain.text("not a protocol message");
    assert.deepEqual(seen, ["not a protocol message"]);
    assert.deepEqual(plain.closes(), []);
    const other = await connect(app, {
      request: { protocols: ["chat"] },
      options: { protocols: ["chat"] },
    });
    assert.equal(other.answer.header("sec-websocket-protocol"), "chat");
    await send(conn, { type: "ping", id: 1 });
    assert.deepEqual(received(conn), [{ type: "pong", id: 1 }]);
    assert.deepEqual(
      seen,
      ["not a protocol message"],
      "protocol messages are consumed",
    );
  });

  it("leaves a protocol chosen by earlier middleware alone", async () => {
    const live = reliable();
    const app = new App().use({
      upgrade: (ctx, next) => ((ctx.protocol = "mine"), next()),
    }, live);
    const conn = await connect(app, {
      request: { protocols: ["duplex.v1", "mine"] },
    });
    assert.equal(conn.answer.header("sec-websocket-protocol"), "mine");
  });

  it("works on a route, and its frames skip the app's send middleware", async () => {
    const live = reliable({ authorize: { publish: () => true } });
    const app = new App().use({ send: () => {} /* drops everything */ }).route(
      "/rooms/:room",
      live,
    );
    const conn = await v1(app, { request: { path: "/rooms/a" } });
    await send(conn, { type: "subscribe", id: 1, topic: "t", from: "now" });
    await send(conn, {
      type: "publish",
      id: 2,
      topic: "t",
      key: "k",
      data: "hi",
    });
    await settle(() => received(conn).length === 3);
    const [sub, message, ack] = received(conn);
    assert.equal(sub!.type, "subscribed");
    assert.deepEqual([message!.type, ack!.type], ["message", "ack"]);
  });
});

describe("reliable: subscribe", () => {
  async function withHistory(count: number, options: ReliableOptions = {}) {
    const s = setup(options);
    let epoch = "";
    for (let i = 1; i <= count; i++) {
      epoch = (await s.live.publish("t", `m${i}`)).epoch;
    }
    return { ...s, epoch };
  }

  it("from start: fresh, everything held, then live", async () => {
    const { live, app, epoch } = await withHistory(3);
    const conn = await v1(app);
    await send(conn, { type: "subscribe", id: 1, topic: "t", from: "start" });
    await settle(() => received(conn).length === 4);
    await live.publish("t", "m4");
    await settle(() => received(conn).length === 5);
    const got = received(conn);
    assert.deepEqual(got[0], {
      type: "subscribed",
      id: 1,
      topic: "t",
      position: { epoch, offset: 0 },
      result: "fresh",
    });
    assert.deepEqual(offsetsOf(got), [1, 2, 3, 4]);
    assert.deepEqual(dataOf(got), ["m1", "m2", "m3", "m4"]);
    assert.equal(live.subscribers("t"), 1);
  });

  it("from now: fresh at the last offset, only new messages", async () => {
    const { live, app, epoch } = await withHistory(3);
    const conn = await v1(app);
    await send(conn, { type: "subscribe", id: 1, topic: "t", from: "now" });
    await live.publish("t", "m4");
    await settle(() => received(conn).length === 2);
    const got = received(conn);
    assert.deepEqual(got[0], {
      type: "subscribed",
      id: 1,
      topic: "t",
      position: { epoch, offset: 3 },
      result: "fresh",
    });
    assert.deepEqual(offsetsOf(got), [4]);
  });

  it("from a position: recovered, exactly what came after it", async () => {
    const { app, epoch } = await withHistory(5);
    const conn = await v1(app);
    await send(conn, {
      type: "subscribe",
      id: 7,
      topic: "t",
      from: { epoch, offset: 2 },
    });
    await settle(() => received(conn).length === 4);
    const got = received(conn);
    assert.deepEqual(got[0], {
      type: "subscribed",
      id: 7,
      topic: "t",
      position: { epoch, offset: 2 },
      result: "recovered",
    });
    assert.deepEqual(offsetsOf(got), [3, 4, 5]);
  });

  it("pages through a long history in replayBatch reads", async () => {
    const log = new CountingLog(new MemoryTopicLog());
    const { app, epoch } = await withHistory(250, { log, replayBatch: 7 });
    const conn = await v1(app);
    await send(conn, {
      type: "subscribe",
      id: 1,
      topic: "t",
      from: { epoch, offset: 10 },
    });
    await settle(() => offsetsOf(received(conn)).length === 240);
    assert.deepEqual(
      offsetsOf(received(conn)),
      Array.from({ length: 240 }, (_, i) => i + 11),
    );
  });

  it("answers a trimmed gap, then replays what is held", async () => {
    const { app, epoch } = await withHistory(10, {
      log: new MemoryTopicLog({ maxMessages: 4 }),
    });
    const conn = await v1(app);
    await send(conn, {
      type: "subscribe",
      id: 1,
      topic: "t",
      from: { epoch, offset: 3 },
    });
    await settle(() => received(conn).length === 5);
    const got = received(conn);
    assert.deepEqual(got[0], {
      type: "subscribed",
      id: 1,
      topic: "t",
      position: { epoch, offset: 6 },
      result: "gap",
      gap: { reason: "trimmed", epoch, from: 4, to: 6 },
    });
    assert.deepEqual(offsetsOf(got), [7, 8, 9, 10]);
  });

  it("answers an expired gap on the log's clock", async () => {
    const clock = {
      t: 0,
      now() {
        return this.t;
      },
    };
    const { app, epoch, live } = await withHistory(2, {
      log: new MemoryTopicLog({ maxAgeMs: 1000, clock }),
    });
    clock.t = 900;
    await live.publish("t", "m3");
    clock.t = 1500; // m1 and m2 expired, m3 not
    const conn = await v1(app);
    await send(conn, {
      type: "subscribe",
      id: 1,
      topic: "t",
      from: { epoch, offset: 0 },
    });
    await settle(() => received(conn).length === 2);
    const [answer] = received(conn);
    assert.equal(answer!.type, "subscribed");
    assert.deepEqual((answer as { gap?: unknown }).gap, {
      reason: "expired",
      epoch,
      from: 1,
      to: 2,
    });
    assert.deepEqual(offsetsOf(received(conn)), [3]);
  });

  it("answers an epoch gap for another history, and for an offset beyond the last", async () => {
    const { app, epoch } = await withHistory(2);
    const conn = await v1(app);
    await send(conn, {
      type: "subscribe",
      id: 1,
      topic: "t",
      from: { epoch: "old", offset: 40 },
    });
    await settle(() => received(conn).length === 3);
    assert.deepEqual(received(conn)[0], {
      type: "subscribed",
      id: 1,
      topic: "t",
      position: { epoch, offset: 0 },
      result: "gap",
      gap: { reason: "epoch", epoch: "old", from: 41 },
    });
    assert.deepEqual(offsetsOf(received(conn)), [1, 2]);
    const absurd = await v1(app);
    await send(absurd, {
      type: "subscribe",
      id: 1,
      topic: "t",
      from: { epoch, offset: 1e12 },
    });
    await settle(() => received(absurd).length === 3);
    assert.equal(
      (received(absurd)[0] as { gap?: { reason: string } }).gap?.reason,
      "epoch",
    );
  });

  it("restarts a subscription on a second subscribe, and stops on unsubscribe", async () => {
    const { live, app, epoch } = await withHistory(3);
    const conn = await v1(app);
    await send(conn, { type: "subscribe", id: 1, topic: "t", from: "start" });
    await send(conn, {
      type: "subscribe",
      id: 2,
      topic: "t",
      from: { epoch, offset: 1 },
    });
    await settle(() => offsetsOf(received(conn)).length === 5);
    assert.deepEqual(offsetsOf(received(conn)), [1, 2, 3, 2, 3]);
    assert.equal(live.subscribers("t"), 1);
    await send(conn, { type: "unsubscribe", id: 3, topic: "t" });
    assert.deepEqual(received(conn).at(-1), {
      type: "unsubscribed",
      id: 3,
      topic: "t",
    });
    assert.equal(live.subscribers("t"), 0);
    await live.publish("t", "m4");
    await flush();
    assert.deepEqual(
      offsetsOf(received(conn)),
      [1, 2, 3, 2, 3],
      "nothing after unsubscribe",
    );
  });

  it("refuses a subscription the hook refuses, and answers unavailable when it throws", async () => {
    const { app, errors } = setup({
      authorize: {
        subscribe: (_ctx, topic) => {
          if (topic === "boom") throw new Error("hook failed");
          return Promise.resolve(topic !== "secret");
        },
      },
    });
    const conn = await v1(app);
    await send(conn, {
      type: "subscribe",
      id: 1,
      topic: "secret",
      from: "now",
    });
    await send(conn, { type: "subscribe", id: 2, topic: "boom", from: "now" });
    await send(conn, { type: "subscribe", id: 3, topic: "open", from: "now" });
    await settle(() => received(conn).length === 3);
    const [a, b, c] = received(conn);
    assert.deepEqual([
      a!.type,
      (a as { code?: string }).code,
      a!.type === "error" && a!.id,
    ], ["error", "forbidden", 1]);
    assert.deepEqual([b!.type, (b as { code?: string }).code], [
      "error",
      "unavailable",
    ]);
    assert.equal(c!.type, "subscribed");
    assert.equal(errors.length, 1);
    assert.deepEqual(conn.closes(), [], "errors never close the connection");
  });
});

describe("reliable: publish", () => {
  it("refuses by default", async () => {
    const { app, live } = setup();
    const conn = await v1(app);
    await send(conn, {
      type: "publish",
      id: 1,
      topic: "t",
      key: "a",
      data: "x",
    });
    assert.deepEqual(received(conn), [{
      type: "error",
      id: 1,
      code: "forbidden",
      message: "Publishing to this topic is not allowed",
    }]);
    assert.equal(
      (await live.publish("t", "server")).offset,
      1,
      "nothing was stored",
    );
  });

  it("stores what the hook allows, or its replacement, and acks with the offset", async () => {
    const { app } = setup<{ user: string }>({
      authorize: {
        publish: (ctx, topic, data) =>
          topic === "closed"
            ? false
            : topic === "stamped"
            ? `${ctx.state.user ?? "anon"}: ${String(data)}`
            : true,
      },
    });
    const watcher = await v1(app);
    await send(watcher, {
      type: "subscribe",
      id: 1,
      topic: "stamped",
      from: "now",
    });
    const conn = await v1(app);
    await send(conn, {
      type: "publish",
      id: 1,
      topic: "t",
      key: "a",
      data: new Uint8Array([1, 2]),
    });
    await send(conn, {
      type: "publish",
      id: 2,
      topic: "closed",
      key: "b",
      data: "x",
    });
    await send(conn, {
      type: "publish",
      id: 3,
      topic: "stamped",
      key: "c",
      data: "hello",
    });
    await settle(() =>
      received(conn).length === 3 && received(watcher).length === 2
    );
    const [a, b, c] = received(conn);
    assert.equal(a!.type === "ack" && a!.offset, 1);
    assert.equal(b!.type === "error" && b!.code, "forbidden");
    assert.equal(c!.type === "ack" && c!.offset, 1);
    assert.deepEqual(dataOf(received(watcher)), ["anon: hello"]);
  });

  it("acks only once the append resolved, in request order, and stores a retried key once", async () => {
    const inner = new MemoryTopicLog();
    const gate = deferred();
    let appends = 0;
    const log: TopicLog = {
      append: async (topic, data, key) => {
        appends++;
        await gate.promise;
        return inner.append(topic, data, key);
      },
      read: (t, a, l) => inner.read(t, a, l),
      watch: (t, l) => inner.watch(t, l),
      close: () => inner.close(),
    };
    const { app } = setup({ log, authorize: { publish: () => true } });
    const conn = await v1(app);
    feed(conn, { type: "publish", id: 1, topic: "t", key: "k1", data: "a" });
    feed(conn, { type: "publish", id: 2, topic: "t", key: "k1", data: "a" }); // a retry
    feed(conn, { type: "ping", id: 3 });
    await flush();
    assert.deepEqual(received(conn), [], "no ack before the append resolved");
    assert.equal(appends, 2, "the publishes are pipelined; the ping waits for them");
    gate.resolve();
    await settle(() => received(conn).length === 3);
    const [a, b, c] = received(conn);
    assert.deepEqual(
      [a!.type === "ack" && a!.id, a!.type === "ack" && a!.offset],
      [1, 1],
    );
    assert.deepEqual(
      [b!.type === "ack" && b!.id, b!.type === "ack" && b!.offset],
      [2, 1],
      "the retry acks the first offset",
    );
    assert.deepEqual(c, { type: "pong", id: 3 });
    assert.equal(inner.read("t", "now", 0).last, 1, "stored once");
  });

  it("answers unavailable (and reports) when the hook or the log throws, too_large when the log refuses the size", async () => {
    const { app, errors } = setup({
      log: new MemoryTopicLog({ maxBytes: 4 }),
      authorize: {
        publish: (_ctx, topic) => {
          if (topic === "boom") throw new Error("hook failed");
          return true;
        },
      },
    });
    const conn = await v1(app);
    await send(conn, {
      type: "publish",
      id: 1,
      topic: "boom",
      key: "a",
      data: "x",
    });
    await send(conn, {
      type: "publish",
      id: 2,
      topic: "t",
      key: "b",
      data: "too long",
    });
    await settle(() => received(conn).length === 2);
    assert.deepEqual(received(conn).map((m) => m.type === "error" && m.code), [
      "unavailable",
      "too_large",
    ]);
    assert.equal(errors.length, 1);
  });
});

describe("reliable: bad input and limits", () => {
  it("answers too_large beyond maxSubscriptions topics on one connection", async () => {
    const { app, live } = setup({ maxSubscriptions: 2 });
    const conn = await v1(app);
    for (const [id, topic] of [[1, "a"], [2, "b"], [3, "a"], [4, "c"]] as const) await send(conn, { type: "subscribe", id, topic, from: "now" });
    await settle(() => received(conn).length === 4);
    assert.deepEqual(received(conn).map((m) => m.type === "error" ? m.code : m.type), ["subscribed", "subscribed", "subscribed", "too_large"]);
    assert.deepEqual([live.subscribers("a"), live.subscribers("b"), live.subscribers("c")], [1, 1, 0]);
  });

  it("closes with 4400 on a message that is not a protocol message", async () => {
    for (
      const text of [
        "not json",
        "[]",
        '{"type":"subscribe","id":1}',
        '{"type":"nope","id":1}',
        '{"type":"ping","id":-1}',
        `{"type":"${"é".repeat(200)}","id":1}`,
      ]
    ) {
      const { app } = setup();
      const conn = await v1(app);
      await conn.text(text);
      assert.equal(conn.closes()[0]?.code, 4400, text);
    }
  });

  it("closes with 1003 on a binary frame", async () => {
    const { app } = setup();
    const conn = await v1(app);
    await conn.binary([1, 2, 3]);
    assert.equal(conn.closes()[0]?.code, 1003);
  });

  it("closes with 4429 when more than maxInFlight requests wait", async () => {
    const never = new Promise<never>(() => {});
    const inner = new MemoryTopicLog();
    const log: TopicLog = {
      append: () => never,
      read: (t, a, l) => inner.read(t, a, l),
      watch: (t, l) => inner.watch(t, l),
      close: () => inner.close(),
    };
    const { app } = setup({
      log,
      maxInFlight: 4,
      authorize: { publish: () => true },
    });
    const conn = await v1(app);
    for (let id = 1; id <= 4; id++) {
      feed(conn, { type: "publish", id, topic: "t", key: `k${id}`, data: "x" });
    }
    await flush();
    assert.deepEqual(conn.closes(), [], "4 in flight is fine");
    await send(conn, { type: "ping", id: 5 });
    assert.equal(conn.closes()[0]?.code, 4429);
  });

  it("closes a slow live subscriber with 1013 (policy close), or drops for it (policy drop)", async () => {
    for (const slowPolicy of ["close", "drop"] as const) {
      const { app, live } = setup({ slowPolicy, maxBufferedBytes: 1000 });
      const conn = await v1(app);
      await send(conn, { type: "subscribe", id: 1, topic: "t", from: "now" });
      await live.publish("t", "first");
      await settle(() => offsetsOf(received(conn)).length === 1);
      conn.transport.buffered = 5000;
      await live.publish("t", "second");
      await flush();
      if (slowPolicy === "close") assert.equal(conn.closes()[0]?.code, 1013);
      else assert.deepEqual(conn.closes(), []);
      assert.deepEqual(offsetsOf(received(conn)), [1]);
    }
  });

  it("waits for the output to drain while it replays", async () => {
    const { app, live } = setup({ replayBatch: 10 });
    for (let i = 0; i < 100; i++) await live.publish("t", "x".repeat(100));
    const conn = await v1(app, { options: { highWaterMark: 1024 } });
    conn.transport.accepting = false; // every write: above the high-water mark
    await send(conn, { type: "subscribe", id: 1, topic: "t", from: "start" });
    await flush();
    const sent = offsetsOf(received(conn)).length;
    assert.ok(sent < 100, `stopped for the drain after ${sent}`);
    conn.transport.accepting = true;
    for (let i = 0; i < 200 && offsetsOf(received(conn)).length < 100; i++) {
      conn.pump.onDrain();
      await flush(1);
    }
    assert.deepEqual(
      offsetsOf(received(conn)),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
  });
});

describe("reliable: the seam", () => {
  for (const lagWatch of [false, true]) {
    it(`gives every subscriber exactly 1..N once, in order, under concurrent publishes on a slow async log (watch ${lagWatch ? "lagging" : "in step"})`, async () => {
      const random = prng(lagWatch ? 20 : 21);
      const log = new SlowLog(new MemoryTopicLog(), random, {
        maxDelayMs: 2,
        lagWatch,
      });
      const { app, live, errors } = setup({
        log,
        replayBatch: 16,
        maxBufferedBytes: 16 * 1024, // what is held for a replaying subscriber overflows now and then: the log is read again
        maxInFlight: 4096,
        authorize: { publish: () => true },
      });
      const N = 2000;
      const publisher = await v1(app);
      const subscribers: {
        conn: Awaited<ReturnType<typeof v1>>;
        from: "start" | { epoch: string; offset: number };
      }[] = [];
      let epoch = "";
      let next = 1;
      // Publishes from a client (pipelined) and from the server, interleaved with subscribes.
      const publishing = (async () => {
        while (next <= N) {
          const burst = Math.min(N - next + 1, 1 + Math.floor(random() * 40));
          for (let i = 0; i < burst; i++, next++) {
            if (random() < 0.5) {
              feed(publisher, {
                type: "publish",
                id: next,
                topic: "t",
                key: `k${next}`,
                data: `m`,
              });
            } else {void live.publish("t", "m").then((p) =>
                void (epoch = p.epoch)
              );}
          }
          await flush(1);
        }
      })();
      while (next <= N) {
        const conn = await v1(app);
        const stored = (log.inner as MemoryTopicLog).read("t", "now", 0).last;
        const from = epoch !== "" && random() < 0.5
          ? { epoch, offset: Math.floor(random() * (stored + 1)) }
          : "start" as const;
        await send(conn, { type: "subscribe", id: 1, topic: "t", from });
        subscribers.push({ conn, from });
        await flush(1 + Math.floor(random() * 3));
      }
      await publishing;
      await settle(
        () => (log.inner as MemoryTopicLog).read("t", "now", 0).last === N,
        10_000,
      );
      const last = (log.inner as MemoryTopicLog).read("t", "now", 0).last;
      assert.equal(last, N);
      assert.ok(subscribers.length >= 5, `${subscribers.length} subscribers`);
      for (const { conn, from } of subscribers) {
        const start = from === "start" ? 0 : from.offset;
        await settle(
          () => offsetsOf(received(conn)).length >= N - start,
          10_000,
        );
        await flush();
        const got = offsetsOf(received(conn));
        assert.deepEqual(
          got,
          Array.from({ length: N - start }, (_, i) => i + start + 1),
          `from ${JSON.stringify(from)}`,
        );
        assert.deepEqual(conn.closes(), []);
      }
      assert.equal(live.subscribers("t"), subscribers.length);
      assert.deepEqual(errors, []);
      for (const { conn } of subscribers) await conn.close(1000);
      await settle(() => live.subscribers("t") === 0 && log.watches === 0);
    });
  }
});

describe("reliable: closing", () => {
  it("a closed connection releases its subscriptions and the topic's watch", async () => {
    const log = new CountingLog(new MemoryTopicLog());
    const { app, live } = setup({ log });
    const a = await v1(app);
    const b = await v1(app);
    await send(a, { type: "subscribe", id: 1, topic: "t", from: "now" });
    await send(a, { type: "subscribe", id: 2, topic: "u", from: "now" });
    await send(b, { type: "subscribe", id: 1, topic: "t", from: "now" });
    await settle(() => received(a).length === 2 && received(b).length === 1);
    assert.deepEqual([
      live.subscribers("t"),
      live.subscribers("u"),
      log.watches,
    ], [2, 1, 2]);
    await a.close(1000);
    assert.deepEqual([
      live.subscribers("t"),
      live.subscribers("u"),
      log.watches,
    ], [1, 0, 1]);
    await b.socketClosed();
    assert.deepEqual([live.subscribers("t"), log.watches], [0, 0]);
  });

  it("a connection closed for a bad message releases its subscriptions too", async () => {
    const log = new CountingLog(new MemoryTopicLog());
    const { app, live } = setup({ log });
    const conn = await v1(app);
    await send(conn, { type: "subscribe", id: 1, topic: "t", from: "now" });
    await conn.text("garbage");
    assert.deepEqual([live.subscribers("t"), log.watches], [0, 0]);
  });

  it("close() closes the duplex.v1 connections with 1001, releases the watches and closes the log", async () => {
    const log = new CountingLog(new MemoryTopicLog());
    const { app, live } = setup({ log });
    const conn = await v1(app);
    await send(conn, { type: "subscribe", id: 1, topic: "t", from: "now" });
    await live.close();
    assert.equal(conn.closes()[0]?.code, 1001);
    assert.equal(log.watches, 0);
    await assert.rejects(live.publish("t", "x"), isUsage("ERR_CLOSED"));
    const later = await connect(app, { request: { protocols: ["duplex.v1"] } });
    assert.equal(
      later.answer.header("sec-websocket-protocol"),
      undefined,
      "no longer chosen",
    );
  });
});

describe("reliable: options", () => {
  it("refuses unknown options and bad values", async () => {
    assert.throws(
      () => reliable({ maxInflight: 3 } as never),
      (e: unknown) =>
        isUsage("ERR_INVALID_OPTION")(e) &&
        /maxInFlight/.test((e as Error).message),
    );
    assert.throws(
      () => reliable({ maxInFlight: 0 }),
      isUsage("ERR_INVALID_OPTION"),
    );
    assert.throws(
      () => reliable({ replayBatch: 1.5 }),
      isUsage("ERR_INVALID_OPTION"),
    );
    assert.throws(
      () => reliable({ slowPolicy: "kick" as never }),
      isUsage("ERR_INVALID_OPTION"),
    );
    assert.throws(
      () => reliable({ log: {} as never }),
      isUsage("ERR_INVALID_OPTION"),
    );
    assert.throws(
      () => reliable({ authorize: { publsh: () => true } as never }),
      isUsage("ERR_INVALID_OPTION"),
    );
    assert.throws(
      () => reliable({ onError: 1 as never }),
      isUsage("ERR_INVALID_OPTION"),
    );
    await assert.rejects(
      reliable().publish("", "x"),
      isUsage("ERR_INVALID_TOPIC"),
    );
  });

  it("is accepted by app.use, app.route and a Hono route's use", () => {
    const live = reliable<{ user: string }>();
    new App<{ user: string }>().use(live).route("/rooms/:room", live);
    new App<{ user: string }>().use(reliable()).route("/x", reliable());
    upgradeWebSocket(() => ({}), { use: [live] });
    upgradeWebSocket<HonoContext, { user: string }>(() => ({}), { use: [reliable()] });
  });
});


