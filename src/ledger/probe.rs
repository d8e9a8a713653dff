//! Measurements of SQLite itself on the ledger's schema, for `quantrac bench ledger`: the floor under the writer.
//! Kept here because it is SQL on the ledger's tables; nothing in the daemon calls it.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{Ledger, LedgerError};
use crate::config::Synchronous;
use crate::model::Timestamp;

/// The time SQLite alone takes to insert `rows` rows of the readings schema (`stations` stations × 10 parameters,
/// 5-minute data) into a new ledger at `path` in one transaction: the floor under the writer.
///
/// The rows come from a temporary table in memory, so nothing is bound and no quantrac code runs while timed; the
/// WAL commit and checkpoint are included. `path` is replaced.
pub fn sqlite_insert_floor(
    path: &Path,
    rows: usize,
    stations: usize,
) -> Result<Duration, LedgerError> {
    let _ = std::fs::remove_file(path);
    drop(Ledger::open(path, Synchronous::Full)?);
    let conn = Connection::open(path).map_err(|error| LedgerError::Open {
        path: path.to_path_buf(),
        error,
    })?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // As the ledger writer: foreign keys declared, not enforced (there are no station rows here).
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let start_ts = Timestamp::now().0 - 400 * 86_400_000;
    conn.execute(
        &format!(
            "CREATE TEMP TABLE source AS WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
             SELECT 1 + (i / 10) % {stations} AS station_id, 1 + i % 10 AS parameter_id, \
             {start_ts} + (i / (10 * {stations})) * 300000 AS ts, 40.0 + i % 89 AS value, 'mg/L' AS unit, 0 AS status, \
             'sim' AS source, {start_ts} AS received, NULL AS limit_low, 135.0 AS limit_high, (40.0 + i % 89) / 135.0 AS ratio, \
             'compliant' AS band, 0 AS flags FROM n",
            last = rows.saturating_sub(1)
        ),
        [],
    )?;
    let started = Instant::now();
    conn.execute_batch(
        "BEGIN IMMEDIATE; \
         INSERT OR IGNORE INTO readings (station_id, parameter_id, ts, value, unit, status, source, received, \
         limit_low, limit_high, ratio, band, flags) SELECT * FROM source; \
         COMMIT;",
    )?;
    Ok(started.elapsed())
}
