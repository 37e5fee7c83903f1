/**
 * Authentication and origin checks. The upgrade-phase helpers refuse
 * before the 101 with a real HTTP status: 401 for missing or wrong
 * credentials, 403 for a forbidden origin. {@linkcode authenticateWithin}
 * covers first-message auth after the upgrade: authenticate in time or be
 * closed with 1008.
 *
 * @module
 */

import { describeValue } from "./_check.ts";
import { CloseCode } from "../core/close_code.ts";
import { UsageError } from "../core/errors.ts";
import { ReadyState } from "../core/state.ts";
import type { Next } from "./compose.ts";
import type { MessageContext, Peer, UpgradeContext } from "./context.ts";
import { HttpError } from "./errors.ts";
import type { Phases } from "./pipeline.ts";

/**
 * Where a token comes from: a function that reads it from the request, or
 * `undefined` when the request does not carry it.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example A token in a custom header
 * ```ts
 * import type { TokenSource } from "@duplex/ws";
 *
 * const apiKey: TokenSource = (ctx) => ctx.headers.get("x-api-key") ?? undefined;
 * ```
 */
export type TokenSource<S = Record<string, unknown>> = (ctx: UpgradeContext<S>) => string | undefined;

/**
 * Checks a token. Return `true` to accept, `false` to refuse with 401. It
 * may set `ctx.state` (the user, the roles) for later middleware. A throw
 * answers 500 and reaches `onError`; throw an `HttpError` to answer
 * another status (such as 403 for a known user without access).
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import type { Verify } from "@duplex/ws";
 *
 * const verify: Verify<{ user?: string }> = (token, ctx) => {
 *   if (token !== "secret") return false;
 *   ctx.state.user = "admin";
 *   return true;
 * };
 * ```
 */
export type Verify<S = Record<string, unknown>> = (token: string, ctx: UpgradeContext<S>) => boolean | Promise<boolean>;

/**
 * The token of an `Authorization: Bearer <token>` header.
 *
 * @returns A token source.
 *
 * @example
 * ```ts
 * import { authenticate, fromBearer } from "@duplex/ws";
 *
 * const auth = authenticate((token) => token === "secret", { from: [fromBearer()] });
 * ```
 */
export function fromBearer<S = Record<string, unknown>>(): TokenSource<S> {
  return (ctx) => {
    const header = ctx.headers.get("authorization");
    if (header === null) return undefined;
    const match = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    return match?.[1];
  };
}

/**
 * A query-string parameter, such as `?token=…` (browsers cannot set headers
 * on a WebSocket; mind that URLs end up in logs).
 *
 * @param name The parameter. Default `token`.
 * @returns A token source.
 *
 * @example
 * ```ts
 * import { authenticate, fromQuery } from "@duplex/ws";
 *
 * const auth = authenticate((token) => token === "secret", { from: [fromQuery("access_token")] });
 * ```
 */
export function fromQuery<S = Record<string, unknown>>(name = "token"): TokenSource<S> {
  return (ctx) => ctx.query.get(name) ?? undefined;
}

/**
 * A cookie, such as a session id (browsers send cookies with the upgrade;
 * pair it with {@linkcode allowOrigins} against cross-site hijacking).
 *
 * @param name The cookie's name.
 * @returns A token source.
 *
 * @example
 * ```ts
 * import { authenticate, fromCookie } from "@duplex/ws";
 *
 * const auth = authenticate((session) => session === "s3cr3t", { from: [fromCookie("session")] });
 * ```
 */
export function fromCookie<S = Record<string, unknown>>(name: string): TokenSource<S> {
  return (ctx) => ctx.cookies[name];
}

/**
 * A token carried as an offered subprotocol, `<prefix><token>` — the one
 * credential a browser's `new WebSocket(url, protocols)` can send besides
 * the URL and cookies. The token subprotocol is never chosen: the server
 * still answers with a subprotocol it speaks (so offer one too, such as
 * `["chat.v1", "bearer.abc123"]`).
 *
 * @param prefix What comes before the token. Default `bearer.`.
 * @returns A token source.
 *
 * @example
 * ```ts
 * import { authenticate, fromProtocol } from "@duplex/ws";
 *
 * // new WebSocket(url, ["chat.v1", "bearer.abc123"]) in the browser
 * const auth = authenticate((token) => token === "abc123", { from: [fromProtocol("bearer.")] });
 * ```
 */
export function fromProtocol<S = Record<string, unknown>>(prefix = "bearer."): TokenSource<S> {
  return (ctx) => {
    const offer = ctx.offeredProtocols.find((p) => p.startsWith(prefix) && p.length > prefix.length);
    return offer?.slice(prefix.length);
  };
}

/**
 * Options of {@linkcode authenticate}.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import { type AuthOptions, fromBearer, fromQuery } from "@duplex/ws";
 *
 * const options: AuthOptions = { from: [fromBearer(), fromQuery()], realm: "chat" };
 * ```
 */
export interface AuthOptions<S = Record<string, unknown>> {
  /** Where to look for the token, in order; the first source that has one is used. Default: the bearer header. */
  from?: readonly TokenSource<S>[];
  /** The realm in the 401's `WWW-Authenticate: Bearer realm="…"`. Default `duplex`. */
  realm?: string;
}

/**
 * Refuses the upgrade unless the request carries a token that `verify`
 * accepts: 401 with `WWW-Authenticate: Bearer` when there is no token
 * (`Unauthorized: missing credentials`) or `verify` says no
 * (`error="invalid_token"`, `Unauthorized: invalid credentials`).
 *
 * @typeParam S The type of `ctx.state`.
 * @param verify Checks the token.
 * @param options Where the token comes from, and the realm.
 * @returns Upgrade-phase middleware.
 * @throws {UsageError} `ERR_INVALID_OPTION` when `verify` or a source is not a function.
 *
 * @example Bearer header or `?token=`
 * ```ts
 * import { App, authenticate, fromBearer, fromQuery } from "@duplex/ws";
 *
 * const app = new App().use(
 *   authenticate((token) => token === "secret", { from: [fromBearer(), fromQuery("token")] }),
 * );
 * ```
 */
export function authenticate<S = Record<string, unknown>>(verify: Verify<S>, options: AuthOptions<S> = {}): Phases<S> {
  if (typeof verify !== "function") throw new UsageError("ERR_INVALID_OPTION", "Invalid option: verify must be a function");
  const sources = options.from ?? [fromBearer<S>()];
  if (sources.length === 0 || sources.some((s) => typeof s !== "function")) {
    throw new UsageError("ERR_INVALID_OPTION", "Invalid option: from must be a non-empty list of token sources");
  }
  const realm = (options.realm ?? "duplex").replace(/["\\\r\n]/g, "");
  return {
    upgrade(ctx: UpgradeContext<S>, next: Next): void | Promise<void> {
      let token: string | undefined;
      for (const source of sources) {
        token = source(ctx);
        if (token !== undefined && token !== "") break;
      }
      if (token === undefined || token === "") {
        throw new HttpError(401, "Unauthorized: missing credentials", { "WWW-Authenticate": `Bearer realm="${realm}"` });
      }
      const refuse = (): never => {
        throw new HttpError(401, "Unauthorized: invalid credentials", {
          "WWW-Authenticate": `Bearer realm="${realm}", error="invalid_token"`,
        });
      };
      const verdict = verify(token, ctx);
      if (typeof verdict === "boolean") return verdict ? next() : refuse();
      return Promise.resolve(verdict).then((ok) => (ok === true ? next() : refuse()));
    },
  };
}

/**
 * Options of {@linkcode allowOrigins}.
 *
 * @example
 * ```ts
 * import type { OriginOptions } from "@duplex/ws";
 *
 * const options: OriginOptions = { allowMissing: false };
 * ```
 */
export interface OriginOptions {
  /**
   * Whether a request without an `Origin` header passes. Browsers always
   * send one, so only non-browser clients lack it, and they cannot be
   * hijacked cross-site. Default `true`.
   */
  allowMissing?: boolean;
}

/**
 * Refuses, with 403, an upgrade whose `Origin` is not allowed: the check
 * that stops cross-site WebSocket hijacking (a page elsewhere opening a
 * socket with the user's cookies). Origins are compared by scheme, host and
 * port, case-insensitively; `"null"` origins match only a listed `"null"`.
 *
 * @typeParam S The type of `ctx.state`.
 * @param allowed The allowed origins (`https://app.example.com`), or a function that decides.
 * @param options Whether a missing `Origin` passes (default yes).
 * @returns Upgrade-phase middleware.
 * @throws {UsageError} `ERR_INVALID_OPTION` for an entry that is not an origin.
 *
 * @example
 * ```ts
 * import { allowOrigins, App } from "@duplex/ws";
 *
 * const app = new App().use(allowOrigins(["https://app.example.com", "http://localhost:5173"]));
 * ```
 */
export function allowOrigins<S = Record<string, unknown>>(
  allowed: readonly string[] | ((origin: string, ctx: UpgradeContext<S>) => boolean),
  options: OriginOptions = {},
): Phases<S> {
  const allowMissing = options.allowMissing ?? true;
  let check: (origin: string, ctx: UpgradeContext<S>) => boolean;
  if (typeof allowed === "function") check = allowed;
  else if (Array.isArray(allowed)) {
    const set = new Set(allowed.map((origin) => {
      const normal = normalizeOrigin(origin);
      if (normal === undefined) throw new UsageError("ERR_INVALID_OPTION", `Invalid origin: ${JSON.stringify(origin)}`);
      return normal;
    }));
    check = (origin) => {
      const normal = normalizeOrigin(origin);
      return normal !== undefined && set.has(normal);
    };
  } else {
    throw new UsageError("ERR_INVALID_OPTION", "Invalid option: allowed must be a list of origins or a function");
  }
  return {
    upgrade(ctx: UpgradeContext<S>, next: Next): void | Promise<void> {
      const origin = ctx.headers.get("origin");
      if (origin === null ? allowMissing : check(origin, ctx)) return next();
      throw new HttpError(403, origin === null ? "Forbidden: missing Origin" : `Forbidden: origin ${origin} is not allowed`);
    },
  };
}

function normalizeOrigin(origin: string): string | undefined {
  if (origin === "null") return "null";
  try {
    const url = new URL(origin);
    if (url.origin === "null") return undefined;
    return url.origin.toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * Options of {@linkcode authenticateWithin}.
 *
 * @typeParam S The type of `ctx.state`.
 *
 * @example
 * ```ts
 * import type { FirstMessageAuthOptions } from "@duplex/ws";
 *
 * const options: FirstMessageAuthOptions = { timeoutMs: 5000, verify: (data) => data === "let me in" };
 * ```
 */
export interface FirstMessageAuthOptions<S = Record<string, unknown>> {
  /** How long after the open the peer has to authenticate, in ms. */
  timeoutMs: number;
  /**
   * Checks a message sent before the peer is authenticated; `true`
   * authenticates (the message is consumed, later ones flow on), `false`
   * closes with 1008.
   */
  verify(data: string | Uint8Array, ctx: MessageContext<S>): boolean | Promise<boolean>;
}

/**
 * First-message auth: after the open, the peer must send a message that
 * `verify` accepts within `timeoutMs`, or the connection is closed with
 * 1008 (`Authentication timeout` or `Authentication failed`). Messages
 * before that reach nothing else; the accepted one is consumed. The timer
 * comes from the connection's clock.
 *
 * @typeParam S The type of `ctx.state`.
 * @param options The deadline and the check.
 * @returns Middleware for `open`, `message` and `close`.
 * @throws {UsageError} `ERR_INVALID_OPTION` for a bad deadline or check.
 *
 * @example
 * ```ts
 * import { App, authenticateWithin } from "@duplex/ws";
 *
 * const app = new App<{ user?: string }>().use(
 *   authenticateWithin({
 *     timeoutMs: 3000,
 *     verify(data, ctx) {
 *       if (data !== "token:secret") return false;
 *       ctx.state.user = "alice";
 *       return true;
 *     },
 *   }),
 *   { message: (ctx) => void ctx.send(`hi ${ctx.state.user}`) },
 * );
 * ```
 */
export function authenticateWithin<S = Record<string, unknown>>(options: FirstMessageAuthOptions<S>): Phases<S> {
  const { timeoutMs, verify } = options ?? {};
  if (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: timeoutMs must be a positive number, got ${describeValue(timeoutMs)}`);
  }
  if (typeof verify !== "function") throw new UsageError("ERR_INVALID_OPTION", "Invalid option: verify must be a function");
  // Per connection: the deadline timer while waiting, `true` once authenticated.
  const pending = new WeakMap<Peer<S>, unknown>();
  const done = new WeakSet<Peer<S>>();
  const policy = (ctx: Peer<S>, reason: string) => {
    if (ctx.readyState === ReadyState.Open) ctx.close(CloseCode.PolicyViolation, reason);
  };
  return {
    open(ctx, next) {
      const peer = ctx.peer;
      pending.set(peer, ctx.clock.setTimeout(() => {
        pending.delete(peer);
        if (!done.has(peer)) policy(peer, "Authentication timeout");
      }, timeoutMs));
      return next();
    },
    message(ctx, next) {
      const peer = ctx.peer;
      if (done.has(peer)) return next();
      if (!pending.has(peer)) return; // timed out, closing: drop
      const settle = (ok: boolean) => {
        if (!pending.has(peer)) return; // the deadline passed while verifying: too late either way
        ctx.clock.clearTimeout(pending.get(peer));
        pending.delete(peer);
        if (ok === true) done.add(peer);
        else policy(peer, "Authentication failed");
      };
      const verdict = verify(ctx.data, ctx);
      if (typeof verdict === "boolean") return settle(verdict);
      return Promise.resolve(verdict).then(settle);
    },
    close(ctx, next) {
      ctx.clock.clearTimeout(pending.get(ctx.peer));
      pending.delete(ctx.peer);
      return next();
    },
  };
}
