/**
 * Duplex echo server on Node for the benchmark: every message goes back as
 * it came (text as text, binary as binary).
 *
 *   PORT=8080 node --import tsx bench/servers/duplex_node.ts
 *
 * @module
 */

import { serve } from "../../runtimes/node.ts";
import { benchPort, ready } from "./_lifecycle.ts";

const server = await serve({
  message(ctx, data) {
    ctx.send(data);
  },
}, { port: benchPort(), hostname: "127.0.0.1" });

ready("duplex", server.port, () => server.close());
