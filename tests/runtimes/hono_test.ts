// runtimes/hono.ts over real sockets, on every runtime and every way of
// serving a Hono app there: @hono/node-server with injectWebSocket() (Node, and Deno
// and Bun through their node:http), Deno.serve(app.fetch) on Deno,
// Bun.serve({ fetch, websocket }) on Bun. Clients: the `ws` client, and raw
// TCP where the HTTP answer itself is what is checked.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { serve as serveNodeServer } from "@hono/node-server";
import { type Context, Hono } from "hono";
import { cors } from "hono/cors";
import { jwt, sign } from "hono/jwt";
import { logger } from "hono/logger";
import { secureHeaders } from "hono/secure-headers";
import { App, authenticate, CloseCode, heartbeat, runtime, subprotocols } from "../../mod.ts";
import {
  honoContext,
  injectWebSocket,
  upgradeWebSocket,
  type WebSocketRoute,
  websocket,
  type WSContext,
  type WSEvents,
} from "../../runtimes/hono.ts";
import { Client, delay, rawHandshake, until, upgradeRequest, within } from "./_helpers.ts";
import { encodeFrame } from "./_wsclient.ts";
import WebSocket from "ws";

const on = runtime();
const SECRET = "hono-test-secret";

interface Started {
  port: number;
  close(): Promise<void>;
}

interface HonoTarget {
  name: string;
  skip: string | false;
  /** Whether the upgrade waits for the app's final answer (injectWebSocket() does; on Deno and Bun the route upgrades). */
  finalAnswerDecides?: boolean;
  /** Whether the route's connections are framed by the runtime, which cannot ping (Deno.serve). */
  cannotPing?: boolean;
  start(app: Hono<any>): Promise<Started>;
}

const targets: HonoTarget[] = [
  {
    name: `@hono/node-server + injectWebSocket() on ${on}`,
    skip: false,
    finalAnswerDecides: true,
    async start(app) {
      let resolve!: (port: number) => void;
      const promise = new Promise<number>((done) => (resolve = done));
      const server = serveNodeServer({ fetch: app.fetch, port: 0, hostname: "127.0.0.1", overrideGlobalObjects: false }, (info) => resolve(info.port));
      const ws = injectWebSocket(server as Parameters<typeof injectWebSocket>[0], app, { handshakeTimeoutMs: 300 });
      const port = await within(promise, 5000, "node-server listening");
      return {
        port,
        async close() {
          await ws.close();
          (server as { closeAllConnections?(): void }).closeAllConnections?.();
          await new Promise((done) => server.close(done));
        },
      };
    },
  },
  {
    name: "Deno.serve(app.fetch)",
    skip: on !== "deno" && "Deno only",
    cannotPing: true,
    start(app) {
      const deno = (globalThis as any).Deno;
      let resolve!: (port: number) => void;
      const promise = new Promise<number>((done) => (resolve = done));
      const server = deno.serve({ port: 0, hostname: "127.0.0.1", onListen: (addr: { port: number }) => resolve(addr.port) }, app.fetch);
      return promise.then((port) => ({ port, close: () => server.shutdown() }));
    },
  },
  {
    name: "Bun.serve({ fetch: app.fetch, websocket })",
    skip: on !== "bun" && "Bun only",
    start(app) {
      const bun = (globalThis as any).Bun;
      const server = bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch, websocket });
      return Promise.resolve({ port: server.port, close: () => server.stop(true) });
    },
  },
];

/** What the events saw, per test. */
interface Seen {
  log: string[];
  errors: unknown[];
  closes: { code: number; reason: string; wasClean: boolean }[];
  /** What the routes' `onError` option got. */
  reports: { error: unknown; path: string }[];
  /** The broadcast route: every send to a peer, with its state then, and what threw. */
  broadcasts: { readyState: number; sent: boolean }[];
  broadcastErrors: unknown[];
  /** The broadcast route's peers that the server closed. */
  leaving: WSContext[];
}

function newSeen(): Seen {
  return { log: [], errors: [], closes: [], reports: [], broadcasts: [], broadcastErrors: [], leaving: [] };
}

type Env = { Variables: { jwtPayload: { sub: string } } };

function buildApp(seen: Seen, routes: WebSocketRoute<any, any>[]): Hono<Env> {
  const app = new Hono<Env>();
  const logged: string[] = seen.log;
  app.use(logger((line: string) => void logged.push(`logger ${line}`)));
  app.use("/cors/*", cors({ origin: "https://app.example" }));
  app.use("/after/*", async (c, next) => {
    await next();
    c.res.headers.set("x-after", "set after the route");
  });
  app.use("/secure/*", secureHeaders());
  app.use("/late/*", async (c, next) => {
    await next();
    c.res = new Response("turned down after the route", { status: 403 });
  });
  app.use("/private/*", jwt({ secret: SECRET, alg: "HS256" }));
  app.get("/health", (c) => c.text("ok"));

  const echoEvents = (c: Context<Env>): WSEvents => ({
    onOpen(_event, ws) {
      ws.send(`open ${new URL(c.req.url).pathname} ${ws.protocol ?? ""}`);
    },
    async onMessage(event, ws) {
      if (event.data === "throw") throw new Error("handler threw on purpose");
      if (event.data === "slow") await delay(30);
      if (typeof event.data === "string") ws.send(event.data);
      else ws.send(event.data as ArrayBuffer);
    },
    onClose(event) {
      seen.closes.push({ code: event.code, reason: event.reason, wasClean: event.wasClean });
    },
    onError(event) {
      seen.errors.push((event as ErrorEvent).error);
    },
  });
  const route = (r: WebSocketRoute<any, any>) => {
    routes.push(r);
    return r;
  };
  app.get("/ws", route(upgradeWebSocket(echoEvents)));
  app.get("/cors/ws", route(upgradeWebSocket(echoEvents)));
  app.get("/after/ws", route(upgradeWebSocket(echoEvents)));
  app.get("/secure/ws", route(upgradeWebSocket(echoEvents)));
  app.get("/late/ws", upgradeWebSocket(echoEvents));
  app.get("/hang/ws", () => new Promise<Response>(() => {}));
  app.get(
    "/private/ws",
    route(upgradeWebSocket((c: Context<Env>) => ({
      onOpen: (_event, ws) => void ws.send(`hello ${c.get("jwtPayload").sub}`),
    }))),
  );
  app.get("/preferred", route(upgradeWebSocket(echoEvents, { protocols: ["b.v1", "a.v1"] })));
  app.get(
    "/duplex-mw",
    route(upgradeWebSocket(echoEvents, {
      use: [
        authenticate((token) => token === "let-me-in"),
        subprotocols({ "chat.v1": [] }),
        heartbeat({ intervalMs: 60_000, timeoutMs: 10_000 }),
      ],
    })),
  );
  const duplexApp = new App().use({
    open(ctx) {
      const c = honoContext(ctx);
      ctx.send(`duplex app at ${c === undefined ? "?" : new URL(c.req.url).pathname}`);
    },
    message(ctx) {
      ctx.send(ctx.data);
    },
  });
  app.get("/app", route(upgradeWebSocket(duplexApp)));
  const topics = route(upgradeWebSocket(() => ({
    onOpen(_event, ws) {
      ws.raw.subscribe("news");
      ws.send("subscribed");
    },
    onMessage(event, ws) {
      ws.raw.publish("news", String(event.data));
    },
  })));
  app.get("/topics", topics);
  app.get("/inline", (c) => upgradeWebSocket(c, { onMessage: (event, ws) => void ws.send(`inline ${String(event.data)}`) }));

  // The docs' one-liner: the message goes back as it came, text or binary.
  app.get("/as-is", route(upgradeWebSocket(() => ({ onMessage: (e, ws) => ws.send(e.data) }))));
  app.get(
    "/as-is-blob",
    route(upgradeWebSocket(() => ({
      onOpen: (_e, ws) => void (ws.binaryType = "blob"),
      onMessage: (e, ws) => ws.send(e.data),
    }))),
  );

  // A room that broadcasts every message to every open WSContext; "leave"
  // makes the server close that peer.
  const peers = new Set<WSContext>();
  app.get(
    "/room",
    route(upgradeWebSocket(() => ({
      onOpen: (_e, ws) => void peers.add(ws),
      onMessage(e, ws) {
        if (e.data === "leave") {
          seen.leaving.push(ws);
          return ws.close(1000, "bye");
        }
        for (const peer of peers) {
          const readyState = peer.readyState;
          seen.broadcasts.push({ readyState, sent: peer.send(`room: ${String(e.data)}`) });
        }
      },
      onClose: (_e, ws) => void peers.delete(ws),
      onError: (e) => void seen.broadcastErrors.push((e as ErrorEvent).error),
    }))),
  );

  const report = (error: unknown, r: { path: string }) => void seen.reports.push({ error, path: r.path });
  app.get(
    "/factory-throws",
    route(upgradeWebSocket(() => {
      throw new Error("no events today");
    }, { onError: report })),
  );
  app.get(
    "/hook-throws/:id",
    route(upgradeWebSocket(() => ({
      onMessage() {
        throw new Error("message hook threw");
      },
    }), { onError: report })),
  );
  app.get("/beat", route(upgradeWebSocket(() => ({}), { use: [heartbeat({ intervalMs: 50, timeoutMs: 1000 })] })));
  return app;
}

for (const target of targets) {
  describe(`Hono: ${target.name}`, { skip: target.skip }, () => {
    let seen: Seen;
    let routes: WebSocketRoute<any, any>[];
    let server: Started;
    let url: string;
    const clients: Client[] = [];
    const open = async (path: string, protocols?: string | string[], headers: Record<string, string> = {}) => {
      const client = new Client(`${url}${path}`, protocols, { headers });
      clients.push(client);
      await within(new Promise((resolve, reject) => {
        client.ws.once("open", resolve);
        client.ws.once("error", reject);
      }), 3000, `open ${path}`);
      return client;
    };

    before(async () => {
      seen = newSeen();
      routes = [];
      server = await target.start(buildApp(seen, routes));
      url = `ws://127.0.0.1:${server.port}`;
    });
    after(async () => {
      for (const client of clients) client.ws.terminate();
      await Promise.all(routes.map((r) => r.close()));
      await server.close();
    });

    it("echoes text and binary through Hono's (event, ws) handlers, ArrayBuffer for binary", async () => {
      const client = await open("/ws");
      const [hello] = await client.messagesUntil(1);
      assert.equal(hello!.data.toString(), "open /ws ");
      assert.equal((await client.roundTrip("hi")).data.toString(), "hi");
      const bytes = new Uint8Array([0, 1, 2, 250, 255]);
      const back = await client.roundTrip(bytes);
      assert.equal(back.isBinary, true);
      assert.deepEqual(new Uint8Array(back.data), bytes);
    });

    it("runs one connection's async handlers in order", async () => {
      const client = await open("/ws");
      await client.messagesUntil(1);
      client.ws.send("slow");
      client.ws.send("fast");
      const got = await client.messagesUntil(3);
      assert.deepEqual(got.slice(1).map((m) => m.data.toString()), ["slow", "fast"]);
    });

    it("gives onClose the peer's code and reason", async () => {
      const client = await open("/ws");
      await client.messagesUntil(1);
      const before = seen.closes.length;
      client.ws.close(4000, "bye");
      await until(() => seen.closes.length > before, 3000, "onClose");
      assert.deepEqual(seen.closes.at(-1), { code: 4000, reason: "bye", wasClean: true });
    });

    it("closes with 1011 and calls onError when a handler throws; other connections go on", async () => {
      const bystander = await open("/ws");
      const client = await open("/ws");
      await client.messagesUntil(1);
      const errors = seen.errors.length;
      client.ws.send("throw");
      const closed = await within(client.closed, 3000, "close after throw");
      assert.equal(closed.code, CloseCode.InternalError);
      await until(() => seen.errors.length > errors, 3000, "onError");
      assert.match(String((seen.errors.at(-1) as Error).message), /threw on purpose/);
      assert.equal((await bystander.roundTrip("still here")).data.toString(), "still here");
    });

    it("answers a plain request to the route with 426, and serves other routes on the same port", async () => {
      const plain = await fetch(`http://127.0.0.1:${server.port}/ws`);
      assert.equal(plain.status, 426);
      assert.equal(plain.headers.get("upgrade"), "websocket");
      await plain.body?.cancel();
      const health = await fetch(`http://127.0.0.1:${server.port}/health`);
      assert.equal(await health.text(), "ok");
    });

    it("answers an upgrade to an unknown path with Hono's 404", async () => {
      const res = await rawHandshake(server.port, upgradeRequest({}, "GET /nowhere HTTP/1.1"));
      res.socket.destroy();
      assert.equal(res.status, 404);
    });

    it("runs Hono's logger for the upgrade", async () => {
      const client = await open("/ws?logged=1");
      await client.messagesUntil(1);
      await until(() => seen.log.some((line) => line.includes("/ws?logged=1")), 3000, "logger line");
    });

    it("upgrades behind CORS, and CORS headers set before the route reach the 101", async () => {
      const res = await rawHandshake(server.port, upgradeRequest({ Origin: "https://app.example" }, "GET /cors/ws HTTP/1.1"));
      res.socket.destroy();
      assert.equal(res.status, 101);
      assert.equal(res.headers["access-control-allow-origin"], "https://app.example");
      const client = await open("/cors/ws", undefined, { Origin: "https://app.example" });
      await client.messagesUntil(1);
      assert.equal((await client.roundTrip("through cors")).data.toString(), "through cors");
    });

    it("upgrades when middleware sets headers after the route, and behind secureHeaders", async () => {
      for (const path of ["/after/ws", "/secure/ws"]) {
        const client = await open(path);
        const [hello] = await client.messagesUntil(1);
        assert.equal(hello!.data.toString(), `open ${path} `);
      }
    });

    it("does not upgrade when middleware after the route turns the request down", {
      skip: !target.finalAnswerDecides && "Deno.serve and Bun.serve upgrade inside the route, before later middleware runs",
    }, async () => {
      const res = await rawHandshake(server.port, upgradeRequest({}, "GET /late/ws HTTP/1.1"));
      res.socket.destroy();
      assert.equal(res.status, 403);
      assert.equal(res.body, "turned down after the route");
    });

    it("answers 503 when the app does not answer an upgrade within handshakeTimeoutMs", {
      skip: !target.finalAnswerDecides && "the runtime's own HTTP server owns a request that its handler never answers",
    }, async () => {
      const started = Date.now();
      const res = await rawHandshake(server.port, upgradeRequest({}, "GET /hang/ws HTTP/1.1"));
      res.socket.destroy();
      assert.equal(res.status, 503);
      assert.ok(Date.now() - started >= 250, "not before the timeout");
    });

    it("refuses the upgrade with JWT's 401 when the token is missing, and hands the payload to the events when valid", async () => {
      const refused = await rawHandshake(server.port, upgradeRequest({}, "GET /private/ws HTTP/1.1"));
      refused.socket.destroy();
      assert.equal(refused.status, 401);
      const token = await sign({ sub: "ada" }, SECRET, "HS256");
      const client = await open("/private/ws", undefined, { Authorization: `Bearer ${token}` });
      const [hello] = await client.messagesUntil(1);
      assert.equal(hello!.data.toString(), "hello ada");
    });

    it("never echoes the client's first subprotocol: none by default, the server's preference with `protocols`", async () => {
      const res = await rawHandshake(server.port, upgradeRequest({ "Sec-WebSocket-Protocol": "x.v1, y.v1" }, "GET /ws HTTP/1.1"));
      res.socket.destroy();
      assert.equal(res.status, 101);
      assert.equal(res.headers["sec-websocket-protocol"], undefined);
      const preferred = await open("/preferred", ["a.v1", "b.v1"]);
      assert.equal(preferred.ws.protocol, "b.v1");
    });

    it("answers no subprotocol to a client that offers chat.v1 to a route without `protocols`", async () => {
      // Raw TCP: the `ws` client fails a handshake that answers no subprotocol to its offer.
      const res = await rawHandshake(server.port, upgradeRequest({ "Sec-WebSocket-Protocol": "chat.v1" }, "GET /ws HTTP/1.1"));
      try {
        assert.equal(res.status, 101);
        assert.equal(res.headers["sec-websocket-protocol"], undefined);
        // The route's first message says what its ws.protocol is: empty too.
        let bytes = res.rest;
        res.socket.on("data", (chunk: Buffer) => void (bytes = Buffer.concat([bytes, chunk])));
        res.socket.resume();
        const hello = "open /ws ";
        await until(() => bytes.length >= 2 + hello.length, 3000, "the route's first message");
        assert.deepEqual([bytes[0], bytes[1]], [0x81, hello.length]);
        assert.equal(bytes.subarray(2, 2 + hello.length).toString(), hello);
      } finally {
        res.socket.destroy();
      }
    });

    it("echoes with ws.send(e.data): text as text, binary as binary, with binaryType arraybuffer and blob", async () => {
      const bytes = new Uint8Array([0, 1, 2, 128, 255]);
      for (const path of ["/as-is", "/as-is-blob"]) {
        const client = await open(path);
        const text = await client.roundTrip("héllo");
        assert.equal(text.isBinary, false, path);
        assert.equal(text.data.toString(), "héllo");
        const binary = await client.roundTrip(bytes);
        assert.equal(binary.isBinary, true, path);
        assert.deepEqual(new Uint8Array(binary.data), bytes);
      }
    });

    it("broadcasts while a peer is closing: no throw, the sender stays open, the broadcast arrives", async () => {
      const sender = await open("/room");
      const listener = await open("/room");
      // A peer that never answers the server's close frame: it stays closing.
      const leaving = await rawHandshake(server.port, upgradeRequest({}, "GET /room HTTP/1.1"));
      assert.equal(leaving.status, 101);
      leaving.socket.resume(); // read (and ignore) what comes; never answer
      leaving.socket.write(encodeFrame({ opcode: 1, payload: "leave" }));
      await until(() => seen.leaving.length === 1, 3000, "the server closed the leaving peer");
      const before = seen.broadcasts.length;
      sender.ws.send("hello all");
      const [got] = await within(
        (async () => (await listener.messagesUntil(1)))(),
        3000,
        "the broadcast",
      );
      assert.equal(got!.data.toString(), "room: hello all");
      assert.equal((await sender.messagesUntil(1))[0]!.data.toString(), "room: hello all");
      const sends = seen.broadcasts.slice(before);
      for (const send of sends) {
        assert.equal(send.sent, send.readyState === 1, `a peer in state ${send.readyState} was sent to: ${send.sent}`);
      }
      if (target.finalAnswerDecides) {
        // Where Duplex frames the bytes, the leaving peer waits for the close frame's answer: it was met.
        assert.ok(sends.some((send) => send.readyState === 2), "the broadcast met the closing peer");
      }
      assert.deepEqual(seen.broadcastErrors, []);
      assert.equal(sender.ws.readyState, WebSocket.OPEN, "the sender is not closed");
      assert.equal((await sender.roundTrip("still here")).data.toString(), "room: still here");
      leaving.socket.destroy();
    });

    it("names the route's path when its events factory or a handler throws", async () => {
      const refused = await rawHandshake(server.port, upgradeRequest({}, "GET /factory-throws HTTP/1.1"));
      refused.socket.destroy();
      assert.equal(refused.status, 500);
      await until(() => seen.reports.length >= 1, 3000, "the factory's error");
      assert.equal(seen.reports[0]!.path, "/factory-throws");
      assert.match(String((seen.reports[0]!.error as Error).message), /no events today/);
      const client = await open("/hook-throws/7");
      client.ws.send("boom");
      assert.equal((await within(client.closed, 3000, "1011")).code, CloseCode.InternalError);
      await until(() => seen.reports.length >= 2, 3000, "the handler's error");
      assert.equal(seen.reports[1]!.path, "/hook-throws/:id");
      assert.match(String((seen.reports[1]!.error as Error).message), /message hook threw/);
    });

    it(target.cannotPing ? "says once, at start, that heartbeat() cannot ping here" : "pings with heartbeat() from `use`", async () => {
      const warn = console.warn;
      const warnings: string[] = [];
      console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(" "));
      try {
        const first = await open("/beat");
        const second = await open("/beat");
        if (target.cannotPing) {
          assert.equal(warnings.length, 1, warnings.join("\n"));
          assert.match(warnings[0]!, /route \/beat: heartbeat\(\) cannot ping on Deno\.serve/);
          assert.match(warnings[0]!, /idleTimeoutMs/);
        } else {
          let pings = 0;
          first.ws.on("ping", () => pings++);
          await until(() => pings >= 2, 3000, "two pings");
          assert.deepEqual(warnings, []);
        }
        second.ws.close();
      } finally {
        console.warn = warn;
      }
    });

    it("runs Duplex middleware from `use` before the events: 401 and 400 before any 101", async () => {
      const noToken = await rawHandshake(server.port, upgradeRequest({ "Sec-WebSocket-Protocol": "chat.v1" }, "GET /duplex-mw HTTP/1.1"));
      noToken.socket.destroy();
      assert.equal(noToken.status, 401);
      assert.match(noToken.headers["www-authenticate"] ?? "", /^Bearer/);
      const noProtocol = await rawHandshake(server.port, upgradeRequest({ Authorization: "Bearer let-me-in" }, "GET /duplex-mw HTTP/1.1"));
      noProtocol.socket.destroy();
      assert.equal(noProtocol.status, 400);
      const client = await open("/duplex-mw", "chat.v1", { Authorization: "Bearer let-me-in" });
      assert.equal(client.ws.protocol, "chat.v1");
      assert.equal((await client.messagesUntil(1))[0]!.data.toString(), "open /duplex-mw chat.v1");
      assert.equal((await client.roundTrip("through the pipeline")).data.toString(), "through the pipeline");
    });

    it("serves a Duplex App on a route, with the Hono context reachable from it", async () => {
      const client = await open("/app");
      assert.equal((await client.messagesUntil(1))[0]!.data.toString(), "duplex app at /app");
      assert.equal((await client.roundTrip("echo")).data.toString(), "echo");
    });

    it("gives ws.raw Duplex's pub/sub topics", async () => {
      const a = await open("/topics");
      const b = await open("/topics");
      await a.messagesUntil(1);
      await b.messagesUntil(1);
      a.ws.send("breaking");
      const got = await b.messagesUntil(2);
      assert.equal(got[1]!.data.toString(), "breaking");
      await delay(30);
      assert.equal(a.messages.length, 1, "a publisher does not hear itself");
    });

    it("supports Hono's inline form", async () => {
      const client = await open("/inline");
      assert.equal((await client.roundTrip("x")).data.toString(), "inline x");
    });

    it("closes a route's connections with 1001 on route.close()", async () => {
      const client = await open("/app");
      await client.messagesUntil(1);
      const appRoute = routes[7]!; // the /app route
      assert.ok(appRoute.connections >= 1);
      await within(appRoute.close(), 3000, "route close");
      const closed = await within(client.closed, 3000, "client close");
      assert.equal(closed.code, CloseCode.GoingAway);
      assert.equal(appRoute.connections, 0);
    });
  });
}

describe("Hono on Bun.serve without the websocket object", { skip: on !== "bun" && "Bun only" }, () => {
  it("says to import websocket from @duplex/ws/hono and pass it to Bun.serve", async () => {
    const reports: unknown[] = [];
    const app = new Hono();
    const route = upgradeWebSocket(() => ({}), { onError: (error) => void reports.push(error) });
    app.get("/ws", route);
    const bun = (globalThis as any).Bun;
    const server = bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch });
    try {
      const res = await rawHandshake(server.port, upgradeRequest({}, "GET /ws HTTP/1.1"));
      res.socket.destroy();
      assert.equal(res.status, 500);
      await until(() => reports.length === 1, 3000, "the error");
      const error = reports[0] as Error & { code?: string };
      assert.equal(error.code, "ERR_NO_WEBSOCKET_HANDLER");
      assert.equal(
        error.message,
        'Bun.serve has no "websocket" object: import { websocket } from "@duplex/ws/hono" and pass it, ' +
          "Bun.serve({ fetch: app.fetch, websocket }) (or export default { fetch: app.fetch, websocket })",
      );
    } finally {
      await route.close();
      server.stop(true);
    }
  });
});

// permessage-deflate on a Hono route: Duplex compresses where it frames the
// bytes (injectWebSocket() on @hono/node-server); on Deno.serve and Bun.serve the
// runtime frames them, and the offer is declined.
for (const target of targets) {
  describe(`Hono with permessage-deflate: ${target.name}`, { skip: target.skip }, () => {
    it(target.finalAnswerDecides ? "negotiates it and echoes compressed messages" : "declines it (native path)", async () => {
      const agreed: unknown[] = [];
      const app = new Hono();
      const route = upgradeWebSocket(() => ({
        onOpen: (_e, ws) => void agreed.push(ws.raw?.deflate),
        onMessage: (e, ws) => void ws.send(String(e.data), { compress: String(e.data) !== "plain" }),
      }), { perMessageDeflate: { threshold: 0 } });
      app.get("/ws", route);
      const server = await target.start(app);
      try {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`, { perMessageDeflate: { threshold: 0 } } as never);
        const got: string[] = [];
        ws.on("message", (data: Buffer) => void got.push(data.toString()));
        await within(new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject))), 5000, "open");
        const big = "compress me ".repeat(10_000);
        for (const m of ["hello", big, "plain"]) ws.send(m);
        await until(() => got.length === 3, 5000, "three echoes");
        assert.deepEqual(got, ["hello", big, "plain"]);
        if (target.finalAnswerDecides) {
          assert.match(ws.extensions, /^permessage-deflate/);
          assert.deepEqual(agreed, [{ serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }]);
        } else {
          assert.equal(ws.extensions, "");
          assert.deepEqual(agreed, [undefined]);
        }
        ws.close(1000);
        await within(new Promise((resolve) => ws.once("close", resolve)), 5000, "close");
      } finally {
        await route.close();
        await server.close();
      }
    });
  });
}
