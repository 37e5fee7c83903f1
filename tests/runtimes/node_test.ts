// The Node adapter over real sockets: the `ws` client, raw TCP, node:http
// attach and TLS. Runs on Node, Deno and Bun (their node:net / node:http).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { createServer as createHttpServer } from "node:http";
import { after, before, describe, it } from "node:test";
import type { Context, Handler } from "../../mod.ts";
import { attach, type Server, serve } from "../../runtimes/node.ts";
import { closeBody, frame } from "../core/_util.ts";
import {
  Client,
  delay,
  rawConnect,
  rawHandshake,
  readAll,
  until,
  upgradeRequest,
  within,
} from "./_helpers.ts";

const echo: Handler = {
  message(ctx, data) {
    ctx.send(data);
  },
};

describe("node adapter: echo with the ws client", () => {
  let server: Server;
  before(async () => {
    server = await serve(echo, { port: 0, hostname: "127.0.0.1" });
  });
  after(async () => {
    await server.close();
    assert.equal(server.connections, 0);
  });

  for (const size of [0, 125, 126, 65535, 65536, 1 << 20]) {
    it(`echoes binary and text of ${size} bytes, keeping the type`, async () => {
      const client = await Client.open(server.url);
      const bytes = Buffer.alloc(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 31) & 0xff;
      const binary = await client.roundTrip(bytes);
      assert.equal(binary.isBinary, true);
      assert.ok(binary.data.equals(bytes));
      const text = "é".repeat(size >> 1) + "a".repeat(size & 1);
      const echoed = await client.roundTrip(text);
      assert.equal(echoed.isBinary, false);
      assert.equal(echoed.data.toString(), text);
      client.ws.close();
      await within(client.closed);
    });
  }

  it("answers pings sent between fragments before the message completes", async () => {
    const client = await Client.open(server.url);
    client.ws.send("frag", { fin: false });
    client.ws.ping("p1");
    client.ws.send("men", { fin: false });
    client.ws.ping("p2");
    client.ws.send("ted", { fin: true });
    const [message] = await client.messagesUntil(1);
    assert.equal(message!.data.toString(), "fragmented");
    assert.deepEqual(client.pongs.map(String), ["p1", "p2"]);
    assert.deepEqual(client.order, ["pong", "pong", "message"]);
    client.ws.close();
    await within(client.closed);
  });

  it("completes a close handshake started by the client, echoing its code", async () => {
    const client = await Client.open(server.url);
    client.ws.close(4000, "bye");
    assert.deepEqual(await within(client.closed), { code: 4000, reason: "" });
  });

  it("answers a plain HTTP request with 426", async () => {
    const response = await rawHandshake(server.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(response.status, 426);
    assert.equal(response.headers["upgrade"], "websocket");
    response.socket.destroy();
  });
});

describe("node adapter: handshake rejections over raw TCP", () => {
  let server: Server;
  before(async () => {
    server = await serve(echo, { port: 0, hostname: "127.0.0.1", maxHeaderBytes: 1024 });
  });
  after(() => server.close());

  const cases: [string, string, number][] = [
    ["version 8", upgradeRequest({ "Sec-WebSocket-Version": "8" }), 426],
    ["a missing key", upgradeRequest({ "Sec-WebSocket-Key": null }), 400],
    ["a key of 15 bytes", upgradeRequest({ "Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA" }), 400],
    ["POST", upgradeRequest({}, "POST / HTTP/1.1"), 400],
    ["HTTP/1.0", upgradeRequest({}, "GET / HTTP/1.0"), 400],
    ["no Host", upgradeRequest({ Host: null }), 400],
    ["Upgrade: foo", upgradeRequest({ Upgrade: "foo" }), 400],
    ["Connection without upgrade", upgradeRequest({ Connection: "keep-alive" }), 400],
    ["a header block over the limit", upgradeRequest({ "X-Big": "x".repeat(2000) }), 431],
    ["garbage", "\x16\x03\x01 not http\r\n\r\n", 400],
  ];
  for (const [name, request, status] of cases) {
    it(`answers ${status} to ${name} and closes`, async () => {
      const response = await rawHandshake(server.port, request);
      assert.equal(response.status, status);
      if (status === 426) assert.equal(response.headers["sec-websocket-version"], "13");
      response.socket.resume();
      const { ended } = await readAll(response.socket);
      assert.equal(ended, true, "the server closes the connection");
    });
  }

  it("drops a client that does not finish its handshake in time", async () => {
    const slow = await serve(echo, { port: 0, hostname: "127.0.0.1", handshakeTimeoutMs: 100 });
    const socket = await rawConnect(slow.port);
    socket.write("GET / HTTP/1.1\r\n");
    const { data } = await readAll(socket, 2000);
    assert.equal(data.length, 0);
    assert.equal(socket.destroyed || socket.readableEnded, true);
    await slow.close();
  });
});

describe("node adapter: protocol errors over raw TCP", () => {
  let server: Server;
  before(async () => {
    server = await serve(echo, { port: 0, hostname: "127.0.0.1", maxMessageBytes: 1000 });
  });
  after(() => server.close());

  const cases: [string, Uint8Array, number][] = [
    ["an unmasked frame", frame(0x1, "hi", { mask: null }), 1002],
    ["a reserved opcode", frame(0x3, "x"), 1002],
    ["invalid UTF-8", frame(0x1, [0xc0, 0xaf]), 1007],
    ["a message over maxMessageBytes", frame(0x2, new Uint8Array(1001)), 1009],
    ["a close code that may not be sent", frame(0x8, closeBody(1005)), 1002],
  ];
  for (const [name, bytes, code] of cases) {
    it(`sends close ${code} for ${name}, then closes TCP`, async () => {
      const response = await rawHandshake(server.port, upgradeRequest());
      assert.equal(response.status, 101);
      assert.equal(response.headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
      const reading = readAll(response.socket);
      response.socket.resume();
      response.socket.write(bytes);
      const { data, ended } = await reading;
      assert.deepEqual([...data.subarray(0, 4)], [0x88, 0x02, code >> 8, code & 0xff]);
      assert.equal(data.length, 4, "nothing after the close frame");
      assert.equal(ended, true);
    });
  }

  it("reports 1006 to the app when the peer ends TCP without a close frame", async () => {
    const closes: number[] = [];
    const s = await serve({ close: (_ctx, info) => void closes.push(info.code) }, { port: 0, hostname: "127.0.0.1" });
    const response = await rawHandshake(s.port, upgradeRequest());
    response.socket.end();
    await until(() => closes.length === 1, 2000, "close hook");
    assert.deepEqual(closes, [1006]);
    await until(() => s.connections === 0, 2000, "socket teardown");
    await s.close();
  });
});

describe("node adapter: hooks", () => {
  it("lets the upgrade hook refuse with a Response, accept with headers, and set state", async () => {
    const server = await serve<{ user: string }>({
      async upgrade(ctx) {
        const token = new URL(ctx.request.url, "http://x").searchParams.get("token");
        if (token !== "secret") {
          return new Response("no entry", { status: 401, headers: { "WWW-Authenticate": "Bearer" } });
        }
        await delay(5);
        ctx.state.user = "ada";
        return { headers: { "X-Welcome": "yes" } };
      },
      open(ctx) {
        ctx.send(`hello ${ctx.state.user}`);
      },
    }, { port: 0, hostname: "127.0.0.1" });
    const refused = await rawHandshake(server.port, upgradeRequest({}, "GET /?token=wrong HTTP/1.1"));
    assert.equal(refused.status, 401);
    assert.equal(refused.headers["www-authenticate"], "Bearer");
    assert.equal(refused.body, "no entry");
    refused.socket.destroy();
    const accepted = await rawHandshake(server.port, upgradeRequest({}, "GET /?token=secret HTTP/1.1"));
    assert.equal(accepted.status, 101);
    assert.equal(accepted.headers["x-welcome"], "yes");
    accepted.socket.destroy();
    const client = await Client.open(`${server.url}/?token=secret`);
    const [greeting] = await client.messagesUntil(1);
    assert.equal(greeting!.data.toString(), "hello ada");
    await server.close();
  });

  it("chooses the subprotocol by the server's preference, and none when nothing matches", async () => {
    const server = await serve({ open: (ctx) => void ctx.send(ctx.protocol) }, {
      port: 0,
      hostname: "127.0.0.1",
      protocols: ["chat.v2", "chat.v1"],
    });
    const client = await Client.open(server.url, ["chat.v1", "chat.v2"]);
    assert.equal(client.ws.protocol, "chat.v2");
    assert.equal((await client.messagesUntil(1))[0]!.data.toString(), "chat.v2");
    const none = await rawHandshake(server.port, upgradeRequest({ "Sec-WebSocket-Protocol": "mqtt" }));
    assert.equal(none.status, 101);
    assert.equal(none.headers["sec-websocket-protocol"], undefined);
    none.socket.destroy();
    await server.close();
  });

  it("closes only the failing connection with 1011 when a hook throws, and reports the error", async () => {
    const errors: unknown[] = [];
    const server = await serve({
      message(ctx, data) {
        if (data === "boom") throw new Error("boom");
        ctx.send(data);
      },
      error(_ctx, err) {
        errors.push(err);
      },
    }, { port: 0, hostname: "127.0.0.1" });
    const victim = await Client.open(server.url);
    const bystander = await Client.open(server.url);
    victim.ws.send("boom");
    assert.equal((await within(victim.closed)).code, 1011);
    assert.equal((errors[0] as Error).message, "boom");
    assert.equal((await bystander.roundTrip("still here")).data.toString(), "still here");
    await server.close();
  });

  it("turns a rejected promise into 1011 as well", async () => {
    const server = await serve({ message: () => Promise.reject(new Error("async boom")) }, { port: 0, hostname: "127.0.0.1" });
    const client = await Client.open(server.url);
    client.ws.send("x");
    assert.equal((await within(client.closed)).code, 1011);
    await server.close();
  });

  it("runs async hooks one at a time, in order", async () => {
    const seen: string[] = [];
    const server = await serve({
      async message(ctx, data) {
        await delay(Math.random() * 5);
        seen.push(String(data));
        ctx.send(data);
      },
    }, { port: 0, hostname: "127.0.0.1" });
    const client = await Client.open(server.url);
    const sent = Array.from({ length: 30 }, (_, i) => `m${i}`);
    for (const m of sent) client.ws.send(m);
    const echoed = await client.messagesUntil(30);
    assert.deepEqual(echoed.map((m) => m.data.toString()), sent);
    assert.deepEqual(seen, sent);
    await server.close();
  });

  it("closes from the server side with the app's code, and reports a clean close", async () => {
    const closes: unknown[] = [];
    const server = await serve({
      message: (ctx) => ctx.close(4001, "requested"),
      close: (_ctx, info) => void closes.push(info),
    }, { port: 0, hostname: "127.0.0.1" });
    const client = await Client.open(server.url);
    client.ws.send("close me");
    assert.deepEqual(await within(client.closed), { code: 4001, reason: "requested" });
    await until(() => closes.length === 1);
    assert.deepEqual(closes, [{ code: 4001, reason: "requested", wasClean: true }], "the peer echoed code and reason");
    await server.close();
  });
});

describe("node adapter: backpressure and shutdown", () => {
  it("lets bufferedAmount grow while the peer does not read, and drain when it does", async () => {
    let ctx!: Context;
    const server = await serve({ open: (c) => void (ctx = c) }, { port: 0, hostname: "127.0.0.1" });
    const response = await rawHandshake(server.port, upgradeRequest());
    await until(() => ctx !== undefined);
    const chunk = new Uint8Array(256 * 1024);
    assert.equal(ctx.send(chunk), false, "a send at the high-water mark reports backpressure");
    // Push past what the loopback's kernel buffers hold (a few MiB).
    for (let i = 0; i < 127; i++) ctx.send(chunk);
    await delay(50);
    assert.ok(ctx.bufferedAmount > 0, `bufferedAmount grew: ${ctx.bufferedAmount}`);
    let drained = false;
    const draining = ctx.drained().then(() => (drained = true));
    await delay(50);
    assert.equal(drained, false, "not drained while the peer does not read");
    response.socket.resume();
    await within(draining, 5000, "drain");
    assert.ok(ctx.bufferedAmount < 256 * 1024);
    response.socket.destroy();
    await server.close();
  });

  it("closes every connection with 1001 on shutdown and resolves once the sockets are gone", async () => {
    const server = await serve(echo, { port: 0, hostname: "127.0.0.1" });
    const clients = await Promise.all([1, 2, 3].map(() => Client.open(server.url)));
    assert.equal(server.connections, 3);
    await within(server.close(), 3000, "server.close");
    for (const client of clients) assert.equal((await within(client.closed)).code, 1001);
    assert.equal(server.connections, 0);
  });

  it("destroys a peer that never answers the close after the close timeout", async () => {
    const server = await serve(echo, { port: 0, hostname: "127.0.0.1", closeTimeoutMs: 100 });
    const response = await rawHandshake(server.port, upgradeRequest());
    response.socket.resume(); // reads, but never sends a close frame back
    const started = Date.now();
    await within(server.close(), 3000, "server.close");
    assert.ok(Date.now() - started < 1500);
    assert.equal(server.connections, 0);
  });
});

describe("node adapter: attach to node:http and TLS", () => {
  it("serves HTTP routes and WebSockets on one port", async () => {
    const http = createHttpServer((_req, res) => res.end("plain http"));
    const ws = attach(http, echo);
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const port = (http.address() as { port: number }).port;
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await res.text(), "plain http");
    const client = await Client.open(`ws://127.0.0.1:${port}/ws`);
    assert.equal((await client.roundTrip("over http")).data.toString(), "over http");
    const refused = await rawHandshake(port, upgradeRequest({ "Sec-WebSocket-Version": "7" }));
    assert.equal(refused.status, 426);
    refused.socket.destroy();
    await ws.close();
    assert.equal((await within(client.closed)).code, 1001);
    await new Promise((resolve) => http.close(resolve));
  });

  it("serves wss:// with tls options", async () => {
    const server = await serve(echo, {
      port: 0,
      hostname: "127.0.0.1",
      tls: {
        cert: readFileSync(new URL("../fixtures/cert.pem", import.meta.url)),
        key: readFileSync(new URL("../fixtures/key.pem", import.meta.url)),
      },
    });
    assert.match(server.url, /^wss:\/\//);
    const client = await Client.open(`wss://localhost:${server.port}`, undefined, { rejectUnauthorized: false });
    assert.equal((await client.roundTrip("secret")).data.toString(), "secret");
    await server.close();
    assert.equal((await within(client.closed)).code, 1001);
  });
});

describe("node adapter: teardown leaves nothing behind", () => {
  const census = () => {
    const counts: Record<string, number> = {};
    for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
    return counts;
  };
  const nodeOnly = "Deno" in globalThis || "Bun" in globalThis
    ? "process.getActiveResourcesInfo() is Node's census of handles and timers"
    : false;

  it("closes every socket and clears every timer after a busy life", { skip: nodeOnly }, async () => {
    await delay(20);
    const before = census();
    const server = await serve(echo, { port: 0, hostname: "127.0.0.1", closeTimeoutMs: 100 });
    const clients = await Promise.all([1, 2, 3].map(() => Client.open(server.url)));
    await clients[0]!.roundTrip("x");
    clients[1]!.ws.close(1000);
    await within(clients[1]!.closed);
    const silent = await rawHandshake(server.port, upgradeRequest()); // never answers our close
    silent.socket.resume();
    const half = await rawConnect(server.port); // a handshake in progress
    half.write("GET / HTTP/1.1\r\n");
    await server.close();
    for (const s of [silent.socket, half]) s.destroy();
    await Promise.all(clients.map((c) => within(c.closed)));
    await delay(50);
    assert.equal(server.connections, 0);
    // Sockets of earlier tests may still be closing in `before`; nothing may be added.
    const after = census();
    for (const [kind, n] of Object.entries(after)) {
      assert.ok(n <= (before[kind] ?? 0), `leaked ${kind}: ${n} now, ${before[kind] ?? 0} before`);
    }
  });
});
