/**
 * Duplex as Hono's `upgradeWebSocket`: Hono's own conventions (`(event, ws)`
 * handlers and a `WSContext`-shaped `ws`), so a route written for Hono's
 * helper moves to Duplex by changing one import, and gains Duplex's
 * pipeline (auth hooks, subprotocol routers, heartbeat, limits, pub/sub).
 *
 * One route, three runtimes:
 * - **Deno**: `Deno.serve(app.fetch)`; nothing else to wire.
 * - **Bun**: `Bun.serve({ fetch: app.fetch, websocket })`, with
 *   {@linkcode websocket} from this module.
 * - **Node** (`@hono/node-server`): `injectWebSocket(server, app)` after `serve()` (the
 *   name `@hono/node-server` gives its own);
 *   Duplex owns the server's `upgrade` listener, runs the Hono app for the
 *   request (its middleware included) and hands the raw socket to the route.
 *
 * Hono middleware that runs before the route (logger, CORS, JWT…) runs for
 * the upgrade request too; a refusal it returns (a 401 from JWT, say) is
 * the answer, and headers it sets reach the 101.
 *
 * Sending to a connection that is closing or closed drops the message and
 * returns `false` (no throw), so a broadcast loop over every `ws` is safe.
 * On `Deno.serve`, `heartbeat()` cannot ping (Deno's socket has no ping):
 * the route says so once, in the log, when it first upgrades there.
 *
 * @example An echo route on every runtime: text back as text, binary as binary
 * ```ts
 * import { Hono } from "hono";
 * import { upgradeWebSocket, websocket } from "@duplex/ws/hono";
 *
 * const app = new Hono();
 * app.get("/ws", upgradeWebSocket(() => ({
 *   onMessage(event, ws) {
 *     ws.send(event.data);
 *   },
 * })));
 * // Deno: Deno.serve(app.fetch)
 * // Bun:  Bun.serve({ fetch: app.fetch, websocket })
 * // Node: injectWebSocket(serve({ fetch: app.fetch }), app), with serve from @hono/node-server
 * console.log(typeof websocket.open); // "function"
 * ```
 *
 * @module
 */

export type {
  HonoContext,
  UpgradeWebSocketOptions,
  WebSocketRoute,
  WSEvents,
  WSMessageReceive,
  WSReadyState,
} from "./_hono_types.ts";
export { WSContext } from "./_hono_types.ts";
export { honoContext, upgradeWebSocket, websocket } from "./_hono_route.ts";
export type { FetchApp, InjectedWebSocket, InjectWebSocketOptions, UpgradeServer } from "./_hono_node.ts";
export { injectWebSocket } from "./_hono_node.ts";
export type { BunWebSocket, BunWebSocketHandler } from "./bun.ts";
