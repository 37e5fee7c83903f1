/**
 * The server-side limits every path applies the same way: the checks of
 * their options, the message rate limit, and the key connections are
 * counted under per remote address. Admission itself (503 and 429) lives in
 * {@linkcode ConnectionSet}, the output cap in the pump and the native
 * session; the idle timeout is one {@linkcode IdleSweep} per server.
 *
 * @module
 */

import { describeValue } from "../core/_describe.ts";
import { CloseCode } from "../core/close_code.ts";
import { ProtocolError, UsageError } from "../core/errors.ts";
import { type Clock, type ConnectionOptions, systemClock } from "../plugins/hooks.ts";

function invalid(message: string): UsageError {
  return new UsageError("ERR_INVALID_OPTION", `Invalid option: ${message}`);
}

function isCount(value: unknown, min: number, infinite = false): boolean {
  if (infinite && value === Infinity) return true;
  return typeof value === "number" && Number.isSafeInteger(value) && value >= min;
}

/**
 * Checks the server limits of a set of connection options.
 *
 * @param options What the application passed.
 * @throws {UsageError} `ERR_INVALID_OPTION` naming the bad option.
 *
 * @example
 * ```ts
 * import { checkLimitOptions } from "./_limits.ts";
 *
 * checkLimitOptions({ maxConnections: 1000, rateLimit: { messages: 10 } }); // fine
 * ```
 */
export function checkLimitOptions(options: ConnectionOptions): void {
  const counts = [
    ["maxBufferedBytes", 1, false],
    ["idleTimeoutMs", 0, false],
    ["maxConnections", 1, true],
    ["maxConnectionsPerAddress", 1, true],
    ["retryAfterSeconds", 0, false],
    ["shutdownTimeoutMs", 0, false],
  ] as const;
  for (const [key, min, infinite] of counts) {
    const value = options[key];
    if (value !== undefined && !isCount(value, min, infinite)) {
      throw invalid(`${key} must be an integer of at least ${min}${infinite ? " or Infinity" : ""}, got ${describeValue(value)}`);
    }
  }
  const policy = options.bufferPolicy;
  if (policy !== undefined && policy !== "close" && policy !== "drop") {
    throw invalid(`bufferPolicy must be "close" or "drop", got ${describeValue(policy)}`);
  }
  const rate = options.rateLimit;
  if (rate === undefined) return;
  if (typeof rate !== "object" || rate === null) throw invalid(`rateLimit must be an object, got ${describeValue(rate)}`);
  if (!isCount(rate.messages, 1)) throw invalid(`rateLimit.messages must be a positive integer, got ${describeValue(rate.messages)}`);
  if (rate.intervalMs !== undefined && !isCount(rate.intervalMs, 1)) {
    throw invalid(`rateLimit.intervalMs must be a positive integer, got ${describeValue(rate.intervalMs)}`);
  }
  if (rate.action !== undefined && rate.action !== "close" && rate.action !== "drop") {
    throw invalid(`rateLimit.action must be "close" or "drop", got ${describeValue(rate.action)}`);
  }
}

/**
 * The address connections are counted under: an IPv4-mapped IPv6 address
 * (`::ffff:1.2.3.4`) counts as its IPv4 address, so that one client is one
 * key whichever way the socket reports it.
 *
 * @param remoteAddress The peer's address, or `""`.
 * @returns The key.
 *
 * @example
 * ```ts
 * import { addressKey } from "./_limits.ts";
 *
 * console.log(addressKey("::ffff:127.0.0.1")); // "127.0.0.1"
 * ```
 */
export function addressKey(remoteAddress: string): string {
  return remoteAddress.startsWith("::ffff:") && remoteAddress.includes(".") ? remoteAddress.slice(7) : remoteAddress.toLowerCase();
}

/**
 * A token bucket for one connection's messages: `messages` tokens at most,
 * refilled continuously at `messages` per `intervalMs`.
 *
 * @example
 * ```ts
 * import { systemClock } from "@duplex/ws";
 * import { RateLimiter } from "./_limits.ts";
 *
 * const limiter = new RateLimiter({ messages: 2, intervalMs: 1000 }, systemClock);
 * console.log(limiter.take(), limiter.take(), limiter.take()); // true true false
 * ```
 */
export class RateLimiter {
  readonly #capacity: number;
  readonly #perMs: number;
  readonly #clock: Clock;
  /** `"close"` or `"drop"`: what the connection does with a message over the limit. */
  readonly action: "close" | "drop";
  #tokens: number;
  #last: number;

  /**
   * @param options The limit (already checked).
   * @param clock Where the time comes from.
   */
  constructor(options: NonNullable<ConnectionOptions["rateLimit"]>, clock: Clock) {
    this.#capacity = options.messages;
    this.#perMs = options.messages / (options.intervalMs ?? 1000);
    this.#clock = clock;
    this.action = options.action ?? "close";
    this.#tokens = options.messages;
    this.#last = clock.now();
  }

  /** Takes a token for one message; `false` when there is none left. */
  take(): boolean {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#last) * this.#perMs);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/**
 * The fault a connection over its rate limit fails with (policy `"close"`).
 *
 * @returns A `ProtocolError` with close code 1008.
 *
 * @example
 * ```ts
 * import { rateLimitError } from "./_limits.ts";
 *
 * console.log(rateLimitError().closeCode); // 1008
 * ```
 */
export function rateLimitError(): ProtocolError {
  return new ProtocolError("WS_ERR_RATE_LIMIT", CloseCode.PolicyViolation, "Rate limit exceeded");
}

/**
 * The fault a connection over `maxBufferedBytes` fails with (policy `"close"`).
 *
 * @param maxBufferedBytes The limit, for the message.
 * @returns A `ProtocolError` with close code 1013.
 *
 * @example
 * ```ts
 * import { bufferFullError } from "./_limits.ts";
 *
 * console.log(bufferFullError(1024).code); // "WS_ERR_BUFFER_FULL"
 * ```
 */
export function bufferFullError(maxBufferedBytes: number): ProtocolError {
  return new ProtocolError("WS_ERR_BUFFER_FULL", CloseCode.TryAgainLater, `Output buffer full: over ${maxBufferedBytes} bytes, the peer does not read`);
}

/**
 * What an {@linkcode IdleSweep} asks of the connections it watches. One
 * object per kind of connection (the pump, the native session), shared by
 * all of them: nothing is allocated per connection for it.
 *
 * @example
 * ```ts
 * import type { IdleOps } from "./_limits.ts";
 *
 * interface Conn { open: boolean; pings: number }
 * const ops: IdleOps<Conn> = {
 *   open: (c) => c.open,
 *   busy: () => false,
 *   ping: (c) => void c.pings++,
 *   close: (c) => void (c.open = false),
 * };
 * ```
 */
export interface IdleOps<T> {
  /** Whether the connection is still open (it leaves the sweep otherwise). */
  open(connection: T): boolean;
  /** Whether a hook holds the events: reading is paused by the app, not by the peer. */
  busy(connection: T): boolean;
  /** Sends a ping. */
  ping(connection: T): void;
  /** Closes with 1001 `Idle timeout`. */
  close(connection: T): void;
}

/**
 * One connection's place in an {@linkcode IdleSweep}, from
 * {@linkcode IdleSweep.add}.
 *
 * @example
 * ```ts
 * import { type IdleHandle, IdleSweep } from "./_limits.ts";
 * import { systemClock } from "@duplex/ws";
 *
 * const sweep = new IdleSweep(systemClock, 120_000, { open: () => true, busy: () => false, ping: () => {}, close: () => {} });
 * const idle: IdleHandle = sweep.add({});
 * idle.touch(); // on every read
 * idle.stop(); // once the connection leaves the open state
 * ```
 */
export interface IdleHandle {
  /** Something arrived from the peer. */
  touch(): void;
  /** Leaves the sweep for good (closing, closed). */
  stop(): void;
}

/**
 * The system clock's time, read once per turn of the event loop: a read on
 * a native path is one `message` call per message (Bun calls one per frame),
 * and `performance.now()` costs as much as the rest of Duplex's work on a
 * small message there (50 ns on a VM whose clock is `kvm-clock`). Every read
 * handled in one turn counts as made when the turn's first one was, which is
 * earlier by at most the time the turn took. A clock of the application's
 * (a test's) is read every time.
 */
let turnTime = -1;
const endTurn = (): void => void (turnTime = -1);
const nextTurn: (fn: () => void) => unknown = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate ??
  ((fn) => setTimeout(fn, 0));

function readTime(clock: Clock): number {
  if (clock !== systemClock) return clock.now();
  if (turnTime < 0) {
    turnTime = clock.now();
    nextTurn(endTurn);
  }
  return turnTime;
}

const OUT = 0;
const FRESH = 1; // silent for less than half the timeout: next, a ping
const PINGED = 2; // pinged: next, the close

class IdleEntry<T> implements IdleHandle {
  prev: IdleEntry<T> | undefined = undefined;
  next: IdleEntry<T> | undefined = undefined;
  list = FRESH;
  lastRead: number;
  readonly sweep: IdleSweep<T>;
  readonly connection: T;

  constructor(sweep: IdleSweep<T>, connection: T, now: number) {
    this.sweep = sweep;
    this.connection = connection;
    this.lastRead = now;
  }

  touch(): void {
    this.sweep.touch(this);
  }

  stop(): void {
    this.sweep.remove(this);
  }
}

/**
 * The idle timeout of every open connection of one kind on one server, the
 * same on raw and native paths: a ping after half the timeout without a
 * byte from the peer, `close()` after all of it.
 *
 * One timer for all the connections, not one per connection: connections
 * sit in two lists ordered by their last read (silent, then pinged), as
 * Node's own socket timeouts do, so the timer is always due at the head of
 * one of them and each firing only visits connections that are due. A read
 * costs a move to the tail, and one `clock.now()` per turn of the event
 * loop; the timings are exact to that turn.
 *
 * @example
 * ```ts
 * import { systemClock } from "@duplex/ws";
 * import { IdleSweep } from "./_limits.ts";
 *
 * const sweep = new IdleSweep<{ name: string }>(systemClock, 120_000, {
 *   open: () => true,
 *   busy: () => false,
 *   ping: (c) => console.log("ping", c.name),
 *   close: (c) => console.log("close", c.name),
 * });
 * const idle = sweep.add({ name: "a" });
 * idle.stop();
 * ```
 */
export class IdleSweep<T> {
  /** Where the time comes from. */
  readonly clock: Clock;
  /** The idle timeout, above 0. */
  readonly timeoutMs: number;
  /** What the sweep asks of its connections. */
  readonly ops: IdleOps<T>;
  #freshHead: IdleEntry<T> | undefined;
  #freshTail: IdleEntry<T> | undefined;
  #pingedHead: IdleEntry<T> | undefined;
  #pingedTail: IdleEntry<T> | undefined;
  #timer: unknown;
  #due = Infinity; // when #timer fires

  /**
   * @param clock Where the time comes from.
   * @param timeoutMs The idle timeout, above 0.
   * @param ops What the sweep asks of its connections.
   */
  constructor(clock: Clock, timeoutMs: number, ops: IdleOps<T>) {
    this.clock = clock;
    this.timeoutMs = timeoutMs;
    this.ops = ops;
  }

  /**
   * Starts watching a connection that just opened.
   *
   * @returns Its handle: `touch()` on every read, `stop()` when it leaves the open state.
   */
  add(connection: T): IdleHandle {
    const entry = new IdleEntry(this, connection, readTime(this.clock));
    this.#append(entry, FRESH);
    // Every other entry is due no later than this one: only an idle sweep needs arming.
    if (this.#timer === undefined) this.#arm();
    return entry;
  }

  /** {@linkcode IdleHandle.touch}, for a handle of this sweep. */
  touch(handle: IdleHandle): void {
    const entry = handle as IdleEntry<T>;
    const now = readTime(this.clock);
    // Read at this time already: every entry after it was too, so it is in
    // its place (on a native path, most messages come in a turn that had one).
    if (entry.lastRead === now && entry.list === FRESH) return;
    entry.lastRead = now;
    if (entry === this.#freshTail || entry.list === OUT) return;
    this.#unlink(entry);
    this.#append(entry, FRESH);
  }

  /** {@linkcode IdleHandle.stop}, for a handle of this sweep. */
  remove(handle: IdleHandle): void {
    const entry = handle as IdleEntry<T>;
    if (entry.list === OUT) return;
    this.#unlink(entry);
    if (this.#freshHead === undefined && this.#pingedHead === undefined) this.#disarm();
  }

  #append(entry: IdleEntry<T>, list: typeof FRESH | typeof PINGED): void {
    entry.list = list;
    entry.next = undefined;
    if (list === FRESH) {
      entry.prev = this.#freshTail;
      if (this.#freshTail === undefined) this.#freshHead = entry;
      else this.#freshTail.next = entry;
      this.#freshTail = entry;
    } else {
      entry.prev = this.#pingedTail;
      if (this.#pingedTail === undefined) this.#pingedHead = entry;
      else this.#pingedTail.next = entry;
      this.#pingedTail = entry;
    }
  }

  #unlink(entry: IdleEntry<T>): void {
    const { prev, next } = entry;
    if (entry.list === FRESH) {
      if (prev === undefined) this.#freshHead = next;
      else prev.next = next;
      if (next === undefined) this.#freshTail = prev;
      else next.prev = prev;
    } else {
      if (prev === undefined) this.#pingedHead = next;
      else prev.next = next;
      if (next === undefined) this.#pingedTail = prev;
      else next.prev = prev;
    }
    entry.prev = entry.next = undefined;
    entry.list = OUT;
  }

  #disarm(): void {
    this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due = Infinity;
  }

  /** Sets the timer to the earliest due entry, or clears it when none is left. */
  #arm(): void {
    const timeout = this.timeoutMs;
    const fresh = this.#freshHead === undefined ? Infinity : this.#freshHead.lastRead + timeout / 2;
    const pinged = this.#pingedHead === undefined ? Infinity : this.#pingedHead.lastRead + timeout;
    const due = Math.min(fresh, pinged);
    if (due === this.#due && this.#timer !== undefined) return;
    this.#disarm();
    if (due === Infinity) return;
    this.#due = due;
    this.#timer = this.clock.setTimeout(this.#sweep, Math.max(0, due - this.clock.now()));
  }

  readonly #sweep = (): void => {
    this.#timer = undefined;
    this.#due = Infinity;
    const timeout = this.timeoutMs;
    const now = readTime(this.clock);
    try {
      // Pinged and still silent at the full timeout: close.
      for (let entry = this.#pingedHead; entry !== undefined && entry.lastRead + timeout <= now; entry = this.#pingedHead) {
        this.#unlink(entry);
        this.#visit(entry, now, true);
      }
      // Silent for half the timeout: ping (or close, if the timer came late).
      for (let entry = this.#freshHead; entry !== undefined && entry.lastRead + timeout / 2 <= now; entry = this.#freshHead) {
        this.#unlink(entry);
        this.#visit(entry, now, entry.lastRead + timeout <= now);
      }
    } finally {
      this.#arm();
    }
  };

  #visit(entry: IdleEntry<T>, now: number, over: boolean): void {
    const ops = this.ops;
    const connection = entry.connection;
    if (!ops.open(connection)) return; // left without stop(): out of the sweep
    if (ops.busy(connection)) {
      // A hook holds the events: the peer is not the one keeping quiet.
      entry.lastRead = now;
      this.#append(entry, FRESH);
    } else if (over) {
      ops.close(connection);
    } else {
      this.#append(entry, PINGED);
      ops.ping(connection);
    }
  }
}
