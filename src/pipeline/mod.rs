//! Wiring between stages: sources → processor (quality checks, compliance) → ledger writer → bus.
//!
//! - [`ingest`]: what a source holds. Each batch it submits carries a completion that resolves only after its
//!   ledger transaction commits, so a source acknowledges upstream (MQTT ack, TT10 file move) only then.
//! - [`bus`]: what a consumer follows (live view, SSE, alert engine): what committed, windows, events, alerts.
//! - `processor`: judges readings on the async side; `writer`: the one blocking thread, which commits.
//!
//! Queues are bounded and block: a slow ledger slows the sources, nothing is dropped. The pipeline ends when every
//! `Ingest` handle is dropped: the processor drains its queue, the writer commits what it holds and checkpoints.
//! A config reload ([`Pipeline::reconfigure`]) travels through the same queue as the batches, so it takes effect at an
//! exact point in the stream.

pub mod bus;
pub mod ingest;
mod processor;
mod writer;

pub use bus::{Committed, LiveEvent};
pub use ingest::{Batch, CommitReport, Completion, Evidence, Ingest, PipelineError};

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::compliance::{Evaluator, StationLimits};
use crate::config::Config;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::model::StationId;
use ingest::{Job, Reconfigure};
use processor::Processor;
use writer::{aggregate_context, WriterSettings};

/// A running pipeline.
pub struct Pipeline {
    ingest: Ingest,
    pub live: broadcast::Sender<LiveEvent>,
    pub metrics: Arc<Metrics>,
    processor: tokio::task::JoinHandle<()>,
    writer: oneshot::Receiver<()>,
}

impl Pipeline {
    /// Start the processor task and the ledger writer thread.
    pub fn start(
        config: &Config,
        limits: HashMap<StationId, StationLimits>,
        ledger: Ledger,
        metrics: Arc<Metrics>,
    ) -> Pipeline {
        let (tx, rx) = mpsc::channel(config.pipeline.queue_capacity);
        let (wtx, wrx) = mpsc::channel(4);
        let (live, _) = broadcast::channel(config.pipeline.broadcast_capacity);
        let settings = WriterSettings {
            max_transaction: config.ledger.max_transaction_readings,
            aggregates: aggregate_context(config, &limits),
            retention: config.ledger.retention,
        };
        let processor = Processor {
            rx,
            writer: wtx.clone(),
            evaluator: Evaluator::new(config, limits)
                .with_quality(config.compliance.quality.clone()),
            future_skew: config.future_skew,
            retention: config.ledger.retention,
            max_transaction: config.ledger.max_transaction_readings,
            metrics: metrics.clone(),
        };
        let processor = tokio::spawn(processor.run());
        tokio::spawn(writer::tick(wtx.downgrade()));
        drop(wtx);
        let (writer_done, writer) = oneshot::channel();
        let (m, l) = (metrics.clone(), live.clone());
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                writer::write_loop(ledger, wrx, settings, m, l);
                let _ = writer_done.send(());
            })
            .expect("spawning the ledger writer thread");
        Pipeline {
            ingest: Ingest { tx },
            live,
            metrics,
            processor,
            writer,
        }
    }

    pub fn ingest(&self) -> Ingest {
        self.ingest.clone()
    }

    /// Apply a reloaded configuration: stations, limits, quality checks and the clock-skew limit for the processor,
    /// intervals, limits and retention for the writer. Batches queued before this call are judged by the old
    /// settings, batches queued after by the new. Returns once the processor has switched. Settings fixed at start
    /// (queue sizes, ledger file, transaction size) are not changed.
    pub async fn reconfigure(
        &self,
        config: &Config,
        limits: HashMap<StationId, StationLimits>,
    ) -> Result<(), PipelineError> {
        let (done, applied) = oneshot::channel();
        let r = Reconfigure {
            config: config.clone(),
            limits,
        };
        self.ingest
            .tx
            .send(Job::Reconfigure(Box::new(r), done))
            .await
            .map_err(|_| PipelineError::Closed)?;
        applied.await.map_err(|_| PipelineError::Closed)
    }

    /// Wait until every other `Ingest` handle is gone and everything queued is committed.
    pub async fn finish(self) {
        drop(self.ingest);
        let _ = self.processor.await;
        let _ = self.writer.await;
    }
}
