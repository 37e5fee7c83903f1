/**
 * Deno's own WebSocket server, the reference Duplex on Deno is compared with:
 * `Deno.serve` + `Deno.upgradeWebSocket`, written directly against Deno's
 * API. Every message goes back as it came (text as text, binary as binary).
 * `binaryType = "arraybuffer"` as on Duplex's native path; Deno never
 * compresses. `idleTimeout: 0` (no server pings, no timer) unless
 * `IDLE_TIMEOUT` gives it in seconds: Duplex's native path hands Deno its
 * `idleTimeoutMs` (120 s by default; Deno's own default is 30 s), since
 * Deno's timeout is the only one that pings there; the run compares with
 * both ("Deno.serve" and "Deno.serve idle", 120 s).
 *
 *   PORT=8080 deno run -A bench/servers/deno_serve.ts
 *   IDLE_TIMEOUT=120 PORT=8080 deno run -A bench/servers/deno_serve.ts
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
  readonly env: { get(name: string): string | undefined };
}

const Deno = (globalThis as unknown as { Deno: DenoApi }).Deno;

const idleTimeout = Number(Deno.env.get("IDLE_TIMEOUT") ?? "0");
if (!Number.isInteger(idleTimeout) || idleTimeout < 0) {
  throw new RangeError(`Invalid IDLE_TIMEOUT: expected whole seconds, got ${Deno.env.get("IDLE_TIMEOUT")}`);
}

const server = Deno.serve({ port: benchPort(), hostname: "127.0.0.1", onListen() {} }, (request) => {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("Upgrade Required", { status: 426 });
  }
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout });
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => socket.send(event.data as string | ArrayBuffer);
  socket.onerror = () => {
    // The socket closes next; nothing to do.
  };
  return response;
});

ready(idleTimeout === 0 ? "deno-serve" : `deno-serve-idle${idleTimeout}`, server.addr.port, () => server.shutdown());
