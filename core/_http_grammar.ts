/**
 * The pieces of HTTP grammar (RFC 9110 §5.6) that the request parser, the
 * handshake checks, the response writers and the adapters share, written
 * once: tokens, optional whitespace, comma-separated lists, and what a
 * header value may hold on the wire.
 *
 * @module
 */

/**
 * `TCHAR[c] === 1` when the byte or character code `c` may appear in a token
 * (RFC 9110 §5.6.2: letters, digits and ``!#$%&'*+-.^_`|~``).
 */
export const TCHAR: Uint8Array = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = TCHAR[c + 0x20] = 1;

/**
 * Whether a character code may appear in a token.
 *
 * @param c A character code or byte.
 * @returns `true` for a tchar.
 */
export function isTokenChar(c: number): boolean {
  return TCHAR[c] === 1; // undefined past 0xff
}

/**
 * Whether a string is a token: one or more tchars.
 *
 * @param value The string.
 * @returns `true` for a token.
 *
 * @example
 * ```ts ignore
 * isToken("chat.v1"); // true
 * isToken("a b"); // false
 * ```
 */
export function isToken(value: string): boolean {
  if (value === "") return false;
  for (let i = 0; i < value.length; i++) {
    if (TCHAR[value.charCodeAt(i)] !== 1) return false;
  }
  return true;
}

/**
 * Trims optional whitespace (SP and HTAB only, RFC 9110 §5.6.3).
 *
 * @param value The string.
 * @returns It without leading and trailing SP and HTAB.
 */
export function trimSpace(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === " " || value[start] === "\t")) start++;
  while (end > start && (value[end - 1] === " " || value[end - 1] === "\t")) end--;
  return value.slice(start, end);
}

/**
 * Whether a comma-separated list (such as `Connection: keep-alive, Upgrade`)
 * has an element equal to `token`, ignoring ASCII case and optional
 * whitespace.
 *
 * @param list The header value; `undefined` or `null` for an absent header.
 * @param token The element to look for, in lower case.
 * @returns `true` when present.
 *
 * @example
 * ```ts ignore
 * hasListToken("keep-alive, Upgrade", "upgrade"); // true
 * ```
 */
export function hasListToken(list: string | null | undefined, token: string): boolean {
  if (list === null || list === undefined) return false;
  return list.split(",").some((element) => trimSpace(element).toLowerCase() === token);
}

/**
 * Whether a header value can be written on one header line: no CR, LF or
 * NUL, and no character above U+00FF (one byte each on the wire).
 *
 * @param value The value.
 * @returns `true` when writable.
 */
export function isWritableValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x0d || c === 0x0a || c === 0 || c > 0xff) return false;
  }
  return true;
}
