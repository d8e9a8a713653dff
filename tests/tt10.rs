//! Circular 10 TXT: the parser against real-world quirks (table), and the landing folder driven through the quantrac
//! binary — files dropped while it runs, half-written files, bad files, 10,000 files at once, a restart after a crash
//! between commit and move. None lost, none read twice, rejected ones explained.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::FixedOffset;
use quantrac::ledger::query::Table;
use quantrac::ledger::Reader;
use quantrac::model::{Parameter, StationId, Status, Timestamp, Unit};
use quantrac::source::tt10::format::{parse_file_name, parse_text, Tt10Error};
use support::{terminate, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_quantrac");

fn tz() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).unwrap()
}

fn unit_of(p: &Parameter) -> Unit {
    Unit::new(p.standard_unit().unwrap_or(""))
}

/// 2026-11-20 10:00:00 +07:00.
const T0: i64 = 1_795_143_600_000;

// ---------------------------------------------------------------------------------------------------------------
// Parser table

#[test]
fn parser_accepts_real_world_quirks() {
    let station = StationId::parse("BN_KCNQV_NUOC01").unwrap();
    // (what, content, expected (symbol, value, status, unit), rejected reasons)
    type Row = (
        &'static str,
        &'static str,
        Vec<(&'static str, f64, Status, &'static str)>,
        Vec<&'static str>,
    );
    let m = Status::Measuring;
    let table: Vec<Row> = vec![
        ("plain LF", "COD\t82.5\tmg/L\t20261120100000\t00\n", vec![("COD", 82.5, m, "mg/L")], vec![]),
        ("CRLF and trailing blank lines", "COD\t82.5\tmg/L\t20261120100000\t00\r\n\r\n\r\n", vec![("COD", 82.5, m, "mg/L")], vec![]),
        ("UTF-8 BOM", "\u{feff}pH\t7.2\t-\t20261120100000\t00\r\n", vec![("pH", 7.2, m, "-")], vec![]),
        ("decimal comma", "pH\t7,2\t-\t20261120100000\t00", vec![("pH", 7.2, m, "-")], vec![]),
        ("trailing tab and blanks", "TSS\t31\tmg/L\t20261120100000\t00\t  \r\n", vec![("TSS", 31.0, m, "mg/L")], vec![]),
        ("blanks around fields", " NH4 \t 2.5 \t mg/L \t 20261120100000 \t 00 ", vec![("NH4", 2.5, m, "mg/L")], vec![]),
        (
            "two groups on one line",
            "COD\t80\tmg/L\t20261120100000\t00\tTSS\t30\tmg/L\t20261120100000\t01\r\n",
            vec![("COD", 80.0, m, "mg/L"), ("TSS", 30.0, Status::Calibrating, "mg/L")],
            vec![],
        ),
        ("status 02", "Flow\t120\tm3/h\t20261120100000\t02", vec![("Flow", 120.0, Status::Fault, "m3/h")], vec![]),
        ("status 03 (maintenance, not in the Circular)", "COD\t80\tmg/L\t20261120100000\t03", vec![("COD", 80.0, Status::Maintenance, "mg/L")], vec![]),
        ("single-digit status", "COD\t80\tmg/L\t20261120100000\t1", vec![("COD", 80.0, Status::Calibrating, "mg/L")], vec![]),
        ("PM2,5 symbol with a comma", "PM2,5\t12,5\tµg/m3\t20261120100000\t00", vec![("PM2,5", 12.5, m, "µg/m3")], vec![]),
        ("empty unit: the station's", "COD\t80\t\t20261120100000\t00", vec![("COD", 80.0, m, "mg/L")], vec![]),
        ("negative and exponent values", "Temp\t-1.5\t°C\t20261120100000\t00\tZn\t1e-3\tmg/L\t20261120100000\t00", vec![("Temp", -1.5, m, "°C"), ("Zn", 0.001, m, "mg/L")], vec![]),
        (
            "a short line is rejected alone",
            "COD\t80\tmg/L\t20261120100000\t00\nTSS\t31\tmg/L\n",
            vec![("COD", 80.0, m, "mg/L")],
            vec!["line 2: 3 fields; expected groups of 5 TAB-separated fields: symbol, value, unit, time yyyyMMddHHmmss, status"],
        ),
        (
            "a bad group beside a good one",
            "pH\tx\t-\t20261120100000\t00\tCOD\t80\tmg/L\t20261120100000\t00",
            vec![("COD", 80.0, m, "mg/L")],
            vec!["parameter pH: value \"x\" is not a number"],
        ),
        (
            "thousands separators are not guessed",
            "Flow\t1,200.5\tm3/h\t20261120100000\t00",
            vec![],
            vec!["parameter Flow: value \"1,200.5\" is not a number"],
        ),
        (
            "bad time",
            "COD\t80\tmg/L\t20261120250000\t00",
            vec![],
            vec!["timestamp \"20261120250000\" is not a local time yyyyMMddHHmmss such as \"20261127100000\""],
        ),
        (
            "unknown status",
            "COD\t80\tmg/L\t20261120100000\t04",
            vec![],
            vec!["device status \"04\" is unknown: expected 00 (measuring), 01 (calibrating), 02 (fault) or 03 (maintenance)"],
        ),
        (
            "spaces instead of tabs",
            "COD 80 mg/L 20261120100000 00",
            vec![],
            vec!["line 1: 1 fields; expected groups of 5 TAB-separated fields: symbol, value, unit, time yyyyMMddHHmmss, status"],
        ),
    ];
    for (what, content, expected, reasons) in table {
        let p = parse_text(content, &station, tz(), &unit_of);
        let got: Vec<(&str, f64, Status, &str)> = p
            .readings
            .iter()
            .map(|r| (r.parameter.as_str(), r.value, r.status, r.unit.as_str()))
            .collect();
        assert_eq!(got, expected, "{what}");
        assert!(
            p.readings.iter().all(|r| r.ts == Timestamp(T0)),
            "{what}: time"
        );
        let got: Vec<String> = p.rejected.iter().map(|r| r.error.to_string()).collect();
        assert_eq!(got, reasons, "{what}");
    }
}

#[test]
fn file_name_table() {
    for (name, ok) in [
        ("BN_KCNQV_NUOC01_20261127103000.txt", true),
        ("BN_KCNQV_NUOC01_20261127103000.TXT", true),
        ("bn_kcnqv_nuoc01_20261127103000.txt", true),
        ("BN_KCNQV_NUOC01_20261127103000.txt.part", false),
        ("BN_KCNQV_NUOC01_2026112710300.txt", false),
        ("BN_KCNQV_20261127103000.txt", false),
        ("BN_KCN_QV_NUOC01_20261127103000.txt", false),
    ] {
        assert_eq!(parse_file_name(name).is_ok(), ok, "{name}");
    }
    assert!(matches!(
        parse_file_name("BN_KCNQV_NUOC01_20260230103000.txt"),
        Err(Tt10Error::FileNameTime { .. })
    ));
}

// ---------------------------------------------------------------------------------------------------------------
// Landing folder through the binary

const STATIONS: [&str; 2] = ["BN_KCNQV_NUOC01", "BN_KCNTS_NUOC01"];

fn write_config(dir: &Path) -> PathBuf {
    let mut text = String::from(
        "[ledger]\npath = \"ledger.db\"\nsynchronous = \"normal\"\n[http]\nenabled = false\n\
         [tt10]\nlanding = [\"landing\"]\nsettle = \"1s\"\nscan_interval = \"200ms\"\n\n",
    );
    for id in STATIONS {
        text.push_str(&format!(
            "[[station]]\nid = \"{id}\"\nname = \"{id}\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 5000\n\
             receiving_water = {{ type = \"river\", flow_m3_s = 120 }}\nparameters = {{ COD = {{}}, TSS = {{}}, pH = {{}} }}\n\n"
        ));
    }
    let path = dir.join("quantrac.toml");
    std::fs::write(&path, text).unwrap();
    path
}

struct Running {
    child: Child,
    log: PathBuf,
}

fn start(config: &Path, log: &Path) -> Running {
    let child = Command::new(BIN)
        .args([
            "--log-format",
            "json",
            "run",
            "--config",
            config.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Running {
        child,
        log: log.to_path_buf(),
    }
}

impl Running {
    /// Stop with SIGTERM and return the `(accepted, duplicates, quarantined)` of the final log line.
    fn stop(self) -> (u64, u64, u64) {
        terminate(self.child);
        let log = std::fs::read_to_string(&self.log).unwrap();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("Stopped"))
            .unwrap_or_else(|| panic!("no final line in the log:\n{log}"));
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let field = |k: &str| v["fields"][k].as_u64().unwrap();
        (field("accepted"), field("duplicates"), field("quarantined"))
    }
}

/// A station file at `ts` with COD, TSS and pH (values derived from `i`).
fn content(ts: Timestamp, i: u64) -> String {
    let t = ts.to_local(tz()).format("%Y%m%d%H%M%S").to_string();
    format!(
        "\u{feff}COD\t{},{}\tmg/L\t{t}\t00\r\nTSS\t{}\tmg/L\t{t}\t00\tpH\t7,{}\t-\t{t}\t00\r\n\r\n",
        40 + i % 50,
        i % 10,
        20 + i % 30,
        i % 9
    )
}

fn name(station: &str, ts: Timestamp) -> String {
    format!("{station}_{}.txt", ts.to_local(tz()).format("%Y%m%d%H%M%S"))
}

fn count_files(dir: &Path, suffix: &str) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p, suffix)
            } else {
                usize::from(p.to_string_lossy().ends_with(suffix))
            }
        })
        .sum()
}

fn counts(ledger: &Path) -> (i64, i64) {
    match Reader::open(ledger) {
        Ok(r) => (
            r.count(Table::Readings).unwrap_or(0),
            r.count(Table::Quarantine).unwrap_or(0),
        ),
        Err(_) => (0, 0),
    }
}

#[test]
fn landing_folder_reads_every_file_once_and_explains_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let landing = dir.path().join("landing");
    let ledger = dir.path().join("ledger.db");
    std::fs::create_dir_all(&landing).unwrap();
    let run = start(&config, &dir.path().join("run1.log"));

    // 1. Files dropped while quantrac runs, flat and in the datalogger layout <station>/yyyy/MM/dd.
    for i in 0..20u64 {
        let ts = Timestamp(T0 + i as i64 * 300_000);
        let station = STATIONS[(i % 2) as usize];
        let sub = if i % 4 < 2 {
            landing.clone()
        } else {
            landing.join(station).join("2026/11/20")
        };
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(name(station, ts)), content(ts, i)).unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(30), || counts(&ledger).0 == 60),
        "20 files × 3 readings: {:?}",
        counts(&ledger)
    );

    // 2. A half-written file: written in two parts within the settle time, read whole.
    let ts = Timestamp(T0 + 100 * 300_000);
    let full = content(ts, 7);
    let path = landing.join(name(STATIONS[0], ts));
    std::fs::write(&path, &full[..20]).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        path.exists(),
        "a file younger than the settle time was taken"
    );
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&full.as_bytes()[20..]).unwrap();
    }
    // An upload in progress under a hidden name is not touched.
    std::fs::write(landing.join(".in.upload.txt"), "COD\t1").unwrap();
    assert!(wait_until(Duration::from_secs(30), || counts(&ledger).0 == 63));

    // 3. Bad files: rejected with a reason file and a quarantine row each; a partly bad file is processed and its
    // bad line quarantined.
    let bad = [
        (
            "BN_KCNQV_NUOC01.txt",
            "COD\t1\tmg/L\t20261120100000\t00",
            "is not <Province>_<Facility>_<Station>_<yyyyMMddHHmmss>.txt",
        ),
        (
            "BN_KCNXX_NUOC09_20261120100000.txt",
            "COD\t1\tmg/L\t20261120100000\t00",
            "unknown station BN_KCNXX_NUOC09 (from the file name): it is not in the configuration",
        ),
        (
            "BN_KCNQV_NUOC01_20261120110000.txt",
            "this is not a TT10 file",
            "line 1: 1 fields; expected groups of 5",
        ),
        (
            "BN_KCNTS_NUOC01_20261120110000.txt",
            "",
            "the file holds no readings",
        ),
    ];
    for (n, c, _) in bad {
        std::fs::write(landing.join(n), c).unwrap();
    }
    std::fs::write(
        landing.join("BN_KCNTS_NUOC01_20261120120000.txt"),
        "COD\t50\tmg/L\t20261120120000\t00\r\nTSS\t31\tmg/L\r\nNH4\t2\tmg/L\t20261120120000\t00\r\n",
    )
    .unwrap();
    let rejected = landing.join("rejected");
    assert!(
        wait_until(Duration::from_secs(30), || count_files(
            &rejected, ".reason"
        ) == 4
            && counts(&ledger) == (64, 6)),
        "rejected: {}, counts {:?}",
        count_files(&rejected, ".reason"),
        counts(&ledger)
    );
    for (n, _, reason) in bad {
        let text = std::fs::read_to_string(rejected.join(format!("{n}.reason"))).unwrap();
        assert!(text.contains(reason), "{n}: {text}");
        assert!(rejected.join(n).exists());
    }
    let r = Reader::open(&ledger).unwrap();
    let q = r.quarantine(100).unwrap();
    assert!(q.iter().all(|q| q.source == "tt10"));
    assert!(q
        .iter()
        .any(|q| q.reason.contains("parameter NH4 is not monitored")
            && q.origin.ends_with("BN_KCNTS_NUOC01_20261120120000.txt")));
    assert!(q.iter().any(|q| q.raw == b"this is not a TT10 file"));
    drop(r);
    // The log says so too, naming a rejected file (rate-limited: one line for the files quarantined together).
    let log = std::fs::read_to_string(dir.path().join("run1.log")).unwrap();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Input quarantined"))
        .collect();
    assert!(
        said.iter()
            .any(|l| l.contains(".txt") && l.contains("\"reason\"")),
        "{log}"
    );

    // 4. 10,000 files at once (written elsewhere, then moved in, as an FTP server's rename does).
    let staging = dir.path().join("staging");
    for i in 0..10_000u64 {
        let station = STATIONS[(i % 2) as usize];
        let ts = Timestamp(T0 - 86_400_000 * 10 + (i / 2) as i64 * 60_000);
        let local = ts.to_local(tz());
        let sub = staging
            .join(station)
            .join(local.format("%Y/%m/%d").to_string());
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(name(station, ts)), content(ts, i)).unwrap();
    }
    let started = std::time::Instant::now();
    for s in STATIONS {
        std::fs::rename(staging.join(s), landing.join(format!("bulk-{s}"))).unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(120), || counts(&ledger).0
            == 64 + 30_000),
        "{:?}",
        counts(&ledger)
    );
    let took = started.elapsed();
    assert!(wait_until(Duration::from_secs(30), || count_files(
        &landing.join("processed"),
        ".txt"
    ) == 20
        + 1
        + 1
        + 10_000));
    eprintln!("10,000 files ingested in {took:?}");
    // Nothing left behind but the hidden upload.
    let left: Vec<_> = walk_txt(&landing)
        .into_iter()
        .filter(|p| {
            !p.starts_with(landing.join("processed"))
                && !p.starts_with(landing.join("rejected"))
                && *p != landing.join(".in.upload.txt")
        })
        .collect();
    assert!(left.is_empty(), "left in the landing folder: {left:?}");
    let (accepted, duplicates, quarantined) = run.stop();
    assert_eq!((accepted, duplicates, quarantined), (30_064, 0, 6));

    // 5. A crash between commit and move leaves files in place: put some back (processed and rejected ones) and
    // restart. The ledger makes their readings no-ops; no quarantine row is written twice.
    let back = [
        "BN_KCNTS_NUOC01_20261120120000.txt",
        "BN_KCNXX_NUOC09_20261120100000.txt",
    ];
    for n in back {
        let from = if n.contains("XX") {
            rejected.join(n)
        } else {
            landing.join("processed").join(n)
        };
        std::fs::rename(&from, landing.join(n)).unwrap();
    }
    let run = start(&config, &dir.path().join("run2.log"));
    assert!(wait_until(Duration::from_secs(30), || back
        .iter()
        .all(|n| !landing.join(n).exists())));
    assert_eq!(counts(&ledger), (30_064, 6));
    let (accepted, duplicates, quarantined) = run.stop();
    assert_eq!((accepted, duplicates, quarantined), (0, 1, 0));
    assert!(landing.join("processed").join(back[0]).exists());
    assert!(rejected.join(back[1]).exists());
    assert!(rejected.join(format!("{}.reason", back[1])).exists());
}

/// Stations send in the unit their analyser was set up with: every reading is judged in its parameter's unit, the
/// received value and unit kept beside it; a unit that cannot be converted, or a time no ledger keeps, is quarantined
/// with what was received.
#[test]
fn units_are_converted_before_judging_and_unusable_units_or_times_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let landing = dir.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let station = STATIONS[0];
    let local = |ts: i64| {
        Timestamp(ts)
            .to_local(tz())
            .format("%Y%m%d%H%M%S")
            .to_string()
    };
    let (t1, t2) = (local(T0), local(T0 + 300_000));
    let files = [
        (
            T0,
            format!(
                "COD\t1\tg/L\t{t1}\t00\r\nTSS\t500\tug/L\t{t1}\t00\r\npH\t7,1\tpH\t{t1}\t00\r\n"
            ),
        ),
        (
            T0 + 300_000,
            format!("COD\t80\tfurlongs\t{t2}\t00\r\nTSS\t31\tmg/l\t{t2}\t00\r\n"),
        ),
        (
            T0 + 600_000,
            "COD\t80\tmg/L\t19990101000000\t00\r\n".to_string(),
        ),
    ];
    for (ts, text) in &files {
        std::fs::write(landing.join(name(station, Timestamp(*ts))), text).unwrap();
    }
    let ledger = dir.path().join("ledger.db");
    let running = start(&config, &dir.path().join("log.json"));
    assert!(
        wait_until(Duration::from_secs(30), || counts(&ledger) == (4, 2)),
        "readings and quarantine rows: {:?}",
        counts(&ledger)
    );
    running.stop();

    let reader = Reader::open(&ledger).unwrap();
    /// value, unit, received value, received unit, ratio, limit, band
    type Row = (
        f64,
        String,
        Option<f64>,
        Option<String>,
        Option<f64>,
        Option<f64>,
        String,
    );
    let row = |parameter: &str, ts: i64| -> Row {
        reader
            .connection()
            .query_row(
                "SELECT value, unit, received_value, received_unit, ratio, limit_high, band FROM readings_view \
                 WHERE station = ?1 AND parameter = ?2 AND time_utc = strftime('%Y-%m-%dT%H:%M:%fZ', ?3 / 1000.0, 'unixepoch')",
                rusqlite::params![station, parameter, ts],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .unwrap()
    };
    let (value, unit, rv, ru, ratio, limit, band) = row("COD", T0);
    assert_eq!(
        (value, unit.as_str(), rv, ru.as_deref()),
        (1000.0, "mg/L", Some(1.0), Some("g/L"))
    );
    let limit = limit.unwrap();
    assert_eq!(
        ratio,
        Some(1000.0 / limit),
        "judged as 1000 mg/L against {limit} mg/L"
    );
    assert_ne!(band, "compliant");
    let (value, unit, rv, ru, ..) = row("TSS", T0);
    assert_eq!(
        (value, unit.as_str(), rv, ru.as_deref()),
        (0.5, "mg/L", Some(500.0), Some("ug/L"))
    );
    let (value, unit, rv, ru, ..) = row("TSS", T0 + 300_000);
    assert_eq!(
        (value, unit.as_str(), rv, ru.as_deref()),
        (31.0, "mg/L", Some(31.0), Some("mg/l"))
    );
    let (value, unit, rv, ..) = row("pH", T0);
    assert_eq!((value, unit.as_str(), rv), (7.1, "-", Some(7.1)));

    // Each refused value is quarantined with the file it came in, as received.
    let rows = reader.quarantine(10).unwrap();
    for (why, (ts, text)) in [
        "unknown unit \"furlongs\"; COD is judged in mg/L",
        "1998-12-31T17:00:00Z is before 2000-01-01",
    ]
    .iter()
    .zip(&files[1..])
    {
        let row = rows
            .iter()
            .find(|q| q.reason.contains(why))
            .unwrap_or_else(|| panic!("no row for {why:?}: {rows:#?}"));
        assert_eq!(String::from_utf8_lossy(&row.raw), *text, "{why}");
        assert!(
            row.origin.ends_with(&name(station, Timestamp(*ts))),
            "{why}: {}",
            row.origin
        );
    }
}

fn walk_txt(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_txt(&p));
            } else if p.extension().is_some_and(|x| x == "txt") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn simulated_stations_can_deliver_tt10_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quantrac.toml");
    std::fs::write(
        &config,
        "[ledger]\npath = \"ledger.db\"\nsynchronous = \"normal\"\n[http]\nenabled = false\n[sim]\nenabled = true\nspeed = 60\n\
         [tt10]\nlanding = [\"landing\"]\nsettle = \"0s\"\nscan_interval = \"100ms\"\n\n\
         [[station]]\nid = \"BN_KCNQV_NUOC01\"\nname = \"Que Vo\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 5000\n\
         receiving_water = { type = \"river\", flow_m3_s = 120 }\nparameters = { COD = {}, TSS = {}, pH = {} }\nsim = { via = \"tt10\" }\n",
    )
    .unwrap();
    let run = start(&config, &dir.path().join("run.log"));
    let ledger = dir.path().join("ledger.db");
    // A day of backfilled files (288 at 5 minutes), then live ones.
    let ok = wait_until(Duration::from_secs(60), || counts(&ledger).0 >= 289 * 3);
    let (accepted, duplicates, quarantined) = run.stop();
    assert!(ok, "{:?}", counts(&ledger));
    assert_eq!((duplicates, quarantined), (0, 0));
    assert!(accepted >= 289 * 3);
    let r = Reader::open(&ledger).unwrap();
    let sources: i64 = r
        .connection()
        .query_row(
            "SELECT COUNT(*) FROM readings WHERE source <> 'tt10'",
            [],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(sources, 0);
    assert!(count_files(&dir.path().join("landing/processed"), ".txt") >= 289);
}

#[test]
fn sigkill_while_ingesting_files_loses_none_and_counts_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let landing = dir.path().join("landing");
    let ledger = dir.path().join("ledger.db");
    std::fs::create_dir_all(&landing).unwrap();
    for i in 0..3_000u64 {
        let station = STATIONS[(i % 2) as usize];
        let ts = Timestamp(T0 - 86_400_000 * 5 + (i / 2) as i64 * 300_000);
        std::fs::write(landing.join(name(station, ts)), content(ts, i)).unwrap();
    }
    for i in 0..30i64 {
        let ts = Timestamp(T0 + i * 300_000);
        // An unknown station whose files sort first: they are in the batch the crash interrupts.
        std::fs::write(
            landing.join(name("BN_KCNAA_NUOC09", ts)),
            "COD\t1\tmg/L\t20261120100000\t00",
        )
        .unwrap();
    }
    // Every file settled before the start, so the first batch holds the bad files and 470 good ones.
    std::thread::sleep(Duration::from_millis(1200));
    let mut run = start(&config, &dir.path().join("run1.log"));
    // Kill as soon as the first batch is committed: files are mid-way between committed and moved.
    assert!(wait_until(Duration::from_secs(30), || counts(&ledger).0 > 0));
    run.child.kill().unwrap();
    run.child.wait().unwrap();
    let before = counts(&ledger);
    let left = walk_txt(&landing)
        .into_iter()
        .filter(|p| p.parent() == Some(landing.as_path()))
        .count();
    eprintln!("killed with {before:?} committed and {left} files still in the landing folder");

    let run = start(&config, &dir.path().join("run2.log"));
    assert!(
        wait_until(Duration::from_secs(60), || counts(&ledger) == (9_000, 30)
            && walk_txt(&landing)
                .iter()
                .all(|p| p.parent() != Some(landing.as_path()))),
        "{:?}",
        counts(&ledger)
    );
    run.stop();
    // Exactly once in the ledger, every file moved once.
    assert_eq!(counts(&ledger), (9_000, 30));
    assert_eq!(count_files(&landing.join("processed"), ".txt"), 3_000);
    assert_eq!(count_files(&landing.join("rejected"), ".txt"), 30);
    assert_eq!(count_files(&landing.join("rejected"), ".reason"), 30);
    let dupes = walk_txt(&landing.join("processed"))
        .len()
        .abs_diff(count_files(&landing.join("processed"), ""));
    assert_eq!(dupes, 0, "no file was moved twice (no .1 copies)");
}
