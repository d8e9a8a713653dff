//! What the alarm list reads (`GET /api/alerts`, `GET /api/alerts/{id}/history`): alerts of every plant by
//! station, subject, kind, severity, state and time, a page at a time with the number that match; one alert's
//! deliveries with their attempts and the re-derivations that rewrote, added or withdrew it; open alerts per plant.
//! Rows only: the HTTP layer checks the parameters and shapes the answers.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};

use super::alerts::{stored_alert, AlertWithDeliveries, Delivery, StoredAlert, ALERT_COLUMNS};
use super::{LedgerError, Reader};

/// Filter of the alert list (`GET /api/alerts`). Every field left `None` matches all.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub station: Option<String>,
    /// Only alerts of stations matching one of these patterns (`None`: all, also those of no station).
    pub station_globs: Option<Vec<String>>,
    /// The alert's subject: a parameter (`COD`), a check on one (`COD:completeness`), a forwarder's name.
    pub subject: Option<String>,
    pub kind: Option<String>,
    /// `technical`, `warning` or `violation`.
    pub severity: Option<String>,
    /// `raised`, `acknowledged`, `cleared`, `withdrawn`, or `open` (raised or acknowledged).
    pub state: Option<String>,
    /// Alerts that were active at some time in `[from, to)` (Unix ms): began before `to`, and cleared (or, while
    /// open, last observed bad) at or after `from`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Alerts with an id below this (the `next_before` of the previous page); newest first.
    pub before: Option<i64>,
    pub limit: i64,
}

/// The filter's conditions; `?1`–`?7` are station, subject, kind, severity, state, from, to; `?8` the station
/// patterns (see `query::in_globs`, here written out: a `const` cannot call it).
const MATCHES: &str = "(?1 IS NULL OR station = ?1) \
     AND (?8 IS NULL OR EXISTS (SELECT 1 FROM json_each(?8) g WHERE station GLOB g.value)) \
     AND (?2 IS NULL OR subject = ?2) AND (?3 IS NULL OR kind = ?3) \
     AND (?4 IS NULL OR severity = ?4) \
     AND (?5 IS NULL OR state = ?5 OR (?5 = 'open' AND state IN ('raised', 'acknowledged'))) \
     AND (?6 IS NULL OR COALESCE(cleared, updated) >= ?6) AND (?7 IS NULL OR since < ?7)";

/// One delivery attempt of a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub at: i64,
    pub duration_ms: i64,
    pub ok: bool,
    pub error: Option<String>,
}

/// A notification of the alert with each attempt to deliver it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryHistory {
    pub delivery: Delivery,
    pub attempts: Vec<DeliveryAttempt>,
}

/// A re-derivation of the alert's key that held this alert before or after it (`alert_revisions`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRevisionRow {
    pub id: i64,
    /// The history re-derived: observations after this quiet one (`None`: all).
    pub span_after: Option<i64>,
    /// JSON text: the alerts the span held before, and what in-order arrival made of it.
    pub old_alerts: String,
    pub new_alerts: String,
    pub reason: String,
    /// When (wall clock, Unix ms).
    pub changed: i64,
}

/// One alert, its notifications and its revisions, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertHistory {
    pub alert: StoredAlert,
    pub deliveries: Vec<DeliveryHistory>,
    pub revisions: Vec<AlertRevisionRow>,
}

/// A plant's open (raised or acknowledged) alerts: how many, and since when the oldest condition began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenAlerts {
    pub count: i64,
    pub since: i64,
}

impl Reader {
    /// Alerts newest first, each with its notifications.
    pub fn alerts(&self, f: &AlertFilter) -> Result<Vec<AlertWithDeliveries>, LedgerError> {
        let conn = self.connection();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE {MATCHES} AND (?9 IS NULL OR id < ?9) ORDER BY id DESC LIMIT ?10"
        ))?;
        let globs = super::query::globs_param(&f.station_globs);
        let rows = st.query_map(
            params![
                f.station, f.subject, f.kind, f.severity, f.state, f.from, f.to, globs, f.before,
                f.limit
            ],
            stored_alert,
        )?;
        let alerts = rows.collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let deliveries = self.deliveries(alert.id)?;
            out.push(AlertWithDeliveries { alert, deliveries });
        }
        Ok(out)
    }

    /// How many alerts match the filter (`before` and `limit` aside): the size of the whole list.
    pub fn alert_count(&self, f: &AlertFilter) -> Result<i64, LedgerError> {
        Ok(self
            .connection()
            .prepare_cached(&format!("SELECT COUNT(*) FROM alerts WHERE {MATCHES}"))?
            .query_row(
                params![
                    f.station,
                    f.subject,
                    f.kind,
                    f.severity,
                    f.state,
                    f.from,
                    f.to,
                    super::query::globs_param(&f.station_globs)
                ],
                |r| r.get(0),
            )?)
    }

    /// The notifications of one alert, oldest first.
    fn deliveries(&self, alert_id: i64) -> Result<Vec<Delivery>, LedgerError> {
        let mut d = self.connection().prepare_cached(
            "SELECT id, channel, change, status, attempts, created, delivered, last_error FROM outbox WHERE alert_id = ?1 ORDER BY id",
        )?;
        let rows = d.query_map([alert_id], |x| {
            Ok(Delivery {
                id: x.get(0)?,
                channel: x.get(1)?,
                change: x.get(2)?,
                status: x.get(3)?,
                attempts: x.get(4)?,
                created: x.get(5)?,
                delivered: x.get(6)?,
                last_error: x.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One alert's history (`None` when there is no such alert).
    pub fn alert_history(&self, id: i64) -> Result<Option<AlertHistory>, LedgerError> {
        let conn = self.connection();
        let Some(alert) = conn
            .query_row(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
                [id],
                stored_alert,
            )
            .optional()?
        else {
            return Ok(None);
        };
        let mut attempts = conn.prepare_cached(
            "SELECT at, duration_ms, ok, error FROM outbox_attempts WHERE outbox_id = ?1 ORDER BY id",
        )?;
        let mut deliveries = Vec::new();
        for delivery in self.deliveries(id)? {
            let rows = attempts.query_map([delivery.id], |r| {
                Ok(DeliveryAttempt {
                    at: r.get(0)?,
                    duration_ms: r.get(1)?,
                    ok: r.get::<_, i64>(2)? != 0,
                    error: r.get(3)?,
                })
            })?;
            let attempts = rows.collect::<Result<_, _>>()?;
            deliveries.push(DeliveryHistory { delivery, attempts });
        }
        let revisions = self.key_revisions(&alert)?;
        Ok(Some(AlertHistory {
            alert,
            deliveries,
            revisions,
        }))
    }

    /// The re-derivations of the alert's key that held this alert: before (its id among the old alerts) or after
    /// (an episode that began and was raised when it was).
    fn key_revisions(&self, a: &StoredAlert) -> Result<Vec<AlertRevisionRow>, LedgerError> {
        let mut st = self.connection().prepare_cached(
            "SELECT id, span_after, old_alerts, new_alerts, reason, changed FROM alert_revisions \
             WHERE station = ?1 AND subject = ?2 AND kind = ?3 ORDER BY id",
        )?;
        let rows = st.query_map(params![a.station, a.subject, a.kind], |r| {
            Ok(AlertRevisionRow {
                id: r.get(0)?,
                span_after: r.get(1)?,
                old_alerts: r.get(2)?,
                new_alerts: r.get(3)?,
                reason: r.get(4)?,
                changed: r.get(5)?,
            })
        })?;
        let all: Vec<AlertRevisionRow> = rows.collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|r| holds(r, a)).collect())
    }

    /// Open alerts per station: how many and the oldest `since`.
    pub fn open_alerts_by_station(&self) -> Result<HashMap<String, OpenAlerts>, LedgerError> {
        let mut st = self.connection().prepare_cached(
            "SELECT station, COUNT(*), MIN(since) FROM alerts WHERE state IN ('raised', 'acknowledged') GROUP BY station",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                OpenAlerts {
                    count: r.get(1)?,
                    since: r.get(2)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Whether a revision held the alert: its id in the old list, or a new episode with its `since` and `raised`.
fn holds(r: &AlertRevisionRow, a: &StoredAlert) -> bool {
    let list = |text: &str| -> Vec<serde_json::Value> {
        serde_json::from_str::<Vec<serde_json::Value>>(text).unwrap_or_default()
    };
    list(&r.old_alerts).iter().any(|x| x["id"] == a.id)
        || list(&r.new_alerts)
            .iter()
            .any(|x| x["since"] == a.since && x["raised"] == a.raised)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::alert_history::{AlertRevision, KeyRef};
    use crate::ledger::alerts::{AlertStore, AlertUpdate, NewAlert, QueuedNotification};

    /// (station, subject, kind, severity, since, cleared) of the alerts written by [`ledger`], in id order.
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        i64,
        Option<i64>,
    );
    const ROWS: [Row; 5] = [
        ("A", "COD", "exceedance", "warning", 1_000, Some(2_000)),
        ("A", "COD", "violation", "violation", 1_500, None),
        ("B", "TSS", "exceedance", "warning", 3_000, None),
        ("B", "", "silent", "technical", 4_000, Some(5_000)),
        ("A", "COD", "exceedance", "warning", 6_000, None),
    ];

    /// A ledger holding [`ROWS`]; the fourth is then withdrawn by a revision that also rewrote the fifth.
    fn ledger(dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("l.db");
        drop(crate::ledger::Ledger::open(&path, crate::config::Synchronous::Normal).unwrap());
        let mut store = AlertStore::open(&path, crate::config::Synchronous::Full).unwrap();
        let tx = store.transaction().unwrap();
        for (station, subject, kind, severity, since, cleared) in ROWS {
            let id = tx
                .insert_alert(&NewAlert {
                    station,
                    subject,
                    kind,
                    severity,
                    since,
                    at: since,
                    last_bad: since,
                    detail: "{}",
                    peak: "{}",
                    notifications: 1,
                })
                .unwrap();
            if let Some(at) = cleared {
                let u = AlertUpdate::Cleared {
                    at,
                    last_bad: since,
                    detail: "{}",
                    peak: "{}",
                    notifications: 1,
                };
                tx.update_alert(id, &u).unwrap();
            }
            tx.queue(&QueuedNotification {
                alert_id: id,
                channel: "mail",
                change: "raised",
                payload: "{}",
                queued: since,
            })
            .unwrap();
        }
        tx.withdraw_alert(4).unwrap();
        let old = r#"[{"id": 5, "state": "raised", "since": 5500, "raised": 5500}]"#;
        let new = r#"[{"since": 6000, "raised": 6000, "last_bad": 6000, "cleared": null}]"#;
        tx.record_alert_revision(&AlertRevision {
            key: KeyRef {
                station: "A",
                subject: "COD",
                kind: "exceedance",
            },
            span_after: None,
            old_alerts: old,
            new_alerts: new,
            reason: "late",
            changed: 9_000,
        })
        .unwrap();
        tx.commit().unwrap();
        path
    }

    fn ids(r: &Reader, f: AlertFilter) -> Vec<i64> {
        let f = AlertFilter {
            limit: if f.limit == 0 { 100 } else { f.limit },
            ..f
        };
        let listed: Vec<i64> = r.alerts(&f).unwrap().iter().map(|a| a.alert.id).collect();
        if f.before.is_none() && listed.len() < f.limit as usize {
            assert_eq!(r.alert_count(&f).unwrap(), listed.len() as i64);
        }
        listed
    }

    #[test]
    fn filters_paging_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reader::open(&ledger(dir.path())).unwrap();
        let s = |v: &str| Some(v.to_string());
        assert_eq!(ids(&r, AlertFilter::default()), [5, 4, 3, 2, 1]);
        let a = AlertFilter {
            station: s("A"),
            ..Default::default()
        };
        assert_eq!(ids(&r, a), [5, 2, 1]);
        let kind = AlertFilter {
            kind: s("exceedance"),
            subject: s("COD"),
            ..Default::default()
        };
        assert_eq!(ids(&r, kind), [5, 1]);
        let sev = AlertFilter {
            severity: s("technical"),
            ..Default::default()
        };
        assert_eq!(ids(&r, sev), [4]);
        let state = |v| AlertFilter {
            state: s(v),
            ..Default::default()
        };
        assert_eq!(ids(&r, state("open")), [5, 3, 2]);
        assert_eq!(ids(&r, state("withdrawn")), [4]);
        assert_eq!(ids(&r, state("cleared")), [1]);
        // Active at some time in [2500, 4500): 1 cleared at 2000, 2 (open) last bad at 1500, 5 began at 6000.
        let range = |from, to| AlertFilter {
            from: Some(from),
            to: Some(to),
            ..Default::default()
        };
        assert_eq!(ids(&r, range(2_500, 4_500)), [4, 3]);
        assert_eq!(ids(&r, range(1_500, 1_501)), [2, 1]);
        // Pages of two follow `before`; the count stays the whole list's.
        let page = |before| AlertFilter {
            before,
            limit: 2,
            ..Default::default()
        };
        assert_eq!(ids(&r, page(None)), [5, 4]);
        assert_eq!(ids(&r, page(Some(4))), [3, 2]);
        assert_eq!(ids(&r, page(Some(2))), [1]);
        assert_eq!(r.alert_count(&page(Some(2))).unwrap(), 5);
    }

    #[test]
    fn history_lists_deliveries_and_the_revisions_that_held_the_alert() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reader::open(&ledger(dir.path())).unwrap();
        let h = r.alert_history(5).unwrap().unwrap();
        assert_eq!(h.alert.id, 5);
        assert_eq!(h.deliveries.len(), 1);
        assert_eq!(h.deliveries[0].delivery.channel, "mail");
        assert!(h.deliveries[0].attempts.is_empty());
        assert_eq!(h.revisions.len(), 1);
        assert_eq!(h.revisions[0].reason, "late");
        // Same key, not held by the revision (neither its id nor its since and raised).
        assert!(r.alert_history(1).unwrap().unwrap().revisions.is_empty());
        assert!(r.alert_history(99).unwrap().is_none());
        let open = r.open_alerts_by_station().unwrap();
        assert_eq!(
            open["A"],
            OpenAlerts {
                count: 2,
                since: 1_500
            }
        );
        assert_eq!(
            open["B"],
            OpenAlerts {
                count: 1,
                since: 3_000
            }
        );
    }
}
