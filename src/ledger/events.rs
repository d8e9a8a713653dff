//! Compliance events in the ledger: the engine's `EventTracker` decides, this module stores its changes in the
//! same transaction as the readings (or aggregates) that caused them, and restores open events at start-up.

use rusqlite::{params, Connection};

use super::LedgerError;
use crate::compliance::events::{EventChange, EventKey, EventTracker, OpenEvent, Scope};
use crate::compliance::Band;
use crate::model::{Parameter, StationId, Timestamp};

/// The tracker seeded with every event still open in the ledger.
pub fn load_open(conn: &Connection) -> Result<EventTracker, LedgerError> {
    let mut st = conn.prepare(
        "SELECT s.code, p.symbol, e.scope, e.start, e.last, e.band, e.peak_band, e.peak_ratio, e.peak_at \
         FROM events e JOIN stations s ON s.id = e.station_id JOIN parameters p ON p.id = e.parameter_id WHERE e.end IS NULL",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, Option<f64>>(7)?,
            r.get::<_, i64>(8)?,
        ))
    })?;
    let mut open = Vec::new();
    for row in rows {
        let (station, parameter, scope, start, last, band, peak_band, peak_ratio, peak_at) = row?;
        let (Ok(station), Ok(parameter), Some(scope)) = (
            StationId::parse(&station),
            Parameter::new(&parameter),
            parse_scope(&scope),
        ) else {
            continue;
        };
        let (Some(band), Some(peak_band)) = (Band::parse(&band), Band::parse(&peak_band)) else {
            continue;
        };
        open.push((
            EventKey {
                station,
                parameter,
                scope,
            },
            OpenEvent {
                start: Timestamp(start),
                last: Timestamp(last),
                band,
                peak_band,
                peak_ratio,
                peak_at: Timestamp(peak_at),
            },
        ));
    }
    Ok(EventTracker::from_open(open))
}

fn parse_scope(s: &str) -> Option<Scope> {
    match s {
        "instant" => Some(Scope::Instant),
        _ => s
            .strip_prefix("window_")?
            .parse()
            .ok()
            .map(|window_ms| Scope::Window { window_ms }),
    }
}

/// Store one change. `ids` are the station and parameter ids of its key.
pub fn store(conn: &Connection, ids: (i64, i64), change: &EventChange) -> Result<(), LedgerError> {
    write(
        conn,
        ids,
        change,
        matches!(change, EventChange::Opened { .. }),
    )
}

/// Store the changes of one commit with one write per event: its state after its last change, in the order the
/// events first changed (so a close is written before the same key's next event opens). An event opened and closed
/// within the commit is one INSERT.
pub fn store_all(
    conn: &Connection,
    changes: &[((i64, i64), EventChange)],
) -> Result<(), LedgerError> {
    // Per event (key ids, scope, start): whether this commit opened it, and its last change.
    let mut events: Vec<(bool, usize)> = Vec::new();
    let mut seen: rustc_hash::FxHashMap<_, usize> = rustc_hash::FxHashMap::default();
    for (i, (ids, change)) in changes.iter().enumerate() {
        let event = (*ids, change.key().scope, change.event().start);
        match seen.get(&event) {
            Some(&e) => events[e].1 = i,
            None => {
                seen.insert(event, events.len());
                events.push((matches!(change, EventChange::Opened { .. }), i));
            }
        }
    }
    for (opened, i) in events {
        let (ids, change) = &changes[i];
        write(conn, *ids, change, opened)?;
    }
    Ok(())
}

/// Write an event's state after `change`: a new row when `insert`, else an update of the key's open row.
fn write(
    conn: &Connection,
    ids: (i64, i64),
    change: &EventChange,
    insert: bool,
) -> Result<(), LedgerError> {
    let now = Timestamp::now().millis();
    let seq: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(change_seq), 0) + 1 FROM events")?
        .query_row([], |r| r.get(0))?;
    let e = change.event();
    let scope = change.key().scope.as_string();
    let end = match change {
        EventChange::Closed { end, .. } => Some(end.millis()),
        _ => None,
    };
    if insert {
        conn.prepare_cached(
            "INSERT INTO events (station_id, parameter_id, scope, start, end, last, band, peak_band, peak_ratio, peak_at, updated, change_seq) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![ids.0, ids.1, scope, e.start.millis(), end, e.last.millis(), e.band.as_str(), e.peak_band.as_str(), e.peak_ratio, e.peak_at.millis(), now, seq])?;
    } else {
        conn.prepare_cached(
            "UPDATE events SET end = ?4, last = ?5, band = ?6, peak_band = ?7, peak_ratio = ?8, peak_at = ?9, updated = ?10, change_seq = ?11 \
             WHERE station_id = ?1 AND parameter_id = ?2 AND scope = ?3 AND end IS NULL",
        )?
        .execute(params![ids.0, ids.1, scope, end, e.last.millis(), e.band.as_str(), e.peak_band.as_str(), e.peak_ratio, e.peak_at.millis(), now, seq])?;
    }
    Ok(())
}
