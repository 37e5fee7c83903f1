/**
 * The Hono route: `upgradeWebSocket()`, which runs Duplex's pipeline under
 * Hono's `(event, ws)` handlers, and its upgrade on each runtime (Bun's
 * `server.upgrade`, `Deno.upgradeWebSocket`, or a takeover by
 * `injectWebSocket()` on Node). Named by `hono.ts`.
 *
 * @module
 */

import { UsageError } from "../core/errors.ts";
import { hasListToken } from "../core/_http_grammar.ts";
import type { UpgradeRequest } from "../core/handshake.ts";
import { App } from "../plugins/app.ts";
import { isThenable } from "../plugins/_thenable.ts";
import type { EventContext } from "../plugins/context.ts";
import type { CloseInfo, ConnectionOptions, Connection, Handler, UpgradeAnswer } from "../plugins/hooks.ts";
import type { Middleware } from "../plugins/pipeline.ts";
import { nativeUpgrade as bunUpgrade, websocketHandler } from "./_bun_native.ts";
import { hasDenoUpgrade, nativeUpgrade as denoUpgrade } from "./_deno_native.ts";
import { CANNOT_PING } from "../plugins/heartbeat.ts";
import { checkHonoRoute } from "./_check_args.ts";
import { resolveConnectionOptions } from "./_options.ts";
import { ConnectionSet } from "./_registry.ts";
import type { BunServer, BunWebSocketHandler } from "./bun.ts";
import type { DenoServeInfo } from "./deno.ts";
import {
  type HonoContext,
  type UpgradeWebSocketOptions,
  type WebSocketRoute,
  WSContext,
  type WSEvents,
  type WSMessageReceive,
  receivedBlob,
} from "./_hono_types.ts";

// Node 20 has neither `CloseEvent` nor `ErrorEvent`.
const CloseEventImpl: typeof CloseEvent = globalThis.CloseEvent ?? class CloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
  constructor(type: string, init: CloseEventInit = {}) {
    super(type, init);
    this.code = init.code ?? 0;
    this.reason = init.reason ?? "";
    this.wasClean = init.wasClean ?? false;
  }
};
const ErrorEventImpl: typeof ErrorEvent = globalThis.ErrorEvent ?? class ErrorEvent extends Event {
  readonly error: unknown;
  readonly message: string;
  readonly filename = "";
  readonly lineno = 0;
  readonly colno = 0;
  constructor(type: string, init: ErrorEventInit = {}) {
    super(type, init);
    this.error = init.error;
    this.message = init.message ?? "";
  }
} as unknown as typeof ErrorEvent;

function errorEvent(error: unknown): Event {
  return new ErrorEventImpl("error", { error, message: error instanceof Error ? error.message : String(error) });
}

// ---- one request's binding: its Hono context, events and extra headers ----

interface Binding<S> {
  readonly c: HonoContext;
  readonly events: WSEvents<S> | undefined;
  readonly url: URL;
  /** The route's Hono path (`/chat/:room`), for error messages. */
  readonly path: string;
  headers: [string, string][];
  ws?: WSContext<S>;
}

/** Keyed by the connection's parsed request, which every context of it shares. */
const bindings = new WeakMap<UpgradeRequest, Binding<any>>();

/**
 * The Hono context of the request that opened a connection, for Duplex
 * middleware on a Hono route (to read what Hono middleware set, such as
 * `c.get("jwtPayload")`).
 *
 * @param ctx Any Duplex context of the connection.
 * @returns Hono's context, or `undefined` for a connection not opened by a Hono route.
 *
 * @example
 * ```ts
 * import { App } from "@duplex/ws";
 * import { honoContext, upgradeWebSocket } from "@duplex/ws/hono";
 *
 * const app = new App().use({
 *   open(ctx) {
 *     const c = honoContext(ctx) as { get(key: string): unknown } | undefined;
 *     ctx.send(`hello ${String(c?.get("user"))}`);
 *   },
 * });
 * upgradeWebSocket(app);
 * ```
 */
export function honoContext(ctx: { readonly request: UpgradeRequest }): HonoContext | undefined {
  return bindings.get(ctx.request)?.c;
}

/** The route's handler for one request: records the binding, adds Hono's headers. */
class Bound<S> implements Handler<S> {
  readonly #route: Route<S>;
  readonly binding: Binding<S>;

  constructor(route: Route<S>, binding: Binding<S>) {
    this.#route = route;
    this.binding = binding;
  }

  upgrade(ctx: Connection<S>): UpgradeAnswer | Response | void | Promise<UpgradeAnswer | Response | void> {
    bindings.set(ctx.request, this.binding);
    const answer = this.#route.handler.upgrade?.(ctx);
    return isThenable(answer) ? Promise.resolve(answer).then((a) => this.#answer(a)) : this.#answer(answer);
  }

  #answer(answer: UpgradeAnswer | Response | void): UpgradeAnswer | Response {
    if (answer instanceof Response) return answer;
    const own = answer?.headers ?? [];
    const headers = [...this.binding.headers, ...(Array.isArray(own) ? own : Object.entries(own))];
    const protocol = answer?.protocol;
    return protocol === undefined ? { headers } : { headers, protocol };
  }

  open(ctx: Connection<S>): void | Promise<void> {
    return this.#route.handler.open?.(ctx);
  }
  message(ctx: Connection<S>, data: string | Uint8Array, binary: boolean): void | Promise<void> {
    return this.#route.handler.message?.(ctx, data, binary);
  }
  ping(ctx: Connection<S>, data: Uint8Array): void | Promise<void> {
    return this.#route.handler.ping?.(ctx, data);
  }
  pong(ctx: Connection<S>, data: Uint8Array): void | Promise<void> {
    return this.#route.handler.pong?.(ctx, data);
  }
  drain(ctx: Connection<S>): void {
    this.#route.handler.drain?.(ctx);
  }
  get shutdown(): ((ctx: Connection<S>) => void | Promise<void>) | undefined {
    const handler = this.#route.handler;
    const hook = handler.shutdown;
    return hook === undefined ? undefined : (ctx) => hook.call(handler, ctx);
  }
  close(ctx: Connection<S>, info: CloseInfo): void | Promise<void> {
    return this.#route.handler.close?.(ctx, info);
  }
  error(ctx: Connection<S>, error: unknown): void {
    this.#route.handler.error?.(ctx, error);
  }
}

/** A binding with its events and its connection's `WSContext`, made on first use. */
type Live<S> = Binding<S> & { readonly events: WSEvents<S>; readonly ws: WSContext<S> };

/** The binding of an events route's connection (no allocation after the first event). */
function liveOf<S>(ctx: EventContext<S>): Live<S> | undefined {
  const binding = bindings.get(ctx.request) as Binding<S> | undefined;
  if (binding?.events === undefined) return undefined;
  binding.ws ??= new WSContext(ctx.peer, binding.url);
  return binding as Live<S>;
}

function received<S>(data: string | Uint8Array, ws: WSContext<S>): WSMessageReceive {
  if (typeof data === "string") return data;
  if (ws.binaryType === "blob") return receivedBlob(data.slice());
  const { buffer, byteOffset, byteLength } = data;
  const whole = byteOffset === 0 && byteLength === buffer.byteLength && buffer instanceof ArrayBuffer;
  // A view into a larger buffer (a socket chunk) is copied: the handler gets exactly the message.
  return whole ? buffer : buffer.slice(byteOffset, byteOffset + byteLength) as ArrayBuffer;
}

/** What a Hono handler returned: awaited when a promise, else ignored. */
function settle(result: unknown): void | Promise<void> {
  if (isThenable(result)) return Promise.resolve(result).then(() => {});
}

/** The last middleware of an events route: Duplex's events as Hono's. */
function eventsBridge<S>(): Middleware<S> {
  return {
    open(ctx) {
      const live = liveOf(ctx);
      return settle(live?.events.onOpen?.(new Event("open"), live.ws));
    },
    message(ctx) {
      const live = liveOf(ctx);
      if (live?.events.onMessage === undefined) return;
      return settle(live.events.onMessage(new MessageEvent("message", { data: received(ctx.data, live.ws) }), live.ws));
    },
    close(ctx) {
      const live = liveOf(ctx);
      if (live?.events.onClose === undefined) return;
      const event = new CloseEventImpl("close", { code: ctx.code, reason: ctx.reason, wasClean: ctx.wasClean });
      return settle(live.events.onClose(event, live.ws));
    },
    error(ctx) {
      const live = liveOf(ctx);
      return settle(live?.events.onError?.(errorEvent(ctx.error), live.ws));
    },
  };
}

// ---- the route ----

/** The key of `env`'s takeover function, set by `injectWebSocket()` on Node. */
export const kTakeover = Symbol.for("duplex.hono.takeover");

/** What a route hands `injectWebSocket()`: itself and the request's handler. */
export interface Takeover {
  readonly route: Route<any>;
  readonly bound: Bound<any>;
}

/** Hop-by-hop and handshake fields that never go from Hono's response onto a 101. */
export const NOT_ON_101 = new Set([
  "connection",
  "content-length",
  "content-type",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "sec-websocket-accept",
  "sec-websocket-extensions",
  "sec-websocket-protocol",
]);

/** The headers of Hono's response that go onto the 101. */
export function headersFor101(headers: Headers): [string, string][] {
  const out: [string, string][] = [];
  headers.forEach((value, name) => {
    if (NOT_ON_101.has(name) || name === "set-cookie") return;
    out.push([name, value]);
  });
  for (const cookie of headers.getSetCookie()) out.push(["set-cookie", cookie]);
  return out;
}

function upgradeRequired(): Response {
  return new Response("Upgrade Required: this route speaks WebSocket", {
    status: 426,
    headers: { "Content-Type": "text/plain; charset=utf-8", Upgrade: "websocket", "Sec-WebSocket-Version": "13" },
  });
}

function bunServerOf(env: unknown): BunServer | undefined {
  if (env === null || typeof env !== "object") return undefined;
  const server = "server" in env ? (env as { server: unknown }).server : env;
  return typeof (server as BunServer | undefined)?.upgrade === "function" ? server as BunServer : undefined;
}

function denoInfoOf(env: unknown): DenoServeInfo | undefined {
  const addr = (env as { remoteAddr?: { hostname?: unknown } } | undefined)?.remoteAddr;
  return typeof addr?.hostname === "string" ? env as DenoServeInfo : undefined;
}

/** One route: its handler (a Duplex app), options and live connections. */
export class Route<S> {
  readonly handler: Handler<S>;
  readonly app: App<S> | undefined;
  readonly options: Readonly<ConnectionOptions>;
  readonly set: ConnectionSet;
  /** Whether the route serves Hono's inline form (shared, never shut down). */
  inline = false;
  readonly #createEvents: ((c: any) => WSEvents<S> | Promise<WSEvents<S>>) | undefined;
  readonly #report: (error: unknown, route: { readonly path: string }) => void;
  /** The "cannot ping" warnings of the heartbeats in `use`, which Deno.serve cannot serve. */
  readonly #cannotPing: ((message: string) => void)[];

  constructor(
    source: Handler<S> | ((c: any) => WSEvents<S> | Promise<WSEvents<S>>),
    options: UpgradeWebSocketOptions<S>,
  ) {
    checkHonoRoute(source, options);
    const { use, app: appOptions, onError, ...connection } = options;
    this.options = resolveConnectionOptions(connection);
    this.set = new ConnectionSet(this.options);
    const report = onError ?? reportError;
    this.#report = report;
    this.#cannotPing = (use ?? []).flatMap((m) => {
      const warn = typeof m === "object" && m !== null ? (m as { [CANNOT_PING]?: unknown })[CANNOT_PING] : undefined;
      return typeof warn === "function" ? [warn as (message: string) => void] : [];
    });
    if (typeof source === "function") {
      const app = new App<S>(appOptions);
      for (const middleware of use ?? []) app.use(middleware);
      app.use(eventsBridge<S>());
      app.onError((error, ctx) => {
        const route = { path: bindings.get(ctx.request)?.path ?? "?" };
        const live = liveOf(ctx);
        if (live?.events.onError === undefined) return report(error, route);
        try {
          const result = live.events.onError(errorEvent(error), live.ws);
          if (isThenable(result)) Promise.resolve(result).catch((secondary) => report(secondary, route));
        } catch (secondary) {
          report(secondary, route);
        }
      });
      this.handler = app;
      this.app = app;
      this.#createEvents = source;
    } else {
      if (use !== undefined && use.length > 0) {
        throw new UsageError("ERR_INVALID_OPTION", "`use` goes with events; with a Duplex app, add the middleware to the app");
      }
      if (typeof source !== "object" || source === null) {
        throw new UsageError("ERR_INVALID_OPTION", "upgradeWebSocket takes a function that returns the events, or a Duplex app");
      }
      this.handler = source;
      this.app = source instanceof App ? source : undefined;
      this.#createEvents = undefined;
    }
  }

  async handle(c: HonoContext, given?: WSEvents<S>): Promise<Response> {
    if (!hasListToken(c.req.header("upgrade"), "websocket")) return upgradeRequired();
    const path = routePathOf(c);
    let events: WSEvents<S> | undefined = given;
    if (events === undefined && this.#createEvents !== undefined) {
      try {
        events = await this.#createEvents(c);
      } catch (error) {
        // Hono's HTTPException carries its own answer (a 401, say): Hono gives it.
        if (typeof (error as { getResponse?: unknown } | null)?.getResponse === "function") throw error;
        this.#report(error, { path });
        return new Response("Internal Server Error", { status: 500 });
      }
    }
    const binding: Binding<S> = { c, events, url: new URL(c.req.url), path, headers: [] };
    const bound = new Bound(this, binding);
    const env = c.env as Record<PropertyKey, unknown> | undefined;

    const takeover = env?.[kTakeover];
    if (typeof takeover === "function") {
      // injectWebSocket() adds the headers of the app's final answer.
      (takeover as (t: Takeover) => void)({ route: this, bound });
      return new Response(null);
    }
    // Bun and Deno upgrade here: the headers middleware set so far.
    binding.headers = headersFor101(c.res.headers);
    const bunServer = bunServerOf(env);
    if (bunServer !== undefined) {
      const refusal = await bunUpgrade(bound, this.options, this.set)(c.req.raw, withWebsocketHint(bunServer));
      // Bun ignores what the handler returns once it switched protocols.
      return refusal ?? new Response(null);
    }
    if (hasDenoUpgrade()) {
      for (const cannotPing of this.#cannotPing) {
        cannotPing(
          `WebSocket route ${path}: heartbeat() cannot ping on Deno.serve (Deno.upgradeWebSocket's socket has no ping), ` +
            "so it is off on this route; injectWebSocket() on a node:http server runs heartbeat() on Deno too",
        );
      }
      const response = await denoUpgrade(bound, this.options, this.set)(c.req.raw, denoInfoOf(env));
      if (response.status === 101) {
        // Hono copies a response onto its own when middleware touched `c.res`
        // first, and a 101 cannot be copied: set it past Hono's setter.
        Object.defineProperty(c, "res", { value: response, writable: true, configurable: true, enumerable: true });
        c.finalized = true;
      }
      return response;
    }
    throw new UsageError(
      "ERR_UNSUPPORTED",
      "No way to upgrade this request: on Node, call injectWebSocket(server, app) from @duplex/ws/hono; " +
        "on Bun, pass the server to app.fetch (Bun.serve({ fetch: app.fetch, websocket }))",
    );
  }
}


function reportError(error: unknown, route: { readonly path: string }): void {
  console.error(`duplex: WebSocket route ${route.path}:`, error);
}

/** The route's Hono path (`/chat/:room`), or the request's path on a Hono without `routePath`. */
function routePathOf(c: HonoContext): string {
  const routePath = (c.req as { routePath?: unknown }).routePath;
  if (typeof routePath === "string" && routePath !== "" && routePath !== "*" && routePath !== "/*") return routePath;
  return new URL(c.req.url).pathname;
}

const hinted = new WeakMap<BunServer, BunServer>();

/**
 * Bun's server, whose `upgrade` says what to do when `Bun.serve` was given
 * no `websocket` object (Bun's own message names neither this module nor
 * its export).
 */
function withWebsocketHint(server: BunServer): BunServer {
  let wrapped = hinted.get(server);
  if (wrapped === undefined) {
    wrapped = {
      upgrade(request, options) {
        try {
          return server.upgrade(request, options);
        } catch (err) {
          if (!/websocket/i.test(String((err as Error | null)?.message))) throw err;
          throw new UsageError(
            "ERR_NO_WEBSOCKET_HANDLER",
            'Bun.serve has no "websocket" object: import { websocket } from "@duplex/ws/hono" and pass it, ' +
              "Bun.serve({ fetch: app.fetch, websocket }) (or export default { fetch: app.fetch, websocket })",
          );
        }
      },
    };
    if (typeof server.requestIP === "function") wrapped.requestIP = (request) => server.requestIP!(request);
    if (typeof server.publish === "function") wrapped.publish = (topic, data, compress) => server.publish!(topic, data, compress);
    if (typeof server.subscriberCount === "function") wrapped.subscriberCount = (topic) => server.subscriberCount!(topic);
    hinted.set(server, wrapped);
  }
  return wrapped;
}

/**
 * Upgrades a Hono route to WebSocket, Hono's `upgradeWebSocket` with
 * Duplex inside. Three forms:
 *
 * - `upgradeWebSocket((c) => events, options?)`: Hono's own form; `events`
 *   are {@linkcode WSEvents}. `options.use` runs Duplex middleware before
 *   them (auth hooks, `subprotocols()`, `heartbeat()`, limits).
 * - `upgradeWebSocket(duplexApp, options?)`: a Duplex {@linkcode App} (or
 *   any `Handler`) serves the route.
 * - `upgradeWebSocket(c, events, options?)`: Hono's inline form, inside a
 *   handler; it returns the response.
 *
 * A request to the route without `Upgrade: websocket` gets 426. A handshake
 * Duplex refuses gets its 400/426/431, and a refusal by Duplex middleware
 * its own status, before any 101. When the events factory throws, the
 * client gets 500 and the error goes to `options.onError` (by default
 * logged with the route's path); a Hono `HTTPException` it throws is left to
 * Hono, which answers with it.
 *
 * @param source The events factory, or a Duplex app.
 * @param options Connection options, `use`, the app's pub/sub options.
 * @returns The route's Hono middleware.
 * @throws {UsageError} `ERR_INVALID_OPTION` on a bad option.
 *
 * @example Hono's form, with Duplex middleware
 * ```ts
 * import { Hono } from "hono";
 * import { heartbeat } from "@duplex/ws";
 * import { upgradeWebSocket } from "@duplex/ws/hono";
 *
 * const app = new Hono();
 * app.get("/ws", upgradeWebSocket((c) => ({
 *   onOpen(_event, ws) {
 *     ws.send(`hello from ${new URL(c.req.url).pathname}`);
 *   },
 *   onMessage(event, ws) {
 *     ws.send(event.data);
 *   },
 * }), { use: [heartbeat({ intervalMs: 30_000, timeoutMs: 10_000 })] }));
 * ```
 *
 * @example A Duplex app on a Hono route
 * ```ts
 * import { Hono } from "hono";
 * import { App } from "@duplex/ws";
 * import { upgradeWebSocket } from "@duplex/ws/hono";
 *
 * const echo = new App().use({ message: (ctx) => void ctx.send(ctx.data) });
 * new Hono().get("/echo", upgradeWebSocket(echo));
 * ```
 */
export function upgradeWebSocket<C extends HonoContext = HonoContext, S = Record<string, unknown>>(
  source: ((c: C) => WSEvents<S> | Promise<WSEvents<S>>) | App<S>,
  options?: UpgradeWebSocketOptions<S>,
): WebSocketRoute<C, S>;
/**
 * A route served by a plain Duplex `Handler` object (hooks, no `App`): the
 * route has no app, so `app` is `undefined`.
 *
 * @param handler The hooks.
 * @param options Connection options.
 * @returns The route's Hono middleware.
 * @throws {UsageError} `ERR_INVALID_OPTION` on a bad option.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { upgradeWebSocket } from "@duplex/ws/hono";
 *
 * new Hono().get("/echo", upgradeWebSocket({ message: (conn, data) => void conn.send(data) }));
 * ```
 */
export function upgradeWebSocket<C extends HonoContext = HonoContext, S = Record<string, unknown>>(
  handler: Handler<S>,
  options?: UpgradeWebSocketOptions<S>,
): WebSocketRoute<C, S, undefined>;
/**
 * Hono's inline form: upgrades the request from inside a handler. Calls
 * share one route per `options` object, and no route object is returned, so
 * these connections are not counted by `connections` nor closed by any
 * `close()` (nor by `injectWebSocket()`'s): prefer the middleware form.
 *
 * @param c The Hono context.
 * @param events The connection's events.
 * @param options Connection options and `use`.
 * @returns The response to return from the handler.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { upgradeWebSocket } from "@duplex/ws/hono";
 *
 * new Hono().get("/ws", (c) => upgradeWebSocket(c, { onMessage: (event, ws) => ws.send(event.data) }));
 * ```
 */
export function upgradeWebSocket<S = Record<string, unknown>>(
  c: HonoContext,
  events: WSEvents<S>,
  options?: UpgradeWebSocketOptions<S>,
): Promise<Response>;
export function upgradeWebSocket<C extends HonoContext, S>(
  source: ((c: C) => WSEvents<S> | Promise<WSEvents<S>>) | Handler<S> | HonoContext,
  second?: UpgradeWebSocketOptions<S> | WSEvents<S>,
  third?: UpgradeWebSocketOptions<S>,
): WebSocketRoute<C, S, App<S> | undefined> | Promise<Response> {
  if (isHonoContext(source)) {
    try {
      return inlineRoute<S>(third).handle(source, (second ?? {}) as WSEvents<S>);
    } catch (err) {
      return Promise.reject(err);
    }
  }
  const route = new Route<S>(source as Handler<S> | ((c: C) => WSEvents<S>), (second ?? {}) as UpgradeWebSocketOptions<S>);
  const middleware = (c: C, _next: () => Promise<void>) => route.handle(c);
  return Object.defineProperties(middleware, {
    app: { value: route.app, enumerable: true },
    connections: { get: () => route.set.size, enumerable: true },
    close: {
      value: (code = 1001, reason = "Server shutting down") => route.set.shutdown(code, reason),
      enumerable: true,
    },
  }) as unknown as WebSocketRoute<C, S, App<S> | undefined>;
}

// The inline form's routes: one per options object (and one without), so
// that a call per request does not build an app per request.
const inlineRoutes = new WeakMap<object, Route<any>>();
let defaultInlineRoute: Route<any> | undefined;

function inlineRoute<S>(options: UpgradeWebSocketOptions<S> | undefined): Route<S> {
  const events = (): WSEvents<S> => ({}); // the events come with each call
  let route = options === undefined ? defaultInlineRoute : inlineRoutes.get(options);
  if (route === undefined) {
    route = new Route<S>(events, options ?? {});
    route.inline = true;
    if (options === undefined) defaultInlineRoute = route;
    else inlineRoutes.set(options, route);
  }
  return route;
}

function isHonoContext(value: unknown): value is HonoContext {
  return typeof value === "object" && value !== null && "req" in value && "env" in value && "finalized" in value;
}

// ---- Bun ----

/**
 * The `websocket` object for `Bun.serve`, shared by every Duplex route of
 * the app: `Bun.serve({ fetch: app.fetch, websocket })`. Bun refuses
 * messages over 16 MiB (1009) before a route's own `maxMessageBytes`.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { upgradeWebSocket, websocket } from "@duplex/ws/hono";
 *
 * const app = new Hono().get("/ws", upgradeWebSocket(() => ({ onMessage: (event, ws) => ws.send(event.data) })));
 * const options = { fetch: app.fetch, websocket };
 * // Bun.serve(options);
 * ```
 */
export const websocket: BunWebSocketHandler = websocketHandler(resolveConnectionOptions({}));
