// examples/hono-chat as a child process, for the browser tests: started with
// PORT=0 on one runtime, stopped with SIGTERM.
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import type { Page } from "playwright-core";
import { runtime } from "../../mod.ts";
import { command, root, type RuntimeName, within } from "../runtimes/_helpers.ts";
import { CHROMIUM, chromiumMissing, inCi } from "./_chromium.ts";

export const SCRIPT = "examples/hono-chat/server.ts";

/** The demo, running. */
export interface Demo {
  readonly line: string;
  readonly port: number;
  readonly url: string;
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code or signal. */
  stop(): Promise<number | string>;
}

/**
 * Starts the demo with PORT=0 and waits for `listening on http://127.0.0.1:<port>`.
 * (`startProcess` from _helpers.ts waits for a `ws://` line, which this demo,
 * serving a page too, does not print.)
 */
export async function startDemo(runtime: RuntimeName, extraEnv: Record<string, string> = {}): Promise<Demo> {
  const [file, args] = command(runtime, SCRIPT);
  const env: Record<string, string | undefined> = {
    ...process.env,
    PORT: "0",
    HOST: "127.0.0.1",
    HEARTBEAT_INTERVAL_MS: "1000",
    HEARTBEAT_TIMEOUT_MS: "1000",
    ...extraEnv,
  };
  delete env.LOG;
  const child: ChildProcess = spawn(file, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let output = "";
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => void (output += chunk));
  const exited = new Promise<number | string>((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill); // never outlive the test run
  const line = await within(
    new Promise<string>((resolve, reject) => {
      child.stdout!.on("data", (chunk: string) => {
        stdout += chunk;
        output += chunk;
        const end = stdout.indexOf("\n");
        if (end >= 0) resolve(stdout.slice(0, end));
      });
      child.once("error", reject);
      void exited.then((code) => reject(new Error(`${runtime}: ${SCRIPT} exited (${code}) before listening`)));
    }),
    15_000,
    `${runtime}: ${SCRIPT}'s first line`,
  ).catch((error) => {
    kill();
    throw new Error(`${(error as Error).message}\noutput: ${output}`);
  });
  const port = Number(/^listening on http:\/\/127\.0\.0\.1:(\d+)$/.exec(line)?.[1] ?? NaN);
  if (!Number.isInteger(port) || port <= 0) {
    kill();
    throw new Error(`${runtime}: unexpected first line ${JSON.stringify(line)}; output: ${output}`);
  }
  return {
    line,
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      try {
        return await within(exited, 5000, `${runtime} to exit on SIGTERM`);
      } catch {
        kill();
        return await exited;
      } finally {
        process.off("exit", kill);
      }
    },
  };
}

/**
 * Why the demo's browser tests skip here, or `false`: they run from Node
 * only (they start Node, Deno and Bun processes themselves), with Chromium.
 */
export function demoSkipReason(): string | false {
  const on = runtime();
  if (on !== "node") return `runs from Node only (npm run test:node): it starts Node, Deno and Bun processes itself; not on ${on}`;
  if (chromiumMissing(on) && !inCi) {
    return `chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH); CI installs it, and there this test fails without it`;
  }
  return false;
}

/** A message as the demo page shows it. */
export interface Shown {
  offset: number;
  from: string;
  text: string;
}

/** The messages the demo page shows, in order. */
export const shown = (page: Page): Promise<Shown[]> =>
  page.$$eval("#messages li[data-testid=message]", (items) =>
    items.map((li) => ({
      offset: Number((li as HTMLElement).dataset.offset),
      from: li.querySelector(".from")?.textContent ?? "",
      text: li.querySelector(".text")?.textContent ?? "",
    })));
