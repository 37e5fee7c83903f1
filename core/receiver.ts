/**
 * The frame decoder: a resumable state machine (header → length → mask →
 * payload) over a list of chunks, which survives any split of its input, one
 * byte at a time included. It assembles fragmented messages, validates UTF-8
 * while the bytes arrive (so invalid text fails at the bad byte, mid-frame),
 * and enforces the size limits as soon as a frame header announces a length.
 *
 * Decoding is lazy: {@linkcode Receiver.next} parses only as far as the next
 * complete item, so a caller that answers each message before asking for the
 * next one keeps RFC order even when one chunk holds many frames.
 *
 * @module
 */

import { CloseCode, isValidWireCloseCode } from "./close_code.ts";
import { ProtocolError } from "./errors.ts";
import { allocBytes } from "./_alloc.ts";
import { xorCopy, xorKey } from "./_mask.ts";
import { Opcode } from "./frame.ts";
import { DEFAULT_LIMITS, type Limits } from "./options.ts";
import { isUtf8 } from "./_utf8.ts";

/**
 * One complete item decoded from the peer's bytes.
 *
 * @example
 * ```ts
 * import type { Received } from "@duplex/ws/core";
 *
 * function describe(item: Received): string {
 *   return item.type === "message" ? `message of ${item.data.length}` : item.type;
 * }
 * ```
 */
export type Received =
  | { type: "message"; data: string | Uint8Array; text?: true }
  | { type: "compressed"; data: Uint8Array; binary: boolean }
  | { type: "ping"; data: Uint8Array }
  | { type: "pong"; data: Uint8Array }
  | { type: "close"; code: number; reason: string };

/**
 * How a {@linkcode Receiver} decodes.
 *
 * @example
 * ```ts
 * import type { ReceiverOptions } from "@duplex/ws/core";
 *
 * const options: ReceiverOptions = { role: "server", maxMessageBytes: 1 << 20 };
 * ```
 */
export interface ReceiverOptions extends Partial<Pick<Limits, "maxMessageBytes" | "maxFrameBytes" | "maxFragments" | "minFragmentBytes">> {
  /** `"server"` decodes client frames (which must be masked); `"client"` the reverse. Default `"server"`. */
  role?: "server" | "client";
  /** Accept RSV1 on the first frame of a data message (a negotiated extension uses it). Default `false`. */
  allowRsv1?: boolean;
  /**
   * How text messages come out: `"string"` (the default) decoded, or
   * `"bytes"`: their UTF-8 payload, validated but not decoded, as a
   * `Uint8Array`, on an item marked `text: true`.
   */
  textAs?: "string" | "bytes";
}

/** The chunk list of every receiver with nothing buffered; never written to. */
const NO_CHUNKS: Uint8Array[] = [];

const HEADER = 0, LENGTH16 = 1, LENGTH64 = 2, MASK = 3, PAYLOAD = 4;

/**
 * Whole payloads up to this many bytes that lie in one chunk are copied out
 * of it, unmasked on the way, rather than taken as a view of it: a view
 * costs more than the copy at this size (a new view object, and on some
 * runtimes the first view of a freshly read chunk allocates its buffer
 * object too: 170 ns where measured, against 20 ns to copy 32 bytes).
 */
const COPY_BYTES = 128;

/**
 * Where a small text payload is unmasked to be decoded, shared by every
 * receiver (only ever used synchronously), with its views by length, made
 * on first use: decoding a small text frame allocates nothing but its
 * string.
 */
const smallText = new Uint8Array(COPY_BYTES);
const smallTextViews: Uint8Array[] = [];

/**
 * One decoder for every whole-payload decode (a complete text frame, a close
 * reason): a non-streaming fatal decode keeps no state between calls, so it
 * is shared. Only a message that arrives in pieces gets its own streaming
 * decoder, created on demand: an idle connection holds none.
 */
const wholeDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const looseDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Decodes a whole UTF-8 payload, throwing on invalid input. The replacing
 * decoder is several times faster than the fatal one on some runtimes (Node's
 * fatal path goes through ICU); it marks every invalid sequence with U+FFFD,
 * so a result without U+FFFD proves the input valid, and only a result with
 * one (which valid input may also hold) is decoded again strictly.
 */
function decodeWhole(bytes: Uint8Array): string {
  const text = looseDecoder.decode(bytes);
  return text.indexOf("\uFFFD") === -1 ? text : wholeDecoder.decode(bytes);
}

/**
 * The text of a whole text message whose payload arrived another way (a
 * compressed message, once inflated): the same check as a text frame's,
 * failing with the same error.
 *
 * @param bytes The payload.
 * @returns The text.
 * @throws {ProtocolError} `WS_ERR_INVALID_UTF8`, close code 1007, when it is not UTF-8.
 */
export function decodeTextMessage(bytes: Uint8Array): string {
  try {
    return decodeWhole(bytes);
  } catch {
    invalidUtf8();
  }
}

function invalidUtf8(): never {
  fail("WS_ERR_INVALID_UTF8", CloseCode.InvalidPayload, "Invalid UTF-8 in a text message");
}

/** The length of the UTF-8 sequence a byte starts (1 for ASCII and for what cannot start one). */
function sequenceLength(lead: number): number {
  return lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
}

/**
 * How many bytes at the end of `bytes` start a UTF-8 sequence that the
 * next piece of the message would complete (0 to 3).
 */
function incompleteTail(bytes: Uint8Array): number {
  const n = bytes.length;
  for (let k = 1; k <= 3 && k <= n; k++) {
    const b = bytes[n - k]!;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back
    return sequenceLength(b) > k ? k : 0;
  }
  return 0;
}

/**
 * Whether the bytes of an incomplete sequence can still become a valid
 * code point (RFC 3629): a lead from C2 to F4, and a second byte in the
 * range its lead allows (no overlong form, no surrogate, nothing above
 * U+10FFFF). Checking the start of a sequence now fails bad text as soon
 * as its bytes arrive, not when the sequence would have ended.
 */
function validPrefix(bytes: Uint8Array): boolean {
  const lead = bytes[0]!;
  if (lead < 0xc2 || lead > 0xf4) return false;
  if (bytes.length > 1) {
    const b = bytes[1]!;
    const [lo, hi] = lead === 0xe0 ? [0xa0, 0xbf] : lead === 0xed ? [0x80, 0x9f] : lead === 0xf0 ? [0x90, 0xbf] : lead === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    if (b < lo || b > hi) return false;
  }
  return bytes.length < 3 || (bytes[2]! & 0xc0) === 0x80;
}

function fail(code: string, closeCode: number, message: string): never {
  throw new ProtocolError(code, closeCode, message);
}

/**
 * Decodes frames from raw bytes. `push()` bytes as they arrive, then call
 * `next()` until it returns `undefined` (more bytes needed). A peer fault
 * throws a {@linkcode ProtocolError} carrying the close code to send; after
 * that the receiver must not be used again.
 *
 * `push()` takes ownership of the chunk: masked payloads are unmasked in
 * place, and binary messages may be views into it.
 *
 * @example
 * ```ts
 * import { Receiver } from "@duplex/ws/core";
 *
 * const receiver = new Receiver();
 * // A masked text frame "Hi" with the masking key 0x00000000.
 * receiver.push(new Uint8Array([0x81, 0x82, 0, 0, 0, 0, 0x48, 0x69]));
 * console.log(receiver.next()); // { type: "message", data: "Hi" }
 * console.log(receiver.next()); // undefined
 * ```
 */
export class Receiver {
  /** Unread chunks; the shared empty list while none are buffered, so that an idle receiver holds no array. */
  #chunks: Uint8Array[] = NO_CHUNKS;
  #offset = 0; // bytes of chunks[0] already read
  #buffered = 0;
  #state = HEADER;

  readonly #server: boolean;
  #allowRsv1: boolean;
  readonly #textBytes: boolean;
  #compressed = false; // the message in progress has RSV1 on its first frame
  readonly #maxMessageBytes: number;
  readonly #maxFrameBytes: number;
  readonly #maxFragments: number;
  readonly #minFragmentBytes: number;

  // The frame being decoded.
  #fin = false;
  #opcode = 0;
  #masked = false;
  #mask = 0; // the 4-byte key as one number
  #length = 0;
  #remaining = 0;

  // The message being assembled.
  #messageOpcode = 0;
  #messageBytes = 0;
  #fragments = 0;
  #binaryParts: Uint8Array[] | undefined;
  #text = "";
  #textStarted = false;
  #textTail: Uint8Array | undefined; // the start of a sequence split between pieces of the message

  /**
   * Creates a receiver.
   *
   * @param options Role, limits and whether RSV1 is allowed.
   */
  constructor(options: ReceiverOptions = {}) {
    this.#server = (options.role ?? "server") === "server";
    this.#allowRsv1 = options.allowRsv1 ?? false;
    this.#textBytes = options.textAs === "bytes";
    this.#maxMessageBytes = options.maxMessageBytes ?? DEFAULT_LIMITS.maxMessageBytes;
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_LIMITS.maxFrameBytes;
    this.#maxFragments = options.maxFragments ?? DEFAULT_LIMITS.maxFragments;
    this.#minFragmentBytes = options.minFragmentBytes ?? DEFAULT_LIMITS.minFragmentBytes;
  }

  /**
   * Accepts RSV1 on the first frame of data messages from now on: an
   * extension that uses it (permessage-deflate) was negotiated. Such a
   * message comes out as `compressed`, its payload joined but not decoded.
   */
  allowRsv1(): void {
    this.#allowRsv1 = true;
  }

  /** Bytes pushed and not yet decoded. */
  get bufferedAmount(): number {
    return this.#buffered;
  }

  /**
   * Adds bytes received from the peer.
   *
   * @param chunk The bytes; the receiver owns them from now on.
   */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.#buffered === 0) this.#chunks = [chunk];
    else this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /**
   * Decodes up to the next complete message or control frame.
   *
   * @returns The item, or `undefined` when more bytes are needed.
   * @throws {ProtocolError} When the peer broke the protocol or a limit.
   */
  next(): Received | undefined {
    for (;;) {
      switch (this.#state) {
        case HEADER:
          if (this.#buffered < 2) return undefined;
          this.#readHeader();
          break;
        case LENGTH16: {
          if (this.#buffered < 2) return undefined;
          const length = this.#byte(0) * 256 + this.#byte(1);
          this.#skip(2);
          this.#setLength(length);
          break;
        }
        case LENGTH64: {
          if (this.#buffered < 8) return undefined;
          if (this.#byte(0) & 0x80) {
            fail("WS_ERR_INVALID_LENGTH", CloseCode.ProtocolError, "Invalid frame length: the most significant bit is set");
          }
          const high = this.#word(0);
          const low = this.#word(4);
          this.#skip(8);
          // Lengths past 2^53 are not exact, but they are far past any limit anyway.
          this.#setLength(high * 0x1_0000_0000 + low);
          break;
        }
        case MASK:
          if (this.#buffered < 4) return undefined;
          this.#mask = this.#word(0);
          this.#skip(4);
          this.#state = PAYLOAD;
          break;
        default: {
          const item = this.#opcode >= 0x8 ? this.#readControl() : this.#readData();
          if (item !== null) return item;
          if (this.#state === PAYLOAD) return undefined;
        }
      }
    }
  }

  #readHeader(): void {
    const b0 = this.#byte(0), b1 = this.#byte(1);
    this.#skip(2);
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const control = (opcode & 0x08) !== 0;

    if ((b0 & 0x30) !== 0 || ((b0 & 0x40) !== 0 && (!this.#allowRsv1 || control || opcode === Opcode.Continuation))) {
      fail("WS_ERR_UNEXPECTED_RSV", CloseCode.ProtocolError, "Invalid frame: RSV bits set without a negotiated extension");
    }
    if (control) {
      if (opcode > Opcode.Pong) fail("WS_ERR_INVALID_OPCODE", CloseCode.ProtocolError, `Invalid frame: reserved opcode ${opcode}`);
      if (!fin) fail("WS_ERR_FRAGMENTED_CONTROL", CloseCode.ProtocolError, "Invalid frame: fragmented control frame");
      if ((b1 & 0x7f) > 125) fail("WS_ERR_CONTROL_TOO_LONG", CloseCode.ProtocolError, "Invalid frame: control frame payload over 125 bytes");
    } else if (opcode === Opcode.Continuation) {
      if (this.#messageOpcode === 0) fail("WS_ERR_UNEXPECTED_CONTINUATION", CloseCode.ProtocolError, "Invalid frame: continuation with no message to continue");
    } else if (opcode === Opcode.Text || opcode === Opcode.Binary) {
      if (this.#messageOpcode !== 0) fail("WS_ERR_EXPECTED_CONTINUATION", CloseCode.ProtocolError, "Invalid frame: new data frame inside a fragmented message");
      this.#compressed = (b0 & 0x40) !== 0;
    } else {
      fail("WS_ERR_INVALID_OPCODE", CloseCode.ProtocolError, `Invalid frame: reserved opcode ${opcode}`);
    }
    const masked = (b1 & 0x80) !== 0;
    if (masked !== this.#server) {
      if (this.#server) fail("WS_ERR_UNMASKED_FRAME", CloseCode.ProtocolError, "Invalid frame: client frame is not masked");
      fail("WS_ERR_MASKED_FRAME", CloseCode.ProtocolError, "Invalid frame: server frame is masked");
    }
    this.#fin = fin;
    this.#opcode = opcode;
    this.#masked = masked;
    const length = b1 & 0x7f;
    if (length === 126) this.#state = LENGTH16;
    else if (length === 127) this.#state = LENGTH64;
    else this.#setLength(length);
  }

  #setLength(length: number): void {
    if (this.#opcode < 0x8) {
      if (length > this.#maxFrameBytes) {
        fail("WS_ERR_FRAME_TOO_BIG", CloseCode.MessageTooBig, `Frame too big: ${length} bytes, the limit is ${this.#maxFrameBytes}`);
      }
      if (this.#messageBytes + length > this.#maxMessageBytes) {
        fail("WS_ERR_MESSAGE_TOO_BIG", CloseCode.MessageTooBig, `Message too big: over the limit of ${this.#maxMessageBytes} bytes`);
      }
      // Past the free count, each frame must be paid for with minFragmentBytes of payload.
      const extra = ++this.#fragments - this.#maxFragments;
      if (extra > 0 && extra * this.#minFragmentBytes > this.#messageBytes + length) {
        fail(
          "WS_ERR_TOO_MANY_FRAGMENTS",
          CloseCode.MessageTooBig,
          `Message too big: ${this.#fragments} fragments, over the limit of ${this.#maxFragments} plus one per ${this.#minFragmentBytes} bytes`,
        );
      }
      if (this.#opcode !== Opcode.Continuation) this.#messageOpcode = this.#opcode;
      this.#messageBytes += length;
    }
    this.#length = length;
    this.#remaining = length;
    this.#state = this.#masked ? MASK : PAYLOAD;
  }

  #readControl(): Received | null {
    if (this.#buffered < this.#length) return null;
    const data = this.#whole(this.#length);
    this.#state = HEADER;
    if (this.#opcode === Opcode.Ping) return { type: "ping", data };
    if (this.#opcode === Opcode.Pong) return { type: "pong", data };
    return this.#parseClose(data);
  }

  #parseClose(data: Uint8Array): Received {
    if (data.length === 0) return { type: "close", code: CloseCode.NoStatus, reason: "" };
    if (data.length === 1) fail("WS_ERR_INVALID_CLOSE_PAYLOAD", CloseCode.ProtocolError, "Invalid close frame: payload of 1 byte");
    const code = data[0]! * 256 + data[1]!;
    if (!isValidWireCloseCode(code)) fail("WS_ERR_INVALID_CLOSE_CODE", CloseCode.ProtocolError, `Invalid close frame: code ${code}`);
    let reason: string;
    try {
      reason = decodeWhole(data.subarray(2));
    } catch {
      fail("WS_ERR_INVALID_UTF8", CloseCode.InvalidPayload, "Invalid close frame: reason is not valid UTF-8");
    }
    return { type: "close", code, reason };
  }

  #readData(): Received | null {
    // A compressed message is joined as bytes; its text is checked once inflated.
    const text = this.#messageOpcode === Opcode.Text && !this.#compressed;
    // Whole unfragmented text frame at hand: one decode, no streaming state.
    if (text && this.#fin && !this.#textStarted && this.#remaining === this.#length && this.#buffered >= this.#length) {
      if (!this.#textBytes && this.#fitsCopy(this.#length)) {
        // A small one: unmasked into the shared buffer and decoded from there.
        const n = this.#length;
        this.#copyOut(n, smallText);
        let data: string;
        try {
          data = decodeWhole(smallTextViews[n] ??= smallText.subarray(0, n));
        } catch {
          invalidUtf8();
        }
        this.#state = HEADER;
        this.#resetMessage();
        return { type: "message", data };
      }
      const bytes = this.#whole(this.#length);
      if (this.#textBytes) {
        if (!isUtf8(bytes)) invalidUtf8();
        this.#state = HEADER;
        this.#resetMessage();
        return { type: "message", data: bytes, text: true };
      }
      let data: string;
      try {
        data = decodeWhole(bytes);
      } catch {
        invalidUtf8();
      }
      this.#state = HEADER;
      this.#resetMessage();
      return { type: "message", data };
    }
    if (text) {
      // Validate whatever part of the payload has arrived, so bad UTF-8 fails at once.
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, this.#buffered);
        if (take === 0) return null;
        const bytes = this.#take(take, this.#length - this.#remaining);
        this.#remaining -= take;
        this.#textStarted = true;
        if (this.#textBytes) this.#checkPiece(bytes);
        else this.#decodePiece(bytes);
        if (this.#remaining > 0) return null;
      }
    } else {
      if (this.#buffered < this.#remaining) return null;
      if (this.#remaining > 0) {
        // All of the frame at once: from its first byte, so the key starts at 0.
        const bytes = this.#whole(this.#remaining);
        this.#remaining = 0;
        (this.#binaryParts ??= []).push(bytes);
      }
    }
    this.#state = HEADER;
    if (!this.#fin) return null;
    let data: string | Uint8Array;
    if (text) {
      if (this.#textTail !== undefined) invalidUtf8(); // a sequence cut by the end of the message
      if (this.#textBytes) {
        data = concat(this.#binaryParts ?? [], this.#messageBytes);
        this.#resetMessage();
        return { type: "message", data, text: true };
      }
      data = this.#text;
    } else {
      data = concat(this.#binaryParts ?? [], this.#messageBytes);
      if (this.#compressed) {
        const binary = this.#messageOpcode === Opcode.Binary;
        this.#resetMessage();
        return { type: "compressed", data, binary };
      }
    }
    this.#resetMessage();
    return { type: "message", data };
  }

  #resetMessage(): void {
    this.#messageOpcode = 0;
    this.#compressed = false;
    this.#messageBytes = 0;
    this.#fragments = 0;
    this.#binaryParts = undefined;
    this.#text = "";
    this.#textStarted = false;
    this.#textTail = undefined;
  }

  /**
   * Decodes the next piece of a text message, as it arrives: bad UTF-8
   * fails at once. Each piece is decoded whole, up to a sequence its end
   * splits, whose bytes wait for the next piece; a streaming decoder would
   * do the same, but is several times slower on some runtimes (Node sends
   * it through ICU).
   */
  #decodePiece(bytes: Uint8Array): void {
    try {
      this.#takePiece(bytes, true);
    } catch {
      invalidUtf8();
    }
  }

  /**
   * Checks the next piece of a text message delivered as bytes, as it
   * arrives, and keeps the piece: the same rule as {@linkcode #decodePiece}
   * (a sequence the piece's end splits is checked when it completes, its
   * start at once), without building a string.
   */
  #checkPiece(bytes: Uint8Array): void {
    (this.#binaryParts ??= []).push(bytes);
    this.#takePiece(bytes, false);
  }

  /**
   * The rule both share: a sequence a piece's end splits waits in
   * `#textTail` (its start checked at once) and is completed by the next
   * piece; every whole run is decoded onto the text (`decode`) or only
   * checked.
   */
  #takePiece(bytes: Uint8Array, decode: boolean): void {
    const tail = this.#textTail;
    if (tail !== undefined) {
      const length = sequenceLength(tail[0]!);
      const take = Math.min(length - tail.length, bytes.length);
      const joined = new Uint8Array(tail.length + take);
      joined.set(tail);
      joined.set(bytes.subarray(0, take), tail.length);
      bytes = bytes.subarray(take);
      if (joined.length < length) {
        if (!validPrefix(joined)) invalidUtf8();
        this.#textTail = joined;
        return;
      }
      this.#textTail = undefined;
      this.#takeWhole(joined, decode);
    }
    const cut = bytes.length - incompleteTail(bytes);
    if (cut < bytes.length) {
      const rest = bytes.slice(cut);
      if (!validPrefix(rest)) invalidUtf8();
      this.#textTail = rest;
    }
    if (cut > 0) this.#takeWhole(cut === bytes.length ? bytes : bytes.subarray(0, cut), decode);
  }

  #takeWhole(bytes: Uint8Array, decode: boolean): void {
    if (decode) this.#text += decodeWhole(bytes);
    else if (!isUtf8(bytes)) invalidUtf8();
  }

  /** Whether the next `n` bytes (1 to COPY_BYTES) are all in the first chunk, to be copied. */
  #fitsCopy(n: number): boolean {
    return n > 0 && n <= COPY_BYTES && this.#offset + n <= this.#chunks[0]!.length;
  }

  /**
   * Takes the whole payload of the frame at hand (`n` bytes, buffered),
   * unmasked: a copy when it is small and in one chunk, else a view (a copy
   * when it spans chunks).
   */
  #whole(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    if (this.#fitsCopy(n)) {
      const out = new Uint8Array(n);
      this.#copyOut(n, out);
      return out;
    }
    return this.#take(n, 0);
  }

  /**
   * Copies the next `n` bytes, the start of a payload, into `out`, unmasked
   * on the way, and marks them read. They must all be in the first chunk.
   */
  #copyOut(n: number, out: Uint8Array): void {
    const chunk = this.#chunks[0]!;
    const start = this.#offset;
    const k = this.#masked ? this.#mask : 0;
    const m0 = k >>> 24, m1 = (k >>> 16) & 0xff, m2 = (k >>> 8) & 0xff, m3 = k & 0xff;
    const whole = n & ~3;
    let i = 0;
    for (; i < whole; i += 4) {
      const j = start + i;
      out[i] = chunk[j]! ^ m0;
      out[i + 1] = chunk[j + 1]! ^ m1;
      out[i + 2] = chunk[j + 2]! ^ m2;
      out[i + 3] = chunk[j + 3]! ^ m3;
    }
    if (i < n) out[i] = chunk[start + i]! ^ m0;
    if (i + 1 < n) out[i + 1] = chunk[start + i + 1]! ^ m1;
    if (i + 2 < n) out[i + 2] = chunk[start + i + 2]! ^ m2;
    this.#skip(n);
  }

  /** The unread byte at position `i` (`i` < buffered), without taking it. */
  #byte(i: number): number {
    let j = this.#offset + i;
    let k = 0;
    let chunk = this.#chunks[0]!;
    while (j >= chunk.length) {
      j -= chunk.length;
      chunk = this.#chunks[++k]!;
    }
    return chunk[j]!;
  }

  /** The unread bytes `i` to `i + 3` as one big-endian unsigned number. */
  #word(i: number): number {
    return ((this.#byte(i) << 24) | (this.#byte(i + 1) << 16) | (this.#byte(i + 2) << 8) | this.#byte(i + 3)) >>> 0;
  }

  /** Marks `n` unread bytes as read, dropping the chunks that are used up. */
  #skip(n: number): void {
    this.#buffered -= n;
    let offset = this.#offset + n;
    while (offset > 0 && offset >= this.#chunks[0]!.length) {
      offset -= this.#chunks[0]!.length;
      this.#chunks.shift();
    }
    this.#offset = offset;
    if (this.#buffered === 0) this.#chunks = NO_CHUNKS;
  }

  /**
   * Takes `n` bytes of the frame's payload off the front, unmasked (`at`:
   * their position in the payload): a view unmasked in place when they lie
   * in one chunk, else one copy that unmasks as it goes.
   */
  #take(n: number, at: number): Uint8Array {
    if (!this.#masked) return this.#consume(n);
    if (this.#offset + n <= this.#chunks[0]!.length) {
      const out = this.#consume(n);
      xorKey(out, this.#mask, at);
      return out;
    }
    return this.#join(n, true, at);
  }

  /** Takes `n` bytes off the front as a view, copying only when they span chunks. */
  #consume(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    const start = this.#offset;
    if (start + n <= first.length) {
      const out = start === 0 && n === first.length ? first : first.subarray(start, start + n);
      this.#skip(n);
      return out;
    }
    return this.#join(n, false, 0);
  }

  /**
   * Copies the next `n` bytes, which span chunks, into new bytes, and marks
   * them read; unmasked on the way when `unmask` (`at`: their position in
   * the payload, for the key).
   */
  #join(n: number, unmask: boolean, at: number): Uint8Array {
    const out = allocBytes(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0]!;
      const take = Math.min(chunk.length - this.#offset, n - filled);
      const piece = chunk.subarray(this.#offset, this.#offset + take);
      if (unmask) xorCopy(piece, out, filled, this.#mask, at + filled);
      else out.set(piece, filled);
      filled += take;
      this.#skip(take);
    }
    return out;
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = allocBytes(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
