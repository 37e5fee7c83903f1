/**
 * The checks every entry point of the runtimes runs on what it was given,
 * before it listens: the handler's hooks and the option names (values are
 * checked where they are resolved). Plain JavaScript has no type checker to
 * catch `serve({ onMessage })` or `{ maxMessageSize: 1 }`.
 *
 * @module
 */

import type { ConnectionOptions } from "../plugins/hooks.ts";
import { checkHandler, checkOptions } from "../plugins/_check.ts";

/** Every key of {@linkcode ConnectionOptions}: the compiler keeps the list complete. */
const CONNECTION_KEYS = {
  maxMessageBytes: true,
  maxFrameBytes: true,
  maxFragments: true,
  minFragmentBytes: true,
  maxHeaderBytes: true,
  closeTimeoutMs: true,
  perMessageDeflate: true,
  protocols: true,
  clock: true,
  handshakeTimeoutMs: true,
  highWaterMark: true,
  maxBufferedBytes: true,
  bufferPolicy: true,
  idleTimeoutMs: true,
  maxConnections: true,
  maxConnectionsPerAddress: true,
  retryAfterSeconds: true,
  rateLimit: true,
  shutdownTimeoutMs: true,
  textAs: true,
} satisfies Record<keyof ConnectionOptions, true>;

/** The options of the adapters that take no address (`upgradeHandler`, `attach`, `nativeHandler`). */
export const CONNECTION_OPTIONS: readonly string[] = Object.freeze(Object.keys(CONNECTION_KEYS));
/** The options of every runtime's `serve()` and `serveNative()`. */
export const LISTEN_OPTIONS: readonly string[] = Object.freeze([...CONNECTION_OPTIONS, "port", "hostname", "tls"]);
/** The options of the root `serve()`, which picks the runtime. */
export const SERVE_OPTIONS: readonly string[] = Object.freeze([...LISTEN_OPTIONS, "transport"]);
/** The options of Hono's `upgradeWebSocket()`. */
export const HONO_ROUTE_OPTIONS: readonly string[] = Object.freeze([...CONNECTION_OPTIONS, "use", "app", "onError"]);

/**
 * Checks a handler and the names of its options.
 *
 * @param handler What was passed as the handler.
 * @param options What was passed as options, or `undefined`.
 * @param where The function, for the message, such as `"serve()"`.
 * @param known The option names it takes. Default: {@linkcode LISTEN_OPTIONS}.
 * @throws {UsageError} `ERR_INVALID_HANDLER` or `ERR_INVALID_OPTION`.
 *
 * @example
 * ```ts
 * import { checkServeArgs } from "./_check_args.ts";
 *
 * checkServeArgs({ message() {} }, { port: 0 }, "serve()"); // fine
 * ```
 */
export function checkServeArgs(handler: unknown, options: unknown, where: string, known: readonly string[] = LISTEN_OPTIONS): void {
  checkHandler(handler, where);
  checkOptions(options, known, where);
}

/**
 * Checks what Hono's `upgradeWebSocket()` was given: a handler (when it is
 * not the events factory) and the names of its options.
 *
 * @param source The handler or the function that creates the events.
 * @param options The route's options, or `undefined`.
 * @throws {UsageError} `ERR_INVALID_HANDLER` or `ERR_INVALID_OPTION`.
 */
export function checkHonoRoute(source: unknown, options: unknown): void {
  if (typeof source !== "function") checkHandler(source, "upgradeWebSocket()");
  checkOptions(options, HONO_ROUTE_OPTIONS, "upgradeWebSocket()");
}
