// The chat demo's page (examples/hono-chat) catching up in Chromium: the page
// reaches the server through a TCP proxy (tests/reliable/_cut_proxy.ts, its
// URL given by the page's `ws` parameter) while another client, the Duplex
// client in this process on `ws`'s WebSocket, publishes straight to the
// server. The proxy refuses the page (a server that is down for it), then
// blackholes it (a dead network, which only the client's heartbeat notices),
// then cuts its connection at random moments while messages flow. After
// each, the page must show every message exactly once, in publish order, and
// its status must have gone reconnecting → open.
//
// It spawns every runtime itself, so it runs from Node only (npm run
// test:node); under `deno test` and `bun test` it skips itself. Without
// Chromium it skips too, unless CI is set (then it fails).
import assert from "node:assert/strict";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import WebSocket from "ws";
import { type ClientOptions, DuplexClient } from "../../client/mod.ts";
import { CutProxy } from "../reliable/_cut_proxy.ts";
import { delay, type RuntimeName } from "../runtimes/_helpers.ts";
import { launchChromium } from "./_chromium.ts";
import { type Demo, demoSkipReason, shown, startDemo } from "./_demo.ts";

const RUNTIMES: RuntimeName[] = ["node", "deno", "bun"];
const WAIT_MS = 10_000;
/** The page's heartbeat (interval and timeout), in ms: a blackhole is noticed within twice this. */
const HEARTBEAT_MS = 500;
const SEED = Number(process.env.RELIABLE_SEED ?? Date.now() % 100_000);

const statuses = (page: Page): Promise<string[]> =>
  page.evaluate(() => (window as unknown as { chat: { statuses: string[] } }).chat.statuses);

const untilShown = (page: Page, n: number, what: string) =>
  page.waitForFunction((n) => document.querySelectorAll("#messages li[data-testid=message]").length >= n, n, { timeout: WAIT_MS })
    .catch(async (error: Error) => {
      const count = (await shown(page).catch(() => [])).length;
      const state = await page.evaluate(() => {
        const chat = (window as unknown as { chat: { statuses: string[]; results: string[] } }).chat;
        return `statuses ${chat.statuses.slice(-8).join(" → ")}; results ${chat.results.join(", ")}`;
      }).catch(() => "?");
      throw new Error(`${what}: ${count} messages shown, waited for ${n} (${state}): ${error.message}`);
    });

const untilState = (page: Page, state: string, what: string) =>
  page.waitForSelector(`#status[data-state="${state}"]`, { timeout: WAIT_MS }).catch(async (error: Error) => {
    const now = await page.getAttribute("#status", "data-state").catch(() => "?");
    throw new Error(`${what}: status never became ${state} (it is ${now}): ${error.message}`);
  });

/** Asserts the page shows exactly `texts`, in order, from `bob`, at offsets 1, 2, 3… */
async function assertExactly(page: Page, texts: string[], what: string): Promise<void> {
  const list = await shown(page);
  assert.deepEqual(list.map((m) => m.text), texts, `${what}: every message once, in order`);
  assert.deepEqual(list.map((m) => m.offset), texts.map((_, i) => i + 1), `${what}: offsets 1…${texts.length}`);
  assert.ok(list.every((m) => m.from === "bob"), `${what}: stamped with the sender's name by the server`);
}

/** Asserts that the statuses since `mark` went to reconnecting, then back to open, and are open now. */
function assertWentBack(all: string[], mark: number): void {
  const seen = all.slice(mark);
  const lost = seen.indexOf("reconnecting");
  assert.ok(lost >= 0 && seen.indexOf("open", lost) > lost && seen.at(-1) === "open", `statuses: ${seen.join(" → ")}`);
}

const skip = demoSkipReason();

describe(`the chat page catching up through a cutting proxy, in Chromium, on Node, Deno and Bun${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let browser: Browser | undefined;

  before(async () => {
    if (skip) return;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  for (const [i, target] of RUNTIMES.entries()) {
    it(`on ${target}: refused, blackholed and cut at random, the page shows every missed message once, in order`, { skip, timeout: 60_000 }, async (t) => {
      let demo: Demo | undefined;
      let context: BrowserContext | undefined;
      let proxy: CutProxy | undefined;
      let bob: DuplexClient | undefined;
      try {
        demo = await startDemo(target);
        proxy = new CutProxy({ target: demo.port, seed: SEED + i, lifetimeMs: false });
        await proxy.listen();
        const room = `catch-up-${target}-${Math.random().toString(36).slice(2, 8)}`;
        const topic = `room:${room}`;

        context = await browser!.newContext();
        const page = await context.newPage();
        const query = new URLSearchParams({ room, name: "ada", ws: proxy.url("/ws"), heartbeat: String(HEARTBEAT_MS) });
        await page.goto(`${demo.url}/?${query}`, { timeout: WAIT_MS });
        await untilState(page, "open", "ada joining");

        bob = new DuplexClient(`ws://127.0.0.1:${demo.port}/ws?name=bob`, {
          WebSocket: WebSocket as unknown as ClientOptions["WebSocket"],
        });
        const texts: string[] = [];
        const publish = async (n: number, label: string, pauseMs = 0) => {
          for (let k = 1; k <= n; k++) {
            const text = `${label} ${k}`;
            await bob!.publish(topic, text);
            texts.push(text);
            if (pauseMs > 0) await delay(pauseMs);
          }
        };

        await publish(3, "before");
        await untilShown(page, 3, "live messages");
        await assertExactly(page, texts, "live");

        // 1. Refused: the server is gone for the page; bob keeps talking.
        proxy.pause("refuse");
        await untilState(page, "reconnecting", "the page losing its connection");
        await publish(40, "while refused");
        assert.equal((await shown(page)).length, 3, "nothing reaches the page while it is cut off");
        let mark = (await statuses(page)).length;
        proxy.resume();
        await untilState(page, "open", "the page reconnecting");
        await untilShown(page, texts.length, "the messages missed while refused");
        await assertExactly(page, texts, "after the refusal");
        assertWentBack(await statuses(page), mark);

        // 2. Blackholed: the connection stays up but nothing passes; the
        // client's heartbeat gives up on it within 2 × HEARTBEAT_MS.
        mark = (await statuses(page)).length;
        proxy.pause("blackhole");
        await publish(40, "while blackholed");
        await untilState(page, "reconnecting", "the heartbeat noticing the dead link");
        proxy.resume();
        await untilState(page, "open", "the page reconnecting after the blackhole");
        await untilShown(page, texts.length, "the messages missed while blackholed");
        await assertExactly(page, texts, "after the blackhole");
        assertWentBack(await statuses(page), mark);

        // 3. Cut at random while bob publishes, in rounds that the page
        // catches up on while still being cut: a room keeps its last 100
        // messages, and a page further behind than that gets a gap (rightly).
        const cutsBefore = proxy.cuts;
        proxy.setLifetime([20, 200]);
        proxy.cutAll();
        for (let round = 1; round <= 4; round++) {
          await publish(60, `while cut (${round})`, 10);
          await untilShown(page, texts.length, `the messages sent while cut, round ${round}`);
        }
        proxy.setLifetime(false);
        proxy.cutAll();
        await untilState(page, "open", "the page settling");
        await assertExactly(page, texts, "after random cuts");
        const results = await page.evaluate(() => (window as unknown as { chat: { results: string[] } }).chat.results);
        assert.ok(!results.includes("gap"), `no gap: ${results.join(", ")}`);
        t.diagnostic(`${target}: ${texts.length} messages, ${proxy.cuts} cuts (${proxy.cuts - cutsBefore} random), ${results.length} subscribe results`);
      } catch (error) {
        if (demo !== undefined) (error as Error).message += `\n${target} output:\n${demo.output()}`;
        throw error;
      } finally {
        bob?.close();
        await context?.close().catch(() => {});
        await proxy?.close();
        if (demo !== undefined) assert.equal(await demo.stop(), 0, `exit code; output: ${demo.output()}`);
      }
    });
  }
});
