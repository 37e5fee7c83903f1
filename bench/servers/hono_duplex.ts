/**
 * Duplex as Hono's `upgradeWebSocket` (`@duplex/ws/hono`), the echo server
 * of the benchmark's `hono` part, on whichever runtime runs it: a Hono app
 * with one route, `GET /ws`, whose `onMessage` sends every message back as it
 * came (text as text, binary as binary: binary messages arrive as
 * `ArrayBuffer`, as with Hono's helpers). Compared with `hono_helper.ts`, the
 * same app on Hono's own helper.
 *
 * - Node: `serve()` from `@hono/node-server`, then `injectWebSocket(server, app)`.
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

import type { Server as HttpServer } from "node:http";
import { Hono } from "hono";
import { runtime } from "../../mod.ts";
import { injectWebSocket, upgradeWebSocket, websocket } from "../../runtimes/hono.ts";
import { bunServe, denoServe, HOSTNAME, type Listening, nodeListening } from "./_hono.ts";
import { benchPort, ready } from "./_lifecycle.ts";

const app = new Hono();
app.get(
  "/ws",
  upgradeWebSocket(() => ({
    onMessage(event, ws) {
      ws.send(event.data);
    },
  })),
);


async function start(): Promise<Listening> {
  const port = benchPort();
  switch (runtime()) {
    case "deno": {
      return denoServe(port, app.fetch);
    }
    case "bun": {
      return bunServe(port, app.fetch, websocket);
    }
    case "node": {
      const { serve } = await import("@hono/node-server");
      const server = serve({ fetch: app.fetch, port, hostname: HOSTNAME });
      const injected = injectWebSocket(server, app);
      return nodeListening(server as HttpServer, () => injected.close());
    }
  }
}

const server = await start();

ready(`hono-duplex-${runtime()}`, server.port, () => server.stop());
