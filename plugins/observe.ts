/**
 * Observability: connection, message, close and pub/sub metrics kept as
 * plain numbers, exported through OpenTelemetry (a `meter` and a `tracer`
 * you pass in; `@opentelemetry/api` is an optional peer, never imported at
 * run time) and as Prometheus text, plus a live snapshot of every
 * connection for dashboards.
 *
 * @module
 */

import { ProtocolError, UsageError } from "../core/errors.ts";
import { ReadyState } from "../core/state.ts";
import { describeValue } from "./_check.ts";
import { isThenable } from "./_thenable.ts";
import type { Next } from "./compose.ts";
import type {
  CloseContext,
  DrainContext,
  ErrorContext,
  MessageContext,
  OpenContext,
  Peer,
  UpgradeContext,
} from "./context.ts";
import { HttpError } from "./errors.ts";
import { CLOSED_BY, COUNTS, type ObservedApp, OBSERVER, type TrafficCounts, TRANSPORT, type UpgradeObserver } from "./_observer.ts";

// ---- OpenTelemetry, structurally (no run-time dependency) ----

/**
 * Attribute values as OpenTelemetry takes them.
 *
 * @example
 * ```ts
 * import type { ObserveAttributes } from "@duplex/ws";
 *
 * const attributes: ObserveAttributes = { "duplex.route": "/chat/:room", "http.response.status_code": 101 };
 * ```
 */
export type ObserveAttributes = Record<string, string | number | boolean>;

/**
 * An OpenTelemetry observable instrument, as `observe()` uses it (opaque).
 *
 * @example
 * ```ts
 * import type { ObserveObservable } from "@duplex/ws";
 *
 * const instruments: ObserveObservable[] = [];
 * ```
 */
export type ObserveObservable = object;

/**
 * The part of an OpenTelemetry `Meter` (`@opentelemetry/api`) that
 * `observe()` uses: a real `Meter` fits.
 *
 * @example
 * ```ts ignore
 * import { metrics } from "@opentelemetry/api";
 * import { observe } from "@duplex/ws";
 *
 * const obs = observe({ meter: metrics.getMeter("chat") });
 * ```
 */
export interface ObserveMeter {
  /** Creates a histogram. */
  createHistogram(
    name: string,
    options?: { description?: string; unit?: string; advice?: { explicitBucketBoundaries?: number[] } },
  ): { record(value: number, attributes?: ObserveAttributes): void };
  /** Creates an observable (asynchronous) counter. */
  createObservableCounter(name: string, options?: { description?: string; unit?: string }): ObserveObservable;
  /** Creates an observable up-down counter. */
  createObservableUpDownCounter(name: string, options?: { description?: string; unit?: string }): ObserveObservable;
  /** Creates an observable gauge. */
  createObservableGauge(name: string, options?: { description?: string; unit?: string }): ObserveObservable;
  /** Registers one callback that observes several instruments at each collection. */
  addBatchObservableCallback(
    callback: (result: { observe(observable: ObserveObservable, value: number, attributes?: ObserveAttributes): void }) => void,
    observables: ObserveObservable[],
  ): void;
}

/**
 * The part of an OpenTelemetry `Span` that `observe()` uses.
 *
 * @example
 * ```ts
 * import type { ObserveSpan } from "@duplex/ws";
 *
 * function done(span: ObserveSpan): void {
 *   span.setAttribute("http.response.status_code", 101);
 *   span.end();
 * }
 * ```
 */
export interface ObserveSpan {
  /** Sets an attribute. */
  setAttribute(key: string, value: string | number | boolean): unknown;
  /** Sets the status: code 2 is an error. */
  setStatus(status: { code: number; message?: string }): unknown;
  /** Ends the span. */
  end(): void;
  /** The span's identity, to parent the spans of its messages. */
  spanContext(): { traceId: string; spanId: string; traceFlags: number };
}

/**
 * The part of an OpenTelemetry `Tracer` that `observe()` uses: a real
 * `Tracer` fits.
 *
 * @example
 * ```ts ignore
 * import * as otel from "@opentelemetry/api";
 * import { observe } from "@duplex/ws";
 *
 * const obs = observe({ tracer: otel.trace.getTracer("chat"), api: otel });
 * ```
 */
export interface ObserveTracer {
  /** Starts a span; `context` is an OpenTelemetry `Context` (the parent). */
  startSpan(name: string, options?: { kind?: number; attributes?: ObserveAttributes }, context?: never): ObserveSpan;
}

/**
 * The part of the `@opentelemetry/api` module that parents spans: pass the
 * module itself (`import * as otel from "@opentelemetry/api"`). Without it,
 * spans have no parent.
 *
 * @example
 * ```ts ignore
 * import * as otel from "@opentelemetry/api";
 * import { observe } from "@duplex/ws";
 *
 * const obs = observe({ tracer: otel.trace.getTracer("chat"), api: otel });
 * ```
 */
export interface ObserveOtelApi {
  /** `context.active()`. */
  context: { active(): unknown };
  /** `trace.setSpanContext()`. */
  trace: { setSpanContext(context: never, spanContext: { traceId: string; spanId: string; traceFlags: number; isRemote?: boolean }): unknown };
}

// ---- options and snapshot ----

/**
 * Options of {@linkcode observe}.
 *
 * @example
 * ```ts
 * import type { ObserveOptions } from "@duplex/ws";
 *
 * const options: ObserveOptions = { spans: "upgrade", slowBufferedBytes: 256 * 1024, recentCloses: 100 };
 * ```
 */
export interface ObserveOptions {
  /** An OpenTelemetry `Meter`: the metrics are exported through it. Without one, no OpenTelemetry work at all. */
  meter?: ObserveMeter;
  /** An OpenTelemetry `Tracer`: spans for each upgrade (and, with `spans: "message"`, each message). */
  tracer?: ObserveTracer;
  /** The `@opentelemetry/api` module: parents the upgrade span on the request's `traceparent`. */
  api?: ObserveOtelApi;
  /** Which spans: `"upgrade"` (the default) or `"message"` (the upgrade and every incoming message). */
  spans?: "upgrade" | "message";
  /** Buffered output, in bytes, from which a connection is listed as slow. Default 65,536. */
  slowBufferedBytes?: number;
  /** How many recent closes the snapshot keeps. Default 50. */
  recentCloses?: number;
  /**
   * The `route` attribute of a connection. Default: the path with the
   * router's parameters put back as `:name` (`/rooms/:room`), or the path.
   * Return a few distinct values: each is a time series.
   */
  route?: (ctx: OpenContext<any>) => string;
  /**
   * Time the `message` phase too, 1 message in this many (1: every one).
   * Default: not timed, so that observing adds nothing per message; the
   * other phases are always timed.
   */
  sampleEvery?: number;
  /** A backplane whose `stats` to export (queue, drops): a `RedisBackplane`. */
  backplane?: { readonly stats: Readonly<{ queued: number; queuedBytes: number; dropped: number; published: number; received: number }> };
  /**
   * A `reliable()` layer: its recovery results are exported, and its topics
   * (its subscriptions are not in `peer.topics`) listed by `snapshot()`.
   */
  reliable?: { readonly stats: Readonly<{ fresh: number; recovered: number; gap: number }>; topics?(): ReadonlyMap<string, number> };
}

/**
 * One connection in a {@linkcode ObserveSnapshot}.
 *
 * @example
 * ```ts
 * import type { ObservedConnection } from "@duplex/ws";
 *
 * const slowest = (list: ObservedConnection[]) => list.toSorted((a, b) => b.buffered - a.buffered)[0];
 * ```
 */
export interface ObservedConnection {
  /** The connection's id (what `closePeer` takes). */
  id: string;
  /** Its `route` attribute. */
  route: string;
  /** The negotiated subprotocol, or `""`. */
  protocol: string;
  /** The peer's address, when known. */
  remote?: string;
  /** When it opened, in ms since the epoch. */
  openedAt: number;
  /** Messages received. */
  messagesIn: number;
  /** Messages sent. */
  messagesOut: number;
  /** Bytes received (raw transports: from the socket, handshake included; native: payload lengths). */
  bytesIn: number;
  /** Bytes sent (raw transports: to the socket, handshake included; native: payload lengths). */
  bytesOut: number;
  /** Output bytes buffered now. */
  buffered: number;
}

/**
 * One close in {@linkcode ObserveSnapshot.recentCloses}.
 *
 * @example
 * ```ts
 * import type { ObservedClose } from "@duplex/ws";
 *
 * const close: ObservedClose = { id: "7", code: 1000, reason: "", by: "client", at: Date.now() };
 * ```
 */
export interface ObservedClose {
  /** The connection's id. */
  id: string;
  /** The close code (1006: no close frame). */
  code: number;
  /** The close reason. */
  reason: string;
  /** Who started the close. */
  by: "client" | "server";
  /** When, in ms since the epoch. */
  at: number;
}

/**
 * Totals since the observer started, in {@linkcode ObserveSnapshot}.
 *
 * @example
 * ```ts
 * import type { ObserveTotals } from "@duplex/ws";
 *
 * const refused = (t: ObserveTotals) => Object.values(t.upgradesRefused).reduce((a, b) => a + b, 0);
 * ```
 */
export interface ObserveTotals {
  /** Connections open now. */
  open: number;
  /** Upgrades accepted (connections opened). */
  upgradesAccepted: number;
  /** Upgrades refused, by HTTP status. */
  upgradesRefused: Record<string, number>;
  /** Messages received. */
  messagesIn: number;
  /** Messages sent. */
  messagesOut: number;
  /** Bytes received (see {@linkcode ObservedConnection.bytesIn}). */
  bytesIn: number;
  /** Bytes sent. */
  bytesOut: number;
  /** Times a connection's output drained after backpressure. */
  drains: number;
  /** Closes by close code. */
  closesByCode: Record<string, number>;
}

/**
 * What {@linkcode Observer.snapshot} returns: a JSON-ready picture of now.
 *
 * @example
 * ```ts
 * import { observe } from "@duplex/ws";
 *
 * const obs = observe();
 * const { totals, connections } = obs.snapshot();
 * console.log(totals.open, connections.length); // 0 0
 * ```
 */
export interface ObserveSnapshot {
  /** When, in ms since the epoch. */
  at: number;
  /** `"node"`, `"deno"` or `"bun"`. */
  runtime: string;
  /** Totals since the observer started. */
  totals: ObserveTotals;
  /** The open connections. */
  connections: ObservedConnection[];
  /** Topics with subscribers among the observed connections (and those of `reliable`, when given). */
  topics: { topic: string; subscribers: number }[];
  /** Connections with at least `slowBufferedBytes` buffered, most buffered first. */
  slow: { id: string; buffered: number }[];
  /** The last closes, oldest first. */
  recentCloses: ObservedClose[];
}

/**
 * What {@linkcode observe} returns: middleware for `app.use()` (or a route,
 * or a Hono route's middleware list) plus the read-outs.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import { App, observe } from "@duplex/ws";
 *
 * const obs = observe();
 * const app = new App().use(obs);
 * const metrics = (request: Request): Response => obs.prometheus(request);
 * ```
 */
export interface Observer<S = Record<string, unknown>> {
  /** Middleware: starts the upgrade span; counts app refusals when not attached to an app. */
  upgrade(ctx: UpgradeContext<S>, next: Next): void | Promise<void>;
  /** Middleware: tracks the connection. */
  open(ctx: OpenContext<S>, next: Next): void | Promise<void>;
  /**
   * Middleware: spans or times a message; present only with `spans:
   * "message"` or `sampleEvery` (messages are counted by the adapter, at no
   * cost per message here).
   */
  message?(ctx: MessageContext<S>, next: Next): void | Promise<void>;
  /** Middleware: counts a drain. */
  drain(ctx: DrainContext<S>, next: Next): void | Promise<void>;
  /** Middleware: counts a close. */
  close(ctx: CloseContext<S>, next: Next): void | Promise<void>;
  /** Middleware: counts a protocol error. */
  error(ctx: ErrorContext<S>, next: Next): void | Promise<void>;
  /**
   * The metrics as Prometheus text (exposition format 0.0.4): a plain
   * `Request → Response` handler to mount on any server or route.
   *
   * @param request The scrape's request (GET or HEAD).
   * @returns The text, or 405 for another method.
   */
  prometheus(request: Request): Response;
  /**
   * A picture of now: totals, connections, topics, slow peers, recent closes.
   *
   * @returns A fresh, JSON-ready object.
   */
  snapshot(): ObserveSnapshot;
  /**
   * Closes one observed connection (an operator's action).
   *
   * @param id The connection's id.
   * @param code The close code. Default 1008 (policy violation).
   * @param reason The close reason. Default `"Closed by an operator"`.
   * @returns `false` when no open connection has that id.
   * @throws {UsageError} For a code that may not be sent or a reason over 123 bytes.
   */
  closePeer(id: string, code?: number, reason?: string): boolean;
}

// ---- the numbers ----

const SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DURATION_BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]; // signalr.server.connection.duration's
const BYTES_BUCKETS = [1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216];

/** A histogram per attribute set, kept for Prometheus (OpenTelemetry keeps its own). */
class Histogram {
  readonly bounds: readonly number[];
  readonly series = new Map<string, { labels: Record<string, string>; counts: number[]; sum: number; count: number }>();
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
  }
  record(value: number, labels: Record<string, string>): void {
    const key = labelKey(labels);
    let s = this.series.get(key);
    if (s === undefined) {
      s = { labels, counts: new Array(this.bounds.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }
}

/** Counts of one (route, transport): live connections add theirs at collection. */
class Series {
  readonly route: string;
  readonly transport: string;
  open = 0;
  accepted = 0;
  messagesIn = 0;
  messagesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  drains = 0;
  constructor(route: string, transport: string) {
    this.route = route;
    this.transport = transport;
  }
}

const NO_COUNTS: TrafficCounts = Object.freeze({ messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 });

/** One open connection; its traffic counts live in the adapter's connection. */
class Tracked {
  readonly peer: Peer<any>;
  readonly conn: { [COUNTS]?: TrafficCounts };
  readonly series: Series;
  readonly openedAt = Date.now();
  readonly openedClock: number;
  drains = 0;
  byServer = false;
  span: ObserveSpan | undefined;
  constructor(peer: Peer<any>, conn: object, series: Series, openedClock: number) {
    this.peer = peer;
    this.conn = conn;
    this.series = series;
    this.openedClock = openedClock;
  }
  get counts(): TrafficCounts {
    return this.conn[COUNTS] ?? NO_COUNTS;
  }
}

interface Pending {
  start: number;
  span: ObserveSpan | undefined;
}

/** Upgrades in progress beyond this many trigger a sweep of those older than PENDING_MAX_MS. */
const PENDING_SWEEP_AT = 256;
const PENDING_MAX_MS = 60_000;

const RUNTIME = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const SPAN_SERVER = 1;
const SPAN_CONSUMER = 4;
const STATUS_ERROR = 2;

/**
 * Observes an app: connections, upgrades, handshake time, messages and
 * bytes both ways, closes by code and initiator, protocol errors, output
 * backpressure, pub/sub and backplane counts, recovery results, and the time
 * spent in the middleware after it per phase. Put it first in `app.use()`
 * (it then also hears of the upgrades the server refuses before the app
 * runs, and of the app's pub/sub), or in a route's or Hono route's
 * middleware list (connections of that route only).
 *
 * Counting is a few additions to plain numbers per message; OpenTelemetry
 * observable instruments and the Prometheus handler read them at
 * collection. Histograms (handshake and connection duration, buffered
 * output at backpressure, phase time, sampled 1 in `sampleEvery` messages)
 * record as events happen.
 *
 * @typeParam S The type of `ctx.state`.
 * @param options The OpenTelemetry meter and tracer, spans, the slow
 *   threshold, sources of pub/sub and recovery counts.
 * @returns The middleware and its read-outs.
 * @throws {UsageError} `ERR_INVALID_OPTION` for a bad option.
 *
 * @example Prometheus at /metrics beside the WebSocket server
 * ```ts
 * import { App, observe, serve } from "@duplex/ws";
 *
 * const obs = observe();
 * const app = new App().use(obs, { message: (ctx) => void ctx.send(ctx.data) });
 * const server = await serve(app, { port: 0 });
 * const text = await obs.prometheus(new Request("http://localhost/metrics")).text();
 * console.log(text.includes("duplex_server_active_connections")); // true
 * await server.close();
 * ```
 */
export function observe<S = Record<string, unknown>>(options: ObserveOptions = {}): Observer<S> {
  const slowBytes = positive(options.slowBufferedBytes ?? 65536, "slowBufferedBytes", true);
  const keepCloses = positive(options.recentCloses ?? 50, "recentCloses", true);
  const sampleEvery = options.sampleEvery === undefined ? 0 : positive(options.sampleEvery, "sampleEvery", false);
  if (options.spans !== undefined && options.spans !== "upgrade" && options.spans !== "message") {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: spans must be "upgrade" or "message", got ${describeValue(options.spans)}`);
  }
  for (const name of ["meter", "tracer", "api", "backplane", "reliable"] as const) {
    const value = options[name];
    if (value !== undefined && (typeof value !== "object" || value === null)) {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: ${name} must be an object, got ${describeValue(value)}`);
    }
  }
  if (options.route !== undefined && typeof options.route !== "function") {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: route must be a function, got ${describeValue(options.route)}`);
  }
  const { tracer, api, backplane, reliable } = options;
  const messageSpans = tracer !== undefined && options.spans === "message";

  const live = new Map<Peer<any>, Tracked>();
  const pending = new Map<string, Pending>();
  const opening = new WeakMap<object, number>(); // connection → clock time it started
  const series = new Map<string, Series>();
  const refused = new Map<number, number>();
  const closes = new Map<string, { code: number; by: string; route: string; n: number }>();
  const protocolErrors = new Map<string, { code: number; type: string; n: number }>();
  const recent: ObservedClose[] = [];
  const handshake = new Histogram(SECONDS_BUCKETS);
  const duration = new Histogram(DURATION_BUCKETS);
  const buffered = new Histogram(BYTES_BUCKETS);
  const phaseTime = new Histogram(SECONDS_BUCKETS);
  let app: ObservedApp | undefined;
  let attached = false;
  let sampled = 0;

  const otel = options.meter === undefined ? undefined : instruments(options.meter);

  const seriesOf = (route: string, transport: string): Series => {
    const key = `${route}\u0000${transport}`;
    let s = series.get(key);
    if (s === undefined) series.set(key, s = new Series(route, transport));
    return s;
  };
  const countRefusal = (status: number, id: string | undefined): void => {
    refused.set(status, (refused.get(status) ?? 0) + 1);
    const p = id === undefined ? undefined : pending.get(id);
    if (id !== undefined) pending.delete(id);
    if (p?.span !== undefined) {
      p.span.setAttribute("http.response.status_code", status);
      if (status >= 500) p.span.setStatus({ code: STATUS_ERROR });
      p.span.end();
    }
  };
  const recordPhase = (phase: string, start: number, clock: { now(): number }, result: unknown): void => {
    const done = () => {
      const seconds = (clock.now() - start) / 1000;
      phaseTime.record(seconds, { phase });
      otel?.phase.record(seconds, { "duplex.phase": phase, "duplex.runtime": RUNTIME });
    };
    if (isThenable(result)) result.then(done, done);
    else done();
  };

  const observer: UpgradeObserver = {
    attach(owner) {
      attached = true;
      app = owner;
    },
    refused: countRefusal,
    opening(conn, now) {
      opening.set(conn, now);
    },
    backpressure(bytes) {
      buffered.record(bytes, {});
      otel?.buffered.record(bytes, { "duplex.runtime": RUNTIME });
    },
  };

  const middleware: Observer<S> & { [OBSERVER]: UpgradeObserver } = {
    [OBSERVER]: observer,

    upgrade(ctx, next) {
      const start = ctx.clock.now();
      let span: ObserveSpan | undefined;
      if (tracer !== undefined) {
        span = tracer.startSpan("duplex.upgrade", {
          kind: SPAN_SERVER,
          attributes: {
            "http.request.method": ctx.method,
            "url.path": ctx.path,
            "network.protocol.name": "websocket",
            "duplex.runtime": RUNTIME,
            ...(ctx.remoteAddress === "" ? {} : { "client.address": ctx.remoteAddress }),
          },
        }, parentOf(api, ctx.headers.get("traceparent")) as never);
      }
      if (pending.size >= PENDING_SWEEP_AT) sweepPending(start);
      pending.set(ctx.id, { start, span });
      const after = () => {
        if (ctx.response !== undefined) refusedByApp(ctx.response.status);
      };
      const failed = (error: unknown): never => {
        refusedByApp(error instanceof HttpError ? error.status : 500);
        throw error;
      };
      const refusedByApp = (status: number): void => {
        // Attached to an app: the adapter reports every refusal, this one included.
        if (!attached) countRefusal(status, ctx.id);
      };
      let result;
      try {
        result = next();
      } catch (error) {
        return failed(error);
      }
      if (isThenable(result)) return result.then(after, failed);
      after();
    },

    open(ctx, next) {
      const peer = ctx.peer;
      const conn = connectionOf(peer);
      const now = ctx.clock.now();
      const p = pending.get(ctx.id);
      pending.delete(ctx.id);
      const began = (conn === undefined ? undefined : opening.get(conn)) ?? p?.start;
      const route = options.route !== undefined ? String(options.route(ctx)) : routeOf(ctx.request.url, ctx.params);
      const transport = (conn as { [TRANSPORT]?: string } | undefined)?.[TRANSPORT] ?? "raw";
      const s = seriesOf(route, transport);
      s.open++;
      s.accepted++;
      const rec = new Tracked(peer, conn ?? peer, s, now);
      live.set(peer, rec);
      if (began !== undefined) {
        const seconds = Math.max(0, now - began) / 1000;
        handshake.record(seconds, { route, transport });
        otel?.handshake.record(seconds, { "duplex.route": route, "duplex.transport": transport, "duplex.runtime": RUNTIME });
      }
      if (p?.span !== undefined) {
        p.span.setAttribute("http.response.status_code", 101);
        p.span.setAttribute("duplex.route", route);
        if (ctx.protocol !== "") p.span.setAttribute("duplex.protocol", ctx.protocol);
        p.span.end();
        if (messageSpans) rec.span = p.span;
      }
      const result = next();
      recordPhase("open", now, ctx.clock, result);
      return result as void | Promise<void>;
    },

    drain(ctx, next) {
      const rec = live.get(ctx.peer);
      if (rec !== undefined) rec.drains++;
      return next();
    },

    error(ctx, next) {
      const error = ctx.error;
      if (error instanceof ProtocolError) {
        const key = `${error.closeCode}\u0000${error.code}`;
        const entry = protocolErrors.get(key);
        if (entry === undefined) protocolErrors.set(key, { code: error.closeCode, type: error.code, n: 1 });
        else entry.n++;
        const rec = live.get(ctx.peer);
        if (rec !== undefined) rec.byServer = true; // we send the close frame that the fault calls for
      }
      return next();
    },

    close(ctx, next) {
      const peer = ctx.peer;
      const rec = live.get(peer);
      if (rec !== undefined) {
        live.delete(peer);
        const s = rec.series;
        const counts = rec.counts;
        s.open--;
        s.messagesIn += counts.messagesIn;
        s.messagesOut += counts.messagesOut;
        s.bytesIn += counts.bytesIn;
        s.bytesOut += counts.bytesOut;
        s.drains += rec.drains;
        const said = (connectionOf(peer) as { [CLOSED_BY]?: string } | undefined)?.[CLOSED_BY];
        const by = said === "server" || said === "client" ? said : rec.byServer ? "server" : "client";
        const key = `${ctx.code}\u0000${by}\u0000${s.route}`;
        const entry = closes.get(key);
        if (entry === undefined) closes.set(key, { code: ctx.code, by, route: s.route, n: 1 });
        else entry.n++;
        recent.push({ id: ctx.id, code: ctx.code, reason: ctx.reason, by, at: Date.now() });
        if (recent.length > keepCloses) recent.splice(0, recent.length - keepCloses);
        const seconds = Math.max(0, ctx.clock.now() - rec.openedClock) / 1000;
        duration.record(seconds, { route: s.route, transport: s.transport });
        otel?.duration.record(seconds, { "duplex.route": s.route, "duplex.transport": s.transport, "duplex.runtime": RUNTIME });
      }
      pending.delete(ctx.id);
      return next();
    },

    prometheus(request) {
      if (request.method !== "GET" && request.method !== "HEAD") {
        return new Response("Method Not Allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
      }
      const body = request.method === "HEAD" ? null : exposition();
      return new Response(body, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8", "cache-control": "no-store" } });
    },

    snapshot() {
      const connections: ObservedConnection[] = [];
      const slow: { id: string; buffered: number }[] = [];
      const topics = new Map<string, number>();
      for (const rec of live.values()) {
        const peer = rec.peer;
        const bufferedNow = peer.bufferedAmount;
        const remote = peer.remoteAddress;
        const counts = rec.counts;
        connections.push({
          id: peer.id,
          route: rec.series.route,
          protocol: peer.protocol,
          ...(remote === "" ? {} : { remote }),
          openedAt: rec.openedAt,
          messagesIn: counts.messagesIn,
          messagesOut: counts.messagesOut,
          bytesIn: counts.bytesIn,
          bytesOut: counts.bytesOut,
          buffered: bufferedNow,
        });
        if (bufferedNow >= slowBytes) slow.push({ id: peer.id, buffered: bufferedNow });
        for (const topic of topicsOf(peer)) topics.set(topic, (topics.get(topic) ?? 0) + 1);
      }
      slow.sort((a, b) => b.buffered - a.buffered);
      const recoverable = reliable?.topics?.();
      if (recoverable !== undefined) for (const [topic, n] of recoverable) topics.set(topic, (topics.get(topic) ?? 0) + n);
      const t = totals();
      return {
        at: Date.now(),
        runtime: RUNTIME,
        totals: {
          open: t.open,
          upgradesAccepted: t.accepted,
          upgradesRefused: Object.fromEntries([...refused].map(([status, n]) => [String(status), n])),
          messagesIn: t.messagesIn,
          messagesOut: t.messagesOut,
          bytesIn: t.bytesIn,
          bytesOut: t.bytesOut,
          drains: t.drains,
          closesByCode: closesByCode(),
        },
        connections,
        topics: [...topics].map(([topic, subscribers]) => ({ topic, subscribers })).sort((a, b) => b.subscribers - a.subscribers || (a.topic < b.topic ? -1 : 1)),
        slow,
        recentCloses: recent.slice(),
      };
    },

    closePeer(id, code = 1008, reason = "Closed by an operator") {
      for (const rec of live.values()) {
        if (rec.peer.id !== id) continue;
        if (rec.peer.readyState !== ReadyState.Open) return false;
        rec.byServer = true;
        rec.peer.close(code, reason);
        return true;
      }
      return false;
    },
  };

  /**
   * Forgets upgrades that neither opened nor were reported refused (the
   * socket went away while the app decided; an app that stopped its chain
   * without refusing, with no adapter to report the 403): their spans end.
   */
  function sweepPending(now: number): void {
    for (const [id, p] of pending) {
      if (now - p.start < PENDING_MAX_MS) continue;
      pending.delete(id);
      p.span?.setAttribute("duplex.upgrade.outcome", "abandoned");
      p.span?.end();
    }
  }

  /** Spans one message as a child of its connection's upgrade span. */
  function spanned(rec: Tracked, ctx: MessageContext<S>, next: Next): void | Promise<void> {
    const parent = rec.span!.spanContext();
    const span = tracer!.startSpan("duplex.message", {
      kind: SPAN_CONSUMER,
      attributes: { "duplex.route": rec.series.route, "duplex.message.type": ctx.binary ? "binary" : "text" },
    }, (api === undefined ? undefined : api.trace.setSpanContext(api.context.active() as never, parent)) as never);
    let result;
    try {
      result = next();
    } catch (error) {
      span.setStatus({ code: STATUS_ERROR });
      span.end();
      throw error;
    }
    if (!isThenable(result)) {
      span.end();
      return;
    }
    return Promise.resolve(result).then(() => span.end(), (error) => {
      span.setStatus({ code: STATUS_ERROR });
      span.end();
      throw error;
    });
  }

  /** Per-series counts, live connections added. */
  function perSeries(): Map<Series, Series> {
    const out = new Map<Series, Series>();
    for (const s of series.values()) {
      const copy = new Series(s.route, s.transport);
      Object.assign(copy, s);
      out.set(s, copy);
    }
    for (const rec of live.values()) {
      const copy = out.get(rec.series)!;
      const counts = rec.counts;
      copy.messagesIn += counts.messagesIn;
      copy.messagesOut += counts.messagesOut;
      copy.bytesIn += counts.bytesIn;
      copy.bytesOut += counts.bytesOut;
      copy.drains += rec.drains;
    }
    return out;
  }

  function totals(): Series {
    const sum = new Series("", "");
    for (const s of perSeries().values()) {
      sum.open += s.open;
      sum.accepted += s.accepted;
      sum.messagesIn += s.messagesIn;
      sum.messagesOut += s.messagesOut;
      sum.bytesIn += s.bytesIn;
      sum.bytesOut += s.bytesOut;
      sum.drains += s.drains;
    }
    return sum;
  }

  function closesByCode(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of closes.values()) out[c.code] = (out[c.code] ?? 0) + c.n;
    return out;
  }

  function liveBuffered(): number {
    let sum = 0;
    for (const rec of live.values()) sum += rec.peer.bufferedAmount;
    return sum;
  }

  /** The Prometheus text. */
  function exposition(): string {
    const out: string[] = [];
    const rows = [...perSeries().values()];
    const base = (s: Series) => ({ route: s.route, runtime: RUNTIME, transport: s.transport });
    const family = (name: string, type: string, help: string, samples: [Record<string, string>, number][]) => {
      out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) out.push(`${name}${labelText(labels)} ${formatValue(value)}`);
    };
    family("duplex_server_active_connections", "gauge", "WebSocket connections open now.", rows.map((s) => [base(s), s.open]));
    family("duplex_server_upgrades_total", "counter", "WebSocket upgrade requests answered, by HTTP status (101: accepted).", [
      ...rows.map((s): [Record<string, string>, number] => [{ ...base(s), status: "101" }, s.accepted]),
      ...[...refused].map(([status, n]): [Record<string, string>, number] => [{ runtime: RUNTIME, status: String(status) }, n]),
    ]);
    family("duplex_server_messages_total", "counter", "WebSocket messages, by direction.", rows.flatMap((s) => [
      [{ ...base(s), direction: "receive" }, s.messagesIn] as [Record<string, string>, number],
      [{ ...base(s), direction: "transmit" }, s.messagesOut] as [Record<string, string>, number],
    ]));
    family("duplex_server_io_bytes_total", "counter", "Bytes received and sent, by direction (raw transports: socket bytes; native: payload lengths).", rows.flatMap((s) => [
      [{ ...base(s), direction: "receive" }, s.bytesIn] as [Record<string, string>, number],
      [{ ...base(s), direction: "transmit" }, s.bytesOut] as [Record<string, string>, number],
    ]));
    family("duplex_server_output_drains_total", "counter", "Times a connection's output drained after backpressure.", rows.map((s) => [base(s), s.drains]));
    family("duplex_server_output_buffered_total_bytes", "gauge", "Output bytes buffered now, all connections.", [[{ runtime: RUNTIME }, liveBuffered()]]);
    family("duplex_server_closes_total", "counter", "Closed connections, by close code and by who started the close.", [...closes.values()].map((c) => [
      { route: c.route, runtime: RUNTIME, code: String(c.code), initiator: c.by },
      c.n,
    ]));
    family("duplex_server_protocol_errors_total", "counter", "Connections failed for breaking the protocol, by the close code sent.", [...protocolErrors.values()].map((e) => [
      { runtime: RUNTIME, code: String(e.code), error_type: e.type },
      e.n,
    ]));
    histogram(out, "duplex_server_handshake_duration_seconds", "Time from the connection's start to the 101 answer.", handshake);
    histogram(out, "duplex_server_connection_duration_seconds", "How long closed connections were open.", duration);
    histogram(out, "duplex_server_output_buffered_bytes", "Output bytes buffered when a connection went over its high-water mark.", buffered);
    histogram(out, "duplex_server_middleware_duration_seconds", "Time in the middleware after observe(), by phase (messages only with sampleEvery, sampled).", phaseTime);
    if (app !== undefined) {
      const p = app.pubsubStats;
      family("duplex_pubsub_published_total", "counter", "Messages published in this process.", [[{ runtime: RUNTIME }, p.published]]);
      family("duplex_pubsub_deliveries_total", "counter", "Published messages written to local subscribers.", [[{ runtime: RUNTIME }, p.delivered]]);
      family("duplex_pubsub_drops_total", "counter", "Published messages dropped for a slow subscriber.", [[{ runtime: RUNTIME }, p.dropped]]);
      family("duplex_pubsub_slow_closes_total", "counter", "Subscribers closed for being too slow.", [[{ runtime: RUNTIME }, p.closedSlow]]);
      family("duplex_pubsub_received_total", "counter", "Messages that arrived from the backplane.", [[{ runtime: RUNTIME }, p.received]]);
    }
    if (backplane !== undefined) {
      const b = backplane.stats;
      family("duplex_backplane_queue_messages", "gauge", "Messages waiting for the backplane to reconnect.", [[{ runtime: RUNTIME }, b.queued]]);
      family("duplex_backplane_queue_bytes", "gauge", "Bytes waiting for the backplane to reconnect.", [[{ runtime: RUNTIME }, b.queuedBytes]]);
      family("duplex_backplane_drops_total", "counter", "Messages the backplane dropped.", [[{ runtime: RUNTIME }, b.dropped]]);
    }
    if (reliable !== undefined) {
      const r = reliable.stats;
      family("duplex_reliable_subscriptions_total", "counter", "Reliable subscriptions, by result.", [
        [{ runtime: RUNTIME, result: "fresh" }, r.fresh],
        [{ runtime: RUNTIME, result: "recovered" }, r.recovered],
        [{ runtime: RUNTIME, result: "gap" }, r.gap],
      ]);
    }
    return out.join("\n") + "\n";
  }

  /** OpenTelemetry instruments: observables read the plain counts at collection. */
  function instruments(meter: ObserveMeter) {
    const active = meter.createObservableUpDownCounter("duplex.server.active_connections", { unit: "{connection}", description: "WebSocket connections open now." });
    const upgrades = meter.createObservableCounter("duplex.server.upgrades", { unit: "{upgrade}", description: "WebSocket upgrade requests answered, by HTTP status (101: accepted)." });
    const messages = meter.createObservableCounter("duplex.server.messages", { unit: "{message}", description: "WebSocket messages, by direction." });
    const io = meter.createObservableCounter("duplex.server.io", { unit: "By", description: "Bytes received and sent, by direction (raw transports: socket bytes; native: payload lengths)." });
    const drains = meter.createObservableCounter("duplex.server.output.drains", { unit: "{drain}", description: "Times a connection's output drained after backpressure." });
    const bufferedNow = meter.createObservableUpDownCounter("duplex.server.output.buffered_total", { unit: "By", description: "Output bytes buffered now, all connections." });
    const closed = meter.createObservableCounter("duplex.server.closes", { unit: "{connection}", description: "Closed connections, by close code and by who started the close." });
    const errors = meter.createObservableCounter("duplex.server.protocol_errors", { unit: "{error}", description: "Connections failed for breaking the protocol, by the close code sent." });
    const published = meter.createObservableCounter("duplex.pubsub.published", { unit: "{message}", description: "Messages published in this process." });
    const deliveries = meter.createObservableCounter("duplex.pubsub.deliveries", { unit: "{message}", description: "Published messages written to local subscribers." });
    const drops = meter.createObservableCounter("duplex.pubsub.drops", { unit: "{message}", description: "Published messages dropped for a slow subscriber." });
    const queue = meter.createObservableUpDownCounter("duplex.backplane.queue", { unit: "{message}", description: "Messages waiting for the backplane to reconnect." });
    const queueBytes = meter.createObservableUpDownCounter("duplex.backplane.queue.size", { unit: "By", description: "Bytes waiting for the backplane to reconnect." });
    const bpDrops = meter.createObservableCounter("duplex.backplane.drops", { unit: "{message}", description: "Messages the backplane dropped." });
    const recovery = meter.createObservableCounter("duplex.reliable.subscriptions", { unit: "{subscription}", description: "Reliable subscriptions, by result." });
    const rt = { "duplex.runtime": RUNTIME };
    meter.addBatchObservableCallback((result) => {
      for (const s of perSeries().values()) {
        const a = { "duplex.route": s.route, "duplex.transport": s.transport, "duplex.runtime": RUNTIME };
        result.observe(active, s.open, a);
        result.observe(upgrades, s.accepted, { ...a, "http.response.status_code": 101 });
        result.observe(messages, s.messagesIn, { ...a, "network.io.direction": "receive" });
        result.observe(messages, s.messagesOut, { ...a, "network.io.direction": "transmit" });
        result.observe(io, s.bytesIn, { ...a, "network.io.direction": "receive" });
        result.observe(io, s.bytesOut, { ...a, "network.io.direction": "transmit" });
        result.observe(drains, s.drains, a);
      }
      for (const [status, n] of refused) result.observe(upgrades, n, { ...rt, "http.response.status_code": status });
      result.observe(bufferedNow, liveBuffered(), rt);
      for (const c of closes.values()) {
        result.observe(closed, c.n, { ...rt, "duplex.route": c.route, "duplex.close.code": c.code, "duplex.close.initiator": c.by });
      }
      for (const e of protocolErrors.values()) result.observe(errors, e.n, { ...rt, "duplex.close.code": e.code, "error.type": e.type });
      if (app !== undefined) {
        const p = app.pubsubStats;
        result.observe(published, p.published, rt);
        result.observe(deliveries, p.delivered, rt);
        result.observe(drops, p.dropped, rt);
      }
      if (backplane !== undefined) {
        const b = backplane.stats;
        result.observe(queue, b.queued, rt);
        result.observe(queueBytes, b.queuedBytes, rt);
        result.observe(bpDrops, b.dropped, rt);
      }
      if (reliable !== undefined) {
        const r = reliable.stats;
        result.observe(recovery, r.fresh, { ...rt, "duplex.reliable.result": "fresh" });
        result.observe(recovery, r.recovered, { ...rt, "duplex.reliable.result": "recovered" });
        result.observe(recovery, r.gap, { ...rt, "duplex.reliable.result": "gap" });
      }
    }, [active, upgrades, messages, io, drains, bufferedNow, closed, errors, published, deliveries, drops, queue, queueBytes, bpDrops, recovery]);
    return {
      handshake: meter.createHistogram("duplex.server.handshake.duration", {
        unit: "s",
        description: "Time from the connection's start to the 101 answer.",
        advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
      }),
      duration: meter.createHistogram("duplex.server.connection.duration", {
        unit: "s",
        description: "How long closed connections were open.",
        advice: { explicitBucketBoundaries: DURATION_BUCKETS },
      }),
      buffered: meter.createHistogram("duplex.server.output.buffered", {
        unit: "By",
        description: "Output bytes buffered when a connection went over its high-water mark.",
        advice: { explicitBucketBoundaries: BYTES_BUCKETS },
      }),
      phase: meter.createHistogram("duplex.server.middleware.duration", {
        unit: "s",
        description: "Time in the middleware after observe(), by phase (messages only with sampleEvery, sampled).",
        advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
      }),
    };
  }

  if (messageSpans || sampleEvery > 0) {
    // Only then a `message` phase: counting needs none (the adapter counts).
    middleware.message = (ctx, next) => {
      if (messageSpans) {
        const rec = live.get(ctx.peer);
        if (rec?.span !== undefined) return spanned(rec, ctx, next);
      }
      if (sampleEvery === 0 || ++sampled < sampleEvery) return next();
      sampled = 0;
      const start = ctx.clock.now();
      const result = next();
      recordPhase("message", start, ctx.clock, result);
      return result as void | Promise<void>;
    };
  }

  // A class instance, not a plain object: `use()` then takes its read-outs
  // (prometheus, snapshot, closePeer) for what they are, not for phases.
  return Object.assign(new ObserveMiddleware(), middleware);
}

/** The prototype of what `observe()` returns. */
class ObserveMiddleware {}

// ---- helpers ----

function positive(value: number, name: string, zeroAllowed: boolean): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < (zeroAllowed ? 0 : 1)) {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: ${name} must be an integer of at least ${zeroAllowed ? 0 : 1}, got ${describeValue(value)}`);
  }
  return value;
}

/** The adapter's connection under an app's peer (where the runtime's seams live). */
function connectionOf(peer: Peer<any>): object | undefined {
  const conn = (peer as { conn?: unknown }).conn;
  return typeof conn === "object" && conn !== null ? conn : peer;
}

function topicsOf(peer: Peer<any>): ReadonlySet<string> {
  try {
    return peer.topics ?? EMPTY_SET;
  } catch {
    return EMPTY_SET;
  }
}
const EMPTY_SET: ReadonlySet<string> = new Set();

/**
 * The route template of a path: each router parameter's segment put back
 * as `:name`, the rest of a `*` route as `*`.
 */
function routeOf(target: string, params: Readonly<Record<string, string>>): string {
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  const names = Object.keys(params);
  if (names.length === 0) return path;
  const segments = path.split("/");
  const rest = params["*"];
  if (rest !== undefined) {
    const drop = rest === "" ? 0 : rest.split("/").length;
    segments.length = Math.max(1, segments.length - drop);
    segments.push("*");
  }
  const done = new Set<number>();
  for (const name of names) {
    if (name === "*") continue;
    const value = params[name];
    for (let i = 1; i < segments.length; i++) {
      if (done.has(i)) continue;
      let decoded: string;
      try {
        decoded = decodeURIComponent(segments[i]!);
      } catch {
        decoded = segments[i]!;
      }
      if (decoded === value) {
        segments[i] = `:${name}`;
        done.add(i);
        break;
      }
    }
  }
  return segments.join("/");
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;

/** The parent context of a W3C `traceparent`, through the API module; `undefined` without either. */
function parentOf(api: ObserveOtelApi | undefined, header: string | null): unknown {
  if (api === undefined || header === null) return undefined;
  const m = TRACEPARENT.exec(header.trim().toLowerCase());
  if (m === null || m[1] === "ff" || /^0+$/.test(m[2]!) || /^0+$/.test(m[3]!)) return undefined;
  if (m[1] === "00" && header.trim().length !== 55) return undefined;
  return api.trace.setSpanContext(api.context.active() as never, { traceId: m[2]!, spanId: m[3]!, traceFlags: parseInt(m[4]!, 16) & 1, isRemote: true });
}

function labelKey(labels: Record<string, string>): string {
  let key = "";
  for (const name in labels) key += `${name}\u0000${labels[name]}\u0000`;
  return key;
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labelText(labels: Record<string, string>): string {
  const parts: string[] = [];
  for (const name in labels) parts.push(`${name}="${escapeLabel(labels[name]!)}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function histogram(out: string[], name: string, help: string, h: Histogram): void {
  out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} histogram`);
  for (const s of h.series.values()) {
    const base = { ...s.labels, runtime: RUNTIME };
    for (let i = 0; i < h.bounds.length; i++) out.push(`${name}_bucket${labelText({ ...base, le: String(h.bounds[i]) })} ${s.counts[i]}`);
    out.push(`${name}_bucket${labelText({ ...base, le: "+Inf" })} ${s.count}`);
    out.push(`${name}_sum${labelText(base)} ${formatValue(s.sum)}`);
    out.push(`${name}_count${labelText(base)} ${s.count}`);
  }
}
