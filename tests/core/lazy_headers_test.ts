import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { blockHeaders, fieldValue } from "../../core/_fields.ts";
import { Engine } from "../../core/engine.ts";
import { HandshakeError } from "../../core/errors.ts";
import { type UpgradeRequest, validateUpgradeRequest } from "../../core/handshake.ts";
import { RequestHeadParser } from "../../core/http_parser.ts";

/** Bytes of a string of characters up to U+00FF, one byte each. */
function latin1(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

const HEAD = "GET /chat?room=1 HTTP/1.1\r\n" +
  "Host: server.example.com\r\n" +
  "Upgrade: websocket\r\n" +
  "X-Tag: one\r\n" +
  "Connection: keep-alive\r\n" +
  "x-tag:two  \r\n" +
  "connection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
  "Sec-WebSocket-Version: 13\r\n" +
  "Sec-WebSocket-Protocol: chat\r\n" +
  "X-Empty:\r\n" +
  "X-Latin1: caf\u00e9\r\n" +
  "Sec-WebSocket-Protocol: superchat\r\n" +
  "\r\n";

/** What `Headers` holds when every field of HEAD is appended in order. */
function eager(): Headers {
  const headers = new Headers();
  for (const line of HEAD.split("\r\n").slice(1, -2)) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return headers;
}

function entries(headers: Headers): [string, string][] {
  const out: [string, string][] = [];
  headers.forEach((value, name) => out.push([name, value]));
  return out;
}

function fromRawBytes(): UpgradeRequest {
  const engine = new Engine();
  engine.receive(latin1(HEAD));
  const event = engine.nextEvent();
  assert.ok(event?.type === "upgrade");
  return event.request;
}

const RECORD_HEAD = {
  method: "GET",
  url: "/chat",
  httpVersion: "1.1",
  headers: {
    host: "server.example.com",
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    "sec-websocket-version": "13",
    "x-tag": ["one", "two"],
    "x-none": undefined,
  },
};

describe("lazy request headers", () => {
  it("parsed from raw bytes, answer as the eagerly built Headers did", () => {
    const request = fromRawBytes();
    assert.deepEqual(entries(request.headers), entries(eager()));
    assert.equal(request.headers.get("x-tag"), "one, two");
    assert.equal(request.headers.get("X-TAG"), "one, two");
    assert.equal(request.headers.get("connection"), "keep-alive, Upgrade");
    assert.equal(request.headers.get("x-empty"), "");
    assert.equal(request.headers.get("x-latin1"), "caf\u00e9");
    assert.equal(request.headers.get("x-missing"), null);
    assert.deepEqual(request.protocols, ["chat", "superchat"]);
    assert.equal(request.key, "dGhlIHNhbXBsZSBub25jZQ==");
    assert.equal(request.url, "/chat?room=1");
  });

  it("are built once, and behave as a plain property", () => {
    const request = fromRawBytes();
    assert.equal(request.headers, request.headers);
    assert.deepEqual(Object.keys(request), [
      "method",
      "url",
      "httpVersion",
      "headers",
      "key",
      "version",
      "protocols",
      "extensions",
    ]);
    const copy = { ...request };
    assert.ok(copy.headers instanceof Headers);
    assert.equal(copy.headers, request.headers);
    const replaced = new Headers({ "x-other": "1" });
    request.headers = replaced;
    assert.equal(request.headers, replaced);
  });

  it("of a head from RequestHeadParser are built on access, and may be replaced before validation", () => {
    const parsed = new RequestHeadParser().push(latin1(HEAD));
    assert.ok(parsed !== undefined);
    assert.deepEqual(entries(parsed.head.headers), entries(eager()));
    assert.equal(parsed.head.headers, parsed.head.headers);
    assert.equal(parsed.head.method, "GET");
    assert.equal(parsed.head.httpVersion, "1.1");

    const again = new RequestHeadParser().push(latin1(HEAD))!;
    const headers = eager();
    headers.set("sec-websocket-version", "8");
    again.head.headers = headers;
    assert.throws(() => validateUpgradeRequest(again.head), (err) => err instanceof HandshakeError && err.status === 426);
  });

  it("given as Headers (the native paths) are that very object", () => {
    const headers = new Headers(RECORD_HEAD.headers as unknown as Record<string, string>);
    headers.set("x-tag", "one");
    headers.append("x-tag", "two");
    const request = validateUpgradeRequest({ ...RECORD_HEAD, headers });
    assert.equal(request.headers, headers);
    assert.equal(request.headers.get("X-Tag"), "one, two");
  });

  it("given as a record (node:http) are built on access, arrays joined", () => {
    const request = validateUpgradeRequest(RECORD_HEAD);
    assert.ok(request.headers instanceof Headers);
    assert.equal(request.headers, request.headers);
    assert.equal(request.headers.get("x-tag"), "one, two");
    assert.equal(request.headers.get("HOST"), "server.example.com");
    assert.equal(request.headers.has("x-none"), false);
  });

  it("given as a record with an invalid field are still refused at once", () => {
    assert.throws(
      () => validateUpgradeRequest({ ...RECORD_HEAD, headers: { ...RECORD_HEAD.headers, "bad name": "x" } }),
      (err) => err instanceof HandshakeError && err.status === 400 && err.code === "WS_ERR_MALFORMED_REQUEST",
    );
  });
});

describe("field blocks", () => {
  const block = "Host:a\nX-Tag:1\nHostname:b\nx-tag:2\nHo:c\nEmpty:\n";

  it("look a field up as Headers.get does", () => {
    assert.equal(fieldValue(block, "host"), "a");
    assert.equal(fieldValue(block, "x-tag"), "1, 2");
    assert.equal(fieldValue(block, "hostname"), "b");
    assert.equal(fieldValue(block, "ho"), "c");
    assert.equal(fieldValue(block, "empty"), "");
    assert.equal(fieldValue(block, "h"), null);
    assert.equal(fieldValue("", "host"), null);
  });

  it("make the Headers of their fields in order", () => {
    assert.deepEqual(entries(blockHeaders(block)), [
      ["empty", ""],
      ["ho", "c"],
      ["host", "a"],
      ["hostname", "b"],
      ["x-tag", "1, 2"],
    ]);
  });
});
