// reliable(): a watch that starts late or skips entries (as on Redis, where
// SUBSCRIBE races the reads, and entries trimmed while the subscriber link was
// down are skipped). A joining or live subscriber that would get an entry past
// its next one goes back to reading the log: the client sees no hole.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { App } from "../../plugins/app.ts";
import { reliable } from "../../plugins/reliable.ts";
import { type LogEntry, MemoryTopicLog, type TopicLog } from "../../plugins/topic_log.ts";
import type { From } from "../../client/_wire.ts";
import { flush } from "../plugins/_harness.ts";
import { offsetsOf, received, send, settle, v1 } from "./_util.ts";

/** A memory log whose watch hands nothing on until `start()`, and skips entries while `skipping`. */
class LateWatchLog implements TopicLog {
  readonly inner = new MemoryTopicLog();
  started = false;
  skipping = false;
  watches = 0;

  append(topic: string, data: string | Uint8Array, key?: string) {
    return this.inner.append(topic, data, key);
  }
  read(topic: string, after: From, limit: number) {
    return this.inner.read(topic, after, limit);
  }
  watch(topic: string, listener: (entry: LogEntry) => void): () => void {
    this.watches++;
    const stop = this.inner.watch(topic, (entry) => {
      if (this.started && !this.skipping) listener(entry);
    });
    return () => {
      this.watches--;
      stop();
    };
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe("reliable: a watch that starts late or skips", () => {
  it("reads the log again instead of sending a hole, joining and live", async () => {
    const log = new LateWatchLog();
    const errors: unknown[] = [];
    const live = reliable({ log, onError: (e) => void errors.push(e) });
    const app = new App().use(live);
    for (let i = 1; i <= 3; i++) await live.publish("t", `m${i}`);
    const conn = await v1(app);
    await send(conn, { type: "subscribe", id: 1, topic: "t", from: "start" });
    await settle(() => offsetsOf(received(conn)).length === 3);
    // Published before the watch started: the watch never hands these on.
    await live.publish("t", "m4");
    await live.publish("t", "m5");
    log.started = true;
    await live.publish("t", "m6"); // the first the joining subscriber sees: 6, not 4
    await settle(() => offsetsOf(received(conn)).length === 6);
    await live.publish("t", "m7"); // live now
    await settle(() => offsetsOf(received(conn)).length === 7);
    // The watch skips two entries while the subscriber is live.
    log.skipping = true;
    await live.publish("t", "m8");
    await live.publish("t", "m9");
    log.skipping = false;
    await live.publish("t", "m10");
    await settle(() => offsetsOf(received(conn)).length === 10);
    await live.publish("t", "m11");
    await settle(() => offsetsOf(received(conn)).length === 11);
    await flush();
    assert.deepEqual(offsetsOf(received(conn)), Array.from({ length: 11 }, (_, i) => i + 1));
    assert.deepEqual(conn.closes(), []);
    assert.equal(live.subscribers("t"), 1);
    assert.deepEqual(errors, []);
    await conn.close(1000);
    await settle(() => live.subscribers("t") === 0 && log.watches === 0);
    await live.close();
  });

  it("a second subscriber joining while another is live gets no hole either", async () => {
    const log = new LateWatchLog();
    log.started = true;
    const live = reliable({ log, onError: () => {} });
    const app = new App().use(live);
    const a = await v1(app);
    await send(a, { type: "subscribe", id: 1, topic: "t", from: "start" });
    await live.publish("t", "m1");
    await settle(() => offsetsOf(received(a)).length === 1);
    const b = await v1(app);
    await send(b, { type: "subscribe", id: 1, topic: "t", from: "start" });
    await settle(() => offsetsOf(received(b)).length === 1);
    log.skipping = true;
    await live.publish("t", "m2");
    log.skipping = false;
    for (let i = 3; i <= 5; i++) await live.publish("t", `m${i}`);
    await settle(() => offsetsOf(received(a)).length === 5 && offsetsOf(received(b)).length === 5);
    await flush();
    for (const conn of [a, b]) assert.deepEqual(offsetsOf(received(conn)), [1, 2, 3, 4, 5]);
    await live.close();
  });
});
