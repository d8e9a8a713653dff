//! Alerts: the engine (a pure state machine per station, subject and kind), the runner that feeds it from the
//! pipeline and stores its decisions, the outbox in the ledger, and the notification channels.
//!
//! Every notification is an outbox row before anything is sent; delivery tasks, one per channel, retry with capped
//! backoff and record every attempt. The runner persists each key's state with its ledger cursor, so a restart
//! resumes mid-incident: nothing is raised twice and no clear is lost.
//!
//! Not here: compliance verdicts (the compliance engine decides bands and window means; this module only decides
//! whom to tell, when, and how often).

pub mod channels;
pub mod engine;
pub mod history;
pub mod message;
pub mod observe;
pub mod outbox;
mod rederive;
pub mod runner;
pub mod store;
pub mod words;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::ledger::alerts::StoredAlert;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use channels::ChannelKind;
pub use engine::{Clock, Kind, SystemClock};
pub use store::AckError;

use crate::config::Config;
use crate::health::Health;
use crate::ledger::LedgerError;
use crate::pipeline::LiveEvent;

/// Alert counters, owned here and read by `/metrics` through [`AlertMetrics::register`].
#[derive(Debug, Default)]
pub struct AlertMetrics {
    raised: [AtomicU64; Kind::ALL.len()],
    cleared: [AtomicU64; Kind::ALL.len()],
    /// By channel type, in [`ChannelKind::TYPES`] order.
    delivered: [AtomicU64; ChannelKind::COUNT],
    failed: [AtomicU64; ChannelKind::COUNT],
    /// Notifications given up after `give_up_after`.
    pub given_up: AtomicU64,
}

impl AlertMetrics {
    fn kind_index(k: Kind) -> usize {
        Kind::ALL.iter().position(|x| *x == k).unwrap_or(0)
    }
    pub fn raised(&self, k: Kind) {
        self.raised[Self::kind_index(k)].fetch_add(1, Relaxed);
    }
    pub fn cleared(&self, k: Kind) {
        self.cleared[Self::kind_index(k)].fetch_add(1, Relaxed);
    }
    pub fn delivered(&self, channel: &ChannelKind) {
        self.delivered[channel.index()].fetch_add(1, Relaxed);
    }
    pub fn failed(&self, channel: &ChannelKind) {
        self.failed[channel.index()].fetch_add(1, Relaxed);
    }
    /// (kind, raised, cleared) for every kind.
    pub fn by_kind(&self) -> Vec<(&'static str, u64, u64)> {
        Kind::ALL
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    k.as_str(),
                    self.raised[i].load(Relaxed),
                    self.cleared[i].load(Relaxed),
                )
            })
            .collect()
    }
    /// (channel type, delivered, failed attempts) for every channel type.
    pub fn by_channel(&self) -> Vec<(&'static str, u64, u64)> {
        ChannelKind::TYPES
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    *c,
                    self.delivered[i].load(Relaxed),
                    self.failed[i].load(Relaxed),
                )
            })
            .collect()
    }

    /// Let `/metrics` read these counters at each scrape.
    pub fn register(self: &Arc<Self>, registry: &crate::metrics::Registry) {
        registry.register(AlertCollector(self.clone()));
    }

    /// The families of alerts raised and cleared and of notifications delivered, failed and given up.
    fn encode(&self, mut e: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use crate::metrics::{counter, NO_LABELS};
        let (kinds, channels) = (self.by_kind(), self.by_channel());
        let by_kind = |pick: fn(&(&'static str, u64, u64)) -> u64| {
            kinds.iter().map(move |k| ([("kind", k.0)], pick(k)))
        };
        counter(
            &mut e,
            "quantrac_alerts_raised",
            "Alerts raised, by kind.",
            by_kind(|k| k.1),
        )?;
        counter(
            &mut e,
            "quantrac_alerts_cleared",
            "Alerts cleared, by kind.",
            by_kind(|k| k.2),
        )?;
        let by_channel = |pick: fn(&(&'static str, u64, u64)) -> u64| {
            channels
                .iter()
                .map(move |c| ([("channel_type", c.0)], pick(c)))
        };
        counter(
            &mut e,
            "quantrac_alert_notifications_delivered",
            "Alert notifications delivered, by channel type.",
            by_channel(|c| c.1),
        )?;
        counter(
            &mut e,
            "quantrac_alert_notifications_failed",
            "Failed alert delivery attempts (each is retried), by channel type.",
            by_channel(|c| c.2),
        )?;
        counter(
            &mut e,
            "quantrac_alert_notifications_given_up",
            "Alert notifications given up after alert.give_up_after (someone was not told).",
            [(NO_LABELS, self.given_up.load(Relaxed))],
        )
    }
}

/// [`AlertMetrics`] as a collector (a newtype: the registry owns its collectors).
#[derive(Debug)]
struct AlertCollector(Arc<AlertMetrics>);

impl prometheus_client::collector::Collector for AlertCollector {
    fn encode(&self, encoder: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        self.0.encode(encoder)
    }
}

/// Requests to the runner.
pub enum Command {
    Ack {
        id: i64,
        who: String,
        role: String,
        comment: String,
        reply: oneshot::Sender<Result<StoredAlert, AckError>>,
    },
    /// A reloaded config: stations, routes and timing rules (channels need a restart; see `reload::prepare`).
    Reconfigure(Box<Config>),
}

/// What the HTTP layer holds to acknowledge alerts. Cheap to clone.
#[derive(Clone)]
pub struct AlertHandle {
    tx: mpsc::Sender<Command>,
}

impl AlertHandle {
    /// Acknowledge a raised alert (stops its re-notifications) and write the audit row.
    pub async fn acknowledge(
        &self,
        id: i64,
        who: &str,
        role: &str,
        comment: &str,
    ) -> Result<StoredAlert, AckError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Ack {
                id,
                who: who.to_string(),
                role: role.to_string(),
                comment: comment.to_string(),
                reply,
            })
            .await
            .map_err(|_| AckError::Stopped)?;
        rx.await.unwrap_or(Err(AckError::Stopped))
    }

    /// Switch the engine to a reloaded config's stations, routes and rules; open alerts keep their state.
    pub async fn reconfigure(&self, config: &Config) {
        let _ = self
            .tx
            .send(Command::Reconfigure(Box::new(config.clone())))
            .await;
    }
}

/// Start the runner and one delivery task per channel on `tasks`; they stop on `shutdown`.
#[allow(clippy::too_many_arguments)]
pub fn start(
    config: &Config,
    live: &tokio::sync::broadcast::Sender<LiveEvent>,
    health: &Health,
    metrics: &Arc<AlertMetrics>,
    clock: Arc<dyn Clock>,
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) -> Result<AlertHandle, StartError> {
    let mut wake = HashMap::new();
    let retry = outbox::Retry {
        base: Duration::from_secs(1),
        max_backoff: config.alert.retry_max_backoff,
        give_up_after: config.alert.give_up_after,
    };
    let mut senders = Vec::new();
    for c in &config.alert.channels {
        let sender = channels::Sender::build(c)?;
        let w = Arc::new(Notify::new());
        wake.insert(c.name.clone(), w.clone());
        senders.push((c.clone(), sender, w));
    }
    // Subscribe before reading the cursor, so nothing committed in between is missed (replay skips what it fed).
    let rx = live.subscribe();
    let runner = runner::Runner::open(runner::Parts {
        config: config.clone(),
        ledger: config.ledger.path.clone(),
        live: live.clone(),
        health: health.clone(),
        metrics: metrics.clone(),
        clock,
        wake,
    })?;
    let (tx, commands) = mpsc::channel(16);
    tasks.spawn(runner.run(rx, commands, shutdown.clone()));
    for (c, sender, w) in senders {
        tasks.spawn(outbox::run(
            c,
            sender,
            config.ledger.path.clone(),
            w,
            retry,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    Ok(AlertHandle { tx })
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Channel(#[from] channels::BuildError),
}
