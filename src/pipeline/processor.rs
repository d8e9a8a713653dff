//! The processor: clock check, quality checks and compliance evaluation of every reading, on the async side. It
//! groups every batch already queued (up to the transaction size) so the writer can commit them together, and
//! applies a reload at its exact place in the queue.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::error;

use super::ingest::{Batch, Done, Job, Reconfigure};
use super::writer::{aggregate_context, Group, Part, WriterMsg};
use crate::compliance::Evaluator;
use crate::ledger::Evaluated;
use crate::metrics::Metrics;
use crate::model::{Quarantined, Reading, Timestamp};

pub(super) struct Processor {
    pub rx: mpsc::Receiver<Job>,
    pub writer: mpsc::Sender<WriterMsg>,
    pub evaluator: Evaluator,
    pub future_skew: Duration,
    pub max_transaction: usize,
    pub metrics: Arc<Metrics>,
}

impl Processor {
    /// Run until every `Ingest` handle is gone (or the writer stops).
    pub async fn run(mut self) {
        // A reload met while grouping batches waits here until the group is on its way to the writer.
        let mut held: Option<Job> = None;
        loop {
            let first = match held.take() {
                Some(job) => job,
                None => match self.rx.recv().await {
                    Some(job) => job,
                    None => return,
                },
            };
            let (batch, done) = match first {
                Job::Batch { batch, done } => (batch, done),
                Job::Reconfigure(r, applied) => {
                    if self.reconfigure(*r).await.is_err() {
                        error!("Ledger writer stopped; batches can no longer be committed.");
                        return;
                    }
                    let _ = applied.send(());
                    continue;
                }
            };
            self.metrics
                .queue_depth
                .store(self.rx.len() as u64, Relaxed);
            let group = self.group(batch, done, &mut held);
            if self.writer.send(WriterMsg::Batch(group)).await.is_err() {
                error!("Ledger writer stopped; batches can no longer be committed.");
                return;
            }
        }
    }

    /// Switch to reloaded settings, and hand the writer its part of them.
    async fn reconfigure(&mut self, r: Reconfigure) -> Result<(), ()> {
        let Reconfigure { config, limits } = r;
        let ctx = aggregate_context(&config, &limits);
        self.evaluator
            .reconfigure(&config, limits, config.compliance.quality.clone());
        self.future_skew = config.future_skew;
        self.writer
            .send(WriterMsg::Settings(ctx, config.ledger.retention))
            .await
            .map_err(|_| ())
    }

    /// Judge `batch` and every batch already queued behind it, up to the transaction size. A reload met on the way
    /// is left in `held`.
    fn group(&mut self, batch: Batch, done: Done, held: &mut Option<Job>) -> Group {
        let now = Timestamp::now();
        let mut out = Group::default();
        let mut next = Some((batch, done));
        while let Some((batch, done)) = next.take() {
            self.judge(batch, done, now, &mut out);
            if out.readings.len() + out.quarantined.len() < self.max_transaction {
                match self.rx.try_recv() {
                    Ok(Job::Batch { batch, done }) => next = Some((batch, done)),
                    Ok(reload) => *held = Some(reload),
                    Err(_) => {}
                }
            }
        }
        out
    }

    /// Evaluate one batch into `out`: readings with their assessment, or quarantined with the reason.
    fn judge(&mut self, batch: Batch, done: Done, now: Timestamp, out: &mut Group) {
        let limit = now.millis() + self.future_skew.as_millis() as i64;
        let (start, qstart) = (out.readings.len(), out.quarantined.len());
        out.quarantined.extend(batch.quarantined);
        for r in batch.readings {
            let verdict = if r.ts.millis() > limit {
                Err(format!(
                    "timestamp {} is more than {} in the future (station clock fault?)",
                    r.ts,
                    humantime::format_duration(self.future_skew)
                ))
            } else {
                self.evaluator.assess(&r, now)
            };
            match verdict {
                Ok(assessment) => out.readings.push(Evaluated {
                    reading: r,
                    assessment,
                    source: batch.source,
                }),
                Err(reason) => out.quarantined.push(
                    Quarantined::new(
                        batch.source,
                        format!("{}/{}", r.station, r.parameter),
                        reason,
                        describe(&r),
                    )
                    .with_station(r.station.as_str()),
                ),
            }
        }
        out.parts.push(Part {
            readings: start..out.readings.len(),
            quarantined: (out.quarantined.len() - qstart) as u64,
            source: batch.source,
            done,
        });
    }
}

/// A reading as text, kept as the raw bytes of a quarantined reading.
fn describe(r: &Reading) -> Vec<u8> {
    format!(
        "station={} parameter={} ts={} value={} unit={} status={}",
        r.station,
        r.parameter,
        r.ts,
        r.value,
        r.unit,
        r.status.code()
    )
    .into_bytes()
}
