/**
 * Bun's own WebSocket server, the reference Duplex on Bun is compared with:
 * `Bun.serve` with a `websocket` handler, written directly against Bun's API.
 * Every message goes back as it came (text as text, binary as binary). Bun's
 * defaults, except `perMessageDeflate: false` and `idleTimeout: 0` (as on
 * Duplex's native path).
 *
 *   PORT=8080 bun bench/servers/bun_serve.ts
 *
 * @module
 */

import { benchPort, ready } from "./_lifecycle.ts";

// The part of Bun's API this server uses (typed here so that `deno check`,
// which has no Bun types, checks this file too).
interface BunWebSocket {
  send(message: string | Uint8Array): number;
}

interface BunApi {
  serve(options: {
    port: number;
    hostname: string;
    fetch(request: Request, server: { upgrade(request: Request): boolean }): Response | undefined;
    websocket: {
      perMessageDeflate: boolean;
      idleTimeout: number;
      message(ws: BunWebSocket, message: string | Uint8Array): void;
    };
  }): { readonly port: number; stop(closeActiveConnections?: boolean): Promise<void> };
}

const Bun = (globalThis as unknown as { Bun: BunApi }).Bun;

const server = Bun.serve({
  port: benchPort(),
  hostname: "127.0.0.1",
  fetch(request, server) {
    if (server.upgrade(request)) return undefined;
    return new Response("Upgrade Required", { status: 426 });
  },
  websocket: {
    perMessageDeflate: false,
    idleTimeout: 0,
    message(ws, message) {
      ws.send(message);
    },
  },
});

ready("bun-serve", server.port, () => server.stop(true));
