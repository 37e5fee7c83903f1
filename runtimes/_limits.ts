/**
 * The server-side limits every path applies the same way: the checks of
 * their options, the message rate limit, and the key connections are
 * counted under per remote address. Admission itself (503 and 429) lives in
 * {@linkcode ConnectionSet}, the idle timer and the output cap in the
 * pump and the native session.
 *
 * @module
 */

import { CloseCode } from "../core/close_code.ts";
import { ProtocolError, UsageError } from "../core/errors.ts";
import type { Clock, ConnectionOptions } from "../plugins/hooks.ts";

/** Defaults of the limits this module checks. */
export const LIMIT_DEFAULTS = Object.freeze({
  maxBufferedBytes: 16 * 1024 * 1024,
  bufferPolicy: "close" as "close" | "drop",
  idleTimeoutMs: 120_000,
  maxConnections: 100_000,
  maxConnectionsPerAddress: Infinity,
  retryAfterSeconds: 5,
  shutdownTimeoutMs: 10_000,
});

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
      throw invalid(`${key} must be an integer of at least ${min}${infinite ? " or Infinity" : ""}, got ${String(value)}`);
    }
  }
  const policy = options.bufferPolicy;
  if (policy !== undefined && policy !== "close" && policy !== "drop") {
    throw invalid(`bufferPolicy must be "close" or "drop", got ${String(policy)}`);
  }
  const rate = options.rateLimit;
  if (rate === undefined) return;
  if (typeof rate !== "object" || rate === null) throw invalid(`rateLimit must be an object, got ${String(rate)}`);
  if (!isCount(rate.messages, 1)) throw invalid(`rateLimit.messages must be a positive integer, got ${String(rate.messages)}`);
  if (rate.intervalMs !== undefined && !isCount(rate.intervalMs, 1)) {
    throw invalid(`rateLimit.intervalMs must be a positive integer, got ${String(rate.intervalMs)}`);
  }
  if (rate.action !== undefined && rate.action !== "close" && rate.action !== "drop") {
    throw invalid(`rateLimit.action must be "close" or "drop", got ${String(rate.action)}`);
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
 * What an {@linkcode IdleTimer} needs of its connection.
 *
 * @example
 * ```ts
 * import type { IdleHost } from "./_limits.ts";
 *
 * const host: IdleHost = { open: () => true, busy: () => false, ping: () => {}, close: () => {} };
 * ```
 */
export interface IdleHost {
  /** Whether the connection is still open (the timer stops otherwise). */
  open(): boolean;
  /** Whether a hook holds the events: reading is paused by the app, not by the peer. */
  busy(): boolean;
  /** Sends a ping. */
  ping(): void;
  /** Closes with 1001 `Idle timeout`. */
  close(): void;
}

/**
 * The idle timeout of one open connection, the same on raw and native paths:
 * a ping after half the timeout without a byte from the peer, `close()` after
 * all of it. `touch()` on every read costs one `clock.now()`; the timer fires
 * at most twice per timeout.
 *
 * @example
 * ```ts
 * import { systemClock } from "@duplex/ws";
 * import { IdleTimer } from "./_limits.ts";
 *
 * const idle = new IdleTimer(systemClock, 120_000, { open: () => true, busy: () => false, ping: () => {}, close: () => {} });
 * idle.touch(); // on every read
 * idle.stop(); // once the connection leaves the open state
 * ```
 */
export class IdleTimer {
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #host: IdleHost;
  #timer: unknown;
  #lastRead: number;
  #pingedAt = -Infinity;

  /**
   * Starts the timer.
   *
   * @param clock Where the time comes from.
   * @param timeoutMs The idle timeout, above 0.
   * @param host The connection.
   */
  constructor(clock: Clock, timeoutMs: number, host: IdleHost) {
    this.#clock = clock;
    this.#timeoutMs = timeoutMs;
    this.#host = host;
    this.#lastRead = clock.now();
    this.#timer = clock.setTimeout(this.#check, timeoutMs / 2);
  }

  /** Something arrived from the peer. */
  touch(): void {
    this.#lastRead = this.#clock.now();
  }

  /** Stops the timer for good. */
  stop(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  readonly #check = (): void => {
    this.#timer = undefined;
    const host = this.#host;
    if (!host.open()) return;
    const timeout = this.#timeoutMs;
    const now = this.#clock.now();
    if (host.busy()) this.#lastRead = now;
    const silent = now - this.#lastRead;
    if (silent >= timeout) {
      host.close();
      return;
    }
    if (silent < timeout / 2) {
      this.#timer = this.#clock.setTimeout(this.#check, timeout / 2 - silent);
      return;
    }
    if (this.#pingedAt <= this.#lastRead) {
      // The first check of this silence: one ping for a live peer to answer.
      this.#pingedAt = now;
      host.ping();
    }
    this.#timer = this.#clock.setTimeout(this.#check, timeout - silent);
  };
}
