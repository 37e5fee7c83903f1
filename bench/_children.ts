// Child processes of a bench script (servers under test): every one is
// tracked and killed on any exit path, a signal included, so that no server
// outlives the script that started it; their output read line by line, and
// their CPU time.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import type { Readable } from "node:stream";

/**
 * Kills every child in the returned set when the process exits, and turns
 * SIGINT, SIGTERM and SIGHUP into that exit (with the usual 128 + n code).
 *
 * @param tag Shown in the message a signal prints.
 * @returns The set to add children to (and remove them from once they exited).
 */
export function killedOnExit(tag: string): Set<ChildProcess> {
  const children = new Set<ChildProcess>();
  process.on("exit", () => {
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
  });
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const) {
    process.once(signal, () => {
      console.error(`\n${tag}: ${signal}: stopping`);
      process.exit(code);
    });
  }
  return children;
}

/** Lines of a child's output, waited for by pattern. */
export class Lines {
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

/** Whether `taskset` can pin a process to a CPU here. */
export const PINNED: boolean = spawnSync("taskset", ["-c", "1", "true"]).status === 0;

/** A bench server process, listening. */
export interface BenchServer {
  /** Its port, from its `ready … port=N` line. */
  port: number;
  /** Sends SIGTERM and resolves once it exited. */
  stop(): Promise<void>;
}

/**
 * Starts a bench server (`node --import tsx SCRIPT`, pinned to CPU 0 when
 * `taskset` works) and waits for the `ready … port=N` line it prints once
 * it listens.
 *
 * @param root The repository's folder (the child's working directory).
 * @param script The server's path under `root`.
 * @param env Added to this process's environment for the child.
 * @returns The server, listening.
 * @throws When it exits before it is ready.
 */
export async function startBenchServer(root: string, script: string, env: Record<string, string> = {}): Promise<BenchServer> {
  const argv = ["--import", "tsx", `${root}${script}`];
  const options = { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] as ("ignore" | "pipe" | "inherit")[] };
  const child = PINNED ? spawn("taskset", ["-c", "0", process.execPath, ...argv], options) : spawn(process.execPath, argv, options);
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /ready \S+ port=(\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** Clock ticks per second of `/proc/PID/stat`. */
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100;

/**
 * A process's CPU time so far (user + system, every thread), in seconds,
 * from `/proc/PID/stat`.
 *
 * @throws When the process is gone or there is no `/proc`.
 */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // After "pid (comm) ": state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}
