// The processes of redis_faults_test.ts (and the Redis rows of the
// benchmark's kind of set-up): a durable redis-server of the test's own that
// can be SIGKILLed, started again on the same port with its data, and paused;
// and examples/reliable/server.ts on a runtime, with REDIS_URL, that can be
// SIGKILLed and started again on the same port.
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { delay, type Running, type RuntimeName, startProcess, within } from "../runtimes/_helpers.ts";
import { freePort, ping } from "../pubsub/_processes.ts";
import { SERVER } from "./_examples.ts";

export { freePort, hasRedisServer } from "../pubsub/_processes.ts";

/**
 * Sends one command to Redis on `port` over a fresh connection and resolves
 * with its reply: the line of a simple one (`+OK`, `:42`, `-ERR …`), the
 * text of a bulk string, the first line of an array (`*3`). Enough for the
 * admin commands of the tests, with no client whose reconnects could get in
 * the way.
 */
export function redisCommand(port: number, ...args: string[]): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      const socket = connect(port, "127.0.0.1");
      let reply = "";
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
      });
      socket.on("data", (chunk) => {
        reply += chunk.toString();
        const end = reply.indexOf("\r\n");
        if (end < 0) return;
        const head = reply.slice(0, end);
        let answer = head;
        if (head.startsWith("$") && head !== "$-1") {
          const body = Buffer.from(reply.slice(end + 2));
          const length = Number(head.slice(1));
          if (body.length < length) return;
          answer = body.subarray(0, length).toString();
        }
        socket.destroy();
        resolve(answer);
      });
      socket.once("close", () => reject(new Error(`redis closed before answering ${args.join(" ")}`)));
    }),
    5000,
    `redis ${args[0]}`,
  );
}

/**
 * The Redis key of a topic's stream (`s`), meta (`m`) or idempotency keys
 * (`k`), as the README documents them: `duplex:{T}:s`, where T is the topic
 * with `%` and `}` written `%25` and `%7D` (the topic is the hash tag).
 */
export function topicKey(topic: string, part: "s" | "m" | "k"): string {
  return `duplex:{${topic.replaceAll("%", "%25").replaceAll("}", "%7D")}}:${part}`;
}

/**
 * A redis-server on a port of its own, with its own data folder, and the
 * persistence the guarantees need: `--appendonly yes --appendfsync always`
 * (every write is on disk before Redis answers it), so that a SIGKILL loses
 * nothing that was acked. No RDB snapshots (`--save ""`): the AOF is the data.
 */
export class DurableRedis {
  readonly port: number;
  readonly dir: string;
  #child: ChildProcess | undefined;
  #exited: Promise<unknown> = Promise.resolve();
  #log = "";
  /** Times it was started. */
  starts = 0;
  /** A one-node Redis Cluster (every slot on this node): multi-key commands and scripts must stay in one slot. */
  readonly cluster: boolean;

  private constructor(port: number, cluster: boolean) {
    this.port = port;
    this.cluster = cluster;
    this.dir = mkdtempSync(join(tmpdir(), "duplex-redis-"));
  }

  /** Starts one on a free port; `cluster`: as a one-node Redis Cluster. */
  static async start(options: { cluster?: boolean } = {}): Promise<DurableRedis> {
    const redis = new DurableRedis(await freePort(), options.cluster ?? false);
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** What redis-server printed (all its runs). */
  get log(): string {
    return this.#log;
  }

  /** Starts it (again, on the same port and folder: it loads its AOF) and waits for PONG. */
  async start(): Promise<void> {
    const child = spawn(
      "redis-server",
      [
        ...["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
        ...(this.cluster ? ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"] : []),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once("exit", resolve));
    this.starts++;
    child.stdout!.on("data", (chunk: Buffer) => void (this.#log += chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => void (this.#log += chunk.toString()));
    const deadline = Date.now() + 10_000;
    // PONG comes only once the AOF is loaded (before that: -LOADING).
    while (!(await ping(this.port))) {
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${this.#log}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING on ${this.port}: ${this.#log}`);
      await delay(20);
    }
    if (this.cluster) await this.#clusterUp();
  }

  /** A one-node cluster: every slot on this node (the first time), then `cluster_state:ok`. */
  async #clusterUp(): Promise<void> {
    if ((await redisCommand(this.port, "CLUSTER", "INFO")).includes("cluster_slots_assigned:0")) {
      const reply = await redisCommand(this.port, "CLUSTER", "ADDSLOTSRANGE", "0", "16383");
      if (reply !== "+OK") throw new Error(`CLUSTER ADDSLOTSRANGE: ${reply}`);
    }
    const deadline = Date.now() + 10_000;
    while (!(await redisCommand(this.port, "CLUSTER", "INFO")).includes("cluster_state:ok")) {
      if (Date.now() > deadline) throw new Error("the one-node cluster never reached cluster_state:ok");
      await delay(50);
    }
  }

  /** SIGKILL: a crash, no goodbye to the clients, no last write. Waits for the exit. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGKILL");
    await within(this.#exited, 5000, "redis-server to exit");
  }

  /** SIGKILL, then started again on the same port with what its AOF holds. */
  async restart(pauseMs = 0): Promise<void> {
    await this.kill();
    if (pauseMs > 0) await delay(pauseMs);
    await this.start();
  }

  /**
   * Copies its data folder aside (its AOF: with `appendfsync always` the files
   * hold every acked write), for {@linkcode rewind}.
   */
  snapshot(): void {
    rmSync(`${this.dir}.snapshot`, { recursive: true, force: true });
    cpSync(this.dir, `${this.dir}.snapshot`, { recursive: true });
  }

  /**
   * SIGKILL, then started again from the last {@linkcode snapshot}: Redis
   * forgets acked writes, as it does after a crash with weaker persistence
   * (`appendfsync everysec` on a machine crash, RDB snapshots only).
   * `whileDown` runs while it is down.
   */
  async rewind(whileDown?: () => Promise<void>): Promise<void> {
    await this.kill();
    await whileDown?.();
    rmSync(this.dir, { recursive: true, force: true });
    cpSync(`${this.dir}.snapshot`, this.dir, { recursive: true });
    await this.start();
  }

  /** `CLIENT PAUSE ms ALL`: Redis answers no client's command for `ms`. */
  async pause(ms: number): Promise<void> {
    const reply = await redisCommand(this.port, "CLIENT", "PAUSE", String(ms), "ALL");
    if (reply !== "+OK") throw new Error(`CLIENT PAUSE: ${reply}`);
  }

  /** Kills it and removes its folder. */
  async close(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(`${this.dir}.snapshot`, { recursive: true, force: true });
  }
}

/**
 * examples/reliable/server.ts on one runtime, with `env` (REDIS_URL,
 * HISTORY…): started on a free port, then SIGKILLed and started again on
 * that same port as often as a test likes.
 */
export class ExampleServer {
  readonly runtime: RuntimeName;
  readonly env: Record<string, string>;
  port = 0;
  #running: Running | undefined;
  /** Times it was started. */
  starts = 0;
  /** What every run printed on stderr. */
  #stderr = "";

  private constructor(runtime: RuntimeName, env: Record<string, string>) {
    this.runtime = runtime;
    this.env = env;
  }

  static async start(runtime: RuntimeName, env: Record<string, string>): Promise<ExampleServer> {
    const server = new ExampleServer(runtime, env);
    await server.start();
    return server;
  }

  get name(): string {
    return `server.ts on ${this.runtime}`;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#running !== undefined;
  }

  /** The process's state: `up (pid N)`, `exited (code or signal)`, or `stopped`. */
  get status(): string {
    const child = this.#running?.child;
    if (child === undefined) return "stopped";
    if (child.exitCode !== null || child.signalCode !== null) return `exited (${child.exitCode ?? child.signalCode})`;
    return `up (pid ${child.pid})`;
  }

  /** Everything its runs printed on stderr. */
  stderr(): string {
    return this.#stderr + (this.#running?.stderr() ?? "");
  }

  /** Starts it: on a free port the first time, on the same port after. */
  async start(): Promise<void> {
    const running = await startProcess(this.runtime, SERVER, { ...this.env, PORT: String(this.port), HOST: "127.0.0.1" }, this.name);
    if (this.port !== 0 && running.port !== this.port) throw new Error(`${this.name} came back on ${running.port}, not ${this.port}`);
    this.port = running.port;
    this.#running = running;
    this.starts++;
  }

  /** SIGKILL (no close frames, nothing flushed) and waits for the exit. */
  async kill(): Promise<void> {
    const running = this.#running;
    if (running === undefined) return;
    this.#running = undefined;
    this.#stderr += running.stderr();
    const { child } = running;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await within(exited, 5000, `${this.name} to exit on SIGKILL`);
  }

  /** SIGKILL, then started again on the same port. */
  async restart(pauseMs = 0): Promise<void> {
    await this.kill();
    if (pauseMs > 0) await delay(pauseMs);
    await this.start();
  }

  /** SIGTERM; resolves with the exit code (or signal). */
  async stop(): Promise<number | string> {
    const running = this.#running;
    if (running === undefined) return 0;
    this.#running = undefined;
    const code = await running.stop();
    this.#stderr += running.stderr();
    return code;
  }
}
