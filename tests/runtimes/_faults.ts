// Faults over real sockets, registered for every adapter and path in
// faults_test.ts: a peer that vanishes with a TCP reset (RST, no FIN) after a
// message, halfway through its handshake, or while the server is writing a
// large message; hooks that throw or reject (1011 for that connection only,
// 500 in the upgrade); App middleware that throws or rejects; and `close`,
// `error` and `onError` handlers that fail in turn. None of them may crash
// the process, leave an unhandled rejection (faults_test.ts listens for
// those), leak a connection or leave a timer behind.
//
// Every server runs on a clock that counts its pending timers, so "no timer
// left" is checked directly, not by waiting. The resets come from `node:net`'s
// `resetAndDestroy()` (SO_LINGER 0), which sends a real RST on Node, Deno and
// Bun alike (a node:net server sees ECONNRESET from each).
//
// Every path, native ones included, must behave the same here: none of the
// README's "Known differences of the native paths" changes what a fault does.
// The only branches are on where the request head is read (Duplex, or the
// runtime's HTTP server: `httpServerHandshakeTimeout`).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { connect, type Socket } from "node:net";
import process from "node:process";
import { describe, it } from "node:test";
import type { Clock, CloseInfo, Handler, Middleware, Server } from "../../mod.ts";
import { App, ProtocolError, systemClock } from "../../mod.ts";
import { Client, rawConnect, rawHandshake, until, upgradeRequest, within } from "./_helpers.ts";
import type { AppTarget } from "./_app_suite.ts";
import { Op, WsClient } from "./_wsclient.ts";

/** Bytes the server sends to a peer that stopped reading: more than loopback's kernel buffers hold. */
const LARGE = 8 * 1024 * 1024;

/** The close timeout of every server here: its timers are told apart from the others by this delay. */
const CLOSE_TIMEOUT_MS = 4321;
// Servers here run without the idle timeout: a live connection holds its idle
// timer (tests/runtimes/_limits_suite.ts covers it), and "no timer left"
// must mean no leak while bystanders stay open.

/** The runtime's timers, counting those scheduled and not yet fired nor cleared. */
export class CountingClock implements Clock {
  readonly #pending = new Map<unknown, number>();

  /** Timers still pending. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Timers still pending that were set for `ms`. */
  pendingFor(ms: number): number {
    let n = 0;
    for (const delay of this.#pending.values()) if (delay === ms) n++;
    return n;
  }

  now(): number {
    return systemClock.now();
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const handle = systemClock.setTimeout(() => {
      this.#pending.delete(handle);
      fn();
    }, ms);
    this.#pending.set(handle, ms);
    return handle;
  }

  clearTimeout(handle: unknown): void {
    if (handle === undefined) return;
    this.#pending.delete(handle);
    systemClock.clearTimeout(handle);
  }
}

/** An error that escaped: an unhandled rejection or an uncaught exception. */
export interface Escape {
  kind: "unhandled rejection" | "uncaught exception";
  error: unknown;
}

/**
 * Unhandled rejections and uncaught exceptions, recorded while listening:
 * `process` events on Node and Bun, `globalThis` events on Deno (where
 * `preventDefault()` keeps the runtime from ending the run, so that the
 * file can report them).
 */
export class Escapes {
  readonly list: Escape[] = [];
  readonly #onRejection = (reason: unknown) => void this.list.push({ kind: "unhandled rejection", error: reason });
  readonly #onException = (error: unknown) => void this.list.push({ kind: "uncaught exception", error });
  readonly #onRejectionEvent = (event: PromiseRejectionEvent) => {
    event.preventDefault();
    this.#onRejection(event.reason);
  };
  readonly #onErrorEvent = (event: ErrorEvent) => {
    event.preventDefault();
    this.#onException(event.error ?? event.message);
  };

  listen(): void {
    if ("Deno" in globalThis) {
      globalThis.addEventListener("unhandledrejection", this.#onRejectionEvent);
      globalThis.addEventListener("error", this.#onErrorEvent);
    } else {
      process.on("unhandledRejection", this.#onRejection);
      process.on("uncaughtException", this.#onException);
    }
  }

  stop(): void {
    if ("Deno" in globalThis) {
      globalThis.removeEventListener("unhandledrejection", this.#onRejectionEvent);
      globalThis.removeEventListener("error", this.#onErrorEvent);
    } else {
      process.off("unhandledRejection", this.#onRejection);
      process.off("uncaughtException", this.#onException);
    }
  }

  /** Whether `error` escaped. */
  has(error: unknown): boolean {
    return this.list.some((e) => e.error === error);
  }

  /** Takes `error` out of the list: the test that caused it reports it itself. */
  claim(error: unknown): boolean {
    const before = this.list.length;
    this.list.splice(0, this.list.length, ...this.list.filter((e) => e.error !== error));
    return this.list.length < before;
  }

  /** The list, described for an assertion message. */
  describe(): string[] {
    return this.list.map(({ kind, error }) => `${kind}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  }
}

/** Every escape during the fault tests; faults_test.ts listens for the whole file. */
export const escapes: Escapes = new Escapes();

/** What the hooks of one server saw, by request path. */
class Seen {
  readonly upgrades: string[] = [];
  readonly opens: string[] = [];
  readonly closes: { path: string; info: CloseInfo }[] = [];
  readonly errors: { path: string; error: unknown }[] = [];

  closesOf(path: string): CloseInfo[] {
    return this.closes.filter((c) => c.path === path).map((c) => c.info);
  }

  errorsOf(path: string): unknown[] {
    return this.errors.filter((e) => e.path === path).map((e) => e.error);
  }
}

/** The request path of a context, without the query. */
function pathOf(ctx: { request: { url: string } }): string {
  return ctx.request.url.split("?")[0]!;
}

/** Replaces `console.error` until `restore()`, keeping what it was given. */
function captureConsoleError(): { logged: unknown[][]; restore(): void } {
  const original = console.error;
  const logged: unknown[][] = [];
  console.error = (...args: unknown[]) => void logged.push(args);
  return { logged, restore: () => void (console.error = original) };
}

/** Whether some `console.error` call was given `error` itself. */
function wasLogged(logged: unknown[][], error: unknown): boolean {
  return logged.some((args) => args.includes(error));
}

/** Sends a text message on a raw client and waits for its echo. */
async function rawRoundTrip(client: WsClient, text: string): Promise<void> {
  const before = client.frames.length;
  await client.sendFrame({ opcode: Op.Text, payload: text });
  const frames = await client.waitForFrames(before + 1, 3000);
  const echoed = frames[before]!;
  assert.equal(echoed.opcode, Op.Text);
  assert.equal(new TextDecoder().decode(echoed.payload), text);
}

/** Resets a TCP connection: RST, no FIN (SO_LINGER 0, then close). */
function reset(socket: Socket): void {
  socket.resetAndDestroy();
}

/**
 * Connects to `port` and resets the connection from a child process (Node),
 * while this process waits for it synchronously: the server's event loop
 * cannot accept meanwhile, so the connection is reset while it sits in the
 * kernel's accept queue, and the server's next `accept()` meets a dead peer.
 */
function resetInAcceptQueue(port: number): void {
  const script = `const s = require("node:net").connect(${port}, "127.0.0.1", () => { s.resetAndDestroy(); setTimeout(() => process.exit(0), 50); });` +
    `s.on("error", (e) => { console.error(e.message); process.exit(1); });`;
  const child = spawnSync("node", ["-e", script], { encoding: "utf8", timeout: 10_000 });
  assert.equal(child.status, 0, `the resetting child: ${child.error?.message ?? child.stderr}`);
}

/** Registers the fault cases for `target`. */
export function runFaults(target: AppTarget): void {
  const differs = (d: keyof NonNullable<AppTarget["differences"]>) => target.differences?.[d] !== undefined;
  // The runtime's own HTTP server reads the request head (node:http, Deno.serve,
  // Bun.serve): a half-sent head never reaches Duplex.
  const httpServerReadsHead = differs("httpServerHandshakeTimeout");
  /** Timers the server's clock still holds. */
  const timersLeft = (clock: CountingClock) => clock.pending;

  /**
   * Starts a server on a counting clock, runs `body`, then shuts the server
   * down and checks that no connection and no timer is left, whether `body`
   * passed or not.
   */
  async function withServer<S>(
    handler: Handler<S>,
    body: (server: Server, clock: CountingClock) => Promise<void>,
  ): Promise<void> {
    const clock = new CountingClock();
    const server = await target.start(handler, { port: 0, hostname: "127.0.0.1", clock, closeTimeoutMs: CLOSE_TIMEOUT_MS, idleTimeoutMs: 0 });
    let failed = true;
    try {
      await body(server, clock);
      failed = false;
    } finally {
      const closing = within(server.close(), 10_000, "server.close");
      if (failed) await closing.catch(() => {});
      else {
        await closing;
        assert.equal(server.connections, 0, "no connection left after server.close()");
        assert.equal(timersLeft(clock), 0, "no timer left after server.close()");
      }
    }
  }

  /** An echo handler that records every hook by request path. */
  function recordingEcho(seen: Seen, extra: Partial<Handler> = {}): Handler {
    return {
      upgrade: (ctx) => void seen.upgrades.push(pathOf(ctx)),
      open: (ctx) => void seen.opens.push(pathOf(ctx)),
      message: (ctx, data) => void ctx.send(data),
      close: (ctx, info) => void seen.closes.push({ path: pathOf(ctx), info }),
      error: (ctx, error) => void seen.errors.push({ path: pathOf(ctx), error }),
      ...extra,
    };
  }

  describe(`${target.name}: faults: a peer that vanishes (RST, no FIN)`, { skip: target.skip }, () => {
    it("after a message: close hook once with 1006, the count back down, no timer left, others unaffected", async () => {
      const seen = new Seen();
      await withServer(recordingEcho(seen), async (server, clock) => {
        const bystander = await Client.open(`${server.url}/bystander`);
        assert.equal((await bystander.roundTrip("before")).data.toString(), "before");
        const victim = await WsClient.connect(server.url, { path: "/victim" });
        assert.equal(victim.response?.status, 101);
        await rawRoundTrip(victim, "hi");
        assert.equal(server.connections, 2);
        reset(victim.socket);
        await until(() => seen.closesOf("/victim").length > 0, 3000, "the victim's close hook");
        assert.deepEqual(seen.closesOf("/victim"), [{ code: 1006, reason: "", wasClean: false }]);
        await until(() => server.connections === 1, 3000, "the victim's connection to go");
        assert.equal(timersLeft(clock), 0, "no timer left for the victim");
        assert.deepEqual(seen.errorsOf("/victim"), [], "a reset is no protocol fault");
        assert.equal((await bystander.roundTrip("after")).data.toString(), "after");
      });
      assert.deepEqual(seen.closesOf("/victim"), [{ code: 1006, reason: "", wasClean: false }], "exactly once");
      assert.equal(seen.closesOf("/bystander").length, 1);
    });

    it("before the server accepted it (reset in the accept queue): the server goes on accepting", async () => {
      // Deno's accept() rejects (NotConnected) for such a peer; the raw Deno
      // server used to end its accept loop on it and never answer again.
      const seen = new Seen();
      await withServer(recordingEcho(seen), async (server) => {
        for (let i = 0; i < 3; i++) resetInAcceptQueue(server.port);
        const after = await within(Client.open(`${server.url}/after`), 3000, "a connection after the resets to open");
        assert.equal((await after.roundTrip("still serving")).data.toString(), "still serving");
        after.ws.close();
        await within(after.closed);
      });
      assert.deepEqual(seen.opens, ["/after"], "the reset connections never opened");
      assert.deepEqual(seen.errors, []);
    });

    it("halfway through its handshake: no hook runs, the count back down, no timer left", async () => {
      const seen = new Seen();
      await withServer(recordingEcho(seen), async (server, clock) => {
        const socket = await rawConnect(server.port);
        socket.on("error", () => {});
        const request = upgradeRequest();
        await new Promise<void>((resolve) => socket.write(request.slice(0, request.length >> 1), () => resolve()));
        if (!httpServerReadsHead) {
          // Duplex owns the socket from the first byte: wait until it counts it.
          await until(() => server.connections === 1, 3000, "the half-open handshake to be counted");
          assert.equal(clock.pending, 1, "the handshake timer runs");
        }
        reset(socket);
        await until(() => server.connections === 0, 3000, "the count back to 0");
        assert.equal(timersLeft(clock), 0, "the handshake timer is cleared");
        const after = await Client.open(`${server.url}/after`);
        assert.equal((await after.roundTrip("still serving")).data.toString(), "still serving");
        after.ws.close();
        await within(after.closed);
      });
      assert.deepEqual(seen.upgrades, ["/after"], "the reset request never reached the upgrade hook");
      assert.deepEqual(seen.opens, ["/after"]);
      assert.deepEqual(seen.closes.map((c) => c.path), ["/after"], "no close hook for a connection that never opened");
      assert.deepEqual(seen.errors, []);
    });

    // Duplex's own accept loop only: on the other paths the runtime's HTTP server accepts.
    const ownAccept = httpServerReadsHead ? "the runtime's own server accepts the connections on this path" : false;
    it("before it is accepted (3,000 connections reset as soon as they connect): the server goes on accepting", { skip: ownAccept }, async () => {
      const seen = new Seen();
      await withServer(recordingEcho(seen), async (server) => {
        // Some of them are reset while still in the kernel's accept queue: Deno's
        // accept then fails with NotConnected, which once ended the raw listener.
        for (let round = 0; round < 3; round++) {
          await within(
            Promise.all(Array.from({ length: 1000 }, () =>
              new Promise<void>((resolve) => {
                const socket = connect(server.port, "127.0.0.1", () => {
                  reset(socket); // at once, from the connect callback
                  resolve();
                });
                socket.on("error", () => resolve());
              }))),
            10_000,
            "1,000 connections reset",
          );
        }
        await until(() => server.connections === 0, 5000, "the count back to 0");
        const after = await Client.open(`${server.url}/after`);
        assert.equal((await after.roundTrip("still accepting")).data.toString(), "still accepting");
        after.ws.close();
        await within(after.closed);
      });
      assert.deepEqual(seen.opens, ["/after"]);
    });

    it("while the server writes a large message it cannot deliver: 1006 once, nothing left, others unaffected", async () => {
      const seen = new Seen();
      let buffered = -1;
      const handler = recordingEcho(seen, {
        message(ctx, data) {
          if (data !== "large") return void ctx.send(data);
          ctx.send(new Uint8Array(LARGE));
          buffered = ctx.bufferedAmount;
        },
      });
      await withServer(handler, async (server, clock) => {
        const bystander = await Client.open(`${server.url}/bystander`);
        const victim = await WsClient.connect(server.url, { path: "/victim" });
        await rawRoundTrip(victim, "hi");
        victim.socket.pause(); // reads nothing more: the server's output backs up
        await victim.sendFrame({ opcode: Op.Text, payload: "large" });
        await until(() => buffered >= 0, 3000, "the large send");
        assert.ok(buffered > 0, `the server holds output it could not write yet: bufferedAmount ${buffered}`);
        reset(victim.socket);
        await until(() => seen.closesOf("/victim").length > 0, 3000, "the victim's close hook");
        assert.deepEqual(seen.closesOf("/victim"), [{ code: 1006, reason: "", wasClean: false }]);
        await until(() => server.connections === 1, 3000, "the victim's connection to go");
        assert.equal(timersLeft(clock), 0, "no timer left (drain polls included)");
        assert.deepEqual(seen.errorsOf("/victim"), []);
        assert.equal((await bystander.roundTrip("after")).data.toString(), "after");
      });
      assert.equal(seen.closesOf("/victim").length, 1, "exactly once");
    });
  });

  describe(`${target.name}: faults: timers`, { skip: target.skip }, () => {
    it("a close by the server leaves no timer once the close is reported, nor does server.close()", async () => {
      const seen = new Seen();
      const clock = new CountingClock();
      const server = await target.start(recordingEcho(seen, {
        message: (ctx, data) => (data === "close" ? ctx.close(4000, "bye") : void ctx.send(data)),
      }), { port: 0, hostname: "127.0.0.1", clock, closeTimeoutMs: CLOSE_TIMEOUT_MS, idleTimeoutMs: 0 });
      try {
        const victim = await Client.open(`${server.url}/victim`);
        const other = await Client.open(`${server.url}/other`);
        victim.ws.send("close");
        assert.equal((await within(victim.closed)).code, 4000);
        await until(() => seen.closesOf("/victim").length > 0 && server.connections === 1, 3000, "the close to be reported");
        assert.equal(clock.pending, 0, "no close timer left once the close was reported");
        assert.equal((await other.roundTrip("still serving")).data.toString(), "still serving");
      } finally {
        await within(server.close(), 10_000, "server.close");
      }
      assert.equal(server.connections, 0);
      assert.equal(clock.pending, 0, "no timer left after server.close()");
    });
  });

  describe(`${target.name}: faults: hooks that throw or reject`, { skip: target.skip }, () => {
    for (const how of ["throws", "rejects"] as const) {
      const fail = (message: string): void | Promise<void> => {
        const error = new Error(message);
        if (how === "throws") throw error;
        return Promise.reject(error);
      };

      it(`message hook that ${how}: 1011 for that connection, the error hook gets the error, others echo`, async () => {
        const seen = new Seen();
        const message = `message ${how} on ${target.name}`;
        const handler = recordingEcho(seen, {
          message: (ctx, data) => (data === "boom" ? fail(message) : void ctx.send(data)),
        });
        await withServer(handler, async (server, clock) => {
          const victim = await Client.open(`${server.url}/victim`);
          const bystander = await Client.open(`${server.url}/bystander`);
          assert.equal((await bystander.roundTrip("before")).data.toString(), "before");
          victim.ws.send("boom");
          assert.deepEqual(await within(victim.closed), { code: 1011, reason: "Internal error" });
          await until(() => seen.closesOf("/victim").length > 0, 3000, "the victim's close hook");
          assert.deepEqual(seen.closesOf("/victim"), [{ code: 1011, reason: "Internal error", wasClean: true }]);
          const errors = seen.errorsOf("/victim");
          assert.equal(errors.length, 1);
          assert.equal((errors[0] as Error).message, message);
          assert.equal((await bystander.roundTrip("after")).data.toString(), "after");
          assert.equal(server.connections, 1);
          assert.equal(timersLeft(clock), 0);
        });
        assert.deepEqual(seen.errorsOf("/bystander"), []);
      });

      it(`open hook that ${how}: 1011, the error hook gets the error, others echo`, async () => {
        const seen = new Seen();
        const message = `open ${how} on ${target.name}`;
        const handler = recordingEcho(seen, {
          open: (ctx) => (pathOf(ctx) === "/victim" ? fail(message) : undefined),
        });
        await withServer(handler, async (server) => {
          const bystander = await Client.open(`${server.url}/bystander`);
          const victim = new Client(`${server.url}/victim`);
          assert.deepEqual(await within(victim.closed), { code: 1011, reason: "Internal error" });
          await until(() => seen.closesOf("/victim").length > 0, 3000, "the victim's close hook");
          assert.deepEqual(seen.closesOf("/victim"), [{ code: 1011, reason: "Internal error", wasClean: true }]);
          assert.deepEqual(seen.errorsOf("/victim").map((e) => (e as Error).message), [message]);
          assert.deepEqual(victim.messages, []);
          assert.equal((await bystander.roundTrip("after")).data.toString(), "after");
        });
      });

      it(`upgrade hook that ${how}: HTTP 500 and no 101, the error hook gets the error, nothing opens`, async () => {
        const seen = new Seen();
        const message = `upgrade ${how} on ${target.name}`;
        const handler = recordingEcho(seen, {
          upgrade: (ctx) => (pathOf(ctx) === "/victim" ? fail(message) : undefined),
        });
        await withServer(handler, async (server) => {
          const response = await rawHandshake(server.port, upgradeRequest({}, "GET /victim HTTP/1.1"));
          assert.equal(response.status, 500);
          assert.equal(response.headers["sec-websocket-accept"], undefined);
          response.socket.destroy();
          await until(() => server.connections === 0, 3000, "the refused connection to go");
          const after = await Client.open(`${server.url}/after`);
          assert.equal((await after.roundTrip("still serving")).data.toString(), "still serving");
        });
        assert.deepEqual(seen.errorsOf("/victim").map((e) => (e as Error).message), [message]);
        assert.deepEqual(seen.opens, ["/after"], "nothing opened for the refused request");
        assert.deepEqual(seen.closes.map((c) => c.path), ["/after"], "no close hook for it either");
      });

      it(`close hook that ${how}: the error hook gets the error, no crash, the server goes on`, async () => {
        const seen = new Seen();
        const handler = recordingEcho(seen, {
          close(ctx, info) {
            seen.closes.push({ path: pathOf(ctx), info });
            return fail(`close ${how} on ${target.name} for ${pathOf(ctx)}`);
          },
        });
        await withServer(handler, async (server, clock) => {
          const first = await Client.open(`${server.url}/first`);
          first.ws.close(4000);
          await within(first.closed);
          await until(() => seen.errorsOf("/first").length > 0, 3000, "the error hook");
          assert.deepEqual(seen.errorsOf("/first").map((e) => (e as Error).message), [`close ${how} on ${target.name} for /first`]);
          assert.deepEqual(seen.closesOf("/first"), [{ code: 4000, reason: "", wasClean: true }]);
          await until(() => server.connections === 0, 3000, "the connection to go");
          assert.equal(timersLeft(clock), 0);
          const second = await Client.open(`${server.url}/second`);
          assert.equal((await second.roundTrip("still serving")).data.toString(), "still serving");
          // A reset: the close hook fails on the 1006 path too.
          const victim = await WsClient.connect(server.url, { path: "/victim" });
          await rawRoundTrip(victim, "hi");
          reset(victim.socket);
          await until(() => seen.errorsOf("/victim").length > 0, 3000, "the error hook after a reset");
          assert.deepEqual(seen.closesOf("/victim"), [{ code: 1006, reason: "", wasClean: false }]);
        });
        // server.close() ran the close hook of /second, which failed as well.
        assert.deepEqual(seen.errors.map((e) => e.path), ["/first", "/victim", "/second"]);
      });

      // The error hook is typed `void`, but an `async error()` compiles: its
      // rejection must be handled too (logged, as a throw).
      it(`error hook that ${how} while reporting a failed message hook: logged, 1011 still sent, no crash`, async () => {
        const seen = new Seen();
        const secondary = new Error(`error hook ${how} on ${target.name}`);
        const handler = recordingEcho(seen, {
          message: (ctx, data) => (data === "boom" ? fail(`message throws on ${target.name}`) : void ctx.send(data)),
          error(ctx, error) {
            seen.errors.push({ path: pathOf(ctx), error });
            if (how === "throws") throw secondary;
            return Promise.reject(secondary) as unknown as void;
          },
        });
        const logs = captureConsoleError();
        try {
          await withServer(handler, async (server) => {
            const victim = await Client.open(`${server.url}/victim`);
            const bystander = await Client.open(`${server.url}/bystander`);
            victim.ws.send("boom");
            assert.deepEqual(await within(victim.closed), { code: 1011, reason: "Internal error" });
            // Logged, or escaped (an unhandled rejection is reported a turn later).
            await until(() => wasLogged(logs.logged, secondary) || escapes.has(secondary), 3000, "the error hook's own error");
            assert.equal((await bystander.roundTrip("after")).data.toString(), "after");
          });
        } finally {
          logs.restore();
        }
        assert.equal(escapes.claim(secondary), false, "the error hook's own error escaped");
        assert.ok(wasLogged(logs.logged, secondary), "the error hook's own error is logged");
        assert.deepEqual(seen.errorsOf("/victim").map((e) => (e as Error).message), [`message throws on ${target.name}`]);
      });
    }
  });

  describe(`${target.name}: faults: App middleware that throws or rejects`, { skip: target.skip }, () => {
    /** An App that echoes, fails where `failing` says, and records what `onError` got. */
    function failingApp(failing: Middleware, reported: { error: unknown; type: string; path: string; id: string }[], seen: Seen): App {
      return new App()
        .use({
          open: (ctx, next) => {
            seen.opens.push(pathOf(ctx));
            return next();
          },
          close: (ctx, next) => {
            seen.closes.push({ path: pathOf(ctx), info: { code: ctx.code, reason: ctx.reason, wasClean: ctx.wasClean } });
            return next();
          },
        })
        .use(failing)
        .use({ message: (ctx) => void ctx.send(ctx.data) })
        .onError((error, ctx) => void reported.push({ error, type: ctx.type, path: pathOf(ctx), id: ctx.id }));
    }

    for (const how of ["throws", "rejects"] as const) {
      /** Throws, or returns a promise that rejects a turn later. */
      const fail = (message: string): Promise<void> => {
        if (how === "throws") throw new Error(message);
        return Promise.resolve().then(() => Promise.reject(new Error(message)));
      };

      it(`message middleware that ${how}: 1011 for that connection, onError gets the error and the context, others echo`, async () => {
        const reported: { error: unknown; type: string; path: string; id: string }[] = [];
        const seen = new Seen();
        const message = `app message ${how} on ${target.name}`;
        const app = failingApp({
          message(ctx, next) {
            if (ctx.data !== "boom") return next();
            return fail(message);
          },
        }, reported, seen);
        await withServer(app, async (server, clock) => {
          const victim = await Client.open(`${server.url}/victim`);
          const bystander = await Client.open(`${server.url}/bystander`);
          assert.equal((await bystander.roundTrip("before")).data.toString(), "before");
          victim.ws.send("boom");
          assert.deepEqual(await within(victim.closed), { code: 1011, reason: "Internal error" });
          assert.equal((await bystander.roundTrip("after")).data.toString(), "after");
          await until(() => seen.closesOf("/victim").length > 0, 3000, "the victim's close middleware");
          assert.deepEqual(seen.closesOf("/victim"), [{ code: 1011, reason: "Internal error", wasClean: true }]);
          assert.equal(reported.length, 1);
          assert.equal((reported[0]!.error as Error).message, message);
          assert.equal(reported[0]!.type, "message");
          assert.equal(reported[0]!.path, "/victim");
          assert.equal(server.connections, 1);
          assert.equal(timersLeft(clock), 0);
        });
      });

      it(`upgrade middleware that ${how}: HTTP 500 and no 101, onError gets the error and the upgrade context`, async () => {
        const reported: { error: unknown; type: string; path: string; id: string }[] = [];
        const seen = new Seen();
        const message = `app upgrade ${how} on ${target.name}`;
        const app = failingApp({
          upgrade(ctx, next) {
            if (pathOf(ctx) !== "/victim") return next();
            return fail(message);
          },
        }, reported, seen);
        await withServer(app, async (server) => {
          const response = await rawHandshake(server.port, upgradeRequest({}, "GET /victim HTTP/1.1"));
          assert.equal(response.status, 500);
          assert.equal(response.headers["sec-websocket-accept"], undefined);
          response.socket.destroy();
          const after = await Client.open(`${server.url}/after`);
          assert.equal((await after.roundTrip("still serving")).data.toString(), "still serving");
        });
        assert.deepEqual(reported.map((r) => [(r.error as Error).message, r.type, r.path]), [[message, "upgrade", "/victim"]]);
        assert.deepEqual(seen.opens, ["/after"]);
      });

      it(`open middleware that ${how}: 1011, onError gets the error with the open context`, async () => {
        const reported: { error: unknown; type: string; path: string; id: string }[] = [];
        const seen = new Seen();
        const message = `app open ${how} on ${target.name}`;
        const app = failingApp({
          open(ctx, next) {
            if (pathOf(ctx) !== "/victim") return next();
            return fail(message);
          },
        }, reported, seen);
        await withServer(app, async (server) => {
          const bystander = await Client.open(`${server.url}/bystander`);
          const victim = new Client(`${server.url}/victim`);
          assert.deepEqual(await within(victim.closed), { code: 1011, reason: "Internal error" });
          assert.equal((await bystander.roundTrip("after")).data.toString(), "after");
        });
        assert.deepEqual(reported.map((r) => [(r.error as Error).message, r.type, r.path]), [[message, "open", "/victim"]]);
      });

      it(`error middleware that ${how} on a peer's protocol fault: onError gets its error, no crash, the server goes on`, async () => {
        const reported: { error: unknown; type: string; path: string; id: string }[] = [];
        const seen = new Seen();
        const message = `app error ${how} on ${target.name}`;
        const faults: unknown[] = [];
        const app = failingApp({
          error(ctx) {
            faults.push(ctx.error);
            return fail(message);
          },
        }, reported, seen);
        await withServer(app, async (server, clock) => {
          const bystander = await Client.open(`${server.url}/bystander`);
          const victim = await WsClient.connect(server.url, { path: "/victim" });
          await victim.sendFrame({ opcode: Op.Text, payload: new Uint8Array([0xc0, 0xaf]) }); // invalid UTF-8
          await until(() => reported.length === 1, 3000, "onError");
          assert.equal(faults.length, 1);
          assert.ok(faults[0] instanceof ProtocolError, "the error phase got the peer's fault");
          assert.deepEqual(reported.map((r) => [(r.error as Error).message, r.type, r.path]), [[message, "error", "/victim"]]);
          await until(() => seen.closesOf("/victim").length > 0, 3000, "the victim's close middleware");
          await until(() => server.connections === 1, 3000, "the victim's connection to go");
          victim.destroy();
          assert.equal(timersLeft(clock), 0);
          assert.equal((await bystander.roundTrip("after")).data.toString(), "after");
        });
        assert.equal(reported.length, 1, "the protocol fault itself is not an onError matter");
      });

      it(`close middleware that ${how}, then an onError that throws: logged, no crash, the server goes on`, async () => {
        const seen = new Seen();
        const closeError = new Error(`app close ${how} on ${target.name}`);
        const onErrorError = new Error(`onError throws on ${target.name}`);
        const reported: unknown[] = [];
        const app = new App()
          .use({
            close(ctx, next) {
              seen.closes.push({ path: pathOf(ctx), info: { code: ctx.code, reason: ctx.reason, wasClean: ctx.wasClean } });
              if (how === "throws") throw closeError;
              return Promise.resolve(next()).then(() => Promise.reject(closeError));
            },
            message: (ctx) => void ctx.send(ctx.data),
          })
          .onError((error) => {
            reported.push(error);
            throw onErrorError;
          });
        const logs = captureConsoleError();
        try {
          await withServer(app, async (server, clock) => {
            const first = await Client.open(`${server.url}/first`);
            first.ws.close(4000);
            await within(first.closed);
            await until(() => reported.length === 1, 3000, "onError");
            assert.equal(reported[0], closeError);
            await until(() => wasLogged(logs.logged, onErrorError), 3000, "onError's own error to be logged");
            await until(() => server.connections === 0, 3000, "the connection to go");
            assert.equal(timersLeft(clock), 0);
            const victim = await WsClient.connect(server.url, { path: "/victim" });
            await rawRoundTrip(victim, "hi");
            reset(victim.socket);
            await until(() => reported.length === 2, 3000, "onError after a reset");
            const second = await Client.open(`${server.url}/second`);
            assert.equal((await second.roundTrip("still serving")).data.toString(), "still serving");
          });
        } finally {
          logs.restore();
        }
        assert.deepEqual(seen.closes.map((c) => [c.path, c.info.code]), [["/first", 4000], ["/victim", 1006], ["/second", 1001]]);
      });
    }

    it("an onError that rejects: logged, nothing unhandled, 1011 still sent", async () => {
      const secondary = new Error(`onError rejects on ${target.name}`);
      const app = new App()
        .use({ message: (ctx) => (ctx.data === "boom" ? Promise.reject(new Error("boom")) : void ctx.send(ctx.data)) })
        .onError(async () => {
          await Promise.resolve();
          throw secondary;
        });
      const logs = captureConsoleError();
      try {
        await withServer(app, async (server) => {
          const victim = await Client.open(`${server.url}/victim`);
          const bystander = await Client.open(`${server.url}/bystander`);
          victim.ws.send("boom");
          assert.deepEqual(await within(victim.closed), { code: 1011, reason: "Internal error" });
          // Logged, or escaped (an unhandled rejection is reported a turn later).
          await until(() => wasLogged(logs.logged, secondary) || escapes.has(secondary), 3000, "onError's own rejection");
          assert.equal((await bystander.roundTrip("after")).data.toString(), "after");
        });
      } finally {
        logs.restore();
      }
      assert.equal(escapes.claim(secondary), false, "onError's rejection escaped");
      assert.ok(wasLogged(logs.logged, secondary), "onError's rejection is logged");
    });
  });
}
