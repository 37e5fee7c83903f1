/**
 * The Deno adapter: Duplex on raw `Deno.listen` / `Deno.listenTls`
 * connections (the engine does the framing: every close code, limit and
 * timer as on Node), or over Deno's own WebSocket server for apps that
 * already run `Deno.serve` (the native path: `Deno.upgradeWebSocket` does the
 * framing, Duplex runs the same hooks and context on top).
 *
 * @example The raw server
 * ```ts
 * import { serve } from "@duplex/ws/deno";
 *
 * const server = await serve({ message: (ctx, data) => void ctx.send(data) }, { port: 8080 });
 * console.log(`listening on ${server.url}`);
 * ```
 *
 * @example Inside an existing `Deno.serve` app
 * ```ts
 * import { nativeHandler } from "@duplex/ws/deno";
 *
 * const ws = nativeHandler({ message: (ctx, data) => void ctx.send(data) });
 * const app = (req: Request, info: { remoteAddr: { hostname: string } }) =>
 *   new URL(req.url).pathname === "/ws" ? ws.upgrade(req, info) : new Response("hello");
 * // Deno.serve({ port: 8080 }, app);
 * ```
 *
 * @module
 */

import { CloseCode } from "../core/close_code.ts";
import { UsageError } from "../core/errors.ts";
import type { ConnectionOptions, Handler } from "../plugins/hooks.ts";
import { nativeUpgrade } from "./_deno_native.ts";
import { coalesce, Pump, type Transport } from "./_pump.ts";
import { ConnectionSet } from "./_registry.ts";
import { resolveConnectionOptions } from "./_options.ts";
import { type ListenOptions, makeServer, serveSetup, type Server, type TlsCertificate } from "./_server.ts";
import { checkServeArgs, CONNECTION_OPTIONS } from "./_check_args.ts";

export type { ListenOptions, Server, TlsCertificate };

// ---- the parts of the Deno namespace this adapter uses ----

interface DenoAddr {
  hostname: string;
  port: number;
}

interface DenoConn {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  read(buffer: Uint8Array): Promise<number | null>;
  readonly remoteAddr: { hostname?: string };
  closeWrite(): Promise<void>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}

interface DenoListener {
  readonly addr: DenoAddr;
  accept(): Promise<DenoConn>;
  close(): void;
}


interface DenoHttpServer {
  readonly addr: DenoAddr;
  shutdown(): Promise<void>;
}

interface DenoNamespace {
  listen(options: { port: number; hostname: string; transport: "tcp" }): DenoListener;
  listenTls(options: { port: number; hostname: string; cert: string; key: string }): DenoListener;
  serve(
    options: { port: number; hostname: string; cert?: string; key?: string; onListen?(addr: DenoAddr): void },
    handler: (request: Request, info: DenoServeInfo) => Response | Promise<Response>,
  ): DenoHttpServer;
}

function deno(): DenoNamespace {
  const ns = (globalThis as { Deno?: DenoNamespace }).Deno;
  if (ns === undefined) throw new UsageError("ERR_WRONG_RUNTIME", "@duplex/ws/deno runs on Deno only");
  return ns;
}

/**
 * What `Deno.serve` passes its handler next to the request; Duplex reads
 * the peer's address from it.
 *
 * @example
 * ```ts
 * import type { DenoServeInfo } from "@duplex/ws/deno";
 *
 * const info: DenoServeInfo = { remoteAddr: { hostname: "127.0.0.1" } };
 * ```
 */
export interface DenoServeInfo {
  /** The peer's address. */
  readonly remoteAddr: { readonly hostname: string };
}

/**
 * Options of {@linkcode serve}: where to listen, TLS, and the connection
 * options.
 *
 * @example
 * ```ts
 * import type { ServeOptions } from "@duplex/ws/deno";
 *
 * const options: ServeOptions = { port: 0, protocols: ["chat.v1"], maxMessageBytes: 1 << 20 };
 * ```
 */
export interface ServeOptions extends ListenOptions {}

// ---- raw path ----

/**
 * Bytes in flight at or above which `write` asks the pump to wait. Deno's
 * writes always complete later (a promise), so a mark as low as Node's
 * 16 KiB would pause reading after every large echo.
 */
const WRITE_HIGH_WATER_MARK = 256 * 1024;
/** Smallest and largest read buffers. */
const MIN_READ_BYTES = 2 * 1024;
const MAX_READ_BYTES = 64 * 1024;

class DenoTransport implements Transport {
  readonly #conn: DenoConn;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #onDrain: () => void;
  readonly #onClosed: () => void;
  #pending = 0;
  #wantDrain = false;
  #last: Promise<void> = Promise.resolve();
  #paused = false;
  #resume: (() => void) | undefined;
  #readEnded = false;
  #writeEnded = false;
  #closed = false;

  constructor(conn: DenoConn, onDrain: () => void, onClosed: () => void) {
    this.#conn = conn;
    this.#writer = conn.writable.getWriter();
    this.#onDrain = onDrain;
    this.#onClosed = onClosed;
  }

  get remoteAddress(): string {
    return this.#conn.remoteAddr.hostname ?? "";
  }

  get bufferedAmount(): number {
    return this.#pending;
  }

  write(chunks: Uint8Array[]): boolean {
    if (this.#closed || this.#writeEnded) return true;
    // Every write is an async op: one copy costs less than a second op.
    for (const chunk of coalesce(chunks, WRITE_HIGH_WATER_MARK)) {
      const size = chunk.length;
      this.#pending += size;
      this.#last = this.#writer.write(chunk).then(() => this.#written(size), () => this.destroy());
    }
    // Bytes in flight, not the writer's desiredSize: conn.writable counts
    // chunks with a mark of 1, so desiredSize is 0 after any one write and
    // would pause reading after every reply until it completed.
    const ok = this.#pending < WRITE_HIGH_WATER_MARK;
    if (!ok) this.#wantDrain = true;
    return ok;
  }

  #written(size: number): void {
    this.#pending -= size;
    if (this.#pending === 0 && this.#wantDrain && !this.#closed) {
      this.#wantDrain = false;
      this.#onDrain();
    }
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.();
  }

  end(): void {
    if (this.#writeEnded || this.#closed) return;
    this.#writeEnded = true;
    // FIN once every queued write reached the socket.
    this.#last.then(() => this.#conn.closeWrite()).then(() => this.#maybeClose(), () => this.destroy());
  }

  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    this.resume();
    this.#onClosed();
  }

  /** Reads until EOF, honouring `pause()`; reports each chunk and the end. */
  async read(onData: (chunk: Uint8Array) => void, onEnd: () => void): Promise<void> {
    // `conn.read()` into a buffer sized to the traffic: an idle connection
    // holds 2 KiB instead of the default reader's 64 KiB, and a busy one
    // grows to 64 KiB. Each read gets a fresh buffer: the engine may keep it.
    // Not the BYOB stream reader: its promise and stream bookkeeping per
    // read cost 15 % of the 64 KiB echo's throughput (measured).
    const conn = this.#conn;
    let size = MIN_READ_BYTES;
    try {
      while (!this.#closed) {
        if (this.#paused) {
          await new Promise<void>((resolve) => (this.#resume = resolve));
          continue;
        }
        const buffer = new Uint8Array(size);
        const n = await conn.read(buffer);
        if (n === null) break;
        if (n === size) size = Math.min(size * 2, MAX_READ_BYTES);
        else if (n < size / 4) size = Math.max(size / 2, MIN_READ_BYTES);
        onData(n === buffer.length ? buffer : buffer.subarray(0, n));
      }
    } catch {
      // Reset, or closed by destroy(): "Interrupted" / "BadResource".
      this.destroy();
      return;
    }
    if (this.#closed) return;
    this.#readEnded = true;
    onEnd();
    this.#maybeClose();
  }

  #maybeClose(): void {
    if (this.#readEnded && this.#writeEnded) this.destroy();
  }
}

function runConn<S>(conn: DenoConn, handler: Handler<S>, options: Readonly<ConnectionOptions>, set: ConnectionSet): void {
  try {
    conn.setNoDelay?.(true);
  } catch {
    // Not a TCP connection.
  }
  const transport: DenoTransport = new DenoTransport(conn, () => pump.onDrain(), () => pump.onClosed());
  const pump = new Pump(transport, handler, options, set);
  pump.start();
  transport.read((chunk) => pump.onData(chunk), () => pump.onEnd());
}

/**
 * `accept()` errors that concern one incoming connection, not the listener:
 * a peer that reset before Deno accepted it fails `accept()` itself
 * (`NotConnected` from reading the peer's address; the others on other
 * kernels or TLS), and the next connection is fine.
 */
const CONNECTION_ERRORS = new Set(["NotConnected", "ConnectionReset", "ConnectionAborted", "BrokenPipe", "UnexpectedEof", "InvalidData"]);
/** Waits between accept() failures of the listener itself (out of file descriptors): from 5 ms, doubling, to 1 s. */
const ACCEPT_BACKOFF_MS: readonly [number, number] = [5, 1000];

/**
 * Accepts connections until the listener is closed (`BadResource`,
 * `Interrupted`) or `stopped()`. Not `for await (const conn of listener)`:
 * Deno's iterator rethrows every other `accept()` error and ends, so one
 * client reset at the wrong moment (in the accept queue) stopped the server
 * from accepting anything more, while the process and its port lived on.
 */
async function acceptLoop(listener: DenoListener, onConn: (conn: DenoConn) => void, stopped: () => boolean): Promise<void> {
  let wait = 0;
  for (;;) {
    let conn: DenoConn;
    try {
      conn = await listener.accept();
    } catch (err) {
      const name = (err as Error | undefined)?.name ?? "";
      if (stopped() || name === "BadResource" || name === "Interrupted") return;
      if (CONNECTION_ERRORS.has(name)) continue; // that peer is gone; the listener is fine
      // The listener's own trouble (EMFILE…): say so, wait, and keep listening.
      console.error("duplex: accept failed, retrying:", err);
      wait = Math.min(Math.max(wait * 2, ACCEPT_BACKOFF_MS[0]), ACCEPT_BACKOFF_MS[1]);
      await new Promise((resolve) => setTimeout(resolve, wait));
      continue;
    }
    wait = 0;
    try {
      onConn(conn);
    } catch (err) {
      // One connection's setup failed: drop it, keep accepting.
      if (!stopped()) console.error("duplex: connection setup failed:", err);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }
}

/**
 * Starts a WebSocket server on raw `Deno.listen` (or `Deno.listenTls` with
 * `tls`) connections. Duplex parses the HTTP handshake and every frame
 * itself: close codes, limits and timers are the same as on Node and Bun.
 * Plain HTTP requests get `426 Upgrade Required`.
 *
 * @param handler The application's hooks.
 * @param options Port, hostname, TLS, limits, subprotocols, timeouts.
 * @returns The server, once it listens.
 * @throws {UsageError} On a bad option, or when not running on Deno.
 *
 * @example
 * ```ts
 * import { serve } from "@duplex/ws/deno";
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
    const ns = deno();
    const listener = tls
      ? ns.listenTls({ port, hostname, cert: tls.cert, key: tls.key })
      : ns.listen({ port, hostname, transport: "tcp" });
    let stopped = false;
    const accepting = acceptLoop(listener, (conn) => runConn(conn, handler, connection, set), () => stopped);
    return Promise.resolve(makeServer({ port: listener.addr.port, hostname, secure: tls !== undefined }, set, () => {
      stopped = true;
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      return accepting;
    }));
  } catch (err) {
    return Promise.reject(err);
  }
}

// ---- native path ----

/**
 * Duplex hooks over `Deno.upgradeWebSocket`, for apps that already run
 * `Deno.serve`. Route requests to `upgrade()` yourself.
 *
 * @example
 * ```ts
 * import { nativeHandler } from "@duplex/ws/deno";
 *
 * const ws = nativeHandler({ open: (ctx) => void ctx.send("welcome") });
 * console.log(ws.connections); // 0
 * ```
 */
export interface NativeHandler {
  /**
   * Answers a request: the 101 that opens a WebSocket, or the handshake's
   * refusal (400/426/431, or the `upgrade` hook's own `Response`).
   */
  upgrade(request: Request, info?: DenoServeInfo): Promise<Response>;
  /** Number of live connections. */
  readonly connections: number;
  /** Closes every connection (default code 1001) and resolves once all are closed. */
  close(code?: number, reason?: string): Promise<void>;
}

/**
 * Creates Duplex's handler for Deno's own WebSocket server. Deno does the
 * framing; Duplex checks the handshake, runs the `upgrade` hook, chooses
 * the subprotocol by the server's preference, runs the hooks one at a time,
 * enforces `maxMessageBytes` (1009) and the close timeout. Known differences
 * from the raw path, all Deno's: on a protocol error Deno drops TCP without a
 * close frame; there is no ping, pong or inbound backpressure; `terminate()`
 * sends an empty close frame, as Deno cannot drop the connection.
 *
 * @param handler The application's hooks.
 * @param options Limits, subprotocols, timeouts.
 * @returns The handler.
 * @throws {UsageError} On a bad option.
 *
 * @example
 * ```ts
 * import { nativeHandler } from "@duplex/ws/deno";
 *
 * const ws = nativeHandler({ message: (ctx, data) => void ctx.send(data) });
 * const app = (req: Request, info: { remoteAddr: { hostname: string } }) =>
 *   new URL(req.url).pathname === "/ws" ? ws.upgrade(req, info) : new Response("hello");
 * // Deno.serve({ port: 8080 }, app);
 * ```
 */
export function nativeHandler<S = Record<string, unknown>>(
  handler: Handler<S>,
  options: ConnectionOptions = {},
): NativeHandler {
  checkServeArgs(handler, options, "nativeHandler()", CONNECTION_OPTIONS);
  const resolved = resolveConnectionOptions(options);
  const set = new ConnectionSet(resolved);
  const upgrade = nativeUpgrade(handler, resolved, set);
  return {
    upgrade,
    get connections() {
      return set.size;
    },
    close(code = CloseCode.GoingAway, reason = "Server shutting down") {
      return set.shutdown(code, reason);
    },
  };
}

/**
 * Starts `Deno.serve` with {@linkcode nativeHandler} on every path; other
 * requests get `426 Upgrade Required`. `serve()` from `@duplex/ws` picks this
 * with `transport: "native"`.
 *
 * @param handler The application's hooks.
 * @param options Port, hostname, TLS, limits, subprotocols, timeouts.
 * @returns The server, once it listens.
 * @throws {UsageError} On a bad option, or when not running on Deno.
 *
 * @example
 * ```ts
 * import { serveNative } from "@duplex/ws/deno";
 *
 * const server = await serveNative({ message: (ctx, data) => void ctx.send(data) }, { port: 8080 });
 * console.log(`listening on ${server.url}`);
 * ```
 */
export function serveNative<S = Record<string, unknown>>(handler: Handler<S>, options: ServeOptions = {}): Promise<Server> {
  try {
    checkServeArgs(handler, options, "serveNative()");
    const { port, hostname, tls, connection, set } = serveSetup(options);
    const upgrade = nativeUpgrade(handler, connection, set);
    const http = deno().serve(
      { port, hostname, ...(tls ? { cert: tls.cert, key: tls.key } : {}), onListen() {} },
      upgrade,
    );
    return Promise.resolve(makeServer({ port: http.addr.port, hostname, secure: tls !== undefined }, set, () =>
        // Deno's shutdown() ends open WebSockets with 1005 at once: close ours first.
        set.whenEmpty().then(() => http.shutdown())));
  } catch (err) {
    return Promise.reject(err);
  }
}
