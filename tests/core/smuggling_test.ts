// Request smuggling and desync on the opening handshake, and worst-case
// (ReDoS-shaped) inputs at the size limit. Every request goes through the
// Engine from raw bytes, whole and split in every way `splits()` gives, and
// every split must give the same answer. A refused request never reports
// `upgrade`; the engine answers it, with `Connection: close`, and reads
// nothing more.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { negotiateDeflate } from "../../core/deflate.ts";
import { Engine, type EngineAcceptOptions, type EngineEvent, type EngineOptions } from "../../core/engine.ts";
import { type HeadLike, validateUpgradeRequest } from "../../core/handshake.ts";
import { parseExtensions, parseProtocols } from "../../core/handshake_offers.ts";
import { DEFAULT_LIMITS } from "../../core/options.ts";
import { ReadyState } from "../../core/state.ts";
import { cat, frame, splits } from "./_util.ts";

const KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
const VERSION = "Sec-WebSocket-Version: 13\r\n";
const MAX = DEFAULT_LIMITS.maxHeaderBytes;

/** A valid upgrade request; `extra` header lines go before the blank line. */
function request(extra = "", { line = "GET /chat HTTP/1.1", host = "Host: example.com\r\n" } = {}): string {
  return `${line}\r\n${host}Upgrade: websocket\r\nConnection: Upgrade\r\n${KEY}${VERSION}${extra}\r\n`;
}

/** Bytes of a string of characters up to U+00FF, one byte each. */
function latin1(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** Decodes bytes one character per byte (TextDecoder's "latin1" is windows-1252). */
function text(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += String.fromCharCode(b);
  return out;
}

/** What the engine did with a request: its events, and the first line and headers of its answer. */
interface Outcome {
  events: (string | { type: "rejected"; status: number; code: string })[];
  answer: string;
  closed: boolean;
}

/** Feeds `input` to a new engine, split in every way, and returns the one outcome they all give. */
function outcome(input: string | Uint8Array, options: EngineOptions = {}): Outcome {
  const bytes = typeof input === "string" ? latin1(input) : input;
  let first: Outcome | undefined;
  for (const chunks of splits(bytes)) {
    const engine = new Engine(options);
    const events: Outcome["events"] = [];
    for (const chunk of chunks) {
      engine.receive(chunk);
      for (let e = engine.nextEvent(); e; e = engine.nextEvent()) {
        events.push(e.type === "rejected" ? { type: e.type, status: e.error.status, code: e.error.code } : e.type);
      }
    }
    const output = text(cat(...engine.takeOutput()));
    const head = output.slice(0, output.indexOf("\r\n\r\n") + 2);
    const got: Outcome = {
      events,
      answer: head.split("\r\n")[0]! + (/\r\nConnection: close\r\n/.test(head) ? " (close)" : ""),
      closed: engine.state === ReadyState.Closed,
    };
    if (first === undefined) first = got;
    else assert.deepEqual(got, first, `split into ${chunks.map((c) => c.length).join(" + ")} bytes`);
  }
  return first!;
}

/** Asserts that the engine refuses `input` with `status` and `code`, and never reports `upgrade`. */
function refused(input: string | Uint8Array, status: number, code: string, options: EngineOptions = {}): void {
  const reasons: Record<number, string> = { 400: "Bad Request", 426: "Upgrade Required", 431: "Request Header Fields Too Large" };
  assert.deepEqual(outcome(input, options), {
    events: [{ type: "rejected", status, code }],
    answer: `HTTP/1.1 ${status} ${reasons[status]} (close)`,
    closed: true,
  });
  // Whatever comes next is never read: not as a request, not as frames.
  const engine = new Engine(options);
  engine.receive(typeof input === "string" ? latin1(input) : input.slice());
  engine.nextEvent();
  engine.takeOutput();
  engine.receive(cat(latin1(request()), frame(0x1, "after")));
  assert.equal(engine.nextEvent(), undefined);
  assert.deepEqual(engine.takeOutput(), []);
}

/** Asserts that the engine reports `upgrade` for `input` and nothing else before it is answered. */
function upgraded(input: string | Uint8Array, options: EngineOptions = {}): void {
  assert.deepEqual(outcome(input, options), { events: ["upgrade"], answer: "", closed: false });
}

/** Accepts `input` and returns every event after `upgrade` and the output, as text. */
function acceptAndRun(input: Uint8Array, accept: EngineAcceptOptions = {}): { events: EngineEvent[]; output: string } {
  const engine = new Engine();
  engine.receive(input);
  const upgrade = engine.nextEvent();
  assert.equal(upgrade?.type, "upgrade");
  engine.accept(accept);
  const events: EngineEvent[] = [];
  for (let e = engine.nextEvent(); e; e = engine.nextEvent()) events.push(e);
  return { events, output: text(cat(...engine.takeOutput())) };
}

const MALFORMED = "WS_ERR_MALFORMED_REQUEST";
const INVALID_HOST = "WS_ERR_INVALID_HOST";
const TOO_LARGE = "WS_ERR_HEADERS_TOO_LARGE";

describe("smuggling: a body on the upgrade request", () => {
  it("refuses Transfer-Encoding, whatever its value", () => {
    for (const value of ["chunked", "identity", "gzip, chunked", "", "chunked, identity"]) {
      refused(request(`Transfer-Encoding: ${value}\r\n`) + "0\r\n\r\n", 400, MALFORMED);
    }
  });

  it("refuses a Content-Length other than 0, with the body never read as frames", () => {
    // The body is a valid masked text frame: it must not become a message.
    const body = frame(0x1, "smuggled");
    refused(cat(latin1(request(`Content-Length: ${body.length}\r\n`)), body), 400, MALFORMED);
    refused(request("Content-Length: 5\r\n") + "hello", 400, MALFORMED);
  });

  it("refuses a repeated Content-Length, even with equal values", () => {
    refused(request("Content-Length: 0\r\nContent-Length: 0\r\n"), 400, MALFORMED);
    refused(request("Content-Length: 0\r\nContent-Length: 5\r\n") + "hello", 400, MALFORMED);
    refused(request("Content-Length: 0, 0\r\n"), 400, MALFORMED);
  });

  it("refuses a Content-Length that is not digits", () => {
    for (const value of ["-1", "+0", "0x0", "0.0", "1e0", "0 0", ""]) {
      refused(request(`Content-Length: ${value}\r\n`), 400, MALFORMED);
    }
  });

  it("refuses Transfer-Encoding with Content-Length", () => {
    refused(request("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n") + "0\r\n\r\n", 400, MALFORMED);
    refused(request("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n") + "0\r\n\r\n", 400, MALFORMED);
  });

  it("accepts Content-Length: 0 (and 00), which announces no body", () => {
    upgraded(request("Content-Length: 0\r\n"));
    upgraded(request("Content-Length: 00\r\n"));
  });
});

describe("smuggling: header syntax", () => {
  it("refuses obs-fold (a line starting with SP or HTAB)", () => {
    refused(request("X-A: 1\r\n  2\r\n"), 400, MALFORMED);
    refused(request("X-A: 1\r\n\tTransfer-Encoding: chunked\r\n"), 400, MALFORMED);
    // Folding right after the request line, hiding Host from a lenient parser.
    refused(request("", { host: " Host: example.com\r\n" }), 400, MALFORMED);
  });

  it("refuses whitespace between the field name and the colon", () => {
    refused(request("", { host: "Host : example.com\r\n" }), 400, MALFORMED);
    refused(request("Transfer-Encoding : chunked\r\n"), 400, MALFORMED);
    refused(request("Content-Length\t: 5\r\n") + "hello", 400, MALFORMED);
  });

  it("refuses bare LF line endings, everywhere or in one line", () => {
    refused(request().replaceAll("\r\n", "\n"), 400, MALFORMED);
    refused(request("X-A: 1\nTransfer-Encoding: chunked\r\n"), 400, MALFORMED);
    refused(request().replace("GET /chat HTTP/1.1\r\n", "GET /chat HTTP/1.1\n"), 400, MALFORMED);
    // The blank line ending the head.
    refused(request().slice(0, -2) + "\n", 400, MALFORMED);
  });

  it("still skips empty lines before the request line, CRLF or LF (RFC 9112 §2.2)", () => {
    upgraded("\r\n\n" + request());
  });

  it("refuses a bare CR", () => {
    refused(request("X-A: 1\rTransfer-Encoding: chunked\r\n"), 400, MALFORMED);
    refused(request().replace("GET /chat HTTP/1.1\r\n", "GET /chat HTTP/1.1\r"), 400, MALFORMED);
    refused(request().slice(0, -2) + "\r\r\n", 400, MALFORMED);
  });

  it("refuses NUL and other control characters in names and values", () => {
    for (const c of ["\0", "\x01", "\x0b", "\x0c", "\x1b", "\x7f"]) {
      refused(request(`X-A: a${c}b\r\n`), 400, MALFORMED);
      refused(request(`X${c}A: ab\r\n`), 400, MALFORMED);
    }
    // HTAB is allowed inside a value; obs-text too (it is latin1).
    upgraded(request("X-A: a\tb\xe9\r\n"));
  });

  it("refuses header names that are not tokens", () => {
    for (const name of ["X A", "X(A)", "X\"A", "[X]", "X/Y", "X@Y", "X,Y", "X;Y", "X=Y", "X\\Y", "X{Y}", "\xe9"]) {
      refused(request(`${name}: a\r\n`), 400, MALFORMED);
    }
  });
});

describe("smuggling: fields that must appear once", () => {
  it("refuses a repeated Host, equal or not", () => {
    refused(request("Host: evil.example\r\n"), 400, INVALID_HOST);
    refused(request("Host: example.com\r\n"), 400, INVALID_HOST);
    refused(request("", { host: "Host: example.com, evil.example\r\n" }), 400, INVALID_HOST);
  });

  it("refuses a Host that is not one host[:port]", () => {
    for (const host of ["a b", "example.com/x", "user@example.com", "example.com:80x", "[::1", "example.com?"]) {
      refused(request("", { host: `Host: ${host}\r\n` }), 400, INVALID_HOST);
    }
    for (const host of ["localhost:8080", "127.0.0.1", "[::1]:8080", "xn--mller-kva.de"]) {
      upgraded(request("", { host: `Host: ${host}\r\n` }));
    }
  });

  it("refuses a repeated Sec-WebSocket-Key with 400 and a repeated Sec-WebSocket-Version with 426", () => {
    refused(request(KEY), 400, "WS_ERR_INVALID_KEY");
    refused(request("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"), 400, "WS_ERR_INVALID_KEY");
    // "13, 13" is not a version this server speaks: the RFC 6455 §4.4 answer, naming 13.
    refused(request(VERSION), 426, "WS_ERR_INVALID_VERSION");
  });
});

describe("smuggling: the request line", () => {
  it("refuses an absolute-form target whose host is not the Host", () => {
    refused(request("", { line: "GET http://evil.example/chat HTTP/1.1" }), 400, INVALID_HOST);
    refused(request("", { line: "GET https://example.com.evil.example/chat HTTP/1.1" }), 400, INVALID_HOST);
  });

  it("accepts an absolute-form http(s) target for the Host (RFC 9112 §3.2.2)", () => {
    upgraded(request("", { line: "GET http://example.com/chat HTTP/1.1" }));
    upgraded(request("", { line: "GET HTTPS://EXAMPLE.COM/chat?room=1 HTTP/1.1" }));
  });

  it("refuses other targets: user info, another scheme, asterisk, authority or relative form", () => {
    for (const target of ["http://example.com@evil.example/", "ws://example.com/chat", "*", "example.com:80", "chat", "http:///chat"]) {
      refused(request("", { line: `GET ${target} HTTP/1.1` }), 400, MALFORMED);
    }
  });

  it("refuses extra or other whitespace in the request line", () => {
    for (const line of ["GET  /chat HTTP/1.1", "GET /chat  HTTP/1.1", "GET /chat HTTP/1.1 ", " GET /chat HTTP/1.1", "GET\t/chat HTTP/1.1", "GET /chat\tHTTP/1.1", "GET /c hat HTTP/1.1"]) {
      refused(request("", { line }), 400, MALFORMED);
    }
  });

  it("refuses a non-ASCII or control character in the target", () => {
    for (const target of ["/\xe9", "/\x80", "/\xff", "/a\x7f", "/a\0b"]) {
      refused(request("", { line: `GET ${target} HTTP/1.1` }), 400, MALFORMED);
    }
  });

  it("refuses an overlong request line with 431, before its end arrives", () => {
    refused(request("", { line: `GET /${"a".repeat(MAX)} HTTP/1.1` }), 431, TOO_LARGE);
    refused(`GET /${"a".repeat(MAX)}`, 431, TOO_LARGE);
  });
});

describe("smuggling: size limits", () => {
  it("refuses more than 100 header fields with 431", () => {
    // The request has 5 fields of its own.
    const fields = (n: number) => Array.from({ length: n - 5 }, (_, i) => `X-${i}: ${i}\r\n`).join("");
    upgraded(request(fields(100)));
    refused(request(fields(101)), 431, TOO_LARGE);
  });

  it("refuses a header block over maxHeaderBytes with 431", () => {
    const pad = (n: number) => request(`X-Pad: ${"p".repeat(n - request("X-Pad: \r\n").length)}\r\n`);
    assert.equal(pad(MAX).length, MAX);
    upgraded(pad(MAX));
    refused(pad(MAX + 1), 431, TOO_LARGE);
  });
});

describe("smuggling: bytes after the head", () => {
  const pipelined = "GET /admin HTTP/1.1\r\nHost: example.com\r\n\r\n";
  const deflate: EngineAcceptOptions = {
    extensions: "permessage-deflate",
    deflate: { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 },
  };

  it("reads a pipelined second request as frames: 1002, never a second HTTP answer", () => {
    const input = latin1(request() + pipelined);
    upgraded(input);
    const { events, output } = acceptAndRun(input);
    assert.deepEqual(events.map((e) => e.type === "error" ? e.error.code : e.type), ["open", "WS_ERR_UNEXPECTED_RSV", "close"]);
    const close = events.at(-1);
    assert.ok(close?.type === "close");
    assert.deepEqual([close.code, close.wasClean], [1002, false]);
    assert.equal(output.split("HTTP/1.1").length, 2, "one HTTP answer: the 101");
    assert.ok(output.endsWith("\x88\x02\x03\xea"), "then a close frame with 1002");
  });

  it("with permessage-deflate too (RSV1 allowed): still 1002", () => {
    for (const method of ["GET", "ACL", "BIND", "@"]) {
      const { events } = acceptAndRun(latin1(request() + `${method} /admin HTTP/1.1\r\n\r\n`), deflate);
      assert.deepEqual(events.map((e) => e.type), ["open", "error", "close"], method);
      assert.equal((events[2] as { code: number }).code, 1002, method);
    }
  });

  it("fails any two ASCII bytes with 1002: no HTTP request line is ever a frame", () => {
    // An HTTP request line is ASCII: as a frame header, FIN is clear and
    // either an RSV bit is set, the opcode is reserved or a control frame
    // is fragmented, or the second byte lacks the MASK bit.
    for (const accept of [{}, deflate]) {
      for (let b0 = 0; b0 < 0x80; b0++) {
        for (const b1 of [0x00, 0x20, 0x7e, 0x7f]) {
          const { events } = acceptAndRun(cat(latin1(request()), Uint8Array.of(b0, b1)), accept);
          assert.equal(events[1]?.type, "error", `bytes ${b0} ${b1}`);
          assert.equal((events[2] as { code: number }).code, 1002, `bytes ${b0} ${b1}`);
        }
      }
    }
  });

  it("reads nothing after the head when the application rejects", () => {
    const engine = new Engine();
    engine.receive(latin1(request() + pipelined));
    assert.equal(engine.nextEvent()?.type, "upgrade");
    engine.reject(403, "no");
    assert.equal(engine.nextEvent(), undefined);
    engine.receive(latin1(pipelined));
    assert.equal(engine.nextEvent(), undefined);
    const output = new TextDecoder().decode(cat(...engine.takeOutput()));
    assert.match(output, /^HTTP\/1\.1 403 Forbidden\r\nConnection: close\r\n/);
    assert.equal(output.split("HTTP/1.1").length, 2);
  });
});

describe("smuggling: list-valued fields", () => {
  it("accepts Upgrade: websocket, h2c and answers with websocket only", () => {
    for (const value of ["websocket, h2c", "h2c, websocket", "WebSocket"]) {
      const input = latin1(request().replace("Upgrade: websocket", `Upgrade: ${value}`));
      upgraded(input);
      const { output } = acceptAndRun(input);
      assert.match(output, /^HTTP\/1\.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n/);
      assert.doesNotMatch(output, /h2c/i);
    }
  });

  it("accepts Connection: keep-alive, Upgrade", () => {
    upgraded(request().replace("Connection: Upgrade", "Connection: keep-alive, Upgrade"));
  });

  it("refuses an Upgrade that does not list websocket", () => {
    refused(request().replace("Upgrade: websocket", "Upgrade: h2c"), 400, "WS_ERR_INVALID_UPGRADE");
  });
});

describe("smuggling: the same answers for a head parsed elsewhere (node:http record, Headers)", () => {
  const base = {
    host: "example.com",
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    "sec-websocket-version": "13",
  };
  const cases: [string, Record<string, string | string[]>, string, number, string][] = [
    ["Transfer-Encoding", { "transfer-encoding": "chunked" }, "/chat", 400, MALFORMED],
    ["Content-Length: 5", { "content-length": "5" }, "/chat", 400, MALFORMED],
    ["repeated Host", { host: ["example.com", "evil.example"] }, "/chat", 400, INVALID_HOST],
    ["absolute-form for another host", {}, "http://evil.example/chat", 400, INVALID_HOST],
    ["asterisk-form", {}, "*", 400, MALFORMED],
  ];
  for (const [name, changes, url, status, code] of cases) {
    it(`${name}: ${status} ${code}`, () => {
      const record = { ...base, ...changes };
      const headers = new Headers();
      for (const [n, v] of Object.entries(record)) for (const one of [v].flat()) headers.append(n, one);
      for (const fields of [record, headers]) {
        const engine = new Engine();
        engine.receiveHead({ method: "GET", url, httpVersion: "1.1", headers: fields });
        const event = engine.nextEvent();
        assert.ok(event?.type === "rejected");
        assert.deepEqual([event.error.status, event.error.code], [status, code]);
        assert.equal(engine.nextEvent(), undefined);
      }
    });
  }
});

/**
 * `template(value)` with `value` made of `prefix`, `unit` repeated as often
 * as the limit allows, and `tail`: a request of `MAX` bytes, or less by
 * under one `unit`.
 */
function fillTo(template: (value: string) => string, unit: string, tail = "", prefix = ""): string {
  const room = MAX - template(prefix + tail).length;
  const text = template(prefix + unit.repeat(Math.floor(room / unit.length)) + tail);
  assert.ok(text.length <= MAX && text.length > MAX - unit.length, "fills the limit");
  return text;
}

/** A request whose field `name` fills the limit with `unit`, then `tail`. */
function atLimit(name: string, unit: string, tail = "", prefix = ""): string {
  return fillTo((value) => request(`${name}: ${value}\r\n`), unit, tail, prefix);
}

describe("ReDoS: worst-case handshake inputs at the size limit", () => {
  // Each input is a long run that a nested or overlapping quantifier would
  // try to split in exponentially (or quadratically) many ways, ending in a
  // character that makes the match fail. They must finish and answer right.

  it("Sec-WebSocket-Key: /^[A-Za-z0-9+/]{22}==$/ on a 16 KiB value", () => {
    for (const unit of ["A", "=", "A=", "+/"]) {
      refused(atLimit("Sec-WebSocket-Key", unit, "!").replace(KEY, ""), 400, "WS_ERR_INVALID_KEY");
    }
  });

  it("Sec-WebSocket-Protocol: a 16 KiB list of commas, spaces or tokens", () => {
    upgraded(atLimit("Sec-WebSocket-Protocol", ","));
    upgraded(atLimit("Sec-WebSocket-Protocol", " ,\t"));
    refused(atLimit("Sec-WebSocket-Protocol", "a, ", "!"), 400, "WS_ERR_INVALID_PROTOCOLS");
    refused(atLimit("Sec-WebSocket-Protocol", ",", "a b"), 400, "WS_ERR_INVALID_PROTOCOLS");
    const many = Array.from({ length: 2000 }, (_, i) => `p${i}`).join(",");
    assert.equal(parseProtocols(many).length, 2000);
  });

  it("Sec-WebSocket-Extensions: 16 KiB of separators, parameters and quoted strings", () => {
    const invalid = "WS_ERR_INVALID_EXTENSIONS";
    refused(atLimit("Sec-WebSocket-Extensions", ";"), 400, invalid);
    refused(atLimit("Sec-WebSocket-Extensions", ","), 400, invalid);
    refused(atLimit("Sec-WebSocket-Extensions", "="), 400, invalid);
    refused(atLimit("Sec-WebSocket-Extensions", "x;", "/"), 400, invalid);
    upgraded(atLimit("Sec-WebSocket-Extensions", "x;", "!"));
    refused(atLimit("Sec-WebSocket-Extensions", "x; a=b ", "!"), 400, invalid);
    refused(atLimit("Sec-WebSocket-Extensions", "x; a = \"b\"", "="), 400, invalid);
    upgraded(atLimit("Sec-WebSocket-Extensions", " ", "x"));
    upgraded(atLimit("Sec-WebSocket-Extensions", "x; a, ", "x"));
    // A quoted value of 16 KiB of escapes, never closed.
    refused(atLimit("Sec-WebSocket-Extensions", "\\a", "", 'x; a="'), 400, invalid);
    const repeated = parseExtensions("x" + "; a".repeat(4000));
    assert.equal(repeated[0]?.repeated?.length, 3999);
    // permessage-deflate's /^(?:8|9|1[0-5])$/ on a long window value.
    const offers = parseExtensions(`permessage-deflate; server_max_window_bits=${"1".repeat(MAX)}`);
    assert.equal(negotiateDeflate(offers), undefined);
    const manyOffers = parseExtensions(Array.from({ length: 1000 }, () => "permessage-deflate; x").join(", ") + ", permessage-deflate");
    assert.equal(negotiateDeflate(manyOffers)?.response, "permessage-deflate");
  });

  it("Upgrade and Connection: 16 KiB token lists", () => {
    const upgrade = (value: string) => request().replace("Upgrade: websocket", `Upgrade: ${value}`);
    const connection = (value: string) => request().replace("Connection: Upgrade", `Connection: ${value}`);
    upgraded(fillTo(upgrade, ", ", "websocket"));
    upgraded(fillTo(connection, " ,\t", "upgrade"));
    refused(fillTo(upgrade, " ,", "websocketx"), 400, "WS_ERR_INVALID_UPGRADE");
    refused(fillTo(connection, ",\t", "Upgradex"), 400, "WS_ERR_INVALID_CONNECTION");
  });

  it("Host: 16 KiB names, ports and brackets", () => {
    const host = (value: string) => request("", { host: `Host: ${value}\r\n` });
    upgraded(fillTo(host, "a"));
    upgraded(fillTo(host, "a.", "b"));
    upgraded(fillTo(host, "1", "", "a:"));
    refused(fillTo(host, "a", " b"), 400, INVALID_HOST);
    refused(fillTo(host, "a", ":x"), 400, INVALID_HOST);
    refused(fillTo(host, "["), 400, INVALID_HOST);
    refused(fillTo(host, ":", "]"), 400, INVALID_HOST);
    refused(fillTo(host, "1", "x", "a:"), 400, INVALID_HOST);
  });

  it("Content-Length: 16 KiB of zeros, then something else", () => {
    upgraded(atLimit("Content-Length", "0"));
    refused(atLimit("Content-Length", "0", "1"), 400, MALFORMED);
    refused(atLimit("Content-Length", "0 ", "0"), 400, MALFORMED);
  });

  it("request line: 16 KiB targets and versions", () => {
    const line = (target: string, version = "HTTP/1.1") => request("", { line: `GET ${target} ${version}` });
    const room = MAX - line("").length;
    upgraded(line("/" + "/".repeat(room - 1)));
    refused(line("http://" + "a".repeat(room - 8) + "/"), 400, INVALID_HOST);
    refused(line("http:" + "/".repeat(room - 5)), 400, MALFORMED);
    // /^HTTP\/\d\.\d$/ on a version of 16 KiB.
    refused(request("", { line: `GET / HTTP/${"1".repeat(room - 12)}.1x` }), 400, MALFORMED);
  });

  it("httpVersion of a pre-parsed head: /^(\\d+)\\.(\\d+)$/ on 16 KiB of digits", () => {
    const head = (httpVersion: string): HeadLike => ({
      method: "GET",
      url: "/",
      httpVersion,
      headers: { host: "a", upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" },
    });
    const half = "1".repeat(MAX / 2);
    for (const version of [half + "x", `${half}.${half}x`, `${half}.`, "." + half]) {
      assert.throws(() => validateUpgradeRequest(head(version)), (err: { code?: string }) => err.code === "WS_ERR_INVALID_HTTP_VERSION");
    }
    assert.equal(validateUpgradeRequest(head(`${half}.${half}`)).httpVersion, `${half}.${half}`);
  });

  it("any field: 16 KiB of spaces, tabs and separators around a value", () => {
    upgraded(atLimit("X-Pad", " \t", "v"));
    upgraded(atLimit("X-Pad", ":;,=\"", "v"));
    refused(atLimit("X-Pad", " ", "\x01"), 400, MALFORMED);
  });
});
