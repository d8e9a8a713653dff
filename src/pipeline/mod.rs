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

mod buffers;
pub mod bus;
pub mod ingest;
mod processor;
mod writer;

pub use bus::{Committed, CommittedBatch, LiveEvent};
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
use writer::{aggregate_context, WriterSettings, FOLLOWERS_MAX_READINGS};

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
        Self::start_bounded(config, limits, ledger, metrics, FOLLOWERS_MAX_READINGS)
    }

    /// [`Pipeline::start`] with the most committed readings the live followers may hold before the writer waits
    /// for them (tests use a small bound).
    pub(crate) fn start_bounded(
        config: &Config,
        limits: HashMap<StationId, StationLimits>,
        ledger: Ledger,
        metrics: Arc<Metrics>,
        followers_max: usize,
    ) -> Pipeline {
        let (tx, rx) = mpsc::channel(config.pipeline.queue_capacity);
        let (wtx, wrx) = mpsc::channel(4);
        let (live, _) = broadcast::channel(config.pipeline.broadcast_capacity);
        let buffers = buffers::Buffers::default();
        let settings = WriterSettings {
            buffers: buffers.clone(),
            max_transaction: config.ledger.max_transaction_readings,
            aggregates: aggregate_context(config, &limits),
            retention: config.ledger.retention,
            followers_max,
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
            buffers,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    use super::*;
    use crate::config::Synchronous;
    use crate::model::{Parameter, Reading, SourceKind, Status, Timestamp, Unit};

    fn config(dir: &std::path::Path) -> Config {
        crate::testing::cod_station_config(dir, "")
    }

    /// Batch `i` of ten COD readings a minute apart, ending before now.
    fn batch(i: i64, start: i64) -> Batch {
        let mut b = Batch::new(SourceKind::Api);
        for j in 0..10 {
            b.readings.push(Reading {
                station: StationId::parse("BN_KCNQV_NUOC01").unwrap(),
                parameter: Parameter::new("COD").unwrap(),
                ts: Timestamp(start + (i * 10 + j) * 60_000),
                value: 50.0 + j as f64,
                unit: Unit::new("mg/L"),
                status: Status::Measuring,
            });
        }
        b
    }

    /// A follower that stops reading holds the writer back once it holds the bound (the batch after it is
    /// committed and acked, the one after that waits), and once it reads again it gets every reading, once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lagging_follower_holds_the_writer_at_the_bound_and_still_gets_every_reading() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let ledger = Ledger::open(&config.ledger.path, Synchronous::Normal).unwrap();
        let limits = crate::compliance::resolve_limits(&config).unwrap();
        let metrics = Arc::new(Metrics::default());
        let pipeline = Pipeline::start_bounded(&config, limits, ledger, metrics.clone(), 100);
        let mut rx = pipeline.live.subscribe();
        let ingest = pipeline.ingest();
        let committed = Arc::new(AtomicUsize::new(0));
        let start = Timestamp::now().millis() - 2 * 86_400_000;
        let c = committed.clone();
        let mut submitter = tokio::spawn(async move {
            for i in 0..40 {
                ingest.submit(batch(i, start)).await.unwrap();
                c.fetch_add(1, SeqCst);
            }
        });
        // 10 batches fill the bound; the 11th is committed and acked, then waits to be published.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while committed.load(SeqCst) < 11 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the first 11 batches were not committed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let more = tokio::time::timeout(Duration::from_millis(500), &mut submitter).await;
        assert!(
            more.is_err(),
            "the writer went on while the follower held the bound"
        );
        assert_eq!(committed.load(SeqCst), 11);
        assert_eq!(metrics.totals().accepted, 110);

        let mut seen = std::collections::BTreeSet::new();
        let mut seqs = std::collections::BTreeSet::new();
        while seen.len() < 400 {
            let ev = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("every reading reaches the follower")
                .expect("the follower never lags");
            if let LiveEvent::Readings(batch) = ev {
                for c in batch.iter() {
                    assert!(
                        seen.insert(c.evaluated.reading.ts.millis()),
                        "a reading came twice"
                    );
                    assert!(seqs.insert(c.seq));
                }
            }
        }
        let expected: std::collections::BTreeSet<i64> =
            (0..400).map(|k| start + k * 60_000).collect();
        assert_eq!(seen, expected);
        tokio::time::timeout(Duration::from_secs(20), submitter)
            .await
            .expect("every batch is committed once the follower reads")
            .unwrap();
        drop(rx);
        pipeline.finish().await;
    }
}
