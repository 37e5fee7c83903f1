// Every adapter and path this runtime has, as targets for the black-box
// suites: node:net and node:http everywhere (Deno and Bun run them through
// their node:* modules), Deno.listen and Deno.serve on Deno, Bun.listen and
// Bun.serve on Bun, each with its documented differences from the raw engine
// (README, "Known differences of the native paths"). `serve()` from mod.ts is
// the raw target of the runtime it runs on. Shared by suite_test.ts and
// faults_test.ts.
import { createServer } from "node:http";
import type { Handler, ListenOptions, Server } from "../../mod.ts";
import { runtime, serve } from "../../mod.ts";
import { attach, serve as serveNode } from "../../runtimes/node.ts";
import type { AppTarget } from "./_app_suite.ts";

const on = runtime();

async function serveNodeHttp<S>(handler: Handler<S>, options: ListenOptions = {}): Promise<Server> {
  const { port = 0, hostname = "127.0.0.1", tls: _tls, ...rest } = options;
  const http = createServer((_req, res) => res.end("plain http"));
  const ws = attach(http, handler, rest);
  await new Promise<void>((resolve) => http.listen(port, hostname, resolve));
  const bound = (http.address() as { port: number }).port;
  return {
    port: bound,
    hostname,
    url: `ws://${hostname}:${bound}`,
    get connections() {
      return ws.connections;
    },
    async close(code, reason) {
      await Promise.all([ws.close(code, reason), new Promise((resolve) => http.close(resolve))]);
    },
  };
}

const httpServerDifferences = {
  plainHttpGoesToApp: "node:http hands plain requests to the app's request handler",
  httpServerAnswersMalformed: "node:http answers requests it cannot parse itself, before any upgrade",
  httpServerHandshakeTimeout: "node:http's own headersTimeout (60 s) bounds slow handshakes, not handshakeTimeoutMs",
};

/** The targets, in the order the suites register them; those of other runtimes are skipped. */
export const targets: AppTarget[] = [];

targets.push({ name: `node:net on ${on}`, skip: false, start: serveNode });

targets.push({
  name: `node:http on ${on}`,
  skip: false,
  noTls: "the test's node:http server is plain; node:https takes the same attach()",
  start: serveNodeHttp,
  differences: httpServerDifferences,
});

targets.push({
  name: "Deno.listen (raw)",
  skip: on !== "deno" && "Deno only",
  start: (handler, options) => serve(handler, { ...options, transport: "raw" }),
});

targets.push({
  name: "Deno.serve (native)",
  skip: on !== "deno" && "Deno only",
  start: (handler, options) => serve(handler, { ...options, transport: "native" }),
  differences: {
    protocolErrorWithoutCloseFrame: "Deno's native server drops TCP without a close frame on a bad opcode or invalid UTF-8",
    protocolErrorReportedAs1006: "Deno reports a protocol error as an unclean close: the app hears 1006",
    acceptsUnmaskedFrames: "Deno's native server accepts unmasked client frames",
    cannotDropTcp: "Deno's native WebSocket cannot drop TCP: after a 1009 it waits for the peer's close",
    closeEchoesReason: "Deno echoes the peer's close reason",
    upgradesHttp10: "Deno.serve does not expose the HTTP version, so an HTTP/1.0 upgrade succeeds",
    noServerPing: "Deno's native WebSocket has no ping() and no pong event",
    terminateSendsClose: "Deno's native WebSocket cannot drop its connection: terminate() sends an empty close frame",
    httpServerAnswersMalformed: "Deno.serve answers requests it cannot parse itself",
    httpServerHandshakeTimeout: "Deno.serve, not Duplex, bounds slow request heads",
    dropsOnMessageAfterClose: "Deno's native server drops TCP when a message arrives after close(), possibly before its close frame went out",
  },
});

targets.push({
  name: "Bun.listen (raw)",
  skip: on !== "bun" && "Bun only",
  start: (handler, options) => serve(handler, { ...options, transport: "raw" }),
});

targets.push({
  name: "Bun.serve (native)",
  skip: on !== "bun" && "Bun only",
  start: (handler, options) => serve(handler, { ...options, transport: "native" }),
  differences: {
    protocolErrorCloseReason: "Bun's close frame for a protocol error carries a reason text",
    closeEchoesReason: "Bun echoes the peer's close reason",
    closeReportedAtOnce: "Bun reports a server-initiated close at once, with the server's own code and reason",
    upgradesHttp10: "Bun.serve does not expose the HTTP version, so an HTTP/1.0 upgrade succeeds",
    httpServerAnswersMalformed: "Bun.serve answers requests it cannot parse itself",
    httpServerHandshakeTimeout: "Bun.serve, not Duplex, bounds slow request heads",
  },
});
