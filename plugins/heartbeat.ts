/**
 * Heartbeat: find peers that vanished without a FIN (a pulled cable, a
 * sleeping laptop, a NAT that forgot the flow) and drop them.
 *
 * @module
 */

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
  /** How long a connection may stay silent before it is pinged, in ms. Default 30,000. */
  intervalMs?: number;
  /** How long a pinged connection has to show life, in ms. Default 10,000. */
  timeoutMs?: number;
}

/**
 * Pings a connection that has been silent for `intervalMs`; if nothing at
 * all arrives within `timeoutMs` after the ping, the connection is
 * terminated (no close handshake with a dead peer) and the `close`
 * middleware hears code 1006, `wasClean: false`. Anything the peer sends
 * counts as life (a pong, a message, a part of one), so busy connections
 * are never pinged. Timers come from the connection's clock.
 *
 * A dead peer is dropped at most `2 × intervalMs + timeoutMs` after it last
 * sent something. On a path whose runtime cannot send pings (Deno's native
 * `Deno.serve` path) the heartbeat cannot tell silence from death, so it
 * stops instead of dropping live connections.
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
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: ${name} must be a positive number, got ${String(value)}`);
    }
  }
  const timers = new Map<Peer<S>, unknown>();

  const watch = (peer: Peer<S>, seen: number, delay: number, pinged: boolean): void => {
    timers.set(peer, peer.clock.setTimeout(() => check(peer, seen, pinged), delay));
  };
  const check = (peer: Peer<S>, seen: number, pinged: boolean): void => {
    timers.delete(peer);
    if (peer.readyState !== ReadyState.Open) return;
    const now = peer.bytesReceived;
    if (now !== seen) return watch(peer, now, intervalMs, false); // alive
    if (pinged) return peer.terminate(); // silent through a whole timeout: dead
    try {
      peer.ping();
    } catch {
      return; // cannot ping on this path (ERR_UNSUPPORTED): stop rather than drop a live peer
    }
    watch(peer, now, timeoutMs, true);
  };

  return {
    open(ctx, next) {
      const peer = ctx.peer;
      watch(peer, peer.bytesReceived, intervalMs, false);
      return next();
    },
    close(ctx, next) {
      const peer = ctx.peer;
      peer.clock.clearTimeout(timers.get(peer));
      timers.delete(peer);
      return next();
    },
  };
}
