// Processes for redis_test.ts: a redis-server of its own, a TCP proxy that
// can hold one process off Redis, and servers run on Node, Deno or Bun.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { connect, createServer, type Server, type Socket } from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { delay, within } from "../runtimes/_helpers.ts";

export const root = fileURLToPath(new URL("../../", import.meta.url));

export type RuntimeName = "node" | "deno" | "bun";

/** Whether `redis-server` can be run here. */
export function hasRedisServer(): boolean {
  const result = spawnSync("redis-server", ["--version"], { stdio: "ignore" });
  return result.error === undefined && result.status === 0;
}

/** A TCP port free right now on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Sends PING; resolves true on +PONG. */
export function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let reply = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      reply += chunk.toString();
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
  });
}

/** A redis-server on a fixed port, which can be killed and started again. */
export class RedisProcess {
  readonly port: number;
  #child: ChildProcess | undefined;
  #log = "";

  constructor(port: number) {
    this.port = port;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** What redis-server printed. */
  get log(): string {
    return this.#log;
  }

  async start(): Promise<void> {
    const child = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#child = child;
    child.stdout!.on("data", (chunk: Buffer) => void (this.#log += chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => void (this.#log += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (!(await ping(this.port))) {
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${this.#log}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING on ${this.port}: ${this.#log}`);
      await delay(20);
    }
  }

  /** Kills it (SIGKILL: a crash, no goodbye to the clients) and waits for the port to be free. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await within(exited, 5000, "redis-server to exit");
  }
}

/**
 * A TCP proxy in front of Redis. While `held`, it closes every new
 * connection at once (to the client, Redis looks down) and the ones open.
 */
export class TcpProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  held = false;
  port = 0;

  constructor(target: number) {
    this.#server = createServer((client) => {
      if (this.held) return void client.destroy();
      const upstream = connect(target, "127.0.0.1");
      this.#sockets.add(client);
      this.#sockets.add(upstream);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      client.on("error", end).on("close", end);
      upstream.on("error", end).on("close", end);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.listen(0, "127.0.0.1", () => {
        this.port = (this.#server.address() as { port: number }).port;
        resolve();
      });
    });
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  hold(): void {
    this.held = true;
    for (const socket of this.#sockets) socket.destroy();
  }

  release(): void {
    this.held = false;
  }

  close(): Promise<void> {
    this.hold();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** A server script running on one runtime. */
export interface Running {
  readonly name: string;
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
  stderr(): string;
  /** SIGTERM, then SIGKILL if it has not exited within 10 s; resolves with the exit code or signal. */
  stop(): Promise<number | string>;
}

/** The command that runs a TypeScript file on a runtime. */
export function command(on: RuntimeName, script: string): [string, string[]] {
  switch (on) {
    case "node":
      return [process.execPath, ["--import", "tsx", script]];
    case "deno":
      return [`${root}node_modules/.bin/deno`, ["run", "-A", script]];
    case "bun":
      return [`${root}node_modules/.bin/bun`, [script]];
  }
}

/** Starts `script` on `on` and waits for its `listening on ws://127.0.0.1:<port>` line. */
export async function startProcess(on: RuntimeName, script: string, env: Record<string, string>, name: string = on): Promise<Running> {
  const [file, args] = command(on, script);
  const child = spawn(file, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => void (stderr += chunk));
  const exited = new Promise<number | string>((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  const line = await within(
    new Promise<string>((resolve, reject) => {
      child.stdout!.on("data", (chunk: string) => {
        stdout += chunk;
        const end = stdout.indexOf("\n");
        if (end >= 0) resolve(stdout.slice(0, end));
      });
      child.once("error", reject);
      void exited.then((code) => reject(new Error(`${name}: ${script} exited (${code}) before listening`)));
    }),
    30_000,
    `${name}: ${script}'s first line`,
  ).catch((error) => {
    child.kill("SIGKILL");
    throw new Error(`${(error as Error).message}\nstderr: ${stderr}`);
  });
  const port = Number(/^listening on ws:\/\/127\.0\.0\.1:(\d+)$/.exec(line)?.[1] ?? NaN);
  if (!Number.isInteger(port)) {
    child.kill("SIGKILL");
    throw new Error(`${name}: unexpected first line ${JSON.stringify(line)}; stderr: ${stderr}`);
  }
  return {
    name,
    child,
    port,
    url: `ws://127.0.0.1:${port}`,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      try {
        return await within(exited, 10_000, `${name} to exit on SIGTERM`);
      } catch {
        child.kill("SIGKILL");
        return await exited;
      }
    },
  };
}
