// Echo server: every message goes back as it came (text stays text, binary
// stays binary), on any path.
//
//   PORT=8080 HOST=127.0.0.1 node --import tsx examples/echo.ts
import process from "node:process";
import { serve } from "../runtimes/node.ts";

const port = Number(process.env.PORT ?? 8080);
const hostname = process.env.HOST ?? "127.0.0.1";

const server = await serve({
  message(ctx, data) {
    ctx.send(data);
  },
}, { port, hostname });

console.log(`listening on ws://${hostname}:${server.port}`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, async () => {
    await server.close();
    process.exit(0);
  });
}
