/**
 * The benchmark (echo, memory per idle connection, pub/sub fan-out, and
 * echo through Hono), on Node, Deno and Bun in one run, driven by the C load
 * generator in `bench/loadgen.c`. On each runtime, Duplex is compared with
 * that runtime's reference server: `ws` on Node; `Deno.serve` +
 * `Deno.upgradeWebSocket` on Deno; `Bun.serve` on Bun (on Deno and Bun, both
 * Duplex's raw and native transports); and, in the `hono` part, Duplex as
 * Hono's `upgradeWebSocket` (`@duplex/ws/hono`) with Hono's own helper on
 * the same runtime; and, in the `deflate` part, permessage-deflate on Node:
 * a JSON chat echo through `ws` clients (`bench/deflate_load.ts`), Duplex
 * and `ws` with and without compression, messages/s and bytes on the wire;
 * the `reliable` and `contract` parts run `bench/reliable.ts` and
 * `bench/contract.ts` (validated calls against a bare echo) on their own.
 * See `bench/README.md`.
 *
 *   npm run bench
 *   BENCH_REPS=1 BENCH_SECONDS=2 npm run bench   # quick check
 *   BENCH_RUNTIMES=deno,bun npm run bench         # some runtimes only
 *   BENCH_ONLY=fanout npm run bench               # some parts only
 *   BENCH_ONLY=hono npm run bench                 # Duplex via Hono against Hono's helpers
 *   BENCH_ONLY=deflate npm run bench              # permessage-deflate: JSON chat, Duplex and ws, on Node
 *   BENCH_ONLY=reliable npm run bench             # recoverable against plain topics, reconnect storm (bench/reliable.ts)
 *   BENCH_ONLY=contract npm run bench             # validated calls against a bare echo (bench/contract.ts)
 *   BENCH_ONLY=observe npm run bench              # metrics on (observe()) against off, 32 B echo on Node
 *   BENCH_LOAD=burst npm run bench                # the echo part in one load mode only (frame, burst)
 *   BENCH_CELLS="64 KiB text,64 KiB binary" npm run bench  # some echo cells only
 *
 * For each workload (payload size × text/binary × load mode: "1 frame/write",
 * the generator's closed loop that answers every read, and "burst",
 * `loadgen -B`, a pipelining client that writes all the frames that may go
 * in one write() and reads in large chunks) and each repetition, it
 * starts each server afresh pinned to CPU 0, runs the generator pinned to
 * CPU 1 (warm-up, then measure), and stops the server; then it measures the
 * memory each server needs per idle connection; then, for each fan-out
 * workload (messages in flight), one publisher and 1,000 subscribers on
 * each fan-out server; then the echo workloads again on the Hono servers
 * (Duplex via Hono and Hono's helper on each runtime, interleaved the same
 * way); then the chat workload on the deflate servers (Duplex and `ws`,
 * compression off, on for every message, on with the default threshold).
 * It prints a markdown report of the medians and of the ratios
 * Duplex / reference, per runtime, and writes it to
 * `bench/results/latest.md`.
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { type AddressInfo, connect, createServer } from "node:net";
import os from "node:os";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { killedOnExit, Lines } from "./_children.ts";

// ---- configuration ----

function envNumber(name: string, fallback: number, integer: boolean): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new RangeError(`Invalid ${name}: expected a positive ${integer ? "integer" : "number"}, got ${raw}`);
  }
  return value;
}

const REPS = envNumber("BENCH_REPS", 3, true);
const SECONDS = envNumber("BENCH_SECONDS", 3, false);
const WARMUP = envNumber("BENCH_WARMUP", 1, false);
const CONNECTIONS = envNumber("BENCH_CONNECTIONS", 64, true);
const INFLIGHT = envNumber("BENCH_INFLIGHT", 16, true);
const IDLE_CONNECTIONS = envNumber("BENCH_IDLE_CONNECTIONS", 10000, true);
const FANOUT_SUBSCRIBERS = envNumber("BENCH_FANOUT_SUBSCRIBERS", 1000, true);
const FANOUT_SIZE = envNumber("BENCH_FANOUT_SIZE", 64, true);
if (FANOUT_SIZE < 16) throw new RangeError(`Invalid BENCH_FANOUT_SIZE: at least 16 (the message number), got ${FANOUT_SIZE}`);
const FANOUT_INFLIGHT = envList("BENCH_FANOUT_INFLIGHT", [1, 16]);
const DEFLATE_CONNECTIONS = envNumber("BENCH_DEFLATE_CONNECTIONS", 50, true);
const DEFLATE_INFLIGHT = envNumber("BENCH_DEFLATE_INFLIGHT", 8, true);

/** A comma-separated list of positive integers. */
function envList(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const values = raw.split(",").map((v) => v.trim()).filter((v) => v !== "").map(Number);
  if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v <= 0)) {
    throw new RangeError(`Invalid ${name}: expected positive integers separated by commas, got ${raw}`);
  }
  return values;
}

/**
 * The parts of the benchmark: echo throughput and latency, memory per idle
 * connection, pub/sub fan-out, the echo through Hono (Duplex via Hono
 * against Hono's helper), and permessage-deflate (a JSON chat echo, with
 * and without compression, on Node).
 */
type Part = "echo" | "memory" | "fanout" | "hono" | "deflate" | "reliable" | "contract" | "observe";
const PARTS: readonly Part[] = ["echo", "memory", "fanout", "hono", "deflate", "reliable", "contract", "observe"];

function selectParts(): Set<Part> {
  const raw = process.env.BENCH_ONLY;
  if (raw === undefined || raw.trim() === "") return new Set(PARTS);
  const wanted = raw.split(",").map((part) => part.trim().toLowerCase()).filter((part) => part !== "");
  if (wanted.length === 0) throw new RangeError(`Invalid BENCH_ONLY: no part in "${raw}"`);
  for (const part of wanted) {
    if (!(PARTS as readonly string[]).includes(part)) {
      throw new RangeError(`Invalid BENCH_ONLY: unknown part "${part}" (expected echo, memory, fanout, hono, deflate, reliable, contract and/or observe)`);
    }
  }
  return new Set(wanted as Part[]);
}

const ONLY = selectParts();

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BENCH = `${ROOT}bench/`;
const LOADGEN = `${BENCH}.build/loadgen`;
const RESULTS = `${BENCH}results/`;
const HOST = "127.0.0.1";

type RuntimeName = "node" | "deno" | "bun";

interface RuntimeSpec {
  name: RuntimeName;
  title: string;
  /** The executable (checked before anything runs). */
  binary: string;
  /** The command that runs a server file; `exposeGc` for the memory measurement. */
  command(file: string, exposeGc: boolean): string[];
  /** A line for the report: versions of the runtime and of the reference server. */
  version(): string;
}

const DENO = `${ROOT}node_modules/.bin/deno`;
const BUN = `${ROOT}node_modules/.bin/bun`;

const RUNTIMES: RuntimeSpec[] = [
  {
    name: "node",
    title: "Node",
    binary: process.execPath,
    // Duplex's modules come from dist/ (the compiled package, as npm ships
    // it), the server files through tsx: see bench/_dist_hooks.mjs.
    command: (file, exposeGc) => [
      process.execPath,
      ...(exposeGc ? ["--expose-gc"] : []),
      "--import",
      "tsx",
      "--import",
      `${BENCH}_dist_hooks.mjs`,
      file,
    ],
    version: () =>
      `Node ${process.version}; ws ${packageVersion("node_modules/ws/package.json")} (without, and "+ addons" with, ` +
        `bufferutil ${packageVersion("node_modules/bufferutil/package.json")} / ` +
        `utf-8-validate ${packageVersion("node_modules/utf-8-validate/package.json")})`,
  },
  {
    name: "deno",
    title: "Deno",
    binary: DENO,
    // --no-lock: never write a deno.lock into the repository.
    command: (file, exposeGc) => [DENO, "run", "-A", "--no-lock", ...(exposeGc ? ["--v8-flags=--expose-gc"] : []), file],
    version: () => {
      const lines = sh(DENO, ["--version"]).split("\n");
      const v8 = lines.find((l) => l.startsWith("v8 "))?.slice(3).trim();
      return `Deno ${lines[0]?.match(/^deno (\S+)/)?.[1] ?? "?"}${v8 ? ` (V8 ${v8})` : ""}`;
    },
  },
  {
    name: "bun",
    title: "Bun",
    binary: BUN,
    command: (file) => [BUN, file], // Bun.gc(true) needs no flag
    version: () => `Bun ${sh(BUN, ["--version"]) || "?"}`,
  },
];

/** Duplex's server on the raw transport, Duplex's on the runtime's own server, or the reference. */
/**
 * Duplex's server on the raw transport, Duplex's on the runtime's own
 * server, the reference, or a second reference (Duplex is compared with it
 * too: `ws` with its native addons).
 */
type Role = "duplex" | "native" | "peer" | "ref";

interface ServerSpec {
  runtime: RuntimeSpec;
  /** Unique within its runtime. */
  name: string;
  role: Role;
  file: string;
  env?: Record<string, string>;
  /** The upgrade request's target, for the generator (`loadgen -u`); its default, `/bench`, when unset. */
  path?: string;
  /**
   * An `App` row (`PIPELINE=app`): the name of the bare-hooks row of the same
   * runtime and transport, which the echo report compares it with too.
   */
  bare?: string;
  /**
   * Fan-out through a Redis backplane: two processes of `file` with
   * `REDIS_URL` on a redis-server of the run's own, the subscribers on one,
   * the publisher on the other. `inProcess` names the same server's row in
   * one process, the row it is compared with.
   */
  redis?: { inProcess: string };
}

function selectRuntimes(): RuntimeSpec[] {
  const raw = process.env.BENCH_RUNTIMES;
  if (raw === undefined || raw.trim() === "") return RUNTIMES;
  const wanted = new Set(raw.split(",").map((name) => name.trim().toLowerCase()).filter((name) => name !== ""));
  if (wanted.size === 0) throw new RangeError(`Invalid BENCH_RUNTIMES: no runtime in "${raw}"`);
  for (const name of wanted) {
    if (!RUNTIMES.some((r) => r.name === name)) {
      throw new RangeError(`Invalid BENCH_RUNTIMES: unknown runtime "${name}" (expected node, deno and/or bun)`);
    }
  }
  return RUNTIMES.filter((r) => wanted.has(r.name));
}

const SELECTED = selectRuntimes();
const runtimeOf = (name: RuntimeName): RuntimeSpec => RUNTIMES.find((r) => r.name === name)!;

const ALL_SERVERS: ServerSpec[] = [
  { runtime: runtimeOf("node"), name: "Duplex", role: "duplex", file: "bench/servers/duplex.ts" },
  { runtime: runtimeOf("node"), name: "Duplex App", role: "duplex", file: "bench/servers/duplex.ts", env: { PIPELINE: "app" }, bare: "Duplex" },
  // textAs: "bytes", echoed with { binary: false }: text passed through as ws passes it (a Buffer).
  { runtime: runtimeOf("node"), name: "Duplex bytes", role: "duplex", file: "bench/servers/duplex.ts", env: { TEXT_AS: "bytes" } },
  {
    runtime: runtimeOf("node"),
    name: "ws",
    role: "peer",
    file: "bench/servers/ws_node.ts",
    env: { WS_NO_BUFFER_UTIL: "1", WS_NO_UTF_8_VALIDATE: "1" },
  },
  { runtime: runtimeOf("node"), name: "ws + addons", role: "ref", file: "bench/servers/ws_node.ts" },
  {
    runtime: runtimeOf("deno"),
    name: "Duplex raw",
    role: "duplex",
    file: "bench/servers/duplex.ts",
    env: { TRANSPORT: "raw" },
  },
  {
    runtime: runtimeOf("deno"),
    name: "Duplex native",
    role: "native",
    file: "bench/servers/duplex.ts",
    env: { TRANSPORT: "native" },
  },
  {
    runtime: runtimeOf("deno"),
    name: "Duplex App raw",
    role: "duplex",
    file: "bench/servers/duplex.ts",
    env: { TRANSPORT: "raw", PIPELINE: "app" },
    bare: "Duplex raw",
  },
  {
    runtime: runtimeOf("deno"),
    name: "Duplex App native",
    role: "native",
    file: "bench/servers/duplex.ts",
    env: { TRANSPORT: "native", PIPELINE: "app" },
    bare: "Duplex native",
  },
  { runtime: runtimeOf("deno"), name: "Deno.serve", role: "peer", file: "bench/servers/deno_serve.ts" },
  // Deno's idle timeout on, as Duplex's native path sets it (its idleTimeoutMs, 120 s): what pinging idle peers costs Deno.
  {
    runtime: runtimeOf("deno"),
    name: "Deno.serve idle",
    role: "ref",
    file: "bench/servers/deno_serve.ts",
    env: { IDLE_TIMEOUT: "120" },
  },
  {
    runtime: runtimeOf("bun"),
    name: "Duplex raw",
    role: "duplex",
    file: "bench/servers/duplex.ts",
    env: { TRANSPORT: "raw" },
  },
  {
    runtime: runtimeOf("bun"),
    name: "Duplex native",
    role: "native",
    file: "bench/servers/duplex.ts",
    env: { TRANSPORT: "native" },
  },
  {
    runtime: runtimeOf("bun"),
    name: "Duplex App raw",
    role: "duplex",
    file: "bench/servers/duplex.ts",
    env: { TRANSPORT: "raw", PIPELINE: "app" },
    bare: "Duplex raw",
  },
  {
    runtime: runtimeOf("bun"),
    name: "Duplex App native",
    role: "native",
    file: "bench/servers/duplex.ts",
    env: { TRANSPORT: "native", PIPELINE: "app" },
    bare: "Duplex native",
  },
  { runtime: runtimeOf("bun"), name: "Bun.serve", role: "peer", file: "bench/servers/bun_serve.ts" },
];

const SERVERS = ALL_SERVERS.filter((s) => SELECTED.includes(s.runtime));
const serversOf = (runtime: RuntimeSpec, list: ServerSpec[] = SERVERS): ServerSpec[] => list.filter((s) => s.runtime === runtime);
const peerOf = (runtime: RuntimeSpec, list: ServerSpec[] = SERVERS): ServerSpec =>
  serversOf(runtime, list).find((s) => s.role === "peer")!;
/** The reference, then any second reference, of a runtime. */
const refsOf = (runtime: RuntimeSpec, list: ServerSpec[] = SERVERS): ServerSpec[] => [
  peerOf(runtime, list),
  ...serversOf(runtime, list).filter((s) => s.role === "ref"),
];
const isReference = (s: ServerSpec): boolean => s.role === "peer" || s.role === "ref";

/**
 * The fan-out servers: one publisher connection, subscribers that all
 * subscribe to one topic; the publisher's messages go to every subscriber.
 * Duplex publishes with `app.publish()` (its raw path on each runtime, and
 * the native one on Deno and Bun); the references do what an application
 * written against them would: a loop over `wss.clients` with `ws`, a loop
 * over the subscribers' sockets on `Deno.serve` (no topics there), and Bun's
 * native topics (`server.publish()`).
 */
const ALL_FANOUT_SERVERS: ServerSpec[] = [
  { runtime: runtimeOf("node"), name: "Duplex App", role: "duplex", file: "bench/servers/fanout_duplex.ts" },
  { runtime: runtimeOf("node"), name: "ws loop", role: "peer", file: "bench/servers/fanout_ws.ts" },
  {
    runtime: runtimeOf("node"),
    name: "Duplex via Redis (2 processes)",
    role: "duplex",
    file: "bench/servers/fanout_duplex.ts",
    redis: { inProcess: "Duplex App" },
  },
  {
    runtime: runtimeOf("deno"),
    name: "Duplex raw",
    role: "duplex",
    file: "bench/servers/fanout_duplex.ts",
    env: { TRANSPORT: "raw" },
  },
  {
    runtime: runtimeOf("deno"),
    name: "Duplex native",
    role: "native",
    file: "bench/servers/fanout_duplex.ts",
    env: { TRANSPORT: "native" },
  },
  { runtime: runtimeOf("deno"), name: "Deno.serve loop", role: "peer", file: "bench/servers/fanout_deno_serve.ts" },
  {
    runtime: runtimeOf("bun"),
    name: "Duplex raw",
    role: "duplex",
    file: "bench/servers/fanout_duplex.ts",
    env: { TRANSPORT: "raw" },
  },
  {
    runtime: runtimeOf("bun"),
    name: "Duplex native",
    role: "native",
    file: "bench/servers/fanout_duplex.ts",
    env: { TRANSPORT: "native" },
  },
  { runtime: runtimeOf("bun"), name: "Bun.serve publish", role: "peer", file: "bench/servers/fanout_bun_serve.ts" },
];

/**
 * The Hono servers: the same Hono app (one route, `GET /ws`, an `onMessage`
 * that echoes) on Duplex's `upgradeWebSocket` from `@duplex/ws/hono` and on
 * Hono's own helper for the runtime (`@hono/node-server` with `ws` on Node,
 * `hono/deno`, `hono/bun`), the reference of this part.
 */
const ALL_HONO_SERVERS: ServerSpec[] = RUNTIMES.flatMap((runtime): ServerSpec[] => [
  { runtime, name: "Duplex via Hono", role: "duplex", file: "bench/servers/hono_duplex.ts", path: "/ws" },
  { runtime, name: "Hono's helper", role: "peer", file: "bench/servers/hono_helper.ts", path: "/ws" },
]);
const HONO_SERVERS = ALL_HONO_SERVERS.filter((s) => SELECTED.includes(s.runtime));

/** What Hono's helper is on each runtime, for the report. */
const HONO_HELPERS: Record<RuntimeName, string> = {
  node: "`upgradeWebSocket` from `@hono/node-server` with a `ws` `WebSocketServer` (`noServer`, permessage-deflate off)",
  deno: "`upgradeWebSocket` from `hono/deno` (`Deno.upgradeWebSocket`) on `Deno.serve(app.fetch)`",
  bun: "`upgradeWebSocket` and `websocket` from `hono/bun` on `Bun.serve`",
};

/**
 * The `deflate` part's compression settings, each run on Duplex and `ws`
 * (`DEFLATE_THRESHOLD` for `servers/duplex.ts` and `servers/ws_node.ts`):
 * off; on with threshold 0 (every message compressed); on with the
 * servers' defaults (`perMessageDeflate: true`: Duplex sends the chat
 * messages, all under its 1 KiB threshold, uncompressed; `ws` applies its
 * threshold only without context takeover, so it compresses them all). The
 * clients offer it, and compress everything they send (threshold 0), in
 * both "on" modes.
 */
interface DeflateMode {
  label: string;
  /** `DEFLATE_THRESHOLD`; unset: off. */
  threshold?: string;
}

const DEFLATE_MODES: DeflateMode[] = [
  { label: "off" },
  { label: "threshold 0", threshold: "0" },
  { label: "defaults", threshold: "default" },
];

/** A server of the `deflate` part: Duplex (raw, bare hooks) or `ws` (without its addons), in one mode. */
interface DeflateRow {
  spec: ServerSpec;
  mode: DeflateMode;
}

const DEFLATE_ROWS: DeflateRow[] = DEFLATE_MODES.flatMap((mode): DeflateRow[] => {
  const env: Record<string, string> = mode.threshold === undefined ? {} : { DEFLATE_THRESHOLD: mode.threshold };
  return [
    {
      mode,
      spec: { runtime: runtimeOf("node"), name: `Duplex, ${mode.label}`, role: "duplex", file: "bench/servers/duplex.ts", env },
    },
    {
      mode,
      spec: {
        runtime: runtimeOf("node"),
        name: `ws, ${mode.label}`,
        role: "peer",
        file: "bench/servers/ws_node.ts",
        env: { ...env, WS_NO_BUFFER_UTIL: "1", WS_NO_UTF_8_VALIDATE: "1" },
      },
    },
  ];
});

/** Whether `redis-server` runs here: without it, the Redis fan-out row is left out (and the report says so). */
const REDIS_VERSION = (() => {
  const out = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  return out.error === undefined && out.status === 0 ? out.stdout.match(/v=(\S+)/)?.[1] ?? "?" : undefined;
})();
const FANOUT_SERVERS = ALL_FANOUT_SERVERS.filter((s) => SELECTED.includes(s.runtime) && (!s.redis || REDIS_VERSION !== undefined));
const REDIS_SKIPPED = REDIS_VERSION === undefined && ALL_FANOUT_SERVERS.some((s) => s.redis && SELECTED.includes(s.runtime));
/** Its runtime and name, unique across the run. */
const serverId = (spec: ServerSpec): string => `${spec.runtime.name}/${spec.name}`;

/**
 * How the generator writes. "1 frame/write": its closed loop answers every
 * read at once, so that the server mostly reads one frame at a time (the
 * largest frames, at least). "burst" (`loadgen -B`): a pipelining client
 * that reads all it can, in chunks of up to its whole window, then writes all
 * the frames that may go in one write().
 */
interface LoadMode {
  name: "frame" | "burst";
  label: string;
  args: string[];
}

const FRAME_MODE: LoadMode = { name: "frame", label: "1 frame/write", args: [] };
const BURST_MODE: LoadMode = { name: "burst", label: "burst", args: ["-B"] };

/** The echo part's load modes: `BENCH_LOAD` (frame, burst), both by default. */
function selectLoadModes(): LoadMode[] {
  const raw = process.env.BENCH_LOAD;
  if (raw === undefined || raw.trim() === "") return [FRAME_MODE, BURST_MODE];
  const wanted = raw.split(",").map((mode) => mode.trim().toLowerCase()).filter((mode) => mode !== "");
  const modes = [FRAME_MODE, BURST_MODE].filter((mode) => wanted.includes(mode.name));
  if (modes.length === 0 || modes.length !== new Set(wanted).size) {
    throw new RangeError(`Invalid BENCH_LOAD: expected frame and/or burst, got "${raw}"`);
  }
  return modes;
}

const LOAD_MODES = selectLoadModes();

interface Workload {
  label: string;
  size: number;
  kind: "text" | "binary";
  mode: LoadMode;
}

/** The Hono part's workloads: one frame per write. */
const WORKLOADS: Workload[] = [];
for (const [size, sizeLabel] of [[32, "32 B"], [1024, "1 KiB"], [65536, "64 KiB"]] as const) {
  for (const kind of ["text", "binary"] as const) WORKLOADS.push({ label: `${sizeLabel} ${kind}`, size, kind, mode: FRAME_MODE });
}
/**
 * The `observe` part (Node): the same App echo (`PIPELINE=app`) with
 * `observe()` first ("metrics on") and without ("metrics off"), 32 B text
 * in every load mode. The cost target: on ≥ 0.95× off.
 */
const OBSERVE_SERVERS: ServerSpec[] = [
  { runtime: runtimeOf("node"), name: "metrics off", role: "peer", file: "bench/servers/duplex.ts", env: { PIPELINE: "app" } },
  { runtime: runtimeOf("node"), name: "metrics on", role: "duplex", file: "bench/servers/duplex.ts", env: { PIPELINE: "app", OBSERVE: "1" } },
];
const OBSERVE_TARGET = 0.95;
/** The App rows' target (issue 24): within this of bare hooks at 32 B. */
const APP_TARGET = 0.9;

/** The echo part's workloads: each one in every load mode. */
/** The echo part's cells: `BENCH_CELLS` (labels such as "64 KiB text", comma-separated), every one by default. */
function selectCells(): Workload[] {
  const raw = process.env.BENCH_CELLS;
  if (raw === undefined || raw.trim() === "") return WORKLOADS;
  const wanted = raw.split(",").map((cell) => cell.trim().toLowerCase()).filter((cell) => cell !== "");
  const cells = WORKLOADS.filter((w) => wanted.includes(w.label.toLowerCase()));
  if (cells.length === 0 || cells.length !== new Set(wanted).size) {
    throw new RangeError(`Invalid BENCH_CELLS: expected labels among ${WORKLOADS.map((w) => `"${w.label}"`).join(", ")}, got "${raw}"`);
  }
  return cells;
}

const ECHO_WORKLOADS: Workload[] = selectCells().flatMap((w) => LOAD_MODES.map((mode) => ({ ...w, mode })));
/** The observe part's workloads: 32 B text in every load mode. */
const OBSERVE_WORKLOADS: Workload[] = ECHO_WORKLOADS.filter((w) => w.size === 32 && w.kind === "text");

/** A fan-out workload: text messages of FANOUT_SIZE bytes, `inflight` of them published and not yet everywhere. */
interface FanoutWorkload {
  label: string;
  inflight: number;
}

const FANOUT_WORKLOADS: FanoutWorkload[] = FANOUT_INFLIGHT.map((inflight) => ({ label: `${inflight} in flight`, inflight }));

// ---- child processes: every one is tracked and killed on any exit path ----

const children = killedOnExit("bench");

interface Proc {
  child: ChildProcess;
  stdout: Lines;
  /** The last 4 KiB of stderr. */
  stderr(): string;
  exited: Promise<{ code: number | null; signal: string | null }>;
}

function start(command: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(command[0]!, command.slice(1), {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  children.add(child);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.once("error", () => resolve({ code: null, signal: null }));
  }).finally(() => children.delete(child));
  let err = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (text: string) => {
    err = (err + text).slice(-4096);
  });
  child.stdin!.on("error", () => {
    // The child exited before reading stdin: nothing to do.
  });
  return { child, stdout: new Lines(child.stdout!), stderr: () => err.trim(), exited };
}

/** Ends a child: SIGTERM, then SIGKILL after `graceMs`. */
async function stop(proc: Proc, graceMs = 5000): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill("SIGTERM");
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), graceMs);
  await proc.exited;
  clearTimeout(timer);
}

// ---- machine ----

function sh(command: string, args: string[]): string {
  const out = spawnSync(command, args, { cwd: ROOT, encoding: "utf8" });
  return out.status === 0 ? out.stdout.trim() : "";
}

function cpuModel(): string {
  try {
    const match = readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.+)$/m);
    if (match) return match[1]!.trim();
  } catch {
    // Not Linux.
  }
  return os.cpus()[0]?.model ?? "unknown";
}

function packageVersion(path: string): string {
  try {
    return (JSON.parse(readFileSync(`${ROOT}${path}`, "utf8")) as { version?: string }).version ?? "?";
  } catch {
    return "?";
  }
}

function loadAverage(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(", ");
}

const nproc = Number(sh("nproc", [])) || os.cpus().length;
const tasksetWorks = spawnSync("taskset", ["-c", "1", "true"]).status === 0;
const PINNED = tasksetWorks && nproc >= 2;
const pinNote = PINNED
  ? "server pinned to CPU 0 and load generator to CPU 1 (`taskset`)"
  : tasksetWorks
  ? `not pinned: only ${nproc} CPU available`
  : "not pinned: `taskset` not found (server and generator share the CPUs)";

function pin(cpu: number): string[] {
  return PINNED ? ["taskset", "-c", String(cpu)] : [];
}

// ---- one server, one measurement ----

interface RunningServer {
  proc: Proc;
  port: number;
  pid: number;
}

async function startServer(spec: ServerSpec, exposeGc = false): Promise<RunningServer> {
  const command = spec.runtime.command(spec.file, exposeGc);
  const proc = start([...pin(0), ...command], { ...spec.env, PORT: "0", BENCH_WATCH_STDIN: "1" });
  const what = `${spec.runtime.title} ${spec.name}`;
  let match: RegExpMatchArray;
  try {
    match = await proc.stdout.waitFor(/^ready \S+ port=(\d+) pid=(\d+)/, 20_000, `${what} to be ready`);
  } catch (err) {
    await stop(proc);
    throw new Error(`${what} did not start: ${(err as Error).message}\n${proc.stderr()}`);
  }
  const server = { proc, port: Number(match[1]), pid: Number(match[2]) };
  if (server.pid !== proc.child.pid) {
    // A wrapper process in between: stopping the child would not stop the server.
    await stop(proc);
    throw new Error(`${what} runs as pid ${server.pid}, not as the spawned pid ${proc.child.pid}: use the runtime's binary`);
  }
  return server;
}

async function stopServer(server: RunningServer): Promise<void> {
  await stop(server.proc);
}

/** What the generator reports for a load run. */
interface LoadResult {
  msgs_per_s: number;
  mb_per_s: number;
  p50_us: number;
  p99_us: number;
  p999_us: number;
  mean_us: number;
  max_us: number;
  messages: number;
  errors: number;
  error: string;
}

function lastJson<T>(lines: string[]): T | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (!line.startsWith("{")) continue;
    try {
      return JSON.parse(line) as T;
    } catch {
      // Not JSON after all.
    }
  }
  return undefined;
}

async function runLoad(server: RunningServer, workload: Workload, path?: string): Promise<LoadResult> {
  const args = [
    ...["-h", HOST, "-p", String(server.port), "-c", String(CONNECTIONS), "-i", String(INFLIGHT)],
    ...(path === undefined ? [] : ["-u", path]),
    ...["-s", String(workload.size), "-t", workload.kind, "-w", String(WARMUP), "-d", String(SECONDS)],
    ...workload.mode.args,
  ];
  const proc = start([...pin(1), LOADGEN, ...args]);
  proc.child.stdin!.end();
  const limitMs = (WARMUP + SECONDS + 45) * 1000;
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), limitMs);
  const { code, signal } = await proc.exited;
  clearTimeout(timer);
  const result = lastJson<LoadResult>(proc.stdout.all);
  if (code !== 0 || result === undefined) {
    const why = result?.error || proc.stderr() || `no report`;
    throw new Error(`loadgen failed (${signal ?? `exit ${code}`}): ${why}`);
  }
  if (server.proc.child.exitCode !== null || server.proc.child.signalCode !== null) {
    throw new Error(`the server exited during the run: ${server.proc.stderr()}`);
  }
  return result;
}

/** What the generator reports for a fan-out run. */
interface FanoutResult {
  subscribers: number;
  deliveries_per_s: number;
  msgs_per_s: number;
  p50_us: number;
  p99_us: number;
  max_us: number;
  /** The generator's CPU use while measuring: user + system seconds per second (1 = one CPU busy). */
  gen_cpu: number;
  errors: number;
  error: string;
}

/** What a fan-out run connects to: one server, or two processes and their redis-server. */
interface FanoutTarget {
  /** The subscribers' port. */
  port: number;
  /** The publisher's port. */
  pubPort: number;
  /** Every process of the target (servers, redis-server): none may exit during the run. */
  procs: { what: string; proc: Proc }[];
  /** Stops every process of the target. */
  stop(): Promise<void>;
}

async function startFanout(spec: ServerSpec): Promise<FanoutTarget> {
  if (!spec.redis) {
    const server = await startServer(spec);
    return {
      port: server.port,
      pubPort: server.port,
      procs: [{ what: "the server", proc: server.proc }],
      stop: () => stopServer(server),
    };
  }
  const redis = await startRedis();
  const env = { ...spec.env, REDIS_URL: redis.url };
  const started = await Promise.allSettled(
    (["A (publisher)", "B (subscribers)"] as const).map((which) =>
      startServer({ runtime: spec.runtime, name: `${spec.name} ${which}`, role: spec.role, file: spec.file, env })
    ),
  );
  const servers = started.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
  const stopAll = async (): Promise<void> => {
    await Promise.all(servers.map(stopServer));
    await stop(redis.proc);
  };
  const failed = started.find((s) => s.status === "rejected");
  if (failed) {
    await stopAll();
    throw failed.reason;
  }
  const [a, b] = servers as [RunningServer, RunningServer];
  return {
    port: b.port,
    pubPort: a.port,
    procs: [
      { what: "server A (publisher)", proc: a.proc },
      { what: "server B (subscribers)", proc: b.proc },
      { what: "redis-server", proc: redis.proc },
    ],
    stop: stopAll,
  };
}

/** A TCP port free right now on HOST. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Sends PING; resolves true on +PONG. */
function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, HOST);
    let reply = "";
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("error", () => done(false));
    socket.setEncoding("utf8");
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk: string) => {
      reply += chunk;
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
  });
}

/** A fresh redis-server on a free port, pinned to CPU 0 with the servers, no persistence; ready once it answers PING. */
async function startRedis(): Promise<{ proc: Proc; url: string }> {
  const port = await freePort();
  const args = ["--port", String(port), "--bind", HOST, "--save", "", "--appendonly", "no"];
  const proc = start([...pin(0), "redis-server", ...args]);
  const deadline = Date.now() + 10_000;
  while (!(await redisPing(port))) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null || Date.now() > deadline) {
      await stop(proc);
      throw new Error(`redis-server did not answer PING on port ${port}: ${proc.stdout.all.slice(-5).join("\n")}\n${proc.stderr()}`);
    }
    await sleep(20);
  }
  return { proc, url: `redis://${HOST}:${port}` };
}

async function runFanout(target: FanoutTarget, workload: FanoutWorkload): Promise<FanoutResult> {
  const args = [
    ...["-F", "-h", HOST, "-p", String(target.port), "-P", String(target.pubPort)],
    ...["-c", String(FANOUT_SUBSCRIBERS), "-i", String(workload.inflight)],
    ...["-s", String(FANOUT_SIZE), "-t", "text", "-w", String(WARMUP), "-d", String(SECONDS)],
  ];
  const proc = start([...pin(1), LOADGEN, ...args]);
  proc.child.stdin!.end();
  const limitMs = (WARMUP + SECONDS + 60) * 1000;
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), limitMs);
  const { code, signal } = await proc.exited;
  clearTimeout(timer);
  const result = lastJson<FanoutResult>(proc.stdout.all);
  if (code !== 0 || result === undefined) {
    const why = result?.error || proc.stderr() || `no report`;
    throw new Error(`loadgen -F failed (${signal ?? `exit ${code}`}): ${why}`);
  }
  for (const { what, proc: p } of target.procs) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) {
      throw new Error(`${what} exited during the run: ${p.stderr()}`);
    }
  }
  return result;
}

function readRssKiB(pid: number): number {
  const match = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s*(\d+)\s*kB/m);
  if (!match) throw new Error(`No VmRSS for pid ${pid}`);
  return Number(match[1]);
}

/** Full garbage collection in the server (it runs with --expose-gc). */
async function collectGarbage(server: RunningServer): Promise<void> {
  process.kill(server.pid, "SIGUSR2");
  await server.proc.stdout.waitFor(/^gc (done|unavailable)/, 10_000, "the garbage collection");
  await sleep(200);
}

interface MemoryResult {
  baselineKiB: number;
  loadedKiB: number;
  perConnectionKiB: number;
}

/** RSS with IDLE_CONNECTIONS idle connections minus the RSS before, both after a full GC. */
async function measureMemory(spec: ServerSpec): Promise<MemoryResult> {
  const server = await startServer(spec, true);
  try {
    await sleep(500);
    await collectGarbage(server);
    const baselineKiB = readRssKiB(server.pid);
    const args = ["-h", HOST, "-p", String(server.port), "-c", String(IDLE_CONNECTIONS), "-I", "-d", "120"];
    const gen = start([...pin(1), LOADGEN, ...args]);
    try {
      await gen.stdout.waitFor(/^\{"ready":true/, 60_000, `${IDLE_CONNECTIONS} idle connections`).catch((err) => {
        throw new Error(`${(err as Error).message}: ${lastJson<LoadResult>(gen.stdout.all)?.error ?? gen.stderr()}`);
      });
      await sleep(1000);
      await collectGarbage(server);
      const loadedKiB = readRssKiB(server.pid);
      gen.child.stdin!.end(); // the generator closes its connections and exits
      const timer = setTimeout(() => gen.child.kill("SIGKILL"), 10_000);
      const { code } = await gen.exited;
      clearTimeout(timer);
      if (code !== 0) {
        throw new Error(`loadgen idle run failed: ${lastJson<LoadResult>(gen.stdout.all)?.error || gen.stderr()}`);
      }
      return { baselineKiB, loadedKiB, perConnectionKiB: (loadedKiB - baselineKiB) / IDLE_CONNECTIONS };
    } finally {
      await stop(gen);
    }
  } finally {
    await stopServer(server);
  }
}

/** What `deflate_load.ts` reports for a chat run, and the server's RSS at its end. */
interface DeflateResult {
  msgs_per_s: number;
  /** Mean JSON message size, bytes. */
  payload_bytes: number;
  /** Wire bytes per message, client → server (frames, masks, compressed payload). */
  up_bytes: number;
  /** Wire bytes per message, server → client. */
  down_bytes: number;
  p50_us: number;
  p99_us: number;
  /** The client process's CPU use while measuring (1 = one CPU busy). */
  gen_cpu: number;
  /** The server's CPU use while measuring (every thread: zlib runs on libuv's pool). */
  server_cpu: number;
  /** Server CPU time per echoed message, µs. */
  server_us_per_msg: number;
  /** The `Sec-WebSocket-Extensions` the server agreed to. */
  extensions: string;
  errors: number;
  error: string;
  /** Server VmRSS with every connection open, right after the measured seconds. */
  rssKiB: number;
}

/**
 * One chat run: `deflate_load.ts` (`ws` clients, one Node process pinned to
 * CPU 1) against a fresh server; the client holds its connections after its
 * report until its stdin ends, so that the server's RSS is read with them open.
 */
async function runDeflate(row: DeflateRow): Promise<DeflateResult> {
  const server = await startServer(row.spec);
  try {
    const args = [
      ...["-h", HOST, "-p", String(server.port), "-c", String(DEFLATE_CONNECTIONS), "-i", String(DEFLATE_INFLIGHT)],
      ...["-w", String(WARMUP), "-d", String(SECONDS), "--hold", "--server-pid", String(server.pid)],
      ...(row.mode.threshold === undefined ? [] : ["--deflate"]),
    ];
    const client = start([...pin(1), ...runtimeOf("node").command("bench/deflate_load.ts", false), ...args]);
    try {
      const limitMs = (WARMUP + SECONDS + 45) * 1000;
      await client.stdout.waitFor(/^\{/, limitMs, "the chat client's report").catch((err) => {
        throw new Error(`deflate_load failed: ${(err as Error).message}: ${client.stderr()}`);
      });
      const result = lastJson<DeflateResult>(client.stdout.all)!;
      if (result.errors > 0 || result.error) throw new Error(`deflate_load failed: ${result.error}`);
      if (server.proc.child.exitCode !== null || server.proc.child.signalCode !== null) {
        throw new Error(`the server exited during the run: ${server.proc.stderr()}`);
      }
      result.rssKiB = readRssKiB(server.pid);
      client.child.stdin!.end(); // the client closes its connections and exits
      const timer = setTimeout(() => client.child.kill("SIGKILL"), 10_000);
      const { code, signal } = await client.exited;
      clearTimeout(timer);
      if (code !== 0) throw new Error(`deflate_load failed (${signal ?? `exit ${code}`}): ${client.stderr()}`);
      return result;
    } finally {
      await stop(client);
    }
  } finally {
    await stopServer(server);
  }
}

// ---- numbers ----

function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const dec1 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });

function fmtInt(value: number): string {
  return Number.isFinite(value) ? int.format(value) : "n/a";
}

function fmtRatio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : "n/a";
}

/** Server CPU µs per message, two decimals. */
function fmtCost(us: number): string {
  return Number.isFinite(us) ? us.toFixed(2) : "n/a";
}

function fmtLatency(results: LoadResult[]): string {
  if (results.length === 0) return "n/a";
  return `${fmtInt(median(results.map((r) => r.p50_us)))} / ${fmtInt(median(results.map((r) => r.p99_us)))}`;
}

/** Microseconds as milliseconds, one decimal. */
function fmtMs(us: number): string {
  return Number.isFinite(us) ? dec1.format(us / 1000) : "n/a";
}

function fmtPercent(fraction: number): string {
  return Number.isFinite(fraction) ? `${Math.round(fraction * 100)} %` : "n/a";
}

function fmtMiB(kib: number): string {
  return Number.isFinite(kib) ? `${dec1.format(kib / 1024)} MiB` : "n/a";
}

/** Bytes (or µs) per message, one decimal. */
function fmtBytes(bytes: number): string {
  return Number.isFinite(bytes) ? dec1.format(bytes) : "n/a";
}

function fmtKiB(kib: number): string {
  return Number.isFinite(kib) ? `${dec1.format(kib)} KiB` : "n/a";
}

// ---- main ----

function compileLoadgen(): void {
  mkdirSync(`${BENCH}.build`, { recursive: true });
  const out = spawnSync("gcc", ["-O2", "-Wall", "-Wextra", "-o", LOADGEN, `${BENCH}loadgen.c`], {
    stdio: "inherit",
  });
  if (out.error) throw new Error(`Cannot run gcc: ${out.error.message}`);
  if (out.status !== 0) throw new Error(`gcc failed with exit code ${out.status}`);
}

/** CPU time (user + system) of a process so far, in seconds, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** `npm run build`: dist/, which Node servers run Duplex from (bench/_dist_hooks.mjs). */
function buildPackage(): void {
  const out = spawnSync("npm", ["run", "-s", "build"], { cwd: ROOT, stdio: "inherit" });
  if (out.error) throw new Error(`Cannot run npm run build: ${out.error.message}`);
  if (out.status !== 0) throw new Error(`npm run build failed with exit code ${out.status}`);
}

/** The ratio's column label: "Duplex/ws", "raw/Deno.serve", "native/Bun.serve", "App raw/Bun.serve". */
function ratioLabel(spec: ServerSpec, list: ServerSpec[] = SERVERS, peer: ServerSpec = peerOf(spec.runtime, list)): string {
  return `${shortName(spec, list)}/${peer.name}`;
}

/** A Duplex server's name in a ratio: its transport where its runtime has two ("raw", "App native"), else its name. */
function shortName(spec: ServerSpec, list: ServerSpec[] = SERVERS): string {
  if (!serversOf(spec.runtime, list).some((s) => s.role === "native")) return spec.name;
  const transport = spec.role === "native" ? "native" : "raw";
  return spec.bare === undefined ? transport : `App ${transport}`;
}

/** The bare-hooks row an App row is compared with (same runtime and transport). */
function bareOf(spec: ServerSpec, list: ServerSpec[] = SERVERS): ServerSpec | undefined {
  return spec.bare === undefined ? undefined : serversOf(spec.runtime, list).find((s) => s.name === spec.bare);
}

async function main(): Promise<void> {
  for (const runtime of SELECTED) {
    if (!existsSync(runtime.binary)) {
      throw new Error(
        `${runtime.title} not found at ${runtime.binary}: run npm install, or leave it out with BENCH_RUNTIMES`,
      );
    }
  }
  compileLoadgen();
  if (SELECTED.some((r) => r.name === "node")) buildPackage();

  const echoOn = ONLY.has("echo");
  const memoryOn = ONLY.has("memory");
  const fanoutOn = ONLY.has("fanout");
  const honoOn = ONLY.has("hono");
  const deflateWanted = ONLY.has("deflate");
  const deflateOn = deflateWanted && SELECTED.some((r) => r.name === "node");
  const reliableOn = ONLY.has("reliable");
  const contractOn = ONLY.has("contract");
  const observeOn = ONLY.has("observe") && SELECTED.some((r) => r.name === "node");
  const startedAt = new Date();
  const commit = sh("git", ["rev-parse", "--short", "HEAD"]);
  const dirty = sh("git", ["status", "--porcelain", "--untracked-files=no"]) !== "" ? ", uncommitted changes" : "";
  const versions = new Map(SELECTED.map((r) => [r.name, r.version()]));
  const describe = (runtime: RuntimeSpec, list: ServerSpec[]): string =>
    `${runtime.title}: ${serversOf(runtime, list).map((s) => s.name).join(", ")} (reference: ${peerOf(runtime, list).name})`;
  const parts = [
    echoOn && "echo",
    memoryOn && "memory per idle connection",
    fanoutOn && "fan-out",
    honoOn && "echo through Hono",
    deflateOn && "permessage-deflate",
    observeOn && "metrics on vs off",
  ].filter(Boolean);
  const header = [
    `# Duplex benchmark: ${parts.join(", ")} (${SELECTED.map((r) => r.title).join(", ")})`,
    ``,
    `- Date: ${startedAt.toISOString()}`,
    `- Machine: ${nproc} CPUs (nproc), ${cpuModel()}, ${os.type()} ${os.release()}, ${Math.round(os.totalmem() / 2 ** 20)} MiB RAM`,
    `- Duplex ${packageVersion("package.json")}${commit ? ` (git ${commit}${dirty})` : ""}; ` +
    SELECTED.map((r) => versions.get(r.name)).join("; "),
    ...(echoOn || memoryOn ? [`- Servers: ${SELECTED.map((r) => describe(r, SERVERS)).join("; ")}`] : []),
    ...(honoOn
      ? [
        `- Hono servers: ${SELECTED.map((r) => describe(r, HONO_SERVERS)).join("; ")}; ` +
        [
          `hono ${packageVersion("node_modules/hono/package.json")}`,
          ...(SELECTED.some((r) => r.name === "node")
            ? [`@hono/node-server ${packageVersion("node_modules/@hono/node-server/package.json")}`]
            : []),
        ].join(", "),
      ]
      : []),
    ...(echoOn || honoOn
      ? [
        `- Load: ${CONNECTIONS} connections × ${INFLIGHT} messages in flight, ${WARMUP} s warm-up then ${SECONDS} s measured, ` +
        `every echo verified${
          echoOn
            ? `; echo part in ${LOAD_MODES.map((m) => `"${m.label}"`).join(" and ")} mode (burst: \`loadgen -B\`, all the ` +
              `frames that may go in one write(), reads of up to a whole window)${honoOn ? `, Hono part in "${FRAME_MODE.label}" mode` : ""}`
            : ""
        }`,
      ]
      : []),
    ...(fanoutOn
      ? [
        `- Fan-out servers: ${SELECTED.map((r) => describe(r, FANOUT_SERVERS)).join("; ")}`,
        `- Fan-out load: 1 publisher, ${fmtInt(FANOUT_SUBSCRIBERS)} subscribers, ${FANOUT_SIZE} B text messages, ` +
        `${FANOUT_INFLIGHT.join(" or ")} in flight (published and not yet received by every subscriber), ` +
        `${WARMUP} s warm-up then ${SECONDS} s measured, every delivery verified (each subscriber gets every message, in order)`,
        ...(FANOUT_SERVERS.some((s) => s.redis)
          ? [
            `- Fan-out via Redis: redis-server ${REDIS_VERSION} (fresh per run, no persistence) and two Duplex processes ` +
            `with a Redis backplane (ioredis ${packageVersion("node_modules/ioredis/package.json")}), the publisher on A, ` +
            `the subscribers on B; redis and both processes pinned to CPU 0`,
          ]
          : []),
        ...(REDIS_SKIPPED ? [`- Fan-out via Redis: skipped, \`redis-server\` not found on PATH`] : []),
      ]
      : []),
    ...(deflateOn
      ? [
        `- Deflate servers (Node): Duplex (raw, bare hooks) and ws (without bufferutil / utf-8-validate), each with ` +
        `permessage-deflate ${DEFLATE_MODES.map((m) => m.label).join(", ")}`,
        `- Deflate load: JSON chat messages (40–200 character texts), ${DEFLATE_CONNECTIONS} ws clients × ` +
        `${DEFLATE_INFLIGHT} messages in flight, echoed; the clients (ws ${packageVersion("node_modules/ws/package.json")}, ` +
        `with bufferutil / utf-8-validate, one Node process pinned to CPU 1) offer permessage-deflate and compress every message ` +
        `when it is on; ${WARMUP} s warm-up then ${SECONDS} s measured, every echo verified`,
      ]
      : []),
    ...(deflateWanted && !deflateOn ? [`- Deflate: skipped, it runs on Node only (add node to BENCH_RUNTIMES)`] : []),
    `- Median of ${REPS} run${REPS === 1 ? "" : "s"} per cell, a fresh server per run, servers interleaved`,
    `- Pinning: ${pinNote}`,
    `- Load average at start: ${loadAverage()} (other work on the machine skews the numbers)`,
  ];
  console.log(header.join("\n"));
  console.log("");

  const load = new Map<string, LoadResult[]>(); // key: `${workload}|${serverId}`
  const honoLoad = new Map<string, LoadResult[]>(); // key: `${workload}|${serverId}`
  const memory = new Map<string, MemoryResult[]>(); // key: serverId
  const fanout = new Map<string, FanoutResult[]>(); // key: `${fan-out workload}|${serverId}`
  const deflate = new Map<string, DeflateResult[]>(); // key: serverId
  const observeLoad = new Map<string, LoadResult[]>(); // key: `${workload}|${serverId}`
  const observeCpu = new Map<string, number[]>(); // key: as observeLoad; server CPU µs per echoed message
  const cpu = new Map<string, number[]>(); // key: as load; server CPU µs per echoed message
  const honoCpu = new Map<string, number[]>(); // key: as honoLoad
  const failures: string[] = [];
  const raw: string[] = [];
  const key = (w: Workload, s: ServerSpec): string => `${w.label}|${w.mode.name}|${serverId(s)}`;
  const fanKey = (w: FanoutWorkload, s: ServerSpec): string => `${w.label}|${serverId(s)}`;
  const push = <T>(map: Map<string, T[]>, k: string, value: T): void => {
    const list = map.get(k) ?? [];
    list.push(value);
    map.set(k, list);
  };
  /** Runs one measurement; its line, or its failure, is printed and kept for the report. */
  const attempt = async (tag: string, measure: () => Promise<string>): Promise<void> => {
    let line: string;
    try {
      line = `${tag} ${await measure()}`;
    } catch (err) {
      line = `${tag} FAILED: ${(err as Error).message}`;
      failures.push(line);
    }
    console.log(line);
    raw.push(line);
  };
  const serverTag = (spec: ServerSpec): string => `${spec.runtime.title.padEnd(4)} ${spec.name.padEnd(17)}`;
  /**
   * One echo run on a fresh server, its result kept in `into` and the
   * server's CPU time per echoed message in `cpuInto`. Throughput swings with
   * whatever else runs on the machine; the server's CPU time per message much
   * less: both are reported.
   */
  const echoRun = (
    into: Map<string, LoadResult[]>,
    cpuInto: Map<string, number[]>,
    workload: Workload,
    spec: ServerSpec,
  ) =>
  async (): Promise<string> => {
    const server = await startServer(spec);
    try {
      const before = cpuSeconds(server.pid);
      const result = await runLoad(server, workload, spec.path);
      // Over warm-up and measure (and the drain of the last messages in flight): ≈.
      const usPerMsg = (cpuSeconds(server.pid) - before) * 1e6 / (result.msgs_per_s * (WARMUP + SECONDS));
      push(into, key(workload, spec), result);
      push(cpuInto, key(workload, spec), usPerMsg);
      return `${fmtInt(result.msgs_per_s).padStart(9)} msg/s ${result.mb_per_s.toFixed(1).padStart(7)} MB/s  server ${
        usPerMsg.toFixed(2).padStart(6)
      } µs CPU/msg  p50 ${fmtInt(result.p50_us).padStart(7)} µs  p99 ${fmtInt(result.p99_us).padStart(7)} µs`;
    } finally {
      await stopServer(server);
    }
  };

  for (let rep = 1; rep <= REPS; rep++) {
    const order = rep % 2 === 1 ? SERVERS : [...SERVERS].reverse();
    if (echoOn) {
      for (const workload of ECHO_WORKLOADS) {
        for (const spec of order) {
          const tag = `[${rep}/${REPS}] ${`${workload.label}, ${workload.mode.label}`.padEnd(28)} ${serverTag(spec)}`;
          await attempt(tag, echoRun(load, cpu, workload, spec));
        }
      }
    }
    if (memoryOn) {
      for (const spec of order) {
        const tag = `[${rep}/${REPS}] ${`idle × ${IDLE_CONNECTIONS}`.padEnd(13)} ${serverTag(spec)}`;
        await attempt(tag, async () => {
          const result = await measureMemory(spec);
          push(memory, serverId(spec), result);
          return `baseline ${fmtMiB(result.baselineKiB)}, loaded ${fmtMiB(result.loadedKiB)}: ${
            fmtKiB(result.perConnectionKiB)
          } per connection`;
        });
      }
    }
    if (fanoutOn) {
      const fanOrder = rep % 2 === 1 ? FANOUT_SERVERS : [...FANOUT_SERVERS].reverse();
      for (const workload of FANOUT_WORKLOADS) {
        for (const spec of fanOrder) {
          const tag = `[${rep}/${REPS}] ${`fan-out ${workload.inflight}`.padEnd(13)} ${serverTag(spec)}`;
          await attempt(tag, async () => {
            const target = await startFanout(spec);
            try {
              const result = await runFanout(target, workload);
              push(fanout, fanKey(workload, spec), result);
              return `${fmtInt(result.deliveries_per_s).padStart(10)} deliveries/s ${
                fmtInt(result.msgs_per_s).padStart(6)
              } msg/s  p50 ${fmtMs(result.p50_us).padStart(7)} ms  p99 ${fmtMs(result.p99_us).padStart(7)} ms  ` +
                `generator CPU ${fmtPercent(result.gen_cpu)}`;
            } finally {
              await target.stop();
            }
          });
        }
      }
    }
    if (honoOn) {
      const honoOrder = rep % 2 === 1 ? HONO_SERVERS : [...HONO_SERVERS].reverse();
      for (const workload of WORKLOADS) {
        for (const spec of honoOrder) {
          const tag = `[${rep}/${REPS}] ${workload.label.padEnd(13)} ${serverTag(spec)}`;
          await attempt(tag, echoRun(honoLoad, honoCpu, workload, spec));
        }
      }
    }
    if (observeOn) {
      const observeOrder = rep % 2 === 1 ? OBSERVE_SERVERS : [...OBSERVE_SERVERS].reverse();
      for (const workload of OBSERVE_WORKLOADS) {
        for (const spec of observeOrder) {
          const tag = `[${rep}/${REPS}] ${`${workload.label}, ${workload.mode.label}`.padEnd(28)} ${serverTag(spec)}`;
          await attempt(tag, echoRun(observeLoad, observeCpu, workload, spec));
        }
      }
    }
    if (deflateOn) {
      const deflateOrder = rep % 2 === 1 ? DEFLATE_ROWS : [...DEFLATE_ROWS].reverse();
      for (const row of deflateOrder) {
        const tag = `[${rep}/${REPS}] ${"chat".padEnd(13)} ${row.spec.runtime.title.padEnd(4)} ${row.spec.name.padEnd(20)}`;
        await attempt(tag, async () => {
          const result = await runDeflate(row);
          push(deflate, serverId(row.spec), result);
          return `${fmtInt(result.msgs_per_s).padStart(7)} msg/s  server ${fmtBytes(result.server_us_per_msg).padStart(5)} µs/msg ` +
            `(CPU ${fmtPercent(result.server_cpu)})  wire ${fmtBytes(result.up_bytes)} ↑ ${fmtBytes(result.down_bytes)} ↓ B/msg ` +
            `(JSON ${fmtBytes(result.payload_bytes)} B)  p50 ${fmtMs(result.p50_us)} ms  p99 ${fmtMs(result.p99_us)} ms  ` +
            `RSS ${fmtMiB(result.rssKiB)}  client CPU ${fmtPercent(result.gen_cpu)}  [${result.extensions || "no extension"}]`;
        });
      }
    }
  }

  const rate = (w: Workload, s: ServerSpec): number => median((load.get(key(w, s)) ?? []).map((r) => r.msgs_per_s));
  const cost = (w: Workload, s: ServerSpec): number => median(cpu.get(key(w, s)) ?? []);
  const perConnection = (s: ServerSpec): number =>
    median((memory.get(serverId(s)) ?? []).map((m) => m.perConnectionKiB));
  // Each Duplex server against each reference of its runtime.
  const pairs = SERVERS.filter((s) => !isReference(s)).flatMap((s) => refsOf(s.runtime).map((ref) => [s, ref] as const));

  // One table of ratios, every runtime side by side.
  const glance = [
    `| Workload | ${pairs.map(([s, ref]) => `${s.runtime.title} ${ratioLabel(s, SERVERS, ref)}`).join(" | ")} |`,
    `|---|${pairs.map(() => "--:|").join("")}`,
  ];
  if (echoOn) {
    for (const workload of ECHO_WORKLOADS) {
      const cells = pairs.map(([s, ref]) => fmtRatio(rate(workload, s), rate(workload, ref)));
      glance.push(`| ${workload.label} msg/s, ${workload.mode.label} | ${cells.join(" | ")} |`);
    }
  }
  if (memoryOn) {
    glance.push(
      `| Memory per idle connection | ${pairs.map(([s, ref]) => fmtRatio(perConnection(s), perConnection(ref))).join(" | ")} |`,
    );
  }

  // One table per runtime: msg/s of each server, the ratios, the latencies.
  const sections: string[] = [];
  for (const runtime of echoOn ? SELECTED : []) {
    const servers = serversOf(runtime);
    const mine = pairs.filter(([s]) => s.runtime === runtime);
    const table = [
      `## ${versions.get(runtime.name)}`,
      ``,
      `| Workload | Load | ${servers.map((s) => `${s.name} msg/s`).join(" | ")} | ${
        mine.map(([s, ref]) => ratioLabel(s, SERVERS, ref)).join(" | ")
      } | ${servers.map((s) => `${s.name} CPU µs/msg`).join(" | ")} | ${servers.map((s) => `${s.name} p50 / p99 µs`).join(" | ")} |`,
      `|---|---|${servers.map(() => "--:|").join("")}${mine.map(() => "--:|").join("")}${servers.map(() => "--:|").join("")}${
        servers.map(() => "--:|").join("")
      }`,
    ];
    for (const workload of ECHO_WORKLOADS) {
      const rates = servers.map((s) => fmtInt(rate(workload, s)));
      const ratios = mine.map(([s, ref]) => fmtRatio(rate(workload, s), rate(workload, ref)));
      const costs = servers.map((s) => fmtCost(cost(workload, s)));
      const latencies = servers.map((s) => fmtLatency(load.get(key(workload, s)) ?? []));
      table.push(`| ${workload.label} | ${workload.mode.label} | ${[...rates, ...ratios, ...costs, ...latencies].join(" | ")} |`);
    }
    sections.push(...table, ``);
  }

  const memoryTable = [
    `## Memory per idle connection`,
    ``,
    `Server RSS with ${fmtInt(IDLE_CONNECTIONS)} open idle connections minus its baseline RSS, both after a full GC, ` +
    `divided by ${fmtInt(IDLE_CONNECTIONS)} (median of ${REPS}); the ratio is over the runtime's reference server, ` +
    `below 1 is better:`,
    ``,
    `| Runtime | Server | Baseline RSS | RSS with ${fmtInt(IDLE_CONNECTIONS)} connections | Per connection | Ratio |`,
    `|---|---|--:|--:|--:|--:|`,
  ];
  for (const spec of SERVERS) {
    const list = memory.get(serverId(spec)) ?? [];
    const per = perConnection(spec);
    const ratio = isReference(spec)
      ? "(reference)"
      : refsOf(spec.runtime).map((ref) => `${fmtRatio(per, perConnection(ref))} (${ratioLabel(spec, SERVERS, ref)})`).join(", ");
    memoryTable.push(
      `| ${spec.runtime.title} | ${spec.name} | ${fmtMiB(median(list.map((m) => m.baselineKiB)))} | ${
        fmtMiB(median(list.map((m) => m.loadedKiB)))
      } | ${fmtKiB(per)} | ${ratio} |`,
    );
  }

  // Fan-out: deliveries/s per server and workload, the ratio over the runtime's reference, latency, generator CPU.
  const fanResults = (w: FanoutWorkload, s: ServerSpec): FanoutResult[] => fanout.get(fanKey(w, s)) ?? [];
  const deliveries = (w: FanoutWorkload, s: ServerSpec): number => median(fanResults(w, s).map((r) => r.deliveries_per_s));
  const fanCompared = FANOUT_SERVERS.filter((s) => s.role !== "peer");
  const fanoutTable = [
    `## Fan-out`,
    ``,
    `One publisher, ${fmtInt(FANOUT_SUBSCRIBERS)} subscribers of one topic, ${FANOUT_SIZE} B text messages. ` +
    `A delivery is one message received by one subscriber; "N in flight": the publisher keeps N messages ` +
    `published and not yet received by every subscriber (1: one message at a time). Latency: from the publish ` +
    `to the last subscriber's receipt. Ratio: deliveries/s over the runtime's reference (${
      SELECTED.map((r) => `${r.title}: ${peerOf(r, FANOUT_SERVERS).name}`).join(", ")
    }), above 1 is better. Generator CPU near 100 % means the generator, not the server, set the pace.`,
    ``,
    `| Workload | ${fanCompared.map((s) => `${s.runtime.title} ${ratioLabel(s, FANOUT_SERVERS)}`).join(" | ")} |`,
    `|---|${fanCompared.map(() => "--:|").join("")}`,
  ];
  for (const workload of FANOUT_WORKLOADS) {
    const cells = fanCompared.map((s) => fmtRatio(deliveries(workload, s), deliveries(workload, peerOf(s.runtime, FANOUT_SERVERS))));
    fanoutTable.push(`| ${workload.label} deliveries/s | ${cells.join(" | ")} |`);
  }
  const viaRedis = FANOUT_SERVERS.filter((s) => s.redis);
  if (viaRedis.length > 0) {
    fanoutTable.push(
      ``,
      `Through Redis: two processes sharing a Redis backplane, the publisher's on A, the subscribers on B, so every ` +
      `message goes A → redis-server → B (all three on CPU 0). Redis / in-process: its deliveries/s over the same ` +
      `server's in one process.`,
      ``,
      `| Runtime | Workload | In-process deliveries/s | Via Redis deliveries/s | Redis / in-process | Redis / reference | ` +
      `In-process p50 / p99 ms | Via Redis p50 / p99 ms |`,
      `|---|---|--:|--:|--:|--:|--:|--:|`,
    );
    const latencyOf = (results: FanoutResult[]): string =>
      results.length === 0 ? "n/a" : `${fmtMs(median(results.map((r) => r.p50_us)))} / ${fmtMs(median(results.map((r) => r.p99_us)))}`;
    for (const spec of viaRedis) {
      const inProcess = FANOUT_SERVERS.find((s) => s.runtime === spec.runtime && s.name === spec.redis!.inProcess);
      const peer = peerOf(spec.runtime, FANOUT_SERVERS);
      for (const workload of FANOUT_WORKLOADS) {
        const local = inProcess ? deliveries(workload, inProcess) : NaN;
        const remote = deliveries(workload, spec);
        fanoutTable.push(
          `| ${spec.runtime.title} | ${workload.label} | ${fmtInt(local)} | ${fmtInt(remote)} | ${fmtRatio(remote, local)} | ` +
            `${fmtRatio(remote, deliveries(workload, peer))} (/${peer.name}) | ${
              latencyOf(inProcess ? fanResults(workload, inProcess) : [])
            } | ${latencyOf(fanResults(workload, spec))} |`,
        );
      }
    }
  }
  if (REDIS_SKIPPED) fanoutTable.push(``, `Through Redis: skipped, \`redis-server\` not found on PATH.`);
  fanoutTable.push(
    ``,
    `| Runtime | Server | Workload | Deliveries/s | Messages/s | Ratio | p50 / p99 ms | Generator CPU |`,
    `|---|---|---|--:|--:|--:|--:|--:|`,
  );
  for (const workload of FANOUT_WORKLOADS) {
    for (const spec of FANOUT_SERVERS) {
      const results = fanResults(workload, spec);
      const peer = peerOf(spec.runtime, FANOUT_SERVERS);
      const ratio = spec.role === "peer" ? "(reference)" : fmtRatio(deliveries(workload, spec), deliveries(workload, peer));
      const latency = results.length === 0 ? "n/a" : `${fmtMs(median(results.map((r) => r.p50_us)))} / ${
        fmtMs(median(results.map((r) => r.p99_us)))
      }`;
      fanoutTable.push(
        `| ${spec.runtime.title} | ${spec.name} | ${workload.label} | ${fmtInt(deliveries(workload, spec))} | ${
          fmtInt(median(results.map((r) => r.msgs_per_s)))
        } | ${ratio} | ${latency} | ${fmtPercent(median(results.map((r) => r.gen_cpu)))} |`,
      );
    }
  }

  // Hono: Duplex via Hono over Hono's helper, per runtime: msg/s, the ratio, the latencies.
  const honoRate = (w: Workload, s: ServerSpec): number => median((honoLoad.get(key(w, s)) ?? []).map((r) => r.msgs_per_s));
  const honoTable = [
    `## Hono: Duplex via Hono against Hono's helper`,
    ``,
    `The same Hono app (one route, \`GET /ws\`, an \`onMessage\` that sends every message back) on Duplex's ` +
    `\`upgradeWebSocket\` from \`@duplex/ws/hono\` and on Hono's own helper for the runtime, the reference here; ` +
    `the echo part's workloads and load. Ratio: Duplex via Hono's msg/s over Hono's helper's, above 1 is better.`,
    ``,
    `| Workload | ${SELECTED.map((r) => `${r.title} via Hono/helper`).join(" | ")} |`,
    `|---|${SELECTED.map(() => "--:|").join("")}`,
  ];
  for (const workload of WORKLOADS) {
    const cells = SELECTED.map((r) => {
      const peer = peerOf(r, HONO_SERVERS);
      const mine = serversOf(r, HONO_SERVERS).find((s) => s.role !== "peer")!;
      return fmtRatio(honoRate(workload, mine), honoRate(workload, peer));
    });
    honoTable.push(`| ${workload.label} msg/s | ${cells.join(" | ")} |`);
  }
  for (const runtime of SELECTED) {
    const servers = serversOf(runtime, HONO_SERVERS);
    const peer = peerOf(runtime, HONO_SERVERS);
    const mine = servers.filter((s) => s.role !== "peer");
    honoTable.push(
      ``,
      `### ${runtime.title}`,
      ``,
      `Duplex via Hono: ${
        runtime.name === "node"
          ? "`attach(server, app)` on `@hono/node-server`'s `serve()`"
          : runtime.name === "deno"
          ? "`Deno.serve(app.fetch)` (Duplex's native path on Deno)"
          : "`Bun.serve({ fetch: app.fetch, websocket })` (Duplex's native path on Bun)"
      }. Hono's helper: ${HONO_HELPERS[runtime.name]}.`,
      ``,
      `| Workload | ${servers.map((s) => `${s.name} msg/s`).join(" | ")} | ${
        mine.map((s) => `${s.name}/${peer.name}`).join(" | ")
      } | ${servers.map((s) => `${s.name} p50 / p99 µs`).join(" | ")} |`,
      `|---|${servers.map(() => "--:|").join("")}${mine.map(() => "--:|").join("")}${servers.map(() => "--:|").join("")}`,
    );
    for (const workload of WORKLOADS) {
      const rates = servers.map((s) => fmtInt(honoRate(workload, s)));
      const ratios = mine.map((s) => fmtRatio(honoRate(workload, s), honoRate(workload, peer)));
      const latencies = servers.map((s) => fmtLatency(honoLoad.get(key(workload, s)) ?? []));
      honoTable.push(`| ${workload.label} | ${[...rates, ...ratios, ...latencies].join(" | ")} |`);
    }
  }

  // Deflate: per mode, Duplex against ws; then every row.
  const deflateResults = (row: DeflateRow): DeflateResult[] => deflate.get(serverId(row.spec)) ?? [];
  const deflateMedian = (row: DeflateRow | undefined, field: (r: DeflateResult) => number): number =>
    row === undefined ? NaN : median(deflateResults(row).map(field));
  const deflateRow = (role: Role, mode: DeflateMode): DeflateRow | undefined =>
    DEFLATE_ROWS.find((r) => r.spec.role === role && r.mode === mode);
  const rateOf = (r: DeflateResult): number => r.msgs_per_s;
  const costOf = (r: DeflateResult): number => r.server_us_per_msg;
  const wireOf = (r: DeflateResult): number => r.up_bytes + r.down_bytes;
  const wireCell = (row: DeflateRow | undefined): string =>
    `${fmtBytes(deflateMedian(row, (r) => r.up_bytes))} / ${fmtBytes(deflateMedian(row, (r) => r.down_bytes))}`;
  const offMode = DEFLATE_MODES[0]!;
  /** A row's median over the same server's with compression off. */
  const overOff = (row: DeflateRow | undefined, field: (r: DeflateResult) => number): string =>
    row === undefined || row.mode === offMode
      ? "(baseline)"
      : fmtRatio(deflateMedian(row, field), deflateMedian(deflateRow(row.spec.role, offMode), field));
  const deflateTable = [
    `## permessage-deflate: JSON chat echo (Node)`,
    ``,
    `${DEFLATE_CONNECTIONS} \`ws\` clients in one Node process (\`bench/deflate_load.ts\`, pinned to CPU 1) each keep ` +
    `${DEFLATE_INFLIGHT} JSON chat messages in flight (\`{"type":"say","room":"lobby","from":"user-17","text":"…","ts":…}\`, ` +
    `texts of 40–200 characters from a seeded word list, about 200 B per message); the server (pinned to CPU 0) ` +
    `echoes each to its sender. With compression on, the clients compress every message they send (threshold 0, ` +
    `as browsers do). "threshold 0": \`perMessageDeflate: { threshold: 0 }\`, the server compresses every echo. ` +
    `"defaults": \`perMessageDeflate: true\`; Duplex then sends messages under 1 KiB (every echo here) ` +
    `uncompressed, while \`ws\` applies its 1 KiB threshold only without context takeover, so it compresses them all.`,
    ``,
    `msg/s: echoes per second; when the client's CPU is near 100 % (see the second table) the client set the pace, ` +
    `and **server CPU µs/msg** (the server's CPU time, every thread, over the messages echoed) is the fairer ` +
    `comparison. Duplex/ws: msg/s over ws's in the same mode (above 1 is better), CPU per message over ws's (below ` +
    `1 is better). Wire B/msg: bytes read from and written to the clients' TCP sockets per message (frames, masks and ` +
    `payload), client → server ↑ / server → client ↓; wire with/without: ↑ + ↓ over the same server's with ` +
    `compression off.`,
    ``,
    `| Compression | Duplex msg/s | ws msg/s | Duplex/ws msg/s | Duplex CPU µs/msg | ws CPU µs/msg | ` +
    `Duplex/ws CPU per msg | Duplex wire B/msg ↑ / ↓ | ws wire B/msg ↑ / ↓ | Duplex wire with/without | ws wire with/without |`,
    `|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|`,
  ];
  for (const mode of DEFLATE_MODES) {
    const mine = deflateRow("duplex", mode);
    const ws = deflateRow("peer", mode);
    deflateTable.push(
      `| ${mode.label} | ${fmtInt(deflateMedian(mine, rateOf))} | ${fmtInt(deflateMedian(ws, rateOf))} | ${
        fmtRatio(deflateMedian(mine, rateOf), deflateMedian(ws, rateOf))
      } | ${fmtBytes(deflateMedian(mine, costOf))} | ${fmtBytes(deflateMedian(ws, costOf))} | ${
        fmtRatio(deflateMedian(mine, costOf), deflateMedian(ws, costOf))
      } | ${wireCell(mine)} | ${wireCell(ws)} | ${overOff(mine, wireOf)} | ${overOff(ws, wireOf)} |`,
    );
  }
  deflateTable.push(
    ``,
    `Every row: "with/without" is over the same server's with compression off. Server RSS: with the ` +
    `${DEFLATE_CONNECTIONS} connections open, right after the measured seconds. Server and client CPU: their CPU time ` +
    `(user + system) per second while measuring; near 100 %, that process set the pace.`,
    ``,
    `| Server | Compression | msg/s | msg/s with/without | Server CPU µs/msg | CPU/msg with/without | JSON B/msg | ` +
    `Wire B/msg ↑ / ↓ | Server RSS | p50 / p99 ms | Server CPU | Client CPU | Agreed |`,
    `|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|`,
  );
  for (const row of DEFLATE_ROWS) {
    const results = deflateResults(row);
    deflateTable.push(
      `| ${row.spec.role === "peer" ? "ws" : "Duplex"} | ${row.mode.label} | ${fmtInt(deflateMedian(row, rateOf))} | ${
        overOff(row, rateOf)
      } | ${fmtBytes(deflateMedian(row, costOf))} | ${overOff(row, costOf)} | ${
        fmtBytes(deflateMedian(row, (r) => r.payload_bytes))
      } | ${wireCell(row)} | ${fmtMiB(deflateMedian(row, (r) => r.rssKiB))} | ${fmtMs(deflateMedian(row, (r) => r.p50_us))} / ${
        fmtMs(deflateMedian(row, (r) => r.p99_us))
      } | ${fmtPercent(deflateMedian(row, (r) => r.server_cpu))} | ${fmtPercent(deflateMedian(row, (r) => r.gen_cpu))} | ${
        results.length === 0 ? "n/a" : `\`${results[0]!.extensions || "none"}\``
      } |`,
    );
  }

  const summary = echoOn || memoryOn
    ? [
      `## Ratios`,
      ``,
      `Each runtime's Duplex servers over its reference server (${
        SELECTED.map((r) => `${r.title}: ${peerOf(r).name}`).join(", ")
      }). msg/s: above 1, Duplex echoed more messages per second (1.25× is 25 % more). Memory: below 1, Duplex needs less per connection.`,
      ``,
      ...glance,
      ``,
    ]
    : [];

  // The App rows against the bare hooks of the same runtime and transport.
  const appPairs = SERVERS.flatMap((s) => {
    const bare = bareOf(s);
    return bare === undefined ? [] : [[s, bare] as const];
  });
  const appTable = echoOn && appPairs.length > 0
    ? [
      `## App / bare hooks`,
      ``,
      `The echo written as an \`App\` (\`PIPELINE=app\`: one middleware object with upgrade, open and message, ` +
      `and heartbeat) over the same runtime and transport's bare hooks. msg/s: App over bare; CPU: bare's server CPU ` +
      `µs per message over the App's, the throughput one CPU-bound server would keep (the fairer ratio on a shared ` +
      `machine). Target (issue 24): at least ${APP_TARGET}× at 32 B.`,
      ``,
      `| Workload | Load | ${appPairs.map(([s, bare]) => `${s.runtime.title} ${shortName(s)}/${shortName(bare)} msg/s | CPU`).join(" | ")} |`,
      `|---|---|${appPairs.map(() => "--:|--:|").join("")}`,
      ...ECHO_WORKLOADS.map((workload) =>
        `| ${workload.label} | ${workload.mode.label} | ${
          appPairs.map(([s, bare]) => {
            const ratio = cost(workload, bare) / cost(workload, s);
            const mark = workload.size === 32 && Number.isFinite(ratio) && ratio < APP_TARGET ? " (**missed**)" : "";
            return `${fmtRatio(rate(workload, s), rate(workload, bare))} | ${fmtRatio(cost(workload, bare), cost(workload, s))}${mark}`;
          }).join(" | ")
        } |`
      ),
      ``,
    ]
    : [];

  // Metrics on vs off: the cost of observe() on the App echo.
  const observeRate = (w: Workload, s: ServerSpec): number => median((observeLoad.get(key(w, s)) ?? []).map((r) => r.msgs_per_s));
  const [metricsOff, metricsOn] = OBSERVE_SERVERS as [ServerSpec, ServerSpec];
  const observeCost = (w: Workload, s: ServerSpec): number => median(observeCpu.get(key(w, s)) ?? []);
  const observeTable = [
    `## Metrics on vs off (Node)`,
    ``,
    `The App echo of \`bench/servers/duplex.ts\` (\`PIPELINE=app\`: one middleware object with upgrade, open and message, and heartbeat) ` +
    `with \`observe()\` first (no meter: its own counters, what \`prometheus()\` and \`snapshot()\` read) and without. ` +
    `On/off: msg/s with metrics over msg/s without; the target is at least ${OBSERVE_TARGET}×. Throughput moves with ` +
    `anything else the machine runs, so the server's CPU time per echoed message (from /proc, over warm-up and ` +
    `measure, ≈) is given too: off/on CPU is the throughput one CPU-bound server would keep, the fairer ratio.`,
    ``,
    `| Workload | Load | Off msg/s | On msg/s | On/off | Off CPU µs/msg | On CPU µs/msg | Off/on CPU | Target | Off p50 / p99 µs | On p50 / p99 µs |`,
    `|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|`,
  ];
  for (const workload of OBSERVE_WORKLOADS) {
    const off = observeRate(workload, metricsOff);
    const on = observeRate(workload, metricsOn);
    const offCpu = observeCost(workload, metricsOff);
    const onCpu = observeCost(workload, metricsOn);
    const met = (ratio: number) => (ratio >= OBSERVE_TARGET ? "met" : "**missed**");
    observeTable.push(
      `| ${workload.label} | ${workload.mode.label} | ${fmtInt(off)} | ${fmtInt(on)} | ${fmtRatio(on, off)} | ${offCpu.toFixed(2)} | ${
        onCpu.toFixed(2)
      } | ${fmtRatio(offCpu, onCpu)} | ≥ ${OBSERVE_TARGET}: msg/s ${met(on / off)}, CPU ${met(offCpu / onCpu)} | ${fmtLatency(observeLoad.get(key(workload, metricsOff)) ?? [])} | ${fmtLatency(observeLoad.get(key(workload, metricsOn)) ?? [])} |`,
    );
  }
  const elapsed = (Date.now() - startedAt.getTime()) / 1000;
  const report = [
    ...header,
    ``,
    ...summary,
    ...appTable,
    ...sections,
    ...(echoOn
      ? [
        `Ratio above 1: Duplex handled more messages per second than the reference server. Latency is per message, from`,
        `the generator's send to the echo's arrival, in a closed loop (it mostly measures queueing: in-flight / rate).`,
        ``,
      ]
      : []),
    ...(memoryOn ? [...memoryTable, ``] : []),
    ...(fanoutOn ? [...fanoutTable, ``] : []),
    ...(honoOn ? [...honoTable, ``] : []),
    ...(deflateOn ? [...deflateTable, ``] : []),
    ...(reliableOn ? [...scriptSection("reliable", "reliable delivery", failures), ``] : []),
    ...(contractOn ? [...scriptSection("contract", "validated calls", failures), ``] : []),
    ...(observeOn ? [...observeTable, ``] : []),
    ...(failures.length > 0 ? [`## Failures`, ``, ...failures.map((f) => `- ${f}`), ``] : []),
    `## Runs`,
    ``,
    "```",
    ...raw,
    "```",
    ``,
    `Total time: ${elapsed.toFixed(0)} s; load average at the end: ${loadAverage()}`,
    ``,
  ].join("\n");

  console.log("");
  if (summary.length > 0) console.log(summary.join("\n"));
  if (appTable.length > 0) console.log(appTable.join("\n"));
  if (sections.length > 0) console.log(sections.join("\n"));
  if (memoryOn) console.log(memoryTable.join("\n"));
  if (fanoutOn) console.log(`\n${fanoutTable.join("\n")}`);
  if (honoOn) console.log(`\n${honoTable.join("\n")}`);
  if (deflateOn) console.log(`\n${deflateTable.join("\n")}`);
  if (observeOn) console.log(`\n${observeTable.join("\n")}`);
  if (failures.length > 0) {
    console.log(`\n${failures.length} failure(s):\n${failures.join("\n")}`);
    process.exitCode = 1;
  }
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(`${RESULTS}latest.md`, report);
  console.log(`\nWritten to bench/results/latest.md (${elapsed.toFixed(0)} s)`);
}

/**
 * A part that is a bench script of its own (`reliable`: `bench/reliable.ts`,
 * `contract`: `bench/contract.ts`), run in its own process (it drives its
 * own server): its markdown section as it printed it.
 */
function scriptSection(part: "reliable" | "contract", title: string, failures: string[]): string[] {
  console.log(`\n== ${title} (bench/${part}.ts)`);
  const run = spawnSync(process.execPath, ["--import", "tsx", `${BENCH}${part}.ts`], {
    cwd: ROOT,
    env: { ...process.env, BENCH_REPS: String(REPS) },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 900_000,
  });
  if (run.status !== 0) failures.push(`${part}: bench/${part}.ts exited with ${run.status ?? run.signal}`);
  const section = run.stdout.trim().split("\n");
  console.log(section.join("\n"));
  return section;
}

main().catch((err) => {
  console.error(`bench: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
});
