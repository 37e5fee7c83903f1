/**
 * Routers: by path with parameters ({@linkcode Router}), and by subprotocol
 * ({@linkcode subprotocols}). Both choose a branch in the upgrade phase and
 * run that branch's middleware for every later event of the connection.
 *
 * @module
 */

import { isToken } from "../core/_http_grammar.ts";
import type { RouteParams } from "./params.ts";
import { UsageError } from "../core/errors.ts";
import type { Next } from "./compose.ts";
import type { Peer } from "./context.ts";
import { HttpError } from "./errors.ts";
import { type Middleware, type Phase, type PhaseContext, type Phases, Pipeline } from "./pipeline.ts";

/**
 * The base of every router: in the upgrade phase a subclass picks a branch
 * (a {@linkcode Pipeline}) and calls `take()`; every later event of that
 * connection then runs the branch's chain before the rest of the app's.
 * Connections that took no branch go straight on.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example Route by a header
 * ```ts
 * import { Branching } from "./router.ts";
 * import { type PhaseContext, Pipeline } from "./pipeline.ts";
 * import type { Next } from "./compose.ts";
 *
 * class ByTenant extends Branching {
 *   readonly tenants = new Map<string, Pipeline>();
 *   upgrade(ctx: PhaseContext<"upgrade">, next: Next): void | Promise<void> {
 *     const branch = this.tenants.get(ctx.headers.get("x-tenant") ?? "");
 *     if (branch === undefined) return ctx.reject(404, "Unknown tenant");
 *     return this.take(ctx, branch, next);
 *   }
 * }
 * ```
 */
export abstract class Branching<S = Record<string, unknown>> implements Phases<S> {
  readonly #taken = new WeakMap<Peer<S>, Pipeline<S>>();

  /**
   * Sends the connection down `branch`: runs its upgrade chain now (then
   * `next`), and its chain of every later event.
   *
   * @param ctx The upgrade context.
   * @param branch The branch's middleware.
   * @param next The rest of the outer chain.
   * @returns What the branch's upgrade chain returned.
   */
  protected take(ctx: PhaseContext<"upgrade", S>, branch: Pipeline<S>, next: Next): void | Promise<void> {
    this.#taken.set(ctx.peer, branch);
    return branch.run("upgrade", ctx, next);
  }

  #follow<P extends Exclude<Phase, "upgrade">>(phase: P, ctx: PhaseContext<P, S>, next: Next): void | Promise<void> {
    const branch = this.#taken.get(ctx.peer);
    if (branch === undefined) return next();
    if (phase === "close") {
      const result = branch.run(phase, ctx, next);
      if (result === undefined) {
        this.#taken.delete(ctx.peer);
        return;
      }
      return result.finally(() => this.#taken.delete(ctx.peer));
    }
    return branch.run(phase, ctx, next);
  }

  /** Chooses a branch; see the router's documentation. */
  abstract upgrade(ctx: PhaseContext<"upgrade", S>, next: Next): void | Promise<void>;
  /** Runs the branch's `open` chain. */
  open(ctx: PhaseContext<"open", S>, next: Next): void | Promise<void> {
    return this.#follow("open", ctx, next);
  }
  /** Runs the branch's `message` chain. */
  message(ctx: PhaseContext<"message", S>, next: Next): void | Promise<void> {
    return this.#follow("message", ctx, next);
  }
  /** Runs the branch's `send` chain. */
  send(ctx: PhaseContext<"send", S>, next: Next): void | Promise<void> {
    return this.#follow("send", ctx, next);
  }
  /** Runs the branch's `ping` chain. */
  ping(ctx: PhaseContext<"ping", S>, next: Next): void | Promise<void> {
    return this.#follow("ping", ctx, next);
  }
  /** Runs the branch's `pong` chain. */
  pong(ctx: PhaseContext<"pong", S>, next: Next): void | Promise<void> {
    return this.#follow("pong", ctx, next);
  }
  /** Runs the branch's `drain` chain. */
  drain(ctx: PhaseContext<"drain", S>, next: Next): void | Promise<void> {
    return this.#follow("drain", ctx, next);
  }
  /** Runs the branch's `shutdown` chain. */
  shutdown(ctx: PhaseContext<"shutdown", S>, next: Next): void | Promise<void> {
    return this.#follow("shutdown", ctx, next);
  }
  /** Runs the branch's `close` chain. */
  close(ctx: PhaseContext<"close", S>, next: Next): void | Promise<void> {
    return this.#follow("close", ctx, next);
  }
  /** Runs the branch's `error` chain. */
  error(ctx: PhaseContext<"error", S>, next: Next): void | Promise<void> {
    return this.#follow("error", ctx, next);
  }
}

/** A compiled path pattern. */
interface Route<S> {
  pattern: string;
  segments: Segment[];
  rest: string | undefined; // the name of a trailing `*` parameter
  pipeline: Pipeline<S>;
}

type Segment = { literal: string } | { param: string };

/**
 * Routes connections by URL path. Patterns are `/`-separated segments:
 * literals, `:name` parameters (one non-empty segment, URL-decoded, put in
 * `ctx.params`) and an optional trailing `*` (the rest of the path, in
 * `ctx.params["*"]`). The first route that matches wins; its middleware
 * then runs for every event of the connection. A path no route matches is
 * refused with 404; a parameter that is not valid percent-encoding with
 * 400. Matching is case-sensitive and ignores the query string.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import { App, Router } from "@duplex/ws";
 *
 * const router = new Router()
 *   .route("/rooms/:id", { open: (ctx) => void ctx.send(`welcome to ${ctx.params.id}`) })
 *   .route("/files/*", { open: (ctx) => void ctx.send(`file ${ctx.params["*"]}`) });
 * const app = new App().use(router);
 * ```
 */
export class Router<S = Record<string, unknown>> extends Branching<S> {
  readonly #routes: Route<S>[] = [];

  /**
   * Adds a route.
   *
   * @typeParam Pattern The path pattern; its `:name` segments (and a final
   *   `*`) are the names of `ctx.params` in the route's middleware.
   * @param pattern A path such as `/rooms/:id`; starts with `/`.
   * @param middleware What runs for connections on this route, in order.
   * @returns This router.
   * @throws {UsageError} `ERR_INVALID_ROUTE` for a pattern that does not
   *   start with `/`, an empty or repeated parameter name, or a `*` that is
   *   not the last segment.
   */
  route<Pattern extends string>(pattern: Pattern, ...middleware: Middleware<S, RouteParams<Pattern>>[]): this {
    // The route's middleware sees its own parameters' names; the pipeline
    // stores it under the general `Params`, which every route's narrows.
    const pipeline = new Pipeline<S>().add(middleware as readonly Middleware<S>[]);
    this.#routes.push({ pattern, ...compilePattern(pattern), pipeline });
    return this;
  }

  /** Matches the path, sets `ctx.params`, and runs the route's upgrade chain; 404 when nothing matches. */
  upgrade(ctx: PhaseContext<"upgrade", S>, next: Next): void | Promise<void> {
    const path = ctx.path;
    for (const route of this.#routes) {
      const params = matchRoute(route, path);
      if (params === undefined) continue;
      ctx.params = params;
      return this.take(ctx, route.pipeline, next);
    }
    throw new HttpError(404, `Not Found: no WebSocket route for ${path}`);
  }
}

function compilePattern(pattern: string): { segments: Segment[]; rest: string | undefined } {
  if (typeof pattern !== "string" || !pattern.startsWith("/")) {
    throw new UsageError("ERR_INVALID_ROUTE", `Invalid route: ${JSON.stringify(pattern)} must start with /`);
  }
  const parts = pattern.slice(1).split("/");
  const segments: Segment[] = [];
  const names = new Set<string>();
  let rest: string | undefined;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === "*") {
      if (i !== parts.length - 1) throw new UsageError("ERR_INVALID_ROUTE", `Invalid route: * must be the last segment of ${pattern}`);
      rest = "*";
    } else if (part.startsWith(":")) {
      const name = part.slice(1);
      if (name === "" || names.has(name)) {
        throw new UsageError("ERR_INVALID_ROUTE", `Invalid route: empty or repeated parameter name in ${pattern}`);
      }
      names.add(name);
      segments.push({ param: name });
    } else {
      segments.push({ literal: part });
    }
  }
  return { segments, rest };
}

function matchRoute<S>(route: Route<S>, path: string): Record<string, string> | undefined {
  const parts = path.slice(1).split("/");
  const { segments, rest } = route;
  if (rest === undefined ? parts.length !== segments.length : parts.length < segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const part = parts[i]!;
    if ("literal" in segment) {
      if (part !== segment.literal) return undefined;
    } else {
      if (part === "") return undefined;
      params[segment.param] = decode(part);
    }
  }
  if (rest !== undefined) params[rest] = decode(parts.slice(segments.length).join("/"));
  return params;
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpError(400, `Bad Request: invalid percent-encoding in ${JSON.stringify(part)}`);
  }
}

/**
 * Options of {@linkcode subprotocols}.
 *
 * @example
 * ```ts
 * import type { SubprotocolOptions } from "@duplex/ws";
 *
 * const options: SubprotocolOptions = { required: false };
 * ```
 */
export interface SubprotocolOptions {
  /**
   * Whether a client must speak one of the subprotocols. When `true` (the
   * default), a client that offers none of them is refused with 400 and a
   * body that lists them; when `false`, it is upgraded without a
   * subprotocol and the chain goes on after this router.
   */
  required?: boolean;
}

/**
 * Routes connections by subprotocol. The keys of `routes` are the
 * subprotocols spoken here, in the server's order of preference; the first
 * one the client offered is chosen (whatever the client's own order), sent
 * back in `Sec-WebSocket-Protocol`, and its middleware runs for every event
 * of the connection: per-subprotocol handlers and codecs.
 *
 * @typeParam S The type of `ctx.state`.
 * @param routes Middleware (one or a list) by subprotocol, most preferred first.
 * @param options Whether a subprotocol is required (default `true`).
 * @returns The router, to `use()` or to put on a path route.
 * @throws {UsageError} `ERR_INVALID_ROUTE` for no subprotocol, or a name that is not an HTTP token.
 *
 * @example
 * ```ts
 * import { App, subprotocols } from "@duplex/ws";
 *
 * const app = new App().use(subprotocols({
 *   "chat.v2": { message: (ctx) => void ctx.send(`v2: ${String(ctx.data)}`) },
 *   "chat.v1": { message: (ctx) => void ctx.send(`v1: ${String(ctx.data)}`) },
 * }));
 * ```
 */
export function subprotocols<S = Record<string, unknown>>(
  routes: Record<string, Middleware<S> | readonly Middleware<S>[]>,
  options: SubprotocolOptions = {},
): Phases<S> {
  return new SubprotocolRouter(routes, options.required ?? true);
}

class SubprotocolRouter<S> extends Branching<S> {
  readonly #names: string[];
  readonly #branches = new Map<string, Pipeline<S>>();
  readonly #required: boolean;

  constructor(routes: Record<string, Middleware<S> | readonly Middleware<S>[]>, required: boolean) {
    super();
    this.#names = Object.keys(routes);
    if (this.#names.length === 0) throw new UsageError("ERR_INVALID_ROUTE", "Invalid subprotocols: give at least one");
    const bad = this.#names.find((name) => !isToken(name));
    if (bad !== undefined) {
      throw new UsageError("ERR_INVALID_ROUTE", `Invalid subprotocol: ${JSON.stringify(bad)} is not an HTTP token`);
    }
    for (const name of this.#names) {
      const middleware = routes[name]!;
      this.#branches.set(name, new Pipeline<S>().add(Array.isArray(middleware) ? middleware : [middleware as Middleware<S>]));
    }
    this.#required = required;
  }

  upgrade(ctx: PhaseContext<"upgrade", S>, next: Next): void | Promise<void> {
    const offered = ctx.offeredProtocols;
    const name = this.#names.find((n) => offered.includes(n));
    if (name !== undefined) {
      ctx.protocol = name;
      return this.take(ctx, this.#branches.get(name)!, next);
    }
    if (!this.#required) {
      ctx.protocol = "";
      return next();
    }
    const wanted = this.#names.join(", ");
    const got = offered.length === 0 ? "none" : offered.join(", ");
    throw new HttpError(400, `Bad Request: this endpoint speaks the subprotocols ${wanted}; the client offered ${got}`);
  }
}
