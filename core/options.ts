/**
 * Limits every connection is held to, with safe defaults.
 *
 * The fragment limit is tied to bytes. A message may arrive in up to
 * `maxFragments` frames whatever their size, and in one more frame for every
 * `minFragmentBytes` bytes of its payload: beyond the free count, its frames
 * must carry at least `minFragmentBytes` each on average. A sender that cuts
 * a large message into small frames (Autobahn|Testsuite 9.3.1 sends 4 MiB in
 * 65,536 frames of 64 bytes, then an empty final frame) passes; a flood of
 * empty or 1-byte frames, which costs the receiver far more memory per frame
 * than per byte, is refused with 1009 after about `maxFragments` frames. A
 * message can hold at most `maxFragments + maxMessageBytes / minFragmentBytes`
 * frames (327,680 with the defaults), so the memory a message costs stays
 * bounded by its bytes.
 *
 * @module
 */

import { describeValue } from "./_describe.ts";
import { UsageError } from "./errors.ts";

/**
 * Size and time limits of one connection. Every field is optional where it is
 * accepted; {@linkcode resolveLimits} fills in the defaults.
 *
 * @example
 * ```ts
 * import type { Limits } from "@duplex/ws/core";
 *
 * const limits: Partial<Limits> = { maxMessageBytes: 1 << 20 };
 *
 * // At most 1,024 frames per message, however large it is.
 * const strict: Partial<Limits> = { maxFragments: 1024, minFragmentBytes: 2 ** 40 };
 * ```
 */
export interface Limits {
  /** Largest message accepted, all fragments together; larger ones close with 1009. Default 16 MiB. */
  maxMessageBytes: number;
  /** Largest single frame payload accepted; larger ones close with 1009. Default 16 MiB. */
  maxFrameBytes: number;
  /**
   * Frames one message may be split into whatever their size. Past this
   * count, a message may have one more frame for every `minFragmentBytes`
   * bytes of its payload (this frame's included); a frame past both closes
   * with 1009 (`WS_ERR_TOO_MANY_FRAGMENTS`), as soon as its header arrives.
   * Default 65,536.
   */
  maxFragments: number;
  /**
   * The average payload, in bytes, that frames beyond `maxFragments` must
   * carry: each `minFragmentBytes` of a message's payload earns it one frame
   * more. Set it above `maxMessageBytes` to make `maxFragments` a hard cap.
   * Default 64.
   */
  minFragmentBytes: number;
  /** Largest opening handshake header block accepted; larger ones get HTTP 431. Default 16 KiB. */
  maxHeaderBytes: number;
  /** How long to wait for the peer's close frame, and then for it to close TCP, in ms. Default 5,000. */
  closeTimeoutMs: number;
}

/**
 * The default limits.
 *
 * @example
 * ```ts
 * import { DEFAULT_LIMITS } from "@duplex/ws/core";
 *
 * console.log(DEFAULT_LIMITS.maxMessageBytes); // 16777216
 * ```
 */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxMessageBytes: 16 * 1024 * 1024,
  maxFrameBytes: 16 * 1024 * 1024,
  maxFragments: 65_536,
  minFragmentBytes: 64,
  maxHeaderBytes: 16 * 1024,
  closeTimeoutMs: 5_000,
});

/**
 * Fills in the default for every limit not given and checks the ones given.
 *
 * @param options Limits to override.
 * @returns A complete, frozen set of limits.
 * @throws {UsageError} When a limit is not a positive integer (`closeTimeoutMs` may be 0).
 *
 * @example
 * ```ts
 * import { resolveLimits } from "@duplex/ws/core";
 *
 * const limits = resolveLimits({ maxMessageBytes: 1024 });
 * console.log(limits.maxFrameBytes); // 16777216
 * ```
 */
export function resolveLimits(options: Partial<Limits> = {}): Readonly<Limits> {
  // A server passes the same frozen options object to every connection's
  // engine: resolve it once. (A mutable object may change between calls.)
  const frozen = Object.isFrozen(options);
  const cached = frozen ? resolved.get(options) : undefined;
  if (cached !== undefined) return cached;
  const out = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
    const value = options[key];
    if (value === undefined) continue;
    const min = key === "closeTimeoutMs" ? 0 : 1;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
      throw new UsageError(
        "ERR_INVALID_OPTION",
        `Invalid option: ${key} must be an integer of at least ${min}, got ${describeValue(value)}`,
      );
    }
    out[key] = value;
  }
  const limits = Object.freeze(out);
  if (frozen) resolved.set(options, limits);
  return limits;
}

const resolved = new WeakMap<object, Readonly<Limits>>();
