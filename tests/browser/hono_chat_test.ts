// examples/hono-chat in a real browser: Debian's Chromium, driven by
// playwright-core, against the demo running as a child process on Node
// (through tsx), Deno and Bun in turn. Two pages join one room and chat
// through the Duplex client (served by the demo at /client.js), with an
// older chat.v1 client in the room too; one page goes offline while the
// others keep talking, then comes back: it must show every message it
// missed, once, in order, and all end with the same history. On the way,
// the chat's contract: the pages list who is in the room (a `members` call,
// then `presence` events, the chat.v1 client included), one page sees the
// other typing (a `typing` event), and a `history` call answers the room's
// messages (and `invalid`, with the issue's path, for an empty room name).
//
// It spawns every runtime itself, so it runs from Node only (npm run
// test:node); under `deno test` and `bun test`, which also find it, it skips
// itself. Without Chromium at /usr/bin/chromium (or CHROMIUM_PATH) it skips
// too, unless CI is set: then it fails (.ci/run installs Chromium).
//
// Offline, as Chromium (156) emulates it with `context.setOffline(true)`:
// `navigator.onLine` turns false and `offline` fires; new connections fail
// with ERR_INTERNET_DISCONNECTED; but an open WebSocket is not dropped: it
// stays open, its messages held both ways until the context is online again.
// The page's client notices through its heartbeat (1 s here, the page's
// `heartbeat` parameter) and waits for `online` to reconnect; either way,
// what was missed arrives once.
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { launchChromium } from "./_chromium.ts";
import { type Demo, demoSkipReason, shown, startDemo } from "./_demo.ts";
import { Client, delay, type RuntimeName } from "../runtimes/_helpers.ts";

const RUNTIMES: RuntimeName[] = ["node", "deno", "bun"];
/** Every wait on the page; the whole scenario stays well under the test's timeout. */
const WAIT_MS = 8000;
const TEST_MS = 30_000;

const untilShown = (page: Page, n: number, what: string) =>
  page.waitForFunction((n) => document.querySelectorAll("#messages li[data-testid=message]").length >= n, n, { timeout: WAIT_MS })
    .catch((error: Error) => {
      throw new Error(`${what}: fewer than ${n} messages shown: ${error.message}`);
    });

const untilState = (page: Page, state: string, what: string) =>
  page.waitForSelector(`#status[data-state="${state}"]`, { timeout: WAIT_MS }).catch(async (error: Error) => {
    const now = await page.getAttribute("#status", "data-state").catch(() => "?");
    throw new Error(`${what}: status never became ${state} (it is ${now}): ${error.message}`);
  });

const untilMembers = (page: Page, names: string) =>
  page.waitForFunction((names) => document.querySelector("#members")?.textContent === names, names, { timeout: WAIT_MS })
    .catch(async (error: Error) => {
      throw new Error(`members never became ${names} (they are ${await page.textContent("#members").catch(() => "?")}): ${error.message}`);
    });

async function joinRoom(page: Page, url: string, room: string, name: string): Promise<void> {
  await page.goto(`${url}/?heartbeat=1000`, { timeout: WAIT_MS });
  await page.fill("#room", room);
  await page.fill("#name", name);
  await page.click("#join");
  await untilState(page, "open", `${name} joining`);
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.click("#send");
}

const skip = demoSkipReason();

// The skip goes on each test, not on the suite: `bun test` reports a skipped
// suite as nothing at all, but a skipped test as skipped, under this title.
describe(`examples/hono-chat in Chromium, on Node, Deno and Bun${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let browser: Browser | undefined;
  let shots: string;

  before(async () => {
    if (skip) return;
    browser = await launchChromium();
    shots = await mkdtemp(join(tmpdir(), "duplex-hono-chat-"));
  });
  after(async () => {
    await browser?.close();
  });

  for (const target of RUNTIMES) {
    it(`on ${target}: two pages and a chat.v1 client chat, one page goes offline and catches up, no duplicates`, { skip, timeout: TEST_MS }, async (t) => {
      const started = Date.now();
      const contexts: BrowserContext[] = [];
      let demo: Demo | undefined;
      let cat: Client | undefined;
      try {
        demo = await startDemo(target);
        const url = demo.url;
        assert.equal(await (await fetch(`${url}/health`)).text(), "ok");
        const script = await fetch(`${url}/client.js`);
        assert.match(script.headers.get("content-type") ?? "", /^text\/javascript/);
        assert.match(await script.text(), /DuplexClient/);

        const open = async () => {
          const context = await browser!.newContext();
          contexts.push(context);
          return { context, page: await context.newPage() };
        };
        const a = await open();
        const b = await open();
        const room = `room-${target}-${Math.random().toString(36).slice(2, 8)}`;
        await joinRoom(a.page, url, room, "ada");
        await joinRoom(b.page, url, room, "bob");

        // Both see both messages, in the order they were said.
        await say(a.page, "hello from ada");
        await untilShown(b.page, 1, "bob hearing ada");
        await say(b.page, "hi ada, bob here");
        await untilShown(a.page, 2, "ada hearing bob");
        await untilShown(b.page, 2, "bob hearing himself");
        const before = [
          { from: "ada", text: "hello from ada" },
          { from: "bob", text: "hi ada, bob here" },
        ];
        for (const page of [a.page, b.page]) assert.deepEqual((await shown(page)).map(({ from, text }) => ({ from, text })), before);

        // The chat's contract at work: who is in the room (the members call,
        // then presence events), the typing indicator (a client event passed
        // on as a server event), and the history call.
        for (const page of [a.page, b.page]) await untilMembers(page, "ada, bob");
        const heard = await b.page.evaluate(() => (window as any).chat.typing.length as number);
        await a.page.fill("#text", "I am typ");
        await b.page.waitForFunction((n) => (window as any).chat.typing.length > n, heard, { timeout: WAIT_MS });
        assert.equal(await b.page.textContent("#typing"), "ada is typing…");
        assert.deepEqual(await b.page.evaluate(() => (window as any).chat.typing.at(-1)), "ada");
        assert.ok(!(await a.page.evaluate(() => (window as any).chat.typing.includes("ada"))), "not told of her own typing");
        await a.page.fill("#text", "");
        const called = await b.page.evaluate((room) => (window as any).chat.client.call("history", { room }), room) as { from: string; text: string }[];
        assert.deepEqual(called.map(({ from, text }) => ({ from, text })), before);
        const invalid = await b.page.evaluate(() => (window as any).chat.client.call("history", { room: "" }).catch((e: any) => [e.code, e.issues[0].path]));
        assert.deepEqual(invalid, ["invalid", ["room"]]);

        // A chat.v1 client joins: the room's history, then every message.
        cat = await Client.open(`${url.replace("http:", "ws:")}/ws?room=${room}&name=cat`, "chat.v1");
        const [history] = await cat.messagesUntil(1);
        const saidOf = (m: { from: string; text: string }) => ({ from: m.from, text: m.text });
        const parsedHistory = JSON.parse(history!.data.toString()) as { type: string; messages: { from: string; text: string; room: string }[] };
        assert.equal(parsedHistory.type, "history");
        assert.deepEqual(parsedHistory.messages.map(saidOf), before);
        assert.ok(parsedHistory.messages.every((m) => m.room === room));
        await untilMembers(a.page, "ada, bob, cat");

        // Bob goes offline; Ada and Cat keep talking.
        await b.context.setOffline(true);
        const away = ["are you there, bob?", "bob?", "talking to myself now"];
        for (const [i, text] of away.entries()) {
          await say(a.page, text);
          await untilShown(a.page, 3 + i, "ada hearing herself");
        }
        cat.ws.send(JSON.stringify({ type: "say", text: "meow" }));
        await untilShown(a.page, 6, "ada hearing cat");
        await delay(300);
        assert.equal((await shown(b.page)).length, 2, "nothing reaches bob while offline");

        // Back online: he gets what he missed, once, and talks again.
        await b.context.setOffline(false);
        await untilShown(b.page, 6, "bob catching up");
        await untilState(b.page, "open", "bob back");
        await say(b.page, "back, sorry");
        await untilShown(a.page, 7, "ada hearing bob again");
        await untilShown(b.page, 7, "bob hearing himself again");

        const listA = await shown(a.page);
        const listB = await shown(b.page);
        const all = [...before, ...away.map((text) => ({ from: "ada", text })), { from: "cat", text: "meow" }, { from: "bob", text: "back, sorry" }];
        assert.deepEqual(listB, listA, "both pages show the same history, in the same order");
        assert.deepEqual(listA.map(({ from, text }) => ({ from, text })), all);
        assert.deepEqual(listA.map((m) => m.offset), all.map((_, i) => i + 1), "offsets 1, 2, 3…: none missing, none twice");

        // Cat heard all of it too, as chat.v1 `said` messages in id order.
        const saids = (await cat.messagesUntil(1 + all.length - before.length)).slice(1)
          .map((m) => JSON.parse(m.data.toString()) as { type: string; id: number; from: string; text: string });
        assert.deepEqual(saids.map(saidOf), all.slice(before.length));
        assert.ok(saids.every((m, i) => m.type === "said" && (i === 0 || m.id > saids[i - 1]!.id)), "said, in id order");

        for (const [name, page] of [["ada", a.page], ["bob", b.page]] as const) {
          const path = join(shots, `${target}-${name}.png`);
          await page.screenshot({ path, timeout: WAIT_MS });
          console.log(`screenshot: ${path}`);
        }

        // SIGTERM: the pages hear 1001 and try again; the process exits with 0.
        assert.equal(await demo.stop(), 0, `exit code; output: ${demo.output()}`);
        await untilState(a.page, "reconnecting", "ada after the server stopped");
        assert.equal((await cat.closed).code, 1001);
        t.diagnostic(`${target}: ${Date.now() - started} ms`);
      } catch (error) {
        if (demo !== undefined) (error as Error).message += `\n${target} output:\n${demo.output()}`;
        throw error;
      } finally {
        cat?.ws.terminate();
        await Promise.allSettled(contexts.map((c) => c.close()));
        await demo?.stop();
      }
    });
  }
});
