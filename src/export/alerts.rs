//! Alerts with their delivery history, when the ledger has the alert tables (issue 7: `alerts`, `outbox`,
//! `outbox_attempts`). A ledger without them (or with other columns) exports no alert files; the MANIFEST says so.
//!
//! - `alerts`: alerts of the exported stations that were active during the period (raised before its end, not
//!   cleared before its start), with acknowledgement;
//! - `alert_deliveries`: one row per delivery attempt of each of their notifications (a queued notification without
//!   attempt yet has one row with empty attempt columns).

use super::table::{Cell, TableWriter};
use crate::ledger::alerts::StoredAlert;
use crate::ledger::export::{DeliveryRow, Named, Snapshot};
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

fn opt(s: &Option<String>) -> Cell<'_> {
    s.as_deref().map_or(Cell::Null, Cell::S)
}

/// A delivery error with URLs cut to scheme and host ([`crate::redact::urls`]): a channel's error may quote its URL,
/// whose path, query or user information carries the channel's credentials (rows stored before the channels
/// redacted their own errors, or by a channel that does not).
fn redacted(s: &Option<String>) -> Option<String> {
    s.as_deref().map(|e| crate::redact::urls(e).into_owned())
}

/// A time as local RFC 3339, or null.
fn time_cell(v: Option<i64>, tz: chrono::FixedOffset) -> Option<String> {
    v.map(|ms| super::local_time(ms, tz))
}

/// Write the alerts of `stations` (plus daemon-wide ones, station `""`, when `all`) and their deliveries.
#[allow(clippy::too_many_arguments)]
pub fn write<W: std::io::Write>(
    ledger: &Snapshot<'_>,
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
    ledger.for_each_alert::<WriteError>(
        &codes,
        from,
        to,
        |a| Ok(alert_row(alerts, a, tz)?),
        |d| Ok(delivery_row(deliveries, d, tz)?),
    )
}

fn alert_row<W: std::io::Write>(
    t: &mut TableWriter<W>,
    a: &StoredAlert,
    tz: chrono::FixedOffset,
) -> std::io::Result<()> {
    let times: Vec<Option<String>> = [Some(a.since), Some(a.raised), a.cleared, a.acked_at]
        .iter()
        .map(|t| time_cell(*t, tz))
        .collect();
    t.row(&[
        Cell::I(a.id),
        Cell::S(&a.station),
        Cell::S(&a.subject),
        Cell::S(&a.kind),
        Cell::S(&a.severity),
        Cell::S(&a.state),
        opt(&times[0]),
        opt(&times[1]),
        opt(&times[2]),
        opt(&times[3]),
        opt(&a.acked_by),
        opt(&a.ack_comment),
        Cell::I(a.notifications),
        Cell::S(&a.detail),
        Cell::S(&a.peak),
    ])
}

fn delivery_row<W: std::io::Write>(
    t: &mut TableWriter<W>,
    d: &DeliveryRow,
    tz: chrono::FixedOffset,
) -> std::io::Result<()> {
    let times: Vec<Option<String>> = [d.queued, d.delivered, d.attempt_at]
        .iter()
        .map(|t| time_cell(*t, tz))
        .collect();
    let (last_error, attempt_error) = (redacted(&d.last_error), redacted(&d.attempt_error));
    t.row(&[
        Cell::I(d.alert_id),
        Cell::I(d.notification_id),
        Cell::S(&d.channel),
        Cell::S(&d.change),
        opt(&times[0]),
        Cell::S(&d.status),
        Cell::I(d.attempts),
        opt(&times[1]),
        opt(&last_error),
        opt(&times[2]),
        d.attempt_duration_ms.map_or(Cell::Null, Cell::I),
        d.attempt_ok.map_or(Cell::Null, Cell::I),
        opt(&attempt_error),
    ])
}

/// A ledger or write error while exporting alerts.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
