/**
 * `ws` echo server on Node for the benchmark, the reference Duplex is
 * compared with: every message goes back as it came (text as text, binary
 * as binary), permessage-deflate off.
 *
 *   PORT=8080 node --import tsx bench/servers/ws_node.ts
 *
 * @module
 */

import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { benchPort, ready } from "./_lifecycle.ts";

const wss = new WebSocketServer({ port: benchPort(), host: "127.0.0.1", perMessageDeflate: false });

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

ready("ws", (wss.address() as AddressInfo).port, () =>
  new Promise<void>((resolve) => {
    for (const client of wss.clients) client.terminate();
    wss.close(() => resolve());
  }));
