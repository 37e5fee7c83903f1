/**
 * Header fields kept as one string until someone asks for a `Headers`.
 *
 * A connection lives far longer than its handshake, and a `Headers` object
 * (its list, its map, an entry and two strings per field) costs about a
 * kilobyte and a half per connection for a few lookups made once. The raw
 * parser therefore records the fields as one latin1 string, a
 * `name:value\n` line per field in the order received (names as sent,
 * values trimmed); the handshake looks up what it needs in that string, and
 * the `Headers` is built on first access only.
 *
 * @module
 */

import type { RequestHead } from "./http_parser.ts";

const COLON = 0x3a;

/**
 * The value of a field in a block, as `Headers.get()` answers: `null` when
 * absent, the values of a repeated field joined with `", "` in the order
 * received.
 *
 * @param block Fields as `name:value\n` lines.
 * @param name The field name, in lower case.
 * @returns The value, or `null`.
 *
 * @example
 * ```ts ignore
 * fieldValue("Host:a\nX-Tag:1\nx-tag:2\n", "x-tag"); // "1, 2"
 * ```
 */
export function fieldValue(block: string, name: string): string | null {
  const n = name.length;
  let out: string | null = null;
  for (let start = 0; start < block.length;) {
    const end = block.indexOf("\n", start);
    if (block.charCodeAt(start + n) === COLON && sameName(block, start, name)) {
      const value = block.slice(start + n + 1, end);
      out = out === null ? value : `${out}, ${value}`;
    }
    start = end + 1;
  }
  return out;
}

/** Whether `block` holds `name` (lower case) at `start`, ignoring ASCII case. */
function sameName(block: string, start: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    let c = block.charCodeAt(start + i);
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c !== name.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Builds the `Headers` of a block, appending each field in order: the same
 * object the fields would have given had they been appended as parsed.
 *
 * @param block Fields as `name:value\n` lines, names tokens, values without
 * CR, LF or NUL (as the parser leaves them).
 * @returns A new `Headers`.
 *
 * @example
 * ```ts ignore
 * blockHeaders("Host:a\n").get("host"); // "a"
 * ```
 */
export function blockHeaders(block: string): Headers {
  const headers = new Headers();
  for (let start = 0; start < block.length;) {
    const end = block.indexOf("\n", start);
    const colon = block.indexOf(":", start);
    headers.append(block.slice(start, colon), block.slice(colon + 1, end));
    start = end + 1;
  }
  return headers;
}

/** How {@linkcode RawRequestHead} and the handshake define their lazy `headers`. */
let headersProperty: PropertyDescriptor;

/**
 * A request head as the raw parser returns it: `headers` is an own,
 * enumerable accessor that builds the `Headers` on first access (and may be
 * assigned, as a plain property could).
 *
 * @example
 * ```ts ignore
 * const head = new RawRequestHead("GET", "/", "1.1", "Host:a\n");
 * head.headers.get("host"); // "a"
 * ```
 */
export class RawRequestHead implements RequestHead {
  declare method: string;
  declare url: string;
  declare httpVersion: string;
  declare headers: Headers;
  #fields: string | Headers;

  /**
   * @param method Request method.
   * @param url Request target.
   * @param httpVersion HTTP version without the prefix.
   * @param fields Fields as `name:value\n` lines.
   */
  constructor(method: string, url: string, httpVersion: string, fields: string) {
    this.method = method;
    this.url = url;
    this.httpVersion = httpVersion;
    this.#fields = fields;
    Object.defineProperty(this, "headers", headersProperty);
  }

  /**
   * The fields of a head as a block, when it is a raw head whose `headers`
   * was never replaced; otherwise `undefined`.
   *
   * @param head Any request head.
   * @returns The block, or `undefined`.
   */
  static fieldsOf(head: unknown): string | undefined {
    return head instanceof RawRequestHead && typeof head.#fields === "string" ? head.#fields : undefined;
  }

  static {
    headersProperty = {
      get(this: RawRequestHead): Headers {
        const fields = this.#fields;
        return typeof fields === "string" ? (this.#fields = blockHeaders(fields)) : fields;
      },
      set(this: RawRequestHead, headers: Headers): void {
        this.#fields = headers;
      },
      enumerable: true,
      configurable: true,
    };
  }
}
