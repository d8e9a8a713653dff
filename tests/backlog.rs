//! Backlog equivalence for compliance events and alerts, against the quantrac binary: one station sends an hour
//! live, then resends the six hours before it (two exceedance episodes and a violating hour) newest first, as
//! Circular 10 files dropped into the landing folder of a running daemon (ledger A). A second daemon gets the same
//! files in observation order (ledger B). The events and alerts of A equal those of B, A records the
//! re-derivations, and no event has zero length. Each daemon forwards to its own VictoriaMetrics: the `event` and
//! `alert` points that stand (not marked `withdrawn`) are the same in both.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::FixedOffset;
use quantrac::compliance::hourly::window_start;
use quantrac::ledger::alerts::AlertFilter;
use quantrac::ledger::query::Table;
use quantrac::ledger::Reader;
use quantrac::model::Timestamp;
use support::victoria::Victoria;
use support::{terminate, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_quantrac");
const STATION: &str = "BN_KCNTS_NUOC01";
const HOUR: i64 = 3_600_000;
const STEP: i64 = 300_000;

fn tz() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).unwrap()
}

/// A config in `dir` with the station (COD Cmax 135 mg/L, TSS 90 mg/L, pH 5.5–9), a landing folder and an
/// InfluxDB forwarder to `influx`.
fn write_config(dir: &Path, influx: &str) -> PathBuf {
    let text = format!(
        "[ledger]\npath = \"ledger.db\"\nsynchronous = \"normal\"\n[http]\nenabled = false\n\
         [tt10]\nlanding = [\"landing\"]\nsettle = \"200ms\"\nscan_interval = \"100ms\"\n\n\
         [[forward.influx]]\nname = \"vm\"\nurl = \"{influx}\"\nbucket = \"q\"\nbatch_wait = \"10ms\"\n\
         [[station]]\nid = \"{STATION}\"\nname = \"Tiên Sơn\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 5000\n\
         receiving_water = {{ type = \"river\", flow_m3_s = 120 }}\nparameters = {{ COD = {{}}, TSS = {{}}, pH = {{}} }}\n"
    );
    let path = dir.join("quantrac.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::create_dir_all(dir.join("landing")).unwrap();
    path
}

/// One 5-minute record: COD, TSS, pH at `ts`.
struct Record {
    ts: i64,
    cod: f64,
    tss: f64,
    ph: f64,
}

/// Seven hours ending at the start of the current local hour (every window closed), 5-minute records. In the
/// backlog (hours 0–5): an instant COD episode in hour 1, a violating COD hour (hour 3, every reading above the
/// limit), a second episode in hour 5 split by one compliant reading, a TSS spike and a pH excursion.
fn records() -> Vec<Record> {
    let now = Timestamp::now();
    let end = window_start(now, 7 * 3600, HOUR).millis();
    let start = end - 7 * HOUR;
    (0..84)
        .map(|i| {
            let cod = match i {
                14..=16 => 150.0,
                36..=47 => 180.0 + f64::from(i % 4) * 10.0,
                62 | 64 | 65 => 210.0,
                63 => 120.0,
                _ => 90.0 + f64::from(i % 7),
            };
            Record {
                ts: start + i64::from(i) * STEP,
                cod,
                tss: if i == 50 {
                    140.0
                } else {
                    40.0 + f64::from(i % 5)
                },
                ph: if (20..=21).contains(&i) { 9.4 } else { 7.2 },
            }
        })
        .collect()
}

/// The record as a Circular 10 file (local time, decimal commas, CRLF).
fn tt10_file(r: &Record) -> (String, String) {
    let t = Timestamp(r.ts)
        .to_local(tz())
        .format("%Y%m%d%H%M%S")
        .to_string();
    let v = |x: f64| x.to_string().replace('.', ",");
    (
        format!("{STATION}_{t}.txt"),
        format!(
            "COD\t{}\tmg/L\t{t}\t00\r\nTSS\t{}\tmg/L\t{t}\t00\r\npH\t{}\t-\t{t}\t00\r\n",
            v(r.cod),
            v(r.tss),
            v(r.ph)
        ),
    )
}

fn readings(ledger: &Path) -> i64 {
    Reader::open(ledger)
        .and_then(|r| r.count(Table::Readings))
        .unwrap_or(0)
}

/// Every event row: station, parameter, scope, start, end, last, band, peak band, peak multiple.
type Row = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    i64,
    String,
    String,
    Option<f64>,
);

fn events(ledger: &Path) -> Vec<Row> {
    let r = Reader::open(ledger).unwrap();
    let mut st = r
        .connection()
        .prepare(
            "SELECT s.code, p.symbol, e.scope, e.start, e.end, e.last, e.band, e.peak_band, e.peak_ratio FROM events e \
             JOIN stations s ON s.id = e.station_id JOIN parameters p ON p.id = e.parameter_id \
             ORDER BY s.code, p.symbol, e.scope, e.start",
        )
        .unwrap();
    let rows = st
        .query_map([], |x| {
            Ok((
                x.get(0)?,
                x.get(1)?,
                x.get(2)?,
                x.get(3)?,
                x.get(4)?,
                x.get(5)?,
                x.get(6)?,
                x.get(7)?,
                x.get(8)?,
            ))
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

fn revisions(ledger: &Path, scope: &str) -> i64 {
    Reader::open(ledger)
        .unwrap()
        .connection()
        .query_row(
            "SELECT COUNT(*) FROM event_revisions WHERE scope = ?1",
            [scope],
            |r| r.get(0),
        )
        .unwrap()
}

fn assert_no_zero_length(rows: &[Row]) {
    for r in rows {
        assert!(r.4.is_none_or(|end| end > r.3), "zero-length event {r:?}");
    }
}

/// Every alert that stands (withdrawn ones left out), by kind, subject and start: (kind, subject, state, since,
/// raised, last bad, cleared, peak JSON). The latest observation (`detail`) is left out: a window judged while its
/// history was still arriving shows a partial mean there, in whatever order the files came. So are flat-line and
/// spike alerts: those flags are judged at ingest against the reading that arrived before (not yet in observation
/// order), so a backlog sent newest first is flagged differently.
type AlertRow = (String, String, String, i64, i64, i64, Option<i64>, String);

fn alerts(ledger: &Path) -> Vec<AlertRow> {
    let all = AlertFilter {
        limit: i64::MAX,
        ..AlertFilter::default()
    };
    let Ok(reader) = Reader::open(ledger) else {
        return Vec::new();
    };
    let mut rows: Vec<AlertRow> = reader
        .alerts(&all)
        .unwrap()
        .into_iter()
        .map(|a| a.alert)
        .filter(|a| a.state != "withdrawn")
        .filter(|a| !(a.kind == "quality" && !a.subject.ends_with(":completeness")))
        .map(|a| {
            (
                a.kind, a.subject, a.state, a.since, a.raised, a.updated, a.cleared, a.peak,
            )
        })
        .collect();
    rows.sort_by(|x, y| (&x.0, &x.1, x.3).cmp(&(&y.0, &y.1, y.3)));
    rows
}

fn alert_revisions(ledger: &Path) -> i64 {
    Reader::open(ledger)
        .unwrap()
        .connection()
        .query_row("SELECT COUNT(*) FROM alert_revisions", [], |r| r.get(0))
        .unwrap()
}

/// Whether the alert engine has taken every committed reading, and the forwarder has sent every event, alert and
/// withdrawn point.
fn caught_up(ledger: &Path) -> bool {
    let Ok(reader) = Reader::open(ledger) else {
        return false;
    };
    reader
        .connection()
        .query_row(
            "SELECT (SELECT position FROM cursors WHERE name = 'alerts:readings') = (SELECT MAX(seq) FROM readings) \
             AND (SELECT position FROM cursors WHERE name = 'influx:vm:events') = (SELECT IFNULL(MAX(change_seq), 0) FROM events) \
             AND (SELECT position FROM cursors WHERE name = 'influx:vm:alerts') = (SELECT IFNULL(MAX(change_seq), 0) FROM alerts) \
             AND (SELECT position FROM cursors WHERE name = 'influx:vm:withdrawn') = (SELECT IFNULL(MAX(seq), 0) FROM withdrawn_points)",
            [],
            |r| r.get::<_, Option<bool>>(0),
        )
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Every `event` and `alert` point in VictoriaMetrics, as its tags and time, with whether a write marked it
/// withdrawn (every write of one carries `withdrawn`, 0 or 1). Flat-line and spike alerts are left out, as in
/// [`alerts`].
fn points(
    vm: &Victoria,
    rt: &tokio::runtime::Runtime,
) -> std::collections::BTreeMap<(String, i64), bool> {
    let mut out = std::collections::BTreeMap::new();
    for metric in ["event_withdrawn", "alert_withdrawn"] {
        for (labels, value, ts) in rt.block_on(vm.export(metric)) {
            let flag_alert = labels["kind"] == "quality"
                && !labels["parameter"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(":completeness"));
            if !flag_alert {
                *out.entry((labels.to_string(), ts)).or_default() |= value == 1.0;
            }
        }
    }
    out
}

/// A running daemon given `groups` of files in turn, each group committed before the next is dropped (its files
/// newest first). Stopped (SIGTERM) once `done` holds for its ledger, or after 30 s; returns whether it held.
fn daemon(
    dir: &Path,
    influx: &str,
    groups: Vec<&[Record]>,
    done: impl Fn(&Path) -> bool,
) -> (PathBuf, bool) {
    let config = write_config(dir, influx);
    let ledger = dir.join("ledger.db");
    let landing = dir.join("landing");
    let child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("run.log")).unwrap())
        .spawn()
        .unwrap();
    let mut expected = 0;
    for group in groups {
        for r in group.iter().rev() {
            let (name, text) = tt10_file(r);
            std::fs::write(landing.join(name), text).unwrap();
        }
        expected += 3 * group.len() as i64;
        if !wait_until(Duration::from_secs(30), || readings(&ledger) == expected) {
            terminate(child);
            panic!(
                "the landing folder's files were not all committed: {} of {expected} readings",
                readings(&ledger)
            );
        }
    }
    let settled = wait_until(Duration::from_secs(30), || done(&ledger));
    // SIGTERM: the writer brings the aggregates (and window events) up to date before it exits.
    terminate(child);
    (ledger, settled)
}

/// Ledger B: the records in observation order, half an hour at a time.
fn in_order(dir: &Path, influx: &str, records: &[Record]) -> PathBuf {
    let (ledger, settled) = daemon(dir, influx, records.chunks(6).collect(), caught_up);
    assert!(
        settled,
        "the alert engine did not take every reading within 30 s"
    );
    ledger
}

/// Ledger A: the live hour's files in order, then the backlog's half hours newest first. Stopped once its alerts
/// equal `expected`, or after 30 s (the comparison then shows the difference).
fn out_of_order(dir: &Path, influx: &str, records: &[Record], expected: &[AlertRow]) -> PathBuf {
    let (backlog, live) = records.split_at(72);
    let mut groups: Vec<&[Record]> = live.chunks(1).collect();
    groups.extend(backlog.rchunks(6));
    daemon(dir, influx, groups, |l| {
        caught_up(l) && alerts(l) == expected
    })
    .0
}

#[test]
fn a_backlog_delivered_newest_first_has_the_events_of_in_order_arrival() {
    let records = records();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (vm_a, vm_b) = (
        rt.block_on(Victoria::start()),
        rt.block_on(Victoria::start()),
    );
    let b_dir = tempfile::tempdir().unwrap();
    let b = in_order(b_dir.path(), &vm_b.url(), &records);
    let expected_alerts = alerts(&b);
    let a_dir = tempfile::tempdir().unwrap();
    let a = out_of_order(a_dir.path(), &vm_a.url(), &records, &expected_alerts);

    let expected = events(&b);
    // What the data holds, so the comparison is not vacuous: instant events on COD, TSS and pH, and a window
    // event for the violating hour.
    for (parameter, scope) in [
        ("COD", "instant"),
        ("TSS", "instant"),
        ("pH", "instant"),
        ("COD", "window_3600000"),
    ] {
        assert!(
            expected.iter().any(|r| r.1 == parameter && r.2 == scope),
            "no {scope} {parameter} event in {expected:#?}"
        );
    }
    assert_no_zero_length(&expected);
    let got = events(&a);
    assert_no_zero_length(&got);
    assert_eq!(got, expected);
    // A re-derived the instant events its backlog touched; B, receiving readings in order, never had to.
    assert!(revisions(&a, "instant") > 0);
    assert_eq!(revisions(&b, "instant"), 0);

    // The alerts: both exceedance episodes of COD, the pH excursion, and the violating hour.
    for (kind, subject) in [
        ("exceedance", "COD"),
        ("exceedance", "pH"),
        ("violation", "COD"),
    ] {
        assert!(
            expected_alerts
                .iter()
                .any(|r| r.0 == kind && r.1 == subject),
            "no {kind} {subject} alert in {expected_alerts:#?}"
        );
    }
    assert_eq!(alerts(&a), expected_alerts);
    assert!(alert_revisions(&a) > 0, "A re-derived alert histories");
    assert_eq!(alert_revisions(&b), 0);

    // InfluxDB (VictoriaMetrics here): A holds every point B holds, and every other point A wrote (an event merged
    // away, an alert whose raise moved) is marked withdrawn. (InfluxDB keeps the last write of a point, so a point
    // withdrawn and then written again stands; VictoriaMetrics keeps both samples, so a point marked withdrawn in A
    // is not checked against B.)
    let expected_points = points(&vm_b, &rt);
    assert!(
        expected_points
            .keys()
            .any(|p| p.0.contains("\"kind\":\"violation\""))
            && expected_points
                .keys()
                .any(|p| p.0.contains("\"scope\":\"instant\""))
            && expected_points.values().all(|withdrawn| !withdrawn),
        "{expected_points:#?}"
    );
    let got_points = points(&vm_a, &rt);
    let missing: Vec<_> = expected_points
        .keys()
        .filter(|p| !got_points.contains_key(p))
        .collect();
    let stale: Vec<_> = got_points
        .iter()
        .filter(|(p, withdrawn)| !expected_points.contains_key(p) && !**withdrawn)
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "points of B missing in A: {missing:#?}\npoints of A not withdrawn that B lacks: {stale:#?}"
    );
    assert!(
        got_points.values().any(|withdrawn| *withdrawn),
        "A's re-derivations withdrew points"
    );
}
