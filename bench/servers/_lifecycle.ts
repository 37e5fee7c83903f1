/**
 * What every benchmark server shares, on Node, Deno and Bun alike: the port
 * to listen on, the ready line that `bench/run.ts` waits for, a full garbage
 * collection on SIGUSR2, and a prompt exit on SIGTERM / SIGINT (or when the
 * parent's stdin pipe closes, so that a killed runner leaves no orphan server
 * behind). It uses `node:process` and `node:timers`, which Deno and Bun
 * provide too.
 *
 * @module
 */

import process from "node:process";
import { setTimeout } from "node:timers";

/** The port from `PORT`; 0 (the default) lets the system pick a free one. */
export function benchPort(): number {
  const port = Number(process.env.PORT ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Invalid PORT: ${process.env.PORT}`);
  }
  return port;
}

/**
 * permessage-deflate from `DEFLATE_THRESHOLD`, in the shape both Duplex's
 * `serve()` and `ws`'s `WebSocketServer` take: unset or empty, off
 * (`false`); `default`, on with the server's defaults (`true`: threshold
 * 1024 in both, though `ws` applies it only without context takeover); a
 * number, on with that threshold in bytes (`0` compresses every message).
 */
export function benchPerMessageDeflate(): boolean | { threshold: number } {
  const raw = process.env.DEFLATE_THRESHOLD;
  if (raw === undefined || raw === "") return false;
  if (raw === "default") return true;
  const threshold = Number(raw);
  if (!Number.isInteger(threshold) || threshold < 0) {
    throw new RangeError(`Invalid DEFLATE_THRESHOLD: expected "default" or an integer >= 0, got ${raw}`);
  }
  return { threshold };
}

/** A suffix for the ready line's name: `-deflate`, `-deflate0`, or nothing when off. */
export function deflateTag(option: boolean | { threshold: number }): string {
  return option === false ? "" : option === true ? "-deflate" : `-deflate${option.threshold}`;
}

/**
 * Prints `ready <name> port=<port> pid=<pid>` and installs the exit paths:
 * SIGTERM and SIGINT run `close` (for at most 2 s) and exit 0; with
 * `BENCH_WATCH_STDIN=1`, the end of stdin does the same. SIGUSR2 runs a full
 * garbage collection, then prints `gc done` (the runner measures memory
 * after it): `gc()` when V8 exposes it (Node with `--expose-gc`, Deno with
 * `--v8-flags=--expose-gc`), else `Bun.gc(true)` on Bun; without either it
 * prints `gc unavailable`.
 *
 * @param name The server's name, for the ready line.
 * @param port The port the server listens on.
 * @param close Stops the server.
 */
export function ready(name: string, port: number, close: () => Promise<void> | void): void {
  let exiting = false;
  const exit = async (): Promise<void> => {
    if (exiting) return;
    exiting = true;
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 2000).unref());
    try {
      await Promise.race([Promise.resolve(close()), timeout]);
    } finally {
      process.exit(0);
    }
  };
  process.once("SIGTERM", exit);
  process.once("SIGINT", exit);
  if (process.env.BENCH_WATCH_STDIN === "1") {
    process.stdin.on("data", () => {});
    process.stdin.once("end", exit);
    process.stdin.once("error", exit);
  }
  process.on("SIGUSR2", () => {
    const gc = fullGc();
    if (gc) {
      gc();
      gc();
    }
    console.log(gc ? "gc done" : "gc unavailable");
  });
  console.log(`ready ${name} port=${port} pid=${process.pid}`);
}

/** A full, synchronous garbage collection, if this runtime offers one. */
function fullGc(): (() => void) | undefined {
  const global = globalThis as { gc?: () => void; Bun?: { gc?(force: boolean): void } };
  const v8Gc = global.gc;
  if (typeof v8Gc === "function") return () => v8Gc();
  const bun = global.Bun;
  if (typeof bun?.gc === "function") return () => bun.gc!(true);
  return undefined;
}
