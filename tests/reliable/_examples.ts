// examples/reliable/publish.ts and subscribe.ts as child processes, for the
// tests that run them from outside (e2e_test.ts, redis_faults_test.ts): start
// one on a runtime, read its lines, wait for its exit, and check that a
// subscriber printed exactly `1` … `COUNT`.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { command, root, type RuntimeName, within } from "../runtimes/_helpers.ts";

export const SERVER = "examples/reliable/server.ts";
export const PUBLISH = "examples/reliable/publish.ts";
export const SUBSCRIBE = "examples/reliable/subscribe.ts";

/** A client example running as a child process. */
export interface ClientProcess {
  readonly name: string;
  /** Complete lines printed so far. */
  lines(): string[];
  stderr(): string;
  /** Resolves with the exit code (or signal). */
  readonly exited: Promise<number | string>;
  kill(): void;
}

const children = new Set<ChildProcess>();

/** SIGKILLs every example still running (what a failed test left behind). */
export function killAll(): void {
  for (const child of children) child.kill("SIGKILL");
}
process.once("exit", killAll); // never outlive the test run

/** Starts `script` (PUBLISH or SUBSCRIBE) with `args` on runtime `on`. */
export function run(on: RuntimeName, script: string, args: string[]): ClientProcess {
  const [file, base] = command(on, script);
  const name = `${script.split("/").pop()} on ${on}`;
  const child = spawn(file, [...base, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => void (stdout += chunk));
  child.stderr!.on("data", (chunk: string) => void (stderr += chunk));
  const exited = new Promise<number | string>((resolve) => {
    child.once("close", (code, signal) => {
      children.delete(child);
      resolve(code ?? signal ?? -1);
    });
  });
  return {
    name,
    lines: () => stdout.split("\n").slice(0, -1),
    stderr: () => stderr,
    exited,
    kill: () => child.kill("SIGKILL"),
  };
}

/** `["from", …, "to"]`. */
export const numbers = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

/** Waits for the exit of `p`, failing with its output after `ms`. */
export async function exitOf(p: ClientProcess, ms: number): Promise<number | string> {
  try {
    return await within(p.exited, ms, `${p.name} to exit`);
  } catch (error) {
    p.kill();
    throw new Error(`${(error as Error).message}; ${p.lines().length} lines; stderr: ${p.stderr()}`);
  }
}

/** Asserts that `lines` are exactly `1` … `count`, pointing at the first wrong one. */
export function assertExactly(lines: string[], count: number, what: string): void {
  const wanted = numbers(1, count);
  const bad = lines.findIndex((line, i) => line !== wanted[i]);
  if (bad >= 0 || lines.length !== count) {
    const at = bad >= 0 ? bad : Math.min(lines.length, count);
    assert.fail(
      `${what}: ${lines.length} lines, wanted ${count}; first difference at line ${at + 1}: ` +
        `${JSON.stringify(lines.slice(Math.max(0, at - 2), at + 3))}`,
    );
  }
}
