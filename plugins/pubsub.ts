/**
 * Pub/sub topics: connections subscribe to topics, and a message published
 * to a topic is framed once and written to every local subscriber, then
 * handed to a {@linkcode Backplane} that carries it to other processes.
 * Subscribers on a runtime with its own topics (Bun's native path) are
 * reached with one publish of the runtime per server where that changes
 * nothing they could see.
 *
 * @module
 */

import { describeValue, positiveIntegerOption } from "./_check.ts";
import { CloseCode } from "../core/close_code.ts";
import { UsageError } from "../core/errors.ts";
import { PreparedMessage } from "../core/prepared.ts";
import { ReadyState } from "../core/state.ts";
import type { Peer } from "./context.ts";
import type { NativeTopics, NativeTopicServer } from "./_native_topics.ts";

/**
 * What carries published messages between processes (or between apps in
 * one process). Each app's hub connects once and gets its own
 * {@linkcode BackplaneLink}.
 *
 * @example
 * ```ts
 * import { App, InProcessBackplane } from "@duplex/ws";
 *
 * const app = new App({ backplane: new InProcessBackplane() });
 * ```
 */
export interface Backplane {
  /**
   * Connects one hub.
   *
   * @param deliver Hands the hub a message published elsewhere.
   * @param report Hands the hub an error of the backplane (a lost
   *   connection, a failed publish): it goes to the app's `onError`.
   * @returns The hub's link.
   */
  connect(deliver: (topic: string, data: string | Uint8Array) => void, report: (error: unknown) => void): BackplaneLink;
}

/**
 * One hub's link to a backplane. The hub calls `subscribe` when a topic
 * gets its first local subscriber and `unsubscribe` when it loses its
 * last, so only topics in use travel; it calls `publish` for every message
 * published here, after delivering it locally. A link must never deliver a
 * hub's own messages back to it, and must keep the order of its messages
 * per topic.
 *
 * @example A link that only logs
 * ```ts
 * import type { BackplaneLink } from "@duplex/ws";
 *
 * const link: BackplaneLink = {
 *   publish: (topic, data) => console.log("publish", topic, data),
 *   subscribe: (topic) => console.log("subscribe", topic),
 *   unsubscribe: (topic) => console.log("unsubscribe", topic),
 *   close: async () => {},
 * };
 * ```
 */
export interface BackplaneLink {
  /** Carries a message published here to the other hubs subscribed to `topic`. */
  publish(topic: string, data: string | Uint8Array): void | Promise<void>;
  /** Starts receiving a topic's messages from elsewhere. */
  subscribe(topic: string): void | Promise<void>;
  /** Stops receiving a topic's messages. */
  unsubscribe(topic: string): void | Promise<void>;
  /** Releases the link. */
  close(): Promise<void>;
}

/**
 * The in-process backplane: apps connected to the same instance share
 * their topics, synchronously and in order. An app without a backplane
 * keeps its topics to itself, so nothing needs setting up.
 *
 * @example Two apps (say, a raw and a native server) in one process
 * ```ts
 * import { App, InProcessBackplane } from "@duplex/ws";
 *
 * const bus = new InProcessBackplane();
 * const a = new App({ backplane: bus });
 * const b = new App({ backplane: bus });
 * a.publish("news", "reaches subscribers of both apps");
 * ```
 */
export class InProcessBackplane implements Backplane {
  readonly #links = new Set<{ deliver: (topic: string, data: string | Uint8Array) => void; topics: Set<string> }>();

  /**
   * Connects one hub.
   *
   * @param deliver Hands the hub messages from the other hubs.
   * @returns The hub's link.
   */
  connect(deliver: (topic: string, data: string | Uint8Array) => void): BackplaneLink {
    const self = { deliver, topics: new Set<string>() };
    const links = this.#links;
    links.add(self);
    return {
      publish(topic, data) {
        if (!links.has(self)) return; // closed
        for (const link of links) if (link !== self && link.topics.has(topic)) link.deliver(topic, data);
      },
      subscribe: (topic) => void self.topics.add(topic),
      unsubscribe: (topic) => void self.topics.delete(topic),
      close() {
        links.delete(self);
        return Promise.resolve();
      },
    };
  }
}

/**
 * What a publisher gets back, and what a slow subscriber costs: counts kept
 * by an app's hub since it started.
 *
 * @example
 * ```ts
 * import { App } from "@duplex/ws";
 *
 * const app = new App();
 * app.publish("news", "hello");
 * console.log(app.pubsubStats.published); // 1
 * ```
 */
export interface PubSubStats {
  /** Messages published here. */
  published: number;
  /** Messages written to local subscribers (one per subscriber). */
  delivered: number;
  /** Messages skipped for a subscriber over `maxBufferedBytes` (policy `"drop"`). */
  dropped: number;
  /** Subscribers closed with 1013 for being too slow (policy `"close"`). */
  closedSlow: number;
  /** Messages that arrived from the backplane. */
  received: number;
}

/**
 * Options of an app's pub/sub.
 *
 * @example
 * ```ts
 * import { App, InProcessBackplane } from "@duplex/ws";
 *
 * const app = new App({ backplane: new InProcessBackplane(), maxBufferedBytes: 256 * 1024, slowPolicy: "close" });
 * ```
 */
export interface PubSubOptions {
  /** Where published messages go beyond this app. Default: nowhere (topics stay in this app). */
  backplane?: Backplane;
  /**
   * A subscriber whose buffered output (`bufferedAmount`) is above this many
   * bytes is slow: published messages are dropped for it, or it is closed,
   * per `slowPolicy`. Direct `send()`s are not affected. Buffered output
   * includes what Duplex framed and has not handed to the socket yet, up to
   * the high-water mark (64 KiB by default) in a burst, so keep this above
   * `highWaterMark`. Default 1 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * What happens to a slow subscriber: `"drop"` (the default) skips the
   * message for it and counts it in `dropped`; `"close"` closes it with 1013
   * (try again later).
   */
  slowPolicy?: "drop" | "close";
  /**
   * Where errors of the backplane go (a lost connection, a failed publish
   * or subscribe). Local delivery goes on meanwhile. Default: `console.error`.
   */
  onBackplaneError?: (error: unknown) => void;
}

/**
 * Options of a publish.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import type { PublishOptions } from "@duplex/ws";
 *
 * const options: PublishOptions = { except: undefined };
 * ```
 */
export interface PublishOptions<S = Record<string, unknown>> {
  /** A local subscriber that does not get the message (the sender, usually). */
  except?: Peer<S>;
}

/**
 * How a {@linkcode Hub} reaches the runtime topics of its peers'
 * connections (see {@linkcode NativeTopics}); an {@linkcode App} gives its
 * hub one. Without it, every message goes to each subscriber's
 * `sendPrepared`.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example A hub that never uses runtime topics
 * ```ts
 * import { Hub, type HubNativeAccess } from "./pubsub.ts";
 *
 * const access: HubNativeAccess = { topicsOf: () => undefined, direct: () => true };
 * const hub = new Hub({}, (error) => console.error(error), access);
 * ```
 */
export interface HubNativeAccess<S = Record<string, unknown>> {
  /** The runtime topics of a peer's connection, or `undefined`; the same object every time for one connection. */
  topicsOf(peer: Peer<S>): NativeTopics | undefined;
  /**
   * Whether a published message may skip the peers' `sendPrepared`: `false`
   * while something must see each message per peer (an app's `send`
   * middleware).
   */
  direct(): boolean;
}

/** The subscribers of one topic. */
interface Subscribers<S> {
  /** Every local subscriber, in the order they subscribed. */
  readonly all: Set<Peer<S>>;
  /** Those without runtime topics: always one `sendPrepared` each. */
  readonly plain: Set<Peer<S>>;
  /** Those with runtime topics, by server, each with its runtime topics. */
  readonly native: Map<NativeTopicServer, Map<Peer<S>, NativeTopics>>;
}

const TOPIC_MAX = 1024;
/** Runtime topics are per server, which apps may share (Hono's routes on one `Bun.serve`): each hub has its own names. */
let lastHub = 0;

/**
 * Checks a topic name: a non-empty string of at most 1,024 characters.
 *
 * @param topic The name.
 * @throws {UsageError} `ERR_INVALID_TOPIC` otherwise.
 *
 * @example
 * ```ts
 * import { checkTopic } from "./pubsub.ts";
 *
 * checkTopic("room:lobby"); // fine
 * ```
 */
export function checkTopic(topic: string): void {
  if (typeof topic !== "string" || topic === "" || topic.length > TOPIC_MAX) {
    throw new UsageError("ERR_INVALID_TOPIC", `Invalid topic: expected a non-empty string of at most ${TOPIC_MAX} characters`);
  }
}

/**
 * The topics of one app: who is subscribed to what, local delivery with
 * one frame per message, and the backplane link. Apps own one; use it
 * through `app.publish()` and the peers' `subscribe()`/`publish()`.
 *
 * Subscribers whose connection has runtime topics (Bun's native path) are
 * also subscribed there, under a name of this hub's own. A message
 * published to them goes out with one publish of the runtime per server
 * (or one `ws.publish()` of the `except` peer, which skips it) when that is
 * what the per-subscriber loop would do: no `send` middleware, every one of
 * them open and below `maxBufferedBytes` and its own connection cap, and the
 * runtime's count of subscribers agrees with the hub's. Otherwise that
 * server's subscribers get the loop, which applies the slow-subscriber
 * policy one by one.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import { Hub } from "./pubsub.ts";
 *
 * const hub = new Hub({}, (error) => console.error(error));
 * console.log(hub.publish("news", "nobody listens yet")); // 0
 * ```
 */
export class Hub<S = Record<string, unknown>> {
  /** Counts since the hub started. */
  readonly stats: PubSubStats = { published: 0, delivered: 0, dropped: 0, closedSlow: 0, received: 0 };
  readonly #topics = new Map<string, Subscribers<S>>();
  readonly #byPeer = new Map<Peer<S>, Set<string>>();
  readonly #link: BackplaneLink | undefined;
  readonly #access: HubNativeAccess<S> | undefined;
  /** The prefix of this hub's runtime topic names. */
  readonly #prefix = `duplex:${++lastHub}:`;
  readonly #report: (error: unknown) => void;
  readonly #maxBuffered: number;
  readonly #closeSlow: boolean;

  /**
   * Creates a hub.
   *
   * @param options The backplane and the slow-subscriber policy.
   * @param report Where backplane errors go (and errors of runtime topics).
   * @param access How to reach the peers' runtime topics; without it, none are used.
   * @throws {UsageError} `ERR_INVALID_OPTION` for a bad limit or policy.
   */
  constructor(options: PubSubOptions, report: (error: unknown) => void, access?: HubNativeAccess<S>) {
    const max = positiveIntegerOption("maxBufferedBytes", options.maxBufferedBytes, 1024 * 1024);
    const policy = options.slowPolicy ?? "drop";
    if (policy !== "drop" && policy !== "close") {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: slowPolicy must be "drop" or "close", got ${describeValue(policy)}`);
    }
    this.#maxBuffered = max;
    this.#closeSlow = policy === "close";
    this.#report = report;
    this.#access = access;
    this.#link = options.backplane?.connect((topic, data) => this.#fromBackplane(topic, data), report);
  }

  /** The topics a peer is subscribed to. */
  topicsOf(peer: Peer<S>): ReadonlySet<string> {
    return this.#byPeer.get(peer) ?? EMPTY_TOPICS;
  }

  /** Number of local subscribers of a topic. */
  subscribers(topic: string): number {
    return this.#topics.get(topic)?.all.size ?? 0;
  }

  /**
   * Subscribes a peer to a topic; the first local subscriber subscribes the
   * backplane. Only an open connection can subscribe (subscribe in `open`,
   * not in the upgrade phase, which may still refuse).
   *
   * @returns `false` when it was already subscribed, or is not open.
   */
  subscribe(peer: Peer<S>, topic: string): boolean {
    checkTopic(topic);
    if (peer.readyState !== ReadyState.Open) return false;
    let subs = this.#topics.get(topic);
    if (subs?.all.has(peer)) return false;
    if (subs === undefined) {
      subs = { all: new Set(), plain: new Set(), native: new Map() };
      this.#topics.set(topic, subs);
      this.#call(() => this.#link?.subscribe(topic));
    }
    subs.all.add(peer);
    const native = this.#access?.topicsOf(peer);
    if (native !== undefined && this.#nativeCall(() => native.subscribe(this.#prefix + topic))) {
      let members = subs.native.get(native.server);
      if (members === undefined) subs.native.set(native.server, members = new Map());
      members.set(peer, native);
    } else {
      subs.plain.add(peer);
    }
    let topics = this.#byPeer.get(peer);
    if (topics === undefined) this.#byPeer.set(peer, topics = new Set());
    topics.add(topic);
    return true;
  }

  /**
   * Unsubscribes a peer; the last local subscriber unsubscribes the backplane.
   *
   * @returns `false` when it was not subscribed.
   */
  unsubscribe(peer: Peer<S>, topic: string): boolean {
    const subs = this.#topics.get(topic);
    if (subs === undefined || !subs.all.delete(peer)) return false;
    if (!subs.plain.delete(peer)) {
      for (const [server, members] of subs.native) {
        const native = members.get(peer);
        if (native === undefined) continue;
        members.delete(peer);
        if (members.size === 0) subs.native.delete(server);
        this.#nativeCall(() => native.unsubscribe(this.#prefix + topic));
        break;
      }
    }
    const topics = this.#byPeer.get(peer)!;
    topics.delete(topic);
    if (topics.size === 0) this.#byPeer.delete(peer);
    if (subs.all.size === 0) {
      this.#topics.delete(topic);
      this.#call(() => this.#link?.unsubscribe(topic));
    }
    return true;
  }

  /** Unsubscribes a peer from everything (it closed). */
  drop(peer: Peer<S>): void {
    const topics = this.#byPeer.get(peer);
    if (topics === undefined) return;
    for (const topic of [...topics]) this.unsubscribe(peer, topic);
  }

  /**
   * Publishes: frames the message once, writes it to every local
   * subscriber (but `except`), then hands it to the backplane.
   *
   * @returns The number of local subscribers it was handed to (a `send`
   *   middleware may still drop it for one of them).
   */
  publish(topic: string, data: string | ArrayBuffer | ArrayBufferView, options: PublishOptions<S> = {}): number {
    checkTopic(topic);
    const message = new PreparedMessage(data);
    this.stats.published++;
    // An event context stands for its peer.
    const except = (options.except as { peer?: Peer<S> } | undefined)?.peer ?? options.except;
    const delivered = this.#deliver(topic, message, except);
    if (this.#link !== undefined) this.#call(() => this.#link!.publish(topic, message.data));
    return delivered;
  }

  /** Releases the backplane link. */
  close(): Promise<void> {
    return this.#link?.close() ?? Promise.resolve();
  }

  #fromBackplane(topic: string, data: string | Uint8Array): void {
    this.stats.received++;
    this.#deliver(topic, new PreparedMessage(data), undefined);
  }

  #deliver(topic: string, message: PreparedMessage, except: Peer<S> | undefined): number {
    const subs = this.#topics.get(topic);
    if (subs === undefined) return 0;
    let delivered: number;
    if (subs.native.size === 0 || !this.#access!.direct()) {
      delivered = this.#loop(subs.all, message, except);
    } else {
      delivered = this.#loop(subs.plain, message, except);
      const sender = except === undefined ? undefined : this.#access!.topicsOf(except);
      for (const [server, members] of subs.native) {
        const reached = this.#publishNative(this.#prefix + topic, server, members, message.data, sender);
        delivered += reached >= 0 ? reached : this.#loop(members.keys(), message, except);
      }
    }
    this.stats.delivered += delivered;
    return delivered;
  }

  /** One `sendPrepared` per subscriber, with the slow-subscriber policy: the number of subscribers reached. */
  #loop(peers: Iterable<Peer<S>>, message: PreparedMessage, except: Peer<S> | undefined): number {
    let delivered = 0;
    for (const peer of peers) {
      if (peer === except || peer.readyState !== ReadyState.Open) continue;
      if (peer.bufferedAmount > this.#maxBuffered) {
        if (this.#closeSlow) {
          this.stats.closedSlow++;
          peer.close(CloseCode.TryAgainLater, "Too slow: output buffer full");
        } else {
          this.stats.dropped++;
        }
        continue;
      }
      try {
        peer.sendPrepared(message);
        delivered++;
      } catch (error) {
        this.#report(error);
      }
    }
    return delivered;
  }

  /**
   * One publish of the runtime for the subscribers of one server, when it
   * reaches exactly those the loop would and the same way: all of them open
   * or closed (a closed one is no longer subscribed in the runtime), none
   * over a limit, and the runtime's count agreeing. Returns the number
   * reached, or -1 when the loop must go instead.
   */
  #publishNative(
    name: string,
    server: NativeTopicServer,
    members: Map<Peer<S>, NativeTopics>,
    data: string | Uint8Array,
    except: NativeTopics | undefined,
  ): number {
    let open = 0;
    let sender: NativeTopics | undefined;
    for (const native of members.values()) {
      if (!native.open) continue;
      open++;
      if (native === except) {
        sender = native;
        continue;
      }
      const buffered = native.bufferedAmount;
      if (buffered > this.#maxBuffered || buffered > native.maxBufferedBytes) return -1;
    }
    try {
      if (server.subscribers(name) !== open) return -1;
    } catch (error) {
      this.#report(error);
      return -1;
    }
    // A throw past this point may have reached some: not retried by the loop.
    if (!this.#nativeCall(() => sender === undefined ? server.publish(name, data) : sender.publish(name, data))) return 0;
    let reached = 0;
    for (const native of members.values()) {
      if (native === sender || !native.open) continue;
      reached++;
      try {
        native.delivered();
      } catch (error) {
        this.#report(error);
      }
    }
    return reached;
  }

  /** Calls the runtime's topics: `false` when it threw (reported). */
  #nativeCall(fn: () => void): boolean {
    try {
      fn();
      return true;
    } catch (error) {
      this.#report(error);
      return false;
    }
  }

  /** Calls the backplane: a throw or a rejection is reported, never thrown. */
  #call(fn: () => void | Promise<void> | undefined): void {
    try {
      const result = fn();
      if (result !== undefined) result.then(undefined, this.#report);
    } catch (error) {
      this.#report(error);
    }
  }
}

const EMPTY_TOPICS: ReadonlySet<string> = new Set();
