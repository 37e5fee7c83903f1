// A Duplex server on Node that answers every message with whether Node has
// loaded its fetch implementation (undici) so far: for node_test.ts, which
// checks that accepting and serving connections does not load it.
import process from "node:process";
import { serve } from "../../runtimes/node.ts";

const loaded = () => (process as unknown as { moduleLoadList: string[] }).moduleLoadList.some((m) => m.includes("undici"));

const server = await serve({
  message(ctx) {
    ctx.send(String(loaded()));
  },
}, { port: 0, hostname: "127.0.0.1" });
console.log(`listening on ws://127.0.0.1:${server.port}`);
