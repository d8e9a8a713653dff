//! `quantrac demo` end to end, as a new user runs it: in its own folder, on moved ports, with the operator token it
//! prints. The token acknowledges an alert and adds a note from the dashboard in a real headless Chromium; the
//! README's `export --demo` / `verify` / `report --demo` commands work on the demo's ledger; a second demo runs beside
//! the first; the log written to a file has no colour codes. Screenshots under `target/tmp/` (`demo-*.png`).

mod support;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::browser::Browser;

const TIEN_SON: &str = "BN_KCNTS_NUOC01";

/// `n` consecutive free loopback ports; the first is returned.
fn free_ports(n: u16) -> u16 {
    for _ in 0..100 {
        let p = support::free_port();
        let rest_free = (1..n).all(|i| {
            p.checked_add(i)
                .is_some_and(|q| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok())
        });
        if rest_free {
            return p;
        }
    }
    panic!("no {n} consecutive free ports");
}

/// A running `quantrac demo` in a temporary folder of its own (its ledger `quantrac-demo.db` there), its HTTP,
/// MQTT and Modbus ports moved to free ones, its log (standard error) written to `demo.log` in that folder.
struct Demo {
    child: Option<Child>,
    http: String,
    token: String,
    dir: tempfile::TempDir,
}

impl Demo {
    async fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("demo.log");
        let (mqtt, modbus) = (support::free_port(), free_ports(4));
        let mut child = Command::new(env!("CARGO_BIN_EXE_quantrac"))
            .args(["demo", "--http", "127.0.0.1:0"])
            .args(["--mqtt-port", &mqtt.to_string()])
            .args(["--modbus-port", &modbus.to_string()])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let token = printed_token(child.stdout.take().unwrap());
        let http = support::reported_in_log(&log, 0, Duration::from_secs(60));
        let (Some(token), Some(http)) = (token, http) else {
            support::terminate(child);
            panic!(
                "the demo printed no token or no address; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        assert!(
            support::http_ready(&http, Duration::from_secs(60)).await,
            "the demo did not become ready"
        );
        Demo {
            child: Some(child),
            http,
            token,
            dir,
        }
    }

    fn folder(&self) -> &Path {
        self.dir.path()
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.http))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            support::terminate(c);
        }
    }
}

/// The token in the demo's `Operator token for this run …: qt_…` line (at most 60 s); standard output is drained
/// afterwards so the demo never blocks on it.
fn printed_token(stdout: std::process::ChildStdout) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("Operator token for this run") {
                let token = line.rsplit(' ').next().unwrap_or_default().to_string();
                if let Some(tx) = tx.take() {
                    let _ = tx.send(token);
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).ok()
}

fn screenshot_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// The alert `id` of Tiên Sơn as the API lists it.
async fn alert(demo: &Demo, id: &str) -> Option<Value> {
    let r = demo
        .get(&format!("/api/alerts?station={TIEN_SON}&limit=1000"))
        .await;
    r["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["id"].as_i64() == id.parse().ok())
        .cloned()
}

/// A number written with `mark` as its decimal separator, e.g. `1.3` for `.`.
fn has_decimal(text: &str, mark: char) -> bool {
    let c: Vec<char> = text.chars().collect();
    c.windows(3)
        .any(|w| w[0].is_ascii_digit() && w[1] == mark && w[2].is_ascii_digit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_token_acknowledges_an_alert_and_adds_a_note_from_the_page() {
    let demo = Demo::start().await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/#/station/{TIEN_SON}", demo.http))
        .await;
    // An open alert of the drifting plant (a violation if there is one: they last longer than single readings). The
    // first acknowledgement asks for the comment, is refused to the anonymous page, and asks for the token, which is
    // pasted from what the demo printed. An alert that clears between the click and the call cannot be
    // acknowledged: then the next one is taken.
    let pick = "const b = document.querySelector('#alerts tr[data-state=\"raised\"][data-kind=\"violation\"] button.ack') \
        || document.querySelector('#alerts tr[data-state=\"raised\"] button.ack'); return b && b.closest('tr').dataset.alert";
    let mut acknowledged = None;
    for attempt in 0..3 {
        let id = browser.wait_for(pick, Duration::from_secs(240)).await;
        let id = id.as_str().unwrap().to_string();
        browser
            .eval(&format!(
                "setTimeout(() => document.querySelector('#alerts tr[data-alert=\"{id}\"] button.ack').click(), 0); return true;"
            ))
            .await;
        let asked = browser.dialog_text(Duration::from_secs(10)).await;
        assert_eq!(asked, "Ghi chú xác nhận (ví dụ: đã báo nhà máy kiểm tra):");
        browser.answer_prompt("Đã báo nhà máy kiểm tra").await;
        if attempt == 0 {
            let asked = browser.dialog_text(Duration::from_secs(10)).await;
            assert_eq!(asked, "Cần mã truy cập của người vận hành (operator):");
            browser.answer_prompt(&demo.token).await;
        }
        let done = support::eventually(Duration::from_secs(15), || async {
            alert(&demo, &id)
                .await
                .is_some_and(|a| a["acked_by"] == "demo-operator")
        })
        .await;
        if done {
            acknowledged = Some(id);
            break;
        }
    }
    let id = acknowledged.expect("no alert could be acknowledged in three attempts");
    let a = alert(&demo, &id).await.unwrap();
    assert_eq!(a["state"], "acknowledged");
    assert_eq!(a["ack_comment"], "Đã báo nhà máy kiểm tra");
    let audit: Value = reqwest::Client::new()
        .get(format!("{}/api/alerts?state=acknowledged", demo.http))
        .bearer_auth(&demo.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(audit["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"].as_i64() == id.parse().ok()));

    // A note in the station log from the page (the token is remembered), listed there and by the API.
    let text = "Đã vệ sinh đầu đo COD";
    browser
        .eval(
            "setTimeout(() => document.querySelector('button.add-note').click(), 0); return true;",
        )
        .await;
    assert_eq!(
        browser.dialog_text(Duration::from_secs(10)).await,
        "Ghi chú (ví dụ: đã vệ sinh thiết bị phân tích):"
    );
    browser.answer_prompt(text).await;
    let shown = browser
        .wait_for(
            "const r = document.querySelector('#notes tr[data-note]'); return r && [r.querySelector('.note-who').textContent, r.querySelector('.note-text').textContent].join('|')",
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(shown, format!("demo-operator|{text}"));
    let notes = demo.get(&format!("/api/notes?station={TIEN_SON}")).await;
    assert_eq!(notes["notes"][0]["text"], text);
    assert_eq!(notes["notes"][0]["who"], "demo-operator");

    // What the Vietnamese page says: decimal commas only, words for codes, no English alert notes.
    let page = browser
        .eval("return document.getElementById('detail').innerText")
        .await;
    let page = page.as_str().unwrap();
    assert!(
        !has_decimal(page, '.'),
        "a decimal point on the Vietnamese page:\n{page}"
    );
    for raw in [
        "Some(",
        "_to_",
        ":completeness",
        "mean of the window",
        "no data since",
        "status 0",
        "flat_line",
    ] {
        assert!(
            !page.contains(raw),
            "{raw:?} on the Vietnamese page:\n{page}"
        );
    }
    browser
        .screenshot(&screenshot_path("demo-plant-vi.png"))
        .await;
    // The English page: decimal points only.
    browser
        .eval("document.getElementById('lang').click(); return true;")
        .await;
    browser
        .wait_for(
            "return [...document.querySelectorAll('#detail h3')].some(h => h.textContent.startsWith('Station log')) && document.querySelector('#notes tr[data-note]') && document.querySelector('#alerts table')",
            Duration::from_secs(15),
        )
        .await;
    let page = browser
        .eval("return document.getElementById('detail').innerText")
        .await;
    let page = page.as_str().unwrap();
    assert!(
        !has_decimal(page, ','),
        "a decimal comma on the English page:\n{page}"
    );
    browser
        .screenshot(&screenshot_path("demo-plant-en.png"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_commands_export_and_report_the_demo_ledger_beside_a_second_demo() {
    let first = Demo::start().await;
    // A second demo in another folder on other ports, at the same time.
    let second = Demo::start().await;
    assert_ne!(first.http, second.http);
    for d in [&first, &second] {
        let stations = d.get("/api/stations").await;
        assert_eq!(stations["stations"].as_array().map(Vec::len), Some(8));
    }
    drop(second);

    // A note with a comma and quotes, through the API with the printed token; read back by GET.
    let text = "Đã vệ sinh đầu đo COD, hiệu chuẩn lại \"zero\"";
    let r = reqwest::Client::new()
        .post(format!("{}/api/stations/{TIEN_SON}/note", first.http))
        .bearer_auth(&first.token)
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].clone();
    let notes = first.get(&format!("/api/notes?station={TIEN_SON}")).await;
    let note = &notes["notes"][0];
    assert_eq!(
        (&note["id"], &note["text"], &note["who"]),
        (&id, &json!(text), &json!("demo-operator"))
    );
    assert!(note["time"].as_str().unwrap().ends_with("+07:00"), "{note}");
    let other = first.get("/api/notes?station=BN_KCNQV_NUOC01").await;
    assert_eq!(other["notes"], json!([]));

    // The README's demo commands, as written, from the demo's folder (`cargo run --release --` is the built binary).
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let commands: Vec<String> = readme
        .lines()
        .filter(|l| {
            l.starts_with("cargo run --release -- ")
                && (l.contains("--demo") || l.contains("demo-export"))
        })
        .map(|l| l.replace("cargo run --release --", env!("CARGO_BIN_EXE_quantrac")))
        .collect();
    assert_eq!(commands.len(), 3, "{commands:?}");
    for c in &commands {
        let out = Command::new("sh")
            .args(["-c", c])
            .current_dir(first.folder())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{c}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let export = first.folder().join("demo-export");
    let csv = std::fs::read_to_string(export.join("notes.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("id,station,time,who,text"));
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&format!("{id},{TIEN_SON},"))
            && row
                .ends_with(",demo-operator,\"Đã vệ sinh đầu đo COD, hiệu chuẩn lại \"\"zero\"\"\""),
        "{row}"
    );
    assert_eq!(lines.next(), None);
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("notes.json")).unwrap()).unwrap();
    assert_eq!(json[0]["text"], text);
    assert_eq!(json[0]["station"], TIEN_SON);
    assert_eq!(json[0]["id"], id);
    let manifest = std::fs::read_to_string(export.join("MANIFEST")).unwrap();
    assert!(manifest.contains("  notes.csv\n") && manifest.contains("  notes.json\n"));
    let report = std::fs::read_to_string(first.folder().join("tien-son.html")).unwrap();
    assert!(report.contains(TIEN_SON));

    // The log went to a file, not a terminal: plain text, no colour codes.
    let log = std::fs::read(first.folder().join("demo.log")).unwrap();
    assert!(String::from_utf8_lossy(&log).contains("listening on http://"));
    assert!(!log.contains(&0x1b), "an escape byte in the log file");
}
