// Pub/sub topics on the real Pump (fake transports, fake clock): subscribe
// and unsubscribe, who gets a published message and who does not, one frame
// shared by every recipient, the send middleware per recipient, topics left
// on close, slow subscribers (drop or 1013), the backplane (in-process and a
// spy), and the stats.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CloseCode } from "../../core/close_code.ts";
import { UsageError } from "../../core/errors.ts";
import { PreparedMessage } from "../../core/prepared.ts";
import { ReadyState } from "../../core/state.ts";
import { App, type AppOptions } from "../../plugins/app.ts";
import type { Peer } from "../../plugins/context.ts";
import type { Middleware } from "../../plugins/pipeline.ts";
import { type Backplane, type BackplaneLink, checkTopic, Hub, InProcessBackplane, type PubSubStats } from "../../plugins/pubsub.ts";
import { Pump } from "../../runtimes/_pump.ts";
import { ConnectionSet } from "../../runtimes/_registry.ts";
import { resolveConnectionOptions } from "../../runtimes/_options.ts";
import { buildRequest, bytes, Conn, connect, deferred, errorLog, FakeClock, FakeTransport, flush } from "../plugins/_harness.ts";

type State = { name: string; upper?: boolean; mute?: boolean; boom?: boolean };

/** A transport that also keeps the very chunks the pump wrote (FakeTransport keeps copies). */
class RecordingTransport extends FakeTransport {
  readonly raw: Uint8Array[][] = [];
  override write(chunks: Uint8Array[]): boolean {
    this.raw.push([...chunks]);
    return super.write(chunks);
  }
  /** Every chunk written since `from` writes, in order, as written (not copies). */
  chunksSince(from: number): Uint8Array[] {
    return this.raw.slice(from).flat();
  }
}

/** Like the harness's `connect`, on a RecordingTransport. */
async function connectRecording(app: App<any>, path: string): Promise<{ conn: Conn; transport: RecordingTransport }> {
  const clock = new FakeClock();
  const set = new ConnectionSet();
  const transport = new RecordingTransport();
  const pump = new Pump<any>(transport, app, resolveConnectionOptions({ clock }), set);
  pump.start();
  pump.onData(bytes(buildRequest({ path })));
  await flush();
  return { conn: new Conn(transport, pump, clock, set), transport };
}

/** An app whose connections are named by `?name=`; `join(name)` connects one and hands back its peer. */
function room(options: AppOptions = {}, ...middleware: Middleware<State>[]) {
  const app = new App<State>(options);
  const peers = new Map<string, Peer<State>>();
  app.use(
    {
      upgrade(ctx, next) {
        ctx.state = {
          name: ctx.query.get("name") ?? "",
          upper: ctx.query.has("upper"),
          mute: ctx.query.has("mute"),
          boom: ctx.query.has("boom"),
        };
        return next();
      },
      open(ctx) {
        peers.set(ctx.state.name, ctx.peer);
      },
    },
    ...middleware,
  );
  const pathOf = (name: string, flags: string[]) => `/?name=${name}${flags.map((f) => `&${f}`).join("")}`;
  return {
    app,
    async join(name: string, ...flags: string[]): Promise<{ conn: Conn; peer: Peer<State> }> {
      const conn = await connect(app, { request: { path: pathOf(name, flags) } });
      assert.equal(conn.status, 101);
      return { conn, peer: peers.get(name)! };
    },
    async joinRecording(name: string, ...flags: string[]): Promise<{ conn: Conn; peer: Peer<State>; transport: RecordingTransport }> {
      const { conn, transport } = await connectRecording(app, pathOf(name, flags));
      assert.equal(conn.status, 101);
      return { conn, transport, peer: peers.get(name)! };
    },
  };
}

const isUsage = (code: string) => (e: unknown) => e instanceof UsageError && e.code === code;

const STATS_KEYS = ["closedSlow", "delivered", "dropped", "published", "received"];

/** A backplane that records every call of its links, and can be made to fail. */
class SpyBackplane implements Backplane {
  readonly calls: string[] = [];
  connections = 0;
  deliver: (topic: string, data: string | Uint8Array) => void = () => {
    throw new Error("not connected");
  };
  report: (error: unknown) => void = () => {
    throw new Error("not connected");
  };
  onPublish: ((topic: string, data: string | Uint8Array) => void | Promise<void>) | undefined;
  onSubscribe: ((topic: string) => void | Promise<void>) | undefined;
  onUnsubscribe: ((topic: string) => void | Promise<void>) | undefined;
  /** The data of every publish, as handed over. */
  readonly published: (string | Uint8Array)[] = [];

  connect(deliver: (topic: string, data: string | Uint8Array) => void, report: (error: unknown) => void): BackplaneLink {
    this.connections++;
    this.deliver = deliver;
    this.report = report;
    return {
      publish: (topic, data) => {
        this.calls.push(`publish ${topic} ${typeof data === "string" ? data : `[${Array.from(data)}]`}`);
        this.published.push(data);
        return this.onPublish?.(topic, data);
      },
      subscribe: (topic) => {
        this.calls.push(`subscribe ${topic}`);
        return this.onSubscribe?.(topic);
      },
      unsubscribe: (topic) => {
        this.calls.push(`unsubscribe ${topic}`);
        return this.onUnsubscribe?.(topic);
      },
      close: () => {
        this.calls.push("close");
        return Promise.resolve();
      },
    };
  }
}

describe("pub/sub: subscribe, unsubscribe, topics", () => {
  it("subscribe and unsubscribe answer whether anything changed, and are idempotent", async () => {
    const { app, join } = room();
    const { peer } = await join("a");
    assert.deepEqual([...peer.topics], []);
    assert.equal(peer.subscribe("news"), true);
    assert.equal(peer.subscribe("news"), false, "already subscribed");
    assert.equal(peer.subscribe("sports"), true);
    assert.deepEqual([...peer.topics].sort(), ["news", "sports"]);
    assert.equal(app.subscribers("news"), 1);
    assert.equal(peer.unsubscribe("news"), true);
    assert.equal(peer.unsubscribe("news"), false, "no longer subscribed");
    assert.equal(peer.unsubscribe("never"), false, "never subscribed");
    assert.deepEqual([...peer.topics], ["sports"]);
    assert.equal(app.subscribers("news"), 0);
    assert.equal(app.subscribers("sports"), 1);
    assert.equal(peer.unsubscribe("sports"), true);
    assert.deepEqual([...peer.topics], []);
    assert.equal(app.subscribers("sports"), 0);
    assert.equal(peer.subscribe("news"), true, "subscribes again after leaving");
    assert.equal(app.subscribers("news"), 1);
  });

  it("the event contexts act on their peer: ctx.subscribe, ctx.topics, ctx.unsubscribe", async () => {
    const seen: unknown[] = [];
    const app = new App().use({
      open(ctx) {
        seen.push(ctx.subscribe("a"), ctx.subscribe("b"), ctx.subscribe("a"), [...ctx.topics].sort(), [...ctx.peer.topics].sort());
      },
      message(ctx) {
        seen.push(ctx.unsubscribe(String(ctx.data)), [...ctx.topics]);
      },
    });
    const conn = await connect(app);
    await conn.text("a");
    assert.deepEqual(seen, [true, true, false, ["a", "b"], ["a", "b"], true, ["b"]]);
    assert.equal(app.subscribers("a"), 0);
    assert.equal(app.subscribers("b"), 1);
  });

  it("counts subscribers per topic across connections", async () => {
    const { app, join } = room();
    const peers = await Promise.all(["a", "b", "c"].map(async (n) => (await join(n)).peer));
    for (const peer of peers) peer.subscribe("all");
    peers[0]!.subscribe("first");
    assert.equal(app.subscribers("all"), 3);
    assert.equal(app.subscribers("first"), 1);
    assert.equal(app.subscribers("nobody"), 0);
    peers[1]!.unsubscribe("all");
    assert.equal(app.subscribers("all"), 2);
  });

  it("refuses an empty topic and one over 1,024 characters with ERR_INVALID_TOPIC, and changes nothing", async () => {
    const { app, join } = room();
    const { peer } = await join("a");
    const long = "x".repeat(1025);
    for (const topic of ["", long]) {
      assert.throws(() => peer.subscribe(topic), isUsage("ERR_INVALID_TOPIC"));
      assert.throws(() => app.publish(topic, "x"), isUsage("ERR_INVALID_TOPIC"));
      assert.throws(() => peer.publish(topic, "x"), isUsage("ERR_INVALID_TOPIC"));
      assert.throws(() => checkTopic(topic), isUsage("ERR_INVALID_TOPIC"));
    }
    assert.throws(() => checkTopic(42 as unknown as string), isUsage("ERR_INVALID_TOPIC"));
    assert.throws(() => peer.subscribe(undefined as unknown as string), isUsage("ERR_INVALID_TOPIC"));
    assert.deepEqual([...peer.topics], []);
    assert.equal(app.pubsubStats.published, 0, "a refused publish is not counted");
    // The limits themselves are fine.
    const edge = "y".repeat(1024);
    assert.equal(peer.subscribe(edge), true);
    assert.equal(peer.subscribe("z"), true);
    assert.equal(app.publish(edge, "edge"), 1);
  });

  it("refuses data that is neither a string nor bytes with ERR_INVALID_DATA, and counts nothing", async () => {
    const { app, join } = room();
    const { peer, conn } = await join("a");
    peer.subscribe("t");
    assert.throws(() => app.publish("t", 42 as unknown as string), isUsage("ERR_INVALID_DATA"));
    assert.throws(() => peer.publish("t", { a: 1 } as unknown as string, { self: true }), isUsage("ERR_INVALID_DATA"));
    await flush();
    assert.deepEqual(conn.frames(), []);
    assert.deepEqual({ ...app.pubsubStats }, { published: 0, delivered: 0, dropped: 0, closedSlow: 0, received: 0 });
  });
});

describe("pub/sub: publish", () => {
  it("app.publish reaches every subscriber of the topic and no one else, and returns how many", async () => {
    const { app, join } = room();
    const a = await join("a");
    const b = await join("b");
    const other = await join("other");
    const none = await join("none");
    a.peer.subscribe("news");
    b.peer.subscribe("news");
    b.peer.subscribe("sports");
    other.peer.subscribe("sports");
    assert.equal(app.publish("news", "headline"), 2);
    assert.equal(app.publish("sports", "score"), 2);
    assert.equal(app.publish("weather", "rain"), 0, "a topic nobody subscribed to");
    await flush();
    assert.deepEqual(a.conn.texts(), ["headline"]);
    assert.deepEqual(b.conn.texts(), ["headline", "score"]);
    assert.deepEqual(other.conn.texts(), ["score"]);
    assert.deepEqual(none.conn.frames(), []);
  });

  it("keeps the order of publishes for every subscriber", async () => {
    const { app, join } = room();
    const subs = await Promise.all(["a", "b", "c"].map((n) => join(n)));
    for (const s of subs) s.peer.subscribe("seq");
    const sent = Array.from({ length: 100 }, (_, i) => `m${i}`);
    for (const m of sent) assert.equal(app.publish("seq", m), 3);
    await flush();
    for (const s of subs) assert.deepEqual(s.conn.texts(), sent);
  });

  it("skips `except`, and a peer that is not subscribed changes nothing as `except`", async () => {
    const { app, join } = room();
    const a = await join("a");
    const b = await join("b");
    const c = await join("c");
    a.peer.subscribe("t");
    b.peer.subscribe("t");
    assert.equal(app.publish("t", "not to a", { except: a.peer }), 1);
    assert.equal(app.publish("t", "to both", { except: c.peer }), 2);
    assert.equal(app.publish("t", "to both again", {}), 2);
    await flush();
    assert.deepEqual(a.conn.texts(), ["to both", "to both again"]);
    assert.deepEqual(b.conn.texts(), ["not to a", "to both", "to both again"]);
    assert.deepEqual(c.conn.frames(), []);
  });

  it(
    "`except` takes the event context as well as ctx.peer (the context is the event's Peer)",
    async () => {
      const app: App = new App().use({
        open: (ctx) => void ctx.subscribe("t"),
        message: (ctx) => void app.publish("t", ctx.data, { except: ctx }),
      });
      const sender = await connect(app);
      const other = await connect(app);
      await sender.text("not to me");
      assert.deepEqual(other.texts(), ["not to me"]);
      assert.deepEqual(sender.texts(), [], "the sender, passed as its event context, is skipped");
    },
  );

  it("peer.publish skips the publisher unless { self: true }", async () => {
    const { join } = room();
    const a = await join("a");
    const b = await join("b");
    a.peer.subscribe("t");
    b.peer.subscribe("t");
    assert.equal(a.peer.publish("t", "from a"), 1);
    assert.equal(a.peer.publish("t", "from a, to all", { self: true }), 2);
    assert.equal(a.peer.publish("t", "from a, self false", { self: false }), 1);
    await flush();
    assert.deepEqual(a.conn.texts(), ["from a, to all"]);
    assert.deepEqual(b.conn.texts(), ["from a", "from a, to all", "from a, self false"]);
  });

  it("a peer that is not subscribed may publish; self: true changes nothing for it", async () => {
    const { join } = room();
    const pub = await join("pub");
    const sub = await join("sub");
    sub.peer.subscribe("t");
    assert.equal(pub.peer.publish("t", "one", { self: true }), 1);
    await flush();
    assert.deepEqual(pub.conn.frames(), []);
    assert.deepEqual(sub.conn.texts(), ["one"]);
  });

  it("publishes from inside a message handler (ctx.publish), the usual chat", async () => {
    const app = new App().use({
      open: (ctx) => void ctx.subscribe("chat"),
      message: (ctx) => void ctx.publish("chat", ctx.data),
    });
    const a = await connect(app);
    const b = await connect(app);
    const c = await connect(app);
    await a.text("hi from a");
    await b.binary([1, 2]);
    assert.deepEqual(a.frames(), [{ type: "binary", data: [1, 2] }]);
    assert.deepEqual(b.frames(), [{ type: "text", data: "hi from a" }]);
    assert.deepEqual(c.frames(), [{ type: "text", data: "hi from a" }, { type: "binary", data: [1, 2] }]);
  });

  it("text stays text and binary stays binary, whatever form the bytes take", async () => {
    const { app, join } = room();
    const a = await join("a");
    a.peer.subscribe("t");
    const backing = new Uint8Array([9, 1, 2, 3, 9]);
    app.publish("t", "héllo ✓");
    app.publish("t", new Uint8Array([0, 255, 128]));
    app.publish("t", new Uint8Array([4, 5]).buffer);
    app.publish("t", backing.subarray(1, 4));
    app.publish("t", new DataView(backing.buffer, 2, 2));
    app.publish("t", "");
    app.publish("t", new Uint8Array(0));
    await flush();
    assert.deepEqual(a.conn.frames(), [
      { type: "text", data: "héllo ✓" },
      { type: "binary", data: [0, 255, 128] },
      { type: "binary", data: [4, 5] },
      { type: "binary", data: [1, 2, 3] },
      { type: "binary", data: [2, 3] },
      { type: "text", data: "" },
      { type: "binary", data: [] },
    ]);
  });

  it("delivers large messages (over the 16 KiB framing threshold and over 64 KiB) intact", async () => {
    const { app, join } = room();
    const a = await join("a");
    const b = await join("b");
    a.peer.subscribe("big");
    b.peer.subscribe("big");
    const text = "λ".repeat(70_000);
    const binary = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) & 0xff);
    assert.equal(app.publish("big", text), 2);
    assert.equal(app.publish("big", binary), 2);
    await flush();
    for (const s of [a, b]) {
      const frames = s.conn.frames();
      assert.equal(frames.length, 2);
      assert.deepEqual(frames[0], { type: "text", data: text });
      assert.equal(frames[1]!.type, "binary");
      assert.deepEqual(new Uint8Array((frames[1] as { data: number[] }).data), binary);
    }
  });
});

describe("pub/sub: one frame for every recipient", () => {
  for (
    const [what, data] of [
      ["a small text", "shared"],
      ["a small binary message", new Uint8Array([1, 2, 3])],
      ["a 100 KiB text (header and payload chunks)", "t".repeat(100 * 1024)],
      ["a 100 KiB binary message (header and payload chunks)", new Uint8Array(100 * 1024).fill(7)],
    ] as const
  ) {
    it(`writes the very same frame chunks to every recipient: ${what}`, async () => {
      const { app, joinRecording } = room();
      const subs = await Promise.all(["a", "b", "c"].map((n) => joinRecording(n)));
      for (const s of subs) s.peer.subscribe("t");
      const before = subs.map((s) => s.transport.raw.length);
      assert.equal(app.publish("t", data), 3);
      await flush();
      const written = subs.map((s, i) => s.transport.chunksSince(before[i]!));
      const first = written[0]!;
      assert.ok(first.length >= 1);
      for (const chunks of written.slice(1)) {
        assert.equal(chunks.length, first.length, "as many chunks");
        chunks.forEach((chunk, k) => assert.equal(chunk, first[k], `chunk ${k} is the same Uint8Array object`));
      }
      // And what was written is the message.
      const expected = typeof data === "string" ? { type: "text", data } : { type: "binary", data: Array.from(data) };
      for (const s of subs) assert.deepEqual(s.conn.frames(), [expected]);
    });
  }

  it("does not copy a large binary payload: the published bytes are the frame's payload chunk", async () => {
    const { app, joinRecording } = room();
    const subs = await Promise.all(["a", "b"].map((n) => joinRecording(n)));
    for (const s of subs) s.peer.subscribe("t");
    const payload = new Uint8Array(64 * 1024).fill(3);
    const before = subs.map((s) => s.transport.raw.length);
    app.publish("t", payload);
    await flush();
    for (const [i, s] of subs.entries()) {
      const chunks = s.transport.chunksSince(before[i]!);
      assert.ok(chunks.includes(payload), "the payload went out as it is");
    }
  });

  it("frames the message once: one PreparedMessage.frame build for all recipients (spied)", async () => {
    const { app, join } = room();
    const subs = await Promise.all(["a", "b", "c", "d"].map((n) => join(n)));
    for (const s of subs) s.peer.subscribe("t");
    const descriptor = Object.getOwnPropertyDescriptor(PreparedMessage.prototype, "frame")!;
    const frames = new Set<readonly Uint8Array[]>();
    let reads = 0;
    Object.defineProperty(PreparedMessage.prototype, "frame", {
      ...descriptor,
      get(this: PreparedMessage) {
        reads++;
        const frame = descriptor.get!.call(this) as readonly Uint8Array[];
        frames.add(frame);
        return frame;
      },
    });
    try {
      assert.equal(app.publish("t", "once"), 4);
    } finally {
      Object.defineProperty(PreparedMessage.prototype, "frame", descriptor);
    }
    await flush();
    assert.ok(reads >= 1, "the frame was used");
    assert.equal(frames.size, 1, "every recipient got the same frame array");
    for (const s of subs) assert.deepEqual(s.conn.texts(), ["once"]);
  });
});

describe("pub/sub: send middleware per recipient", () => {
  /** Upper-cases for peers joined with `upper`, drops for `mute`, throws for `boom`; logs who it ran for. */
  function sendMiddleware(log: string[]): Middleware<State> {
    return {
      send(ctx, next) {
        log.push(`${ctx.state.name}:${typeof ctx.data === "string" ? ctx.data : `[${Array.from(ctx.data as Uint8Array)}]`}`);
        if (ctx.state.boom) throw new Error(`boom for ${ctx.state.name}`);
        if (ctx.state.mute) return;
        if (ctx.state.upper && typeof ctx.data === "string") ctx.data = ctx.data.toUpperCase();
        return next();
      },
    };
  }

  it("runs once per recipient on publish, with that recipient's context", async () => {
    const log: string[] = [];
    const { app, join } = room({}, sendMiddleware(log));
    const subs = await Promise.all(["a", "b", "c"].map((n) => join(n)));
    for (const s of subs) s.peer.subscribe("t");
    const outsider = await join("outsider");
    app.publish("t", "hello");
    subs[0]!.peer.publish("t", new Uint8Array([1]));
    assert.deepEqual(log.sort(), ["a:hello", "b:[1]", "b:hello", "c:[1]", "c:hello"]);
    await flush();
    assert.deepEqual(outsider.conn.frames(), []);
  });

  it("a recipient whose middleware transforms gets its own data; the others share the frame", async () => {
    const log: string[] = [];
    const { app, joinRecording } = room({}, sendMiddleware(log));
    const plain1 = await joinRecording("p1");
    const plain2 = await joinRecording("p2");
    const upper = await joinRecording("up", "upper");
    const all = [plain1, plain2, upper];
    for (const s of all) s.peer.subscribe("t");
    const before = all.map((s) => s.transport.raw.length);
    assert.equal(app.publish("t", "quiet"), 3);
    await flush();
    assert.deepEqual(plain1.conn.texts(), ["quiet"]);
    assert.deepEqual(plain2.conn.texts(), ["quiet"]);
    assert.deepEqual(upper.conn.texts(), ["QUIET"]);
    const [c1, c2, cu] = all.map((s, i) => s.transport.chunksSince(before[i]!));
    assert.equal(c1![0], c2![0], "the untransformed recipients share the frame");
    assert.notEqual(cu![0], c1![0], "the transformed recipient has its own");
  });

  it("a middleware that drops drops only for its recipient", async () => {
    const log: string[] = [];
    const { app, join } = room({}, sendMiddleware(log));
    const a = await join("a");
    const muted = await join("m", "mute");
    const b = await join("b");
    for (const s of [a, muted, b]) s.peer.subscribe("t");
    app.publish("t", "one");
    app.publish("t", "two");
    await flush();
    assert.deepEqual(a.conn.texts(), ["one", "two"]);
    assert.deepEqual(b.conn.texts(), ["one", "two"]);
    assert.deepEqual(muted.conn.frames(), []);
    assert.deepEqual(log.filter((l) => l.startsWith("m:")), ["m:one", "m:two"], "the muted peer's middleware ran");
  });

  it("a middleware that throws closes that recipient with 1011 only; publish does not throw", async () => {
    const log: string[] = [];
    const errors = errorLog();
    const { app, join } = room({}, sendMiddleware(log));
    app.onError(errors.handler);
    const a = await join("a");
    const bad = await join("bad", "boom");
    const b = await join("b");
    for (const s of [a, bad, b]) s.peer.subscribe("t");
    assert.doesNotThrow(() => app.publish("t", "x"));
    await flush();
    assert.deepEqual(a.conn.texts(), ["x"]);
    assert.deepEqual(b.conn.texts(), ["x"]);
    assert.deepEqual(bad.conn.frames(), [{ type: "close", code: 1011, reason: "Internal error" }]);
    assert.equal(errors.errors.length, 1);
    assert.equal((errors.errors[0] as Error).message, "boom for bad");
    assert.deepEqual(errors.contexts, ["send"]);
    app.publish("t", "y");
    await flush();
    assert.deepEqual(a.conn.texts(), ["x", "y"]);
    assert.deepEqual(bad.conn.frames(), [{ type: "close", code: 1011, reason: "Internal error" }], "nothing after its close");
  });

  it("ctx.sendPrepared goes through the send middleware too", async () => {
    const log: string[] = [];
    const app = new App<State>().use(
      { upgrade: (ctx, next) => ((ctx.state = { name: "solo", upper: true }), next()) },
      sendMiddleware(log),
      { message: (ctx) => void ctx.sendPrepared(new PreparedMessage(String(ctx.data))) },
    );
    const conn = await connect(app);
    await conn.text("prepared");
    assert.deepEqual(log, ["solo:prepared"]);
    assert.deepEqual(conn.texts(), ["PREPARED"]);
  });
});

describe("pub/sub: closing and closed peers", () => {
  it("a peer leaves its topics when its socket closes: clean close, FIN and reset alike", async () => {
    const { app, join } = room();
    const clean = await join("clean");
    const fin = await join("fin");
    const reset = await join("reset");
    const stays = await join("stays");
    for (const s of [clean, fin, reset, stays]) {
      s.peer.subscribe("t");
      s.peer.subscribe(`only-${s.peer.state.name}`);
    }
    assert.equal(app.subscribers("t"), 4);
    await clean.conn.close(1000);
    assert.equal(app.subscribers("t"), 3);
    assert.equal(app.subscribers("only-clean"), 0);
    assert.deepEqual([...clean.peer.topics], []);
    await fin.conn.end();
    assert.equal(app.subscribers("t"), 2);
    await reset.conn.socketClosed();
    assert.equal(app.subscribers("t"), 1);
    assert.equal(app.subscribers("only-reset"), 0);
    assert.equal(app.subscribers("only-stays"), 1);
    assert.equal(app.publish("t", "left"), 1);
    await stays.conn.close(1000);
    assert.equal(app.subscribers("t"), 0);
    assert.equal(app.publish("t", "nobody"), 0);
  });

  it("a closed peer never receives, and cannot subscribe again", async () => {
    const { app, join } = room();
    const gone = await join("gone");
    const here = await join("here");
    gone.peer.subscribe("t");
    here.peer.subscribe("t");
    await gone.conn.close(1000);
    const framesAtClose = gone.conn.frames();
    assert.equal(gone.peer.readyState, ReadyState.Closed);
    assert.equal(gone.peer.subscribe("t"), false, "closed: not subscribed");
    assert.equal(app.subscribers("t"), 1);
    assert.equal(app.publish("t", "after"), 1);
    assert.equal(app.publish("t", "after, binary"), 1);
    await flush();
    assert.deepEqual(gone.conn.frames(), framesAtClose, "nothing written after the close");
    assert.deepEqual(here.conn.texts(), ["after", "after, binary"]);
  });

  it("a subscription made in the close middleware does not stay", async () => {
    let answer: boolean | undefined;
    const app = new App().use({ close: (ctx) => void (answer = ctx.subscribe("late")) });
    const conn = await connect(app);
    await conn.close(1000);
    assert.equal(answer, false);
    assert.equal(app.subscribers("late"), 0);
  });

  it("skips a peer in the CLOSING state (the server closed, the client has not answered)", async () => {
    const { app, join } = room();
    const closing = await join("closing");
    const open = await join("open");
    closing.peer.subscribe("t");
    open.peer.subscribe("t");
    closing.peer.close(1000, "bye");
    await flush();
    assert.equal(closing.peer.readyState, ReadyState.Closing);
    assert.equal(app.subscribers("t"), 2, "still subscribed until closed");
    assert.equal(app.publish("t", "during close"), 1);
    await flush();
    assert.deepEqual(closing.conn.frames(), [{ type: "close", code: 1000, reason: "bye" }]);
    assert.deepEqual(open.conn.texts(), ["during close"]);
    assert.deepEqual({ ...app.pubsubStats }, { published: 1, delivered: 1, dropped: 0, closedSlow: 0, received: 0 });
    await closing.conn.close(1000);
    assert.equal(app.subscribers("t"), 1);
  });

  it("refuses to subscribe a peer still CONNECTING (the upgrade may yet fail); subscribing in open works", async () => {
    const seen: boolean[] = [];
    const gate = deferred();
    const app = new App().use({
      async upgrade(ctx, next) {
        seen.push(ctx.subscribe("early"));
        await gate.promise;
        return next();
      },
      open(ctx) {
        seen.push(ctx.subscribe("early"));
      },
    });
    const early = await connect(app);
    assert.equal(early.answered, false, "the upgrade is still pending");
    assert.deepEqual(seen, [false], "no subscription before the connection is open");
    assert.equal(app.subscribers("early"), 0);
    assert.equal(app.publish("early", "too soon"), 0);
    gate.resolve();
    await flush();
    assert.equal(early.status, 101);
    assert.deepEqual(seen, [false, true]);
    assert.equal(app.publish("early", "open now"), 1);
    await flush();
    assert.deepEqual(early.texts(), ["open now"]);
  });

  it(
    "a subscription made in the upgrade phase does not outlive a refused upgrade",
    async () => {
      const app = new App().use({
        upgrade(ctx) {
          ctx.subscribe("lobby");
          ctx.reject(403, "no");
        },
      });
      const refused = await connect(app);
      assert.equal(refused.status, 403);
      await flush();
      assert.equal(app.subscribers("lobby"), 0, "the refused connection is not a subscriber");
    },
  );
});

describe("pub/sub: slow subscribers", () => {
  it("skips a subscriber over maxBufferedBytes (policy drop, the default) and counts it; the others still get it", async () => {
    const { app, join } = room({ maxBufferedBytes: 1000 });
    const slow = await join("slow");
    const fast = await join("fast");
    slow.peer.subscribe("t");
    fast.peer.subscribe("t");
    slow.conn.transport.buffered = 1001;
    assert.equal(app.publish("t", "one"), 1);
    assert.equal(app.publish("t", "two"), 1);
    await flush();
    assert.deepEqual(fast.conn.texts(), ["one", "two"]);
    assert.deepEqual(slow.conn.frames(), []);
    assert.deepEqual({ ...app.pubsubStats }, { published: 2, delivered: 2, dropped: 2, closedSlow: 0, received: 0 });
    assert.equal(slow.peer.readyState, ReadyState.Open, "policy drop keeps it open");
    // Caught up: it gets messages again.
    slow.conn.transport.buffered = 0;
    assert.equal(app.publish("t", "three"), 2);
    await flush();
    assert.deepEqual(slow.conn.texts(), ["three"]);
  });

  it("is slow only above the limit: exactly maxBufferedBytes still receives", async () => {
    const { app, join } = room({ maxBufferedBytes: 1000 });
    const edge = await join("edge");
    edge.peer.subscribe("t");
    edge.conn.transport.buffered = 1000;
    assert.equal(app.publish("t", "at the limit"), 1);
    await flush();
    assert.deepEqual(edge.conn.texts(), ["at the limit"]);
    assert.equal(app.pubsubStats.dropped, 0);
  });

  it("uses 1 MiB by default", async () => {
    const { app, join } = room();
    const s = await join("s");
    s.peer.subscribe("t");
    s.conn.transport.buffered = 1024 * 1024;
    assert.equal(app.publish("t", "at 1 MiB"), 1);
    s.conn.transport.buffered = 1024 * 1024 + 1;
    assert.equal(app.publish("t", "over 1 MiB"), 0);
    await flush();
    assert.deepEqual(s.conn.texts(), ["at 1 MiB"]);
    assert.equal(app.pubsubStats.dropped, 1);
  });

  it(
    "never drops for a subscriber whose socket takes everything, however large a burst published at once",
    async () => {
      // The documented contract: buffered output counts Duplex's own batch,
      // which never grows past highWaterMark (64 KiB), so any limit above it
      // never drops a fast subscriber.
      const { app, join } = room({ maxBufferedBytes: 64 * 1024 + 1 });
      const fast = await join("fast");
      fast.peer.subscribe("t");
      for (let i = 0; i < 1000; i++) app.publish("t", new Uint8Array(1024).fill(i & 0xff));
      await flush();
      assert.equal(fast.conn.transport.buffered, 0, "the socket took everything at once");
      assert.equal(fast.conn.frames().length, 1000);
      assert.equal(app.pubsubStats.dropped, 0);
    },
  );

  it(
    "never drops the publisher's own copies (self: true) when its socket takes everything",
    async () => {
      const app = new App().use({
        open: (ctx) => void ctx.subscribe("t"),
        message(ctx) {
          for (let i = 0; i < 20; i++) ctx.publish("t", new Uint8Array(64 * 1024).fill(i), { self: true });
        },
      });
      const publisher = await connect(app);
      const other = await connect(app);
      await publisher.text("go");
      assert.equal(other.frames().length, 20);
      assert.equal(publisher.frames().length, 20, "the publisher's socket took everything: it is not slow");
      assert.equal(app.pubsubStats.dropped, 0);
    },
  );

  it("does not hold back direct sends to a slow subscriber", async () => {
    const { app, join } = room({ maxBufferedBytes: 10 });
    const slow = await join("slow");
    slow.peer.subscribe("t");
    slow.conn.transport.buffered = 100;
    app.publish("t", "dropped");
    slow.peer.send("direct");
    await flush();
    assert.deepEqual(slow.conn.texts(), ["direct"]);
  });

  it('closes a slow subscriber with 1013 (slowPolicy "close"), once, and counts it; the others still get it', async () => {
    const { app, join } = room({ maxBufferedBytes: 1000, slowPolicy: "close" });
    const slow = await join("slow");
    const fast = await join("fast");
    slow.peer.subscribe("t");
    fast.peer.subscribe("t");
    slow.conn.transport.buffered = 5000;
    assert.equal(app.publish("t", "one"), 1);
    assert.equal(app.publish("t", "two"), 1);
    await flush();
    assert.deepEqual(fast.conn.texts(), ["one", "two"]);
    assert.deepEqual(slow.conn.frames(), [{ type: "close", code: CloseCode.TryAgainLater, reason: "Too slow: output buffer full" }]);
    assert.equal(slow.peer.readyState, ReadyState.Closing);
    assert.deepEqual({ ...app.pubsubStats }, { published: 2, delivered: 2, dropped: 0, closedSlow: 1, received: 0 });
    await slow.conn.close(CloseCode.TryAgainLater);
    assert.equal(app.subscribers("t"), 1, "it left the topic once closed");
  });

  it("refuses bad options with ERR_INVALID_OPTION", () => {
    const bad: AppOptions[] = [
      { maxBufferedBytes: 0 },
      { maxBufferedBytes: -1 },
      { maxBufferedBytes: 1.5 },
      { maxBufferedBytes: Number.NaN },
      { maxBufferedBytes: Infinity },
      { maxBufferedBytes: "1024" as unknown as number },
      { slowPolicy: "block" as unknown as "drop" },
      { slowPolicy: "" as unknown as "drop" },
    ];
    for (const options of bad) {
      assert.throws(() => new App(options), isUsage("ERR_INVALID_OPTION"), JSON.stringify(options));
      assert.throws(() => new Hub(options, () => {}), isUsage("ERR_INVALID_OPTION"), JSON.stringify(options));
    }
    assert.doesNotThrow(() => new App({ maxBufferedBytes: 1, slowPolicy: "close" }));
    assert.doesNotThrow(() => new App({ maxBufferedBytes: undefined, slowPolicy: undefined }));
  });
});

describe("pub/sub: InProcessBackplane", () => {
  function twoApps() {
    const bus = new InProcessBackplane();
    return { a: room({ backplane: bus }), b: room({ backplane: bus }) };
  }

  it("carries a publish on A to B's subscribers once, and to A's own once (no echo back)", async () => {
    const { a, b } = twoApps();
    const a1 = await a.join("a1");
    const a2 = await a.join("a2");
    const b1 = await b.join("b1");
    const b2 = await b.join("b2");
    for (const s of [a1, a2, b1]) s.peer.subscribe("news");
    b2.peer.subscribe("other");
    assert.equal(a.app.publish("news", "from A"), 2, "the count is local");
    await flush();
    for (const s of [a1, a2, b1]) assert.deepEqual(s.conn.texts(), ["from A"]);
    assert.deepEqual(b2.conn.frames(), []);
    assert.deepEqual({ ...a.app.pubsubStats }, { published: 1, delivered: 2, dropped: 0, closedSlow: 0, received: 0 });
    assert.deepEqual({ ...b.app.pubsubStats }, { published: 0, delivered: 1, dropped: 0, closedSlow: 0, received: 1 });
  });

  it("peer.publish on B reaches A too, and skips only the publisher", async () => {
    const { a, b } = twoApps();
    const a1 = await a.join("a1");
    const b1 = await b.join("b1");
    const b2 = await b.join("b2");
    for (const s of [a1, b1, b2]) s.peer.subscribe("chat");
    assert.equal(b1.peer.publish("chat", new Uint8Array([7])), 1);
    await flush();
    assert.deepEqual(a1.conn.frames(), [{ type: "binary", data: [7] }]);
    assert.deepEqual(b2.conn.frames(), [{ type: "binary", data: [7] }]);
    assert.deepEqual(b1.conn.frames(), []);
  });

  it("forwards only topics that have subscribers on the other side", async () => {
    const { a, b } = twoApps();
    const b1 = await b.join("b1");
    a.app.publish("solo", "nobody on B");
    assert.equal(b.app.pubsubStats.received, 0);
    b1.peer.subscribe("solo");
    a.app.publish("solo", "now B listens");
    assert.equal(b.app.pubsubStats.received, 1);
    b1.peer.unsubscribe("solo");
    a.app.publish("solo", "B left");
    assert.equal(b.app.pubsubStats.received, 1);
    b1.peer.subscribe("solo");
    await b1.conn.close(1000);
    a.app.publish("solo", "B's subscriber closed");
    assert.equal(b.app.pubsubStats.received, 1);
    assert.deepEqual(b1.conn.texts(), ["now B listens"]);
  });

  it("keeps one order for every subscriber of both apps", async () => {
    const { a, b } = twoApps();
    const subs = [await a.join("a1"), await a.join("a2"), await b.join("b1"), await b.join("b2")];
    for (const s of subs) s.peer.subscribe("seq");
    const sent: string[] = [];
    for (let i = 0; i < 50; i++) {
      const m = `m${i}`;
      sent.push(m);
      (i % 3 === 0 ? b : a).app.publish("seq", m);
    }
    await flush();
    for (const s of subs) assert.deepEqual(s.conn.texts(), sent);
  });

  it("reaches every other app on the bus, each once", async () => {
    const bus = new InProcessBackplane();
    const rooms = [room({ backplane: bus }), room({ backplane: bus }), room({ backplane: bus })];
    const subs = await Promise.all(rooms.map((r, i) => r.join(`s${i}`)));
    for (const s of subs) s.peer.subscribe("t");
    rooms[1]!.app.publish("t", "hello all");
    await flush();
    for (const s of subs) assert.deepEqual(s.conn.texts(), ["hello all"]);
  });

  it(
    "an app that closed its backplane neither receives from the bus nor sends to it",
    async () => {
    const { a, b } = twoApps();
    const a1 = await a.join("a1");
    const b1 = await b.join("b1");
    a1.peer.subscribe("t");
    b1.peer.subscribe("t");
    await a.app.closeBackplane();
    assert.equal(b.app.publish("t", "B after A left"), 1);
    await flush();
    assert.deepEqual(a1.conn.texts(), [], "A left the bus: nothing from B");
    assert.deepEqual(b1.conn.texts(), ["B after A left"]);
    assert.doesNotThrow(() => a.app.publish("t", "A after it left"));
    await flush();
    assert.deepEqual(a1.conn.texts(), ["A after it left"], "local delivery goes on");
    assert.deepEqual(b1.conn.texts(), ["B after A left"], "nothing from A once it closed its link");
    },
  );
});

describe("pub/sub: the Backplane interface", () => {
  it("connects once per app, subscribes on the first local subscriber and unsubscribes on the last", async () => {
    const spy = new SpyBackplane();
    const { app, join } = room({ backplane: spy });
    assert.equal(spy.connections, 1);
    const a = await join("a");
    const b = await join("b");
    a.peer.subscribe("t");
    b.peer.subscribe("t");
    a.peer.subscribe("t"); // again: nothing
    a.peer.subscribe("u");
    assert.deepEqual(spy.calls, ["subscribe t", "subscribe u"]);
    a.peer.unsubscribe("t");
    assert.deepEqual(spy.calls, ["subscribe t", "subscribe u"], "b is still subscribed to t");
    b.peer.unsubscribe("t");
    b.peer.unsubscribe("t"); // again: nothing
    assert.deepEqual(spy.calls, ["subscribe t", "subscribe u", "unsubscribe t"]);
    b.peer.subscribe("u");
    await a.conn.close(1000); // a leaves u; b is still there
    assert.deepEqual(spy.calls, ["subscribe t", "subscribe u", "unsubscribe t"]);
    await b.conn.socketClosed(); // the last subscriber of u
    assert.deepEqual(spy.calls, ["subscribe t", "subscribe u", "unsubscribe t", "unsubscribe u"]);
    assert.equal(app.subscribers("u"), 0);
    await app.closeBackplane();
    assert.equal(spy.calls.at(-1), "close");
  });

  it("hands every publish to the link once, in order, after local delivery, with or without local subscribers", async () => {
    const spy = new SpyBackplane();
    const { app, join } = room({ backplane: spy });
    const a = await join("a");
    a.peer.subscribe("t");
    let localWritten: boolean | undefined;
    spy.onPublish = () => {
      // Local delivery (to a, on the first publish) was queued before the backplane got it.
      localWritten ??= a.peer.bufferedAmount > 0;
    };
    app.publish("t", "one");
    app.publish("nobody", "two");
    a.peer.publish("t", new Uint8Array([1, 2]));
    a.peer.publish("t", new Uint8Array([3, 4, 5, 6]).buffer);
    assert.deepEqual(spy.calls, ["subscribe t", "publish t one", "publish nobody two", "publish t [1,2]", "publish t [3,4,5,6]"]);
    assert.equal(localWritten, true);
    assert.ok(spy.published[3] instanceof Uint8Array, "an ArrayBuffer is handed over as a Uint8Array");
  });

  it("delivers what the backplane brings to local subscribers, without publishing it again", async () => {
    const spy = new SpyBackplane();
    const { app, join } = room({ backplane: spy });
    const a = await join("a");
    const b = await join("b");
    a.peer.subscribe("t");
    b.peer.subscribe("t");
    spy.deliver("t", "from afar");
    spy.deliver("t", new Uint8Array([1]));
    spy.deliver("unheard", "nobody here");
    await flush();
    for (const s of [a, b]) assert.deepEqual(s.conn.frames(), [{ type: "text", data: "from afar" }, { type: "binary", data: [1] }]);
    assert.ok(!spy.calls.some((c) => c.startsWith("publish")), `nothing published back: ${spy.calls.join(", ")}`);
    const stats = app.pubsubStats;
    assert.equal(stats.published, 0);
    assert.equal(stats.delivered, 4);
    assert.ok(stats.received >= 2);
  });

  it("reports a link's throw on publish to onBackplaneError; local delivery happened and nothing is thrown", async () => {
    const spy = new SpyBackplane();
    const reported: unknown[] = [];
    const { app, join } = room({ backplane: spy, onBackplaneError: (e) => void reported.push(e) });
    const a = await join("a");
    a.peer.subscribe("t");
    const boom = new Error("publish failed");
    spy.onPublish = () => {
      throw boom;
    };
    let count: number | undefined;
    assert.doesNotThrow(() => (count = app.publish("t", "still local")));
    assert.equal(count, 1);
    assert.deepEqual(reported, [boom]);
    await flush();
    assert.deepEqual(a.conn.texts(), ["still local"]);
  });

  it("reports a link's rejected publish to onBackplaneError, with no unhandled rejection", async () => {
    const spy = new SpyBackplane();
    const reported: unknown[] = [];
    const { app, join } = room({ backplane: spy, onBackplaneError: (e) => void reported.push(e) });
    const a = await join("a");
    a.peer.subscribe("t");
    const boom = new Error("publish rejected");
    spy.onPublish = () => Promise.reject(boom);
    assert.equal(app.publish("t", "still local"), 1);
    await flush();
    assert.deepEqual(reported, [boom]);
    assert.deepEqual(a.conn.texts(), ["still local"]);
  });

  it("reports failing subscribe and unsubscribe calls; the local subscription works all the same", async () => {
    const spy = new SpyBackplane();
    const reported: unknown[] = [];
    const { app, join } = room({ backplane: spy, onBackplaneError: (e) => void reported.push(e) });
    const a = await join("a");
    const subFailed = new Error("subscribe failed");
    const unsubFailed = new Error("unsubscribe failed");
    spy.onSubscribe = () => {
      throw subFailed;
    };
    spy.onUnsubscribe = () => Promise.reject(unsubFailed);
    assert.equal(a.peer.subscribe("t"), true);
    assert.equal(app.subscribers("t"), 1);
    assert.equal(app.publish("t", "local"), 1);
    assert.equal(a.peer.unsubscribe("t"), true);
    assert.equal(app.subscribers("t"), 0);
    await flush();
    assert.deepEqual(reported, [subFailed, unsubFailed]);
    assert.deepEqual(a.conn.texts(), ["local"]);
  });

  it("passes the backplane's own reports (a lost connection) to onBackplaneError", () => {
    const spy = new SpyBackplane();
    const reported: unknown[] = [];
    new App({ backplane: spy, onBackplaneError: (e) => void reported.push(e) });
    const lost = new Error("connection lost");
    spy.report(lost);
    assert.deepEqual(reported, [lost]);
  });

  it("an onBackplaneError that throws is logged, never thrown to the publisher", async () => {
    const spy = new SpyBackplane();
    const { app, join } = room({
      backplane: spy,
      onBackplaneError: () => {
        throw new Error("handler broke");
      },
    });
    const a = await join("a");
    a.peer.subscribe("t");
    spy.onPublish = () => {
      throw new Error("publish failed");
    };
    const logged: unknown[][] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void logged.push(args);
    try {
      assert.equal(app.publish("t", "x"), 1);
    } finally {
      console.error = original;
    }
    assert.equal(logged.length, 1);
    await flush();
    assert.deepEqual(a.conn.texts(), ["x"]);
  });

  it("closeBackplane resolves without a backplane too", async () => {
    await new App().closeBackplane();
  });
});

describe("pub/sub: stats", () => {
  it("counts published, delivered, dropped, closedSlow and received, and nothing else", async () => {
    const spy = new SpyBackplane();
    const { app, join } = room({ backplane: spy, maxBufferedBytes: 100 });
    assert.deepEqual(Object.keys(app.pubsubStats).sort(), STATS_KEYS);
    assert.deepEqual({ ...app.pubsubStats }, { published: 0, delivered: 0, dropped: 0, closedSlow: 0, received: 0 } satisfies PubSubStats);
    const a = await join("a");
    const b = await join("b");
    const slow = await join("slow");
    for (const s of [a, b, slow]) s.peer.subscribe("t");
    slow.conn.transport.buffered = 101;
    app.publish("t", "1"); // a, b; slow dropped
    a.peer.publish("t", "2"); // b; slow dropped
    app.publish("t", "3", { except: b.peer }); // a; slow dropped
    app.publish("empty", "4"); // nobody
    spy.deliver("t", "5"); // a, b; slow dropped
    assert.deepEqual({ ...app.pubsubStats }, { published: 4, delivered: 6, dropped: 4, closedSlow: 0, received: 1 });
  });

  it("starts at zero for each app", () => {
    const one = new App();
    const two = new App();
    one.publish("t", "x");
    assert.equal(one.pubsubStats.published, 1);
    assert.equal(two.pubsubStats.published, 0);
  });
});
