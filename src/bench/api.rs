//! `quantrac bench api`: the history endpoint and the overview on a province-sized ledger. Builds (once, then reuses
//! from the temp folder) a ledger of 500 stations × 10 parameters at a 5-minute cadence: 48 of them hold a whole
//! year from 1 January 2025 (50,457,600 readings; `--readings N` keeps N / 1,051,200 stations with a year, or one
//! station with part of one), every other station the last hour, so the overview has 500 stations with values. It is
//! written through the real pipeline (compliance, events, hourly and daily aggregates), one station at a time in runs
//! of 1,000 steps so each aggregate window is recomputed once or twice, not once per batch. Then it serves the ledger
//! on loopback and prints p50/p99 of `GET /api/history` for a 24-hour and a 1-year range of one station (automatic
//! resolution: the readings, then daily means; the range's min/max/mean always from the readings), of the 1-year range
//! drawn from the readings (`resolution=raw`, downsampled to buckets), and of `GET /api/stations` with 500 stations.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, Synchronous};
use crate::ledger::{Ledger, Reader};
use crate::metrics::Metrics;
use crate::model::{Reading, SourceKind, Status, Timestamp};
use crate::pipeline::{Batch, Pipeline};

use super::support::{bench_config, latency_summary, plausible};

type BoxError = Box<dyn std::error::Error>;
/// The URL of the i-th request of a row.
type UrlOf<'a> = Box<dyn Fn(usize) -> String + 'a>;

/// A year of readings of one station's ten parameters every 5 minutes.
const STATION_YEAR: usize = PARAMETERS * YEAR_STEPS as usize;
/// The default size: 48 stations with a year (50,457,600 readings), besides the other stations' last hour.
pub const FULL: usize = 48 * STATION_YEAR;
const STATIONS: usize = 500;
const PARAMETERS: usize = 10;
const YEAR_STEPS: i64 = 365 * 288;
/// The last hour of the stations without a year.
const TAIL_STEPS: i64 = 12;
const STEP_MS: i64 = 300_000;
/// Steps of one station per batch (10,000 readings).
const RUN: i64 = 1_000;

pub async fn run(readings: usize) -> Result<(), BoxError> {
    let dir = std::env::temp_dir().join("quantrac-bench-api");
    std::fs::create_dir_all(&dir)?;
    let mut config = Config::from_str(
        &format!(
            "[http]\nanonymous_read = true\n[ledger]\nsynchronous = \"normal\"\n{}",
            bench_config(STATIONS)
        ),
        Path::new("<bench>"),
        &dir,
    )?;
    let plan = Plan::of(readings);
    config.ledger.path = dir.join(format!("ledger-{}x{}.db", plan.full, plan.steps));
    config.ledger.synchronous = Synchronous::Normal;
    config.future_skew = Duration::from_secs(3 * 365 * 86400);
    let from = crate::export::parse_time("2025-01-01", config.timezone)?;
    ensure_ledger(&config, from, plan).await?;
    let end = from.millis() + plan.steps * STEP_MS;
    println!(
        "quantrac bench api: {} readings: {} stations x {PARAMETERS} parameters every 5 min for {:.1} days from 2025-01-01 local, \
         the other {} stations their last hour; {} MiB on disk",
        plan.total(),
        plan.full,
        (plan.steps * STEP_MS) as f64 / 86_400_000.0,
        STATIONS - plan.full,
        file_mib(&config.ledger.path)
    );
    serve_and_measure(config, from.millis(), end, plan.full).await
}

/// Which stations hold how much.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Stations with `steps` steps; the others have the last [`TAIL_STEPS`].
    full: usize,
    steps: i64,
}

impl Plan {
    fn of(readings: usize) -> Plan {
        if readings >= STATION_YEAR {
            Plan {
                full: (readings / STATION_YEAR).min(STATIONS),
                steps: YEAR_STEPS,
            }
        } else {
            Plan {
                full: 1,
                steps: (readings / PARAMETERS).max(TAIL_STEPS as usize) as i64,
            }
        }
    }
    fn total(self) -> u64 {
        ((self.full as i64 * self.steps + (STATIONS - self.full) as i64 * TAIL_STEPS)
            * PARAMETERS as i64) as u64
    }
    /// The steps of station `i`.
    fn steps_of(self, i: usize) -> std::ops::Range<i64> {
        if i < self.full {
            0..self.steps
        } else {
            self.steps - TAIL_STEPS..self.steps
        }
    }
}

fn file_mib(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len() >> 20).unwrap_or(0)
}

/// The bench ledger, kept from an earlier run when it holds `total` readings, else built anew.
async fn ensure_ledger(config: &Config, from: Timestamp, plan: Plan) -> Result<(), BoxError> {
    let path = &config.ledger.path;
    let total = plan.total();
    let have = Reader::open(path)
        .and_then(|r| r.count_readings())
        .unwrap_or(0);
    if have as u64 == total {
        println!(
            "reusing the bench ledger {} ({total} readings)",
            path.display()
        );
        return Ok(());
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(PathBuf::from(format!("{}{suffix}", path.display())));
    }
    let need = (total * 200) >> 20;
    println!(
        "building the bench ledger {} ({total} readings; about {need} MiB of disk needed) …",
        path.display()
    );
    let started = Instant::now();
    fill(config, from, plan).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ledger built in {secs:.0} s ({:.0} readings/s)",
        total as f64 / secs
    );
    Ok(())
}

async fn fill(config: &Config, from: Timestamp, plan: Plan) -> Result<(), BoxError> {
    let total = plan.total();
    let limits = crate::compliance::resolve_limits(config)?;
    let ledger = Ledger::open(&config.ledger.path, config.ledger.synchronous)?;
    let pipeline = Pipeline::start(config, limits, ledger, Arc::new(Metrics::default()));
    let ingest = pipeline.ingest();
    let mut in_flight = std::collections::VecDeque::new();
    let mut committed = 0u64;
    let mut n = 0usize;
    let report_every = (STATIONS / 10).max(1);
    for (i, s) in config.stations.iter().enumerate() {
        let steps = plan.steps_of(i);
        let mut step = steps.start;
        while step < steps.end {
            let mut readings = Vec::with_capacity(RUN as usize * s.parameters.len());
            for k in step..(step + RUN).min(steps.end) {
                let ts = Timestamp(from.millis() + k * STEP_MS);
                for p in &s.parameters {
                    n += 1;
                    readings.push(Reading {
                        station: s.id.clone(),
                        parameter: p.parameter.clone(),
                        ts,
                        value: plausible(&p.parameter, n),
                        unit: p.unit.clone(),
                        status: if k % 500 == 0 {
                            Status::Calibrating
                        } else {
                            Status::Measuring
                        },
                    });
                }
            }
            step += RUN;
            let mut batch = Batch::new(SourceKind::Sim);
            batch.readings = readings;
            in_flight.push_back(ingest.enqueue(batch).await?);
            if in_flight.len() >= 8 {
                if let Some(c) = in_flight.pop_front() {
                    committed += c.await?.counts.accepted;
                }
            }
        }
        if (i + 1) % report_every == 0 {
            println!("  {} of {STATIONS} stations submitted", i + 1);
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

/// Serve the ledger on loopback (no pipeline writing) and time the requests, one client at a time.
async fn serve_and_measure(
    config: Config,
    first: i64,
    end: i64,
    full: usize,
) -> Result<(), BoxError> {
    let live = crate::live::LiveState::load(&config, &Reader::open(&config.ledger.path)?)?;
    let (events, _) = tokio::sync::broadcast::channel(16);
    let (addr, shutdown, server) = super::support::serve_loopback(&config, live, events).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let day = 86_400_000;
    let year_from = (end - 365 * day).max(first);
    let station = |i: usize| format!("BN_BENCH{}_NUOC01", (i * 37) % full);
    let history = |i: usize, from: i64, extra: &str| {
        format!(
            "http://{addr}/api/history?station={}&parameter=COD&from={from}&to={end}{extra}",
            station(i)
        )
    };
    println!(
        "{:<44} latency",
        "request (one client, a different station each time)"
    );
    let rows: [(&str, usize, UrlOf); 4] = [
        (
            "history, 24 h (raw readings)",
            100,
            Box::new(|i| history(i, end - day, "")),
        ),
        (
            "history, whole range (auto: daily means)",
            50,
            Box::new(|i| history(i, year_from, "")),
        ),
        (
            "history, whole range, resolution=raw",
            20,
            Box::new(|i| history(i, year_from, "&resolution=raw")),
        ),
        (
            "/api/stations (500 stations)",
            100,
            Box::new(|_| format!("http://{addr}/api/stations")),
        ),
    ];
    for (name, samples, url) in rows {
        let mut ms = Vec::with_capacity(samples);
        for i in 0..samples {
            let started = Instant::now();
            let r = client.get(url(i)).send().await?;
            let status = r.status();
            let body = r.bytes().await?;
            if !status.is_success() {
                return Err(format!("{name}: {status} {}", String::from_utf8_lossy(&body)).into());
            }
            ms.push(started.elapsed().as_millis() as i64);
        }
        ms.sort_unstable();
        println!("{name:<44} {}", latency_summary(&ms));
    }
    shutdown.cancel();
    let _ = server.await;
    Ok(())
}
