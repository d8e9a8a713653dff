//! The running daemon: opens the ledger, starts the pipeline and the sources, and shuts them down in order
//! (sources stop, in-flight batches commit, the ledger checkpoints).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::compliance::{Profiles, StationLimits};
use crate::config::{Config, ConfigError, Problems};
use crate::ledger::{Ledger, LedgerError};
use crate::metrics::Metrics;
use crate::model::StationId;
use crate::pipeline::Pipeline;
use crate::sim;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    // MQTT (issue 5): the embedded broker could not start.
    #[error(transparent)]
    MqttBroker(#[from] crate::source::mqtt::broker::BrokerError),
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
    let metrics = Arc::new(Metrics::default());
    let pipeline = Pipeline::start(&config, limits.clone(), ledger, metrics.clone());

    let health = crate::health::Health::default();
    let mut sources = tokio::task::JoinSet::new();
    // Sources: each takes an `Ingest`, the `Health` registry and the shutdown token, and returns when stopped.
    // (Modbus and MQTT sources are spawned here.)
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
    let _ = &health;

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
