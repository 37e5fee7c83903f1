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
// - shows the connection's status (connecting, open, reconnecting, closed).
//
// Query parameters: room, name (join at once), ws (the WebSocket URL),
// heartbeat (the client's ping interval and timeout, in ms).
//
// Stable hooks for tests: #room, #name, #join, #status (data-state is idle,
// connecting, open, reconnecting or closed), #messages with one
// li[data-testid=message][data-offset] per message (.from, .text) and
// li[data-testid=notice] per gap or failure, #text, #send; `window.chat`
// records every status change (`statuses`), every subscribe result
// (`results`) and the client (`client`).

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
<ul id="messages" data-testid="messages" aria-label="Messages"></ul>
<form id="say-form" data-testid="say-form">
  <input id="text" data-testid="text" name="text" placeholder="Say something" maxlength="4096" autocomplete="off">
  <button id="send" data-testid="send" type="submit" disabled>Send</button>
</form>
<script type="module">
import { DuplexClient } from "/client.js";

const $ = (id) => document.getElementById(id);
const roomInput = $("room"), nameInput = $("name"), statusEl = $("status"), list = $("messages");
const textInput = $("text"), sendButton = $("send");
const params = new URLSearchParams(location.search);

let client = null;  // the current DuplexClient, or null
let joined = null;  // { room, name, topic } once joined

// For tests and the curious: what the connection did.
const chat = window.chat = { statuses: [], results: [], client: null };

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
  joined = { room, name, topic: "room:" + room };
  const heartbeat = Number(params.get("heartbeat")) || undefined;
  const current = client = chat.client = new DuplexClient(url, heartbeat ? { heartbeat: { intervalMs: heartbeat, timeoutMs: heartbeat } } : {});
  current.on("status", (e) => {
    if (current !== client) return;
    chat.statuses.push(e.status);
    setStatus(e.status, describe(e));
    sendButton.disabled = e.status === "closed";
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

$("say-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = textInput.value;
  if (text.trim() === "" || client === null) return;
  textInput.value = "";
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
