//! Circular 10 transmission (`[[forward.tt10]]`) against real servers started here: pyftpdlib (FTP, FTPS) and
//! OpenSSH's sshd (SFTP). The server stopped mid-stream, quantrac killed mid-upload, a refused login, a late reading
//! (a correction), and a province relaying its plants' files to the Ministry — each checked file by file against the
//! content the ledger's readings make, written here independently of quantrac's writer.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{FixedOffset, TimeZone};
use quantrac::compliance::{Assessment, Band, Flags};
use quantrac::config::transmit::{Layout, Protocol, Start, Target};
use quantrac::config::{Secret, Synchronous};
use quantrac::forward::tt10::{health_key, run};
use quantrac::health::Health;
use quantrac::ledger::{Evaluated, Ledger};
use quantrac::model::{Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit};
use support::transfer::{files_under, Ftp, Sshd, FTP_PASSWORD, FTP_USER};
use support::{eventually, wait_until};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_quantrac");
const STATIONS: [&str; 2] = ["BN_KCNQV_NUOC01", "BN_KCNTS_NUOC01"];
/// (symbol, unit) of every file; the files list them in this (symbol) order.
const PARAMETERS: [(&str, &str); 3] = [("COD", "mg/L"), ("TSS", "mg/L"), ("pH", "-")];

fn tz() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).unwrap()
}

/// The first observation: two hours ago, on a whole minute.
fn base() -> i64 {
    let now = Timestamp::now().millis();
    now - now.rem_euclid(60_000) - 2 * 3_600_000
}

/// Plausible values (a province re-checks what it receives: pH stays within 0–14), exact in binary.
fn value(station: usize, time: usize, parameter: usize) -> f64 {
    let step = (station * 100 + time) as f64 / 64.0;
    match parameter {
        2 => 6.5 + step / 8.0,
        p => 20.0 + p as f64 * 10.0 + step,
    }
}

/// `times` observations a minute apart for every station, each with every parameter.
fn readings(base: i64, times: std::ops::Range<usize>) -> Vec<Evaluated> {
    let mut out = Vec::new();
    for (s, id) in STATIONS.iter().enumerate() {
        for t in times.clone() {
            for (p, (symbol, unit)) in PARAMETERS.iter().enumerate() {
                out.push(evaluated(
                    id,
                    symbol,
                    unit,
                    base + t as i64 * 60_000,
                    value(s, t, p),
                ));
            }
        }
    }
    out
}

fn evaluated(station: &str, symbol: &str, unit: &str, ts: i64, value: f64) -> Evaluated {
    Evaluated {
        reading: Reading {
            station: StationId::parse(station).unwrap(),
            parameter: Parameter::new(symbol).unwrap(),
            ts: Timestamp(ts),
            value,
            unit: Unit::new(unit),
            status: Status::Measuring,
        },
        assessment: Assessment {
            rules: Default::default(),
            limit: None,
            ratio: None,
            band: Band::Compliant,
            flags: Flags::default(),
        },
        source: SourceKind::Sim,
        received: None,
    }
}

fn fill(ledger: &Path, batch: &[Evaluated]) {
    let mut l = Ledger::open(ledger, Synchronous::Normal).unwrap();
    l.commit(batch, &[]).unwrap();
}

fn local(ts: i64) -> String {
    tz().timestamp_millis_opt(ts)
        .unwrap()
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// The files the readings of `times` make: name → content (Circular 10: one CRLF line per parameter).
fn expected(base: i64, times: std::ops::Range<usize>) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (s, id) in STATIONS.iter().enumerate() {
        for t in times.clone() {
            let ts = base + t as i64 * 60_000;
            let mut text = String::new();
            for (p, (symbol, unit)) in PARAMETERS.iter().enumerate() {
                text.push_str(&format!(
                    "{symbol}\t{}\t{unit}\t{}\t00\r\n",
                    value(s, t, p),
                    local(ts)
                ));
            }
            out.insert(format!("{id}_{}.txt", local(ts)), text.into_bytes());
        }
    }
    out
}

/// `station/yyyy/MM/dd/name` for the `station_date` layout.
fn dated(name: &str) -> String {
    let station = &name[..name.len() - 19];
    let t = &name[name.len() - 18..name.len() - 4];
    format!("{station}/{}/{}/{}/{name}", &t[0..4], &t[4..6], &t[6..8])
}

/// Files by name (folders dropped), hidden ones apart.
fn by_name(files: BTreeMap<String, Vec<u8>>) -> (BTreeMap<String, Vec<u8>>, Vec<String>) {
    let mut visible = BTreeMap::new();
    let mut hidden = Vec::new();
    for (path, bytes) in files {
        let name = path.rsplit('/').next().unwrap().to_string();
        if name.starts_with('.') {
            hidden.push(path);
        } else {
            visible.insert(name, bytes);
        }
    }
    (visible, hidden)
}

fn ftp_target(ftp: &Ftp, name: &str, password: &str) -> Target {
    Target {
        port: ftp.port,
        password: Some(Secret::new(password)),
        path: "in".into(),
        layout: Layout::StationDate,
        ..target(name)
    }
}

fn start(
    t: Target,
    ledger: &Path,
    health: &Health,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let (path, h, s) = (ledger.to_path_buf(), health.clone(), stop.clone());
    let task = tokio::spawn(async move { run(t, path, h, s).await.unwrap() });
    (stop, task)
}

fn count_visible(dir: &Path) -> usize {
    by_name(files_under(dir)).0.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftp_server_stopped_mid_stream_every_file_arrives_once_with_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.db");
    let base = base();
    fill(&ledger, &readings(base, 0..60));
    let mut ftp = Ftp::start(&dir.path().join("ftp"), None, 0);
    let inbox = dir.path().join("ftp/in");
    let health = Health::default();
    let mut target = ftp_target(&ftp, "province", FTP_PASSWORD);
    // Slow enough to stop the server in the middle of the stream.
    target.rate_limit = 30.0;
    let (stop, task) = start(target, &ledger, &health);
    let key = health_key("province");

    assert!(
        eventually(Duration::from_secs(30), || async {
            count_visible(&inbox) >= 20
        })
        .await,
        "the first files did not arrive"
    );
    ftp.stop();
    let down = eventually(Duration::from_secs(30), || async {
        health
            .get(&key)
            .is_some_and(|c| !c.up && c.consecutive_failures > 0)
    })
    .await;
    assert!(
        down,
        "the target was not marked down while the server was stopped"
    );
    let during = count_visible(&inbox);
    assert!(during < 120, "everything arrived before the server stopped");
    ftp.resume();

    let all = eventually(Duration::from_secs(60), || async {
        count_visible(&inbox) == 120
            && health
                .get(&key)
                .and_then(|c| c.backlog)
                .is_some_and(|b| b.rows_behind == 0)
    })
    .await;
    assert!(all, "not every file arrived: {}", count_visible(&inbox));
    let files = files_under(&inbox);
    let want: BTreeMap<String, Vec<u8>> = expected(base, 0..60)
        .into_iter()
        .map(|(n, b)| (dated(&n), b))
        .collect();
    assert_eq!(
        files, want,
        "the files on the server differ from the ledger's readings (or a .part was left)"
    );
    let t = health.get(&key).unwrap().transmission.unwrap();
    assert_eq!((t.files, t.corrections), (120, 0));
    // /metrics: the counts and the delay histogram (every file was observed over an hour before it was sent).
    let registry = quantrac::metrics::Registry::default();
    quantrac::forward::tt10::metrics::register(&registry, &health);
    let text = registry.encode();
    for line in [
        "quantrac_tt10_files_sent_total{connection=\"tt10-send province\"} 120",
        "quantrac_tt10_corrections_sent_total{connection=\"tt10-send province\"} 0",
        "quantrac_tt10_files_late_total{connection=\"tt10-send province\"} 120",
        "quantrac_tt10_transmission_delay_seconds_bucket{connection=\"tt10-send province\",le=\"300\"} 0",
        "quantrac_tt10_transmission_delay_seconds_count{connection=\"tt10-send province\"} 120",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_login_marks_the_target_down_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.db");
    let base = base();
    fill(&ledger, &readings(base, 0..5));
    let ftp = Ftp::start(&dir.path().join("ftp"), None, 0);
    let inbox = dir.path().join("ftp/in");
    let health = Health::default();
    let key = health_key("ministry");
    let (stop, task) = start(ftp_target(&ftp, "ministry", "wrong"), &ledger, &health);

    let refused = eventually(Duration::from_secs(30), || async {
        health.get(&key).is_some_and(|c| {
            !c.up
                && c.last_error.as_ref().is_some_and(|(_, e)| {
                    e.contains("refused the login of \"plant\"") && e.contains("530")
                })
        })
    })
    .await;
    assert!(
        refused,
        "no clear refused-login error: {:?}",
        health.get(&key)
    );
    let behind = health
        .get(&key)
        .and_then(|c| c.backlog)
        .map(|b| b.rows_behind);
    assert_eq!(count_visible(&inbox), 0);
    stop.cancel();
    task.await.unwrap();
    // Every reading still waits for the target (none was passed by its cursor).
    let waiting = quantrac::ledger::transmit::TransmitStore::open(&ledger, "ministry")
        .unwrap()
        .backlog()
        .unwrap();
    assert_eq!(waiting.rows_behind, 30, "{behind:?}");

    let (stop, task) = start(ftp_target(&ftp, "ministry", FTP_PASSWORD), &ledger, &health);
    let sent = eventually(Duration::from_secs(30), || async {
        count_visible(&inbox) == 10
    })
    .await;
    assert!(
        sent,
        "the kept data was not sent once the password was fixed"
    );
    let (files, hidden) = by_name(files_under(&inbox));
    assert_eq!(files, expected(base, 0..5));
    assert!(hidden.is_empty(), "{hidden:?}");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reading_resends_its_file_complete_over_sftp_as_a_correction() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.db");
    let base = base();
    fill(&ledger, &readings(base, 0..3));
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let remote = dir.path().join("ministry");
    let health = Health::default();
    let key = health_key("ministry");
    let target = Target {
        protocol: Protocol::Sftp,
        port: sshd.port,
        username: sshd.user.clone(),
        password: None,
        private_key_file: Some(sshd.user_key.clone()),
        host_key: Some(sshd.host_key.clone()),
        path: remote.display().to_string(),
        layout: Layout::Flat,
        ..target("ministry")
    };
    let (stop, task) = start(target, &ledger, &health);
    assert!(
        eventually(Duration::from_secs(30), || async {
            count_visible(&remote) == 6
        })
        .await,
        "the files did not arrive over SFTP: {:?}",
        health.get(&key)
    );
    assert_eq!(by_name(files_under(&remote)).0, expected(base, 0..3));

    // NH4 of the first station's second time arrives late: that file goes again, complete, under the same name.
    let late = evaluated(STATIONS[0], "NH4", "mg/L", base + 60_000, 2.5);
    fill(&ledger, &[late]);
    let name = format!("{}_{}.txt", STATIONS[0], local(base + 60_000));
    // Lines in symbol order (bytes: upper case first): COD, NH4, TSS, pH.
    let before = String::from_utf8(expected(base, 0..3)[&name].clone()).unwrap();
    let (cod, rest) = before.split_at(before.find("TSS").unwrap());
    let nh4 = format!("NH4\t2.5\tmg/L\t{}\t00\r\n", local(base + 60_000));
    let want = format!("{cod}{nh4}{rest}").into_bytes();
    let resent = eventually(Duration::from_secs(30), || async {
        std::fs::read(remote.join(&name)).is_ok_and(|b| b == want)
    })
    .await;
    assert!(resent, "the corrected file was not re-sent complete");
    let t = health.get(&key).unwrap().transmission.unwrap();
    assert_eq!((t.files, t.corrections), (6, 1));
    let (files, hidden) = by_name(files_under(&remote));
    assert_eq!(files.len(), 6);
    assert!(hidden.is_empty(), "{hidden:?}");
    stop.cancel();
    task.await.unwrap();
}

/// Maintenance readings (status 03, which the Circular lacks) go out as each target's `maintenance_as` says: as 01,
/// as 02, or left out — a second whose readings are all in maintenance then sends no file. Expected files are the
/// independent `expected` texts with those lines changed by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_readings_go_out_as_each_target_says() {
    use quantrac::circular10::MaintenanceAs;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.db");
    let base = base();
    let mut batch = readings(base, 0..2);
    // Station 0, time 0: COD in maintenance. Station 1, time 1: every parameter in maintenance.
    for e in &mut batch {
        let r = &mut e.reading;
        let t = (r.ts.millis() - base) / 60_000;
        if (r.station.as_str() == STATIONS[0] && t == 0 && r.parameter.as_str() == "COD")
            || (r.station.as_str() == STATIONS[1] && t == 1)
        {
            r.status = Status::Maintenance;
        }
    }
    fill(&ledger, &batch);
    let ftp = Ftp::start(&dir.path().join("ftp"), None, 0);
    let health = Health::default();
    let mut tasks = Vec::new();
    let choices = [
        ("as01", MaintenanceAs::Calibrating),
        ("as02", MaintenanceAs::Fault),
        ("omit", MaintenanceAs::Omit),
    ];
    for (name, m) in choices {
        let t = Target {
            path: name.into(),
            layout: Layout::Flat,
            maintenance_as: m,
            ..ftp_target(&ftp, name, FTP_PASSWORD)
        };
        tasks.push(start(t, &ledger, &health));
    }
    let maintenance_lines = |name: &str, line: &str| {
        (name.starts_with(STATIONS[0])
            && name.ends_with(&format!("{}.txt", local(base)))
            && line.starts_with("COD\t"))
            || name == format!("{}_{}.txt", STATIONS[1], local(base + 60_000))
    };
    for (name, m) in choices {
        let mut want = BTreeMap::new();
        for (file, bytes) in expected(base, 0..2) {
            let text = String::from_utf8(bytes).unwrap();
            let out: String = text
                .split_inclusive("\r\n")
                .filter_map(|line| match (maintenance_lines(&file, line), m) {
                    (false, _) => Some(line.to_string()),
                    (true, MaintenanceAs::Calibrating) => {
                        Some(line.replace("\t00\r\n", "\t01\r\n"))
                    }
                    (true, MaintenanceAs::Fault) => Some(line.replace("\t00\r\n", "\t02\r\n")),
                    (true, MaintenanceAs::Omit) => None,
                })
                .collect();
            if !out.is_empty() {
                want.insert(file, out.into_bytes());
            }
        }
        let inbox = dir.path().join("ftp").join(name);
        let key = health_key(name);
        let done = eventually(Duration::from_secs(30), || async {
            health
                .get(&key)
                .and_then(|c| c.backlog)
                .is_some_and(|b| b.rows_behind == 0)
                && by_name(files_under(&inbox)).0 == want
        })
        .await;
        assert_eq!(
            (
                done,
                by_name(files_under(&inbox))
                    .0
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
            ),
            (true, want.keys().cloned().collect::<Vec<_>>()),
            "{name}: {:?}",
            health.get(&key)
        );
    }
    assert_eq!(
        count_visible(&dir.path().join("ftp/omit")),
        3,
        "the all-maintenance second sends no file"
    );
    for (stop, task) in tasks {
        stop.cancel();
        task.await.unwrap();
    }
}

/// A target on 127.0.0.1 with the test's settings: backfill from the start, no batch wait, short timeouts.
fn target(name: &str) -> Target {
    Target {
        name: name.into(),
        protocol: Protocol::Ftp,
        host: "127.0.0.1".into(),
        port: 21,
        username: FTP_USER.into(),
        password: Some(Secret::new(FTP_PASSWORD)),
        private_key_file: None,
        host_key: None,
        ca_file: None,
        path: String::new(),
        layout: Layout::Flat,
        stations: Vec::new(),
        receives: STATIONS.iter().map(|s| s.to_string()).collect(),
        start: Start::From(Timestamp(0)),
        rate_limit: 0.0,
        timeout: Duration::from_secs(5),
        max_backoff: Duration::from_secs(1),
        batch_wait: Duration::ZERO,
        batch_readings: 30,
        deadline: Duration::from_secs(300),
        maintenance_as: Default::default(),
        timezone: tz(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Through the binary

fn station_tables() -> String {
    let mut text = String::new();
    for id in STATIONS {
        text.push_str(&format!(
            "[[station]]\nid = \"{id}\"\nname = \"{id}\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 5000\n\
             receiving_water = {{ type = \"river\", flow_m3_s = 120 }}\n\
             parameters = {{ COD = {{}}, TSS = {{}}, pH = {{}} }}\n\n"
        ));
    }
    text
}

fn write_config(dir: &Path, rest: &str) -> PathBuf {
    let text = format!(
        "[ledger]\npath = \"ledger.db\"\nsynchronous = \"normal\"\n[http]\nenabled = false\n\n{rest}\n{}",
        station_tables()
    );
    let path = dir.join("quantrac.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn ftp_section(name: &str, ftp: &Ftp, extra: &str) -> String {
    format!(
        "[[forward.tt10]]\nname = \"{name}\"\nprotocol = \"ftp\"\nhost = \"127.0.0.1\"\nport = {}\nusername = \"{FTP_USER}\"\n\
         password = \"{FTP_PASSWORD}\"\nstart = \"2020-01-01\"\nbatch_wait = \"0s\"\ntimeout = \"5s\"\nmax_backoff = \"1s\"\n{extra}\n",
        ftp.port
    )
}

fn daemon(config: &Path, log: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            support::terminate(c);
        }
    }
}

#[test]
fn sigkill_mid_upload_leaves_no_half_file_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = base();
    fill(&dir.path().join("ledger.db"), &readings(base, 0..6));
    // Over half a second per file: quantrac is killed while one is on its way.
    let ftp = Ftp::start(&dir.path().join("ftp"), None, 100);
    let home = dir.path().join("ftp");
    let config = write_config(
        dir.path(),
        &ftp_section("province", &ftp, "layout = \"flat\""),
    );
    let log = dir.path().join("quantrac.log");
    let mut child = Killed(Some(daemon(&config, &log)));

    let cut = wait_until(Duration::from_secs(60), || {
        let (files, hidden) = by_name(files_under(&home));
        files.len() >= 2 && !hidden.is_empty()
    });
    assert!(
        cut,
        "no upload in progress: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let mut c = child.0.take().unwrap();
    c.kill().unwrap();
    c.wait().unwrap();
    let want = expected(base, 0..6);
    let (files, _) = by_name(files_under(&home));
    assert!(
        files.len() < want.len(),
        "everything arrived before the kill"
    );
    for (name, bytes) in &files {
        assert_eq!(
            Some(bytes),
            want.get(name),
            "{name} is visible with other bytes than its readings"
        );
    }

    let _child = Killed(Some(daemon(&config, &log)));
    let done = wait_until(Duration::from_secs(90), || {
        let (files, hidden) = by_name(files_under(&home));
        files.len() == want.len() && hidden.is_empty()
    });
    let (files, hidden) = by_name(files_under(&home));
    assert!(
        done,
        "after the restart: {} files, hidden {hidden:?}",
        files.len()
    );
    assert_eq!(files, want);
}

#[test]
fn a_province_relays_its_plants_files_to_the_ministry() {
    let dir = tempfile::tempdir().unwrap();
    let (plant, province) = (dir.path().join("plant"), dir.path().join("province"));
    std::fs::create_dir_all(&plant).unwrap();
    std::fs::create_dir_all(&province).unwrap();
    let base = base();
    fill(&plant.join("ledger.db"), &readings(base, 0..4));
    // The province's FTP server drops the plants' uploads into its landing folder.
    let landing = province.join("landing");
    let ftp = Ftp::start(&landing, None, 0);
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let ministry = dir.path().join("ministry");

    let plant_config = write_config(&plant, &ftp_section("province", &ftp, "layout = \"flat\""));
    let province_config = write_config(
        &province,
        &format!(
            "[tt10]\nlanding = [\"landing\"]\nsettle = \"1s\"\nscan_interval = \"200ms\"\n\n\
             [[forward.tt10]]\nname = \"ministry\"\nprotocol = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\n\
             username = \"{}\"\nprivate_key_file = \"{}\"\nhost_key = \"{}\"\npath = \"{}\"\nlayout = \"station_date\"\n\
             batch_wait = \"0s\"\ntimeout = \"5s\"\nmax_backoff = \"1s\"\n",
            sshd.port,
            sshd.user,
            sshd.user_key.display(),
            sshd.host_key,
            ministry.display()
        ),
    );
    let _province = Killed(Some(daemon(
        &province_config,
        &province.join("quantrac.log"),
    )));
    let _plant = Killed(Some(daemon(&plant_config, &plant.join("quantrac.log"))));

    let want = expected(base, 0..4);
    // Every file renamed into place: an upload still in flight is a hidden `.part`.
    let arrived = wait_until(Duration::from_secs(90), || {
        let (files, hidden) = by_name(files_under(&ministry));
        files.len() == want.len() && hidden.is_empty()
    });
    assert!(
        arrived,
        "the Ministry got {} of {} files, still hidden {:?}; province log:\n{}",
        count_visible(&ministry),
        want.len(),
        by_name(files_under(&ministry)).1,
        std::fs::read_to_string(province.join("quantrac.log")).unwrap_or_default()
    );
    let got = files_under(&ministry);
    let laid_out: BTreeMap<String, Vec<u8>> =
        want.iter().map(|(n, b)| (dated(n), b.clone())).collect();
    assert_eq!(
        got, laid_out,
        "the Ministry's files differ from the plant's readings"
    );
    // Byte for byte what the plant sent (kept by the province's landing folder after its commit: a file is moved
    // there once its readings are committed, so the last one may still be on its way as the Ministry gets it).
    let processed = landing.join("processed");
    wait_until(Duration::from_secs(30), || {
        count_visible(&processed) == want.len()
    });
    assert_eq!(by_name(files_under(&processed)).0, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftps_sends_over_tls_checked_against_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.db");
    let base = base();
    fill(&ledger, &readings(base, 0..2));
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    support::certs::make_certs(&certs);
    let ftp = Ftp::start(
        &dir.path().join("ftp"),
        Some((certs.join("server.crt"), certs.join("server.key"))),
        0,
    );
    let health = Health::default();
    let target = Target {
        protocol: Protocol::Ftps,
        ca_file: Some(certs.join("ca.crt")),
        ..ftp_target(&ftp, "province", FTP_PASSWORD)
    };
    let (stop, task) = start(target, &ledger, &health);
    let inbox = dir.path().join("ftp/in");
    let sent = eventually(Duration::from_secs(30), || async {
        count_visible(&inbox) == 4
    })
    .await;
    assert!(
        sent,
        "FTPS upload failed: {:?}",
        health.get(&health_key("province"))
    );
    let (files, hidden) = by_name(files_under(&inbox));
    assert_eq!(files, expected(base, 0..2));
    assert!(hidden.is_empty(), "{hidden:?}");
    stop.cancel();
    task.await.unwrap();
}
