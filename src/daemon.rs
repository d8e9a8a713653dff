//! The running daemon: opens the ledger, starts the pipeline and the sources, and shuts them down in order
//! (sources stop, in-flight batches commit, the ledger checkpoints).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::compliance::{Profiles, StationLimits};
use crate::config::{Config, ConfigError, Problems};
use crate::ledger::{Ledger, LedgerError};
use crate::live::LiveState;
use crate::metrics::Metrics;
use crate::model::StationId;
use crate::pipeline::{LiveEvent, Pipeline};
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
    let limits = resolve_limits(&config)?;
    let ledger = Ledger::open(&config.ledger.path, config.ledger.synchronous)?;
    info!(path = %config.ledger.path.display(), "Ledger open.");
    for s in &config.stations {
        info!(station = %s.id, name = %s.name, sources = %s.sources().join(", "), "Station configured.");
    }
    // Forwarder cursors exist before the writer's first retention pass, so a newly added target keeps every row.
    for target in &config.influx {
        crate::forward::store::Store::open(&config.ledger.path, &target.name)?.ensure_cursors()?;
    }
    let metrics = Arc::new(Metrics::default());
    let live = LiveState::load(&config, &ledger.reader()?)?;
    let pipeline = Pipeline::start(&config, limits.clone(), ledger, metrics.clone());

    let health = crate::health::Health::default();
    let mut sources = tokio::task::JoinSet::new();
    // Alerts (issue 7): the engine follows the pipeline from its ledger cursor; one delivery task per channel.
    let alerts = if config.alert.enabled {
        Some(crate::alert::start(
            &config,
            &pipeline.live,
            &health,
            &metrics,
            Arc::new(crate::alert::SystemClock),
            &mut sources,
            &shutdown,
        )?)
    } else {
        // A cursor left from when alerts were on would hold back retention for ever.
        crate::alert::store::Store::open(&config.ledger.path)?.forget_cursor()?;
        None
    };
    sources.spawn(follow_live(
        live.clone(),
        pipeline.live.subscribe(),
        shutdown.clone(),
    ));
    let sources_started = Arc::new(AtomicBool::new(false));
    if config.http.enabled {
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .map_err(|e| DaemonError::Listen {
                addr: config.http.listen.to_string(),
                error: e.to_string(),
            })?;
        info!(url = %config.http.public_url, "Dashboard and API listening.");
        let state = crate::http::AppState::new(
            Arc::new(config.clone()),
            live.clone(),
            health.clone(),
            metrics.clone(),
            config.ledger.path.clone(),
            pipeline.live.clone(),
            sources_started.clone(),
            shutdown.clone(),
        )
        .with_alerts(alerts.clone());
        let stop = shutdown.clone();
        sources.spawn(async move {
            if let Err(e) = crate::http::serve(listener, state, stop).await {
                tracing::error!(error = %e, "HTTP server stopped; the dashboard and API are down.");
            }
        });
    }
    // Sources: each takes an `Ingest`, the `Health` registry and the shutdown token, and returns when stopped.
    // (Modbus and MQTT sources are spawned here.)
    // Modbus (issue 4). In demo mode the simulated Modbus stations listen first, so the pollers find them.
    if config.sim.enabled {
        match sim::modbus::start_demo(&config, &limits, shutdown.clone()).await {
            Ok(serve) => {
                sources.spawn(serve);
            }
            Err(e) => warn!(error = %e, "Simulated Modbus stations not started."),
        }
    }
    sources.spawn(crate::source::modbus::run(
        config.stations.clone(),
        pipeline.ingest(),
        health.clone(),
        shutdown.clone(),
    ));
    // (end Modbus)
    // MQTT (issue 5): embedded broker, one subscriber per broker, simulated stations with sim.via = "mqtt".
    crate::source::mqtt::spawn(
        &config,
        &limits,
        &pipeline.ingest(),
        &health,
        &mut sources,
        &shutdown,
    )?;
    if config.sim.enabled {
        let sims: Vec<_> = config
            .stations
            .iter()
            .filter(|s| s.sim.as_ref().is_some_and(|x| x.via == "direct"))
            .map(|s| {
                sim::StationSim::new(
                    s,
                    limits.get(&s.id).unwrap_or(&StationLimits::default()),
                    config.sim.seed,
                )
            })
            .collect();
        let interval = config
            .stations
            .iter()
            .map(|s| s.interval)
            .min()
            .unwrap_or(Duration::from_secs(300));
        sources.spawn(sim::direct::run(
            sims,
            interval,
            config.sim.speed,
            Duration::from_secs(24 * 3600),
            pipeline.ingest(),
            shutdown.clone(),
        ));
    }
    sources.spawn(report_progress(metrics.clone(), shutdown.clone()));
    // Forwarders read the ledger, not the pipeline: they stop with the sources and resume from their cursors.
    for target in config.influx.clone() {
        let (path, health, stop) = (config.ledger.path.clone(), health.clone(), shutdown.clone());
        sources.spawn(async move {
            let name = target.name.clone();
            if let Err(e) = crate::forward::influx::run(target, path, health, stop).await {
                tracing::error!(target = %name, error = %e, "InfluxDB forwarder stopped on an error; data stays in the ledger.");
            }
        });
    }

    sources_started.store(true, Ordering::Relaxed);
    shutdown.cancelled().await;
    info!("Shutting down: stopping sources, committing what is in flight.");
    while sources.join_next().await.is_some() {}
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
