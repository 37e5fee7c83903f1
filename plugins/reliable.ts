/**
 * Recoverable topics: the server side of the `duplex.v1` protocol (see
 * PROTOCOL.md). Every message published to a topic is stored in a
 * {@linkcode TopicLog} with an offset; a client that subscribes after a
 * position gets exactly what came after it, then the live stream, or a gap
 * answer that names what is lost.
 *
 * @module
 */

import { checkOptions, describeValue, positiveIntegerOption } from "./_check.ts";
import { isThenable } from "./_thenable.ts";
import { nativeTopicsOf } from "./_native_topics.ts";
import { fitCloseReason } from "../core/_close_reason.ts";
import { CloseCode } from "../core/close_code.ts";
import { UsageError } from "../core/errors.ts";
import { ReadyState } from "../core/state.ts";
import type { Next } from "./compose.ts";
import type { CloseContext, MessageContext, Peer, UpgradeContext } from "./context.ts";
import type { Connection } from "./hooks.ts";
import { checkTopic, Hub } from "./pubsub.ts";
import { type LogEntry, type LogRead, MemoryTopicLog, type TopicLog } from "./topic_log.ts";
import { claim, closeQuietly, connOf, decodeOnce, isClaimed, reportTo, sendMessage, writeFrame } from "./_v1.ts";
import {
  type ClientMessage,
  encodeEntry,
  type From,
  type Position,
  PROTOCOL_V1,
  type ServerMessage,
  WireClose,
  type WireErrorCode,
} from "../client/_wire.ts";

/**
 * Options of {@linkcode reliable}.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import { MemoryTopicLog, type ReliableOptions } from "@duplex/ws";
 *
 * const options: ReliableOptions<{ user: string }> = {
 *   log: new MemoryTopicLog({ maxMessages: 1000 }),
 *   authorize: { publish: (ctx, topic, data) => topic.startsWith("chat:") && `${ctx.state.user}: ${String(data)}` },
 * };
 * ```
 */
export interface ReliableOptions<S = Record<string, unknown>> {
  /** Where the histories live. Default: a new {@linkcode MemoryTopicLog} with its default bounds. */
  log?: TopicLog;
  /** Who may do what; a hook that throws answers `error` `unavailable` and reaches `onError`. */
  authorize?: {
    /** Whether the connection may subscribe to `topic`. Default: allowed. */
    subscribe?(ctx: MessageContext<S>, topic: string): boolean | Promise<boolean>;
    /**
     * Whether the connection may publish `data` to `topic`: `true` stores
     * it as sent, a string or bytes stores that instead (say, stamped with
     * the sender), `false` refuses. Default: refused.
     */
    publish?(
      ctx: MessageContext<S>,
      topic: string,
      data: string | Uint8Array,
    ): boolean | string | Uint8Array | Promise<boolean | string | Uint8Array>;
  };
  /** Requests of one connection being handled or waiting; one more closes it with 4429. Default 1,024. */
  maxInFlight?: number;
  /** Topics one connection may be subscribed to at once; a subscribe beyond is answered `error` `too_large`. Default 1,000. */
  maxSubscriptions?: number;
  /** Entries per log read while replaying. Default 1,000. */
  replayBatch?: number;
  /**
   * A live subscriber whose buffered output is above this many bytes is
   * slow (see `slowPolicy`); it also bounds what is held for a subscriber
   * while it replays. Default 1 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * What happens to a slow subscriber: `"close"` (the default) closes it
   * with 1013, and the client reconnects and recovers from its position;
   * `"drop"` skips the message for it, and the client, seeing the hole,
   * subscribes again from its position.
   */
  slowPolicy?: "close" | "drop";
  /** Where errors go (a hook or the log threw). Default: `console.error`. */
  onError?: (error: unknown) => void;
}

/**
 * The reliable layer: middleware (for `app.use()`, `app.route()` or a Hono
 * route's `use`) that speaks `duplex.v1` with the connections that offer
 * it, plus a server-side publish.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import { App, reliable, type Reliable } from "@duplex/ws";
 *
 * const live: Reliable = reliable({ authorize: { publish: () => true } });
 * new App().use(live);
 * await live.publish("news", "hello");
 * console.log(live.subscribers("news")); // 0
 * await live.close();
 * ```
 */
export interface Reliable<S = Record<string, unknown>> {
  /** Middleware: chooses `duplex.v1` when the client offers it and nothing else chose a subprotocol. */
  upgrade(ctx: UpgradeContext<S>, next: Next): void | Promise<void>;
  /** Middleware: handles the protocol's messages on `duplex.v1` connections; others go on untouched. */
  message(ctx: MessageContext<S>, next: Next): void | Promise<void>;
  /**
   * Without arguments: stops the layer. Its `duplex.v1` connections are
   * closed with 1001 (their clients reconnect elsewhere), every watch is
   * released, and the log is closed.
   *
   * @returns Resolves once the log is closed.
   */
  close(): Promise<void>;
  /** Middleware: a closed connection releases its subscriptions. */
  close(ctx: CloseContext<S>, next: Next): void | Promise<void>;
  /**
   * Publishes from the server: stores `data` in the topic's history, which
   * delivers it to every subscriber.
   *
   * @param topic The topic.
   * @param data A string (text) or bytes (binary).
   * @returns The stored message's position.
   * @throws {UsageError} `ERR_INVALID_TOPIC`; `ERR_CLOSED` after `close()` (as rejections).
   */
  publish(topic: string, data: string | Uint8Array): Promise<Position>;
  /**
   * Number of local subscriptions to a topic (replaying or live).
   *
   * @param topic The topic.
   * @returns How many connections here are subscribed to it.
   */
  subscribers(topic: string): number;
  /**
   * Every topic with local subscriptions, and how many (replaying or live):
   * what `observe({ reliable })` lists in `snapshot().topics`.
   *
   * @returns Topic → its number of local subscriptions.
   */
  topics(): Map<string, number>;
  /**
   * Subscriptions answered since the layer started, by result: `fresh`
   * (no position asked), `recovered` (resumed from the client's position
   * with nothing lost) and `gap` (part of the history was gone). What
   * `observe({ reliable })` exports.
   */
  readonly stats: Readonly<ReliableStats>;
}

/**
 * Counts of {@linkcode Reliable.stats}.
 *
 * @example
 * ```ts
 * import { reliable, type ReliableStats } from "@duplex/ws";
 *
 * const layer = reliable();
 * const { recovered, gap }: ReliableStats = layer.stats;
 * ```
 */
export interface ReliableStats {
  /** Subscriptions from no position (or `"now"`). */
  fresh: number;
  /** Subscriptions resumed from the client's position, with nothing lost. */
  recovered: number;
  /** Subscriptions answered with a gap. */
  gap: number;
}

/** A frame ready to go to a subscriber: the entry and its `message` text. */
interface Framed {
  readonly entry: LogEntry;
  readonly text: string;
}

/** One connection's subscription to one topic. */
interface Sub<S> {
  readonly cs: ConnState<S>;
  readonly topic: string;
  /**
   * `pending`: replaying, live entries held for it; `joining`: has all the
   * log held, and takes the first newer entry from the watch directly (a
   * watch may lag behind reads); `live`: in the hub.
   */
  state: "pending" | "joining" | "live";
  cancelled: boolean;
  /** The epoch of the position it is at; `""` before its first read. */
  epoch: string;
  /** The offset of the last message sent to it. */
  last: number;
  /** Live entries held while it replays. */
  buffer: Framed[];
  bufferBytes: number;
  /** The buffer went over its bound and was emptied: the log is read again at the seam. */
  overflow: boolean;
}

/** The answer to a publish whose append was started: filled in once it settles. */
interface Answer {
  message: ServerMessage | undefined;
}

/** One `duplex.v1` connection. */
interface ConnState<S> {
  readonly conn: Connection<S>;
  readonly queue: { request: ClientMessage; ctx: MessageContext<S> }[];
  /** Requests received and not yet answered (queued, being handled, or appends started): bounded by `maxInFlight`. */
  pending: number;
  /** Answers of the publishes started, in request order: each is sent once it and all before it are filled in. */
  readonly answers: Answer[];
  /** Wakes the pump waiting for `answers` to empty (a request other than a publish waits for the publishes before it). */
  idle: (() => void) | undefined;
  running: boolean;
  closed: boolean;
  /** The last send met backpressure: wait for `drained()` before the next page. */
  full: boolean;
  readonly subs: Map<string, Sub<S>>;
}

/** The local subscriptions of one topic and its one watch. */
interface TopicState<S> {
  readonly unwatch: () => void;
  readonly pending: Set<Sub<S>>;
  readonly joining: Set<Sub<S>>;
  readonly live: Set<Sub<S>>;
  /** The epoch the subscriptions are in. */
  epoch: string | undefined;
  /** The offset of the last entry the watch handed on (what every live subscriber has); 0 before the first. */
  last: number;
}

const OPTIONS = ["log", "authorize", "maxInFlight", "maxSubscriptions", "replayBatch", "maxBufferedBytes", "slowPolicy", "onError"];
/** Reads at the seam that brought nothing new before a subscriber goes live anyway (its client then sees the hole). */
const SEAM_RETRIES = 3;

/**
 * Recoverable topics over `duplex.v1`: returns middleware that serves the
 * connections offering the protocol (others pass through untouched), and a
 * server-side publish.
 *
 * - A subscriber gets `subscribed` (with `recovered`, `gap` or `fresh`),
 *   the stored messages after its position, then live ones: no message
 *   missed or repeated at the seam, even while publishes keep arriving.
 *   While it replays, live messages are held for it (up to
 *   `maxBufferedBytes`; beyond, they are read from the log again), and the
 *   replay waits for the connection's output to drain.
 * - A client's publish is stored only when `authorize.publish` allows it,
 *   once per idempotency key, and acked once stored.
 * - Requests of one connection are handled in order: consecutive publishes
 *   are pipelined (each append starts once its `authorize.publish` answered,
 *   in request order, without waiting for the append before it; acks and
 *   errors are sent in request order), and any other request waits until
 *   the publishes before it are answered. More than `maxInFlight` requests
 *   unanswered closes it with 4429. A message that is not a
 *   protocol message closes it with 4400, a binary frame with 1003.
 * - Protocol frames are written on the connection, past the app's `send`
 *   middleware. Live messages are framed once per entry and, on Bun's
 *   native path, reach each server's subscribers with one publish.
 *
 * @typeParam S The type of `ctx.state`.
 * @param options The log, the authorize hooks, the limits and the slow-subscriber policy.
 * @returns The layer: use it as middleware.
 * @throws {UsageError} `ERR_INVALID_OPTION` for an unknown option or a bad value.
 *
 * @example Any client may subscribe and publish
 * ```ts
 * import { App, reliable, serve } from "@duplex/ws";
 *
 * const live = reliable({ authorize: { publish: () => true } });
 * const app = new App().use(live);
 * const server = await serve(app, { port: 0 });
 * await server.close();
 * await live.close();
 * ```
 */
export function reliable<S = Record<string, unknown>>(options: ReliableOptions<S> = {}): Reliable<S> {
  return new ReliableLayer<S>(options);
}

class ReliableLayer<S> implements Reliable<S> {
  readonly #log: TopicLog;
  readonly #authorize: NonNullable<ReliableOptions<S>["authorize"]>;
  readonly #maxInFlight: number;
  readonly #maxSubscriptions: number;
  readonly #batch: number;
  readonly #maxBuffered: number;
  readonly #closeSlow: boolean;
  readonly #onError: (error: unknown) => void;
  /** To `onError` (a bound function: also handed to the shared writes). */
  readonly #report = (error: unknown): void => reportTo(this.#onError, "reliable", error);
  readonly #hub: Hub<S>;
  readonly #conns = new Map<Connection<S>, ConnState<S>>();
  readonly #topics = new Map<string, TopicState<S>>();
  readonly #stats: ReliableStats = { fresh: 0, recovered: 0, gap: 0 };
  #closed = false;

  constructor(options: ReliableOptions<S>) {
    checkOptions(options, OPTIONS, "reliable()");
    const log = options.log ?? new MemoryTopicLog();
    for (const method of ["append", "read", "watch", "close"] as const) {
      if (typeof (log as unknown as Record<string, unknown> | null)?.[method] !== "function") {
        throw new UsageError("ERR_INVALID_OPTION", `Invalid option: log must be a TopicLog (append, read, watch, close), got ${describeValue(log)}`);
      }
    }
    const authorize = options.authorize ?? {};
    checkOptions(authorize, ["subscribe", "publish"], "authorize");
    for (const name of ["subscribe", "publish"] as const) {
      if (authorize[name] !== undefined && typeof authorize[name] !== "function") {
        throw new UsageError("ERR_INVALID_OPTION", `Invalid option: authorize.${name} must be a function, got ${describeValue(authorize[name])}`);
      }
    }
    const policy = options.slowPolicy ?? "close";
    if (policy !== "close" && policy !== "drop") {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: slowPolicy must be "close" or "drop", got ${describeValue(policy)}`);
    }
    const onError = options.onError ?? ((error: unknown) => console.error("duplex: reliable:", error));
    if (typeof onError !== "function") {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: onError must be a function, got ${describeValue(onError)}`);
    }
    this.#log = log;
    this.#authorize = authorize;
    this.#maxInFlight = positiveIntegerOption("maxInFlight", options.maxInFlight, 1024);
    this.#maxSubscriptions = positiveIntegerOption("maxSubscriptions", options.maxSubscriptions, 1000);
    this.#batch = positiveIntegerOption("replayBatch", options.replayBatch, 1000);
    this.#maxBuffered = positiveIntegerOption("maxBufferedBytes", options.maxBufferedBytes, 1024 * 1024);
    this.#closeSlow = policy === "close";
    this.#onError = onError;
    // Its own hub: frames each entry once, applies the slow-subscriber policy, and uses
    // Bun's topics; its peers are the connections themselves (no `send` middleware).
    this.#hub = new Hub<S>({ maxBufferedBytes: this.#maxBuffered, slowPolicy: policy }, (error) => this.#report(error), {
      topicsOf: (peer) => nativeTopicsOf(peer),
      direct: () => true,
    });
  }

  // ---- middleware ----

  upgrade(ctx: UpgradeContext<S>, next: Next): void | Promise<void> {
    if (!this.#closed && !ctx.protocolChosen && ctx.offeredProtocols.includes(PROTOCOL_V1)) ctx.protocol = PROTOCOL_V1;
    return next();
  }

  message(ctx: MessageContext<S>, next: Next): void | Promise<void> {
    if (ctx.protocol !== PROTOCOL_V1) return next();
    const conn = connOf(ctx.peer);
    let cs = this.#conns.get(conn);
    if (cs === undefined) {
      // Closed (by this layer, say) or closing: nothing more is handled.
      if (this.#closed || conn.readyState !== ReadyState.Open) return;
      cs = { conn, queue: [], pending: 0, answers: [], idle: undefined, running: false, closed: false, full: false, subs: new Map() };
      this.#conns.set(conn, cs);
    }
    if (cs.closed) return;
    if (typeof ctx.data !== "string") return this.#closeConn(cs, CloseCode.UnsupportedData, "duplex.v1 takes text frames only");
    const request = decodeOnce(ctx, ctx.data);
    if (typeof request === "string") return this.#closeConn(cs, WireClose.BadMessage, fitCloseReason(`Bad message: ${request}`));
    if (request.type === "call" || request.type === "cancel" || request.type === "credit" || request.type === "emit") {
      // Calls and events: the contract layer's, if it comes after this one.
      const result = next();
      if (isThenable(result)) return result.then(() => this.#unclaimed(cs!, request, ctx));
      return this.#unclaimed(cs, request, ctx);
    }
    claim(ctx);
    if (cs.pending >= this.#maxInFlight) {
      return this.#closeConn(cs, WireClose.TooManyRequests, "Too many requests in flight");
    }
    cs.pending++;
    cs.queue.push({ request, ctx });
    if (!cs.running) void this.#pump(cs);
  }

  /** A call or event that no layer after this one handled: a call is answered `not_found`, an event closes with 4422. */
  #unclaimed(cs: ConnState<S>, request: ClientMessage, ctx: MessageContext<S>): void {
    if (isClaimed(ctx) || cs.closed) return;
    if (request.type === "call") this.#error(cs, request.id, "not_found", "This server has no calls here");
    else if (request.type === "emit") this.#closeConn(cs, WireClose.InvalidEvent, "Invalid event: this server takes no events here");
  }

  close(): Promise<void>;
  close(ctx: CloseContext<S>, next: Next): void | Promise<void>;
  close(ctx?: CloseContext<S>, next?: Next): void | Promise<void> {
    if (ctx === undefined || next === undefined) return this.#shutdown();
    const cs = this.#conns.get(connOf(ctx.peer));
    if (cs !== undefined) this.#release(cs);
    return next();
  }

  // ---- API ----

  async publish(topic: string, data: string | Uint8Array): Promise<Position> {
    checkTopic(topic);
    if (typeof data !== "string" && !(data instanceof Uint8Array)) {
      throw new UsageError("ERR_INVALID_DATA", `Invalid data: expected a string or a Uint8Array, got ${describeValue(data)}`);
    }
    if (this.#closed) throw new UsageError("ERR_CLOSED", "The reliable layer is closed");
    const { epoch, offset } = await this.#log.append(topic, data);
    return { epoch, offset };
  }

  topics(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [topic, ts] of this.#topics) {
      const n = ts.pending.size + ts.joining.size + ts.live.size;
      if (n > 0) out.set(topic, n);
    }
    return out;
  }

  get stats(): Readonly<ReliableStats> {
    return { ...this.#stats };
  }

  subscribers(topic: string): number {
    const ts = this.#topics.get(topic);
    return ts === undefined ? 0 : ts.pending.size + ts.joining.size + ts.live.size;
  }

  async #shutdown(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const cs of [...this.#conns.values()]) this.#closeConn(cs, CloseCode.GoingAway, "Server going away");
    for (const ts of this.#topics.values()) {
      try {
        ts.unwatch();
      } catch (error) {
        this.#report(error);
      }
    }
    this.#topics.clear();
    await this.#hub.close();
    await this.#log.close();
  }

  // ---- requests, in order per connection; consecutive publishes pipelined ----

  /**
   * Handles a connection's requests in arrival order. A publish is started
   * (authorized, then its append begun) without waiting for the appends
   * before it; its answer takes its place in `answers`. Any other request
   * first waits for every answer before it to be sent, so it sees their
   * effects, and its own answer follows theirs.
   */
  async #pump(cs: ConnState<S>): Promise<void> {
    cs.running = true;
    try {
      while (cs.queue.length > 0 && !cs.closed) {
        const { request, ctx } = cs.queue.shift()!;
        if (request.type === "publish") {
          try {
            // An authorize hook that answers later holds the appends after it: they start in request order.
            const started = this.#startPublish(cs, request.id, request.topic, request.key, request.data, ctx);
            if (started !== undefined) await started;
          } catch (error) {
            this.#report(error);
            if (!cs.closed) this.#answer(cs, this.#errorMessage(request.id, "unavailable", "The server could not handle the request"));
          }
          continue;
        }
        if (cs.answers.length > 0) {
          await new Promise<void>((resolve) => cs.idle = resolve);
          if (cs.closed) break;
        }
        try {
          const result = this.#handle(cs, request, ctx);
          if (result !== undefined) await result;
        } catch (error) {
          this.#report(error);
          if ("id" in request) this.#error(cs, request.id, "unavailable", "The server could not handle the request");
        }
        cs.pending--;
      }
    } finally {
      cs.running = false;
    }
  }

  #handle(cs: ConnState<S>, request: ClientMessage, ctx: MessageContext<S>): void | Promise<void> {
    switch (request.type) {
      case "ping":
        this.#send(cs, { type: "pong", id: request.id });
        return;
      case "unsubscribe": {
        const sub = cs.subs.get(request.topic);
        if (sub !== undefined) this.#cancel(sub);
        this.#send(cs, { type: "unsubscribed", id: request.id, topic: request.topic });
        return;
      }
      case "subscribe":
        return this.#subscribe(cs, request.id, request.topic, request.from, ctx);
    }
  }

  /**
   * Authorizes a publish and starts its append; its answer is queued in
   * request order. Returns a promise only while an authorize hook's answer
   * is awaited (the next append must not start before this one).
   */
  #startPublish(cs: ConnState<S>, id: number, topic: string, key: string, sent: string | Uint8Array, ctx: MessageContext<S>): Promise<void> | undefined {
    const hook = this.#authorize.publish;
    if (hook === undefined) return this.#answer(cs, this.#errorMessage(id, "forbidden", "Publishing to this topic is not allowed"));
    let verdict: unknown;
    try {
      verdict = hook(ctx, topic, sent);
    } catch (error) {
      this.#report(error);
      return this.#answer(cs, this.#errorMessage(id, "unavailable", "The server could not authorize the publish"));
    }
    if (!isThenable(verdict)) return this.#append(cs, id, topic, key, sent, verdict);
    return Promise.resolve(verdict).then(
      (verdict) => {
        // Closed meanwhile: no ack could reach it; the client sends it again, with the same key.
        if (!cs.closed) this.#append(cs, id, topic, key, sent, verdict);
      },
      (error) => {
        this.#report(error);
        if (!cs.closed) this.#answer(cs, this.#errorMessage(id, "unavailable", "The server could not authorize the publish"));
      },
    );
  }

  /** Starts the append a verdict allows (or answers the refusal), and queues its answer. */
  #append(cs: ConnState<S>, id: number, topic: string, key: string, sent: string | Uint8Array, verdict: unknown): undefined {
    let data: string | Uint8Array;
    if (verdict === true) data = sent;
    else if (typeof verdict === "string" || verdict instanceof Uint8Array) data = verdict;
    else return this.#answer(cs, this.#errorMessage(id, "forbidden", "Publishing to this topic is not allowed"));
    const failed = (error: unknown): ServerMessage => {
      if ((error as { code?: unknown } | null)?.code === "ERR_TOO_LARGE") return this.#errorMessage(id, "too_large", "The message is too large to store");
      this.#report(error);
      return this.#errorMessage(id, "unavailable", "The message could not be stored");
    };
    let result;
    try {
      result = this.#log.append(topic, data, key);
    } catch (error) {
      return this.#answer(cs, failed(error));
    }
    if (!isThenable(result)) return this.#answer(cs, { type: "ack", id, topic, epoch: result.epoch, offset: result.offset });
    const answer: Answer = { message: undefined };
    cs.answers.push(answer);
    Promise.resolve(result).then(
      (appended) => answer.message = { type: "ack", id, topic, epoch: appended.epoch, offset: appended.offset },
      (error) => answer.message = failed(error),
    ).then(() => this.#flush(cs));
    return undefined;
  }

  /** Queues a publish's answer known now: sent at once unless answers before it are still awaited. */
  #answer(cs: ConnState<S>, message: ServerMessage): undefined {
    if (cs.answers.length === 0) {
      cs.pending--;
      this.#send(cs, message);
    } else {
      cs.answers.push({ message });
    }
    return undefined;
  }

  /** Sends the answers that are ready, in request order; wakes the pump once none is left. */
  #flush(cs: ConnState<S>): void {
    while (cs.answers.length > 0 && cs.answers[0]!.message !== undefined) {
      const { message } = cs.answers.shift()!;
      cs.pending--;
      if (!cs.closed) this.#send(cs, message!);
    }
    if (cs.answers.length === 0 && cs.idle !== undefined) {
      const wake = cs.idle;
      cs.idle = undefined;
      wake();
    }
  }

  async #subscribe(cs: ConnState<S>, id: number, topic: string, from: From, ctx: MessageContext<S>): Promise<void> {
    const hook = this.#authorize.subscribe;
    if (hook !== undefined) {
      let allowed: unknown;
      try {
        allowed = hook(ctx, topic);
        if (isThenable(allowed)) allowed = await allowed;
      } catch (error) {
        this.#report(error);
        return this.#error(cs, id, "unavailable", "The server could not authorize the subscription");
      }
      if (allowed !== true) return this.#error(cs, id, "forbidden", "Subscribing to this topic is not allowed");
    }
    if (cs.closed || this.#closed) return;
    // A second subscribe restarts the subscription from its `from`.
    const previous = cs.subs.get(topic);
    if (previous !== undefined) this.#cancel(previous);
    else if (cs.subs.size >= this.#maxSubscriptions) return this.#error(cs, id, "too_large", "Too many subscriptions on this connection");
    const sub: Sub<S> = { cs, topic, state: "pending", cancelled: false, epoch: "", last: 0, buffer: [], bufferBytes: 0, overflow: false };
    let ts: TopicState<S>;
    try {
      ts = this.#topicState(topic);
    } catch (error) {
      this.#report(error);
      return this.#error(cs, id, "unavailable", "The topic's history is unavailable");
    }
    cs.subs.set(topic, sub);
    ts.pending.add(sub); // from here on, live entries are held for it
    let read: LogRead;
    try {
      const result = this.#log.read(topic, from, this.#batch);
      read = isThenable(result) ? await result : result;
    } catch (error) {
      this.#report(error);
      if (sub.cancelled) return;
      this.#cancel(sub);
      return this.#error(cs, id, "unavailable", "The topic's history is unavailable");
    }
    if (sub.cancelled) return;
    if (ts.epoch !== read.epoch) this.#epochChanged(ts, read.epoch);
    if (sub.cancelled) return;
    const first = read.entries[0];
    let offset: number;
    if (from === "now") offset = read.last;
    else if (read.gap === undefined && typeof from === "object") offset = from.offset;
    else offset = first === undefined ? read.last : first.offset - 1;
    const position = { epoch: read.epoch, offset };
    sub.epoch = read.epoch;
    sub.last = offset;
    this.#stats[read.gap !== undefined ? "gap" : typeof from === "object" ? "recovered" : "fresh"]++;
    this.#send(
      cs,
      read.gap !== undefined
        ? { type: "subscribed", id, topic, position, result: "gap", gap: read.gap }
        : { type: "subscribed", id, topic, position, result: typeof from === "object" ? "recovered" : "fresh" },
    );
    this.#replay(sub, from === "now" ? [] : read.entries, read.last).catch((error) => {
      this.#report(error);
      if (!sub.cancelled) this.#closeConn(cs, CloseCode.InternalError, "Replay failed");
    });
  }

  /**
   * Sends the stored entries after the subscriber's position, page by page
   * and waiting for the output to drain, until it has everything the log
   * held at its last read; then sends what was held for it meanwhile and
   * makes it live, in one synchronous step: nothing can be published in
   * between, so nothing is missed or sent twice at the seam.
   */
  async #replay(sub: Sub<S>, page: readonly LogEntry[], target: number): Promise<void> {
    const { cs, topic } = sub;
    let stalls = 0;
    for (;;) {
      for (;;) {
        for (const entry of page) {
          if (entry.offset <= sub.last) continue;
          if (cs.full && !(await this.#drained(sub))) return;
          this.#write(cs, encodeEntry(topic, entry.epoch, entry.offset, entry.data));
          sub.last = entry.offset;
        }
        if (sub.last >= target) break;
        if (cs.full && !(await this.#drained(sub))) return;
        if (sub.cancelled) return;
        const result = this.#log.read(topic, { epoch: sub.epoch, offset: sub.last }, this.#batch);
        const read = isThenable(result) ? await result : result;
        if (sub.cancelled) return;
        if (read.epoch !== sub.epoch) return this.#epochChanged(this.#topics.get(topic)!, read.epoch);
        if (read.gap !== undefined && this.#closeSlow) {
          // The history moved past this replay: the client reconnects and gets the gap answer.
          return this.#closeConn(cs, CloseCode.TryAgainLater, "Too slow: the history moved on during the replay");
        }
        page = read.entries;
        target = read.last;
        if ((page.at(-1)?.offset ?? 0) <= sub.last) break; // nothing new: on to what was held
      }
      if (cs.full && !(await this.#drained(sub))) return;
      if (sub.cancelled) return;
      // From here to the end: synchronous.
      if (sub.overflow) {
        // What was held overflowed: hold again from now, and read the rest from the log.
        sub.overflow = false;
        page = [];
        target = Math.max(target, sub.last + 1);
        continue;
      }
      const before = sub.last;
      let hole = false;
      for (const framed of sub.buffer) {
        if (framed.entry.epoch !== sub.epoch) return this.#epochChanged(this.#topics.get(topic)!, framed.entry.epoch);
        if (framed.entry.offset <= sub.last) continue;
        if (framed.entry.offset !== sub.last + 1) {
          hole = true;
          break;
        }
        this.#write(cs, framed.text);
        sub.last = framed.entry.offset;
      }
      if (hole) {
        sub.buffer = sub.buffer.filter((f) => f.entry.offset > sub.last);
        sub.bufferBytes = sub.buffer.reduce((n, f) => n + f.text.length, 0);
        stalls = sub.last === before ? stalls + 1 : 0;
        if (stalls <= SEAM_RETRIES) {
          page = [];
          target = sub.last + 1;
          continue;
        }
      }
      // Joining: the next entry newer than its last comes from the watch, then the hub.
      const ts = this.#topics.get(topic)!;
      sub.buffer = [];
      sub.bufferBytes = 0;
      ts.pending.delete(sub);
      ts.joining.add(sub);
      sub.state = "joining";
      return;
    }
  }

  /** Waits for the output to drain; `false` when the subscription or its connection ended meanwhile. */
  async #drained(sub: Sub<S>): Promise<boolean> {
    const cs = sub.cs;
    cs.full = false;
    if (cs.conn.readyState === ReadyState.Open) await cs.conn.drained();
    if (sub.cancelled) return false;
    if (cs.conn.readyState !== ReadyState.Open) {
      this.#release(cs);
      return false;
    }
    return true;
  }

  // ---- topics ----

  #topicState(topic: string): TopicState<S> {
    let ts = this.#topics.get(topic);
    if (ts !== undefined) return ts;
    const unwatch = this.#log.watch(topic, (entry) => this.#deliver(topic, entry));
    ts = { unwatch, pending: new Set(), joining: new Set(), live: new Set(), epoch: undefined, last: 0 };
    this.#topics.set(topic, ts);
    return ts;
  }

  /**
   * A new entry of a watched topic: to the live subscribers (framed once),
   * and held for those replaying. A watch may start later than a read (on
   * Redis, its SUBSCRIBE races the reads) or skip entries (trimmed while it
   * was disconnected): a subscriber that would get an entry past the next
   * one goes back to reading the log from its last offset, rather than
   * being sent the hole.
   */
  #deliver(topic: string, entry: LogEntry): void {
    const ts = this.#topics.get(topic);
    if (ts === undefined) return;
    const previous = ts.epoch === entry.epoch ? ts.last : 0;
    if (ts.epoch !== entry.epoch) this.#epochChanged(ts, entry.epoch);
    ts.last = entry.offset;
    let text: string | undefined;
    if (ts.live.size > 0) {
      if (entry.offset > previous + 1) {
        for (const sub of [...ts.live]) {
          sub.last = previous;
          this.#rejoin(ts, sub);
        }
      } else {
        text = encodeEntry(topic, entry.epoch, entry.offset, entry.data);
        this.#hub.publish(topic, text);
      }
    }
    for (const sub of ts.joining) {
      if (entry.offset <= sub.last) continue; // a lagging watch: it has this one from the log
      if (entry.offset > sub.last + 1) {
        this.#rejoin(ts, sub); // the pending loop below holds this entry for it
        continue;
      }
      text ??= encodeEntry(topic, entry.epoch, entry.offset, entry.data);
      this.#write(sub.cs, text);
      sub.last = entry.offset;
      ts.joining.delete(sub);
      ts.live.add(sub);
      sub.state = "live";
      this.#hub.subscribe(sub.cs.conn as unknown as Peer<S>, topic);
    }
    for (const sub of ts.pending) {
      if (sub.overflow) continue;
      text ??= encodeEntry(topic, entry.epoch, entry.offset, entry.data);
      sub.buffer.push({ entry, text });
      sub.bufferBytes += text.length;
      if (sub.bufferBytes > this.#maxBuffered / 2) {
        sub.overflow = true;
        sub.buffer = [];
        sub.bufferBytes = 0;
      }
    }
  }

  /**
   * A joining or live subscriber the watch got ahead of: back to pending,
   * reading the log after its last offset, then the seam again.
   */
  #rejoin(ts: TopicState<S>, sub: Sub<S>): void {
    if (sub.state === "live") {
      ts.live.delete(sub);
      this.#hub.unsubscribe(sub.cs.conn as unknown as Peer<S>, sub.topic);
    } else {
      ts.joining.delete(sub);
    }
    sub.state = "pending";
    sub.buffer = [];
    sub.bufferBytes = 0;
    sub.overflow = false;
    ts.pending.add(sub);
    this.#replay(sub, [], sub.last + 1).catch((error) => {
      this.#report(error);
      if (!sub.cancelled) this.#closeConn(sub.cs, CloseCode.InternalError, "Replay failed");
    });
  }

  /**
   * The topic's history is not the one its subscribers are in (the log
   * lost it: a flush, a restart of its store). They are closed with 1012:
   * their clients reconnect and get an `epoch` gap answer.
   */
  #epochChanged(ts: TopicState<S>, epoch: string): void {
    ts.epoch = epoch;
    for (const sub of [...ts.live, ...ts.joining, ...ts.pending]) {
      if (sub.epoch !== "" && sub.epoch !== epoch) this.#closeConn(sub.cs, CloseCode.ServiceRestart, "The topic's history changed");
    }
  }

  // ---- connections ----

  /** Ends one subscription; the last one of a topic releases its watch. */
  #cancel(sub: Sub<S>): void {
    if (sub.cancelled) return;
    sub.cancelled = true;
    if (sub.cs.subs.get(sub.topic) === sub) sub.cs.subs.delete(sub.topic);
    sub.buffer = [];
    const ts = this.#topics.get(sub.topic);
    if (ts === undefined) return;
    if (sub.state === "live") {
      ts.live.delete(sub);
      this.#hub.unsubscribe(sub.cs.conn as unknown as Peer<S>, sub.topic);
    } else {
      (sub.state === "joining" ? ts.joining : ts.pending).delete(sub);
    }
    if (ts.live.size + ts.joining.size + ts.pending.size === 0) {
      this.#topics.delete(sub.topic);
      try {
        ts.unwatch();
      } catch (error) {
        this.#report(error);
      }
    }
  }

  /** A connection is gone: every subscription and queued request goes with it. */
  #release(cs: ConnState<S>): void {
    cs.closed = true;
    cs.queue.length = 0;
    // Appends still running settle on their own (the log bounds them); their answers are dropped.
    cs.answers.length = 0;
    const wake = cs.idle;
    cs.idle = undefined;
    wake?.();
    for (const sub of [...cs.subs.values()]) this.#cancel(sub);
    this.#conns.delete(cs.conn);
  }

  #closeConn(cs: ConnState<S>, code: number, reason: string): void {
    this.#release(cs);
    closeQuietly(cs.conn, code, reason, this.#report);
  }

  #send(cs: ConnState<S>, message: ServerMessage): void {
    sendMessage(cs, message, this.#report);
  }

  #error(cs: ConnState<S>, id: number, code: WireErrorCode, message: string): void {
    this.#send(cs, this.#errorMessage(id, code, message));
  }

  #errorMessage(id: number, code: WireErrorCode, message: string): ServerMessage {
    return { type: "error", id, code, message };
  }

  /** Writes a frame on the connection itself, past the app's `send` middleware. */
  #write(cs: ConnState<S>, text: string): void {
    writeFrame(cs, text, this.#report);
  }
}
