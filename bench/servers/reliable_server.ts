/**
 * The reliable-delivery benchmark's server (`bench/reliable.ts` drives it):
 * one Node process, Duplex's raw transport, with a plain pub/sub topic and a
 * recoverable one side by side, so that both are measured by the same
 * clients in the same run.
 *
 *   /plain?role=sub   subscribes to the plain topic `t` when it opens
 *   /plain?role=pub   every message it sends is `app.publish()`ed to `t`
 *   /r                `duplex.v1` (the reliable layer): any topic, any publish
 *   /control          text commands, each answered with `done <ms>` once run:
 *                     `plain N SIZE`    publishes N messages of SIZE bytes to the plain topic
 *                     `reliable N SIZE` publishes N messages to the recoverable topic `t`
 *                     `kick N`          cuts every `/r` connection, then publishes N messages to `t`
 *
 * With `REDIS_URL`, both topics cross processes through that Redis (ioredis,
 * loaded only then): the plain topic through the Pub/Sub backplane
 * (`RedisBackplane`), the recoverable one through Redis Streams
 * (`RedisTopicLog`). Run two on one Redis, publisher on one, subscribers on
 * the other, and every message goes through Redis.
 *
 *   PORT=0 node --import tsx bench/servers/reliable_server.ts
 *   REDIS_URL=redis://127.0.0.1:6379 PORT=0 node --import tsx bench/servers/reliable_server.ts
 *
 * @module
 */

import process from "node:process";
import { App, type Backplane, MemoryTopicLog, type Peer, reliable, serve, type TopicLog } from "../../mod.ts";
import { benchPort, ready } from "./_lifecycle.ts";

const TOPIC = "t";
const MAX_MESSAGES = 1_000_000;
const redisUrl = process.env.REDIS_URL || undefined;

/** With REDIS_URL: the Pub/Sub backplane and the Streams log on it (ioredis and the Redis entry loaded only then). */
async function onRedis(url: string): Promise<{ backplane: Backplane; log: TopicLog }> {
  const { Redis } = await import("ioredis");
  const { RedisBackplane, RedisTopicLog } = await import("../../plugins/redis.ts");
  return {
    backplane: new RedisBackplane({ createClient: () => new Redis(url) }),
    log: new RedisTopicLog({ createClient: () => new Redis(url), maxMessages: MAX_MESSAGES }),
  };
}

const shared = redisUrl === undefined ? undefined : await onRedis(redisUrl);
const live = reliable<{ subscriber?: boolean }>({
  log: shared?.log ?? new MemoryTopicLog({ maxMessages: MAX_MESSAGES, maxBytes: 512 * 1024 * 1024 }),
  authorize: { publish: () => true },
});
const reliablePeers = new Set<Peer<{ subscriber?: boolean }>>();

const app: App<{ subscriber?: boolean }> = new App<{ subscriber?: boolean }>({
  maxBufferedBytes: 64 * 1024 * 1024,
  backplane: shared?.backplane,
});
app.route("/plain", {
  upgrade(ctx, next) {
    ctx.state.subscriber = ctx.query.get("role") === "sub";
    return next();
  },
  open(ctx) {
    if (ctx.state.subscriber) ctx.subscribe(TOPIC);
  },
  message(ctx) {
    app.publish(TOPIC, ctx.data);
  },
});
app.route("/r", {
  open(ctx, next) {
    reliablePeers.add(ctx.peer);
    return next();
  },
  close(ctx, next) {
    reliablePeers.delete(ctx.peer);
    return next();
  },
}, live);
app.route("/control", {
  async message(ctx) {
    const [command, count = "0", size = "32"] = String(ctx.data).split(" ");
    const n = Number(count);
    const payload = "x".repeat(Number(size));
    const started = performance.now();
    if (command === "plain") {
      for (let i = 0; i < n; i++) app.publish(TOPIC, payload);
    } else if (command === "reliable") {
      const acks: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) acks.push(live.publish(TOPIC, payload));
      await Promise.all(acks);
    } else if (command === "kick") {
      for (const peer of reliablePeers) peer.terminate();
      const acks: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) acks.push(live.publish(TOPIC, payload));
      await Promise.all(acks);
    } else {
      return ctx.close(1003, "Unknown command");
    }
    ctx.send(`done ${(performance.now() - started).toFixed(1)}`);
  },
});
app.onError((error) => console.error(error));

const server = await serve(app, { port: benchPort(), hostname: "127.0.0.1", maxBufferedBytes: 64 * 1024 * 1024 });
ready(`duplex-reliable${redisUrl === undefined ? "" : "-redis"}`, server.port, async () => {
  await server.close();
  await live.close();
  await app.closeBackplane();
});
process.on("uncaughtException", (error) => console.error(error));
