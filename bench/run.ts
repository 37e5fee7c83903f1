/**
 * The echo benchmark: Duplex on Node against `ws` on Node, driven by the C
 * load generator in `bench/loadgen.c`. See `bench/README.md`.
 *
 *   npm run bench
 *   BENCH_REPS=1 BENCH_SECONDS=2 npm run bench   # quick check
 *
 * For each workload (payload size × text/binary) and each repetition, it
 * starts each server afresh pinned to CPU 0, runs the generator pinned to
 * CPU 1 (warm-up, then measure), and stops the server; then it measures the
 * memory each server needs per idle connection. It prints a markdown report
 * of the medians and writes it to `bench/results/latest.md`.
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import process from "node:process";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

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
const IDLE_CONNECTIONS = envNumber("BENCH_IDLE_CONNECTIONS", 2000, true);

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BENCH = `${ROOT}bench/`;
const LOADGEN = `${BENCH}.build/loadgen`;
const RESULTS = `${BENCH}results/`;
const HOST = "127.0.0.1";

interface ServerSpec {
  name: string;
  file: string;
}

const SERVERS: ServerSpec[] = [
  { name: "Duplex", file: "bench/servers/duplex_node.ts" },
  { name: "ws", file: "bench/servers/ws_node.ts" },
];

interface Workload {
  label: string;
  size: number;
  kind: "text" | "binary";
}

const WORKLOADS: Workload[] = [];
for (const [size, sizeLabel] of [[32, "32 B"], [1024, "1 KiB"], [65536, "64 KiB"]] as const) {
  for (const kind of ["text", "binary"] as const) WORKLOADS.push({ label: `${sizeLabel} ${kind}`, size, kind });
}

// ---- child processes: every one is tracked and killed on any exit path ----

const children = new Set<ChildProcess>();

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
}

process.on("exit", killAll);
for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const) {
  process.once(signal, () => {
    console.error(`\nbench: ${signal}: stopping`);
    process.exit(code);
  });
}

/** Lines of a child's output, waited for by pattern. */
class Lines {
  readonly all: string[] = [];
  #next = 0;
  #ended = false;
  #wake: (() => void) | undefined;

  constructor(stream: Readable) {
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (text: string) => {
      partial += text;
      for (let i = partial.indexOf("\n"); i >= 0; i = partial.indexOf("\n")) {
        this.all.push(partial.slice(0, i));
        partial = partial.slice(i + 1);
      }
      this.#wake?.();
    });
    stream.on("end", () => {
      if (partial !== "") this.all.push(partial);
      this.#ended = true;
      this.#wake?.();
    });
  }

  /** Resolves with the first unread line that matches, skipping the others. */
  async waitFor(pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.#next < this.all.length) {
        const match = this.all[this.#next++]!.match(pattern);
        if (match) return match;
      }
      if (this.#ended) throw new Error(`Output ended while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }
}

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
  const node = [process.execPath, ...(exposeGc ? ["--expose-gc"] : []), "--import", "tsx", spec.file];
  const proc = start([...pin(0), ...node], { PORT: "0", BENCH_WATCH_STDIN: "1" });
  try {
    const match = await proc.stdout.waitFor(/^ready \S+ port=(\d+) pid=(\d+)/, 20_000, `${spec.name} to be ready`);
    return { proc, port: Number(match[1]), pid: Number(match[2]) };
  } catch (err) {
    await stop(proc);
    throw new Error(`${spec.name} did not start: ${(err as Error).message}\n${proc.stderr()}`);
  }
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

async function runLoad(server: RunningServer, workload: Workload): Promise<LoadResult> {
  const args = [
    ...["-h", HOST, "-p", String(server.port), "-c", String(CONNECTIONS), "-i", String(INFLIGHT)],
    ...["-s", String(workload.size), "-t", workload.kind, "-w", String(WARMUP), "-d", String(SECONDS)],
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

function fmtLatency(results: LoadResult[]): string {
  if (results.length === 0) return "n/a";
  return `${fmtInt(median(results.map((r) => r.p50_us)))} / ${fmtInt(median(results.map((r) => r.p99_us)))}`;
}

function fmtMiB(kib: number): string {
  return Number.isFinite(kib) ? `${dec1.format(kib / 1024)} MiB` : "n/a";
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

async function main(): Promise<void> {
  compileLoadgen();

  const startedAt = new Date();
  const commit = sh("git", ["rev-parse", "--short", "HEAD"]);
  const dirty = sh("git", ["status", "--porcelain", "--untracked-files=no"]) !== "" ? ", uncommitted changes" : "";
  const header = [
    `# Duplex echo benchmark (Node)`,
    ``,
    `- Date: ${startedAt.toISOString()}`,
    `- Machine: ${nproc} CPUs (nproc), ${cpuModel()}, ${os.type()} ${os.release()}, ${Math.round(os.totalmem() / 2 ** 20)} MiB RAM`,
    `- Node ${process.version}; Duplex ${packageVersion("package.json")}${commit ? ` (git ${commit}${dirty})` : ""}; ` +
    `ws ${packageVersion("node_modules/ws/package.json")} (no bufferutil / utf-8-validate)`,
    `- Load: ${CONNECTIONS} connections × ${INFLIGHT} messages in flight, ${WARMUP} s warm-up then ${SECONDS} s measured, ` +
    `every echo verified; median of ${REPS} run${REPS === 1 ? "" : "s"} per cell, a fresh server per run, servers interleaved`,
    `- Pinning: ${pinNote}`,
    `- Load average at start: ${loadAverage()} (other work on the machine skews the numbers)`,
  ];
  console.log(header.join("\n"));
  console.log("");

  const load = new Map<string, LoadResult[]>(); // key: `${workload}|${server}`
  const memory = new Map<string, MemoryResult[]>();
  const failures: string[] = [];
  const raw: string[] = [];
  const key = (w: Workload, s: ServerSpec): string => `${w.label}|${s.name}`;
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

  for (let rep = 1; rep <= REPS; rep++) {
    const order = rep % 2 === 1 ? SERVERS : [...SERVERS].reverse();
    for (const workload of WORKLOADS) {
      for (const spec of order) {
        const tag = `[${rep}/${REPS}] ${workload.label.padEnd(13)} ${spec.name.padEnd(7)}`;
        await attempt(tag, async () => {
          const server = await startServer(spec);
          try {
            const result = await runLoad(server, workload);
            push(load, key(workload, spec), result);
            return `${fmtInt(result.msgs_per_s).padStart(9)} msg/s ${
              result.mb_per_s.toFixed(1).padStart(7)
            } MB/s  p50 ${fmtInt(result.p50_us).padStart(7)} µs  p99 ${fmtInt(result.p99_us).padStart(7)} µs`;
          } finally {
            await stopServer(server);
          }
        });
      }
    }
    for (const spec of order) {
      const tag = `[${rep}/${REPS}] ${`idle × ${IDLE_CONNECTIONS}`.padEnd(13)} ${spec.name.padEnd(7)}`;
      await attempt(tag, async () => {
        const result = await measureMemory(spec);
        push(memory, spec.name, result);
        return `baseline ${fmtMiB(result.baselineKiB)}, loaded ${fmtMiB(result.loadedKiB)}: ${
          fmtKiB(result.perConnectionKiB)
        } per connection`;
      });
    }
  }

  const [duplex, ws] = SERVERS as [ServerSpec, ServerSpec];
  const table = [
    `| Workload | Duplex msg/s | ws msg/s | Duplex/ws | Duplex p50 / p99 µs | ws p50 / p99 µs |`,
    `|---|--:|--:|--:|--:|--:|`,
  ];
  for (const workload of WORKLOADS) {
    const d = load.get(key(workload, duplex)) ?? [];
    const w = load.get(key(workload, ws)) ?? [];
    const dRate = median(d.map((r) => r.msgs_per_s));
    const wRate = median(w.map((r) => r.msgs_per_s));
    table.push(
      `| ${workload.label} | ${fmtInt(dRate)} | ${fmtInt(wRate)} | ${fmtRatio(dRate, wRate)} | ${fmtLatency(d)} | ${
        fmtLatency(w)
      } |`,
    );
  }

  const memoryTable = [
    `Memory per idle connection: server RSS with ${fmtInt(IDLE_CONNECTIONS)} open idle connections minus its ` +
    `baseline RSS, both after a full GC, divided by ${fmtInt(IDLE_CONNECTIONS)} (median of ${REPS}):`,
    ``,
    `| Server | Baseline RSS | RSS with ${fmtInt(IDLE_CONNECTIONS)} connections | Per connection |`,
    `|---|--:|--:|--:|`,
  ];
  const perConnection = new Map<string, number>();
  for (const spec of SERVERS) {
    const list = memory.get(spec.name) ?? [];
    const per = median(list.map((m) => m.perConnectionKiB));
    perConnection.set(spec.name, per);
    memoryTable.push(
      `| ${spec.name} | ${fmtMiB(median(list.map((m) => m.baselineKiB)))} | ${
        fmtMiB(median(list.map((m) => m.loadedKiB)))
      } | ${fmtKiB(per)} |`,
    );
  }
  memoryTable.push(
    ``,
    `Duplex/ws memory per connection: ${fmtRatio(perConnection.get(duplex.name)!, perConnection.get(ws.name)!)}`,
  );

  const elapsed = (Date.now() - startedAt.getTime()) / 1000;
  const report = [
    ...header,
    ``,
    ...table,
    ``,
    `Ratio above 1: Duplex handled more messages per second than ws. Latency is per message, from the`,
    `generator's send to the echo's arrival, in a closed loop (it mostly measures queueing: in-flight / rate).`,
    ``,
    ...memoryTable,
    ...(failures.length > 0 ? [``, `## Failures`, ``, ...failures.map((f) => `- ${f}`)] : []),
    ``,
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
  console.log(table.join("\n"));
  console.log("");
  console.log(memoryTable.join("\n"));
  if (failures.length > 0) {
    console.log(`\n${failures.length} failure(s):\n${failures.join("\n")}`);
    process.exitCode = 1;
  }
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(`${RESULTS}latest.md`, report);
  console.log(`\nWritten to bench/results/latest.md (${elapsed.toFixed(0)} s)`);
}

main().catch((err) => {
  console.error(`bench: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
});
