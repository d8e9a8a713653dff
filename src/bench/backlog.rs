//! `quantrac bench backlog`: re-deriving compliance events for a 6 h backlog that arrives newest first.
//!
//! 100 stations × 10 parameters at 5-minute cadence: 1 h arrives live (in order), then the 6 h before it (72
//! readings per series, 72,000 readings) one timestamp per commit, newest first, so every reading is older than the
//! newest of its series and goes through the re-derivation. Each series holds two short exceedance episodes and
//! every tenth a violating hour. Measured through the ledger (commits, then the aggregate refresh that judges the
//! windows), beside the same readings in order, and the two ledgers' events compared.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::compliance::hourly::window_start;
use crate::compliance::{Assessment, Flags, Judge, LimitBound};
use crate::config::Synchronous;
use crate::ledger::aggregates::{AggregateContext, HOUR_MS};
use crate::ledger::{Evaluated, Ledger};
use crate::model::{Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit};

use super::support::tempfile_dir;

const STATIONS: usize = 100;
const PARAMETERS: [&str; 10] = [
    "COD", "TSS", "NH4", "TN", "TP", "Color", "Temp", "TOC", "Cl", "BOD5",
];
const STEP: i64 = 300_000;
const LIVE: usize = 12;
const BACKLOG: usize = 72;
const LIMIT: f64 = 100.0;
const OFFSET: i32 = 7 * 3600;

pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tokio::task::spawn_blocking(measure)
        .await?
        .map_err(|e| e as Box<dyn std::error::Error>)
}

fn measure() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile_dir().map_err(|e| e.to_string())?;
    let data = timestamps();
    println!(
        "quantrac bench backlog: {STATIONS} stations x {} parameters, 5-minute data: {LIVE} live timestamps, then a backlog of {BACKLOG} ({} readings)",
        PARAMETERS.len(),
        BACKLOG * STATIONS * PARAMETERS.len()
    );
    println!(
        "{:<22} {:>12} {:>12} {:>12} {:>8} {:>10}",
        "arrival", "commits s", "windows s", "readings/s", "events", "revisions"
    );
    let (backlog, live) = data.split_at(BACKLOG);
    let mut newest_first: Vec<&Vec<Evaluated>> = live.iter().collect();
    newest_first.extend(backlog.iter().rev());
    let mut in_order: Vec<&Vec<Evaluated>> = backlog.iter().collect();
    in_order.extend(live.iter());
    let a = run_once(&dir.join("newest-first.db"), &newest_first, LIVE)?;
    a.print("backlog newest first");
    let b = run_once(&dir.join("in-order.db"), &in_order, 0)?;
    b.print("same readings in order");
    println!(
        "events equal: {}   (re-derivation target: < 2 s for the backlog)",
        a.events == b.events
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// station id, parameter id, scope, start, end, last, peak band.
use crate::ledger::query::{EventOutline as EventRow, Table};

struct Outcome {
    commits: Duration,
    windows: Duration,
    readings: usize,
    events: Vec<EventRow>,
    revisions: i64,
}

impl Outcome {
    fn print(&self, name: &str) {
        println!(
            "{:<22} {:>12.3} {:>12.3} {:>12.0} {:>8} {:>10}",
            name,
            self.commits.as_secs_f64(),
            self.windows.as_secs_f64(),
            self.readings as f64 / self.commits.as_secs_f64(),
            self.events.len(),
            self.revisions
        );
    }
}

/// Commit `batches` one by one; time those after the first `skip` (the live hour), then the refresh that judges
/// their windows.
fn run_once(
    path: &Path,
    batches: &[&Vec<Evaluated>],
    skip: usize,
) -> Result<Outcome, Box<dyn std::error::Error + Send + Sync>> {
    let _ = std::fs::remove_file(path);
    let mut ledger = Ledger::open(path, Synchronous::Normal)?;
    let ctx = context();
    for b in &batches[..skip] {
        ledger.commit(b, &[])?;
    }
    ledger.refresh_aggregates(&ctx, 1_000_000)?;
    let started = Instant::now();
    let mut readings = 0;
    for b in &batches[skip..] {
        ledger.commit(b, &[])?;
        readings += b.len();
    }
    let commits = started.elapsed();
    let started = Instant::now();
    ledger.refresh_aggregates(&ctx, 1_000_000)?;
    let windows = started.elapsed();
    let reader = ledger.reader()?;
    let events = reader.event_outlines()?;
    let revisions = reader.count(Table::EventRevisions)?;
    Ok(Outcome {
        commits,
        windows,
        readings,
        events,
        revisions,
    })
}

fn context() -> AggregateContext {
    let limits: HashMap<String, Option<LimitBound>> = PARAMETERS
        .iter()
        .map(|p| (p.to_string(), Some(LimitBound::Max(LIMIT))))
        .collect();
    AggregateContext {
        offset_secs: OFFSET,
        windows: vec![HOUR_MS],
        judging_window_ms: HOUR_MS,
        stations: (0..STATIONS)
            .map(|s| (station(s).as_str().to_string(), (STEP, limits.clone())))
            .collect(),
    }
}

fn station(s: usize) -> StationId {
    StationId::parse(&format!("BN_B{s:03}_NUOC01")).expect("a valid station id")
}

/// One batch per timestamp, oldest first: 6 h of backlog then the live hour, ending a day before the current hour.
fn timestamps() -> Vec<Vec<Evaluated>> {
    let end = window_start(Timestamp::now(), OFFSET, HOUR_MS).millis() - 24 * HOUR_MS;
    let start = end - (LIVE + BACKLOG) as i64 * STEP;
    let judge = Judge::new(LimitBound::Max(LIMIT)).expect("a positive limit");
    let parameters: Vec<Parameter> = PARAMETERS
        .iter()
        .map(|p| Parameter::new(p).expect("a valid symbol"))
        .collect();
    (0..LIVE + BACKLOG)
        .map(|i| {
            let ts = Timestamp(start + i as i64 * STEP);
            let mut batch = Vec::with_capacity(STATIONS * parameters.len());
            for s in 0..STATIONS {
                let id = station(s);
                for (k, p) in parameters.iter().enumerate() {
                    let value = value(s * parameters.len() + k, i);
                    let v = judge.value(value);
                    batch.push(Evaluated {
                        reading: Reading {
                            station: id.clone(),
                            parameter: p.clone(),
                            ts,
                            value,
                            unit: Unit::new("mg/L"),
                            status: Status::Measuring,
                        },
                        assessment: Assessment {
                            limit: Some(LimitBound::Max(LIMIT)),
                            ratio: v.ratio,
                            band: v.band,
                            flags: Flags::default(),
                        },
                        source: SourceKind::Sim,
                        received: None,
                    });
                }
            }
            batch
        })
        .collect()
}

/// Series `n` at step `i`: compliant, with two three-reading exceedances and, every tenth series, an hour above.
fn value(n: usize, i: usize) -> f64 {
    let first = 5 + n % 20;
    let second = 40 + n % 25;
    let hour = if n.is_multiple_of(10) {
        Some(24..36)
    } else {
        None
    };
    if (first..first + 3).contains(&i) || (second..second + 3).contains(&i) {
        120.0 + (i % 3) as f64 * 15.0
    } else if hour.is_some_and(|h| h.contains(&i)) {
        130.0
    } else {
        60.0 + (n + i) as f64 % 20.0
    }
}
