/**
 * The client's offers in an opening handshake, and the server's choice: the
 * grammar of `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` (RFC
 * 6455 §4.1, §9.1; RFC 7692 §5), and the choice of a subprotocol from the
 * server's list.
 *
 * @module
 */

import { isToken, isTokenChar, trimSpace } from "./_http_grammar.ts";
import { HandshakeError } from "./errors.ts";

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
