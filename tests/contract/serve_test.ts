// serveContract() on the real Pump without sockets, with Zod and with
// Valibot: validated calls (issues on invalid input), typed errors, output
// validation, streams with credit and drain backpressure, cancellation by
// the client and by a disconnect, idempotent dedupe (in flight, done, across
// connections, the window, the bound), the limits (busy, 4429), invalid
// events (4422), malformed and deeply nested messages (4400), and the
// layer together with reliable() on one connection.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { App } from "../../plugins/app.ts";
import { CallError, type CallHandlers, serveContract, type ServeContractOptions } from "../../plugins/contract.ts";
import { reliable } from "../../plugins/reliable.ts";
import { UsageError } from "../../core/errors.ts";
import { connect, FakeClock, flush } from "../plugins/_harness.ts";
import type { Peer } from "../../plugins/context.ts";
import { feed, received, send, settle, v1 } from "../reliable/_util.ts";
import type { ServerMessage } from "../../client/_wire.ts";
import { type Chat, validators } from "./_contracts.ts";

type State = { user?: string };

/** A handler set that records what ran. */
function recorder() {
  const log: string[] = [];
  const pulls: number[] = [];
  const finalized: string[] = [];
  const signals: AbortSignal[] = [];
  const gates = new Map<number, () => void>();
  const calls: CallHandlers<Chat, State> = {
    echo: ({ text }) => ({ text }),
    add: ({ a, b }) => a + b,
    history: async ({ room }) => {
      log.push(`history ${room}`);
      await new Promise<void>((resolve) => gates.set(gates.size, resolve));
      return [{ text: `hello ${room}`, at: 1 }];
    },
    async *tail({ room, n }, ctx) {
      signals.push(ctx.signal);
      try {
        for (let i = 1; i <= n; i++) {
          pulls.push(i);
          yield { text: `${room} ${i}`, at: i };
        }
      } finally {
        finalized.push(room);
      }
    },
    send: ({ room, text }, ctx) => {
      if (text === "fast") throw ctx.error("TooFast", { retryInMs: 250 });
      if (text === "closed") throw new CallError("Closed", null, "The room is closed");
      if (text === "boom") throw new Error("secret database detail");
      if (text === "undeclared") throw new CallError("Nope", 1);
      if (text === "bad output") return "not a number" as unknown as number;
      ctx.emit("said", { room, text });
      return text.length;
    },
    wait: ({ ms }, ctx) =>
      new Promise<string>((resolve, reject) => {
        signals.push(ctx.signal);
        const timer = setTimeout(() => resolve(`waited ${ms}`), ms);
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          log.push("wait aborted");
          reject(new Error("aborted"));
        });
      }),
    ping: () => undefined,
  };
  const open = (i: number) => gates.get(i)?.();
  return { log, pulls, finalized, signals, calls, open };
}

const byType = <T extends ServerMessage["type"]>(messages: ServerMessage[], type: T) =>
  messages.filter((m) => m.type === type) as Extract<ServerMessage, { type: T }>[];

for (const { name, chat } of validators) {

  const setup = (options: Partial<ServeContractOptions<Chat, State>> = {}) => {
    const r = recorder();
    const errors: unknown[] = [];
    const events: string[] = [];
    const peers: Peer<State>[] = [];
    const served = serveContract<Chat, State>(chat, {
      calls: r.calls,
      events: {
        typing: ({ room }, ctx) => {
          events.push(`typing ${room}`);
          ctx.emit("said", { room, text: "someone is typing" });
        },
      },
      onError: (e) => void errors.push(e),
      ...options,
    } as ServeContractOptions<Chat, State>);
    const app = new App<State>().use(served, { open: (ctx) => void peers.push(ctx.peer) });
    return { ...r, served, app, errors, events, peers };
  };

  describe(`contract (${name}): calls`, () => {
    it("answers a valid call with its result, and chooses duplex.v1", async () => {
      const { app } = setup();
      const conn = await v1(app);
      assert.equal(conn.answer.header("sec-websocket-protocol"), "duplex.v1");
      await send(conn, { type: "call", id: 1, name: "add", input: { a: 2, b: 3 } });
      await send(conn, { type: "call", id: 2, name: "echo", input: { text: "hi" } });
      await send(conn, { type: "call", id: 3, name: "ping", input: undefined });
      await settle(() => received(conn).length === 3);
      assert.deepEqual(received(conn), [
        { type: "result", id: 1, value: 5 },
        { type: "result", id: 2, value: { text: "hi" } },
        { type: "result", id: 3, value: undefined },
      ]);
    });

    it("answers invalid input with the issues, without running the handler", async () => {
      const { app, log } = setup();
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "add", input: { a: "2", b: 3 } });
      await send(conn, { type: "call", id: 2, name: "echo", input: { text: "x".repeat(101) } });
      await send(conn, { type: "call", id: 3, name: "history", input: 42 });
      await send(conn, { type: "call", id: 4, name: "ping", input: { surprise: true } });
      await settle(() => received(conn).length === 4);
      const [a, b, c, d] = received(conn) as Extract<ServerMessage, { type: "error" }>[];
      for (const e of [a, b, c, d]) assert.equal(e!.code, "invalid");
      assert.deepEqual(a!.issues!.map((i) => i.path), [["a"]]);
      assert.ok(a!.issues![0]!.message.length > 0);
      assert.deepEqual(b!.issues!.map((i) => i.path), [["text"]]);
      assert.equal(c!.issues!.length, 1);
      assert.deepEqual(d!.issues, [{ message: "This call takes no input" }]);
      assert.deepEqual(log, [], "no handler ran");
      assert.deepEqual(conn.closes(), []);
    });

    it("sends declared errors with their name and data; anything else is generic and reported", async () => {
      const { app, errors } = setup();
      const conn = await v1(app);
      for (const [id, text] of [[1, "fast"], [2, "closed"], [3, "boom"], [4, "undeclared"]] as const) {
        await send(conn, { type: "call", id, name: "send", input: { room: "r", text } });
      }
      await settle(() => received(conn).length === 4);
      assert.deepEqual(received(conn), [
        { type: "error", id: 1, code: "failed", message: "TooFast", error: { name: "TooFast", data: { retryInMs: 250 } } },
        { type: "error", id: 2, code: "failed", message: "The room is closed", error: { name: "Closed", data: null } },
        { type: "error", id: 3, code: "failed", message: "The call failed", error: { name: "Error" } },
        { type: "error", id: 4, code: "failed", message: "The call failed", error: { name: "Error" } },
      ]);
      assert.equal(errors.length, 2);
      assert.match(String(errors[0]), /secret database detail/);
      assert.ok(errors[1] instanceof UsageError && errors[1].code === "ERR_UNDECLARED_ERROR");
      assert.ok(!conn.texts().some((t) => t.includes("secret")), "the thrown message stays on the server");
    });

    it("answers an unknown call not_found, and keeps serving", async () => {
      const { app } = setup();
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "dropTables", input: {} });
      await send(conn, { type: "call", id: 2, name: "constructor", input: {} });
      await send(conn, { type: "call", id: 3, name: "add", input: { a: 1, b: 1 } });
      await settle(() => received(conn).length === 3);
      const [a, b, c] = received(conn);
      assert.deepEqual([a!.type === "error" && a!.code, b!.type === "error" && b!.code], ["not_found", "not_found"]);
      assert.deepEqual(c, { type: "result", id: 3, value: 2 });
    });

    it("with validateOutput, a bad result is answered failed and reported; server events are checked", async () => {
      const { app, errors, served } = setup({ validateOutput: true });
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "send", input: { room: "r", text: "bad output" } });
      await send(conn, { type: "call", id: 2, name: "send", input: { room: "r", text: "ok" } });
      await settle(() => received(conn).length === 3);
      const got = received(conn);
      assert.deepEqual(got[0], { type: "error", id: 1, code: "failed", message: "The call failed", error: { name: "Error" } });
      assert.deepEqual(got.slice(1), [{ type: "event", name: "said", data: { room: "r", text: "ok" } }, { type: "result", id: 2, value: 2 }]);
      assert.equal(errors.length, 1);
      assert.ok(errors[0] instanceof UsageError && errors[0].code === "ERR_INVALID_OUTPUT");
      assert.throws(() => served.emit([], "said", { room: 1 } as never), (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_OUTPUT");
      assert.throws(() => served.emit([], "nope" as never, {} as never), (e: unknown) => e instanceof UsageError && e.code === "ERR_UNKNOWN_EVENT");
      assert.throws(() => served.emit([], "toString" as never, {} as never), (e: unknown) => e instanceof UsageError && e.code === "ERR_UNKNOWN_EVENT");
    });

    it("closes with 4400 on malformed, deeply nested or duplicate-id messages, and 1003 on binary", async () => {
      const { app, calls } = setup();
      const bad = [
        "not json",
        '{"type":"call","id":1}',
        `{"type":"call","id":1,"name":"echo","input":${"[".repeat(100_000)}${"]".repeat(100_000)}}`,
      ];
      for (const text of bad) {
        const conn = await v1(app);
        await conn.text(text);
        assert.equal(conn.closes()[0]?.code, 4400, text.slice(0, 40));
      }
      const binary = await v1(app);
      await binary.binary([1, 2, 3]);
      assert.equal(binary.closes()[0]?.code, 1003);
      const dup = await v1(app);
      await send(dup, { type: "call", id: 7, name: "wait", input: { ms: 10_000 } });
      await send(dup, { type: "call", id: 7, name: "wait", input: { ms: 10_000 } });
      assert.equal(dup.closes()[0]?.code, 4400);
      assert.ok(calls);
    });
  });

  describe(`contract (${name}): events`, () => {
    it("hands valid events to their handler, in order; ctx.emit sends server events", async () => {
      const { app, events } = setup();
      const conn = await v1(app);
      await send(conn, { type: "emit", name: "typing", data: { room: "a" } });
      await send(conn, { type: "emit", name: "typing", data: { room: "b" } });
      await send(conn, { type: "emit", name: "bye", data: null }); // declared, no handler: dropped
      await settle(() => received(conn).length === 2);
      assert.deepEqual(events, ["typing a", "typing b"]);
      assert.deepEqual(byType(received(conn), "event").map((e) => e.data), [
        { room: "a", text: "someone is typing" },
        { room: "b", text: "someone is typing" },
      ]);
      assert.deepEqual(conn.closes(), []);
    });

    it("closes with 4422 on an undeclared event or data that fails its schema", async () => {
      const { app, events } = setup();
      for (const m of [{ name: "typing", data: { room: "" } }, { name: "typing", data: "a" }, { name: "shout", data: {} }, { name: "toString", data: {} }]) {
        const conn = await v1(app);
        await send(conn, { type: "emit", ...m });
        await settle(() => conn.closes().length === 1);
        assert.equal(conn.closes()[0]!.code, 4422, JSON.stringify(m));
      }
      assert.deepEqual(events, []);
    });

    it("emits to many connections at once; closed ones and other protocols are skipped", async () => {
      const { app, served, peers } = setup();
      const a = await v1(app);
      const b = await v1(app);
      const plain = await connect(app);
      assert.equal(served.emit(peers, "said", { room: "all", text: "hi" }), 2);
      await b.close();
      assert.equal(served.emit(peers, "said", { room: "all", text: "again" }), 1);
      assert.deepEqual(plain.texts(), []);
      await flush();
      assert.equal(byType(received(a), "event").length, 2);
    });
  });

  describe(`contract (${name}): streams`, () => {
    it("pulls the generator only as far as the client's credit, then ends with result", async () => {
      const { app, pulls, finalized } = setup();
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "tail", input: { room: "r", n: 5 }, credit: 2 });
      await settle(() => received(conn).length === 2);
      await flush(10);
      assert.deepEqual(pulls, [1, 2], "nothing pulled beyond the credit");
      assert.deepEqual(received(conn).map((m) => m.type === "item" && (m.value as { at: number }).at), [1, 2]);
      await send(conn, { type: "credit", id: 1, n: 2 });
      await settle(() => received(conn).length === 4);
      await flush(10);
      assert.deepEqual(pulls, [1, 2, 3, 4]);
      await send(conn, { type: "credit", id: 1, n: 10 });
      await settle(() => received(conn).length === 6);
      assert.deepEqual(received(conn).at(-1), { type: "result", id: 1, value: undefined });
      assert.deepEqual(finalized, ["r"]);
    });

    it("waits for the output to drain before pulling the next item", async () => {
      const { app, pulls } = setup();
      const conn = await v1(app, { options: { highWaterMark: 16 } });
      conn.transport.accepting = false; // the socket takes nothing: each item stays queued, above the mark
      await send(conn, { type: "call", id: 1, name: "tail", input: { room: "r", n: 3 } });
      await flush(10);
      assert.deepEqual(pulls, [1], "one item written, then the wait for drain");
      conn.transport.accepting = true;
      for (let i = 0; i < 50 && !received(conn).some((m) => m.type === "result"); i++) {
        conn.pump.onDrain();
        await flush(1);
      }
      assert.deepEqual(pulls, [1, 2, 3]);
    });

    it("a cancel answers cancelled, aborts the signal and finishes the generator", async () => {
      const { app, pulls, finalized, signals } = setup();
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "tail", input: { room: "r", n: 100 }, credit: 1 });
      await settle(() => received(conn).length === 1);
      await send(conn, { type: "cancel", id: 1 });
      await settle(() => finalized.length === 1);
      assert.equal(signals[0]!.aborted, true);
      assert.deepEqual(pulls, [1]);
      assert.deepEqual(received(conn).at(-1), { type: "error", id: 1, code: "cancelled", message: "The call was cancelled" });
      await send(conn, { type: "credit", id: 1, n: 5 }); // late: ignored
      await send(conn, { type: "cancel", id: 1 }); // over: ignored
      await flush(5);
      assert.equal(received(conn).length, 2);
      assert.deepEqual(pulls, [1]);
    });

    it("a disconnect aborts running calls and finishes generators", async () => {
      const { app, finalized, signals, log } = setup();
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "tail", input: { room: "gone", n: 100 }, credit: 1 });
      await send(conn, { type: "call", id: 2, name: "wait", input: { ms: 60_000 } });
      await settle(() => received(conn).length === 1 && signals.length === 2);
      await conn.close(1000);
      await settle(() => finalized.length === 1);
      assert.deepEqual(signals.map((s) => s.aborted), [true, true]);
      assert.deepEqual(log, ["wait aborted"]);
    });

    it("a cancelled plain call answers cancelled once; its late result is dropped", async () => {
      const { app, signals } = setup();
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "wait", input: { ms: 60_000 } });
      await send(conn, { type: "cancel", id: 1 });
      await flush(10);
      assert.equal(signals[0]!.aborted, true);
      assert.deepEqual(received(conn), [{ type: "error", id: 1, code: "cancelled", message: "The call was cancelled" }]);
    });
  });

  describe(`contract (${name}): idempotent calls`, () => {
    it("a retried key gets the first run's result; the handler runs once", async () => {
      const { app, log, open } = setup();
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "history", input: { room: "a" }, key: "c1:1" });
      await send(conn, { type: "call", id: 2, name: "history", input: { room: "a" }, key: "c1:1" }); // in flight: waits
      open(0);
      await settle(() => received(conn).length === 2);
      await send(conn, { type: "call", id: 3, name: "history", input: { room: "a" }, key: "c1:1" }); // done: stored
      await settle(() => received(conn).length === 3);
      const value = [{ text: "hello a", at: 1 }];
      assert.deepEqual(received(conn), [{ type: "result", id: 1, value }, { type: "result", id: 2, value }, { type: "result", id: 3, value }]);
      assert.deepEqual(log, ["history a"]);
    });

    it("a key reused with another input is refused; keys are per call name", async () => {
      const { app, log, open } = setup();
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "history", input: { room: "a" }, key: "k" });
      await send(conn, { type: "call", id: 2, name: "history", input: { room: "b" }, key: "k" });
      await settle(() => received(conn).length === 1);
      const refused = received(conn)[0] as Extract<ServerMessage, { type: "error" }>;
      assert.equal(refused.id, 2);
      assert.equal(refused.code, "invalid");
      open(0);
      await settle(() => received(conn).length === 2);
      assert.deepEqual(log, ["history a"]);
    });

    it("runs once across a reconnect: the retry on the next connection gets the run's outcome", async () => {
      const { app, log, open } = setup();
      const first = await v1(app);
      await send(first, { type: "call", id: 1, name: "history", input: { room: "x" }, key: "c9:4" });
      await first.close(1001); // the link drops mid-call
      const second = await v1(app);
      await send(second, { type: "call", id: 1, name: "history", input: { room: "x" }, key: "c9:4" });
      open(0);
      await settle(() => received(second).length === 1);
      assert.deepEqual(received(second), [{ type: "result", id: 1, value: [{ text: "hello x", at: 1 }] }]);
      assert.deepEqual(log, ["history x"]);
    });

    it("forgets keys after the window, and beyond maxDedupeKeys", async () => {
      const clock = new FakeClock();
      const { app, log, open } = setup({ clock, dedupeWindowMs: 1000, maxDedupeKeys: 2 });
      const conn = await v1(app);
      let id = 0;
      const call = async (key: string) => {
        await send(conn, { type: "call", id: ++id, name: "history", input: { room: key }, key });
        open(log.length - 1);
        await settle(() => received(conn).length === id);
      };
      await call("a");
      await call("a");
      assert.equal(log.length, 1);
      clock.advance(1001);
      await call("a");
      assert.equal(log.length, 2, "run again after the window");
      await call("b");
      await call("c"); // a is evicted: at most two keys
      await call("a");
      assert.deepEqual(log, ["history a", "history a", "history b", "history c", "history a"]);
    });

    it("a run evicted from a full store while in flight still answers its callers", async () => {
      const { app, log, open } = setup({ maxDedupeKeys: 1 });
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "history", input: { room: "a" }, key: "a" });
      await send(conn, { type: "call", id: 2, name: "history", input: { room: "b" }, key: "b" }); // evicts a
      open(0);
      open(1);
      await settle(() => received(conn).length === 2);
      assert.deepEqual(received(conn).map((m) => m.type === "result" && m.id).sort(), [1, 2]);
      assert.equal(log.length, 2);
    });

    it("a dedupeScope that throws answers failed and is reported", async () => {
      const { app, errors } = setup({ dedupeScope: () => { throw new Error("no user"); } });
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "history", input: { room: "a" }, key: "a" });
      await settle(() => received(conn).length === 1);
      assert.equal((received(conn)[0] as { code: string }).code, "failed");
      assert.match(String(errors[0]), /no user/);
    });

    it("an idempotent call without a key is not deduplicated", async () => {
      const { app, log, open } = setup();
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "history", input: { room: "a" } });
      await send(conn, { type: "call", id: 2, name: "history", input: { room: "a" } });
      open(0);
      open(1);
      await settle(() => received(conn).length === 2);
      assert.deepEqual(log, ["history a", "history a"]);
    });

    it("dedupeScope keeps one user's keys from another's", async () => {
      const { app, log, open } = setup({ dedupeScope: (peer) => String(peer.request.headers.get("x-user")) });
      const alice = await v1(app, { request: { headers: { "x-user": "alice" } } });
      const bob = await v1(app, { request: { headers: { "x-user": "bob" } } });
      await send(alice, { type: "call", id: 1, name: "history", input: { room: "a" }, key: "1" });
      await send(bob, { type: "call", id: 1, name: "history", input: { room: "a" }, key: "1" });
      open(0);
      open(1);
      await settle(() => received(alice).length === 1 && received(bob).length === 1);
      assert.equal(log.length, 2);
    });
  });

  describe(`contract (${name}): limits`, () => {
    it("answers busy beyond maxCallsInFlight and keeps serving", async () => {
      const { app } = setup({ maxCallsInFlight: 2 });
      const conn = await v1(app);
      await send(conn, { type: "call", id: 1, name: "wait", input: { ms: 30 } });
      await send(conn, { type: "call", id: 2, name: "wait", input: { ms: 30 } });
      for (let id = 3; id < 200; id++) feed(conn, { type: "call", id, name: "add", input: { a: 1, b: 1 } });
      await flush(5);
      const busy = received(conn).filter((m) => m.type === "error" && m.code === "busy");
      assert.equal(busy.length, 197);
      await settle(() => received(conn).filter((m) => m.type === "result").length === 2);
      await send(conn, { type: "call", id: 500, name: "add", input: { a: 2, b: 2 } });
      await settle(() => received(conn).some((m) => m.type === "result" && m.id === 500));
      assert.deepEqual(conn.closes(), []);
    });

    it("closes with 4429 when more than maxQueued messages wait", async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const { app } = setup({ maxQueued: 10, events: { typing: () => gate } });
      const conn = await v1(app);
      for (let i = 0; i < 10; i++) feed(conn, { type: "emit", name: "typing", data: { room: "a" } });
      await flush(5);
      assert.deepEqual(conn.closes(), []);
      await send(conn, { type: "emit", name: "typing", data: { room: "a" } });
      assert.equal(conn.closes()[0]?.code, 4429);
      release();
    });

    it("refuses bad options and a contract call without a handler", () => {
      const bad: [unknown, RegExp][] = [
        [{ calls: {} }, /calls\.echo must be a function/],
        [{ calls: { ...recorder().calls, extra: () => 1 } }, /extra/],
        [{ calls: recorder().calls, maxCallsInFlight: 0 }, /maxCallsInFlight must be a positive integer/],
        [{ calls: recorder().calls, validateOutput: "yes" }, /validateOutput must be a boolean/],
        [{ calls: recorder().calls, events: { typing: 1 } }, /events\.typing must be a function/],
        [{ calls: recorder().calls, maxInFlight: 1 }, /maxInFlight/],
      ];
      for (const [options, message] of bad) {
        assert.throws(() => serveContract(chat, options as never), (e: unknown) => e instanceof UsageError && message.test(e.message), String(message));
      }
    });
  });
}

describe("contract with reliable() on one connection", () => {
  for (const order of ["contract first", "reliable first"]) {
    it(`subscribes, publishes and calls on one connection (${order})`, async () => {
      const served = serveContract(validators[0]!.chat, { calls: recorder().calls, onError: () => {} });
      const live = reliable({ authorize: { publish: () => true } });
      const app = new App().use(...(order === "contract first" ? [served, live] : [live, served]));
      const conn = await v1(app);
      await send(conn, { type: "subscribe", id: 1, topic: "t", from: "now" });
      await send(conn, { type: "call", id: 2, name: "add", input: { a: 1, b: 2 } });
      await send(conn, { type: "publish", id: 3, topic: "t", key: "k", data: "hi" });
      await send(conn, { type: "ping", id: 4 });
      await settle(() => received(conn).length === 5);
      const types = received(conn).map((m) => m.type).sort();
      assert.deepEqual(types, ["ack", "message", "pong", "result", "subscribed"]);
      assert.equal(conn.answer.header("sec-websocket-protocol"), "duplex.v1");
      await live.close();
    });
  }

  it("alone, each answers the other's requests: not_found, or 4422 for an event", async () => {
    const live = reliable();
    const onlyTopics = await v1(new App().use(live));
    await send(onlyTopics, { type: "call", id: 1, name: "add", input: {} });
    await settle(() => received(onlyTopics).length === 1);
    assert.equal((received(onlyTopics)[0] as { code: string }).code, "not_found");
    await send(onlyTopics, { type: "emit", name: "typing", data: {} });
    assert.equal(onlyTopics.closes()[0]?.code, 4422);
    await live.close();
    const onlyCalls = await v1(new App().use(serveContract(validators[1]!.chat, { calls: recorder().calls })));
    await send(onlyCalls, { type: "subscribe", id: 1, topic: "t", from: "now" });
    await send(onlyCalls, { type: "ping", id: 2 });
    await settle(() => received(onlyCalls).length === 2);
    assert.deepEqual(received(onlyCalls).map((m) => m.type === "error" ? m.code : m.type), ["not_found", "pong"]);
  });
});
