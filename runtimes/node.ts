/**
 * The Node adapter: Duplex on `node:net` / `node:tls` sockets, standalone or
 * behind an existing `node:http` / `node:https` server's `upgrade` event.
 * The same code runs on Deno and Bun through their `node:*` modules.
 *
 * @example A standalone server
 * ```ts
 * import { serve } from "@duplex/ws/node";
 *
 * const server = await serve({ message: (ctx, data) => void ctx.send(data) }, { port: 8080 });
 * console.log(`listening on ${server.url}`);
 * ```
 *
 * @example Next to HTTP routes on one port
 * ```ts
 * import { createServer } from "node:http";
 * import { attach } from "@duplex/ws/node";
 *
 * const http = createServer((req, res) => res.end("hello"));
 * attach(http, { message: (ctx, data) => void ctx.send(data) });
 * http.listen(8080);
 * ```
 *
 * @module
 */

import type { IncomingMessage, Server as HttpServer } from "node:http";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { createServer as createTlsServer, type TlsOptions } from "node:tls";
import type { Duplex } from "node:stream";
import { CloseCode } from "../core/close_code.ts";
import type { ConnectionOptions, Handler } from "../plugins/hooks.ts";
import { ConnectionSet } from "./_registry.ts";
import { resolveConnectionOptions } from "./_options.ts";
import { run } from "./_node.ts";
import { makeServer, type Server, serveSetup } from "./_server.ts";
import { checkServeArgs, CONNECTION_OPTIONS } from "./_check_args.ts";

export type { Server };

/**
 * Options of {@linkcode serve}: where to listen, TLS, and the connection
 * options (limits, subprotocols, timeouts).
 *
 * @example
 * ```ts
 * import type { ServeOptions } from "@duplex/ws/node";
 *
 * const options: ServeOptions = { port: 0, hostname: "127.0.0.1", protocols: ["chat.v1"] };
 * ```
 */
export interface ServeOptions extends ConnectionOptions {
  /** Port to listen on; 0 picks a free one. Default 8080. */
  port?: number;
  /** Address to listen on. Default `"127.0.0.1"`. */
  hostname?: string;
  /** Serve `wss://`: the `node:tls` server options (at least `cert` and `key`). */
  tls?: TlsOptions;
}

/**
 * Takes over sockets that a `node:http` server upgraded.
 *
 * @example
 * ```ts
 * import { createServer } from "node:http";
 * import { upgradeHandler } from "@duplex/ws/node";
 *
 * const ws = upgradeHandler({ message: (ctx, data) => void ctx.send(data) });
 * const http = createServer();
 * http.on("upgrade", (req, socket, head) => {
 *   if (req.url === "/ws") ws.handleUpgrade(req, socket, head);
 *   else socket.destroy();
 * });
 * ```
 */
export interface UpgradeHandler {
  /** Runs the WebSocket handshake and the connection on an upgraded socket. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Uint8Array): void;
  /** Number of live connections. */
  readonly connections: number;
  /** Closes every connection (default code 1001) and resolves once every socket is closed. */
  close(code?: number, reason?: string): Promise<void>;
}

/**
 * Creates an upgrade handler for sockets that a `node:http` or `node:https`
 * server hands over in its `upgrade` event. Use {@linkcode attach} to
 * register it on every upgrade, or call `handleUpgrade` yourself to route.
 *
 * @param handler The application's hooks.
 * @param options Limits, subprotocols, timeouts.
 * @returns The handler, with `close()` for shutdown.
 *
 * @example
 * ```ts
 * import { upgradeHandler } from "@duplex/ws/node";
 *
 * const ws = upgradeHandler({ open: (ctx) => void ctx.send("welcome") });
 * console.log(ws.connections); // 0
 * ```
 */
export function upgradeHandler<S = Record<string, unknown>>(
  handler: Handler<S>,
  options: ConnectionOptions = {},
): UpgradeHandler {
  checkServeArgs(handler, options, "upgradeHandler()", CONNECTION_OPTIONS);
  const resolved = resolveConnectionOptions(options);
  const set = new ConnectionSet(resolved);
  return {
    handleUpgrade(req, socket, head) {
      run(socket, handler, resolved, set, req, head);
    },
    get connections() {
      return set.size;
    },
    close(code = CloseCode.GoingAway, reason = "Server shutting down") {
      return set.shutdown(code, reason);
    },
  };
}

/**
 * Serves WebSockets from an existing `node:http` or `node:https` server:
 * every `upgrade` request goes to Duplex, other requests stay with the
 * server's own handler.
 *
 * @param server The HTTP server.
 * @param handler The application's hooks.
 * @param options Limits, subprotocols, timeouts.
 * @returns The upgrade handler; its `close()` also removes the listener.
 *
 * @example
 * ```ts
 * import { createServer } from "node:http";
 * import { attach } from "@duplex/ws/node";
 *
 * const http = createServer((req, res) => res.end("ok"));
 * const ws = attach(http, { message: (ctx, data) => void ctx.send(data) });
 * ```
 */
export function attach<S = Record<string, unknown>>(
  server: HttpServer,
  handler: Handler<S>,
  options: ConnectionOptions = {},
): UpgradeHandler {
  checkServeArgs(handler, options, "attach()", CONNECTION_OPTIONS);
  const ws = upgradeHandler(handler, options);
  const listener = (req: IncomingMessage, socket: Duplex, head: Uint8Array) => ws.handleUpgrade(req, socket, head);
  server.on("upgrade", listener);
  return {
    handleUpgrade: ws.handleUpgrade,
    get connections() {
      return ws.connections;
    },
    close(code, reason) {
      server.off("upgrade", listener);
      return ws.close(code, reason);
    },
  };
}

/**
 * Starts a standalone WebSocket server on `node:net` (or `node:tls` with
 * `tls`). Duplex parses the HTTP handshake itself; plain HTTP requests get
 * `426 Upgrade Required`.
 *
 * @param handler The application's hooks.
 * @param options Port, hostname, TLS, limits, subprotocols, timeouts.
 * @returns The server, once it listens.
 *
 * @example
 * ```ts
 * import { serve } from "@duplex/ws/node";
 *
 * const server = await serve({
 *   open(ctx) {
 *     ctx.send("hello");
 *   },
 *   message(ctx, data) {
 *     ctx.send(data);
 *   },
 * }, { port: 8080 });
 * console.log(`listening on ${server.url}`);
 * ```
 */
export async function serve<S = Record<string, unknown>>(
  handler: Handler<S>,
  options: ServeOptions = {},
): Promise<Server> {
  checkServeArgs(handler, options, "serve()");
  const { port, hostname, tls, connection, set } = serveSetup(options);
  const onSocket = (socket: Socket) => run(socket, handler, connection, set);
  let server: NetServer;
  if (tls) {
    server = createTlsServer({ ...tls, allowHalfOpen: true });
    server.on("secureConnection", onSocket);
    server.on("tlsClientError", () => {
      // A failed TLS handshake: the socket is already destroyed.
    });
  } else {
    server = createNetServer({ allowHalfOpen: true }, onSocket);
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => {
      server.off("error", reject);
      // An error on the listening socket after this point (rare: accept
      // failures are mostly absorbed by libuv) must not crash the process.
      server.on("error", (err) => console.error("duplex: listening socket error:", err));
      resolve();
    });
  });
  const address = server.address();
  const boundPort = typeof address === "object" && address !== null ? address.port : port;
  return makeServer(
    { port: boundPort, hostname, secure: tls !== undefined },
    set,
    () => new Promise<void>((resolve) => server.close(() => resolve())),
  );
}
