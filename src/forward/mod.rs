//! Forwarders: send committed data from the ledger to InfluxDB, and Circular 10 files to the authorities (`tt10`).
//! Each keeps its own cursors in the ledger and moves them only after a successful write, so an outage or a restart
//! only delays data.

pub mod encode;
pub mod influx;
pub mod line_protocol;
pub mod tt10;

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::config::forward::Influx;
use crate::config::transmit::Target;
use crate::health::Health;

/// What a sink gets at start: its slice of the config, the ledger it reads from, the health registry and its stop
/// signal. Sinks follow the ledger from their own cursors, never the pipeline.
pub struct SinkContext<C> {
    pub config: C,
    pub ledger: PathBuf,
    pub health: Health,
    pub shutdown: CancellationToken,
}

/// Forward to one InfluxDB target until stopped. An error (a ledger busy for longer than its timeout on a loaded
/// machine, say) stops this target only, and it starts again after a pause: the data waits in the ledger.
pub async fn run_influx(ctx: SinkContext<Influx>) {
    let name = ctx.config.name.clone();
    keep_running(&ctx, "InfluxDB forwarder", &name, |c| {
        influx::run(
            c.config.clone(),
            c.ledger.clone(),
            c.health.clone(),
            c.shutdown.clone(),
        )
    })
    .await
}

/// Send Circular 10 files to one target until stopped. An error stops this target only, and it starts again after a
/// pause: the data waits in the ledger.
pub async fn run_tt10(ctx: SinkContext<Target>) {
    let name = ctx.config.name.clone();
    keep_running(&ctx, "Circular 10 transmission", &name, |c| {
        tt10::run(
            c.config.clone(),
            c.ledger.clone(),
            c.health.clone(),
            c.shutdown.clone(),
        )
    })
    .await
}

/// Run a sink until it ends without an error or shutdown; after an error, log it and start the sink again after a
/// pause that doubles each time.
async fn keep_running<C, F, Fut, E>(ctx: &SinkContext<C>, what: &str, name: &str, run: F)
where
    F: Fn(&SinkContext<C>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut pause = RESTART_PAUSE;
    loop {
        let Err(e) = run(ctx).await else { return };
        tracing::error!(target = %name, error = %e, restart_in_s = pause.as_secs(), "{what} stopped on an error; data stays in the ledger, it starts again.");
        if !pause_or_stop(&ctx.shutdown, &mut pause).await {
            return;
        }
    }
}

/// First pause before a stopped sink starts again; it doubles up to [`MAX_RESTART_PAUSE`].
const RESTART_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);
const MAX_RESTART_PAUSE: std::time::Duration = std::time::Duration::from_secs(300);

/// Wait `pause` (and double it for next time); false when stopped meanwhile.
async fn pause_or_stop(shutdown: &CancellationToken, pause: &mut std::time::Duration) -> bool {
    let wait = *pause;
    *pause = (*pause * 2).min(MAX_RESTART_PAUSE);
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}
