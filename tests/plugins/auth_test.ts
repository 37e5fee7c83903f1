// Upgrade-phase auth: authenticate() and its token sources, the shorthands,
// and allowOrigins().
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import { App } from "../../plugins/app.ts";
import {
  allowOrigins,
  authenticate,
  fromBearer,
  fromCookie,
  fromProtocol,
  fromQuery,
} from "../../plugins/auth.ts";
import { HttpError } from "../../plugins/errors.ts";
import type { Middleware } from "../../plugins/pipeline.ts";
import { subprotocols } from "../../plugins/router.ts";
import { connect, type ConnectOptions, errorLog, type RequestSpec } from "./_harness.ts";

const MISSING = "Unauthorized: missing credentials";
const INVALID = "Unauthorized: invalid credentials";

/** An app with `auth` in front of an open handler that reports the state. */
function guarded(auth: Middleware, extra: Middleware[] = []) {
  const errors = errorLog();
  const app = new App().use(auth, ...extra, { open: (ctx) => void ctx.send(`in as ${String(ctx.state.user ?? "?")}`) }).onError(errors.handler);
  return { app, errors };
}

async function status(app: App, request: RequestSpec, options: Omit<ConnectOptions, "request"> = {}): Promise<number> {
  return (await connect(app, { ...options, request })).status;
}

describe("authenticate", () => {
  const tokens: string[] = [];
  const verify = (token: string) => {
    tokens.push(token);
    return token === "secret";
  };

  it("refuses a request without a bearer token with 401 and WWW-Authenticate: Bearer realm", async () => {
    const { app, errors } = guarded(authenticate(verify, { realm: "chat" }));
    const conn = await connect(app);
    assert.equal(conn.status, 401);
    assert.equal(conn.answer.body, MISSING);
    assert.equal(conn.answer.header("www-authenticate"), 'Bearer realm="chat"');
    assert.deepEqual(errors.errors, [], "a refusal is not an error");
  });

  it("uses the realm duplex by default and strips quotes from a realm", async () => {
    assert.equal((await connect(guarded(authenticate(verify)).app)).answer.header("www-authenticate"), 'Bearer realm="duplex"');
    const odd = await connect(guarded(authenticate(verify, { realm: 'a"b\\c' })).app);
    assert.equal(odd.answer.header("www-authenticate"), 'Bearer realm="abc"');
  });

  it("refuses a wrong bearer token with 401 and error=\"invalid_token\"", async () => {
    tokens.length = 0;
    const { app } = guarded(authenticate(verify));
    const conn = await connect(app, { request: { authorization: "Bearer wrong" } });
    assert.equal(conn.status, 401);
    assert.equal(conn.answer.body, INVALID);
    assert.equal(conn.answer.header("www-authenticate"), 'Bearer realm="duplex", error="invalid_token"');
    assert.deepEqual(tokens, ["wrong"]);
  });

  it("accepts the right bearer token (any case of the scheme) with a 101", async () => {
    const { app } = guarded(authenticate(verify));
    for (const authorization of ["Bearer secret", "bearer secret", "BEARER   secret  "]) {
      const conn = await connect(app, { request: { authorization } });
      assert.equal(conn.status, 101, authorization);
      assert.deepEqual(conn.texts(), ["in as ?"]);
    }
  });

  it("treats another scheme or an empty bearer as missing", async () => {
    const { app } = guarded(authenticate(verify));
    for (const authorization of ["Basic c2VjcmV0", "Bearer", "Bearer ", "secret", "Bearer a b"]) {
      const conn = await connect(app, { request: { authorization } });
      assert.equal(conn.status, 401, authorization);
      assert.equal(conn.answer.body, MISSING, authorization);
    }
  });

  it("lets verify set state for later middleware", async () => {
    const app = new App<{ user?: string }>().use(
      authenticate((token, ctx) => {
        ctx.state.user = token.toUpperCase();
        return true;
      }),
      { message: (ctx) => void ctx.send(`hi ${ctx.state.user}`) },
    );
    const conn = await connect(app, { request: { authorization: "Bearer ada" } });
    await conn.text("x");
    assert.deepEqual(conn.texts(), ["hi ADA"]);
  });

  it("reads fromQuery", async () => {
    const { app } = guarded(authenticate(verify, { from: [fromQuery("access_token")] }));
    assert.equal(await status(app, { path: "/ws?access_token=secret" }), 101);
    assert.equal(await status(app, { path: "/ws?access_token=nope" }), 401);
    assert.equal(await status(app, { path: "/ws?token=secret" }), 401, "another parameter is not read");
    assert.equal(await status(app, { path: "/ws", authorization: "Bearer secret" }), 401, "the header is not read");
    const { app: byDefault } = guarded(authenticate(verify, { from: [fromQuery()] }));
    assert.equal(await status(byDefault, { path: "/?token=secret" }), 101, "default parameter: token");
    assert.equal(await status(byDefault, { path: "/?token=sec%72et" }), 101, "the value is decoded");
  });

  it("reads fromCookie", async () => {
    const { app } = guarded(authenticate(verify, { from: [fromCookie("session")] }));
    assert.equal(await status(app, { cookie: "theme=dark; session=secret" }), 101);
    assert.equal(await status(app, { cookie: "session=wrong" }), 401);
    assert.equal(await status(app, { cookie: "other=secret" }), 401);
    assert.equal(await status(app, {}), 401);
  });

  it("reads fromProtocol, and the 101 chooses chat.v1, never the token protocol", async () => {
    tokens.length = 0;
    const app = new App().use(
      authenticate(verify, { from: [fromProtocol()] }),
      subprotocols({ "chat.v1": { open: (ctx) => void ctx.send(ctx.protocol) } }),
    );
    for (const protocols of [["chat.v1", "bearer.secret"], ["bearer.secret", "chat.v1"]]) {
      const conn = await connect(app, { request: { protocols } });
      assert.equal(conn.status, 101, protocols.join());
      assert.equal(conn.answer.header("sec-websocket-protocol"), "chat.v1", protocols.join());
      assert.deepEqual(conn.texts(), ["chat.v1"]);
    }
    assert.deepEqual(tokens, ["secret", "secret"], "the token is what follows the prefix");
    const wrong = await connect(app, { request: { protocols: ["chat.v1", "bearer.wrong"] } });
    assert.equal(wrong.status, 401);
    const none = await connect(app, { request: { protocols: ["chat.v1", "bearer."] } });
    assert.equal(none.status, 401, "an empty token is missing");
    assert.equal(none.answer.body, MISSING);
  });

  it("never chooses the token protocol through the server's protocols option either", async () => {
    const app = new App().use(authenticate(verify, { from: [fromProtocol("token.")] }));
    const conn = await connect(app, {
      request: { protocols: ["token.secret", "chat.v1"] },
      options: { protocols: ["chat.v1"] },
    });
    assert.equal(conn.status, 101);
    assert.equal(conn.answer.header("sec-websocket-protocol"), "chat.v1");
    const bare = await connect(app, { request: { protocols: ["token.secret"] } });
    assert.equal(bare.status, 101);
    assert.equal(bare.answer.header("sec-websocket-protocol"), undefined, "no subprotocol rather than the token");
  });

  it("tries several sources in order and uses the first that has a token", async () => {
    tokens.length = 0;
    const { app } = guarded(authenticate(verify, { from: [fromBearer(), fromQuery(), fromCookie("sid")] }));
    assert.equal(await status(app, { path: "/?token=wrong", authorization: "Bearer secret", cookie: "sid=wrong" }), 101);
    assert.equal(await status(app, { path: "/?token=secret", cookie: "sid=wrong" }), 101);
    assert.equal(await status(app, { path: "/?token=", cookie: "sid=secret" }), 101, "an empty token is skipped");
    assert.equal(await status(app, { path: "/?token=wrong", cookie: "sid=secret" }), 401, "the first found token decides");
    assert.deepEqual(tokens, ["secret", "secret", "secret", "wrong"]);
  });

  it("awaits an async verify", async () => {
    const { app } = guarded(authenticate(async (token) => {
      await Promise.resolve();
      return token === "secret";
    }));
    assert.equal(await status(app, { authorization: "Bearer secret" }), 101);
    const wrong = await connect(app, { request: { authorization: "Bearer nope" } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.answer.header("www-authenticate"), 'Bearer realm="duplex", error="invalid_token"');
  });

  it("answers the status of an HttpError thrown by verify, sync or async, without onError", async () => {
    for (
      const thrower of [
        () => {
          throw new HttpError(403, "Banned");
        },
        async () => {
          await Promise.resolve();
          throw new HttpError(403, "Banned");
        },
      ]
    ) {
      const { app, errors } = guarded(authenticate(thrower));
      const conn = await connect(app, { request: { authorization: "Bearer x" } });
      assert.equal(conn.status, 403);
      assert.equal(conn.answer.body, "Banned");
      assert.deepEqual(errors.errors, []);
    }
  });

  it("answers 500 and reports any other error of verify", async () => {
    const boom = new Error("auth server down");
    for (
      const thrower of [
        () => {
          throw boom;
        },
        async () => {
          await Promise.resolve();
          throw boom;
        },
      ]
    ) {
      const { app, errors } = guarded(authenticate(thrower));
      const conn = await connect(app, { request: { authorization: "Bearer x" } });
      assert.equal(conn.status, 500);
      assert.equal(conn.answer.body, "Internal Server Error");
      assert.deepEqual(errors.errors, [boom], "onError once, with the error");
    }
  });

  it("refuses a verify that resolves to something other than true", async () => {
    const { app } = guarded(authenticate(() => Promise.resolve("yes" as unknown as boolean)));
    assert.equal(await status(app, { authorization: "Bearer x" }), 401);
  });

  it("refuses invalid options with ERR_INVALID_OPTION", () => {
    const isOption = (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_OPTION";
    assert.throws(() => authenticate("x" as never), isOption);
    assert.throws(() => authenticate(verify, { from: [] }), isOption);
    assert.throws(() => authenticate(verify, { from: ["x" as never] }), isOption);
  });
});

describe("authenticate with each token source", () => {
  const verify = (token: string) => token === "secret";

  it("fromBearer() reads the Authorization header", async () => {
    const { app } = guarded(authenticate(verify, { from: [fromBearer()] }));
    assert.equal(await status(app, { authorization: "Bearer secret" }), 101);
    assert.equal(await status(app, { authorization: "Bearer nope" }), 401);
    assert.equal(await status(app, { path: "/?token=secret" }), 401);
  });

  it("fromQuery() reads ?token= or the named parameter", async () => {
    assert.equal(await status(guarded(authenticate(verify, { from: [fromQuery()] })).app, { path: "/?token=secret" }), 101);
    assert.equal(await status(guarded(authenticate(verify, { from: [fromQuery()] })).app, { authorization: "Bearer secret" }), 401);
    assert.equal(await status(guarded(authenticate(verify, { from: [fromQuery("key")] })).app, { path: "/?key=secret" }), 101);
    assert.equal(await status(guarded(authenticate(verify, { from: [fromQuery("key")] })).app, { path: "/?token=secret" }), 401);
  });

  it("fromCookie() reads the named cookie", async () => {
    const { app } = guarded(authenticate(verify, { from: [fromCookie("sid")] }));
    assert.equal(await status(app, { cookie: "sid=secret" }), 101);
    assert.equal(await status(app, { cookie: "sid=nope" }), 401);
    assert.equal(await status(app, { authorization: "Bearer secret" }), 401);
  });

  it("fromProtocol() reads bearer.<token> or the given prefix", async () => {
    const app = new App().use(authenticate(verify, { from: [fromProtocol()] }), subprotocols({ "chat.v1": {} }));
    const conn = await connect(app, { request: { protocols: ["bearer.secret", "chat.v1"] } });
    assert.equal(conn.status, 101);
    assert.equal(conn.answer.header("sec-websocket-protocol"), "chat.v1");
    assert.equal(await status(app, { protocols: ["bearer.nope", "chat.v1"] }), 401);
    const custom = new App().use(authenticate(verify, { from: [fromProtocol("auth-")] }), subprotocols({ "chat.v1": {} }));
    assert.equal(await status(custom, { protocols: ["chat.v1", "auth-secret"] }), 101);
    assert.equal(await status(custom, { protocols: ["chat.v1", "bearer.secret"] }), 401);
  });
});

describe("allowOrigins", () => {
  const list = ["https://app.example.com", "http://localhost:5173"];

  it("accepts a listed origin and refuses another with 403", async () => {
    const { app, errors } = guarded(allowOrigins(list));
    assert.equal(await status(app, { origin: "https://app.example.com" }), 101);
    assert.equal(await status(app, { origin: "http://localhost:5173" }), 101);
    const evil = await connect(app, { request: { origin: "https://evil.example.com" } });
    assert.equal(evil.status, 403);
    assert.equal(evil.answer.body, "Forbidden: origin https://evil.example.com is not allowed");
    for (const origin of ["http://app.example.com", "https://app.example.com:8443", "http://localhost:5174", "https://app.example.com.evil.net", "null", "garbage"]) {
      assert.equal(await status(app, { origin }), 403, origin);
    }
    assert.deepEqual(errors.errors, []);
  });

  it("compares scheme and host case-insensitively, and a default port as absent", async () => {
    const { app } = guarded(allowOrigins(["https://App.Example.COM"]));
    assert.equal(await status(app, { origin: "https://APP.example.com" }), 101);
    assert.equal(await status(app, { origin: "HTTPS://app.example.com" }), 101);
    assert.equal(await status(app, { origin: "https://app.example.com:443" }), 101);
  });

  it("lets a missing Origin through by default, and refuses it with allowMissing: false", async () => {
    assert.equal(await status(guarded(allowOrigins(list)).app, {}), 101);
    const strict = await connect(guarded(allowOrigins(list, { allowMissing: false })).app);
    assert.equal(strict.status, 403);
    assert.equal(strict.answer.body, "Forbidden: missing Origin");
    assert.equal(await status(guarded(allowOrigins(list, { allowMissing: false })).app, { origin: "https://app.example.com" }), 101);
  });

  it("matches a literal \"null\" origin only when listed", async () => {
    assert.equal(await status(guarded(allowOrigins(["null"])).app, { origin: "null" }), 101);
    assert.equal(await status(guarded(allowOrigins(list)).app, { origin: "null" }), 403);
  });

  it("takes a function that decides from the origin and the context", async () => {
    const seen: string[] = [];
    const { app } = guarded(allowOrigins((origin, ctx) => {
      seen.push(`${origin} ${ctx.path}`);
      return origin.endsWith(".example.com");
    }));
    assert.equal(await status(app, { origin: "https://a.example.com", path: "/x" }), 101);
    assert.equal(await status(app, { origin: "https://a.example.org", path: "/y" }), 403);
    assert.equal(await status(app, {}), 101, "missing Origin: the function is not asked");
    assert.deepEqual(seen, ["https://a.example.com /x", "https://a.example.org /y"]);
  });

  it("refuses entries that are not origins", () => {
    const isOption = (e: unknown) => e instanceof UsageError && e.code === "ERR_INVALID_OPTION";
    assert.throws(() => allowOrigins(["not a url"]), isOption);
    assert.throws(() => allowOrigins(["file:///etc"]), isOption);
    assert.throws(() => allowOrigins("https://a.example.com" as never), isOption);
  });

  it("runs before authentication: a bad origin is refused before its token is checked", async () => {
    let checked = 0;
    const app = new App().use(allowOrigins(list), authenticate(() => (checked++, true)));
    assert.equal(await status(app, { origin: "https://evil.example.com", authorization: "Bearer x" }), 403);
    assert.equal(checked, 0);
    assert.equal(await status(app, { origin: list[0]!, authorization: "Bearer x" }), 101);
    assert.equal(checked, 1);
  });
});
