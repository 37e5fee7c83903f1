// Helpers shared by the plugin tests: a fake clock, a fake transport, a
// request builder, and `connect()`, which runs an App (any Handler) on the
// real Pump without sockets and decodes what it writes.
import { setImmediate } from "node:timers";
import type { Received } from "../../core/receiver.ts";
import type { Clock, ConnectionOptions, Handler } from "../../plugins/hooks.ts";
import { Pump, type Transport } from "../../runtimes/_pump.ts";
import { ConnectionSet } from "../../runtimes/_registry.ts";
import { resolveConnectionOptions } from "../../runtimes/_options.ts";
import { bytes, cat, closeBody, decodeServerFrames, frame } from "../core/_util.ts";

export { bytes, cat, closeBody, frame };

// ---------------------------------------------------------------- clock

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly ms: number;
  readonly fn: () => void;
}

/** A timer handle of the fake clock (an object, so it cannot be confused with a real one). */
export interface FakeTimerHandle {
  readonly fakeTimer: number;
}

/**
 * A {@linkcode Clock} that only moves when told to. `advance(ms)` fires every
 * timer that falls due, in order of due time (then of creation), including
 * timers that callbacks schedule while it runs.
 */
export class FakeClock implements Clock {
  #now = 0;
  #lastId = 0;
  readonly #timers = new Map<number, Timer>();
  /** Every delay ever passed to `setTimeout`, in order. */
  readonly scheduled: number[] = [];

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): FakeTimerHandle {
    if (typeof fn !== "function") throw new TypeError("FakeClock.setTimeout: fn must be a function");
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const id = ++this.#lastId;
    this.#timers.set(id, { id, at: this.#now + delay, ms: delay, fn });
    this.scheduled.push(delay);
    return { fakeTimer: id };
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle === "object" && handle !== null && "fakeTimer" in handle) {
      this.#timers.delete((handle as FakeTimerHandle).fakeTimer);
    }
  }

  /** Number of timers scheduled and neither fired nor cleared. */
  get pending(): number {
    return this.#timers.size;
  }

  /** The delays of the pending timers, soonest first. */
  get pendingDelays(): number[] {
    return [...this.#timers.values()].sort(byDue).map((t) => t.ms);
  }

  /** Moves time forward by `ms`, firing due timers synchronously; returns how many fired. */
  advance(ms: number): number {
    const target = this.#now + ms;
    let fired = 0;
    for (let timer = this.#due(target); timer !== undefined; timer = this.#due(target)) {
      this.#timers.delete(timer.id);
      this.#now = timer.at;
      fired++;
      timer.fn();
    }
    this.#now = target;
    return fired;
  }

  /**
   * Like `advance`, but lets promises and queued flushes run after each
   * timer (and at the end), as a real event loop would.
   */
  async advanceAsync(ms: number): Promise<number> {
    const target = this.#now + ms;
    let fired = 0;
    for (let timer = this.#due(target); timer !== undefined; timer = this.#due(target)) {
      this.#timers.delete(timer.id);
      this.#now = timer.at;
      fired++;
      timer.fn();
      await flush();
    }
    this.#now = target;
    await flush();
    return fired;
  }

  #due(target: number): Timer | undefined {
    let best: Timer | undefined;
    for (const timer of this.#timers.values()) {
      if (timer.at > target) continue;
      if (best === undefined || byDue(timer, best) < 0) best = timer;
    }
    return best;
  }
}

function byDue(a: Timer, b: Timer): number {
  return a.at - b.at || a.id - b.id;
}

/** Lets queued microtasks and a few event-loop turns run (no timers involved). */
export async function flush(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

// ---------------------------------------------------------------- transport

/** A socket that records what the pump does to it. */
export class FakeTransport implements Transport {
  readonly writes: Uint8Array[][] = [];
  /** What `write` answers (false: over the high-water mark). */
  accepting = true;
  buffered = 0;
  paused = false;
  ended = false;
  destroyed = false;
  /** How many writes there were when `end()` / `destroy()` were first called. */
  writesAtEnd: number | undefined;
  writesAtDestroy: number | undefined;
  readonly remoteAddress: string;

  constructor(remoteAddress = "192.0.2.1") {
    this.remoteAddress = remoteAddress;
  }

  write(chunks: Uint8Array[]): boolean {
    this.writes.push(chunks.map((c) => c.slice()));
    return this.accepting;
  }
  get bufferedAmount(): number {
    return this.buffered;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  end(): void {
    if (!this.ended) this.writesAtEnd = this.writes.length;
    this.ended = true;
  }
  destroy(): void {
    if (!this.destroyed) this.writesAtDestroy = this.writes.length;
    this.destroyed = true;
  }
  /** Everything written so far, as one byte array. */
  output(): Uint8Array {
    return cat(...this.writes.flat());
  }
}

// ---------------------------------------------------------------- requests

/** What a test client puts in its opening handshake. */
export interface RequestSpec {
  /** The request target, path and query. Default `/`. */
  path?: string;
  /** Default `example.com`; `null` leaves the header out. */
  host?: string | null;
  /** `Sec-WebSocket-Protocol` offers, joined with `, `. */
  protocols?: readonly string[];
  /** `Authorization` header. */
  authorization?: string;
  /** `Cookie` header. */
  cookie?: string;
  /** `Origin` header. */
  origin?: string;
  /** Any further header lines. */
  headers?: Record<string, string> | readonly [string, string][];
}

/** Builds a valid WebSocket upgrade request with the given parts. */
export function buildRequest(spec: RequestSpec = {}): string {
  const lines = [`GET ${spec.path ?? "/"} HTTP/1.1`];
  const host = spec.host === undefined ? "example.com" : spec.host;
  if (host !== null) lines.push(`Host: ${host}`);
  lines.push(
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
  );
  if (spec.protocols !== undefined) lines.push(`Sec-WebSocket-Protocol: ${spec.protocols.join(", ")}`);
  if (spec.authorization !== undefined) lines.push(`Authorization: ${spec.authorization}`);
  if (spec.cookie !== undefined) lines.push(`Cookie: ${spec.cookie}`);
  if (spec.origin !== undefined) lines.push(`Origin: ${spec.origin}`);
  const extra = spec.headers === undefined ? [] : Array.isArray(spec.headers) ? spec.headers : Object.entries(spec.headers);
  for (const [name, value] of extra as [string, string][]) lines.push(`${name}: ${value}`);
  return lines.join("\r\n") + "\r\n\r\n";
}

// ---------------------------------------------------------------- responses

/** The HTTP answer to the opening handshake, parsed. */
export interface HttpAnswer {
  status: number;
  statusLine: string;
  /** Header fields in order, names lower-cased. */
  headerList: [string, string][];
  /** The body (after the blank line); `""` for a 101. */
  body: string;
  /** The first value of a header, or `undefined`. */
  header(name: string): string | undefined;
  /** Every value of a header, in order. */
  headers(name: string): string[];
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();

function parseAnswer(all: Uint8Array): { answer: HttpAnswer; rest: Uint8Array } | undefined {
  const text = latin1.decode(all);
  const headEnd = text.indexOf("\r\n\r\n");
  if (headEnd < 0) return undefined;
  const [statusLine = "", ...lines] = text.slice(0, headEnd).split("\r\n");
  const match = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
  if (match === null) throw new Error(`not an HTTP answer: ${JSON.stringify(statusLine)}`);
  const headerList: [string, string][] = lines.map((line) => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
  });
  const status = Number(match[1]);
  const afterHead = all.subarray(headEnd + 4);
  let body = "";
  let rest = afterHead;
  if (status !== 101) {
    const length = Number(headerList.find(([n]) => n === "content-length")?.[1] ?? afterHead.length);
    body = utf8.decode(afterHead.subarray(0, length));
    rest = afterHead.subarray(length);
  }
  const answer: HttpAnswer = {
    status,
    statusLine,
    headerList,
    body,
    header: (name) => headerList.find(([n]) => n === name.toLowerCase())?.[1],
    headers: (name) => headerList.filter(([n]) => n === name.toLowerCase()).map(([, v]) => v),
  };
  return { answer, rest };
}

/** A server frame, simplified for comparisons. */
export type Frame =
  | { type: "text"; data: string }
  | { type: "binary"; data: number[] }
  | { type: "ping"; data: number[] }
  | { type: "pong"; data: number[] }
  | { type: "close"; code: number; reason: string };

function simplify(r: Received): Frame {
  switch (r.type) {
    case "message":
      return typeof r.data === "string" ? { type: "text", data: r.data } : { type: "binary", data: Array.from(r.data) };
    case "ping":
      return { type: "ping", data: Array.from(r.data) };
    case "pong":
      return { type: "pong", data: Array.from(r.data) };
    case "close":
      return { type: "close", code: r.code, reason: r.reason };
    case "compressed":
      throw new Error("a compressed frame: this harness's client does not negotiate permessage-deflate");
  }
}

// ---------------------------------------------------------------- connect

/** Options of {@linkcode connect}. */
export interface ConnectOptions {
  /** The raw request, or the parts to build it from. Default: `buildRequest()`. */
  request?: string | RequestSpec;
  /** Default: a new FakeClock. */
  clock?: FakeClock;
  /** Further connection options (limits, protocols…). */
  options?: ConnectionOptions;
  /** The server's live connections. Default: a new set. */
  set?: ConnectionSet;
  /** The transport's remote address. */
  remoteAddress?: string;
}

/** One client connection to a handler, driven by hand. */
export class Conn {
  readonly transport: FakeTransport;
  readonly pump: Pump<any>;
  readonly clock: FakeClock;
  readonly set: ConnectionSet;

  constructor(transport: FakeTransport, pump: Pump<any>, clock: FakeClock, set: ConnectionSet) {
    this.transport = transport;
    this.pump = pump;
    this.clock = clock;
    this.set = set;
  }

  /** The HTTP answer; throws if none was written (yet). */
  get answer(): HttpAnswer {
    const parsed = parseAnswer(this.transport.output());
    if (parsed === undefined) throw new Error("no HTTP answer was written");
    return parsed.answer;
  }

  /** Whether any HTTP answer was written. */
  get answered(): boolean {
    return parseAnswer(this.transport.output()) !== undefined;
  }

  /** The answer's status. */
  get status(): number {
    return this.answer.status;
  }

  /** The server frames written after a 101, decoded. */
  frames(): Frame[] {
    const parsed = parseAnswer(this.transport.output());
    if (parsed === undefined) return [];
    if (parsed.answer.status !== 101) {
      if (parsed.rest.length !== 0) throw new Error(`${parsed.rest.length} bytes after a ${parsed.answer.status} answer`);
      return [];
    }
    return decodeServerFrames(parsed.rest.slice()).map(simplify);
  }

  /** The text messages the server sent, in order. */
  texts(): string[] {
    return this.frames().flatMap((f) => (f.type === "text" ? [f.data] : []));
  }

  /** The close frames the server sent. */
  closes(): { code: number; reason: string }[] {
    return this.frames().flatMap((f) => (f.type === "close" ? [{ code: f.code, reason: f.reason }] : []));
  }

  /** The pump's connection state (0–3). */
  get readyState(): number {
    return this.pump.readyState;
  }

  get destroyed(): boolean {
    return this.transport.destroyed;
  }

  get ended(): boolean {
    return this.transport.ended;
  }

  /** Feeds raw bytes, synchronously. */
  feed(data: Uint8Array): void {
    this.pump.onData(data);
  }

  /** Sends a text message and lets the server react. */
  async text(data: string): Promise<void> {
    this.feed(frame(0x1, data));
    await flush();
  }

  /** Sends a binary message and lets the server react. */
  async binary(data: Uint8Array | number[]): Promise<void> {
    this.feed(frame(0x2, bytes(data)));
    await flush();
  }

  /** Sends a ping. */
  async ping(data: Uint8Array | number[] | string = []): Promise<void> {
    this.feed(frame(0x9, data));
    await flush();
  }

  /** Sends a pong. */
  async pong(data: Uint8Array | number[] | string = []): Promise<void> {
    this.feed(frame(0xa, data));
    await flush();
  }

  /** Sends a close frame (with no payload when `code` is undefined). */
  async close(code?: number, reason = ""): Promise<void> {
    this.feed(frame(0x8, code === undefined ? [] : closeBody(code, reason)));
    await flush();
  }

  /** The peer's FIN. */
  async end(): Promise<void> {
    this.pump.onEnd();
    await flush();
  }

  /** The socket closed under the connection. */
  async socketClosed(): Promise<void> {
    this.pump.onClosed();
    await flush();
  }

  /** Fires due timers of the clock, letting promises run after each. */
  advance(ms: number): Promise<number> {
    return this.clock.advanceAsync(ms);
  }
}

/**
 * Starts a Pump running `handler` on a fake transport, feeds it the opening
 * handshake and lets the upgrade settle.
 */
export async function connect(handler: Handler<any>, options: ConnectOptions = {}): Promise<Conn> {
  const clock = options.clock ?? new FakeClock();
  const set = options.set ?? new ConnectionSet();
  const transport = new FakeTransport(options.remoteAddress);
  const pump = new Pump<any>(transport, handler, resolveConnectionOptions({ ...options.options, clock }), set);
  pump.start();
  const request = typeof options.request === "string" ? options.request : buildRequest(options.request);
  pump.onData(bytes(request));
  await flush();
  return new Conn(transport, pump, clock, set);
}

/** A promise with its resolve and reject. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** An error collector for `app.onError`. */
export function errorLog(): { errors: unknown[]; contexts: string[]; handler: (error: unknown, ctx: { type: string }) => void } {
  const errors: unknown[] = [];
  const contexts: string[] = [];
  return {
    errors,
    contexts,
    handler: (error, ctx) => {
      errors.push(error);
      contexts.push(ctx.type);
    },
  };
}
