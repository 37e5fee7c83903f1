/**
 * The load generator of the `deflate` part: a JSON chat workload over `ws`
 * clients, which negotiate permessage-deflate (`loadgen.c` does not speak
 * it). It opens N connections, keeps M chat messages in flight on each (a
 * closed loop: each echo lets one new message go), warms up, then counts
 * for a fixed time: echoes received, and the bytes on the wire both ways,
 * read from each connection's TCP socket (`bytesWritten`: client → server,
 * `bytesRead`: server → client; WebSocket frames only, the handshake is
 * before the count starts). Every echo is checked against what was sent,
 * in order.
 *
 *   node --import tsx bench/deflate_load.ts -p 8080 -c 50 -i 8 -w 1 -d 3           # no compression
 *   node --import tsx bench/deflate_load.ts -p 8080 -c 50 -i 8 -w 1 -d 3 --deflate # compress every message
 *
 * A message: `{"type":"say","room":"lobby","from":"user-17","text":"…","ts":…}`,
 * the text an English-like sentence of 40 to 200 characters from a seeded
 * PRNG over a word list (the same on every run). 4,096 texts, each
 * connection starting at its own place: a connection repeats a text only
 * after 4,096 messages (about 600 KiB), far beyond deflate's 32 KiB window,
 * so the compression is that of text, not of repeats.
 *
 * `--deflate` offers permessage-deflate with `threshold: 0` (every message
 * compressed, as browsers do once it is agreed) and fails if the server
 * does not accept it; without it, the clients do not offer it. `--hold`
 * keeps the connections open after the report, until stdin ends (the
 * runner reads the server's RSS meanwhile).
 *
 * It prints one JSON line: `msgs_per_s`, `payload_bytes` (mean JSON message
 * size), `up_bytes` / `down_bytes` (wire bytes per message, client → server
 * and server → client), `p50_us` / `p99_us` (from send to echo), `gen_cpu`
 * (this process's CPU, user + system, per second while counting; near 1 it
 * set the pace), `extensions` (what the server agreed), `errors`, `error`;
 * it exits 1 on any error. With `--server-pid PID`, also the server's CPU
 * from `/proc/PID/stat` over the same seconds: `server_cpu` (per second)
 * and `server_us_per_msg` (CPU µs per echoed message, what a message costs
 * the server even when the client sets the pace).
 *
 * @module
 */

import type { Socket } from "node:net";
import process from "node:process";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { processCpuSeconds } from "./_children.ts";
import { prng } from "../tests/_prng.ts";

const { values: args } = parseArgs({
  options: {
    host: { type: "string", short: "h", default: "127.0.0.1" },
    port: { type: "string", short: "p" },
    connections: { type: "string", short: "c", default: "50" },
    inflight: { type: "string", short: "i", default: "8" },
    warmup: { type: "string", short: "w", default: "1" },
    duration: { type: "string", short: "d", default: "3" },
    deflate: { type: "boolean", default: false },
    hold: { type: "boolean", default: false },
    "server-pid": { type: "string" },
  },
});

function positive(name: string, raw: string | undefined, integer: boolean): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || (integer && (!Number.isInteger(value) || value === 0))) {
    throw new RangeError(`Invalid --${name}: ${raw}`);
  }
  return value;
}

const PORT = positive("port", args.port, true);
const CONNECTIONS = positive("connections", args.connections, true);
const INFLIGHT = positive("inflight", args.inflight, true);
const WARMUP_S = positive("warmup", args.warmup, false);
const DURATION_S = positive("duration", args.duration, false);
const SERVER_PID = args["server-pid"] === undefined ? undefined : positive("server-pid", args["server-pid"], true);

/** The server's CPU time so far (user + system, every thread), in seconds; NaN without `--server-pid`. */
function serverCpuSeconds(): number {
  return SERVER_PID === undefined ? NaN : processCpuSeconds(SERVER_PID);
}

// ---- the chat messages ----

const WORDS = (
  "the a an and or but so because if when then than that this these those it its we you they he she I me us them " +
  "my your our their his her is are was were be been being have has had do does did will would can could should " +
  "might must not no yes just really very quite too also still already yet again maybe probably actually " +
  "today tomorrow yesterday tonight morning afternoon evening weekend week month year time minute hour later soon " +
  "now here there where what who why how which all some any every each many much more most few little lot " +
  "meeting call lunch dinner coffee office home train bus car flight ticket hotel room lobby door window table " +
  "project release build test bug fix deploy server client branch merge review ticket issue update version " +
  "message chat channel thread link file photo video picture screen phone laptop code docs plan idea question answer " +
  "think know see look want need like love hate try make take give get go come run send read write check " +
  "start stop finish wait help work play watch meet talk tell ask say share join leave open close move " +
  "good great nice fine bad new old big small long short fast slow easy hard early late ready sure happy sorry " +
  "thanks please hello hey okay cool awesome weird funny busy free next last first second same different"
).split(" ");

const ENDINGS = [".", ".", ".", "!", "?", "?", " :)", "..."];

/** One sentence of 40 to 200 characters. */
function sentence(random: () => number): string {
  const target = 40 + Math.floor(random() * 161);
  let text = "";
  while (text.length < target) {
    const word = WORDS[Math.floor(random() * WORDS.length)]!;
    text += text === "" ? word[0]!.toUpperCase() + word.slice(1) : (random() < 0.08 ? ", " : " ") + word;
  }
  const ending = ENDINGS[Math.floor(random() * ENDINGS.length)]!;
  text = text.slice(0, 200 - ending.length).trimEnd().replace(/,$/, "");
  return text + ending;
}

const TEXTS = 4096;
/** `"text":"…"` fragments, JSON-encoded once. */
const texts: string[] = [];
{
  const random = prng(0x5eed);
  for (let i = 0; i < TEXTS; i++) texts.push(`"text":${JSON.stringify(sentence(random))}`);
}
const TS0 = 1732200000000;

// ---- the connections ----

interface Conn {
  ws: WebSocket;
  socket: Socket;
  /** Sent and not yet echoed, oldest first, with their send times. */
  sent: string[];
  sentAt: number[];
  /** The next text and timestamp. */
  next: number;
  ts: number;
  prefix: string;
}

let errors = 0;
let firstError = "";
let counting = false;
let stopping = false;
let received = 0;
let sentCount = 0;
let payloadBytes = 0;
const latencies: number[] = [];
let drained: (() => void) | undefined;
let inFlight = 0;

function fail(message: string): void {
  errors++;
  if (firstError === "") firstError = message;
  finish();
}

function send(conn: Conn): void {
  // Deterministic, varying timestamps: 1 to 64 s apart.
  conn.ts += 1000 + ((conn.next * 7919) % 63) * 1000;
  const message = `${conn.prefix}${texts[conn.next]!},"ts":${conn.ts}}`;
  conn.next = (conn.next + 1) % TEXTS;
  conn.sent.push(message);
  conn.sentAt.push(performance.now());
  inFlight++;
  if (counting) {
    sentCount++;
    payloadBytes += message.length; // ASCII: characters are bytes
  }
  conn.ws.send(message);
}

function open(index: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${args.host}:${PORT}/chat`, {
      perMessageDeflate: args.deflate ? { threshold: 0 } : false,
    });
    let socket: Socket | undefined;
    ws.once("upgrade", (response) => {
      socket = response.socket as Socket;
    });
    ws.once("error", reject);
    ws.once("open", () => {
      ws.off("error", reject);
      if (args.deflate && !ws.extensions.includes("permessage-deflate")) {
        reject(new Error(`the server did not agree to permessage-deflate (extensions: "${ws.extensions}")`));
        return;
      }
      if (socket === undefined) {
        reject(new Error("no socket from the upgrade response"));
        return;
      }
      const conn: Conn = {
        ws,
        socket,
        sent: [],
        sentAt: [],
        next: (index * 797) % TEXTS,
        ts: TS0 + index * 1000,
        prefix: `{"type":"say","room":"lobby","from":"user-${index}",`,
      };
      ws.on("message", (data, isBinary) => {
        const expected = conn.sent.shift();
        const at = conn.sentAt.shift()!;
        inFlight--;
        if (expected === undefined) return fail(`connection ${index}: an echo nothing was sent for`);
        if (isBinary) return fail(`connection ${index}: a binary echo of a text message`);
        const text = (data as Buffer).toString("utf8");
        if (text !== expected) return fail(`connection ${index}: echo differs from what was sent: ${text.slice(0, 80)}`);
        if (counting) {
          received++;
          latencies.push(performance.now() - at);
        }
        if (!stopping) send(conn);
        else if (inFlight === 0) drained?.();
      });
      ws.on("error", (err) => fail(`connection ${index}: ${err.message}`));
      ws.on("close", (code) => {
        if (!closing) fail(`connection ${index}: closed by the server (${code})`);
      });
      resolve(conn);
    });
  });
}

let closing = false;
let conns: Conn[] = [];
let reported = false;

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function report(result: Record<string, unknown>): void {
  if (reported) return;
  reported = true;
  console.log(JSON.stringify({ ...result, errors, error: firstError }));
}

/** On an error: report it and exit at once. */
function finish(): void {
  report({});
  closing = true;
  for (const conn of conns) conn.ws.terminate();
  process.exit(1);
}

const wire = (): { up: number; down: number } => {
  let up = 0;
  let down = 0;
  for (const conn of conns) {
    up += conn.socket.bytesWritten;
    down += conn.socket.bytesRead;
  }
  return { up, down };
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

try {
  conns = await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => open(i)));
} catch (err) {
  fail(`cannot connect: ${(err as Error).message}`);
}
const extensions = conns[0]!.ws.extensions;

for (const conn of conns) for (let i = 0; i < INFLIGHT; i++) send(conn);
await sleep(WARMUP_S * 1000);

const before = wire();
const cpuBefore = process.cpuUsage();
const serverCpuBefore = serverCpuSeconds();
const t0 = performance.now();
counting = true;
await sleep(DURATION_S * 1000);
counting = false;
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpuBefore);
const serverCpu = serverCpuSeconds() - serverCpuBefore;
const after = wire();
const counted = received;

// Let what is in flight come back: nothing may be missing.
stopping = true;
if (inFlight > 0) {
  const timeout = setTimeout(() => fail(`${inFlight} echoes missing 10 s after the end`), 10_000);
  await new Promise<void>((resolve) => (drained = resolve));
  clearTimeout(timeout);
}

latencies.sort((a, b) => a - b);
report({
  connections: CONNECTIONS,
  inflight: INFLIGHT,
  seconds,
  messages: counted,
  msgs_per_s: counted / seconds,
  payload_bytes: sentCount > 0 ? payloadBytes / sentCount : NaN,
  up_bytes: sentCount > 0 ? (after.up - before.up) / sentCount : NaN,
  down_bytes: counted > 0 ? (after.down - before.down) / counted : NaN,
  p50_us: percentile(latencies, 0.5) * 1000,
  p99_us: percentile(latencies, 0.99) * 1000,
  gen_cpu: (cpu.user + cpu.system) / 1e6 / seconds,
  server_cpu: serverCpu / seconds,
  server_us_per_msg: counted > 0 ? serverCpu * 1e6 / counted : NaN,
  extensions,
});

if (args.hold) {
  process.stdin.on("data", () => {});
  await new Promise<void>((resolve) => {
    process.stdin.once("end", resolve);
    process.stdin.once("error", () => resolve());
  });
}
closing = true;
await Promise.all(conns.map((conn) =>
  new Promise<void>((resolve) => {
    if (conn.ws.readyState === WebSocket.CLOSED) return resolve();
    const timer = setTimeout(() => {
      conn.ws.terminate();
      resolve();
    }, 2000);
    conn.ws.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    conn.ws.close(1000);
  })
));
process.exit(0);
