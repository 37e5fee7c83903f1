// textAs: "bytes" over real sockets, on every target of this runtime (raw
// and native paths): text reaches the message hook as its UTF-8 bytes with
// binary = false, an echo with send(bytes, { binary: false }) reaches a `ws`
// client as text, invalid UTF-8 (fragmented, a code point split across
// fragments) still closes with 1007, and the default is unchanged.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import WebSocket from "ws";
import { App, type Handler, type Server } from "../../mod.ts";
import { targets } from "./_targets.ts";
import { Op, WsClient } from "./_wsclient.ts";

interface Heard {
  data: string | Uint8Array;
  binary: boolean;
}

/** A `ws` client that sends `messages` and collects as many answers. */
async function exchange(url: string, messages: (string | Uint8Array)[]): Promise<{ data: string; binary: boolean }[]> {
  const ws = new WebSocket(url);
  const answers: { data: string; binary: boolean }[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on("open", () => {
      for (const m of messages) ws.send(m, { binary: typeof m !== "string" });
    });
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      answers.push({ data: data.toString("utf8"), binary: isBinary });
      if (answers.length === messages.length) resolve();
    });
    ws.on("error", reject);
  });
  ws.close();
  return answers;
}

const TEXT = "héllo wörld ✓ 😀 ".repeat(300);

for (const target of targets) {
  describe(`textAs: "bytes": ${target.name}`, { skip: target.skip }, () => {
    const servers: Server[] = [];
    after(() => Promise.all(servers.map((s) => s.close())));

    async function start(handler: Handler, options: { textAs?: "string" | "bytes" } = {}): Promise<Server> {
      const server = await target.start(handler, { port: 0, hostname: "127.0.0.1", ...options });
      servers.push(server);
      return server;
    }

    it("hands text to the hook as bytes, and an echo of them as text reaches a ws client as text", async () => {
      const heard: Heard[] = [];
      const server = await start({
        message(ctx, data, binary) {
          heard.push({ data, binary });
          ctx.send(data, { binary });
        },
      }, { textAs: "bytes" });
      const answers = await exchange(server.url, [TEXT, new Uint8Array([0xff, 0, 1]), "a"]);
      assert.deepEqual(answers, [
        { data: TEXT, binary: false },
        { data: Buffer.from([0xff, 0, 1]).toString("utf8"), binary: true },
        { data: "a", binary: false },
      ]);
      assert.ok(heard[0]!.data instanceof Uint8Array);
      assert.equal(new TextDecoder().decode(heard[0]!.data), TEXT);
      assert.deepEqual(heard.map((h) => [h.binary, typeof h.data]), [[false, "object"], [true, "object"], [false, "object"]]);
    });

    it("gives an App middleware ctx.binary", async () => {
      const app = new App().use({
        message(ctx) {
          ctx.send(ctx.data, { binary: ctx.binary });
        },
      });
      const server = await start(app, { textAs: "bytes" });
      assert.deepEqual(await exchange(server.url, ["ünï", new Uint8Array([1])]), [
        { data: "ünï", binary: false },
        { data: "\u0001", binary: true },
      ]);
    });

    it("keeps the default: text is a string, binary false", async () => {
      const heard: Heard[] = [];
      const server = await start({
        message(ctx, data, binary) {
          heard.push({ data, binary });
          ctx.send(data);
        },
      });
      assert.deepEqual(await exchange(server.url, ["hé"]), [{ data: "hé", binary: false }]);
      assert.deepEqual(heard, [{ data: "hé", binary: false }]);
    });

    const noCloseFrame = target.differences?.protocolErrorWithoutCloseFrame;
    it("still closes invalid UTF-8 with 1007: fragmented, a code point split across fragments", { skip: noCloseFrame ?? false }, async () => {
      for (const fragments of [
        [[0x61, 0xe2], [0x9c, 0x41]], // U+2713's second continuation byte is ASCII
        [[0x61], [0xed, 0xa0, 0x80]], // a surrogate in the second fragment
        [[0x61, 0xf0, 0x9f], [0x98]], // a code point cut by the end of the message
      ]) {
        let messages = 0;
        const server = await start({ message: () => void messages++ }, { textAs: "bytes" });
        const client = await WsClient.connect(server.url);
        await client.sendFrames(fragments.map((payload, i) => ({
          opcode: i === 0 ? Op.Text : Op.Continuation,
          payload: new Uint8Array(payload),
          fin: i === fragments.length - 1,
        })));
        await client.expectClose(1007);
        client.destroy();
        assert.equal(messages, 0);
      }
    });
  });
}
