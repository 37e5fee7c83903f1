/**
 * Contracts: typed, validated events and calls over `duplex.v1` (see
 * PROTOCOL.md, "Calls and events"). {@linkcode contract} declares them once,
 * with any Standard Schema validator; `serveContract()` serves them.
 *
 * @module
 */

import { describeValue } from "./_check.ts";
import { UsageError } from "../core/errors.ts";
import { MAX_NAME } from "../client/_wire.ts";
import type { CallDefinition, Contract, ContractDefinition, EventSchemas, StandardSchemaV1 } from "../client/_contract.ts";

const PARTS = ["client", "server", "calls"];
const CALL_FIELDS = ["input", "output", "errors", "stream", "idempotent"];

function invalid(message: string): UsageError {
  return new UsageError("ERR_INVALID_CONTRACT", `Invalid contract: ${message}`);
}

function isSchema(value: unknown): value is StandardSchemaV1 {
  const props = (value as { "~standard"?: { version?: unknown; validate?: unknown } } | null)?.["~standard"];
  return typeof props === "object" && props !== null && props.version === 1 && typeof props.validate === "function";
}

function checkName(name: string, where: string): void {
  if (name === "" || name.length > MAX_NAME) throw invalid(`${where} names must have 1 to ${MAX_NAME} characters, got ${JSON.stringify(name.slice(0, 40))}`);
}

function schemas(value: unknown, where: string): EventSchemas {
  if (value === undefined) return Object.freeze({});
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalid(`${where} must be an object of schemas, got ${describeValue(value)}`);
  const out: Record<string, StandardSchemaV1> = {};
  for (const [name, schema] of Object.entries(value)) {
    checkName(name, where);
    if (!isSchema(schema)) throw invalid(`${where}.${name} must be a Standard Schema (Zod, Valibot, ArkType…), got ${describeValue(schema)}`);
    out[name] = schema;
  }
  return Object.freeze(out);
}

function call(name: string, value: unknown): CallDefinition {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalid(`calls.${name} must be an object, got ${describeValue(value)}`);
  const def = value as Record<string, unknown>;
  for (const key of Object.keys(def)) {
    if (!CALL_FIELDS.includes(key)) throw invalid(`calls.${name}.${key} is not a call field (${CALL_FIELDS.join(", ")})`);
  }
  for (const key of ["input", "output"] as const) {
    if (def[key] !== undefined && !isSchema(def[key])) throw invalid(`calls.${name}.${key} must be a Standard Schema, got ${describeValue(def[key])}`);
  }
  for (const key of ["stream", "idempotent"] as const) {
    if (def[key] !== undefined && typeof def[key] !== "boolean") throw invalid(`calls.${name}.${key} must be a boolean, got ${describeValue(def[key])}`);
  }
  if (def.stream === true && def.idempotent === true) throw invalid(`calls.${name} cannot be both a stream and idempotent`);
  const out: Record<string, unknown> = { ...def, errors: schemas(def.errors, `calls.${name}.errors`) };
  return Object.freeze(out) as CallDefinition;
}

/**
 * Declares a contract: the events the client may send (`client`), the
 * events the server may send (`server`), and the calls (`calls`), each with
 * Standard Schema validators (Zod, Valibot, ArkType…). Declare it in a file
 * that the server imports and the client imports with `import type`: the
 * client's types then come from it with no generation step.
 *
 * The definition is checked (every schema a Standard Schema, names of 1 to
 * 128 characters, known call fields) and returned frozen, with every part
 * present. A call's `stream` and `idempotent` exclude each other (a stream
 * is not stored to be replayed).
 *
 * @typeParam D The definition, kept literal (`stream: true` stays `true`).
 * @param definition The events and calls.
 * @returns The contract, for `serveContract()` and `DuplexClient<typeof c>`.
 * @throws {UsageError} `ERR_INVALID_CONTRACT` for a malformed definition.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { contract } from "@duplex/ws";
 *
 * export const chat = contract({
 *   client: { typing: z.object({ room: z.string() }) },
 *   server: { said: z.object({ room: z.string(), text: z.string() }) },
 *   calls: {
 *     history: { input: z.object({ room: z.string() }), output: z.array(z.string()), idempotent: true },
 *     send: {
 *       input: z.object({ room: z.string(), text: z.string().max(500) }),
 *       errors: { TooFast: z.object({ retryInMs: z.number() }) },
 *     },
 *   },
 * });
 * ```
 */
export function contract<const D extends ContractDefinition>(definition: D): Contract<D> {
  if (typeof definition !== "object" || definition === null || Array.isArray(definition)) {
    throw invalid(`expected an object, got ${describeValue(definition)}`);
  }
  for (const key of Object.keys(definition)) {
    if (!PARTS.includes(key)) throw invalid(`${key} is not a part of a contract (client, server, calls)`);
  }
  const calls: Record<string, CallDefinition> = {};
  const given = (definition as ContractDefinition).calls;
  if (given !== undefined && (typeof given !== "object" || given === null || Array.isArray(given))) {
    throw invalid(`calls must be an object, got ${describeValue(given)}`);
  }
  for (const [name, def] of Object.entries(given ?? {})) {
    checkName(name, "calls");
    calls[name] = call(name, def);
  }
  return Object.freeze({
    client: schemas(definition.client, "client"),
    server: schemas(definition.server, "server"),
    calls: Object.freeze(calls),
  }) as unknown as Contract<D>;
}
