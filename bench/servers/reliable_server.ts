/**
 * The reliable-delivery benchmark's server (`bench/reliable.ts` drives it):
 * one Node process, Duplex's raw transport, with a plain pub/sub topic and a
 * recoverable one side by side, so that both are measured by the same
 * clients in the same run.
 *
 *   /plain?role=sub   subscribes to the plain topic `t` when it opens
 *   /plain?role=pub   every message it sends is `app.publish()`ed to `t`
 *   /r                `duplex.v1` (the reliable layer): any topic, any publish
 *   /control          text commands, each answered with `done <ms>` once run:
 *                     `plain N SIZE`    publishes N messages of SIZE bytes to the plain topic
 *                     `reliable N SIZE` publishes N messages to the recoverable topic `t`
 *                     `kick N`          cuts every `/r` connection, then publishes N messages to `t`
 *
 *   PORT=0 node --import tsx bench/servers/reliable_server.ts
 *
 * @module
 */

import process from "node:process";
import { App, MemoryTopicLog, type Peer, reliable, serve } from "../../mod.ts";
import { benchPort, ready } from "./_lifecycle.ts";

const TOPIC = "t";

const live = reliable<{ subscriber?: boolean }>({
  log: new MemoryTopicLog({ maxMessages: 1_000_000, maxBytes: 512 * 1024 * 1024 }),
  authorize: { publish: () => true },
});
const reliablePeers = new Set<Peer<{ subscriber?: boolean }>>();

const app: App<{ subscriber?: boolean }> = new App<{ subscriber?: boolean }>({ maxBufferedBytes: 64 * 1024 * 1024 });
app.route("/plain", {
  upgrade(ctx, next) {
    ctx.state.subscriber = ctx.query.get("role") === "sub";
    return next();
  },
  open(ctx) {
    if (ctx.state.subscriber) ctx.subscribe(TOPIC);
  },
  message(ctx) {
    app.publish(TOPIC, ctx.data);
  },
});
app.route("/r", {
  open(ctx, next) {
    reliablePeers.add(ctx.peer);
    return next();
  },
  close(ctx, next) {
    reliablePeers.delete(ctx.peer);
    return next();
  },
}, live);
app.route("/control", {
  async message(ctx) {
    const [command, count = "0", size = "32"] = String(ctx.data).split(" ");
    const n = Number(count);
    const payload = "x".repeat(Number(size));
    const started = performance.now();
    if (command === "plain") {
      for (let i = 0; i < n; i++) app.publish(TOPIC, payload);
    } else if (command === "reliable") {
      const acks: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) acks.push(live.publish(TOPIC, payload));
      await Promise.all(acks);
    } else if (command === "kick") {
      for (const peer of reliablePeers) peer.terminate();
      const acks: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) acks.push(live.publish(TOPIC, payload));
      await Promise.all(acks);
    } else {
      return ctx.close(1003, "Unknown command");
    }
    ctx.send(`done ${(performance.now() - started).toFixed(1)}`);
  },
});
app.onError((error) => console.error(error));

const server = await serve(app, { port: benchPort(), hostname: "127.0.0.1", maxBufferedBytes: 64 * 1024 * 1024 });
ready("duplex-reliable", server.port, async () => {
  await server.close();
  await live.close();
});
process.on("uncaughtException", (error) => console.error(error));
