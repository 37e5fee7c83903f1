/**
 * The sans-IO server engine: bytes in, events out; commands in, bytes out.
 * One engine per connection, from the first byte of the HTTP request to the
 * end of the close handshake. It never touches a socket or a timer: the
 * runtime adapter moves bytes and owns the clock.
 *
 * @module
 */

import { closeReasonFor } from "./_close_reason.ts";
import { CloseCode, closePayload } from "./close_code.ts";
import type { DeflateParams } from "./deflate.ts";
import { HandshakeError, ProtocolError, UsageError } from "./errors.ts";
import { encodeFrame, encodeTextFrame, Opcode, writeAsciiText, writeHeader } from "./frame.ts";
import type { FrameArena } from "./frame_arena.ts";
import type { PreparedMessage } from "./prepared.ts";
import { headSize } from "./_head_size.ts";
import { type HeadLike, type UpgradeRequest, validateUpgradeRequest } from "./handshake.ts";
import { type AcceptOptions, buildAcceptResponse, buildErrorResponse } from "./handshake_response.ts";
import { RequestHeadParser } from "./http_parser.ts";
import { type Limits, resolveLimits } from "./options.ts";
import { decodeTextMessage, Receiver } from "./receiver.ts";
import { isUtf8, textAsBytes } from "./_utf8.ts";
import { ReadyState, type Transition, transition } from "./state.ts";

/**
 * What the engine reports, in order. A discriminated union on `type`:
 * - `upgrade`: a valid opening handshake arrived; answer with
 *   {@linkcode Engine.accept} or {@linkcode Engine.reject};
 * - `rejected`: the handshake was invalid and the engine answered it with
 *   the HTTP error in `error` (the connection is over);
 * - `open`: the 101 was queued, messages may flow;
 * - `message`: a whole message, a `string` for text, a `Uint8Array` for binary;
 *   with `textAs: "bytes"`, text comes as its validated UTF-8 bytes and the
 *   event has `text: true`;
 * - `compressed`: a whole message with RSV1 set, when permessage-deflate was
 *   accepted: its payload, still compressed, for the adapter to inflate, then
 *   to check (a text message must be valid UTF-8) and report, or to refuse
 *   with {@linkcode Engine.fail};
 * - `ping` / `pong`: control frames (a ping is answered by the engine);
 * - `error`: the peer broke the protocol; a `close` event follows;
 * - `close`: the connection is closed, with the code, the reason and whether
 *   the close handshake completed. Reported once per opened connection.
 *
 * @example
 * ```ts
 * import type { EngineEvent } from "@duplex/ws/core";
 *
 * function log(event: EngineEvent): void {
 *   if (event.type === "close") console.log(event.code, event.wasClean);
 * }
 * ```
 */
export type EngineEvent =
  | { type: "upgrade"; request: UpgradeRequest }
  | { type: "rejected"; error: HandshakeError }
  | { type: "open"; protocol: string; extensions: string }
  | { type: "message"; data: string | Uint8Array; text?: true }
  | { type: "compressed"; data: Uint8Array; binary: boolean }
  | { type: "ping"; data: Uint8Array }
  | { type: "pong"; data: Uint8Array }
  | { type: "error"; error: ProtocolError }
  | { type: "close"; code: number; reason: string; wasClean: boolean };

/**
 * Options of an {@linkcode Engine}: the limits of {@linkcode Limits}, and
 * how text messages are delivered.
 *
 * @example
 * ```ts
 * import type { EngineOptions } from "@duplex/ws/core";
 *
 * const options: EngineOptions = { maxMessageBytes: 64 * 1024, closeTimeoutMs: 2000 };
 * const passThrough: EngineOptions = { textAs: "bytes" }; // text as validated UTF-8 bytes
 * ```
 */
export interface EngineOptions extends Partial<Limits> {
  /**
   * How a text message reaches the application: `"string"` (the default),
   * decoded; or `"bytes"`, its UTF-8 payload as a `Uint8Array`, still
   * validated (invalid UTF-8 fails the connection with 1007, as with
   * strings) but never decoded. For servers that pass text through
   * (relay, forward, echo, parse with a byte-level parser): decoding a
   * 64 KiB message and encoding it back costs more than the rest of its
   * trip. Send such bytes back as text with `send(bytes, { binary: false })`.
   * On the native paths (a runtime's own WebSocket server), where the
   * runtime decodes text itself, the adapters encode the string it hands over: the
   * option behaves the same there but saves nothing.
   */
  textAs?: "string" | "bytes";
}

/**
 * Data that {@linkcode Engine.send} accepts: a string goes as a text
 * message, bytes as a binary message.
 *
 * @example
 * ```ts
 * import type { MessageData } from "@duplex/ws/core";
 *
 * const data: MessageData = new Uint8Array([1, 2, 3]);
 * ```
 */
export type MessageData = string | ArrayBuffer | ArrayBufferView;

/**
 * How {@linkcode Engine.accept} answers: the subprotocol, the negotiated
 * extensions and extra headers of the 101, and the permessage-deflate
 * parameters when the extensions include it.
 *
 * @example
 * ```ts
 * import type { EngineAcceptOptions } from "@duplex/ws/core";
 *
 * const options: EngineAcceptOptions = { protocol: "chat.v1", headers: { "x-server": "duplex" } };
 * ```
 */
export interface EngineAcceptOptions extends Omit<AcceptOptions, "key"> {
  /** permessage-deflate was accepted with these parameters: RSV1 marks compressed messages. */
  deflate?: DeflateParams;
}

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
/** The event and output lists of every engine while they are empty; never written to. */
const NO_EVENTS: EngineEvent[] = [];
const NO_OUTPUT: Uint8Array[] = [];

/** The fields of an {@linkcode Engine} that an idle connection rarely needs, made when first set. */
class EngineRare {
  protocol = "";
  extensions = "";
  deflate: DeflateParams | undefined = undefined;
  closedBy: "local" | "peer" | undefined = undefined;
  eof = false;
}

function toBytes(data: ArrayBuffer | ArrayBufferView | string, what: string): Uint8Array {
  if (typeof data === "string") return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new UsageError("ERR_INVALID_DATA", `Invalid ${what}: expected a string, an ArrayBuffer or an ArrayBufferView`);
}

/**
 * A server-side WebSocket connection as a pure state machine.
 *
 * Feed it what the socket reads with {@linkcode Engine.receive}, drain
 * {@linkcode Engine.nextEvent} until it returns `undefined`, and write what
 * {@linkcode Engine.takeOutput} returns. When {@linkcode Engine.state} is
 * `Closing`, run the close timer (`limits.closeTimeoutMs`) and call
 * {@linkcode Engine.abort} if it fires; when it is `Closed`, write the last
 * output and close the socket.
 *
 * @example An echo server over any byte stream
 * ```ts
 * import { Engine } from "@duplex/ws/core";
 *
 * const engine = new Engine();
 * function onBytes(bytes: Uint8Array | null, write: (b: Uint8Array) => void): void {
 *   engine.receive(bytes);
 *   for (let e = engine.nextEvent(); e; e = engine.nextEvent()) {
 *     if (e.type === "upgrade") engine.accept();
 *     else if (e.type === "message") engine.send(e.data);
 *   }
 *   for (const chunk of engine.takeOutput()) write(chunk);
 * }
 * ```
 */
export class Engine {
  /** The limits in force. */
  readonly limits: Readonly<Limits>;

  #state: ReadyState = ReadyState.Connecting;
  #parser: RequestHeadParser | undefined;
  #request: UpgradeRequest | undefined;
  // What was negotiated beyond the defaults, and how the connection ended:
  // made when first set, so that an idle connection without a subprotocol
  // or an extension holds no field for them.
  #rare: EngineRare | undefined;
  // Made by the first frame bytes: a connection that never sends a frame
  // (a subscriber that only listens) holds no frame decoder.
  #receiver: Receiver | undefined;
  readonly #textBytes: boolean;

  // Both lists are the shared empty ones while empty, so that an idle
  // connection holds no array of its own.
  #events: EngineEvent[] = NO_EVENTS;
  #eventIndex = 0;
  #output: Uint8Array[] = NO_OUTPUT;
  #outputBytes = 0;
  // Frames encoded into the arena, if the adapter gave one: the run of them
  // that lies side by side at the end of the output, not yet a view, and the
  // arena buffer (generation) this engine holds frames in, or -1.
  readonly #arena: FrameArena | undefined;
  #held = -1;
  #runBytes: Uint8Array | undefined;
  #runStart = 0;
  #runEnd = 0;

  /**
   * Creates an engine waiting for the opening handshake.
   *
   * @param options Limits; every one has a safe default.
   * @param arena Where small data frames are encoded, shared with other
   *   engines; see {@linkcode FrameArena} for what it asks of the adapter.
   *   Without one, each frame is a chunk of its own.
   * @throws {UsageError} When a limit is invalid.
   */
  constructor(options: EngineOptions = {}, arena?: FrameArena) {
    this.limits = resolveLimits(options);
    this.#arena = arena;
    this.#parser = new RequestHeadParser(this.limits.maxHeaderBytes);
    this.#textBytes = textAsBytes(options.textAs);
  }

  /** The frame decoder, made on first use (RSV1 allowed once deflate is agreed). */
  #decoder(): Receiver {
    return this.#receiver ??= new Receiver({
      textAs: this.#textBytes ? "bytes" : "string",
      role: "server",
      allowRsv1: this.#rare?.deflate !== undefined,
      maxMessageBytes: this.limits.maxMessageBytes,
      maxFrameBytes: this.limits.maxFrameBytes,
      maxFragments: this.limits.maxFragments,
      minFragmentBytes: this.limits.minFragmentBytes,
    });
  }

  /** The connection state, as the WebSocket API numbers it. */
  get state(): ReadyState {
    return this.#state;
  }

  /**
   * Who started the close of an opened connection: `"local"` (our close
   * frame, a fault we failed it for, an abort) or `"peer"` (its close frame,
   * or the transport ended); `undefined` while open or never opened.
   */
  get closedBy(): "local" | "peer" | undefined {
    return this.#rare?.closedBy;
  }

  /** The validated opening handshake, once it has arrived. */
  get request(): UpgradeRequest | undefined {
    return this.#request;
  }

  /** The negotiated subprotocol, or `""`. */
  get protocol(): string {
    return this.#rare?.protocol ?? "";
  }

  /** The negotiated `Sec-WebSocket-Extensions` value, or `""`. */
  get extensions(): string {
    return this.#rare?.extensions ?? "";
  }

  /** The permessage-deflate parameters agreed on in {@linkcode Engine.accept}, or `undefined`. */
  get deflate(): DeflateParams | undefined {
    return this.#rare?.deflate;
  }

  /** Bytes queued by the engine and not yet taken by {@linkcode Engine.takeOutput}. */
  get outputBytes(): number {
    return this.#outputBytes;
  }

  /** Bytes received and not yet decoded. */
  get inputBytes(): number {
    return this.#receiver === undefined ? 0 : this.#receiver.bufferedAmount;
  }

  /**
   * Feeds bytes read from the socket, split in any way. `null` means the
   * transport ended: what is buffered is still decoded, then the connection
   * closes with 1006 unless a close handshake finished first.
   *
   * The engine owns `bytes` from now on (payloads are unmasked in place).
   *
   * @param bytes What the socket gave, or `null` at its end.
   */
  receive(bytes: Uint8Array | null): void {
    if (this.#state === ReadyState.Closed) return;
    if (bytes === null) {
      (this.#rare ??= new EngineRare()).eof = true;
      if (this.#state === ReadyState.Connecting) {
        this.#parser = undefined;
        this.#move("transportEnd");
      }
      return;
    }
    if (this.#parser !== undefined) {
      let parsed;
      try {
        parsed = this.#parser.push(bytes);
      } catch (err) {
        if (err instanceof HandshakeError) return this.#rejectInvalid(err);
        throw err;
      }
      if (parsed === undefined) return;
      this.#parser = undefined;
      return this.#onHead(parsed.head, parsed.rest);
    }
    (this.#receiver ?? this.#decoder()).push(bytes);
  }

  /**
   * Starts the engine from a request that was already parsed (by `node:http`
   * or from a `Request`), instead of feeding the raw header block.
   *
   * @param head Method, URL, HTTP version and headers of the request.
   * @param rest Bytes that arrived after the header block (`head` of a
   *   `node:http` `upgrade` event): they may already be frames.
   * A head over `maxHeaderBytes` (counted as on the wire: request line,
   * names, values and separators) is refused with 431, as from raw bytes.
   * @throws {UsageError} When a request was already received.
   */
  receiveHead(head: HeadLike, rest: Uint8Array = EMPTY): void {
    if (this.#parser === undefined || this.#state !== ReadyState.Connecting) {
      throw new UsageError("ERR_INVALID_STATE", "Invalid state: the request head was already received");
    }
    this.#parser = undefined;
    if (headSize(head) > this.limits.maxHeaderBytes) {
      return this.#rejectInvalid(new HandshakeError("WS_ERR_HEADERS_TOO_LARGE", 431, "Request header fields too large"));
    }
    this.#onHead(head, rest);
  }

  #onHead(head: HeadLike, rest: Uint8Array): void {
    let request: UpgradeRequest;
    try {
      request = validateUpgradeRequest(head);
    } catch (err) {
      if (err instanceof HandshakeError) return this.#rejectInvalid(err);
      throw err;
    }
    this.#request = request;
    if (rest.length > 0) this.#decoder().push(rest);
    this.#emit({ type: "upgrade", request });
  }

  #rejectInvalid(error: HandshakeError): void {
    this.#parser = undefined;
    this.#write(buildErrorResponse(error.status, error.message, error.headers));
    this.#move("reject");
    this.#emit({ type: "rejected", error });
  }

  /**
   * Accepts the opening handshake: queues the `101 Switching Protocols`
   * answer, moves to `Open` and reports `open`.
   *
   * @param options The subprotocol (one the client offered), the negotiated
   *   extensions (with `deflate` when they include permessage-deflate: RSV1
   *   is then accepted on data messages) and extra response headers.
   * @throws {UsageError} When no request is waiting for an answer, the
   *   protocol was not offered, or a header is invalid.
   */
  accept(options: EngineAcceptOptions = {}): void {
    const request = this.#pending("accept");
    const protocol = options.protocol ?? "";
    if (protocol !== "" && !request.protocols.includes(protocol)) {
      throw new UsageError("ERR_INVALID_PROTOCOL", `Invalid protocol: the client did not offer ${JSON.stringify(protocol)}`);
    }
    this.#write(buildAcceptResponse({ ...options, key: request.key, protocol: protocol || undefined }));
    const extensions = options.extensions ?? "";
    if (protocol !== "" || extensions !== "" || options.deflate !== undefined) {
      const rare = this.#rare ??= new EngineRare();
      rare.protocol = protocol;
      rare.extensions = extensions;
      if (options.deflate !== undefined) {
        rare.deflate = options.deflate;
        this.#receiver?.allowRsv1();
      }
    }
    this.#move("accept");
    this.#emit({ type: "open", protocol, extensions });
  }

  /**
   * Refuses the opening handshake with an HTTP answer; the connection is then
   * over.
   *
   * @param status HTTP status, 400–599.
   * @param body Response body (plain text).
   * @param headers Extra response headers.
   * @throws {UsageError} When no request is waiting for an answer, or the
   *   status or a header is invalid.
   */
  reject(status: number, body = "", headers?: Record<string, string> | [string, string][]): void {
    this.#pending("reject");
    this.#write(buildErrorResponse(status, body, headers));
    this.#move("reject");
  }

  #pending(what: string): UpgradeRequest {
    if (this.#state !== ReadyState.Connecting || this.#request === undefined) {
      throw new UsageError("ERR_INVALID_STATE", `Invalid state: nothing to ${what}, no upgrade request is waiting`);
    }
    return this.#request;
  }

  /**
   * Returns the next event, decoding buffered bytes only as far as needed.
   * Answer each event before asking for the next one: a message's reply then
   * leaves before the close frame caused by a later malformed frame.
   *
   * @returns The event, or `undefined` when more bytes (or a decision) are needed.
   */
  nextEvent(): EngineEvent | undefined {
    if (this.#eventIndex < this.#events.length) return this.#shiftEvent();
    if (this.#state !== ReadyState.Open && this.#state !== ReadyState.Closing) return undefined;
    let item;
    try {
      item = this.#receiver === undefined ? undefined : this.#receiver.next();
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.#fail(err);
      return this.#shiftEvent();
    }
    if (item === undefined) {
      if (this.#rare?.eof === true) {
        this.#move("transportEnd");
        this.#emit({ type: "close", code: CloseCode.Abnormal, reason: "", wasClean: false });
        return this.#shiftEvent();
      }
      return undefined;
    }
    switch (item.type) {
      case "message":
      case "compressed":
        return item;
      case "ping":
        if (this.#state === ReadyState.Open) this.#queue(encodeFrame(Opcode.Pong, item.data));
        return item;
      case "pong":
        return item;
      default: {
        if (this.#state === ReadyState.Open) {
          this.#queue(encodeFrame(Opcode.Close, closePayload(item.code === CloseCode.NoStatus ? undefined : item.code, "")));
        }
        this.#move("peerClose");
        return { type: "close", code: item.code, reason: item.reason, wasClean: true };
      }
    }
  }

  #fail(error: ProtocolError): void {
    // Our close frame may already be out (closing): never a second one.
    if (this.#state === ReadyState.Open) this.#queue(encodeFrame(Opcode.Close, closePayload(error.closeCode, closeReasonFor(error.closeCode))));
    this.#move("fail");
    this.#emit({ type: "error", error });
    this.#emit({ type: "close", code: error.closeCode, reason: error.message, wasClean: false });
  }

  /**
   * Queues a message: a string as text, bytes as binary, unless `binary`
   * says otherwise.
   *
   * @param data The message. Bytes are not copied: do not change them until
   *   the output has been written.
   * @param binary `false` sends bytes as a text message, as they are: they
   *   must be UTF-8 (they are not checked; the bytes of a text message
   *   received with `textAs: "bytes"` are). `true` sends a string as a
   *   binary message of its UTF-8. Default: by the type of `data`.
   * @throws {UsageError} When the connection is not open, or `data` has the
   *   wrong type.
   */
  send(data: MessageData, binary?: boolean): void {
    this.#requireOpen("send");
    if (typeof data === "string" && binary !== true) {
      if (this.#arena === undefined || !this.#textInto(data)) this.#queue(encodeTextFrame(data));
      return;
    }
    const payload = toBytes(data, "message");
    const opcode = binary === false ? Opcode.Text : Opcode.Binary;
    if (this.#arena === undefined || !this.#frameInto(opcode, payload)) this.#queue(encodeFrame(opcode, payload));
  }

  /** Encodes a final, unmasked data frame into the arena; `false` when it is too big for it. */
  #frameInto(opcode: number, payload: Uint8Array): boolean {
    const n = payload.length;
    const header = n < 126 ? 2 : 4;
    const at = this.#arenaAt(header + n);
    if (at < 0) return false;
    const bytes = this.#arena!.bytes;
    writeHeader(bytes, at + header, opcode, n, true, false, undefined);
    bytes.set(payload, at + header);
    this.#arenaCommit(at, header + n);
    return true;
  }

  /** Encodes a text frame into the arena (short ASCII directly); `false` when it is too big for it. */
  #textInto(text: string): boolean {
    const n = text.length;
    if (n < 126) {
      const at = this.#arenaAt(2 + n);
      if (at < 0) return false;
      if (writeAsciiText(this.#arena!.bytes, at, text, true, false)) {
        this.#arenaCommit(at, 2 + n);
        return true;
      }
    }
    // Room for a 2-byte length in front of the worst-case UTF-8 size: a
    // payload under 126 bytes then moves 2 bytes back, behind its short header.
    const max = 4 + 3 * n;
    const at = this.#arenaAt(max);
    if (at < 0) return false;
    const bytes = this.#arena!.bytes;
    const { written } = encoder.encodeInto(text, bytes.subarray(at + 4, at + max));
    let header = 4;
    if (written < 126) {
      bytes.copyWithin(at + 2, at + 4, at + 4 + written);
      header = 2;
    }
    writeHeader(bytes, at + header, Opcode.Text, written, true, false, undefined);
    this.#arenaCommit(at, header + written);
    return true;
  }

  /**
   * Where a frame of up to `max` bytes goes in the arena, or -1 when it is
   * too big for one. Ends the current run when the frame will not follow it.
   */
  #arenaAt(max: number): number {
    const arena = this.#arena!;
    if (max > arena.maxFrameBytes) return -1;
    arena.reserve(max);
    if (this.#runBytes !== undefined && (this.#runBytes !== arena.bytes || this.#runEnd !== arena.used)) this.#endRun();
    if (this.#held !== arena.generation) {
      this.#held = arena.generation;
      arena.holders++;
    }
    return arena.used;
  }

  /** `length` bytes were encoded into the arena at `at`. */
  #arenaCommit(at: number, length: number): void {
    const arena = this.#arena!;
    arena.used = at + length;
    if (this.#runBytes === undefined) {
      this.#runBytes = arena.bytes;
      this.#runStart = at;
    }
    this.#runEnd = at + length;
    this.#outputBytes += length;
  }

  /** The run of arena frames becomes one chunk of the output (already counted in outputBytes). */
  #endRun(): void {
    const run = this.#runBytes!.subarray(this.#runStart, this.#runEnd);
    this.#runBytes = undefined;
    if (this.#output === NO_OUTPUT) this.#output = [run];
    else this.#output.push(run);
  }

  /**
   * Queues a message compressed by the adapter (permessage-deflate): one
   * final frame with RSV1 set.
   *
   * @param payload The compressed payload, without the trailing `00 00 ff ff`.
   * @param binary Whether the message is binary (else text).
   * @throws {UsageError} When the connection is not open, or permessage-deflate
   *   was not negotiated (`ERR_NOT_NEGOTIATED`).
   */
  sendCompressed(payload: Uint8Array, binary: boolean): void {
    this.#requireOpen("send");
    if (this.#rare?.deflate === undefined) {
      throw new UsageError("ERR_NOT_NEGOTIATED", "Cannot send a compressed message: permessage-deflate was not negotiated");
    }
    this.#queue(encodeFrame(binary ? Opcode.Binary : Opcode.Text, payload, { rsv1: true }));
  }

  /**
   * Takes back the payload of a `compressed` event once the adapter has
   * inflated it, and returns the message it holds: the bytes of a binary
   * message, the text of a text message. Text is held to the same rule as
   * an uncompressed text message: invalid UTF-8 fails the connection with
   * 1007 (`WS_ERR_INVALID_UTF8`: a close frame is queued, `error` then
   * `close` are reported, as {@linkcode Engine.fail} does) and this returns
   * `undefined`. With `textAs: "bytes"`, valid text is returned as its bytes.
   *
   * @param data The inflated payload.
   * @param binary The `binary` of the `compressed` event.
   * @returns The message, or `undefined` when the text was not UTF-8.
   *
   * @example
   * ```ts
   * import { Engine } from "@duplex/ws/core";
   *
   * const engine = new Engine();
   * // After a `compressed` event whose payload inflated to these bytes:
   * const text = engine.inflated(new Uint8Array([0x68, 0x69]), false);
   * console.log(text); // "hi"
   * ```
   */
  inflated(data: Uint8Array, binary: boolean): string | Uint8Array | undefined {
    if (binary) return data;
    if (this.#textBytes) {
      if (isUtf8(data)) return data;
      this.fail(new ProtocolError("WS_ERR_INVALID_UTF8", CloseCode.InvalidPayload, "Invalid UTF-8 in a text message"));
      return undefined;
    }
    try {
      return decodeTextMessage(data);
    } catch (error) {
      this.fail(error as ProtocolError);
      return undefined;
    }
  }

  /**
   * Fails the connection for a fault of the peer that the adapter found
   * (a compressed message that does not inflate, is too big once inflated,
   * or is not UTF-8): queues a close frame with the error's code and reports
   * `error`, then `close`. Does nothing unless the connection is open or
   * closing.
   *
   * @param error The peer's fault, with its close code.
   */
  fail(error: ProtocolError): void {
    if (this.#state !== ReadyState.Open && this.#state !== ReadyState.Closing) return;
    this.#fail(error);
  }

  /**
   * Queues a message framed beforehand: the same frame bytes go to every
   * connection the message is sent to.
   *
   * @param message The prepared message.
   * @throws {UsageError} When the connection is not open.
   */
  sendPrepared(message: PreparedMessage): void {
    this.#requireOpen("send");
    this.#queue(message.frame as Uint8Array[]);
  }

  /**
   * Queues a ping; the peer answers with a `pong` event.
   *
   * @param data Up to 125 bytes of payload.
   * @throws {UsageError} When the connection is not open or the payload is over 125 bytes.
   */
  ping(data: MessageData = EMPTY): void {
    this.#control(Opcode.Ping, data, "ping");
  }

  /**
   * Queues an unsolicited pong (a one-way heartbeat).
   *
   * @param data Up to 125 bytes of payload.
   * @throws {UsageError} When the connection is not open or the payload is over 125 bytes.
   */
  pong(data: MessageData = EMPTY): void {
    this.#control(Opcode.Pong, data, "pong");
  }

  #control(opcode: number, data: MessageData, what: string): void {
    this.#requireOpen(what);
    const bytes = toBytes(data, `${what} payload`);
    if (bytes.length > 125) {
      throw new UsageError("ERR_CONTROL_TOO_LONG", `Invalid ${what} payload: ${bytes.length} bytes, at most 125`);
    }
    this.#queue(encodeFrame(opcode, bytes));
  }

  #requireOpen(what: string): void {
    if (this.#state === ReadyState.Open) return;
    if (this.#state === ReadyState.Connecting) {
      throw new UsageError("ERR_NOT_OPEN", `Cannot ${what}: the connection is not open yet`);
    }
    throw new UsageError("ERR_SEND_AFTER_CLOSE", `Cannot ${what}: the connection is closing or closed`);
  }

  /**
   * Starts the close handshake: queues a close frame and moves to `Closing`.
   * The `close` event comes when the peer answers, or with 1006 when the
   * adapter's close timer calls {@linkcode Engine.abort}. Calling it again,
   * or after the connection closed, does nothing. Before the handshake was
   * answered, it drops the connection without a response.
   *
   * @param code A close code that may be sent (1000–1003, 1007–1014, 3000–4999). Default 1000.
   * @param reason Up to 123 bytes of UTF-8.
   * @throws {UsageError} When the code may not be sent or the reason is too long.
   */
  close(code: number = CloseCode.Normal, reason = ""): void {
    const payload = closePayload(code, reason);
    if (this.#state === ReadyState.Connecting) return this.abort();
    if (this.#state !== ReadyState.Open) return;
    this.#queue(encodeFrame(Opcode.Close, payload));
    this.#move("localClose");
  }

  /**
   * Closes at once without a close handshake (the close timer fired, or the
   * application terminates the connection). Reports `close` with 1006 when
   * the connection was open; the adapter then destroys the socket.
   */
  abort(): void {
    const wasOpen = this.#state === ReadyState.Open || this.#state === ReadyState.Closing;
    if (this.#state === ReadyState.Closed) return;
    this.#parser = undefined;
    this.#move("abort");
    if (wasOpen) this.#emit({ type: "close", code: CloseCode.Abnormal, reason: "", wasClean: false });
  }

  /**
   * Takes the bytes to write, in order. Frames queued since the last call
   * come back together so the adapter can write them at once. With a
   * {@linkcode FrameArena}, frames encoded side by side come back as one
   * chunk, valid until the next send of any engine that shares the arena.
   *
   * @returns The chunks (possibly none).
   */
  takeOutput(): Uint8Array[] {
    if (this.#runBytes !== undefined) this.#endRun();
    if (this.#held !== -1) {
      // Handed out: the arena may reuse its memory once every holder has done so.
      if (this.#arena!.generation === this.#held) this.#arena!.holders--;
      this.#held = -1;
    }
    const out = this.#output;
    if (out.length === 0) return [];
    this.#output = NO_OUTPUT;
    this.#outputBytes = 0;
    return out;
  }

  #write(chunk: Uint8Array): void {
    if (this.#runBytes !== undefined) this.#endRun();
    if (this.#output === NO_OUTPUT) this.#output = [chunk];
    else this.#output.push(chunk);
    this.#outputBytes += chunk.length;
  }

  #queue(chunks: Uint8Array[]): void {
    for (const chunk of chunks) this.#write(chunk);
  }

  #emit(event: EngineEvent): void {
    if (this.#events === NO_EVENTS) this.#events = [event];
    else this.#events.push(event);
  }

  #shiftEvent(): EngineEvent | undefined {
    const event = this.#events[this.#eventIndex++];
    if (this.#eventIndex >= this.#events.length) {
      this.#events = NO_EVENTS;
      this.#eventIndex = 0;
    }
    return event;
  }

  #move(action: Transition): void {
    const next = transition(this.#state, action);
    if (next === undefined) {
      throw new UsageError("ERR_INVALID_STATE", `Invalid state: cannot ${action} in state ${this.#state}`);
    }
    if (this.#state === ReadyState.Open && this.#rare?.closedBy === undefined) {
      (this.#rare ??= new EngineRare()).closedBy = action === "peerClose" || action === "transportEnd" ? "peer" : "local";
    }
    this.#state = next;
  }
}

