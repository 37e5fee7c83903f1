// DuplexClient: a publish answered `unavailable` (the server's store failed,
// after storing it maybe) is sent again with the same key after a backoff,
// keeps its place in the queue, and gives up after the queue's maxAgeMs.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { outcome, setup } from "./_fake.ts";

const unavailable = (id: number) => ({ type: "error", id, code: "unavailable", message: "store down" });

describe("publish answered unavailable", () => {
  it("is sent again with the same key after a backoff, and resolves with its ack", async () => {
    const t = setup({ reconnect: { initialDelayMs: 100 } });
    const ws = await t.connect();
    const p = t.client.publish("t", "a");
    const first = ws.of("publish")[0]!;
    for (const [n, wait] of [[1, 100], [2, 200], [3, 400]] as const) {
      ws.receive(unavailable(ws.of("publish").at(-1)!.id));
      await t.timers.advance(wait - 1);
      assert.equal(ws.of("publish").length, n, `not before the backoff (${wait} ms)`);
      await t.timers.advance(1);
      assert.equal(ws.of("publish").length, n + 1);
    }
    const sent = ws.of("publish");
    assert.deepEqual(new Set(sent.map((m) => m.key)), new Set([first.key]), "the same key every time");
    assert.deepEqual(sent.map((m) => m.data), ["a", "a", "a", "a"]);
    assert.equal(new Set(sent.map((m) => m.id)).size, 4, "a new request id each time");
    ws.receive({ type: "error", id: first.id, code: "unavailable", message: "late answer to an old request" });
    ws.receive({ type: "ack", id: sent.at(-1)!.id, topic: "t", epoch: "e", offset: 1 });
    assert.deepEqual(await p, { epoch: "e", offset: 1 });
    assert.equal(t.errors.length, 0, "not reported as an error: it is still being delivered");
    await t.timers.advance(10_000);
    assert.equal(ws.of("publish").length, 4, "nothing more once acked");
    t.client.close();
    assert.equal(t.timers.pending.size, 0);
  });

  it("keeps its place: later publishes are not held up, and it counts in the queue's bounds", async () => {
    const t = setup({ reconnect: { initialDelayMs: 100 }, queue: { maxMessages: 2 } });
    const ws = await t.connect();
    const a = t.client.publish("t", "a");
    const b = t.client.publish("t", "b");
    ws.receive(unavailable(ws.of("publish")[0]!.id));
    assert.deepEqual(await outcome(t.client.publish("t", "c")), { code: "queue_full" }, "a still takes its slot");
    ws.receive({ type: "ack", id: ws.of("publish")[1]!.id, topic: "t", epoch: "e", offset: 1 });
    assert.deepEqual(await b, { epoch: "e", offset: 1 });
    await t.timers.advance(100);
    const again = ws.of("publish").at(-1)!;
    assert.equal(again.data, "a");
    ws.receive({ type: "ack", id: again.id, topic: "t", epoch: "e", offset: 2 });
    assert.deepEqual(await a, { epoch: "e", offset: 2 });
    t.client.close();
  });

  it("is sent again at once after a reconnect, and rejects unavailable once older than maxAgeMs", async () => {
    const t = setup({ reconnect: { initialDelayMs: 100 }, queue: { maxAgeMs: 1000 } });
    const ws = await t.connect();
    const p = outcome(t.client.publish("t", "a"));
    const key = ws.of("publish")[0]!.key;
    ws.receive(unavailable(ws.of("publish")[0]!.id));
    ws.drop(1006);
    await t.timers.advance(100);
    const ws2 = t.ws;
    ws2.open();
    await t.timers.advance(0);
    assert.deepEqual(ws2.of("publish").map((m) => m.key), [key], "sent on the new connection, same key");
    assert.equal(ws.of("publish").length, 1, "the old timer is gone");
    for (;;) {
      const last = ws2.of("publish").at(-1)!;
      ws2.receive(unavailable(last.id));
      if (t.timers.time >= 1000) break;
      await t.timers.advance(1000);
    }
    assert.deepEqual(await p, { code: "unavailable" });
    t.client.close();
    assert.equal(t.timers.pending.size, 0);
  });
});
