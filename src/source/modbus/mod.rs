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

use tokio_util::sync::CancellationToken;

use crate::config::Station;
use crate::health::Health;
use crate::pipeline::Ingest;

pub use poller::{health_key, Poller};

/// Poll every station that has a `[station.modbus]` section, one task per station so a dead station never slows
/// another, until `shutdown`; returns once every poller has stopped (its last batch committed).
pub async fn run(
    stations: Vec<Station>,
    ingest: Ingest,
    health: Health,
    shutdown: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for s in &stations {
        if let Some(p) = Poller::new(s, ingest.clone(), health.clone()) {
            tasks.spawn(p.run(shutdown.clone()));
        }
    }
    drop(ingest);
    while tasks.join_next().await.is_some() {}
}
