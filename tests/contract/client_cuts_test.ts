// Calls through a proxy that cuts every connection at a random moment
// (../reliable/_cut_proxy.ts, seeded: the test prints its seed; CUTS_SEED
// replays a run), against serveContract() on serve() of the runtime it runs
// on, with Zod and with Valibot. An idempotent call is at least once from
// the client and at most once on the server: every one must resolve with its
// own answer, and its handler must have run exactly once, however many
// times the cuts made the client send it. A plain call is never sent twice:
// each resolves or rejects with `closed`, and its handler ran at most once.
import assert from "node:assert/strict";
import process from "node:process";
import { after, describe, it } from "node:test";
import { DuplexClient, DuplexError, type WebSocketConstructor } from "../../client/mod.ts";
import { App, runtime, serve } from "../../mod.ts";
import { serveContract } from "../../plugins/contract.ts";
import { delay } from "../runtimes/_helpers.ts";
import { CutProxy } from "../reliable/_cut_proxy.ts";
import { prng } from "../_prng.ts";
import { type Chat, validators } from "./_contracts.ts";

const g = globalThis as Record<string, unknown>;
const WebSocket: WebSocketConstructor = typeof g.WebSocket === "function" ? g.WebSocket as WebSocketConstructor : (await import("ws")).WebSocket;
const SEED = Number(process.env.CUTS_SEED ?? Date.now() % 100_000);
/** Calls of each kind per run. */
const CALLS = 500;
/** Calls in flight at once. */
const CONCURRENCY = 8;

for (const [v, { name: validator, chat }] of validators.entries()) {
  describe(`calls through connections cut at random, with ${validator}, on ${runtime()}`, () => {
    const closers: (() => Promise<void> | void)[] = [];
    after(async () => {
      for (const close of closers.reverse()) await close();
    });

    it(`${CALLS} idempotent calls run once each and all resolve; ${CALLS} plain calls run at most once (seed ${SEED + v})`, { timeout: 60_000 }, async (t) => {
      const random = prng(SEED + v);
      const runs = new Map<string, number>();
      const count = (key: string) => runs.set(key, (runs.get(key) ?? 0) + 1);
      const served = serveContract<Chat>(chat, {
        calls: {
          echo: async ({ text }) => {
            count(text);
            await delay(Math.floor(random() * 15));
            return { text };
          },
          add: ({ a, b }) => a + b,
          history: async ({ room }) => {
            count(room);
            await delay(Math.floor(random() * 15)); // long enough for a cut to land mid-call
            return [{ text: room, at: runs.get(room)! }];
          },
          async *tail() {},
          send: () => 0,
          wait: () => "",
          ping: () => undefined,
        },
      });
      const server = await serve(new App().use(served), { port: 0, hostname: "127.0.0.1" });
      closers.push(() => server.close());
      const proxy = new CutProxy({ target: Number(new URL(server.url).port), seed: SEED + v, lifetimeMs: [10, 80] });
      await proxy.listen();
      closers.push(() => proxy.close());
      const client = new DuplexClient<Chat>(proxy.url(), {
        WebSocket,
        idempotent: ["history"],
        callTimeoutMs: 30_000,
        reconnect: { initialDelayMs: 5, maxDelayMs: 40 },
        browser: false,
      });
      closers.push(() => client.close());

      const answers = new Map<string, unknown>();
      const closed: string[] = [];
      const pool = async (names: string[], one: (name: string) => Promise<void>) => {
        const queue = [...names];
        await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
          for (let name; (name = queue.shift()) !== undefined;) await one(name);
        }));
      };
      const rooms = Array.from({ length: CALLS }, (_, i) => `room-${i}`);
      const texts = Array.from({ length: CALLS }, (_, i) => `text-${i}`);
      await Promise.all([
        pool(rooms, async (room) => void answers.set(room, await client.call("history", { room }))),
        pool(texts, async (text) => {
          try {
            answers.set(text, await client.call("echo", { text }));
          } catch (e) {
            assert.ok(e instanceof DuplexError && e.code === "closed", `a plain call fails only with closed: ${e}`);
            closed.push(text);
          }
        }),
      ]);

      for (const room of rooms) {
        assert.equal(runs.get(room), 1, `${room}: the handler ran once`);
        assert.deepEqual(answers.get(room), [{ text: room, at: 1 }], `${room}: its own answer`);
      }
      for (const text of texts) {
        assert.ok((runs.get(text) ?? 0) <= 1, `${text}: never run twice`);
        if (!closed.includes(text)) assert.deepEqual(answers.get(text), { text });
      }
      assert.ok(proxy.cuts >= 3, `the proxy cut connections (${proxy.cuts})`);
      t.diagnostic(`seed ${SEED + v}: ${proxy.cuts} cuts over ${proxy.connections} connections; ${closed.length} plain calls rejected closed`);
    });
  });
}
