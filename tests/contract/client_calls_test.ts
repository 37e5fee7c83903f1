// DuplexClient's calls, streams and events on a scripted fake WebSocket and
// fake timers: what goes on the wire, timeouts, cancellation from either
// side, stream credit (granted only as the consumer pulls), idempotent calls
// sent again with the same key after a reconnect, other calls rejected when
// the link drops, and the server's errors with their name, data and issues.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DuplexClient, DuplexError } from "../../client/mod.ts";
import { FakeSocket, type Sent, setup, tick } from "../reliable/_fake.ts";

/** The sent messages of a socket that are about calls (call, cancel, credit, emit). */
const calls = (ws: FakeSocket): Sent[] => ws.sent.filter((m) => ["call", "cancel", "credit", "emit"].includes(m.type));

/** Settles a promise into its value or its error's code, name, data and issues. */
async function settled(p: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    return { ok: await p };
  } catch (e) {
    const d = e as DuplexError;
    assert.ok(d instanceof DuplexError, `a DuplexError: ${e}`);
    const out: Record<string, unknown> = { code: d.code, call: d.call };
    if (d.name !== "DuplexError") out.name = d.name;
    if (d.data !== undefined) out.data = d.data;
    if (d.issues !== undefined) out.issues = d.issues;
    return out;
  }
}

/**
 * A fake-socket client (see ../reliable/_fake.ts) whose calls' promises and
 * streams' `next()` promises are marked handled as they are made: tests
 * check them after advancing the clock, past the runtimes' unhandled
 * rejection checks.
 */
function setupCalls(options: Parameters<typeof setup>[0] = {}): ReturnType<typeof setup> {
  const t = setup(options);
  const client = t.client as any;
  const call = client.call.bind(client);
  client.call = (...args: unknown[]) => {
    const p = call(...args);
    p.catch(() => {});
    return p;
  };
  const stream = client.stream.bind(client);
  client.stream = (...args: unknown[]) => {
    const s = stream(...args);
    const next = s.next;
    s.next = () => {
      const p = next();
      p.catch(() => {});
      return p;
    };
    return s;
  };
  return t;
}

/** Whether a promise is still pending after the microtasks ran. */
async function pending(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await tick();
  return !done;
}

describe("options and arguments", () => {
  it("refuses bad client options", () => {
    const WebSocket = FakeSocket;
    assert.throws(() => new DuplexClient("ws://x/", { WebSocket, callTimeoutMs: 0 }), /callTimeoutMs: expected a number > 0 or Infinity/);
    assert.throws(() => new DuplexClient("ws://x/", { WebSocket, callTimeoutMs: "1" as any }), /callTimeoutMs: expected a number/);
    assert.throws(() => new DuplexClient("ws://x/", { WebSocket, idempotent: "history" as any }), /idempotent: expected an array of call names/);
    assert.throws(() => new DuplexClient("ws://x/", { WebSocket, idempotent: [1] as any }), /idempotent/);
  });

  it("refuses bad names and options at once", () => {
    const { client } = setup();
    assert.throws(() => client.call("" as any, 1), /Invalid name/);
    assert.throws(() => client.call(3 as any, 1), /Invalid name/);
    assert.throws(() => client.call("x".repeat(129), 1), /Invalid name: expected a non-empty string of at most 128 characters/);
    assert.throws(() => client.emit("x".repeat(129), 1), /Invalid name/);
    assert.throws(() => client.call("a", 1, { timeoutMs: 0 }), /timeoutMs: expected a number > 0/);
    assert.throws(() => client.call("a", 1, { timeoutMs: -1 }), RangeError);
    assert.throws(() => client.call("a", 1, { signal: {} as any }), /Invalid signal/);
    assert.throws(() => client.call("a", 1, null as any), /Invalid options/);
    assert.throws(() => client.stream("a", 1, { credit: 0 }), /credit: expected an integer >= 1, got 0/);
    assert.throws(() => client.stream("a", 1, { credit: 1.5 }), RangeError);
    assert.throws(() => client.emit("" as any, 1), /Invalid name/);
    assert.throws(() => client.onEvent("" as any, () => {}), /Invalid name/);
    assert.throws(() => client.onEvent("e", 1 as any), /Invalid listener/);
    client.close();
  });
});

describe("calls", () => {
  it("sends a call and resolves with the result's value", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const p = t.client.call("add", { a: 1, b: 2 });
    assert.deepEqual(calls(ws), [{ type: "call", id: 1, name: "add", input: { a: 1, b: 2 } }]);
    ws.receive({ type: "result", id: 1, value: 3 });
    assert.deepEqual(await settled(p), { ok: 3 });
    // a result without a value is undefined; an input of undefined is left out
    const q = t.client.call("ping");
    assert.deepEqual(calls(ws)[1], { type: "call", id: 2, name: "ping" });
    ws.receive({ type: "result", id: 2 });
    assert.deepEqual(await settled(q), { ok: undefined });
    assert.equal(t.timers.pending.size, 0, "no timer left behind");
    t.client.close();
  });

  it("waits for the connection: a call made before open is sent once open", async () => {
    const t = setupCalls();
    const p = t.client.call("add", 1);
    await tick();
    assert.deepEqual(calls(t.ws), []);
    t.ws.open();
    assert.equal(calls(t.ws)[0]?.name, "add");
    t.ws.receive({ type: "result", id: calls(t.ws)[0]!.id, value: "ok" });
    assert.deepEqual(await settled(p), { ok: "ok" });
    t.client.close();
  });

  it("answers are matched by id, whatever their order", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const a = t.client.call("a");
    const b = t.client.call("b");
    const [ia, ib] = calls(ws).map((m) => m.id);
    ws.receive({ type: "result", id: ib, value: "B" });
    ws.receive({ type: "result", id: ia, value: "A" });
    assert.deepEqual([await settled(a), await settled(b)], [{ ok: "A" }, { ok: "B" }]);
    ws.receive({ type: "result", id: ia, value: "again" }); // unknown by now: ignored
    ws.receive({ type: "result", id: 99, value: "?" });
    assert.equal(t.client.status, "open");
    t.client.close();
  });

  it("times out after callTimeoutMs (10 s by default), and tells the server to stop", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const p = t.client.call("slow", 1);
    await t.timers.advance(9_999);
    assert.ok(await pending(p));
    await t.timers.advance(1);
    assert.deepEqual(await settled(p), { code: "timeout", call: "slow" });
    assert.deepEqual(calls(ws).at(-1), { type: "cancel", id: 1 });
    ws.receive({ type: "result", id: 1, value: "late" }); // ignored
    t.client.close();
  });

  it("a call's timeoutMs wins over callTimeoutMs; Infinity never times out", async () => {
    const t = setupCalls({ callTimeoutMs: 100 });
    const ws = await t.connect();
    const a = t.client.call("a");
    const b = t.client.call("b", undefined, { timeoutMs: 500 });
    const c = t.client.call("c", undefined, { timeoutMs: Infinity });
    await t.timers.advance(100);
    assert.equal((await settled(a)).code, "timeout");
    assert.ok(await pending(b));
    await t.timers.advance(400);
    assert.equal((await settled(b)).code, "timeout");
    await t.timers.advance(1e9);
    assert.ok(await pending(c));
    ws.receive({ type: "result", id: 3, value: "c" });
    assert.deepEqual(await settled(c), { ok: "c" });
    t.client.close();
  });

  it("the timeout runs while the call waits for a connection; an unsent call needs no cancel", async () => {
    const t = setupCalls({ callTimeoutMs: 1_000 });
    const p = t.client.call("a");
    await t.timers.advance(1_000);
    assert.equal((await settled(p)).code, "timeout");
    t.ws.open();
    assert.deepEqual(calls(t.ws), [], "neither the call nor a cancel");
    t.client.close();
  });

  it("an aborted signal rejects with cancelled and cancels the call on the server", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const ac = new AbortController();
    const p = t.client.call("slow", 1, { signal: ac.signal });
    ac.abort();
    assert.deepEqual(await settled(p), { code: "cancelled", call: "slow" });
    assert.deepEqual(calls(ws).at(-1), { type: "cancel", id: 1 });
    assert.equal(t.timers.pending.size, 0);
    // already aborted: rejected, nothing sent
    const q = t.client.call("slow", 1, { signal: ac.signal });
    assert.equal((await settled(q)).code, "cancelled");
    assert.equal(calls(ws).length, 2);
    t.client.close();
  });

  it("a cancel from the server rejects with cancelled, and is not answered with a cancel", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const p = t.client.call("slow");
    ws.receive({ type: "error", id: 1, code: "cancelled", message: "The server is shutting down" });
    assert.deepEqual(await settled(p), { code: "cancelled", call: "slow" });
    assert.deepEqual(calls(ws).map((m) => m.type), ["call"]);
    t.client.close();
  });

  it("rejects with the server's errors: invalid with issues, not_found, busy, failed with name and data", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const ps = ["a", "b", "c", "d", "e"].map((n) => t.client.call(n, 1));
    ws.receive({ type: "error", id: 1, code: "invalid", message: "Invalid input", issues: [{ message: "Expected a string", path: ["room", 0] }, { message: "Required" }] });
    ws.receive({ type: "error", id: 2, code: "not_found", message: "No call b" });
    ws.receive({ type: "error", id: 3, code: "busy", message: "Too many calls in flight" });
    ws.receive({ type: "error", id: 4, code: "failed", message: "Too fast", error: { name: "TooFast", data: { retryInMs: 500 } } });
    ws.receive({ type: "error", id: 5, code: "failed", message: "Internal error", error: { name: "Error" } });
    assert.deepEqual(await Promise.all(ps.map(settled)), [
      { code: "invalid", call: "a", issues: [{ message: "Expected a string", path: ["room", 0] }, { message: "Required" }] },
      { code: "not_found", call: "b" },
      { code: "busy", call: "c" },
      { code: "failed", call: "d", name: "TooFast", data: { retryInMs: 500 } },
      { code: "failed", call: "e", name: "Error" },
    ]);
    t.client.close();
  });

  it("isCallError tells a declared error by name", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const p = t.client.call("send", "hi");
    ws.receive({ type: "error", id: 1, code: "failed", message: "Slow down", error: { name: "TooFast", data: { retryInMs: 5 } } });
    const e = await p.catch((e: unknown) => e);
    assert.ok(t.client.isCallError(e, "TooFast"));
    assert.equal(e.data.retryInMs, 5);
    assert.equal(e.message, "Slow down");
    assert.ok(!t.client.isCallError(e, "Other"));
    assert.ok(!t.client.isCallError(new DuplexError("timeout", "x"), "TooFast"));
    assert.ok(!t.client.isCallError(new Error("TooFast"), "TooFast"));
    t.client.close();
  });

  it("an input that JSON cannot encode rejects with invalid; the client stays open", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const p = t.client.call("a", { n: 1n });
    assert.equal((await settled(p)).code, "invalid");
    assert.deepEqual(calls(ws), []);
    assert.equal(t.client.status, "open");
    t.client.close();
  });
});

describe("calls across a reconnect", () => {
  it("a call in flight when the link drops rejects with closed (it may have run); one not sent yet waits", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const sent = t.client.call("send", "hi");
    ws.drop(1006);
    const later = t.client.call("send", "later");
    assert.deepEqual(await settled(sent), { code: "closed", call: "send" });
    await t.timers.advance(1_000);
    t.ws.open();
    assert.deepEqual(calls(t.ws), [{ type: "call", id: calls(t.ws)[0]!.id, name: "send", input: "later" }]);
    assert.ok(await pending(later));
    t.client.close();
    assert.equal((await settled(later)).code, "closed");
  });

  it("an idempotent call is sent again after a reconnect with the same key, and resolves once", async () => {
    const t = setupCalls({ idempotent: ["history"] });
    const ws = await t.connect();
    const p = t.client.call("history", { room: "lobby" });
    const first = calls(ws)[0]!;
    assert.equal(typeof first.key, "string");
    assert.ok(first.key.length > 0);
    // not idempotent: no key
    void t.client.call("send", 1).catch(() => {});
    assert.equal(calls(ws)[1]!.key, undefined);
    ws.drop(1006);
    assert.ok(await pending(p));
    await t.timers.advance(1_000);
    t.ws.open();
    const again = calls(t.ws).find((m) => m.name === "history")!;
    assert.equal(again.key, first.key, "the same key");
    assert.deepEqual(again.input, { room: "lobby" });
    t.ws.receive({ type: "result", id: again.id, value: ["hi"] });
    assert.deepEqual(await settled(p), { ok: ["hi"] });
    // another idempotent call gets another key
    void t.client.call("history", { room: "lobby" }).catch(() => {});
    assert.notEqual(calls(t.ws).at(-1)!.key, first.key);
    t.client.close();
  });

  it("an idempotent call still times out across reconnects, once", async () => {
    const t = setupCalls({ idempotent: ["history"], callTimeoutMs: 3_000, reconnect: { initialDelayMs: 1_000 } });
    await t.connect();
    const p = t.client.call("history");
    t.ws.drop(1006);
    await t.timers.advance(1_000);
    t.ws.open();
    await t.timers.advance(2_000);
    assert.equal((await settled(p)).code, "timeout");
    assert.deepEqual(calls(t.ws).map((m) => m.type), ["call", "cancel"]);
    t.client.close();
  });

  it("close() rejects every call with closed; a call after close rejects at once", async () => {
    const t = setupCalls({ idempotent: ["a"] });
    await t.connect();
    const ps = [t.client.call("a"), t.client.call("b")];
    t.client.close();
    for (const p of ps) assert.equal((await settled(p)).code, "closed");
    assert.equal((await settled(t.client.call("a"))).code, "closed");
    assert.equal(t.timers.pending.size, 0);
  });
});

describe("streams", () => {
  it("sends the credit, yields the items in order, ends on the result", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const it = t.client.stream("count", { to: 3 }, { credit: 4 });
    assert.deepEqual(calls(ws), [{ type: "call", id: 1, name: "count", input: { to: 3 }, credit: 4 }]);
    for (const n of [1, 2, 3]) ws.receive({ type: "item", id: 1, value: n });
    ws.receive({ type: "result", id: 1 });
    const got: unknown[] = [];
    for await (const v of it) got.push(v);
    assert.deepEqual(got, [1, 2, 3]);
    assert.deepEqual(await it.next(), { value: undefined, done: true });
    t.client.close();
  });

  it("grants credit only as the consumer pulls, in batches of half the window", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const it = t.client.stream("feed", undefined, { credit: 4 });
    const credit = () => calls(ws).filter((m) => m.type === "credit").map((m) => m.n);
    for (const n of [1, 2, 3, 4]) ws.receive({ type: "item", id: 1, value: n });
    assert.deepEqual(credit(), [], "nothing pulled, nothing granted");
    assert.deepEqual(await it.next(), { value: 1, done: false });
    assert.deepEqual(credit(), [], "one free slot: under half the window");
    assert.deepEqual(await it.next(), { value: 2, done: false });
    assert.deepEqual(credit(), [2], "two free: granted");
    assert.deepEqual(await it.next(), { value: 3, done: false });
    assert.deepEqual(await it.next(), { value: 4, done: false });
    assert.deepEqual(credit(), [2, 2]);
    // a consumer that waits gets an item at once, and the credit follows it
    const next = it.next();
    ws.receive({ type: "item", id: 1, value: 5 });
    assert.deepEqual(await next, { value: 5, done: false });
    const all = credit().reduce((a, b) => a + b, 4);
    assert.ok(all - 5 <= 4, "never more than the window ahead of the consumer");
    await it.return!();
    t.client.close();
  });

  it("several next() calls waiting at once get the items in order, then the end", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const it = t.client.stream("feed", undefined, { credit: 8 });
    const waits = [it.next(), it.next(), it.next()];
    ws.receive({ type: "item", id: 1, value: "a" });
    ws.receive({ type: "item", id: 1, value: "b" });
    ws.receive({ type: "result", id: 1 });
    assert.deepEqual(await Promise.all(waits), [{ value: "a", done: false }, { value: "b", done: false }, { value: undefined, done: true }]);
    t.client.close();
  });

  it("credit 1: one item at a time", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const it = t.client.stream("feed", undefined, { credit: 1 });
    ws.receive({ type: "item", id: 1, value: "a" });
    assert.deepEqual(calls(ws).filter((m) => m.type === "credit"), []);
    await it.next();
    assert.deepEqual(calls(ws).filter((m) => m.type === "credit"), [{ type: "credit", id: 1, n: 1 }]);
    await it.return!();
    t.client.close();
  });

  it("break cancels the stream on the server; later items are ignored", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const it = t.client.stream("feed");
    ws.receive({ type: "item", id: 1, value: 1 });
    ws.receive({ type: "item", id: 1, value: 2 });
    for await (const v of it) {
      assert.equal(v, 1);
      break;
    }
    assert.deepEqual(calls(ws).at(-1), { type: "cancel", id: 1 });
    ws.receive({ type: "item", id: 1, value: 3 });
    assert.deepEqual(await it.next(), { value: undefined, done: true });
    await it.return!(); // again: nothing more sent
    assert.equal(calls(ws).filter((m) => m.type === "cancel").length, 1);
    t.client.close();
  });

  it("an error ends the stream after the items before it; a waiting consumer gets it at once", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const a = t.client.stream("a");
    ws.receive({ type: "item", id: 1, value: 1 });
    ws.receive({ type: "error", id: 1, code: "failed", message: "Boom", error: { name: "Boom", data: 7 } });
    assert.deepEqual(await a.next(), { value: 1, done: false });
    assert.deepEqual(await settled(a.next()), { code: "failed", call: "a", name: "Boom", data: 7 });
    assert.deepEqual(await a.next(), { value: undefined, done: true }, "thrown once, then done");
    const b = t.client.stream("b");
    const waiting = b.next();
    ws.receive({ type: "error", id: 2, code: "cancelled", message: "Server shutdown" });
    assert.equal((await settled(waiting)).code, "cancelled");
    assert.deepEqual(calls(ws).filter((m) => m.type === "cancel"), [], "the server ended them: no cancel");
    t.client.close();
  });

  it("the signal cancels it; timeoutMs bounds the wait for each item", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const ac = new AbortController();
    const a = t.client.stream("a", undefined, { signal: ac.signal });
    const next = a.next();
    ac.abort();
    assert.equal((await settled(next)).code, "cancelled");
    assert.deepEqual(calls(ws).at(-1), { type: "cancel", id: 1 });

    const b = t.client.stream("b", undefined, { timeoutMs: 1_000 });
    await t.timers.advance(5_000); // nobody waits: no timeout
    ws.receive({ type: "item", id: 2, value: 1 });
    assert.deepEqual(await b.next(), { value: 1, done: false });
    const wait = b.next();
    await t.timers.advance(999);
    ws.receive({ type: "item", id: 2, value: 2 });
    assert.deepEqual(await wait, { value: 2, done: false });
    const slow = b.next();
    await t.timers.advance(1_000);
    assert.deepEqual(await settled(slow), { code: "timeout", call: "b" });
    assert.deepEqual(calls(ws).at(-1), { type: "cancel", id: 2 });
    t.client.close();
  });

  it("a stream in flight when the link drops fails with closed, even an idempotent one", async () => {
    const t = setupCalls({ idempotent: ["tail"] });
    const ws = await t.connect();
    const a = t.client.stream("tail");
    assert.equal(calls(ws)[0]!.key, undefined, "streams carry no key");
    ws.receive({ type: "item", id: 1, value: 1 });
    ws.drop(1006);
    assert.deepEqual(await a.next(), { value: 1, done: false });
    assert.equal((await settled(a.next())).code, "closed");
    t.client.close();
  });

  it("a stream of a closed client throws closed", async () => {
    const t = setupCalls();
    t.client.close();
    assert.equal((await settled(t.client.stream("a").next())).code, "closed");
  });
});

describe("events", () => {
  it("emit sends while open, drops (and says so) while not", async () => {
    const t = setupCalls();
    assert.equal(t.client.emit("typing", { room: "lobby" }), false);
    const ws = await t.connect();
    assert.equal(t.client.emit("typing", { room: "lobby" }), true);
    assert.deepEqual(calls(ws), [{ type: "emit", name: "typing", data: { room: "lobby" } }]);
    assert.throws(() => t.client.emit("typing", { n: 1n }), TypeError);
    ws.drop(1006);
    assert.equal(t.client.emit("typing", { room: "lobby" }), false);
    t.client.close();
    assert.equal(t.client.emit("typing", { room: "lobby" }), false);
  });

  it("onEvent hears the server's events by name until removed", async () => {
    const t = setupCalls();
    const ws = await t.connect();
    const heard: unknown[] = [];
    const off = t.client.onEvent("said", (d) => void heard.push(d));
    const also: unknown[] = [];
    t.client.onEvent("said", (d) => void also.push(d));
    ws.receive({ type: "event", name: "said", data: { text: "hi" } });
    ws.receive({ type: "event", name: "other", data: 1 });
    off();
    ws.receive({ type: "event", name: "said", data: { text: "again" } });
    assert.deepEqual(heard, [{ text: "hi" }]);
    assert.deepEqual(also, [{ text: "hi" }, { text: "again" }]);
    assert.equal(t.client.status, "open");
    t.client.close();
  });
});
