// Runs the docs blocks that start a server (marked `<!-- run: SCENARIO
// [runtime...] -->`): each is written to a module whose `@duplex/ws` imports
// point at the sources, its ports (8080, 8081…) replaced by free ones, and
// started in a child process on the runtime that runs this test (Node through
// tsx, `deno run -A`, `bun`); the scenario (tests/docs/_scenarios.ts) drives
// it with the `ws` client; then it is stopped. A block written for other
// runtimes only (`Deno.serve`, `Bun.serve`) is skipped, and says for which.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { connect as createConnection, createServer } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { after, describe, it } from "node:test";
import { allBlocks, type Block, root, type RuntimeName } from "./_markdown.ts";
import { type Running, SCENARIOS } from "./_scenarios.ts";
import { moduleOf, removeSnippetDir, SNIPPETS_DIR } from "./_snippets.ts";

const here: RuntimeName = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const dir = join(SNIPPETS_DIR, `run-${here}-${process.pid}`);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

function command(file: string): [string, string[]] {
  switch (here) {
    case "node":
      return [process.execPath, ["--import", "tsx", file]];
    case "deno":
      return [process.execPath, ["run", "-A", file]];
    case "bun":
      return [process.execPath, [file]];
  }
}

/** Resolves once something accepts TCP connections on `port`, or rejects when the process exits first. */
async function listening(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the block exited (${child.exitCode ?? child.signalCode}) before listening:\n${output()}`);
    }
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection(port);
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listens on ${port} after 20 s:\n${output()}`);
}

async function start(block: Block, name: string): Promise<Running & { kill(): Promise<void>; output(): string }> {
  // Each port of the block, 8080 to 8089, gets a free one.
  const ports = new Map<number, number>();
  for (const m of block.code.matchAll(/\b(808\d)\b/g)) {
    const port = Number(m[1]);
    if (!ports.has(port)) ports.set(port, await freePort());
  }
  const code = moduleOf(block, 2).replace(/\b(808\d)\b/g, (p) => String(ports.get(Number(p))));
  const file = join(dir, `${name}.ts`);
  writeFileSync(file, code);
  const [bin, args] = command(file);
  const child = spawn(bin, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  // Deno's node:child_process reports a child that it sent a signal to as killed by that signal
  // (code null), even when the child caught it and exited 0 (Deno 2.9): the exit code is unknown there.
  const exited = new Promise<number | null | undefined>((resolve) =>
    child.once("exit", (code, signal) => resolve(here === "deno" && code === null && signal === sent ? undefined : code))
  );
  let sent: NodeJS.Signals | undefined;
  const output = () => `--- stdout\n${stdout}--- stderr\n${stderr}`;
  let stopping: Promise<number | null | undefined> | undefined;
  const stop = (signal: NodeJS.Signals = "SIGTERM"): Promise<number | null | undefined> => {
    if (stopping === undefined) {
      sent = signal;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      stopping = exited.finally(() => clearTimeout(timer));
    }
    return stopping;
  };
  const first = ports.values().next().value;
  if (first === undefined) throw new Error(`${block.file}:${block.line}: a run block without a port (8080…)`);
  try {
    await listening(first, child, output);
    for (const port of ports.values()) await listening(port, child, output);
  } catch (error) {
    await stop("SIGKILL");
    throw error;
  }
  return {
    port(original) {
      const port = ports.get(original);
      if (port === undefined) throw new Error(`the block has no port ${original}`);
      return port;
    },
    stop,
    stdout: () => stdout,
    output,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) await stop("SIGKILL");
    },
  };
}

const marked = allBlocks().filter((b) => b.run !== undefined);

describe(`docs: the blocks that start a server, run on ${here}`, () => {
  mkdirSync(dir, { recursive: true });
  after(() => removeSnippetDir(dir));

  it("there are blocks to run", () => assert.ok(marked.length > 0));

  marked.forEach((block, i) => {
    const { scenario, runtimes } = block.run!;
    const title = `${block.file}:${block.line} (${scenario})`;
    const skip = !runtimes.includes(here) && `written for ${runtimes.join(" and ")} only`;
    it(title, { skip, timeout: 60_000 }, async () => {
      const check = SCENARIOS[scenario];
      assert.ok(check !== undefined, `unknown scenario ${scenario}`);
      const server = await start(block, `${block.file.replace(/[^\w]+/g, "_")}_L${block.line}_${i}`);
      try {
        await check(server);
      } catch (error) {
        throw new Error(`${title}: ${error instanceof Error ? error.message : String(error)}\n${server.output()}`, { cause: error });
      } finally {
        await server.kill();
      }
    });
  });
});
