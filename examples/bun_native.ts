// Duplex inside an existing Bun.serve app: HTTP routes and a WebSocket route
// on one port, Bun doing the framing (the native path).
//
//   PORT=8080 bun examples/bun_native.ts
import { nativeHandler } from "../runtimes/bun.ts";

const ws = nativeHandler({
  open: (ctx) => void ctx.send(`welcome ${ctx.id}`),
  message: (ctx, data) => void ctx.send(data),
}, { protocols: ["echo.v1"] });

const server = Bun.serve({
  port: Number(process.env.PORT ?? 8080),
  hostname: "127.0.0.1",
  fetch: (req, server) => new URL(req.url).pathname === "/ws" ? ws.upgrade(req, server) : new Response("hello from Bun.serve\n"),
  websocket: ws.websocket,
});
console.log(`listening on ${server.url}`);

process.once("SIGINT", async () => {
  await ws.close(); // 1001 to every WebSocket
  await server.stop();
  process.exit(0);
});
