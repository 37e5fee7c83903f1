/**
 * Duplex fan-out server for the benchmark, on whichever runtime runs it: an
 * `App` whose subscribers (`/fanout?role=sub`) subscribe to one topic when
 * they open, and whose publisher (`/fanout?role=pub`) has every message it
 * sends published to that topic with `app.publish()`: framed once, the same
 * bytes written to every subscriber (on the raw transport; on Deno's native
 * one the data goes to the runtime per subscriber; on Bun's native one the
 * subscribers are in Bun's topics too, and each message is one
 * `server.publish()`). Text stays text, binary stays binary.
 *
 *   PORT=8080 node --import tsx bench/servers/fanout_duplex.ts
 *   PORT=8080 TRANSPORT=native deno run -A bench/servers/fanout_duplex.ts
 *   PORT=8080 TRANSPORT=native bun bench/servers/fanout_duplex.ts
 *
 * `TRANSPORT=raw` (the default) runs Duplex's engine on the runtime's TCP
 * sockets (`node:net`, `Deno.listen`, `Bun.listen`); `TRANSPORT=native` runs
 * the same app over `Deno.serve` or `Bun.serve`.
 *
 * With `REDIS_URL` set, the app has a Redis backplane (ioredis, loaded only
 * then): run two of these on one Redis, subscribers on one and the
 * publisher on the other, and every message goes through Redis.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 PORT=8081 node --import tsx bench/servers/fanout_duplex.ts
 *
 * @module
 */

import process from "node:process";
import { App, serve, type TransportName } from "../../mod.ts";
import { RedisBackplane } from "../../plugins/redis.ts";
import { benchPort, ready } from "./_lifecycle.ts";

const transport = (process.env.TRANSPORT ?? "raw") as TransportName;
const TOPIC = "fanout";
const redisUrl = process.env.REDIS_URL || undefined;

/** With REDIS_URL, a Redis backplane: ioredis is loaded only then. */
async function redisBackplane(url: string): Promise<RedisBackplane> {
  const { Redis } = await import("ioredis");
  return new RedisBackplane({ createClient: () => new Redis(url) });
}

const app: App<{ subscriber: boolean }> = new App<{ subscriber: boolean }>({
  backplane: redisUrl === undefined ? undefined : await redisBackplane(redisUrl),
})
  .use({
    upgrade(ctx, next) {
      ctx.state = { subscriber: ctx.query.get("role") === "sub" };
      return next();
    },
    open(ctx) {
      if (ctx.state.subscriber) ctx.subscribe(TOPIC);
    },
    message(ctx) {
      app.publish(TOPIC, ctx.data);
    },
  })
  .onError((error) => console.error(error));

const server = await serve(app, { port: benchPort(), hostname: "127.0.0.1", transport });

ready(`duplex-fanout-${transport}${redisUrl === undefined ? "" : "-redis"}`, server.port, async () => {
  await server.close();
  await app.closeBackplane();
});
