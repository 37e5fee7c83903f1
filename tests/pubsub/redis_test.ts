// The Redis backplane for real: a redis-server of its own, and three Duplex
// processes on it, one per runtime (Node through tsx, Deno, Bun), each
// serving tests/pubsub/_server.ts; then two examples/chat.ts processes
// sharing a room. Checked with `ws` clients and Redis's own PUBSUB view.
//
// It spawns every runtime itself, so it runs from Node only (npm run
// test:node); under `deno test` and `bun test`, which also find it, it skips
// itself. Without redis-server it skips too, unless CI is set: then it fails.
// The Node process reaches Redis through a TCP proxy, so that the restart
// test can bring it back after the others (see "a Redis restart").
import assert from "node:assert/strict";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { type PubSubStats, runtime } from "../../mod.ts";
import type { RedisBackplaneStats } from "../../plugins/redis.ts";
import { Client, delay, type Received, within } from "../runtimes/_helpers.ts";
import { freePort, hasRedisServer, ping, RedisProcess, type Running, type RuntimeName, startProcess, TcpProxy } from "./_processes.ts";

const on = runtime();
const inCi = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false";
const redisMissing = on === "node" && !hasRedisServer();

function skipReason(): string | false {
  if (on !== "node") return `runs from Node only (npm run test:node): it starts Node, Deno and Bun processes itself; not on ${on}`;
  if (redisMissing && !inCi) return "redis-server is not installed (apt-get install redis-server); CI installs it, and there this test fails without it";
  return false;
}

const RUNTIMES: RuntimeName[] = ["node", "deno", "bun"];
const QUEUE_MAX = 50;
const PREFIX = "duplex:";
const TEST_MS = 60_000;

const skip = skipReason();

describe(`Redis backplane across Node, Deno and Bun${skip ? ` (skipped: ${skip})` : ""}`, { skip, timeout: 180_000 }, () => {
  let redis: RedisProcess;
  let proxy: TcpProxy;
  let admin: Redis;
  const servers = {} as Record<RuntimeName, Running>;
  const control = {} as Record<RuntimeName, Client>;
  const clients: Client[] = [];

  const open = async (target: Running | string, query = "") => {
    const url = typeof target === "string" ? target : target.url;
    const client = await Client.open(`${url}/${query}`);
    clients.push(client);
    return client;
  };

  /** Sends a command to a process and returns its answer. */
  const ask = async (on: RuntimeName, command: unknown) => {
    const reply = await control[on].roundTrip(JSON.stringify(command), 10_000);
    return JSON.parse(reply.data.toString()) as { ok: unknown; stats: RedisBackplaneStats; hub: PubSubStats; errors: string[] };
  };

  /** Redis's count of subscribed connections per channel. */
  const numsub = async (...topics: string[]) => {
    const reply = (await within(admin.call("PUBSUB", "NUMSUB", ...topics.map((t) => PREFIX + t)), 5000, "PUBSUB NUMSUB")) as (string | number)[];
    const counts: Record<string, number> = {};
    for (let i = 0; i < reply.length; i += 2) counts[String(reply[i]).slice(PREFIX.length)] = Number(reply[i + 1]);
    return counts;
  };
  const channels = async () => ((await within(admin.call("PUBSUB", "CHANNELS"), 5000, "PUBSUB CHANNELS")) as string[]).map(String).sort();

  /** Waits until Redis has `expected` subscribed connections on each topic. */
  const untilSubscribed = async (expected: Record<string, number>, ms = 10_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const counts = await numsub(...Object.keys(expected));
      if (Object.entries(expected).every(([topic, n]) => counts[topic] === n)) return;
      if (Date.now() > deadline) assert.fail(`PUBSUB NUMSUB: expected ${JSON.stringify(expected)}, got ${JSON.stringify(counts)}`);
      await delay(20);
    }
  };

  const texts = (messages: Received[]) => messages.filter((m) => !m.isBinary).map((m) => m.data.toString());

  before(async () => {
    if (redisMissing) assert.fail("redis-server is not installed and CI is set: .ci/run installs it with apt-get");
    redis = new RedisProcess(await freePort());
    await redis.start();
    proxy = new TcpProxy(redis.port);
    await proxy.listen();
    admin = new Redis(redis.url, { retryStrategy: () => 50 });
    admin.on("error", () => {});
    const started = await Promise.allSettled(
      RUNTIMES.map((name) =>
        startProcess(name, "tests/pubsub/_server.ts", {
          // The Node process goes through the proxy; see "a Redis restart".
          REDIS_URL: name === "node" ? proxy.url : redis.url,
          PORT: "0",
          QUEUE_MAX: String(QUEUE_MAX),
          RETRY_MS: "50",
          // Bun's clients leave resubscribing to the backplane alone.
          AUTO_RESUBSCRIBE: name === "bun" ? "0" : "1",
        })
      ),
    );
    for (const result of started) if (result.status === "fulfilled") servers[result.value.name as RuntimeName] = result.value;
    for (const result of started) if (result.status === "rejected") throw result.reason; // `after` stops the others
    for (const name of RUNTIMES) control[name] = await open(servers[name]);
  });

  after(async () => {
    for (const client of clients) client.ws.terminate();
    const codes = await Promise.all(Object.values(servers).map(async (server) => [server.name, await server.stop(), server] as const));
    await admin?.quit().catch(() => admin.disconnect());
    await proxy?.close();
    await redis?.kill();
    for (const [name, code, server] of codes) {
      // Deno's node:child_process reports the signal it sent even when the child exited with 0.
      if (!(name === "deno" && code === "SIGTERM")) assert.equal(code, 0, `${name} exit code; stderr: ${server.stderr()}`);
    }
  });

  it("delivers every message of a topic to every subscriber on every process, in order, text and binary", { timeout: TEST_MS }, async () => {
    const subscribers: Record<RuntimeName, Client[]> = { node: [], deno: [], bun: [] };
    for (const name of RUNTIMES) for (let i = 0; i < 2; i++) subscribers[name].push(await open(servers[name], "?topics=all"));
    await untilSubscribed({ all: 3 });
    const COUNT = 200;
    // Every process publishes at once: 200 texts then 200 binaries each.
    const answers = await Promise.all(RUNTIMES.map((name) => ask(name, { burst: "all", count: COUNT, tag: name })));
    assert.deepEqual(answers.map((a) => a.ok), [400, 400, 400]);
    const total = RUNTIMES.length * 2 * COUNT;
    for (const name of RUNTIMES) {
      for (const client of subscribers[name]) {
        const got = await client.messagesUntil(total, 20_000);
        for (const from of RUNTIMES) {
          const tag = new TextEncoder().encode(from);
          const fromTexts = texts(got).filter((t) => t.startsWith(`${from}:`));
          assert.deepEqual(fromTexts, Array.from({ length: COUNT }, (_, i) => `${from}:${i}`), `texts from ${from} on ${name}`);
          const fromBinaries = got.filter((m) => m.isBinary && m.data.subarray(0, tag.length).equals(tag) && m.data[tag.length] === 0);
          assert.deepEqual(
            fromBinaries.map((m) => [...m.data.subarray(tag.length)]),
            Array.from({ length: COUNT }, (_, i) => [0, i >> 8, i & 255]),
            `binaries from ${from} on ${name}`,
          );
          // One publisher's binaries come after its texts.
          const lastText = got.findIndex((m) => !m.isBinary && m.data.toString() === `${from}:${COUNT - 1}`);
          const firstBinary = got.indexOf(fromBinaries[0]!);
          assert.ok(lastText < firstBinary, `${from}'s order kept on ${name}`);
        }
        await delay(0);
        assert.equal(got.length, total, `exactly ${total} on ${name}: no echo, no duplicate`);
      }
    }
    for (const name of RUNTIMES) {
      const { stats, hub } = await ask(name, { stats: true });
      assert.equal(stats.received, 4 * COUNT, `${name} received the other two processes' messages`);
      assert.equal(stats.echoes, 2 * COUNT, `${name} skipped its own messages that came back`);
      assert.equal(hub.published, 2 * COUNT);
      assert.equal(stats.dropped + stats.failed + stats.invalid, 0);
    }
    for (const client of Object.values(subscribers).flat()) client.ws.close();
    await untilSubscribed({ all: 0 });
  });

  it("subscribes on Redis only where a topic has local subscribers, and never echoes to a publisher's own subscribers", { timeout: TEST_MS }, async () => {
    const nodeSub = await open(servers.node, "?topics=only");
    const denoSub = await open(servers.deno, "?topics=only,other");
    const bunOther = await open(servers.bun, "?topics=other");
    await untilSubscribed({ only: 2, other: 2 });
    assert.deepEqual(await channels(), [`${PREFIX}only`, `${PREFIX}other`], "Redis knows only the topics in use");
    const bunBefore = (await ask("bun", { stats: true })).stats;
    for (let i = 0; i < 20; i++) assert.equal((await ask("node", { publish: "only", text: `o${i}` })).ok, 1, "one local subscriber");
    await ask("node", { publish: "only", base64: btoa("\x00\xff") });
    const expected = Array.from({ length: 20 }, (_, i) => `o${i}`);
    await nodeSub.messagesUntil(21);
    await denoSub.messagesUntil(21);
    await delay(200);
    assert.deepEqual(texts(nodeSub.messages), expected, "the publisher's own subscriber: exactly once each");
    assert.deepEqual(texts(denoSub.messages), expected);
    for (const client of [nodeSub, denoSub]) {
      assert.equal(client.messages.length, 21);
      assert.deepEqual([...client.messages[20]!.data], [0, 255]);
    }
    assert.equal(bunOther.messages.length, 0);
    const bunAfter = (await ask("bun", { stats: true })).stats;
    assert.equal(bunAfter.received, bunBefore.received, "bun is not subscribed to `only`: Redis sends it nothing");
    assert.equal(bunAfter.echoes, bunBefore.echoes);
    // The last local subscriber leaving unsubscribes the process.
    nodeSub.ws.close();
    await untilSubscribed({ only: 1, other: 2 });
    denoSub.ws.close();
    bunOther.ws.close();
    await untilSubscribed({ only: 0, other: 0 });
    assert.deepEqual(await channels(), []);
  });

  it(`a Redis restart loses no subscription; publishes during the outage are queued up to ${QUEUE_MAX}, the rest dropped and reported once`, { timeout: TEST_MS }, async () => {
    const subs = {} as Record<RuntimeName, Client>;
    for (const name of RUNTIMES) subs[name] = await open(servers[name], "?topics=r,s");
    await untilSubscribed({ r: 3, s: 3 });
    const before = await channels();

    proxy.hold(); // the Node process stays off Redis until the others are back
    await redis.kill();
    try {
      for (const name of RUNTIMES) {
        const deadline = Date.now() + 10_000;
        while (!(await ask(name, { stats: true })).errors.includes("ERR_BACKPLANE_DISCONNECTED")) {
          if (Date.now() > deadline) assert.fail(`${name} never reported the outage; stderr: ${servers[name].stderr()}`);
          await delay(20);
        }
      }
      // 80 messages from Node while Redis is down: all delivered locally at once, 50 queued, 30 dropped.
      const OUTAGE = 80;
      for (let i = 0; i < OUTAGE; i++) assert.equal((await ask("node", { publish: "r", text: `q${i}` })).ok, 1);
      await subs.node.messagesUntil(OUTAGE);
      assert.deepEqual(texts(subs.node.messages), Array.from({ length: OUTAGE }, (_, i) => `q${i}`), "local delivery goes on");
      const down = await ask("node", { stats: true });
      assert.equal(down.stats.queued, QUEUE_MAX);
      assert.equal(down.stats.dropped, OUTAGE - QUEUE_MAX);
      assert.equal(down.errors.filter((c) => c === "ERR_BACKPLANE_QUEUE_FULL").length, 1, "reported once");

      await redis.start();
      // Deno and Bun resubscribe by themselves...
      await untilSubscribed({ r: 2, s: 2 }, 15_000);
      assert.deepEqual((await ask("node", { stats: true })).stats.queued, QUEUE_MAX, "Node still held off");
      // ...then Node comes back: it resubscribes and flushes its queue.
      proxy.release();
      await untilSubscribed({ r: 3, s: 3 }, 15_000);
      assert.deepEqual(await channels(), before, "every subscription is back");
      const queued = Array.from({ length: QUEUE_MAX }, (_, i) => `q${i}`);
      for (const name of ["deno", "bun"] as const) {
        await subs[name].messagesUntil(QUEUE_MAX, 10_000);
        assert.deepEqual(texts(subs[name].messages), queued, `${name} got the queued messages, in order`);
      }
      const up = await ask("node", { stats: true });
      assert.deepEqual([up.stats.queued, up.stats.queuedBytes, up.stats.dropped], [0, 0, OUTAGE - QUEUE_MAX]);

      // Messages flow again, from and to every process.
      for (const name of RUNTIMES) await ask(name, { publish: "s", text: `after-${name}` });
      for (const name of RUNTIMES) {
        const got = await subs[name].messagesUntil((name === "node" ? OUTAGE : QUEUE_MAX) + 3, 10_000);
        assert.deepEqual(texts(got).filter((t) => t.startsWith("after-")).sort(), ["after-bun", "after-deno", "after-node"], name);
      }
      for (const name of RUNTIMES) {
        const { errors } = await ask(name, { stats: true });
        assert.ok(errors.every((code) => code === "ERR_BACKPLANE_DISCONNECTED" || code === "ERR_BACKPLANE_QUEUE_FULL"), `${name}: ${errors}`);
        assert.ok(errors.filter((code) => code === "ERR_BACKPLANE_DISCONNECTED").length <= 2, `${name}: once per client per outage: ${errors}`);
      }
      for (const client of Object.values(subs)) client.ws.close();
      await untilSubscribed({ r: 0, s: 0 });
    } finally {
      // Whatever failed above, Redis is up and reachable for the tests after.
      if (!(await ping(redis.port))) await redis.start();
      proxy.release();
    }
  });

  it("examples/chat.ts with REDIS_URL: a Node and a Bun chat share a room", { timeout: TEST_MS }, async () => {
    const token = `redis-chat-${Math.random().toString(36).slice(2)}`;
    const env = { REDIS_URL: redis.url, PORT: "0", CHAT_TOKEN: token, HEARTBEAT_INTERVAL_MS: "30000", HEARTBEAT_TIMEOUT_MS: "10000" };
    const chats = await Promise.all([
      startProcess("node", "examples/chat.ts", env, "chat on node"),
      startProcess("bun", "examples/chat.ts", env, "chat on bun"),
    ]);
    try {
      const [onNode, onBun] = chats as [Running, Running];
      const join = async (chat: Running, path: string) => {
        const client = await Client.open(`${chat.url}${path}&token=${token}`, ["chat.v1"]);
        clients.push(client);
        return client;
      };
      const ada = await join(onNode, "/chat/lobby?name=ada");
      const bob = await join(onBun, "/chat/lobby?name=bob");
      const cy = await join(onBun, "/chat/elsewhere?name=cy");
      await untilSubscribed({ "room:lobby": 2, "room:elsewhere": 1 });
      const said = (from: string, text: string) => ({ type: "said", from, text });
      const parsed = (client: Client) => client.messages.map((m) => JSON.parse(m.data.toString()) as unknown);
      ada.ws.send(JSON.stringify({ type: "say", text: "hello from node" }));
      await within(Promise.all([ada.messagesUntil(1), bob.messagesUntil(1)]), 5000, "ada's message");
      bob.ws.send(JSON.stringify({ type: "say", text: "hello from bun" }));
      await within(Promise.all([ada.messagesUntil(2), bob.messagesUntil(2)]), 5000, "bob's message");
      await delay(200);
      const both = [said("ada", "hello from node"), said("bob", "hello from bun")];
      assert.deepEqual(parsed(ada), both, "ada: each once, sender included");
      assert.deepEqual(parsed(bob), both, "bob: each once, sender included");
      assert.deepEqual(parsed(cy), [], "another room hears nothing");
      for (const chat of chats) assert.doesNotMatch(chat.stderr(), /redis backplane/, chat.name);
    } finally {
      for (const chat of chats) {
        const code = await chat.stop();
        assert.equal(code, 0, `${chat.name} exit code; stderr: ${chat.stderr()}`);
      }
    }
    await untilSubscribed({ "room:lobby": 0, "room:elsewhere": 0 });
  });
});
