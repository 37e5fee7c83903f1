// What only the Node adapter has: attach() next to HTTP routes, node:tls
// options, and a census of handles after teardown. The behaviour it shares
// with every adapter is in the black-box suite (_suite.ts, suite_test.ts).
// Runs on Node, Deno and Bun (their node:net / node:http).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import { Duplex } from "node:stream";
import { describe, it } from "node:test";
import type { Connection, Handler } from "../../mod.ts";
import { attach, serve, upgradeHandler } from "../../runtimes/node.ts";
import { Client, delay, rawConnect, rawHandshake, startProcess, upgradeRequest, within } from "./_helpers.ts";

const echo: Handler = {
  message(ctx, data) {
    ctx.send(data);
  },
};

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

describe("node adapter: what a connection loads", () => {
  const onNode = "Deno" in globalThis || "Bun" in globalThis
    ? "process.moduleLoadList, and a fetch loaded on first use, are Node's"
    : false;

  it("serves WebSockets without loading Node's fetch (undici: megabytes per process)", { skip: onNode }, async () => {
    // A fresh process: this one has loaded fetch for other tests.
    const server = await startProcess("node", "tests/runtimes/_lazy_fetch_server.ts", {});
    try {
      const client = await Client.open(server.url);
      assert.equal((await client.roundTrip("loaded?")).data.toString(), "false");
      client.ws.close(1000);
      await within(client.closed);
    } finally {
      await server.stop();
    }
  });
});

describe("node adapter: backpressure at the connection's highWaterMark", () => {
  // A socket whose writes never complete until told to, with the stream's
  // own high-water mark at Node 20's 16 KiB: what the pump reads as full
  // must be its highWaterMark, not the stream's.
  function stalledSocket() {
    const callbacks: (() => void)[] = [];
    const socket = new Duplex({
      writableHighWaterMark: 16 * 1024,
      read() {},
      write(_chunk, _encoding, callback) {
        callbacks.push(callback);
      },
      writev(_chunks, callback) {
        callbacks.push(callback);
      },
    });
    const release = () => {
      for (const callback of callbacks.splice(0)) callback();
    };
    return { socket, release };
  }

  it("reports full only past highWaterMark, then drains once the socket takes the bytes", async () => {
    const { socket, release } = stalledSocket();
    const results: boolean[] = [];
    let drains = 0;
    let onOpen!: (ctx: Connection) => void;
    const opened = new Promise<Connection>((resolve) => onOpen = resolve);
    const ws = upgradeHandler({ open: (ctx) => onOpen(ctx), drain: () => void drains++ }, { highWaterMark: 256 * 1024 });
    const req = { method: "GET", url: "/", httpVersion: "1.1", headers: Object.fromEntries(upgradeRequest().split("\r\n").slice(1, -2).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()])) };
    ws.handleUpgrade(req as unknown as IncomingMessage, socket, new Uint8Array(0));
    const ctx = await within(opened);
    const chunk = new Uint8Array(48 * 1024);
    for (let i = 0; i < 8; i++) {
      results.push(ctx.send(chunk));
      await delay(0); // the pump hands its batch to the socket
    }
    // 48 KiB messages: full from the sixth on (5 x 48 KiB + the 101 < 256 KiB), not from the first.
    assert.deepEqual(results, [true, true, true, true, true, false, false, false]);
    assert.ok(ctx.bufferedAmount > 256 * 1024);
    release();
    await delay(0);
    release();
    await delay(10);
    assert.equal(drains, 1);
    assert.equal(ctx.bufferedAmount, 0);
    socket.destroy();
    await ws.close();
  });
});
