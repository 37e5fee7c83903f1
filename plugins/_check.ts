/**
 * Checks of what plain JavaScript passes where TypeScript would have
 * checked it: handlers, middleware objects and option names. A name that is
 * not known is refused with a suggestion, rather than accepted and ignored.
 *
 * @module
 */

import { describeValue } from "../core/_describe.ts";
import { UsageError } from "../core/errors.ts";
import type { Handler } from "./hooks.ts";

export { describeValue };

// Every hook of the Handler type, no more: the compiler keeps the two in step.
const HOOK_KEYS = {
  upgrade: true,
  open: true,
  message: true,
  ping: true,
  pong: true,
  drain: true,
  shutdown: true,
  close: true,
  error: true,
} satisfies Record<keyof Handler, true>;

/** The hooks of a {@linkcode Handler}. */
export const HOOKS: readonly string[] = Object.freeze(Object.keys(HOOK_KEYS));

/** Names people bring from other libraries, and what Duplex calls them. */
const ALIASES: Readonly<Record<string, string>> = {
  maxmessagesize: "maxMessageBytes",
  maxpayload: "maxMessageBytes",
  maxpayloadlength: "maxMessageBytes",
  maxpayloadbytes: "maxMessageBytes",
  maxframesize: "maxFrameBytes",
  maxheadersize: "maxHeaderBytes",
  maxbackpressure: "maxBufferedBytes",
  backpressurelimit: "maxBufferedBytes",
  idletimeout: "idleTimeoutMs",
  handshaketimeout: "handshakeTimeoutMs",
  closetimeout: "closeTimeoutMs",
  subprotocols: "protocols",
  protocol: "protocols",
  compression: "perMessageDeflate",
  permessagedeflate: "perMessageDeflate",
  host: "hostname",
};

/** Levenshtein distance, early exit once over `max`. */
function distance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      best = Math.min(best, current[j]!);
    }
    if (best > max) return max + 1;
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The known name that `name` was most likely meant to be: the same name in
 * another case, a Hono or DOM style hook (`onMessage` → `message`), a name
 * from another library (`maxPayload` → `maxMessageBytes`), or a close
 * spelling.
 *
 * @param name The unknown name.
 * @param candidates The known names.
 * @returns The suggestion, or `undefined` when nothing is close.
 *
 * @example
 * ```ts
 * import { didYouMean } from "./_check.ts";
 *
 * console.log(didYouMean("onMessage", ["open", "message", "close"])); // "message"
 * console.log(didYouMean("maxMessageSize", ["maxMessageBytes", "protocols"])); // "maxMessageBytes"
 * ```
 */
export function didYouMean(name: string, candidates: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const byLower = new Map(candidates.map((c) => [c.toLowerCase(), c]));
  const exact = byLower.get(lower);
  if (exact !== undefined) return exact;
  if (lower.startsWith("on") && byLower.has(lower.slice(2))) return byLower.get(lower.slice(2));
  const alias = ALIASES[lower];
  if (alias !== undefined && candidates.includes(alias)) return alias;
  const max = Math.max(1, Math.min(3, Math.floor(name.length / 3)));
  let best: string | undefined;
  let bestDistance = max + 1;
  for (const candidate of candidates) {
    const d = distance(lower, candidate.toLowerCase(), max);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** `, did you mean "x"?` or nothing. */
function suggestion(name: string, candidates: readonly string[]): string {
  const guess = didYouMean(name, candidates);
  return guess === undefined ? "" : `, did you mean "${guess}"?`;
}

/** Own enumerable keys of a plain object; `undefined` for a class instance, whose methods are on its prototype. */
function plainKeys(value: object): string[] | undefined {
  const proto = Object.getPrototypeOf(value);
  return proto === null || proto === Object.prototype ? Object.keys(value) : undefined;
}

/**
 * Checks a handler of hooks: a non-null object whose hooks are functions
 * and, when it is a plain object, with no other keys.
 *
 * @param value What was passed as the handler.
 * @param where Where it was passed, for the message (such as `"serve()"`).
 * @throws {UsageError} `ERR_INVALID_HANDLER`.
 *
 * @example
 * ```ts
 * import { checkHandler } from "./_check.ts";
 *
 * checkHandler({ message() {} }, "serve()"); // fine
 * try {
 *   checkHandler({ onMessage() {} }, "serve()");
 * } catch (err) {
 *   console.log((err as Error).message); // Invalid handler: "onMessage" is not a hook, did you mean "message"?
 * }
 * ```
 */
export function checkHandler(value: unknown, where: string): void {
  if (typeof value === "function") {
    throw new UsageError(
      "ERR_INVALID_HANDLER",
      `Invalid handler: ${where} takes an object of hooks, such as { message(conn, data) { … } }, got a function`,
    );
  }
  if (typeof value !== "object" || value === null) {
    throw new UsageError("ERR_INVALID_HANDLER", `Invalid handler: ${where} takes an object of hooks, got ${describeValue(value)}`);
  }
  for (const key of plainKeys(value) ?? []) {
    if (!HOOKS.includes(key)) {
      throw new UsageError("ERR_INVALID_HANDLER", `Invalid handler: "${key}" is not a hook${suggestion(key, HOOKS)}`);
    }
  }
  for (const hook of HOOKS) {
    const fn = (value as Record<string, unknown>)[hook];
    if (fn !== undefined && typeof fn !== "function") {
      throw new UsageError("ERR_INVALID_HANDLER", `Invalid handler: ${hook} must be a function, got ${describeValue(fn)}`);
    }
  }
}

/**
 * Checks a middleware object: a plain object may have no key that is not a
 * phase, and, given to `App.use()`, must have a phase (a route's `{}` is
 * fine: it accepts the route). Functions and class instances (routers) are
 * left to the pipeline.
 *
 * @param value One middleware.
 * @param phases The phase names.
 * @param needsPhase Whether an object without a phase is refused.
 * @throws {UsageError} `ERR_INVALID_MIDDLEWARE`.
 *
 * @example
 * ```ts
 * import { checkMiddleware } from "./_check.ts";
 *
 * checkMiddleware({ message: () => undefined }, ["message"]); // fine
 * ```
 */
export function checkMiddleware(value: unknown, phases: readonly string[], needsPhase = false): void {
  if (typeof value !== "object" || value === null) return;
  const keys = plainKeys(value);
  if (keys === undefined) return; // a router or another class instance: the pipeline checks it
  for (const key of keys) {
    if (!phases.includes(key)) {
      throw new UsageError("ERR_INVALID_MIDDLEWARE", `Invalid middleware: "${key}" is not a phase${suggestion(key, phases)}`);
    }
  }
  if (needsPhase && !keys.some((key) => (value as Record<string, unknown>)[key] !== undefined)) {
    throw new UsageError("ERR_INVALID_MIDDLEWARE", `Invalid middleware: the object has no phase, expected one of ${phases.join(", ")}`);
  }
}

/**
 * Checks the names of an options object: every own key must be a known
 * option. The values are checked where they are used.
 *
 * @param value What was passed as options; `undefined` is fine.
 * @param known The option names.
 * @param where Where they were passed, for the message (such as `"serve()"`).
 * @throws {UsageError} `ERR_INVALID_OPTION`.
 *
 * @example
 * ```ts
 * import { checkOptions } from "./_check.ts";
 *
 * checkOptions({ port: 0 }, ["port", "hostname"], "serve()"); // fine
 * ```
 */
export function checkOptions(value: unknown, known: readonly string[], where: string): void {
  if (value === undefined) return;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: the options of ${where} must be an object, got ${describeValue(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: "${key}" is not an option${suggestion(key, known)}`);
    }
  }
}

/**
 * Reads an integer option that must be at least 1.
 *
 * @param name The option's name, for the message.
 * @param value What was passed; `undefined` takes `fallback`.
 * @param fallback The default.
 * @returns The value.
 * @throws {UsageError} `ERR_INVALID_OPTION` for anything but a positive safe integer.
 *
 * @example
 * ```ts
 * import { positiveIntegerOption } from "./_check.ts";
 *
 * console.log(positiveIntegerOption("maxMessages", undefined, 10_000)); // 10000
 * ```
 */
export function positiveIntegerOption(name: string, value: unknown, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: ${name} must be a positive integer, got ${describeValue(v)}`);
  }
  return v;
}
