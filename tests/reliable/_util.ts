// Helpers of the reliable-layer tests: a duplex.v1 client on the sans-IO
// harness, and a TopicLog wrapper whose every answer (and watch) comes late.
import {
  type ClientMessage,
  decodeServer,
  encode,
  type ServerMessage,
} from "../../client/_wire.ts";
import type { Handler } from "../../plugins/hooks.ts";
import type {
  Appended,
  LogEntry,
  LogRead,
  TopicLog,
} from "../../plugins/topic_log.ts";
import type { From } from "../../client/_wire.ts";
import { setImmediate } from "node:timers";
import {
  type Conn,
  connect,
  type ConnectOptions,
  flush,
} from "../plugins/_harness.ts";

/** Connects offering duplex.v1 (plus `protocols`). */
export function v1(
  handler: Handler<any>,
  options: ConnectOptions & { protocols?: string[] } = {},
): Promise<Conn> {
  const { protocols = [], ...rest } = options;
  const request = typeof rest.request === "object" ? rest.request : {};
  return connect(handler, {
    ...rest,
    request: { ...request, protocols: ["duplex.v1", ...protocols] },
  });
}

/** Sends a client message. */
export function send(conn: Conn, message: ClientMessage): Promise<void> {
  return conn.text(encode(message));
}

/** Feeds a client message without waiting. */
export function feed(conn: Conn, message: ClientMessage): void {
  conn.text(encode(message)).catch(() => {});
}

/** Everything the server sent, decoded. */
export function received(conn: Conn): ServerMessage[] {
  return conn.texts().map((text) => {
    const m = decodeServer(text);
    if (typeof m === "string") {
      throw new Error(`not a server message (${m}): ${text}`);
    }
    return m;
  });
}

/** The offsets of the `message`s of a topic, in order. */
export function offsetsOf(messages: ServerMessage[], topic?: string): number[] {
  return messages.flatMap((
    m,
  ) => (m.type === "message" && (topic === undefined || m.topic === topic)
    ? [m.offset]
    : [])
  );
}

/** The data of the `message`s, in order. */
export function dataOf(messages: ServerMessage[]): (string | Uint8Array)[] {
  return messages.flatMap((m) => (m.type === "message" ? [m.data] : []));
}

/** Waits until `check` holds (at most `ms`), letting the event loop turn. */
export async function settle(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`condition not reached within ${ms} ms`);
    }
    await flush(1);
  }
}

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A log whose appends, reads and watch deliveries all come after a random
 * delay (0..maxDelayMs): appends land in a random order, a read sees the
 * log as it is when it resolves, and the watch lags behind reads (in order).
 */
export class SlowLog implements TopicLog {
  readonly inner: TopicLog;
  readonly #random: () => number;
  readonly #maxDelayMs: number;
  watches = 0;
  reads = 0;

  readonly #lagWatch: boolean;

  constructor(
    inner: TopicLog,
    random: () => number,
    options: { maxDelayMs?: number; lagWatch?: boolean } = {},
  ) {
    this.inner = inner;
    this.#random = random;
    this.#maxDelayMs = options.maxDelayMs ?? 3;
    this.#lagWatch = options.lagWatch ?? true;
  }

  /** Later: a microtask, an event-loop turn, or a timer of up to maxDelayMs. */
  #later(): Promise<void> {
    const r = this.#random();
    if (r < 0.6) return Promise.resolve();
    if (r < 0.9) return new Promise((resolve) => setImmediate(resolve));
    return wait(Math.floor(this.#random() * (this.#maxDelayMs + 1)));
  }

  async append(
    topic: string,
    data: string | Uint8Array,
    key?: string,
  ): Promise<Appended> {
    await this.#later();
    const appended = await this.inner.append(topic, data, key);
    await this.#later();
    return appended;
  }

  async read(topic: string, after: From, limit: number): Promise<LogRead> {
    this.reads++;
    await this.#later();
    const read = await this.inner.read(topic, after, limit);
    await this.#later(); // the answer travels back: it may be stale on arrival
    return read;
  }

  watch(topic: string, listener: (entry: LogEntry) => void): () => void {
    this.watches++;
    if (!this.#lagWatch) {
      const stop = this.inner.watch(topic, listener);
      let stopped = false;
      return () => {
        if (stopped) return;
        stopped = true;
        this.watches--;
        stop();
      };
    }
    const queue: LogEntry[] = [];
    let draining = false;
    let stopped = false;
    const drain = async () => {
      draining = true;
      while (queue.length > 0 && !stopped) {
        await this.#later();
        const entry = queue.shift()!;
        if (!stopped) listener(entry);
      }
      draining = false;
    };
    const stop = this.inner.watch(topic, (entry) => {
      queue.push(entry);
      if (!draining) void drain();
    });
    return () => {
      if (stopped) return;
      stopped = true;
      this.watches--;
      stop();
    };
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A log that counts its live watches (and otherwise is the memory log it wraps). */
export class CountingLog implements TopicLog {
  readonly inner: TopicLog;
  watches = 0;
  appends = 0;
  constructor(inner: TopicLog) {
    this.inner = inner;
  }
  append(
    topic: string,
    data: string | Uint8Array,
    key?: string,
  ): Appended | Promise<Appended> {
    this.appends++;
    return this.inner.append(topic, data, key);
  }
  read(topic: string, after: From, limit: number): LogRead | Promise<LogRead> {
    return this.inner.read(topic, after, limit);
  }
  watch(topic: string, listener: (entry: LogEntry) => void): () => void {
    this.watches++;
    const stop = this.inner.watch(topic, listener);
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      this.watches--;
      stop();
    };
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
