/**
 * The reliable-delivery benchmark: what a recoverable topic costs against a
 * plain pub/sub topic, and how long a crowd of clients takes to come back
 * and recover what it missed. One server process (`servers/reliable_server.ts`,
 * Node, Duplex's raw transport, pinned to CPU 0 when `taskset` works) and
 * this process as the clients (pinned to CPU 1), all on 127.0.0.1.
 *
 * Rows, each the median of `BENCH_REPS` runs (default 3):
 * - fan-out to 1,000 subscribers: the server publishes `N` messages of 32 B
 *   to a topic, and every subscriber must receive each one; deliveries per
 *   second, plain topic (`app.publish()`) against recoverable topic
 *   (`reliable().publish()`, history in memory; the message goes out in the
 *   `duplex.v1` envelope with its topic, epoch and offset);
 * - publish from a client: one client publishes 32 B messages, one
 *   subscriber receives them; plain (`ws`'s `send()`, no acknowledgement)
 *   against recoverable (`DuplexClient.publish()`, each acknowledged once
 *   stored, 256 in flight);
 * - reconnect storm: 1,000 `DuplexClient`s subscribed to a recoverable
 *   topic are cut at once; while they are away the server publishes 100
 *   messages; the time until every client is back and has received all 100
 *   (exactly once, in order, with no gap).
 *
 *   node --import tsx bench/reliable.ts
 *   BENCH_REPS=1 node --import tsx bench/reliable.ts     # quick check
 *
 * Prints a markdown section, also the part `reliable` of `npm run bench`.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { type BenchServer, PINNED, startBenchServer } from "./_children.ts";
import { DuplexClient } from "../client/mod.ts";

const REPS = Number(process.env.BENCH_REPS ?? 3);
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
const FANOUT_MESSAGES = 200;
const PUBLISHES = 20_000;
const MISSED = 100;
const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The bench's server process, listening. */
function startServer(): Promise<BenchServer> {
  return startBenchServer(ROOT, "bench/servers/reliable_server.ts");
}

function open(url: string, protocols?: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

async function control(port: number, command: string): Promise<void> {
  const ws = await open(`ws://127.0.0.1:${port}/control`);
  await new Promise<void>((resolve) => {
    ws.once("message", () => resolve());
    ws.send(command);
  });
  ws.close();
}

/** Deliveries per second to SUBSCRIBERS subscribers of a plain or a recoverable topic. */
async function fanout(kind: "plain" | "reliable"): Promise<number> {
  const server = await startServer();
  try {
    const url = kind === "plain" ? `ws://127.0.0.1:${server.port}/plain?role=sub` : `ws://127.0.0.1:${server.port}/r`;
    const clients: WebSocket[] = [];
    let received = 0;
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const total = SUBSCRIBERS * FANOUT_MESSAGES;
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const ws = await open(url, kind === "plain" ? undefined : ["duplex.v1"]);
      if (kind === "reliable") {
        await new Promise<void>((resolve) => {
          ws.once("message", () => resolve()); // `subscribed`
          ws.send(JSON.stringify({ type: "subscribe", id: 1, topic: "t", from: "now" }));
        });
      }
      ws.on("message", () => {
        if (++received === total) done();
      });
      clients.push(ws);
    }
    const started = performance.now();
    await control(server.port, `${kind} ${FANOUT_MESSAGES} 32`);
    await all;
    const seconds = (performance.now() - started) / 1000;
    for (const ws of clients) ws.terminate();
    return total / seconds;
  } finally {
    await server.stop();
  }
}

/** Messages per second published by one client and received by one subscriber. */
async function publishRate(kind: "plain" | "reliable"): Promise<number> {
  const server = await startServer();
  try {
    if (kind === "plain") {
      const sub = await open(`ws://127.0.0.1:${server.port}/plain?role=sub`);
      const pub = await open(`ws://127.0.0.1:${server.port}/plain?role=pub`);
      let received = 0;
      const all = new Promise<void>((resolve) => sub.on("message", () => ++received === PUBLISHES && resolve()));
      const started = performance.now();
      const payload = "x".repeat(32);
      for (let i = 0; i < PUBLISHES; i++) pub.send(payload);
      await all;
      const rate = PUBLISHES / ((performance.now() - started) / 1000);
      sub.terminate();
      pub.terminate();
      return rate;
    }
    const url = `ws://127.0.0.1:${server.port}/r`;
    const options = { WebSocket: WebSocket as unknown as typeof globalThis.WebSocket, queue: { maxMessages: PUBLISHES } };
    const sub = new DuplexClient(url, options);
    const pub = new DuplexClient(url, options);
    let received = 0;
    let all!: Promise<void>;
    await new Promise<void>((subscribed) => {
      all = new Promise<void>((resolve) => {
        sub.subscribe("t", () => ++received === PUBLISHES && resolve(), { onResult: () => subscribed() });
      });
    });
    const started = performance.now();
    const payload = "x".repeat(32);
    const acks: Promise<unknown>[] = [];
    for (let i = 0; i < PUBLISHES; i++) acks.push(pub.publish("t", payload));
    await Promise.all(acks);
    await all;
    const rate = PUBLISHES / ((performance.now() - started) / 1000);
    sub.close();
    pub.close();
    return rate;
  } finally {
    await server.stop();
  }
}

/** Seconds for SUBSCRIBERS clients, cut at once, to come back and each receive the MISSED messages published meanwhile. */
async function storm(): Promise<{ seconds: number; gaps: number }> {
  const server = await startServer();
  try {
    const url = `ws://127.0.0.1:${server.port}/r`;
    const clients: DuplexClient[] = [];
    let complete = 0;
    let gaps = 0;
    let finished!: () => void;
    const all = new Promise<void>((resolve) => (finished = resolve));
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const client = new DuplexClient(url, {
        WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
        reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
      });
      let got = 0;
      await new Promise<void>((resolve) => {
        client.subscribe("t", (m) => {
          if (m.offset !== ++got) throw new Error(`client ${i}: offset ${m.offset}, expected ${got}`);
          if (got === MISSED && ++complete === SUBSCRIBERS) finished();
        }, {
          onResult(result) {
            if (result.result === "gap") gaps++;
            resolve();
          },
        });
      });
      clients.push(client);
    }
    const started = performance.now();
    await control(server.port, `kick ${MISSED}`);
    await all;
    const seconds = (performance.now() - started) / 1000;
    for (const client of clients) client.close();
    return { seconds, gaps };
  } finally {
    await server.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const fmt = (n: number): string => n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(0)}k` : n.toFixed(0);

async function main(): Promise<void> {
  if (PINNED) spawnSync("taskset", ["-cp", "1", String(process.pid)]);
  const runs = { plainFan: [] as number[], liveFan: [] as number[], plainPub: [] as number[], livePub: [] as number[], storm: [] as number[] };
  let gaps = 0;
  for (let rep = 0; rep < REPS; rep++) {
    runs.plainFan.push(await fanout("plain"));
    runs.liveFan.push(await fanout("reliable"));
    runs.plainPub.push(await publishRate("plain"));
    runs.livePub.push(await publishRate("reliable"));
    const s = await storm();
    runs.storm.push(s.seconds);
    gaps += s.gaps;
    console.error(`rep ${rep + 1}/${REPS} done`);
  }
  const [pf, lf, pp, lp, st] = [median(runs.plainFan), median(runs.liveFan), median(runs.plainPub), median(runs.livePub), median(runs.storm)];
  const lines = [
    `## Reliable delivery (Node, raw transport; median of ${REPS})`,
    ``,
    `| row | plain topic | recoverable topic | ratio |`,
    `|---|--:|--:|--:|`,
    `| fan-out to ${SUBSCRIBERS}, 32 B, deliveries/s | ${fmt(pf)} | ${fmt(lf)} | ${(lf / pf).toFixed(2)}× |`,
    `| one client publishing 32 B, msg/s (recoverable: each acked once stored) | ${fmt(pp)} | ${fmt(lp)} | ${(lp / pp).toFixed(2)}× |`,
    ``,
    `Reconnect storm: ${SUBSCRIBERS} clients cut at once, ${MISSED} messages published while they are away: all back and`,
    `caught up in **${st.toFixed(2)} s** (${fmt((SUBSCRIBERS * MISSED) / st)} recovered messages/s; gaps reported: ${gaps}).`,
    ``,
    `Raw (s or per s): plain fan-out ${runs.plainFan.map(fmt).join(", ")}; recoverable fan-out ${runs.liveFan.map(fmt).join(", ")};`,
    `plain publish ${runs.plainPub.map(fmt).join(", ")}; recoverable publish ${runs.livePub.map(fmt).join(", ")}; storm ${runs.storm.map((s) => s.toFixed(2)).join(", ")}.`,
  ];
  console.log(lines.join("\n"));
  if (gaps > 0) process.exitCode = 1;
}

await main();
process.exit();
