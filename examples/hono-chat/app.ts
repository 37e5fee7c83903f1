// The Hono chat app, runtime-agnostic: `server.ts` serves it on Node, Deno
// or Bun; tests may import it and serve it themselves.
//
//   GET /           the chat page (page.ts)
//   GET /client.js  the Duplex client for the page, bundled from client/mod.ts (client_bundle.ts)
//   GET /health     `ok`: a plain route on the WebSocket's port
//   GET /ws         the WebSocket: ?name=<name> (and ?room=<room> for chat.v1)
//   GET /metrics    Prometheus text of the WebSocket's metrics   } only with `adminToken`, which
//   /admin          the live dashboard (@duplex/ws/dashboard)    } both need (bearer or ?token=)
//
// A room is the recoverable topic `room:<room>` of Duplex's reliable layer
// (`reliable()`, protocol `duplex.v1`, see PROTOCOL.md): its history is the
// topic's log, the last 100 messages of each room in this process's memory.
// The page subscribes from the start of that history and publishes through
// the client; after its network drops, the client resubscribes from the
// last message it showed and gets every message it missed, once.
//
// Each message is stored as JSON text, stamped by the server with its
// sender's name (from `?name=` at the upgrade) and time:
//
//   { "id": 1767225600000, "from": "ada", "text": "hello", "at": "2026-01-01T00:00:00.000Z" }
//
// A client publishes the bare text (at most 4,096 characters, not blank) on
// `room:<room>` (a room name has 1 to 64 characters); anything else is
// answered `error forbidden`. `id` grows with every message of any room and
// across restarts (the time in ms, or the last id + 1): the order of the
// older `chat.v1` clients.
//
// Besides the rooms' topics, duplex.v1 clients get the chat's contract
// (contract.ts, served with `serveContract`): the calls `history` (a room's
// last messages) and `members` (who is in a room), the client event `typing`
// (passed on to the others in the sender's room as the server event
// `typing`), and the server event `presence` (the room's names, sent to its
// duplex.v1 members after every join and leave). A duplex.v1 client is in
// the room of its `?room=` (the page sets it), chat.v1 clients count too.
//
// The older protocol, `chat.v1`, still works on `/ws?room=<room>&name=<name>`,
// bridged onto the same topics:
//
//   ← { "type": "history", "messages": [said…] }       once, right after the open: the room's history
//   → { "type": "say", "text": "hello" }                published on the room's topic
//   ← { "type": "said", "id", "room", "from", "text", "at" }   every message of the room, the sender's included
//
// chat.v1 refuses a binary message with 1003, text that is not `{ "type":
// "say", "text": string }` with 1007, a text over 4,096 characters with 1009;
// a message over 64 KiB is refused by Duplex's engine with 1009. A client
// offering neither subprotocol gets 400 before the upgrade, and so does a
// room or name over 64 characters.
//
// The heartbeat pings every connection every `heartbeatIntervalMs` and drops
// one that shows no life within `heartbeatTimeoutMs` (Deno's native server
// cannot ping: there the heartbeat stands down; the page's client has its
// own, application-level heartbeat).
import { Hono } from "hono";
import { logger } from "hono/logger";
import {
  CloseCode,
  type ContractServer,
  heartbeat,
  type LogEntry,
  MemoryTopicLog,
  type Peer,
  type Phases,
  reliable,
  type Reliable,
  serveContract,
  subprotocols,
} from "../../mod.ts";
import { observe } from "../../mod.ts";
import { bearerToken, dashboard, protect } from "../../plugins/dashboard.ts";
import { type HonoContext, upgradeWebSocket, type WebSocketRoute, type WSContext } from "../../runtimes/hono.ts";
import { chat, MAX_NAME } from "./contract.ts";
import { PAGE } from "./page.ts";

export { MAX_NAME };
/** The longest text accepted, in characters. */
export const MAX_TEXT = 4096;
/** The older subprotocol, still spoken on `/ws`. */
export const PROTOCOL = "chat.v1";
/** The most messages a `history` call answers with. */
const MAX_HISTORY = 100;
/** The prefix of a room's topic. */
export const ROOM_PREFIX = "room:";

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
  /** The client module served at `/client.js` (see client_bundle.ts); without it, `/client.js` is 404. */
  clientJs?: string;
  /**
   * The token of `/admin` (the dashboard) and `/metrics` (Prometheus text),
   * as `Authorization: Bearer <token>` or `?token=<token>`; without it,
   * neither is mounted (404).
   */
  adminToken?: string;
}

/** Who a connection is, set before the upgrade: `ws.raw.state`. */
export interface Member {
  room: string;
  name: string;
}

/** A stored message, as JSON text in the room's topic. */
export interface Message {
  readonly id: number;
  readonly from: string;
  readonly text: string;
  readonly at: string;
}

/** The WebSocket route: Hono middleware with the Duplex app and its connections. */
export type ChatRoute = WebSocketRoute<HonoContext, Member>;

/** The app and its WebSocket route, to serve and to close. */
export interface Chat {
  /** The Hono app: pass `app.fetch` to the runtime's server. */
  readonly app: Hono;
  /** The `/ws` route; `ws.close()` ends every chat connection. */
  readonly ws: ChatRoute;
  /** The reliable layer: rooms are its topics. */
  readonly live: Reliable<Member>;
  /** The chat's contract (contract.ts), served to duplex.v1 clients. */
  readonly served: ContractServer<typeof chat, Member>;
  /** The rooms' history. */
  readonly log: MemoryTopicLog;
}

const topicOf = (room: string): string => `${ROOM_PREFIX}${room}`;

/** The room of a topic, when it is a room's. */
function roomOf(topic: string): string | undefined {
  if (!topic.startsWith(ROOM_PREFIX)) return undefined;
  const room = topic.slice(ROOM_PREFIX.length);
  return room !== "" && room.length <= MAX_NAME ? room : undefined;
}

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

/** The stored message, or undefined for data that is not one. */
function parseMessage(data: string | Uint8Array): Message | undefined {
  if (typeof data !== "string") return undefined;
  try {
    const m = JSON.parse(data) as Message;
    return typeof m === "object" && m !== null && typeof m.id === "number" ? m : undefined;
  } catch {
    return undefined;
  }
}

/** A chat.v1 member of a room: what it has been sent so far. */
interface Legacy {
  readonly ws: WSContext<Member>;
  /** The offset of the last message sent; undefined while its history is read (live ones wait in `held`). */
  last?: { epoch: string; offset: number };
  held: LogEntry[];
}

/**
 * Builds the chat: the Hono app with `/`, `/client.js`, `/health` and `/ws`.
 *
 * @param options Heartbeat timing, logging, history size and the client module.
 * @returns The app, its WebSocket route, the reliable layer and its log.
 */
export function createChatApp(options: ChatOptions = {}): Chat {
  const log = new MemoryTopicLog({ maxMessages: options.historyLimit ?? 100 });
  let lastId = 0;
  /** Stamps a text with its sender and time: what the room's topic stores. */
  const stamp = (from: string, text: string, now = new Date()): string => {
    const id = lastId = Math.max(lastId + 1, now.getTime());
    return JSON.stringify({ id, from, text, at: now.toISOString() } satisfies Message);
  };

  const live = reliable<Member>({
    log,
    authorize: {
      subscribe: (_ctx, topic) => roomOf(topic) !== undefined,
      publish(ctx, topic, data) {
        if (roomOf(topic) === undefined || typeof data !== "string") return false;
        if (data.length > MAX_TEXT || data.trim() === "") return false;
        return stamp(ctx.state.name, data);
      },
    },
  });

  // chat.v1 members, by room; each room with members has one watch on its topic.
  const rooms = new Map<string, { members: Set<Legacy>; unwatch: () => void }>();
  const said = (room: string, entry: LogEntry) => {
    const m = parseMessage(entry.data);
    return m && JSON.stringify({ type: "said", id: m.id, room, from: m.from, text: m.text, at: m.at });
  };
  const deliver = (room: string, member: Legacy, entry: LogEntry) => {
    const last = member.last!;
    if (entry.epoch === last.epoch && entry.offset <= last.offset) return;
    member.last = { epoch: entry.epoch, offset: entry.offset };
    const text = said(room, entry);
    if (text !== undefined) member.ws.send(text);
  };
  const enter = async (member: Legacy) => {
    const { room } = member.ws.raw.state;
    let joined = rooms.get(room);
    if (joined === undefined) {
      const members = new Set<Legacy>();
      const unwatch = log.watch(topicOf(room), (entry) => {
        for (const m of members) {
          if (m.last === undefined) m.held.push(entry);
          else deliver(room, m, entry);
        }
      });
      rooms.set(room, joined = { members, unwatch });
    }
    joined.members.add(member);
    announce(room);
    const read = await log.read(topicOf(room), "start", options.historyLimit ?? 100);
    const messages = read.entries.map((e) => parseMessage(e.data)).filter((m) => m !== undefined)
      .map((m) => ({ type: "said", id: m.id, room, from: m.from, text: m.text, at: m.at }));
    member.ws.send(JSON.stringify({ type: "history", messages }));
    member.last = { epoch: read.epoch, offset: read.last };
    for (const entry of member.held.splice(0)) deliver(room, member, entry);
  };
  const leave = (member: Legacy) => {
    const { room } = member.ws.raw.state;
    const joined = rooms.get(room);
    if (joined === undefined || !joined.members.delete(member)) return;
    if (joined.members.size === 0) {
      joined.unwatch();
      rooms.delete(room);
    }
    announce(room);
  };
  const legacy = new WeakMap<WSContext<Member>, Legacy>();
  // First, so it sees every upgrade, the refused ones too; with the rooms' subscribers and recoveries.
  const obs = observe<Member>({ reliable: live });

  // duplex.v1 connections by room (their `?room=`), for presence and typing.
  const present = new Map<string, Set<Peer<Member>>>();
  const namesIn = (room: string): string[] => {
    const names = new Set<string>();
    for (const peer of present.get(room) ?? []) names.add(peer.state.name);
    for (const m of rooms.get(room)?.members ?? []) names.add(m.ws.raw.state.name);
    return [...names].sort();
  };
  const announce = (room: string) => {
    const peers = present.get(room);
    if (peers !== undefined) served.emit(peers, "presence", { room, names: namesIn(room) });
  };
  const served = serveContract<typeof chat, Member>(chat, {
    calls: {
      async history({ room, limit = MAX_HISTORY }) {
        const read = await log.read(topicOf(room), "start", options.historyLimit ?? 100);
        return read.entries.map((e) => parseMessage(e.data)).filter((m) => m !== undefined).slice(-limit);
      },
      members: ({ room }) => namesIn(room),
    },
    events: {
      // Passed on to the others in the sender's own room only.
      typing({ room }, ctx) {
        if (room !== ctx.state.room) return;
        const others = [...present.get(room) ?? []].filter((peer) => peer.id !== ctx.peer.id);
        served.emit(others, "typing", { room, name: ctx.state.name });
      },
    },
  });
  const presence: Phases<Member> = {
    open(ctx, next) {
      if (ctx.protocol === "duplex.v1") {
        const { room } = ctx.state;
        let peers = present.get(room);
        if (peers === undefined) present.set(room, peers = new Set());
        peers.add(ctx.peer);
        announce(room);
      }
      return next();
    },
    close(ctx, next) {
      const { room } = ctx.state;
      const peers = present.get(room);
      if (peers?.delete(ctx.peer)) {
        if (peers.size === 0) present.delete(room);
        announce(room);
      }
      return next();
    },
  };

  const ws = upgradeWebSocket<HonoContext, Member>(() => ({
    // duplex.v1 connections are the reliable layer's: only chat.v1 ones get here.
    async onOpen(_event, ws) {
      if (ws.protocol !== PROTOCOL) return;
      const member: Legacy = { ws, held: [] };
      legacy.set(ws, member);
      await enter(member);
    },
    async onMessage(event, ws) {
      if (ws.protocol !== PROTOCOL) return;
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
      await live.publish(topicOf(room), stamp(name, text));
    },
    onClose(_event, ws) {
      const member = legacy.get(ws);
      if (member !== undefined) leave(member);
    },
  }), {
    maxMessageBytes: 64 * 1024,
    // Browsers always offer it; a room's history on (re)join shrinks several
    // times. Where Duplex frames (Node); Deno.serve and Bun.serve decline it.
    perMessageDeflate: { threshold: 256 },
    use: [
      obs,
      heartbeat<Member>({ intervalMs: options.heartbeatIntervalMs, timeoutMs: options.heartbeatTimeoutMs }),
      join,
      // Chooses duplex.v1 when offered, and handles those connections:
      // topics (reliable), calls and events (the contract), presence.
      live,
      served,
      presence,
      // The rest must speak chat.v1 (400 otherwise).
      subprotocols<Member>({ "duplex.v1": [], [PROTOCOL]: [] }),
    ],
  });

  const app = new Hono();
  if (options.log === true) app.use(logger());
  app.get("/", (c) => c.html(PAGE));
  const clientJs = options.clientJs;
  if (clientJs !== undefined) {
    app.get("/client.js", (c) => c.body(clientJs, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-cache" }));
  }
  app.get("/health", (c) => c.text("ok"));
  app.get("/ws", ws);
  if (options.adminToken !== undefined) {
    const authorize = bearerToken(options.adminToken);
    const admin = dashboard({
      observe: obs,
      authorize,
      title: "Duplex chat: dashboard",
      onAction: (a) => console.log(`admin: ${a.type} ${a.id} with ${a.code} (${a.reason}): ${a.closed ? "done" : "no such connection"}`),
    });
    const metrics = protect(obs.prometheus, authorize);
    app.all("/admin/*", (c) => admin(c.req.raw));
    app.all("/metrics", (c) => metrics(c.req.raw));
  }
  return { app, ws, live, served, log };
}
