/**
 * Errors that middleware throws on purpose: {@linkcode HttpError} refuses
 * an upgrade with an HTTP status, {@linkcode CloseError} closes an open
 * connection with a close code. Neither reaches `onError`.
 *
 * @module
 */

import { closePayload } from "../core/close_code.ts";
import { checkErrorStatus, reasonPhrase } from "../core/_http_status.ts";

/**
 * Thrown in the upgrade phase to refuse the handshake with an HTTP status
 * (400–599), a text body and headers. The connection is never upgraded.
 *
 * @example
 * ```ts
 * import { App, HttpError } from "@duplex/ws";
 *
 * const app = new App().use({
 *   upgrade(ctx, next) {
 *     if (ctx.query.get("room") === null) throw new HttpError(400, "Missing room");
 *     return next();
 *   },
 * });
 * ```
 */
export class HttpError extends Error {
  /** The HTTP status, 400–599. */
  readonly status: number;
  /** Extra response headers. */
  readonly headers: Readonly<Record<string, string>>;
  /** The response body; the status text's meaning when not given. */
  readonly body: string;

  /**
   * Creates the error.
   *
   * @param status The HTTP status, 400–599.
   * @param body The response body (text). Default: the status's name.
   * @param headers Extra response headers.
   * @throws {UsageError} `ERR_INVALID_STATUS` when the status is not 400–599.
   */
  constructor(status: number, body?: string, headers: Record<string, string> = {}) {
    checkErrorStatus(status);
    const text = body ?? reasonPhrase(status) ?? `HTTP ${status}`;
    super(text);
    this.name = "HttpError";
    this.status = status;
    this.body = text;
    this.headers = Object.freeze({ ...headers });
  }

  /**
   * The response that refuses the upgrade.
   *
   * @returns A `Response` with the status, a `text/plain` body and the headers.
   */
  toResponse(): Response {
    return new Response(this.body, {
      status: this.status,
      headers: { "Content-Type": "text/plain; charset=utf-8", ...this.headers },
    });
  }
}

/**
 * Thrown in the connection phase to close the connection with a code and a
 * reason instead of 1011: a policy violation (1008), an overload (1013), a
 * code of the application range 4000–4999…
 *
 * @example
 * ```ts
 * import { App, CloseCode, CloseError } from "@duplex/ws";
 *
 * const app = new App().use({
 *   message(ctx) {
 *     if (typeof ctx.data !== "string") throw new CloseError(CloseCode.UnsupportedData, "Text only");
 *     if (ctx.data === "quit") throw new CloseError(4000, "Bye");
 *   },
 * });
 * ```
 */
export class CloseError extends Error {
  /** The close code to send: 1000–1003, 1007–1014 or 3000–4999. */
  readonly code: number;
  /** The close reason, at most 123 bytes of UTF-8. */
  readonly reason: string;

  /**
   * Creates the error.
   *
   * @param code A close code that may be sent.
   * @param reason The close reason, at most 123 bytes of UTF-8.
   * @throws {UsageError} `ERR_INVALID_CLOSE_CODE` or `ERR_CLOSE_REASON_TOO_LONG`.
   */
  constructor(code: number, reason = "") {
    closePayload(code, reason); // checks both
    super(`Closed with ${code}${reason === "" ? "" : `: ${reason}`}`);
    this.name = "CloseError";
    this.code = code;
    this.reason = reason;
  }
}
