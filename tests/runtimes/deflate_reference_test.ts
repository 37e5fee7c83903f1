// Validates the permessage-deflate cases and the client's deflate support
// against an independent peer before our server uses them: `ws`'s
// WebSocketServer (through node:http on Node, Deno and Bun) with
// permessage-deflate on, every message compressed (threshold 0), a 1 MiB
// limit, echoing each message with its type.
//
// Two ws servers: "ws" (default deflate options) runs every case but those
// where ws's policy differs from ours (listed in WS_DIFFERS, with why), and
// "ws, serverMaxWindowBits 10" runs the cases whose first offer ws must
// decline: with that option ws refuses offers of fewer than 10 bits, so it
// takes the next offer, as our policy requires.
import assert from "node:assert/strict";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { constants as zlibConstants, createDeflateRaw } from "node:zlib";
import { type PerMessageDeflateOptions, WebSocketServer } from "ws";
import { runtime } from "../../mod.ts";
import { runDeflateConformance } from "./_autobahn_deflate.ts";
import {
  acceptFor,
  checkDeflateResponse,
  type DeflateParams,
  deflateRaw,
  encodeFrame,
  fragment,
  type FrameSpec,
  Op,
  sha1,
  WsClient,
} from "./_wsclient.ts";

const BARE = "permessage-deflate; client_max_window_bits";

const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Where ws differs from our stricter policy: case id prefix → why it is skipped on ws. */
const WS_DIFFERS: [RegExp, string][] = [
  [
    /^13\.[35]\.\d+$/,
    "ws accepts server_max_window_bits=8 and answers 8; our policy declines it (zlib's raw deflate has no 256-byte window)",
  ],
  [/^13\.7\.\d+$/, "ws takes the 1st offer (server_max_window_bits=8); run on the serverMaxWindowBits 10 server, which declines it"],
  [/^13\.\+\.1$/, "ws takes the 1st offer (server_max_window_bits=8); run on the serverMaxWindowBits 10 server, which declines it"],
  [/^13\.\+\.(2|5|7|8|9|10|21)$/, "ws answers 400 to the whole handshake instead of declining the invalid offer (RFC 7692 §5.1: decline)"],
  [/^13\.\+\.(6|11)$/, "ws reads the window bits 08 and 8 as 8 and accepts them; our policy declines a window of 8 (and a leading zero)"],
];
if (runtime() === "deno") {
  WS_DIFFERS.push([
    /^13\.\+\.23$/,
    "on Deno, node:zlib calls ws's flush callback before it emits the inflate error, so ws sends an empty close instead of 1007",
  ]);
}
/** Run on the second server (ws declines offers under 10 bits there). */
const ON_WINDOW_10 = /^(13\.7\.\d+|13\.\+\.1)$/;

interface Target {
  name: string;
  deflate: PerMessageDeflateOptions;
  only(id: string): boolean;
  skip(id: string): string | undefined;
}

const targets: Target[] = [
  {
    name: "ws",
    deflate: { threshold: 0 },
    only: () => true,
    skip: (id) => WS_DIFFERS.find(([pattern]) => pattern.test(id))?.[1],
  },
  {
    name: "ws, serverMaxWindowBits 10",
    deflate: { threshold: 0, serverMaxWindowBits: 10 },
    only: (id) => ON_WINDOW_10.test(id),
    skip: () => undefined,
  },
];

for (const target of targets) {
  describe(`permessage-deflate conformance: ${target.name} echo server (reference)`, () => {
    let server: WebSocketServer | undefined;
    let url = "";

    before(async () => {
      server = new WebSocketServer({
        host: "127.0.0.1",
        port: 0,
        perMessageDeflate: target.deflate,
        maxPayload: MAX_MESSAGE_BYTES,
      });
      server.on("connection", (ws) => {
        ws.on("error", () => {});
        ws.on("message", (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
      });
      await new Promise<void>((resolve) => server!.once("listening", () => resolve()));
      url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    after(async () => {
      for (const client of server?.clients ?? []) client.terminate();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    });

    runDeflateConformance(() => {
      assert.ok(server, "the server is not running");
      return url;
    }, { maxMessageBytes: MAX_MESSAGE_BYTES, only: target.only, skip: target.skip });
  });
}

// ---- the client's own strictness, against responses and frames made by hand ----

describe("deflate client: validation of the server's Sec-WebSocket-Extensions", () => {
  const A = "permessage-deflate; client_no_context_takeover; client_max_window_bits";
  const table: [offer: string | undefined, response: string | undefined, expected: string | Partial<DeflateParams> | undefined][] = [
    [A, undefined, undefined],
    [A, "permessage-deflate", { offerIndex: 0, serverMaxWindowBits: undefined, clientNoContextTakeover: false }],
    [A, "permessage-deflate; client_no_context_takeover", { clientNoContextTakeover: true }],
    [A, "Permessage-Deflate ; client_max_window_bits = 10", { clientMaxWindowBits: 10 }],
    [A, 'permessage-deflate; server_max_window_bits="12"', { serverMaxWindowBits: 12 }],
    [A, "permessage-deflate; server_max_window_bits=15; server_no_context_takeover", { serverMaxWindowBits: 15, serverNoContextTakeover: true }],
    ["permessage-deflate", "permessage-deflate; client_max_window_bits=10", "not offered"],
    [A, "permessage-deflate; client_max_window_bits", "without a value"],
    [A, "permessage-deflate; server_max_window_bits=08", "leading zeros"],
    [A, "permessage-deflate; server_max_window_bits=16", "8..15"],
    [A, "permessage-deflate; server_max_window_bits=7", "8..15"],
    [A, "permessage-deflate; server_no_context_takeover; server_no_context_takeover", "repeated"],
    [A, "permessage-deflate; client_no_context_takeover=1", "has a value"],
    [A, "permessage-deflate; x_unknown", "unknown parameter"],
    [A, "permessage-deflate, permessage-deflate", "2 times"],
    [A, "x-webkit-deflate-frame", "not offered"],
    [`x-foo, ${A}`, "x-foo", "does not implement"],
    [undefined, "permessage-deflate", "without extensions"],
    [A, "permessage-deflate;", "expected a parameter name"],
    [A, "permessage-deflate,", "expected an extension name"],
    ["permessage-deflate; server_max_window_bits=10", "permessage-deflate", "server_max_window_bits=10 was requested"],
    ["permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=12", "above the 10 offered"],
    ["permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=9", { serverMaxWindowBits: 9 }],
    ["permessage-deflate; client_max_window_bits=10", "permessage-deflate; client_max_window_bits=11", "above the 10 offered"],
    ["permessage-deflate; server_no_context_takeover", "permessage-deflate", "server_no_context_takeover was requested"],
    ["permessage-deflate; server_max_window_bits=8, permessage-deflate", "permessage-deflate", { offerIndex: 1 }],
    ["permessage-deflate; x_bad, permessage-deflate", "permessage-deflate", { offerIndex: 1 }],
    ["permessage-deflate; x_bad", "permessage-deflate", "the offer is invalid"],
  ];
  for (const [offer, response, expected] of table) {
    it(`${JSON.stringify(offer)} → ${JSON.stringify(response)}: ${typeof expected === "string" ? `fails (${expected})` : "ok"}`, () => {
      const result = checkDeflateResponse(offer, response);
      if (expected === undefined) assert.equal(result, undefined);
      else if (typeof expected === "string") {
        assert.equal(typeof result, "string", `expected a failure, got ${JSON.stringify(result)}`);
        assert.ok((result as string).includes(expected), `${result} mentions ${expected}`);
      } else {
        assert.equal(typeof result, "object", `expected success, got ${JSON.stringify(result)}`);
        for (const [key, value] of Object.entries(expected)) assert.equal((result as DeflateParams)[key as keyof DeflateParams], value, key);
      }
    });
  }
});

/** Compresses messages in order on one raw DEFLATE stream (context kept), each sync-flushed, trailer removed. */
async function deflateInOrder(messages: Uint8Array[], windowBits = 15): Promise<Uint8Array[]> {
  const stream = createDeflateRaw({ windowBits });
  const out: Uint8Array[] = [];
  for (const message of messages) {
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer) => chunks.push(chunk);
    stream.on("data", onData);
    stream.write(message);
    await new Promise<void>((resolve) => stream.flush(zlibConstants.Z_SYNC_FLUSH, () => resolve()));
    stream.off("data", onData);
    const all = Buffer.concat(chunks);
    out.push(new Uint8Array(all.subarray(0, all.length - 4)));
  }
  stream.close();
  return out;
}

/** A fake server: answers the handshake with `extensions`, then writes `frames` (built once connected). */
async function fakeServer(extensions: string | undefined, frames: () => Promise<FrameSpec[]>): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    let head = "";
    const onData = async (chunk: Buffer) => {
      head += chunk.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      socket.off("data", onData);
      const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1] ?? "";
      let response = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n`;
      if (extensions !== undefined) response += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
      socket.write(response + "\r\n");
      for (const spec of await frames()) socket.write(encodeFrame({ ...spec, mask: false }));
    };
    socket.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe("deflate client: what it receives, from a fake server", () => {
  const text = new TextEncoder().encode(JSON.stringify(Array.from({ length: 60 }, (_, i) => ({ id: i, name: `name ${i % 7}` }))));
  const noise = new Uint8Array(1000).map((_, i) => (i * 7919 + (i >> 3) * 131) % 251);
  const twice = new Uint8Array([...noise, ...noise]); // a match 1000 bytes back: needs more than a 512-byte window

  async function run(extensions: string | undefined, offer: string | undefined, frames: () => Promise<FrameSpec[]>): Promise<WsClient> {
    const server = await fakeServer(extensions, frames);
    const client = await WsClient.connect(server.url, offer === undefined ? {} : { deflate: { offer } });
    try {
      await client.waitFor(() => client.events.some((e) => e.kind === "invalid") || client.received().length >= 2, "2 messages or a failure", 2000);
    } finally {
      client.destroy();
      await server.close();
    }
    return client;
  }
  const invalid = (c: WsClient) => c.events.filter((e) => e.kind === "invalid").map((e) => (e as { reason: string }).reason).join("; ");

  it("inflates two messages that share the context, and records them compressed", async () => {
    const c = await run("permessage-deflate", BARE, async () => {
      const [a, b] = await deflateInOrder([text, text]);
      return [{ opcode: Op.Text, payload: a!, rsv: 4 }, ...fragment(Op.Text, b!, 3, 4)];
    });
    assert.equal(invalid(c), "");
    const received = c.received();
    assert.equal(received.length, 2);
    for (const m of received) {
      assert.ok(m.type === "message" && m.compressed === true && sha1(m.data) === sha1(text));
    }
    const [first, second] = received as { wireBytes: number }[];
    assert.ok(second!.wireBytes < first!.wireBytes / 4, "the second message is back references into the first");
  });

  it("fails a server that uses its context after agreeing to server_no_context_takeover", async () => {
    const c = await run("permessage-deflate; server_no_context_takeover", `${BARE}; server_no_context_takeover`, async () => {
      const [a, b] = await deflateInOrder([text, text]);
      return [{ opcode: Op.Text, payload: a!, rsv: 4 }, { opcode: Op.Text, payload: b!, rsv: 4 }];
    });
    assert.match(invalid(c), /cannot inflate/);
  });

  it("fails a server that uses a larger window than its server_max_window_bits=9", async () => {
    const c = await run("permessage-deflate; server_max_window_bits=9", `${BARE}; server_max_window_bits=9`, async () => {
      const [a] = await deflateInOrder([twice], 15);
      return [{ opcode: Op.Binary, payload: a!, rsv: 4 }];
    });
    assert.match(invalid(c), /cannot inflate/);
  });

  it("inflates a server that keeps to server_max_window_bits=9", async () => {
    const c = await run("permessage-deflate; server_max_window_bits=9", `${BARE}; server_max_window_bits=9`, async () => {
      const [a, b] = await deflateInOrder([twice, twice], 9);
      return [{ opcode: Op.Binary, payload: a!, rsv: 4 }, { opcode: Op.Binary, payload: b!, rsv: 4 }];
    });
    assert.equal(invalid(c), "");
    assert.deepEqual(c.received().map((m) => sha1(m.data)), [sha1(twice), sha1(twice)]);
  });

  for (const [title, extensions, offer, frame, reason] of [
    ["RSV1 on a continuation", "permessage-deflate", BARE, [{ opcode: Op.Text, payload: "a", fin: false, rsv: 4 }, { opcode: 0, payload: "b", rsv: 4 }], /continuation/],
    ["RSV1 on a ping", "permessage-deflate", BARE, [{ opcode: Op.Ping, payload: "", rsv: 4 }], /control frame/],
    ["RSV1 without permessage-deflate", undefined, BARE, [{ opcode: Op.Text, payload: deflateRaw("hi"), rsv: 4 }], /RSV1 without/],
    ["RSV2 on a compressed message", "permessage-deflate", BARE, [{ opcode: Op.Text, payload: deflateRaw("hi"), rsv: 6 }], /RSV bits 6/],
    ["an extension that was not offered", "permessage-deflate", undefined, [], /request without extensions/],
    ["client_max_window_bits that was not offered", "permessage-deflate; client_max_window_bits=10", "permessage-deflate", [], /not offered/],
  ] as [string, string | undefined, string | undefined, FrameSpec[], RegExp][]) {
    it(`fails a server that sends ${title}`, async () => {
      const c = await run(extensions, offer, () => Promise.resolve(frame));
      assert.match(invalid(c), reason);
    });
  }
});
