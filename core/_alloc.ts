/**
 * Where the engine gets the bytes it fills completely before anyone reads
 * them: a frame's payload joined from several reads, a fragmented message,
 * a frame header. `new Uint8Array(n)` zeroes what is about to be
 * overwritten, and a small one lives on the JavaScript heap, so a socket
 * API that needs its memory off the heap moves it there on every write. A
 * runtime adapter may install an allocator that skips both (on Node 20, a
 * 64 KiB binary echo through the Node adapter on an in-memory socket took
 * 18–24 µs of CPU per message with `new Uint8Array`, 14–19 µs without).
 * `core/` itself stays on web APIs: it only calls what it was given.
 *
 * @module
 */

/** The installed allocator, or `undefined` for `new Uint8Array(n)`. */
let installed: ((size: number) => Uint8Array) | undefined;

/**
 * Installs an allocator for {@linkcode allocBytes}. Its bytes may hold
 * anything (they are overwritten before they are read) and may be a view
 * into a larger buffer shared with other allocations, as the views into a
 * read's bytes that messages already are.
 *
 * @param allocate Returns `size` bytes, or `undefined` to go back to `new Uint8Array(size)`.
 *
 * @example
 * ```ts
 * import { useAllocator } from "./_alloc.ts";
 *
 * useAllocator((size) => new Uint8Array(size));
 * useAllocator(undefined); // the default again
 * ```
 */
export function useAllocator(allocate: ((size: number) => Uint8Array) | undefined): void {
  installed = allocate;
}

/**
 * `size` bytes that the caller overwrites entirely before anyone reads
 * them.
 *
 * @param size How many bytes.
 * @returns The bytes (not necessarily zeroed).
 *
 * @example
 * ```ts
 * import { allocBytes } from "./_alloc.ts";
 *
 * const out = allocBytes(3);
 * out.set([1, 2, 3]);
 * ```
 */
export function allocBytes(size: number): Uint8Array {
  return installed === undefined ? new Uint8Array(size) : installed(size);
}
