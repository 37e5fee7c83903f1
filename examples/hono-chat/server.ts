// The Hono chat demo: a page at `/`, the Duplex client it loads at
// `/client.js` (bundled from client/mod.ts by esbuild as the server starts),
// its WebSocket at `/ws` (see app.ts for the protocols), on the same port as
// `/health`. Runs unchanged on the three runtimes, each with its own HTTP
// server:
//
//   node --import tsx examples/hono-chat/server.ts    (@hono/node-server; `npm start`)
//   deno run -A examples/hono-chat/server.ts          (Deno.serve)
//   bun examples/hono-chat/server.ts                  (Bun.serve)
//
// Then open http://127.0.0.1:8080 in two windows. The first line of stdout is
// `listening on http://HOST:PORT`, with the real port when PORT=0. SIGINT and
// SIGTERM close every chat connection with 1001, stop the server and exit 0.
//
// Environment: PORT (8080), HOST (127.0.0.1), HEARTBEAT_INTERVAL_MS (30000),
// HEARTBEAT_TIMEOUT_MS (10000), LOG (1: log every HTTP request), ADMIN_TOKEN
// (serve the dashboard at /admin and Prometheus text at /metrics, both for
// `Authorization: Bearer <token>` or `?token=<token>` only; unset: neither).
import process from "node:process";
import { runtime } from "../../mod.ts";
import { injectWebSocket, websocket } from "../../runtimes/hono.ts";
import { createChatApp } from "./app.ts";
import { buildClient } from "./client_bundle.ts";

function numberFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`${name} must be a positive number of milliseconds, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return value;
}

const port = Number(process.env.PORT ?? 8080);
const hostname = process.env.HOST ?? "127.0.0.1";
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be an integer from 0 to 65535, got ${JSON.stringify(process.env.PORT)}`);
  process.exit(2);
}

const { app, ws, live } = createChatApp({
  heartbeatIntervalMs: numberFromEnv("HEARTBEAT_INTERVAL_MS", 30_000),
  heartbeatTimeoutMs: numberFromEnv("HEARTBEAT_TIMEOUT_MS", 10_000),
  log: process.env.LOG === "1",
  clientJs: await buildClient(),
  adminToken: process.env.ADMIN_TOKEN || undefined,
});

/** A started server: its bound port, and how to stop it. */
interface Started {
  port: number;
  stop(): Promise<void>;
}

// The parts of Deno.serve and Bun.serve used here: each is on its own
// runtime only, and neither runtime's types are loaded on the others.
interface DenoServe {
  serve(
    options: { port: number; hostname: string; onListen(addr: { port: number }): void },
    handler: (request: Request) => Response | Promise<Response>,
  ): { addr: { port: number }; shutdown(): Promise<void> };
}
interface BunServe {
  serve(options: { port: number; hostname: string; fetch: unknown; websocket: unknown }): {
    port: number;
    stop(closeActiveConnections?: boolean): Promise<void> | void;
  };
}

async function start(): Promise<Started> {
  switch (runtime()) {
    case "deno": {
      const { Deno } = globalThis as unknown as { Deno: DenoServe };
      const server = Deno.serve({ port, hostname, onListen() {} }, app.fetch);
      return { port: server.addr.port, stop: () => server.shutdown() };
    }
    case "bun": {
      const { Bun } = globalThis as unknown as { Bun: BunServe };
      const server = Bun.serve({ port, hostname, fetch: app.fetch, websocket });
      return { port: server.port, stop: async () => void await server.stop(true) };
    }
    case "node": {
      const { serve } = await import("@hono/node-server");
      const { server, address } = await new Promise<{ server: ReturnType<typeof serve>; address: { port: number } }>(
        (resolve, reject) => {
          const server = serve({ fetch: app.fetch, port, hostname }, (address) => resolve({ server, address }));
          server.once("error", reject);
        },
      );
      const injected = injectWebSocket(server, app);
      return {
        port: address.port,
        async stop() {
          await injected.close();
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
console.log(`listening on http://${hostname}:${server.port}`);
console.log(`runtime: ${runtime()}, routes: / (page), /client.js, /health, /ws (duplex.v1, chat.v1)`);
console.log(
  process.env.ADMIN_TOKEN
    ? `admin: /admin (dashboard) and /metrics (Prometheus), with ADMIN_TOKEN as a bearer token or ?token=`
    : "admin: off; set ADMIN_TOKEN to serve the dashboard at /admin and Prometheus metrics at /metrics",
);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, async () => {
    await ws.close(1001, "Server shutting down");
    await server.stop();
    await live.close();
    process.exit(0);
  });
}
