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
 * `PIPELINE=app` echoes through an `App` instead of bare hooks: the App the
 * performance issue measures, one middleware object with `upgrade`, `open`
 * and `message` (the upgrade keeps the path's role in `ctx.state`; `/sub`
 * subscribes to a topic when it opens, each message on `/pub` is published
 * to it, any other path, the generator's `/bench` included, is echoed),
 * plus `heartbeat()` (which has no `message` phase: the message chain is
 * that one object). `PIPELINE=router` is the previous bench App: heartbeat,
 * a function middleware on every event and a `Router` around the echo.
 *
 * `OBSERVE=1` (with `PIPELINE=app`) puts `observe()` first in that app:
 * the `observe` part's "metrics on" server, against the same app without it.
 *
 * `TEXT_AS=bytes` (bare hooks) sets `textAs: "bytes"`: text reaches the hook
 * as its validated UTF-8 bytes and goes back with `{ binary: false }`, the
 * pass-through a relay does, without a string round trip (as `ws` hands
 * text over as a Buffer).
 *
 * `DEFLATE_THRESHOLD` turns permessage-deflate on (the `deflate` part, on
 * Node): `0` compresses every message, `default` is `perMessageDeflate:
 * true` (threshold 1024); unset, off.
 *
 * @module
 */

import process from "node:process";
import { App, type Handler, heartbeat, observe, Router, serve, type TransportName } from "../../mod.ts";
import { benchApp } from "./_app.ts";
import { benchPerMessageDeflate, benchPort, deflateTag, ready } from "./_lifecycle.ts";

const transport = (process.env.TRANSPORT ?? "raw") as TransportName;

const pipeline = process.env.PIPELINE ?? "hooks";
if (!["hooks", "app", "router"].includes(pipeline)) {
  throw new RangeError(`Invalid PIPELINE: expected hooks, app or router, got ${pipeline}`);
}
const observed = process.env.OBSERVE === "1";

/** The issue's App (bench/servers/_app.ts), after observe() with OBSERVE=1. */
function app(): Handler {
  return benchApp(...(observed ? [observe()] : [])).onError((error) => console.error(error));
}

/** The previous bench App: heartbeat, a function middleware on every event, a router. */
function routerApp(): Handler {
  let events = 0;
  const app = new App();
  if (observed) app.use(observe());
  return app
    .use(heartbeat({ intervalMs: 30_000, timeoutMs: 10_000 }))
    .use((_ctx, next) => {
      events++; // a sync middleware on every event, as a counter or a logger would be
      return next();
    })
    .use(new Router().route("/*", {
      message(ctx) {
        ctx.send(ctx.data);
      },
    }))
    .onError((error) => console.error(error, events));
}

const textAsBytes = process.env.TEXT_AS === "bytes";

const handler: Handler = pipeline === "app" ? app() : pipeline === "router" ? routerApp() : textAsBytes
  ? {
    message(ctx, data, binary) {
      ctx.send(data, { binary });
    },
  }
  : {
    message(ctx, data) {
      ctx.send(data);
    },
  };

const perMessageDeflate = benchPerMessageDeflate();

// Off: the option left out, as in the other parts.
const server = await serve(handler, {
  port: benchPort(),
  hostname: "127.0.0.1",
  transport,
  ...(textAsBytes ? { textAs: "bytes" as const } : {}),
  ...(perMessageDeflate === false ? {} : { perMessageDeflate }),
});

ready(
  `duplex-${transport}${pipeline === "hooks" ? "" : `-${pipeline}`}${textAsBytes ? "-textbytes" : ""}${observed ? "-observed" : ""}${deflateTag(perMessageDeflate)}`,
  server.port,
  () => server.close(),
);
