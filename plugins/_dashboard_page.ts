// The dashboard's page, served by `dashboard()` (dashboard.ts): one HTML
// document with its CSS and script inline (no external asset, no CDN), so it
// works offline, behind any proxy, and under a strict Content-Security-Policy
// (`default-src 'none'`, the script and style allowed by a per-response
// nonce). Nothing from the server is ever parsed as HTML: every value a peer
// controls (topics, close reasons, addresses) is set with `textContent`.
//
// What the script does:
// - polls `<base>/snapshot` every `pollMs` (the next poll starts when the
//   last one ended, so a slow server never piles requests up), sending the
//   page URL's `?token=` as an `Authorization: Bearer` header (cookies, if
//   the app's check uses them, go along as for any same-origin fetch);
// - computes message rates in and out from successive snapshots' totals
//   (a counter that went down, after a restart, starts the series again)
//   and draws the last two minutes as an SVG chart;
// - shows the totals, the connections (one Close button each), topics with
//   their subscribers, slow peers, closes by code and the recent closes;
// - Close POSTs `{ id, code, reason }` as JSON to `<base>/close`, with the
//   code and reason of the form above the list.
//
// `<base>` is the page's path without its trailing slashes: mounted at
// `/admin`, the page at `/admin` or `/admin/` polls `/admin/snapshot`.
//
// Stable hooks for tests: #status[data-state] (loading, live, unauthorized,
// error), #open-count, #rate-in, #rate-out, #rate-chart (polyline #line-in,
// #line-out), #connections tr[data-id] (button[data-close]), #topics
// tr[data-topic] (.subscribers), #slow tr[data-id], #closes-by-code
// tr[data-code] (.count), #recent-closes tr[data-code], #close-code,
// #close-reason, #action[data-state] (idle, pending, done, failed);
// `window.dashboard` holds the last snapshot (`last`) and the rates (`rates`).

/** What the page needs from `dashboard()`'s options. */
export interface PageOptions {
  /** The page's title, already escaped for HTML. */
  readonly title: string;
  /** How often the page polls, in ms. */
  readonly pollMs: number;
}

/** Escapes text for an HTML text node or a double-quoted attribute. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
  :root { color-scheme: light dark; font: 14px/1.4 system-ui, sans-serif; --muted: #8889; --in: #27c; --out: #d70; }
  body { margin: 0 auto; max-width: 72rem; padding: 1rem; display: grid; gap: 1rem; }
  header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; }
  h1 { font-size: 1.25rem; margin: 0; }
  h2 { font-size: 1rem; margin: 0 0 .4rem; }
  section { border: 1px solid var(--muted); border-radius: .35rem; padding: .6rem .8rem; overflow-x: auto; }
  .grid { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(20rem, 1fr)); }
  .cards { display: flex; flex-wrap: wrap; gap: .6rem 1.6rem; }
  .card b { display: block; font-size: 1.6rem; font-variant-numeric: tabular-nums; }
  .card span { color: #888; font-size: .8rem; }
  #status { font-size: .85rem; padding: .15rem .5rem; border-radius: .25rem; background: var(--muted); }
  #status[data-state="live"]::before { content: "\\25CF  "; color: #2a2; }
  #status[data-state="error"]::before, #status[data-state="unauthorized"]::before { content: "\\25CF  "; color: #c33; }
  #updated { color: #888; font-size: .85rem; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: .2rem .5rem .2rem 0; border-bottom: 1px solid #8883; white-space: nowrap; }
  td.num, th.num { text-align: right; }
  td.reason { white-space: normal; overflow-wrap: anywhere; }
  tr.empty td { color: #888; font-style: italic; }
  svg { width: 100%; height: auto; display: block; }
  .axis { stroke: #8885; stroke-width: 1; }
  .label { fill: #888; font-size: 11px; }
  #line-in { stroke: var(--in); }
  #line-out { stroke: var(--out); }
  .legend-in { color: var(--in); }
  .legend-out { color: var(--out); }
  form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-bottom: .5rem; }
  input, button { font: inherit; padding: .2rem .45rem; }
  #close-code { width: 6rem; }
  #close-reason { min-width: 14rem; }
  #action { font-size: .9rem; }
  #action[data-state="failed"] { color: #c33; }
  .more { color: #888; font-size: .85rem; margin: .3rem 0 0; }
`;

// Plain JavaScript (the page runs it as is): string concatenation rather
// than template literals, and no backslashes, so that it can live in this
// module's template string unescaped.
const SCRIPT = `
"use strict";
const cfg = document.getElementById("config").dataset;
const POLL_MS = Number(cfg.pollMs) || 1000;
const WINDOW = Math.max(10, Math.round(120000 / POLL_MS));
const base = location.pathname.replace(/[/]+$/, "");
const token = new URLSearchParams(location.search).get("token");
const auth = token ? { authorization: "Bearer " + token } : {};
const $ = (id) => document.getElementById(id);
const state = { last: undefined, rates: [], previous: undefined };
window.dashboard = state;

const fmt = new Intl.NumberFormat("en");
const num = (n) => (typeof n === "number" && Number.isFinite(n) ? fmt.format(n) : "-");
const rate = (n) => (n >= 100 ? fmt.format(Math.round(n)) : (Math.round(n * 10) / 10).toFixed(1));
const bytes = (n) => {
  if (typeof n !== "number") return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
};
const timeOf = (at) => (typeof at === "number" ? at : Date.parse(at));
const ago = (at, now) => {
  const s = Math.max(0, Math.round((now - timeOf(at)) / 1000));
  if (!Number.isFinite(s)) return "-";
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
};
const sum = (record) => Object.values(record || {}).reduce((a, b) => a + (Number(b) || 0), 0);

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}
function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  tr.append(...cells);
  return tr;
}
function fill(tbody, rows, columns, empty) {
  if (rows.length === 0) rows = [row([Object.assign(cell(empty), { colSpan: columns })], { class: "empty" })];
  tbody.replaceChildren(...rows);
}
function more(id, omitted, what) {
  $(id).textContent = omitted > 0 ? "and " + num(omitted) + " more " + what + " not listed" : "";
}

function setStatus(kind, text) {
  $("status").dataset.state = kind;
  $("status").textContent = text;
}

function record(snapshot) {
  const at = timeOf(snapshot.at);
  const t = Number.isFinite(at) ? at : Date.now();
  const totals = snapshot.totals || {};
  const now = { t, in: totals.messagesIn || 0, out: totals.messagesOut || 0 };
  const prev = state.previous;
  state.previous = now;
  if (prev === undefined || now.t <= prev.t) return;
  if (now.in < prev.in || now.out < prev.out) { state.rates = []; return; }
  const dt = (now.t - prev.t) / 1000;
  state.rates.push({ t: now.t, in: (now.in - prev.in) / dt, out: (now.out - prev.out) / dt });
  if (state.rates.length > WINDOW) state.rates.splice(0, state.rates.length - WINDOW);
}

function niceMax(n) {
  if (!(n > 1)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(n)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

function chart() {
  const W = 600, H = 160, L = 44, T = 8, B = 18;
  const rates = state.rates;
  const max = niceMax(Math.max(0, ...rates.map((r) => Math.max(r.in, r.out))));
  const x = (i) => L + ((W - L) * (WINDOW - rates.length + i)) / (WINDOW - 1);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const points = (key) => rates.map((r, i) => x(i).toFixed(1) + "," + y(r[key]).toFixed(1)).join(" ");
  $("line-in").setAttribute("points", points("in"));
  $("line-out").setAttribute("points", points("out"));
  for (const [id, v] of [["grid-top", max], ["grid-mid", max / 2]]) {
    $(id).setAttribute("y1", y(v));
    $(id).setAttribute("y2", y(v));
    $(id + "-label").setAttribute("y", y(v) + 4);
    $(id + "-label").textContent = rate(v);
  }
  $("chart-span").textContent = Math.round((WINDOW * POLL_MS) / 1000) + " s";
  const last = rates[rates.length - 1];
  $("rate-in").textContent = last ? rate(last.in) : "-";
  $("rate-out").textContent = last ? rate(last.out) : "-";
}

function connections(list, now) {
  const tbody = $("connections").tBodies[0];
  const seen = new Set();
  const rows = list.map((c) => {
    seen.add(c.id);
    let tr = tbody.querySelector("tr[data-id='" + CSS.escape(c.id) + "']");
    if (!tr) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Close";
      button.dataset.close = c.id;
      button.setAttribute("aria-label", "Close connection " + c.id);
      const action = document.createElement("td");
      action.append(button);
      tr = row([cell(c.id), cell(""), cell(""), cell(""), cell("", "num"), cell("", "num"), cell("", "num"),
        cell("", "num"), cell("", "num"), cell("", "num"), action], { "data-id": c.id });
    }
    const values = [c.id, c.route || "", c.protocol || "", c.remote || "", ago(c.openedAt, now),
      num(c.messagesIn), num(c.messagesOut), bytes(c.bytesIn), bytes(c.bytesOut), bytes(c.buffered)];
    values.forEach((v, i) => { if (tr.cells[i].textContent !== v) tr.cells[i].textContent = v; });
    return tr;
  });
  if (rows.length === 0) return fill(tbody, [], 11, "No open connections");
  for (const tr of [...tbody.rows]) if (!seen.has(tr.dataset.id)) tr.remove();
  rows.forEach((tr, i) => { if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null); });
}

function render(s) {
  const now = timeOf(s.at) || Date.now();
  const totals = s.totals || {};
  const omitted = s.omitted || {};
  record(s);
  chart();
  $("open-count").textContent = num(totals.open);
  $("messages-in").textContent = num(totals.messagesIn);
  $("messages-out").textContent = num(totals.messagesOut);
  $("bytes-in").textContent = bytes(totals.bytesIn);
  $("bytes-out").textContent = bytes(totals.bytesOut);
  $("upgrades-accepted").textContent = num(totals.upgradesAccepted);
  $("upgrades-refused").textContent = num(sum(totals.upgradesRefused));
  $("drains").textContent = num(totals.drains);
  $("runtime").textContent = s.runtime ? "on " + s.runtime : "";
  $("updated").textContent = "updated " + new Date(now).toLocaleTimeString();

  connections(s.connections || [], now);
  more("connections-more", omitted.connections, "connections");

  fill($("topics").tBodies[0], (s.topics || []).map((t) =>
    row([cell(t.topic, "topic"), cell(num(t.subscribers), "num subscribers")], { "data-topic": t.topic })), 2, "No topics");
  more("topics-more", omitted.topics, "topics");

  fill($("slow").tBodies[0], (s.slow || []).map((p) =>
    row([cell(p.id), cell(bytes(p.buffered), "num buffered")], { "data-id": p.id })), 2, "No slow peers");

  const byCode = Object.entries(totals.closesByCode || {}).sort((a, b) => Number(a[0]) - Number(b[0]));
  fill($("closes-by-code").tBodies[0], byCode.map(([code, n]) =>
    row([cell(code, "code"), cell(num(n), "num count")], { "data-code": code })), 2, "No closes yet");

  const recent = (s.recentCloses || []).slice().reverse();
  fill($("recent-closes").tBodies[0], recent.map((c) =>
    row([cell(ago(c.at, now) + " ago"), cell(c.id), cell(String(c.code), "num code"), cell(c.by || ""), cell(c.reason || "", "reason")],
      { "data-code": String(c.code), "data-id": c.id })), 5, "No closes yet");
}

async function poll() {
  try {
    const response = await fetch(base + "/snapshot", { headers: auth, cache: "no-store" });
    if (response.status === 401) setStatus("unauthorized", "unauthorized: open this page with ?token=...");
    else if (!response.ok) setStatus("error", "error: HTTP " + response.status);
    else {
      const snapshot = await response.json();
      state.last = snapshot;
      render(snapshot);
      setStatus("live", "live");
    }
  } catch (error) {
    setStatus("error", "error: " + (error && error.message ? error.message : String(error)));
  }
  setTimeout(poll, POLL_MS);
}

$("connections").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-close]");
  if (!button) return;
  const id = button.dataset.close;
  const code = Number($("close-code").value);
  const reason = $("close-reason").value;
  const action = $("action");
  action.dataset.state = "pending";
  action.textContent = "closing " + id + "...";
  button.disabled = true;
  try {
    const response = await fetch(base + "/close", {
      method: "POST",
      headers: Object.assign({ "content-type": "application/json" }, auth),
      body: JSON.stringify({ id, code, reason }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
    action.dataset.state = "done";
    action.textContent = "closed " + id + " with " + body.code;
  } catch (error) {
    button.disabled = false;
    action.dataset.state = "failed";
    action.textContent = "could not close " + id + ": " + error.message;
  }
});

poll();
`;

/**
 * The page's HTML for one response.
 *
 * @param options The title and the polling interval.
 * @param nonce The Content-Security-Policy nonce of this response's script and style.
 * @returns The document.
 */
export function page(options: PageOptions, nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${options.title}</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<template id="config" data-poll-ms="${options.pollMs}"></template>
<header>
  <h1>${options.title}</h1>
  <span id="status" data-state="loading">loading</span>
  <span id="updated"></span>
  <span id="runtime"></span>
</header>
<section>
  <div class="cards">
    <div class="card"><b id="open-count">-</b><span>open connections</span></div>
    <div class="card"><b id="rate-in" class="legend-in">-</b><span>messages in / s</span></div>
    <div class="card"><b id="rate-out" class="legend-out">-</b><span>messages out / s</span></div>
    <div class="card"><b id="messages-in">-</b><span>messages in</span></div>
    <div class="card"><b id="messages-out">-</b><span>messages out</span></div>
    <div class="card"><b id="bytes-in">-</b><span>bytes in</span></div>
    <div class="card"><b id="bytes-out">-</b><span>bytes out</span></div>
    <div class="card"><b id="upgrades-accepted">-</b><span>upgrades accepted</span></div>
    <div class="card"><b id="upgrades-refused">-</b><span>upgrades refused</span></div>
    <div class="card"><b id="drains">-</b><span>drains</span></div>
  </div>
</section>
<section>
  <h2>Messages per second, last <span id="chart-span">2 min</span>: <span class="legend-in">in</span>, <span class="legend-out">out</span></h2>
  <svg id="rate-chart" viewBox="0 0 600 160" role="img" aria-label="Messages per second in and out">
    <line class="axis" x1="44" x2="600" y1="142" y2="142"></line>
    <line id="grid-top" class="axis" x1="44" x2="600" y1="8" y2="8"></line>
    <line id="grid-mid" class="axis" x1="44" x2="600" y1="75" y2="75"></line>
    <text class="label" x="38" y="146" text-anchor="end">0</text>
    <text id="grid-top-label" class="label" x="38" y="12" text-anchor="end">1</text>
    <text id="grid-mid-label" class="label" x="38" y="79" text-anchor="end">0.5</text>
    <polyline id="line-in" fill="none" stroke-width="2" points=""></polyline>
    <polyline id="line-out" fill="none" stroke-width="2" stroke-dasharray="5 3" points=""></polyline>
  </svg>
</section>
<section>
  <h2>Connections</h2>
  <form id="close-form">
    <label>Close with code <input id="close-code" type="number" min="1000" max="4999" value="1008" required></label>
    <label>reason <input id="close-reason" maxlength="120" value="Closed by an operator"></label>
    <span id="action" data-state="idle" role="status"></span>
  </form>
  <table id="connections">
    <thead><tr><th>id</th><th>route</th><th>protocol</th><th>remote</th><th class="num">open for</th>
      <th class="num">msgs in</th><th class="num">msgs out</th><th class="num">bytes in</th><th class="num">bytes out</th>
      <th class="num">buffered</th><th></th></tr></thead>
    <tbody></tbody>
  </table>
  <p id="connections-more" class="more"></p>
</section>
<div class="grid">
  <section>
    <h2>Topics</h2>
    <table id="topics"><thead><tr><th>topic</th><th class="num">subscribers</th></tr></thead><tbody></tbody></table>
    <p id="topics-more" class="more"></p>
  </section>
  <section>
    <h2>Slow peers</h2>
    <table id="slow"><thead><tr><th>id</th><th class="num">buffered</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Closes by code</h2>
    <table id="closes-by-code"><thead><tr><th>code</th><th class="num">closes</th></tr></thead><tbody></tbody></table>
  </section>
</div>
<section>
  <h2>Recent closes</h2>
  <table id="recent-closes">
    <thead><tr><th>when</th><th>id</th><th class="num">code</th><th>by</th><th>reason</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}

/**
 * The page answered with a 401: a form that opens the dashboard with
 * `?token=`. No script.
 *
 * @param title The page's title, already escaped for HTML.
 * @param nonce The Content-Security-Policy nonce of its style.
 * @returns The document.
 */
export function loginPage(title: string, nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}: sign in</title>
<style nonce="${nonce}">
  :root { color-scheme: light dark; font: 15px/1.4 system-ui, sans-serif; }
  body { margin: 4rem auto; max-width: 26rem; padding: 1rem; }
  form { display: flex; gap: .5rem; } input { flex: 1; } input, button { font: inherit; padding: .3rem .5rem; }
</style>
</head>
<body>
<h1>${title}</h1>
<p>This dashboard needs a token.</p>
<form method="get"><input type="password" name="token" aria-label="Token" autocomplete="current-password" required><button>Open</button></form>
</body>
</html>
`;
}
