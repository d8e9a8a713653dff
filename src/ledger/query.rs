//! Read-only queries over the ledger (dashboard, API, exports, tests). Each `Reader` owns its own connection.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection};

use super::{read_only_flags, LedgerError};
use crate::model::{Status, Timestamp};

/// A stored reading as queries return it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReading {
    pub seq: i64,
    pub station: String,
    pub parameter: String,
    pub ts: Timestamp,
    pub value: f64,
    pub unit: String,
    pub status: Status,
    pub source: String,
    pub limit_low: Option<f64>,
    pub limit_high: Option<f64>,
    pub ratio: Option<f64>,
    pub band: String,
    pub flags: u32,
}

/// A quarantined input as queries return it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredQuarantine {
    pub id: i64,
    pub received: Timestamp,
    pub source: String,
    pub origin: String,
    pub station: Option<String>,
    pub reason: String,
    pub raw: Vec<u8>,
}

/// Filter for reading queries. `after_seq` pages through results in commit order.
#[derive(Debug, Clone, Default)]
pub struct ReadingFilter {
    pub station: Option<String>,
    pub parameter: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub after_seq: i64,
    pub limit: usize,
}

pub struct Reader {
    conn: Connection,
}

const SELECT_READING: &str =
    "SELECT r.seq, s.code, p.symbol, r.ts, r.value, r.unit, r.status, r.source, r.limit_low, \
    r.limit_high, r.ratio, r.band, r.flags FROM readings r JOIN stations s ON s.id = r.station_id \
    JOIN parameters p ON p.id = r.parameter_id";

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, LedgerError> {
        let conn = Connection::open_with_flags(path, read_only_flags()).map_err(|error| {
            LedgerError::Open {
                path: path.to_path_buf(),
                error,
            }
        })?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(Reader { conn })
    }

    pub fn count_readings(&self) -> Result<i64, LedgerError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM readings", [], |r| r.get(0))?)
    }

    pub fn count(&self, table: Table) -> Result<i64, LedgerError> {
        Ok(self
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {}", table.name()), [], |r| {
                r.get(0)
            })?)
    }

    /// Highest committed sequence number (0 when empty).
    pub fn last_seq(&self) -> Result<i64, LedgerError> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM readings", [], |r| {
                r.get(0)
            })?)
    }

    /// Readings matching the filter, in commit order, at most `limit` (0 = 1,000).
    pub fn readings(&self, f: &ReadingFilter) -> Result<Vec<StoredReading>, LedgerError> {
        let sql = format!(
            "{SELECT_READING} WHERE r.seq > ?1 AND (?2 IS NULL OR s.code = ?2) AND (?3 IS NULL OR p.symbol = ?3) \
             AND (?4 IS NULL OR r.ts >= ?4) AND (?5 IS NULL OR r.ts < ?5) ORDER BY r.seq LIMIT ?6"
        );
        let limit = if f.limit == 0 { 1000 } else { f.limit } as i64;
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(
            params![
                f.after_seq,
                f.station,
                f.parameter,
                f.from.map(|t| t.millis()),
                f.to.map(|t| t.millis()),
                limit
            ],
            stored_reading,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The quarantine, newest first.
    pub fn quarantine(&self, limit: usize) -> Result<Vec<StoredQuarantine>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, received, source, origin, station, reason, raw FROM quarantine ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit as i64], |r| {
            Ok(StoredQuarantine {
                id: r.get(0)?,
                received: Timestamp(r.get(1)?),
                source: r.get(2)?,
                origin: r.get(3)?,
                station: r.get(4)?,
                reason: r.get(5)?,
                raw: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// `PRAGMA integrity_check` result ("ok" when the file is sound).
    pub fn integrity_check(&self) -> Result<String, LedgerError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// Tables whose rows can be counted.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    Readings,
    Quarantine,
    Conflicts,
    Aggregates,
    AggregateChanges,
    Events,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Readings => "readings",
            Table::Quarantine => "quarantine",
            Table::Conflicts => "conflicts",
            Table::Aggregates => "aggregates",
            Table::AggregateChanges => "aggregate_changes",
            Table::Events => "events",
        }
    }
}

fn stored_reading(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredReading> {
    Ok(StoredReading {
        seq: r.get(0)?,
        station: r.get(1)?,
        parameter: r.get(2)?,
        ts: Timestamp(r.get(3)?),
        value: r.get(4)?,
        unit: r.get(5)?,
        status: Status::from_u8(r.get(6)?).unwrap_or(Status::Fault),
        source: r.get(7)?,
        limit_low: r.get(8)?,
        limit_high: r.get(9)?,
        ratio: r.get(10)?,
        band: r.get(11)?,
        flags: r.get(12)?,
    })
}
