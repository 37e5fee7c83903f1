/**
 * Connection options, resolved once per server: the checks that make a bad
 * option fail when the server is created, and the defaults every
 * connection (raw or native) falls back on.
 *
 * @module
 */

import { describeValue } from "../core/_describe.ts";
import { UsageError } from "../core/errors.ts";
import { resolveLimits } from "../core/options.ts";
import { textAsBytes } from "../core/_utf8.ts";
import { deflateConfig } from "./_deflate.ts";
import { checkLimitOptions } from "./_limits.ts";
import { type ConnectionOptions, systemClock } from "../plugins/hooks.ts";

/**
 * Defaults of the connection options that the engine does not resolve
 * (the engine's own are core's `DEFAULT_LIMITS`). Internal: not exported
 * from any entry point.
 *
 * @example
 * ```ts
 * import { CONNECTION_DEFAULTS } from "./_options.ts";
 *
 * console.log(CONNECTION_DEFAULTS.highWaterMark); // 65536
 * ```
 */
export const CONNECTION_DEFAULTS = Object.freeze({
  highWaterMark: 64 * 1024,
  handshakeTimeoutMs: 10_000,
  maxBufferedBytes: 16 * 1024 * 1024,
  bufferPolicy: "close" as "close" | "drop",
  idleTimeoutMs: 120_000,
  maxConnections: 100_000,
  maxConnectionsPerAddress: Infinity,
  retryAfterSeconds: 5,
  shutdownTimeoutMs: 10_000,
});

/** The default `highWaterMark` of a connection's output, bytes. */
export const DEFAULT_HIGH_WATER_MARK: number = CONNECTION_DEFAULTS.highWaterMark;

/**
 * Checks connection options once, when a server is created, so that a bad
 * option fails there with a {@linkcode UsageError} rather than on the first
 * connection.
 *
 * @param options What the application passed.
 * @returns A frozen, complete copy, shared by every connection of the server.
 * @throws {UsageError} When a limit or timeout is not a valid integer, or
 *   `protocols` is not a list of strings.
 *
 * @example
 * ```ts
 * import { resolveConnectionOptions } from "./_options.ts";
 *
 * const options = resolveConnectionOptions({ protocols: ["chat.v1"], closeTimeoutMs: 1000 });
 * console.log(options.maxMessageBytes); // 16777216
 * ```
 */
export function resolveConnectionOptions(options: ConnectionOptions): Readonly<ConnectionOptions> {
  const limits = resolveLimits(options);
  for (const key of ["handshakeTimeoutMs", "highWaterMark"] as const) {
    const value = options[key];
    if (value !== undefined && (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1)) {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: ${key} must be a positive integer, got ${describeValue(value)}`);
    }
  }
  const protocols = options.protocols ?? [];
  if (!Array.isArray(protocols) || protocols.some((p) => typeof p !== "string" || p === "")) {
    throw new UsageError("ERR_INVALID_OPTION", "Invalid option: protocols must be a list of non-empty strings");
  }
  checkLimitOptions(options);
  textAsBytes(options.textAs);
  const clock = options.clock ?? systemClock;
  if (typeof clock !== "object" || clock === null || ["now", "setTimeout", "clearTimeout"].some((k) => typeof (clock as unknown as Record<string, unknown>)[k] !== "function")) {
    throw new UsageError("ERR_INVALID_OPTION", "Invalid option: clock must have now, setTimeout and clearTimeout");
  }
  const resolved = Object.freeze({ ...options, ...limits, clock, protocols: Object.freeze([...protocols]) });
  deflateConfig(resolved); // checks perMessageDeflate now, not at the first connection
  return resolved;
}
