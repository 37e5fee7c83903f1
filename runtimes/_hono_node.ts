/**
 * Node's side of the Hono integration: `injectWebSocket()` owns a
 * `node:http` server's `upgrade` listener, runs the Hono app for each
 * upgrade request and hands the raw socket to the route that took it.
 * Named by `hono.ts`.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { describeValue } from "../core/_describe.ts";
import { reasonPhrase } from "../core/_http_status.ts";
import { UsageError } from "../core/errors.ts";
import { run } from "./_node.ts";
import { headersFor101, kTakeover, NOT_ON_101, type Route, type Takeover } from "./_hono_route.ts";

/**
 * The part of a `node:http` server {@linkcode injectWebSocket} uses; the server that
 * `serve()` from `@hono/node-server` returns fits it.
 *
 * @example
 * ```ts
 * import { createServer } from "node:http";
 * import type { UpgradeServer } from "@duplex/ws/hono";
 *
 * const server: UpgradeServer = createServer();
 * ```
 */
export interface UpgradeServer {
  /** Adds a listener. */
  on(event: "upgrade", listener: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): unknown;
  /** Removes it. */
  off(event: "upgrade", listener: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): unknown;
  /** How many listeners an event has. */
  listenerCount(event: "upgrade"): number;
}

/**
 * What {@linkcode injectWebSocket} returns: the routes it handed sockets to, and its
 * shutdown.
 *
 * @example
 * ```ts
 * import type { InjectedWebSocket } from "@duplex/ws/hono";
 *
 * async function stop(ws: InjectedWebSocket): Promise<void> {
 *   await ws.close();
 * }
 * ```
 */
export interface InjectedWebSocket {
  /** Live WebSocket connections this server handed to Duplex routes. */
  readonly connections: number;
  /** Removes the `upgrade` listener and closes those connections (default 1001). */
  close(code?: number, reason?: string): Promise<void>;
}

/**
 * A Hono app, as {@linkcode injectWebSocket} calls it.
 *
 * @example
 * ```ts
 * import type { FetchApp } from "@duplex/ws/hono";
 *
 * const app: FetchApp = { fetch: () => new Response("hello") };
 * ```
 */
export interface FetchApp {
  /** Answers a request. */
  fetch(request: Request, env?: any): Response | Promise<Response>;
}

function toRequest(req: IncomingMessage): Request {
  const socket = req.socket as { encrypted?: boolean } | undefined;
  const host = typeof req.headers.host === "string" && req.headers.host !== "" ? req.headers.host : "localhost";
  const url = new URL(req.url ?? "/", `${socket?.encrypted ? "https" : "http"}://${host}`);
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.append(name, value);
  }
  return new Request(url, { method: req.method ?? "GET", headers });
}

async function writeResponse(socket: Duplex, response: Response): Promise<void> {
  const body = new Uint8Array(await response.arrayBuffer());
  if (socket.destroyed) return;
  const lines = [`HTTP/1.1 ${response.status} ${reasonPhrase(response.status) ?? response.statusText}`];
  response.headers.forEach((value, name) => {
    if (name === "set-cookie" || NOT_ON_101.has(name) && name !== "content-type") return;
    lines.push(`${name}: ${value}`);
  });
  for (const cookie of response.headers.getSetCookie()) lines.push(`set-cookie: ${cookie}`);
  lines.push(`content-length: ${body.byteLength}`, "connection: close", "", "");
  socket.write(lines.join("\r\n"));
  socket.end(body);
}

function ignore(): void {}

class AppTimeout extends Error {}

/**
 * Options of {@linkcode injectWebSocket}.
 *
 * @example
 * ```ts
 * import type { InjectWebSocketOptions } from "@duplex/ws/hono";
 *
 * const options: InjectWebSocketOptions = { handshakeTimeoutMs: 5_000 };
 * ```
 */
export interface InjectWebSocketOptions {
  /**
   * How long the Hono app may take to answer an upgrade request (its
   * middleware and the route), in ms; past it the client gets 503 and the
   * socket is closed. Default 10,000.
   */
  handshakeTimeoutMs?: number;
}

/**
 * Serves a Hono app's WebSocket routes on a `node:http` server, such as the
 * one `serve()` from `@hono/node-server` returns. Duplex owns the server's
 * `upgrade` listener: it runs the Hono app for each upgrade request (its
 * middleware included), and hands the raw socket to the Duplex route the
 * request reached. A request that no route upgrades gets the app's own
 * answer (a 401 from auth middleware, a 404…). Other requests stay with the
 * server.
 *
 * @param server The HTTP server.
 * @param app The Hono app (anything with `fetch`).
 * @param options How long the app may take to answer.
 * @returns The listener's handle, with `close()` for shutdown.
 * @throws {UsageError} `ERR_INVALID_OPTION` on a bad option.
 *
 * @example
 * ```ts
 * import { createServer } from "node:http";
 * import { Hono } from "hono";
 * import { injectWebSocket, upgradeWebSocket } from "@duplex/ws/hono";
 *
 * const app = new Hono().get("/ws", upgradeWebSocket(() => ({ onMessage: (event, ws) => ws.send(event.data) })));
 * const server = createServer(); // or: serve({ fetch: app.fetch, port: 8080 }) from @hono/node-server
 * const ws = injectWebSocket(server, app);
 * await ws.close();
 * ```
 */
export function injectWebSocket(server: UpgradeServer, app: FetchApp, options: InjectWebSocketOptions = {}): InjectedWebSocket {
  const timeoutMs = options.handshakeTimeoutMs ?? 10_000;
  if (!(timeoutMs > 0)) throw new UsageError("ERR_INVALID_OPTION", `Invalid option: handshakeTimeoutMs must be a positive number, got ${describeValue(timeoutMs)}`);
  const routes = new Set<Route<any>>();
  const listener = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    void handleUpgrade(req, socket, head);
  };
  const handleUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    socket.on("error", ignore);
    let taken: Takeover | undefined;
    let request: Request;
    try {
      request = toRequest(req);
    } catch {
      // A header value or target the Fetch API refuses.
      await writeResponse(socket, new Response("Bad Request", { status: 400 })).catch(() => socket.destroy());
      return;
    }
    const env = {
      incoming: req,
      outgoing: undefined,
      [kTakeover]: (takeover: Takeover) => {
        taken = takeover;
      },
    };
    let response: Response;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      response = await Promise.race([
        app.fetch(request, env),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new AppTimeout()), timeoutMs);
        }),
      ]);
    } catch (err) {
      if (err instanceof AppTimeout) {
        response = new Response("Service Unavailable: the app did not answer the upgrade in time", { status: 503 });
      } else {
        console.error("duplex: the Hono app threw on an upgrade request:", err);
        response = new Response("Internal Server Error", { status: 500 });
      }
      // A route that takes the socket over after this point finds it answered.
      taken = undefined;
      env[kTakeover] = () => {};
    } finally {
      clearTimeout(timer);
    }
    if (socket.destroyed) return;
    // The app's final answer decides: middleware after the route may still
    // have turned the request down (or failed, a 500).
    if (taken !== undefined && response.status < 300) {
      taken.bound.binding.headers = headersFor101(response.headers);
      // Only routes with live connections are kept (close() reaches them).
      for (const route of routes) if (route.set.size === 0) routes.delete(route);
      // The inline form's routes are shared by every server: never shut down by one.
      if (!taken.route.inline) routes.add(taken.route);
      run(socket, taken.bound, taken.route.options, taken.route.set, req, head);
      return;
    }
    if (server.listenerCount("upgrade") > 1) return; // another listener may take it
    try {
      await writeResponse(socket, response);
    } catch {
      socket.destroy();
    }
  };
  server.on("upgrade", listener);
  return {
    get connections() {
      let n = 0;
      for (const route of routes) n += route.set.size;
      return n;
    },
    async close(code = 1001, reason = "Server shutting down") {
      server.off("upgrade", listener);
      await Promise.all([...routes].map((route) => route.set.shutdown(code, reason)));
    },
  };
}
