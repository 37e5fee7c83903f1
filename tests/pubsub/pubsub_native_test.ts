// The hub's use of runtime topics (Bun's native path), decided with fake
// peers and fake runtime topics: subscriptions mirrored under the hub's own
// names, one runtime publish per server when it reaches exactly whom the
// per-subscriber loop would, and the loop whenever it might not (a `send`
// middleware, a slow subscriber, a count that disagrees). Runs on every
// runtime; the real Bun.serve path is in tests/pubsub/bun_pubsub_test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PreparedMessage } from "../../core/prepared.ts";
import { ReadyState } from "../../core/state.ts";
import type { Peer } from "../../plugins/context.ts";
import type { NativeTopics, NativeTopicServer } from "../../plugins/_native_topics.ts";
import { Hub, type PubSubOptions } from "../../plugins/pubsub.ts";

/** A runtime server: who is subscribed to what, and what was published. */
class FakeServer implements NativeTopicServer {
  readonly subscribed = new Map<string, Set<FakeTopics>>();
  readonly published: [string, string | Uint8Array][] = [];
  /** Added to the true count, to make it disagree. */
  skew = 0;
  publish(topic: string, data: string | Uint8Array): void {
    this.published.push([topic, data]);
    for (const member of this.subscribed.get(topic) ?? []) member.received.push(data);
  }
  subscribers(topic: string): number {
    return (this.subscribed.get(topic)?.size ?? 0) + this.skew;
  }
}

/** One connection's runtime topics. */
class FakeTopics implements NativeTopics {
  readonly server: FakeServer;
  readonly received: (string | Uint8Array)[] = [];
  readonly senderPublishes: string[] = [];
  open = true;
  bufferedAmount = 0;
  maxBufferedBytes = 16 * 1024 * 1024;
  deliveredCalls = 0;
  constructor(server: FakeServer) {
    this.server = server;
  }
  subscribe(topic: string): void {
    let set = this.server.subscribed.get(topic);
    if (set === undefined) this.server.subscribed.set(topic, set = new Set());
    set.add(this);
  }
  unsubscribe(topic: string): void {
    this.server.subscribed.get(topic)?.delete(this);
  }
  publish(topic: string, data: string | Uint8Array): void {
    this.senderPublishes.push(topic);
    for (const member of this.server.subscribed.get(topic) ?? []) if (member !== this) member.received.push(data);
  }
  delivered(): void {
    this.deliveredCalls++;
  }
}

/** A peer: what the hub reads and calls, plus what reached it by `sendPrepared`. */
interface FakePeer {
  readyState: ReadyState;
  bufferedAmount: number;
  sent: (string | Uint8Array)[];
  closed: [number | undefined, string | undefined][];
  native: FakeTopics | undefined;
  sendPrepared(message: PreparedMessage): boolean;
  close(code?: number, reason?: string): void;
}

function peer(native?: FakeTopics): FakePeer & Peer {
  const p: FakePeer = {
    readyState: ReadyState.Open,
    bufferedAmount: 0,
    sent: [],
    closed: [],
    native,
    sendPrepared(message) {
      this.sent.push(message.data);
      return true;
    },
    close(code, reason) {
      this.closed.push([code, reason]);
      this.readyState = ReadyState.Closing;
      if (this.native !== undefined) {
        this.native.open = false;
        for (const set of this.native.server.subscribed.values()) set.delete(this.native); // the runtime's close unsubscribes
      }
    },
  };
  return p as FakePeer & Peer;
}

/** A hub whose peers' runtime topics are their `native`; `direct` is what `direct()` answers. */
function hub(options: PubSubOptions = {}) {
  const errors: unknown[] = [];
  const access = { direct: true };
  const h = new Hub(options, (error) => errors.push(error), {
    topicsOf: (p) => (p as unknown as FakePeer).native,
    direct: () => access.direct,
  });
  return { hub: h, errors, access };
}

/** What reached a peer, either way. */
const got = (p: FakePeer) => [...p.sent, ...(p.native?.received ?? [])];

describe("pub/sub on runtime topics: subscriptions", () => {
  it("mirrors subscribe and unsubscribe into the runtime, under a name of the hub's own", () => {
    const { hub: h } = hub();
    const server = new FakeServer();
    const a = peer(new FakeTopics(server));
    assert.equal(h.subscribe(a, "news"), true);
    const names = [...server.subscribed.keys()];
    assert.equal(names.length, 1);
    assert.ok(names[0]!.endsWith(":news") && names[0] !== "news", `a name of the hub's own: ${names[0]}`);
    assert.equal(server.subscribers(names[0]!), 1);
    assert.equal(h.subscribe(a, "news"), false, "already subscribed: the runtime is not asked twice");
    assert.equal(h.unsubscribe(a, "news"), true);
    assert.equal(server.subscribers(names[0]!), 0);
    h.subscribe(a, "news");
    h.subscribe(a, "sports");
    h.drop(a);
    assert.deepEqual([...server.subscribed.values()].map((s) => s.size), [0, 0], "drop leaves every runtime topic");
  });

  it("gives two hubs different runtime names for the same topic", () => {
    const server = new FakeServer();
    const one = hub().hub;
    const two = hub().hub;
    one.subscribe(peer(new FakeTopics(server)), "t");
    two.subscribe(peer(new FakeTopics(server)), "t");
    assert.equal(server.subscribed.size, 2);
    assert.equal(one.publish("t", "for one"), 1);
    assert.equal(server.published.length, 1);
    assert.equal(server.subscribers(server.published[0]![0]), 1, "reaches the first hub's subscriber only");
  });

  it("does not subscribe a peer that is not open, in the hub or the runtime", () => {
    const { hub: h } = hub();
    const server = new FakeServer();
    const a = peer(new FakeTopics(server));
    a.readyState = ReadyState.Connecting;
    assert.equal(h.subscribe(a, "t"), false);
    assert.equal(server.subscribed.size, 0);
  });

  it("keeps a peer whose runtime refused the subscription on the loop, and reports the error", () => {
    const { hub: h, errors } = hub();
    const server = new FakeServer();
    const native = new FakeTopics(server);
    native.subscribe = () => {
      throw new Error("refused");
    };
    const a = peer(native);
    assert.equal(h.subscribe(a, "t"), true);
    assert.equal(errors.length, 1);
    assert.equal(h.publish("t", "hi"), 1);
    assert.deepEqual(a.sent, ["hi"], "by sendPrepared");
    assert.equal(server.published.length, 0);
  });
});

describe("pub/sub on runtime topics: publish", () => {
  it("reaches every subscriber of a server with one runtime publish, and counts each delivery", () => {
    const { hub: h } = hub();
    const server = new FakeServer();
    const peers = Array.from({ length: 5 }, () => peer(new FakeTopics(server)));
    for (const p of peers) h.subscribe(p, "t");
    assert.equal(h.publish("t", "text"), 5);
    assert.equal(h.publish("t", new Uint8Array([1, 2])), 5);
    assert.equal(server.published.length, 2, "one runtime publish per message");
    for (const p of peers) {
      assert.deepEqual(p.sent, [], "no sendPrepared");
      assert.deepEqual(p.native!.received, ["text", new Uint8Array([1, 2])], "in order, text as a string, binary as bytes");
      assert.equal(p.native!.deliveredCalls, 2, "each told, to note its backpressure");
    }
    assert.deepEqual({ ...h.stats }, { published: 2, delivered: 10, dropped: 0, closedSlow: 0, received: 0 });
  });

  it("skips `except` with its own runtime publish, which leaves it out", () => {
    const { hub: h } = hub();
    const server = new FakeServer();
    const [a, b, c] = [0, 1, 2].map(() => peer(new FakeTopics(server)));
    for (const p of [a!, b!, c!]) h.subscribe(p, "t");
    assert.equal(h.publish("t", "hi", { except: a }), 2);
    assert.equal(server.published.length, 0, "not the server's publish");
    assert.equal(a!.native!.senderPublishes.length, 1);
    assert.deepEqual([got(a!), got(b!), got(c!)], [[], ["hi"], ["hi"]]);
    assert.equal(a!.native!.deliveredCalls, 0);
    assert.equal(h.stats.delivered, 2);
  });

  it("uses the server's publish when `except` is not a subscriber there", () => {
    const { hub: h } = hub();
    const server = new FakeServer();
    const [a, b] = [0, 1].map(() => peer(new FakeTopics(server)));
    const outsider = peer(new FakeTopics(new FakeServer()));
    h.subscribe(a!, "t");
    h.subscribe(b!, "t");
    assert.equal(h.publish("t", "hi", { except: outsider }), 2);
    assert.equal(server.published.length, 1);
    assert.deepEqual([got(a!), got(b!), got(outsider)], [["hi"], ["hi"], []]);
  });

  it("publishes once per server, and sends to the peers without runtime topics one by one", () => {
    const { hub: h } = hub();
    const one = new FakeServer();
    const two = new FakeServer();
    const peers = [peer(new FakeTopics(one)), peer(new FakeTopics(one)), peer(new FakeTopics(two)), peer(), peer()];
    for (const p of peers) h.subscribe(p, "t");
    assert.equal(h.publish("t", "hi"), 5);
    assert.equal(one.published.length, 1);
    assert.equal(two.published.length, 1);
    for (const p of peers) assert.deepEqual(got(p), ["hi"]);
    assert.deepEqual(peers.map((p) => p.sent.length), [0, 0, 0, 1, 1]);
  });

  it("uses the loop while direct() says no (an app's send middleware)", () => {
    const { hub: h, access } = hub();
    const server = new FakeServer();
    const peers = [peer(new FakeTopics(server)), peer(new FakeTopics(server))];
    for (const p of peers) h.subscribe(p, "t");
    access.direct = false;
    assert.equal(h.publish("t", "one by one"), 2);
    assert.equal(server.published.length, 0);
    for (const p of peers) assert.deepEqual(p.sent, ["one by one"]);
    access.direct = true;
    h.publish("t", "at once");
    assert.equal(server.published.length, 1);
    for (const p of peers) assert.deepEqual(got(p), ["one by one", "at once"]);
  });

  it("skips subscribers that are no longer open, as the loop does", () => {
    const { hub: h } = hub();
    const server = new FakeServer();
    const [a, b] = [0, 1].map(() => peer(new FakeTopics(server)));
    h.subscribe(a!, "t");
    h.subscribe(b!, "t");
    a!.close(1000); // closing: the runtime left its topics, the hub has not heard yet
    assert.equal(h.subscribers("t"), 2);
    assert.equal(h.publish("t", "hi"), 1);
    assert.equal(server.published.length, 1);
    assert.deepEqual([got(a!), got(b!)], [[], ["hi"]]);
  });

  it("falls back to the loop when the runtime's count disagrees with the hub's", () => {
    const { hub: h } = hub();
    const server = new FakeServer();
    const [a, b] = [0, 1].map(() => peer(new FakeTopics(server)));
    h.subscribe(a!, "t");
    h.subscribe(b!, "t");
    server.skew = 1; // someone else subscribed under the hub's name
    assert.equal(h.publish("t", "hi"), 2);
    assert.equal(server.published.length, 0);
    assert.deepEqual([a!.sent, b!.sent], [["hi"], ["hi"]]);
  });

  it("reports a runtime publish that throws, and does not send the message again", () => {
    const { hub: h, errors } = hub();
    const server = new FakeServer();
    server.publish = () => {
      throw new Error("boom");
    };
    const a = peer(new FakeTopics(server));
    h.subscribe(a, "t");
    assert.equal(h.publish("t", "hi"), 0);
    assert.equal(errors.length, 1);
    assert.deepEqual(a.sent, []);
  });
});

describe("pub/sub on runtime topics: slow subscribers", () => {
  /** Three subscribers of one server, the first `buffered` bytes behind. */
  function three(options: PubSubOptions, buffered: number) {
    const { hub: h } = hub({ maxBufferedBytes: 1000, ...options });
    const server = new FakeServer();
    const peers = [0, 1, 2].map(() => peer(new FakeTopics(server)));
    for (const p of peers) h.subscribe(p, "t");
    peers[0]!.native!.bufferedAmount = buffered;
    peers[0]!.bufferedAmount = buffered;
    return { h, server, peers };
  }

  it("uses the runtime publish for a subscriber exactly at maxBufferedBytes", () => {
    const { h, server, peers } = three({}, 1000);
    assert.equal(h.publish("t", "hi"), 3);
    assert.equal(server.published.length, 1);
    assert.deepEqual(peers.map(got), [["hi"], ["hi"], ["hi"]]);
  });

  it("falls back to the loop above it, which drops for the slow one only and counts it (policy drop)", () => {
    const { h, server, peers } = three({}, 1001);
    assert.equal(h.publish("t", "hi"), 2);
    assert.equal(server.published.length, 0);
    assert.deepEqual(peers.map(got), [[], ["hi"], ["hi"]]);
    assert.deepEqual({ ...h.stats }, { published: 1, delivered: 2, dropped: 1, closedSlow: 0, received: 0 });
  });

  it("falls back to the loop, which closes the slow one with 1013 (policy close); then the runtime publish again", () => {
    const { h, server, peers } = three({ slowPolicy: "close" }, 5000);
    assert.equal(h.publish("t", "one"), 2);
    assert.deepEqual(peers[0]!.closed, [[1013, "Too slow: output buffer full"]]);
    assert.equal(h.stats.closedSlow, 1);
    assert.equal(server.published.length, 0);
    assert.equal(h.publish("t", "two"), 2, "the closing one is skipped");
    assert.equal(server.published.length, 1);
    assert.deepEqual(peers.map(got), [[], ["one", "two"], ["one", "two"]]);
    assert.equal(h.stats.delivered, 4);
  });

  it("falls back to the loop above the connection's own cap, whose send applies its policy", () => {
    const { h, server, peers } = three({ maxBufferedBytes: 1 << 20 }, 2000);
    peers[0]!.native!.maxBufferedBytes = 1500;
    assert.equal(h.publish("t", "hi"), 3);
    assert.equal(server.published.length, 0);
    assert.deepEqual(peers.map((p) => p.sent), [["hi"], ["hi"], ["hi"]], "sendPrepared, which applies the cap");
  });
});
