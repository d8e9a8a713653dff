//! The running daemon: opens the ledger, starts the pipeline and the components (simulators, sources, sinks),
//! reloads the config on request (only the components whose settings changed restart; the pipeline and ledger keep
//! running), and shuts down in order (components stop, in-flight batches commit, the ledger checkpoints).
//!
//! - [`components`]: what one configuration runs, each component started the same way from its config slice.
//! - [`ingest`]: `quantrac ingest` (standard input through the pipeline).

mod components;
mod ingest;

pub use ingest::ingest_stdin;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::compliance::resolve_limits;
use crate::config::{Config, ConfigError};
use crate::health::Health;
use crate::ledger::{Ledger, LedgerError};
use crate::live::LiveState;
use crate::metrics::Metrics;
use crate::pipeline::{LiveEvent, Pipeline};
use crate::reload::{Prepared, Reload};
use components::{Running, Shared};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot listen on {addr} for the dashboard and API: {source}; change http.listen or stop what uses the port")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The listener's certificate or key does not load.
    #[error(transparent)]
    Tls(#[from] crate::http::tls::TlsError),
    /// The embedded MQTT broker could not start.
    #[error(transparent)]
    MqttBroker(#[from] crate::source::mqtt::broker::BrokerError),
    /// The alert engine or one of its channels could not start.
    #[error(transparent)]
    Alerts(#[from] crate::alert::StartError),
    /// `quantrac ingest`: a batch did not commit; input after line `committed` is not stored.
    #[error("not everything was committed to the ledger {}: lines 1 to {committed} are stored, the rest is not ({source}); fix the cause and feed the rest again (stored lines are recognised as duplicates)", ledger.display())]
    NotCommitted {
        ledger: std::path::PathBuf,
        committed: u64,
        #[source]
        source: crate::pipeline::PipelineError,
    },
}

/// Run until `shutdown` is cancelled, then drain and return; re-read the config at `reload.path` on each request
/// (SIGHUP). The ledger, the pipeline, the HTTP server and the embedded broker run for the life of the process; a
/// reload restarts the components whose settings changed (their in-flight batches commit, MQTT leaves the rest
/// unacked for redelivery).
pub async fn run_with_reload(
    config: Config,
    mut reload: Option<Reload>,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let limits = resolve_limits(&config)?;
    let ledger = Ledger::open(&config.ledger.path, config.ledger.synchronous)?;
    info!(path = %config.ledger.path.display(), "Ledger open.");
    for s in &config.stations {
        info!(station = %s.id, name = %s.name, sources = %s.sources().join(", "), "Station configured.");
    }
    for w in crate::config::mandatory::check_all(&config.stations) {
        warn!(station = %w.station, key = %w.key, "Mandatory parameters: {}", w.message);
    }
    if let Some(w) = config.alert_link_warning() {
        warn!("{w}");
    }
    let metrics = Arc::new(Metrics::default());
    // One registry for /metrics; each component registers its counters (alert counters even with alerts off).
    let registry = crate::metrics::Registry::default();
    metrics.register(&registry);
    let alert_metrics = Arc::new(crate::alert::AlertMetrics::default());
    alert_metrics.register(&registry);
    let live = LiveState::load(&config, &ledger.reader()?)?;
    ensure_forward_cursors(&config)?;
    let pipeline = Pipeline::start(&config, limits.clone(), ledger, metrics.clone());

    let health = Health::default();
    crate::forward::tt10::metrics::register(&registry, &health);
    let mut services = tokio::task::JoinSet::new();
    // Alerts: the engine follows the pipeline from its ledger cursor; one delivery task per channel.
    let alerts = if config.alert.enabled {
        Some(crate::alert::start(
            &config,
            &pipeline.live,
            &health,
            &alert_metrics,
            Arc::new(crate::alert::SystemClock),
            &mut services,
            &shutdown,
        )?)
    } else {
        // A cursor left from when alerts were on would hold back retention for ever.
        crate::alert::store::Store::open(&config.ledger.path, config.ledger.synchronous)?
            .forget_cursor()?;
        None
    };
    services.spawn(follow_live(
        live.clone(),
        pipeline.live.subscribe(),
        shutdown.clone(),
    ));
    let sources_started = Arc::new(AtomicBool::new(false));
    let http_config = if config.http.enabled {
        let state = crate::http::AppState::new(
            Arc::new(config.clone()),
            live.clone(),
            health.clone(),
            registry.clone(),
            config.ledger.path.clone(),
            pipeline.live.clone(),
            sources_started.clone(),
            shutdown.clone(),
        )
        .with_alerts(alerts.clone())
        .with_writer(metrics.clone());
        Some(serve_http(&config, state, &mut services, &shutdown).await?)
    } else {
        None
    };
    crate::source::mqtt::start_embedded(&config)?;
    services.spawn(report_progress(
        metrics.clone(),
        live.clone(),
        shutdown.clone(),
    ));

    let mut config = config;
    let mut running = Running::new(Shared {
        ingest: pipeline.ingest(),
        health: health.clone(),
        metrics: metrics.clone(),
        ledger: config.ledger.path.clone(),
        shutdown: shutdown.clone(),
    });
    running
        .start_missing(components::plan(&config, None, &limits))
        .await;
    sources_started.store(true, Ordering::Relaxed);
    info!(stations = config.stations.len(), "Sources started.");
    loop {
        let requested = async {
            match reload.as_mut() {
                Some(r) => r.requests.recv().await,
                None => std::future::pending().await,
            }
        };
        let path = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = requested => match (r, reload.as_ref()) {
                (Some(()), Some(r)) => r.path.clone(),
                // The signal listener is gone (no SIGHUP on this platform): stop asking.
                _ => {
                    reload = None;
                    continue;
                }
            },
        };
        match crate::reload::prepare(&config, &path) {
            Ok(next) => {
                apply(next, &path, &mut running, &mut config, (&pipeline, &live)).await;
                if let Some(a) = &alerts {
                    a.reconfigure(&config).await;
                }
                // The API's station checks (notes, exports) and its tokens follow; the listening socket stays.
                if let Some(h) = &http_config {
                    *h.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config.clone());
                }
            }
            Err(e) => {
                for line in e.lines() {
                    error!(problem = %line, "Config reload refused: the new file has a problem.");
                }
                error!(config = %path.display(), "Config reload refused; still running on the previous configuration.");
            }
        }
    }
    info!("Shutting down: stopping sources, committing what is in flight.");
    running.stop_all().await;
    while services.join_next().await.is_some() {}
    pipeline.finish().await;
    let t = metrics.totals();
    match metrics.last_commit_failure() {
        // The last commit failed: what it held was not stored; its sources keep it for redelivery.
        Some(f) => warn!(
            accepted = t.accepted,
            duplicates = t.duplicates,
            conflicts = t.conflicts,
            quarantined = t.quarantined,
            error = %f.error,
            "Stopped; the last commit failed, so what it held is not stored (left with its sources for redelivery)."
        ),
        None => info!(
            accepted = t.accepted,
            duplicates = t.duplicates,
            conflicts = t.conflicts,
            quarantined = t.quarantined,
            "Stopped; everything in flight is committed."
        ),
    }
    Ok(())
}

/// Bind the dashboard and API listener and serve it until shutdown. Returns the handle a reload replaces the
/// API's config through.
async fn serve_http(
    config: &Config,
    state: crate::http::AppState,
    services: &mut tokio::task::JoinSet<()>,
    shutdown: &CancellationToken,
) -> Result<crate::http::SharedConfig, DaemonError> {
    let listener = crate::http::bind(&config.http)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: config.http.listen.to_string(),
            source,
        })?;
    let handle = state.config_handle();
    let tls = crate::http::tls::Tls::start(handle.clone())?;
    let stop = shutdown.clone();
    services.spawn(async move {
        if let Err(e) = crate::http::serve_with(listener, state, tls, stop).await {
            tracing::error!(error = %e, "HTTP server stopped; the dashboard and API are down.");
        }
    });
    Ok(handle)
}

/// Forwarder cursors exist before the writer's first retention pass, so a newly added target keeps every row.
fn ensure_forward_cursors(config: &Config) -> Result<(), DaemonError> {
    for target in &config.influx {
        crate::ledger::forward::ForwardStore::open(&config.ledger.path, &target.name)?
            .ensure_cursors()?;
    }
    for target in &config.transmit {
        let start = crate::forward::tt10::cursor_start(target);
        crate::ledger::transmit::TransmitStore::open(&config.ledger.path, &target.name)?
            .start(start)?;
    }
    Ok(())
}

/// Apply a checked configuration: stop the components whose settings changed (what they hold commits), switch
/// the pipeline and the live picture, start the changed and new components.
async fn apply(
    next: Prepared,
    path: &std::path::Path,
    running: &mut Running,
    config: &mut Config,
    (pipeline, live): (&Pipeline, &LiveState),
) {
    let Prepared {
        config: new,
        limits,
        changes,
    } = next;
    for setting in &changes.need_restart {
        warn!(setting = %setting, "Config reload: this setting changed but only takes effect after a restart; keeping the running value.");
    }
    info!(added = ?changes.added, removed = ?changes.removed, changed = ?changes.changed, "Config reload: stopping the components whose settings changed, committing what is in flight.");
    let plan = components::plan(&new, Some(config), &limits);
    let stopped = running.stop_changed(&plan).await;
    if let Err(e) = pipeline.reconfigure(&new, limits.clone()).await {
        error!(error = %e, "Config reload: the pipeline is gone; sources are not restarted.");
        return;
    }
    reload_live(live, &new);
    if let Err(e) = ensure_forward_cursors(&new) {
        error!(error = %e, "Config reload: forwarder cursors could not be created; a new InfluxDB target may miss rows removed by retention.");
    }
    *config = new;
    let started = running.start_missing(plan).await;
    let ledger = crate::ledger::LedgerHandle::new(config.ledger.path.clone());
    let (file, c) = (path.to_path_buf(), changes.clone());
    if let Err(e) = ledger
        .write(move |w| crate::reload::record(w, &file, &c))
        .await
    {
        warn!(error = %e, "Config reload not recorded in the audit table.");
    }
    info!(config = %path.display(), stations = config.stations.len(), stopped, started, changes = %changes.describe(), "Config reloaded.");
}

/// The live picture follows the new stations.
fn reload_live(live: &LiveState, config: &Config) {
    match crate::ledger::Reader::open(&config.ledger.path) {
        Ok(reader) => {
            if let Err(e) = live.reconfigure(config, &reader) {
                warn!(error = %e, "Config reload: the live picture could not load new stations from the ledger; they appear with their next readings.");
            }
        }
        Err(e) => {
            warn!(error = %e, "Config reload: the ledger cannot be read for the live picture.")
        }
    }
}

/// Keep the live picture current from the pipeline's broadcast; a lagging follower reloads from the ledger.
async fn follow_live(
    live: LiveState,
    mut rx: tokio::sync::broadcast::Receiver<LiveEvent>,
    shutdown: CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = rx.recv() => match r {
                Ok(ev) => live.apply(&ev),
                Err(RecvError::Lagged(n)) => warn!(missed = n, "Live view fell behind the pipeline; values catch up with the next readings."),
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// A line every 10 s so an operator sees data arriving.
async fn report_progress(metrics: Arc<Metrics>, live: LiveState, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(10));
    every.tick().await;
    let started = crate::model::Timestamp::now().millis();
    let mut last = metrics.totals();
    let mut overdue = std::collections::BTreeSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        // Totals when something happened, not every 10 s of an idle daemon.
        let t = metrics.totals();
        if t != last {
            info!(
                accepted = t.accepted,
                duplicates = t.duplicates,
                conflicts = t.conflicts,
                quarantined = t.quarantined,
                commits = metrics.commits.load(Relaxed),
                "Ledger totals."
            );
            last = t;
        }
        // Silence is about configured stations: warned when one becomes overdue, told when it reports again.
        let now = crate::model::Timestamp::now().millis();
        let due = overdue_stations(&live, started, now);
        let late: Vec<&String> = due.difference(&overdue).collect();
        if !late.is_empty() {
            warn!(stations = ?late, overdue = due.len(), "No reading from these stations for three of their reporting intervals.");
        }
        let back: Vec<&String> = overdue.difference(&due).collect();
        if !back.is_empty() {
            info!(stations = ?back, "Stations reporting again.");
        }
        overdue = due;
    }
}

/// Stations with no reading for three reporting intervals (counted from start-up for those that sent nothing yet).
fn overdue_stations(
    live: &LiveState,
    started: i64,
    now: i64,
) -> std::collections::BTreeSet<String> {
    live.stations()
        .into_iter()
        .filter(|s| now - s.last_reading.unwrap_or(started).max(started) > 3 * s.interval_ms)
        .map(|s| s.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::CommittedBatch;

    const MIN: i64 = 60_000;

    #[test]
    fn a_station_is_overdue_after_three_intervals_without_a_reading() {
        let dir = tempfile::tempdir().unwrap();
        let station = |id: &str| {
            format!(
                "[[station]]\nid = \"{id}\"\nname = \"{id}\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 5000\n\
                 receiving_water = {{ type = \"river\" }}\nparameters = {{ COD = {{}} }}\n"
            )
        };
        let text = format!(
            "[ledger]\npath = \"l.db\"\n{}{}",
            station("BN_KCNQV_NUOC01"),
            station("BN_KCNTS_NUOC01")
        );
        let config = Config::from_str(&text, std::path::Path::new("t.toml"), dir.path()).unwrap();
        let ledger = Ledger::open(&config.ledger.path, config.ledger.synchronous).unwrap();
        let live = LiveState::load(&config, &ledger.reader().unwrap()).unwrap();
        let started = 1_800_000_000_000;
        // Nothing yet, within three 5-minute intervals of start-up: none overdue.
        assert!(overdue_stations(&live, started, started + 14 * MIN).is_empty());
        // Quế Võ reports at minute 12; at minute 16 only Tiên Sơn is overdue.
        live.apply(&LiveEvent::Readings(Arc::new(CommittedBatch::new(
            vec![crate::testing::cod_reading(started + 12 * MIN)],
            vec![1],
        ))));
        let due = overdue_stations(&live, started, started + 16 * MIN);
        assert_eq!(due.into_iter().collect::<Vec<_>>(), ["BN_KCNTS_NUOC01"]);
        assert_eq!(
            overdue_stations(&live, started, started + 28 * MIN).len(),
            2
        );
    }
}
