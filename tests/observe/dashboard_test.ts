// The dashboard's handler without a browser, on Node, Deno and Bun alike:
// who gets in (401s, bearerToken, protect), what the JSON holds, the page's
// headers, the close action (its body, its CSRF check) and the methods.
// Mostly against a fake with observe()'s two methods, so that every number
// is known; the last part against a real observe() on a real server of the
// runtime, closing a real socket.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import { App, observe, runtime, type Server, serve } from "../../mod.ts";
import { bearerToken, dashboard, type DashboardSnapshot, type DashboardSource, protect } from "../../plugins/dashboard.ts";
import { Client, until } from "../runtimes/_helpers.ts";

const TOKEN = "s3cret-token";
const BASE = "http://127.0.0.1:8080/admin";

type Snapshot = ReturnType<DashboardSource["snapshot"]>;

function fakeSnapshot(connections = 2, topics = 1): Snapshot {
  return {
    at: Date.parse("2026-12-06T17:00:00Z"),
    runtime: "node",
    totals: {
      open: connections,
      upgradesAccepted: connections + 1,
      upgradesRefused: { "401": 2 },
      messagesIn: 10,
      messagesOut: 20,
      bytesIn: 100,
      bytesOut: 200,
      drains: 0,
      closesByCode: { "1000": 1, "1008": 1 },
    },
    connections: Array.from({ length: connections }, (_, i) => ({
      id: `c${i + 1}`,
      route: "/ws",
      protocol: "chat.v1",
      remote: "127.0.0.1",
      openedAt: Date.parse("2026-12-06T16:59:00Z"),
      messagesIn: 5,
      messagesOut: 10,
      bytesIn: 50,
      bytesOut: 100,
      buffered: 0,
    })),
    topics: Array.from({ length: topics }, (_, i) => ({ topic: `room:${i}`, subscribers: 2 })),
    slow: [],
    recentCloses: [{ id: "c0", code: 1000, reason: "bye", by: "client", at: Date.parse("2026-12-06T16:59:30Z") }],
  } as Snapshot;
}

/** A fake observe(): a fixed snapshot, and the closes asked for. */
function fakeSource(snapshot: Snapshot = fakeSnapshot()) {
  const closed: { id: string; code?: number; reason?: string }[] = [];
  const source: DashboardSource = {
    snapshot: () => snapshot,
    closePeer(id: string, code?: number, reason?: string) {
      if (!snapshot.connections.some((c) => c.id === id)) return false;
      closed.push({ id, code, reason });
      return true;
    },
  };
  return { source, closed };
}

const bearer = { authorization: `Bearer ${TOKEN}` };

function post(path: string, body: unknown, headers: Record<string, string> = {}): Request {
  return new Request(`${BASE}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

describe("dashboard(): authorization", () => {
  const { source, closed } = fakeSource();
  const admin = dashboard({ observe: source, authorize: bearerToken(TOKEN) });

  for (const path of ["", "/", "/snapshot"]) {
    it(`GET /admin${path} is 401 with WWW-Authenticate: Bearer without the token, or with a wrong one`, async () => {
      for (const request of [
        new Request(`${BASE}${path}`),
        new Request(`${BASE}${path}?token=wrong`),
        new Request(`${BASE}${path}`, { headers: { authorization: "Bearer wrong" } }),
        new Request(`${BASE}${path}`, { headers: { authorization: `Basic ${TOKEN}` } }),
        new Request(`${BASE}${path}?token=${TOKEN}x`),
        new Request(`${BASE}${path}?token=${TOKEN.slice(0, -1)}`),
        new Request(`${BASE}${path}?token=`),
      ]) {
        const response = await admin(request);
        assert.equal(response.status, 401, request.url);
        assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="duplex"');
        assert.equal(response.headers.get("cache-control"), "no-store");
        const body = await response.text();
        assert.doesNotMatch(body, /"totals"/, "nothing of the snapshot leaks");
      }
    });
  }

  it("answers the page's 401 with a token form (no script), the API's with JSON", async () => {
    const page = await admin(new Request(BASE));
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    const html = await page.text();
    assert.match(html, /<form method="get"><input type="password" name="token"/);
    assert.doesNotMatch(html, /<script/);
    assert.doesNotMatch(page.headers.get("content-security-policy") ?? "", /script-src/);
    const api = await admin(new Request(`${BASE}/snapshot`));
    assert.deepEqual(await api.json(), { error: "Unauthorized" });
  });

  it("lets the token in as a bearer header (any case of `Bearer`) or ?token=", async () => {
    for (const request of [
      new Request(`${BASE}/snapshot`, { headers: bearer }),
      new Request(`${BASE}/snapshot`, { headers: { authorization: `bearer ${TOKEN}` } }),
      new Request(`${BASE}/snapshot?token=${TOKEN}`),
      new Request(`${BASE}/snapshot?token=${TOKEN}`, { headers: { authorization: "Bearer wrong" } }),
    ]) {
      assert.equal((await admin(request)).status, 200, `${request.url} ${request.headers.get("authorization")}`);
    }
  });

  it("refuses the close action without the token, and closes nothing", async () => {
    const response = await admin(post("/close", { id: "c1" }, { authorization: "" }));
    assert.equal(response.status, 401);
    assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="duplex"');
    assert.deepEqual(closed, []);
  });

  it("awaits an async authorize, and a refusal is a 401", async () => {
    const seen: string[] = [];
    const handler = dashboard({
      observe: source,
      realm: "ops",
      authorize: async (request) => {
        seen.push(new URL(request.url).pathname);
        await new Promise((resolve) => setTimeout(resolve, 1));
        return request.headers.get("cookie") === "session=admin";
      },
    });
    assert.equal((await handler(new Request(`${BASE}/snapshot`, { headers: { cookie: "session=admin" } }))).status, 200);
    const refused = await handler(new Request(`${BASE}/snapshot`, { headers: { cookie: "session=guest" } }));
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get("www-authenticate"), 'Bearer realm="ops"');
    assert.deepEqual(seen, ["/admin/snapshot", "/admin/snapshot"]);
  });

  it("treats anything but `true` from authorize as a refusal", async () => {
    const handler = dashboard({ observe: source, authorize: (() => "yes") as never });
    assert.equal((await handler(new Request(`${BASE}/snapshot`))).status, 401);
  });
});

describe("dashboard(): the snapshot JSON", () => {
  it("is observe's snapshot with `omitted`, as no-store JSON", async () => {
    const snapshot = fakeSnapshot();
    const admin = dashboard({ observe: fakeSource(snapshot).source, authorize: () => true });
    const response = await admin(new Request(`${BASE}/snapshot`));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json; charset=utf-8");
    assert.equal(response.headers.get("cache-control"), "no-store");
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    const body = await response.json() as DashboardSnapshot;
    assert.deepEqual(body, { ...JSON.parse(JSON.stringify(snapshot)), omitted: { connections: 0, topics: 0 } });
    assert.deepEqual(Object.keys(body).sort(), ["at", "connections", "omitted", "recentCloses", "runtime", "slow", "topics", "totals"]);
  });

  it("lists at most maxRows connections and topics, and says how many it left out", async () => {
    const admin = dashboard({ observe: fakeSource(fakeSnapshot(5, 4)).source, authorize: () => true, maxRows: 3 });
    const body = await (await admin(new Request(`${BASE}/snapshot`))).json() as DashboardSnapshot;
    assert.deepEqual(body.connections.map((c) => c.id), ["c1", "c2", "c3"]);
    assert.equal(body.topics.length, 3);
    assert.deepEqual(body.omitted, { connections: 2, topics: 1 });
    assert.equal(body.totals.open, 5, "the count stays exact");
  });

  it("takes a new snapshot for every request", async () => {
    let n = 0;
    const source: DashboardSource = { snapshot: () => ({ ...fakeSnapshot(), at: ++n }), closePeer: () => false };
    const admin = dashboard({ observe: source, authorize: () => true });
    const at = async () => ((await (await admin(new Request(`${BASE}/snapshot`))).json()) as DashboardSnapshot).at;
    assert.deepEqual([await at(), await at()], [1, 2]);
  });
});

describe("dashboard(): the page", () => {
  const admin = dashboard({ observe: fakeSource().source, authorize: () => true, title: `Ops <script>alert("x")</script>`, pollMs: 500 });

  it("is one self-contained document under a strict CSP, with a fresh nonce on its script and style", async () => {
    const first = await admin(new Request(`${BASE}/`));
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(first.headers.get("x-frame-options"), "DENY");
    assert.equal(first.headers.get("referrer-policy"), "no-referrer");
    const policy = first.headers.get("content-security-policy") ?? "";
    const nonce = /script-src 'nonce-([^']+)'/.exec(policy)?.[1];
    assert.ok(nonce, policy);
    assert.match(policy, /default-src 'none'/);
    assert.match(policy, /frame-ancestors 'none'/);
    assert.match(policy, /connect-src 'self'/);
    const html = await first.text();
    assert.equal(html.match(new RegExp(`nonce="${nonce.replace(/[+/=]/g, "\\$&")}"`, "g"))?.length, 2, "the script and the style");
    assert.doesNotMatch(html, /\b(src|href)=/, "no external asset");
    assert.doesNotMatch(html, /https?:\/\//, "no URL at all");
    assert.match(html, /data-poll-ms="500"/);
    const second = await admin(new Request(BASE));
    assert.notEqual(/nonce-([^']+)/.exec(second.headers.get("content-security-policy") ?? "")?.[1], nonce);
  });

  it("escapes the title", async () => {
    const html = await (await admin(new Request(BASE))).text();
    assert.match(html, /<title>Ops &#60;script&#62;alert\(&#34;x&#34;\)&#60;\/script&#62;<\/title>/);
    assert.doesNotMatch(html, /<script>alert/);
  });

  it("answers HEAD with the headers and no body", async () => {
    for (const path of ["", "/snapshot"]) {
      const response = await admin(new Request(`${BASE}${path}`, { method: "HEAD" }));
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", path === "" ? /^text\/html/ : /^application\/json/);
      assert.equal(await response.text(), "");
    }
  });
});

describe("dashboard(): the close action", () => {
  it("closes the peer with the code and reason asked for, 1008 and a default reason otherwise", async () => {
    const { source, closed } = fakeSource();
    const admin = dashboard({ observe: source, authorize: bearerToken(TOKEN) });
    const chosen = await admin(post("/close", { id: "c1", code: 4001, reason: "kicked" }));
    assert.equal(chosen.status, 200);
    assert.deepEqual(await chosen.json(), { closed: true, id: "c1", code: 4001 });
    const plain = await admin(post("/close", { id: "c2" }));
    assert.deepEqual(await plain.json(), { closed: true, id: "c2", code: 1008 });
    assert.deepEqual(closed, [{ id: "c1", code: 4001, reason: "kicked" }, { id: "c2", code: 1008, reason: "Closed by an operator" }]);
  });

  it("is 404 for an id with no open connection", async () => {
    const admin = dashboard({ observe: fakeSource().source, authorize: () => true });
    const response = await admin(post("/close", { id: "nobody" }));
    assert.equal(response.status, 404);
    assert.equal((await response.json() as { closed: boolean }).closed, false);
  });

  it("tells onAction of every close that passed the checks, found or not, and of none refused", async () => {
    const actions: unknown[] = [];
    const admin = dashboard({
      observe: fakeSource().source,
      authorize: bearerToken(TOKEN),
      onAction: ({ request, ...action }) => actions.push({ ...action, path: new URL(request.url).pathname }),
    });
    assert.equal((await admin(post("/close", { id: "c1", code: 4001, reason: "spam" }))).status, 200);
    assert.equal((await admin(post("/close", { id: "nobody" }))).status, 404);
    assert.equal((await admin(post("/close", { id: "c2" }, { authorization: "" }))).status, 401);
    assert.equal((await admin(post("/close", { id: "c2" }, { origin: "http://evil.example" }))).status, 403);
    assert.equal((await admin(post("/close", { id: "c2", code: 1005 }))).status, 400);
    assert.deepEqual(actions, [
      { type: "close", id: "c1", code: 4001, reason: "spam", closed: true, path: "/admin/close" },
      { type: "close", id: "nobody", code: 1008, reason: "Closed by an operator", closed: false, path: "/admin/close" },
    ]);
  });

  it("refuses a malformed body with 400 and closes nothing", async () => {
    const { source, closed } = fakeSource();
    const admin = dashboard({ observe: source, authorize: () => true });
    for (
      const [body, error] of [
        ["not json", /JSON/],
        [[], /object/],
        [{}, /id/],
        [{ id: 7 }, /id/],
        [{ id: "c1", code: 1005 }, /code/],
        [{ id: "c1", code: 1006 }, /code/],
        [{ id: "c1", code: 999 }, /code/],
        [{ id: "c1", code: 5000 }, /code/],
        [{ id: "c1", code: 1000.5 }, /code/],
        [{ id: "c1", code: "1000" }, /code/],
        [{ id: "c1", reason: 1 }, /reason/],
        [{ id: "c1", reason: "é".repeat(62) }, /123 bytes/],
      ] as const
    ) {
      const response = await admin(post("/close", body));
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.match((await response.json() as { error: string }).error, error);
    }
    assert.deepEqual(closed, []);
  });

  it("wants application/json (415), and at most 4 KiB (413)", async () => {
    const { source, closed } = fakeSource();
    const admin = dashboard({ observe: source, authorize: () => true });
    const form = await admin(post("/close", "id=c1", { "content-type": "application/x-www-form-urlencoded" }));
    assert.equal(form.status, 415);
    const plain = await admin(post("/close", JSON.stringify({ id: "c1" }), { "content-type": "text/plain" }));
    assert.equal(plain.status, 415);
    const big = await admin(post("/close", { id: "c1", pad: "x".repeat(5000) }));
    assert.equal(big.status, 413);
    const charset = await admin(post("/close", { id: "c1" }, { "content-type": "Application/JSON; charset=utf-8" }));
    assert.equal(charset.status, 200);
    assert.deepEqual(closed.map((c) => c.id), ["c1"]);
  });

  it("refuses a cross-origin POST with 403 (CSRF), even with the token", async () => {
    const { source, closed } = fakeSource();
    const admin = dashboard({ observe: source, authorize: bearerToken(TOKEN) });
    for (
      const headers of [
        { origin: "http://evil.example" },
        { origin: "http://127.0.0.1:8081" },
        { origin: "null" },
        { origin: "not a url" },
        { "sec-fetch-site": "cross-site" },
        { "sec-fetch-site": "same-site" },
      ] as Record<string, string>[]
    ) {
      const response = await admin(post("/close", { id: "c1" }, headers));
      assert.equal(response.status, 403, JSON.stringify(headers));
      assert.match((await response.json() as { error: string }).error, /cross-origin/);
    }
    assert.deepEqual(closed, []);
  });

  it("accepts its own origin (any scheme: TLS may end at a proxy), no Origin (not a browser), and listed origins", async () => {
    const { source, closed } = fakeSource();
    const admin = dashboard({ observe: source, authorize: () => true, origins: ["https://admin.example.com"] });
    for (
      const headers of [
        { origin: "http://127.0.0.1:8080" },
        { origin: "https://127.0.0.1:8080" },
        { origin: "http://127.0.0.1:8080", "sec-fetch-site": "same-origin" },
        { "sec-fetch-site": "same-origin" },
        {},
        { origin: "https://ADMIN.example.com" },
      ] as Record<string, string>[]
    ) {
      const response = await admin(post("/close", { id: "c1" }, headers));
      assert.equal(response.status, 200, JSON.stringify(headers));
    }
    assert.equal(closed.length, 6);
  });
});

describe("dashboard(): methods", () => {
  const admin = dashboard({ observe: fakeSource().source, authorize: () => true });

  it("takes only POST on the close action (405, Allow: POST)", async () => {
    for (const method of ["GET", "HEAD", "PUT", "DELETE"]) {
      const response = await admin(new Request(`${BASE}/close?id=c1`, { method }));
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get("allow"), "POST");
    }
  });

  it("takes only GET and HEAD on the page and the snapshot (405, Allow: GET, HEAD)", async () => {
    for (const path of ["", "/", "/snapshot"]) {
      for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
        const response = await admin(new Request(`${BASE}${path}`, { method, ...(method === "POST" ? { body: "{}" } : {}) }));
        assert.equal(response.status, 405, `${method} ${path}`);
        assert.equal(response.headers.get("allow"), "GET, HEAD");
      }
    }
  });

  it("checks authorization before the method: a stranger learns nothing (401)", async () => {
    const locked = dashboard({ observe: fakeSource().source, authorize: () => false });
    assert.equal((await locked(new Request(`${BASE}/close`))).status, 401);
    assert.equal((await locked(new Request(BASE, { method: "DELETE" }))).status, 401);
  });
});

describe("dashboard(): options", () => {
  const { source } = fakeSource();
  it("throws UsageError on a missing source or check, an unknown option, bad numbers or origins", () => {
    for (
      const options of [
        undefined,
        {},
        { observe: source },
        { observe: {}, authorize: () => true },
        { observe: source, authorize: "yes" },
        { observe: source, authorize: () => true, polMs: 1000 },
        { observe: source, authorize: () => true, pollMs: 10 },
        { observe: source, authorize: () => true, maxRows: 0 },
        { observe: source, authorize: () => true, origins: ["example.com"] },
        { observe: source, authorize: () => true, title: 7 },
        { observe: source, authorize: () => true, onAction: "log" },
      ]
    ) {
      assert.throws(() => dashboard(options as never), (error: unknown) => error instanceof UsageError && error.code === "ERR_INVALID_OPTION", JSON.stringify(options));
    }
  });
});

describe("bearerToken() and protect()", () => {
  it("bearerToken: the header, or ?token=, or neither with query: false; a custom parameter name", () => {
    const either = bearerToken(TOKEN);
    assert.equal(either(new Request("http://h/m", { headers: bearer })), true);
    assert.equal(either(new Request(`http://h/m?token=${TOKEN}`)), true);
    assert.equal(either(new Request(`http://h/m?token=${encodeURIComponent(TOKEN + " ")}`)), false);
    assert.equal(either(new Request("http://h/m", { headers: { authorization: `Bearer ${TOKEN} extra` } })), false);
    const header = bearerToken(TOKEN, { query: false });
    assert.equal(header(new Request(`http://h/m?token=${TOKEN}`)), false);
    assert.equal(header(new Request("http://h/m", { headers: bearer })), true);
    const key = bearerToken(TOKEN, { query: "key" });
    assert.equal(key(new Request(`http://h/m?key=${TOKEN}`)), true);
    assert.equal(key(new Request(`http://h/m?token=${TOKEN}`)), false);
  });

  it("bearerToken: compares unicode tokens by their bytes", () => {
    const check = bearerToken("clé-🔑");
    assert.equal(check(new Request(`http://h/m?token=${encodeURIComponent("clé-🔑")}`)), true);
    assert.equal(check(new Request(`http://h/m?token=${encodeURIComponent("cle-🔑")}`)), false);
  });

  it("bearerToken: throws on an empty token or a bad parameter name", () => {
    for (const [token, options] of [["", {}], [undefined, {}], [TOKEN, { query: "" }], [TOKEN, { query: 1 }]] as const) {
      assert.throws(() => bearerToken(token as never, options as never), UsageError);
    }
  });

  it("protect: 401 with WWW-Authenticate: Bearer and the handler never runs; through with the token", async () => {
    let calls = 0;
    const metrics = protect(() => (calls++, new Response("# metrics\n", { headers: { "content-type": "text/plain; version=0.0.4" } })), bearerToken(TOKEN), { realm: "metrics" });
    const refused = await metrics(new Request("http://h/metrics"));
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get("www-authenticate"), 'Bearer realm="metrics"');
    assert.equal(await refused.text(), "Unauthorized");
    assert.equal(calls, 0);
    const ok = await metrics(new Request(`http://h/metrics?token=${TOKEN}`));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("content-type"), "text/plain; version=0.0.4");
    assert.equal(await ok.text(), "# metrics\n");
    assert.throws(() => protect("nope" as never, () => true), UsageError);
    assert.throws(() => protect(() => new Response(), undefined as never), UsageError);
  });
});

describe(`dashboard() over a real observe() and server on ${runtime()}`, () => {
  const obs = observe();
  const app = new App().use(obs).route("/chat/:room", {
    open(ctx) {
      ctx.subscribe(`room:${ctx.params.room}`);
    },
    message(ctx) {
      ctx.send(ctx.data);
    },
  });
  const admin = dashboard({ observe: obs, authorize: bearerToken(TOKEN) });
  const metrics = protect(obs.prometheus, bearerToken(TOKEN));
  let server: Server;
  let url = "";
  const snapshot = async () => (await (await admin(new Request(`${BASE}/snapshot`, { headers: bearer }))).json()) as DashboardSnapshot;

  before(async () => {
    server = await serve(app, { port: 0, hostname: "127.0.0.1" });
    url = `ws://127.0.0.1:${server.port}`;
  });
  after(async () => {
    await server?.close();
  });

  it("shows the connections, their topic, messages and closes, and closes a peer with the chosen code", async () => {
    const ids = () => new Set(obs.snapshot().connections.map((conn) => conn.id));
    const a = await Client.open(`${url}/chat/lobby`);
    await until(() => ids().size === 1, 3000, "a open");
    const [aId] = ids();
    const b = await Client.open(`${url}/chat/lobby`);
    await until(() => ids().size === 2, 3000, "b open");
    const bId = [...ids()].find((id) => id !== aId)!;
    const c = await Client.open(`${url}/chat/other`);
    try {
      assert.equal((await a.roundTrip("hello")).data.toString(), "hello");
      await until(() => obs.snapshot().totals.open === 3, 3000, "three open");
      let s = await snapshot();
      assert.equal(s.totals.open, 3);
      assert.equal(s.connections.length, 3);
      assert.deepEqual(s.topics, [{ topic: "room:lobby", subscribers: 2 }, { topic: "room:other", subscribers: 1 }]);
      assert.equal(s.totals.messagesIn, 1);
      assert.equal(s.totals.messagesOut, 1);
      assert.deepEqual(s.omitted, { connections: 0, topics: 0 });
      assert.ok(s.connections.every((conn) => conn.route === "/chat/:room"), JSON.stringify(s.connections));
      const scraped = await (await metrics(new Request(`http://h/metrics?token=${TOKEN}`))).text();
      assert.match(scraped, /^duplex_server_active_connections\{[^}]*\} 3$/m);

      // c leaves with 4002; the operator closes b with 4003.
      c.ws.close(4002, "bye");
      assert.equal((await c.closed).code, 4002);
      await until(() => obs.snapshot().totals.open === 2, 3000, "c gone");
      const closed = await admin(post("/close", { id: bId, code: 4003, reason: "operator" }, { origin: "http://127.0.0.1:8080" }));
      assert.deepEqual(await closed.json(), { closed: true, id: bId, code: 4003 });
      assert.deepEqual(await b.closed, { code: 4003, reason: "operator" });
      await until(() => obs.snapshot().totals.open === 1, 3000, "b gone");
      s = await snapshot();
      assert.deepEqual(s.totals.closesByCode, { "4002": 1, "4003": 1 });
      assert.deepEqual(s.recentCloses.map((r) => [r.code, r.by, r.reason]), [[4002, "client", "bye"], [4003, "server", "operator"]]);
      assert.deepEqual(s.topics, [{ topic: "room:lobby", subscribers: 1 }]);

      // Gone now: 404, and refused ones close nothing.
      assert.equal((await admin(post("/close", { id: bId }))).status, 404);
      assert.deepEqual(s.connections.map((conn) => conn.id), [aId]);
      assert.equal((await admin(post("/close", { id: aId! }, { authorization: "" }))).status, 401);
      assert.equal((await admin(post("/close", { id: aId! }, { origin: "http://evil.example" }))).status, 403);
      assert.equal(obs.snapshot().totals.open, 1);
      assert.equal(a.ws.readyState, a.ws.OPEN);
    } finally {
      for (const client of [a, b, c]) client.ws.terminate();
    }
  });
});
