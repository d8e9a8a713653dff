//! Auditor exports through the quantrac binary: CSV/JSON content checked against the ledger, `verify` finds one
//! changed byte, re-exports of a closed period are byte-identical, the TT10 export round-trips through the landing
//! folder of a fresh ledger, the monthly report renders in headless Chromium with the right numbers, and
//! `GET /api/export` serves auditors only.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use quantrac::compliance::Flags;
use quantrac::ledger::query::{ReadingFilter, StoredReading};
use quantrac::ledger::Reader;
use quantrac::model::Status;
use support::{terminate, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_quantrac");
const STATIONS: [&str; 2] = ["BN_KCNQV_NUOC01", "BN_KCNTS_NUOC01"];
/// 2026-10-01T00:00:00+07:00.
const OCT1: i64 = 1_790_787_600_000;
const STEPS: i64 = 3 * 288;

fn config_text(extra: &str) -> String {
    let mut text = format!("[ledger]\npath = \"ledger.db\"\nsynchronous = \"normal\"\n{extra}\n");
    for (i, id) in STATIONS.iter().enumerate() {
        text.push_str(&format!(
            "[[station]]\nid = \"{id}\"\nname = \"Trạm nước thải {}\"\nzone = \"KCN {}\"\nprofile = \"qcvn40-2011-b\"\n\
             design_flow_m3_day = 5000\nreceiving_water = {{ type = \"river\", flow_m3_s = 120 }}\n\
             parameters = {{ COD = {{}}, TSS = {{}}, pH = {{}} }}\n\n",
            ["Quế Võ", "Tiên Sơn"][i],
            ["Quế Võ", "Tiên Sơn"][i],
        ));
    }
    text
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Three days of 5-minute data for both stations: COD exceeds at Quế Võ on 2 October 01:00–03:00, some readings
/// are calibrating (01) or in maintenance (03).
fn ingest(config: &Path) {
    let mut lines = String::new();
    for i in 0..STEPS {
        let ts = OCT1 + i * 300_000;
        for (s, id) in STATIONS.iter().enumerate() {
            let cod = if s == 0 && (300..324).contains(&i) {
                190.0 + (i % 7) as f64 * 3.1
            } else {
                80.0 + (i % 40) as f64 + 0.37
            };
            let status = match i % 97 {
                0 => "01",
                1 => "03",
                _ => "00",
            };
            for (p, v) in [
                ("COD", cod),
                ("TSS", 30.5 + (i % 9) as f64 / 4.0),
                ("pH", 7.1 + (i % 5) as f64 / 10.0),
            ] {
                lines.push_str(&format!(
                    "{{\"station\":\"{id}\",\"parameter\":\"{p}\",\"ts\":{ts},\"value\":{v},\"status\":\"{status}\"}}\n"
                ));
            }
        }
    }
    support::ingest(config, &lines);
}

/// A prepared ledger with two stations and the config to read it.
fn setup(extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quantrac.toml");
    std::fs::write(&config, config_text(extra)).unwrap();
    ingest(&config);
    (dir, config)
}

fn export(config: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "export",
        "--config",
        config.to_str().unwrap(),
        "--from",
        "2026-10",
        "--to",
        "2026-11",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(
        o.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// CSV lines into fields (quoted fields may hold commas and doubled quotes).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| {
            let mut out = Vec::new();
            let mut cur = String::new();
            let mut quoted = false;
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, quoted) {
                    ('"', true) if chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    ('"', _) => quoted = !quoted,
                    (',', false) => out.push(std::mem::take(&mut cur)),
                    _ => cur.push(c),
                }
            }
            out.push(cur);
            out
        })
        .collect()
}

fn ledger_readings(ledger: &Path) -> HashMap<(String, String, i64), StoredReading> {
    let r = Reader::open(ledger).unwrap();
    let mut out = HashMap::new();
    let mut after = 0;
    loop {
        let page = r
            .readings(&ReadingFilter {
                after_seq: after,
                limit: 10_000,
                ..Default::default()
            })
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for s in page {
            out.insert((s.station.clone(), s.parameter.clone(), s.ts.millis()), s);
        }
    }
    out
}

fn opt(s: &str) -> Option<f64> {
    (!s.is_empty()).then(|| s.parse().unwrap())
}

#[test]
fn csv_and_json_match_the_ledger() {
    let (dir, config) = setup("[http]\nenabled = false\n");
    let out = dir.path().join("ex");
    export(&config, &out, &["--format", "all"]);
    let stored = ledger_readings(&dir.path().join("ledger.db"));
    assert_eq!(stored.len(), (STEPS * 6) as usize);

    let csv = std::fs::read_to_string(out.join("readings.csv")).unwrap();
    let rows = csv_rows(&csv);
    assert_eq!(
        rows[0].join(","),
        quantrac::export::READING_COLUMNS.join(",")
    );
    assert_eq!(rows.len() - 1, stored.len());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("readings.json")).unwrap()).unwrap();
    let json = json.as_array().unwrap();
    assert_eq!(json.len(), stored.len());
    let mut last_key = (String::new(), 0i64);
    for (row, j) in rows[1..].iter().zip(json) {
        let ts = chrono::DateTime::parse_from_rfc3339(&row[2])
            .unwrap()
            .timestamp_millis();
        assert!(row[2].ends_with("+07:00"), "local time: {}", row[2]);
        let s = &stored[&(row[0].clone(), row[1].clone(), ts)];
        let value: f64 = row[3].parse().unwrap();
        assert_eq!(value.to_bits(), s.value.to_bits(), "{row:?}");
        assert_eq!(row[4], s.unit);
        assert_eq!(row[5], s.status.as_str());
        assert_eq!(row[6], s.status.code());
        assert_eq!(row[7], Flags(s.flags).names());
        assert_eq!(
            (opt(&row[8]), opt(&row[9]), opt(&row[10])),
            (s.limit_low, s.limit_high, s.ratio)
        );
        assert_eq!(row[11], s.band);
        assert_eq!(row[12], s.source);
        assert_eq!(row[14].parse::<i64>().unwrap(), s.seq);
        // JSON holds the same row.
        assert_eq!(j["station"], row[0].as_str());
        assert_eq!(j["time"], row[2].as_str());
        // (serde_json's default float parser may land 1 ULP off; the text itself is the CSV's exact form.)
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
        assert!(close(j["value"].as_f64().unwrap(), s.value));
        assert_eq!(j["ratio"].as_f64().is_some(), s.ratio.is_some());
        if let (Some(a), Some(b)) = (j["ratio"].as_f64(), s.ratio) {
            assert!(close(a, b), "{a} {b}");
        }
        assert_eq!(j["flags"], row[7].as_str());
        // Ordered by station, then time.
        let key = (row[0].clone(), ts);
        assert!(key >= last_key, "order: {key:?} after {last_key:?}");
        last_key = key;
    }

    // The summary: Quế Võ has the two exceeding hours; hours are counted from the hourly aggregates.
    let summary = csv_rows(&std::fs::read_to_string(out.join("summary.csv")).unwrap());
    let col = |name: &str| summary[0].iter().position(|c| c == name).unwrap();
    let qv = &summary[1];
    assert_eq!(qv[0], STATIONS[0]);
    assert_eq!(qv[col("windows_in_period")], "744");
    assert_eq!(qv[col("hours_evaluated")], "72");
    assert_eq!(qv[col("exceedances")], "2");
    assert_eq!(qv[col("hours_compliant")], "70");
    assert_eq!(summary[2][col("exceedances")], "0");
    // Valid data: measuring readings over 31 days × 24 h × 12 × 3 parameters.
    let valid = stored
        .values()
        .filter(|s| s.station == STATIONS[0] && s.status == Status::Measuring)
        .count();
    assert_eq!(qv[col("valid_readings")], valid.to_string());
    assert_eq!(qv[col("expected_readings")], (31 * 24 * 12 * 3).to_string());
    // Transmission: every reading of the period, and those that arrived within the 5-minute deadline (not late).
    let of_station: Vec<_> = stored
        .values()
        .filter(|s| s.station == STATIONS[0])
        .collect();
    let on_time = of_station
        .iter()
        .filter(|s| !Flags(s.flags).contains(Flags::LATE))
        .count();
    assert_eq!(qv[col("readings")], of_station.len().to_string());
    assert_eq!(qv[col("on_time_readings")], on_time.to_string());
    let pct = (100.0 * on_time as f64 / of_station.len() as f64 * 100.0).round() / 100.0;
    assert_eq!(qv[col("on_time_pct")].parse::<f64>().unwrap(), pct);
    let events = csv_rows(&std::fs::read_to_string(out.join("events.csv")).unwrap());
    assert!(events[1..].iter().any(|e| e[0] == STATIONS[0]
        && e[1] == "COD"
        && e[2] == "window_3600000"
        && e[3] == "2026-10-02T01:00:00+07:00"
        && e[5] == "7200"));
    let hourly = csv_rows(&std::fs::read_to_string(out.join("aggregates_1h.csv")).unwrap());
    assert_eq!(hourly.len() - 1, 2 * 3 * 72);
    assert!(out.join("aggregates_1d.json").exists());
}

#[test]
fn verify_finds_a_changed_byte_and_reexports_are_identical() {
    let (dir, config) = setup("[http]\nenabled = false\n");
    let key = dir.path().join("export.key");
    let o = run(&["export-key", "new", "--out", key.to_str().unwrap()]);
    assert!(o.status.success());
    let public = std::fs::read_to_string(dir.path().join("export.key.pub")).unwrap();
    let at = [
        "--sign",
        key.to_str().unwrap(),
        "--exported-at",
        "2026-11-27T10:00:00+07:00",
    ];
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    export(&config, &a, &at);
    export(&config, &b, &at);
    export(&config, &c, &["--station", STATIONS[0]]);

    // Same period, same --exported-at: every file identical, MANIFEST and signature included.
    let mut files = Vec::new();
    quantrac::export::manifest::list_files(&a, &a, &mut files).unwrap();
    assert!(files.len() > 800, "{} files", files.len());
    for f in &files {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    // Without it only the MANIFEST's time line differs (for the same station's files).
    let qv_tt10 = "tt10/BN_KCNQV_NUOC01/2026/10/02/BN_KCNQV_NUOC01_20261002013000.txt";
    assert_eq!(
        std::fs::read(a.join(qv_tt10)).unwrap(),
        std::fs::read(c.join(qv_tt10)).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(a.join(qv_tt10))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
        "COD\t205.5\tmg/L\t20261002013000\t00"
    );

    let verify = |dir: &Path, key: Option<&str>| {
        let mut args = vec!["verify", dir.to_str().unwrap()];
        if let Some(k) = key {
            args.extend(["--key", k]);
        }
        let o = run(&args);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (code, out) = verify(&a, Some(public.trim()));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("signed by the given key {}", public.trim())),
        "{out}"
    );
    assert_eq!(verify(&c, None).0, Some(0));
    // An unsigned export does not pass when a key is required.
    let (code, out) = verify(&c, Some(public.trim()));
    assert_eq!(code, Some(1));
    assert!(out.contains("not signed"), "{out}");

    // One changed byte anywhere is found: a value in the CSV, a status in a TT10 file.
    for f in ["readings.csv", qv_tt10] {
        let path = b.join(f);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let (code, out) = verify(&b, None);
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains(&format!("FAILED: {f}: content changed")),
            "{out}"
        );
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
    }
    assert_eq!(verify(&b, Some(public.trim())).0, Some(0));
    // A forged MANIFEST (hash updated to match a changed file) breaks the signature.
    let manifest = std::fs::read_to_string(b.join("MANIFEST")).unwrap();
    std::fs::write(
        b.join("MANIFEST"),
        manifest.replace("format=all", "format=csv"),
    )
    .unwrap();
    let (code, out) = verify(&b, None);
    assert_eq!(code, Some(1));
    assert!(out.contains("signature does not match"), "{out}");
}

#[test]
fn tt10_export_round_trips_through_a_landing_folder() {
    let (dir, config) = setup("[http]\nenabled = false\n");
    let out = dir.path().join("ex");
    export(&config, &out, &["--format", "tt10"]);
    // A fresh ledger whose landing folder receives the exported files.
    let fresh = dir.path().join("fresh");
    std::fs::create_dir_all(fresh.join("landing")).unwrap();
    let fresh_config = fresh.join("quantrac.toml");
    std::fs::write(
        &fresh_config,
        config_text("[http]\nenabled = false\n[tt10]\nlanding = [\"landing\"]\nsettle = \"0s\"\nscan_interval = \"100ms\"\n"),
    )
    .unwrap();
    std::fs::rename(out.join("tt10"), fresh.join("landing/tt10")).unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config", fresh_config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let count = || {
        Reader::open(&fresh.join("ledger.db"))
            .and_then(|r| r.count_readings())
            .unwrap_or(0)
    };
    let ok = wait_until(Duration::from_secs(60), || count() == STEPS * 6);
    terminate(child);
    assert!(ok, "{} of {} readings", count(), STEPS * 6);
    let original = ledger_readings(&dir.path().join("ledger.db"));
    let back = ledger_readings(&fresh.join("ledger.db"));
    assert_eq!(original.len(), back.len());
    for (k, o) in &original {
        let b = &back[k];
        // Maintenance (03) is not in Circular 10: it travels as 01.
        let status = if o.status == Status::Maintenance {
            Status::Calibrating
        } else {
            o.status
        };
        assert_eq!(
            (
                b.value.to_bits(),
                &b.unit,
                b.status,
                &b.band,
                b.limit_high,
                b.ratio
            ),
            (
                o.value.to_bits(),
                &o.unit,
                status,
                &o.band,
                o.limit_high,
                o.ratio
            ),
            "{k:?}"
        );
        assert_eq!(b.source, "tt10");
    }
}

#[tokio::test]
async fn monthly_report_renders_with_the_summary_numbers() {
    let (dir, config) = setup("[http]\nenabled = false\n");
    let out = dir.path().join("ex");
    export(&config, &out, &["--format", "csv"]);
    let summary = csv_rows(&std::fs::read_to_string(out.join("summary.csv")).unwrap());
    let col = |name: &str| summary[0].iter().position(|c| c == name).unwrap();
    let html = dir.path().join("report.html");
    let o = run(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--station",
        STATIONS[0],
        "--month",
        "2026-10",
        "--out",
        html.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        !text.contains("<script") && !text.contains("src=\"http"),
        "no script, no CDN"
    );
    assert!(!text.contains("<link"), "no external stylesheet");

    let browser = support::browser::Browser::start().await;
    browser.goto(&format!("file://{}", html.display())).await;
    browser
        .wait_for(
            "return document.getElementById('hours-evaluated') !== null",
            Duration::from_secs(20),
        )
        .await;
    let text_of = |id: &str| format!("return document.getElementById('{id}').textContent.trim()");
    let qv = &summary[1];
    for (id, column) in [
        ("hours-evaluated", "hours_evaluated"),
        ("hours-compliant", "hours_compliant"),
        ("compliant-pct", "compliant_pct"),
        ("valid-pct", "valid_data_pct"),
        ("exceedances", "exceedances"),
        ("exc-1_1_to_1_5", "exceedances_1_1_to_1_5"),
    ] {
        assert_eq!(
            browser.eval(&text_of(id)).await,
            qv[col(column)].as_str(),
            "{id}"
        );
    }
    assert_eq!(browser.eval(&text_of("hours-evaluated")).await, "72");
    assert_eq!(browser.eval(&text_of("exceedances")).await, "2");
    // One chart per parameter, each with its limit line (two for the pH range), and the exceeding hours in red.
    let charts = browser
        .eval("return ['COD','TSS','pH'].map(p => document.querySelectorAll('#param-' + p + ' svg .limit-line').length)")
        .await;
    assert_eq!(charts, serde_json::json!([1, 1, 2]));
    assert_eq!(
        browser
            .eval("return document.querySelector('#param-COD .over').textContent")
            .await,
        "2"
    );
    // The report lists the legal events (window means); single-reading episodes are counted apart.
    let event_rows = csv_rows(&std::fs::read_to_string(out.join("events.csv")).unwrap());
    let scope = event_rows[0].iter().position(|c| c == "scope").unwrap();
    let events = event_rows[1..]
        .iter()
        .filter(|r| r[0] == STATIONS[0] && r[scope].starts_with("window_"))
        .count() as i64;
    assert!(events >= 1);
    assert_eq!(
        browser.eval(&text_of("events-count")).await,
        events.to_string().as_str()
    );
    assert_eq!(
        browser
            .eval("return document.querySelectorAll('#events tr').length")
            .await,
        events + 1
    );
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("export-report.png");
    browser.screenshot(&shot).await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}

#[tokio::test]
async fn api_export_serves_auditors_only_and_streams_what_the_cli_writes() {
    use sha2::{Digest, Sha256};
    let tokens = ["viewer", "auditor"]
        .iter()
        .map(|r| {
            let hash: String = Sha256::digest(format!("tok-{r}").as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("[[http.token]]\nname = \"{r}-1\"\nrole = \"{r}\"\nsha256 = \"{hash}\"\n")
        })
        .collect::<String>();
    let (dir, config) = setup(&format!("[http]\nlisten = \"127.0.0.1:0\"\n{tokens}"));
    let out = dir.path().join("ex");
    export(
        &config,
        &out,
        &["--station", STATIONS[1], "--format", "csv"],
    );
    let mut child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = support::reported_on_stderr(child.stderr.take().unwrap(), Duration::from_secs(30))
        .expect("quantrac did not report its HTTP address");
    let client = reqwest::Client::new();
    assert!(support::http_ready(&base, Duration::from_secs(30)).await);
    let get = |q: &str, role: Option<&str>| {
        let mut req = client.get(format!("{base}/api/export?{q}"));
        if let Some(r) = role {
            req = req.bearer_auth(format!("tok-{r}"));
        }
        req.send()
    };
    let q = format!(
        "station={}&from=2026-10-01&to=2026-11-01&format=csv",
        STATIONS[1]
    );
    assert_eq!(get(&q, None).await.unwrap().status(), 401);
    assert_eq!(get(&q, Some("viewer")).await.unwrap().status(), 403);
    let resp = get(&q, Some("auditor")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let body = resp.bytes().await.unwrap();
    assert_eq!(
        &body[..],
        &std::fs::read(out.join("readings.csv")).unwrap()[..]
    );
    for (bad, msg) in [
        ("from=2026-10-01&to=2026-11-01&format=xml", "format=\"xml\""),
        (
            "from=yesterday&to=2026-11-01",
            "from: \"yesterday\" is not a time",
        ),
        ("to=2026-11-01", "from is required"),
        ("from=2026-11-01&to=2026-10-01", "the period is empty"),
        (
            "station=BN_X_Y&from=2026-10-01&to=2026-11-01",
            "unknown station",
        ),
        (
            "from=2026-10-01&to=2026-11-01&stations=x",
            "unknown parameter",
        ),
    ] {
        let r = get(bad, Some("auditor")).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains(msg), "{bad}: {v}");
    }
    // TT10 as a tar of the export folder, verifiable after unpacking.
    let resp = get(
        &format!(
            "station={}&from=2026-10-02&to=2026-10-03&format=tt10",
            STATIONS[0]
        ),
        Some("auditor"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-tar");
    let tar = dir.path().join("export.tar");
    std::fs::write(&tar, resp.bytes().await.unwrap()).unwrap();
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let ok = Command::new("tar")
        .args([
            "-xf",
            tar.to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let folder = std::fs::read_dir(&unpacked)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let v = run(&["verify", folder.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    assert!(String::from_utf8_lossy(&v.stdout).contains("OK: 288 files match"));
    // The archive itself verifies too, and a changed byte inside it is found.
    let v = run(&["verify", tar.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let mut bytes = std::fs::read(&tar).unwrap();
    let at = bytes.windows(4).rposition(|w| w == b"COD\t").unwrap() + 4;
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(&tar, &bytes).unwrap();
    let v = run(&["verify", tar.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v.stdout).contains("content changed"));
    terminate(child);
}

#[test]
fn alerts_are_exported_with_their_delivery_history() {
    let (dir, config) = setup("[http]\nenabled = false\n");
    let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    let t = OCT1 + 86_400_000 + 3_600_000; // 2 October 01:00
    conn.execute(
        "INSERT INTO alerts (id, station, subject, kind, severity, state, since, raised, updated, cleared, detail, peak, notifications, acked_at, acked_by, ack_comment) \
         VALUES (7, ?1, 'COD', 'violation', 'violation', 'cleared', ?2, ?2, ?3, ?3, '{\"value\":205.5}', '{\"multiple\":1.37}', 2, ?2, 'officer-nguyen', 'plant called, bypass closed')",
        rusqlite::params![STATIONS[0], t, t + 7_200_000],
    )
    .unwrap();
    // Another station's alert and one outside the period are not exported with Quế Võ.
    conn.execute(
        "INSERT INTO alerts (id, station, subject, kind, severity, state, since, raised, updated, cleared, detail, peak, notifications, acked_at, acked_by, ack_comment) VALUES (8, ?1, 'pH', 'exceedance', 'warning', 'raised', ?2, ?2, ?2, NULL, '{}', '{}', 1, NULL, NULL, NULL)",
        rusqlite::params![STATIONS[1], t],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO alerts (id, station, subject, kind, severity, state, since, raised, updated, cleared, detail, peak, notifications, acked_at, acked_by, ack_comment) VALUES (9, ?1, 'COD', 'exceedance', 'warning', 'cleared', ?2, ?2, ?2, ?2, '{}', '{}', 1, NULL, NULL, NULL)",
        rusqlite::params![STATIONS[0], OCT1 - 86_400_000 * 40],
    )
    .unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO outbox VALUES (1, 7, 'officers-mail', 'raised', '{{}}', {t}, 'delivered', 2, 0, {d}, NULL);
         INSERT INTO outbox VALUES (2, 7, 'officers-mail', 'cleared', '{{}}', {c}, 'pending', 0, 0, NULL, NULL);
         INSERT INTO outbox_attempts VALUES (1, 1, {t}, 10000, 0, 'connection refused');
         INSERT INTO outbox_attempts VALUES (2, 1, {d}, 120, 1, NULL);",
        d = t + 60_000,
        c = t + 7_200_000
    ))
    .unwrap();
    drop(conn);
    let out = dir.path().join("ex");
    export(
        &config,
        &out,
        &["--station", STATIONS[0], "--format", "csv"],
    );
    let alerts = csv_rows(&std::fs::read_to_string(out.join("alerts.csv")).unwrap());
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(alerts[1][0], "7");
    assert_eq!(alerts[1][2], "COD");
    assert_eq!(alerts[1][6], "2026-10-02T01:00:00+07:00");
    assert_eq!(alerts[1][8], "2026-10-02T03:00:00+07:00");
    assert_eq!(alerts[1][11], "plant called, bypass closed");
    let deliveries = csv_rows(&std::fs::read_to_string(out.join("alert_deliveries.csv")).unwrap());
    let summary: Vec<String> = deliveries[1..]
        .iter()
        .map(|d| format!("{} {} {} {} {}", d[1], d[3], d[5], d[11], d[12]))
        .collect();
    assert_eq!(
        summary,
        [
            "1 raised delivered 0 connection refused",
            "1 raised delivered 1 ",
            "2 cleared pending  "
        ]
    );
    let v = run(&["verify", out.to_str().unwrap()]);
    assert!(v.status.success());
}

/// The TT10 files' bytes under `out/tt10`, by file name.
fn tt10_files(out: &Path) -> std::collections::BTreeMap<String, String> {
    let mut files = std::collections::BTreeMap::new();
    let mut dirs = vec![out.join("tt10")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                files.insert(name, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    files
}

/// `[tt10] maintenance_as`: the exported files write maintenance (03, at steps i % 97 == 1 for both stations) as 01
/// (the default), 02, or leave it out — those seconds then have no file; every other file is byte for byte the same.
#[test]
fn tt10_export_writes_maintenance_as_configured() {
    let (dir, config) = setup("[http]\nenabled = false\n");
    let default_out = dir.path().join("ex-default");
    export(&config, &default_out, &["--format", "tt10"]);
    let default = tt10_files(&default_out);
    let maintenance: Vec<String> = (0..STEPS)
        .filter(|i| i % 97 == 1)
        .flat_map(|i| {
            let t = chrono::DateTime::from_timestamp_millis(OCT1 + i * 300_000).unwrap()
                + chrono::Duration::hours(7);
            let second = t.format("%Y%m%d%H%M%S").to_string();
            STATIONS.map(|id| format!("{id}_{second}.txt"))
        })
        .collect();
    assert!(maintenance.len() >= 16);
    for name in &maintenance {
        assert!(
            default[name].lines().all(|l| l.ends_with("\t01")),
            "{name}: {}",
            default[name]
        );
    }
    for (setting, folder) in [("02", "ex-02"), ("omit", "ex-omit")] {
        let c = dir.path().join(format!("{folder}.toml"));
        std::fs::write(
            &c,
            config_text(&format!(
                "[http]\nenabled = false\n[tt10]\nmaintenance_as = \"{setting}\"\n"
            )),
        )
        .unwrap();
        let out = dir.path().join(folder);
        export(&c, &out, &["--format", "tt10"]);
        let mut want = default.clone();
        for name in &maintenance {
            if setting == "omit" {
                want.remove(name);
            } else {
                let text = want[name].replace("\t01\r\n", "\t02\r\n");
                want.insert(name.clone(), text);
            }
        }
        assert_eq!(tt10_files(&out), want, "maintenance_as = {setting:?}");
        let manifest = std::fs::read_to_string(out.join("MANIFEST")).unwrap();
        assert!(
            manifest.contains(&format!("# tt10: maintenance readings (status 03, not in Circular 10) written as maintenance_as = \"{setting}\"")),
            "{manifest}"
        );
    }
}

/// Decree 45's penalty basis, hand-computed. Tiên Sơn's COD limit is C 150 × Kq 1.0 (a river of 120 m³/s) × Kf 1.0
/// (5,000 m³/day) = 150 mg/L. On 1 October COD is 180 mg/L from 01:00 to 03:00 (two windows, 1.2×) and the outflow
/// 100 m³/h with half an hour missing (2,350 m³ over 23.5 h); on 2 October 160 mg/L from 05:00 to 06:00 (one window,
/// 1.07×: under 1.1×, a repeat) and the outflow sent as 25 L/s (90 m³/h: 2,160 m³).
#[test]
fn the_penalty_basis_names_each_day_over_the_limit_with_its_discharge() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quantrac.toml");
    std::fs::write(
        &config,
        "[ledger]\npath = \"ledger.db\"\nsynchronous = \"normal\"\n[[station]]\nid = \"BN_KCNTS_NUOC01\"\n\
         name = \"Tiên Sơn\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 5000\n\
         receiving_water = { type = \"river\", flow_m3_s = 120 }\nparameters = { COD = {}, Flow = {} }\n",
    )
    .unwrap();
    let mut lines = String::new();
    for i in 0..2 * 288 {
        let ts = OCT1 + i * 300_000;
        let cod = match i {
            12..=35 => 180.0,
            348..=359 => 160.0,
            _ => 80.0,
        };
        let flow = match i {
            100..=105 => None,
            0..=287 => Some("\"value\":100,\"unit\":\"m3/h\"".to_string()),
            _ => Some("\"value\":25,\"unit\":\"L/s\"".to_string()),
        };
        lines.push_str(&format!(
            "{{\"station\":\"BN_KCNTS_NUOC01\",\"parameter\":\"COD\",\"ts\":{ts},\"value\":{cod}}}\n"
        ));
        if let Some(f) = flow {
            lines.push_str(&format!(
                "{{\"station\":\"BN_KCNTS_NUOC01\",\"parameter\":\"Flow\",\"ts\":{ts},{f}}}\n"
            ));
        }
    }
    support::ingest(&config, &lines);
    let out = dir.path().join("out");
    export(&config, &out, &["--format", "csv"]);
    let rows = csv_rows(&std::fs::read_to_string(out.join("penalty_basis.csv")).unwrap());
    let header = &rows[0];
    let col = |r: &[String], name: &str| r[header.iter().position(|h| h == name).unwrap()].clone();
    let got: Vec<Vec<String>> = rows[1..]
        .iter()
        .map(|r| {
            [
                "parameter",
                "date",
                "window",
                "exceedance_windows",
                "windows_under_1_1",
                "worst_band",
                "exceedance_day",
                "repeat",
                "flow_parameter",
                "discharge_m3",
                "flow_measured_hours",
            ]
            .iter()
            .map(|c| col(r, c))
            .collect()
        })
        .collect();
    let row = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        [
            row(&[
                "COD",
                "2026-10-01",
                "1h",
                "2",
                "0",
                "1_1_to_1_5",
                "1",
                "no",
                "Flow",
                "2350",
                "23.5"
            ]),
            row(&[
                "COD",
                "2026-10-02",
                "1h",
                "1",
                "1",
                "lt_1_1",
                "2",
                "yes",
                "Flow",
                "2160",
                "24"
            ]),
        ]
    );
    let ratios: Vec<f64> = rows[1..]
        .iter()
        .map(|r| col(r, "worst_ratio").parse().unwrap())
        .collect();
    assert!(
        (ratios[0] - 1.2).abs() < 1e-9 && (ratios[1] - 160.0 / 150.0).abs() < 1e-9,
        "{ratios:?}"
    );

    // The monthly report shows the same days.
    let report = dir.path().join("r.html");
    let o = run(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--station",
        "BN_KCNTS_NUOC01",
        "--month",
        "2026-10",
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(&report).unwrap();
    let table = &html[html
        .find("<table id=\"penalty\">")
        .expect("the English penalty table")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<tr><td>").count(), 2, "{table}");
    assert!(
        table.contains("01/10/2026") && table.contains("2,350") && table.contains("23.5"),
        "{table}"
    );
    assert!(
        table.contains("2 (repeat)") && table.contains("2,160"),
        "{table}"
    );
}
