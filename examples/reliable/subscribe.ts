// Subscribes to TOPIC from the start of its history through the Duplex
// client and prints every message's text on its own line as it arrives, each
// exactly once and in order, through any number of disconnects. Exits 0 once
// it has printed COUNT messages; on a gap (messages the history no longer
// holds: trimmed, expired, or a new epoch after a restart) prints one line
// starting with `GAP` and exits 3; 2 on a usage error; 1 when the server
// refuses the subscription or the client gives up (status `closed`).
//
//   node --import tsx examples/reliable/subscribe.ts ws://127.0.0.1:8080 news 1000
//   deno run -A examples/reliable/subscribe.ts ws://127.0.0.1:8080 news 1000
//   bun examples/reliable/subscribe.ts ws://127.0.0.1:8080 news 1000
import process from "node:process";
import { createClient, Exit, exitAfter, parseArgs } from "./_client.ts";

const { url, topic, count } = parseArgs("subscribe.ts");
const client = await createClient(url);
const utf8 = new TextDecoder();
let printed = 0;
let done = false;

function finish(text: string, code: number): void {
  done = true;
  client.close();
  void exitAfter(text, code);
}

client.on("subscribed", (result) => {
  if (done || result.topic !== topic || result.result !== "gap") return;
  const gap = result.gap;
  const lost = gap === undefined ? "" : ` ${gap.reason}: epoch ${gap.epoch}, from offset ${gap.from}${gap.to === undefined ? "" : ` to ${gap.to}`}`;
  finish(`GAP${lost}\n`, Exit.Gap);
});

// A refusal (forbidden, invalid…) ends the subscription; `unavailable` is retried by the client.
client.on("error", (error) => {
  if (done || error.topic !== topic || error.code === "unavailable") return;
  process.stderr.write(`subscribe refused: ${error.code}: ${error.message}\n`);
  finish("", Exit.Failed);
});
client.on("status", (event) => {
  if (done || event.status !== "closed") return;
  process.stderr.write(`connection closed for good${event.code === undefined ? "" : `: ${event.code} ${event.reason ?? ""}`}\n`);
  finish("", Exit.Failed);
});

client.subscribe(topic, (message) => {
  if (done) return;
  const text = typeof message.data === "string" ? message.data : utf8.decode(message.data);
  if (++printed === count) return finish(`${text}\n`, Exit.Ok);
  process.stdout.write(`${text}\n`);
}, { from: "start" });
