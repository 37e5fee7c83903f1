// The app pipeline (plugins/) over real sockets: the same black-box style as
// _suite.ts, registered for every adapter and path in suite_test.ts. Each
// server runs an `App` through `target.start()`; the tests talk to it only
// through sockets (the `ws` client and raw TCP), so what is checked is what a
// client sees: HTTP refusals before the 101, the 101's headers and
// subprotocol, messages, close codes, pings and dropped connections.
//
// Where a native path cannot do what the raw engine does, the test branches
// on the target's named `differences` (see _suite.ts), never skips.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import type { AppOptions, ListenOptions, Middleware, Peer, Server } from "../../mod.ts";
import {
  allowOrigins,
  App,
  authenticate,
  authenticateWithin,
  CloseError,
  fromBearer,
  fromProtocol,
  fromQuery,
  heartbeat,
  json,
  Router,
  subprotocols,
} from "../../mod.ts";
import { decodeServerFrames, frame } from "../core/_util.ts";
import { Client, delay, type RawResponse, rawHandshake, until, upgradeRequest, within } from "./_helpers.ts";
import type { Difference, Target } from "./_suite.ts";

/** Behaviours where a native path differs from the raw engine, beyond those of _suite.ts. */
export type AppDifference =
  | Difference
  /**
   * Deno: a message that arrives once the server has called close() makes
   * the runtime drop TCP at once instead of waiting for the peer's close
   * frame; when that message was read together with the one that led to the
   * close, the close frame is never sent and the peer sees 1006.
   */
  | "dropsOnMessageAfterClose";

/** A {@linkcode Target} that may also declare the app suite's differences. */
export interface AppTarget extends Target {
  /** This path's documented differences from the raw engine, with their reasons. */
  differences?: Partial<Record<AppDifference, string>>;
}

/** Echoes every message through `ctx.send` (so through the app's `send` middleware). */
const echo: Middleware = { message: (ctx) => void ctx.send(ctx.data) };

/** One close as the app's `close` middleware heard it. */
interface Heard {
  url: string;
  code: number;
  reason: string;
  wasClean: boolean;
}

/** `close` middleware that records what the app heard, by request URL. */
function recordCloses(into: Heard[]): Middleware {
  return {
    close(ctx, next) {
      into.push({ url: ctx.request.url, code: ctx.code, reason: ctx.reason, wasClean: ctx.wasClean });
      return next();
    },
  };
}

/** The closes heard for one URL, without it. */
function closesOf(heard: Heard[], url: string): Omit<Heard, "url">[] {
  return heard.filter((h) => h.url === url).map(({ url: _url, ...rest }) => rest);
}

/**
 * A refused handshake, read exactly: status, headers and the whole body
 * (`Content-Length` bytes, however many reads they take). Closes the socket.
 */
async function refusal(port: number, request: string): Promise<RawResponse> {
  const response = await rawHandshake(port, request);
  const length = Number(response.headers["content-length"]);
  assert.ok(Number.isInteger(length), `a Content-Length: ${JSON.stringify(response.headers)}`);
  let body: Buffer = Buffer.concat([Buffer.from(response.body), response.rest]);
  if (body.length < length) {
    const socket = response.socket;
    body = await within(
      new Promise<Buffer>((resolve) => {
        const onData = (chunk: Buffer) => {
          body = Buffer.concat([body, chunk]);
          if (body.length >= length) {
            socket.off("data", onData);
            resolve(body);
          }
        };
        socket.on("data", onData);
        socket.resume();
      }),
      3000,
      "the response body",
    );
  }
  response.socket.destroy();
  assert.equal(body.length, length, "nothing after the body");
  return { ...response, body: body.toString("utf8"), rest: Buffer.alloc(0) };
}

/** A GET request line for `path`, for `upgradeRequest`. */
const get = (path: string) => `GET ${path} HTTP/1.1`;

/** Everything a raw socket receives from now on, and when it closes. */
function collect(socket: Socket, rest: Buffer = Buffer.alloc(0)): { data: () => Buffer; closed: Promise<number> } {
  const chunks: Buffer[] = [rest];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.on("error", () => {}); // a reset is a close too
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now())));
  socket.resume();
  return { data: () => Buffer.concat(chunks), closed };
}

/** The complete server frames in `data` (a partial last frame is left out). */
function framesOf(data: Buffer): ReturnType<typeof decodeServerFrames> {
  for (let end = data.length; end >= 0; end--) {
    try {
      return decodeServerFrames(new Uint8Array(data.subarray(0, end)));
    } catch {
      // A partial frame at the end: try a shorter prefix.
    }
  }
  return [];
}

/** Waits for a `ws` client's 101 response and open; rejects like `Client.open`. */
async function openWithUpgrade(
  url: string,
  protocols?: string | string[],
): Promise<{ client: Client; headers: Record<string, string | string[] | undefined> }> {
  const client = new Client(url, protocols);
  const headers = await within(
    new Promise<Record<string, string | string[] | undefined>>((resolve, reject) => {
      let headers: Record<string, string | string[] | undefined> = {};
      client.ws.once("upgrade", (res) => void (headers = res.headers));
      client.ws.once("open", () => resolve(headers));
      client.ws.once("error", reject);
      client.ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    }),
    3000,
    "websocket open",
  );
  return { client, headers };
}

/** What the pub/sub test app keeps per connection, from the URL. */
interface PubSubState {
  /** `?sub=` (repeatable): the topics the connection subscribes to on open. */
  topics: string[];
  /** `?pub=`: the topic its messages are published to, as they came (text or binary). */
  pub: string | null;
  /** `?self`: it gets its own publishes too. */
  self: boolean;
}

/** An app that subscribes each connection to the topics of its URL and publishes what it sends. */
function pubsubApp(options: AppOptions = {}): App {
  const app = new App<PubSubState>(options).use({
    upgrade(ctx, next) {
      ctx.state = { topics: ctx.query.getAll("sub"), pub: ctx.query.get("pub"), self: ctx.query.has("self") };
      return next();
    },
    open(ctx) {
      for (const topic of ctx.state.topics) ctx.subscribe(topic);
    },
    message(ctx) {
      if (ctx.state.pub !== null) ctx.publish(ctx.state.pub, ctx.data, { self: ctx.state.self });
    },
  });
  return app as unknown as App;
}

/** One server frame, as `scanFrames` reads it. */
interface ScannedFrame {
  opcode: number;
  payload: Buffer;
}

/**
 * The complete server frames (unmasked) at the start of `data`, read
 * header by header: linear, for megabytes of frames. A partial last frame
 * is left out.
 */
function scanFrames(data: Buffer): ScannedFrame[] {
  const frames: ScannedFrame[] = [];
  let pos = 0;
  while (pos + 2 <= data.length) {
    let length = data[pos + 1]! & 0x7f;
    let header = 2;
    if (length === 126) {
      if (pos + 4 > data.length) break;
      length = data.readUInt16BE(pos + 2);
      header = 4;
    } else if (length === 127) {
      if (pos + 10 > data.length) break;
      length = Number(data.readBigUInt64BE(pos + 2));
      header = 10;
    }
    if (pos + header + length > data.length) break;
    frames.push({ opcode: data[pos]! & 0x0f, payload: data.subarray(pos + header, pos + header + length) });
    pos += header + length;
  }
  return frames;
}

/** A binary message of `size` bytes that carries its sequence number `n` in its first 4 bytes. */
function numbered(n: number, size: number): Buffer {
  const payload = Buffer.alloc(size, n & 0xff);
  payload.writeUInt32BE(n, 0);
  return payload;
}

/** Registers the app suite for `target`. */
export function runAppSuite(target: AppTarget): void {
  const differs = (d: AppDifference) => target.differences?.[d] !== undefined;
  const why = (d: AppDifference) => target.differences?.[d];
  const start = (app: App, options: ListenOptions = {}) =>
    target.start(app, { port: 0, hostname: "127.0.0.1", ...options });

  /** A server for one describe: started in `before`, closed in `after` with no connection left. */
  function serverFor(build: () => App, options: ListenOptions = {}): () => Server {
    let server: Server | undefined;
    before(async () => {
      server = await start(build(), options);
    });
    after(async () => {
      await server?.close();
      assert.equal(server?.connections, 0);
    });
    return () => server!;
  }

  describe(`${target.name}: app upgrade refusals`, { skip: target.skip }, () => {
    const server = serverFor(() =>
      new App().use(
        new Router()
          .route("/secure", authenticate((token) => token === "s3cret", { from: [fromBearer(), fromQuery()] }), echo)
          .route("/origin", allowOrigins(["https://app.example.com"]), echo)
          .route("/proto", subprotocols({ v2: echo, v1: echo }))
          .route("/slow", { upgrade: (ctx) => ctx.reject(429, "slow down", { "Retry-After": "5" }) }, echo)
          .route("/rooms/:id", echo),
      )
    );

    it("answers 401 with WWW-Authenticate when the token is missing", async () => {
      const response = await refusal(server().port, upgradeRequest({}, get("/secure")));
      assert.equal(response.status, 401);
      assert.equal(response.headers["www-authenticate"], 'Bearer realm="duplex"');
      assert.match(response.headers["content-type"] ?? "", /^text\/plain/);
      assert.equal(response.body, "Unauthorized: missing credentials");
    });

    it("answers 401 to a wrong token, from the bearer header or the query", async () => {
      for (
        const request of [
          upgradeRequest({ Authorization: "Bearer nope" }, get("/secure")),
          upgradeRequest({}, get("/secure?token=nope")),
        ]
      ) {
        const response = await refusal(server().port, request);
        assert.equal(response.status, 401);
        assert.equal(response.headers["www-authenticate"], 'Bearer realm="duplex", error="invalid_token"');
        assert.equal(response.body, "Unauthorized: invalid credentials");
      }
      await assert.rejects(Client.open(`${server().url}/secure`, undefined, { headers: { Authorization: "Bearer nope" } }), /HTTP 401/);
    });

    it("opens with the right token, from the bearer header or the query", async () => {
      const bearer = await Client.open(`${server().url}/secure`, undefined, { headers: { Authorization: "Bearer s3cret" } });
      const query = await Client.open(`${server().url}/secure?token=s3cret`);
      for (const client of [bearer, query]) {
        assert.equal((await client.roundTrip("in")).data.toString(), "in");
        client.ws.close();
        await within(client.closed);
      }
    });

    it("answers 403 to an Origin outside the allow-list, and opens for one inside it", async () => {
      const response = await refusal(server().port, upgradeRequest({ Origin: "https://evil.example" }, get("/origin")));
      assert.equal(response.status, 403);
      assert.equal(response.body, "Forbidden: origin https://evil.example is not allowed");
      const allowed = await Client.open(`${server().url}/origin`, undefined, { headers: { Origin: "https://APP.example.com" } });
      assert.equal((await allowed.roundTrip("hi")).data.toString(), "hi");
      allowed.ws.close();
      await within(allowed.closed);
    });

    it("answers 404 with a body when no route matches, and 400 for a bad parameter", async () => {
      const missing = await refusal(server().port, upgradeRequest({}, get("/nowhere/else?x=1")));
      assert.equal(missing.status, 404);
      assert.equal(missing.body, "Not Found: no WebSocket route for /nowhere/else");
      const bad = await refusal(server().port, upgradeRequest({}, get("/rooms/%E0%A4%A")));
      assert.equal(bad.status, 400);
      assert.equal(bad.body, 'Bad Request: invalid percent-encoding in "%E0%A4%A"');
    });

    it("answers 400 naming the subprotocols when the client offers none of them", async () => {
      const other = await refusal(server().port, upgradeRequest({ "Sec-WebSocket-Protocol": "mqtt, stomp" }, get("/proto")));
      assert.equal(other.status, 400);
      assert.equal(other.body, "Bad Request: this endpoint speaks the subprotocols v2, v1; the client offered mqtt, stomp");
      const none = await refusal(server().port, upgradeRequest({}, get("/proto")));
      assert.equal(none.status, 400);
      assert.equal(none.body, "Bad Request: this endpoint speaks the subprotocols v2, v1; the client offered none");
    });

    it("answers a middleware's ctx.reject() with its status, headers and body", async () => {
      const response = await refusal(server().port, upgradeRequest({}, get("/slow")));
      assert.equal(response.status, 429);
      assert.equal(response.headers["retry-after"], "5");
      assert.equal(response.body, "slow down");
      await assert.rejects(Client.open(`${server().url}/slow`), /HTTP 429/);
    });
  });

  describe(`${target.name}: app accepted upgrades`, { skip: target.skip }, () => {
    const server = serverFor(() =>
      new App().use(
        new Router()
          .route("/rooms/:id", { open: (ctx) => void ctx.send(`room ${ctx.params.id}`) })
          .route("/files/*", { open: (ctx) => void ctx.send(`file ${ctx.params["*"]}`) })
          .route("/pref", subprotocols({ v2: { open: (ctx) => void ctx.send(`v2:${ctx.protocol}`) }, v1: echo }))
          .route("/headers", {
            upgrade(ctx, next) {
              ctx.responseHeaders.set("X-Room", ctx.query.get("room") ?? "none");
              ctx.responseHeaders.append("Set-Cookie", "a=1; Path=/");
              ctx.responseHeaders.append("Set-Cookie", "b=2; Path=/");
              return next();
            },
          }, echo)
          .route(
            "/token",
            authenticate((token) => token === "abc123", { from: [fromProtocol()] }),
            subprotocols({ "chat.v1": { open: (ctx) => void ctx.send(`chat:${ctx.protocol}`) } }),
          ),
      )
    );

    it("hands the route's parameters, URL-decoded, to the connection's handlers", async () => {
      for (const [path, expected] of [["/rooms/lobby", "room lobby"], ["/rooms/a%20b?x=1", "room a b"], ["/files/a/b.txt", "file a/b.txt"]]) {
        const client = await Client.open(`${server().url}${path}`);
        assert.equal((await client.messagesUntil(1))[0]!.data.toString(), expected);
        client.ws.close();
        await within(client.closed);
      }
    });

    it("chooses the server's preferred subprotocol among those offered", async () => {
      const client = await Client.open(`${server().url}/pref`, ["v1", "v2"]);
      assert.equal(client.ws.protocol, "v2");
      assert.equal((await client.messagesUntil(1))[0]!.data.toString(), "v2:v2");
      client.ws.close();
      await within(client.closed);
      const raw = await rawHandshake(server().port, upgradeRequest({ "Sec-WebSocket-Protocol": "v1" }, get("/pref")));
      assert.equal(raw.status, 101);
      assert.equal(raw.headers["sec-websocket-protocol"], "v1");
      raw.socket.destroy();
    });

    it("puts the headers set in the upgrade phase on the 101, Set-Cookie twice", async () => {
      const raw = await rawHandshake(server().port, upgradeRequest({}, get("/headers?room=blue")));
      assert.equal(raw.status, 101);
      assert.equal(raw.headers["x-room"], "blue");
      assert.equal(raw.headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
      raw.socket.destroy();
      const { client, headers } = await openWithUpgrade(`${server().url}/headers?room=red`);
      assert.equal(headers["x-room"], "red");
      assert.deepEqual(headers["set-cookie"], ["a=1; Path=/", "b=2; Path=/"]);
      assert.equal((await client.roundTrip("after")).data.toString(), "after");
      client.ws.close();
      await within(client.closed);
    });

    it("takes a token from Sec-WebSocket-Protocol and answers with chat.v1, never the token", async () => {
      const client = await Client.open(`${server().url}/token`, ["bearer.abc123", "chat.v1"]);
      assert.equal(client.ws.protocol, "chat.v1");
      assert.equal((await client.messagesUntil(1))[0]!.data.toString(), "chat:chat.v1");
      client.ws.close();
      await within(client.closed);
      const wrong = await refusal(server().port, upgradeRequest({ "Sec-WebSocket-Protocol": "chat.v1, bearer.nope" }, get("/token")));
      assert.equal(wrong.status, 401);
      const missing = await refusal(server().port, upgradeRequest({ "Sec-WebSocket-Protocol": "chat.v1" }, get("/token")));
      assert.equal(missing.status, 401);
      assert.equal(missing.body, "Unauthorized: missing credentials");
    });
  });

  describe(`${target.name}: app connection phase`, { skip: target.skip }, () => {
    const errors: { message: string; type: string; url: string }[] = [];
    const events: string[] = [];
    const server = serverFor(() =>
      new App()
        .onError((error, ctx) => void errors.push({ message: (error as Error).message, type: ctx.type, url: ctx.request.url }))
        .use(
          new Router()
            .route("/upper", {
              message(ctx, next) {
                if (typeof ctx.data === "string") ctx.data = ctx.data.toUpperCase();
                return next();
              },
            }, echo)
            .route("/send", {
              send(ctx, next) {
                if (typeof ctx.data !== "string") return next();
                if (ctx.data.startsWith("drop:")) return; // never framed
                ctx.data = `[${ctx.data}]`;
                return next();
              },
            }, echo)
            .route(
              "/json",
              json<{ echo: { type: "echo"; text: string } }>({
                echo: (ctx, message) => void ctx.send(JSON.stringify({ type: "echoed", text: message.text })),
              }),
            )
            .route("/boom", {
              message(ctx) {
                if (ctx.data === "boom") throw new Error("boom");
                ctx.send(ctx.data);
              },
            })
            .route("/custom", {
              message() {
                throw new CloseError(4001, "custom");
              },
            })
            .route("/events", (ctx, next) => {
              events.push(ctx.type);
              return next();
            }, echo),
        )
    );

    it("runs message middleware that transforms what the handler gets", async () => {
      const client = await Client.open(`${server().url}/upper`);
      assert.equal((await client.roundTrip("shout")).data.toString(), "SHOUT");
      const binary = await client.roundTrip(Buffer.from([1, 2, 3]));
      assert.equal(binary.isBinary, true, "binary passes untouched");
      assert.deepEqual([...binary.data], [1, 2, 3]);
      client.ws.close();
      await within(client.closed);
    });

    it("runs send middleware that drops some messages and transforms the others", async () => {
      const client = await Client.open(`${server().url}/send`);
      for (const m of ["one", "drop:two", "three", "drop:four", "end"]) client.ws.send(m);
      await client.messagesUntil(3);
      await delay(100); // anything dropped would have come before "end" anyway
      assert.deepEqual(client.messages.map((m) => m.data.toString()), ["[one]", "[three]", "[end]"]);
      client.ws.close();
      await within(client.closed);
    });

    it("dispatches JSON by type, and closes with 1007 for invalid JSON", async () => {
      const client = await Client.open(`${server().url}/json`);
      const reply = await client.roundTrip(JSON.stringify({ type: "echo", text: "héllo" }));
      assert.equal(reply.isBinary, false);
      assert.deepEqual(JSON.parse(reply.data.toString()), { type: "echoed", text: "héllo" });
      client.ws.send("{not json");
      assert.deepEqual(await within(client.closed), { code: 1007, reason: "Invalid JSON" });
      assert.equal(client.messages.length, 1);
    });

    it("closes a JSON connection with 1003 for a binary message and for an unknown type", async () => {
      const binary = await Client.open(`${server().url}/json`);
      binary.ws.send(Buffer.from("{}"));
      assert.deepEqual(await within(binary.closed), { code: 1003, reason: "Expected a JSON text message" });
      const unknown = await Client.open(`${server().url}/json`);
      unknown.ws.send(JSON.stringify({ type: "dance" }));
      assert.deepEqual(await within(unknown.closed), { code: 1003, reason: "Unknown message type: dance" });
      const untyped = await Client.open(`${server().url}/json`);
      untyped.ws.send("[1, 2]");
      assert.deepEqual(await within(untyped.closed), { code: 1007, reason: "Expected a JSON object" });
    });

    it("closes only the failing connection with 1011 when a handler throws, and calls onError once", async () => {
      errors.length = 0;
      const victim = await Client.open(`${server().url}/boom`);
      const bystander = await Client.open(`${server().url}/boom`);
      assert.equal((await bystander.roundTrip("before")).data.toString(), "before");
      victim.ws.send("boom");
      assert.deepEqual(await within(victim.closed), { code: 1011, reason: "Internal error" });
      assert.equal((await bystander.roundTrip("still here")).data.toString(), "still here");
      await delay(50);
      assert.deepEqual(errors, [{ message: "boom", type: "message", url: "/boom" }]);
      bystander.ws.close();
      await within(bystander.closed);
    });

    it("closes with a CloseError's own code and reason, without calling onError", async () => {
      errors.length = 0;
      const client = await Client.open(`${server().url}/custom`);
      client.ws.send("anything");
      assert.deepEqual(await within(client.closed), { code: 4001, reason: "custom" });
      assert.deepEqual(errors, []);
    });

    it("runs function middleware on every event of the connection, in order", async () => {
      events.length = 0;
      const client = await Client.open(`${server().url}/events`);
      assert.equal((await client.roundTrip("ping me")).data.toString(), "ping me");
      client.ws.close(1000);
      await within(client.closed);
      await until(() => events.includes("close"), 3000, "the close event");
      assert.deepEqual(events, ["upgrade", "open", "message", "send", "close"]);
    });
  });

  describe(`${target.name}: app shutdown`, { skip: target.skip }, () => {
    let server: Server | undefined;
    after(async () => {
      if (server === undefined) return; // the test did not run
      await server.close();
      assert.equal(server.connections, 0);
    });

    it("closes every client with 1001 on server.close(), and the close middleware hears each", async () => {
      const heard: Heard[] = [];
      server = await start(new App().use(recordCloses(heard), echo), { closeTimeoutMs: 200 });
      const clients = await Promise.all(["/a", "/b"].map((path) => Client.open(`${server!.url}${path}`)));
      const silent = await rawHandshake(server.port, upgradeRequest({}, get("/silent")));
      assert.equal(silent.status, 101);
      silent.socket.resume(); // reads, never answers the close
      silent.socket.on("error", () => {});
      assert.equal(server.connections, 3);
      await within(server.close(), 3000, "server.close");
      for (const client of clients) {
        assert.deepEqual(await within(client.closed), { code: 1001, reason: "Server shutting down" });
      }
      assert.equal(server.connections, 0);
      await until(() => heard.length === 3, 3000, "three close reports");
      for (const url of ["/a", "/b"]) {
        assert.deepEqual(closesOf(heard, url), [{ code: 1001, reason: "Server shutting down", wasClean: true }], "ws echoes");
      }
      if (differs("closeReportedAtOnce")) {
        assert.deepEqual(
          closesOf(heard, "/silent"),
          [{ code: 1001, reason: "Server shutting down", wasClean: true }],
          why("closeReportedAtOnce"),
        );
      } else {
        assert.deepEqual(closesOf(heard, "/silent"), [{ code: 1006, reason: "", wasClean: false }], "dropped after the close timeout");
      }
      silent.socket.destroy();
    });
  });

  describe(`${target.name}: app first-message auth`, { skip: target.skip }, () => {
    const server = serverFor(() =>
      new App().use(
        authenticateWithin({ timeoutMs: 200, verify: (data) => data === "let me in" }),
        echo,
      )
    );

    it("closes a silent client with 1008 once the deadline passes", async () => {
      const client = await Client.open(server().url);
      const opened = Date.now();
      assert.deepEqual(await within(client.closed), { code: 1008, reason: "Authentication timeout" });
      const elapsed = Date.now() - opened;
      assert.ok(elapsed >= 150, `closed after ${elapsed} ms, before the 200 ms deadline`);
      assert.deepEqual(client.messages, []);
    });

    it("closes with 1008 when the first message is wrong", async () => {
      const client = await Client.open(server().url);
      client.ws.send("let me out");
      assert.deepEqual(await within(client.closed), { code: 1008, reason: "Authentication failed" });
      assert.deepEqual(client.messages, []);
    });

    it("lets nothing sent after a wrong first message reach the handler", async () => {
      const client = await Client.open(server().url);
      client.ws.send("let me out");
      client.ws.send("hello"); // arrives once the server has closed
      const closed = await within(client.closed);
      if (differs("dropsOnMessageAfterClose")) {
        assert.ok(
          closed.code === 1008 || closed.code === 1006,
          `${why("dropsOnMessageAfterClose")}: got ${JSON.stringify(closed)}`,
        );
      } else {
        assert.deepEqual(closed, { code: 1008, reason: "Authentication failed" });
      }
      assert.deepEqual(client.messages, [], "nothing reaches the handler");
    });

    it("consumes the right first message, then lets later messages through, past the deadline too", async () => {
      const client = await Client.open(server().url);
      client.ws.send("let me in");
      assert.equal((await client.roundTrip("hello")).data.toString(), "hello");
      await delay(300);
      assert.equal((await client.roundTrip("still")).data.toString(), "still");
      assert.deepEqual(client.messages.map((m) => m.data.toString()), ["hello", "still"]);
      client.ws.close();
      await within(client.closed);
    });
  });

  describe(`${target.name}: app heartbeat`, { skip: target.skip }, () => {
    const heard: Heard[] = [];
    const server = serverFor(() => new App().use(heartbeat({ intervalMs: 100, timeoutMs: 100 }), recordCloses(heard), echo));

    it(
      differs("noServerPing")
        ? "cannot ping here, so never drops a silent raw client"
        : "pings a silent raw client, then drops TCP and reports 1006",
      async () => {
        const response = await rawHandshake(server().port, upgradeRequest({}, get("/silent")));
        assert.equal(response.status, 101);
        const opened = Date.now();
        const socket = collect(response.socket, response.rest);
        if (differs("noServerPing")) {
          const closed = await Promise.race([socket.closed, delay(700).then(() => undefined)]);
          assert.equal(closed, undefined, `${why("noServerPing")}: the heartbeat stops instead of dropping`);
          assert.equal(socket.data().length, 0, "no ping, no close frame");
          assert.deepEqual(closesOf(heard, "/silent"), []);
          response.socket.destroy();
          await until(() => closesOf(heard, "/silent").length === 1, 3000, "close report");
          return;
        }
        const closedAt = await within(socket.closed, 3000, "the server drops the silent client");
        const elapsed = closedAt - opened;
        assert.ok(elapsed >= 150, `dropped after ${elapsed} ms, before interval + timeout`);
        const frames = decodeServerFrames(new Uint8Array(socket.data()));
        assert.equal(frames[0]?.type, "ping", `a ping first: ${JSON.stringify(frames)}`);
        assert.equal((frames[0] as { data: Uint8Array }).data.length, 0);
        const after = frames.slice(1);
        if (differs("terminateSendsClose") && after.length > 0) {
          assert.deepEqual(after, [{ type: "close", code: 1005, reason: "" }], why("terminateSendsClose"));
        } else {
          assert.deepEqual(after, [], "no close frame: the TCP connection is dropped");
        }
        await until(() => closesOf(heard, "/silent").length === 1, 3000, "close report");
        assert.deepEqual(closesOf(heard, "/silent"), [{ code: 1006, reason: "", wasClean: false }]);
      },
    );

    it("keeps a ws client, which answers pings, open across several intervals", async () => {
      const client = await Client.open(`${server().url}/alive`);
      let pings = 0;
      client.ws.on("ping", () => pings++);
      await delay(1000);
      assert.equal(client.ws.readyState, client.ws.OPEN);
      if (differs("noServerPing")) assert.equal(pings, 0, why("noServerPing"));
      else assert.ok(pings >= 2, `pinged ${pings} times in 1 s`);
      assert.equal((await client.roundTrip("alive")).data.toString(), "alive");
      assert.deepEqual(closesOf(heard, "/alive"), []);
      client.ws.close();
      await within(client.closed);
    });

    it("keeps a raw client that keeps sending messages and never answers pings", async () => {
      // Its own server with a longer timeout: only a 250 ms gap between two
      // messages (a stalled test process) could let the client look dead.
      const busyHeard: Heard[] = [];
      const busy = await start(new App().use(heartbeat({ intervalMs: 250, timeoutMs: 250 }), recordCloses(busyHeard), echo));
      try {
        const response = await rawHandshake(busy.port, upgradeRequest({}, get("/busy")));
        assert.equal(response.status, 101);
        const socket = collect(response.socket, response.rest);
        const count = 30;
        for (let i = 0; i < count; i++) {
          response.socket.write(frame(0x1, `m${i}`));
          await delay(25);
        }
        await until(() => framesOf(socket.data()).length >= count, 3000, `${count} echoes`);
        const received = framesOf(socket.data());
        assert.deepEqual(
          received.filter((f) => f.type === "message").map((f) => (f as { data: unknown }).data),
          Array.from({ length: count }, (_, i) => `m${i}`),
          "every echo, in order",
        );
        if (!differs("noServerPing")) {
          assert.ok(received.some((f) => f.type === "ping"), "pinged every interval, although busy");
        }
        assert.deepEqual(busyHeard, []);
        response.socket.destroy();
        await until(() => busyHeard.length === 1, 3000, "close report");
      } finally {
        await busy.close();
      }
      assert.equal(busy.connections, 0);
    });
  });

  describe(`${target.name}: app broadcast`, { skip: target.skip }, () => {
    // The README's room loop: a peer that sent invalid JSON is closing (it
    // has not answered our close frame) and is still in the room when
    // another peer's message is broadcast. Sending to it drops the message;
    // the sender is not failed with 1011 and gets its broadcast.
    it("broadcasts past a peer that is closing: the sender stays open and gets its message, nothing is reported", async () => {
      const room = new Set<Peer>();
      const errors: unknown[] = [];
      const results: boolean[] = [];
      const app = new App()
        .use({ open: (ctx) => void room.add(ctx.peer) })
        .use(json<{ say: { type: "say"; text: string } }>({
          say(_ctx, message) {
            for (const peer of room) results.push(peer.send(message.text));
          },
        }))
        .onError((error) => void errors.push(error));
      const server = await start(app);
      try {
        const sender = await Client.open(server.url);
        await until(() => room.size === 1, 3000, "the sender's open");
        const leaving = await rawHandshake(server.port, upgradeRequest());
        assert.equal(leaving.status, 101);
        const heard = collect(leaving.socket, leaving.rest);
        await until(() => room.size === 2, 3000, "the leaving peer's open");
        leaving.socket.write(frame(1, "{not json"));
        await until(() => scanFrames(heard.data()).some((f) => f.opcode === 8), 3000, "the close frame, left unanswered");
        sender.ws.send(JSON.stringify({ type: "say", text: "hello" }));
        assert.equal((await sender.messagesUntil(1))[0]!.data.toString(), "hello");
        sender.ws.send(JSON.stringify({ type: "say", text: "still here" }));
        assert.equal((await sender.messagesUntil(2))[1]!.data.toString(), "still here");
        assert.equal(sender.ws.readyState, sender.ws.OPEN, "the sender is not closed");
        assert.deepEqual(results, [true, false, true, false], "the closing peer's send() answers false");
        assert.deepEqual(scanFrames(heard.data()).map((f) => f.opcode), [8], "nothing is written after the close frame");
        assert.deepEqual(errors, [], "dropping a message for a closing peer is no error");
        leaving.socket.destroy();
        sender.ws.close();
        await within(sender.closed);
      } finally {
        await server.close();
      }
      assert.equal(server.connections, 0);
    });
  });

  describe(`${target.name}: app pub/sub`, { skip: target.skip }, () => {
    let app: App | undefined;
    const server = serverFor(() => (app = pubsubApp()));

    /** Closes `ws` clients and waits for their close. */
    async function closeAll(clients: Client[]): Promise<void> {
      for (const client of clients) client.ws.close();
      await Promise.all(clients.map((client) => within(client.closed)));
    }

    it("delivers every published message, in order, to every subscriber and to no one else", async () => {
      const url = server().url;
      const news = await Client.open(`${url}/?sub=news`);
      const both = await Client.open(`${url}/?sub=news&sub=sports`);
      const sports = await Client.open(`${url}/?sub=sports`);
      const nobody = await Client.open(`${url}/`);
      const publisher = await Client.open(`${url}/?pub=news`);
      await until(() => app!.subscribers("news") === 2 && app!.subscribers("sports") === 2, 3000, "the subscriptions");
      const sent = Array.from({ length: 100 }, (_, i) => `news ${i} ${"é".repeat(i % 7)}`);
      for (const message of sent) publisher.ws.send(message);
      publisher.ws.send(Buffer.from([0, 1, 255]));
      for (const client of [news, both]) {
        const got = await client.messagesUntil(101, 5000);
        assert.deepEqual(got.slice(0, 100).map((m) => [m.isBinary, m.data.toString()]), sent.map((m) => [false, m]), "every text, in order");
        assert.equal(got[100]!.isBinary, true, "binary stays binary");
        assert.deepEqual([...got[100]!.data], [0, 1, 255]);
      }
      await delay(100);
      assert.equal(news.messages.length, 101, "each message once");
      assert.equal(both.messages.length, 101, "each message once, though subscribed to two topics");
      assert.deepEqual(sports.messages, [], "not subscribed to news");
      assert.deepEqual(nobody.messages, [], "subscribed to nothing");
      assert.deepEqual(publisher.messages, [], "a publisher not subscribed gets nothing");
      await closeAll([news, both, sports, nobody, publisher]);
    });

    it("does not send publishers their own messages unless they ask for them (self)", async () => {
      const url = server().url;
      const quiet = await Client.open(`${url}/?sub=room&pub=room`);
      const loud = await Client.open(`${url}/?sub=room&pub=room&self`);
      const listener = await Client.open(`${url}/?sub=room`);
      await until(() => app!.subscribers("room") === 3, 3000, "the subscriptions");
      quiet.ws.send("from quiet");
      await listener.messagesUntil(1);
      loud.ws.send(Buffer.from("from loud"));
      await listener.messagesUntil(2);
      await loud.messagesUntil(2);
      await delay(100);
      const show = (client: Client) => client.messages.map((m) => `${m.isBinary ? "binary" : "text"}:${m.data.toString()}`);
      assert.deepEqual(show(quiet), ["binary:from loud"]);
      assert.deepEqual(show(loud), ["text:from quiet", "binary:from loud"]);
      assert.deepEqual(show(listener), ["text:from quiet", "binary:from loud"]);
      await closeAll([quiet, loud, listener]);
    });

    it("takes closed clients out of their topics, however they close", async () => {
      const url = server().url;
      const [clean, dropped, last] = await Promise.all([1, 2, 3].map(() => Client.open(`${url}/?sub=leave&sub=leave2`)));
      const raw = await rawHandshake(server().port, upgradeRequest({}, get("/?sub=leave")));
      assert.equal(raw.status, 101);
      raw.socket.on("error", () => {});
      await until(() => app!.subscribers("leave") === 4, 3000, "four subscribers");
      assert.equal(app!.subscribers("leave2"), 3);
      clean!.ws.close(1000);
      await within(clean!.closed);
      await until(() => app!.subscribers("leave") === 3, 3000, "a clean close to leave");
      dropped!.ws.terminate();
      await until(() => app!.subscribers("leave") === 2, 3000, "a dropped TCP connection to leave");
      raw.socket.destroy();
      await until(() => app!.subscribers("leave") === 1, 3000, "a destroyed raw socket to leave");
      assert.equal(app!.subscribers("leave2"), 1);
      assert.equal(app!.publish("leave", "to the last one"), 1);
      assert.equal((await last!.messagesUntil(1))[0]!.data.toString(), "to the last one");
      await closeAll([last!]);
      await until(() => app!.subscribers("leave") === 0 && app!.subscribers("leave2") === 0, 3000, "every topic empty");
      assert.equal(app!.publish("leave", "anyone?"), 0);
    });

    /**
     * A fast `ws` client that publishes to "flood" and gets its own
     * messages back (paced: one message in flight), beside a raw client
     * subscribed to "flood" that never reads. Publishes 32 KiB messages
     * until at least 2 MiB went out and `until(stats)` holds (at most 64
     * MiB); every message reaches the fast client, in order.
     */
    async function flood(options: AppOptions, done: (stats: App["pubsubStats"]) => boolean) {
      const floodApp = pubsubApp({ maxBufferedBytes: 64 * 1024, ...options });
      const floodServer = await start(floodApp);
      const fast = await Client.open(`${floodServer.url}/?sub=flood&pub=flood&self`);
      const slow = await rawHandshake(floodServer.port, upgradeRequest({}, get("/?sub=flood")));
      assert.equal(slow.status, 101);
      slow.socket.on("error", () => {}); // rawHandshake left it paused: it reads nothing more
      await until(() => floodApp.subscribers("flood") === 2, 3000, "two subscribers");
      const size = 32 * 1024;
      const deadline = Date.now() + 30_000;
      let count = 0;
      while (count * size < 2 * 1024 * 1024 || !done(floodApp.pubsubStats)) {
        if (count * size >= 64 * 1024 * 1024 || Date.now() > deadline) break;
        const payload = numbered(count, size);
        const back = await fast.roundTrip(payload, 5000);
        assert.equal(back.isBinary, true);
        assert.ok(back.data.equals(payload), `message ${count} came back intact`);
        count++;
      }
      assert.equal(fast.messages.length, count, "the fast client got every message, and nothing else");
      return { floodApp, floodServer, fast, slow, count, size };
    }

    it("keeps delivering to a fast subscriber while a reader that never reads is dropped, and counts the drops", async () => {
      const { floodApp, floodServer, fast, slow, count, size } = await flood({}, (stats) => stats.dropped > 0);
      try {
        const stats = { ...floodApp.pubsubStats };
        assert.ok(stats.dropped > 0, `nothing dropped after ${count} messages of ${size} bytes: ${JSON.stringify(stats)}`);
        assert.equal(stats.published, count);
        assert.equal(stats.closedSlow, 0);
        assert.equal(stats.delivered + stats.dropped, 2 * count, "each publish reached or skipped each of the two");
        const toSlow = stats.delivered - count;
        // Once it reads, the slow client gets what was written to it, in publish order, and the link still works.
        const reader = collect(slow.socket, slow.rest);
        await until(() => scanFrames(reader.data()).length >= toSlow, 3000, `${toSlow} messages on the slow client`);
        const frames = scanFrames(reader.data());
        assert.equal(frames.length, toSlow, "exactly what was not dropped");
        let previous = -1;
        for (const frame of frames) {
          assert.equal(frame.opcode, 0x2);
          assert.equal(frame.payload.length, size);
          const n = frame.payload.readUInt32BE(0);
          assert.ok(n > previous && n < count, `message ${n} after ${previous}`);
          assert.ok(frame.payload.equals(numbered(n, size)), `message ${n} intact`);
          previous = n;
        }
        assert.equal(floodApp.subscribers("flood"), 2, "policy drop keeps the slow client subscribed");
        slow.socket.destroy();
        await until(() => floodApp.subscribers("flood") === 1, 3000, "the slow client to leave");
        await closeAll([fast]);
        await until(() => floodApp.subscribers("flood") === 0, 3000, "the fast client to leave");
      } finally {
        slow.socket.destroy();
        await floodServer.close();
      }
      assert.equal(floodServer.connections, 0);
    });

    it('closes a reader that never reads with 1013 under slowPolicy "close", and the fast subscriber goes on', async () => {
      const { floodApp, floodServer, fast, slow, count, size } = await flood(
        { slowPolicy: "close" },
        (stats) => stats.closedSlow > 0,
      );
      try {
        const stats = { ...floodApp.pubsubStats };
        assert.equal(stats.closedSlow, 1, `closed once after ${count} messages of ${size} bytes: ${JSON.stringify(stats)}`);
        assert.equal(stats.dropped, 0);
        // The slow client reads: every message written before its close, in order, then the 1013 close frame.
        const reader = collect(slow.socket, slow.rest);
        await until(() => scanFrames(reader.data()).some((f) => f.opcode === 0x8), 3000, "the close frame");
        const frames = scanFrames(reader.data());
        const close = frames.at(-1)!;
        assert.equal(close.opcode, 0x8, "the close frame comes last");
        assert.equal(close.payload.readUInt16BE(0), 1013);
        assert.equal(close.payload.subarray(2).toString(), "Too slow: output buffer full");
        const messages = frames.slice(0, -1);
        assert.ok(messages.length > 0 && messages.length < count);
        messages.forEach((frame, i) => {
          assert.equal(frame.opcode, 0x2);
          assert.ok(frame.payload.equals(numbered(i, size)), `message ${i}: every one up to the close, in order`);
        });
        assert.equal(stats.delivered, count + messages.length);
        slow.socket.destroy();
        await until(() => floodApp.subscribers("flood") === 1, 3000, "the slow client to leave");
        const after = numbered(count, size);
        assert.ok((await fast.roundTrip(after)).data.equals(after), "the fast client goes on");
        await closeAll([fast]);
      } finally {
        slow.socket.destroy();
        await floodServer.close();
      }
      assert.equal(floodServer.connections, 0);
    });
  });
}
