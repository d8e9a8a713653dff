//! The official monthly report through the quantrac binary, against ledgers the tests fill: printed by headless
//! Chromium to an A4 PDF that shows the signature block and the cited MANIFEST hash (which `sha256sum` and
//! `quantrac verify` confirm); a month in progress counts only the hours that have passed; a month without data
//! shows the limits (hand-computed: COD 150 × Kq 0.9 × Kf 0.9 = 121.5 mg/L); events are window means in local
//! `dd/MM/yyyy HH:mm`, never zero-minute rows; `GET /report` serves auditors only and the plant page links to it.
//! The PDF and a screenshot are kept under the test's output folder (`target/tmp/report.pdf`, `report-route.png`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::{terminate, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_quantrac");
const STATION: &str = "BN_KCNTS_NUOC01";
/// 2026-10-01T00:00:00+07:00.
const OCT1: i64 = 1_790_787_600_000;
const HOUR: i64 = 3_600_000;

fn config_text(extra: &str) -> String {
    format!(
        "[ledger]\npath = \"ledger.db\"\nsynchronous = \"normal\"\n{extra}\n\
         [[station]]\nid = \"{STATION}\"\nname = \"Trạm nước thải KCN Tiên Sơn\"\nzone = \"KCN Tiên Sơn\"\n\
         profile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 7000\n\
         receiving_water = {{ type = \"river\", flow_m3_s = 45, name = \"Ngũ Huyện Khê\" }}\n\
         parameters = {{ COD = {{}}, TSS = {{}}, pH = {{}} }}\n\
         [station.facility]\nname = \"Nhà máy XLNT tập trung KCN Tiên Sơn\"\noperator = \"Công ty hạ tầng KCN (ví dụ)\"\n\
         permit_number = \"123/GPMT-BTNMT\"\npermit_date = \"2023-05-12\"\npermit_issuer = \"Bộ Tài nguyên và Môi trường\"\n"
    )
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// One JSON line per (time, value) of COD, with TSS and pH beside it.
fn lines(readings: impl IntoIterator<Item = (i64, f64)>) -> String {
    let mut out = String::new();
    for (ts, cod) in readings {
        for (p, v) in [("COD", cod), ("TSS", 30.5), ("pH", 7.2)] {
            out.push_str(&format!(
                "{{\"station\":\"{STATION}\",\"parameter\":\"{p}\",\"ts\":{ts},\"value\":{v},\"status\":\"00\"}}\n"
            ));
        }
    }
    out
}

/// A config and a ledger holding `lines`.
fn setup(extra: &str, lines: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quantrac.toml");
    std::fs::write(&config, config_text(extra)).unwrap();
    support::ingest(&config, lines);
    (dir, config)
}

/// Three days of October at 5-minute steps; COD exceeds (1.5–3×) on 2 October 01:00–03:00 local; one COD
/// reading on 3 October 10:00:00 is over the limit and the next, 20 seconds later, is not (a 20-second episode of
/// single readings: it must not become a zero-minute row).
fn october() -> String {
    let mut r: Vec<(i64, f64)> = (0..3 * 288)
        .map(|i| {
            let cod = if (300..324).contains(&i) {
                190.0 + (i % 7) as f64 * 3.1
            } else {
                80.0 + (i % 40) as f64 + 0.37
            };
            (OCT1 + i * 300_000, cod)
        })
        .collect();
    let ten = OCT1 + 2 * 24 * HOUR + 10 * HOUR;
    if let Some(x) = r.iter_mut().find(|x| x.0 == ten) {
        x.1 = 150.0;
    }
    r.push((ten + 20_000, 90.0));
    lines(r)
}

/// Run `quantrac report`; returns the HTML and the data folder.
fn report(config: &Path, month: &str) -> (String, PathBuf) {
    let dir = config.parent().unwrap();
    let out = dir.join(format!("report-{month}.html"));
    let o = run(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--station",
        STATION,
        "--month",
        month,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (
        std::fs::read_to_string(&out).unwrap(),
        dir.join(format!("report-{month}-data")),
    )
}

/// The text of the element with `id` (up to its first child's end tag; tags inside are dropped).
fn by_id(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element {id}"));
    let rest = &html[start..];
    let body = &rest[rest.find('>').unwrap() + 1..];
    let end = ["</td>", "</code>", "</span>", "</table>", "</div>"]
        .iter()
        .filter_map(|t| body.find(t))
        .min()
        .unwrap();
    strip_tags(&body[..end]).trim().to_string()
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in s.chars() {
        match c {
            '<' => inside = true,
            '>' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

/// The rows of the table with `id` (header rows left out), each as its cells' texts.
fn table(html: &str, id: &str) -> Vec<Vec<String>> {
    let start = html.find(&format!("id=\"{id}\"")).unwrap();
    let body = &html[start..];
    let body = &body[..body.find("</table>").unwrap()];
    body.split("<tr")
        .skip(1)
        .map(|r| {
            r.split("<td")
                .skip(1)
                .map(|c| strip_tags(&format!("<td{c}")).trim().to_string())
                .collect::<Vec<String>>()
        })
        .filter(|r| !r.is_empty())
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Run a command for at most `limit`; `None` if it did not end.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Option<std::process::ExitStatus> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut status = None;
    wait_until(limit, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// Every `/MediaBox [x0 y0 x1 y1]` of a PDF, as (width, height) in points.
fn media_boxes(pdf: &[u8]) -> Vec<(f64, f64)> {
    let text = String::from_utf8_lossy(pdf);
    text.split("/MediaBox")
        .skip(1)
        .filter_map(|s| {
            let inner = &s[s.find('[')? + 1..s.find(']')?];
            let n: Vec<f64> = inner
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (n.len() == 4).then(|| (n[2] - n[0], n[3] - n[1]))
        })
        .collect()
}

#[test]
fn the_report_prints_on_a4_with_the_signature_block_and_the_verifiable_hash() {
    let (dir, config) = setup("[http]\nenabled = false\n", &october());
    let (html, data) = report(&config, "2026-10");
    let hash = by_id(&html, "manifest-sha256");
    assert_eq!(hash.len(), 64, "{hash}");
    assert_eq!(by_id(&html, "vi-manifest-sha256"), hash);
    // The cited hash is the export's: `sha256sum MANIFEST` and `quantrac verify` agree.
    assert_eq!(
        sha256_hex(&std::fs::read(data.join("MANIFEST")).unwrap()),
        hash
    );
    let v = run(&["verify", data.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    assert!(html.contains("@page { size: A4;"));

    let pdf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.pdf");
    let _ = std::fs::remove_file(&pdf);
    let profile = tempfile::tempdir().unwrap();
    // Chromium leaves folders in TMPDIR: keep them in the profile, which is removed.
    let tmp = profile.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let html_path = dir.path().join("report-2026-10.html");
    let status = run_bounded(
        Command::new("chromium").env("TMPDIR", &tmp).args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-pdf-header-footer",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--print-to-pdf={}", pdf.display()),
            &format!("file://{}", html_path.display()),
        ]),
        Duration::from_secs(120),
    )
    .expect("chromium did not finish printing within 2 minutes");
    assert!(status.success());
    let bytes = std::fs::read(&pdf).unwrap();
    let boxes = media_boxes(&bytes);
    assert!(
        boxes.len() >= 2,
        "one page per language at least: {boxes:?}"
    );
    for (w, h) in &boxes {
        assert!(
            (w - 595.0).abs() <= 1.0 && (h - 842.0).abs() <= 1.0,
            "not A4: {w} × {h} pt"
        );
    }
    let text = Command::new("pdftotext")
        .args([pdf.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext not installed: run scripts/test (apt-get install poppler-utils)");
    let text = String::from_utf8_lossy(&text.stdout);
    for words in [
        "NGƯỜI LẬP BÁO CÁO",
        "NGƯỜI PHÊ DUYỆT",
        "PREPARED BY",
        "APPROVED BY",
        "QCVN 40:2011/BTNMT cột B",
        "123/GPMT-BTNMT",
        "Luật Bảo vệ môi trường",
        "sha256sum MANIFEST",
    ] {
        assert!(text.contains(words), "the PDF does not show {words:?}");
    }
    // The hash may wrap: compare without white space.
    let flat: String = text.split_whitespace().collect();
    assert!(
        flat.contains(&hash),
        "the PDF does not show the hash {hash}"
    );
}

#[test]
fn a_month_without_data_shows_the_limits_with_their_working() {
    let (_dir, config) = setup("[http]\nenabled = false\n", &october());
    let (html, _) = report(&config, "2026-09");
    // Hand-computed (compliance-cases): COD C=150 × Kq 0.9 (river, Q=45 m³/s ≤ 50) × Kf 0.9 (F=7,000 > 5,000).
    let limits = table(&html, "limits");
    let cod = limits.iter().find(|r| r[0] == "COD").unwrap();
    assert_eq!(cod[2], "≤ 121.5");
    assert!(
        cod[3].contains("Kq 0.9") && cod[3].contains("Kf 0.9") && cod[3].ends_with("= 121.5 mg/L"),
        "{cod:?}"
    );
    let ph = limits.iter().find(|r| r[0] == "pH").unwrap();
    assert_eq!(ph[2], "5.5–9");
    // The Vietnamese page: decimal commas.
    let vi = table(&html, "vi-limits");
    assert_eq!(vi.iter().find(|r| r[0] == "COD").unwrap()[2], "≤ 121,5");
    assert_eq!(
        by_id(&html, "vi-kq"),
        "0,9 (Ngũ Huyện Khê (sông, suối, kênh, mương, Q = 45 m³/s))"
    );
    assert!(html.contains(r#"<span class="limit">≤ 121.5</span>"#));
    assert_eq!(by_id(&html, "regulation"), "QCVN 40:2011/BTNMT column B");
    assert_eq!(by_id(&html, "hours-evaluated"), "0");
    assert_eq!(by_id(&html, "valid-pct"), "0");
}

#[test]
fn a_month_in_progress_counts_only_the_hours_that_have_passed() {
    use chrono::{Datelike, TimeZone};
    let tz = chrono::FixedOffset::east_opt(7 * 3600).unwrap();
    let now = chrono::Utc::now().with_timezone(&tz);
    let month_start = tz
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    let month = now.format("%Y-%m").to_string();
    // Every 5 minutes from the month's start to 10 minutes ago.
    let until = now.timestamp_millis() - 600_000;
    let steps: Vec<(i64, f64)> = (0..)
        .map(|i| (month_start + i * 300_000, 80.0))
        .take_while(|(ts, _)| *ts < until)
        .collect();
    let (_dir, config) = setup("[http]\nenabled = false\n", &lines(steps));
    let before = chrono::Utc::now().timestamp_millis();
    let (html, data) = report(&config, &month);
    let after = chrono::Utc::now().timestamp_millis();
    let hours: i64 = by_id(&html, "hours-in-period").parse().unwrap();
    let (lo, hi) = ((before - month_start) / HOUR, (after - month_start) / HOUR);
    assert!(
        (lo..=hi).contains(&hours),
        "{hours} hours counted; {lo}–{hi} have passed"
    );
    if hours > 0 {
        assert!(
            by_id(&html, "counted-to").contains("month in progress"),
            "{}",
            by_id(&html, "counted-to")
        );
        // Every passed hour had its twelve readings (the last one, maybe ten minutes short).
        let valid: f64 = by_id(&html, "valid-pct").parse().unwrap();
        assert!(valid > 90.0, "valid data {valid} %");
        // The daily transmission table has the days begun before the time counted, no future day.
        let days = table(&html, "transmission").len();
        assert_eq!(days as i64, (hours - 1) / 24 + 1);
        // The export covers the counted hours only.
        let manifest = std::fs::read_to_string(data.join("MANIFEST")).unwrap();
        let counted_to = chrono::DateTime::from_timestamp_millis(month_start + hours * HOUR)
            .unwrap()
            .with_timezone(&tz)
            .to_rfc3339();
        assert!(manifest.contains(&format!("to={counted_to}")), "{manifest}");
    }
}

#[test]
fn events_are_window_means_in_local_time_without_zero_minute_rows() {
    let (_dir, config) = setup("[http]\nenabled = false\n", &october());
    let (html, _) = report(&config, "2026-10");
    let events = table(&html, "events");
    assert_eq!(events.len(), 1, "one legal event: {events:?}");
    let e = &events[0];
    assert_eq!(e[0], "COD");
    assert_eq!(e[1], "1-hour mean above the limit");
    assert_eq!(e[2], "02/10/2026 01:00");
    assert_eq!(e[3], "02/10/2026 03:00");
    assert_eq!(e[4], "2 h 00 min");
    assert_eq!(e[6], "1.5× to below 3×");
    let vi = table(&html, "vi-events");
    assert_eq!(vi[0][1], "Giá trị trung bình 1 giờ vượt quy chuẩn");
    assert_eq!(vi[0][4], "2 giờ 00 phút");
    for row in events.iter().chain(&vi) {
        assert!(
            !row[4].starts_with("0 h 00") && !row[4].starts_with("0 giờ 00"),
            "{row:?}"
        );
    }
    // The single readings: the two-hour episode and the 20-second one are counted, not listed.
    assert_eq!(by_id(&html, "instant-count"), "2");
    assert_eq!(by_id(&html, "events-count"), "1");
    // No ISO times with milliseconds, no raw scopes.
    assert!(!html.contains("window_3600000"));
    assert!(!html.contains(".000+07:00"));
}

#[tokio::test]
async fn the_dashboard_serves_the_report_to_auditors_from_the_plant_page() {
    let tokens: String = ["viewer", "auditor"]
        .iter()
        .map(|r| {
            format!(
                "[[http.token]]\nname = \"{r}-1\"\nrole = \"{r}\"\nsha256 = \"{}\"\n",
                sha256_hex(format!("tok-{r}").as_bytes())
            )
        })
        .collect();
    let (dir, config) = setup(
        &format!("[http]\nlisten = \"127.0.0.1:0\"\n{tokens}"),
        &october(),
    );
    let mut child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = support::reported_on_stderr(child.stderr.take().unwrap(), Duration::from_secs(30))
        .expect("quantrac did not report its HTTP address");
    assert!(support::http_ready(&base, Duration::from_secs(30)).await);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = format!("{base}/report?station={STATION}&month=2026-10");
    let get = |u: String, role: Option<&str>| {
        let mut req = client.get(u);
        if let Some(r) = role {
            req = req.bearer_auth(format!("tok-{r}"));
        }
        req.send()
    };
    assert_eq!(get(url.clone(), None).await.unwrap().status(), 401);
    assert_eq!(
        get(url.clone(), Some("viewer")).await.unwrap().status(),
        403
    );
    assert_eq!(
        get(format!("{base}/report?station=BN_X_Y"), Some("auditor"))
            .await
            .unwrap()
            .status(),
        400
    );
    let resp = get(url.clone(), Some("auditor")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    let hash = by_id(&html, "manifest-sha256");
    // The export link the report gives downloads the very export it cites.
    let link = html
        .split("<code>")
        .find_map(|s| s.strip_prefix("/api/export?"))
        .map(|s| s[..s.find("</code>").unwrap()].replace("&amp;", "&"))
        .expect("no export link");
    let tar = get(format!("{base}/api/export?{link}"), Some("auditor"))
        .await
        .unwrap();
    assert_eq!(tar.status(), 200);
    let tar_path = dir.path().join("data.tar");
    std::fs::write(&tar_path, tar.bytes().await.unwrap()).unwrap();
    let unpacked = dir.path().join("unpacked");
    let top = quantrac::export::tar::unpack(&tar_path, &unpacked).unwrap();
    assert_eq!(
        sha256_hex(&std::fs::read(top.join("MANIFEST")).unwrap()),
        hash
    );

    // The plant page links the report; an auditor's browser follows it and gets the styled page.
    let browser = support::browser::Browser::start().await;
    // Set the token on the origin before the dashboard runs (without one it would ask for it).
    browser.goto(&format!("{base}/healthz")).await;
    browser
        .eval("localStorage.setItem('quantrac.token', 'tok-auditor'); return true;")
        .await;
    browser.goto(&format!("{base}/#/station/{STATION}")).await;
    let href = browser
        .wait_for(
            "const a = document.querySelector('a.report-link'); return a && a.getAttribute('href')",
            Duration::from_secs(30),
        )
        .await;
    let href = href.as_str().unwrap().to_string();
    assert!(
        href.starts_with(&format!("/report?station={STATION}")),
        "{href}"
    );
    browser
        .eval("document.querySelector('a.report-link').click(); return true;")
        .await;
    let shown = browser
        .wait_for(
            "const h = document.getElementById('manifest-sha256'); return h && h.textContent",
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(shown.as_str().unwrap().len(), 64);
    // The inline style applies under the report's own content policy.
    assert_eq!(
        browser
            .eval("return getComputedStyle(document.querySelector('.nation')).textAlign")
            .await,
        "center"
    );
    browser
        .screenshot(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-route.png"))
        .await;
    terminate(child);
}
