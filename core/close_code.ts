import { invalidCloseCodeMessage } from "./_close_reason.ts";
import { UsageError } from "./errors.ts";

/**
 * WebSocket close codes (RFC 6455 §7.4 and the IANA registry) and the rules
 * for which may travel on the wire.
 *
 * @module
 */

/**
 * Every registered close code by name.
 *
 * @example
 * ```ts
 * import { CloseCode } from "@duplex/ws/core";
 *
 * console.log(CloseCode.GoingAway); // 1001
 * ```
 */
export const CloseCode = {
  /** 1000: the purpose for which the connection was established is fulfilled. */
  Normal: 1000,
  /** 1001: the endpoint is going away (server shutdown, page navigation). */
  GoingAway: 1001,
  /** 1002: protocol error. */
  ProtocolError: 1002,
  /** 1003: a data type the endpoint cannot accept. */
  UnsupportedData: 1003,
  /** 1005: no status code was present. Reported, never sent. */
  NoStatus: 1005,
  /** 1006: the connection closed without a close frame. Reported, never sent. */
  Abnormal: 1006,
  /** 1007: message data inconsistent with its type (invalid UTF-8). */
  InvalidPayload: 1007,
  /** 1008: a message violates the endpoint's policy. */
  PolicyViolation: 1008,
  /** 1009: a message is too big to process. */
  MessageTooBig: 1009,
  /** 1010: the client expected an extension the server did not negotiate. */
  MandatoryExtension: 1010,
  /** 1011: the server met an unexpected condition. */
  InternalError: 1011,
  /** 1012: the service is restarting. */
  ServiceRestart: 1012,
  /** 1013: try again later (temporary overload). */
  TryAgainLater: 1013,
  /** 1014: a gateway or proxy received an invalid response upstream. */
  BadGateway: 1014,
  /** 1015: TLS handshake failure. Reported, never sent. */
  TlsHandshake: 1015,
  /** 3000: the endpoint requires authentication (IANA registry). */
  Unauthorized: 3000,
  /** 3003: the endpoint refuses the authenticated peer (IANA registry). */
  Forbidden: 3003,
  /** 3008: the peer took too long to respond (IANA registry). */
  Timeout: 3008,
} as const;

/**
 * The range RFC 6455 §7.4.2 leaves to applications: 4000–4999, never
 * registered, free for private use.
 *
 * @example
 * ```ts
 * import { APPLICATION_CLOSE_CODES } from "@duplex/ws/core";
 *
 * console.log(APPLICATION_CLOSE_CODES.min, APPLICATION_CLOSE_CODES.max); // 4000 4999
 * ```
 */
export const APPLICATION_CLOSE_CODES: { readonly min: 4000; readonly max: 4999 } = Object.freeze({ min: 4000, max: 4999 });

/**
 * Whether `code` is in the application range 4000–4999.
 *
 * @param code The close code to check.
 * @returns `true` for 4000–4999.
 *
 * @example
 * ```ts
 * import { isApplicationCloseCode } from "@duplex/ws/core";
 *
 * console.log(isApplicationCloseCode(4001), isApplicationCloseCode(1000)); // true false
 * ```
 */
export function isApplicationCloseCode(code: number): boolean {
  return Number.isInteger(code) && code >= APPLICATION_CLOSE_CODES.min && code <= APPLICATION_CLOSE_CODES.max;
}

/**
 * A registered close code value.
 *
 * @example
 * ```ts
 * import type { CloseCode } from "@duplex/ws/core";
 *
 * const code: CloseCode = 1000;
 * ```
 */
export type CloseCode = typeof CloseCode[keyof typeof CloseCode];

/**
 * Whether `code` may appear in a close frame on the wire: 1000–1003,
 * 1007–1014 and 3000–4999. Codes 0–999, 1004–1006, 1015, the unassigned
 * 1016–2999 and 5000 or more may not.
 *
 * @param code The close code to check.
 * @returns `true` when the code may be sent and received.
 *
 * @example
 * ```ts
 * import { isValidWireCloseCode } from "@duplex/ws/core";
 *
 * isValidWireCloseCode(1000); // true
 * isValidWireCloseCode(1005); // false
 * ```
 */
export function isValidWireCloseCode(code: number): boolean {
  return Number.isInteger(code) && (
    (code >= 1000 && code <= 1003) ||
    (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999)
  );
}

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/**
 * Builds the payload of a close frame, after checking that it may be sent:
 * a 2-byte code and a UTF-8 reason, or nothing when `code` is undefined.
 *
 * @param code A code that may be sent (see {@linkcode isValidWireCloseCode}), or `undefined` for an empty close.
 * @param reason Up to 123 bytes of UTF-8; ignored without a code.
 * @returns The payload.
 * @throws {UsageError} `ERR_INVALID_CLOSE_CODE` when the code may not be sent,
 *   `ERR_CLOSE_REASON_TOO_LONG` when the reason is over 123 bytes.
 *
 * @example
 * ```ts
 * import { closePayload } from "@duplex/ws/core";
 *
 * console.log(closePayload(1000, "bye")); // Uint8Array(5) [3, 232, 98, 121, 101]
 * ```
 */
export function closePayload(code: number | undefined, reason = ""): Uint8Array {
  if (code === undefined) return EMPTY;
  if (!Number.isInteger(code) || !isValidWireCloseCode(code)) {
    throw new UsageError("ERR_INVALID_CLOSE_CODE", invalidCloseCodeMessage(code));
  }
  const reasonBytes = encoder.encode(reason);
  if (reasonBytes.length > 123) {
    throw new UsageError("ERR_CLOSE_REASON_TOO_LONG", `Invalid close reason: ${reasonBytes.length} bytes, at most 123`);
  }
  const out = new Uint8Array(2 + reasonBytes.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(reasonBytes, 2);
  return out;
}
