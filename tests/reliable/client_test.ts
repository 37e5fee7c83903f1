// DuplexClient on a scripted fake WebSocket and fake timers: reconnection
// (backoff, jitter, timeouts, retry decisions, URL per attempt), heartbeat,
// the publish queue, subscriptions across reconnects, close() and the
// browser's online/offline/visibility events.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defaultShouldRetry, DuplexClient, DuplexError } from "../../client/mod.ts";
import { FakeBrowser, FakeSocket, message, outcome, setup, subscribed, tick } from "./_fake.ts";

describe("options", () => {
  const WebSocket = FakeSocket;
  const bad: [unknown, ErrorConstructor, RegExp][] = [
    [{ WebSocket: 1 }, TypeError, /options\.WebSocket/],
    [{ reconnect: { initialDelayMs: -1 } }, RangeError, /initialDelayMs: expected a number >= 0, got -1/],
    [{ reconnect: { factor: 0.5 } }, RangeError, /factor/],
    [{ reconnect: { maxRetries: 1.5 } }, RangeError, /maxRetries: expected an integer >= 0 or Infinity/],
    [{ reconnect: { maxDelayMs: "1" } }, TypeError, /maxDelayMs: expected a number/],
    [{ reconnect: 5 }, TypeError, /options\.reconnect: expected an object/],
    [{ connectTimeoutMs: 0 }, RangeError, /connectTimeoutMs: expected a number > 0 or Infinity/],
    [{ heartbeat: { intervalMs: Infinity } }, RangeError, /intervalMs/],
    [{ heartbeat: { timeoutMs: NaN } }, TypeError, /timeoutMs/],
    [{ queue: { maxMessages: -1 } }, RangeError, /maxMessages/],
    [{ queue: { maxBytes: -1 } }, RangeError, /maxBytes/],
    [{ queue: { maxAgeMs: 0 } }, RangeError, /maxAgeMs/],
    [{ queue: { whenFull: "drop" } }, TypeError, /whenFull: expected "reject" or "drop-oldest", got drop/],
    [{ maxInFlight: 0 }, RangeError, /maxInFlight: expected an integer >= 1/],
    [{ shouldRetry: true }, TypeError, /shouldRetry: expected a function/],
    [{ protocols: ["ok", ""] }, TypeError, /protocols/],
    [{ timers: { setTimeout() {} } }, TypeError, /timers/],
    [{ random: 4 }, TypeError, /random/],
    [{ browser: {} }, TypeError, /browser/],
    [7, TypeError, /options: expected an object/],
  ];
  for (const [options, type, pattern] of bad) {
    it(`refuses ${JSON.stringify(options)}`, () => {
      const make = typeof options === "object" ? () => new DuplexClient("ws://x/", { WebSocket, ...options } as any) : () => new DuplexClient("ws://x/", options as any);
      assert.throws(make, (e: Error) => e instanceof type && pattern.test(e.message));
    });
  }
  it("refuses a bad url and a missing WebSocket", () => {
    assert.throws(() => new DuplexClient(3 as any, { WebSocket }), /Invalid url: expected a string, a URL or a function/);
    assert.throws(() => new DuplexClient("ws://[::", { WebSocket }), /Invalid url: ws:\/\/\[::/);
    const saved = (globalThis as any).WebSocket;
    (globalThis as any).WebSocket = undefined;
    try {
      assert.throws(() => new DuplexClient("ws://x/"), /No WebSocket: pass options.WebSocket/);
    } finally {
      (globalThis as any).WebSocket = saved;
    }
  });
  it("refuses bad arguments to subscribe, publish and on", () => {
    const { client } = setup();
    assert.throws(() => client.subscribe("", () => {}), /Invalid topic/);
    assert.throws(() => client.subscribe("t", 1 as any), /Invalid onMessage/);
    assert.throws(() => client.subscribe("t", () => {}, { from: { epoch: "", offset: 1 } }), /Invalid from/);
    assert.throws(() => client.subscribe("t", () => {}, { from: { epoch: "e", offset: -1 } }), /Invalid from/);
    assert.throws(() => client.publish("t", 5 as any), /Invalid data/);
    assert.throws(() => client.publish("x".repeat(1025), "d"), /Invalid topic/);
    assert.throws(() => client.on("nope" as any, () => {}), /Invalid event: nope/);
    client.subscribe("t", () => {});
    assert.throws(() => client.subscribe("t", () => {}), /Already subscribed to t/);
    client.close();
  });
});

describe("connecting and reconnecting", () => {
  it("offers duplex.v1 first, then the protocols; reports connecting then open", async () => {
    const t = setup({ protocols: ["chat"] });
    assert.equal(t.client.status, "connecting");
    const ws = await t.connect();
    assert.deepEqual(ws.protocols, ["duplex.v1", "chat"]);
    assert.equal(ws.url, "ws://test/");
    assert.equal(t.client.status, "open");
    assert.deepEqual(t.statuses, [{ status: "connecting", attempt: 0 }, { status: "open" }]);
    t.client.close();
  });

  it("waits within full-jitter exponential bounds, capped at maxDelayMs", async () => {
    const draws = [1, 0.5, 0, 1, 1, 1, 1];
    let i = 0;
    const t = setup({ random: () => draws[i++ % draws.length]!, reconnect: { initialDelayMs: 100, factor: 3, maxDelayMs: 2000 } });
    await tick();
    const delays: number[] = [];
    for (let n = 0; n < 6; n++) {
      t.ws.drop(1006);
      await tick();
      const wait = t.statuses.at(-1)!;
      assert.equal(wait.status, "connecting");
      assert.equal(wait.attempt, n + 1);
      delays.push(wait.delayMs!);
      assert.deepEqual(t.timers.delays(), [wait.delayMs!], "only the wait is pending");
      await t.timers.advance(wait.delayMs!);
      assert.equal(t.sockets.length, n + 2, "a new attempt after the wait");
    }
    // bounds 100, 300, 900, 2000 (capped), 2000, 2000; draws 1, .5, 0, 1, 1, 1
    assert.deepEqual(delays, [100, 150, 0, 2000, 2000, 2000]);
    t.client.close();
  });

  it("resets the backoff once open", async () => {
    const t = setup({ reconnect: { initialDelayMs: 100 } });
    await tick();
    t.ws.drop();
    await t.timers.advance(100);
    t.ws.drop();
    assert.equal(t.statuses.at(-1)!.delayMs, 200);
    await t.timers.advance(200);
    t.ws.open();
    t.ws.drop(1001, "going away");
    const wait = t.statuses.at(-1)!;
    assert.deepEqual(wait, { status: "reconnecting", code: 1001, reason: "going away", attempt: 1, delayMs: 100 });
    t.client.close();
  });

  it("abandons an attempt not open within connectTimeoutMs", async () => {
    const t = setup({ connectTimeoutMs: 500, reconnect: { initialDelayMs: 10 } });
    await tick();
    const first = t.ws;
    await t.timers.advance(499);
    assert.equal(t.client.status, "connecting");
    assert.equal(first.abandoned, false);
    await t.timers.advance(1);
    assert.equal(first.abandoned, true);
    assert.equal(t.errors[0]?.code, "timeout");
    assert.deepEqual(t.statuses.at(-1), { status: "connecting", code: 1006, reason: "Connect timeout", attempt: 1, delayMs: 10 });
    first.open(); // too late: ignored
    assert.equal(t.client.status, "connecting");
    await t.timers.advance(10);
    assert.equal(t.sockets.length, 2);
    t.ws.open();
    assert.equal(t.client.status, "open");
    await t.timers.advance(10_000);
    assert.equal(t.client.status, "open", "the timeout is cleared once open");
    t.client.close();
  });

  it("gives up after maxRetries failures in a row", async () => {
    const t = setup({ reconnect: { maxRetries: 2, initialDelayMs: 1 } });
    await tick();
    t.ws.drop();
    await t.timers.advance(1);
    t.ws.drop();
    await t.timers.advance(2);
    assert.equal(t.sockets.length, 3);
    const pending = outcome(t.client.publish("t", "x"));
    t.ws.drop(1011, "boom");
    assert.equal(t.client.status, "closed");
    assert.deepEqual(t.statuses.at(-1), { status: "closed", code: 1011, reason: "boom" });
    assert.deepEqual(await pending, { code: "closed" });
    assert.equal(t.timers.pending.size, 0);
  });

  it("maxRetries 0 never retries", async () => {
    const t = setup({ reconnect: { maxRetries: 0 } });
    await t.connect();
    t.ws.drop(1006);
    assert.equal(t.client.status, "closed");
  });

  describe("the default retry table", () => {
    const never = [1000, 1002, 1003, 1007, 1008, 1009, 1010, 4400, 4401, 4403, 4499];
    const always = [1001, 1005, 1006, 1011, 1012, 1013, 1014, 1015, 3000, 4000, 4399, 4429, 4500, 4999];
    for (const code of never) {
      it(`does not retry after ${code}`, async () => {
        assert.equal(defaultShouldRetry({ code, reason: "", attempt: 1 }), false);
        const t = setup();
        await t.connect();
        t.ws.drop(code, "r");
        assert.equal(t.client.status, "closed");
        assert.deepEqual(t.statuses.at(-1), { status: "closed", code, reason: "r" });
      });
    }
    for (const code of always) {
      it(`retries after ${code}`, async () => {
        assert.equal(defaultShouldRetry({ code, reason: "", attempt: 1 }), true);
        const t = setup();
        await t.connect();
        t.ws.drop(code);
        assert.equal(t.client.status, "reconnecting");
        t.client.close();
      });
    }
  });

  it("asks shouldRetry with the code, reason and attempt", async () => {
    const asked: unknown[] = [];
    const t = setup({ shouldRetry: (c) => (asked.push(c), c.attempt < 3), reconnect: { initialDelayMs: 1 } });
    await t.connect();
    t.ws.drop(1000, "bye");
    await t.timers.advance(1);
    t.ws.drop(4403, "no");
    await t.timers.advance(2);
    t.ws.drop(1006, "");
    assert.deepEqual(asked, [{ code: 1000, reason: "bye", attempt: 1 }, { code: 4403, reason: "no", attempt: 2 }, { code: 1006, reason: "", attempt: 3 }]);
    assert.equal(t.client.status, "closed");
  });

  it("calls an async url and protocols function for every attempt", async () => {
    const calls: string[] = [];
    const t = setup({
      url: async (n) => {
        calls.push(`url ${n}`);
        await tick();
        return new URL(`ws://test/?token=t${n}`);
      },
      protocols: (n) => (calls.push(`protocols ${n}`), Promise.resolve([`token.${n}`])),
      reconnect: { initialDelayMs: 1 },
    });
    await tick();
    await tick();
    assert.equal(t.ws.url, "ws://test/?token=t0");
    assert.deepEqual(t.ws.protocols, ["duplex.v1", "token.0"]);
    t.ws.drop();
    await t.timers.advance(1);
    await tick();
    assert.equal(t.ws.url, "ws://test/?token=t1");
    assert.deepEqual(t.ws.protocols, ["duplex.v1", "token.1"]);
    assert.deepEqual(calls, ["url 0", "protocols 0", "url 1", "protocols 1"]);
    t.client.close();
  });

  it("counts a throwing url function as a failed attempt, and times out a hanging one", async () => {
    let n = 0;
    const t = setup({
      url: (attempt) => {
        n++;
        if (attempt === 0) throw new Error("no token");
        if (attempt === 1) return new Promise<string>(() => {});
        return "ws://test/";
      },
      connectTimeoutMs: 100,
      reconnect: { initialDelayMs: 1 },
    });
    await tick();
    assert.equal(t.sockets.length, 0);
    assert.equal(t.errors[0]?.code, "unavailable");
    assert.match(t.errors[0]!.message, /no token/);
    await t.timers.advance(1);
    assert.equal(n, 2);
    await t.timers.advance(100);
    assert.deepEqual(t.statuses.at(-1), { status: "connecting", code: 1006, reason: "Connect timeout", attempt: 2, delayMs: 2 });
    await t.timers.advance(2);
    assert.equal(t.sockets.length, 1);
    t.client.close();
  });

  it("refuses a server that did not choose duplex.v1", async () => {
    const t = setup();
    await tick();
    t.ws.open("");
    assert.equal(t.client.status, "closed");
    assert.equal(t.errors[0]?.code, "invalid");
    assert.equal(t.ws.closedWith?.code, 1000);
  });

  it("closes with 4400 on a bad message from the server, and does not retry", async () => {
    const t = setup();
    const ws = await t.connect();
    ws.receive({ type: "what" });
    assert.equal(ws.closedWith?.code, 4400);
    assert.equal(t.client.status, "closed");
    assert.equal(t.errors[0]?.code, "invalid");
  });
});

describe("heartbeat", () => {
  it("pings after intervalMs of silence; a dead link is replaced within intervalMs + timeoutMs", async () => {
    const t = setup({ heartbeat: { intervalMs: 1000, timeoutMs: 300 }, reconnect: { initialDelayMs: 5 } });
    const ws = await t.connect();
    await t.timers.advance(600);
    ws.receive({ type: "pong", id: 0 }); // any frame is a sign of life
    await t.timers.advance(999);
    assert.equal(ws.of("ping").length, 0, "no ping while frames arrive");
    await t.timers.advance(1);
    assert.equal(ws.of("ping").length, 1);
    ws.receive({ type: "pong", id: ws.of("ping")[0]!.id });
    await t.timers.advance(1000);
    assert.equal(ws.of("ping").length, 2);
    const lastLife = t.timers.time - 1000;
    await t.timers.advance(299);
    assert.equal(t.client.status, "open");
    await t.timers.advance(1);
    assert.equal(t.timers.time - lastLife, 1300, "noticed at intervalMs + timeoutMs");
    assert.equal(t.client.status, "reconnecting");
    assert.ok(ws.abandoned, "the dead socket is let go at once");
    assert.equal(t.errors.at(-1)?.code, "timeout");
    assert.equal(t.statuses.at(-1)!.reason, "Heartbeat timeout");
    await t.timers.advance(5);
    assert.equal(t.sockets.length, 2);
    ws.drop(); // the old socket's late close changes nothing
    assert.equal(t.sockets.length, 2);
    t.client.close();
  });

  it("heartbeat: false sends no ping", async () => {
    const t = setup({ heartbeat: false });
    const ws = await t.connect();
    await t.timers.advance(1_000_000);
    assert.equal(ws.of("ping").length, 0);
    assert.equal(t.client.status, "open");
    t.client.close();
  });
});

describe("publishing", () => {
  it("queues while offline, sends in order when open, resolves with the ack's position", async () => {
    const t = setup();
    const a = t.client.publish("t", "a");
    const b = t.client.publish("t", new Uint8Array([1, 2, 3]));
    const ws = await t.connect();
    const sent = ws.of("publish");
    assert.deepEqual(sent.map((m) => m.data ?? m.binary), ["a", "AQID"]);
    assert.notEqual(sent[0]!.key, sent[1]!.key);
    ws.receive({ type: "ack", id: sent[0]!.id, topic: "t", epoch: "e", offset: 7 });
    ws.receive({ type: "ack", id: sent[1]!.id, topic: "t", epoch: "e", offset: 8 });
    assert.deepEqual(await a, { epoch: "e", offset: 7 });
    assert.deepEqual(await b, { epoch: "e", offset: 8 });
    t.client.close();
  });

  it("re-sends the unacked in order with the same key after a reconnect", async () => {
    const t = setup({ reconnect: { initialDelayMs: 1 } });
    const ws = await t.connect();
    const ps = ["1", "2", "3"].map((d) => t.client.publish("t", d));
    const first = ws.of("publish");
    ws.receive({ type: "ack", id: first[0]!.id, topic: "t", epoch: "e", offset: 1 });
    ws.drop();
    const p4 = t.client.publish("t", "4");
    await t.timers.advance(1);
    const ws2 = t.ws;
    ws2.open();
    const again = ws2.of("publish");
    assert.deepEqual(again.map((m) => m.data), ["2", "3", "4"]);
    assert.deepEqual(again.slice(0, 2).map((m) => m.key), first.slice(1).map((m) => m.key));
    for (const [i, m] of again.entries()) ws2.receive({ type: "ack", id: m.id, topic: "t", epoch: "e", offset: i + 2 });
    assert.deepEqual(await Promise.all([...ps, p4]), [1, 2, 3, 4].map((offset) => ({ epoch: "e", offset })));
    t.client.close();
  });

  it("rejects with the server's error code", async () => {
    const t = setup();
    const ws = await t.connect();
    const codes = ["forbidden", "invalid", "too_large"]; // unavailable is sent again: client_publish_retry_test.ts
    const ps = codes.map((_, i) => outcome(t.client.publish("t", `${i}`)));
    for (const [i, m] of ws.of("publish").entries()) ws.receive({ type: "error", id: m.id, code: codes[i], message: "no" });
    assert.deepEqual(await Promise.all(ps), codes.map((code) => ({ code })));
    t.client.close();
  });

  it("rejects DuplexErrors with the topic", async () => {
    const t = setup();
    const ws = await t.connect();
    const p = t.client.publish("room", "x");
    ws.receive({ type: "error", id: ws.of("publish")[0]!.id, code: "forbidden", message: "read only" });
    await assert.rejects(p, (e: unknown) => e instanceof DuplexError && e.code === "forbidden" && e.topic === "room" && e.message === "read only");
    t.client.close();
  });

  it("keeps at most maxInFlight unanswered", async () => {
    const t = setup({ maxInFlight: 2 });
    const ws = await t.connect();
    const ps = [1, 2, 3, 4].map((i) => t.client.publish("t", `${i}`));
    assert.deepEqual(ws.of("publish").map((m) => m.data), ["1", "2"]);
    ws.receive({ type: "ack", id: ws.of("publish")[0]!.id, topic: "t", epoch: "e", offset: 1 });
    assert.deepEqual(ws.of("publish").map((m) => m.data), ["1", "2", "3"]);
    t.client.close();
    await Promise.allSettled(ps);
  });

  it("queue: maxMessages with whenFull reject", async () => {
    const t = setup({ queue: { maxMessages: 2 } });
    const ps = ["a", "b", "c"].map((d) => outcome(t.client.publish("t", d)));
    assert.deepEqual(await ps[2], { code: "queue_full" });
    const ws = await t.connect();
    assert.deepEqual(ws.of("publish").map((m) => m.data), ["a", "b"]);
    t.client.close();
    assert.deepEqual(await Promise.all(ps.slice(0, 2)), [{ code: "closed" }, { code: "closed" }]);
  });

  it("queue: maxMessages with whenFull drop-oldest", async () => {
    const t = setup({ queue: { maxMessages: 2, whenFull: "drop-oldest" } });
    const ps = ["a", "b", "c", "d"].map((d) => outcome(t.client.publish("t", d)));
    assert.deepEqual(await ps[0], { code: "queue_full" });
    assert.deepEqual(await ps[1], { code: "queue_full" });
    const ws = await t.connect();
    assert.deepEqual(ws.of("publish").map((m) => m.data), ["c", "d"]);
    // in flight now: never dropped; the new one is refused instead
    assert.deepEqual(await outcome(t.client.publish("t", "e")), { code: "queue_full" });
    t.client.close();
  });

  it("queue: maxBytes counts UTF-8 and bytes, under both policies", async () => {
    const t = setup({ queue: { maxBytes: 10 } });
    const a = outcome(t.client.publish("t", "ééé")); // 6 bytes
    assert.deepEqual(await outcome(t.client.publish("t", new Uint8Array(5))), { code: "queue_full" });
    assert.deepEqual(await outcome(t.client.publish("t", "x".repeat(11))), { code: "queue_full" }, "larger than the whole queue");
    const b = outcome(t.client.publish("t", "😀")); // 4 bytes: exactly full
    t.client.close();
    assert.deepEqual([await a, await b], [{ code: "closed" }, { code: "closed" }]);

    const d = setup({ queue: { maxBytes: 10, whenFull: "drop-oldest" } });
    const x = outcome(d.client.publish("t", "12345"));
    const y = outcome(d.client.publish("t", "123"));
    const z = outcome(d.client.publish("t", "12345678"));
    assert.deepEqual([await x, await y], [{ code: "queue_full" }, { code: "queue_full" }]);
    const ws = await d.connect();
    assert.deepEqual(ws.of("publish").map((m) => m.data), ["12345678"]);
    ws.receive({ type: "ack", id: ws.of("publish")[0]!.id, topic: "t", epoch: "e", offset: 1 });
    assert.deepEqual(await z, { ok: { epoch: "e", offset: 1 } });
    d.client.close();
  });

  it("queue: maxAgeMs rejects unsent publishes with expired", async () => {
    const t = setup({ queue: { maxAgeMs: 1000 } });
    const a = outcome(t.client.publish("t", "a"));
    await t.timers.advance(500);
    const b = outcome(t.client.publish("t", "b"));
    await t.timers.advance(500);
    assert.deepEqual(await a, { code: "expired" });
    const ws = await t.connect();
    assert.deepEqual(ws.of("publish").map((m) => m.data), ["b"]);
    await t.timers.advance(5000);
    ws.receive({ type: "ack", id: ws.of("publish")[0]!.id, topic: "t", epoch: "e", offset: 1 });
    assert.deepEqual(await b, { ok: { epoch: "e", offset: 1 } }, "a publish in flight waits for its answer");
    t.client.close();
  });

  it("rejects publishes after close with closed", async () => {
    const t = setup();
    t.client.close();
    assert.deepEqual(await outcome(t.client.publish("t", "x")), { code: "closed" });
  });
});

describe("subscriptions", () => {
  it("delivers in order, drops duplicates, and resubscribes from the last position after a reconnect", async () => {
    const t = setup({ reconnect: { initialDelayMs: 1 } });
    const got: number[] = [];
    const sub = t.client.subscribe("t", (m) => void got.push(m.offset), { from: "start" });
    const ws = await t.connect();
    const req = ws.of("subscribe")[0]!;
    assert.equal(req.from, "start");
    ws.receive(message("t", "e", 1)); // before the answer: a leftover, dropped
    ws.receive(subscribed(req, "e", 0, "fresh"));
    for (const o of [1, 2, 2, 1, 3]) ws.receive(message("t", "e", o));
    assert.deepEqual(got, [1, 2, 3]);
    assert.deepEqual(sub.position, { epoch: "e", offset: 3 });
    ws.drop();
    await t.timers.advance(1);
    const ws2 = t.ws;
    ws2.open();
    const again = ws2.of("subscribe")[0]!;
    assert.deepEqual(again.from, { epoch: "e", offset: 3 });
    ws2.receive(subscribed(again, "e", 3, "recovered"));
    for (const o of [3, 4, 5]) ws2.receive(message("t", "e", o));
    assert.deepEqual(got, [1, 2, 3, 4, 5]);
    assert.deepEqual(t.results.map((r) => r.result), ["fresh", "recovered"]);
    t.client.close();
  });

  it("a subscription from now resumes from the position its first answer gave", async () => {
    const t = setup({ reconnect: { initialDelayMs: 1 } });
    const results: string[] = [];
    t.client.subscribe("t", () => {}, { onResult: (r) => void results.push(r.result) });
    const ws = await t.connect();
    assert.equal(ws.of("subscribe")[0]!.from, "now");
    ws.receive(subscribed(ws.of("subscribe")[0]!, "e", 41, "fresh"));
    ws.drop();
    await t.timers.advance(1);
    t.ws.open();
    assert.deepEqual(t.ws.of("subscribe")[0]!.from, { epoch: "e", offset: 41 });
    assert.deepEqual(results, ["fresh"]);
    t.client.close();
  });

  it("a subscription from start resubscribes from start until a message is delivered", async () => {
    const t = setup({ reconnect: { initialDelayMs: 1 } });
    const got: string[] = [];
    t.client.subscribe("t", (m) => void got.push(`${m.epoch}${m.offset}`), { from: "start" });
    const ws = await t.connect();
    ws.receive(subscribed(ws.of("subscribe")[0]!, "a", 0, "fresh"));
    ws.drop(1012); // a restart: epoch "b" next
    await t.timers.advance(1);
    t.ws.open();
    assert.equal(t.ws.of("subscribe")[0]!.from, "start");
    t.ws.receive(subscribed(t.ws.of("subscribe")[0]!, "b", 0, "fresh"));
    t.ws.receive(message("t", "b", 1));
    t.ws.drop(1012);
    await t.timers.advance(2);
    t.ws.open();
    assert.deepEqual(t.ws.of("subscribe")[0]!.from, { epoch: "b", offset: 1 });
    assert.deepEqual(got, ["b1"]);
    t.client.close();
  });

  it("a hole re-subscribes from the last position; messages wait for the new answer", async () => {
    const t = setup();
    const got: number[] = [];
    t.client.subscribe("t", (m) => void got.push(m.offset));
    const ws = await t.connect();
    ws.receive(subscribed(ws.of("subscribe")[0]!, "e", 0));
    ws.receive(message("t", "e", 1));
    ws.receive(message("t", "e", 3)); // 2 is missing
    const resub = ws.of("subscribe")[1]!;
    assert.deepEqual(resub.from, { epoch: "e", offset: 1 });
    ws.receive(message("t", "e", 4)); // still the old stream: waits
    ws.receive(subscribed(resub, "e", 1, "recovered"));
    for (const o of [2, 3, 4]) ws.receive(message("t", "e", o));
    assert.deepEqual(got, [1, 2, 3, 4]);
    t.client.close();
  });

  it("a new epoch mid-stream re-subscribes too; the gap is reported", async () => {
    const t = setup();
    const got: string[] = [];
    t.client.subscribe("t", (m) => void got.push(`${m.epoch}${m.offset}`), { from: { epoch: "a", offset: 5 } });
    const ws = await t.connect();
    assert.deepEqual(ws.of("subscribe")[0]!.from, { epoch: "a", offset: 5 });
    ws.receive(subscribed(ws.of("subscribe")[0]!, "a", 5, "recovered"));
    ws.receive(message("t", "b", 1));
    const resub = ws.of("subscribe")[1]!;
    assert.deepEqual(resub.from, { epoch: "a", offset: 5 });
    const gap = { reason: "epoch", epoch: "a", from: 6 };
    ws.receive(subscribed(resub, "b", 0, "gap", gap));
    ws.receive(message("t", "b", 1));
    assert.deepEqual(got, ["b1"]);
    assert.deepEqual(t.results.at(-1), { topic: "t", result: "gap", position: { epoch: "b", offset: 0 }, gap });
    t.client.close();
  });

  it("reports a gap on reconnect and continues from what the server holds", async () => {
    const t = setup({ reconnect: { initialDelayMs: 1 } });
    const got: number[] = [];
    const onResult: unknown[] = [];
    t.client.subscribe("t", (m) => void got.push(m.offset), { onResult: (r) => void onResult.push(r) });
    const ws = await t.connect();
    ws.receive(subscribed(ws.of("subscribe")[0]!, "e", 0));
    ws.receive(message("t", "e", 1));
    ws.drop();
    await t.timers.advance(1);
    t.ws.open();
    const gap = { reason: "trimmed", epoch: "e", from: 2, to: 10 };
    t.ws.receive(subscribed(t.ws.of("subscribe")[0]!, "e", 10, "gap", gap));
    t.ws.receive(message("t", "e", 11));
    assert.deepEqual(got, [1, 11]);
    assert.deepEqual(onResult.at(-1), { topic: "t", result: "gap", position: { epoch: "e", offset: 10 }, gap });
    assert.deepEqual(t.results.at(-1), onResult.at(-1));
    t.client.close();
  });

  it("unsubscribe stops delivery and tells the server; a refused subscription is reported and ended", async () => {
    const t = setup();
    const got: number[] = [];
    const sub = t.client.subscribe("t", (m) => void got.push(m.offset));
    const ws = await t.connect();
    ws.receive(subscribed(ws.of("subscribe")[0]!, "e", 0));
    sub.unsubscribe();
    sub.unsubscribe();
    assert.equal(ws.of("unsubscribe").length, 1);
    ws.receive(message("t", "e", 1));
    assert.deepEqual(got, []);
    t.client.subscribe("secret", () => {});
    const req = ws.of("subscribe").at(-1)!;
    ws.receive({ type: "error", id: req.id, code: "forbidden", message: "no" });
    assert.equal(t.errors.at(-1)?.code, "forbidden");
    assert.equal(t.errors.at(-1)?.topic, "secret");
    t.client.subscribe("secret", () => {}); // may be tried again
    t.client.close();
  });

  it("a subscribe answered unavailable is tried again after a backoff, from the same position", async () => {
    const t = setup({ reconnect: { initialDelayMs: 100 } });
    const got: number[] = [];
    t.client.subscribe("t", (m) => void got.push(m.offset), { from: { epoch: "e", offset: 4 } });
    const ws = await t.connect();
    for (const [n, wait] of [[1, 100], [2, 200]] as const) {
      const req = ws.of("subscribe").at(-1)!;
      ws.receive({ type: "error", id: req.id, code: "unavailable", message: "history down" });
      assert.equal(t.errors.at(-1)?.code, "unavailable");
      await t.timers.advance(wait - 1);
      assert.equal(ws.of("subscribe").length, n);
      await t.timers.advance(1);
      assert.equal(ws.of("subscribe").length, n + 1);
      assert.deepEqual(ws.of("subscribe")[n]!.from, { epoch: "e", offset: 4 });
    }
    ws.receive(subscribed(ws.of("subscribe")[2]!, "e", 4, "recovered"));
    ws.receive(message("t", "e", 5));
    assert.deepEqual(got, [5]);
    // an unsubscribe cancels a pending retry
    const other = t.client.subscribe("u", () => {});
    ws.receive({ type: "error", id: ws.of("subscribe").at(-1)!.id, code: "unavailable", message: "down" });
    other.unsubscribe();
    const count = ws.of("subscribe").length;
    await t.timers.advance(10_000);
    assert.equal(ws.of("subscribe").length, count);
    t.client.close();
    assert.equal(t.timers.pending.size, 0);
  });

  it("delivers binary data as bytes", async () => {
    const t = setup();
    const got: unknown[] = [];
    t.client.subscribe("t", (m) => void got.push(m.data));
    const ws = await t.connect();
    ws.receive(subscribed(ws.of("subscribe")[0]!, "e", 0));
    ws.receive({ type: "message", topic: "t", epoch: "e", offset: 1, binary: "AQID" });
    assert.deepEqual(got, [new Uint8Array([1, 2, 3])]);
    t.client.close();
  });
});

describe("close()", () => {
  it("is final: no reconnect, pending publishes reject, no listeners or timers left", async () => {
    const browser = new FakeBrowser();
    const t = setup({ browser, heartbeat: {}, queue: { maxAgeMs: 1000 } });
    const ws = await t.connect();
    t.client.subscribe("t", () => {});
    const p = outcome(t.client.publish("t", "x"));
    t.client.close(4000, "done");
    assert.deepEqual(ws.closedWith, { code: 4000, reason: "done" });
    assert.deepEqual(await p, { code: "closed" });
    assert.equal(t.client.status, "closed");
    assert.deepEqual(t.statuses.at(-1), { status: "closed", code: 4000, reason: "done" });
    assert.equal(t.timers.pending.size, 0);
    assert.equal(browser.count(), 0);
    t.client.close();
    assert.equal(t.statuses.filter((s) => s.status === "closed").length, 1);
    ws.drop();
    browser.fire("online");
    await t.timers.advance(100_000);
    assert.equal(t.sockets.length, 1);
    assert.throws(() => t.client.subscribe("u", () => {}), (e: unknown) => e instanceof DuplexError && e.code === "closed");
  });

  it("before the first attempt: nothing is ever opened", async () => {
    const t = setup();
    t.client.close();
    await t.timers.advance(1000);
    assert.equal(t.sockets.length, 0);
  });

  it("while waiting to reconnect, and from inside a status listener", async () => {
    const t = setup({ reconnect: { initialDelayMs: 1 } });
    await t.connect();
    t.client.on("status", (e) => e.status === "reconnecting" && t.client.close());
    t.ws.drop();
    assert.equal(t.client.status, "closed");
    await t.timers.advance(10);
    assert.equal(t.sockets.length, 1);
    assert.equal(t.timers.pending.size, 0);
  });
});

describe("browser events", () => {
  it("offline pauses the wait until online; online cuts it short", async () => {
    const browser = new FakeBrowser();
    const t = setup({ browser, reconnect: { initialDelayMs: 5000 } });
    await t.connect();
    browser.fire("offline");
    t.ws.drop();
    assert.equal(t.client.status, "reconnecting");
    await t.timers.advance(60_000);
    assert.equal(t.sockets.length, 1, "no attempt while offline");
    browser.fire("online");
    await tick();
    assert.equal(t.sockets.length, 2, "online starts an attempt at once");
    t.ws.drop();
    assert.equal(t.statuses.at(-1)!.delayMs, 10_000);
    await t.timers.advance(10);
    browser.fire("online");
    await tick();
    assert.equal(t.sockets.length, 3, "online cuts a wait short");
    t.client.close();
  });

  it("a page becoming visible cuts the wait short; hidden does not", async () => {
    const browser = new FakeBrowser();
    const t = setup({ browser, reconnect: { initialDelayMs: 5000 } });
    await t.connect();
    t.ws.drop();
    browser.document.visibilityState = "hidden";
    browser.fire("visibilitychange");
    await tick();
    assert.equal(t.sockets.length, 1);
    browser.document.visibilityState = "visible";
    browser.fire("visibilitychange");
    await tick();
    assert.equal(t.sockets.length, 2);
    // while open, the events change nothing
    t.ws.open();
    browser.fire("online");
    browser.fire("visibilitychange");
    await tick();
    assert.equal(t.sockets.length, 2);
    t.client.close();
  });

  it("starting offline: the first failure waits for online", async () => {
    const browser = new FakeBrowser();
    browser.navigator.onLine = false;
    const t = setup({ browser, reconnect: { initialDelayMs: 1 } });
    await tick();
    t.ws.drop();
    await t.timers.advance(1000);
    assert.equal(t.sockets.length, 1);
    browser.fire("online");
    await tick();
    assert.equal(t.sockets.length, 2);
    t.client.close();
  });
});
