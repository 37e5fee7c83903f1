// Type tests of the typed client: `DuplexClient<typeof contract>` with a
// Zod contract and a Valibot contract (contract_chat.ts, imported as types
// only, as a browser app would). The assertions are the `@ts-expect-error`
// lines and the typed assignments, checked by `tsc --noEmit` and
// `deno check` in `npm run check` (an unused `@ts-expect-error` fails the
// check). The functions below are only compiled, never run: the runtime
// test makes a typed and an untyped client, to show the values exist.
import assert from "node:assert/strict";
import { it } from "node:test";
import { type CallFailure, type CallStream, DuplexClient, DuplexError } from "../../client/mod.ts";
import { FakeSocket } from "../reliable/_fake.ts";
import type { valibotChat, zodChat } from "./contract_chat.ts";

type Msg = { id: number; from: string; text: string; at: string };

export async function zodClient(client: DuplexClient<typeof zodChat>): Promise<void> {
  // calls: names, inputs, outputs
  const history: Msg[] = await client.call("history", { room: "lobby" });
  await client.call("history", { room: "lobby", limit: 10 }, { timeoutMs: 1_000, signal: AbortSignal.timeout(5_000) });
  // @ts-expect-error: no call "histories"
  await client.call("histories", { room: "lobby" });
  // @ts-expect-error: room is a string
  await client.call("history", { room: 1 });
  // @ts-expect-error: room is required
  await client.call("history", {});
  // @ts-expect-error: the input is required
  await client.call("history");
  // @ts-expect-error: the output is Msg[], not string[]
  const wrong: string[] = await client.call("history", { room: "lobby" });
  // @ts-expect-error: limit is an integer (a number), not a string
  await client.call("history", { room: "lobby", limit: "10" });
  const sent: { id: number } = await client.call("send", { room: "lobby", text: "hi" });
  // a call without input takes none; its output is the schema's output type (after the transform)
  const count: string = await client.call("count");
  // @ts-expect-error: count's output is a string once transformed
  const countNumber: number = await client.call("count");
  // @ts-expect-error: a stream is not a call
  await client.call("tail", { room: "lobby" });
  // @ts-expect-error: unknown option
  await client.call("count", undefined, { timeout: 5 });

  // streams: names, inputs, items
  const tail: CallStream<Msg> = client.stream("tail", { room: "lobby" }, { credit: 8, timeoutMs: 30_000 });
  for await (const m of client.stream("tail", { room: "lobby" })) {
    const text: string = m.text;
    // @ts-expect-error: an item is a Msg, which has no room
    void m.room;
    void text;
  }
  // @ts-expect-error: an item is a Msg, not a number
  const item: CallStream<number> = client.stream("tail", { room: "lobby" });
  // @ts-expect-error: history is not a stream
  client.stream("history", { room: "lobby" });
  // @ts-expect-error: room is a string
  client.stream("tail", { room: 5 });

  // events: client → server
  client.emit("typing", { room: "lobby" });
  client.emit("ping");
  // @ts-expect-error: no client event "typed"
  client.emit("typed", { room: "lobby" });
  // @ts-expect-error: typing needs its room
  client.emit("typing", {});
  // @ts-expect-error: typing has data
  client.emit("typing");
  // @ts-expect-error: said is the server's event, not the client's
  client.emit("said", { room: "lobby" });

  // events: server → client
  client.onEvent("said", (m) => {
    const room: string = m.room;
    const id: number = m.id;
    // @ts-expect-error: id is a number
    const idText: string = m.id;
    void room, id, idText;
  });
  client.onEvent("typing", ({ name }) => void name.toUpperCase());
  // @ts-expect-error: no server event "joined"
  client.onEvent("joined", () => {});
  // @ts-expect-error: ping is the client's event
  client.onEvent("ping", () => {});

  // declared errors, by name
  try {
    await client.call("send", { room: "lobby", text: "hi" });
  } catch (e) {
    if (client.isCallError(e, "TooFast")) {
      const ms: number = e.data.retryInMs;
      const failed: "failed" = e.code;
      const error: DuplexError = e;
      // @ts-expect-error: TooFast's data has no until
      void e.data.until;
      void ms, failed, error;
    }
    if (client.isCallError(e, "Muted")) void e.data.until.toUpperCase();
    if (client.isCallError(e, "Error")) {
      const none: undefined = e.data;
      void none;
    }
    // @ts-expect-error: no call declares an error "Slow"
    client.isCallError(e, "Slow");
    if (e instanceof DuplexError && e.code === "failed") {
      const f = e as CallFailure<typeof zodChat, "send">;
      if (f.name === "TooFast") void f.data.retryInMs.toFixed();
      else if (f.name === "Muted") void f.data.until.toUpperCase();
      else {
        const name: "Error" = f.name;
        void name;
      }
    }
  }
  void history, wrong, sent, count, countNumber, tail, item;
}

export async function valibotClient(client: DuplexClient<typeof valibotChat>): Promise<void> {
  const history: Msg[] = await client.call("history", { room: "lobby" });
  // @ts-expect-error: no call "histories"
  await client.call("histories", { room: "lobby" });
  // @ts-expect-error: room is a string
  await client.call("history", { room: 1 });
  // @ts-expect-error: the output is Msg[], not Msg
  const wrong: Msg = await client.call("history", { room: "lobby" });
  const count: string = await client.call("count");
  // @ts-expect-error: count's output is a string once transformed
  const countNumber: number = await client.call("count");
  // @ts-expect-error: a stream is not a call
  await client.call("tail", { room: "lobby" });
  for await (const m of client.stream("tail", { room: "lobby" })) {
    const at: string = m.at;
    // @ts-expect-error: at is a string
    const atNumber: number = m.at;
    void at, atNumber;
  }
  // @ts-expect-error: history is not a stream
  client.stream("history", { room: "lobby" });
  client.emit("typing", { room: "lobby" });
  // @ts-expect-error: room is a string
  client.emit("typing", { room: 1 });
  // @ts-expect-error: no client event "typed"
  client.emit("typed", { room: "lobby" });
  client.onEvent("said", (m) => void m.room.toUpperCase());
  // @ts-expect-error: the listener's data is a said message, whose text is a string
  client.onEvent("said", (m: { text: number }) => void m);
  try {
    await client.call("send", { room: "lobby", text: "hi" });
  } catch (e) {
    if (client.isCallError(e, "TooFast")) void e.data.retryInMs.toFixed();
    // @ts-expect-error: no call declares an error "Slow"
    client.isCallError(e, "Slow");
  }
  void history, wrong, count, countNumber;
}

export function options(): void {
  // the idempotent option names only calls the contract declares idempotent
  new DuplexClient<typeof zodChat>("ws://x/", { idempotent: ["history"] });
  // @ts-expect-error: send is not declared idempotent
  new DuplexClient<typeof zodChat>("ws://x/", { idempotent: ["send"] });
  // @ts-expect-error: no call "nope"
  new DuplexClient<typeof valibotChat>("ws://x/", { idempotent: ["nope"] });
}

export async function untyped(client: DuplexClient): Promise<void> {
  // without a contract: any name, any data, results of type any (and subscribe/publish as ever)
  const anything: { whatever: number } = await client.call("anything", { x: 1 });
  await client.call("nothing");
  for await (const item of client.stream("feed", 1, { credit: 2 })) void item.foo;
  client.emit("e", [1, 2]);
  client.onEvent("e", (data) => void data.foo);
  client.subscribe("room:1", (m) => void m.data);
  await client.publish("room:1", "hi");
  void anything;
  new DuplexClient("ws://x/", { idempotent: ["anything"], callTimeoutMs: 5_000 });
}

it("a typed and an untyped client exist, with call, stream, emit, onEvent and isCallError", () => {
  const typed = new DuplexClient<typeof zodChat>("ws://x/", { WebSocket: FakeSocket, idempotent: ["history"], browser: false });
  const plain = new DuplexClient("ws://x/", { WebSocket: FakeSocket, browser: false });
  for (const client of [typed, plain] as DuplexClient[]) {
    for (const method of ["call", "stream", "emit", "onEvent", "isCallError"] as const) assert.equal(typeof client[method], "function");
    client.close();
  }
  const e = new DuplexError("failed", "Slow down", undefined, { call: "send", name: "TooFast", data: { retryInMs: 1 } });
  assert.ok(typed.isCallError(e, "TooFast"));
  assert.equal(e.data.retryInMs, 1);
  assert.equal(e.name, "TooFast");
});
