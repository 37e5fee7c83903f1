// The chat page served at `/`: one HTML document with its CSS and its
// script inline, kept in a module so that every runtime serves it without
// reading files. The script imports the Duplex client from `/client.js`
// (this package's client/mod.ts, bundled at server start).
//
// What the script does:
// - one DuplexClient on ws(s)://<host>/ws?name=<name> (or the `ws` query
//   parameter's URL, e.g. a proxy's); the client reconnects with backoff and
//   jitter, pauses while the browser is offline and pings the server itself;
// - subscribes to `room:<room>` from the start of its history: every message
//   shows exactly once, in order, across reconnects; a gap (history lost, a
//   server restart) shows one notice line;
// - publishes what is typed with `client.publish`: queued while the
//   connection is down, sent when it is back; a refusal shows as a notice;
// - shows the connection's status (connecting, open, reconnecting, closed);
// - uses the chat's contract (contract.ts) besides the topic: asks who is
//   in the room with the `members` call on every (re)open, then keeps the
//   list from the server's `presence` events; tells the room it is typing
//   with the `typing` client event (at most every 2 s while keys are
//   pressed) and shows "… is typing" for 3 s on the server's `typing`
//   events of others.
//
// Query parameters: room, name (join at once), ws (the WebSocket URL),
// heartbeat (the client's ping interval and timeout, in ms).
//
// Stable hooks for tests: #room, #name, #join, #status (data-state is idle,
// connecting, open, reconnecting or closed), #messages with one
// li[data-testid=message][data-offset] per message (.from, .text) and
// li[data-testid=notice] per gap or failure, #text, #send, #members (the
// names, comma-separated), #typing (empty, or "ada is typing…");
// `window.chat` records every status change (`statuses`), every subscribe
// result (`results`), the names of typing events heard (`typing`) and the
// client (`client`: `chat.client.call("history", { room })` works from the
// console).

/** The page's HTML. */
export const PAGE: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Duplex chat on Hono</title>
<style>
  :root { color-scheme: light dark; font: 15px/1.4 system-ui, sans-serif; }
  body { margin: 0 auto; max-width: 42rem; padding: 1rem; display: grid; gap: .75rem; }
  h1 { font-size: 1.2rem; margin: 0; }
  form { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; }
  input { font: inherit; padding: .35rem .5rem; }
  #text { flex: 1; min-width: 12rem; }
  button { font: inherit; padding: .35rem .8rem; }
  #status { font-size: .9rem; padding: .25rem .5rem; border-radius: .25rem; background: #8882; }
  #status::before { content: "\\25CF  "; }
  #status[data-state="open"]::before { color: #2a2; }
  #status[data-state="connecting"]::before, #status[data-state="reconnecting"]::before { color: #d90; }
  #status[data-state="closed"]::before, #status[data-state="idle"]::before { color: #c33; }
  #messages { list-style: none; margin: 0; padding: .5rem; min-height: 12rem; max-height: 60vh; overflow-y: auto;
    border: 1px solid #8886; border-radius: .25rem; }
  #messages li { padding: .1rem 0; overflow-wrap: anywhere; }
  #messages li.notice { color: #c33; font-style: italic; }
  #messages time { color: #888; font-size: .8rem; margin-right: .4rem; }
  #messages .from { font-weight: 600; margin-right: .4rem; }
  #messages li.mine .from { color: #27c; }
  #members { font-size: .9rem; color: #888; }
  #members:not(:empty)::before { content: "in the room: "; }
  #typing { font-size: .85rem; color: #888; font-style: italic; min-height: 1.2em; }
</style>
</head>
<body>
<h1>Duplex chat on Hono</h1>
<form id="join-form" data-testid="join-form">
  <label>Room <input id="room" data-testid="room" name="room" value="lobby" maxlength="64" required></label>
  <label>Name <input id="name" data-testid="name" name="name" placeholder="guest" maxlength="64"></label>
  <button id="join" data-testid="join" type="submit">Join</button>
</form>
<div id="status" data-testid="status" data-state="idle" role="status" aria-live="polite">not connected</div>
<div id="members" data-testid="members" aria-label="In the room"></div>
<ul id="messages" data-testid="messages" aria-label="Messages"></ul>
<div id="typing" data-testid="typing" aria-live="polite"></div>
<form id="say-form" data-testid="say-form">
  <input id="text" data-testid="text" name="text" placeholder="Say something" maxlength="4096" autocomplete="off">
  <button id="send" data-testid="send" type="submit" disabled>Send</button>
</form>
<script type="module">
import { DuplexClient } from "/client.js";

const $ = (id) => document.getElementById(id);
const roomInput = $("room"), nameInput = $("name"), statusEl = $("status"), list = $("messages");
const textInput = $("text"), sendButton = $("send"), membersEl = $("members"), typingEl = $("typing");
const params = new URLSearchParams(location.search);

let client = null;  // the current DuplexClient, or null
let joined = null;  // { room, name, topic } once joined

// For tests and the curious: what the connection did.
const chat = window.chat = { statuses: [], results: [], typing: [], client: null };

// Who is typing (name → when to forget it), and when this page last said it was.
const typers = new Map();
let typedAt = 0;

function showTyping() {
  const now = Date.now();
  for (const [name, until] of typers) if (until <= now) typers.delete(name);
  const names = [...typers.keys()];
  typingEl.textContent = names.length === 0 ? "" : names.join(", ") + (names.length === 1 ? " is" : " are") + " typing…";
}
setInterval(showTyping, 500);

function showMembers(names) {
  membersEl.textContent = names.join(", ");
}

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function append(li) {
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(li);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function notice(text) {
  const li = document.createElement("li");
  li.dataset.testid = "notice";
  li.className = "notice";
  li.textContent = text;
  append(li);
}

// The client delivers each message once and in order: append it.
function show(event) {
  let m;
  try { m = JSON.parse(event.data); } catch { return; }
  const li = document.createElement("li");
  li.dataset.testid = "message";
  li.dataset.epoch = event.epoch;
  li.dataset.offset = String(event.offset);
  if (joined !== null && joined.name !== "" && m.from === joined.name) li.className = "mine";
  const time = document.createElement("time");
  time.dateTime = String(m.at);
  time.textContent = new Date(m.at).toLocaleTimeString();
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = String(m.from);
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = String(m.text);
  li.append(time, from, text);
  append(li);
}

function describe(e) {
  switch (e.status) {
    case "connecting": return "connecting…";
    case "open": return "connected to " + joined.room + (joined.name === "" ? "" : " as " + joined.name);
    case "reconnecting":
      return "disconnected" + (e.code ? " (" + e.code + (e.reason ? ": " + e.reason : "") + ")" : "") +
        (e.delayMs === undefined ? ": reconnecting…" : ": retrying in " + (e.delayMs / 1000).toFixed(1) + " s");
    default: return "closed" + (e.reason ? ": " + e.reason : "");
  }
}

function join(room, name) {
  if (client !== null) client.close(1000, "rejoin");
  list.replaceChildren();
  const url = new URL(params.get("ws") || (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + "/ws");
  if (name !== "") url.searchParams.set("name", name);
  url.searchParams.set("room", room);
  joined = { room, name, topic: "room:" + room };
  typers.clear();
  showTyping();
  showMembers([]);
  const heartbeat = Number(params.get("heartbeat")) || undefined;
  // history and members are idempotent: sent again after a reconnect, answered once.
  const options = { idempotent: ["history", "members"] };
  if (heartbeat) options.heartbeat = { intervalMs: heartbeat, timeoutMs: heartbeat };
  const current = client = chat.client = new DuplexClient(url, options);
  current.on("status", (e) => {
    if (current !== client) return;
    chat.statuses.push(e.status);
    setStatus(e.status, describe(e));
    sendButton.disabled = e.status === "closed";
    if (e.status === "open") {
      current.call("members", { room }).then((names) => current === client && showMembers(names), () => {});
    }
  });
  current.onEvent("presence", (p) => {
    if (current === client && p.room === room) showMembers(p.names);
  });
  current.onEvent("typing", (t) => {
    if (current !== client || t.room !== room) return;
    chat.typing.push(t.name);
    typers.set(t.name, Date.now() + 3000);
    showTyping();
  });
  current.on("subscribed", (r) => {
    if (current !== client || r.topic !== joined.topic) return;
    chat.results.push(r.result);
    if (r.result === "gap") notice("some messages were lost (" + r.gap.reason + "): the server no longer has them");
  });
  current.subscribe(joined.topic, show, { from: "start" });
}

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  join(roomInput.value.trim() || "lobby", nameInput.value.trim());
});

// Tells the room, at most every 2 s; dropped (not queued) while disconnected.
textInput.addEventListener("input", () => {
  if (client === null || textInput.value.trim() === "" || Date.now() - typedAt < 2000) return;
  if (client.emit("typing", { room: joined.room })) typedAt = Date.now();
});

$("say-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = textInput.value;
  if (text.trim() === "" || client === null) return;
  textInput.value = "";
  typedAt = 0;
  // Queued while the connection is down; resolves once the server stored it.
  client.publish(joined.topic, text).catch((error) => notice("not sent: " + text + " (" + (error.code || error.message) + ")"));
});

// ?room=…&name=… joins at once.
if (params.has("room")) {
  roomInput.value = params.get("room");
  nameInput.value = params.get("name") || "";
  $("join").click();
}
</script>
</body>
</html>
`;
