/**
 * Koa/Hono-style composition: a list of `(ctx, next)` middleware run as one
 * function, each deciding whether and when the rest runs.
 *
 * @module
 */

import { describeValue } from "../core/_describe.ts";
import { isThenable } from "./_thenable.ts";
import { UsageError } from "../core/errors.ts";

/**
 * Runs the rest of the chain. Returns what the rest returned: a promise when
 * some middleware after this one is async, otherwise `undefined`, so
 * `await next()` always works and a chain of sync middleware stays sync.
 *
 * @example
 * ```ts
 * import type { Next } from "@duplex/ws";
 *
 * async function timed(ctx: unknown, next: Next): Promise<void> {
 *   const start = Date.now();
 *   await next();
 *   console.log(`took ${Date.now() - start} ms`);
 * }
 * ```
 */
export type Next = () => void | Promise<void>;

/**
 * One link of a chain: it may act before and after `next()`, or not call it
 * at all to stop the chain there.
 *
 * @typeParam C The context the chain runs on.
 *
 * @example
 * ```ts
 * import type { Handle } from "@duplex/ws";
 *
 * const log: Handle<{ path: string }> = async (ctx, next) => {
 *   console.log("in", ctx.path);
 *   await next();
 *   console.log("out", ctx.path);
 * };
 * ```
 */
export type Handle<C> = (ctx: C, next: Next) => unknown;

/**
 * A composed chain: call it with a context and, optionally, what runs after
 * its last link.
 *
 * @typeParam C The context the chain runs on.
 *
 * @example
 * ```ts
 * import { type Composed, compose } from "./compose.ts";
 *
 * const chain: Composed<string[]> = compose<string[]>([(log, next) => { log.push("a"); return next(); }]);
 * const log: string[] = [];
 * chain(log, () => void log.push("end"));
 * console.log(log); // ["a", "end"]
 * ```
 */
export type Composed<C> = (ctx: C, last?: Next) => void | Promise<void>;

/**
 * Composes middleware into one function. Each link gets the context and a
 * `next` that runs the following links (and finally `last`). Calling `next`
 * twice in one link is refused with a {@linkcode UsageError}
 * (`ERR_NEXT_TWICE`).
 *
 * Without `onError`, a throw or a rejection propagates to the caller, so
 * that chains nest inside chains. With it, every error of the chain (a
 * throw, a rejection, a second `next()`) goes to `onError` and the composed
 * function itself never throws nor rejects.
 *
 * The chain is synchronous as long as its links are: it returns a promise
 * only when one of them does.
 *
 * @typeParam C The context the chain runs on.
 * @param middleware The links, in order.
 * @param onError Where every error of the chain goes.
 * @returns The composed chain.
 *
 * @example
 * ```ts
 * import { compose } from "./compose.ts";
 *
 * const order: string[] = [];
 * const chain = compose<string[]>([
 *   async (log, next) => {
 *     log.push("1 in");
 *     await next();
 *     log.push("1 out");
 *   },
 *   (log) => void log.push("2"),
 * ], (err) => console.error(err));
 * await chain(order);
 * console.log(order); // ["1 in", "2", "1 out"]
 * ```
 */
export function compose<C>(
  middleware: readonly Handle<C>[],
  onError?: (error: unknown, ctx: C) => void,
): Composed<C> {
  const links = [...middleware];
  for (const link of links) {
    if (typeof link !== "function") {
      throw new UsageError("ERR_INVALID_MIDDLEWARE", `Invalid middleware: expected a function, got ${describeValue(link)}`);
    }
  }
  // A class, not closures made per call: no function is created per event
  // but the one `next` per link that the caller may keep.
  const run = (ctx: C, last?: Next): void | Promise<void> => new Dispatch(links, ctx, last).dispatch(0);
  if (onError === undefined) return run;
  return (ctx, last) => {
    let result;
    try {
      result = run(ctx, last);
    } catch (err) {
      onError(err, ctx);
      return;
    }
    if (result !== undefined) return result.then(undefined, (err) => onError(err, ctx));
  };
}

function noop(): void {}

/** One run of a chain: which link ran last, so that a second `next()` is caught. */
class Dispatch<C> {
  readonly links: readonly Handle<C>[];
  readonly ctx: C;
  readonly last: Next | undefined;
  called = -1;

  constructor(links: readonly Handle<C>[], ctx: C, last: Next | undefined) {
    this.links = links;
    this.ctx = ctx;
    this.last = last;
  }

  dispatch(i: number): void | Promise<void> {
    if (i <= this.called) throw new UsageError("ERR_NEXT_TWICE", "Invalid middleware: next() called more than once");
    this.called = i;
    if (i === this.links.length) return this.last?.();
    const result = this.links[i]!(this.ctx, () => this.dispatch(i + 1));
    return isThenable(result) ? Promise.resolve(result).then(noop) : undefined;
  }
}
