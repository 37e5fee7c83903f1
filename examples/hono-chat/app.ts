// The Hono chat app, runtime-agnostic: `server.ts` serves it on Node, Deno
// or Bun; tests may import it and serve it themselves.
//
//   GET /        the chat page (page.ts)
//   GET /health  `ok`: a plain route on the WebSocket's port
//   GET /ws      the WebSocket: ?room=<room>&name=<name>, subprotocol chat.v1
//
// Protocol, JSON text messages over `chat.v1`:
//
//   ← { "type": "history", "messages": [said…] }       once, right after the open: the room's last 100
//   → { "type": "say", "text": "hello" }
//   ← { "type": "said", "id": 1767225600000, "room": "lobby", "from": "ada", "text": "hello", "at": "2026-01-01T00:00:00.000Z" }
//                                                      to everyone in the room, the sender included
//
// `id` grows with every message (any room), and across restarts: it is the
// time in ms, or the last id + 1 (rooms.ts); clients de-duplicate and order
// by it. A room is the Duplex pub/sub topic `room:<room>`; its history lives
// in this process's memory.
//
// What is refused, and how:
// - a client that does not offer `chat.v1`: 400 before the upgrade (the
//   Duplex `subprotocols()` router);
// - a room or a name over 64 characters: 400 before the upgrade; an empty
//   or missing room is `lobby`, an empty or missing name `guest-<id>`;
// - a binary message: close 1003 (unsupported data);
// - text that is not JSON, or JSON that is not `{ "type": "say", "text": string }`:
//   close 1007 (invalid payload);
// - a text over 4,096 characters: close 1009 (message too big); a message
//   over 64 KiB does not even get parsed: Duplex's engine closes with 1009;
// - a text that is empty or only white space: ignored.
//
// The heartbeat pings every connection every `heartbeatIntervalMs` and drops
// one that shows no life within `heartbeatTimeoutMs` (Deno's native server
// cannot ping: there the heartbeat stands down).
import { Hono } from "hono";
import { logger } from "hono/logger";
import { CloseCode, heartbeat, type Phases, subprotocols } from "../../mod.ts";
import { type HonoContext, upgradeWebSocket, type WebSocketRoute } from "../../runtimes/hono.ts";
import { PAGE } from "./page.ts";
import { Rooms } from "./rooms.ts";

/** The longest room or name accepted, in characters. */
export const MAX_NAME = 64;
/** The longest text accepted, in characters. */
export const MAX_TEXT = 4096;
/** The subprotocol spoken on `/ws`. */
export const PROTOCOL = "chat.v1";

/** Options of {@linkcode createChatApp}. */
export interface ChatOptions {
  /** How often each connection is pinged, in ms. Default 30,000. */
  heartbeatIntervalMs?: number;
  /** How long a pinged connection has to answer, in ms. Default 10,000. */
  heartbeatTimeoutMs?: number;
  /** Log every HTTP request with Hono's `logger()`. Default `false`. */
  log?: boolean;
  /** Messages kept per room. Default 100. */
  historyLimit?: number;
}

/** Who a connection is, set before the upgrade: `ws.raw.state`. */
export interface Member {
  room: string;
  name: string;
}

/** The WebSocket route: Hono middleware with the Duplex app and its connections. */
export type ChatRoute = WebSocketRoute<HonoContext, Member>;

/** The app and its WebSocket route, to serve and to close. */
export interface Chat {
  /** The Hono app: pass `app.fetch` to the runtime's server. */
  readonly app: Hono;
  /** The `/ws` route; `ws.close()` ends every chat connection. */
  readonly ws: ChatRoute;
  /** The rooms' history. */
  readonly rooms: Rooms;
}

const topicOf = (room: string): string => `room:${room}`;

/** Reads and checks `?room=` and `?name=`; refuses with 400 before the upgrade. */
const join: Phases<Member> = {
  upgrade(ctx, next) {
    const room = (ctx.query.get("room") ?? "").trim() || "lobby";
    const name = (ctx.query.get("name") ?? "").trim() || `guest-${ctx.id}`;
    if (room.length > MAX_NAME) return ctx.reject(400, `Bad Request: room is over ${MAX_NAME} characters`);
    if (name.length > MAX_NAME) return ctx.reject(400, `Bad Request: name is over ${MAX_NAME} characters`);
    ctx.state = { room, name };
    return next();
  },
};

/** What a `say` message must look like. */
function textOf(message: unknown): string | undefined {
  if (typeof message !== "object" || message === null) return undefined;
  const { type, text } = message as { type?: unknown; text?: unknown };
  return type === "say" && typeof text === "string" ? text : undefined;
}

/**
 * Builds the chat: the Hono app with `/`, `/health` and `/ws`.
 *
 * @param options Heartbeat timing, logging and history size.
 * @returns The app, its WebSocket route and its rooms.
 */
export function createChatApp(options: ChatOptions = {}): Chat {
  const rooms = new Rooms(options.historyLimit ?? 100);
  const ws = upgradeWebSocket<HonoContext, Member>(() => ({
    onOpen(_event, ws) {
      const { room } = ws.raw.state;
      ws.raw.subscribe(topicOf(room));
      ws.send(JSON.stringify({ type: "history", messages: rooms.history(room) }));
    },
    onMessage(event, ws) {
      const { room, name } = ws.raw.state;
      if (typeof event.data !== "string") return ws.close(CloseCode.UnsupportedData, "Text messages only");
      let message: unknown;
      try {
        message = JSON.parse(event.data);
      } catch {
        return ws.close(CloseCode.InvalidPayload, "Invalid JSON");
      }
      const text = textOf(message);
      if (text === undefined) return ws.close(CloseCode.InvalidPayload, 'Expected {"type":"say","text":string}');
      if (text.length > MAX_TEXT) return ws.close(CloseCode.MessageTooBig, `Text over ${MAX_TEXT} characters`);
      if (text.trim() === "") return;
      ws.raw.publish(topicOf(room), JSON.stringify(rooms.add(room, name, text)), { self: true });
    },
  }), {
    maxMessageBytes: 64 * 1024,
    // Browsers always offer it; the room's history on join shrinks several
    // times. Where Duplex frames (Node); Deno.serve and Bun.serve decline it.
    perMessageDeflate: { threshold: 256 },
    use: [
      heartbeat<Member>({ intervalMs: options.heartbeatIntervalMs, timeoutMs: options.heartbeatTimeoutMs }),
      subprotocols<Member>({ [PROTOCOL]: [] }),
      join,
    ],
  });

  const app = new Hono();
  if (options.log === true) app.use(logger());
  app.get("/", (c) => c.html(PAGE));
  app.get("/health", (c) => c.text("ok"));
  app.get("/ws", ws);
  return { app, ws, rooms };
}
