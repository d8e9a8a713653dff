//! Limits that change on a date (`[[station.regime]]`), against the quantrac binary: config errors with key paths,
//! `check-config`'s timeline, readings of the same value judged compliant before the change and in violation after
//! it (a late reading observed before the change, arriving after it, judged by the old regime), with events,
//! alerts and the summary export agreeing, and the monthly report showing the limits in force in its month (both,
//! with dates, in a month that crosses the change).
//!
//! Hand-computed limits: COD QCVN 40:2011 column B, C=150 × Kq 1.0 (river, Q=120 m³/s) × Kf 0.9 (F=13,000 m³/day)
//! = 135 mg/L until the change; the (made-up) permit's 100 mg/L from it. 120 mg/L is compliant under the first and
//! 1.2× (band 1_1_to_1_5) under the second.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chrono::{FixedOffset, NaiveDate, TimeZone};
use quantrac::ledger::alert_list::AlertFilter;
use quantrac::ledger::query::Table;
use quantrac::ledger::Reader;
use quantrac::model::Timestamp;
use support::{terminate, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_quantrac");
const STATION: &str = "BN_KCNTS_NUOC01";
const HOUR: i64 = 3_600_000;
const STEP: i64 = 300_000;

fn tz() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).unwrap()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// The station with column B limits and, from `change` (yyyy-MM-dd), the permit's COD 100 mg/L and pH 6–9.
fn station(change: &str) -> String {
    format!(
        "[[station]]\nid = \"{STATION}\"\nname = \"Tiên Sơn\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 13000\n\
         receiving_water = {{ type = \"river\", flow_m3_s = 120 }}\nparameters = {{ COD = {{}}, pH = {{}} }}\n\
         [[station.regime]]\nfrom = \"{change}\"\nname = \"QCVN 40:2025/BTNMT (permit 1/GPMT)\"\n\
         limits = {{ COD = 100, pH = [6, 9] }}\n"
    )
}

fn problems(text: &str) -> Vec<String> {
    quantrac::reload::checked_from_str(text, Path::new("q.toml"), Path::new("."))
        .map(|_| ())
        .expect_err("the config was accepted")
        .lines()
}

#[test]
fn config_errors_name_every_regime_key() {
    let base = station("2032-01-01");
    let text = format!(
        "{base}\
         [[station.regime]]\nfrom = \"2032-01-01\"\nlimits = {{ COD = 90, pH = [6, 9] }}\n\
         [[station.regime]]\nfrom = \"2031-06-01\"\nprofile = \"qcvn40-2011-a\"\n\
         [[station.regime]]\nfrom = \"1/1/2040\"\nlimits = {{ TSS = 50, COD = -1, pH = [9, 6] }}\n\
         [[station.regime]]\nfrom = \"2041-01-01\"\n\
         [[station.regime]]\nfrom = \"2042-01-01\"\nprofile = \"qcvn2025\"\n"
    );
    let p = problems(&text);
    let want = [
        "q.toml: station[0].regime[1].from: 2032-01-01 is also regime[0]'s date; each date starts one regime",
        "q.toml: station[0].regime[2].from: 2031-06-01 is before regime[1]'s 2032-01-01; list regimes in date order",
        "q.toml: station[0].regime[3].from: \"1/1/2040\" is not a date; expected yyyy-MM-dd, e.g. \"2032-01-01\" (in force from local midnight)",
        "q.toml: station[0].regime[3].limits.COD: -1 is not a positive limit",
        "q.toml: station[0].regime[3].limits.TSS: parameter \"TSS\" is not monitored by this station; expected one of COD, pH",
        "q.toml: station[0].regime[3].limits.pH: [9, 6] is not a range; expected [low, high] with low < high",
        "q.toml: station[0].regime[4]: incomplete: give the limits in force from this date (limits = { COD = 75, … }, the permit's values) or a profile",
        "q.toml: station[0].regime[5].profile: unknown limit profile \"qcvn2025\"; known profiles: qcvn40-2011-a, qcvn40-2011-b (built in, or a *.toml file in daemon.profiles_dir)",
    ];
    assert_eq!(p, want, "{p:#?}");

    // A regime that leaves out a limit the one before it had: the permit's value is missing.
    let p = problems(&station("2032-01-01").replace(", pH = [6, 9]", ""));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("q.toml: station[0].regime[0].limits.pH: missing: QCVN 40:2011/BTNMT column B limits pH"),
        "{p:#?}"
    );
    // An unknown key inside a regime is refused with its path.
    let e = quantrac::config::Config::from_str(
        &station("2032-01-01").replace("name = \"QCVN", "kq = 1.0\nname = \"QCVN"),
        Path::new("q.toml"),
        Path::new("."),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("q.toml: station[0].regime[0].kq: unknown field `kq`"),
        "{e}"
    );
}

#[test]
fn check_config_prints_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.toml");
    std::fs::write(&file, station("2032-01-01")).unwrap();
    let out = run(&["check-config", "--config", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let want = "  limits: 2 regimes\n\
                \x20 from the start until 31/12/2031: QCVN 40:2011/BTNMT column B\n\
                \x20   COD: C=150 × Kq 1.0 (river, Q=120 m³/s) × Kf 0.9 (F=13,000 m³/day) = 135 mg/L\n\
                \x20   pH: 5.5–9 (no coefficients)\n\
                \x20 from 01/01/2032: QCVN 40:2025/BTNMT (permit 1/GPMT)\n\
                \x20   COD: permit limit 100 mg/L\n\
                \x20   pH: permit limit 6–9\n";
    assert!(text.contains(want), "{text}");
}

/// One 5-minute COD and pH record as a Circular 10 file (local time, decimal commas, CRLF).
fn tt10_file(ts: i64, cod: f64) -> (String, String) {
    let t = Timestamp(ts)
        .to_local(tz())
        .format("%Y%m%d%H%M%S")
        .to_string();
    let v = cod.to_string().replace('.', ",");
    (
        format!("{STATION}_{t}.txt"),
        format!("COD\t{v}\tmg/L\t{t}\t00\r\npH\t7,2\t-\t{t}\t00\r\n"),
    )
}

fn readings(ledger: &Path) -> i64 {
    Reader::open(ledger)
        .and_then(|r| r.count(Table::Readings))
        .unwrap_or(0)
}

fn query<T: rusqlite::types::FromSql>(ledger: &Path, sql: &str) -> Vec<Vec<Option<T>>> {
    let r = Reader::open(ledger).unwrap();
    let mut st = r.connection().prepare(sql).unwrap();
    let n = st.column_count();
    let rows = st
        .query_map([], |x| (0..n).map(|i| x.get(i)).collect())
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// The alert engine has taken every committed reading.
fn alerts_caught_up(ledger: &Path) -> bool {
    Reader::open(ledger)
        .ok()
        .and_then(|r| {
            r.connection()
                .query_row(
                    "SELECT (SELECT position FROM cursors WHERE name = 'alerts:readings') = (SELECT MAX(seq) FROM readings)",
                    [],
                    |x| x.get::<_, Option<bool>>(0),
                )
                .ok()
                .flatten()
        })
        .unwrap_or(false)
}

/// The alerts about COD that stand (withdrawn ones left out).
fn cod_alerts(ledger: &Path) -> Vec<quantrac::ledger::alerts::StoredAlert> {
    let all = AlertFilter {
        limit: i64::MAX,
        ..AlertFilter::default()
    };
    let Ok(reader) = Reader::open(ledger) else {
        return Vec::new();
    };
    reader
        .alerts(&all)
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.alert)
        .filter(|a| a.subject == "COD" && a.state != "withdrawn")
        .collect()
}

/// The local midnight that starts the day holding `now − 4 h`: three hours after it have passed by at least an hour.
fn recent_midnight() -> (i64, NaiveDate) {
    let t = Timestamp(Timestamp::now().0 - 4 * HOUR).to_local(tz());
    let day = t.date_naive();
    let m = tz()
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .timestamp_millis();
    (m, day)
}

/// The change at local midnight M: the records of M to M+3h arrive first (120 mg/L for two hours, then 80), those
/// of M−2h to M (120 mg/L) after them, late. The same 120 is compliant before M and a violation from M.
#[test]
fn readings_are_judged_by_the_regime_in_force_at_their_observation_time() {
    let (m, day) = recent_midnight();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quantrac.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\npath = \"ledger.db\"\nsynchronous = \"normal\"\n[http]\nenabled = false\n\
             [tt10]\nlanding = [\"landing\"]\nsettle = \"200ms\"\nscan_interval = \"100ms\"\n\n{}",
            station(&day.format("%Y-%m-%d").to_string())
        ),
    )
    .unwrap();
    let landing = dir.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let ledger = dir.path().join("ledger.db");
    let after: Vec<(i64, f64)> = (0..36)
        .map(|i| (m + i * STEP, if i < 24 { 120.0 } else { 80.0 }))
        .collect();
    let before: Vec<(i64, f64)> = (1..=24).map(|i| (m - i * STEP, 120.0)).collect();
    let child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("run.log")).unwrap())
        .spawn()
        .unwrap();
    let mut expected = 0;
    for group in [&after, &before] {
        for (ts, cod) in group.iter() {
            let (name, text) = tt10_file(*ts, *cod);
            std::fs::write(landing.join(name), text).unwrap();
        }
        expected += 2 * group.len() as i64;
        if !wait_until(Duration::from_secs(30), || readings(&ledger) == expected) {
            terminate(child);
            panic!("{} of {expected} readings committed", readings(&ledger));
        }
    }
    // The alert engine has taken every reading, and the judged windows after the aggregator (~1 s behind).
    let settled = wait_until(Duration::from_secs(30), || {
        alerts_caught_up(&ledger) && cod_alerts(&ledger).iter().any(|a| a.kind == "violation")
    });
    terminate(child);
    assert!(
        settled,
        "no COD violation alert within 30 s: {:#?}",
        cod_alerts(&ledger)
    );

    // Every reading: the limit and band of the regime in force at its observation time.
    let rows: Vec<Vec<Option<String>>> = query(
        &ledger,
        "SELECT CAST(r.ts AS TEXT), CAST(r.value AS TEXT), CAST(r.limit_high AS TEXT), r.band FROM readings r \
         JOIN parameters p ON p.id = r.parameter_id WHERE p.symbol = 'COD' ORDER BY r.ts",
    );
    assert_eq!(rows.len(), 60);
    for r in &rows {
        let ts: i64 = r[0].as_deref().unwrap().parse().unwrap();
        let value: f64 = r[1].as_deref().unwrap().parse().unwrap();
        let (limit, band) = match (ts < m, value) {
            (true, _) => ("135.0", "compliant"),
            (false, v) if v > 100.0 => ("100.0", "1_1_to_1_5"),
            (false, _) => ("100.0", "compliant"),
        };
        assert_eq!(
            (r[2].as_deref(), r[3].as_deref()),
            (Some(limit), Some(band)),
            "reading at {ts} (change at {m})"
        );
    }
    // Hourly windows: judged by the regime in force at their start.
    let hours: Vec<Vec<Option<String>>> = query(
        &ledger,
        &format!(
            "SELECT CAST(a.window_start AS TEXT), CAST(a.limit_high AS TEXT), a.verdict FROM aggregates a \
             JOIN parameters p ON p.id = a.parameter_id WHERE p.symbol = 'COD' AND a.window_ms = {HOUR} \
             ORDER BY a.window_start"
        ),
    );
    let want: Vec<Vec<Option<String>>> = [
        (m - 2 * HOUR, "135.0", "compliant"),
        (m - HOUR, "135.0", "compliant"),
        (m, "100.0", "1_1_to_1_5"),
        (m + HOUR, "100.0", "1_1_to_1_5"),
        (m + 2 * HOUR, "100.0", "compliant"),
    ]
    .iter()
    .map(|(s, l, v)| {
        vec![
            Some(s.to_string()),
            Some(l.to_string()),
            Some(v.to_string()),
        ]
    })
    .collect();
    assert_eq!(hours, want);
    // Events: the window event and the single-reading episode both start at the change, none before it.
    let events: Vec<Vec<Option<i64>>> = query(
        &ledger,
        "SELECT e.start, e.end FROM events e JOIN parameters p ON p.id = e.parameter_id \
         WHERE p.symbol = 'COD' ORDER BY e.scope, e.start",
    );
    assert_eq!(
        events,
        [
            vec![Some(m), Some(m + 2 * HOUR)],
            vec![Some(m), Some(m + 2 * HOUR)],
        ],
        "instant then window_{HOUR}"
    );
    // Alerts: a COD violation from the change's window, nothing about COD before it.
    let alerts = cod_alerts(&ledger);
    assert!(
        alerts.iter().any(|a| a.kind == "violation" && a.since == m),
        "{alerts:#?}"
    );
    assert!(alerts.iter().all(|a| a.since >= m), "{alerts:#?}");
    // Its message names the limit its window was judged against (the new one), though the readings that arrived
    // last, before the change, carry the old one.
    for a in alerts.iter().filter(|a| a.kind == "violation") {
        for json in [&a.detail, &a.peak] {
            let d: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(d["limit_high"], serde_json::json!(100.0), "{a:#?}");
        }
    }

    // The summary export counts the two violating hours after the change and none before.
    let out = dir.path().join("export");
    let from = Timestamp(m - 2 * HOUR).to_local(tz()).to_rfc3339();
    let to = Timestamp(m + 3 * HOUR).to_local(tz()).to_rfc3339();
    let o = run(&[
        "export",
        "--config",
        config.to_str().unwrap(),
        "--from",
        &from,
        "--to",
        &to,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let lines: Vec<&str> = summary.lines().collect();
    let head: Vec<&str> = lines[0].split(',').collect();
    let row: Vec<&str> = lines[1].split(',').collect();
    let col = |name: &str| row[head.iter().position(|h| *h == name).unwrap()];
    assert_eq!(col("hours_evaluated"), "5", "{summary}");
    assert_eq!(col("hours_compliant"), "3", "{summary}");
    assert_eq!(col("exceedances_1_1_to_1_5"), "2", "{summary}");
}

/// The monthly report shows the limits in force in its month: the old ones before the change, the new ones after,
/// and both with their days in the month that crosses it.
#[test]
fn the_monthly_report_shows_the_limits_in_force_that_month() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("q.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\npath = \"ledger.db\"\n[http]\nenabled = false\n{}",
            station("2026-03-15")
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["ingest", "--config", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let report = |month: &str| {
        let out = dir.path().join(format!("r-{month}.html"));
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
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let html = std::fs::read_to_string(out).unwrap();
        let start = html.find("id=\"limits\"").unwrap();
        let end = start + html[start..].find("</table>").unwrap();
        (html.clone(), html[start..end].to_string())
    };
    let (_, feb) = report("2026-02");
    assert!(feb.contains("≤ 135") && !feb.contains("≤ 100"), "{feb}");
    let (_, apr) = report("2026-04");
    assert!(apr.contains("≤ 100") && !apr.contains("≤ 135"), "{apr}");
    let (html, mar) = report("2026-03");
    assert!(
        mar.contains("until 14/03/2026: C=150 × Kq 1.0 (river, Q=120 m³/s) × Kf 0.9 (F=13,000 m³/day) = 135 mg/L"),
        "{mar}"
    );
    assert!(
        mar.contains("from 15/03/2026: permit limit 100 mg/L"),
        "{mar}"
    );
    assert!(
        html.contains("until 14/03/2026: QCVN 40:2011/BTNMT column B<br>from 15/03/2026: QCVN 40:2025/BTNMT (permit 1/GPMT)"),
        "the regimes of the month are listed"
    );
}
