/**
 * The seam between `observe()` and the places it cannot see from the
 * pipeline: internal, in no entry point. An app hands the runtime adapters
 * its observer under {@linkcode OBSERVER}; connections say how they are
 * carried ({@linkcode TRANSPORT}), who started their close
 * ({@linkcode CLOSED_BY}) and what they carried ({@linkcode COUNTS}).
 * Nothing here runs while no observer is attached.
 *
 * @module
 */

/**
 * The key under which an `observe()` middleware holds its
 * {@linkcode UpgradeObserver}, and an app the one adapters call.
 */
export const OBSERVER: unique symbol = Symbol.for("duplex.observer");

/** The key of a connection's transport: `"raw"` (Duplex frames the bytes) or `"native"` (the runtime does). */
export const TRANSPORT: unique symbol = Symbol.for("duplex.transport");

/** The key of a connection's close initiator: `"server"`, `"client"`, or `undefined` while open. */
export const CLOSED_BY: unique symbol = Symbol.for("duplex.closedBy");

/**
 * The key of a connection's traffic counts ({@linkcode TrafficCounts}),
 * kept as plain numbers by the adapter and read at collection time.
 */
export const COUNTS: unique symbol = Symbol.for("duplex.counts");

/**
 * What a connection has carried so far. On raw transports the bytes are
 * the socket's (frames and the handshake); on native ones, message payload
 * lengths as the runtime hands them (text in UTF-16 code units).
 *
 * @example
 * ```ts
 * import type { TrafficCounts } from "./_observer.ts";
 *
 * const none: TrafficCounts = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 };
 * ```
 */
export interface TrafficCounts {
  /** Messages handed to the `message` hook. */
  messagesIn: number;
  /** Messages accepted by `send()` (queued for the peer). */
  messagesOut: number;
  /** Bytes received. */
  bytesIn: number;
  /** Bytes handed to the socket. */
  bytesOut: number;
}

/**
 * What a runtime adapter tells an observer that middleware cannot see: the
 * upgrades refused before, or instead of, the app's answer (503/429 when
 * full, 400/426/431 for a bad handshake, the app's own refusal, a 500).
 *
 * @example
 * ```ts
 * import type { UpgradeObserver } from "./_observer.ts";
 *
 * const log: UpgradeObserver = {
 *   attach: () => {},
 *   refused: (status, id) => console.log("refused", status, id),
 * };
 * ```
 */
export interface UpgradeObserver {
  /** The app that `use()`d the observer: its pub/sub counts and topics. */
  attach(app: ObservedApp): void;
  /** An upgrade was refused with `status`; `id` is the connection's, when it got one. */
  refused(status: number, id?: string): void;
  /** A connection started (`now`: its clock's time), before its handshake. */
  opening?(conn: object, now: number): void;
  /** A connection's output went over its high-water mark with `buffered` bytes. */
  backpressure?(buffered: number): void;
}

/**
 * What an observer reads from the app it is attached to.
 *
 * @example
 * ```ts
 * import type { ObservedApp } from "./_observer.ts";
 *
 * const app: ObservedApp = { pubsubStats: { published: 0, delivered: 0, dropped: 0, closedSlow: 0, received: 0 } };
 * ```
 */
export interface ObservedApp {
  /** Pub/sub counts since the app started. */
  readonly pubsubStats: Readonly<{ published: number; delivered: number; dropped: number; closedSlow: number; received: number }>;
}

/**
 * The observer of a handler (an app with an `observe()` middleware), or
 * `undefined`: one property read, so adapters may call it per upgrade.
 *
 * @param handler The adapter's handler.
 * @returns Its observer.
 *
 * @example
 * ```ts
 * import { observerOf } from "./_observer.ts";
 *
 * observerOf({})?.refused(503); // nothing: no observer
 * ```
 */
export function observerOf(handler: object): UpgradeObserver | undefined {
  return (handler as { [OBSERVER]?: UpgradeObserver })[OBSERVER];
}
