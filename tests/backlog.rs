//! Backlog equivalence for compliance events and alerts, against the quantrac binary: one station sends an hour
//! live, then resends the six hours before it (two exceedance episodes and a violating hour) after it, the way
//! stations do: as Circular 10 files dropped newest first into the landing folder of a running daemon (ledger A),
//! or as an MQTT replay, oldest first, after the live data (ledger M). A daemon given the same files in observation
//! order makes ledger B. The events and alerts of A and M equal those of B, A and M record the re-derivations, and
//! no event has zero length. Each daemon forwards to its own VictoriaMetrics: every point B holds is there, and
//! every other point is marked `withdrawn`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::FixedOffset;
use quantrac::compliance::hourly::window_start;
use quantrac::ledger::alert_list::AlertFilter;
use quantrac::ledger::query::Table;
use quantrac::ledger::Reader;
use quantrac::model::Timestamp;
use support::mosquitto::Mosquitto;
use support::victoria::Victoria;
use support::{terminate, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_quantrac");
const STATION: &str = "BN_KCNTS_NUOC01";
const HOUR: i64 = 3_600_000;
const STEP: i64 = 300_000;

fn tz() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).unwrap()
}

/// A config in `dir` with the station (COD Cmax 135 mg/L, TSS 90 mg/L, pH 5.5–9), a landing folder, an
/// InfluxDB forwarder to `influx`, and `extra` (an MQTT broker).
fn write_config(dir: &Path, influx: &str, extra: &str) -> PathBuf {
    let text = format!(
        "{extra}\n[ledger]\npath = \"ledger.db\"\nsynchronous = \"normal\"\n[http]\nenabled = false\n\
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
/// history was still arriving shows a partial mean there, in whatever order the files came.
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
/// withdrawn (every write of one carries `withdrawn`, 0 or 1).
fn points(
    vm: &Victoria,
    rt: &tokio::runtime::Runtime,
) -> std::collections::BTreeMap<(String, i64), bool> {
    let mut out = std::collections::BTreeMap::new();
    for metric in ["event_withdrawn", "alert_withdrawn"] {
        for (labels, value, ts) in rt.block_on(vm.export(metric)) {
            *out.entry((labels.to_string(), ts)).or_default() |= value == 1.0;
        }
    }
    out
}

/// How records reach the daemon.
enum Via<'a> {
    /// Circular 10 files in the landing folder, each group's files written newest first.
    Landing,
    /// One flat JSON message per record on `stations/<id>/data`, in the group's order.
    Mqtt(&'a Mosquitto),
}

/// The record as the MQTT source's flat JSON (units are the configured ones).
fn json_message(r: &Record) -> Vec<u8> {
    format!(
        r#"{{"ts": "{}", "COD": {}, "TSS": {}, "pH": {}}}"#,
        Timestamp(r.ts),
        r.cod,
        r.tss,
        r.ph
    )
    .into_bytes()
}

/// A running daemon given `groups` of records in turn, each group committed before the next is sent. Stopped
/// (SIGTERM) once `done` holds for its ledger, or after 30 s; returns whether it held.
fn daemon(
    dir: &Path,
    influx: &str,
    via: Via<'_>,
    groups: Vec<&[Record]>,
    done: impl Fn(&Path) -> bool,
) -> (PathBuf, bool) {
    let broker = match via {
        Via::Mqtt(m) => format!(
            "[[mqtt.broker]]\nname = \"station\"\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"quantrac-backlog\"\n",
            m.port
        ),
        Via::Landing => String::new(),
    };
    let config = write_config(dir, influx, &broker);
    let ledger = dir.join("ledger.db");
    let landing = dir.join("landing");
    let child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("run.log")).unwrap())
        .spawn()
        .unwrap();
    if let Via::Mqtt(_) = via {
        let log = dir.join("run.log");
        let connected = wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("MQTT connected."))
        });
        assert!(
            connected,
            "the daemon did not connect to Mosquitto within 30 s"
        );
    }
    let mut expected = 0;
    for group in groups {
        match via {
            Via::Landing => {
                for r in group.iter().rev() {
                    let (name, text) = tt10_file(r);
                    std::fs::write(landing.join(name), text).unwrap();
                }
            }
            Via::Mqtt(m) => {
                for r in group {
                    m.publish_file(&format!("stations/{STATION}/data"), &json_message(r));
                }
            }
        }
        expected += 3 * group.len() as i64;
        if !wait_until(Duration::from_secs(30), || readings(&ledger) == expected) {
            terminate(child);
            panic!(
                "the records were not all committed: {} of {expected} readings",
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
    let (ledger, settled) = daemon(
        dir,
        influx,
        Via::Landing,
        records.chunks(6).collect(),
        caught_up,
    );
    assert!(
        settled,
        "the alert engine did not take every reading within 30 s"
    );
    ledger
}

/// Ledger A: the live hour's files in order, then the backlog's half hours newest first (over MQTT: the live hour,
/// then the backlog replayed oldest first). Stopped once its alerts equal `expected`, or after 30 s (the comparison
/// then shows the difference).
fn out_of_order(
    dir: &Path,
    influx: &str,
    via: Via<'_>,
    records: &[Record],
    expected: &[AlertRow],
) -> PathBuf {
    let (backlog, live) = records.split_at(72);
    let mut groups: Vec<&[Record]> = live.chunks(1).collect();
    match via {
        Via::Landing => groups.extend(backlog.rchunks(6)),
        Via::Mqtt(_) => groups.extend(backlog.chunks(6)),
    }
    daemon(dir, influx, via, groups, |l| {
        caught_up(l) && alerts(l) == expected
    })
    .0
}

#[test]
fn a_backlog_out_of_order_has_the_events_alerts_and_points_of_in_order_arrival() {
    let records = records();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let vm_b = rt.block_on(Victoria::start());
    let b_dir = tempfile::tempdir().unwrap();
    let b = in_order(b_dir.path(), &vm_b.url(), &records);
    let expected = Expected::of(&b, &vm_b, &rt);
    expected.assert_not_vacuous();

    // Circular 10 files dropped newest first.
    let vm_a = rt.block_on(Victoria::start());
    let a_dir = tempfile::tempdir().unwrap();
    let a = out_of_order(
        a_dir.path(),
        &vm_a.url(),
        Via::Landing,
        &records,
        &expected.alerts,
    );
    expected.assert_same(&a, &vm_a, &rt, "files newest first");

    // An MQTT replay of the backlog after the live hour.
    let mosq = Mosquitto::start("");
    let vm_m = rt.block_on(Victoria::start());
    let m_dir = tempfile::tempdir().unwrap();
    let m = out_of_order(
        m_dir.path(),
        &vm_m.url(),
        Via::Mqtt(&mosq),
        &records,
        &expected.alerts,
    );
    expected.assert_same(&m, &vm_m, &rt, "MQTT replay");

    // Receiving readings in order, B never had to re-derive.
    assert_eq!(revisions(&b, "instant"), 0);
    assert_eq!(alert_revisions(&b), 0);
}

/// What in-order arrival gives: events, alerts and the points in InfluxDB.
struct Expected {
    events: Vec<Row>,
    alerts: Vec<AlertRow>,
    points: std::collections::BTreeMap<(String, i64), bool>,
}

impl Expected {
    fn of(ledger: &Path, vm: &Victoria, rt: &tokio::runtime::Runtime) -> Expected {
        Expected {
            events: events(ledger),
            alerts: alerts(ledger),
            points: points(vm, rt),
        }
    }

    /// What the data holds, so the comparisons are not vacuous: instant events on COD, TSS and pH, a window event
    /// for the violating hour, both exceedance episodes of COD, the pH excursion, and the violation, with their
    /// points.
    fn assert_not_vacuous(&self) {
        for (parameter, scope) in [
            ("COD", "instant"),
            ("TSS", "instant"),
            ("pH", "instant"),
            ("COD", "window_3600000"),
        ] {
            assert!(
                self.events.iter().any(|r| r.1 == parameter && r.2 == scope),
                "no {scope} {parameter} event in {:#?}",
                self.events
            );
        }
        assert_no_zero_length(&self.events);
        for (kind, subject) in [
            ("exceedance", "COD"),
            ("exceedance", "pH"),
            ("violation", "COD"),
            // pH stays at 7.2 for hours (a flat line) and TSS jumps (a spike).
            ("quality", "pH"),
            ("quality", "TSS"),
        ] {
            assert!(
                self.alerts.iter().any(|r| r.0 == kind && r.1 == subject),
                "no {kind} {subject} alert in {:#?}",
                self.alerts
            );
        }
        assert!(
            self.points
                .keys()
                .any(|p| p.0.contains("\"kind\":\"violation\""))
                && self
                    .points
                    .keys()
                    .any(|p| p.0.contains("\"scope\":\"instant\""))
                && self.points.values().all(|withdrawn| !withdrawn),
            "{:#?}",
            self.points
        );
    }

    /// `ledger` (and `vm`, its forwarder's target) hold what in-order arrival gives, and record re-derivations.
    fn assert_same(&self, ledger: &Path, vm: &Victoria, rt: &tokio::runtime::Runtime, how: &str) {
        let got = events(ledger);
        assert_no_zero_length(&got);
        assert_eq!(got, self.events, "events ({how})");
        assert!(
            revisions(ledger, "instant") > 0,
            "no event re-derivation ({how})"
        );
        assert_eq!(alerts(ledger), self.alerts, "alerts ({how})");
        assert!(
            alert_revisions(ledger) > 0,
            "no alert re-derivation ({how})"
        );
        // InfluxDB (VictoriaMetrics here): every point of in-order arrival is there, and every other point written
        // (an event merged away, an alert whose raise moved) is marked withdrawn. (InfluxDB keeps the last write of a
        // point, so a point withdrawn and then written again stands; VictoriaMetrics keeps both samples, so a point
        // marked withdrawn is not checked against in-order arrival.)
        let got = points(vm, rt);
        let missing: Vec<_> = self
            .points
            .keys()
            .filter(|p| !got.contains_key(p))
            .collect();
        let stale: Vec<_> = got
            .iter()
            .filter(|(p, withdrawn)| !self.points.contains_key(p) && !**withdrawn)
            .collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "{how}: points of in-order arrival missing: {missing:#?}\npoints not withdrawn that in-order arrival lacks: {stale:#?}"
        );
    }
}
