/**
 * Duplex on Redis: a {@linkcode Backplane} over Redis Pub/Sub (apps in
 * several processes, or on several machines, on any runtime, share their
 * topics through one Redis server; at most once), and
 * {@linkcode RedisTopicLog}, recoverable topics on Redis Streams for the
 * reliable layer (exactly once to the app within the history, across
 * process and Redis restarts). Duplex has no runtime dependency: you bring
 * the Redis client (ioredis is the one tested) and Duplex drives it through
 * the few methods {@linkcode RedisClient} and {@linkcode RedisLogClient} name.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { App } from "@duplex/ws";
 * import { RedisBackplane } from "@duplex/ws/redis";
 *
 * const app = new App({
 *   backplane: new RedisBackplane({ createClient: () => new Redis("redis://127.0.0.1:6379") }),
 * });
 * ```
 *
 * @module
 */

import { forClient, quit } from "./_redis.ts";
import { describeValue } from "./_check.ts";
import { UsageError } from "../core/errors.ts";
import type { Backplane, BackplaneLink } from "./pubsub.ts";

export { type RedisLogClient, RedisTopicLog, type RedisTopicLogOptions, type RedisTopicLogStats } from "./redis_log.ts";

/**
 * The part of a Redis client that {@linkcode RedisBackplane} uses, typed
 * structurally so that Duplex imports no Redis package. An
 * [ioredis](https://github.com/redis/ioredis) `Redis` instance (5.x or 6.x)
 * fits as it is; that is the client the backplane is tested with, on Node,
 * Deno and Bun.
 *
 * What the backplane expects of it:
 *
 * - `status` is `"ready"` when commands go straight to the server (ioredis's
 *   states). The backplane hands it commands only then, so the client's own
 *   offline queue stays empty (at most the messages of the instant between a
 *   connection's loss and its notice). A client created with `lazyConnect:
 *   true` is connected by the backplane (`status` `"wait"`).
 * - It reconnects by itself (ioredis's `retryStrategy`; the default does)
 *   and emits `ready` once usable, `close` when a connection is lost, `end`
 *   when it gives up, `error` for every failure.
 * - A subscribed client emits `messageBuffer` with the channel and the
 *   message as bytes (ioredis's Buffer mode), so binary messages survive.
 * - `publish` accepts bytes. ioredis sends a Node `Buffer` as bytes but any
 *   other object as its `String()`, so the backplane hands it `Buffer`s, made
 *   without a copy with the global `Buffer` that Node, Deno and Bun all have
 *   (a plain `Uint8Array` where there is no global `Buffer`).
 *
 * Nothing else is required: ioredis's defaults (`autoResubscribe`,
 * `enableOfflineQueue`, RESP3 or RESP2) all work, since the backplane
 * resubscribes and queues by itself. For at-most-once delivery even across
 * a dropped connection, pass `autoResendUnfulfilledCommands: false`: ioredis
 * otherwise sends again the PUBLISHes that were written but not yet answered
 * when the connection dropped, which Redis may have delivered already.
 *
 * @example An ioredis client
 * ```ts
 * import { Redis } from "ioredis";
 * import type { RedisClient } from "@duplex/ws/redis";
 *
 * const client: RedisClient = new Redis("redis://127.0.0.1:6379", { autoResendUnfulfilledCommands: false });
 * ```
 */
export interface RedisClient {
  /** The connection's state; `"ready"` when commands go straight to the server, `"wait"` before a lazy client's first connect. */
  readonly status?: string;
  /** Sends `PUBLISH channel message`; `message` is a Node `Buffer` where there is one. */
  publish(channel: string, message: string | Uint8Array): Promise<unknown>;
  /** Sends `SUBSCRIBE` for the channels. */
  subscribe(...channels: string[]): Promise<unknown>;
  /** Sends `UNSUBSCRIBE` for the channels. */
  unsubscribe(...channels: string[]): Promise<unknown>;
  /** A message on a subscribed channel, both as bytes. */
  on(event: "messageBuffer", listener: (channel: Uint8Array, message: Uint8Array) => void): unknown;
  /** The connection is usable (`ready`), was lost (`close`), or will not be made again (`end`). */
  on(event: "ready" | "close" | "end", listener: () => void): unknown;
  /** A failure: a refused connection, a lost one, a command's. */
  on(event: "error", listener: (error: Error) => void): unknown;
  /** Connects a client created with `lazyConnect: true`. */
  connect?(): Promise<unknown>;
  /** Sends `QUIT` and closes once answered. */
  quit(): Promise<unknown>;
  /** Closes at once, without reconnecting. */
  disconnect(): void;
}

/**
 * Options of a {@linkcode RedisBackplane}.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import type { RedisBackplaneOptions } from "@duplex/ws/redis";
 *
 * const options: RedisBackplaneOptions = {
 *   createClient: (role) => new Redis("redis://127.0.0.1:6379", { connectionName: `duplex-${role}` }),
 *   prefix: "chat:",
 *   maxQueuedMessages: 1000,
 * };
 * ```
 */
export interface RedisBackplaneOptions {
  /**
   * Creates one Redis client. Called twice per app (per link): once for the
   * `"publisher"`, once for the `"subscriber"` (a subscribed Redis
   * connection cannot publish). The backplane owns the clients: it quits
   * them when the app's backplane is closed. See {@linkcode RedisClient}.
   */
  createClient: (role: "publisher" | "subscriber") => RedisClient;
  /**
   * Put before every topic to make the Redis channel's name, so that apps
   * sharing a Redis server keep apart. Default `"duplex:"`.
   */
  prefix?: string;
  /**
   * How many messages published while the publisher is disconnected are kept,
   * to be sent in order once it reconnects; those beyond are dropped. `0`
   * keeps none. Default 10,000.
   */
  maxQueuedMessages?: number;
  /**
   * How many bytes (encoded, headers included) of such messages are kept at
   * most. Default 8 MiB.
   */
  maxQueuedBytes?: number;
}

/**
 * Counts of a {@linkcode RedisBackplane}, over all its links since it was
 * created.
 *
 * @example
 * ```ts
 * import { RedisBackplane, type RedisBackplaneStats } from "@duplex/ws/redis";
 *
 * declare const backplane: RedisBackplane;
 * const stats: RedisBackplaneStats = backplane.stats;
 * if (stats.dropped > 0) console.warn(`${stats.dropped} messages never reached Redis`);
 * ```
 */
export interface RedisBackplaneStats {
  /** Messages handed to a publisher client (`PUBLISH` sent, or about to be). */
  published: number;
  /** Messages from other links delivered to their app. */
  received: number;
  /** Own messages that came back from Redis and were skipped (never delivered twice). */
  echoes: number;
  /** Messages waiting now for a publisher to reconnect. */
  queued: number;
  /** Bytes of the messages waiting now. */
  queuedBytes: number;
  /** Messages dropped: published while disconnected beyond the bound, or still queued when closed. */
  dropped: number;
  /** `PUBLISH` commands the client rejected (the message may be lost). */
  failed: number;
  /** Messages on one of our channels in no format the backplane knows; skipped. */
  invalid: number;
  /** Connections lost (a publisher's or a subscriber's). */
  disconnects: number;
}

/**
 * A failure of the backplane, handed to the app's `onBackplaneError`. Local
 * delivery is never affected.
 *
 * Codes:
 * - `ERR_BACKPLANE_DISCONNECTED`: a Redis connection was lost or could not
 *   be made; reported once per outage and client. Publishes are queued
 *   meanwhile, subscriptions restored on reconnect.
 * - `ERR_BACKPLANE_ENDED`: a client gave up reconnecting (its retry strategy
 *   said so); the link stays down.
 * - `ERR_BACKPLANE_QUEUE_FULL`: publishes are being dropped, the queue being
 *   full; reported once per outage (`stats.dropped` counts them).
 * - `ERR_BACKPLANE_PUBLISH`, `ERR_BACKPLANE_SUBSCRIBE`: a command failed
 *   while connected; reported once per outage and client.
 * - `ERR_BACKPLANE_MESSAGE`: a message on one of our channels in no known
 *   format (another program publishing there); reported once per link,
 *   then counted in `stats.invalid`.
 *
 * A {@linkcode RedisTopicLog} uses it too: its appends and reads reject with
 * `ERR_REDIS_UNAVAILABLE` (no ready connection within `commandTimeoutMs`),
 * `ERR_REDIS_TIMEOUT` (no answer in time; the command may still run) or
 * `ERR_REDIS_COMMAND` (Redis answered an error), and its `onError` gets
 * `ERR_REDIS_DISCONNECTED` (once per outage and connection),
 * `ERR_REDIS_CATCH_UP` (a watch could not read the stream; it tries again),
 * `ERR_REDIS_REWOUND` (Redis lost acked entries: the topic starts a new
 * epoch), `ERR_BACKPLANE_ENDED` and `ERR_BACKPLANE_MESSAGE`.
 *
 * @example
 * ```ts
 * import { App } from "@duplex/ws";
 * import { BackplaneError } from "@duplex/ws/redis";
 *
 * const app = new App({
 *   onBackplaneError(error) {
 *     if (error instanceof BackplaneError && error.code === "ERR_BACKPLANE_QUEUE_FULL") console.warn(error.message);
 *   },
 * });
 * ```
 */
export class BackplaneError extends Error {
  /** Stable identifier, such as `"ERR_BACKPLANE_DISCONNECTED"`. */
  readonly code: string;

  /**
   * Creates the error.
   *
   * @param code Stable identifier.
   * @param message What happened and what it means for delivery.
   * @param cause The client's error, if any.
   */
  constructor(code: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "BackplaneError";
    this.code = code;
  }
}

/**
 * Pub/sub across processes through Redis Pub/Sub. Each app connected to it
 * (each `new App({ backplane })`) gets a link with two clients from
 * `createClient`, a publisher and a subscriber.
 *
 * **Channels and messages.** A topic travels on the Redis channel `prefix +
 * topic`. A message is binary: one byte of kind (1 text, 2 binary), one byte
 * giving the length of the origin id, the origin id (16 hex characters,
 * random per link), then the payload (text as UTF-8). A link skips the
 * messages carrying its own origin id: its app delivered them locally
 * already. Only topics with a local subscriber are subscribed on Redis.
 *
 * **Order.** One link's messages go through one connection, in the order
 * they were published, so subscribers elsewhere receive one publisher's
 * messages to a topic in that order.
 *
 * **When Redis is unreachable.** Local delivery goes on. Messages published
 * meanwhile are queued, up to `maxQueuedMessages` (10,000) and
 * `maxQueuedBytes` (8 MiB), and sent in order once the publisher is ready
 * again, before anything published later; those beyond the bound are
 * dropped and counted in `stats.dropped`, and the first drop of each outage
 * is reported (`ERR_BACKPLANE_QUEUE_FULL`). The loss of a connection is
 * reported once per outage (`ERR_BACKPLANE_DISCONNECTED`). On reconnect the
 * subscriber subscribes again to every topic in use. Redis Pub/Sub keeps
 * nothing: what other processes published while a subscriber was
 * disconnected is lost for it, and a queue flushed before another process's
 * subscriber is back is lost for that process. Delivery is at most once.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { App, serve } from "@duplex/ws";
 * import { RedisBackplane } from "@duplex/ws/redis";
 *
 * const backplane = new RedisBackplane({ createClient: () => new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379") });
 * const app = new App({ backplane }).use({
 *   open(ctx) {
 *     ctx.subscribe("news");
 *   },
 *   message(ctx) {
 *     ctx.publish("news", ctx.data, { self: true }); // to every process's subscribers
 *   },
 * });
 * const server = await serve(app, { port: 8080 });
 * // on shutdown
 * await server.close();
 * await app.closeBackplane();
 * ```
 */
export class RedisBackplane implements Backplane {
  readonly #options: Required<RedisBackplaneOptions>;
  readonly #counts: Omit<RedisBackplaneStats, "queued" | "queuedBytes"> = {
    published: 0,
    received: 0,
    echoes: 0,
    dropped: 0,
    failed: 0,
    invalid: 0,
    disconnects: 0,
  };
  readonly #links = new Set<RedisLink>();

  /**
   * Creates the backplane; no client is created before an app connects.
   *
   * @param options The client factory, the channel prefix and the queue's bounds.
   * @throws {UsageError} `ERR_INVALID_OPTION` for a bad option.
   */
  constructor(options: RedisBackplaneOptions) {
    if (typeof options?.createClient !== "function") {
      throw new UsageError("ERR_INVALID_OPTION", "Invalid option: createClient must be a function that returns a Redis client");
    }
    const prefix = options.prefix ?? "duplex:";
    if (typeof prefix !== "string") throw new UsageError("ERR_INVALID_OPTION", `Invalid option: prefix must be a string, got ${describeValue(prefix)}`);
    this.#options = {
      createClient: options.createClient,
      prefix,
      maxQueuedMessages: bound("maxQueuedMessages", options.maxQueuedMessages, 10_000),
      maxQueuedBytes: bound("maxQueuedBytes", options.maxQueuedBytes, 8 * 1024 * 1024),
    };
  }

  /** Counts over all links since the backplane was created; `queued` and `queuedBytes` are now. */
  get stats(): Readonly<RedisBackplaneStats> {
    let queued = 0;
    let queuedBytes = 0;
    for (const link of this.#links) {
      queued += link.queued;
      queuedBytes += link.queuedBytes;
    }
    return { ...this.#counts, queued, queuedBytes };
  }

  /**
   * Connects one hub: creates its publisher and subscriber clients. Apps
   * call it; an application does not.
   *
   * @param deliver Hands the hub a message published by another link.
   * @param report Hands the hub a {@linkcode BackplaneError}.
   * @returns The hub's link.
   */
  connect(deliver: (topic: string, data: string | Uint8Array) => void, report: (error: unknown) => void): BackplaneLink {
    const link = new RedisLink(this.#options, this.#counts, deliver, report, (self) => this.#links.delete(self));
    this.#links.add(link);
    return link;
  }
}

function bound(name: string, value: number | undefined, fallback: number): number {
  const n = value ?? fallback;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: ${name} must be a non-negative integer, got ${describeValue(n)}`);
  }
  return n;
}

const KIND_TEXT = 1;
const KIND_BINARY = 2;
const SUBSCRIBE_BATCH = 512;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function originId(): Uint8Array {
  const random = crypto.getRandomValues(new Uint8Array(8));
  let hex = "";
  for (const byte of random) hex += byte.toString(16).padStart(2, "0");
  return encoder.encode(hex);
}

/** One side of a link: a client and what the link knows of its connection. */
interface Side {
  readonly role: "publisher" | "subscriber";
  readonly client: RedisClient;
  /** `ready` seen since the last `close`. */
  up: boolean;
  /** This outage was reported already. */
  reported: boolean;
}

/** One hub's link: a publisher, a subscriber, the topics in use and the queue. */
class RedisLink implements BackplaneLink {
  readonly #options: Required<RedisBackplaneOptions>;
  readonly #counts: Omit<RedisBackplaneStats, "queued" | "queuedBytes">;
  readonly #deliver: (topic: string, data: string | Uint8Array) => void;
  readonly #report: (error: unknown) => void;
  readonly #forget: (link: RedisLink) => void;
  readonly #origin = originId();
  readonly #pub: Side;
  readonly #sub: Side;
  /** Topics with a local subscriber. */
  readonly #topics = new Set<string>();
  /** Topics subscribed on Redis (or about to be), as far as the link knows. */
  readonly #onRedis = new Set<string>();
  #queue: { channel: string; bytes: Uint8Array }[] = [];
  #queuedBytes = 0;
  /** A drop was reported in this outage. */
  #dropReported = false;
  #invalidReported = false;
  #closing: Promise<void> | undefined;

  constructor(
    options: Required<RedisBackplaneOptions>,
    counts: Omit<RedisBackplaneStats, "queued" | "queuedBytes">,
    deliver: (topic: string, data: string | Uint8Array) => void,
    report: (error: unknown) => void,
    forget: (link: RedisLink) => void,
  ) {
    this.#options = options;
    this.#counts = counts;
    this.#deliver = deliver;
    this.#report = report;
    this.#forget = forget;
    this.#pub = this.#side("publisher", options.createClient("publisher"));
    let subscriber: RedisClient;
    try {
      subscriber = options.createClient("subscriber");
    } catch (error) {
      this.#pub.client.disconnect();
      throw error;
    }
    if (subscriber === this.#pub.client) {
      throw new UsageError("ERR_INVALID_OPTION", "Invalid option: createClient must return a new client on every call (a publisher and a subscriber)");
    }
    this.#sub = this.#side("subscriber", subscriber);
    subscriber.on("messageBuffer", (channel, message) => this.#onMessage(channel, message));
    this.#pub.client.on("ready", () => this.#guard(() => this.#flush()));
    subscriber.on("ready", () => this.#guard(() => this.#resubscribe()));
    for (const side of [this.#pub, this.#sub]) {
      if (side.client.status === "wait" && typeof side.client.connect === "function") {
        side.client.connect().then(undefined, () => {}); // failures arrive as `error` events too
      }
    }
  }

  get queued(): number {
    return this.#queue.length;
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  publish(topic: string, data: string | Uint8Array): void {
    if (this.#closing !== undefined) return;
    const channel = this.#options.prefix + topic;
    const bytes = this.#encode(data);
    if (this.#queue.length === 0 && this.#writable(this.#pub)) return this.#send(channel, bytes);
    const max = this.#options;
    if (this.#queue.length >= max.maxQueuedMessages || this.#queuedBytes + bytes.length > max.maxQueuedBytes) {
      this.#counts.dropped++;
      if (!this.#dropReported) {
        this.#dropReported = true;
        this.#report(
          new BackplaneError(
            "ERR_BACKPLANE_QUEUE_FULL",
            `Redis publisher unreachable and its queue full (${this.#queue.length} messages, ${this.#queuedBytes} bytes; ` +
              `bounds ${max.maxQueuedMessages} messages, ${max.maxQueuedBytes} bytes): dropping what is published until it reconnects`,
          ),
        );
      }
      return;
    }
    this.#queue.push({ channel, bytes });
    this.#queuedBytes += bytes.length;
  }

  subscribe(topic: string): void {
    if (this.#closing !== undefined || this.#topics.has(topic)) return;
    this.#topics.add(topic);
    if (!this.#writable(this.#sub) || this.#onRedis.has(topic)) return;
    this.#onRedis.add(topic);
    this.#command(this.#sub, "ERR_BACKPLANE_SUBSCRIBE", () => this.#sub.client.subscribe(this.#options.prefix + topic));
  }

  unsubscribe(topic: string): void {
    if (this.#closing !== undefined || !this.#topics.delete(topic)) return;
    if (!this.#writable(this.#sub) || !this.#onRedis.delete(topic)) return;
    this.#command(this.#sub, "ERR_BACKPLANE_SUBSCRIBE", () => this.#sub.client.unsubscribe(this.#options.prefix + topic));
  }

  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#counts.dropped += this.#queue.length;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#topics.clear();
    this.#forget(this);
    this.#closing = Promise.all([quit(this.#pub.client), quit(this.#sub.client)]).then(() => {});
    return this.#closing;
  }

  #side(role: "publisher" | "subscriber", client: RedisClient): Side {
    const side: Side = { role, client, up: client.status === undefined || client.status === "ready", reported: false };
    client.on("ready", () => {
      side.up = true;
      side.reported = false;
      if (role === "publisher") this.#dropReported = false;
    });
    client.on("close", () =>
      this.#guard(() => {
        if (!side.up) return;
        side.up = false;
        this.#counts.disconnects++;
        if (this.#closing === undefined) {
          this.#once(side, "ERR_BACKPLANE_DISCONNECTED", `Redis ${role} connection lost; ${this.#meanwhile(role)} until it reconnects`);
        }
      })
    );
    client.on("end", () =>
      this.#guard(() => {
        side.up = false;
        if (this.#closing !== undefined) return;
        this.#report(new BackplaneError("ERR_BACKPLANE_ENDED", `Redis ${role} connection ended: the client will not reconnect`));
      })
    );
    client.on("error", (error) =>
      this.#guard(() => {
        if (this.#closing !== undefined) return;
        const what = side.up ? `Redis ${role} connection failed` : `Redis ${role} unreachable; ${this.#meanwhile(role)} until it connects`;
        this.#once(side, "ERR_BACKPLANE_DISCONNECTED", `${what}: ${errorMessage(error)}`, error);
      })
    );
    return side;
  }

  #meanwhile(role: "publisher" | "subscriber"): string {
    return role === "publisher"
      ? `messages published here are queued (up to ${this.#options.maxQueuedMessages} messages, ${this.#options.maxQueuedBytes} bytes)`
      : "messages published elsewhere do not arrive";
  }

  /** Reports once per outage of a side. */
  #once(side: Side, code: string, message: string, cause?: unknown): void {
    if (side.reported) return;
    side.reported = true;
    this.#report(new BackplaneError(code, message, cause));
  }

  #writable(side: Side): boolean {
    return side.up && (side.client.status === undefined || side.client.status === "ready");
  }

  #encode(data: string | Uint8Array): Uint8Array {
    const origin = this.#origin;
    const payload = typeof data === "string" ? encoder.encode(data) : data;
    const bytes = new Uint8Array(2 + origin.length + payload.length);
    bytes[0] = typeof data === "string" ? KIND_TEXT : KIND_BINARY;
    bytes[1] = origin.length;
    bytes.set(origin, 2);
    bytes.set(payload, 2 + origin.length);
    return bytes;
  }

  #send(channel: string, bytes: Uint8Array): void {
    this.#counts.published++;
    let sent;
    try {
      sent = this.#pub.client.publish(channel, forClient(bytes));
    } catch (error) {
      return this.#publishFailed(error);
    }
    sent.then(undefined, (error) => this.#publishFailed(error));
  }

  #publishFailed(error: unknown): void {
    this.#counts.failed++;
    if (this.#closing !== undefined) return;
    this.#once(this.#pub, "ERR_BACKPLANE_PUBLISH", `Redis PUBLISH failed, a message may be lost: ${errorMessage(error)}`, error);
  }

  /** The publisher is ready: send what was queued, in order. */
  #flush(): void {
    if (this.#closing !== undefined || !this.#writable(this.#pub)) return;
    const queue = this.#queue;
    this.#queue = [];
    this.#queuedBytes = 0;
    for (const { channel, bytes } of queue) this.#send(channel, bytes);
  }

  /** The subscriber is ready (again): subscribe to every topic in use, unsubscribe from those dropped meanwhile. */
  #resubscribe(): void {
    if (this.#closing !== undefined || !this.#writable(this.#sub)) return;
    const prefix = this.#options.prefix;
    const stale = [...this.#onRedis].filter((topic) => !this.#topics.has(topic)).map((topic) => prefix + topic);
    const wanted = [...this.#topics].map((topic) => prefix + topic);
    this.#onRedis.clear();
    for (const topic of this.#topics) this.#onRedis.add(topic);
    const sub = this.#sub.client;
    this.#batched(wanted, (batch) => sub.subscribe(...batch));
    this.#batched(stale, (batch) => sub.unsubscribe(...batch));
  }

  /** Runs a subscriber command over `channels`, SUBSCRIBE_BATCH at a time. */
  #batched(channels: string[], run: (batch: string[]) => Promise<unknown>): void {
    for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) {
      const batch = channels.slice(i, i + SUBSCRIBE_BATCH);
      this.#command(this.#sub, "ERR_BACKPLANE_SUBSCRIBE", () => run(batch));
    }
  }

  #command(side: Side, code: string, run: () => Promise<unknown>): void {
    const failed = (error: unknown) => {
      if (this.#closing === undefined) this.#once(side, code, `Redis ${side.role} command failed: ${errorMessage(error)}`, error);
    };
    try {
      run().then(undefined, failed);
    } catch (error) {
      failed(error);
    }
  }

  #onMessage(channel: Uint8Array, message: Uint8Array): void {
    this.#guard(() => {
      if (this.#closing !== undefined) return;
      const name = decoder.decode(channel);
      const prefix = this.#options.prefix;
      if (!name.startsWith(prefix)) return;
      const topic = name.slice(prefix.length);
      if (!this.#topics.has(topic)) return;
      const kind = message[0];
      const originLength = message[1] ?? 0;
      const start = 2 + originLength;
      if ((kind !== KIND_TEXT && kind !== KIND_BINARY) || message.length < start) {
        this.#counts.invalid++;
        if (!this.#invalidReported) {
          this.#invalidReported = true;
          this.#report(
            new BackplaneError(
              "ERR_BACKPLANE_MESSAGE",
              `A message on Redis channel ${JSON.stringify(name)} is not in the backplane's format; skipped (counted in stats.invalid from now on)`,
            ),
          );
        }
        return;
      }
      if (this.#isOwn(message, originLength)) {
        this.#counts.echoes++;
        return;
      }
      const payload = message.subarray(start);
      // Text is decoded; bytes are copied out of the client's buffer, which it may reuse.
      const data = kind === KIND_TEXT ? decoder.decode(payload) : new Uint8Array(payload);
      this.#counts.received++;
      this.#deliver(topic, data);
    });
  }

  #isOwn(message: Uint8Array, originLength: number): boolean {
    const origin = this.#origin;
    if (originLength !== origin.length) return false;
    for (let i = 0; i < originLength; i++) if (message[2 + i] !== origin[i]) return false;
    return true;
  }

  /** Runs an event handler: nothing it throws escapes into the client or the hub. */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      try {
        this.#report(error);
      } catch {
        // the hub's report never throws; nothing else to do
      }
    }
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
