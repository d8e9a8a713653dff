// quantrac dashboard: signing in and out, who is signed in, and the admin page of accounts (#/admin).
// The session lives in an HttpOnly cookie the page cannot read; GET /api/session tells the page who it is and the
// CSRF token it sends (X-CSRF-Token) on every state-changing call. No token ever goes into a URL.
// Loaded before app.js; uses its helpers (el, lang, load, connect, route, showError) only when called.
"use strict";

const AT = {
  vi: { signIn: "Đăng nhập", signOut: "Đăng xuất", name: "Tên đăng nhập", password: "Mật khẩu", tokenLogin: "Hoặc đăng nhập bằng mã truy cập (token)",
    token: "Mã truy cập", refused: "Đăng nhập không thành công", anonymous: "Khách (chỉ xem)", admin: "Quản trị tài khoản",
    users: "Tài khoản", role: "Vai trò", stations: "Trạm được xem", state: "Tình trạng", active: "Đang hoạt động", disabled: "Đã khóa",
    locked: "Tạm khóa đến", disable: "Khóa", enable: "Mở khóa", reset: "Đặt lại mật khẩu", save: "Lưu", add: "Thêm tài khoản",
    newPassword: "Mật khẩu mới cho", saved: "Đã lưu", r_viewer: "Người xem", r_operator: "Vận hành", r_auditor: "Kiểm tra", r_admin: "Quản trị",
    loginTitle: "Đăng nhập hệ thống quan trắc", needSignIn: "Cần đăng nhập để xem số liệu" },
  en: { signIn: "Sign in", signOut: "Sign out", name: "User name", password: "Password", tokenLogin: "Or sign in with an access token",
    token: "Access token", refused: "Sign-in failed", anonymous: "Guest (read only)", admin: "Accounts",
    users: "Accounts", role: "Role", stations: "Stations visible", state: "State", active: "Active", disabled: "Disabled",
    locked: "Locked until", disable: "Disable", enable: "Enable", reset: "Reset password", save: "Save", add: "Add account",
    newPassword: "New password for", saved: "Saved", r_viewer: "Viewer", r_operator: "Operator", r_auditor: "Auditor", r_admin: "Admin",
    loginTitle: "Sign in to the monitoring dashboard", needSignIn: "Sign in to see the data" },
};
const at = (k) => (AT[lang] && AT[lang][k]) || k;
const ROLES = ["viewer", "operator", "auditor", "admin"];

// Who the page is: { name, role, stations, signed_in, csrf, anonymous_read }.
let me = { signed_in: false };

async function refreshSession() {
  const r = await fetch("/api/session", { cache: "no-store" });
  me = r.ok ? await r.json() : { signed_in: false };
  renderWho();
  return me;
}

// Headers for a state-changing call: JSON, and the session's CSRF token when signed in with the cookie.
function csrfHeaders(extra) {
  return Object.assign({ "content-type": "application/json" }, me.csrf ? { "x-csrf-token": me.csrf } : {}, extra || {});
}

// POST JSON to a sign-in call; the answer sets the session cookie.
async function signInWith(body) {
  const r = await fetch("/api/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const b = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(b.error || String(r.status));
  await refreshSession();
  return b;
}

// A token an older page kept in localStorage ("quantrac.token") is exchanged once for a session and forgotten.
// Every call waits for the same exchange, so none goes out without the session while it is under way.
let adopting = Promise.resolve();
function adoptStoredToken() {
  const token = localStorage.getItem("quantrac.token");
  if (token) {
    localStorage.removeItem("quantrac.token");
    adopting = signInWith({ token }).catch(showError);
  }
  return adopting;
}

async function signOut() {
  await fetch("/api/logout", { method: "POST", headers: csrfHeaders() });
  location.hash = "#/";
  location.reload();
}

// The header's corner: who is signed in and their role, with Sign out; or Sign in.
function renderWho() {
  const box = document.getElementById("who");
  if (!box) return;
  const nav = document.getElementById("nav-admin");
  if (nav) nav.hidden = !(me.signed_in && me.role === "admin");
  if (me.signed_in) {
    const out = el("button", { type: "button", id: "sign-out" }, at("signOut"));
    out.onclick = () => signOut().catch(showError);
    box.replaceChildren(el("span", { id: "who-name" }, me.name), " ", el("span", { id: "who-role", class: "who-role" }, at("r_" + me.role)), " ", out);
  } else {
    const link = el("a", { href: "#/login", id: "sign-in" }, at("signIn"));
    box.replaceChildren(me.anonymous_read ? el("span", { class: "who-role" }, at("anonymous")) : "", " ", link);
  }
}

// The sign-in page (#/login): name and password, or an access token (a kiosk screen).
function renderLogin() {
  const box = document.getElementById("login");
  const msg = el("p", { id: "login-error", class: "login-error" });
  msg.hidden = true;
  const form = el("form", { id: "login-form", class: "login-form" },
    el("h2", {}, at("loginTitle")),
    el("label", { for: "login-name" }, at("name")), el("input", { id: "login-name", name: "username", autocomplete: "username", required: "" }),
    el("label", { for: "login-password" }, at("password")), el("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: "" }),
    el("button", { type: "submit", id: "login-submit" }, at("signIn")), msg);
  const tokenForm = el("form", { id: "token-form", class: "login-form" },
    el("details", {}, el("summary", {}, at("tokenLogin")),
      el("label", { for: "login-token" }, at("token")), el("input", { id: "login-token", type: "password", autocomplete: "off", required: "" }),
      el("button", { type: "submit" }, at("signIn"))));
  const done = () => { document.getElementById("error").hidden = true; location.hash = "#/"; return load().then(reconnect); };
  const fail = (e) => { msg.hidden = false; msg.textContent = `${at("refused")}: ${e.message}`; };
  form.onsubmit = (e) => {
    e.preventDefault();
    signInWith({ name: form.querySelector("#login-name").value, password: form.querySelector("#login-password").value })
      .then(done).catch(fail);
  };
  tokenForm.onsubmit = (e) => {
    e.preventDefault();
    signInWith({ token: tokenForm.querySelector("#login-token").value }).then(done).catch(fail);
  };
  box.replaceChildren(form, tokenForm);
}

// ── The admin page (#/admin): accounts, each with its role, stations and state; add, disable, reset ──────────────
async function adminCall(path, body) {
  const r = await fetch(path, { method: "POST", headers: csrfHeaders(), body: JSON.stringify(body) });
  const b = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${path}: ${r.status} ${b.error || ""}`);
  return b;
}

function roleSelect(value, id) {
  const s = el("select", id ? { id } : {}, ...ROLES.map((r) => el("option", { value: r }, at("r_" + r))));
  s.value = value;
  return s;
}

function userRow(u) {
  const role = roleSelect(u.role);
  role.className = "user-role";
  const stations = el("input", { class: "user-stations", value: u.stations.join(",") });
  const save = el("button", { type: "button", class: "user-save" }, at("save"));
  save.onclick = () => adminCall(`/api/users/${encodeURIComponent(u.name)}`, { role: role.value, stations: stations.value })
    .then(renderAdmin).catch(showError);
  const toggle = el("button", { type: "button", class: u.disabled ? "user-enable" : "user-disable" }, at(u.disabled ? "enable" : "disable"));
  toggle.onclick = () => adminCall(`/api/users/${encodeURIComponent(u.name)}`, { disabled: !u.disabled }).then(renderAdmin).catch(showError);
  const reset = el("button", { type: "button", class: "user-reset" }, at("reset"));
  reset.onclick = () => {
    const p = prompt(`${at("newPassword")} ${u.name}:`);
    if (p) adminCall(`/api/users/${encodeURIComponent(u.name)}`, { password: p }).then(renderAdmin).catch(showError);
  };
  const state = u.disabled ? at("disabled") : u.locked_until ? `${at("locked")} ${localTime(u.locked_until, true)}` : at("active");
  return el("tr", { "data-user": u.name, "data-disabled": String(u.disabled) },
    el("td", { class: "user-name" }, u.name), el("td", {}, role), el("td", {}, stations),
    el("td", { class: "user-state" }, state), el("td", { class: "user-actions" }, save, " ", toggle, " ", reset));
}

function addUserForm() {
  const f = el("form", { id: "add-user", class: "add-user" },
    el("h3", {}, at("add")),
    el("input", { id: "new-name", placeholder: at("name"), required: "" }), roleSelect("viewer", "new-role"),
    el("input", { id: "new-stations", placeholder: "BN_KCNTS_*" }),
    el("input", { id: "new-password", type: "password", placeholder: at("password"), autocomplete: "new-password", required: "" }),
    el("button", { type: "submit", id: "new-submit" }, at("add")));
  f.onsubmit = (e) => {
    e.preventDefault();
    const stations = f.querySelector("#new-stations").value.trim();
    adminCall("/api/users", { name: f.querySelector("#new-name").value, role: f.querySelector("#new-role").value,
      stations: stations || "*", password: f.querySelector("#new-password").value }).then(renderAdmin).catch(showError);
  };
  return f;
}

async function renderAdmin() {
  const box = document.getElementById("admin");
  const r = await fetch("/api/users");
  if (!r.ok) throw new Error(`/api/users: ${r.status} ${(await r.json().catch(() => ({}))).error || ""}`);
  const { users } = await r.json();
  const head = el("tr", {}, ...["name", "role", "stations", "state", ""].map((k) => el("th", {}, k ? at(k) : "")));
  box.replaceChildren(el("h2", {}, at("admin")),
    el("table", { class: "tile users", id: "users" }, el("thead", {}, head), el("tbody", {}, ...users.map(userRow))),
    addUserForm());
}
