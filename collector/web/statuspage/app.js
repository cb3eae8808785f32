// probenet status page: plain JS, no external assets, data from the collector's /api/v1.
"use strict";

const REFRESH_MS = 5000;
const MAX_GRID_ROWS = 100;
const TIMELINE_HOURS = 24;
const PHASE_COLORS = { dns: "#7e57c2", connect: "#42a5f5", tls: "#26a69a", ttfb: "#ffa726", transfer: "#8d6e63" };
const STATUS_ORDER = { outage: 0, partial: 1, unknown: 2, ok: 3 };
const HISTORY_DAYS = 90;
const HISTORY_REFRESH_MS = 60000;

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

// --- API access: the token (when the collector needs one) is kept in this browser only. ---

function token() {
  const fromUrl = new URLSearchParams(location.search).get("token");
  if (fromUrl) localStorage.setItem("probenet.token", fromUrl);
  return localStorage.getItem("probenet.token") || "";
}

async function api(path) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const response = await fetch(path, { headers });
  if (response.status === 401) {
    $("#auth").hidden = false;
    throw new Error("the collector needs an API token");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${path}: ${body.error || response.statusText}`);
  return body;
}

function showError(err) {
  const box = $("#error");
  box.hidden = !err;
  box.textContent = err ? String(err.message || err) : "";
}

// --- formatting ---

function parseTime(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number") return new Date(value * 1000);
  return new Date(value);
}

function ago(date) {
  const s = Math.max(0, (Date.now() - date.getTime()) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function duration(from, to) {
  const s = Math.max(0, (to.getTime() - from.getTime()) / 1000);
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function causeText(cause) {
  if (!cause || !cause.class) return "";
  let text = cause.class;
  if (cause.host) text += ` on ${cause.host}`;
  if (cause.error) text += `: ${cause.error}`;
  return text;
}

function eventsOf(body) {
  return Array.isArray(body) ? body : body.events || [];
}

// --- overview: summary, open events, grid, timeline ---

let lastStatus = null;

function renderSummary(status) {
  // `counts` covers every check even when the answer is one page of them.
  let counts = status.counts;
  if (!counts) {
    counts = {};
    for (const c of status.checks || []) counts[c.status] = (counts[c.status] || 0) + 1;
  }
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const box = $("#summary");
  box.replaceChildren(
    el("span", { class: "count-checks" }, `${total} checks: `),
    el("span", { class: "count-ok" }, `${counts.ok || 0} ok`), ", ",
    el("span", { class: "count-partial" }, `${counts.partial || 0} partial`), ", ",
    el("span", { class: "count-outage" }, `${counts.outage || 0} outage`),
  );
}

// What an event was at its worst: a closed one is told by its peak, not by its last version
// (a post-mortem reads "regional in fr, it", not the "fr" it narrowed to before closing).
function peakOf(ev) {
  return {
    status: ev.peak_status || ev.status,
    scope: ev.peak_scope || ev.scope,
    regions: ev.peak_regions && ev.peak_regions.length ? ev.peak_regions : ev.regions || [],
  };
}

function stateText(s) {
  const regions = (s.regions || []).join(", ");
  return `${s.status} (${s.scope}${regions ? " in " + regions : ""})`;
}

function eventItem(ev) {
  const closed = parseTime(ev.closed_at);
  const opened = parseTime(ev.opened_at);
  const what = ev.kind === "vantage" ? `vantage ${ev.agent || "point"}` : ev.check;
  const peak = peakOf(ev);
  const title = `${what}: ${stateText(closed ? peak : ev)}`;
  const notes = [];
  if (!closed && stateText(peak) !== stateText(ev)) notes.push(`peak: ${stateText(peak)}`);
  if (!closed && (ev.recovering_regions || []).length) notes.push(`recovering: ${ev.recovering_regions.join(", ")}`);
  const when = closed
    ? `opened ${opened ? opened.toISOString() : "?"}, closed after ${duration(opened, closed)}`
    : `open since ${opened ? ago(opened) : "?"}${ev.version > 1 ? `, version ${ev.version}` : ""}`;
  const link = ev.kind === "vantage" ? el("span", { class: "title" }, title)
    : el("a", { class: "title", href: `#/check/${encodeURIComponent(ev.check)}` }, title);
  return el("li", {
    class: `event status-${ev.status}${closed ? " closed" : ""}`,
    dataset: { id: ev.id || "", check: ev.check || "", scope: ev.scope || "", status: ev.status || "" },
  }, link, el("div", { class: "cause" }, causeText(ev.cause) ? `cause: ${causeText(ev.cause)}` : ""),
  el("div", { class: "peak" }, notes.join("; ")),
  el("div", { class: "when" }, when));
}

function renderOpenEvents(events) {
  const open = events.filter((e) => !e.closed_at);
  const list = $("#open-events-list");
  if (!open.length) {
    list.replaceChildren(el("li", { class: "empty" }, "No open events."));
    return;
  }
  open.sort((a, b) => (STATUS_ORDER[a.status] ?? 9) - (STATUS_ORDER[b.status] ?? 9));
  list.replaceChildren(...open.map(eventItem));
}

// Windows from collector.yaml and silences from the API; open events they cover get a badge.
function renderMaintenance(m, open) {
  const covered = new Set(m.in_maintenance || []);
  for (const item of document.querySelectorAll("#open-events-list li.event")) {
    const ev = open.find((e) => item.dataset.id === e.id);
    if (ev && covered.has(ev.id) && !item.querySelector(".maintenance")) {
      item.append(el("span", { class: "maintenance" }, "in maintenance"));
    }
  }
  const rows = [...(m.windows || []), ...(m.silences || [])].map((w) => {
    const when = w.every ? `every ${w.every}` : `${w.start} to ${w.end}`;
    const scope = `${(w.checks || []).join(", ")}${(w.regions || []).length ? " in " + w.regions.join(", ") : ""}`;
    return el("li", { class: `window${w.active ? " active" : ""}`, dataset: { id: w.id || w.name } },
      el("span", { class: "title" }, `${w.id ? "silence" : "window"} ${w.name}: ${scope}`),
      el("div", { class: "when" }, `${when}${w.active ? " (active)" : ""}${w.comment ? " — " + w.comment : ""}`));
  });
  $("#maintenance-list").replaceChildren(...(rows.length ? rows : [el("li", { class: "empty" }, "None.")]));
}

// The grid asks for one page, worst first; the filters are applied by the collector.
function statusPath() {
  const params = new URLSearchParams({ limit: String(MAX_GRID_ROWS), detail: "false" });
  const filter = $("#grid-filter").value.trim();
  if (filter) params.set("q", filter);
  if ($("#grid-problems").checked) params.set("status", "outage,partial,unknown");
  return `/api/v1/status?${params}`;
}

function renderGrid(status) {
  const regions = status.regions || [];
  const filter = $("#grid-filter").value.trim().toLowerCase();
  const onlyProblems = $("#grid-problems").checked;
  let checks = status.checks || [];
  if (filter) checks = checks.filter((c) => c.check.toLowerCase().includes(filter));
  if (onlyProblems) checks = checks.filter((c) => c.status !== "ok");
  checks = [...checks].sort((a, b) =>
    (STATUS_ORDER[a.status] ?? 9) - (STATUS_ORDER[b.status] ?? 9) || (a.check < b.check ? -1 : 1));
  const shown = checks.slice(0, MAX_GRID_ROWS);
  const matching = Math.max(status.total || 0, checks.length);
  $("#grid-count").textContent = shown.length < matching
    ? `showing ${shown.length} of ${matching} (worst first; filter to find others)` : `${matching} checks`;
  const head = el("tr", {}, el("th", { class: "check" }, "check"), el("th", {}, "status"),
    ...regions.map((r) => el("th", { scope: "col" }, r)));
  $("#grid thead").replaceChildren(head);
  const body = document.createDocumentFragment();
  for (const c of shown) {
    const row = el("tr", { dataset: { check: c.check } },
      el("td", { class: "check" }, el("a", { href: `#/check/${encodeURIComponent(c.check)}` }, c.check)),
      el("td", { class: "status" }, c.scope && c.status !== "ok" ? `${c.status}, ${c.scope}` : c.status));
    for (const r of regions) {
      const state = (c.region_states || {})[r] || "NO_DATA";
      const tip = `${c.check} in ${r}: ${state}` +
        (state === "DOWN" || state === "PARTIAL" ? (causeText(c.cause) ? ` (${causeText(c.cause)})` : "") : "");
      row.append(el("td", {}, el("span", {
        class: `cell state-${state}`, title: tip, dataset: { region: r, state, check: c.check },
      }, state === "NO_DATA" ? "" : state)));
    }
    body.append(row);
  }
  $("#grid tbody").replaceChildren(body);
}

function renderTimeline(events) {
  const box = $("#timeline");
  const now = Date.now();
  const start = now - TIMELINE_HOURS * 3600 * 1000;
  const shown = events
    .filter((e) => { const c = parseTime(e.closed_at); return !c || c.getTime() >= start; })
    .slice(0, 40);
  if (!shown.length) {
    box.replaceChildren(el("p", { class: "empty" }, "No events in the last 24 hours."));
    return;
  }
  const width = Math.max(600, box.clientWidth || 900);
  const label = 220;
  const rowH = 18;
  const height = shown.length * rowH + 24;
  const x = (t) => label + ((t - start) / (now - start)) * (width - label - 10);
  const chart = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "event timeline" });
  for (let h = 0; h <= TIMELINE_HOURS; h += 6) {
    const t = start + h * 3600 * 1000;
    chart.append(svg("line", { x1: x(t), x2: x(t), y1: 0, y2: height - 18, stroke: "#dde1e5" }));
    const text = svg("text", { x: x(t), y: height - 4, "text-anchor": "middle" });
    text.textContent = h === TIMELINE_HOURS ? "now" : `-${TIMELINE_HOURS - h} h`;
    chart.append(text);
  }
  shown.forEach((ev, i) => {
    const opened = Math.max(start, (parseTime(ev.opened_at) || new Date(now)).getTime());
    const closed = (parseTime(ev.closed_at) || new Date(now)).getTime();
    const y = i * rowH + 2;
    const peak = peakOf(ev);
    const name = svg("text", { x: 4, y: y + 12 });
    name.textContent = `${ev.kind === "vantage" ? `vantage ${ev.agent || ""}` : ev.check} (${peak.scope})`;
    chart.append(name);
    const color = peak.status === "outage" ? "#d93025" : peak.status === "partial" ? "#e8a317" : "#b0b4ba";
    const bar = svg("rect", { x: x(opened), y, width: Math.max(3, x(closed) - x(opened)), height: rowH - 5,
      fill: color, rx: 2 });
    const tip = svg("title", {});
    tip.textContent = `${ev.check}: peak ${peak.status} ${peak.scope} ${peak.regions.join(",")} ${causeText(ev.cause)}`;
    bar.append(tip);
    chart.append(bar);
  });
  box.replaceChildren(chart);
}

// --- availability history: one bar per check, one cell per day (collector.web.report) ---

function availClass(a) {
  if (a === null || a === undefined) return "avail-none";
  if (a >= 99.9) return "avail-good";
  if (a >= 99) return "avail-fair";
  if (a >= 95) return "avail-poor";
  return "avail-bad";
}

function pct(a) {
  return a === null || a === undefined ? "no data" : `${a.toFixed(a >= 99.9 ? 3 : 2)} %`;
}

function minutes(s) {
  return s >= 5400 ? `${(s / 3600).toFixed(1)} h` : `${Math.round(s / 60)} min`;
}

function dayTip(check, cell) {
  const tip = el("div", {}, el("strong", {}, `${check}, ${cell.day.slice(0, 10)}: ${pct(cell.availability)}`));
  const parts = [];
  if (cell.down_s) parts.push(`down ${minutes(cell.down_s)}`);
  if (cell.degraded_s) parts.push(`degraded ${minutes(cell.degraded_s)}`);
  if (cell.excluded_s) parts.push(`maintenance or impaired vantage ${minutes(cell.excluded_s)}`);
  if (cell.no_data_s && cell.availability !== null) parts.push(`no data ${minutes(cell.no_data_s)}`);
  if (parts.length) tip.append(el("div", {}, parts.join(", ")));
  if (cell.incidents.length) {
    tip.append(el("ul", {}, ...cell.incidents.map((i) => el("li", { class: `status-${i.status}` },
      `${i.status}: ${i.cause || "unknown cause"}${i.cause_host ? " on " + i.cause_host : ""}` +
      (i.regions.length ? ` in ${i.regions.join(", ")}` : "")))));
  } else {
    tip.append(el("div", { class: "empty" }, "no incidents"));
  }
  return tip;
}

function overall(days) {
  let measured = 0;
  let good = 0;
  for (const d of days) {
    if (d.availability === null) continue;
    measured += d.measured_s;
    good += d.measured_s * d.availability;
  }
  return measured ? good / measured : null;
}

let historyAt = 0;
let historyFilter = null;
const dayCells = new WeakMap();

function renderHistory(daily) {
  const box = el("div", { class: "bars" });
  for (const c of daily.checks) {
    const bar = el("div", { class: "bar", dataset: { check: c.check } });
    for (const d of c.days) {
      const cell = el("span", { class: `day ${availClass(d.availability)}`,
        dataset: { day: d.day.slice(0, 10), availability: d.availability ?? "", incidents: d.incidents.length } });
      dayCells.set(cell, [c.check, d]);
      bar.append(cell);
    }
    box.append(
      el("div", { class: "name" }, el("a", { href: `#/check/${encodeURIComponent(c.check)}` }, c.check)),
      bar, el("div", { class: "total" }, pct(overall(c.days))));
  }
  $("#history").replaceChildren(daily.checks.length ? box : el("p", { class: "empty" }, "No checks."));
  $("#history-count").textContent = daily.total > daily.checks.length
    ? `${daily.checks.length} of ${daily.total} checks` : `${daily.total} checks`;
  $("#history").dataset.loaded = "true";
}

async function refreshHistory() {
  const filter = $("#grid-filter").value.trim();
  if (filter === historyFilter && Date.now() - historyAt < HISTORY_REFRESH_MS) return;
  const params = new URLSearchParams({ days: String(HISTORY_DAYS), limit: String(MAX_GRID_ROWS) });
  if (filter) params.set("check", `*${filter}*`);
  renderHistory(await api(`/api/v1/report/daily?${params}`));
  historyAt = Date.now();
  historyFilter = filter;
}

document.addEventListener("mouseover", (ev) => {
  const found = dayCells.get(ev.target);
  const tip = $("#day-tip");
  if (!found) { tip.hidden = true; return; }
  tip.replaceChildren(dayTip(...found));
  tip.hidden = false;
  const box = ev.target.getBoundingClientRect();
  tip.style.left = `${Math.min(box.left, window.innerWidth - 460)}px`;
  tip.style.top = `${box.bottom + 6}px`;
});

// --- a check's availability per region and its error budget (30 days) ---

function budgetGauge(slo) {
  const left = Math.max(0, Math.min(1, slo.budget_left ?? 0));
  const r = 50;
  const angle = Math.PI * (1 - left);
  const end = [60 + r * Math.cos(angle), 60 - r * Math.sin(angle)];
  const gauge = svg("svg", { width: 120, height: 70, viewBox: "0 0 120 70", role: "img",
    "aria-label": "error budget left", id: "budget-gauge" });
  gauge.append(svg("path", { d: `M 10 60 A ${r} ${r} 0 0 1 110 60`, fill: "none", stroke: "#eceff1",
    "stroke-width": 12 }));
  if (left > 0) gauge.append(svg("path", { d: `M 10 60 A ${r} ${r} 0 0 1 ${end[0].toFixed(1)} ${end[1].toFixed(1)}`,
    fill: "none", stroke: left > 0.5 ? "#2e9e44" : left > 0.2 ? "#e8a317" : "#d93025", "stroke-width": 12 }));
  const label = svg("text", { x: 60, y: 58, "text-anchor": "middle" });
  label.textContent = `${Math.round(100 * (slo.budget_left ?? 0))} %`;
  gauge.append(label);
  gauge.dataset.left = String(slo.budget_left);
  const burns = `burn rate 1 h ${slo.burn_1h ?? "-"}, 6 h ${slo.burn_6h ?? "-"}`;
  return [gauge, el("div", {}, el("div", {}, `SLO ${slo.target} % over ${Math.round(slo.window_s / 86400)} days: ` +
    `${pct(slo.availability)}, error budget left ${Math.round(100 * (slo.budget_left ?? 0))} %`), el("div", {}, burns))];
}

async function refreshAvailability(checkId) {
  const answer = await api(`/api/v1/report?since=30d&regions=all&check=${encodeURIComponent(checkId)}`);
  const row = (answer.checks || []).find((c) => c.check === checkId);
  const budget = $("#budget");
  budget.replaceChildren(...(row && row.slo ? budgetGauge(row.slo)
    : [el("span", { class: "empty" }, row ? `${pct(row.availability)} (no SLO set)` : "not a central check")]));
  fillTable("#availability", row ? [["all regions", pct(row.availability), minutes(row.down_s),
    minutes(row.degraded_s), minutes(row.excluded_s), minutes(row.no_data_s)],
  ...(row.regions || []).map((r) => [r.region, pct(r.availability), minutes(r.down_s), minutes(r.degraded_s),
    minutes(r.excluded_s), minutes(r.no_data_s)])] : []);
  $("#check-availability").dataset.loaded = checkId;
}

async function refreshOverview() {
  // The verdict engine's status carries the open events: one request draws what matters now.
  const status = await api(statusPath());
  lastStatus = status;
  const open = status.open_events || eventsOf(await api("/api/v1/events?open=true&limit=500"));
  renderSummary(status);
  renderOpenEvents(open);
  api("/api/v1/silences").then((m) => renderMaintenance(m, open), showError);
  renderGrid(status);
  // The timeline comes after, without holding the rest back.
  const since = Math.floor(Date.now() / 1000) - TIMELINE_HOURS * 3600;
  api(`/api/v1/events?since=${since}&limit=200`).then((recent) => renderTimeline(eventsOf(recent)), showError);
  refreshHistory().catch(showError);
}

// --- per-check page ---

function latencyChart(detail) {
  const points = detail.latency || [];
  const box = $("#latency-chart");
  if (!points.length) {
    box.replaceChildren(el("p", { class: "empty" }, "No results in this range."));
    return;
  }
  const phases = (detail.phases || []).filter((p) => p !== "total");
  const width = Math.max(600, box.clientWidth || 900);
  const height = 260;
  const pad = { left: 50, right: 10, top: 10, bottom: 24 };
  const stackTop = points.map((p) => phases.reduce((s, ph) => s + (p[ph] || 0), 0));
  const maxY = Math.max(1, ...stackTop, ...points.map((p) => p.p95_total || 0)) * 1.1;
  const t0 = points[0].t;
  const t1 = Math.max(points[points.length - 1].t, t0 + 1);
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / maxY) * (height - pad.top - pad.bottom);
  const chart = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "latency by phase" });
  for (let i = 0; i <= 4; i++) {
    const v = (maxY / 4) * i;
    chart.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), stroke: "#eceff1" }));
    const text = svg("text", { x: pad.left - 4, y: y(v) + 4, "text-anchor": "end" });
    text.textContent = v >= 100 ? v.toFixed(0) : v.toFixed(1);
    chart.append(text);
  }
  const base = points.map(() => 0);
  for (const phase of phases) {
    const top = points.map((p, i) => base[i] + (p[phase] || 0));
    const upper = points.map((p, i) => `${x(p.t).toFixed(1)},${y(top[i]).toFixed(1)}`);
    const lower = points.map((p, i) => `${x(p.t).toFixed(1)},${y(base[i]).toFixed(1)}`).reverse();
    chart.append(svg("polygon", { points: [...upper, ...lower].join(" "), fill: PHASE_COLORS[phase] || "#999",
      "fill-opacity": 0.85, class: `phase phase-${phase}` }));
    top.forEach((v, i) => { base[i] = v; });
  }
  const p95 = points.filter((p) => p.p95_total !== null).map((p) => `${x(p.t).toFixed(1)},${y(p.p95_total).toFixed(1)}`);
  if (p95.length) chart.append(svg("polyline", { points: p95.join(" "), fill: "none", stroke: "#263238",
    "stroke-width": 1.5, "stroke-dasharray": "4 3" }));
  points.forEach((p) => {
    if (p.failures > 0) chart.append(svg("rect", { x: x(p.t) - 2, y: height - pad.bottom + 2, width: 4, height: 5,
      fill: "#d93025" }));
  });
  for (const [t, anchor] of [[t0, "start"], [(t0 + t1) / 2, "middle"], [t1, "end"]]) {
    const text = svg("text", { x: x(t), y: height - 6, "text-anchor": anchor });
    text.textContent = new Date(t * 1000).toISOString().slice(11, 16) + " UTC";
    chart.append(text);
  }
  const legend = el("div", { class: "chart-legend" },
    ...phases.map((p) => el("span", {}, el("i", { style: `background:${PHASE_COLORS[p]}` }), p)),
    el("span", {}, el("i", { style: "background:#263238" }), "p95 total"),
    el("span", {}, el("i", { style: "background:#d93025" }), "failures in interval"));
  box.replaceChildren(legend, chart);
}

function fillTable(selector, rows) {
  const body = $(selector + " tbody");
  if (!rows.length) {
    const cols = $(selector + " thead tr").children.length;
    body.replaceChildren(el("tr", {}, el("td", { colspan: cols, class: "empty" }, "none")));
    return;
  }
  body.replaceChildren(...rows.map((cells) => el("tr", {}, ...cells.map((c) =>
    el("td", typeof c === "number" ? { class: "num" } : {}, c)))));
}

// The path traces of an event's agents, hops side by side; a hop where their paths differ is marked.
async function renderPaths(ev) {
  const box = $("#check-paths");
  const detail = ev && ev.id ? await api(`/api/v1/events/${encodeURIComponent(ev.id)}`).catch(() => null) : null;
  const traces = (detail && detail.path_traces) || [];
  if (!traces.length) {
    box.replaceChildren(el("p", { class: "empty" }, "none"));
    return;
  }
  const depth = Math.max(...traces.map((t) => t.hops.length));
  const head = el("tr", {}, el("th", {}, "hop"), ...traces.map((t) => el("th", {}, `${t.agent} (${t.region})`)));
  const rows = [];
  for (let i = 0; i < depth; i++) {
    const hops = traces.map((t) => t.hops[i]);
    const seen = new Set(hops.filter(Boolean).map((h) => h.address || "*"));
    const cells = hops.map((h) => el("td", {}, h ? hopText(h) : ""));
    rows.push(el("tr", { class: seen.size > 1 ? "diverge" : "", dataset: { hop: String(i + 1) } },
      el("td", { class: "num" }, String(i + 1)), ...cells));
  }
  const ends = traces.map((t) => `${t.agent}: ${t.reached ? "reached" : "not reached"} ${t.host}`
    + (t.error ? ` (${t.error})` : ""));
  box.replaceChildren(el("table", { class: "data paths" }, el("thead", {}, head), el("tbody", {}, ...rows)),
    el("p", { class: "when" }, ends.join("; ")));
}

function hopText(h) {
  const rtt = h.rtt_ms.length ? ` ${Math.min(...h.rtt_ms).toFixed(1)} ms` : "";
  return `${h.address || "*"}${rtt}${h.lost ? ` (${h.lost}/${h.sent} lost)` : ""}`;
}

async function refreshCheck(checkId) {
  const minutes = $("#check-range").value;
  $("#check-title").textContent = checkId;
  const [detail, events] = await Promise.all([
    api(`/api/v1/checks/${encodeURIComponent(checkId)}?minutes=${minutes}`).catch((err) => ({ error: err })),
    api(`/api/v1/events?check=${encodeURIComponent(checkId)}&limit=50`),
  ]);
  const verdict = lastStatus && (lastStatus.checks || []).find((c) => c.check === checkId);
  $("#check-verdict").replaceChildren(verdict
    ? el("p", { class: `verdict status-${verdict.status}` }, `now: ${verdict.status}`,
      verdict.scope && verdict.status !== "ok" ? ` (${verdict.scope}: ${(verdict.regions || []).join(", ")})` : "",
      causeText(verdict.cause) ? ` - cause: ${causeText(verdict.cause)}` : "")
    : "");
  refreshAvailability(checkId).catch(showError);
  const evs = eventsOf(events).filter((e) => e.check === checkId);
  $("#check-events").replaceChildren(...(evs.length ? evs.map(eventItem) : [el("li", { class: "empty" }, "none")]));
  await renderPaths(evs[0]);
  if (detail.error) {
    $("#check-meta").textContent = String(detail.error.message || detail.error);
    latencyChart({ latency: [] });
    fillTable("#failures", []); fillTable("#regions", []); fillTable("#hosts", []);
    return;
  }
  $("#check-meta").textContent = `${detail.probe} ${detail.target}`;
  latencyChart(detail);
  fillTable("#failures", detail.failures.map((f) => [f.class || "(partial)", f.region, f.count, f.host, f.error]));
  fillTable("#regions", detail.regions.map((r) => [r.region, r.results, r.failures, r.partials, r.latest, r.agents]));
  fillTable("#hosts", detail.failed_hosts.map((h) => [h.host, h.class, h.region, h.count]));
  $("#check").dataset.loaded = checkId;
}

// --- routing and the refresh loop ---

function currentCheck() {
  const match = location.hash.match(/^#\/check\/(.+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

let refreshing = false;

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const checkId = currentCheck();
    $("#overview").hidden = !!checkId;
    $("#check").hidden = !checkId;
    if (checkId) {
      lastStatus = await api(`/api/v1/status?q=${encodeURIComponent(checkId)}&limit=50`);
      await refreshCheck(checkId);
    } else {
      await refreshOverview();
    }
    $("#updated").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    if (!document.body.dataset.loaded) document.body.dataset.drawnMs = String(Math.round(performance.now()));
    document.body.dataset.loaded = "true";
    showError(null);
  } catch (err) {
    showError(err);
  } finally {
    refreshing = false;
  }
}

let filterTimer = null;
$("#grid-filter").addEventListener("input", () => {
  if (lastStatus) renderGrid(lastStatus);
  clearTimeout(filterTimer);
  filterTimer = setTimeout(refresh, 250);
});
$("#grid-problems").addEventListener("change", refresh);
$("#check-range").addEventListener("change", refresh);
$("#auth-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  localStorage.setItem("probenet.token", $("#auth-token").value);
  $("#auth").hidden = true;
  refresh();
});
window.addEventListener("hashchange", refresh);
refresh();
setInterval(refresh, REFRESH_MS);
