//! What re-deriving an alert key's history reads and writes (migration 8): a series' readings and judging windows
//! in observation order around a time, the key's alerts by when they began, and the rewrite, addition or
//! withdrawal of alerts with a revision row. The alert module decides; this module only reads and stores rows.

use std::sync::Arc;

use rusqlite::{params, OptionalExtension};

use super::alerts::{
    replay_row, stored_alert, AlertStore, AlertTx, JudgingWindow, ReplayReading, Shared,
    ALERT_COLUMNS,
};
use super::withdrawn::WithdrawnPoint;
use super::LedgerError;
use crate::compliance::Band;

/// An alert key as stored: `station`, `subject`, `kind`.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    pub station: &'a str,
    pub subject: &'a str,
    pub kind: &'a str,
}

/// Which way, and how far, to read a series around a time.
#[derive(Debug, Clone, Copy)]
pub enum Span {
    /// Strictly before this time, newest first, at most `limit`.
    Before { ts: i64, limit: i64 },
    /// Strictly after this time (`None`: from the first), oldest first, at most `limit`.
    After { ts: Option<i64>, limit: i64 },
}

/// An alert rewritten in place by a re-derivation.
#[derive(Debug, Clone)]
pub struct Rewrite<'a> {
    pub state: &'a str,
    pub since: i64,
    pub raised: i64,
    pub last_bad: i64,
    pub cleared: Option<i64>,
    pub detail: &'a str,
    pub peak: &'a str,
}

/// The span a key's alerts cover (see [`AlertStore::key_extent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyExtent {
    pub first: i64,
    pub last_cleared: Option<i64>,
    pub open: bool,
}

impl KeyExtent {
    /// Whether no alert can span any time in `[from, until]`: they all began after it, or all cleared before it.
    pub fn clear_of(&self, from: i64, until: i64) -> bool {
        self.first > until || (!self.open && self.last_cleared.is_some_and(|c| c < from))
    }
}

/// One re-derivation, recorded.
#[derive(Debug, Clone)]
pub struct AlertRevision<'a> {
    pub key: KeyRef<'a>,
    pub span_after: Option<i64>,
    pub old_alerts: &'a str,
    pub new_alerts: &'a str,
    pub reason: &'a str,
    pub changed: i64,
}

/// A series' readings before `?3` (newest first, at most `?4`), and after it (oldest first).
macro_rules! series_readings {
    ($order:literal) => {
        concat!(
            "SELECT r.seq, r.ts, r.value, r.unit, r.status, r.limit_low, r.limit_high, r.ratio, r.band, r.flags \
             FROM readings r WHERE r.station_id = (SELECT id FROM stations WHERE code = ?1) \
             AND r.parameter_id = (SELECT id FROM parameters WHERE symbol = ?2) AND ",
            $order
        )
    };
}
const READINGS_BEFORE: &str = series_readings!("r.ts < ?3 ORDER BY r.ts DESC LIMIT ?4");
const READINGS_AFTER: &str = series_readings!("r.ts > ?3 ORDER BY r.ts LIMIT ?4");

impl AlertStore {
    /// A series' readings around a time, with their verdicts.
    pub fn series_readings(
        &self,
        station: &str,
        parameter: &str,
        span: Span,
    ) -> Result<Vec<ReplayReading>, LedgerError> {
        let (sql, ts, limit) = match span {
            Span::Before { ts, limit } => (READINGS_BEFORE, ts, limit),
            Span::After { ts, limit } => (READINGS_AFTER, ts.unwrap_or(i64::MIN), limit),
        };
        let mut st = self.conn.prepare_cached(sql)?;
        let mut shared = Shared::default();
        let series: (Arc<str>, Arc<str>) = (Arc::from(station), Arc::from(parameter));
        let mut rows = st.query(params![station, parameter, ts, limit])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(replay_row(r, 1, series.clone(), &mut shared)?);
        }
        Ok(out)
    }

    /// A series' windows of length `window_ms`, oldest first, with their judged band (`not_evaluated` while only a
    /// forecast), as [`AlertStore::current_windows`] gives the newest.
    pub fn series_windows(
        &self,
        station: &str,
        parameter: &str,
        window_ms: i64,
    ) -> Result<Vec<JudgingWindow>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT a.window_start, a.mean, a.completeness, \
             CASE WHEN a.verdict IS NOT NULL THEN a.verdict_ratio WHEN a.pending THEN NULL ELSE a.ratio END, \
             CASE WHEN a.verdict IS NOT NULL THEN a.verdict WHEN a.pending THEN 'not_evaluated' ELSE a.band END, \
             a.limit_low, a.limit_high \
             FROM aggregates a WHERE a.station_id = (SELECT id FROM stations WHERE code = ?1) \
             AND a.parameter_id = (SELECT id FROM parameters WHERE symbol = ?2) AND a.window_ms = ?3 \
             ORDER BY a.window_start",
        )?;
        let rows = st.query_map(params![station, parameter, window_ms], |r| {
            Ok(JudgingWindow {
                station: station.to_string(),
                parameter: parameter.to_string(),
                window_start: r.get(0)?,
                mean: r.get(1)?,
                completeness: r.get(2)?,
                ratio: r.get(3)?,
                band: Band::parse(&r.get::<_, String>(4)?).unwrap_or(Band::NotEvaluated),
                limit: (r.get(5)?, r.get(6)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the earliest alert of the key that was open at `at` began (`since <= at`, not cleared by then).
    pub fn open_at(&self, key: KeyRef<'_>, at: i64) -> Result<Option<i64>, LedgerError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT MIN(since) FROM alerts WHERE station = ?1 AND subject = ?2 AND kind = ?3 \
                 AND state != 'withdrawn' AND since <= ?4 AND (cleared IS NULL OR cleared > ?4)",
            )?
            .query_row(params![key.station, key.subject, key.kind, at], |r| {
                r.get(0)
            })
            .optional()?
            .flatten())
    }

    /// Whether an alert of the key spans any time in `[from, until]` (began by `until`, not cleared before `from`).
    pub fn alert_within(
        &self,
        key: KeyRef<'_>,
        from: i64,
        until: i64,
    ) -> Result<bool, LedgerError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM alerts WHERE station = ?1 AND subject = ?2 AND kind = ?3 \
                 AND state != 'withdrawn' AND since <= ?5 AND (cleared IS NULL OR cleared >= ?4))",
            )?
            .query_row(
                params![key.station, key.subject, key.kind, from, until],
                |r| r.get(0),
            )?)
    }

    /// The span all of the key's alerts cover: the earliest `since`, the latest clear, and whether one is open
    /// (`None` without alerts).
    pub fn key_extent(&self, key: KeyRef<'_>) -> Result<Option<KeyExtent>, LedgerError> {
        let (first, last, open): (Option<i64>, Option<i64>, i64) = self
            .conn
            .prepare_cached(
                "SELECT MIN(since), MAX(cleared), IFNULL(SUM(cleared IS NULL), 0) FROM alerts \
                 WHERE station = ?1 AND subject = ?2 AND kind = ?3 AND state != 'withdrawn'",
            )?
            .query_row(params![key.station, key.subject, key.kind], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        Ok(first.map(|first| KeyExtent {
            first,
            last_cleared: last,
            open: open > 0,
        }))
    }

    /// When the key's alerts were raised, in `(after, until]`, oldest first.
    pub fn raised_between(
        &self,
        key: KeyRef<'_>,
        after: i64,
        until: i64,
    ) -> Result<Vec<i64>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT raised FROM alerts WHERE station = ?1 AND subject = ?2 AND kind = ?3 \
             AND state != 'withdrawn' AND raised > ?4 AND raised <= ?5 ORDER BY raised",
        )?;
        let rows = st.query_map(
            params![key.station, key.subject, key.kind, after, until],
            |r| r.get(0),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The key's alerts that began after `after` (`None`: all), by when they began; withdrawn ones left out.
    pub fn key_alerts_after(
        &self,
        key: KeyRef<'_>,
        after: Option<i64>,
    ) -> Result<Vec<super::alerts::StoredAlert>, LedgerError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE station = ?1 AND subject = ?2 AND kind = ?3 \
             AND state != 'withdrawn' AND since > ?4 ORDER BY since, id"
        ))?;
        let rows = st.query_map(
            params![
                key.station,
                key.subject,
                key.kind,
                after.unwrap_or(i64::MIN)
            ],
            stored_alert,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl AlertTx<'_> {
    /// Rewrite an alert as in-order arrival makes it (its acknowledgement, notifications and id stay).
    pub fn rewrite_alert(&self, id: i64, w: &Rewrite<'_>) -> Result<(), LedgerError> {
        self.tx
            .prepare_cached(
                "UPDATE alerts SET state = ?2, since = ?3, raised = ?4, updated = ?5, cleared = ?6, detail = ?7, \
                 peak = ?8 WHERE id = ?1",
            )?
            .execute(params![
                id, w.state, w.since, w.raised, w.last_bad, w.cleared, w.detail, w.peak
            ])?;
        Ok(())
    }

    /// Withdraw an alert the complete data no longer shows (kept, with its notifications, for the record).
    pub fn withdraw_alert(&self, id: i64) -> Result<(), LedgerError> {
        self.tx
            .prepare_cached("UPDATE alerts SET state = 'withdrawn' WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// List a point no alert holds any more, for the forwarders to withdraw.
    pub fn withdraw_point(&self, p: &WithdrawnPoint, now: i64) -> Result<(), LedgerError> {
        super::withdrawn::point(&self.tx, p, now)
    }

    pub fn record_alert_revision(&self, r: &AlertRevision<'_>) -> Result<(), LedgerError> {
        self.tx
            .prepare_cached(
                "INSERT INTO alert_revisions (station, subject, kind, span_after, old_alerts, new_alerts, reason, changed) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                r.key.station,
                r.key.subject,
                r.key.kind,
                r.span_after,
                r.old_alerts,
                r.new_alerts,
                r.reason,
                r.changed
            ])?;
        Ok(())
    }
}
