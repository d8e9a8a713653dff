// quantrac dashboard: the history of one plant's parameter (#/history/<station>/<parameter>?from=…&to=…&res=…).
// Any range (local-time pickers, quick ranges), zoom by dragging across the chart, pan and zoom out with buttons,
// resolution raw / hourly / daily (automatic by range, or chosen), min–max–mean of the range against the limit,
// downloads of the range as CSV and XLSX. Charts by uPlot (vendored, MIT). Loaded before app.js; uses its helpers
// (t, el, api, fmt, withUnit, stations, offsetS, lang, showError) only when called.
"use strict";

const HT = {
  vi: { h_title: "Lịch sử", h_from: "Từ", h_to: "Đến", h_apply: "Xem", h_res: "Độ phân giải", h_auto: "Tự động", h_raw: "Số liệu gốc",
    h_hour: "Trung bình giờ", h_day: "Trung bình ngày", h_min: "Nhỏ nhất", h_max: "Lớn nhất", h_mean: "Trung bình", h_limit: "Giới hạn",
    h_valid: "Số giá trị hợp lệ (đang đo)", h_over: "Số giá trị vượt giới hạn", h_multiple: "Lớn nhất / giới hạn", h_download: "Tải về",
    h_back: "← Trạm", h_zoomOut: "Thu nhỏ", h_earlier: "◀ Trước", h_later: "Sau ▶", h_hint: "Kéo chuột trên biểu đồ để phóng to.",
    h_none: "Không có số liệu trong khoảng này", h_used: "Đang hiển thị", h_bucket: "nhóm", h_limitChanged: "giới hạn thay đổi trong khoảng",
    h_value: "Giá trị", h_range: "Khoảng nhỏ nhất – lớn nhất", h_24h: "24 giờ", h_7d: "7 ngày", h_30d: "30 ngày", h_1y: "1 năm", h_of: "trên" },
  en: { h_title: "History", h_from: "From", h_to: "To", h_apply: "Show", h_res: "Resolution", h_auto: "Automatic", h_raw: "Raw readings",
    h_hour: "Hourly means", h_day: "Daily means", h_min: "Min", h_max: "Max", h_mean: "Mean", h_limit: "Limit",
    h_valid: "Valid (measuring) readings", h_over: "Readings over the limit", h_multiple: "Max / limit", h_download: "Download",
    h_back: "← Plant", h_zoomOut: "Zoom out", h_earlier: "◀ Earlier", h_later: "Later ▶", h_hint: "Drag across the chart to zoom in.",
    h_none: "No data in this range", h_used: "Showing", h_bucket: "buckets of", h_limitChanged: "the limit changed within the range",
    h_value: "Value", h_range: "Min – max range", h_24h: "24 h", h_7d: "7 days", h_30d: "30 days", h_1y: "1 year", h_of: "of" },
};
const ht = (k) => (HT[lang] && HT[lang][k]) || k;
const QUICK = [["h_24h", 24 * 3600e3], ["h_7d", 7 * 86400e3], ["h_30d", 30 * 86400e3], ["h_1y", 365 * 86400e3]];
const RESOLUTIONS = ["auto", "raw", "hour", "day"];
let historyPlot = null;

// The history route's station, parameter and query (from, to in Unix ms; res); null on other routes.
function historyParams() {
  const m = location.hash.match(/^#\/history\/([^/?]+)\/([^/?]+)\??(.*)$/);
  if (!m) return null;
  const q = new URLSearchParams(m[3]);
  const to = Number(q.get("to")) || Date.now();
  const from = Number(q.get("from")) || to - 24 * 3600e3;
  return { station: decodeURIComponent(m[1]), parameter: decodeURIComponent(m[2]), from, to, res: q.get("res") || "auto" };
}
const historyHref = (station, parameter, from, to, res) => {
  const q = new URLSearchParams();
  if (from !== undefined) { q.set("from", String(Math.round(from))); q.set("to", String(Math.round(to))); }
  if (res && res !== "auto") q.set("res", res);
  return `#/history/${encodeURIComponent(station)}/${encodeURIComponent(parameter)}${q.toString() ? "?" + q : ""}`;
};
const goHistory = (p, changes) => { const n = Object.assign({}, p, changes); location.hash = historyHref(n.station, n.parameter, n.from, n.to, n.res); };

// Local wall time (the stations' offset, whatever the browser's zone) ⇄ the `datetime-local` inputs' text.
const toLocalInput = (ms) => new Date(ms + offsetS * 1000).toISOString().slice(0, 16);
const fromLocalInput = (s) => { const m = s.match(/^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)/); return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) - offsetS * 1000 : NaN; };

function historyControls(p) {
  const from = el("input", { type: "datetime-local", id: "h-from", value: toLocalInput(p.from) });
  const to = el("input", { type: "datetime-local", id: "h-to", value: toLocalInput(p.to) });
  const apply = el("button", { type: "button", id: "h-apply" }, ht("h_apply"));
  apply.onclick = () => {
    const f = fromLocalInput(from.value), t2 = fromLocalInput(to.value);
    if (Number.isFinite(f) && Number.isFinite(t2) && t2 > f) goHistory(p, { from: f, to: t2 });
  };
  const res = el("select", { id: "h-res" }, ...RESOLUTIONS.map((r) => el("option", { value: r }, ht(`h_${r}`))));
  res.value = p.res;
  res.onchange = () => goHistory(p, { res: res.value });
  const quick = QUICK.map(([k, ms]) => {
    const b = el("button", { type: "button", class: "h-quick", "data-range": ms }, ht(k));
    b.onclick = () => { const now = Date.now(); goHistory(p, { from: now - ms, to: now }); };
    return b;
  });
  const span = p.to - p.from;
  const nav = [["h_earlier", -span / 2, span], ["h_zoomOut", -span / 2, span * 2], ["h_later", span / 2, span]].map(([k, shift, len]) => {
    const b = el("button", { type: "button", class: "h-nav", "data-nav": k }, ht(k));
    b.onclick = () => { const f = p.from + shift; goHistory(p, { from: f, to: f + len }); };
    return b;
  });
  return el("div", { id: "history-controls" },
    el("label", { class: "filter" }, ht("h_from"), " ", from), el("label", { class: "filter" }, ht("h_to"), " ", to), apply,
    el("span", { class: "h-quicks" }, ...quick), el("label", { class: "filter" }, ht("h_res"), " ", res), el("span", { class: "h-navs" }, ...nav));
}

// Min, max and mean of the range against the limit (the raw numbers in data-* for tests and scripts).
function historyStats(r) {
  const s = r.stats, u = r.unit;
  const lim = r.limit_low !== null && r.limit_low !== undefined ? `${fmt(r.limit_low)}–${fmt(r.limit_high)}` : r.limit_high === null || r.limit_high === undefined ? "–" : fmt(r.limit_high);
  const over = (v) => r.limit_high !== null && r.limit_high !== undefined && v !== null && (v > r.limit_high || (r.limit_low !== null && v < r.limit_low));
  const cell = (k, v, cls) => el("div", { class: `h-stat ${cls || ""}`, "data-stat": k, "data-value": v === null || v === undefined ? "" : String(v) },
    el("span", { class: "h-stat-name" }, ht(`h_${k}`)), el("span", { class: "h-stat-value" }, withUnit(fmt(v), u)));
  const multiple = s.max_multiple === null || s.max_multiple === undefined ? "–" : mult(s.max_multiple);
  return el("div", { id: "history-stats" },
    cell("min", s.min), cell("max", s.max, over(s.max) ? "over" : ""), cell("mean", s.mean, over(s.mean) ? "over" : ""),
    el("div", { class: "h-stat", "data-stat": "limit", "data-value": r.limit_high ?? "" }, el("span", { class: "h-stat-name" }, ht("h_limit")),
      el("span", { class: "h-stat-value" }, withUnit(lim, u), r.limit_changed ? ` (${ht("h_limitChanged")})` : "")),
    el("div", { class: "h-stat", "data-stat": "multiple", "data-value": s.max_multiple ?? "" }, el("span", { class: "h-stat-name" }, ht("h_multiple")), el("span", { class: "h-stat-value" }, multiple)),
    el("div", { class: "h-stat", "data-stat": "valid", "data-value": s.valid }, el("span", { class: "h-stat-name" }, ht("h_valid")), el("span", { class: "h-stat-value" }, `${s.valid} ${ht("h_of")} ${s.readings}`)),
    el("div", { class: `h-stat ${s.exceeding ? "over" : ""}`, "data-stat": "exceeding", "data-value": s.exceeding }, el("span", { class: "h-stat-name" }, ht("h_over")), el("span", { class: "h-stat-value" }, String(s.exceeding))));
}

// uPlot's series and data: x in seconds, the value (or the bucket mean), the buckets' min and max, the limits (each
// only when the answer has it).
function historySeries(r) {
  const pts = r.points, x = pts.ts.map((ts) => ts / 1000);
  const value = pts.value ? pts.value.map((v, i) => (pts.status[i] === "measuring" ? v : null)) : pts.mean;
  const limit = { stroke: "#b3261e", width: 1.5, dash: [6, 4], points: { show: false } };
  const thin = { stroke: "#7d9cc0", width: 1, dash: [2, 3], points: { show: false } };
  const out = [[{}, x], [{ label: ht("h_value"), stroke: "#12355b", width: 1.5, points: { show: x.length < 300 } }, value]];
  if (pts.min) out.push([Object.assign({ label: ht("h_min") }, thin), pts.min], [Object.assign({ label: ht("h_max") }, thin), pts.max]);
  for (const k of ["limit_low", "limit_high"]) if (pts[k].some((v) => v !== null && v !== undefined)) out.push([Object.assign({ label: ht("h_limit") }, limit), pts[k].map((v) => v ?? null)]);
  return out;
}

// The stations' wall time on the axis, whatever the browser's zone.
const stationDate = (s) => { const d = new Date(s * 1000 + offsetS * 1000); return new Date(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()); };
const pad2 = (n) => String(n).padStart(2, "0");
// Ticks in 24-hour local time; days as dd/mm (at midnight, or when ticks are a day or more apart).
const timeTicks = (u, splits, axis, space, incr) => splits.map((s) => {
  const d = stationDate(s), day = `${pad2(d.getDate())}/${pad2(d.getMonth() + 1)}`;
  if (incr >= 86400) return incr >= 28 * 86400 ? `${pad2(d.getMonth() + 1)}/${d.getFullYear()}` : day;
  return d.getHours() === 0 && d.getMinutes() === 0 ? day : `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
});

function drawHistory(box, r, p) {
  if (historyPlot) { historyPlot.destroy(); historyPlot = null; }
  const width = Math.max(200, box.clientWidth - 4);
  const series = historySeries(r);
  const opts = {
    width, height: width < 500 ? 240 : 340, tzDate: stationDate,
    scales: { x: { time: true, min: p.from / 1000, max: p.to / 1000 } },
    legend: { show: width >= 500 },
    cursor: { drag: { x: true, y: false } },
    axes: [{ values: timeTicks }, { size: 56, values: (u, vals) => vals.map((v) => fmt(v)) }],
    series: series.map(([s]) => s),
    hooks: { setSelect: [(u) => {
      if (u.select.width < 5) return;
      const f = u.posToVal(u.select.left, "x") * 1000, t2 = u.posToVal(u.select.left + u.select.width, "x") * 1000;
      if (t2 - f >= 60e3) goHistory(p, { from: f, to: t2 });
    }] },
  };
  historyPlot = new uPlot(opts, series.map(([, d]) => d), box);
  box.dataset.points = String(r.points.ts.length);
}

function downloadLinks(p) {
  const q = `station=${encodeURIComponent(p.station)}&parameter=${encodeURIComponent(p.parameter)}&from=${Math.round(p.from)}&to=${Math.round(p.to)}`;
  return el("p", { id: "history-downloads" }, `${ht("h_download")}: `,
    el("a", { id: "h-csv", href: `/api/history/download?${q}&format=csv`, download: "" }, "CSV"), " · ",
    el("a", { id: "h-xlsx", href: `/api/history/download?${q}&format=xlsx`, download: "" }, "XLSX"));
}

function resolutionNote(r) {
  const len = (ms) => (ms % 86400e3 === 0 ? `${ms / 86400e3} d` : ms % 3600e3 === 0 ? `${ms / 3600e3} h` : `${ms / 60e3} min`);
  const what = r.resolution === "raw" && r.bucket_ms ? `${ht("h_raw")}, ${ht("h_bucket")} ${len(r.bucket_ms)}` : ht(`h_${r.resolution}`);
  return el("p", { class: "h-note", "data-resolution": r.resolution, "data-bucket": r.bucket_ms ?? "" },
    `${ht("h_used")}: ${what}${r.auto ? ` (${ht("h_auto").toLowerCase()})` : ""} · ${r.points.ts.length} · ${ht("h_hint")}`);
}

async function renderHistory() {
  const p = historyParams(), hash = location.hash;
  const box = document.getElementById("history");
  if (!p) return;
  const st = stations.get(p.station);
  const back = el("a", { href: `#/station/${encodeURIComponent(p.station)}` }, ht("h_back"));
  const chart = el("div", { id: "history-chart" });
  const head = el("h2", {}, `${ht("h_title")}: ${st ? st.name : p.station} — ${p.parameter}`);
  box.replaceChildren(back, head, historyControls(p), el("div", { id: "history-body" }), chart);
  const res = p.res === "auto" ? "" : `&resolution=${p.res}`;
  const r = await api(`/api/history?station=${encodeURIComponent(p.station)}&parameter=${encodeURIComponent(p.parameter)}&from=${Math.round(p.from)}&to=${Math.round(p.to)}${res}`);
  if (location.hash !== hash) return; // another range was asked for meanwhile
  if (r.unit && r.unit !== "-") head.append(` (${r.unit})`);
  document.getElementById("history-body").replaceChildren(historyStats(r), resolutionNote(r), downloadLinks(p));
  if (!r.points.ts.length) chart.replaceChildren(el("p", {}, ht("h_none")));
  else drawHistory(chart, r, p);
  chart.dataset.loaded = location.hash;
}

window.addEventListener("resize", () => {
  const box = document.getElementById("history-chart");
  if (historyPlot && box && !document.getElementById("history").hidden) {
    const w = Math.max(200, box.clientWidth - 4);
    historyPlot.setSize({ width: w, height: w < 500 ? 240 : 340 });
  }
});
