/**
 * The seam between a runtime's own pub/sub (Bun's topics) and the app's
 * hub: internal, in neither the hooks contract nor any entry point. An
 * adapter whose connections have runtime topics puts them under the
 * {@linkcode NATIVE_TOPICS} key of the connection; the hub reads them with
 * {@linkcode nativeTopicsOf}. Applications never see it.
 *
 * @module
 */

/**
 * The server half of a runtime's own pub/sub (Bun's `server.publish()`):
 * one object per server, shared by the {@linkcode NativeTopics} of every
 * connection of that server.
 *
 * @example A server that counts, for a test
 * ```ts
 * import type { NativeTopicServer } from "./_native_topics.ts";
 *
 * const subscribed = new Map<string, number>();
 * const server: NativeTopicServer = {
 *   publish: (topic, data) => console.log(topic, data),
 *   subscribers: (topic) => subscribed.get(topic) ?? 0,
 * };
 * ```
 */
export interface NativeTopicServer {
  /** Sends `data` (a string as text, bytes as binary) to every connection of this server subscribed to `topic`. */
  publish(topic: string, data: string | Uint8Array): void;
  /** Number of connections of this server subscribed to `topic`. */
  subscribers(topic: string): number;
}

/**
 * A runtime's own pub/sub as one connection of a native path offers it
 * (Bun: `ws.subscribe()`, `ws.publish()`, `server.publish()`, which frame a
 * message once and batch the writes in C++). An app's hub mirrors its
 * subscriptions into it and, when nothing has to run per connection, reaches
 * every subscriber of one server with one publish. Applications do not use
 * it; adapters provide it under {@linkcode NATIVE_TOPICS}.
 *
 * @example
 * ```ts
 * import { type NativeTopics, nativeTopicsOf } from "./_native_topics.ts";
 *
 * declare const conn: object; // a Connection
 * const topics: NativeTopics | undefined = nativeTopicsOf(conn); // defined on Bun's native path
 * ```
 */
export interface NativeTopics {
  /** The server this connection belongs to. */
  readonly server: NativeTopicServer;
  /** Whether the connection is open (only open connections are subscribed in the runtime). */
  readonly open: boolean;
  /** Bytes queued by the runtime and not yet written. */
  readonly bufferedAmount: number;
  /** The connection's own cap on buffered output (`maxBufferedBytes` of the connection options). */
  readonly maxBufferedBytes: number;
  /** Subscribes the connection to a runtime topic. */
  subscribe(topic: string): void;
  /** Unsubscribes it; does nothing once it is closed. */
  unsubscribe(topic: string): void;
  /** Sends `data` to every connection of the server subscribed to `topic`, but this one. */
  publish(topic: string, data: string | Uint8Array): void;
  /**
   * A published message reached this connection through the runtime: it
   * notes the backpressure as `send()` would have (so `drain` follows).
   */
  delivered(): void;
}

/**
 * The key under which a connection of a native path with runtime topics
 * offers its {@linkcode NativeTopics}.
 *
 * @example
 * ```ts
 * import { NATIVE_TOPICS, type NativeTopics } from "./_native_topics.ts";
 *
 * class Session {
 *   get [NATIVE_TOPICS](): NativeTopics | undefined {
 *     return undefined; // no runtime topics here
 *   }
 * }
 * ```
 */
export const NATIVE_TOPICS: unique symbol = Symbol("duplex.nativeTopics");

/**
 * The runtime topics of a connection, or `undefined` when it has none (raw
 * paths, Deno, a stand-in server).
 *
 * @param conn A connection, as the hooks receive it.
 * @returns Its runtime topics, the same object every time for one connection.
 *
 * @example
 * ```ts
 * import { nativeTopicsOf } from "./_native_topics.ts";
 *
 * console.log(nativeTopicsOf({})); // undefined
 * ```
 */
export function nativeTopicsOf(conn: object): NativeTopics | undefined {
  return (conn as { [NATIVE_TOPICS]?: NativeTopics })[NATIVE_TOPICS];
}
