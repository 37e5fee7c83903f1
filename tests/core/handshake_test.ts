import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { sha1 } from "../../core/_sha1.ts";
import { HandshakeError, UsageError } from "../../core/errors.ts";
import { Engine } from "../../core/engine.ts";
import { type HeadLike, validateUpgradeRequest } from "../../core/handshake.ts";
import { parseExtensions, parseProtocols, selectSubprotocol } from "../../core/handshake_offers.ts";
import { acceptKey, buildAcceptResponse, buildErrorResponse, WEBSOCKET_GUID } from "../../core/handshake_response.ts";
import { RequestHeadParser } from "../../core/http_parser.ts";

const encoder = new TextEncoder();

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Decodes bytes one character per byte, so latin1 heads compare exactly. */
function latin1(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => String.fromCharCode(b)).join("");
}

function rejects(
  fn: () => unknown,
  status: number,
  code: string,
  headers?: Record<string, string>,
): void {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof HandshakeError, `expected a HandshakeError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    if (headers !== undefined) assert.deepEqual(err.headers, headers);
    assert.match(err.message, /^[A-Z][^\n]*[^.]$/);
    return true;
  });
}

function misuse(fn: () => unknown, code: string): void {
  assert.throws(fn, (err) => err instanceof UsageError && err.code === code);
}

describe("sha1", () => {
  const vectors: [string, string][] = [
    ["", "da39a3ee5e6b4b0d3255bfef95601890afd80709"],
    ["abc", "a9993e364706816aba3e25717850c26c9cd0d89d"],
    [
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
      "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
    ],
    [
      "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
      "a49b2446a02c645bf419f995b67091253a04a259",
    ],
    ["The quick brown fox jumps over the lazy dog", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"],
  ];
  for (const [input, digest] of vectors) {
    it(`hashes ${JSON.stringify(input.slice(0, 20))} (${input.length} bytes)`, () => {
      assert.equal(hex(sha1(encoder.encode(input))), digest);
    });
  }

  it("hashes one million times 'a'", () => {
    assert.equal(
      hex(sha1(new Uint8Array(1_000_000).fill(0x61))),
      "34aa973cd4c4daa4f61eeb2bdbad27316534016f",
    );
  });

  it("pads correctly around the block boundary", () => {
    // 55, 56 and 64 bytes change the number of padding blocks.
    const expected: Record<number, string> = {
      55: "c1c8bbdc22796e28c0e15163d20899b65621d65a",
      56: "c2db330f6083854c99d4b5bfb6e8f29f201be699",
      64: "0098ba824b5c16427bd7a1122a5a442a25ec644d",
    };
    for (const [length, digest] of Object.entries(expected)) {
      assert.equal(hex(sha1(new Uint8Array(Number(length)).fill(0x61))), digest, `${length} bytes`);
    }
  });

  it("hashes a view at an offset into a larger buffer", () => {
    const buffer = encoder.encode("xxabcxx");
    assert.equal(hex(sha1(buffer.subarray(2, 5))), "a9993e364706816aba3e25717850c26c9cd0d89d");
  });
});

describe("acceptKey", () => {
  it("answers the sample key of RFC 6455 §1.3", () => {
    assert.equal(WEBSOCKET_GUID, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    assert.equal(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  });

  it("answers the sample key of RFC 6455 §4.2.2", () => {
    assert.equal(acceptKey("x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  });
});

describe("parseProtocols", () => {
  it("splits on commas and trims whitespace", () => {
    assert.deepEqual(parseProtocols("chat, superchat,\tv2.json"), ["chat", "superchat", "v2.json"]);
  });

  it("tolerates empty elements", () => {
    assert.deepEqual(parseProtocols(" , a,, b ,"), ["a", "b"]);
    assert.deepEqual(parseProtocols(""), []);
  });

  it("is case-sensitive", () => {
    assert.deepEqual(parseProtocols("Chat, chat"), ["Chat", "chat"]);
  });

  it("refuses non-tokens and duplicates", () => {
    for (const header of ["a b", "a;b", '"a"', "a, b/c", "a, a", "é"]) {
      rejects(() => parseProtocols(header), 400, "WS_ERR_INVALID_PROTOCOLS");
    }
  });
});

describe("selectSubprotocol", () => {
  it("chooses by the server's preference, not the client's", () => {
    assert.equal(selectSubprotocol(parseProtocols("a, b"), ["b", "a"]), "b");
    assert.equal(selectSubprotocol(["a", "b"], ["a", "b"]), "a");
    assert.equal(selectSubprotocol(["a", "b", "c"], ["x", "c", "b"]), "c");
  });

  it("returns undefined when nothing is in common", () => {
    assert.equal(selectSubprotocol(["a", "b"], ["c"]), undefined);
    assert.equal(selectSubprotocol(["a"], []), undefined);
    assert.equal(selectSubprotocol([], ["a"]), undefined);
  });

  it("is case-sensitive", () => {
    assert.equal(selectSubprotocol(["Chat"], ["chat"]), undefined);
  });
});

describe("parseExtensions", () => {
  it("parses offers with and without parameter values", () => {
    assert.deepEqual(
      parseExtensions(
        "permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=10",
      ),
      [
        { name: "permessage-deflate", params: { client_max_window_bits: true } },
        { name: "permessage-deflate", params: { server_max_window_bits: "10" } },
      ],
    );
  });

  it("tolerates whitespace around separators", () => {
    assert.deepEqual(
      parseExtensions(' foo ;\ta = 1 ; b\t,bar;c="x" ,  baz '),
      [
        { name: "foo", params: { a: "1", b: true } },
        { name: "bar", params: { c: "x" } },
        { name: "baz", params: {} },
      ],
    );
  });

  it("unquotes quoted values, escapes included", () => {
    assert.deepEqual(
      parseExtensions('permessage-deflate; client_max_window_bits="10"; x="a\\-b"'),
      [{ name: "permessage-deflate", params: { client_max_window_bits: "10", x: "a-b" } }],
    );
  });

  it("returns no offers for an empty value", () => {
    assert.deepEqual(parseExtensions(""), []);
    assert.deepEqual(parseExtensions("  "), []);
  });

  it("keeps a parameter named __proto__ as an own property", () => {
    const [offer] = parseExtensions("x; __proto__=1");
    assert.ok(offer !== undefined && Object.hasOwn(offer.params, "__proto__"));
    assert.equal(Object.getPrototypeOf(offer.params), Object.prototype);
  });

  it("refuses malformed values", () => {
    const malformed = [
      ",",
      "foo,",
      ",foo",
      "foo,,bar",
      "foo;",
      "foo;;a",
      "foo; =1",
      "foo; a=",
      "foo; a==1",
      "foo; a=1 2",
      "foo bar",
      "foo; a b",
      'foo; a="1',
      'foo; a=""',
      'foo; a="1 2"',
      'foo; a="1"x',
      'foo; a="x\\',
      'fo"o',
      "foo; a=@",
      "é",
    ];
    for (const header of malformed) {
      rejects(() => parseExtensions(header), 400, "WS_ERR_INVALID_EXTENSIONS");
    }
  });

  it("allows the same parameter in different offers", () => {
    assert.equal(parseExtensions("a; x=1, a; x=2").length, 2);
  });

  it("lists a parameter repeated within an offer, keeping the first value (each extension decides)", () => {
    assert.deepEqual(parseExtensions("foo; a=1; a=2, bar"), [
      { name: "foo", params: { a: "1" }, repeated: ["a"] },
      { name: "bar", params: {} },
    ]);
    assert.deepEqual(parseExtensions('foo; a; b; a="1"; a')[0], { name: "foo", params: { a: true, b: true }, repeated: ["a", "a"] });
  });
});

describe("validateUpgradeRequest", () => {
  const valid = (): Record<string, string> => ({
    Host: "server.example.com",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
  });
  const request = (
    changes: Record<string, string | null> = {},
    head: Partial<HeadLike> = {},
  ): HeadLike => {
    const headers = new Headers(valid());
    for (const [name, value] of Object.entries(changes)) {
      if (value === null) headers.delete(name);
      else headers.set(name, value);
    }
    return { method: "GET", url: "/chat", httpVersion: "1.1", headers, ...head };
  };

  it("accepts a valid request", () => {
    const result = validateUpgradeRequest(request({
      "Sec-WebSocket-Protocol": "chat, superchat",
      "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
    }));
    assert.equal(result.method, "GET");
    assert.equal(result.url, "/chat");
    assert.equal(result.httpVersion, "1.1");
    assert.equal(result.key, "dGhlIHNhbXBsZSBub25jZQ==");
    assert.equal(result.version, 13);
    assert.deepEqual(result.protocols, ["chat", "superchat"]);
    assert.deepEqual(result.extensions, [{
      name: "permessage-deflate",
      params: { client_max_window_bits: true },
    }]);
    assert.equal(result.headers.get("host"), "server.example.com");
  });

  it("returns no protocols or extensions when they are absent", () => {
    const result = validateUpgradeRequest(request());
    assert.deepEqual(result.protocols, []);
    assert.deepEqual(result.extensions, []);
  });

  it("accepts token lists, any case and later HTTP versions", () => {
    for (const httpVersion of ["1.1", "1.2", "2.0", "10.0"]) {
      validateUpgradeRequest(request({
        Upgrade: "h2c, WebSocket",
        Connection: "keep-alive, UPGRADE",
        "Sec-WebSocket-Version": " 13 ",
        "Sec-WebSocket-Key": "  dGhlIHNhbXBsZSBub25jZQ==  ",
      }, { httpVersion }));
    }
  });

  it("accepts the record of node:http headers, with arrays joined", () => {
    const result = validateUpgradeRequest({
      method: "GET",
      url: "/",
      httpVersion: "1.1",
      headers: {
        host: "h",
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
        "sec-websocket-protocol": "a, b",
        "set-cookie": ["x=1", "y=2"],
        "x-absent": undefined,
      },
    });
    assert.ok(result.headers instanceof Headers);
    assert.deepEqual(result.protocols, ["a", "b"]);
    assert.equal(result.headers.get("x-absent"), null);
    assert.deepEqual(result.headers.getSetCookie(), ["x=1, y=2"]);
  });

  it('joins an array value of a node:http record with ", "', () => {
    const headers: Record<string, string | string[]> = {
      host: "h",
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
      "sec-websocket-extensions": ["a; x=1", "b"],
    };
    const result = validateUpgradeRequest({ method: "GET", url: "/", httpVersion: "1.1", headers });
    assert.deepEqual(result.extensions, [{ name: "a", params: { x: "1" } }, {
      name: "b",
      params: {},
    }]);
    // Two keys joined fail the key check.
    headers["sec-websocket-key"] = ["dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ=="];
    rejects(
      () => validateUpgradeRequest({ method: "GET", url: "/", httpVersion: "1.1", headers }),
      400,
      "WS_ERR_INVALID_KEY",
    );
  });

  it("answers a plain HTTP request with 426 Upgrade Required", () => {
    rejects(
      () => validateUpgradeRequest(request({ Upgrade: null })),
      426,
      "WS_ERR_UPGRADE_REQUIRED",
      {
        Upgrade: "websocket",
        Connection: "Upgrade",
        "Sec-WebSocket-Version": "13",
      },
    );
    // Before anything else, even a bad method.
    rejects(
      () =>
        validateUpgradeRequest(
          request({ Upgrade: null, Host: null }, { method: "POST", httpVersion: "1.0" }),
        ),
      426,
      "WS_ERR_UPGRADE_REQUIRED",
    );
  });

  it("refuses a method other than GET", () => {
    for (const method of ["POST", "get", "HEAD", "CONNECT"]) {
      rejects(() => validateUpgradeRequest(request({}, { method })), 400, "WS_ERR_INVALID_METHOD");
    }
  });

  it("refuses HTTP versions below 1.1 and garbage", () => {
    for (const httpVersion of ["1.0", "0.9", "", "1", "1.x", "HTTP/1.1", "a.b", "1.1.1", " 1.1"]) {
      rejects(
        () => validateUpgradeRequest(request({}, { httpVersion })),
        400,
        "WS_ERR_INVALID_HTTP_VERSION",
      );
    }
  });

  it("refuses a missing or empty Host", () => {
    rejects(() => validateUpgradeRequest(request({ Host: null })), 400, "WS_ERR_MISSING_HOST");
    rejects(() => validateUpgradeRequest(request({ Host: "" })), 400, "WS_ERR_MISSING_HOST");
  });

  it("refuses a body, a repeated or invalid Content-Length, and Transfer-Encoding", () => {
    for (const length of ["1", "00 1", "-0", "+0", "0x0", "", "0, 0", "0,0", "1e3"]) {
      rejects(
        () => validateUpgradeRequest(request({ "Content-Length": length })),
        400,
        "WS_ERR_MALFORMED_REQUEST",
      );
    }
    for (const coding of ["chunked", "identity", "", "gzip, chunked"]) {
      rejects(
        () => validateUpgradeRequest(request({ "Transfer-Encoding": coding })),
        400,
        "WS_ERR_MALFORMED_REQUEST",
      );
    }
    for (const length of ["0", "000", " 0 "]) {
      validateUpgradeRequest(request({ "Content-Length": length }));
    }
  });

  it("refuses a request target that is neither a path nor an http(s) URL", () => {
    const bad = ["", "*", "chat", "example.com:80", "ws://server.example.com/", "http://", "http:///chat",
      "http://user@server.example.com/", "ftp://server.example.com/"];
    for (const url of bad) {
      rejects(() => validateUpgradeRequest(request({}, { url })), 400, "WS_ERR_MALFORMED_REQUEST");
    }
  });

  it("accepts a URL target for the Host, in any case, and refuses one for another host", () => {
    for (const url of ["http://server.example.com/chat", "HTTPS://Server.Example.COM", "http://server.example.com?x=1"]) {
      assert.equal(validateUpgradeRequest(request({}, { url })).url, url);
    }
    for (const url of ["http://evil.example/chat", "http://server.example.com:80/chat", "https://server.example.com.evil/"]) {
      rejects(() => validateUpgradeRequest(request({}, { url })), 400, "WS_ERR_INVALID_HOST");
    }
  });

  it("refuses a Host that is not one host[:port]", () => {
    const bad = ["a b", "a, b", "a,b c", "a/b", "a@b", "a?b", "a#b", "a\\b", ":80", "a:80x", "a:b", "[::1", "[]",
      "[::1]x", "a\u00e9", "<a>"];
    for (const host of bad) {
      rejects(() => validateUpgradeRequest(request({ Host: host })), 400, "WS_ERR_INVALID_HOST");
    }
    const good = ["localhost", "localhost:", "127.0.0.1:8080", "[::1]:8080", "[fe80::1%25eth0]", "xn--mller-kva.de",
      "example.com.", "my_host-1.example:443", "a,b"];
    for (const host of good) validateUpgradeRequest(request({ Host: host }));
  });

  it("refuses a Host repeated in a node:http record or in raw bytes", () => {
    const parsed = new RequestHeadParser().push(encoder.encode(
      "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ));
    rejects(() => validateUpgradeRequest(parsed!.head), 400, "WS_ERR_INVALID_HOST");
    const record = { ...valid(), Host: undefined, host: ["a", "a"] };
    rejects(
      () => validateUpgradeRequest({ method: "GET", url: "/", httpVersion: "1.1", headers: record }),
      400,
      "WS_ERR_INVALID_HOST",
    );
  });

  it("refuses an Upgrade without websocket", () => {
    for (const upgrade of ["", "h2c", "websockets", "web socket", "websocket/13x, h2c"]) {
      rejects(
        () => validateUpgradeRequest(request({ Upgrade: upgrade })),
        400,
        "WS_ERR_INVALID_UPGRADE",
      );
    }
  });

  it("refuses a Connection without upgrade", () => {
    rejects(
      () => validateUpgradeRequest(request({ Connection: null })),
      400,
      "WS_ERR_INVALID_CONNECTION",
    );
    for (const connection of ["", "keep-alive", "upgraded", "close"]) {
      rejects(
        () => validateUpgradeRequest(request({ Connection: connection })),
        400,
        "WS_ERR_INVALID_CONNECTION",
      );
    }
  });

  it("answers a missing or unsupported version with 426 and Sec-WebSocket-Version: 13", () => {
    rejects(
      () => validateUpgradeRequest(request({ "Sec-WebSocket-Version": null })),
      426,
      "WS_ERR_INVALID_VERSION",
      { "Sec-WebSocket-Version": "13" },
    );
    for (const version of ["", "8", "12", "14", "013", "13, 8", "13.0"]) {
      rejects(
        () => validateUpgradeRequest(request({ "Sec-WebSocket-Version": version })),
        426,
        "WS_ERR_INVALID_VERSION",
        { "Sec-WebSocket-Version": "13" },
      );
    }
  });

  it("refuses a missing or invalid key", () => {
    rejects(
      () => validateUpgradeRequest(request({ "Sec-WebSocket-Key": null })),
      400,
      "WS_ERR_INVALID_KEY",
    );
    const bad = [
      "",
      "dGhlIHNhbXBsZSBub25jZQ=",
      "dGhlIHNhbXBsZSBub25jZQ",
      "dGhlIHNhbXBsZSBub25jZQ===",
      "dGhlIHNhbXBsZSBub25jZ-==",
      "dGhlIHNhbXBsZSBub25jZQ==, dGhlIHNhbXBsZSBub25jZQ==",
      "ZGhlIHNhbXBsZSBub25jZQ",
      "aGVsbG8=",
    ];
    for (const key of bad) {
      rejects(
        () => validateUpgradeRequest(request({ "Sec-WebSocket-Key": key })),
        400,
        "WS_ERR_INVALID_KEY",
      );
    }
  });

  it("refuses malformed subprotocol and extension offers", () => {
    rejects(
      () => validateUpgradeRequest(request({ "Sec-WebSocket-Protocol": "a, a" })),
      400,
      "WS_ERR_INVALID_PROTOCOLS",
    );
    rejects(
      () => validateUpgradeRequest(request({ "Sec-WebSocket-Extensions": "foo;" })),
      400,
      "WS_ERR_INVALID_EXTENSIONS",
    );
  });

  it("checks in the documented order", () => {
    // Each step fails along with every later one; the earliest must answer.
    const all = {
      "Transfer-Encoding": "chunked",
      Host: null,
      Upgrade: "h2c",
      Connection: "close",
      "Sec-WebSocket-Version": "8",
      "Sec-WebSocket-Key": "x",
      "Sec-WebSocket-Protocol": "a a",
    };
    rejects(
      () => validateUpgradeRequest(request(all, { method: "POST", httpVersion: "1.0" })),
      400,
      "WS_ERR_INVALID_METHOD",
    );
    rejects(
      () => validateUpgradeRequest(request(all, { httpVersion: "1.0" })),
      400,
      "WS_ERR_INVALID_HTTP_VERSION",
    );
    rejects(
      () => validateUpgradeRequest(request(all, { url: "*" })),
      400,
      "WS_ERR_MALFORMED_REQUEST",
    );
    const noBody = { ...all, "Transfer-Encoding": null };
    rejects(
      () => validateUpgradeRequest(request(noBody, { url: "*" })),
      400,
      "WS_ERR_MALFORMED_REQUEST",
    );
    rejects(() => validateUpgradeRequest(request(noBody)), 400, "WS_ERR_MISSING_HOST");
    rejects(
      () => validateUpgradeRequest(request({ ...noBody, Host: "a b" })),
      400,
      "WS_ERR_INVALID_HOST",
    );
    rejects(
      () => validateUpgradeRequest(request({ ...noBody, Host: "h" })),
      400,
      "WS_ERR_INVALID_UPGRADE",
    );
    rejects(
      () => validateUpgradeRequest(request({ ...noBody, Host: "h", Upgrade: "websocket" })),
      400,
      "WS_ERR_INVALID_CONNECTION",
    );
    const upToVersion = { ...noBody, Host: "h", Upgrade: "websocket", Connection: "upgrade" };
    rejects(() => validateUpgradeRequest(request(upToVersion)), 426, "WS_ERR_INVALID_VERSION");
    rejects(
      () => validateUpgradeRequest(request({ ...upToVersion, "Sec-WebSocket-Version": "13" })),
      400,
      "WS_ERR_INVALID_KEY",
    );
  });

  it("validates a head from RequestHeadParser", () => {
    const parsed = new RequestHeadParser().push(encoder.encode(
      "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
        "Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: b\r\n\r\n",
    ));
    assert.ok(parsed !== undefined);
    const result = validateUpgradeRequest(parsed.head);
    assert.deepEqual(result.protocols, ["a", "b"]);
    assert.equal(selectSubprotocol(result.protocols, ["b", "a"]), "b");
  });
});

describe("buildAcceptResponse", () => {
  const key = "dGhlIHNhbXBsZSBub25jZQ==";

  it("writes the minimal 101 answer", () => {
    assert.equal(
      latin1(buildAcceptResponse({ key })),
      "HTTP/1.1 101 Switching Protocols\r\n" +
        "Upgrade: websocket\r\n" +
        "Connection: Upgrade\r\n" +
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
        "\r\n",
    );
  });

  it("adds the protocol, the extensions and extra headers, in that order", () => {
    assert.equal(
      latin1(buildAcceptResponse({
        key,
        protocol: "chat",
        extensions: "permessage-deflate; server_no_context_takeover",
        headers: { "Set-Cookie": "id=1", "X-Latin": "caf\u00e9" },
      })),
      "HTTP/1.1 101 Switching Protocols\r\n" +
        "Upgrade: websocket\r\n" +
        "Connection: Upgrade\r\n" +
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
        "Sec-WebSocket-Protocol: chat\r\n" +
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n" +
        "Set-Cookie: id=1\r\n" +
        "X-Latin: caf\u00e9\r\n" +
        "\r\n",
    );
  });

  it("writes latin1 bytes, one per character", () => {
    const bytes = buildAcceptResponse({ key, headers: [["X-A", "\u00e9"], ["X-A", "\u00ff"]] });
    const text = "X-A: \u00e9\r\nX-A: \u00ff\r\n\r\n";
    assert.deepEqual(
      [...bytes.subarray(bytes.length - text.length)],
      Array.from(text, (c) => c.charCodeAt(0)),
    );
  });

  it("sends no extensions header for an empty string", () => {
    assert.ok(!latin1(buildAcceptResponse({ key, extensions: "" })).includes("Extensions"));
  });

  it("refuses header injection and invalid names", () => {
    const bad: [string, string][] = [
      ["X-A", "a\r\nX-Evil: 1"],
      ["X-A", "a\nb"],
      ["X-A", "a\rb"],
      ["X-A", "a\0b"],
      ["X-A", "\u0100"],
      ["X-A", "\u{1f600}"],
      ["X A", "a"],
      ["X-A:", "a"],
      ["", "a"],
      ["X-A\r\nX-Evil", "a"],
    ];
    for (const header of bad) {
      misuse(() => buildAcceptResponse({ key, headers: [header] }), "ERR_INVALID_HEADER");
      misuse(
        () => buildAcceptResponse({ key, headers: Object.fromEntries([header]) }),
        "ERR_INVALID_HEADER",
      );
    }
    misuse(() => buildAcceptResponse({ key, extensions: "a\r\nX-Evil: 1" }), "ERR_INVALID_HEADER");
    for (const protocol of ["", "a b", "a\r\nX-Evil: 1", "a,b", "\u00e9"]) {
      misuse(() => buildAcceptResponse({ key, protocol }), "ERR_INVALID_HEADER");
    }
  });

  it("refuses extra headers that would override the handshake's own", () => {
    for (
      const name of [
        "Upgrade",
        "connection",
        "SEC-WEBSOCKET-ACCEPT",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions",
      ]
    ) {
      misuse(() => buildAcceptResponse({ key, headers: { [name]: "x" } }), "ERR_INVALID_HEADER");
    }
  });
});

describe("buildErrorResponse", () => {
  it("writes the exact bytes of an error answer", () => {
    assert.equal(
      latin1(buildErrorResponse(403, "Forbidden origin")),
      "HTTP/1.1 403 Forbidden\r\n" +
        "Connection: close\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Length: 16\r\n" +
        "\r\n" +
        "Forbidden origin",
    );
  });

  it("counts Content-Length in UTF-8 bytes and encodes the body in UTF-8", () => {
    const bytes = buildErrorResponse(400, "caf\u00e9 \u{1f600}");
    const body = encoder.encode("caf\u00e9 \u{1f600}");
    assert.ok(latin1(bytes).includes(`Content-Length: ${body.length}\r\n`));
    assert.equal(body.length, 10);
    assert.deepEqual([...bytes.subarray(bytes.length - body.length)], [...body]);
  });

  it("writes an empty body", () => {
    assert.ok(latin1(buildErrorResponse(500, "")).endsWith("Content-Length: 0\r\n\r\n"));
  });

  it("uses standard reason phrases and Error otherwise", () => {
    const reasons: Record<number, string> = {
      400: "Bad Request",
      401: "Unauthorized",
      403: "Forbidden",
      404: "Not Found",
      405: "Method Not Allowed",
      408: "Request Timeout",
      409: "Conflict",
      410: "Gone",
      413: "Content Too Large",
      414: "URI Too Long",
      426: "Upgrade Required",
      429: "Too Many Requests",
      431: "Request Header Fields Too Large",
      500: "Internal Server Error",
      501: "Not Implemented",
      503: "Service Unavailable",
      499: "Error",
      599: "Error",
    };
    for (const [status, reason] of Object.entries(reasons)) {
      assert.ok(
        latin1(buildErrorResponse(Number(status), "")).startsWith(
          `HTTP/1.1 ${status} ${reason}\r\n`,
        ),
      );
    }
  });

  it("refuses a status that is not an integer from 400 to 599", () => {
    for (const status of [101, 200, 399, 600, 400.5, NaN, Infinity]) {
      misuse(() => buildErrorResponse(status, ""), "ERR_INVALID_STATUS");
    }
  });

  it("adds extra headers, merging Connection and replacing Content-Type", () => {
    assert.equal(
      latin1(buildErrorResponse(401, "{}", [
        ["WWW-Authenticate", "Bearer"],
        ["Content-Type", "application/json"],
        ["Connection", "close, Upgrade"],
      ])),
      "HTTP/1.1 401 Unauthorized\r\n" +
        "Connection: close, Upgrade\r\n" +
        "Content-Type: application/json\r\n" +
        "Content-Length: 2\r\n" +
        "WWW-Authenticate: Bearer\r\n" +
        "\r\n" +
        "{}",
    );
  });

  it("refuses header injection and framing headers", () => {
    misuse(() => buildErrorResponse(400, "", { "X-A": "a\r\nX-Evil: 1" }), "ERR_INVALID_HEADER");
    misuse(() => buildErrorResponse(400, "", { "X A": "a" }), "ERR_INVALID_HEADER");
    misuse(() => buildErrorResponse(400, "", [["X-A", "\u0100"]]), "ERR_INVALID_HEADER");
    misuse(() => buildErrorResponse(400, "", { "Content-Length": "0" }), "ERR_INVALID_HEADER");
    misuse(
      () => buildErrorResponse(400, "", { "transfer-encoding": "chunked" }),
      "ERR_INVALID_HEADER",
    );
  });
});

describe("the engine's answer to a refused handshake", () => {
  /** Everything the engine writes for a request it refuses, and the error it reports. */
  function refuse(request: string, options = {}): { answer: string; error: unknown } {
    const engine = new Engine(options);
    engine.receive(encoder.encode(request));
    const event = engine.nextEvent();
    return {
      answer: engine.takeOutput().map(latin1).join(""),
      error: event?.type === "rejected" ? event.error : event,
    };
  }

  it("answers a plain HTTP request with 426 and the upgrade headers", () => {
    const { answer, error } = refuse("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert.ok(error instanceof HandshakeError);
    const body = "Upgrade required: this endpoint only accepts WebSocket connections";
    assert.equal(
      answer,
      "HTTP/1.1 426 Upgrade Required\r\n" +
        "Connection: close, Upgrade\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        `Content-Length: ${body.length}\r\n` +
        "Upgrade: websocket\r\n" +
        "Sec-WebSocket-Version: 13\r\n" +
        "\r\n" +
        body,
    );
  });

  it("answers a 431 from the parser", () => {
    const { answer, error } = refuse("GET / HTTP/1.1\r\n\r\n", { maxHeaderBytes: 10 });
    assert.ok(error instanceof HandshakeError);
    assert.ok(answer.startsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer);
  });

  it("answers with the error's message as the body", () => {
    const { answer, error } = refuse(
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: nope\r\n\r\n",
    );
    assert.ok(error instanceof HandshakeError && error.code === "WS_ERR_INVALID_KEY");
    assert.equal(
      answer,
      "HTTP/1.1 400 Bad Request\r\n" +
        "Connection: close\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Length: 43\r\n" +
        "\r\n" +
        "Missing or invalid Sec-WebSocket-Key header",
    );
  });
});
