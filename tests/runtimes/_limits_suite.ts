// The server limits over real sockets, on every adapter and path (see
// suite_test.ts): admission (503, 429), the idle timeout, the rate limit, a
// peer that never reads, and a graceful shutdown that loses nothing. The
// exact timings are tested on the pump with a fake clock
// (tests/runtimes/limits_test.ts); here the limits must hold end to end.
import assert from "node:assert/strict";
import { connect as netConnect, type Socket } from "node:net";
import { describe, it } from "node:test";
import type { Connection, Handler, ListenOptions, Server } from "../../mod.ts";
import { ProtocolError } from "../../mod.ts";
import { Client, delay, rawHandshake, until, upgradeRequest, within } from "./_helpers.ts";
import type { AppDifference, AppTarget } from "./_app_suite.ts";
import { Op, WsClient } from "./_wsclient.ts";

const echo: Handler = { message: (ctx, data) => void ctx.send(data) };

/** Opens a TCP connection from `localAddress` (another loopback address is another peer). */
function connectFrom(port: number, localAddress: string): Promise<Socket> {
  return within(
    new Promise<Socket>((resolve, reject) => {
      const socket = netConnect({ port, host: "127.0.0.1", localAddress }, () => resolve(socket));
      socket.once("error", reject);
    }),
    3000,
    `tcp connect from ${localAddress}`,
  );
}

/** Sends an upgrade request on `socket` and returns the status line's code. */
async function statusOf(socket: Socket): Promise<number> {
  socket.write(upgradeRequest());
  const head = await within(
    new Promise<string>((resolve, reject) => {
      let text = "";
      socket.on("data", (chunk: Buffer) => {
        text += chunk.toString("latin1");
        if (text.includes("\r\n")) resolve(text);
      });
      socket.once("close", () => reject(new Error("closed before a response")));
    }),
    3000,
    "HTTP status line",
  );
  return Number(head.split(" ")[1]);
}

/** Runs the limits suite against one target. */
export function runLimitsSuite(target: AppTarget): void {
  const start = <S>(handler: Handler<S>, options: ListenOptions = {}): Promise<Server> =>
    target.start(handler, { port: 0, hostname: "127.0.0.1", ...options });
  const differs = (name: AppDifference) => target.differences?.[name] !== undefined;

  describe(`${target.name}: limits`, { skip: target.skip }, () => {
    it("drops a client that trickles its request head one byte at a time (slowloris) at handshakeTimeoutMs", async () => {
      const why = target.differences?.httpServerHandshakeTimeout;
      const server = await start(echo, { handshakeTimeoutMs: 300 });
      const socket = await connectFrom(server.port, "127.0.0.1");
      try {
        let dropped = false;
        socket.on("close", () => (dropped = true));
        socket.on("error", () => {});
        const request = upgradeRequest({ "X-Padding": "p".repeat(200) });
        let sent = 0;
        // A byte every 10 ms: the head would take over 3 s to arrive.
        while (!dropped && sent < request.length && sent < 150) {
          socket.write(request[sent++]!);
          await delay(10);
        }
        if (why !== undefined) {
          // The runtime's HTTP server reads the head, with its own (longer) timeouts.
          assert.equal(dropped, false, why);
        } else {
          assert.equal(dropped, true, `still open after ${sent} bytes`);
          assert.ok(sent < request.length, "dropped before the head was complete");
          assert.equal(server.connections, 0);
        }
      } finally {
        socket.destroy();
        await server.close();
      }
    });

    it("answers 503 with Retry-After once maxConnections are open, and admits again when one closed", async () => {
      const server = await start(echo, { maxConnections: 2, retryAfterSeconds: 7 });
      try {
        const a = await Client.open(server.url);
        const b = await Client.open(server.url);
        const refused = await rawHandshake(server.port, upgradeRequest());
        assert.equal(refused.status, 503);
        assert.equal(refused.headers["retry-after"], "7");
        refused.socket.destroy();
        assert.equal((await a.roundTrip("still served")).data.toString(), "still served");
        a.ws.close();
        await a.closed;
        await until(() => server.connections === 1, 3000, "the closed connection to leave");
        const c = await Client.open(server.url);
        assert.equal((await c.roundTrip("admitted")).data.toString(), "admitted");
        b.ws.close();
        c.ws.close();
        await Promise.all([b.closed, c.closed]);
      } finally {
        await server.close();
      }
    });

    it("answers 429 past maxConnectionsPerAddress, and still admits another address", async () => {
      const server = await start(echo, { maxConnectionsPerAddress: 1 });
      const sockets: Socket[] = [];
      try {
        const first = await Client.open(server.url);
        const same = await connectFrom(server.port, "127.0.0.1");
        sockets.push(same);
        assert.equal(await statusOf(same), 429);
        const other = await connectFrom(server.port, "127.0.0.2");
        sockets.push(other);
        assert.equal(await statusOf(other), 101, "127.0.0.2 is another peer");
        first.ws.close();
        await first.closed;
      } finally {
        for (const socket of sockets) socket.destroy();
        await server.close();
      }
    });

    it("closes a peer that answers nothing with 1001 at idleTimeoutMs, and keeps one that answers pings", async () => {
      // Deno's native server runs its own idle timeout in whole seconds.
      const idleTimeoutMs = differs("noServerPing") ? 1000 : 400;
      const closes: number[] = [];
      const server = await start({ ...echo, close: (_ctx: Connection, info) => void closes.push(info.code) }, { idleTimeoutMs });
      try {
        const live = await Client.open(server.url); // the ws client answers pings
        const mute = await WsClient.connect(server.url);
        assert.equal(mute.response?.status, 101);
        await delay(idleTimeoutMs * 2.5);
        if (differs("noServerPing")) {
          // Deno pings and closes by itself; the code is Deno's.
          await mute.waitFor(() => mute.frames.some((f) => f.opcode === Op.Close) || mute.events.some((e) => e.kind === "closed"), "Deno's idle close", 5000);
        } else {
          assert.ok(mute.frames.some((f) => f.opcode === Op.Ping), `a ping first: ${mute.describe()}`);
          const result = await mute.expectClose(1001, 3000);
          assert.equal(result.reason, "Idle timeout");
        }
        assert.equal((await live.roundTrip("alive")).data.toString(), "alive", "a client that answers pings stays");
        live.ws.close();
        await live.closed;
        mute.destroy();
      } finally {
        await server.close();
      }
    });

    it("closes with 1008 at the first message over rateLimit, after echoing the ones before it", async () => {
      const errors: unknown[] = [];
      const server = await start({ ...echo, error: (_ctx: Connection, error) => void errors.push(error) }, {
        rateLimit: { messages: 5, intervalMs: 60_000 },
      });
      try {
        const client = await Client.open(server.url);
        for (let i = 0; i < 8; i++) client.ws.send(`m${i}`);
        const closed = await within(client.closed, 3000, "the 1008 close");
        // Deno's native server drops TCP when the messages after the limit arrive after its close frame.
        if (differs("dropsOnMessageAfterClose")) assert.ok([1006, 1008].includes(closed.code), `got ${closed.code}`);
        else assert.equal(closed.code, 1008);
        assert.deepEqual(client.messages.map((m) => m.data.toString()), ["m0", "m1", "m2", "m3", "m4"]);
        assert.ok(errors.some((e) => e instanceof ProtocolError && e.code === "WS_ERR_RATE_LIMIT"));
      } finally {
        await server.close();
      }
    });

    it("drops messages over rateLimit with action drop, and keeps the connection", async () => {
      const server = await start(echo, { rateLimit: { messages: 3, intervalMs: 60_000, action: "drop" } });
      try {
        const client = await Client.open(server.url);
        for (let i = 0; i < 6; i++) client.ws.send(`m${i}`);
        await client.messagesUntil(3);
        await delay(200); // room for a fourth echo, which must not come
        assert.deepEqual(client.messages.map((m) => m.data.toString()), ["m0", "m1", "m2"]);
        assert.equal(client.ws.readyState, 1, "still open");
        client.ws.close();
        await client.closed;
      } finally {
        await server.close();
      }
    });

    it("closes a peer that never reads with 1013 at maxBufferedBytes, and the others are unaffected", async () => {
      const errors: unknown[] = [];
      const closed: number[] = [];
      let refused = 0;
      const chunk = new Uint8Array(64 * 1024).fill(7);
      const server = await start({
        message(ctx, data) {
          if (data !== "flood") return void ctx.send(data);
          // Ignore backpressure on purpose: 64 MiB, far past any socket buffer.
          for (let i = 0; i < 1024 && ctx.readyState === 1; i++) if (!ctx.send(chunk)) refused++;
        },
        error: (_ctx, error) => void errors.push(error),
        close: (_ctx, info) => void closed.push(info.code),
      }, { maxBufferedBytes: 1024 * 1024, closeTimeoutMs: 500 });
      try {
        const other = await Client.open(server.url);
        const stuck = await WsClient.connect(server.url);
        stuck.socket.pause(); // never reads again
        await stuck.sendFrame({ opcode: Op.Text, payload: new TextEncoder().encode("flood") });
        await until(() => errors.some((e) => e instanceof ProtocolError && e.code === "WS_ERR_BUFFER_FULL"), 5000, "the buffer-full fault");
        assert.ok(refused > 0, "sends over the cap were refused");
        assert.equal((await other.roundTrip("fine")).data.toString(), "fine", "another connection still echoes");
        await until(() => server.connections === 1, 5000, "the stuck connection to be dropped");
        assert.equal(closed.length, 1);
        other.ws.close();
        await other.closed;
        stuck.destroy();
      } finally {
        await server.close();
      }
    });

    it("releases connections whose peers vanished with messages in flight while the server waited for drain", async () => {
      let opened = 0;
      let closed = 0;
      const server = await start({
        open: () => void opened++,
        message: (ctx, data) => void ctx.send(data),
        close: () => void closed++,
      }, { idleTimeoutMs: 0 });
      try {
        const payload = new Uint8Array(64 * 1024).fill(1);
        for (let round = 0; round < 20; round++) {
          const client = await WsClient.connect(server.url);
          const sends = [];
          for (let i = 0; i < 24; i++) sends.push(client.sendFrame({ opcode: Op.Binary, payload }));
          await delay(round % 4 * 5); // some echoes read, some in flight
          client.socket.destroy();
          await Promise.allSettled(sends);
        }
        await until(() => server.connections === 0, 9000, `every connection released (${server.connections} left)`);
        assert.equal(closed, opened);
      } finally {
        await server.close();
      }
    });

    it("on close(): runs the shutdown hook, delivers every queued message, then 1001", async () => {
      const burst = 2000;
      const server = await start({
        message(ctx) {
          for (let i = 0; i < burst; i++) ctx.send(`q${i}`.padEnd(512, "."));
        },
        async shutdown(ctx) {
          await delay(20);
          ctx.send("bye");
        },
      }, { shutdownTimeoutMs: 5000 });
      const client = await Client.open(server.url);
      client.ws.send("go");
      await client.messagesUntil(1);
      const closing = server.close();
      const closed = await within(client.closed, 6000, "the 1001 close");
      await closing;
      assert.equal(closed.code, 1001);
      const texts = client.messages.map((m) => m.data.toString());
      assert.equal(texts.length, burst + 1, "every queued message and the hook's");
      for (let i = 0; i < burst; i++) assert.equal(texts[i]!.slice(0, `q${i}.`.length), `q${i}.`);
      assert.equal(texts[burst], "bye");
      assert.equal(server.connections, 0);
    });

    it("on close(): destroys a connection whose shutdown hook never returns at shutdownTimeoutMs", async () => {
      const server = await start({ shutdown: () => new Promise<void>(() => {}) }, { shutdownTimeoutMs: 300 });
      const client = await Client.open(server.url);
      await within(server.close(), 5000, "close() to resolve");
      const closed = await within(client.closed, 3000, "the client to see the end");
      // Deno cannot drop TCP: its terminate() sends a close frame, and its
      // server's shutdown may send 1001 first.
      if (differs("terminateSendsClose")) assert.ok([1001, 1005, 1006].includes(closed.code), `got ${closed.code}`);
      else assert.equal(closed.code, 1006);
      assert.equal(server.connections, 0);
    });
  });
}
