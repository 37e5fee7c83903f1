// contract(): the definition's runtime checks, and the inference helpers'
// types (checked by tsc and deno check; a wrong type fails compilation).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { z } from "zod";
import * as v from "valibot";
import { contract, serveContract, UsageError } from "../../mod.ts";
import type {
  CallErrors,
  CallInput,
  CallName,
  CallOutput,
  ClientEventData,
  ClientEventName,
  IdempotentCallName,
  IsStream,
  ServerEventData,
  ServerEventName,
} from "../../mod.ts";

const Msg = v.object({ text: v.string(), at: v.number() });
const chat = contract({
  client: { typing: v.object({ room: v.string() }) },
  server: { said: z.object({ room: z.string(), text: z.string() }) },
  calls: {
    history: { input: v.object({ room: v.string() }), output: v.array(Msg), idempotent: true },
    tail: { input: z.object({ room: z.string() }), output: Msg, stream: true },
    send: {
      input: z.object({ n: z.string().transform((s) => s.length) }),
      output: z.number(),
      errors: { TooFast: z.object({ retryInMs: z.number() }), Gone: v.string() },
    },
    ping: {},
  },
});
type C = typeof chat;

describe("contract types", () => {
  it("reads names, inputs, outputs, errors and events out of a contract", () => {
    const names: CallName<C>[] = ["history", "tail", "send", "ping"];
    // @ts-expect-error not a call of the contract
    const notACall: CallName<C> = "nope";
    const input: CallInput<C, "send"> = { n: "abc" }; // the schema's input type (before the transform)
    // @ts-expect-error the client sends the input type, not the transformed output
    const transformed: CallInput<C, "send"> = { n: 3 };
    const output: CallOutput<C, "history"> = [{ text: "a", at: 1 }];
    // @ts-expect-error wrong output shape
    const badOutput: CallOutput<C, "history"> = [{ text: 1 }];
    const none: [CallInput<C, "ping">, CallOutput<C, "ping">] = [undefined, undefined];
    const errors: CallErrors<C, "send">[] = [{ name: "TooFast", data: { retryInMs: 3 } }, { name: "Gone", data: "x" }];
    // @ts-expect-error Gone's data is a string
    const badError: CallErrors<C, "send"> = { name: "Gone", data: 3 };
    const noErrors: [CallErrors<C, "history">] extends [never] ? true : false = true;
    const streams: [IsStream<C, "tail">, IsStream<C, "history">] = [true, false];
    const idempotent: IdempotentCallName<C> = "history";
    // @ts-expect-error send is not idempotent
    const notIdempotent: IdempotentCallName<C> = "send";
    const events: [ClientEventName<C>, ClientEventData<C, "typing">, ServerEventName<C>, ServerEventData<C, "said">] = [
      "typing",
      { room: "x" },
      "said",
      { room: "x", text: "y" },
    ];
    // @ts-expect-error not a server event
    const notAnEvent: ServerEventName<C> = "typing";
    // A bare definition works as well as a contract.
    const bare: CallInput<{ calls: { a: { input: typeof Msg } } }, "a"> = { text: "", at: 0 };
    assert.ok([names, notACall, input, transformed, output, badOutput, none, errors, badError, noErrors, streams, idempotent, notIdempotent, events, notAnEvent, bare]);
  });
});

describe("serveContract() types", () => {
  it("types handlers from the contract: validated input, output, declared errors, events", () => {
    const options = {
      calls: {
        history: ({ room }: { room: string }) => [{ text: room, at: 1 }],
        send: () => "three",
        async *tail({ room }: { room: string }) {
          yield { text: room, at: 0 };
        },
        ping: () => undefined,
      },
    };
    // @ts-expect-error send's output is a number, not a string
    serveContract(chat, options);
    // At run time, the unknown event handler is refused.
    assert.throws(() => serveContract(chat, {
      calls: {
        // @ts-expect-error history's handler must return messages
        history: () => 42,
        send: ({ n }, ctx) => {
          const length: number = n; // the handler gets the schema's output (the transform applied)
          // @ts-expect-error not a declared error of send
          if (length > 10) throw ctx.error("Unknown", {});
          // @ts-expect-error TooFast's data is { retryInMs: number }
          if (length > 5) throw ctx.error("TooFast", { retryInMs: "soon" });
          if (length > 3) throw ctx.error("TooFast", { retryInMs: 100 });
          // @ts-expect-error "said" needs room and text
          ctx.emit("said", { room: "r" });
          return length;
        },
        // @ts-expect-error a stream's handler must be an async generator (an async iterable)
        tail: () => ({ text: "", at: 0 }),
        ping: () => undefined,
      },
      events: {
        typing: ({ room }, ctx) => void ctx.emit("said", { room, text: "typing" }),
        // @ts-expect-error not a client event of the contract
        shout: () => {},
      },
    }), /shout/);
    // @ts-expect-error every call needs a handler
    assert.throws(() => serveContract(chat, { calls: { history: () => [], tail: async function* () {}, ping: () => undefined } }));
  });
});

describe("contract()", () => {
  it("returns the definition frozen, with every part present", () => {
    const c = contract({ calls: { ping: {} } });
    assert.deepEqual(Object.keys(c.client), []);
    assert.deepEqual(Object.keys(c.server), []);
    assert.deepEqual(Object.keys(c.calls), ["ping"]);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.calls) && Object.isFrozen(c.calls.ping));
    assert.equal(chat.calls.history.idempotent, true);
  });

  it("refuses what is not a contract, with the place named", () => {
    const bad: [unknown, RegExp][] = [
      [null, /expected an object/],
      [{ events: {} }, /events is not a part/],
      [{ client: { typing: { parse() {} } } }, /client\.typing must be a Standard Schema/],
      [{ calls: { a: { input: z.string(), ouput: z.string() } } }, /calls\.a\.ouput is not a call field/],
      [{ calls: { a: { stream: "yes" } } }, /calls\.a\.stream must be a boolean/],
      [{ calls: { a: { stream: true, idempotent: true } } }, /both a stream and idempotent/],
      [{ calls: { a: { errors: { E: 1 } } } }, /calls\.a\.errors\.E must be a Standard Schema/],
      [{ calls: { ["x".repeat(129)]: {} } }, /1 to 128 characters/],
      [{ server: { "": z.string() } }, /1 to 128 characters/],
    ];
    for (const [definition, message] of bad) {
      assert.throws(() => contract(definition as never), (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_CONTRACT" && message.test(e.message));
    }
  });
});
