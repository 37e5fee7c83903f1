// A fake Redis server and clients shaped like ioredis's (the part that
// RedisBackplane uses): status, events emitted on a later tick, PUBLISH /
// SUBSCRIBE / UNSUBSCRIBE / QUIT, messages delivered as bytes. The server can
// go down and come back (losing every subscription, as a restarted Redis
// does), and each client can be told to resubscribe by itself on `ready`
// (ioredis's autoResubscribe) or not.
import type { RedisClient } from "../../plugins/redis.ts";

type Listener = (...args: any[]) => void;

/** Waits for the clients' pending events and deliveries. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export class FakeRedisServer {
  readonly clients: FakeRedisClient[] = [];
  /** Every PUBLISH the server got, in order, with the message's raw bytes. */
  readonly published: { channel: string; message: Uint8Array }[] = [];
  up = true;

  /** Channels with at least one subscriber (`PUBSUB CHANNELS`). */
  channels(): string[] {
    const all = new Set<string>();
    for (const client of this.clients) for (const channel of client.serverSide) all.add(channel);
    return [...all].sort();
  }

  /** A client that joins this server. */
  client(options: { autoResubscribe?: boolean; lazy?: boolean } = {}): FakeRedisClient {
    const client = new FakeRedisClient(this, options.autoResubscribe ?? true, options.lazy ?? false);
    this.clients.push(client);
    return client;
  }

  /** Stops: every connection drops; clients reconnect once it is back. */
  down(): void {
    this.up = false;
    for (const client of this.clients) client.drop();
  }

  /**
   * Starts again: clients reconnect (only `first`, when given; the others
   * on `restart()` again), with no subscription on the server side.
   */
  restart(first?: FakeRedisClient[]): void {
    this.up = true;
    for (const client of first ?? this.clients) client.reconnect();
  }

  /** PUBLISH from anywhere (a foreign program, say). */
  publish(channel: string, message: Uint8Array): void {
    this.published.push({ channel, message: new Uint8Array(message) });
    const name = new TextEncoder().encode(channel);
    for (const client of this.clients) {
      if (client.serverSide.has(channel)) {
        // A Node Buffer where there is one, as ioredis gives.
        const bytes = toBuffer(message);
        setTimeout(() => client.emit("messageBuffer", toBuffer(name), bytes), 0);
      }
    }
  }
}

function toBuffer(bytes: Uint8Array): Uint8Array {
  const B = (globalThis as unknown as { Buffer?: { from(b: Uint8Array): Uint8Array } }).Buffer;
  return B === undefined ? new Uint8Array(bytes) : B.from(bytes);
}

export class FakeRedisClient implements RedisClient {
  status: string;
  /** Channels subscribed on the server for this connection. */
  readonly serverSide = new Set<string>();
  /** Channels the client would resubscribe (ioredis's SubscriptionSet). */
  readonly remembered = new Set<string>();
  /** Every command, in order: `["publish", channel]`, `["subscribe", ...channels]`… */
  readonly commands: string[][] = [];
  /** Throws or rejects PUBLISH while set. */
  failPublish: "throw" | "reject" | undefined;
  readonly #server: FakeRedisServer;
  readonly #autoResubscribe: boolean;
  readonly #listeners = new Map<string, Listener[]>();
  quitCalls = 0;
  disconnectCalls = 0;

  constructor(server: FakeRedisServer, autoResubscribe: boolean, lazy: boolean) {
    this.#server = server;
    this.#autoResubscribe = autoResubscribe;
    this.status = lazy ? "wait" : "connecting";
    if (!lazy) setTimeout(() => this.#ready(), 0);
  }

  on(event: string, listener: Listener): this {
    let list = this.#listeners.get(event);
    if (list === undefined) this.#listeners.set(event, list = []);
    list.push(listener);
    return this;
  }

  emit(event: string, ...args: unknown[]): void {
    for (const listener of this.#listeners.get(event) ?? []) listener(...args);
  }

  listenerCount(event: string): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  connect(): Promise<void> {
    this.status = "connecting";
    setTimeout(() => this.#ready(), 0);
    return Promise.resolve();
  }

  publish(channel: string, message: string | Uint8Array): Promise<number> {
    this.commands.push(["publish", channel]);
    if (this.failPublish === "throw") throw new Error("publish threw");
    if (this.failPublish === "reject") return Promise.reject(new Error("publish rejected"));
    if (this.status !== "ready") return Promise.reject(new Error("not ready: the backplane should have queued"));
    if (typeof message === "string") throw new Error("expected bytes");
    this.#server.publish(channel, message);
    return Promise.resolve(1);
  }

  subscribe(...channels: string[]): Promise<number> {
    this.commands.push(["subscribe", ...channels]);
    if (this.status !== "ready") return Promise.reject(new Error("not ready: the backplane should have waited"));
    for (const channel of channels) {
      this.serverSide.add(channel);
      this.remembered.add(channel);
    }
    return Promise.resolve(this.serverSide.size);
  }

  unsubscribe(...channels: string[]): Promise<number> {
    this.commands.push(["unsubscribe", ...channels]);
    if (this.status !== "ready") return Promise.reject(new Error("not ready: the backplane should have waited"));
    for (const channel of channels) {
      this.serverSide.delete(channel);
      this.remembered.delete(channel);
    }
    return Promise.resolve(this.serverSide.size);
  }

  quit(): Promise<string> {
    this.quitCalls++;
    this.#end();
    return Promise.resolve("OK");
  }

  disconnect(): void {
    this.disconnectCalls++;
    this.#end();
  }

  /** The connection drops (the server went down). */
  drop(): void {
    if (this.status === "end") return;
    this.serverSide.clear();
    this.status = "reconnecting";
    setTimeout(() => {
      this.emit("close");
      this.emit("error", new Error("connect ECONNREFUSED"));
      this.emit("error", new Error("connect ECONNREFUSED (again)"));
    }, 0);
  }

  /** The server is back: reconnect. */
  reconnect(): void {
    if (this.status !== "reconnecting") return;
    setTimeout(() => this.#ready(), 0);
  }

  #ready(): void {
    if (this.status === "end" || !this.#server.up) return;
    this.status = "ready";
    if (this.#autoResubscribe && this.remembered.size > 0) {
      this.commands.push(["subscribe(auto)", ...this.remembered]);
      for (const channel of this.remembered) this.serverSide.add(channel);
    }
    this.emit("ready");
  }

  #end(): void {
    if (this.status === "end") return;
    this.status = "end";
    this.serverSide.clear();
    setTimeout(() => {
      this.emit("close");
      this.emit("end");
    }, 0);
  }
}
