// RedisBackplane against a fake Redis (tests/pubsub/_fake_redis.ts): the
// wire format, loopback suppression, subscriptions only for topics in use,
// the bounded queue while disconnected, resubscription, errors reported and
// never thrown. Runs on Node, Deno and Bun; redis_test.ts runs it against a
// real redis-server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import type { PreparedMessage } from "../../core/prepared.ts";
import type { Peer } from "../../plugins/context.ts";
import { App } from "../../plugins/app.ts";
import { Hub } from "../../plugins/pubsub.ts";
import { BackplaneError, RedisBackplane, type RedisBackplaneOptions } from "../../plugins/redis.ts";
import { type FakeRedisClient, FakeRedisServer, tick } from "./_fake_redis.ts";

/** A local subscriber: records what the hub writes to it. */
function fakePeer(): Peer & { got: (string | Uint8Array)[] } {
  const got: (string | Uint8Array)[] = [];
  return {
    got,
    readyState: 1,
    bufferedAmount: 0,
    sendPrepared(message: PreparedMessage) {
      got.push(message.data);
      return true;
    },
  } as unknown as Peer & { got: (string | Uint8Array)[] };
}

/** A hub on a RedisBackplane over a fake server, with what it reported. */
function node(server: FakeRedisServer, options: Partial<RedisBackplaneOptions> & { autoResubscribe?: boolean } = {}) {
  const clients: Record<string, FakeRedisClient> = {};
  const { autoResubscribe, ...rest } = options;
  const backplane = new RedisBackplane({
    createClient: (role) => (clients[role] = server.client({ autoResubscribe })),
    ...rest,
  });
  const errors: unknown[] = [];
  const hub = new Hub({ backplane }, (error) => errors.push(error));
  return { backplane, hub, errors, pub: clients.publisher!, sub: clients.subscriber!, codes: () => errors.map(codeOf) };
}

function codeOf(error: unknown): string {
  return error instanceof BackplaneError ? error.code : `not a BackplaneError: ${String(error)}`;
}

const hex = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe("RedisBackplane (fake Redis)", () => {
  it("creates a publisher and a subscriber per link, and checks its options", () => {
    const server = new FakeRedisServer();
    const roles: string[] = [];
    const backplane = new RedisBackplane({ createClient: (role) => (roles.push(role), server.client()) });
    assert.deepEqual(roles, [], "no client before an app connects");
    new App({ backplane });
    new App({ backplane });
    assert.deepEqual(roles, ["publisher", "subscriber", "publisher", "subscriber"]);
    const create = () => server.client();
    for (
      const bad of [
        {},
        { createClient: "no" },
        { createClient: create, prefix: 1 },
        { createClient: create, maxQueuedMessages: -1 },
        { createClient: create, maxQueuedBytes: 1.5 },
        { createClient: create, maxQueuedBytes: "8" },
      ]
    ) {
      assert.throws(() => new RedisBackplane(bad as unknown as RedisBackplaneOptions), (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_OPTION");
    }
    assert.doesNotThrow(() => new RedisBackplane({ createClient: create, maxQueuedMessages: 0, maxQueuedBytes: 0, prefix: "" }));
    const one = server.client();
    assert.throws(
      () => new RedisBackplane({ createClient: () => one }).connect(() => {}, () => {}),
      (e: unknown) => e instanceof UsageError && /a new client on every call/.test(e.message),
    );
  });

  it("writes the wire format: kind, origin length, origin id, payload; channel = prefix + topic", async () => {
    const server = new FakeRedisServer();
    const a = node(server, { prefix: "app1:" });
    await tick();
    a.hub.publish("news", "héllo");
    a.hub.publish("news", new Uint8Array([0, 255, 7]));
    a.hub.publish("news", "");
    await tick();
    const [text, binary, empty] = server.published;
    assert.equal(text!.channel, "app1:news");
    assert.equal(text!.message[0], 1, "kind text");
    assert.equal(text!.message[1], 16, "origin id length");
    const origin = hex(text!.message.subarray(2, 18));
    assert.match(origin, /^[0-9a-f]{16}$/);
    assert.deepEqual([...text!.message.subarray(18)], [...new TextEncoder().encode("héllo")]);
    assert.equal(binary!.message[0], 2, "kind binary");
    assert.equal(hex(binary!.message.subarray(2, 18)), origin, "one origin per link");
    assert.deepEqual([...binary!.message.subarray(18)], [0, 255, 7]);
    assert.deepEqual([...empty!.message], [1, 16, ...new TextEncoder().encode(origin)]);
    const b = node(server, { prefix: "app1:" });
    await tick();
    b.hub.publish("news", "x");
    await tick();
    assert.notEqual(hex(server.published[3]!.message.subarray(2, 18)), origin, "another link, another origin");
    assert.deepEqual(a.errors, []);
  });

  it("delivers to other links' subscribers (text and binary, in order) and never back to its own", async () => {
    const server = new FakeRedisServer();
    const a = node(server);
    const b = node(server);
    await tick();
    const pa = fakePeer();
    const pb = fakePeer();
    a.hub.subscribe(pa, "t");
    b.hub.subscribe(pb, "t");
    await tick();
    for (let i = 0; i < 20; i++) a.hub.publish("t", i % 2 === 0 ? `m${i}` : new Uint8Array([i]));
    await tick();
    const expected = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? `m${i}` : new Uint8Array([i])));
    assert.deepEqual(pa.got, expected, "local subscriber: once each");
    assert.deepEqual(pb.got, expected, "remote subscriber: once each, in order");
    assert.ok(pb.got[1] instanceof Uint8Array && pb.got[1].constructor === Uint8Array, "bytes are a plain Uint8Array copy");
    assert.equal(a.backplane.stats.echoes, 20, "its own messages came back from Redis and were skipped");
    assert.equal(a.backplane.stats.received, 0);
    assert.equal(b.backplane.stats.received, 20);
    assert.equal(a.hub.stats.received, 0);
  });

  it("subscribes on Redis only to topics with a local subscriber, once each", async () => {
    const server = new FakeRedisServer();
    const a = node(server);
    await tick();
    const [p1, p2] = [fakePeer(), fakePeer()];
    a.hub.subscribe(p1, "x");
    a.hub.subscribe(p2, "x");
    a.hub.subscribe(p1, "y");
    assert.deepEqual(server.channels(), ["duplex:x", "duplex:y"]);
    a.hub.unsubscribe(p1, "x");
    assert.deepEqual(server.channels(), ["duplex:x", "duplex:y"], "p2 still listens to x");
    a.hub.drop(p2);
    a.hub.drop(p1);
    assert.deepEqual(server.channels(), []);
    // The link itself is idempotent too.
    const link = new RedisBackplane({ createClient: () => server.client() }).connect(() => {}, () => {});
    await tick();
    link.subscribe("z");
    link.subscribe("z");
    link.unsubscribe("z");
    link.unsubscribe("z");
    link.unsubscribe("never");
    const sub = server.clients.at(-1)!;
    assert.deepEqual(sub.commands, [["subscribe", "duplex:z"], ["unsubscribe", "duplex:z"]]);
    await link.close();
  });

  it("subscribes once ready to topics taken before, and ignores messages of topics it left", async () => {
    const server = new FakeRedisServer();
    const a = node(server);
    const b = node(server);
    const pa = fakePeer();
    a.hub.subscribe(pa, "early");
    assert.deepEqual(a.sub.commands, [], "nothing sent before ready");
    await tick();
    assert.deepEqual(server.channels(), ["duplex:early"]);
    // A message in flight when the topic is left is not delivered.
    b.hub.publish("early", "late");
    a.hub.unsubscribe(pa, "early");
    await tick();
    assert.deepEqual(pa.got, []);
    assert.equal(a.hub.stats.received, 0);
  });

  for (const autoResubscribe of [true, false]) {
    it(`resubscribes every topic in use after a restart, and only those (client autoResubscribe ${autoResubscribe})`, async () => {
      const server = new FakeRedisServer();
      const a = node(server, { autoResubscribe });
      const b = node(server, { autoResubscribe });
      await tick();
      const [p1, p2, p3] = [fakePeer(), fakePeer(), fakePeer()];
      a.hub.subscribe(p1, "kept");
      a.hub.subscribe(p2, "left");
      server.down();
      await tick();
      a.hub.unsubscribe(p2, "left"); // while down
      a.hub.subscribe(p3, "new"); // while down
      assert.deepEqual(server.channels(), []);
      server.restart();
      await tick();
      assert.deepEqual(server.channels(), ["duplex:kept", "duplex:new"]);
      b.hub.publish("kept", "k");
      b.hub.publish("new", "n");
      b.hub.publish("left", "l");
      await tick();
      assert.deepEqual([p1.got, p2.got, p3.got], [["k"], [], ["n"]]);
      assert.deepEqual(a.codes(), ["ERR_BACKPLANE_DISCONNECTED", "ERR_BACKPLANE_DISCONNECTED"], "once per client per outage");
      assert.match(String((a.errors[0] as Error).message), /publisher connection lost; messages published here are queued/);
      assert.match(String((a.errors[1] as Error).message), /subscriber connection lost/);
      assert.equal(a.backplane.stats.disconnects, 2);
      // A second outage is reported again.
      server.down();
      await tick();
      assert.equal(a.errors.length, 4);
      server.restart();
      await tick();
    });
  }

  it("queues what is published while disconnected, up to the bound, and sends it in order on reconnect", async () => {
    const server = new FakeRedisServer();
    const a = node(server, { maxQueuedMessages: 3 });
    const b = node(server);
    await tick();
    const pa = fakePeer();
    const pb = fakePeer();
    a.hub.subscribe(pa, "q");
    b.hub.subscribe(pb, "q");
    server.down();
    await tick();
    for (let i = 0; i < 5; i++) assert.equal(a.hub.publish("q", `m${i}`), 1, "local delivery goes on");
    assert.deepEqual(pa.got, ["m0", "m1", "m2", "m3", "m4"]);
    assert.deepEqual(a.backplane.stats.queued, 3);
    assert.deepEqual(a.backplane.stats.dropped, 2);
    assert.deepEqual(a.codes(), ["ERR_BACKPLANE_DISCONNECTED", "ERR_BACKPLANE_DISCONNECTED", "ERR_BACKPLANE_QUEUE_FULL"]);
    assert.match((a.errors[2] as Error).message, /queue full \(3 messages, \d+ bytes; bounds 3 messages, 8388608 bytes\)/);
    assert.equal(a.pub.commands.length, 0, "nothing handed to the client while it is down");
    // b's subscriber first: Redis keeps nothing for a subscriber that is not back yet.
    server.restart([b.sub]);
    await tick();
    server.restart();
    await tick();
    a.hub.publish("q", "after");
    await tick();
    await tick();
    assert.deepEqual(pb.got, ["m0", "m1", "m2", "after"], "queued first, in order, then the rest");
    assert.equal(a.backplane.stats.queued, 0);
    assert.equal(a.backplane.stats.queuedBytes, 0);
    // The next outage reports its drops again.
    server.down();
    await tick();
    for (let i = 0; i < 4; i++) a.hub.publish("q", "again");
    assert.deepEqual(a.codes().filter((c) => c === "ERR_BACKPLANE_QUEUE_FULL").length, 2);
    assert.equal(a.backplane.stats.dropped, 3);
  });

  it("bounds the queue in bytes too, and keeps nothing with maxQueuedMessages 0", async () => {
    const server = new FakeRedisServer();
    const a = node(server, { maxQueuedBytes: 100 });
    const none = node(server, { maxQueuedMessages: 0 });
    await tick();
    server.down();
    await tick();
    a.hub.publish("q", "x".repeat(40)); // 58 bytes encoded
    a.hub.publish("q", "y".repeat(40)); // would make 116
    a.hub.publish("q", "z"); // 19: fits
    assert.deepEqual([a.backplane.stats.queued, a.backplane.stats.queuedBytes, a.backplane.stats.dropped], [2, 77, 1]);
    none.hub.publish("q", "x");
    assert.deepEqual([none.backplane.stats.queued, none.backplane.stats.dropped], [0, 1]);
    assert.ok(none.codes().includes("ERR_BACKPLANE_QUEUE_FULL"));
  });

  it("reports a failed PUBLISH once per outage, counts it, and never throws into the hub", async () => {
    const server = new FakeRedisServer();
    const a = node(server);
    await tick();
    a.pub.failPublish = "throw";
    assert.equal(a.hub.publish("t", "1"), 0);
    a.pub.failPublish = "reject";
    a.hub.publish("t", "2");
    await tick();
    assert.equal(a.backplane.stats.failed, 2);
    assert.deepEqual(a.codes(), ["ERR_BACKPLANE_PUBLISH"]);
    assert.match((a.errors[0] as Error).message, /PUBLISH failed.*publish threw/);
  });

  it("skips and reports (once) messages on its channels in another format", async () => {
    const server = new FakeRedisServer();
    const a = node(server);
    await tick();
    const p = fakePeer();
    a.hub.subscribe(p, "t");
    server.publish("duplex:t", new TextEncoder().encode("plain text from redis-cli"));
    server.publish("duplex:t", new Uint8Array([1, 200, 1, 2]));
    server.publish("duplex:t", new Uint8Array([]));
    await tick();
    assert.deepEqual(p.got, []);
    assert.equal(a.backplane.stats.invalid, 3);
    assert.deepEqual(a.codes(), ["ERR_BACKPLANE_MESSAGE"]);
    // A well-formed message from a foreign origin is delivered.
    server.publish("duplex:t", new Uint8Array([1, 3, 65, 66, 67, 104, 105]));
    await tick();
    assert.deepEqual(p.got, ["hi"]);
  });

  it("keeps delivering and reporting when a subscriber's deliver throws", async () => {
    const server = new FakeRedisServer();
    const errors: unknown[] = [];
    const link = new RedisBackplane({ createClient: () => server.client() }).connect(() => {
      throw new Error("deliver threw");
    }, (error) => errors.push(error));
    const other = new RedisBackplane({ createClient: () => server.client() }).connect(() => {}, () => {});
    await tick();
    link.subscribe("t");
    other.publish("t", "x");
    other.publish("t", "y");
    await tick();
    assert.deepEqual(errors.map((e) => (e as Error).message), ["deliver threw", "deliver threw"]);
    await Promise.all([link.close(), other.close()]);
  });

  it("connects a lazy client", async () => {
    const server = new FakeRedisServer();
    const link = new RedisBackplane({ createClient: () => server.client({ lazy: true }) }).connect(() => {}, () => {});
    assert.deepEqual(server.clients.map((c) => c.status), ["connecting", "connecting"]);
    await tick();
    assert.deepEqual(server.clients.map((c) => c.status), ["ready", "ready"]);
    await link.close();
  });

  it("close() quits both clients, drops (and counts) what was queued, and ignores later calls", async () => {
    const server = new FakeRedisServer();
    const app = new App({ backplane: new RedisBackplane({ createClient: () => server.client() }), onBackplaneError: () => {} });
    const backplane = new RedisBackplane({ createClient: () => server.client() });
    const errors: unknown[] = [];
    const hub = new Hub({ backplane }, (error) => errors.push(error));
    await tick();
    server.down();
    await tick();
    hub.publish("t", "queued");
    assert.equal(backplane.stats.queued, 1);
    await hub.close();
    await app.closeBackplane();
    assert.deepEqual(server.clients.map((c) => c.quitCalls), [1, 1, 1, 1]);
    assert.deepEqual(server.clients.map((c) => c.status), ["end", "end", "end", "end"]);
    assert.deepEqual([backplane.stats.queued, backplane.stats.dropped], [0, 1]);
    await tick();
    const before = errors.length;
    hub.publish("t", "after close");
    await hub.close();
    server.restart();
    await tick();
    assert.equal(errors.length, before, "no report of the clients' own close/end");
    assert.deepEqual(backplane.stats.queued, 0);
  });

  it("App.publish goes through it: local first, then Redis", async () => {
    const server = new FakeRedisServer();
    const app = new App({ backplane: new RedisBackplane({ createClient: () => server.client() }) });
    await tick();
    assert.equal(app.publish("news", "hello"), 0);
    assert.equal(server.published.length, 1);
    assert.equal(server.published[0]!.channel, "duplex:news");
    await app.closeBackplane();
  });
});
