/**
 * Hono's own WebSocket helper, the reference of the benchmark's `hono` part,
 * on whichever runtime runs it: the same Hono app as `hono_duplex.ts` (one
 * route, `GET /ws`, whose `onMessage` sends every message back as it came,
 * text as text, binary as binary) on the runtime's `upgradeWebSocket` from
 * Hono, wired as Hono documents it:
 *
 * - Node: `upgradeWebSocket` from `@hono/node-server`, and its `serve()` with
 *   `websocket: { server }`, a `ws` `WebSocketServer` (`noServer: true`,
 *   permessage-deflate off, no `bufferutil` / `utf-8-validate`).
 * - Deno: `upgradeWebSocket` from `hono/deno` on `Deno.serve(app.fetch)`
 *   (`Deno.upgradeWebSocket` underneath; its sockets default to
 *   `binaryType = "arraybuffer"`).
 * - Bun: `upgradeWebSocket` and `websocket` from `hono/bun` on
 *   `Bun.serve({ fetch: app.fetch, websocket })` (binary messages arrive as
 *   the `ArrayBuffer` of Bun's `Buffer`, exactly the message's bytes).
 *
 * Binary messages reach `onMessage` as `ArrayBuffer` on every runtime, as
 * with Duplex. Otherwise each runtime's defaults (Deno's and Bun's idle
 * timeouts of 120 s, with pings: they never fire during a run).
 *
 *   PORT=8080 node --import tsx bench/servers/hono_helper.ts
 *   PORT=8080 deno run -A bench/servers/hono_helper.ts
 *   PORT=8080 bun bench/servers/hono_helper.ts
 *
 * @module
 */

import type { Server as HttpServer } from "node:http";
import { Hono } from "hono";
import type { WSEvents } from "hono/ws";
import { runtime } from "../../mod.ts";
import { bunServe, denoServe, HOSTNAME, type Listening, nodeListening } from "./_hono.ts";
import { benchPort, ready } from "./_lifecycle.ts";

/** The route's events: every message back as it came. */
function echo(): WSEvents {
  return {
    onMessage(event, ws) {
      ws.send(event.data as string | ArrayBuffer);
    },
  };
}


async function start(): Promise<Listening> {
  const port = benchPort();
  const app = new Hono();
  switch (runtime()) {
    case "deno": {
      // Imported on its runtime only, like hono/bun and @hono/node-server below.
      const { upgradeWebSocket } = await import("hono/deno");
      app.get("/ws", upgradeWebSocket(echo));
      return denoServe(port, app.fetch);
    }
    case "bun": {
      const { upgradeWebSocket, websocket } = await import("hono/bun");
      app.get("/ws", upgradeWebSocket(echo));
      return bunServe(port, app.fetch, websocket);
    }
    case "node": {
      const [{ serve, upgradeWebSocket }, { WebSocketServer }] = await Promise.all([
        import("@hono/node-server"),
        import("ws"),
      ]);
      app.get("/ws", upgradeWebSocket(echo));
      const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
      const server = serve({ fetch: app.fetch, port, hostname: HOSTNAME, websocket: { server: wss } });
      // Closing the server closes wss too.
      return nodeListening(server as HttpServer, () => wss.clients.forEach((client) => client.terminate()));
    }
  }
}

const server = await start();

ready(`hono-helper-${runtime()}`, server.port, () => server.stop());
