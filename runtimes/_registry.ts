/**
 * The live connections of one server, raw and native alike: admission
 * (`maxConnections`, `maxConnectionsPerAddress`), the idle sweeps, and
 * shutdown.
 *
 * @module
 */

import { addressKey, type IdleOps, IdleSweep } from "./_limits.ts";
import { CONNECTION_DEFAULTS } from "./_options.ts";
import { type Clock, type ConnectionOptions, systemClock } from "../plugins/hooks.ts";

/**
 * What a server's {@linkcode ConnectionSet} holds: a connection it can shut
 * down. Raw connections ({@linkcode Pump}) and native ones implement it.
 *
 * @example
 * ```ts
 * import type { Tracked } from "./_registry.ts";
 *
 * const connection: Tracked = {
 *   shutdown: (code, reason) => console.log(code, reason),
 *   destroy: () => console.log("destroyed"),
 * };
 * ```
 */
export interface Tracked {
  /**
   * Runs the `shutdown` hook, then closes with `code` (or drops a handshake
   * in progress); the set hears of it once the socket closed.
   */
  shutdown(code: number, reason: string): void;
  /** Drops the socket now, whatever the state. */
  destroy(): void;
}

/**
 * An upgrade the server turns down before the app sees it: 503 when full or
 * shutting down, 429 when the peer's address has too many connections.
 *
 * @example
 * ```ts
 * import type { Refusal } from "./_registry.ts";
 *
 * const refusal: Refusal = { status: 503, body: "Service Unavailable: too many connections", headers: [["Retry-After", "5"]] };
 * ```
 */
export interface Refusal {
  /** 503 or 429. */
  status: number;
  /** A short text body. */
  body: string;
  /** `Retry-After`. */
  headers: [string, string][];
}

/**
 * The live connections of one server: admission (`maxConnections`,
 * `maxConnectionsPerAddress`) and shutdown.
 *
 * @example
 * ```ts
 * import { ConnectionSet } from "./_registry.ts";
 *
 * const set = new ConnectionSet({ maxConnections: 1000 });
 * // Every Pump created with `set` adds itself, and removes itself once its socket closed.
 * await set.shutdown(1001, "Server shutting down"); // resolves at once when empty
 * ```
 */
export class ConnectionSet {
  readonly #pumps = new Set<Tracked>();
  readonly #admitted = new Map<Tracked, string>();
  readonly #perAddress = new Map<string, number>();
  readonly #maxConnections: number;
  readonly #maxPerAddress: number;
  readonly #retryAfter: string;
  readonly #shutdownTimeoutMs: number;
  readonly #clock: Clock;
  #waiters: (() => void)[] = [];
  #closing = false;
  #sweeps: IdleSweep<unknown>[] = [];

  /**
   * @param options The server's connection options (already checked): the
   *   admission limits, `shutdownTimeoutMs` and the clock.
   */
  constructor(options: Readonly<ConnectionOptions> = {}) {
    this.#maxConnections = options.maxConnections ?? CONNECTION_DEFAULTS.maxConnections;
    this.#maxPerAddress = options.maxConnectionsPerAddress ?? CONNECTION_DEFAULTS.maxConnectionsPerAddress;
    this.#retryAfter = String(options.retryAfterSeconds ?? CONNECTION_DEFAULTS.retryAfterSeconds);
    this.#shutdownTimeoutMs = options.shutdownTimeoutMs ?? CONNECTION_DEFAULTS.shutdownTimeoutMs;
    this.#clock = options.clock ?? systemClock;
  }

  /** Whether `shutdown()` was called: new connections should be refused. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Resolves once no connection is left. */
  whenEmpty(): Promise<void> {
    if (this.#pumps.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Number of live connections (handshakes in progress included). */
  get size(): number {
    return this.#pumps.size;
  }

  /** Number of connections admitted: open, closing, or past the checks and in the `upgrade` hook. */
  get admitted(): number {
    return this.#admitted.size;
  }

  /** Iterates over the live connections. */
  [Symbol.iterator](): IterableIterator<Tracked> {
    return this.#pumps.values();
  }

  /**
   * The server's idle sweep for one kind of connection: one timer for all
   * of them, created on first use.
   *
   * @param clock The connections' clock.
   * @param timeoutMs Their idle timeout, above 0.
   * @param ops What the sweep asks of them (one object per kind of connection).
   */
  idleSweep<T>(clock: Clock, timeoutMs: number, ops: IdleOps<T>): IdleSweep<T> {
    for (const sweep of this.#sweeps) {
      if (sweep.clock === clock && sweep.timeoutMs === timeoutMs && sweep.ops === ops) return sweep as IdleSweep<T>;
    }
    const sweep = new IdleSweep(clock, timeoutMs, ops);
    this.#sweeps.push(sweep as IdleSweep<unknown>);
    return sweep;
  }

  /** Adds a connection. */
  add(pump: Tracked): void {
    this.#pumps.add(pump);
  }

  /**
   * Counts a valid upgrade request against the limits, before the app's
   * `upgrade` hook runs. It stays counted until {@linkcode delete}.
   *
   * @returns `undefined` when admitted, else the refusal to answer with.
   */
  admit(pump: Tracked, remoteAddress: string): Refusal | undefined {
    const retry: [string, string][] = [["Retry-After", this.#retryAfter]];
    if (this.#closing) return { status: 503, body: "Service Unavailable: shutting down", headers: retry };
    if (this.#admitted.size >= this.#maxConnections) {
      return { status: 503, body: "Service Unavailable: too many connections", headers: retry };
    }
    const key = addressKey(remoteAddress);
    const count = this.#perAddress.get(key) ?? 0;
    if (count >= this.#maxPerAddress) {
      return { status: 429, body: "Too Many Requests: too many connections from this address", headers: retry };
    }
    this.#perAddress.set(key, count + 1);
    this.#admitted.set(pump, key);
    return undefined;
  }

  /** Removes a closed connection. */
  delete(pump: Tracked): void {
    const key = this.#admitted.get(pump);
    if (key !== undefined) {
      this.#admitted.delete(pump);
      const count = this.#perAddress.get(key)! - 1;
      if (count === 0) this.#perAddress.delete(key);
      else this.#perAddress.set(key, count);
    }
    if (!this.#pumps.delete(pump)) return;
    if (this.#pumps.size === 0) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /**
   * Stops admitting, runs every open connection's `shutdown` hook and closes
   * it with `code`, and resolves once every socket is closed. Handshakes in
   * progress are dropped. Whatever is left after `shutdownTimeoutMs`
   * (hooks that never return, peers that never answer) is destroyed.
   */
  shutdown(code: number, reason: string): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      for (const pump of [...this.#pumps]) pump.shutdown(code, reason);
      if (this.#pumps.size > 0) {
        const timer = this.#clock.setTimeout(() => {
          for (const pump of [...this.#pumps]) pump.destroy();
        }, this.#shutdownTimeoutMs);
        void this.whenEmpty().then(() => this.#clock.clearTimeout(timer));
      }
    }
    return this.whenEmpty();
  }
}
