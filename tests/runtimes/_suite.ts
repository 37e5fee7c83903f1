// The black-box suite: written once, registered for every adapter and path
// on every runtime that has it (see suite_*_test.ts). It talks to the server
// only through sockets: the `ws` client, raw TCP, and the runtime's own
// WebSocket class where there is one.
//
// A path whose runtime frames differently declares the difference by name in
// `Target.differences`, with the reason; the test for it then asserts the
// documented behaviour instead of the raw engine's, so a difference can
// neither hide nor silently change.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { Connection, Handler, ListenOptions, Server } from "../../mod.ts";
import { ProtocolError, UsageError } from "../../mod.ts";
import { PreparedMessage } from "../../core/mod.ts";
import { closeBody, frame } from "../core/_util.ts";
import { Client, delay, rawConnect, rawHandshake, readAll, until, upgradeRequest, within } from "./_helpers.ts";

/** Behaviours where a native path differs from the raw engine, by name. */
export type Difference =
  /** Deno: a protocol error drops TCP without a close frame. */
  | "protocolErrorWithoutCloseFrame"
  /** Bun: close frames for protocol errors carry a reason text. */
  | "protocolErrorCloseReason"
  /** Deno: the server cannot send pings, nor see pongs. */
  | "noServerPing"
  /** Bun: a client that offered only unknown subprotocols gets its first offer back. */
  /** The runtime's HTTP server answers HTTP/1.0 and similar itself, before Duplex sees the request. */
  | "httpServerAnswersMalformed"
  /** The runtime's HTTP server, not Duplex, times out slow handshakes. */
  | "httpServerHandshakeTimeout"
  /** Deno: `terminate()` can only send an empty close frame. */
  | "terminateSendsClose"
  /** node:http: plain HTTP requests go to the app's own request handler. */
  | "plainHttpGoesToApp"
  /** The runtime's server echoes the peer's close reason with its code. */
  | "closeEchoesReason"
  /** Bun: a server-initiated close is reported at once, with the server's own code. */
  | "closeReportedAtOnce"
  /** The runtime's server does not expose the HTTP version: HTTP/1.0 upgrades succeed. */
  | "upgradesHttp10"
  /** Deno: unmasked client frames are accepted. */
  | "acceptsUnmaskedFrames"
  /** Deno: after a protocol error the app hears 1006 (the error hook still gets the ProtocolError). */
  | "protocolErrorReportedAs1006"
  /** Deno: the server cannot drop TCP; after its close frame it waits for the peer's. */
  | "cannotDropTcp";

/** One adapter and path under test. */
export interface Target {
  /** Shown in the test names: "deno raw", "bun native", "node:http on bun"… */
  name: string;
  /** Why this target cannot run on this runtime, or `false`. */
  skip: string | false;
  /** Starts a server with the handler on 127.0.0.1, a free port. */
  start<S>(handler: Handler<S>, options?: ListenOptions): Promise<Server>;
  /** Why this target cannot serve `wss://` here, or `false`. */
  noTls?: string | false;
  /** This path's documented differences from the raw engine, with their reasons. */
  differences?: Partial<Record<Difference, string>>;
}

const echo: Handler = {
  message(ctx, data) {
    ctx.send(data);
  },
};

/** The runtime's own WebSocket client, where there is one. */
const NativeWebSocket = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket;
const noNativeClient = "Deno" in globalThis || "Bun" in globalThis
  ? false
  : "Node 20 has no WebSocket client without a flag";

function bytes(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31) & 0xff;
  return out;
}

/** Registers the whole suite for `target`. */
export function runSuite(target: Target): void {
  const differs = (d: Difference) => target.differences?.[d] !== undefined;
  const start = <S>(handler: Handler<S>, options: ListenOptions = {}) =>
    target.start(handler, { port: 0, hostname: "127.0.0.1", ...options });

  describe(`${target.name}: echo`, { skip: target.skip }, () => {
    let server: Server;
    before(async () => {
      server = await start(echo);
    });
    after(async () => {
      await server?.close();
      assert.equal(server?.connections, 0);
    });

    for (const size of [0, 125, 126, 65535, 65536, 1 << 20]) {
      it(`echoes binary and text of ${size} bytes, keeping the type (ws client)`, async () => {
        const client = await Client.open(server.url);
        const binary = await client.roundTrip(bytes(size));
        assert.equal(binary.isBinary, true);
        assert.ok(binary.data.equals(bytes(size)));
        const text = "é".repeat(size >> 1) + "a".repeat(size & 1);
        const echoed = await client.roundTrip(text);
        assert.equal(echoed.isBinary, false);
        assert.equal(echoed.data.toString(), text);
        client.ws.close();
        await within(client.closed);
      });
    }

    it("reassembles a fragmented message and answers pings between its fragments first", async () => {
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

    it("echoes with the runtime's own WebSocket client", { skip: noNativeClient }, async () => {
      const ws = new NativeWebSocket!(server.url);
      ws.binaryType = "arraybuffer";
      const received: unknown[] = [];
      const closed = new Promise<CloseEvent>((resolve) => (ws.onclose = resolve));
      await within(new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = reject;
      }), 3000, "native client open");
      const two = new Promise<void>((resolve) => {
        ws.onmessage = (event) => {
          received.push(event.data);
          if (received.length === 2) resolve();
        };
      });
      ws.send("héllo");
      ws.send(new Uint8Array([1, 2, 3]));
      await within(two, 3000, "two echoes");
      assert.equal(received[0], "héllo");
      assert.deepEqual([...new Uint8Array(received[1] as ArrayBuffer)], [1, 2, 3]);
      ws.close(4002, "done");
      const event = await within(closed, 3000, "native client close");
      assert.equal(event.code, 4002);
      assert.equal(event.wasClean, true);
    });

    it("answers a plain HTTP request with 426", async () => {
      const response = await rawHandshake(server.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      if (differs("plainHttpGoesToApp")) {
        assert.equal(response.status, 200, target.differences!.plainHttpGoesToApp);
        assert.equal(response.body, "plain http");
      } else {
        assert.equal(response.status, 426);
        assert.equal(response.headers["sec-websocket-version"], "13");
      }
      response.socket.destroy();
    });
  });

  describe(`${target.name}: TLS`, { skip: target.skip || target.noTls }, () => {
    it("serves wss:// with a certificate and key", async () => {
      const server = await start(echo, {
        tls: {
          cert: readFileSync(new URL("../fixtures/cert.pem", import.meta.url), "utf8"),
          key: readFileSync(new URL("../fixtures/key.pem", import.meta.url), "utf8"),
        },
      });
      assert.match(server.url, /^wss:\/\//);
      const client = await Client.open(`wss://localhost:${server.port}`, undefined, { rejectUnauthorized: false });
      assert.equal((await client.roundTrip("secret")).data.toString(), "secret");
      assert.ok((await client.roundTrip(bytes(200_000))).data.equals(bytes(200_000)));
      await server.close();
      assert.equal((await within(client.closed)).code, 1001);
    });
  });

  describe(`${target.name}: ping and pong`, { skip: target.skip }, () => {
    it("sends the app's ping and reports the peer's pong to the pong hook", async () => {
      const pongs: string[] = [];
      const failures: unknown[] = [];
      const server = await start({
        open(ctx) {
          try {
            ctx.ping("are you there");
          } catch (err) {
            failures.push(err);
            ctx.send("no ping");
          }
        },
        pong(_ctx, data) {
          pongs.push(new TextDecoder().decode(data));
        },
      });
      const client = new Client(server.url);
      const pinged = new Promise<string>((resolve) => client.ws.once("ping", (data: Buffer) => resolve(String(data))));
      if (differs("noServerPing")) {
        const [message] = await client.messagesUntil(1);
        assert.equal(message!.data.toString(), "no ping");
        assert.ok(failures[0] instanceof UsageError);
        assert.equal((failures[0] as UsageError).code, "ERR_UNSUPPORTED");
      } else {
        assert.equal(await within(pinged, 3000, "ping"), "are you there");
        await until(() => pongs.length === 1, 3000, "pong hook");
        assert.deepEqual(pongs, ["are you there"], "ws answers a ping with the same payload");
        assert.deepEqual(failures, []);
      }
      await server.close();
    });
  });

  describe(`${target.name}: closing`, { skip: target.skip }, () => {
    it("completes a close handshake started by the client, echoing its code", async () => {
      const closes: unknown[] = [];
      const server = await start({ close: (_ctx, info) => void closes.push(info) });
      const client = await Client.open(server.url);
      client.ws.close(4000, "bye");
      const echoed = differs("closeEchoesReason") ? "bye" : "";
      assert.deepEqual(await within(client.closed), { code: 4000, reason: echoed });
      await until(() => closes.length === 1);
      assert.deepEqual(closes, [{ code: 4000, reason: "bye", wasClean: true }]);
      await until(() => server.connections === 0, 3000, "teardown");
      await server.close();
    });

    it("closes from the server side with the app's code and reports the peer's answer", async () => {
      const closes: unknown[] = [];
      const server = await start({
        message: (ctx) => ctx.close(4001, "requested"),
        close: (_ctx, info) => void closes.push(info),
      });
      const client = await Client.open(server.url);
      client.ws.send("close me");
      assert.deepEqual(await within(client.closed), { code: 4001, reason: "requested" });
      await until(() => closes.length === 1);
      assert.deepEqual(closes, [{ code: 4001, reason: "requested", wasClean: true }], "ws echoes code and reason");
      await server.close();
    });

    it("refuses close codes that may not be sent; send() after close returns false and drops the message", async () => {
      const errors: string[] = [];
      const hookErrors: unknown[] = [];
      const late: unknown[] = [];
      const server = await start({
        message(ctx) {
          for (const code of [1005, 1006, 999, 5000]) {
            try {
              ctx.close(code);
            } catch (err) {
              errors.push((err as UsageError).code);
            }
          }
          ctx.close(1000);
          try {
            late.push(ctx.send("late"), ctx.sendPrepared(new PreparedMessage("late")), ctx.ping());
            ctx.send(42 as unknown as string); // a bad argument still throws
          } catch (err) {
            errors.push((err as UsageError).code);
          }
        },
        error: (_ctx, error) => void hookErrors.push(error),
      });
      const client = await Client.open(server.url);
      client.ws.send("go");
      assert.equal((await within(client.closed)).code, 1000);
      assert.deepEqual(errors, [
        "ERR_INVALID_CLOSE_CODE",
        "ERR_INVALID_CLOSE_CODE",
        "ERR_INVALID_CLOSE_CODE",
        "ERR_INVALID_CLOSE_CODE",
        "ERR_INVALID_DATA",
      ]);
      assert.deepEqual(late, [false, false, undefined], "send and sendPrepared answer false, ping does nothing");
      assert.deepEqual(client.messages, [], "nothing written after the close frame");
      assert.deepEqual(hookErrors, [], "dropping a late message is no error");
      await server.close();
    });

    it("broadcasts past a peer that closed itself and has not answered: the sender stays open, no error", async () => {
      const peers = new Set<Connection<unknown>>(); // never pruned: closing and closed peers stay in it
      const errors: unknown[] = [];
      const results: boolean[] = [];
      const server = await start({
        open: (conn) => void peers.add(conn),
        message(conn, data) {
          if (data === "bye") return conn.close(4000, "bye");
          for (const peer of peers) results.push(peer.send(data));
        },
        error: (_conn, error) => void errors.push(error),
      });
      const sender = await Client.open(server.url);
      await until(() => peers.size === 1, 3000, "the sender's open");
      const leaving = await rawHandshake(server.port, upgradeRequest());
      assert.equal(leaving.status, 101);
      let heard = leaving.rest;
      leaving.socket.on("data", (chunk: Buffer) => void (heard = Buffer.concat([heard, chunk])));
      leaving.socket.on("error", () => {});
      leaving.socket.resume();
      await until(() => peers.size === 2, 3000, "the leaving peer's open");
      leaving.socket.write(frame(1, "bye"));
      await until(() => heard.includes(0x88), 3000, "the close frame, left unanswered");
      const closeFrame = Buffer.from(heard);
      sender.ws.send("hello");
      assert.equal((await sender.messagesUntil(1))[0]!.data.toString(), "hello");
      sender.ws.send("again");
      assert.equal((await sender.messagesUntil(2))[1]!.data.toString(), "again");
      assert.equal(sender.ws.readyState, sender.ws.OPEN, "the sender is not closed");
      assert.deepEqual(results, [true, false, true, false], "the closing peer's send() answers false");
      assert.deepEqual(heard, closeFrame, "nothing is written after the close frame");
      assert.deepEqual(errors, [], "dropping a message for a closing peer is no error");
      leaving.socket.destroy();
      sender.ws.close();
      await within(sender.closed);
      await server.close();
    });

    it("reports 1006 to the app when the peer ends TCP without a close frame", async () => {
      const closes: unknown[] = [];
      const server = await start({ close: (_ctx, info) => void closes.push(info) });
      const response = await rawHandshake(server.port, upgradeRequest());
      assert.equal(response.status, 101);
      response.socket.end();
      await until(() => closes.length === 1, 3000, "close hook");
      assert.deepEqual(closes, [{ code: 1006, reason: "", wasClean: false }]);
      await until(() => server.connections === 0, 3000, "socket teardown");
      await server.close();
    });

    it("gives up on a peer that never answers the close after the close timeout", async () => {
      const closes: unknown[] = [];
      const server = await start({ close: (_ctx, info) => void closes.push(info) }, { closeTimeoutMs: 100 });
      const response = await rawHandshake(server.port, upgradeRequest());
      response.socket.resume(); // reads, but never sends a close frame back
      const started = Date.now();
      await within(server.close(), 3000, "server.close");
      assert.ok(Date.now() - started < 1500, `closed after ${Date.now() - started} ms`);
      assert.equal(server.connections, 0);
      if (differs("closeReportedAtOnce")) {
        assert.deepEqual(closes, [{ code: 1001, reason: "Server shutting down", wasClean: true }], target.differences!.closeReportedAtOnce);
      } else {
        assert.deepEqual(closes, [{ code: 1006, reason: "", wasClean: false }]);
      }
      response.socket.destroy();
    });

    it("terminate() drops the connection and reports 1006 to the app", async () => {
      const closes: unknown[] = [];
      const server = await start({
        message: (ctx) => ctx.terminate(),
        close: (_ctx, info) => void closes.push(info),
      });
      const client = await Client.open(server.url);
      client.ws.send("bye");
      const { code } = await within(client.closed);
      if (differs("terminateSendsClose")) assert.equal(code, 1005, target.differences!.terminateSendsClose);
      else assert.equal(code, 1006, "no close frame");
      await until(() => closes.length === 1);
      assert.deepEqual(closes, [{ code: 1006, reason: "", wasClean: false }]);
      await server.close();
    });
  });

  describe(`${target.name}: protocol errors and limits`, { skip: target.skip }, () => {
    type Kind = "unmasked" | "opcode" | "utf8" | "closeCode" | "size";
    const cases: [string, Kind, Uint8Array, number][] = [
      ["an unmasked frame", "unmasked", frame(0x1, "hi", { mask: null }), 1002],
      ["a reserved opcode", "opcode", frame(0x3, "x"), 1002],
      ["invalid UTF-8", "utf8", frame(0x1, [0xc0, 0xaf]), 1007],
      ["a close code that may not be sent", "closeCode", frame(0x8, closeBody(1005)), 1002],
      ["a message over maxMessageBytes", "size", frame(0x2, new Uint8Array(1001)), 1009],
    ];
    for (const [name, kind, bytes, code] of cases) {
      it(`sends close ${code} for ${name}, then closes TCP, and tells the app`, async () => {
        const errors: unknown[] = [];
        const closes: unknown[] = [];
        const messages: unknown[] = [];
        const server = await start({
          message: (_ctx, data) => void messages.push(data),
          error: (_ctx, err) => void errors.push(err),
          close: (_ctx, info) => void closes.push(info),
        }, { maxMessageBytes: 1000 });
        const response = await rawHandshake(server.port, upgradeRequest());
        assert.equal(response.status, 101);
        assert.equal(response.headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        const accepted = kind === "unmasked" && differs("acceptsUnmaskedFrames");
        const noFrame = (kind === "opcode" || kind === "utf8") && differs("protocolErrorWithoutCloseFrame");
        const staysOpen = accepted || (kind === "size" && differs("cannotDropTcp"));
        const reading = readAll(response.socket, staysOpen ? 500 : 3000);
        response.socket.resume();
        response.socket.write(bytes);
        const { data, ended } = await reading;
        if (accepted) {
          assert.deepEqual(messages, ["hi"], target.differences!.acceptsUnmaskedFrames);
          assert.equal(data.length, 0);
          response.socket.destroy();
          await server.close();
          return;
        }
        if (staysOpen) assert.equal(ended, false, target.differences!.cannotDropTcp);
        else assert.equal(ended || response.socket.destroyed, true, "the server closed TCP");
        if (noFrame) {
          assert.equal(data.length, 0, target.differences!.protocolErrorWithoutCloseFrame);
        } else if (differs("protocolErrorCloseReason")) {
          assert.deepEqual([...data.subarray(0, 1)], [0x88]);
          assert.deepEqual([...data.subarray(2, 4)], [code >> 8, code & 0xff]);
          assert.equal(data.length, 2 + data[1]!, "nothing after the close frame");
        } else {
          // A 1009 says why (the contract since 0.2.0); the other protocol errors carry no reason.
          const reason = [...Buffer.from(kind === "size" ? "Message too big" : "")];
          assert.deepEqual([...data], [0x88, 2 + reason.length, code >> 8, code & 0xff, ...reason], "one close frame, nothing after it");
        }
        if (staysOpen) response.socket.destroy();
        await until(() => closes.length === 1, 3000, "close hook");
        assert.ok(errors[0] instanceof ProtocolError, "the error hook gets a ProtocolError");
        assert.equal(errors.length, 1);
        assert.deepEqual(messages, []);
        if (differs("protocolErrorReportedAs1006") && kind !== "size") {
          assert.deepEqual(closes, [{ code: 1006, reason: "", wasClean: false }], target.differences!.protocolErrorReportedAs1006);
        } else {
          assert.equal((errors[0] as ProtocolError).closeCode, code);
          assert.deepEqual(
            closes.map((c) => ({ ...(c as object), reason: "" })),
            [{ code, reason: "", wasClean: false }],
            "the app hears the code we sent",
          );
        }
        await server.close();
      });
    }

    it("closes with 1009 and a reason when a ws client sends more than maxMessageBytes, and logs it once", async () => {
      const warnings: string[] = [];
      const warn = console.warn;
      console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(" "));
      try {
        const ids: string[] = [];
        const server = await start({ ...echo, open: (conn) => void ids.push(conn.id) }, { maxMessageBytes: 64 * 1024 });
        const client = await Client.open(server.url);
        assert.equal((await client.roundTrip(bytes(64 * 1024))).data.length, 64 * 1024, "at the limit is fine");
        client.ws.send(bytes(64 * 1024 + 1));
        const reason = differs("protocolErrorCloseReason") ? "Received too big message" : "Message too big";
        assert.deepEqual(await within(client.closed), { code: 1009, reason });
        await server.close();
        const logged = warnings.filter((w) => w.includes("1009"));
        assert.equal(logged.length, 1, "logged once");
        assert.match(logged[0]!, new RegExp(`^duplex: connection ${ids[0]} closed with 1009 \\(maxMessageBytes is 65536\\): `));
      } finally {
        console.warn = warn;
      }
    });
  });

  describe(`${target.name}: handshake`, { skip: target.skip }, () => {
    let server: Server;
    before(async () => {
      server = await start(echo, { maxHeaderBytes: 1024 });
    });
    after(() => server?.close());

    const cases: [string, string, number, Difference?][] = [
      ["version 8", upgradeRequest({ "Sec-WebSocket-Version": "8" }), 426],
      ["a missing key", upgradeRequest({ "Sec-WebSocket-Key": null }), 400],
      ["a key of 15 bytes", upgradeRequest({ "Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA" }), 400],
      ["POST", upgradeRequest({}, "POST / HTTP/1.1"), 400],
      ["Upgrade: foo", upgradeRequest({ Upgrade: "foo" }), 400],
      ["Connection without upgrade", upgradeRequest({ Connection: "keep-alive" }), 400, "plainHttpGoesToApp"],
      ["a header block over the limit", upgradeRequest({ "X-Big": "x".repeat(2000) }), 431],
      ["HTTP/1.0", upgradeRequest({}, "GET / HTTP/1.0"), 400, "upgradesHttp10"],
      ["no Host", upgradeRequest({ Host: null }), 400, "httpServerAnswersMalformed"],
      ["garbage", "\x16\x03\x01 not http\r\n\r\n", 400, "httpServerAnswersMalformed"],
    ];
    for (const [name, request, status, difference] of cases) {
      const why = difference === undefined ? undefined : target.differences?.[difference];
      it(`answers ${status} to ${name} and upgrades nothing`, async () => {
        const response = await rawHandshake(server.port, request);
        if (why === undefined) assert.equal(response.status, status);
        else if (difference === "plainHttpGoesToApp") assert.equal(response.body, "plain http", why);
        else if (difference === "upgradesHttp10") assert.equal(response.status, 101, why);
        else assert.ok(response.status >= 400 && response.status < 500, `${why}: got ${response.status}`);
        if (status === 426) assert.equal(response.headers["sec-websocket-version"], "13");
        response.socket.destroy();
      });
    }

    it("drops a client that does not finish its handshake in time", async () => {
      const slow = await start(echo, { handshakeTimeoutMs: 100 });
      const socket = await rawConnect(slow.port);
      socket.write("GET / HTTP/1.1\r\n");
      const { data, ended } = await readAll(socket, differs("httpServerHandshakeTimeout") ? 300 : 2000);
      assert.equal(data.length, 0);
      if (differs("httpServerHandshakeTimeout")) assert.equal(ended, false, target.differences!.httpServerHandshakeTimeout);
      else assert.equal(ended || socket.destroyed, true, "dropped");
      socket.destroy();
      await slow.close();
    });

    it("lets the upgrade hook refuse with a Response, accept with headers, and set state", async () => {
      const s = await start<{ user: string }>({
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
          ctx.send(`hello ${ctx.state.user} from ${ctx.request.url}`);
        },
      });
      const refused = await rawHandshake(s.port, upgradeRequest({}, "GET /room?token=wrong HTTP/1.1"));
      assert.equal(refused.status, 401);
      assert.equal(refused.headers["www-authenticate"], "Bearer");
      assert.equal(refused.body, "no entry");
      refused.socket.destroy();
      const accepted = await rawHandshake(s.port, upgradeRequest({}, "GET /room?token=secret HTTP/1.1"));
      assert.equal(accepted.status, 101);
      assert.equal(accepted.headers["x-welcome"], "yes");
      accepted.socket.destroy();
      const client = await Client.open(`${s.url}/room?token=secret`);
      const [greeting] = await client.messagesUntil(1);
      assert.equal(greeting!.data.toString(), "hello ada from /room?token=secret");
      await s.close();
    });

    it("answers 500 and reports the error when the upgrade hook throws", async () => {
      const errors: unknown[] = [];
      const s = await start({
        upgrade() {
          throw new Error("upgrade boom");
        },
        error: (_ctx, err) => void errors.push(err),
      });
      const response = await rawHandshake(s.port, upgradeRequest());
      assert.equal(response.status, 500);
      assert.equal((errors[0] as Error).message, "upgrade boom");
      response.socket.destroy();
      await s.close();
    });

    it("chooses the subprotocol by the server's preference, and none when nothing matches", async () => {
      const s = await start({ open: (ctx) => void ctx.send(ctx.protocol) }, { protocols: ["chat.v2", "chat.v1"] });
      const client = await Client.open(s.url, ["chat.v1", "chat.v2"]);
      assert.equal(client.ws.protocol, "chat.v2");
      assert.equal((await client.messagesUntil(1))[0]!.data.toString(), "chat.v2");
      const none = await rawHandshake(s.port, upgradeRequest({ "Sec-WebSocket-Protocol": "mqtt, stomp" }));
      assert.equal(none.status, 101);
      assert.equal(none.headers["sec-websocket-protocol"], undefined);
      none.socket.destroy();
      await s.close();
    });
  });

  describe(`${target.name}: hooks`, { skip: target.skip }, () => {
    it("closes only the failing connection with 1011 when a hook throws, and reports the error", async () => {
      const errors: unknown[] = [];
      const server = await start({
        message(ctx, data) {
          if (data === "boom") throw new Error("boom");
          ctx.send(data);
        },
        error(_ctx, err) {
          errors.push(err);
        },
      });
      const victim = await Client.open(server.url);
      const bystander = await Client.open(server.url);
      victim.ws.send("boom");
      assert.deepEqual(await within(victim.closed), { code: 1011, reason: "Internal error" });
      assert.equal((errors[0] as Error).message, "boom");
      assert.equal((await bystander.roundTrip("still here")).data.toString(), "still here");
      await server.close();
    });

    it("turns a rejected promise into 1011 as well", async () => {
      const server = await start({ message: () => Promise.reject(new Error("async boom")) });
      const client = await Client.open(server.url);
      client.ws.send("x");
      assert.deepEqual(await within(client.closed), { code: 1011, reason: "Internal error" });
      await server.close();
    });

    it("runs async hooks one at a time, in order", async () => {
      const seen: string[] = [];
      const server = await start({
        async message(ctx, data) {
          await delay(Math.random() * 5);
          seen.push(String(data));
          ctx.send(data);
        },
      });
      const client = await Client.open(server.url);
      const sent = Array.from({ length: 30 }, (_, i) => `m${i}`);
      for (const m of sent) client.ws.send(m);
      const echoed = await client.messagesUntil(30);
      assert.deepEqual(echoed.map((m) => m.data.toString()), sent);
      assert.deepEqual(seen, sent);
      await server.close();
    });

    it("gives every connection its own id, state, request and remote address", async () => {
      const seen: { id: string; address: string; url: string; state: unknown }[] = [];
      const server = await start<{ n?: number }>({
        open(ctx) {
          ctx.state.n = seen.length;
          seen.push({ id: ctx.id, address: ctx.remoteAddress, url: ctx.request.url, state: ctx.state });
          ctx.send(String(ctx.readyState));
        },
      });
      const a = await Client.open(`${server.url}/a?x=1`);
      const b = await Client.open(`${server.url}/b`);
      await a.messagesUntil(1);
      await b.messagesUntil(1);
      assert.equal(a.messages[0]!.data.toString(), "1", "OPEN in the open hook");
      assert.notEqual(seen[0]!.id, seen[1]!.id);
      assert.deepEqual(seen.map((s) => s.url), ["/a?x=1", "/b"]);
      assert.deepEqual(seen.map((s) => s.state), [{ n: 0 }, { n: 1 }]);
      for (const s of seen) assert.match(s.address, /127\.0\.0\.1/);
      await server.close();
    });
  });

  describe(`${target.name}: backpressure and shutdown`, { skip: target.skip }, () => {
    it("lets bufferedAmount grow while the peer does not read, and drain when it does", async () => {
      let ctx!: Connection;
      const drains: number[] = [];
      const server = await start<Record<string, unknown>>({
        open: (c) => void (ctx = c),
        drain: (c) => void drains.push(c.bufferedAmount),
      }, { maxBufferedBytes: 64 << 20 }); // above the 32 MiB pushed: the cap has its own tests (_limits_suite.ts)
      const response = await rawHandshake(server.port, upgradeRequest());
      await until(() => ctx !== undefined);
      const chunk = new Uint8Array(256 * 1024);
      // Push past what the loopback's kernel buffers hold (a few MiB).
      let accepted = true;
      for (let i = 0; i < 128; i++) accepted = ctx.send(chunk) && accepted;
      assert.equal(accepted, false, "send() reports backpressure");
      await delay(50);
      assert.ok(ctx.bufferedAmount > 1024 * 1024, `bufferedAmount grew: ${ctx.bufferedAmount}`);
      let drained = false;
      const draining = ctx.drained().then(() => (drained = true));
      await delay(50);
      assert.equal(drained, false, "not drained while the peer does not read");
      response.socket.resume();
      await within(draining, 10_000, "drain");
      assert.ok(ctx.bufferedAmount < 64 * 1024, `drained to ${ctx.bufferedAmount}`);
      assert.ok(drains.length >= 1, "the drain hook ran");
      response.socket.destroy();
      await server.close();
    });

    it("closes every connection with 1001 on shutdown and resolves once the sockets are gone", async () => {
      const server = await start(echo);
      const clients = await Promise.all([1, 2, 3].map(() => Client.open(server.url)));
      assert.equal(server.connections, 3);
      await within(server.close(), 3000, "server.close");
      for (const client of clients) assert.deepEqual(await within(client.closed), { code: 1001, reason: "Server shutting down" });
      assert.equal(server.connections, 0);
    });
  });
}
