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

/**
 * Pings every connection every `intervalMs`; if nothing at all arrives
 * within `timeoutMs` after a ping, the connection is terminated (no close
 * handshake with a dead peer) and the `close` middleware hears code 1006,
 * `wasClean: false`. Anything the peer sends after the ping counts as life
 * (the pong, a message, a part of one), so a busy peer is kept even if its
 * pongs are slow. Timers come from the connection's clock.
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
  const timers = new Map<Peer<S>, unknown>();
  let warned = false;
  const cannotPing = (message: string): void => {
    if (warned) return;
    warned = true;
    console.warn(`duplex: ${message}; on Deno.serve, idleTimeoutMs makes Deno ping and drop silent peers instead`);
  };

  const schedule = (peer: Peer<S>, fn: () => void, delay: number): void => {
    timers.set(peer, peer.clock.setTimeout(fn, delay));
  };
  const ping = (peer: Peer<S>): void => {
    timers.delete(peer);
    if (peer.readyState !== ReadyState.Open) return;
    const seen = peer.bytesReceived;
    try {
      peer.ping();
    } catch (error) {
      // Cannot ping on this path (Deno.serve: ERR_UNSUPPORTED): stop rather
      // than drop a live peer, and say so once instead of doing nothing.
      cannotPing(`heartbeat() cannot ping on this path, so it is off for its connections (${error instanceof Error ? error.message : String(error)})`);
      return;
    }
    schedule(peer, () => check(peer, seen), timeoutMs);
  };
  const check = (peer: Peer<S>, seen: number): void => {
    timers.delete(peer);
    if (peer.readyState !== ReadyState.Open) return;
    if (peer.bytesReceived === seen) return peer.terminate(); // nothing since the ping: dead
    schedule(peer, () => ping(peer), afterCheck);
  };

  const middleware: Phases<S> & { [CANNOT_PING]: (message: string) => void } = {
    // An adapter that knows at start that it cannot ping (Hono's route on
    // Deno.serve) says so through this, and the warning is still given once.
    [CANNOT_PING]: cannotPing,
    open(ctx, next) {
      const peer = ctx.peer;
      schedule(peer, () => ping(peer), intervalMs);
      return next();
    },
    close(ctx, next) {
      const peer = ctx.peer;
      peer.clock.clearTimeout(timers.get(peer));
      timers.delete(peer);
      return next();
    },
  };
  return middleware;
}
