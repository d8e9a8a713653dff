//! The history view of one plant's parameter in a real headless Chromium, checked against the ledger: reached from the
//! plant page, a range set with the local-time pickers, the chart drawn, the min–max–mean shown as `/api/history`
//! gives them and as the range's readings (read back through `/api/readings`) compute them, drag-zoom and pan, quick
//! ranges switching to hourly means; the CSV download holds exactly the ledger's readings of the range, the XLSX
//! download opens (read back with calamine) with the CSV's cells; no horizontal overflow at 390 and 768 px.
//! `/api/history` itself: the resolution it picks by range, raw downsampled to buckets past 5,000 readings, hourly
//! points equal to the stored hourly aggregates, bad parameters answered 400 with a sentence, the viewer role.
//! Screenshots go under `target/tmp/`.

mod support;

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use support::browser::Browser;
use support::daemon::Daemon;

const VIEWER: &str = "viewer-token-for-the-history-test";
const STATION: &str = "BN_KCNTS_NUOC01";
const PARAMETER: &str = "COD";

fn http_section() -> String {
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(VIEWER.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("[[http.token]]\nname = \"viewer-1\"\nrole = \"viewer\"\nsha256 = \"{hash}\"\n")
}

/// One plant at 1.5 × its limits reporting every 10 s (a day of backfill is 8,640 readings a parameter, more than
/// the view draws raw), one compliant plant; the simulator in real time.
fn rest() -> String {
    let station = |id: &str, name: &str, sim: &str| {
        format!(
            "[[station]]\nid = \"{id}\"\nname = \"{name}\"\nzone = \"{name}\"\nprofile = \"qcvn40-2011-b\"\n\
             design_flow_m3_day = 5000\nreceiving_water = {{ type = \"river\", flow_m3_s = 120 }}\ninterval = \"10s\"\n\
             parameters = {{ Flow = {{}}, Temp = {{}}, pH = {{}}, TSS = {{}}, COD = {{}}, NH4 = {{}} }}\nsim = {{ {sim} }}\n\n"
        )
    };
    format!(
        "[sim]\nenabled = true\nspeed = 1\n\n{}{}",
        station(
            STATION,
            "Trạm nước thải Tiên Sơn",
            "via = \"direct\", load = 1.5"
        ),
        station(
            "BN_KCNYP_NUOC01",
            "Trạm nước thải Yên Phong",
            "via = \"direct\""
        )
    )
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn history_url(http: &str, from: i64, to: i64, extra: &str) -> String {
    format!("{http}/api/history?station={STATION}&parameter={PARAMETER}&from={from}&to={to}{extra}")
}

fn shot(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Start the daemon and wait until the simulator's day of backfill is committed (a live reading, stamped after the
/// start, follows it).
async fn start() -> Daemon {
    let started = now_ms();
    let daemon = Daemon::start(&http_section(), &rest()).await;
    let url = history_url(&daemon.http, started + 1000, started + 3_600_000, "");
    let live = support::eventually(Duration::from_secs(120), || {
        let url = url.clone();
        async move { get(&url, Some(VIEWER)).await.1["stats"]["readings"].as_i64() > Some(0) }
    })
    .await;
    assert!(live, "no live reading after the backfill");
    daemon
}

/// The ledger's readings of the series in `[from, to)`, through `GET /api/readings`, in time order.
async fn ledger_readings(http: &str, from: i64, to: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let url = format!(
            "{http}/api/readings?station={STATION}&parameter={PARAMETER}&from={from}&to={to}&after={after}&limit=10000"
        );
        let (status, v) = get(&url, Some(VIEWER)).await;
        assert_eq!(status, 200, "{v}");
        out.extend(v["readings"].as_array().unwrap().iter().cloned());
        match v["next_after"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    out.sort_by_key(|r| r["ts"].as_i64().unwrap());
    out
}

/// RFC 4180 lines (quoted fields with commas, doubled quotes; no line breaks inside fields in this data).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| {
            let (mut fields, mut cur, mut quoted, mut chars) =
                (Vec::new(), String::new(), false, line.chars().peekable());
            while let Some(c) = chars.next() {
                match (c, quoted) {
                    ('"', true) if chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    ('"', _) => quoted = !quoted,
                    (',', false) => fields.push(std::mem::take(&mut cur)),
                    (c, _) => cur.push(c),
                }
            }
            fields.push(cur);
            fields
        })
        .collect()
}

fn opt_f64(s: &str) -> Option<f64> {
    (!s.is_empty()).then(|| s.parse().unwrap())
}

/// The same number, as far as JSON carries it: serde_json's default float parser may be one unit in the last place
/// off the exact value (its `float_roundtrip` feature is off), Rust's `str::parse` is exact.
fn same(csv: Option<f64>, json: Option<f64>) -> bool {
    match (csv, json) {
        (Some(a), Some(b)) => (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(b.abs()),
        (a, b) => a == b,
    }
}

/// Every CSV row is the ledger's reading at the same place: times (UTC and the stations' local time), value, unit,
/// status, flags, limits, multiple and band.
fn check_csv_against_ledger(rows: &[Vec<String>], ledger: &[Value], offset_s: i64) {
    assert_eq!(
        rows[0],
        [
            "station",
            "parameter",
            "time_local",
            "time_utc",
            "value",
            "unit",
            "status",
            "flags",
            "limit_low",
            "limit_high",
            "ratio",
            "band"
        ]
    );
    assert_eq!(rows.len() - 1, ledger.len(), "one CSV row per reading");
    let tz = chrono::FixedOffset::east_opt(offset_s as i32).unwrap();
    for (row, r) in rows[1..].iter().zip(ledger) {
        let ts = r["ts"].as_i64().unwrap();
        let utc = chrono::DateTime::parse_from_rfc3339(&row[3]).unwrap();
        assert_eq!(utc.timestamp_millis(), ts, "{row:?}");
        let local = chrono::DateTime::from_timestamp_millis(ts)
            .unwrap()
            .with_timezone(&tz);
        assert_eq!(row[2], local.format("%Y-%m-%d %H:%M:%S").to_string());
        assert_eq!((row[0].as_str(), row[1].as_str()), (STATION, PARAMETER));
        assert!(
            same(opt_f64(&row[4]), r["value"].as_f64()),
            "{row:?} against {r}"
        );
        assert_eq!(row[5], r["unit"].as_str().unwrap());
        assert_eq!(row[6], r["status"].as_str().unwrap());
        assert_eq!(row[7], r["flags"].as_str().unwrap_or_default());
        assert!(
            same(opt_f64(&row[8]), r["limit_low"].as_f64()),
            "{row:?} against {r}"
        );
        assert!(
            same(opt_f64(&row[9]), r["limit_high"].as_f64()),
            "{row:?} against {r}"
        );
        assert!(
            same(opt_f64(&row[10]), r["ratio"].as_f64()),
            "{row:?} against {r}"
        );
        assert_eq!(row[11], r["band"].as_str().unwrap());
    }
}

/// Min, max and mean of the measuring readings.
fn expected_stats(ledger: &[Value]) -> (f64, f64, f64, usize) {
    let v: Vec<f64> = ledger
        .iter()
        .filter(|r| r["status"] == "measuring")
        .map(|r| r["value"].as_f64().unwrap())
        .collect();
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max, v.iter().sum::<f64>() / v.len() as f64, v.len())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// Wait until the history view shows `hash` (its chart or its "no data" line).
async fn wait_loaded(browser: &Browser, hash: Option<&str>) -> String {
    let cond = match hash {
        Some(h) => format!(
            "const c = document.getElementById('history-chart'); return c && c.dataset.loaded === {} && c.dataset.loaded",
            json!(h)
        ),
        None => "const c = document.getElementById('history-chart'); return c && c.dataset.loaded === location.hash && c.dataset.loaded".to_string(),
    };
    browser
        .wait_for(&cond, Duration::from_secs(30))
        .await
        .as_str()
        .unwrap()
        .to_string()
}

/// The (from, to) of the view's current hash.
async fn shown_range(browser: &Browser) -> (i64, i64) {
    let v = browser
        .eval("const q = new URLSearchParams(location.hash.split('?')[1] || ''); return [+q.get('from'), +q.get('to')]")
        .await;
    (v[0].as_i64().unwrap(), v[1].as_i64().unwrap())
}

/// Fetch a download link of the page from inside the page, as the browser downloads it; its bytes.
async fn download(browser: &Browser, link: &str) -> Vec<u8> {
    browser
        .eval(&format!(
            "window.__dl = null; fetch(document.getElementById({}).href).then(r => {{ if (!r.ok) throw new Error(r.status); return r.arrayBuffer(); }})\
             .then(b => {{ const u = new Uint8Array(b); let s = ''; for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode(...u.subarray(i, i + 8192)); window.__dl = btoa(s); }})\
             .catch(e => window.__dl = 'error:' + e); return true;",
            json!(link)
        ))
        .await;
    let v = browser
        .wait_for("return window.__dl", Duration::from_secs(60))
        .await;
    let text = v.as_str().unwrap();
    assert!(!text.starts_with("error:"), "download {link}: {text}");
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// Pixels of the value series' colour (#12355b) on the chart's canvas.
async fn drawn_pixels(browser: &Browser) -> i64 {
    browser
        .eval(
            "const c = document.querySelector('#history-chart canvas'); if (!c) return 0; \
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; \
             for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - 18) < 30 && Math.abs(d[i + 1] - 53) < 30 && Math.abs(d[i + 2] - 91) < 30 && d[i + 3] > 100) n++; \
             return n;",
        )
        .await
        .as_i64()
        .unwrap_or(0)
}

async fn no_overflow(browser: &Browser, width: u32) {
    browser.set_window_size(width, 900).await;
    let v = browser
        .wait_for(
            &format!("return window.innerWidth <= {width} && [document.documentElement.scrollWidth, window.innerWidth]"),
            Duration::from_secs(10),
        )
        .await;
    // The chart follows the width on resize; give it the frame it redraws in.
    let v2 = browser
        .wait_for(
            "const c = document.querySelector('#history-chart .uplot'); return !c || c.getBoundingClientRect().right <= window.innerWidth + 1 ? [document.documentElement.scrollWidth, window.innerWidth] : false",
            Duration::from_secs(10),
        )
        .await;
    let (scroll, inner) = (v2[0].as_i64().unwrap(), v2[1].as_i64().unwrap());
    assert!(
        scroll <= inner,
        "the history page at {width} px: the page is {scroll} px wide in a {inner} px window (first look: {v})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn history_view_shows_a_range_against_the_ledger_and_downloads_it() {
    let daemon = start().await;
    let (_, stations) = get(&format!("{}/api/stations", daemon.http), Some(VIEWER)).await;
    let offset_s = stations["utc_offset_s"].as_i64().unwrap();
    let browser = Browser::start().await;
    // The token first, on a page of the origin that runs no script (the dashboard would ask for it).
    browser.goto(&format!("{}/healthz", daemon.http)).await;
    browser
        .eval(&format!(
            "localStorage.setItem('quantrac.token', '{VIEWER}'); return true;"
        ))
        .await;
    // From the plant page to the parameter's history.
    browser
        .goto(&format!("{}/#/station/{STATION}", daemon.http))
        .await;
    let clicked = browser
        .wait_for(
            &format!("const e = document.getElementById('error'); if (!e.hidden) return 'error: ' + e.textContent; \
                const a = document.querySelector('a.history-link[data-param={PARAMETER}]'); if (a) a.click(); return !!a"),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(clicked, json!(true), "the plant page");
    let first = wait_loaded(&browser, None).await;
    assert!(
        first.starts_with(&format!("#/history/{STATION}/{PARAMETER}")),
        "{first}"
    );

    // A range of four past hours through the local-time pickers.
    let minute = 60_000;
    let to = (now_ms() - 3_600_000) / minute * minute;
    let from = to - 4 * 3_600_000;
    let local = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms + offset_s * 1000)
            .unwrap()
            .format("%Y-%m-%dT%H:%M")
            .to_string()
    };
    browser
        .eval(&format!(
            "document.getElementById('h-from').value = {}; document.getElementById('h-to').value = {}; \
             document.getElementById('h-apply').click(); return true;",
            json!(local(from)),
            json!(local(to))
        ))
        .await;
    let hash = format!("#/history/{STATION}/{PARAMETER}?from={from}&to={to}");
    wait_loaded(&browser, Some(&hash)).await;
    assert!(drawn_pixels(&browser).await > 50, "the chart drew no line");

    // The numbers shown: as the API gives them, and as the range's readings compute them.
    let ledger = ledger_readings(&daemon.http, from, to).await;
    assert!(
        ledger.len() > 1000,
        "only {} readings in the range",
        ledger.len()
    );
    let (min, max, mean, valid) = expected_stats(&ledger);
    let (_, api) = get(&history_url(&daemon.http, from, to, ""), Some(VIEWER)).await;
    assert_eq!(api["resolution"], "raw");
    assert_eq!(api["stats"]["valid"].as_u64(), Some(valid as u64));
    assert_eq!(api["stats"]["readings"].as_u64(), Some(ledger.len() as u64));
    let shown = browser
        .eval("return Object.fromEntries([...document.querySelectorAll('#history-stats [data-stat]')].map(n => [n.dataset.stat, n.dataset.value]))")
        .await;
    let number = |k: &str| shown[k].as_str().unwrap().parse::<f64>().unwrap();
    assert!(
        close(number("min"), min) && close(number("max"), max) && close(number("mean"), mean),
        "shown {shown}, expected {min} {max} {mean}"
    );
    assert_eq!(number("valid") as usize, valid);
    let limit = ledger.last().unwrap()["limit_high"].as_f64().unwrap();
    assert_eq!(number("limit"), limit);
    let over = ledger
        .iter()
        .filter(|r| {
            r["status"] == "measuring"
                && !["compliant", "no_limit", "not_evaluated"]
                    .contains(&r["band"].as_str().unwrap())
        })
        .count();
    assert_eq!(number("exceeding") as usize, over);
    assert!(over > 0, "a plant at 1.5 × its limit exceeds it");
    let text = browser
        .eval("return document.getElementById('history-stats').innerText")
        .await;
    assert!(
        text.as_str().unwrap().contains("mg/L"),
        "units shown: {text}"
    );
    browser.screenshot(&shot("history.png")).await;

    // Downloads: the CSV is the ledger's readings of the range; the XLSX has the CSV's cells.
    let csv = String::from_utf8(download(&browser, "h-csv").await).unwrap();
    let rows = csv_rows(&csv);
    check_csv_against_ledger(&rows, &ledger, offset_s);
    let xlsx = download(&browser, "h-xlsx").await;
    check_xlsx_against_csv(&xlsx, &rows);

    // Zoom: a drag across the middle half of the chart shows that part of the range.
    browser
        .eval("const u = historyPlot; const w = u.bbox.width / devicePixelRatio; u.setSelect({ left: w / 4, width: w / 2, top: 0, height: 10 }, true); return true;")
        .await;
    let zoomed = wait_loaded(&browser, None).await;
    let (zf, zt) = shown_range(&browser).await;
    assert!(
        zf > from && zt < to && zt - zf < (to - from) * 3 / 4,
        "zoomed to {zoomed}"
    );
    // Pan: later by half the range.
    browser
        .eval("document.querySelector('[data-nav=h_later]').click(); return true;")
        .await;
    browser
        .wait_for(
            &format!("return !location.hash.includes('from={zf}&')"),
            Duration::from_secs(10),
        )
        .await;
    wait_loaded(&browser, None).await;
    let (pf, pt) = shown_range(&browser).await;
    assert_eq!((pf - zf, pt - zt), ((zt - zf) / 2, (zt - zf) / 2));
    // Quick range 7 days: hourly means, chosen automatically.
    browser
        .eval("document.querySelector('.h-quick[data-range=\"604800000\"]').click(); return true;")
        .await;
    browser
        .wait_for("const n = document.querySelector('.h-note'); return n && n.dataset.resolution === 'hour' && document.getElementById('history-chart').dataset.loaded === location.hash", Duration::from_secs(30))
        .await;
    assert!(drawn_pixels(&browser).await > 10, "no hourly line drawn");
    browser.screenshot(&shot("history-7d.png")).await;

    browser.goto(&format!("{}/{hash}", daemon.http)).await;
    wait_loaded(&browser, Some(&hash)).await;
    for width in [390, 768] {
        no_overflow(&browser, width).await;
        browser
            .screenshot(&shot(&format!("history-{width}.png")))
            .await;
    }
}

/// The XLSX's first sheet holds the CSV's rows: text as text, numbers as numbers, empty cells empty.
fn check_xlsx_against_csv(bytes: &[u8], rows: &[Vec<String>]) {
    use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
    let mut book: Xlsx<_> =
        open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).expect("the XLSX opens");
    let sheet = book
        .worksheet_range_at(0)
        .expect("a sheet")
        .expect("the sheet reads");
    let cells: Vec<Vec<Data>> = sheet.rows().map(|r| r.to_vec()).collect();
    assert_eq!(cells.len(), rows.len(), "one spreadsheet row per CSV line");
    for (x, c) in cells.iter().zip(rows) {
        assert_eq!(x.len(), c.len(), "{x:?} against {c:?}");
        for (cell, text) in x.iter().zip(c) {
            match cell {
                Data::String(s) => assert_eq!(s, text),
                Data::Float(f) => assert_eq!(*f, text.parse::<f64>().unwrap(), "{text}"),
                Data::Int(i) => assert_eq!(*i as f64, text.parse::<f64>().unwrap()),
                Data::Empty => assert_eq!(text, ""),
                other => panic!("unexpected cell {other:?} for {text:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn history_api_picks_resolutions_bounds_points_and_refuses_bad_requests() {
    let daemon = start().await;
    let http = &daemon.http;
    let now = now_ms();
    let day = 86_400_000;
    // The viewer role is required.
    let (status, _) = get(&history_url(http, now - day, now, ""), None).await;
    assert_eq!(status, 401);
    let (status, _) = get(
        &format!(
            "{http}/api/history/download?station={STATION}&parameter={PARAMETER}&from={}&to={now}",
            now - day
        ),
        None,
    )
    .await;
    assert_eq!(status, 401);

    // Automatic resolution by range.
    for (span, expected) in [(day, "raw"), (7 * day, "hour"), (365 * day, "day")] {
        let (status, v) = get(&history_url(http, now - span, now, ""), Some(VIEWER)).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            (v["resolution"].as_str(), v["auto"].as_bool()),
            (Some(expected), Some(true)),
            "{span}"
        );
        assert!(
            v["points"]["ts"].as_array().unwrap().len()
                <= v["max_points"].as_u64().unwrap() as usize
        );
    }
    // A day at 10 s is 8,640 readings: drawn raw as buckets (mean, min and max) that hold every measuring reading.
    let (_, raw) = get(
        &history_url(http, now - day, now, "&resolution=raw"),
        Some(VIEWER),
    )
    .await;
    assert_eq!(raw["auto"], false);
    let bucket = raw["bucket_ms"]
        .as_i64()
        .expect("a day of 10 s readings is drawn in buckets");
    let ts = raw["points"]["ts"].as_array().unwrap();
    assert!(
        ts.len() <= 5000 && ts.len() as i64 >= day / bucket / 2,
        "{} points of {bucket} ms",
        ts.len()
    );
    let valid: i64 = raw["points"]["valid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(valid, raw["stats"]["valid"].as_i64().unwrap());
    for i in 0..ts.len() {
        let p = |k: &str| raw["points"][k][i].as_f64().unwrap();
        assert!(p("min") <= p("mean") + 1e-9 && p("mean") <= p("max") + 1e-9);
    }
    // Hourly points are the stored hourly aggregates (the aggregator follows the backfill: wait for the day's hours).
    let hours = history_url(http, now - day, now, "&resolution=hour");
    let caught_up = support::eventually(Duration::from_secs(120), || {
        let url = hours.clone();
        async move {
            get(&url, Some(VIEWER)).await.1["points"]["ts"]
                .as_array()
                .map_or(0, Vec::len)
                >= 23
        }
    })
    .await;
    assert!(caught_up, "the hourly aggregates did not cover the day");
    let (_, hourly) = get(
        &history_url(http, now - day, now, "&resolution=hour"),
        Some(VIEWER),
    )
    .await;
    assert_eq!(hourly["source"], "aggregates");
    let (_, stored) = get(
        &format!("{http}/api/aggregates?station={STATION}&parameter={PARAMETER}&window=hour&from={}&to={now}", now - day),
        Some(VIEWER),
    )
    .await;
    let stored = stored["aggregates"].as_array().unwrap();
    let shown = hourly["points"]["ts"].as_array().unwrap();
    assert!(shown.len() >= 20, "{} hours", shown.len());
    // The newest hour may be recomputed between the two calls: compare the closed ones.
    for (i, t) in shown.iter().enumerate().take(shown.len() - 1) {
        let a = stored
            .iter()
            .find(|a| &a["window_start"] == t)
            .expect("a stored hour");
        assert_eq!(hourly["points"]["mean"][i], a["mean"]);
        assert_eq!(hourly["points"]["max"][i], a["max"]);
    }

    // Bad requests: a 400 that says what was expected.
    let cases = [
        (format!("{http}/api/history?parameter={PARAMETER}&from=0&to=1"), "station is required"),
        (format!("{http}/api/history?station=BN_NOPE_NUOC01&parameter=COD&from=0&to=1"), "unknown station"),
        (format!("{http}/api/history?station={STATION}&parameter=Hg&from=0&to=1"), "has no parameter \"Hg\""),
        (format!("{http}/api/history?station={STATION}&parameter=COD&from=2&to=1"), "to must be after from"),
        (format!("{http}/api/history?station={STATION}&parameter=COD&from=yesterday&to=1"), "from: \"yesterday\" is not a time"),
        (history_url(http, now - day, now, "&resolution=weekly"), "expected auto, raw, hour or day"),
        (history_url(http, now - 800 * day, now, "&resolution=hour"), "more than 10000 points; choose day"),
        (history_url(http, now - 11 * 366 * day, now, ""), "longer than ten years"),
        (history_url(http, now - day, now, "&window=hour"), "unknown parameter \"window\""),
        (format!("{http}/api/history/download?station={STATION}&parameter=COD&from={}&to={now}&format=pdf", now - day), "expected csv or xlsx"),
    ];
    for (url, message) in cases {
        let (status, v) = get(&url, Some(VIEWER)).await;
        assert_eq!(status, 400, "{url}: {v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{url}: {error:?} should say {message:?}"
        );
    }
    // A series with nothing stored in the range: empty, not an error.
    let (status, v) = get(&history_url(http, 0, 3_600_000, ""), Some(VIEWER)).await;
    assert_eq!(
        (status, v["stats"]["readings"].as_i64()),
        (200, Some(0)),
        "{v}"
    );
}
