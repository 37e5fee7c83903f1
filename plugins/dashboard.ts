/**
 * A live dashboard of a Duplex server's connections, served by a plain
 * `Request → Response` handler that mounts on any server or Hono route,
 * behind an authorization check the app supplies. It shows the numbers of
 * an `observe()` middleware: open connections, message rates over time (a
 * chart), topics and their subscribers, slow peers, closes by code; and it
 * lets an operator close a peer.
 *
 * Also here: {@linkcode bearerToken}, an authorization check for a shared
 * token (`Authorization: Bearer` or `?token=`, compared in constant time),
 * and {@linkcode protect}, which puts any handler (such as the Prometheus
 * endpoint) behind the same check.
 *
 * @example The dashboard at `/admin` and the metrics at `/metrics` of a Hono app
 * ```ts
 * import { Hono } from "hono";
 * import { observe } from "@duplex/ws";
 * import { bearerToken, dashboard, protect } from "@duplex/ws/dashboard";
 * import { upgradeWebSocket } from "@duplex/ws/hono";
 *
 * const obs = observe();
 * const authorize = bearerToken("a long random token");
 * const admin = dashboard({ observe: obs, authorize });
 * const metrics = protect(obs.prometheus, authorize);
 *
 * const app = new Hono();
 * app.get("/ws", upgradeWebSocket(() => ({ onMessage: (event, ws) => ws.send(event.data) }), { use: [obs] }));
 * app.all("/admin/*", (c) => admin(c.req.raw));
 * app.get("/metrics", (c) => metrics(c.req.raw));
 * ```
 *
 * @module
 */

import { describeValue } from "./_check.ts";
import { escapeHtml, loginPage, page } from "./_dashboard_page.ts";
import { isValidWireCloseCode } from "../core/close_code.ts";
import { UsageError } from "../core/errors.ts";
import type { Observer, ObserveSnapshot } from "./observe.ts";

/**
 * Decides whether a request may see or act on the dashboard: `true` lets
 * it through, `false` answers 401. A throw (or a rejection) reaches the
 * server's error handling as the handler's own.
 *
 * @example A check of the app's own session cookie
 * ```ts
 * import type { Authorize } from "@duplex/ws/dashboard";
 *
 * const admins = new Set(["session-of-an-admin"]);
 * const authorize: Authorize = (request) => {
 *   const session = /(?:^|;\s*)session=([^;]+)/.exec(request.headers.get("cookie") ?? "")?.[1];
 *   return session !== undefined && admins.has(session);
 * };
 * ```
 */
export type Authorize = (request: Request) => boolean | Promise<boolean>;

/**
 * A plain HTTP handler: what {@linkcode dashboard} and {@linkcode protect}
 * return, and what `protect` wraps.
 *
 * @example
 * ```ts
 * import type { RequestHandler } from "@duplex/ws/dashboard";
 *
 * const hello: RequestHandler = () => new Response("hello");
 * ```
 */
export type RequestHandler = (request: Request) => Response | Promise<Response>;

/**
 * What the dashboard reads and acts on: an `observe()` middleware (an
 * {@linkcode Observer}), or anything with the same two methods.
 *
 * @example
 * ```ts
 * import { observe } from "@duplex/ws";
 * import type { DashboardSource } from "@duplex/ws/dashboard";
 *
 * const source: DashboardSource = observe();
 * ```
 */
export type DashboardSource = Pick<Observer, "snapshot" | "closePeer">;

/**
 * Options of {@linkcode dashboard}.
 *
 * @example
 * ```ts
 * import { observe } from "@duplex/ws";
 * import { bearerToken, type DashboardOptions } from "@duplex/ws/dashboard";
 *
 * const options: DashboardOptions = {
 *   observe: observe(),
 *   authorize: bearerToken("a long random token"),
 *   title: "chat (eu-west)",
 *   origins: ["https://admin.example.com"],
 * };
 * ```
 */
export interface DashboardOptions {
  /** The numbers to show and the connections to close: the app's `observe()` middleware. */
  observe: DashboardSource;
  /** Who may see the dashboard and close peers; every request is checked, the page's included. */
  authorize: Authorize;
  /** The page's title and heading. Default `Duplex dashboard`. */
  title?: string;
  /** How often the page asks for a new snapshot, in ms. Default 1,000. */
  pollMs?: number;
  /**
   * The most connections and topics a snapshot lists (the counts stay
   * exact; `omitted` says how many were left out). Default 1,000.
   */
  maxRows?: number;
  /**
   * Origins allowed to POST actions besides the request's own host (as a
   * browser behind a proxy that rewrites `Host` sends them), such as
   * `https://admin.example.com`.
   */
  origins?: readonly string[];
  /** The realm of the 401's `WWW-Authenticate: Bearer realm="…"`. Default `duplex`. */
  realm?: string;
  /**
   * Called after every close action that passed the checks, for an audit
   * log (who closed whom, from where). A throw is the app's: it reaches the
   * server's error handling, after the close.
   */
  onAction?: (action: DashboardAction) => void;
}

/**
 * An operator's action, as {@linkcode DashboardOptions.onAction} sees it.
 *
 * @example Log every action
 * ```ts
 * import type { DashboardAction } from "@duplex/ws/dashboard";
 *
 * const onAction = (a: DashboardAction) =>
 *   console.log(`admin: close ${a.id} with ${a.code} (${a.reason}): ${a.closed ? "closed" : "no such connection"}`);
 * ```
 */
export interface DashboardAction {
  /** What was done: `close` (the only action so far). */
  readonly type: "close";
  /** The connection's id. */
  readonly id: string;
  /** The close code sent. */
  readonly code: number;
  /** The close reason sent. */
  readonly reason: string;
  /** Whether a connection had that id (`false`: nothing was closed, the answer was 404). */
  readonly closed: boolean;
  /** The request, for who and where from (headers, address through the server). */
  readonly request: Request;
}

/**
 * The JSON the dashboard's page polls (`GET <base>/snapshot`): the
 * {@linkcode ObserveSnapshot}, with its `connections` and `topics` capped
 * at `maxRows`, and how many of each were left out.
 *
 * @example
 * ```ts
 * import type { DashboardSnapshot } from "@duplex/ws/dashboard";
 *
 * const open = (s: DashboardSnapshot): number => s.totals.open;
 * ```
 */
export interface DashboardSnapshot extends ObserveSnapshot {
  /** How many connections and topics were not listed (0 when all were). */
  readonly omitted: { readonly connections: number; readonly topics: number };
}

/** The body of `POST <base>/close`. */
interface CloseRequest {
  id: string;
  code: number;
  reason: string;
}

const OPTIONS = ["observe", "authorize", "title", "pollMs", "maxRows", "origins", "realm", "onAction"];
/** The close code of an operator's close, unless one is chosen: 1008 (policy violation). */
const DEFAULT_CODE = 1008;
const DEFAULT_REASON = "Closed by an operator";
/** The largest body of a close action, in bytes. */
const MAX_ACTION_BYTES = 4096;
const encoder = new TextEncoder();

/** Headers every answer carries: nothing cached, nothing sniffed, framed or referred. */
const COMMON = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
} as const;

function realmOf(realm: unknown): string {
  if (realm === undefined) return "duplex";
  if (typeof realm !== "string") throw new UsageError("ERR_INVALID_OPTION", `Invalid option: realm must be a string, got ${describeValue(realm)}`);
  return realm.replace(/["\\\r\n]/g, "");
}

function checkAuthorize(authorize: unknown): Authorize {
  if (typeof authorize !== "function") {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: authorize must be a function, got ${describeValue(authorize)}`);
  }
  return authorize as Authorize;
}

function unauthorized(realm: string, body: BodyInit, contentType: string, extra: HeadersInit = {}): Response {
  return new Response(body, {
    status: 401,
    headers: { ...COMMON, ...extra, "content-type": contentType, "www-authenticate": `Bearer realm="${realm}"` },
  });
}

function json(status: number, value: unknown, extra: HeadersInit = {}): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { ...COMMON, ...extra, "content-type": "application/json; charset=utf-8" },
  });
}

function nonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes));
}

/** The CSP of a page whose script and style carry `nonce`: nothing else loads, nothing frames it. */
function csp(nonce: string, script: boolean): string {
  return [
    "default-src 'none'",
    script ? `script-src 'nonce-${nonce}'` : undefined,
    `style-src 'nonce-${nonce}'`,
    script ? "connect-src 'self'" : undefined,
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].filter((d) => d !== undefined).join("; ");
}

/** The host an `Origin` names (`host:port` as in a URL), or undefined for an opaque or malformed one. */
function hostOf(origin: string): string | undefined {
  try {
    const url = new URL(origin);
    return url.origin === "null" ? undefined : url.host.toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * Whether a state-changing request comes from a page of this site: its
 * `Origin` names the request's own host (any scheme, so that a proxy
 * ending TLS does not break it) or a listed origin. Without `Origin`
 * (curl, a script), `Sec-Fetch-Site` decides when present; a request with
 * neither is not from a browser, which is what a CSRF attack needs.
 */
function sameOrigin(request: Request, allowed: ReadonlySet<string>): boolean {
  const origin = request.headers.get("origin");
  if (origin === null) {
    const site = request.headers.get("sec-fetch-site");
    return site === null || site === "same-origin" || site === "none";
  }
  if (allowed.has(origin.toLowerCase())) return true;
  const host = hostOf(origin);
  if (host === undefined) return false;
  const own = new URL(request.url).host.toLowerCase();
  const header = request.headers.get("host")?.toLowerCase();
  return host === own || host === header;
}

/** Reads at most `limit` bytes of a body; undefined when it is longer. */
async function readCapped(request: Request, limit: number): Promise<string | undefined> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > limit) return undefined;
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}

/** The close action's body, checked, or why it is refused. */
function parseClose(text: string): CloseRequest | string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return "Body must be JSON";
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "Body must be a JSON object";
  const { id, code = DEFAULT_CODE, reason = DEFAULT_REASON } = body as Record<string, unknown>;
  if (typeof id !== "string" || id === "" || id.length > 256) return "id must be a connection id";
  if (typeof code !== "number" || !isValidWireCloseCode(code)) {
    return `code must be a close code that may be sent (1000-1003, 1007-1014, 3000-4999), got ${describeValue(code)}`;
  }
  if (typeof reason !== "string") return "reason must be a string";
  if (encoder.encode(reason).length > 123) return "reason must be at most 123 bytes of UTF-8";
  return { id, code, reason };
}

function capped<T>(list: T[] | undefined, max: number): { list: T[]; omitted: number } {
  const all = list ?? [];
  return all.length <= max ? { list: all, omitted: 0 } : { list: all.slice(0, max), omitted: all.length - max };
}

/**
 * The dashboard: a `Request → Response` handler to mount under a path of
 * its own (`/admin` below), on any server or a Hono route. It answers:
 *
 * - `GET <base>` (or `<base>/`, anything not below): the page, one
 *   self-contained HTML document (inline script and style, no external
 *   asset, a strict Content-Security-Policy). Unauthorized, it is a 401
 *   with a form that asks for the token.
 * - `GET <base>/snapshot`: the {@linkcode DashboardSnapshot} as JSON, which
 *   the page polls every `pollMs`.
 * - `POST <base>/close` with a JSON body `{ "id": "…", "code": 1008,
 *   "reason": "…" }` (code and reason optional: 1008 and `Closed by an
 *   operator`): closes that connection through `observe.closePeer()`.
 *   200 `{ closed: true, id, code }`, or 404 when no open connection has
 *   that id, 400 for a bad body, 415 unless it is `application/json`.
 *
 * Every request goes through `authorize` first: 401 with
 * `WWW-Authenticate: Bearer` when it says no. Then the method: 405 with
 * `Allow` for anything but GET/HEAD on the page and the snapshot, or POST
 * on the close action. A POST must come from the same site (CSRF): 403
 * when its `Origin` (or, without one, `Sec-Fetch-Site`) says a page
 * elsewhere sent it. Every answer is `Cache-Control: no-store`.
 *
 * @param options The observe middleware, the authorization check, and the page's title and polling.
 * @returns The handler.
 * @throws {UsageError} `ERR_INVALID_OPTION` for an unknown or malformed option.
 *
 * @example Mounted on a Hono app (Hono's `/admin/*` matches `/admin` too)
 * ```ts
 * import { Hono } from "hono";
 * import { observe } from "@duplex/ws";
 * import { bearerToken, dashboard } from "@duplex/ws/dashboard";
 *
 * const obs = observe();
 * const admin = dashboard({ observe: obs, authorize: bearerToken("a long random token") });
 * const app = new Hono();
 * app.all("/admin/*", (c) => admin(c.req.raw));
 * ```
 */
export function dashboard(options: DashboardOptions): RequestHandler {
  if (typeof options !== "object" || options === null) {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: dashboard() needs an options object, got ${describeValue(options)}`);
  }
  const known = Object.keys(options).find((key) => !OPTIONS.includes(key));
  if (known !== undefined) throw new UsageError("ERR_INVALID_OPTION", `Invalid option: "${known}" is not an option of dashboard()`);
  const source = options.observe;
  if (typeof source?.snapshot !== "function" || typeof source.closePeer !== "function") {
    throw new UsageError("ERR_INVALID_OPTION", "Invalid option: observe must be an observe() middleware (with snapshot() and closePeer())");
  }
  const authorize = checkAuthorize(options.authorize);
  const title = options.title ?? "Duplex dashboard";
  if (typeof title !== "string") throw new UsageError("ERR_INVALID_OPTION", `Invalid option: title must be a string, got ${describeValue(title)}`);
  const pollMs = options.pollMs ?? 1000;
  if (typeof pollMs !== "number" || !Number.isFinite(pollMs) || pollMs < 100) {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: pollMs must be a number of ms, at least 100, got ${describeValue(pollMs)}`);
  }
  const maxRows = options.maxRows ?? 1000;
  if (typeof maxRows !== "number" || !Number.isSafeInteger(maxRows) || maxRows < 1) {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: maxRows must be a positive integer, got ${describeValue(maxRows)}`);
  }
  const origins = new Set((options.origins ?? []).map((origin) => {
    const host = typeof origin === "string" ? hostOf(origin) : undefined;
    if (host === undefined) throw new UsageError("ERR_INVALID_OPTION", `Invalid option: origins has ${describeValue(origin)}, not an origin`);
    return new URL(origin).origin.toLowerCase();
  }));
  const realm = realmOf(options.realm);
  const onAction = options.onAction;
  if (onAction !== undefined && typeof onAction !== "function") {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: onAction must be a function, got ${describeValue(onAction)}`);
  }
  const shown = { title: escapeHtml(title), pollMs: Math.round(pollMs) };

  const snapshot = (): DashboardSnapshot => {
    const s = source.snapshot();
    const connections = capped(s.connections, maxRows);
    const topics = capped(s.topics, maxRows);
    return { ...s, connections: connections.list, topics: topics.list, omitted: { connections: connections.omitted, topics: topics.omitted } };
  };

  const closePeer = async (request: Request): Promise<Response> => {
    if (!sameOrigin(request, origins)) return json(403, { error: "Forbidden: cross-origin request" });
    const type = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== "application/json") return json(415, { error: "Content-Type must be application/json" });
    const text = await readCapped(request, MAX_ACTION_BYTES);
    if (text === undefined) return json(413, { error: `Body over ${MAX_ACTION_BYTES} bytes` });
    const action = parseClose(text);
    if (typeof action === "string") return json(400, { error: action });
    const closed = source.closePeer(action.id, action.code, action.reason);
    onAction?.({ type: "close", ...action, closed, request });
    if (!closed) return json(404, { closed: false, error: "No open connection with that id" });
    return json(200, { closed: true, id: action.id, code: action.code });
  };

  return async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    const leaf = path.endsWith("/snapshot") ? "snapshot" : path.endsWith("/close") ? "close" : "page";
    if (await authorize(request) !== true) {
      if (leaf !== "page") return json(401, { error: "Unauthorized" }, { "www-authenticate": `Bearer realm="${realm}"` });
      const n = nonce();
      return unauthorized(realm, loginPage(shown.title, n), "text/html; charset=utf-8", { "content-security-policy": csp(n, false) });
    }
    const method = request.method.toUpperCase();
    if (leaf === "close") {
      return method === "POST" ? await closePeer(request) : json(405, { error: "Method not allowed: use POST" }, { allow: "POST" });
    }
    if (method !== "GET" && method !== "HEAD") return json(405, { error: "Method not allowed: use GET" }, { allow: "GET, HEAD" });
    const head = method === "HEAD";
    if (leaf === "snapshot") {
      const response = json(200, snapshot());
      return head ? new Response(null, { headers: response.headers }) : response;
    }
    const n = nonce();
    return new Response(head ? null : page(shown, n), {
      headers: { ...COMMON, "content-type": "text/html; charset=utf-8", "content-security-policy": csp(n, true) },
    });
  };
}

/**
 * Compares two strings in time that depends only on `expected`'s length,
 * not on where they differ.
 */
function constantTimeEqual(given: string, expected: Uint8Array): boolean {
  const bytes = encoder.encode(given);
  let diff = bytes.length ^ expected.length;
  for (let i = 0; i < expected.length; i++) diff |= expected[i]! ^ (bytes[i % Math.max(bytes.length, 1)] ?? 0);
  return diff === 0;
}

/**
 * Options of {@linkcode bearerToken}.
 *
 * @example
 * ```ts
 * import type { BearerTokenOptions } from "@duplex/ws/dashboard";
 *
 * const headerOnly: BearerTokenOptions = { query: false };
 * ```
 */
export interface BearerTokenOptions {
  /** The query parameter that may carry the token too, or `false` for the header only. Default `token`. */
  query?: string | false;
}

/**
 * An {@linkcode Authorize} check for one shared secret, such as a token
 * from the environment: a request passes with `Authorization: Bearer
 * <token>` or `?token=<token>` (mind that URLs end up in logs and browser
 * history; the header is the better channel for scripts and scrapers).
 * The comparison takes the same time wherever the strings differ.
 *
 * @param token The secret.
 * @param options The query parameter's name, or `false` to accept the header only.
 * @returns The check.
 * @throws {UsageError} `ERR_INVALID_OPTION` when the token is not a non-empty string.
 *
 * @example
 * ```ts
 * import process from "node:process";
 * import { bearerToken } from "@duplex/ws/dashboard";
 *
 * const authorize = bearerToken(process.env.ADMIN_TOKEN ?? "a long random token");
 * console.log(authorize(new Request("http://localhost/admin?token=nope"))); // false
 * ```
 */
export function bearerToken(token: string, options: BearerTokenOptions = {}): (request: Request) => boolean {
  if (typeof token !== "string" || token === "") {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: the token must be a non-empty string, got ${describeValue(token)}`);
  }
  const query = options.query ?? "token";
  if (query !== false && (typeof query !== "string" || query === "")) {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: query must be a parameter name or false, got ${describeValue(query)}`);
  }
  const expected = encoder.encode(token);
  return (request) => {
    const header = request.headers.get("authorization");
    if (header !== null) {
      const given = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header)?.[1];
      if (given !== undefined && constantTimeEqual(given, expected)) return true;
    }
    if (query === false) return false;
    const given = new URL(request.url).searchParams.get(query);
    return given !== null && constantTimeEqual(given, expected);
  };
}

/**
 * Options of {@linkcode protect}.
 *
 * @example
 * ```ts
 * import type { ProtectOptions } from "@duplex/ws/dashboard";
 *
 * const options: ProtectOptions = { realm: "metrics" };
 * ```
 */
export interface ProtectOptions {
  /** The realm of the 401's `WWW-Authenticate: Bearer realm="…"`. Default `duplex`. */
  realm?: string;
}

/**
 * Puts a handler behind an {@linkcode Authorize} check: requests it refuses
 * get 401 with `WWW-Authenticate: Bearer`, the others reach `handler`.
 * Made for the Prometheus endpoint (`observe().prometheus`), and fits any
 * `Request → Response` handler.
 *
 * @param handler The handler to protect.
 * @param authorize Who may reach it.
 * @param options The 401's realm.
 * @returns The protected handler.
 * @throws {UsageError} `ERR_INVALID_OPTION` when `handler` or `authorize` is not a function.
 *
 * @example `/metrics` for a scraper that sends the token
 * ```ts
 * import { observe } from "@duplex/ws";
 * import { bearerToken, protect } from "@duplex/ws/dashboard";
 *
 * const obs = observe();
 * const metrics = protect(obs.prometheus, bearerToken("a long random token"));
 * const response = await metrics(new Request("http://localhost/metrics"));
 * console.log(response.status); // 401
 * ```
 */
export function protect(handler: RequestHandler, authorize: Authorize, options: ProtectOptions = {}): RequestHandler {
  if (typeof handler !== "function") throw new UsageError("ERR_INVALID_OPTION", `Invalid option: handler must be a function, got ${describeValue(handler)}`);
  const check = checkAuthorize(authorize);
  const realm = realmOf(options.realm);
  return async (request) => {
    if (await check(request) !== true) return unauthorized(realm, "Unauthorized", "text/plain; charset=utf-8");
    return await handler(request);
  };
}
