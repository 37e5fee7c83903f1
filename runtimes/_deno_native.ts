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
import { prepareUpgrade } from "./_native.ts";
import type { ConnectionSet } from "./_registry.ts";
import type { DenoServeInfo } from "./deno.ts";

/** The part of Deno's server-side `WebSocket` Duplex uses. */
interface DenoWebSocket {
  binaryType: string;
  readonly bufferedAmount: number;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
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
    socket.onopen = () =>
      session.attach({
        send(data) {
          socket.send(data);
          return true;
        },
        close: (code, reason) => socket.close(code, reason),
        terminate: () => socket.close(),
        get bufferedAmount() {
          return socket.bufferedAmount;
        },
        // Deno counts what send() queued, until it is written.
        queueCheck: "sends",
      }, protocol);
    socket.onmessage = (event) => {
      const data = event.data;
      session.onMessage(typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer));
    };
    // Deno reports a connection that ended without a close frame as 1005,
    // unclean: that is 1006 (RFC 6455 §7.1.5).
    socket.onclose = (event) =>
      event.wasClean ? session.onClose(event.code, event.reason, true) : session.onClose(CloseCode.Abnormal, "", false);
    socket.onerror = (event) => {
      // A protocol error: Deno drops TCP without a close frame, `onclose` follows.
      const message = (event as ErrorEvent).message || "WebSocket protocol error";
      // The peer dropped TCP (an EOF, a reset, a write into a reset
      // connection: "Connection reset by peer (os error 104)", "Broken pipe
      // (os error 32)"): 1006 follows, and it is no protocol fault.
      if (/unexpected eof|\(os error \d+\)/i.test(message)) return;
      const code = /utf-?8/i.test(message) ? CloseCode.InvalidPayload : CloseCode.ProtocolError;
      session.reportError(new ProtocolError("WS_ERR_NATIVE", code, message));
    };
    return response;
  };
}

