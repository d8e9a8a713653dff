//! Dashboard accounts against the quantrac binary: `quantrac user` bootstraps an admin (before and while the daemon
//! runs), sign-in and sign-out, wrong passwords and the lockout with their audit rows, CSRF refusal of
//! cookie-authenticated calls, a scoped account's session, the event stream on the cookie alone, a disabled account's
//! session (and stream) ending, the admin page in Chromium, config and CLI errors, and no password or session id in
//! the daemon's log.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use support::browser::Browser;
use support::config::ConfigBuilder;
use support::daemon::stations;
use support::stream::Quantrac;

const ADMIN_PASSWORD: &str = "Quan-tri-2026!";
const LAN_PASSWORD: &str = "lan-van-hanh-01";
const BINH_PASSWORD: &str = "binh-kiem-tra-77";
const TS: &str = "BN_KCNTS_NUOC01";

/// The first admin, `chi`, made with `quantrac user add` (before or while the daemon runs): its output.
fn add_admin(config: &Path) -> String {
    let (code, out, err) = support::user_cli(
        config,
        &["add", "chi", "--role", "admin"],
        &format!("{ADMIN_PASSWORD}\n"),
    );
    assert_eq!(code, 0, "{out}{err}");
    out
}

fn write_config(dir: &Path, http: &str) -> std::path::PathBuf {
    let config = dir.join("quantrac.toml");
    ConfigBuilder::new()
        .http(http)
        .section(&stations(60, &[]))
        .write(&config);
    config
}

/// A client that keeps one session cookie by hand (what a browser does), and sends the CSRF token when told to.
struct Session {
    base: String,
    client: reqwest::Client,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Session {
    fn new(base: &str) -> Session {
        Session {
            base: base.to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            cookie: None,
            csrf: None,
        }
    }

    /// Sign in; the answer's status, its `Set-Cookie` and its body.
    async fn login(&mut self, name: &str, password: &str) -> (u16, Option<String>, Value) {
        let r = self
            .client
            .post(format!("{}/api/login", self.base))
            .json(&json!({ "name": name, "password": password }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let set = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = r.json().await.unwrap();
        if status == 200 {
            self.cookie = set
                .as_ref()
                .map(|c| c.split(';').next().unwrap().to_string());
            self.csrf = body["csrf"].as_str().map(String::from);
        }
        (status, set, body)
    }

    fn request(&self, method: reqwest::Method, path: &str, csrf: bool) -> reqwest::RequestBuilder {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            rb = rb.header("cookie", c);
        }
        if let (true, Some(t)) = (csrf, &self.csrf) {
            rb = rb.header("x-csrf-token", t);
        }
        rb
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::GET, path, false)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value, csrf: bool) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::POST, path, csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

async fn audit_details(admin: &Session) -> Vec<String> {
    let (status, audit) = admin.get("/api/audit?limit=1000").await;
    assert_eq!(status, 200, "{audit}");
    audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{}",
                r["who"].as_str().unwrap(),
                r["action"].as_str().unwrap(),
                r["detail"].as_str().unwrap()
            )
        })
        .collect()
}

/// Read the stream until `want` is in what arrived, or it ends (None), at most `limit`.
async fn read_stream(resp: &mut reqwest::Response, want: &str, limit: Duration) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut seen = String::new();
    loop {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Err(_) => return Some(false),
            Ok(Ok(Some(bytes))) => {
                seen.push_str(&String::from_utf8_lossy(&bytes));
                if seen.contains(want) {
                    return Some(true);
                }
            }
            Ok(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_csrf_lockout_scopes_streams_and_the_cli_with_nothing_secret_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[http.accounts]\nmax_failed_logins = 3\nlockout = \"1h\"\n",
    );
    // The first admin, before the daemon has ever run: the CLI creates the ledger.
    let out = add_admin(&config);
    assert_eq!(out.trim(), "added chi (admin, stations *)");
    let mut q = Quantrac::start(&config);
    let base = q.http();
    assert!(support::http_ready(&base, Duration::from_secs(60)).await);
    // A scoped operator, added while the daemon runs (it holds the writer lock).
    let (code, out, err) = support::user_cli(
        &config,
        &[
            "add",
            "lan",
            "--role",
            "operator",
            "--stations",
            "BN_KCNTS_*",
        ],
        &format!("{LAN_PASSWORD}\n"),
    );
    assert_eq!(code, 0, "{out}{err}");

    // Without a session or token: 401 (no anonymous reading here).
    let anonymous = Session::new(&base);
    assert_eq!(anonymous.get("/api/stations").await.0, 401);
    assert_eq!(anonymous.get("/api/session").await.1["signed_in"], false);

    // The admin signs in: the cookie's attributes, who the session is.
    let mut admin = Session::new(&base);
    let (status, set, body) = admin.login("chi", ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let set = set.unwrap();
    assert!(set.starts_with("quantrac_session="), "{set}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} missing in {set}");
    }
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    let (_, me) = admin.get("/api/session").await;
    assert_eq!(me["name"], "chi");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["stations"], json!(["*"]));
    assert_eq!(me["csrf"], json!(admin.csrf.clone().unwrap()));
    assert_eq!(admin.get("/api/stations").await.0, 200);

    // The scoped operator's session reports the scope (the handlers filter by it).
    let mut lan = Session::new(&base);
    assert_eq!(lan.login("lan", LAN_PASSWORD).await.0, 200);
    let (_, me) = lan.get("/api/session").await;
    assert_eq!(
        (me["name"].clone(), me["role"].clone()),
        (json!("lan"), json!("operator"))
    );
    assert_eq!(me["stations"], json!(["BN_KCNTS_*"]));

    // CSRF: a cookie-authenticated note without the header is refused with a sentence; with it, written.
    let note = format!("/api/stations/{TS}/note");
    let (status, body) = lan
        .post(&note, json!({ "text": "đã vệ sinh đầu đo" }), false)
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("X-CSRF-Token"),
        "{body}"
    );
    let (status, body) = lan
        .post(&note, json!({ "text": "đã vệ sinh đầu đo" }), true)
        .await;
    assert_eq!(status, 201, "{body}");

    // The event stream on the cookie alone (no token in the URL): it sends plant states.
    let mut stream = lan
        .request(reqwest::Method::GET, "/api/stream", false)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        read_stream(&mut stream, "event: status", Duration::from_secs(15)).await,
        Some(true)
    );

    // An account added from the admin API (CSRF token sent), then wrong passwords up to the lockout.
    let (status, body) = admin
        .post("/api/users", json!({ "name": "binh", "role": "auditor", "stations": "BN_KCNQV_*", "password": BINH_PASSWORD }), true)
        .await;
    assert_eq!(status, 201, "{body}");
    let mut binh = Session::new(&base);
    let (status, _, refused) = binh.login("binh", "not-the-password").await;
    assert_eq!(status, 401);
    let (status, _, unknown) = binh.login("nobody", "not-the-password").await;
    assert_eq!(status, 401);
    assert_eq!(
        refused, unknown,
        "the answer must not tell whether the account exists"
    );
    for _ in 0..2 {
        assert_eq!(binh.login("binh", "still-not-it").await.0, 401);
    }
    let (status, _, locked) = binh.login("binh", BINH_PASSWORD).await;
    assert_eq!(
        (status, &locked),
        (401, &refused),
        "locked: the right password is refused the same way"
    );
    let audit = audit_details(&admin).await;
    for line in [
        "binh|POST /api/login|sign-in refused: wrong password (1 of 3)",
        "binh|POST /api/login|sign-in refused: wrong password (3 of 3)",
        "binh|POST /api/login|account locked for 1h after 3 failed sign-ins",
        "binh|POST /api/login|sign-in refused: the account is locked",
        "nobody|POST /api/login|sign-in refused: no such user",
        "chi|POST /api/users|added user binh with role auditor and stations BN_KCNQV_*",
        "chi|POST /api/login|signed in",
    ] {
        assert!(
            audit.iter().any(|a| a == line),
            "{line:?} not in the audit: {audit:#?}"
        );
    }
    // The command line recovers the locked account; nothing secret is printed.
    let (code, out, err) = support::user_cli(&config, &["reset", "binh"], "binh-mat-khau-moi\n");
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("binh-mat-khau-moi") && !err.contains("binh-mat-khau-moi"));
    assert_eq!(binh.login("binh", "binh-mat-khau-moi").await.0, 200);
    let (_, list, _) = support::user_cli(&config, &["list"], "");
    assert!(list.contains("binh\tauditor\tBN_KCNQV_*\tactive"), "{list}");

    // Disabling lan ends the session and the open stream at once (within the stream's 5 s check).
    let (status, body) = admin
        .post("/api/users/lan", json!({ "disabled": true }), true)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        read_stream(&mut stream, "\u{0}never", Duration::from_secs(15)).await,
        None,
        "the stream did not end"
    );
    assert_eq!(lan.get("/api/stations").await.0, 401);
    assert_eq!(lan.get("/api/session").await.1["signed_in"], false);
    assert_eq!(
        lan.login("lan", LAN_PASSWORD).await.0,
        401,
        "a disabled account cannot sign in"
    );

    // Logout ends the admin's session (the CSRF token is needed for it too).
    assert_eq!(admin.post("/api/logout", json!({}), false).await.0, 403);
    let (status, _) = admin.post("/api/logout", json!({}), true).await;
    assert_eq!(status, 200);
    assert_eq!(admin.get("/api/stations").await.0, 401);
    assert_eq!(admin.get("/api/session").await.1["signed_in"], false);

    // Neither a password nor a session id reached the log (JSON, debug level).
    q.stop();
    let log = q.log();
    assert!(log.contains("User signed in."), "the log is the daemon's");
    for secret in [
        ADMIN_PASSWORD,
        LAN_PASSWORD,
        BINH_PASSWORD,
        "binh-mat-khau-moi",
        "not-the-password",
    ] {
        assert!(!log.contains(secret), "a password is in the log");
    }
    for s in [&admin, &lan, &binh] {
        let id = s.cookie.as_ref().unwrap().split('=').nth(1).unwrap();
        assert_eq!(id.len(), 64);
        assert!(!log.contains(id), "a session id is in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_an_admin_signs_in_adds_and_disables_a_user_is_refused_without_csrf_signs_out_and_is_locked_out(
) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    add_admin(&config);
    let q = Quantrac::start(&config);
    let base = q.http();
    assert!(support::http_ready(&base, Duration::from_secs(60)).await);
    let browser = Browser::start().await;
    // Nothing to see without signing in: the page shows the sign-in form.
    browser
        .sign_in(&format!("{base}/"), "chi", ADMIN_PASSWORD)
        .await;
    // Signed in: who and the role in the header, the plants, and the live stream on the cookie (no token in a URL).
    let who = browser
        .wait_for("const n = document.getElementById('who-name'); return n && document.querySelectorAll('.tile').length === 8 && [n.textContent, document.getElementById('who-role').textContent].join('|')", Duration::from_secs(30))
        .await;
    assert_eq!(who, "chi|Quản trị");
    let stream = browser
        .wait_for(
            "return document.getElementById('conn').className === 'conn on' && eventSource.url",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(stream, format!("{base}/api/stream"));
    let urls = browser
        .eval("return performance.getEntriesByType('resource').map(e => e.name).join(' ')")
        .await;
    assert!(!urls.as_str().unwrap().contains("access_token"), "{urls}");
    assert_eq!(
        browser.eval("return document.cookie").await,
        "",
        "the session cookie is HttpOnly"
    );

    // The admin page: add a scoped viewer, then disable it.
    browser
        .eval("location.hash = '#/admin'; return true;")
        .await;
    browser
        .wait_for(
            "return !!document.querySelector('#users tr[data-user=\"chi\"]')",
            Duration::from_secs(20),
        )
        .await;
    browser
        .eval(
            "document.getElementById('new-name').value = 'mai'; document.getElementById('new-role').value = 'viewer'; \
             document.getElementById('new-stations').value = 'BN_KCNTS_*'; document.getElementById('new-password').value = 'mai-xem-so-lieu'; \
             document.getElementById('new-submit').click(); return true;",
        )
        .await;
    let added = browser
        .wait_for("const r = document.querySelector('#users tr[data-user=\"mai\"]'); return r && [r.querySelector('.user-role').value, r.querySelector('.user-stations').value, r.dataset.disabled].join('|')", Duration::from_secs(20))
        .await;
    assert_eq!(added, "viewer|BN_KCNTS_*|false");
    let mut mai = Session::new(&base);
    assert_eq!(mai.login("mai", "mai-xem-so-lieu").await.0, 200);
    assert_eq!(
        mai.get("/api/session").await.1["stations"],
        json!(["BN_KCNTS_*"])
    );
    browser
        .eval("document.querySelector('#users tr[data-user=\"mai\"] button.user-disable').click(); return true;")
        .await;
    browser
        .wait_for("const r = document.querySelector('#users tr[data-user=\"mai\"]'); return r && r.dataset.disabled === 'true'", Duration::from_secs(20))
        .await;
    assert_eq!(
        mai.get("/api/session").await.1["signed_in"],
        false,
        "disabling ends the session"
    );
    assert_eq!(mai.login("mai", "mai-xem-so-lieu").await.0, 401);

    // CSRF from the page itself: the browser sends the cookie on its own, so a state-changing call without the
    // session's X-CSRF-Token (what a forged form or script elsewhere would send) is refused; with it, it passes.
    let posted = browser
        .eval(&format!(
            "const post = (h) => {{ const x = new XMLHttpRequest(); x.open('POST', '/api/stations/{TS}/note', false); \
               x.setRequestHeader('content-type', 'application/json'); for (const k in h) x.setRequestHeader(k, h[k]); \
               x.send(JSON.stringify({{ text: 'from the page' }})); return x.status; }}; \
             const s = new XMLHttpRequest(); s.open('GET', '/api/session', false); s.send(); \
             return [post({{}}), post({{ 'x-csrf-token': JSON.parse(s.responseText).csrf }})];"
        ))
        .await;
    assert_eq!(posted, json!([403, 201]), "without and with the CSRF token");

    // Sign out: the page asks for a sign-in again, and the old session is gone.
    browser
        .eval("document.getElementById('sign-out').click(); return true;")
        .await;
    browser
        .wait_for("return !!document.getElementById('sign-in') && !!document.getElementById('login-form')", Duration::from_secs(20))
        .await;
    let me = browser
        .eval("const x = new XMLHttpRequest(); x.open('GET', '/api/session', false); x.send(); return JSON.parse(x.responseText).signed_in")
        .await;
    assert_eq!(me, false);

    // Lockout through the form: after the allowed failures the right password is refused too, with the reason.
    for _ in 0..5 {
        browser
            .eval("document.getElementById('login-name').value = 'chi'; document.getElementById('login-password').value = 'wrong-password'; \
                   document.getElementById('login-error').hidden = true; document.getElementById('login-submit').click(); return true;")
            .await;
        browser
            .wait_for(
                "return !document.getElementById('login-error').hidden",
                Duration::from_secs(20),
            )
            .await;
    }
    browser
        .eval(&format!(
            "document.getElementById('login-error').hidden = true; document.getElementById('login-password').value = {}; \
             document.getElementById('login-submit').click(); return true;",
            json!(ADMIN_PASSWORD)
        ))
        .await;
    let refused = browser
        .wait_for(
            "const m = document.getElementById('login-error'); return !m.hidden && m.textContent",
            Duration::from_secs(20),
        )
        .await;
    assert!(refused.as_str().unwrap().contains("locked"), "{refused}");
    assert_eq!(
        browser.eval("return document.getElementById('who-name') === null || document.getElementById('who-name').textContent === ''").await,
        true,
        "not signed in"
    );
}

#[test]
fn the_cli_refuses_bad_input_with_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let cases: [(&[&str], &str, &str); 6] = [
        (
            &["add", "x", "--role", "boss"],
            "long-enough-1\n",
            "unknown role \"boss\"; expected one of viewer, operator, auditor, admin",
        ),
        (
            &["add", "a b", "--role", "viewer"],
            "long-enough-1\n",
            "user name \"a b\" is not allowed",
        ),
        (
            &["add", "x", "--role", "viewer", "--stations", "BN KCN"],
            "long-enough-1\n",
            "station pattern \"BN KCN\" holds ' '",
        ),
        (
            &["add", "x", "--role", "viewer"],
            "",
            "no password given on standard input",
        ),
        (
            &["add", "x", "--role", "viewer"],
            "short\n",
            "a password needs 8 to 256 characters",
        ),
        (
            &["disable", "nobody"],
            "",
            "there is no user named \"nobody\"",
        ),
    ];
    for (args, stdin, want) in cases {
        let (code, out, err) = support::user_cli(&config, args, stdin);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let (code, _, _) = support::user_cli(
        &config,
        &["add", "x", "--role", "viewer"],
        "long-enough-1\n",
    );
    assert_eq!(code, 0);
    let (code, _, err) = support::user_cli(
        &config,
        &["add", "x", "--role", "viewer"],
        "long-enough-1\n",
    );
    assert_eq!((code, err.trim()), (2, "a user named \"x\" exists already"));
}

#[test]
fn accounts_config_errors_name_their_keys() {
    let station = "[[station]]\nid = \"BN_KCNQV_NUOC01\"\nname = \"Que Vo\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 13000\n\
        receiving_water = { type = \"river\", flow_m3_s = 120 }\nparameters = { COD = {}, pH = {} }\n";
    let errors = |accounts: &str| -> Vec<String> {
        let text = format!("[http.accounts]\n{accounts}\n{station}");
        match quantrac::config::Config::from_str(&text, Path::new("q.toml"), Path::new(".")) {
            Ok(_) => panic!("accepted: {accounts}"),
            Err(e) => e.lines(),
        }
    };
    for (accounts, want) in [
        ("session_idle = \"0s\"", "q.toml: http.accounts.session_idle: duration \"0s\" must be greater than zero"),
        ("session_lifetime = \"soon\"", "q.toml: http.accounts.session_lifetime:"),
        ("session_idle = \"2h\"\nsession_lifetime = \"1h\"", "q.toml: http.accounts.session_idle: \"2h\" is longer than http.accounts.session_lifetime (\"1h\"); a session never idles that long"),
        ("max_failed_logins = 0", "q.toml: http.accounts.max_failed_logins: 0 is not between 1 and 100"),
        ("lockout = \"-1m\"", "q.toml: http.accounts.lockout:"),
        ("session_timeout = \"1h\"", "session_timeout"),
    ] {
        let e = errors(accounts);
        assert!(e.iter().any(|l| l.contains(want)), "{accounts}: {want:?} not in {e:#?}");
    }
    let ok = format!("[http.accounts]\nsession_idle = \"20m\"\nmax_failed_logins = 4\n{station}");
    let c = quantrac::config::Config::from_str(&ok, Path::new("q.toml"), Path::new(".")).unwrap();
    assert_eq!(c.http.accounts.session_idle, Duration::from_secs(1200));
    assert_eq!(c.http.accounts.max_failed_logins, 4);
    assert_eq!(c.http.accounts.lockout, Duration::from_secs(900));
}

/// Behind TLS the session cookie is also `Secure`, so a browser never sends it over plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_tls_the_session_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    support::certs::make_certs(dir.path());
    let tls = format!(
        "tls = {{ cert_file = \"{}\", key_file = \"{}\" }}",
        dir.path().join("server.crt").display(),
        dir.path().join("server.key").display()
    );
    let config = write_config(dir.path(), &tls);
    add_admin(&config);
    let q = Quantrac::start(&config);
    let base = q.http();
    assert!(base.starts_with("https://"), "{base}");
    let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut admin = Session::new(&base);
    admin.client = client;
    let ready = support::eventually(Duration::from_secs(60), || async {
        admin
            .client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(ready);
    let (status, set, body) = admin.login("chi", ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let set = set.unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(set.contains(attribute), "{attribute} missing in {set}");
    }
    assert_eq!(admin.get("/api/session").await.1["name"], "chi");
}

/// A sign-in from `from` (a loopback address of its own): status, `Retry-After`, body.
async fn login_from(
    base: &str,
    from: [u8; 4],
    name: &str,
    password: &str,
) -> (u16, Option<u64>, Value) {
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(from))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/api/login"))
        .json(&json!({ "name": name, "password": password }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, after, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_refused_too_often_waits_before_its_next_sign_in_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[http.accounts]\nrefused_sign_ins_per_minute = 3\n",
    );
    add_admin(&config);
    let q = Quantrac::start(&config);
    let base = q.http();
    assert!(support::http_ready(&base, Duration::from_secs(60)).await);
    let guesser = [127, 0, 0, 2];
    // Three refusals (unknown names and a wrong password) use the address's allowance up.
    for (name, password) in [("nobody", "x"), ("chi", "not-it"), ("noone", "y")] {
        let (status, after, body) = login_from(&base, guesser, name, password).await;
        assert_eq!((status, after), (401, None), "{body}");
    }
    // Then every sign-in from it waits, the right password too, with how long in Retry-After (3 a minute: 20 s).
    let (status, after, body) = login_from(&base, guesser, "chi", ADMIN_PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    let after = after.expect("Retry-After");
    assert!((1..=20).contains(&after), "Retry-After {after}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("too many refused sign-ins"),
        "{body}"
    );
    // Another address is not held up, and its successful sign-ins use up nothing.
    for _ in 0..5 {
        let (status, _, body) = login_from(&base, [127, 0, 0, 3], "chi", ADMIN_PASSWORD).await;
        assert_eq!(status, 200, "{body}");
    }
    // The waiting sign-in never reached the account: the audit holds the three refusals and the sign-ins only.
    let mut admin = Session::new(&base);
    assert_eq!(admin.login("chi", ADMIN_PASSWORD).await.0, 200);
    let refusals: Vec<String> = audit_details(&admin)
        .await
        .into_iter()
        .filter(|d| d.contains("sign-in refused"))
        .collect();
    assert_eq!(refusals.len(), 3, "{refusals:?}");
}
