// examples/reliable as users run them, over real sockets: the server on
// Node (through tsx), Deno and Bun, publish.ts and subscribe.ts as child
// processes on the other runtimes, all through a TCP proxy (_cut_proxy.ts)
// that cuts every connection at a random moment (seeded: each test prints its
// seed). The subscriber must print exactly `1` … `COUNT`, in order, once
// each, and both clients exit 0. A restart of the server loses its
// in-memory history (a MemoryTopicLog; a Redis one would keep it): a
// subscriber that had received messages of the old epoch (even all of them,
// with nothing new since) prints a GAP line and exits 3, since the new server
// cannot tell what the old epoch held; one that had received nothing yet
// loses nothing and reads the new history from its start. HISTORY trims a
// topic: a subscriber held off through the proxy for longer gets a GAP too.
//
// It spawns every runtime itself, so it runs from Node only (npm run
// test:node); under `deno test` and `bun test`, which also find it, it skips
// itself (running it there would start the same processes again).
import assert from "node:assert/strict";
import process from "node:process";
import { after, describe, it, type TestContext } from "node:test";
import { runtime } from "../../mod.ts";
import { delay, type Running, type RuntimeName, startProcess, until } from "../runtimes/_helpers.ts";
import { CutProxy } from "./_cut_proxy.ts";
import { assertExactly, exitOf, killAll, numbers, PUBLISH, run, SERVER, SUBSCRIBE } from "./_examples.ts";

const on = runtime();
/** Messages per cut run. */
const COUNT = Number(process.env.RELIABLE_COUNT ?? 6000);
/** Each proxied connection lives this long, in ms, before it is cut. */
const LIFETIME: [number, number] = [5, 50];
/** The seed of the cuts: RELIABLE_SEED replays a run. */
const SEED = Number(process.env.RELIABLE_SEED ?? Date.now() % 100_000);

const skip = on === "node" ? false : `runs from Node only (npm run test:node): it starts Node, Deno and Bun processes itself; not on ${on}`;

async function startServer(target: RuntimeName, env: Record<string, string> = {}): Promise<Running> {
  return await startProcess(target, SERVER, { PORT: "0", HOST: "127.0.0.1", ...env }, `server.ts on ${target}`);
}

async function stopServer(server: Running): Promise<void> {
  assert.equal(await server.stop(), 0, `${server.name}: exit code on SIGTERM; stderr: ${server.stderr()}`);
}

/** The totals the last test reports. */
const totals = { cuts: 0, messages: 0 };

function report(t: TestContext, proxy: CutProxy, messages: number): void {
  totals.cuts += proxy.cuts;
  totals.messages += messages;
  t.diagnostic(`seed ${SEED}: ${messages} messages, ${proxy.connections} connections, ${proxy.cuts} cuts`);
}

describe(`examples/reliable behind a cutting proxy, on Node, Deno and Bun${skip ? ` (skipped: ${skip})` : ""}`, () => {
  after(() => {
    killAll();
    if (!skip) console.log(`# reliable e2e: ${totals.messages} messages, ${totals.cuts} cuts in all (seed ${SEED})`);
  });

  // Each server with the publisher on another runtime and a subscriber on each of the two others.
  const mixes: [server: RuntimeName, publisher: RuntimeName, subscribers: RuntimeName[]][] = [
    ["node", "deno", ["bun", "deno"]],
    ["deno", "bun", ["node", "bun"]],
    ["bun", "node", ["deno", "node"]],
  ];
  for (const [i, [target, pub, subs]] of mixes.entries()) {
    it(`server on ${target}, publish.ts on ${pub}, subscribe.ts on ${subs.join(" and ")}: ${COUNT} messages, every connection cut within ${LIFETIME[1]} ms, each message once, in order`, { skip, timeout: 60_000 }, async (t) => {
      const server = await startServer(target);
      const proxy = new CutProxy({ target: server.port, seed: SEED + i, lifetimeMs: LIFETIME });
      await proxy.listen();
      const topic = `news-${i}`;
      try {
        const subscribers = subs.map((sub) => run(sub, SUBSCRIBE, [proxy.url(), topic, String(COUNT)]));
        const publisher = run(pub, PUBLISH, [proxy.url(), topic, String(COUNT)]);
        assert.equal(await exitOf(publisher, 50_000), 0, `publisher's exit code; stderr: ${publisher.stderr()}`);
        for (const subscriber of subscribers) {
          assert.equal(await exitOf(subscriber, 10_000), 0, `${subscriber.name}'s exit code; stderr: ${subscriber.stderr()}`);
          assertExactly(subscriber.lines(), COUNT, subscriber.name);
        }
        report(t, proxy, COUNT);
        assert.ok(proxy.cuts >= 10, `only ${proxy.cuts} cuts`);
      } finally {
        killAll(); // what a failed test left running
        await proxy.close();
        await stopServer(server);
      }
    });
  }

  it("a restart before anything was delivered loses nothing: the subscriber from the start gets every message of the new server", { skip, timeout: 60_000 }, async (t) => {
    let server = await startServer("bun");
    const proxy = new CutProxy({ target: server.port, seed: SEED + 10, lifetimeMs: LIFETIME });
    await proxy.listen();
    const count = Math.ceil(COUNT / 2);
    try {
      const subscriber = run("node", SUBSCRIBE, [proxy.url(), "restart-empty", String(count)]);
      await until(() => proxy.connections > 0, 15_000, "the subscriber to connect");
      await delay(500); // subscribed, from the start of an empty history
      await stopServer(server);
      server = await startServer("deno");
      proxy.retarget(server.port);
      const publisher = run("bun", PUBLISH, [proxy.url(), "restart-empty", String(count)]);
      assert.equal(await exitOf(publisher, 40_000), 0, `publisher's exit code; stderr: ${publisher.stderr()}`);
      assert.equal(await exitOf(subscriber, 10_000), 0, `subscriber's exit code; stderr: ${subscriber.stderr()}`);
      assertExactly(subscriber.lines(), count, "subscriber");
      report(t, proxy, count);
    } finally {
      killAll(); // what a failed test left running
      await proxy.close();
      await stopServer(server);
    }
  });

  it("a restart after the subscriber had messages of the old epoch: GAP (epoch) and exit 3, never a silent skip; the publisher carries on into the new epoch", { skip, timeout: 60_000 }, async (t) => {
    let server = await startServer("deno");
    const proxy = new CutProxy({ target: server.port, seed: SEED + 20, lifetimeMs: LIFETIME });
    await proxy.listen();
    const first = 300;
    const second = 2000;
    try {
      // All there was, and nothing new since: the new server still cannot
      // know what the old epoch held after it, so this is a gap too.
      const subscriber = run("bun", SUBSCRIBE, [proxy.url(), "restart-gap", String(first + second + 1)]);
      const publisher = run("node", PUBLISH, [proxy.url(), "restart-gap", String(first)]);
      assert.equal(await exitOf(publisher, 40_000), 0, `publisher's exit code; stderr: ${publisher.stderr()}`);
      await until(() => subscriber.lines().length >= first, 10_000, `the subscriber to print ${first} lines`);

      // The restart lands while a second publisher is under way: what was
      // not acked goes to the new server, and it ends with exit 0.
      const carrying = run("deno", PUBLISH, [proxy.url(), "restart-gap", String(second)]);
      await until(() => subscriber.lines().length >= first + 100, 20_000, "the second publisher to get going");
      await stopServer(server);
      server = await startServer("node");
      proxy.retarget(server.port);
      assert.equal(await exitOf(subscriber, 15_000), 3, `subscriber's exit code; stderr: ${subscriber.stderr()}`);
      const lines = subscriber.lines();
      const gap = lines.at(-1)!;
      assert.match(gap, /^GAP epoch\b/);
      assertExactly(lines.slice(0, first), first, "subscriber, first publisher");
      const carried = lines.slice(first, -1);
      assertExactly(carried, carried.length, "subscriber, second publisher until the restart");
      assert.equal(await exitOf(carrying, 40_000), 0, `second publisher's exit code; stderr: ${carrying.stderr()}`);

      // The new epoch holds the rest, from where the old one stopped (or
      // one before: a publish stored just before the restart whose ack was
      // lost is stored again; across a lost history nothing can tell). The
      // old one may have stored more than the subscriber got before its cut.
      const late = run("node", SUBSCRIBE, [proxy.url(), "restart-gap", String(second + 1)]);
      await until(() => late.lines().at(-1) === String(second), 20_000, `the new epoch to end with ${second}`);
      await delay(200);
      late.kill();
      const rest = late.lines();
      const from = Number(rest[0]);
      assert.ok(from >= carried.length && from > 0, `the new epoch starts at ${from}, the subscriber had ${carried.length}`);
      assert.deepEqual(rest, numbers(from, second), "the new epoch: the rest, once each, in order");
      t.diagnostic(`${gap}; old epoch had ${carried.length} of the second publisher's, the new one starts at ${from}`);
      report(t, proxy, first + second);
    } finally {
      killAll(); // what a failed test left running
      await proxy.close();
      await stopServer(server);
    }
  });

  it("HISTORY trims: a subscriber held off while more than HISTORY messages pass prints GAP (trimmed) and exits 3", { skip, timeout: 60_000 }, async (t) => {
    const server = await startServer("bun", { HISTORY: "20" });
    const proxy = new CutProxy({ target: server.port, seed: SEED + 30, lifetimeMs: false });
    await proxy.listen();
    try {
      const subscriber = run("deno", SUBSCRIBE, [proxy.url(), "trimmed", "1000"]);
      assert.equal(await exitOf(run("bun", PUBLISH, [server.url, "trimmed", "10"]), 20_000), 0);
      await until(() => subscriber.lines().length >= 10, 10_000, "the subscriber to print 10 lines");
      proxy.pause("refuse");
      assert.equal(await exitOf(run("bun", PUBLISH, [server.url, "trimmed", "100"]), 20_000), 0);
      proxy.resume();
      assert.equal(await exitOf(subscriber, 15_000), 3, `subscriber's exit code; stderr: ${subscriber.stderr()}`);
      const lines = subscriber.lines();
      assertExactly(lines.slice(0, -1), 10, "subscriber before the gap");
      assert.match(lines.at(-1)!, /^GAP trimmed\b/);
      t.diagnostic(lines.at(-1)!);
    } finally {
      killAll(); // what a failed test left running
      await proxy.close();
      await stopServer(server);
    }
  });

  const usages: [RuntimeName, string, string[], RegExp][] = [
    ["node", PUBLISH, [], /Expected 3 arguments/],
    ["deno", SUBSCRIBE, ["ws://127.0.0.1:1", "t", "many"], /Invalid COUNT/],
    ["bun", PUBLISH, ["http://127.0.0.1:1", "t", "10"], /Invalid URL/],
    ["bun", SUBSCRIBE, ["ws://127.0.0.1:1", "t", "0"], /Invalid COUNT/],
  ];
  for (const [target, script, args, message] of usages) {
    it(`${script.split("/").pop()} on ${target} ${JSON.stringify(args)}: a usage error on stderr, exit 2`, { skip, timeout: 20_000 }, async () => {
      const p = run(target, script, args);
      assert.equal(await exitOf(p, 15_000), 2);
      assert.match(p.stderr(), message);
      assert.match(p.stderr(), /usage: /);
    });
  }
});
