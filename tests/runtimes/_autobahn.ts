// The conformance cases, written once as data so that every adapter can run
// them: Autobahn|Testsuite sections 1–7, 9 and 10 (same ids, payloads, chops
// and expectations as crossbario/autobahn-testsuite's `case*.py`), plus
// opening-handshake cases. Strict means Autobahn's "OK", never "NON-STRICT":
// the expected frames arrive, the server's close frame has the exact code and
// comes before its TCP FIN with nothing after it, invalid UTF-8 fails as soon
// as the bad byte arrives, and nothing is answered once the connection failed.
//
// Differences from Autobahn, all on the client side: waits are shorter (its
// 1 s pauses are 100–500 ms here), section 9 is scaled down to a few cases of
// each kind, and ids with a "+" are Duplex additions to a section.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  acceptFor,
  closePayload,
  concat,
  type ConnectOptions,
  delay,
  encodeFrame,
  type FrameSpec,
  hex,
  type HttpResponse,
  Op,
  type Received,
  repeat,
  sha1,
  toBytes,
  WsClient,
} from "./_wsclient.ts";

/** Opens a client connection to the server under test. */
export type Connect = (options?: ConnectOptions) => Promise<WsClient>;

/** One case: an id (Autobahn's where there is one), a title and its steps. */
export interface ConformanceCase {
  id: string;
  title: string;
  /** Bound on the whole case, in ms. Default 10,000. */
  timeoutMs?: number;
  run(connect: Connect): Promise<void>;
}

/** A group of cases, registered as one `describe`. */
export interface ConformanceSection {
  name: string;
  cases: ConformanceCase[];
}

/** What {@linkcode runConformance} accepts. */
export interface ConformanceOptions {
  /** A reason to skip the case with this id on this server, or `undefined` to run it. */
  skip?(id: string): string | undefined;
}

/** How long the server may take to answer what should be answered at once. */
const ANSWER_MS = 2000;
/** Autobahn's "nothing happens for a while" step (it waits 1 s). */
const QUIET_MS = 100;
/** Fail-fast bound: the close must arrive this soon after the bad byte (Autobahn: before its 1 s timer). */
const FAIL_FAST_MS = 500;
/** For the big messages of section 9. */
const BIG_MS = 15_000;

// ---- expectations ----

const textMsg = (data: string | Uint8Array): Received => ({ type: "message", binary: false, data: toBytes(data) });
const binaryMsg = (data: string | Uint8Array): Received => ({ type: "message", binary: true, data: toBytes(data) });
const pong = (data: string | Uint8Array = ""): Received => ({ type: "pong", data: toBytes(data) });

function toHex(data: Uint8Array): string {
  let out = "";
  for (const b of data) out += b.toString(16).padStart(2, "0");
  return out;
}

/** One line per item: short payloads in hex, long ones as length and SHA-1. */
function show(item: Received): string {
  const kind = item.type === "message" ? (item.binary ? "binary" : "text") : item.type;
  const d = item.data;
  return d.length <= 48 ? `${kind} ${d.length}B 0x${toHex(d)}` : `${kind} ${d.length}B sha1:${sha1(d)}`;
}

function assertReceived(client: WsClient, expected: readonly Received[], when: string): void {
  assert.deepEqual(client.received().map(show), expected.map(show), `what the server sent ${when}`);
}

// ---- frames ----

type Payload = string | Uint8Array;
const frameOf = (opcode: number) => (payload: Payload = "", o: Partial<FrameSpec> = {}): FrameSpec => ({ opcode, payload, ...o });
const text = frameOf(Op.Text);
const binary = frameOf(Op.Binary);
const cont = frameOf(Op.Continuation);
const ping = frameOf(Op.Ping);
const pongFrame = frameOf(Op.Pong);
const close = frameOf(Op.Close);
const op = (opcode: number, payload: Payload = "", o: Partial<FrameSpec> = {}): FrameSpec => frameOf(opcode)(payload, o);

/**
 * A message split into frames of `size` payload bytes, exactly as
 * Autobahn's sender does (`fragmentSize` / `payload_frag_size`): one frame
 * when the payload fits in one, else frames of `size` bytes and, when the
 * length divides evenly, an empty final frame (its loop ends only when the
 * next slice would pass the end). 9.3.1's 4 MiB in 64-byte frames arrives as
 * 65,537 frames.
 */
export function autobahnFragments(opcode: number, payload: Uint8Array, size: number, rsv = 0): FrameSpec[] {
  if (size <= 0 || payload.length <= size) return [{ opcode, payload, fin: true, rsv }];
  const specs: FrameSpec[] = [];
  for (let i = 0, done = false; !done; i += size) {
    done = i + size > payload.length;
    specs.push({ opcode: i === 0 ? opcode : Op.Continuation, payload: payload.subarray(i, i + size), fin: done, rsv: i === 0 ? rsv : 0 });
  }
  return specs;
}

const fragmented = autobahnFragments;

// ---- steps ----

type Send = (client: WsClient) => Promise<void>;

/** All frames in one write (one Autobahn chop). */
const oneChop = (...specs: FrameSpec[]): Send => (c) => c.sendFrames(specs);
/** Each frame in its own write (Autobahn's `sync = True`). */
const frameWise = (...specs: FrameSpec[]): Send => (c) => c.sendFrames(specs, { frameWise: true });
/** Every octet in its own write (Autobahn's `chopsize = 1`). */
const octetWise = (...specs: FrameSpec[]): Send => (c) => c.sendFrames(specs, { chop: 1 });
/** The frame in writes of `chop` bytes (Autobahn's `chopsize`). */
const chopped = (chop: number, spec: FrameSpec): Send => (c) => c.sendFrame(spec, { chop });

async function open(connect: Connect, options?: ConnectOptions): Promise<WsClient> {
  const client = await connect(options);
  assert.equal(client.response?.status, 101, `the handshake: ${client.describe()}`);
  return client;
}

// ---- case kinds ----

/**
 * A valid exchange: the server answers with `expected`, then we close with
 * 1000 and it echoes the close, then sends FIN; nothing else arrives.
 */
function echoes(id: string, title: string, send: Send, expected: Received[], waitMs = ANSWER_MS): ConformanceCase {
  return {
    id,
    title,
    timeoutMs: waitMs > ANSWER_MS ? waitMs + 5000 : undefined,
    async run(connect) {
      const c = await open(connect);
      await send(c);
      await c.waitForReceived(expected.length, waitMs);
      assertReceived(c, expected, "before our close");
      await c.sendClose(1000);
      await c.expectClose(1000);
      assertReceived(c, expected, "in all");
    },
  };
}

/**
 * The server must fail the connection: `expected` first (the echo of what
 * came before the fault), then its close frame with one of `codes`, then FIN,
 * and nothing after (no pong for a later ping, no echo of a later message).
 */
function fails(id: string, title: string, send: Send, expected: Received[], codes: number[] = [1002]): ConformanceCase {
  return {
    id,
    title,
    async run(connect) {
      const c = await open(connect);
      await send(c);
      const closed = await c.expectClose(codes);
      assert.ok(c.echoedCloseAt !== undefined && c.echoedCloseAt >= closed.closeAt, "the server started the close");
      assertReceived(c, expected, "before its close");
    },
  };
}

/**
 * We start the closing handshake (`send` ends with a close frame); the
 * server must answer with one of `codes` (`null`: an empty close), then FIN.
 */
function closes(
  id: string,
  title: string,
  send: Send,
  codes: (number | null)[],
  expected: Received[] = [],
  waitMs = ANSWER_MS,
): ConformanceCase {
  return {
    id,
    title,
    timeoutMs: waitMs > ANSWER_MS ? waitMs + 5000 : undefined,
    async run(connect) {
      const c = await open(connect);
      await send(c);
      await c.expectClose(codes, waitMs);
      assertReceived(c, expected, "before its close");
    },
  };
}

/**
 * Fail-fast UTF-8 (6.4.x): part 1 is valid so far and must be accepted
 * quietly; part 2 holds the byte that makes the text invalid, and the close
 * (1007) must arrive before we would send part 3 (which we then never send).
 */
function failsFast(id: string, title: string, parts: [Uint8Array, Uint8Array, Uint8Array]): ConformanceCase {
  return {
    id,
    title,
    async run(connect) {
      const c = await open(connect);
      await c.send(parts[0]);
      await c.expectQuiet(QUIET_MS, "after part 1, which is valid so far (Autobahn's timeout A)");
      const sentAt = performance.now();
      await c.send(parts[1]);
      await c.waitFor(
        () => c.frames.some((f) => f.opcode === Op.Close),
        "a close frame before part 3 is due: the server must fail as soon as the invalid byte arrives (else NON-STRICT)",
        FAIL_FAST_MS,
      );
      const closed = await c.expectClose(1007);
      assert.ok(closed.closeAt >= sentAt && closed.closeAt - sentAt < FAIL_FAST_MS);
      assertReceived(c, [], "before its close");
      // Part 3 is not sent: Autobahn sends it only while the connection is open.
    },
  };
}

/** A refused opening handshake: `status`, `Connection: close`, then FIN and nothing else. */
function refused(
  id: string,
  title: string,
  options: ConnectOptions,
  status: number,
  check?: (response: HttpResponse) => void,
): ConformanceCase {
  return {
    id,
    title,
    async run(connect) {
      const c = await connect(options);
      const response = c.response!;
      assert.equal(response.status, status, `status (${response.reason}: ${response.body})`);
      assert.match(response.headers["connection"] ?? "", /(^|,)\s*close\s*(,|$)/i, "the refusal announces Connection: close");
      assert.equal(response.headers["sec-websocket-accept"], undefined);
      check?.(response);
      await c.expectServerFin();
    },
  };
}

// ---- UTF-8 test sequences (case6_x_x.py, after Markus Kuhn's UTF-8-test.txt) ----

const KOSME = hex("cebae1bdb9cf83cebcceb5");

/** Autobahn's `createUtf8TestSequences()`: [category, [valid, bytes][]] in order; 6.5 is the first category. */
function utf8Sequences(): [string, [boolean, Uint8Array][]][] {
  const b = (...values: number[]) => new Uint8Array(values);
  const h = hex;
  const seqs: [string, [boolean, Uint8Array][]][] = [];
  seqs.push(["Some valid UTF-8 sequences", [
    [true, toBytes("hello\x24world")],
    [true, concat([toBytes("hello"), h("c2a2"), toBytes("world")])],
    [true, concat([toBytes("hello"), h("e282ac"), toBytes("world")])],
    [true, concat([toBytes("hello"), h("f0a4ada2"), toBytes("world")])],
    [true, KOSME],
  ]]);
  // Prefixes of KOSME: valid exactly when they end on a code point boundary.
  const boundaries = new Set([2, 5, 7, 9, 11]);
  seqs.push(["All prefixes of a valid UTF-8 string that contains multi-byte code points", Array.from(
    { length: KOSME.length },
    (_, i): [boolean, Uint8Array] => [boundaries.has(i + 1), KOSME.slice(0, i + 1)],
  )]);
  seqs.push(["First possible sequence of a certain length", [
    [true, h("00")],
    [true, h("c280")],
    [true, h("e0a080")],
    [true, h("f0908080")],
  ]]);
  seqs.push(["First possible sequence length 5/6 (invalid codepoints)", [
    [false, h("f888808080")],
    [false, h("fc8480808080")],
  ]]);
  seqs.push(["Last possible sequence of a certain length", [
    [true, h("7f")],
    [true, h("dfbf")],
    [true, h("efbfbf")],
    [true, h("f48fbfbf")],
  ]]);
  seqs.push(["Last possible sequence length 4/5/6 (invalid codepoints)", [
    [false, h("f7bfbfbf")],
    [false, h("fbbfbfbfbf")],
    [false, h("fdbfbfbfbfbf")],
  ]]);
  seqs.push(["Other boundary conditions", [
    [true, h("ed9fbf")],
    [true, h("ee8080")],
    [true, h("efbfbd")],
    [true, h("f48fbfbf")],
    [false, h("f4908080")],
  ]]);
  const continuation: number[] = [];
  for (let i = 0x80; i < 0xbf; i++) continuation.push(i); // Python's xrange(0x80, 0xbf)
  seqs.push(["Unexpected continuation bytes", [
    [false, h("80")],
    [false, h("bf")],
    [false, h("80bf")],
    [false, h("80bf80")],
    [false, h("80bf80bf")],
    [false, h("80bf80bf80")],
    [false, h("80bf80bf80bf")],
    [false, b(...continuation)],
  ]]);
  const lonely: [boolean, Uint8Array][] = [];
  for (const [from, to] of [[0xc0, 0xdf], [0xe0, 0xef], [0xf0, 0xf7], [0xf8, 0xfb], [0xfc, 0xfd]] as const) {
    const s: number[] = [];
    for (let i = from; i < to; i++) s.push(i, 0x20);
    lonely.push([false, b(...s)]);
  }
  seqs.push(["Lonely start characters", lonely]);
  const missing = ["c0", "e080", "f08080", "f8808080", "fc80808080", "df", "efbf", "f7bfbf", "fbbfbfbf", "fdbfbfbfbf"].map(h);
  seqs.push(["Sequences with last continuation byte missing", missing.map((m): [boolean, Uint8Array] => [false, m])]);
  seqs.push(["Concatenation of incomplete sequences", [[false, concat(missing)]]]);
  seqs.push(["Impossible bytes", [
    [false, h("fe")],
    [false, h("ff")],
    [false, h("fefeffff")],
  ]]);
  seqs.push(["Examples of an overlong ASCII character", [
    [false, h("c0af")],
    [false, h("e080af")],
    [false, h("f08080af")],
    [false, h("f8808080af")],
    [false, h("fc80808080af")],
  ]]);
  seqs.push(["Maximum overlong sequences", [
    [false, h("c1bf")],
    [false, h("e09fbf")],
    [false, h("f08fbfbf")],
    [false, h("f887bfbfbf")],
    [false, h("fc83bfbfbfbf")],
  ]]);
  seqs.push(["Overlong representation of the NUL character", [
    [false, h("c080")],
    [false, h("e08080")],
    [false, h("f0808080")],
    [false, h("f880808080")],
    [false, h("fc8080808080")],
  ]]);
  seqs.push(["Single UTF-16 surrogates", ["eda080", "edadbf", "edae80", "edafbf", "edb080", "edbe80", "edbfbf"].map(
    (s): [boolean, Uint8Array] => [false, h(s)],
  )]);
  seqs.push(["Paired UTF-16 surrogates", [
    "eda080edb080",
    "eda080edbfbf",
    "edadbfedb080",
    "edadbfedbfbf",
    "edae80edb080",
    "edae80edbfbf",
    "edafbfedb080",
    "edafbfedbfbf",
  ].map((s): [boolean, Uint8Array] => [false, h(s)])]);
  const nonCharacters: [boolean, Uint8Array][] = [[true, h("efbfbe")], [true, h("efbfbf")]];
  for (const z1 of [0xf0, 0xf1, 0xf2, 0xf3, 0xf4]) {
    for (const z2 of [0x8f, 0x9f, 0xaf, 0xbf]) {
      if (z1 === 0xf4 && z2 !== 0x8f) continue; // past U+10FFFF
      for (const z3 of [0xbe, 0xbf]) {
        if (z1 === 0xf0 && z2 === 0x8f) continue; // overlong
        nonCharacters.push([true, b(z1, z2, 0xbf, z3)]);
      }
    }
  }
  seqs.push(["Non-character code points (valid UTF-8)", nonCharacters]);
  seqs.push(["Unicode specials (i.e. replacement char)", ["efbfb9", "efbfba", "efbfbb", "efbfbc", "efbfbd", "efbfbe", "efbfbf"].map(
    (s): [boolean, Uint8Array] => [true, h(s)],
  )]);
  return seqs;
}

// ---- the sections ----

function section1(): ConformanceSection {
  const sizes = [0, 125, 126, 127, 128, 65535, 65536];
  const cases: ConformanceCase[] = [];
  sizes.forEach((n, i) => {
    const payload = repeat("*", n);
    cases.push(echoes(`1.1.${i + 1}`, `text message of ${n} bytes`, oneChop(text(payload)), [textMsg(payload)]));
  });
  const text64k = repeat("*", 65536);
  cases.push(echoes("1.1.8", "text message of 65536 bytes in chops of 997 octets", chopped(997, text(text64k)), [
    textMsg(text64k),
  ]));
  sizes.forEach((n, i) => {
    const payload = repeat(new Uint8Array([0xfe]), n);
    cases.push(echoes(`1.2.${i + 1}`, `binary message of ${n} bytes`, oneChop(binary(payload)), [binaryMsg(payload)]));
  });
  const binary64k = repeat(new Uint8Array([0xfe]), 65536);
  cases.push(echoes("1.2.8", "binary message of 65536 bytes in chops of 997 octets", chopped(997, binary(binary64k)), [
    binaryMsg(binary64k),
  ]));
  return { name: "1 framing: text and binary messages", cases };
}

function section2(): ConformanceSection {
  const fe125 = repeat(new Uint8Array([0xfe]), 125);
  const tenPings = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
  return {
    name: "2 pings and pongs",
    cases: [
      echoes("2.1", "ping without payload", oneChop(ping()), [pong()]),
      echoes("2.2", "ping with a small text payload", oneChop(ping("Hello, world!")), [pong("Hello, world!")]),
      echoes("2.3", "ping with a small binary payload", oneChop(ping(hex("00fffefdfcfb00ff"))), [pong(hex("00fffefdfcfb00ff"))]),
      echoes("2.4", "ping with a 125-byte payload", oneChop(ping(fe125)), [pong(fe125)]),
      fails("2.5", "ping with a 126-byte payload fails with 1002", oneChop(ping(repeat(new Uint8Array([0xfe]), 126))), []),
      echoes("2.6", "ping with a 125-byte payload, octet-wise chops", octetWise(ping(fe125)), [pong(fe125)]),
      echoes("2.7", "unsolicited pong without payload: nothing in reply", oneChop(pongFrame()), []),
      echoes("2.8", "unsolicited pong with payload: nothing in reply", oneChop(pongFrame("unsolicited pong payload")), []),
      echoes(
        "2.9",
        "unsolicited pong, then ping: only the ping is answered",
        oneChop(pongFrame("unsolicited pong payload"), ping("ping payload")),
        [pong("ping payload")],
      ),
      echoes("2.10", "10 pings: 10 pongs in order", oneChop(...tenPings.map((p) => ping(p))), tenPings.map((p) => pong(p))),
      echoes("2.11", "10 pings, octet-wise chops", octetWise(...tenPings.map((p) => ping(p))), tenPings.map((p) => pong(p))),
    ],
  };
}

function section3(): ConformanceSection {
  const hello = "Hello, world!";
  return {
    name: "3 reserved bits",
    cases: [
      fails("3.1", "text message with RSV = 1", oneChop(text(hello, { rsv: 1 })), []),
      fails(
        "3.2",
        "text, text with RSV = 2, ping: first echoed, then 1002, no pong",
        oneChop(text(hello), text(hello, { rsv: 2 }), ping()),
        [textMsg(hello)],
      ),
      fails(
        "3.3",
        "same with RSV = 3, frame-wise chops",
        frameWise(text(hello), text(hello, { rsv: 3 }), ping()),
        [textMsg(hello)],
      ),
      fails(
        "3.4",
        "same with RSV = 4, octet-wise chops",
        octetWise(text(hello), text(hello, { rsv: 4 }), ping()),
        [textMsg(hello)],
      ),
      fails("3.5", "binary message with RSV = 5", oneChop(binary(hex("00fffefdfcfb00ff"), { rsv: 5 })), []),
      // Autobahn's 3.6 says "Ping" but sends opcode 2; both are checked.
      fails("3.6", "binary frame with RSV = 6 (as Autobahn sends it)", oneChop(binary(hello, { rsv: 6 })), []),
      fails("3.6+", "ping with RSV = 6", oneChop(ping(hello, { rsv: 6 })), []),
      // The client sends a (malformed) close frame here, so the server's close answers it.
      closes("3.7", "close with RSV = 7", oneChop(close("", { rsv: 7 })), [1002]),
    ],
  };
}

function section4(): ConformanceSection {
  const hello = "Hello, world!";
  const cases: ConformanceCase[] = [];
  for (const [group, base, kind] of [["4.1", 3, "non-control"], ["4.2", 11, "control"]] as const) {
    cases.push(
      fails(`${group}.1`, `reserved ${kind} opcode ${base}`, oneChop(op(base)), []),
      fails(`${group}.2`, `reserved ${kind} opcode ${base + 1} with payload`, oneChop(op(base + 1, "reserved opcode payload")), []),
      fails(
        `${group}.3`,
        `text, reserved opcode ${base + 2}, ping: text echoed, then 1002, no pong`,
        oneChop(text(hello), op(base + 2), ping()),
        [textMsg(hello)],
      ),
      fails(
        `${group}.4`,
        `text, reserved opcode ${base + 3} with payload, ping`,
        oneChop(text(hello), op(base + 3, hello), ping()),
        [textMsg(hello)],
      ),
      fails(
        `${group}.5`,
        `text, reserved opcode ${base + 4} with payload, ping, octet-wise chops`,
        octetWise(text(hello), op(base + 4, hello), ping()),
        [textMsg(hello)],
      ),
    );
  }
  return { name: "4 reserved opcodes", cases };
}

function section5(): ConformanceSection {
  const f = ["fragment1", "fragment2", "fragment3", "fragment4", "fragment5"] as const;
  const ways = [["one chop", oneChop], ["frame-wise chops", frameWise], ["octet-wise chops", octetWise]] as const;
  const cases: ConformanceCase[] = [
    fails("5.1", "ping in 2 fragments", oneChop(ping(f[0], { fin: false }), cont(f[1])), []),
    fails("5.2", "pong in 2 fragments", oneChop(pongFrame(f[0], { fin: false }), cont(f[1])), []),
  ];
  ways.forEach(([how, send], i) => {
    cases.push(echoes(
      `5.${3 + i}`,
      `text in 2 fragments, ${how}`,
      send(text(f[0], { fin: false }), cont(f[1])),
      [textMsg(f[0] + f[1])],
    ));
  });
  ways.forEach(([how, send], i) => {
    cases.push(echoes(
      `5.${6 + i}`,
      `text in 2 fragments with a ping between, ${how}: pong first`,
      send(text(f[0], { fin: false }), ping("ping payload"), cont(f[1])),
      [pong("ping payload"), textMsg(f[0] + f[1])],
    ));
  });
  ways.forEach(([how, send], i) => {
    cases.push(fails(
      `5.${9 + i}`,
      `continuation (FIN) with nothing to continue, then text, ${how}`,
      send(cont("non-continuation payload"), text("Hello, world!")),
      [],
    ));
  });
  ways.forEach(([how, send], i) => {
    cases.push(fails(
      `5.${12 + i}`,
      `continuation (no FIN) with nothing to continue, then text, ${how}`,
      send(cont("non-continuation payload", { fin: false }), text("Hello, world!")),
      [],
    ));
  });
  cases.push(
    fails(
      "5.15",
      "text in 2 fragments, then a continuation with nothing to continue: first echoed, then 1002",
      oneChop(text(f[0], { fin: false }), cont(f[1]), cont(f[2], { fin: false }), text(f[3])),
      [textMsg(f[0] + f[1])],
    ),
    fails(
      "5.16",
      "2x: continuation (no FIN) with nothing to continue, then text in 2 fragments",
      oneChop(...[0, 1].flatMap(() => [cont(f[0], { fin: false }), text(f[1], { fin: false }), cont(f[2])])),
      [],
    ),
    fails(
      "5.17",
      "2x: continuation (FIN) with nothing to continue, then text in 2 fragments",
      oneChop(...[0, 1].flatMap(() => [cont(f[0]), text(f[1], { fin: false }), cont(f[2])])),
      [],
    ),
    fails("5.18", "text in 2 fragments, both with opcode text", oneChop(text(f[0], { fin: false }), text(f[1])), []),
  );
  for (const [id, how, frameByFrame] of [["5.19", "one write per step", false], ["5.20", "frame-wise chops", true]] as const) {
    cases.push({
      id,
      title: `fragmented text with pings between and a pause, ${how}: each pong at once`,
      async run(connect) {
        const c = await open(connect);
        const send = (...specs: FrameSpec[]) => c.sendFrames(specs, { frameWise: frameByFrame });
        await send(text(f[0], { fin: false }), cont(f[1], { fin: false }), ping("pongme 1!"));
        // The first pong must come before the rest of the message is sent.
        await c.waitForReceived(1, FAIL_FAST_MS);
        assertReceived(c, [pong("pongme 1!")], "after the first ping, before the last fragments");
        await delay(QUIET_MS);
        assertReceived(c, [pong("pongme 1!")], "during the pause");
        await send(cont(f[2], { fin: false }), cont(f[3], { fin: false }), ping("pongme 2!"), cont(f[4]));
        const expected = [pong("pongme 1!"), pong("pongme 2!"), textMsg(f.join(""))];
        await c.waitForReceived(3);
        assertReceived(c, expected, "before our close");
        await c.sendClose(1000);
        await c.expectClose(1000);
        assertReceived(c, expected, "in all");
      },
    });
  }
  return { name: "5 fragmentation", cases };
}

function section6(): ConformanceSection {
  const hello = toBytes("Hello-µ@ßöäüàá-UTF-8!!");
  const invalid = hex("cebae1bdb9cf83cebcceb5eda080656469746564"); // 6.3.x: a surrogate in the middle
  const bytewise = (opcode: number, payload: Uint8Array) => fragmented(opcode, payload, 1);
  const cases: ConformanceCase[] = [
    echoes("6.1.1", "empty text message", oneChop(text()), [textMsg("")]),
    echoes(
      "6.1.2",
      "text message in 3 empty fragments",
      oneChop(text("", { fin: false }), cont("", { fin: false }), cont()),
      [textMsg("")],
    ),
    echoes(
      "6.1.3",
      "text in 3 fragments, first and last empty",
      oneChop(text("", { fin: false }), cont("middle frame payload", { fin: false }), cont()),
      [textMsg("middle frame payload")],
    ),
    echoes("6.2.1", "valid UTF-8 in one fragment", oneChop(text(hello)), [textMsg(hello)]),
    echoes(
      "6.2.2",
      "valid UTF-8 in 2 fragments split on a code point boundary",
      oneChop(text("Hello-µ@ßöä", { fin: false }), cont("üàá-UTF-8!!")),
      [textMsg(hello)],
    ),
    echoes("6.2.3", "valid UTF-8 in 1-octet fragments", oneChop(...bytewise(Op.Text, hello)), [textMsg(hello)]),
    echoes("6.2.4", "valid UTF-8 (kosme) in 1-octet fragments", oneChop(...bytewise(Op.Text, KOSME)), [textMsg(KOSME)]),
    fails("6.3.1", "invalid UTF-8 in one fragment", oneChop(text(invalid)), [], [1007]),
    fails("6.3.2", "invalid UTF-8 in 1-octet fragments", oneChop(...bytewise(Op.Text, invalid)), [], [1007]),
  ];

  // 6.4.x: fail fast. PAYLOAD = kosme + f4 90 80 80 (U+110000, invalid at its 2nd byte) + "edited".
  const part1 = KOSME;
  const part2 = hex("f4908080");
  const part3 = toBytes("edited");
  const payload = concat([part1, part2, part3]);
  const frames = (a: Uint8Array, b: Uint8Array, c: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] => [
    encodeFrame(text(a, { fin: false })),
    encodeFrame(cont(b, { fin: false })),
    encodeFrame(cont(c)),
  ];
  const chops = (at1: number, at2: number): [Uint8Array, Uint8Array, Uint8Array] => {
    const whole = encodeFrame(text(payload));
    const header = whole.length - payload.length;
    return [whole.subarray(0, header + at1), whole.subarray(header + at1, header + at2), whole.subarray(header + at2)];
  };
  cases.push(
    failsFast("6.4.1", "3 frames, the 2nd makes the text invalid: close before the 3rd", frames(part1, part2, part3)),
    failsFast(
      "6.4.2",
      "3 frames, the 2nd is just the invalid octet",
      frames(payload.subarray(0, 12), payload.subarray(12, 13), payload.subarray(13)),
    ),
    failsFast("6.4.3", "one frame in 3 chops, the 2nd makes it invalid: close before the frame is complete", chops(11, 15)),
    failsFast("6.4.4", "one frame in 3 chops, the 2nd is just the invalid octet", chops(12, 13)),
  );

  utf8Sequences().forEach(([category, sequences], i) => {
    sequences.forEach(([valid, bytes], j) => {
      const id = `6.${5 + i}.${j + 1}`;
      const title = `${category}: 0x${toHex(bytes)}`;
      cases.push(
        valid
          ? echoes(id, `${title} is echoed`, oneChop(text(bytes)), [textMsg(bytes)])
          : fails(id, `${title} fails with 1007`, oneChop(text(bytes)), [], [1007]),
      );
    });
  });
  return { name: "6 UTF-8 handling", cases };
}

function section7(): ConformanceSection {
  const hello = "Hello World!";
  const invalidReason = hex("cebae1bdb9cf83cebcceb5eda080656469746564");
  const cases: ConformanceCase[] = [
    echoes("7.1.1", "message, then our close: echo, then close 1000", oneChop(text(hello)), [textMsg(hello)]),
    closes("7.1.2", "two close frames: the second is ignored", oneChop(close(closePayload(1000)), close()), [1000]),
    closes("7.1.3", "ping after close: no pong", oneChop(close(closePayload(1000)), ping()), [1000]),
    closes("7.1.4", "text after close: ignored", oneChop(close(closePayload(1000)), text(hello)), [1000]),
    closes(
      "7.1.5",
      "fragment, close, last fragment: clean close 1000, no message",
      oneChop(text("fragment1", { fin: false }), close(closePayload(1000)), cont("fragment2")),
      [1000],
    ),
    closes(
      "7.1.6",
      "256 KiB message, message, close, ping: both echoed, close 1000, no pong",
      oneChop(text(repeat("BAsd7&jh23", 256 * 1024)), text(hello), close(closePayload(1000)), ping()),
      [1000],
      [textMsg(repeat("BAsd7&jh23", 256 * 1024)), textMsg(hello)],
    ),
    // Autobahn: a close without code is answered with code 1000 or with an empty close.
    closes("7.3.1", "close with an empty payload", oneChop(close()), [null, 1000]),
    closes("7.3.2", "close with a 1-byte payload: 1002", oneChop(close("a")), [1002]),
    closes("7.3.3", "close 1000 without reason", oneChop(close(closePayload(1000))), [1000]),
    closes("7.3.4", "close 1000 with a reason", oneChop(close(closePayload(1000, "Hello World!"))), [1000]),
    closes("7.3.5", "close 1000 with a 123-byte reason", oneChop(close(closePayload(1000, "*".repeat(123)))), [1000]),
    closes(
      "7.3.6",
      "close with a 124-byte reason (126-byte payload): 1002",
      oneChop(close(closePayload(1000, "*".repeat(124)))),
      [1002],
    ),
    closes(
      "7.5.1",
      "close 1000 with an invalid UTF-8 reason: 1002 or 1007",
      oneChop(close(closePayload(1000, invalidReason))),
      [1002, 1007],
    ),
  ];
  [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999].forEach((code, i) => {
    cases.push(closes(`7.7.${i + 1}`, `valid close code ${code}: echoed (or 1000)`, oneChop(close(closePayload(code))), [1000, code]));
  });
  [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999].forEach((code, i) => {
    cases.push(closes(`7.9.${i + 1}`, `invalid close code ${code}: 1002`, oneChop(close(closePayload(code))), [1002]));
  });
  cases.push(closes("7.9.+", "close code 1015, which must never be sent: 1002", oneChop(close(closePayload(1015))), [1002]));
  cases.push({
    id: "7.+",
    title: "after failing, the server reads until our FIN: bytes sent after its close cause no reset",
    async run(connect) {
      const c = await open(connect, { echoClose: false, answerFin: false });
      await c.sendFrames([text("Hello, world!", { rsv: 1 })]);
      await c.waitFor(() => c.events.some((e) => e.kind === "fin"), "the server's close frame and FIN");
      // A reset (the server closed instead of reading on) shows as EPIPE on the second write.
      for (let i = 0; i < 2; i++) {
        await c.send(encodeFrame(text(repeat("*", 4096))));
        await delay(QUIET_MS);
      }
      c.socket.end();
      await c.expectClose(1002);
    },
  });
  // 7.13.x are informational in Autobahn: it accepts 1000, the code itself or 1002.
  cases.push(
    closes("7.13.1", "close code 5000", oneChop(close(closePayload(5000))), [1000, 5000, 1002]),
    closes("7.13.2", "close code 65535", oneChop(close(closePayload(65535))), [1000, 65535, 1002]),
  );
  return { name: "7 closing handshake", cases };
}

function section9(): ConformanceSection {
  const MiB = 1024 * 1024;
  const text64k = repeat("BAsd7&jh23", 64 * 1024);
  const binary64k = repeat(hex("00fe23faf0"), 64 * 1024);
  const text16 = repeat("BAsd7&jh23", 16 * MiB);
  const binary16 = repeat(hex("00fe23faf0"), 16 * MiB);
  const text4 = repeat("*", 4 * MiB);
  const binary4 = repeat(hex("00fe23faf0"), 4 * MiB);
  const roundTrips = (id: string, binaryMessages: boolean): ConformanceCase => ({
    id,
    title: `1000 ${binaryMessages ? "binary" : "text"} messages of 16 bytes, one round trip each`,
    timeoutMs: BIG_MS,
    async run(connect) {
      const c = await open(connect);
      const spec = binaryMessages ? binary(repeat(new Uint8Array([0xfe]), 16)) : text(repeat("*", 16));
      for (let i = 1; i <= 1000; i++) {
        await c.sendFrame(spec);
        await c.waitForFrames(i);
      }
      const expected = Array.from({ length: 1000 }, () => (binaryMessages ? binaryMsg : textMsg)(spec.payload!));
      await c.sendClose(1000);
      await c.expectClose(1000);
      assertReceived(c, expected, "in all");
    },
  });
  const bulk = Array.from({ length: 1000 }, (_, i) => `message ${i}`);
  return {
    name: "9 limits and performance (scaled)",
    cases: [
      echoes("9.1.1", "text message of 64 KiB", oneChop(text(text64k)), [textMsg(text64k)]),
      echoes("9.1.6", "text message of 16 MiB (exactly the default limit)", oneChop(text(text16)), [textMsg(text16)], BIG_MS),
      echoes("9.2.1", "binary message of 64 KiB", oneChop(binary(binary64k)), [binaryMsg(binary64k)]),
      echoes("9.2.6", "binary message of 16 MiB (exactly the default limit)", oneChop(binary(binary16)), [binaryMsg(binary16)], BIG_MS),
      echoes(
        "9.3.1",
        "text message of 4 MiB in 64-byte fragments and an empty final one (65,537 frames)",
        oneChop(...fragmented(Op.Text, text4, 64)),
        [textMsg(text4)],
        BIG_MS,
      ),
      echoes(
        "9.4.1",
        "binary message of 4 MiB in 64-byte fragments and an empty final one (65,537 frames)",
        oneChop(...fragmented(Op.Binary, binary4, 64)),
        [binaryMsg(binary4)],
        BIG_MS,
      ),
      roundTrips("9.7.2", false),
      roundTrips("9.8.2", true),
      echoes("9.7.+", "1000 text messages in one write, echoed in order", oneChop(...bulk.map((m) => text(m))), bulk.map(textMsg)),
      fails(
        "9.+",
        "a frame header announcing 16 MiB + 1 fails with 1009 before any payload",
        oneChop(text("", { declaredLength: 16 * MiB + 1 })),
        [],
        [1009],
      ),
    ],
  };
}

function section10(): ConformanceSection {
  const payload = repeat("*", 65536);
  return {
    name: "10 auto-fragmentation",
    cases: [
      echoes(
        "10.1.1",
        "text message of 65536 bytes in 1300-byte fragments",
        oneChop(...fragmented(Op.Text, payload, 1300)),
        [textMsg(payload)],
      ),
    ],
  };
}

function handshake(): ConformanceSection {
  const sampleKey = "dGhlIHNhbXBsZSBub25jZQ==";
  const version13 = (r: HttpResponse) => assert.equal(r.headers["sec-websocket-version"], "13");
  return {
    name: "H opening handshake",
    cases: [
      {
        id: "H.1",
        title: "a valid request: 101 with the right Sec-WebSocket-Accept, no subprotocol, no extension",
        async run(connect) {
          for (const key of [sampleKey, undefined]) {
            const c = await open(connect, { key });
            const { headers, version } = c.response!;
            assert.equal(version, "1.1");
            assert.equal(headers["upgrade"]?.toLowerCase(), "websocket");
            assert.match(headers["connection"] ?? "", /(^|,)\s*upgrade\s*(,|$)/i);
            assert.equal(headers["sec-websocket-accept"], acceptFor(c.key));
            if (key === sampleKey) assert.equal(headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); // RFC 6455 §1.3
            assert.equal(headers["sec-websocket-protocol"], undefined);
            assert.equal(headers["sec-websocket-extensions"], undefined);
            await c.sendClose(1000);
            await c.expectClose(1000);
          }
        },
      },
      refused("H.2", "missing Sec-WebSocket-Key: 400", { headers: { "Sec-WebSocket-Key": null } }, 400),
      refused("H.3", "Sec-WebSocket-Key of 10 bytes: 400", { key: "dGhlIHNhbXBsZQ==" }, 400),
      refused("H.4", "Sec-WebSocket-Key that is not base64: 400", { key: "not a base64 key!!!!!==" }, 400),
      refused("H.5", "Sec-WebSocket-Version: 8: 426, naming version 13", { headers: { "Sec-WebSocket-Version": "8" } }, 426, version13),
      refused("H.6", "no Sec-WebSocket-Version: 426, naming version 13", { headers: { "Sec-WebSocket-Version": null } }, 426, version13),
      refused("H.7", "POST: 400", { method: "POST" }, 400),
      refused("H.8", "HTTP/1.0: 400", { httpVersion: "1.0" }, 400),
      refused("H.9", "no Host header: 400", { headers: { Host: null } }, 400),
      refused("H.10", "Upgrade: foo: 400", { headers: { Upgrade: "foo" } }, 400),
      refused("H.11", "Connection without Upgrade: 400", { headers: { Connection: "keep-alive" } }, 400),
      refused(
        "H.12",
        "plain GET without Upgrade: 426",
        { headers: { Upgrade: null, Connection: null, "Sec-WebSocket-Key": null, "Sec-WebSocket-Version": null } },
        426,
        (r) => assert.match(r.headers["upgrade"] ?? "", /websocket/i),
      ),
      refused("H.13", "a 20 KiB header block: 431", { headers: { "X-Filler": "a".repeat(20 * 1024) } }, 431),
      refused("H.14", "a malformed request line: 400", { rawRequest: "GET\r\nHost: x\r\n\r\n" }, 400),
      {
        id: "H.15",
        title: "subprotocols offered, none configured: 101 without Sec-WebSocket-Protocol",
        async run(connect) {
          const c = await open(connect, { headers: { "Sec-WebSocket-Protocol": "chat, superchat" } });
          assert.equal(c.response!.headers["sec-websocket-protocol"], undefined);
          await c.sendClose(1000);
          await c.expectClose(1000);
        },
      },
      {
        id: "H.16",
        title: "permessage-deflate offered, not supported: 101 without Sec-WebSocket-Extensions",
        async run(connect) {
          const c = await open(connect, { headers: { "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits" } });
          assert.equal(c.response!.headers["sec-websocket-extensions"], undefined);
          await c.sendClose(1000);
          await c.expectClose(1000);
        },
      },
      {
        id: "H.17",
        title: "frames in the same write as the request are processed after the 101",
        async run(connect) {
          const c = await open(connect, { trailing: concat([encodeFrame(text("early")), encodeFrame(ping("p"))]) });
          await c.waitForReceived(2);
          assertReceived(c, [textMsg("early"), pong("p")], "after the 101");
          await c.sendClose(1000);
          await c.expectClose(1000);
        },
      },
    ],
  };
}

/** Every section, in Autobahn's order, the handshake cases first. */
export function conformanceCases(): ConformanceSection[] {
  return [handshake(), section1(), section2(), section3(), section4(), section5(), section6(), section7(), section9(), section10()];
}

/**
 * Registers every case with `node:test` (`describe` per section, `it` per
 * case) against the echo server that `getUrl()` points to. Each case opens
 * its own connections and destroys whatever is left of them at its end.
 *
 * @param getUrl Returns the server's `ws://host:port` URL (called when a case runs).
 * @param options Which cases to skip on this server.
 */
export function runConformance(getUrl: () => string, options: ConformanceOptions = {}): void {
  runSections(conformanceCases(), getUrl, options);
}

/**
 * Registers sections of cases as `describe`/`it` against the server at
 * `getUrl()`; each case's client connections are destroyed at its end.
 *
 * @param sections The cases, by section.
 * @param getUrl Returns the server's `ws://host:port` URL (called when a case runs).
 * @param options Which cases to skip on this server.
 */
export function runSections(sections: ConformanceSection[], getUrl: () => string, options: ConformanceOptions = {}): void {
  for (const section of sections) {
    describe(section.name, () => {
      for (const c of section.cases) {
        const skip = options.skip?.(c.id);
        it(`${c.id} ${c.title}`, { timeout: c.timeoutMs ?? 10_000, skip: skip ?? false }, async () => {
          const clients: WsClient[] = [];
          const connect: Connect = async (connectOptions) => {
            const client = await WsClient.connect(getUrl(), connectOptions);
            clients.push(client);
            return client;
          };
          try {
            await c.run(connect);
          } finally {
            for (const client of clients) client.destroy();
          }
        });
      }
    });
  }
}
