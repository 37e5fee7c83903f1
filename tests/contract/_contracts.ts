// The same test contract written with Zod and with Valibot, so that every
// contract test runs against both Standard Schema implementations.
import { z } from "zod";
import * as v from "valibot";
import { contract } from "../../plugins/contract.ts";

function withZod() {
  const Msg = z.object({ text: z.string(), at: z.number() });
  return contract({
    client: { typing: z.object({ room: z.string().min(1) }), bye: z.null() },
    server: { said: z.object({ room: z.string(), text: z.string() }) },
    calls: {
      echo: { input: z.object({ text: z.string().max(100) }), output: z.object({ text: z.string() }) },
      add: { input: z.object({ a: z.number(), b: z.number() }), output: z.number() },
      history: { input: z.object({ room: z.string() }), output: z.array(Msg), idempotent: true },
      tail: { input: z.object({ room: z.string(), n: z.number().int() }), output: Msg, stream: true },
      send: {
        input: z.object({ room: z.string(), text: z.string() }),
        output: z.number(),
        errors: { TooFast: z.object({ retryInMs: z.number() }), Closed: z.null() },
      },
      wait: { input: z.object({ ms: z.number() }), output: z.string() },
      ping: {},
    },
  });
}

function withValibot() {
  const Msg = v.object({ text: v.string(), at: v.number() });
  return contract({
    client: { typing: v.object({ room: v.pipe(v.string(), v.minLength(1)) }), bye: v.null() },
    server: { said: v.object({ room: v.string(), text: v.string() }) },
    calls: {
      echo: { input: v.object({ text: v.pipe(v.string(), v.maxLength(100)) }), output: v.object({ text: v.string() }) },
      add: { input: v.object({ a: v.number(), b: v.number() }), output: v.number() },
      history: { input: v.object({ room: v.string() }), output: v.array(Msg), idempotent: true },
      tail: { input: v.object({ room: v.string(), n: v.pipe(v.number(), v.integer()) }), output: Msg, stream: true },
      send: {
        input: v.object({ room: v.string(), text: v.string() }),
        output: v.number(),
        errors: { TooFast: v.object({ retryInMs: v.number() }), Closed: v.null() },
      },
      wait: { input: v.object({ ms: v.number() }), output: v.string() },
      ping: {},
    },
  });
}

/** The test contract, built with each validator. */
export const validators: readonly { name: string; chat: Chat }[] = [
  { name: "zod", chat: withZod() },
  // The same shapes, so the same handlers type-check (checked against Zod's types).
  { name: "valibot", chat: withValibot() as unknown as Chat },
];

/** The test contract's type (the same with either validator). */
export type Chat = ReturnType<typeof withZod>;
