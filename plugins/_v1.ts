/**
 * What the two `duplex.v1` layers (reliable topics and contract calls)
 * share on one connection: each message is decoded once, whichever layer
 * sees it first, and a layer marks the messages it handles, so that the
 * other can answer one that reached no layer able to handle it.
 *
 * @module
 */

import type { Connection } from "./hooks.ts";
import type { MessageContext, Peer } from "./context.ts";
import { ReadyState } from "../core/state.ts";
import { type ClientMessage, decodeClient, encode, type ServerMessage } from "../client/_wire.ts";

const decoded = new WeakMap<object, ClientMessage | string>();
const claimed = new WeakSet<object>();

/**
 * The message of a text frame, decoded once per message event.
 *
 * @param ctx The message event.
 * @param text Its text.
 * @returns The message, or what is wrong with it.
 */
export function decodeOnce(ctx: MessageContext<any>, text: string): ClientMessage | string {
  let m = decoded.get(ctx);
  if (m === undefined) decoded.set(ctx, m = decodeClient(text));
  return m;
}

/**
 * Marks a message event as handled by a `duplex.v1` layer.
 *
 * @param ctx The message event.
 */
export function claim(ctx: MessageContext<any>): void {
  claimed.add(ctx);
}

/**
 * Whether a `duplex.v1` layer handled the message event.
 *
 * @param ctx The message event.
 * @returns `true` once claimed.
 */
export function isClaimed(ctx: MessageContext<any>): boolean {
  return claimed.has(ctx);
}

/**
 * The adapter's connection under an app's peer: protocol frames skip the
 * app's `send` middleware, and both layers key their state on it.
 *
 * @param peer The peer.
 * @returns Its connection.
 */
export function connOf<S>(peer: Peer<S>): Connection<S> {
  return (peer as { conn?: Connection<S> }).conn ?? peer;
}

/** What each layer keeps of a connection that these writes need. */
export interface LayerConn<S> {
  readonly conn: Connection<S>;
  /** The layer let the connection go: nothing more is written on it. */
  closed: boolean;
  /** A write met backpressure: wait for `drained()` before writing more. */
  full: boolean;
}

/**
 * Writes a frame on the connection itself, past the app's `send`
 * middleware; nothing once the layer let it go or it is not open.
 *
 * @param cs The layer's connection state (`full` is set on backpressure).
 * @param text The frame.
 * @param report Where a throwing `send` goes.
 */
export function writeFrame<S>(cs: LayerConn<S>, text: string, report: (error: unknown) => void): void {
  if (cs.closed || cs.conn.readyState !== ReadyState.Open) return;
  try {
    if (!cs.conn.send(text)) cs.full = true;
  } catch (error) {
    report(error);
  }
}

/**
 * Encodes and writes a message as {@linkcode writeFrame} does.
 *
 * @param cs The layer's connection state.
 * @param message The message.
 * @param report Where a throwing `send` goes.
 */
export function sendMessage<S>(cs: LayerConn<S>, message: ServerMessage, report: (error: unknown) => void): void {
  writeFrame(cs, encode(message), report);
}

/**
 * Closes a connection the layer has let go of.
 *
 * @param conn The connection.
 * @param code The close code.
 * @param reason The close reason.
 * @param report Where a throwing `close` goes.
 */
export function closeQuietly<S>(conn: Connection<S>, code: number, reason: string, report: (error: unknown) => void): void {
  try {
    conn.close(code, reason);
  } catch (error) {
    report(error);
  }
}

/**
 * Hands an error to the layer's `onError`; if that throws too, both go to
 * the console.
 *
 * @param onError The layer's hook.
 * @param layer The layer's name, in the console line.
 * @param error The error.
 */
export function reportTo(onError: (error: unknown) => void, layer: string, error: unknown): void {
  try {
    onError(error);
  } catch (secondary) {
    console.error(`duplex: ${layer}: onError threw:`, secondary, "while handling:", error);
  }
}
