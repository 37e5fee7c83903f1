/**
 * The connection state machine, in one place: CONNECTING → OPEN → CLOSING →
 * CLOSED. Every state change of the engine goes through
 * {@linkcode transition}; an action with no row in the table is illegal.
 *
 * @module
 */

/**
 * The four states of a connection, numbered as the WebSocket API's
 * `readyState`.
 *
 * @example
 * ```ts
 * import { ReadyState } from "@duplex/ws/core";
 *
 * console.log(ReadyState.Open); // 1
 * ```
 */
export const ReadyState = {
  /** The opening handshake has not finished. */
  Connecting: 0,
  /** Messages flow both ways. */
  Open: 1,
  /** A close frame was sent; waiting for the peer's. */
  Closing: 2,
  /** The connection is over. */
  Closed: 3,
} as const;

/**
 * A connection state value.
 *
 * @example
 * ```ts
 * import { ReadyState } from "@duplex/ws/core";
 *
 * const state: ReadyState = ReadyState.Closed;
 * ```
 */
export type ReadyState = typeof ReadyState[keyof typeof ReadyState];

/**
 * What can happen to a connection:
 * - `accept` / `reject`: the server's answer to the opening handshake;
 * - `localClose`: this side sent a close frame first;
 * - `peerClose`: the peer's close frame arrived (echoed if we had not sent ours);
 * - `fail`: the peer broke the protocol, a close frame with the fault's code was sent;
 * - `abort`: closed without a handshake (close timeout, terminate);
 * - `transportEnd`: the socket ended or failed under us.
 *
 * @example
 * ```ts ignore
 * const t: Transition = "peerClose";
 * ```
 */
export type Transition =
  | "accept"
  | "reject"
  | "localClose"
  | "peerClose"
  | "fail"
  | "abort"
  | "transportEnd";

const { Connecting, Open, Closing, Closed } = ReadyState;

const TABLE: Readonly<Record<ReadyState, Partial<Record<Transition, ReadyState>>>> = {
  [Connecting]: { accept: Open, reject: Closed, abort: Closed, transportEnd: Closed },
  [Open]: { localClose: Closing, peerClose: Closed, fail: Closed, abort: Closed, transportEnd: Closed },
  [Closing]: { peerClose: Closed, fail: Closed, abort: Closed, transportEnd: Closed },
  [Closed]: {},
};

/**
 * Looks up where `action` leads from `state`.
 *
 * @param state The current state.
 * @param action What happened.
 * @returns The next state, or `undefined` when the action is illegal in `state`.
 *
 * @example
 * ```ts ignore
 * transition(ReadyState.Open, "localClose"); // 2 (Closing)
 * transition(ReadyState.Closed, "localClose"); // undefined
 * ```
 */
export function transition(state: ReadyState, action: Transition): ReadyState | undefined {
  return TABLE[state][action];
}
