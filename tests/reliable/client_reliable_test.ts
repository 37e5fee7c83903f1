// The client against the real server side, `reliable()` from the root
// entry, behind a TCP proxy that cuts every connection every few tens of
// milliseconds: three publishers and a subscriber, on the runtime the test
// runs on (ws's WebSocket on Node 20, the global one on Deno and Bun).
// Skips itself until `reliable()` is exported by mod.ts (it lands from the
// server branch).
import assert from "node:assert/strict";
import net from "node:net";
import { it } from "node:test";
import { DuplexClient, DuplexError, type WebSocketConstructor } from "../../client/mod.ts";

const root = await import("../../mod.ts") as Record<string, any>;
const missing = typeof root.reliable !== "function" && "reliable() is not in mod.ts yet";
const g = globalThis as Record<string, unknown>;
const WebSocket: WebSocketConstructor = typeof g.WebSocket === "function" ? g.WebSocket as WebSocketConstructor : (await import("ws")).WebSocket;

/** A TCP proxy to `port` that can cut every connection at once. */
async function cuttingProxy(port: number) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    const kill = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", kill);
      s.on("close", kill);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    url: `ws://127.0.0.1:${(server.address() as net.AddressInfo).port}/`,
    cut: () => {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

it("exactly once, in order, through a proxy that keeps cutting, against reliable()", { skip: missing }, async () => {
  const live = root.reliable({
    log: new root.MemoryTopicLog({ maxMessages: 100_000 }),
    authorize: { publish: (_ctx: unknown, topic: string) => topic !== "read-only" },
  });
  const server = await root.serve(new root.App().use(live), { port: 0, hostname: "127.0.0.1" });
  const proxy = await cuttingProxy(Number(new URL(server.url).port));
  const options = { WebSocket, reconnect: { initialDelayMs: 2, maxDelayMs: 20 }, heartbeat: { intervalMs: 1000, timeoutMs: 1000 } };
  const COUNT = 3000;
  let cuts = 0;
  const cutter = setInterval(() => (proxy.cut(), cuts++), 25);
  const subscriber = new DuplexClient(proxy.url, options);
  const publishers = [0, 1, 2].map(() => new DuplexClient(proxy.url, options));
  try {
    const offsets: number[] = [];
    let resolveAll!: () => void;
    const all = new Promise<void>((resolve) => (resolveAll = resolve));
    const results: string[] = [];
    subscriber.subscribe("count", (m) => {
      offsets.push(m.offset);
      if (offsets.length === COUNT) resolveAll();
    }, { from: "start", onResult: (r) => void results.push(r.result) });

    let next = 0;
    const acked: number[] = [];
    await Promise.all(publishers.map(async (p) => {
      while (next < COUNT) acked.push((await p.publish("count", `${++next}`)).offset);
    }));
    await all;
    clearInterval(cutter);
    assert.deepEqual(offsets, Array.from({ length: COUNT }, (_, i) => i + 1), "each stored message once, in order");
    assert.deepEqual(acked.sort((a, b) => a - b), offsets, "each publish stored once");
    assert.ok(!results.includes("gap"), "nothing lost");

    const refused = await publishers[0]!.publish("read-only", "x").catch((e: unknown) => e);
    assert.ok(refused instanceof DuplexError && refused.code === "forbidden", String(refused));
    assert.ok(cuts >= 1);
  } finally {
    clearInterval(cutter);
    subscriber.close();
    for (const p of publishers) p.close();
    await proxy.close();
    await server.close();
    await live.close();
  }
});
