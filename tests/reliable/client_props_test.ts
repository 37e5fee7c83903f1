// A property test of the client's state machine (fast-check): any order of
// opens, closes, timeouts, server answers and faults (holes, duplicates,
// replays after reconnect, trimmed history, a new epoch, a subscribe
// answered `unavailable`) ends, once the
// network is good again, in the documented state: open, every message
// delivered once and in order or covered by a reported gap, every publish
// promise settled once (acked, or expired after waiting too long), each
// publish stored once per epoch; and close() leaves nothing running.
// FUZZ_SEED=<n> runs another seed.
import assert from "node:assert/strict";
import process from "node:process";
import { it } from "node:test";
import fc from "fast-check";
import type { ClientMessageEvent, SubscribeResult } from "../../client/mod.ts";
import { setup, tick } from "./_fake.ts";
import { ModelServer } from "./_model_server.ts";

const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 0x5eed;

type Action =
  | { t: "open" }
  | { t: "drop"; code: number }
  | { t: "advance"; ms: number }
  | { t: "serve"; n: number }
  | { t: "produce" }
  | { t: "skip" }
  | { t: "dup"; pick: number }
  | { t: "publish" }
  | { t: "trim"; n: number }
  | { t: "restart" }
  | { t: "cut"; n: number }
  | { t: "overlap" }
  | { t: "unavailable" };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ t: "open" } as const) },
  { weight: 2, arbitrary: fc.constantFrom(1006, 1001, 1011, 1012, 4500).map((code) => ({ t: "drop", code }) as const) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 8000 }).map((ms) => ({ t: "advance", ms }) as const) },
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 6 }).map((n) => ({ t: "serve", n }) as const) },
  { weight: 3, arbitrary: fc.constant({ t: "produce" } as const) },
  { weight: 1, arbitrary: fc.constant({ t: "skip" } as const) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ t: "dup", pick }) as const) },
  { weight: 3, arbitrary: fc.constant({ t: "publish" } as const) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }).map((n) => ({ t: "trim", n }) as const) },
  { weight: 1, arbitrary: fc.constant({ t: "restart" } as const) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 4 }).map((n) => ({ t: "cut", n }) as const) },
  { weight: 1, arbitrary: fc.constant({ t: "overlap" } as const) },
  { weight: 1, arbitrary: fc.constant({ t: "unavailable" } as const) },
);

type Event = { kind: "message"; m: ClientMessageEvent } | { kind: "result"; r: SubscribeResult };

async function run(actions: Action[], initialTopicSize: number): Promise<void> {
  const t = setup({
    heartbeat: { intervalMs: 1000, timeoutMs: 500 },
    connectTimeoutMs: 3000,
    reconnect: { initialDelayMs: 50, maxDelayMs: 2000 },
    queue: { maxAgeMs: 20_000 },
    random: () => 0.5,
  });
  const server = new ModelServer();
  for (let i = 0; i < initialTopicSize; i++) server.append("t", `s${i}`, []);
  const events: Event[] = [];
  const sub = t.client.subscribe("t", (m) => void events.push({ kind: "message", m }), {
    from: "start",
    onResult: (r) => void events.push({ kind: "result", r }),
  });
  const publishes: { data: string; settled: number; value?: { epoch: string; offset: number }; code?: string }[] = [];
  let produced = 0;
  const live = () => t.sockets.filter((ws) => ws.readyState === 1);
  const newest = () => t.sockets.at(-1);

  await tick();
  for (const a of actions) {
    const ws = newest();
    switch (a.t) {
      case "open":
        if (ws && ws.readyState === 0 && !ws.abandoned) ws.open();
        break;
      case "drop":
        if (ws && ws.readyState !== 3) ws.drop(a.code);
        break;
      case "advance":
        await t.timers.advance(a.ms);
        break;
      case "serve":
        if (ws) server.serve(ws, a.n, live());
        break;
      case "produce":
        server.append("t", `p${produced++}`, live());
        break;
      case "skip":
        if (ws) server.skipNext(ws);
        break;
      case "dup":
        if (ws) server.duplicate(ws, "t", a.pick);
        break;
      case "publish": {
        const entry: (typeof publishes)[number] = { data: `c${publishes.length}`, settled: 0 };
        publishes.push(entry);
        t.client.publish("t", entry.data).then(
          (v) => void (entry.settled++, entry.value = v),
          (e) => void (entry.settled++, entry.code = e.code),
        );
        break;
      }
      case "trim":
        server.trim("t", a.n);
        break;
      case "cut":
        if (ws) server.cut(ws, a.n, live());
        break;
      case "overlap":
        server.overlapNext = true;
        break;
      case "unavailable":
        server.failNext = true;
        break;
      case "restart":
        server.restart();
        if (ws && ws.readyState !== 3) ws.drop(1012);
        break;
    }
    await tick();
    assert.notEqual(t.client.status, "closed", "retriable closes never end the client");
  }

  // The network is good again: open, answer everything, let time pass.
  const log = () => server.logs.get("t");
  const caughtUp = () => {
    const l = log();
    const p = sub.position;
    return l !== undefined && p?.epoch === l.epoch && p.offset === l.last;
  };
  let settledRounds = 0;
  for (let i = 0; i < 400 && settledRounds < 3; i++) {
    const ws = newest();
    if (ws && ws.readyState === 0 && !ws.abandoned) ws.open();
    await tick();
    for (const s of live()) server.serve(s, Infinity, live());
    await tick();
    const quiet = t.client.status === "open" && live().every((s) => server.served(s));
    // a lost message at the tail shows as a hole only when the next one comes
    if (quiet && !caughtUp()) server.append("t", `p${produced++}`, live());
    const done = quiet && publishes.every((p) => p.settled > 0) && caughtUp();
    settledRounds = done ? settledRounds + 1 : 0;
    await t.timers.advance(100);
  }
  assert.equal(t.client.status, "open", "open again");
  assert.ok(caughtUp(), "the subscription reached the end of the history");

  // Publishes: settled once; acked ones stored with their data; each stored once per epoch.
  for (const p of publishes) {
    assert.equal(p.settled, 1, `publish ${p.data} settled once`);
    if (p.value) assert.equal(server.history.get(p.value.epoch)?.get(p.value.offset), p.data, `${p.data} stored where its ack says`);
    else assert.equal(p.code, "expired", `${p.data}: only expiry may reject it`);
  }
  for (const [epoch, entries] of server.history) {
    const datas = [...entries.values()];
    assert.equal(new Set(datas).size, datas.length, `no publish stored twice in ${epoch}`);
  }

  // Deliveries: each matches the history, never twice, in order; a skip only after a gap result.
  const seen = new Set<string>();
  let pos: { epoch: string; offset: number } | undefined;
  let gapSince = true; // from "start": the first message may be anywhere in the history
  const closedEpochs = new Set<string>();
  for (const e of events) {
    if (e.kind === "result") {
      if (e.r.result === "gap") gapSince = true;
      if (e.r.result === "fresh") gapSince = true;
      continue;
    }
    const m = e.m;
    const id = `${m.epoch}/${m.offset}`;
    assert.ok(!seen.has(id), `delivered once: ${id}`);
    seen.add(id);
    assert.equal(server.history.get(m.epoch)?.get(m.offset), m.data, `${id} is what the server stored`);
    assert.ok(!closedEpochs.has(m.epoch), `no return to an older epoch: ${id}`);
    if (pos && pos.epoch !== m.epoch) closedEpochs.add(pos.epoch);
    if (!gapSince) {
      assert.ok(pos && pos.epoch === m.epoch && m.offset === pos.offset + 1, `in order without a hole: ${id} after ${pos?.epoch}/${pos?.offset}`);
    } else if (pos && pos.epoch === m.epoch) {
      assert.ok(m.offset > pos.offset, `in order: ${id} after ${pos.offset}`);
    }
    pos = { epoch: m.epoch, offset: m.offset };
    gapSince = false;
  }

  // close() is final and leaves nothing running.
  const open = t.sockets.filter((s) => s.readyState === 1);
  t.client.close();
  await tick();
  assert.equal(t.client.status, "closed");
  assert.equal(t.timers.pending.size, 0, "no timer left");
  assert.ok(open.every((s) => s.closedWith?.code === 1000));
  assert.ok(publishes.every((p) => p.settled === 1));
}

it(`any order of events ends in the documented state (seed ${seed})`, async () => {
  const result = await fc.check(
    fc.asyncProperty(fc.array(action, { minLength: 5, maxLength: 80, size: "max" }), fc.integer({ min: 0, max: 5 }), (actions, n) => run(actions, n)),
    { numRuns: 300, seed },
  );
  if (result.failed) {
    throw new Error(`${fc.defaultReportMessage(result)}\n${String((result.errorInstance as Error | undefined)?.stack ?? "")}`);
  }
});
