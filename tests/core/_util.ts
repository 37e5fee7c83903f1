// Helpers shared by the core tests: frame builders and split feeders.
import { Engine, type EngineAcceptOptions, type EngineEvent, type EngineOptions } from "../../core/engine.ts";
import type { FrameArena } from "../../core/frame_arena.ts";
import { Receiver, type Received } from "../../core/receiver.ts";

const encoder = new TextEncoder();

/** Bytes of a string, or the bytes themselves. */
export function bytes(data: string | Uint8Array | number[]): Uint8Array {
  if (typeof data === "string") return encoder.encode(data);
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}

/** Concatenates byte arrays. */
export function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export interface FrameSpec {
  fin?: boolean;
  rsv?: number; // 0..7, placed in bits 6..4 of the first byte
  mask?: number[] | null; // null: unmasked
  /** Override the 7-bit length field and the extended length bytes. */
  rawLength?: Uint8Array;
}

/** Builds a client frame (masked with a fixed key unless `mask: null`). */
export function frame(opcode: number, payload: string | Uint8Array | number[] = [], spec: FrameSpec = {}): Uint8Array {
  const data = bytes(payload);
  const { fin = true, rsv = 0, mask = [0x37, 0xfa, 0x21, 0x3d] } = spec;
  const b0 = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  const maskBit = mask ? 0x80 : 0;
  let len: Uint8Array;
  if (spec.rawLength) {
    len = spec.rawLength.slice();
    len[0] = len[0]! | maskBit;
  } else if (data.length < 126) len = new Uint8Array([maskBit | data.length]);
  else if (data.length < 65536) len = new Uint8Array([maskBit | 126, data.length >> 8, data.length & 0xff]);
  else {
    len = new Uint8Array(9);
    len[0] = maskBit | 127;
    new DataView(len.buffer).setBigUint64(1, BigInt(data.length));
  }
  const body = data.slice();
  if (mask) for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ mask[i & 3]!;
  return cat(new Uint8Array([b0]), len, mask ? new Uint8Array(mask) : new Uint8Array(0), body);
}

/** A close frame payload: code and reason. */
export function closeBody(code: number, reason: string | Uint8Array = ""): Uint8Array {
  return cat(new Uint8Array([code >> 8, code & 0xff]), bytes(reason));
}

/**
 * Ways to split `input`: whole, in two at every offset (or a sample of offsets
 * for long inputs), and one byte at a time (short inputs only).
 */
export function* splits(input: Uint8Array, maxEveryOffset = 4096): Generator<Uint8Array[]> {
  yield [input.slice()];
  const n = input.length;
  if (n <= maxEveryOffset) {
    for (let i = 1; i < n; i++) yield [input.slice(0, i), input.slice(i)];
    yield Array.from(input, (b) => new Uint8Array([b]));
  } else {
    for (const i of [1, 2, 3, 7, 13, 1000, n >> 1, n - 2, n - 1]) yield [input.slice(0, i), input.slice(i)];
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < n; i += 997) chunks.push(input.slice(i, i + 997));
    yield chunks;
  }
}

export const REQUEST = "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/** An open engine, accepted from a pre-parsed head; the 101 is taken from its output. */
export function openEngine(options: EngineOptions = {}): Engine {
  return acceptedEngine(options).engine;
}

/** An engine accepted from a pre-parsed head (with `headers` added) with `accept` options, and its 101 answer. */
export function acceptedEngine(
  options: EngineOptions = {},
  accept: EngineAcceptOptions = {},
  headers: Record<string, string> = {},
  arena?: FrameArena,
): { engine: Engine; response: string } {
  const engine = new Engine(options, arena);
  engine.receiveHead({
    method: "GET",
    url: "/",
    httpVersion: "1.1",
    headers: {
      host: "localhost",
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
      ...headers,
    },
  });
  const upgrade = engine.nextEvent();
  if (upgrade?.type !== "upgrade") throw new Error("expected upgrade");
  engine.accept(accept);
  if (engine.nextEvent()?.type !== "open") throw new Error("expected open");
  const response = new TextDecoder().decode(cat(...engine.takeOutput()));
  return { engine, response };
}

export interface Run {
  events: EngineEvent[];
  /** Server frames written, decoded. */
  frames: Received[];
  /** Raw output bytes. */
  output: Uint8Array;
  state: number;
}

/** Decodes server frames written by the engine. */
export function decodeServerFrames(output: Uint8Array): Received[] {
  const receiver = new Receiver({ role: "client", maxMessageBytes: 1 << 30, maxFrameBytes: 1 << 30 });
  receiver.push(output.slice());
  const out: Received[] = [];
  for (let r = receiver.next(); r; r = receiver.next()) out.push(r);
  if (receiver.bufferedAmount !== 0) throw new Error("trailing partial frame in output");
  return out;
}

/**
 * Feeds `chunks` into an open echo engine: every message is sent back at
 * once. Returns the events and the decoded output.
 */
export function runEcho(chunks: Uint8Array[], options: EngineOptions = {}, end = false): Run {
  const engine = openEngine(options);
  const events: EngineEvent[] = [];
  const out: Uint8Array[] = [];
  const drain = () => {
    for (let e = engine.nextEvent(); e; e = engine.nextEvent()) {
      events.push(e);
      if (e.type === "message" && engine.state === 1) engine.send(e.data);
    }
    out.push(...engine.takeOutput());
  };
  for (const chunk of chunks) {
    engine.receive(chunk);
    drain();
  }
  if (end) {
    engine.receive(null);
    drain();
  }
  const output = cat(...out);
  return { events, frames: decodeServerFrames(output), output, state: engine.state };
}

/** Summarizes events for comparison (bytes as arrays, long data as lengths). */
export function summary(events: (EngineEvent | Received)[]): unknown[] {
  return events.map((e) => {
    if (e.type === "error") return { type: "error", code: e.error.code, closeCode: e.error.closeCode };
    if (e.type === "close") return { type: "close", code: e.code, ...("wasClean" in e ? { wasClean: e.wasClean } : {}) };
    if ("data" in e) {
      const d = e.data;
      return { type: e.type, kind: typeof d === "string" ? "text" : "binary", data: d.length > 64 ? d.length : typeof d === "string" ? d : Array.from(d) };
    }
    return { type: e.type };
  });
}
