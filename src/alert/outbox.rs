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
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::channels::{Failure, Sender};
use super::message::Notification;
use crate::config::alert::Channel;
use crate::ledger::alerts::{Attempt, Outbox, OutboxStatus};
use crate::ledger::Held;
use crate::model::Timestamp;

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

/// The attempt to record for `outcome`.
fn attempt(
    id: i64,
    at: i64,
    duration_ms: i64,
    outcome: &Result<(), Failure>,
    status: OutboxStatus,
    next_attempt: i64,
) -> Attempt {
    Attempt {
        outbox_id: id,
        at,
        duration_ms,
        error: outcome.as_ref().err().map(|f| f.to_string()),
        status,
        next_attempt,
    }
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
    let outbox = match Outbox::open(&ledger) {
        Ok(o) => Held::new(o),
        Err(e) => {
            error!(channel = %channel.name, error = %e, "Cannot open the ledger for alert delivery; notifications stay queued.");
            return;
        }
    };
    let kind = &channel.kind;
    let name = channel.name.clone();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let n = name.clone();
        let row = match outbox.call(move |o| o.next_pending(&n)).await {
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
                let a = attempt(row.id, now, 0, &outcome, OutboxStatus::Failed, now);
                let _ = outbox.call(move |o| o.record(&a)).await;
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
                (OutboxStatus::Delivered, now)
            }
            Err(e) => {
                metrics.failed(kind);
                let delay = backoff(&retry, row.attempts);
                if e.permanent {
                    metrics.given_up.fetch_add(1, Relaxed);
                    error!(channel = %name, outbox = row.id, alert = notification.alert_id, error = %e,
                        "Alert notification refused by the recipient; not retried (fix the channel and resend by hand).");
                    (OutboxStatus::Failed, now)
                } else if now - row.created > retry.give_up_after.as_millis() as i64 {
                    metrics.given_up.fetch_add(1, Relaxed);
                    error!(channel = %name, outbox = row.id, alert = notification.alert_id, attempts = row.attempts + 1, error = %e,
                        "Alert notification given up: it could not be delivered in time.");
                    (OutboxStatus::Failed, now)
                } else {
                    warn!(channel = %name, outbox = row.id, alert = notification.alert_id, attempt = row.attempts + 1, error = %e,
                        retry_in = %humantime::format_duration(Duration::from_millis(delay.as_millis() as u64)),
                        "Alert notification not delivered; will retry.");
                    (OutboxStatus::Pending, now + delay.as_millis() as i64)
                }
            }
        };
        let a = attempt(row.id, now, duration_ms, &outcome, status, next_attempt);
        if let Err(e) = outbox.call(move |o| o.record(&a)).await {
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
