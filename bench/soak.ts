/**
 * The soak test: thousands of connections opening and closing while messages
 * flow through a Duplex echo server, then a check that every message came
 * back exactly once, in order and intact on its connection, and that the
 * server's memory, sockets and timers return to where they were before the
 * load. Loopback only, bounded in time, not part of `npm test`.
 *
 *   npm run soak                                  # Node server, 60 s of load in 2 rounds
 *   SOAK_SECONDS=20 SOAK_RUNTIME=deno npm run soak
 *   SOAK_RUNTIME=bun SOAK_TRANSPORT=native npm run soak
 *
 * The server (`bench/servers/soak_server.ts`) runs in a child process on the
 * chosen runtime, on 127.0.0.1 and a port of the system's choice; it answers
 * `stats` requests on its stdin with its RSS, heap, open descriptors, active
 * resources, Duplex's live timers, `server.connections` and its hooks'
 * counts. The load runs here, on `ws` clients: up to `SOAK_CONNECTIONS` at
 * once, each sending a random number of numbered messages (text and binary,
 * 16 B to 64 KiB) with a few in flight and short pauses, then closing with
 * 1000 (half of them right after their last send, half once every echo is
 * back); a fraction
 * ends abruptly instead (`terminate()`: during the handshake, or with
 * messages in flight). Each one that ends makes room for a new one until
 * `SOAK_SECONDS` have passed. Every echo is checked on arrival against the
 * oldest message not yet echoed on its connection: same type, same bytes.
 *
 * The load runs in `SOAK_ROUNDS` rounds (2), each followed by: every
 * connection closed, the server back to 0 connections, a full garbage
 * collection, a settling pause, and the figures; then the checks (see
 * `bench/README.md`, "Soak"). It prints a table and a JSON line, writes
 * `bench/results/soak-<runtime>-<transport>.md`, and exits 1 when a check
 * fails (2 when it could not run, or ran past its global deadline).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { killedOnExit, Lines, processCpuSeconds } from "./_children.ts";
import { prng } from "../tests/_prng.ts";
import type { Stats } from "./servers/soak_server.ts";

// ---- configuration ----

function envNumber(name: string, fallback: number, check: (value: number) => boolean, expected: string): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || !check(value)) throw new RangeError(`Invalid ${name}: expected ${expected}, got ${raw}`);
  return value;
}

const positiveInteger = (v: number): boolean => Number.isInteger(v) && v > 0;
const SECONDS = envNumber("SOAK_SECONDS", 60, (v) => v > 0 && v <= 3600, "a number of seconds from 0 to 3600");
const CONNECTIONS = envNumber("SOAK_CONNECTIONS", 2000, (v) => positiveInteger(v) && v <= 8000, "an integer from 1 to 8000");
const MAX_MESSAGES = envNumber("SOAK_MESSAGES", 100, positiveInteger, "a positive integer");
const MAX_INFLIGHT = envNumber("SOAK_INFLIGHT", 4, positiveInteger, "a positive integer");
const ABRUPT = envNumber("SOAK_ABRUPT", 0.1, (v) => v >= 0 && v <= 1, "a fraction from 0 to 1");
const THINK_MS = envNumber("SOAK_THINK_MS", 50, (v) => v >= 0, "a number of ms >= 0");
const OPENING = envNumber("SOAK_OPENING", 128, positiveInteger, "a positive integer");
const RSS_TOLERANCE_MIB = envNumber("SOAK_RSS_TOLERANCE_MIB", 32, (v) => v >= 0, "a number of MiB");
const RSS_PER_CONNECTION_KIB = envNumber("SOAK_RSS_PER_CONNECTION_KIB", 32, (v) => v >= 0, "a number of KiB");
const RSS_GROWTH_MIB = envNumber("SOAK_RSS_GROWTH_MIB", 16, (v) => v >= 0, "a number of MiB");
const ROUNDS = envNumber("SOAK_ROUNDS", 2, (v) => positiveInteger(v) && v <= 100, "an integer from 1 to 100");
const HEAP_TOLERANCE_MIB = envNumber("SOAK_HEAP_TOLERANCE_MIB", 8, (v) => v >= 0, "a number of MiB");
const SEED = envNumber("SOAK_SEED", Math.floor(Math.random() * 2 ** 31), (v) => Number.isInteger(v) && v >= 0, "an integer >= 0");

type RuntimeName = "node" | "deno" | "bun";
const RUNTIME = (process.env.SOAK_RUNTIME || "node") as RuntimeName;
const TRANSPORT = process.env.SOAK_TRANSPORT || "raw";
if (!["node", "deno", "bun"].includes(RUNTIME)) throw new RangeError(`Invalid SOAK_RUNTIME: expected node, deno or bun, got ${RUNTIME}`);
if (!["raw", "native"].includes(TRANSPORT)) throw new RangeError(`Invalid SOAK_TRANSPORT: expected raw or native, got ${TRANSPORT}`);

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SERVER = `${ROOT}bench/servers/soak_server.ts`;
const RESULTS = `${ROOT}bench/results/`;
const HOST = "127.0.0.1";

const COMMANDS: Record<RuntimeName, string[]> = {
  node: [process.execPath, "--expose-gc", "--import", "tsx", SERVER],
  // --no-lock: never write a deno.lock into the repository.
  deno: [`${ROOT}node_modules/.bin/deno`, "run", "-A", "--no-lock", "--v8-flags=--expose-gc", SERVER],
  bun: [`${ROOT}node_modules/.bin/bun`, SERVER], // Bun.gc(true) needs no flag
};

/** How long the connections may take to finish once the load stops; past it, the ones left are reported as hung. */
const DRAIN_MS = 20_000;
/** The pause after the last connection closed, before the end figures (read after a full GC). */
const SETTLE_MS = envNumber("SOAK_SETTLE_MS", 2000, (v) => v >= 0, "a number of ms >= 0");
/**
 * How much longer to watch for descriptors, timers and RSS to come back,
 * when the first end figures miss: Duplex's close timeout is 5 s, and V8
 * shrinks a grown heap some seconds after the load, not at a GC.
 */
const SETTLE_MORE_MS = 20_000;
/** Past it the soak stops whatever it is doing: start, warm-up, load, drain, settle, with a margin. */
const DEADLINE_MS = SECONDS * 1000 + ROUNDS * (60_000 + SETTLE_MS) + 60_000;

// ---- the server process: killed on every exit path ----

let child: ChildProcess | undefined;

const children = killedOnExit("soak");

function killChild(): void {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}
setTimeout(() => {
  console.error(`soak: FAIL: still running after the global deadline (${DEADLINE_MS / 1000} s): stopping\n${stderrTail()}`);
  process.exit(2);
}, DEADLINE_MS).unref();

let serverStderr = "";
function stderrTail(): string {
  return serverStderr.trim() === "" ? "" : `server stderr (last 4 KiB):\n${serverStderr.trim()}`;
}

let stdout: Lines;
let statsQueue: Promise<unknown> = Promise.resolve();

/** Asks the server for its figures (after a full GC with `gc`), one request at a time. */
function serverStats(gc = false): Promise<Stats> {
  const request = statsQueue.then(async () => {
    child!.stdin!.write(gc ? "stats gc\n" : "stats\n");
    const match = await stdout.waitFor(/^stats (\{.*\})$/, 15_000, "the server's stats");
    return JSON.parse(match[1]!) as Stats;
  });
  statsQueue = request.catch(() => {});
  return request;
}

async function startServer(): Promise<number> {
  const command = COMMANDS[RUNTIME];
  if (!existsSync(command[0]!)) throw new Error(`${command[0]} not found: run npm install`);
  child = spawn(command[0]!, command.slice(1), {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", TRANSPORT },
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stdin!.on("error", () => {
    // The server exited: its exit is reported below.
  });
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (text: string) => {
    serverStderr = (serverStderr + text).slice(-4096);
  });
  children.add(child);
  child.once("exit", (code, signal) => {
    if (!finished) {
      console.error(`soak: FAIL: the server exited during the soak (code ${code}, signal ${signal})\n${stderrTail()}`);
      process.exit(2);
    }
  });
  stdout = new Lines(child.stdout!);
  const match = await stdout.waitFor(/^ready \S+ port=(\d+) pid=(\d+)/, 30_000, "the server to be ready");
  return Number(match[1]);
}

let finished = false;

// ---- messages ----

const random = prng(SEED);
const between = (min: number, max: number): number => min + Math.floor(random() * (max - min + 1));

/** Every byte value, for binary payloads (not valid UTF-8). */
const BYTES = Buffer.alloc(65536 + 256);
for (let i = 0; i < BYTES.length; i++) BYTES[i] = i & 255;
/** 21 bytes of UTF-8 with 2-, 3- and 4-byte characters; repeated whole, never cut inside a character. */
const UNIT = "soak é€ 😀 data ";
const UNIT_BYTES = Buffer.byteLength(UNIT);

/** A payload size: mostly small, some of a few KiB, a few up to 64 KiB. */
function messageSize(): number {
  const r = random();
  if (r < 0.6) return between(16, 128);
  if (r < 0.85) return between(129, 4096);
  if (r < 0.97) return between(4097, 16384);
  return between(16385, 65536);
}

/** Message `seq` of connection `id`: text (60 %) or binary, numbered at its start. */
function makeMessage(id: number, seq: number): string | Buffer {
  const size = messageSize();
  if (random() < 0.6) {
    const head = `${id}.${seq}|`;
    const room = Math.max(0, size - head.length);
    return head + UNIT.repeat(Math.floor(room / UNIT_BYTES)) + "x".repeat(room % UNIT_BYTES);
  }
  const data = Buffer.allocUnsafe(Math.max(8, size));
  data.writeUInt32BE(id, 0);
  data.writeUInt32BE(seq, 4);
  BYTES.copy(data, 8, seq & 255, (seq & 255) + data.length - 8);
  return data;
}

/** The connection and sequence number an echo carries, to tell a duplicate from a loss. */
function numberOf(data: Buffer, isBinary: boolean): { id: number; seq: number } | undefined {
  if (isBinary) return data.length >= 8 ? { id: data.readUInt32BE(0), seq: data.readUInt32BE(4) } : undefined;
  const match = data.subarray(0, 24).toString("latin1").match(/^(\d+)\.(\d+)\|/);
  return match ? { id: Number(match[1]), seq: Number(match[2]) } : undefined;
}

// ---- the load ----

/** How a connection ends: closed with 1000 once every echo is back, right after its last send, or terminated. */
type Ending = "clean" | "eager" | "abort-handshake" | "abort-midstream";

interface Totals {
  attempted: number;
  opened: number;
  finished: number;
  clean: number;
  eager: number;
  abortedHandshake: number;
  abortedMidstream: number;
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Sent on terminated connections and never echoed: not counted as lost. */
  unansweredOnAbort: number;
  open: number;
  peakOpen: number;
  errors: number;
}

const totals: Totals = {
  attempted: 0,
  opened: 0,
  finished: 0,
  clean: 0,
  eager: 0,
  abortedHandshake: 0,
  abortedMidstream: 0,
  messagesSent: 0,
  messagesReceived: 0,
  bytesSent: 0,
  bytesReceived: 0,
  unansweredOnAbort: 0,
  open: 0,
  peakOpen: 0,
  errors: 0,
};
const errorSamples: string[] = [];

function fail(conn: Connection | undefined, message: string): void {
  totals.errors++;
  if (errorSamples.length < 20) errorSamples.push(conn ? `connection ${conn.id} (${conn.ending}): ${message}` : message);
}

let port = 0;
let nextId = 1;
const live = new Set<Connection>();
/** How each connection ended, by id, to explain what the server still holds. */
const ended = new Map<number, string>();
/** During the warm-up: short plans, no pauses. */
let warmingUp = true;
/** The load is over: no new connection, no new message. */
let stopping = false;

/** What the load hears from a connection: its handshake is over (opened or failed), it has ended. */
interface ConnectionEvents {
  handshakeOver(conn: Connection): void;
  done(conn: Connection): void;
}

class Connection {
  readonly id = nextId++;
  readonly ending: Ending;
  /** Messages to send in all. */
  target: number;
  /** For `abort-midstream`: terminate right after this many sends. */
  readonly abortAfter: number;
  readonly inflight: number;
  readonly #ws: WebSocket;
  /** Sent and not yet echoed, oldest first. */
  readonly #pending: (string | Buffer)[] = [];
  #sent = 0;
  #received = 0;
  #opened = false;
  #closing = false;
  /** The pause before the next sends, while one is pending. */
  #pause: ReturnType<typeof setTimeout> | undefined;
  #terminated = false;
  readonly #events: ConnectionEvents;

  constructor(events: ConnectionEvents) {
    this.#events = events;
    const r = random();
    this.ending = r < ABRUPT * 0.2
      ? "abort-handshake"
      : r < ABRUPT
      ? "abort-midstream"
      : r < ABRUPT + (1 - ABRUPT) / 2
      ? "clean"
      : "eager";
    this.target = between(0, warmingUp ? 16 : MAX_MESSAGES);
    this.abortAfter = between(1, Math.max(1, this.target));
    if (this.ending === "abort-midstream") this.target = Math.max(this.target, this.abortAfter);
    this.inflight = between(1, MAX_INFLIGHT);
    totals.attempted++;
    this.#ws = new WebSocket(`ws://${HOST}:${port}/soak/${this.id}`, { perMessageDeflate: false, handshakeTimeout: 15_000 });
    this.#ws.on("open", () => this.#onOpen());
    this.#ws.on("message", (data: Buffer, isBinary: boolean) => this.#onMessage(data, isBinary));
    this.#ws.on("close", (code: number) => this.#onClose(code));
    this.#ws.on("error", (err: Error) => {
      if (!this.#terminated) fail(this, `error: ${err.message}`);
    });
    this.#ws.on("unexpected-response", (_req, res) => {
      fail(this, `handshake answered ${res.statusCode}`);
      this.#terminated = true;
      this.#ws.terminate();
    });
    if (this.ending === "abort-handshake") {
      // Within a few ms: sometimes before the 101 arrives, sometimes just after.
      setTimeout(() => this.#terminate(), between(0, 3));
    }
  }

  /** The load is over: no new message, close once the echoes are back. */
  stop(): void {
    if (this.#terminated || this.#closing) return;
    clearTimeout(this.#pause);
    this.#pause = undefined;
    this.target = this.#sent;
    if (this.#opened) this.#pump();
  }

  describe(): string {
    return `connection ${this.id} (${this.ending}): readyState ${this.#ws.readyState}, sent ${this.#sent}/${this.target}, echoed ${this.#received}, closing ${this.#closing}`;
  }

  #terminate(): void {
    if (this.#terminated) return;
    this.#terminated = true;
    clearTimeout(this.#pause);
    this.#ws.terminate();
  }

  #onOpen(): void {
    this.#opened = true;
    this.#events.handshakeOver(this);
    totals.opened++;
    totals.peakOpen = Math.max(totals.peakOpen, ++totals.open);
    if (this.ending === "abort-handshake") return this.#terminate();
    this.#pump();
  }

  /** Sends while there is room in flight, then closes when the plan says so. */
  #pump(): void {
    if (this.#terminated || this.#closing) return;
    const abortAt = this.ending === "abort-midstream" && !stopping ? this.abortAfter : Infinity;
    while (this.#sent < this.target && this.#pending.length < this.inflight) {
      const message = makeMessage(this.id, this.#sent);
      this.#pending.push(message);
      this.#sent++;
      totals.messagesSent++;
      totals.bytesSent += typeof message === "string" ? Buffer.byteLength(message) : message.length;
      this.#ws.send(message, { binary: typeof message !== "string" });
      if (this.#sent >= abortAt) return this.#terminate();
    }
    if (this.#sent < this.target) return;
    if (this.#pending.length === 0 || this.ending === "eager") {
      this.#closing = true;
      this.#ws.close(1000, "done");
    }
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (this.#terminated) return;
    const expected = this.#pending.shift();
    if (expected === undefined) {
      const n = numberOf(data, isBinary);
      fail(this, `unexpected echo ${n ? `${n.id}.${n.seq}` : "(unnumbered)"} with nothing in flight (a duplicate?)`);
      return;
    }
    const seq = this.#received++;
    const ok = typeof expected === "string" ? !isBinary && data.toString() === expected : isBinary && data.equals(expected);
    if (!ok) {
      const n = numberOf(data, isBinary);
      const what = n === undefined
        ? "an unnumbered echo"
        : n.id !== this.id
        ? `an echo of connection ${n.id}'s message ${n.seq}`
        : n.seq < seq
        ? `message ${n.seq} again (a duplicate)`
        : n.seq > seq
        ? `message ${n.seq} (a loss or a reordering)`
        : `message ${seq} with different content (${isBinary ? "binary" : "text"}, ${data.length} B)`;
      fail(this, `expected the echo of message ${seq} (${typeof expected === "string" ? "text" : "binary"}), got ${what}`);
    }
    totals.messagesReceived++;
    totals.bytesReceived += data.length;
    if (THINK_MS === 0 || warmingUp || stopping || this.#sent >= this.target) this.#pump();
    else {
      this.#pause ??= setTimeout(() => {
        this.#pause = undefined;
        this.#pump();
      }, between(0, 2 * THINK_MS));
    }
  }

  #onClose(code: number): void {
    clearTimeout(this.#pause);
    if (this.#opened) totals.open--;
    else this.#events.handshakeOver(this);
    totals.finished++;
    live.delete(this);
    if (this.#terminated) {
      if (this.ending === "abort-handshake") totals.abortedHandshake++;
      else if (this.ending === "abort-midstream") totals.abortedMidstream++;
      totals.unansweredOnAbort += this.#pending.length;
    } else {
      if (this.ending === "eager") totals.eager++;
      else totals.clean++;
      if (code !== 1000) fail(this, `closed with ${code}, expected 1000 (${this.describe()})`);
      else if (this.#pending.length > 0 || this.#received !== this.#sent) {
        fail(this, `closed with ${this.#pending.length} message(s) not echoed (${this.describe()})`);
      }
    }
    ended.set(this.id, `${this.describe()}, close code ${code}, ${this.#terminated ? "terminated" : "not terminated"}, opened ${this.#opened}`);
    this.#events.done(this);
  }
}

/**
 * Keeps up to `limit` connections alive, at most `OPENING` of them in their
 * handshake, while `more()` says so: each one that ends makes room for a new
 * one.
 */
function churn(limit: number, more: () => boolean): void {
  let opening = 0;
  const fill = (): void => {
    while (more() && live.size < limit && opening < OPENING) {
      opening++;
      live.add(new Connection(events));
    }
  };
  const events: ConnectionEvents = {
    handshakeOver() {
      opening--;
      setImmediate(fill);
    },
    done() {
      setImmediate(fill);
    },
  };
  fill();
}

/** Waits up to `ms` for every connection to end; reports the ones left as hung, and returns how many. */
async function waitEnded(ms: number, what: string): Promise<number> {
  const deadline = Date.now() + ms;
  while (live.size > 0 && Date.now() < deadline) await sleep(50);
  if (live.size > 0) {
    const left = [...live];
    fail(undefined, `${left.length} connection(s) still open ${ms / 1000} s after ${what} (a hang): ${left.slice(0, 5).map((c) => c.describe()).join("; ")}`);
  }
  return live.size;
}

// ---- figures ----

/** The server's figures that must come back to their baseline. */
interface Figures {
  connections: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  /** Open socket descriptors (the listener and the control pipes' kin included); `null` without `/proc`. */
  sockets: number | null;
  descriptors: number | null;
  /** The process's `Timeout` resources (Node, Deno); `null` on Bun. */
  timers: number | null;
  duplexTimers: number;
  /** `process.getActiveResourcesInfo()` by type (Node, Deno); `null` on Bun. */
  resources: Record<string, number> | null;
}

function figures(stats: Stats): Figures {
  const fds = stats.fds;
  return {
    connections: stats.connections,
    rss: stats.rss,
    heapUsed: stats.heapUsed,
    heapTotal: stats.heapTotal,
    external: stats.external,
    sockets: fds ? fds.socket ?? 0 : null,
    descriptors: fds ? Object.values(fds).reduce((a, b) => a + b, 0) : null,
    timers: stats.resources ? stats.resources.Timeout ?? 0 : null,
    duplexTimers: stats.duplexTimers,
    resources: stats.resources,
  };
}

/** The highest of each figure over the samples taken under load. */
function peakOf(samples: Figures[]): Figures {
  const max = (pick: (f: Figures) => number | null): number | null => {
    const values = samples.map(pick).filter((v): v is number => v !== null);
    return values.length === 0 ? null : Math.max(...values);
  };
  const resources: Record<string, number> = {};
  for (const sample of samples) {
    for (const [type, count] of Object.entries(sample.resources ?? {})) resources[type] = Math.max(resources[type] ?? 0, count);
  }
  return {
    connections: max((f) => f.connections) ?? 0,
    rss: max((f) => f.rss) ?? 0,
    heapUsed: max((f) => f.heapUsed) ?? 0,
    heapTotal: max((f) => f.heapTotal) ?? 0,
    external: max((f) => f.external) ?? 0,
    sockets: max((f) => f.sockets),
    descriptors: max((f) => f.descriptors),
    timers: max((f) => f.timers),
    duplexTimers: max((f) => f.duplexTimers) ?? 0,
    resources: samples.some((s) => s.resources !== null) ? resources : null,
  };
}

/** Resource types whose count ended above the baseline, as `type baseline→end`. */
function resourcesAbove(base: Figures, end: Figures): string[] {
  if (!base.resources || !end.resources) return [];
  return Object.entries(end.resources)
    .filter(([type, count]) => count > (base.resources![type] ?? 0))
    .map(([type, count]) => `${type} ${base.resources![type] ?? 0}→${count}`);
}

/**
 * How far above the baseline the RSS may end: a fixed part, and a part per
 * connection of the peak, which the allocator and V8 may keep (see the README).
 */
function rssTolerance(peakConnections: number): number {
  return RSS_TOLERANCE_MIB * MiB + RSS_PER_CONNECTION_KIB * 1024 * peakConnections;
}

/** Whether descriptors and timers are back where they were. */
function settled(base: Figures, end: Figures): boolean {
  return end.connections === 0 &&
    (end.sockets ?? 0) <= (base.sockets ?? 0) &&
    (end.descriptors ?? 0) <= (base.descriptors ?? 0) &&
    (end.timers ?? 0) <= (base.timers ?? 0) &&
    end.duplexTimers <= base.duplexTimers &&
    resourcesAbove(base, end).length === 0;
}

const MiB = 1024 * 1024;
const fmtMiB = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;
const fmtInt = (n: number): string => Math.round(n).toLocaleString("en-US");
const fmtOpt = (n: number | null): string => (n === null ? "n/a" : fmtInt(n));
const fmtResources = (r: Record<string, number> | null): string =>
  r === null ? "n/a" : Object.entries(r).sort(([a], [b]) => a.localeCompare(b)).map(([t, n]) => `${t} ${n}`).join(", ") || "none";

// ---- the run ----

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

async function waitForServerConnections(ms: number): Promise<Stats> {
  const deadline = Date.now() + ms;
  for (;;) {
    const stats = await serverStats();
    if (stats.connections === 0 || Date.now() >= deadline) return stats;
    await sleep(200);
  }
}

/** One round of load, and its aftermath. */
interface Round {
  samples: Figures[];
  loadSeconds: number;
  drainSeconds: number;
  settleSeconds: number;
  /** CPU seconds, user + system, during the load; the server's `null` without `/proc`. */
  serverCpu: number | null;
  clientCpu: number;
  hung: number;
  /** `server.connections` once every client connection had ended. */
  closedConnections: number;
  end: Figures;
  endStats: Stats;
}

/**
 * `SECONDS / ROUNDS` of churn, then: stop, wait for every connection to end
 * and for the server to count none, a full GC, and the figures once they
 * are back at the baseline (or `SETTLE_MS + SETTLE_MORE_MS` have passed).
 */
async function round(index: number, baseline: Figures): Promise<Round> {
  const seconds = SECONDS / ROUNDS;
  const samples: Figures[] = [];
  const loadStart = Date.now();
  const cpuStart = process.cpuUsage();
  const serverCpuStart = serverCpuSeconds();
  stopping = false;
  churn(CONNECTIONS, () => !stopping);
  const every = Math.min(5000, Math.max(1000, (seconds * 1000) / 6));
  const tag = ROUNDS > 1 ? `round ${index}, ` : "";
  for (let next = loadStart + every; next < loadStart + seconds * 1000; next += every) {
    await sleep(next - Date.now());
    const sample = figures(await serverStats());
    samples.push(sample);
    console.log(
      `soak: ${tag}${((Date.now() - loadStart) / 1000).toFixed(0)} s: ${fmtInt(totals.open)} open (server ${fmtInt(sample.connections)}), ` +
        `${fmtInt(totals.opened)} opened, ${fmtInt(totals.messagesReceived)} echoes, ${totals.errors} error(s), server RSS ${fmtMiB(sample.rss)}`,
    );
  }
  await sleep(loadStart + seconds * 1000 - Date.now());
  samples.push(figures(await serverStats()));
  stopping = true;
  const loadSeconds = (Date.now() - loadStart) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const serverCpuEnd = serverCpuSeconds();
  for (const conn of live) conn.stop();
  const hung = await waitEnded(DRAIN_MS, "the load stopped");
  const drainSeconds = (Date.now() - loadStart) / 1000 - loadSeconds;

  const closed = await waitForServerConnections(10_000);
  const settleStart = Date.now();
  await sleep(SETTLE_MS);
  let endStats = await serverStats(true);
  const peakConnections = Math.max(totals.peakOpen, ...samples.map((f) => f.connections));
  const rssLimit = baseline.rss + rssTolerance(peakConnections);
  if (!settled(baseline, figures(endStats)) || endStats.rss > rssLimit) {
    // V8 gives grown heap space back some seconds after the load (its memory reducer), not at a GC.
    while (Date.now() - settleStart < SETTLE_MS + SETTLE_MORE_MS) {
      await sleep(1000);
      const stats = await serverStats();
      if (settled(baseline, figures(stats)) && stats.rss <= rssLimit) break;
    }
    endStats = await serverStats(true);
  }
  const end = figures(endStats);
  console.log(
    `soak: ${tag}stopped; every connection closed ${drainSeconds.toFixed(1)} s later; server RSS ${fmtMiB(end.rss)}, heap ${fmtMiB(end.heapUsed)}, ` +
      `${fmtOpt(end.sockets)} sockets, ${fmtOpt(end.timers)} timers (Duplex ${end.duplexTimers})`,
  );
  return {
    samples,
    loadSeconds,
    drainSeconds,
    settleSeconds: (Date.now() - settleStart) / 1000,
    serverCpu: serverCpuStart === null || serverCpuEnd === null ? null : serverCpuEnd - serverCpuStart,
    clientCpu: (cpu.user + cpu.system) / 1e6,
    hung,
    closedConnections: closed.connections,
    end,
    endStats,
  };
}

async function main(): Promise<void> {
  const began = Date.now();
  console.log(
    `soak: ${RUNTIME} server (${TRANSPORT}), ${SECONDS} s in ${ROUNDS} round(s), up to ${fmtInt(CONNECTIONS)} connections, ` +
      `0–${MAX_MESSAGES} messages each, 1–${MAX_INFLIGHT} in flight, pauses of 0–${2 * THINK_MS} ms, ${Math.round(ABRUPT * 100)} % terminated, seed ${SEED}`,
  );
  port = await startServer();
  const initial = await serverStats(true);

  // Warm-up: a few connections of every kind, so that lazy set-up is in the baseline.
  const warmErrors = totals.errors;
  churn(25, () => totals.attempted < 60);
  await waitEnded(20_000, "the warm-up");
  await waitForServerConnections(10_000);
  await sleep(1000);
  const baselineStats = await serverStats(true);
  const baseline = figures(baselineStats);
  for (const key of Object.keys(totals) as (keyof Totals)[]) if (key !== "errors") totals[key] = 0;
  warmingUp = false;
  console.log(`soak: warm-up done (${warmErrors === totals.errors ? "no errors" : `${totals.errors} error(s)`}); baseline RSS ${fmtMiB(baseline.rss)}, heap ${fmtMiB(baseline.heapUsed)}`);

  // The load, in rounds: each one ends with every connection closed and the figures back at the baseline.
  const rounds: Round[] = [];
  for (let r = 1; r <= ROUNDS; r++) rounds.push(await round(r, baseline));
  finished = true;
  const last = rounds[rounds.length - 1]!;
  const end = last.end;
  const endStats = last.endStats;
  const samples = rounds.flatMap((x) => x.samples);
  const peak = peakOf(samples);
  const loadSeconds = rounds.reduce((sum, x) => sum + x.loadSeconds, 0);
  const drainSeconds = Math.max(...rounds.map((x) => x.drainSeconds));
  const settleSeconds = Math.max(...rounds.map((x) => x.settleSeconds));
  const serverCpu = rounds.some((x) => x.serverCpu === null) ? null : rounds.reduce((sum, x) => sum + x.serverCpu!, 0) / loadSeconds;
  const clientCpu = rounds.reduce((sum, x) => sum + x.clientCpu, 0) / loadSeconds;
  const hung = rounds.reduce((sum, x) => sum + x.hung, 0);

  const checks: Check[] = [];
  const check = (name: string, ok: boolean, detail: string): void => void checks.push({ name, ok, detail });
  const each = (values: (number | null)[]): string => values.map((v) => fmtOpt(v)).join(", ");
  check("every echo exactly once, in order, intact; clean closes with every echo", totals.errors === 0, `${totals.errors} error(s)`);
  check("every connection ended", hung === 0, hung === 0 ? `each round within ${drainSeconds.toFixed(1)} s of its stop` : `${hung} hung`);
  check(
    "server back to 0 connections after each round",
    rounds.every((x) => x.end.connections === 0),
    `${each(rounds.map((x) => x.closedConnections))} when the clients were done, ${each(rounds.map((x) => x.end.connections))} at the end`,
  );
  check(
    "a close hook for every open hook",
    endStats.opens === endStats.closes,
    `${fmtInt(endStats.opens)} opens, ${fmtInt(endStats.closes)} closes` +
      endStats.unclosed.map((line) => `; unclosed on the server: ${line}; client: ${ended.get(Number(line.match(/^\/soak\/(\d+)/)?.[1])) ?? "unknown"}`).join(""),
  );
  const serverMessages = endStats.messages - baselineStats.messages;
  check(
    "server received every echoed message, and no more than was sent",
    serverMessages >= totals.messagesReceived && serverMessages <= totals.messagesSent,
    `${fmtInt(serverMessages)} received; ${fmtInt(totals.messagesReceived)} echoed, ${fmtInt(totals.messagesSent)} sent`,
  );
  const back = (name: string, pick: (f: Figures) => number | null): void => {
    const base = pick(baseline);
    const ends = rounds.map((x) => pick(x.end));
    if (base === null || ends.includes(null)) check(name, true, "n/a on this runtime");
    else check(`${name} after each round`, ends.every((v) => v! <= base), `baseline ${base}, end ${each(ends)}`);
  };
  back("sockets back to baseline", (f) => f.sockets);
  back("descriptors back to baseline", (f) => f.descriptors);
  back("process timers back to baseline", (f) => f.timers);
  back("Duplex timers back to baseline", (f) => f.duplexTimers);
  const above = rounds.flatMap((x) => resourcesAbove(baseline, x.end));
  check(
    "active resources back to baseline after each round",
    above.length === 0,
    end.resources === null ? "n/a on this runtime" : above.join(", ") || fmtResources(end.resources),
  );
  const peakConnections = Math.max(totals.peakOpen, peak.connections);
  const rssAllowed = rssTolerance(peakConnections);
  const signed = (bytes: number): string => `${bytes >= 0 ? "+" : "−"}${fmtMiB(Math.abs(bytes))}`;
  check(
    `RSS within baseline + ${RSS_TOLERANCE_MIB} MiB + ${RSS_PER_CONNECTION_KIB} KiB × ${fmtInt(peakConnections)} peak connections (${fmtMiB(rssAllowed)})`,
    end.rss <= baseline.rss + rssAllowed,
    `baseline ${fmtMiB(baseline.rss)}, peak ${fmtMiB(peak.rss)}, end ${fmtMiB(end.rss)} (${signed(end.rss - baseline.rss)})`,
  );
  if (rounds.length > 1) {
    const first = rounds[0]!.end.rss;
    check(
      `RSS flat from the first round's end to the last (within ${RSS_GROWTH_MIB} MiB)`,
      end.rss <= first + RSS_GROWTH_MIB * MiB,
      `${rounds.map((x) => fmtMiB(x.end.rss)).join(", ")} (${signed(end.rss - first)})`,
    );
  }
  check(
    `heap used within baseline + ${HEAP_TOLERANCE_MIB} MiB`,
    end.heapUsed <= baseline.heapUsed + HEAP_TOLERANCE_MIB * MiB,
    `baseline ${fmtMiB(baseline.heapUsed)}, peak ${fmtMiB(peak.heapUsed)}, end ${rounds.map((x) => fmtMiB(x.end.heapUsed)).join(", ")} (${signed(end.heapUsed - baseline.heapUsed)})`,
  );
  const ok = checks.every((c) => c.ok);

  // Report.
  const rate = (n: number): string => `${fmtInt(n / loadSeconds)}/s`;
  const mbps = (n: number): string => `${(n / loadSeconds / 1e6).toFixed(1)} MB/s`;
  const load = [
    `| load (${loadSeconds.toFixed(1)} s in ${rounds.length} round${rounds.length > 1 ? "s" : ""}; every connection closed within ${drainSeconds.toFixed(1)} s of a stop) | |`,
    `|---|--:|`,
    `| connections opened (attempted) | ${fmtInt(totals.opened)} (${fmtInt(totals.attempted)}) |`,
    `| peak concurrent: client / server sample | ${fmtInt(totals.peakOpen)} / ${fmtInt(peak.connections)} |`,
    `| ended: closed 1000 after every echo / right after the last send | ${fmtInt(totals.clean)} / ${fmtInt(totals.eager)} |`,
    `| ended: terminated in the handshake / with messages in flight | ${fmtInt(totals.abortedHandshake)} / ${fmtInt(totals.abortedMidstream)} |`,
    `| messages sent / echoed | ${fmtInt(totals.messagesSent)} / ${fmtInt(totals.messagesReceived)} |`,
    `| messages/s sent / echoed | ${rate(totals.messagesSent)} / ${rate(totals.messagesReceived)} |`,
    `| payload bytes sent / echoed | ${fmtMiB(totals.bytesSent)} / ${fmtMiB(totals.bytesReceived)} |`,
    `| payload MB/s sent / echoed | ${mbps(totals.bytesSent)} / ${mbps(totals.bytesReceived)} |`,
    `| sent on terminated connections, never echoed | ${fmtInt(totals.unansweredOnAbort)} |`,
    `| server: messages received, close codes | ${fmtInt(serverMessages)}, ${fmtResources(endStats.closeCodes)} (since the start) |`,
    `| CPU per second of load: server / client (this process) | ${serverCpu === null ? "n/a" : serverCpu.toFixed(2)} / ${clientCpu.toFixed(2)} |`,
    `| errors | ${fmtInt(totals.errors)} |`,
  ];
  const start = figures(initial);
  const columns = [start, baseline, peak, ...rounds.map((x) => x.end)];
  const row = (label: string, show: (f: Figures) => string): string => `| ${label} | ${columns.map(show).join(" | ")} |`;
  const endHeads = rounds.map((x, i) => `end${rounds.length > 1 ? ` of round ${i + 1}` : ""} (+${x.settleSeconds.toFixed(1)} s)`);
  const server = [
    `| server (${RUNTIME}, ${TRANSPORT}) | start | baseline | peak | ${endHeads.join(" | ")} |`,
    `|---|${columns.map(() => "--:").join("|")}|`,
    row("RSS", (f) => fmtMiB(f.rss)),
    row("heap used", (f) => fmtMiB(f.heapUsed)),
    row("heap total", (f) => fmtMiB(f.heapTotal)),
    row("external", (f) => fmtMiB(f.external)),
    row("connections", (f) => fmtInt(f.connections)),
    row("socket descriptors", (f) => fmtOpt(f.sockets)),
    row("all descriptors", (f) => fmtOpt(f.descriptors)),
    row("timers (process)", (f) => fmtOpt(f.timers)),
    row("timers (Duplex)", (f) => fmtInt(f.duplexTimers)),
    row("active resources", (f) => fmtResources(f.resources)),
  ];
  const verdict = checks.map((c) => `- ${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
  const errors = errorSamples.length === 0 ? [] : [``, `First errors:`, ...errorSamples.map((e) => `- ${e}`)];
  const stderr = stderrTail();
  console.log(["", ...load, "", ...server, "", ...verdict, ...errors].join("\n"));
  if (stderr !== "") console.log(`\n${stderr}`);

  const json = {
    ok,
    runtime: RUNTIME,
    transport: TRANSPORT,
    seed: SEED,
    seconds: Number(loadSeconds.toFixed(2)),
    drain_seconds: Number(drainSeconds.toFixed(2)),
    settle_seconds: Number(settleSeconds.toFixed(2)),
    connections_limit: CONNECTIONS,
    ...totals,
    msgs_per_s: Math.round(totals.messagesReceived / loadSeconds),
    server_cpu: serverCpu === null ? null : Number(serverCpu.toFixed(3)),
    client_cpu: Number(clientCpu.toFixed(3)),
    rss_tolerance: rssAllowed,
    rss_samples: samples.map((f) => f.rss),
    rounds: rounds.map((x) => ({ end: x.end, seconds: Number(x.loadSeconds.toFixed(2)) })),
    server_messages: serverMessages,
    server_close_codes: endStats.closeCodes,
    start,
    baseline,
    peak,
    end,
    checks: checks.map(({ name, ok }) => ({ name, ok })),
    error_samples: errorSamples,
  };
  console.log(JSON.stringify(json));

  const report = [
    `# Soak: Duplex on ${RUNTIME} (${TRANSPORT})`,
    ``,
    `${new Date(began).toISOString()}; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "unknown"}); client: Node ${process.version}, ws ${wsVersion()}; ` +
    `up to ${fmtInt(CONNECTIONS)} connections, 0–${MAX_MESSAGES} messages each, 1–${MAX_INFLIGHT} in flight, ` +
    `pauses of 0–${2 * THINK_MS} ms, ${Math.round(ABRUPT * 100)} % terminated, seed ${SEED}.`,
    ``,
    ...load,
    ``,
    ...server,
    ``,
    `Peak: the highest value over ${samples.length} samples taken under load, without a GC. Baseline and end: after a full GC. ` +
    `RSS under load: ${samples.map((f) => fmtMiB(f.rss)).join(", ")}.`,
    ``,
    `## Checks: ${ok ? "all passed" : "FAILED"}`,
    ``,
    ...verdict,
    ...errors,
    ...(stderr === "" ? [] : [``, "```", stderr, "```"]),
    ``,
    "```json",
    JSON.stringify(json),
    "```",
    ``,
  ].join("\n");
  mkdirSync(RESULTS, { recursive: true });
  const file = `soak-${RUNTIME}-${TRANSPORT}.md`;
  writeFileSync(`${RESULTS}${file}`, report);
  console.log(`\nsoak: ${ok ? "ok" : "FAIL"}; written to bench/results/${file} (${((Date.now() - began) / 1000).toFixed(0)} s)`);

  child!.stdin!.end();
  const exited = new Promise<void>((resolve) => child!.once("exit", () => resolve()));
  await Promise.race([exited, sleep(3000)]);
  killChild();
  process.exit(ok ? 0 : 1);
}

/** The server's CPU time (user + system) in seconds; `null` without `/proc`. */
function serverCpuSeconds(): number | null {
  try {
    return processCpuSeconds(child!.pid!);
  } catch {
    return null;
  }
}

function wsVersion(): string {
  try {
    return (JSON.parse(readFileSync(`${ROOT}node_modules/ws/package.json`, "utf8")) as { version?: string }).version ?? "?";
  } catch {
    return "?";
  }
}

main().catch((err) => {
  console.error(`soak: ${(err as Error).stack ?? err}\n${stderrTail()}`);
  killChild();
  process.exit(2);
});
