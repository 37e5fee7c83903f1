import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HandshakeError, UsageError } from "../../core/errors.ts";
import { type ParsedHead, RequestHeadParser } from "../../core/http_parser.ts";
import { cat as concat } from "./_util.ts";

const encoder = new TextEncoder();

/** Bytes of a string of characters up to U+00FF, one byte each. */
function latin1(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** The fields of `headers` in iteration order (sorted, repeated fields combined). */
function entries(headers: Headers): [string, string][] {
  const out: [string, string][] = [];
  headers.forEach((value, name) => out.push([name, value]));
  return out;
}

/** A comparable summary of what the parser did with some input. */
type Outcome =
  | {
    head: { method: string; url: string; httpVersion: string; headers: [string, string][] };
    rest: number[];
  }
  | { status: number; code: string }
  | "incomplete";

/**
 * Feeds `chunks` in order. Once a head comes back, the bytes not yet fed are
 * appended to its `rest`, so every split of the same input must give the same
 * outcome.
 */
function feed(chunks: Uint8Array[], max?: number): Outcome {
  const parser = new RequestHeadParser(max);
  for (let i = 0; i < chunks.length; i++) {
    let parsed: ParsedHead | undefined;
    try {
      parsed = parser.push(chunks[i]!);
    } catch (err) {
      if (!(err instanceof HandshakeError)) throw err;
      assert.throws(() => parser.push(new Uint8Array(1)), UsageError);
      return { status: err.status, code: err.code };
    }
    if (parsed !== undefined) {
      assert.throws(() => parser.push(new Uint8Array(1)), UsageError);
      const { head, rest } = parsed;
      return {
        head: {
          method: head.method,
          url: head.url,
          httpVersion: head.httpVersion,
          headers: entries(head.headers),
        },
        rest: [...concat(rest, ...chunks.slice(i + 1))],
      };
    }
  }
  return "incomplete";
}

/** Feeds `bytes` whole, split in two at every offset, and byte by byte; all must agree. */
function parseEverySplit(bytes: Uint8Array, max?: number): Outcome {
  const whole = feed([bytes], max);
  for (let at = 0; at <= bytes.length; at++) {
    assert.deepEqual(
      feed([bytes.subarray(0, at), bytes.subarray(at)], max),
      whole,
      `split at ${at}`,
    );
  }
  const single = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
  assert.deepEqual(feed(single, max), whole, "byte by byte");
  return whole;
}

function ok(
  method: string,
  url: string,
  httpVersion: string,
  headers: [string, string][],
  rest: number[] = [],
): Outcome {
  return { head: { method, url, httpVersion, headers }, rest };
}

const MALFORMED = { status: 400, code: "WS_ERR_MALFORMED_REQUEST" };
const TOO_LARGE = { status: 431, code: "WS_ERR_HEADERS_TOO_LARGE" };

describe("RequestHeadParser", () => {
  it("parses a WebSocket upgrade request", () => {
    const bytes = encoder.encode(
      "GET /chat?room=1 HTTP/1.1\r\n" +
        "Host: server.example.com\r\n" +
        "Upgrade: websocket\r\n" +
        "Connection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
        "Sec-WebSocket-Version: 13\r\n" +
        "\r\n",
    );
    assert.deepEqual(
      parseEverySplit(bytes),
      ok("GET", "/chat?room=1", "1.1", [
        ["connection", "Upgrade"],
        ["host", "server.example.com"],
        ["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="],
        ["sec-websocket-version", "13"],
        ["upgrade", "websocket"],
      ]),
    );
  });

  it("returns the bytes after the head, such as early frames", () => {
    const frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58, 0x0d, 0x0a];
    const bytes = concat(
      encoder.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
      Uint8Array.from(frame),
    );
    assert.deepEqual(parseEverySplit(bytes), ok("GET", "/", "1.1", [["host", "a"]], frame));
  });

  it("returns a zero-length rest when nothing follows the head", () => {
    const parsed = new RequestHeadParser().push(encoder.encode("GET / HTTP/1.1\r\n\r\n"));
    assert.ok(parsed !== undefined);
    assert.ok(parsed.rest instanceof Uint8Array);
    assert.equal(parsed.rest.length, 0);
  });

  it("returns rest as a copy, not a view of the pushed chunk", () => {
    const chunk = encoder.encode("GET / HTTP/1.1\r\n\r\nxy");
    const parsed = new RequestHeadParser().push(chunk);
    chunk.fill(0);
    assert.deepEqual([...parsed!.rest], [0x78, 0x79]);
  });

  it("refuses bare LF line endings, alone or mixed with CRLF, as node:http does", () => {
    for (
      const text of [
        "GET / HTTP/1.1\nHost: a\n\n",
        "GET / HTTP/1.1\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\nrest",
      ]
    ) {
      assert.deepEqual(parseEverySplit(encoder.encode(text)), MALFORMED, JSON.stringify(text));
    }
  });

  it("ignores empty lines before the request line", () => {
    assert.deepEqual(
      parseEverySplit(encoder.encode("\r\n\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")),
      ok("GET", "/", "1.1", [["host", "a"]]),
    );
  });

  it("combines repeated header fields", () => {
    assert.deepEqual(
      parseEverySplit(
        encoder.encode(
          "GET / HTTP/1.1\r\nX-A: 1\r\nHost: h\r\nx-a: 2\r\nSec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: b, c\r\n\r\n",
        ),
      ),
      ok("GET", "/", "1.1", [["host", "h"], ["sec-websocket-protocol", "a, b, c"], [
        "x-a",
        "1, 2",
      ]]),
    );
  });

  it("decodes header values as latin1, byte for byte", () => {
    // 0x80 is "€" in windows-1252 but U+0080 in latin1.
    const bytes = concat(
      encoder.encode("GET / HTTP/1.1\r\nX-Name: "),
      Uint8Array.from([0x80, 0x9f, 0xe9, 0xff]),
      encoder.encode("\r\n\r\n"),
    );
    assert.deepEqual(
      parseEverySplit(bytes),
      ok("GET", "/", "1.1", [["x-name", "\u0080\u009f\u00e9\u00ff"]]),
    );
  });

  it("trims optional whitespace around values and keeps inner whitespace", () => {
    assert.deepEqual(
      parseEverySplit(
        encoder.encode("GET / HTTP/1.1\r\nX-A: \t a \t b \t\r\nX-Empty:\r\nX-Blank:   \r\n\r\n"),
      ),
      ok("GET", "/", "1.1", [["x-a", "a \t b"], ["x-blank", ""], ["x-empty", ""]]),
    );
  });

  it("keeps the method's case and the request target as sent", () => {
    assert.deepEqual(
      parseEverySplit(encoder.encode("get http://example.com/a%20b?c=%22d%22#e HTTP/1.0\r\n\r\n")),
      ok("get", "http://example.com/a%20b?c=%22d%22#e", "1.0", []),
    );
  });

  it("waits for more bytes while the head is incomplete", () => {
    assert.equal(parseEverySplit(encoder.encode("GET / HTTP/1.1\r\nHost: a\r\n")), "incomplete");
    assert.equal(parseEverySplit(encoder.encode("GET / HTTP/1.1\r\nHost: a\r\n\r")), "incomplete");
    assert.equal(parseEverySplit(encoder.encode("\r\n\r\n")), "incomplete");
  });

  describe("refuses a malformed request with 400", () => {
    const cases: [string, string][] = [
      ["obs-fold with a space", "GET / HTTP/1.1\r\nX-A: 1\r\n  2\r\n\r\n"],
      ["obs-fold with a tab", "GET / HTTP/1.1\r\nX-A: 1\r\n\t2\r\n\r\n"],
      ["whitespace before the first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"],
      ["whitespace before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"],
      ["tab before the colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"],
      ["no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n"],
      ["empty field name", "GET / HTTP/1.1\r\n: a\r\n\r\n"],
      ["non-token field name", "GET / HTTP/1.1\r\nX(a): a\r\n\r\n"],
      ["bare CR in a value", "GET / HTTP/1.1\r\nX-A: 1\r2\r\n\r\n"],
      ["bare CR as a line ending", "GET / HTTP/1.1\rHost: a\r\n\r\n"],
      ["CR CR LF", "GET / HTTP/1.1\r\r\n\r\n"],
      ["bare CR ending the head", "GET / HTTP/1.1\r\n\r\r\n"],
      ["NUL in a value", "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n"],
      ["DEL in a value", "GET / HTTP/1.1\r\nX-A: a\x7fb\r\n\r\n"],
      ["ESC in a value", "GET / HTTP/1.1\r\nX-A: a\x1bb\r\n\r\n"],
      ["missing request target", "GET  HTTP/1.1\r\n\r\n"],
      ["two spaces after the method", "GET  / HTTP/1.1\r\n\r\n"],
      ["space inside the target", "GET /a b HTTP/1.1\r\n\r\n"],
      ["non-ASCII target", "GET /\xe9 HTTP/1.1\r\n\r\n"],
      ["no HTTP version", "GET /\r\n\r\n"],
      ["lower-case HTTP name", "GET / http/1.1\r\n\r\n"],
      ["two-digit version", "GET / HTTP/1.11\r\n\r\n"],
      ["trailing space after the version", "GET / HTTP/1.1 \r\n\r\n"],
      ["empty method", " / HTTP/1.1\r\n\r\n"],
      ["non-token method", "G(T / HTTP/1.1\r\n\r\n"],
      ["whitespace-only first line", "  \r\n\r\n"],
    ];
    for (const [name, text] of cases) {
      it(name, () => assert.deepEqual(parseEverySplit(latin1(text)), MALFORMED));
    }
  });

  describe("limits", () => {
    const head = encoder.encode("GET / HTTP/1.1\r\nHost: example.com\r\nX-Pad: abcdefghij\r\n\r\n");

    it("accepts a header block of exactly maxHeaderBytes", () => {
      const outcome = parseEverySplit(concat(head, Uint8Array.of(1, 2)), head.length);
      assert.deepEqual(
        outcome,
        ok("GET", "/", "1.1", [["host", "example.com"], ["x-pad", "abcdefghij"]], [1, 2]),
      );
    });

    it("refuses a header block of maxHeaderBytes + 1 with 431", () => {
      assert.deepEqual(parseEverySplit(head, head.length - 1), TOO_LARGE);
    });

    it("does not count empty lines before the request line", () => {
      const outcome = parseEverySplit(concat(encoder.encode("\r\n\r\n"), head), head.length);
      assert.ok(typeof outcome === "object" && "head" in outcome);
    });

    it("answers 431 rather than 400 for a line that passes the limit, however it ends", () => {
      const lf = encoder.encode("GET / HTTP/1.1\r\nX-Pad: abcdefghij\n\r\n");
      assert.deepEqual(parseEverySplit(lf, lf.length), MALFORMED);
      assert.deepEqual(parseEverySplit(lf, 20), TOO_LARGE);
    });

    it("refuses as soon as the limit is passed, without waiting for the end", () => {
      const max = 64;
      const endless = encoder.encode("GET / HTTP/1.1\r\nX-Pad: " + "a".repeat(200));
      const parser = new RequestHeadParser(max);
      for (let i = 0; i < max; i++) {
        assert.equal(parser.push(endless.subarray(i, i + 1)), undefined);
      }
      assert.throws(
        () => parser.push(endless.subarray(max, max + 1)),
        (err) =>
          err instanceof HandshakeError && err.status === 431 &&
          err.code === "WS_ERR_HEADERS_TOO_LARGE",
      );
      // A request line that never ends, in one chunk.
      assert.throws(
        () => new RequestHeadParser(max).push(new Uint8Array(max + 1).fill(0x61)),
        HandshakeError,
      );
    });

    it("bounds empty lines before the request line", () => {
      assert.deepEqual(parseEverySplit(encoder.encode("\r\n".repeat(40)), 64), MALFORMED);
    });

    it("accepts 100 header fields and refuses 101 with 431", () => {
      const fields = (n: number): string =>
        Array.from({ length: n }, (_, i) => `X-${i}: ${i}\r\n`).join("");
      const hundred = new RequestHeadParser().push(
        encoder.encode(`GET / HTTP/1.1\r\n${fields(100)}\r\n`),
      );
      assert.equal(entries(hundred!.head.headers).length, 100);
      assert.deepEqual(feed([encoder.encode(`GET / HTTP/1.1\r\n${fields(101)}\r\n`)]), TOO_LARGE);
    });

    it("uses DEFAULT_LIMITS.maxHeaderBytes (16 KiB) by default", () => {
      const pad = (n: number): Uint8Array => {
        const start = "GET / HTTP/1.1\r\nX-Pad: ";
        return encoder.encode(start + "a".repeat(n - start.length - 4) + "\r\n\r\n");
      };
      assert.equal(pad(16384).length, 16384);
      assert.ok(typeof feed([pad(16384)]) === "object" && "head" in (feed([pad(16384)]) as object));
      assert.deepEqual(feed([pad(16385)]), TOO_LARGE);
    });

    it("parses a 16 KiB head fed byte by byte in linear time", () => {
      // Many short fields, then one long field taking nearly all the limit.
      for (const count of [90, 1]) {
        const lines = Array.from({ length: count }, (_, i) => `X-${i}: ${"v".repeat(150)}\r\n`)
          .join("");
        const start = `GET / HTTP/1.1\r\n${lines}X-Last: `;
        const last = "z".repeat(16384 - start.length - 4);
        const bytes = encoder.encode(`${start}${last}\r\n\r\n`);
        assert.equal(bytes.length, 16384);
        const started = performance.now();
        const parser = new RequestHeadParser();
        let parsed: ParsedHead | undefined;
        for (let i = 0; i < bytes.length; i++) parsed = parser.push(bytes.subarray(i, i + 1));
        const elapsed = performance.now() - started;
        assert.equal(parsed?.head.headers.get("x-last"), last);
        assert.ok(elapsed < 1000, `took ${elapsed} ms`);
      }
    });

    it("refuses an invalid maxHeaderBytes", () => {
      for (const bad of [0, -1, 1.5, NaN]) {
        assert.throws(
          () => new RequestHeadParser(bad),
          (err) => err instanceof UsageError && err.code === "ERR_INVALID_OPTION",
        );
      }
    });
  });

  it("throws UsageError when pushed to after it finished", () => {
    const parser = new RequestHeadParser();
    assert.ok(parser.push(encoder.encode("GET / HTTP/1.1\r\n\r\n")));
    assert.throws(
      () => parser.push(new Uint8Array(0)),
      (err) => err instanceof UsageError && err.code === "ERR_PARSER_FINISHED",
    );
  });
});
