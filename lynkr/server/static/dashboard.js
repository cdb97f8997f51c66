// Lynkr dashboard: fetches /dashboard/api/data (the built-in reports as JSON) and draws SVG charts.
// No libraries and no build step. Every drawn mark carries data-label / data-value, so what a chart
// shows can be checked (tests/test_dashboard_browser.py) without reading pixels.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "lynkr-admin-token";

// The token arrives once as ?token= (a link from the operator); keep it for this tab only and take
// it out of the address bar and history.
function takeToken() {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : ""));
  }
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

// -- formatting ---------------------------------------------------------------------------
const fmtInt = (n) => (n == null ? "–" : Math.round(n).toLocaleString("en-US"));
function fmtUsd(n) {
  if (n == null) return "–";
  const a = Math.abs(n);
  const digits = a === 0 ? 2 : a < 0.01 ? 4 : a < 1 ? 3 : 2;
  return (n < 0 ? "-$" : "$") + a.toFixed(digits);
}
const fmtMs = (n) => (n == null ? "–" : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString("en-US"));
const fmtPct = (n) => (n == null ? "–" : n.toFixed(1) + "%");

function rowsOf(report) {
  // {columns, rows} -> [{col: value}]
  if (!report) return [];
  return report.rows.map((r) => Object.fromEntries(report.columns.map((c, i) => [c, r[i]])));
}

function el(name, attrs = {}, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

function html(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

function empty(box, message) {
  box.replaceChildren(html("div", { class: "empty" }, message || "no data yet"));
  box.dataset.rendered = "empty";
}

// -- charts -------------------------------------------------------------------------------

// Horizontal bars: items [{label, value, text, cls}].
function hbars(box, items, { labelWidth = 150, width = 520, rowH = 24, cls = "bar" } = {}) {
  if (!items.length) return empty(box);
  const max = Math.max(...items.map((d) => Math.abs(d.value || 0)), 1e-12);
  const barW = width - labelWidth - 110;
  const svg = el("svg", { viewBox: `0 0 ${width} ${items.length * rowH + 4}`, role: "img" });
  items.forEach((d, i) => {
    const y = i * rowH + 2;
    const w = Math.max(1, (Math.abs(d.value || 0) / max) * barW);
    const g = el("g", { class: "mark", "data-label": d.label, "data-value": String(d.value) });
    g.append(el("text", { x: labelWidth - 6, y: y + rowH * 0.65, "text-anchor": "end" }, truncate(d.label, 22)));
    g.append(el("rect", { x: labelWidth, y: y + 3, width: w, height: rowH - 8, rx: 2, class: d.cls || cls }));
    g.append(el("text", { x: labelWidth + w + 6, y: y + rowH * 0.65, class: "muted" }, d.text));
    g.append(el("title", {}, `${d.label}: ${d.text}`));
    svg.append(g);
  });
  box.replaceChildren(svg);
  box.dataset.rendered = String(items.length);
}

// Stacked columns over days: days [{label, parts: [{key, value, cls}]}].
function stackedColumns(box, days, legend) {
  if (!days.length) return empty(box);
  const width = 960, height = 220, left = 60, bottom = 24, top = 8;
  const max = Math.max(...days.map((d) => d.parts.reduce((s, p) => s + Math.max(0, p.value || 0), 0)), 1e-12);
  const colW = Math.min(60, (width - left) / days.length);
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  const plotH = height - bottom - top;
  svg.append(el("line", { x1: left, y1: top + plotH, x2: width, y2: top + plotH, class: "axis" }));
  svg.append(el("text", { x: left - 6, y: top + 10, "text-anchor": "end", class: "muted" }, fmtUsd(max)));
  svg.append(el("text", { x: left - 6, y: top + plotH, "text-anchor": "end", class: "muted" }, "$0"));
  days.forEach((d, i) => {
    const x = left + i * colW + colW * 0.15;
    let y = top + plotH;
    for (const p of d.parts) {
      const h = (Math.max(0, p.value || 0) / max) * plotH;
      y -= h;
      const g = el("g", { class: "mark", "data-label": `${d.label} ${p.key}`, "data-value": String(p.value) });
      g.append(el("rect", { x, y, width: colW * 0.7, height: Math.max(h, 0), class: p.cls }));
      g.append(el("title", {}, `${d.label} ${p.key}: ${fmtUsd(p.value)}`));
      svg.append(g);
    }
    if (days.length <= 16 || i % Math.ceil(days.length / 16) === 0) {
      svg.append(el("text", { x: x + colW * 0.35, y: height - 6, "text-anchor": "middle", class: "muted" }, d.label.slice(5)));
    }
  });
  box.replaceChildren(svg, legendOf(legend));
  box.dataset.rendered = String(days.length);
}

// Grouped horizontal bars, each group on its own scale (overhead is far smaller than total).
function groupedBars(box, groups, keys) {
  if (!groups.length) return empty(box);
  const width = 520, labelWidth = 80, rowH = 16, gap = 10;
  const height = groups.length * (keys.length * rowH + gap);
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  const barW = width - labelWidth - 90;
  groups.forEach((grp, gi) => {
    const y0 = gi * (keys.length * rowH + gap);
    const max = Math.max(...keys.map((k) => grp.values[k] || 0), 1e-12);
    svg.append(el("text", { x: labelWidth - 8, y: y0 + (keys.length * rowH) / 2 + 4, "text-anchor": "end" }, grp.label));
    keys.forEach((k, ki) => {
      const v = grp.values[k];
      const y = y0 + ki * rowH;
      const w = Math.max(1, ((v || 0) / max) * barW);
      const g = el("g", { class: "mark", "data-label": `${grp.label} ${k}`, "data-value": String(v) });
      g.append(el("rect", { x: labelWidth, y: y + 2, width: w, height: rowH - 4, class: k }));
      g.append(el("text", { x: labelWidth + w + 5, y: y + rowH - 4, class: "muted" }, `${k} ${fmtMs(v)}`));
      svg.append(g);
    });
  });
  box.replaceChildren(svg, legendOf(keys.map((k) => [k, k])));
  box.dataset.rendered = String(groups.length);
}

function legendOf(entries) {
  const div = html("div", { class: "legend" });
  for (const [cls, label] of entries) {
    const span = html("span");
    span.append(html("i", { class: cls }), document.createTextNode(label));
    div.append(span);
  }
  return div;
}

function table(box, rows, columns) {
  if (!rows.length) return box.replaceChildren();
  const t = html("table");
  const head = html("tr");
  for (const [, title] of columns) head.append(html("th", {}, title));
  t.append(head);
  for (const r of rows) {
    const tr = html("tr");
    for (const [key, , fmt] of columns) {
      const v = r[key];
      tr.append(html("td", fmt ? { class: "n" } : {}, fmt ? fmt(v) : v == null ? "" : String(v)));
    }
    t.append(tr);
  }
  box.replaceChildren(t);
}

const truncate = (s, n) => (s && s.length > n ? s.slice(0, n - 1) + "…" : s || "");

// -- panels -------------------------------------------------------------------------------
function kpis(data) {
  const r = data.reports;
  const total = rowsOf(r.savings).find((x) => x.stage === "TOTAL") || {};
  const cache = rowsOf(r.cache);
  const hits = cache.filter((c) => c.hit).reduce((s, c) => s + c.requests, 0);
  const seen = cache.reduce((s, c) => s + c.requests, 0);
  const days = rowsOf(r["by-day"]);
  const cost = days.reduce((s, d) => s + (d.cost_usd || 0), 0);
  const errors = days.reduce((s, d) => s + (d.errors || 0), 0);
  const lat = rowsOf(r.latency).find((x) => x.measure === "total") || {};
  const over = rowsOf(r.latency).find((x) => x.measure === "overhead") || {};
  const tiles = [
    ["requests", "requests", fmtInt(data.requests)],
    ["tokens-saved", `tokens saved (${fmtPct(total.tokens_saved_pct)})`, fmtInt(total.tokens_saved)],
    ["usd-saved", `saved (${fmtPct(total.usd_saved_pct)} of baseline)`, fmtUsd(total.usd_saved)],
    ["cost", "estimated cost", fmtUsd(cost)],
    ["cache-hit-rate", "cache hit rate", seen ? fmtPct((100 * hits) / seen) : "–"],
    ["latency-p95", "p95 latency (ms)", fmtMs(lat.p95)],
    ["overhead-p95", "p95 overhead (ms)", fmtMs(over.p95)],
    ["errors", "errors", fmtInt(errors)],
  ];
  const box = document.getElementById("kpis");
  box.replaceChildren(...tiles.map(([key, label, value]) => {
    const d = html("div", { class: "kpi", "data-kpi": key });
    d.append(html("div", { class: "v" }, value), html("div", { class: "l" }, label));
    return d;
  }));
}

function draw(data) {
  const r = data.reports;
  const chart = (name) => document.querySelector(`[data-chart="${name}"]`);
  kpis(data);

  stackedColumns(chart("savings-over-time"), rowsOf(r["by-day"]).map((d) => ({
    label: String(d.day),
    parts: [{ key: "cost", value: d.cost_usd, cls: "cost" }, { key: "saved", value: d.saved_usd, cls: "saved" }],
  })), [["cost", "cost"], ["saved", "saved"]]);

  hbars(chart("savings-by-stage"), rowsOf(r.savings).filter((s) => s.stage !== "TOTAL" && s.requests > 0).map((s) => ({
    // Each row is one lever (answer cache, stages, prompt cache, routing; docs/reports.md).
    label: s.stage, value: s.usd_saved,
    text: `${fmtUsd(s.usd_saved)} · ${s.lever || ""} · ` +
          (s.lever === "prompt cache" ? `${fmtInt(s.tokens_cached)} tok read from cache` : `${fmtInt(s.tokens_saved)} tok`),
    cls: "saved",
  })));

  hbars(chart("by-model"), rowsOf(r["by-model"]).map((m) => ({
    label: m.provider === "(none)" ? "(cache)" : `${m.provider}:${m.model}`, value: m.requests,
    text: `${fmtInt(m.requests)} req · ${fmtUsd(m.cost_usd)}`,
  })), { labelWidth: 190 });

  hbars(chart("tier-mix"), rowsOf(r.tiers).map((t) => ({
    label: t.tier, value: t.share_pct, text: `${fmtPct(t.share_pct)} · ${fmtUsd(t.cost_usd)}`,
  })));

  hbars(chart("cache"), rowsOf(r.cache).map((c) => ({
    label: c.cache, value: c.share_pct, text: `${fmtPct(c.share_pct)} · ${fmtInt(c.requests)} req`,
    cls: c.hit ? "saved" : "bar",
  })));

  groupedBars(chart("latency"), rowsOf(r.latency).filter((l) => l.requests > 0).map((l) => ({
    label: l.measure, values: { p50: l.p50, p95: l.p95, p99: l.p99 },
  })), ["p50", "p95", "p99"]);

  const errors = rowsOf(r.errors);
  const byStatus = {};
  for (const e of errors) byStatus[e.status] = (byStatus[e.status] || 0) + e.requests;
  hbars(chart("errors"), Object.entries(byStatus).map(([status, n]) => ({
    label: String(status), value: n, text: `${fmtInt(n)} req`, cls: "err",
  })));
  table(document.getElementById("error-table"), errors,
    [["status", "status"], ["provider", "provider"], ["model", "model"], ["error", "error"], ["requests", "requests", fmtInt]]);
  table(document.getElementById("pipelines-table"), rowsOf(r.pipelines),
    [["pipeline", "pipeline"], ["pipeline_hash", "hash"], ["first_seen", "first seen"], ["requests", "requests", fmtInt],
     ["tokens_saved_pct", "tokens saved", fmtPct], ["cost_usd", "cost", fmtUsd], ["saved_usd", "saved", fmtUsd],
     ["usd_saved_pct", "saved of baseline", fmtPct]]);
  keyTables(data);
}

// -- client keys --------------------------------------------------------------------------
// The by-key / by-team reports (telemetry) joined with what never reaches telemetry: refusals at
// the door (this process's counts) and the live counters of limited keys and teams (the host's).
function keyTables(data) {
  const r = data.reports;
  const state = data.keys || { refusals: {}, live: {} };
  const keys = rowsOf(r["by-key"]);
  const panel = document.getElementById("keys-panel");
  const refusedOf = (name) => Object.entries(state.refusals[name] || {})
    .filter(([outcome]) => outcome !== "unauthorized").reduce((s, [, n]) => s + n, 0);
  const known = new Set(keys.map((k) => k.key));
  for (const name of Object.keys(state.refusals)) {
    if (!known.has(name) && name !== "(none)") keys.push({ key: name, requests: 0 });
  }
  panel.hidden = !keys.some((k) => k.key !== "(none)");
  if (panel.hidden) return;
  const withLive = (rows, kind, col) => rows.map((row) => {
    const live = state.live[`${kind}:${row[col]}`] || {};
    return { ...row, refused: kind === "key" ? refusedOf(row.key) : null, tokens: (row.usage_input || 0) + (row.usage_output || 0),
             usd_day: live.usd_day, rpm_now: live.rpm, in_flight: live.in_flight };
  });
  const money = [["usd_spent", "spent", fmtUsd], ["usd_saved", "saved", fmtUsd], ["cache_hit_pct", "cache hits", fmtPct],
                 ["usd_day", "spent today (live)", fmtUsd], ["rpm_now", "requests last 60 s", fmtInt], ["in_flight", "in flight", fmtInt]];
  table(document.getElementById("keys-table"), withLive(keys, "key", "key"),
    [["key", "key"], ["team", "team"], ["requests", "requests", fmtInt], ["errors", "errors", fmtInt],
     ["refused", "refused", fmtInt], ["tokens", "tokens", fmtInt], ...money]);
  table(document.getElementById("teams-table"), withLive(rowsOf(r["by-team"]), "team", "team"),
    [["team", "team"], ["requests", "requests", fmtInt], ["errors", "errors", fmtInt], ["tokens", "tokens", fmtInt], ...money]);
}

// -- memory -------------------------------------------------------------------------------
// Only when the pipeline has a memory stage (`enabled: false` otherwise: the panel stays hidden). Each row can be
// forgotten; the text is the user's, shown only on this token-protected page.
async function loadMemory() {
  const panel = document.getElementById("memory-panel");
  const resp = await fetch("/dashboard/api/memory", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  const data = resp.ok ? await resp.json() : { enabled: false };
  panel.hidden = !data.enabled;
  if (!data.enabled) return;
  table(document.getElementById("memory-projects"), data.projects,
    [["project", "project"], ["tenant", "tenant"], ["memories", "memories", fmtInt]]);
  const box = document.getElementById("memory-table");
  if (!data.memories.length) return empty(box, "no memories yet");
  const t = html("table");
  const head = html("tr");
  for (const title of ["project", "kind", "memory", "saved", ""]) head.append(html("th", {}, title));
  t.append(head);
  for (const m of data.memories) {
    const tr = html("tr", { "data-memory": m.id });
    tr.append(html("td", {}, truncate(m.project, 40)), html("td", {}, m.kind), html("td", {}, m.text),
      html("td", {}, new Date(m.created * 1000).toISOString().slice(0, 10)));
    const td = html("td");
    const b = html("button", { type: "button", "data-forget": m.id }, "forget");
    b.addEventListener("click", async () => {
      const r = await fetch("/dashboard/api/memory/" + encodeURIComponent(m.id),
        { method: "DELETE", headers: { Authorization: "Bearer " + token } });
      if (r.ok) tr.remove();
    });
    td.append(b);
    tr.append(td);
    t.append(tr);
  }
  box.replaceChildren(t);
  box.dataset.rendered = String(data.memories.length);
}

// -- loading ------------------------------------------------------------------------------
let token = "";

async function load() {
  const status = document.getElementById("status");
  const since = document.getElementById("since").value;
  document.body.dataset.ready = "0";
  status.textContent = "loading…";
  const url = "/dashboard/api/data" + (since ? "?since=" + encodeURIComponent(since) : "");
  let resp;
  try {
    resp = await fetch(url, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  } catch (e) {
    status.textContent = "cannot reach the server: " + e.message;
    document.body.dataset.ready = "error";
    return;
  }
  if (resp.status === 401 || resp.status === 403) {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById("login").hidden = false;
    document.getElementById("content").hidden = true;
    status.textContent = "";
    document.body.dataset.ready = "login";
    return;
  }
  const data = await resp.json();
  if (!resp.ok) {
    status.textContent = data.error || "the server answered " + resp.status;
    document.body.dataset.ready = "error";
    return;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("content").hidden = false;
  const p = data.pipeline;
  document.getElementById("pipeline").textContent = p ? `pipeline ${p.name} · ${p.hash}` : "";
  document.getElementById("generated").textContent = "as of " + data.generated_at;
  status.textContent = data.message || "";
  draw(data);
  await loadMemory().catch(() => {});
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", () => {
  token = takeToken();
  document.getElementById("since").addEventListener("change", load);
  document.getElementById("refresh").addEventListener("click", load);
  document.getElementById("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = document.getElementById("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    load();
  });
  load();
});
