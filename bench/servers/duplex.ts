/**
 * Duplex echo server for the benchmark, on whichever runtime runs it: every
 * message goes back as it came (text as text, binary as binary).
 * `TRANSPORT=raw` (the default) runs Duplex's engine on the runtime's TCP
 * sockets (`node:net`, `Deno.listen`, `Bun.listen`); `TRANSPORT=native` runs
 * the same hooks over `Deno.serve` or `Bun.serve`.
 *
 *   PORT=8080 node --import tsx bench/servers/duplex.ts
 *   PORT=8080 TRANSPORT=native deno run -A bench/servers/duplex.ts
 *   PORT=8080 TRANSPORT=native bun bench/servers/duplex.ts
 *
 * @module
 */

import process from "node:process";
import { serve, type TransportName } from "../../mod.ts";
import { benchPort, ready } from "./_lifecycle.ts";

const transport = (process.env.TRANSPORT ?? "raw") as TransportName;

const server = await serve({
  message(ctx, data) {
    ctx.send(data);
  },
}, { port: benchPort(), hostname: "127.0.0.1", transport });

ready(`duplex-${transport}`, server.port, () => server.close());
