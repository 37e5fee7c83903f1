/**
 * The client's options: their types, their defaults, and one check of every
 * field that turns them into the settings the client runs on.
 *
 * @module
 */

/**
 * The part of a WebSocket the client uses: the browser's, Deno's, Bun's and `ws`'s all fit.
 *
 * @example
 * ```ts
 * import { DuplexClient, type WebSocketConstructor } from "@duplex/ws/client";
 * const WS: WebSocketConstructor = WebSocket;
 * const client = new DuplexClient("wss://example.com/ws", { WebSocket: WS });
 * ```
 */
export interface WebSocketLike {
  /** The subprotocol the server chose. */
  readonly protocol: string;
  /** Called once the connection is open. */
  onopen: ((event: any) => void) | null;
  /** Called with each message; `event.data` is a string for text frames. */
  onmessage: ((event: any) => void) | null;
  /** Called once the connection has closed, with `event.code` and `event.reason`. */
  onclose: ((event: any) => void) | null;
  /** Called on an error (a close follows). */
  onerror: ((event: any) => void) | null;
  /** Sends a text frame. */
  send(data: string): void;
  /** Starts the closing handshake (or abandons a connection being opened). */
  close(code?: number, reason?: string): void;
}

/**
 * A WebSocket constructor: `globalThis.WebSocket`, or `ws`'s `WebSocket` on Node 20.
 *
 * @example
 * ```ts
 * import { WebSocket } from "ws";
 * import type { WebSocketConstructor } from "@duplex/ws/client";
 * const WS: WebSocketConstructor = WebSocket;
 * ```
 */
export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike;

/**
 * The clock and timers the client runs on; tests pass fake ones.
 *
 * @example
 * ```ts
 * import type { Timers } from "@duplex/ws/client";
 * let now = 0;
 * const timers: Timers = { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (h) => clearTimeout(h as number), now: () => now++ };
 * ```
 */
export interface Timers {
  /** Calls `fn` after `ms` milliseconds; returns a handle for {@linkcode Timers.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer (a handle of a timer that has run is accepted and ignored). */
  clearTimeout(handle: unknown): void;
  /** The current time in milliseconds. */
  now(): number;
}

/**
 * The browser's `window` as far as the client needs it: its events, and where it reads online and visibility state.
 *
 * @example
 * ```ts
 * import { DuplexClient } from "@duplex/ws/client";
 * const client = new DuplexClient("wss://example.com/ws", { browser: false }); // ignore online/offline
 * ```
 */
export interface BrowserLike {
  /** Listens to `online`, `offline` and `visibilitychange`. */
  addEventListener(type: string, listener: () => void): void;
  /** Stops listening (at `close()`). */
  removeEventListener(type: string, listener: () => void): void;
  /** `navigator.onLine === false` means offline. */
  readonly navigator?: { readonly onLine?: boolean };
  /** `document.visibilityState === "visible"` means the page is seen. */
  readonly document?: { readonly visibilityState?: string };
}

/**
 * How a connection ended, given to {@linkcode ClientOptions.shouldRetry}.
 *
 * @example
 * ```ts
 * import { type CloseInfo, defaultShouldRetry } from "@duplex/ws/client";
 * const shouldRetry = (c: CloseInfo) => c.code !== 4401 && defaultShouldRetry(c);
 * ```
 */
export interface CloseInfo {
  /** The close code (1006 when the connection failed or timed out without one). */
  readonly code: number;
  /** The close reason, or what the client saw (`"Connect timeout"`, `"Heartbeat timeout"`). */
  readonly reason: string;
  /** The attempt a retry would be: 1 for the first retry after a loss. */
  readonly attempt: number;
}

/**
 * Reconnection timing: exponential backoff with full jitter.
 *
 * @example
 * ```ts
 * import type { ReconnectOptions } from "@duplex/ws/client";
 * const reconnect: ReconnectOptions = { initialDelayMs: 500, maxDelayMs: 30_000, maxRetries: 20 };
 * ```
 */
export interface ReconnectOptions {
  /** The first retry waits up to this long. Default 250. */
  readonly initialDelayMs?: number;
  /** No wait is longer. Default 10,000. */
  readonly maxDelayMs?: number;
  /** Each retry's bound is this many times the last one's. Default 2. */
  readonly factor?: number;
  /** Retries in a row before giving up (status `closed`). Default `Infinity`. */
  readonly maxRetries?: number;
}

/**
 * The application-level heartbeat (a browser cannot see WebSocket pings).
 *
 * @example
 * ```ts
 * import type { HeartbeatOptions } from "@duplex/ws/client";
 * const heartbeat: HeartbeatOptions = { intervalMs: 10_000, timeoutMs: 5_000 };
 * ```
 */
export interface HeartbeatOptions {
  /** After this long without a frame from the server, the client sends a `ping`. Default 20,000. */
  readonly intervalMs?: number;
  /** A link that then stays silent this long is dead: closed and replaced. Default 10,000. */
  readonly timeoutMs?: number;
}

/**
 * Bounds of the queue of publishes not yet acked.
 *
 * @example
 * ```ts
 * import type { QueueOptions } from "@duplex/ws/client";
 * const queue: QueueOptions = { maxMessages: 100, maxAgeMs: 30_000, whenFull: "drop-oldest" };
 * ```
 */
export interface QueueOptions {
  /** Publishes held at most. Default 1,000. */
  readonly maxMessages?: number;
  /** Bytes of data held at most (UTF-8 for text). Default 1 MiB. */
  readonly maxBytes?: number;
  /** A publish not sent within this long rejects with `expired`. Default 60,000. */
  readonly maxAgeMs?: number;
  /** When full: `reject` the new publish (default) or `drop-oldest` (unsent) ones; either rejects with `queue_full`. */
  readonly whenFull?: "reject" | "drop-oldest";
}

/**
 * Options of {@linkcode DuplexClient}; every one is checked (`TypeError`, `RangeError`).
 *
 * @example
 * ```ts
 * import { DuplexClient } from "@duplex/ws/client";
 * const client = new DuplexClient("wss://example.com/ws", {
 *   connectTimeoutMs: 5_000,
 *   protocols: async () => [`token.${await (await fetch("/token")).text()}`],
 *   queue: { maxMessages: 100 },
 * });
 * ```
 */
export interface ClientOptions {
  /** The WebSocket constructor. Default `globalThis.WebSocket`; Node 20 has none: pass `ws`'s. */
  readonly WebSocket?: WebSocketConstructor;
  /** Subprotocols offered after `duplex.v1`; a function is called for each attempt (may be async). */
  readonly protocols?: readonly string[] | ((attempt: number) => readonly string[] | Promise<readonly string[]>);
  /** Backoff between attempts. */
  readonly reconnect?: ReconnectOptions;
  /** An attempt not open within this long is abandoned (and counts as failed). Default 10,000. */
  readonly connectTimeoutMs?: number;
  /**
   * Whether to retry after a close. Default: not after 1000 (from the server), 1002, 1003, 1007,
   * 1008, 1009, 1010 and 4400–4499 except 4429 (too many requests: later, then); every other code is
   * retried.
   */
  readonly shouldRetry?: (close: CloseInfo) => boolean;
  /** The heartbeat, or `false` for none. */
  readonly heartbeat?: HeartbeatOptions | false;
  /** The publish queue's bounds. */
  readonly queue?: QueueOptions;
  /** Publishes sent and not yet answered, at most. Default 256. */
  readonly maxInFlight?: number;
  /** A call not answered within this long rejects with `timeout` (and is cancelled); a call's own `timeoutMs` wins. Default 10,000; `Infinity`: none. */
  readonly callTimeoutMs?: number;
  /**
   * The calls that are safe to run twice (declared `idempotent: true` in the contract): after a
   * reconnect they are sent again with the same key, which the server deduplicates. Any other call
   * in flight when the link drops rejects with `closed` (it may have run). The contract is only
   * imported as a type, so the client cannot read this from it.
   */
  readonly idempotent?: readonly string[];
  /** Timers and clock (tests). Default `globalThis.setTimeout`, `clearTimeout` and `Date.now`. */
  readonly timers?: Timers;
  /** Random numbers in [0, 1) for the jitter (tests). Default `Math.random`. */
  readonly random?: () => number;
  /** Where `online`, `offline` and `visibilitychange` come from. Default `globalThis` where it has `addEventListener`; `false`: none. */
  readonly browser?: BrowserLike | false;
}

/**
 * The default retry decision: see {@linkcode ClientOptions.shouldRetry}.
 *
 * @example
 * ```ts
 * import { defaultShouldRetry } from "@duplex/ws/client";
 * defaultShouldRetry({ code: 1006, reason: "", attempt: 1 }); // true
 * defaultShouldRetry({ code: 4403, reason: "", attempt: 1 }); // false
 * ```
 */
export function defaultShouldRetry(close: CloseInfo): boolean {
  const c = close.code;
  return !(c === 1000 || c === 1002 || c === 1003 || (c >= 1007 && c <= 1010) || (c >= 4400 && c <= 4499 && c !== 4429));
}

/** Settings after checking. */
export interface Settings {
  WebSocket: WebSocketConstructor;
  protocols: ClientOptions["protocols"];
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
  maxRetries: number;
  connectTimeoutMs: number;
  shouldRetry: (close: CloseInfo) => boolean;
  heartbeat: Required<HeartbeatOptions> | false;
  maxMessages: number;
  maxBytes: number;
  maxAgeMs: number;
  dropOldest: boolean;
  maxInFlight: number;
  callTimeoutMs: number;
  idempotent: ReadonlySet<string>;
  timers: Timers;
  random: () => number;
  browser: BrowserLike | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;

function object(v: unknown, name: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (!isObject(v)) throw new TypeError(`Invalid ${name}: expected an object`);
  return v;
}

function fn<T>(v: unknown, name: string, fallback: T): T {
  if (v === undefined) return fallback;
  if (typeof v !== "function") throw new TypeError(`Invalid ${name}: expected a function`);
  return v as T;
}

/** A number ≥ min (> min when `above`), an integer when `int`; `Infinity` when `inf`. */
function num(v: unknown, name: string, fallback: number, min: number, flags = ""): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || Number.isNaN(v)) throw new TypeError(`Invalid ${name}: expected a number`);
  const ok = v === Infinity
    ? flags.includes("inf")
    : Number.isFinite(v) && (flags.includes(">") ? v > min : v >= min) && (!flags.includes("int") || Number.isInteger(v));
  if (!ok) {
    throw new RangeError(
      `Invalid ${name}: expected ${flags.includes("int") ? "an integer" : "a number"} ${flags.includes(">") ? ">" : ">="} ${min}${
        flags.includes("inf") ? " or Infinity" : ""
      }, got ${v}`,
    );
  }
  return v;
}

/**
 * Checks options and fills in defaults.
 *
 * @param options The options given.
 * @returns The settings.
 * @throws {TypeError} A field of the wrong type, or no WebSocket anywhere.
 * @throws {RangeError} A number out of range.
 */
export function settings(options: ClientOptions | undefined): Settings {
  const o = object(options, "options");
  const WS = fn<WebSocketConstructor | undefined>(o.WebSocket, "options.WebSocket", (globalThis as any).WebSocket);
  if (typeof WS !== "function") {
    throw new TypeError("No WebSocket: pass options.WebSocket (on Node 20, the ws package's WebSocket)");
  }
  const p = o.protocols;
  if (p !== undefined && typeof p !== "function" && !(Array.isArray(p) && p.every((x) => typeof x === "string" && x !== ""))) {
    throw new TypeError("Invalid options.protocols: expected an array of non-empty strings or a function");
  }
  const r = object(o.reconnect, "options.reconnect");
  const q = object(o.queue, "options.queue");
  const h = o.heartbeat === false ? false : object(o.heartbeat, "options.heartbeat");
  if (q.whenFull !== undefined && q.whenFull !== "reject" && q.whenFull !== "drop-oldest") {
    throw new TypeError(`Invalid options.queue.whenFull: expected "reject" or "drop-oldest", got ${String(q.whenFull)}`);
  }
  const t = o.timers;
  if (t !== undefined && !(isObject(t) && ["setTimeout", "clearTimeout", "now"].every((k) => typeof t[k] === "function"))) {
    throw new TypeError("Invalid options.timers: expected setTimeout, clearTimeout and now functions");
  }
  const b = o.browser;
  if (b !== undefined && b !== false && !(isObject(b) && typeof b.addEventListener === "function" && typeof b.removeEventListener === "function")) {
    throw new TypeError("Invalid options.browser: expected false or an object with addEventListener and removeEventListener");
  }
  const i = o.idempotent;
  if (i !== undefined && !(Array.isArray(i) && i.every((x) => typeof x === "string"))) {
    throw new TypeError("Invalid options.idempotent: expected an array of call names");
  }
  const g = globalThis as any;
  return {
    WebSocket: WS,
    protocols: p as ClientOptions["protocols"],
    initialDelayMs: num(r.initialDelayMs, "options.reconnect.initialDelayMs", 250, 0),
    maxDelayMs: num(r.maxDelayMs, "options.reconnect.maxDelayMs", 10_000, 0),
    factor: num(r.factor, "options.reconnect.factor", 2, 1),
    maxRetries: num(r.maxRetries, "options.reconnect.maxRetries", Infinity, 0, "int inf"),
    connectTimeoutMs: num(o.connectTimeoutMs, "options.connectTimeoutMs", 10_000, 0, "> inf"),
    shouldRetry: fn(o.shouldRetry, "options.shouldRetry", defaultShouldRetry),
    heartbeat: h && {
      intervalMs: num(h.intervalMs, "options.heartbeat.intervalMs", 20_000, 0, ">"),
      timeoutMs: num(h.timeoutMs, "options.heartbeat.timeoutMs", 10_000, 0, ">"),
    },
    maxMessages: num(q.maxMessages, "options.queue.maxMessages", 1000, 0, "int inf"),
    maxBytes: num(q.maxBytes, "options.queue.maxBytes", 1 << 20, 0, "inf"),
    maxAgeMs: num(q.maxAgeMs, "options.queue.maxAgeMs", 60_000, 0, "> inf"),
    dropOldest: q.whenFull === "drop-oldest",
    maxInFlight: num(o.maxInFlight, "options.maxInFlight", 256, 1, "int"),
    callTimeoutMs: num(o.callTimeoutMs, "options.callTimeoutMs", 10_000, 0, "> inf"),
    idempotent: new Set(i as string[] | undefined),
    timers: (t as Timers | undefined) ?? { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (x) => clearTimeout(x as any), now: Date.now },
    random: fn(o.random, "options.random", Math.random),
    browser: b === false ? undefined : (b as BrowserLike | undefined) ?? (typeof g.addEventListener === "function" ? g : undefined),
  };
}
