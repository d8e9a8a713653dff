//! Sources: where readings come from. Each turns its input into `Batch`es for the pipeline and acknowledges
//! upstream only after the batch's completion resolves (the commit).
//!
//! Every source starts the same way: `run(SourceContext<its config slice>)`, returning once stopped with what it
//! held committed. The daemon builds the slices from the config and restarts a source when its slice changes.

pub mod jsonl;
pub mod modbus;
pub mod mqtt;
pub mod tt10;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::metrics::Metrics;
use crate::pipeline::Ingest;

/// What a source gets at start: its slice of the config, the pipeline handle, the health registry, the counters
/// and its stop signal.
pub struct SourceContext<C> {
    pub config: C,
    pub ingest: Ingest,
    pub health: Health,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
}

impl<C> SourceContext<C> {
    /// The same context around another slice.
    pub fn with<D>(self, config: D) -> SourceContext<D> {
        SourceContext {
            config,
            ingest: self.ingest,
            health: self.health,
            metrics: self.metrics,
            shutdown: self.shutdown,
        }
    }
}
