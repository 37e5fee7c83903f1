/**
 * Hono's shapes, structurally: the context a route reads, the events it
 * runs, and the `WSContext` its handlers get. Re-exporting Hono's own types
 * would drag Hono's lint errors into `deno doc --lint`, so they are written
 * out here. Named by `hono.ts`.
 *
 * @module
 */

import { UsageError } from "../core/errors.ts";
import type { ReadyState } from "../core/state.ts";
import type { App, AppOptions } from "../plugins/app.ts";
import type { Peer } from "../plugins/context.ts";
import type { ConnectionOptions } from "../plugins/hooks.ts";
import type { Middleware } from "../plugins/pipeline.ts";

// ---- Hono's shapes, structurally (re-exporting Hono's types breaks `deno doc --lint`) ----

/**
 * The part of Hono's `Context` the route uses, typed loosely as Hono's own
 * helper types its `c` (`c.get()` is `any`). Hono's `Context` fits it: to
 * get your app's exact types, annotate the parameter,
 * `upgradeWebSocket((c: Context<AppEnv>) => …)`.
 *
 * @example
 * ```ts
 * import type { HonoContext } from "@duplex/ws/hono";
 *
 * const roomOf = (c: HonoContext) => new URL(c.req.url).searchParams.get("room") ?? "lobby";
 * ```
 */
export interface HonoContext {
  /** The request. */
  readonly req: {
    /** The web-standard `Request`. */
    readonly raw: Request;
    /** Its URL. */
    readonly url: string;
    /** A request header, by name. */
    header(name: string): string | undefined;
  };
  /** The runtime's bindings: Bun's server, Deno's serve info, or Node's `{ incoming }`. */
  env: any;
  /** A variable set by earlier middleware (`c.set`), such as `jwtPayload`. */
  get(key: any): any;
  /** Sets a variable. */
  set(key: any, value: any): void;
  /** The response so far. */
  res: Response;
  /** Whether the response is final. */
  finalized: boolean;
}

/**
 * What a message event carries: text as a `string`, binary as an
 * `ArrayBuffer` (or a `Blob` when `ws.binaryType` is `"blob"`), as with
 * Hono's helper.
 *
 * @example
 * ```ts
 * import type { WSMessageReceive } from "@duplex/ws/hono";
 *
 * const size = (data: WSMessageReceive) => typeof data === "string" ? data.length : "size" in data ? data.size : data.byteLength;
 * ```
 */
export type WSMessageReceive = string | ArrayBuffer | Blob;

/**
 * The connection's state as a number, as in the browser's `WebSocket`:
 * 0 connecting, 1 open, 2 closing, 3 closed.
 *
 * @example
 * ```ts
 * import type { WSReadyState } from "@duplex/ws/hono";
 *
 * const open: WSReadyState = 1;
 * ```
 */
export type WSReadyState = 0 | 1 | 2 | 3;

/**
 * A route's event handlers, Hono's `WSEvents`: each gets the event and the
 * connection's {@linkcode WSContext}. They may be `async` (what they
 * return is awaited when it is a promise, and otherwise ignored): Duplex
 * runs one connection's events one at a time, in order. A handler that throws or
 * rejects closes its connection with 1011 and reaches `onError`.
 *
 * @typeParam S The type of `ws.raw.state`.
 *
 * @example
 * ```ts
 * import type { WSEvents } from "@duplex/ws/hono";
 *
 * const events: WSEvents = {
 *   onOpen: (_event, ws) => ws.send("welcome"),
 *   onMessage: (event, ws) => ws.send(event.data), // text as text, binary as binary
 *   onClose: (event) => console.log("closed", event.code),
 * };
 * ```
 */
export interface WSEvents<S = Record<string, unknown>> {
  /** The connection opened. */
  onOpen?(event: Event, ws: WSContext<S>): unknown;
  /** A whole message arrived. */
  onMessage?(event: MessageEvent<WSMessageReceive>, ws: WSContext<S>): unknown;
  /** The connection closed (`code`, `reason`, `wasClean`). */
  onClose?(event: CloseEvent, ws: WSContext<S>): unknown;
  /** The peer broke the protocol, or a handler threw: the event's `error`. */
  onError?(event: Event, ws: WSContext<S>): unknown;
}

/**
 * Options of {@linkcode upgradeWebSocket}: Duplex's connection options, the
 * Duplex middleware that runs before the events, and the app's pub/sub.
 *
 * Subprotocols are chosen by the server's preference among `protocols` (or
 * by a `subprotocols()` router in `use`); with neither, the answer has none,
 * on every runtime. Unlike Hono's helper, the client's first offer is never
 * echoed.
 *
 * `heartbeat()` in `use` pings on Node (`injectWebSocket()`) and on
 * `Bun.serve`, but not on `Deno.serve`: `Deno.upgradeWebSocket`'s socket
 * cannot send a ping, so there the heartbeat stops at once and the route
 * says so with one `console.warn` when it first upgrades. On that path,
 * Deno's own idle timeout pings instead: `idleTimeoutMs` (Deno pings after
 * half of it without traffic, and closes with 1001 at the full timeout).
 *
 * @typeParam S The type of `ws.raw.state`.
 *
 * @example
 * ```ts
 * import { heartbeat } from "@duplex/ws";
 * import type { UpgradeWebSocketOptions } from "@duplex/ws/hono";
 *
 * const options: UpgradeWebSocketOptions = {
 *   protocols: ["chat.v1"],
 *   maxMessageBytes: 64 * 1024,
 *   use: [heartbeat({ intervalMs: 30_000, timeoutMs: 10_000 })],
 * };
 * ```
 */
export interface UpgradeWebSocketOptions<S = Record<string, unknown>> extends ConnectionOptions {
  /** Duplex middleware run before the events: auth hooks, routers, heartbeat, limits. */
  use?: readonly Middleware<S>[];
  /** The route's app options: its pub/sub backplane and slow-subscriber policy. */
  app?: AppOptions;
  /**
   * Where errors go when the events have no `onError` (a handler or a Duplex
   * hook threw), and where the events factory's errors go (the client then
   * gets 500). `route.path` is the route's Hono path (`/chat/:room`).
   * Default: `console.error`, naming the path.
   */
  onError?: (error: unknown, route: { readonly path: string }) => void;
}

/**
 * What {@linkcode upgradeWebSocket} returns: a Hono middleware for the
 * route, with the route's Duplex app, its live connections and its shutdown.
 *
 * @typeParam C The Hono context type.
 * @typeParam S The type of `ws.raw.state`.
 * @typeParam A The type of `app`: the route's `App` (built from the events,
 *   or the one given), `undefined` only for a route served by a plain
 *   `Handler` object.
 *
 * @example
 * ```ts
 * import { upgradeWebSocket } from "@duplex/ws/hono";
 *
 * const chat = upgradeWebSocket(() => ({}));
 * chat.app.publish("news", "hello"); // the route's subscribers get it
 * console.log(chat.connections); // 0
 * await chat.close(1001, "going away");
 * ```
 */
export interface WebSocketRoute<
  C extends HonoContext = HonoContext,
  S = Record<string, unknown>,
  A extends App<S> | undefined = App<S>,
> {
  /** The Hono middleware: upgrades the request, or answers it. */
  (c: C, next: () => Promise<void>): Promise<Response>;
  /** The route's Duplex app: `app.publish(topic, data)` reaches its subscribers. */
  readonly app: A;
  /** Number of live connections on this route. */
  readonly connections: number;
  /** Closes every connection of this route (default 1001) and resolves once all are closed. */
  close(code?: number, reason?: string): Promise<void>;
}

// ---- the connection, as Hono's handlers see it ----

/** The bytes of each `Blob` a route handed to `onMessage`, so that `ws.send(event.data)` can echo it at once. */
const receivedBlobs = new WeakMap<Blob, Uint8Array>();

function bytesOf(data: ArrayBuffer | ArrayBufferView | Blob): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const bytes = typeof Blob === "undefined" ? undefined : receivedBlobs.get(data);
  if (bytes !== undefined) return bytes;
  throw new UsageError(
    "ERR_INVALID_DATA",
    data instanceof Blob
      ? "Invalid message: a Blob is sent only when this route received it; send `await blob.arrayBuffer()` instead"
      : "Invalid message: expected a string, an ArrayBuffer, an ArrayBufferView or a received Blob",
  );
}

/**
 * A received binary message as a `Blob` (`binaryType = "blob"`) that
 * `WSContext.send` can send back without reading it.
 *
 * @example
 * ```ts ignore
 * const data = ws.binaryType === "blob" ? receivedBlob(bytes) : bytes.buffer;
 * ```
 */
export function receivedBlob(bytes: Uint8Array): Blob {
  const blob = new Blob([bytes as Uint8Array<ArrayBuffer>]);
  receivedBlobs.set(blob, bytes);
  return blob;
}

/**
 * One connection, shaped like Hono's `WSContext`: `send`, `close`,
 * `readyState`, `protocol`, `url`, `binaryType`, and `raw`, the Duplex
 * {@linkcode Peer} (topics, state, `bufferedAmount`, `ping`…).
 *
 * @typeParam S The type of `raw.state`.
 *
 * @example
 * ```ts
 * import { upgradeWebSocket } from "@duplex/ws/hono";
 *
 * upgradeWebSocket(() => ({
 *   onOpen(_event, ws) {
 *     ws.raw?.subscribe("news");
 *     ws.send(`hello, you speak ${ws.protocol || "no subprotocol"}`);
 *   },
 * }));
 * ```
 */
export class WSContext<S = Record<string, unknown>> {
  /** The Duplex peer: topics, state, `bufferedAmount`, `ping`, `terminate`… */
  readonly raw: Peer<S>;
  /** The request URL. */
  readonly url: URL | null;
  /** How binary messages arrive: `"arraybuffer"` (default) or `"blob"`. */
  binaryType: BinaryType = "arraybuffer";

  /**
   * Wraps a peer; the route creates one per connection.
   *
   * @param peer The Duplex peer.
   * @param url The request URL.
   */
  constructor(peer: Peer<S>, url: URL | null) {
    this.raw = peer;
    this.url = url;
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  get readyState(): WSReadyState {
    return this.raw.readyState as ReadyState as WSReadyState;
  }

  /** The negotiated subprotocol, `""` for none (typed `string | null` as Hono's `WSContext`). */
  get protocol(): string | null {
    return this.raw.protocol;
  }

  /**
   * Sends a message: a `string` as text, bytes as binary, so that
   * `ws.send(event.data)` echoes a message as it came. A `Blob` is sent
   * only when it is a message this connection's route received (with
   * `binaryType = "blob"`): its bytes are still at hand; read any other
   * `Blob` first (`await blob.arrayBuffer()`).
   *
   * On a connection that is closing or closed, the message is dropped and
   * `send` returns `false` without throwing, as Hono's own helpers do: a
   * broadcast loop may meet a peer that is leaving.
   *
   * @param data The message.
   * @param options Hono's send options: `{ compress: false }` sends it uncompressed when permessage-deflate is on.
   * @returns `false` when the output is above the high-water mark (the message is queued), or when the connection is closing or closed (it is dropped): `readyState` tells which.
   * @throws {UsageError} `ERR_NOT_OPEN` before the connection opened; `ERR_INVALID_DATA` for a `Blob` this route did not receive.
   */
  send(data: string | ArrayBuffer | ArrayBufferView | Blob, options?: { compress?: boolean }): boolean {
    // A closing or closed connection drops it and answers false, as every
    // connection's send() does.
    return this.raw.send(typeof data === "string" ? data : bytesOf(data), options);
  }

  /**
   * Starts the close handshake.
   *
   * @param code The close code. Default 1000.
   * @param reason The reason, at most 123 bytes of UTF-8.
   */
  close(code?: number, reason?: string): void {
    this.raw.close(code, reason);
  }
}
