// Processes for redis_test.ts: a redis-server of its own, a TCP proxy that
// can hold one process off Redis, and servers run on Node, Deno or Bun.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { connect, createServer, type Server, type Socket } from "node:net";
import { delay, within } from "../runtimes/_helpers.ts";

export { type Running, type RuntimeName, startProcess } from "../runtimes/_helpers.ts";



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
