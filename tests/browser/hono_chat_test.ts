// examples/hono-chat in a real browser: Debian's Chromium, driven by
// playwright-core, against the demo running as a child process on Node
// (through tsx), Deno and Bun in turn. Two pages join one room and chat; one
// goes offline while the other keeps talking, then comes back; both must end
// with the same history, in the same order, without duplicates.
//
// It spawns every runtime itself, so it runs from Node only (npm run
// test:node); under `deno test` and `bun test`, which also find it, it skips
// itself. Without Chromium at /usr/bin/chromium (or CHROMIUM_PATH) it skips
// too, unless CI is set: then it fails (.ci/run installs Chromium).
//
// Offline, as Chromium (156) emulates it with `context.setOffline(true)`:
// `navigator.onLine` turns false and `offline` fires; new connections fail
// with ERR_INTERNET_DISCONNECTED; but an open WebSocket is not dropped: it
// stays open, its messages held both ways until the context is online again
// (a close handshake still goes through, unless held messages are queued
// before it). So the page closes its socket itself on `offline`; the test
// checks that it did (the socket is no longer open, nothing arrives while
// offline, no reconnect is tried), and that this close completed cleanly
// with 1000.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { runtime } from "../../mod.ts";
import { CHROMIUM, chromiumMissing, inCi, launchChromium } from "./_chromium.ts";
import { command, delay, root, type RuntimeName, within } from "../runtimes/_helpers.ts";

const on = runtime();
const SCRIPT = "examples/hono-chat/server.ts";
const RUNTIMES: RuntimeName[] = ["node", "deno", "bun"];
/** Every wait on the page; the whole scenario stays well under the test's timeout. */
const WAIT_MS = 5000;
const TEST_MS = 20_000;

function skipReason(): string | false {
  if (on !== "node") return `runs from Node only (npm run test:node): it starts Node, Deno and Bun processes itself; not on ${on}`;
  if (chromiumMissing(on) && !inCi) {
    return `chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH); CI installs it, and there this test fails without it`;
  }
  return false;
}

/** The demo, running. */
interface Demo {
  readonly line: string;
  readonly port: number;
  readonly url: string;
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code or signal. */
  stop(): Promise<number | string>;
}

/**
 * Starts the demo with PORT=0 and waits for `listening on http://127.0.0.1:<port>`.
 * (`startProcess` from _helpers.ts waits for a `ws://` line, which this demo,
 * serving a page too, does not print.)
 */
async function startDemo(runtime: RuntimeName): Promise<Demo> {
  const [file, args] = command(runtime, SCRIPT);
  const env: Record<string, string | undefined> = { ...process.env, PORT: "0", HOST: "127.0.0.1", HEARTBEAT_INTERVAL_MS: "1000", HEARTBEAT_TIMEOUT_MS: "1000" };
  delete env.LOG;
  const child: ChildProcess = spawn(file, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let output = "";
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => void (output += chunk));
  const exited = new Promise<number | string>((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill); // never outlive the test run
  const line = await within(
    new Promise<string>((resolve, reject) => {
      child.stdout!.on("data", (chunk: string) => {
        stdout += chunk;
        output += chunk;
        const end = stdout.indexOf("\n");
        if (end >= 0) resolve(stdout.slice(0, end));
      });
      child.once("error", reject);
      void exited.then((code) => reject(new Error(`${runtime}: ${SCRIPT} exited (${code}) before listening`)));
    }),
    15_000,
    `${runtime}: ${SCRIPT}'s first line`,
  ).catch((error) => {
    kill();
    throw new Error(`${(error as Error).message}\noutput: ${output}`);
  });
  const port = Number(/^listening on http:\/\/127\.0\.0\.1:(\d+)$/.exec(line)?.[1] ?? NaN);
  if (!Number.isInteger(port) || port <= 0) {
    kill();
    throw new Error(`${runtime}: unexpected first line ${JSON.stringify(line)}; output: ${output}`);
  }
  return {
    line,
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      try {
        return await within(exited, 5000, `${runtime} to exit on SIGTERM`);
      } catch {
        kill();
        return await exited;
      } finally {
        process.off("exit", kill);
      }
    },
  };
}

/** A message as the page shows it. */
interface Shown {
  id: number;
  from: string;
  text: string;
}

/** What the page's `window.chat` reports. */
interface Probe {
  opens: number;
  closes: { cause: string; code?: number; reason?: string; wasClean?: boolean }[];
  sockets: WebSocket[];
  readyState: number;
}

const shown = (page: Page): Promise<Shown[]> =>
  page.$$eval("#messages li[data-testid=message]", (items) =>
    items.map((li) => ({
      id: Number((li as HTMLElement).dataset.id),
      from: li.querySelector(".from")?.textContent ?? "",
      text: li.querySelector(".text")?.textContent ?? "",
    })));

const probe = (page: Page) =>
  page.evaluate(() => {
    const chat = (window as unknown as { chat: Probe }).chat;
    return {
      opens: chat.opens,
      closes: chat.closes,
      readyState: chat.readyState,
      socketStates: chat.sockets.map((s) => s.readyState),
      onLine: navigator.onLine,
    };
  });

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

async function joinRoom(page: Page, url: string, room: string, name: string): Promise<void> {
  await page.goto(url, { timeout: WAIT_MS });
  await page.fill("#room", room);
  await page.fill("#name", name);
  await page.click("#join");
  await untilState(page, "open", `${name} joining`);
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.click("#send");
}

const skip = skipReason();

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
    it(`on ${target}: two pages chat, one goes offline and comes back with the same history, no duplicates`, { skip, timeout: TEST_MS }, async (t) => {
      const started = Date.now();
      const contexts: BrowserContext[] = [];
      let demo: Demo | undefined;
      try {
        demo = await startDemo(target);
        const url = demo.url;
        assert.equal(await (await fetch(`${url}/health`)).text(), "ok");

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

        // Bob goes offline: his socket must really go (closed by the page's
        // `offline` handler, as Chromium keeps an open socket on emulated offline).
        await b.context.setOffline(true);
        await untilState(b.page, "offline", "bob going offline");
        const offline = await probe(b.page);
        assert.equal(offline.onLine, false);
        assert.equal(offline.readyState, 3, "the page holds no socket");
        assert.deepEqual(offline.socketStates.map((s) => s === 0 || s === 1), [false], "its only socket is closing or closed");
        const cause = offline.closes.at(-1)?.cause ?? "(still closing: the close handshake is held while offline)";
        t.diagnostic(`offline: socket states ${JSON.stringify(offline.socketStates)}, closed by ${cause}`);

        // Ada keeps talking; Bob hears nothing and does not try to reconnect.
        const away = ["are you there, bob?", "bob?", "talking to myself now"];
        for (const [i, text] of away.entries()) {
          await say(a.page, text);
          await untilShown(a.page, 3 + i, "ada hearing herself");
        }
        await delay(300);
        assert.equal((await shown(b.page)).length, 2, "nothing reaches bob while offline");
        const stillOffline = await probe(b.page);
        assert.equal(stillOffline.opens, 1);
        assert.equal(stillOffline.socketStates.length, 1, "no reconnect while offline");

        // Back online: he reconnects at once and gets the history.
        await b.context.setOffline(false);
        await untilState(b.page, "open", "bob reconnecting");
        await untilShown(b.page, 5, "bob's history after reconnecting");
        await say(b.page, "back, sorry");
        await untilShown(a.page, 6, "ada hearing bob again");
        await untilShown(b.page, 6, "bob hearing himself again");

        const listA = await shown(a.page);
        const listB = await shown(b.page);
        assert.deepEqual(listB, listA, "both pages show the same history, in the same order");
        assert.deepEqual(
          listA.map(({ from, text }) => ({ from, text })),
          [...before, ...away.map((text) => ({ from: "ada", text })), { from: "bob", text: "back, sorry" }],
        );
        const ids = listA.map((m) => m.id);
        assert.equal(new Set(ids).size, ids.length, "no duplicates");
        assert.deepEqual([...ids].sort((x, y) => x - y), ids, "in id order");

        const online = await probe(b.page);
        assert.equal(online.opens, 2, "one reconnect");
        assert.deepEqual(online.socketStates, [3, 1], "the old socket closed, the new one open");
        const dropped = online.closes.find((c) => c.cause === "offline");
        assert.deepEqual(dropped && { code: dropped.code, wasClean: dropped.wasClean }, { code: 1000, wasClean: true });

        for (const [name, page] of [["ada", a.page], ["bob", b.page]] as const) {
          const path = join(shots, `${target}-${name}.png`);
          await page.screenshot({ path, timeout: WAIT_MS });
          console.log(`screenshot: ${path}`);
        }

        // SIGTERM: the pages hear 1001, and the process exits with 0.
        assert.equal(await demo.stop(), 0, `exit code; output: ${demo.output()}`);
        await a.page.waitForFunction(
          () => (window as unknown as { chat: Probe }).chat.closes.some((c) => c.code === 1001),
          undefined,
          { timeout: WAIT_MS },
        );
        t.diagnostic(`${target}: ${Date.now() - started} ms`);
      } catch (error) {
        if (demo !== undefined) (error as Error).message += `\n${target} output:\n${demo.output()}`;
        throw error;
      } finally {
        await Promise.allSettled(contexts.map((c) => c.close()));
        await demo?.stop();
      }
    });
  }
});
