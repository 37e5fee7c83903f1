// Publishes the texts `1` … `COUNT` to TOPIC through the Duplex client, one
// after another, each awaited until the server acked it (it is stored, with
// an offset). Through disconnects the client re-sends what was not acked,
// under the same idempotency key: the server stores each text once. Exits 0
// once all are acked; 2 on a usage error; 1 when a publish is refused.
//
//   node --import tsx examples/reliable/publish.ts ws://127.0.0.1:8080 news 1000
//   deno run -A examples/reliable/publish.ts ws://127.0.0.1:8080 news 1000
//   bun examples/reliable/publish.ts ws://127.0.0.1:8080 news 1000
import process from "node:process";
import { DuplexError } from "../../client/mod.ts";
import { createClient, Exit, exitAfter, parseArgs } from "./_client.ts";

const { url, topic, count } = parseArgs("publish.ts");
const client = await createClient(url);

for (let i = 1; i <= count; i++) {
  for (;;) {
    try {
      await client.publish(topic, String(i));
      break;
    } catch (error) {
      // `unavailable`: the server could not store it (nothing stored): try again.
      if (error instanceof DuplexError && error.code === "unavailable") {
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      process.stderr.write(`publish ${i} failed: ${error instanceof DuplexError ? `${error.code}: ` : ""}${(error as Error).message}\n`);
      client.close();
      await exitAfter("", Exit.Failed);
    }
  }
}
client.close();
await exitAfter("", Exit.Ok);
