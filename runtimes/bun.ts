/**
 * The Bun adapter: Duplex on raw `Bun.listen` sockets (the engine does the
 * framing: every close code, limit and timer as on Node), or over Bun's own
 * WebSocket server for apps that already run `Bun.serve` (the native path:
 * Bun does the framing, Duplex runs the same hooks and context on top).
 *
 * @example The raw server
 * ```ts
 * import { serve } from "@duplex/ws/bun";
 *
 * const server = await serve({ message: (ctx, data) => void ctx.send(data) }, { port: 8080 });
 * console.log(`listening on ${server.url}`);
 * ```
 *
 * @example Inside an existing `Bun.serve` app
 * ```ts
 * import { nativeHandler } from "@duplex/ws/bun";
 *
 * const ws = nativeHandler({ message: (ctx, data) => void ctx.send(data) });
 * const app = {
 *   port: 8080,
 *   fetch: (req: Request, server: Parameters<typeof ws.upgrade>[1]) =>
 *     new URL(req.url).pathname === "/ws" ? ws.upgrade(req, server) : new Response("hello"),
 *   websocket: ws.websocket,
 * };
 * // Bun.serve(app);
 * ```
 *
 * @module
 */

import { CloseCode } from "../core/close_code.ts";
import { FrameArena } from "../core/frame_arena.ts";
import { UsageError } from "../core/errors.ts";
import type { ConnectionOptions, Handler } from "../plugins/hooks.ts";
import { nativeUpgrade, websocketHandler } from "./_bun_native.ts";
import { Pump, type Transport } from "./_pump.ts";
import { ConnectionSet } from "./_registry.ts";
import { resolveConnectionOptions } from "./_options.ts";
import { type ListenOptions, makeServer, serveSetup, type Server, type TlsCertificate } from "./_server.ts";
import { checkServeArgs, CONNECTION_OPTIONS } from "./_check_args.ts";

export type { ListenOptions, Server, TlsCertificate };

// ---- the parts of Bun's API this adapter uses ----

interface BunSocket {
  data: BunTransport;
  write(data: Uint8Array): number;
  shutdown(halfClose?: boolean): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  setNoDelay?(noDelay?: boolean): boolean;
  readonly remoteAddress: string;
}

interface BunSocketListener {
  readonly port: number;
  stop(closeActiveConnections?: boolean): void;
}

interface BunNamespace {
  listen(options: {
    hostname: string;
    port: number;
    tls?: { cert: string; key: string };
    allowHalfOpen: boolean;
    data?: undefined;
    socket: {
      binaryType: "uint8array";
      open(socket: BunSocket): void;
      data(socket: BunSocket, data: Uint8Array): void;
      drain(socket: BunSocket): void;
      end(socket: BunSocket): void;
      close(socket: BunSocket): void;
      error(socket: BunSocket, error: Error): void;
    };
  }): BunSocketListener;
  serve(options: {
    port: number;
    hostname: string;
    tls?: { cert: string; key: string };
    fetch(request: Request, server: BunServer): Response | undefined | Promise<Response | undefined>;
    websocket: BunWebSocketHandler;
  }): BunServer & { readonly port: number; stop(closeActiveConnections?: boolean): Promise<void> };
}

function bun(): BunNamespace {
  const ns = (globalThis as { Bun?: BunNamespace }).Bun;
  if (ns === undefined) throw new UsageError("ERR_WRONG_RUNTIME", "@duplex/ws/bun runs on Bun only");
  return ns;
}

/**
 * Options of {@linkcode serve}: where to listen, TLS, and the connection
 * options.
 *
 * @example
 * ```ts
 * import type { ServeOptions } from "@duplex/ws/bun";
 *
 * const options: ServeOptions = { port: 0, protocols: ["chat.v1"], maxMessageBytes: 1 << 20 };
 * ```
 */
export interface ServeOptions extends ListenOptions {}

// ---- raw path ----

/** Queued bytes at or above which `write` asks the pump to wait. */
const WRITE_HIGH_WATER_MARK = 16 * 1024;
/** Bytes read and held while the pump does not read, before the socket itself is paused. */
const HOLD_BYTES = 64 * 1024;
/** Consecutive chunks up to this many bytes in all leave in one `socket.write()`, joined in {@linkcode staging}. */
const STAGING_BYTES = 256 * 1024;

/**
 * Where a write's chunks are joined. Bun's sockets have no `writev` and each
 * `socket.write()` is a `send()` of its own: a 64 KiB echo went out as a
 * 10-byte header segment, then its payload, where `Bun.serve` makes one
 * `sendmsg`. One buffer for every connection, reused (a fresh one per write
 * costs page faults on top of the copy): every write is synchronous, and what
 * Bun does not take is copied out of it before the next write.
 */
let staging = new Uint8Array(0);

/**
 * Joins `chunks[start..end)`, `total` bytes (at most STAGING_BYTES), in the
 * staging buffer.
 *
 * @returns A view of the staging buffer, valid until the next call.
 */
function stage(chunks: Uint8Array[], start: number, end: number, total: number): Uint8Array {
  if (staging.length < total) staging = new Uint8Array(Math.min(STAGING_BYTES, Math.max(total, 2 * staging.length, 16 * 1024)));
  let offset = 0;
  for (let i = start; i < end; i++) {
    staging.set(chunks[i]!, offset);
    offset += chunks[i]!.length;
  }
  return staging.subarray(0, total);
}

/**
 * Where every raw connection's engine encodes its small frames, made by the
 * first server: the frames of one read's replies lie side by side and leave
 * in one `socket.write()` of one view, with no frame allocated and no join.
 * Every write is synchronous, and what Bun does not take is copied out
 * before the next send, as from {@linkcode staging}.
 */
let frames: FrameArena | undefined;

/** `chunk`, or a copy of it when it lies in memory that the next send reuses. */
function owned(chunk: Uint8Array): Uint8Array {
  return frames !== undefined && frames.holds(chunk) ? chunk.slice() : chunk;
}

// Shared by every transport with nothing queued or held: an idle connection
// allocates no array (replaced by a fresh one before the first push).
const NONE: Uint8Array[] = [];

// BunTransport's flags.
const END_PENDING = 1;
const CLOSED = 2;
const PUMP_PAUSED = 4;
const SOCKET_PAUSED = 8;
const DELIVERING = 16;

class BunTransport implements Transport {
  readonly #socket: BunSocket;
  /** The connection, set right after both are made (it needs this transport). */
  pump!: Pump<unknown>;
  #queue: Uint8Array[] = NONE;
  #queued = 0;
  // Reading. A paused Bun socket does not read the peer's FIN either, so a
  // peer that closed while we waited for `drain` would hold its connection
  // for good: the socket keeps reading while the pump does not, holding up
  // to HOLD_BYTES, and only then is paused for real.
  #held: Uint8Array[] = NONE;
  #heldBytes = 0;
  // Five flags in one number (one field per connection, not five).
  #flags = 0;
  get #endPending(): boolean {
    return (this.#flags & END_PENDING) !== 0;
  }
  set #endPending(on: boolean) {
    this.#flags = on ? this.#flags | END_PENDING : this.#flags & ~END_PENDING;
  }
  get #closed(): boolean {
    return (this.#flags & CLOSED) !== 0;
  }
  set #closed(on: boolean) {
    this.#flags = on ? this.#flags | CLOSED : this.#flags & ~CLOSED;
  }
  get #pumpPaused(): boolean {
    return (this.#flags & PUMP_PAUSED) !== 0;
  }
  set #pumpPaused(on: boolean) {
    this.#flags = on ? this.#flags | PUMP_PAUSED : this.#flags & ~PUMP_PAUSED;
  }
  get #socketPaused(): boolean {
    return (this.#flags & SOCKET_PAUSED) !== 0;
  }
  set #socketPaused(on: boolean) {
    this.#flags = on ? this.#flags | SOCKET_PAUSED : this.#flags & ~SOCKET_PAUSED;
  }
  get #delivering(): boolean {
    return (this.#flags & DELIVERING) !== 0;
  }
  set #delivering(on: boolean) {
    this.#flags = on ? this.#flags | DELIVERING : this.#flags & ~DELIVERING;
  }

  constructor(socket: BunSocket) {
    this.#socket = socket;
  }

  /** Bun read `chunk`: to the pump, or held while the pump does not read. */
  received(chunk: Uint8Array): void {
    if (!this.#pumpPaused && this.#held.length === 0) {
      this.pump.onData(chunk);
      return;
    }
    const copy = chunk.slice(); // a copy: Bun may reuse its read buffer
    if (this.#held === NONE) this.#held = [copy];
    else this.#held.push(copy);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes >= HOLD_BYTES && !this.#socketPaused && !this.#closed) {
      this.#socketPaused = true;
      this.#socket.pause();
    }
  }

  /** The peer's FIN, or the socket's close: what was held goes first. */
  deliverHeld(): void {
    const held = this.#held;
    if (held === NONE) return;
    this.#held = NONE;
    this.#heldBytes = 0;
    for (const chunk of held) this.pump.onData(chunk);
  }

  get remoteAddress(): string {
    return this.#socket.remoteAddress ?? "";
  }

  get bufferedAmount(): number {
    return this.#queued;
  }

  write(chunks: Uint8Array[]): boolean {
    if (this.#closed || this.#endPending) return true;
    let i = 0;
    while (i < chunks.length && this.#queue.length === 0) {
      // The next chunks that fit in the staging buffer go in one send; a bigger one alone.
      let end = i + 1, total = chunks[i]!.length;
      while (end < chunks.length && total + chunks[end]!.length <= STAGING_BYTES) total += chunks[end++]!.length;
      const staged = end - i > 1;
      const out = staged ? stage(chunks, i, end, total) : chunks[i]!;
      const written = this.#socket.write(out);
      if (written < 0) return this.#broken();
      // Bun took part of it (or none): keep the rest, in order, for `drain`
      // (copied out of the staging buffer, which the next write reuses).
      if (written < out.length) this.#keep(staged ? out.slice(written) : owned(out.subarray(written)));
      i = end;
    }
    for (; i < chunks.length; i++) this.#keep(owned(chunks[i]!));
    return this.#queued < WRITE_HIGH_WATER_MARK;
  }

  /** Queues bytes for `drain`. */
  #keep(chunk: Uint8Array): void {
    if (this.#queue === NONE) this.#queue = [chunk];
    else this.#queue.push(chunk);
    this.#queued += chunk.length;
  }

  /** Writes what was queued; `true` once nothing is left. */
  flush(): boolean {
    while (this.#queue.length > 0 && !this.#closed) {
      const chunk = this.#queue[0]!;
      const written = this.#socket.write(chunk);
      if (written < 0) return this.#broken();
      if (written < chunk.length) {
        this.#queue[0] = chunk.subarray(written);
        this.#queued -= written;
        return false;
      }
      this.#queue.shift();
      this.#queued -= chunk.length;
    }
    this.#queue = NONE;
    if (this.#endPending && !this.#closed) {
      this.#endPending = false;
      this.#socket.shutdown();
    }
    return true;
  }

  /**
   * Bun refused a write: the socket is closed or its peer is gone. Bun says
   * so with `close` only once it has read up to the reset, which a paused
   * socket never does: drop it now. `close` still hands over what was read.
   */
  #broken(): false {
    this.destroy();
    return false;
  }

  pause(): void {
    this.#pumpPaused = true;
  }

  resume(): void {
    this.#pumpPaused = false;
    if (this.#socketPaused && !this.#closed) {
      this.#socketPaused = false;
      this.#socket.resume();
    }
    if (this.#held.length === 0 || this.#delivering) return;
    // Not from inside the pump's own call: hand the held bytes over next.
    this.#delivering = true;
    queueMicrotask(() => {
      this.#delivering = false;
      while (this.#held.length > 0 && !this.#pumpPaused) {
        const chunk = this.#held.shift()!;
        this.#heldBytes -= chunk.length;
        this.pump.onData(chunk);
      }
      if (this.#held.length === 0) this.#held = NONE;
    });
  }

  end(): void {
    if (this.#closed) return;
    // shutdown(), not end(): Bun's end() closes the whole socket even with
    // allowHalfOpen, and the peer's next bytes would then meet a reset.
    if (this.#queue.length > 0) this.#endPending = true;
    else this.#socket.shutdown();
  }

  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = NONE;
    this.#queued = 0;
    this.#socket.terminate();
  }

  closed(): void {
    this.#closed = true;
    this.#queue = NONE;
    this.#queued = 0;
  }
}

/**
 * Starts a WebSocket server on raw `Bun.listen` sockets (TLS with `tls`).
 * Duplex parses the HTTP handshake and every frame itself: close codes,
 * limits and timers are the same as on Node and Deno. Plain HTTP requests get
 * `426 Upgrade Required`.
 *
 * @param handler The application's hooks.
 * @param options Port, hostname, TLS, limits, subprotocols, timeouts.
 * @returns The server, once it listens.
 * @throws {UsageError} On a bad option, or when not running on Bun.
 *
 * @example
 * ```ts
 * import { serve } from "@duplex/ws/bun";
 *
 * const server = await serve({
 *   message(ctx, data) {
 *     ctx.send(data);
 *   },
 * }, { port: 8080 });
 * console.log(`listening on ${server.url}`);
 * ```
 */
export function serve<S = Record<string, unknown>>(handler: Handler<S>, options: ServeOptions = {}): Promise<Server> {
  try {
    checkServeArgs(handler, options, "serve()");
    const { port, hostname, tls, connection, set } = serveSetup(options);
    const arena = frames ??= new FrameArena();
    const listener = bun().listen({
      hostname,
      port,
      ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
      allowHalfOpen: true,
      socket: {
        binaryType: "uint8array",
        open(socket) {
          socket.setNoDelay?.(true);
          // The transport is the socket's data, and holds the pump: no closure, no extra object.
          const transport = new BunTransport(socket);
          const pump: Pump<S> = new Pump(transport, handler, connection, set, arena);
          transport.pump = pump as Pump<unknown>;
          socket.data = transport;
          pump.start();
        },
        data(socket, data) {
          socket.data.received(data);
        },
        drain(socket) {
          if (socket.data.flush()) socket.data.pump.onDrain();
        },
        end(socket) {
          socket.data.deliverHeld();
          socket.data.pump.onEnd();
        },
        close(socket) {
          // `close` can come without `open` (a failed TLS handshake).
          if (socket.data === undefined) return;
          socket.data.deliverHeld();
          socket.data.closed();
          socket.data.pump.onClosed();
        },
        error() {
          // `close` follows; the pump reports 1006 there.
        },
      },
    });
    return Promise.resolve(makeServer({ port: listener.port, hostname, secure: tls !== undefined }, set, () => {
      listener.stop(false);
      return Promise.resolve();
    }));
  } catch (err) {
    return Promise.reject(err);
  }
}

// ---- native path ----

/**
 * The part of Bun's `Server` that an upgrade needs: what `Bun.serve` passes
 * to `fetch` as its second argument.
 *
 * @example
 * ```ts
 * import type { BunServer } from "@duplex/ws/bun";
 *
 * const server: BunServer = { upgrade: () => true, requestIP: () => ({ address: "127.0.0.1" }) };
 * ```
 */
export interface BunServer {
  /** Upgrades the request; `true` when it did. */
  upgrade(request: Request, options: { data: unknown; headers?: [string, string][] }): boolean;
  /** The peer's address. */
  requestIP?(request: Request): { address: string } | null;
  /**
   * Sends to every WebSocket of this server subscribed to `topic` (Bun's
   * topics); with `subscriberCount`, pub/sub uses it.
   */
  publish?(topic: string, data: string | Uint8Array, compress?: boolean): number;
  /** Number of WebSockets of this server subscribed to `topic`. */
  subscriberCount?(topic: string): number;
}

/**
 * The connection Bun hands to a `websocket` handler: the part of
 * `ServerWebSocket` Duplex uses.
 *
 * @example
 * ```ts
 * import type { BunWebSocket } from "@duplex/ws/bun";
 *
 * function bytesQueued(ws: BunWebSocket): number {
 *   return ws.getBufferedAmount();
 * }
 * ```
 */
export interface BunWebSocket {
  /** Duplex's session for this connection. */
  data: unknown;
  /** How binary messages arrive. */
  binaryType?: string;
  /** Sends; bytes sent, -1 when queued under backpressure, 0 when dropped. */
  send(data: string | Uint8Array): number;
  /** Sends a ping. */
  ping(data?: Uint8Array): number;
  /** Sends a close frame. */
  close(code?: number, reason?: string): void;
  /** Drops the connection. */
  terminate(): void;
  /** Bytes queued. */
  getBufferedAmount(): number;
  /** Stops reading. */
  pause(): void;
  /** Starts reading again. */
  resume(): void;
  /** Subscribes to one of the server's topics. */
  subscribe?(topic: string): void;
  /** Unsubscribes from a topic. */
  unsubscribe?(topic: string): void;
  /** Sends to the topic's other subscribers (not this one); bytes sent, or 0. */
  publish?(topic: string, data: string | Uint8Array, compress?: boolean): number;
}

/**
 * The `websocket` object to pass to `Bun.serve`: Bun's options (set from
 * Duplex's) and the handlers that feed Duplex's sessions.
 *
 * @example
 * ```ts
 * import { nativeHandler } from "@duplex/ws/bun";
 *
 * const { websocket } = nativeHandler({});
 * console.log(websocket.maxPayloadLength); // 16777216
 * ```
 */
export interface BunWebSocketHandler {
  /** Bun closes with 1009 past this many bytes. */
  readonly maxPayloadLength: number;
  /** 0: Bun never drops a message; Duplex reports backpressure instead. */
  readonly backpressureLimit: number;
  /** Off: heartbeats are Duplex's job. */
  readonly idleTimeout: number;
  /** Off: heartbeats are Duplex's job. */
  readonly sendPings: boolean;
  /** Off on the native path. */
  readonly perMessageDeflate: boolean;
  /** A connection opened. */
  open(ws: BunWebSocket): void;
  /** A message arrived. */
  message(ws: BunWebSocket, message: string | Uint8Array): void;
  /** The send queue drained. */
  drain(ws: BunWebSocket): void;
  /** A ping arrived (Bun answered it). */
  ping(ws: BunWebSocket, data: Uint8Array): void;
  /** A pong arrived. */
  pong(ws: BunWebSocket, data: Uint8Array): void;
  /** The connection closed. */
  close(ws: BunWebSocket, code: number, reason: string): void;
}

/**
 * Duplex hooks over `Bun.serve`'s WebSocket server. Pass `websocket` to
 * `Bun.serve` and route requests to `upgrade()`.
 *
 * @example
 * ```ts
 * import { nativeHandler } from "@duplex/ws/bun";
 *
 * const ws = nativeHandler({ open: (ctx) => void ctx.send("welcome") });
 * console.log(ws.connections); // 0
 * ```
 */
export interface NativeHandler {
  /**
   * Upgrades a request: `undefined` once Bun switched protocols, else the
   * refusal to return (400/426/431, or the `upgrade` hook's `Response`).
   */
  upgrade(request: Request, server: BunServer): Promise<Response | undefined>;
  /** The object to pass to `Bun.serve` as `websocket`. */
  readonly websocket: BunWebSocketHandler;
  /** Number of live connections. */
  readonly connections: number;
  /** Closes every connection (default code 1001) and resolves once all are closed. */
  close(code?: number, reason?: string): Promise<void>;
}

/**
 * Creates Duplex's handler for Bun's own WebSocket server. Bun does the
 * framing; Duplex checks the handshake, runs the `upgrade` hook, chooses the
 * subprotocol by the server's preference, runs the hooks one at a time (and
 * pauses reading while one is pending), and keeps the close timeout. Known
 * differences from the raw path, all Bun's: close frames for protocol errors
 * carry Bun's reason text; a client that offered subprotocols the server does
 * not speak gets its first offer back (Bun cannot answer with none). An
 * `App`'s pub/sub uses Bun's own topics here: subscribers are
 * subscribed in Bun too, and a published message reaches the subscribers of
 * one server with one `server.publish()` (framed once, written in C++)
 * whenever that is what the per-subscriber loop would do (no `send`
 * middleware, nobody slow); for that, pass Bun's own server to `upgrade()`.
 *
 * @param handler The application's hooks.
 * @param options Limits, subprotocols, timeouts.
 * @returns The handler, with the `websocket` object for `Bun.serve`.
 * @throws {UsageError} On a bad option.
 *
 * @example
 * ```ts
 * import { nativeHandler } from "@duplex/ws/bun";
 *
 * const ws = nativeHandler({ message: (ctx, data) => void ctx.send(data) });
 * const app = {
 *   fetch: (req: Request, server: Parameters<typeof ws.upgrade>[1]) =>
 *     new URL(req.url).pathname === "/ws" ? ws.upgrade(req, server) : new Response("hello"),
 *   websocket: ws.websocket,
 * };
 * // Bun.serve(app);
 * ```
 */
export function nativeHandler<S = Record<string, unknown>>(
  handler: Handler<S>,
  options: ConnectionOptions = {},
): NativeHandler {
  checkServeArgs(handler, options, "nativeHandler()", CONNECTION_OPTIONS);
  const resolved = resolveConnectionOptions(options);
  const set = new ConnectionSet(resolved);
  return {
    upgrade: nativeUpgrade(handler, resolved, set),
    websocket: websocketHandler(resolved),
    get connections() {
      return set.size;
    },
    close(code = CloseCode.GoingAway, reason = "Server shutting down") {
      return set.shutdown(code, reason);
    },
  };
}

/**
 * Starts `Bun.serve` with {@linkcode nativeHandler} on every path; other
 * requests get `426 Upgrade Required`. `serve()` from `@duplex/ws` picks this
 * with `transport: "native"`.
 *
 * @param handler The application's hooks.
 * @param options Port, hostname, TLS, limits, subprotocols, timeouts.
 * @returns The server, once it listens.
 * @throws {UsageError} On a bad option, or when not running on Bun.
 *
 * @example
 * ```ts
 * import { serveNative } from "@duplex/ws/bun";
 *
 * const server = await serveNative({ message: (ctx, data) => void ctx.send(data) }, { port: 8080 });
 * console.log(`listening on ${server.url}`);
 * ```
 */
export function serveNative<S = Record<string, unknown>>(handler: Handler<S>, options: ServeOptions = {}): Promise<Server> {
  try {
    checkServeArgs(handler, options, "serveNative()");
    const { port, hostname, tls, connection, set } = serveSetup(options);
    const http = bun().serve({
      port,
      hostname,
      ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
      fetch: nativeUpgrade(handler, connection, set),
      websocket: websocketHandler(connection),
    });
    return Promise.resolve(makeServer({ port: http.port, hostname, secure: tls !== undefined }, set, () => http.stop(false)));
  } catch (err) {
    return Promise.reject(err);
  }
}
