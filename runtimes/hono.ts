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
 * - **Node** (`@hono/node-server`): `attach(server, app)` after `serve()`;
 *   Duplex owns the server's `upgrade` listener, runs the Hono app for the
 *   request (its middleware included) and hands the raw socket to the route.
 *
 * Hono middleware that runs before the route (logger, CORS, JWT…) runs for
 * the upgrade request too; a refusal it returns (a 401 from JWT, say) is
 * the answer, and headers it sets reach the 101.
 *
 * @example A chat route on every runtime
 * ```ts
 * import { Hono } from "hono";
 * import { upgradeWebSocket, websocket } from "@duplex/ws/hono";
 *
 * const app = new Hono();
 * app.get("/ws", upgradeWebSocket(() => ({
 *   onMessage(event, ws) {
 *     ws.send(`echo: ${event.data}`);
 *   },
 * })));
 * // Deno: Deno.serve(app.fetch)
 * // Bun:  Bun.serve({ fetch: app.fetch, websocket })
 * // Node: attach(serve({ fetch: app.fetch }), app), with serve from @hono/node-server
 * console.log(typeof websocket.open); // "function"
 * ```
 *
 * @module
 */

import { describeValue } from "../core/_describe.ts";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { ReadyState } from "../core/state.ts";
import { reasonPhrase } from "../core/handshake.ts";
import { UsageError } from "../core/errors.ts";
import type { UpgradeRequest } from "../core/handshake.ts";
import { App, type AppOptions } from "../plugins/app.ts";
import { isThenable } from "../plugins/_thenable.ts";
import type { EventContext, Peer } from "../plugins/context.ts";
import type { CloseInfo, ConnectionOptions, Connection, Handler, UpgradeAnswer } from "../plugins/hooks.ts";
import type { Middleware } from "../plugins/pipeline.ts";
import { nativeUpgrade as bunUpgrade, websocketHandler } from "./_bun_native.ts";
import { hasDenoUpgrade, nativeUpgrade as denoUpgrade } from "./_deno_native.ts";
import { run } from "./_node.ts";
import { ConnectionSet, resolveConnectionOptions } from "./_pump.ts";
import { checkHonoRoute } from "./_check_args.ts";
import type { BunServer, BunWebSocketHandler } from "./bun.ts";
import type { DenoServeInfo } from "./deno.ts";

// ---- Hono's shapes, structurally (re-exporting Hono's types breaks `deno doc --lint`) ----

/**
 * The part of Hono's `Context` the route uses, typed loosely as Hono's own
 * helper types its `c` (`c.get()` is `any`). Hono's `Context` fits it: to
 * get your app's exact types, annotate the parameter,
 * `upgradeWebSocket((c: Context<AppEnv>) => …)`.
 *
 * @example
 * ```ts
 * import type { HonoContext } from "@duplex/ws/hono";
 *
 * const roomOf = (c: HonoContext) => new URL(c.req.url).searchParams.get("room") ?? "lobby";
 * ```
 */
export interface HonoContext {
  /** The request. */
  readonly req: {
    /** The web-standard `Request`. */
    readonly raw: Request;
    /** Its URL. */
    readonly url: string;
    /** A request header, by name. */
    header(name: string): string | undefined;
  };
  /** The runtime's bindings: Bun's server, Deno's serve info, or Node's `{ incoming }`. */
  env: any;
  /** A variable set by earlier middleware (`c.set`), such as `jwtPayload`. */
  get(key: any): any;
  /** Sets a variable. */
  set(key: any, value: any): void;
  /** The response so far. */
  res: Response;
  /** Whether the response is final. */
  finalized: boolean;
}

/**
 * What a message event carries: text as a `string`, binary as an
 * `ArrayBuffer` (or a `Blob` when `ws.binaryType` is `"blob"`), as with
 * Hono's helper.
 *
 * @example
 * ```ts
 * import type { WSMessageReceive } from "@duplex/ws/hono";
 *
 * const size = (data: WSMessageReceive) => typeof data === "string" ? data.length : "size" in data ? data.size : data.byteLength;
 * ```
 */
export type WSMessageReceive = string | ArrayBuffer | Blob;

/**
 * The connection's state as a number, as in the browser's `WebSocket`:
 * 0 connecting, 1 open, 2 closing, 3 closed.
 *
 * @example
 * ```ts
 * import type { WSReadyState } from "@duplex/ws/hono";
 *
 * const open: WSReadyState = 1;
 * ```
 */
export type WSReadyState = 0 | 1 | 2 | 3;

/**
 * A route's event handlers, Hono's `WSEvents`: each gets the event and the
 * connection's {@linkcode WSContext}. They may be `async` (what they
 * return is awaited when it is a promise, and otherwise ignored): Duplex
 * runs one connection's events one at a time, in order. A handler that throws or
 * rejects closes its connection with 1011 and reaches `onError`.
 *
 * @typeParam S The type of `ws.raw.state`.
 *
 * @example
 * ```ts
 * import type { WSEvents } from "@duplex/ws/hono";
 *
 * const events: WSEvents = {
 *   onOpen: (_event, ws) => ws.send("welcome"),
 *   onMessage: (event, ws) => ws.send(event.data as string),
 *   onClose: (event) => console.log("closed", event.code),
 * };
 * ```
 */
export interface WSEvents<S = Record<string, unknown>> {
  /** The connection opened. */
  onOpen?(event: Event, ws: WSContext<S>): unknown;
  /** A whole message arrived. */
  onMessage?(event: MessageEvent<WSMessageReceive>, ws: WSContext<S>): unknown;
  /** The connection closed (`code`, `reason`, `wasClean`). */
  onClose?(event: CloseEvent, ws: WSContext<S>): unknown;
  /** The peer broke the protocol, or a handler threw: the event's `error`. */
  onError?(event: Event, ws: WSContext<S>): unknown;
}

/**
 * Options of {@linkcode upgradeWebSocket}: Duplex's connection options, the
 * Duplex middleware that runs before the events, and the app's pub/sub.
 *
 * Subprotocols are chosen by the server's preference among `protocols` (or
 * by a `subprotocols()` router in `use`); with neither, the answer has none.
 * Unlike Hono's helper, the client's first offer is never echoed.
 *
 * @typeParam S The type of `ws.raw.state`.
 *
 * @example
 * ```ts
 * import { heartbeat } from "@duplex/ws";
 * import type { UpgradeWebSocketOptions } from "@duplex/ws/hono";
 *
 * const options: UpgradeWebSocketOptions = {
 *   protocols: ["chat.v1"],
 *   maxMessageBytes: 64 * 1024,
 *   use: [heartbeat({ intervalMs: 30_000, timeoutMs: 10_000 })],
 * };
 * ```
 */
export interface UpgradeWebSocketOptions<S = Record<string, unknown>> extends ConnectionOptions {
  /** Duplex middleware run before the events: auth hooks, routers, heartbeat, limits. */
  use?: readonly Middleware<S>[];
  /** The route's app options: its pub/sub backplane and slow-subscriber policy. */
  app?: AppOptions;
  /** Where errors go when the events have no `onError`. Default `console.error`. */
  onError?: (error: unknown) => void;
}

/**
 * What {@linkcode upgradeWebSocket} returns: a Hono middleware for the
 * route, with the route's live connections and its shutdown.
 *
 * @typeParam C The Hono context type.
 * @typeParam S The type of `ws.raw.state`.
 *
 * @example
 * ```ts
 * import { upgradeWebSocket } from "@duplex/ws/hono";
 *
 * const chat = upgradeWebSocket(() => ({}));
 * console.log(chat.connections); // 0
 * await chat.close(1001, "going away");
 * ```
 */
export interface WebSocketRoute<C extends HonoContext = HonoContext, S = Record<string, unknown>> {
  /** The Hono middleware: upgrades the request, or answers it. */
  (c: C, next: () => Promise<void>): Promise<Response>;
  /** The route's Duplex app, when it was built from events: `app.publish(topic, data)` reaches its subscribers. */
  readonly app: App<S> | undefined;
  /** Number of live connections on this route. */
  readonly connections: number;
  /** Closes every connection of this route (default 1001) and resolves once all are closed. */
  close(code?: number, reason?: string): Promise<void>;
}

// ---- the connection, as Hono's handlers see it ----

/**
 * One connection, shaped like Hono's `WSContext`: `send`, `close`,
 * `readyState`, `protocol`, `url`, `binaryType`, and `raw`, the Duplex
 * {@linkcode Peer} (topics, state, `bufferedAmount`, `ping`…).
 *
 * @typeParam S The type of `raw.state`.
 *
 * @example
 * ```ts
 * import { upgradeWebSocket } from "@duplex/ws/hono";
 *
 * upgradeWebSocket(() => ({
 *   onOpen(_event, ws) {
 *     ws.raw?.subscribe("news");
 *     ws.send(`hello, you speak ${ws.protocol || "no subprotocol"}`);
 *   },
 * }));
 * ```
 */
export class WSContext<S = Record<string, unknown>> {
  /** The Duplex peer: topics, state, `bufferedAmount`, `ping`, `terminate`… */
  readonly raw: Peer<S>;
  /** The request URL. */
  readonly url: URL | null;
  /** How binary messages arrive: `"arraybuffer"` (default) or `"blob"`. */
  binaryType: BinaryType = "arraybuffer";

  /**
   * Wraps a peer; the route creates one per connection.
   *
   * @param peer The Duplex peer.
   * @param url The request URL.
   */
  constructor(peer: Peer<S>, url: URL | null) {
    this.raw = peer;
    this.url = url;
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  get readyState(): WSReadyState {
    return this.raw.readyState as ReadyState as WSReadyState;
  }

  /** The negotiated subprotocol, `""` for none (typed `string | null` as Hono's `WSContext`). */
  get protocol(): string | null {
    return this.raw.protocol;
  }

  /**
   * Sends a message: a `string` as text, bytes as binary.
   *
   * @param data The message.
   * @param options Hono's send options: `{ compress: false }` sends it uncompressed when permessage-deflate is on.
   * @returns `false` when the output is above the high-water mark (the message is queued).
   * @throws {UsageError} `ERR_NOT_OPEN` when the connection is not open.
   */
  send(data: string | ArrayBuffer | ArrayBufferView, options?: { compress?: boolean }): boolean {
    if (typeof data === "string" || data instanceof Uint8Array) return this.raw.send(data, options);
    if (data instanceof ArrayBuffer) return this.raw.send(new Uint8Array(data), options);
    return this.raw.send(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), options);
  }

  /**
   * Starts the close handshake.
   *
   * @param code The close code. Default 1000.
   * @param reason The reason, at most 123 bytes of UTF-8.
   */
  close(code?: number, reason?: string): void {
    this.raw.close(code, reason);
  }
}

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
  message(ctx: Connection<S>, data: string | Uint8Array): void | Promise<void> {
    return this.#route.handler.message?.(ctx, data);
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
  if (ws.binaryType === "blob") return new Blob([data as Uint8Array<ArrayBuffer>]);
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

const kTakeover = Symbol.for("duplex.hono.takeover");

interface Takeover {
  readonly route: Route<any>;
  readonly bound: Bound<any>;
}

/** Hop-by-hop and handshake fields that never go from Hono's response onto a 101. */
const NOT_ON_101 = new Set([
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

function headersFor101(headers: Headers): [string, string][] {
  const out: [string, string][] = [];
  headers.forEach((value, name) => {
    if (NOT_ON_101.has(name) || name === "set-cookie") return;
    out.push([name, value]);
  });
  for (const cookie of headers.getSetCookie()) out.push(["set-cookie", cookie]);
  return out;
}

function hasToken(value: string | undefined, token: string): boolean {
  return value !== undefined && value.split(",").some((part) => part.trim().toLowerCase() === token);
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

class Route<S> {
  readonly handler: Handler<S>;
  readonly app: App<S> | undefined;
  readonly options: Readonly<ConnectionOptions>;
  readonly set: ConnectionSet;
  /** Whether the route serves Hono's inline form (shared, never shut down). */
  inline = false;
  readonly #createEvents: ((c: any) => WSEvents<S> | Promise<WSEvents<S>>) | undefined;

  constructor(
    source: Handler<S> | ((c: any) => WSEvents<S> | Promise<WSEvents<S>>),
    options: UpgradeWebSocketOptions<S>,
  ) {
    checkHonoRoute(source, options);
    const { use, app: appOptions, onError, ...connection } = options;
    this.options = resolveConnectionOptions(connection);
    this.set = new ConnectionSet(this.options);
    if (typeof source === "function") {
      const app = new App<S>(appOptions);
      for (const middleware of use ?? []) app.use(middleware);
      app.use(eventsBridge<S>());
      const report = onError ?? ((error: unknown) => console.error("duplex: WebSocket route:", error));
      app.onError((error, ctx) => {
        const live = liveOf(ctx);
        if (live?.events.onError === undefined) return report(error);
        try {
          const result = live.events.onError(errorEvent(error), live.ws);
          if (isThenable(result)) Promise.resolve(result).catch(report);
        } catch (secondary) {
          report(secondary);
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
    if (!hasToken(c.req.header("upgrade"), "websocket")) return upgradeRequired();
    const events = given ?? (this.#createEvents === undefined ? undefined : await this.#createEvents(c));
    const binding: Binding<S> = { c, events, url: new URL(c.req.url), headers: [] };
    const bound = new Bound(this, binding);
    const env = c.env as Record<PropertyKey, unknown> | undefined;

    const takeover = env?.[kTakeover];
    if (typeof takeover === "function") {
      // attach() adds the headers of the app's final answer.
      (takeover as (t: Takeover) => void)({ route: this, bound });
      return new Response(null);
    }
    // Bun and Deno upgrade here: the headers middleware set so far.
    binding.headers = headersFor101(c.res.headers);
    const bunServer = bunServerOf(env);
    if (bunServer !== undefined) {
      const refusal = await bunUpgrade(bound, this.options, this.set)(c.req.raw, bunServer);
      // Bun ignores what the handler returns once it switched protocols.
      return refusal ?? new Response(null);
    }
    if (hasDenoUpgrade()) {
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
      "No way to upgrade this request: on Node, call attach(server, app) from @duplex/ws/hono; " +
        "on Bun, pass the server to app.fetch (Bun.serve({ fetch: app.fetch, websocket }))",
    );
  }
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
 * its own status, before any 101.
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
 *     ws.send(event.data as string);
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
  source: ((c: C) => WSEvents<S> | Promise<WSEvents<S>>) | Handler<S>,
  options?: UpgradeWebSocketOptions<S>,
): WebSocketRoute<C, S>;
/**
 * Hono's inline form: upgrades the request from inside a handler. Calls
 * share one route per `options` object, and no route object is returned, so
 * these connections are not counted by `connections` nor closed by any
 * `close()` (nor by `attach()`'s): prefer the middleware form.
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
 * new Hono().get("/ws", (c) => upgradeWebSocket(c, { onMessage: (event, ws) => ws.send(String(event.data)) }));
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
): WebSocketRoute<C, S> | Promise<Response> {
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
  }) as unknown as WebSocketRoute<C, S>;
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
 * const app = new Hono().get("/ws", upgradeWebSocket(() => ({ onMessage: (event, ws) => ws.send(String(event.data)) })));
 * const options = { fetch: app.fetch, websocket };
 * // Bun.serve(options);
 * ```
 */
export const websocket: BunWebSocketHandler = websocketHandler(resolveConnectionOptions({}));

// ---- Node ----

/**
 * The part of a `node:http` server {@linkcode attach} uses; the server that
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
 * What {@linkcode attach} returns: the routes it handed sockets to, and its
 * shutdown.
 *
 * @example
 * ```ts
 * import type { Attached } from "@duplex/ws/hono";
 *
 * async function stop(ws: Attached): Promise<void> {
 *   await ws.close();
 * }
 * ```
 */
export interface Attached {
  /** Live WebSocket connections this server handed to Duplex routes. */
  readonly connections: number;
  /** Removes the `upgrade` listener and closes those connections (default 1001). */
  close(code?: number, reason?: string): Promise<void>;
}

/**
 * A Hono app, as {@linkcode attach} calls it.
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
 * Options of {@linkcode attach}.
 *
 * @example
 * ```ts
 * import type { AttachOptions } from "@duplex/ws/hono";
 *
 * const options: AttachOptions = { handshakeTimeoutMs: 5_000 };
 * ```
 */
export interface AttachOptions {
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
 * import { attach, upgradeWebSocket } from "@duplex/ws/hono";
 *
 * const app = new Hono().get("/ws", upgradeWebSocket(() => ({ onMessage: (event, ws) => ws.send(String(event.data)) })));
 * const server = createServer(); // or: serve({ fetch: app.fetch, port: 8080 }) from @hono/node-server
 * const ws = attach(server, app);
 * await ws.close();
 * ```
 */
export function attach(server: UpgradeServer, app: FetchApp, options: AttachOptions = {}): Attached {
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
