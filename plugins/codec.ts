/**
 * Codecs: typed messages instead of strings. {@linkcode json} parses each
 * text message as JSON and dispatches it on its `type` field.
 *
 * @module
 */

import { fitCloseReason } from "../core/_close_reason.ts";
import { CloseCode } from "../core/close_code.ts";
import { UsageError } from "../core/errors.ts";
import type { Next } from "./compose.ts";
import type { MessageContext } from "./context.ts";
import { CloseError } from "./errors.ts";
import type { Phases } from "./pipeline.ts";
import { isThenable } from "./_thenable.ts";
import type { OutputOf, StandardSchemaV1 } from "../client/_contract.ts";

/**
 * The handlers of a {@linkcode json} codec: one per message `type`. `M`
 * maps each type to its message's shape; each handler receives the parsed
 * message, typed by its key.
 *
 * The message types can be given as `json<Messages>(…)`, or inferred from
 * the handlers' annotated parameters (`say: (ctx, m: Say) => …`). Inferred,
 * the state type comes from where the codec is used (`new App<State>()`,
 * `app.route()`, `subprotocols()`), so it is declared once; given `M`
 * explicitly, give the state too (`json<Messages, State>`).
 *
 * @typeParam M Message shapes by type.
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import type { JsonHandlers } from "@duplex/ws";
 *
 * type Messages = { say: { type: "say"; text: string } };
 * const handlers: JsonHandlers<Messages> = {
 *   say: (ctx, message) => void ctx.send(JSON.stringify({ type: "said", text: message.text })),
 * };
 * ```
 */
export type JsonHandlers<M extends Record<string, { type: string }>, S = Record<string, unknown>> = {
  [K in keyof M]: (ctx: MessageContext<S>, message: M[K]) => unknown;
};

/**
 * Options of {@linkcode json}.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import type { JsonOptions } from "@duplex/ws";
 *
 * const options: JsonOptions = { unknown: "next" };
 * ```
 */
export interface JsonOptions {
  /**
   * What a message of a type without a handler does: `"close"` (the
   * default) closes with 1003; `"next"` passes it on, unparsed, to the
   * middleware after the codec.
   */
  unknown?: "close" | "next";
}

/**
 * The handlers of a {@linkcode json} codec with schemas: one per schema,
 * each receiving the message as its schema validated it.
 *
 * @typeParam M Schemas by message type.
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import type { ValidatedJsonHandlers } from "@duplex/ws";
 *
 * const schemas = { say: z.object({ type: z.literal("say"), text: z.string().max(500) }) };
 * const handlers: ValidatedJsonHandlers<typeof schemas> = { say: (ctx, m) => void ctx.send(m.text) };
 * ```
 */
export type ValidatedJsonHandlers<M extends Record<string, StandardSchemaV1>, S = Record<string, unknown>> = {
  [K in keyof M]: (ctx: MessageContext<S>, message: OutputOf<M[K]>) => unknown;
};

/**
 * Options of a {@linkcode json} codec with schemas.
 *
 * @typeParam M Schemas by message type.
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import * as v from "valibot";
 * import type { JsonSchemaOptions } from "@duplex/ws";
 *
 * const options: JsonSchemaOptions<{ say: v.ObjectSchema<{ text: v.StringSchema<undefined> }, undefined> }> = {
 *   schemas: { say: v.object({ text: v.string() }) },
 *   invalid: (ctx, issues) => void ctx.send(JSON.stringify({ type: "error", issues })),
 * };
 * ```
 */
export interface JsonSchemaOptions<M extends Record<string, StandardSchemaV1>, S = Record<string, unknown>> extends JsonOptions {
  /**
   * A Standard Schema (Zod, Valibot, ArkType…) per message type: it
   * validates the whole parsed message (its `type` included) before the
   * handler runs, and the handler receives the schema's output.
   */
  schemas: M;
  /**
   * What a message that fails its schema does: `"close"` (the default)
   * closes the connection with 1007 and the first issue as the reason; a
   * function receives the issues (and may answer), and the message is
   * dropped. The handler never runs.
   */
  invalid?: "close" | ((ctx: MessageContext<S>, issues: readonly StandardSchemaV1.Issue[]) => unknown);
}

/**
 * A JSON codec with messages dispatched on their `type`. Each text message
 * must be a JSON object with a string `type`; it goes to the handler of
 * that type. Only the `type` is checked: a handler checks the other fields
 * it reads. Faults close the connection:
 *
 * - a binary message: 1003 (unsupported data);
 * - text that is not JSON, or not an object with a string `type`: 1007;
 * - a type without a handler: 1003, or the next middleware with
 *   `{ unknown: "next" }`.
 *
 * To reply, `ctx.send(JSON.stringify(value))`.
 *
 * With `schemas` (a Standard Schema per type, from Zod, Valibot, ArkType…),
 * a message of a type with a schema is validated before its handler runs;
 * one that fails closes the connection with 1007 (or goes to `invalid`).
 *
 * @typeParam M Message shapes by type.
 * @typeParam S The type of `ctx.state`.
 * @param handlers One handler per message type.
 * @param options What to do with unknown types.
 * @returns Middleware for the `message` phase.
 * @throws {UsageError} `ERR_INVALID_MIDDLEWARE` when a handler is not a function.
 *
 * @example
 * ```ts
 * import { App, json } from "@duplex/ws";
 *
 * type Messages = {
 *   add: { type: "add"; a: number; b: number };
 *   echo: { type: "echo"; text: string };
 * };
 * const app = new App().use(json<Messages>({
 *   add: (ctx, m) => void ctx.send(JSON.stringify({ type: "sum", value: m.a + m.b })),
 *   echo: (ctx, m) => void ctx.send(JSON.stringify(m)),
 * }));
 * ```
 *
 * @example Validated with schemas
 * ```ts
 * import { z } from "zod";
 * import { App, json } from "@duplex/ws";
 *
 * const app = new App().use(json({
 *   say: (ctx, m) => void ctx.send(m.text.toUpperCase()),
 * }, {
 *   schemas: { say: z.object({ type: z.literal("say"), text: z.string().max(500) }) },
 * }));
 * ```
 *
 * @example The state type carried from the app
 * ```ts
 * import { App, json } from "@duplex/ws";
 *
 * type Say = { type: "say"; text: string };
 * const app = new App<{ name: string }>().route("/chat", json({
 *   say: (ctx, m: Say) => void ctx.send(`${ctx.state.name}: ${m.text}`),
 * }));
 * ```
 */
export function json<M extends Record<string, StandardSchemaV1>, S = Record<string, unknown>>(
  handlers: ValidatedJsonHandlers<M, S>,
  options: JsonSchemaOptions<M, S>,
): Phases<S>;
/**
 * A JSON codec with messages dispatched on their `type`, each message
 * checked by only its `type` (see the other signature for schemas).
 *
 * @typeParam M Message shapes by type.
 * @typeParam S The type of `ctx.state`.
 * @param handlers One handler per message type.
 * @param options What to do with unknown types.
 * @returns Middleware for the `message` phase.
 */
export function json<M extends Record<string, { type: string }>, S = Record<string, unknown>>(
  handlers: JsonHandlers<M, S>,
  options?: JsonOptions,
): Phases<S>;
export function json<S>(
  handlers: Record<string, (ctx: MessageContext<S>, message: any) => unknown>,
  options: JsonOptions & Partial<JsonSchemaOptions<Record<string, StandardSchemaV1>, S>> = {},
): Phases<S> {
  const table = new Map<string, (ctx: MessageContext<S>, message: any) => unknown>();
  for (const [type, handler] of Object.entries(handlers)) {
    if (typeof handler !== "function") {
      throw new UsageError("ERR_INVALID_MIDDLEWARE", `Invalid JSON handler: ${type} must be a function`);
    }
    table.set(type, handler as (ctx: MessageContext<S>, message: unknown) => unknown);
  }
  const schemas = new Map<string, StandardSchemaV1>();
  for (const [type, schema] of Object.entries(options.schemas ?? {})) {
    if (typeof schema?.["~standard"]?.validate !== "function") {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: schemas.${type} must be a Standard Schema (Zod, Valibot, ArkType…)`);
    }
    if (!table.has(type)) throw new UsageError("ERR_INVALID_OPTION", `Invalid option: schemas.${type} has no handler`);
    schemas.set(type, schema);
  }
  const invalid = options.invalid ?? "close";
  if (invalid !== "close" && typeof invalid !== "function") {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: invalid must be "close" or a function`);
  }
  const rejected = (ctx: MessageContext<S>, type: string, issues: readonly StandardSchemaV1.Issue[]): unknown => {
    if (invalid !== "close") return invalid(ctx, issues);
    const first = issues[0];
    const where = first?.path?.length ? ` at ${first.path.map((p) => String(typeof p === "object" ? p.key : p)).join(".")}` : "";
    throw new CloseError(CloseCode.InvalidPayload, fitCloseReason(`Invalid ${type}${where}: ${first?.message ?? "rejected by its schema"}`));
  };
  const passUnknown = options.unknown === "next";
  return {
    message(ctx: MessageContext<S>, next: Next): unknown {
      if (typeof ctx.data !== "string") {
        throw new CloseError(CloseCode.UnsupportedData, "Expected a JSON text message");
      }
      let message: unknown;
      try {
        message = JSON.parse(ctx.data);
      } catch {
        throw new CloseError(CloseCode.InvalidPayload, "Invalid JSON");
      }
      if (typeof message !== "object" || message === null || Array.isArray(message)) {
        throw new CloseError(CloseCode.InvalidPayload, "Expected a JSON object");
      }
      const type = (message as { type?: unknown }).type;
      if (typeof type !== "string") throw new CloseError(CloseCode.InvalidPayload, "Expected a string type");
      const handler = table.get(type);
      const schema = schemas.get(type);
      if (handler !== undefined && schema !== undefined) {
        const result = schema["~standard"].validate(message);
        if (!isThenable(result)) return result.issues ? rejected(ctx, type, result.issues) : handler(ctx, result.value);
        return result.then((r) => (r.issues ? rejected(ctx, type, r.issues) : handler(ctx, r.value)));
      }
      if (handler !== undefined) return handler(ctx, message);
      if (passUnknown) return next();
      throw new CloseError(CloseCode.UnsupportedData, fitCloseReason(`Unknown message type: ${type}`));
    },
  };
}
