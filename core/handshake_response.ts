/**
 * The server's answers to an opening handshake, written as bytes: the `101
 * Switching Protocols` that accepts it (with its `Sec-WebSocket-Accept`,
 * RFC 6455 §4.2.2), and the HTTP error answer that refuses it.
 *
 * @module
 */

import { isToken, isWritableValue, trimSpace } from "./_http_grammar.ts";
import { checkErrorStatus, reasonPhrase } from "./_http_status.ts";
import { sha1 } from "./_sha1.ts";
import { UsageError } from "./errors.ts";

/**
 * The GUID that RFC 6455 §1.3 appends to `Sec-WebSocket-Key` before hashing.
 *
 * @example
 * ```ts
 * import { WEBSOCKET_GUID } from "@duplex/ws/core";
 *
 * console.log(WEBSOCKET_GUID.length); // 36
 * ```
 */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * Computes the `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`:
 * base64 of the SHA-1 of the key followed by {@linkcode WEBSOCKET_GUID}.
 *
 * @param key The client's `Sec-WebSocket-Key`, trimmed.
 * @returns The base64 digest.
 *
 * @example The sample of RFC 6455 §1.3
 * ```ts
 * import { acceptKey } from "@duplex/ws/core";
 *
 * console.log(acceptKey("dGhlIHNhbXBsZSBub25jZQ==")); // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
 * ```
 */
export function acceptKey(key: string): string {
  const digest = sha1(new TextEncoder().encode(key + WEBSOCKET_GUID));
  return btoa(String.fromCharCode(...digest));
}

/**
 * What the `101 Switching Protocols` answer carries.
 *
 * @example
 * ```ts
 * import type { AcceptOptions } from "@duplex/ws/core";
 *
 * const options: AcceptOptions = {
 *   key: "dGhlIHNhbXBsZSBub25jZQ==",
 *   protocol: "chat",
 *   headers: { "Set-Cookie": "id=1" },
 * };
 * ```
 */
export interface AcceptOptions {
  /** The client's `Sec-WebSocket-Key`. */
  key: string;
  /** The chosen subprotocol, if any. */
  protocol?: string;
  /** The negotiated `Sec-WebSocket-Extensions` value, if any; an empty string sends none. */
  extensions?: string;
  /**
   * Extra header fields. They may not be `Upgrade`, `Connection`,
   * `Sec-WebSocket-Accept`, `Sec-WebSocket-Protocol` or
   * `Sec-WebSocket-Extensions`, which this answer sets itself.
   */
  headers?: Record<string, string> | [string, string][];
}

/** Header fields that `buildAcceptResponse` writes itself, lower-cased. */
const ACCEPT_RESERVED = new Set([
  "upgrade",
  "connection",
  "sec-websocket-accept",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
]);

/**
 * Writes the `101 Switching Protocols` answer that accepts a WebSocket
 * handshake, head only (there is no body).
 *
 * @param options The key, the chosen subprotocol and extensions, and extra headers.
 * @returns The answer as bytes, ready for the socket.
 * @throws {UsageError} Code `"ERR_INVALID_HEADER"` when the protocol is not a
 * token, a header name is not a token, a value holds CR, LF, NUL or a
 * character above U+00FF, or an extra header is one this answer sets itself.
 *
 * @example
 * ```ts
 * import { buildAcceptResponse } from "@duplex/ws/core";
 *
 * const bytes = buildAcceptResponse({ key: "dGhlIHNhbXBsZSBub25jZQ==", protocol: "chat" });
 * console.log(new TextDecoder().decode(bytes).split("\r\n")[0]); // "HTTP/1.1 101 Switching Protocols"
 * ```
 */
export function buildAcceptResponse(options: AcceptOptions): Uint8Array {
  let head = "HTTP/1.1 101 Switching Protocols\r\n" +
    "Upgrade: websocket\r\n" +
    "Connection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${acceptKey(options.key)}\r\n`;
  if (options.protocol !== undefined) {
    if (!isToken(options.protocol)) {
      throw new UsageError("ERR_INVALID_HEADER", "Invalid subprotocol: it must be a token");
    }
    head += `Sec-WebSocket-Protocol: ${options.protocol}\r\n`;
  }
  if (options.extensions !== undefined && options.extensions !== "") {
    checkHeader("Sec-WebSocket-Extensions", options.extensions);
    head += `Sec-WebSocket-Extensions: ${options.extensions}\r\n`;
  }
  for (const [name, value] of headerEntries(options.headers)) {
    checkHeader(name, value);
    if (ACCEPT_RESERVED.has(name.toLowerCase())) {
      throw new UsageError(
        "ERR_INVALID_HEADER",
        `Invalid header: ${name} is set by the handshake and cannot be overridden`,
      );
    }
    head += `${name}: ${value}\r\n`;
  }
  return encodeLatin1(head + "\r\n");
}

/**
 * Writes an HTTP error answer that refuses a handshake, then closes the
 * connection: the status with its standard reason phrase (`"Error"` for an
 * unlisted status), `Connection: close`, `Content-Type: text/plain;
 * charset=utf-8`, `Content-Length`, the extra headers, and the body in UTF-8.
 *
 * An extra `Content-Type` replaces the default one. An extra `Connection`
 * adds its options after `close`, as in `Connection: close, Upgrade` on a 426.
 *
 * @param status HTTP status, an integer from 400 to 599.
 * @param body Response body.
 * @param headers Extra header fields; not `Content-Length` or `Transfer-Encoding`.
 * @returns The answer as bytes, ready for the socket.
 * @throws {UsageError} Code `"ERR_INVALID_STATUS"` when `status` is not an
 * integer from 400 to 599; code `"ERR_INVALID_HEADER"` when a header name is
 * not a token, a value holds CR, LF, NUL or a character above U+00FF, or a
 * header is `Content-Length` or `Transfer-Encoding`.
 *
 * @example
 * ```ts
 * import { buildErrorResponse } from "@duplex/ws/core";
 *
 * const bytes = buildErrorResponse(403, "Origin not allowed");
 * console.log(new TextDecoder().decode(bytes).split("\r\n")[0]); // "HTTP/1.1 403 Forbidden"
 * ```
 */
export function buildErrorResponse(
  status: number,
  body: string,
  headers?: Record<string, string> | [string, string][],
): Uint8Array {
  checkErrorStatus(status);
  const connection = ["close"];
  let contentType = "text/plain; charset=utf-8";
  let extra = "";
  for (const [name, value] of headerEntries(headers)) {
    checkHeader(name, value);
    const lower = name.toLowerCase();
    if (lower === "content-length" || lower === "transfer-encoding") {
      throw new UsageError(
        "ERR_INVALID_HEADER",
        `Invalid header: ${name} is set by the response and cannot be overridden`,
      );
    }
    if (lower === "connection") {
      for (const option of value.split(",")) {
        const trimmed = trimSpace(option);
        if (trimmed !== "" && trimmed.toLowerCase() !== "close") connection.push(trimmed);
      }
    } else if (lower === "content-type") {
      contentType = value;
    } else {
      extra += `${name}: ${value}\r\n`;
    }
  }
  const payload = new TextEncoder().encode(body);
  const head = encodeLatin1(
    `HTTP/1.1 ${status} ${reasonPhrase(status) ?? "Error"}\r\n` +
      `Connection: ${connection.join(", ")}\r\n` +
      `Content-Type: ${contentType}\r\n` +
      `Content-Length: ${payload.length}\r\n` +
      extra +
      "\r\n",
  );
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

function headerEntries(
  headers: Record<string, string> | [string, string][] | undefined,
): [string, string][] {
  if (headers === undefined) return [];
  return Array.isArray(headers) ? headers : Object.entries(headers);
}

/** Throws unless `name` is a token and `value` can be written on one header line. */
function checkHeader(name: string, value: string): void {
  if (typeof name !== "string" || !isToken(name)) {
    throw new UsageError("ERR_INVALID_HEADER", "Invalid header name: it must be a token");
  }
  if (typeof value !== "string" || !isWritableValue(value)) {
    throw new UsageError(
      "ERR_INVALID_HEADER",
      `Invalid value for header ${name}: it must be a string without CR, LF, NUL or characters above U+00FF`,
    );
  }
}

/** Encodes a string of characters up to U+00FF, one byte each. */
function encodeLatin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}
