/**
 * Duplex: one WebSocket server framework for Node, Deno and Bun. The root
 * entry holds the runtime-neutral API (the engine, errors, close codes, the
 * hooks contract and the app pipeline: middleware, routers, auth,
 * heartbeat) and `serve()`, which starts the right server for the
 * runtime it runs on. Each runtime's adapters also have their own subpath:
 * `@duplex/ws/node`, `@duplex/ws/deno`, `@duplex/ws/bun`.
 *
 * @example
 * ```ts
 * import { CloseCode, type Handler } from "@duplex/ws";
 *
 * const handler: Handler = {
 *   message(ctx, data) {
 *     if (typeof data !== "string") return ctx.close(CloseCode.UnsupportedData, "text only");
 *     ctx.send(data.toUpperCase());
 *   },
 * };
 * ```
 *
 * @module
 */

export * from "./core/mod.ts";
export * from "./plugins/mod.ts";
export type { ListenOptions, Server, TlsCertificate } from "./runtimes/_server.ts";
export { runtime, type RuntimeName, serve, type ServeOptions, type TransportName } from "./runtimes/serve.ts";
