// Echo server: every message goes back as it came (text stays text, binary
// stays binary), on any path. Runs unchanged on the three runtimes:
//
//   PORT=8080 HOST=127.0.0.1 node --import tsx examples/echo.ts
//   PORT=8080 deno run -A examples/echo.ts
//   PORT=8080 bun examples/echo.ts
//
// TRANSPORT=native uses the runtime's own WebSocket server (Deno.serve,
// Bun.serve) instead of Duplex's engine on raw sockets; Node has none.
//
// permessage-deflate is on, for every message (threshold 0), when the client
// offers it (native paths decline it); PERMESSAGE_DEFLATE=0 turns it off.
import process from "node:process";
import { runtime, serve, type TransportName } from "../mod.ts";

const port = Number(process.env.PORT ?? 8080);
const hostname = process.env.HOST ?? "127.0.0.1";
const transport = (process.env.TRANSPORT ?? "raw") as TransportName;
const perMessageDeflate = process.env.PERMESSAGE_DEFLATE === "0" ? false : { threshold: 0 };

const server = await serve({
  message(ctx, data) {
    ctx.send(data);
  },
}, { port, hostname, transport, perMessageDeflate });

// Graceful shutdown on SIGTERM (what a supervisor, systemd or Kubernetes
// sends) and SIGINT (Ctrl-C): server.close() stops accepting, drops
// handshakes in progress, delivers every message already queued, sends 1001
// to every connection and waits for their close handshakes, destroying what
// is left after shutdownTimeoutMs (10 s); then the process exits 0. A second
// signal meanwhile ends the process at once (the default action).
// Registered before the first line: a supervisor may stop it as soon as it is listening.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, async () => {
    await server.close();
    process.exit(0);
  });
}

console.log(`listening on ws://${hostname}:${server.port}`);
console.log(`runtime: ${runtime()}, transport: ${runtime() === "node" ? "raw (Node has no native server)" : transport}`);

