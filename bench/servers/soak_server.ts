/**
 * The server of the soak test (`bench/soak.ts`), on whichever runtime runs
 * it: Duplex's `serve()` on 127.0.0.1 echoing every message as it came (text
 * as text, binary as binary), with a control channel on stdin and stdout
 * for the soak to read the server's own figures.
 *
 *   node --expose-gc --import tsx bench/servers/soak_server.ts
 *   deno run -A --no-lock --v8-flags=--expose-gc bench/servers/soak_server.ts
 *   bun bench/servers/soak_server.ts
 *
 * `PORT` (0, the default, picks one; the ready line tells it), `TRANSPORT`
 * (`raw`, the default, or `native`: `Deno.serve` / `Bun.serve`).
 *
 * Control: a line `stats` on stdin is answered by a line `stats {…}` on
 * stdout (see {@linkcode Stats}); `stats gc` runs a full garbage collection
 * first (`gc()` with `--expose-gc` on Node, `--v8-flags=--expose-gc` on
 * Deno; `Bun.gc(true)` on Bun). The end of stdin closes the server and exits,
 * so that a killed soak leaves no server behind; SIGTERM and SIGINT too.
 *
 * Timers are counted twice: the live timers that Duplex itself holds, through
 * a counting {@linkcode Clock} passed to `serve()` (every runtime), and the
 * whole process's `Timeout` resources from `process.getActiveResourcesInfo()`
 * (Node and Deno; Bun's returns nothing). Handles are the process's open file
 * descriptors by kind, from `/proc/self/fd` (Linux, every runtime), and on
 * Node and Deno the active resources by type too.
 *
 * @module
 */

import { readdirSync, readlinkSync } from "node:fs";
import process from "node:process";
import { type Clock, type Connection, runtime, serve, systemClock, type TransportName } from "../../mod.ts";
import { benchPort, ready } from "./_lifecycle.ts";

/** What the server reports on `stats`. */
export interface Stats {
  runtime: string;
  transport: string;
  /** `server.connections`: live connections, handshakes included. */
  connections: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  /** Open file descriptors by kind (`socket`, `pipe`, `anon_inode`, `other`), `null` without `/proc`. */
  fds: Record<string, number> | null;
  /** `process.getActiveResourcesInfo()` counted by type; `null` where it reports nothing useful (Bun). */
  resources: Record<string, number> | null;
  /** Timers Duplex holds: set, and neither fired nor cleared. */
  duplexTimers: number;
  /** Hooks run since the start. */
  opens: number;
  closes: number;
  messages: number;
  errors: number;
  /** Up to 20 connections opened and not closed yet: request target (`/soak/<client's id>`), `readyState`, `bufferedAmount`. */
  unclosed: string[];
  /** Close codes heard by the `close` hook, counted. */
  closeCodes: Record<string, number>;
  /** Whether the numbers were read after a full garbage collection. */
  gc: boolean;
}

const transport = (process.env.TRANSPORT ?? "raw") as TransportName;

/** The runtime's timers, counting those alive. */
const live = new Map<object, unknown>();
const clock: Clock = {
  now: () => systemClock.now(),
  setTimeout(fn, ms) {
    const token = {};
    live.set(
      token,
      systemClock.setTimeout(() => {
        live.delete(token);
        fn();
      }, ms),
    );
    return token;
  },
  clearTimeout(token) {
    if (typeof token !== "object" || token === null) return;
    const handle = live.get(token);
    if (live.delete(token)) systemClock.clearTimeout(handle);
  },
};

const counts = { opens: 0, closes: 0, messages: 0, errors: 0 };
const closeCodes: Record<string, number> = {};
/** Open connections by id. */
const opened = new Map<string, Connection>();

const server = await serve({
  open(ctx) {
    counts.opens++;
    opened.set(ctx.id, ctx); // The same context for every event of a connection.
  },
  message(ctx, data) {
    counts.messages++;
    ctx.send(data);
  },
  error() {
    counts.errors++;
  },
  close(ctx, { code }) {
    counts.closes++;
    opened.delete(ctx.id);
    closeCodes[code] = (closeCodes[code] ?? 0) + 1;
  },
}, { port: benchPort(), hostname: "127.0.0.1", transport, clock });

function countFds(): Record<string, number> | null {
  let names: string[];
  try {
    names = readdirSync("/proc/self/fd");
  } catch {
    return null;
  }
  const kinds: Record<string, number> = { socket: 0, pipe: 0, anon_inode: 0, other: 0 };
  for (const name of names) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue; // The descriptor that listed the folder, closed since.
    }
    const kind = target.startsWith("socket:") ? "socket" : target.startsWith("pipe:") ? "pipe" : target.startsWith("anon_inode:") ? "anon_inode" : "other";
    kinds[kind]!++;
  }
  return kinds;
}

function countResources(): Record<string, number> | null {
  const info = (process as { getActiveResourcesInfo?: () => string[] }).getActiveResourcesInfo;
  if (runtime() === "bun" || typeof info !== "function") return null;
  const byType: Record<string, number> = {};
  for (const type of info.call(process)) byType[type] = (byType[type] ?? 0) + 1;
  return byType;
}

function fullGc(): boolean {
  const global = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  if (typeof global.gc === "function") {
    global.gc();
    global.gc();
    return true;
  }
  if (global.Bun) {
    global.Bun.gc(true);
    global.Bun.gc(true);
    return true;
  }
  return false;
}

function stats(gc: boolean): Stats {
  const collected = gc && fullGc();
  const memory = process.memoryUsage();
  return {
    runtime: runtime(),
    transport,
    connections: server.connections,
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal,
    external: memory.external,
    fds: countFds(),
    resources: countResources(),
    duplexTimers: live.size,
    ...counts,
    unclosed: [...opened.values()].slice(0, 20).map((p) => `${p.request.url} readyState ${p.readyState} bufferedAmount ${p.bufferedAmount}`),
    closeCodes: { ...closeCodes },
    gc: collected,
  };
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (text: string) => {
  input += text;
  for (let i = input.indexOf("\n"); i >= 0; i = input.indexOf("\n")) {
    const line = input.slice(0, i).trim();
    input = input.slice(i + 1);
    if (line === "stats" || line === "stats gc") console.log(`stats ${JSON.stringify(stats(line === "stats gc"))}`);
    else if (line !== "") console.log(`unknown ${JSON.stringify(line)}`);
  }
});
const exit = async (): Promise<void> => {
  const timeout = new Promise<void>((resolve) => setTimeout(resolve, 2000));
  await Promise.race([server.close(), timeout]);
  process.exit(0);
};
process.stdin.once("end", exit);
process.stdin.once("error", exit);

ready(`soak-${runtime()}-${transport}`, server.port, () => server.close());
