// permessage-deflate (RFC 7692) against a real browser: Debian's Chromium,
// driven by playwright-core, talks to a Duplex echo server started in this
// process (the node:net adapter) with perMessageDeflate on, through a TCP
// proxy that counts the bytes on the wire both ways. The page is a plain
// http page on 127.0.0.1, served by node:http here too (a secure context, so
// the page can hash with crypto.subtle).
//
// For each server configuration (the defaults, with context takeover; no
// context takeover both ways and a 10-bit server window; the defaults with
// threshold 0):
// - Chromium offers permessage-deflate (the server sees it in
//   ctx.request.extensions), the page's `ws.extensions` is exactly the
//   server's ctx.extensions, and ctx.deflate holds the agreed parameters;
// - 200 small JSON chat messages (100–300 bytes), a 64 KiB JSON chat log,
//   64 KiB and 1 MiB of repetitive text, 256 KiB of random bytes and a mix,
//   echo back byte-identical and in order (SHA-256 of what the page sent,
//   what the server got, what the page got);
// - on the wire (a counting TCP proxy between Chromium and the server), the
//   server's JSON log and repetitive text take less than a third of their
//   size, and Chromium's too; small messages under the 1 KiB threshold go
//   from the server exactly as they are (with threshold 0, in less than a
//   third); random bytes do not shrink;
// - a message sent with `{ compress: false }` takes its full size (one frame)
//   on the wire, and arrives intact;
// - the close handshake completes with 1000.
//
// It drives Chromium from Node only (npm run test:node); under `deno test`
// and `bun test`, which also find it, it skips itself. Without Chromium at
// /usr/bin/chromium (or CHROMIUM_PATH) it skips too, unless CI is set: then
// it fails (.ci/run installs Chromium).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { type AddressInfo, connect, createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import type { ExtensionOffer } from "../../core/handshake_offers.ts";
import type { DeflateParams } from "../../core/deflate.ts";
import { runtime } from "../../mod.ts";
import { CHROMIUM, chromiumMissing, inCi, launchChromium } from "./_chromium.ts";
import type { PerMessageDeflateOptions } from "../../plugins/hooks.ts";
import { type Server, serve } from "../../runtimes/node.ts";
import { within } from "../runtimes/_helpers.ts";

const on = runtime();
/** Every wait on the page; the whole scenario stays well under the test's timeout. */
const WAIT_MS = 10_000;
const TEST_MS = 30_000;

/** A text message that asks the server for `RAW_PREFIX.length + n` bytes of repetitive text, sent with `{ compress: false }`. */
const RAW_PREFIX = "\u0000raw:";
const RAW_BYTES = 256 * 1024;

function skipReason(): string | false {
  if (on !== "node") return `runs from Node only (npm run test:node): playwright-core drives Chromium from Node; not on ${on}`;
  if (chromiumMissing(on) && !inCi) {
    return `chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH); CI installs it, and there this test fails without it`;
  }
  return false;
}

/** Repetitive ASCII text of exactly `n` bytes; the page has its own copy of this (page.evaluate cannot share code). */
function repetitive(n: number): string {
  let s = "";
  for (let i = 0; s.length < n; i++) s += `line ${i}: the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs\n`;
  return s.slice(0, n);
}

/** A chat-like JSON message of roughly 100–300 bytes, some of it not ASCII. */
function chat(i: number): string {
  const words = ["hello", "héllo", "room", "lobby", "ok", "✓", "see you", "🎉", "deflate", "window", "message", "again"];
  let text = "";
  for (let k = 0; k < 8 + ((i * 7) % 24); k++) text += `${words[(i + k * 3) % words.length]} `;
  return JSON.stringify({ type: "chat", id: i, room: "lobby", from: `user-${i % 7}`, ts: 1_700_000_000_000 + i * 1234, text: text.trim() });
}

const utf8 = (s: string) => Buffer.byteLength(s, "utf8");
const sha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");

/** Counts the bytes through it, both ways: `up` from the browser, `down` from the server. */
interface Proxy {
  readonly port: number;
  readonly up: number;
  readonly down: number;
  readonly connections: number;
  close(): Promise<void>;
}

async function startProxy(target: number): Promise<Proxy> {
  let up = 0;
  let down = 0;
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: NetServer = createNetServer((client) => {
    connections++;
    const upstream = connect(target, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }
    client.on("data", (chunk: Buffer) => void (up += chunk.length));
    upstream.on("data", (chunk: Buffer) => void (down += chunk.length));
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    get up() {
      return up;
    },
    get down() {
      return down;
    },
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function startPage(): Promise<{ url: string; close(): Promise<void> }> {
  const http: HttpServer = createHttpServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>deflate</title><p>permessage-deflate</p>");
  });
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(0, "127.0.0.1", resolve);
  });
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}

/** What the server saw. */
interface Seen {
  offers?: ExtensionOffer[];
  extensions?: string;
  deflate?: DeflateParams | undefined;
  /** Every message, in order: its type and SHA-256. */
  received: { type: "text" | "binary"; digest: string }[];
  closes: number[];
  errors: string[];
}

async function startEcho(perMessageDeflate: boolean | PerMessageDeflateOptions, seen: Seen): Promise<Server> {
  return await serve({
    open(ctx) {
      seen.offers = ctx.request.extensions;
      seen.extensions = ctx.extensions;
      seen.deflate = ctx.deflate;
    },
    message(ctx, data) {
      if (typeof data === "string" && data.startsWith(RAW_PREFIX)) {
        ctx.send(RAW_PREFIX + repetitive(Number(data.slice(RAW_PREFIX.length))), { compress: false });
        return;
      }
      seen.received.push({ type: typeof data === "string" ? "text" : "binary", digest: sha256(data) });
      ctx.send(data);
    },
    close(_ctx, info) {
      seen.closes.push(info.code);
    },
    error(_ctx, error) {
      seen.errors.push(String(error));
    },
  }, { port: 0, hostname: "127.0.0.1", perMessageDeflate });
}

/** A message for the page to send: text given here, repetitive text or random bytes made there. */
type Spec = { text: string } | { repeat: number } | { random: number };

/** One message as the page reports it. */
interface Echoed {
  type: string;
  bytes: number;
  sent: string;
  received: string;
  receivedType: string;
}

/** Opens the page's socket; resolves with `ws.extensions` (or rejects with why it failed). */
const openSocket = (page: Page, url: string) =>
  page.evaluate(async (url) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const w = window as unknown as { ws: WebSocket; inbox: (string | ArrayBuffer)[]; waiters: (() => void)[]; ended?: { code: number; wasClean: boolean } };
    // The page's state lives on window; `ended`, not `closed`, which is Window's own (read-only).
    w.ws = ws;
    w.inbox = [];
    w.waiters = [];
    ws.onmessage = (event: MessageEvent<string | ArrayBuffer>) => {
      w.inbox.push(event.data);
      for (const wake of w.waiters.splice(0)) wake();
    };
    ws.onclose = (event) => {
      w.ended = { code: event.code, wasClean: event.wasClean };
      for (const wake of w.waiters.splice(0)) wake();
    };
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("the WebSocket failed to open"));
    });
    return ws.extensions;
  }, url);

/**
 * Sends the messages one after the other without waiting, waits for as many
 * echoes, and reports each one's SHA-256 as sent and as received, in order.
 */
const exchange = (page: Page, specs: Spec[]) =>
  page.evaluate(async (specs): Promise<Echoed[]> => {
    const w = window as unknown as { ws: WebSocket; inbox: (string | ArrayBuffer)[]; waiters: (() => void)[]; ended?: { code: number } };
    // No named functions in here: tsx (esbuild's keepNames) would wrap them
    // in a `__name` helper that the page does not have.
    const messages: (string | ArrayBuffer)[] = [];
    for (const spec of specs) {
      if ("text" in spec) {
        messages.push(spec.text);
      } else if ("repeat" in spec) {
        let s = "";
        for (let i = 0; s.length < spec.repeat; i++) s += `line ${i}: the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs\n`;
        messages.push(s.slice(0, spec.repeat));
      } else {
        const bytes = new Uint8Array(spec.random);
        for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
        messages.push(bytes.buffer);
      }
    }
    const start = w.inbox.length;
    for (const m of messages) w.ws.send(m);
    while (w.inbox.length < start + messages.length) {
      if (w.ended) throw new Error(`closed with ${w.ended.code} after ${w.inbox.length - start} of ${messages.length} echoes`);
      await new Promise<void>((resolve) => w.waiters.push(resolve));
    }
    const echoes = w.inbox.splice(start, messages.length);
    const report: Echoed[] = [];
    for (const [i, m] of messages.entries()) {
      const echo = echoes[i]!;
      const digests: string[] = [];
      for (const data of [m, echo]) {
        const bytes = typeof data === "string" ? new TextEncoder().encode(data) : new Uint8Array(data);
        const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
        digests.push(Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""));
      }
      report.push({
        type: typeof m === "string" ? "text" : "binary",
        bytes: typeof m === "string" ? new TextEncoder().encode(m).length : m.byteLength,
        sent: digests[0]!,
        received: digests[1]!,
        receivedType: typeof echo === "string" ? "text" : "binary",
      });
    }
    return report;
  }, specs);

/** Asks for the `{ compress: false }` message; resolves with its length and SHA-256. */
const askRaw = (page: Page, n: number, prefix: string) =>
  page.evaluate(async ({ n, prefix }) => {
    const w = window as unknown as { ws: WebSocket; inbox: (string | ArrayBuffer)[]; waiters: (() => void)[]; ended?: { code: number } };
    const start = w.inbox.length;
    w.ws.send(prefix + n);
    while (w.inbox.length <= start) {
      if (w.ended) throw new Error(`closed with ${w.ended.code} before the uncompressed message`);
      await new Promise<void>((resolve) => w.waiters.push(resolve));
    }
    const [m] = w.inbox.splice(start, 1);
    if (typeof m !== "string") return { length: -1, digest: "" };
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(m)));
    return { length: m.length, digest: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("") };
  }, { n, prefix });

const closeSocket = (page: Page) =>
  page.evaluate(async () => {
    const w = window as unknown as { ws: WebSocket; waiters: (() => void)[]; ended?: { code: number; wasClean: boolean } };
    w.ws.close(1000, "done");
    while (!w.ended) await new Promise<void>((resolve) => w.waiters.push(resolve));
    return w.ended;
  });

interface Config {
  name: string;
  option: true | PerMessageDeflateOptions;
  /** Parameters the negotiated `Sec-WebSocket-Extensions` value must carry. */
  header: RegExp[];
  params: DeflateParams;
  /** Small messages are compressed by the server too (threshold 0). */
  compressSmall: boolean;
}

const CONFIGS: Config[] = [
  {
    name: "defaults (context takeover)",
    option: true,
    header: [],
    params: { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 },
    compressSmall: false,
  },
  {
    name: "no context takeover, 10-bit server window",
    option: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10 },
    header: [/;\s*server_no_context_takeover(;|$)/, /;\s*client_no_context_takeover(;|$)/, /;\s*server_max_window_bits=10(;|$)/],
    params: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 15 },
    compressSmall: false,
  },
  {
    name: "context takeover, threshold 0 (every message compressed)",
    option: { threshold: 0 },
    header: [],
    params: { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 },
    compressSmall: true,
  },
];

const skip = skipReason();

// The skip goes on each test, not on the suite: `bun test` reports a skipped
// suite as nothing at all, but a skipped test as skipped, under this title.
describe(`permessage-deflate with Chromium, on Node's raw adapter${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let browser: Browser | undefined;

  before(async () => {
    if (skip) return;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  for (const config of CONFIGS) {
    it(`${config.name}: negotiated, echoes byte-identical in order, compressed on the wire, compress:false honoured`, { skip, timeout: TEST_MS }, async (t) => {
      const started = Date.now();
      const seen: Seen = { received: [], closes: [], errors: [] };
      let server: Server | undefined;
      let proxy: Proxy | undefined;
      let http: Awaited<ReturnType<typeof startPage>> | undefined;
      let context: BrowserContext | undefined;
      try {
        server = await startEcho(config.option, seen);
        proxy = await startProxy(server.port);
        http = await startPage();
        context = await browser!.newContext();
        const page = await context.newPage();
        page.setDefaultTimeout(WAIT_MS);
        await page.goto(http.url, { timeout: WAIT_MS });

        // 1. Negotiation.
        const extensions = await within(openSocket(page, `ws://127.0.0.1:${proxy.port}/`), WAIT_MS, "the page's socket to open");
        t.diagnostic(`offered: ${JSON.stringify(seen.offers)}; agreed: ${extensions}`);
        assert.ok(seen.offers?.some((o) => o.name === "permessage-deflate"), `Chromium offers permessage-deflate: ${JSON.stringify(seen.offers)}`);
        assert.equal(extensions, seen.extensions, "the page's ws.extensions is the server's ctx.extensions");
        assert.match(extensions, /^permessage-deflate(;|$)/);
        for (const re of config.header) assert.match(extensions, re);
        assert.deepEqual(seen.deflate, config.params);

        const phase = async (name: string, specs: Spec[]) => {
          const up0 = proxy!.up;
          const down0 = proxy!.down;
          const from = seen.received.length;
          const echoed = await within(exchange(page, specs), WAIT_MS, `${name}: the echoes`);
          assert.equal(echoed.length, specs.length);
          for (const [i, e] of echoed.entries()) {
            assert.equal(e.receivedType, e.type, `${name} #${i}: same type back`);
            assert.equal(e.received, e.sent, `${name} #${i}: byte-identical echo (${e.bytes} bytes)`);
          }
          assert.deepEqual(seen.received.slice(from), echoed.map((e) => ({ type: e.type, digest: e.sent })), `${name}: the server got them as sent, in order`);
          const payload = echoed.reduce((sum, e) => sum + e.bytes, 0);
          const up = proxy!.up - up0;
          const down = proxy!.down - down0;
          t.diagnostic(
            `${name}: ${specs.length} message(s), ${payload} payload bytes; wire up ${up} (${(up / payload).toFixed(3)}), down ${down} (${(down / payload).toFixed(3)})`,
          );
          return { payload, up, down };
        };

        // 2–3. Echoes, and the bytes on the wire.
        const chats = Array.from({ length: 200 }, (_, i) => chat(i));
        const sizes = chats.map(utf8);
        assert.ok(Math.min(...sizes) >= 100 && Math.max(...sizes) <= 300, `chat messages of 100–300 bytes: ${Math.min(...sizes)}–${Math.max(...sizes)}`);
        const small = await phase("200 small JSON", chats.map((text) => ({ text })));
        if (config.compressSmall) {
          // With context takeover, each one mostly refers back to the ones before.
          assert.ok(small.down * 3 < small.payload, `small JSON: ${small.down} wire bytes down for ${small.payload}`);
        } else {
          // Under the 1 KiB threshold the server sends them as they are: the
          // payload plus a header each (2 bytes, 4 from 126 bytes on).
          const headers = sizes.reduce((sum, n) => sum + (n < 126 ? 2 : 4), 0);
          assert.equal(small.down, small.payload + headers, "small messages go uncompressed from the server");
        }
        // Chromium compresses every message it sends.
        assert.ok(small.up < small.payload, `Chromium compressed the small messages: ${small.up} wire bytes for ${small.payload}`);

        // A chat history as one JSON array, of at least 64 KiB.
        const log: unknown[] = [];
        for (let i = 0, bytes = 2; bytes < 64 * 1024; i++) {
          const line = chat(10_000 + i);
          log.push(JSON.parse(line));
          bytes += utf8(line) + 1;
        }
        const bigChat = await phase("64 KiB JSON chat log", [{ text: JSON.stringify(log) }]);
        assert.ok(bigChat.down * 3 < bigChat.payload, `JSON: ${bigChat.down} wire bytes for ${bigChat.payload}`);

        const text = await phase("64 KiB + 1 MiB repetitive text", [{ repeat: 64 * 1024 }, { repeat: 1024 * 1024 }]);
        assert.ok(text.down * 3 < text.payload, `repetitive text: ${text.down} wire bytes down for ${text.payload}`);
        assert.ok(text.up * 3 < text.payload, `repetitive text: ${text.up} wire bytes up for ${text.payload}`);

        const random = await phase("256 KiB random binary", [{ random: 256 * 1024 }]);
        assert.ok(random.down >= random.payload, `random bytes do not shrink: ${random.down} wire bytes for ${random.payload}`);

        const mixed = await phase("interleaved", [
          { text: chat(1000) },
          { repeat: 100_000 },
          { random: 5000 },
          { text: "" },
          { text: chat(1001) },
          { repeat: 2000 },
        ]);
        assert.ok(mixed.down < mixed.payload, `interleaved: ${mixed.down} wire bytes for ${mixed.payload}`);

        // 5. compress: false. The same text, compressed, took a fraction of it above.
        const down0 = proxy.down;
        const raw = await within(askRaw(page, RAW_BYTES, RAW_PREFIX), WAIT_MS, "the uncompressed message");
        const rawDown = proxy.down - down0;
        const expected = RAW_PREFIX + repetitive(RAW_BYTES);
        t.diagnostic(`compress:false: ${expected.length} payload bytes; wire down ${rawDown} (${(rawDown / expected.length).toFixed(3)})`);
        assert.deepEqual(raw, { length: expected.length, digest: sha256(expected) });
        assert.ok(rawDown >= expected.length, `uncompressed: ${rawDown} wire bytes for ${expected.length}`);
        assert.ok(rawDown <= expected.length + 14, `uncompressed: one frame, ${rawDown} wire bytes for ${expected.length}`);

        assert.deepEqual(await within(closeSocket(page), WAIT_MS, "the close handshake"), { code: 1000, wasClean: true });
        const closed = Date.now();
        while (seen.closes.length === 0 && Date.now() - closed < WAIT_MS) await new Promise((resolve) => setTimeout(resolve, 10));
        assert.deepEqual(seen.closes, [1000]);
        assert.deepEqual(seen.errors, []);
        assert.equal(proxy.connections, 1);
        t.diagnostic(`${config.name}: ${Date.now() - started} ms`);
      } finally {
        await context?.close().catch(() => {});
        await server?.close();
        await proxy?.close();
        await http?.close();
      }
    });
  }
});
