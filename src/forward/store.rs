//! A forwarder's view of the ledger: rows after its cursors, cursor moves, dead letters, backlog.
//! Blocking calls: the forwarder runs them on the blocking pool.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::health::Backlog;
use crate::ledger::{cursor, set_cursor, LedgerError, Stream};
use crate::model::{Status, Timestamp};

/// A committed reading with what the line protocol needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingRow {
    pub seq: i64,
    pub station: String,
    pub parameter: String,
    pub ts: i64,
    pub value: f64,
    pub status: Status,
    pub limit_low: Option<f64>,
    pub limit_high: Option<f64>,
    pub ratio: Option<f64>,
}

/// A window aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    pub change_seq: i64,
    pub station: String,
    pub parameter: String,
    pub window_ms: i64,
    pub window_start: i64,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub valid: i64,
    pub expected: i64,
    pub completeness: f64,
    pub ratio: Option<f64>,
    pub band: String,
}

pub struct Store {
    conn: Connection,
    pub readings_cursor: String,
    pub aggregates_cursor: String,
}

impl Store {
    pub fn open(path: &Path, name: &str) -> Result<Store, LedgerError> {
        let conn = Connection::open(path).map_err(|error| LedgerError::Open {
            path: path.to_path_buf(),
            error,
        })?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(Store {
            conn,
            readings_cursor: format!("influx:{name}:readings"),
            aggregates_cursor: format!("influx:{name}:aggregates"),
        })
    }

    /// Register the cursors at 0 if new, so retention waits for this forwarder from its first start.
    pub fn ensure_cursors(&self) -> Result<(), LedgerError> {
        for (name, stream) in [
            (&self.readings_cursor, Stream::Readings),
            (&self.aggregates_cursor, Stream::Aggregates),
        ] {
            let exists: Option<i64> = self
                .conn
                .query_row(
                    "SELECT position FROM cursors WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                set_cursor(&self.conn, name, stream, 0)?;
            }
        }
        Ok(())
    }

    pub fn cursor(&self, name: &str) -> Result<i64, LedgerError> {
        cursor(&self.conn, name)
    }

    pub fn set_readings_cursor(&self, position: i64) -> Result<(), LedgerError> {
        set_cursor(
            &self.conn,
            &self.readings_cursor,
            Stream::Readings,
            position,
        )
    }

    pub fn set_aggregates_cursor(&self, position: i64) -> Result<(), LedgerError> {
        set_cursor(
            &self.conn,
            &self.aggregates_cursor,
            Stream::Aggregates,
            position,
        )
    }

    pub fn readings_after(&self, after: i64, limit: usize) -> Result<Vec<ReadingRow>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT r.seq, s.code, p.symbol, r.ts, r.value, r.status, r.limit_low, r.limit_high, r.ratio \
             FROM readings r JOIN stations s ON s.id = r.station_id JOIN parameters p ON p.id = r.parameter_id \
             WHERE r.seq > ?1 ORDER BY r.seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![after, limit as i64], |r| {
            Ok(ReadingRow {
                seq: r.get(0)?,
                station: r.get(1)?,
                parameter: r.get(2)?,
                ts: r.get(3)?,
                value: r.get(4)?,
                status: Status::from_u8(r.get(5)?).unwrap_or(Status::Fault),
                limit_low: r.get(6)?,
                limit_high: r.get(7)?,
                ratio: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn aggregates_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AggregateRow>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT a.change_seq, s.code, p.symbol, a.window_ms, a.window_start, a.mean, a.min, a.max, a.valid, a.expected, \
             a.completeness, a.ratio, a.band FROM aggregates a JOIN stations s ON s.id = a.station_id \
             JOIN parameters p ON p.id = a.parameter_id WHERE a.change_seq > ?1 ORDER BY a.change_seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![after, limit as i64], |r| {
            Ok(AggregateRow {
                change_seq: r.get(0)?,
                station: r.get(1)?,
                parameter: r.get(2)?,
                window_ms: r.get(3)?,
                window_start: r.get(4)?,
                mean: r.get(5)?,
                min: r.get(6)?,
                max: r.get(7)?,
                valid: r.get(8)?,
                expected: r.get(9)?,
                completeness: r.get(10)?,
                ratio: r.get(11)?,
                band: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Keep lines the server refused, with its answer, so one bad line never blocks the stream.
    pub fn dead_letter(
        &self,
        forwarder: &str,
        lines: &[String],
        status: u16,
        response: &str,
    ) -> Result<(), LedgerError> {
        let now = Timestamp::now().millis();
        let mut st = self.conn.prepare_cached(
            "INSERT INTO dead_letters (forwarder, line, status, response, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for l in lines {
            st.execute(params![forwarder, l, status, response, now])?;
        }
        Ok(())
    }

    pub fn backlog(&self) -> Result<Backlog, LedgerError> {
        let cur = cursor(&self.conn, &self.readings_cursor)?;
        let (behind, oldest): (i64, Option<i64>) = self.conn.query_row(
            "SELECT (SELECT COUNT(*) FROM readings WHERE seq > ?1), (SELECT received FROM readings WHERE seq > ?1 ORDER BY seq LIMIT 1)",
            [cur],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Backlog {
            rows_behind: behind,
            oldest_unsent_ms: oldest.map(|t| Timestamp::now().millis() - t),
        })
    }
}
