//! Delivery from the outbox: one task per channel takes that channel's pending rows in order, sends each under the
//! channel's timeout, records every attempt, and on failure waits (capped exponential backoff with jitter) before
//! trying the same row again (rows go in order: a retained MQTT state or a "cleared" must not overtake its "raised").
//! A channel that is down only holds up its own rows. A row still undelivered after `give_up_after`, or refused by
//! the recipient itself (webhook 4xx, SMTP 5xx), is marked failed (an ERROR in the log: someone was not told). At start the task resumes the
//! pending rows; delivered rows are never sent again.
//!
//! Delivery is at least once: a crash between a successful send and its record sends that row again at restart;
//! receivers can drop it by its delivery id (`X-Quantrac-Delivery`).

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::message::Notification;
use super::notify::{Failure, Sender};
use crate::config::alert::Channel;
use crate::ledger::LedgerError;
use crate::model::Timestamp;

/// One pending row.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    payload: String,
    attempts: i64,
    created: i64,
    next_attempt: i64,
}

/// Retry settings.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub base: Duration,
    pub max_backoff: Duration,
    pub give_up_after: Duration,
}

/// Delay before attempt `attempts + 1`: random in [ceiling/2, ceiling], ceiling = min(cap, base × 2^attempts).
pub fn backoff(r: &Retry, attempts: i64) -> Duration {
    let ceiling = r
        .base
        .saturating_mul(1u32 << attempts.clamp(0, 16))
        .min(r.max_backoff);
    let half = ceiling / 2;
    half + half.mul_f64(fastrand::f64())
}

fn next_row(conn: &Connection, channel: &str) -> Result<Option<Row>, LedgerError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, payload, attempts, created, next_attempt FROM outbox WHERE channel = ?1 AND status = 'pending' \
             ORDER BY id LIMIT 1",
        )?
        .query_row([channel], |r| {
            Ok(Row {
                id: r.get(0)?,
                payload: r.get(1)?,
                attempts: r.get(2)?,
                created: r.get(3)?,
                next_attempt: r.get(4)?,
            })
        })
        .optional()?)
}

/// Record one attempt and the row's new status in one transaction.
fn record(
    conn: &mut Connection,
    id: i64,
    at: i64,
    duration_ms: i64,
    outcome: &Result<(), Failure>,
    status: &str,
    next_attempt: i64,
) -> Result<(), LedgerError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let error = outcome.as_ref().err().map(|f| f.message.clone());
    tx.execute(
        "INSERT INTO outbox_attempts (outbox_id, at, duration_ms, ok, error) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, at, duration_ms, outcome.is_ok() as i64, error],
    )?;
    tx.execute(
        "UPDATE outbox SET attempts = attempts + 1, status = ?2, next_attempt = ?3, last_error = ?4, \
         delivered = CASE WHEN ?2 = 'delivered' THEN ?5 ELSE delivered END WHERE id = ?1",
        params![id, status, next_attempt, error, at + duration_ms],
    )?;
    tx.commit()?;
    Ok(())
}

async fn blocking<T: Send + 'static>(
    conn: &Arc<Mutex<Connection>>,
    f: impl FnOnce(&mut Connection) -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, LedgerError> {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut c)
    })
    .await
    .unwrap_or_else(|e| {
        Err(LedgerError::Sqlite(rusqlite::Error::InvalidParameterName(
            format!("the blocking task failed: {e}"),
        )))
    })
}

/// Deliver `channel`'s rows until `shutdown`. `wake` is notified when new rows are queued.
pub async fn run(
    channel: Channel,
    sender: Sender,
    ledger: PathBuf,
    wake: Arc<Notify>,
    retry: Retry,
    metrics: Arc<super::AlertMetrics>,
    shutdown: CancellationToken,
) {
    let conn = match Connection::open(&ledger).and_then(|c| {
        c.busy_timeout(Duration::from_secs(10))?;
        Ok(c)
    }) {
        Ok(c) => Arc::new(Mutex::new(c)),
        Err(e) => {
            error!(channel = %channel.name, error = %e, "Cannot open the ledger for alert delivery; notifications stay queued.");
            return;
        }
    };
    let kind = channel.kind.as_str();
    let name = channel.name.clone();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let n = name.clone();
        let row = match blocking(&conn, move |c| next_row(c, &n)).await {
            Ok(r) => r,
            Err(e) => {
                warn!(channel = %name, error = %e, "Reading the outbox failed; retrying.");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let Some(row) = row else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => continue,
                // A safety net: rows queued by another process (none today) or a lost wake-up.
                _ = tokio::time::sleep(Duration::from_secs(30)) => continue,
            }
        };
        let now = Timestamp::now().millis();
        if row.next_attempt > now {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis((row.next_attempt - now) as u64)) => continue,
            }
        }
        let notification: Notification = match serde_json::from_str(&row.payload) {
            Ok(n) => n,
            Err(e) => {
                error!(channel = %name, outbox = row.id, error = %e, "Outbox row is not a notification; marking it failed.");
                let outcome = Err(Failure::permanent(format!("payload not understood: {e}")));
                let _ = blocking(&conn, move |c| {
                    record(c, row.id, now, 0, &outcome, "failed", now)
                })
                .await;
                continue;
            }
        };
        let started = std::time::Instant::now();
        let outcome = match tokio::time::timeout(
            channel.timeout,
            sender.send(row.id, &notification, &row.payload),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(Failure::transient(format!(
                "no answer within {}",
                humantime::format_duration(channel.timeout)
            ))),
        };
        let duration_ms = started.elapsed().as_millis() as i64;
        let (status, next_attempt) = match &outcome {
            Ok(()) => {
                metrics.delivered(kind);
                ("delivered", now)
            }
            Err(e) => {
                metrics.failed(kind);
                let delay = backoff(&retry, row.attempts);
                if e.permanent {
                    metrics.given_up.fetch_add(1, Relaxed);
                    error!(channel = %name, outbox = row.id, alert = notification.alert_id, error = %e,
                        "Alert notification refused by the recipient; not retried (fix the channel and resend by hand).");
                    ("failed", now)
                } else if now - row.created > retry.give_up_after.as_millis() as i64 {
                    metrics.given_up.fetch_add(1, Relaxed);
                    error!(channel = %name, outbox = row.id, alert = notification.alert_id, attempts = row.attempts + 1, error = %e,
                        "Alert notification given up: it could not be delivered in time.");
                    ("failed", now)
                } else {
                    warn!(channel = %name, outbox = row.id, alert = notification.alert_id, attempt = row.attempts + 1, error = %e,
                        retry_in = %humantime::format_duration(Duration::from_millis(delay.as_millis() as u64)),
                        "Alert notification not delivered; will retry.");
                    ("pending", now + delay.as_millis() as i64)
                }
            }
        };
        if let Err(e) = blocking(&conn, move |c| {
            record(c, row.id, now, duration_ms, &outcome, status, next_attempt)
        })
        .await
        {
            // The send happened but is not recorded: it will be sent again (at least once).
            warn!(channel = %name, outbox = row.id, error = %e, "Recording a delivery attempt failed.");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_with_jitter() {
        let r = Retry {
            base: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
        };
        let first = backoff(&r, 0);
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
        for a in 0..40 {
            assert!(backoff(&r, a) <= Duration::from_secs(60));
        }
        assert!(backoff(&r, 30) >= Duration::from_secs(30));
    }
}
