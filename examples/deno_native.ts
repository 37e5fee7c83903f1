// Duplex inside an existing Deno.serve app: HTTP routes and a WebSocket
// route on one port, Deno doing the framing (the native path).
//
//   PORT=8080 deno run -A examples/deno_native.ts
import { nativeHandler } from "../runtimes/deno.ts";

const ws = nativeHandler({
  open: (ctx) => void ctx.send(`welcome ${ctx.id}`),
  message: (ctx, data) => void ctx.send(data),
}, { protocols: ["echo.v1"] });

const server = Deno.serve({ port: Number(Deno.env.get("PORT") ?? 8080), hostname: "127.0.0.1" }, (req, info) =>
  new URL(req.url).pathname === "/ws" ? ws.upgrade(req, info) : new Response("hello from Deno.serve\n"));

Deno.addSignalListener("SIGINT", async () => {
  await ws.close(); // 1001 to every WebSocket
  await server.shutdown();
  Deno.exit(0);
});
