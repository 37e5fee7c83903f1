/**
 * The server side of the WebSocket opening handshake (RFC 6455 §4.2): checking
 * an upgrade request, parsing its subprotocol and extension offers, choosing a
 * subprotocol from the server's list, and writing the `101 Switching
 * Protocols` answer or an HTTP error answer as bytes.
 *
 * @module
 */

import { describeValue } from "./_describe.ts";
import { blockHeaders, fieldValue, RawRequestHead } from "./_fields.ts";
import { sha1 } from "./_sha1.ts";
import { HandshakeError, UsageError } from "./errors.ts";

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
 * One extension offered in `Sec-WebSocket-Extensions`, such as
 * `permessage-deflate; client_max_window_bits`.
 *
 * @example
 * ```ts
 * import type { ExtensionOffer } from "@duplex/ws/core";
 *
 * const offer: ExtensionOffer = {
 *   name: "permessage-deflate",
 *   params: { client_max_window_bits: true, server_max_window_bits: "10" },
 * };
 * ```
 */
export interface ExtensionOffer {
  /** Extension token as sent, such as `"permessage-deflate"`. */
  name: string;
  /** Parameters by name as sent: the unquoted value, or `true` for a parameter without a value. */
  params: Record<string, string | true>;
  /**
   * Names of parameters given more than once in this offer (`params` keeps
   * the first); absent when none was. The header is still well formed: each
   * extension decides, and permessage-deflate declines such an offer.
   */
  repeated?: string[];
}

/**
 * Parses a `Sec-WebSocket-Extensions` header value (RFC 6455 §9.1, RFC 7692
 * §5): offers separated by `,`, each a token followed by `;`-separated
 * parameters, each a token with an optional `=` value that is a token or a
 * quoted string (which, once unquoted, must be a token). Spaces and tabs are
 * allowed around `,`, `;` and `=`. A value of only whitespace yields no offers.
 * Offers keep their order, which is the client's preference; the same
 * extension may be offered more than once, with different parameters. A
 * parameter repeated within an offer is listed in its `repeated`.
 *
 * @param header The header value; repeated headers joined with `", "`.
 * @returns The offers in the order sent.
 * @throws {HandshakeError} Status 400, code `"WS_ERR_INVALID_EXTENSIONS"`,
 * when the value does not follow the grammar.
 *
 * @example
 * ```ts
 * import { parseExtensions } from "@duplex/ws/core";
 *
 * const offers = parseExtensions("permessage-deflate; client_max_window_bits, permessage-deflate");
 * console.log(offers.length, offers[0]?.params.client_max_window_bits); // 2 true
 * ```
 */
export function parseExtensions(header: string): ExtensionOffer[] {
  const offers: ExtensionOffer[] = [];
  const n = header.length;
  let i = 0;
  const skipSpace = (): void => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && isTokenChar(header.charCodeAt(i))) i++;
    return header.slice(start, i);
  };
  const fail = (detail: string): HandshakeError =>
    new HandshakeError(
      "WS_ERR_INVALID_EXTENSIONS",
      400,
      `Invalid Sec-WebSocket-Extensions header: ${detail}`,
    );

  skipSpace();
  if (i === n) return offers;
  for (;;) {
    skipSpace();
    const name = readToken();
    if (name === "") throw fail(`expected an extension name at offset ${i}`);
    const params: Record<string, string | true> = {};
    let repeated: string[] | undefined;
    skipSpace();
    while (header[i] === ";") {
      i++;
      skipSpace();
      const key = readToken();
      if (key === "") throw fail(`expected a parameter name at offset ${i}`);
      skipSpace();
      let value: string | true = true;
      if (header[i] === "=") {
        i++;
        skipSpace();
        if (header[i] === '"') {
          value = readQuoted();
          if (!isToken(value)) throw fail(`quoted value of parameter ${key} is not a token`);
        } else {
          value = readToken();
          if (value === "") throw fail(`expected a value for parameter ${key} at offset ${i}`);
        }
        skipSpace();
      }
      if (Object.hasOwn(params, key)) {
        (repeated ??= []).push(key);
        continue;
      }
      // defineProperty, so that a parameter named "__proto__" stays an own property.
      Object.defineProperty(params, key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    offers.push(repeated === undefined ? { name, params } : { name, params, repeated });
    if (i === n) return offers;
    if (header[i] !== ",") throw fail(`unexpected character at offset ${i}`);
    i++;
  }

  function readQuoted(): string {
    let out = "";
    i++; // Opening quote.
    while (i < n) {
      const c = header.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c === 0x5c) {
        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
        const next = header.charCodeAt(i + 1);
        if (!(next === 0x09 || (next >= 0x20 && next <= 0xff && next !== 0x7f))) break;
        out += header[i + 1];
        i += 2;
        continue;
      }
      // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
      if (!(c === 0x09 || (c >= 0x20 && c <= 0xff && c !== 0x7f))) break;
      out += header[i];
      i++;
    }
    throw fail("unterminated or invalid quoted string");
  }
}

/**
 * Parses a `Sec-WebSocket-Protocol` header value: a comma-separated list of
 * tokens, in the client's order of preference. Empty elements are skipped
 * (RFC 9110 §5.6.1). Subprotocol names are case-sensitive.
 *
 * @param header The header value; repeated headers joined with `", "`.
 * @returns The offered subprotocols in the order sent.
 * @throws {HandshakeError} Status 400, code `"WS_ERR_INVALID_PROTOCOLS"`,
 * when an element is not a token or appears twice.
 *
 * @example
 * ```ts
 * import { parseProtocols } from "@duplex/ws/core";
 *
 * console.log(parseProtocols("chat.v2, chat.v1")); // ["chat.v2", "chat.v1"]
 * ```
 */
export function parseProtocols(header: string): string[] {
  const seen = new Set<string>();
  for (const element of header.split(",")) {
    const protocol = trimSpace(element);
    if (protocol === "") continue;
    if (!isToken(protocol)) {
      throw new HandshakeError(
        "WS_ERR_INVALID_PROTOCOLS",
        400,
        "Invalid Sec-WebSocket-Protocol header: an element is not a token",
      );
    }
    if (seen.has(protocol)) {
      throw new HandshakeError(
        "WS_ERR_INVALID_PROTOCOLS",
        400,
        `Invalid Sec-WebSocket-Protocol header: duplicate subprotocol ${protocol}`,
      );
    }
    seen.add(protocol);
  }
  return [...seen];
}

/**
 * Chooses the subprotocol to answer with: the first of the server's
 * `supported` list, in the server's order of preference, that the client
 * offered. Never the client's first offer merely because it came first.
 * Comparison is case-sensitive.
 *
 * @param offered Subprotocols the client offered, as from {@linkcode parseProtocols}.
 * @param supported Subprotocols the server speaks, most preferred first.
 * @returns The chosen subprotocol, or `undefined` when there is none in common
 * (the answer then carries no `Sec-WebSocket-Protocol`).
 *
 * @example
 * ```ts
 * import { selectSubprotocol } from "@duplex/ws/core";
 *
 * console.log(selectSubprotocol(["a", "b"], ["b", "a"])); // "b"
 * console.log(selectSubprotocol(["a"], ["c"])); // undefined
 * ```
 */
export function selectSubprotocol(
  offered: readonly string[],
  supported: readonly string[],
): string | undefined {
  return supported.find((protocol) => offered.includes(protocol));
}

/**
 * The head of an HTTP request in either shape a runtime gives it: web
 * `Headers`, or the record of Node's `IncomingMessage.headers` (lower-case
 * names; an array value stands for a repeated field and is joined with
 * `", "`).
 *
 * @example
 * ```ts
 * import type { HeadLike } from "@duplex/ws/core";
 *
 * const head: HeadLike = {
 *   method: "GET",
 *   url: "/",
 *   httpVersion: "1.1",
 *   headers: { host: "example.com", "x-tag": ["a", "b"] },
 * };
 * ```
 */
export interface HeadLike {
  /** Request method. */
  method: string;
  /** Request target as sent. */
  url: string;
  /** HTTP version without the `HTTP/` prefix, such as `"1.1"`. */
  httpVersion: string;
  /** Header fields. */
  headers: Headers | Record<string, string | string[] | undefined>;
}

/**
 * A valid WebSocket upgrade request, as returned by
 * {@linkcode validateUpgradeRequest}.
 *
 * @example
 * ```ts
 * import type { UpgradeRequest } from "@duplex/ws/core";
 *
 * function wantsChat(request: UpgradeRequest): boolean {
 *   return request.protocols.includes("chat");
 * }
 * ```
 */
export interface UpgradeRequest {
  /** Always `"GET"`. */
  method: string;
  /** Request target as sent. */
  url: string;
  /** HTTP version, 1.1 or later, such as `"1.1"`. */
  httpVersion: string;
  /**
   * Header fields; the given `Headers`, or a `Headers` made from a record or
   * from raw bytes. A request validated from raw bytes or a record keeps
   * its fields in a compact form and builds this `Headers` on first access.
   */
  headers: Headers;
  /** `Sec-WebSocket-Key`, trimmed. */
  key: string;
  /** `Sec-WebSocket-Version`: only 13 is accepted. */
  version: 13;
  /** Offered subprotocols in the client's order; empty when none. */
  protocols: string[];
  /** Offered extensions in the client's order; empty when none. */
  extensions: ExtensionOffer[];
}

/**
 * Checks that a request is a valid WebSocket opening handshake (RFC 6455
 * §4.2.1) and extracts what the answer needs. Checks run in this order, and
 * the first that fails decides the answer:
 *
 * 1. no `Upgrade` header: 426 `WS_ERR_UPGRADE_REQUIRED` (a plain HTTP request);
 * 2. method not `GET`: 400 `WS_ERR_INVALID_METHOD`;
 * 3. HTTP version below 1.1: 400 `WS_ERR_INVALID_HTTP_VERSION`;
 * 4. a body, announced by `Transfer-Encoding` (any value) or by a
 *    `Content-Length` that is not one field of value 0 (`0`, `00`): 400
 *    `WS_ERR_MALFORMED_REQUEST` (the bytes after the head are read as
 *    WebSocket frames, never as a body);
 * 5. a request target that is neither a path (`/chat?room=1`) nor an
 *    `http:` or `https:` URL without user info: 400
 *    `WS_ERR_MALFORMED_REQUEST`;
 * 6. missing or empty `Host`: 400 `WS_ERR_MISSING_HOST`;
 * 7. `Host` repeated, not `host[:port]`, or not the host of a URL target: 400
 *    `WS_ERR_INVALID_HOST`;
 * 8. `Upgrade` without `websocket`: 400 `WS_ERR_INVALID_UPGRADE`;
 * 9. `Connection` without `upgrade`: 400 `WS_ERR_INVALID_CONNECTION`;
 * 10. `Sec-WebSocket-Version` not `13`: 426 `WS_ERR_INVALID_VERSION`;
 * 11. `Sec-WebSocket-Key` not the base64 of 16 bytes: 400 `WS_ERR_INVALID_KEY`;
 * 12. malformed `Sec-WebSocket-Protocol` or `Sec-WebSocket-Extensions`: 400.
 *
 * @param head The request head.
 * @returns The checked request.
 * @throws {HandshakeError} The answer to send instead of 101, as listed
 * above. The 426 answers carry `Sec-WebSocket-Version: 13`.
 *
 * @example
 * ```ts
 * import { validateUpgradeRequest } from "@duplex/ws/core";
 *
 * const request = validateUpgradeRequest({
 *   method: "GET",
 *   url: "/chat",
 *   httpVersion: "1.1",
 *   headers: new Headers({
 *     Host: "example.com",
 *     Upgrade: "websocket",
 *     Connection: "Upgrade",
 *     "Sec-WebSocket-Version": "13",
 *     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
 *     "Sec-WebSocket-Protocol": "chat, superchat",
 *   }),
 * });
 * console.log(request.protocols); // ["chat", "superchat"]
 * ```
 */
export function validateUpgradeRequest(head: HeadLike): UpgradeRequest {
  // Raw fields are looked up where they are; a record is checked by making
  // a `Headers` of it, and kept rather than that `Headers`.
  const block = RawRequestHead.fieldsOf(head);
  let headers: Pick<Headers, "get">;
  let fields: FieldSource;
  if (block !== undefined) {
    headers = new BlockFields(block);
    fields = block;
  } else {
    headers = toHeaders(head.headers);
    fields = head.headers;
  }

  const upgrade = headers.get("upgrade");
  if (upgrade === null) {
    throw new HandshakeError(
      "WS_ERR_UPGRADE_REQUIRED",
      426,
      "Upgrade required: this endpoint only accepts WebSocket connections",
      { Upgrade: "websocket", Connection: "Upgrade", "Sec-WebSocket-Version": "13" },
    );
  }
  if (head.method !== "GET") {
    throw new HandshakeError(
      "WS_ERR_INVALID_METHOD",
      400,
      "Invalid method: a WebSocket handshake must use GET",
    );
  }
  if (!isHttp11OrLater(head.httpVersion)) {
    throw new HandshakeError(
      "WS_ERR_INVALID_HTTP_VERSION",
      400,
      "Invalid HTTP version: a WebSocket handshake needs HTTP/1.1 or later",
    );
  }
  // No body: what follows the head is frames, so a body that an
  // intermediary forwards would be read as frames (request smuggling).
  if (headers.get("transfer-encoding") !== null) {
    throw new HandshakeError(
      "WS_ERR_MALFORMED_REQUEST",
      400,
      "Malformed request: a WebSocket handshake has no body, and this one has Transfer-Encoding",
    );
  }
  const contentLength = headers.get("content-length");
  if (contentLength !== null && !isZeroLength(contentLength)) {
    throw new HandshakeError(
      "WS_ERR_MALFORMED_REQUEST",
      400,
      "Malformed request: a WebSocket handshake has no body, and this one has a Content-Length other than 0",
    );
  }
  const authority = targetAuthority(head.url);
  if (authority === undefined) {
    throw new HandshakeError(
      "WS_ERR_MALFORMED_REQUEST",
      400,
      "Malformed request: the request target must be a path or an http(s) URL",
    );
  }
  const host = trimSpace(headers.get("host") ?? "");
  if (host === "") {
    throw new HandshakeError("WS_ERR_MISSING_HOST", 400, "Missing Host header");
  }
  // A repeated Host arrives joined with ", ", which is not a host.
  if (!isHost(host)) {
    throw new HandshakeError("WS_ERR_INVALID_HOST", 400, "Invalid Host header: it must be one host[:port]");
  }
  if (authority !== "" && authority.toLowerCase() !== host.toLowerCase()) {
    throw new HandshakeError(
      "WS_ERR_INVALID_HOST",
      400,
      "Invalid Host header: it differs from the host of the request target",
    );
  }
  if (!hasListToken(upgrade, "websocket")) {
    throw new HandshakeError(
      "WS_ERR_INVALID_UPGRADE",
      400,
      "Invalid Upgrade header: it must include websocket",
    );
  }
  if (!hasListToken(headers.get("connection") ?? "", "upgrade")) {
    throw new HandshakeError(
      "WS_ERR_INVALID_CONNECTION",
      400,
      "Invalid Connection header: it must include Upgrade",
    );
  }
  if (trimSpace(headers.get("sec-websocket-version") ?? "") !== "13") {
    throw new HandshakeError(
      "WS_ERR_INVALID_VERSION",
      426,
      "Missing or unsupported Sec-WebSocket-Version header: only version 13 is supported",
      { "Sec-WebSocket-Version": "13" },
    );
  }
  const key = trimSpace(headers.get("sec-websocket-key") ?? "");
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key)) {
    throw new HandshakeError(
      "WS_ERR_INVALID_KEY",
      400,
      "Missing or invalid Sec-WebSocket-Key header",
    );
  }
  const protocols = headers.get("sec-websocket-protocol");
  const extensions = headers.get("sec-websocket-extensions");
  return new ValidRequest(
    head,
    fields,
    key,
    protocols === null ? [] : parseProtocols(protocols),
    extensions === null ? [] : parseExtensions(extensions),
  );
}

/** Raw fields with the one method of `Headers` that the checks use. */
class BlockFields {
  readonly #block: string;
  constructor(block: string) {
    this.#block = block;
  }
  get(name: string): string | null {
    return fieldValue(this.#block, name);
  }
}

/** Where a {@linkcode ValidRequest} builds its `headers` from: raw fields, a record, or the `Headers` itself. */
type FieldSource = string | Record<string, string | string[] | undefined> | Headers;

/** How {@linkcode ValidRequest} defines its lazy `headers`. */
let lazyHeaders: PropertyDescriptor;

/**
 * The {@linkcode UpgradeRequest} that {@linkcode validateUpgradeRequest}
 * returns. It lives as long as its connection, so it keeps the header
 * fields as they came (a raw block or a record) and builds `headers` on
 * first access. `headers` is an own, enumerable, assignable accessor, so
 * that the object still spreads, serializes and assigns like a plain one.
 */
class ValidRequest implements UpgradeRequest {
  declare method: string;
  declare url: string;
  declare httpVersion: string;
  declare headers: Headers;
  declare key: string;
  declare version: 13;
  declare protocols: string[];
  declare extensions: ExtensionOffer[];
  #fields: FieldSource;

  constructor(
    head: HeadLike,
    fields: FieldSource,
    key: string,
    protocols: string[],
    extensions: ExtensionOffer[],
  ) {
    this.#fields = fields;
    this.method = head.method;
    this.url = head.url;
    this.httpVersion = head.httpVersion;
    Object.defineProperty(this, "headers", lazyHeaders);
    this.key = key;
    this.version = 13;
    this.protocols = protocols;
    this.extensions = extensions;
  }

  static {
    lazyHeaders = {
      get(this: ValidRequest): Headers {
        const fields = this.#fields;
        if (fields instanceof Headers) return fields;
        // A record was checked by toHeaders() already: building it again cannot throw.
        return this.#fields = typeof fields === "string" ? blockHeaders(fields) : toHeaders(fields);
      },
      set(this: ValidRequest, headers: Headers): void {
        this.#fields = headers;
      },
      enumerable: true,
      configurable: true,
    };
  }
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
 * ```ts
 * import { checkErrorStatus } from "@duplex/ws/core";
 *
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
 * ```ts
 * import { reasonPhrase } from "@duplex/ws/core";
 *
 * console.log(reasonPhrase(429)); // "Too Many Requests"
 * ```
 */
export function reasonPhrase(status: number): string | undefined {
  return REASONS[status];
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

/**
 * Writes the HTTP answer that a {@linkcode HandshakeError} describes: its
 * status, its message as the body, and its headers.
 *
 * @param err The refusal: a `HandshakeError`, or any object with its
 * `status`, `message` and `headers`.
 * @returns The answer as bytes, ready for the socket.
 * @throws {UsageError} When the error holds an invalid status or header (see
 * {@linkcode buildErrorResponse}).
 *
 * @example
 * ```ts
 * import { HandshakeError, handshakeErrorResponse } from "@duplex/ws/core";
 *
 * const err = new HandshakeError("WS_ERR_INVALID_KEY", 400, "Missing or invalid Sec-WebSocket-Key header");
 * const bytes = handshakeErrorResponse(err);
 * console.log(new TextDecoder().decode(bytes).endsWith(err.message)); // true
 * ```
 */
export function handshakeErrorResponse(
  err: { status: number; message: string; headers?: Record<string, string> },
): Uint8Array {
  return buildErrorResponse(err.status, err.message, err.headers);
}

/** `TOKEN_CHARS` holds the characters of a token other than letters and digits. */
const TOKEN_CHARS = "!#$%&'*+-.^_`|~";

function isTokenChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
    (c < 0x7f && TOKEN_CHARS.includes(String.fromCharCode(c)));
}

function isToken(value: string): boolean {
  if (value === "") return false;
  for (let i = 0; i < value.length; i++) {
    if (!isTokenChar(value.charCodeAt(i))) return false;
  }
  return true;
}

/** Trims optional whitespace (SP and HTAB only, RFC 9110 §5.6.3). */
function trimSpace(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === " " || value[start] === "\t")) start++;
  while (end > start && (value[end - 1] === " " || value[end - 1] === "\t")) end--;
  return value.slice(start, end);
}

/** Whether the comma-separated `list` has an element equal to `token`, ignoring case. */
function hasListToken(list: string, token: string): boolean {
  return list.split(",").some((element) => trimSpace(element).toLowerCase() === token);
}

/** Whether a `Content-Length` value is one `1*DIGIT` of value 0; `"0, 0"` (a repeated field) is not. */
function isZeroLength(value: string): boolean {
  const digits = trimSpace(value);
  if (digits === "") return false;
  for (let i = 0; i < digits.length; i++) if (digits[i] !== "0") return false;
  return true;
}

/**
 * The authority of a request target in absolute form (`http://host:port/path`,
 * RFC 9112 §3.2.2), `""` for origin form (`/path?query`), or `undefined` for
 * any other target: another scheme, user info, no host, `*` or authority form.
 */
function targetAuthority(target: string): string | undefined {
  if (target.startsWith("/")) return "";
  const scheme = target.slice(0, 8).toLowerCase();
  const start = scheme.startsWith("http://") ? 7 : scheme === "https://" ? 8 : -1;
  if (start === -1) return undefined;
  let end = start;
  while (end < target.length && target[end] !== "/" && target[end] !== "?" && target[end] !== "#") end++;
  const authority = target.slice(start, end);
  return authority === "" || authority.includes("@") ? undefined : authority;
}

/** Characters of a reg-name or an IP literal (RFC 3986 §3.2.2) besides letters and digits. */
const HOST_CHARS = "-._~%!$&'()*+,;=";

function isHostChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
    (c < 0x7f && HOST_CHARS.includes(String.fromCharCode(c)));
}

/**
 * Whether `value` is `uri-host [":" port]` (RFC 9110 §7.2): a name or IPv4
 * address, or an IP literal in brackets, then optionally a colon and digits.
 */
function isHost(value: string): boolean {
  let i = 0;
  if (value[0] === "[") {
    const close = value.indexOf("]");
    if (close < 2) return false;
    for (i = 1; i < close; i++) {
      if (value[i] !== ":" && !isHostChar(value.charCodeAt(i))) return false;
    }
    i = close + 1;
  } else {
    while (i < value.length && isHostChar(value.charCodeAt(i))) i++;
    if (i === 0) return false;
  }
  if (i === value.length) return true;
  if (value[i] !== ":") return false;
  for (i++; i < value.length; i++) {
    if (value[i]! < "0" || value[i]! > "9") return false;
  }
  return true;
}

function isHttp11OrLater(version: string): boolean {
  const match = /^(\d+)\.(\d+)$/.exec(version);
  if (match === null) return false;
  const major = Number(match[1]);
  return major > 1 || (major === 1 && Number(match[2]) >= 1);
}

function toHeaders(headers: HeadLike["headers"]): Headers {
  if (headers instanceof Headers) return headers;
  const out = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    try {
      out.set(name, Array.isArray(value) ? value.join(", ") : value);
    } catch {
      throw new HandshakeError(
        "WS_ERR_MALFORMED_REQUEST",
        400,
        "Malformed request: invalid header field",
      );
    }
  }
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

/** Whether `value` has no CR, LF, NUL, nor any character above U+00FF. */
function isWritableValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x0d || c === 0x0a || c === 0 || c > 0xff) return false;
  }
  return true;
}

/** Encodes a string of characters up to U+00FF, one byte each. */
function encodeLatin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/**
 * The size of a parsed request head as it was on the wire (request line,
 * header names, values and separators), to apply `maxHeaderBytes` to a
 * request that a runtime's HTTP server parsed.
 *
 * @param head The parsed head.
 * @returns Its size in bytes, counting each character as one byte.
 *
 * @example
 * ```ts
 * import { headSize } from "@duplex/ws/core";
 *
 * headSize({ method: "GET", url: "/", httpVersion: "1.1", headers: { host: "a" } }); // 27
 * ```
 */
export function headSize(head: HeadLike): number {
  let total = head.method.length + head.url.length + 12;
  const add = (name: string, value: string | string[] | undefined) => {
    if (value === undefined) return;
    for (const v of Array.isArray(value) ? value : [value]) total += name.length + v.length + 4;
  };
  if (head.headers instanceof Headers) head.headers.forEach((value, name) => add(name, value));
  else for (const name in head.headers) add(name, head.headers[name]);
  return total + 2;
}
