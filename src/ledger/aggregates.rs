//! Window aggregates (local hours, local days) kept current from the readings table.
//!
//! The aggregator has its own cursor, like a forwarder: each step reads readings committed after it, adds them to
//! the running totals of every window they touch (so a late reading revises its hour), and moves the cursor in the
//! same transaction. A stored window counts exactly the readings up to the cursor: a crash only repeats work, never
//! counts a reading twice. A revision of a window that had already closed when it was last computed is recorded in
//! `aggregate_changes` (the late-reading audit trail).
//!
//! Each window is also judged (`verdict`, see `compliance::verdict`): finally once its end has passed or it holds its
//! expected count, early when it is already certain to exceed, not at all while its running mean is only a forecast.
//! Windows still open are marked `pending`; each step also recomputes those whose end has passed, so an hour is
//! judged when it closes even if no reading follows. Judged windows of the averaging window open and close the
//! window-scope events: in order through the tracker, out of order by re-deriving the span.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use rustc_hash::FxHashMap;

use super::events::Late;
use super::{cursor, set_cursor, LedgerError, Stream};
use crate::compliance::hourly::{window_start, Aggregate, Sample, WindowSums};
use crate::compliance::limits::Dated;
use crate::compliance::{
    judge_window, Band, EventChange, EventKey, EventTracker, Follow, LimitBound, Scope,
    WindowVerdict,
};
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
    /// station code → (reporting interval ms, parameter symbol → limit through time: a window is judged by the
    /// regime in force at its start).
    pub stations: HashMap<String, (i64, SeriesLimits)>,
}

/// Parameter symbol → its limit through time.
pub type SeriesLimits = HashMap<String, Dated<Option<LimitBound>>>;

/// One recomputed window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowUpdate {
    pub station: String,
    pub parameter: String,
    pub window_ms: i64,
    pub window_start: Timestamp,
    pub aggregate: Aggregate,
    /// How the window is judged so far: a forecast while it runs, early when already certain, final once closed.
    pub verdict: WindowVerdict,
    /// The previous aggregate, when this window had closed before this recomputation.
    pub late_change_from: Option<(Option<f64>, String)>,
    /// The limit in force at the window's start, (lower bound, upper bound or Cmax).
    pub limit: (Option<f64>, Option<f64>),
}

/// What one refresh step did.
#[derive(Debug, Clone, Default)]
pub struct AggregateReport {
    pub readings_seen: usize,
    pub updates: Vec<WindowUpdate>,
}

/// Most windows [`Committed`] counts; past it, the next step reads its rows back instead.
const COMMITTED_MAX_WINDOWS: usize = 50_000;

/// The window totals of the readings committed after the aggregator's cursor, counted by the writer as it commits
/// them, so that a step need not read those rows back (two thirds of a step's time in a burst). It stands for the
/// rows only while it has counted every one of them: from just after `from` through `to`, with the window lengths
/// and clock offset of the step that takes it. Anything else, and the step reads the rows as before.
#[derive(Debug)]
pub(super) struct Committed {
    windows: Vec<i64>,
    offset_secs: i32,
    from: i64,
    to: i64,
    sums: FxHashMap<WindowKey, WindowSums>,
}

impl Committed {
    /// Count the commits after `seq`, where a step caught up with the writer.
    fn after(seq: i64, ctx: &AggregateContext) -> Committed {
        Committed {
            windows: ctx.windows.clone(),
            offset_secs: ctx.offset_secs,
            from: seq,
            to: seq,
            sums: FxHashMap::default(),
        }
    }

    /// Count one commit's stored readings (each with its station and parameter ids), which took the seqs from
    /// `top_before` + 1 through `top`. `false` when they do not follow what was counted, or there are too many
    /// windows: it can no longer stand for the rows.
    pub fn add(
        &mut self,
        (top_before, top): (i64, i64),
        rows: impl ExactSizeIterator<Item = ((i64, i64), Sample)>,
    ) -> bool {
        if top_before != self.to || top - top_before != rows.len() as i64 {
            return false;
        }
        self.to = top;
        for ((s, p), sample) in rows {
            for &w in &self.windows {
                let start = window_start(sample.ts, self.offset_secs, w).millis();
                self.sums.entry((s, p, w, start)).or_default().add(&sample);
            }
        }
        self.sums.len() <= COMMITTED_MAX_WINDOWS
    }

    /// What it counted, if it stands for the rows after `from` for a step with `ctx`'s windows.
    fn stands_for(self, from: i64, ctx: &AggregateContext) -> Option<Committed> {
        (self.from == from && self.windows == ctx.windows && self.offset_secs == ctx.offset_secs)
            .then_some(self)
    }
}

/// One step, inside the caller's transaction `tx` (which commits it): readings after the cursor, up to `max_rows`,
/// or all that `committed` counted when it stands for them. When the step ends at the newest row, `committed` starts
/// counting the commits after it.
pub(super) fn refresh(
    tx: &Connection,
    ctx: &AggregateContext,
    max_rows: usize,
    events: &mut EventTracker,
    changes: &mut Vec<EventChange>,
    committed: &mut Option<Committed>,
) -> Result<AggregateReport, LedgerError> {
    let from = cursor(tx, CURSOR)?;
    let kept_since = keep_lengths(tx, &ctx.windows, from)?;
    let names = id_names(tx)?;
    // Each touched window and the totals of its readings in this step.
    let mut touched: FxHashMap<WindowKey, WindowSums> = FxHashMap::default();
    let mut last = from;
    let mut seen = 0;
    if let Some(c) = committed.take().and_then(|c| c.stands_for(from, ctx)) {
        // Seqs have no gaps above the cursor: one row each.
        (touched, last, seen) = (c.sums, c.to, (c.to - c.from) as usize);
    } else {
        let mut st = tx.prepare_cached("SELECT seq, station_id, parameter_id, ts, value, status FROM readings WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let mut rows = st.query(params![from, max_rows as i64])?;
        while let Some(row) = rows.next()? {
            let (seq, s, p, ts): (i64, i64, i64, i64) =
                (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
            let sample = Sample {
                ts: Timestamp(ts),
                value: row.get(4)?,
                status: Status::from_u8(row.get(5)?).unwrap_or(Status::Fault),
            };
            last = seq;
            seen += 1;
            for &w in &ctx.windows {
                let start = window_start(sample.ts, ctx.offset_secs, w).millis();
                touched.entry((s, p, w, start)).or_default().add(&sample);
            }
        }
    }
    let now = Timestamp::now().millis();
    // Windows whose end has passed since they were last computed: judge them now, reading or not.
    for key in ended_windows(tx, now)? {
        touched.entry(key).or_default();
    }
    let mut change_seq: i64 = tx.query_row(
        "SELECT COALESCE(MAX(change_seq), 0) FROM aggregates",
        [],
        |r| r.get(0),
    )?;
    let mut updates = Vec::new();
    // In key order, as change numbers are handed out.
    let mut touched: Vec<_> = touched.into_iter().collect();
    touched.sort_unstable_by_key(|(key, _)| *key);
    for ((s, p, w, start), added) in touched {
        let (Some(code), Some(symbol)) = (names.0.get(&s), names.1.get(&p)) else {
            continue;
        };
        let (interval_ms, limit) = match ctx.stations.get(code) {
            Some((iv, limits)) => (
                *iv,
                limits
                    .get(symbol)
                    .and_then(|d| d.at(start))
                    .copied()
                    .flatten(),
            ),
            // A station no longer configured: keep aggregating with the Circular 10 default interval, no limit.
            None => (300_000, None),
        };
        let previous = previous(tx, (s, p, w, start))?;
        let running = match &previous {
            Some(prev) => prev.sums.map(|stored| stored.merged(&added)),
            // The window's first readings, unless its length is kept only since readings were stored.
            None => (kept_since.get(&w) == Some(&0)).then_some(added),
        };
        // Counted from its readings instead: a window first touched whose length was not kept from the start, a row
        // without running totals (from before them, or of a length kept again), and one past the decimal range, in
        // time order so that not even the float fallback depends on arrival order.
        let sums = match running.filter(|r| r.sum.is_some()) {
            Some(sums) => sums,
            None => WindowSums::of(&window_samples(tx, (s, p, w, start), last)?),
        };
        change_seq += 1;
        let expected = (w / interval_ms.max(1)) as u32;
        let agg = sums.aggregate(limit, expected);
        let verdict = judge_window(&sums, &agg, limit, now >= start + w);
        // Events follow judged windows of the averaging window: look the series up before this write.
        let before = previous.as_ref().and_then(|x| what_events_see(x.judged));
        let event = if w == ctx.judging_window_ms && before != what_events_see(verdict.judged()) {
            window_event_key(events, tx, (s, p), w, code, symbol)?
        } else {
            None
        };
        upsert(
            tx,
            (s, p, w, start),
            &sums,
            &agg,
            verdict,
            limit,
            now,
            change_seq,
        )?;
        let late_change_from = match previous {
            Some(prev) if prev.computed >= start + w => {
                tx.prepare_cached(
                    "INSERT INTO aggregate_changes (station_id, parameter_id, window_ms, window_start, old_mean, new_mean, old_band, new_band, changed) \
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                )?
                .execute(params![s, p, w, start, prev.mean, agg.mean, prev.band, agg.band.as_str(), now])?;
                Some((prev.mean, prev.band))
            }
            _ => None,
        };
        if let Some((key, newest)) = event {
            follow_window(
                tx,
                events,
                changes,
                (s, p),
                key,
                newest,
                Timestamp(start),
                verdict,
            )?;
        }
        updates.push(WindowUpdate {
            station: code.clone(),
            parameter: symbol.clone(),
            window_ms: w,
            window_start: Timestamp(start),
            aggregate: agg,
            verdict,
            late_change_from,
            limit: LimitBound::bounds(limit),
        });
    }
    if last != from {
        set_cursor(tx, CURSOR, Stream::Readings, last)?;
    }
    if last == super::top_seq(tx)? {
        *committed = Some(Committed::after(last, ctx));
    }
    Ok(AggregateReport {
        readings_seen: seen,
        updates,
    })
}

/// The part of a window's judgement that events depend on: a compliant window closes whatever its multiple, an
/// unjudged or unevaluated one moves nothing. A compliant hour recomputed by each late reading into it re-derives
/// nothing.
fn what_events_see(judged: Option<(Band, Option<f64>)>) -> Option<(Band, Option<f64>)> {
    match judged? {
        (Band::Compliant, _) => Some((Band::Compliant, None)),
        (Band::NotEvaluated | Band::NoLimit, _) => None,
        other => Some(other),
    }
}

/// A window: station id, parameter id, length (ms), start (Unix ms).
type WindowKey = (i64, i64, i64, i64);

/// What a window held before this refresh recomputed it.
struct Previous {
    /// Its running totals (`sum` is `None` past the decimal range); `None` on a row from before they were stored.
    sums: Option<WindowSums>,
    mean: Option<f64>,
    band: String,
    computed: i64,
    /// The band and multiple that judged it, if it was judged.
    judged: Option<(Band, Option<f64>)>,
}

fn previous(
    conn: &Connection,
    (s, p, w, start): WindowKey,
) -> Result<Option<Previous>, LedgerError> {
    Ok(conn
        .prepare_cached(
            "SELECT mean, band, computed, verdict, verdict_ratio, pending, ratio, valid, min, max, sum_exact, non_negative \
             FROM aggregates WHERE station_id=?1 AND parameter_id=?2 AND window_ms=?3 AND window_start=?4",
        )?
        .query_row(params![s, p, w, start], |r| {
            let band: String = r.get(1)?;
            let verdict: Option<String> = r.get(3)?;
            let pending: bool = r.get(5)?;
            // Rows from before verdicts were stored: closed, judged by their band.
            let judged = match verdict {
                Some(v) => Band::parse(&v).map(|b| (b, r.get(4).ok().flatten())),
                None if !pending => Band::parse(&band).map(|b| (b, r.get(6).ok().flatten())),
                None => None,
            };
            let non_negative: Option<bool> = r.get(11)?;
            let sums = match non_negative {
                Some(non_negative) => Some(WindowSums {
                    valid: r.get(7)?,
                    min: r.get::<_, Option<f64>>(8)?.unwrap_or(f64::INFINITY),
                    max: r.get::<_, Option<f64>>(9)?.unwrap_or(f64::NEG_INFINITY),
                    sum: r
                        .get::<_, Option<[u8; 16]>>(10)?
                        .map(rust_decimal::Decimal::deserialize),
                    // Only used without an exact sum, and then the window is counted again.
                    float_sum: 0.0,
                    non_negative,
                }),
                None => None,
            };
            Ok(Previous {
                sums,
                mean: r.get(0)?,
                band,
                computed: r.get(2)?,
                judged,
            })
        })
        .optional()?)
}

#[allow(clippy::too_many_arguments)]
fn upsert(
    conn: &Connection,
    (s, p, w, start): WindowKey,
    sums: &WindowSums,
    agg: &Aggregate,
    verdict: WindowVerdict,
    limit: Option<LimitBound>,
    now: i64,
    change_seq: i64,
) -> Result<(), LedgerError> {
    let (low, high) = crate::compliance::LimitBound::bounds(limit);
    let judged = verdict.judged();
    conn.prepare_cached(
        "INSERT INTO aggregates (station_id, parameter_id, window_ms, window_start, mean, min, max, valid, expected, completeness, \
         limit_low, limit_high, ratio, band, revision, computed, change_seq, verdict, verdict_ratio, pending, sum_exact, \
         non_negative) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,1,?15,?16,?17,?18,?19,?20,?21) \
         ON CONFLICT (station_id, parameter_id, window_ms, window_start) DO UPDATE SET mean=excluded.mean, min=excluded.min, \
         max=excluded.max, valid=excluded.valid, expected=excluded.expected, completeness=excluded.completeness, \
         limit_low=excluded.limit_low, limit_high=excluded.limit_high, ratio=excluded.ratio, band=excluded.band, \
         revision=revision+1, computed=excluded.computed, change_seq=excluded.change_seq, verdict=excluded.verdict, \
         verdict_ratio=excluded.verdict_ratio, pending=excluded.pending, sum_exact=excluded.sum_exact, \
         non_negative=excluded.non_negative",
    )?
    .execute(params![
        s, p, w, start, agg.mean, agg.min, agg.max, agg.valid, agg.expected, agg.completeness, low, high, agg.ratio,
        agg.band.as_str(), now, change_seq, judged.map(|j| j.0.as_str()), judged.and_then(|j| j.1),
        !verdict.is_final(), sums.sum.map(|d| d.serialize()), sums.non_negative
    ])?;
    Ok(())
}

/// Record the window lengths kept, each with the aggregator's position when it started to be kept (0: since the
/// first reading), and return them. A length kept again after a pause (an averaging window changed in the config
/// and back) has rows that missed the readings in between: their running totals are dropped, so each is counted
/// from its readings when next touched.
fn keep_lengths(
    conn: &Connection,
    windows: &[i64],
    position: i64,
) -> Result<HashMap<i64, i64>, LedgerError> {
    const PREFIX: &str = "aggregates.window_ms.";
    let mut kept: HashMap<i64, i64> = conn
        .prepare_cached(
            "SELECT name, value FROM counters WHERE name LIKE 'aggregates.window_ms.%'",
        )?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?
        .filter_map(|row| match row {
            Ok((name, since)) => Some(Ok((name[PREFIX.len()..].parse().ok()?, since))),
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()?;
    let new: Vec<i64> = windows
        .iter()
        .copied()
        .filter(|w| !kept.contains_key(w))
        .collect();
    for w in new {
        conn.execute(
            "UPDATE aggregates SET non_negative = NULL WHERE window_ms = ?1",
            [w],
        )?;
        conn.execute(
            "INSERT INTO counters (name, value) VALUES (?1, ?2)",
            params![format!("{PREFIX}{w}"), position],
        )?;
        kept.insert(w, position);
    }
    for w in kept.keys().filter(|w| !windows.contains(w)) {
        conn.execute(
            "DELETE FROM counters WHERE name = ?1",
            [format!("{PREFIX}{w}")],
        )?;
    }
    kept.retain(|w, _| windows.contains(w));
    Ok(kept)
}

/// Windows not closed when last computed whose end has now passed.
fn ended_windows(conn: &Connection, now: i64) -> Result<Vec<WindowKey>, LedgerError> {
    let mut st = conn.prepare_cached(
        "SELECT station_id, parameter_id, window_ms, window_start FROM aggregates \
         WHERE pending = 1 AND window_start + window_ms <= ?1",
    )?;
    let rows = st.query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The window-scope event key of a series and its newest judged window before this write (seeded from the ledger
/// the first time the tracker sees the series). `None` for a series that is not a station's parameter.
fn window_event_key(
    events: &mut EventTracker,
    conn: &Connection,
    ids: (i64, i64),
    w: i64,
    code: &str,
    symbol: &str,
) -> Result<Option<(EventKey, Option<Timestamp>)>, LedgerError> {
    let (Ok(station), Ok(parameter)) = (StationId::parse(code), Parameter::new(symbol)) else {
        return Ok(None);
    };
    let key = EventKey {
        station,
        parameter,
        scope: Scope::Window { window_ms: w },
    };
    let newest = match events.newest(&key) {
        Some(n) => n,
        None => {
            let n = super::events::newest_window(conn, ids, w)?;
            events.seed(key.clone(), n);
            n
        }
    };
    Ok(Some((key, newest)))
}

/// A window's judgement changed: a window after the newest judged one goes through the tracker; one judged again,
/// or judged after a newer one, re-derives its span.
#[allow(clippy::too_many_arguments)]
fn follow_window(
    conn: &Connection,
    events: &mut EventTracker,
    changes: &mut Vec<EventChange>,
    ids: (i64, i64),
    key: EventKey,
    newest: Option<Timestamp>,
    start: Timestamp,
    verdict: WindowVerdict,
) -> Result<(), LedgerError> {
    match newest {
        Some(n) if start <= n => {
            if let Some(c) = events.take_extended_of(&key) {
                super::events::store(conn, ids, &c)?;
                changes.push(c);
            }
            let late = Late {
                first: start,
                last: start,
                newest: n,
                reason: format!("window {start} judged again after the window of {n}"),
            };
            let done = super::events::rederive(conn, ids, &key, &late)?;
            if let Some(open) = done.open_after {
                events.set_open(&key, open);
            }
            changes.extend(done.change);
        }
        _ => {
            if let Some((band, ratio)) = verdict.judged() {
                if let Follow::Followed(Some(change)) = events.follow(&key, start, band, ratio) {
                    super::events::store(conn, ids, &change)?;
                    changes.push(change);
                }
            }
        }
    }
    Ok(())
}

/// The stored readings of a window up to the aggregator's position `upto` (later ones are added when it gets there).
fn window_samples(
    conn: &Connection,
    (s, p, w, start): WindowKey,
    upto: i64,
) -> Result<Vec<Sample>, LedgerError> {
    let mut st = conn.prepare_cached(
        "SELECT ts, value, status FROM readings WHERE station_id=?1 AND parameter_id=?2 AND ts >= ?3 AND ts < ?4 AND seq <= ?5 \
         ORDER BY ts",
    )?;
    let rows = st.query_map(params![s, p, start, start + w, upto], |r| {
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
