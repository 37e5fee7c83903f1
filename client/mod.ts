/**
 * `@duplex/ws/client`: a WebSocket client for the `duplex.v1` protocol
 * (PROTOCOL.md) that reconnects on its own and loses nothing on the way,
 * with typed calls and events when given the server's contract.
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
 * With a server's contract (see `contract()` and `serveContract()` in
 * `@duplex/ws`), imported as a type only: typed calls with timeouts,
 * streams with backpressure, and events both ways.
 *
 * ```ts
 * import { z } from "zod";
 * import { contract } from "@duplex/ws";
 * import { DuplexClient } from "@duplex/ws/client";
 * // in an app: import type { chat } from "./chat.ts";
 * const chat = contract({
 *   server: { typing: z.object({ name: z.string() }) },
 *   calls: { history: { input: z.object({ room: z.string() }), output: z.array(z.string()), idempotent: true } },
 * });
 *
 * const client = new DuplexClient<typeof chat>("wss://example.com/chat", { idempotent: ["history"] });
 * const lines: string[] = await client.call("history", { room: "lobby" }, { timeoutMs: 5_000 });
 * client.onEvent("typing", ({ name }) => console.log(`${name} is typing`));
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

import { byteLength, decodeServer, encode, type From, MAX_NAME, MAX_TOPIC, PROTOCOL_V1, type Position } from "./_wire.ts";
import type { Gap } from "./_wire.ts";
import { type ClientOptions, type HeartbeatOptions, type Settings, settings, type WebSocketLike } from "./_options.ts";
import type {
  CallErrors,
  CallInput,
  CallName,
  CallOutput,
  ClientEventData,
  ClientEventName,
  ContractDefinition,
  IdempotentCallName,
  IsStream,
  ServerEventData,
  ServerEventName,
  StandardSchemaV1,
} from "./_contract.ts";

export type {
  CallDefinition,
  CallDefinitionOf,
  CallErrors,
  CallInput,
  CallName,
  CallOutput,
  ClientEventData,
  ClientEventName,
  Contract,
  ContractDefinition,
  ContractOf,
  EventSchemas,
  IdempotentCallName,
  InputOf,
  IsStream,
  OutputOf,
  ServerEventData,
  ServerEventName,
  StandardSchemaV1,
  StandardTypedV1,
} from "./_contract.ts";

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

/** The codes of a {@linkcode DuplexError}: the server's, then the client's own. */
export type DuplexErrorCode =
  | "forbidden"
  | "invalid"
  | "unavailable"
  | "too_large"
  | "not_found"
  | "failed"
  | "cancelled"
  | "busy"
  | "queue_full"
  | "expired"
  | "closed"
  | "timeout";

/** One problem of an `invalid` call input, as the validator told it. */
export interface Issue {
  /** What is wrong. */
  readonly message: string;
  /** Where: the keys and indexes from the input's root. */
  readonly path?: readonly (string | number)[];
}

/** What else a {@linkcode DuplexError} may carry. */
export interface DuplexErrorDetails {
  /** The call concerned. */
  readonly call?: string;
  /** For `failed`: the declared error's name (`"Error"` for an undeclared throw), which becomes the error's `name`. */
  readonly name?: string;
  /** For `failed`: the declared error's data. */
  readonly data?: unknown;
  /** For `invalid`: what the validator found wrong with the input. */
  readonly issues?: readonly Issue[];
}

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
  /**
   * What went wrong: the server's answers `forbidden`, `invalid`, `unavailable`, `too_large`,
   * `not_found` (no such call), `failed` (the call threw), `cancelled`, `busy` (too many calls in
   * flight: not run); the client's own `queue_full`, `expired`, `closed`, `timeout`.
   */
  readonly code: DuplexErrorCode;
  /** The topic concerned, if any. */
  readonly topic: string | undefined;
  /** The call concerned, if any. */
  readonly call: string | undefined;
  /** For `failed`: the data of the error the call threw (its `name` is the error's). */
  readonly data: unknown;
  /** For `invalid`: what is wrong with the call's input. */
  readonly issues: readonly Issue[] | undefined;
  /**
   * Makes an error.
   *
   * @param code The code.
   * @param message What happened.
   * @param topic The topic concerned.
   * @param details The call, and for `failed` the thrown error's name and data, for `invalid` the issues.
   */
  constructor(code: DuplexErrorCode, message: string, topic?: string, details: DuplexErrorDetails = {}) {
    super(message);
    this.name = details.name ?? "DuplexError";
    this.code = code;
    this.topic = topic;
    this.call = details.call;
    this.data = details.data;
    this.issues = details.issues;
  }
}

/**
 * The contract of a client made without one (`new DuplexClient(url)`):
 * any call, stream or event name, with data of type `any`.
 *
 * @example
 * ```ts
 * import { type AnyContract, DuplexClient } from "@duplex/ws/client";
 * const client: DuplexClient<AnyContract> = new DuplexClient("wss://example.com/ws");
 * const anything = await client.call("whatever", { x: 1 });
 * ```
 */
export interface AnyContract {
  /** Any client event. */
  readonly client: { readonly [name: string]: StandardSchemaV1<any, any> };
  /** Any server event. */
  readonly server: { readonly [name: string]: StandardSchemaV1<any, any> };
  /** Any call, idempotent as far as the types go (the `idempotent` option decides). */
  readonly calls: {
    readonly [name: string]: {
      readonly input: StandardSchemaV1<any, any>;
      readonly output: StandardSchemaV1<any, any>;
      readonly errors: { readonly [name: string]: StandardSchemaV1<any, any> };
      readonly idempotent: true;
    };
  };
}

/**
 * The names of a contract's calls that answer once (not streams).
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { contract } from "@duplex/ws";
 * import type { UnaryCallName } from "@duplex/ws/client";
 * const chat = contract({ calls: { history: { output: z.array(z.string()) }, tail: { output: z.string(), stream: true } } });
 * const name: UnaryCallName<typeof chat> = "history"; // not "tail"
 * ```
 */
export type UnaryCallName<C> = string extends CallName<C> ? string : { [N in CallName<C>]: IsStream<C, N> extends true ? never : N }[CallName<C>];

/**
 * The names of a contract's streaming calls.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { contract } from "@duplex/ws";
 * import type { StreamCallName } from "@duplex/ws/client";
 * const chat = contract({ calls: { history: { output: z.array(z.string()) }, tail: { output: z.string(), stream: true } } });
 * const name: StreamCallName<typeof chat> = "tail"; // not "history"
 * ```
 */
export type StreamCallName<C> = string extends CallName<C> ? string : { [N in CallName<C>]: IsStream<C, N> extends true ? N : never }[CallName<C>];


/**
 * How a call of a contract fails when its handler throws: a
 * {@linkcode DuplexError} with code `failed`, whose `name` and `data` are
 * one of the call's declared errors, or `"Error"` (without data) for an
 * undeclared throw. A union discriminated by `name`.
 *
 * @typeParam C The contract.
 * @typeParam N The call (default: any of them).
 * @example
 * ```ts
 * import { z } from "zod";
 * import { contract } from "@duplex/ws";
 * import { type CallFailure, DuplexClient, DuplexError } from "@duplex/ws/client";
 * const chat = contract({
 *   calls: { send: { input: z.object({ room: z.string(), text: z.string() }), errors: { TooFast: z.object({ retryInMs: z.number() }) } } },
 * });
 * const client = new DuplexClient<typeof chat>("wss://example.com/ws");
 * try {
 *   await client.call("send", { room: "lobby", text: "hi" });
 * } catch (e) {
 *   if (e instanceof DuplexError && e.code === "failed") {
 *     const failure = e as CallFailure<typeof chat, "send">;
 *     if (failure.name === "TooFast") console.log(`retry in ${failure.data.retryInMs} ms`);
 *   }
 * }
 * ```
 */
export type CallFailure<C, N extends CallName<C> = CallName<C>> = ({ [M in N]: CallErrors<C, M> }[N] | { readonly name: "Error"; readonly data: undefined }) extends infer E
  ? E extends { readonly name: infer K; readonly data: infer D } ? DuplexError & { readonly code: "failed"; readonly name: K; readonly data: D } : never
  : never;

/**
 * A stream's items, as an async iterator: `for await` it; `break` (or
 * `return()`) cancels the call on the server.
 *
 * @typeParam T An item's type.
 * @example
 * ```ts
 * import { type CallStream, DuplexClient } from "@duplex/ws/client";
 * const client = new DuplexClient("wss://example.com/ws");
 * const tail: CallStream<unknown> = client.stream("tail", { room: "lobby" });
 * const first = await tail.next();
 * await tail.return();
 * ```
 */
export interface CallStream<T> extends AsyncIterableIterator<T, undefined> {
  /** The next item, or the end; rejects with the call's {@linkcode DuplexError}. */
  next(): Promise<IteratorResult<T, undefined>>;
  /** Stops: cancels the call on the server (unless it has ended) and drops what is buffered. */
  return(): Promise<IteratorResult<T, undefined>>;
  /** The stream itself. */
  [Symbol.asyncIterator](): CallStream<T>;
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

/**
 * Options of {@linkcode DuplexClient.call}.
 *
 * @example
 * ```ts
 * import type { CallOptions } from "@duplex/ws/client";
 * const options: CallOptions = { timeoutMs: 2_000, signal: AbortSignal.timeout(5_000) };
 * ```
 */
export interface CallOptions {
  /** Rejects with `timeout` (and cancels the call on the server) after this long. Default the client's `callTimeoutMs` (10,000); `Infinity`: never. */
  readonly timeoutMs?: number;
  /** Aborting it rejects with `cancelled` and cancels the call on the server. */
  readonly signal?: AbortSignal;
}

/**
 * Options of {@linkcode DuplexClient.stream}.
 *
 * @example
 * ```ts
 * import type { StreamOptions } from "@duplex/ws/client";
 * const options: StreamOptions = { credit: 64, timeoutMs: 30_000 };
 * ```
 */
export interface StreamOptions extends CallOptions {
  /** The longest wait for the next item (or the end) while the consumer waits for one; then `timeout`. Default `Infinity`. */
  readonly timeoutMs?: number;
  /** Items the server may send ahead of the consumer; more are granted as it takes them. Default 16. */
  readonly credit?: number;
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
  /** Its request id on this connection, once sent. */
  id: number;
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

/** A call or a stream, from `call()`/`stream()` until it settles; unsent (id 0) while the client is not open. */
interface Call {
  readonly name: string;
  readonly input: unknown;
  /** Its idempotency key: only an idempotent call has one, and is sent again after a reconnect. */
  readonly idem: string | undefined;
  /** A stream's initial credit. */
  readonly credit: number | undefined;
  /** Its request id on this connection, once sent. */
  id: number;
  timer?: unknown;
  /** A stream's: takes each item. */
  readonly item: ((value: unknown) => void) | undefined;
  /** Settles it: with an error, or with the result. */
  readonly done: (error: DuplexError | undefined, value?: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly abort: () => void;
}

const NOOP = (): void => {};

/** A call's error, without server details. */
const failure = (code: DuplexErrorCode, message: string, call: string): DuplexError => new DuplexError(code, message, undefined, { call });

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

function checkName(name: unknown): asserts name is string {
  // a longer name would be a malformed message, which closes the connection
  if (typeof name !== "string" || name === "" || name.length > MAX_NAME) throw new TypeError(`Invalid name: expected a non-empty string of at most ${MAX_NAME} characters`);
}

/** Checks a call's name and options; returns its timeout. */
function checkCall(name: unknown, o: CallOptions, ms: unknown): number {
  checkName(name);
  if (typeof o !== "object" || o === null) throw new TypeError("Invalid options: expected an object");
  if (!(typeof ms === "number" && ms > 0)) throw new RangeError(`Invalid timeoutMs: expected a number > 0 or Infinity, got ${ms}`);
  if (o.signal !== undefined && typeof o.signal?.addEventListener !== "function") throw new TypeError("Invalid signal: expected an AbortSignal");
  return ms;
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
export class DuplexClient<C extends ContractDefinition = AnyContract> {
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
  #requests = new Map<number, Pending | Sub | Call>();
  /** Calls and streams not settled, in the order made: sent ones have an id. */
  #calls = new Set<Call>();
  #events = new Map<string, Set<(data: any) => void>>();
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
  constructor(
    url: string | URL | ((attempt: number) => string | URL | Promise<string | URL>),
    options?: ClientOptions & { readonly idempotent?: readonly IdempotentCallName<C>[] },
  ) {
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
   * Calls a procedure of the server's contract and waits for its result.
   * A call made while the client is not open waits for the connection
   * (its timeout runs meanwhile). If the link drops once the call is sent,
   * an idempotent call (see {@linkcode ClientOptions.idempotent}) is sent
   * again with the same key after the reconnect, and the server runs it
   * once; any other call rejects with `closed`, since it may have run.
   *
   * @param name The call's name.
   * @param input Its input (JSON).
   * @param options Its timeout and an `AbortSignal`.
   * @returns The call's output.
   * @throws {TypeError} A bad name or option (at once).
   * @throws {DuplexError} (the promise rejects) `timeout` or `cancelled` (the server is told to stop),
   * `closed`, or the server's answer: `invalid` (with `issues`), `not_found`, `failed` (with the
   * declared error's `name` and `data`), `cancelled`, `busy`.
   * @example
   * ```ts
   * import { DuplexClient, DuplexError } from "@duplex/ws/client";
   * const client = new DuplexClient("wss://example.com/ws");
   * try {
   *   const messages = await client.call("history", { room: "lobby" }, { timeoutMs: 2_000 });
   * } catch (e) {
   *   if (e instanceof DuplexError && e.code === "timeout") console.log("the server is slow");
   * }
   * ```
   */
  call<N extends CallName<C> & UnaryCallName<C>>(
    name: N,
    ...[input, options = {}]: undefined extends CallInput<C, N> ? [input?: CallInput<C, N>, options?: CallOptions] : [input: CallInput<C, N>, options?: CallOptions]
  ): Promise<CallOutput<C, N>> {
    const ms = checkCall(name, options, options?.timeoutMs ?? this.#s.callTimeoutMs);
    return new Promise((resolve, reject) => {
      const c = this.#call(name, input, options, undefined, undefined, (e, v) => e ? reject(e) : resolve(v as CallOutput<C, N>));
      if (c) this.#arm(c, ms);
    });
  }

  /**
   * Calls a streaming procedure: its items come as an async iterator.
   * Backpressure is by credit: the server sends at most `credit` items
   * ahead of the consumer, and more credit is granted only as the
   * consumer takes items. `break` (or `return()`) and the signal cancel the
   * call on the server. A stream is not sent again after a reconnect: when
   * the link drops it fails with `closed` (resume it with your own cursor).
   *
   * @param name The call's name.
   * @param input Its input (JSON).
   * @param options Credit, a wait timeout for each item, an `AbortSignal`.
   * @returns The items, in order; the iterator throws a {@linkcode DuplexError} as `call` rejects.
   * @throws {TypeError} A bad name or option (at once).
   * @example
   * ```ts
   * import { DuplexClient } from "@duplex/ws/client";
   * const client = new DuplexClient("wss://example.com/ws");
   * for await (const message of client.stream("tail", { room: "lobby" }, { credit: 32 })) {
   *   console.log(message);
   * }
   * ```
   */
  stream<N extends CallName<C> & StreamCallName<C>>(
    name: N,
    ...[input, options = {}]: undefined extends CallInput<C, N> ? [input?: CallInput<C, N>, options?: StreamOptions] : [input: CallInput<C, N>, options?: StreamOptions]
  ): CallStream<CallOutput<C, N>> {
    const ms = checkCall(name, options, options?.timeoutMs ?? Infinity);
    const credit = options.credit ?? 16;
    if (!Number.isSafeInteger(credit) || credit < 1) throw new RangeError(`Invalid credit: expected an integer >= 1, got ${credit}`);
    const buf: unknown[] = [];
    /** Consumers waiting for an item (one, under `for await`). */
    const waits: [(r: IteratorResult<any, undefined>) => void, (e: DuplexError) => void][] = [];
    /** Items the server may still send. */
    let out = credit;
    /** The end, once known; its error is thrown once. */
    let end: [DuplexError | undefined] | undefined;
    const pump = (): void => {
      for (let w; (w = waits[0]) && (buf.length || end);) {
        waits.shift();
        if (buf.length) {
          this.#s.timers.clearTimeout(c?.timer);
          w[0]({ value: buf.shift(), done: false });
          const n = credit - buf.length - out; // grant in batches of half the window at least
          if (c?.id && n * 2 >= credit) out += n, this.#send({ type: "credit", id: c.id, n });
        } else if (end![0]) w[1](end![0]), end![0] = undefined;
        else w[0]({ value: undefined, done: true });
      }
    };
    const c = this.#call(name, input, options, credit, (v) => void (out--, buf.push(v), pump()), (e) => void (end ??= [e], pump()));
    const it: CallStream<any> = {
      next: () =>
        new Promise((resolve, reject) => {
          waits.push([resolve, reject]);
          pump();
          if (waits.length && c) this.#arm(c, ms);
        }),
      return: () => {
        buf.length = 0;
        if (!end) end = [undefined], this.#finish(c!, failure("cancelled", "Stopped by the consumer", name));
        pump();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /**
   * Sends an event of the contract to the server, fire and forget. While
   * the client is not open the event is dropped (and `false` returned):
   * events are for what is only worth saying now (typing, presence);
   * use {@linkcode DuplexClient.call} or {@linkcode DuplexClient.publish}
   * for what must arrive. The server closes the connection with 4422 when
   * it does not validate, and the client does not reconnect after that.
   *
   * @param name The event's name.
   * @param data Its data (JSON).
   * @returns Whether it was sent (the client was open).
   * @throws {TypeError} A bad name, or data that JSON cannot encode.
   * @example
   * ```ts
   * import { DuplexClient } from "@duplex/ws/client";
   * const client = new DuplexClient("wss://example.com/ws");
   * client.emit("typing", { room: "lobby" });
   * ```
   */
  emit<N extends ClientEventName<C>>(name: N, ...[data]: undefined extends ClientEventData<C, N> ? [data?: ClientEventData<C, N>] : [data: ClientEventData<C, N>]): boolean {
    checkName(name);
    if (!this.#open) return false;
    this.#send({ type: "emit", name, data });
    return true;
  }

  /**
   * Listens to an event of the contract that the server sends.
   *
   * @param name The event's name.
   * @param listener Called with each event's data.
   * @returns A function that removes the listener.
   * @throws {TypeError} A bad name or listener.
   * @example
   * ```ts
   * import { DuplexClient } from "@duplex/ws/client";
   * const client = new DuplexClient("wss://example.com/ws");
   * const off = client.onEvent("typing", (data) => console.log(data));
   * off();
   * ```
   */
  onEvent<N extends ServerEventName<C>>(name: N, listener: (data: ServerEventData<C, N>) => void): () => void {
    checkName(name);
    if (typeof listener !== "function") throw new TypeError("Invalid listener: expected a function");
    const set = this.#events.get(name) ?? new Set();
    this.#events.set(name, set);
    set.add(listener);
    return () => void set.delete(listener);
  }

  /**
   * Whether an error is a call's declared error of that name (a
   * {@linkcode DuplexError} with code `failed`): then its `data` has the
   * type the contract declares. `"Error"` is an undeclared throw.
   *
   * @param error What a call rejected with.
   * @param name The declared error's name.
   * @returns Whether it is that error.
   * @example
   * ```ts
   * import { z } from "zod";
   * import { contract } from "@duplex/ws";
   * import { DuplexClient } from "@duplex/ws/client";
   * const chat = contract({
   *   calls: { send: { input: z.object({ room: z.string(), text: z.string() }), errors: { TooFast: z.object({ retryInMs: z.number() }) } } },
   * });
   * const client = new DuplexClient<typeof chat>("wss://example.com/ws");
   * try {
   *   await client.call("send", { room: "lobby", text: "hi" });
   * } catch (e) {
   *   if (client.isCallError(e, "TooFast")) setTimeout(() => {}, e.data.retryInMs);
   * }
   * ```
   */
  isCallError<K extends CallFailure<C>["name"]>(
    error: unknown,
    name: K,
  ): error is CallFailure<C> extends infer F ? F extends { readonly name: infer X } ? K extends X ? F & { readonly name: K } : never : never : never {
    return error instanceof DuplexError && error.code === "failed" && error.name === name;
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

  // ---- calls ----

  /** Starts a call (or a stream, with `item`); settles it at once when the client is closed or the signal aborted. */
  #call(name: string, input: unknown, o: CallOptions, credit: number | undefined, item: Call["item"], done: Call["done"]): Call | undefined {
    if (this.#status === "closed" || o.signal?.aborted) {
      return void done(failure(o.signal?.aborted ? "cancelled" : "closed", "The client is closed, or the signal aborted", name));
    }
    const c: Call = {
      name,
      input,
      idem: item || !this.#s.idempotent.has(name) ? undefined : `${this.#id}:${++this.#seq}`,
      credit,
      id: 0,
      item,
      done,
      signal: o.signal,
      abort: () => this.#finish(c, failure("cancelled", "Aborted", name)),
    };
    o.signal?.addEventListener("abort", c.abort);
    this.#calls.add(c);
    this.#sendCall(c);
    return c;
  }

  #sendCall(c: Call): void {
    if (!this.#open || c.id) return;
    const id = ++this.#ids;
    try {
      this.#send({ type: "call", id, name: c.name, input: c.input, key: c.idem, credit: c.credit });
    } catch (e) {
      return this.#finish(c, failure("invalid", `Cannot encode the input: ${e}`, c.name));
    }
    c.id = id;
    this.#requests.set(id, c);
  }

  /** Times a call out after `ms`. */
  #arm(c: Call, ms: number): void {
    this.#s.timers.clearTimeout(c.timer);
    if (ms === Infinity || !this.#calls.has(c)) return;
    c.timer = this.#s.timers.setTimeout(() => this.#finish(c, failure("timeout", `No answer within ${ms} ms`, c.name)), Math.min(ms, MAX_DELAY));
  }

  /** Settles a call; one the server still runs (timed out, aborted) is cancelled there. */
  #finish(c: Call, error?: DuplexError, value?: unknown): void {
    if (!this.#calls.delete(c)) return;
    this.#s.timers.clearTimeout(c.timer);
    c.signal?.removeEventListener("abort", c.abort);
    if (c.id && this.#requests.get(c.id) === c) {
      this.#requests.delete(c.id);
      this.#send({ type: "cancel", id: c.id });
    }
    c.done(error, value);
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
    for (const c of this.#calls) this.#sendCall(c);
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
    for (const sub of this.#subs.values()) {
      sub.req = undefined;
      this.#s.timers.clearTimeout(sub.retry);
    }
    for (const c of this.#calls) {
      if (!c.id) continue;
      c.id = 0;
      // an idempotent call goes again with its key; any other may have run
      if (c.idem === undefined) this.#finish(c, failure("closed", "Connection lost during the call", c.name));
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
    for (const c of this.#calls) this.#finish(c, failure("closed", `Closed before the answer: ${code} ${reason}`.trim(), c.name));
    const queue = this.#queue;
    this.#queue = [];
    this.#bytes = 0;
    for (const e of queue) e.reject(new DuplexError("closed", `Closed before the ack: ${code} ${reason}`.trim(), e.topic));
    this.#subs.clear();
    this.#emit("status", { status: "closed", code, reason });
  }

  /** Sends a message while open; throws only when `encode` does (a call's input or an event's data). */
  #send(m: Parameters<typeof encode>[0]): void {
    if (!this.#open) return;
    const text = encode(m);
    try {
      this.#ws!.send(text);
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
      case "result":
        if (r && "done" in r) this.#requests.delete(m.id), this.#finish(r, undefined, m.value);
        return;
      case "item":
        if (r && "done" in r) call(r.item, m.value);
        return;
      case "event":
        for (const f of [...this.#events.get(m.name) ?? []]) call(f, m.data);
        return;
      case "error": {
        if (r && "done" in r) {
          this.#requests.delete(m.id);
          return this.#finish(r, new DuplexError(m.code, m.message, undefined, { call: r.name, ...m.error, issues: m.issues }));
        }
        if (!r) return;
        const error = new DuplexError(m.code, m.message, r.topic);
        if ("key" in r) return this.#settle(r, error);
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

  /** Takes a publish out of the queue and settles its promise. */
  #settle(e: Pending, outcome: Position | DuplexError): void {
    const i = this.#queue.indexOf(e);
    if (i < 0) return;
    this.#queue.splice(i, 1);
    if (i < this.#sent) this.#sent--;
    this.#bytes -= e.bytes;
    this.#requests.delete(e.id);
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
