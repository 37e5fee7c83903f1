// examples/chat.ts as a user runs it: a child process on the runtime running
// this test (Node through tsx, Deno, Bun), on the raw transport and, on Deno
// and Bun, on the native one too. Only its documented surface is used: the
// environment, the first line of stdout, and WebSocket clients.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { runtime } from "../../mod.ts";
import { Client, delay, rawHandshake, type Running, startProcess, upgradeRequest, within } from "./_helpers.ts";

const on = runtime();
const TOKEN = `chat-test-${Math.random().toString(36).slice(2)}`;
const INTERVAL_MS = 150;
const TIMEOUT_MS = 150;

/** The example, running. */
type Chat = Running;

function startChat(transport: "raw" | "native" | undefined): Promise<Chat> {
  return startProcess(on, "examples/chat.ts", {
    PORT: "0",
    HOST: "127.0.0.1",
    CHAT_TOKEN: TOKEN,
    HEARTBEAT_INTERVAL_MS: String(INTERVAL_MS),
    HEARTBEAT_TIMEOUT_MS: String(TIMEOUT_MS),
    TRANSPORT: transport,
  }, "chat.ts");
}

/** Stops the example with SIGTERM and waits for it to exit. */
function stopChat(chat: Chat | undefined): Promise<number | string | undefined> {
  return chat === undefined ? Promise.resolve(undefined) : chat.stop();
}

/**
 * Asserts that the example exited cleanly after our SIGTERM: code 0. Deno's
 * node:child_process reports the signal it sent (`exit` gives `null,
 * "SIGTERM"`, and `signalCode` is set by `kill()` itself) even when the child
 * handled it and exited with 0, so there the code cannot be seen; the 1001
 * that clients get shows that the handler ran.
 */
function assertCleanExit(code: number | string | undefined, chat: Chat | undefined): void {
  const message = `exit code; stderr: ${chat?.stderr()}`;
  if (on === "deno" && code === "SIGTERM") return;
  assert.equal(code, 0, message);
}

const said = (from: string, text: string) => ({ type: "said", from, text });
const say = (text: string) => JSON.stringify({ type: "say", text });
const parsed = (client: Client) => client.messages.map((m) => JSON.parse(m.data.toString()) as unknown);

const transports: ("raw" | "native" | undefined)[] = on === "node" ? [undefined] : [undefined, "native"];

for (const transport of transports) {
  const name = `examples/chat.ts on ${on}, ${transport ?? "raw"} transport`;
  const noPing = on === "deno" && transport === "native"; // Deno.serve cannot send pings

  describe(name, () => {
    let chat: Chat | undefined;
    const clients: Client[] = [];
    const open = async (path: string, options: { bearer?: string; protocols?: string[] } = {}) => {
      const headers = options.bearer === undefined ? undefined : { Authorization: `Bearer ${options.bearer}` };
      const client = await Client.open(`${chat!.url}${path}`, options.protocols ?? ["chat.v1"], { headers });
      clients.push(client);
      return client;
    };

    before(async () => {
      chat = await startChat(transport);
    });
    after(async () => {
      for (const client of clients) client.ws.terminate();
      assertCleanExit(await stopChat(chat), chat);
    });

    it("prints `listening on ws://127.0.0.1:<port>` first, with the real port", () => {
      assert.match(chat!.line, /^listening on ws:\/\/127\.0\.0\.1:\d+$/);
      assert.ok(chat!.port > 0 && chat!.port < 65536, chat!.line);
    });

    it("broadcasts a say to everyone in the room, sender included, and never to another room", async () => {
      const a1 = await open("/chat/a?name=ada", { bearer: TOKEN });
      const a2 = await open(`/chat/a?name=bob&token=${TOKEN}`);
      const b1 = await open("/chat/b?name=cy", { bearer: TOKEN });
      for (const client of [a1, a2, b1]) assert.equal(client.ws.protocol, "chat.v1");
      a1.ws.send(say("hello a"));
      await a1.messagesUntil(1);
      await a2.messagesUntil(1);
      assert.deepEqual(parsed(a1), [said("ada", "hello a")]);
      assert.deepEqual(parsed(a2), [said("ada", "hello a")]);
      b1.ws.send(say("hello b"));
      await b1.messagesUntil(1);
      a2.ws.send(say("again"));
      await a1.messagesUntil(2);
      await a2.messagesUntil(2);
      await delay(100);
      assert.deepEqual(parsed(b1), [said("cy", "hello b")], "room b hears only itself");
      assert.deepEqual(parsed(a1), [said("ada", "hello a"), said("bob", "again")]);
      assert.deepEqual(parsed(a2), [said("ada", "hello a"), said("bob", "again")]);
    });

    it("names a client without ?name= guest-<id>", async () => {
      const guest = await open(`/chat/guests?token=${TOKEN}`);
      guest.ws.send(say("who am I"));
      const [message] = await guest.messagesUntil(1);
      const { from, ...rest } = JSON.parse(message!.data.toString()) as { from: string };
      assert.match(from, /^guest-\S+$/);
      assert.deepEqual(rest, { type: "said", text: "who am I" });
    });

    it("answers 401 with WWW-Authenticate to a missing or wrong token, before the upgrade", async () => {
      const requests = [
        ["missing", upgradeRequest({ "Sec-WebSocket-Protocol": "chat.v1" }, "GET /chat/a HTTP/1.1")],
        ["wrong bearer", upgradeRequest({ "Sec-WebSocket-Protocol": "chat.v1", Authorization: "Bearer nope" }, "GET /chat/a HTTP/1.1")],
        ["wrong query", upgradeRequest({ "Sec-WebSocket-Protocol": "chat.v1" }, "GET /chat/a?token=nope HTTP/1.1")],
      ] as const;
      for (const [what, request] of requests) {
        const response = await rawHandshake(chat!.port, request);
        response.socket.destroy();
        assert.equal(response.status, 401, what);
        assert.match(response.headers["www-authenticate"] ?? "", /^Bearer realm="chat"/, what);
      }
      await assert.rejects(open("/chat/a"), /HTTP 401/);
      await assert.rejects(open("/chat/a", { bearer: "nope" }), /HTTP 401/);
      await assert.rejects(open("/chat/a?token=nope"), /HTTP 401/);
    });

    it("answers 400 to a client that does not offer chat.v1", async () => {
      const none = await rawHandshake(chat!.port, upgradeRequest({}, `GET /chat/a?token=${TOKEN} HTTP/1.1`));
      none.socket.destroy();
      assert.equal(none.status, 400);
      await assert.rejects(open(`/chat/a?token=${TOKEN}`, { protocols: ["chat.v2"] }), /HTTP 400/);
    });

    it("closes with 1007 on invalid JSON", async () => {
      const client = await open(`/chat/json?token=${TOKEN}`);
      client.ws.send("{ nope");
      assert.equal((await within(client.closed)).code, 1007);
    });

    it(
      noPing
        ? "keeps clients across heartbeat intervals (Deno.serve cannot ping: a silent one is kept too)"
        : "keeps clients that answer pings across heartbeat intervals, and drops a silent one",
      async () => {
        const live = await open(`/chat/beat?name=live&token=${TOKEN}`);
        let pings = 0;
        live.ws.on("ping", () => pings++);
        const silent = await rawHandshake(
          chat!.port,
          upgradeRequest({ "Sec-WebSocket-Protocol": "chat.v1" }, `GET /chat/beat?token=${TOKEN} HTTP/1.1`),
        );
        assert.equal(silent.status, 101);
        silent.socket.on("error", () => {});
        const dropped = new Promise<true>((resolve) => silent.socket.once("close", () => resolve(true)));
        silent.socket.resume();
        const wait = 4 * (INTERVAL_MS + TIMEOUT_MS);
        if (noPing) {
          assert.equal(await Promise.race([dropped, delay(wait).then(() => false)]), false, "not dropped");
          assert.equal(pings, 0);
        } else {
          assert.equal(await within(dropped, 5000, "the silent client dropped"), true);
          await delay(Math.max(0, 2 * INTERVAL_MS));
          assert.ok(pings >= 1, `the live client was pinged (${pings})`);
        }
        silent.socket.destroy();
        assert.equal(live.ws.readyState, live.ws.OPEN);
        live.ws.send(say("still here"));
        assert.deepEqual((await live.messagesUntil(1)).map((m) => JSON.parse(m.data.toString())), [said("live", "still here")]);
      },
    );

    it("shuts down on SIGTERM: clients get 1001 and the process exits with 0", async () => {
      const client = await open(`/chat/last?token=${TOKEN}`);
      assertCleanExit(await stopChat(chat), chat);
      assert.deepEqual(await within(client.closed), { code: 1001, reason: "Server shutting down" });
    });
  });
}
