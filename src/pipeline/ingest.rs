//! What a source holds: the [`Ingest`] handle, the [`Batch`] it submits and the [`Completion`] that resolves once the
//! batch's ledger transaction has committed (or failed). A source acknowledges upstream only after that.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use crate::compliance::StationLimits;
use crate::config::Config;
use crate::ledger::{CommitCounts, LedgerError};
use crate::model::{Quarantined, Reading, SourceKind, StationId, Timestamp};

/// What a source submits: readings and the inputs it could not turn into readings.
#[derive(Debug, Clone)]
pub struct Batch {
    pub source: SourceKind,
    pub readings: Vec<Reading>,
    pub quarantined: Vec<Quarantined>,
    /// What the readings were read from, by index range in `readings` (ascending, not overlapping): a reading the
    /// processor refuses (range, clock) is quarantined with this origin and these bytes. Readings outside every range
    /// are quarantined with a text rebuilt from the reading.
    pub evidence: Vec<(Range<usize>, Arc<Evidence>)>,
}

/// The input a group of readings was read from, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// A topic (`mqtt://broker/topic`), a file path with its line, `host:port/unit/register`.
    pub origin: String,
    /// The message, line or register words as received.
    pub raw: Vec<u8>,
    /// When it was received.
    pub received: Timestamp,
}

impl Batch {
    pub fn new(source: SourceKind) -> Self {
        Self {
            source,
            readings: Vec::new(),
            quarantined: Vec::new(),
            evidence: Vec::new(),
        }
    }

    /// The readings from index `from` to the end were read from `evidence` (nothing when there are none).
    pub fn read_from(&mut self, from: usize, evidence: Evidence) {
        let to = self.readings.len();
        if to > from {
            self.evidence.push((from..to, Arc::new(evidence)));
        }
    }

    pub fn len(&self) -> usize {
        self.readings.len() + self.quarantined.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The result of a committed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitReport {
    pub counts: CommitCounts,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    #[error("the pipeline is shut down; the batch was not committed")]
    Closed,
    /// Shared by every batch of the failed transaction, hence the `Arc`.
    #[error("the ledger could not commit the batch (it was not stored; resend it): {0}")]
    Ledger(#[source] Arc<LedgerError>),
}

pub(super) type Done = oneshot::Sender<Result<CommitReport, PipelineError>>;

/// What the processor receives, in order: batches, and new settings after a reload. Sending a reload through the
/// same queue orders it exactly: every batch queued before it is judged by the old limits, every one after by the new.
pub(super) enum Job {
    Batch { batch: Batch, done: Done },
    Reconfigure(Box<Reconfigure>, oneshot::Sender<()>),
}

/// Settings a reload replaces in the running pipeline.
pub(super) struct Reconfigure {
    pub config: Config,
    pub limits: HashMap<StationId, StationLimits>,
}

/// A source's handle into the pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    pub(super) tx: mpsc::Sender<Job>,
}

/// Resolves when the batch's transaction has committed (or failed).
pub struct Completion(oneshot::Receiver<Result<CommitReport, PipelineError>>);

impl Future for Completion {
    type Output = Result<CommitReport, PipelineError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(PipelineError::Closed)))
    }
}

impl Ingest {
    /// Queue a batch (waiting while the queue is full) and return its completion.
    pub async fn enqueue(&self, batch: Batch) -> Result<Completion, PipelineError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Job::Batch { batch, done })
            .await
            .map_err(|_| PipelineError::Closed)?;
        Ok(Completion(rx))
    }
    /// Queue a batch and wait until it is committed.
    pub async fn submit(&self, batch: Batch) -> Result<CommitReport, PipelineError> {
        self.enqueue(batch).await?.await
    }
}
