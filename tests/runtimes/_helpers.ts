// Helpers for the real-socket tests: a ws client wrapper and a minimal raw
// TCP client, each wait bounded so that no test can hang.
import { type ChildProcess, spawn } from "node:child_process";
import { connect as netConnect, type Socket } from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { cat } from "../core/_util.ts";

export const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** Rejects after `ms` unless `promise` settles first. */
export function within<T>(promise: Promise<T>, ms = 3000, what = "operation"): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it is true, or fails after `ms`. */
export async function until(check: () => boolean, ms = 3000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await delay(5);
  }
}

export interface Received {
  data: Buffer;
  isBinary: boolean;
}

/** A `ws` client that queues what it receives. */
export class Client {
  readonly ws: WebSocket;
  readonly messages: Received[] = [];
  readonly pongs: Buffer[] = [];
  readonly order: string[] = [];
  closed: Promise<{ code: number; reason: string }>;
  #waiters: (() => void)[] = [];

  constructor(url: string, protocols?: string | string[], options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, protocols, { perMessageDeflate: false, ...options });
    this.ws.on("message", (data: Buffer, isBinary: boolean) => {
      this.messages.push({ data, isBinary });
      this.order.push("message");
      this.#notify();
    });
    this.ws.on("pong", (data: Buffer) => {
      this.pongs.push(data);
      this.order.push("pong");
      this.#notify();
    });
    this.ws.on("error", () => {});
    this.closed = new Promise((resolve) => {
      this.ws.on("close", (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }));
    });
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  static async open(url: string, protocols?: string | string[], options?: WebSocket.ClientOptions): Promise<Client> {
    const client = new Client(url, protocols, options);
    await within(
      new Promise<void>((resolve, reject) => {
        client.ws.once("open", () => resolve());
        client.ws.once("error", reject);
        client.ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      }),
      3000,
      "websocket open",
    );
    return client;
  }

  /** Waits until `n` messages have arrived in total, and returns them. */
  async messagesUntil(n: number, ms = 3000): Promise<Received[]> {
    await within(
      (async () => {
        while (this.messages.length < n) await new Promise<void>((resolve) => this.#waiters.push(resolve));
      })(),
      ms,
      `${n} messages`,
    );
    return this.messages;
  }

  /** Sends and waits for the next message. */
  async roundTrip(data: string | Buffer | Uint8Array, ms = 5000): Promise<Received> {
    const n = this.messages.length + 1;
    this.ws.send(data);
    return (await this.messagesUntil(n, ms))[n - 1]!;
  }
}

/** The parts of a raw HTTP response. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  socket: Socket;
  /** Bytes after the header block. */
  rest: Buffer;
}

/** Opens a TCP connection to `port`. */
export function rawConnect(port: number): Promise<Socket> {
  return within(
    new Promise<Socket>((resolve, reject) => {
      const socket = netConnect(port, "127.0.0.1", () => resolve(socket));
      socket.once("error", reject);
    }),
    3000,
    "tcp connect",
  );
}

/** Builds an upgrade request, with header overrides (`null` removes one). */
export function upgradeRequest(overrides: Record<string, string | null> = {}, requestLine = "GET / HTTP/1.1"): string {
  const headers: Record<string, string | null> = {
    Host: "127.0.0.1",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": KEY,
    "Sec-WebSocket-Version": "13",
    ...overrides,
  };
  let text = `${requestLine}\r\n`;
  for (const [name, value] of Object.entries(headers)) if (value !== null) text += `${name}: ${value}\r\n`;
  return text + "\r\n";
}

/** Reads everything until the server closes, or `ms` passes. */
export function readAll(socket: Socket, ms = 3000): Promise<{ data: Buffer; ended: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ended = false;
    const done = () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), ended });
    };
    const timer = setTimeout(done, ms);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.once("end", () => {
      ended = true;
    });
    socket.once("close", done);
  });
}

/** Sends `request` raw and parses the response head once it has arrived. */
export async function rawHandshake(port: number, request: string): Promise<RawResponse> {
  const socket = await rawConnect(port);
  socket.write(request);
  let buffer = Buffer.alloc(0);
  const head = await within(
    new Promise<string>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        const end = buffer.indexOf("\r\n\r\n");
        if (end >= 0) {
          socket.off("data", onData);
          const text = buffer.subarray(0, end).toString("latin1");
          buffer = buffer.subarray(end + 4);
          resolve(text);
        }
      };
      socket.on("data", onData);
      socket.once("close", () => reject(new Error("closed before a response")));
    }),
    3000,
    "HTTP response",
  );
  socket.pause();
  const [statusLine, ...lines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(":");
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  const status = Number(statusLine!.split(" ")[1]);
  const length = Number(headers["content-length"] ?? 0);
  const body = buffer.subarray(0, length).toString();
  return { status, headers, body, socket, rest: buffer.subarray(length) };
}

/** The repository's root folder, with a trailing slash. */
export const root: string = fileURLToPath(new URL("../../", import.meta.url));

/** A runtime that can run a script. */
export type RuntimeName = "node" | "deno" | "bun";

/** A server script running on one runtime. */
export interface Running {
  readonly name: string;
  readonly child: ChildProcess;
  /** The first line it printed: `listening on ws://127.0.0.1:<port>`. */
  readonly line: string;
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
export function startProcess(
  on: RuntimeName,
  script: string,
  env: Record<string, string | undefined>,
  name: string = on,
): Promise<Running> {
  const [file, args] = command(on, script);
  return spawnServer(file, args, { cwd: root, env: { ...process.env, ...env } }, name);
}

/**
 * Runs `file args` with exactly `env` in `cwd`, and waits for its first
 * line, `listening on ws://127.0.0.1:<port>`.
 */
export async function spawnServer(
  file: string,
  args: string[],
  options: { cwd: string; env: Record<string, string | undefined> },
  name: string = file,
): Promise<Running> {
  const script = args.join(" ");
  const child = spawn(file, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
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
  const port = Number(/^listening on ws:\/\/127\.0\.0\.1:(\d+)\/?$/.exec(line)?.[1] ?? NaN);
  if (!Number.isInteger(port)) {
    child.kill("SIGKILL");
    throw new Error(`${name}: unexpected first line ${JSON.stringify(line)}; stderr: ${stderr}`);
  }
  return {
    name,
    child,
    line,
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

/** A data frame the server sent: text or binary, and its payload. */
export interface ServerMessage {
  text: boolean;
  bytes: Uint8Array;
}

/**
 * Reads unmasked, final data frames from the server until `count` whole
 * messages have arrived, starting with the bytes already read (`first`).
 * Rejects on any other frame (a binary one only, with `binaryOnly`) and
 * when the socket closes first.
 */
export function readServerMessages(socket: Socket, first: Uint8Array, count: number, binaryOnly = false): Promise<ServerMessage[]> {
  return new Promise((resolve, reject) => {
    let buffer = first;
    const got: ServerMessage[] = [];
    const parse = () => {
      while (got.length < count && buffer.length >= 2) {
        const b0 = buffer[0]!, b1 = buffer[1]!;
        if ((b0 !== 0x82 && (binaryOnly || b0 !== 0x81)) || (b1 & 0x80) !== 0) {
          return reject(new Error(`unexpected frame: 0x${b0.toString(16)} 0x${b1.toString(16)}`));
        }
        let length = b1 & 0x7f, header = 2;
        if (length === 126) {
          if (buffer.length < 4) return;
          length = buffer[2]! * 256 + buffer[3]!;
          header = 4;
        } else if (length === 127) {
          if (buffer.length < 10) return;
          length = Number(new DataView(buffer.buffer, buffer.byteOffset + 2, 8).getBigUint64(0));
          header = 10;
        }
        if (buffer.length < header + length) return;
        got.push({ text: b0 === 0x81, bytes: buffer.slice(header, header + length) });
        buffer = buffer.subarray(header + length);
      }
      if (got.length === count) {
        socket.off("data", onData);
        resolve(got);
      }
    };
    const onData = (chunk: Uint8Array) => {
      buffer = cat(buffer, chunk);
      parse();
    };
    socket.on("data", onData);
    socket.once("close", () => reject(new Error(`closed after ${got.length} of ${count} echoes`)));
    socket.resume();
    parse();
  });
}
