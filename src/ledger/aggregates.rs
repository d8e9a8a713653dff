//! Window aggregates (local hours, local days) kept current from the readings table.
//!
//! The aggregator has its own cursor, like a forwarder: each step reads readings committed after it, recomputes
//! every window they touch from the stored readings (so a late reading recomputes its hour), and moves the cursor in
//! the same transaction. A crash only repeats work. A recomputation of a window that had already closed when it was
//! last computed is recorded in `aggregate_changes` (the late-reading audit trail).

use std::collections::{BTreeSet, HashMap};

use rusqlite::{params, Connection, OptionalExtension};

use super::{cursor, set_cursor, LedgerError, Stream};
use crate::compliance::hourly::{aggregate, window_start, Aggregate, Sample};
use crate::compliance::{EventChange, EventKey, EventTracker, LimitBound, Scope};
use crate::model::{Parameter, StationId};
use crate::model::{Status, Timestamp};

pub const CURSOR: &str = "aggregates";
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// What the aggregator needs to know about stations: interval and limits, by code and symbol.
#[derive(Debug, Clone, Default)]
pub struct AggregateContext {
    pub offset_secs: i32,
    /// Window lengths to maintain, in ms (hourly and daily by default).
    pub windows: Vec<i64>,
    /// The window whose means open and close violation events (the averaging window, 1 h by default).
    pub judging_window_ms: i64,
    /// station code → (reporting interval ms, parameter symbol → limit).
    pub stations: HashMap<String, (i64, HashMap<String, Option<LimitBound>>)>,
}

/// One recomputed window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowUpdate {
    pub station: String,
    pub parameter: String,
    pub window_ms: i64,
    pub window_start: Timestamp,
    pub aggregate: Aggregate,
    /// The previous aggregate, when this window had closed before this recomputation.
    pub late_change_from: Option<(Option<f64>, String)>,
}

/// What one refresh step did.
#[derive(Debug, Clone, Default)]
pub struct AggregateReport {
    pub readings_seen: usize,
    pub updates: Vec<WindowUpdate>,
}

pub(super) fn refresh(
    conn: &mut Connection,
    ctx: &AggregateContext,
    max_rows: usize,
    events: &mut EventTracker,
    changes: &mut Vec<EventChange>,
) -> Result<AggregateReport, LedgerError> {
    // IMMEDIATE: this reads before it writes; see `Ledger::commit`.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let from = cursor(&tx, CURSOR)?;
    let names = id_names(&tx)?;
    let mut touched = BTreeSet::new();
    let mut last = from;
    let mut seen = 0;
    {
        let mut st = tx.prepare_cached("SELECT seq, station_id, parameter_id, ts FROM readings WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let mut rows = st.query(params![from, max_rows as i64])?;
        while let Some(row) = rows.next()? {
            let (seq, s, p, ts): (i64, i64, i64, i64) =
                (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
            last = seq;
            seen += 1;
            for &w in &ctx.windows {
                touched.insert((
                    s,
                    p,
                    w,
                    window_start(Timestamp(ts), ctx.offset_secs, w).millis(),
                ));
            }
        }
    }
    let now = Timestamp::now().millis();
    let mut change_seq: i64 = tx.query_row(
        "SELECT COALESCE(MAX(change_seq), 0) FROM aggregates",
        [],
        |r| r.get(0),
    )?;
    let mut updates = Vec::new();
    for (s, p, w, start) in touched {
        let (Some(code), Some(symbol)) = (names.0.get(&s), names.1.get(&p)) else {
            continue;
        };
        let (interval_ms, limit) = match ctx.stations.get(code) {
            Some((iv, limits)) => (*iv, limits.get(symbol).copied().flatten()),
            // A station no longer configured: keep aggregating with the Circular 10 default interval, no limit.
            None => (300_000, None),
        };
        let samples = window_samples(&tx, s, p, start, w)?;
        change_seq += 1;
        let expected = (w / interval_ms.max(1)) as u32;
        let agg = aggregate(&samples, limit, expected);
        let previous: Option<(Option<f64>, String, i64)> = tx
            .prepare_cached("SELECT mean, band, computed FROM aggregates WHERE station_id=?1 AND parameter_id=?2 AND window_ms=?3 AND window_start=?4")?
            .query_row(params![s, p, w, start], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let (low, high) = match limit {
            Some(LimitBound::Max(m)) => (None, Some(m)),
            Some(LimitBound::Range(lo, hi)) => (Some(lo), Some(hi)),
            None => (None, None),
        };
        tx.prepare_cached(
            "INSERT INTO aggregates (station_id, parameter_id, window_ms, window_start, mean, min, max, valid, expected, completeness, \
             limit_low, limit_high, ratio, band, revision, computed, change_seq) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,1,?15,?16) \
             ON CONFLICT (station_id, parameter_id, window_ms, window_start) DO UPDATE SET mean=excluded.mean, min=excluded.min, \
             max=excluded.max, valid=excluded.valid, expected=excluded.expected, completeness=excluded.completeness, \
             limit_low=excluded.limit_low, limit_high=excluded.limit_high, ratio=excluded.ratio, band=excluded.band, \
             revision=revision+1, computed=excluded.computed, change_seq=excluded.change_seq",
        )?
        .execute(params![
            s, p, w, start, agg.mean, agg.min, agg.max, agg.valid, agg.expected, agg.completeness, low, high, agg.ratio,
            agg.band.as_str(), now, change_seq
        ])?;
        let late_change_from = match previous {
            Some((old_mean, old_band, computed)) if computed >= start + w => {
                tx.prepare_cached(
                    "INSERT INTO aggregate_changes (station_id, parameter_id, window_ms, window_start, old_mean, new_mean, old_band, new_band, changed) \
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                )?
                .execute(params![s, p, w, start, old_mean, agg.mean, old_band, agg.band.as_str(), now])?;
                Some((old_mean, old_band))
            }
            _ => None,
        };
        // Means of the averaging window judge violations: they open and close the window-scope events.
        if w == ctx.judging_window_ms {
            if let (Ok(station), Ok(parameter)) = (StationId::parse(code), Parameter::new(symbol)) {
                let key = EventKey {
                    station,
                    parameter,
                    scope: Scope::Window { window_ms: w },
                };
                if let Some(change) = events.observe(&key, Timestamp(start), agg.band, agg.ratio) {
                    super::events::store(&tx, (s, p), &change)?;
                    changes.push(change);
                }
            }
        }
        updates.push(WindowUpdate {
            station: code.clone(),
            parameter: symbol.clone(),
            window_ms: w,
            window_start: Timestamp(start),
            aggregate: agg,
            late_change_from,
        });
    }
    if last != from {
        set_cursor(&tx, CURSOR, Stream::Readings, last)?;
    }
    tx.commit()?;
    Ok(AggregateReport {
        readings_seen: seen,
        updates,
    })
}

fn window_samples(
    conn: &Connection,
    s: i64,
    p: i64,
    start: i64,
    w: i64,
) -> Result<Vec<Sample>, LedgerError> {
    let mut st = conn.prepare_cached(
        "SELECT ts, value, status FROM readings WHERE station_id=?1 AND parameter_id=?2 AND ts >= ?3 AND ts < ?4 ORDER BY ts",
    )?;
    let rows = st.query_map(params![s, p, start, start + w], |r| {
        Ok(Sample {
            ts: Timestamp(r.get(0)?),
            value: r.get(1)?,
            status: Status::from_u8(r.get(2)?).unwrap_or(Status::Fault),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

type IdNames = (HashMap<i64, String>, HashMap<i64, String>);

fn id_names(conn: &Connection) -> Result<IdNames, LedgerError> {
    let load = |sql: &str| -> Result<HashMap<i64, String>, LedgerError> {
        let mut st = conn.prepare_cached(sql)?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    Ok((
        load("SELECT id, code FROM stations")?,
        load("SELECT id, symbol FROM parameters")?,
    ))
}
