/**
 * The application object: middleware in, the {@linkcode Handler} every
 * adapter runs out. `serve(app)` works on every runtime and path.
 *
 * @module
 */

import type { MessageData } from "../core/engine.ts";
import { ProtocolError } from "../core/errors.ts";
import { PreparedMessage } from "../core/prepared.ts";
import type { UpgradeRequest } from "../core/handshake.ts";
import { ReadyState } from "../core/state.ts";
import type { Composed, Next } from "./compose.ts";
import { isThenable } from "./_thenable.ts";
import { nativeTopicsOf } from "./_native_topics.ts";
import {
  CloseContext,
  ControlContext,
  DrainContext,
  ErrorContext,
  type EventContext,
  MessageContext,
  OpenContext,
  type Peer,
  SendContext,
  ShutdownContext,
  UpgradeContext,
} from "./context.ts";
import { CloseError, HttpError } from "./errors.ts";
import type { DeflateParams } from "../core/deflate.ts";
import type { Clock, CloseInfo, Connection, Handler, SendOptions, UpgradeAnswer } from "./hooks.ts";
import { type Middleware, PHASES, Pipeline } from "./pipeline.ts";
import type { RouteParams } from "./params.ts";
import { Router } from "./router.ts";
import { checkMiddleware } from "./_check.ts";
import { INTERNAL_ERROR_REASON } from "../core/_close_reason.ts";
import { Hub, type PublishOptions, type PubSubOptions, type PubSubStats } from "./pubsub.ts";
import { OBSERVER, type UpgradeObserver } from "./_observer.ts";

/**
 * Options of an {@linkcode App}: its pub/sub backplane and slow-subscriber
 * policy.
 *
 * @example
 * ```ts
 * import { App, type AppOptions, InProcessBackplane } from "@duplex/ws";
 *
 * const options: AppOptions = { backplane: new InProcessBackplane(), slowPolicy: "drop" };
 * const app = new App(options);
 * ```
 */
export type AppOptions = PubSubOptions;

/**
 * Where errors thrown by middleware go: the error and the context of the
 * event that threw.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import type { ErrorHandler } from "@duplex/ws";
 *
 * const report: ErrorHandler = (error, ctx) => console.error(`connection ${ctx.id}, ${ctx.type}:`, error);
 * ```
 */
export type ErrorHandler<S = Record<string, unknown>> = (error: unknown, ctx: EventContext<S>) => void;

/**
 * A WebSocket application: a middleware pipeline in two phases.
 *
 * - The **upgrade phase** runs on the HTTP request before any 101: auth,
 *   routing, subprotocol choice, response headers. The connection is
 *   upgraded only when the chain runs to its end; a middleware that stops
 *   without refusing leaves a 403. Refuse with `ctx.reject(status, body)`
 *   or by throwing an {@linkcode HttpError}; any other throw answers 500.
 * - The **connection phase** runs per event: `open`, each incoming
 *   `message`, each outgoing `send`, `ping`, `pong`, `drain`, `close` and
 *   `error`. Events of one connection run one at a time, in order.
 *
 * Every error thrown by middleware goes to one `onError` (by default
 * `console.error`). In the connection phase it then closes that connection
 * only, with 1011; a thrown {@linkcode CloseError} closes with its own code
 * instead and is not reported.
 *
 * The app is a {@linkcode Handler}: pass it to `serve()` or to any adapter.
 * Its `upgrade`, `open`, `message`… methods are what adapters call; an
 * application does not call them itself.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import { App, serve } from "@duplex/ws";
 *
 * const app = new App<{ name: string }>()
 *   .use({
 *     upgrade(ctx, next) {
 *       ctx.state = { name: ctx.query.get("name") ?? "anonymous" };
 *       return next();
 *     },
 *     message(ctx) {
 *       ctx.send(`${ctx.state.name}: ${String(ctx.data)}`);
 *     },
 *   })
 *   .onError((error, ctx) => console.error(ctx.id, error));
 * const server = await serve(app, { port: 0 });
 * await server.close();
 * ```
 */
export class App<S = Record<string, unknown>> implements Handler<S> {
  readonly #pipeline = new Pipeline<S>();
  readonly #peers = new WeakMap<Connection<S>, AppPeer<S>>();
  // The last connection looked up and its peer: a socket's read usually
  // holds several messages of one connection, so most events skip the
  // WeakMap. Cleared when that connection's peer is dropped.
  #lastConn: Connection<S> | undefined;
  #lastPeer: AppPeer<S> | undefined;
  readonly #hub: Hub<S>;
  #router: Router<S> | undefined;
  #onError: ErrorHandler<S> = (error, ctx) => console.error(`duplex: connection ${ctx.id}, ${ctx.type}:`, error);

  /**
   * Creates an app.
   *
   * @param options Pub/sub: the backplane that carries published messages
   *   to other processes (default: none) and the slow-subscriber policy.
   * @throws {UsageError} `ERR_INVALID_OPTION` for a bad option.
   */
  constructor(options: AppOptions = {}) {
    const onBackplaneError = options.onBackplaneError ?? ((error: unknown) => console.error("duplex: pub/sub backplane:", error));
    this.#hub = new Hub<S>(options, (error) => {
      try {
        onBackplaneError(error);
      } catch (secondary) {
        console.error("duplex: onBackplaneError threw:", secondary, "while handling:", error);
      }
    }, {
      // Runtime topics (Bun's native path) skip the peers' `sendPrepared`:
      // only while no `send` middleware has to see each message.
      topicsOf: (peer) => peer instanceof AppPeer ? nativeTopicsOf(peer.conn) : undefined,
      direct: () => this.#pipeline.chains().send === undefined,
    });
  }

  /**
   * Publishes to a topic: the message is framed once and written to every
   * local subscriber (but `except`), then handed to the backplane, which
   * delivers it to the subscribers of the other processes. Delivery is
   * at most once. On Bun's native path, while no `send` middleware has to
   * see each message, one `server.publish()` of Bun reaches the
   * subscribers of each server (see {@linkcode Hub}).
   *
   * @param topic The topic.
   * @param data A string (text) or bytes (binary).
   * @param options A local subscriber to skip.
   * @returns The number of local subscribers it was handed to (`send` middleware may still drop it).
   * @throws {UsageError} `ERR_INVALID_TOPIC`, `ERR_INVALID_DATA`.
   */
  publish(topic: string, data: MessageData, options?: PublishOptions<S>): number {
    return this.#hub.publish(topic, data, options);
  }

  /**
   * Number of local subscribers of a topic.
   *
   * @param topic The topic.
   * @returns How many connections of this app are subscribed to it.
   */
  subscribers(topic: string): number {
    return this.#hub.subscribers(topic);
  }

  /** Pub/sub counts since the app started: published, delivered, dropped, closedSlow, received. */
  get pubsubStats(): Readonly<PubSubStats> {
    return this.#hub.stats;
  }

  /**
   * Releases the backplane's link (its Redis connections, say). Close the
   * servers first.
   *
   * @returns Resolves once the backplane link is closed.
   */
  closeBackplane(): Promise<void> {
    return this.#hub.close();
  }

  /**
   * Appends middleware: per-event {@linkcode Phases} objects (routers
   * included) or functions that run on every event.
   *
   * @param middleware What to append, in order.
   * @returns This app.
   * @throws {UsageError} `ERR_INVALID_MIDDLEWARE` for anything else.
   */
  use(...middleware: Middleware<S>[]): this {
    for (const item of middleware) checkMiddleware(item, PHASES, true);
    this.#pipeline.add(middleware);
    for (const item of middleware) {
      // An observe() middleware: the adapters tell it what the pipeline cannot see.
      const observer = (item as { [OBSERVER]?: UpgradeObserver })[OBSERVER];
      if (observer === undefined) continue;
      observer.attach(this);
      const before = observers.get(this);
      observers.set(
        this,
        before === undefined ? observer : {
          attach: () => {},
          refused: (status, id) => {
            before.refused(status, id);
            observer.refused(status, id);
          },
          opening: (conn, now) => {
            before.opening?.(conn, now);
            observer.opening?.(conn, now);
          },
          backpressure: (bytes) => {
            before.backpressure?.(bytes);
            observer.backpressure?.(bytes);
          },
        },
      );
    }
    return this;
  }

  /**
   * Adds a path route to the app's own {@linkcode Router}: the connections
   * whose path matches `pattern` run `middleware`, with `ctx.params` set
   * from the path. The router takes its place in the pipeline at the first
   * `route()` call; later calls add routes to it, and a path that no route
   * matches is refused with 404. The app's state type carries into the
   * route's middleware, and `ctx.params` has the pattern's names.
   *
   * @typeParam Pattern The path pattern; its `:name` segments (and a final
   *   `*`) are the names of `ctx.params`.
   * @param pattern A path such as `/rooms/:room`; starts with `/`.
   * @param middleware What runs for connections on this route, in order.
   * @returns This app.
   * @throws {UsageError} `ERR_INVALID_ROUTE` for a bad pattern (see {@linkcode Router.route}).
   *
   * @example
   * ```ts
   * import { App } from "@duplex/ws";
   *
   * const app = new App<{ joined: number }>()
   *   .route("/rooms/:room", {
   *     open(ctx) {
   *       ctx.state.joined = Date.now();
   *       ctx.send(`welcome to ${ctx.params.room}`);
   *     },
   *   });
   * ```
   */
  route<Pattern extends string>(pattern: Pattern, ...middleware: Middleware<S, RouteParams<Pattern>>[]): this {
    if (this.#router === undefined) {
      this.#router = new Router<S>();
      this.#pipeline.add([this.#router]);
    }
    this.#router.route(pattern, ...middleware);
    return this;
  }

  /**
   * Sets where errors thrown by middleware go (one handler; the last call
   * wins).
   *
   * @param handler The error handler. It should not throw; if it does, the
   *   error is logged.
   * @returns This app.
   */
  onError(handler: ErrorHandler<S>): this {
    if (typeof handler !== "function") throw new TypeError("Invalid error handler: expected a function");
    this.#onError = handler;
    return this;
  }

  // ---- the Handler adapters call ----

  /** Adapter entry point: runs the upgrade phase. */
  upgrade(conn: Connection<S>): UpgradeAnswer | Response | Promise<UpgradeAnswer | Response> {
    const peer = this.#newPeer(conn);
    const ctx = new UpgradeContext<S>(peer, (params) => (peer.params = params));
    let accepted = false;
    const accept: Next = () => void (accepted = true);
    let result;
    try {
      result = this.#pipeline.run("upgrade", ctx, accept);
    } catch (error) {
      return this.#refuse(error, ctx);
    }
    if (result === undefined) return this.#answer(ctx, accepted);
    return result.then(() => this.#answer(ctx, accepted), (error) => this.#refuse(error, ctx));
  }

  /** Adapter entry point: the connection opened. */
  open(conn: Connection<S>): void | Promise<void> {
    const peer = this.#peer(conn);
    const chain = this.#pipeline.chains().open;
    if (chain !== undefined) return this.#dispatch(chain, new OpenContext(peer));
  }

  /** Adapter entry point: a message arrived. */
  message(conn: Connection<S>, data: string | Uint8Array, binary: boolean = typeof data !== "string"): void | Promise<void> {
    const chain = this.#pipeline.chains().message;
    if (chain !== undefined) return this.#dispatch(chain, new MessageContext(this.#peer(conn), data, binary));
  }

  /** Adapter entry point: a ping arrived. */
  ping(conn: Connection<S>, data: Uint8Array): void | Promise<void> {
    const chain = this.#pipeline.chains().ping;
    if (chain !== undefined) return this.#dispatch(chain, new ControlContext(this.#peer(conn), "ping", data));
  }

  /** Adapter entry point: a pong arrived. */
  pong(conn: Connection<S>, data: Uint8Array): void | Promise<void> {
    const chain = this.#pipeline.chains().pong;
    if (chain !== undefined) return this.#dispatch(chain, new ControlContext(this.#peer(conn), "pong", data));
  }

  /** Adapter entry point: the output drained. */
  drain(conn: Connection<S>): void {
    const chain = this.#pipeline.chains().drain;
    if (chain !== undefined) void this.#dispatch(chain, new DrainContext(this.#peer(conn)));
  }

  /**
   * Adapter entry point: the server is shutting down; the close frame
   * follows. `undefined` while no middleware handles `shutdown`, so that
   * the close frame does not wait for a hook in progress.
   */
  get shutdown(): ((conn: Connection<S>) => void | Promise<void>) | undefined {
    return this.#pipeline.chains().shutdown === undefined ? undefined : this.#shutdown;
  }

  readonly #shutdown = (conn: Connection<S>): void | Promise<void> => {
    const chain = this.#pipeline.chains().shutdown;
    if (chain !== undefined) return this.#dispatch(chain, new ShutdownContext(this.#peer(conn)));
  };

  /** Adapter entry point: the connection closed. */
  close(conn: Connection<S>, info: CloseInfo): void | Promise<void> {
    const peer = this.#peer(conn);
    this.#hub.drop(peer);
    const chain = this.#pipeline.chains().close;
    const result = chain === undefined ? undefined : this.#dispatch(chain, new CloseContext(peer, info));
    if (result === undefined) {
      this.#forget(conn);
      return;
    }
    return result.then(() => this.#forget(conn));
  }

  /**
   * Adapter entry point: the peer broke the protocol (a `ProtocolError`),
   * or the adapter met a fault, such as an upgrade answer it could not send.
   * Both run the `error` phase; faults that are not the peer's also reach
   * `onError`.
   */
  error(conn: Connection<S>, error: unknown): void {
    const ctx = new ErrorContext(this.#peer(conn), error);
    if (!(error instanceof ProtocolError)) this.#report(error, ctx);
    const chain = this.#pipeline.chains().error;
    if (chain !== undefined) void this.#dispatch(chain, ctx);
  }

  // ---- inside ----

  /**
   * Runs the `send` chain for a peer; called by `peer.send()` and, with a
   * prepared message, by pub/sub. A prepared message keeps its shared frame
   * unless a middleware replaced `data`.
   */
  readonly #sendThrough = (peer: AppPeer<S>, data: MessageData | PreparedMessage, options?: SendOptions): boolean => {
    const chain = this.#pipeline.chains().send;
    const prepared = data instanceof PreparedMessage ? data : undefined;
    if (chain === undefined) return prepared ? peer.conn.sendPrepared(prepared) : peer.conn.send(data as MessageData, options);
    const ctx = new SendContext(peer, prepared ? prepared.data : data as MessageData, options);
    let failure: { error: unknown } | undefined;
    let result;
    try {
      // Inline, not a named closure: transpilers that keep function names
      // (tsx) would otherwise pay a defineProperty on every send.
      result = chain(ctx, () => {
        try {
          ctx.sent = prepared !== undefined && ctx.data === prepared.data && ctx.options === undefined
            ? peer.conn.sendPrepared(prepared)
            : peer.conn.send(ctx.data, ctx.options);
        } catch (error) {
          failure = { error }; // the caller's misuse (sending after close): the caller hears of it
          throw error;
        }
      });
    } catch (error) {
      if (failure !== undefined && failure.error === error) throw error;
      this.#fail(error, ctx);
      return true;
    }
    if (result !== undefined) result.then(undefined, (error) => this.#fail(error, ctx));
    return ctx.sent ?? true;
  };

  #peer(conn: Connection<S>): AppPeer<S> {
    if (conn === this.#lastConn) return this.#lastPeer!;
    // Opened without our upgrade phase (an adapter that skips it): a peer now.
    const peer = this.#peers.get(conn) ?? this.#newPeer(conn);
    this.#lastConn = conn;
    this.#lastPeer = peer;
    return peer;
  }

  #newPeer(conn: Connection<S>): AppPeer<S> {
    const peer = new AppPeer(conn, this.#sendThrough, this.#hub);
    this.#peers.set(conn, peer);
    if (conn === this.#lastConn) this.#lastPeer = peer;
    return peer;
  }

  #forget(conn: Connection<S>): void {
    this.#peers.delete(conn);
    if (conn === this.#lastConn) this.#lastConn = this.#lastPeer = undefined;
  }

  /** Runs one event's chain; a throw or a rejection fails this connection only. */
  #dispatch<C extends EventContext<S>>(chain: Composed<C>, ctx: C): void | Promise<void> {
    let result;
    try {
      result = chain(ctx);
    } catch (error) {
      this.#fail(error, ctx);
      return;
    }
    if (result !== undefined) return result.then(undefined, (error) => this.#fail(error, ctx));
  }

  /** A connection-phase failure: close this connection only. */
  #fail(error: unknown, ctx: EventContext<S>): void {
    const open = ctx.readyState === ReadyState.Open;
    if (error instanceof CloseError) {
      if (open) ctx.close(error.code, error.reason);
      return;
    }
    this.#report(error, ctx);
    if (open) ctx.close(1011, INTERNAL_ERROR_REASON);
  }

  #report(error: unknown, ctx: EventContext<S>): void {
    const failed = (secondary: unknown) => console.error("duplex: onError threw:", secondary, "while handling:", error);
    try {
      // Typed `void`, but an async handler compiles too: its rejection is logged, never left unhandled.
      const result: unknown = this.#onError(error, ctx);
      if (isThenable(result)) result.then(undefined, failed);
    } catch (secondary) {
      failed(secondary);
    }
  }

  #answer(ctx: UpgradeContext<S>, accepted: boolean): UpgradeAnswer | Response {
    if (ctx.response !== undefined) return ctx.response;
    if (!accepted) return new HttpError(403, "Forbidden: the upgrade was not accepted").toResponse();
    const headers: [string, string][] = [];
    ctx.responseHeaders.forEach((value, name) => {
      if (name !== "set-cookie") headers.push([name, value]);
    });
    for (const cookie of ctx.responseHeaders.getSetCookie()) headers.push(["set-cookie", cookie]);
    return ctx.protocolChosen ? { protocol: ctx.protocol, headers } : { headers };
  }

  #refuse(error: unknown, ctx: UpgradeContext<S>): Response {
    if (error instanceof HttpError) return error.toResponse();
    this.#report(error, ctx);
    return new HttpError(500, "Internal Server Error").toResponse();
  }
}

/** The observers of apps that `use()`d an `observe()` middleware. */
const observers = new WeakMap<object, UpgradeObserver>();

// What adapters read (see `plugins/_observer.ts`): on the prototype, not in
// the class body, so that the public type does not carry an internal one.
Object.defineProperty(App.prototype, OBSERVER, {
  get(this: object): UpgradeObserver | undefined {
    return observers.get(this);
  },
});

/** The peer an app builds around an adapter's context. */
class AppPeer<S> implements Peer<S> {
  readonly conn: Connection<S>;
  readonly #send: (peer: AppPeer<S>, data: MessageData | PreparedMessage, options?: SendOptions) => boolean;
  readonly #hub: Hub<S>;
  params: Readonly<Record<string, string>> = EMPTY_PARAMS;

  constructor(
    conn: Connection<S>,
    send: (peer: AppPeer<S>, data: MessageData | PreparedMessage, options?: SendOptions) => boolean,
    hub: Hub<S>,
  ) {
    this.conn = conn;
    this.#send = send;
    this.#hub = hub;
  }

  get topics(): ReadonlySet<string> {
    return this.#hub.topicsOf(this);
  }
  subscribe(topic: string): boolean {
    return this.#hub.subscribe(this, topic);
  }
  unsubscribe(topic: string): boolean {
    return this.#hub.unsubscribe(this, topic);
  }
  publish(topic: string, data: MessageData, options?: { self?: boolean }): number {
    return this.#hub.publish(topic, data, options?.self === true ? {} : { except: this });
  }
  sendPrepared(message: PreparedMessage): boolean {
    return this.#send(this, message);
  }

  get id(): string {
    return this.conn.id;
  }
  get request(): UpgradeRequest {
    return this.conn.request;
  }
  get remoteAddress(): string {
    return this.conn.remoteAddress;
  }
  get protocol(): string {
    return this.conn.protocol;
  }
  get extensions(): string {
    return this.conn.extensions;
  }
  get deflate(): DeflateParams | undefined {
    return this.conn.deflate;
  }
  get readyState(): ReadyState {
    return this.conn.readyState;
  }
  get bufferedAmount(): number {
    return this.conn.bufferedAmount;
  }
  get bytesReceived(): number {
    return this.conn.bytesReceived;
  }
  get clock(): Clock {
    return this.conn.clock;
  }
  get state(): S {
    return this.conn.state;
  }
  set state(value: S) {
    this.conn.state = value;
  }
  send(data: MessageData, options?: SendOptions): boolean {
    return this.#send(this, data, options);
  }
  ping(data?: MessageData): void {
    this.conn.ping(data);
  }
  close(code?: number, reason?: string): void {
    this.conn.close(code, reason);
  }
  terminate(): void {
    this.conn.terminate();
  }
  drained(): Promise<void> {
    return this.conn.drained();
  }
}

const EMPTY_PARAMS: Readonly<Record<string, string>> = Object.freeze({});
