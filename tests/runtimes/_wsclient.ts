// A raw WebSocket test client over `node:net` (Node, Deno and Bun): it sends
// any bytes (masked or not, any opcode, RSV, FIN or length, chopped with
// delays) and records what the server sends, frame by frame, together with
// when the server closed TCP, so that a test can check "close 1002, then FIN,
// nothing after the close frame". Every wait is bounded.
import { createHash, randomBytes } from "node:crypto";
import { connect as netConnect, type Socket } from "node:net";

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

/** What the server sent, the way Autobahn records it. */
export type Received =
  | { type: "message"; binary: boolean; data: Uint8Array }
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

  private constructor(socket: Socket, key: string, echoClose: boolean, answerFin: boolean) {
    this.socket = socket;
    this.key = key;
    this.#echoClose = echoClose;
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
    const client = new WsClient(socket, key, options.echoClose ?? true, options.answerFin ?? true);
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
      const problem = checkServerFrame(frame);
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
    return this.waitFor(() => this.received().length >= n || this.#closeIndex() >= 0, `${n} message(s)/pong(s)`, timeoutMs)
      .then(() => this.received());
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

  /** Messages, pings and pongs received before the close frame, fragments joined. */
  received(): Received[] {
    const out: Received[] = [];
    let parts: Uint8Array[] = [];
    let opcode = -1;
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
        parts = [];
      }
      parts.push(frame.payload);
      if (frame.fin) {
        out.push({ type: "message", binary: opcode === Op.Binary, data: concat(parts) });
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

  /** Drops the connection (cleanup after a failed test). */
  destroy(): void {
    this.socket.destroy();
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

function checkServerFrame(frame: Frame): string | undefined {
  if (frame.masked) return "the server sent a masked frame";
  if (frame.rsv !== 0) return `the server set RSV bits ${frame.rsv}`;
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
