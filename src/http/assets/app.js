// quantrac dashboard: province overview, plant detail with 24-hour charts against limits, live over SSE.
// No framework, no CDN: served from the binary.
"use strict";

const T = {
  vi: { subtitle: "Quan trắc nước thải tự động", offline: "Mất kết nối", online: "Trực tuyến",
    compliant: "Đạt quy chuẩn", warning: "Cảnh báo", violation: "Vượt quy chuẩn", silent: "Mất tín hiệu", fault: "Lỗi thiết bị",
    parameter: "Thông số", value: "Giá trị", limit: "Giới hạn", ratio: "Hệ số vượt", hour: "TB giờ", today: "Đủ dữ liệu hôm nay",
    updated: "Cập nhật", back: "← Toàn tỉnh", last24: "24 giờ qua", status: "Trạng thái", token: "Nhập mã truy cập (token):",
    measuring: "đang đo", calibrating: "hiệu chuẩn", maintenance: "bảo trì", nodata: "chưa có dữ liệu",
    events: "Sự cố vượt quy chuẩn đang mở", since: "Từ", peak: "Đỉnh", scope: "Phạm vi", instant: "giá trị tức thời", window: "trung bình giờ", noevents: "Không có",
    alerts: "Cảnh báo đang mở", kind: "Loại", state: "Tình trạng", ack: "Xác nhận", raised: "Đang cảnh báo", acknowledged: "Đã xác nhận",
    cleared: "Đã kết thúc", lastBad: "Vượt gần nhất", late: "dữ liệu đến muộn", ackComment: "Ghi chú xác nhận (ví dụ: đã báo nhà máy kiểm tra):", ackToken: "Cần mã truy cập của người vận hành (operator):",
    k_exceedance: "Vượt ngưỡng tức thời", k_violation: "Vượt quy chuẩn (TB giờ)", k_silent: "Mất tín hiệu", k_fault: "Lỗi thiết bị",
    k_calibration: "Hiệu chuẩn quá lâu", k_quality: "Chất lượng dữ liệu", k_backlog: "Tồn đọng chuyển dữ liệu",
    b_lt_1_1: "dưới 1,1 lần", b_1_1_to_1_5: "1,1 đến dưới 1,5 lần", b_1_5_to_3: "1,5 đến dưới 3 lần", b_3_to_5: "3 đến dưới 5 lần",
    b_5_to_10: "5 đến dưới 10 lần", b_ge_10: "từ 10 lần", b_out_of_range: "ngoài khoảng cho phép",
    onTime: "Truyền đúng hạn (5 phút) trong 24 giờ qua", of: "trên", readings: "giá trị",
    log: "Nhật ký trạm", noNotes: "Chưa có ghi chú", addNote: "Thêm ghi chú", noteText: "Ghi chú (ví dụ: đã vệ sinh thiết bị phân tích):", who: "Người ghi", text: "Nội dung", time: "Thời điểm" },
  en: { subtitle: "Automatic wastewater monitoring", offline: "Offline", online: "Live",
    compliant: "Compliant", warning: "Warning", violation: "Violation", silent: "Silent", fault: "Device fault",
    parameter: "Parameter", value: "Value", limit: "Limit", ratio: "Multiple", hour: "Hour mean", today: "Data today",
    updated: "Updated", back: "← Province", last24: "Last 24 hours", status: "Status", token: "Access token:",
    measuring: "measuring", calibrating: "calibrating", maintenance: "maintenance", nodata: "no data yet",
    events: "Open exceedance events", since: "Since", peak: "Peak", scope: "Scope", instant: "single readings", window: "window mean", noevents: "None",
    alerts: "Open alerts", kind: "Kind", state: "State", ack: "Acknowledge", raised: "Raised", acknowledged: "Acknowledged",
    cleared: "Cleared", lastBad: "Last bad", late: "late data", ackComment: "Acknowledgement comment (e.g. plant asked to check):", ackToken: "An operator's access token is needed:",
    k_exceedance: "Exceedance (reading)", k_violation: "Violation (window mean)", k_silent: "Station silent", k_fault: "Device fault",
    k_calibration: "Calibration too long", k_quality: "Data quality", k_backlog: "Forwarder backlog",
    b_lt_1_1: "below 1.1×", b_1_1_to_1_5: "1.1 to < 1.5×", b_1_5_to_3: "1.5 to < 3×", b_3_to_5: "3 to < 5×",
    b_5_to_10: "5 to < 10×", b_ge_10: "10× or more", b_out_of_range: "out of range",
    onTime: "Sent on time (5 minutes), last 24 hours", of: "of", readings: "readings",
    log: "Station log", noNotes: "No notes yet", addNote: "Add a note", noteText: "Note (e.g. analyser cleaned):", who: "By", text: "Note", time: "Time" },
};
const STATES = ["violation", "fault", "silent", "warning", "compliant"];
let lang = localStorage.getItem("quantrac.lang") || "vi";
let offsetS = 7 * 3600;
let windowMs = 3600000; // the averaging window whose means judge violations
let stations = new Map();
let charts = new Map(); // parameter -> points [ts, value] for the open station

const t = (k) => (T[lang] && T[lang][k]) || k;
const token = () => localStorage.getItem("quantrac.token");
const withToken = (url) => (token() ? url + (url.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(token()) : url);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};
// Decree 45 band of a multiple, in words (the ledger's code if unknown).
const bandText = (b) => (T[lang] && T[lang]["b_" + b]) || b;
// Numbers in the page's language: a decimal comma in Vietnamese, a point in English (never both on one page).
const fmt = (v) => {
  if (v === null || v === undefined) return "–";
  const s = Number(Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4)).toString();
  return lang === "vi" ? s.replace(".", ",") : s;
};
// A multiple of the limit: "1,302 lần" / "1.302×".
const mult = (v) => (v === null || v === undefined ? "–" : lang === "vi" ? `${fmt(v)} lần` : `${fmt(v)}×`);
// A value with its unit ("-" is pH's: no unit to show).
const withUnit = (text, unit) => (text === "–" || !unit || unit === "-" ? text : `${text} ${unit}`);
// What an alert is about and its note, in the page's language (the API gives both).
const alertWords = (a) => (a.words && a.words[lang]) || { subject: a.parameter, note: (a.detail || {}).note || "" };
function localTime(ms, withDate) {
  const d = new Date(ms + offsetS * 1000), p = (n) => String(n).padStart(2, "0");
  const hm = `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
  return withDate ? `${p(d.getUTCDate())}/${p(d.getUTCMonth() + 1)} ${hm}` : hm;
}
function limitText(p) {
  if (p.limit_low !== null && p.limit_low !== undefined) return `${fmt(p.limit_low)}–${fmt(p.limit_high)}`;
  return p.limit_high === null || p.limit_high === undefined ? "–" : fmt(p.limit_high);
}
const exceeds = (band) => band && !["compliant", "no_limit", "not_evaluated", ""].includes(band);

async function api(path) {
  const r = await fetch(withToken(path));
  if (r.status === 401) {
    const v = prompt(t("token"));
    if (v) { localStorage.setItem("quantrac.token", v); return api(path); }
  }
  if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.json().catch(() => ({}))).error || ""}`);
  return r.json();
}

function applyLang() {
  document.documentElement.lang = lang;
  document.getElementById("lang").textContent = lang === "vi" ? "EN" : "VI";
  document.querySelectorAll("[data-i18n]").forEach((n) => (n.textContent = t(n.dataset.i18n)));
  const legend = document.getElementById("legend");
  legend.replaceChildren(...STATES.map((s) => el("span", {}, el("span", { class: `dot s-${s}` }), t(s))));
}

function paramRow(p) {
  const over = exceeds(p.band);
  const tr = el("tr", { "data-param": p.parameter },
    el("td", {}, p.parameter),
    el("td", { class: "value" + (over ? " over" : "") + (p.status !== "measuring" ? " calib" : "") }, `${fmt(p.value)} ${p.unit || ""}`),
    el("td", {}, limitText(p)),
    el("td", { class: exceeds(p.hour_band) ? "over" : "" }, fmt(p.hour_mean)));
  if (p.status && p.status !== "measuring") tr.title = t(p.status);
  return tr;
}

function tile(st) {
  const main = ["COD", "TSS", "NH4", "pH", "Temp", "Flow"];
  const params = [...st.parameters].sort((a, b) => main.indexOf(a.parameter) - main.indexOf(b.parameter));
  const body = el("tbody", {}, ...params.map(paramRow));
  const table = el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, t("parameter")), el("th", {}, t("value")), el("th", {}, t("limit")), el("th", {}, t("hour")))), body);
  const node = el("article", { class: `tile s-${st.state}`, "data-station": st.id, "data-state": st.state },
    el("h2", {}, st.name), el("div", { class: "zone" }, `${st.zone} · ${st.id}`), el("span", { class: "state" }, t(st.state)),
    st.open_alerts ? el("span", { class: "alert-count", title: t("alerts") }, `⚠ ${st.open_alerts}`) : "",
    params.length ? table : el("p", {}, t("nodata")),
    el("div", { class: "updated" }, st.last_reading ? `${t("updated")} ${localTime(st.last_reading, true)}` : ""));
  node.onclick = () => (location.hash = `#/station/${encodeURIComponent(st.id)}`);
  return node;
}

function renderOverview() {
  const tiles = document.getElementById("tiles");
  tiles.replaceChildren(...[...stations.values()].map(tile));
}

function chartSvg(points, p) {
  const W = 460, H = 180, L = 40, B = 18;
  const now = Date.now(), from = now - 24 * 3600e3;
  const pts = points.filter(([ts]) => ts >= from);
  const lims = [p.limit_low, p.limit_high].filter((x) => x !== null && x !== undefined);
  const vals = pts.map(([, v]) => v).concat(lims);
  const lo = Math.min(0, ...vals), hi = Math.max(1, ...vals) * 1.1;
  const x = (ts) => L + ((ts - from) / (now - from)) * (W - L - 5), y = (v) => H - B - ((v - lo) / (hi - lo)) * (H - B - 5);
  const ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const add = (tag, attrs, text) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text) n.textContent = text; svg.append(n); };
  add("line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B });
  add("line", { class: "axis", x1: L, y1: 0, x2: L, y2: H - B });
  for (const v of [lo, (lo + hi) / 2, hi / 1.1]) add("text", { x: 2, y: y(v) + 3 }, fmt(v));
  for (let h = 0; h <= 24; h += 6) add("text", { x: x(from + h * 3600e3) - 12, y: H - 4 }, localTime(from + h * 3600e3).slice(0, 5));
  for (const l of lims) add("line", { class: "limit", x1: L, x2: W, y1: y(l), y2: y(l) });
  if (pts.length) add("polyline", { class: "line", points: pts.map(([ts, v]) => `${x(ts).toFixed(1)},${y(v).toFixed(1)}`).join(" ") });
  return svg;
}

async function renderDetail(id) {
  const st = stations.get(id);
  const detail = document.getElementById("detail");
  if (!st) { detail.replaceChildren(el("p", {}, id)); return; }
  const rows = st.parameters.map((p) => el("tr", {},
    el("td", {}, p.parameter), el("td", { class: exceeds(p.band) ? "over" : "" }, withUnit(fmt(p.value), p.unit)), el("td", {}, withUnit(limitText(p), p.unit)),
    el("td", {}, mult(p.ratio)), el("td", {}, t(p.status)), el("td", { class: exceeds(p.hour_band) ? "over" : "" }, withUnit(fmt(p.hour_mean), p.unit)),
    el("td", {}, p.day_completeness === null || p.day_completeness === undefined ? "–" : `${(p.day_completeness * 100).toFixed(0)} %`)));
  const table = el("table", { class: "tile" }, el("thead", {}, el("tr", {}, ...["parameter", "value", "limit", "ratio", "status", "hour", "today"].map((k) => el("th", {}, t(k))))), el("tbody", {}, ...rows));
  const back = el("a", { href: "#/" }, t("back"));
  const tx = st.transmission || {};
  const pct = tx.on_time_pct_24h === null || tx.on_time_pct_24h === undefined ? "–"
    : `${lang === "vi" ? tx.on_time_pct_24h.toFixed(1).replace(".", ",") : tx.on_time_pct_24h.toFixed(1)} %`;
  const onTime = el("p", { class: "on-time", "data-on-time": tx.on_time_pct_24h ?? "" },
    `${t("onTime")}: ${pct} (${tx.on_time_24h ?? 0} ${t("of")} ${tx.readings_24h ?? 0} ${t("readings")})`);
  const chartsBox = el("div", { class: "charts" });
  const eventsBox = el("div", { id: "events" });
  const alertsBox = el("div", { id: "alerts" });
  const notesBox = el("div", { id: "notes" });
  const addNote = el("button", { type: "button", class: "add-note" }, t("addNote"));
  addNote.onclick = () => postNote(id, notesBox).catch(showError);
  detail.replaceChildren(back, el("h2", { "data-station": st.id, class: `s-${st.state}` }, `${st.name} `, el("span", { class: "state" }, t(st.state))), onTime, table,
    el("h3", {}, t("alerts")), alertsBox, el("h3", {}, t("events")), eventsBox, el("h3", {}, t("log"), " ", addNote), notesBox, el("h3", {}, t("last24")), chartsBox);
  back.after(" · ", el("a", { class: "report-link", href: withToken(`/report?station=${encodeURIComponent(id)}`) }, lang === "vi" ? "Báo cáo tháng (in và ký)" : "Monthly report (print and sign)"));
  renderAlerts(id, alertsBox).catch(showError);
  renderNotes(id, notesBox).catch(showError);
  renderEvents(id, eventsBox).catch(showError);
  const from = Date.now() - 24 * 3600e3;
  for (const p of st.parameters) {
    const box = el("div", { class: "chart", "data-param": p.parameter }, el("h3", {}, `${p.parameter} (${p.unit})`));
    chartsBox.append(box);
    let points = [], after = 0;
    for (let page = 0; page < 20; page++) {
      const r = await api(`/api/readings?station=${encodeURIComponent(id)}&parameter=${encodeURIComponent(p.parameter)}&from=${from}&after=${after}&limit=10000`);
      points = points.concat(r.readings.filter((x) => x.status === "measuring").map((x) => [x.ts, x.value]));
      if (!r.next_after) break;
      after = r.next_after;
    }
    points.sort((a, b) => a[0] - b[0]);
    charts.set(p.parameter, points);
    box.append(chartSvg(points, p));
  }
}

// The plant's open compliance events: since when, which parameter, single readings or window means, peak multiple.
async function renderEvents(id, box) {
  const r = await api(`/api/events?station=${encodeURIComponent(id)}&open=true`);
  if (!r.events.length) { box.replaceChildren(el("p", {}, t("noevents"))); return; }
  const rows = r.events.map((e) => el("tr", { "data-event": e.id },
    el("td", {}, e.parameter), el("td", {}, t(e.scope === "instant" ? "instant" : "window")), el("td", {}, localTime(e.start, true)),
    el("td", { class: "over" }, e.peak_ratio === null ? bandText(e.peak_band) : `${mult(e.peak_ratio)} (${bandText(e.peak_band)})`)));
  box.replaceChildren(el("table", { class: "tile" },
    el("thead", {}, el("tr", {}, ...["parameter", "scope", "since", "peak"].map((k) => el("th", {}, t(k))))), el("tbody", {}, ...rows)));
}

// The plant's open alerts; an operator acknowledges one with a comment (the call is audited).
async function renderAlerts(id, box) {
  const r = await api(`/api/alerts?station=${encodeURIComponent(id)}&state=open`);
  if (!r.alerts.length) { box.replaceChildren(el("p", {}, t("noevents"))); return; }
  const rows = r.alerts.map((a) => {
    // Observation times: since = first bad observation, last bad = the latest; the value is the latest observation.
    const d = a.detail || {};
    const p = a.peak || {};
    const words = alertWords(a);
    const what = d.ratio !== null && d.ratio !== undefined ? `${withUnit(fmt(d.value), d.unit)} · ${mult(d.ratio)} (${bandText(d.band)})` : words.note;
    const peak = p.ratio !== null && p.ratio !== undefined ? `${withUnit(fmt(p.value), p.unit)} · ${mult(p.ratio)}` : "";
    const action = el("td", {});
    if (a.state === "raised") {
      const b = el("button", { type: "button", class: "ack" }, t("ack"));
      b.onclick = () => acknowledge(a.id, box, id).catch(showError);
      action.append(b);
    } else if (a.acked_by) {
      action.append(`${a.acked_by}: ${a.ack_comment || ""}`);
    }
    return el("tr", { "data-alert": a.id, "data-state": a.state, "data-kind": a.kind, class: a.severity === "violation" ? "over" : "" },
      el("td", {}, t(`k_${a.kind}`)), el("td", {}, words.subject), el("td", { class: "alert-since" }, localTime(a.since, true),
        a.late ? el("span", { class: "alert-late" }, ` (${t("late")})`) : ""),
      el("td", { class: "alert-value" }, what), el("td", { class: "alert-peak" }, peak),
      el("td", { class: "alert-last-bad" }, localTime(a.last_bad, true)),
      el("td", { class: "alert-state" }, t(a.state)), action);
  });
  box.replaceChildren(el("table", { class: "tile" },
    el("thead", {}, el("tr", {}, ...["kind", "parameter", "since", "value", "peak", "lastBad", "state", ""].map((k) => el("th", {}, k ? t(k) : "")))), el("tbody", {}, ...rows)));
}

// POST a JSON body as an operator: asks for the operator's token once when the call is refused. True when done.
async function postAsOperator(path, body) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const r = await fetch(path, { method: "POST",
      headers: Object.assign({ "content-type": "application/json" }, token() ? { authorization: `Bearer ${token()}` } : {}),
      body: JSON.stringify(body) });
    if (r.status === 401 || r.status === 403) {
      const v = prompt(t("ackToken"));
      if (!v) return false;
      localStorage.setItem("quantrac.token", v.trim());
      continue;
    }
    if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.json().catch(() => ({}))).error || ""}`);
    return true;
  }
  return false;
}

async function acknowledge(alertId, box, stationId) {
  const comment = prompt(t("ackComment"));
  if (!comment || !comment.trim()) return;
  await postAsOperator(`/api/alerts/${alertId}/ack`, { comment });
  await renderAlerts(stationId, box);
}

// The station log: operators' notes, newest first (GET /api/notes); an operator adds one.
async function renderNotes(id, box) {
  const r = await api(`/api/notes?station=${encodeURIComponent(id)}&limit=50`);
  if (!r.notes.length) { box.replaceChildren(el("p", {}, t("noNotes"))); return; }
  const rows = r.notes.map((n) => el("tr", { "data-note": n.id },
    el("td", { class: "note-time" }, localTime(n.at, true)), el("td", { class: "note-who" }, n.who), el("td", { class: "note-text" }, n.text)));
  box.replaceChildren(el("table", { class: "tile notes" },
    el("thead", {}, el("tr", {}, ...["time", "who", "text"].map((k) => el("th", {}, t(k))))), el("tbody", {}, ...rows)));
}

async function postNote(id, box) {
  const text = prompt(t("noteText"));
  if (!text || !text.trim()) return;
  await postAsOperator(`/api/stations/${encodeURIComponent(id)}/note`, { text });
  await renderNotes(id, box);
}

// State of every alert the dashboard has seen: an update that only moves an open alert's value, peak or last bad
// observation changes no count, so it does not cost a recount.
const alertStates = new Map();

function onAlerts(items) {
  const stateChanged = items.some((a) => alertStates.get(a.id) !== a.state);
  for (const a of items) alertStates.set(a.id, a.state);
  const open = openedStation();
  const box = document.getElementById("alerts");
  if (open && box && items.some((a) => a.station === open)) renderAlerts(open, box).catch(showError);
  if (!stateChanged) return;
  // Open-alert counts per plant for the tiles (alerts are rare: recount from the API).
  api("/api/alerts?state=open&limit=1000").then((r) => {
    const counts = new Map();
    for (const a of r.alerts) { counts.set(a.station, (counts.get(a.station) || 0) + 1); alertStates.set(a.id, a.state); }
    const touched = new Set();
    for (const st of stations.values()) {
      const n = counts.get(st.id) || 0;
      if ((st.open_alerts || 0) !== n) { st.open_alerts = n; touched.add(st.id); }
    }
    refresh(touched);
  }).catch(showError);
}

function route() {
  const m = location.hash.match(/^#\/station\/(.+)$/);
  document.getElementById("overview").hidden = !!m;
  document.getElementById("detail").hidden = !m;
  charts.clear();
  if (m) renderDetail(decodeURIComponent(m[1])).catch(showError); else renderOverview();
}

function showError(e) { const n = document.getElementById("error"); n.hidden = false; n.textContent = String(e); }

function openedStation() { const m = location.hash.match(/^#\/station\/(.+)$/); return m ? decodeURIComponent(m[1]) : null; }

function onReadings(items) {
  const touched = new Set();
  for (const r of items) {
    const st = stations.get(r.station);
    if (!st) continue;
    let p = st.parameters.find((x) => x.parameter === r.parameter);
    if (!p) { p = { parameter: r.parameter }; st.parameters.push(p); }
    if (p.ts && p.ts > r.ts) continue;
    Object.assign(p, { ts: r.ts, value: r.value, unit: r.unit, status: r.status, band: r.band, ratio: r.ratio, limit_low: r.limit_low, limit_high: r.limit_high });
    st.last_reading = Math.max(st.last_reading || 0, r.ts);
    touched.add(r.station);
    if (openedStation() === r.station && r.status === "measuring" && charts.has(r.parameter)) charts.get(r.parameter).push([r.ts, r.value]);
  }
  refresh(touched);
}

function onWindows(items) {
  const touched = new Set();
  for (const w of items) {
    const st = stations.get(w.station);
    const p = st && st.parameters.find((x) => x.parameter === w.parameter);
    if (!p) continue;
    if (w.window_ms === windowMs && (!p.hour_start || w.window_start >= p.hour_start)) Object.assign(p, { hour_start: w.window_start, hour_mean: w.mean, hour_band: w.band, hour_completeness: w.completeness });
    if (w.window_ms === 86400000 && (!p.day_start || w.window_start >= p.day_start)) Object.assign(p, { day_start: w.window_start, day_completeness: w.completeness });
    touched.add(w.station);
  }
  refresh(touched);
}

function onStatus(items) {
  const touched = new Set();
  for (const s of items) { const st = stations.get(s.id); if (st && st.state !== s.state) { st.state = s.state; touched.add(s.id); } }
  refresh(touched);
}

let chartTimer = null;
function refresh(touched) {
  if (!touched.size) return;
  const open = openedStation();
  if (!open) {
    const tiles = document.getElementById("tiles");
    for (const id of touched) { const old = tiles.querySelector(`[data-station="${CSS.escape(id)}"]`); if (old) old.replaceWith(tile(stations.get(id))); }
  } else if (touched.has(open) && !chartTimer) {
    // Redraw the plant page at most once a second.
    chartTimer = setTimeout(() => { chartTimer = null; redrawDetail(open); }, 1000);
  }
}

function redrawDetail(id) {
  const st = stations.get(id);
  if (!st) return;
  const detail = document.getElementById("detail");
  const h2 = detail.querySelector("h2");
  if (h2) { h2.className = `s-${st.state}`; h2.querySelector(".state").textContent = t(st.state); }
  const body = detail.querySelector("tbody");
  if (body) body.querySelectorAll("tr").forEach((tr, i) => {
    const p = st.parameters[i];
    if (!p) return;
    tr.children[1].textContent = withUnit(fmt(p.value), p.unit); tr.children[1].className = exceeds(p.band) ? "over" : "";
    tr.children[2].textContent = withUnit(limitText(p), p.unit);
    tr.children[3].textContent = mult(p.ratio); tr.children[4].textContent = t(p.status); tr.children[5].textContent = withUnit(fmt(p.hour_mean), p.unit);
  });
  for (const box of detail.querySelectorAll(".chart")) {
    const p = st.parameters.find((x) => x.parameter === box.dataset.param);
    const svg = box.querySelector("svg");
    if (p && svg && charts.has(p.parameter)) svg.replaceWith(chartSvg(charts.get(p.parameter), p));
  }
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource(withToken("/api/stream"));
  es.onopen = () => { conn.className = "conn on"; conn.dataset.i18n = "online"; conn.textContent = t("online"); };
  es.onerror = () => { conn.className = "conn off"; conn.dataset.i18n = "offline"; conn.textContent = t("offline"); };
  es.addEventListener("readings", (e) => onReadings(JSON.parse(e.data)));
  es.addEventListener("windows", (e) => onWindows(JSON.parse(e.data)));
  es.addEventListener("status", (e) => onStatus(JSON.parse(e.data)));
  es.addEventListener("alerts", (e) => onAlerts(JSON.parse(e.data)));
  es.addEventListener("lagged", () => load().catch(showError));
}

async function load() {
  const r = await api("/api/stations");
  offsetS = r.utc_offset_s;
  windowMs = r.averaging_window_ms || windowMs;
  stations = new Map(r.stations.map((s) => [s.id, s]));
  route();
}

document.getElementById("lang").onclick = () => { lang = lang === "vi" ? "en" : "vi"; localStorage.setItem("quantrac.lang", lang); applyLang(); route(); };
window.addEventListener("hashchange", route);
setInterval(() => (document.getElementById("clock").textContent = localTime(Date.now())), 1000);
applyLang();
load().then(connect).catch(showError);
