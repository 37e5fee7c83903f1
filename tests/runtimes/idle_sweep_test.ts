// The server's idle sweep (one timer for every connection) against a model
// that checks the rule every millisecond: the same pings and closes at
// the same milliseconds for any mix of opens, reads, busy hooks, closes and
// time, with fast-check. Then what the single timer buys: one pending timer
// for thousands of connections, and a firing that visits only those due.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type IdleHandle, type IdleOps, IdleSweep } from "../../runtimes/_limits.ts";
import { ConnectionSet } from "../../runtimes/_registry.ts";
import { fuzzSeed } from "../core/_fuzz_props.ts";
import { FakeClock } from "../plugins/_harness.ts";
import { systemClock } from "../../plugins/hooks.ts";
import { delay, until } from "./_helpers.ts";

type Action = "ping" | "close";
type Log = string[]; // "time conn action", sorted

interface Conn {
  id: number;
  open: boolean;
  busy: boolean;
  handle?: IdleHandle;
}

/**
 * The model, the rule itself checked one millisecond at a time: a
 * connection silent for half the timeout gets one ping, silent for all of
 * it a close; a read, and every instant a hook holds the events, end the
 * silence.
 */
class Model {
  readonly conns: { conn: Conn; last: number; pinged: boolean }[] = [];
  readonly timeout: number;
  readonly log: Log;
  now = 0;

  constructor(timeout: number, log: Log) {
    this.timeout = timeout;
    this.log = log;
  }

  open(conn: Conn): void {
    this.conns.push({ conn, last: this.now, pinged: false });
  }

  read(conn: Conn): void {
    const entry = this.conns.find((e) => e.conn === conn)!;
    entry.last = this.now;
    entry.pinged = false;
  }

  advance(ms: number): void {
    for (let t = this.now + 1; t <= this.now + ms; t++) {
      for (const entry of this.conns) {
        const { conn } = entry;
        if (!conn.open) continue;
        if (conn.busy) {
          entry.last = t;
          entry.pinged = false;
          continue;
        }
        const silent = t - entry.last;
        if (silent >= this.timeout) {
          conn.open = false;
          this.log.push(`${t} ${conn.id} close`);
        } else if (silent >= this.timeout / 2 && !entry.pinged) {
          entry.pinged = true;
          this.log.push(`${t} ${conn.id} ping`);
        }
      }
    }
    this.now += ms;
  }
}

type Step =
  | { op: "open" }
  | { op: "read"; conn: number }
  | { op: "busy"; conn: number; busy: boolean }
  | { op: "stop"; conn: number }
  | { op: "advance"; ms: number };

const TIMEOUT = 40;

const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.constant({ op: "open" as const }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant("read" as const), conn: fc.nat(7) }), weight: 4 },
  { arbitrary: fc.record({ op: fc.constant("busy" as const), conn: fc.nat(7), busy: fc.boolean() }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("stop" as const), conn: fc.nat(7) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: TIMEOUT * 2 }) }), weight: 5 },
);

/** Runs the steps on the model or on a sweep; returns what each connection was sent, when. */
function run(steps: Step[], kind: "model" | "sweep"): Log {
  const clock = new FakeClock();
  const log: Log = [];
  const conns: Conn[] = [];
  const model = new Model(TIMEOUT, log);
  const ops: IdleOps<Conn> = {
    open: (c) => c.open,
    busy: (c) => c.busy,
    ping: (c) => void log.push(`${clock.now()} ${c.id} ping`),
    close: (c) => {
      // As the pump does: leave the open state, then stop the idle timeout.
      c.open = false;
      log.push(`${clock.now()} ${c.id} close`);
      c.handle!.stop();
    },
  };
  const sweep = new IdleSweep(clock, TIMEOUT, ops);
  const advance = (ms: number) => kind === "sweep" ? clock.advance(ms) : model.advance(ms);
  const setBusy = (conn: Conn, busy: boolean) => {
    const ended = conn.busy && !busy;
    conn.busy = busy;
    // As the pump does: the end of a hook that held the events is activity.
    if (ended && kind === "sweep") conn.handle!.touch();
    if (ended && kind === "model") model.read(conn);
  };
  for (const s of steps) {
    switch (s.op) {
      case "open": {
        const conn: Conn = { id: conns.length, open: true, busy: false };
        conns.push(conn);
        if (kind === "sweep") conn.handle = sweep.add(conn);
        else model.open(conn);
        break;
      }
      case "read":
      case "busy":
      case "stop": {
        const conn = conns[s.conn % Math.max(conns.length, 1)];
        if (conn === undefined || !conn.open) break;
        if (s.op === "busy") setBusy(conn, s.busy);
        else if (s.op === "read") kind === "sweep" ? conn.handle!.touch() : model.read(conn);
        else {
          conn.open = false;
          if (kind === "sweep") conn.handle!.stop();
        }
        break;
      }
      case "advance":
        advance(s.ms);
        break;
    }
  }
  advance(TIMEOUT * 4); // whatever is still pending plays out
  for (const conn of conns) if (conn.open) setBusy(conn, false);
  advance(TIMEOUT * 4);
  assert.ok(conns.every((c) => !c.open), "every connection ends closed");
  if (kind === "sweep") assert.equal(clock.pending, 0, "no timer is left once every connection closed");
  return log.sort();
}

describe("idle sweep", () => {
  it("pings and closes at the same milliseconds as the rule checked every millisecond", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 80 }), (steps) => {
        assert.deepEqual(run(steps, "sweep"), run(steps, "model"));
      }),
      { seed: fuzzSeed(), numRuns: 500 },
    );
  });

  it("runs one timer for every connection, and a firing visits only the connections due", () => {
    const clock = new FakeClock();
    let visits = 0;
    const conns: Conn[] = [];
    const ops: IdleOps<Conn> = {
      open: (c) => (visits++, c.open),
      busy: () => false,
      ping: () => {},
      close: (c) => {
        c.open = false;
        c.handle!.stop();
      },
    };
    const sweep = new IdleSweep(clock, 10_000, ops);
    for (let i = 0; i < 5_000; i++) {
      const conn: Conn = { id: i, open: true, busy: false };
      conn.handle = sweep.add(conn);
      conns.push(conn);
      if (i % 1000 === 999) clock.advance(1000); // five cohorts, a second apart
    }
    assert.equal(clock.pending, 1);
    // Every connection reads at 4.5 s, but the first cohort (opened at 0).
    clock.advance(4_500 - clock.now());
    for (const conn of conns.slice(1000)) conn.handle!.touch();
    clock.advance(500); // the first cohort is due: 1,000 pings
    assert.equal(visits, 1000, "only the due cohort was visited");
    clock.advance(5_000); // it closes; the others were read at 4.5 s, so they are pinged at 9.5 s
    assert.equal(conns.filter((c) => !c.open).length, 1000);
    assert.equal(visits, 2000 + 4000, "the close of the first cohort, then the pings of the rest");
    assert.equal(clock.pending, 1);
    for (const conn of conns) if (conn.open) conn.handle!.stop();
    assert.equal(clock.pending, 0, "the last stop clears the timer");
  });

  it("is shared per server, clock, timeout and kind of connection", () => {
    const set = new ConnectionSet();
    const clock = new FakeClock();
    const ops: IdleOps<Conn> = { open: () => true, busy: () => false, ping: () => {}, close: () => {} };
    const other: IdleOps<Conn> = { ...ops };
    const sweep = set.idleSweep(clock, 1000, ops);
    assert.equal(set.idleSweep(clock, 1000, ops), sweep);
    assert.notEqual(set.idleSweep(clock, 2000, ops), sweep);
    assert.notEqual(set.idleSweep(new FakeClock(), 1000, ops), sweep);
    assert.notEqual(set.idleSweep(clock, 1000, other), sweep);
    assert.notEqual(new ConnectionSet().idleSweep(clock, 1000, ops), sweep);
  });

  it("on the system clock, times a read by its turn of the event loop, and a later turn by its own", async () => {
    // The sweep reads the system clock once per turn: a connection read on
    // every turn is never pinged, and one that stops is, once silent long enough.
    const pinged: number[] = [];
    const sweep = new IdleSweep<Conn>(systemClock, 400, {
      open: (c) => c.open,
      busy: () => false,
      ping: (c) => void pinged.push(systemClock.now() - c.id),
      close: (c) => void (c.open = false),
    });
    const conn: Conn = { id: 0, open: true, busy: false };
    conn.handle = sweep.add(conn);
    const start = systemClock.now();
    while (systemClock.now() - start < 600) {
      conn.handle.touch();
      conn.id = systemClock.now(); // the last read
      await delay(2);
    }
    assert.deepEqual(pinged, [], "read on every turn: never silent for 200 ms");
    await until(() => pinged.length > 0, 3000, "the ping");
    assert.ok(pinged[0]! >= 199, `not before 200 ms of silence: ${pinged[0]} ms`);
    conn.handle.stop();
  });

  it("keeps its timer when a ping or close throws, for the other connections", () => {
    const clock = new FakeClock();
    const pinged: number[] = [];
    const sweep = new IdleSweep<Conn>(clock, 100, {
      open: (c) => c.open,
      busy: () => false,
      ping: (c) => {
        pinged.push(c.id);
        if (c.id === 0) throw new Error("socket gone");
      },
      close: () => {},
    });
    const a: Conn = { id: 0, open: true, busy: false };
    const b: Conn = { id: 1, open: true, busy: false };
    a.handle = sweep.add(a);
    clock.advance(10);
    b.handle = sweep.add(b);
    assert.throws(() => clock.advance(40), /socket gone/);
    assert.equal(clock.pending, 1, "re-armed despite the throw");
    clock.advance(20);
    assert.deepEqual(pinged, [0, 1]);
  });
});
