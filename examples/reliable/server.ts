// Recoverable topics on every path: any client speaking `duplex.v1` (the
// Duplex client, `@duplex/ws/client`) may subscribe to and publish on any
// topic, and gets back what it missed after a disconnect. Runs unchanged on
// the three runtimes:
//
//   PORT=8080 node --import tsx examples/reliable/server.ts
//   PORT=8080 deno run -A examples/reliable/server.ts
//   PORT=8080 bun examples/reliable/server.ts
//
// Then publish.ts and subscribe.ts (beside this file) talk to it.
//
// Without REDIS_URL, each topic's history lives in this process's memory
// (MemoryTopicLog): its last HISTORY messages (default 10,000), none older
// than an hour. A restart starts new histories (new epochs): a client that
// comes back asking for the old one is told about the gap.
//
// With REDIS_URL (such as redis://127.0.0.1:6379), the histories live on
// Redis Streams (RedisTopicLog, same bounds) and every process on that Redis
// shares them: run several servers behind a load balancer, restart any of
// them, and a client resumes on whichever answers. Run Redis with
// `--appendonly yes` so that a Redis restart loses nothing acked. ioredis is
// imported only then (npm i ioredis).
//
// The first line of stdout is `listening on ws://HOST:PORT`, with the real
// port when PORT=0. SIGINT and SIGTERM close every connection with 1001 and
// exit 0. Environment: PORT (8080), HOST (127.0.0.1), HISTORY (10000),
// REDIS_URL (unset: in memory).
import process from "node:process";
import { App, MemoryTopicLog, reliable, runtime, serve, type TopicLog } from "../../mod.ts";

function integerFromEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min) {
    console.error(`${name} must be an integer of at least ${min}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return value;
}

const port = integerFromEnv("PORT", 8080, 0);
const hostname = process.env.HOST || "127.0.0.1";
const history = integerFromEnv("HISTORY", 10_000, 1);
if (port > 65535) {
  console.error(`PORT must be an integer from 0 to 65535, got ${port}`);
  process.exit(2);
}

const redisUrl = process.env.REDIS_URL || undefined;
const maxAgeMs = 60 * 60 * 1000;

async function redisLog(url: string): Promise<TopicLog> {
  const { Redis } = await import("ioredis");
  const { RedisTopicLog } = await import("../../plugins/redis.ts");
  return new RedisTopicLog({
    // Reconnect quickly (at most 1 s apart): the log fails commands fast meanwhile, and a
    // command lost with its connection (reported failed) does not run later.
    createClient: (role) =>
      new Redis(url, {
        connectionName: `duplex-${role}`,
        retryStrategy: (n: number) => Math.min(50 * n, 1000),
        autoResendUnfulfilledCommands: false,
      }),
    maxMessages: history,
    maxAgeMs,
    onError: (error) => console.error("redis log:", error instanceof Error ? error.message : error),
  });
}

const log: TopicLog = redisUrl === undefined ? new MemoryTopicLog({ maxMessages: history, maxAgeMs }) : await redisLog(redisUrl);
const live = reliable({
  log,
  // Any client may publish on any topic, as sent.
  authorize: { publish: () => true },
  onError: (error) => console.error("reliable:", error),
});
const app = new App().use(live);
const server = await serve(app, { port, hostname });

// Registered before the first line: a supervisor may stop it as soon as it is listening.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, async () => {
    await server.close();
    await live.close();
    await log.close();
    process.exit(0);
  });
}

console.log(`listening on ws://${hostname}:${server.port}`);
console.log(`runtime: ${runtime()}, history: ${history} messages per topic, 1 h at most, ${redisUrl === undefined ? "in memory" : `on Redis (${new URL(redisUrl).host})`}`);
