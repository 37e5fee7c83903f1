/**
 * The reliable-delivery benchmark: what a recoverable topic costs against a
 * plain pub/sub topic, and how long a crowd of clients takes to come back
 * and recover what it missed. One server process (`servers/reliable_server.ts`,
 * Node, Duplex's raw transport, pinned to CPU 0 when `taskset` works) and
 * this process as the clients (pinned to CPU 1), all on 127.0.0.1.
 *
 * Rows, each the median of `BENCH_REPS` runs (default 3):
 * - fan-out to 1,000 subscribers: the server publishes `N` messages of 32 B
 *   to a topic, and every subscriber must receive each one; deliveries per
 *   second, plain topic (`app.publish()`) against recoverable topic
 *   (`reliable().publish()`, history in memory; the message goes out in the
 *   `duplex.v1` envelope with its topic, epoch and offset);
 * - publish from a client: one client publishes 32 B messages, one
 *   subscriber receives them; plain (`ws`'s `send()`, no acknowledgement)
 *   against recoverable (`DuplexClient.publish()`, each acknowledged once
 *   stored, 256 in flight);
 * - reconnect storm: 1,000 `DuplexClient`s subscribed to a recoverable
 *   topic are cut at once; while they are away the server publishes 100
 *   messages; the time until every client is back and has received all 100
 *   (exactly once, in order, with no gap).
 *
 * Across processes, when `redis-server` is installed (`BENCH_REDIS=0` skips
 * it): one redis-server of the bench's own (`--appendonly yes --appendfsync
 * everysec`, no snapshots) and two server processes on it, with `REDIS_URL`:
 * the publisher on one, the subscribers on the other, so every message
 * crosses Redis. Recoverable topics on Redis Streams (`RedisTopicLog`)
 * against the Pub/Sub backplane (`RedisBackplane`, plain `app.publish()`: at
 * most once) and against the in-memory log above (one process): the same
 * fan-out, publish and reconnect-storm rows, the publish row again with
 * `--appendfsync always` (what "no acked message lost in a Redis crash"
 * costs), and the Redis memory that 1,000 stored 32 B messages take
 * (`MEMORY USAGE` of the topic's stream and of its idempotency keys). Both
 * server processes and Redis share CPU 0; the clients run on CPU 1.
 *
 *   node --import tsx bench/reliable.ts
 *   BENCH_REPS=1 node --import tsx bench/reliable.ts     # quick check
 *
 * Prints a markdown section, also the part `reliable` of `npm run bench`.
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import WebSocket from "ws";
import { type BenchServer, PINNED, startBenchServer } from "./_children.ts";
import { DuplexClient } from "../client/mod.ts";

const REPS = Number(process.env.BENCH_REPS ?? 3);
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
const FANOUT_MESSAGES = 200;
const PUBLISHES = 20_000;
const MISSED = 100;
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const REDIS = process.env.BENCH_REDIS !== "0" && spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
/** Messages stored for the Redis memory row. */
const STORED = 10_000;

/** `argv` pinned to CPU 0 when `taskset` works (the bench's redis-server). */
function spawnPinned(file: string, argv: string[]): ChildProcess {
  const options = { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] as ("ignore" | "pipe" | "inherit")[] };
  return PINNED ? spawn("taskset", ["-c", "0", file, ...argv], options) : spawn(file, argv, options);
}

/** The bench's server process, listening (on the Redis of `env.REDIS_URL` when given). */
function startServer(env: Record<string, string> = {}): Promise<BenchServer> {
  return startBenchServer(ROOT, "bench/servers/reliable_server.ts", env);
}

/**
 * Where the clients go: `pub` gets the publisher (and the `/control`
 * commands that publish), `sub` the subscribers. One process for the
 * in-memory log; two on one Redis otherwise, so every message crosses it.
 */
interface Setup {
  pub: number;
  sub: number;
  stop(): Promise<void>;
}

/** A redis-server of the bench's own, in a temporary folder, pinned to CPU 0. */
class BenchRedis {
  readonly dir = mkdtempSync(join(tmpdir(), "duplex-bench-redis-"));
  port = 0;
  #child: ChildProcess | undefined;
  admin!: Redis;

  async start(fsync: "everysec" | "always"): Promise<void> {
    this.port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const argv = ["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, "--save", "", "--appendonly", "yes", "--appendfsync", fsync];
    this.#child = spawnPinned("redis-server", argv);
    this.#child.stdout!.resume();
    // It retries until redis-server listens (its refusals before that are expected).
    this.admin = new Redis(this.port, "127.0.0.1", { retryStrategy: (n) => (n > 100 ? null : 50) });
    this.admin.on("error", () => {});
    await this.admin.ping();
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    this.admin.disconnect();
    const child = this.#child;
    if (child !== undefined && child.exitCode === null) {
      await new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function setup(redis?: BenchRedis): Promise<Setup> {
  if (redis === undefined) {
    const server = await startServer();
    return { pub: server.port, sub: server.port, stop: () => server.stop() };
  }
  await redis.admin.flushall(); // every run starts from empty topics (offsets from 1)
  const env = { REDIS_URL: redis.url };
  const [a, b] = await Promise.all([startServer(env), startServer(env)]);
  return { pub: a.port, sub: b.port, stop: async () => void (await Promise.all([a.stop(), b.stop()])) };
}

function open(url: string, protocols?: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

async function control(port: number, command: string): Promise<void> {
  const ws = await open(`ws://127.0.0.1:${port}/control`);
  await new Promise<void>((resolve) => {
    ws.once("message", () => resolve());
    ws.send(command);
  });
  ws.close();
}

/**
 * With Redis: waits until the subscribers' process has subscribed to a
 * channel on Redis (Pub/Sub carries the live messages either way), so that
 * the first message published finds it there.
 */
async function subscribedOnRedis(redis?: BenchRedis): Promise<void> {
  if (redis === undefined) return;
  const deadline = Date.now() + 10_000;
  while (((await redis.admin.call("PUBSUB", "CHANNELS")) as unknown[]).length === 0) {
    if (Date.now() > deadline) throw new Error("the subscribers' process never subscribed on Redis");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}

/** Deliveries per second to SUBSCRIBERS subscribers of a plain or a recoverable topic (in one process, or across two on `redis`). */
async function fanout(kind: "plain" | "reliable", redis?: BenchRedis): Promise<number> {
  const server = await setup(redis);
  try {
    const url = kind === "plain" ? `ws://127.0.0.1:${server.sub}/plain?role=sub` : `ws://127.0.0.1:${server.sub}/r`;
    const clients: WebSocket[] = [];
    let received = 0;
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const total = SUBSCRIBERS * FANOUT_MESSAGES;
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const ws = await open(url, kind === "plain" ? undefined : ["duplex.v1"]);
      if (kind === "reliable") {
        await new Promise<void>((resolve) => {
          ws.once("message", () => resolve()); // `subscribed`
          ws.send(JSON.stringify({ type: "subscribe", id: 1, topic: "t", from: "now" }));
        });
      }
      ws.on("message", () => {
        if (++received === total) done();
      });
      clients.push(ws);
    }
    await subscribedOnRedis(redis);
    const started = performance.now();
    await control(server.pub, `${kind} ${FANOUT_MESSAGES} 32`);
    await all;
    const seconds = (performance.now() - started) / 1000;
    for (const ws of clients) ws.terminate();
    return total / seconds;
  } finally {
    await server.stop();
  }
}

/** Messages per second published by one client and received by one subscriber (in one process, or across two on `redis`). */
async function publishRate(kind: "plain" | "reliable", redis?: BenchRedis): Promise<number> {
  const server = await setup(redis);
  try {
    if (kind === "plain") {
      const sub = await open(`ws://127.0.0.1:${server.sub}/plain?role=sub`);
      const pub = await open(`ws://127.0.0.1:${server.pub}/plain?role=pub`);
      await subscribedOnRedis(redis);
      let received = 0;
      const all = new Promise<void>((resolve) => sub.on("message", () => ++received === PUBLISHES && resolve()));
      const started = performance.now();
      const payload = "x".repeat(32);
      for (let i = 0; i < PUBLISHES; i++) pub.send(payload);
      await all;
      const rate = PUBLISHES / ((performance.now() - started) / 1000);
      sub.terminate();
      pub.terminate();
      return rate;
    }
    const options = { WebSocket: WebSocket as unknown as typeof globalThis.WebSocket, queue: { maxMessages: PUBLISHES } };
    const sub = new DuplexClient(`ws://127.0.0.1:${server.sub}/r`, options);
    const pub = new DuplexClient(`ws://127.0.0.1:${server.pub}/r`, options);
    let received = 0;
    let all!: Promise<void>;
    await new Promise<void>((subscribed) => {
      all = new Promise<void>((resolve) => {
        sub.subscribe("t", () => ++received === PUBLISHES && resolve(), { onResult: () => subscribed() });
      });
    });
    await subscribedOnRedis(redis);
    const started = performance.now();
    const payload = "x".repeat(32);
    const acks: Promise<unknown>[] = [];
    for (let i = 0; i < PUBLISHES; i++) acks.push(pub.publish("t", payload));
    await Promise.all(acks);
    await all;
    const rate = PUBLISHES / ((performance.now() - started) / 1000);
    sub.close();
    pub.close();
    return rate;
  } finally {
    await server.stop();
  }
}

/** Seconds for SUBSCRIBERS clients, cut at once, to come back and each receive the MISSED messages published meanwhile. */
async function storm(redis?: BenchRedis): Promise<{ seconds: number; gaps: number }> {
  const server = await setup(redis);
  try {
    const url = `ws://127.0.0.1:${server.sub}/r`;
    const clients: DuplexClient[] = [];
    let complete = 0;
    let gaps = 0;
    let finished!: () => void;
    const all = new Promise<void>((resolve) => (finished = resolve));
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const client = new DuplexClient(url, {
        WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
        reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
      });
      let got = 0;
      await new Promise<void>((resolve) => {
        client.subscribe("t", (m) => {
          if (m.offset !== ++got) throw new Error(`client ${i}: offset ${m.offset}, expected ${got}`);
          if (got === MISSED && ++complete === SUBSCRIBERS) finished();
        }, {
          onResult(result) {
            if (result.result === "gap") gaps++;
            resolve();
          },
        });
      });
      clients.push(client);
    }
    await subscribedOnRedis(redis);
    const started = performance.now();
    await control(server.sub, `kick ${MISSED}`);
    await all;
    const seconds = (performance.now() - started) / 1000;
    for (const client of clients) client.close();
    return { seconds, gaps };
  } finally {
    await server.stop();
  }
}

/**
 * Redis memory for STORED messages of 32 B published by a client (each with
 * its idempotency key), per 1,000: `MEMORY USAGE … SAMPLES 0` (exact) of the
 * topic's stream, and of its other keys (the idempotency keys, the meta).
 */
async function redisMemory(redis: BenchRedis): Promise<{ stream: number; other: number; usedMemory: number }> {
  const server = await setup(redis);
  try {
    const before = Number(/used_memory:(\d+)/.exec(await redis.admin.info("memory"))![1]);
    const pub = new DuplexClient(`ws://127.0.0.1:${server.pub}/r`, {
      WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
      queue: { maxMessages: STORED },
    });
    const payload = "x".repeat(32);
    const acks: Promise<unknown>[] = [];
    for (let i = 0; i < STORED; i++) acks.push(pub.publish("mem", payload));
    await Promise.all(acks);
    pub.close();
    const after = Number(/used_memory:(\d+)/.exec(await redis.admin.info("memory"))![1]);
    let stream = 0;
    let other = 0;
    for (const key of await redis.admin.keys("*{mem}*")) {
      const bytes = Number(await redis.admin.call("MEMORY", "USAGE", key, "SAMPLES", "0"));
      if ((await redis.admin.type(key)) === "stream") stream += bytes;
      else other += bytes;
    }
    if (stream === 0) throw new Error("no stream for the topic `mem` in Redis");
    const per = 1000 / STORED;
    return { stream: stream * per, other: other * per, usedMemory: (after - before) * per };
  } finally {
    await server.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const fmt = (n: number): string => n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(0)}k` : n.toFixed(0);
const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;

async function main(): Promise<void> {
  if (PINNED) spawnSync("taskset", ["-cp", "1", String(process.pid)]);
  const runs = { plainFan: [] as number[], liveFan: [] as number[], plainPub: [] as number[], livePub: [] as number[], storm: [] as number[] };
  const redisRuns = { pubsubFan: [] as number[], streamFan: [] as number[], pubsubPub: [] as number[], streamPub: [] as number[], alwaysPub: [] as number[], storm: [] as number[] };
  let gaps = 0;
  let memory: { stream: number; other: number; usedMemory: number } | undefined;
  const redis = REDIS ? new BenchRedis() : undefined;
  const always = REDIS ? new BenchRedis() : undefined;
  try {
    await redis?.start("everysec");
    await always?.start("always");
    for (let rep = 0; rep < REPS; rep++) {
      runs.plainFan.push(await fanout("plain"));
      runs.liveFan.push(await fanout("reliable"));
      runs.plainPub.push(await publishRate("plain"));
      runs.livePub.push(await publishRate("reliable"));
      const s = await storm();
      runs.storm.push(s.seconds);
      gaps += s.gaps;
      if (redis !== undefined && always !== undefined) {
        redisRuns.pubsubFan.push(await fanout("plain", redis));
        redisRuns.streamFan.push(await fanout("reliable", redis));
        redisRuns.pubsubPub.push(await publishRate("plain", redis));
        redisRuns.streamPub.push(await publishRate("reliable", redis));
        redisRuns.alwaysPub.push(await publishRate("reliable", always));
        const r = await storm(redis);
        redisRuns.storm.push(r.seconds);
        gaps += r.gaps;
      }
      console.error(`rep ${rep + 1}/${REPS} done`);
    }
    if (redis !== undefined) memory = await redisMemory(redis);
  } finally {
    await redis?.stop();
    await always?.stop();
  }
  const [pf, lf, pp, lp, st] = [median(runs.plainFan), median(runs.liveFan), median(runs.plainPub), median(runs.livePub), median(runs.storm)];
  const lines = [
    `## Reliable delivery (Node, raw transport; median of ${REPS})`,
    ``,
    `| row | plain topic | recoverable topic | ratio |`,
    `|---|--:|--:|--:|`,
    `| fan-out to ${SUBSCRIBERS}, 32 B, deliveries/s | ${fmt(pf)} | ${fmt(lf)} | ${(lf / pf).toFixed(2)}× |`,
    `| one client publishing 32 B, msg/s (recoverable: each acked once stored) | ${fmt(pp)} | ${fmt(lp)} | ${(lp / pp).toFixed(2)}× |`,
    ``,
    `Reconnect storm: ${SUBSCRIBERS} clients cut at once, ${MISSED} messages published while they are away: all back and`,
    `caught up in **${st.toFixed(2)} s** (${fmt((SUBSCRIBERS * MISSED) / st)} recovered messages/s; gaps reported: ${gaps}).`,
    ``,
    `Raw (s or per s): plain fan-out ${runs.plainFan.map(fmt).join(", ")}; recoverable fan-out ${runs.liveFan.map(fmt).join(", ")};`,
    `plain publish ${runs.plainPub.map(fmt).join(", ")}; recoverable publish ${runs.livePub.map(fmt).join(", ")}; storm ${runs.storm.map((s) => s.toFixed(2)).join(", ")}.`,
  ];
  if (memory !== undefined) {
    const r = {
      pf: median(redisRuns.pubsubFan),
      sf: median(redisRuns.streamFan),
      pp: median(redisRuns.pubsubPub),
      sp: median(redisRuns.streamPub),
      ap: median(redisRuns.alwaysPub),
      st: median(redisRuns.storm),
    };
    lines.push(
      ``,
      `### Across processes on one Redis (two Node processes: publisher on one, subscribers on the other; median of ${REPS})`,
      ``,
      `| row | Pub/Sub backplane (at most once) | Redis Streams (recoverable) | in-memory log (recoverable, one process) | Streams ÷ Pub/Sub | Streams ÷ in-memory |`,
      `|---|--:|--:|--:|--:|--:|`,
      `| fan-out to ${SUBSCRIBERS}, 32 B, deliveries/s | ${fmt(r.pf)} | ${fmt(r.sf)} | ${fmt(lf)} | ${ratio(r.sf, r.pf)} | ${ratio(r.sf, lf)} |`,
      `| one client publishing 32 B, msg/s (recoverable: each acked once stored) | ${fmt(r.pp)} | ${fmt(r.sp)} | ${fmt(lp)} | ${ratio(r.sp, r.pp)} | ${ratio(r.sp, lp)} |`,
      `| the same, Redis with \`appendfsync always\` | — | ${fmt(r.ap)} | — | ${ratio(r.ap, r.pp)} | ${ratio(r.ap, lp)} |`,
      `| ${SUBSCRIBERS} clients cut at once, ${MISSED} missed each: all back and caught up, s | cannot recover | ${r.st.toFixed(2)} | ${st.toFixed(2)} | — | ${ratio(r.st, st)} the time |`,
      ``,
      `Redis memory per 1,000 stored messages of 32 B published by a client (\`MEMORY USAGE\` after ${fmt(STORED)}): ` +
        `stream ${kib(memory.stream)}, idempotency keys and meta ${kib(memory.other)}; \`used_memory\` grew ${kib(memory.usedMemory)}.`,
      `Redis: \`--appendonly yes --appendfsync everysec\` unless said; both server processes and Redis on CPU 0.`,
      ``,
      `Raw (s or per s): Pub/Sub fan-out ${redisRuns.pubsubFan.map(fmt).join(", ")}; Streams fan-out ${redisRuns.streamFan.map(fmt).join(", ")};`,
      `Pub/Sub publish ${redisRuns.pubsubPub.map(fmt).join(", ")}; Streams publish ${redisRuns.streamPub.map(fmt).join(", ")} (always: ${redisRuns.alwaysPub.map(fmt).join(", ")}); ` +
        `Streams storm ${redisRuns.storm.map((s) => s.toFixed(2)).join(", ")}.`,
    );
  } else {
    lines.push(``, `(No Redis rows: ${process.env.BENCH_REDIS === "0" ? "BENCH_REDIS=0" : "redis-server is not installed"}.)`);
  }
  console.log(lines.join("\n"));
  if (gaps > 0) process.exitCode = 1;
}

await main();
process.exit();
