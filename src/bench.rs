//! `quantrac bench`: throughput measurements that print numbers (never asserted in tests).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{Config, Synchronous};
use crate::daemon::resolve_limits;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::model::{
    Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit, WATER_PARAMETERS,
};
use crate::pipeline::{Batch, Pipeline};

/// A config with `stations` stations monitoring the ten Circular 10 water parameters.
pub fn bench_config(stations: usize) -> String {
    let params = WATER_PARAMETERS
        .iter()
        .filter(|(s, _)| *s != "Color")
        .map(|(s, _)| format!("{s} = {{}}"))
        .collect::<Vec<_>>()
        .join(", ");
    (0..stations)
        .map(|i| {
            format!(
                "[[station]]\nid = \"BN_BENCH{i}_NUOC01\"\nname = \"Bench {i}\"\nprofile = \"qcvn40-2011-b\"\n\
                 design_flow_m3_day = 5000\nreceiving_water = {{ type = \"river\", flow_m3_s = 120 }}\nparameters = {{ {params} }}\n\n"
            )
        })
        .collect()
}

/// Readings/s committed through processor + ledger for batches of 1, 100 and 1,000, in both synchronous modes.
pub async fn ledger(total: usize) -> Result<(), Box<dyn std::error::Error>> {
    let stations = 100;
    let dir = tempfile_dir()?;
    println!("quantrac bench ledger: {total} readings per run, {stations} stations x 10 parameters, 5-minute data");
    println!(
        "{:<10} {:>8} {:>14} {:>12}",
        "sync", "batch", "readings/s", "seconds"
    );
    for sync in [Synchronous::Normal, Synchronous::Full] {
        for batch in [1usize, 100, 1000] {
            let n = if batch == 1 { total.min(50_000) } else { total };
            let path = dir.join(format!("bench-{sync:?}-{batch}.db"));
            let (rate, secs) = run_once(&path, sync, stations, batch, n).await?;
            println!(
                "{:<10} {:>8} {:>14.0} {:>12.2}",
                format!("{sync:?}").to_lowercase(),
                batch,
                rate,
                secs
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn run_once(
    path: &Path,
    sync: Synchronous,
    stations: usize,
    batch: usize,
    total: usize,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
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
    let pipeline = Pipeline::start(&config, limits, ledger, Arc::new(Metrics::default()));
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
                    value: 50.0 + (all.len() % 97) as f64,
                    unit: u.clone(),
                    status: Status::Measuring,
                });
            }
        }
    }
    let started = Instant::now();
    let mut in_flight = VecDeque::new();
    let mut committed = 0u64;
    for chunk in all.chunks(batch) {
        let b = Batch {
            source: SourceKind::Sim,
            readings: chunk.to_vec(),
            quarantined: Vec::new(),
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
    drop(ingest);
    pipeline.finish().await;
    if committed != total as u64 {
        return Err(format!("committed {committed} of {total} readings").into());
    }
    Ok((total as f64 / secs, secs))
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("quantrac-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
