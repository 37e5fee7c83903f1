/**
 * How error messages show a value the caller passed: with its type, so that
 * `"8090"` (a string) does not read as the number 8090.
 *
 * @module
 */

const MAX_SHOWN = 40;

/**
 * Describes a value for an error message, with its type: `the string
 * "8090"`, `the number 70000`, `null`, `undefined`, `a function`, `an
 * array`, `an object`, `an instance of Map`.
 *
 * @param value Anything.
 * @returns A short description.
 *
 * @example
 * ```ts
 * import { describeValue } from "./_describe.ts";
 *
 * console.log(`got ${describeValue("8090")}`); // got the string "8090"
 * ```
 */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case "string": {
      const shown = value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}…` : value;
      return `the string ${JSON.stringify(shown)}`;
    }
    case "number":
      return `the number ${Object.is(value, -0) ? "-0" : String(value)}`;
    case "bigint":
      return `the bigint ${value}n`;
    case "boolean":
      return String(value);
    case "undefined":
      return "undefined";
    case "symbol":
      return "a symbol";
    case "function":
      return "a function";
  }
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  const proto = Object.getPrototypeOf(value);
  if (proto === null || proto === Object.prototype) return "an object";
  const name = (proto as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === "string" && name !== "" ? `an instance of ${name}` : "an object";
}
