/**
 * Bun's own WebSocket server doing fan-out, the reference Duplex's
 * `app.publish()` is compared with on Bun: `Bun.serve` with a `websocket`
 * handler, written directly against Bun's API, using Bun's native topics:
 * subscribers (`/fanout?role=sub`) `ws.subscribe()` on open, and every
 * message of the publisher (`/fanout?role=pub`) goes out with
 * `server.publish()` (uWebSockets, in C++, frames it once). Bun's defaults,
 * except `perMessageDeflate: false` and `idleTimeout: 0` (as on Duplex's
 * native path).
 *
 *   PORT=8080 bun bench/servers/fanout_bun_serve.ts
 *
 * @module
 */

import { benchPort, ready } from "./_lifecycle.ts";

// The part of Bun's API this server uses (typed here so that `deno check`,
// which has no Bun types, checks this file too).
interface BunWebSocket {
  readonly data: { subscriber: boolean };
  subscribe(topic: string): void;
}

interface BunServer {
  readonly port: number;
  upgrade(request: Request, options: { data: { subscriber: boolean } }): boolean;
  publish(topic: string, message: string | Uint8Array): number;
  stop(closeActiveConnections?: boolean): Promise<void>;
}

interface BunApi {
  serve(options: {
    port: number;
    hostname: string;
    fetch(request: Request, server: BunServer): Response | undefined;
    websocket: {
      perMessageDeflate: boolean;
      idleTimeout: number;
      open(ws: BunWebSocket): void;
      message(ws: BunWebSocket, message: string | Uint8Array): void;
    };
  }): BunServer;
}

const Bun = (globalThis as unknown as { Bun: BunApi }).Bun;
const TOPIC = "fanout";

const server: BunServer = Bun.serve({
  port: benchPort(),
  hostname: "127.0.0.1",
  fetch(request, server) {
    const subscriber = new URL(request.url).searchParams.get("role") === "sub";
    if (server.upgrade(request, { data: { subscriber } })) return undefined;
    return new Response("Upgrade Required", { status: 426 });
  },
  websocket: {
    perMessageDeflate: false,
    idleTimeout: 0,
    open(ws) {
      if (ws.data.subscriber) ws.subscribe(TOPIC);
    },
    message(_ws, message) {
      server.publish(TOPIC, message);
    },
  },
});

ready("bun-serve-fanout", server.port, () => server.stop(true));
