// What the duplex.v1 suites over real sockets (tests/contract, tests/reliable)
// share: the servers of the runtime a test runs on, each started with the
// given middlewares (serve()'s raw transport, attach() to node:http, the
// native transport on Deno and Bun, Hono routes with `use`), and a duplex.v1
// client by hand (`ws`, JSON) that keeps every server message.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { serve as serveNodeServer } from "@hono/node-server";
import { Hono } from "hono";
import WebSocket from "ws";
import { type ClientMessage, decodeServer, encode, type ServerMessage } from "../client/_wire.ts";
import { App, type Middleware, runtime, serve } from "../mod.ts";
import { injectWebSocket, upgradeWebSocket, websocket } from "../runtimes/hono.ts";
import { attach } from "../runtimes/node.ts";
import { until, within } from "./runtimes/_helpers.ts";

const on = runtime();

/** A server under test, listening. */
export interface Started {
  url: string;
  close(): Promise<void>;
}

/** One way to serve an app on this runtime (skipped, with why, where it does not exist). */
export interface Target {
  name: string;
  skip: string | false;
  start(use: Middleware<any>[]): Promise<Started>;
}

/** The servers {@linkcode serverTargets} knows. */
export type TargetName = "raw" | "attach" | "native" | "honoNode" | "honoDeno" | "honoBun";

/**
 * The servers a suite runs against, in the order asked.
 *
 * @param names Which servers.
 * @param options `maxMessageBytes`: the message limit of every server (else the default).
 */
export function serverTargets(names: TargetName[], options: { maxMessageBytes?: number } = {}): Target[] {
  const limit = options.maxMessageBytes === undefined ? {} : { maxMessageBytes: options.maxMessageBytes };
  const all: Record<TargetName, Target> = {
    raw: {
      name: `serve() raw on ${on}`,
      skip: false,
      async start(use) {
        const server = await serve(new App().use(...use), { port: 0, hostname: "127.0.0.1", ...limit });
        return { url: server.url, close: () => server.close() };
      },
    },
    attach: {
      name: `attach() to a node:http server on ${on}`,
      skip: false,
      async start(use) {
        const http = createServer((_req, res) => res.end("not a WebSocket"));
        const ws = attach(http, new App().use(...use), limit);
        await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
        const { port } = http.address() as AddressInfo;
        return {
          url: `ws://127.0.0.1:${port}/`,
          async close() {
            await ws.close();
            await new Promise((done) => http.close(done));
          },
        };
      },
    },
    native: {
      name: `serve() native on ${on}`,
      skip: on === "node" && "Deno and Bun only",
      async start(use) {
        const server = await serve(new App().use(...use), { port: 0, hostname: "127.0.0.1", transport: "native", ...limit });
        return { url: server.url, close: () => server.close() };
      },
    },
    honoNode: {
      name: `a Hono route (@hono/node-server + injectWebSocket() on ${on})`,
      skip: false,
      async start(use) {
        const hono = new Hono();
        hono.get("/ws", upgradeWebSocket(() => ({}), { use, ...limit }));
        let resolve!: (port: number) => void;
        const listening = new Promise<number>((done) => (resolve = done));
        const server = serveNodeServer({ fetch: hono.fetch, port: 0, hostname: "127.0.0.1", overrideGlobalObjects: false }, (info) => resolve(info.port));
        const ws = injectWebSocket(server as Parameters<typeof injectWebSocket>[0], hono);
        const port = await within(listening, 5000, "node-server listening");
        return {
          url: `ws://127.0.0.1:${port}/ws`,
          async close() {
            await ws.close();
            (server as { closeAllConnections?(): void }).closeAllConnections?.();
            await new Promise((done) => server.close(done));
          },
        };
      },
    },
    honoDeno: {
      name: "a Hono route (Deno.serve(app.fetch))",
      skip: on !== "deno" && "Deno only",
      async start(use) {
        const hono = new Hono();
        hono.get("/ws", upgradeWebSocket(() => ({}), { use, ...limit }));
        const deno = (globalThis as any).Deno;
        let resolve!: (port: number) => void;
        const listening = new Promise<number>((done) => (resolve = done));
        const server = deno.serve({ port: 0, hostname: "127.0.0.1", onListen: (addr: { port: number }) => resolve(addr.port) }, hono.fetch);
        const port = await within(listening, 5000, "Deno.serve listening");
        return { url: `ws://127.0.0.1:${port}/ws`, close: () => server.shutdown() };
      },
    },
    honoBun: {
      name: "a Hono route (Bun.serve({ fetch: app.fetch, websocket }))",
      skip: on !== "bun" && "Bun only",
      start(use) {
        const hono = new Hono();
        hono.get("/ws", upgradeWebSocket(() => ({}), { use, ...limit }));
        const server = (globalThis as any).Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: hono.fetch, websocket });
        return Promise.resolve({ url: `ws://127.0.0.1:${server.port}/ws`, close: () => server.stop(true) });
      },
    },
  };
  return names.map((name) => all[name]);
}

/** A duplex.v1 client by hand: sends JSON, keeps every server message. */
export class V1 {
  readonly ws: WebSocket;
  readonly messages: ServerMessage[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** The subprotocol the server chose. */
  protocol = "";

  private constructor(url: string, protocols: string[]) {
    this.ws = new WebSocket(url, protocols, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    this.ws.on("message", (data: Buffer, isBinary: boolean) => {
      const m = isBinary ? "binary" : decodeServer(data.toString());
      if (typeof m === "string") throw new Error(`not a server message: ${m}`);
      this.messages.push(m);
    });
    this.ws.on("error", () => {});
    this.closed = new Promise((resolve) => this.ws.on("close", (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
  }

  /** Opens a client offering `protocols` (duplex.v1 by default). */
  static async open(url: string, protocols = ["duplex.v1"]): Promise<V1> {
    const c = new V1(url, protocols);
    await within(new Promise<void>((resolve, reject) => (c.ws.once("open", () => resolve()), c.ws.once("error", reject))), 5000, "open");
    c.protocol = c.ws.protocol;
    return c;
  }

  send(message: ClientMessage): void {
    this.ws.send(encode(message));
  }

  /** The messages of a type (and, given, of a call's id). */
  of<T extends ServerMessage["type"]>(type: T, id?: number): Extract<ServerMessage, { type: T }>[] {
    return this.messages.filter((m) => m.type === type && (id === undefined || (m as { id?: number }).id === id)) as Extract<ServerMessage, { type: T }>[];
  }

  /** The offsets of the topic's messages, in order. */
  offsets(topic = "t"): number[] {
    return this.messages.flatMap((m) => (m.type === "message" && m.topic === topic ? [m.offset] : []));
  }

  /** The final answer (result or error) of a call. */
  answer(id: number): ServerMessage | undefined {
    return this.messages.find((m) => (m.type === "result" || m.type === "error") && m.id === id);
  }

  wait(check: (c: V1) => boolean, what: string, ms = 5000): Promise<void> {
    return until(() => check(this), ms, what);
  }

  /** Sends a call and waits for its answer. */
  async call(message: Extract<ClientMessage, { type: "call" }>, ms = 5000): Promise<ServerMessage> {
    this.send(message);
    await this.wait((c) => c.answer(message.id) !== undefined, `answer to ${message.name} #${message.id}`, ms);
    return this.answer(message.id)!;
  }

  close(): void {
    this.ws.close();
  }
}

/** Asserts that the client speaks duplex.v1. */
export function assertV1(c: V1): V1 {
  assert.equal(c.protocol, "duplex.v1");
  return c;
}
