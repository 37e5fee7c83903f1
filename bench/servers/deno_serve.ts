/**
 * Deno's own WebSocket server, the reference Duplex on Deno is compared with:
 * `Deno.serve` + `Deno.upgradeWebSocket`, written directly against Deno's
 * API. Every message goes back as it came (text as text, binary as binary).
 * Set like Duplex's native path: `binaryType = "arraybuffer"` and
 * `idleTimeout: 0` (no server pings); Deno never compresses.
 *
 *   PORT=8080 deno run -A bench/servers/deno_serve.ts
 *
 * @module
 */

import { benchPort, ready } from "./_lifecycle.ts";

// The part of the Deno namespace this server uses (typed here so that `tsc`,
// which has no Deno types, checks this file too).
interface DenoWebSocket {
  binaryType: string;
  onmessage: ((event: MessageEvent) => void) | null;
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

const server = Deno.serve({ port: benchPort(), hostname: "127.0.0.1", onListen() {} }, (request) => {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("Upgrade Required", { status: 426 });
  }
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => socket.send(event.data as string | ArrayBuffer);
  socket.onerror = () => {
    // The socket closes next; nothing to do.
  };
  return response;
});

ready("deno-serve", server.addr.port, () => server.shutdown());
