//! In-process transport: simulated stations submit straight into the pipeline (no network).
//! Used by `demo` for stations with `sim.via = "direct"`, by tests and by the benchmark.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::StationSim;
use crate::model::{SourceKind, Timestamp};
use crate::pipeline::{Batch, Ingest};

/// Backfill `backfill` of history at the stations' interval, then emit live readings every
/// `interval / speed` of wall time until `shutdown`. Simulated time runs `speed` times faster than the wall clock;
/// live readings are stamped with the wall clock.
pub async fn run(
    sims: Vec<StationSim>,
    interval: Duration,
    speed: u32,
    backfill: Duration,
    ingest: Ingest,
    shutdown: CancellationToken,
) {
    if sims.is_empty() || !history(&sims, interval, backfill, &ingest, &shutdown).await {
        return;
    }
    info!(stations = sims.len(), "Simulated stations live.");
    let mut clock = super::LiveClock::new(interval, speed);
    while let Some((sim_t, stamp)) = clock.next(&shutdown).await {
        let mut batch = Batch::new(SourceKind::Sim);
        for s in &sims {
            batch.readings.extend(s.sample(sim_t, stamp));
        }
        // Waiting for the commit here is the backpressure: a slow ledger slows the simulator.
        if let Err(e) = ingest.submit(batch).await {
            warn!(error = %e, "Simulated batch not committed.");
            return;
        }
    }
}

/// Submit the last `backfill` of the stations' readings, as a datalogger hands over its stored history (the demo's
/// Modbus stations use this: a Modbus register holds only the current value). Returns false if the pipeline closed.
pub async fn history(
    sims: &[StationSim],
    interval: Duration,
    backfill: Duration,
    ingest: &Ingest,
    shutdown: &CancellationToken,
) -> bool {
    let step = interval.as_millis().max(1) as i64;
    let now = Timestamp::now().0;
    let mut t = (now - backfill.as_millis() as i64).div_euclid(step) * step;
    while t < now && !shutdown.is_cancelled() {
        let mut batch = Batch::new(SourceKind::Sim);
        for _ in 0..12 {
            if t >= now {
                break;
            }
            for s in sims {
                batch.readings.extend(s.sample(Timestamp(t), Timestamp(t)));
            }
            t += step;
        }
        if ingest.submit(batch).await.is_err() {
            return false;
        }
    }
    info!(
        stations = sims.len(),
        hours = backfill.as_secs() / 3600,
        "Simulator backfilled history."
    );
    true
}
