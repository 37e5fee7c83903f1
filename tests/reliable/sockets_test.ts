// reliable() over real sockets, on every server of the runtime it runs on
// (serve()'s raw transport, the native one on Deno and Bun, and a Hono route
// with `use: [live]` behind @hono/node-server + injectWebSocket()), with a
// `ws` client speaking duplex.v1 JSON by hand: subscribe from start / now /
// a position, recovery after a reconnect, gap answers, the seam under
// concurrent publishes on a slow async log, publish authorization, acks and
// dedupe, the close codes, and that closed connections leave nothing.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { encode } from "../../client/_wire.ts";
import { MemoryTopicLog, reliable, type Reliable, type ReliableOptions } from "../../mod.ts";
import { serverTargets, type Started, V1 } from "../_sockets.ts";
import { prng } from "../_prng.ts";
import { delay, until, within } from "../runtimes/_helpers.ts";
import { Op, WsClient } from "../runtimes/_wsclient.ts";
import { CountingLog, SlowLog } from "./_util.ts";


const targets = serverTargets(["raw", "native", "honoNode", "honoDeno", "honoBun"]);

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

for (const target of targets) {
  describe(`reliable over real sockets: ${target.name}`, { skip: target.skip }, () => {
    const running: { server: Started; live: Reliable<any> }[] = [];
    const clients: V1[] = [];
    async function start(options: ReliableOptions = {}) {
      const errors: unknown[] = [];
      const live = reliable({ onError: (e) => void errors.push(e), authorize: { publish: () => true }, ...options });
      const server = await target.start([live]);
      running.push({ server, live });
      const open = async (protocols?: string[]) => {
        const c = await V1.open(server.url, protocols);
        clients.push(c);
        return c;
      };
      return { live, server, errors, open };
    }
    after(async () => {
      for (const c of clients) c.ws.terminate();
      for (const { server, live } of running) {
        await server.close();
        await live.close();
      }
    });

    it("subscribes from start and now, acks publishes once stored, and recovers after a reconnect", async () => {
      const { open, live } = await start();
      const a = await open();
      assert.equal(a.protocol, "duplex.v1");
      a.send({ type: "subscribe", id: 1, topic: "t", from: "start" });
      const pub = await open();
      for (let i = 1; i <= 5; i++) pub.send({ type: "publish", id: i, topic: "t", key: `p${i}`, data: `m${i}` });
      await pub.wait((c) => c.of("ack").length === 5, "5 acks");
      assert.deepEqual(pub.of("ack").map((m) => [m.id, m.offset]), range(1, 5).map((i) => [i, i]));
      await a.wait((c) => c.offsets().length === 5, "5 messages");
      const epoch = a.of("subscribed")[0]!.position.epoch;
      assert.deepEqual(a.offsets(), range(1, 5));
      // A late subscriber from now, one from a position after a reconnect.
      const b = await open();
      b.send({ type: "subscribe", id: 1, topic: "t", from: "now" });
      await b.wait((c) => c.of("subscribed").length === 1, "subscribed");
      assert.deepEqual(b.of("subscribed")[0]!.position, { epoch, offset: 5 });
      a.ws.terminate();
      await live.publish("t", "m6");
      await live.publish("t", "m7");
      const again = await open();
      again.send({ type: "subscribe", id: 1, topic: "t", from: { epoch, offset: 5 } });
      await again.wait((c) => c.offsets().length === 2, "recovered 6 and 7");
      assert.equal(again.of("subscribed")[0]!.result, "recovered");
      assert.deepEqual(again.offsets(), [6, 7]);
      await b.wait((c) => c.offsets().length === 2, "b: live 6 and 7");
      assert.deepEqual(b.offsets(), [6, 7]);
      await until(() => live.subscribers("t") === 2, 3000, "the terminated subscriber released");
    });

    it("stores a retried key once, even across connections, and acks the first offset", async () => {
      const { open } = await start();
      const first = await open();
      first.send({ type: "publish", id: 1, topic: "k", key: "client-1:1", data: "once" });
      await first.wait((c) => c.of("ack").length === 1, "ack");
      first.ws.terminate();
      const retry = await open();
      retry.send({ type: "publish", id: 1, topic: "k", key: "client-1:1", data: "once" });
      retry.send({ type: "publish", id: 2, topic: "k", key: "client-1:2", data: "twice" });
      await retry.wait((c) => c.of("ack").length === 2, "acks");
      assert.deepEqual(retry.of("ack").map((m) => m.offset), [1, 2]);
      const reader = await open();
      reader.send({ type: "subscribe", id: 1, topic: "k", from: "start" });
      await reader.wait((c) => c.offsets("k").length === 2, "history");
      assert.deepEqual(reader.messages.flatMap((m) => (m.type === "message" ? [m.data] : [])), ["once", "twice"]);
    });

    it("answers gaps: trimmed, and epoch for another history", async () => {
      const { open, live } = await start({ log: new MemoryTopicLog({ maxMessages: 3 }) });
      let epoch = "";
      for (let i = 0; i < 6; i++) epoch = (await live.publish("t", `m${i + 1}`)).epoch;
      const c = await open();
      c.send({ type: "subscribe", id: 1, topic: "t", from: { epoch, offset: 1 } });
      c.send({ type: "subscribe", id: 2, topic: "u", from: { epoch: "a-restarted-server", offset: 9 } });
      await c.wait((x) => x.of("subscribed").length === 2 && x.offsets().length === 3, "answers");
      const [t, u] = c.of("subscribed");
      assert.deepEqual([t!.result, t!.gap], ["gap", { reason: "trimmed", epoch, from: 2, to: 3 }]);
      assert.deepEqual(c.offsets(), [4, 5, 6]);
      assert.deepEqual([u!.result, u!.gap?.reason, u!.gap?.from], ["gap", "epoch", 10]);
    });

    it("refuses publishes the hook refuses, and passes other subprotocols through", async () => {
      const { open } = await start({ authorize: { publish: (_ctx, topic) => topic === "open" } });
      const c = await open();
      c.send({ type: "publish", id: 1, topic: "closed", key: "a", data: "x" });
      c.send({ type: "publish", id: 2, topic: "open", key: "b", data: "x" });
      await c.wait((x) => x.messages.length === 2, "answers");
      assert.deepEqual(c.messages.map((m) => m.type === "error" ? m.code : m.type), ["forbidden", "ack"]);
      const plain = await open([]);
      assert.equal(plain.protocol, "");
    });

    it("closes with 4400 on garbage, 1003 on a binary frame, 4429 on a flood", async () => {
      const inner = new MemoryTopicLog();
      const { open } = await start({
        maxInFlight: 8,
        log: {
          append: (topic, data, key) => topic === "stuck" ? new Promise(() => {}) : inner.append(topic, data, key),
          read: (t, a, l) => inner.read(t, a, l),
          watch: (t, l) => inner.watch(t, l),
          close: () => inner.close(),
        },
      });
      const garbage = await open();
      garbage.ws.send("{not json");
      assert.equal((await within(garbage.closed, 5000, "4400")).code, 4400);
      const binary = await open();
      binary.ws.send(new Uint8Array([1, 2, 3]));
      assert.equal((await within(binary.closed, 5000, "1003")).code, 1003);
      const flood = await open();
      // Exactly one over: a message after the close makes Deno's native server drop TCP (1006).
      for (let id = 1; id <= 9; id++) flood.send({ type: "publish", id, topic: "stuck", key: `k${id}`, data: "x" });
      assert.equal((await within(flood.closed, 5000, "4429")).code, 4429);
    });

    it("gives every subscriber exactly 1..N once, in order, while publishes and subscribes interleave (slow async log)", async () => {
      const random = prng(7);
      const log = new SlowLog(new MemoryTopicLog(), random, { maxDelayMs: 2 });
      const { open, live, errors } = await start({ log, replayBatch: 50, maxBufferedBytes: 64 * 1024 });
      const N = 3000;
      const pubs = [await open(), await open()];
      let sent = 0;
      const publishedBy = [0, 0];
      const subs: { c: V1; start: number }[] = [];
      let epoch = "";
      while (sent < N) {
        const burst = Math.min(N - sent, 50 + Math.floor(random() * 150));
        for (let i = 0; i < burst; i++) {
          sent++;
          const which = sent % 3 === 0 ? 0 : 1;
          if (sent % 5 === 0) void live.publish("t", `s${sent}`).then((p) => void (epoch = p.epoch));
          else {
            publishedBy[which]!++;
            pubs[which]!.send({ type: "publish", id: sent, topic: "t", key: `k${sent}`, data: `c${sent}` });
          }
        }
        const c = await open();
        const stored = (log.inner as MemoryTopicLog).read("t", "now", 0).last;
        const start = epoch !== "" && random() < 0.6 ? Math.floor(random() * (stored + 1)) : 0;
        c.send({ type: "subscribe", id: 1, topic: "t", from: start === 0 ? "start" : { epoch, offset: start } });
        subs.push({ c, start });
        await Promise.all(pubs.map((p, i) => p.wait((x) => x.of("ack").length === publishedBy[i], "acks", 10_000)));
      }
      await until(() => (log.inner as MemoryTopicLog).read("t", "now", 0).last === N, 10_000, "all stored");
      for (const { c, start } of subs) {
        await c.wait((x) => x.offsets().length >= N - start, `subscriber from ${start}: ${N - start} messages`, 10_000);
        assert.deepEqual(c.offsets(), range(start + 1, N), `subscriber from ${start}`);
        assert.equal(c.of("subscribed").length, 1);
      }
      assert.ok(subs.length >= 10, `${subs.length} subscribers`);
      assert.deepEqual(errors, []);
      for (const { c } of subs) c.close();
      await until(() => live.subscribers("t") === 0 && log.watches === 0, 5000, "released");
    });

    it("closes a subscriber that stops reading with 1013", async () => {
      const { server, live } = await start({ maxBufferedBytes: 256 * 1024 });
      // A raw client, whose socket can stop reading on every runtime.
      const slow = await WsClient.connect(server.url, { path: new URL(server.url).pathname, headers: { "Sec-WebSocket-Protocol": "duplex.v1" } });
      await slow.sendFrame({ opcode: Op.Text, payload: encode({ type: "subscribe", id: 1, topic: "t", from: "now" }) });
      await slow.waitForReceived(1, 5000);
      slow.socket.pause();
      const big = "x".repeat(64 * 1024);
      for (let i = 0; i < 300; i++) {
        await live.publish("t", big);
        if (i % 10 === 9) await delay(5);
      }
      slow.socket.resume();
      await slow.expectClose(1013, 10_000);
      assert.ok(slow.received().length < 300, `${slow.received().length} delivered before the close`);
      await until(() => live.subscribers("t") === 0, 5000, "released");
      slow.destroy();
    });

    it("releases subscriptions and watches when connections close", async () => {
      const log = new CountingLog(new MemoryTopicLog());
      const { open, live } = await start({ log });
      const cs = await Promise.all(range(1, 5).map(() => open()));
      for (const c of cs) {
        c.send({ type: "subscribe", id: 1, topic: "a", from: "now" });
        c.send({ type: "subscribe", id: 2, topic: "b", from: "start" });
      }
      await Promise.all(cs.map((c) => c.wait((x) => x.of("subscribed").length === 2, "subscribed")));
      assert.deepEqual([live.subscribers("a"), live.subscribers("b"), log.watches], [5, 5, 2]);
      cs[0]!.close();
      cs[1]!.ws.terminate();
      await until(() => live.subscribers("a") === 3, 5000, "two released");
      for (const c of cs.slice(2)) c.close();
      await until(() => live.subscribers("a") + live.subscribers("b") === 0 && log.watches === 0, 5000, "all released");
    });
  });
}
