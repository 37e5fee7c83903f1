// The dashboard of examples/hono-chat in a real browser: Debian's Chromium,
// driven by playwright-core, against the demo started with ADMIN_TOKEN as a
// child process on Node (through tsx), Deno and Bun in turn.
//
// From outside first: /metrics and /admin answer 401 without the token (a
// bearer header or ?token=). Then an operator signs in through the 401
// page's token form and watches while two chat pages (duplex.v1) and two
// chat.v1 clients join a room, talk, and one leaves with 4002: the page must
// show the open connections, the room's two subscribers, the message rate
// on its chart, and 4002 among the closes; Prometheus's connection gauge
// must count the same sockets. The operator closes the chat.v1 client that
// is left with the code typed in the form (4003): that socket hears 4003.
// The same action is refused without the token (401), and from a page of
// another origin that carries the token (a form POST, the classic CSRF:
// 403), and closes nothing then. A screenshot of the dashboard is written to
// a temp dir.
//
// It spawns every runtime itself, so it runs from Node only (npm run
// test:node); under `deno test` and `bun test`, which also find it, it skips
// itself. Without Chromium at /usr/bin/chromium (or CHROMIUM_PATH) it skips
// too, unless CI is set: then it fails (.ci/run installs Chromium).
import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { launchChromium } from "./_chromium.ts";
import { type Demo, demoSkipReason, startDemo } from "./_demo.ts";
import { Client, delay, type RuntimeName, until } from "../runtimes/_helpers.ts";

const RUNTIMES: RuntimeName[] = ["node", "deno", "bun"];
const TOKEN = "dashboard-test-token-4f1c";
/** Every wait on a page; the whole scenario stays well under the test's timeout. */
const WAIT_MS = 8000;
const TEST_MS = 40_000;

/** Waits until `selector`'s text is `text`; fails with what it shows instead. */
async function untilText(page: Page, selector: string, text: string, what: string): Promise<void> {
  try {
    await page.waitForFunction(
      ([selector, text]) => document.querySelector(selector!)?.textContent?.trim() === text,
      [selector, text],
      { timeout: WAIT_MS },
    );
  } catch (error) {
    const now = await page.$eval(selector, (e) => e.textContent).catch(() => "(not there)");
    throw new Error(`${what}: ${selector} never showed ${JSON.stringify(text)} (it shows ${JSON.stringify(now)}): ${(error as Error).message}`);
  }
}

async function joinRoom(page: Page, url: string, room: string, name: string): Promise<void> {
  await page.goto(`${url}/?heartbeat=1000`, { timeout: WAIT_MS });
  await page.fill("#room", room);
  await page.fill("#name", name);
  await page.click("#join");
  await page.waitForSelector(`#status[data-state="open"]`, { timeout: WAIT_MS });
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.click("#send");
}

/** The sum of a Prometheus family's samples. */
function gauge(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (match) sum += Number(match[1]);
  }
  return sum;
}

/** A page elsewhere (another origin) that POSTs a close to the dashboard, token and all, as a JSON-looking text/plain form. */
function csrfPage(target: string, id: string): string {
  const name = JSON.stringify({ id, code: 4000, pad: "" }).slice(0, -2);
  return `<!doctype html><title>elsewhere</title>
<form id="f" method="POST" enctype="text/plain" action="${target}/admin/close?token=${TOKEN}">
<input type="hidden" name='${name}' value='"}'><button id="go">win a prize</button></form>`;
}

const skip = demoSkipReason();

describe(`the chat demo's dashboard in Chromium, on Node, Deno and Bun${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let browser: Browser | undefined;
  let shots: string;
  let elsewhere: Server | undefined;
  let elsewhereUrl = "";
  let elsewhereHtml = "";

  before(async () => {
    if (skip) return;
    browser = await launchChromium();
    shots = await mkdtemp(join(tmpdir(), "duplex-dashboard-"));
    elsewhere = createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end(elsewhereHtml));
    await new Promise<void>((resolve) => elsewhere!.listen(0, "127.0.0.1", resolve));
    elsewhereUrl = `http://127.0.0.1:${(elsewhere.address() as { port: number }).port}`;
  });
  after(async () => {
    await browser?.close();
    await new Promise((resolve) => elsewhere?.close(resolve) ?? resolve(undefined));
  });

  for (const target of RUNTIMES) {
    it(`on ${target}: shows connections, topics, rates and closes, and closes a peer only for the token, same-origin`, { skip, timeout: TEST_MS }, async (t) => {
      const started = Date.now();
      const contexts: BrowserContext[] = [];
      const clients: Client[] = [];
      let demo: Demo | undefined;
      try {
        demo = await startDemo(target, { ADMIN_TOKEN: TOKEN });
        const url = demo.url;
        await until(() => /admin: \/admin \(dashboard\) and \/metrics/.test(demo!.output()), WAIT_MS, "the admin line");

        // From outside: both need the token, as a bearer header or ?token=.
        for (const path of ["/metrics", "/admin", "/admin/snapshot"]) {
          for (const init of [{}, { headers: { authorization: "Bearer wrong" } }]) {
            const refused = await fetch(`${url}${path}`, init);
            assert.equal(refused.status, 401, path);
            assert.match(refused.headers.get("www-authenticate") ?? "", /^Bearer /);
            await refused.body?.cancel();
          }
        }
        const scrape = async () => {
          const response = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
          assert.equal(response.status, 200);
          assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
          return await response.text();
        };
        assert.equal((await fetch(`${url}/metrics?token=${TOKEN}`)).status, 200);
        assert.equal(gauge(await scrape(), "duplex_server_active_connections"), 0);

        const open = async () => {
          const context = await browser!.newContext({ viewport: { width: 1280, height: 1100 } });
          contexts.push(context);
          return await context.newPage();
        };

        // The operator: the 401 page's form, then the dashboard.
        const dash = await open();
        const errors: string[] = [];
        dash.on("pageerror", (error) => errors.push(error.message));
        const login = await dash.goto(`${url}/admin`, { timeout: WAIT_MS });
        assert.equal(login?.status(), 401);
        await dash.fill("input[name=token]", TOKEN);
        await Promise.all([dash.waitForURL(/\/admin\?token=/, { timeout: WAIT_MS }), dash.click("button")]);
        await dash.waitForSelector(`#status[data-state="live"]`, { timeout: WAIT_MS });
        await untilText(dash, "#open-count", "0", "before anyone joins");

        // Two chat pages and two chat.v1 clients join one room.
        const room = `ops-${target}-${Math.random().toString(36).slice(2, 8)}`;
        const a = await open();
        const b = await open();
        await joinRoom(a, url, room, "ada");
        await joinRoom(b, url, room, "bob");
        const ws = `${url.replace("http:", "ws:")}/ws?room=${room}`;
        const cat = await Client.open(`${ws}&name=cat`, "chat.v1");
        const dog = await Client.open(`${ws}&name=dog`, "chat.v1");
        clients.push(cat, dog);
        await untilText(dash, "#open-count", "4", "four chat sockets open");
        await untilText(dash, `#topics tr[data-topic="room:${room}"] .subscribers`, "2", "the two pages subscribe to the room");
        assert.equal(await dash.locator("#connections tbody tr[data-id]").count(), 4);

        // They talk: the rate chart draws, the counters move.
        for (let i = 0; i < 5; i++) {
          await say(a, `hello ${i}`);
          cat.ws.send(JSON.stringify({ type: "say", text: `meow ${i}` }));
          await delay(150);
        }
        await dash.waitForFunction(() => {
          const points = document.getElementById("line-in")?.getAttribute("points") ?? "";
          const state = (window as unknown as { dashboard: { rates: { in: number }[] } }).dashboard;
          return points.split(" ").length >= 2 && state.rates.some((r) => r.in > 0);
        }, undefined, { timeout: WAIT_MS });
        const messagesIn = Number((await dash.textContent("#messages-in"))!.replace(/,/g, ""));
        assert.ok(messagesIn >= 10, `messages in: ${messagesIn}`);

        // Dog leaves with 4002.
        dog.ws.close(4002, "bye");
        assert.equal((await dog.closed).code, 4002);
        await untilText(dash, "#open-count", "3", "after dog left");
        await untilText(dash, `#closes-by-code tr[data-code="4002"] .count`, "1", "4002 counted");
        const recent = dash.locator(`#recent-closes tr[data-code="4002"]`);
        assert.equal(await recent.count(), 1);
        assert.equal(await recent.locator("td").nth(3).textContent(), "client");
        assert.equal(await recent.locator("td").nth(4).textContent(), "bye");
        assert.equal(gauge(await scrape(), "duplex_server_active_connections"), 3, "the gauge counts the chat's sockets");

        // Cat's row: the one chat.v1 connection left.
        const catId = await dash.$$eval("#connections tbody tr[data-id]", (rows) =>
          rows.filter((r) => (r as HTMLTableRowElement).cells[2]?.textContent === "chat.v1").map((r) => (r as HTMLElement).dataset.id!));
        assert.equal(catId.length, 1, `chat.v1 rows: ${JSON.stringify(catId)}`);
        const id = catId[0]!;

        // Refused: no token (401), a wrong one (401), another origin with the token (403).
        const action = (headers: Record<string, string>) =>
          fetch(`${url}/admin/close`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ id, code: 4000 }) });
        assert.equal((await action({})).status, 401);
        assert.equal((await action({ authorization: "Bearer wrong" })).status, 401);
        assert.equal((await action({ authorization: `Bearer ${TOKEN}`, origin: "http://evil.example" })).status, 403);
        elsewhereHtml = csrfPage(url, id);
        const evil = await open();
        await evil.goto(elsewhereUrl, { timeout: WAIT_MS });
        const [csrf] = await Promise.all([
          evil.waitForResponse((r) => r.url().includes("/admin/close"), { timeout: WAIT_MS }),
          evil.click("#go"),
        ]);
        assert.equal(csrf.status(), 403, "a form POST from another origin, token and all");
        await delay(300);
        assert.equal(cat.ws.readyState, cat.ws.OPEN, "nothing closed cat yet");

        // The operator closes cat with 4003.
        await dash.fill("#close-code", "4003");
        await dash.fill("#close-reason", "kicked by the operator");
        await dash.click(`#connections button[data-close="${id}"]`);
        await dash.waitForSelector(`#action[data-state="done"]`, { timeout: WAIT_MS });
        assert.deepEqual(await cat.closed, { code: 4003, reason: "kicked by the operator" });
        await untilText(dash, "#open-count", "2", "after the operator closed cat");
        const kicked = dash.locator(`#recent-closes tr[data-code="4003"]`);
        await kicked.waitFor({ timeout: WAIT_MS });
        assert.equal(await kicked.locator("td").nth(3).textContent(), "server");
        await untilText(dash, `#closes-by-code tr[data-code="4003"] .count`, "1", "4003 counted");
        assert.equal(await dash.locator(`#connections tr[data-id="${id}"]`).count(), 0);
        assert.deepEqual(errors, [], "no script error on the dashboard");

        const path = join(shots, `${target}-dashboard.png`);
        await dash.screenshot({ path, fullPage: true, timeout: WAIT_MS });
        const png = await readFile(path);
        assert.ok(png.length > 1000, `${png.length} bytes`);
        assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "a PNG");
        console.log(`screenshot: ${path}`);

        assert.equal(await demo.stop(), 0, `exit code; output: ${demo.output()}`);
        t.diagnostic(`${target}: ${Date.now() - started} ms`);
      } catch (error) {
        if (demo !== undefined) (error as Error).message += `\n${target} output:\n${demo.output()}`;
        throw error;
      } finally {
        for (const c of clients) c.ws.terminate();
        await Promise.allSettled(contexts.map((c) => c.close()));
        await demo?.stop();
      }
    });
  }

  it(`without ADMIN_TOKEN: no /admin, no /metrics (404), and the server says how to turn them on`, { skip, timeout: TEST_MS }, async () => {
    const demo = await startDemo("node", { ADMIN_TOKEN: "" });
    try {
      for (const path of ["/admin", "/admin/snapshot", "/metrics"]) {
        assert.equal((await fetch(`${demo.url}${path}?token=anything`)).status, 404, path);
      }
      assert.equal(await (await fetch(`${demo.url}/health`)).text(), "ok");
      await until(() => /admin: off; set ADMIN_TOKEN/.test(demo.output()), WAIT_MS, "the admin line");
    } finally {
      await demo.stop();
    }
  });
});
