// Pipelined large messages over real sockets, on every adapter and path of
// this runtime (see _targets.ts). Clients write many 64 KiB frames in one
// write each. Two slow readers start reading only once a fast one has all
// its echoes: their echoes meet full sockets (partial writes, queues,
// `drain`, reads paused and held) while the fast reader's go out, then both
// drain at once. Each must get every echo of its own, whole and in order,
// and stay usable after it. Counts and content only, no timing assertion.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { describe, it } from "node:test";
import type { Handler } from "../../mod.ts";
import { cat, frame } from "../core/_util.ts";
import { delay, rawHandshake, readServerMessages, upgradeRequest, within } from "./_helpers.ts";
import { targets } from "./_targets.ts";

/** Slow readers, then fast ones. */
const SLOW = 2, FAST = 1;
/** Messages of a slow reader: 10 MiB, past what loopback sockets buffer here (about 4 MiB each way). */
const SLOW_COUNT = 160;
/** Messages of a fast reader. */
const COUNT = 32;
const SIZE = 64 * 1024;

/** Message `i` of connection `c`: both numbers first, then a pattern that differs per message. */
function payload(c: number, i: number): Uint8Array {
  const out = new Uint8Array(SIZE);
  for (let j = 0; j < SIZE; j++) out[j] = (c * 101 + i * 7 + j * 31) & 0xff;
  new DataView(out.buffer).setUint32(0, c);
  new DataView(out.buffer).setUint32(4, i);
  return out;
}

/** Reads the server's binary echoes until `count` have arrived. */
async function readEchoes(socket: Socket, first: Uint8Array, count: number): Promise<Uint8Array[]> {
  return (await readServerMessages(socket, first, count, true)).map((m) => m.bytes);
}

const echo: Handler = { message: (ctx, data) => void ctx.send(data) };

for (const target of targets) {
  describe(`pipelined large messages: ${target.name}`, { skip: target.skip }, () => {
    it(`echoes 64 KiB messages to ${SLOW} slow readers (${SLOW_COUNT} each) and a fast one (${COUNT}), written in one write each`, async () => {
      const server = await target.start(echo, { port: 0, hostname: "127.0.0.1" });
      const clients = [];
      try {
        for (let c = 0; c < SLOW + FAST; c++) {
          const client = await rawHandshake(server.port, upgradeRequest());
          clients.push(client);
          assert.equal(client.status, 101);
        }
        const count = (c: number) => c < SLOW ? SLOW_COUNT : COUNT;
        const burst = (c: number) => cat(...Array.from({ length: count(c) }, (_, i) => frame(2, payload(c, i))));
        const slow = clients.slice(0, SLOW), fast = clients.slice(SLOW);
        for (const [c, { socket }] of slow.entries()) socket.write(burst(c));
        await delay(200); // the slow readers' echoes fill their sockets' buffers first
        const fastEchoes = await within(
          Promise.all(fast.map(({ socket, rest }, k) => {
            socket.write(burst(SLOW + k));
            return readEchoes(socket, rest, COUNT);
          })),
          20_000,
          "the fast readers' echoes",
        );
        const slowEchoes = await within(
          Promise.all(slow.map(({ socket, rest }) => readEchoes(socket, rest, SLOW_COUNT))),
          20_000,
          "the slow readers' echoes",
        );
        const all = [...slowEchoes, ...fastEchoes];
        for (const [c, echoes] of all.entries()) {
          assert.equal(echoes.length, count(c));
          for (let i = 0; i < count(c); i++) {
            const view = new DataView(echoes[i]!.buffer);
            assert.deepEqual([view.getUint32(0), view.getUint32(4)], [c, i], `connection ${c}: echo ${i} in its place`);
            assert.deepEqual(echoes[i], payload(c, i), `connection ${c}: echo ${i} intact`);
          }
        }
        // Still usable afterwards: one more round trip each.
        for (const [c, { socket }] of clients.entries()) {
          socket.write(frame(2, payload(c, count(c))));
          const [last] = await within(readEchoes(socket, new Uint8Array(0), 1), 5000, "one more echo");
          assert.deepEqual(last, payload(c, count(c)));
        }
      } finally {
        for (const { socket } of clients) socket.destroy();
        await server.close();
      }
    });
  });
}
