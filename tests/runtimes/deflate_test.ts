// permessage-deflate over real sockets, on every raw adapter of this runtime
// (node:net everywhere, Deno.listen on Deno, Bun.listen on Bun), against the
// `ws` client, which negotiates it with parameters (under Bun, `ws` is Bun's
// own client, a second independent peer). A counting TCP proxy between the
// two measures the bytes on the wire.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createConnection, createServer, type Server as NetServer, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import { type Connection, type DeflateParams, type Handler, type ListenOptions, runtime, type Server, serve, UsageError } from "../../mod.ts";
import { serve as serveNode } from "../../runtimes/node.ts";
import { delay, startProcess, within } from "./_helpers.ts";

type Start = (handler: Handler, options: ListenOptions) => Promise<Server>;
const on = runtime();
const targets: [string, Start][] = [[`node:net on ${on}`, serveNode]];
if (on === "deno") targets.push(["Deno.listen", (h, o) => serve(h, { ...o, transport: "raw" })]);
if (on === "bun") targets.push(["Bun.listen", (h, o) => serve(h, { ...o, transport: "raw" })]);

/** Counts the bytes that cross it, both ways. */
class Proxy {
  readonly server: NetServer;
  toClient = 0;
  toServer = 0;
  readonly #sockets = new Set<Socket>();
  constructor(target: number) {
    this.server = createServer((client) => {
      const upstream = createConnection(target, "127.0.0.1");
      this.#sockets.add(client).add(upstream);
      client.on("data", (d) => void (this.toServer += d.length, upstream.write(d)));
      upstream.on("data", (d) => void (this.toClient += d.length, client.write(d)));
      client.on("end", () => upstream.end());
      upstream.on("end", () => client.end());
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
      client.on("close", () => this.#sockets.delete(client));
      upstream.on("close", () => this.#sockets.delete(upstream));
    });
  }
  listen(): Promise<string> {
    return new Promise((resolve) => this.server.listen(0, "127.0.0.1", () => resolve(`ws://127.0.0.1:${(this.server.address() as { port: number }).port}`)));
  }
  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

interface Seen {
  deflate: DeflateParams | undefined;
  extensions: string;
  offered: string;
}

/** An echo server that records what each connection negotiated; `say` messages drive server-side sends. */
function echo(seen: Seen[]): Handler {
  return {
    open(ctx) {
      seen.push({ deflate: ctx.deflate, extensions: ctx.extensions, offered: ctx.request.headers.get("sec-websocket-extensions") ?? "" });
    },
    message(ctx: Connection, data) {
      if (typeof data === "string" && data.startsWith("cmd:")) return command(ctx, data.slice(4));
      ctx.send(data);
    },
  };
}

/** Server-side scenarios the client asks for by message. */
function command(ctx: Connection, name: string): void {
  const big = "the same sentence, over and over; ".repeat(3000); // ~100 KB, compresses ~100×
  if (name === "raw") {
    ctx.send(big, { compress: false });
  } else if (name === "squeezed") {
    ctx.send(big);
  } else if (name === "order-then-close") {
    // Compressed and uncompressed interleaved, then close: all arrive, in order, before the close frame.
    for (let i = 0; i < 20; i++) {
      ctx.send(`${i}:` + big.slice(0, 2000 + i), { compress: i % 3 !== 0 });
      ctx.send(`${i}:small`);
      ctx.send(new Uint8Array(5000).fill(i));
    }
    ctx.close(4000, "done");
  }
}

interface Opened {
  ws: WebSocket;
  messages: (string | Uint8Array)[];
  closed: Promise<{ code: number; reason: string }>;
}

async function open(url: string, perMessageDeflate: unknown): Promise<Opened> {
  const ws = new WebSocket(url, { perMessageDeflate } as never);
  ws.binaryType = "nodebuffer";
  const messages: (string | Uint8Array)[] = [];
  ws.on("message", (data: Buffer, isBinary: boolean) => void messages.push(isBinary ? new Uint8Array(data) : data.toString()));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once("close", (code: number, reason: Buffer) => resolve({ code, reason: String(reason) })));
  await within(new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject))), 5000, "open");
  return { ws, messages, closed };
}

async function received(o: Opened, count: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (o.messages.length < count && Date.now() < deadline) await delay(5);
  assert.equal(o.messages.length, count, "messages received");
}

function chat(i: number): string {
  const words = ["hello", "room", "deploy", "coffee", "the", "build", "is", "green", "again", "shipping", "today", "review"];
  let text = "";
  for (let w = 0; w < 8 + (i % 20); w++) text += words[(i * 7 + w * 3) % words.length] + " ";
  return JSON.stringify({ type: "say", room: "lobby", from: `user-${i % 17}`, text, ts: 1_732_200_000_000 + i });
}

for (const [name, start] of targets) {
  describe(`permessage-deflate: ${name}`, () => {
    let server: Server;
    let proxy: Proxy;
    let url = "";
    const seen: Seen[] = [];

    before(async () => {
      server = await start(echo(seen), { port: 0, hostname: "127.0.0.1", maxMessageBytes: 4 << 20, perMessageDeflate: { threshold: 0 } });
      proxy = new Proxy(server.port);
      url = await proxy.listen();
    });

    after(async () => {
      await proxy.close();
      await server.close();
    });

    const matrix: [string, Record<string, unknown>, Partial<DeflateParams>, RegExp][] = [
      ["defaults (context takeover both ways)", {}, {}, /^permessage-deflate(; client_max_window_bits=15)?$/],
      ["no context takeover both ways", { serverNoContextTakeover: true, clientNoContextTakeover: true }, {
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
      }, /server_no_context_takeover.*client_no_context_takeover/],
    ];
    for (let bits = 9; bits <= 15; bits++) {
      matrix.push([`window bits ${bits} both ways`, { serverMaxWindowBits: bits, clientMaxWindowBits: bits }, {
        serverMaxWindowBits: bits,
        clientMaxWindowBits: bits,
      }, new RegExp(`server_max_window_bits=${bits}.*client_max_window_bits=${bits}`)]);
    }

    for (const [title, client, expected, header] of matrix) {
      it(`echoes many small and large messages: ${title}`, async () => {
        const o = await open(url, { threshold: 0, ...client });
        const params = seen.at(-1)!;
        // ws names the extension (it would have failed the handshake on an answer it could not accept).
        assert.match(o.ws.extensions, /^permessage-deflate/);
        assert.match(params.extensions, header);
        assert.deepEqual(params.deflate, {
          serverNoContextTakeover: false,
          clientNoContextTakeover: false,
          serverMaxWindowBits: 15,
          clientMaxWindowBits: 15,
          ...expected,
        });
        const sent: (string | Uint8Array)[] = [];
        for (let i = 0; i < 200; i++) sent.push(chat(i));
        sent.push("x".repeat(1 << 20), new Uint8Array(randomBytes(256 * 1024)), "", new Uint8Array(0), "é€𝄞".repeat(5000));
        for (let i = 200; i < 300; i++) sent.push(chat(i));
        for (const m of sent) o.ws.send(m);
        await received(o, sent.length);
        assert.deepEqual(o.messages, sent);
        o.ws.close(1000);
        assert.equal((await within(o.closed, 5000, "close")).code, 1000);
      });
    }

    it("echoes fragmented compressed messages (RSV1 on the first frame only)", async () => {
      const o = await open(url, { threshold: 0 });
      const parts = ["first part, ", "second part, ".repeat(100), "third and last"];
      for (let round = 0; round < 3; round++) {
        parts.forEach((p, i) => o.ws.send(p, { fin: i === parts.length - 1, compress: true }));
        o.ws.send(chat(round));
      }
      await received(o, 6);
      assert.deepEqual(o.messages, [parts.join(""), chat(0), parts.join(""), chat(1), parts.join(""), chat(2)]);
      o.ws.close(1000);
      await o.closed;
    });

    it("shrinks JSON chat traffic on the wire several times, both ways", async () => {
      const before = { in: proxy.toServer, out: proxy.toClient };
      const o = await open(url, { threshold: 0 });
      let payload = 0;
      for (let i = 0; i < 500; i++) {
        const m = chat(i);
        payload += m.length;
        o.ws.send(m);
      }
      await received(o, 500);
      o.ws.close(1000);
      await o.closed;
      const out = proxy.toClient - before.out, inbound = proxy.toServer - before.in;
      assert.ok(out < payload / 3, `server → client: ${out} bytes for ${payload} bytes of JSON`);
      assert.ok(inbound < payload / 3, `client → server: ${inbound} bytes for ${payload} bytes of JSON`);
    });

    it("sends uncompressed with { compress: false }, compressed otherwise", async () => {
      const o = await open(url, { threshold: 0 });
      let mark = proxy.toClient;
      o.ws.send("cmd:raw");
      await received(o, 1);
      const raw = proxy.toClient - mark;
      mark = proxy.toClient;
      o.ws.send("cmd:squeezed");
      await received(o, 2);
      const squeezed = proxy.toClient - mark;
      assert.equal(o.messages[0], o.messages[1]);
      const size = (o.messages[0] as string).length;
      assert.ok(raw >= size, `uncompressed: ${raw} bytes on the wire for ${size}`);
      assert.ok(squeezed < size / 20, `compressed: ${squeezed} bytes on the wire for ${size}`);
      o.ws.close(1000);
      await o.closed;
    });

    it("keeps the order of compressed and uncompressed sends, and delivers them all before its close frame", async () => {
      const o = await open(url, { threshold: 0 });
      o.ws.send("cmd:order-then-close");
      const { code, reason } = await within(o.closed, 10_000, "the server's close");
      assert.equal(code, 4000);
      assert.equal(reason, "done");
      assert.equal(o.messages.length, 60);
      const big = "the same sentence, over and over; ".repeat(3000);
      for (let i = 0; i < 20; i++) {
        assert.equal(o.messages[3 * i], `${i}:` + big.slice(0, 2000 + i));
        assert.equal(o.messages[3 * i + 1], `${i}:small`);
        assert.deepEqual(o.messages[3 * i + 2], new Uint8Array(5000).fill(i));
      }
    });

    it("closes with 1009 when a message inflates past maxMessageBytes (a decompression bomb)", async () => {
      const o = await open(url, { threshold: 0 });
      const bomb = new Uint8Array(64 << 20); // 64 MiB of zeros: about 64 KiB compressed
      const mark = proxy.toServer;
      o.ws.send(bomb);
      const { code } = await within(o.closed, 20_000, "the server's close");
      assert.equal(code, 1009);
      assert.ok(proxy.toServer - mark < 1 << 20, "the bomb was small on the wire");
      assert.equal(o.messages.length, 0);
    });

    it("answers without the extension when the client does not offer it", async () => {
      const o = await open(url, false);
      assert.equal(o.ws.extensions, "");
      assert.equal(seen.at(-1)!.deflate, undefined);
      assert.equal(seen.at(-1)!.extensions, "");
      o.ws.send("plain");
      await received(o, 1);
      o.ws.close(1000);
      await o.closed;
    });
  });
}

describe("permessage-deflate: options", () => {
  it("is off by default: an offer is declined", async () => {
    const seen: Seen[] = [];
    const server = await serve(echo(seen), { port: 0, hostname: "127.0.0.1" });
    try {
      const o = await open(server.url, { threshold: 0 });
      assert.equal(o.ws.extensions, "");
      assert.match(seen[0]!.offered, /permessage-deflate/);
      assert.equal(seen[0]!.deflate, undefined);
      o.ws.close(1000);
      await o.closed;
    } finally {
      await server.close();
    }
  });

  it("sends messages under the threshold uncompressed (default 1,024 bytes)", async () => {
    const server = await serve(echo([]), { port: 0, hostname: "127.0.0.1", perMessageDeflate: true });
    const proxy = new Proxy(server.port);
    try {
      const o = await open(await proxy.listen(), { threshold: 0 });
      const small = "a".repeat(1000), large = "a".repeat(2000);
      let mark = proxy.toClient;
      o.ws.send(small);
      await received(o, 1);
      assert.ok(proxy.toClient - mark >= 1000, "under the threshold: as it is");
      mark = proxy.toClient;
      o.ws.send(large);
      await received(o, 2);
      assert.ok(proxy.toClient - mark < 100, "over the threshold: compressed");
      o.ws.close(1000);
      await o.closed;
    } finally {
      await proxy.close();
      await server.close();
    }
  });

  it("refuses bad options with a typed error when the server starts", async () => {
    for (
      const perMessageDeflate of [
        { serverMaxWindowBits: 8 },
        { clientMaxWindowBits: 16 },
        { threshold: -1 },
        { level: 10 },
        { memLevel: 0 },
        { concurrency: 0 },
        "yes",
      ]
    ) {
      await assert.rejects(
        serve(echo([]), { port: 0, hostname: "127.0.0.1", perMessageDeflate } as never),
        (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_OPTION",
        JSON.stringify(perMessageDeflate),
      );
    }
  });
});

describe("permessage-deflate: examples/echo.ts", () => {
  it(`compresses every message when the client offers it, and PERMESSAGE_DEFLATE=0 turns it off (${on})`, async () => {
    for (const [env, compressed] of [[{}, true], [{ PERMESSAGE_DEFLATE: "0" }, false]] as const) {
      const running = await startProcess(on, "examples/echo.ts", { PORT: "0", HOST: "127.0.0.1", ...env });
      const proxy = new Proxy(running.port);
      try {
        const o = await open(await proxy.listen(), { threshold: 0 });
        assert.equal(o.ws.extensions === "" ? "" : "permessage-deflate", compressed ? "permessage-deflate" : "");
        const message = "echo me ".repeat(500);
        const mark = proxy.toClient;
        o.ws.send(message);
        await received(o, 1);
        assert.equal(o.messages[0], message);
        const wire = proxy.toClient - mark;
        assert.ok(compressed ? wire < 100 : wire >= message.length, `${wire} bytes on the wire`);
        o.ws.close(1000);
        await o.closed;
      } finally {
        await proxy.close();
        // Its exit on SIGTERM is chat_test.ts's and the browser test's concern: a
        // child of `deno test` dies by the signal before its handler runs.
        await running.stop();
      }
    }
  });
});
