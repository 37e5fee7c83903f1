// A raw WebSocket test client over `node:net` (Node, Deno and Bun): it sends
// any bytes (masked or not, any opcode, RSV, FIN or length, chopped with
// delays) and records what the server sends, frame by frame, together with
// when the server closed TCP, so that a test can check "close 1002, then FIN,
// nothing after the close frame". Every wait is bounded.
//
// It also speaks permessage-deflate (RFC 7692) when asked to (`deflate` in
// {@linkcode ConnectOptions}): it validates the server's response strictly,
// as a client must, inflates the server's compressed messages with exactly
// the negotiated window and context rules (so a server that breaks them fails
// to inflate), and compresses its own messages on demand. zlib runs as
// streams (`DeflateRaw`/`InflateRaw` with `Z_SYNC_FLUSH`): the sync calls
// cannot keep a context on Deno, whose `deflateRawSync` ignores `dictionary`.
import { createHash, randomBytes } from "node:crypto";
import { connect as netConnect, type Socket } from "node:net";
import { constants as zlibConstants, createDeflateRaw, createInflateRaw, deflateRawSync, type DeflateRaw, type InflateRaw } from "node:zlib";

/** Frame opcodes. */
export const Op = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** How long a wait lasts unless told otherwise, in ms. */
export const WAIT_MS = 2000;

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** The `Sec-WebSocket-Accept` value for `key` (RFC 6455 §4.2.2). */
export function acceptFor(key: string): string {
  return createHash("sha1").update(key + GUID).digest("base64");
}

/** SHA-1 of bytes, hex: compares big payloads cheaply on every runtime. */
export function sha1(data: Uint8Array): string {
  return createHash("sha1").update(data).digest("hex");
}

/** Bytes of a string (UTF-8), or the bytes themselves. */
export function toBytes(data: string | Uint8Array | number[]): Uint8Array {
  if (typeof data === "string") return encoder.encode(data);
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}

/** Bytes from a hex string such as `"cebae1"`. */
export function hex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** `pattern` repeated to exactly `length` bytes (Autobahn's `payload_len`). */
export function repeat(pattern: string | Uint8Array, length: number): Uint8Array {
  const unit = toBytes(pattern);
  const out = new Uint8Array(length);
  if (length === 0) return out;
  out.set(unit.subarray(0, Math.min(unit.length, length)));
  for (let filled = unit.length; filled < length; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, length - filled));
  return out;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A frame as the client builds it. */
export interface FrameSpec {
  opcode: number;
  payload?: string | Uint8Array;
  /** Default `true`. */
  fin?: boolean;
  /** RSV1..RSV3 as a number 0..7. Default 0. */
  rsv?: number;
  /** The masking key; `false` sends the frame unmasked. Default: a random key. */
  mask?: Uint8Array | false;
  /** Payload length written in the header, when it must differ from the payload's. */
  declaredLength?: number;
}

/** Encodes a client frame (masked unless `mask: false`). */
export function encodeFrame(spec: FrameSpec): Uint8Array {
  const payload = toBytes(spec.payload ?? EMPTY);
  const { fin = true, rsv = 0 } = spec;
  const key = spec.mask === false ? undefined : spec.mask ?? new Uint8Array(randomBytes(4));
  const length = spec.declaredLength ?? payload.length;
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const headerBytes = 2 + lengthBytes + (key ? 4 : 0);
  const out = new Uint8Array(headerBytes + payload.length);
  out[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (spec.opcode & 0x0f);
  const maskBit = key ? 0x80 : 0;
  if (lengthBytes === 0) out[1] = maskBit | length;
  else if (lengthBytes === 2) {
    out[1] = maskBit | 126;
    out[2] = length >>> 8;
    out[3] = length & 0xff;
  } else {
    out[1] = maskBit | 127;
    const view = new DataView(out.buffer);
    view.setUint32(2, Math.floor(length / 0x1_0000_0000));
    view.setUint32(6, length >>> 0);
  }
  out.set(payload, headerBytes);
  if (key) {
    out.set(key, headerBytes - 4);
    for (let i = 0; i < payload.length; i++) out[headerBytes + i] = out[headerBytes + i]! ^ key[i & 3]!;
  }
  return out;
}

/** A close frame payload: a 2-byte code and a reason. */
export function closePayload(code: number, reason: string | Uint8Array = ""): Uint8Array {
  return concat([new Uint8Array([(code >>> 8) & 0xff, code & 0xff]), toBytes(reason)]);
}

/** A frame the server sent. */
export interface Frame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
}

/** What happened on the wire, in order; `at` is `performance.now()`. */
export type WireEvent =
  | { kind: "frame"; at: number; frame: Frame }
  /** The server sent FIN (TCP half-close): its `end` event. */
  | { kind: "fin"; at: number }
  /** The socket is closed for good. */
  | { kind: "closed"; at: number; hadError: boolean }
  | { kind: "error"; at: number; message: string }
  /** Bytes that are not a valid server frame (or a response we could not parse). */
  | { kind: "invalid"; at: number; reason: string };

/** The server's HTTP answer to the opening handshake. */
export interface HttpResponse {
  status: number;
  reason: string;
  version: string;
  /** Lower-cased names; repeated fields joined with ", ". */
  headers: Record<string, string>;
  /** Every header line as sent. */
  rawHeaders: [string, string][];
  /** The body (by Content-Length) of a non-101 answer. */
  body: string;
}

/**
 * What the server sent, the way Autobahn records it. On a connection where
 * permessage-deflate was negotiated, messages also say whether they arrived
 * compressed (RSV1) and their payload size on the wire (`data` is inflated).
 */
export type Received =
  | { type: "message"; binary: boolean; data: Uint8Array; compressed?: boolean; wireBytes?: number }
  | { type: "ping"; data: Uint8Array }
  | { type: "pong"; data: Uint8Array };

/** How to open a connection. */
export interface ConnectOptions {
  /** Request target. Default `"/"`. */
  path?: string;
  /** Default `"GET"`. */
  method?: string;
  /** Default `"1.1"`. */
  httpVersion?: string;
  /** Default: 16 random bytes in base64. */
  key?: string;
  /**
   * Headers to add or override, in order (case-insensitive names); `null`
   * drops one of the defaults (Host, Upgrade, Connection, Sec-WebSocket-Key,
   * Sec-WebSocket-Version).
   */
  headers?: Record<string, string | null>;
  /** Send exactly this request instead of building one. */
  rawRequest?: string | Uint8Array;
  /** Bytes to send in the same write as the request (pipelined frames). */
  trailing?: Uint8Array;
  /** Reply to the server's close frame with a close frame (what Autobahn does). Default `true`. */
  echoClose?: boolean;
  /** Answer the server's FIN with ours at once. Default `true`; else call `socket.end()` yourself. */
  answerFin?: boolean;
  /** Bound on connecting and reading the response. Default {@linkcode WAIT_MS}. */
  timeoutMs?: number;
  /** Offer permessage-deflate (sent as `Sec-WebSocket-Extensions` unless `headers` sets that field). */
  deflate?: DeflateOptions;
}

/** How to offer and use permessage-deflate (RFC 7692). */
export interface DeflateOptions {
  /**
   * The raw `Sec-WebSocket-Extensions` value to send, e.g.
   * `"permessage-deflate; client_no_context_takeover; client_max_window_bits"`
   * (Autobahn's default offer). Several offers are separated by commas.
   */
  offer: string;
  /**
   * Compress our messages without context takeover even when the response
   * allows it. Default `false`: like Autobahn's client, we keep the context
   * unless the response has `client_no_context_takeover` (Autobahn offers
   * `client_no_context_takeover` as "I accept it", and still uses context
   * takeover when the server does not ask for it).
   */
  noContextTakeover?: boolean;
  /** zlib level for our messages. Default zlib's (6). */
  level?: number;
}

/** How to write bytes. */
export interface SendOptions {
  /** Write in pieces of this many bytes, each in its own write. */
  chop?: number;
  /**
   * Pause after each piece, in ms (0: a timer turn). Default: none, each piece
   * still waits for its write callback, so pieces leave as separate writes.
   */
  delayMs?: number;
}

/** A closing handshake as seen by the client. */
export interface CloseResult {
  /** The code, or `null` for an empty close payload. */
  code: number | null;
  reason: string;
  /** When the close frame and the FIN arrived. */
  closeAt: number;
  finAt: number;
}

/** A raw client connection. Open it with {@linkcode WsClient.connect}. */
export class WsClient {
  readonly socket: Socket;
  readonly key: string;
  readonly events: WireEvent[] = [];
  response: HttpResponse | undefined;
  /** When the test sent a close frame (`performance.now()`), if it did. */
  sentCloseAt: number | undefined;
  /** When this client echoed the server's close frame, if it did (the server closed first). */
  echoedCloseAt: number | undefined;
  /** The `Sec-WebSocket-Extensions` value this client sent, if any. */
  readonly offer: string | undefined;
  /** What permessage-deflate the 101 response negotiated, or `undefined` (declined, not offered, or invalid). */
  deflate: DeflateParams | undefined;
  /**
   * Why the response's `Sec-WebSocket-Extensions` is invalid for our offer
   * (the client then fails the connection: an `invalid` event, no frame is read).
   */
  negotiationError: string | undefined;

  readonly #echoClose: boolean;
  #head: Uint8Array[] = []; // bytes before the end of the HTTP response
  #pending: HttpResponse | undefined; // the response head, while its body arrives
  #headDone = false;
  #bodyLeft = 0;
  #body: Uint8Array[] = [];
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #broken = false;
  #waiters = new Set<() => void>();
  #finished = false; // fin or closed seen
  #connected = false;
  #writes = new Set<() => void>(); // resolvers of writes in flight
  // permessage-deflate
  readonly #deflateOptions: DeflateOptions | undefined;
  #deflater: DeflateRaw | undefined; // kept across messages while we use context takeover
  #inflater: InflateRaw | undefined; // idem for the server's messages
  #deflateChain: Promise<unknown> = Promise.resolve(); // our compressions, in order
  #inflateChain: Promise<void> = Promise.resolve(); // the server's messages, inflated in order
  #inflating = 0;
  #inflated = new Map<Frame, { data: Uint8Array; wireBytes: number }>(); // by the message's last frame
  #inMessage: { compressed: boolean; parts: Uint8Array[] } | undefined; // a server message being received

  private constructor(socket: Socket, key: string, echoClose: boolean, answerFin: boolean, options: ConnectOptions = {}) {
    this.socket = socket;
    this.key = key;
    this.#echoClose = echoClose;
    this.#deflateOptions = options.deflate;
    this.offer = offeredExtensions(options);
    socket.on("connect", () => {
      this.#connected = true;
      for (const waiter of [...this.#waiters]) waiter();
    });
    // A copy: nothing may change what was received once it is recorded.
    socket.on("data", (chunk: Uint8Array) => this.#onData(new Uint8Array(chunk)));
    socket.on("end", () => {
      this.#push({ kind: "fin", at: performance.now() });
      // Answer the server's FIN with ours (the socket is half-open).
      if (answerFin) socket.end();
    });
    socket.on("error", (err: Error) => this.#push({ kind: "error", at: performance.now(), message: err.message }));
    socket.on("close", (hadError: boolean) => {
      for (const resolve of this.#writes) resolve();
      this.#writes.clear();
      this.#push({ kind: "closed", at: performance.now(), hadError });
    });
  }

  /**
   * Connects, sends the opening handshake and reads the response head (and
   * the body of a non-101 answer). Frames may follow a 101.
   */
  static async connect(url: string, options: ConnectOptions = {}): Promise<WsClient> {
    const { hostname, port } = new URL(url);
    const timeoutMs = options.timeoutMs ?? WAIT_MS;
    const key = options.key ?? randomBytes(16).toString("base64");
    const socket = netConnect({ host: hostname.replace(/^\[|\]$/g, ""), port: Number(port), allowHalfOpen: true });
    const client = new WsClient(socket, key, options.echoClose ?? true, options.answerFin ?? true, options);
    try {
      await client.#open(url, options, timeoutMs);
    } catch (err) {
      socket.destroy();
      throw err;
    }
    return client;
  }

  async #open(url: string, options: ConnectOptions, timeoutMs: number): Promise<void> {
    await this.waitFor(
      () => this.#connected || this.#finished || this.events.some((e) => e.kind === "error"),
      `TCP connection to ${url}`,
      timeoutMs,
    );
    if (!this.#connected) throw new Error(`Cannot connect to ${url}: ${this.describe()}`);
    this.socket.setNoDelay(true);
    const request = toBytes(options.rawRequest ?? buildRequest(url, this.key, options));
    await this.send(options.trailing ? concat([request, options.trailing]) : request);
    await this.waitFor(() => this.response !== undefined || this.#finished || this.#broken, "the HTTP response", timeoutMs);
    if (this.response === undefined) throw new Error(`No HTTP response: ${this.describe()}`);
  }

  // ---- receiving ----

  #push(event: WireEvent): void {
    if (event.kind === "fin" || event.kind === "closed") this.#finished = true;
    this.events.push(event);
    for (const waiter of [...this.#waiters]) waiter();
  }

  #onData(chunk: Uint8Array): void {
    if (this.#broken) return;
    if (!this.#headDone) return this.#onHeadData(chunk);
    if (this.#bodyLeft > 0) {
      const take = Math.min(this.#bodyLeft, chunk.length);
      this.#body.push(chunk.subarray(0, take));
      this.#bodyLeft -= take;
      chunk = chunk.subarray(take);
      if (this.#bodyLeft === 0) this.#finishResponse();
      if (chunk.length === 0) return;
    }
    if (this.response?.status !== 101) {
      this.#fail(`${chunk.length} bytes after the HTTP ${this.response?.status} response`);
      return;
    }
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    this.#parseFrames();
  }

  #onHeadData(chunk: Uint8Array): void {
    this.#head.push(chunk);
    const all = concat(this.#head);
    let end = -1;
    for (let i = 0; i + 3 < all.length; i++) {
      if (all[i] === 13 && all[i + 1] === 10 && all[i + 2] === 13 && all[i + 3] === 10) {
        end = i;
        break;
      }
    }
    if (end < 0) {
      if (all.length > 65536) this.#fail("response head over 64 KiB");
      return;
    }
    this.#head = [];
    this.#headDone = true;
    let text = "";
    for (let i = 0; i < end; i++) text += String.fromCharCode(all[i]!);
    const [statusLine = "", ...lines] = text.split("\r\n");
    const match = /^HTTP\/(\d\.\d) (\d{3}) ?(.*)$/.exec(statusLine);
    if (match === null) {
      this.#fail(`invalid status line ${JSON.stringify(statusLine)}`);
      return;
    }
    const headers: Record<string, string> = {};
    const rawHeaders: [string, string][] = [];
    for (const line of lines) {
      const colon = line.indexOf(":");
      if (colon <= 0) {
        this.#fail(`invalid header line ${JSON.stringify(line)}`);
        return;
      }
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).trim();
      rawHeaders.push([name, value]);
      const lower = name.toLowerCase();
      headers[lower] = lower in headers ? `${headers[lower]}, ${value}` : value;
    }
    this.#pending = { status: Number(match[2]), reason: match[3] ?? "", version: match[1]!, headers, rawHeaders, body: "" };
    this.#bodyLeft = this.#pending.status === 101 ? 0 : Number(headers["content-length"] ?? 0);
    const rest = all.subarray(end + 4);
    if (this.#bodyLeft === 0) this.#finishResponse();
    if (rest.length > 0) this.#onData(rest.slice());
  }

  #finishResponse(): void {
    const response = this.#pending!;
    response.body = new TextDecoder().decode(concat(this.#body));
    this.response = response;
    if (response.status === 101) {
      const result = checkDeflateResponse(this.offer, response.headers["sec-websocket-extensions"]);
      if (typeof result === "string") {
        this.negotiationError = result;
        this.#fail(`Sec-WebSocket-Extensions: ${result}`);
      } else this.deflate = result;
    }
    this.#notify();
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  #fail(reason: string): void {
    this.#broken = true;
    this.#push({ kind: "invalid", at: performance.now(), reason });
  }

  #peek(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = concat(this.#chunks);
    this.#chunks = [out];
    return out.subarray(0, n);
  }

  #take(n: number): Uint8Array {
    const out = this.#peek(n).slice();
    this.#buffered -= n;
    let left = n;
    while (left > 0) {
      const first = this.#chunks[0]!;
      if (first.length <= left) {
        left -= first.length;
        this.#chunks.shift();
      } else {
        this.#chunks[0] = first.subarray(left);
        left = 0;
      }
    }
    return out;
  }

  #parseFrames(): void {
    for (;;) {
      if (this.#broken || this.#buffered < 2) return;
      const head = this.#peek(2);
      const b0 = head[0]!, b1 = head[1]!;
      let headerBytes = 2;
      let length = b1 & 0x7f;
      if (length === 126) headerBytes = 4;
      else if (length === 127) headerBytes = 10;
      const masked = (b1 & 0x80) !== 0;
      if (masked) headerBytes += 4;
      if (this.#buffered < headerBytes) return;
      const header = this.#peek(headerBytes);
      if (length === 126) length = header[2]! * 256 + header[3]!;
      else if (length === 127) {
        const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
        length = view.getUint32(2) * 0x1_0000_0000 + view.getUint32(6);
      }
      if (this.#buffered < headerBytes + length) return;
      this.#take(headerBytes);
      const payload = length === 0 ? new Uint8Array(0) : this.#take(length);
      if (masked) {
        const key = header.subarray(headerBytes - 4, headerBytes);
        for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i & 3]!;
      }
      const frame: Frame = { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload };
      const problem = checkServerFrame(frame, this.deflate !== undefined) ?? this.#trackMessage(frame);
      this.#push({ kind: "frame", at: performance.now(), frame });
      if (problem !== undefined) {
        this.#fail(problem);
        return;
      }
      if (frame.opcode === Op.Close && this.#echoClose && this.sentCloseAt === undefined && this.echoedCloseAt === undefined) {
        // Echo the code as a client does; the server must ignore it.
        this.echoedCloseAt = performance.now();
        void this.send(encodeFrame({ opcode: Op.Close, payload: frame.payload.subarray(0, 2) }));
      }
    }
  }

  /**
   * With permessage-deflate: checks the order of data frames and, at the
   * last frame of a compressed message, queues its inflation.
   */
  #trackMessage(frame: Frame): string | undefined {
    if (this.deflate === undefined || frame.opcode >= 8) return undefined;
    if (frame.opcode !== Op.Continuation) {
      if (this.#inMessage !== undefined) return "the server started a message inside a fragmented message";
      this.#inMessage = { compressed: (frame.rsv & 4) !== 0, parts: [] };
    } else if (this.#inMessage === undefined) return "the server sent a continuation frame outside a fragmented message";
    const message = this.#inMessage;
    message.parts.push(frame.payload);
    if (!frame.fin) return undefined;
    this.#inMessage = undefined;
    if (message.compressed) {
      const payload = concat(message.parts);
      this.#inflating++;
      this.#inflateChain = this.#inflateChain.then(async () => {
        try {
          if (!this.#broken) this.#inflated.set(frame, { data: await this.#inflate(payload), wireBytes: payload.length });
        } catch (err) {
          this.#fail(`cannot inflate the server's message (${payload.length} bytes): ${(err as Error).message}`);
        } finally {
          this.#inflating--;
          this.#notify();
        }
      });
    }
    return undefined;
  }

  /** Inflates one message of the server with the negotiated window and context rules. */
  #inflate(payload: Uint8Array): Promise<Uint8Array> {
    const { serverMaxWindowBits = 15, serverNoContextTakeover } = this.deflate!;
    if (this.#inflater === undefined || serverNoContextTakeover) {
      this.#inflater?.close();
      // zlib checks a distance against the window only when it reaches before
      // its current output chunk: with a window under 32 KiB, output chunks of
      // a quarter window make it fail a server that uses a larger window than
      // agreed (to within a quarter window; smaller chunks cost too much time on Node).
      const chunkSize = serverMaxWindowBits < 15 ? Math.max(64, 2 ** serverMaxWindowBits / 4) : undefined;
      this.#inflater = createInflateRaw({ windowBits: serverMaxWindowBits, chunkSize });
    }
    return runZlib(this.#inflater, concat([payload, DEFLATE_TRAILER]));
  }

  // ---- sending ----

  /** Writes bytes, whole or chopped; resolves when written (or the socket failed). */
  async send(bytes: Uint8Array, options: SendOptions = {}): Promise<void> {
    const { chop, delayMs } = options;
    if (chop === undefined || chop >= bytes.length) {
      await this.#write(bytes);
      if (delayMs !== undefined) await delay(delayMs);
      return;
    }
    for (let i = 0; i < bytes.length; i += chop) {
      await this.#write(bytes.subarray(i, i + chop));
      if (delayMs !== undefined) await delay(delayMs);
    }
  }

  #write(bytes: Uint8Array): Promise<void> {
    if (this.socket.destroyed || this.socket.writableEnded) return Promise.resolve();
    // Resolves on the write callback, or when the socket closes without calling it.
    return new Promise((resolve) => {
      const done = () => {
        this.#writes.delete(done);
        resolve();
      };
      this.#writes.add(done);
      this.socket.write(bytes, done);
    });
  }

  /** Sends one frame (see {@linkcode FrameSpec}), whole or chopped. */
  async sendFrame(spec: FrameSpec, options: SendOptions = {}): Promise<void> {
    if (spec.opcode === Op.Close) this.sentCloseAt ??= performance.now();
    await this.send(encodeFrame(spec), options);
  }

  /** Sends frames; each its own write when `frameWise` (Autobahn's `sync`). */
  async sendFrames(specs: FrameSpec[], options: SendOptions & { frameWise?: boolean } = {}): Promise<void> {
    if (options.chop !== undefined || options.frameWise) {
      for (const spec of specs) await this.sendFrame(spec, options);
      return;
    }
    for (const spec of specs) if (spec.opcode === Op.Close) this.sentCloseAt ??= performance.now();
    await this.send(concat(specs.map(encodeFrame)));
  }

  /** Sends a close frame: a code and a reason, or an empty payload when `code` is undefined. */
  sendClose(code?: number, reason: string | Uint8Array = ""): Promise<void> {
    return this.sendFrame({ opcode: Op.Close, payload: code === undefined ? EMPTY : closePayload(code, reason) });
  }

  /**
   * Compresses one message as the negotiated permessage-deflate says (our
   * window, our context unless `client_no_context_takeover`), ending with a
   * sync flush whose `00 00 ff ff` is removed (RFC 7692 §7.2.1). The context
   * moves on, so send what this returns, in order.
   */
  compress(data: string | Uint8Array): Promise<Uint8Array> {
    const negotiated = this.deflate;
    if (negotiated === undefined) return Promise.reject(new Error("permessage-deflate was not negotiated"));
    const { clientMaxWindowBits = 15 } = negotiated;
    const fresh = negotiated.clientNoContextTakeover || this.#deflateOptions?.noContextTakeover === true;
    const bytes = toBytes(data);
    const run = this.#deflateChain.then(async () => {
      const options = { windowBits: clientMaxWindowBits, level: this.#deflateOptions?.level };
      const stream = fresh ? createDeflateRaw(options) : (this.#deflater ??= createDeflateRaw(options));
      try {
        return stripTrailer(await runZlib(stream, bytes));
      } finally {
        if (fresh) stream.close();
      }
    });
    this.#deflateChain = run.catch(() => {});
    return run;
  }

  /**
   * Sends one compressed message: RSV1 on its first frame only, the
   * compressed payload cut into frames of `fragmentSize` bytes when given
   * (Autobahn's auto-fragmentation applies to the compressed bytes). All
   * frames go in one write unless `chop`/`frameWise`. Returns the compressed size.
   */
  async sendCompressed(
    data: string | Uint8Array,
    options: SendOptions & { binary?: boolean; fragmentSize?: number; frameWise?: boolean } = {},
  ): Promise<number> {
    const payload = await this.compress(data);
    const opcode = options.binary ? Op.Binary : Op.Text;
    await this.sendFrames(fragment(opcode, payload, options.fragmentSize, 4), options);
    return payload.length;
  }

  // ---- waiting and checking ----

  /** Resolves when `check()` is true; rejects after `timeoutMs` with what was seen so far. */
  waitFor(check: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.#waiters.delete(waiter);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}; seen: ${this.describe()}`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  /** The frames received so far. */
  get frames(): Frame[] {
    const out: Frame[] = [];
    for (const e of this.events) if (e.kind === "frame") out.push(e.frame);
    return out;
  }

  /** Waits until `n` frames have arrived. */
  waitForFrames(n: number, timeoutMs = WAIT_MS): Promise<Frame[]> {
    return this.waitFor(() => this.frames.length >= n, `${n} frame(s)`, timeoutMs).then(() => this.frames);
  }

  /** Waits until `n` Autobahn-style items (messages, pings, pongs) have arrived. */
  waitForReceived(n: number, timeoutMs = WAIT_MS): Promise<Received[]> {
    return this.waitFor(
      () => this.received().length >= n || (this.#closeIndex() >= 0 && this.#inflating === 0),
      `${n} message(s)/pong(s)`,
      timeoutMs,
    ).then(() => this.received());
  }

  /** Waits `ms` and asserts that nothing at all arrived meanwhile (Autobahn's "timeout" step). */
  async expectQuiet(ms: number, what: string): Promise<void> {
    const before = this.events.length;
    await delay(ms);
    if (this.events.length !== before) {
      throw new Error(`Expected nothing for ${ms} ms (${what}), got: ${describeEvents(this.events.slice(before))}`);
    }
  }

  #closeIndex(): number {
    return this.events.findIndex((e) => e.kind === "frame" && e.frame.opcode === Op.Close);
  }

  /**
   * Messages, pings and pongs received before the close frame, fragments
   * joined. With permessage-deflate, compressed messages are inflated, and
   * the list stops before a message that is still being inflated.
   */
  received(): Received[] {
    const out: Received[] = [];
    let parts: Uint8Array[] = [];
    let opcode = -1;
    let rsv1 = false;
    for (const event of this.events) {
      if (event.kind !== "frame") continue;
      const { frame } = event;
      if (frame.opcode === Op.Close) break;
      if (frame.opcode === Op.Ping || frame.opcode === Op.Pong) {
        out.push({ type: frame.opcode === Op.Ping ? "ping" : "pong", data: frame.payload });
        continue;
      }
      if (frame.opcode !== Op.Continuation) {
        opcode = frame.opcode;
        rsv1 = (frame.rsv & 4) !== 0;
        parts = [];
      }
      parts.push(frame.payload);
      if (frame.fin) {
        const binary = opcode === Op.Binary;
        if (this.deflate === undefined) out.push({ type: "message", binary, data: concat(parts) });
        else if (!rsv1) {
          const data = concat(parts);
          out.push({ type: "message", binary, data, compressed: false, wireBytes: data.length });
        } else {
          const inflated = this.#inflated.get(frame);
          if (inflated === undefined) return out; // still inflating (or failed to)
          out.push({ type: "message", binary, data: inflated.data, compressed: true, wireBytes: inflated.wireBytes });
        }
        parts = [];
      }
    }
    return out;
  }

  /**
   * Waits for the server's close frame and then its TCP FIN, and checks the
   * strict closing rules: one close frame with one of `codes` (`null`: an
   * empty payload), a valid reason, no frame after it, the FIN after it (not
   * a reset, not before it), and no invalid bytes. Returns what arrived.
   */
  async expectClose(codes: number | null | readonly (number | null)[], timeoutMs = WAIT_MS): Promise<CloseResult> {
    const allowed = Array.isArray(codes) ? codes : [codes];
    const label = allowed.map((c) => (c === null ? "empty" : String(c))).join(" or ");
    await this.waitFor(() => this.#closeIndex() >= 0 || this.#finished || this.#broken, `a close frame (${label})`, timeoutMs);
    const index = this.#closeIndex();
    if (index < 0) throw new Error(`Expected a close frame (${label}) before the TCP close; seen: ${this.describe()}`);
    const closeEvent = this.events[index] as Extract<WireEvent, { kind: "frame" }>;
    const payload = closeEvent.frame.payload;
    if (payload.length === 1) throw new Error("The server's close frame has a 1-byte payload");
    const code = payload.length === 0 ? null : payload[0]! * 256 + payload[1]!;
    let reason: string;
    try {
      reason = new TextDecoder("utf-8", { fatal: true }).decode(payload.subarray(2));
    } catch {
      throw new Error("The server's close reason is not valid UTF-8");
    }
    if (!allowed.includes(code)) {
      throw new Error(`Expected close code ${label}, got ${code === null ? "an empty close" : code} (${JSON.stringify(reason)})`);
    }
    await this.waitFor(() => this.#finished || this.#broken, "the server's TCP FIN after its close frame", timeoutMs);
    const after = this.events.slice(index + 1);
    const first = after[0];
    if (first === undefined || first.kind !== "fin") {
      throw new Error(`Expected the server's FIN right after its close frame, got: ${describeEvents(after)}`);
    }
    const earlier = this.events.slice(0, index).filter((e) => e.kind !== "frame");
    if (earlier.length > 0) throw new Error(`Unexpected events before the close frame: ${describeEvents(earlier)}`);
    await this.waitFor(() => this.events.some((e) => e.kind === "closed"), "the socket to close", timeoutMs);
    await this.#inflateChain; // a message that fails to inflate is an invalid event too
    const bad = this.events.filter((e) => e.kind === "error" || e.kind === "invalid" || (e.kind === "closed" && e.hadError));
    if (bad.length > 0) throw new Error(`Unclean TCP close: ${describeEvents(bad)}`);
    return { code, reason, closeAt: closeEvent.at, finAt: first.at };
  }

  /**
   * After a refused handshake: waits until the server has closed TCP and
   * checks that it sent a FIN (no reset), and nothing else after its answer.
   */
  async expectServerFin(timeoutMs = WAIT_MS): Promise<void> {
    await this.waitFor(() => this.events.some((e) => e.kind === "closed"), "the server to close the connection", timeoutMs);
    const kinds = this.events.map((e) => (e.kind === "closed" && e.hadError ? "closed(error)" : e.kind));
    if (kinds.join(",") !== "fin,closed") {
      throw new Error(`Expected only the server's FIN, then the close; got: ${this.describe()}`);
    }
  }

  /** Drops the connection (cleanup after a failed test), and frees zlib. */
  destroy(): void {
    this.socket.destroy();
    this.#deflater?.close();
    this.#inflater?.close();
    this.#deflater = this.#inflater = undefined;
  }

  /** A short description of everything seen, for failure messages. */
  describe(): string {
    const status = this.response ? `HTTP ${this.response.status}; ` : "";
    return status + (this.events.length === 0 ? "nothing" : describeEvents(this.events));
  }
}

function buildRequest(url: string, key: string, options: ConnectOptions): string {
  const { host } = new URL(url);
  const defaults: [string, string][] = [
    ["Host", host],
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", key],
    ["Sec-WebSocket-Version", "13"],
  ];
  if (options.deflate) defaults.push(["Sec-WebSocket-Extensions", options.deflate.offer]);
  const lines = new Map<string, [string, string]>();
  for (const [name, value] of defaults) lines.set(name.toLowerCase(), [name, value]);
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (value === null) lines.delete(name.toLowerCase());
    else lines.set(name.toLowerCase(), [name, value]);
  }
  let request = `${options.method ?? "GET"} ${options.path ?? "/"} HTTP/${options.httpVersion ?? "1.1"}\r\n`;
  for (const [name, value] of lines.values()) request += `${name}: ${value}\r\n`;
  return request + "\r\n";
}

function checkServerFrame(frame: Frame, deflate: boolean): string | undefined {
  if (frame.masked) return "the server sent a masked frame";
  if (frame.rsv !== 0) {
    if (!deflate || (frame.rsv & 3) !== 0) {
      return `the server set RSV bits ${frame.rsv}${deflate ? "" : (frame.rsv & 4) !== 0 ? " (RSV1 without permessage-deflate)" : ""}`;
    }
    if (frame.opcode === Op.Continuation) return "the server set RSV1 on a continuation frame";
    if (frame.opcode >= 8) return "the server set RSV1 on a control frame";
  }
  if (![0, 1, 2, 8, 9, 10].includes(frame.opcode)) return `the server sent reserved opcode ${frame.opcode}`;
  if (frame.opcode >= 8 && (!frame.fin || frame.payload.length > 125)) return "the server sent an invalid control frame";
  return undefined;
}

const OPCODE_NAMES: Record<number, string> = { 0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong" };

function describeEvents(events: readonly WireEvent[]): string {
  return events.map((e) => {
    switch (e.kind) {
      case "frame": {
        const f = e.frame;
        const name = OPCODE_NAMES[f.opcode] ?? `op${f.opcode}`;
        let detail = `${f.payload.length}B`;
        if (f.opcode === Op.Close && f.payload.length >= 2) detail = String(f.payload[0]! * 256 + f.payload[1]!);
        return `${name}${f.fin ? "" : "(no fin)"}[${detail}]`;
      }
      case "closed":
        return e.hadError ? "closed(error)" : "closed";
      case "error":
        return `error(${e.message})`;
      case "invalid":
        return `invalid(${e.reason})`;
      default:
        return e.kind;
    }
  }).join(", ");
}

// ---- permessage-deflate (RFC 7692) ----

/** The 4 octets a sync flush ends with, removed by the sender and put back by the receiver (RFC 7692 §7.2). */
export const DEFLATE_TRAILER: Uint8Array = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

/** What a 101 response negotiated for permessage-deflate. */
export interface DeflateParams {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number | undefined;
  clientMaxWindowBits: number | undefined;
  /** The offer the response accepts: 0-based among our permessage-deflate offers, the first it fits. */
  offerIndex: number;
  /** The response's `Sec-WebSocket-Extensions` value, as sent. */
  response: string;
}

/** One element of a `Sec-WebSocket-Extensions` value; a parameter without value is `true`. */
export interface ExtensionElement {
  name: string;
  params: [string, string | true][];
}

/** A permessage-deflate offer's parameters (`clientMaxWindowBits: true` when it has no value). */
export interface DeflateOffer {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number | undefined;
  clientMaxWindowBits: number | true | undefined;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** 8..15 in decimal without leading zeros (RFC 7692 §7.1.2). */
const WINDOW_BITS = /^(?:[89]|1[0-5])$/;
const DEFLATE_PARAMS = ["server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits", "client_max_window_bits"];

/**
 * Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1: `1#extension`,
 * `extension = token *( ";" param )`, `param = token [ "=" (token | quoted-string) ]`,
 * a quoted value being a token once unquoted). Throws on any syntax error.
 */
export function parseExtensions(header: string): ExtensionElement[] {
  const out: ExtensionElement[] = [];
  const n = header.length;
  let i = 0;
  const ows = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const token = (what: string): string => {
    const start = i;
    while (i < n && TOKEN_CHAR.test(header[i]!)) i++;
    if (i === start) throw new Error(`expected ${what} at offset ${start} of ${JSON.stringify(header)}`);
    return header.slice(start, i);
  };
  for (;;) {
    ows();
    const element: ExtensionElement = { name: token("an extension name"), params: [] };
    ows();
    while (header[i] === ";") {
      i++;
      ows();
      const name = token("a parameter name");
      ows();
      let value: string | true = true;
      if (header[i] === "=") {
        i++;
        ows();
        if (header[i] === '"') {
          i++;
          let unquoted = "";
          while (i < n && header[i] !== '"') {
            if (header[i] === "\\") i++;
            if (i < n) unquoted += header[i++];
          }
          if (header[i] !== '"') throw new Error(`unterminated quoted value in ${JSON.stringify(header)}`);
          i++;
          if (!TOKEN.test(unquoted)) throw new Error(`quoted value ${JSON.stringify(unquoted)} is not a token`);
          value = unquoted;
        } else value = token("a parameter value");
        ows();
      }
      element.params.push([name, value]);
    }
    out.push(element);
    if (i === n) return out;
    if (header[i] !== ",") throw new Error(`unexpected ${JSON.stringify(header[i])} at offset ${i} of ${JSON.stringify(header)}`);
    i++;
  }
}

/**
 * A permessage-deflate offer's parameters, or why a server must decline it
 * (RFC 7692 §5.1, §7.1: unknown or repeated parameter, or an invalid value).
 */
export function parseDeflateOffer(params: readonly [string, string | true][]): DeflateOffer | string {
  const offer: DeflateOffer = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: undefined,
    clientMaxWindowBits: undefined,
  };
  const seen = new Set<string>();
  for (const [name, value] of params) {
    const key = name.toLowerCase();
    if (!DEFLATE_PARAMS.includes(key)) return `unknown parameter ${name}`;
    if (seen.has(key)) return `parameter ${name} repeated`;
    seen.add(key);
    if (key.endsWith("_no_context_takeover")) {
      if (value !== true) return `${name} has a value`;
      if (key === "server_no_context_takeover") offer.serverNoContextTakeover = true;
      else offer.clientNoContextTakeover = true;
    } else if (value === true) {
      if (key === "server_max_window_bits") return `${name} without a value`;
      offer.clientMaxWindowBits = true;
    } else {
      if (!WINDOW_BITS.test(value)) return `${name}=${value} is not 8..15 without leading zeros`;
      if (key === "server_max_window_bits") offer.serverMaxWindowBits = Number(value);
      else offer.clientMaxWindowBits = Number(value);
    }
  }
  return offer;
}

/** Why `response` cannot accept `offer`, or `undefined` when it can (RFC 7692 §7.1). */
function mismatch(offer: DeflateOffer, response: DeflateOffer): string | undefined {
  if (offer.serverNoContextTakeover && !response.serverNoContextTakeover) return "server_no_context_takeover was requested";
  if (offer.serverMaxWindowBits !== undefined) {
    if (response.serverMaxWindowBits === undefined) return `server_max_window_bits=${offer.serverMaxWindowBits} was requested`;
    if (response.serverMaxWindowBits > offer.serverMaxWindowBits) {
      return `server_max_window_bits=${response.serverMaxWindowBits} is above the ${offer.serverMaxWindowBits} offered`;
    }
  }
  if (response.clientMaxWindowBits !== undefined) {
    if (offer.clientMaxWindowBits === undefined) return "client_max_window_bits was not offered";
    if (offer.clientMaxWindowBits !== true && (response.clientMaxWindowBits as number) > offer.clientMaxWindowBits) {
      return `client_max_window_bits=${response.clientMaxWindowBits} is above the ${offer.clientMaxWindowBits} offered`;
    }
  }
  return undefined;
}

/**
 * Checks a 101's `Sec-WebSocket-Extensions` as a strict client does, against
 * what was offered: well-formed; only extensions that were offered (and none
 * but permessage-deflate, the only one this client implements); permessage-
 * deflate at most once, with known parameters, none repeated, window bits
 * 8..15 without leading zeros, `client_max_window_bits` with a value and only
 * if offered; and it must accept one of our offers (the server's
 * `server_max_window_bits` at most what was offered, `server_no_context_takeover`
 * when requested). Returns the negotiated parameters, `undefined` when the
 * response has no extension, or the reason it is invalid.
 */
export function checkDeflateResponse(offer: string | undefined, response: string | undefined): DeflateParams | undefined | string {
  if (response === undefined) return undefined;
  if (offer === undefined) return `the server answered ${JSON.stringify(response)} to a request without extensions`;
  let elements: ExtensionElement[];
  try {
    elements = parseExtensions(response);
  } catch (err) {
    return `invalid syntax: ${(err as Error).message}`;
  }
  let offers: ExtensionElement[];
  try {
    offers = parseExtensions(offer);
  } catch {
    offers = []; // a deliberately malformed offer: nothing was offered
  }
  const offeredNames = new Set(offers.map((o) => o.name.toLowerCase()));
  const deflates = elements.filter((e) => e.name.toLowerCase() === "permessage-deflate");
  for (const e of elements) {
    if (!offeredNames.has(e.name.toLowerCase())) return `${JSON.stringify(response)} accepts ${e.name}, which was not offered`;
    if (e.name.toLowerCase() !== "permessage-deflate") return `${JSON.stringify(response)} accepts ${e.name}, which this client does not implement`;
  }
  if (deflates.length !== 1) return `${JSON.stringify(response)} names permessage-deflate ${deflates.length} times`;
  const accepted = parseDeflateOffer(deflates[0]!.params);
  if (typeof accepted === "string") return `${JSON.stringify(response)}: ${accepted}`;
  if (accepted.clientMaxWindowBits === true) return `${JSON.stringify(response)}: client_max_window_bits without a value`;
  const reasons: string[] = [];
  let index = -1;
  offers.filter((o) => o.name.toLowerCase() === "permessage-deflate").forEach((o, i) => {
    if (index >= 0) return;
    const parsed = parseDeflateOffer(o.params);
    const why = typeof parsed === "string" ? `the offer is invalid (${parsed})` : mismatch(parsed, accepted);
    if (why === undefined) index = i;
    else reasons.push(`offer ${i + 1}: ${why}`);
  });
  if (index < 0) return `${JSON.stringify(response)} accepts none of our offers (${reasons.join("; ")})`;
  return {
    serverNoContextTakeover: accepted.serverNoContextTakeover,
    clientNoContextTakeover: accepted.clientNoContextTakeover,
    serverMaxWindowBits: accepted.serverMaxWindowBits,
    clientMaxWindowBits: accepted.clientMaxWindowBits as number | undefined,
    offerIndex: index,
    response,
  };
}

/** The `Sec-WebSocket-Extensions` value a request built from `options` carries. */
function offeredExtensions(options: ConnectOptions): string | undefined {
  if (options.rawRequest !== undefined) return options.deflate?.offer;
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (name.toLowerCase() === "sec-websocket-extensions") return value ?? undefined;
  }
  return options.deflate?.offer;
}

/** Feeds `input` to a zlib stream and resolves with what a `Z_SYNC_FLUSH` then gives out. */
function runZlib(stream: DeflateRaw | InflateRaw, input: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    const onData = (chunk: Uint8Array) => chunks.push(chunk);
    const onError = (err: Error) => {
      stream.off("data", onData);
      reject(err);
    };
    stream.on("data", onData);
    stream.once("error", onError);
    stream.write(input);
    stream.flush(zlibConstants.Z_SYNC_FLUSH, () => {
      stream.off("data", onData);
      // Deno's node:zlib calls back before it emits the error: the stream is already errored.
      if (stream.errored) return reject(stream.errored);
      stream.off("error", onError);
      resolve(concat(chunks));
    });
  });
}

function stripTrailer(data: Uint8Array): Uint8Array {
  const n = data.length;
  if (n < 4 || data[n - 4] !== 0 || data[n - 3] !== 0 || data[n - 2] !== 0xff || data[n - 1] !== 0xff) {
    throw new Error("a sync flush did not end with 00 00 ff ff");
  }
  return data.subarray(0, n - 4);
}

/**
 * Compresses one message on its own (no context, sync): raw DEFLATE with a
 * sync flush, `00 00 ff ff` removed. For crafting frames by hand.
 */
export function deflateRaw(data: string | Uint8Array, windowBits = 15): Uint8Array {
  const out = deflateRawSync(toBytes(data), { windowBits, finishFlush: zlibConstants.Z_SYNC_FLUSH });
  return stripTrailer(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
}

/**
 * A message payload as frames of `size` bytes (one frame when `size` is
 * undefined or 0); `rsv` (e.g. 4 for RSV1) goes on the first frame only.
 */
export function fragment(opcode: number, payload: Uint8Array, size?: number, rsv = 0): FrameSpec[] {
  const step = size === undefined || size <= 0 ? Math.max(payload.length, 1) : size;
  const specs: FrameSpec[] = [];
  for (let i = 0; i === 0 || i < payload.length; i += step) {
    specs.push({
      opcode: i === 0 ? opcode : Op.Continuation,
      payload: payload.subarray(i, i + step),
      fin: i + step >= payload.length,
      rsv: i === 0 ? rsv : 0,
    });
  }
  return specs;
}
