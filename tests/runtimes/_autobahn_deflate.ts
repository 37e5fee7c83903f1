// permessage-deflate conformance (RFC 7692), written as data like
// `_autobahn.ts`: Autobahn|Testsuite sections 12 (compressed echo of
// different payloads) and 13 (different parameters), with Autobahn's ids,
// offers, payload sizes and auto-fragment sizes (crossbario/autobahn-testsuite,
// `case/case12_x_x.py`), plus Duplex cases ("+" in the id) for the
// negotiation and the protocol errors that only compression has.
//
// The server under test is an echo server with permessage-deflate enabled and
// a limit on the size of a message once inflated (`maxMessageBytes`, 1 MiB
// unless told). Strict means: the response to our offer is valid for a
// client (checked by `_wsclient.ts`) and is the one our policy expects (an
// offer the server cannot honour, such as a window of 8 bits that zlib's raw
// deflate does not have, is declined, and the next acceptable offer of the
// same header is taken); every echo is byte-identical, in order, of the same
// type, and arrives compressed (RSV1) when compression was negotiated; the
// server's messages inflate with exactly the negotiated window and context
// rules; errors close with the exact code, then FIN, and nothing after.
//
// Differences from Autobahn, all on the client side:
// - Autobahn sends 1000 messages per case, one round trip each. Here a case
//   sends `min(1000, 64, max(4, 512 KiB / size))` messages (64 up to 8 KiB,
//   then 32, 16, 8 and 4 for 16 KiB to 128 KiB), still one round trip each:
//   every size, fragment size, payload kind and offer of the matrix is kept.
// - Autobahn's test files (data1.json, lena512.bmp, pg2229.txt, data1.html,
//   a PDF) are not shipped: each is replaced by data of the same kind and
//   size generated from a seeded PRNG (see `testData`). Text payloads are
//   sliced on code points, as Autobahn slices its text files, so a message
//   may be longer in bytes than its size in characters.
// - 13.3 and 13.5 offer `server_max_window_bits=8`, which our policy
//   declines: the cases check the decline, then run the same exchange
//   uncompressed. 13.3+ and 13.5+ run them again with 9 bits, accepted.
import assert from "node:assert/strict";
import { constants as zlibConstants, deflateRawSync } from "node:zlib";
import { prng } from "../_prng.ts";
import {
  autobahnFragments,
  type ConformanceCase,
  type ConformanceOptions,
  type ConformanceSection,
  type Connect,
  runSections,
} from "./_autobahn.ts";
import {
  type ConnectOptions,
  concat,
  type DeflateParams,
  deflateRaw,
  type FrameSpec,
  hex,
  type HttpResponse,
  Op,
  type Received,
  sha1,
  toBytes,
  type WsClient,
} from "./_wsclient.ts";

/** What {@linkcode runDeflateConformance} and {@linkcode deflateConformanceCases} accept. */
export interface DeflateConformanceOptions extends ConformanceOptions {
  /** The server's limit on a message once inflated, in bytes. Default 1 MiB. */
  maxMessageBytes?: number;
  /** Echoes shorter than this may arrive uncompressed. Default 0: every echo must be compressed. */
  compressThreshold?: number;
  /** Register only the cases for which this returns true (another server runs the others). */
  only?(id: string): boolean;
}

const MiB = 1024 * 1024;
/** How long the server may take to answer what should be answered at once. */
const ANSWER_MS = 2000;
/** A decompression bomb must be refused this soon after it is sent. */
const BOMB_MS = 1000;
/** Bound on one case of the matrix. */
const MATRIX_MS = 30_000;

/** Autobahn's default offer: `PerMessageDeflateOffer()` (accepts both requests, requests nothing). */
export const AUTOBAHN_OFFER = "permessage-deflate; client_no_context_takeover; client_max_window_bits";
/** What browsers and `ws` offer. */
const BARE_OFFER = "permessage-deflate; client_max_window_bits";

// ---- deterministic test data (Autobahn's files, replaced) ----

const LOREM = (
  "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna " +
  "aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo consequat duis aute " +
  "irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non " +
  "proident sunt culpa qui officia deserunt mollit anim id est laborum"
).split(" ");

function words(r: () => number, n: number, list: readonly string[] = LOREM): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(list[Math.floor(r() * list.length)]!);
  return out.join(" ");
}

/** Like data1.json: records from a JSON generator, some names outside ASCII. */
function jsonText(length: number): string {
  const r = prng(12_1);
  const firsts = ["Anna", "Bjørn", "Chloé", "Dmitri", "Émile", "Fatima", "Günther", "Hiroshi", "Inés", "José", "Léa", "Zoë", "Mei", "Søren"];
  const lasts = ["Müller", "Nowak", "García", "Øyen", "Dubois", "Kowalski", "Tanaka", "O'Brien", "Håkansson", "Rossi", "Smith"];
  const records: unknown[] = [];
  let size = 0;
  for (let id = 0; size < length; id++) {
    const name = `${firsts[Math.floor(r() * firsts.length)]} ${lasts[Math.floor(r() * lasts.length)]}`;
    const record = {
      _id: Array.from({ length: 12 }, () => Math.floor(r() * 256).toString(16).padStart(2, "0")).join(""),
      index: id,
      guid: `${Math.floor(r() * 2 ** 32).toString(16)}-${Math.floor(r() * 65536).toString(16)}-4${Math.floor(r() * 4096).toString(16)}`,
      isActive: r() < 0.5,
      balance: `$${(r() * 4000).toFixed(2)}`,
      age: 20 + Math.floor(r() * 50),
      eyeColor: ["blue", "brown", "green"][Math.floor(r() * 3)],
      name,
      email: `${name.split(" ")[0]!.toLowerCase()}@example.com`,
      about: words(r, 10 + Math.floor(r() * 30)),
      latitude: Number((r() * 180 - 90).toFixed(6)),
      longitude: Number((r() * 360 - 180).toFixed(6)),
      tags: Array.from({ length: 1 + Math.floor(r() * 6) }, () => words(r, 1)),
      friends: Array.from({ length: Math.floor(r() * 4) }, (_, i) => ({ id: i, name: words(r, 2) })),
    };
    records.push(record);
    size += JSON.stringify(record, null, 2).length + 4;
  }
  return Array.from(JSON.stringify(records, null, 2)).slice(0, length).join("");
}

/** Like data1.html: a long ASCII page of nested markup. */
function htmlText(length: number): string {
  const r = prng(12_4);
  let out = '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Data</title>\n</head>\n<body>\n';
  for (let section = 0; out.length < length; section++) {
    out += `<div class="section s${section}" id="section-${section}">\n  <h2>${words(r, 4)}</h2>\n`;
    for (let p = 0; p < 3; p++) out += `  <p class="text">${words(r, 40)} <a href="/page/${Math.floor(r() * 1000)}">${words(r, 2)}</a>.</p>\n`;
    out += '  <ul class="list">\n';
    for (let li = 0; li < 4; li++) out += `    <li><span class="item">${words(r, 3)}</span></li>\n`;
    out += "  </ul>\n  <table>\n";
    for (let row = 0; row < 3; row++) out += `    <tr><td>${Math.floor(r() * 1e6)}</td><td>${words(r, 2)}</td></tr>\n`;
    out += "  </table>\n</div>\n";
  }
  return out.slice(0, length);
}

/** Like pg2229.txt: German verse (UTF-8, sent as binary, sliced on bytes). */
function faustBytes(length: number): Uint8Array {
  const r = prng(12_3);
  const vocabulary = (
    "ich du er sie es wir ihr und der die das nicht mit ist zu den ein eine auf dem sich im für von wie so auch " +
    "schön Herz Geist Welt Gott Nacht Tag Himmel Erde Seele Lust Leben Tod gar nun doch wohl noch schon ganz " +
    "möcht wär hätt müßt Blüte Träume Gefühl Töne Glück Mädchen Gretchen Feuer Wasser Luft ewig still laß heiß"
  ).split(" ");
  const speakers = ["FAUST.", "MEPHISTOPHELES.", "WAGNER.", "MARGARETE.", "MARTHE.", "CHOR DER ENGEL.", "SCHÜLER."];
  let text = "Faust: Der Tragödie erster Teil\n\nvon Johann Wolfgang von Goethe\n\n";
  const encoder = new TextEncoder();
  const parts: string[] = [text];
  let size = encoder.encode(text).length;
  while (size < length) {
    text = `${speakers[Math.floor(r() * speakers.length)]}\n`;
    const lines = 2 + Math.floor(r() * 8);
    for (let i = 0; i < lines; i++) {
      const line = words(r, 4 + Math.floor(r() * 5), vocabulary);
      text += `${line[0]!.toUpperCase()}${line.slice(1)}${r() < 0.3 ? "!" : r() < 0.5 ? "," : "."}\n`;
    }
    text += "\n";
    parts.push(text);
    size += encoder.encode(text).length;
  }
  return encoder.encode(parts.join("")).slice(0, length);
}

/** Like lena512.bmp: a 512×512 8-bit grey BMP of smooth shapes and a little noise. */
function bmpBytes(): Uint8Array {
  const r = prng(12_2);
  const w = 512, h = 512, offset = 14 + 40 + 1024;
  const out = new Uint8Array(offset + w * h);
  const view = new DataView(out.buffer);
  out[0] = 0x42;
  out[1] = 0x4d;
  view.setUint32(2, out.length, true);
  view.setUint32(10, offset, true);
  view.setUint32(14, 40, true);
  view.setInt32(18, w, true);
  view.setInt32(22, h, true);
  view.setUint16(26, 1, true);
  view.setUint16(28, 8, true);
  view.setUint32(34, w * h, true);
  view.setUint32(38, 2835, true);
  view.setUint32(42, 2835, true);
  view.setUint32(46, 256, true);
  for (let i = 0; i < 256; i++) out.set([i, i, i, 0], 54 + i * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = 120 + 50 * Math.sin(x / 37 + y / 53) + 40 * Math.cos(Math.hypot(x - 200, y - 300) / 23) + (r() - 0.5) * 12;
      out[offset + y * w + x] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return out;
}

/** Like the PDF: mostly compressed streams (random bytes) between short text objects. */
function pdfBytes(length: number): Uint8Array {
  const r = prng(12_5);
  const out = new Uint8Array(length);
  const encoder = new TextEncoder();
  let at = 0;
  const put = (bytes: Uint8Array) => {
    out.set(bytes.subarray(0, length - at), at);
    at = Math.min(length, at + bytes.length);
  };
  put(encoder.encode("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"));
  for (let obj = 1; at < length; obj++) {
    const n = 1024 + Math.floor(r() * 16384);
    put(encoder.encode(`${obj} 0 obj\n<< /Length ${n} /Filter /FlateDecode >>\nstream\n`));
    const stream = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const v = Math.floor(r() * 2 ** 32);
      stream[i] = v & 0xff;
      stream[i + 1] = (v >>> 8) & 0xff;
      stream[i + 2] = (v >>> 16) & 0xff;
      stream[i + 3] = v >>> 24;
    }
    put(stream);
    put(encoder.encode(`\nendstream\nendobj\n${obj + 1000} 0 obj\n<< /Type /Page /Parent 3 0 R /Resources << /Font << /F1 5 0 R >> >> >>\nendobj\n`));
  }
  return out;
}

/** One of Autobahn's test files: its sub-section title, type and size, and its payloads. */
interface TestData {
  title: string;
  binary: boolean;
  /** Autobahn's file size, which ours matches (bytes, or code points for text). */
  size: number;
  /** Code points (text) or bytes (binary), generated on first use. */
  units(): string[] | Uint8Array;
}

function lazy<T>(make: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= make());
}

/** Autobahn's `WS_COMPRESSION_TESTDATA_KEYS` order: json_data1, lena512, gutenberg_faust, html_data1, ooms. */
const testData: TestData[] = [
  { title: "JSON data (text)", binary: false, size: 194_237, units: lazy(() => Array.from(jsonText(194_237))) },
  { title: "a 512×512 grey bitmap (binary)", binary: true, size: 263_222, units: lazy(bmpBytes) },
  { title: "German verse, UTF-8 sent as binary", binary: true, size: 222_218, units: lazy(() => faustBytes(222_218)) },
  { title: "HTML (text)", binary: false, size: 167_265, units: lazy(() => Array.from(htmlText(167_265))) },
  { title: "a PDF, mostly compressed streams (binary)", binary: true, size: 1_042_328, units: lazy(() => pdfBytes(1_042_328)) },
];

/**
 * Autobahn's `sendOne`: `count` messages of `size` units each, taken one
 * after the other from the file, wrapping around its end (here also when a
 * message is longer than the file).
 */
function* payloads(data: TestData, size: number, count: number): Generator<Uint8Array> {
  const units = data.units();
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (Array.isArray(units)) {
      const taken: string[] = [];
      for (let left = size; left > 0;) {
        const piece = units.slice(at, at + left);
        taken.push(piece.join(""));
        left -= piece.length;
        at = (at + piece.length) % units.length;
      }
      yield toBytes(taken.join(""));
    } else {
      const pieces: Uint8Array[] = [];
      for (let left = size; left > 0;) {
        const piece = units.subarray(at, at + left);
        pieces.push(piece);
        left -= piece.length;
        at = (at + piece.length) % units.length;
      }
      yield concat(pieces);
    }
  }
}

// ---- the matrix ----

/** Autobahn's `MSG_SIZES`: (payload size, auto-fragment size; 0: none), each sent 1000 times there. */
const MSG_SIZES: [number, number][] = [
  [16, 0],
  [64, 0],
  [256, 0],
  [1024, 0],
  [4096, 0],
  [8192, 0],
  [16384, 0],
  [32768, 0],
  [65536, 0],
  [131072, 0],
  [8192, 256],
  [16384, 256],
  [32768, 256],
  [65536, 256],
  [131072, 256],
  [131072, 1024],
  [131072, 4096],
  [131072, 32768],
];

/** Messages per case here (Autobahn: 1000): at most 64, about 512 KiB per case, at least 4. */
export function scaledCount(size: number): number {
  return Math.min(1000, 64, Math.max(4, Math.floor((512 * 1024) / size)));
}

// ---- expectations ----

/** What the response to an offer must be. */
interface Expect {
  offer: string;
  /** Throws when the negotiated parameters (`undefined`: declined) break our policy. */
  check(negotiated: DeflateParams | undefined, response: HttpResponse): void;
}

/** The server accepts the offer at `offerIndex` (0-based among the header's offers); `also` checks more. */
function accepts(offer: string, offerIndex = 0, also?: (d: DeflateParams) => void): Expect {
  return {
    offer,
    check(d, response) {
      assert.ok(d, `the server accepts ${JSON.stringify(offer)}; its response: ${response.headers["sec-websocket-extensions"] ?? "none"}`);
      assert.equal(d.offerIndex, offerIndex, `the server accepts offer ${offerIndex + 1} of ${JSON.stringify(offer)}, it answered ${d.response}`);
      // Our policy: nothing zlib's raw deflate cannot do (no window of 8 bits).
      assert.notEqual(d.serverMaxWindowBits, 8, `server_max_window_bits=8 in ${d.response}`);
      assert.notEqual(d.clientMaxWindowBits, 8, `client_max_window_bits=8 in ${d.response}`);
      also?.(d);
    },
  };
}

/** The server declines every offer: a 101 without `Sec-WebSocket-Extensions`. */
function declines(offer: string): Expect {
  return {
    offer,
    check(d, response) {
      assert.equal(response.headers["sec-websocket-extensions"], undefined, `the server declines ${JSON.stringify(offer)}`);
      assert.equal(d, undefined);
    },
  };
}

async function open(connect: Connect, expect: Expect | undefined, options: ConnectOptions = {}): Promise<WsClient> {
  const c = await connect(expect ? { ...options, deflate: { offer: expect.offer } } : options);
  assert.equal(c.response?.status, 101, `the handshake: ${c.describe()}`);
  assert.equal(c.negotiationError, undefined, `the response's Sec-WebSocket-Extensions is invalid: ${c.negotiationError}`);
  expect?.check(c.deflate, c.response!);
  return c;
}

/** Whether the connection can no longer deliver an echo. */
function ended(c: WsClient): boolean {
  return c.events.some((e) => e.kind !== "frame" || e.frame.opcode === Op.Close);
}

function describeMessage(m: Received | undefined): string {
  if (m === undefined) return "nothing";
  if (m.type !== "message") return `a ${m.type}`;
  return `${m.binary ? "binary" : "text"} ${m.data.length}B sha1:${sha1(m.data)}${m.compressed ? ` (compressed, ${m.wireBytes}B)` : ""}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Sends each message (compressed when negotiated, cut into `fragmentSize`
 * frames when given) and waits for its echo before the next, as Autobahn
 * does; each echo must be the same bytes and type, and compressed when
 * negotiated (unless shorter than `threshold`).
 */
async function roundTrips(
  c: WsClient,
  messages: Iterable<Uint8Array>,
  binary: boolean,
  fragmentSize: number,
  threshold: number,
  mayCompress: (index: number) => boolean = () => true,
): Promise<number> {
  let i = 0;
  for (const data of messages) {
    const compress = c.deflate !== undefined && mayCompress(i);
    // Autobahn cuts the compressed bytes (or the plain ones), and adds an empty final frame when they divide evenly.
    const opcode = binary ? Op.Binary : Op.Text;
    await c.sendFrames(compress ? autobahnFragments(opcode, await c.compress(data), fragmentSize, 4) : autobahnFragments(opcode, data, fragmentSize));
    const index = i;
    await c.waitFor(() => c.received().length > index || ended(c), `the echo of message ${index + 1}`, ANSWER_MS);
    const got = c.received()[index];
    const want = `${binary ? "binary" : "text"} ${data.length}B sha1:${sha1(data)}`;
    assert.ok(
      got?.type === "message" && got.binary === binary && sameBytes(got.data, data),
      `message ${index + 1}: expected the echo of ${want}, got ${describeMessage(got)}; seen: ${c.describe()}`,
    );
    if (c.deflate !== undefined && data.length >= threshold) {
      assert.equal(got.compressed, true, `message ${index + 1}: the echo of ${want} arrives compressed (RSV1)`);
    }
    i++;
  }
  return i;
}

/** Closes with 1000 and checks the clean close and that every message was echoed once. */
async function closeCleanly(c: WsClient, messages: number): Promise<void> {
  await c.sendClose(1000);
  await c.expectClose(1000);
  assert.equal(c.received().length, messages, `echoes in all: ${c.describe()}`);
}

// ---- case kinds ----

/** A case of the 12/13 matrix. */
function matrixCase(
  id: string,
  data: TestData,
  [size, fragmentSize]: [number, number],
  expect: Expect,
  threshold: number,
): ConformanceCase {
  const count = scaledCount(size);
  const frag = fragmentSize === 0 ? "" : `, auto-fragmented to ${fragmentSize} octets`;
  return {
    id,
    title: `${count} messages of ${size} (Autobahn: 1000)${frag}`,
    timeoutMs: MATRIX_MS,
    async run(connect) {
      const c = await open(connect, expect);
      const sent = await roundTrips(c, payloads(data, size, count), data.binary, fragmentSize, threshold);
      await closeCleanly(c, sent);
    },
  };
}

/** Negotiation, then a few JSON messages echoed (compressed when negotiated), then a clean close. */
function negotiates(id: string, title: string, expect: Expect, threshold: number, size = 1024, count = 8): ConformanceCase {
  return {
    id,
    title,
    async run(connect) {
      const c = await open(connect, expect);
      const sent = await roundTrips(c, payloads(testData[0]!, size, count), false, 0, threshold);
      await closeCleanly(c, sent);
    },
  };
}

/**
 * The server must fail the connection: its close frame with `code`, started
 * by it, then FIN, nothing echoed; within `withinMs` of our last write when given.
 */
function fails(
  id: string,
  title: string,
  expect: Expect | undefined,
  send: (c: WsClient) => Promise<void>,
  code: number | number[],
  withinMs?: number,
): ConformanceCase {
  return {
    id,
    title,
    async run(connect) {
      const c = await open(connect, expect);
      await send(c);
      const sentAt = performance.now();
      const closed = await c.expectClose(code, Math.max(ANSWER_MS, withinMs ?? 0));
      assert.ok(c.echoedCloseAt !== undefined && c.echoedCloseAt >= closed.closeAt, "the server started the close");
      assert.deepEqual(c.received().map(describeMessage), [], "nothing echoed before the close");
      if (withinMs !== undefined) {
        assert.ok(closed.closeAt - sentAt < withinMs, `the close came ${Math.round(closed.closeAt - sentAt)} ms after the message (limit ${withinMs} ms)`);
      }
    },
  };
}

/** A sync-flushed raw deflate of `data`, trailer kept (so that such pieces can be concatenated). */
function flushedBlock(data: Uint8Array): Uint8Array {
  const out = deflateRawSync(data, { level: 9, finishFlush: zlibConstants.Z_SYNC_FLUSH });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

// ---- the sections ----

function section12(threshold: number): ConformanceSection {
  const cases: ConformanceCase[] = [];
  testData.forEach((data, j) => {
    MSG_SIZES.forEach((entry, i) => {
      const c = matrixCase(`12.${j + 1}.${i + 1}`, data, entry, accepts(AUTOBAHN_OFFER), threshold);
      cases.push({ ...c, title: `${data.title}: ${c.title}` });
    });
  });
  return { name: "12 permessage-deflate: different payloads (scaled)", cases };
}

/** Autobahn's 13.x offers (`DEFLATE_PARAMS`), each a list of `PerMessageDeflateOffer(requestNoContextTakeover, requestMaxWindowBits)`. */
function offerOf(serverNoContextTakeover: boolean, serverMaxWindowBits: number): string {
  let offer = AUTOBAHN_OFFER;
  if (serverNoContextTakeover) offer += "; server_no_context_takeover";
  if (serverMaxWindowBits !== 0) offer += `; server_max_window_bits=${serverMaxWindowBits}`;
  return offer;
}

function section13(threshold: number, maxMessageBytes: number): ConformanceSection {
  const noContext = (d: DeflateParams) => assert.ok(d.serverNoContextTakeover, `server_no_context_takeover in ${d.response}`);
  const window = (bits: number) => (d: DeflateParams) =>
    assert.ok(d.serverMaxWindowBits !== undefined && d.serverMaxWindowBits <= bits, `server_max_window_bits ≤ ${bits} in ${d.response}`);
  const both = (bits: number) => (d: DeflateParams) => {
    noContext(d);
    window(bits)(d);
  };
  const subSections: [string, string, Expect][] = [
    ["13.1", "default offer", accepts(offerOf(false, 0))],
    ["13.2", "server_no_context_takeover", accepts(offerOf(true, 0), 0, noContext)],
    ["13.3", "server_max_window_bits=8: declined, then uncompressed", declines(offerOf(false, 8))],
    ["13.4", "server_max_window_bits=15", accepts(offerOf(false, 15), 0, window(15))],
    ["13.5", "server_no_context_takeover, server_max_window_bits=8: declined, then uncompressed", declines(offerOf(true, 8))],
    ["13.6", "server_no_context_takeover, server_max_window_bits=15", accepts(offerOf(true, 15), 0, both(15))],
    [
      "13.7",
      "3 offers [(no context, 8 bits), (no context), default]: the 2nd is taken",
      accepts([offerOf(true, 8), offerOf(true, 0), offerOf(false, 0)].join(", "), 1, noContext),
    ],
    ["13.3+", "server_max_window_bits=9", accepts(offerOf(false, 9), 0, window(9))],
    ["13.5+", "server_no_context_takeover, server_max_window_bits=9", accepts(offerOf(true, 9), 0, both(9))],
  ];
  const cases: ConformanceCase[] = [];
  for (const [sub, what, expect] of subSections) {
    MSG_SIZES.forEach((entry, i) => {
      const c = matrixCase(`${sub}.${i + 1}`, testData[0]!, entry, expect, threshold);
      cases.push({ ...c, title: `${what}: ${c.title}` });
    });
  }

  // ---- Duplex additions ----
  const accepted = accepts(BARE_OFFER);
  const decline = (n: number, offer: string, why: string) =>
    negotiates(`13.+.${n}`, `${why}: ${JSON.stringify(offer)} is declined, messages go uncompressed`, declines(offer), threshold);
  const hello = toBytes("Hello, compressed world! Hello, compressed world!");
  const kosmeSurrogate = hex("cebae1bdb9cf83cebcceb5eda080656469746564"); // ends with U+D800
  // A bomb: 1 MiB of zeros deflates to ~1 KB; the same sync-flushed piece repeated inflates to 256 times the limit.
  const zeros = flushedBlock(new Uint8Array(MiB));
  const pieces = Math.ceil((256 * maxMessageBytes) / MiB);
  const bomb = lazy(() => {
    const whole = concat(Array.from({ length: pieces }, () => zeros));
    return whole.subarray(0, whole.length - 4);
  });
  const atLimit = lazy(() => [...payloads(testData[1]!, maxMessageBytes + 1, 1)][0]!);
  cases.push(
    negotiates(
      "13.+.1",
      "2 offers, the 1st with server_max_window_bits=8: the 2nd (10 bits) is taken and honoured",
      accepts(`${BARE_OFFER}; server_max_window_bits=8, ${BARE_OFFER}; server_max_window_bits=10`, 1, window(10)),
      threshold,
      4096,
      16,
    ),
    negotiates(
      "13.+.2",
      "2 offers, the 1st with an unknown parameter: the 2nd is taken",
      accepts(`permessage-deflate; x_unknown, ${BARE_OFFER}`, 1),
      threshold,
    ),
    negotiates(
      "13.+.3",
      "an unknown extension before permessage-deflate: ignored, permessage-deflate taken",
      accepts(`x-unknown-extension; mode=fast, ${BARE_OFFER}`),
      threshold,
    ),
    negotiates(
      "13.+.4",
      "bare client_max_window_bits (what browsers send): accepted, our messages keep their context",
      accepts(BARE_OFFER, 0, (d) => assert.ok(d.clientMaxWindowBits === undefined || d.clientMaxWindowBits >= 9)),
      threshold,
      512,
      32,
    ),
    decline(5, "permessage-deflate; x_unknown_param", "an unknown parameter"),
    decline(6, "permessage-deflate; server_max_window_bits=08", "a leading zero"),
    decline(7, "permessage-deflate; server_max_window_bits=16", "window bits out of range"),
    decline(8, "permessage-deflate; server_max_window_bits", "server_max_window_bits without a value"),
    decline(9, "permessage-deflate; client_no_context_takeover=1", "a value on a flag"),
    decline(10, "permessage-deflate; server_no_context_takeover; server_no_context_takeover", "a repeated parameter"),
    decline(11, "permessage-deflate; client_max_window_bits=8", "client_max_window_bits=8, which zlib cannot honour"),
    {
      id: "13.+.12",
      title: "compressed, uncompressed, compressed: RSV1 is per message and the context carries over the plain one",
      async run(connect) {
        const c = await open(connect, accepted);
        const messages = [...payloads(testData[0]!, 2048, 2)];
        const sent = await roundTrips(c, [messages[0]!, messages[1]!, messages[0]!], false, 0, threshold, (i) => i !== 1);
        await closeCleanly(c, sent);
      },
    },
    {
      id: "13.+.13",
      title: "an empty compressed message (payload 0x00) is echoed empty",
      async run(connect) {
        const c = await open(connect, accepted);
        const wire = await c.compress("");
        assert.deepEqual([...wire], [0], "an empty message compresses to 0x00 (RFC 7692 §7.2.3.6)");
        await c.sendFrames([{ opcode: Op.Text, payload: wire, rsv: 4 }]);
        await c.waitForReceived(1);
        assert.deepEqual(c.received().map(describeMessage).map((m) => m.replace(/ \(compressed.*\)$/, "")), [describeMessage({
          type: "message",
          binary: false,
          data: new Uint8Array(0),
        })]);
        await closeCleanly(c, 1);
      },
    },
    {
      id: "13.+.14",
      title: "inflates to exactly the limit: echoed",
      timeoutMs: 15_000,
      async run(connect) {
        const c = await open(connect, accepted);
        const message = atLimit().subarray(0, maxMessageBytes);
        assert.equal(message.length, maxMessageBytes);
        const sent = await roundTrips(c, [message], true, 0, threshold);
        await closeCleanly(c, sent);
      },
    },
    fails(
      "13.+.15",
      "inflates to the limit + 1: close 1009",
      accepted,
      async (c) => {
        await c.sendCompressed(atLimit(), { binary: true });
      },
      1009,
    ),
    fails(
      "13.+.16",
      `decompression bomb (~${Math.round((zeros.length * pieces) / 1024)} KiB inflating to 256 times the limit): close 1009 within ${BOMB_MS} ms`,
      accepted,
      (c) => c.sendFrames([{ opcode: Op.Binary, payload: bomb(), rsv: 4 }]),
      1009,
      BOMB_MS,
    ),
    fails(
      "13.+.17",
      "compressed text that inflates to invalid UTF-8: close 1007",
      accepted,
      (c) => c.sendFrames([{ opcode: Op.Text, payload: deflateRaw(kosmeSurrogate), rsv: 4 }]),
      1007,
    ),
    fails(
      "13.+.18",
      "RSV1 on a ping: close 1002",
      accepted,
      (c) => c.sendFrames([{ opcode: Op.Ping, payload: "ping", rsv: 4 }]),
      1002,
    ),
    fails(
      "13.+.19",
      "RSV1 on a continuation frame: close 1002",
      accepted,
      async (c) => {
        const wire = await c.compress(hello);
        const half = wire.length >> 1;
        const specs: FrameSpec[] = [
          { opcode: Op.Text, payload: wire.subarray(0, half), rsv: 4, fin: false },
          { opcode: Op.Continuation, payload: wire.subarray(half), rsv: 4 },
        ];
        await c.sendFrames(specs);
      },
      1002,
    ),
    fails(
      "13.+.20",
      "a compressed message when nothing was offered: close 1002",
      undefined,
      (c) => c.sendFrames([{ opcode: Op.Text, payload: deflateRaw(hello), rsv: 4 }]),
      1002,
    ),
    fails(
      "13.+.21",
      "a compressed message after the offer was declined: close 1002",
      declines("permessage-deflate; x_unknown_param"),
      (c) => c.sendFrames([{ opcode: Op.Text, payload: deflateRaw(hello), rsv: 4 }]),
      1002,
    ),
    fails(
      "13.+.22",
      "RSV2 on a compressed message: close 1002",
      accepted,
      async (c) => c.sendFrames([{ opcode: Op.Text, payload: await c.compress(hello), rsv: 6 }]),
      1002,
    ),
    fails(
      "13.+.23",
      "a compressed payload that is not valid DEFLATE (reserved block type 11): close 1007 (or 1002)",
      accepted,
      (c) => c.sendFrames([{ opcode: Op.Binary, payload: hex("07ffffffff"), rsv: 4 }]),
      [1007, 1002],
    ),
  );
  return { name: "13 permessage-deflate: different parameters (scaled)", cases };
}

/** Sections 12 and 13, in Autobahn's order, the Duplex cases at the end of 13. */
export function deflateConformanceCases(options: Pick<DeflateConformanceOptions, "maxMessageBytes" | "compressThreshold"> = {}): ConformanceSection[] {
  const threshold = options.compressThreshold ?? 0;
  return [section12(threshold), section13(threshold, options.maxMessageBytes ?? MiB)];
}

/**
 * Registers the cases with `node:test` (`describe` per section, `it` per
 * case) against the echo server that `getUrl()` points to, as
 * `runConformance` does. The server must echo every message with its type,
 * compress with permessage-deflate, and limit an inflated message to
 * `options.maxMessageBytes` (default 1 MiB).
 */
export function runDeflateConformance(getUrl: () => string, options: DeflateConformanceOptions = {}): void {
  const sections = deflateConformanceCases(options)
    .map((section) => ({ ...section, cases: section.cases.filter((c) => options.only?.(c.id) ?? true) }))
    .filter((section) => section.cases.length > 0);
  runSections(sections, getUrl, options);
}
