//! The alert engine's tables (migration 2): alerts, per-key engine state, the outbox and its delivery attempts.
//!
//! The alert runner holds one [`AlertStore`] (a write connection: WAL, busy timeout); each delivery task holds an
//! [`Outbox`]; the API reads alerts through a [`Reader`]. Only the ledger writer writes readings. The engine
//! decides (the alert module); this module stores and reads what it decided, as plain rows.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{open_write, set_cursor, LedgerError, Stream};
use crate::compliance::{Band, Flags};
use crate::config::Synchronous;
use crate::model::{Status, Timestamp};

/// The readings cursor of the alert engine (retention waits for it).
pub const READINGS_CURSOR: &str = "alerts:readings";

/// One alert as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub id: i64,
    /// Empty for daemon-wide alerts (forwarder backlog).
    pub station: String,
    /// Parameter, forwarder name, or empty.
    pub subject: String,
    pub kind: String,
    pub severity: String,
    /// `raised`, `acknowledged` or `cleared`.
    pub state: String,
    /// The first bad observation (Unix ms, UTC, like every time here).
    pub since: i64,
    /// The observation on which it was raised.
    pub raised: i64,
    /// The latest bad observation.
    pub updated: i64,
    /// The observation on which it cleared.
    pub cleared: Option<i64>,
    /// JSON text of the latest observation (and `raised_late`: raised on late data).
    pub detail: String,
    /// JSON text of the worst observation while raised.
    pub peak: String,
    pub notifications: i64,
    pub acked_at: Option<i64>,
    pub acked_by: Option<String>,
    pub ack_comment: Option<String>,
}

impl StoredAlert {
    /// Whether the alert was open at observation time `at` (begun, not yet cleared).
    pub fn covers(&self, at: i64) -> bool {
        self.since <= at && self.cleared.is_none_or(|c| c > at)
    }
}

/// One notification of an alert and how its delivery stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub channel: String,
    pub change: String,
    pub status: String,
    pub attempts: i64,
    pub created: i64,
    pub delivered: Option<i64>,
    pub last_error: Option<String>,
}

/// An alert with its notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertWithDeliveries {
    pub alert: StoredAlert,
    pub deliveries: Vec<Delivery>,
}

/// One alert awaiting its station's late-data summary: the entry and its channels as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct CatchUpRow {
    pub station: String,
    pub alert_id: i64,
    pub entry: String,
    pub channels: String,
}

/// The persisted engine state of one key (`station|subject|kind`), as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyStateRow {
    pub key: String,
    pub state: String,
}

/// A new alert (a raise).
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    pub station: &'a str,
    pub subject: &'a str,
    pub kind: &'a str,
    pub severity: &'a str,
    pub since: i64,
    /// When it was raised (observation time).
    pub at: i64,
    /// The latest bad observation (`updated`).
    pub last_bad: i64,
    pub detail: &'a str,
    pub peak: &'a str,
    /// 1: a raise is a notification (sent on its own, or in a late-data summary).
    pub notifications: i64,
}

/// A later change of an alert.
#[derive(Debug, Clone)]
pub enum AlertUpdate<'a> {
    /// Cleared at observation time `at`, with its final last bad observation and peak.
    Cleared {
        at: i64,
        last_bad: i64,
        detail: &'a str,
        peak: &'a str,
        notifications: i64,
    },
    /// Escalated, re-notified, or only its latest value, peak and last bad observation changed.
    Changed {
        last_bad: i64,
        detail: &'a str,
        peak: &'a str,
        notifications: i64,
    },
}

/// A notification to queue in the outbox.
#[derive(Debug, Clone)]
pub struct QueuedNotification<'a> {
    pub alert_id: i64,
    pub channel: &'a str,
    pub change: &'a str,
    pub payload: &'a str,
    pub queued: i64,
}

/// An acknowledgement of a raised alert, written with its audit row.
#[derive(Debug, Clone)]
pub struct Acknowledgement<'a> {
    pub id: i64,
    pub who: &'a str,
    pub role: &'a str,
    pub comment: &'a str,
    /// The key's engine state after the acknowledgement, when the engine knows the alert.
    pub key_state: Option<KeyStateRow>,
}

/// What an acknowledgement found.
#[derive(Debug, Clone, PartialEq)]
pub enum AckOutcome {
    Acknowledged(Box<StoredAlert>),
    NotFound,
    /// The alert is in this state, not `raised`.
    NotRaised(String),
}

/// A committed reading with its verdict, as the alert engine replays it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReading {
    pub seq: i64,
    /// Shared between the rows of one read (a replay reads thousands of one series).
    pub station: Arc<str>,
    pub parameter: Arc<str>,
    pub ts: i64,
    pub value: f64,
    pub unit: Arc<str>,
    pub status: Status,
    pub band: Band,
    pub ratio: Option<f64>,
    /// (lower bound, upper bound or Cmax).
    pub limit: (Option<f64>, Option<f64>),
    pub flags: Flags,
}

/// The newest judging window of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgingWindow {
    pub station: String,
    pub parameter: String,
    pub window_start: i64,
    pub mean: Option<f64>,
    pub completeness: f64,
    pub ratio: Option<f64>,
    pub band: Band,
    /// The limit the window was judged against, (lower bound, upper bound or Cmax).
    pub limit: (Option<f64>, Option<f64>),
}

/// Texts repeated from row to row (station, parameter, unit), shared rather than copied per row.
#[derive(Default)]
pub(super) struct Shared(Vec<Arc<str>>);

impl Shared {
    pub(super) fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.iter().find(|a| ***a == *s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.0.len() >= 64 {
            self.0.clear();
        }
        self.0.push(a.clone());
        a
    }
}

/// A replayed reading from a row: `seq` in column 0, then from column `at`: ts, value, unit, status, limit_low,
/// limit_high, ratio, band, flags.
pub(super) fn replay_row(
    r: &rusqlite::Row<'_>,
    at: usize,
    (station, parameter): (Arc<str>, Arc<str>),
    shared: &mut Shared,
) -> rusqlite::Result<ReplayReading> {
    Ok(ReplayReading {
        seq: r.get(0)?,
        station,
        parameter,
        ts: r.get(at)?,
        value: r.get(at + 1)?,
        unit: shared.get(text(r, at + 2)?),
        status: Status::from_u8(r.get::<_, u8>(at + 3)?).unwrap_or(Status::Fault),
        limit: (r.get(at + 4)?, r.get(at + 5)?),
        ratio: r.get(at + 6)?,
        band: Band::parse(text(r, at + 7)?).unwrap_or(Band::NotEvaluated),
        flags: Flags(r.get::<_, u32>(at + 8)?),
    })
}

/// Column `i` as text, borrowed from the row.
fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    Ok(r.get_ref(i)?.as_str()?)
}

/// The alert store's SQLite page cache, KiB (it counts in the daemon's resident size once filled).
const ALERT_CACHE_KIB: i64 = 8 * 1024;

/// The alert runner's write connection.
pub struct AlertStore {
    pub(super) conn: Connection,
}

impl AlertStore {
    /// Commits as durable as the ledger's (`synchronous`): the alert state is re-derived from the readings, so
    /// it needs no more than they have.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<AlertStore, LedgerError> {
        let conn = open_write(path)?;
        super::set_synchronous(&conn, synchronous)?;
        // Re-deriving reads series of readings back and forth: SQLite's default 2 MB cache sent most of those reads
        // to the operating system.
        conn.pragma_update(None, "cache_size", -ALERT_CACHE_KIB)?;
        // The ledger writer's background thread checkpoints; SQLite's automatic one (at 1,000 pages) ran inside the
        // alert runner's commits. Kept as the same safety net as the writer's.
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            super::checkpointer::SAFETY_NET_PAGES,
        )?;
        Ok(AlertStore { conn })
    }

    /// Every catch-up entry not yet summarised.
    pub fn catch_ups(&self) -> Result<Vec<CatchUpRow>, LedgerError> {
        let mut st = self.conn.prepare(
            "SELECT station, alert_id, entry, channels FROM catch_ups ORDER BY station, alert_id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(CatchUpRow {
                station: r.get(0)?,
                alert_id: r.get(1)?,
                entry: r.get(2)?,
                channels: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest reading time each series has fed its keys: (station, parameter, time).
    pub fn series_newest(&self) -> Result<Vec<(String, String, i64)>, LedgerError> {
        let mut st = self
            .conn
            .prepare("SELECT station, parameter, newest FROM alert_series")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every persisted key state.
    pub fn key_states(&self) -> Result<Vec<KeyStateRow>, LedgerError> {
        let mut st = self.conn.prepare("SELECT key, state FROM alert_keys")?;
        let rows = st.query_map([], |r| {
            Ok(KeyStateRow {
                key: r.get(0)?,
                state: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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
                set_cursor(&self.conn, READINGS_CURSOR, Stream::Readings, top)?;
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

    /// Begin a read transaction: the queries until [`AlertStore::end_read`] share one snapshot and one WAL read
    /// lock instead of taking and dropping one per statement (most of a short query's cost). It does not hold up
    /// the ledger's writer. Only reads belong in it.
    pub fn begin_read(&self) -> Result<(), LedgerError> {
        Ok(self.conn.execute_batch("BEGIN")?)
    }

    /// End the read transaction [`AlertStore::begin_read`] began (nothing was written: nothing can be lost).
    pub fn end_read(&self) -> Result<(), LedgerError> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }

    /// Start a write transaction (IMMEDIATE: it reads before it writes; see `Ledger::commit`).
    pub fn transaction(&mut self) -> Result<AlertTx<'_>, LedgerError> {
        Ok(AlertTx {
            tx: self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?,
        })
    }

    /// Acknowledge a raised alert with a comment, write the audit row and the key's state, in one transaction.
    pub fn acknowledge(&mut self, a: &Acknowledgement<'_>) -> Result<AckOutcome, LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: Option<String> = tx
            .query_row("SELECT state FROM alerts WHERE id = ?1", [a.id], |r| {
                r.get(0)
            })
            .optional()?;
        match current.as_deref() {
            None => return Ok(AckOutcome::NotFound),
            Some("raised") => {}
            Some(other) => return Ok(AckOutcome::NotRaised(other.to_string())),
        }
        let now = Timestamp::now().millis();
        tx.execute(
            "UPDATE alerts SET state = 'acknowledged', acked_at = ?2, acked_by = ?3, ack_comment = ?4 WHERE id = ?1",
            params![a.id, now, a.who, a.comment],
        )?;
        super::audit::insert(
            &tx,
            &super::audit::AuditEntry {
                at: now,
                who: a.who,
                role: a.role,
                action: &format!("POST /api/alerts/{}/ack", a.id),
                detail: a.comment,
            },
        )?;
        if let Some(k) = &a.key_state {
            save_key_state(&tx, k, now)?;
        }
        let Some(stored) = alert(&tx, a.id)? else {
            return Ok(AckOutcome::NotFound);
        };
        tx.commit()?;
        Ok(AckOutcome::Acknowledged(Box::new(stored)))
    }

    /// Stored readings re-flagged by the arrival of readings committed in `(after, until]`.
    pub fn flag_revisions(
        &self,
        after: i64,
        until: i64,
    ) -> Result<Vec<super::quality::FlagRevision>, LedgerError> {
        super::quality::revisions_caused(&self.conn, after, until)
    }

    /// Committed readings after `after` with their verdicts, in commit order, at most `limit`.
    pub fn replay_readings(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ReplayReading>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT r.seq, s.code, p.symbol, r.ts, r.value, r.unit, r.status, r.limit_low, r.limit_high, r.ratio, r.band, r.flags \
             FROM readings r JOIN stations s ON s.id = r.station_id JOIN parameters p ON p.id = r.parameter_id \
             WHERE r.seq > ?1 ORDER BY r.seq LIMIT ?2",
        )?;
        let mut shared = Shared::default();
        let mut rows = st.query(params![after, limit])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let station = shared.get(text(r, 1)?);
            let parameter = shared.get(text(r, 2)?);
            out.push(replay_row(r, 3, (station, parameter), &mut shared)?);
        }
        Ok(out)
    }

    /// The newest window of length `window_ms` of every series, with its judged band (`not_evaluated` while it is
    /// only a forecast).
    pub fn current_windows(&self, window_ms: i64) -> Result<Vec<JudgingWindow>, LedgerError> {
        let mut st = self.conn.prepare(
            "SELECT s.code, p.symbol, a.window_start, a.mean, a.completeness, \
             CASE WHEN a.verdict IS NOT NULL THEN a.verdict_ratio WHEN a.pending THEN NULL ELSE a.ratio END, \
             CASE WHEN a.verdict IS NOT NULL THEN a.verdict WHEN a.pending THEN 'not_evaluated' ELSE a.band END, \
             a.limit_low, a.limit_high \
             FROM aggregates a \
             JOIN stations s ON s.id = a.station_id JOIN parameters p ON p.id = a.parameter_id \
             WHERE a.window_ms = ?1 AND a.window_start = (SELECT MAX(b.window_start) FROM aggregates b \
             WHERE b.station_id = a.station_id AND b.parameter_id = a.parameter_id AND b.window_ms = ?1)",
        )?;
        let rows = st.query_map([window_ms], |r| {
            Ok(JudgingWindow {
                station: r.get(0)?,
                parameter: r.get(1)?,
                window_start: r.get(2)?,
                mean: r.get(3)?,
                completeness: r.get(4)?,
                ratio: r.get(5)?,
                band: Band::parse(&r.get::<_, String>(6)?).unwrap_or(Band::NotEvaluated),
                limit: (r.get(7)?, r.get(8)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// One write transaction of the alert runner: alert rows, outbox rows, key states and the cursor together.
/// Dropped without [`AlertTx::commit`], it rolls back.
pub struct AlertTx<'c> {
    pub(super) tx: Transaction<'c>,
}

impl AlertTx<'_> {
    /// The newest open (raised or acknowledged) alert of a key.
    pub fn open_alert(
        &self,
        station: &str,
        subject: &str,
        kind: &str,
    ) -> Result<Option<i64>, LedgerError> {
        Ok(self
            .tx
            .query_row(
                "SELECT MAX(id) FROM alerts WHERE station = ?1 AND subject = ?2 AND kind = ?3 AND state IN ('raised', 'acknowledged')",
                params![station, subject, kind],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Store a raised alert; returns its id.
    pub fn insert_alert(&self, a: &NewAlert<'_>) -> Result<i64, LedgerError> {
        self.tx
            .prepare_cached(
                "INSERT INTO alerts (station, subject, kind, severity, state, since, raised, updated, detail, peak, notifications) \
                 VALUES (?1, ?2, ?3, ?4, 'raised', ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                a.station,
                a.subject,
                a.kind,
                a.severity,
                a.since,
                a.at,
                a.last_bad,
                a.detail,
                a.peak,
                a.notifications
            ])?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Store a later change of alert `id`.
    pub fn update_alert(&self, id: i64, u: &AlertUpdate<'_>) -> Result<(), LedgerError> {
        match u {
            AlertUpdate::Cleared {
                at,
                last_bad,
                detail,
                peak,
                notifications,
            } => {
                self.tx
                    .prepare_cached(
                        "UPDATE alerts SET state = 'cleared', cleared = ?2, updated = MAX(updated, ?3), detail = ?4, \
                         peak = ?5, notifications = notifications + ?6 WHERE id = ?1",
                    )?
                    .execute(params![id, at, last_bad, detail, peak, notifications])?;
            }
            AlertUpdate::Changed {
                last_bad,
                detail,
                peak,
                notifications,
            } => {
                self.tx
                    .prepare_cached(
                        "UPDATE alerts SET updated = MAX(updated, ?2), detail = ?3, peak = ?4, notifications = notifications + ?5 WHERE id = ?1",
                    )?
                    .execute(params![id, last_bad, detail, peak, notifications])?;
            }
        }
        Ok(())
    }

    /// Queue a notification (pending, due at once).
    pub fn queue(&self, n: &QueuedNotification<'_>) -> Result<(), LedgerError> {
        self.tx
            .prepare_cached(
                "INSERT INTO outbox (alert_id, channel, change, payload, created, status, attempts, next_attempt) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?5)",
            )?
            .execute(params![n.alert_id, n.channel, n.change, n.payload, n.queued])?;
        Ok(())
    }

    /// Store (or replace) catch-up entries.
    pub fn save_catch_up(&self, rows: &[CatchUpRow]) -> Result<(), LedgerError> {
        for r in rows {
            self.tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO catch_ups (station, alert_id, entry, channels) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![r.station, r.alert_id, r.entry, r.channels])?;
        }
        Ok(())
    }

    /// Forget a station's catch-up: its summary was queued.
    pub fn clear_catch_up(&self, station: &str) -> Result<(), LedgerError> {
        self.tx
            .prepare_cached("DELETE FROM catch_ups WHERE station = ?1")?
            .execute([station])?;
        Ok(())
    }

    /// Store a key's engine state.
    pub fn save_key_state(&self, k: &KeyStateRow, now: i64) -> Result<(), LedgerError> {
        save_key_state(&self.tx, k, now)
    }

    /// The newest reading time a series has fed its keys (it only moves forward).
    pub fn save_series_newest(
        &self,
        station: &str,
        parameter: &str,
        newest: i64,
    ) -> Result<(), LedgerError> {
        self.tx
            .prepare_cached(
                "INSERT INTO alert_series (station, parameter, newest) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(station, parameter) DO UPDATE SET newest = MAX(newest, excluded.newest)",
            )?
            .execute(params![station, parameter, newest])?;
        Ok(())
    }

    /// Move the engine's readings cursor.
    pub fn set_readings_cursor(&self, position: i64) -> Result<(), LedgerError> {
        set_cursor(&self.tx, READINGS_CURSOR, Stream::Readings, position)
    }

    /// One alert as it stands inside this transaction.
    pub fn alert(&self, id: i64) -> Result<Option<StoredAlert>, LedgerError> {
        alert(&self.tx, id)
    }

    pub fn commit(self) -> Result<(), LedgerError> {
        Ok(self.tx.commit()?)
    }
}

fn save_key_state(conn: &Connection, k: &KeyStateRow, now: i64) -> Result<(), LedgerError> {
    conn.prepare_cached(
        "INSERT INTO alert_keys (key, state, updated) VALUES (?1, ?2, ?3) \
         ON CONFLICT(key) DO UPDATE SET state = excluded.state, updated = excluded.updated",
    )?
    .execute(params![k.key, k.state, now])?;
    Ok(())
}

pub(super) const ALERT_COLUMNS: &str =
    "id, station, subject, kind, severity, state, since, raised, updated, cleared, detail, peak, \
     notifications, acked_at, acked_by, ack_comment";

pub(super) fn stored_alert(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAlert> {
    Ok(StoredAlert {
        id: r.get(0)?,
        station: r.get(1)?,
        subject: r.get(2)?,
        kind: r.get(3)?,
        severity: r.get(4)?,
        state: r.get(5)?,
        since: r.get(6)?,
        raised: r.get(7)?,
        updated: r.get(8)?,
        cleared: r.get(9)?,
        detail: r.get(10)?,
        peak: r.get(11)?,
        notifications: r.get(12)?,
        acked_at: r.get(13)?,
        acked_by: r.get(14)?,
        ack_comment: r.get(15)?,
    })
}

fn alert(conn: &Connection, id: i64) -> Result<Option<StoredAlert>, LedgerError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"))?
        .query_row([id], stored_alert)
        .optional()?)
}

/// A pending notification, the next one of its channel.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingNotification {
    pub id: i64,
    pub payload: String,
    pub attempts: i64,
    pub created: i64,
    pub next_attempt: i64,
}

/// Where a notification stands after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    Pending,
    Delivered,
    /// Given up or refused by the recipient.
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Failed => "failed",
        }
    }
}

/// One delivery attempt and the notification's new state.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub outbox_id: i64,
    pub at: i64,
    pub duration_ms: i64,
    /// `None` when delivered.
    pub error: Option<String>,
    pub status: OutboxStatus,
    pub next_attempt: i64,
}

/// A delivery task's write connection to the outbox.
pub struct Outbox {
    conn: Connection,
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Outbox, LedgerError> {
        Ok(Outbox {
            conn: open_write(path)?,
        })
    }

    /// The oldest pending notification of `channel`.
    pub fn next_pending(&self, channel: &str) -> Result<Option<PendingNotification>, LedgerError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, payload, attempts, created, next_attempt FROM outbox WHERE channel = ?1 AND status = 'pending' \
                 ORDER BY id LIMIT 1",
            )?
            .query_row([channel], |r| {
                Ok(PendingNotification {
                    id: r.get(0)?,
                    payload: r.get(1)?,
                    attempts: r.get(2)?,
                    created: r.get(3)?,
                    next_attempt: r.get(4)?,
                })
            })
            .optional()?)
    }

    /// Record one attempt and the notification's new status in one transaction.
    pub fn record(&mut self, a: &Attempt) -> Result<(), LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO outbox_attempts (outbox_id, at, duration_ms, ok, error) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![a.outbox_id, a.at, a.duration_ms, a.error.is_none() as i64, a.error],
        )?;
        tx.execute(
            "UPDATE outbox SET attempts = attempts + 1, status = ?2, next_attempt = ?3, last_error = ?4, \
             delivered = CASE WHEN ?2 = 'delivered' THEN ?5 ELSE delivered END WHERE id = ?1",
            params![
                a.outbox_id,
                a.status.as_str(),
                a.next_attempt,
                a.error,
                a.at + a.duration_ms
            ],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// Every outbox row as (alert id, channel, change, payload), oldest first: what tests check was queued.
#[cfg(test)]
pub(crate) fn outbox_rows(path: &Path) -> Result<Vec<(i64, String, String, String)>, LedgerError> {
    let conn = Connection::open(path)?;
    let mut st =
        conn.prepare("SELECT alert_id, channel, change, payload FROM outbox ORDER BY id")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
