/**
 * The one pump between a socket and an engine, shared by every raw-byte
 * adapter so that timers, close timeouts, backpressure and teardown are
 * written once. An adapter wraps its socket in a {@linkcode Transport} and
 * calls the pump's `on*` methods when the socket reads, drains, ends or
 * closes.
 *
 * @module
 */

import { Engine, type EngineEvent, type MessageData } from "../core/engine.ts";
import { messageData, type PreparedMessage } from "../core/prepared.ts";
import type { FrameArena } from "../core/frame_arena.ts";
import { ProtocolError, UsageError } from "../core/errors.ts";
import { CloseCode, closePayload } from "../core/close_code.ts";
import type { DeflateParams } from "../core/deflate.ts";
import { type Compression, type DeflateConfig, deflateConfig } from "./_deflate.ts";
import { CONNECTION_DEFAULTS } from "./_options.ts";
import type { ConnectionSet } from "./_registry.ts";
import { ConnectionBase } from "./_connection.ts";
import type { HeadLike, UpgradeRequest } from "../core/handshake.ts";
import { selectSubprotocol } from "../core/handshake_offers.ts";
import { ReadyState } from "../core/state.ts";
import { isThenable } from "../plugins/_thenable.ts";
import type { CloseInfo, ConnectionOptions, Handler, SendOptions, UpgradeAnswer } from "../plugins/hooks.ts";
import { logMessageTooBig } from "./_close_log.ts";
import { CLOSED_BY, observerOf, TRANSPORT } from "../plugins/_observer.ts";

/**
 * A socket as the pump sees it. `write` never drops bytes: it queues what
 * the socket cannot take yet and returns `false` when the caller should wait
 * for the pump's `onDrain()`.
 *
 * @example Wrapping a `node:net` socket
 * ```ts
 * import type { Socket } from "node:net";
 * import type { Transport } from "./_pump.ts";
 *
 * function wrap(socket: Socket): Transport {
 *   return {
 *     write: (chunks) => chunks.map((c) => socket.write(c)).at(-1) ?? true,
 *     get bufferedAmount() {
 *       return socket.writableLength;
 *     },
 *     pause: () => void socket.pause(),
 *     resume: () => void socket.resume(),
 *     end: () => void socket.end(),
 *     destroy: () => void socket.destroy(),
 *     remoteAddress: socket.remoteAddress ?? "",
 *   };
 * }
 * ```
 */
export interface Transport {
  /** Writes chunks in order, at once where possible; `false` when over the high-water mark. */
  write(chunks: Uint8Array[]): boolean;
  /** Bytes accepted by `write` and not yet handed to the operating system. */
  readonly bufferedAmount: number;
  /** Stops reading from the socket. */
  pause(): void;
  /** Starts reading again. */
  resume(): void;
  /** Sends what is queued, then closes the write side (FIN). */
  end(): void;
  /** Closes at once. */
  destroy(): void;
  /** The peer's address, or `""`. */
  readonly remoteAddress: string;
}

/** Chunks up to this total are copied into one write; bigger ones go out as they are. */
const COALESCE_BYTES = 64 * 1024;

/**
 * Joins small chunks into one, so that an adapter whose socket has no
 * `writev` still sends one read's replies in one write. Big payloads are
 * not copied.
 *
 * @param chunks The engine's output, in order.
 * @param limit Totals above this many bytes are not copied. Default 64 KiB.
 * @returns The chunks to write, in order.
 *
 * @example
 * ```ts
 * import { coalesce } from "./_pump.ts";
 *
 * console.log(coalesce([new Uint8Array(2), new Uint8Array(3)]).length); // 1
 * ```
 */
export function coalesce(chunks: Uint8Array[], limit: number = COALESCE_BYTES): Uint8Array[] {
  if (chunks.length < 2) return chunks;
  let total = 0;
  for (const chunk of chunks) total += chunk.length;
  if (total > limit) return chunks;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return [out];
}

const DRAIN_RECHECK_MS = 5;

// The pump's flags (see Pump.#flags).
const IN_LOOP = 1;
const FLUSH_QUEUED = 2;
const PAUSED = 4;
const ABORTED = 8;
const ENDED = 16;
const CLOSED = 32;

/** The fields of a {@linkcode Pump} that few connections use, made on first use. */
class PumpRare {
  z: Compression | undefined = undefined;
  closeAfter: [code: number | undefined, reason: string | undefined] | undefined = undefined;
  drainRecheck: unknown = undefined;
  shutdownClose: [code: number, reason: string] | undefined = undefined;
}
let lastId = 0;
const encoder = new TextEncoder();

/** Throws what `Engine.close` would for a bad code or reason. */
function closePayloadCheck(code: number | undefined, reason: string | undefined): void {
  closePayload(code ?? CloseCode.Normal, reason ?? "");
}

/** What the pumps of one server share, beside {@linkcode ConnectionBase}'s. */
interface PumpConfig {
  readonly protocols: readonly string[];
  readonly handshakeTimeoutMs: number;
  readonly deflate: DeflateConfig | undefined;
  readonly capAlways: boolean;
}

const pumpConfigs = new WeakMap<object, PumpConfig>();

/** One {@linkcode PumpConfig} per resolved (frozen) options object; a fresh one otherwise. */
function pumpConfig(options: Readonly<ConnectionOptions>, maxBuffered: number, highWaterMark: number): PumpConfig {
  const frozen = Object.isFrozen(options);
  const cached = frozen ? pumpConfigs.get(options) : undefined;
  if (cached !== undefined) return cached;
  const deflate = deflateConfig(options);
  const config: PumpConfig = {
    protocols: options.protocols ?? [],
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? CONNECTION_DEFAULTS.handshakeTimeoutMs,
    deflate,
    // Without backpressure the output stays under twice the high-water mark
    // (the engine's batch plus the socket's buffer): checking the cap only
    // under backpressure is then exact, and costs nothing on the fast path.
    capAlways: maxBuffered < 2 * highWaterMark || deflate !== undefined,
  };
  if (frozen) pumpConfigs.set(options, config);
  return config;
}

/**
 * Runs one connection: feeds the engine, dispatches its events to the
 * hooks one at a time, writes the engine's output in batches, and owns the
 * handshake, close and linger timers. It is also the connection's
 * {@linkcode Connection}.
 *
 * @example An adapter's whole job
 * ```ts
 * import type { Socket } from "node:net";
 * import { Pump, type Transport } from "./_pump.ts";
 * import { ConnectionSet } from "./_registry.ts";
 * import { resolveConnectionOptions } from "./_options.ts";
 *
 * declare const socket: Socket;
 * declare const transport: Transport; // the socket, wrapped
 * const pump = new Pump(transport, { message: (ctx, data) => void ctx.send(data) }, resolveConnectionOptions({}), new ConnectionSet());
 * socket.on("data", (chunk) => pump.onData(chunk));
 * socket.on("end", () => pump.onEnd());
 * socket.on("drain", () => pump.onDrain());
 * socket.on("close", () => pump.onClosed());
 * pump.start(); // raw bytes: the HTTP handshake comes first
 * ```
 */
export class Pump<S = Record<string, unknown>> extends ConnectionBase<S> {
  // The id as a number and the state object on first use: an idle
  // connection then holds neither a string nor an empty object.
  readonly #id: number = ++lastId;
  #state: S | undefined;

  readonly #engine: Engine;
  readonly #transport: Transport;
  readonly #config: PumpConfig; // one per server: see pumpConfig()
  // What few connections ever use (compression, a close or a shutdown
  // waiting, a drain recheck) sits in one object made on first use.
  #rare: PumpRare | undefined;

  // Six flags in one number: one field for an idle connection, not six.
  #flags = 0;
  get #inLoop(): boolean {
    return (this.#flags & IN_LOOP) !== 0;
  }
  set #inLoop(on: boolean) {
    this.#flags = on ? this.#flags | IN_LOOP : this.#flags & ~IN_LOOP;
  }
  get #flushQueued(): boolean {
    return (this.#flags & FLUSH_QUEUED) !== 0;
  }
  set #flushQueued(on: boolean) {
    this.#flags = on ? this.#flags | FLUSH_QUEUED : this.#flags & ~FLUSH_QUEUED;
  }
  get #paused(): boolean {
    return (this.#flags & PAUSED) !== 0;
  }
  set #paused(on: boolean) {
    this.#flags = on ? this.#flags | PAUSED : this.#flags & ~PAUSED;
  }
  /** The connection ended without a close handshake: destroy, no FIN. */
  get #aborted(): boolean {
    return (this.#flags & ABORTED) !== 0;
  }
  set #aborted(on: boolean) {
    this.#flags = on ? this.#flags | ABORTED : this.#flags & ~ABORTED;
  }
  /** The transport was ended or destroyed by us. */
  get #ended(): boolean {
    return (this.#flags & ENDED) !== 0;
  }
  set #ended(on: boolean) {
    this.#flags = on ? this.#flags | ENDED : this.#flags & ~ENDED;
  }
  /** The transport is closed. */
  get #closed(): boolean {
    return (this.#flags & CLOSED) !== 0;
  }
  set #closed(on: boolean) {
    this.#flags = on ? this.#flags | CLOSED : this.#flags & ~CLOSED;
  }

  /** permessage-deflate, once negotiated. */
  get #z(): Compression | undefined {
    return this.#rare?.z;
  }
  /** close() waiting for the messages queued for zlib. */
  get #closeAfter(): PumpRare["closeAfter"] {
    return this.#rare?.closeAfter;
  }
  set #closeAfter(value: PumpRare["closeAfter"]) {
    if (value !== undefined || this.#rare !== undefined) (this.#rare ??= new PumpRare()).closeAfter = value;
  }

  /**
   * @param transport The socket.
   * @param handler The application's hooks.
   * @param options Limits, subprotocols, timeouts.
   * @param set The server's live connections; the pump adds and removes itself.
   * @param arena Where the engine encodes small frames, for a transport
   *   that writes what `write` gets at once and copies what it keeps (see
   *   {@linkcode FrameArena}).
   */
  constructor(transport: Transport, handler: Handler<S>, options: ConnectionOptions, set: ConnectionSet, arena?: FrameArena) {
    super(handler, options, set);
    this.#engine = new Engine(options, arena);
    this.#transport = transport;
    this.#config = pumpConfig(options, this.maxBuffered, this.highWaterMark);
  }

  /** Whether `send()` checks the output cap even without backpressure. */
  protected override get capAlways(): boolean {
    return this.#config.capAlways;
  }

  // ---- Connection ----

  /** Unique id of the connection within the process. */
  get id(): string {
    return String(this.#id);
  }

  /** The application's data for this connection; `{}` until set. */
  get state(): S {
    return this.#state ??= {} as S;
  }

  set state(value: S) {
    this.#state = value;
  }

  /** The opening handshake. */
  get request(): UpgradeRequest {
    return this.#engine.request!;
  }

  /** The peer's address. */
  get remoteAddress(): string {
    return this.#transport.remoteAddress;
  }

  /** For observers: Duplex frames the bytes. */
  get [TRANSPORT](): "raw" {
    return "raw";
  }

  /** For observers: who started the close. */
  get [CLOSED_BY](): "server" | "client" | undefined {
    const by = this.#engine.closedBy;
    return by === undefined ? undefined : by === "local" ? "server" : "client";
  }

  /** The negotiated subprotocol, or `""`. */
  get protocol(): string {
    return this.#engine.protocol;
  }

  /** The negotiated extensions, or `""`. */
  get extensions(): string {
    return this.#engine.extensions;
  }

  /** The permessage-deflate parameters agreed on, or `undefined`. */
  get deflate(): DeflateParams | undefined {
    return this.#engine.deflate;
  }

  /** The connection state. */
  get readyState(): ReadyState {
    return this.#engine.state;
  }

  /** Bytes queued and not yet handed to the operating system. */
  get bufferedAmount(): number {
    const queued = this.#z === undefined ? 0 : this.#z.pendingBytes;
    return queued + this.#engine.outputBytes + (this.#closed ? 0 : this.#transport.bufferedAmount);
  }

  /** Open, and no close waiting for the messages queued for zlib. */
  protected get sendable(): boolean {
    return this.#engine.state === ReadyState.Open && this.#closeAfter === undefined;
  }

  /** Nothing left in the engine or for zlib, and no backpressure. */
  protected get outputIdle(): boolean {
    return !this.needDrain && this.#engine.outputBytes === 0 && (this.#z === undefined || this.#z.pending === 0);
  }

  protected write(data: MessageData, options: SendOptions | undefined): boolean {
    const binary = options?.binary;
    if (this.#z !== undefined) {
      const message = messageData(data);
      return this.#sendDeflate(this.#z, message, options?.compress !== false, undefined, binary ?? typeof message !== "string");
    }
    this.#engine.send(data, binary);
    return this.#sent();
  }

  protected writePrepared(message: PreparedMessage): boolean {
    if (this.#z !== undefined) return this.#sendDeflate(this.#z, message.data, true, message, typeof message.data !== "string");
    this.#engine.sendPrepared(message);
    return this.#sent();
  }

  /**
   * Sends on a compressed connection: at once when nothing waits for zlib
   * and the message stays uncompressed; else behind what waits, in order.
   */
  #sendDeflate(z: Compression, data: string | Uint8Array, compress: boolean, prepared: PreparedMessage | undefined, binary: boolean): boolean {
    // A string's length is a lower bound of its UTF-8 size: good enough for a threshold.
    const squeeze = compress && data.length >= z.threshold;
    if (!squeeze && z.pending === 0) {
      if (prepared !== undefined) this.#engine.sendPrepared(prepared);
      else this.#engine.send(data, binary);
      return this.#sent();
    }
    const engine = this.#engine;
    if (squeeze) {
      const bytes = typeof data !== "string" ? data : encoder.encode(data);
      z.enqueue(bytes.length, async () => {
        const payload = await z.deflate(bytes);
        if (engine.state !== ReadyState.Open) return; // dropped with the connection
        engine.sendCompressed(payload, binary);
        this.#sent();
      });
    } else {
      z.enqueue(data.length, () => {
        if (engine.state !== ReadyState.Open) return;
        if (prepared !== undefined) engine.sendPrepared(prepared);
        else engine.send(data, binary);
        this.#sent();
      });
    }
    return !this.needDrain && this.bufferedAmount < this.highWaterMark;
  }

  #sent(): boolean {
    if (this.#engine.outputBytes >= this.highWaterMark) {
      // A burst of sends (from a hook too): hand the bytes to the socket now,
      // not at the end of the tick or of the loop, so that our own batch
      // never grows past the high-water mark.
      this.#flush();
    } else {
      this.#scheduleFlush();
    }
    return !this.needDrain && this.bufferedAmount < this.highWaterMark;
  }

  protected writePing(payload: Uint8Array): void {
    this.#engine.ping(payload);
    this.#scheduleFlush();
  }

  /** Starts the close handshake (after the messages still waiting for zlib). */
  close(code?: number, reason?: string): void {
    if (this.#z !== undefined && this.#z.pending > 0 && this.#engine.state === ReadyState.Open) {
      closePayloadCheck(code, reason); // a bad code or reason throws now, as without compression
      this.#closeAfter ??= [code, reason];
      return;
    }
    this.#engine.close(code, reason);
    this.#kick();
  }

  /** The queue of messages waiting for zlib emptied. */
  #deflateIdle(): void {
    const after = this.#closeAfter;
    if (after !== undefined) {
      this.#closeAfter = undefined;
      this.#engine.close(after[0], after[1]);
      this.#kick();
      return;
    }
    this.#flush();
    if (!this.needDrain && this.#engine.outputBytes === 0) this.resolveDrain();
  }

  /** Drops the connection without a close handshake. */
  terminate(): void {
    if (this.#engine.state === ReadyState.Closed) return;
    this.#aborted = true;
    this.#engine.abort();
    this.#kick();
  }

  // ---- transport → pump ----

  /**
   * Starts the connection: from the raw bytes to come, or from a head that
   * was already parsed (`node:http`), with the bytes that followed it.
   */
  start(head?: HeadLike, rest?: Uint8Array): void {
    if (head === undefined) {
      this.timer = this.clock.setTimeout(() => this.#handshakeTimedOut(), this.#config.handshakeTimeoutMs);
      return;
    }
    this.#engine.receiveHead(head, rest);
    this.#run();
  }

  /** The socket read bytes. */
  onData(chunk: Uint8Array): void {
    this.received += chunk.length;
    this.idle?.touch();
    this.#engine.receive(chunk);
    if (this.busy) {
      // A hook is still running: keep the bytes, stop reading more.
      this.#pause();
      return;
    }
    this.#run();
  }

  /** The peer ended its side (FIN). */
  onEnd(): void {
    this.#engine.receive(null);
    this.#run();
  }

  /** Everything written so far has been handed to the operating system. */
  onDrain(): void {
    if (!this.needDrain || this.#closed) return;
    if (this.#transport.bufferedAmount >= this.highWaterMark) {
      // Bun's node:net emits `drain` while megabytes are still buffered:
      // check again shortly rather than report a drain that did not happen.
      const rare = this.#rare ??= new PumpRare();
      rare.drainRecheck ??= this.clock.setTimeout(() => {
        rare.drainRecheck = undefined;
        this.onDrain();
      }, DRAIN_RECHECK_MS);
      return;
    }
    this.drainedNow();
    this.#updateReading();
    this.emitDrain();
  }

  /** The socket is closed (after an error, a reset, or our own end). */
  onClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#z?.close(); // frees zlib's memory now, not at garbage collection
    this.#ended = true;
    if (this.#engine.state !== ReadyState.Closed) this.#engine.receive(null);
    this.#run();
    this.#clearTimers();
    this.resolveDrain();
    this.set.delete(this);
  }

  /**
   * Server shutdown: run the `shutdown` hook (after the hook in progress, if
   * any), then close with `code`; drop a handshake in progress.
   */
  shutdown(code: number, reason: string): void {
    const state = this.#engine.state;
    if (state === ReadyState.Connecting) {
      this.#aborted = true;
      this.#engine.abort();
      this.#kick();
      return;
    }
    if (state !== ReadyState.Open) return;
    if (this.handler.shutdown === undefined) {
      this.close(code, reason);
      return;
    }
    (this.#rare ??= new PumpRare()).shutdownClose = [code, reason];
    if (!this.busy) this.#runShutdownHook();
  }

  /** Drops the socket now, whatever the state (the server's shutdown deadline). */
  destroy(): void {
    if (this.#closed) return;
    if (this.#engine.state !== ReadyState.Closed) {
      this.terminate();
      return;
    }
    this.#transport.destroy(); // lingering for the peer's FIN
  }

  /** Runs the `shutdown` hook as a hook of its own, then the close it was waiting for. */
  #runShutdownHook(): void {
    const pending = this.call(() => this.handler.shutdown!(this));
    const close = () => {
      const rare = this.#rare!;
      const [code, reason] = rare.shutdownClose!;
      rare.shutdownClose = undefined;
      if (this.#engine.state === ReadyState.Open) this.close(code, reason);
    };
    if (pending === undefined) {
      close();
      return;
    }
    this.busy = true;
    pending.then(() => {
      this.busy = false;
      close();
      this.#run();
      this.#updateReading();
    });
  }

  // ---- the loop ----

  #run(): void {
    if (this.busy || this.#inLoop) return;
    this.#inLoop = true;
    try {
      for (let event = this.#engine.nextEvent(); event !== undefined; event = this.#engine.nextEvent()) {
        const pending = this.#dispatch(event);
        if (pending !== undefined) {
          this.busy = true;
          pending.then(() => {
            this.busy = false;
            this.idle?.touch(); // the hook held the events: silence counts from its end
            if (this.#rare?.shutdownClose !== undefined) this.#runShutdownHook();
            this.#run();
            this.#updateReading();
          });
          break;
        }
      }
    } catch (err) {
      // Not a peer fault (those are events) nor a hook's (those are caught):
      // a defect of ours. It costs this connection only, never the process.
      this.report(err);
      this.#aborted = true;
      if (this.#engine.state !== ReadyState.Closed) this.#engine.abort();
    } finally {
      this.#inLoop = false;
    }
    this.#flush();
    this.#settle();
  }

  /**
   * Acts on a close or terminate from outside the loop: runs the loop, or,
   * while a hook's promise holds the events, still writes the close frame
   * and starts the close timer (or drops the socket) at once. The events
   * that follow wait for the hook as usual.
   */
  #kick(): void {
    if (this.#inLoop) return;
    if (this.busy) {
      this.#flush();
      this.#settle();
      return;
    }
    this.#run();
  }

  #dispatch(event: EngineEvent): Promise<void> | undefined {
    const handler = this.handler;
    switch (event.type) {
      case "upgrade":
        return this.#upgrade();
      case "rejected":
        this.#refused(event.error.status);
        return undefined;
      case "open":
        this.clock.clearTimeout(this.timer); // the handshake's
        this.timer = undefined;
        this.startIdle();
        return this.call(() => handler.open?.(this));
      case "message":
        if (this.overRate()) return undefined;
        this.messagesIn++;
        return this.callMessage(event.data, event.text !== true && typeof event.data !== "string");
      case "compressed":
        if (this.overRate()) return undefined;
        this.messagesIn++;
        return this.#inflate(event.data, event.binary);
      case "ping":
        return this.call(() => handler.ping?.(this, event.data));
      case "pong":
        return this.call(() => handler.pong?.(this, event.data));
      case "error":
        logMessageTooBig(this, event.error, this.#engine.limits.maxMessageBytes);
        this.report(event.error);
        return undefined;
      case "close": {
        const info: CloseInfo = { code: event.code, reason: event.reason, wasClean: event.wasClean };
        return this.call(() => handler.close?.(this, info));
      }
    }
  }


  /**
   * Inflates a compressed message, checks it (size while inflating, UTF-8
   * for text), then runs the `message` hook; a fault fails the connection
   * with its close code (1009, 1007).
   */
  #inflate(data: Uint8Array, binary: boolean): Promise<void> {
    const z = this.#z!;
    return z.inflate(data, this.#engine.limits.maxMessageBytes).then(
      (bytes) => {
        const message = this.#engine.inflated(bytes, binary); // text not UTF-8: the engine failed the connection with 1007
        if (message === undefined) return undefined;
        return this.callMessage(message, binary);
      },
      (error) => {
        if (error instanceof ProtocolError) return this.peerFault(error);
        if (!(error instanceof UsageError)) this.hookFailed(error); // not the codec closed with the socket
      },
    );
  }

  /** The peer broke the protocol in a way the adapter found: the engine fails the connection. */
  protected peerFault(error: ProtocolError): void {
    this.#closeAfter = undefined;
    this.#engine.fail(error);
  }

  /** A hook failed: close with `code` now, ahead of the messages queued for zlib. */
  protected closeNow(code: number, reason: string): void {
    this.#engine.close(code, reason);
    this.#kick();
  }

  /** The peer did not answer our close frame in time. */
  protected closeTimedOut(): void {
    this.#aborted = true;
    this.#engine.abort();
    this.#kick();
  }

  #upgrade(): Promise<void> | undefined {
    const refusal = this.set.admit(this, this.remoteAddress);
    if (refusal !== undefined) {
      this.#engine.reject(refusal.status, refusal.body, refusal.headers);
      this.#refused(refusal.status);
      return undefined;
    }
    let answer;
    try {
      answer = this.handler.upgrade?.(this);
    } catch (err) {
      this.#upgradeFailed(err);
      return undefined;
    }
    if (isThenable(answer)) {
      return answer.then((a) => this.#answer(a), (err) => this.#upgradeFailed(err));
    }
    return this.#answer(answer);
  }

  #answer(answer: UpgradeAnswer | Response | void): Promise<void> | undefined {
    if (this.#engine.state !== ReadyState.Connecting) return undefined; // the socket went away meanwhile
    try {
      // An object with a status before `instanceof`: reading the global
      // `Response` makes Node load its fetch implementation (undici, about
      // 1.5 MB of external memory and more of heap) in a server that may
      // never use it.
      if (typeof answer === "object" && answer !== null && "status" in answer && answer instanceof Response) return this.#refuse(answer);
      const protocol = answer?.protocol ?? selectSubprotocol(this.request.protocols, this.#config.protocols) ?? "";
      const deflate = this.#config.deflate;
      const agreement = deflate?.negotiate(this.request.extensions);
      if (agreement === undefined) {
        this.#engine.accept({ protocol, headers: answer?.headers });
      } else {
        this.#engine.accept({ protocol, headers: answer?.headers, extensions: agreement.response, deflate: agreement.params });
        const z = deflate!.open(agreement.params, (error) => {
          // zlib failed to compress (out of memory): this connection only.
          this.report(error);
          this.terminate();
        });
        z.onIdle(() => this.#deflateIdle());
        (this.#rare ??= new PumpRare()).z = z;
      }
    } catch (err) {
      this.#upgradeFailed(err);
    }
    return undefined;
  }

  #refuse(response: Response): Promise<void> {
    const headers: [string, string][] = [];
    response.headers.forEach((value, name) => {
      if (!["content-length", "connection", "transfer-encoding"].includes(name)) headers.push([name, value]);
    });
    return response.text().then(
      (body) => {
        if (this.#engine.state !== ReadyState.Connecting) return;
        try {
          this.#engine.reject(response.status, body, headers);
          this.#refused(response.status);
        } catch (err) {
          this.#upgradeFailed(err);
        }
      },
      (err) => this.#upgradeFailed(err),
    );
  }

  #upgradeFailed(err: unknown): void {
    this.report(err);
    if (this.#engine.state === ReadyState.Connecting) {
      this.#engine.reject(500, "Internal Server Error");
      this.#refused(500);
    }
  }

  /** Tells an observer, if the app has one, that the upgrade was refused. */
  #refused(status: number): void {
    observerOf(this.handler)?.refused(status, this.id);
  }

  #handshakeTimedOut(): void {
    if (this.#engine.state !== ReadyState.Connecting || this.#engine.request !== undefined) return;
    this.#aborted = true;
    this.#engine.abort();
    this.#kick();
  }

  // ---- output ----

  #scheduleFlush(): void {
    if (this.#inLoop || this.#flushQueued) return;
    this.#flushQueued = true;
    // Sending never changes the state: only #run() does, and it settles.
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#engine.outputBytes === 0) return;
    const chunks = this.#engine.takeOutput();
    if (this.#closed || this.#ended) return;
    for (let i = 0; i < chunks.length; i++) this.bytesOut += chunks[i]!.length;
    if (this.#transport.write(chunks)) {
      if (!this.needDrain) this.resolveDrain();
    } else if (!this.needDrain) {
      this.needDrain = true;
      this.backpressured();
      this.#updateReading();
    }
  }

  /** Read while no hook is pending and the output is below the high-water mark. */
  #updateReading(): void {
    if (this.#closed) return;
    const pause = (this.busy && this.#engine.inputBytes > 0) || (this.needDrain && !this.#ended);
    if (pause) this.#pause();
    else if (this.#paused) {
      this.#paused = false;
      this.#transport.resume();
    }
  }

  #pause(): void {
    if (this.#paused || this.#closed) return;
    this.#paused = true;
    this.#transport.pause();
  }

  /** Starts the timers and the socket teardown that the engine's state calls for. */
  #settle(): void {
    const state = this.#engine.state;
    if (state === ReadyState.Closing && this.timer === undefined && !this.#ended) this.startCloseTimer();
    if (state !== ReadyState.Open && this.idle !== undefined) this.stopIdle();
    if (state !== ReadyState.Closed || this.#ended) return;
    this.#ended = true;
    this.clock.clearTimeout(this.timer); // the handshake's or the close's
    this.timer = undefined;
    if (this.#closed) return;
    if (this.#aborted) {
      this.#transport.destroy();
      return;
    }
    // The server closes TCP first (RFC 6455 §7.1.1): FIN after the last
    // frame, keep reading (and discarding) until the peer's FIN so that no
    // reset can overtake the close frame, and destroy if it never comes.
    this.#transport.end();
    this.timer = this.clock.setTimeout(() => this.#transport.destroy(), this.#engine.limits.closeTimeoutMs);
    if (this.#paused) {
      this.#paused = false;
      this.#transport.resume();
    }
  }

  #clearTimers(): void {
    const clock = this.clock;
    clock.clearTimeout(this.timer);
    if (this.#rare !== undefined) clock.clearTimeout(this.#rare.drainRecheck);
    this.stopIdle();
  }
}
