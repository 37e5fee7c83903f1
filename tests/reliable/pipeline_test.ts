// Pipelined publishes: a connection's consecutive publishes are appended
// without waiting for each other, yet appends start in request order, answers
// go out in request order, and other requests wait for the publishes before them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { App } from "../../plugins/app.ts";
import { reliable, type ReliableOptions } from "../../plugins/reliable.ts";
import { type Appended, MemoryTopicLog, type TopicLog } from "../../plugins/topic_log.ts";
import type { ServerMessage } from "../../client/_wire.ts";
import { deferred, flush } from "../plugins/_harness.ts";
import { feed, received, settle, v1 } from "./_util.ts";

function setup<S = Record<string, unknown>>(options: ReliableOptions<S> = {}) {
  const errors: unknown[] = [];
  const live = reliable<S>({ onError: (e) => void errors.push(e), ...options });
  const app = new App<S>().use(live);
  return { live, app, errors };
}

/** What the answer to each request id was: `ack:OFFSET`, the error code, or the type. */
function answers(messages: ServerMessage[]): string[] {
  return messages.flatMap((m) => {
    if (m.type === "ack") return [`${m.id}:ack:${m.offset}`];
    if (m.type === "error") return [`${m.id}:${m.code}`];
    if (m.type === "pong" || m.type === "subscribed" || m.type === "unsubscribed") return [`${m.id}:${m.type}`];
    return [];
  });
}

/** A log whose appends wait until the test settles them, one by one, in any order. */
class GatedLog implements TopicLog {
  readonly inner = new MemoryTopicLog();
  /** The appends started, in call order. */
  readonly calls: { data: string; key?: string; settle: (how: "store" | Error) => void }[] = [];

  append(topic: string, data: string | Uint8Array, key?: string): Promise<Appended> {
    const d = deferred<Appended>();
    this.calls.push({
      data: String(data),
      key,
      settle: (how) => how === "store" ? d.resolve(this.inner.append(topic, data, key)) : d.reject(how),
    });
    return d.promise;
  }
  read: TopicLog["read"] = (t, a, l) => this.inner.read(t, a, l);
  watch: TopicLog["watch"] = (t, l) => this.inner.watch(t, l);
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A synchronous log refusing entries over `max` bytes (MemoryTopicLog's `maxBytes` bounds the whole history). */
class SizedLog extends MemoryTopicLog {
  readonly #max: number;
  constructor(max: number) {
    super();
    this.#max = max;
  }
  override append(topic: string, data: string | Uint8Array, key?: string): Appended {
    if (data.length > this.#max) throw Object.assign(new Error("too large"), { code: "ERR_TOO_LARGE" });
    return super.append(topic, data, key);
  }
}

describe("reliable: pipelined publishes", () => {
  it("with a synchronous log: offsets follow the requests, answers in request order, a subscribe sees the publishes before it", async () => {
    const { app } = setup({
      log: new SizedLog(8),
      authorize: { publish: (_ctx, _topic, data) => data !== "no" },
    });
    const conn = await v1(app);
    const expected: string[] = [];
    let offset = 0;
    for (let id = 1; id <= 60; id++) {
      if (id === 30) {
        feed(conn, { type: "subscribe", id, topic: "t", from: "start" });
        expected.push(`${id}:subscribed`);
        continue;
      }
      const data = id % 7 === 0 ? "no" : id % 11 === 0 ? "far too long" : `m${id}`;
      feed(conn, { type: "publish", id, topic: "t", key: `k${id}`, data });
      expected.push(data === "no" ? `${id}:forbidden` : data.length > 8 ? `${id}:too_large` : `${id}:ack:${++offset}`);
    }
    feed(conn, { type: "ping", id: 61 });
    expected.push("61:pong");
    await settle(() => answers(received(conn)).length === expected.length);
    assert.deepEqual(answers(received(conn)), expected);
    const subscribed = received(conn).find((m) => m.type === "subscribed");
    assert.equal(subscribed?.type === "subscribed" && subscribed.position.offset, 0);
    // The subscriber got every stored message once, in order: the replay (those before it), then live.
    const data = received(conn).flatMap((m) => m.type === "message" ? [m.data] : []);
    assert.deepEqual(data, Array.from({ length: 60 }, (_, i) => i + 1).filter((id) => id !== 30 && id % 7 !== 0 && id % 11 !== 0).map((id) => `m${id}`));
  });

  it("with an async log: appends start in request order at once, settle out of order, and are answered in request order", async () => {
    const log = new GatedLog();
    const { app, errors } = setup({ log, authorize: { publish: () => true } });
    const conn = await v1(app);
    for (let id = 1; id <= 6; id++) feed(conn, { type: "publish", id, topic: "t", key: `k${id}`, data: `m${id}` });
    feed(conn, { type: "ping", id: 7 });
    feed(conn, { type: "publish", id: 8, topic: "t", key: "k8", data: "m8" });
    await flush();
    assert.deepEqual(log.calls.map((c) => c.data), ["m1", "m2", "m3", "m4", "m5", "m6"], "pipelined, in request order; none after the ping yet");
    // Settle from the last to the first, with a failure and a refusal in the middle (this log stores in settle order).
    const tooLarge = Object.assign(new Error("too large"), { code: "ERR_TOO_LARGE" });
    log.calls[5]!.settle("store");
    log.calls[4]!.settle(new Error("redis down"));
    log.calls[3]!.settle(tooLarge);
    await flush();
    assert.deepEqual(answers(received(conn)), [], "nothing before the first is answered");
    log.calls[2]!.settle("store");
    log.calls[1]!.settle("store");
    await flush();
    assert.deepEqual(answers(received(conn)), []);
    log.calls[0]!.settle("store");
    await settle(() => log.calls.length === 7);
    assert.deepEqual(answers(received(conn)), ["1:ack:4", "2:ack:3", "3:ack:2", "4:too_large", "5:unavailable", "6:ack:1", "7:pong"]);
    assert.equal(log.calls[6]!.data, "m8", "the publish after the ping starts once the ping is answered");
    log.calls[6]!.settle("store");
    await settle(() => received(conn).length === 8);
    assert.deepEqual(answers(received(conn)).at(-1), "8:ack:5");
    assert.equal(errors.length, 1, "the unavailable one is reported");
  });

  it("an authorize hook answering later holds the appends after it; one answering at once starts its append at once", async () => {
    const log = new GatedLog();
    const verdict = deferred<boolean | string>();
    const { app } = setup({
      log,
      authorize: { publish: (_ctx, _topic, data) => data === "slow" ? verdict.promise : true },
    });
    const conn = await v1(app);
    feed(conn, { type: "publish", id: 1, topic: "t", key: "k1", data: "a" });
    feed(conn, { type: "publish", id: 2, topic: "t", key: "k2", data: "slow" });
    feed(conn, { type: "publish", id: 3, topic: "t", key: "k3", data: "c" });
    await flush();
    assert.deepEqual(log.calls.map((c) => c.data), ["a"], "the one after the awaited hook waits");
    verdict.resolve("stamped");
    await settle(() => log.calls.length === 3);
    assert.deepEqual(log.calls.map((c) => c.data), ["a", "stamped", "c"]);
    for (const call of log.calls) call.settle("store");
    await settle(() => received(conn).length === 3);
    assert.deepEqual(answers(received(conn)), ["1:ack:1", "2:ack:2", "3:ack:3"]);
  });

  it("a hook refusing or failing later answers that request only, in its place", async () => {
    const log = new GatedLog();
    const { app, errors } = setup({
      log,
      authorize: {
        publish: (_ctx, _topic, data) => data === "late no" ? Promise.resolve(false) : data === "late boom" ? Promise.reject(new Error("hook")) : true,
      },
    });
    const conn = await v1(app);
    feed(conn, { type: "publish", id: 1, topic: "t", key: "k1", data: "a" });
    feed(conn, { type: "publish", id: 2, topic: "t", key: "k2", data: "late no" });
    feed(conn, { type: "publish", id: 3, topic: "t", key: "k3", data: "late boom" });
    feed(conn, { type: "publish", id: 4, topic: "t", key: "k4", data: "d" });
    await settle(() => log.calls.length === 2);
    log.calls[1]!.settle("store");
    await flush();
    assert.deepEqual(answers(received(conn)), []);
    log.calls[0]!.settle("store");
    await settle(() => received(conn).length === 4);
    assert.deepEqual(answers(received(conn)), ["1:ack:2", "2:forbidden", "3:unavailable", "4:ack:1"]);
    assert.equal(errors.length, 1);
  });

  it("maxInFlight counts the appends started: one more closes with 4429", async () => {
    const log = new GatedLog();
    const { app } = setup({ log, maxInFlight: 3, authorize: { publish: () => true } });
    const conn = await v1(app);
    for (let id = 1; id <= 3; id++) feed(conn, { type: "publish", id, topic: "t", key: `k${id}`, data: "x" });
    await flush();
    assert.equal(log.calls.length, 3);
    log.calls[1]!.settle("store"); // answered only after the first: still pending
    await flush();
    feed(conn, { type: "ping", id: 4 });
    await flush();
    assert.equal(conn.closes()[0]?.code, 4429);
  });

  it("a closing connection sends nothing more: appends in flight settle without an answer, and nothing waits", async () => {
    const log = new GatedLog();
    const { app, live } = setup({ log, authorize: { publish: () => true } });
    const conn = await v1(app);
    for (let id = 1; id <= 3; id++) feed(conn, { type: "publish", id, topic: "t", key: `k${id}`, data: `m${id}` });
    feed(conn, { type: "subscribe", id: 4, topic: "t", from: "start" });
    await flush();
    log.calls[0]!.settle("store");
    await flush();
    const before = received(conn).length;
    assert.equal(before, 1);
    await conn.close(1000);
    log.calls[1]!.settle("store");
    log.calls[2]!.settle(new Error("down"));
    await flush();
    assert.equal(received(conn).length, before, "no answer after the close");
    assert.equal(live.subscribers("t"), 0, "the subscribe waiting behind them never ran");
    assert.equal(log.inner.read("t", "now", 0).last, 2, "what was started is stored");
  });
});
