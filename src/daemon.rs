//! The running daemon: opens the ledger, starts the pipeline and the sources, reloads the config on request (the
//! sources restart, the pipeline and ledger keep running), and shuts down in order (sources stop, in-flight batches
//! commit, the ledger checkpoints).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::compliance::{Profiles, StationLimits};
use crate::config::{Config, ConfigError, Problems};
use crate::ledger::{Ledger, LedgerError};
use crate::live::LiveState;
use crate::metrics::Metrics;
use crate::model::StationId;
use crate::pipeline::{LiveEvent, Pipeline};
use crate::reload::{Prepared, Reload};
use crate::sim;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot listen on {addr} for the dashboard and API: {error}; change http.listen or stop what uses the port")]
    Listen { addr: String, error: String },
    /// The embedded MQTT broker could not start.
    #[error(transparent)]
    MqttBroker(#[from] crate::source::mqtt::broker::BrokerError),
    /// The alert engine or one of its channels could not start.
    #[error(transparent)]
    Alerts(#[from] crate::alert::StartError),
}

/// Load the limit profiles and resolve every station's limits; problems are reported like config problems.
pub fn resolve_limits(config: &Config) -> Result<HashMap<StationId, StationLimits>, ConfigError> {
    let mut p = Problems::new(&config.source);
    let errors = match Profiles::load_dir(&config.profiles_dir) {
        Ok(profiles) => match profiles.resolve(config) {
            Ok(limits) => return Ok(limits),
            Err(errs) => errs,
        },
        Err(errs) => errs
            .into_iter()
            .map(|(file, msg)| (format!("daemon.profiles_dir ({file})"), msg))
            .collect(),
    };
    for (k, m) in errors {
        p.push(k, m);
    }
    p.finish()?;
    Ok(HashMap::new())
}

/// Run until `shutdown` is cancelled, then drain and return.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), DaemonError> {
    run_with_reload(config, None, shutdown).await
}

/// [`run`], re-reading the config at `reload.path` on each request (SIGHUP). The ledger, the pipeline, the HTTP
/// server and the embedded broker run for the life of the process; the sources run as a set that a reload stops
/// (their in-flight batches commit, MQTT leaves the rest unacked for redelivery) and starts again on the new config.
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
    let metrics = Arc::new(Metrics::default());
    // One registry for /metrics; each component registers its counters (alert counters even with alerts off).
    let registry = crate::metrics::Registry::default();
    metrics.register(&registry);
    let alert_metrics = Arc::new(crate::alert::AlertMetrics::default());
    alert_metrics.register(&registry);
    let live = LiveState::load(&config, &ledger.reader()?)?;
    ensure_forward_cursors(&config)?;
    let pipeline = Pipeline::start(&config, limits.clone(), ledger, metrics.clone());

    let health = crate::health::Health::default();
    let mut services = tokio::task::JoinSet::new();
    // Alerts (issue 7): the engine follows the pipeline from its ledger cursor; one delivery task per channel.
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
        crate::alert::store::Store::open(&config.ledger.path)?.forget_cursor()?;
        None
    };
    services.spawn(follow_live(
        live.clone(),
        pipeline.live.subscribe(),
        shutdown.clone(),
    ));
    let sources_started = Arc::new(AtomicBool::new(false));
    let mut http_config = None;
    if config.http.enabled {
        let listener = crate::http::bind(&config.http)
            .await
            .map_err(|e| DaemonError::Listen {
                addr: config.http.listen.to_string(),
                error: e.to_string(),
            })?;
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
        .with_alerts(alerts.clone());
        http_config = Some(state.config_handle());
        let stop = shutdown.clone();
        services.spawn(async move {
            if let Err(e) = crate::http::serve(listener, state, stop).await {
                tracing::error!(error = %e, "HTTP server stopped; the dashboard and API are down.");
            }
        });
    }
    crate::source::mqtt::start_embedded(&config)?;
    services.spawn(report_progress(metrics.clone(), shutdown.clone()));

    let mut config = config;
    let mut sources = SourceSet::start(&config, None, &limits, &pipeline, &health, &shutdown).await;
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
                let running = (&pipeline, &live, &health, &shutdown);
                sources = apply(next, &path, sources, &mut config, running).await;
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
    sources.stop().await;
    while services.join_next().await.is_some() {}
    pipeline.finish().await;
    let t = metrics.totals();
    info!(
        accepted = t.accepted,
        duplicates = t.duplicates,
        conflicts = t.conflicts,
        quarantined = t.quarantined,
        "Stopped; everything in flight is committed."
    );
    Ok(())
}

/// Forwarder cursors exist before the writer's first retention pass, so a newly added target keeps every row.
fn ensure_forward_cursors(config: &Config) -> Result<(), DaemonError> {
    for target in &config.influx {
        crate::forward::store::Store::open(&config.ledger.path, &target.name)?.ensure_cursors()?;
    }
    Ok(())
}

/// Apply a checked configuration: stop the sources (what they hold commits), switch the pipeline and the live
/// picture, start the sources on the new config. Returns the running source set.
async fn apply(
    next: Prepared,
    path: &std::path::Path,
    sources: SourceSet,
    config: &mut Config,
    (pipeline, live, health, shutdown): (
        &Pipeline,
        &LiveState,
        &crate::health::Health,
        &CancellationToken,
    ),
) -> SourceSet {
    let Prepared {
        config: new,
        limits,
        changes,
    } = next;
    for setting in &changes.need_restart {
        warn!(setting = %setting, "Config reload: this setting changed but only takes effect after a restart; keeping the running value.");
    }
    info!(added = ?changes.added, removed = ?changes.removed, changed = ?changes.changed, "Config reload: stopping sources, committing what is in flight.");
    sources.stop().await;
    if let Err(e) = pipeline.reconfigure(&new, limits.clone()).await {
        error!(error = %e, "Config reload: the pipeline is gone; sources are not restarted.");
        return SourceSet::empty(shutdown);
    }
    match crate::ledger::Reader::open(&new.ledger.path) {
        Ok(reader) => {
            if let Err(e) = live.reconfigure(&new, &reader) {
                warn!(error = %e, "Config reload: the live picture could not load new stations from the ledger; they appear with their next readings.");
            }
        }
        Err(e) => {
            warn!(error = %e, "Config reload: the ledger cannot be read for the live picture.")
        }
    }
    if let Err(e) = ensure_forward_cursors(&new) {
        error!(error = %e, "Config reload: forwarder cursors could not be created; a new InfluxDB target may miss rows removed by retention.");
    }
    health.clear();
    let previous = std::mem::replace(config, new);
    let set = SourceSet::start(config, Some(&previous), &limits, pipeline, health, shutdown).await;
    let ledger = config.ledger.path.clone();
    let (file, c) = (path.to_path_buf(), changes.clone());
    match tokio::task::spawn_blocking(move || crate::reload::record(&ledger, &file, &c)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "Config reload not recorded in the audit table."),
        Err(e) => warn!(error = %e, "Config reload not recorded in the audit table."),
    }
    info!(config = %path.display(), stations = config.stations.len(), changes = %changes.describe(), "Config reloaded.");
    set
}

/// The sources of one configuration: Modbus pollers, MQTT subscribers, simulators and forwarders, with their own
/// stop token (a child of the daemon's shutdown).
struct SourceSet {
    stop: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
}

impl SourceSet {
    fn empty(shutdown: &CancellationToken) -> SourceSet {
        SourceSet {
            stop: shutdown.child_token(),
            tasks: tokio::task::JoinSet::new(),
        }
    }

    /// Each source takes an `Ingest`, the `Health` registry and the stop token, and returns when stopped.
    /// `previous`: the configuration the last set ran on (after a reload).
    async fn start(
        config: &Config,
        previous: Option<&Config>,
        limits: &HashMap<StationId, StationLimits>,
        pipeline: &Pipeline,
        health: &crate::health::Health,
        shutdown: &CancellationToken,
    ) -> SourceSet {
        let SourceSet { stop, mut tasks } = SourceSet::empty(shutdown);
        // Modbus (issue 4). In demo mode the simulated Modbus stations listen first, so the pollers find them.
        if config.sim.enabled {
            match sim::modbus::start_demo(config, limits, stop.clone()).await {
                Ok(serve) => {
                    tasks.spawn(serve);
                }
                Err(e) => warn!(error = %e, "Simulated Modbus stations not started."),
            }
        }
        tasks.spawn(crate::source::modbus::run(
            config.stations.clone(),
            pipeline.ingest(),
            health.clone(),
            stop.clone(),
        ));
        // MQTT (issue 5): one subscriber per broker, simulated stations with sim.via = "mqtt".
        crate::source::mqtt::spawn(
            config,
            previous,
            limits,
            &pipeline.ingest(),
            health,
            &mut tasks,
            &stop,
        );
        // Circular 10 TXT landing folders (issue 9).
        crate::source::tt10::spawn(
            config,
            limits,
            &pipeline.ingest(),
            health,
            &pipeline.metrics,
            &mut tasks,
            &stop,
        );
        if config.sim.enabled {
            let interval = config
                .stations
                .iter()
                .map(|s| s.interval)
                .min()
                .unwrap_or(Duration::from_secs(300));
            tasks.spawn(sim::direct::run(
                simulated(config, limits, "direct"),
                interval,
                config.sim.speed,
                DEMO_HISTORY,
                pipeline.ingest(),
                stop.clone(),
            ));
            // The Modbus stations' history, as their dataloggers would hand it over, so the dashboard's 24 h charts
            // are full for every plant (the MQTT simulator publishes its own history).
            let (modbus, ingest, stop) = (
                simulated(config, limits, "modbus"),
                pipeline.ingest(),
                stop.clone(),
            );
            tasks.spawn(async move {
                sim::direct::history(&modbus, interval, DEMO_HISTORY, &ingest, &stop).await;
            });
        }
        // Forwarders read the ledger, not the pipeline: they stop with the sources and resume from their cursors.
        for target in config.influx.clone() {
            let (path, health, stop) = (config.ledger.path.clone(), health.clone(), stop.clone());
            tasks.spawn(async move {
                let name = target.name.clone();
                if let Err(e) = crate::forward::influx::run(target, path, health, stop).await {
                    tracing::error!(target = %name, error = %e, "InfluxDB forwarder stopped on an error; data stays in the ledger.");
                }
            });
        }
        SourceSet { stop, tasks }
    }

    /// Stop every source and wait until each has committed what it holds.
    async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// History the simulators fill in at start.
const DEMO_HISTORY: Duration = Duration::from_secs(24 * 3600);

/// The simulators of the stations that `sim.via` sends through `via`.
fn simulated(
    config: &Config,
    limits: &HashMap<StationId, StationLimits>,
    via: &str,
) -> Vec<sim::StationSim> {
    config
        .stations
        .iter()
        .filter(|s| s.sim.as_ref().is_some_and(|x| x.via == via))
        .map(|s| {
            sim::StationSim::new(
                s,
                limits.get(&s.id).unwrap_or(&StationLimits::default()),
                config.sim.seed,
            )
        })
        .collect()
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
async fn report_progress(metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(10));
    every.tick().await;
    let mut last = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let t = metrics.totals();
        if t.accepted == last && t.quarantined == 0 {
            warn!("No readings committed in the last 10 s.");
        }
        info!(
            accepted = t.accepted,
            duplicates = t.duplicates,
            conflicts = t.conflicts,
            quarantined = t.quarantined,
            commits = metrics.commits.load(Relaxed),
            "Ledger totals."
        );
        last = t.accepted;
    }
}

/// `quantrac ingest`: JSON lines from standard input through the full pipeline. Prints `committed <n>` once the
/// first n lines are durable; SIGINT/SIGTERM stop reading and commit what was read.
pub async fn ingest_stdin(config: Config, batch_lines: usize) -> Result<(), DaemonError> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let limits = resolve_limits(&config)?;
    let ledger = Ledger::open(&config.ledger.path, config.ledger.synchronous)?;
    let pipeline = Pipeline::start(&config, limits, ledger, Arc::new(Metrics::default()));
    let ingest = pipeline.ingest();
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::signals::shutdown_on_signal(shutdown.clone()));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let mut n = 0u64;
    let mut eof = false;
    while !eof && !shutdown.is_cancelled() {
        let mut batch = crate::pipeline::Batch::new(crate::model::SourceKind::Api);
        // Wait for one line, then take what is ready without waiting, up to the batch size.
        while batch.len() < batch_lines {
            let next = if batch.is_empty() {
                tokio::select! {
                    l = lines.next_line() => l,
                    _ = shutdown.cancelled() => break,
                }
            } else {
                match tokio::time::timeout(Duration::from_millis(2), lines.next_line()).await {
                    Ok(l) => l,
                    Err(_) => break,
                }
            };
            match next {
                Ok(Some(line)) => {
                    n += 1;
                    if line.trim().is_empty() {
                        continue;
                    }
                    match crate::source::jsonl::parse_line(line.as_bytes(), &format!("stdin:{n}")) {
                        Ok(r) => batch.readings.push(r),
                        Err(q) => batch.quarantined.push(q),
                    }
                }
                Ok(None) => {
                    eof = true;
                    break;
                }
                Err(e) => {
                    warn!(error = %e, "Reading standard input failed.");
                    eof = true;
                    break;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        match ingest.submit(batch).await {
            Ok(_) => {
                let _ = out.write_all(format!("committed {n}\n").as_bytes()).await;
                let _ = out.flush().await;
            }
            Err(e) => {
                warn!(error = %e, "Batch not committed; stopping.");
                break;
            }
        }
    }
    drop(ingest);
    pipeline.finish().await;
    Ok(())
}
