//! Compliance events in the ledger: the engine's `EventTracker` decides for observations in order, this module
//! stores its changes in the same transaction as the readings (or aggregates) that caused them, restores open events
//! at start-up, and re-derives the span of a series that an out-of-order observation touches (recorded in
//! `event_revisions`).

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use super::LedgerError;
use crate::compliance::events::{in_span, Deriver};
use crate::compliance::{
    Band, Event, EventChange, EventKey, EventTracker, Observation, OpenEvent, Scope,
};
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

/// Station and parameter of every open window-scope event (the plants in violation), for the live view.
pub fn open_window_events(conn: &Connection) -> Result<Vec<(String, String)>, LedgerError> {
    let mut st = conn.prepare(
        "SELECT DISTINCT s.code, p.symbol FROM events e JOIN stations s ON s.id = e.station_id \
         JOIN parameters p ON p.id = e.parameter_id WHERE e.end IS NULL AND e.scope LIKE 'window_%'",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
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
/// within the commit is one INSERT. Re-derivations are stored when they are made, not here.
pub fn store_all(
    conn: &Connection,
    changes: &[((i64, i64), EventChange)],
) -> Result<(), LedgerError> {
    // Per event (key ids, scope, start): whether this commit opened it, and its last change.
    let mut events: Vec<(bool, usize)> = Vec::new();
    let mut seen: rustc_hash::FxHashMap<_, usize> = rustc_hash::FxHashMap::default();
    for (i, (ids, change)) in changes.iter().enumerate() {
        let Some(e) = change.event() else { continue };
        let event = (*ids, change.key().scope, e.start);
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

/// The `change_seq` of a write, computed inside the writing statement (one index probe, no statement of its own):
/// one past the highest given, which is the table's or — after a re-derivation deleted the newest event — the
/// `counters` row that remembers it, so a number a forwarder has passed is never given again.
macro_rules! next_change_seq {
    () => {
        "(SELECT MAX(m) + 1 FROM (SELECT COALESCE(MAX(change_seq), 0) AS m FROM events \
          UNION ALL SELECT value FROM counters WHERE name = 'events.change_seq'))"
    };
}

/// Write an event's state after `change`: a new row when `insert`, else an update of the key's open row.
fn write(
    conn: &Connection,
    ids: (i64, i64),
    change: &EventChange,
    insert: bool,
) -> Result<(), LedgerError> {
    let Some(e) = change.event() else {
        return Ok(());
    };
    let end = match change {
        EventChange::Closed { end, .. } => Some(*end),
        _ => None,
    };
    let scope = change.key().scope.as_string();
    if insert {
        insert_event(conn, ids, &scope, e, end)
    } else {
        let now = Timestamp::now().millis();
        // The open row is found by its start (the start index); should the tracker ever disagree with the ledger
        // about that, by being the key's open row.
        conn.prepare_cached(concat!(
            "UPDATE events SET end = ?4, last = ?5, band = ?6, peak_band = ?7, peak_ratio = ?8, peak_at = ?9, updated = ?10, \
             change_seq = ",
            next_change_seq!(),
            " WHERE id = COALESCE(\
               (SELECT id FROM events WHERE station_id = ?1 AND parameter_id = ?2 AND scope = ?3 AND start = ?11 AND end IS NULL), \
               (SELECT id FROM events WHERE station_id = ?1 AND parameter_id = ?2 AND scope = ?3 AND end IS NULL))"
        ))?
        .execute(params![ids.0, ids.1, scope, end.map(Timestamp::millis), e.last.millis(), e.band.as_str(), e.peak_band.as_str(), e.peak_ratio, e.peak_at.millis(), now, e.start.millis()])?;
        Ok(())
    }
}

fn insert_event(
    conn: &Connection,
    ids: (i64, i64),
    scope: &str,
    e: &OpenEvent,
    end: Option<Timestamp>,
) -> Result<(), LedgerError> {
    let now = Timestamp::now().millis();
    conn.prepare_cached(concat!(
        "INSERT INTO events (station_id, parameter_id, scope, start, end, last, band, peak_band, peak_ratio, peak_at, updated, change_seq) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ",
        next_change_seq!(),
        ")"
    ))?
    .execute(params![ids.0, ids.1, scope, e.start.millis(), end.map(Timestamp::millis), e.last.millis(), e.band.as_str(), e.peak_band.as_str(), e.peak_ratio, e.peak_at.millis(), now])?;
    Ok(())
}

/// The newest reading of a series committed before this transaction (`seq` at most `top`): what the tracker
/// compares a new reading with when it has not seen the series since the start.
pub fn newest_reading(
    conn: &Connection,
    (s, p): (i64, i64),
    top: i64,
) -> Result<Option<Timestamp>, LedgerError> {
    Ok(conn
        .prepare_cached(
            "SELECT ts FROM readings WHERE station_id = ?1 AND parameter_id = ?2 AND seq <= ?3 ORDER BY ts DESC LIMIT 1",
        )?
        .query_row(params![s, p, top], |r| r.get(0))
        .optional()?
        .map(Timestamp))
}

/// The start of the newest judged window of a series (before this refresh writes).
pub fn newest_window(
    conn: &Connection,
    (s, p): (i64, i64),
    window_ms: i64,
) -> Result<Option<Timestamp>, LedgerError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT window_start FROM aggregates WHERE station_id = ?1 AND parameter_id = ?2 AND window_ms = ?3 \
             AND {JUDGED} IS NOT NULL ORDER BY window_start DESC LIMIT 1"
        ))?
        .query_row(params![s, p, window_ms], |r| r.get(0))
        .optional()?
        .map(Timestamp))
}

/// The band that judges a stored window: its verdict; for rows written before verdicts existed (closed, verdict
/// NULL), its band.
const JUDGED: &str = "COALESCE(verdict, CASE WHEN pending = 0 THEN band END)";
const JUDGED_RATIO: &str =
    "CASE WHEN verdict IS NOT NULL THEN verdict_ratio WHEN pending = 0 THEN ratio END";

/// Observations of one series that arrived out of order (older than, or as old as, its newest).
#[derive(Debug, Clone)]
pub struct Late {
    /// The earliest and latest of them.
    pub first: Timestamp,
    pub last: Timestamp,
    /// The series' newest observation before they came: the span never reaches past it.
    pub newest: Timestamp,
    /// Why, for the record: what arrived.
    pub reason: String,
}

/// A re-derived span: the change to publish, and the series' open event afterwards when the span reached the
/// newest observation (`None`: the open event, if any, lies after the span and is unchanged).
pub struct Rederivation {
    pub change: Option<EventChange>,
    pub open_after: Option<Option<OpenEvent>>,
}

/// Late readings that change no event: none exceeds, and no stored event spans them (a compliant reading where no
/// event was open leaves every event as it was). One index probe: events do not overlap, so only the latest one
/// starting before `last` can reach into `first..=last`.
pub fn late_readings_change_nothing(
    conn: &Connection,
    (s, p): (i64, i64),
    first: Timestamp,
    last: Timestamp,
) -> Result<bool, LedgerError> {
    let end: Option<Option<i64>> = conn
        .prepare_cached(
            "SELECT end FROM events WHERE station_id = ?1 AND parameter_id = ?2 AND scope = 'instant' AND start <= ?3 \
             ORDER BY start DESC LIMIT 1",
        )?
        .query_row(params![s, p, last.millis()], |r| r.get(0))
        .optional()?;
    Ok(match end {
        None => true,
        Some(None) => false,
        Some(Some(end)) => end <= first.millis(),
    })
}

/// Re-derive the span of `key` that `late` touches, from the ledger: from the last compliant observation before the
/// earliest late one (no event is open after it), in observation-time order, to the first compliant observation
/// after the latest late one (from there on nothing changed) or to the newest. The events stored in the span are
/// replaced by the derived ones when they differ — rows whose start stays are updated in place, the others deleted
/// or inserted — and the revision is recorded.
pub fn rederive(
    conn: &Connection,
    ids: (i64, i64),
    key: &EventKey,
    late: &Late,
) -> Result<Rederivation, LedgerError> {
    let after = settled_before(conn, ids, key.scope, late.first)?;
    let mut d = Deriver::new(key.scope, late.last);
    feed(conn, ids, key.scope, after, late.newest, &mut d)?;
    let derived = d.finish();
    let stored = stored_in_span(conn, ids, key.scope, after, derived.until)?;
    let open_after = derived.until.is_none().then(|| {
        derived
            .events
            .last()
            .filter(|e| e.end.is_none())
            .map(|e| e.state.clone())
    });
    let old: Vec<Event> = stored.iter().map(|(_, e)| e.clone()).collect();
    if old == derived.events {
        return Ok(Rederivation {
            change: None,
            open_after,
        });
    }
    replace(conn, ids, key.scope, &stored, &derived.events)?;
    record(
        conn,
        ids,
        key.scope,
        (after, derived.until),
        (&old, &derived.events),
        &late.reason,
    )?;
    Ok(Rederivation {
        change: Some(EventChange::Rederived {
            key: key.clone(),
            replaced: old,
            events: derived.events,
        }),
        open_after,
    })
}

/// The last compliant observation of the series before `t`.
fn settled_before(
    conn: &Connection,
    (s, p): (i64, i64),
    scope: Scope,
    t: Timestamp,
) -> Result<Option<Timestamp>, LedgerError> {
    let compliant = Band::Compliant.as_str();
    let row = match scope {
        Scope::Instant => conn
            .prepare_cached(
                "SELECT ts FROM readings WHERE station_id = ?1 AND parameter_id = ?2 AND ts < ?3 AND band = ?4 \
                 ORDER BY ts DESC LIMIT 1",
            )?
            .query_row(params![s, p, t.millis(), compliant], |r| r.get(0))
            .optional()?,
        Scope::Window { window_ms } => conn
            .prepare_cached(&format!(
                "SELECT window_start FROM aggregates WHERE station_id = ?1 AND parameter_id = ?2 AND window_ms = ?3 \
                 AND window_start < ?4 AND {JUDGED} = ?5 ORDER BY window_start DESC LIMIT 1"
            ))?
            .query_row(params![s, p, window_ms, t.millis(), compliant], |r| r.get(0))
            .optional()?,
    };
    Ok(row.map(Timestamp))
}

/// Feed `d` the observations after `after` up to `newest`, in time order, until it says the span has ended.
fn feed(
    conn: &Connection,
    (s, p): (i64, i64),
    scope: Scope,
    after: Option<Timestamp>,
    newest: Timestamp,
    d: &mut Deriver,
) -> Result<(), LedgerError> {
    let from = after.map_or(i64::MIN, |a| a.0);
    let mut st = match scope {
        Scope::Instant => conn.prepare_cached(
            "SELECT ts, band, ratio FROM readings WHERE station_id = ?1 AND parameter_id = ?2 AND ts > ?3 AND ts <= ?4 \
             ORDER BY ts",
        )?,
        Scope::Window { .. } => conn.prepare_cached(&format!(
            "SELECT window_start, {JUDGED}, {JUDGED_RATIO} FROM aggregates WHERE station_id = ?1 AND parameter_id = ?2 \
             AND window_ms = ?5 AND window_start > ?3 AND window_start <= ?4 ORDER BY window_start"
        ))?,
    };
    let window_ms = match scope {
        Scope::Instant => None,
        Scope::Window { window_ms } => Some(window_ms),
    };
    let mut rows = match window_ms {
        None => st.query(params![s, p, from, newest.millis()])?,
        Some(w) => st.query(params![s, p, from, newest.millis(), w])?,
    };
    while let Some(r) = rows.next()? {
        let band = r
            .get::<_, Option<String>>(1)?
            .and_then(|b| Band::parse(&b))
            .unwrap_or(Band::NotEvaluated);
        let o = Observation {
            ts: Timestamp(r.get(0)?),
            band,
            ratio: r.get(2)?,
        };
        if !d.push(o) {
            break;
        }
    }
    Ok(())
}

/// The stored events of the series that start in the span, with their row ids, in order.
fn stored_in_span(
    conn: &Connection,
    (s, p): (i64, i64),
    scope: Scope,
    after: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<Vec<(i64, Event)>, LedgerError> {
    let mut st = conn.prepare_cached(
        "SELECT id, start, end, last, band, peak_band, peak_ratio, peak_at FROM events \
         WHERE station_id = ?1 AND parameter_id = ?2 AND scope = ?3 AND start > ?4 AND start < ?5 ORDER BY start",
    )?;
    let rows = st.query_map(
        params![
            s,
            p,
            scope.as_string(),
            after.map_or(i64::MIN, |a| a.0),
            until.map_or(i64::MAX, |u| u.0)
        ],
        |r| {
            let band = |i| -> rusqlite::Result<Band> {
                Ok(Band::parse(&r.get::<_, String>(i)?).unwrap_or(Band::NotEvaluated))
            };
            Ok((
                r.get(0)?,
                Event {
                    state: OpenEvent {
                        start: Timestamp(r.get(1)?),
                        last: Timestamp(r.get(3)?),
                        band: band(4)?,
                        peak_band: band(5)?,
                        peak_ratio: r.get(6)?,
                        peak_at: Timestamp(r.get(7)?),
                    },
                    end: r.get::<_, Option<i64>>(2)?.map(Timestamp),
                },
            ))
        },
    )?;
    let all: Vec<(i64, Event)> = rows.collect::<Result<_, _>>()?;
    Ok(all
        .into_iter()
        .filter(|(_, e)| in_span(e.state.start, after, until))
        .collect())
}

/// Make the span hold `new` instead of `old`: a row whose start stays is updated (forwarders see it change), the
/// rest deleted or inserted.
fn replace(
    conn: &Connection,
    ids: (i64, i64),
    scope: Scope,
    old: &[(i64, Event)],
    new: &[Event],
) -> Result<(), LedgerError> {
    let scope = scope.as_string();
    for (id, e) in old {
        if !new.iter().any(|n| n.state.start == e.state.start) {
            conn.prepare_cached(
                "UPDATE counters SET value = MAX(value, (SELECT change_seq FROM events WHERE id = ?1)) \
                 WHERE name = 'events.change_seq'",
            )?
            .execute([id])?;
            conn.prepare_cached("DELETE FROM events WHERE id = ?1")?
                .execute([id])?;
            let now = Timestamp::now().millis();
            super::withdrawn::event(conn, ids, &scope, e.state.start.millis(), now)?;
        }
    }
    for n in new {
        match old.iter().find(|(_, e)| e.state.start == n.state.start) {
            Some((_, e)) if e == n => {}
            Some((id, _)) => {
                let now = Timestamp::now().millis();
                let s = &n.state;
                conn.prepare_cached(concat!(
                    "UPDATE events SET end = ?2, last = ?3, band = ?4, peak_band = ?5, peak_ratio = ?6, peak_at = ?7, \
                     updated = ?8, change_seq = ",
                    next_change_seq!(),
                    " WHERE id = ?1"
                ))?
                .execute(params![id, n.end.map(Timestamp::millis), s.last.millis(), s.band.as_str(), s.peak_band.as_str(), s.peak_ratio, s.peak_at.millis(), now])?;
            }
            None => insert_event(conn, ids, &scope, &n.state, n.end)?,
        }
    }
    Ok(())
}

fn event_json(e: &Event) -> serde_json::Value {
    let s = &e.state;
    json!({ "start": s.start.millis(), "end": e.end.map(Timestamp::millis), "last": s.last.millis(),
        "band": s.band.as_str(), "peak_band": s.peak_band.as_str(), "peak_ratio": s.peak_ratio,
        "peak_at": s.peak_at.millis() })
}

fn record(
    conn: &Connection,
    (s, p): (i64, i64),
    scope: Scope,
    (after, until): (Option<Timestamp>, Option<Timestamp>),
    (old, new): (&[Event], &[Event]),
    reason: &str,
) -> Result<(), LedgerError> {
    let list = |v: &[Event]| serde_json::Value::from(v.iter().map(event_json).collect::<Vec<_>>());
    conn.prepare_cached(
        "INSERT INTO event_revisions (station_id, parameter_id, scope, span_after, span_until, old_events, new_events, reason, changed) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        s,
        p,
        scope.as_string(),
        after.map(Timestamp::millis),
        until.map(Timestamp::millis),
        list(old).to_string(),
        list(new).to_string(),
        reason,
        Timestamp::now().millis()
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::aggregates::{AggregateContext, HOUR_MS};
    use super::super::{Evaluated, Ledger};
    use crate::compliance::hourly::window_start;
    use crate::compliance::{Assessment, Flags, Judge, LimitBound};
    use crate::config::Synchronous;
    use crate::model::{Reading, SourceKind, Status, Unit};

    use super::*;

    const COD: f64 = 135.0;
    const VN: i32 = 7 * 3600;

    fn reading(ts: i64, value: f64) -> Evaluated {
        let v = Judge::new(LimitBound::Max(COD)).unwrap().value(value);
        Evaluated {
            reading: Reading {
                station: StationId::parse("BN_A_B").unwrap(),
                parameter: Parameter::new("COD").unwrap(),
                ts: Timestamp(ts),
                value,
                unit: Unit::new("mg/L"),
                status: Status::Measuring,
            },
            assessment: Assessment {
                rules: Default::default(),
                limit: Some(LimitBound::Max(COD)),
                ratio: v.ratio,
                band: v.band,
                flags: Flags::default(),
            },
            source: SourceKind::Sim,
            received: None,
        }
    }

    fn context(window_ms: i64, interval_ms: i64) -> AggregateContext {
        AggregateContext {
            offset_secs: VN,
            windows: vec![window_ms],
            judging_window_ms: window_ms,
            stations: HashMap::from([(
                "BN_A_B".to_string(),
                (
                    interval_ms,
                    HashMap::from([("COD".to_string(), Some(LimitBound::Max(COD)).into())]),
                ),
            )]),
        }
    }

    /// Every event row: scope, start, end, last, band, peak band, peak multiple, peak time.
    type Row = (
        String,
        i64,
        Option<i64>,
        i64,
        String,
        String,
        Option<f64>,
        i64,
    );

    fn rows(l: &Ledger) -> Vec<Row> {
        l.conn
            .prepare(
                "SELECT scope, start, end, last, band, peak_band, peak_ratio, peak_at FROM events ORDER BY scope, start",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn revisions(l: &Ledger, scope: &str) -> i64 {
        l.conn
            .query_row(
                "SELECT COUNT(*) FROM event_revisions WHERE scope = ?1",
                [scope],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn no_zero_length(rows: &[Row]) {
        for r in rows {
            assert!(r.2.is_none_or(|end| end > r.1), "zero-length event {r:?}");
        }
    }

    /// 7 h at 5 minutes (84 readings) from a local hour: a short exceedance, a violating hour (11:00), another
    /// exceedance that an in-hour dip splits, and compliant readings between.
    fn series(t0: i64) -> Vec<Evaluated> {
        (0..84)
            .map(|i| {
                let value = match i {
                    5..=7 => 150.0,
                    12..=23 => 200.0 + f64::from(i),
                    30 | 32 => 300.0,
                    31 => 100.0,
                    40..=41 => 160.0,
                    _ => 100.0 + f64::from(i % 5),
                };
                reading(t0 + i64::from(i) * 300_000, value)
            })
            .collect()
    }

    fn ledger(dir: &tempfile::TempDir, name: &str) -> Ledger {
        Ledger::open(&dir.path().join(name), Synchronous::Normal).unwrap()
    }

    fn feed(l: &mut Ledger, ctx: &AggregateContext, batches: &[&[Evaluated]]) -> Vec<EventChange> {
        for b in batches {
            l.commit(b, &[]).unwrap();
            l.refresh_aggregates(ctx, 100_000).unwrap();
        }
        l.take_event_changes()
    }

    #[test]
    fn a_backlog_delivered_newest_first_gives_the_events_of_in_order_arrival() {
        let dir = tempfile::tempdir().unwrap();
        // 2026-11-27 10:00 local, long past: every window is closed by the clock.
        let t0 = 1_795_748_400_000;
        let all = series(t0);
        let ctx = context(HOUR_MS, 300_000);
        let mut b = ledger(&dir, "b.db");
        let one_by_one: Vec<&[Evaluated]> = all.chunks(1).collect();
        feed(&mut b, &ctx, &one_by_one);
        let expected = rows(&b);
        no_zero_length(&expected);
        // Readings in order re-derive nothing; windows long closed are judged again by each reading into them.
        assert_eq!(revisions(&b, "instant"), 0);
        assert!(expected.iter().any(|r| r.0 == "window_3600000"));
        assert!(expected.iter().filter(|r| r.0 == "instant").count() >= 4);

        // The last hour live, then the six hours before it newest first: one reading at a time, and in batches of
        // seven (each batch in order, the batches newest first).
        for batch in [1, 7] {
            let mut a = ledger(&dir, &format!("a{batch}.db"));
            let (backlog, live) = all.split_at(72);
            let mut arrival: Vec<&[Evaluated]> = live.chunks(1).collect();
            arrival.extend(backlog.rchunks(batch));
            let changes = feed(&mut a, &ctx, &arrival);
            assert_eq!(rows(&a), expected, "batches of {batch}");
            assert!(revisions(&a, "instant") > 0);
            assert!(changes
                .iter()
                .any(|c| matches!(c, EventChange::Rederived { .. })));
        }
    }

    #[test]
    fn a_late_reading_splits_and_a_late_exceedance_merges_instant_events() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(HOUR_MS, 300_000);
        let t = |i: i64| 1_795_748_400_000 + i * 300_000;
        let mut l = ledger(&dir, "l.db");
        // 0 compliant, 1–3 over (3 missing), 4 compliant, 5 over, 6 compliant.
        let first = [
            reading(t(0), 100.0),
            reading(t(1), 150.0),
            reading(t(2), 150.0),
            reading(t(4), 100.0),
            reading(t(5), 170.0),
            reading(t(6), 100.0),
        ];
        feed(&mut l, &ctx, &[&first]);
        let instant = |l: &Ledger| -> Vec<(i64, Option<i64>, i64)> {
            rows(l)
                .into_iter()
                .filter(|r| r.0 == "instant")
                .map(|r| (r.1, r.2, r.3))
                .collect()
        };
        assert_eq!(
            instant(&l),
            [(t(1), Some(t(4)), t(2)), (t(5), Some(t(6)), t(5))]
        );
        // A compliant reading at 1½ would not exist at 5-minute cadence; one at 3 over merges nothing, extends.
        feed(&mut l, &ctx, &[&[reading(t(3), 160.0)]]);
        assert_eq!(
            instant(&l),
            [(t(1), Some(t(4)), t(3)), (t(5), Some(t(6)), t(5))]
        );
        // A late exceedance at 4's place cannot come (4 is stored); a compliant one between 1 and 2 splits.
        feed(&mut l, &ctx, &[&[reading(t(1) + 60_000, 90.0)]]);
        assert_eq!(
            instant(&l),
            [
                (t(1), Some(t(1) + 60_000), t(1)),
                (t(2), Some(t(4)), t(3)),
                (t(5), Some(t(6)), t(5))
            ]
        );
        let (old, new, reason): (String, String, String) = l
            .conn
            .query_row(
                "SELECT old_events, new_events, reason FROM event_revisions ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(old.matches("\"start\"").count(), 1, "{old}");
        assert_eq!(new.matches("\"start\"").count(), 2, "{new}");
        assert!(reason.contains("arrived after"), "{reason}");
    }

    /// A judging window long enough to be still running now, started at least two hours ago.
    fn running_window(now: i64) -> (i64, i64) {
        [10, 11]
            .map(|days| days * 86_400_000)
            .into_iter()
            .map(|w| (w, window_start(Timestamp(now), VN, w).0))
            .find(|(_, start)| now - start > 2 * HOUR_MS)
            .unwrap()
    }

    #[test]
    fn a_running_window_opens_an_event_only_when_already_certain() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now().0;
        let (w, start) = running_window(now);
        // One reading an hour: `w` holds 240 or 264. Two readings at 1.5× the limit: the running mean is a
        // violation, but 200-odd readings are still to come: a forecast, no event.
        let ctx = context(w, HOUR_MS);
        let mut l = ledger(&dir, "l.db");
        let at = |h: i64| start + h * HOUR_MS;
        feed(
            &mut l,
            &ctx,
            &[&[reading(at(0), 1.5 * COD), reading(at(1), 1.5 * COD)]],
        );
        assert!(rows(&l).iter().all(|r| r.0 == "instant"));
        let verdict: Option<String> = l
            .conn
            .query_row("SELECT verdict FROM aggregates", [], |r| r.get(0))
            .unwrap();
        assert_eq!(verdict, None);
        // A third reading so high that sum ÷ expected count exceeds the limit: decided, whatever follows.
        let expected = w / HOUR_MS;
        feed(&mut l, &ctx, &[&[reading(at(2), COD * expected as f64)]]);
        let windows: Vec<Row> = rows(&l)
            .into_iter()
            .filter(|r| r.0.starts_with("window_"))
            .collect();
        assert_eq!(windows.len(), 1, "{windows:?}");
        assert_eq!(
            (windows[0].1, windows[0].2, windows[0].3),
            (start, None, start)
        );
        let (verdict, pending): (Option<String>, bool) = l
            .conn
            .query_row("SELECT verdict, pending FROM aggregates", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((verdict.as_deref(), pending), (Some("lt_1_1"), true));
    }
}
