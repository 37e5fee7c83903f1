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
