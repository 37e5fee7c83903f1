/**
 * Heartbeat: find peers that vanished without a FIN (a pulled cable, a
 * sleeping laptop, a NAT that forgot the flow) and drop them.
 *
 * @module
 */

import { describeValue } from "./_check.ts";
import { UsageError } from "../core/errors.ts";
import { ReadyState } from "../core/state.ts";
import type { Peer } from "./context.ts";
import type { Phases } from "./pipeline.ts";
import type { Clock } from "./hooks.ts";

/**
 * Options of {@linkcode heartbeat}.
 *
 * @example
 * ```ts
 * import type { HeartbeatOptions } from "@duplex/ws";
 *
 * const options: HeartbeatOptions = { intervalMs: 30_000, timeoutMs: 10_000 };
 * ```
 */
export interface HeartbeatOptions {
  /** How often each connection is pinged, in ms. Default 30,000. */
  intervalMs?: number;
  /** How long a pinged connection has to show life (any frame), in ms. Default 10,000. */
  timeoutMs?: number;
}

/**
 * Internal: the key under which a `heartbeat()` middleware holds its
 * "cannot ping here" warning, `(message: string) => void`, given once per
 * heartbeat. An adapter that knows at start that its connections cannot be
 * pinged calls it; a heartbeat whose first ping fails calls it too.
 */
export const CANNOT_PING: unique symbol = Symbol("duplex.cannotPing");

// The three waits of a connection, each with one fixed delay: after the open
// (intervalMs), after a check that saw life (intervalMs - timeoutMs, at
// least 0), after a ping (timeoutMs). An entry joins the tail of its wait's
// queue at `now + delay`, so each queue stays ordered by due time.
const OPENED = 0;
const CHECKED = 1;
const PINGED = 2;
const OUT = 3;
type Wait = typeof OPENED | typeof CHECKED | typeof PINGED;

/** What one `heartbeat()` shares with its sweeps. */
interface Beat<S> {
  /** The delay of each wait, by its index. */
  readonly delays: readonly [number, number, number];
  readonly entries: Map<Peer<S>, BeatEntry<S>>;
  readonly sweeps: Map<Clock, HeartbeatSweep<S>>;
  readonly cannotPing: (message: string) => void;
}

/** One connection in a heartbeat sweep: a few fields, no timer, no closure. */
class BeatEntry<S> {
  prev: BeatEntry<S> | undefined = undefined;
  next: BeatEntry<S> | undefined = undefined;
  wait: Wait | typeof OUT = OUT;
  due = 0;
  /** `peer.bytesReceived` when pinged. */
  seen = 0;
  readonly sweep: HeartbeatSweep<S>;
  readonly peer: Peer<S>;

  constructor(sweep: HeartbeatSweep<S>, peer: Peer<S>) {
    this.sweep = sweep;
    this.peer = peer;
  }
}

/**
 * Every connection of one heartbeat on one clock, with one timer: three
 * queues ordered by due time (see the waits above), the timer always set for
 * the earliest head. Each firing visits only the entries that are due, in
 * due order, so pings and drops happen at the same times as with a timer per
 * connection (the idle timeout's `IdleSweep` works the same way).
 */
class HeartbeatSweep<S> {
  readonly #beat: Beat<S>;
  readonly #clock: Clock;
  readonly #heads: (BeatEntry<S> | undefined)[] = [undefined, undefined, undefined];
  readonly #tails: (BeatEntry<S> | undefined)[] = [undefined, undefined, undefined];
  #size = 0;
  #timer: unknown = undefined;
  #due = Infinity;

  constructor(beat: Beat<S>, clock: Clock) {
    this.#beat = beat;
    this.#clock = clock;
  }

  /** Puts an entry at the tail of a wait, due one delay from now. */
  append(entry: BeatEntry<S>, wait: Wait): void {
    entry.wait = wait;
    entry.due = this.#clock.now() + this.#beat.delays[wait];
    entry.next = undefined;
    entry.prev = this.#tails[wait];
    if (entry.prev === undefined) this.#heads[wait] = entry;
    else entry.prev.next = entry;
    this.#tails[wait] = entry;
    this.#size++;
    if (!this.#firing && entry.due < this.#due) this.#arm();
  }

  /** Takes a connection out for good (closed, or it cannot be pinged). */
  remove(entry: BeatEntry<S>): void {
    if (entry.wait !== OUT) this.#unlink(entry);
    this.#beat.entries.delete(entry.peer);
    if (this.#size === 0 && !this.#firing) {
      this.#disarm();
      this.#beat.sweeps.delete(this.#clock);
    }
  }

  #unlink(entry: BeatEntry<S>): void {
    const wait = entry.wait as Wait;
    const { prev, next } = entry;
    if (prev === undefined) this.#heads[wait] = next;
    else prev.next = next;
    if (next === undefined) this.#tails[wait] = prev;
    else next.prev = prev;
    entry.prev = entry.next = undefined;
    entry.wait = OUT;
    this.#size--;
  }

  /** The head due first, or undefined when all three are empty. */
  #first(): BeatEntry<S> | undefined {
    let first: BeatEntry<S> | undefined;
    for (const head of this.#heads) {
      if (head !== undefined && (first === undefined || head.due < first.due)) first = head;
    }
    return first;
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due = Infinity;
  }

  #arm(): void {
    const due = this.#first()?.due ?? Infinity;
    if (due === this.#due && this.#timer !== undefined) return;
    this.#disarm();
    if (due === Infinity) return;
    this.#due = due;
    this.#timer = this.#clock.setTimeout(this.#fire, Math.max(0, due - this.#clock.now()));
  }

  #firing = false;

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#due = Infinity;
    this.#firing = true;
    try {
      const now = this.#clock.now();
      for (let entry = this.#first(); entry !== undefined && entry.due <= now; entry = this.#first()) {
        const wait = entry.wait as Wait;
        this.#unlink(entry);
        if (wait === PINGED) this.#check(entry);
        else this.#ping(entry);
      }
    } finally {
      this.#firing = false;
      if (this.#size === 0) {
        this.#disarm();
        if (this.#beat.sweeps.get(this.#clock) === this) this.#beat.sweeps.delete(this.#clock);
      } else {
        this.#arm();
      }
    }
  };

  #ping(entry: BeatEntry<S>): void {
    const peer = entry.peer;
    if (peer.readyState !== ReadyState.Open) return this.remove(entry);
    entry.seen = peer.bytesReceived;
    try {
      peer.ping();
    } catch (error) {
      // Cannot ping on this path (Deno.serve: ERR_UNSUPPORTED): stop rather
      // than drop a live peer, and say so once instead of doing nothing.
      this.remove(entry);
      this.#beat.cannotPing(`heartbeat() cannot ping on this path, so it is off for its connections (${error instanceof Error ? error.message : String(error)})`);
      return;
    }
    if (entry.wait === OUT && this.#beat.entries.get(peer) === entry) this.append(entry, PINGED);
  }

  #check(entry: BeatEntry<S>): void {
    const peer = entry.peer;
    if (peer.readyState !== ReadyState.Open) return this.remove(entry);
    if (peer.bytesReceived === entry.seen) {
      this.remove(entry);
      return peer.terminate(); // nothing since the ping: dead
    }
    this.append(entry, CHECKED);
  }
}

/**
 * Pings every connection every `intervalMs`; if nothing at all arrives
 * within `timeoutMs` after a ping, the connection is terminated (no close
 * handshake with a dead peer) and the `close` middleware hears code 1006,
 * `wasClean: false`. Anything the peer sends after the ping counts as life
 * (the pong, a message, a part of one), so a busy peer is kept even if its
 * pongs are slow. Time comes from the connection's clock; all the
 * connections of one `heartbeat()` on one clock share a single timer (a
 * sweep over queues ordered by due time, like the idle timeout's), so an
 * idle connection holds no timer of its own, and each ping and drop still
 * happens at its exact time.
 *
 * A peer that dies is dropped at most `intervalMs + timeoutMs` later (when
 * `timeoutMs` is longer than `intervalMs`, pings go out every `timeoutMs`).
 * On a path whose runtime cannot send pings (Deno's native `Deno.serve`
 * path) the heartbeat cannot tell silence from death, so it stops instead
 * of dropping live connections.
 *
 * @typeParam S The type of `ctx.state`.
 * @param options The interval and the timeout.
 * @returns Middleware for `open` and `close`.
 * @throws {UsageError} `ERR_INVALID_OPTION` when a time is not a positive number.
 *
 * @example
 * ```ts
 * import { App, heartbeat } from "@duplex/ws";
 *
 * const app = new App().use(heartbeat({ intervalMs: 15_000, timeoutMs: 5_000 }));
 * ```
 */
export function heartbeat<S = Record<string, unknown>>(options: HeartbeatOptions = {}): Phases<S> {
  const intervalMs = options.intervalMs ?? 30_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  for (const [name, value] of [["intervalMs", intervalMs], ["timeoutMs", timeoutMs]] as const) {
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: ${name} must be a positive number, got ${describeValue(value)}`);
    }
  }
  const afterCheck = Math.max(intervalMs - timeoutMs, 0);
  // One sweep per clock (in practice one: the system clock), each with one
  // timer for all its connections, instead of a timer per connection.
  const sweeps = new Map<Clock, HeartbeatSweep<S>>();
  const entries = new Map<Peer<S>, BeatEntry<S>>();
  let warned = false;
  const cannotPing = (message: string): void => {
    if (warned) return;
    warned = true;
    console.warn(`duplex: ${message}; on Deno.serve, idleTimeoutMs makes Deno ping and drop silent peers instead`);
  };
  const beat: Beat<S> = {
    delays: [intervalMs, afterCheck, timeoutMs],
    entries,
    sweeps,
    cannotPing,
  };

  const middleware: Phases<S> & { [CANNOT_PING]: (message: string) => void } = {
    // An adapter that knows at start that it cannot ping (Hono's route on
    // Deno.serve) says so through this, and the warning is still given once.
    [CANNOT_PING]: cannotPing,
    open(ctx, next) {
      const peer = ctx.peer;
      const clock = peer.clock;
      let sweep = sweeps.get(clock);
      if (sweep === undefined) sweeps.set(clock, sweep = new HeartbeatSweep(beat, clock));
      const entry = new BeatEntry(sweep, peer);
      entries.set(peer, entry);
      sweep.append(entry, OPENED);
      return next();
    },
    close(ctx, next) {
      const entry = entries.get(ctx.peer);
      if (entry !== undefined) entry.sweep.remove(entry);
      return next();
    },
  };
  return middleware;
}
