//! TT10 transport: simulated stations write Circular 10 TXT files into a landing folder, as a datalogger's FTP
//! upload would (written under a hidden name, then renamed), so training and tests exercise the landing-folder
//! source. Used for stations with `sim.via = "tt10"` (the first `[tt10] landing` folder).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::StationSim;
use crate::circular10::{file_name, write_content};
use crate::model::Timestamp;

/// Write one station file for the readings of `sim` at `sim_t` (stamped `stamp`) into `dir`.
pub fn write_file(
    dir: &Path,
    sim: &StationSim,
    sim_t: Timestamp,
    stamp: Timestamp,
    tz: FixedOffset,
) -> std::io::Result<PathBuf> {
    let readings = sim.sample(sim_t, stamp);
    let Some(first) = readings.first() else {
        return Ok(dir.to_path_buf());
    };
    let name = file_name(&first.station, stamp, tz);
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, write_content(&readings, tz))?;
    let path = dir.join(name);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Backfill `backfill` of files at the stations' interval, then write live files every `interval / speed` of wall
/// time until `shutdown`.
pub async fn run(
    sims: Vec<StationSim>,
    dir: PathBuf,
    tz: FixedOffset,
    interval: Duration,
    speed: u32,
    backfill: Duration,
    shutdown: CancellationToken,
) {
    if sims.is_empty() {
        return;
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        warn!(folder = %dir.display(), error = %e, "Simulated TT10 stations cannot write their files.");
        return;
    }
    let step = interval.as_millis() as i64;
    let now = Timestamp::now().0;
    let mut t = (now - backfill.as_millis() as i64).div_euclid(step) * step;
    let mut written = 0u64;
    while t < now && !shutdown.is_cancelled() {
        for s in &sims {
            match write_file(&dir, s, Timestamp(t), Timestamp(t), tz) {
                Ok(_) => written += 1,
                Err(e) => {
                    warn!(error = %e, "Simulated TT10 file not written.");
                    return;
                }
            }
        }
        t += step;
        if written.is_multiple_of(1000) {
            tokio::task::yield_now().await;
        }
    }
    info!(stations = sims.len(), files = written, folder = %dir.display(), "Simulated TT10 stations backfilled; now live.");
    let mut clock = super::LiveClock::new(interval, speed);
    while let Some((sim_t, stamp)) = clock.next(&shutdown).await {
        for s in &sims {
            if let Err(e) = write_file(&dir, s, sim_t, stamp, tz) {
                warn!(error = %e, "Simulated TT10 file not written.");
            }
        }
    }
}
