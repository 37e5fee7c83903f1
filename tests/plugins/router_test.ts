// Routers: by path (Router) and by subprotocol (subprotocols).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import { App } from "../../plugins/app.ts";
import type { Middleware } from "../../plugins/pipeline.ts";
import { Router, subprotocols } from "../../plugins/router.ts";
import { connect, flush, frame } from "./_harness.ts";

/** Middleware that logs every event of its connections under `name`. */
function tracer(name: string, log: string[]): Middleware {
  return (ctx, next) => {
    log.push(`${name}:${ctx.type}`);
    return next();
  };
}

describe("App.route", () => {
  it("routes on the app's own router, placed where route() is first called, and refuses other paths with 404", async () => {
    const log: string[] = [];
    const app = new App<{ who: string }>()
      .use(tracer("before", log))
      .route("/rooms/:room", {
        upgrade(ctx, next) {
          ctx.state.who = `room ${ctx.params.room}`;
          return next();
        },
        open: (ctx) => void ctx.send(ctx.state.who),
      })
      .use(tracer("after", log))
      .route("/files/*", { open: (ctx) => void ctx.send(`file ${ctx.params["*"]}`) });
    const room = await connect(app, { request: { path: "/rooms/lobby" } });
    assert.equal(room.status, 101);
    await flush();
    assert.deepEqual(room.texts(), ["room lobby"]);
    const file = await connect(app, { request: { path: "/files/a/b.txt" } });
    assert.equal(file.status, 101);
    await flush();
    assert.deepEqual(file.texts(), ["file a/b.txt"]);
    assert.equal((await connect(app, { request: { path: "/elsewhere" } })).status, 404);
    assert.deepEqual(log.filter((e) => e.endsWith(":upgrade")), ["before:upgrade", "after:upgrade", "before:upgrade", "after:upgrade", "before:upgrade"]);
  });

  it("refuses a bad pattern at once", () => {
    assert.throws(() => new App().route("rooms"), (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_ROUTE");
  });
});

describe("Router", () => {
  it("matches /rooms/:id and puts the percent-decoded parameter in params", async () => {
    const seen: unknown[] = [];
    const app = new App().use(
      new Router().route("/rooms/:id", {
        upgrade: (ctx, next) => (seen.push(["upgrade", { ...ctx.params }]), next()),
        open: (ctx) => void ctx.send(`room ${ctx.params.id}`),
        message: (ctx) => void seen.push(["message", { ...ctx.params }]),
      }),
    );
    const conn = await connect(app, { request: { path: "/rooms/caf%C3%A9%20au%2Flait?x=1" } });
    assert.equal(conn.status, 101);
    await conn.text("hi");
    assert.deepEqual(conn.texts(), ["room café au/lait"]);
    assert.deepEqual(seen, [["upgrade", { id: "café au/lait" }], ["message", { id: "café au/lait" }]], "params in every phase");
  });

  it("takes several parameters", async () => {
    let params: unknown;
    const app = new App().use(new Router().route("/a/:x/b/:y", { open: (ctx) => void (params = { ...ctx.params }) }));
    const conn = await connect(app, { request: { path: "/a/1/b/2" } });
    assert.equal(conn.status, 101);
    assert.deepEqual(params, { x: "1", y: "2" });
  });

  it("puts the rest of the path of a trailing * in params['*'], decoded", async () => {
    let params: unknown;
    const app = new App().use(new Router().route("/files/*", { open: (ctx) => void (params = { ...ctx.params }) }));
    const conn = await connect(app, { request: { path: "/files/a/b%20c/d.txt" } });
    assert.equal(conn.status, 101);
    assert.deepEqual(params, { "*": "a/b c/d.txt" });
    const root = await connect(app, { request: { path: "/files" } });
    assert.equal(root.status, 101, "* also matches nothing");
    assert.deepEqual(params, { "*": "" });
  });

  it("does not match an empty parameter, extra or missing segments", async () => {
    const app = new App().use(new Router().route("/rooms/:id", {}));
    for (const path of ["/rooms/", "/rooms", "/rooms/a/b", "/Rooms/a", "/"]) {
      const conn = await connect(app, { request: { path } });
      assert.equal(conn.status, 404, `${path} must not match /rooms/:id`);
    }
  });

  it("lets the first matching route win", async () => {
    const app = new App().use(
      new Router()
        .route("/rooms/lobby", { open: (ctx) => void ctx.send("literal") })
        .route("/rooms/:id", { open: (ctx) => void ctx.send(`param ${ctx.params.id}`) })
        .route("/rooms/*", { open: (ctx) => void ctx.send("rest") }),
    );
    assert.deepEqual((await connect(app, { request: { path: "/rooms/lobby" } })).texts(), ["literal"]);
    assert.deepEqual((await connect(app, { request: { path: "/rooms/kitchen" } })).texts(), ["param kitchen"]);
    assert.deepEqual((await connect(app, { request: { path: "/rooms/a/b" } })).texts(), ["rest"]);
  });

  it("answers 404 with a body naming the path when no route matches", async () => {
    let after = false;
    const app = new App().use(new Router().route("/rooms/:id", {}), { upgrade: (_c, next) => ((after = true), next()) });
    const conn = await connect(app, { request: { path: "/nope?room=1" } });
    assert.equal(conn.status, 404);
    assert.equal(conn.answer.body, "Not Found: no WebSocket route for /nope");
    assert.equal(after, false, "nothing after the router ran");
  });

  it("answers 400 for a parameter that is not valid percent-encoding", async () => {
    const app = new App().use(new Router().route("/rooms/:id", {}).route("/files/*", {}));
    for (const path of ["/rooms/%E0%A4%A", "/rooms/%ZZ", "/files/a/%C3"]) {
      const conn = await connect(app, { request: { path } });
      assert.equal(conn.status, 400, `${path}: 400`);
      assert.match(conn.answer.body, /^Bad Request: invalid percent-encoding/, `${path}: body`);
    }
  });

  it("runs a route's middleware only for its own connections, for every later event", async () => {
    const log: string[] = [];
    const app = new App().use(
      new Router()
        .route("/a", tracer("A", log))
        .route("/b", tracer("B", log)),
      { message: (ctx) => void ctx.send(`app ${String(ctx.data)}`) },
    );
    const a = await connect(app, { request: { path: "/a" } });
    const b = await connect(app, { request: { path: "/b" } });
    await a.text("1");
    await b.text("2");
    await a.close(1000);
    await b.end();
    assert.deepEqual(log.filter((l) => l.startsWith("A")), ["A:upgrade", "A:open", "A:message", "A:send", "A:close"]);
    assert.deepEqual(log.filter((l) => l.startsWith("B")), ["B:upgrade", "B:open", "B:message", "B:send", "B:close"]);
    assert.deepEqual(a.texts(), ["app 1"], "the chain went on after the route");
    assert.deepEqual(b.texts(), ["app 2"]);
  });

  it("runs a route's middleware before the rest of the app, and can stop it there", async () => {
    const log: string[] = [];
    const app = new App().use(
      new Router().route("/guarded", {
        message(ctx, next) {
          log.push("route");
          if (ctx.data === "blocked") return;
          return next();
        },
      }),
      { message: (ctx) => void log.push(`app ${String(ctx.data)}`) },
    );
    const conn = await connect(app, { request: { path: "/guarded" } });
    await conn.text("ok");
    await conn.text("blocked");
    assert.deepEqual(log, ["route", "app ok", "route"]);
  });

  it("nests: a router on a route of another router", async () => {
    const app = new App().use(
      new Router().route(
        "/api/*",
        new Router().route("/api/v1/:thing", { open: (ctx) => void ctx.send(`v1 ${ctx.params.thing}`) }),
      ),
    );
    const conn = await connect(app, { request: { path: "/api/v1/users" } });
    assert.deepEqual(conn.texts(), ["v1 users"]);
    const miss = await connect(app, { request: { path: "/api/v2/users" } });
    assert.equal(miss.status, 404);
  });

  it("refuses invalid patterns with ERR_INVALID_ROUTE", () => {
    for (const pattern of ["rooms", "", "/a/:id/:id", "/a/:", "/*/x", "/a/*/b"]) {
      assert.throws(
        () => new Router().route(pattern, {}),
        (e) => e instanceof UsageError && e.code === "ERR_INVALID_ROUTE",
        `${JSON.stringify(pattern)} must be refused`,
      );
    }
    assert.throws(() => new Router().route(42 as unknown as string, {}), UsageError);
    assert.throws(() => new Router().route("/ok", 5 as never), (e) => e instanceof UsageError && e.code === "ERR_INVALID_MIDDLEWARE");
  });
});

describe("subprotocols", () => {
  const echoAs = (name: string): Middleware => ({
    open: (ctx) => void ctx.send(`${name} open, protocol ${ctx.protocol}`),
    message: (ctx) => void ctx.send(`${name}: ${String(ctx.data)}`),
  });

  it("chooses the server's preference whatever the client's order", async () => {
    const app = new App().use(subprotocols({ b: echoAs("B"), a: echoAs("A") }));
    const conn = await connect(app, { request: { protocols: ["a", "b"] } });
    assert.equal(conn.status, 101);
    assert.equal(conn.answer.header("sec-websocket-protocol"), "b", "the server's first choice");
    assert.equal(conn.pump.protocol, "b");
    await conn.text("x");
    assert.deepEqual(conn.texts(), ["B open, protocol b", "B: x"]);
  });

  it("chooses the only spoken subprotocol among unknown ones", async () => {
    const app = new App().use(subprotocols({ b: echoAs("B"), a: echoAs("A") }));
    const conn = await connect(app, { request: { protocols: ["zzz", "a", "yyy"] } });
    assert.equal(conn.answer.header("sec-websocket-protocol"), "a");
  });

  it("refuses with 400 and a body naming the protocols when none is offered or matches", async () => {
    const app = new App().use(subprotocols({ "chat.v2": {}, "chat.v1": {} }));
    const none = await connect(app);
    assert.equal(none.status, 400);
    assert.equal(none.answer.body, "Bad Request: this endpoint speaks the subprotocols chat.v2, chat.v1; the client offered none");
    const other = await connect(app, { request: { protocols: ["mqtt", "chat.v3"] } });
    assert.equal(other.status, 400);
    assert.equal(other.answer.body, "Bad Request: this endpoint speaks the subprotocols chat.v2, chat.v1; the client offered mqtt, chat.v3");
  });

  it("with required: false, upgrades without a Sec-WebSocket-Protocol header and goes on", async () => {
    const log: string[] = [];
    const app = new App().use(
      subprotocols({ a: tracer("A", log) }, { required: false }),
      { open: (ctx) => void ctx.send(`after, protocol "${ctx.protocol}"`) },
    );
    const conn = await connect(app, { request: { protocols: ["other"] }, options: { protocols: ["other"] } });
    assert.equal(conn.status, 101);
    assert.equal(conn.answer.header("sec-websocket-protocol"), undefined, "no subprotocol even though the server option lists one");
    assert.deepEqual(conn.texts(), ['after, protocol ""']);
    assert.deepEqual(log, [], "the branch did not run");
    const none = await connect(app);
    assert.equal(none.status, 101);
    assert.equal(none.answer.header("sec-websocket-protocol"), undefined);
  });

  it("runs each protocol's handlers only for connections that speak it", async () => {
    const log: string[] = [];
    const app = new App().use(subprotocols({
      "v1": [tracer("v1", log), echoAs("one")],
      "v2": [tracer("v2", log), echoAs("two")],
    }));
    const one = await connect(app, { request: { protocols: ["v1"] } });
    const two = await connect(app, { request: { protocols: ["v2"] } });
    await one.text("a");
    await two.text("b");
    await one.close(1000);
    await two.close(1000);
    assert.deepEqual(one.texts(), ["one open, protocol v1", "one: a"]);
    assert.deepEqual(two.texts(), ["two open, protocol v2", "two: b"]);
    assert.deepEqual(log.filter((l) => l.startsWith("v1")), ["v1:upgrade", "v1:open", "v1:send", "v1:message", "v1:send", "v1:close"]);
    assert.deepEqual(log.filter((l) => l.startsWith("v2")), ["v2:upgrade", "v2:open", "v2:send", "v2:message", "v2:send", "v2:close"]);
  });

  it("works on a path route", async () => {
    const app = new App().use(new Router().route("/chat/:room", subprotocols({ "chat.v1": { open: (ctx) => void ctx.send(ctx.params.room!) } })));
    const conn = await connect(app, { request: { path: "/chat/lobby", protocols: ["chat.v1"] } });
    assert.equal(conn.answer.header("sec-websocket-protocol"), "chat.v1");
    assert.deepEqual(conn.texts(), ["lobby"]);
    const refused = await connect(app, { request: { path: "/chat/lobby" } });
    assert.equal(refused.status, 400);
  });

  it("refuses no subprotocol, or a name that is not an HTTP token", () => {
    assert.throws(() => subprotocols({}), (e) => e instanceof UsageError && e.code === "ERR_INVALID_ROUTE");
    assert.throws(() => subprotocols({ "": {} }), (e) => e instanceof UsageError && e.code === "ERR_INVALID_ROUTE");
    for (const bad of ["chat v1", "a,b", "é", "x\r\n"]) {
      assert.throws(() => subprotocols({ [bad]: {} }), (e) => e instanceof UsageError && e.code === "ERR_INVALID_ROUTE", `not a token: ${JSON.stringify(bad)}`);
    }
    assert.doesNotThrow(() => subprotocols({ "graphql-transport-ws": {}, "v1.chat+json": {} }));
  });

  it("sends a connection down its own protocol's branch only", async () => {
    const log: string[] = [];
    const app = new App().use(subprotocols({ a: tracer("a", log), b: tracer("b", log) }));
    const conn = await connect(app, { request: { protocols: ["b"] } });
    conn.feed(frame(0x1, "x"));
    await flush();
    assert.deepEqual(log, ["b:upgrade", "b:open", "b:message"]);
  });
});
