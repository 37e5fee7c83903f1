/**
 * HTTP error statuses as a handshake refusal uses them: which statuses may
 * refuse one, and their standard reason phrases. Shared by the response
 * writer, the app's `HttpError` and the adapters.
 *
 * @module
 */

import { describeValue } from "./_describe.ts";
import { UsageError } from "./errors.ts";

/** Standard reason phrases (RFC 9110 §15) of the error statuses. */
const REASONS: Readonly<Record<number, string>> = {
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/**
 * Checks that a status may refuse a handshake: an integer from 400 to 599.
 *
 * @param status The HTTP status.
 * @throws {UsageError} Code `"ERR_INVALID_STATUS"` otherwise.
 *
 * @example
 * ```ts ignore
 * checkErrorStatus(401); // fine; checkErrorStatus(302) throws
 * ```
 */
export function checkErrorStatus(status: number): void {
  if (!Number.isInteger(status) || status < 400 || status > 599) {
    throw new UsageError(
      "ERR_INVALID_STATUS",
      `Invalid status: it must be an integer from 400 to 599, got ${describeValue(status)}`,
    );
  }
}

/**
 * The standard reason phrase (RFC 9110 §15) of an error status.
 *
 * @param status The HTTP status.
 * @returns The reason phrase, or `undefined` for a status without one.
 *
 * @example
 * ```ts ignore
 * console.log(reasonPhrase(429)); // "Too Many Requests"
 * ```
 */
export function reasonPhrase(status: number): string | undefined {
  return REASONS[status];
}
