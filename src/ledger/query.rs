//! Read-only queries over the ledger (dashboard, API, live view, sources, tests). Each `Reader` owns its own
//! connection. Alert, audit and export reads live beside their tables' other queries (`alerts.rs`, `audit.rs`,
//! `export.rs`).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::aggregates::DAY_MS;
use super::{read_only_flags, LedgerError};
use crate::model::{SourceKind, Status, Timestamp};

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
    /// Only stations matching one of these patterns (see [`in_globs`]); `None`: every station.
    pub station_globs: Option<Vec<String>>,
    pub parameter: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub after_seq: i64,
    pub limit: usize,
}

/// Filter of the aggregate list (`GET /api/aggregates`): one window length, by start then station and parameter.
#[derive(Debug, Clone, Default)]
pub struct AggregateFilter {
    pub window_ms: i64,
    pub station: Option<String>,
    /// Only stations matching one of these patterns (see [`in_globs`]); `None`: every station.
    pub station_globs: Option<Vec<String>>,
    pub parameter: Option<String>,
    /// Window starts from (inclusive) and to (exclusive), Unix ms.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: i64,
}

/// A stored window aggregate as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAggregate {
    pub station: String,
    pub parameter: String,
    pub window_start: i64,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub valid: i64,
    pub expected: i64,
    pub completeness: f64,
    pub limit_low: Option<f64>,
    pub limit_high: Option<f64>,
    pub ratio: Option<f64>,
    pub band: String,
    pub revision: i64,
}

/// Filter of the event list (`GET /api/events`), newest start first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub station: Option<String>,
    /// Only stations matching one of these patterns (see [`in_globs`]); `None`: every station.
    pub station_globs: Option<Vec<String>>,
    /// Only events still open.
    pub open_only: bool,
    pub limit: i64,
}

/// A compliance event as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub station: String,
    pub parameter: String,
    pub scope: String,
    pub start: i64,
    pub end: Option<i64>,
    pub last: i64,
    pub band: String,
    pub peak_band: String,
    pub peak_ratio: Option<f64>,
}

/// The newest reading of a series, for the live picture.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestReading {
    pub ts: i64,
    pub value: f64,
    pub unit: String,
    pub status: Status,
    pub band: String,
    pub limit_low: Option<f64>,
    pub limit_high: Option<f64>,
    pub ratio: Option<f64>,
}

/// The newest stored window of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestWindow {
    pub window_start: i64,
    pub mean: Option<f64>,
    pub band: String,
    pub completeness: f64,
}

/// A series' newest reading with its newest averaging window and local day.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    pub reading: LatestReading,
    pub window: Option<LatestWindow>,
    pub day: Option<LatestWindow>,
}

pub struct Reader {
    conn: Connection,
}

/// The SQL condition "`column` matches one of the patterns bound at `?n`" (a JSON array of GLOB patterns, or NULL
/// for every station; see [`globs_param`]): how list queries keep to a caller's station scope.
pub(super) fn in_globs(column: &str, n: u8) -> String {
    format!(
        "(?{n} IS NULL OR EXISTS (SELECT 1 FROM json_each(?{n}) g WHERE {column} GLOB g.value))"
    )
}

/// The patterns as the parameter [`in_globs`] binds: a JSON array, or NULL for every station.
pub(super) fn globs_param(globs: &Option<Vec<String>>) -> Option<String> {
    globs
        .as_ref()
        .map(|g| serde_json::Value::from(g.clone()).to_string())
}

const SELECT_READING: &str =
    "SELECT r.seq, s.code, p.symbol, r.ts, r.value, r.unit, r.status, r.source, r.limit_low, \
    r.limit_high, r.ratio, r.band, r.flags FROM readings r JOIN stations s ON s.id = r.station_id \
    JOIN parameters p ON p.id = r.parameter_id";

/// A read-only connection to the quantrac ledger at `path`, refused (naming the file) when the file is not a
/// quantrac ledger or is newer than this build.
pub(super) fn open_read_only(path: &Path) -> Result<Connection, LedgerError> {
    let named = |error| LedgerError::Open {
        path: path.to_path_buf(),
        error,
    };
    let conn = Connection::open_with_flags(path, read_only_flags()).map_err(named)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(named)?;
    super::schema::check(&conn, path)?;
    Ok(conn)
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, LedgerError> {
        Ok(Reader {
            conn: open_read_only(path)?,
        })
    }

    pub fn count_readings(&self) -> Result<i64, LedgerError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM readings", [], |r| r.get(0))?)
    }

    /// How many compliance events and alerts the ledger holds (what `bench e2e` prints beside its counts).
    pub fn count_events_and_alerts(&self) -> Result<(i64, i64), LedgerError> {
        Ok(self.conn.query_row(
            "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM alerts)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Stored alerts by kind (exceedance, violation, silent, …), in kind order: (kind, standing, withdrawn), the
    /// withdrawn ones being those a re-derivation replaced (kept for the audit trail).
    pub fn alerts_by_kind(&self) -> Result<Vec<(String, i64, i64)>, LedgerError> {
        let mut st = self.conn.prepare(
            "SELECT kind, SUM(state != 'withdrawn'), SUM(state = 'withdrawn') FROM alerts GROUP BY kind ORDER BY kind",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every stored event as (station id, parameter id, scope, start, end, last, peak band), in that order: what
    /// two ledgers that received the same readings must agree on.
    pub fn event_outlines(&self) -> Result<Vec<EventOutline>, LedgerError> {
        let mut st = self.conn.prepare(
            "SELECT station_id, parameter_id, scope, start, end, last, peak_band FROM events ORDER BY 1, 2, 3, 4",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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
             AND (?4 IS NULL OR r.ts >= ?4) AND (?5 IS NULL OR r.ts < ?5) AND {} ORDER BY r.seq LIMIT ?6",
            in_globs("s.code", 7)
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
                limit,
                globs_param(&f.station_globs)
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

    /// Window aggregates matching the filter, by window start, station and parameter.
    pub fn aggregates(&self, f: &AggregateFilter) -> Result<Vec<StoredAggregate>, LedgerError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT s.code, p.symbol, a.window_start, a.mean, a.min, a.max, a.valid, a.expected, a.completeness, a.limit_low, \
             a.limit_high, a.ratio, a.band, a.revision FROM aggregates a JOIN stations s ON s.id = a.station_id \
             JOIN parameters p ON p.id = a.parameter_id WHERE a.window_ms = ?1 AND (?2 IS NULL OR s.code = ?2) \
             AND (?3 IS NULL OR p.symbol = ?3) AND (?4 IS NULL OR a.window_start >= ?4) AND (?5 IS NULL OR a.window_start < ?5) \
             AND {} ORDER BY a.window_start, s.code, p.symbol LIMIT ?6",
            in_globs("s.code", 7)
        ))?;
        let rows = st.query_map(
            params![
                f.window_ms,
                f.station,
                f.parameter,
                f.from,
                f.to,
                f.limit,
                globs_param(&f.station_globs)
            ],
            |x| {
                Ok(StoredAggregate {
                    station: x.get(0)?,
                    parameter: x.get(1)?,
                    window_start: x.get(2)?,
                    mean: x.get(3)?,
                    min: x.get(4)?,
                    max: x.get(5)?,
                    valid: x.get(6)?,
                    expected: x.get(7)?,
                    completeness: x.get(8)?,
                    limit_low: x.get(9)?,
                    limit_high: x.get(10)?,
                    ratio: x.get(11)?,
                    band: x.get(12)?,
                    revision: x.get(13)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Compliance events matching the filter, newest start first.
    pub fn events(&self, f: &EventFilter) -> Result<Vec<StoredEvent>, LedgerError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT e.id, s.code, p.symbol, e.scope, e.start, e.end, e.last, e.band, e.peak_band, e.peak_ratio FROM events e \
             JOIN stations s ON s.id = e.station_id JOIN parameters p ON p.id = e.parameter_id \
             WHERE (?1 IS NULL OR s.code = ?1) AND (?2 = 0 OR e.end IS NULL) AND {} ORDER BY e.start DESC LIMIT ?3",
            in_globs("s.code", 4)
        ))?;
        let globs = globs_param(&f.station_globs);
        let rows = st.query_map(
            params![f.station, f.open_only as i64, f.limit, globs],
            |x| {
                Ok(StoredEvent {
                    id: x.get(0)?,
                    station: x.get(1)?,
                    parameter: x.get(2)?,
                    scope: x.get(3)?,
                    start: x.get(4)?,
                    end: x.get(5)?,
                    last: x.get(6)?,
                    band: x.get(7)?,
                    peak_band: x.get(8)?,
                    peak_ratio: x.get(9)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest reading of `station`'s `parameter` (by observation time), with the newest aggregate of the
    /// `window_ms` window and of the local day; `None` when the series has no reading.
    pub fn latest(
        &self,
        station: &str,
        parameter: &str,
        window_ms: i64,
    ) -> Result<Option<Latest>, LedgerError> {
        let row = self
            .conn
            .query_row(
                "SELECT r.ts, r.value, r.unit, r.status, r.band, r.limit_low, r.limit_high, r.ratio, r.station_id, r.parameter_id \
                 FROM readings r WHERE r.station_id = (SELECT id FROM stations WHERE code = ?1) \
                 AND r.parameter_id = (SELECT id FROM parameters WHERE symbol = ?2) ORDER BY r.ts DESC LIMIT 1",
                params![station, parameter],
                |r| {
                    let reading = LatestReading {
                        ts: r.get(0)?,
                        value: r.get(1)?,
                        unit: r.get(2)?,
                        status: Status::from_u8(r.get(3)?).unwrap_or(Status::Fault),
                        band: r.get(4)?,
                        limit_low: r.get(5)?,
                        limit_high: r.get(6)?,
                        ratio: r.get(7)?,
                    };
                    Ok((reading, r.get::<_, i64>(8)?, r.get::<_, i64>(9)?))
                },
            )
            .optional()?;
        let Some((reading, sid, pid)) = row else {
            return Ok(None);
        };
        Ok(Some(Latest {
            reading,
            window: self.latest_window(sid, pid, window_ms)?,
            day: self.latest_window(sid, pid, DAY_MS)?,
        }))
    }

    /// Per observation hour from `from` on, a station's readings and how many of them arrived on time (not flagged
    /// late): (hour start, readings, on time).
    pub fn transmissions_by_hour(
        &self,
        station: &str,
        from: i64,
    ) -> Result<Vec<(i64, u64, u64)>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT ts - ts % 3600000 AS hour, COUNT(*), IFNULL(SUM((flags & ?3) = 0), 0) FROM readings \
             WHERE station_id = (SELECT id FROM stations WHERE code = ?1) AND ts >= ?2 GROUP BY hour",
        )?;
        let rows = st.query_map(
            params![station, from, crate::compliance::Flags::LATE.0],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn latest_window(
        &self,
        sid: i64,
        pid: i64,
        window_ms: i64,
    ) -> Result<Option<LatestWindow>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT window_start, mean, band, completeness FROM aggregates WHERE station_id = ?1 AND parameter_id = ?2 \
                 AND window_ms = ?3 ORDER BY window_start DESC LIMIT 1",
                params![sid, pid, window_ms],
                |r| {
                    Ok(LatestWindow {
                        window_start: r.get(0)?,
                        mean: r.get(1)?,
                        band: r.get(2)?,
                        completeness: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Where the quarantined inputs of `source` came from (file paths for TT10).
    pub fn quarantined_origins(&self, source: SourceKind) -> Result<HashSet<String>, LedgerError> {
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT origin FROM quarantine WHERE source = ?1")?;
        let rows = st.query_map([source.as_str()], |row| row.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Position of a named cursor (0 when new).
    pub fn cursor(&self, name: &str) -> Result<i64, LedgerError> {
        super::cursor(&self.conn, name)
    }

    /// The connection, for tests and tools that inspect the file directly.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// (station id, parameter id, scope, start, end, last, peak band) of one event.
pub type EventOutline = (i64, i64, String, i64, Option<i64>, i64, String);

/// Tables whose rows can be counted.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    Readings,
    Quarantine,
    Conflicts,
    Aggregates,
    AggregateChanges,
    Events,
    EventRevisions,
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
            Table::EventRevisions => "event_revisions",
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
