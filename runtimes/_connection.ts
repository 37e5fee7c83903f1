/**
 * What the raw pump and the native session share, written once: the
 * {@linkcode Connection} methods whose contract does not depend on the path
 * (sending to a closing or closed connection returns `false`, `ping()` on
 * it does nothing, `drained()` resolves), the routing of hook failures, the
 * output cap, drain waiters, the idle timeout, the rate limit, the close
 * timer, and the option defaults they fall back on.
 *
 * @module
 */

import { INTERNAL_ERROR_REASON } from "../core/_close_reason.ts";
import { CloseCode } from "../core/close_code.ts";
import type { DeflateParams } from "../core/deflate.ts";
import type { MessageData } from "../core/engine.ts";
import { type ProtocolError, UsageError } from "../core/errors.ts";
import type { UpgradeRequest } from "../core/handshake.ts";
import { DEFAULT_LIMITS } from "../core/options.ts";
import { messageData, type PreparedMessage } from "../core/prepared.ts";
import { ReadyState } from "../core/state.ts";
import { isThenable } from "../plugins/_thenable.ts";
import { type Clock, type Connection, type ConnectionOptions, type Handler, type SendOptions, systemClock } from "../plugins/hooks.ts";
import { bufferFullError, type IdleHandle, type IdleOps, RateLimiter, rateLimitError } from "./_limits.ts";
import { CONNECTION_DEFAULTS } from "./_options.ts";
import type { ConnectionSet, Tracked } from "./_registry.ts";
import { COUNTS, observerOf, type TrafficCounts } from "../plugins/_observer.ts";

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/**
 * Logs the failure of a hook that had nowhere else to report it (the `error`
 * or `drain` hook itself threw or rejected).
 *
 * @param err What the hook threw or rejected with.
 *
 * @example
 * ```ts
 * import { logHookFailure } from "./_connection.ts";
 *
 * logHookFailure(new Error("boom")); // console.error, never a throw
 * ```
 */
export function logHookFailure(err: unknown): void {
  console.error("duplex: a hook threw while handling another error:", err);
}

/**
 * Calls a hook for the raw pump and the native session alike: a throw or a
 * rejection goes to `failed`, never further.
 *
 * @param hook The hook call.
 * @param failed What to do with the hook's error.
 * @returns A promise that settles once an async hook is done, or `undefined` for a sync one.
 *
 * @example
 * ```ts
 * import { callHook } from "./_connection.ts";
 *
 * callHook(() => {
 *   throw new Error("boom");
 * }, (err) => console.error(err)); // undefined, and the error is reported
 * ```
 */
export function callHook(hook: () => void | Promise<void>, failed: (err: unknown) => void): Promise<void> | undefined {
  let result;
  try {
    result = hook();
  } catch (err) {
    failed(err);
    return undefined;
  }
  if (!isThenable(result)) return undefined;
  return result.then(undefined, failed);
}

/**
 * One connection, raw ({@linkcode Pump}) or native (`NativeSession`): the
 * part of the {@linkcode Connection} contract and of the server's
 * bookkeeping that does not depend on who frames the bytes. A subclass
 * says what its state is, how a message, a prepared message and a ping are
 * written, and how the connection closes.
 *
 * @typeParam S The type of `state`.
 *
 * @example The shape of a subclass
 * ```ts ignore
 * class Mine<S> extends ConnectionBase<S> {
 *   get readyState() { return this.#socket.state; }
 *   protected write(data: MessageData) { return this.#socket.send(data); }
 *   // …writePrepared, writePing, closeNow, closeTimedOut, peerFault…
 * }
 * ```
 */
export abstract class ConnectionBase<S> implements Connection<S>, Tracked {
  // What the server's idle sweep asks of a connection: one object for every connection.
  static readonly #idleOps: IdleOps<ConnectionBase<unknown>> = {
    open: (conn) => conn.readyState === ReadyState.Open,
    busy: (conn) => conn.busy,
    ping: (conn) => conn.ping(),
    close: (conn) => conn.close(CloseCode.GoingAway, "Idle timeout"),
  };

  // What every connection of a server shares (hooks, registry, clock,
  // limits) sits in one object per server, read through the getters below:
  // one field per connection instead of ten.
  readonly #shared: SharedConfig;
  readonly #rate: RateLimiter | undefined;
  /** A hook's promise is pending: events wait. */
  protected busy = false;
  /** The output went over the high-water mark: `drain` follows once it is below. */
  protected needDrain = false;
  /** What `bytesReceived` reports. */
  protected received = 0;
  /**
   * The connection's timer of the moment: the close timer while waiting for
   * the peer's close frame. A subclass may time its other phases here too
   * (the raw pump: the handshake while connecting, the linger once closed),
   * one field for timers that never run at once.
   */
  protected timer: unknown;
  /** Our place in the server's idle sweep, while open with the idle timeout on. */
  protected idle: IdleHandle | undefined;
  #drainWaiters: (() => void)[] | undefined; // allocated by the first drained() that waits
  /** Messages handed to the `message` hook (for observers: plain counts, read when they collect). */
  protected messagesIn = 0;
  /** Messages accepted by `send()`. */
  protected messagesOut = 0;
  /** Bytes handed to the socket. */
  protected bytesOut = 0;

  /**
   * @param handler The application's hooks.
   * @param options Resolved connection options.
   * @param set The server's live connections.
   */
  constructor(handler: Handler<S>, options: Readonly<ConnectionOptions>, set: ConnectionSet) {
    const shared = sharedConfig(handler as Handler<unknown>, options, set);
    this.#shared = shared;
    this.#rate = options.rateLimit === undefined ? undefined : new RateLimiter(options.rateLimit, shared.clock);
    // An observer times the handshake from here; it keeps the time, not the connection.
    observerOf(handler)?.opening?.(this, shared.clock.now());
    set.add(this);
  }

  /** The timers this connection runs on. */
  get clock(): Clock {
    return this.#shared.clock;
  }
  /** The application's hooks. */
  protected get handler(): Handler<S> {
    return this.#shared.handler as Handler<S>;
  }
  /** The server's live connections; the connection adds itself, and removes itself once closed. */
  protected get set(): ConnectionSet {
    return this.#shared.set;
  }
  /** Output bytes at or above which `send()` returns `false`. */
  protected get highWaterMark(): number {
    return this.#shared.highWaterMark;
  }
  /** `maxBufferedBytes`. */
  protected get maxBuffered(): number {
    return this.#shared.maxBuffered;
  }
  /** Whether a send over `maxBufferedBytes` is only dropped (`bufferPolicy: "drop"`). */
  protected get dropOverCap(): boolean {
    return this.#shared.dropOverCap;
  }
  /** How long the peer has to answer our close frame. */
  protected get closeTimeoutMs(): number {
    return this.#shared.closeTimeoutMs;
  }
  /** Check the output cap on every send, not only under backpressure (a subclass may know better). */
  protected get capAlways(): boolean {
    return true;
  }

  // ---- what a subclass says ----

  abstract readonly id: string;
  abstract state: S;
  abstract readonly request: UpgradeRequest;
  abstract readonly remoteAddress: string;
  abstract readonly protocol: string;
  abstract readonly extensions: string;
  abstract readonly deflate: DeflateParams | undefined;
  abstract readonly readyState: ReadyState;
  abstract readonly bufferedAmount: number;
  abstract close(code?: number, reason?: string): void;
  abstract terminate(): void;
  abstract shutdown(code: number, reason: string): void;
  abstract destroy(): void;

  /** Whether messages may be sent: open, and no close waiting to be sent. */
  protected abstract readonly sendable: boolean;
  /** Sends a message on a sendable connection under its cap; the result is `send()`'s. */
  protected abstract write(data: MessageData, options: SendOptions | undefined): boolean;
  /** Sends a prepared message, likewise. */
  protected abstract writePrepared(message: PreparedMessage): boolean;
  /** Sends a ping (checked: at most 125 bytes) on an open connection. */
  protected abstract writePing(payload: Uint8Array): void;
  /** Starts the close handshake now, ahead of anything still queued (a hook failed). */
  protected abstract closeNow(code: number, reason: string): void;
  /** The close timer fired: the peer never answered our close frame. */
  protected abstract closeTimedOut(): void;
  /** The peer broke a rule that the adapter checks (rate limit, size): fail with its code. */
  protected abstract peerFault(error: ProtocolError): void;
  /** Whether the output is below the high-water mark with nothing left to hand over. */
  protected abstract readonly outputIdle: boolean;

  /** For observers: what this connection carried so far. */
  get [COUNTS](): TrafficCounts {
    return { messagesIn: this.messagesIn, messagesOut: this.messagesOut, bytesIn: this.received, bytesOut: this.bytesOut };
  }

  // ---- Connection ----

  /** Payload bytes (native) or socket bytes (raw) received so far. */
  get bytesReceived(): number {
    return this.received;
  }

  /**
   * Sends a message; `false` when the caller should wait for `drained()`,
   * or when the connection is closing or closed (the message is dropped).
   */
  send(data: MessageData, options?: SendOptions): boolean {
    if (!this.sendable) return this.#refuse(data);
    if ((this.needDrain || this.capAlways) && this.#overCap()) return false;
    this.messagesOut++;
    return this.write(data, options);
  }

  /** Sends a message framed once for many recipients; like `send()`. */
  sendPrepared(message: PreparedMessage): boolean {
    if (!this.sendable) return this.#refuse(message.data);
    if ((this.needDrain || this.capAlways) && this.#overCap()) return false;
    this.messagesOut++;
    return this.writePrepared(message);
  }

  /** Sends a ping; nothing on a closing or closed connection. */
  ping(data: MessageData = EMPTY): void {
    if (typeof data !== "string" && !ArrayBuffer.isView(data) && !(data instanceof ArrayBuffer)) {
      throw new UsageError("ERR_INVALID_DATA", "Invalid ping payload: expected a string, an ArrayBuffer or an ArrayBufferView");
    }
    const bytes = messageData(data);
    const payload = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
    if (payload.length > 125) {
      throw new UsageError("ERR_CONTROL_TOO_LONG", `Invalid ping payload: ${payload.length} bytes, at most 125`);
    }
    const state = this.readyState;
    if (state === ReadyState.Open) this.writePing(payload);
    else if (state === ReadyState.Connecting) throw notOpen("ping");
  }

  /** Resolves when the output has drained below the high-water mark, or at once once closed. */
  drained(): Promise<void> {
    if (this.outputIdle || this.readyState === ReadyState.Closed) return Promise.resolve();
    return new Promise((resolve) => (this.#drainWaiters ??= []).push(resolve));
  }

  // ---- for subclasses ----

  /** Calls a hook; a throw or a rejection reaches `error` and closes the connection with 1011. */
  protected call(hook: () => void | Promise<void>): Promise<void> | undefined {
    return callHook(hook, (err) => this.hookFailed(err));
  }

  /**
   * Runs the `message` hook as {@linkcode call} does, without a closure per
   * message: the hot path, once per message received on every adapter.
   */
  protected callMessage(data: string | Uint8Array, binary: boolean): Promise<void> | undefined {
    const handler = this.handler;
    if (handler.message === undefined) return undefined;
    let result;
    try {
      result = handler.message(this, data, binary);
    } catch (err) {
      this.hookFailed(err);
      return undefined;
    }
    if (!isThenable(result)) return undefined;
    return result.then(undefined, (err) => this.hookFailed(err));
  }

  /** A hook threw or rejected. */
  protected hookFailed(err: unknown): void {
    this.report(err);
    if (this.readyState === ReadyState.Open) this.closeNow(CloseCode.InternalError, INTERNAL_ERROR_REASON);
  }

  /** Hands `err` to the `error` hook, whose own failure is only logged. */
  protected report(err: unknown): void {
    this.safely(() => this.handler.error?.(this, err));
  }

  /** Runs a hook whose failure has nowhere else to go. */
  protected safely(fn: () => unknown): void {
    try {
      const result = fn();
      if (isThenable(result)) result.then(undefined, logHookFailure);
    } catch (err) {
      logHookFailure(err);
    }
  }

  /** A message arrived: `true` when it is over the rate limit (dropped, or the connection fails with 1008). */
  protected overRate(): boolean {
    const rate = this.#rate;
    if (rate === undefined || rate.take()) return false;
    if (rate.action === "close") this.peerFault(rateLimitError());
    return true;
  }

  /** The output went over the high-water mark: an observer records how much waits. */
  protected backpressured(): void {
    const observer = observerOf(this.handler);
    if (observer?.backpressure !== undefined) observer.backpressure(this.bufferedAmount);
  }

  /** The output drained below the high-water mark: resolves the `drained()` waiters. */
  protected drainedNow(): void {
    this.needDrain = false;
    this.resolveDrain();
  }

  /** Runs the `drain` hook while the connection can still send. */
  protected emitDrain(): void {
    const state = this.readyState;
    if (state === ReadyState.Open || state === ReadyState.Closing) this.safely(() => this.handler.drain?.(this));
  }

  /** Resolves every `drained()` waiting. */
  protected resolveDrain(): void {
    const waiters = this.#drainWaiters;
    if (waiters === undefined) return;
    this.#drainWaiters = undefined;
    for (const resolve of waiters) resolve();
  }

  /** Joins the server's idle sweep, when the idle timeout is on. */
  protected startIdle(): void {
    const { idleTimeoutMs, set, clock } = this.#shared;
    if (idleTimeoutMs > 0) this.idle = set.idleSweep(clock, idleTimeoutMs, ConnectionBase.#idleOps).add(this);
  }

  /** Leaves the idle sweep for good. */
  protected stopIdle(): void {
    this.idle?.stop();
    this.idle = undefined;
  }

  /** Starts the close timer: the peer has `closeTimeoutMs` to answer. */
  protected startCloseTimer(): void {
    this.timer = this.clock.setTimeout(() => this.closeTimedOut(), this.closeTimeoutMs);
  }

  /**
   * Whether the output is over `maxBufferedBytes`: the send is then refused,
   * and with `bufferPolicy: "close"` the connection closes with 1013.
   */
  #overCap(): boolean {
    if (this.bufferedAmount <= this.maxBuffered) return false;
    if (!this.dropOverCap) {
      this.report(bufferFullError(this.maxBuffered));
      this.close(CloseCode.TryAgainLater, "Output buffer full");
    }
    return true;
  }

  /** A send to a connection that is not open: too early is a misuse, too late drops the message. */
  #refuse(data: MessageData): false {
    if (this.readyState === ReadyState.Connecting) throw notOpen("send");
    messageData(data); // a bad argument still throws
    return false;
  }
}

/** What the connections of one server share; see {@linkcode sharedConfig}. */
interface SharedConfig {
  readonly handler: Handler<unknown>;
  readonly set: ConnectionSet;
  readonly clock: Clock;
  readonly highWaterMark: number;
  readonly maxBuffered: number;
  readonly dropOverCap: boolean;
  readonly closeTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

// Per resolved (frozen) options object: the last config made for it. A
// server passes the same handler, options and set to every connection.
const sharedConfigs = new WeakMap<object, SharedConfig>();

/**
 * The config a connection reads its hooks, registry, clock and limits from:
 * one object for all the connections of a server (same handler, frozen
 * options and set); a fresh one for options that may still change.
 */
function sharedConfig(handler: Handler<unknown>, options: Readonly<ConnectionOptions>, set: ConnectionSet): SharedConfig {
  const frozen = Object.isFrozen(options);
  const cached = frozen ? sharedConfigs.get(options) : undefined;
  if (cached !== undefined && cached.handler === handler && cached.set === set) return cached;
  const config: SharedConfig = {
    handler,
    set,
    clock: options.clock ?? systemClock,
    highWaterMark: options.highWaterMark ?? CONNECTION_DEFAULTS.highWaterMark,
    maxBuffered: options.maxBufferedBytes ?? CONNECTION_DEFAULTS.maxBufferedBytes,
    dropOverCap: (options.bufferPolicy ?? CONNECTION_DEFAULTS.bufferPolicy) === "drop",
    closeTimeoutMs: options.closeTimeoutMs ?? DEFAULT_LIMITS.closeTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? CONNECTION_DEFAULTS.idleTimeoutMs,
  };
  if (frozen) sharedConfigs.set(options, config);
  return config;
}

function notOpen(what: string): UsageError {
  return new UsageError("ERR_NOT_OPEN", `Cannot ${what}: the connection is not open yet`);
}
