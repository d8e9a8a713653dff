//! `quantrac bench ledger`: readings/s committed through processor + ledger, beside SQLite alone on the same schema.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::compliance::resolve_limits;
use crate::config::{Config, Synchronous};
use crate::ledger::probe::sqlite_insert_floor;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::model::{Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit};
use crate::pipeline::{Batch, Pipeline};

use super::support::{bench_config, plausible, tempfile_dir, thread_times, ThreadTime};

/// Readings/s committed through processor + ledger for batches of 1, 100 and 1,000, in both synchronous modes, and the
/// rate of SQLite alone inserting the same rows (the floor under the writer).
pub async fn run(total: usize) -> Result<(), Box<dyn std::error::Error>> {
    let stations = 100;
    let dir = tempfile_dir()?;
    println!("quantrac bench ledger: {total} readings per run, {stations} stations x 10 parameters, 5-minute data");
    println!(
        "{:<10} {:>8} {:>14} {:>12} {:>8}   where the CPU went (s): on a core + waiting for one",
        "sync", "batch", "readings/s", "seconds", "commits"
    );
    for sync in [Synchronous::Normal, Synchronous::Full] {
        for batch in [1usize, 100, 1000] {
            let n = if batch == 1 { total.min(50_000) } else { total };
            let path = dir.join(format!("bench-{sync:?}-{batch}.db"));
            let run = run_once(&path, sync, stations, batch, n).await?;
            println!(
                "{:<10} {:>8} {:>14.0} {:>12.2} {:>8}   writer {:.3}+{:.3}, processor (async workers) {:.3}+{:.3}",
                format!("{sync:?}").to_lowercase(),
                batch,
                n as f64 / run.secs,
                run.secs,
                run.commits,
                run.writer.run,
                run.writer.wait,
                run.workers.run,
                run.workers.wait
            );
        }
    }
    // The writer's page cache: the size it had (64 MiB) and today's, on a ledger larger than both.
    let big = total * 10;
    for kib in [65_536, crate::ledger::WRITER_CACHE_KIB] {
        let path = dir.join(format!("bench-cache-{kib}.db"));
        let run =
            run_once_cached(&path, Synchronous::Normal, stations, 1000, big, Some(kib)).await?;
        println!(
            "{:<10} {:>8} {:>14.0} {:>12.2} {:>8}   writer {:.3}+{:.3}, processor {:.3}+{:.3}; page cache {} MiB, {big} readings \
             ({} MiB ledger)",
            "normal",
            1000,
            big as f64 / run.secs,
            run.secs,
            run.commits,
            run.writer.run,
            run.writer.wait,
            run.workers.run,
            run.workers.wait,
            kib / 1024,
            std::fs::metadata(&path).map(|m| m.len() >> 20).unwrap_or(0)
        );
        let _ = std::fs::remove_file(&path);
    }
    let secs = sqlite_insert_floor(&dir.join("bench-sqlite.db"), total, stations)?.as_secs_f64();
    println!(
        "{:<10} {:>8} {:>14.0} {:>12.2}   SQLite alone: the same rows copied from a table in memory in one transaction",
        "full",
        total,
        total as f64 / secs,
        secs
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One measured run: how long, in how many transactions, and the CPU time of the writer thread and of the async
/// workers (the processor) meanwhile.
struct Run {
    secs: f64,
    commits: u64,
    writer: ThreadTime,
    workers: ThreadTime,
}

async fn run_once(
    path: &Path,
    sync: Synchronous,
    stations: usize,
    batch: usize,
    total: usize,
) -> Result<Run, Box<dyn std::error::Error>> {
    run_once_cached(path, sync, stations, batch, total, None).await
}

/// [`run_once`] with the writer's page cache set to `cache_kib` (default: the ledger's own).
async fn run_once_cached(
    path: &Path,
    sync: Synchronous,
    stations: usize,
    batch: usize,
    total: usize,
    cache_kib: Option<i64>,
) -> Result<Run, Box<dyn std::error::Error>> {
    let _ = std::fs::remove_file(path);
    let mut config = Config::from_str(
        &bench_config(stations),
        Path::new("<bench>"),
        Path::new("."),
    )?;
    config.ledger.synchronous = sync;
    config.future_skew = std::time::Duration::from_secs(365 * 86400);
    let limits = resolve_limits(&config)?;
    let ledger = Ledger::open(path, sync)?;
    if let Some(kib) = cache_kib {
        ledger.set_cache_kib(kib)?;
    }
    let metrics = Arc::new(Metrics::default());
    let pipeline = Pipeline::start(&config, limits, ledger, metrics.clone());
    let ingest = pipeline.ingest();
    let ids: Vec<StationId> = config.stations.iter().map(|s| s.id.clone()).collect();
    let params: Vec<(Parameter, Unit)> = config.stations[0]
        .parameters
        .iter()
        .map(|p| (p.parameter.clone(), p.unit.clone()))
        .collect();
    let start_ts = Timestamp::now().0 - 400 * 86_400_000;
    // Readings come as stations report them: every station, every parameter, one timestamp after another.
    let mut all = Vec::with_capacity(total);
    'outer: for step in 0.. {
        for id in &ids {
            for (p, u) in &params {
                if all.len() == total {
                    break 'outer;
                }
                all.push(Reading {
                    station: id.clone(),
                    parameter: p.clone(),
                    ts: Timestamp(start_ts + step * 300_000),
                    value: plausible(p, all.len()),
                    unit: u.clone(),
                    status: Status::Measuring,
                });
            }
        }
    }
    let cpu_before = thread_times("self");
    let started = Instant::now();
    let mut in_flight = VecDeque::new();
    let mut committed = 0u64;
    for chunk in all.chunks(batch) {
        let b = Batch {
            source: SourceKind::Sim,
            readings: chunk.to_vec(),
            quarantined: Vec::new(),
            evidence: Vec::new(),
        };
        in_flight.push_back(ingest.enqueue(b).await?);
        // Many sources in flight at once, as in a real province; each still waits for its own commit.
        if in_flight.len() >= 256 {
            if let Some(c) = in_flight.pop_front() {
                committed += c.await?.counts.accepted;
            }
        }
    }
    for c in in_flight {
        committed += c.await?.counts.accepted;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = thread_times("self");
    let used = |name: &str| {
        let (a, b) = (cpu_before.get(name), cpu.get(name));
        let (a, b) = (
            a.copied().unwrap_or_default(),
            b.copied().unwrap_or_default(),
        );
        ThreadTime {
            run: b.run - a.run,
            wait: b.wait - a.wait,
        }
    };
    let run = Run {
        secs,
        commits: metrics.commits.load(std::sync::atomic::Ordering::Relaxed),
        writer: used("ledger-writer"),
        workers: used("tokio-rt-worker"),
    };
    drop(ingest);
    pipeline.finish().await;
    if committed != total as u64 {
        return Err(format!("committed {committed} of {total} readings").into());
    }
    Ok(run)
}
