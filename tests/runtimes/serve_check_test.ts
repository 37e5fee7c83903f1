// serve() on the running runtime (Node, Deno or Bun, raw and native)
// refuses what would otherwise be accepted and ignored, before it listens,
// with the exact message; and conn.close(1006) says what to do instead.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { describe, it } from "node:test";
import { type Handler, serve, type TransportName, UsageError } from "../../mod.ts";
import { Client, within } from "./_helpers.ts";

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Whether the port can be bound, that is, nothing listens on it. */
async function canBind(port: number): Promise<boolean> {
  const probe = createServer();
  const bound = await new Promise<boolean>((resolve) => {
    probe.once("error", () => resolve(false));
    probe.listen(port, "127.0.0.1", () => resolve(true));
  });
  if (bound) await new Promise((resolve) => probe.close(resolve));
  return bound;
}

const echo: Handler = { message: (conn, data) => void conn.send(data) };

const cases: [string, unknown, unknown, string, string][] = [
  ["serve(null)", null, undefined, "ERR_INVALID_HANDLER", "Invalid handler: serve() takes an object of hooks, got null"],
  [
    "serve(fn)",
    (conn: { send(data: string): void }) => conn.send("hi"),
    undefined,
    "ERR_INVALID_HANDLER",
    "Invalid handler: serve() takes an object of hooks, such as { message(conn, data) { … } }, got a function",
  ],
  ["serve({ onMessage })", { onMessage() {} }, undefined, "ERR_INVALID_HANDLER", 'Invalid handler: "onMessage" is not a hook, did you mean "message"?'],
  ["serve({ message: 1 })", { message: 1 }, undefined, "ERR_INVALID_HANDLER", "Invalid handler: message must be a function, got the number 1"],
  [
    "an unknown option",
    echo,
    { maxMessageSize: 1 },
    "ERR_INVALID_OPTION",
    'Invalid option: "maxMessageSize" is not an option, did you mean "maxMessageBytes"?',
  ],
  ["ws's maxPayload", echo, { maxPayload: 1 }, "ERR_INVALID_OPTION", 'Invalid option: "maxPayload" is not an option, did you mean "maxMessageBytes"?'],
  ["a port given as a string", echo, { port: "8090" }, "ERR_INVALID_OPTION", 'Invalid option: port must be an integer from 0 to 65535, got the string "8090"'],
  ["a port out of range", echo, { port: 70000 }, "ERR_INVALID_OPTION", "Invalid option: port must be an integer from 0 to 65535, got the number 70000"],
  [
    "a limit given as a string",
    echo,
    { maxMessageBytes: "1024" },
    "ERR_INVALID_OPTION",
    'Invalid option: maxMessageBytes must be an integer of at least 1, got the string "1024"',
  ],
];

for (const transport of ["raw", "native"] as TransportName[]) {
  describe(`serve() refuses at once (transport ${transport})`, () => {
    for (const [name, handler, options, code, message] of cases) {
      it(`${name}: ${message}`, async () => {
        const port = await freePort();
        const given = { port, transport, ...(options as object) };
        await assert.rejects(serve(handler as Handler, given), (err: unknown) => {
          assert.ok(err instanceof UsageError, `a UsageError, got ${String(err)}`);
          assert.equal(err.code, code);
          assert.equal(err.message, message);
          return true;
        });
        if (!(options as { port?: unknown } | undefined)?.port) assert.equal(await canBind(port), true, "nothing listens");
      });
    }

    it('an unknown transport: Invalid option: transport must be "raw" or "native", got the string "uws"', async () => {
      await assert.rejects(
        serve(echo, { port: 0, transport: "uws" as TransportName }),
        { name: "UsageError", code: "ERR_INVALID_OPTION", message: 'Invalid option: transport must be "raw" or "native", got the string "uws"' },
      );
    });

    it("conn.close(1006) points at terminate() and the application range", async () => {
      let refused: unknown;
      const server = await serve({
        open(conn) {
          try {
            conn.close(1006);
          } catch (err) {
            refused = err;
          }
          conn.close(4000, "bye");
        },
      }, { port: 0, transport });
      try {
        const client = await Client.open(server.url);
        assert.deepEqual(await within(client.closed), { code: 4000, reason: "bye" });
        assert.ok(refused instanceof UsageError);
        assert.equal(refused.code, "ERR_INVALID_CLOSE_CODE");
        assert.equal(
          refused.message,
          "Invalid close code: 1006 is only reported, never sent (call terminate() to drop the connection; the application's own codes are 4000 to 4999)",
        );
      } finally {
        await server.close();
      }
    });
  });
}

describe("Hono's upgradeWebSocket() refuses at once", () => {
  it('a handler with Hono-style names: Invalid handler: "onMessage" is not a hook, did you mean "message"?', async () => {
    const { upgradeWebSocket } = await import("../../runtimes/hono.ts");
    assert.throws(() => upgradeWebSocket({ onMessage() {} } as never), {
      name: "UsageError",
      code: "ERR_INVALID_HANDLER",
      message: 'Invalid handler: "onMessage" is not a hook, did you mean "message"?',
    });
  });

  it('an unknown option: Invalid option: "maxPayload" is not an option, did you mean "maxMessageBytes"?', async () => {
    const { upgradeWebSocket } = await import("../../runtimes/hono.ts");
    assert.throws(() => upgradeWebSocket(() => ({}), { maxPayload: 1 } as never), {
      name: "UsageError",
      code: "ERR_INVALID_OPTION",
      message: 'Invalid option: "maxPayload" is not an option, did you mean "maxMessageBytes"?',
    });
  });
});
