/**
 * What middleware sees: the {@linkcode Peer} (one per connection, for its
 * whole life) and one small context per event that carries the event's
 * data and acts on the peer.
 *
 * @module
 */

import type { MessageData } from "../core/engine.ts";
import type { PreparedMessage } from "../core/prepared.ts";
import type { UpgradeRequest } from "../core/handshake.ts";
import type { ReadyState } from "../core/state.ts";
import type { DeflateParams } from "../core/deflate.ts";
import type { Clock, CloseInfo, Connection, SendOptions } from "./hooks.ts";
import { HttpError } from "./errors.ts";
import { requestField } from "../core/_fields.ts";
import type { Params } from "./params.ts";

/**
 * One connection of an {@linkcode App}: the adapter's {@linkcode Connection}
 * plus the route's `params`. Keep a peer (not an event context) to send to
 * it later, for example in a room's member list. `send()` runs the app's
 * `send` middleware.
 *
 * @typeParam S The type of `state`.
 *
 * @example
 * ```ts
 * import type { Peer } from "@duplex/ws";
 *
 * const room = new Set<Peer>();
 * function broadcast(text: string): void {
 *   for (const peer of room) peer.send(text);
 * }
 * ```
 */
export interface Peer<S = Record<string, unknown>> extends Connection<S> {
  /** The route's parameters, such as `{ room: "lobby" }` for `/chat/:room`; `{}` without a router. */
  readonly params: Readonly<Record<string, string>>;
  /** The topics this connection is subscribed to; it leaves them all when it closes. */
  readonly topics: ReadonlySet<string>;
  /**
   * Subscribes to a topic of the app.
   *
   * @returns `false` when already subscribed, or closed.
   * @throws {UsageError} `ERR_INVALID_TOPIC` for an empty or over-long name.
   */
  subscribe(topic: string): boolean;
  /**
   * Unsubscribes from a topic.
   *
   * @returns `false` when it was not subscribed.
   */
  unsubscribe(topic: string): boolean;
  /**
   * Publishes to a topic: to every subscriber but this connection (unless
   * `self` is `true`), here and through the app's backplane.
   *
   * @returns The number of local subscribers it was handed to (`send` middleware may still drop it).
   */
  publish(topic: string, data: MessageData, options?: { self?: boolean }): number;
}

/**
 * The part every event context shares: it is the event's {@linkcode Peer}
 * (every property and method acts on it), and `peer` is the peer itself.
 *
 * @typeParam S The type of `state`.
 *
 * @example
 * ```ts
 * import { App, type Peer } from "@duplex/ws";
 *
 * const everyone = new Set<Peer>();
 * new App().use({
 *   open(ctx) {
 *     everyone.add(ctx.peer);
 *     ctx.send(`you are ${ctx.id}`);
 *   },
 * });
 * ```
 */
export abstract class PeerEvent<S = Record<string, unknown>, P extends Params = Params, V = S> {
  /** The connection this event belongs to; keep this, not the event context. */
  readonly peer: Peer<S>;

  /**
   * Creates the context of one event.
   *
   * @param peer The connection this event belongs to.
   */
  constructor(peer: Peer<S>) {
    this.peer = peer;
  }

  /** Unique id of the connection within the process. */
  get id(): string {
    return this.peer.id;
  }
  /** The opening handshake. */
  get request(): UpgradeRequest {
    return this.peer.request;
  }
  /** The peer's IP address, or `""`. */
  get remoteAddress(): string {
    return this.peer.remoteAddress;
  }
  /** The negotiated subprotocol, or `""`. */
  get protocol(): string {
    return this.peer.protocol;
  }
  /** The negotiated extensions, or `""`. */
  get extensions(): string {
    return this.peer.extensions;
  }
  /** The permessage-deflate parameters agreed on, or `undefined`. */
  get deflate(): DeflateParams | undefined {
    return this.peer.deflate;
  }
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  get readyState(): ReadyState {
    return this.peer.readyState;
  }
  /** Bytes queued for the peer. */
  get bufferedAmount(): number {
    return this.peer.bufferedAmount;
  }
  /** Grows whenever something arrives from the peer. */
  get bytesReceived(): number {
    return this.peer.bytesReceived;
  }
  /** The adapter's timers. */
  get clock(): Clock {
    return this.peer.clock;
  }
  /** The route's parameters. */
  get params(): P {
    return this.peer.params as P;
  }
  /**
   * The application's data for this connection. It starts as `{}`: in the
   * upgrade phase, where middleware fills it, its type is `Partial<S>`;
   * from the open on, it is `S`.
   */
  get state(): V {
    return this.peer.state as unknown as V;
  }
  set state(value: V) {
    this.peer.state = value as unknown as S;
  }
  /**
   * Sends a message through the app's `send` middleware.
   *
   * @returns `false` when the caller should wait for `drained()`.
   */
  send(data: MessageData, options?: SendOptions): boolean {
    return this.peer.send(data, options);
  }
  /** Sends a message framed once for many recipients, through the app's `send` middleware. */
  sendPrepared(message: PreparedMessage): boolean {
    return this.peer.sendPrepared(message);
  }
  /** The topics this connection is subscribed to. */
  get topics(): ReadonlySet<string> {
    return this.peer.topics;
  }
  /** Subscribes to a topic. */
  subscribe(topic: string): boolean {
    return this.peer.subscribe(topic);
  }
  /** Unsubscribes from a topic. */
  unsubscribe(topic: string): boolean {
    return this.peer.unsubscribe(topic);
  }
  /** Publishes to a topic, not to this connection unless `self` is `true`. */
  publish(topic: string, data: MessageData, options?: { self?: boolean }): number {
    return this.peer.publish(topic, data, options);
  }
  /** Sends a ping. */
  ping(data?: MessageData): void {
    this.peer.ping(data);
  }
  /** Starts the close handshake (default 1000). */
  close(code?: number, reason?: string): void {
    this.peer.close(code, reason);
  }
  /** Drops the connection without a close handshake; reported as 1006. */
  terminate(): void {
    this.peer.terminate();
  }
  /** Resolves when the output has drained. */
  drained(): Promise<void> {
    return this.peer.drained();
  }
}

/**
 * The upgrade phase: the HTTP request, before any 101. Read the request,
 * set `params`, `state`, the subprotocol and response headers, or refuse
 * with {@linkcode UpgradeContext.reject} (or by throwing an `HttpError`).
 * The connection is upgraded only when the chain runs to its end.
 *
 * @typeParam S The type of `state`.
 *
 * @example
 * ```ts
 * import { App } from "@duplex/ws";
 *
 * new App().use({
 *   upgrade(ctx, next) {
 *     if (ctx.cookies.session === undefined) return ctx.reject(401, "Log in first");
 *     ctx.responseHeaders.set("X-Served-By", "duplex");
 *     return next();
 *   },
 * });
 * ```
 */
export class UpgradeContext<S = Record<string, unknown>, P extends Params = Params> extends PeerEvent<S, P, Partial<S>> {
  /** Which event this is. */
  readonly type = "upgrade" as const;
  /** Headers added to the 101 answer. */
  readonly responseHeaders: Headers = new Headers();
  /** The refusal, once `reject()` was called. */
  response: Response | undefined;
  #url: URL | undefined;
  #cookies: Record<string, string> | undefined;
  #protocol: string | undefined;
  readonly #setParams: (params: Record<string, string>) => void;

  /**
   * Creates the context of one event.
   *
   * @param peer The connection being upgraded.
   * @param setParams How the router stores `params` on the peer.
   */
  constructor(peer: Peer<S>, setParams: (params: Record<string, string>) => void) {
    super(peer);
    this.#setParams = setParams;
  }

  /** The request method (always `GET` for an upgrade). */
  get method(): string {
    return this.request.method;
  }
  /** The request headers. */
  get headers(): Headers {
    return this.request.headers;
  }
  /** The request URL, resolved against the `Host` header. */
  get url(): URL {
    if (this.#url === undefined) {
      const target = this.request.url;
      const path = target.startsWith("/") ? target : `/${target}`;
      try {
        // An origin-form target is joined, not resolved: resolving
        // `//evil.example/admin` against the Host would make its path `/admin`.
        this.#url = target.startsWith("/") ? new URL(`http://${requestField(this.request, "host") ?? "localhost"}${target}`) : new URL(target);
      } catch {
        this.#url = new URL(`http://localhost${path}`);
      }
    }
    return this.#url;
  }
  /** The URL's path, such as `/chat/lobby`. */
  get path(): string {
    return this.url.pathname;
  }
  /** The URL's query parameters. */
  get query(): URLSearchParams {
    return this.url.searchParams;
  }
  /** The request's cookies by name (the first of each name; values URL-decoded). */
  get cookies(): Readonly<Record<string, string>> {
    this.#cookies ??= parseCookies(requestField(this.request, "cookie") ?? "");
    return this.#cookies;
  }
  /** The subprotocols the client offered, in its order. */
  get offeredProtocols(): readonly string[] {
    return this.request.protocols;
  }
  /** The subprotocol chosen so far (`""` for none); set it to choose one the client offered. */
  override get protocol(): string {
    return this.#protocol ?? "";
  }
  override set protocol(value: string) {
    this.#protocol = value;
  }
  /** Whether a middleware chose the subprotocol (otherwise the server's `protocols` option decides). */
  get protocolChosen(): boolean {
    return this.#protocol !== undefined;
  }
  /** The route's parameters; a router sets them. */
  override get params(): P {
    return this.peer.params as P;
  }
  override set params(value: Readonly<Record<string, string>>) {
    this.#setParams({ ...value });
  }

  /**
   * Refuses the upgrade with an HTTP status, a text body and headers. The
   * rest of the chain should not run: `return ctx.reject(…)`.
   *
   * @param status 400–599.
   * @param body The response body. Default: the status's name.
   * @param headers Extra response headers.
   * @throws {UsageError} `ERR_INVALID_STATUS` when the status is not 400–599.
   */
  reject(status: number, body?: string, headers: Record<string, string> = {}): void {
    this.response = new HttpError(status, body, headers).toResponse();
  }
}

/**
 * The connection is open: the 101 was sent.
 *
 * @typeParam S The type of `state`.
 *
 * @example
 * ```ts
 * import { App } from "@duplex/ws";
 *
 * new App().use({ open: (ctx) => void ctx.send("welcome") });
 * ```
 */
export class OpenContext<S = Record<string, unknown>, P extends Params = Params> extends PeerEvent<S, P> {
  /** Which event this is. */
  readonly type = "open" as const;
}

/**
 * A whole message arrived. Middleware may replace `data` before `next()`
 * (decode, decrypt…) or not call `next()` to consume the message.
 *
 * @typeParam S The type of `state`.
 *
 * @example
 * ```ts
 * import { App } from "@duplex/ws";
 *
 * new App().use({
 *   message(ctx, next) {
 *     if (typeof ctx.data === "string") ctx.data = ctx.data.trim();
 *     return next();
 *   },
 * });
 * ```
 */
export class MessageContext<S = Record<string, unknown>, P extends Params = Params> extends PeerEvent<S, P> {
  /** Which event this is. */
  readonly type = "message" as const;
  /**
   * The message: a string for text, bytes for binary. With the option
   * `textAs: "bytes"`, text is its validated UTF-8 bytes too.
   */
  data: string | Uint8Array;
  /**
   * Whether the message arrived as binary: `false` for text, whichever type
   * `data` has (text is bytes with `textAs: "bytes"`). Middleware that
   * replaces `data` with another kind of message updates it.
   */
  binary: boolean;

  /**
   * Creates the context of one event.
   *
   * @param peer The connection.
   * @param data The message.
   * @param binary Whether it arrived as binary. Default: `data` is bytes.
   */
  constructor(peer: Peer<S>, data: string | Uint8Array, binary: boolean = typeof data !== "string") {
    super(peer);
    this.data = data;
    this.binary = binary;
  }
}

/**
 * An outgoing message, before it is framed. Middleware may replace `data`
 * before `next()`, or not call `next()` to drop the message. `send`
 * middleware must call `next()` synchronously: the message is framed in
 * the order `send()` was called.
 *
 * @typeParam S The type of `state`.
 *
 * @example Drop what a muted peer would receive
 * ```ts
 * import { App } from "@duplex/ws";
 *
 * new App<{ muted?: boolean }>().use({
 *   send(ctx, next) {
 *     if (!ctx.state.muted) return next();
 *   },
 * });
 * ```
 */
export class SendContext<S = Record<string, unknown>, P extends Params = Params> extends PeerEvent<S, P> {
  /** Which event this is. */
  readonly type = "send" as const;
  /** The message to send: a string as text, bytes as binary. */
  data: MessageData;
  /** The options given to `send()` (`{ compress: false }`), if any; middleware may replace them. */
  options: SendOptions | undefined;
  /** What the socket's `send` answered, once the message went out; `undefined` while it has not. */
  sent: boolean | undefined;

  /**
   * Creates the context of one event.
   *
   * @param peer The connection.
   * @param data The message.
   * @param options The options given to `send()`.
   */
  constructor(peer: Peer<S>, data: MessageData, options?: SendOptions) {
    super(peer);
    this.data = data;
    this.options = options;
  }
}

/**
 * A ping or a pong arrived (a ping was already answered).
 *
 * @typeParam S The type of `state`.
 *
 * @example
 * ```ts
 * import { App } from "@duplex/ws";
 *
 * new App().use({ pong: (ctx) => console.log("pong from", ctx.id, ctx.data.length) });
 * ```
 */
export class ControlContext<S = Record<string, unknown>, P extends Params = Params> extends PeerEvent<S, P> {
  /** Which event this is. */
  readonly type: "ping" | "pong";
  /** The control frame's payload. */
  readonly data: Uint8Array;

  /**
   * Creates the context of one event.
   *
   * @param peer The connection.
   * @param type `"ping"` or `"pong"`.
   * @param data The payload.
   */
  constructor(peer: Peer<S>, type: "ping" | "pong", data: Uint8Array) {
    super(peer);
    this.type = type;
    this.data = data;
  }
}

/**
 * Output that was above the high-water mark has drained.
 *
 * @typeParam S The type of `state`.
 *
 * @example
 * ```ts
 * import { App } from "@duplex/ws";
 *
 * new App().use({ drain: (ctx) => console.log(ctx.id, "can take more") });
 * ```
 */
export class DrainContext<S = Record<string, unknown>, P extends Params = Params> extends PeerEvent<S, P> {
  /** Which event this is. */
  readonly type = "drain" as const;
}

/**
 * The server is shutting down (`server.close()`): runs once per open
 * connection before its close frame (1001 by default). What it sends is
 * delivered before that frame; the close waits for an async chain, up to
 * the server's `shutdownTimeoutMs`.
 *
 * @typeParam S The type of `state`.
 *
 * @example Tell clients where to go
 * ```ts
 * import { App } from "@duplex/ws";
 *
 * new App().use({ shutdown: (ctx) => void ctx.send(JSON.stringify({ type: "restarting", retryInMs: 2000 })) });
 * ```
 */
export class ShutdownContext<S = Record<string, unknown>, P extends Params = Params> extends PeerEvent<S, P> {
  /** Which event this is. */
  readonly type = "shutdown" as const;
}

/**
 * The connection closed; runs once per opened connection. `code`, `reason`
 * and `wasClean` are always set: 1006 and `wasClean: false` when there was
 * no close handshake (a dead peer, `terminate()`).
 *
 * @typeParam S The type of `state`.
 *
 * @example
 * ```ts
 * import { App } from "@duplex/ws";
 *
 * new App().use({ close: (ctx) => console.log(ctx.id, ctx.code, ctx.reason, ctx.wasClean) });
 * ```
 */
export class CloseContext<S = Record<string, unknown>, P extends Params = Params> extends PeerEvent<S, P> implements CloseInfo {
  /** Which event this is. */
  readonly type = "close" as const;
  /** The close code: the peer's, 1005 for none, 1006 without a close frame. */
  readonly code: number;
  /** The close reason. */
  readonly reason: string;
  /** Whether the close handshake completed. */
  readonly wasClean: boolean;

  /**
   * Creates the context of one event.
   *
   * @param peer The connection.
   * @param info How it ended.
   */
  constructor(peer: Peer<S>, info: CloseInfo) {
    super(peer);
    this.code = info.code;
    this.reason = info.reason;
    this.wasClean = info.wasClean;
  }
}

/**
 * The peer broke the protocol (a `ProtocolError`, whose `closeCode` was sent
 * to it) or the adapter met a fault. Errors thrown by middleware go to the
 * app's `onError` instead.
 *
 * @typeParam S The type of `state`.
 *
 * @example
 * ```ts
 * import { App } from "@duplex/ws";
 *
 * new App().use({ error: (ctx) => console.warn(ctx.id, ctx.error) });
 * ```
 */
export class ErrorContext<S = Record<string, unknown>, P extends Params = Params> extends PeerEvent<S, P> {
  /** Which event this is. */
  readonly type = "error" as const;
  /** What went wrong. */
  readonly error: unknown;

  /**
   * Creates the context of one event.
   *
   * @param peer The connection.
   * @param error What went wrong.
   */
  constructor(peer: Peer<S>, error: unknown) {
    super(peer);
    this.error = error;
  }
}

/**
 * Any event context, told apart by `type`: what a middleware function that
 * runs on every event receives.
 *
 * @typeParam S The type of `state`.
 *
 * @example
 * ```ts
 * import type { EventContext } from "@duplex/ws";
 *
 * function describe(ctx: EventContext): string {
 *   return ctx.type === "message" ? `message of ${ctx.data.length}` : ctx.type;
 * }
 * ```
 */
export type EventContext<S = Record<string, unknown>, P extends Params = Params> =
  | UpgradeContext<S, P>
  | OpenContext<S, P>
  | MessageContext<S, P>
  | SendContext<S, P>
  | ControlContext<S, P>
  | DrainContext<S, P>
  | ShutdownContext<S, P>
  | CloseContext<S, P>
  | ErrorContext<S, P>;

/**
 * Parses a `Cookie` header: `name=value` pairs split on `;`, the first of
 * each name kept, quotes removed, values URL-decoded where valid.
 *
 * @param header The header's value.
 * @returns The cookies by name.
 *
 * @example
 * ```ts
 * import { parseCookies } from "./context.ts";
 *
 * console.log(parseCookies("a=1; b=%20x")); // { a: "1", b: " x" }
 * ```
 */
export function parseCookies(header: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name === "" || name in out) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    try {
      value = decodeURIComponent(value);
    } catch {
      // Not percent-encoded: keep it as sent.
    }
    out[name] = value;
  }
  return out;
}
