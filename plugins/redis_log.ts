/**
 * A {@linkcode TopicLog} on Redis Streams: recoverable topics shared by every
 * process on one Redis, surviving restarts of those processes and of Redis
 * itself (with its persistence on). Exported from `@duplex/ws/redis`.
 *
 * @module
 */

import { forClient, quit } from "./_redis.ts";
import { checkOptions, describeValue, positiveIntegerOption } from "./_check.ts";
import { UsageError } from "../core/errors.ts";
import { byteLength, type From, type Gap, type GapReason } from "../client/_wire.ts";
import type { Appended, LogEntry, LogRead, TopicLog } from "./topic_log.ts";
import { BackplaneError, type RedisClient } from "./redis.ts";

/**
 * The part of a Redis client that {@linkcode RedisTopicLog} uses, typed
 * structurally so that Duplex imports no Redis package. An
 * [ioredis](https://github.com/redis/ioredis) `Redis` instance (5.x or 6.x)
 * fits as it is, and so does an ioredis `Cluster`.
 *
 * What the log expects of it:
 *
 * - `callBuffer` sends any command and answers bulk strings as bytes
 *   (ioredis's `Buffer` replies), so binary entries survive.
 * - `status` is `"ready"` when commands go straight to the server (ioredis's
 *   states). The log hands it commands only then, and waits for `ready` at
 *   most `commandTimeoutMs`, so the client's offline queue stays empty and a
 *   command fails fast while Redis is unreachable.
 * - It reconnects by itself and emits `ready` once usable, `close` when a
 *   connection is lost, `end` when it gives up, `error` for every failure.
 * - The subscriber emits `messageBuffer` with the channel and the message as
 *   bytes.
 *
 * @example An ioredis client
 * ```ts
 * import { Redis } from "ioredis";
 * import type { RedisLogClient } from "@duplex/ws/redis";
 *
 * const client: RedisLogClient = new Redis("redis://127.0.0.1:6379");
 * ```
 */
export interface RedisLogClient extends Omit<RedisClient, "publish"> {
  /** Sends one command; bulk string replies come back as bytes. */
  callBuffer(command: string, ...args: (string | Uint8Array | number)[]): Promise<unknown>;
}

/**
 * Options of a {@linkcode RedisTopicLog}.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import type { RedisTopicLogOptions } from "@duplex/ws/redis";
 *
 * const options: RedisTopicLogOptions = {
 *   createClient: (role) => new Redis("redis://127.0.0.1:6379", { connectionName: `duplex-log-${role}` }),
 *   maxMessages: 1000,
 *   maxAgeMs: 10 * 60_000,
 * };
 * ```
 */
export interface RedisTopicLogOptions {
  /**
   * Creates one Redis client. Called at most twice per log, on first use:
   * once for the `"commands"` (appends and reads), once for the
   * `"subscriber"` (live entries; a subscribed Redis connection can send
   * nothing else). Each call must return a new client. The log owns them: it
   * quits them in `close()`. See {@linkcode RedisLogClient}. With ioredis,
   * `autoResendUnfulfilledCommands: false` keeps a command that was lost
   * with its connection (and reported failed) from running later.
   */
  createClient: (role: "commands" | "subscriber") => RedisLogClient;
  /** Put before every key and channel, so that apps sharing a Redis keep apart; no `{` or `}`. Default `"duplex:"`. */
  prefix?: string;
  /** Most entries kept per topic; the oldest go first (exact, in the append itself). Default 10,000. */
  maxMessages?: number;
  /**
   * Entries older than this many ms are dropped (by Redis's clock, the same
   * for every process). A topic unused (no append, no read, no watch) for
   * twice as long is forgotten, epoch included. Default 3,600,000 (one hour).
   */
  maxAgeMs?: number;
  /** The largest entry, in bytes (UTF-8 for text); a larger one is refused with `ERR_TOO_LARGE`. Default 1 MiB. */
  maxMessageBytes?: number;
  /**
   * How long a command may take (waiting for the first connection
   * included) before it is rejected; while a connection is lost, commands
   * are rejected at once (the reliable layer then answers `unavailable`). The
   * subscriber connection is pinged every five times this, the commands one
   * after a command took too long, and either is reconnected when the ping
   * takes longer too. Default 2,000.
   */
  commandTimeoutMs?: number;
  /** Where failures of the live path go (a lost subscriber connection, a failed catch-up); once per outage. Default: `console.error`. */
  onError?: (error: unknown) => void;
}

/**
 * Counts of a {@linkcode RedisTopicLog} since it was created.
 *
 * @example
 * ```ts
 * import type { RedisTopicLog, RedisTopicLogStats } from "@duplex/ws/redis";
 *
 * declare const log: RedisTopicLog;
 * const stats: RedisTopicLogStats = log.stats;
 * console.log(`${stats.live} live, ${stats.caughtUp} read from the streams by watches`);
 * ```
 */
export interface RedisTopicLogStats {
  /** Appends that stored an entry. */
  appended: number;
  /** Appends answered with an earlier entry's position (a known idempotency key). */
  duplicates: number;
  /** Scripts rejected: appends, reads, and the watches' reads (Redis unreachable, slow, or answering an error). */
  failed: number;
  /** Entries handed to watchers as they came through Pub/Sub. */
  live: number;
  /** Entries handed to watchers from the stream (a hole, a reconnect, the periodic check). */
  caughtUp: number;
  /** Connections lost (commands or subscriber), including those replaced for being silent. */
  disconnects: number;
  /** Topics found rewound (Redis lost acked entries) and moved to a new epoch. */
  rewound: number;
  /** Topics watched now. */
  watched: number;
}

const OPTIONS = ["createClient", "prefix", "maxMessages", "maxAgeMs", "maxMessageBytes", "commandTimeoutMs", "onError"];
/** Entries per read while a watch catches up. */
const CATCH_UP_BATCH = 1000;
/** Live entries held for a watch while it catches up; beyond, they are dropped and read from the stream. */
const MAX_HELD = 10_000;
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2000;
const SUBSCRIBE_BATCH = 512;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---- Lua: one script per operation, each atomic, all keys of one topic in one slot ----

// KEYS: the stream, the meta hash, the idempotency keys hash.
const LUA_COMMON = `
local s, m, k = KEYS[1], KEYS[2], KEYS[3]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function offset_of(id)
  return tonumber(string.match(id, '^(%d+)'))
end
-- The epoch, created (with an empty history) when the meta hash is gone.
local function epoch_of(candidate)
  local e = redis.call('HGET', m, 'epoch')
  if e then return e end
  redis.call('DEL', s, k)
  redis.call('HSET', m, 'epoch', candidate, 'last', '0')
  return candidate
end
-- Records that offsets up to 'through' are gone, and why: the last run in rt/rr, older runs in 'runs'.
local function record(through, reason)
  local rr = redis.call('HGET', m, 'rr')
  if rr and rr ~= reason then
    local runs = (redis.call('HGET', m, 'runs') or '') .. redis.call('HGET', m, 'rt') .. ':' .. rr .. ','
    local _, n = string.gsub(runs, ',', ',')
    if n > 32 then runs = string.sub(runs, string.find(runs, ',', 1, true) + 1) end
    redis.call('HSET', m, 'runs', runs)
  end
  redis.call('HSET', m, 'rt', string.format('%d', through), 'rr', reason)
end
-- Drops entries (oldest first) while keep(entry's fields) is false, at most 'max'; forgets their keys.
local function drop(max, keep, reason)
  local through = nil
  local left = max
  local count = 1
  while left > 0 do
    local batch = redis.call('XRANGE', s, '-', '+', 'COUNT', math.min(count, left))
    if #batch == 0 then break end
    local stop = false
    for _, e in ipairs(batch) do
      local f = e[2]
      local key, t = '', 0
      for i = 1, #f, 2 do
        if f[i] == 'k' then key = f[i + 1] elseif f[i] == 't' then t = tonumber(f[i + 1]) end
      end
      if keep(t) then stop = true break end
      if key ~= '' then redis.call('HDEL', k, key) end
      through = offset_of(e[1])
      left = left - 1
    end
    if stop or #batch < count then break end
    count = 128
  end
  if through then
    redis.call('XTRIM', s, 'MINID', string.format('%d-0', through + 1))
    record(through, reason)
  end
end
local function expire(max_age, now)
  local cutoff = now - max_age
  drop(1e15, function(t) return t > cutoff end, 'expired')
end
local function touch(ttl)
  redis.call('PEXPIRE', s, ttl)
  redis.call('PEXPIRE', m, ttl)
  redis.call('PEXPIRE', k, ttl)
end
`;

// ARGV: candidate epoch, data, binary ("1"/"0"), key ("" for none), maxMessages, maxAgeMs, ttl, channel.
const LUA_APPEND = LUA_COMMON + `
local epoch = epoch_of(ARGV[1])
local key = ARGV[4]
local max_len, max_age, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local now = now_ms()
expire(max_age, now)
if key ~= '' then
  local seen = redis.call('HGET', k, key)
  if seen then
    touch(ttl)
    return {epoch, tonumber(seen), 1}
  end
end
local offset = redis.call('HINCRBY', m, 'last', 1)
redis.call('XADD', s, string.format('%d-0', offset), 'd', ARGV[2], 'b', ARGV[3], 'k', key, 't', string.format('%d', now))
if key ~= '' then redis.call('HSET', k, key, offset) end
local excess = redis.call('XLEN', s) - max_len
if excess > 0 then drop(excess, function(t) return false end, 'trimmed') end
touch(ttl)
redis.call('PUBLISH', ARGV[8], epoch .. '\\n' .. string.format('%d', offset) .. '\\n' .. ARGV[3] .. '\\n' .. string.format('%d', now) .. '\\n' .. ARGV[2])
return {epoch, offset, 0}
`;

// ARGV: candidate epoch, maxAgeMs, ttl, mode ("start", "now", "after"), after epoch, after offset, limit.
const LUA_READ = LUA_COMMON + `
local epoch = epoch_of(ARGV[1])
expire(tonumber(ARGV[2]), now_ms())
touch(tonumber(ARGV[3]))
local last = tonumber(redis.call('HGET', m, 'last'))
local head = redis.call('XRANGE', s, '-', '+', 'COUNT', 1)
local oldest = last + 1
if #head > 0 then oldest = offset_of(head[1][1]) end
local mode, limit = ARGV[4], tonumber(ARGV[7])
local gap = ''
local from = '-'
if mode == 'after' then
  local after = tonumber(ARGV[6])
  if ARGV[5] ~= epoch or after > last then gap = 'epoch'
  elseif after + 1 < oldest then gap = 'lost'
  else from = string.format('%d-0', after + 1) end
end
local entries = {}
if mode ~= 'now' and limit > 0 then entries = redis.call('XRANGE', s, from, '+', 'COUNT', limit) end
local rr = redis.call('HGET', m, 'rr') or ''
local rt = redis.call('HGET', m, 'rt') or ''
local runs = redis.call('HGET', m, 'runs') or ''
return {epoch, last, oldest, gap, runs, rt, rr, entries}
`;

/** A script and its SHA-1 (computed once, lazily: EVALSHA first, EVAL on NOSCRIPT). */
class Script {
  readonly source: string;
  #sha: Promise<string> | undefined;

  constructor(source: string) {
    this.source = source;
  }

  sha(): Promise<string> {
    return this.#sha ??= crypto.subtle.digest("SHA-1", encoder.encode(this.source)).then((digest) =>
      Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("")
    );
  }
}

// ARGV: the epoch, an offset handed on, its entry's time. Deletes the topic if it is in that epoch
// and no longer holds that entry: its last offset is below, or another entry took the offset.
const LUA_RESET = `
if redis.call('HGET', KEYS[2], 'epoch') ~= ARGV[1] then return 0 end
local broken = tonumber(redis.call('HGET', KEYS[2], 'last') or '0') < tonumber(ARGV[2])
if not broken and ARGV[3] ~= '' then
  local e = redis.call('XRANGE', KEYS[1], ARGV[2] .. '-0', ARGV[2] .. '-0')
  if #e > 0 then
    local f, t = e[1][2], ''
    for i = 1, #f, 2 do if f[i] == 't' then t = f[i + 1] end end
    broken = t ~= ARGV[3]
  end
end
if not broken then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
`;

const APPEND = new Script(LUA_APPEND);
const RESET = new Script(LUA_RESET);
const READ = new Script(LUA_READ);

/** A new epoch: random. */
function newEpoch(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const bytes = c.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function text(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return decoder.decode(value);
  return String(value);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** One watched topic: its listeners, and the cursor of what they were handed. */
interface Watched {
  readonly topic: string;
  readonly channel: string;
  readonly listeners: Set<(entry: LogEntry) => void>;
  /** The cursor: the epoch and offset handed to the listeners last; `undefined` before the first sync. */
  epoch: string | undefined;
  last: number;
  /** The time of the entry at the cursor (what tells it from another entry at that offset); `""`: unknown. */
  lastT: string;
  /** Epochs it moved on from, newest last (a late entry of one is skipped). */
  retired: string[];
  /**
   * The subscriber connection was lost since the last catch-up: Redis may
   * have restarted with less than was handed on, so live entries are held
   * until a catch-up has checked the entry at the cursor.
   */
  stale: boolean;
  /** SUBSCRIBE answered on the current subscriber connection. */
  subscribed: boolean;
  /** A catch-up from the stream is running. */
  syncing: boolean;
  /** Another catch-up is needed (a hole seen, a reconnect) once this one ends. */
  dirty: boolean;
  /** Live entries that arrived during the catch-up, oldest first. */
  held: Stamped[];
  /** Live entries were dropped from `held`: read them from the stream. */
  overflow: boolean;
  /** Failed catch-ups in a row, and the timer of the next. */
  fails: number;
  retry: ReturnType<typeof setTimeout> | undefined;
  removed: boolean;
}

/** An entry and its time (Redis ms, as stored). */
interface Stamped {
  readonly entry: LogEntry;
  readonly t: string;
}

/** One client and what the log knows of its connection. */
interface Side {
  readonly role: "commands" | "subscriber";
  readonly client: RedisLogClient;
  /** Resolvers waiting for `ready`. */
  readonly waiting: Set<() => void>;
  /** This outage was reported already. */
  reported: boolean;
  /** A ping is checking that the connection is alive. */
  probing: boolean;
  /** `ready` seen since the last `close`. */
  up: boolean;
  /** `ready` seen once. */
  everUp: boolean;
}

/**
 * A {@linkcode TopicLog} on Redis Streams, for {@linkcode reliable}: every
 * process using the same Redis (and `prefix`) shares the topics' histories.
 * A client that reconnects to any process resumes from its position; a
 * retried publish is stored once whichever process receives it.
 *
 * **Keys.** A topic `T` uses three keys that share the hash tag `{T}`, so
 * that in a Redis Cluster a topic lives in one slot (in the tag, `%` and `}`
 * of the topic are written `%25` and `%7D`): `${prefix}{T}:s` (a
 * stream: the entries, id `${offset}-0`, fields `d` data, `b` `"1"` when
 * binary, `k` idempotency key, `t` Redis time in ms), `${prefix}{T}:m` (a
 * hash: `epoch`, `last` offset, and why offsets before the oldest held are
 * gone) and `${prefix}{T}:k` (a hash: idempotency key → offset, forgotten
 * with its entry). Live entries travel on the Pub/Sub channel
 * `${prefix}{T}:c`.
 *
 * **Appends** run one Lua script (atomic): create the epoch if the topic has
 * none, drop expired entries, answer a known key with its first position,
 * add the entry at `last + 1`, trim to `maxMessages`, and publish it for
 * live delivery. **Reads** run one script too (creating the epoch, dropping
 * expired entries): a position of another epoch or beyond the last offset
 * answers an `epoch` gap; one whose next entry was dropped, `trimmed` or
 * `expired` after the bound that dropped it.
 *
 * **Live entries.** The stream is the source of truth, Pub/Sub the fast
 * path. Each watched topic keeps the offset handed to its listeners last;
 * an entry that is not the next one (a hole), and every reconnect of the
 * subscriber connection, makes it catch up from the stream (`XRANGE`) before
 * anything newer is handed on. Entries trimmed while it was disconnected
 * are skipped (what is there is handed on: the hole reaches the clients,
 * which subscribe again and are told the gap and its cause). A new epoch
 * (the history was lost: a `FLUSHALL`, a Redis restart without persistence)
 * is handed on as such; the reliable layer closes its subscribers with 1012.
 *
 * **Redis unreachable.** Commands are sent only on a ready connection:
 * while the connection is lost they are rejected at once, before the first
 * one they wait for it at most `commandTimeoutMs`, and an answer that takes
 * longer rejects them too: appends and reads fail fast (the reliable layer
 * answers `unavailable`; clients retry with the same idempotency key). A
 * connection that stops answering is replaced (see `commandTimeoutMs`).
 * Watches catch up once the connections are back.
 *
 * **Persistence.** What was acked must survive a Redis restart: run Redis
 * with `appendonly yes` (with `appendfsync everysec`, a crash of the Redis
 * process loses nothing acked; a crash of the machine may lose the last
 * second: use `appendfsync always` against that) and `maxmemory-policy
 * noeviction`. Needs Redis 6.2 or later.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { App, reliable, serve } from "@duplex/ws";
 * import { RedisTopicLog } from "@duplex/ws/redis";
 *
 * const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
 * const log = new RedisTopicLog({ createClient: () => new Redis(url) });
 * const live = reliable({ log, authorize: { publish: () => true } });
 * const server = await serve(new App().use(live), { port: 8080 });
 * // on shutdown (closing the layer closes the log)
 * await server.close();
 * await live.close();
 * ```
 */
export class RedisTopicLog implements TopicLog {
  readonly #createClient: RedisTopicLogOptions["createClient"];
  readonly #prefix: string;
  readonly #maxMessages: number;
  readonly #maxAgeMs: number;
  readonly #ttlMs: number;
  readonly #maxMessageBytes: number;
  readonly #timeoutMs: number;
  readonly #onError: (error: unknown) => void;
  #commands: Side | undefined;
  #subscriber: Side | undefined;
  /** Watched topics by channel. */
  readonly #watched = new Map<string, Watched>();
  /** Channels unwatched while the subscriber was not connected: unsubscribed once it is. */
  readonly #unwanted = new Set<string>();
  #touchTimer: ReturnType<typeof setTimeout> | undefined;
  /** Scripts sent as EVALSHA and not answered yet (see `#eval`). */
  #scriptsOut = 0;
  /** While a NOSCRIPT answer's EVALSHAs sent before it are out: the scripts called meanwhile, in call order. */
  #held: (() => void)[] | undefined;
  /** How often watched topics catch up and keep their keys alive, and when they last did. */
  readonly #touchMs: number;
  #lastTouch = Date.now();
  #closing: Promise<void> | undefined;
  readonly #counts: Omit<RedisTopicLogStats, "watched"> = {
    appended: 0,
    duplicates: 0,
    failed: 0,
    live: 0,
    caughtUp: 0,
    disconnects: 0,
    rewound: 0,
  };

  /**
   * Creates the log; no client is created before its first use.
   *
   * @param options The client factory, the key prefix, the bounds and the command timeout.
   * @throws {UsageError} `ERR_INVALID_OPTION` for an unknown option or a bad value.
   */
  constructor(options: RedisTopicLogOptions) {
    checkOptions(options, OPTIONS, "RedisTopicLog");
    if (typeof options?.createClient !== "function") {
      throw new UsageError("ERR_INVALID_OPTION", "Invalid option: createClient must be a function that returns a Redis client");
    }
    const prefix = options.prefix ?? "duplex:";
    if (typeof prefix !== "string" || /[{}]/.test(prefix)) {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: prefix must be a string without { or } (the topic is the hash tag), got ${describeValue(prefix)}`);
    }
    const onError = options.onError ?? ((error: unknown) => console.error("duplex: redis log:", error));
    if (typeof onError !== "function") {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: onError must be a function, got ${describeValue(onError)}`);
    }
    this.#createClient = options.createClient;
    this.#prefix = prefix;
    this.#maxMessages = positiveIntegerOption("maxMessages", options.maxMessages, 10_000);
    this.#maxAgeMs = positiveIntegerOption("maxAgeMs", options.maxAgeMs, 3_600_000);
    this.#maxMessageBytes = positiveIntegerOption("maxMessageBytes", options.maxMessageBytes, 1024 * 1024);
    this.#timeoutMs = positiveIntegerOption("commandTimeoutMs", options.commandTimeoutMs, 2000);
    this.#ttlMs = this.#maxAgeMs * 2;
    this.#touchMs = Math.max(10, Math.min(this.#maxAgeMs / 2, 60_000));
    this.#onError = onError;
  }

  /** Counts since the log was created; `watched` is now. */
  get stats(): Readonly<RedisTopicLogStats> {
    return { ...this.#counts, watched: this.#watched.size };
  }

  /**
   * The Redis keys of a topic (all in one Cluster slot) and its channel.
   *
   * @param topic The topic.
   * @returns The stream, the meta hash, the idempotency keys hash, the Pub/Sub channel.
   *
   * @example
   * ```ts
   * import { RedisTopicLog } from "@duplex/ws/redis";
   *
   * declare const log: RedisTopicLog;
   * console.log(log.keys("news").stream); // "duplex:{news}:s"
   * ```
   */
  keys(topic: string): { stream: string; meta: string; keys: string; channel: string } {
    const base = `${this.#prefix}{${topic.replace(/[%}]/g, (c) => (c === "%" ? "%25" : "%7D"))}}:`;
    return { stream: `${base}s`, meta: `${base}m`, keys: `${base}k`, channel: `${base}c` };
  }

  /**
   * Appends an entry, or answers the first one's position for a key already
   * stored (while its entry is held).
   *
   * @param topic The topic.
   * @param data The entry's data.
   * @param key An idempotency key.
   * @returns The entry's position.
   * @throws {UsageError} `ERR_TOO_LARGE` for data over `maxMessageBytes`, `ERR_CLOSED` after `close()`.
   * @throws {BackplaneError} `ERR_REDIS_UNAVAILABLE`, `ERR_REDIS_TIMEOUT` or `ERR_REDIS_COMMAND` (as rejections): the entry may or may not be stored.
   */
  async append(topic: string, data: string | Uint8Array, key?: string): Promise<Appended> {
    this.#check();
    const size = byteLength(data);
    if (size > this.#maxMessageBytes) {
      throw new UsageError("ERR_TOO_LARGE", `Entry too large: ${size} bytes, at most ${this.#maxMessageBytes}`);
    }
    const binary = typeof data !== "string";
    const k = this.keys(topic);
    const reply = await this.#eval(APPEND, [k.stream, k.meta, k.keys], [
      newEpoch(),
      typeof data === "string" ? data : forClient(data),
      binary ? "1" : "0",
      key ?? "",
      this.#maxMessages,
      this.#maxAgeMs,
      this.#ttlMs,
      k.channel,
    ]);
    const [epoch, offset, duplicate] = reply as [unknown, unknown, unknown];
    const isDuplicate = Number(duplicate) === 1;
    if (isDuplicate) this.#counts.duplicates++;
    else this.#counts.appended++;
    return { epoch: text(epoch), offset: Number(offset), duplicate: isDuplicate };
  }

  /**
   * Reads up to `limit` entries after a position.
   *
   * @param topic The topic.
   * @param after `"start"`, `"now"` or a position.
   * @param limit Most entries returned (0 or more).
   * @returns The entries, the epoch, the last offset and any gap.
   * @throws {UsageError} `ERR_CLOSED` after `close()`.
   * @throws {BackplaneError} `ERR_REDIS_UNAVAILABLE`, `ERR_REDIS_TIMEOUT` or `ERR_REDIS_COMMAND` (as rejections).
   */
  async read(topic: string, after: From, limit: number): Promise<LogRead> {
    return (await this.#read(topic, after, limit)).read;
  }

  /** Reads, with each entry's time (Redis ms, as stored): what tells two entries at one offset apart. */
  async #read(topic: string, after: From, limit: number): Promise<{ read: LogRead; times: string[] }> {
    this.#check();
    const k = this.keys(topic);
    const n = Math.max(0, Number.isFinite(limit) ? Math.floor(limit) : 0);
    const mode = typeof after === "string" ? after : "after";
    const reply = await this.#eval(READ, [k.stream, k.meta, k.keys], [
      newEpoch(),
      this.#maxAgeMs,
      this.#ttlMs,
      mode,
      typeof after === "object" ? after.epoch : "",
      typeof after === "object" ? after.offset : 0,
      n,
    ]);
    const [rawEpoch, rawLast, rawOldest, rawGap, runs, rt, rr, rawEntries] = reply as unknown[];
    const epoch = text(rawEpoch);
    const last = Number(rawLast);
    const entries: LogEntry[] = [];
    const times: string[] = [];
    for (const raw of rawEntries as unknown[]) {
      const { entry, t } = entryOf(epoch, raw);
      entries.push(entry);
      times.push(t);
    }
    const gapKind = text(rawGap);
    if (typeof after !== "object" || gapKind === "") return { read: { epoch, entries, last }, times };
    let gap: Gap;
    if (gapKind === "epoch") gap = { reason: "epoch", epoch: after.epoch, from: after.offset + 1 };
    else {
      const from = after.offset + 1;
      gap = { reason: reasonOf(from, text(runs), text(rt), text(rr)), epoch, from, to: Number(rawOldest) - 1 };
    }
    return { read: { epoch, entries, last, gap }, times };
  }

  /**
   * Hands every entry appended to `topic` from now on (by any process) to
   * `listener`, in offset order, once. The first listener of a topic reads
   * the topic's last offset and subscribes to its channel: what is appended
   * after that read is handed on (some of it once `SUBSCRIBE` is answered,
   * read from the stream).
   *
   * @param topic The topic.
   * @param listener Gets each entry; a throw is reported to `onError`.
   * @returns A function that removes the listener (calling it again does nothing).
   * @throws {UsageError} `ERR_CLOSED` after `close()`.
   */
  watch(topic: string, listener: (entry: LogEntry) => void): () => void {
    this.#check();
    const channel = this.keys(topic).channel;
    let w = this.#watched.get(channel);
    if (w === undefined) {
      const sub = this.#side("subscriber");
      w = {
        topic,
        channel,
        listeners: new Set(),
        epoch: undefined,
        last: 0,
        lastT: "",
        retired: [],
        stale: false,
        subscribed: false,
        syncing: false,
        dirty: false,
        held: [],
        overflow: false,
        fails: 0,
        retry: undefined,
        removed: false,
      };
      this.#watched.set(channel, w);
      this.#unwanted.delete(channel);
      // The cursor is read now; once SUBSCRIBE is answered, what came after it is read too.
      void this.#sync(w);
      if (this.#ready(sub)) this.#subscribeAll([w]);
      this.#armTouch();
    }
    const own = (entry: LogEntry) => listener(entry); // the same function may watch twice
    w.listeners.add(own);
    const watched = w;
    return () => {
      if (!watched.listeners.delete(own) || watched.listeners.size > 0 || watched.removed) return;
      watched.removed = true;
      clearTimeout(watched.retry);
      this.#watched.delete(channel);
      const sub = this.#subscriber;
      if (sub === undefined || this.#closing !== undefined) return;
      // Not now: once connected (the client may subscribe again to what it had by itself).
      if (!this.#ready(sub)) this.#unwanted.add(channel);
      else this.#quietly(sub, () => sub.client.unsubscribe(channel));
    };
  }

  /**
   * Releases the log: stops its timers and quits its Redis clients (waiting
   * at most 2 s for each). Further calls throw `ERR_CLOSED`.
   *
   * @returns Resolves once both clients are closed.
   */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    clearTimeout(this.#touchTimer);
    for (const w of this.#watched.values()) {
      w.removed = true;
      clearTimeout(w.retry);
    }
    this.#watched.clear();
    const sides = [this.#commands, this.#subscriber].filter((s): s is Side => s !== undefined);
    for (const side of sides) for (const wake of side.waiting) wake();
    this.#closing = Promise.all(sides.map((side) => quit(side.client))).then(() => {});
    return this.#closing;
  }

  #check(): void {
    if (this.#closing !== undefined) throw new UsageError("ERR_CLOSED", "The topic log is closed");
  }

  // ---- clients ----

  #side(role: "commands" | "subscriber"): Side {
    const existing = role === "commands" ? this.#commands : this.#subscriber;
    if (existing !== undefined) return existing;
    const client = this.#createClient(role);
    if (typeof client?.callBuffer !== "function" || typeof client.on !== "function") {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: createClient must return a Redis client (ioredis), got ${describeValue(client)}`);
    }
    const other = role === "commands" ? this.#subscriber : this.#commands;
    if (other !== undefined && other.client === client) {
      throw new UsageError("ERR_INVALID_OPTION", "Invalid option: createClient must return a new client on every call (commands and subscriber)");
    }
    const side: Side = { role, client, waiting: new Set(), reported: false, probing: false, up: false, everUp: false };
    if (role === "commands") this.#commands = side;
    else this.#subscriber = side;
    client.on("ready", () =>
      this.#guard(() => {
        side.reported = false;
        side.up = side.everUp = true;
        for (const wake of [...side.waiting]) wake();
        if (role === "subscriber") {
          const unwanted = [...this.#unwanted];
          this.#unwanted.clear();
          for (let i = 0; i < unwanted.length; i += SUBSCRIBE_BATCH) {
            const batch = unwanted.slice(i, i + SUBSCRIBE_BATCH);
            this.#quietly(side, () => client.unsubscribe(...batch));
          }
          this.#subscribeAll([...this.#watched.values()]);
        }
      })
    );
    client.on("close", () =>
      this.#guard(() => {
        if (side.up) this.#counts.disconnects++;
        side.up = false;
        if (role === "subscriber") {
          for (const w of this.#watched.values()) {
            w.subscribed = false;
            w.stale = true;
          }
        }
        if (this.#closing === undefined) this.#once(side, "ERR_REDIS_DISCONNECTED", `Redis ${role} connection lost; ${this.#meanwhile(role)}`);
      })
    );
    client.on("end", () =>
      this.#guard(() => {
        for (const wake of [...side.waiting]) wake();
        if (this.#closing === undefined) this.#report(new BackplaneError("ERR_BACKPLANE_ENDED", `Redis ${role} connection ended: the client will not reconnect`));
      })
    );
    client.on("error", (error) =>
      this.#guard(() => {
        if (this.#closing === undefined) this.#once(side, "ERR_REDIS_DISCONNECTED", `Redis ${role} connection failed: ${errorMessage(error)}`, error);
      })
    );
    if (role === "subscriber") client.on("messageBuffer", (channel, message) => this.#guard(() => this.#onMessage(channel, message)));
    if (client.status === "wait" && typeof client.connect === "function") {
      client.connect().then(undefined, () => {}); // failures arrive as `error` events too
    }
    return side;
  }

  #meanwhile(role: "commands" | "subscriber"): string {
    return role === "commands"
      ? "appends and reads fail until it reconnects"
      : "live entries are read from the streams once it reconnects";
  }

  /** Whether commands go straight to the server now. */
  #ready(side: Side): boolean {
    const status = side.client.status;
    return status === undefined || status === "ready";
  }

  /**
   * Runs a script on the commands client: EVALSHA, then EVAL when Redis does
   * not have it (a restart, another node, SCRIPT FLUSH).
   *
   * Scripts run in call order (appends are pipelined: a connection's
   * offsets follow its client's order): every call takes the same steps
   * up to sending, and Redis runs one connection's commands in the order
   * sent. The EVAL of a NOSCRIPT answer is sent after the EVALSHAs that
   * followed it ran, so it cannot overtake them; but a script called after
   * that EVAL loaded the script could overtake an earlier EVALSHA whose
   * NOSCRIPT answer is still on its way. So from a NOSCRIPT answer until
   * every EVALSHA sent before it is answered (and sent again as EVAL), new
   * calls wait, then go in call order.
   */
  async #eval(script: Script, keys: string[], args: (string | Uint8Array | number)[]): Promise<unknown> {
    const side = this.#side("commands");
    const deadline = Date.now() + this.#timeoutMs;
    const sha = await script.sha();
    if (this.#held !== undefined) await new Promise<void>((resolve) => this.#held!.push(resolve));
    this.#scriptsOut++;
    let out = true;
    const answered = (): void => {
      if (!out) return;
      out = false;
      if (--this.#scriptsOut === 0 && this.#held !== undefined) {
        const held = this.#held;
        this.#held = undefined;
        for (const go of held) go();
      }
    };
    try {
      try {
        return await this.#command(side, deadline, () => side.client.callBuffer("EVALSHA", sha, keys.length, ...keys, ...args));
      } catch (error) {
        if (!/NOSCRIPT/.test(errorMessage(error))) throw error;
        this.#held ??= [];
        const again = this.#command(side, deadline, () => side.client.callBuffer("EVAL", script.source, keys.length, ...keys, ...args));
        answered(); // sent (or refused at once): what is called next may go
        return await again;
      }
    } catch (error) {
      this.#counts.failed++;
      throw error;
    } finally {
      answered();
    }
  }

  /**
   * Sends a command once the client is ready, and rejects if that and its
   * answer take past `deadline` (then, unless `probe` is false, checks that
   * the connection is alive).
   */
  async #command(side: Side, deadline: number, run: () => Promise<unknown>, probe = true): Promise<unknown> {
    if (!this.#ready(side)) {
      // Lost: fail at once (the client retries); never connected yet: wait for the first connection.
      if (side.everUp) {
        throw new BackplaneError("ERR_REDIS_UNAVAILABLE", `Redis unreachable (${side.role} connection ${side.client.status ?? "down"})`);
      }
      await this.#whenReady(side, deadline);
    }
    this.#check();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new BackplaneError("ERR_REDIS_TIMEOUT", `Redis did not answer within ${this.#timeoutMs} ms; the command may still run`));
        if (probe) this.#probe(side);
      }, Math.max(0, deadline - Date.now()));
    });
    let sent: Promise<unknown>;
    try {
      sent = run();
    } catch (error) {
      clearTimeout(timer);
      throw new BackplaneError("ERR_REDIS_COMMAND", `Redis command failed: ${errorMessage(error)}`, error);
    }
    sent.then(undefined, () => {}); // answered after the timeout: nobody waits for it
    try {
      return await Promise.race([sent, timeout]);
    } catch (error) {
      if (error instanceof BackplaneError) throw error;
      throw new BackplaneError("ERR_REDIS_COMMAND", `Redis command failed: ${errorMessage(error)}`, error);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for the client's `ready`, until `deadline`. */
  #whenReady(side: Side, deadline: number): Promise<void> {
    if (side.client.status === "end") {
      return Promise.reject(new BackplaneError("ERR_REDIS_UNAVAILABLE", `Redis ${side.role} connection ended: the client will not reconnect`));
    }
    return new Promise<void>((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        side.waiting.delete(wake);
        if (this.#ready(side)) resolve();
        else reject(new BackplaneError("ERR_REDIS_UNAVAILABLE", `Redis unreachable (${side.role} connection ${side.client.status ?? "down"})`));
      };
      const timer = setTimeout(() => {
        side.waiting.delete(wake);
        reject(new BackplaneError("ERR_REDIS_UNAVAILABLE", `Redis unreachable for ${this.#timeoutMs} ms (${side.role} connection ${side.client.status ?? "down"})`));
      }, Math.max(0, deadline - Date.now()));
      side.waiting.add(wake);
    });
  }

  // ---- live entries ----

  /** Subscribes to the channels of watched topics (batched); each catches up once its SUBSCRIBE is answered. */
  #subscribeAll(list: Watched[]): void {
    const sub = this.#subscriber;
    if (sub === undefined || this.#closing !== undefined) return;
    for (let i = 0; i < list.length; i += SUBSCRIBE_BATCH) {
      const batch = list.slice(i, i + SUBSCRIBE_BATCH);
      this.#quietly(sub, () => sub.client.subscribe(...batch.map((w) => w.channel)), () => {
        for (const w of batch) {
          if (w.removed) continue;
          w.subscribed = true;
          w.dirty = true;
          void this.#sync(w);
        }
      });
    }
  }

  /** Runs a subscriber command; a failure is reported (the next `ready` tries again). */
  #quietly(side: Side, run: () => Promise<unknown>, then?: () => void): void {
    const failed = (error: unknown) => {
      if (this.#closing === undefined) this.#once(side, "ERR_REDIS_COMMAND", `Redis ${side.role} command failed: ${errorMessage(error)}`, error);
    };
    try {
      run().then(() => this.#guard(() => then?.()), failed);
    } catch (error) {
      failed(error);
    }
  }

  #onMessage(rawChannel: Uint8Array, message: Uint8Array): void {
    if (this.#closing !== undefined) return;
    const w = this.#watched.get(decoder.decode(rawChannel));
    if (w === undefined) return;
    const stamped = parseMessage(message);
    if (stamped === undefined) {
      return this.#report(new BackplaneError("ERR_BACKPLANE_MESSAGE", `A message on Redis channel ${JSON.stringify(w.channel)} is not a log entry; skipped`));
    }
    if (w.syncing || w.stale || w.epoch === undefined) return this.#hold(w, stamped);
    if (this.#offer(w, stamped)) return;
    this.#hold(w, stamped); // a hole: the stream has what is missing
    void this.#sync(w);
  }

  /**
   * Hands a live entry on if it is the next one; skips it if handed on
   * already (or of an epoch left behind). `false`: entries are missing
   * before it (a hole, or a new epoch not from its start): read the stream.
   */
  #offer(w: Watched, stamped: Stamped): boolean {
    const entry = stamped.entry;
    if (entry.epoch !== w.epoch) {
      if (w.retired.includes(entry.epoch)) return true;
      this.#newEpoch(w, entry.epoch);
    }
    if (entry.offset <= w.last) return true;
    if (entry.offset !== w.last + 1) return false;
    this.#counts.live++;
    this.#hand(w, stamped);
    return true;
  }

  /** The topic's history is a new one: the cursor starts before its first entry. */
  #newEpoch(w: Watched, epoch: string): void {
    if (w.epoch !== undefined) {
      w.retired.push(w.epoch);
      if (w.retired.length > 8) w.retired.shift();
    }
    w.epoch = epoch;
    w.last = 0;
    w.lastT = "";
  }

  #hold(w: Watched, stamped: Stamped): void {
    if (w.overflow) return;
    w.held.push(stamped);
    if (w.held.length > MAX_HELD) {
      w.held = [];
      w.overflow = true;
    }
  }

  /** Hands an entry (of the cursor's epoch) to the listeners and moves the cursor. */
  #hand(w: Watched, { entry, t }: Stamped): void {
    w.last = entry.offset;
    w.lastT = t;
    for (const listener of [...w.listeners]) {
      try {
        listener(entry);
      } catch (error) {
        this.#report(error);
      }
    }
  }

  /**
   * Catches a watch up from the stream: from its cursor (or, the first
   * time, from the last offset now), reading until it has everything, then
   * hands on what was held meanwhile; again while holes are seen. On a
   * failure, tries again after a backoff.
   */
  async #sync(w: Watched): Promise<void> {
    if (w.syncing) {
      w.dirty = true;
      return;
    }
    if (w.removed || this.#closing !== undefined) return;
    w.syncing = true;
    clearTimeout(w.retry);
    w.retry = undefined;
    try {
      do {
        w.dirty = false;
        w.overflow = false;
        if (w.epoch === undefined) {
          const now = await this.read(w.topic, "now", 0);
          if (w.removed) return;
          w.epoch = now.epoch;
          w.last = now.last;
        }
        let resets = 0;
        for (;;) {
          // From the entry at the cursor when its time is known: it must still be the one handed on.
          const check = w.lastT !== "" && w.last > 0;
          const { read, times } = await this.#read(w.topic, { epoch: w.epoch!, offset: check ? w.last - 1 : w.last }, CATCH_UP_BATCH);
          if (w.removed) return;
          if (read.epoch === w.epoch) {
            const first = read.entries[0];
            const lost = w.last > read.last
              ? `Redis holds offsets up to ${read.last}, but ${w.last} were handed on`
              : check && first?.offset === w.last && times[0] !== w.lastT
              ? `another entry took offset ${w.last}, handed on before`
              : undefined;
            if (lost !== undefined) {
              if (++resets > 3) throw new BackplaneError("ERR_REDIS_REWOUND", `Topic ${JSON.stringify(w.topic)}: ${lost}, and it could not be reset`);
              await this.#rewound(w, lost);
              continue;
            }
          } else {
            this.#newEpoch(w, read.epoch);
          }
          w.stale = false;
          for (const [i, entry] of read.entries.entries()) {
            if (entry.offset <= w.last) continue;
            this.#counts.caughtUp++;
            this.#hand(w, { entry, t: times[i]! });
          }
          if (w.removed) return;
          if (read.entries.length === 0 || w.last >= read.last) break;
        }
        // What arrived meanwhile, in order; a hole means another round.
        const held = w.held;
        w.held = [];
        for (const stamped of held) {
          if (!this.#offer(w, stamped)) {
            w.dirty = true; // the rest is read from the stream in the next round
            break;
          }
        }
        if (w.overflow) w.dirty = true;
      } while (w.dirty && !w.removed && this.#closing === undefined);
      w.fails = 0;
    } catch (error) {
      if (w.removed || this.#closing !== undefined) return;
      w.dirty = true;
      const side = this.#commands;
      if (w.fails === 0 && side !== undefined) {
        this.#once(side, "ERR_REDIS_CATCH_UP", `Catching up topic ${JSON.stringify(w.topic)} from Redis failed, trying again: ${errorMessage(error)}`, error);
      }
      const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(10, w.fails++));
      w.retry = setTimeout(() => void this.#sync(w), delay);
    } finally {
      w.syncing = false;
    }
  }

  /**
   * The stream no longer holds the entry at the cursor, in the same epoch:
   * it ends before, or another entry took its offset. Redis lost acked
   * entries (it restarted from an older copy of its data: snapshots only, a
   * lost append-only file) and hands out their offsets again, for other
   * messages. That history is broken: its keys are deleted (if still the
   * same), so the next use starts a new epoch, and every subscriber is told
   * of the gap rather than skipping silently.
   */
  async #rewound(w: Watched, lost: string): Promise<void> {
    const k = this.keys(w.topic);
    await this.#eval(RESET, [k.stream, k.meta, k.keys], [w.epoch!, w.last, w.lastT]);
    this.#counts.rewound++;
    this.#report(
      new BackplaneError(
        "ERR_REDIS_REWOUND",
        `Topic ${JSON.stringify(w.topic)}, epoch ${w.epoch}: ${lost}; Redis lost acked entries (run it with appendonly yes): ` +
          "the topic starts a new epoch",
      ),
    );
  }

  /**
   * While topics are watched, a timer: every `5 × commandTimeoutMs` (10 s by
   * default) the subscriber connection is pinged, and reconnected if it does
   * not answer in time (a connection dead without a word: a partition, a NAT
   * that forgot it; TCP would notice after minutes); every min(maxAgeMs / 2,
   * 60 s) each watched topic catches up (a safety net) and keeps its keys
   * alive.
   */
  #armTouch(): void {
    if (this.#touchTimer !== undefined || this.#closing !== undefined) return;
    const every = Math.min(this.#timeoutMs * 5, this.#touchMs);
    this.#touchTimer = setTimeout(() => {
      this.#touchTimer = undefined;
      if (this.#watched.size === 0 || this.#closing !== undefined) return;
      this.#probe(this.#subscriber);
      const now = Date.now();
      if (now - this.#lastTouch >= this.#touchMs) {
        this.#lastTouch = now;
        for (const w of this.#watched.values()) if (w.subscribed && !w.syncing && w.retry === undefined) void this.#sync(w);
      }
      this.#armTouch();
    }, every);
    unref(this.#touchTimer);
  }

  /**
   * Pings a connection (the subscriber now and then, the commands one after
   * a command timed out) and reconnects it when the ping times out too: a
   * connection that went silent is replaced in seconds.
   */
  #probe(side: Side | undefined): void {
    if (side === undefined || side.probing || this.#closing !== undefined || !this.#ready(side)) return;
    side.probing = true;
    const client = side.client;
    this.#command(side, Date.now() + this.#timeoutMs, () => client.callBuffer("ping"), false).then(
      () => void (side.probing = false),
      (error) => {
        side.probing = false;
        if (this.#closing !== undefined || !this.#ready(side) || (error as { code?: unknown }).code !== "ERR_REDIS_TIMEOUT") return;
        this.#report(new BackplaneError("ERR_REDIS_DISCONNECTED", `Redis ${side.role} connection unresponsive, reconnecting: ${errorMessage(error)}`, error));
        (client as { disconnect(reconnect?: boolean): void }).disconnect(true);
      },
    );
  }

  // ---- errors ----

  /** Reports once per outage of a side. */
  #once(side: Side, code: string, message: string, cause?: unknown): void {
    if (side.reported) return;
    side.reported = true;
    this.#report(new BackplaneError(code, message, cause));
  }

  #report(error: unknown): void {
    try {
      this.#onError(error);
    } catch (secondary) {
      console.error("duplex: redis log: onError threw:", secondary, "while handling:", error);
    }
  }

  /** Runs an event handler: nothing it throws escapes into the client. */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#report(error);
    }
  }
}

/** An entry from an `XRANGE` reply (`[id, [field, value, …]]`), and its time. */
function entryOf(epoch: string, raw: unknown): Stamped {
  const [id, fields] = raw as [unknown, unknown[]];
  let data: Uint8Array | undefined;
  let binary = false;
  let t = "";
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = text(fields[i]);
    if (name === "d") data = fields[i + 1] as Uint8Array;
    else if (name === "b") binary = text(fields[i + 1]) === "1";
    else if (name === "t") t = text(fields[i + 1]);
  }
  const offset = parseInt(text(id), 10);
  const bytes = data instanceof Uint8Array ? data : encoder.encode(text(data ?? ""));
  // Bytes are copied out of the client's buffer (a plain Uint8Array, not a Buffer).
  return { entry: { epoch, offset, data: binary ? new Uint8Array(bytes) : decoder.decode(bytes) }, t };
}

/** A Pub/Sub message: `epoch \n offset \n binary \n time \n data`. */
function parseMessage(message: Uint8Array): Stamped | undefined {
  const ends: number[] = [];
  for (let i = 0, at = -1; i < 4; i++) {
    at = message.indexOf(10, at + 1);
    if (at < 0) return undefined;
    ends.push(at);
  }
  const [a, b, c, d] = ends as [number, number, number, number];
  const epoch = decoder.decode(message.subarray(0, a));
  const offset = Number(decoder.decode(message.subarray(a + 1, b)));
  const binary = c === b + 2 && message[b + 1] === 49; // "1"
  const t = decoder.decode(message.subarray(c + 1, d));
  if (epoch === "" || !Number.isSafeInteger(offset) || offset < 1) return undefined;
  const payload = message.subarray(d + 1);
  return { entry: { epoch, offset, data: binary ? new Uint8Array(payload) : decoder.decode(payload) }, t };
}

/** Why offset `from` (dropped) is gone: the runs recorded by the scripts, oldest first. */
function reasonOf(from: number, runs: string, lastThrough: string, lastReason: string): GapReason {
  for (const run of runs.split(",")) {
    const [through, reason] = run.split(":");
    if (through !== undefined && reason !== undefined && from <= Number(through) && (reason === "trimmed" || reason === "expired")) return reason;
  }
  return lastThrough !== "" && lastReason === "expired" ? "expired" : "trimmed";
}

function unref(timer: unknown): void {
  (timer as { unref?: () => void } | undefined)?.unref?.();
}
