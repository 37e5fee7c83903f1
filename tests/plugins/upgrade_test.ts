// The App's upgrade phase, run on the real Pump: what middleware reads of
// the request, what it adds to the 101, and every way to refuse.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import { App } from "../../plugins/app.ts";
import type { UpgradeContext } from "../../plugins/context.ts";
import { checkErrorStatus } from "../../core/_http_status.ts";
import { HttpError } from "../../plugins/errors.ts";
import { acceptKey } from "../../core/handshake_response.ts";
import { buildRequest, connect, type Conn, deferred, errorLog, flush } from "./_harness.ts";

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

function assertRefused(conn: Conn, status: number, body: string, what: string): void {
  const answer = conn.answer;
  assert.equal(answer.status, status, `${what}: status`);
  assert.notEqual(answer.status, 101, `${what}: no 101`);
  assert.equal(answer.body, body, `${what}: body`);
  assert.equal(answer.header("content-length"), String(new TextEncoder().encode(body).length), `${what}: content-length`);
  assert.equal(answer.header("sec-websocket-accept"), undefined, `${what}: no accept key on a refusal`);
  assert.equal(conn.ended || conn.destroyed, true, `${what}: the connection is over`);
  assert.equal(conn.readyState, 3, `${what}: closed`);
  assert.deepEqual(conn.frames(), [], `${what}: no frames`);
}

describe("App upgrade phase", () => {
  it("reads method, url, path, query, headers, cookies and the remote address", async () => {
    let seen: Record<string, unknown> | undefined;
    const app = new App().use({
      upgrade(ctx, next) {
        seen = {
          type: ctx.type,
          method: ctx.method,
          url: ctx.url.href,
          requestUrl: ctx.request.url,
          path: ctx.path,
          room: ctx.query.get("room"),
          tags: ctx.query.getAll("tag"),
          missing: ctx.query.get("nope"),
          custom: ctx.headers.get("x-custom"),
          agent: ctx.headers.get("USER-AGENT"),
          cookies: { ...ctx.cookies },
          remoteAddress: ctx.remoteAddress,
          offered: [...ctx.offeredProtocols],
          protocol: ctx.protocol,
          protocolChosen: ctx.protocolChosen,
          readyState: ctx.readyState,
          params: { ...ctx.params },
        };
        return next();
      },
    });
    const conn = await connect(app, {
      remoteAddress: "203.0.113.7",
      request: {
        path: "/chat/lobby?room=a%20b&tag=x&tag=y",
        host: "ws.example.org:8443",
        cookie: 'sid=abc; theme="dark"; sid=ignored; name=J%C3%BCrgen; bad=%E0%A4%A',
        protocols: ["chat.v2", "chat.v1"],
        headers: { "X-Custom": "42", "User-Agent": "test/1" },
      },
    });
    assert.equal(conn.status, 101, "accepted");
    assert.deepEqual(seen, {
      type: "upgrade",
      method: "GET",
      url: "http://ws.example.org:8443/chat/lobby?room=a%20b&tag=x&tag=y",
      requestUrl: "/chat/lobby?room=a%20b&tag=x&tag=y",
      path: "/chat/lobby",
      room: "a b",
      tags: ["x", "y"],
      missing: null,
      custom: "42",
      agent: "test/1",
      cookies: { sid: "abc", theme: "dark", name: "Jürgen", bad: "%E0%A4%A" },
      remoteAddress: "203.0.113.7",
      offered: ["chat.v2", "chat.v1"],
      protocol: "",
      protocolChosen: false,
      readyState: 0,
      params: {},
    });
  });

  it("reads repeated and mixed-case headers after the handshake as before (built on first access)", async () => {
    const seen: (string | null)[] = [];
    const app = new App().use({
      upgrade(ctx, next) {
        seen.push(ctx.headers.get("x-tag"), String(ctx.request.headers === ctx.headers));
        return next();
      },
      open(ctx, next) {
        seen.push(ctx.request.headers.get("X-TAG"), ctx.request.headers.get("x-missing"));
        return next();
      },
    });
    const conn = await connect(app, { request: { headers: [["X-Tag", "one"], ["x-tag", "two"]] } });
    await flush();
    assert.equal(conn.status, 101);
    assert.deepEqual(seen, ["one, two", "true", "one, two", null]);
  });

  it("answers a valid 101 when no middleware handles the upgrade", async () => {
    const conn = await connect(new App());
    const answer = conn.answer;
    assert.equal(answer.status, 101);
    assert.equal(answer.header("upgrade"), "websocket");
    assert.equal(answer.header("sec-websocket-accept"), acceptKey(KEY));
    assert.equal(answer.header("sec-websocket-protocol"), undefined, "no subprotocol was offered");
    assert.equal(conn.readyState, 1);
  });

  it("puts responseHeaders on the 101, both Set-Cookie headers included", async () => {
    const app = new App().use({
      upgrade(ctx, next) {
        ctx.responseHeaders.set("X-Served-By", "duplex");
        ctx.responseHeaders.append("Set-Cookie", "a=1; Path=/");
        ctx.responseHeaders.append("Set-Cookie", "b=2; HttpOnly");
        return next();
      },
    });
    const conn = await connect(app);
    assert.equal(conn.status, 101);
    assert.equal(conn.answer.header("x-served-by"), "duplex");
    assert.deepEqual(conn.answer.headers("set-cookie"), ["a=1; Path=/", "b=2; HttpOnly"], "two separate Set-Cookie lines, in order");
  });

  it("makes state set in the upgrade visible in open and message", async () => {
    const seen: unknown[] = [];
    const app = new App<{ user: string; count: number }>().use({
      upgrade(ctx, next) {
        ctx.state = { user: ctx.query.get("user") ?? "?", count: 0 };
        return next();
      },
      open(ctx) {
        ctx.state.count++;
        seen.push(["open", ctx.state.user, ctx.state.count]);
      },
      message(ctx) {
        ctx.state.count++;
        seen.push(["message", ctx.state.user, ctx.state.count, ctx.data]);
        ctx.send(`${ctx.state.user}:${ctx.state.count}`);
      },
    });
    const conn = await connect(app, { request: { path: "/?user=ada" } });
    await conn.text("hi");
    assert.deepEqual(seen, [["open", "ada", 1], ["message", "ada", 2, "hi"]]);
    assert.deepEqual(conn.texts(), ["ada:2"]);
    assert.deepEqual(conn.pump.state, { user: "ada", count: 2 }, "the state lives on the connection");
  });

  for (
    const [status, body, headers, name] of [
      [401, "Log in first", { "WWW-Authenticate": 'Bearer realm="x"' }, "Unauthorized"],
      [403, "Go away", {}, "Forbidden"],
      [404, "No such room", {}, "Not Found"],
      [429, "Slow down", { "Retry-After": "30" }, "Too Many Requests"],
    ] as const
  ) {
    it(`ctx.reject(${status}) answers exactly that status, body and headers, and never a 101`, async () => {
      const errors = errorLog();
      let opened = false;
      const app = new App().use(
        { upgrade: (ctx) => ctx.reject(status, body, { ...headers }) },
        { upgrade: () => assert.fail("the chain must stop at the refusal"), open: () => void (opened = true) },
      ).onError(errors.handler);
      const conn = await connect(app);
      assertRefused(conn, status, body, `reject(${status})`);
      assert.equal(conn.answer.statusLine, `HTTP/1.1 ${status} ${name}`);
      for (const [header, value] of Object.entries(headers)) {
        assert.equal(conn.answer.header(header), value, `the ${header} header`);
      }
      assert.equal(conn.answer.header("content-type"), "text/plain; charset=utf-8");
      assert.equal(opened, false, "no open for a refused upgrade");
      assert.deepEqual(errors.errors, [], "a refusal is not an error");
    });
  }

  it("ctx.reject() without a body answers the status's name", async () => {
    const conn = await connect(new App().use({ upgrade: (ctx) => ctx.reject(404) }));
    assertRefused(conn, 404, "Not Found", "reject(404)");
  });

  it("reject wins even when the middleware calls next() afterwards", async () => {
    const app = new App().use({
      upgrade(ctx, next) {
        ctx.reject(409, "Conflict here");
        return next();
      },
    });
    const conn = await connect(app);
    assertRefused(conn, 409, "Conflict here", "reject then next");
  });

  it("reject keeps a custom Content-Type, as the native path does", async () => {
    const app = new App().use({ upgrade: (ctx) => ctx.reject(400, '{"error":"bad"}', { "Content-Type": "application/json" }) });
    const conn = await connect(app);
    assert.equal(conn.status, 400);
    assert.equal(conn.answer.body, '{"error":"bad"}');
    assert.equal(conn.answer.header("content-type"), "application/json", "the refusal's own Content-Type is sent");
  });

  it("a thrown HttpError answers its status, body and headers without reaching onError", async () => {
    const errors = errorLog();
    const app = new App().use({
      upgrade() {
        throw new HttpError(503, "Maintenance", { "Retry-After": "120" });
      },
    }).onError(errors.handler);
    const conn = await connect(app);
    assertRefused(conn, 503, "Maintenance", "HttpError(503)");
    assert.equal(conn.answer.header("retry-after"), "120");
    assert.deepEqual(errors.errors, []);
  });

  it("an HttpError thrown by an async middleware is answered the same way", async () => {
    const errors = errorLog();
    const app = new App().use({
      async upgrade() {
        await Promise.resolve();
        throw new HttpError(401);
      },
    }).onError(errors.handler);
    const conn = await connect(app);
    assertRefused(conn, 401, "Unauthorized", "async HttpError(401)");
    assert.deepEqual(errors.errors, []);
  });

  it("any other throw answers 500 and reaches onError with the error and the upgrade context", async () => {
    const errors = errorLog();
    const boom = new Error("db down");
    const app = new App().use({
      upgrade() {
        throw boom;
      },
    }).onError(errors.handler);
    const conn = await connect(app);
    assertRefused(conn, 500, "Internal Server Error", "throw");
    assert.deepEqual(errors.errors, [boom], "onError got the very error, once");
    assert.deepEqual(errors.contexts, ["upgrade"]);
  });

  it("an async rejection answers 500 and reaches onError once", async () => {
    const errors = errorLog();
    const boom = new Error("async db down");
    const app = new App().use({
      async upgrade(_ctx, next) {
        await Promise.resolve();
        if (boom) throw boom;
        return next();
      },
    }).onError(errors.handler);
    const conn = await connect(app);
    assertRefused(conn, 500, "Internal Server Error", "rejection");
    assert.deepEqual(errors.errors, [boom]);
  });

  it("a middleware that returns without calling next() leaves a 403", async () => {
    const errors = errorLog();
    let opened = false;
    const app = new App().use({ upgrade: () => {} }, { open: () => void (opened = true) }).onError(errors.handler);
    const conn = await connect(app);
    assert.equal(conn.status, 403);
    assert.match(conn.answer.body, /^Forbidden/);
    assert.equal(opened, false);
    assert.deepEqual(errors.errors, []);
  });

  it("an async upgrade middleware delays the answer until it calls next()", async () => {
    const gate = deferred();
    const order: string[] = [];
    const app = new App().use(
      {
        async upgrade(ctx, next) {
          order.push("check");
          await gate.promise;
          ctx.responseHeaders.set("X-Checked", "yes");
          await next();
          order.push("after next");
        },
      },
      { upgrade: (_ctx, next) => (order.push("second"), next()), open: () => void order.push("open") },
    );
    const conn = await connect(app);
    assert.equal(conn.answered, false, "nothing answered while the middleware waits");
    assert.equal(conn.readyState, 0);
    gate.resolve();
    await flush();
    assert.equal(conn.status, 101);
    assert.equal(conn.answer.header("x-checked"), "yes");
    assert.deepEqual(order, ["check", "second", "after next", "open"], "the whole chain ran before the 101 and open");
  });

  it("an async middleware that resolves without next() leaves a 403", async () => {
    const conn = await connect(new App().use({ upgrade: async () => await Promise.resolve() }));
    assert.equal(conn.status, 403);
  });

  it("reject with a status that is not 4xx/5xx answers 500 and a UsageError reaches onError", async () => {
    for (const status of [101, 200, 302, 399, 600, 404.5]) {
      const errors = errorLog();
      const app = new App().use({ upgrade: (ctx) => ctx.reject(status, "nope") }).onError(errors.handler);
      const conn = await connect(app);
      assertRefused(conn, 500, "Internal Server Error", `reject(${status})`);
      assert.equal(errors.errors.length, 1, `reject(${status}): one error`);
      assert.ok(errors.errors[0] instanceof UsageError, `reject(${status}): a UsageError`);
      assert.equal((errors.errors[0] as UsageError).code, "ERR_INVALID_STATUS");
    }
  });

  it("choosing a subprotocol the client did not offer answers 500 and a UsageError reaches onError", async () => {
    const errors = errorLog();
    const app = new App().use({
      upgrade(ctx, next) {
        ctx.protocol = "not-offered";
        return next();
      },
    }).onError(errors.handler);
    const conn = await connect(app, { request: { protocols: ["chat.v1"] } });
    assertRefused(conn, 500, "Internal Server Error", "unoffered protocol");
    assert.equal(errors.errors.length, 1, "the misuse reaches onError, like reject(302) does");
    assert.equal((errors.errors[0] as UsageError | undefined)?.code, "ERR_INVALID_PROTOCOL");
  });

  it("a reserved 101 header in responseHeaders answers 500 and a UsageError reaches onError", async () => {
    const errors = errorLog();
    const app = new App().use({
      upgrade(ctx, next) {
        ctx.responseHeaders.set("Sec-WebSocket-Accept", "forged");
        return next();
      },
    }).onError(errors.handler);
    const conn = await connect(app);
    assertRefused(conn, 500, "Internal Server Error", "reserved header");
    assert.equal(errors.errors.length, 1, "the misuse reaches onError");
    assert.equal((errors.errors[0] as UsageError | undefined)?.code, "ERR_INVALID_HEADER");
  });

  it("HttpError and checkErrorStatus refuse statuses outside 400–599", () => {
    for (const status of [0, 200, 399, 600, 1e3, Number.NaN, 450.5]) {
      assert.throws(() => new HttpError(status), (e) => e instanceof UsageError && e.code === "ERR_INVALID_STATUS", String(status));
      assert.throws(() => checkErrorStatus(status), UsageError, String(status));
    }
    const err = new HttpError(418);
    assert.equal(err.status, 418);
    assert.equal(err.body, "HTTP 418", "an unlisted status gets a generic body");
    assert.equal(err.name, "HttpError");
    assert.ok(Object.isFrozen(err.headers));
  });

  it("a function middleware sees the upgrade, and the onError handler throwing does not break the 500", async () => {
    const types: string[] = [];
    const app = new App()
      .use((ctx, next) => {
        types.push(ctx.type);
        if (ctx.type === "upgrade") throw new Error("no");
        return next();
      })
      .onError(() => {
        throw new Error("the error handler itself fails");
      });
    const originalError = console.error;
    const logged: unknown[][] = [];
    console.error = (...args: unknown[]) => void logged.push(args);
    let conn: Conn;
    try {
      conn = await connect(app);
    } finally {
      console.error = originalError;
    }
    assert.equal(conn.status, 500);
    assert.deepEqual(types, ["upgrade"]);
    assert.equal(logged.length, 1, "the failing onError is logged once");
  });

  it("UpgradeContext falls back to localhost for a valid Host header that URL cannot parse", async () => {
    let url: string | undefined;
    const app = new App().use({
      upgrade(ctx: UpgradeContext, next) {
        url = ctx.url.href;
        return next();
      },
    });
    // A valid host per RFC 3986 (an invalid one, such as "bad host", is refused with 400 before this).
    const conn = await connect(app, { request: buildRequest({ path: "/x?y=1", host: "a%20b" }) });
    assert.equal(conn.status, 101);
    assert.equal(url, "http://localhost/x?y=1");
  });

  it("keeps a target that starts with // as a path: no host taken from it, no 500", async () => {
    const seen: [string, string][] = [];
    const app = new App().use({
      upgrade(ctx: UpgradeContext, next) {
        seen.push([ctx.url.host, ctx.path]);
        return next();
      },
    });
    const evil = await connect(app, { request: buildRequest({ path: "//evil.example/admin?x=1", host: "ws.example.org" }) });
    assert.equal(evil.status, 101);
    const empty = await connect(app, { request: buildRequest({ path: "//", host: "ws.example.org" }) });
    assert.equal(empty.status, 101);
    assert.deepEqual(seen, [["ws.example.org", "//evil.example/admin"], ["ws.example.org", "//"]]);
  });
});
