/**
 * The contract benchmark: what a validated call costs against a bare
 * message echo. One server process (`servers/contract_server.ts`, Node,
 * Duplex's raw transport, pinned to CPU 0 when `taskset` works) and this
 * process as the clients (pinned to CPU 1), on 127.0.0.1.
 *
 * Each row: `CONNECTIONS` `ws` clients, each keeping `WINDOW` requests in
 * flight for `BENCH_SECONDS` (after a warm-up), the same ~60 B JSON object
 * per request; round trips per second, and the server's CPU time per round
 * trip (user + system, from `process.cpuUsage()` in the server: the figure
 * that moves least when other processes share the machine), the median of
 * `BENCH_REPS` runs.
 * - bare echo: the server sends each text message back unparsed (the floor:
 *   framing and the event loop);
 * - JSON echo: parsed and re-encoded, nothing else (what JSON itself costs);
 * - validated call (Zod / Valibot): a `duplex.v1` `call`, decoded, the
 *   input validated by the contract's schema, the handler run, the `result`
 *   encoded;
 * - validated call, output checked too (`validateOutput: true`, Zod).
 *
 *   node --import tsx bench/contract.ts
 *   BENCH_REPS=1 BENCH_SECONDS=2 node --import tsx bench/contract.ts   # quick check
 *
 * Prints a markdown section, also the part `contract` of `npm run bench`.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { type BenchServer, PINNED, startBenchServer } from "./_children.ts";

const REPS = Number(process.env.BENCH_REPS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 4;
const WINDOW = 32;
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const INPUT = { room: "lobby", text: "hello, how is everyone doing?", at: 1765000000000 };

/** The bench's server process, listening. */
function startServer(): Promise<BenchServer> {
  return startBenchServer(ROOT, "bench/servers/contract_server.ts");
}

function open(url: string, protocols?: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { perMessageDeflate: false });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

type Kind = "echo" | "json" | "zod" | "valibot" | "checked";

/** The server's CPU time so far, in µs. */
async function serverCpu(port: number): Promise<number> {
  const ws = await open(`ws://127.0.0.1:${port}/cpu`);
  const answer = await new Promise<string>((resolve) => {
    ws.once("message", (data: Buffer) => resolve(data.toString()));
    ws.send("cpu");
  });
  ws.terminate();
  return Number(answer);
}

/** Round trips per second on one route (CONNECTIONS clients with WINDOW requests each in flight), and the server's CPU µs per round trip. */
async function roundTrips(port: number, kind: Kind): Promise<{ rate: number; cpu: number }> {
  const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => open(`ws://127.0.0.1:${port}/${kind}`, kind === "echo" || kind === "json" ? undefined : ["duplex.v1"])));
  let counting = false;
  let count = 0;
  let stopped = false;
  let failed = "";
  const bare = JSON.stringify(INPUT);
  for (const ws of clients) {
    let id = 0;
    const next = () => ws.send(kind === "echo" || kind === "json" ? bare : JSON.stringify({ type: "call", id: ++id, name: "echo", input: INPUT }));
    ws.on("message", (data: Buffer) => {
      if (kind !== "echo" && kind !== "json" && failed === "") {
        const text = data.toString();
        if (!text.startsWith('{"type":"result"')) failed = text.slice(0, 200);
      }
      if (counting) count++;
      if (!stopped) next();
    });
    for (let i = 0; i < WINDOW; i++) next();
  }
  await new Promise((resolve) => setTimeout(resolve, 1000)); // warm-up
  const cpuBefore = await serverCpu(port);
  counting = true;
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
  const seconds = (performance.now() - started) / 1000;
  counting = false;
  const cpuAfter = await serverCpu(port);
  stopped = true;
  const rate = count / seconds;
  for (const ws of clients) ws.terminate();
  if (failed !== "") throw new Error(`${kind}: unexpected answer ${failed}`);
  return { rate, cpu: (cpuAfter - cpuBefore) / count };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const fmt = (n: number): string => n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0);

async function main(): Promise<void> {
  if (PINNED) spawnSync("taskset", ["-cp", "1", String(process.pid)]);
  const kinds: Kind[] = ["echo", "json", "zod", "valibot", "checked"];
  const runs = new Map<Kind, number[]>(kinds.map((k) => [k, []]));
  const cpus = new Map<Kind, number[]>(kinds.map((k) => [k, []]));
  for (let rep = 0; rep < REPS; rep++) {
    for (const kind of kinds) {
      const server = await startServer();
      try {
        const { rate, cpu } = await roundTrips(server.port, kind);
        runs.get(kind)!.push(rate);
        cpus.get(kind)!.push(cpu);
      } finally {
        await server.stop();
      }
    }
    console.error(`rep ${rep + 1}/${REPS} done`);
  }
  const echo = median(runs.get("echo")!);
  const echoCpu = median(cpus.get("echo")!);
  const row = (label: string, kind: Kind) => {
    const m = median(runs.get(kind)!);
    const c = median(cpus.get(kind)!);
    return `| ${label} | ${fmt(m)} | ${(m / echo).toFixed(2)}× | ${c.toFixed(1)} | ${(c / echoCpu).toFixed(2)}× |`;
  };
  const lines = [
    `## Validated calls (Node, raw transport; ${CONNECTIONS} connections × ${WINDOW} in flight, ${SECONDS} s; median of ${REPS})`,
    ``,
    `| row | round trips/s | vs bare echo | server CPU µs per round trip | vs bare echo |`,
    `|---|--:|--:|--:|--:|`,
    row("bare message echo (no parsing)", "echo"),
    row("JSON echo (parsed and re-encoded, no validation)", "json"),
    row("validated call, Zod (`serveContract`, input checked)", "zod"),
    row("validated call, Valibot", "valibot"),
    row("validated call, Zod, input and output checked (`validateOutput`)", "checked"),
    ``,
    `Raw (per s): ${kinds.map((k) => `${k} ${runs.get(k)!.map(fmt).join(", ")}`).join("; ")}.`,
    `Raw (server CPU µs per round trip): ${kinds.map((k) => `${k} ${cpus.get(k)!.map((c) => c.toFixed(1)).join(", ")}`).join("; ")}.`,
  ];
  console.log(lines.join("\n"));
}

await main();
process.exit();
