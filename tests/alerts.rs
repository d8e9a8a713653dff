//! Alerts end to end against real peers: readings published on a real Mosquitto reach the daemon, its alert engine
//! raises and clears, and the notifications arrive at a real SMTP server (Debian's `python3-aiosmtpd`), a local
//! HTTP webhook (HMAC-checked here), and an MQTT subscriber. A recipient that is down gets its notifications when
//! it comes back; a restart mid-incident (SIGTERM or SIGKILL) sends nothing twice and loses no clear.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use support::config::ConfigBuilder;
use support::mosquitto::Mosquitto;
use support::{eventually, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_quantrac");
const STATION: &str = "BN_KCNTS_NUOC01";
const SECRET: &str = "webhook-secret-for-tests";

/// One received webhook call.
#[derive(Debug, Clone)]
struct Call {
    headers: HeaderMap,
    body: String,
}

impl Call {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A webhook receiver on a fixed port; `up = false` answers 503 (the recipient is down).
#[derive(Clone, Default)]
struct Hook {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Hook {
    async fn serve(port: u16) -> (Hook, tokio::task::JoinHandle<()>) {
        let hook = Hook::default();
        let app = axum::Router::new()
            .route(
                "/hook",
                post(
                    |State(h): State<Hook>, headers: HeaderMap, body: String| async move {
                        h.calls.lock().unwrap().push(Call { headers, body });
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .route(
                "/reject",
                post(|| async { (StatusCode::BAD_REQUEST, "unknown format") }),
            )
            .with_state(hook.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (hook, task)
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    /// The change of every notification of `kind`, in order. Delivery is at least once: a SIGKILL between a send
    /// and its record sends that row again, with the same `X-Quantrac-Delivery` id, which receivers drop (as here).
    fn changes(&self, kind: &str) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.calls()
            .iter()
            .filter(|c| {
                seen.insert(
                    c.headers["x-quantrac-delivery"]
                        .to_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .map(Call::json)
            .filter(|j| j["kind"] == kind)
            .map(|j| j["change"].as_str().unwrap().to_string())
            .collect()
    }
}

/// A real SMTP server: aiosmtpd saving every message into a Maildir.
struct Smtp {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Smtp {
    fn start() -> Smtp {
        Smtp::start_with(&[])
    }

    /// `extra`: more aiosmtpd options, e.g. `--tlscert`/`--tlskey` for STARTTLS (then required before MAIL).
    fn start_with(extra: &[String]) -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // Debian's interpreter: python3-aiosmtpd installs into its dist-packages.
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(extra)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run python3 -m aiosmtpd: install python3-aiosmtpd (scripts/test does)");
        let up = support::wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "aiosmtpd did not listen on {port}");
        Smtp { child, port, dir }
    }
    /// Every message received, as text.
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.dir.path().join("maildir").join(sub)) {
                for e in rd.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon as a child process with its log in the test directory.
struct Quantrac {
    child: Option<Child>,
    config: PathBuf,
    http: String,
}

impl Quantrac {
    /// Start on the config's port 0 and read the address it reports (restarts append to the same log).
    async fn start(config: &Path) -> Quantrac {
        let log_path = config.with_file_name("quantrac.log");
        let from = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.with_file_name("quantrac.log"))
            .unwrap();
        let child = Command::new(BIN)
            .args(["--log", "quantrac=debug,info", "run", "--config"])
            .arg(config)
            .current_dir(config.parent().unwrap())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut q = Quantrac {
            child: Some(child),
            config: config.to_path_buf(),
            http: String::new(),
        };
        q.http = support::reported_in_log(&log_path, from, Duration::from_secs(60)).unwrap_or_else(
            || {
                panic!(
                    "quantrac did not report its HTTP address; log:\n{}",
                    q.log()
                )
            },
        );
        let ready = support::http_ready(&q.http, Duration::from_secs(60)).await;
        assert!(ready, "quantrac did not become ready; log:\n{}", q.log());
        q
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.config.with_file_name("quantrac.log")).unwrap_or_default()
    }
    fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
    fn sigterm(&mut self) {
        if let Some(c) = self.child.take() {
            support::terminate(c);
        }
    }
}

impl Drop for Quantrac {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn config(dir: &Path, mqtt_port: u16, alert: &str) -> PathBuf {
    let builder = ConfigBuilder::new()
        .http("public_url = \"http://quantrac.test\"\nanonymous_read = true")
        .section(&format!(
            r#"[[mqtt.broker]]
name = "test"
host = "127.0.0.1"
port = {mqtt_port}
client_id = "quantrac-alert-test"
keep_alive = "5s"
"#
        ))
        .section(alert)
        .section(&format!(
            r#"[[station]]
id = "{STATION}"
name = "Trạm nước thải KCN Tiên Sơn"
zone = "KCN Tiên Sơn"
profile = "qcvn40-2011-b"
design_flow_m3_day = 5000
receiving_water = {{ type = "river", flow_m3_s = 120 }}
parameters = {{ COD = {{}}, pH = {{}} }}
"#
        ));
    let path = dir.join("quantrac.toml");
    builder.write(&path);
    std::fs::create_dir_all(dir.join("profiles")).unwrap();
    for f in ["qcvn40-2011-a.toml", "qcvn40-2011-b.toml"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/profiles")
                .join(f),
            dir.join("profiles").join(f),
        )
        .unwrap();
    }
    path
}

/// Publish one COD reading stamped now (a distinct millisecond each time).
fn publish_cod(mosq: &Mosquitto, value: f64) {
    std::thread::sleep(Duration::from_millis(2)); // distinct timestamps, not synchronisation
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = format!(r#"{{"ts": "{ts}", "COD": {value}}}"#);
    mosq.publish_file(&format!("stations/{STATION}/data"), body.as_bytes());
}

fn query_i64(db: &Path, sql: &str) -> i64 {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return -1;
    };
    c.busy_timeout(Duration::from_secs(5)).ok();
    c.query_row(sql, [], |r| r.get(0)).unwrap_or(-1)
}

/// Publish pH readings until one is committed: the daemon's MQTT subscription is live.
async fn wait_subscribed(mosq: &Mosquitto, db: &Path) {
    let ok = eventually(Duration::from_secs(30), || {
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        mosq.publish_file(
            &format!("stations/{STATION}/data"),
            format!(r#"{{"ts": "{ts}", "pH": 7.1}}"#).as_bytes(),
        );
        let db = db.to_path_buf();
        async move { query_i64(&db, "SELECT COUNT(*) FROM readings") > 0 }
    })
    .await;
    assert!(ok, "no reading committed from MQTT");
}

/// Alerts, outbox and attempts as text, for failure messages.
fn dump(db: &Path) -> String {
    let Ok(c) = rusqlite::Connection::open(db) else {
        return "no ledger".into();
    };
    let mut out = String::new();
    for sql in [
        "SELECT id || ' ' || kind || ' ' || state FROM alerts",
        "SELECT id || ' ' || channel || ' ' || change || ' ' || status || ' ' || attempts || ' ' || COALESCE(last_error, '') FROM outbox",
        "SELECT seq || ' ' || value || ' ' || band FROM readings",
    ] {
        if let Ok(mut st) = c.prepare(sql) {
            let rows: Vec<String> = st
                .query_map([], |r| r.get::<_, String>(0))
                .map(|r| r.flatten().collect())
                .unwrap_or_default();
            out.push_str(&format!("\n{sql}:\n  {}", rows.join("\n  ")));
        }
    }
    out
}

fn signature_ok(call: &Call) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(call.body.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    call.headers
        .get("x-quantrac-signature")
        .and_then(|v| v.to_str().ok())
        == Some(format!("sha256={expected}").as_str())
}

/// `mosquitto_sub` printing `topic payload` lines into a file.
struct Sub {
    child: Child,
    out: PathBuf,
}

impl Sub {
    fn start(port: u16, topic: &str, out: PathBuf, extra: &[&str]) -> Sub {
        let child = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-q",
                "1",
                "-v",
                "-t",
                topic,
            ])
            .args(extra)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run mosquitto_sub: install mosquitto-clients");
        Sub { child, out }
    }
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cod_exceedance_reaches_email_webhook_and_mqtt_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let mosq = Mosquitto::start("");
    let smtp = Smtp::start();
    let hook_port = free_port();
    let (hook, _server) = Hook::serve(hook_port).await;
    let alert = format!(
        r#"[alert]
raise_after = 1
clear_after = 1

[[alert.channel]]
name = "officers-mail"
type = "email"
server = "127.0.0.1"
port = {smtp}
tls = "plain"
from = "quantrac <canhbao@quantrac.test>"
to = ["officer@stnmt.test"]

[[alert.channel]]
name = "bridge"
type = "webhook"
url = "http://127.0.0.1:{hook_port}/hook"
secret = "{SECRET}"

[[alert.channel]]
name = "broker"
type = "mqtt"
broker = "test"
topic_prefix = "quantrac/alerts"

[[alert.route]]
kinds = ["exceedance"]
channels = ["officers-mail", "bridge", "broker"]
"#,
        smtp = smtp.port,
    );
    let cfg = config(dir.path(), mosq.port, &alert);
    let sub = Sub::start(
        mosq.port,
        "quantrac/alerts/#",
        dir.path().join("sub.txt"),
        &[],
    );
    let q = Quantrac::start(&cfg).await;
    let db = dir.path().join("ledger.db");
    wait_subscribed(&mosq, &db).await;

    // COD 300 mg/L against Cmax 150 (column B, Kq 1.0, Kf 1.0): 2.0×, band 1.5–3.
    publish_cod(&mosq, 300.0);
    let raised = eventually(Duration::from_secs(20), || {
        let h = hook.clone();
        async move { h.changes("exceedance") == ["raised"] }
    })
    .await;
    assert!(
        raised,
        "webhook got {:?}; ledger: {}; log:\n{}",
        hook.calls(),
        dump(&db),
        q.log()
    );
    let call = hook
        .calls()
        .into_iter()
        .find(|c| c.json()["kind"] == "exceedance")
        .unwrap();
    assert!(signature_ok(&call), "bad signature: {:?}", call.headers);
    let j = call.json();
    assert_eq!(j["station"], STATION);
    assert_eq!(j["parameter"], "COD");
    assert_eq!(j["value"], 300.0);
    assert_eq!(j["limit_high"], 150.0);
    assert_eq!(j["multiple"], 2.0);
    assert_eq!(j["band"], "1_5_to_3");
    assert_eq!(
        j["dashboard"],
        format!("http://quantrac.test/#/station/{STATION}")
    );
    assert!(call.headers.contains_key("x-quantrac-delivery"));

    // The e-mail, in Vietnamese and English, with everything an officer needs.
    let mailed = support::wait_until(Duration::from_secs(20), || !smtp.messages().is_empty());
    assert!(mailed, "no e-mail; log:\n{}", q.log());
    let mail = smtp.messages().remove(0);
    let decoded = decode_mail(&mail);
    for needle in [
        "officer@stnmt.test",
        "CẢNH BÁO: Vượt ngưỡng (giá trị tức thời) COD – Trạm nước thải KCN Tiên Sơn",
        "ALERT: Exceedance (single reading) COD",
        "Thông số: COD = 300,0 mg/L · Giới hạn: 150,0 mg/L · Hệ số vượt: 2 lần · Mức (NĐ 45/2022): 1,5 đến dưới 3 lần",
        "Parameter: COD = 300.0 mg/L · Limit: 150.0 mg/L · Multiple: 2× · Band (Decree 45/2022): 1.5 to under 3×",
        "(UTC+07:00)",
        "http://quantrac.test/#/station/BN_KCNTS_NUOC01",
    ] {
        assert!(decoded.contains(needle), "{needle:?} not in the e-mail:\n{decoded}");
    }

    // MQTT: the notification on the station's alert topic and its retained state.
    let got = support::wait_until(Duration::from_secs(20), || {
        sub.lines().iter().any(|l| {
            l.starts_with(&format!("quantrac/alerts/{STATION}/alert ")) && l.contains("\"raised\"")
        })
    });
    assert!(got, "MQTT subscriber got {:?}", sub.lines());

    // Back under the limit (0.33×, below the 0.9 hysteresis fraction): cleared on every channel.
    publish_cod(&mosq, 50.0);
    let cleared = eventually(Duration::from_secs(20), || {
        let h = hook.clone();
        async move { h.changes("exceedance") == ["raised", "cleared"] }
    })
    .await;
    assert!(cleared, "webhook got {:?}", hook.changes("exceedance"));
    assert!(support::wait_until(Duration::from_secs(20), || smtp
        .messages()
        .len()
        == 2));
    assert!(smtp
        .messages()
        .iter()
        .any(|m| decode_mail(m).contains("ĐÃ KẾT THÚC")));
    // A subscriber arriving later sees the retained state: cleared.
    let late = Sub::start(
        mosq.port,
        &format!("quantrac/alerts/{STATION}/state/exceedance/COD"),
        dir.path().join("late.txt"),
        &["-C", "1"],
    );
    assert!(support::wait_until(Duration::from_secs(20), || {
        late.lines()
            .iter()
            .any(|l| l.contains("\"change\":\"cleared\""))
    }));

    // The API lists the alert, cleared, with its deliveries.
    let alerts: Value = reqwest::get(format!("{}/api/alerts?kind=exceedance", q.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a = &alerts["alerts"][0];
    assert_eq!(a["state"], "cleared", "{alerts}");
    let deliveries = a["deliveries"].as_array().unwrap();
    assert_eq!(
        deliveries.len(),
        6,
        "3 channels × raised, cleared: {alerts}"
    );
    assert!(
        deliveries.iter().all(|d| d["status"] == "delivered"),
        "{alerts}"
    );
}

/// The e-mail body may be quoted-printable or base64 (lettre picks per message): decode for the checks.
fn decode_mail(raw: &str) -> String {
    let (head, body) = raw
        .split_once("\n\n")
        .or_else(|| raw.split_once("\r\n\r\n"))
        .unwrap_or((raw, ""));
    let head_l = head.to_ascii_lowercase();
    let body_text = if head_l.contains("content-transfer-encoding: base64") {
        use base64::Engine;
        let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        String::from_utf8_lossy(
            &base64::engine::general_purpose::STANDARD
                .decode(clean)
                .unwrap_or_default(),
        )
        .into_owned()
    } else if head_l.contains("content-transfer-encoding: quoted-printable") {
        decode_qp(body)
    } else {
        body.to_string()
    };
    // Subject lines are RFC 2047 encoded words; decode them too.
    let subject = head
        .lines()
        .skip_while(|l| !l.to_ascii_lowercase().starts_with("subject:"))
        .take_while(|l| {
            l.to_ascii_lowercase().starts_with("subject:")
                || l.starts_with(' ')
                || l.starts_with('\t')
        })
        .collect::<Vec<_>>()
        .join("");
    format!("{head}\n{}\n\n{body_text}", decode_words(&subject))
}

fn decode_qp(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn decode_words(s: &str) -> String {
    use base64::Engine;
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("=?") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let parts: Vec<&str> = after.splitn(3, '?').collect();
        if parts.len() < 3 {
            break;
        }
        let Some(end) = parts[2].find("?=") else {
            break;
        };
        let text = &parts[2][..end];
        let decoded = if parts[1].eq_ignore_ascii_case("B") {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_or_default()
        } else {
            decode_qp(&text.replace('_', " ")).into_bytes()
        };
        out.push_str(&String::from_utf8_lossy(&decoded));
        rest = parts[2][end + 2..].trim_start();
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_recipient_catches_up_and_restarts_send_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mosq = Mosquitto::start("");
    let (up_port, down_port) = (free_port(), free_port());
    let (up, _up_server) = Hook::serve(up_port).await;
    let alert = format!(
        r#"[alert]
raise_after = 1
clear_after = 1
retry_max_backoff = "1s"

[[alert.channel]]
name = "up"
type = "webhook"
url = "http://127.0.0.1:{up_port}/hook"
secret = "{SECRET}"

[[alert.channel]]
name = "down"
type = "webhook"
url = "http://127.0.0.1:{down_port}/hook"
secret = "{SECRET}"
timeout = "2s"

[[alert.route]]
kinds = ["exceedance"]
channels = ["up", "down"]
"#
    );
    let cfg = config(dir.path(), mosq.port, &alert);
    let db = dir.path().join("ledger.db");
    let mut q = Quantrac::start(&cfg).await;
    wait_subscribed(&mosq, &db).await;

    // 1. The "down" recipient does not listen: "up" still gets the alert at once, "down" is retried.
    publish_cod(&mosq, 300.0);
    assert!(
        eventually(Duration::from_secs(20), || {
            let h = up.clone();
            async move { h.changes("exceedance") == ["raised"] }
        })
        .await,
        "up got {:?}; log:\n{}",
        up.changes("exceedance"),
        q.log()
    );
    assert!(support::wait_until(Duration::from_secs(20), || {
        query_i64(&db, "SELECT COUNT(*) FROM outbox_attempts a JOIN outbox o ON o.id = a.outbox_id WHERE o.channel = 'down' AND a.ok = 0") >= 2
    }));
    // It comes back: the pending notification arrives.
    let (down, _down_server) = Hook::serve(down_port).await;
    assert!(
        eventually(Duration::from_secs(20), || {
            let h = down.clone();
            async move { h.changes("exceedance") == ["raised"] }
        })
        .await,
        "down got {:?}",
        down.changes("exceedance")
    );
    assert!(signature_ok(&down.calls()[0]));

    // 2. SIGTERM mid-incident, restart: no second "raised"; the clear arrives once.
    q.sigterm();
    let mut q = Quantrac::start(&cfg).await;
    publish_cod(&mosq, 320.0); // still exceeding: nothing new
    publish_cod(&mosq, 50.0);
    assert!(
        eventually(Duration::from_secs(20), || {
            let (u, d) = (up.clone(), down.clone());
            async move {
                u.changes("exceedance") == ["raised", "cleared"]
                    && d.changes("exceedance") == ["raised", "cleared"]
            }
        })
        .await,
        "up {:?} down {:?}; log:\n{}",
        up.changes("exceedance"),
        down.changes("exceedance"),
        q.log()
    );

    // 3. SIGKILL after a delivered raise: no duplicate after the restart.
    publish_cod(&mosq, 310.0);
    assert!(support::wait_until(Duration::from_secs(20), || {
        query_i64(
            &db,
            "SELECT COUNT(*) FROM outbox WHERE change = 'raised' AND status = 'delivered'",
        ) == 4
    }));
    q.sigkill();
    let mut q = Quantrac::start(&cfg).await;
    // 4. The clearing reading is committed, then SIGKILL at once: the clear is not lost.
    publish_cod(&mosq, 40.0);
    assert!(support::wait_until(Duration::from_secs(20), || {
        query_i64(&db, "SELECT COUNT(*) FROM readings r JOIN parameters p ON p.id = r.parameter_id WHERE p.symbol = 'COD' AND r.value = 40.0") == 1
    }));
    q.sigkill();
    let q = Quantrac::start(&cfg).await;
    let expected = ["raised", "cleared", "raised", "cleared"];
    assert!(
        eventually(Duration::from_secs(30), || {
            let (u, d) = (up.clone(), down.clone());
            async move { u.changes("exceedance") == expected && d.changes("exceedance") == expected }
        })
        .await,
        "up {:?} down {:?}; log:\n{}",
        up.changes("exceedance"),
        down.changes("exceedance"),
        q.log()
    );
    // Every row ends delivered (a row whose send the SIGKILL interrupted before its record is sent again, with the
    // same delivery id, which the receiver drops).
    assert!(
        support::wait_until(Duration::from_secs(20), || query_i64(
            &db,
            "SELECT COUNT(*) FROM outbox WHERE status != 'delivered'"
        ) == 0),
        "{}",
        dump(&db)
    );
    // One outbox row per notification and channel: nothing was queued twice.
    assert_eq!(
        query_i64(&db, "SELECT COUNT(*) FROM outbox"),
        8,
        "{}",
        dump(&db)
    );
    assert_eq!(
        query_i64(&db, "SELECT COUNT(*) FROM alerts WHERE kind = 'exceedance'"),
        2,
        "{}",
        dump(&db)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_refusing_a_message_is_not_retried_and_holds_nothing_up() {
    let dir = tempfile::tempdir().unwrap();
    let mosq = Mosquitto::start("");
    let port = free_port();
    let (hook, _server) = Hook::serve(port).await;
    let alert = format!(
        r#"[alert]
raise_after = 1
clear_after = 1

[[alert.channel]]
name = "refusing"
type = "webhook"
url = "http://127.0.0.1:{port}/reject"

[[alert.channel]]
name = "fine"
type = "webhook"
url = "http://127.0.0.1:{port}/hook"

[[alert.route]]
kinds = ["exceedance"]
channels = ["refusing", "fine"]
"#
    );
    let cfg = config(dir.path(), mosq.port, &alert);
    let db = dir.path().join("ledger.db");
    let q = Quantrac::start(&cfg).await;
    wait_subscribed(&mosq, &db).await;
    publish_cod(&mosq, 300.0);
    publish_cod(&mosq, 50.0);
    assert!(
        eventually(Duration::from_secs(20), || {
            let h = hook.clone();
            async move { h.changes("exceedance") == ["raised", "cleared"] }
        })
        .await,
        "{:?}; log:\n{}",
        hook.changes("exceedance"),
        q.log()
    );
    // A 400 is the recipient refusing this message: recorded as failed after one attempt, the next row still sent.
    assert!(
        support::wait_until(Duration::from_secs(20), || {
            query_i64(
            &db,
            "SELECT COUNT(*) FROM outbox WHERE channel = 'refusing' AND status = 'failed' AND attempts = 1",
        ) == 2
        }),
        "{}",
        dump(&db)
    );
    assert_eq!(
        query_i64(&db, "SELECT COUNT(*) FROM outbox_attempts a JOIN outbox o ON o.id = a.outbox_id WHERE o.channel = 'refusing' AND a.error LIKE '%400 Bad Request: unknown format%'"),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_mail_goes_over_starttls_to_a_server_that_requires_it() {
    let dir = tempfile::tempdir().unwrap();
    support::certs::make_certs(dir.path());
    let f = |n: &str| dir.path().join(n).display().to_string();
    // aiosmtpd refuses MAIL before STARTTLS when given a certificate: a received message proves TLS was used.
    let smtp = Smtp::start_with(&[
        "--tlscert".into(),
        f("server.crt"),
        "--tlskey".into(),
        f("server.key"),
    ]);
    let mosq = Mosquitto::start("");
    let alert = format!(
        r#"[alert]
raise_after = 1
clear_after = 1

[[alert.channel]]
name = "mail"
type = "email"
server = "localhost"
port = {port}
tls = "starttls"
ca_file = "{ca}"
from = "quantrac <canhbao@quantrac.test>"
to = ["officer@stnmt.test"]

[[alert.route]]
kinds = ["exceedance"]
channels = ["mail"]
"#,
        port = smtp.port,
        ca = f("ca.crt"),
    );
    let cfg = config(dir.path(), mosq.port, &alert);
    let db = dir.path().join("ledger.db");
    let q = Quantrac::start(&cfg).await;
    wait_subscribed(&mosq, &db).await;
    publish_cod(&mosq, 300.0);
    let mailed = support::wait_until(Duration::from_secs(30), || !smtp.messages().is_empty());
    assert!(
        mailed,
        "no e-mail over STARTTLS; {}; log:\n{}",
        dump(&db),
        q.log()
    );
    assert!(
        decode_mail(&smtp.messages()[0]).contains("CẢNH BÁO: Vượt ngưỡng (giá trị tức thời) COD")
    );
}

/// The exceedance alerts an in-order run implies: the alert engine fed `readings` (ts, band, ratio, status) in
/// observation order, as if each had been processed when it was made. (since, raised, cleared) per alert.
fn alerts_history_implies(
    readings: &[(i64, String, Option<f64>, i64)],
) -> Vec<(i64, i64, Option<i64>)> {
    use quantrac::alert::engine::{AlertKey, Change, Detail, Engine, Kind, Observation, Rules};
    use quantrac::compliance::Band;
    let mut e = Engine::new(Rules::from_config(
        &quantrac::config::alert::Alert::default(),
    ));
    let key = AlertKey::new(STATION, "COD", Kind::Exceedance);
    let mut out: Vec<(i64, i64, Option<i64>)> = Vec::new();
    for (ts, band, ratio, status) in readings {
        let band = Band::parse(band).unwrap();
        // The runner judges exceedance on measuring readings with a limit only.
        if *status != 0 || matches!(band, Band::NoLimit | Band::NotEvaluated) {
            continue;
        }
        let detail = Detail {
            ts: *ts,
            ratio: *ratio,
            band: band.as_str().into(),
            band_severity: band.severity(),
            ..Detail::default()
        };
        let obs = Observation {
            bad: band.is_exceedance(),
            at: *ts,
            late: false,
            detail,
        };
        match e.observe(&key, *ts, obs) {
            Some(t) if t.change == Change::Raised => {
                e.set_alert_id(&key, out.len() as i64 + 1);
                out.push((t.since, t.at, None));
            }
            Some(t) if t.change == Change::Cleared => {
                if let Some(last) = out.last_mut() {
                    last.2 = Some(t.at);
                }
            }
            _ => {}
        }
    }
    out
}

/// Start-up replay: the simulator hands over 24 h of history in seconds (Tiên Sơn's COD drifts over its limit every
/// three hours), then runs live at 360× (a reading every 0.83 s, stamped with the wall clock). The alerts are those
/// the history implies, at their observation times; what the old data raised and cleared is announced in one
/// summary per station; and live breaches are notified on their own afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_replay_alerts_as_history_implies_in_one_summary_and_live_breaches_keep_alerting()
{
    let port = free_port();
    let (hook, _server) = Hook::serve(port).await;
    let started = chrono::Utc::now().timestamp_millis();
    let rest = format!(
        "[alert]\n\n[[alert.channel]]\nname = \"bridge\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
         secret = \"{SECRET}\"\n\n[[alert.route]]\nchannels = [\"bridge\"]\n\n{}",
        support::daemon::stations(360, &[(STATION, "via = \"direct\", drift = \"COD\"")])
    );
    let daemon = support::daemon::Daemon::start("anonymous_read = true", &rest).await;
    let db = daemon.ledger();
    let summaries = |station: &str| -> Vec<Value> {
        hook.calls()
            .iter()
            .map(Call::json)
            .filter(|j| j["change"] == "late" && j["station"] == station)
            .collect()
    };
    // 1. One summary for Tiên Sơn once its catch-up is over.
    assert!(
        eventually(Duration::from_secs(120), || {
            let n = summaries(STATION).len();
            async move { n > 0 }
        })
        .await,
        "no late-data summary; webhook got {:?}; {}",
        hook.calls()
            .iter()
            .map(Call::json)
            .map(|j| format!("{} {} {}", j["station"], j["kind"], j["change"]))
            .collect::<Vec<_>>(),
        dump(&db)
    );
    // The alert engine has processed the whole history (its cursor is past every reading made before the start).
    let history_end = query_i64(
        &db,
        &format!("SELECT MAX(seq) FROM readings WHERE ts < {started}"),
    );
    assert!(support::wait_until(Duration::from_secs(60), || query_i64(
        &db,
        "SELECT position FROM cursors WHERE name = 'alerts:readings'"
    )
        >= history_end));

    // 2. The alerts the history implies, at their observation times.
    let readings: Vec<(i64, String, Option<f64>, i64)> = {
        let c =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        let mut st = c
            .prepare(
                "SELECT r.ts, r.band, r.ratio, r.status FROM readings r JOIN stations s ON s.id = r.station_id \
                 JOIN parameters p ON p.id = r.parameter_id WHERE s.code = ?1 AND p.symbol = 'COD' AND r.ts < ?2 ORDER BY r.ts",
            )
            .unwrap();
        st.query_map(rusqlite::params![STATION, started], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    assert!(
        readings.len() >= 280,
        "24 h at 5 minutes: {}",
        readings.len()
    );
    let expected = alerts_history_implies(&readings);
    assert!(
        expected.len() >= 6,
        "the drift breaches every 3 h: {expected:?}"
    );
    let api: Value = reqwest::get(format!(
        "{}/api/alerts?station={STATION}&kind=exceedance&limit=1000",
        daemon.http
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let mut stored: Vec<&Value> = api["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["parameter"] == "COD" && a["raised"].as_i64().unwrap() < started)
        .collect();
    stored.reverse(); // oldest first
    let got: Vec<(i64, i64, Option<i64>)> = stored
        .iter()
        .map(|a| {
            let cleared = a["cleared"].as_i64().filter(|c| *c < started);
            (
                a["since"].as_i64().unwrap(),
                a["raised"].as_i64().unwrap(),
                cleared,
            )
        })
        .collect();
    assert_eq!(
        got, expected,
        "stored alerts differ from what the history implies"
    );

    // 3. Announced as late data: the summary names every alert raised on old data; none of them was notified on
    //    its own; Tiên Sơn got one summary, no station more than one.
    let late_after = 3_600_000;
    let summary = &summaries(STATION)[0];
    let named: std::collections::BTreeMap<i64, &Value> = summary["late"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["alert_id"].as_i64().unwrap(), a))
        .collect();
    for a in &stored {
        let id = a["id"].as_i64().unwrap();
        let raised = a["raised"].as_i64().unwrap();
        // Processed within seconds of the start: an observation an hour and a minute older was late.
        if raised < started - late_after - 60_000 {
            let s = named
                .get(&id)
                .unwrap_or_else(|| panic!("alert {id} not in the summary: {summary}"));
            assert_eq!(s["raised"].as_i64(), Some(raised));
            assert_eq!(a["late"], true, "{a}");
            // Its raise (and its clear, when that was on old data too) was not notified on its own; a clear on a
            // live reading is.
            let cleared_late = a["cleared"]
                .as_i64()
                .is_some_and(|c| c < started - late_after - 60_000);
            let own: Vec<String> = hook
                .calls()
                .iter()
                .map(Call::json)
                .filter(|j| j["alert_id"] == id && j["change"] != "late")
                .map(|j| j["change"].as_str().unwrap_or_default().to_string())
                .collect();
            assert!(
                !own.iter()
                    .any(|c| c == "raised" || (cleared_late && c == "cleared")),
                "alert {id} was also notified on its own: {own:?}"
            );
        }
    }
    assert!(
        summary["text_en"]
            .as_str()
            .unwrap()
            .starts_with("LATE DATA: "),
        "{summary}"
    );
    let per_station = |station: &str| summaries(station).len();
    assert_eq!(per_station(STATION), 1);
    for id in PLANT_IDS {
        assert!(per_station(id) <= 1, "{id}: {} summaries", per_station(id));
    }

    // 4. Live breaches keep alerting: a raise on a live reading is notified on its own.
    let live_raise = eventually(Duration::from_secs(120), || {
        let calls = hook.calls();
        async move {
            calls.iter().map(Call::json).any(|j| {
                j["station"] == STATION
                    && j["kind"] == "exceedance"
                    && j["change"] == "raised"
                    && j["at"].as_i64().unwrap_or(0) >= started
            })
        }
    })
    .await;
    assert!(
        live_raise,
        "no live raise after the catch-up; webhook got {:?}",
        hook.calls()
            .iter()
            .map(Call::json)
            .map(|j| format!("{} {} {} {}", j["station"], j["kind"], j["change"], j["at"]))
            .collect::<Vec<_>>()
    );
}

/// The demo's station ids (for the one-summary-per-station check).
const PLANT_IDS: [&str; 8] = [
    "BN_KCNQV_NUOC01",
    "BN_KCNTS_NUOC01",
    "BN_KCNYP_NUOC01",
    "BN_KCNVSIP_NUOC01",
    "BN_KCNDDHS_NUOC01",
    "BN_KCNTT2_NUOC01",
    "BN_KCNNSHL_NUOC01",
    "BN_KCNGB_NUOC01",
];
