//! The alert engine's tables in the ledger (migration 2): alerts, per-key engine state, the outbox. The runner owns
//! one write connection (WAL, busy timeout) for them; only the ledger writer writes readings. Blocking calls: run
//! them on the blocking pool.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde_json::{json, Value};

use super::engine::{severity_name, AlertKey, Change, KeyState, Kind, Transition};
use super::message::{Context, Notification};
use crate::ledger::{LedgerError, Stream};
use crate::model::Timestamp;

/// The readings cursor of the alert engine (retention waits for it).
pub const READINGS_CURSOR: &str = "alerts:readings";

pub struct Store {
    conn: Connection,
}

/// A transition and the channels its notification goes to.
pub type Routed = (Transition, Vec<String>);

/// Why an acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("no alert has id {0}")]
    NotFound(i64),
    #[error("alert {id} is {state}; only a raised alert can be acknowledged")]
    NotRaised { id: i64, state: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the alert engine is not running")]
    Stopped,
}

impl From<rusqlite::Error> for AckError {
    fn from(e: rusqlite::Error) -> Self {
        AckError::Ledger(e.into())
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, LedgerError> {
        let conn = Connection::open(path).map_err(|error| LedgerError::Open {
            path: path.to_path_buf(),
            error,
        })?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(Store { conn })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Every persisted key state.
    pub fn load_states(&self) -> Result<Vec<(AlertKey, KeyState)>, LedgerError> {
        let mut st = self.conn.prepare("SELECT key, state FROM alert_keys")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (key, state) = row?;
            let mut parts = key.splitn(3, '|');
            let (Some(station), Some(subject), Some(kind)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Some(kind), Ok(state)) = (Kind::parse(kind), serde_json::from_str(&state)) else {
                tracing::warn!(key = %key, "Stored alert state not understood; the key starts afresh.");
                continue;
            };
            out.push((AlertKey::new(station, subject, kind), state));
        }
        Ok(out)
    }

    /// The readings cursor, registering it at the newest reading on the first start (history is not replayed).
    pub fn readings_cursor(&self) -> Result<i64, LedgerError> {
        let pos: Option<i64> = self
            .conn
            .query_row(
                "SELECT position FROM cursors WHERE name = ?1",
                [READINGS_CURSOR],
                |r| r.get(0),
            )
            .optional()?;
        match pos {
            Some(p) => Ok(p),
            None => {
                let top: i64 =
                    self.conn
                        .query_row("SELECT COALESCE(MAX(seq), 0) FROM readings", [], |r| {
                            r.get(0)
                        })?;
                crate::ledger::set_cursor(&self.conn, READINGS_CURSOR, Stream::Readings, top)?;
                Ok(top)
            }
        }
    }

    /// Drop the engine's readings cursor (alerts switched off), so retention does not wait for it.
    pub fn forget_cursor(&self) -> Result<(), LedgerError> {
        self.conn
            .execute("DELETE FROM cursors WHERE name = ?1", [READINGS_CURSOR])?;
        Ok(())
    }

    /// Store transitions (alert rows and outbox rows), dirty key states and the cursor in one transaction.
    /// Returns the ids of the alerts the transitions belong to, in order, and the alerts as they now stand.
    pub fn commit(
        &mut self,
        ctx: &Context,
        routed: &[Routed],
        mut dirty: Vec<(AlertKey, KeyState)>,
        readings_pos: Option<i64>,
    ) -> Result<(Vec<i64>, Vec<Value>), LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut ids = Vec::with_capacity(routed.len());
        // Delivery runs on the wall clock (the engine's clock is injected and may be a test's).
        let queued = Timestamp::now().millis();
        // A key can be raised and then escalated or cleared within one batch, before the engine knows the new id.
        let mut assigned: std::collections::HashMap<&AlertKey, i64> = Default::default();
        for (t, channels) in routed {
            let known = match t.change {
                Change::Raised => None,
                _ => t.alert_id.or_else(|| assigned.get(&t.key).copied()),
            };
            let id = match (t.change, known) {
                (Change::Raised, _) => store_transition(&tx, t, None)?,
                (_, Some(id)) => store_transition(&tx, t, Some(id))?,
                (_, None) => match open_alert(&tx, &t.key)? {
                    Some(id) => store_transition(&tx, t, Some(id))?,
                    None => {
                        tracing::warn!(key = %t.key.id(), change = t.change.as_str(), "Alert change without an open alert; skipped.");
                        ids.push(0);
                        continue;
                    }
                },
            };
            if t.change == Change::Raised {
                assigned.insert(&t.key, id);
            }
            if t.change == Change::Raised {
                for (k, s) in dirty.iter_mut() {
                    if *k == t.key {
                        s.alert_id = Some(id);
                    }
                }
            }
            let n = Notification::build(ctx, id, t);
            let payload = serde_json::to_string(&n).unwrap_or_default();
            for ch in channels {
                tx.prepare_cached(
                    "INSERT INTO outbox (alert_id, channel, change, payload, created, status, attempts, next_attempt) \
                     VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?5)",
                )?
                .execute(params![id, ch, t.change.as_str(), payload, queued])?;
            }
            ids.push(id);
        }
        let now = Timestamp::now().millis();
        for (k, s) in &dirty {
            tx.prepare_cached(
                "INSERT INTO alert_keys (key, state, updated) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(key) DO UPDATE SET state = excluded.state, updated = excluded.updated",
            )?
            .execute(params![
                k.id(),
                serde_json::to_string(s).unwrap_or_default(),
                now
            ])?;
        }
        if let Some(pos) = readings_pos {
            crate::ledger::set_cursor(&tx, READINGS_CURSOR, Stream::Readings, pos)?;
        }
        let mut changed = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            if seen.insert(*id) {
                if let Some(a) = alert(&tx, *id)? {
                    changed.push(a);
                }
            }
        }
        tx.commit()?;
        Ok((ids, changed))
    }

    /// Acknowledge a raised alert with a comment, and write the audit row, in one transaction.
    pub fn acknowledge(
        &mut self,
        id: i64,
        who: &str,
        role: &str,
        comment: &str,
        state: Option<(AlertKey, KeyState)>,
    ) -> Result<Value, AckError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: Option<String> = tx
            .query_row("SELECT state FROM alerts WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        match current.as_deref() {
            None => return Err(AckError::NotFound(id)),
            Some("raised") => {}
            Some(other) => {
                return Err(AckError::NotRaised {
                    id,
                    state: other.to_string(),
                })
            }
        }
        let now = Timestamp::now().millis();
        tx.execute(
            "UPDATE alerts SET state = 'acknowledged', acked_at = ?2, acked_by = ?3, ack_comment = ?4, updated = ?2 WHERE id = ?1",
            params![id, now, who, comment],
        )?;
        tx.execute(
            "INSERT INTO audit (at, who, role, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                now,
                who,
                role,
                format!("POST /api/alerts/{id}/ack"),
                comment
            ],
        )?;
        if let Some((k, s)) = state {
            tx.execute(
                "INSERT INTO alert_keys (key, state, updated) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(key) DO UPDATE SET state = excluded.state, updated = excluded.updated",
                params![k.id(), serde_json::to_string(&s).unwrap_or_default(), now],
            )?;
        }
        let a = alert(&tx, id)?.ok_or(AckError::NotFound(id))?;
        tx.commit()?;
        Ok(a)
    }
}

/// The newest open alert of a key.
fn open_alert(tx: &Transaction<'_>, k: &AlertKey) -> Result<Option<i64>, LedgerError> {
    Ok(tx
        .query_row(
            "SELECT MAX(id) FROM alerts WHERE station = ?1 AND subject = ?2 AND kind = ?3 AND state IN ('raised', 'acknowledged')",
            params![k.station, k.subject, k.kind.as_str()],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

fn store_transition(
    tx: &Transaction<'_>,
    t: &Transition,
    id: Option<i64>,
) -> Result<i64, LedgerError> {
    let detail = serde_json::to_string(&t.detail).unwrap_or_default();
    let peak = serde_json::to_string(&t.peak).unwrap_or_default();
    match (t.change, id) {
        (Change::Raised, _) | (_, None) => {
            tx.prepare_cached(
                "INSERT INTO alerts (station, subject, kind, severity, state, since, raised, updated, detail, peak, notifications) \
                 VALUES (?1, ?2, ?3, ?4, 'raised', ?5, ?6, ?6, ?7, ?8, 1)",
            )?
            .execute(params![
                t.key.station,
                t.key.subject,
                t.key.kind.as_str(),
                severity_name(t.key.kind.severity()),
                t.since,
                t.at,
                detail,
                peak
            ])?;
            Ok(tx.last_insert_rowid())
        }
        (Change::Cleared, Some(id)) => {
            tx.prepare_cached(
                "UPDATE alerts SET state = 'cleared', cleared = ?2, updated = ?2, detail = ?3, notifications = notifications + 1 WHERE id = ?1",
            )?
            .execute(params![id, t.at, detail])?;
            Ok(id)
        }
        (_, Some(id)) => {
            tx.prepare_cached(
                "UPDATE alerts SET updated = ?2, detail = ?3, peak = ?4, notifications = notifications + 1 WHERE id = ?1",
            )?
            .execute(params![id, t.at, detail, peak])?;
            Ok(id)
        }
    }
}

const ALERT_COLUMNS: &str =
    "id, station, subject, kind, severity, state, since, raised, updated, cleared, detail, peak, \
     notifications, acked_at, acked_by, ack_comment";

fn alert_json(r: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    let parse = |s: String| serde_json::from_str::<Value>(&s).unwrap_or(Value::Null);
    Ok(json!({
        "id": r.get::<_, i64>(0)?, "station": r.get::<_, String>(1)?, "parameter": r.get::<_, String>(2)?,
        "kind": r.get::<_, String>(3)?, "severity": r.get::<_, String>(4)?, "state": r.get::<_, String>(5)?,
        "since": r.get::<_, i64>(6)?, "raised": r.get::<_, i64>(7)?, "updated": r.get::<_, i64>(8)?,
        "cleared": r.get::<_, Option<i64>>(9)?, "detail": parse(r.get(10)?), "peak": parse(r.get(11)?),
        "notifications": r.get::<_, i64>(12)?, "acked_at": r.get::<_, Option<i64>>(13)?,
        "acked_by": r.get::<_, Option<String>>(14)?, "ack_comment": r.get::<_, Option<String>>(15)?,
    }))
}

/// One alert as the API shows it.
pub fn alert(conn: &Connection, id: i64) -> Result<Option<Value>, LedgerError> {
    Ok(conn
        .query_row(
            &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
            [id],
            alert_json,
        )
        .optional()?)
}

/// Filter of `GET /api/alerts`.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub station: Option<String>,
    /// `raised`, `acknowledged`, `cleared`, or `open` (raised or acknowledged).
    pub state: Option<String>,
    pub kind: Option<String>,
    /// Alerts with an id below this (the `next_before` of the previous page); newest first.
    pub before: Option<i64>,
    pub limit: i64,
}

/// Alerts newest first, each with its deliveries.
pub fn alerts(conn: &Connection, f: &AlertFilter) -> Result<Vec<Value>, LedgerError> {
    let mut st = conn.prepare(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE (?1 IS NULL OR station = ?1) \
         AND (?2 IS NULL OR state = ?2 OR (?2 = 'open' AND state IN ('raised', 'acknowledged'))) \
         AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR id < ?4) ORDER BY id DESC LIMIT ?5"
    ))?;
    let rows = st.query_map(
        params![f.station, f.state, f.kind, f.before, f.limit],
        alert_json,
    )?;
    let mut out = rows.collect::<Result<Vec<_>, _>>()?;
    let mut d = conn.prepare_cached(
        "SELECT id, channel, change, status, attempts, created, delivered, last_error FROM outbox WHERE alert_id = ?1 ORDER BY id",
    )?;
    for a in out.iter_mut() {
        let id = a["id"].as_i64().unwrap_or(0);
        let rows = d.query_map([id], |x| {
            Ok(json!({ "id": x.get::<_, i64>(0)?, "channel": x.get::<_, String>(1)?, "change": x.get::<_, String>(2)?,
                "status": x.get::<_, String>(3)?, "attempts": x.get::<_, i64>(4)?, "created": x.get::<_, i64>(5)?,
                "delivered": x.get::<_, Option<i64>>(6)?, "last_error": x.get::<_, Option<String>>(7)? }))
        })?;
        a["deliveries"] = Value::Array(rows.collect::<Result<Vec<_>, _>>()?);
    }
    Ok(out)
}

/// Open alerts (raised or acknowledged) per station.
pub fn open_counts(
    conn: &Connection,
) -> Result<std::collections::HashMap<String, i64>, LedgerError> {
    let mut st = conn.prepare(
        "SELECT station, COUNT(*) FROM alerts WHERE state IN ('raised', 'acknowledged') GROUP BY station",
    )?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::engine::Detail;

    fn transition(change: Change, at: i64) -> Transition {
        Transition {
            key: AlertKey::new("BN_A_B", "COD", Kind::Exceedance),
            change,
            alert_id: None,
            at,
            since: 1,
            detail: Detail::default(),
            peak: Detail::default(),
        }
    }

    #[test]
    fn raise_and_clear_in_one_batch_make_one_cleared_alert() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        drop(crate::ledger::Ledger::open(&path, crate::config::Synchronous::Normal).unwrap());
        let mut s = Store::open(&path).unwrap();
        let ctx = Context {
            public_url: "http://x".into(),
            timezone: chrono::FixedOffset::east_opt(7 * 3600).unwrap(),
            stations: Default::default(),
        };
        let routed = vec![
            (transition(Change::Raised, 10), vec!["log".to_string()]),
            (transition(Change::Escalated, 11), vec!["log".to_string()]),
            (transition(Change::Cleared, 12), vec!["log".to_string()]),
            (transition(Change::Raised, 13), vec!["log".to_string()]),
        ];
        let (ids, changed) = s.commit(&ctx, &routed, Vec::new(), Some(5)).unwrap();
        assert_eq!(ids, [1, 1, 1, 2]);
        assert_eq!(changed.len(), 2);
        assert_eq!(changed[0]["state"], "cleared");
        assert_eq!(changed[1]["state"], "raised");
        let n: i64 = s
            .connection()
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 4);
        assert_eq!(
            crate::ledger::cursor(s.connection(), READINGS_CURSOR).unwrap(),
            5
        );
    }
}
