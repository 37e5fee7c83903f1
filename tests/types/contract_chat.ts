// Two contracts of the same chat, one with Zod schemas and one with Valibot
// schemas, for the client's type tests (contract_types_test.ts), which
// import them with `import type` as a browser app would.
import * as v from "valibot";
import { z } from "zod";
import { contract } from "../../mod.ts";

const ZMsg = z.object({ id: z.number(), from: z.string(), text: z.string(), at: z.string() });

/** The chat, with Zod schemas. */
export const zodChat = contract({
  client: { typing: z.object({ room: z.string() }), ping: z.undefined() },
  server: { said: ZMsg.extend({ room: z.string() }), typing: z.object({ room: z.string(), name: z.string() }) },
  calls: {
    history: { input: z.object({ room: z.string(), limit: z.number().int().optional() }), output: z.array(ZMsg), idempotent: true },
    tail: { input: z.object({ room: z.string() }), output: ZMsg, stream: true },
    send: {
      input: z.object({ room: z.string(), text: z.string().min(1) }),
      output: z.object({ id: z.number() }),
      errors: { TooFast: z.object({ retryInMs: z.number() }), Muted: z.object({ until: z.string() }) },
    },
    count: { output: z.number().transform((n) => String(n)) },
  },
});

const VMsg = v.object({ id: v.number(), from: v.string(), text: v.string(), at: v.string() });

/** The chat, with Valibot schemas. */
export const valibotChat = contract({
  client: { typing: v.object({ room: v.string() }), ping: v.undefined() },
  server: { said: v.object({ ...VMsg.entries, room: v.string() }), typing: v.object({ room: v.string(), name: v.string() }) },
  calls: {
    history: { input: v.object({ room: v.string(), limit: v.optional(v.number()) }), output: v.array(VMsg), idempotent: true },
    tail: { input: v.object({ room: v.string() }), output: VMsg, stream: true },
    send: {
      input: v.object({ room: v.string(), text: v.pipe(v.string(), v.minLength(1)) }),
      output: v.object({ id: v.number() }),
      errors: { TooFast: v.object({ retryInMs: v.number() }), Muted: v.object({ until: v.string() }) },
    },
    count: { output: v.pipe(v.number(), v.transform((n) => String(n))) },
  },
});
