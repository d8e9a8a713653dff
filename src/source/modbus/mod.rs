//! Modbus source: polls stations over Modbus TCP, RTU on a serial line, or RTU framed over TCP, decodes their
//! register maps and submits the readings to the pipeline.
//!
//! - [`plan`]: which read requests fetch a register map (pure).
//! - [`decode`]: register words ↔ values, status and sample time; one poll → a batch (pure).
//! - [`transport`]: connecting over TCP, serial RTU or RTU-over-TCP; the one read operation.
//! - [`poller`]: the per-station task (interval, deadlines, reconnect with backoff, health, submit).

pub mod decode;
pub mod plan;
pub mod poller;
pub mod transport;

use super::SourceContext;
use crate::config::Station;

pub use poller::{health_key, Poller};

/// Poll one station with a `[station.modbus]` section until stopped (one task per station, so a dead station
/// never slows another); returns once its last batch is committed.
pub async fn run(ctx: SourceContext<Station>) {
    if let Some(p) = Poller::new(&ctx.config, ctx.ingest, ctx.health) {
        p.run(ctx.shutdown).await;
    }
}
