//! Alerts with their delivery history, when the ledger has the alert tables (issue 7: `alerts`, `outbox`,
//! `outbox_attempts`). A ledger without them (or with other columns) exports no alert files; the MANIFEST says so.
//!
//! - `alerts`: alerts of the exported stations that were active during the period (raised before its end, not
//!   cleared before its start), with acknowledgement;
//! - `alert_deliveries`: one row per delivery attempt of each of their notifications (a queued notification without
//!   attempt yet has one row with empty attempt columns).

use rusqlite::{params, Connection};

use super::rows::Named;
use super::table::{Cell, TableWriter};
use crate::ledger::LedgerError;

pub const ALERT_COLUMNS: &[&str] = &[
    "id",
    "station",
    "subject",
    "kind",
    "severity",
    "state",
    "since",
    "raised",
    "cleared",
    "acked_at",
    "acked_by",
    "ack_comment",
    "notifications",
    "detail",
    "peak",
];

pub const DELIVERY_COLUMNS: &[&str] = &[
    "alert_id",
    "notification_id",
    "channel",
    "change",
    "queued",
    "status",
    "attempts",
    "delivered",
    "last_error",
    "attempt_at",
    "attempt_duration_ms",
    "attempt_ok",
    "attempt_error",
];

const ALERTS_SQL: &str = "SELECT id, station, subject, kind, severity, state, since, raised, cleared, acked_at, acked_by, \
     ack_comment, notifications, detail, peak FROM alerts WHERE station = ?1 AND since < ?3 AND (cleared IS NULL OR cleared >= ?2) \
     ORDER BY id";

const DELIVERIES_SQL: &str = "SELECT o.alert_id, o.id, o.channel, o.change, o.created, o.status, o.attempts, o.delivered, \
     o.last_error, a.at, a.duration_ms, a.ok, a.error FROM outbox o LEFT JOIN outbox_attempts a ON a.outbox_id = o.id \
     WHERE o.alert_id = ?1 ORDER BY o.id, a.id";

/// True when the ledger has the alert tables with the columns exported here.
pub fn available(conn: &Connection) -> bool {
    let probe = |sql: &str| conn.prepare(&format!("{sql} LIMIT 0")).is_ok();
    probe(&ALERTS_SQL.replace(" ORDER BY id", ""))
        && probe(&DELIVERIES_SQL.replace(" ORDER BY o.id, a.id", ""))
}

fn opt(s: &Option<String>) -> Cell<'_> {
    s.as_deref().map_or(Cell::Null, Cell::S)
}

/// A time as local RFC 3339, or null.
fn time_cell(v: Option<i64>, tz: chrono::FixedOffset) -> Option<String> {
    v.map(|ms| super::local_time(ms, tz))
}

/// Write the alerts of `stations` (plus daemon-wide ones, station `""`, when `all`) and their deliveries.
#[allow(clippy::too_many_arguments)]
pub fn write<W: std::io::Write>(
    conn: &Connection,
    stations: &[Named],
    all: bool,
    from: i64,
    to: i64,
    tz: chrono::FixedOffset,
    alerts: &mut TableWriter<W>,
    deliveries: &mut TableWriter<W>,
) -> Result<(), WriteError> {
    let mut codes: Vec<&str> = stations.iter().map(|s| &*s.name).collect();
    if all {
        codes.insert(0, "");
    }
    let mut st = conn.prepare(ALERTS_SQL).map_err(LedgerError::from)?;
    let mut dst = conn.prepare(DELIVERIES_SQL).map_err(LedgerError::from)?;
    for code in codes {
        let mut rows = st
            .query(params![code, from, to])
            .map_err(LedgerError::from)?;
        while let Some(r) = rows.next().map_err(LedgerError::from)? {
            let get = || -> rusqlite::Result<_> {
                Ok((
                    r.get::<_, i64>(0)?,
                    [
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                    ],
                    [
                        r.get::<_, Option<i64>>(6)?,
                        r.get::<_, Option<i64>>(7)?,
                        r.get::<_, Option<i64>>(8)?,
                        r.get::<_, Option<i64>>(9)?,
                    ],
                    [
                        r.get::<_, Option<String>>(10)?,
                        r.get::<_, Option<String>>(11)?,
                    ],
                    r.get::<_, i64>(12)?,
                    [r.get::<_, String>(13)?, r.get::<_, String>(14)?],
                ))
            };
            let (id, text, times, ack, notifications, json) = get().map_err(LedgerError::from)?;
            let times: Vec<Option<String>> = times.iter().map(|t| time_cell(*t, tz)).collect();
            alerts.row(&[
                Cell::I(id),
                Cell::S(&text[0]),
                Cell::S(&text[1]),
                Cell::S(&text[2]),
                Cell::S(&text[3]),
                Cell::S(&text[4]),
                opt(&times[0]),
                opt(&times[1]),
                opt(&times[2]),
                opt(&times[3]),
                opt(&ack[0]),
                opt(&ack[1]),
                Cell::I(notifications),
                Cell::S(&json[0]),
                Cell::S(&json[1]),
            ])?;
            let mut d = dst.query([id]).map_err(LedgerError::from)?;
            while let Some(x) = d.next().map_err(LedgerError::from)? {
                let get = || -> rusqlite::Result<_> {
                    Ok((
                        [
                            x.get::<_, i64>(0)?,
                            x.get::<_, i64>(1)?,
                            x.get::<_, i64>(6)?,
                        ],
                        [
                            x.get::<_, String>(2)?,
                            x.get::<_, String>(3)?,
                            x.get::<_, String>(5)?,
                        ],
                        [
                            x.get::<_, Option<i64>>(4)?,
                            x.get::<_, Option<i64>>(7)?,
                            x.get::<_, Option<i64>>(9)?,
                        ],
                        x.get::<_, Option<String>>(8)?,
                        x.get::<_, Option<i64>>(10)?,
                        x.get::<_, Option<i64>>(11)?,
                        x.get::<_, Option<String>>(12)?,
                    ))
                };
                let (ints, text, times, last_error, duration, ok, error) =
                    get().map_err(LedgerError::from)?;
                let times: Vec<Option<String>> = times.iter().map(|t| time_cell(*t, tz)).collect();
                deliveries.row(&[
                    Cell::I(ints[0]),
                    Cell::I(ints[1]),
                    Cell::S(&text[0]),
                    Cell::S(&text[1]),
                    opt(&times[0]),
                    Cell::S(&text[2]),
                    Cell::I(ints[2]),
                    opt(&times[1]),
                    opt(&last_error),
                    opt(&times[2]),
                    duration.map_or(Cell::Null, Cell::I),
                    ok.map_or(Cell::Null, Cell::I),
                    opt(&error),
                ])?;
            }
        }
    }
    Ok(())
}

/// A ledger or write error while exporting alerts.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
