// RedisTopicLog against a real redis-server started here (on a free port, in
// a temporary directory): append, read and dedupe from two logs (two
// "processes"), binary data, trimming by count and by age with the right gap
// reason, keys forgotten with their entries, the epoch (created once, new
// after FLUSHALL), live delivery and its catch-up after the subscriber
// connection is killed and after a Redis restart (append-only file on),
// commands failing fast while Redis is paused or down, the hash-tag keys on a
// one-node Redis Cluster, option checks; and reliable() on it over real
// sockets, two servers sharing one Redis.
//
// Runs on Node, Deno and Bun. Without redis-server it skips, unless CI is
// set: then it fails.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import { Cluster, Redis } from "ioredis";
import { DuplexClient, type WebSocketConstructor } from "../../client/mod.ts";
import { UsageError } from "../../core/errors.ts";
import { App, type LogEntry, reliable, serve } from "../../mod.ts";
import { BackplaneError, type RedisLogClient, RedisTopicLog, type RedisTopicLogOptions } from "../../plugins/redis.ts";

const inCi = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false";
const hasRedis = (() => {
  const result = spawnSync("redis-server", ["--version"], { stdio: "ignore" });
  return result.error === undefined && result.status === 0;
})();
const skip = !hasRedis && !inCi && "redis-server is not installed (apt-get install redis-server); CI installs it, and there this test fails without it";

const g = globalThis as Record<string, unknown>;
const WebSocket: WebSocketConstructor = typeof g.WebSocket === "function" ? g.WebSocket as WebSocketConstructor : (await import("ws")).WebSocket;

/** Per test: Bun's default is 5 s, and it does not take the suite's. */
const SLOW = { timeout: 30_000 };

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean | Promise<boolean>, ms = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms`);
    await delay(10);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A redis-server of its own: a port and a directory, killed and started again on the same ones. */
class RedisServer {
  readonly dir = mkdtempSync(join(tmpdir(), "duplex-redis-log-"));
  readonly extra: string[];
  port = 0;
  #child: ChildProcess | undefined;
  #log = "";

  constructor(extra: string[] = []) {
    this.extra = extra;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, "--save", "", ...this.extra];
    const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    child.stdout!.on("data", (chunk: Uint8Array) => void (this.#log += String(chunk)));
    child.stderr!.on("data", (chunk: Uint8Array) => void (this.#log += String(chunk)));
    const probe = new Redis(this.url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on("error", () => {});
    try {
      await until(async () => {
        if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${this.#log}`);
        try {
          if (probe.status !== "ready") await probe.connect();
          const info = String(await probe.info("persistence"));
          return /loading:0/.test(info);
        } catch {
          probe.disconnect();
          return false;
        }
      }, 10_000, `redis-server on ${this.port}`);
    } finally {
      probe.disconnect();
    }
  }

  /** SIGKILL: a crash, no goodbye to the clients. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A TCP proxy whose open connections can be frozen: still open, nothing goes through (a partition without a word). */
class FreezingProxy {
  readonly #server: Server;
  readonly #pairs = new Set<[Socket, Socket]>();
  port = 0;

  constructor(target: () => number) {
    this.#server = createServer((client) => {
      const upstream = connect(target(), "127.0.0.1");
      const pair: [Socket, Socket] = [client, upstream];
      this.#pairs.add(pair);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.#pairs.delete(pair);
      };
      client.on("error", end).on("close", end);
      upstream.on("error", end).on("close", end);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.#server.listen(0, "127.0.0.1", () => {
      this.port = (this.#server.address() as { port: number }).port;
      resolve();
    }));
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Stops forwarding on every open connection, which stays open. */
  freeze(): void {
    for (const [client, upstream] of this.#pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  close(): Promise<void> {
    for (const [client, upstream] of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

describe(`RedisTopicLog on a real Redis${skip ? ` (skipped: ${skip})` : ""}`, { skip, timeout: 120_000 }, () => {
  const redis = new RedisServer(["--appendonly", "yes"]);
  let admin: Redis;
  const logs: RedisTopicLog[] = [];
  let topicSeq = 0;
  /** A topic no other test uses. */
  const fresh = (name = "t") => `${name}-${++topicSeq}`;

  /** A log on the test's Redis; its clients reconnect every 50 ms. */
  const open = (options: Partial<RedisTopicLogOptions> = {}, url = () => redis.url) => {
    const errors: unknown[] = [];
    const log = new RedisTopicLog({
      createClient: (role) => new Redis(url(), { connectionName: `log-${role}`, retryStrategy: () => 50 }),
      onError: (error) => void errors.push(error),
      ...options,
    });
    logs.push(log);
    return Object.assign(log, { errors });
  };

  /** Watches a topic and waits until the watch hands on what is appended (a primer entry). */
  const watching = async (log: RedisTopicLog, topic: string, writer: RedisTopicLog = log) => {
    const got: LogEntry[] = [];
    const stop = log.watch(topic, (entry) => void got.push(entry));
    let primer = 0;
    await until(async () => {
      primer = (await writer.append(topic, "primer")).offset;
      await delay(30);
      return got.some((e) => e.offset === primer);
    }, 5000, "the watch to start");
    got.length = 0;
    return { got, stop, after: primer };
  };

  before(async () => {
    if (!hasRedis) assert.fail("redis-server is not installed and CI is set: install it with apt-get");
    await redis.start();
    admin = new Redis(redis.url, { retryStrategy: () => 50 });
    admin.on("error", () => {});
  });

  after(async () => {
    await Promise.all(logs.map((log) => log.close()));
    admin?.disconnect();
    await redis.stop();
  });

  it("appends from two logs with contiguous offsets, reads them from either, dedupes a key across them", SLOW, async () => {
    const a = open();
    const b = open();
    const topic = fresh();
    const appended = await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).append(topic, `m${i}`, `key${i}`)));
    const offsets = appended.map((x) => x.offset).sort((x, y) => x - y);
    assert.deepEqual(offsets, Array.from({ length: 60 }, (_, i) => i + 1), "1..60, each once");
    const epoch = appended[0]!.epoch;
    assert.ok(appended.every((x) => x.epoch === epoch && !x.duplicate));
    // The same key through the other log: stored once, answered with the first position.
    const again = await a.append(topic, "m0 again", "key0");
    assert.deepEqual(again, { epoch, offset: appended[0]!.offset, duplicate: true });
    assert.equal(a.stats.appended + b.stats.appended, 60);
    assert.deepEqual([a.stats.duplicates, b.stats.duplicates, a.stats.failed], [1, 0, 0]);
    const read = await b.read(topic, { epoch, offset: 0 }, 100);
    assert.equal(read.last, 60);
    assert.equal(read.gap, undefined);
    assert.deepEqual(read.entries.map((e) => e.offset), offsets);
    for (const [i, x] of appended.entries()) assert.equal(read.entries[x.offset - 1]!.data, `m${i}`);
    assert.deepEqual((await a.read(topic, { epoch, offset: 58 }, 100)).entries.map((e) => e.offset), [59, 60]);
    assert.deepEqual((await a.read(topic, "start", 2)).entries.map((e) => e.offset), [1, 2], "at most limit");
    assert.deepEqual(await a.read(topic, "now", 10), { epoch, entries: [], last: 60 });
    assert.deepEqual((await a.read(topic, { epoch, offset: 60 }, 10)).entries, [], "up to date");
    const none = await a.read(fresh(), "start", 10);
    assert.deepEqual([none.entries, none.last], [[], 0]);
  });

  it("round-trips binary data and text exactly (bytes that are not UTF-8, empty, newlines, non-ASCII)", SLOW, async () => {
    const a = open();
    const b = open();
    const topic = fresh();
    const { got } = await watching(b, topic, a);
    const datas: (string | Uint8Array)[] = [
      new Uint8Array([0, 255, 10, 13, 0xc3, 0x28, 10]),
      "",
      new Uint8Array(0),
      "line\nbreaks\n\nand é ✓ 🎉",
      new Uint8Array(70_000).map((_, i) => i % 251),
      "x".repeat(100_000),
    ];
    const positions = [];
    for (const data of datas) positions.push(await a.append(topic, data));
    const read = await b.read(topic, { epoch: positions[0]!.epoch, offset: positions[0]!.offset - 1 }, 10);
    assert.deepEqual(read.entries.map((e) => e.data), datas);
    for (const e of read.entries) if (typeof e.data !== "string") assert.equal(Object.getPrototypeOf(e.data), Uint8Array.prototype, "a plain Uint8Array");
    await until(() => got.length === datas.length);
    assert.deepEqual(got.map((e) => e.data), datas, "live too");
  });

  it("trims by count in the append, answers a trimmed gap, and forgets the keys of trimmed entries", SLOW, async () => {
    const log = open({ maxMessages: 3 });
    const topic = fresh();
    let epoch = "";
    for (let i = 1; i <= 5; i++) epoch = (await log.append(topic, `m${i}`, `k${i}`)).epoch;
    const keys = log.keys(topic);
    assert.equal(await admin.xlen(keys.stream), 3);
    assert.deepEqual((await admin.hkeys(keys.keys)).sort(), ["k3", "k4", "k5"], "the keys of held entries only");
    const read = await log.read(topic, { epoch, offset: 0 }, 10);
    assert.deepEqual(read.gap, { reason: "trimmed", epoch, from: 1, to: 2 });
    assert.deepEqual(read.entries.map((e) => e.data), ["m3", "m4", "m5"], "then what is held");
    assert.equal((await log.read(topic, { epoch, offset: 2 }, 10)).gap, undefined, "nothing lost after 2");
    assert.deepEqual(await log.append(topic, "m1 again", "k1"), { epoch, offset: 6, duplicate: false }, "a forgotten key is new");
    assert.deepEqual(await log.append(topic, "m5 again", "k5"), { epoch, offset: 5, duplicate: true });
  });

  it("expires by age on Redis's clock, answers an expired gap, and tells trimmed from expired", SLOW, async () => {
    const log = open({ maxAgeMs: 400, maxMessages: 2 });
    const topic = fresh();
    const { epoch } = await log.append(topic, "1", "k1");
    await log.append(topic, "2", "k2");
    await log.append(topic, "3", "k3"); // 1 trimmed (count)
    await delay(500); // 2 and 3 expire
    await log.append(topic, "4");
    const keys = log.keys(topic);
    assert.deepEqual(await admin.hkeys(keys.keys), [], "keys of expired entries forgotten");
    assert.deepEqual((await log.read(topic, { epoch, offset: 0 }, 10)).gap, { reason: "trimmed", epoch, from: 1, to: 3 });
    const read = await log.read(topic, { epoch, offset: 1 }, 10);
    assert.deepEqual(read.gap, { reason: "expired", epoch, from: 2, to: 3 });
    assert.deepEqual(read.entries.map((e) => e.data), ["4"]);
    await delay(500); // 4 expires; a read drops it too
    const later = await log.read(topic, { epoch, offset: 4 }, 10);
    assert.deepEqual([later.entries, later.last, later.epoch, later.gap], [[], 4, epoch, undefined], "empty, same epoch, up to date");
    assert.deepEqual((await log.read(topic, { epoch, offset: 3 }, 10)).gap, { reason: "expired", epoch, from: 4, to: 4 });
    assert.equal(await admin.xlen(keys.stream), 0);
    const ttl = await admin.pttl(keys.meta);
    assert.ok(ttl > 0 && ttl <= 800, `the topic is forgotten after twice maxAgeMs unused (pttl ${ttl})`);
  });

  it("creates the epoch once (two logs at once), answers epoch gaps, and starts a new epoch after FLUSHALL", SLOW, async () => {
    const a = open();
    const b = open();
    const topic = fresh();
    const [ra, rb] = await Promise.all([a.read(topic, "now", 0), b.read(topic, "now", 0)]);
    assert.equal(ra.epoch, rb.epoch, "one epoch for everyone");
    const { epoch } = await a.append(topic, "x");
    assert.equal(epoch, ra.epoch);
    assert.deepEqual((await b.read(topic, { epoch: "other", offset: 0 }, 10)).gap, { reason: "epoch", epoch: "other", from: 1 });
    const beyond = await b.read(topic, { epoch, offset: 5 }, 10);
    assert.deepEqual(beyond.gap, { reason: "epoch", epoch, from: 6 }, "an offset beyond the end");
    assert.deepEqual(beyond.entries.map((e) => e.offset), [1], "then from the oldest held");
    const { got } = await watching(b, topic, a);
    await admin.flushall();
    const after = await a.append(topic, "after the flush");
    assert.notEqual(after.epoch, epoch);
    assert.equal(after.offset, 1);
    assert.deepEqual((await b.read(topic, { epoch, offset: 2 }, 10)).gap, { reason: "epoch", epoch, from: 3 });
    await until(() => got.length === 1);
    assert.deepEqual(got, [{ epoch: after.epoch, offset: 1, data: "after the flush" }], "the watch hands on the new epoch");
    // A late message of the old epoch is skipped; one in no known format is reported and skipped.
    const channel = a.keys(topic).channel;
    await admin.publish(channel, `${epoch}\n2\n0\nstale`);
    await admin.publish(channel, "not an entry");
    await a.append(topic, "next");
    await until(() => got.length === 2);
    await delay(50);
    assert.deepEqual(got.map((e) => [e.epoch, e.offset, e.data]), [[after.epoch, 1, "after the flush"], [after.epoch, 2, "next"]]);
    assert.ok(b.errors.some((e) => e instanceof BackplaneError && e.code === "ERR_BACKPLANE_MESSAGE"));
  });

  for (const refilled of [false, true]) {
    it(`starts a new epoch when Redis lost entries that were handed on (${refilled ? "their offsets taken again by new appends" : "it ends before the cursor"})`, SLOW, async () => {
      const a = open();
      const b = open();
      const topic = fresh();
      const w = await watching(b, topic, a);
      let epoch = "";
      for (let i = 0; i < 10; i++) epoch = (await a.append(topic, `m${i}`)).epoch;
      await until(() => w.got.length === 10);
      // As if Redis restarted from an older copy of its data: the last five entries are gone, `last`
      // went back, and (refilled) new appends took those offsets again. One script: atomic.
      const k = a.keys(topic);
      const last = w.after + 10;
      await admin.eval(
        `for i = 0, 4 do redis.call('XDEL', KEYS[1], (ARGV[1] - i) .. '-0') end
        local kept = ARGV[1] - 5
        redis.call('XSETID', KEYS[1], kept .. '-0')
        redis.call('HSET', KEYS[2], 'last', kept)
        local now = redis.call('TIME')[1] .. '000'
        for i = 1, tonumber(ARGV[2]) do
          redis.call('XADD', KEYS[1], (kept + i) .. '-0', 'd', 'new ' .. i, 'b', '0', 'k', '', 't', now)
          redis.call('HSET', KEYS[2], 'last', kept + i)
        end`,
        2,
        k.stream,
        k.meta,
        String(last),
        refilled ? "8" : "0",
      );
      await admin.call("CLIENT", "KILL", "TYPE", "pubsub"); // a restart drops every connection
      await until(() => b.errors.some((e) => e instanceof BackplaneError && e.code === "ERR_REDIS_REWOUND"), 5000, "ERR_REDIS_REWOUND");
      const next = await a.append(topic, "after");
      assert.notEqual(next.epoch, epoch, "a new epoch: the old offsets are never reused within one");
      assert.equal(b.stats.rewound, 1);
      assert.equal(next.offset, 1);
      await until(() => w.got.some((e) => e.epoch === next.epoch));
      await delay(50);
      assert.deepEqual(w.got.slice(10), [{ epoch: next.epoch, offset: 1, data: "after" }], "nothing of the broken history after what was handed on");
    });
  }

  it("hands live entries in order, once, to every watcher of every log; unwatching unsubscribes", SLOW, async () => {
    const a = open();
    const b = open();
    const topic = fresh();
    const wa = await watching(a, topic);
    const wb = await watching(b, topic, a);
    const second: LogEntry[] = [];
    const stopSecond = b.watch(topic, (e) => void second.push(e));
    const N = 300;
    const base = (await a.read(topic, "now", 0)).last;
    wa.got.length = 0; // the second primer
    wb.got.length = 0;
    await Promise.all(Array.from({ length: N }, (_, i) => (i % 2 ? a : b).append(topic, `m${i}`)));
    const expected = Array.from({ length: N }, (_, i) => base + i + 1);
    await until(() => wa.got.length >= N && wb.got.length >= N && second.length >= N);
    await delay(50);
    assert.deepEqual(wa.got.map((e) => e.offset), expected);
    assert.deepEqual(wb.got.map((e) => e.offset), expected);
    assert.deepEqual(second.map((e) => e.offset), expected);
    wa.stop();
    wb.stop();
    stopSecond();
    const channel = a.keys(topic).channel;
    await until(async () => ((await admin.pubsub("NUMSUB", channel)) as [string, number])[1] === 0, 5000, "no subscriber left");
  });

  it("unsubscribes a topic unwatched while its subscriber connection was down, once it is back", SLOW, async () => {
    let subscriber: Redis | undefined;
    const log = open({
      createClient: (role) => {
        const client = new Redis(redis.url, { retryStrategy: () => 200 });
        if (role === "subscriber") subscriber = client;
        return client;
      },
    });
    const topic = fresh();
    const { stop } = await watching(log, topic);
    const numsub = async () => ((await admin.pubsub("NUMSUB", log.keys(topic).channel)) as [string, number])[1];
    assert.equal(await numsub(), 1);
    await admin.call("CLIENT", "KILL", "TYPE", "pubsub");
    await until(() => subscriber!.status !== "ready", 5000, "the loss noticed");
    stop();
    await until(() => subscriber!.status === "ready", 5000, "reconnected");
    await until(async () => (await numsub()) === 0, 5000, "unsubscribed after the reconnect");
  });

  it("catches up from the stream after its subscriber connection is killed (CLIENT KILL TYPE pubsub)", SLOW, async () => {
    const a = open();
    const b = open();
    const topic = fresh();
    const w = await watching(b, topic, a);
    const N = 400;
    const appending = (async () => {
      for (let i = 0; i < N; i++) {
        await a.append(topic, `m${i}`);
        if (i % 100 === 50) await admin.call("CLIENT", "KILL", "TYPE", "pubsub");
      }
    })();
    await appending;
    await until(() => w.got.length >= N, 10_000, `${N} entries (got ${w.got.length})`);
    await delay(100);
    assert.deepEqual(w.got.map((e) => e.offset), Array.from({ length: N }, (_, i) => w.after + i + 1));
    assert.ok(b.errors.some((e) => e instanceof BackplaneError && e.code === "ERR_REDIS_DISCONNECTED"), "the outage was reported");
    const { live, caughtUp, disconnects, watched } = b.stats;
    assert.ok(caughtUp > 0 && live > 0 && live + caughtUp >= N, `live ${live}, caught up ${caughtUp}`);
    assert.ok(disconnects >= 1 && disconnects <= 4, `${disconnects} disconnects (a kill misses a connection not subscribed again yet)`);
    assert.equal(watched, 1);
  });

  it("survives a Redis crash and restart with appendonly yes: same epoch, nothing lost; fails fast meanwhile", SLOW, async () => {
    const a = open({ commandTimeoutMs: 500 });
    const b = open({ commandTimeoutMs: 500 });
    const topic = fresh();
    const w = await watching(b, topic, a);
    const first = [];
    for (let i = 0; i < 50; i++) first.push(await a.append(topic, `before ${i}`, `before-${i}`));
    await redis.kill();
    const started = Date.now();
    await assert.rejects(a.append(topic, "while down", "down-1"), (e: unknown) => e instanceof BackplaneError && /ERR_REDIS_(UNAVAILABLE|TIMEOUT)/.test(e.code));
    await assert.rejects(b.read(topic, "now", 0), BackplaneError);
    assert.ok(Date.now() - started < 1500, `failed fast: ${Date.now() - started} ms for two commands`);
    await redis.start();
    await until(async () => {
      try {
        await a.append(topic, "after 0", "after-0");
        await b.read(topic, "now", 0);
        return true;
      } catch {
        return false; // rejected at once until the connection is back
      }
    }, 10_000, "both logs to work again");
    for (let i = 1; i < 50; i++) await a.append(topic, `after ${i}`, `after-${i}`);
    const read = await b.read(topic, { epoch: first[0]!.epoch, offset: w.after }, 1000);
    assert.equal(read.epoch, first[0]!.epoch, "the same epoch");
    assert.equal(read.gap, undefined);
    assert.deepEqual(read.entries.map((e) => e.data), [...Array.from({ length: 50 }, (_, i) => `before ${i}`), ...Array.from({ length: 50 }, (_, i) => `after ${i}`)]);
    assert.deepEqual(await a.append(topic, "retry", "before-3"), { epoch: first[0]!.epoch, offset: first[3]!.offset, duplicate: true }, "keys survive too");
    await until(() => w.got.length >= 100, 10_000, `100 live entries (got ${w.got.length})`);
    await delay(100);
    assert.deepEqual(w.got.map((e) => e.offset), Array.from({ length: 100 }, (_, i) => w.after + i + 1), "the watch caught up: in order, once");
  });

  it("reconnects a subscriber connection that went silent (pinged every 5 × commandTimeoutMs) and catches up", SLOW, async () => {
    const proxy = new FreezingProxy(() => redis.port);
    await proxy.listen();
    const a = open();
    const b = open({ commandTimeoutMs: 200 }, () => proxy.url);
    try {
      const topic = fresh();
      const w = await watching(b, topic, a);
      proxy.freeze();
      for (let i = 0; i < 20; i++) await a.append(topic, `m${i}`);
      await until(() => w.got.length === 20, 15_000, `20 entries after the reconnect (got ${w.got.length})`);
      assert.deepEqual(w.got.map((e) => e.offset), Array.from({ length: 20 }, (_, i) => w.after + i + 1));
      assert.ok(b.errors.some((e) => e instanceof BackplaneError && /unresponsive/.test(e.message)), "reported");
    } finally {
      await b.close();
      await proxy.close();
    }
  });

  it("rejects commands while Redis is paused past commandTimeoutMs, and a retried key is stored once", SLOW, async () => {
    const log = open({ commandTimeoutMs: 300 });
    const topic = fresh();
    const { epoch } = await log.append(topic, "first");
    await admin.call("CLIENT", "PAUSE", "1200", "ALL");
    const started = Date.now();
    await assert.rejects(log.append(topic, "paused", "p1"), (e: unknown) => e instanceof BackplaneError && e.code === "ERR_REDIS_TIMEOUT");
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 1000, `rejected after the timeout: ${took} ms`);
    // The append ran once Redis went on; its retry (same key) is stored once.
    await until(async () => {
      try {
        return (await log.append(topic, "paused", "p1")).duplicate;
      } catch {
        return false;
      }
    }, 5000, "the retried append");
    const read = await log.read(topic, { epoch, offset: 0 }, 10);
    assert.deepEqual(read.entries.map((e) => e.data), ["first", "paused"]);
  });

  it("refuses bad options, oversized entries, and use after close (UsageError)", SLOW, async () => {
    const createClient = () => new Redis(redis.url, { lazyConnect: true });
    const bad: [unknown, RegExp][] = [
      [undefined, /createClient/],
      [{}, /createClient/],
      [{ createClient: 1 }, /createClient/],
      [{ createClient, maxMessage: 5 }, /"maxMessage" is not an option, did you mean "maxMessages"/],
      [{ createClient, maxMessages: 0 }, /maxMessages must be a positive integer/],
      [{ createClient, maxAgeMs: 1.5 }, /maxAgeMs/],
      [{ createClient, maxMessageBytes: -1 }, /maxMessageBytes/],
      [{ createClient, commandTimeoutMs: "1s" }, /commandTimeoutMs/],
      [{ createClient, prefix: 3 }, /prefix must be a string/],
      [{ createClient, prefix: "app{1}:" }, /without \{ or \}/],
      [{ createClient, onError: "log" }, /onError/],
    ];
    for (const [options, pattern] of bad) {
      assert.throws(
        () => new RedisTopicLog(options as RedisTopicLogOptions),
        (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_OPTION" && pattern.test(e.message),
        JSON.stringify(options),
      );
    }
    const one = new Redis(redis.url);
    const same = new RedisTopicLog({ createClient: () => one, onError: () => {} });
    await assert.rejects(
      (async () => {
        same.watch("t", () => {});
        await same.append("t", "x");
      })(),
      (e: unknown) => e instanceof UsageError && /new client on every call/.test(e.message),
    );
    await same.close();
    one.disconnect();
    const notAClient = new RedisTopicLog({ createClient: () => ({}) as RedisLogClient });
    await assert.rejects(notAClient.append("t", "x"), (e: unknown) => e instanceof UsageError && /must return a Redis client/.test(e.message));
    const log = open({ maxMessageBytes: 4 });
    await assert.rejects(log.append("t", "ééé"), (e: unknown) => e instanceof UsageError && e.code === "ERR_TOO_LARGE");
    await log.close();
    await assert.rejects(log.append("t", "x"), (e: unknown) => e instanceof UsageError && e.code === "ERR_CLOSED");
    assert.throws(() => log.watch("t", () => {}), (e: unknown) => e instanceof UsageError && e.code === "ERR_CLOSED");
  });

  it("close() quits both connections and stops its timers", SLOW, async () => {
    const log = new RedisTopicLog({ createClient: (role) => new Redis(redis.url, { connectionName: `closing-${role}` }), onError: () => {} });
    const topic = fresh();
    log.watch(topic, () => {});
    await log.append(topic, "x");
    const names = async () => String(await admin.client("LIST")).match(/name=closing-\w+/g) ?? [];
    await until(async () => (await names()).length === 2, 5000, "two connections");
    await log.close();
    await until(async () => (await names()).length === 0, 5000, "no connection left");
    await log.close(); // again: nothing
  });

  it("reliable() on two servers sharing one Redis: a client subscribed on one gets every message published on the other, once, in order", SLOW, async () => {
    const layers = [0, 1].map(() => reliable({ log: open(), authorize: { publish: () => true }, onError: () => {} }));
    const servers = await Promise.all(layers.map((live) => serve(new App().use(live), { port: 0, hostname: "127.0.0.1" })));
    const [subscriber, publisher] = servers.map((server) => new DuplexClient(`ws://127.0.0.1:${server.port}/`, { WebSocket }));
    try {
      const topic = fresh("room");
      const got: string[] = [];
      let ready!: () => void;
      const subscribed = new Promise<void>((resolve) => (ready = resolve));
      subscriber!.subscribe(topic, (m) => void got.push(String(m.data)), { from: "start", onResult: () => ready() });
      await subscribed;
      const N = 200;
      const acks = await Promise.all(Array.from({ length: N }, (_, i) => publisher!.publish(topic, `${i + 1}`)));
      assert.deepEqual(acks.map((p) => p.offset), Array.from({ length: N }, (_, i) => i + 1), "acked in order, offsets 1..N");
      await until(() => got.length >= N, 10_000, `${N} messages (got ${got.length})`);
      await delay(100);
      assert.deepEqual(got, Array.from({ length: N }, (_, i) => `${i + 1}`));
    } finally {
      subscriber?.close();
      publisher?.close();
      for (const server of servers) await server.close();
      for (const live of layers) await live.close();
    }
  });
  it("keeps call order through NOSCRIPT: a script called after a fallback EVAL waits for the EVALSHAs sent before it", SLOW, async () => {
    // The commands client hands EVALSHA answers on only when the test says (Redis has run them already).
    const held: (() => void)[] = [];
    let holding = false;
    const log = open({
      createClient: (role) => {
        const client = new Redis(redis.url, { connectionName: `log-${role}`, retryStrategy: () => 50 });
        if (role === "subscriber") return client;
        const call = client.callBuffer.bind(client) as RedisLogClient["callBuffer"];
        return Object.assign(client, {
          callBuffer: (command: string, ...args: (string | Uint8Array | number)[]) => {
            const result = call(command, ...args);
            if (!holding || command !== "EVALSHA") return result;
            return new Promise((resolve, reject) => result.then((v) => held.push(() => resolve(v)), (e) => held.push(() => reject(e))));
          },
        }) as unknown as RedisLogClient;
      },
    });
    const topic = fresh("noscript");
    assert.equal((await log.append(topic, "primer")).offset, 1);
    await admin.script("FLUSH");
    holding = true;
    const a = log.append(topic, "a", "ka");
    const b = log.append(topic, "b", "kb");
    await until(() => held.length === 2, 5000, "both EVALSHAs answered NOSCRIPT");
    holding = false;
    held.shift()!(); // a's NOSCRIPT reaches the log: its EVAL goes out and loads the script
    assert.equal((await a).offset, 2);
    const c = log.append(topic, "c", "kc"); // would run at once on the loaded script, ahead of b
    await delay(50);
    held.shift()!(); // b's NOSCRIPT: its EVAL, then c
    assert.deepEqual([(await b).offset, (await c).offset], [3, 4]);
    const read = await log.read(topic, "start", 10);
    assert.deepEqual(read.entries.map((e) => e.data), ["primer", "a", "b", "c"]);
  });

  for (const flush of [false, true]) {
    it(`reliable() pipelines one client's publishes: 2,000 sent without awaiting each are stored in the client's order, and a subscriber gets them in order, once${flush ? " (SCRIPT FLUSH meanwhile: the NOSCRIPT fallback keeps the order)" : ""}`, SLOW, async () => {
      const log = open();
      const live = reliable({ log, authorize: { publish: () => true }, onError: () => {} });
      const server = await serve(new App().use(live), { port: 0, hostname: "127.0.0.1" });
      const [subscriber, publisher] = [0, 1].map(() => new DuplexClient(`ws://127.0.0.1:${server.port}/`, { WebSocket, queue: { maxMessages: 2000 } }));
      try {
        const topic = fresh("pipelined");
        const got: string[] = [];
        let ready!: () => void;
        const subscribed = new Promise<void>((resolve) => (ready = resolve));
        subscriber!.subscribe(topic, (m) => void got.push(String(m.data)), { from: "start", onResult: () => ready() });
        await subscribed;
        const N = 2000;
        const expected = Array.from({ length: N }, (_, i) => `${i + 1}`);
        const acked: Promise<{ offset: number }>[] = [];
        for (let i = 0; i < N; i++) {
          acked.push(publisher!.publish(topic, expected[i]!));
          // Flushed scripts mid-stream: the appends in flight get NOSCRIPT and fall back to EVAL.
          if (flush && i % 500 === 250) {
            await delay(1);
            await admin.script("FLUSH");
          }
        }
        const acks = await Promise.all(acked);
        assert.deepEqual(acks.map((p) => p.offset), expected.map(Number), "acked with offsets 1..N, in the client's order");
        await until(() => got.length >= N, 20_000, `${N} messages (got ${got.length})`);
        await delay(100);
        assert.deepEqual(got, expected, "in order, once");
        const stored = await log.read(topic, "start", N + 1);
        assert.deepEqual(stored.entries.map((e) => e.data), expected, "stored in the client's order");
      } finally {
        subscriber?.close();
        publisher?.close();
        await server.close();
        await live.close();
      }
    });
  }
});

describe(`RedisTopicLog keys on a one-node Redis Cluster${skip ? ` (skipped: ${skip})` : ""}`, { skip, timeout: 60_000 }, () => {
  const node = new RedisServer(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-announce-ip", "127.0.0.1", "--appendonly", "no"]);
  let admin: Redis;

  before(async () => {
    if (!hasRedis) assert.fail("redis-server is not installed and CI is set: install it with apt-get");
    await node.start();
    admin = new Redis(node.url);
    await admin.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
    await until(async () => /cluster_state:ok/.test(String(await admin.call("CLUSTER", "INFO"))), 10_000, "cluster_state:ok");
  });

  after(async () => {
    admin?.disconnect();
    await node.stop();
  });

  it("puts every key of a topic in one slot (the hash tag), whatever the topic", SLOW, async () => {
    const log = new RedisTopicLog({ createClient: () => new Redis(node.url, { lazyConnect: true }) });
    const slots = new Set<number>();
    for (const topic of ["news", "room:42", "a{b}c", "}{", "}", "%7D", "é✓", "x".repeat(300)]) {
      const k = log.keys(topic);
      const keySlots = await Promise.all([k.stream, k.meta, k.keys].map((key) => admin.call("CLUSTER", "KEYSLOT", key) as Promise<number>));
      assert.equal(new Set(keySlots).size, 1, `${topic}: ${JSON.stringify(k)} in slots ${keySlots}`);
      slots.add(keySlots[0]!);
    }
    assert.ok(slots.size > 1, "topics spread over slots");
    assert.notEqual(log.keys("}").stream, log.keys("%7D").stream, "escaped: one topic, one set of keys");
    await log.close();
  });

  it("works through ioredis's Cluster client (the scripts' keys in one slot: no CROSSSLOT)", SLOW, async () => {
    const log = new RedisTopicLog({
      createClient: () => new Cluster([{ host: "127.0.0.1", port: node.port }]) as unknown as RedisLogClient,
      onError: () => {},
    });
    try {
      const got: LogEntry[] = [];
      log.watch("news", (e) => void got.push(e));
      const first = await log.append("news", "one", "k1");
      assert.deepEqual(await log.append("news", "one", "k1"), { ...first, duplicate: true });
      await log.append("news", new Uint8Array([1, 2, 3]));
      const read = await log.read("news", { epoch: first.epoch, offset: 0 }, 10);
      assert.deepEqual(read.entries.map((e) => e.data), ["one", new Uint8Array([1, 2, 3])]);
      for (let i = 0; i < 5; i++) await log.append("news", `live ${i}`);
      await until(() => got.some((e) => e.data === "live 4"), 5000, "live entries through the cluster");
      const offsets = got.map((e) => e.offset);
      assert.deepEqual(offsets, Array.from({ length: offsets.length }, (_, i) => offsets[0]! + i), "in order, no hole");
    } finally {
      await log.close();
    }
  });
});
