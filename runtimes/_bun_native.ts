/**
 * Bun's native path (`Bun.serve`): the upgrade and the `websocket` handlers
 * that feed Duplex's native sessions. Shared by `bun.ts` and `hono.ts`.
 *
 * @module
 */

import { CloseCode } from "../core/close_code.ts";
import { ProtocolError, UsageError } from "../core/errors.ts";
import type { ConnectionOptions, Handler } from "../plugins/hooks.ts";
import type { NativeTopicServer } from "../plugins/_native_topics.ts";
import { type NativeSession, type NativeSocketTopics, prepareUpgrade } from "./_native.ts";
import type { ConnectionSet } from "./_registry.ts";
import type { BunServer, BunWebSocket, BunWebSocketHandler } from "./bun.ts";

interface SessionData {
  session: NativeSession<any>;
  protocol: string;
  server: BunServer;
}

/** One topic server per Bun server, so that pub/sub can tell which sessions one `server.publish()` reaches. */
const topicServers = new WeakMap<BunServer, NativeTopicServer | null>();

function topicServer(server: BunServer): NativeTopicServer | undefined {
  let topics = topicServers.get(server);
  if (topics === undefined) {
    const { publish, subscriberCount } = server;
    topics = typeof publish === "function" && typeof subscriberCount === "function"
      ? {
        publish: (topic, data) => void publish.call(server, topic, data, false),
        subscribers: (topic) => subscriberCount.call(server, topic),
      }
      : null;
    topicServers.set(server, topics);
  }
  return topics ?? undefined;
}

/** Bun's topics for one connection: `undefined` when its server or socket lacks them (a stand-in server, say). */
function socketTopics(ws: BunWebSocket, server: BunServer): NativeSocketTopics | undefined {
  const topics = topicServer(server);
  if (topics === undefined || typeof ws.subscribe !== "function" || typeof ws.unsubscribe !== "function" || typeof ws.publish !== "function") {
    return undefined;
  }
  return {
    server: topics,
    subscribe: (topic) => void ws.subscribe!(topic),
    unsubscribe: (topic) => void ws.unsubscribe!(topic),
    publish: (topic, data) => void ws.publish!(topic, data, false),
  };
}

/** Bun reports a protocol failure as 1006 with this reason; the code it sent is the one below. */
const BUN_FAILURES: Record<string, number> = {
  "Received too big message": CloseCode.MessageTooBig,
  "Received invalid UTF-8": CloseCode.InvalidPayload,
};

/** The session, which `open` made the socket's data (in place of the upgrade's {@linkcode SessionData}). */
function sessionOf(ws: BunWebSocket): NativeSession<any> {
  return ws.data as NativeSession<any>;
}

/**
 * The `websocket` object for `Bun.serve`, with Bun's limits set from `options`.
 *
 * @example
 * ```ts ignore
 * Bun.serve({ fetch, websocket: websocketHandler(options) });
 * ```
 */
export function websocketHandler(options: Readonly<ConnectionOptions>): BunWebSocketHandler {
  return {
    maxPayloadLength: Math.min(options.maxMessageBytes ?? 16 * 1024 * 1024, 0xffffffff),
    backpressureLimit: 0,
    idleTimeout: 0,
    sendPings: false,
    perMessageDeflate: false,
    open(ws) {
      ws.binaryType = "uint8array";
      const { session, protocol, server } = ws.data as SessionData;
      // One step fewer on every message, and one object fewer per connection.
      ws.data = session;
      session.attach({
        send: (data) => ws.send(data) !== -1,
        ping: (data) => void ws.ping(data),
        close: (code, reason) => ws.close(code, reason),
        terminate: () => ws.terminate(),
        get bufferedAmount() {
          return ws.getBufferedAmount();
        },
        pause: () => ws.pause(),
        resume: () => ws.resume(),
        drainEvents: true,
        queueCheck: "send",
        topics: socketTopics(ws, server),
      }, protocol);
    },
    message(ws, message) {
      sessionOf(ws).onMessage(message);
    },
    drain(ws) {
      sessionOf(ws).onDrain();
    },
    ping(ws, data) {
      sessionOf(ws).onPing(data);
    },
    pong(ws, data) {
      sessionOf(ws).onPong(data);
    },
    close(ws, code, reason) {
      const session = sessionOf(ws);
      if (code === CloseCode.Abnormal && reason.startsWith("Received ")) {
        // Bun already sent the close frame; report what it sent.
        const sent = BUN_FAILURES[reason] ?? CloseCode.ProtocolError;
        session.fail(new ProtocolError("WS_ERR_NATIVE", sent, reason), true);
      }
      session.onClose(code, reason, code !== CloseCode.Abnormal);
    },
  };
}

/**
 * The upgrade of one request on `Bun.serve`: `undefined` once Bun switched
 * protocols, else the refusal to return. `extraHeaders` go on the 101.
 *
 * @example
 * ```ts ignore
 * const upgrade = nativeUpgrade(handler, options, set);
 * const refusal = await upgrade(request, server);
 * ```
 */
export function nativeUpgrade<S>(
  handler: Handler<S>,
  options: Readonly<ConnectionOptions>,
  set: ConnectionSet,
): (request: Request, server: BunServer) => Promise<Response | undefined> {
  return async (request, server) => {
    const decision = await prepareUpgrade(request, server.requestIP?.(request)?.address ?? "", handler, options, set);
    if (decision.response !== undefined) return decision.response;
    const { session, headers, protocol } = decision;
    // Bun answers the client's first offer unless told otherwise; an empty
    // Sec-WebSocket-Protocol makes it send none (Duplex never echoes an offer).
    const extra: [string, string][] = [...headers, ["Sec-WebSocket-Protocol", protocol]];
    let upgraded = false;
    try {
      upgraded = server.upgrade(request, { data: { session, protocol, server } satisfies SessionData, headers: extra });
    } catch (err) {
      session.failUpgrade(err);
      return new Response("Internal Server Error", { status: 500 });
    }
    if (upgraded) return undefined;
    session.failUpgrade(new UsageError("ERR_UPGRADE_FAILED", "Bun refused to upgrade the request"));
    return new Response("Bad Request", { status: 400 });
  };
}

