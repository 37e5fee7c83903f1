// Strict conformance (Autobahn|Testsuite sections 1–7, 9, 10 and handshake
// cases) of every raw adapter on this runtime, with the echo handler of
// examples/echo.ts: node:net everywhere (Deno and Bun run it through their
// node:* modules), plus Deno.listen on Deno and Bun.listen on Bun. Each must
// pass every case strictly, exactly as on Node.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Handler, type ListenOptions, runtime, type Server, serve } from "../../mod.ts";
import { serve as serveNode } from "../../runtimes/node.ts";
import { runConformance } from "./_autobahn.ts";
import { runDeflateConformance } from "./_autobahn_deflate.ts";
import { delay } from "./_wsclient.ts";

const echo: Handler = {
  message(ctx, data) {
    ctx.send(data);
  },
};

type Start = (handler: Handler, options: ListenOptions) => Promise<Server>;

const on = runtime();
const targets: [string, Start][] = [[`node:net on ${on}`, serveNode]];
if (on === "deno") targets.push(["Deno.listen", (h, o) => serve(h, { ...o, transport: "raw" })]);
if (on === "bun") targets.push(["Bun.listen", (h, o) => serve(h, { ...o, transport: "raw" })]);

/** The limit the compression cases are written against (13.+.14–16). */
const DEFLATE_MAX_MESSAGE_BYTES = 1024 * 1024;

const suites: [string, ListenOptions, (getUrl: () => string) => void][] = [
  ["echo server", {}, (getUrl) => runConformance(getUrl)],
  // permessage-deflate (sections 12, 13 and Duplex's cases) with every
  // message compressed; deflate_reference_test.ts runs them against ws.
  [
    "echo server with permessage-deflate",
    { maxMessageBytes: DEFLATE_MAX_MESSAGE_BYTES, perMessageDeflate: { threshold: 0 } },
    (getUrl) => runDeflateConformance(getUrl, { maxMessageBytes: DEFLATE_MAX_MESSAGE_BYTES, compressThreshold: 0 }),
  ],
];

for (const [name, start] of targets) {
  for (const [suite, options, run] of suites) {
    describe(`conformance: ${name} ${suite}`, () => {
      let server: Server | undefined;

      before(async () => {
        server = await start(echo, { ...options, port: 0, hostname: "127.0.0.1" });
      });

      after(async () => {
        await server?.close();
        assert.equal(server?.connections, 0);
      });

      run(() => {
        assert.ok(server, "the server is not running");
        return server.url;
      });

      it("has closed every connection by itself once the cases are done", async () => {
        const deadline = Date.now() + 2000;
        while (server!.connections > 0 && Date.now() < deadline) await delay(10);
        assert.equal(server!.connections, 0, "connections still open after every case closed");
      });
    });
  }
}
