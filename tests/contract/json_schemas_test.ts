// json() with schemas: each message validated by its type's Standard Schema
// (Zod and Valibot) before the handler, typed from the schema; a message that
// fails closes with 1007 or goes to `invalid`; types without a schema and the
// unknown policy behave as before.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import * as v from "valibot";
import { UsageError } from "../../core/errors.ts";
import { App } from "../../plugins/app.ts";
import { json } from "../../plugins/codec.ts";
import { connect } from "../plugins/_harness.ts";

const libraries = [
  { name: "zod", say: z.object({ type: z.literal("say"), text: z.string().max(5) }), add: z.object({ type: z.literal("add"), a: z.number(), b: z.number() }) },
  { name: "valibot", say: v.object({ type: v.literal("say"), text: v.pipe(v.string(), v.maxLength(5)) }), add: v.object({ type: v.literal("add"), a: v.number(), b: v.number() }) },
] as const;

for (const lib of libraries) {
  describe(`json() with schemas (${lib.name})`, () => {
    function app(options: { invalid?: "close" | ((ctx: any, issues: readonly { message: string }[]) => unknown) } = {}) {
      const seen: unknown[] = [];
      const a = new App().use(json({
        say: (ctx, m) => {
          seen.push(m);
          ctx.send(m.text.toUpperCase()); // typed: m.text is a string
        },
        add: (ctx, m) => void ctx.send(String(m.a + m.b)),
      }, { schemas: { say: lib.say, add: lib.add }, ...options }));
      return { app: a, seen };
    }

    it("hands valid messages to their handler, as the schema outputs them", async () => {
      const { app: a, seen } = app();
      const conn = await connect(a);
      await conn.text(JSON.stringify({ type: "say", text: "hi", extra: 1 }));
      await conn.text(JSON.stringify({ type: "add", a: 2, b: 40 }));
      assert.deepEqual(conn.texts(), ["HI", "42"]);
      assert.deepEqual(seen, [{ type: "say", text: "hi" }], "unknown keys stripped by the schema");
      assert.deepEqual(conn.closes(), []);
    });

    it("closes with 1007 and the first issue when a message fails its schema", async () => {
      const { app: a, seen } = app();
      const conn = await connect(a);
      await conn.text(JSON.stringify({ type: "say", text: "far too long" }));
      const [close] = conn.closes();
      assert.equal(close?.code, 1007);
      assert.match(close!.reason, /^Invalid say at text: /);
      assert.deepEqual(seen, []);
    });

    it("with invalid: a function, hands it the issues and keeps the connection", async () => {
      const { app: a, seen } = app({ invalid: (ctx, issues) => ctx.send(`invalid: ${issues.length}`) });
      const conn = await connect(a);
      await conn.text(JSON.stringify({ type: "add", a: "2", b: null }));
      await conn.text(JSON.stringify({ type: "say", text: "ok" }));
      assert.deepEqual(conn.texts(), ["invalid: 2", "OK"]);
      assert.equal(seen.length, 1);
      assert.deepEqual(conn.closes(), []);
    });
  });
}

describe("json() with schemas: options", () => {
  it("refuses a schema that is not one, or without a handler", () => {
    assert.throws(() => json({ a: () => {} }, { schemas: { a: { parse() {} } as never } }), (e: unknown) => e instanceof UsageError && /schemas\.a must be a Standard Schema/.test(e.message));
    assert.throws(() => json({ a: () => {} }, { schemas: { b: z.object({}) } } as never), (e: unknown) => e instanceof UsageError && /schemas\.b has no handler/.test(e.message));
    assert.throws(() => json({ a: () => {} }, { schemas: {}, invalid: "drop" } as never), (e: unknown) => e instanceof UsageError && /invalid must be/.test(e.message));
  });

  it("validates with async schemas too", async () => {
    const even = z.object({ type: z.literal("n"), n: z.number() }).refine((m) => Promise.resolve(m.n % 2 === 0), "odd");
    const app = new App().use(json({ n: (ctx, m) => void ctx.send(String(m.n)) }, { schemas: { n: even } }));
    const conn = await connect(app);
    await conn.text(JSON.stringify({ type: "n", n: 2 }));
    await conn.text(JSON.stringify({ type: "n", n: 3 }));
    assert.deepEqual(conn.texts(), ["2"]);
    assert.equal(conn.closes()[0]?.code, 1007);
  });
});
