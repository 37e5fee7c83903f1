/**
 * Middleware as apps and routers take it: an object of per-event
 * {@linkcode Phases}, or one function that runs on every event. A
 * {@linkcode Pipeline} turns a list of them into one composed chain per
 * event.
 *
 * @module
 */

import type { Params } from "./params.ts";
import { UsageError } from "../core/errors.ts";
import { checkMiddleware, describeValue } from "./_check.ts";
import { type Composed, compose, type Handle, type Next } from "./compose.ts";
import type {
  CloseContext,
  ControlContext,
  DrainContext,
  ErrorContext,
  EventContext,
  MessageContext,
  OpenContext,
  SendContext,
  ShutdownContext,
  UpgradeContext,
} from "./context.ts";

/**
 * Middleware by event: each entry is `(ctx, next)` for that event. Leave
 * out the events a middleware does not care about.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import type { Phases } from "@duplex/ws";
 *
 * const shout: Phases = {
 *   message(ctx, next) {
 *     if (typeof ctx.data === "string") ctx.data = ctx.data.toUpperCase();
 *     return next();
 *   },
 * };
 * ```
 */
export interface Phases<S = Record<string, unknown>, P extends Params = Params> {
  /** The HTTP request, before the 101. */
  upgrade?: Handle<UpgradeContext<S, P>>;
  /** The connection opened. */
  open?: Handle<OpenContext<S, P>>;
  /** A message arrived. */
  message?: Handle<MessageContext<S, P>>;
  /** A message is being sent; call `next()` synchronously, or not at all to drop it. */
  send?: Handle<SendContext<S, P>>;
  /** A ping arrived. */
  ping?: Handle<ControlContext<S, P>>;
  /** A pong arrived. */
  pong?: Handle<ControlContext<S, P>>;
  /** The output drained below the high-water mark. */
  drain?: Handle<DrainContext<S, P>>;
  /** The server is shutting down: runs before the connection's close frame. */
  shutdown?: Handle<ShutdownContext<S, P>>;
  /** The connection closed. */
  close?: Handle<CloseContext<S, P>>;
  /** The peer broke the protocol. */
  error?: Handle<ErrorContext<S, P>>;
}

/**
 * What `use()` takes: per-event {@linkcode Phases}, or one function run on
 * every event (tell them apart by `ctx.type`).
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example A logger for every event
 * ```ts
 * import type { Middleware } from "@duplex/ws";
 *
 * const log: Middleware = async (ctx, next) => {
 *   const start = Date.now();
 *   await next();
 *   console.log(ctx.id, ctx.type, `${Date.now() - start} ms`);
 * };
 * ```
 */
export type Middleware<S = Record<string, unknown>, P extends Params = Params> = Phases<S, P> | Handle<EventContext<S, P>>;

/**
 * The events, in the order of a connection's life.
 *
 * @example
 * ```ts
 * import { PHASES } from "./pipeline.ts";
 *
 * console.log(PHASES[0]); // "upgrade"
 * ```
 */
export const PHASES: readonly Phase[] = ["upgrade", "open", "message", "send", "ping", "pong", "drain", "shutdown", "close", "error"];

/**
 * One event's name.
 *
 * @example
 * ```ts
 * import type { Phase } from "@duplex/ws";
 *
 * const phase: Phase = "message";
 * ```
 */
export type Phase = "upgrade" | "open" | "message" | "send" | "ping" | "pong" | "drain" | "shutdown" | "close" | "error";

/**
 * The composed chain of every event, `undefined` for an event no
 * middleware handles.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import type { Chains } from "@duplex/ws";
 *
 * function handlesMessages(chains: Chains): boolean {
 *   return chains.message !== undefined;
 * }
 * ```
 */
export type Chains<S = Record<string, unknown>> = { readonly [P in Phase]: Composed<PhaseContext<P, S>> | undefined };

/**
 * A list of middleware compiled into one chain per event; the chain of an
 * event no middleware handles is `undefined`, so that event costs nothing.
 * Apps and routers are built on it.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import { Pipeline } from "./pipeline.ts";
 *
 * const pipeline = new Pipeline().add([{ open: (ctx) => void ctx.send("hi") }]);
 * console.log(pipeline.chain("open") !== undefined, pipeline.chain("message")); // true undefined
 * ```
 */
export class Pipeline<S = Record<string, unknown>> {
  readonly #middleware: Middleware<S>[] = [];
  #chains: Chains<S> | undefined;

  /**
   * Appends middleware.
   *
   * @param middleware Phases objects or functions.
   * @returns This pipeline.
   * @throws {UsageError} `ERR_INVALID_MIDDLEWARE` for anything else.
   */
  add(middleware: readonly Middleware<S>[]): this {
    for (const item of middleware) {
      if (typeof item !== "function" && (typeof item !== "object" || item === null)) {
        throw new UsageError("ERR_INVALID_MIDDLEWARE", `Invalid middleware: expected a function or an object of phases, got ${describeValue(item)}`);
      }
      checkMiddleware(item, PHASES);
      if (typeof item === "object") {
        for (const phase of PHASES) {
          const handle = item[phase];
          if (handle !== undefined && typeof handle !== "function") {
            throw new UsageError("ERR_INVALID_MIDDLEWARE", `Invalid middleware: ${phase} must be a function, got ${describeValue(handle)}`);
          }
        }
      }
      this.#middleware.push(item);
    }
    this.#chains = undefined;
    return this;
  }

  /**
   * The composed chain of one event, or `undefined` when no middleware
   * handles it. Errors propagate to the caller.
   *
   * @param phase The event.
   * @returns The chain.
   */
  chain<P extends Phase>(phase: P): Composed<PhaseContext<P, S>> | undefined {
    return this.chains()[phase] as Composed<PhaseContext<P, S>> | undefined;
  }

  /**
   * Every event's composed chain, compiled on first use after a change.
   * Read a fixed event by name (`chains().message`) on a hot path: one
   * call site that reads many events by a variable key (`chain(phase)`)
   * is a slow, megamorphic lookup for the engine.
   *
   * @returns The chains, by event.
   */
  chains(): Chains<S> {
    return this.#chains ??= this.#compile();
  }

  /**
   * Runs one event's chain, then `last`; runs `last` alone when no
   * middleware handles the event.
   *
   * @param phase The event.
   * @param ctx Its context.
   * @param last What runs after the chain.
   * @returns A promise when some middleware was async.
   */
  run<P extends Phase>(phase: P, ctx: PhaseContext<P, S>, last?: Next): void | Promise<void> {
    const chain = this.chain(phase);
    return chain === undefined ? last?.() : chain(ctx, last);
  }

  #compile(): Chains<S> {
    const chains = {} as { [P in Phase]: Composed<any> | undefined };
    for (const phase of PHASES) {
      const handles: Handle<any>[] = [];
      for (const item of this.#middleware) {
        if (typeof item === "function") handles.push(item);
        else if (item[phase] !== undefined) handles.push(CALL[phase](item));
      }
      chains[phase] = handles.length === 0 ? undefined : compose(handles);
    }
    return chains;
  }
}

/**
 * A link that calls one event's method of a {@linkcode Phases} object, read
 * at call time (a method replaced after `use()` is the one that runs, with
 * the object as `this`). One arrow per event, not one that reads
 * `item[phase]`: a fixed name is a fast, monomorphic lookup, where one
 * arrow shared by every event and middleware would be a megamorphic one on
 * every message.
 */
const CALL: { readonly [P in Phase]: (item: Phases<any>) => Handle<any> } = {
  upgrade: (item) => (ctx, next) => item.upgrade!(ctx, next),
  open: (item) => (ctx, next) => item.open!(ctx, next),
  message: (item) => (ctx, next) => item.message!(ctx, next),
  send: (item) => (ctx, next) => item.send!(ctx, next),
  ping: (item) => (ctx, next) => item.ping!(ctx, next),
  pong: (item) => (ctx, next) => item.pong!(ctx, next),
  drain: (item) => (ctx, next) => item.drain!(ctx, next),
  shutdown: (item) => (ctx, next) => item.shutdown!(ctx, next),
  close: (item) => (ctx, next) => item.close!(ctx, next),
  error: (item) => (ctx, next) => item.error!(ctx, next),
};

/**
 * The context type of one event.
 *
 * @typeParam P The event.
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import type { PhaseContext } from "@duplex/ws";
 *
 * function length(ctx: PhaseContext<"message">): number {
 *   return ctx.data.length;
 * }
 * ```
 */
export type PhaseContext<P extends Phase, S = Record<string, unknown>> = Parameters<NonNullable<Phases<S>[P]>>[0];
