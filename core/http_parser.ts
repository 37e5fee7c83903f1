/**
 * An incremental parser for the head of an HTTP/1.1 request (request line and
 * header fields, RFC 9112), fed raw bytes as they arrive. It is used where a
 * runtime hands over a raw socket before any HTTP parsing, and it is strict:
 * obsolete line folding, bare CR, bare LF, whitespace before the colon and
 * control characters are refused, and the header block is capped in size and
 * count.
 *
 * @module
 */

import { describeValue } from "./_describe.ts";
import { RawRequestHead } from "./_fields.ts";
import { TCHAR } from "./_http_grammar.ts";
import { HandshakeError, UsageError } from "./errors.ts";
import { DEFAULT_LIMITS } from "./options.ts";

/**
 * The parsed head of an HTTP request.
 *
 * @example
 * ```ts
 * import type { RequestHead } from "@duplex/ws/core";
 *
 * function describe(head: RequestHead): string {
 *   return `${head.method} ${head.url} HTTP/${head.httpVersion}`;
 * }
 * ```
 */
export interface RequestHead {
  /** Request method, such as `"GET"`; case preserved. */
  method: string;
  /** Request target exactly as sent, such as `"/chat?room=1"`. */
  url: string;
  /** HTTP version without the `HTTP/` prefix, such as `"1.1"`. */
  httpVersion: string;
  /**
   * Header fields. Repeated fields are combined as `Headers` does (joined
   * with `", "`). Values are decoded as latin1: each byte is one character.
   * A head from {@linkcode RequestHeadParser} builds this `Headers` on first
   * access, from the fields it keeps as one string until then.
   */
  headers: Headers;
}

/**
 * What {@linkcode RequestHeadParser.push} returns once the head is complete.
 *
 * @example
 * ```ts
 * import { RequestHeadParser } from "@duplex/ws/core";
 *
 * const parsed = new RequestHeadParser().push(
 *   new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
 * );
 * console.log(parsed?.rest.length); // 0
 * ```
 */
export interface ParsedHead {
  /** The request head. */
  head: RequestHead;
  /**
   * Bytes received after the blank line that ends the head, which may already
   * be WebSocket frames. A copy, never a view of the pushed chunk. Zero-length
   * when there are none.
   */
  rest: Uint8Array;
}

/** The most header fields a request may carry. */
const MAX_HEADER_COUNT = 100;

const EMPTY = new Uint8Array(0);
const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/**
 * Parses the head of one HTTP/1.1 request from bytes pushed in pieces of any
 * size, down to one byte at a time, in time linear in the input: each byte is
 * looked at a bounded number of times however the input is split.
 *
 * Every line from the request line through the blank line that ends the head
 * must end with CRLF: a bare LF is refused, as `node:http` refuses it, so that
 * no intermediary can see other header fields than the parser does. Empty
 * lines before the request line (CRLF or a bare LF) are ignored (RFC 9112
 * §2.2). The header block counts from the request line through the
 * terminating blank line, and a request is refused as soon as it passes
 * `maxHeaderBytes`, before its end arrives.
 *
 * A parser serves one request: once `push()` has returned a head or thrown,
 * it is finished.
 *
 * @example Parsing a head split across two chunks
 * ```ts
 * import { RequestHeadParser } from "@duplex/ws/core";
 *
 * const parser = new RequestHeadParser(8192);
 * const bytes = new TextEncoder().encode("GET /chat HTTP/1.1\r\nHost: example.com\r\n\r\n");
 * console.log(parser.push(bytes.subarray(0, 10))); // undefined
 * const parsed = parser.push(bytes.subarray(10));
 * console.log(parsed?.head.url, parsed?.head.headers.get("host")); // "/chat" "example.com"
 * ```
 */
export class RequestHeadParser {
  #maxHeaderBytes: number;
  /** Bytes of the current line received so far when it spans chunks; allocated for the first such line. */
  #line: Uint8Array = EMPTY;
  #lineLength = 0;
  /** Bytes of the header block in completed lines. */
  #blockBytes = 0;
  /** Bytes of the empty lines skipped before the request line. */
  #leadingBytes = 0;
  #method = "";
  #url = "";
  #httpVersion = "";
  /** The header fields, each as a `name:value\n` line. */
  #fields: string[] = [];
  #headerCount = 0;
  #finished = false;

  /**
   * Creates a parser for one request head.
   *
   * @param maxHeaderBytes Largest header block accepted, in bytes, from the
   * request line through the terminating blank line.
   * @throws {UsageError} When `maxHeaderBytes` is not a positive integer.
   */
  constructor(maxHeaderBytes: number = DEFAULT_LIMITS.maxHeaderBytes) {
    if (!Number.isSafeInteger(maxHeaderBytes) || maxHeaderBytes < 1) {
      throw new UsageError(
        "ERR_INVALID_OPTION",
        `Invalid option: maxHeaderBytes must be an integer of at least 1, got ${describeValue(maxHeaderBytes)}`,
      );
    }
    this.#maxHeaderBytes = maxHeaderBytes;
  }

  /**
   * Feeds the next bytes received.
   *
   * @param chunk Bytes in the order received. Not retained: the parser copies
   * what it needs.
   * @returns The head and the bytes after it once the blank line ending the
   * head has arrived, otherwise `undefined`.
   * @throws {HandshakeError} Status 400, code `"WS_ERR_MALFORMED_REQUEST"`,
   * when the request is malformed; status 431, code
   * `"WS_ERR_HEADERS_TOO_LARGE"`, when the header block passes
   * `maxHeaderBytes` or has more than 100 fields.
   * @throws {UsageError} Code `"ERR_PARSER_FINISHED"` when called again after
   * returning a head or throwing.
   *
   * @example
   * ```ts
   * import { HandshakeError, RequestHeadParser } from "@duplex/ws/core";
   *
   * try {
   *   new RequestHeadParser().push(new TextEncoder().encode("GET / HTTP/1.1\r\nHost : a\r\n\r\n"));
   * } catch (err) {
   *   if (err instanceof HandshakeError) console.log(err.status); // 400
   * }
   * ```
   */
  push(chunk: Uint8Array): ParsedHead | undefined {
    if (this.#finished) {
      throw new UsageError(
        "ERR_PARSER_FINISHED",
        "Request head parser is finished: it already returned a head or threw",
      );
    }
    try {
      const parsed = this.#push(chunk);
      if (parsed !== undefined) this.#finished = true;
      return parsed;
    } catch (err) {
      this.#finished = true;
      throw err;
    }
  }

  #push(chunk: Uint8Array): ParsedHead | undefined {
    const max = this.#maxHeaderBytes;
    let pos = 0;
    while (pos < chunk.length) {
      const lf = chunk.indexOf(LF, pos);
      if (lf === -1) {
        // An unfinished line: keep it, unless it already passes the limit.
        if (this.#blockBytes + this.#lineLength + chunk.length - pos > max) throw tooLarge();
        this.#append(chunk, pos, chunk.length);
        return undefined;
      }

      const contentLength = this.#lineLength + lf - pos;
      const crlf = contentLength > 0 && (lf > pos ? chunk[lf - 1] : this.#line[this.#lineLength - 1]) === CR;
      const empty = contentLength === 0 || (contentLength === 1 && crlf);
      if (empty && this.#method === "") {
        // Empty lines before the request line are skipped (RFC 9112 §2.2),
        // but not without bound.
        this.#leadingBytes += contentLength + 1;
        if (this.#leadingBytes > max) {
          throw malformed("too many empty lines before the request line");
        }
        this.#lineLength = 0;
        pos = lf + 1;
        continue;
      }
      this.#blockBytes += contentLength + 1;
      if (this.#blockBytes > max) throw tooLarge();
      // A bare LF is refused (RFC 9112 §2.2 allows either): an intermediary
      // that splits lines only at CRLF would see other fields than we do.
      if (!crlf) throw malformed("line ending is a bare LF, not CRLF");

      let line: Uint8Array;
      if (this.#lineLength === 0) {
        line = chunk.subarray(pos, lf);
      } else {
        this.#append(chunk, pos, lf);
        line = this.#line.subarray(0, this.#lineLength);
        this.#lineLength = 0;
      }
      pos = lf + 1;

      if (empty) {
        return {
          head: new RawRequestHead(this.#method, this.#url, this.#httpVersion, this.#fields.join("")),
          rest: chunk.slice(pos),
        };
      }
      if (line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      if (line.includes(CR)) throw malformed("bare CR not followed by LF");
      if (this.#method === "") this.#requestLine(line);
      else this.#headerLine(line);
    }
    return undefined;
  }

  /** Appends `chunk[start, end)` to the current line, growing its buffer geometrically. */
  #append(chunk: Uint8Array, start: number, end: number): void {
    const needed = this.#lineLength + end - start;
    if (needed > this.#line.length) {
      const grown = new Uint8Array(Math.max(needed, this.#line.length * 2, 256));
      grown.set(this.#line.subarray(0, this.#lineLength));
      this.#line = grown;
    }
    this.#line.set(chunk.subarray(start, end), this.#lineLength);
    this.#lineLength = needed;
  }

  /** Parses `method SP request-target SP HTTP/d.d`. */
  #requestLine(line: Uint8Array): void {
    let i = 0;
    while (i < line.length && TCHAR[line[i]!] === 1) i++;
    if (i === 0 || line[i] !== SP) throw malformed("invalid method in request line");
    // The usual method and version are shared strings, not copies per request.
    const method = i === 3 && line[0] === 0x47 && line[1] === 0x45 && line[2] === 0x54 ? "GET" : latin1(line, 0, i);

    const targetStart = ++i;
    while (i < line.length && line[i]! > SP && line[i]! < 0x7f) i++;
    if (i === targetStart || line[i] !== SP) {
      throw malformed("invalid request target in request line");
    }
    const url = latin1(line, targetStart, i);

    const version = latin1(line, i + 1, line.length);
    if (!/^HTTP\/\d\.\d$/.test(version)) throw malformed("invalid HTTP version in request line");

    this.#method = method;
    this.#url = url;
    this.#httpVersion = version === "HTTP/1.1" ? "1.1" : version.slice(5);
  }

  /** Parses `field-name ":" OWS field-value OWS`. */
  #headerLine(line: Uint8Array): void {
    if (line[0] === SP || line[0] === HTAB) {
      throw malformed("obsolete line folding in header field");
    }
    if (++this.#headerCount > MAX_HEADER_COUNT) {
      throw new HandshakeError(
        "WS_ERR_HEADERS_TOO_LARGE",
        431,
        `Request header fields too large: more than ${MAX_HEADER_COUNT} fields`,
      );
    }

    let i = 0;
    while (i < line.length && TCHAR[line[i]!] === 1) i++;
    if (i === 0 || line[i] !== COLON) throw malformed("invalid header field name");
    const name = latin1(line, 0, i);

    let start = i + 1;
    let end = line.length;
    while (start < end && (line[start] === SP || line[start] === HTAB)) start++;
    while (end > start && (line[end - 1] === SP || line[end - 1] === HTAB)) end--;
    for (let j = start; j < end; j++) {
      const c = line[j]!;
      if ((c < SP && c !== HTAB) || c === 0x7f) {
        throw malformed("control character in header field value");
      }
    }
    // Names are tokens and values hold no CR, LF or NUL: one line per field
    // can be split again without ambiguity.
    this.#fields.push(`${name}:${latin1(line, start, end)}\n`);
  }
}

/** Decodes `bytes[start, end)` as latin1 (ISO-8859-1): byte n is U+00nn. */
function latin1(bytes: Uint8Array, start: number, end: number): string {
  let out = "";
  for (let i = start; i < end; i += 8192) {
    out += String.fromCharCode.apply(
      null,
      bytes.subarray(i, Math.min(end, i + 8192)) as unknown as number[],
    );
  }
  return out;
}

function malformed(detail: string): HandshakeError {
  return new HandshakeError("WS_ERR_MALFORMED_REQUEST", 400, `Malformed request: ${detail}`);
}

function tooLarge(): HandshakeError {
  return new HandshakeError("WS_ERR_HEADERS_TOO_LARGE", 431, "Request header fields too large");
}
