/**
 * Duplex as Hono's `upgradeWebSocket` (`@duplex/ws/hono`), the echo server
 * of the benchmark's `hono` part, on whichever runtime runs it: a Hono app
 * with one route, `GET /ws`, whose `onMessage` sends every message back as it
 * came (text as text, binary as binary: binary messages arrive as
 * `ArrayBuffer`, as with Hono's helpers). Compared with `hono_helper.ts`, the
 * same app on Hono's own helper.
 *
 * - Node: `serve()` from `@hono/node-server`, then `attach(server, app)`.
 * - Deno: `Deno.serve(app.fetch)`.
 * - Bun: `Bun.serve({ fetch: app.fetch, websocket })`, with `websocket` from
 *   `@duplex/ws/hono`.
 *
 *   PORT=8080 node --import tsx bench/servers/hono_duplex.ts
 *   PORT=8080 deno run -A bench/servers/hono_duplex.ts
 *   PORT=8080 bun bench/servers/hono_duplex.ts
 *
 * @module
 */

import type { AddressInfo } from "node:net";
import { Hono } from "hono";
import { runtime } from "../../mod.ts";
import { attach, upgradeWebSocket, websocket } from "../../runtimes/hono.ts";
import { benchPort, ready } from "./_lifecycle.ts";

const app = new Hono();
app.get(
  "/ws",
  upgradeWebSocket(() => ({
    onMessage(event, ws) {
      ws.send(event.data as string | ArrayBuffer);
    },
  })),
);

// The parts of Deno.serve and Bun.serve used here (typed here: neither
// runtime's types are loaded when the other, or tsc, checks this file).
interface DenoServe {
  serve(
    options: { port: number; hostname: string; onListen(addr: { port: number }): void },
    handler: (request: Request) => Response | Promise<Response>,
  ): { readonly addr: { port: number }; shutdown(): Promise<void> };
}
interface BunServe {
  serve(options: { port: number; hostname: string; fetch: unknown; websocket: unknown }): {
    readonly port: number;
    stop(closeActiveConnections?: boolean): Promise<void> | void;
  };
}

const HOSTNAME = "127.0.0.1";

async function start(): Promise<{ port: number; stop(): Promise<void> }> {
  const port = benchPort();
  switch (runtime()) {
    case "deno": {
      const { Deno } = globalThis as unknown as { Deno: DenoServe };
      const server = Deno.serve({ port, hostname: HOSTNAME, onListen() {} }, app.fetch);
      return { port: server.addr.port, stop: () => server.shutdown() };
    }
    case "bun": {
      const { Bun } = globalThis as unknown as { Bun: BunServe };
      const server = Bun.serve({ port, hostname: HOSTNAME, fetch: app.fetch, websocket });
      return { port: server.port, stop: async () => void await server.stop(true) };
    }
    case "node": {
      const { serve } = await import("@hono/node-server");
      const server = serve({ fetch: app.fetch, port, hostname: HOSTNAME });
      const attached = attach(server, app);
      await new Promise<void>((resolve, reject) => {
        server.once("listening", resolve);
        server.once("error", reject);
      });
      return {
        port: (server.address() as AddressInfo).port,
        async stop() {
          await attached.close();
          await new Promise<void>((resolve) => {
            server.close(() => resolve());
            if ("closeAllConnections" in server) server.closeAllConnections();
          });
        },
      };
    }
  }
}

const server = await start();

ready(`hono-duplex-${runtime()}`, server.port, () => server.stop());
