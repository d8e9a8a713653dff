//! InfluxDB forwarder against a real VictoriaMetrics (`/api/v2/write`) and, for the error paths VictoriaMetrics never
//! takes, a fault-injecting server that answers like InfluxDB 2.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use quantrac::compliance::{Assessment, Band, Flags, LimitBound};
use quantrac::config::forward::Influx;
use quantrac::config::{Secret, Synchronous};
use quantrac::forward::influx::{health_key, run};
use quantrac::health::Health;
use quantrac::ledger::{Evaluated, Ledger, Reader};
use quantrac::model::{Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit};
use support::eventually;
use support::fault_http::FaultServer;
use support::victoria::Victoria;
use tokio_util::sync::CancellationToken;

fn target(url: &str, name: &str) -> Influx {
    Influx {
        name: name.into(),
        url: url.into(),
        org: "so-tnmt-bn".into(),
        bucket: "quantrac".into(),
        token: Some(Secret::new("test-token")),
        gzip: true,
        batch_lines: 500,
        batch_wait: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        max_backoff: Duration::from_secs(1),
        aggregates: false,
        ca_file: None,
    }
}

/// `n` readings from `first`: station BN_KCNQV_NUOC01, COD, one a second, an hour ago onwards.
fn readings(first: usize, n: usize, station: &str) -> Vec<Evaluated> {
    let base = Timestamp::now().millis() - 3_600_000;
    (first..first + n)
        .map(|i| Evaluated {
            reading: Reading {
                station: StationId::parse(station).unwrap(),
                parameter: Parameter::new("COD").unwrap(),
                ts: Timestamp(base + i as i64 * 1000),
                value: 100.0 + i as f64 / 4.0,
                unit: Unit::new("mg/L"),
                status: Status::Measuring,
            },
            assessment: Assessment {
                rules: Default::default(),
                limit: Some(LimitBound::Max(135.0)),
                ratio: Some((100.0 + i as f64 / 4.0) / 135.0),
                band: Band::Compliant,
                flags: Flags::default(),
            },
            source: SourceKind::Sim,
            received: None,
        })
        .collect()
}

fn ledger(dir: &Path) -> Ledger {
    Ledger::open(&dir.join("ledger.db"), Synchronous::Normal).unwrap()
}

fn start(
    t: Influx,
    dir: &Path,
    health: &Health,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let (path, h, s) = (dir.join("ledger.db"), health.clone(), stop.clone());
    let task = tokio::spawn(async move { run(t, path, h, s).await.unwrap() });
    (stop, task)
}

/// (ts ms) of every `reading_value` sample VictoriaMetrics holds.
async fn stored_times(vm: &Victoria) -> Vec<i64> {
    vm.export("reading_value")
        .await
        .into_iter()
        .map(|(_, _, t)| t)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_reading_arrives_with_value_tags_and_time() {
    let vm = Victoria::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut l = ledger(dir.path());
    let batch = readings(0, 2000, "BN_KCNQV_NUOC01");
    l.commit(&batch, &[]).unwrap();
    let health = Health::default();
    let (stop, task) = start(target(&vm.url(), "vm"), dir.path(), &health);
    assert!(
        eventually(Duration::from_secs(30), || async {
            stored_times(&vm).await.len() >= 2000
        })
        .await,
        "not all readings arrived"
    );
    stop.cancel();
    task.await.unwrap();
    let samples = vm.export("reading_value").await;
    let mut seen = HashSet::new();
    for (labels, value, ts) in &samples {
        assert_eq!(labels["station"], "BN_KCNQV_NUOC01");
        assert_eq!(labels["facility"], "KCNQV");
        assert_eq!(labels["province"], "BN");
        assert_eq!(labels["parameter"], "COD");
        assert_eq!(labels["status"], "measuring");
        let e = batch
            .iter()
            .find(|e| e.reading.ts.millis() == *ts)
            .expect("a sample with an unknown timestamp");
        assert_eq!(*value, e.reading.value);
        seen.insert(*ts);
    }
    assert_eq!(seen.len(), 2000);
    let limits = vm.export("reading_limit").await;
    assert!(limits.iter().all(|(_, v, _)| *v == 135.0) && limits.len() >= 2000);
    let cursor = l.cursor("influx:vm:readings").unwrap();
    assert_eq!(
        cursor,
        Reader::open(&dir.path().join("ledger.db"))
            .unwrap()
            .last_seq()
            .unwrap()
    );
    assert_eq!(
        health
            .get(&health_key("vm"))
            .unwrap()
            .backlog
            .unwrap()
            .rows_behind,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_delays_data_but_loses_none() {
    let mut vm = Victoria::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut l = ledger(dir.path());
    l.commit(&readings(0, 500, "BN_KCNQV_NUOC01"), &[]).unwrap();
    let health = Health::default();
    let (stop, task) = start(target(&vm.url(), "vm"), dir.path(), &health);
    assert!(
        eventually(Duration::from_secs(30), || async {
            stored_times(&vm).await.len() >= 500
        })
        .await
    );
    vm.stop();
    l.commit(&readings(500, 1500, "BN_KCNQV_NUOC01"), &[])
        .unwrap();
    let key = health_key("vm");
    assert!(
        eventually(Duration::from_secs(30), || async {
            health.get(&key).is_some_and(|s| {
                !s.up && s.consecutive_failures > 0 && s.backlog.is_some_and(|b| b.rows_behind > 0)
            })
        })
        .await,
        "the outage and its backlog were not reported"
    );
    vm.restart().await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            stored_times(&vm)
                .await
                .into_iter()
                .collect::<HashSet<_>>()
                .len()
                >= 2000
        })
        .await,
        "readings committed during the outage did not arrive"
    );
    stop.cancel();
    task.await.unwrap();
    let times = stored_times(&vm).await;
    let distinct: HashSet<i64> = times.iter().copied().collect();
    assert_eq!(distinct.len(), 2000);
    // At-least-once: a batch in flight when the server died may come twice, never more.
    assert!(
        times.len() <= 2000 + 500,
        "{} samples for 2000 readings",
        times.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_forwarding_resumes_from_the_cursor() {
    let vm = Victoria::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("q.toml");
    let write = |sim: bool| {
        std::fs::write(
            &config,
            format!(
                "[ledger]\npath = \"ledger.db\"\n[http]\nenabled = false\n[sim]\nenabled = {sim}\nspeed = 3600\n\
                 [[forward.influx]]\nname = \"vm\"\nurl = \"{}\"\nbucket = \"q\"\nbatch_lines = 100\nbatch_wait = \"10ms\"\n\
                 [[station]]\nid = \"BN_KCNQV_NUOC01\"\nname = \"Que Vo\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 13000\n\
                 receiving_water = {{ type = \"river\", flow_m3_s = 120 }}\nparameters = {{ COD = {{}}, pH = {{}} }}\nsim = {{ via = \"direct\" }}\n",
                vm.url()
            ),
        )
        .unwrap()
    };
    write(true);
    let bin = env!("CARGO_BIN_EXE_quantrac");
    let mut child = Command::new(bin)
        .args(["run", "--config", config.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while it forwards: some samples are in, the ledger has more.
    assert!(
        eventually(Duration::from_secs(30), || async {
            stored_times(&vm).await.len() > 200
        })
        .await,
        "forwarding never started"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let stored = Reader::open(&dir.path().join("ledger.db"))
        .unwrap()
        .count_readings()
        .unwrap() as usize;
    // Restart without the simulator: the forwarder must send everything the first run committed.
    write(false);
    let mut child = Command::new(bin)
        .args(["run", "--config", config.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ok = eventually(Duration::from_secs(60), || async {
        let mut n: HashSet<(String, i64)> = HashSet::new();
        for m in ["reading_value"] {
            for (labels, _, t) in vm.export(m).await {
                n.insert((labels["parameter"].as_str().unwrap_or("").to_string(), t));
            }
        }
        n.len() >= stored
    })
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(ok, "not every committed reading reached VictoriaMetrics after the restart ({stored} in the ledger)");
}

async fn run_against(
    server: &FaultServer,
    lines: usize,
    dir: &Path,
) -> (Health, CancellationToken, tokio::task::JoinHandle<()>) {
    let mut l = ledger(dir);
    let mut batch = readings(0, lines, "BN_KCNQV_NUOC01");
    // One reading of a station whose lines the server refuses.
    batch.extend(readings(lines, 1, "BN_BAD_NUOC01"));
    l.commit(&batch, &[]).unwrap();
    let health = Health::default();
    let mut t = target(&server.url(), "fault");
    t.batch_lines = 100;
    let (stop, task) = start(t, dir, &health);
    (health, stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_line_goes_to_dead_letters_and_the_rest_flows() {
    let server = FaultServer::start(Arc::new(|lines: &[String], _| {
        if lines.iter().any(|l| l.contains("BN_BAD_NUOC01")) {
            (400, "partial write: field type conflict".into(), None)
        } else {
            (204, String::new(), None)
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (_h, stop, task) = run_against(&server, 250, dir.path()).await;
    let reader = Reader::open(&dir.path().join("ledger.db")).unwrap();
    let done = eventually(Duration::from_secs(30), || async {
        reader
            .connection()
            .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
            == 1
            && server.accepted_lines().len() == 250
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    assert!(done, "accepted {} lines", server.accepted_lines().len());
    let (line, status, response): (String, i64, String) = reader
        .connection()
        .query_row("SELECT line, status, response FROM dead_letters", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert!(line.contains("station=BN_BAD_NUOC01"), "{line}");
    assert_eq!(status, 400);
    assert_eq!(response, "HTTP 400: partial write: field type conflict");
    assert!(
        server.requests().iter().all(|r| r.gzip),
        "bodies are gzip-compressed"
    );
    assert!(
        server.requests()[0].query.contains("precision=ms")
            && server.requests()[0].query.contains("bucket=quantrac")
    );
    assert_eq!(
        server.requests()[0].authorization.as_deref(),
        Some("Token test-token")
    );
}

/// A batch short of `batch_lines` waits once for more: the rows committed meanwhile go in the same request, after
/// the rows already read, none twice and none missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_batch_takes_the_rows_committed_while_it_waits() {
    let server = FaultServer::start(Arc::new(|_: &[String], _| (204, String::new(), None))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut l = ledger(dir.path());
    let station = "BN_KCNQV_NUOC01";
    l.commit(&readings(0, 130, station), &[]).unwrap();
    let mut t = target(&server.url(), "fault");
    (t.batch_lines, t.batch_wait) = (100, Duration::from_secs(2));
    let health = Health::default();
    let (stop, task) = start(t, dir.path(), &health);
    // The first batch is full and goes at once; the 30 rows after it wait for more.
    let first = eventually(Duration::from_secs(30), || async {
        !server.requests().is_empty()
    })
    .await;
    l.commit(&readings(130, 40, station), &[]).unwrap();
    let all = eventually(Duration::from_secs(30), || async {
        server.accepted_lines().len() >= 170
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    assert!(
        first && all,
        "accepted {} lines",
        server.accepted_lines().len()
    );
    let sizes: Vec<usize> = server.requests().iter().map(|r| r.lines.len()).collect();
    assert_eq!(sizes, [100, 70], "lines per request");
    let lines = server.accepted_lines();
    let distinct: HashSet<&String> = lines.iter().collect();
    assert_eq!(distinct.len(), 170, "every row once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_keeps_the_data_and_reports_it() {
    let server = FaultServer::start(Arc::new(|_: &[String], n| {
        if n < 3 {
            (401, "unauthorized access".into(), None)
        } else {
            (204, String::new(), None)
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (health, stop, task) = run_against(&server, 99, dir.path()).await;
    let key = health_key("fault");
    assert!(
        eventually(Duration::from_secs(10), || async {
            health
                .get(&key)
                .and_then(|s| s.last_error)
                .is_some_and(|(_, e)| e.contains("configuration fault: HTTP 401"))
        })
        .await,
        "a 401 was not reported"
    );
    let delivered = eventually(Duration::from_secs(30), || async {
        server.accepted_lines().len() == 100
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    assert!(
        delivered,
        "after the credentials work again every line is delivered"
    );
    assert_eq!(
        server.accepted_lines().iter().collect::<HashSet<_>>().len(),
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_batches_are_split() {
    let server = FaultServer::start(Arc::new(|lines: &[String], _| {
        if lines.len() > 20 {
            (413, "request too large".into(), None)
        } else {
            (204, String::new(), None)
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (_h, stop, task) = run_against(&server, 299, dir.path()).await;
    let delivered = eventually(Duration::from_secs(30), || async {
        server.accepted_lines().len() == 300
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    assert!(delivered, "accepted {}", server.accepted_lines().len());
    assert!(server
        .requests()
        .iter()
        .filter(|r| r.status == 204)
        .all(|r| r.lines.len() <= 20));
    assert_eq!(
        server.accepted_lines().iter().collect::<HashSet<_>>().len(),
        300
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_is_retried_after_retry_after() {
    let server = FaultServer::start(Arc::new(|_: &[String], n| {
        if n == 0 {
            (
                503,
                "service unavailable".into(),
                Some(("Retry-After".into(), "1".into())),
            )
        } else {
            (204, String::new(), None)
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (_h, stop, task) = run_against(&server, 49, dir.path()).await;
    let delivered = eventually(Duration::from_secs(30), || async {
        server.accepted_lines().len() == 50
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    assert!(delivered);
    let r = server.requests();
    assert_eq!(r[0].status, 503);
    assert_eq!(r[1].lines, r[0].lines, "the same batch is retried");
    assert!(
        r[1].at.duration_since(r[0].at) >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_aggregates_and_compliance_events_arrive() {
    use quantrac::ledger::aggregates::{AggregateContext, HOUR_MS};
    let vm = Victoria::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut l = ledger(dir.path());
    // 600 readings a second apart; the last 100 break the limit (an open instant event).
    let mut batch = readings(0, 600, "BN_KCNQV_NUOC01");
    for e in batch.iter_mut().skip(500) {
        e.reading.value = 150.0;
        e.assessment.ratio = Some(150.0 / 135.0);
        e.assessment.band = Band::From1_1To1_5;
    }
    l.commit(&batch, &[]).unwrap();
    let ctx = AggregateContext {
        offset_secs: 7 * 3600,
        windows: vec![HOUR_MS],
        judging_window_ms: HOUR_MS,
        stations: Default::default(),
    };
    let report = l.refresh_aggregates(&ctx, 10_000).unwrap();
    assert!(!report.updates.is_empty());
    let mut t = target(&vm.url(), "vm");
    t.aggregates = true;
    let health = Health::default();
    let (stop, task) = start(t, dir.path(), &health);
    let arrived = eventually(Duration::from_secs(30), || async {
        !vm.export("hourly_valid").await.is_empty()
            && !vm.export("event_peak_ratio").await.is_empty()
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    assert!(arrived, "hourly aggregates or events missing");
    let valid: f64 = vm
        .export("hourly_valid")
        .await
        .iter()
        .map(|(_, v, _)| v)
        .sum();
    assert_eq!(
        valid, 600.0,
        "every reading counted once across the hourly windows"
    );
    let ev = vm.export("event_peak_ratio").await;
    // One series per event: `state` is a field (VictoriaMetrics drops string fields), not a tag.
    assert!(ev[0].0.get("state").is_none(), "{:?}", ev[0].0);
    assert_eq!(ev[0].0["scope"], "instant");
    // VictoriaMetrics keeps 12 significant digits.
    assert!((ev[0].1 - 150.0 / 135.0).abs() < 1e-9, "{}", ev[0].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_states_arrive_as_the_alert_measurement() {
    let vm = Victoria::start().await;
    let dir = tempfile::tempdir().unwrap();
    let l = ledger(dir.path());
    drop(l);
    let db = dir.path().join("ledger.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    // An alert raised at t0 (the alert engine's own write), then cleared at t1: two states, two points.
    let (t0, t1) = (1_790_000_000_000i64, 1_790_000_600_000i64);
    conn.execute(
        "INSERT INTO alerts (station, subject, kind, severity, state, since, raised, updated, detail, peak, notifications) \
         VALUES ('BN_KCNQV_NUOC01', 'COD', 'violation', 'violation', 'raised', ?1, ?1, ?1, \
         '{\"ratio\": 1.3, \"band\": \"1_1_to_1_5\", \"note\": \"\"}', '{}', 1)",
        [t0],
    )
    .unwrap();
    let health = Health::default();
    let (stop, task) = start(target(&vm.url(), "vm"), dir.path(), &health);
    let raised = eventually(Duration::from_secs(30), || async {
        !vm.export("alert_multiple").await.is_empty()
    })
    .await;
    assert!(raised, "the raised alert did not arrive");
    conn.execute(
        "UPDATE alerts SET state = 'cleared', cleared = ?1, updated = ?1",
        [t1],
    )
    .unwrap();
    // Every write of the alert row rewrites the points it holds: the raised point is written again beside the
    // cleared one (the same series and time, which InfluxDB keeps once).
    let distinct = |mut p: Vec<(serde_json::Value, f64, i64)>| {
        p.sort_by_key(|x| (x.2, x.0.to_string()));
        p.dedup_by(|x, y| (x.2, &x.0) == (y.2, &y.0));
        p
    };
    let cleared = eventually(Duration::from_secs(30), || async {
        distinct(vm.export("alert_multiple").await).len() == 2
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    assert!(cleared, "the cleared state did not arrive");
    let points = distinct(vm.export("alert_multiple").await);
    let states: Vec<(&str, i64)> = points
        .iter()
        .map(|(labels, _, ts)| (labels["state"].as_str().unwrap(), *ts))
        .collect();
    assert_eq!(states, [("raised", t0), ("cleared", t1)]);
    assert_eq!(points[0].0["kind"], "violation");
    assert_eq!(points[0].0["parameter"], "COD");
    assert_eq!(points[0].0["station"], "BN_KCNQV_NUOC01");
    assert!((points[0].1 - 1.3).abs() < 1e-9);
}

/// Issue 19: errors quote URLs, and a server may echo what it was sent; the health text (what the API and the
/// dashboard show) keeps neither the URL's password and token nor the API token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_errors_keep_no_credentials() {
    const SECRETS: [&str; 3] = ["secretPW9", "abcTOK7", "hdrT0KEN5"];
    // A server that refuses the token and quotes it (and the URL's secrets) back.
    let echo = FaultServer::start(Arc::new(|_: &[String], _| {
        (
            401,
            "token hdrT0KEN5 for user:secretPW9 with ?token=abcTOK7 is not authorized".into(),
            None,
        )
    }))
    .await;
    // Nothing listens on the other: the HTTP client's error quotes the URL.
    let closed = format!("http://127.0.0.1:{}", support::free_port());
    for (base, want) in [
        (echo.url(), "configuration fault: HTTP 401"),
        (closed, "cannot connect"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        ledger(dir.path())
            .commit(&readings(0, 5, "BN_KCNQV_NUOC01"), &[])
            .unwrap();
        let url = base.replacen("http://", "http://user:secretPW9@", 1) + "/?token=abcTOK7";
        let mut t = target(&url, "fault");
        t.token = Some(Secret::new("hdrT0KEN5"));
        let health = Health::default();
        let (stop, task) = start(t, dir.path(), &health);
        let key = health_key("fault");
        let error = std::sync::Mutex::new(String::new());
        let failed = eventually(Duration::from_secs(20), || async {
            let e = health.get(&key).and_then(|s| s.last_error);
            *error.lock().unwrap() = e.map(|(_, e)| e).unwrap_or_default();
            error.lock().unwrap().contains(want)
        })
        .await;
        stop.cancel();
        task.await.unwrap();
        let error = error.into_inner().unwrap();
        assert!(failed, "no {want:?} reported: {error:?}");
        for s in SECRETS {
            assert!(!error.contains(s), "{s} in {error:?}");
        }
    }
}
