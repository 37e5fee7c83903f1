/**
 * `ws` echo server on Node for the benchmark, the reference Duplex is
 * compared with: every message goes back as it came (text as text, binary
 * as binary), permessage-deflate off unless `DEFLATE_THRESHOLD` is set.
 * With its optional native addons (`bufferutil` for masking,
 * `utf-8-validate`) by default, as `ws` loads them when installed; without
 * them when `WS_NO_BUFFER_UTIL=1` and `WS_NO_UTF_8_VALIDATE=1` are set
 * (`ws`'s own switches). It exits with an
 * error when the addons are asked for and cannot load, so that a row named
 * "ws + addons" never runs without them.
 *
 * `DEFLATE_THRESHOLD` turns permessage-deflate on (the `deflate` part): `0`
 * compresses every message, `default` is `perMessageDeflate: true` (`ws`'s
 * defaults: threshold 1024, which `ws` applies only without context
 * takeover); unset, off.
 *
 *   PORT=8080 node --import tsx bench/servers/ws_node.ts
 *   PORT=8080 WS_NO_BUFFER_UTIL=1 WS_NO_UTF_8_VALIDATE=1 node --import tsx bench/servers/ws_node.ts
 *
 * @module
 */

import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { WebSocketServer } from "ws";
import { benchPerMessageDeflate, benchPort, deflateTag, ready } from "./_lifecycle.ts";

const addons = !process.env.WS_NO_BUFFER_UTIL && !process.env.WS_NO_UTF_8_VALIDATE;
if (addons) {
  const require = createRequire(import.meta.url);
  try {
    require("bufferutil");
    require("utf-8-validate");
  } catch (err) {
    console.error("ws_node.ts: bufferutil / utf-8-validate cannot load:", err);
    process.exit(1);
  }
}

const perMessageDeflate = benchPerMessageDeflate();

const wss = new WebSocketServer({ port: benchPort(), host: "127.0.0.1", perMessageDeflate });

wss.on("connection", (ws) => {
  ws.on("error", () => {
    // The socket closes next; nothing to do.
  });
  ws.on("message", (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
});

await new Promise<void>((resolve, reject) => {
  wss.once("listening", resolve);
  wss.once("error", reject);
});

ready(`${addons ? "ws+addons" : "ws"}${deflateTag(perMessageDeflate)}`, (wss.address() as AddressInfo).port, () =>
  new Promise<void>((resolve) => {
    for (const client of wss.clients) client.terminate();
    wss.close(() => resolve());
  }));
