// Strict conformance (Autobahn|Testsuite sections 1–7, 9, 10 and handshake
// cases) of the Node adapter's standalone server, with the echo handler of
// examples/echo.ts. Runs unchanged under Node, Deno and Bun.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Server, serve } from "../../runtimes/node.ts";
import { runConformance } from "./_autobahn.ts";
import { delay } from "./_wsclient.ts";

describe("conformance: serve() echo server", () => {
  let server: Server | undefined;

  before(async () => {
    server = await serve({
      message(ctx, data) {
        ctx.send(data);
      },
    }, { port: 0, hostname: "127.0.0.1" });
  });

  after(async () => {
    await server?.close();
    assert.equal(server?.connections, 0);
  });

  runConformance(() => {
    assert.ok(server, "the server is not running");
    return server.url;
  });

  it("has closed every connection by itself once the cases are done", async () => {
    const deadline = Date.now() + 2000;
    while (server!.connections > 0 && Date.now() < deadline) await delay(10);
    assert.equal(server!.connections, 0, "connections still open after every case closed");
  });
});
