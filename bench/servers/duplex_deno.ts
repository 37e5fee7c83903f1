/**
 * Duplex echo server on Deno for the benchmark: every message goes back as
 * it came (text as text, binary as binary). `TRANSPORT=raw` (the default)
 * runs Duplex's engine on `Deno.listen` sockets; `TRANSPORT=native` runs the
 * same hooks over `Deno.serve` + `Deno.upgradeWebSocket`.
 *
 *   PORT=8080 deno run -A bench/servers/duplex_deno.ts
 *   PORT=8080 TRANSPORT=native deno run -A bench/servers/duplex_deno.ts
 *
 * @module
 */

import process from "node:process";
import { serve, serveNative } from "../../runtimes/deno.ts";
import { benchPort, ready } from "./_lifecycle.ts";

const transport = process.env.TRANSPORT ?? "raw";
if (transport !== "raw" && transport !== "native") throw new RangeError(`Invalid TRANSPORT: ${transport}`);

const server = await (transport === "native" ? serveNative : serve)({
  message(ctx, data) {
    ctx.send(data);
  },
}, { port: benchPort(), hostname: "127.0.0.1" });

ready(`duplex-${transport}`, server.port, () => server.close());
