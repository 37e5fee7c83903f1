/**
 * The App's cost per message, in process: Duplex's raw connection (the
 * `Pump` every raw adapter runs: handshake, frame parsing, unmasking, the
 * hooks, framing the echo) on a transport that only counts what it is given,
 * fed 16 masked 32 B frames per read on each of 64 connections; the echo
 * with bare hooks against the bench's App (`servers/duplex.ts`,
 * `PIPELINE=app`: one middleware object with upgrade, open and message, and
 * heartbeat). No socket, no system call: what is left is the JavaScript
 * the App adds, which a loaded machine does not blur as it blurs a server's
 * CPU time per message. The system calls a real server makes on top (the
 * same for both) only bring the ratio closer to 1, so App / bare here is a
 * lower bound of the servers' ratio.
 *
 *   node --import tsx --import ./bench/_dist_hooks.mjs bench/app_cost.ts   # Node, on dist/ (npm run build)
 *   deno run -A bench/app_cost.ts
 *   bun bench/app_cost.ts
 *
 * Prints, per message kind, the median of 41 alternating rounds of 16,000
 * messages (ns per message; a median keeps the garbage collections the
 * App's allocations cause, which a best round would leave out, and drops
 * the rounds another process cut into) and bare / App, the throughput a
 * CPU-bound server would keep.
 *
 * @module
 */

import process from "node:process";
import type { Handler } from "../mod.ts";
import { benchApp } from "./servers/_app.ts";
import { Pump, type Transport } from "../runtimes/_pump.ts";
import { ConnectionSet } from "../runtimes/_registry.ts";
import { resolveConnectionOptions } from "../runtimes/_options.ts";

const CONNECTIONS = 64;
const BURST = 16;
const ROUNDS = 41;
const READS = 1000; // per round, spread over the connections

class CountingTransport implements Transport {
  bytes = 0;
  readonly bufferedAmount = 0;
  readonly remoteAddress = "127.0.0.1";
  write(chunks: Uint8Array[]): boolean {
    for (const chunk of chunks) this.bytes += chunk.length;
    return true;
  }
  pause(): void {}
  resume(): void {}
  end(): void {}
  destroy(): void {}
}

function bare(): Handler {
  return {
    message(ctx, data) {
      ctx.send(data);
    },
  };
}

const encoder = new TextEncoder();
const HANDSHAKE = encoder.encode(
  "GET /bench HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
);

/** BURST masked frames of 32 B, text (ASCII) or binary, in one buffer. */
function burst(text: boolean): Uint8Array {
  const one = new Uint8Array(2 + 4 + 32);
  one[0] = 0x80 | (text ? 1 : 2);
  one[1] = 0x80 | 32;
  one.set([0x37, 0xfa, 0x21, 0x3d], 2);
  for (let i = 0; i < 32; i++) one[6 + i] = (text ? 97 + (i % 26) : (i * 37) & 0xff) ^ one[2 + (i & 3)]!;
  const out = new Uint8Array(one.length * BURST);
  for (let i = 0; i < BURST; i++) out.set(one, i * one.length);
  return out;
}

interface Rig {
  pumps: Pump<any>[];
  transports: CountingTransport[];
}

function rig(handler: Handler): Rig {
  const set = new ConnectionSet();
  const options = resolveConnectionOptions({ idleTimeoutMs: 0 });
  const pumps: Pump<any>[] = [];
  const transports: CountingTransport[] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const transport = new CountingTransport();
    const pump = new Pump<any>(transport, handler, options, set);
    pump.start();
    pump.onData(HANDSHAKE.slice());
    pumps.push(pump);
    transports.push(transport);
  }
  return { pumps, transports };
}

/** ns per message over one round. */
function round(r: Rig, data: Uint8Array): number {
  const before = r.transports.reduce((sum, t) => sum + t.bytes, 0);
  const start = performance.now();
  for (let i = 0; i < READS; i++) r.pumps[i % CONNECTIONS]!.onData(data.slice());
  const ns = (performance.now() - start) * 1e6 / (READS * BURST);
  const echoed = r.transports.reduce((sum, t) => sum + t.bytes, 0) - before;
  if (echoed !== READS * BURST * 34) throw new Error(`expected ${READS * BURST * 34} bytes echoed, got ${echoed}`);
  return ns;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

// Let the upgrades (possibly async) settle before measuring.
const rigs = { bare: rig(bare()), app: rig(benchApp()) };
await new Promise((resolve) => setTimeout(resolve, 50));

const runtime = (globalThis as { Deno?: unknown }).Deno ? "Deno" : (globalThis as { Bun?: unknown }).Bun ? "Bun" : "Node";
for (const text of [false, true]) {
  const data = burst(text);
  for (let i = 0; i < 3; i++) (round(rigs.bare, data), round(rigs.app, data)); // warm-up
  const bareRounds: number[] = [];
  const appRounds: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    bareRounds.push(round(rigs.bare, data));
    appRounds.push(round(rigs.app, data));
  }
  const bareMedian = median(bareRounds);
  const appMedian = median(appRounds);
  console.log(
    `${runtime} 32 B ${text ? "text  " : "binary"}: bare ${bareMedian.toFixed(0)} ns/msg, App ${appMedian.toFixed(0)} ns/msg, ` +
      `App adds ${(appMedian - bareMedian).toFixed(0)} ns; bare / App ${(bareMedian / appMedian).toFixed(2)}×`,
  );
}
process.exit(0);
