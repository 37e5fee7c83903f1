/**
 * Route parameters as types: the parameters of a path pattern such as
 * `/rooms/:id/*`, inferred from the pattern itself, so that `ctx.params.id`
 * is a `string` on that route and `ctx.params.nope` does not compile.
 *
 * @module
 */

/**
 * Route parameters by name, as every event context has them: any name, each
 * a string. A route narrows it to its pattern's names ({@linkcode RouteParams}).
 *
 * @example
 * ```ts
 * import type { Params } from "@duplex/ws";
 *
 * const params: Params = { room: "lobby" };
 * ```
 */
export type Params = Readonly<Record<string, string>>;

/**
 * The names of a path pattern's parameters: each `:name` segment, and `*`
 * for a final wildcard.
 *
 * @typeParam Pattern The route's path pattern, as a string literal type.
 *
 * @example
 * ```ts
 * import type { ParamNames } from "@duplex/ws";
 *
 * const names: ParamNames<"/rooms/:id/files/*">[] = ["id", "*"];
 * ```
 */
export type ParamNames<Pattern extends string> =
  | (Pattern extends `${string}:${infer Rest}` ? (Rest extends `${infer Name}/${infer Tail}` ? Name | ParamNames<Tail> : Rest)
    : never)
  | (Pattern extends `${string}/*` ? "*" : never);

/**
 * The `ctx.params` of a route: one string per parameter of `Pattern`; any
 * name when the pattern is not a literal type.
 *
 * @typeParam Pattern The route's path pattern.
 *
 * @example
 * ```ts
 * import type { RouteParams } from "@duplex/ws";
 *
 * const params: RouteParams<"/rooms/:id"> = { id: "42" };
 * ```
 */
export type RouteParams<Pattern extends string> = string extends Pattern ? Params
  : { readonly [K in ParamNames<Pattern>]: string };
