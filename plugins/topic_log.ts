/**
 * Topic histories for the reliable layer: the {@linkcode TopicLog}
 * contract (append with an idempotency key, read after a position, watch
 * live entries) and {@linkcode MemoryTopicLog}, a history per topic kept in
 * memory and bounded by count, bytes and age.
 *
 * @module
 */

import { checkOptions, describeValue, positiveIntegerOption } from "./_check.ts";
import { UsageError } from "../core/errors.ts";
import { byteLength, type From, type Gap, type GapReason } from "../client/_wire.ts";

/**
 * One entry of a topic's history.
 *
 * @example
 * ```ts
 * import type { LogEntry } from "@duplex/ws";
 *
 * const entry: LogEntry = { epoch: "3f1c…", offset: 1, data: "hello" };
 * ```
 */
export interface LogEntry {
  /** The history it belongs to. */
  readonly epoch: string;
  /** 1 for the first entry of the epoch, then +1 per entry. */
  readonly offset: number;
  /** A string (text) or bytes (binary). */
  readonly data: string | Uint8Array;
}

/**
 * What an append answers: the entry's position, and whether its key was
 * seen before (then nothing was stored and the position is the first one's).
 *
 * @example
 * ```ts
 * import type { Appended } from "@duplex/ws";
 *
 * const appended: Appended = { epoch: "3f1c…", offset: 7, duplicate: false };
 * ```
 */
export interface Appended {
  /** The topic's epoch. */
  readonly epoch: string;
  /** The entry's offset. */
  readonly offset: number;
  /** `true` when the key was already stored: this is the earlier entry's position. */
  readonly duplicate: boolean;
}

/**
 * What a read answers: entries after the asked position, the newest offset,
 * and what was asked for and is gone.
 *
 * @example
 * ```ts
 * import type { LogRead } from "@duplex/ws";
 *
 * const read: LogRead = { epoch: "3f1c…", entries: [], last: 0 };
 * ```
 */
export interface LogRead {
  /** The topic's current epoch. */
  readonly epoch: string;
  /** Oldest first, at most `limit`. After a gap, from the oldest entry held. */
  readonly entries: readonly LogEntry[];
  /** The newest offset of the epoch (0: none yet). */
  readonly last: number;
  /** What `after` asked for and is gone. */
  readonly gap?: Gap;
}

/**
 * A per-topic history: what the reliable layer stores published messages
 * in and replays them from. Methods may answer synchronously or with a
 * promise (a log on Redis Streams, say).
 *
 * Rules an implementation keeps: offsets are contiguous within an epoch
 * (1, 2, 3…); a new epoch means the old history is gone; `watch` listeners
 * get entries appended after they were added, once, in offset order.
 * A watch may lag behind reads (a read may already see an entry that its
 * listeners get later): the reliable layer skips what it already sent. It
 * may also start a little after it was added, or skip entries the history
 * dropped meanwhile (a log on Redis, after its connection was lost): the
 * reliable layer then reads the log again rather than send the hole.
 *
 * @example A log that logs, around the memory one
 * ```ts
 * import { MemoryTopicLog, type TopicLog } from "@duplex/ws";
 *
 * const inner = new MemoryTopicLog();
 * const log: TopicLog = {
 *   append: (topic, data, key) => (console.log("append", topic), inner.append(topic, data, key)),
 *   read: (topic, after, limit) => inner.read(topic, after, limit),
 *   watch: (topic, listener) => inner.watch(topic, listener),
 *   close: () => inner.close(),
 * };
 * ```
 */
export interface TopicLog {
  /**
   * Appends an entry. With a `key` already stored for this topic (and still
   * in its history), nothing is stored: the answer is the first entry's
   * position with `duplicate: true`.
   */
  append(topic: string, data: string | Uint8Array, key?: string): Appended | Promise<Appended>;
  /**
   * Reads up to `limit` entries after a position (`"start"`: from the
   * oldest held; `"now"`: none, only the epoch and the last offset).
   */
  read(topic: string, after: From, limit: number): LogRead | Promise<LogRead>;
  /**
   * Hands every entry appended from now on to `listener`, in offset order.
   *
   * @returns A function that removes the listener.
   */
  watch(topic: string, listener: (entry: LogEntry) => void): () => void;
  /** Releases the log (connections, timers). */
  close(): Promise<void>;
}

/**
 * Options of a {@linkcode MemoryTopicLog}.
 *
 * @example
 * ```ts
 * import type { MemoryTopicLogOptions } from "@duplex/ws";
 *
 * const options: MemoryTopicLogOptions = { maxMessages: 1000, maxAgeMs: 10 * 60_000 };
 * ```
 */
export interface MemoryTopicLogOptions {
  /** Most entries kept per topic; the oldest go first. Default 10,000. */
  maxMessages?: number;
  /** Most bytes of data kept per topic (UTF-8 for text). Default 16 MiB. */
  maxBytes?: number;
  /** Entries older than this many ms are dropped. Default 3,600,000 (one hour). */
  maxAgeMs?: number;
  /** Where the time comes from (ms; only differences matter). Default `Date.now`. */
  clock?: { now(): number };
}

/** A run of dropped offsets, all for one reason, up to and including `through`. */
interface Dropped {
  through: number;
  reason: "trimmed" | "expired";
}

/** One topic's history. */
interface History {
  epoch: string;
  /** Entries, oldest at `head`. */
  entries: LogEntry[];
  /** When each entry was appended (parallel to `entries`). */
  times: number[];
  /** Each entry's key, or `undefined` (parallel to `entries`). */
  keys: (string | undefined)[];
  /** Each entry's size in bytes (parallel to `entries`). */
  sizes: number[];
  head: number;
  last: number;
  bytes: number;
  byKey: Map<string, number>;
  watchers: Set<(entry: LogEntry) => void>;
  /** Why offsets before the oldest held are gone, oldest run first. */
  dropped: Dropped[];
  /** Entries waiting to be handed to watchers (an append from inside a watcher). */
  notifying: LogEntry[] | undefined;
  /** The last time it was used (appended, read, or its last watcher left). */
  touched: number;
}

const MAX_DROPPED_RUNS = 32;
/** The longest time between two sweeps of every topic, in ms. */
const SWEEP_MS = 30_000;

/** A new epoch: random, unique per history. */
function newEpoch(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const bytes = c.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A {@linkcode TopicLog} in memory: a history per topic, bounded by
 * `maxMessages`, `maxBytes` and `maxAgeMs` (the oldest entries go first).
 * Each history gets a random epoch when it starts, so a restarted process
 * (whose memory is gone) answers old positions with an `epoch` gap.
 *
 * Idempotency keys are remembered per topic while their entry is in the
 * history; a retried key answers the first entry's position with
 * `duplicate: true`. An entry larger than `maxBytes` is refused
 * (`UsageError` `ERR_TOO_LARGE`).
 *
 * Gaps: a position whose next offset was dropped by the count or byte bound
 * answers `trimmed`, by the age bound `expired`, a position of another
 * epoch (or beyond the last offset of this one, which this history never
 * had) `epoch`; the entries then start at the oldest held.
 *
 * Idle topics: a topic is kept while it has entries or watchers. Once it
 * has neither (every entry expired, the last watcher left) and has not been
 * used for `maxAgeMs`, it is forgotten, epoch included: memory stays bounded
 * by the topics in use. A client that comes back to a forgotten topic gets
 * an `epoch` gap, which is true (its history is gone). Expiry runs on every
 * use of a topic and, for the others, in a sweep of every topic at most
 * every 30 seconds (or half of `maxAgeMs`), run by the next use of the log.
 *
 * @example
 * ```ts
 * import { MemoryTopicLog } from "@duplex/ws";
 *
 * const log = new MemoryTopicLog({ maxMessages: 100 });
 * const { epoch, offset } = log.append("news", "hello");
 * console.log(log.read("news", { epoch, offset: 0 }, 10).entries.length); // 1
 * console.log(offset); // 1
 * ```
 */
export class MemoryTopicLog implements TopicLog {
  readonly #topics = new Map<string, History>();
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  readonly #maxAgeMs: number;
  readonly #clock: { now(): number };
  #lastSweep: number;
  #closed = false;

  /**
   * Creates an empty log.
   *
   * @param options The bounds per topic and the clock.
   * @throws {UsageError} `ERR_INVALID_OPTION` for an unknown option or a bad value.
   */
  constructor(options: MemoryTopicLogOptions = {}) {
    checkOptions(options, ["maxMessages", "maxBytes", "maxAgeMs", "clock"], "MemoryTopicLog");
    this.#maxMessages = positiveIntegerOption("maxMessages", options.maxMessages, 10_000);
    this.#maxBytes = positiveIntegerOption("maxBytes", options.maxBytes, 16 * 1024 * 1024);
    this.#maxAgeMs = positiveIntegerOption("maxAgeMs", options.maxAgeMs, 3_600_000);
    const clock = options.clock ?? { now: () => Date.now() };
    if (typeof clock !== "object" || clock === null || typeof clock.now !== "function") {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: clock must be an object with now(), got ${describeValue(clock)}`);
    }
    this.#clock = clock;
    this.#lastSweep = clock.now();
  }

  /** Number of topics held (with entries, watchers, or recently used). */
  get topics(): number {
    return this.#topics.size;
  }

  /**
   * Appends an entry, or answers the first one's position for a key already
   * stored. Watchers get the entry before this returns.
   *
   * @param topic The topic.
   * @param data The entry's data.
   * @param key An idempotency key.
   * @returns The entry's position.
   * @throws {UsageError} `ERR_TOO_LARGE` for data over `maxBytes`, `ERR_CLOSED` after `close()`.
   */
  append(topic: string, data: string | Uint8Array, key?: string): Appended {
    this.#check();
    const size = byteLength(data);
    if (size > this.#maxBytes) {
      throw new UsageError("ERR_TOO_LARGE", `Entry too large: ${size} bytes, the history of a topic holds at most ${this.#maxBytes}`);
    }
    const now = this.#clock.now();
    const h = this.#history(topic, now);
    if (key !== undefined) {
      const offset = h.byKey.get(key);
      if (offset !== undefined) return { epoch: h.epoch, offset, duplicate: true };
    }
    const entry: LogEntry = { epoch: h.epoch, offset: ++h.last, data };
    h.entries.push(entry);
    h.times.push(now);
    h.keys.push(key);
    h.sizes.push(size);
    h.bytes += size;
    if (key !== undefined) h.byKey.set(key, entry.offset);
    while (h.entries.length - h.head > this.#maxMessages || h.bytes > this.#maxBytes) this.#dropOldest(h, "trimmed");
    this.#compact(h);
    this.#notify(h, entry);
    return { epoch: entry.epoch, offset: entry.offset, duplicate: false };
  }

  /**
   * Reads up to `limit` entries after a position.
   *
   * @param topic The topic.
   * @param after `"start"`, `"now"` or a position.
   * @param limit Most entries returned (0 or more).
   * @returns The entries, the epoch, the last offset and any gap.
   * @throws {UsageError} `ERR_CLOSED` after `close()`.
   */
  read(topic: string, after: From, limit: number): LogRead {
    this.#check();
    const h = this.#history(topic, this.#clock.now());
    const held = h.entries.length - h.head;
    const oldest = held === 0 ? h.last + 1 : h.entries[h.head]!.offset;
    if (after === "now") return { epoch: h.epoch, entries: [], last: h.last };
    if (after === "start") return { epoch: h.epoch, entries: this.#slice(h, h.head, limit), last: h.last };
    let gap: Gap | undefined;
    let from = h.head;
    if (after.epoch !== h.epoch || after.offset > h.last) {
      gap = { reason: "epoch", epoch: after.epoch, from: after.offset + 1 };
    } else if (after.offset + 1 < oldest) {
      gap = { reason: this.#reason(h, after.offset + 1), epoch: h.epoch, from: after.offset + 1, to: oldest - 1 };
    } else {
      from = h.head + (after.offset + 1 - oldest);
    }
    const entries = this.#slice(h, from, limit);
    return gap === undefined ? { epoch: h.epoch, entries, last: h.last } : { epoch: h.epoch, entries, last: h.last, gap };
  }

  /**
   * Hands every entry appended to `topic` from now on to `listener`,
   * synchronously and in offset order. A watched topic keeps its epoch.
   *
   * @param topic The topic.
   * @param listener Gets each entry; a throw is ignored by the log.
   * @returns A function that removes the listener (calling it again does nothing).
   */
  watch(topic: string, listener: (entry: LogEntry) => void): () => void {
    this.#check();
    const now = this.#clock.now();
    const h = this.#history(topic, now);
    const own = { listener }; // the same function may watch twice
    const wrapped = (entry: LogEntry) => own.listener(entry);
    h.watchers.add(wrapped);
    return () => {
      if (!h.watchers.delete(wrapped)) return;
      h.touched = this.#clock.now();
    };
  }

  /**
   * Forgets every history; further calls throw `ERR_CLOSED`.
   *
   * @returns Resolves at once.
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#topics.clear();
    return Promise.resolve();
  }

  #check(): void {
    if (this.#closed) throw new UsageError("ERR_CLOSED", "The topic log is closed");
  }

  /** The topic's history, created when missing, expired entries dropped; sweeps every topic now and then. */
  #history(topic: string, now: number): History {
    if (now - this.#lastSweep >= Math.min(SWEEP_MS, this.#maxAgeMs / 2)) {
      this.#lastSweep = now;
      this.#sweep(now);
    }
    let h = this.#topics.get(topic);
    if (h === undefined) {
      h = {
        epoch: newEpoch(),
        entries: [],
        times: [],
        keys: [],
        sizes: [],
        head: 0,
        last: 0,
        bytes: 0,
        byKey: new Map(),
        watchers: new Set(),
        dropped: [],
        notifying: undefined,
        touched: now,
      };
      this.#topics.set(topic, h);
    } else {
      this.#expire(h, now);
    }
    h.touched = now;
    return h;
  }

  /** Drops expired entries of every topic, and forgets idle empty ones. */
  #sweep(now: number): void {
    for (const [topic, h] of this.#topics) {
      this.#expire(h, now);
      if (h.entries.length === h.head && h.watchers.size === 0 && now - h.touched >= this.#maxAgeMs) this.#topics.delete(topic);
    }
  }

  #expire(h: History, now: number): void {
    const cutoff = now - this.#maxAgeMs;
    let dropped = false;
    while (h.head < h.entries.length && h.times[h.head]! <= cutoff) {
      this.#dropOldest(h, "expired");
      dropped = true;
    }
    if (dropped) this.#compact(h);
  }

  #dropOldest(h: History, reason: Dropped["reason"]): void {
    const i = h.head++;
    const entry = h.entries[i]!;
    const key = h.keys[i];
    if (key !== undefined) h.byKey.delete(key);
    h.bytes -= h.sizes[i]!;
    const run = h.dropped.at(-1);
    if (run !== undefined && run.reason === reason && run.through === entry.offset - 1) {
      run.through = entry.offset;
    } else {
      h.dropped.push({ through: entry.offset, reason });
      if (h.dropped.length > MAX_DROPPED_RUNS) h.dropped.shift();
    }
  }

  /** Frees the dropped slots once they are half of the arrays. */
  #compact(h: History): void {
    if (h.head === 0) return;
    if (h.head === h.entries.length) {
      h.entries = [];
      h.times = [];
      h.keys = [];
      h.sizes = [];
      h.head = 0;
    } else if (h.head >= 1024 && h.head * 2 >= h.entries.length) {
      h.entries = h.entries.slice(h.head);
      h.times = h.times.slice(h.head);
      h.keys = h.keys.slice(h.head);
      h.sizes = h.sizes.slice(h.head);
      h.head = 0;
    }
  }

  /** Why `offset` (dropped) is gone. */
  #reason(h: History, offset: number): GapReason {
    for (const run of h.dropped) if (offset <= run.through) return run.reason;
    return h.dropped.at(-1)?.reason ?? "trimmed";
  }

  #slice(h: History, from: number, limit: number): LogEntry[] {
    const n = Math.max(0, Math.min(Number.isFinite(limit) ? Math.floor(limit) : 0, h.entries.length - from));
    return h.entries.slice(from, from + n);
  }

  /** Hands an entry to the watchers; an append from inside a watcher waits its turn, so order holds for all. */
  #notify(h: History, entry: LogEntry): void {
    if (h.notifying !== undefined) {
      h.notifying.push(entry);
      return;
    }
    const queue = [entry];
    h.notifying = queue;
    try {
      for (let i = 0; i < queue.length; i++) {
        for (const watcher of [...h.watchers]) {
          try {
            watcher(queue[i]!);
          } catch {
            // A watcher's fault is its own: the others still get the entry.
          }
        }
      }
    } finally {
      h.notifying = undefined;
    }
  }
}
