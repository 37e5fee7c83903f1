/**
 * The native paths' side of the pump: Duplex hooks and context over a
 * runtime's own WebSocket server (`Deno.upgradeWebSocket`, `Bun.serve`).
 * The runtime does the framing; this module does everything Duplex
 * promises on top of it the same way as the raw pump: the handshake checks
 * and answers, the `upgrade` hook, subprotocol choice by the server's
 * preference, hooks one at a time, `maxMessageBytes`, the close timer,
 * backpressure signals, and typed errors.
 *
 * @module
 */

import { CloseCode, closePayload } from "../core/close_code.ts";
import type { MessageData } from "../core/engine.ts";
import { HandshakeError, ProtocolError, UsageError } from "../core/errors.ts";
import { messageData, type PreparedMessage } from "../core/prepared.ts";
import { headersBlock, RawRequestHead } from "../core/_fields.ts";
import { headSize } from "../core/_head_size.ts";
import { checkErrorStatus } from "../core/_http_status.ts";
import { type UpgradeRequest, validateUpgradeRequest } from "../core/handshake.ts";
import { selectSubprotocol } from "../core/handshake_offers.ts";
import { ReadyState, transition, type Transition } from "../core/state.ts";
import type { CloseInfo, ConnectionOptions, Handler, SendOptions, UpgradeAnswer } from "../plugins/hooks.ts";
import { CLOSED_BY, observerOf, TRANSPORT } from "../plugins/_observer.ts";
import { ConnectionBase } from "./_connection.ts";
import type { ConnectionSet } from "./_registry.ts";
import { isThenable } from "../plugins/_thenable.ts";
import { NATIVE_TOPICS, type NativeTopics, type NativeTopicServer } from "../plugins/_native_topics.ts";
import { closeReasonFor } from "../core/_close_reason.ts";
import { logMessageTooBig } from "./_close_log.ts";

/**
 * A runtime's server-side WebSocket, as a {@linkcode NativeSession} drives it.
 *
 * @example
 * ```ts
 * import type { NativeSocket } from "./_native.ts";
 *
 * declare const ws: { send(data: string | Uint8Array): void; close(code?: number, reason?: string): void; bufferedAmount: number };
 * const socket: NativeSocket = {
 *   send: (data) => (ws.send(data), true),
 *   close: (code, reason) => ws.close(code, reason),
 *   terminate: () => ws.close(),
 *   get bufferedAmount() {
 *     return ws.bufferedAmount;
 *   },
 * };
 * ```
 */
export interface NativeSocket {
  /** Sends a message; `false` when the runtime reports backpressure. */
  send(data: string | Uint8Array): boolean;
  /**
   * How the session learns, after a send the runtime took, whether its queue
   * reached the high-water mark:
   * - `"read"` (the default): it reads `bufferedAmount` after every send;
   * - `"send"`: `send` returns `false` whenever bytes wait after it (Bun's
   *   `send` answers -1 then), so after a `true` nothing waits;
   * - `"sends"`: only sends (messages and pings) add to the queue (Deno), so
   *   the session reads `bufferedAmount` only once what it sent since the
   *   last reading could reach the mark.
   */
  readonly queueCheck?: "read" | "send" | "sends";
  /** Sends a ping; absent when the runtime cannot. */
  ping?(data: Uint8Array): void;
  /** Sends a close frame with this code and reason. */
  close(code: number, reason: string): void;
  /** Drops the connection without a close handshake, as far as the runtime allows. */
  terminate(): void;
  /** Bytes queued by the runtime and not yet written. */
  readonly bufferedAmount: number;
  /** Stops reading; absent when the runtime cannot. */
  pause?(): void;
  /** Starts reading again. */
  resume?(): void;
  /** Whether the runtime tells when its queue drained (else the session polls `bufferedAmount`). */
  readonly drainEvents?: boolean;
  /** The runtime's own topics, when it has them (Bun); the session offers them to pub/sub under `NATIVE_TOPICS`. */
  readonly topics?: NativeSocketTopics;
}

/**
 * A runtime's own topics for one socket, as an adapter hands them to a
 * {@linkcode NativeSession} (which adds its state and limits to make the
 * connection's {@linkcode NativeTopics} for pub/sub).
 *
 * @example
 * ```ts
 * import type { NativeSocketTopics } from "./_native.ts";
 *
 * declare const ws: { subscribe(t: string): void; unsubscribe(t: string): void; publish(t: string, d: string | Uint8Array): number };
 * declare const server: { publish(t: string, d: string | Uint8Array): number; subscriberCount(t: string): number };
 * const topics: NativeSocketTopics = {
 *   server: { publish: (t, d) => void server.publish(t, d), subscribers: (t) => server.subscriberCount(t) },
 *   subscribe: (t) => ws.subscribe(t),
 *   unsubscribe: (t) => ws.unsubscribe(t),
 *   publish: (t, d) => void ws.publish(t, d),
 * };
 * ```
 */
export interface NativeSocketTopics {
  /** The server's half, one object per server. */
  readonly server: NativeTopicServer;
  /** Subscribes the socket. */
  subscribe(topic: string): void;
  /** Unsubscribes the socket. */
  unsubscribe(topic: string): void;
  /** Publishes to the server's other subscribers of `topic`. */
  publish(topic: string, data: string | Uint8Array): void;
}

/** What {@linkcode prepareUpgrade} decided: answer the request with `response`, or upgrade it. */
export type UpgradeDecision<S> =
  | { response: Response; session?: undefined; refusedId?: string }
  | { response?: undefined; session: NativeSession<S>; protocol: string; headers: [string, string][] };

const POLL_MS = 10;
/** The largest header of a frame a server sends (unmasked, 64-bit length). */
const MAX_HEADER = 10;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
let lastId = 0;

/** UTF-8 length of `text`, computed only when the cheap bounds cannot decide against `limit`. */
function exceeds(data: string | Uint8Array, limit: number): boolean {
  if (typeof data !== "string") return data.length > limit;
  if (data.length > limit) return true;
  if (data.length * 3 <= limit) return false;
  return encoder.encode(data).length > limit;
}


function textResponse(status: number, body: string, headers: Record<string, string> | [string, string][] = {}): Response {
  const all = new Headers(headers);
  all.set("Content-Type", "text/plain; charset=utf-8");
  return new Response(body, { status, headers: all });
}

/**
 * Checks a native upgrade request the way the raw engine checks its bytes,
 * runs the `upgrade` hook, and chooses the subprotocol. Never throws: a bad
 * request gets its 400/426/431 answer, a hook's refusal its `Response`, and
 * a hook that throws a 500 (after reaching `error`).
 *
 * @param request The runtime's request.
 * @param remoteAddress The peer's address, or `""`.
 * @param handler The application's hooks.
 * @param options Resolved connection options.
 * @param set The server's live connections.
 * @returns The decision.
 *
 * @example
 * ```ts
 * import { ConnectionSet } from "./_registry.ts";
 * import { resolveConnectionOptions } from "./_options.ts";
 * import { prepareUpgrade } from "./_native.ts";
 *
 * const decision = await prepareUpgrade(new Request("http://a/"), "", {}, resolveConnectionOptions({}), new ConnectionSet());
 * console.log(decision.response?.status); // 426
 * ```
 */
export async function prepareUpgrade<S>(
  request: Request,
  remoteAddress: string,
  handler: Handler<S>,
  options: Readonly<ConnectionOptions>,
  set: ConnectionSet,
): Promise<UpgradeDecision<S>> {
  const decision = await decideUpgrade(request, remoteAddress, handler, options, set);
  if (decision.response !== undefined) observerOf(handler)?.refused(decision.response.status, decision.refusedId);
  return decision;
}

async function decideUpgrade<S>(
  request: Request,
  remoteAddress: string,
  handler: Handler<S>,
  options: Readonly<ConnectionOptions>,
  set: ConnectionSet,
): Promise<UpgradeDecision<S>> {
  let upgrade: UpgradeRequest;
  try {
    const url = new URL(request.url);
    const head = { method: request.method, url: url.pathname + url.search, httpVersion: "1.1", headers: request.headers };
    if (headSize(head) > (options.maxHeaderBytes ?? Infinity)) {
      throw new HandshakeError("WS_ERR_HEADERS_TOO_LARGE", 431, "Request header fields too large");
    }
    // The request lives as long as the connection: keep its fields as one
    // string (headers built again on first use) rather than the runtime's
    // Headers and the header list behind it.
    upgrade = validateUpgradeRequest(new RawRequestHead(head.method, head.url, head.httpVersion, headersBlock(request.headers)));
  } catch (err) {
    if (err instanceof HandshakeError) return { response: textResponse(err.status, err.message, err.headers) };
    throw err;
  }
  const session = new NativeSession<S>(upgrade, remoteAddress, handler, options, set);
  const refusal = set.admit(session, remoteAddress);
  if (refusal !== undefined) {
    session.failUpgrade();
    return { response: textResponse(refusal.status, refusal.body, refusal.headers), refusedId: session.id };
  }
  let answer: UpgradeAnswer | Response | void;
  try {
    const result = handler.upgrade?.(session);
    answer = isThenable(result) ? await result : result;
  } catch (err) {
    session.failUpgrade(err);
    return { response: textResponse(500, "Internal Server Error"), refusedId: session.id };
  }
  if (session.readyState !== ReadyState.Connecting) {
    // Shut down (or closed by the hook) while the hook ran.
    return { response: textResponse(503, "Service Unavailable"), refusedId: session.id };
  }
  if (answer instanceof Response) {
    try {
      checkErrorStatus(answer.status);
    } catch (error) {
      session.failUpgrade(error);
      return { response: textResponse(500, "Internal Server Error"), refusedId: session.id };
    }
    session.failUpgrade();
    return { response: answer, refusedId: session.id };
  }
  const protocol = answer?.protocol ?? selectSubprotocol(upgrade.protocols, options.protocols ?? []) ?? "";
  if (protocol !== "" && !upgrade.protocols.includes(protocol)) {
    session.failUpgrade(new UsageError("ERR_INVALID_PROTOCOL", `Invalid protocol: the client did not offer ${JSON.stringify(protocol)}`));
    return { response: textResponse(500, "Internal Server Error"), refusedId: session.id };
  }
  const headers = answer?.headers ?? [];
  return { session, protocol, headers: Array.isArray(headers) ? headers : Object.entries(headers) };
}

/**
 * One connection on a native path: the {@linkcode Connection} the hooks see,
 * fed by the adapter's `on*` calls. Its state moves through core's
 * transition table, as the engine's does.
 *
 * @example An adapter's part
 * ```ts
 * import type { NativeSession, NativeSocket } from "./_native.ts";
 *
 * declare const session: NativeSession;
 * declare const socket: NativeSocket;
 * session.attach(socket, "chat.v1"); // when the runtime opened the socket
 * session.onMessage("hello");
 * session.onClose(1000, "", true);
 * ```
 */
export class NativeSession<S = Record<string, unknown>> extends ConnectionBase<S> {
  // The id as a number: an idle connection holds no string for it.
  readonly #id: number = ++lastId;
  // The state object on first use: an idle connection holds no empty object.
  #data: S | undefined;
  /** The opening handshake. */
  readonly request: UpgradeRequest;

  /** Unique id of the connection within the process. */
  get id(): string {
    return `n${this.#id}`;
  }
  /** The peer's address. */
  readonly remoteAddress: string;

  readonly #maxMessageBytes: number;
  readonly #textBytes: boolean;
  #socket: NativeSocket | undefined;
  #protocol = "";
  #state: ReadyState = ReadyState.Connecting;
  #closedBy: "server" | "client" | undefined;
  #queue: (() => void | Promise<void>)[] | undefined; // allocated by the first event that waits
  #paused = false;
  #pollTimer: unknown;
  /** What we sent when the peer failed the connection, reported instead of the runtime's view. */
  #failure: CloseInfo | undefined;
  #closeReported = false;
  /** The runtime's topics with this session's state and limits, once attached to a runtime that has them. */
  #topics: NativeTopics | undefined;
  /** At least the runtime's `bufferedAmount`, with `queueCheck: "sends"` (see #queued). */
  #queueBound = 0;

  /**
   * @param request The validated opening handshake.
   * @param remoteAddress The peer's address.
   * @param handler The application's hooks.
   * @param options Resolved connection options.
   * @param set The server's live connections; the session adds and removes itself.
   */
  constructor(
    request: UpgradeRequest,
    remoteAddress: string,
    handler: Handler<S>,
    options: Readonly<ConnectionOptions>,
    set: ConnectionSet,
  ) {
    super(handler, options, set);
    this.request = request;
    this.remoteAddress = remoteAddress;
    this.#maxMessageBytes = options.maxMessageBytes ?? Infinity;
    this.#textBytes = options.textAs === "bytes";
  }

  /**
   * As on the raw pump: below the high-water mark, which each send checks
   * after it, the output cannot be over a cap at least twice that mark, so
   * send() reads bufferedAmount for the cap only while waiting for drain.
   */
  protected override get capAlways(): boolean {
    return this.maxBuffered < 2 * this.highWaterMark;
  }

  // ---- Connection ----

  /** The application's data for this connection; `{}` until set. */
  get state(): S {
    return this.#data ??= {} as S;
  }

  set state(value: S) {
    this.#data = value;
  }

  /** The negotiated subprotocol, or `""`. */
  get protocol(): string {
    return this.#protocol;
  }

  /** Native paths negotiate no extension. */
  get extensions(): string {
    return "";
  }

  /** Native paths do not compress: `undefined`. */
  get deflate(): undefined {
    return undefined;
  }

  /** The connection state. */
  get readyState(): ReadyState {
    return this.#state;
  }

  /** Bytes queued by the runtime and not yet written. */
  get bufferedAmount(): number {
    return this.#socket?.bufferedAmount ?? 0;
  }

  /** The runtime's own topics (Bun), for pub/sub; `undefined` on a runtime without them. */
  get [NATIVE_TOPICS](): NativeTopics | undefined {
    return this.#topics;
  }

  /** Starts the close handshake. */
  close(code: number = CloseCode.Normal, reason = ""): void {
    closePayload(code, reason); // throws UsageError on a code or reason that may not be sent
    if (this.#state === ReadyState.Connecting) {
      this.#move("abort");
      this.set.delete(this);
      return;
    }
    if (this.#state !== ReadyState.Open) return;
    this.#closeWith(code, reason);
  }

  /** For observers: the runtime frames the bytes. */
  get [TRANSPORT](): "native" {
    return "native";
  }

  /** For observers: who started the close. */
  get [CLOSED_BY](): "server" | "client" | undefined {
    return this.#closedBy;
  }

  /** Drops the connection without a close handshake. */
  terminate(): void {
    if (this.#state === ReadyState.Closed || this.#socket === undefined) return;
    this.#closedBy ??= "server";
    this.#socket.terminate();
    // Report now: some runtimes only tell once the peer answers, or never.
    this.onClose(CloseCode.Abnormal, "", false);
  }

  /**
   * Server shutdown: run the `shutdown` hook (after the hooks queued before
   * it), then close with `code`; refuse a handshake in progress.
   */
  shutdown(code: number, reason: string): void {
    if (this.#state !== ReadyState.Open || this.handler.shutdown === undefined) {
      this.close(code, reason);
      return;
    }
    this.#enqueue(() => this.handler.shutdown!(this));
    this.#enqueue(() => {
      if (this.#state === ReadyState.Open) this.close(code, reason);
    });
  }

  /** Drops the connection now, whatever the state (the server's shutdown deadline). */
  destroy(): void {
    if (this.#state === ReadyState.Connecting) this.failUpgrade();
    else this.terminate();
  }

  // ---- ConnectionBase ----

  protected get sendable(): boolean {
    return this.#state === ReadyState.Open;
  }

  protected get outputIdle(): boolean {
    return !this.needDrain;
  }

  /** Nothing is compressed here. */
  protected write(data: MessageData, options: SendOptions | undefined): boolean {
    let payload = messageData(data);
    // The runtime frames by type: a string as text, bytes as binary.
    const binary = options?.binary;
    if (binary !== undefined && binary !== (typeof payload !== "string")) {
      payload = binary ? encoder.encode(payload as string) : decoder.decode(payload as Uint8Array);
    }
    this.bytesOut += payload.length;
    const socket = this.#socket!;
    if (!socket.send(payload)) this.#startDrainWait();
    else if (socket.queueCheck === "sends") this.#queued(typeof payload === "string" ? 3 * payload.length : payload.length);
    // With "send", nothing waits after a send the runtime took (and highWaterMark is at least 1).
    else if (socket.queueCheck !== "send" && socket.bufferedAmount >= this.highWaterMark) this.#startDrainWait();
    return !this.needDrain;
  }

  /** The runtime frames `message.data`. */
  protected writePrepared(message: PreparedMessage): boolean {
    return this.write(message.data, undefined);
  }

  protected writePing(payload: Uint8Array): void {
    if (this.#socket!.ping === undefined) {
      throw new UsageError("ERR_UNSUPPORTED", "Cannot ping: this runtime's native WebSocket server has no ping");
    }
    this.#socket!.ping(payload);
    this.#queueBound += payload.length + 2;
  }

  protected closeNow(code: number, reason: string): void {
    this.close(code, reason);
  }

  protected closeTimedOut(): void {
    this.terminate();
  }

  protected peerFault(error: ProtocolError): void {
    this.fail(error);
  }

  // ---- adapter → session ----

  /** The `upgrade` hook refused or failed: nothing will open. */
  failUpgrade(err?: unknown): void {
    if (err !== undefined) this.report(err);
    if (this.#state === ReadyState.Connecting) {
      this.#move("reject");
      this.set.delete(this);
    }
  }

  /** The runtime opened the WebSocket. */
  attach(socket: NativeSocket, protocol: string): void {
    this.#socket = socket;
    this.#protocol = protocol;
    if (this.#state !== ReadyState.Connecting) {
      // Shut down between the answer and the open: it never opened for the
      // app, so the runtime's close report that follows is not passed on.
      this.#closeReported = true;
      socket.close(CloseCode.GoingAway, "Server shutting down");
      return;
    }
    this.#move("accept");
    if (socket.topics !== undefined) this.#topics = this.#nativeTopics(socket, socket.topics);
    // A runtime that cannot ping (Deno) runs its own idle timeout, set by the adapter.
    if (socket.ping !== undefined) this.startIdle();
    this.#enqueue(() => this.handler.open?.(this));
  }

  /** A whole message arrived. */
  onMessage(data: string | Uint8Array): void {
    if (this.#state === ReadyState.Closed || this.#failure !== undefined) return;
    this.received += data.length + 1;
    this.idle?.touch();
    if (this.overRate()) return;
    if (exceeds(data, this.#maxMessageBytes)) {
      this.fail(new ProtocolError(
        "WS_ERR_MESSAGE_TOO_BIG",
        CloseCode.MessageTooBig,
        `Message too big: over the limit of ${this.#maxMessageBytes} bytes`,
      ));
      return;
    }
    this.messagesIn++;
    const binary = typeof data !== "string";
    // The runtime decoded the text; textAs: "bytes" encodes it back (no saving here, the same contract).
    const message = !binary && this.#textBytes ? encoder.encode(data) : data;
    if (this.busy) {
      (this.#queue ??= []).push(() => this.handler.message?.(this, message, binary));
      return;
    }
    // What #enqueue() does with a closure, without one: this runs once per
    // message, as often as the runtime's own work on a small one.
    const pending = this.callMessage(message, binary);
    if (pending !== undefined) this.#wait(pending);
  }

  /** A ping arrived (the runtime answered it). */
  onPing(data: Uint8Array): void {
    this.received += data.length + 1;
    this.idle?.touch();
    if (this.#state !== ReadyState.Open) return;
    this.#enqueue(() => this.handler.ping?.(this, data));
  }

  /** A pong arrived. */
  onPong(data: Uint8Array): void {
    this.received += data.length + 1;
    this.idle?.touch();
    if (this.#state === ReadyState.Closed) return;
    this.#enqueue(() => this.handler.pong?.(this, data));
  }

  /**
   * The peer broke the protocol: report `error` and close with its code. If
   * the runtime already sent the close frame, pass `sent` so that only the
   * report happens.
   */
  fail(error: ProtocolError, sent = false): void {
    if (this.#failure !== undefined || this.#state === ReadyState.Closed) return;
    this.#failure = { code: error.closeCode, reason: error.message, wasClean: false };
    if (this.#state === ReadyState.Open) this.#closedBy ??= "server";
    logMessageTooBig(this, error, this.#maxMessageBytes);
    this.report(error);
    if (sent || this.#state !== ReadyState.Open) return;
    this.#closeWith(error.closeCode, closeReasonFor(error.closeCode));
  }

  /** The runtime reported a fault it handled itself: only the `error` hook hears of it. */
  reportError(error: unknown): void {
    if (this.#state === ReadyState.Closed) return;
    this.report(error);
  }

  /** The runtime's queue drained. */
  onDrain(): void {
    if (!this.needDrain || this.bufferedAmount >= this.highWaterMark) return;
    this.clock.clearTimeout(this.#pollTimer);
    this.drainedNow();
    this.emitDrain();
  }

  /** The connection closed: `code`, `reason` and `wasClean` as the runtime saw them. */
  onClose(code: number, reason: string, wasClean: boolean): void {
    if (this.#closeReported) return;
    this.#closeReported = true;
    const opened = this.#socket !== undefined && this.#state !== ReadyState.Connecting;
    if (opened) this.#closedBy ??= "client";
    if (this.#state !== ReadyState.Closed) this.#move(wasClean ? "peerClose" : "transportEnd");
    this.clock.clearTimeout(this.timer);
    this.clock.clearTimeout(this.#pollTimer);
    this.stopIdle();
    this.drainedNow();
    this.set.delete(this);
    if (!opened) return;
    const info: CloseInfo = this.#failure ?? { code: code === 0 ? CloseCode.NoStatus : code, reason, wasClean };
    this.#enqueue(() => this.handler.close?.(this, info));
  }

  // ---- internals ----

  /** Moves the state through core's transition table; an action with no row there is a defect of ours. */
  #move(action: Transition): void {
    const next = transition(this.#state, action);
    if (next === undefined) throw new Error(`duplex: native session cannot ${action} in state ${this.#state}`);
    this.#state = next;
  }

  /** Sends our close frame first (a close, or a fault we found), and gives the peer `closeTimeoutMs` to answer. */
  #closeWith(code: number, reason: string): void {
    this.#move("localClose");
    this.#closedBy ??= "server";
    this.stopIdle();
    // The timer first: a runtime may report the close inside close() (Bun),
    // and onClose() then clears it.
    this.startCloseTimer();
    this.#socket?.close(code, reason);
  }

  #nativeTopics(socket: NativeSocket, topics: NativeSocketTopics): NativeTopics {
    // deno-lint-ignore no-this-alias
    const session = this;
    return {
      server: topics.server,
      get open() {
        return session.#state === ReadyState.Open;
      },
      get bufferedAmount() {
        return socket.bufferedAmount;
      },
      maxBufferedBytes: this.maxBuffered,
      subscribe: (topic) => topics.subscribe(topic),
      unsubscribe: (topic) => topics.unsubscribe(topic),
      publish: (topic, data) => topics.publish(topic, data),
      // What send() does after the runtime took a message: a backpressured
      // socket (which Bun's send reports as -1) waits for `drain`.
      delivered: () => {
        const buffered = socket.bufferedAmount;
        this.#queueBound = buffered;
        if (buffered > 0) this.#startDrainWait();
      },
    };
  }

  /**
   * A message of at most `bytes` bytes went to a runtime whose queue grows
   * only by our sends (`queueCheck: "sends"`, Deno): wait for drain when the
   * queue is at or over the high-water mark. It holds at most what it held
   * when last read plus what was sent since, so it is read (a call into the
   * runtime, 40 ns or more on Deno, as much as the rest of a small echo's
   * work in Duplex) only once that bound reaches the mark: once per
   * high-water mark of output while the peer reads. The same answer as
   * reading it after every send.
   */
  #queued(bytes: number): void {
    this.#queueBound += bytes + MAX_HEADER;
    if (this.#queueBound < this.highWaterMark) return;
    const buffered = this.#socket!.bufferedAmount;
    this.#queueBound = buffered;
    if (buffered >= this.highWaterMark) this.#startDrainWait();
  }

  #startDrainWait(): void {
    if (this.needDrain) return;
    this.needDrain = true;
    this.backpressured();
    if (this.#socket?.drainEvents) return;
    const poll = () => {
      this.#pollTimer = undefined;
      if (!this.needDrain) return;
      this.onDrain();
      if (this.needDrain && this.#state !== ReadyState.Closed) this.#pollTimer = this.clock.setTimeout(poll, POLL_MS);
    };
    this.#pollTimer = this.clock.setTimeout(poll, POLL_MS);
  }

  /** Runs hooks one at a time: while one is pending, later events wait and reading pauses. */
  #enqueue(hook: () => void | Promise<void>): void {
    if (this.busy) {
      (this.#queue ??= []).push(hook);
      return;
    }
    this.#run(hook);
  }

  #run(first: () => void | Promise<void>): void {
    let hook: (() => void | Promise<void>) | undefined = first;
    while (hook !== undefined) {
      const pending = this.call(hook);
      if (pending !== undefined) {
        this.#wait(pending);
        return;
      }
      hook = this.#queue?.shift();
    }
  }

  /** A hook is pending: later events wait (and reading pauses) until it settles. */
  #wait(pending: Promise<void>): void {
    this.busy = true;
    if (!this.#paused && this.#state !== ReadyState.Closed) {
      this.#paused = true;
      this.#socket?.pause?.();
    }
    pending.then(() => {
      this.busy = false;
      this.idle?.touch(); // the hook held the events: silence counts from its end
      const next = this.#queue?.shift();
      if (next !== undefined) this.#run(next);
      if (!this.busy && this.#paused) {
        this.#paused = false;
        if (this.#state !== ReadyState.Closed) this.#socket?.resume?.();
      }
    });
  }
}
