// What publish.ts and subscribe.ts share: the WebSocket constructor of the
// runtime (Node 20 has none: `ws`'s), a client tuned for a network that
// drops every few hundred milliseconds, and the checks of the command line.
import process from "node:process";
import { type ClientOptions, DuplexClient } from "../../client/mod.ts";

/** Exit codes of the examples. */
export const Exit = { Ok: 0, Failed: 1, Usage: 2, Gap: 3 } as const;

/** The runtime's WebSocket, or `ws`'s on Node 20 (loaded only there). */
async function webSocket(): Promise<NonNullable<ClientOptions["WebSocket"]>> {
  const global = (globalThis as { WebSocket?: unknown }).WebSocket;
  if (typeof global === "function") return global as NonNullable<ClientOptions["WebSocket"]>;
  const { WebSocket } = await import("ws");
  return WebSocket as unknown as NonNullable<ClientOptions["WebSocket"]>;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * A client that reconnects fast and without end: 50 ms first wait (full
 * jitter), 1 s at most, no retry limit, and an offline queue whose entries
 * live a day (publish.ts waits for every ack, however many cuts it takes).
 */
export async function createClient(url: string): Promise<DuplexClient> {
  return new DuplexClient(url, {
    WebSocket: await webSocket(),
    reconnect: { initialDelayMs: 50, maxDelayMs: 1000, maxRetries: Infinity },
    connectTimeoutMs: 5000,
    heartbeat: { intervalMs: 2000, timeoutMs: 2000 },
    queue: { maxAgeMs: DAY_MS },
  });
}

/** Writes `message` to stderr and exits with 2. */
export function usage(message: string, line: string): never {
  process.stderr.write(`${message}\nusage: ${line}\n`);
  process.exit(Exit.Usage);
}

/** Checks `URL TOPIC COUNT`; exits with 2 when one is missing or wrong. */
export function parseArgs(script: string): { url: string; topic: string; count: number } {
  const line = `${script} URL TOPIC COUNT`;
  const args = process.argv.slice(2);
  if (args.length !== 3) usage(`Expected 3 arguments, got ${args.length}`, line);
  const [url, topic, rawCount] = args as [string, string, string];
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    usage(`Invalid URL: ${JSON.stringify(url)}`, line);
  }
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") usage(`Invalid URL: ${JSON.stringify(url)} is not ws: or wss:`, line);
  if (topic === "" || topic.length > 1024) usage("Invalid TOPIC: give 1 to 1,024 characters", line);
  const count = Number(rawCount);
  if (!/^\d+$/.test(rawCount) || !Number.isSafeInteger(count) || count < 1) {
    usage(`Invalid COUNT: ${JSON.stringify(rawCount)} is not a positive integer`, line);
  }
  return { url, topic, count };
}

/** Writes `text` to stdout, then exits with `code` once it is written (stdout may be a pipe). */
export function exitAfter(text: string, code: number): Promise<never> {
  return new Promise(() => {
    if (text === "") process.exit(code);
    process.stdout.write(text, () => process.exit(code));
  });
}
