// What run_test.ts checks against each docs block marked `<!-- run: NAME -->`:
// the block is running in a child process, with its ports (8080, 8081…)
// replaced by free ones; a scenario connects clients and asserts what the
// page promises. Each wait is bounded, so that no scenario can hang.
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import WebSocket from "ws";

/** The block as it runs. */
export interface Running {
  /** The free port that replaced a port of the block (8080 → 41234). */
  port(original: number): number;
  /**
   * Sends a signal and resolves with the exit code: `null` when killed by a
   * signal, `undefined` when the runtime running the test cannot tell (Deno).
   */
  stop(signal?: NodeJS.Signals): Promise<number | null | undefined>;
  /** What the process wrote to stdout so far. */
  stdout(): string;
}

export type Scenario = (server: Running) => Promise<void>;

const TIMEOUT_MS = 5000;

function within<T>(promise: Promise<T>, what: string, ms = TIMEOUT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Message {
  data: string | Buffer;
  binary: boolean;
}

/** A `ws` client that queues what it receives. */
class Client {
  readonly ws: WebSocket;
  readonly messages: Message[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #wake: (() => void) | undefined;

  constructor(url: string, protocols: string[] = []) {
    this.ws = new WebSocket(url, protocols, { perMessageDeflate: false });
    this.ws.on("message", (data: Buffer, binary: boolean) => {
      this.messages.push({ data: binary ? data : data.toString("utf8"), binary });
      this.#wake?.();
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("error", reject);
      this.ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    this.closed = new Promise((resolve) => this.ws.once("close", (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
    this.ws.on("error", () => {}); // reported through `opened` or `closed`
  }

  static async open(url: string, protocols?: string[]): Promise<Client> {
    const client = new Client(url, protocols);
    await within(client.opened, `open ${url}`);
    return client;
  }

  /** The next message not yet taken. */
  async next(what = "a message"): Promise<Message> {
    await within(
      (async () => {
        while (this.messages.length === 0) await new Promise<void>((resolve) => (this.#wake = resolve));
      })(),
      `${what} on ${this.ws.url}`,
    );
    return this.messages.shift()!;
  }

  async nextText(what?: string): Promise<string> {
    const message = await this.next(what);
    assert.equal(message.binary, false, "expected a text message");
    return message.data as string;
  }

  close(): void {
    this.ws.terminate();
  }
}

/** The HTTP status a refused upgrade gets. */
function refusedWith(url: string, protocols: string[] = []): Promise<number> {
  return within(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols);
      ws.on("unexpected-response", (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on("open", () => reject(new Error(`${url} was upgraded`)));
      ws.on("error", () => {});
    }),
    `refusal of ${url}`,
  );
}

async function echoes(url: string): Promise<void> {
  const client = await Client.open(url);
  try {
    client.ws.send("hé, text");
    assert.deepEqual(await client.next("the text echo"), { data: "hé, text", binary: false });
    const bytes = Buffer.from([0, 1, 2, 255, 128]); // not UTF-8: only binary can carry it
    client.ws.send(bytes);
    assert.deepEqual(await client.next("the binary echo"), { data: bytes, binary: true });
  } finally {
    client.close();
  }
}

/** A clean exit: 0, when the exit code is known. */
function exitedCleanly(code: number | null | undefined): void {
  if (code !== undefined) assert.equal(code, 0, "the process did not exit 0");
}

async function httpText(url: string): Promise<string> {
  const response = await within(fetch(url), `GET ${url}`);
  return await response.text();
}

/** A raw client that completes the handshake, then sends invalid JSON and never answers the server's close frame. */
async function closingPeer(port: number, path: string, protocol: string): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  let received = Buffer.alloc(0);
  const waitFor = (check: (b: Buffer) => boolean, what: string) =>
    within(
      new Promise<void>((resolve) => {
        const look = () => {
          if (check(received)) {
            socket.off("data", onData);
            resolve();
          }
        };
        const onData = (chunk: Buffer) => {
          received = Buffer.concat([received, chunk]);
          look();
        };
        socket.on("data", onData);
        look();
      }),
      what,
    );
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
  );
  await waitFor((b) => b.includes("\r\n\r\n"), "the 101");
  const head = received.subarray(0, received.indexOf("\r\n\r\n") + 4).toString();
  assert.match(head, /^HTTP\/1\.1 101 /, head);
  received = received.subarray(received.indexOf("\r\n\r\n") + 4);
  // A masked text frame: "not json".
  const payload = Buffer.from("not json");
  const mask = Buffer.from([1, 2, 3, 4]);
  const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload.map((byte, i) => byte ^ mask[i % 4]!)]);
  socket.write(frame);
  // The server's close frame (1007); the peer stays silent, so the server holds it in "closing".
  await waitFor((b) => b.includes(0x88), "the server's close frame");
  return socket;
}

export const SCENARIOS: Record<string, Scenario> = {
  /** A text and a binary message come back as they went. */
  async echo(server) {
    await echoes(`ws://127.0.0.1:${server.port(8080)}`);
  },

  /** The echo, then SIGTERM: the client hears 1001 and the process exits 0. */
  async "echo-shutdown"(server) {
    await echoes(`ws://127.0.0.1:${server.port(8080)}`);
    const client = await Client.open(`ws://127.0.0.1:${server.port(8080)}`);
    const exit = server.stop("SIGTERM");
    assert.equal((await within(client.closed, "the close on shutdown")).code, 1001);
    exitedCleanly(await exit);
  },

  /** The first hooks: 401 without the token; with it, a greeting, the subprotocol by the server's preference, the echo. */
  async "hooks-usage"(server) {
    const base = `ws://127.0.0.1:${server.port(8080)}`;
    assert.equal(await refusedWith(`${base}/?token=wrong`), 401);
    const client = await Client.open(`${base}/?token=secret`, ["chat.v1", "chat.v2"]);
    try {
      assert.equal(client.ws.protocol, "chat.v2");
      assert.equal(await client.nextText("the welcome"), "welcome ada");
      client.ws.send("ping me");
      assert.equal(await client.nextText("the echo"), "ping me");
    } finally {
      client.close();
    }
    await delay(50);
    assert.ok(server.stdout().includes("listening on ws://"), server.stdout());
  },

  /** Node: raw on one port; HTTP and WebSockets on the other. */
  async "node-attach"(server) {
    await echoes(`ws://127.0.0.1:${server.port(8080)}`);
    assert.equal(await httpText(`http://127.0.0.1:${server.port(8081)}/`), "hello");
    await echoes(`ws://127.0.0.1:${server.port(8081)}`);
  },

  /** Deno or Bun: raw on one port; native at /ws beside an HTTP route on the other. */
  async "deno-native"(server) {
    await echoes(`ws://127.0.0.1:${server.port(8080)}`);
    assert.equal(await httpText(`http://127.0.0.1:${server.port(8081)}/`), "hello");
    await echoes(`ws://127.0.0.1:${server.port(8081)}/ws`);
  },
  async "bun-native"(server) {
    await SCENARIOS["deno-native"]!(server);
  },

  /** The Hono route: binary comes back as binary (not "[object ArrayBuffer]"), text as text. */
  async "hono-binary"(server) {
    await echoes(`ws://127.0.0.1:${server.port(8080)}/ws`);
  },

  /**
   * Issue 25's broadcast race: a member of the room that sent invalid JSON
   * and has not answered the close frame is still in the room; a message
   * from another member must reach the sender and not fail it (no 1011).
   */
  async "broadcast-race"(server) {
    const port = server.port(8080);
    const path = "/chat/lobby?name=ada&token=secret";
    const sender = await Client.open(`ws://127.0.0.1:${port}${path}`, ["chat.v1"]);
    const closing = await closingPeer(port, path.replace("ada", "bob"), "chat.v1");
    try {
      // Before the fix, the sender got its own message (it is first in the room), then the send to
      // the closing member threw and the sender was closed with 1011.
      const notClosed = sender.closed.then(({ code, reason }) => {
        throw new Error(`the sender was closed with ${code} ${reason}`);
      });
      notClosed.catch(() => {});
      for (const text of ["hi", "still here"]) {
        sender.ws.send(JSON.stringify({ type: "say", text }));
        const said = await Promise.race([sender.nextText(`the sender's own ${JSON.stringify(text)}`), notClosed]);
        assert.deepEqual(JSON.parse(said), { type: "said", from: "ada", text });
      }
      await delay(100);
      assert.equal(sender.ws.readyState, WebSocket.OPEN, "the sender was closed");
    } finally {
      sender.close();
      closing.destroy();
    }
  },

  /** Issue 25's rooms: clients of /room/1 hear each other and nothing of /room/2, and back. */
  async "rooms-isolation"(server) {
    const base = `ws://127.0.0.1:${server.port(8080)}`;
    const [a1, a2, b1] = await Promise.all([Client.open(`${base}/room/1`), Client.open(`${base}/room/1`), Client.open(`${base}/room/2`)]);
    try {
      a1.ws.send("to room 1");
      assert.equal(await a1.nextText(), "to room 1");
      assert.equal(await a2.nextText(), "to room 1");
      b1.ws.send("to room 2");
      assert.equal(await b1.nextText(), "to room 2");
      await delay(200);
      assert.deepEqual(a1.messages, [], "room 1 got a message of room 2");
      assert.deepEqual(a2.messages, [], "room 1 got a message of room 2");
      assert.deepEqual(b1.messages, [], "room 2 got a message of room 1");
    } finally {
      for (const client of [a1, a2, b1]) client.close();
    }
  },

  /** The limits example: the echo, then SIGTERM: the shutdown notice, then 1001, then exit 0. */
  async "limits-shutdown"(server) {
    await echoes(`ws://127.0.0.1:${server.port(8080)}`);
    const client = await Client.open(`ws://127.0.0.1:${server.port(8080)}`);
    const exit = server.stop("SIGTERM");
    assert.deepEqual(JSON.parse(await client.nextText("the shutdown notice")), { type: "restarting", retryInMs: 2000 });
    assert.equal((await within(client.closed, "the close on shutdown")).code, 1001);
    exitedCleanly(await exit);
  },
};
