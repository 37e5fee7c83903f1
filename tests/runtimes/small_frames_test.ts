// Small frames pipelined over real sockets, on every adapter and path of this
// runtime (see _targets.ts). On Bun's raw path they are encoded side by side
// into one buffer that every connection shares (core's FrameArena) and leave
// as one view of it: here, three connections' echoes interleave in it while
// two of them meet full sockets (partial writes, the rest kept as a copy,
// `drain`), and every echo must still arrive whole and in order. Text and
// binary, ASCII and not, from 0 bytes to past the arena's largest frame.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { describe, it } from "node:test";
import type { Handler } from "../../mod.ts";
import { cat, frame } from "../core/_util.ts";
import { delay, rawHandshake, readServerMessages, upgradeRequest, within } from "./_helpers.ts";
import { targets } from "./_targets.ts";

const SLOW = 2, FAST = 1;
/** Messages per connection: about 9 MiB for a slow reader, past what loopback sockets buffer. */
const COUNT = 6000;
const SIZES = [0, 1, 5, 32, 41, 42, 100, 125, 126, 127, 500, 1024, 1500, 4000, 16_380, 16_400, 20_000];
const encoder = new TextEncoder();

interface Message {
  text: boolean;
  bytes: Uint8Array;
}

/** Message `i` of connection `c`: its size, kind and content differ with both. */
function message(c: number, i: number): Message {
  const size = SIZES[(i * 7 + c) % SIZES.length]!;
  const text = i % 2 === 0;
  if (!text) {
    const bytes = new Uint8Array(size);
    for (let j = 0; j < size; j++) bytes[j] = (c * 101 + i * 7 + j * 31) & 0xff;
    return { text, bytes };
  }
  // ASCII for some, two- and three-byte characters for others.
  const unit = i % 3 === 0 ? "a" : i % 3 === 1 ? "é" : "€";
  const prefix = `${c}:${i}:`;
  const fill = Math.max(0, Math.ceil((size - prefix.length) / encoder.encode(unit).length));
  return { text, bytes: encoder.encode(prefix + unit.repeat(fill)) };
}

/** Reads the server's echoes, text or binary, until `count` have arrived. */
function readEchoes(socket: Socket, first: Uint8Array, count: number): Promise<Message[]> {
  return readServerMessages(socket, first, count);
}

/** Every message of connection `c` from `from` on, framed (masked) in batches of 100 per write. */
function writeAll(socket: Socket, c: number, count: number, from = 0): void {
  for (let i = from; i < from + count; i += 100) {
    const batch = [];
    for (let k = i; k < Math.min(i + 100, from + count); k++) {
      const m = message(c, k);
      batch.push(frame(m.text ? 1 : 2, m.bytes, { mask: [0x11, 0x22, 0x33, (k & 0xff)] }));
    }
    socket.write(cat(...batch));
  }
}

function check(echoes: Message[], c: number, from = 0): void {
  for (let i = 0; i < echoes.length; i++) {
    const want = message(c, from + i);
    assert.equal(echoes[i]!.text, want.text, `connection ${c}: echo ${from + i} of the right kind`);
    assert.deepEqual(echoes[i]!.bytes, want.bytes, `connection ${c}: echo ${from + i} intact, in its place`);
  }
}

const echo: Handler = { message: (ctx, data) => void ctx.send(data) };

for (const target of targets) {
  describe(`pipelined small frames: ${target.name}`, { skip: target.skip }, () => {
    it(`echoes ${COUNT} mixed messages each to ${SLOW} slow readers and ${FAST} fast one, in order`, async () => {
      // A native server reads ahead of the hooks: past the default output cap, a slow
      // reader's echoes would close it with 1013, which is not what this test is about.
      const server = await target.start(echo, { port: 0, hostname: "127.0.0.1", maxBufferedBytes: 64 << 20 });
      const clients = [];
      try {
        for (let c = 0; c < SLOW + FAST; c++) {
          const client = await rawHandshake(server.port, upgradeRequest());
          clients.push(client);
          assert.equal(client.status, 101);
        }
        const slow = clients.slice(0, SLOW), fast = clients.slice(SLOW);
        for (const [c, { socket }] of slow.entries()) writeAll(socket, c, COUNT);
        await delay(200); // the slow readers' echoes fill their sockets' buffers first
        const fastEchoes = await within(
          Promise.all(fast.map(({ socket, rest }, k) => {
            writeAll(socket, SLOW + k, COUNT);
            return readEchoes(socket, rest, COUNT);
          })),
          20_000,
          "the fast reader's echoes",
        );
        const slowEchoes = await within(
          Promise.all(slow.map(({ socket, rest }) => readEchoes(socket, rest, COUNT))),
          20_000,
          "the slow readers' echoes",
        );
        for (const [c, echoes] of [...slowEchoes, ...fastEchoes].entries()) {
          assert.equal(echoes.length, COUNT);
          check(echoes, c);
        }
        // Still usable afterwards: a few more round trips each.
        for (const [c, { socket }] of clients.entries()) {
          writeAll(socket, c, 20, COUNT);
          check(await within(readEchoes(socket, new Uint8Array(0), 20), 5000, "more echoes"), c, COUNT);
        }
      } finally {
        for (const { socket } of clients) socket.destroy();
        await server.close();
      }
    });
  });
}
