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
    log: "Nhật ký trạm", noNotes: "Chưa có ghi chú", addNote: "Thêm ghi chú", noteText: "Ghi chú (ví dụ: đã vệ sinh thiết bị phân tích):", who: "Người ghi", text: "Nội dung", time: "Thời điểm",
    navOverview: "Toàn tỉnh", navAlarms: "Cảnh báo", navAdmin: "Tài khoản", sortBy: "Sắp xếp theo", sort_id: "Mã trạm", sort_state: "Trạng thái (xấu nhất trước)",
    sort_since: "Thời điểm bắt đầu sự cố (lâu nhất trước)", sort_worst: "Hệ số vượt lớn nhất", sort_completeness: "Độ đầy đủ dữ liệu hôm nay (thấp nhất trước)",
    alarmsTitle: "Cảnh báo và vượt ngưỡng – toàn tỉnh", plant: "Trạm", all: "Tất cả", severity: "Mức độ", sev_technical: "Kỹ thuật",
    sev_warning: "Cảnh báo", sev_violation: "Vi phạm", open: "Đang mở", withdrawn: "Đã rút lại", from: "Từ ngày", to: "Đến ngày",
    prev: "← Trang trước", next: "Trang sau →", page: "Trang", results: "kết quả", history: "Lịch sử", deliveries: "Thông báo đã gửi",
    revisions: "Tính lại khi dữ liệu đến muộn", channel: "Kênh", change: "Thay đổi", delivery: "Tình trạng gửi", attempts: "Số lần gửi",
    noDeliveries: "Không có thông báo", noRevisions: "Chưa tính lại lần nào", noAlarms: "Không có cảnh báo phù hợp", reason: "Lý do",
    ended: "Kết thúc", filter: "Lọc", ackedBy: "Xác nhận bởi", before: "Trước", after: "Sau",
    d_pending: "đang chờ", d_delivered: "đã gửi", d_failed: "thất bại", c_raised: "phát cảnh báo", c_escalated: "nâng mức",
    c_renotify: "nhắc lại", c_cleared: "kết thúc", c_late: "tóm tắt dữ liệu đến muộn" },
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
    log: "Station log", noNotes: "No notes yet", addNote: "Add a note", noteText: "Note (e.g. analyser cleaned):", who: "By", text: "Note", time: "Time",
    navOverview: "Province", navAlarms: "Alarms", navAdmin: "Accounts", sortBy: "Sort by", sort_id: "Station id", sort_state: "State (worst first)",
    sort_since: "Trouble since (oldest first)", sort_worst: "Worst multiple", sort_completeness: "Data today (lowest first)",
    alarmsTitle: "Alarms and exceedances – all plants", plant: "Plant", all: "All", severity: "Severity", sev_technical: "Technical",
    sev_warning: "Warning", sev_violation: "Violation", open: "Open", withdrawn: "Withdrawn", from: "From", to: "To",
    prev: "← Previous", next: "Next →", page: "Page", results: "results", history: "History", deliveries: "Notifications",
    revisions: "Re-derived after late data", channel: "Channel", change: "Change", delivery: "Delivery", attempts: "Attempts",
    noDeliveries: "No notifications", noRevisions: "Never re-derived", noAlarms: "No matching alerts", reason: "Reason",
    ended: "Ended", filter: "Filter", ackedBy: "Acknowledged by", before: "Before", after: "After",
    d_pending: "pending", d_delivered: "delivered", d_failed: "failed", c_raised: "raised", c_escalated: "escalated",
    c_renotify: "reminder", c_cleared: "cleared", c_late: "late-data summary" },
};
const STATES = ["violation", "fault", "silent", "warning", "compliant"];
let lang = localStorage.getItem("quantrac.lang") || "vi";
let offsetS = 7 * 3600;
let windowMs = 3600000; // the averaging window whose means judge violations
let stations = new Map();
let charts = new Map(); // parameter -> points [ts, value] for the open station

const t = (k) => (T[lang] && T[lang][k]) || k;
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

// GET a JSON API path with the session cookie (accounts.js); unauthorised, the page shows the sign-in form.
async function api(path) {
  await adoptStoredToken();
  const r = await fetch(path);
  if (r.status === 401) {
    // Already on the sign-in page (a bookmark, a reload): no hash change will show it, so show it here.
    if (/^#\/login/.test(location.hash)) route(); else location.hash = "#/login";
    throw new Error(at("needSignIn"));
  }
  if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.json().catch(() => ({}))).error || ""}`);
  return r.json();
}

function applyLang() {
  document.documentElement.lang = lang;
  document.getElementById("lang").textContent = lang === "vi" ? "EN" : "VI";
  document.querySelectorAll("[data-i18n]").forEach((n) => (n.textContent = t(n.dataset.i18n)));
  const sort = document.getElementById("sort");
  sort.replaceChildren(...SORTS.map((k) => el("option", { value: k }, t(`sort_${k}`))));
  sort.value = sortKey;
  renderLegend();
  renderWho();
}

// Stations per state at the top of the overview.
function renderLegend() {
  const counts = new Map(STATES.map((s) => [s, 0]));
  for (const st of stations.values()) counts.set(st.state, (counts.get(st.state) || 0) + 1);
  document.getElementById("legend").replaceChildren(...STATES.map((s) => el("span", { class: "state-count", "data-state": s, "data-count": counts.get(s) },
    el("span", { class: `dot s-${s}` }), `${t(s)}: `, el("b", {}, String(counts.get(s))))));
}

// What the overview sorts by. A station without the value (no open alert, no reading yet) comes last in every order.
const SORTS = ["id", "state", "since", "worst", "completeness"];
let sortKey = localStorage.getItem("quantrac.sort") || "id";
const numbers = (xs) => xs.filter((x) => typeof x === "number");
// The largest multiple of a limit among the latest readings.
const worstOf = (st) => { const r = numbers(st.parameters.map((p) => p.ratio)); return r.length ? Math.max(...r) : null; };
// The least complete parameter today.
const completenessOf = (st) => { const c = numbers(st.parameters.map((p) => p.day_completeness)); return c.length ? Math.min(...c) : null; };
const SORT_VALUE = {
  state: (st) => STATES.indexOf(st.state),
  since: (st) => st.open_since ?? null, // the oldest open alert's start: in trouble longest first
  worst: (st) => { const w = worstOf(st); return w === null ? null : -w; },
  completeness: completenessOf,
};
function sortedStations() {
  const all = [...stations.values()];
  const value = SORT_VALUE[sortKey];
  if (!value) return all; // by id, as the API lists them
  const v = new Map(all.map((st) => [st.id, value(st)]));
  const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  return all.sort((a, b) => {
    const x = v.get(a.id), y = v.get(b.id);
    if (x === y) return byId(a, b);
    if (x === null) return 1;
    if (y === null) return -1;
    return x - y;
  });
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
  const node = el("article", { class: `tile s-${st.state}`, "data-station": st.id, "data-state": st.state,
    "data-since": st.open_since ?? "", "data-worst": worstOf(st) ?? "", "data-completeness": completenessOf(st) ?? "" },
    el("h2", {}, st.name), el("div", { class: "zone" }, `${st.zone} · ${st.id}`), el("span", { class: "state" }, t(st.state)),
    st.open_alerts ? el("span", { class: "alert-count", title: t("alerts") }, `⚠ ${st.open_alerts}`) : "",
    params.length ? table : el("p", {}, t("nodata")),
    el("div", { class: "updated" }, st.last_reading ? `${t("updated")} ${localTime(st.last_reading, true)}` : ""));
  node.onclick = () => (location.hash = `#/station/${encodeURIComponent(st.id)}`);
  return node;
}

function renderOverview() {
  const tiles = document.getElementById("tiles");
  tiles.replaceChildren(...sortedStations().map(tile));
  renderLegend();
  renderMap();
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
  onTime.after(transmissionBox(id));
  back.after(" · ", el("a", { class: "report-link", href: `/report?station=${encodeURIComponent(id)}` }, lang === "vi" ? "Báo cáo tháng (in và ký)" : "Monthly report (print and sign)"));
  renderAlerts(id, alertsBox).catch(showError);
  renderNotes(id, notesBox).catch(showError);
  renderEvents(id, eventsBox).catch(showError);
  const from = Date.now() - 24 * 3600e3;
  for (const p of st.parameters) {
    const box = el("div", { class: "chart", "data-param": p.parameter }, el("h3", {}, `${p.parameter} (${p.unit}) `, historyLink(id, p.parameter)));
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

// A link to the parameter's history view (history.js), any range.
function historyLink(id, parameter) {
  return el("a", { class: "history-link", "data-param": parameter, href: historyHref(id, parameter) }, t("history"));
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

// POST a JSON body as an operator, with the session's CSRF token. When the call is refused (not signed in, or too
// low a role) it asks once for an operator's access token and signs in with it (a session; the token is not kept).
// True when done.
async function postAsOperator(path, body) {
  await adoptStoredToken();
  for (let attempt = 0; attempt < 2; attempt++) {
    const r = await fetch(path, { method: "POST", headers: csrfHeaders(), body: JSON.stringify(body) });
    if ((r.status === 401 || r.status === 403) && attempt === 0) {
      const v = prompt(t("ackToken"));
      if (!v) return false;
      try { await signInWith({ token: v.trim() }); } catch (e) { showError(e); return false; }
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

// The alarm list of every plant (#/alarms?station=…&kind=…): filters and the page's `before` live in the hash, so a
// filtered list can be bookmarked; the server filters and pages (GET /api/alerts).
const ALARM_PAGE = 20;
const KINDS = ["exceedance", "violation", "silent", "fault", "calibration", "quality", "backlog"];
const ALERT_STATES = ["open", "raised", "acknowledged", "cleared", "withdrawn"];
const FILTERS = ["station", "parameter", "kind", "severity", "state", "from", "to"];
let alarmBack = []; // the `before` of each earlier page, for "previous"

function alarmParams() {
  const m = location.hash.match(/^#\/alarms\??(.*)$/);
  return new URLSearchParams(m ? m[1] : "");
}
function setAlarmParams(q) { location.hash = "#/alarms" + (q.toString() ? "?" + q.toString() : ""); }
// A local calendar day (YYYY-MM-DD) as the Unix ms of its start.
const dayStart = (d) => Date.UTC(+d.slice(0, 4), +d.slice(5, 7) - 1, +d.slice(8, 10)) - offsetS * 1000;

function select(name, values, label) {
  const s = el("select", { name, id: `f-${name}` }, el("option", { value: "" }, t("all")), ...values.map(([v, text]) => el("option", { value: v }, text)));
  return el("label", { class: "filter" }, t(label), " ", s);
}

function alarmFilters(q) {
  const params = [...new Set([...stations.values()].flatMap((st) => st.parameters.map((p) => p.parameter)))].sort();
  const form = el("form", { id: "alarm-filters" },
    select("station", [...stations.values()].map((st) => [st.id, st.name]), "plant"),
    select("parameter", params.map((p) => [p, p]), "parameter"),
    select("kind", KINDS.map((k) => [k, t(`k_${k}`)]), "kind"),
    select("severity", ["violation", "warning", "technical"].map((v) => [v, t(`sev_${v}`)]), "severity"),
    select("state", ALERT_STATES.map((v) => [v, t(v)]), "state"),
    el("label", { class: "filter" }, t("from"), " ", el("input", { type: "date", name: "from", id: "f-from" })),
    el("label", { class: "filter" }, t("to"), " ", el("input", { type: "date", name: "to", id: "f-to" })));
  for (const k of FILTERS) form.elements[k].value = q.get(k) || "";
  form.onchange = () => {
    const next = new URLSearchParams();
    for (const k of FILTERS) if (form.elements[k].value) next.set(k, form.elements[k].value);
    alarmBack = [];
    setAlarmParams(next);
  };
  form.onsubmit = (e) => e.preventDefault();
  return form;
}

// The API query of the hash: dates become the local day's bounds (the `to` day included).
function alarmQuery(q) {
  const api = new URLSearchParams({ limit: q.get("limit") || String(ALARM_PAGE) });
  for (const k of ["station", "parameter", "kind", "severity", "state", "before"]) if (q.get(k)) api.set(k, q.get(k));
  if (q.get("from")) api.set("from", String(dayStart(q.get("from"))));
  if (q.get("to")) api.set("to", String(dayStart(q.get("to")) + 86400e3));
  return api;
}

async function renderAlarms() {
  const box = document.getElementById("alarms");
  const q = alarmParams();
  if (!q.get("before")) alarmBack = [];
  const list = el("div", { id: "alarm-list" });
  box.replaceChildren(el("h2", {}, t("alarmsTitle")), alarmFilters(q), list);
  await fillAlarmList(list, q);
}

// The first page follows the alerts as they change (raised, acknowledged, cleared, a new value), at most once a
// second, so an officer watching it needs no reload; not while an alarm's history is open under its row, which a
// refill would close, and not on later pages, whose rows would shift under the reader.
let alarmRefill = null;
function refillAlarmsSoon() {
  const list = document.getElementById("alarm-list");
  if (!list || document.getElementById("alarms").hidden || alarmParams().get("before")) return;
  if (list.querySelector(".alarm-history-row") || alarmRefill) return;
  alarmRefill = setTimeout(() => {
    alarmRefill = null;
    if (list.isConnected && !list.querySelector(".alarm-history-row")) fillAlarmList(list, alarmParams()).catch(showError);
  }, 1000);
}

async function fillAlarmList(list, q) {
  const hash = location.hash;
  const r = await api(`/api/alerts?${alarmQuery(q)}`);
  // The officer moved on (another page or filter) while this was read.
  if (!list.isConnected || location.hash !== hash) return;
  const pager = el("div", { class: "pager" });
  const prev = el("button", { type: "button", class: "prev" }, t("prev"));
  prev.disabled = !q.get("before");
  prev.onclick = () => { const b = alarmBack.pop(); b ? q.set("before", b) : q.delete("before"); setAlarmParams(q); };
  const next = el("button", { type: "button", class: "next" }, t("next"));
  next.disabled = !r.next_before;
  next.onclick = () => { alarmBack.push(q.get("before") || ""); q.set("before", String(r.next_before)); setAlarmParams(q); };
  pager.append(prev, el("span", { class: "page", "data-page": alarmBack.length + 1, "data-total": r.total }, ` ${t("page")} ${alarmBack.length + 1} · ${r.total} ${t("results")} `), next);
  list.dataset.loaded = hash;
  list.dataset.fills = String(+(list.dataset.fills || 0) + 1);
  if (!r.alerts.length) { list.replaceChildren(el("p", {}, t("noAlarms")), pager); return; }
  const heads = ["plant", "kind", "parameter", "severity", "state", "since", "ended", "value", "", ""];
  const rows = r.alerts.map(alarmRow);
  list.replaceChildren(el("table", { class: "tile alarms" },
    el("thead", {}, el("tr", {}, ...heads.map((k) => el("th", {}, k ? t(k) : "")))), el("tbody", {}, ...rows)), pager);
}

function alarmRow(a) {
  const st = stations.get(a.station);
  const d = a.detail || {}, words = alertWords(a);
  const value = d.ratio !== null && d.ratio !== undefined ? `${withUnit(fmt(d.value), d.unit)} · ${mult(d.ratio)}` : words.note;
  const action = el("td", { class: "alarm-action" });
  if (a.state === "raised") {
    const b = el("button", { type: "button", class: "ack" }, t("ack"));
    b.onclick = () => acknowledgeFromList(a.id).catch(showError);
    action.append(b);
  } else if (a.acked_by) {
    action.append(el("span", { class: "ack-by" }, `${a.acked_by}: ${a.ack_comment || ""}`));
  }
  const hist = el("button", { type: "button", class: "history" }, t("history"));
  const cell = (label, cls, ...kids) => el("td", { "data-label": label ? t(label) : "", class: cls }, ...kids);
  const tr = el("tr", { "data-alert": a.id, "data-station": a.station, "data-kind": a.kind, "data-state": a.state,
    "data-severity": a.severity, "data-parameter": a.parameter, class: a.severity === "violation" ? "over" : "" },
    cell("plant", "alarm-plant", st ? st.name : a.station || "–"), cell("kind", "alarm-kind", t(`k_${a.kind}`)),
    cell("parameter", "alarm-subject", words.subject || "–"), cell("severity", "alarm-severity", t(`sev_${a.severity}`)),
    cell("state", "alarm-state", t(a.state)), cell("since", "alarm-since", localTime(a.since, true)),
    cell("ended", "alarm-cleared", a.cleared ? localTime(a.cleared, true) : "–"), cell("value", "alarm-value", value),
    action, cell("", "alarm-history", hist));
  hist.onclick = () => toggleHistory(a.id, tr).catch(showError);
  return tr;
}

async function acknowledgeFromList(alertId) {
  const comment = prompt(t("ackComment"));
  if (!comment || !comment.trim()) return;
  if (await postAsOperator(`/api/alerts/${alertId}/ack`, { comment })) await renderAlarms();
}

// An alert's notifications (each delivery and its attempts) and the re-derivations that changed it, under its row.
async function toggleHistory(id, tr) {
  const open = tr.nextElementSibling;
  if (open && open.classList.contains("alarm-history-row")) { open.remove(); return; }
  const h = await api(`/api/alerts/${id}/history`);
  const deliveries = h.deliveries.length ? el("table", { class: "deliveries" },
    el("thead", {}, el("tr", {}, ...["time", "channel", "change", "delivery", "attempts"].map((k) => el("th", {}, t(k))))),
    el("tbody", {}, ...h.deliveries.map((x) => el("tr", { "data-delivery": x.id },
      el("td", {}, localTime(x.created, true)), el("td", {}, x.channel), el("td", {}, t(`c_${x.change}`)),
      el("td", { title: x.last_error || "" }, t(`d_${x.status}`), x.delivered ? ` ${localTime(x.delivered, true)}` : ""),
      el("td", {}, String(x.attempts))))))
    : el("p", {}, t("noDeliveries"));
  const span = (list) => (list || []).map((x) => `${localTime(x.since, true)} → ${x.cleared ? localTime(x.cleared, true) : "…"}`).join("; ") || "–";
  const revisions = h.revisions.length ? el("ul", { class: "revisions" },
    ...h.revisions.map((r) => el("li", { "data-revision": r.id }, `${localTime(r.changed, true)} · ${r.reason} · ${t("before")}: ${span(r.old_alerts)} · ${t("after")}: ${span(r.new_alerts)}`)))
    : el("p", {}, t("noRevisions"));
  const ack = h.acked_by ? el("p", { class: "history-ack" }, `${t("ackedBy")} ${h.acked_by} (${localTime(h.acked_at, true)}): ${h.ack_comment || ""}`) : "";
  const box = el("div", { class: "alarm-history", "data-alert": id }, ack, el("h4", {}, t("deliveries")), deliveries, el("h4", {}, t("revisions")), revisions);
  tr.after(el("tr", { class: "alarm-history-row" }, el("td", { colspan: "10" }, box)));
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
  refillAlarmsSoon();
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
  const alarms = /^#\/alarms/.test(location.hash);
  const history = /^#\/history\//.test(location.hash);
  const login = /^#\/login/.test(location.hash), admin = /^#\/admin/.test(location.hash);
  document.getElementById("overview").hidden = !!m || alarms || history || login || admin;
  document.getElementById("detail").hidden = !m;
  document.getElementById("alarms").hidden = !alarms;
  document.getElementById("history").hidden = !history;
  document.getElementById("login").hidden = !login;
  document.getElementById("admin").hidden = !admin;
  charts.clear();
  if (login) renderLogin();
  else if (admin) renderAdmin().catch(showError);
  else if (history) renderHistory().catch(showError);
  else if (m) renderDetail(decodeURIComponent(m[1])).catch(showError);
  else if (alarms) renderAlarms().catch(showError);
  else renderOverview();
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

let chartTimer = null, sortTimer = null;
function refresh(touched) {
  if (!touched.size) return;
  const open = openedStation();
  if (!document.getElementById("overview").hidden) {
    const tiles = document.getElementById("tiles");
    for (const id of touched) { const old = tiles.querySelector(`[data-station="${CSS.escape(id)}"]`); if (old) old.replaceWith(tile(stations.get(id))); }
    renderLegend();
    refreshMap(touched);
    // A sorted overview is re-sorted at most once a second.
    if (sortKey !== "id" && !sortTimer) sortTimer = setTimeout(() => { sortTimer = null; if (!document.getElementById("overview").hidden) renderOverview(); }, 1000);
  } else if (open) if (touched.has(open) && !chartTimer) {
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

// The live stream, with the session cookie (never a token in the URL); opened again after signing in.
let eventSource = null;
function connect() {
  const conn = document.getElementById("conn");
  if (eventSource) eventSource.close();
  const es = new EventSource("/api/stream");
  eventSource = es;
  es.onopen = () => { conn.className = "conn on"; conn.dataset.i18n = "online"; conn.textContent = t("online"); };
  es.onerror = () => { conn.className = "conn off"; conn.dataset.i18n = "offline"; conn.textContent = t("offline"); };
  es.addEventListener("readings", (e) => onReadings(JSON.parse(e.data)));
  es.addEventListener("windows", (e) => onWindows(JSON.parse(e.data)));
  es.addEventListener("status", (e) => onStatus(JSON.parse(e.data)));
  es.addEventListener("alerts", (e) => onAlerts(JSON.parse(e.data)));
  es.addEventListener("lagged", () => load().catch(showError));
}

const reconnect = () => connect();

async function load() {
  const r = await api("/api/stations");
  offsetS = r.utc_offset_s;
  windowMs = r.averaging_window_ms || windowMs;
  mapSettings = r.map || null;
  stations = new Map(r.stations.map((s) => [s.id, s]));
  route();
}

document.getElementById("lang").onclick = () => { lang = lang === "vi" ? "en" : "vi"; localStorage.setItem("quantrac.lang", lang); applyLang(); route(); };
document.getElementById("sort").onchange = (e) => { sortKey = e.target.value; localStorage.setItem("quantrac.sort", sortKey); renderOverview(); };
window.addEventListener("hashchange", route);
setInterval(() => (document.getElementById("clock").textContent = localTime(Date.now())), 1000);
applyLang();
refreshSession().then(adoptStoredToken).then(load).then(connect).catch(showError);

// ── Transmission to the authorities: the plant's Circular 10 targets ([[forward.tt10]]) on its page ─────────────
// Up or down, the last transmission delay against the 5-minute deadline (Circular 10), the backlog and its oldest
// unsent reading in local time, corrections (files sent again complete after late data) and the last error.
const TX = {
  vi: { title: "Truyền dữ liệu lên cơ quan quản lý (Thông tư 10)", up: "Đang kết nối", down: "Mất kết nối", delay: "Độ trễ lần gửi gần nhất",
    deadline: "hạn", lateFiles: "tệp gửi muộn", files: "tệp", backlog: "Tồn đọng", rows: "giá trị chưa gửi", oldest: "cũ nhất từ",
    corrections: "Gửi lại (hiệu chỉnh)", lastError: "Lỗi gần nhất", noError: "không có", failures: "lần lỗi liên tiếp", nothing: "chưa gửi" },
  en: { title: "Transmission to the authorities (Circular 10)", up: "Up", down: "Down", delay: "Last transmission delay",
    deadline: "deadline", lateFiles: "files sent late", files: "files", backlog: "Backlog", rows: "readings unsent", oldest: "oldest from",
    corrections: "Corrections (re-sent)", lastError: "Last error", noError: "none", failures: "failures in a row", nothing: "nothing sent yet" },
};
const txt = (k) => (TX[lang] && TX[lang][k]) || k;
// A duration in words: "42 s", "6 min 5 s", "2 h 3 min".
function durationText(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ""}`;
}
// The transmission targets of one station among its connections.
const transmissionTargets = (st) => (st && st.connections ? st.connections.filter((c) => c.transmission || /^tt10-send /.test(c.name)) : []);
// The section of the plant page, filled now and again every 5 s while the page shows this station.
function transmissionBox(id) {
  const box = el("section", { id: "transmission", class: "transmission" });
  box.hidden = true;
  const update = () => api("/api/stations")
    .then((r) => renderTransmission(box, transmissionTargets(r.stations.find((s) => s.id === id)), Date.now()))
    .catch(showError);
  renderTransmission(box, transmissionTargets(stations.get(id)), Date.now());
  update();
  const timer = setInterval(() => { if (!box.isConnected || openedStation() !== id) clearInterval(timer); else update(); }, 5000);
  return box;
}
function transmissionItem(label, value, cls) {
  return el("div", { class: `tx-item${cls ? " " + cls : ""}` }, el("span", { class: "tx-label" }, label), " ", el("span", { class: "tx-value" }, value));
}
function transmissionTarget(c, now) {
  const tr = c.transmission || {}, b = c.backlog || {};
  const name = c.name.replace(/^tt10-send /, "");
  const late = tr.last_delay_ms !== null && tr.last_delay_ms !== undefined && tr.last_delay_ms > tr.deadline_ms;
  const delay = tr.last_delay_ms === null || tr.last_delay_ms === undefined ? txt("nothing")
    : `${durationText(tr.last_delay_ms)} (${txt("deadline")} ${durationText(tr.deadline_ms || 300000)})`;
  const sent = `${tr.files ?? 0} ${txt("files")}, ${tr.late ?? 0} ${txt("lateFiles")}`;
  const oldest = b.oldest_unsent_ms === null || b.oldest_unsent_ms === undefined ? "" : `, ${txt("oldest")} ${localTime(now - b.oldest_unsent_ms, true)}`;
  const error = c.last_error
    ? `${localTime(c.last_error.at, true)}: ${c.last_error.error}${c.consecutive_failures ? ` (${c.consecutive_failures} ${txt("failures")})` : ""}`
    : txt("noError");
  return el("div", { class: `tx-target ${c.up ? "tx-up" : "tx-down"}`, "data-target": name },
    el("h4", {}, name, " ", el("span", { class: "tx-state" }, c.up ? txt("up") : txt("down"))),
    transmissionItem(txt("delay"), `${delay} · ${sent}`, late ? "tx-late" : ""),
    transmissionItem(txt("backlog"), `${b.rows_behind ?? 0} ${txt("rows")}${oldest}`, "tx-backlog"),
    transmissionItem(txt("corrections"), String(tr.corrections ?? 0), "tx-corrections"),
    transmissionItem(txt("lastError"), error, c.last_error ? "tx-error" : ""));
}
function renderTransmission(box, targets, now) {
  box.hidden = !targets.length;
  if (!targets.length) { box.replaceChildren(); return; }
  box.replaceChildren(el("h3", {}, txt("title")), ...targets.map((c) => transmissionTarget(c, now)));
}
