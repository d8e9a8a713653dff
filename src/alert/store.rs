//! The alert engine's side of its ledger tables: turns the engine's transitions into alert, outbox and key-state
//! rows (through [`crate::ledger::alerts`], which owns the SQL) and the stored alerts into the API's JSON. The
//! runner holds one [`Store`] (one write connection); only the ledger writer writes readings. Blocking calls: run
//! them through [`crate::ledger::Held`].

use std::path::Path;

use serde_json::{json, Value};

use super::engine::{severity_name, AlertKey, Change, KeyState, Kind, Transition};
use super::message::{Context, Notification};
use crate::ledger::alerts::{
    AckOutcome, Acknowledgement, AlertStore, AlertTx, AlertUpdate, AlertWithDeliveries,
    JudgingWindow, KeyStateRow, NewAlert, QueuedNotification, ReplayReading, StoredAlert,
};
use crate::ledger::LedgerError;
use crate::model::Timestamp;

pub use crate::ledger::alerts::READINGS_CURSOR;

pub struct Store {
    ledger: AlertStore,
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

impl Store {
    pub fn open(path: &Path) -> Result<Store, LedgerError> {
        Ok(Store {
            ledger: AlertStore::open(path)?,
        })
    }

    /// Every persisted key state.
    pub fn load_states(&self) -> Result<Vec<(AlertKey, KeyState)>, LedgerError> {
        let mut out = Vec::new();
        for KeyStateRow { key, state } in self.ledger.key_states()? {
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
        self.ledger.readings_cursor()
    }

    /// Drop the engine's readings cursor (alerts switched off), so retention does not wait for it.
    pub fn forget_cursor(&self) -> Result<(), LedgerError> {
        self.ledger.forget_cursor()
    }

    /// Committed readings after `after`, in commit order, at most `limit` (catching up after a restart).
    pub fn replay_readings(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ReplayReading>, LedgerError> {
        self.ledger.replay_readings(after, limit)
    }

    /// The newest judging window of every series.
    pub fn current_windows(&self, window_ms: i64) -> Result<Vec<JudgingWindow>, LedgerError> {
        self.ledger.current_windows(window_ms)
    }

    /// Store transitions (alert rows and outbox rows), dirty key states and the cursor in one transaction.
    /// Returns the ids of the alerts the transitions belong to, in order, and the alerts as they now stand.
    pub fn commit(
        &mut self,
        ctx: &Context,
        routed: &[Routed],
        mut dirty: Vec<(AlertKey, KeyState)>,
        readings_pos: Option<i64>,
    ) -> Result<(Vec<i64>, Vec<StoredAlert>), LedgerError> {
        let tx = self.ledger.transaction()?;
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
                (_, None) => {
                    match tx.open_alert(&t.key.station, &t.key.subject, t.key.kind.as_str())? {
                        Some(id) => store_transition(&tx, t, Some(id))?,
                        None => {
                            tracing::warn!(key = %t.key.id(), change = t.change.as_str(), "Alert change without an open alert; skipped.");
                            ids.push(0);
                            continue;
                        }
                    }
                }
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
                tx.queue(&QueuedNotification {
                    alert_id: id,
                    channel: ch,
                    change: t.change.as_str(),
                    payload: &payload,
                    queued,
                })?;
            }
            ids.push(id);
        }
        let now = Timestamp::now().millis();
        for (k, s) in &dirty {
            tx.save_key_state(&key_state_row(k, s), now)?;
        }
        if let Some(pos) = readings_pos {
            tx.set_readings_cursor(pos)?;
        }
        let mut changed = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            if seen.insert(*id) {
                if let Some(a) = tx.alert(*id)? {
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
    ) -> Result<StoredAlert, AckError> {
        let ack = Acknowledgement {
            id,
            who,
            role,
            comment,
            key_state: state.map(|(k, s)| key_state_row(&k, &s)),
        };
        match self.ledger.acknowledge(&ack)? {
            AckOutcome::Acknowledged(a) => Ok(*a),
            AckOutcome::NotFound => Err(AckError::NotFound(id)),
            AckOutcome::NotRaised(state) => Err(AckError::NotRaised { id, state }),
        }
    }
}

fn key_state_row(k: &AlertKey, s: &KeyState) -> KeyStateRow {
    KeyStateRow {
        key: k.id(),
        state: serde_json::to_string(s).unwrap_or_default(),
    }
}

fn store_transition(tx: &AlertTx<'_>, t: &Transition, id: Option<i64>) -> Result<i64, LedgerError> {
    let detail = serde_json::to_string(&t.detail).unwrap_or_default();
    let peak = serde_json::to_string(&t.peak).unwrap_or_default();
    match (t.change, id) {
        (Change::Raised, _) | (_, None) => tx.insert_alert(&NewAlert {
            station: &t.key.station,
            subject: &t.key.subject,
            kind: t.key.kind.as_str(),
            severity: severity_name(t.key.kind.severity()),
            since: t.since,
            at: t.at,
            detail: &detail,
            peak: &peak,
        }),
        (Change::Cleared, Some(id)) => {
            tx.update_alert(
                id,
                &AlertUpdate::Cleared {
                    at: t.at,
                    detail: &detail,
                },
            )?;
            Ok(id)
        }
        (_, Some(id)) => {
            tx.update_alert(
                id,
                &AlertUpdate::Changed {
                    at: t.at,
                    detail: &detail,
                    peak: &peak,
                },
            )?;
            Ok(id)
        }
    }
}

/// One alert as the API and the dashboard show it.
pub fn alert_json(a: &StoredAlert) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    json!({
        "id": a.id, "station": a.station, "parameter": a.subject,
        "kind": a.kind, "severity": a.severity, "state": a.state,
        "since": a.since, "raised": a.raised, "updated": a.updated,
        "cleared": a.cleared, "detail": parse(&a.detail), "peak": parse(&a.peak),
        "notifications": a.notifications, "acked_at": a.acked_at,
        "acked_by": a.acked_by, "ack_comment": a.ack_comment,
    })
}

/// An alert with its deliveries, as `GET /api/alerts` lists it.
pub fn alert_with_deliveries_json(a: &AlertWithDeliveries) -> Value {
    let mut v = alert_json(&a.alert);
    let deliveries = a
        .deliveries
        .iter()
        .map(|x| {
            json!({ "id": x.id, "channel": x.channel, "change": x.change,
                "status": x.status, "attempts": x.attempts, "created": x.created,
                "delivered": x.delivered, "last_error": x.last_error })
        })
        .collect();
    v["deliveries"] = Value::Array(deliveries);
    v
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
        assert_eq!(changed[0].state, "cleared");
        assert_eq!(changed[1].state, "raised");
        let reader = crate::ledger::Reader::open(&path).unwrap();
        let all = crate::ledger::alerts::AlertFilter {
            limit: 100,
            ..Default::default()
        };
        let n: usize = reader
            .alerts(&all)
            .unwrap()
            .iter()
            .map(|a| a.deliveries.len())
            .sum();
        assert_eq!(n, 4);
        assert_eq!(reader.cursor(READINGS_CURSOR).unwrap(), 5);
    }
}
