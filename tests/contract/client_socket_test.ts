// DuplexClient against serveContract() over real sockets, on every server
// of the runtime it runs on (serve()'s raw transport, the native one on Deno
// and Bun, a Hono route behind @hono/node-server + injectWebSocket()), with
// the test contract written with Zod and with Valibot (_contracts.ts): typed
// round trips, invalid input with its issues, declared and undeclared
// errors, timeouts and aborts that stop the handler, a disconnect and the
// server closing its contract that stop it too (the call rejects `closed`),
// an idempotent call that survives a cut connection and runs once, streams
// that the server pulls only as the client grants credit, `break` that
// finishes the server's generator, events both ways, 4422 for a bad event,
// `busy` beyond the server's calls in flight, and calls next to reliable()
// subscriptions on one connection. The client runs on ws's WebSocket on
// Node 20 and on the global one on Deno and Bun.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { DuplexClient, DuplexError, type WebSocketConstructor } from "../../client/mod.ts";
import { type Middleware, reliable } from "../../mod.ts";
import { type CallHandlers, serveContract } from "../../plugins/contract.ts";
import type { Peer } from "../../plugins/context.ts";
import { delay, until, within } from "../runtimes/_helpers.ts";
import { serverTargets, type Started } from "../_sockets.ts";
import { type Chat, validators } from "./_contracts.ts";

const g = globalThis as Record<string, unknown>;
const WebSocket: WebSocketConstructor = typeof g.WebSocket === "function" ? g.WebSocket as WebSocketConstructor : (await import("ws")).WebSocket;

const targets = serverTargets(["raw", "native", "honoNode"]);

/** The DuplexError a promise rejects with. */
async function failure(p: Promise<unknown>): Promise<DuplexError> {
  const e = await p.then((v) => assert.fail(`resolved with ${JSON.stringify(v)}`), (e: unknown) => e);
  assert.ok(e instanceof DuplexError, String(e));
  return e;
}

/** The server's handlers, with what they did. */
function handlers() {
  const seen = {
    /** Runs of history, by room. */
    history: [] as string[],
    /** Items each tail generator yielded so far, by room. */
    pulled: new Map<string, number>(),
    /** Rooms whose tail generator finished (its `finally` ran). */
    finished: [] as string[],
    /** Signals of wait's runs. */
    waits: [] as AbortSignal[],
    /** Peers of the calls, to cut them. */
    peers: [] as Peer<any>[],
    /** Client events heard. */
    typing: [] as string[],
  };
  /** Opens history's gate (a room named "gate:…" waits for it). */
  let openGate: () => void = () => {};
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  const calls: CallHandlers<Chat> = {
    echo: ({ text }) => ({ text }),
    add: ({ a, b }) => a + b,
    async history({ room }, ctx) {
      seen.history.push(room);
      seen.peers.push(ctx.peer);
      if (room.startsWith("gate:")) await gate;
      return [{ text: `hello ${room}`, at: 1 }];
    },
    async *tail({ room, n }) {
      try {
        for (let i = 1; i <= n; i++) {
          seen.pulled.set(room, i);
          yield { text: `${room} ${i}`, at: i };
        }
      } finally {
        seen.finished.push(room);
      }
    },
    send({ room, text }, ctx) {
      if (text === "fast") throw ctx.error("TooFast", { retryInMs: 250 });
      if (text === "boom") throw new Error("secret detail");
      seen.peers.push(ctx.peer);
      ctx.emit("said", { room, text });
      return text.length;
    },
    wait: ({ ms }, ctx) =>
      new Promise<string>((resolve, reject) => {
        seen.waits.push(ctx.signal);
        seen.peers.push(ctx.peer);
        const timer = setTimeout(() => resolve(`waited ${ms}`), ms);
        ctx.signal.addEventListener("abort", () => (clearTimeout(timer), reject(ctx.signal.reason)));
      }),
    ping: () => undefined,
  };
  return { seen, calls, openGate };
}

for (const target of targets) {
  for (const { name: validator, chat } of validators) {
    describe(`DuplexClient and serveContract over real sockets with ${validator}: ${target.name}`, { skip: target.skip }, () => {
      const servers: Started[] = [];
      const clients: DuplexClient<any>[] = [];
      after(async () => {
        for (const c of clients) c.close();
        for (const s of servers) await s.close();
      });

      async function start(withReliable = false, maxCallsInFlight?: number) {
        const h = handlers();
        const errors: unknown[] = [];
        const served = serveContract<Chat, any>(chat, {
          ...(maxCallsInFlight === undefined ? {} : { maxCallsInFlight }),
          calls: h.calls,
          events: { typing: ({ room }, ctx) => void (h.seen.typing.push(room), ctx.emit("said", { room, text: "someone is typing" })) },
          onError: (e) => void errors.push(e),
        });
        const use: Middleware<any>[] = withReliable ? [reliable({ authorize: { publish: () => true } }), served] : [served];
        const server = await target.start(use);
        servers.push(server);
        const client = (options: ConstructorParameters<typeof DuplexClient<Chat>>[1] = {}) => {
          const c = new DuplexClient<Chat>(server.url, { WebSocket, reconnect: { initialDelayMs: 10, maxDelayMs: 50 }, ...options });
          clients.push(c);
          return c;
        };
        return { ...h, errors, served, client };
      }

      it("calls round trip with their types; invalid input comes back with issues; unknown calls are not_found", async () => {
        const { client } = await start();
        const c = client();
        assert.deepEqual(await c.call("echo", { text: "hi" }), { text: "hi" });
        assert.equal(await c.call("add", { a: 2, b: 3 }), 5);
        assert.equal(await c.call("ping"), undefined);
        const invalid = await failure(c.call("add", { a: 2, b: "3" } as any));
        assert.ok(invalid instanceof DuplexError);
        assert.equal(invalid.code, "invalid");
        assert.equal(invalid.call, "add");
        assert.ok(invalid.issues!.length >= 1);
        assert.deepEqual(invalid.issues![0]!.path, ["b"]);
        const tooLong = await failure(c.call("echo", { text: "x".repeat(101) }));
        assert.equal(tooLong.code, "invalid");
        const unknown = await failure((c as DuplexClient).call("nope", 1));
        assert.equal(unknown.code, "not_found");
        assert.equal(c.status, "open", "the connection goes on");
        assert.equal(await c.call("add", { a: 1, b: 1 }), 2);
      });

      it("declared errors arrive with their name and data; an undeclared throw is a generic Error", async () => {
        const { client, errors } = await start();
        const c = client();
        const fast = await c.call("send", { room: "r", text: "fast" }).catch((e: unknown) => e);
        assert.ok(c.isCallError(fast, "TooFast"));
        assert.deepEqual(fast.data, { retryInMs: 250 });
        const boom = await c.call("send", { room: "r", text: "boom" }).catch((e: unknown) => e);
        assert.ok(c.isCallError(boom, "Error"));
        assert.doesNotMatch(boom.message, /secret/, "the server's detail stays there");
        assert.equal(errors.length, 1, "and goes to onError");
      });

      it("a timeout and an abort reject at once and stop the handler on the server", async () => {
        const { client, seen } = await start();
        const c = client();
        const timedOut = await failure(c.call("wait", { ms: 10_000 }, { timeoutMs: 50 }));
        assert.equal(timedOut.code, "timeout");
        await until(() => seen.waits[0]?.aborted === true, 3000, "the handler's signal aborted by the cancel");
        const ac = new AbortController();
        const aborted = failure(c.call("wait", { ms: 10_000 }, { signal: ac.signal }));
        await until(() => seen.waits.length === 2, 3000, "the second wait running");
        ac.abort();
        assert.equal((await aborted).code, "cancelled");
        await until(() => seen.waits[1]!.aborted, 3000, "the second handler's signal aborted");
        assert.equal(await c.call("wait", { ms: 1 }), "waited 1", "the connection still serves");
      });

      it("a disconnect aborts the handler; a plain call in flight rejects with closed", async () => {
        const { client, seen } = await start();
        const c = client();
        const p = failure(c.call("wait", { ms: 10_000 }));
        await until(() => seen.peers.length === 1, 3000, "the call running");
        seen.peers[0]!.close(1012, "restart");
        assert.equal((await p).code, "closed");
        await until(() => seen.waits[0]!.aborted, 3000, "the handler's signal aborted by the disconnect");
        await until(() => c.status === "open", 3000, "reconnected");
        assert.equal(await c.call("add", { a: 1, b: 2 }), 3);
      });

      it("the server stopping its contract cancels the running handler, and the call rejects with closed", async () => {
        const { client, seen, served } = await start();
        const c = client({ reconnect: { maxRetries: 0 } });
        const p = failure(c.call("wait", { ms: 10_000 }));
        await until(() => seen.waits.length === 1, 3000, "the call running");
        await served.close();
        assert.equal(seen.waits[0]!.aborted, true, "the handler's signal fired");
        const e = await p;
        assert.equal(e.code, "closed");
      });

      it("an idempotent call survives a cut connection: sent again with its key, run once", async () => {
        const { client, seen, openGate } = await start();
        const c = client({ idempotent: ["history"] });
        let opens = 0;
        c.on("status", (e) => void (e.status === "open" && opens++));
        const p = c.call("history", { room: "gate:1" });
        await until(() => seen.history.length === 1, 3000, "history running");
        seen.peers[0]!.close(1012, "restart");
        await until(() => opens === 2, 3000, "reconnected");
        await delay(50); // the retry reaches the server and waits on the first run
        openGate();
        assert.deepEqual(await p, [{ text: "hello gate:1", at: 1 }]);
        assert.deepEqual(seen.history, ["gate:1"], "the handler ran once");
      });

      it("a stream is pulled only as the client grants credit, and break finishes the server's generator", async () => {
        const { client, seen } = await start();
        const c = client();
        const credit = 4;
        const got: number[] = [];
        for await (const m of c.stream("tail", { room: "slow", n: 40 }, { credit })) {
          got.push(m.at);
          await delay(2);
          const pulled = seen.pulled.get("slow")!;
          // what the server yielded: at most what the consumer took plus the window (and the one in hand)
          assert.ok(pulled <= got.length + credit + 1, `pulled ${pulled} after ${got.length} taken`);
          if (got.length === 25) break;
        }
        assert.deepEqual(got, Array.from({ length: 25 }, (_, i) => i + 1));
        await until(() => seen.finished.includes("slow"), 3000, "the generator finished after break");
        assert.ok(seen.pulled.get("slow")! < 40, "not run to the end");
        // a whole stream, then its end
        const all: string[] = [];
        for await (const m of c.stream("tail", { room: "all", n: 30 }, { credit: 8 })) all.push(m.text);
        assert.equal(all.length, 30);
        assert.equal(all[29], "all 30");
        // invalid input rejects the first next()
        const bad = await failure(c.stream("tail", { room: "x", n: 1.5 }).next());
        assert.equal(bad.code, "invalid");
      });

      it("events go both ways: emit reaches the handler, the server's emit reaches onEvent", async () => {
        const { client, seen, served } = await start();
        const c = client();
        const heard: { room: string; text: string }[] = [];
        c.onEvent("said", (m) => void heard.push(m));
        await until(() => c.status === "open", 3000, "open");
        assert.equal(c.emit("typing", { room: "lobby" }), true);
        await until(() => heard.length === 1, 3000, "the event back");
        assert.deepEqual(seen.typing, ["lobby"]);
        assert.deepEqual(heard, [{ room: "lobby", text: "someone is typing" }]);
        // from the call's context, and from the served contract
        assert.equal(await c.call("send", { room: "r", text: "hey" }), 3);
        await until(() => heard.length === 2, 3000, "ctx.emit");
        assert.equal(served.emit(seen.peers.at(-1)!, "said", { room: "r", text: "from the server" }), 1);
        await until(() => heard.length === 3, 3000, "served.emit");
        assert.deepEqual(heard.slice(1), [{ room: "r", text: "hey" }, { room: "r", text: "from the server" }]);
      });

      it("an invalid event closes with 4422, and the client does not retry", async () => {
        const { client } = await start();
        const c = client();
        const closed = new Promise<unknown>((resolve) => c.on("status", (e) => e.status === "closed" && resolve(e)));
        await until(() => c.status === "open", 3000, "open");
        c.emit("typing", { room: "" });
        assert.deepEqual(await within(closed, 3000, "closed"), { status: "closed", code: 4422, reason: (await closed as any).reason });
      });

      it("calls beyond the server's limit in flight reject with busy; the others go on", async () => {
        const { client } = await start(false, 3);
        const c = client();
        const outcomes = await Promise.all(
          Array.from({ length: 8 }, () => c.call("wait", { ms: 100 }).then((v) => v, (e: DuplexError) => e.code)),
        );
        assert.deepEqual(outcomes.filter((o) => o === "waited 100").length, 3);
        assert.deepEqual(outcomes.filter((o) => o === "busy").length, 5);
        assert.equal(await c.call("wait", { ms: 1 }), "waited 1", "served again once they finished");
      });

      it("calls and reliable subscriptions share one connection", async () => {
        const { client } = await start(true);
        const c = client();
        const got: string[] = [];
        c.subscribe("room:1", (m) => void got.push(String(m.data)), { from: "start" });
        await c.publish("room:1", "one");
        assert.equal(await c.call("add", { a: 20, b: 22 }), 42);
        await c.publish("room:1", "two");
        await until(() => got.length === 2, 3000, "both messages");
        assert.deepEqual(got, ["one", "two"]);
      });
    });
  }
}
