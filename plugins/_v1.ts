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
import { type ClientMessage, decodeClient } from "../client/_wire.ts";

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
