/**
 * Deno's native path (`Deno.upgradeWebSocket`): the upgrade of one request
 * and the socket events that feed Duplex's native session. Shared by
 * `deno.ts` and `hono.ts`.
 *
 * @module
 */

import { CloseCode } from "../core/close_code.ts";
import { ProtocolError, UsageError } from "../core/errors.ts";
import type { ConnectionOptions, Handler } from "../plugins/hooks.ts";
import { CONNECTION_DEFAULTS } from "./_options.ts";
import { type NativeSession, type NativeSocket, prepareUpgrade } from "./_native.ts";
import type { ConnectionSet } from "./_registry.ts";
import type { DenoServeInfo } from "./deno.ts";

/** The part of Deno's server-side `WebSocket` Duplex uses. */
interface DenoWebSocket {
  addEventListener(type: string, listener: EventListenerObject): void;
  removeEventListener(type: string, listener: EventListenerObject): void;
  binaryType: string;
  readonly bufferedAmount: number;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

type UpgradeWebSocket = (request: Request, options: { protocol?: string; idleTimeout?: number }) => {
  socket: DenoWebSocket;
  response: Response;
};

function upgradeWebSocket(): UpgradeWebSocket {
  const ns = (globalThis as { Deno?: { upgradeWebSocket: UpgradeWebSocket } }).Deno;
  if (ns === undefined) throw new UsageError("ERR_WRONG_RUNTIME", "Deno.upgradeWebSocket runs on Deno only");
  return ns.upgradeWebSocket.bind(ns);
}

/**
 * Whether `Deno.upgradeWebSocket` exists here.
 *
 * @example
 * ```ts ignore
 * if (hasDenoUpgrade()) return nativeUpgrade(handler, options, set)(request, info);
 * ```
 */
export function hasDenoUpgrade(): boolean {
  return typeof (globalThis as { Deno?: { upgradeWebSocket?: unknown } }).Deno?.upgradeWebSocket === "function";
}

/**
 * The upgrade of one request on `Deno.serve`: the 101 that opens a
 * WebSocket, or the handshake's refusal.
 *
 * @example
 * ```ts ignore
 * const response = await nativeUpgrade(handler, options, set)(request, info);
 * ```
 */
export function nativeUpgrade<S>(
  handler: Handler<S>,
  options: Readonly<ConnectionOptions>,
  set: ConnectionSet,
): (request: Request, info?: DenoServeInfo) => Promise<Response> {
  return async (request, info) => {
    const decision = await prepareUpgrade(request, info?.remoteAddr.hostname ?? "", handler, options, set);
    if (decision.response !== undefined) return decision.response;
    const { session, protocol, headers } = decision;
    let upgraded;
    try {
      // Deno checks `protocol` against the offer split on ", " only, and
      // refuses "a,b": the header is set on its 101 instead.
      // Deno cannot ping from script: its own idle timeout (which pings)
      // stands in for Duplex's, rounded up to whole seconds.
      const idleTimeout = Math.ceil((options.idleTimeoutMs ?? CONNECTION_DEFAULTS.idleTimeoutMs) / 1000);
      upgraded = upgradeWebSocket()(request, { idleTimeout });
      for (const [name, value] of headers) upgraded.response.headers.append(name, value);
      if (protocol !== "") upgraded.response.headers.set("Sec-WebSocket-Protocol", protocol);
    } catch (err) {
      session.failUpgrade(err);
      return new Response("Internal Server Error", { status: 500 });
    }
    const { socket, response } = upgraded;
    socket.binaryType = "arraybuffer";
    // One object is both the session's socket and the listener of all four
    // events: no closure per event or per socket method.
    const link = new DenoLink(socket, session, protocol);
    socket.addEventListener("open", link);
    socket.addEventListener("message", link);
    socket.addEventListener("close", link);
    socket.addEventListener("error", link);
    return response;
  };
}

/**
 * A Deno WebSocket as its session sees it ({@linkcode NativeSocket}), and
 * the listener of the socket's events: one object per connection.
 */
class DenoLink<S> implements NativeSocket, EventListenerObject {
  readonly #socket: DenoWebSocket;
  readonly #session: NativeSession<S>;
  readonly #protocol: string;
  /** Deno counts what send() queued, until it is written. */
  readonly queueCheck = "sends" as const;

  constructor(socket: DenoWebSocket, session: NativeSession<S>, protocol: string) {
    this.#socket = socket;
    this.#session = session;
    this.#protocol = protocol;
  }

  send(data: string | Uint8Array): boolean {
    this.#socket.send(data);
    return true;
  }

  close(code: number, reason: string): void {
    this.#socket.close(code, reason);
  }

  terminate(): void {
    this.#socket.close();
  }

  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  handleEvent(event: Event): void {
    const session = this.#session;
    switch (event.type) {
      case "message": {
        const data = (event as MessageEvent).data;
        session.onMessage(typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer));
        return;
      }
      case "open":
        this.#socket.removeEventListener("open", this); // once: its listener need not stay
        session.attach(this, this.#protocol);
        return;
      case "close": {
        // Deno reports a connection that ended without a close frame as 1005,
        // unclean: that is 1006 (RFC 6455 §7.1.5).
        const { wasClean, code, reason } = event as CloseEvent;
        if (wasClean) session.onClose(code, reason, true);
        else session.onClose(CloseCode.Abnormal, "", false);
        return;
      }
      case "error": {
        // A protocol error: Deno drops TCP without a close frame, `close` follows.
        const message = (event as ErrorEvent).message || "WebSocket protocol error";
        // The peer dropped TCP (an EOF, a reset, a write into a reset
        // connection: "Connection reset by peer (os error 104)", "Broken pipe
        // (os error 32)"): 1006 follows, and it is no protocol fault.
        if (/unexpected eof|\(os error \d+\)/i.test(message)) return;
        const code = /utf-?8/i.test(message) ? CloseCode.InvalidPayload : CloseCode.ProtocolError;
        session.reportError(new ProtocolError("WS_ERR_NATIVE", code, message));
      }
    }
  }
}
