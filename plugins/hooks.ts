/**
 * The contract between an application and every runtime adapter: the
 * {@linkcode Handler} hooks an app implements and the {@linkcode Connection}
 * each connection hands to them. Runtime-neutral: adapters on Node, Deno and
 * Bun run the same hooks with the same context.
 *
 * @module
 */

import type { DeflateNegotiation, DeflateParams } from "../core/deflate.ts";
import type { EngineOptions, MessageData } from "../core/engine.ts";
import type { PreparedMessage } from "../core/prepared.ts";
import type { UpgradeRequest } from "../core/handshake.ts";
import type { ReadyState } from "../core/state.ts";

/**
 * Where timers come from. Adapters hand every connection the runtime's
 * timers ({@linkcode systemClock}); tests pass a fake one through
 * {@linkcode ConnectionOptions.clock} and move time by hand.
 *
 * @example A clock that logs what it schedules
 * ```ts
 * import { type Clock, systemClock } from "@duplex/ws";
 *
 * const logging: Clock = {
 *   now: () => systemClock.now(),
 *   setTimeout(fn, ms) {
 *     console.log(`timer in ${ms} ms`);
 *     return systemClock.setTimeout(fn, ms);
 *   },
 *   clearTimeout: (handle) => systemClock.clearTimeout(handle),
 * };
 * ```
 */
export interface Clock {
  /** Milliseconds since an arbitrary origin; only differences matter. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer; a handle that already fired, or `undefined`, is ignored. */
  clearTimeout(handle: unknown): void;
}

/**
 * The runtime's own timers: `setTimeout`, `clearTimeout` and
 * `performance.now()`.
 *
 * @example
 * ```ts
 * import { systemClock } from "@duplex/ws";
 *
 * systemClock.setTimeout(() => console.log("a second later"), 1000);
 * ```
 */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimeout: (fn: () => void, ms: number): unknown => setTimeout(fn, ms),
  clearTimeout: (handle: unknown): void => clearTimeout(handle as ReturnType<typeof setTimeout> | undefined),
});

/**
 * How a connection ended, as reported to the `close` hook.
 *
 * @example
 * ```ts
 * import type { CloseInfo } from "@duplex/ws";
 *
 * const info: CloseInfo = { code: 1000, reason: "", wasClean: true };
 * ```
 */
export interface CloseInfo {
  /** The peer's close code; 1005 when its close frame had none, 1006 when there was no close frame. */
  code: number;
  /** The peer's close reason, or the description of the fault that failed the connection. */
  reason: string;
  /** Whether the close handshake completed. */
  wasClean: boolean;
}

/**
 * What the `upgrade` hook may return to accept the handshake: the
 * subprotocol to speak (one the client offered) and extra headers for the
 * 101 response. Return a `Response` instead to refuse with that status,
 * headers and body.
 *
 * @example
 * ```ts
 * import type { UpgradeAnswer } from "@duplex/ws";
 *
 * const answer: UpgradeAnswer = { protocol: "chat.v1", headers: { "X-Server": "duplex" } };
 * ```
 */
export interface UpgradeAnswer {
  /** The subprotocol; `""` for none. Default: the server's first preference that the client offered. */
  protocol?: string;
  /** Extra headers for the 101 response; pairs allow a name twice (`Set-Cookie`). */
  headers?: Record<string, string> | [string, string][];
}

/**
 * One WebSocket connection, as the hooks see it. `readyState` and
 * `bufferedAmount` are live.
 *
 * @typeParam S The type of `state`, the application's per-connection data.
 *
 * @example
 * ```ts
 * import type { Connection } from "@duplex/ws";
 *
 * function greet(ctx: Connection<{ name: string }>): void {
 *   ctx.send(`hello ${ctx.state.name}, you are ${ctx.id}`);
 * }
 * ```
 */
export interface Connection<S = Record<string, unknown>> {
  /** Unique id of the connection within the process. */
  readonly id: string;
  /** The opening handshake: method, URL, headers, offered subprotocols and extensions. */
  readonly request: UpgradeRequest;
  /** The peer's IP address, or `""` when the transport does not tell. */
  readonly remoteAddress: string;
  /** The negotiated subprotocol, or `""`. */
  readonly protocol: string;
  /** The negotiated `Sec-WebSocket-Extensions` value, or `""`. */
  readonly extensions: string;
  /**
   * The permessage-deflate parameters agreed on, or `undefined` when the
   * connection is not compressed (not enabled, not offered, or a native path
   * that does not tell).
   */
  readonly deflate: DeflateParams | undefined;
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: ReadyState;
  /** Bytes queued for the peer and not yet handed to the operating system. */
  readonly bufferedAmount: number;
  /**
   * Grows whenever something arrives from the peer: the bytes read on raw
   * paths; the payload bytes of each message, ping and pong (plus one) on
   * native paths. Compare two readings to tell whether the peer is alive.
   */
  readonly bytesReceived: number;
  /** The timers of this connection's adapter (a fake one in tests). */
  readonly clock: Clock;
  /** The application's data for this connection; starts as `{}`. */
  state: S;
  /**
   * Sends a message: a string as text, bytes as binary. On a connection
   * that is closing or closed the message is dropped and `false` returned,
   * without an error: a broadcast loop may meet a peer that is on its way
   * out (as with `ws` and Bun). Check `readyState` to tell that from
   * backpressure.
   *
   * @returns `false` when the caller should not send more now: the output
   *   is at or above the high-water mark (wait for
   *   {@linkcode Connection.drained}), or the connection is closing or
   *   closed (the message was dropped). `true` otherwise.
   * @param data The message.
   * @param options `{ compress: false }` sends this message uncompressed
   *   even when permessage-deflate is on.
   * @throws {UsageError} `ERR_INVALID_DATA` when `data` is not a string or
   *   bytes; `ERR_NOT_OPEN` before the connection opened (in the `upgrade`
   *   hook).
   */
  send(data: MessageData, options?: SendOptions): boolean;
  /**
   * Sends a message framed once for many recipients (fan-out): raw paths
   * write the shared frame bytes, native paths hand `message.data` to the
   * runtime. Dropped, with `false`, on a connection that is closing or
   * closed.
   *
   * @returns Like {@linkcode Connection.send}.
   * @throws {UsageError} `ERR_NOT_OPEN` before the connection opened.
   */
  sendPrepared(message: PreparedMessage): boolean;
  /**
   * Sends a ping (at most 125 bytes of payload); does nothing on a
   * connection that is closing or closed.
   *
   * @throws {UsageError} `ERR_CONTROL_TOO_LONG` for a payload over 125
   *   bytes, `ERR_INVALID_DATA` for one that is not a string or bytes,
   *   `ERR_NOT_OPEN` before the connection opened, `ERR_UNSUPPORTED` on a
   *   native path whose runtime cannot ping (Deno).
   */
  ping(data?: MessageData): void;
  /** Starts the close handshake (default code 1000). Does nothing when already closing. */
  close(code?: number, reason?: string): void;
  /** Drops the connection at once, without a close handshake; reported as 1006. */
  terminate(): void;
  /**
   * Resolves when the output queued so far has been handed to the socket
   * and the socket is below its high-water mark; at once on a closed
   * connection.
   */
  drained(): Promise<void>;
}

/**
 * The hooks an application implements. Every hook is optional. For one
 * connection the hooks run one at a time, in order: when a hook returns a
 * promise, the next event waits for it and the socket stops being read
 * (inbound backpressure). A hook that throws or rejects closes its own
 * connection with 1011 and reaches `error`.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example An echo server
 * ```ts
 * import type { Handler } from "@duplex/ws";
 *
 * const echo: Handler = {
 *   message(ctx, data) {
 *     ctx.send(data);
 *   },
 * };
 * ```
 */
export interface Handler<S = Record<string, unknown>> {
  /**
   * The opening handshake arrived, valid; nothing is answered until this
   * returns. Return a `Response` to refuse (status ≥ 400, its headers and
   * text body are sent), an {@linkcode UpgradeAnswer} or nothing to accept.
   */
  upgrade?(ctx: Connection<S>): UpgradeAnswer | Response | void | Promise<UpgradeAnswer | Response | void>;
  /** The 101 was sent: messages may flow. */
  open?(ctx: Connection<S>): void | Promise<void>;
  /**
   * A whole message: a `string` for text, a `Uint8Array` for binary. With
   * the option `textAs: "bytes"`, text comes as its UTF-8 bytes too
   * (validated): `binary` tells the two apart.
   */
  message?(ctx: Connection<S>, data: string | Uint8Array, binary: boolean): void | Promise<void>;
  /** A ping arrived (the pong was already sent). */
  ping?(ctx: Connection<S>, data: Uint8Array): void | Promise<void>;
  /** A pong arrived. */
  pong?(ctx: Connection<S>, data: Uint8Array): void | Promise<void>;
  /** Output that was above the high-water mark has drained. */
  drain?(ctx: Connection<S>): void;
  /**
   * The server is shutting down (`server.close()`): runs once per open
   * connection before its close frame, one at a time with the other hooks.
   * Messages it sends are delivered before the close frame; an async hook is
   * awaited, up to `shutdownTimeoutMs`.
   */
  shutdown?(ctx: Connection<S>): void | Promise<void>;
  /** The connection is closed; called once per opened connection. */
  close?(ctx: Connection<S>, info: CloseInfo): void | Promise<void>;
  /** A protocol fault by the peer, or a hook that threw. */
  error?(ctx: Connection<S>, error: unknown): void;
}

/**
 * Options every adapter accepts: the engine limits, the subprotocols the
 * server speaks, and the handshake timeout.
 *
 * @example
 * ```ts
 * import type { ConnectionOptions } from "@duplex/ws";
 *
 * const options: ConnectionOptions = { protocols: ["chat.v2", "chat.v1"], maxMessageBytes: 1 << 20 };
 * ```
 */
export interface ConnectionOptions extends EngineOptions {
  /**
   * permessage-deflate (RFC 7692): `true` to accept a client's offer with
   * the defaults, or options to tune it. Default `false` (off), as in `ws`
   * and Bun: compression costs CPU and memory per connection. On the native
   * paths, Bun compresses with its own (`true` or options turn it on);
   * Deno's server does not compress.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /**
   * Subprotocols the server speaks, in order of preference. The first one
   * the client offered is chosen; none when there is no match. Default: none.
   */
  protocols?: readonly string[];
  /** Where timers come from. Default {@linkcode systemClock}; tests pass a fake clock. */
  clock?: Clock;
  /** How long a raw connection may take to send its whole opening handshake, in ms. Default 10,000. */
  handshakeTimeoutMs?: number;
  /**
   * Output bytes (queued in the engine plus buffered by the socket) at or
   * above which `send()` returns `false` and reading pauses until the
   * output drains. Default 64 KiB.
   */
  highWaterMark?: number;
  /**
   * Most output bytes one connection may hold (what `bufferedAmount`
   * counts). While it is over this, a `send()` is refused per
   * `bufferPolicy`: a peer that stops reading cannot exhaust memory.
   * Default 16 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * What a send over `maxBufferedBytes` does: `"close"` (the default)
   * drops it and closes the connection with 1013 (try again later), so the
   * peer knows it lost messages; `"drop"` drops it, returns `false`, and the
   * connection stays open.
   */
  bufferPolicy?: "close" | "drop";
  /**
   * After this many ms without a byte from the peer, a ping is sent at half
   * of it and the connection is closed with 1001 at the end: a vanished
   * peer cannot hold a connection. A live client answers the ping, so a
   * quiet one stays. `0` turns it off. Default 120,000 (as Bun and Deno).
   */
  idleTimeoutMs?: number;
  /**
   * Most open connections of this server (handshakes that passed the
   * checks included); further upgrades get `503` with `Retry-After`.
   * Default 100,000.
   */
  maxConnections?: number;
  /**
   * Most open connections from one remote address; further upgrades from
   * it get `429` with `Retry-After`. Default: no limit (behind a proxy every
   * peer has the proxy's address).
   */
  maxConnectionsPerAddress?: number;
  /** Seconds sent in `Retry-After` with a 503 or 429 refusal. Default 5. */
  retryAfterSeconds?: number;
  /**
   * Most messages a connection may send per interval (a token bucket:
   * bursts up to `messages`, refilled over `intervalMs`). Default: no limit.
   */
  rateLimit?: RateLimitOptions;
  /**
   * How long `server.close()` waits for `shutdown` hooks and close
   * handshakes before it destroys the connections left. Default 10,000.
   */
  shutdownTimeoutMs?: number;
}

/**
 * A per-connection message rate limit: see
 * {@linkcode ConnectionOptions.rateLimit}.
 *
 * @example 20 messages a second, bursts of 20; the excess is dropped
 * ```ts
 * import type { RateLimitOptions } from "@duplex/ws";
 *
 * const rateLimit: RateLimitOptions = { messages: 20, intervalMs: 1000, action: "drop" };
 * ```
 */
export interface RateLimitOptions {
  /** Messages allowed per interval, and the largest burst. */
  messages: number;
  /** The interval in ms. Default 1,000. */
  intervalMs?: number;
  /**
   * A message over the limit: `"close"` (the default) closes with 1008
   * (policy violation) and reports a `ProtocolError` `WS_ERR_RATE_LIMIT` to
   * `error`; `"drop"` discards it before the `message` hook (and before
   * inflating it), and the connection stays open.
   */
  action?: "close" | "drop";
}

/**
 * Per-message options of {@linkcode Connection.send}.
 *
 * @example
 * ```ts
 * import type { Connection, SendOptions } from "@duplex/ws";
 *
 * const raw: SendOptions = { compress: false };
 * function sendJpeg(ctx: Connection, jpeg: Uint8Array): void {
 *   ctx.send(jpeg, raw); // already compressed: deflate would only cost CPU
 * }
 * function relayText(ctx: Connection, utf8: Uint8Array): void {
 *   ctx.send(utf8, { binary: false }); // text, from bytes received with textAs: "bytes"
 * }
 * ```
 */
export interface SendOptions {
  /**
   * `false` sends the message uncompressed even when permessage-deflate was
   * negotiated. Default `true`: compressed when negotiated and at least
   * `threshold` bytes long.
   */
  compress?: boolean;
  /**
   * `false` sends bytes as a text message, without decoding them: they must
   * be UTF-8 (they are not checked, so pass through what arrived as text
   * with `textAs: "bytes"`, whose bytes were). `true` sends a string as a
   * binary message of its UTF-8. Default: a string is text, bytes are
   * binary. On the native paths the runtime frames the message: bytes sent
   * as text are decoded to a string first (the cost this saves elsewhere).
   */
  binary?: boolean;
}

/**
 * How permessage-deflate (RFC 7692) is negotiated and run. The negotiation
 * options are {@linkcode DeflateNegotiation}'s; the rest tunes zlib.
 *
 * @example Less memory per connection
 * ```ts
 * import type { PerMessageDeflateOptions } from "@duplex/ws";
 *
 * const deflate: PerMessageDeflateOptions = {
 *   serverNoContextTakeover: true, // no compressor kept between messages
 *   clientNoContextTakeover: true, // no decompressor kept either
 *   threshold: 256,
 * };
 * ```
 */
export interface PerMessageDeflateOptions extends DeflateNegotiation {
  /** Messages shorter than this many bytes are sent uncompressed. Default 1,024. */
  threshold?: number;
  /** zlib compression level, 0–9, or -1 for zlib's default (6). Default -1. */
  level?: number;
  /** zlib memory level, 1–9: higher is faster and takes more memory. Default 8. */
  memLevel?: number;
  /**
   * At most this many zlib jobs run at once; the others wait in a queue, so
   * that thousands of connections cannot exhaust memory. Default: one queue
   * of 10 shared by every server in the process.
   */
  concurrency?: number;
}
