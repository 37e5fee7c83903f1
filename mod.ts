/**
 * Duplex: one WebSocket server framework for Node, Deno and Bun. The root
 * entry holds the runtime-neutral API (the engine, errors, close codes and
 * the hooks contract); each runtime's server lives in its own subpath, such
 * as `@duplex/ws/node`.
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
export type { CloseInfo, ConnectionOptions, Context, Handler, UpgradeAnswer } from "./plugins/hooks.ts";
