/**
 * `serve()` for any runtime: it picks the raw adapter of the runtime it runs
 * on (`node:net` on Node, `Deno.listen` on Deno, `Bun.listen` on Bun), or the
 * runtime's own WebSocket server with `transport: "native"`.
 *
 * @module
 */

import { describeValue } from "../core/_describe.ts";
import { UsageError } from "../core/errors.ts";
import type { Handler } from "../plugins/hooks.ts";
import { checkServeArgs, SERVE_OPTIONS } from "./_check_args.ts";
import type { ListenOptions, Server } from "./_server.ts";

/**
 * The runtime Duplex runs on.
 *
 * @example
 * ```ts
 * import { runtime } from "@duplex/ws";
 *
 * console.log(runtime()); // "node", "deno" or "bun"
 * ```
 */
export type RuntimeName = "node" | "deno" | "bun";

/**
 * Which server carries the connections: `"raw"` (Duplex's engine on the
 * runtime's TCP sockets; the default) or `"native"` (the runtime's own
 * WebSocket server: `Deno.serve` or `Bun.serve`; Node has none and uses raw).
 *
 * @example
 * ```ts
 * import type { TransportName } from "@duplex/ws";
 *
 * const transport: TransportName = "native";
 * ```
 */
export type TransportName = "raw" | "native";

/**
 * Options of {@linkcode serve}: where to listen, TLS, the transport, and the
 * connection options (limits, subprotocols, timeouts).
 *
 * @example
 * ```ts
 * import type { ServeOptions } from "@duplex/ws";
 *
 * const options: ServeOptions = { port: 8080, hostname: "127.0.0.1", transport: "raw" };
 * ```
 */
export interface ServeOptions extends ListenOptions {
  /** `"raw"` (default) or `"native"`. */
  transport?: TransportName;
}

/**
 * Tells which runtime this is.
 *
 * @returns `"deno"`, `"bun"`, or `"node"` for anything else.
 *
 * @example
 * ```ts
 * import { runtime } from "@duplex/ws";
 *
 * if (runtime() === "bun") console.log("running on Bun");
 * ```
 */
export function runtime(): RuntimeName {
  if ("Deno" in globalThis) return "deno";
  if ("Bun" in globalThis) return "bun";
  return "node";
}

/**
 * Starts a WebSocket server with the adapter that suits the current runtime.
 * The same handler behaves the same on each: close codes, limits, timers and
 * errors come from Duplex's engine on the raw transport. `transport:
 * "native"` runs the hooks on `Deno.serve` or `Bun.serve` instead (see the
 * README for how those differ); on Node it is the raw transport.
 *
 * @param handler The application's hooks.
 * @param options Port (default 8080), hostname (default `127.0.0.1`), TLS,
 *   transport, limits, subprotocols, timeouts.
 * @returns The server, once it listens.
 * @throws {UsageError} On a bad option.
 *
 * @example
 * ```ts
 * import { serve } from "@duplex/ws";
 *
 * const server = await serve({
 *   message(ctx, data) {
 *     ctx.send(data);
 *   },
 * }, { port: 8080 });
 * console.log(`listening on ${server.url}`);
 * ```
 */
export async function serve<S = Record<string, unknown>>(
  handler: Handler<S>,
  options: ServeOptions = {},
): Promise<Server> {
  checkServeArgs(handler, options, "serve()", SERVE_OPTIONS);
  const { transport = "raw", ...rest } = options;
  if (transport !== "raw" && transport !== "native") {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: transport must be "raw" or "native", got ${describeValue(transport)}`);
  }
  switch (runtime()) {
    case "deno": {
      const deno = await import("./deno.ts");
      return transport === "native" ? deno.serveNative(handler, rest) : deno.serve(handler, rest);
    }
    case "bun": {
      const bun = await import("./bun.ts");
      return transport === "native" ? bun.serveNative(handler, rest) : bun.serve(handler, rest);
    }
    default: {
      const node = await import("./node.ts");
      return node.serve(handler, rest);
    }
  }
}
