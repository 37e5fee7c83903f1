/**
 * The server's check of a WebSocket opening handshake request (RFC 6455
 * §4.2.1): {@linkcode validateUpgradeRequest} turns a request head into an
 * {@linkcode UpgradeRequest}, or into the {@linkcode HandshakeError} that
 * says which HTTP answer refuses it. The offers it parses are in
 * `handshake_offers.ts`, the answers it leads to in `handshake_response.ts`.
 *
 * @module
 */

import { defineHeaders, type FieldSource, fieldValue, LazyHeaders, toHeaders } from "./_fields.ts";
import { hasListToken, trimSpace } from "./_http_grammar.ts";
import { HandshakeError } from "./errors.ts";
import { type ExtensionOffer, parseExtensions, parseProtocols } from "./handshake_offers.ts";

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
  const block = LazyHeaders.fieldsOf(head);
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

/**
 * The {@linkcode UpgradeRequest} that {@linkcode validateUpgradeRequest}
 * returns. It lives as long as its connection, so it keeps the header
 * fields as they came (a raw block or a record) and builds `headers` on
 * first access (see {@linkcode LazyHeaders}).
 */
class ValidRequest extends LazyHeaders implements UpgradeRequest {
  declare method: string;
  declare url: string;
  declare httpVersion: string;
  declare headers: Headers;
  declare key: string;
  declare version: 13;
  declare protocols: string[];
  declare extensions: ExtensionOffer[];

  constructor(
    head: HeadLike,
    fields: FieldSource,
    key: string,
    protocols: string[],
    extensions: ExtensionOffer[],
  ) {
    super(fields);
    this.method = head.method;
    this.url = head.url;
    this.httpVersion = head.httpVersion;
    defineHeaders(this);
    this.key = key;
    this.version = 13;
    this.protocols = protocols;
    this.extensions = extensions;
  }
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
