//! Streaming reads of the ledger for exports and reports, inside one read transaction of a read-only connection
//! (a [`Snapshot`]: every file shows the ledger as of the same moment): readings of a station in time order (one
//! range of the `(station, ts, parameter)` key, so no sort and no table scan), aggregates, events, alerts and their
//! deliveries. Rows are handed to a callback one at a time.

use std::sync::Arc;

use rusqlite::{params, Connection};

use super::alerts::StoredAlert;
use super::{LedgerError, Reader};
use crate::compliance::Flags;

/// One read transaction over a [`Reader`]'s connection; it ends (COMMIT, nothing written) when dropped.
pub struct Snapshot<'r> {
    conn: &'r Connection,
}

impl Reader {
    /// Begin a read transaction: what the snapshot reads is the ledger as of its first read.
    pub fn snapshot(&self) -> Result<Snapshot<'_>, LedgerError> {
        let conn = self.connection();
        conn.execute_batch("BEGIN DEFERRED")?;
        Ok(Snapshot { conn })
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        let _ = self.conn.execute_batch("COMMIT");
    }
}

/// A station or parameter as the ledger names it.
#[derive(Debug, Clone)]
pub struct Named {
    pub id: i64,
    pub name: Arc<str>,
}

/// One stored reading, as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingRow {
    pub seq: i64,
    pub parameter: Arc<str>,
    pub ts: i64,
    pub value: f64,
    pub unit: String,
    pub status: u8,
    pub source: String,
    pub received: i64,
    pub limit_low: Option<f64>,
    pub limit_high: Option<f64>,
    pub ratio: Option<f64>,
    pub band: String,
    pub flags: u32,
}

impl Snapshot<'_> {
    /// Stations in the ledger, by code.
    pub fn stations(&self) -> Result<Vec<Named>, LedgerError> {
        named(self.conn, "SELECT id, code FROM stations ORDER BY code")
    }

    /// Parameters in the ledger, by symbol.
    pub fn parameters(&self) -> Result<Vec<Named>, LedgerError> {
        named(
            self.conn,
            "SELECT id, symbol FROM parameters ORDER BY symbol",
        )
    }

    /// Every reading of `station` with `from <= ts < to` of the given `parameters`, ordered by time, then
    /// parameter symbol (`parameters` must be sorted by symbol).
    pub fn for_each_reading<E: From<LedgerError>>(
        &self,
        station: i64,
        parameters: &[Named],
        from: i64,
        to: i64,
        f: impl FnMut(&ReadingRow) -> Result<(), E>,
    ) -> Result<(), E> {
        for_each_reading(self.conn, station, parameters, from, to, f)
    }

    /// Window lengths stored for a station.
    pub fn windows(&self, station: i64) -> Result<Vec<i64>, LedgerError> {
        windows(self.conn, station)
    }

    /// Aggregates of `station` for one window length with `from <= start < to`, by start then parameter.
    pub fn for_each_aggregate<E: From<LedgerError>>(
        &self,
        station: i64,
        window_ms: i64,
        from: i64,
        to: i64,
        f: impl FnMut(&AggregateRow) -> Result<(), E>,
    ) -> Result<(), E> {
        for_each_aggregate(self.conn, station, window_ms, from, to, f)
    }

    /// Events of `station` that overlap `[from, to)`, by start.
    pub fn events(&self, station: i64, from: i64, to: i64) -> Result<Vec<EventRow>, LedgerError> {
        events(self.conn, station, from, to)
    }

    /// Parameters with aggregates of `station` (for a station no longer configured).
    /// Readings of `station` observed in `[from, to)`, and how many of them arrived within the transmission
    /// deadline (not flagged `late`).
    pub fn transmissions(
        &self,
        station: i64,
        from: i64,
        to: i64,
    ) -> Result<(i64, i64), LedgerError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), IFNULL(SUM((flags & ?4) = 0), 0) FROM readings \
             WHERE station_id = ?1 AND ts >= ?2 AND ts < ?3",
            params![station, from, to, Flags::LATE.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Per local day of `[from, to)` (`offset_ms`: local time minus UTC; `from` a local midnight): (day start,
    /// readings observed that day, readings of them that arrived within the transmission deadline), by day. Days
    /// without readings are left out.
    pub fn transmissions_by_day(
        &self,
        station: i64,
        from: i64,
        to: i64,
        offset_ms: i64,
    ) -> Result<Vec<(i64, i64, i64)>, LedgerError> {
        let mut st = self.conn.prepare(
            "SELECT (ts + ?4) - (ts + ?4) % 86400000 - ?4 AS day, COUNT(*), IFNULL(SUM((flags & ?5) = 0), 0) \
             FROM readings WHERE station_id = ?1 AND ts >= ?2 AND ts < ?3 GROUP BY day ORDER BY day",
        )?;
        let rows = st.query_map(params![station, from, to, offset_ms, Flags::LATE.0], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The measuring readings of one parameter of `station` observed in `[from, to)`: (time, value, unit), by time.
    pub fn measuring_values(
        &self,
        station: i64,
        parameter: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, f64, String)>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT r.ts, r.value, r.unit FROM readings r \
             WHERE r.station_id = ?1 AND r.parameter_id = (SELECT id FROM parameters WHERE symbol = ?2) \
             AND r.ts >= ?3 AND r.ts < ?4 AND r.status = 0 ORDER BY r.ts",
        )?;
        let rows = st.query_map(params![station, parameter, from, to], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn count_parameters(&self, station: i64) -> Result<usize, LedgerError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(DISTINCT parameter_id) FROM aggregates WHERE station_id = ?1",
            [station],
            |r| r.get::<_, i64>(0),
        )? as usize)
    }
}

fn named(conn: &Connection, sql: &str) -> Result<Vec<Named>, LedgerError> {
    let mut st = conn.prepare(sql)?;
    let rows = st.query_map([], |r| {
        Ok(Named {
            id: r.get(0)?,
            name: Arc::from(r.get::<_, String>(1)?.as_str()),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

const READINGS_SQL: &str = "SELECT seq, ts, value, unit, status, source, received, limit_low, limit_high, ratio, band, flags, \
     parameter_id FROM readings WHERE station_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts";

pub(super) fn reading(
    r: &rusqlite::Row<'_>,
    parameter: &Arc<str>,
) -> Result<ReadingRow, LedgerError> {
    Ok(ReadingRow {
        seq: r.get(0)?,
        parameter: parameter.clone(),
        ts: r.get(1)?,
        value: r.get(2)?,
        unit: r.get(3)?,
        status: r.get(4)?,
        source: r.get(5)?,
        received: r.get(6)?,
        limit_low: r.get(7)?,
        limit_high: r.get(8)?,
        ratio: r.get(9)?,
        band: r.get(10)?,
        flags: r.get(11)?,
    })
}

fn for_each_reading<E: From<LedgerError>>(
    conn: &Connection,
    station: i64,
    parameters: &[Named],
    from: i64,
    to: i64,
    mut f: impl FnMut(&ReadingRow) -> Result<(), E>,
) -> Result<(), E> {
    // Parameter id → its place among `parameters` (the order by symbol).
    let place: std::collections::HashMap<i64, usize> = parameters
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id, i))
        .collect();
    let mut st = conn.prepare(READINGS_SQL).map_err(LedgerError::from)?;
    let mut rows = st
        .query(params![station, from, to])
        .map_err(LedgerError::from)?;
    // The readings of one time (a station reports its parameters together), put in symbol order.
    let mut same_time: Vec<(usize, ReadingRow)> = Vec::new();
    let mut flush = |group: &mut Vec<(usize, ReadingRow)>| -> Result<(), E> {
        group.sort_by_key(|(i, _)| *i);
        for (_, row) in group.drain(..) {
            f(&row)?;
        }
        Ok(())
    };
    while let Some(r) = rows.next().map_err(LedgerError::from)? {
        let Some(&i) = place.get(&r.get::<_, i64>(12).map_err(LedgerError::from)?) else {
            continue;
        };
        let row = reading(r, &parameters[i].name)?;
        if same_time.first().is_some_and(|(_, x)| x.ts != row.ts) {
            flush(&mut same_time)?;
        }
        same_time.push((i, row));
    }
    flush(&mut same_time)
}

/// One stored window aggregate, as exported (the wall-clock `computed` column is left out: it would make
/// re-exports differ).
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
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

fn windows(conn: &Connection, station: i64) -> Result<Vec<i64>, LedgerError> {
    let mut st = conn.prepare(
        "SELECT DISTINCT window_ms FROM aggregates WHERE station_id = ?1 ORDER BY window_ms",
    )?;
    let rows = st.query_map([station], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn for_each_aggregate<E: From<LedgerError>>(
    conn: &Connection,
    station: i64,
    window_ms: i64,
    from: i64,
    to: i64,
    mut f: impl FnMut(&AggregateRow) -> Result<(), E>,
) -> Result<(), E> {
    let mut st = conn
        .prepare(
            "SELECT p.symbol, a.window_start, a.mean, a.min, a.max, a.valid, a.expected, a.completeness, a.limit_low, \
             a.limit_high, a.ratio, a.band, a.revision FROM aggregates a JOIN parameters p ON p.id = a.parameter_id \
             WHERE a.station_id = ?1 AND a.window_ms = ?2 AND a.window_start >= ?3 AND a.window_start < ?4 \
             ORDER BY a.window_start, p.symbol",
        )
        .map_err(LedgerError::from)?;
    let mut rows = st
        .query(params![station, window_ms, from, to])
        .map_err(LedgerError::from)?;
    while let Some(r) = rows.next().map_err(LedgerError::from)? {
        let row = (|| {
            Ok::<_, rusqlite::Error>(AggregateRow {
                parameter: r.get(0)?,
                window_start: r.get(1)?,
                mean: r.get(2)?,
                min: r.get(3)?,
                max: r.get(4)?,
                valid: r.get(5)?,
                expected: r.get(6)?,
                completeness: r.get(7)?,
                limit_low: r.get(8)?,
                limit_high: r.get(9)?,
                ratio: r.get(10)?,
                band: r.get(11)?,
                revision: r.get(12)?,
            })
        })()
        .map_err(LedgerError::from)?;
        f(&row)?;
    }
    Ok(())
}

/// One compliance event, as exported (the wall-clock `updated` column is left out).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub parameter: String,
    pub scope: String,
    pub start: i64,
    pub end: Option<i64>,
    pub last: i64,
    pub band: String,
    pub peak_band: String,
    pub peak_ratio: Option<f64>,
    pub peak_at: i64,
}

fn events(
    conn: &Connection,
    station: i64,
    from: i64,
    to: i64,
) -> Result<Vec<EventRow>, LedgerError> {
    let mut st = conn.prepare(
        "SELECT p.symbol, e.scope, e.start, e.end, e.last, e.band, e.peak_band, e.peak_ratio, e.peak_at FROM events e \
         JOIN parameters p ON p.id = e.parameter_id WHERE e.station_id = ?1 AND e.start < ?3 AND (e.end IS NULL OR e.end >= ?2) \
         ORDER BY e.start, p.symbol, e.scope",
    )?;
    let rows = st.query_map(params![station, from, to], |r| {
        Ok(EventRow {
            parameter: r.get(0)?,
            scope: r.get(1)?,
            start: r.get(2)?,
            end: r.get(3)?,
            last: r.get(4)?,
            band: r.get(5)?,
            peak_band: r.get(6)?,
            peak_ratio: r.get(7)?,
            peak_at: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One delivery attempt of an alert's notification, as exported (`alert_deliveries` table); a notification without
/// an attempt yet has one row with empty attempt fields.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub alert_id: i64,
    pub notification_id: i64,
    pub channel: String,
    pub change: String,
    pub queued: Option<i64>,
    pub status: String,
    pub attempts: i64,
    pub delivered: Option<i64>,
    pub last_error: Option<String>,
    pub attempt_at: Option<i64>,
    pub attempt_duration_ms: Option<i64>,
    pub attempt_ok: Option<i64>,
    pub attempt_error: Option<String>,
}

/// The alerts of one station active during `[?2, ?3)`, in the columns `alerts::stored_alert` reads.
static ALERTS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {} FROM alerts WHERE station = ?1 AND since < ?3 AND (cleared IS NULL OR cleared >= ?2) ORDER BY id",
        super::alerts::ALERT_COLUMNS
    )
});

const DELIVERIES_SQL: &str = "SELECT o.alert_id, o.id, o.channel, o.change, o.created, o.status, o.attempts, o.delivered, \
     o.last_error, a.at, a.duration_ms, a.ok, a.error FROM outbox o LEFT JOIN outbox_attempts a ON a.outbox_id = o.id \
     WHERE o.alert_id = ?1 ORDER BY o.id, a.id";

impl Snapshot<'_> {
    /// The station notes of the stations `codes` written in `[from, to)`, by station then time.
    pub fn notes(
        &self,
        codes: &[&str],
        from: i64,
        to: i64,
    ) -> Result<Vec<super::audit::NoteRow>, LedgerError> {
        super::audit::notes_in(self.conn, codes, from, to)
    }

    /// True when the ledger has the alert tables with the columns exported (issue 7: `alerts`, `outbox`,
    /// `outbox_attempts`).
    pub fn has_alert_tables(&self) -> bool {
        let probe = |sql: &str| self.conn.prepare(&format!("{sql} LIMIT 0")).is_ok();
        probe(&ALERTS_SQL.replace(" ORDER BY id", ""))
            && probe(&DELIVERIES_SQL.replace(" ORDER BY o.id, a.id", ""))
    }

    /// The alerts of the stations `codes` (`""`: daemon-wide ones) that were active during `[from, to)` (raised
    /// before its end, not cleared before its start), by station then id; each followed by its deliveries.
    pub fn for_each_alert<E: From<LedgerError>>(
        &self,
        codes: &[&str],
        from: i64,
        to: i64,
        mut on_alert: impl FnMut(&StoredAlert) -> Result<(), E>,
        mut on_delivery: impl FnMut(&DeliveryRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut st = self.conn.prepare(&ALERTS_SQL).map_err(LedgerError::from)?;
        let mut dst = self
            .conn
            .prepare(DELIVERIES_SQL)
            .map_err(LedgerError::from)?;
        for code in codes {
            let mut rows = st
                .query(params![code, from, to])
                .map_err(LedgerError::from)?;
            while let Some(r) = rows.next().map_err(LedgerError::from)? {
                let alert = super::alerts::stored_alert(r).map_err(LedgerError::from)?;
                on_alert(&alert)?;
                let mut d = dst.query([alert.id]).map_err(LedgerError::from)?;
                while let Some(x) = d.next().map_err(LedgerError::from)? {
                    on_delivery(&delivery_row(x).map_err(LedgerError::from)?)?;
                }
            }
        }
        Ok(())
    }
}

fn delivery_row(x: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        alert_id: x.get(0)?,
        notification_id: x.get(1)?,
        channel: x.get(2)?,
        change: x.get(3)?,
        queued: x.get(4)?,
        status: x.get(5)?,
        attempts: x.get(6)?,
        delivered: x.get(7)?,
        last_error: x.get(8)?,
        attempt_at: x.get(9)?,
        attempt_duration_ms: x.get(10)?,
        attempt_ok: x.get(11)?,
        attempt_error: x.get(12)?,
    })
}
