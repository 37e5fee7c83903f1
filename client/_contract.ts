/**
 * Contract types shared by the server (`contract()`, `serveContract()`) and
 * the client (`DuplexClient<typeof chat>`): the Standard Schema interface,
 * the shape of a contract, and the helpers that read a call's or an event's
 * types out of it. Types only: the client imports it with `import type`, so
 * nothing of it reaches a browser bundle.
 *
 * Whose view: `CallInput`, `ClientEventData` are what the client sends (a
 * schema's input type); `CallOutput`, `CallErrors`, `ServerEventData` are
 * what the client receives (a schema's output type). The server's handlers
 * see the other side of each schema (see `plugins/contract.ts`).
 *
 * @module
 */

// ---- Standard Schema ----
//
// The `StandardTypedV1` and `StandardSchemaV1` interfaces below are copied
// from `@standard-schema/spec` 1.1.0 (https://github.com/standard-schema/standard-schema),
// whose README invites libraries to copy them instead of depending on the
// package. Its license:
//
// MIT License
//
// Copyright (c) 2024 Colin McDonnell
//
// Permission is hereby granted, free of charge, to any person obtaining a copy
// of this software and associated documentation files (the "Software"), to deal
// in the Software without restriction, including without limitation the rights
// to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
// copies of the Software, and to permit persons to whom the Software is
// furnished to do so, subject to the following conditions:
//
// The above copyright notice and this permission notice shall be included in all
// copies or substantial portions of the Software.
//
// THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
// IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
// FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
// AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
// LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
// OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
// SOFTWARE.

/**
 * The Standard Typed interface. This is a base type extended by other specs.
 *
 * @example
 * ```ts
 * import type { StandardTypedV1 } from "@duplex/ws";
 *
 * type Name = StandardTypedV1.InferOutput<StandardTypedV1<string>>; // string
 * ```
 */
export interface StandardTypedV1<Input = unknown, Output = Input> {
  /** The Standard properties. */
  readonly "~standard": StandardTypedV1.Props<Input, Output>;
}

/** The namespace of {@linkcode StandardTypedV1}'s types. */
export declare namespace StandardTypedV1 {
  /** The Standard Typed properties interface. */
  export interface Props<Input = unknown, Output = Input> {
    /** The version number of the standard. */
    readonly version: 1;
    /** The vendor name of the schema library. */
    readonly vendor: string;
    /** Inferred types associated with the schema. */
    readonly types?: Types<Input, Output> | undefined;
  }
  /** The Standard Typed types interface. */
  export interface Types<Input = unknown, Output = Input> {
    /** The input type of the schema. */
    readonly input: Input;
    /** The output type of the schema. */
    readonly output: Output;
  }
  /** Infers the input type of a Standard Typed. */
  export type InferInput<Schema extends StandardTypedV1> = NonNullable<Schema["~standard"]["types"]>["input"];
  /** Infers the output type of a Standard Typed. */
  export type InferOutput<Schema extends StandardTypedV1> = NonNullable<Schema["~standard"]["types"]>["output"];
}

/**
 * The Standard Schema interface: what Zod, Valibot, ArkType and others
 * implement, and what a contract's schemas must be.
 *
 * @example
 * ```ts
 * import type { StandardSchemaV1 } from "@duplex/ws";
 *
 * const positive: StandardSchemaV1<number> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "mine",
 *     validate: (value) => typeof value === "number" && value > 0 ? { value } : { issues: [{ message: "Expected a positive number" }] },
 *   },
 * };
 * ```
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  /** The Standard Schema properties. */
  readonly "~standard": StandardSchemaV1.Props<Input, Output>;
}

/** The namespace of {@linkcode StandardSchemaV1}'s types. */
export declare namespace StandardSchemaV1 {
  /** The Standard Schema properties interface. */
  export interface Props<Input = unknown, Output = Input> extends StandardTypedV1.Props<Input, Output> {
    /** Validates unknown input values. */
    readonly validate: (value: unknown, options?: StandardSchemaV1.Options | undefined) => Result<Output> | Promise<Result<Output>>;
  }
  /** The result interface of the validate function. */
  export type Result<Output> = SuccessResult<Output> | FailureResult;
  /** The result interface if validation succeeds. */
  export interface SuccessResult<Output> {
    /** The typed output value. */
    readonly value: Output;
    /** A falsy value for `issues` indicates success. */
    readonly issues?: undefined;
  }
  /** The options of the validate function. */
  export interface Options {
    /** Explicit support for additional vendor-specific parameters, if needed. */
    readonly libraryOptions?: Record<string, unknown> | undefined;
  }
  /** The result interface if validation fails. */
  export interface FailureResult {
    /** The issues of failed validation. */
    readonly issues: ReadonlyArray<Issue>;
  }
  /** The issue interface of the failure output. */
  export interface Issue {
    /** The error message of the issue. */
    readonly message: string;
    /** The path of the issue, if any. */
    readonly path?: ReadonlyArray<PropertyKey | PathSegment> | undefined;
  }
  /** The path segment interface of the issue. */
  export interface PathSegment {
    /** The key representing a path segment. */
    readonly key: PropertyKey;
  }
  /** The Standard types interface. */
  export interface Types<Input = unknown, Output = Input> extends StandardTypedV1.Types<Input, Output> {}
  /** Infers the input type of a Standard. */
  export type InferInput<Schema extends StandardTypedV1> = StandardTypedV1.InferInput<Schema>;
  /** Infers the output type of a Standard. */
  export type InferOutput<Schema extends StandardTypedV1> = StandardTypedV1.InferOutput<Schema>;
}

// ---- contracts ----

/**
 * Events of one direction: a schema per event name.
 *
 * @example
 * ```ts
 * import type { EventSchemas, StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Room: StandardSchemaV1<{ room: string }>;
 * const events: EventSchemas = { typing: Room };
 * ```
 */
export type EventSchemas = { readonly [name: string]: StandardSchemaV1 };

/**
 * One call of a contract.
 *
 * @example
 * ```ts
 * import type { CallDefinition, StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Room: StandardSchemaV1<{ room: string }>;
 * declare const Messages: StandardSchemaV1<string[]>;
 * const history: CallDefinition = { input: Room, output: Messages, idempotent: true };
 * ```
 */
export interface CallDefinition {
  /** The input's schema. Absent: the call takes no input (`undefined`). */
  readonly input?: StandardSchemaV1;
  /** The result's schema (for a stream: each item's). Absent: the call returns nothing (`undefined`). */
  readonly output?: StandardSchemaV1;
  /** The errors the handler may throw as `CallError(name, data)`: a schema of the data per name. */
  readonly errors?: EventSchemas;
  /** `true`: the handler is an async generator and the client gets a stream of items. */
  readonly stream?: boolean;
  /**
   * `true`: running the call twice with the same input has the effect of
   * running it once. The client then retries it across reconnects with the
   * same idempotency key, and the server answers a retried key with the
   * first run's result instead of running the handler again.
   */
  readonly idempotent?: boolean;
}

/**
 * What `contract()` takes: events each side may send, and calls.
 *
 * @example
 * ```ts
 * import type { ContractDefinition, StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Room: StandardSchemaV1<{ room: string }>;
 * const definition: ContractDefinition = { client: { typing: Room }, calls: { join: { input: Room } } };
 * ```
 */
export interface ContractDefinition {
  /** Events the client may send (`emit`), fire-and-forget. */
  readonly client?: EventSchemas;
  /** Events the server may send (`event`). */
  readonly server?: EventSchemas;
  /** Calls the client may make. */
  readonly calls?: { readonly [name: string]: CallDefinition };
}

/**
 * A contract, as `contract()` returns it: the definition with every part
 * present (an absent part is empty). The client's type parameter and the
 * inference helpers take this (or the definition itself).
 *
 * @typeParam D The definition.
 *
 * @example
 * ```ts
 * import { type Contract, contract } from "@duplex/ws";
 *
 * const empty: Contract<{}> = contract({});
 * console.log(Object.keys(empty.calls)); // []
 * ```
 */
export interface Contract<D extends ContractDefinition = ContractDefinition> {
  /** Events the client may send. */
  readonly client: D extends { readonly client?: infer E extends EventSchemas } ? E : Record<never, never>;
  /** Events the server may send. */
  readonly server: D extends { readonly server?: infer E extends EventSchemas } ? E : Record<never, never>;
  /** Calls. */
  readonly calls: D extends { readonly calls?: infer E extends { readonly [name: string]: CallDefinition } } ? E : Record<never, never>;
}

/**
 * The definition behind a contract (or a definition itself).
 *
 * @example
 * ```ts
 * import type { ContractOf, StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Room: StandardSchemaV1<{ room: string }>;
 * type Calls = ContractOf<{ calls: { join: { input: typeof Room } } }>["calls"]; // { join: … }
 * ```
 */
export type ContractOf<C> = C extends ContractDefinition ? Contract<C> : never;

/**
 * A schema's input type (what is given to it), or `undefined` for no schema.
 *
 * @example
 * ```ts
 * import type { InputOf, StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Len: StandardSchemaV1<string, number>;
 * const given: InputOf<typeof Len> = "abc";
 * ```
 */
export type InputOf<S> = S extends StandardSchemaV1 ? StandardSchemaV1.InferInput<S> : undefined;

/**
 * A schema's output type (what it validates to), or `undefined` for no schema.
 *
 * @example
 * ```ts
 * import type { OutputOf, StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Len: StandardSchemaV1<string, number>;
 * const validated: OutputOf<typeof Len> = 3;
 * ```
 */
export type OutputOf<S> = S extends StandardSchemaV1 ? StandardSchemaV1.InferOutput<S> : undefined;

/**
 * The definition of one call of a contract.
 *
 * @example
 * ```ts
 * import { type CallDefinitionOf, contract, type StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Room: StandardSchemaV1<{ room: string }>;
 * const chat = contract({ calls: { join: { input: Room, idempotent: true } } });
 * const join: CallDefinitionOf<typeof chat, "join"> = chat.calls.join;
 * ```
 */
export type CallDefinitionOf<C, N> = N extends keyof ContractOf<C>["calls"] ? ContractOf<C>["calls"][N] : never;

/**
 * The names of a contract's calls.
 *
 * @example
 * ```ts
 * import { type CallName, contract, type StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Room: StandardSchemaV1<{ room: string }>;
 * const chat = contract({ calls: { join: { input: Room }, leave: { input: Room } } });
 * const name: CallName<typeof chat> = "join"; // "join" | "leave"
 * ```
 */
export type CallName<C> = keyof ContractOf<C>["calls"] & string;

/**
 * What the client passes to a call: its input schema's input type
 * (`undefined` when the call has no input schema).
 *
 * @example
 * ```ts
 * import { type CallInput, contract, type StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Room: StandardSchemaV1<{ room: string }>;
 * const chat = contract({ calls: { join: { input: Room } } });
 * const input: CallInput<typeof chat, "join"> = { room: "lobby" };
 * ```
 */
export type CallInput<C, N extends CallName<C>> = CallDefinitionOf<C, N> extends { readonly input?: infer S } ? InputOf<S> : undefined;

/**
 * What the client gets from a call: its output schema's output type (for a
 * stream, the type of one item; `undefined` without an output schema).
 *
 * @example
 * ```ts
 * import { type CallOutput, contract, type StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Count: StandardSchemaV1<number>;
 * const chat = contract({ calls: { online: { output: Count } } });
 * const n: CallOutput<typeof chat, "online"> = 3;
 * ```
 */
export type CallOutput<C, N extends CallName<C>> = CallDefinitionOf<C, N> extends { readonly output?: infer S } ? OutputOf<S> : undefined;

/**
 * The declared errors of a call as the client receives them: a union of
 * `{ name, data }`, one member per declared error (`never` when none).
 *
 * @example
 * ```ts
 * import { type CallErrors, contract, type StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Wait: StandardSchemaV1<{ retryInMs: number }>;
 * const chat = contract({ calls: { send: { errors: { TooFast: Wait } } } });
 * const e: CallErrors<typeof chat, "send"> = { name: "TooFast", data: { retryInMs: 500 } };
 * ```
 */
export type CallErrors<C, N extends CallName<C>> = CallDefinitionOf<C, N> extends { readonly errors?: infer E extends EventSchemas }
  ? { [K in keyof E & string]: { readonly name: K; readonly data: OutputOf<E[K]> } }[keyof E & string]
  : never;

/**
 * Whether a call is a stream (`true`) or answers once (`false`).
 *
 * @example
 * ```ts
 * import { contract, type IsStream, type StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Msg: StandardSchemaV1<string>;
 * const chat = contract({ calls: { tail: { output: Msg, stream: true } } });
 * const yes: IsStream<typeof chat, "tail"> = true;
 * ```
 */
export type IsStream<C, N extends CallName<C>> = CallDefinitionOf<C, N> extends { readonly stream: true } ? true : false;

/**
 * The names of the calls marked idempotent.
 *
 * @example
 * ```ts
 * import { contract, type IdempotentCallName, type StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Room: StandardSchemaV1<{ room: string }>;
 * const chat = contract({ calls: { history: { input: Room, idempotent: true }, send: { input: Room } } });
 * const name: IdempotentCallName<typeof chat> = "history";
 * ```
 */
export type IdempotentCallName<C> = { [N in CallName<C>]: CallDefinitionOf<C, N> extends { readonly idempotent: true } ? N : never }[CallName<C>];

/**
 * The names of the events the client may send.
 *
 * @example
 * ```ts
 * import { type ClientEventName, contract, type StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Room: StandardSchemaV1<{ room: string }>;
 * const chat = contract({ client: { typing: Room } });
 * const name: ClientEventName<typeof chat> = "typing";
 * ```
 */
export type ClientEventName<C> = keyof ContractOf<C>["client"] & string;

/**
 * What the client sends with an event: its schema's input type.
 *
 * @example
 * ```ts
 * import { type ClientEventData, contract, type StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Room: StandardSchemaV1<{ room: string }>;
 * const chat = contract({ client: { typing: Room } });
 * const data: ClientEventData<typeof chat, "typing"> = { room: "lobby" };
 * ```
 */
export type ClientEventData<C, N extends ClientEventName<C>> = InputOf<ContractOf<C>["client"][N]>;

/**
 * The names of the events the server may send.
 *
 * @example
 * ```ts
 * import { contract, type ServerEventName, type StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Said: StandardSchemaV1<{ text: string }>;
 * const chat = contract({ server: { said: Said } });
 * const name: ServerEventName<typeof chat> = "said";
 * ```
 */
export type ServerEventName<C> = keyof ContractOf<C>["server"] & string;

/**
 * What the client receives with a server event: its schema's output type.
 *
 * @example
 * ```ts
 * import { contract, type ServerEventData, type StandardSchemaV1 } from "@duplex/ws";
 *
 * declare const Said: StandardSchemaV1<{ text: string }>;
 * const chat = contract({ server: { said: Said } });
 * const data: ServerEventData<typeof chat, "said"> = { text: "hi" };
 * ```
 */
export type ServerEventData<C, N extends ServerEventName<C>> = OutputOf<ContractOf<C>["server"][N]>;
