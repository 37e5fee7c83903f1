// Property definitions for fuzzing the engine with fast-check, shared by
// tests/core/fuzz_test.ts (a few hundred runs each, in `npm test`) and the
// long run of tests/fuzz/fuzz.ts (`npm run fuzz`, for minutes).
//
// Every property builds its own inputs, feeds them to a fresh engine in a
// random split, and checks the outcome against an oracle of its own: the
// RFC's rules, the same input fed whole, an independent decoder, or ws.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createRequire } from "node:module";
import process from "node:process";
import { setImmediate } from "node:timers";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { isValidWireCloseCode } from "../../core/close_code.ts";
import { Engine, type EngineEvent, type EngineOptions } from "../../core/engine.ts";
import type { DeflateParams } from "../../core/deflate.ts";
import { encodeFrame } from "../../core/frame.ts";
import { validateUpgradeRequest } from "../../core/handshake.ts";
import { acceptKey } from "../../core/handshake_response.ts";
import { PreparedMessage } from "../../core/prepared.ts";
import { ReadyState } from "../../core/state.ts";
import { acceptedEngine, cat, summary } from "./_util.ts";

const TEXT = 0x1, BINARY = 0x2, CONT = 0x0, CLOSE = 0x8, PING = 0x9, PONG = 0xa;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One property: its name, its runs in `npm test`, and a builder (fresh per check). */
export interface FuzzProperty {
  name: string;
  /** Runs in `npm test`: small, so that the whole file stays fast. */
  runs: number;
  /** Whether it needs ws's receiver (see {@linkcode wsReceiverMissing}). */
  ws?: boolean;
  property: () => fc.IRawProperty<any>;
}

/** The seed of every check: `FUZZ_SEED`, else a fixed one so that `npm test` is reproducible. */
export function fuzzSeed(): number {
  const env = process.env.FUZZ_SEED;
  if (env === undefined || env === "") return 0x5eed;
  const seed = Number(env);
  if (!Number.isSafeInteger(seed)) throw new RangeError(`Invalid FUZZ_SEED: expected an integer, got ${env}`);
  return seed;
}

/**
 * Checks one property; a failure throws fast-check's report (seed, path and
 * the shrunk counterexample), which `FUZZ_SEED=<seed>` replays.
 */
export async function checkProperty(p: FuzzProperty, numRuns: number, seed: number = fuzzSeed()): Promise<void> {
  await fc.assert(p.property(), { numRuns, seed });
}

// ---------------------------------------------------------------------------
// Splitting

/** How to split an input: cut offsets (taken modulo its length + 1, empty chunks included), or one byte at a time. */
type Split = number[] | "bytes";

const splitArb: fc.Arbitrary<Split> = fc.oneof(
  { weight: 5, arbitrary: fc.array(fc.nat({ max: 1 << 20 }), { maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constant("bytes" as const) },
);

/** Fresh copies of the pieces of `input` (the engine unmasks in place). */
function split(input: Uint8Array, how: Split): Uint8Array[] {
  if (how === "bytes" && input.length <= 4096) return Array.from(input, (b) => Uint8Array.of(b));
  const cuts = how === "bytes" ? [1, 2, 3, 5, 8, 13] : how;
  const offsets = [...new Set(cuts.map((n) => n % (input.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let start = 0;
  for (const offset of offsets) {
    out.push(input.slice(start, offset));
    start = offset;
  }
  out.push(input.slice(start));
  return out;
}

function latin1(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function latin1Text(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += String.fromCharCode(b);
  return out;
}

// ---------------------------------------------------------------------------
// Frames: an encoder of client frames that may break every rule, and a
// strict decoder of server frames, both independent of core/.

/** A client frame as the fuzzers describe it; `length` overrides the payload's length in the header. */
export interface FrameSpec {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  key: Uint8Array;
  payload: Uint8Array;
  /** The length form: the minimal one, or a longer one (RFC 6455 says minimal, receivers accept both). */
  form: "min" | "16" | "64";
  /** A length to announce instead of the payload's. */
  length?: number;
}

/** Encodes a frame byte by byte, as RFC 6455 §5.2 draws it. */
export function clientFrame(spec: FrameSpec): Uint8Array {
  const length = spec.length ?? spec.payload.length;
  const form = spec.form === "min" ? (length < 126 ? "7" : length < 65536 ? "16" : "64") : (spec.form === "16" && length > 0xffff ? "64" : spec.form);
  const head: number[] = [(spec.fin ? 0x80 : 0) | (spec.rsv << 4) | spec.opcode];
  const maskBit = spec.masked ? 0x80 : 0;
  if (form === "7") head.push(maskBit | length);
  else if (form === "16") head.push(maskBit | 126, length >>> 8, length & 0xff);
  else {
    const high = Math.floor(length / 0x1_0000_0000);
    head.push(maskBit | 127, (high >>> 24) & 0xff, (high >>> 16) & 0xff, (high >>> 8) & 0xff, high & 0xff);
    head.push((length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
  }
  const body = spec.payload.slice();
  if (spec.masked) {
    head.push(...spec.key);
    for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ spec.key[i & 3]!;
  }
  return cat(Uint8Array.from(head), body);
}

/** A well-formed masked client frame. */
function masked(opcode: number, payload: Uint8Array, key: Uint8Array, fin = true): Uint8Array {
  return clientFrame({ fin, rsv: 0, opcode, masked: true, key, payload, form: "min" });
}

/** One server frame as read off the wire. */
export interface WireFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  payload: Uint8Array;
}

/**
 * Decodes server frames strictly: unmasked, with the minimal length form,
 * and no partial frame at the end.
 */
export function serverFrames(bytes: Uint8Array): WireFrame[] {
  const out: WireFrame[] = [];
  let i = 0;
  while (i < bytes.length) {
    assert.ok(i + 2 <= bytes.length, "a partial frame header at the end of the output");
    const b0 = bytes[i]!, b1 = bytes[i + 1]!;
    assert.equal(b1 & 0x80, 0, "a server frame is never masked");
    let length = b1 & 0x7f;
    i += 2;
    if (length === 126) {
      length = bytes[i]! * 256 + bytes[i + 1]!;
      assert.ok(length >= 126, "the 16-bit length form for a length under 126");
      i += 2;
    } else if (length === 127) {
      const view = new DataView(bytes.buffer, bytes.byteOffset + i, 8);
      length = view.getUint32(0) * 0x1_0000_0000 + view.getUint32(4);
      assert.ok(length > 0xffff, "the 64-bit length form for a length under 65536");
      i += 8;
    }
    assert.ok(i + length <= bytes.length, "a partial frame payload at the end of the output");
    out.push({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, payload: bytes.slice(i, i + length) });
    i += length;
  }
  return out;
}

/** What a stream of frames carries, in order, as either side reports it. */
type Item =
  | { type: "message"; data: string | Uint8Array }
  | { type: "ping" | "pong"; data: Uint8Array }
  | { type: "close"; code: number; reason: string };

/** The close payload of a code and a reason. */
function closeBody(code: number, reason: Uint8Array | string = ""): Uint8Array {
  return cat(Uint8Array.of(code >> 8, code & 0xff), typeof reason === "string" ? encoder.encode(reason) : reason);
}

/** A server frame that answers or reports `item`, as the engine writes it. */
function wireOf(item: Item): WireFrame {
  if (item.type === "message") {
    const text = typeof item.data === "string";
    return { fin: true, rsv: 0, opcode: text ? TEXT : BINARY, payload: text ? encoder.encode(item.data as string) : item.data as Uint8Array };
  }
  if (item.type === "close") {
    return { fin: true, rsv: 0, opcode: CLOSE, payload: item.code === 1005 ? new Uint8Array(0) : closeBody(item.code, item.reason) };
  }
  return { fin: true, rsv: 0, opcode: item.type === "ping" ? PING : PONG, payload: item.data };
}

// ---------------------------------------------------------------------------
// Arbitraries

const keyArb = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ minLength: 4, maxLength: 4 }) },
  { weight: 1, arbitrary: fc.constant(new Uint8Array(4)) },
);
const tokenArb = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,10}$/);
/** Text of any Unicode scalar value (astral ones included), or of whole graphemes. */
const textArb = fc.oneof(fc.string({ unit: "binary", maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 12 }));
const controlPayloadArb = fc.uint8Array({ maxLength: 125 });

/** A message: text or binary, mostly small, sometimes long enough for the 16- and 64-bit length forms. */
const messageArb: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: textArb },
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 200 }) },
  {
    weight: 1,
    arbitrary: fc.tuple(
      // Sizes at the length forms' edges, and past the encoder's coalescing and scratch limits.
      fc.oneof(fc.constantFrom(125, 126, 127, 65_535, 65_536, 65_537), fc.integer({ min: 126, max: 70_000 })),
      fc.constantFrom("binary", "ascii", "unicode"),
      fc.string({ unit: "binary", minLength: 1, maxLength: 4 }),
    ).map(([n, kind, unit]) =>
      kind === "binary"
        ? new Uint8Array(n).map((_, i) => (i * 31) & 0xff)
        : kind === "ascii"
        ? "x".repeat(n)
        : unit.repeat(Math.ceil(n / unit.length))
    ),
  },
);

/** A message fragmented into frames at arbitrary byte offsets (UTF-8 sequences included), with control frames between them. */
interface MessagePlan {
  data: string | Uint8Array;
  cuts: number[];
  /** Control frames, each before fragment `at` (modulo the fragment count + 1). */
  controls: { at: number; type: "ping" | "pong"; data: Uint8Array }[];
  keys: Uint8Array[];
}

const planOf = (data: fc.Arbitrary<string | Uint8Array>): fc.Arbitrary<MessagePlan> =>
  fc.record({
  data,
  cuts: fc.oneof({ weight: 3, arbitrary: fc.constant<number[]>([]) }, { weight: 2, arbitrary: fc.array(fc.nat({ max: 1 << 20 }), { maxLength: 5 }) }),
  controls: fc.array(fc.record({ at: fc.nat({ max: 7 }), type: fc.constantFrom("ping" as const, "pong" as const), data: controlPayloadArb }), {
    maxLength: 2,
  }),
  keys: fc.array(keyArb, { minLength: 8, maxLength: 8 }),
});
const planArb = planOf(messageArb);
/** Messages well under 1 KiB. */
const smallPlanArb = planOf(fc.oneof(textArb, fc.uint8Array({ maxLength: 200 })));

/** A valid stream: frames, and the items a receiver must report for it, in order. */
interface Stream {
  bytes: Uint8Array;
  items: Item[];
}

function buildStream(plans: MessagePlan[], close?: { code: number; reason: string }): Stream {
  const frames: Uint8Array[] = [];
  const items: Item[] = [];
  for (const plan of plans) {
    const payload = typeof plan.data === "string" ? encoder.encode(plan.data) : plan.data;
    const offsets = [...new Set(plan.cuts.map((n) => n % (payload.length + 1)))].sort((a, b) => a - b);
    const bounds = [0, ...offsets, payload.length];
    const count = bounds.length - 1;
    for (let f = 0; f < count; f++) {
      for (const control of plan.controls) {
        if (control.at % (count + 1) !== f) continue;
        frames.push(masked(control.type === "ping" ? PING : PONG, control.data, plan.keys[7]!));
        items.push({ type: control.type, data: control.data });
      }
      const opcode = f > 0 ? CONT : typeof plan.data === "string" ? TEXT : BINARY;
      // Core's encoder of masked client frames: the other encoder under test.
      frames.push(...encodeFrame(opcode, payload.subarray(bounds[f], bounds[f + 1]), { fin: f === count - 1, mask: plan.keys[f % 7]! }));
    }
    items.push({ type: "message", data: plan.data });
    for (const control of plan.controls) {
      if (control.at % (count + 1) !== count) continue;
      frames.push(masked(control.type === "ping" ? PING : PONG, control.data, plan.keys[7]!));
      items.push({ type: control.type, data: control.data });
    }
  }
  if (close !== undefined) {
    frames.push(masked(CLOSE, close.code === 1005 ? new Uint8Array(0) : closeBody(close.code, close.reason), new Uint8Array([1, 2, 3, 4])));
    items.push({ type: "close", code: close.code, reason: close.reason });
  }
  return { bytes: cat(...frames), items };
}

const validCloseCodeArb = fc.oneof(
  fc.constantFrom(1000, 1001, 1002, 1003, 1005, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014),
  fc.integer({ min: 3000, max: 4999 }),
);
const closeArb = fc.option(
  fc.record({ code: validCloseCodeArb, reason: fc.string({ unit: "binary", maxLength: 30 }) })
    .map(({ code, reason }) => ({ code, reason: code === 1005 ? "" : reason })),
  { nil: undefined },
);

const streamArb: fc.Arbitrary<Stream> = fc.tuple(fc.array(planArb, { maxLength: 6 }), closeArb).map(([plans, close]) => buildStream(plans, close));

// ---------------------------------------------------------------------------
// Engine drivers

const DEFLATE: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };

/** What the engine reported and wrote for some input. */
interface OpenRun {
  events: EngineEvent[];
  output: Uint8Array;
  /** The server frames the events call for, in order. */
  expected: WireFrame[];
  state: number;
}

interface OpenRunOptions {
  /** Accept with permessage-deflate: RSV1 marks a compressed message, reported as `compressed`. */
  deflate?: boolean;
  /** Echo every message while open. */
  echo?: boolean;
  /** Close from this side before feeding chunk `closeAt`. */
  closeAt?: number;
  /** End the transport after the last chunk. */
  end?: boolean;
}

/**
 * Feeds `chunks` to an open engine, answering each event before asking for
 * the next, and checks as it goes what must hold after every step: input
 * buffered within the frame limit, messages within the message limit, no
 * event after `close`, and the output each event calls for.
 */
function runOpen(chunks: Uint8Array[], limits: EngineOptions, options: OpenRunOptions = {}): OpenRun {
  const { engine } = options.deflate
    ? acceptedEngine(limits, { extensions: "permessage-deflate", deflate: DEFLATE }, { "sec-websocket-extensions": "permessage-deflate" })
    : acceptedEngine(limits);
  const max = engine.limits;
  const events: EngineEvent[] = [];
  const out: Uint8Array[] = [];
  const expected: WireFrame[] = [];
  const drain = (): void => {
    for (;;) {
      const before = engine.state;
      const e = engine.nextEvent();
      if (e === undefined) break;
      assert.ok(!events.some((x) => x.type === "close"), `an event after close: ${e.type}`);
      events.push(e);
      switch (e.type) {
        case "message": {
          const size = typeof e.data === "string" ? encoder.encode(e.data).length : e.data.length;
          assert.ok(size <= max.maxMessageBytes, `a message of ${size} bytes, over maxMessageBytes ${max.maxMessageBytes}`);
          if (options.echo && engine.state === ReadyState.Open) {
            engine.send(e.data);
            expected.push(wireOf({ type: "message", data: e.data }));
          }
          break;
        }
        case "compressed":
          assert.ok(options.deflate, "a compressed message without permessage-deflate");
          assert.ok(e.data.length <= max.maxMessageBytes, `a compressed message of ${e.data.length} bytes, over maxMessageBytes`);
          break;
        case "ping":
          assert.ok(e.data.length <= 125);
          if (before === ReadyState.Open) expected.push(wireOf({ type: "pong", data: e.data }));
          break;
        case "pong":
          assert.ok(e.data.length <= 125);
          break;
        case "error":
          assert.ok([1002, 1007, 1009].includes(e.error.closeCode), `error close code ${e.error.closeCode}`);
          // A 1009 says why (since 0.2.0); 1002 and 1007 carry no reason.
          if (before === ReadyState.Open) expected.push(wireOf({ type: "close", code: e.error.closeCode, reason: e.error.closeCode === 1009 ? "Message too big" : "" }));
          break;
        case "close": {
          const previous = events[events.length - 2];
          if (previous?.type === "error") {
            assert.deepEqual([e.code, e.wasClean], [previous.error.closeCode, false]);
          } else if (e.wasClean) {
            assert.ok(e.code === 1005 || isValidWireCloseCode(e.code), `a clean close with code ${e.code}`);
            if (before === ReadyState.Open) expected.push(wireOf({ type: "close", code: e.code, reason: "" }));
          } else {
            assert.equal(e.code, 1006, "an unclean close without an error is 1006");
          }
          assert.equal(engine.state, ReadyState.Closed);
          break;
        }
        default:
          assert.fail(`an unexpected event on an open engine: ${e.type}`);
      }
    }
    out.push(...engine.takeOutput());
    if (engine.state === ReadyState.Open || engine.state === ReadyState.Closing) {
      // A binary payload waits whole (under maxFrameBytes), a control one under 126, a header under 14.
      const bound = Math.max(max.maxFrameBytes, 125);
      assert.ok(engine.inputBytes <= bound, `${engine.inputBytes} bytes buffered, over ${bound}`);
    }
  };
  chunks.forEach((chunk, i) => {
    if (i === options.closeAt && engine.state === ReadyState.Open) {
      engine.close(1000, "");
      expected.push(wireOf({ type: "close", code: 1000, reason: "" }));
    }
    engine.receive(chunk);
    drain();
  });
  if (options.end) {
    engine.receive(null);
    drain();
    assert.equal(engine.state, ReadyState.Closed, "the end of the transport settles the engine");
  }
  if (engine.state === ReadyState.Closed) {
    // A closed engine ignores what still comes.
    engine.receive(Uint8Array.of(0x81, 0x80, 0, 0, 0, 0));
    assert.equal(engine.nextEvent(), undefined);
    assert.equal(engine.takeOutput().length, 0);
  }
  return { events, output: cat(...out), expected, state: engine.state };
}

/** Engine events as comparable items (clean closes as `close`, faults as their close code). */
function engineItems(events: EngineEvent[]): (Item | { type: "error"; closeCode: number; code: string })[] {
  const out: (Item | { type: "error"; closeCode: number; code: string })[] = [];
  for (const e of events) {
    if (e.type === "message" || e.type === "ping" || e.type === "pong") out.push({ type: e.type, data: e.data } as Item);
    else if (e.type === "close" && e.wasClean) out.push({ type: "close", code: e.code, reason: e.reason });
    else if (e.type === "error") out.push({ type: "error", closeCode: e.error.closeCode, code: e.error.code });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Handshake

// Lines end in CRLF: a bare LF is refused (400), as node:http does, since a
// proxy that splits lines only at CRLF would read other fields.
const CRLF = fc.constant("\r\n");
const HANDSHAKE_FIELDS = new Set([
  "host",
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
  "content-length",
  "transfer-encoding",
]);
const OWS = fc.constantFrom("", " ", "\t", " \t ");

/** A valid upgrade request, varied in every way RFC 6455 and RFC 9112 allow, with bytes behind it. */
const requestArb: fc.Arbitrary<Uint8Array> = fc.record({
  url: fc.stringMatching(/^\/[!-~]{0,24}$/),
  eol: CRLF,
  leading: fc.nat({ max: 2 }),
  version: fc.constantFrom("1.1", "1.1", "2.0", "1.9"),
  host: fc.mixedCase(fc.constant("Host")),
  upgrade: fc.tuple(fc.mixedCase(fc.constant("Upgrade")), fc.mixedCase(fc.constantFrom("websocket", "foo, websocket"))),
  connection: fc.tuple(fc.mixedCase(fc.constant("Connection")), fc.mixedCase(fc.constantFrom("Upgrade", "keep-alive, upgrade"))),
  keyName: fc.mixedCase(fc.constant("Sec-WebSocket-Key")),
  key: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => btoa(String.fromCharCode(...b))),
  versionName: fc.mixedCase(fc.constant("Sec-WebSocket-Version")),
  protocols: fc.option(fc.uniqueArray(tokenArb, { minLength: 1, maxLength: 3 }).map((p) => p.join(", ")), { nil: undefined }),
  extensions: fc.option(
    fc.constantFrom("permessage-deflate", "permessage-deflate; client_max_window_bits", 'x-foo; a=1; b="2", y', "a;b;b"),
    { nil: undefined },
  ),
  // Extra fields, but none the handshake reads: a second Host or a body
  // announcement would make the request invalid (tests/core/smuggling_test.ts).
  extra: fc.array(
    fc.tuple(tokenArb.filter((n) => !HANDSHAKE_FIELDS.has(n.toLowerCase())), fc.stringMatching(/^[ -~\x80-\xff]{0,20}$/)),
    { maxLength: 4 },
  ),
  ows: fc.array(OWS, { minLength: 10, maxLength: 10 }),
  order: fc.array(fc.nat(), { minLength: 12, maxLength: 12 }),
  tail: fc.uint8Array({ maxLength: 24 }),
}).map((r) => {
  const o = (i: number) => r.ows[i % r.ows.length]!;
  const fields: string[] = [
    `${r.host}:${o(0)}example.com${o(1)}`,
    `${r.upgrade[0]}:${o(2)}${r.upgrade[1]}`,
    `${r.connection[0]}:${o(3)}${r.connection[1]}${o(4)}`,
    `${r.keyName}:${o(5)}${r.key}${o(6)}`,
    `${r.versionName}:${o(7)}13${o(8)}`,
  ];
  if (r.protocols !== undefined) fields.push(`Sec-WebSocket-Protocol:${o(9)}${r.protocols}`);
  if (r.extensions !== undefined) fields.push(`Sec-WebSocket-Extensions: ${r.extensions}`);
  for (const [name, value] of r.extra) fields.push(`${name}: ${value}`);
  // A shuffle by the generated order keys.
  const shuffled = fields.map((f, i) => [r.order[i % r.order.length]! * 16 + i, f] as const).sort((a, b) => a[0] - b[0]).map(([, f]) => f);
  const head = r.eol.repeat(r.leading) + `GET ${r.url} HTTP/${r.version}${r.eol}` + shuffled.map((f) => f + r.eol).join("") + r.eol;
  return cat(latin1(head), r.tail);
});

/** A change to some bytes; `at` and `len` are taken modulo the input length. */
type Mutation = { kind: "flip" | "set" | "delete" | "insert" | "dup" | "truncate"; at: number; len: number; bytes: Uint8Array };

const interestingByteArb = fc.oneof(
  fc.constantFrom(0x0d, 0x0a, 0x3a, 0x20, 0x09, 0x00, 0x7f, 0x80, 0xff, 0x2c, 0x3b, 0x3d, 0x22, 0x2f),
  fc.integer({ min: 0x21, max: 0x7e }),
  fc.integer({ min: 0, max: 255 }),
);
const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom("flip", "set", "delete", "insert", "dup", "truncate"),
  at: fc.nat(),
  len: fc.integer({ min: 1, max: 16 }),
  bytes: fc.array(interestingByteArb, { minLength: 1, maxLength: 8 }).map((b) => Uint8Array.from(b)),
});

function mutate(input: Uint8Array, mutations: Mutation[]): Uint8Array {
  let bytes = input;
  for (const m of mutations) {
    const at = m.at % (bytes.length + 1);
    const end = Math.min(bytes.length, at + m.len);
    switch (m.kind) {
      case "flip":
        if (at < bytes.length) (bytes = bytes.slice())[at] = bytes[at]! ^ (1 << (m.len & 7));
        break;
      case "set":
        if (at < bytes.length) (bytes = bytes.slice())[at] = m.bytes[0]!;
        break;
      case "delete":
        bytes = cat(bytes.subarray(0, at), bytes.subarray(end));
        break;
      case "insert":
        bytes = cat(bytes.subarray(0, at), m.bytes, bytes.subarray(at));
        break;
      case "dup":
        bytes = cat(bytes.subarray(0, end), bytes.subarray(at, end), bytes.subarray(end));
        break;
      case "truncate":
        bytes = bytes.slice(0, at);
        break;
    }
  }
  return bytes;
}

const httpishArb = fc.array(
  fc.constantFrom("GET", " ", "/", "HTTP/1.1", "\r\n", "\n", "\r", ":", "Host", "Upgrade", "websocket", "Connection", "a", "\t", "13"),
  { maxLength: 60 },
).map((parts) => latin1(parts.join("")));

/** Handshake bytes, and whether they are a valid request left as generated. */
const handshakeInputArb: fc.Arbitrary<{ input: Uint8Array; valid: boolean }> = fc.oneof(
  { weight: 2, arbitrary: requestArb.map((input) => ({ input, valid: true })) },
  {
    weight: 6,
    arbitrary: fc.tuple(requestArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 })).map(([r, m]) => ({ input: mutate(r, m), valid: false })),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((input) => ({ input, valid: false })) },
  { weight: 1, arbitrary: httpishArb.map((input) => ({ input, valid: false })) },
);

/** What the engine made of an opening handshake, comparable across splits. */
interface HandshakeOutcome {
  kind: "upgrade" | "rejected" | "none";
  status?: number;
  code?: string;
  request?: unknown;
  /** What followed the `open` event, when accepted: the frames behind the head, then the end. */
  after?: unknown[];
}

/** Whether a header block's end is in `input`: a non-empty line, then an empty one (both LF-terminated). */
function hasHeadEnd(input: Uint8Array): boolean {
  const lines = latin1Text(input).split("\n");
  lines.pop(); // Not LF-terminated.
  const first = lines.findIndex((l) => l !== "" && l !== "\r");
  return first !== -1 && lines.slice(first + 1).some((l) => l === "" || l === "\r");
}

/**
 * Feeds a raw handshake in `chunks`, accepts an upgrade as soon as it is
 * reported, ends the transport, and checks the outcome's validity.
 */
function runHandshake(chunks: Uint8Array[], maxHeaderBytes: number): HandshakeOutcome {
  const engine = new Engine({ maxHeaderBytes });
  const events: EngineEvent[] = [];
  const out: Uint8Array[] = [];
  let response: Uint8Array = new Uint8Array(0);
  const drain = (): void => {
    for (let e = engine.nextEvent(); e; e = engine.nextEvent()) {
      events.push(e);
      if (e.type === "upgrade") {
        assert.equal(engine.takeOutput().length, 0, "nothing is written before the application answers");
        engine.accept();
        response = cat(...engine.takeOutput());
      }
    }
    out.push(...engine.takeOutput());
  };
  for (const chunk of chunks) {
    if (engine.state === ReadyState.Connecting && events.length === 0) {
      assert.equal(engine.inputBytes, 0, "no frame bytes before the head ends");
    }
    engine.receive(chunk);
    drain();
  }
  engine.receive(null);
  drain();
  assert.equal(engine.state, ReadyState.Closed, "the end of the transport settles the handshake");

  const first = events[0];
  if (first === undefined) {
    assert.equal(out.length, 0, "nothing is written for a request that never ended");
    return { kind: "none" };
  }
  if (first.type === "rejected") {
    assert.equal(events.length, 1, "nothing after a rejection");
    const { status, code } = first.error;
    assert.ok([400, 426, 431].includes(status), `rejected with ${status}`);
    const text = latin1Text(cat(...out));
    const [head = "", body = ""] = text.split("\r\n\r\n", 2);
    assert.ok(head.startsWith(`HTTP/1.1 ${status} `), `the answer is ${JSON.stringify(head.slice(0, 40))}`);
    assert.match(head, new RegExp(`\r\nContent-Length: ${encoder.encode(first.error.message).length}(\r\n|$)`));
    assert.equal(decoder.decode(latin1(body)), first.error.message);
    assert.equal(engine.request, undefined);
    return { kind: "rejected", status, code };
  }
  assert.equal(first.type, "upgrade", `the first event is ${first.type}`);
  if (first.type !== "upgrade") throw new Error("unreachable");
  assert.equal(events[1]?.type, "open");
  assert.ok(!events.some((e) => e.type === "rejected" || (e.type === "upgrade" && e !== first)), "one answer only");
  const r = first.request;
  assert.equal(r.method, "GET");
  assert.equal(r.version, 13);
  assert.match(r.key, /^[A-Za-z0-9+/]{22}==$/);
  assert.match(r.httpVersion, /^\d\.\d$/);
  assert.ok(r.httpVersion >= "1.1");
  // The same request through `Headers` passes the same checks, with the same results.
  const headers: [string, string][] = [];
  r.headers.forEach((value, name) => headers.push([name, value]));
  const again = validateUpgradeRequest({ method: r.method, url: r.url, httpVersion: r.httpVersion, headers: new Headers(headers) });
  assert.deepEqual([again.key, again.protocols, again.extensions], [r.key, r.protocols, r.extensions]);
  const answer = latin1Text(response);
  assert.ok(answer.startsWith("HTTP/1.1 101 Switching Protocols\r\n"));
  assert.ok(answer.includes(`\r\nSec-WebSocket-Accept: ${acceptKey(r.key)}\r\n`));
  return {
    kind: "upgrade",
    request: { method: r.method, url: r.url, httpVersion: r.httpVersion, key: r.key, protocols: r.protocols, extensions: r.extensions, headers },
    after: summary(events.slice(2)),
  };
}

const handshake: FuzzProperty = {
  name: "handshake: any bytes in any split end in one valid answer, the same as fed whole",
  runs: 300,
  property: () =>
    fc.property(handshakeInputArb, splitArb, fc.constantFrom(64, 200, 512, 16 * 1024), ({ input, valid }, how, max) => {
      const whole = runHandshake([input.slice()], max);
      const parts = runHandshake(split(input, how), max);
      assert.deepEqual(parts, whole, "the split changed the outcome");
      if (valid && max === 16 * 1024) assert.equal(whole.kind, "upgrade", "a valid request was not accepted");
      if (whole.kind === "none") {
        assert.ok(!hasHeadEnd(input), "a complete head was neither accepted nor refused");
        assert.ok(input.length <= 2 * max, "more than the header limit was buffered without an answer");
      }
    }),
};

const headerLimit: FuzzProperty = {
  name: "handshake: a header block over maxHeaderBytes gets 431 as soon as it passes the limit",
  runs: 150,
  property: () =>
    fc.property(
      fc.integer({ min: 64, max: 4096 }),
      fc.nat({ max: 3 }),
      fc.array(fc.tuple(tokenArb, fc.integer({ min: 1, max: 1 << 20 })), { minLength: 1, maxLength: 200 }),
      fc.boolean(),
      splitArb,
      (max, leading, fieldSpecs, terminated, how) => {
        // Enough fields of max/50 to max/4 bytes to pass the limit, never more than 100 of them.
        let head = "GET /chat HTTP/1.1\r\n";
        for (const [name, n] of fieldSpecs) {
          if (head.length > max) break;
          const size = Math.floor(max / 50) + (n % Math.ceil(max / 4));
          head += `${name}: ${"v".repeat(size)}\r\n`;
        }
        while (head.length <= max) head += `X-Pad: ${"p".repeat(Math.ceil(max / 4))}\r\n`;
        if (terminated) head += "\r\n";
        const prefix = "\r\n".repeat(leading);
        const input = latin1(prefix + head);
        const engine = new Engine({ maxHeaderBytes: max });
        let fed = 0;
        for (const chunk of split(input, how)) {
          const crossed = fed - prefix.length > max; // Leading empty lines count apart.
          const before = engine.outputBytes;
          engine.receive(chunk);
          fed += chunk.length;
          assert.equal(engine.inputBytes, 0);
          if (crossed) {
            assert.equal(engine.state, ReadyState.Closed);
            assert.equal(engine.outputBytes, before, "a refused connection ignores what still comes");
            continue;
          }
          if (fed - prefix.length > max) {
            const e = engine.nextEvent();
            assert.equal(e?.type, "rejected", "refused by the chunk that passes the limit");
            assert.equal(e?.type === "rejected" && e.error.status, 431);
            assert.equal(engine.state, ReadyState.Closed);
            assert.ok(latin1Text(cat(...engine.takeOutput())).startsWith("HTTP/1.1 431 "));
          } else {
            assert.equal(engine.nextEvent(), undefined, "no answer before the limit is passed");
            assert.equal(engine.state, ReadyState.Connecting);
          }
        }
      },
    ),
};

// ---------------------------------------------------------------------------
// Frame decoder on an open engine

const limitsArb: fc.Arbitrary<EngineOptions> = fc.record({
  maxMessageBytes: fc.constantFrom(64, 300, 1024),
  maxFrameBytes: fc.constantFrom(32, 125, 1024, 1 << 20),
  maxFragments: fc.constantFrom(2, 4, 65_536),
});

/** Invalid UTF-8 sequences: a bad byte, overlong, a surrogate, past U+10FFFF, a stray continuation, a truncated one. */
const badUtf8Arb = fc.constantFrom(
  Uint8Array.of(0xff),
  Uint8Array.of(0xc0, 0x80),
  Uint8Array.of(0xe0, 0x80, 0x80),
  Uint8Array.of(0xed, 0xa0, 0x80),
  Uint8Array.of(0xf4, 0x90, 0x80, 0x80),
  Uint8Array.of(0x80),
  Uint8Array.of(0xe2, 0x82),
);

const fuzzPayloadArb = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 4, arbitrary: textArb.map((t) => encoder.encode(t)) },
  { weight: 2, arbitrary: fc.tuple(textArb, badUtf8Arb, textArb).map(([a, bad, b]) => cat(encoder.encode(a), bad, encoder.encode(b))) },
  { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 0, max: 65535 }), textArb).map(([code, reason]) => closeBody(code, reason)) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 1300 }).map((n) => new Uint8Array(n).fill(0x61)) },
);

const frameSpecArb: fc.Arbitrary<FrameSpec> = fc.record({
  fin: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  // RSV1 alone is permessage-deflate's bit: valid on a data message's first frame once negotiated.
  rsv: fc.oneof({ weight: 40, arbitrary: fc.constant(0) }, { weight: 5, arbitrary: fc.constant(4) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 7 }) }),
  opcode: fc.oneof(
    { weight: 30, arbitrary: fc.constantFrom(TEXT, BINARY, TEXT, BINARY, CONT, PING, PONG, CLOSE) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }) },
  ),
  masked: fc.oneof({ weight: 40, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  key: keyArb,
  payload: fuzzPayloadArb,
  form: fc.oneof({ weight: 8, arbitrary: fc.constant("min" as const) }, { weight: 1, arbitrary: fc.constantFrom("16" as const, "64" as const) }),
}).chain((spec) =>
  fc.oneof(
    { weight: 12, arbitrary: fc.constant(spec) },
    // A length that lies about the payload, or one far past any limit.
    {
      weight: 1,
      arbitrary: fc.oneof(fc.nat({ max: 2000 }), fc.constantFrom(2 ** 32, 2 ** 53 - 1, 2 ** 63)).map((length) => ({ ...spec, length, form: length > 0xffff ? "64" as const : spec.form })),
    },
  )
);

/** Frame-like bytes: mostly frames with random fields, some raw bytes, then a few bit flips. */
const frameBytesArb: fc.Arbitrary<Uint8Array> = fc.tuple(
  fc.array(fc.oneof({ weight: 6, arbitrary: frameSpecArb.map(clientFrame) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 24 }) }), {
    maxLength: 10,
  }),
  fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(fc.tuple(fc.nat(), fc.nat({ max: 7 })), { maxLength: 2 }) }),
).map(([pieces, flips]) => {
  const bytes = cat(...pieces);
  for (const [at, bit] of flips) if (bytes.length > 0) bytes[at % bytes.length] = bytes[at % bytes.length]! ^ (1 << bit);
  return bytes;
});

const openBytesArb = fc.oneof(
  { weight: 6, arbitrary: frameBytesArb },
  { weight: 2, arbitrary: streamArb.map((s) => s.bytes) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
);

const decoderProperty: FuzzProperty = {
  name: "frame decoder: any bytes in any split end open or in one close with a valid code, within the limits",
  runs: 300,
  property: () =>
    fc.property(openBytesArb, splitArb, limitsArb, fc.boolean(), fc.boolean(), fc.option(fc.nat({ max: 12 }), { nil: undefined }), (input, how, limits, end, deflate, closeAt) => {
      const chunks = split(input, how);
      const whole = runOpen([input.slice()], limits, { echo: true, end, deflate });
      const parts = runOpen(chunks, limits, { echo: true, end, deflate });
      for (const run of [whole, parts]) assert.deepEqual(serverFrames(run.output), run.expected, "the output is what the events call for");
      assert.deepEqual(summary(parts.events), summary(whole.events), "the split changed the events");
      assert.deepEqual(parts.output, whole.output, "the split changed the output");
      // The same while this side closes at some point: no pong or echo once closing, the peer's close ends it cleanly.
      const closing = runOpen(split(input, how), limits, { echo: true, end, deflate, closeAt: closeAt ?? -1 });
      assert.deepEqual(serverFrames(closing.output), closing.expected);
    }),
};

// ---------------------------------------------------------------------------
// Round trips

const roundTrip: FuzzProperty = {
  name: "round trip: valid client streams in any split give the same messages, pings answered",
  runs: 200,
  property: () =>
    fc.property(streamArb, splitArb, (stream, how) => {
      const run = runOpen(split(stream.bytes, how), {}, { end: true });
      const items = engineItems(run.events);
      assert.deepEqual(items, stream.items);
      const last = run.events[run.events.length - 1];
      if (stream.items[stream.items.length - 1]?.type === "close") assert.equal(last?.type === "close" && last.wasClean, true);
      else assert.deepEqual(last?.type === "close" && [last.code, last.wasClean], [1006, false], "the end of the transport: 1006");
      const pongs = stream.items.filter((i) => i.type === "ping").map((i) => wireOf({ ...i, type: "pong" } as Item));
      const closeEcho = stream.items.filter((i) => i.type === "close").map((i) => wireOf({ ...i, reason: "" } as Item));
      assert.deepEqual(serverFrames(run.output), [...pongs, ...closeEcho]);
    }),
};

/** Something for the server to send, and what the peer must read. */
type Send =
  | { op: "send"; data: string | Uint8Array; view: number }
  | { op: "prepared"; data: string | Uint8Array }
  | { op: "ping" | "pong"; data: Uint8Array };

const sendArb: fc.Arbitrary<Send> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("send" as const), data: messageArb, view: fc.nat({ max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("prepared" as const), data: messageArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom("ping" as const, "pong" as const), data: controlPayloadArb }) },
);

const serverSendsArb = fc.tuple(
  fc.array(sendArb, { maxLength: 8 }),
  fc.option(fc.record({ code: validCloseCodeArb.filter((c) => c !== 1005), reason: fc.string({ unit: "binary", maxLength: 30 }) }), { nil: undefined })
    .map((c) => c && { code: c.code, reason: truncateUtf8(c.reason, 123) }),
);

/** The longest prefix of `text` whose UTF-8 fits in `max` bytes. */
function truncateUtf8(text: string, max: number): string {
  let out = "";
  for (const c of text) {
    if (encoder.encode(out + c).length > max) break;
    out += c;
  }
  return out;
}

/** The bytes in a shape `send` accepts: a Uint8Array, an ArrayBuffer, a DataView, or a view at an offset. */
function asView(data: Uint8Array, view: number): ArrayBuffer | ArrayBufferView {
  if (view === 0) return data;
  const backing = new Uint8Array(data.length + 3);
  backing.set(data, 3);
  if (view === 1) return backing.buffer.slice(3);
  if (view === 2) return new DataView(backing.buffer, 3, data.length);
  return backing.subarray(3);
}

/** Runs the sends on an open engine: its output, and the items a client must read from it. */
function serverSend(sends: Send[], close: { code: number; reason: string } | undefined): { output: Uint8Array; items: Item[] } {
  const { engine } = acceptedEngine();
  const items: Item[] = [];
  for (const s of sends) {
    if (s.op === "send") engine.send(typeof s.data === "string" ? s.data : asView(s.data, s.view));
    else if (s.op === "prepared") engine.sendPrepared(new PreparedMessage(s.data));
    else if (s.op === "ping") engine.ping(s.data);
    else engine.pong(s.data);
    items.push(s.op === "send" || s.op === "prepared" ? { type: "message", data: s.data } : { type: s.op, data: s.data });
  }
  if (close !== undefined) {
    engine.close(close.code, close.reason);
    items.push({ type: "close", ...close });
  }
  return { output: cat(...engine.takeOutput()), items };
}

const serverEncoder: FuzzProperty = {
  name: "server encoder: what send, sendPrepared, ping, pong and close write decodes back to the same",
  runs: 200,
  property: () =>
    fc.property(serverSendsArb, ([sends, close]) => {
      const { output, items } = serverSend(sends, close);
      const frames = serverFrames(output);
      assert.deepEqual(frames, items.map(wireOf));
      // Text frames carry the message's exact UTF-8.
      for (const [i, frame] of frames.entries()) {
        if (frame.opcode === TEXT) assert.equal(decoder.decode(frame.payload), (items[i] as { data: string }).data);
      }
    }),
};

// ---------------------------------------------------------------------------
// Differential against ws's receiver

/** ws's receiver, as its server uses it. */
interface WsReceiver {
  on(event: string, listener: (...args: any[]) => void): void;
  write(chunk: Uint8Array): boolean;
  readonly _errored: boolean;
}
type WsReceiverClass = new (options: { isServer: boolean; maxPayload?: number }) => WsReceiver;

let wsLoaded: { Receiver: WsReceiverClass; kStatusCode: symbol } | string | undefined;

/** ws's own receiver and its status-code symbol, loaded by path, or why it cannot be. */
function loadWs(): { Receiver: WsReceiverClass; kStatusCode: symbol } | string {
  if (wsLoaded !== undefined) return wsLoaded;
  try {
    // By path: ws's package exports hide lib/, and Bun resolves "ws" to its own built-in.
    const require = createRequire(import.meta.url);
    const lib = (file: string) => require(fileURLToPath(new URL(`../../node_modules/ws/lib/${file}`, import.meta.url)));
    wsLoaded = { Receiver: lib("receiver.js") as WsReceiverClass, kStatusCode: (lib("constants.js") as { kStatusCode: symbol }).kStatusCode };
  } catch (err) {
    wsLoaded = `ws/lib/receiver.js does not load here: ${(err as Error).message}`;
  }
  return wsLoaded;
}

/** Why the ws properties cannot run on this runtime, or `undefined` when they can. */
export function wsReceiverMissing(): string | undefined {
  const ws = loadWs();
  return typeof ws === "string" ? ws : undefined;
}

/** What ws's receiver made of some chunks: its items, and its error (code and close code) if it failed. */
async function wsReceive(
  chunks: Uint8Array[],
  options: { isServer: boolean; maxPayload?: number },
): Promise<{ items: Item[]; error?: { code: string; closeCode: number } }> {
  const ws = loadWs();
  if (typeof ws === "string") throw new Error(ws);
  const receiver = new ws.Receiver(options);
  const items: Item[] = [];
  let error: { code: string; closeCode: number } | undefined;
  let concluded = false;
  receiver.on("message", (data: Uint8Array, isBinary: boolean) => {
    items.push({ type: "message", data: isBinary ? new Uint8Array(data) : decoder.decode(data) });
  });
  receiver.on("ping", (data: Uint8Array) => items.push({ type: "ping", data: new Uint8Array(data) }));
  receiver.on("pong", (data: Uint8Array) => items.push({ type: "pong", data: new Uint8Array(data) }));
  receiver.on("conclude", (code: number, reason: Uint8Array) => {
    concluded = true;
    items.push({ type: "close", code, reason: decoder.decode(reason) });
  });
  receiver.on("error", (err: Error & { code: string } & Record<symbol, number>) => {
    error ??= { code: err.code, closeCode: err[ws.kStatusCode]! };
  });
  for (const chunk of chunks) {
    // After a close frame or an error ws stops reading (and would report a write after end).
    if (concluded || receiver._errored) break;
    receiver.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
  }
  // ws reports a fault from a stream callback, a tick later.
  await new Promise<void>((resolve) => setImmediate(resolve));
  return error === undefined ? { items } : { items, error };
}

const wsValid: FuzzProperty = {
  name: "ws: on valid client streams, ws's receiver and the engine report the same items",
  runs: 150,
  ws: true,
  property: () =>
    fc.asyncProperty(streamArb, splitArb, async (stream, how) => {
      const chunks = split(stream.bytes, how);
      const ws = await wsReceive(chunks.map((c) => c.slice()), { isServer: true, maxPayload: 1 << 24 });
      const run = runOpen(chunks, {}, {});
      assert.equal(ws.error, undefined, `ws failed: ${JSON.stringify(ws.error)}`);
      assert.deepEqual(ws.items, stream.items);
      assert.deepEqual(engineItems(run.events), ws.items);
    }),
};

/** An invalid ending for a valid stream, with the close code RFC 6455 implies and, where it differs, ws's. */
interface Fault {
  kind: string;
  /** The engine's error code. */
  code: string;
  bytes: Uint8Array;
  closeCode: number;
  /** ws's close code, where it legitimately differs (see the comment at its fault). */
  wsCloseCode?: number;
  /** Items of the fault both report before failing. */
  before?: Item[];
  /** Items ws reports before failing that the engine does not (see the comment at its fault). */
  wsBefore?: Item[];
}

const MAX_PAYLOAD = 1024;
const smallArb = fc.uint8Array({ maxLength: 20 });
const invalidCloseCodeArb = fc.oneof(
  fc.integer({ min: 0, max: 999 }),
  fc.constantFrom(1004, 1005, 1006, 1015, 1016, 2999),
  fc.integer({ min: 1016, max: 2999 }),
  fc.integer({ min: 5000, max: 65535 }),
);

const faultArb: fc.Arbitrary<Fault> = fc.oneof(
  fc.tuple(fc.constantFrom(3, 4, 5, 6, 7, 11, 12, 13, 14, 15), smallArb, keyArb).map(([op, p, k]) => ({
    kind: `reserved opcode ${op}`,
    code: "WS_ERR_INVALID_OPCODE",
    bytes: masked(op, p, k),
    closeCode: 1002,
  })),
  fc.tuple(fc.integer({ min: 1, max: 7 }), fc.constantFrom(TEXT, BINARY, PING, PONG, CLOSE), keyArb).map(([rsv, op, k]) => ({
    kind: `RSV ${rsv} on opcode ${op}`,
    code: "WS_ERR_UNEXPECTED_RSV",
    bytes: clientFrame({ fin: true, rsv, opcode: op, masked: true, key: k, payload: op === CLOSE ? closeBody(1000) : Uint8Array.of(0x61), form: "min" }),
    closeCode: 1002,
  })),
  fc.tuple(fc.constantFrom(TEXT, BINARY, PING, PONG, CLOSE), smallArb).map(([op, p]) => ({
    kind: `unmasked opcode ${op}`,
    code: "WS_ERR_UNMASKED_FRAME",
    bytes: clientFrame({ fin: true, rsv: 0, opcode: op, masked: false, key: new Uint8Array(4), payload: op === CLOSE ? closeBody(1000) : p, form: "min" }),
    closeCode: 1002,
  })),
  fc.tuple(textArb, badUtf8Arb, textArb, fc.array(fc.nat({ max: 1 << 16 }), { maxLength: 3 }), controlPayloadArb, keyArb).map(
    ([a, bad, b, cuts, ping, k]): Fault => {
      // Bad UTF-8 somewhere in a text message, fragmented anywhere, with a ping after the first fragment.
      const head = encoder.encode(a), tail = encoder.encode(b);
      const payload = cat(head, bad, tail);
      const offsets = [...new Set(cuts.map((n) => n % (payload.length + 1)))].sort((x, y) => x - y);
      const bounds = [0, ...offsets, payload.length];
      const frames: Uint8Array[] = [];
      for (let f = 0; f < bounds.length - 1; f++) {
        frames.push(masked(f === 0 ? TEXT : CONT, payload.subarray(bounds[f], bounds[f + 1]), k, f === bounds.length - 2));
        if (f === 0 && bounds.length > 2) frames.push(masked(PING, ping, k));
      }
      // Where a decoder knows the bytes are bad: at a byte that starts no
      // sequence (FF, 80, C0), at the second byte of a sequence out of range
      // (E0 80, ED A0, F4 90), at the next character after a truncated
      // sequence (E2 82), or at the end of the message when none follows.
      const truncated = bad[0] === 0xe2;
      const known = bad.length === 1 || bad[0] === 0xc0 ? head.length : !truncated ? head.length + 1 : tail.length > 0 ? head.length + 2 : payload.length;
      const pinged = bounds.length > 2;
      // The engine fails at that byte (DESIGN.md: "Fail fast"), so it reports
      // the ping only when the byte is past the first fragment. ws checks
      // UTF-8 once the message is whole: it always reports the ping first.
      const engineSeesPing = pinged && known >= bounds[1]!;
      return {
        kind: "bad UTF-8 in text",
        code: "WS_ERR_INVALID_UTF8",
        bytes: cat(...frames),
        closeCode: 1007,
        before: engineSeesPing ? [{ type: "ping", data: ping }] : [],
        wsBefore: pinged && !engineSeesPing ? [{ type: "ping", data: ping }] : [],
      };
    },
  ),
  fc.tuple(validCloseCodeArb.filter((c) => c !== 1005), badUtf8Arb, keyArb).map(([code, bad, k]) => ({
    kind: "bad UTF-8 in a close reason",
    code: "WS_ERR_INVALID_UTF8",
    bytes: masked(CLOSE, closeBody(code, cat(encoder.encode("bye"), bad)), k),
    closeCode: 1007,
  })),
  fc.tuple(fc.integer({ min: MAX_PAYLOAD + 1, max: MAX_PAYLOAD + 300 }), fc.boolean(), fc.constantFrom(TEXT, BINARY), keyArb).map(([n, whole, op, k]) => ({
    kind: "a frame over the limit",
    code: "WS_ERR_FRAME_TOO_BIG",
    bytes: whole ? masked(op, new Uint8Array(n).fill(0x61), k) : masked(op, new Uint8Array(n).fill(0x61), k).subarray(0, 8),
    closeCode: 1009,
  })),
  fc.tuple(fc.integer({ min: 1, max: MAX_PAYLOAD }), fc.integer({ min: 1, max: 300 }), fc.constantFrom(TEXT, BINARY), keyArb).map(([a, b, op, k]) => {
    const first = Math.min(a, MAX_PAYLOAD);
    const second = MAX_PAYLOAD - first + b;
    return {
      kind: "a fragmented message over the limit",
      code: second > MAX_PAYLOAD ? "WS_ERR_FRAME_TOO_BIG" : "WS_ERR_MESSAGE_TOO_BIG",
      bytes: cat(masked(op, new Uint8Array(first).fill(0x62), k, false), masked(CONT, new Uint8Array(second).fill(0x63), k)),
      closeCode: 1009,
    };
  }),
  fc.tuple(fc.constantFrom(PING, PONG, CLOSE), keyArb).map(([op, k]) => ({
    kind: `fragmented control ${op}`,
    code: "WS_ERR_FRAGMENTED_CONTROL",
    bytes: masked(op, op === CLOSE ? closeBody(1000) : Uint8Array.of(1), k, false),
    closeCode: 1002,
  })),
  fc.tuple(fc.constantFrom(PING, PONG, CLOSE), fc.integer({ min: 126, max: 300 }), keyArb).map(([op, n, k]) => ({
    kind: `control ${op} of ${n} bytes`,
    code: "WS_ERR_CONTROL_TOO_LONG",
    bytes: masked(op, op === CLOSE ? closeBody(1000, "x".repeat(n - 2)) : new Uint8Array(n), k),
    closeCode: 1002,
  })),
  keyArb.map((k) => ({ kind: "a close of 1 byte", code: "WS_ERR_INVALID_CLOSE_PAYLOAD", bytes: masked(CLOSE, Uint8Array.of(3), k), closeCode: 1002 })),
  fc.tuple(invalidCloseCodeArb, keyArb).map(([code, k]) => ({ kind: `close code ${code}`, code: "WS_ERR_INVALID_CLOSE_CODE", bytes: masked(CLOSE, closeBody(code, "x"), k), closeCode: 1002 })),
  fc.tuple(smallArb, keyArb).map(([p, k]) => ({ kind: "a continuation with nothing to continue", code: "WS_ERR_UNEXPECTED_CONTINUATION", bytes: masked(CONT, p, k), closeCode: 1002 })),
  fc.tuple(fc.constantFrom(TEXT, BINARY), fc.constantFrom(TEXT, BINARY), keyArb).map(([a, b, k]) => ({
    kind: "a new data frame inside a fragmented message",
    code: "WS_ERR_EXPECTED_CONTINUATION",
    bytes: cat(masked(a, Uint8Array.of(0x61), k, false), masked(b, Uint8Array.of(0x62), k)),
    closeCode: 1002,
  })),
  fc.tuple(fc.integer({ min: 0x80, max: 0xff }), keyArb).map(([high, k]) => ({
    kind: "a 64-bit length with the most significant bit set",
    code: "WS_ERR_INVALID_LENGTH",
    bytes: cat(Uint8Array.of(0x82, 0xff, high, 0, 0, 0, 0, 0, 0, 1), k),
    closeCode: 1002,
    // RFC 6455 §5.2: "the most significant bit MUST be 0": a protocol error,
    // 1002. ws does not look at that bit: it refuses any length past 2^53 - 1
    // as unsupported, 1009 (WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH).
    wsCloseCode: 1009,
  })),
);

const wsInvalid: FuzzProperty = {
  name: "ws: on invalid client streams, ws's receiver and the engine both fail, with the same close code",
  runs: 250,
  ws: true,
  property: () =>
    fc.asyncProperty(fc.array(smallPlanArb, { maxLength: 3 }), faultArb, splitArb, async (plans, fault, how) => {
      const prefix = buildStream(plans);
      const input = cat(prefix.bytes, fault.bytes);
      const chunks = split(input, how);
      const ws = await wsReceive(chunks.map((c) => c.slice()), { isServer: true, maxPayload: MAX_PAYLOAD });
      const run = runOpen(chunks, { maxMessageBytes: MAX_PAYLOAD, maxFrameBytes: MAX_PAYLOAD }, { end: true });
      const items = engineItems(run.events);
      const error = items.pop();
      const expected = [...prefix.items, ...(fault.before ?? [])];
      assert.deepEqual(error?.type === "error" && [error.code, error.closeCode], [fault.code, fault.closeCode], `the engine on ${fault.kind}`);
      assert.deepEqual(items, expected, "the engine reports what came before the fault");
      assert.ok(ws.error !== undefined, `ws did not fail on ${fault.kind}`);
      assert.equal(ws.error.closeCode, fault.wsCloseCode ?? fault.closeCode, `ws on ${fault.kind}: ${ws.error.code}`);
      assert.deepEqual(ws.items, [...expected, ...(fault.wsBefore ?? [])], "ws reports what came before the fault");
    }),
};

const wsRandom: FuzzProperty = {
  name: "ws: on frame-like bytes, ws's receiver and the engine agree, but for the documented differences",
  runs: 250,
  ws: true,
  property: () =>
    fc.asyncProperty(openBytesArb, splitArb, async (input, how) => {
      const chunks = split(input, how);
      const ws = await wsReceive(chunks.map((c) => c.slice()), { isServer: true, maxPayload: MAX_PAYLOAD });
      const run = runOpen(chunks, { maxMessageBytes: MAX_PAYLOAD, maxFrameBytes: MAX_PAYLOAD, maxFragments: 1e9 }, {});
      const items = engineItems(run.events);
      const last = items[items.length - 1];
      const error = last?.type === "error" ? (items.pop(), last) : undefined;
      if (error?.code === "WS_ERR_INVALID_UTF8" && items[items.length - 1]?.type !== "close") {
        // The engine fails a text message at its first bad byte (DESIGN.md:
        // "Fail fast"); ws checks UTF-8 once the message is whole. So ws may
        // still report control frames that came after that byte, then fail
        // with 1007 at the end of the message, or on a later frame's fault,
        // or not at all when the input ends first. Only the data messages
        // before the bad one must agree.
        const messages = (list: readonly { type: string }[]) => list.filter((i) => i.type === "message");
        assert.deepEqual(messages(ws.items).slice(0, messages(items).length), messages(items));
        assert.ok(ws.items.length >= items.length);
        return;
      }
      assert.deepEqual(ws.items, items, "the same items before any fault");
      if (error?.code === "WS_ERR_INVALID_LENGTH") {
        // RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0:
        // the engine fails with 1002; ws refuses any length past 2^53 - 1 as
        // unsupported, 1009.
        assert.equal(ws.error?.closeCode, 1009);
        return;
      }
      if (error === undefined && ws.error?.code === "WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH") {
        // A close frame announcing 1 byte: ws fails at its header, the engine
        // reads the byte first (both 1002 once it arrives); here it never did.
        assert.equal(run.state, ReadyState.Open);
        return;
      }
      assert.equal(ws.error?.closeCode, error?.closeCode, `engine ${error?.code}, ws ${ws.error?.code}`);
    }),
};

const wsServerFrames: FuzzProperty = {
  name: "ws: ws's client receiver reads the engine's server frames as sent",
  runs: 150,
  ws: true,
  property: () =>
    fc.asyncProperty(serverSendsArb, splitArb, async ([sends, close], how) => {
      const { output, items } = serverSend(sends, close);
      const ws = await wsReceive(split(output, how), { isServer: false });
      assert.equal(ws.error, undefined, `ws failed: ${JSON.stringify(ws.error)}`);
      assert.deepEqual(ws.items, items);
    }),
};

/** Every property, in the order they run. */
export const PROPERTIES: readonly FuzzProperty[] = [
  handshake,
  headerLimit,
  decoderProperty,
  roundTrip,
  serverEncoder,
  wsValid,
  wsInvalid,
  wsRandom,
  wsServerFrames,
];
