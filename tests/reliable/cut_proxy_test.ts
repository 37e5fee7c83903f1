// The cutting proxy of the e2e tests (_cut_proxy.ts), on its own, under
// whichever runtime runs this file (node --test, deno test, bun test): it
// forwards, cuts each connection within its lifetime bound and counts the
// cuts, refuses and blackholes while paused, and follows a retarget.
import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { delay, within } from "../runtimes/_helpers.ts";
import { CutProxy } from "./_cut_proxy.ts";

/** A TCP echo server on an ephemeral port; `tag` is prefixed to each echo. */
async function echoServer(tag: string): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.on("error", () => {});
    socket.on("data", (chunk) => socket.write(`${tag}${chunk}`));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return { server, port: (server.address() as { port: number }).port };
}

/** A client of the proxy that records what it gets and when it closes. */
function dial(port: number): { socket: Socket; text: () => string; closed: Promise<void> } {
  const socket = connect(port, "127.0.0.1");
  let text = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => void (text += chunk));
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  return { socket, text: () => text, closed };
}

describe("tests/reliable/_cut_proxy.ts", () => {
  let a: { server: Server; port: number };
  let b: { server: Server; port: number };
  before(async () => {
    a = await echoServer("a:");
    b = await echoServer("b:");
  });
  after(async () => {
    await Promise.all([a, b].map(({ server }) => new Promise((resolve) => server.close(resolve))));
  });

  it("forwards, and cuts every connection within its lifetime, counting each cut", async () => {
    const proxy = new CutProxy({ target: a.port, seed: 7, lifetimeMs: [10, 40] });
    await proxy.listen();
    try {
      for (let i = 0; i < 5; i++) {
        const c = dial(proxy.port);
        c.socket.write("hi");
        const started = Date.now();
        await within(c.closed, 2000, "the cut");
        assert.ok(Date.now() - started < 1000);
        assert.equal(c.text(), "a:hi");
      }
      assert.equal(proxy.cuts, 5);
      assert.equal(proxy.connections, 5);
      assert.equal(proxy.open, 0);
    } finally {
      await proxy.close();
    }
  });

  it("refuses while paused, blackholes while blackholed, and follows a retarget", async () => {
    const proxy = new CutProxy({ target: a.port, lifetimeMs: false });
    await proxy.listen();
    try {
      const kept = dial(proxy.port);
      kept.socket.write("1");
      await within((async () => {
        while (kept.text() !== "a:1") await delay(5);
      })(), 2000, "the echo");

      proxy.pause("refuse");
      await within(kept.closed, 2000, "the open connection to be cut");
      await within(dial(proxy.port).closed, 2000, "a new connection to be refused");

      proxy.pause("blackhole");
      const held = dial(proxy.port);
      held.socket.write("2");
      await delay(100);
      assert.equal(held.text(), "", "nothing passes a blackhole");
      assert.equal(held.socket.destroyed, false, "and nothing closes");

      proxy.retarget(b.port);
      proxy.resume();
      await within(held.closed, 2000, "the held connection to be cut on resume");
      const moved = dial(proxy.port);
      moved.socket.write("3");
      await within((async () => {
        while (moved.text() !== "b:3") await delay(5);
      })(), 2000, "the echo from the new target");
      moved.socket.destroy();
      assert.ok(proxy.cuts >= 1);
    } finally {
      await proxy.close();
    }
  });
});
