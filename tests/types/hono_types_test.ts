// Type tests of @duplex/ws/hono, checked by `npx tsc --noEmit` (and `deno
// check`): each `@ts-expect-error` must meet an error. The runtime test only
// confirms what the types say.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Hono } from "hono";
import { App } from "../../mod.ts";
import { upgradeWebSocket, type WebSocketRoute, type WSContext, type WSEvents } from "../../runtimes/hono.ts";

// The one-liner of the docs: `ws.send(e.data)` takes what `onMessage` gets.
const echo = upgradeWebSocket(() => ({ onMessage: (e, ws) => ws.send(e.data) }));
new Hono().get("/ws", echo);

// A route built from events, or from an App, always has its app: no `?.` needed (TS18048 before 0.2).
const fromEvents: WebSocketRoute = echo;
const fromApp = upgradeWebSocket(new App<{ user: string }>());
const typedApp: App<{ user: string }> = fromApp.app;

// A plain Handler object has no App behind it, and the type says so.
const fromHandler = upgradeWebSocket({ message: (conn, data) => void conn.send(data) });

function typeOnly(ws: WSContext, events: WSEvents): void {
  fromEvents.app.publish("news", "hello");
  fromApp.app.publish("news", new Uint8Array([1, 2]));
  // @ts-expect-error: a route served by a plain Handler has no app
  fromHandler.app.publish("news", "hello");
  // send() returns whether to keep sending (false: backpressure, or closing/closed and dropped).
  const ok: boolean = ws.send("text");
  // @ts-expect-error: a number is not a message
  ws.send(42);
  void ok;
  void events;
}

test("a route's app exists for events and App routes, and not for a plain Handler", () => {
  assert.ok(echo.app instanceof App);
  assert.ok(typedApp instanceof App);
  assert.equal(fromHandler.app, undefined);
  assert.equal(typeof typeOnly, "function");
});
