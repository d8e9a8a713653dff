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

/// Forward to one InfluxDB target until stopped; an error stops only this target (the data stays in the ledger).
pub async fn run_influx(ctx: SinkContext<Influx>) {
    let name = ctx.config.name.clone();
    if let Err(e) = influx::run(ctx.config, ctx.ledger, ctx.health, ctx.shutdown).await {
        tracing::error!(target = %name, error = %e, "InfluxDB forwarder stopped on an error; data stays in the ledger.");
    }
}

/// Send Circular 10 files to one target until stopped; an error stops only this target (the data stays in the
/// ledger).
pub async fn run_tt10(ctx: SinkContext<Target>) {
    let name = ctx.config.name.clone();
    if let Err(e) = tt10::run(ctx.config, ctx.ledger, ctx.health, ctx.shutdown).await {
        tracing::error!(target = %name, error = %e, "Circular 10 transmission stopped on an error; data stays in the ledger.");
    }
}
