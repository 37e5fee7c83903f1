// Nothing lost across processes (issue 21), checked from outside: three
// examples/reliable/server.ts processes, one each on Node (through tsx), Deno
// and Bun, with REDIS_URL on one redis-server of the test's own, each behind
// a TCP proxy (_cut_proxy.ts) that cuts every connection at a random moment
// (seeded: each test prints its seed); examples/reliable/publish.ts and
// subscribe.ts as child processes. Then the faults, while messages flow:
//
// - each server process SIGKILLed and started again on the same port, one
//   at a time (while it is down, its proxy forwards to another process: its
//   clients come back through whichever process answers);
// - Redis SIGKILLed, down for 2.5 s, and started again. It runs with
//   `--appendonly yes --appendfsync always`: every write is on disk before
//   Redis answers it, so a crash loses nothing that was acked. (With
//   `everysec` a crash may lose the last second of acked messages: that is
//   Redis's contract, not one a test of ours can hold.)
// - Redis paused (`CLIENT PAUSE 5000 ALL`), longer than the clients'
//   heartbeat (2 s + 2 s in examples/reliable/_client.ts) and the log's
//   command timeout, and the publisher's process SIGKILLed meanwhile.
//
// The subscribers must print exactly `1` … `COUNT`, in order, once each, and
// exit 0; the publisher must exit 0 (every publish acked). A history trimmed
// past a subscriber gives a GAP line (`GAP trimmed …`) and exit 3, never a
// silent skip; so does a Redis that comes back with less than it acked
// (restarted from an older copy of its data: `GAP epoch …`). The key scheme
// is run on a one-node Redis Cluster, which refuses a script across slots.
//
// It spawns every runtime itself, so it runs from Node only (npm run
// test:node); under `deno test` and `bun test`, which also find it, it skips
// itself. Without redis-server it skips too, unless CI is set: then it fails.
import assert from "node:assert/strict";
import process from "node:process";
import { after, before, describe, it, type TestContext } from "node:test";
import { runtime } from "../../mod.ts";
import { delay, type RuntimeName, until, within } from "../runtimes/_helpers.ts";
import { CutProxy } from "./_cut_proxy.ts";
import { assertExactly, type ClientProcess, exitOf, killAll, PUBLISH, run, SUBSCRIBE } from "./_examples.ts";
import { DurableRedis, ExampleServer, hasRedisServer, redisCommand, topicKey } from "./_redis.ts";

const on = runtime();
const inCi = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false";
const redisMissing = on === "node" && !hasRedisServer();

function skipReason(): string | false {
  if (on !== "node") return `runs from Node only (npm run test:node): it starts Node, Deno and Bun processes and a redis-server itself; not on ${on}`;
  if (redisMissing && !inCi) return "redis-server is not installed (apt-get install redis-server); CI installs it, and there this test fails without it";
  return false;
}

const skip = skipReason();
const RUNTIMES: RuntimeName[] = ["node", "deno", "bun"];
/** Messages of the run with every fault. */
const COUNT = Number(process.env.REDIS_FAULTS_COUNT ?? 4000);
/** Each proxied connection lives this long, in ms, before it is cut. */
const LIFETIME: [number, number] = [20, 300];
/** The seed of the cuts: REDIS_FAULTS_SEED replays a run. */
const SEED = Number(process.env.REDIS_FAULTS_SEED ?? Date.now() % 100_000);
/** How long Redis is paused: more than the client's heartbeat interval + timeout (2 s + 2 s). */
const PAUSE_MS = 5000;
/** How long Redis stays down when it is SIGKILLed: more than the log's command timeout (2 s). */
const DOWN_MS = 2500;

describe(`examples/reliable on Redis Streams, Node, Deno and Bun, through crashes and outages${skip ? ` (skipped: ${skip})` : ""}`, { skip, timeout: 300_000 }, () => {
  let redis: DurableRedis;
  const servers = {} as Record<RuntimeName, ExampleServer>;
  const proxies = {} as Record<RuntimeName, CutProxy>;
  const totals = { cuts: 0, messages: 0, kills: 0, redisRestarts: 0 };

  /** The next runtime after `name` whose server is up. */
  const otherLive = (name: RuntimeName): RuntimeName => {
    for (let i = 1; i < RUNTIMES.length; i++) {
      const other = RUNTIMES[(RUNTIMES.indexOf(name) + i) % RUNTIMES.length]!;
      if (servers[other].running) return other;
    }
    throw new Error("no server is up");
  };

  /**
   * SIGKILLs `name`'s server and starts it again on the same port. With
   * `elsewhere`, its proxy forwards to another live process meanwhile (its
   * clients come back through that one), and back to it once it is up.
   */
  const crash = async (name: RuntimeName, elsewhere: boolean) => {
    await servers[name].kill();
    if (elsewhere) proxies[name].retarget(servers[otherLive(name)].port);
    await delay(200);
    await servers[name].start();
    if (elsewhere) proxies[name].retarget(servers[name].port);
    totals.kills++;
  };

  /** What a failure shows: where each client is, the stream's length, what the servers said. */
  let state = (): Promise<string> => Promise.resolve("");

  /** Waits until `p` printed `n` lines, failing early if it exits. */
  const progress = async (p: ClientProcess, n: number, ms: number) => {
    let exited: number | string | undefined;
    void p.exited.then((code) => (exited = code));
    try {
      await until(() => p.lines().length >= n || exited !== undefined, ms, `${p.name} to print ${n} lines (it has ${p.lines().length})`);
    } catch (error) {
      assert.fail(`${(error as Error).message}\n${await state()}`);
    }
    if (exited !== undefined && p.lines().length < n) {
      assert.fail(`${p.name} exited (${exited}) after ${p.lines().length} lines; last: ${JSON.stringify(p.lines().slice(-2))}; stderr: ${p.stderr()}`);
    }
  };

  const report = (t: TestContext, messages: number) => {
    let cuts = 0;
    for (const name of RUNTIMES) cuts += proxies[name].cuts;
    t.diagnostic(`seed ${SEED}: ${messages} messages, ${cuts - totals.cuts} cuts so far in this test`);
    totals.cuts = cuts;
    totals.messages += messages;
  };

  before(async () => {
    if (redisMissing) assert.fail("redis-server is not installed and CI is set: .ci/run installs it with apt-get");
    redis = await DurableRedis.start();
    const started = await Promise.allSettled(RUNTIMES.map((name) => ExampleServer.start(name, { REDIS_URL: redis.url })));
    for (const [i, result] of started.entries()) if (result.status === "fulfilled") servers[RUNTIMES[i]!] = result.value;
    for (const result of started) if (result.status === "rejected") throw result.reason; // `after` stops the others
    for (const [i, name] of RUNTIMES.entries()) {
      proxies[name] = new CutProxy({ target: servers[name].port, seed: SEED + i, lifetimeMs: LIFETIME });
      await proxies[name].listen();
    }
  });

  after(async () => {
    killAll();
    for (const proxy of Object.values(proxies)) await proxy.close();
    const codes = await Promise.all(Object.values(servers).map(async (server) => [server, await server.stop()] as const));
    await redis?.close();
    if (!skip) console.log(`# redis faults: ${totals.messages} messages, ${totals.cuts} cuts, ${totals.kills} server kills, ${totals.redisRestarts} Redis restarts in all (seed ${SEED})`);
    for (const [server, code] of codes) {
      // Deno's node:child_process may report the signal it sent even when the child exited with 0.
      if (!(server.runtime === "deno" && code === "SIGTERM")) assert.equal(code, 0, `${server.name}: exit code on SIGTERM; stderr: ${server.stderr()}`);
    }
  });

  it(`${COUNT} messages: subscribe.ts on Deno's and Bun's processes, publish.ts on Node's, every connection cut within ${LIFETIME[1]} ms; each process SIGKILLed and restarted, Redis SIGKILLed and restarted, Redis paused ${PAUSE_MS} ms and a process SIGKILLed meanwhile: each message once, in order, every publish acked`, { timeout: 150_000 }, async (t) => {
    const topic = "faults";
    const subscribers = [
      run("node", SUBSCRIBE, [proxies.deno.url(), topic, String(COUNT)]),
      run("deno", SUBSCRIBE, [proxies.bun.url(), topic, String(COUNT)]),
    ];
    const publisher = run("bun", PUBLISH, [proxies.node.url(), topic, String(COUNT)]);
    const [watched] = subscribers as [ClientProcess, ClientProcess];
    const faults: string[] = [];
    state = async () => {
      const clients = [...subscribers, publisher].map((p) => `${p.name}: ${p.lines().length} lines, last ${JSON.stringify(p.lines().at(-1))}; stderr: ${p.stderr().trim()}`);
      const servers_ = RUNTIMES.map((name) => `${servers[name].name} (${servers[name].starts} starts, ${servers[name].status}): ${servers[name].stderr().trim() || "(nothing)"}`);
      const length = await redisCommand(redis.port, "XLEN", topicKey(topic, "s")).catch((error) => String(error));
      return [`faults: ${faults.join("; ")}`, ...clients, `stream length ${length}`, ...servers_].join("\n");
    };
    // Each fault once the watched subscriber has printed `fraction` of COUNT
    // and 5 % more since the last fault (it recovered from that one).
    let last = 0;
    const at = async (fraction: number) => {
      await progress(watched, Math.max(Math.floor(COUNT * fraction), last + Math.floor(COUNT / 20)), 40_000);
      last = watched.lines().length;
    };
    const fault = async (what: string, act: () => Promise<void>) => {
      const before = watched.lines().length;
      await act();
      faults.push(`${what} at ${before}`);
    };

    await at(0.1);
    // The publisher's process: its unacked publishes go again (elsewhere), stored once.
    await fault("node SIGKILLed", () => crash("node", true));
    await at(0.25);
    await fault("deno SIGKILLed", () => crash("deno", true)); // the watched subscriber's
    await at(0.4);
    await fault("bun SIGKILLed", () => crash("bun", false)); // the other subscriber's: refused until it is back on its port
    await at(0.55);
    // Down for longer than the log's command timeout (2 s): appends fail, the
    // publisher sends them again with the same key.
    await fault(`Redis SIGKILLed, down ${DOWN_MS} ms`, async () => {
      await redis.restart(DOWN_MS);
      totals.redisRestarts++;
    });
    await at(0.7);
    // The publisher's process dies while Redis holds its commands: they run
    // once Redis resumes, unacked; the retries (elsewhere) are stored once.
    await fault(`Redis paused ${PAUSE_MS} ms, node SIGKILLed meanwhile`, async () => {
      await redis.pause(PAUSE_MS);
      await delay(1000);
      await crash("node", true);
      await delay(PAUSE_MS - 1000);
    });
    await at(0.8);

    t.diagnostic(faults.join("; "));
    const exit = async (p: ClientProcess, ms: number) => {
      try {
        return await within(p.exited, ms, `${p.name} to exit`);
      } catch (error) {
        assert.fail(`${(error as Error).message}\n${await state()}`);
      }
    };
    assert.equal(await exit(publisher, 60_000), 0, `publisher's exit code; stderr: ${publisher.stderr()}`);
    for (const subscriber of subscribers) {
      assert.equal(await exit(subscriber, 20_000), 0, `${subscriber.name}'s exit code; stderr: ${subscriber.stderr()}`);
      assertExactly(subscriber.lines(), COUNT, subscriber.name);
    }
    assert.equal(await redisCommand(redis.port, "XLEN", topicKey(topic, "s")), `:${COUNT}`, "the stream holds each message once");
    report(t, COUNT);
  });

  for (const [i, name] of RUNTIMES.entries()) {
    const count = 800;
    const subscriberOn = RUNTIMES[(i + 1) % 3]!;
    const publisherOn = RUNTIMES[(i + 2) % 3]!;
    it(`the ${name} process SIGKILLed and restarted twice under load, with subscribe.ts (on ${subscriberOn}) and publish.ts (on ${publisherOn}) both on it: ${count} messages, no gap, each once, in order`, { timeout: 90_000 }, async (t) => {
      const topic = `restart-${name}`;
      const subscriber = run(subscriberOn, SUBSCRIBE, [proxies[name].url(), topic, String(count)]);
      const publisher = run(publisherOn, PUBLISH, [proxies[name].url(), topic, String(count)]);
      await progress(subscriber, count / 4, 40_000);
      await crash(name, false);
      await progress(subscriber, count / 2, 40_000);
      await crash(name, false);
      assert.equal(await exitOf(publisher, 60_000), 0, `publisher's exit code; stderr: ${publisher.stderr()}`);
      assert.equal(await exitOf(subscriber, 20_000), 0, `subscriber's exit code; stderr: ${subscriber.stderr()}`);
      assertExactly(subscriber.lines(), count, subscriber.name);
      assert.equal(await redisCommand(redis.port, "XLEN", topicKey(topic, "s")), `:${count}`, "the stream holds each message once");
      report(t, count);
    });
  }

  it("the hash-tag scheme on a one-node Redis Cluster (which refuses a command or script across slots with CROSSSLOT): a topic's keys share one slot, and the examples work on it", { timeout: 60_000 }, async (t) => {
    const cluster = await DurableRedis.start({ cluster: true });
    const count = 300;
    const topic = "room:{lobby}";
    const two = await Promise.all([
      ExampleServer.start("bun", { REDIS_URL: cluster.url }),
      ExampleServer.start("node", { REDIS_URL: cluster.url }),
    ]);
    try {
      const subscriber = run("deno", SUBSCRIBE, [two[0].url, topic, String(count)]);
      const publisher = run("bun", PUBLISH, [two[1].url, topic, String(count)]);
      assert.equal(await exitOf(publisher, 30_000), 0, `publisher's exit code; stderr: ${publisher.stderr()}; ${two[1].stderr()}`);
      assert.equal(await exitOf(subscriber, 20_000), 0, `subscriber's exit code; stderr: ${subscriber.stderr()}; ${two[0].stderr()}`);
      assertExactly(subscriber.lines(), count, subscriber.name);
      const keys = (["s", "m", "k"] as const).map((part) => topicKey(topic, part));
      const slots = await Promise.all(keys.map((key) => redisCommand(cluster.port, "CLUSTER", "KEYSLOT", key)));
      assert.equal(new Set(slots).size, 1, `one slot for ${keys.join(", ")}: ${slots.join(", ")}`);
      assert.equal(await redisCommand(cluster.port, "XLEN", keys[0]!), `:${count}`);
      assert.equal(await redisCommand(cluster.port, "EXISTS", ...keys), ":3", `${keys.join(", ")} all exist`);
      t.diagnostic(`${keys.join(", ")}: slot ${slots[0]}`);
    } finally {
      killAll();
      for (const server of two) await server.stop();
      await cluster.close();
    }
  });

  it("Redis rewound (restarted from an older copy of its data, as weaker persistence does after a crash) while a publisher keeps going: the subscriber that had more than Redis kept prints GAP epoch and exits 3, never skips silently", { timeout: 60_000 }, async (t) => {
    const own = await DurableRedis.start();
    const topic = "rewound";
    const two = await Promise.all([
      ExampleServer.start("bun", { REDIS_URL: own.url }),
      ExampleServer.start("node", { REDIS_URL: own.url }),
    ]);
    const [publishTo, subscribeTo] = two;
    try {
      const subscriber = run("deno", SUBSCRIBE, [subscribeTo.url, topic, "1000"]);
      assert.equal(await exitOf(run("bun", PUBLISH, [publishTo.url, topic, "50"]), 20_000), 0);
      await progress(subscriber, 50, 15_000);
      own.snapshot(); // offsets 1 … 50
      assert.equal(await exitOf(run("bun", PUBLISH, [publishTo.url, topic, "20"]), 20_000), 0); // `1` … `20` at offsets 51 … 70
      await progress(subscriber, 70, 15_000);
      let publisher: ClientProcess | undefined;
      await own.rewind(async () => {
        // Under way before Redis is back: its first publishes take offsets 51 … again at once.
        publisher = run("node", PUBLISH, [publishTo.url, topic, "40"]);
        await delay(1000);
      });
      assert.equal(await exitOf(subscriber, 20_000), 3, `subscriber's exit code; stderr: ${subscriber.stderr()}; lines after 70: ${JSON.stringify(subscriber.lines().slice(70))}`);
      const lines = subscriber.lines();
      assertExactly(lines.slice(0, 50), 50, "subscriber, before the snapshot");
      assertExactly(lines.slice(50, 70), 20, "subscriber, after the snapshot");
      assert.equal(lines.length, 71, `nothing between the lost entries and the GAP line: ${JSON.stringify(lines.slice(70))}`);
      assert.match(lines[70]!, /^GAP epoch\b/);
      assert.equal(await exitOf(publisher!, 30_000), 0, `the publisher goes on into the new history; stderr: ${publisher!.stderr()}`);
      t.diagnostic(lines[70]!);
    } finally {
      killAll();
      for (const server of two) await server.stop();
      await own.close();
    }
  });

  it("a history trimmed past a subscriber (HISTORY=20, a subscriber on Node's process held off while 100 are published on Deno's): GAP trimmed and exit 3, never a silent skip", { timeout: 60_000 }, async (t) => {
    const topic = "trimmed";
    const small = await Promise.all([
      ExampleServer.start("node", { REDIS_URL: redis.url, HISTORY: "20" }),
      ExampleServer.start("deno", { REDIS_URL: redis.url, HISTORY: "20" }),
    ]);
    const [subscribeTo, publishTo] = small;
    const proxy = new CutProxy({ target: subscribeTo.port, seed: SEED + 30, lifetimeMs: false });
    await proxy.listen();
    try {
      const subscriber = run("bun", SUBSCRIBE, [proxy.url(), topic, "1000"]);
      assert.equal(await exitOf(run("bun", PUBLISH, [publishTo.url, topic, "10"]), 20_000), 0);
      await progress(subscriber, 10, 15_000);
      proxy.pause("refuse");
      assert.equal(await exitOf(run("node", PUBLISH, [publishTo.url, topic, "100"]), 20_000), 0);
      assert.equal(await redisCommand(redis.port, "XLEN", topicKey(topic, "s")), ":20", "Redis keeps HISTORY entries");
      proxy.resume();
      assert.equal(await exitOf(subscriber, 20_000), 3, `subscriber's exit code; stderr: ${subscriber.stderr()}`);
      const lines = subscriber.lines();
      assertExactly(lines.slice(0, -1), 10, "subscriber before the gap");
      assert.match(lines.at(-1)!, /^GAP trimmed\b/);
      t.diagnostic(lines.at(-1)!);
    } finally {
      killAll();
      await proxy.close();
      for (const server of small) {
        const code = await server.stop();
        if (!(server.runtime === "deno" && code === "SIGTERM")) assert.equal(code, 0, `${server.name}: exit code on SIGTERM; stderr: ${server.stderr()}`);
      }
    }
  });
});
