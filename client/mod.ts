/**
 * `@duplex/ws/client`: a WebSocket client for the `duplex.v1` protocol
 * (PROTOCOL.md) that reconnects on its own and loses nothing on the way.
 * Subscriptions resume from their last offset, so each message reaches the
 * app once and in order (or the app is told, per topic, what was lost);
 * publishes wait in a bounded queue and each promise settles with the
 * message's offset or a {@linkcode DuplexError}. Zero dependencies, web
 * standard APIs only: browsers, Deno, Bun, and Node with the `ws` package.
 *
 * In a browser (or Deno, or Bun):
 *
 * ```ts
 * import { DuplexClient } from "@duplex/ws/client";
 *
 * const client = new DuplexClient("wss://example.com/chat");
 * client.on("status", (e) => console.log(e.status, e.reason ?? ""));
 * client.subscribe("room:1", (m) => console.log(m.offset, m.data), {
 *   onResult: (r) => r.result === "gap" && console.warn("missed messages", r.gap),
 * });
 * const position = await client.publish("room:1", "hello");
 * ```
 *
 * On Node 20, with `ws`'s WebSocket and a token fetched for every attempt:
 *
 * ```ts
 * import { WebSocket } from "ws";
 * import { DuplexClient } from "@duplex/ws/client";
 *
 * declare function fetchToken(): Promise<string>;
 * declare function handle(data: string | Uint8Array): void;
 *
 * const client = new DuplexClient(
 *   async () => `wss://example.com/chat?token=${await fetchToken()}`,
 *   { WebSocket, reconnect: { maxDelayMs: 5_000 }, heartbeat: { intervalMs: 10_000, timeoutMs: 5_000 } },
 * );
 * client.subscribe("orders", (m) => handle(m.data), { from: "start" });
 * ```
 *
 * @module
 */

import { byteLength, decodeServer, encode, type From, MAX_TOPIC, PROTOCOL_V1, type Position } from "./_wire.ts";
import type { Gap } from "./_wire.ts";
import { type ClientOptions, type HeartbeatOptions, type Settings, settings, type WebSocketLike } from "./_options.ts";

export type { From, Gap, GapReason, Position } from "./_wire.ts";
export { defaultShouldRetry } from "./_options.ts";
export type {
  BrowserLike,
  ClientOptions,
  CloseInfo,
  HeartbeatOptions,
  QueueOptions,
  ReconnectOptions,
  Timers,
  WebSocketConstructor,
  WebSocketLike,
} from "./_options.ts";

/** The codes of a {@linkcode DuplexError}: the server's four, then the client's own. */
export type DuplexErrorCode =
  | "forbidden"
  | "invalid"
  | "unavailable"
  | "too_large"
  | "queue_full"
  | "expired"
  | "closed"
  | "timeout";

/**
 * A failure the caller can act on: a rejected publish, a refused
 * subscription, a timeout. Match on `code`.
 *
 * @example
 * ```ts
 * import { DuplexClient, DuplexError } from "@duplex/ws/client";
 * const client = new DuplexClient("wss://example.com/ws");
 * try {
 *   await client.publish("room:1", "hi");
 * } catch (e) {
 *   if (e instanceof DuplexError && e.code === "forbidden") console.log("read-only room");
 * }
 * ```
 */
export class DuplexError extends Error {
  /** What went wrong: `forbidden`, `invalid`, `unavailable`, `too_large` (the server's answers), `queue_full`, `expired`, `closed`, `timeout`. */
  readonly code: DuplexErrorCode;
  /** The topic concerned, if any. */
  readonly topic: string | undefined;
  /**
   * Makes an error.
   *
   * @param code The code.
   * @param message What happened.
   * @param topic The topic concerned.
   */
  constructor(code: DuplexErrorCode, message: string, topic?: string) {
    super(message);
    this.name = "DuplexError";
    this.code = code;
    this.topic = topic;
  }
}

/** The client's state. */
export type Status = "connecting" | "open" | "reconnecting" | "closed";

/**
 * A change of state, or the start of an attempt or of a wait:
 * `connecting` (before the first open) and `reconnecting` (after a loss)
 * are announced when each attempt starts (with `attempt`) and when each
 * wait starts (with `delayMs`, and the `code` and `reason` of the close
 * that caused it); `closed` carries the final close.
 *
 * @example
 * ```ts
 * import { DuplexClient } from "@duplex/ws/client";
 * const client = new DuplexClient("wss://example.com/ws");
 * client.on("status", (e) => {
 *   if (e.delayMs !== undefined) console.log(`lost (${e.code} ${e.reason}), retrying in ${e.delayMs} ms`);
 * });
 * ```
 */
export interface StatusEvent {
  /** The state. */
  readonly status: Status;
  /** The close code that led here. */
  readonly code?: number;
  /** The close reason that led here, or what the client saw (`Connect timeout`, `Heartbeat timeout`). */
  readonly reason?: string;
  /** The attempt starting or waited for: 0 is the first, then counted since the last open. */
  readonly attempt?: number;
  /** How long the client waits before the attempt. */
  readonly delayMs?: number;
}

/**
 * The server's answer to a (re)subscription, given on every one, after
 * each reconnect too.
 *
 * @example
 * ```ts
 * import { DuplexClient } from "@duplex/ws/client";
 * const client = new DuplexClient("wss://example.com/ws");
 * client.on("subscribed", (r) => {
 *   if (r.result === "gap") console.warn(`${r.topic}: lost from ${r.gap?.from} (${r.gap?.reason})`);
 * });
 * ```
 */
export interface SubscribeResult {
  /** The topic. */
  readonly topic: string;
  /** `recovered`: nothing missed; `gap`: see `gap`; `fresh`: subscribed from `now` or `start`. */
  readonly result: "recovered" | "gap" | "fresh";
  /** Where the stream continues: the next message has this epoch and offset + 1. */
  readonly position: Position;
  /** What was asked for and is lost (when `result` is `gap`). */
  readonly gap?: Gap;
}

/**
 * A message of a topic, delivered once and in order.
 *
 * @example
 * ```ts
 * import { type ClientMessageEvent, DuplexClient } from "@duplex/ws/client";
 * const client = new DuplexClient("wss://example.com/ws");
 * client.subscribe("room:1", (m: ClientMessageEvent) => console.log(`${m.epoch}/${m.offset}`, m.data));
 * ```
 */
export interface ClientMessageEvent {
  /** The topic. */
  readonly topic: string;
  /** The data: text, or bytes. */
  readonly data: string | Uint8Array;
  /** The history it belongs to. */
  readonly epoch: string;
  /** Its offset in that history. */
  readonly offset: number;
}

/**
 * Options of {@linkcode DuplexClient.subscribe}.
 *
 * @example
 * ```ts
 * import type { SubscribeOptions } from "@duplex/ws/client";
 * const options: SubscribeOptions = { from: "start", onResult: (r) => console.log(r.result) };
 * ```
 */
export interface SubscribeOptions {
  /** Where to start: `now` (default), `start` (the oldest message held), or after a saved position. */
  readonly from?: From;
  /** Called with the server's answer on every (re)subscription. */
  readonly onResult?: (result: SubscribeResult) => void;
}

/**
 * A subscription, alive across reconnects until `unsubscribe()` or the
 * client's close.
 *
 * @example
 * ```ts
 * import { DuplexClient } from "@duplex/ws/client";
 * const client = new DuplexClient("wss://example.com/ws");
 * const sub = client.subscribe("room:1", (m) => console.log(m.data));
 * localStorage.setItem("pos", JSON.stringify(sub.position));
 * sub.unsubscribe();
 * ```
 */
export interface Subscription {
  /** The topic. */
  readonly topic: string;
  /** The position of the last message delivered (or where the server said the stream starts); a later subscribe can pass it as `from`. */
  readonly position: Position | undefined;
  /** Ends the subscription: no more messages. */
  unsubscribe(): void;
}

/** Listeners of {@linkcode DuplexClient.on}, by event name. */
export interface ClientEvents {
  /** State changes: see {@linkcode StatusEvent}. */
  status: StatusEvent;
  /** Each (re)subscription's answer: see {@linkcode SubscribeResult}. */
  subscribed: SubscribeResult;
  /** Failures not tied to a publish: a refused subscription, a timeout, a bad message from the server. */
  error: DuplexError;
}

interface Pending {
  readonly key: string;
  readonly topic: string;
  readonly data: string | Uint8Array;
  readonly bytes: number;
  readonly at: number;
  /** Its request id on this connection, once sent (0 while it waits to be re-sent). */
  id: number;
  /** `unavailable` answers in a row, and the timer of the next try. */
  fails: number;
  retry?: unknown;
  readonly resolve: (p: Position) => void;
  readonly reject: (e: DuplexError) => void;
}

interface Sub {
  readonly topic: string;
  readonly from: From;
  readonly onMessage: (m: ClientMessageEvent) => void;
  readonly onResult: ((r: SubscribeResult) => void) | undefined;
  /** Where the stream continues after (the last delivered, or the server's start). */
  pos: Position | undefined;
  /** The subscribe request awaiting its answer; messages wait until it comes. */
  req: number | undefined;
  /** Whether a message was delivered: until then a subscription from `start` asks for `start` again. */
  got: boolean;
  /** `unavailable` answers in a row, and the timer of the next try. */
  fails: number;
  retry?: unknown;
}

const NOOP = (): void => {};

/** Runs a user callback; a throw is reported asynchronously and never breaks the client. */
function call<T>(f: ((v: T) => void) | undefined, v: T): void {
  try {
    f?.(v);
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}

function randomId(random: () => number): string {
  const c = (globalThis as any).crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  let id = "";
  while (id.length < 20) id += Math.floor(random() * 36).toString(36);
  return id;
}

function checkTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== "string" || topic === "" || topic.length > MAX_TOPIC) {
    throw new TypeError(`Invalid topic: expected a non-empty string of at most ${MAX_TOPIC} characters`);
  }
}

type TimerName = "conn" | "beat" | "age";

/** setTimeout's longest delay. */
const MAX_DELAY = 2 ** 31 - 1;

/**
 * A `duplex.v1` client: one WebSocket at a time, replaced when it fails,
 * with subscriptions and publishes that carry across.
 *
 * It starts connecting at once (in a microtask, so that listeners added
 * right after construction see the first event), and keeps connecting
 * until {@linkcode DuplexClient.close}, a close that `shouldRetry` refuses,
 * or `maxRetries` failures in a row.
 *
 * @example
 * ```ts
 * import { DuplexClient } from "@duplex/ws/client";
 * const client = new DuplexClient("wss://example.com/ws"); // on Node 20: { WebSocket } from "ws" as 2nd argument
 * client.subscribe("news", (m) => console.log(m.data));
 * await client.publish("news", "hello");
 * client.close();
 * ```
 */
export class DuplexClient {
  #s: Settings;
  #url: string | ((attempt: number) => string | URL | Promise<string | URL>);
  #status: Status = "connecting";
  #everOpen = false;
  #attempt = 0;
  #gen = 0;
  #ws: WebSocketLike | undefined;
  #open = false;
  #waiting = false;
  #offline: boolean;
  #ids = 0;
  #seq = 0;
  #id: string;
  #subs = new Map<string, Sub>();
  /** Unacked publishes, oldest first; the first `#sent` went out on this connection. */
  #queue: Pending[] = [];
  #sent = 0;
  #bytes = 0;
  #requests = new Map<number, Pending | Sub>();
  #timers: { [K in TimerName]?: unknown } = {};
  #ageFor: Pending | undefined;
  #seen = 0;
  #alive = true;
  #pinged = false;
  #listeners: { [K in keyof ClientEvents]: Set<(e: ClientEvents[K]) => void> } = {
    status: new Set(),
    subscribed: new Set(),
    error: new Set(),
  };
  #onOnline = (): void => {
    this.#offline = false;
    this.#wake();
  };
  #onOffline = (): void => {
    this.#offline = true;
    if (this.#waiting) this.#clear("conn");
  };
  #onVisible = (): void => {
    if (this.#s.browser?.document?.visibilityState === "visible") this.#wake();
  };

  /**
   * Makes a client and starts connecting.
   *
   * @param url The server's URL, or a function called for each attempt (with its number, 0 first) that returns one, possibly async (to fetch a fresh token).
   * @param options See {@linkcode ClientOptions}.
   * @throws {TypeError} A bad URL or option, or no WebSocket constructor.
   * @throws {RangeError} An option out of range.
   */
  constructor(url: string | URL | ((attempt: number) => string | URL | Promise<string | URL>), options?: ClientOptions) {
    if (typeof url !== "function") {
      if (typeof url !== "string" && !(url instanceof URL)) throw new TypeError("Invalid url: expected a string, a URL or a function");
      try {
        url = new URL(url, (globalThis as any).location?.href).href.replace(/^http/, "ws");
      } catch {
        throw new TypeError(`Invalid url: ${url}`);
      }
    }
    this.#url = url;
    this.#s = settings(options);
    this.#id = randomId(this.#s.random);
    const b = this.#s.browser;
    this.#offline = b?.navigator?.onLine === false;
    b?.addEventListener("online", this.#onOnline);
    b?.addEventListener("offline", this.#onOffline);
    b?.addEventListener("visibilitychange", this.#onVisible);
    queueMicrotask(() => this.#connect());
  }

  /** The state: `connecting` until first open, `open`, `reconnecting` after a loss, `closed` for good. */
  get status(): Status {
    return this.#status;
  }

  /**
   * Subscribes to a topic, for as long as the client lives: after each
   * reconnect the client resubscribes from the last message delivered
   * (from where the first answer said for `now`; from `start` again while
   * a `start` subscription has delivered nothing), so `onMessage` sees each
   * message once, in offset order. When the server no longer holds what
   * was missed, `onResult` (and the `subscribed` event) says `gap` and the
   * stream continues from what it holds. A refusal (an `error` event with
   * the topic) ends the subscription, except `unavailable`, which is tried
   * again after a backoff.
   *
   * @param topic The topic.
   * @param onMessage Called with each message.
   * @param options Where to start, and a callback for each (re)subscription's answer.
   * @returns The subscription.
   * @throws {TypeError} A bad topic or `from`, or a topic this client is already subscribed to.
   * @throws {DuplexError} `closed`: the client is closed.
   * @example
   * ```ts
   * import { DuplexClient, type Position } from "@duplex/ws/client";
   * declare const saved: Position | undefined;
   * const client = new DuplexClient("wss://example.com/ws");
   * const sub = client.subscribe("room:1", (m) => console.log(m.data), { from: saved ?? "now" });
   * ```
   */
  subscribe(topic: string, onMessage: (message: ClientMessageEvent) => void, options: SubscribeOptions = {}): Subscription {
    checkTopic(topic);
    if (typeof onMessage !== "function") throw new TypeError("Invalid onMessage: expected a function");
    const { from = "now", onResult } = options;
    if (
      from !== "now" && from !== "start" &&
      !(typeof from === "object" && from !== null && typeof from.epoch === "string" && from.epoch !== "" && Number.isSafeInteger(from.offset) && from.offset >= 0)
    ) {
      throw new TypeError('Invalid from: expected "now", "start" or { epoch, offset }');
    }
    if (onResult !== undefined && typeof onResult !== "function") throw new TypeError("Invalid onResult: expected a function");
    if (this.#status === "closed") throw new DuplexError("closed", "The client is closed", topic);
    if (this.#subs.has(topic)) throw new TypeError(`Already subscribed to ${topic}: unsubscribe first`);
    const sub: Sub = { topic, from, onMessage, onResult, pos: typeof from === "object" ? { epoch: from.epoch, offset: from.offset } : undefined, req: undefined, got: false, fails: 0 };
    this.#subs.set(topic, sub);
    this.#subscribe(sub);
    return {
      topic,
      get position() {
        return sub.pos;
      },
      unsubscribe: () => {
        if (this.#subs.get(topic) !== sub) return;
        this.#subs.delete(topic);
        this.#s.timers.clearTimeout(sub.retry);
        if (sub.req !== undefined) this.#requests.delete(sub.req);
        sub.req = undefined;
        this.#send({ type: "unsubscribe", id: ++this.#ids, topic });
      },
    };
  }

  /**
   * Publishes to a topic. The publish waits in the queue while the client
   * is not open, is sent in order, and is sent again with the same key
   * after a reconnect until the server acks it (the server stores it once).
   * A publish answered `unavailable` (the server's store failed: it may
   * have stored it) is sent again with the same key after a backoff,
   * keeping its place in the queue, until the queue's `maxAgeMs` from the
   * call; then it rejects with `unavailable`.
   *
   * @param topic The topic.
   * @param data Text or bytes (the bytes are copied).
   * @returns The stored message's position, once the server acks it.
   * @throws {TypeError} A bad topic or data (at once).
   * @example
   * ```ts
   * import { DuplexClient } from "@duplex/ws/client";
   * const client = new DuplexClient("wss://example.com/ws");
   * const { epoch, offset } = await client.publish("room:1", JSON.stringify({ text: "hi" }));
   * ```
   */
  publish(topic: string, data: string | Uint8Array): Promise<Position> {
    checkTopic(topic);
    if (typeof data !== "string" && !(data instanceof Uint8Array)) throw new TypeError("Invalid data: expected a string or a Uint8Array");
    if (this.#status === "closed") return Promise.reject(new DuplexError("closed", "The client is closed", topic));
    return new Promise((resolve, reject) => {
      const s = this.#s;
      const bytes = byteLength(data);
      const e: Pending = {
        key: `${this.#id}:${++this.#seq}`,
        topic,
        data: typeof data === "string" ? data : new Uint8Array(data), // a copy (Buffer#slice would not be)
        bytes,
        at: s.timers.now(),
        id: 0,
        fails: 0,
        resolve,
        reject,
      };
      this.#expire();
      const q = this.#queue;
      const full = (): boolean => q.length + 1 > s.maxMessages || this.#bytes + bytes > s.maxBytes;
      while (s.dropOldest && full() && q.length > this.#sent) this.#settle(q[this.#sent]!, new DuplexError("queue_full", "Dropped from a full queue", q[this.#sent]!.topic));
      if (full()) return reject(new DuplexError("queue_full", "The publish queue is full", topic));
      q.push(e);
      this.#bytes += bytes;
      this.#flush();
    });
  }

  /**
   * Listens to an event: `status` (see {@linkcode StatusEvent}),
   * `subscribed` (see {@linkcode SubscribeResult}) or `error` (a
   * {@linkcode DuplexError} not tied to a publish).
   *
   * @param event The event.
   * @param listener Called with each.
   * @returns A function that removes the listener.
   * @example
   * ```ts
   * import { DuplexClient } from "@duplex/ws/client";
   * const client = new DuplexClient("wss://example.com/ws");
   * const off = client.on("status", (e) => console.log(e.status));
   * off();
   * ```
   */
  on<K extends keyof ClientEvents>(event: K, listener: (e: ClientEvents[K]) => void): () => void {
    const set = this.#listeners[event] as Set<(e: ClientEvents[K]) => void> | undefined;
    if (!set || !Object.hasOwn(this.#listeners, event)) throw new TypeError(`Invalid event: ${String(event)}`);
    if (typeof listener !== "function") throw new TypeError("Invalid listener: expected a function");
    set.add(listener);
    return () => void set.delete(listener);
  }

  /**
   * Closes the client for good: no more reconnects, every unacked publish
   * rejects with `closed`, subscriptions end. Calling it again does nothing.
   *
   * @param code The close code sent to the server. Default 1000.
   * @param reason The close reason.
   * @example
   * ```ts
   * import { DuplexClient } from "@duplex/ws/client";
   * const client = new DuplexClient("wss://example.com/ws");
   * addEventListener("pagehide", () => client.close());
   * ```
   */
  close(code = 1000, reason = ""): void {
    if (this.#status === "closed") return;
    this.#drop(code, reason);
    this.#end(code, reason);
  }

  // ---- connection ----

  #emit<K extends keyof ClientEvents>(event: K, value: ClientEvents[K]): void {
    for (const f of [...this.#listeners[event]]) call(f as (v: ClientEvents[K]) => void, value);
  }

  #state(e: StatusEvent): void {
    this.#status = e.status;
    this.#emit("status", e);
  }

  #later(name: TimerName, ms: number, f: () => void): void {
    this.#clear(name);
    this.#timers[name] = this.#s.timers.setTimeout(() => {
      this.#timers[name] = undefined;
      f();
    }, Math.min(Math.max(0, ms), MAX_DELAY));
  }

  #clear(name: TimerName): void {
    const h = this.#timers[name];
    if (h !== undefined) this.#s.timers.clearTimeout(h);
    this.#timers[name] = undefined;
    if (name === "age") this.#ageFor = undefined;
  }

  /** Ends a wait early (online, page visible). */
  #wake(): void {
    if (!this.#waiting || this.#offline) return;
    this.#clear("conn");
    this.#connect();
  }

  async #connect(): Promise<void> {
    if (this.#status === "closed") return;
    const gen = ++this.#gen;
    const attempt = this.#attempt;
    const s = this.#s;
    this.#waiting = false;
    this.#state({ status: this.#everOpen ? "reconnecting" : "connecting", attempt });
    if (gen !== this.#gen) return;
    if (s.connectTimeoutMs !== Infinity) {
      this.#later("conn", s.connectTimeoutMs, () => {
        this.#emit("error", new DuplexError("timeout", `Not open within ${s.connectTimeoutMs} ms`));
        this.#lost(1006, "Connect timeout");
      });
    }
    let ws: WebSocketLike;
    try {
      const url = typeof this.#url === "function" ? await this.#url(attempt) : this.#url;
      const p = typeof s.protocols === "function" ? await s.protocols(attempt) : s.protocols ?? [];
      if (gen !== this.#gen) return;
      ws = new s.WebSocket(String(url), [PROTOCOL_V1, ...p]);
    } catch (e) {
      if (gen !== this.#gen) return;
      this.#emit("error", new DuplexError("unavailable", `Cannot connect: ${e instanceof Error ? e.message : String(e)}`));
      return this.#lost(1006, "Cannot connect");
    }
    this.#ws = ws;
    ws.onerror = NOOP;
    ws.onclose = (e) => this.#lost(e?.code ?? 1006, e?.reason ?? "");
    ws.onopen = () => this.#opened(ws);
    ws.onmessage = (e) => this.#frame(e?.data);
  }

  #opened(ws: WebSocketLike): void {
    if (ws.protocol !== PROTOCOL_V1) {
      this.#emit("error", new DuplexError("invalid", "The server did not choose duplex.v1"));
      return this.#lost(1002, "No duplex.v1", 1000);
    }
    this.#clear("conn");
    this.#open = this.#everOpen = true;
    this.#attempt = 0;
    this.#seen = this.#s.timers.now();
    this.#alive = true;
    this.#pinged = false;
    this.#state({ status: "open" });
    if (this.#ws !== ws) return;
    if (this.#s.heartbeat) this.#later("beat", this.#s.heartbeat.intervalMs, () => this.#heartbeat());
    for (const sub of this.#subs.values()) this.#subscribe(sub);
    this.#flush();
  }

  /** Detaches and closes the socket; the connection's state is reset. */
  #drop(code?: number, reason?: string): void {
    const ws = this.#ws;
    this.#ws = undefined;
    this.#open = false;
    this.#gen++;
    this.#clear("conn");
    this.#clear("beat");
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        // ws's terminate() drops a dead link at once, where close() would wait for the peer
        if (code === undefined && typeof (ws as any).terminate === "function") (ws as any).terminate();
        else ws.close(code, reason);
      } catch {
        try {
          ws.close(); // a code or reason the runtime refuses
        } catch {
          // already closed
        }
      }
    }
    this.#sent = 0;
    this.#requests.clear();
    for (const e of this.#queue) this.#s.timers.clearTimeout(e.retry); // all sent again on the next connection
    for (const sub of this.#subs.values()) {
      sub.req = undefined;
      this.#s.timers.clearTimeout(sub.retry);
    }
    this.#armAge();
  }

  /** The connection (or attempt) is gone: retry, or give up. */
  #lost(code: number, reason: string, sendCode?: number): void {
    if (this.#status === "closed") return;
    this.#drop(sendCode, reason);
    const s = this.#s;
    const next = this.#attempt + 1;
    if (next > s.maxRetries || !s.shouldRetry({ code, reason, attempt: next })) return this.#end(code, reason);
    this.#attempt = next;
    const delayMs = this.#backoff(next);
    this.#waiting = true;
    this.#state({ status: this.#everOpen ? "reconnecting" : "connecting", code, reason, attempt: next, delayMs });
    if (this.#waiting && !this.#offline) this.#later("conn", delayMs, () => this.#connect());
  }

  /** The wait before retry `n` (1 first): full jitter under an exponential bound. */
  #backoff(n: number): number {
    const s = this.#s;
    return Math.min(s.random() * Math.min(s.maxDelayMs, s.initialDelayMs * s.factor ** (n - 1)), MAX_DELAY);
  }

  #end(code: number, reason: string): void {
    this.#waiting = false;
    this.#clear("conn");
    this.#clear("age");
    const b = this.#s.browser;
    b?.removeEventListener("online", this.#onOnline);
    b?.removeEventListener("offline", this.#onOffline);
    b?.removeEventListener("visibilitychange", this.#onVisible);
    this.#status = "closed";
    const queue = this.#queue;
    this.#queue = [];
    this.#bytes = 0;
    for (const e of queue) {
      this.#s.timers.clearTimeout(e.retry);
      e.reject(new DuplexError("closed", `Closed before the ack: ${code} ${reason}`.trim(), e.topic));
    }
    this.#subs.clear();
    this.#emit("status", { status: "closed", code, reason });
  }

  #send(m: Parameters<typeof encode>[0]): void {
    if (!this.#open) return;
    try {
      this.#ws!.send(encode(m));
    } catch {
      // the close event follows
    }
  }

  #heartbeat(): void {
    const hb = this.#s.heartbeat as Required<HeartbeatOptions>;
    const now = this.#s.timers.now();
    if (this.#pinged && !this.#alive) {
      this.#emit("error", new DuplexError("timeout", `No answer within ${hb.timeoutMs} ms`));
      return this.#lost(1006, "Heartbeat timeout");
    }
    this.#pinged = false;
    const idle = now - this.#seen;
    if (idle < hb.intervalMs) return this.#later("beat", hb.intervalMs - idle, () => this.#heartbeat());
    this.#pinged = true;
    this.#alive = false;
    this.#send({ type: "ping", id: ++this.#ids });
    this.#later("beat", hb.timeoutMs, () => this.#heartbeat());
  }

  // ---- incoming ----

  #frame(data: unknown): void {
    this.#seen = this.#s.timers.now();
    this.#alive = true;
    const m = typeof data === "string" ? decodeServer(data) : "a binary frame";
    if (typeof m === "string") {
      this.#emit("error", new DuplexError("invalid", `Bad message from the server: ${m}`));
      return this.#lost(4400, "Bad message", 4400);
    }
    const r = "id" in m ? this.#requests.get(m.id) : undefined;
    switch (m.type) {
      case "message": {
        const sub = this.#subs.get(m.topic);
        const p = sub?.pos;
        if (!sub || sub.req !== undefined || !p) return;
        if (m.epoch === p.epoch && m.offset <= p.offset) return; // seen: a replay's overlap
        if (m.epoch !== p.epoch || m.offset !== p.offset + 1) return this.#subscribe(sub); // a hole: re-sync from the last
        sub.pos = { epoch: m.epoch, offset: m.offset };
        sub.got = true;
        return call(sub.onMessage, { topic: m.topic, data: m.data, epoch: m.epoch, offset: m.offset });
      }
      case "subscribed": {
        if (!r || !("onMessage" in r) || r.req !== m.id || this.#subs.get(r.topic) !== r) return;
        this.#requests.delete(m.id);
        r.req = undefined;
        r.fails = 0;
        const p = r.pos;
        r.pos = p && p.epoch === m.position.epoch && p.offset > m.position.offset ? p : m.position;
        const result: SubscribeResult = m.gap ? { topic: r.topic, result: m.result, position: m.position, gap: m.gap } : { topic: r.topic, result: m.result, position: m.position };
        call(r.onResult, result);
        return this.#emit("subscribed", result);
      }
      case "ack":
        if (r && "key" in r) this.#settle(r, { epoch: m.epoch, offset: m.offset });
        return;
      case "error": {
        if (!r) return;
        const error = new DuplexError(m.code, m.message, r.topic);
        if ("key" in r) {
          // the store failed, after storing it maybe: send it again later, with the same key
          if (m.code !== "unavailable" || this.#s.timers.now() - r.at >= this.#s.maxAgeMs) return this.#settle(r, error);
          this.#requests.delete(m.id);
          r.id = 0;
          r.retry = this.#s.timers.setTimeout(() => this.#resend(r, error), this.#backoff(++r.fails));
          return;
        }
        this.#requests.delete(m.id);
        if (this.#subs.get(r.topic) === r) {
          r.req = undefined;
          // the history is down for now: try again after a backoff; any other refusal ends it
          if (m.code === "unavailable") r.retry = this.#s.timers.setTimeout(() => this.#subscribe(r), this.#backoff(++r.fails));
          else this.#subs.delete(r.topic);
        }
        return this.#emit("error", error);
      }
      default: // pong, unsubscribed: only signs of life
    }
  }

  // ---- outgoing ----

  #subscribe(sub: Sub): void {
    if (!this.#open) return;
    if (sub.req !== undefined) this.#requests.delete(sub.req);
    const id = sub.req = ++this.#ids;
    this.#requests.set(id, sub);
    // from the last delivered; from `start` again while nothing was (a new epoch then is no gap)
    this.#send({ type: "subscribe", id, topic: sub.topic, from: sub.from === "start" && !sub.got ? "start" : sub.pos ?? sub.from });
  }

  /** Sends a publish answered `unavailable` again, on the same connection, or rejects it once too old. */
  #resend(e: Pending, error: DuplexError): void {
    if (e.id !== 0 || !this.#open || !this.#queue.includes(e)) return;
    if (this.#s.timers.now() - e.at >= this.#s.maxAgeMs) return this.#settle(e, error);
    const id = e.id = ++this.#ids;
    this.#requests.set(id, e);
    this.#send({ type: "publish", id, topic: e.topic, key: e.key, data: e.data });
  }

  /** Takes a publish out of the queue and settles its promise. */
  #settle(e: Pending, outcome: Position | DuplexError): void {
    const i = this.#queue.indexOf(e);
    if (i < 0) return;
    this.#queue.splice(i, 1);
    if (i < this.#sent) this.#sent--;
    this.#bytes -= e.bytes;
    this.#requests.delete(e.id);
    this.#s.timers.clearTimeout(e.retry);
    if (outcome instanceof DuplexError) e.reject(outcome);
    else e.resolve(outcome);
    this.#flush();
  }

  /** Rejects the unsent publishes older than `maxAgeMs`. */
  #expire(): void {
    const q = this.#queue;
    const limit = this.#s.timers.now() - this.#s.maxAgeMs;
    while (q.length > this.#sent && q[this.#sent]!.at <= limit) {
      const [e] = q.splice(this.#sent, 1);
      this.#bytes -= e!.bytes;
      e!.reject(new DuplexError("expired", `Not sent within ${this.#s.maxAgeMs} ms`, e!.topic));
    }
  }

  /** Times the oldest unsent publish's expiry. */
  #armAge(): void {
    const e = this.#queue[this.#sent];
    if (e === this.#ageFor) return;
    this.#clear("age");
    if (!e || this.#s.maxAgeMs === Infinity || this.#status === "closed") return;
    this.#later("age", e.at + this.#s.maxAgeMs - this.#s.timers.now(), () => {
      this.#ageFor = undefined;
      this.#expire();
      this.#armAge();
    });
    this.#ageFor = e;
  }

  /** Sends queued publishes, in order, up to `maxInFlight` unanswered. */
  #flush(): void {
    this.#expire();
    const q = this.#queue;
    while (this.#open && this.#sent < q.length && this.#sent < this.#s.maxInFlight) {
      const e = q[this.#sent++]!;
      const id = e.id = ++this.#ids;
      this.#requests.set(id, e);
      this.#send({ type: "publish", id, topic: e.topic, key: e.key, data: e.data });
    }
    this.#armAge();
  }
}
