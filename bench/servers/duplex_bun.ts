/**
 * Duplex echo server on Bun for the benchmark: every message goes back as
 * it came (text as text, binary as binary). `TRANSPORT=raw` (the default)
 * runs Duplex's engine on `Bun.listen` sockets; `TRANSPORT=native` runs the
 * same hooks over `Bun.serve` and its `websocket` handler.
 *
 *   PORT=8080 bun bench/servers/duplex_bun.ts
 *   PORT=8080 TRANSPORT=native bun bench/servers/duplex_bun.ts
 *
 * @module
 */

import process from "node:process";
import { serve, serveNative } from "../../runtimes/bun.ts";
import { benchPort, ready } from "./_lifecycle.ts";

const transport = process.env.TRANSPORT ?? "raw";
if (transport !== "raw" && transport !== "native") throw new RangeError(`Invalid TRANSPORT: ${transport}`);

const server = await (transport === "native" ? serveNative : serve)({
  message(ctx, data) {
    ctx.send(data);
  },
}, { port: benchPort(), hostname: "127.0.0.1" });

ready(`duplex-${transport}`, server.port, () => server.close());
