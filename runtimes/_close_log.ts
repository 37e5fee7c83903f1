/**
 * What the server logs about the closes it sends on its own: a 1009 tells
 * the operator which connection sent too much and what the limit is, once
 * per connection, so a limit set too low shows in the log rather than only
 * at the client.
 *
 * @module
 */

import { CloseCode } from "../core/close_code.ts";

/**
 * Logs a 1009 the server sends (`console.warn`); other faults are left to
 * the `error` hook. Its callers report a connection's fault once (the
 * engine fails a connection once; the native session keeps its first
 * failure), so it logs once per connection.
 *
 * @param conn The connection (its `id` is logged).
 * @param error The peer's fault.
 * @param maxMessageBytes The connection's message limit.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "@duplex/ws/core";
 * import { logMessageTooBig } from "./_close_log.ts";
 *
 * const error = new ProtocolError("WS_ERR_MESSAGE_TOO_BIG", 1009, "Message too big: over the limit of 1024 bytes");
 * logMessageTooBig({ id: "7" }, error, 1024);
 * // duplex: connection 7 closed with 1009 (maxMessageBytes is 1024): Message too big: over the limit of 1024 bytes
 * ```
 */
export function logMessageTooBig(conn: { readonly id: string }, error: unknown, maxMessageBytes: number): void {
  const closeCode = (error as { closeCode?: unknown } | null)?.closeCode;
  if (closeCode !== CloseCode.MessageTooBig) return;
  const detail = error instanceof Error ? `: ${error.message}` : "";
  console.warn(`duplex: connection ${conn.id} closed with 1009 (maxMessageBytes is ${maxMessageBytes})${detail}`);
}
