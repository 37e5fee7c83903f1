// A small Duplex app on the Redis backplane, run by redis_test.ts on Node,
// Deno and Bun. It prints `listening on ws://127.0.0.1:<port>` first.
//
// - A connection to /?topics=a,b is subscribed to topics a and b.
// - A text message is a command (JSON), answered to the sender only:
//     {"publish": topic, "text": "..."}           app.publish(topic, text)
//     {"publish": topic, "base64": "..."}         app.publish(topic, bytes)
//     {"burst": topic, "count": n, "tag": "x"}    n texts "x:<i>", then n binaries [tag bytes…, 0, i>>8, i&255]
//     {"stats": true}                             {"stats": backplane stats, "hub": app.pubsubStats, "errors": [codes]}
//   Answers are {"ok": …}; a connection that sends commands should not subscribe.
//
// Environment: REDIS_URL (required), PORT (0), QUEUE_MAX (10000), RETRY_MS (50),
// AUTO_RESUBSCRIBE (1; 0 turns ioredis's own resubscription off, leaving it
// to the backplane).
import process from "node:process";
import { Redis } from "ioredis";
import { App, serve } from "../../mod.ts";
import { BackplaneError, RedisBackplane } from "../../plugins/redis.ts";

const url = process.env.REDIS_URL;
if (url === undefined) throw new Error("REDIS_URL is required");
const retryMs = Number(process.env.RETRY_MS ?? 50);

const backplane = new RedisBackplane({
  createClient: (role) =>
    new Redis(url, {
      connectionName: `duplex-test-${role}`,
      retryStrategy: () => retryMs,
      maxRetriesPerRequest: null,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: process.env.AUTO_RESUBSCRIBE !== "0",
    }),
  maxQueuedMessages: Number(process.env.QUEUE_MAX ?? 10_000),
});

const errors: string[] = [];
type State = { topics: string[] };

const app = new App<State>({
  backplane,
  onBackplaneError(error) {
    const code = error instanceof BackplaneError ? error.code : "OTHER";
    errors.push(code);
    console.error(`backplane-error ${code} ${error instanceof Error ? error.message : String(error)}`);
  },
}).use({
  upgrade(ctx, next) {
    const topics = ctx.query.get("topics");
    ctx.state = { topics: topics === null || topics === "" ? [] : topics.split(",") };
    return next();
  },
  open(ctx) {
    for (const topic of ctx.state.topics) ctx.subscribe(topic);
  },
  message(ctx) {
    if (typeof ctx.data !== "string") return ctx.close(1003, "commands are text");
    const command = JSON.parse(ctx.data) as Record<string, unknown>;
    if (typeof command.publish === "string") {
      const data = typeof command.base64 === "string" ? Uint8Array.from(atob(command.base64), (c) => c.charCodeAt(0)) : String(command.text);
      ctx.send(JSON.stringify({ ok: app.publish(command.publish, data) }));
    } else if (typeof command.burst === "string") {
      const count = Number(command.count);
      const tag = String(command.tag);
      const tagBytes = new TextEncoder().encode(tag);
      for (let i = 0; i < count; i++) app.publish(command.burst, `${tag}:${i}`);
      for (let i = 0; i < count; i++) app.publish(command.burst, Uint8Array.of(...tagBytes, 0, i >> 8, i & 255));
      ctx.send(JSON.stringify({ ok: 2 * count }));
    } else if (command.stats === true) {
      ctx.send(JSON.stringify({ ok: true, stats: backplane.stats, hub: app.pubsubStats, errors }));
    } else {
      ctx.close(1008, "unknown command");
    }
  },
});

const server = await serve(app, { port: Number(process.env.PORT ?? 0), hostname: "127.0.0.1" });
console.log(`listening on ws://127.0.0.1:${server.port}`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, async () => {
    await server.close();
    await app.closeBackplane();
    process.exit(0);
  });
}
