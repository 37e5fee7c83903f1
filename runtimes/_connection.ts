/**
 * What the raw pump and the native session share as connections: calling
 * the application's hooks so that a failure goes where it belongs.
 *
 * @module
 */

import { isThenable } from "../plugins/_thenable.ts";

/**
 * Logs the failure of a hook that had nowhere else to report it (the `error`
 * or `drain` hook itself threw or rejected).
 *
 * @param err What the hook threw or rejected with.
 *
 * @example
 * ```ts
 * import { logHookFailure } from "./_connection.ts";
 *
 * logHookFailure(new Error("boom")); // console.error, never a throw
 * ```
 */
export function logHookFailure(err: unknown): void {
  console.error("duplex: a hook threw while handling another error:", err);
}

/**
 * Calls a hook for the raw pump and the native session alike: a throw or a
 * rejection goes to `failed`, never further.
 *
 * @param hook The hook call.
 * @param failed What to do with the hook's error.
 * @returns A promise that settles once an async hook is done, or `undefined` for a sync one.
 *
 * @example
 * ```ts
 * import { callHook } from "./_connection.ts";
 *
 * callHook(() => {
 *   throw new Error("boom");
 * }, (err) => console.error(err)); // undefined, and the error is reported
 * ```
 */
export function callHook(hook: () => void | Promise<void>, failed: (err: unknown) => void): Promise<void> | undefined {
  let result;
  try {
    result = hook();
  } catch (err) {
    failed(err);
    return undefined;
  }
  if (!isThenable(result)) return undefined;
  return result.then(undefined, failed);
}
