//! `withdrawn_points` (migration 8): the `event` and `alert` points a re-derivation left without a row, which the
//! forwarders mark `withdrawn=1` in InfluxDB (its write API cannot delete a point).

use rusqlite::{params, Connection};

use super::LedgerError;

/// A forwarded point no row holds any more (see migration 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawnPoint {
    /// `event` or `alert`.
    pub measurement: &'static str,
    pub station: String,
    /// The event's parameter, the alert's subject.
    pub parameter: String,
    /// The event's scope, the alert's kind.
    pub series: String,
    /// The alert point's state tag; empty for events.
    pub state: String,
    pub ts: i64,
}

/// List a point no alert holds any more.
pub(super) fn point(conn: &Connection, p: &WithdrawnPoint, now: i64) -> Result<(), LedgerError> {
    conn.prepare_cached(
        "INSERT INTO withdrawn_points (measurement, station, parameter, series, state, ts, recorded) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![p.measurement, p.station, p.parameter, p.series, p.state, p.ts, now])?;
    Ok(())
}

/// List the point of an event that a re-derivation deleted (station and parameter by their ledger ids).
pub(super) fn event(
    conn: &Connection,
    (station, parameter): (i64, i64),
    scope: &str,
    start: i64,
    now: i64,
) -> Result<(), LedgerError> {
    conn.prepare_cached(
        "INSERT INTO withdrawn_points (measurement, station, parameter, series, state, ts, recorded) \
         SELECT 'event', s.code, p.symbol, ?3, '', ?4, ?5 FROM stations s, parameters p WHERE s.id = ?1 AND p.id = ?2",
    )?
    .execute(params![station, parameter, scope, start, now])?;
    Ok(())
}
