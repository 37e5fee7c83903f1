/**
 * Whether a hook's or a middleware's result is a promise or another
 * thenable. Internal: shared by the pipeline (`plugins/`) and the adapters
 * (`runtimes/`), so that both layers treat a thenable the same way.
 *
 * @module
 */

/**
 * Whether `value` is a promise or another thenable.
 *
 * @example
 * ```ts
 * import { isThenable } from "./_thenable.ts";
 *
 * console.log(isThenable(Promise.resolve(1)), isThenable(1)); // true false
 * ```
 */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null | undefined)?.then === "function";
}
