// Chat server: rooms at /chat/:room, subprotocol chat.v1, JSON messages.
// Runs unchanged on the three runtimes:
//
//   node --import tsx examples/chat.ts
//   deno run -A examples/chat.ts
//   bun examples/chat.ts
//
// Clients connect to ws://HOST:PORT/chat/<room>?name=<name> offering the
// `chat.v1` subprotocol, with the token as `Authorization: Bearer <token>`
// or `?token=<token>`. A missing or wrong token is refused with 401 before
// the upgrade; a client that does not offer chat.v1 gets 400, and so does a
// room name over 1,000 characters.
//
//   → { "type": "say", "text": "hello" }
//   ← { "type": "said", "from": "ada", "text": "hello" }   (to everyone in the room, sender included)
//
// A room is a pub/sub topic ("room:<room>"). With REDIS_URL set, the rooms
// are shared through Redis by every chat process on it (any runtime); this
// needs the `ioredis` package (a dev dependency here).
//
// Environment: PORT (8080), HOST (127.0.0.1), CHAT_TOKEN (secret),
// HEARTBEAT_INTERVAL_MS (30000), HEARTBEAT_TIMEOUT_MS (10000),
// TRANSPORT (raw, or native on Deno and Bun), REDIS_URL (none: rooms stay in
// this process).
import process from "node:process";
import {
  App,
  authenticate,
  CloseCode,
  CloseError,
  fromBearer,
  fromQuery,
  heartbeat,
  json,
  runtime,
  serve,
  subprotocols,
  type TransportName,
} from "../mod.ts";
import { RedisBackplane } from "../plugins/redis.ts";

function numberFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`${name} must be a positive number of milliseconds, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return value;
}

const port = Number(process.env.PORT ?? 8080);
const hostname = process.env.HOST ?? "127.0.0.1";
const transport = (process.env.TRANSPORT ?? "raw") as TransportName;
const token = process.env.CHAT_TOKEN ?? "secret";
const intervalMs = numberFromEnv("HEARTBEAT_INTERVAL_MS", 30_000);
const timeoutMs = numberFromEnv("HEARTBEAT_TIMEOUT_MS", 10_000);
const redisUrl = process.env.REDIS_URL || undefined;

/** What a client may send. */
type Say = { type: "say"; text: string };
/** Per-connection data, declared once: the route, subprotocols() and json() below carry it. */
type State = { name: string; room: string };

const MAX_TEXT = 4096;
/** Room names longer than this are refused (a topic has at most 1,024 characters). */
const MAX_ROOM = 1000;
const topicOf = (room: string) => `room:${room}`;

/** With REDIS_URL, a Redis backplane: ioredis is loaded only then. */
async function redisBackplane(url: string): Promise<RedisBackplane> {
  const { Redis } = await import("ioredis");
  return new RedisBackplane({ createClient: () => new Redis(url) });
}

const app = new App<State>({
  backplane: redisUrl === undefined ? undefined : await redisBackplane(redisUrl),
  onBackplaneError: (error) => console.error("redis backplane:", error instanceof Error ? error.message : error),
})
  .use(heartbeat({ intervalMs, timeoutMs }))
  .route(
    "/chat/:room",
    authenticate((offered) => offered === token, { from: [fromBearer(), fromQuery("token")], realm: "chat" }),
    {
      upgrade(ctx, next) {
        const name = (ctx.query.get("name") ?? "").trim().slice(0, 32);
        const room = ctx.params.room;
        if (room.length > MAX_ROOM) return ctx.reject(400, `Room name over ${MAX_ROOM} characters`);
        ctx.state = { name: name === "" ? `guest-${ctx.id}` : name, room };
        return next();
      },
    },
    subprotocols({
      "chat.v1": [
        {
          // A connection leaves its topics when it closes.
          open(ctx) {
            ctx.subscribe(topicOf(ctx.state.room));
          },
        },
        json({
          say(ctx, message: Say) {
            if (typeof message.text !== "string" || message.text.length > MAX_TEXT) {
              throw new CloseError(CloseCode.PolicyViolation, `text must be a string of at most ${MAX_TEXT} characters`);
            }
            const said = JSON.stringify({ type: "said", from: ctx.state.name, text: message.text });
            ctx.publish(topicOf(ctx.state.room), said, { self: true });
          },
        }),
      ],
    }),
  )
  .onError((error, ctx) => console.error(`connection ${ctx.id} (${ctx.type}):`, error));

const server = await serve(app, { port, hostname, transport, maxMessageBytes: 64 * 1024 });

console.log(`listening on ws://${hostname}:${server.port}`);
console.log(
  `runtime: ${runtime()}, transport: ${runtime() === "node" ? "raw" : transport}, ` +
    `heartbeat: ${intervalMs}/${timeoutMs} ms, route: /chat/:room, subprotocol: chat.v1` +
    (redisUrl === undefined ? "" : ", rooms shared through Redis"),
);

// Graceful shutdown on SIGTERM and SIGINT: server.close() stops accepting,
// runs the app's `shutdown` phase if it has one (this one has none: the chat
// protocol has no notice for it), delivers every message already queued,
// sends 1001 and waits for the close handshakes (at most shutdownTimeoutMs,
// 10 s); then the Redis link closes and the process exits 0. Clients
// reconnect to the next instance.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, async () => {
    await server.close();
    await app.closeBackplane();
    process.exit(0);
  });
}
