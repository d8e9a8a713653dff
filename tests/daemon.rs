//! The daemon as a process: crash safety under SIGKILL, draining shutdown on SIGTERM, the demo's stations.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quantrac::config::Synchronous;
use quantrac::ledger::query::Table;
use quantrac::ledger::{Ledger, Reader};

mod support;

use support::wait_until;

const BIN: &str = env!("CARGO_BIN_EXE_quantrac");

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let text = format!(
        r#"[ledger]
path = "ledger.db"
synchronous = "full"
[http]
enabled = false
{extra}
[[station]]
id = "BN_KCNQV_NUOC01"
name = "Que Vo"
profile = "qcvn40-2011-b"
design_flow_m3_day = 13000
receiving_water = {{ type = "river", flow_m3_s = 120 }}
parameters = {{ COD = {{}}, TSS = {{}}, pH = {{}} }}
sim = {{ via = "direct" }}
"#
    );
    let path = dir.join("quantrac.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Line i of the crash test: a unique (station, parameter, ts) key and a value derived from i.
fn line(i: u64) -> String {
    let params = ["COD", "TSS", "pH"];
    let p = params[(i % 3) as usize];
    let ts = 1_700_000_000_000 + (i / 3) as i64 * 60_000;
    format!(
        r#"{{"station":"BN_KCNQV_NUOC01","parameter":"{p}","ts":{ts},"value":{}}}"#,
        5.0 + (i % 50) as f64 / 10.0
    )
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM failed");
}

/// `quantrac ingest` reading from a pipe the test writes to; its acknowledgements are not needed.
fn spawn_ingest(config: &Path) -> Child {
    Command::new(BIN)
        .args(["ingest", "--config", config.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The (parameter, ts) key of line i.
fn key(i: u64) -> (String, i64) {
    (
        ["COD", "TSS", "pH"][(i % 3) as usize].to_string(),
        1_700_000_000_000 + (i / 3) as i64 * 60_000,
    )
}

/// Every (parameter, ts) key a ledger holds.
fn stored_keys(db: &Path) -> std::collections::HashSet<(String, i64)> {
    support::stream::stored(db)
        .into_iter()
        .map(|r| (r.parameter, r.ts.millis()))
        .collect()
}

/// `quantrac ingest` fed `total` lines by a thread, with its acknowledgements on stdout.
struct Ingesting {
    child: std::process::Child,
    feeder: std::thread::JoinHandle<()>,
    acks: BufReader<std::process::ChildStdout>,
}

impl Ingesting {
    fn start(config: &Path, total: u64) -> Ingesting {
        let mut child = Command::new(BIN)
            .args([
                "ingest",
                "--config",
                config.to_str().unwrap(),
                "--batch",
                "200",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            for i in 0..total {
                if writeln!(stdin, "{}", line(i)).is_err() {
                    return; // the process was killed
                }
            }
        });
        let acks = BufReader::new(child.stdout.take().unwrap());
        Ingesting {
            child,
            feeder,
            acks,
        }
    }

    /// Read acknowledgements until at least `n` lines are committed; returns the count acknowledged.
    fn wait_acked(&mut self, n: u64) -> u64 {
        let mut acked = 0;
        let mut buf = String::new();
        while acked < n {
            buf.clear();
            assert!(
                self.acks.read_line(&mut buf).unwrap() > 0,
                "ingest ended before {n} lines were committed"
            );
            acked = buf
                .trim()
                .strip_prefix("committed ")
                .unwrap()
                .parse()
                .unwrap();
        }
        acked
    }

    /// SIGKILL: no warning, no drain.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let _ = self.feeder.join();
    }
}

#[test]
fn sigkill_during_ingest_loses_no_committed_reading() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let total = 200_000u64;
    // Wait until a good part is committed, then kill without warning.
    let mut ingesting = Ingesting::start(&config, total);
    let acked = ingesting.wait_acked(20_000);
    ingesting.kill();
    assert!(
        acked < total,
        "the process finished before it was killed; the test proves nothing"
    );

    // The ledger opens cleanly and holds every acknowledged reading.
    let ledger = Ledger::open(&dir.path().join("ledger.db"), Synchronous::Full).unwrap();
    let reader = ledger.reader().unwrap();
    assert_eq!(reader.integrity_check().unwrap(), "ok");
    let stored = reader.count_readings().unwrap() as u64;
    assert!(stored >= acked, "{stored} stored < {acked} acknowledged");
    let keys = stored_keys(&dir.path().join("ledger.db"));
    for i in 0..acked {
        assert!(
            keys.contains(&key(i)),
            "acknowledged line {i} is missing after SIGKILL"
        );
    }
    drop(reader);
    drop(ledger);

    // Restart and redeliver everything: duplicates are no-ops, nothing is counted twice.
    let mut child = spawn_ingest(&config);
    {
        let mut stdin = std::io::BufWriter::new(child.stdin.take().unwrap());
        for i in 0..total {
            writeln!(stdin, "{}", line(i)).unwrap();
        }
    }
    let status = wait_exit(&mut child, Duration::from_secs(120)).expect("ingest did not finish");
    assert!(status.success());
    let reader = Reader::open(&dir.path().join("ledger.db")).unwrap();
    assert_eq!(reader.count_readings().unwrap() as u64, total);
    assert_eq!(reader.count(Table::Conflicts).unwrap(), 0);
}

#[test]
fn sigterm_drains_in_flight_batches_and_exits_zero_within_5s() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[sim]\nenabled = true\nspeed = 3600\n");
    let mut child = Command::new(BIN)
        .args([
            "--log-format",
            "json",
            "run",
            "--config",
            config.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let db = dir.path().join("ledger.db");
    // The simulator backfills a day (864 readings) and then reports live every 100 ms.
    let live = wait_until(Duration::from_secs(30), || {
        Reader::open(&db)
            .and_then(|r| r.count_readings())
            .map(|n| n > 900)
            .unwrap_or(false)
    });
    assert!(live, "no live readings within 30 s");
    sigterm(&child);
    let started = Instant::now();
    let status =
        wait_exit(&mut child, Duration::from_secs(5)).expect("did not exit within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    let stopped: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Stopped"))
        })
        .expect("no 'Stopped' log line");
    // The station lacks mandatory parameters (Temp, NH4, flows): said at WARN at start-up, and the daemon runs.
    let mandatory: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Mandatory parameters"))
        })
        .collect();
    assert_eq!(mandatory.len(), 3, "{log}");
    assert!(
        mandatory
            .iter()
            .all(|v| v["level"] == "WARN" && v["fields"]["station"] == "BN_KCNQV_NUOC01"),
        "{mandatory:?}"
    );
    let accepted = stopped["fields"]["accepted"].as_u64().unwrap();
    let stored = Reader::open(&db).unwrap().count_readings().unwrap() as u64;
    assert_eq!(
        stored, accepted,
        "every reading the daemon accepted is in the ledger"
    );
}

#[test]
fn ingest_quarantines_bad_lines_and_keeps_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let mut child = spawn_ingest(&config);
    {
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}", line(0)).unwrap();
        writeln!(stdin, "not json at all").unwrap();
        writeln!(
            stdin,
            r#"{{"station":"BN_UNKNOWN_X","parameter":"COD","ts":1700000000000,"value":1}}"#
        )
        .unwrap();
        let future = quantrac::model::Timestamp::now().millis() + 3_600_000;
        writeln!(
            stdin,
            r#"{{"station":"BN_KCNQV_NUOC01","parameter":"COD","ts":{future},"value":1}}"#
        )
        .unwrap();
        writeln!(stdin, "{}", line(1)).unwrap();
    }
    let status = wait_exit(&mut child, Duration::from_secs(30)).expect("ingest did not finish");
    assert!(status.success());
    let reader = Reader::open(&dir.path().join("ledger.db")).unwrap();
    assert_eq!(reader.count_readings().unwrap(), 2);
    let q = reader.quarantine(10).unwrap();
    let reasons: Vec<&str> = q.iter().map(|x| x.reason.as_str()).collect();
    assert_eq!(q.len(), 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("invalid JSON reading")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("unknown station BN_UNKNOWN_X")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("in the future")),
        "{reasons:?}"
    );
    assert!(q.iter().any(|x| x.raw == b"not json at all"));
}

#[test]
fn check_config_lists_stations_and_limits() {
    let out = Command::new(BIN)
        .args(["check-config", "--config", "config/demo.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for id in [
        "BN_KCNQV_NUOC01",
        "BN_KCNTS_NUOC01",
        "BN_KCNYP_NUOC01",
        "BN_KCNVSIP_NUOC01",
        "BN_KCNDDHS_NUOC01",
        "BN_KCNTT2_NUOC01",
        "BN_KCNNSHL_NUOC01",
        "BN_KCNGB_NUOC01",
    ] {
        assert!(text.contains(id), "{id} missing from:\n{text}");
    }
}

/// The parameters an automatic wastewater station must monitor (flow in and out, temperature, pH, TSS, COD,
/// ammonium: Decree 40/2019's core list, regulations reference §1) are warned about, not refused.
#[test]
fn check_config_warns_of_missing_mandatory_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.toml");
    let station = |id: &str, rest: &str| {
        format!(
            "[[station]]\nid = \"{id}\"\nname = \"n\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 13000\n\
             receiving_water = {{ type = \"river\", flow_m3_s = 120 }}\n{rest}\n"
        )
    };
    let text = [
        "[http]\nenabled = false\n".to_string(),
        // Lacks Temp, TSS, NH4 and declares no inflow.
        station("BN_A_NUOC01", "parameters = { Flow = {}, COD = {}, pH = {} }"),
        // Inflow and outflow the same parameter.
        station(
            "BN_B_NUOC01",
            "flow_in = \"Flow\"\nparameters = { Flow = {}, Temp = {}, pH = {}, TSS = {}, COD = {}, NH4 = {} }",
        ),
        // Complete: no warning.
        station(
            "BN_C_NUOC01",
            "flow_in = \"Flow_in\"\nparameters = { Flow = {}, Flow_in = { unit = \"m3/h\" }, Temp = {}, pH = {}, TSS = {}, COD = {}, NH4 = {} }",
        ),
        // No outflow under the default name, and nothing else either.
        station("BN_D_NUOC01", "flow_in = \"Qin\"\nparameters = { Qin = { unit = \"m3/h\" }, COD = {} }"),
    ]
    .concat();
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let src = "(Decree 40/2019/ND-CP core automatic parameters, kept in practice)";
    let warnings: Vec<&str> = text.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(
        warnings,
        [
            format!("warning: station[0] (BN_A_NUOC01): does not monitor Temp (temperature), TSS (suspended solids), NH4 (ammonium), required of an automatic wastewater station {src}"),
            format!("warning: station[0] (BN_A_NUOC01): no inflow declared: name the inflow's parameter with flow_in, e.g. flow_in = \"Flow_in\" {src}"),
            format!("warning: station[1] (BN_B_NUOC01): flow_in and flow_out are the same parameter \"Flow\"; inflow and outflow must be measured apart {src}"),
            format!("warning: station[3] (BN_D_NUOC01): does not monitor Temp (temperature), pH (pH), TSS (suspended solids), NH4 (ammonium), required of an automatic wastewater station {src}"),
            format!("warning: station[3] (BN_D_NUOC01): no outflow: parameter \"Flow\" is not monitored; add it or name the discharge flow's parameter with flow_out {src}"),
        ],
        "{text}"
    );
    assert!(text.contains("5 warnings (the config is valid"), "{text}");
}

#[test]
fn check_config_into_a_closed_pipe_ends_quietly() {
    // The reader is gone before quantrac writes (as with `| head` on a long listing): no panic, success.
    let mut child = Command::new(BIN)
        .args(["check-config", "--config", "config/demo.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?}: {err}", out.status);
}

#[test]
fn check_config_exits_2_listing_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[ledger]\nsynchronous = \"x\"\n[[station]]\nid = \"X\"\nname = \"\"\nprofile = \"p\"\ndesign_flow_m3_day = 1\nreceiving_water = { type = \"river\" }\nparameters = { COD = {} }\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with(path.to_str().unwrap()))
            .count(),
        3,
        "{err}"
    );
}

#[test]
fn backup_while_ingesting_restores_every_reading_committed_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let mut ingesting = Ingesting::start(&config, 150_000);
    let acked = ingesting.wait_acked(10_000);
    // Back up while ingestion goes on: everything acknowledged before the backup started is in the copy.
    let copy = dir.path().join("backup.db");
    let backup = |to: &Path| {
        Command::new(BIN)
            .args([
                "backup",
                "--config",
                config.to_str().unwrap(),
                "--to",
                to.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    };
    assert!(backup(&copy).success());
    ingesting.kill();
    // Restore: the copy opens as a ledger and holds at least the acknowledged readings, with a sound file.
    let restored = dir.path().join("restored.db");
    std::fs::copy(&copy, &restored).unwrap();
    let ledger = Ledger::open(&restored, Synchronous::Full).unwrap();
    let reader = ledger.reader().unwrap();
    assert_eq!(reader.integrity_check().unwrap(), "ok");
    let n = reader.count_readings().unwrap() as u64;
    assert!(
        n >= acked,
        "backup holds {n} readings, {acked} were acknowledged before it started"
    );
    let keys = stored_keys(&restored);
    for i in 0..acked {
        assert!(keys.contains(&key(i)), "line {i} missing from the backup");
    }
    // A backup never overwrites an existing file.
    assert_eq!(backup(&copy).code(), Some(2));
}

/// One writer per ledger: a second `run` or an `ingest` beside a running daemon is refused, naming the daemon's PID,
/// and the ledger is left as the daemon keeps it.
#[test]
fn a_second_writer_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let mut daemon = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = dir.path().join("ledger.db.lock");
    let pid = daemon.id().to_string();
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(&lock)
            .is_ok_and(|s| s == pid)),
        "the daemon did not take the writer lock"
    );
    let refused = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), text)
    };
    for args in [&["ingest"][..], &["run"][..]] {
        let (ok, stderr) = refused(args);
        assert!(!ok, "{args:?} must fail beside a running daemon");
        assert!(
            stderr.contains(&format!(
                "is in use by another quantrac process (PID {pid})"
            )),
            "{args:?}: {stderr}"
        );
    }
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon, Duration::from_secs(10)).is_some_and(|s| s.success()));
    // Released with the process: the next writer gets the ledger.
    let (ok, stderr) = refused(&["ingest"]);
    assert!(ok, "{stderr}");
}
