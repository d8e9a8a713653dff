//! `quantrac bench export`: one year of 5-minute data, 8 stations × 10 parameters (8,409,600 readings), exported as
//! CSV, JSON and (for one station-month, as a year would be a million small files) TT10, and everything (`all`) for
//! one month of the 8 stations. Prints time and peak
//! memory (VmHWM, reset before each export with `/proc/self/clear_refs`, so the ledger fill does not count).
//! The ledger is built once through the real pipeline and kept in the temp folder for later runs.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::compliance::resolve_limits;
use crate::config::{Config, Synchronous};
use crate::ledger::{Ledger, Reader};
use crate::metrics::Metrics;
use crate::model::{Reading, SourceKind, Status, Timestamp};
use crate::pipeline::{Batch, Pipeline};

use crate::export::manifest::list_files;
use crate::export::{export, month, parse_time, Format, Options, Query};

use super::support::bench_config;

const STATIONS: usize = 8;
const STEPS: i64 = 365 * 288;

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn dir_bytes(p: &Path) -> u64 {
    let mut files = Vec::new();
    let _ = list_files(p, p, &mut files);
    files
        .iter()
        .filter_map(|f| std::fs::metadata(p.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join("quantrac-bench-export");
    std::fs::create_dir_all(&dir)?;
    let mut config = Config::from_str(
        &bench_config(STATIONS),
        Path::new("<bench>"),
        Path::new("."),
    )?;
    config.ledger.path = dir.join("ledger.db");
    config.ledger.synchronous = Synchronous::Normal;
    config.future_skew = std::time::Duration::from_secs(3 * 365 * 86400);
    let tz = config.timezone;
    let from = parse_time("2025-01-01", tz)?;
    let to = parse_time("2026-01-01", tz)?;
    let params: usize = config.stations[0].parameters.len();
    let total = STEPS as u64 * STATIONS as u64 * params as u64;
    ensure_ledger(&config, from, total).await?;
    let out_root = dir.join("out");
    println!(
        "{:<28} {:>12} {:>10} {:>14} {:>12} {:>14}",
        "export", "readings", "seconds", "readings/s", "MiB written", "peak RSS MiB"
    );
    let (m_from, m_to) = month("2025-06", tz)?;
    let runs: [(&str, Format, Vec<String>, Timestamp, Timestamp); 4] = [
        ("csv, 1 year, 8 stations", Format::Csv, vec![], from, to),
        ("json, 1 year, 8 stations", Format::Json, vec![], from, to),
        (
            "tt10, 1 month, 1 station",
            Format::Tt10,
            vec![config.stations[0].id.to_string()],
            m_from,
            m_to,
        ),
        (
            "all, 1 month, 8 stations",
            Format::All,
            vec![],
            m_from,
            m_to,
        ),
    ];
    for (name, format, stations, f, t) in runs {
        let out = out_root.join(format.as_str());
        let _ = std::fs::remove_dir_all(&out);
        reset_peak();
        let started = Instant::now();
        let report = export(
            &config,
            &Query {
                stations,
                from: f,
                to: t,
                format,
            },
            &out,
            &Options {
                exported_at: Some(to),
                sign: None,
            },
        )?;
        let secs = started.elapsed().as_secs_f64();
        let peak = peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
        println!(
            "{:<28} {:>12} {:>10.1} {:>14.0} {:>12.0} {:>14.0}",
            name,
            report.readings,
            secs,
            report.readings as f64 / secs,
            dir_bytes(&out) as f64 / 1048576.0,
            peak
        );
        let _ = std::fs::remove_dir_all(&out);
    }
    Ok(())
}

/// The bench ledger at `config.ledger.path`, kept from an earlier run when it holds the `total` readings, else built
/// anew from `from` through the pipeline.
async fn ensure_ledger(
    config: &Config,
    from: Timestamp,
    total: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = config.ledger.path.parent().unwrap_or(Path::new("."));
    let params: usize = config.stations[0].parameters.len();
    let have = Reader::open(&config.ledger.path)
        .and_then(|r| r.count_readings())
        .unwrap_or(0);
    if have as u64 != total {
        for f in ["ledger.db", "ledger.db-wal", "ledger.db-shm"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        println!("building the bench ledger: {total} readings ({STATIONS} stations x {params} parameters, 5-minute data, 2025) …");
        let started = Instant::now();
        fill(config, from, total).await?;
        println!(
            "ledger built in {:.0} s ({})",
            started.elapsed().as_secs_f64(),
            config.ledger.path.display()
        );
    } else {
        println!(
            "reusing the bench ledger {} ({total} readings)",
            config.ledger.path.display()
        );
    }
    Ok(())
}

async fn fill(
    config: &Config,
    from: Timestamp,
    total: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let limits = resolve_limits(config)?;
    let ledger = Ledger::open(&config.ledger.path, config.ledger.synchronous)?;
    let pipeline = Pipeline::start(config, limits, ledger, Arc::new(Metrics::default()));
    let ingest = pipeline.ingest();
    let stations: Vec<_> = config
        .stations
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                s.parameters
                    .iter()
                    .map(|p| (p.parameter.clone(), p.unit.clone()))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let mut in_flight = std::collections::VecDeque::new();
    let mut committed = 0u64;
    let mut n = 0usize;
    let per_batch = 125; // timestamps per batch: 10,000 readings
    let mut step = 0;
    while step < STEPS {
        let mut readings = Vec::with_capacity(per_batch as usize * 80);
        for s in step..(step + per_batch).min(STEPS) {
            let ts = Timestamp(from.millis() + s * 300_000);
            for (id, params) in &stations {
                for (p, u) in params {
                    n += 1;
                    let value = if p.as_str() == "pH" {
                        6.5 + (n % 20) as f64 / 10.0
                    } else {
                        40.0 + (n % 89) as f64 + (s % 7) as f64 / 4.0
                    };
                    readings.push(Reading {
                        station: id.clone(),
                        parameter: p.clone(),
                        ts,
                        value,
                        unit: u.clone(),
                        status: if s % 500 == 0 {
                            Status::Calibrating
                        } else {
                            Status::Measuring
                        },
                    });
                }
            }
        }
        step += per_batch;
        in_flight.push_back(
            ingest
                .enqueue(Batch {
                    source: SourceKind::Sim,
                    readings,
                    quarantined: Vec::new(),
                    evidence: Vec::new(),
                })
                .await?,
        );
        if in_flight.len() >= 8 {
            if let Some(c) = in_flight.pop_front() {
                committed += c.await?.counts.accepted;
            }
        }
    }
    for c in in_flight {
        committed += c.await?.counts.accepted;
    }
    drop(ingest);
    pipeline.finish().await;
    if committed != total {
        return Err(format!("committed {committed} of {total} readings").into());
    }
    Ok(())
}
