// The JSON codec: dispatch by `type`, and the close codes of its faults.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import { App } from "../../plugins/app.ts";
import { json } from "../../plugins/codec.ts";
import { connect, errorLog } from "./_harness.ts";

type Messages = {
  add: { type: "add"; a: number; b: number };
  echo: { type: "echo"; text: string };
};

function calculator(after: string[] = [], options = {}) {
  const errors = errorLog();
  const app = new App()
    .use(
      json<Messages>({
        add: (ctx, m) => void ctx.send(JSON.stringify({ type: "sum", value: m.a + m.b })),
        echo: (ctx, m) => void ctx.send(JSON.stringify({ type: "echo", text: m.text.toUpperCase() })),
      }, options),
      {
        message: (ctx) => void after.push(typeof ctx.data === "string" ? ctx.data : `bytes ${ctx.data.length}`),
      },
    )
    .onError(errors.handler);
  return { app, errors };
}

describe("json codec", () => {
  it("dispatches each message to the handler of its type, typed", async () => {
    const after: string[] = [];
    const { app, errors } = calculator(after);
    const conn = await connect(app);
    await conn.text(JSON.stringify({ type: "add", a: 2, b: 40 }));
    await conn.text(JSON.stringify({ type: "echo", text: "hi", extra: true }));
    assert.deepEqual(conn.texts().map((t) => JSON.parse(t)), [{ type: "sum", value: 42 }, { type: "echo", text: "HI" }]);
    assert.deepEqual(after, [], "handled messages do not go on down the chain");
    assert.deepEqual(errors.errors, []);
    assert.equal(conn.readyState, 1);
  });

  it("awaits an async handler before the next message", async () => {
    const order: string[] = [];
    const app = new App().use(json<{ work: { type: "work"; n: number } }>({
      async work(ctx, m) {
        order.push(`start ${m.n}`);
        await Promise.resolve();
        order.push(`end ${m.n}`);
        ctx.send(String(m.n));
      },
    }));
    const conn = await connect(app);
    await conn.text('{"type":"work","n":1}');
    await conn.text('{"type":"work","n":2}');
    assert.deepEqual(order, ["start 1", "end 1", "start 2", "end 2"]);
    assert.deepEqual(conn.texts(), ["1", "2"]);
  });

  it("closes with 1003 on a binary message", async () => {
    const { app, errors } = calculator();
    const conn = await connect(app);
    await conn.binary([1, 2, 3]);
    assert.deepEqual(conn.closes(), [{ code: 1003, reason: "Expected a JSON text message" }]);
    assert.deepEqual(errors.errors, [], "a codec fault is a CloseError, not an error");
  });

  it("closes with 1007 on text that is not JSON", async () => {
    const { app, errors } = calculator();
    const conn = await connect(app);
    await conn.text("{not json");
    assert.deepEqual(conn.closes(), [{ code: 1007, reason: "Invalid JSON" }]);
    assert.deepEqual(errors.errors, []);
  });

  for (const [text, reason] of [
    ["[1,2]", "Expected a JSON object"],
    ['"add"', "Expected a JSON object"],
    ["null", "Expected a JSON object"],
    ["42", "Expected a JSON object"],
    ["{}", "Expected a string type"],
    ['{"type":7}', "Expected a string type"],
    ['{"kind":"add"}', "Expected a string type"],
  ] as const) {
    it(`closes with 1007 on ${text}`, async () => {
      const { app, errors } = calculator();
      const conn = await connect(app);
      await conn.text(text);
      assert.deepEqual(conn.closes(), [{ code: 1007, reason }]);
      assert.deepEqual(errors.errors, []);
    });
  }

  it("closes with 1003 on an unknown type, naming it", async () => {
    const after: string[] = [];
    const { app, errors } = calculator(after);
    const conn = await connect(app);
    await conn.text('{"type":"mul","a":2,"b":3}');
    assert.deepEqual(conn.closes(), [{ code: 1003, reason: "Unknown message type: mul" }]);
    assert.deepEqual(after, [], "an unknown message does not go on by default");
    assert.deepEqual(errors.errors, []);
  });

  it("treats inherited property names as unknown types", async () => {
    const { app } = calculator();
    for (const type of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const conn = await connect(app);
      await conn.text(JSON.stringify({ type }));
      assert.deepEqual(conn.closes(), [{ code: 1003, reason: `Unknown message type: ${type}` }], type);
    }
  });

  it("keeps the close reason of a long unknown type within 123 bytes", async () => {
    const { app } = calculator();
    const conn = await connect(app);
    await conn.text(JSON.stringify({ type: "é".repeat(200) }));
    const [close] = conn.closes();
    assert.equal(close?.code, 1003);
    assert.ok(new TextEncoder().encode(close!.reason).length <= 123, "reason fits a control frame");
    assert.ok(close!.reason.startsWith("Unknown message type: éé"));
  });

  it("passes an unknown type, unparsed, to the next middleware with { unknown: 'next' }", async () => {
    const after: string[] = [];
    const { app, errors } = calculator(after, { unknown: "next" });
    const conn = await connect(app);
    await conn.text('{"type":"mul","a":2,"b":3}');
    await conn.text('{"type":"add","a":1,"b":1}');
    assert.deepEqual(after, ['{"type":"mul","a":2,"b":3}'], "the raw text reached the next middleware");
    assert.deepEqual(conn.texts(), ['{"type":"sum","value":2}']);
    assert.deepEqual(conn.closes(), []);
    assert.deepEqual(errors.errors, []);
    await conn.binary([1]);
    assert.deepEqual(conn.closes(), [{ code: 1003, reason: "Expected a JSON text message" }], "binary still closes with next");
  });

  it("reports a handler that throws, and closes with 1011", async () => {
    const errors = errorLog();
    const boom = new Error("handler bug");
    const app = new App().use(json<{ x: { type: "x" } }>({
      x() {
        throw boom;
      },
    })).onError(errors.handler);
    const conn = await connect(app);
    await conn.text('{"type":"x"}');
    assert.deepEqual(errors.errors, [boom]);
    assert.deepEqual(conn.closes(), [{ code: 1011, reason: "Internal error" }]);
  });

  it("refuses a handler that is not a function", () => {
    assert.throws(
      () => json({ x: "nope" } as never),
      (e) => e instanceof UsageError && e.code === "ERR_INVALID_MIDDLEWARE",
    );
  });
});
