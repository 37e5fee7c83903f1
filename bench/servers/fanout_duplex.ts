/**
 * Duplex fan-out server for the benchmark, on whichever runtime runs it: an
 * `App` whose subscribers (`/fanout?role=sub`) subscribe to one topic when
 * they open, and whose publisher (`/fanout?role=pub`) has every message it
 * sends published to that topic with `app.publish()`: framed once, the same
 * bytes written to every subscriber (on the raw transport; the native one
 * hands the data to the runtime per subscriber). Text stays text, binary
 * stays binary.
 *
 *   PORT=8080 node --import tsx bench/servers/fanout_duplex.ts
 *   PORT=8080 TRANSPORT=native deno run -A bench/servers/fanout_duplex.ts
 *   PORT=8080 TRANSPORT=native bun bench/servers/fanout_duplex.ts
 *
 * `TRANSPORT=raw` (the default) runs Duplex's engine on the runtime's TCP
 * sockets (`node:net`, `Deno.listen`, `Bun.listen`); `TRANSPORT=native` runs
 * the same app over `Deno.serve` or `Bun.serve`.
 *
 * @module
 */

import process from "node:process";
import { App, serve, type TransportName } from "../../mod.ts";
import { benchPort, ready } from "./_lifecycle.ts";

const transport = (process.env.TRANSPORT ?? "raw") as TransportName;
const TOPIC = "fanout";

const app: App<{ subscriber: boolean }> = new App<{ subscriber: boolean }>()
  .use({
    upgrade(ctx, next) {
      ctx.state = { subscriber: ctx.query.get("role") === "sub" };
      return next();
    },
    open(ctx) {
      if (ctx.state.subscriber) ctx.subscribe(TOPIC);
    },
    message(ctx) {
      app.publish(TOPIC, ctx.data);
    },
  })
  .onError((error) => console.error(error));

const server = await serve(app, { port: benchPort(), hostname: "127.0.0.1", transport });

ready(`duplex-fanout-${transport}`, server.port, () => server.close());
