/**
 * The contract benchmark's server (`bench/contract.ts` drives it): one Node
 * process, Duplex's raw transport, with a bare echo and validated calls
 * side by side, so that both are measured by the same clients in one run.
 *
 *   /echo      every text message is sent back as it came (no parsing)
 *   /json      every text message is parsed and sent back re-encoded (JSON's own cost)
 *   /zod       `duplex.v1` with `serveContract()`: the call `echo` validates its
 *              input with Zod and returns it
 *   /valibot   the same contract with Valibot
 *   /checked   the Zod contract with `validateOutput: true` (input and output validated)
 *   /cpu       answers any message with this process's CPU time so far, in µs (user + system)
 *
 *   PORT=0 node --import tsx bench/servers/contract_server.ts
 *
 * @module
 */

import process from "node:process";
import { z } from "zod";
import * as v from "valibot";
import { App, contract, serve, serveContract } from "../../mod.ts";
import { benchPort, ready } from "./_lifecycle.ts";

const zodChat = contract({
  calls: {
    echo: {
      input: z.object({ room: z.string().max(64), text: z.string().max(1000), at: z.number() }),
      output: z.object({ room: z.string(), text: z.string(), at: z.number() }),
    },
  },
});
const valibotChat = contract({
  calls: {
    echo: {
      input: v.object({ room: v.pipe(v.string(), v.maxLength(64)), text: v.pipe(v.string(), v.maxLength(1000)), at: v.number() }),
      output: v.object({ room: v.string(), text: v.string(), at: v.number() }),
    },
  },
});

const limits = { maxCallsInFlight: 1000, onError: (e: unknown) => console.error(e) };
const app = new App();
app.route("/echo", { message: (ctx) => void ctx.send(ctx.data) });
app.route("/json", { message: (ctx) => void ctx.send(JSON.stringify(JSON.parse(String(ctx.data)))) });
app.route("/zod", serveContract(zodChat, { calls: { echo: (m) => m }, ...limits }));
app.route("/valibot", serveContract(valibotChat, { calls: { echo: (m) => m }, ...limits }));
app.route("/checked", serveContract(zodChat, { calls: { echo: (m) => m }, validateOutput: true, ...limits }));
app.route("/cpu", {
  message(ctx) {
    const { user, system } = process.cpuUsage();
    ctx.send(String(user + system));
  },
});
app.onError((error) => console.error(error));

const server = await serve(app, { port: benchPort(), hostname: "127.0.0.1", maxBufferedBytes: 64 * 1024 * 1024 });
ready("duplex-contract", server.port, () => server.close());
