/**
 * The wire size of a request head that a runtime's HTTP server parsed, so
 * that `maxHeaderBytes` applies to it as to a head the raw parser read.
 *
 * @module
 */

import type { HeadLike } from "./handshake.ts";

/**
 * The size of a parsed request head as it was on the wire (request line,
 * header names, values and separators), to apply `maxHeaderBytes` to a
 * request that a runtime's HTTP server parsed.
 *
 * @param head The parsed head.
 * @returns Its size in bytes, counting each character as one byte.
 *
 * @example
 * ```ts ignore
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
