// The Dream.OS dashboard. Plain JavaScript, no build step. Every piece of data is put on
// the page with textContent (never as markup), so text from scripts and agents stays text.
"use strict";

const $ = (sel) => document.querySelector(sel);

// el("td", {class: "x"}, "text", child) — strings become text nodes.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "onclick") node.addEventListener("click", v);
    else if (k === "style_width") node.style.width = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function stateBadge(state) {
  return el("span", { class: "state state-" + String(state).replace(/[^a-z_-]/g, "") }, state);
}

function ago(ms) {
  if (!ms) return "—";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  return Math.floor(s / 86400) + "d ago";
}

function span(ms) {
  if (!ms) return "—";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

function time(v) {
  if (v === null || v === undefined) return "—";
  const d = typeof v === "number" ? new Date(v) : new Date(String(v));
  return isNaN(d) ? String(v) : d.toLocaleString();
}

function notice(text) {
  const n = $("#notice");
  n.textContent = text;
  n.hidden = !text;
}

async function getJSON(path) {
  const r = await fetch(path, { credentials: "same-origin" });
  if (r.status === 401) { location.reload(); throw new Error("logged out"); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

// State changes carry the anti-forgery header the server requires with the cookie.
async function post(path) {
  const r = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: { "X-Dreamos-Request": "1", "Content-Type": "application/json" }, body: "{}",
  });
  const body = await r.json().catch(() => ({}));
  notice(r.ok ? (body.message || "") : "error: " + (body.error || r.statusText));
  return r.ok;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// Coalesces bursts of events into one reload per page, soon enough to stay under a second.
const pending = {};
function soon(name, fn) {
  if (pending[name]) return;
  pending[name] = setTimeout(() => { pending[name] = null; fn().catch((e) => notice(String(e))); }, 100);
}

// ---- Agents -------------------------------------------------------------------------
async function loadAgents() {
  const agents = await getJSON("/api/agents");
  fill($("#agents tbody"), agents.map((a) => el("tr", { "data-agent": a.name },
    el("td", { class: "name" }, a.name),
    el("td", { class: "agent-state" }, stateBadge(a.state)),
    el("td", {}, a.started_at ? span(a.started_at) : "—"),
    el("td", { class: "restarts" }, a.restarts),
    el("td", { class: "inbox" }, a.inbox),
    el("td", {}, ago(a.last_activity)),
    el("td", { class: "reason" }, a.reason),
    el("td", {},
      ...["start", "stop", "restart"].map((action) => el("button", {
        "data-action": action,
        onclick: () => post(`/api/agents/${encodeURIComponent(a.name)}/${action}`).then(() => soon("agents", loadAgents)),
      }, action))),
  )));
}

// ---- Tasks --------------------------------------------------------------------------
const STATUSES = ["pending", "ready", "claimed", "running", "done", "failed", "cancelled", "blocked", "timeout"];
let openTask = null;

function bar(progress) {
  return el("div", { class: "bar" }, el("div", { class: "fill", style_width: Math.max(0, Math.min(100, Number(progress) || 0)) + "%" }));
}

async function loadTasks() {
  const params = new URLSearchParams(new FormData($("#task-filters")));
  const tasks = await getJSON("/api/tasks?" + params);
  const wanted = $("#task-status").value;
  const columns = STATUSES.filter((s) => !wanted || s === wanted).map((status) => {
    const cards = tasks.filter((t) => t.status === status).map((t) => el("div", {
      class: "card", "data-task": t.id, onclick: () => { openTask = t.id; loadTask(); },
    },
      el("div", {}, `#${t.id} `, t.title),
      el("div", { class: "meta" }, [t.agent, t.category, t.priority].filter(Boolean).join(" · "),
        t.note ? " — " + t.note : ""),
      el("div", { class: "meta progress-text" }, Math.round(t.progress) + "%"),
      bar(t.progress)));
    return el("div", { class: "column", "data-status": status }, el("h3", {}, `${status} (${cards.length})`), ...cards);
  });
  $("#board").replaceChildren(...columns);
  if (openTask !== null) await loadTask();
}

async function loadTask() {
  const d = await getJSON(`/api/tasks/${openTask}`);
  const t = d.task;
  const link = (x) => el("li", {},
    el("a", { href: "#tasks", onclick: () => { openTask = x.id; loadTask(); } }, `#${x.id} ${x.title}`), " ", stateBadge(x.status));
  const box = $("#task-detail");
  box.replaceChildren(
    el("h3", {}, `#${t.id} ${t.title}`),
    el("p", {}, stateBadge(t.status), ` ${Math.round(t.progress)}% `, t.note || ""),
    bar(t.progress),
    el("p", { class: "meta" }, `priority ${t.priority} · attempts ${t.attempts}/${t.max_attempts}`,
      t.agent ? ` · agent ${t.agent}` : "", t.error ? ` · error: ${t.error}` : ""),
    el("h4", {}, "Depends on"),
    d.depends_on.length ? el("ul", {}, ...d.depends_on.map(link)) : el("p", { class: "hint" }, "nothing"),
    el("h4", {}, "Needed by"),
    d.dependents.length ? el("ul", {}, ...d.dependents.map(link)) : el("p", { class: "hint" }, "nothing"),
  );
  box.hidden = false;
}

// ---- Logs ---------------------------------------------------------------------------
let logStream = null;

function logRow(r) {
  const source = r.agent || r.script || r.target || "";
  return el("tr", { class: "level-" + r.level },
    el("td", {}, r.ts || ""), el("td", {}, r.level || ""), el("td", {}, source),
    el("td", { class: "message" }, r.message || "", ...Object.entries(r)
      .filter(([k]) => !["ts", "level", "target", "message", "script", "agent"].includes(k))
      .map(([k, v]) => ` ${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)));
}

function logParams(withSince) {
  const p = new URLSearchParams();
  for (const k of ["level", "agent", "text"]) { const v = $("#log-" + k).value.trim(); if (v) p.set(k, v); }
  const since = $("#log-since").value.trim();
  if (withSince && since) p.set("since", since);
  return p;
}

// The live tail restarts whenever a filter changes; the server filters the lines.
function startLogTail() {
  if (logStream) logStream.close();
  $("#logs tbody").replaceChildren();
  $("#log-mode").textContent = "Live tail: new lines matching the filters appear as they are written.";
  const params = logParams(false).toString();
  const table = $("#logs");
  table.removeAttribute("data-tail");
  logStream = new EventSource("/api/logs/stream?" + params);
  // Marks the table once the tail is connected, with the filters it applies.
  logStream.onopen = () => table.setAttribute("data-tail", params || "all");
  logStream.addEventListener("log", (e) => {
    const tbody = $("#logs tbody");
    tbody.prepend(logRow(JSON.parse(e.data)));
    while (tbody.children.length > 500) tbody.lastChild.remove();
  });
}

async function searchLogs(ev) {
  ev.preventDefault();
  clearTimeout(pending.logtail);
  pending.logtail = null;
  if (logStream) { logStream.close(); logStream = null; }
  $("#logs").removeAttribute("data-tail");
  const p = logParams(true);
  p.set("limit", "500");
  const found = await getJSON("/api/logs?" + p);
  $("#log-mode").textContent = `Search over the live and archived files: ${found.length} line(s), newest first. Change a filter to go back to the live tail.`;
  fill($("#logs tbody"), found.reverse().map(logRow));
}

// ---- Bus ----------------------------------------------------------------------------
function messageRow(m) {
  return el("tr", { "data-message": m.id },
    el("td", {}, m.id), el("td", {}, time(m.created_at)), el("td", {}, m.from), el("td", {}, m.channel),
    el("td", {}, stateBadge(m.status)), el("td", {}, m.attempts), el("td", { class: "payload" }, JSON.stringify(m.payload)));
}

async function loadBus() {
  const [stats, messages, dead] = await Promise.all([
    getJSON("/api/bus/stats"), getJSON("/api/bus/messages?limit=100"), getJSON("/api/bus/dead")]);
  $("#bus-stats").replaceChildren(...["queued", "in_flight", "acked", "dead", "expired", "total"]
    .map((k) => el("span", {}, `${k}: `, el("strong", {}, stats[k]))));
  fill($("#bus-messages tbody"), messages.reverse().map(messageRow));
  fill($("#bus-dead tbody"), dead.map((m) => el("tr", { "data-dead": m.id },
    el("td", {}, m.id), el("td", {}, m.channel), el("td", {}, stateBadge(m.status)), el("td", {}, m.attempts),
    el("td", {}, m.error || ""), el("td", { class: "payload" }, JSON.stringify(m.payload)),
    el("td", {}, el("button", { onclick: () => post(`/api/bus/dead/${m.id}/retry`).then(() => soon("bus", loadBus)) }, "retry")))));
}

function busEvent(m) {
  const tbody = $("#bus-messages tbody");
  const old = tbody.querySelector(`tr[data-message="${Number(m.id)}"]`);
  if (old) old.replaceWith(messageRow(m)); else tbody.prepend(messageRow(m));
  while (tbody.children.length > 200) tbody.lastChild.remove();
}

// ---- Schedules ----------------------------------------------------------------------
let openSchedule = null;

async function loadSchedules() {
  const list = await getJSON("/api/schedules");
  fill($("#schedules tbody"), list.map((s) => el("tr", { "data-schedule": s.name },
    el("td", {}, el("a", { href: "#schedules", onclick: () => { openSchedule = s.name; loadRuns(); } }, s.name)),
    el("td", {}, s.expr), el("td", {}, s.timezone),
    el("td", {}, s.paused ? "paused" : s.next.map(time).join(", ")),
    el("td", {}, s.last_outcome ? stateBadge(s.last_outcome) : "—"),
    el("td", {}, s.failures), el("td", {}, s.running),
    el("td", {}, el("button", { onclick: () => post(`/api/schedules/${encodeURIComponent(s.name)}/run`).then(() => soon("schedules", loadSchedules)) }, "run now")))));
  if (openSchedule !== null) await loadRuns();
}

async function loadRuns() {
  const runs = await getJSON(`/api/schedules/${encodeURIComponent(openSchedule)}/runs`);
  $("#runs-title").textContent = `History of ${openSchedule}`;
  $("#runs-title").hidden = false;
  $("#runs").hidden = false;
  fill($("#runs tbody"), runs.reverse().map((r) => el("tr", {},
    el("td", {}, r.kind), el("td", {}, time(r.scheduled)), el("td", {}, time(r.started)), el("td", {}, time(r.ended)),
    el("td", {}, stateBadge(r.outcome)), el("td", {}, r.error || ""))));
}

// ---- Social -------------------------------------------------------------------------
const POST_STATUSES = ["queued", "sending", "posted", "failed", "dead", "cancelled", "deleted"];
let openPost = null;

async function loadSocial() {
  const params = new URLSearchParams(new FormData($("#social-filters")));
  const d = await getJSON("/api/social/posts?" + params);
  $("#social-counts").replaceChildren(...POST_STATUSES.map((k) => el("span", { "data-count": k }, `${k}: `, el("strong", {}, d.counts[k] || 0))));
  fill($("#social-posts tbody"), d.posts.map((p) => el("tr", { "data-post": p.id, class: "clickable", onclick: () => { openPost = p; loadPostMetrics(); } },
    el("td", {}, p.id), el("td", {}, p.account), el("td", {}, p.platform), el("td", {}, stateBadge(p.status)),
    el("td", { class: "message" }, p.title ? p.title + " — " + p.text : p.text),
    el("td", {}, time((p.posted_at || p.not_before) * 1000)), el("td", {}, p.attempts),
    el("td", {}, p.url ? el("a", { href: safeUrl(p.url), rel: "noopener noreferrer", target: "_blank" }, p.url) : (p.error || "")))));
  if (openPost !== null) await loadPostMetrics();
}

// Only http(s) links become clickable; anything else (javascript:, data:) is shown as text.
function safeUrl(url) {
  return /^https?:\/\//i.test(String(url)) ? String(url) : "#social";
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// One small line chart per engagement metric (likes, replies, ...), over sample time.
function chart(name, points) {
  const w = 320, h = 120, pad = 28;
  const xs = points.map((p) => p.taken_at), ys = points.map((p) => p.value);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y1 = Math.max(1, ...ys);
  const sx = (x) => pad + (x1 === x0 ? (w - 2 * pad) / 2 : ((x - x0) / (x1 - x0)) * (w - 2 * pad));
  const sy = (y) => h - pad - (y / y1) * (h - 2 * pad);
  const path = points.map((p, i) => `${i ? "L" : "M"}${sx(p.taken_at).toFixed(1)},${sy(p.value).toFixed(1)}`).join(" ");
  return el("figure", { class: "chart", "data-metric": name },
    svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: "img" },
      svg("line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, class: "axis" }),
      svg("text", { x: 2, y: pad, class: "tick" }, y1),
      svg("text", { x: 2, y: h - pad, class: "tick" }, 0),
      svg("path", { d: path, class: "series" }),
      ...points.map((p) => svg("circle", { cx: sx(p.taken_at).toFixed(1), cy: sy(p.value).toFixed(1), r: 3, class: "point" },
        svg("title", {}, `${name} ${p.value} at ${time(p.taken_at)}`)))),
    el("figcaption", {}, `${name}: ${ys[ys.length - 1]}`));
}

async function loadPostMetrics() {
  const p = openPost;
  const samples = await getJSON(`/api/social/posts/${Number(p.id)}/metrics`);
  const byName = {};
  for (const s of samples) (byName[s.name] = byName[s.name] || []).push(s);
  const box = $("#social-detail");
  box.replaceChildren(
    el("h3", {}, `Post ${p.id} on ${p.account}`),
    el("p", { class: "message" }, p.text),
    Object.keys(byName).length
      ? el("div", { class: "charts" }, ...Object.entries(byName).map(([name, pts]) => chart(name, pts)))
      : el("p", { class: "hint" }, "no engagement read yet"));
  box.hidden = false;
}

// ---- Pages, live events -------------------------------------------------------------
const PAGES = { agents: loadAgents, tasks: loadTasks, logs: async () => startLogTail(), bus: loadBus, schedules: loadSchedules, social: loadSocial };
let current = null;

function show() {
  const name = (location.hash || "#agents").slice(1);
  if (!PAGES[name] || name === current) return;
  if (current === "logs" && logStream) { logStream.close(); logStream = null; }
  current = name;
  for (const p of document.querySelectorAll(".page")) p.hidden = p.id !== "page-" + name;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  notice("");
  PAGES[name]().catch((e) => notice(String(e)));
}

function connect() {
  const live = $("#live");
  const events = new EventSource("/api/events");
  events.onopen = () => { live.className = "live on"; live.textContent = "live"; };
  events.onerror = () => { live.className = "live off"; live.textContent = "reconnecting"; };
  events.addEventListener("agents", () => { if (current === "agents") soon("agents", loadAgents); });
  events.addEventListener("tasks", () => { if (current === "tasks") soon("tasks", loadTasks); });
  events.addEventListener("schedules", () => { if (current === "schedules") soon("schedules", loadSchedules); });
  events.addEventListener("social", () => { if (current === "social") soon("social", loadSocial); });
  events.addEventListener("bus", (e) => {
    if (current === "bus") busEvent(JSON.parse(e.data));
    if (current === "agents") soon("agents", loadAgents); // inbox depths
  });
}

function init() {
  const statusSelect = $("#task-status");
  for (const s of STATUSES) statusSelect.append(el("option", { value: s }, s));
  $("#task-filters").addEventListener("input", () => soon("tasks", loadTasks));
  $("#task-filters").addEventListener("submit", (e) => e.preventDefault());
  for (const s of POST_STATUSES) $("#social-status").append(el("option", { value: s }, s));
  $("#social-filters").addEventListener("input", () => soon("social", loadSocial));
  $("#social-filters").addEventListener("submit", (e) => e.preventDefault());
  for (const id of ["#log-level", "#log-agent", "#log-text"]) $(id).addEventListener("input", () => soon("logtail", async () => startLogTail()));
  $("#log-filters").addEventListener("submit", (e) => searchLogs(e).catch((err) => notice(String(err))));
  window.addEventListener("hashchange", show);
  // Uptimes and "ago" columns age between events.
  setInterval(() => { if (current === "agents") soon("agents", loadAgents); }, 5000);
  connect();
  show();
}

document.addEventListener("DOMContentLoaded", init);
