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

import { HandshakeError } from "./errors.ts";
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

/**
 * Where a lazy `headers` is built from: raw fields (`name:value\n` lines), a
 * record of Node's shape (checked by {@linkcode toHeaders} already), or the
 * `Headers` itself once built or assigned.
 */
export type FieldSource = string | Record<string, string | string[] | undefined> | Headers;

/**
 * The `Headers` of a record of Node's shape (lower-case names; an array
 * value stands for a repeated field and is joined with `", "`), or the
 * `Headers` given.
 *
 * @param headers A `Headers` or a record.
 * @returns A `Headers`.
 * @throws {HandshakeError} 400 `WS_ERR_MALFORMED_REQUEST` when a name or value is not valid.
 *
 * @example
 * ```ts ignore
 * toHeaders({ host: "a", "x-tag": ["1", "2"] }).get("x-tag"); // "1, 2"
 * ```
 */
export function toHeaders(headers: Headers | Record<string, string | string[] | undefined>): Headers {
  if (headers instanceof Headers) return headers;
  const out = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    try {
      out.set(name, Array.isArray(value) ? value.join(", ") : value);
    } catch {
      throw new HandshakeError("WS_ERR_MALFORMED_REQUEST", 400, "Malformed request: invalid header field");
    }
  }
  return out;
}

/** The one accessor every {@linkcode LazyHeaders} defines as its own `headers`. */
let lazyHeaders: PropertyDescriptor;

/**
 * The base of the objects that keep a request's fields as they came and
 * build `headers` on first access: the raw parser's head and the validated
 * upgrade request, which lives as long as its connection. `headers` is an
 * own, enumerable, assignable accessor (defined by {@linkcode defineHeaders}
 * where the subclass wants it among its keys), so that the object still
 * spreads, serializes and assigns like a plain one.
 *
 * @example
 * ```ts ignore
 * class Head extends LazyHeaders {
 *   declare headers: Headers;
 *   constructor(fields: string) {
 *     super(fields);
 *     defineHeaders(this);
 *   }
 * }
 * new Head("Host:a\n").headers.get("host"); // "a"
 * ```
 */
export class LazyHeaders {
  #fields: FieldSource;

  /**
   * @param fields Where `headers` will be built from.
   */
  constructor(fields: FieldSource) {
    this.#fields = fields;
  }

  /**
   * The fields of a head as a block, when it keeps raw fields and its
   * `headers` was never built from them or replaced; otherwise `undefined`.
   *
   * @param head Any request head.
   * @returns The block, or `undefined`.
   */
  static fieldsOf(head: unknown): string | undefined {
    return head instanceof LazyHeaders && typeof head.#fields === "string" ? head.#fields : undefined;
  }

  static {
    lazyHeaders = {
      get(this: LazyHeaders): Headers {
        const fields = this.#fields;
        if (fields instanceof Headers) return fields;
        // A record was checked by toHeaders() already: building it again cannot throw.
        return this.#fields = typeof fields === "string" ? blockHeaders(fields) : toHeaders(fields);
      },
      set(this: LazyHeaders, headers: Headers): void {
        this.#fields = headers;
      },
      enumerable: true,
      configurable: true,
    };
  }
}

/**
 * Defines the lazy `headers` accessor on a {@linkcode LazyHeaders}, at this
 * point of its key order.
 *
 * @param target The object.
 */
export function defineHeaders(target: LazyHeaders): void {
  Object.defineProperty(target, "headers", lazyHeaders);
}

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
export class RawRequestHead extends LazyHeaders implements RequestHead {
  declare method: string;
  declare url: string;
  declare httpVersion: string;
  declare headers: Headers;

  /**
   * @param method Request method.
   * @param url Request target.
   * @param httpVersion HTTP version without the prefix.
   * @param fields Fields as `name:value\n` lines.
   */
  constructor(method: string, url: string, httpVersion: string, fields: string) {
    super(fields);
    this.method = method;
    this.url = url;
    this.httpVersion = httpVersion;
    defineHeaders(this);
  }
}

/**
 * One field of a request head, without building its `headers` when the head
 * still keeps its raw block (a {@linkcode LazyHeaders}): reading the `Host`
 * to resolve the URL then leaves no `Headers` behind for the connection's
 * whole life. Same value as `request.headers.get(name)`.
 *
 * @param request Any request head.
 * @param name The field name, in lower case.
 * @returns The value (repeated fields joined with `", "`), or `null`.
 *
 * @example
 * ```ts ignore
 * requestField(request, "host"); // "example.com"
 * ```
 */
export function requestField(request: { readonly headers: Headers }, name: string): string | null {
  const block = LazyHeaders.fieldsOf(request);
  return block === undefined ? request.headers.get(name) : fieldValue(block, name);
}

/**
 * The fields of a `Headers` as one block of `name:value\n` lines (names in
 * lower case, as `Headers` gives them), for a {@linkcode RawRequestHead}: a
 * connection then keeps one string instead of the runtime's `Headers` and
 * the header list behind it. `blockHeaders()` of the block gives back the
 * same fields.
 *
 * @param headers Any `Headers` (its values hold no CR, LF or NUL).
 * @returns The block.
 *
 * @example
 * ```ts ignore
 * headersBlock(new Headers({ Host: "a" })); // "host:a\n"
 * ```
 */
export function headersBlock(headers: Headers): string {
  let block = "";
  headers.forEach((value, name) => {
    block += `${name}:${value}\n`;
  });
  return block;
}
