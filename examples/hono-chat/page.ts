// The chat page served at `/`: one HTML document with its CSS and plain
// JavaScript inline, kept in a module so that every runtime serves it without
// reading files.
//
// What the script does:
// - joins ws(s)://<host>/ws?room=<room>&name=<name>, offering `chat.v1`;
// - shows `history` on every (re)join and each `said`, de-duplicated by id
//   and kept in id order (the server's order);
// - reconnects after a drop with exponential backoff: 250 ms doubling to
//   5 s, each wait drawn at random between half and all of it (jitter), and
//   back to 250 ms once a connection opens;
// - on the window's `offline` event closes its socket and waits; on `online`
//   it reconnects at once.
//
// Stable hooks for tests: #room, #name, #join, #status (data-state is one of
// idle, connecting, open, waiting, offline), #messages with one
// li[data-testid=message][data-id] per message (.from, .text), #text, #send;
// `window.chat` reports opens, closes, every socket made and the current
// socket's readyState.

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
  #status[data-state="connecting"]::before, #status[data-state="waiting"]::before { color: #d90; }
  #status[data-state="offline"]::before, #status[data-state="idle"]::before { color: #c33; }
  #messages { list-style: none; margin: 0; padding: .5rem; min-height: 12rem; max-height: 60vh; overflow-y: auto;
    border: 1px solid #8886; border-radius: .25rem; }
  #messages li { padding: .1rem 0; overflow-wrap: anywhere; }
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
<script>
(() => {
  "use strict";
  const BASE_MS = 250;
  const MAX_MS = 5000;
  const $ = (id) => document.getElementById(id);
  const roomInput = $("room"), nameInput = $("name"), statusEl = $("status"), list = $("messages");
  const textInput = $("text"), sendButton = $("send");

  let socket = null;   // the current WebSocket, or null
  let wanted = null;   // { room, name } once joined
  let attempt = 0;     // failed connections since the last open
  let timer = 0;       // the pending reconnect
  const seen = new Set(); // message ids shown

  // For tests and the curious: what the connection did.
  const chat = window.chat = {
    opens: 0,
    closes: [],
    sockets: [],
    get readyState() { return socket === null ? WebSocket.CLOSED : socket.readyState; },
  };

  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusEl.textContent = text;
    sendButton.disabled = state !== "open";
  }

  function show(m) {
    if (typeof m !== "object" || m === null || typeof m.id !== "number" || seen.has(m.id)) return;
    seen.add(m.id);
    const li = document.createElement("li");
    li.dataset.testid = "message";
    li.dataset.id = String(m.id);
    if (wanted !== null && m.from === wanted.name) li.className = "mine";
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
    // Keep id order: a history can bring messages older than the ones shown.
    let after = null;
    for (const other of list.children) {
      if (Number(other.dataset.id) > m.id) { after = other; break; }
    }
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    list.insertBefore(li, after);
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  // Closes a socket we are done with; its close is still recorded, once the
  // handshake ends (an emulated-offline Chromium holds it until online).
  function drop(ws, cause) {
    ws.onopen = ws.onmessage = ws.onerror = null;
    ws.onclose = (event) => chat.closes.push({ cause, code: event.code, reason: event.reason, wasClean: event.wasClean });
    if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(1000, cause);
    if (socket === ws) socket = null;
  }

  function connect() {
    clearTimeout(timer);
    timer = 0;
    if (wanted === null || socket !== null) return;
    if (!navigator.onLine) return setStatus("offline", "offline: waiting for the network");
    setStatus("connecting", attempt === 0 ? "connecting…" : "reconnecting (attempt " + (attempt + 1) + ")…");
    const query = new URLSearchParams({ room: wanted.room });
    if (wanted.name !== "") query.set("name", wanted.name);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = socket = new WebSocket(scheme + "//" + location.host + "/ws?" + query, "chat.v1");
    chat.sockets.push(ws);
    ws.onopen = () => {
      attempt = 0;
      chat.opens++;
      setStatus("open", "connected to " + wanted.room + (wanted.name === "" ? "" : " as " + wanted.name));
    };
    ws.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      if (message.type === "history" && Array.isArray(message.messages)) message.messages.forEach(show);
      else if (message.type === "said") show(message);
    };
    ws.onclose = (event) => {
      chat.closes.push({ cause: "closed", code: event.code, reason: event.reason, wasClean: event.wasClean });
      socket = null;
      retry();
    };
  }

  function retry() {
    if (wanted === null) return;
    if (!navigator.onLine) return setStatus("offline", "offline: waiting for the network");
    const ceiling = Math.min(MAX_MS, BASE_MS * 2 ** attempt);
    attempt++;
    const wait = ceiling / 2 + Math.random() * (ceiling / 2);
    setStatus("waiting", "disconnected: retrying in " + (wait / 1000).toFixed(1) + " s");
    timer = setTimeout(connect, wait);
  }

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const next = { room: roomInput.value.trim() || "lobby", name: nameInput.value.trim() };
    if (wanted === null || next.room !== wanted.room || next.name !== wanted.name) {
      seen.clear();
      list.replaceChildren();
    }
    wanted = next;
    if (socket !== null) drop(socket, "rejoin");
    attempt = 0;
    connect();
  });

  $("say-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textInput.value;
    if (text.trim() === "" || socket === null || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: "say", text }));
    textInput.value = "";
  });

  // A browser that goes offline may keep a dead socket open for minutes:
  // close it now, and come back as soon as the network does.
  window.addEventListener("offline", () => {
    clearTimeout(timer);
    timer = 0;
    if (socket !== null) drop(socket, "offline");
    if (wanted !== null) setStatus("offline", "offline: waiting for the network");
  });
  window.addEventListener("online", () => {
    attempt = 0;
    connect();
  });

  // ?room=…&name=… joins at once.
  const params = new URLSearchParams(location.search);
  if (params.has("room")) {
    roomInput.value = params.get("room");
    nameInput.value = params.get("name") || "";
    $("join").click();
  }
})();
</script>
</body>
</html>
`;
