// serveContract() over real sockets, on every server of the runtime it runs
// on (serve()'s raw transport, attach() to node:http, the native one on Deno
// and Bun, and Hono routes with `use: [served]`), with `ws` clients speaking duplex.v1 JSON by
// hand, against Zod and Valibot contracts: calls, issues, typed errors,
// streams under a slow consumer, cancellation by the client and by a
// disconnect, idempotent retries across connections, and the attacker list
// (oversized, 100k-level nesting, wrong types, unknown names, floods): each
// gets its documented answer while another client keeps being served.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import WebSocket from "ws";
import { encode } from "../../client/_wire.ts";
import { type CallHandlers, type Middleware, reliable, serveContract, type ServeContractOptions } from "../../mod.ts";
import { assertV1, serverTargets, type Started, V1 } from "../_sockets.ts";
import { rawConnect, until, upgradeRequest, within } from "../runtimes/_helpers.ts";
import { frame } from "../core/_util.ts";
import { type Chat, validators } from "./_contracts.ts";

/** The message limit of every target: what the oversized test goes over. */
const MAX_MESSAGE = 256 * 1024; // above the 200 KB of 100,000 levels of nesting

const targets = serverTargets(["raw", "attach", "native", "honoNode", "honoDeno", "honoBun"], { maxMessageBytes: MAX_MESSAGE });

/** Handlers that record what ran; `tail` yields big items so a paused reader fills the socket. */
function handlers() {
  const ran: string[] = [];
  const pulls: number[] = [];
  const finalized: string[] = [];
  const aborted: string[] = [];
  let release: () => void = () => {};
  const calls: CallHandlers<Chat> = {
    echo: ({ text }) => ({ text }),
    add: ({ a, b }) => a + b,
    history: async ({ room }) => {
      ran.push(`history ${room}`);
      await new Promise<void>((resolve) => (release = resolve));
      return [{ text: `hello ${room}`, at: 1 }];
    },
    async *tail({ room, n }, ctx) {
      ctx.signal.addEventListener("abort", () => aborted.push(room));
      try {
        for (let i = 1; i <= n; i++) {
          pulls.push(i);
          yield { text: room.startsWith("big") ? "x".repeat(32 * 1024) : `${room} ${i}`, at: i };
        }
      } finally {
        finalized.push(room);
      }
    },
    send: ({ room, text }, ctx) => {
      if (text === "fast") throw ctx.error("TooFast", { retryInMs: 250 });
      if (text === "boom") throw new Error("internal detail");
      ctx.emit("said", { room, text });
      return text.length;
    },
    wait: ({ ms }, ctx) =>
      new Promise<string>((resolve) => {
        const timer = setTimeout(() => resolve(`waited ${ms}`), ms);
        ctx.signal.addEventListener("abort", () => (clearTimeout(timer), aborted.push(`wait ${ms}`), resolve("aborted")));
      }),
    ping: () => undefined,
  };
  return { calls, ran, pulls, finalized, aborted, release: () => release() };
}

for (const target of targets) {
  describe(`contract over real sockets: ${target.name}`, { skip: target.skip }, () => {
    const running: Started[] = [];
    const clients: V1[] = [];
    async function start(validator: number, options: Partial<ServeContractOptions<Chat>> = {}, extra: Middleware<any>[] = []) {
      const h = handlers();
      const errors: unknown[] = [];
      const served = serveContract(validators[validator]!.chat, { calls: h.calls, onError: (e) => void errors.push(e), ...options } as ServeContractOptions<Chat>);
      const server = await target.start([served, ...extra]);
      running.push(server);
      const open = async () => {
        const c = assertV1(await V1.open(server.url));
        clients.push(c);
        return c;
      };
      return { ...h, errors, served, open, server };
    }
    after(async () => {
      for (const c of clients) c.ws.terminate();
      for (const server of running) await server.close();
    });

    for (const [v, { name }] of validators.entries()) {
      it(`calls (${name}): results, issues, typed and generic errors, not_found, server events`, async () => {
        const { open, errors } = await start(v);
        const c = await open();
        assert.deepEqual(await c.call({ type: "call", id: 1, name: "add", input: { a: 20, b: 22 } }), { type: "result", id: 1, value: 42 });
        const invalid = await c.call({ type: "call", id: 2, name: "add", input: { a: "20", b: [] } });
        assert.ok(invalid.type === "error" && invalid.code === "invalid");
        assert.deepEqual(invalid.issues!.map((i) => i.path).sort(), [["a"], ["b"]]);
        assert.deepEqual(await c.call({ type: "call", id: 3, name: "send", input: { room: "r", text: "fast" } }), {
          type: "error",
          id: 3,
          code: "failed",
          message: "TooFast",
          error: { name: "TooFast", data: { retryInMs: 250 } },
        });
        const boom = await c.call({ type: "call", id: 4, name: "send", input: { room: "r", text: "boom" } });
        assert.ok(boom.type === "error" && boom.error?.name === "Error" && !boom.message.includes("internal"));
        assert.equal(errors.length, 1);
        const missing = await c.call({ type: "call", id: 5, name: "__proto__", input: {} });
        assert.ok(missing.type === "error" && missing.code === "not_found");
        assert.deepEqual(await c.call({ type: "call", id: 6, name: "send", input: { room: "r", text: "hi" } }), { type: "result", id: 6, value: 2 });
        assert.deepEqual(c.of("event"), [{ type: "event", name: "said", data: { room: "r", text: "hi" } }]);
      });
    }

    it("streams: credit bounds the pulls; a paused reader stops the generator until it drains", async () => {
      const { open, pulls, finalized, server } = await start(1);
      const c = await open();
      c.send({ type: "call", id: 1, name: "tail", input: { room: "small", n: 10 }, credit: 3 });
      await c.wait((x) => x.of("item", 1).length === 3, "3 items");
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(pulls, [1, 2, 3]);
      c.send({ type: "credit", id: 1, n: 100 });
      await c.wait((x) => x.answer(1) !== undefined, "the end");
      assert.equal(c.of("item", 1).length, 10);
      assert.deepEqual(finalized, ["small"]);
      // A slow consumer: 32 KiB items, no credit limit, a raw TCP client that stops reading
      // (Bun's `ws` is its own, with no socket to pause).
      pulls.length = 0;
      const url = new URL(server.url);
      const socket = await rawConnect(Number(url.port));
      let bytes = 0;
      socket.on("data", (chunk: Buffer) => void (bytes += chunk.length));
      socket.write(upgradeRequest({ "Sec-WebSocket-Protocol": "duplex.v1" }, `GET ${url.pathname} HTTP/1.1`));
      await until(() => bytes > 0, 5000, "101");
      socket.pause();
      socket.write(frame(0x1, encode({ type: "call", id: 1, name: "tail", input: { room: "big", n: 2000 } })));
      await new Promise((resolve) => setTimeout(resolve, 400));
      const pulledWhilePaused = pulls.length;
      assert.ok(pulledWhilePaused > 0 && pulledWhilePaused < 1000, `pulled ${pulledWhilePaused} of 2000 items (64 MB) while the reader was paused`);
      socket.resume();
      await until(() => finalized.includes("big") && bytes > 2000 * 32 * 1024, 20_000, "all 2000 items");
      assert.equal(pulls.length, 2000);
      socket.destroy();
    });

    it("cancellation: a cancel and a disconnect abort the handler and finish the generator", async () => {
      const { open, finalized, aborted } = await start(0);
      const c = await open();
      c.send({ type: "call", id: 1, name: "tail", input: { room: "cancelled", n: 1000 }, credit: 1 });
      await c.wait((x) => x.of("item", 1).length === 1, "first item");
      c.send({ type: "cancel", id: 1 });
      await c.wait((x) => x.answer(1) !== undefined, "cancelled");
      assert.equal((c.answer(1) as { code: string }).code, "cancelled");
      await until(() => finalized.includes("cancelled"), 3000, "generator finished");
      const d = await open();
      d.send({ type: "call", id: 1, name: "tail", input: { room: "dropped", n: 1000 }, credit: 1 });
      d.send({ type: "call", id: 2, name: "wait", input: { ms: 60_000 } });
      await d.wait((x) => x.of("item", 1).length === 1, "first item");
      await new Promise((resolve) => setTimeout(resolve, 20));
      d.ws.terminate();
      await until(() => finalized.includes("dropped") && aborted.includes("wait 60000"), 3000, "aborted by the disconnect");
      assert.ok(aborted.includes("cancelled") && aborted.includes("dropped"));
    });

    it("idempotent calls: a retry on a new connection gets the first run's result; it runs once", async () => {
      const { open, ran, release } = await start(1);
      const first = await open();
      first.send({ type: "call", id: 1, name: "history", input: { room: "x" }, key: "client-7:1" });
      await until(() => ran.length === 1, 3000, "running");
      first.ws.terminate();
      const second = await open();
      second.send({ type: "call", id: 1, name: "history", input: { room: "x" }, key: "client-7:1" });
      await new Promise((resolve) => setTimeout(resolve, 20));
      release();
      const answer = await within(second.wait((x) => x.answer(1) !== undefined, "answer").then(() => second.answer(1)), 5000);
      assert.deepEqual(answer, { type: "result", id: 1, value: [{ text: "hello x", at: 1 }] });
      assert.deepEqual(await second.call({ type: "call", id: 2, name: "history", input: { room: "x" }, key: "client-7:1" }), { ...answer, id: 2 });
      assert.deepEqual(ran, ["history x"]);
    });

    it("attackers: each gets its documented answer, and another client is served meanwhile", async () => {
      const { open } = await start(0, { maxCallsInFlight: 8, maxQueued: 64, events: { typing: () => new Promise(() => {}) } });
      const bystander = await open();
      const check = async (id: number) => assert.deepEqual(await bystander.call({ type: "call", id, name: "add", input: { a: id, b: 1 } }), { type: "result", id, value: id + 1 });
      // Oversized: over the connection's message limit.
      const big = await open();
      big.send({ type: "call", id: 1, name: "echo", input: { text: "x".repeat(MAX_MESSAGE * 2) } });
      assert.equal((await within(big.closed, 5000, "oversized closed")).code, 1009);
      await check(1);
      // 100,000 levels of nesting, refused before parsing.
      const deep = await open();
      deep.ws.send(`{"type":"call","id":1,"name":"echo","input":${"[".repeat(100_000)}${"]".repeat(100_000)}}`);
      assert.equal((await within(deep.closed, 5000, "deep closed")).code, 4400);
      await check(2);
      // Wrong types and unknown names: answered, the connection stays.
      const wrong = await open();
      const answers = await Promise.all([
        wrong.call({ type: "call", id: 1, name: "add", input: "1 + 1" }),
        wrong.call({ type: "call", id: 2, name: "add", input: { a: 1e400, b: null } }),
        wrong.call({ type: "call", id: 3, name: "constructor", input: {} }),
        wrong.call({ type: "call", id: 4, name: "x".repeat(128), input: {} }),
      ]);
      assert.deepEqual(answers.map((a) => a.type === "error" && a.code), ["invalid", "invalid", "not_found", "not_found"]);
      await check(3);
      // A flood of calls: 8 run, the rest are busy; the flooder keeps being served.
      const flood = await open();
      for (let id = 1; id <= 5000; id++) flood.send({ type: "call", id, name: id <= 8 ? "wait" : "add", input: id <= 8 ? { ms: 200 } : { a: 1, b: 1 } });
      await check(4);
      await flood.wait((x) => x.of("error").length + x.of("result").length === 5000, "5000 answers", 15_000);
      assert.equal(flood.of("error").filter((e) => e.code === "busy").length, 4992);
      assert.deepEqual(flood.of("result").map((r) => r.value), Array(8).fill("waited 200"));
      assert.deepEqual(await flood.call({ type: "call", id: 9999, name: "add", input: { a: 1, b: 2 } }), { type: "result", id: 9999, value: 3 });
      // A flood of events whose handler never ends: 4429. An invalid event: 4422.
      const events = await open();
      // Exactly one over: a message after the close makes Deno's native server drop TCP (1006).
      for (let i = 0; i <= 64; i++) events.send({ type: "emit", name: "typing", data: { room: "a" } });
      assert.equal((await within(events.closed, 5000, "event flood closed")).code, 4429);
      const invalid = await open();
      invalid.send({ type: "emit", name: "typing", data: { room: 42 } });
      assert.equal((await within(invalid.closed, 5000, "invalid event closed")).code, 4422);
      await check(5);
      assert.equal(bystander.ws.readyState, WebSocket.OPEN);
    });

    it("serves calls and topics on one connection next to reliable()", async () => {
      const live = reliable({ authorize: { publish: () => true } });
      const { open } = await start(1, {}, [live]);
      const c = await open();
      c.send({ type: "subscribe", id: 1, topic: "t", from: "now" });
      await c.wait((x) => x.of("subscribed").length === 1, "subscribed");
      c.send({ type: "publish", id: 2, topic: "t", key: "k1", data: "hello" });
      assert.deepEqual(await c.call({ type: "call", id: 3, name: "add", input: { a: 1, b: 1 } }), { type: "result", id: 3, value: 2 });
      await c.wait((x) => x.of("ack").length === 1 && x.of("message").length === 1, "ack and message");
      await live.close();
    });
  });
}
