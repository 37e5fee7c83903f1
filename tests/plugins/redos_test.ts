// Worst-case (ReDoS-shaped) inputs at the size limit for the plugins that
// read request headers and paths: the bearer token regex, cookies, origins,
// path routes and subprotocol offers. Each input is a long run that a
// nested or overlapping quantifier would split in exponentially (or
// quadratically) many ways, ending in a character that makes a match fail.
// They must finish and answer right; no timing is measured.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_LIMITS } from "../../core/options.ts";
import { App } from "../../plugins/app.ts";
import { allowOrigins, authenticate, fromBearer, fromProtocol } from "../../plugins/auth.ts";
import { parseCookies } from "../../plugins/context.ts";
import { Router, subprotocols } from "../../plugins/router.ts";
import { buildRequest, connect, type RequestSpec } from "./_harness.ts";

const MAX = DEFAULT_LIMITS.maxHeaderBytes;

/**
 * The request that `spec(value)` describes, with `value` made of `prefix`,
 * `unit` repeated as often as the header limit allows, and `tail`.
 */
function fill(spec: (value: string) => RequestSpec, unit: string, tail = "", prefix = ""): string {
  const room = MAX - buildRequest(spec(prefix + tail)).length;
  const text = buildRequest(spec(prefix + unit.repeat(Math.floor(room / unit.length)) + tail));
  assert.ok(text.length <= MAX && text.length > MAX - unit.length, "fills the limit");
  return text;
}

describe("ReDoS: fromBearer, /^bearer[ \\t]+(\\S+)[ \\t]*$/i, on a 16 KiB Authorization", () => {
  const seen: string[] = [];
  const app = new App().use(authenticate((token) => (seen.push(token), token.startsWith("a"))));
  const authorization = (value: string): RequestSpec => ({ authorization: value });
  const status = async (request: string) => (await connect(app, { request })).status;

  it("finds no token in runs of whitespace, or whitespace then a second word", async () => {
    seen.length = 0;
    assert.equal(await status(fill(authorization, " \t", "", "Bearer")), 401);
    assert.equal(await status(fill(authorization, " ", " b", "Bearer a")), 401);
    assert.equal(await status(fill(authorization, "\t ", "a b", "bearer ")), 401);
    assert.equal(await status(fill(authorization, "a ", "", "Bearer ")), 401);
    assert.deepEqual(seen, [], "verify never ran");
  });

  it("takes a 16 KiB token whole, trailing whitespace dropped", async () => {
    seen.length = 0;
    assert.equal(await status(fill(authorization, "a", "", "Bearer ")), 101);
    assert.equal(await status(fill(authorization, "a", "!", "BEARER \t ")), 101);
    assert.equal(seen.length, 2);
    assert.ok(seen[0]!.length > MAX - 200 && /^a+$/.test(seen[0]!));
    assert.ok(seen[1]!.endsWith("a!"));
  });

  it("reads the header directly too", () => {
    const read = fromBearer();
    const token = read({ headers: new Headers({ authorization: "Bearer " + "x".repeat(MAX) + " " }) } as never);
    assert.equal(token?.length, MAX);
    assert.equal(read({ headers: new Headers({ authorization: "Bearer" + " ".repeat(MAX) + "x y" }) } as never), undefined);
  });
});

describe("ReDoS: parseCookies on a 16 KiB Cookie", () => {
  it("splits runs of separators, equals signs, quotes and percent signs", () => {
    assert.deepEqual({ ...parseCookies(";".repeat(MAX)) }, {});
    assert.deepEqual({ ...parseCookies("=".repeat(MAX)) }, {});
    assert.deepEqual({ ...parseCookies(" ".repeat(MAX) + "a=1") }, { a: "1" });
    assert.deepEqual({ ...parseCookies("a=" + '"'.repeat(MAX)) }, { a: '"'.repeat(MAX - 2) });
    assert.deepEqual({ ...parseCookies("a=" + "%".repeat(MAX)) }, { a: "%".repeat(MAX) });
    assert.deepEqual({ ...parseCookies("a=" + "%41".repeat(MAX / 3)) }, { a: "A".repeat(MAX / 3) });
    const many = parseCookies(Array.from({ length: 2000 }, (_, i) => `c${i}=${i}`).join("; "));
    assert.equal(Object.keys(many).length, 2000);
    assert.equal(many.c1999, "1999");
  });

  it("reads a cookie behind 16 KiB of others through the context", async () => {
    let session: string | undefined;
    const app = new App().use({ upgrade: (ctx, next) => ((session = ctx.cookies.session), next()) });
    const conn = await connect(app, { request: fill((cookie) => ({ cookie }), "x=1; ", "session=s3cr3t") });
    assert.equal(conn.status, 101);
    assert.equal(session, "s3cr3t");
  });
});

describe("ReDoS: allowOrigins on a 16 KiB Origin", () => {
  const app = new App().use(allowOrigins(["https://app.example.com"]));

  it("refuses long origins that are not listed, and finds none by prefix", async () => {
    for (
      const [unit, tail, prefix] of [
        ["a", "", "https://"],
        ["a.", "com", "https://app.example.com."],
        ["/", "", "https://app.example.com.evil"],
        [":", "", "https://app.example.com"],
        ["%", "", "https://"],
      ] as const
    ) {
      const conn = await connect(app, { request: fill((origin) => ({ origin }), unit, tail, prefix) });
      assert.equal(conn.status, 403, `${prefix}${unit}…${tail}`);
    }
  });
});

describe("ReDoS: path routes on a 16 KiB request target", () => {
  const app = new App().use(
    new Router()
      .route("/rooms/:id", { open: (ctx) => void ctx.send(`room ${ctx.params.id!.length}`) })
      .route("/files/*", { open: (ctx) => void ctx.send(`file ${ctx.params["*"]!.length}`) }),
  );
  const path = (value: string): RequestSpec => ({ path: value });

  it("matches or refuses long paths of slashes, segments and escapes", async () => {
    assert.equal((await connect(app, { request: fill(path, "/", "", "/a") })).status, 404);
    assert.equal((await connect(app, { request: fill(path, "a/", "", "/rooms/") })).status, 404);
    assert.equal((await connect(app, { request: fill(path, "%", "", "/rooms/") })).status, 400);
    const room = await connect(app, { request: fill(path, "%41", "", "/rooms/") });
    assert.equal(room.status, 101);
    const file = await connect(app, { request: fill(path, "a/", "", "/files/") });
    assert.equal(file.status, 101);
    assert.ok(room.texts()[0]!.startsWith("room ") && file.texts()[0]!.startsWith("file "));
  });
});

describe("ReDoS: subprotocol offers filling 16 KiB", () => {
  it("chooses the server's subprotocol and finds the token protocol behind thousands of offers", async () => {
    let token: string | undefined;
    const app = new App().use(
      authenticate((t) => ((token = t), true), { from: [fromProtocol()] }),
      subprotocols({ "chat.v1": {} }),
    );
    const offers = (value: string): RequestSpec => ({ protocols: [value] });
    const conn = await connect(app, { request: fill(offers, "p, ", "chat.v1, bearer.t0k3n") });
    assert.equal(conn.status, 400, "a repeated offer is refused before any middleware");
    const distinct = Array.from({ length: 1500 }, (_, i) => `p${i}`).join(", ");
    const ok = await connect(app, { request: { protocols: [distinct, "chat.v1", "bearer.t0k3n"] } });
    assert.equal(ok.status, 101);
    assert.equal(ok.answer.header("sec-websocket-protocol"), "chat.v1");
    assert.equal(token, "t0k3n");
  });
});
