/**
 * Deno's own WebSocket server doing fan-out, the reference Duplex's
 * `app.publish()` is compared with on Deno: `Deno.serve` +
 * `Deno.upgradeWebSocket`, written directly against Deno's API. Deno has no
 * topics, so the publisher's (`/fanout?role=pub`) messages go to every
 * subscriber (`/fanout?role=sub`) in a loop, `socket.send(data)` each (Deno
 * frames once per subscriber). Set like Duplex's native path:
 * `binaryType = "arraybuffer"` and `idleTimeout: 0`.
 *
 *   PORT=8080 deno run -A bench/servers/fanout_deno_serve.ts
 *
 * @module
 */

import { benchPort, ready } from "./_lifecycle.ts";

// The part of the Deno namespace this server uses (typed here so that `tsc`,
// which has no Deno types, checks this file too).
interface DenoWebSocket {
  binaryType: string;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: Event) => void) | null;
  onerror: ((event: Event) => void) | null;
  send(data: string | ArrayBuffer): void;
}

interface DenoApi {
  serve(
    options: { port: number; hostname: string; onListen?(addr: { port: number }): void },
    handler: (request: Request) => Response,
  ): { readonly addr: { port: number }; shutdown(): Promise<void> };
  upgradeWebSocket(request: Request, options?: { idleTimeout?: number }): { socket: DenoWebSocket; response: Response };
}

const Deno = (globalThis as unknown as { Deno: DenoApi }).Deno;

const subscribers = new Set<DenoWebSocket>();

const server = Deno.serve({ port: benchPort(), hostname: "127.0.0.1", onListen() {} }, (request) => {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("Upgrade Required", { status: 426 });
  }
  const subscriber = new URL(request.url).searchParams.get("role") === "sub";
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
  socket.binaryType = "arraybuffer";
  if (subscriber) {
    // Deno frames after the 101: subscribe once open, as a topic would.
    socket.onopen = () => void subscribers.add(socket);
    socket.onclose = () => void subscribers.delete(socket);
  } else {
    socket.onmessage = (event) => {
      const data = event.data as string | ArrayBuffer;
      for (const s of subscribers) s.send(data);
    };
  }
  socket.onerror = () => {
    // The socket closes next; nothing to do.
  };
  return response;
});

ready("deno-serve-fanout", server.addr.port, () => server.shutdown());
