/**
 * What the two Hono echo servers (`hono_duplex.ts`, `hono_helper.ts`) share:
 * starting a Hono app's `fetch` on `Deno.serve` or `Bun.serve`, and waiting
 * for and stopping a `node:http` server, on 127.0.0.1.
 *
 * @module
 */

import type { Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";

/** A server that listens. */
export interface Listening {
  port: number;
  stop(): Promise<void>;
}

type Fetch = (request: Request, env?: any) => Response | Promise<Response>;

// The parts of Deno.serve and Bun.serve used here (typed here: neither
// runtime's types are loaded when the other, or tsc, checks these files).
interface DenoServe {
  serve(
    options: { port: number; hostname: string; onListen(addr: { port: number }): void },
    handler: Fetch,
  ): { readonly addr: { port: number }; shutdown(): Promise<void> };
}
interface BunServe {
  serve(options: { port: number; hostname: string; fetch: Fetch; websocket: unknown }): {
    readonly port: number;
    stop(closeActiveConnections?: boolean): Promise<void> | void;
  };
}

/** The address every bench server listens on. */
export const HOSTNAME = "127.0.0.1";

/** `Deno.serve(fetch)`. */
export function denoServe(port: number, fetch: Fetch): Listening {
  const { Deno } = globalThis as unknown as { Deno: DenoServe };
  const server = Deno.serve({ port, hostname: HOSTNAME, onListen() {} }, fetch);
  return { port: server.addr.port, stop: () => server.shutdown() };
}

/** `Bun.serve({ fetch, websocket })`. */
export function bunServe(port: number, fetch: Fetch, websocket: unknown): Listening {
  const { Bun } = globalThis as unknown as { Bun: BunServe };
  const server = Bun.serve({ port, hostname: HOSTNAME, fetch, websocket });
  return { port: server.port, stop: async () => void await server.stop(true) };
}

/** Waits until a `node:http` server listens; `stop` runs `before`, then closes it and its connections. */
export async function nodeListening(server: HttpServer, before: () => Promise<void> | void): Promise<Listening> {
  if (!server.listening) {
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
  }
  return {
    port: (server.address() as AddressInfo).port,
    async stop() {
      await before();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
