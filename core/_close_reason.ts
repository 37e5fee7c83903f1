/**
 * What a close says: the short reason Duplex sends with the close codes it
 * picks itself (1009, 1011), and the message for a close code that may not
 * be sent.
 *
 * @module
 */

import { describeValue } from "./_describe.ts";

/** The reason sent with a 1009 close: a message over a limit. */
export const MESSAGE_TOO_BIG_REASON = "Message too big";
/** The reason sent with a 1011 close: a hook or middleware threw. */
export const INTERNAL_ERROR_REASON = "Internal error";

/**
 * The reason to send with a close code Duplex chose itself: the peer learns
 * why without reading the server's log. Empty for the other codes.
 *
 * @param code The close code.
 * @returns At most 123 bytes of UTF-8.
 *
 * @example
 * ```ts
 * import { closeReasonFor } from "./_close_reason.ts";
 *
 * console.log(closeReasonFor(1009)); // "Message too big"
 * ```
 */
export function closeReasonFor(code: number): string {
  if (code === 1009) return MESSAGE_TOO_BIG_REASON;
  if (code === 1011) return INTERNAL_ERROR_REASON;
  return "";
}

/** The most a close reason may take: 125 bytes of control payload, less the 2-byte code. */
const MAX_REASON_BYTES = 123;
const encoder = new TextEncoder();
const scratch = new Uint8Array(MAX_REASON_BYTES);

/**
 * Cuts a close reason that may echo a peer's input (a message type, say)
 * to what fits a close frame: at most 123 bytes of UTF-8, never splitting a
 * character.
 *
 * @param reason The reason as written.
 * @returns Its longest prefix that fits.
 *
 * @example
 * ```ts
 * import { fitCloseReason } from "./_close_reason.ts";
 *
 * console.log(new TextEncoder().encode(fitCloseReason("é".repeat(100))).length); // 122
 * ```
 */
export function fitCloseReason(reason: string): string {
  if (reason.length <= MAX_REASON_BYTES / 3) return reason; // 3 bytes per UTF-16 unit at most
  const { read } = encoder.encodeInto(reason, scratch);
  return read === reason.length ? reason : reason.slice(0, read);
}

/**
 * The message of the `ERR_INVALID_CLOSE_CODE` usage error: codes that are
 * only reported (1005, 1006, 1015) point at `terminate()`, and every
 * refusal points at the application range 4000–4999.
 *
 * @param code What was passed as a close code.
 * @returns The message.
 *
 * @example
 * ```ts
 * import { invalidCloseCodeMessage } from "./_close_reason.ts";
 *
 * console.log(invalidCloseCodeMessage(1006));
 * ```
 */
export function invalidCloseCodeMessage(code: unknown): string {
  const range = "the application's own codes are 4000 to 4999";
  if (typeof code !== "number" || !Number.isInteger(code)) {
    return `Invalid close code: expected an integer, got ${describeValue(code)} (${range})`;
  }
  if (code === 1005 || code === 1006 || code === 1015) {
    return `Invalid close code: ${code} is only reported, never sent (call terminate() to drop the connection; ${range})`;
  }
  return `Invalid close code: ${code} may not be sent (${range})`;
}
