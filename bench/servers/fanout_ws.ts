/**
 * `ws` fan-out server on Node for the benchmark, the reference Duplex's
 * `app.publish()` is compared with: every message the publisher
 * (`/fanout?role=pub`) sends goes to every other client with the usual loop,
 * `for (const client of wss.clients) client.send(data)`: `ws` frames it
 * once per client. Text stays text, binary stays binary;
 * permessage-deflate off.
 *
 *   PORT=8080 node --import tsx bench/servers/fanout_ws.ts
 *
 * @module
 */

import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { benchPort, ready } from "./_lifecycle.ts";

const wss = new WebSocketServer({ port: benchPort(), host: "127.0.0.1", perMessageDeflate: false });

wss.on("connection", (ws, request) => {
  ws.on("error", () => {
    // The socket closes next; nothing to do.
  });
  if (request.url?.includes("role=pub") !== true) return; // a subscriber: every client is one
  ws.on("message", (data, isBinary) => {
    for (const client of wss.clients) if (client !== ws) client.send(data, { binary: isBinary });
  });
});

await new Promise<void>((resolve, reject) => {
  wss.once("listening", resolve);
  wss.once("error", reject);
});

ready("ws-fanout", (wss.address() as AddressInfo).port, () =>
  new Promise<void>((resolve) => {
    for (const client of wss.clients) client.terminate();
    wss.close(() => resolve());
  }));
