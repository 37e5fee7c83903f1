/**
 * The sans-IO RFC 6455 engine: the HTTP/1.1 upgrade handshake, the frame
 * codec, streaming UTF-8 validation, close codes, limits and the connection
 * state machine. Web-standard APIs only, no I/O, no timers: bytes in, events
 * out; commands in, bytes out.
 *
 * @example
 * ```ts
 * import { Engine } from "@duplex/ws/core";
 *
 * const engine = new Engine({ maxMessageBytes: 1 << 20 });
 * engine.receive(new TextEncoder().encode(
 *   "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
 *     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
 * ));
 * const event = engine.nextEvent();
 * if (event?.type === "upgrade") engine.accept();
 * const response = engine.takeOutput(); // the 101 Switching Protocols
 * ```
 *
 * @module
 */

export {
  APPLICATION_CLOSE_CODES,
  CloseCode,
  closePayload,
  isApplicationCloseCode,
  isValidWireCloseCode,
} from "./close_code.ts";
export {
  checkDeflateNegotiation,
  type DeflateAgreement,
  type DeflateNegotiation,
  type DeflateParams,
  negotiateDeflate,
  PERMESSAGE_DEFLATE,
} from "./deflate.ts";
export { Engine, type EngineAcceptOptions, type EngineEvent, type EngineOptions, type MessageData } from "./engine.ts";
export { HandshakeError, ProtocolError, UsageError } from "./errors.ts";
export { FrameArena } from "./frame_arena.ts";
export { applyMask, encodeFrame, encodeTextFrame, type FrameOptions, Opcode } from "./frame.ts";
export { type HeadLike, type UpgradeRequest, validateUpgradeRequest } from "./handshake.ts";
export { type ExtensionOffer, parseExtensions, parseProtocols, selectSubprotocol } from "./handshake_offers.ts";
export { acceptKey, type AcceptOptions, buildAcceptResponse, buildErrorResponse, WEBSOCKET_GUID } from "./handshake_response.ts";
export { type ParsedHead, type RequestHead, RequestHeadParser } from "./http_parser.ts";
export { DEFAULT_LIMITS, type Limits, resolveLimits } from "./options.ts";
export { PreparedMessage } from "./prepared.ts";
export { type Received, Receiver, type ReceiverOptions } from "./receiver.ts";
export { ReadyState } from "./state.ts";
