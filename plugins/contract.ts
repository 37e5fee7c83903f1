/**
 * Contracts: typed, validated events and calls over `duplex.v1` (see
 * PROTOCOL.md, "Calls and events"). {@linkcode contract} declares them once,
 * with any Standard Schema validator; `serveContract()` serves them.
 *
 * @module
 */

import { checkOptions, describeValue, positiveIntegerOption } from "./_check.ts";
import { isThenable } from "./_thenable.ts";
import { claim, closeQuietly, connOf, decodeOnce, isClaimed, reportTo, sendMessage, writeFrame } from "./_v1.ts";
import { fitCloseReason } from "../core/_close_reason.ts";
import { CloseCode } from "../core/close_code.ts";
import { UsageError } from "../core/errors.ts";
import { ReadyState } from "../core/state.ts";
import type { Next } from "./compose.ts";
import type { CloseContext, MessageContext, Peer, UpgradeContext } from "./context.ts";
import { type Clock, type Connection, systemClock } from "./hooks.ts";
import { encode, MAX_NAME, PROTOCOL_V1, type ServerMessage, WireClose, type WireFailure, type WireIssue } from "../client/_wire.ts";
import type {
  CallDefinition,
  CallDefinitionOf,
  CallName,
  ClientEventName,
  Contract,
  ContractDefinition,
  EventSchemas,
  InputOf,
  IsStream,
  OutputOf,
  ServerEventName,
  StandardSchemaV1,
} from "../client/_contract.ts";

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

// ---- serving ----

/**
 * An error a call's handler throws to answer the call with one of its
 * declared errors: the client receives a `failed` answer with this `name`
 * and `data` (typed from the contract). Any other throw reaches the client
 * as name `"Error"` with a generic message, and the error goes to `onError`.
 *
 * Inside a handler, `throw ctx.error(name, data)` checks the name and the
 * data's type against the call's declared errors.
 *
 * @typeParam N The error's name.
 * @typeParam D Its data.
 *
 * @example
 * ```ts
 * import { CallError } from "@duplex/ws";
 *
 * function checkRate(sentAt: number): void {
 *   const wait = sentAt + 1000 - Date.now();
 *   if (wait > 0) throw new CallError("TooFast", { retryInMs: wait });
 * }
 * ```
 */
export class CallError<N extends string = string, D = unknown> extends Error {
  /** The declared error's name. */
  readonly errorName: N;
  /** The declared error's data. */
  readonly data: D;

  /**
   * Creates the error.
   *
   * @param name The declared error's name (a key of the call's `errors`).
   * @param data Its data, valid against the declared schema.
   * @param message The message the client gets. Default: the name.
   */
  constructor(name: N, data: D, message: string = name) {
    super(message);
    this.name = "CallError";
    this.errorName = name;
    this.data = data;
  }
}

/**
 * The input a call's handler receives: its input schema's output type
 * (validated; transforms applied).
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { contract, type HandlerInput } from "@duplex/ws";
 *
 * const c = contract({ calls: { len: { input: z.string().transform((s) => s.length) } } });
 * const n: HandlerInput<typeof c, "len"> = 3;
 * ```
 */
export type HandlerInput<C, N> = CallDefinitionOf<C, N> extends { readonly input?: infer S } ? OutputOf<S> : undefined;

/**
 * What a call's handler returns (a stream's: yields): its output schema's
 * input type.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { contract, type HandlerOutput } from "@duplex/ws";
 *
 * const c = contract({ calls: { now: { output: z.number() } } });
 * const out: HandlerOutput<typeof c, "now"> = Date.now();
 * ```
 */
export type HandlerOutput<C, N> = CallDefinitionOf<C, N> extends { readonly output?: infer S } ? InputOf<S> : undefined;

/**
 * The declared errors of a call: a schema per name (empty when none).
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { type CallErrorSchemas, contract } from "@duplex/ws";
 *
 * const c = contract({ calls: { send: { errors: { TooFast: z.number() } } } });
 * const names: (keyof CallErrorSchemas<typeof c, "send">)[] = ["TooFast"];
 * ```
 */
export type CallErrorSchemas<C, N> = CallDefinitionOf<C, N> extends { readonly errors?: infer E extends EventSchemas } ? E : Record<never, never>;

/**
 * What a call's handler gets besides its input: the signal that aborts it,
 * the connection and its state, and typed helpers to emit server events and
 * build declared errors.
 *
 * @typeParam C The contract.
 * @typeParam N The call's name.
 * @typeParam S The type of the connection's state.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { type CallContext, contract } from "@duplex/ws";
 *
 * const chat = contract({ calls: { send: { input: z.string(), errors: { TooFast: z.object({ retryInMs: z.number() }) } } } });
 * function refuse(ctx: CallContext<typeof chat, "send">): never {
 *   throw ctx.error("TooFast", { retryInMs: 500 });
 * }
 * ```
 */
export interface CallContext<C extends Contract<any>, N extends CallName<C> = CallName<C>, S = Record<string, unknown>> {
  /** Aborts when the client cancels the call, or (unless it is idempotent) when the connection closes. */
  readonly signal: AbortSignal;
  /** The call's name. */
  readonly name: N;
  /** The call's id on its connection. */
  readonly id: number;
  /** The idempotency key, for an idempotent call sent with one. */
  readonly key: string | undefined;
  /** The connection (id, request, params; `peer.send` goes through the app's `send` middleware). */
  readonly peer: Peer<S>;
  /** The connection's state (`peer.state`). */
  readonly state: S;
  /**
   * Sends a server event to this connection (validated when `validateOutput` is on).
   *
   * @returns `false` when the connection is closed or its output is over the high-water mark.
   */
  emit<E extends ServerEventName<C>>(name: E, data: InputOf<C["server"][E]>): boolean;
  /**
   * Builds one of the call's declared errors, to throw.
   *
   * @returns The error.
   */
  error<E extends keyof CallErrorSchemas<C, N> & string>(name: E, data: InputOf<CallErrorSchemas<C, N>[E]>, message?: string): CallError<E, InputOf<CallErrorSchemas<C, N>[E]>>;
}

/**
 * What a client event's handler gets besides the data.
 *
 * @typeParam C The contract.
 * @typeParam S The type of the connection's state.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { type ClientEventContext, contract } from "@duplex/ws";
 *
 * const chat = contract({ client: { typing: z.string() }, server: { typing: z.string() } });
 * function echo(room: string, ctx: ClientEventContext<typeof chat>): void {
 *   ctx.emit("typing", room);
 * }
 * ```
 */
export interface ClientEventContext<C extends Contract<any>, S = Record<string, unknown>> {
  /** Aborts when the connection closes. */
  readonly signal: AbortSignal;
  /** The connection. */
  readonly peer: Peer<S>;
  /** The connection's state (`peer.state`). */
  readonly state: S;
  /**
   * Sends a server event to this connection.
   *
   * @returns `false` when the connection is closed or its output is over the high-water mark.
   */
  emit<E extends ServerEventName<C>>(name: E, data: InputOf<C["server"][E]>): boolean;
}

/**
 * The handler of one call: gets the validated input, returns the output
 * (or a promise of it), or throws; a stream's handler is an async
 * generator that yields the items.
 *
 * @typeParam C The contract.
 * @typeParam N The call's name.
 * @typeParam S The type of the connection's state.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { type CallHandler, contract } from "@duplex/ws";
 *
 * const math = contract({ calls: { add: { input: z.tuple([z.number(), z.number()]), output: z.number() } } });
 * const add: CallHandler<typeof math, "add"> = ([a, b]) => a + b;
 * ```
 */
export type CallHandler<C extends Contract<any>, N extends CallName<C>, S = Record<string, unknown>> = IsStream<C, N> extends true
  ? (input: HandlerInput<C, N>, ctx: CallContext<C, N, S>) => AsyncIterable<HandlerOutput<C, N>>
  : (input: HandlerInput<C, N>, ctx: CallContext<C, N, S>) => HandlerOutput<C, N> | PromiseLike<HandlerOutput<C, N>>;

/**
 * One handler per call of the contract.
 *
 * @typeParam C The contract.
 * @typeParam S The type of the connection's state.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { type CallHandlers, contract } from "@duplex/ws";
 *
 * const math = contract({ calls: { neg: { input: z.number(), output: z.number() } } });
 * const calls: CallHandlers<typeof math> = { neg: (n) => -n };
 * ```
 */
export type CallHandlers<C extends Contract<any>, S = Record<string, unknown>> = { [N in CallName<C>]: CallHandler<C, N, S> };

/**
 * Handlers of the client's events (each optional: an event without one is
 * validated, then dropped).
 *
 * @typeParam C The contract.
 * @typeParam S The type of the connection's state.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { contract, type EventHandlers } from "@duplex/ws";
 *
 * const chat = contract({ client: { typing: z.object({ room: z.string() }) } });
 * const events: EventHandlers<typeof chat> = { typing: ({ room }) => console.log("typing in", room) };
 * ```
 */
export type EventHandlers<C extends Contract<any>, S = Record<string, unknown>> = {
  [N in ClientEventName<C>]?: (data: OutputOf<C["client"][N]>, ctx: ClientEventContext<C, S>) => unknown;
};

/**
 * Options of {@linkcode serveContract}: the handlers, and the limits.
 *
 * @typeParam C The contract.
 * @typeParam S The type of the connection's state.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { contract, type ServeContractOptions } from "@duplex/ws";
 *
 * const math = contract({ calls: { neg: { input: z.number(), output: z.number() } } });
 * const options: ServeContractOptions<typeof math> = { calls: { neg: (n) => -n }, maxCallsInFlight: 16 };
 * ```
 */
export type ServeContractOptions<C extends Contract<any>, S = Record<string, unknown>> = {
  /** Handlers of the client's events. */
  events?: EventHandlers<C, S>;
  /**
   * Validates what the server sends too: results, stream items, declared
   * errors' data and server events (for development and tests). A result
   * that fails is answered `failed` with a generic message and reported to
   * `onError`; an emit that fails throws (or, with an async schema, is
   * dropped and reported). Default `false`.
   */
  validateOutput?: boolean;
  /** Calls one connection may have running at once; a call beyond is answered `busy` and not run. Default 100. */
  maxCallsInFlight?: number;
  /**
   * Calls running plus client events waiting for their handler, on one
   * connection; a message beyond closes the connection with 4429.
   * Default 1,024.
   */
  maxQueued?: number;
  /** How long the outcome of an idempotent call is kept for a retry with the same key, in ms. Default 60,000. */
  dedupeWindowMs?: number;
  /** Most idempotency keys remembered, across connections; the oldest go first. Default 10,000. */
  maxDedupeKeys?: number;
  /**
   * The namespace of a connection's idempotency keys (say, the user id), so
   * that keys of different users never meet. Default: one namespace for all
   * (keys are random per client).
   */
  dedupeScope?: (peer: Peer<S>) => string;
  /** The clock of the dedupe window. Default: the system's. */
  clock?: Clock;
  /** Where errors go: a handler's undeclared throw, an output that failed its schema, a throwing event handler. Default: `console.error`. */
  onError?: (error: unknown) => void;
} & ([CallName<C>] extends [never] ? {
    /** One handler per call. */
    calls?: CallHandlers<C, S>;
  }
  : {
    /** One handler per call. */
    calls: CallHandlers<C, S>;
  });

/**
 * A served contract: middleware (for `app.use()`, `app.route()` or a Hono
 * route's `use`) plus a server-side emit.
 *
 * @typeParam C The contract.
 * @typeParam S The type of the connection's state.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { App, contract, type ContractServer, serveContract } from "@duplex/ws";
 *
 * const news = contract({ server: { headline: z.string() } });
 * const served: ContractServer<typeof news> = serveContract(news, {});
 * new App().use(served, { open: (ctx) => void served.emit(ctx.peer, "headline", "Hello") });
 * ```
 */
export interface ContractServer<C extends Contract<any>, S = Record<string, unknown>> {
  /** Middleware: chooses `duplex.v1` when the client offers it and nothing else chose a subprotocol. */
  upgrade(ctx: UpgradeContext<S>, next: Next): void | Promise<void>;
  /** Middleware: serves calls and events on `duplex.v1` connections; anything else goes on to `next()`. */
  message(ctx: MessageContext<S>, next: Next): void | Promise<void>;
  /**
   * Without arguments: stops serving. Running calls are aborted and every
   * `duplex.v1` connection it served is closed with 1001.
   *
   * @returns Resolves when done.
   */
  close(): Promise<void>;
  /** Middleware: a closed connection aborts its calls (idempotent ones keep running for a retry). */
  close(ctx: CloseContext<S>, next: Next): void | Promise<void>;
  /**
   * Sends a server event to one connection or many, encoded once.
   *
   * @param to A connection (or peer), or several.
   * @param name The event's name.
   * @param data Its data (validated first when `validateOutput` is on).
   * @returns The number of connections it was written to (closed ones are skipped).
   * @throws {UsageError} `ERR_UNKNOWN_EVENT` for a name the contract does not declare; `ERR_INVALID_OUTPUT` when validation is on and the data fails.
   */
  emit<E extends ServerEventName<C>>(to: Connection<any> | Iterable<Connection<any>>, name: E, data: InputOf<C["server"][E]>): number;
}

/**
 * Serves a contract over `duplex.v1`: returns middleware that answers the
 * client's calls with the handlers, hands the client's events to theirs,
 * and sends server events.
 *
 * - Input is validated with the call's schema; a call whose input fails is
 *   answered `invalid` with the issues and never reaches its handler. An
 *   event that is not declared or whose data fails closes the connection
 *   with 4422.
 * - A handler returns the result (answered `result`), throws a
 *   {@linkcode CallError} (answered `failed` with its name and data) or
 *   anything else (`failed`, name `"Error"`, a generic message; the error
 *   goes to `onError`). A stream's handler is an async generator: it is
 *   pulled only while the client has credit and the connection's output is
 *   drained, each value is sent as an `item`, and the end as `result`.
 * - `ctx.signal` aborts on a `cancel` (answered `cancelled` at once) and
 *   when the connection closes; a stream's generator is then finished
 *   with `return()`. An idempotent call keeps running when its connection
 *   closes, so that the client's retry (same key, next connection) gets its
 *   outcome: a key runs its handler at most once within `dedupeWindowMs`.
 * - Limits: `maxCallsInFlight` per connection (beyond: `busy`, the
 *   connection keeps serving), `maxQueued` (beyond: close 4429). JSON
 *   nested deeper than 64 levels or malformed closes with 4400; an unknown
 *   call is answered `not_found`.
 * - With {@linkcode reliable} on the same connection, each layer passes the
 *   other's messages on; put them in either order.
 *
 * @typeParam C The contract.
 * @typeParam S The type of the connection's state.
 * @param contract The contract, from {@linkcode contract}.
 * @param options The handlers and limits.
 * @returns The served contract: use it as middleware.
 * @throws {UsageError} `ERR_INVALID_OPTION` for an unknown option, a bad limit, or a call without a handler.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { App, contract, serve, serveContract } from "@duplex/ws";
 *
 * const chat = contract({
 *   server: { said: z.object({ text: z.string() }) },
 *   calls: {
 *     send: { input: z.object({ text: z.string().max(500) }), output: z.number(), errors: { Empty: z.null() } },
 *     count: { input: z.number().int().max(100), output: z.number(), stream: true },
 *   },
 * });
 * const served = serveContract(chat, {
 *   calls: {
 *     send({ text }, ctx) {
 *       if (text.trim() === "") throw ctx.error("Empty", null);
 *       ctx.emit("said", { text });
 *       return text.length;
 *     },
 *     async *count(n, ctx) {
 *       for (let i = 1; i <= n && !ctx.signal.aborted; i++) yield i;
 *     },
 *   },
 * });
 * const server = await serve(new App().use(served), { port: 0 });
 * await server.close();
 * ```
 */
export function serveContract<C extends Contract<any>, S = Record<string, unknown>>(
  contract: C,
  options: ServeContractOptions<C, S>,
): ContractServer<C, S> {
  return new ContractLayer<C, S>(contract, options as unknown as ServeContractOptions<Contract, S>);
}

/**
 * An abort flag whose `AbortSignal` is made only when a handler asks for it:
 * an `AbortController` costs more than a small call's validation.
 */
class Abort {
  #controller: AbortController | undefined;
  aborted = false;

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.aborted) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.#controller?.abort();
  }
}

/** What a finished call answers (without its id). */
type Outcome =
  | { readonly type: "result"; readonly value: unknown }
  | { readonly type: "error"; readonly code: "failed" | "invalid"; readonly message: string; readonly error?: WireFailure; readonly issues?: readonly WireIssue[] };

/** One call on one connection (for a retried idempotent call: its wait for the run). */
interface Run<S> {
  readonly cs: ConnState<S>;
  readonly id: number;
  readonly name: string;
  readonly abort: Abort;
  /** Items the client still accepts (a stream). */
  credit: number;
  /** Wakes a stream waiting for credit. */
  wake: (() => void) | undefined;
  ended: boolean;
  /** The idempotent run it waits on. */
  entry: DedupeEntry<S> | undefined;
}

/** An idempotency key's run: in flight (`outcome` absent) or done. */
interface DedupeEntry<S> {
  readonly key: string;
  readonly hash: number;
  readonly abort: Abort;
  readonly waiters: Set<Run<S>>;
  outcome: Outcome | undefined;
  /** When it may be forgotten (set once done). */
  expires: number;
}

interface QueuedEvent<S> {
  readonly name: string;
  readonly data: unknown;
  readonly ctx: MessageContext<S>;
}

/** One `duplex.v1` connection. */
interface ConnState<S> {
  readonly conn: Connection<S>;
  readonly calls: Map<number, Run<S>>;
  readonly events: QueuedEvent<S>[];
  eventsRunning: boolean;
  /** Aborts when the connection closes (events' signal). */
  readonly abort: Abort;
  closed: boolean;
  /** A write met backpressure: streams wait for `drained()` before pulling. */
  full: boolean;
  /** The wait for the output to drain, while one runs. */
  draining: Promise<void> | undefined;
}

const SERVE_OPTIONS = ["calls", "events", "validateOutput", "maxCallsInFlight", "maxQueued", "dedupeWindowMs", "maxDedupeKeys", "dedupeScope", "clock", "onError"];
/** Issues sent with an `invalid` answer, at most. */
const MAX_ISSUES = 20;
/** Characters of one issue's message, at most. */
const MAX_ISSUE_MESSAGE = 500;
const MAX_CREDIT = Number.MAX_SAFE_INTEGER;

type Validation = StandardSchemaV1.Result<unknown>;

/** Validates, staying synchronous when the schema is. A throwing schema rejects/throws. */
function validate(schema: StandardSchemaV1, value: unknown): Validation | Promise<Validation> {
  return schema["~standard"].validate(value);
}

function wireIssues(issues: readonly StandardSchemaV1.Issue[]): WireIssue[] {
  return issues.slice(0, MAX_ISSUES).map((issue) => {
    const message = String(issue.message).slice(0, MAX_ISSUE_MESSAGE);
    if (issue.path === undefined || issue.path.length === 0) return { message };
    const path = issue.path.map((p) => {
      const key = typeof p === "object" && p !== null ? p.key : p;
      return typeof key === "number" ? key : String(key);
    });
    return { message, path };
  });
}

function describeIssues(issues: readonly StandardSchemaV1.Issue[]): string {
  return wireIssues(issues).map((i) => (i.path ? `${i.path.join(".")}: ${i.message}` : i.message)).join("; ");
}

/** A 53-bit hash of a string (cyrb53): tells a retried key's input from another input. */
function hash(text: string): number {
  let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

const GENERIC_FAILURE: Outcome = { type: "error", code: "failed", message: "The call failed", error: { name: "Error" } };

class ContractLayer<C extends Contract<any>, S> implements ContractServer<C, S> {
  readonly #contract: Contract;
  readonly #calls: Record<string, (input: unknown, ctx: unknown) => unknown>;
  readonly #events: Record<string, ((data: unknown, ctx: unknown) => unknown) | undefined>;
  readonly #validateOutput: boolean;
  readonly #maxCalls: number;
  readonly #maxQueued: number;
  readonly #window: number;
  readonly #maxKeys: number;
  readonly #scope: ((peer: Peer<S>) => string) | undefined;
  readonly #clock: Clock;
  readonly #onError: (error: unknown) => void;
  /** To `onError` (a bound function: also handed to the shared writes). */
  readonly #report = (error: unknown): void => reportTo(this.#onError, "contract", error);
  readonly #conns = new Map<Connection<S>, ConnState<S>>();
  /** Idempotency keys, oldest first. */
  readonly #keys = new Map<string, DedupeEntry<S>>();
  #closed = false;

  constructor(contract: Contract, options: ServeContractOptions<Contract, S>) {
    if (typeof contract !== "object" || contract === null || typeof contract.calls !== "object" || typeof contract.client !== "object") {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid contract: expected what contract() returns, got ${describeValue(contract)}`);
    }
    checkOptions(options, SERVE_OPTIONS, "serveContract()");
    const calls = (options.calls ?? {}) as Record<string, unknown>;
    const events = (options.events ?? {}) as Record<string, unknown>;
    checkOptions(calls, Object.keys(contract.calls), "calls");
    checkOptions(events, Object.keys(contract.client), "events");
    for (const name of Object.keys(contract.calls)) {
      if (typeof calls[name] !== "function") {
        throw new UsageError("ERR_INVALID_OPTION", `Invalid option: calls.${name} must be a function (the contract declares it), got ${describeValue(calls[name])}`);
      }
    }
    for (const [name, handler] of Object.entries(events)) {
      if (handler !== undefined && typeof handler !== "function") {
        throw new UsageError("ERR_INVALID_OPTION", `Invalid option: events.${name} must be a function, got ${describeValue(handler)}`);
      }
    }
    for (const name of ["dedupeScope", "onError"] as const) {
      if (options[name] !== undefined && typeof options[name] !== "function") {
        throw new UsageError("ERR_INVALID_OPTION", `Invalid option: ${name} must be a function, got ${describeValue(options[name])}`);
      }
    }
    if (options.validateOutput !== undefined && typeof options.validateOutput !== "boolean") {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: validateOutput must be a boolean, got ${describeValue(options.validateOutput)}`);
    }
    this.#contract = contract;
    this.#calls = calls as Record<string, (input: unknown, ctx: unknown) => unknown>;
    this.#events = events as Record<string, ((data: unknown, ctx: unknown) => unknown) | undefined>;
    this.#validateOutput = options.validateOutput ?? false;
    this.#maxCalls = positiveIntegerOption("maxCallsInFlight", options.maxCallsInFlight, 100);
    this.#maxQueued = positiveIntegerOption("maxQueued", options.maxQueued, 1024);
    this.#window = positiveIntegerOption("dedupeWindowMs", options.dedupeWindowMs, 60_000);
    this.#maxKeys = positiveIntegerOption("maxDedupeKeys", options.maxDedupeKeys, 10_000);
    this.#scope = options.dedupeScope;
    this.#clock = options.clock ?? systemClock;
    this.#onError = options.onError ?? ((error: unknown) => console.error("duplex: contract:", error));
  }

  // ---- middleware ----

  upgrade(ctx: UpgradeContext<S>, next: Next): void | Promise<void> {
    if (!this.#closed && !ctx.protocolChosen && ctx.offeredProtocols.includes(PROTOCOL_V1)) ctx.protocol = PROTOCOL_V1;
    return next();
  }

  message(ctx: MessageContext<S>, next: Next): void | Promise<void> {
    if (ctx.protocol !== PROTOCOL_V1) return next();
    const conn = connOf(ctx.peer);
    let cs = this.#conns.get(conn);
    if (cs === undefined) {
      if (this.#closed || conn.readyState !== ReadyState.Open) return;
      cs = { conn, calls: new Map(), events: [], eventsRunning: false, abort: new Abort(), closed: false, full: false, draining: undefined };
      this.#conns.set(conn, cs);
    }
    if (cs.closed) return;
    if (typeof ctx.data !== "string") return this.#closeConn(cs, CloseCode.UnsupportedData, "duplex.v1 takes text frames only");
    const m = decodeOnce(ctx, ctx.data);
    if (typeof m === "string") return this.#closeConn(cs, WireClose.BadMessage, fitCloseReason(`Bad message: ${m}`));
    switch (m.type) {
      case "call":
      case "emit":
        claim(ctx);
        if (cs.calls.size + cs.events.length >= this.#maxQueued) return this.#closeConn(cs, WireClose.TooManyRequests, "Too many requests in flight");
        if (m.type === "emit") return this.#emitted(cs, m.name, m.data, ctx);
        return this.#call(cs, m.id, m.name, m.input, m.key, m.credit, ctx);
      case "cancel":
        claim(ctx);
        return this.#cancel(cs, m.id);
      case "credit": {
        claim(ctx);
        const run = cs.calls.get(m.id);
        if (run !== undefined && !run.ended) {
          run.credit = Math.min(MAX_CREDIT, run.credit + m.n);
          run.wake?.();
        }
        return;
      }
      case "ping":
        claim(ctx);
        return this.#send(cs, { type: "pong", id: m.id });
      default: {
        // Topics: the reliable layer's, if it comes after this one.
        const result = next();
        if (isThenable(result)) return result.then(() => this.#unclaimed(cs!, ctx, m.id));
        return this.#unclaimed(cs, ctx, m.id);
      }
    }
  }

  /** A topic request that no layer after this one handled. */
  #unclaimed(cs: ConnState<S>, ctx: MessageContext<S>, id: number): void {
    if (!isClaimed(ctx)) this.#send(cs, { type: "error", id, code: "not_found", message: "This server has no topics here" });
  }

  close(): Promise<void>;
  close(ctx: CloseContext<S>, next: Next): void | Promise<void>;
  close(ctx?: CloseContext<S>, next?: Next): void | Promise<void> {
    if (ctx === undefined || next === undefined) return this.#shutdown();
    const cs = this.#conns.get(connOf(ctx.peer));
    if (cs !== undefined) this.#release(cs);
    return next();
  }

  emit<E extends ServerEventName<C>>(to: Connection<any> | Iterable<Connection<any>>, name: E, data: InputOf<C["server"][E]>): number {
    const schema = Object.hasOwn(this.#contract.server, name) ? this.#contract.server[name] : undefined;
    if (schema === undefined) throw new UsageError("ERR_UNKNOWN_EVENT", `Unknown event: the contract declares no server event ${JSON.stringify(name)}`);
    const targets = Symbol.iterator in to ? [...to] : [to];
    if (!this.#validateOutput) return this.#emitNow(targets, name, data);
    let result: Validation | Promise<Validation>;
    try {
      result = validate(schema, data);
    } catch (error) {
      throw new UsageError("ERR_INVALID_OUTPUT", `Invalid event ${name}: its schema threw: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (isThenable(result)) {
      result.then((r) => {
        if (r.issues) this.#report(new UsageError("ERR_INVALID_OUTPUT", `Invalid event ${name}: ${describeIssues(r.issues)}`));
        else this.#emitNow(targets, name, r.value);
      }, (error) => this.#report(error));
      return 0;
    }
    if (result.issues) throw new UsageError("ERR_INVALID_OUTPUT", `Invalid event ${name}: ${describeIssues(result.issues)}`);
    return this.#emitNow(targets, name, result.value);
  }

  #emitNow(targets: Connection<any>[], name: string, data: unknown): number {
    const text = encode({ type: "event", name, data });
    let n = 0;
    for (const target of targets) {
      const conn = connOf(target as Peer<S>);
      if (conn.readyState !== ReadyState.Open || conn.protocol !== PROTOCOL_V1) continue;
      const cs = this.#conns.get(conn);
      if (cs?.closed) continue;
      try {
        conn.send(text);
        n++;
      } catch (error) {
        this.#report(error);
      }
    }
    return n;
  }

  #shutdown(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    for (const cs of [...this.#conns.values()]) this.#closeConn(cs, CloseCode.GoingAway, "Server going away");
    for (const entry of this.#keys.values()) if (entry.outcome === undefined) entry.abort.abort();
    this.#keys.clear();
    return Promise.resolve();
  }

  // ---- calls ----

  #call(cs: ConnState<S>, id: number, name: string, input: unknown, key: string | undefined, credit: number | undefined, ctx: MessageContext<S>): void {
    const def = this.#contract.calls[name];
    if (def === undefined || !Object.hasOwn(this.#contract.calls, name)) {
      return this.#send(cs, { type: "error", id, code: "not_found", message: `No call named ${JSON.stringify(name)}` });
    }
    if (cs.calls.has(id)) return this.#closeConn(cs, WireClose.BadMessage, "Bad message: a call with this id is in flight");
    if (cs.calls.size >= this.#maxCalls) {
      return this.#send(cs, { type: "error", id, code: "busy", message: "Too many calls in flight on this connection" });
    }
    const run: Run<S> = { cs, id, name, abort: new Abort(), credit: credit ?? Infinity, wake: undefined, ended: false, entry: undefined };
    cs.calls.set(id, run);
    if (def.idempotent === true && key !== undefined) return this.#idempotent(run, def, input, key, ctx);
    this.#execute(run, def, input, key, ctx, run.abort).then((outcome) => {
      if (outcome !== undefined) this.#answer(run, outcome);
    }, (error) => this.#crashed(error, [run]));
  }

  /** An idempotent call: joins the key's run (in flight or done), or starts it. */
  #idempotent(run: Run<S>, def: CallDefinition, input: unknown, key: string, ctx: MessageContext<S>): void {
    let scope = "";
    try {
      if (this.#scope !== undefined) scope = String(this.#scope(ctx.peer));
    } catch (error) {
      this.#report(error);
      return this.#answer(run, GENERIC_FAILURE);
    }
    const scoped = `${scope}\u0000${run.name}\u0000${key}`;
    const inputHash = hash(JSON.stringify(input) ?? "");
    this.#sweep();
    let known = this.#keys.get(scoped);
    if (known?.outcome !== undefined && known.expires <= this.#clock.now()) {
      this.#keys.delete(scoped); // past its window, behind a run that holds the sweep up
      known = undefined;
    }
    if (known !== undefined) {
      if (known.hash !== inputHash) {
        return this.#answer(run, { type: "error", code: "invalid", message: "The idempotency key was used with another input", issues: [{ message: "The idempotency key was used with another input" }] });
      }
      if (known.outcome !== undefined) return this.#answer(run, known.outcome);
      known.waiters.add(run);
      run.entry = known;
      return;
    }
    const entry: DedupeEntry<S> = { key: scoped, hash: inputHash, abort: new Abort(), waiters: new Set([run]), outcome: undefined, expires: Infinity };
    run.entry = entry;
    this.#keys.set(scoped, entry);
    while (this.#keys.size > this.#maxKeys) this.#evict(this.#keys.values().next().value!);
    void this.#execute(run, def, input, key, ctx, entry.abort).then((outcome) => {
      const kept = this.#keys.get(scoped) === entry; // not evicted meanwhile
      if (outcome === undefined) {
        // Stopped before it ran (every waiter cancelled): nothing to keep or answer.
        if (kept) this.#keys.delete(scoped);
        return;
      }
      if (kept) {
        // An input that failed validation never ran: it is not kept.
        if (outcome.type === "error" && outcome.code === "invalid") this.#keys.delete(scoped);
        else {
          entry.outcome = outcome;
          entry.expires = this.#clock.now() + this.#window;
        }
      }
      for (const waiter of entry.waiters) this.#answer(waiter, outcome);
      entry.waiters.clear();
    }).catch((error) => {
      if (this.#keys.get(scoped) === entry) this.#keys.delete(scoped);
      this.#crashed(error, [...entry.waiters]);
    });
  }

  /** A bug of this layer (never expected): reported, and the calls answered rather than left hanging. */
  #crashed(error: unknown, runs: Run<S>[]): void {
    this.#report(error);
    for (const run of runs) this.#answer(run, GENERIC_FAILURE);
  }

  /** Forgets keys past their window, oldest first, up to the first one running or still in its window. */
  #sweep(): void {
    const now = this.#clock.now();
    for (const entry of this.#keys.values()) {
      if (entry.outcome === undefined || entry.expires > now) break;
      this.#keys.delete(entry.key);
    }
  }

  /** Drops a key to bound the store; a run nobody waits for any more is aborted. */
  #evict(entry: DedupeEntry<S>): void {
    this.#keys.delete(entry.key);
    if (entry.outcome === undefined && entry.waiters.size === 0) entry.abort.abort();
  }

  /**
   * Validates the input and runs the handler: the outcome to answer, or
   * `undefined` when the call was answered already (a stream, a cancel).
   */
  async #execute(run: Run<S>, def: CallDefinition, input: unknown, key: string | undefined, mctx: MessageContext<S>, abort: Abort): Promise<Outcome | undefined> {
    let value: unknown = undefined;
    if (def.input !== undefined) {
      let result: Validation;
      try {
        const r = validate(def.input, input);
        result = isThenable(r) ? await r : r;
      } catch (error) {
        this.#report(error);
        return GENERIC_FAILURE;
      }
      if (result.issues) return { type: "error", code: "invalid", message: "Invalid input", issues: wireIssues(result.issues) };
      value = result.value;
    } else if (input !== undefined) {
      return { type: "error", code: "invalid", message: "Invalid input", issues: [{ message: "This call takes no input" }] };
    }
    if (abort.aborted) return undefined;
    const peer = mctx.peer;
    const ctx: CallContext<Contract, string, S> = {
      get signal(): AbortSignal {
        return abort.signal;
      },
      name: run.name,
      id: run.id,
      key: def.idempotent === true ? key : undefined,
      peer,
      get state(): S {
        return peer.state;
      },
      emit: (name, data) => this.emit(peer, name as never, data as never) > 0,
      error: (name, data, message) => new CallError(name, data, message),
    };
    const handler = this.#calls[run.name]!;
    if (def.stream === true) return this.#stream(run, def, handler, value, ctx);
    let output: unknown;
    try {
      output = handler(value, ctx);
      if (isThenable(output)) output = await output;
    } catch (error) {
      return this.#failure(run.name, def, error);
    }
    if (this.#validateOutput && def.output !== undefined) {
      const checked = await this.#checkOutput(run.name, def.output, output);
      if (checked === GENERIC_FAILURE) return GENERIC_FAILURE;
      output = (checked as { value: unknown }).value;
    } else if (output !== undefined && def.output === undefined && this.#validateOutput) {
      this.#report(new UsageError("ERR_INVALID_OUTPUT", `Invalid output of call ${run.name}: it declares no output, got ${describeValue(output)}`));
      return GENERIC_FAILURE;
    }
    return { type: "result", value: output };
  }

  async #checkOutput(name: string, schema: StandardSchemaV1, value: unknown): Promise<{ value: unknown } | Outcome> {
    try {
      const r = validate(schema, value);
      const result = isThenable(r) ? await r : r;
      if (!result.issues) return { value: result.value };
      this.#report(new UsageError("ERR_INVALID_OUTPUT", `Invalid output of call ${name}: ${describeIssues(result.issues)}`));
    } catch (error) {
      this.#report(error);
    }
    return GENERIC_FAILURE;
  }

  /** What a throw answers: a declared error crosses the wire, anything else is generic. */
  async #failure(name: string, def: CallDefinition, error: unknown): Promise<Outcome> {
    if (error instanceof CallError) {
      const schema = def.errors?.[error.errorName];
      if (schema === undefined || !Object.hasOwn(def.errors!, error.errorName)) {
        this.#report(new UsageError("ERR_UNDECLARED_ERROR", `Call ${name} threw CallError ${JSON.stringify(error.errorName)}, which it does not declare`));
        return GENERIC_FAILURE;
      }
      let data = error.data;
      if (this.#validateOutput) {
        const checked = await this.#checkOutput(`${name} (error ${error.errorName})`, schema, data);
        if (checked === GENERIC_FAILURE) return GENERIC_FAILURE;
        data = (checked as { value: unknown }).value;
      }
      return { type: "error", code: "failed", message: error.message, error: { name: error.errorName, data } };
    }
    this.#report(error);
    return GENERIC_FAILURE;
  }

  /** Pulls a stream's generator while the client has credit and the output is drained. */
  async #stream(run: Run<S>, def: CallDefinition, handler: (input: unknown, ctx: unknown) => unknown, input: unknown, ctx: unknown): Promise<Outcome | undefined> {
    let iterator: AsyncIterator<unknown>;
    try {
      const iterable = handler(input, ctx) as AsyncIterable<unknown> | null;
      if (typeof iterable?.[Symbol.asyncIterator] !== "function") {
        throw new UsageError("ERR_INVALID_HANDLER", `Invalid handler: call ${run.name} is a stream, so its handler must return an async iterable (an async generator)`);
      }
      iterator = iterable[Symbol.asyncIterator]();
    } catch (error) {
      return this.#failure(run.name, def, error);
    }
    const signal = run.abort;
    let finished = false;
    try {
      for (;;) {
        while (run.credit <= 0 && !signal.aborted) await new Promise<void>((resolve) => (run.wake = resolve));
        run.wake = undefined;
        if (signal.aborted) return undefined;
        if (run.cs.full) {
          // A write met backpressure: no stream of the connection pulls an item until the output drains.
          await this.#drained(run.cs);
          if (signal.aborted) return undefined;
        }
        let step: IteratorResult<unknown>;
        try {
          step = await iterator.next();
        } catch (error) {
          finished = true;
          return this.#failure(run.name, def, error);
        }
        if (step.done) {
          finished = true;
          return { type: "result", value: undefined };
        }
        if (signal.aborted) return undefined;
        let value = step.value;
        if (this.#validateOutput && def.output !== undefined) {
          const checked = await this.#checkOutput(run.name, def.output, value);
          if (checked === GENERIC_FAILURE) return GENERIC_FAILURE;
          value = (checked as { value: unknown }).value;
          if (signal.aborted) return undefined;
        }
        let text: string;
        try {
          text = encode({ type: "item", id: run.id, value });
        } catch (error) {
          this.#report(error);
          return GENERIC_FAILURE;
        }
        run.credit--;
        this.#write(run.cs, text);
      }
    } finally {
      if (!finished) {
        // Cancelled, disconnected or failed: finish the generator (its finally blocks run).
        try {
          const r = iterator.return?.();
          if (isThenable(r)) await r;
        } catch (error) {
          this.#report(error);
        }
      }
    }
  }

  /** One wait for the output to drain, shared by the connection's streams. */
  #drained(cs: ConnState<S>): Promise<void> {
    return cs.draining ??= cs.conn.drained().then(() => {
      cs.full = false;
      cs.draining = undefined;
    });
  }

  #answer(run: Run<S>, outcome: Outcome): void {
    if (run.ended) return;
    this.#end(run);
    let text: string;
    try {
      text = encode({ ...outcome, id: run.id } as ServerMessage);
    } catch (error) {
      // A result JSON cannot hold (a BigInt, a cycle).
      this.#report(error);
      text = encode({ ...GENERIC_FAILURE, id: run.id } as ServerMessage);
    }
    this.#write(run.cs, text);
  }

  /** The call is over for its connection. */
  #end(run: Run<S>): void {
    run.ended = true;
    if (run.cs.calls.get(run.id) === run) run.cs.calls.delete(run.id);
    run.wake?.();
  }

  #cancel(cs: ConnState<S>, id: number): void {
    const run = cs.calls.get(id);
    if (run === undefined || run.ended) return; // over already: its answer is on the way
    this.#answerCancelled(run);
    this.#stop(run, true);
  }

  #answerCancelled(run: Run<S>): void {
    this.#end(run);
    this.#send(run.cs, { type: "error", id: run.id, code: "cancelled", message: "The call was cancelled" });
  }

  /** Aborts a call's handler; an idempotent run only once nobody waits for it (`cancelled`), never for a disconnect. */
  #stop(run: Run<S>, cancelled: boolean): void {
    run.ended = true;
    run.abort.abort();
    run.wake?.();
    const entry = run.entry;
    if (entry === undefined) return;
    entry.waiters.delete(run);
    if (cancelled && entry.waiters.size === 0 && entry.outcome === undefined) {
      entry.abort.abort();
      if (this.#keys.get(entry.key) === entry) this.#keys.delete(entry.key);
    }
  }

  // ---- client events ----

  #emitted(cs: ConnState<S>, name: string, data: unknown, ctx: MessageContext<S>): void {
    if (!Object.hasOwn(this.#contract.client, name)) return this.#closeConn(cs, WireClose.InvalidEvent, fitCloseReason(`Invalid event: no event named ${name}`));
    cs.events.push({ name, data, ctx });
    if (!cs.eventsRunning) void this.#pumpEvents(cs);
  }

  /** Client events, one at a time and in order per connection. */
  async #pumpEvents(cs: ConnState<S>): Promise<void> {
    cs.eventsRunning = true;
    try {
      while (cs.events.length > 0 && !cs.closed) {
        const { name, data, ctx } = cs.events[0]!;
        let result: Validation;
        try {
          const r = validate(this.#contract.client[name]!, data);
          result = isThenable(r) ? await r : r;
        } catch (error) {
          this.#report(error);
          cs.events.shift();
          continue;
        }
        if (cs.closed) return;
        if (result.issues) {
          return this.#closeConn(cs, WireClose.InvalidEvent, fitCloseReason(`Invalid event ${name}: ${describeIssues(result.issues)}`));
        }
        const handler = Object.hasOwn(this.#events, name) ? this.#events[name] : undefined;
        if (handler !== undefined) {
          const peer = ctx.peer;
          const ectx: ClientEventContext<Contract, S> = {
            get signal(): AbortSignal {
              return cs.abort.signal;
            },
            peer,
            get state(): S {
              return peer.state;
            },
            emit: (event, value) => this.emit(peer, event as never, value as never) > 0,
          };
          try {
            const r = handler(result.value, ectx);
            if (isThenable(r)) await r;
          } catch (error) {
            this.#report(error);
          }
        }
        cs.events.shift();
      }
    } finally {
      cs.eventsRunning = false;
    }
  }

  // ---- connections ----

  /** A connection is gone: its calls stop (idempotent runs go on for a retry), its events are dropped. */
  #release(cs: ConnState<S>): void {
    if (cs.closed) return;
    cs.closed = true;
    cs.events.length = 0;
    cs.abort.abort();
    for (const run of [...cs.calls.values()]) {
      cs.calls.delete(run.id);
      this.#stop(run, false);
    }
    this.#conns.delete(cs.conn);
  }

  #closeConn(cs: ConnState<S>, code: number, reason: string): void {
    this.#release(cs);
    closeQuietly(cs.conn, code, reason, this.#report);
  }

  #send(cs: ConnState<S>, message: ServerMessage): void {
    sendMessage(cs, message, this.#report);
  }

  /** Writes a frame on the connection itself, past the app's `send` middleware. */
  #write(cs: ConnState<S>, text: string): void {
    writeFrame(cs, text, this.#report);
  }
}
