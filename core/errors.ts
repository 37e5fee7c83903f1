/**
 * Errors raised by the engine. A peer's fault never throws out of the engine:
 * it becomes a {@linkcode ProtocolError} carried by an `error` event, and the
 * close code it implies is sent to the peer. Local misuse throws a
 * {@linkcode UsageError} synchronously. A refused handshake is described by a
 * {@linkcode HandshakeError} that holds the HTTP answer to send.
 *
 * @module
 */

/**
 * A fault committed by the peer: a malformed frame, invalid UTF-8, a message
 * over the limit. Carries the close code the engine sent because of it and a
 * stable string `code` to match on.
 *
 * @example Matching on the stable code
 * ```ts
 * import { ProtocolError } from "@duplex/ws/core";
 *
 * const err = new ProtocolError("WS_ERR_UNMASKED_FRAME", 1002, "Client frame is not masked");
 * if (err.code === "WS_ERR_UNMASKED_FRAME") console.log(err.closeCode); // 1002
 * ```
 */
export class ProtocolError extends Error {
  /** Stable identifier of the fault, such as `"WS_ERR_INVALID_UTF8"`. */
  readonly code: string;
  /** The close code sent to the peer because of this fault (1002, 1007, 1008 or 1009). */
  readonly closeCode: number;

  /**
   * Creates a protocol error.
   *
   * @param code Stable identifier of the fault.
   * @param closeCode Close code that the fault implies.
   * @param message Human-readable description.
   */
  constructor(code: string, closeCode: number, message: string) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
    this.closeCode = closeCode;
  }
}

/**
 * Local misuse of the API: sending after close, a reserved close code, a close
 * reason over 123 bytes, an invalid option. Thrown synchronously.
 *
 * @example
 * ```ts
 * import { UsageError } from "@duplex/ws/core";
 *
 * try {
 *   throw new UsageError("ERR_INVALID_CLOSE_CODE", "Close code is reserved: 1005");
 * } catch (err) {
 *   if (err instanceof UsageError) console.log(err.code);
 * }
 * ```
 */
export class UsageError extends TypeError {
  /** Stable identifier of the misuse, such as `"ERR_SEND_AFTER_CLOSE"`. */
  readonly code: string;

  /**
   * Creates a usage error.
   *
   * @param code Stable identifier of the misuse.
   * @param message Human-readable description.
   */
  constructor(code: string, message: string) {
    super(message);
    this.name = "UsageError";
    this.code = code;
  }
}

/**
 * A refused opening handshake: the HTTP status, headers and body to answer
 * with instead of `101 Switching Protocols`.
 *
 * @example
 * ```ts
 * import { HandshakeError } from "@duplex/ws/core";
 *
 * const err = new HandshakeError("WS_ERR_INVALID_KEY", 400, "Missing or invalid Sec-WebSocket-Key header");
 * console.log(err.status, err.message); // 400 "Missing or invalid Sec-WebSocket-Key header"
 * ```
 */
export class HandshakeError extends Error {
  /** Stable identifier of the refusal, such as `"WS_ERR_INVALID_VERSION"`. */
  readonly code: string;
  /** HTTP status to answer with (400, 426, 431, …). */
  readonly status: number;
  /** Extra response headers, such as `Sec-WebSocket-Version: 13` on a 426. */
  readonly headers: Record<string, string>;

  /**
   * Creates a handshake refusal.
   *
   * @param code Stable identifier of the refusal.
   * @param status HTTP status to answer with.
   * @param message Reason, also sent as the response body.
   * @param headers Extra response headers.
   */
  constructor(
    code: string,
    status: number,
    message: string,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HandshakeError";
    this.code = code;
    this.status = status;
    this.headers = headers;
  }
}
