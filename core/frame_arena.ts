/**
 * One reused buffer that engines encode their small frames into, instead of
 * allocating each frame on its own and joining them again to write them.
 *
 * @module
 */

/** Bytes of one arena buffer, unless the adapter says otherwise. */
const DEFAULT_ARENA_BYTES = 64 * 1024;
/** Frames above this size are not copied into the arena (nor, without one, behind their header). */
const MAX_FRAME_BYTES = 16 * 1024;

/**
 * A byte buffer shared by the engines of one adapter: each engine encodes
 * its small data frames straight into it, one after another, and
 * {@linkcode Engine.takeOutput} hands back one view over the frames that
 * lie side by side, not one array per frame. For an adapter that writes
 * with one call per batch and no `writev`, that saves the allocation of
 * every frame and the copy that joins them.
 *
 * The contract that comes with it: the chunks `takeOutput()` returns may be
 * views into the arena, valid only until any engine that shares it sends
 * again. Write them at once, and copy what the socket did not take
 * ({@linkcode FrameArena.holds} says which chunks need it). The arena
 * reuses its memory from the start once no engine holds unwritten frames
 * in it; while some do, a full arena moves on to a fresh buffer.
 *
 * @example
 * ```ts
 * import { Engine, FrameArena } from "@duplex/ws/core";
 *
 * const arena = new FrameArena();
 * const engine = new Engine({}, arena);
 * // …after the handshake, engine.send("hi") encodes into the arena, and
 * // for (const chunk of engine.takeOutput()) { write it, or copy it if arena.holds(chunk) }
 * ```
 */
export class FrameArena {
  /** The current buffer. */
  bytes: Uint8Array;
  /** Bytes of `bytes` in use, from the start. */
  used = 0;
  /** Which buffer this is: it changes whenever the arena moves on to a fresh one. */
  generation = 0;
  /** Engines holding frames in the current buffer that they have not handed out yet. */
  holders = 0;
  readonly #size: number;

  /**
   * Creates an arena with one buffer of `size` bytes.
   *
   * @param size Bytes per buffer (default 64 KiB). Frames up to a quarter
   *   of it (at most 16 KiB) are encoded into the arena; bigger ones are
   *   allocated as before.
   * @throws {RangeError} When `size` is not an integer of at least 1024.
   */
  constructor(size: number = DEFAULT_ARENA_BYTES) {
    if (!Number.isInteger(size) || size < 1024) throw new RangeError(`Invalid arena size: expected an integer of at least 1024, got ${size}`);
    this.#size = size;
    this.bytes = new Uint8Array(size);
  }

  /** The biggest frame, in bytes, that goes into the arena: a quarter of it, at most 16 KiB. */
  get maxFrameBytes(): number {
    return Math.min(this.#size >>> 2, MAX_FRAME_BYTES);
  }

  /**
   * Makes room for `size` bytes at `used` (at most {@linkcode maxFrameBytes}):
   * back to the start when no engine holds frames, or a fresh buffer.
   *
   * @param size Bytes about to be written.
   */
  reserve(size: number): void {
    if (this.holders === 0) this.used = 0;
    else if (this.used + size > this.bytes.length) {
      this.bytes = new Uint8Array(this.#size);
      this.used = 0;
      this.generation++;
      this.holders = 0;
    }
  }

  /**
   * Whether `chunk` is a view into the arena's current buffer: memory the
   * next send may overwrite, to copy before keeping it.
   *
   * @param chunk A chunk from `takeOutput()`.
   * @returns `true` when it lies in the arena.
   */
  holds(chunk: Uint8Array): boolean {
    return chunk.buffer === this.bytes.buffer;
  }
}
