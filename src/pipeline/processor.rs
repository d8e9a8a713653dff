//! The processor: clock check, quality checks and compliance evaluation of every reading, on the async side. It
//! groups every batch already queued (up to the transaction size) so the writer can commit them together, and
//! applies a reload at its exact place in the queue.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::error;

use super::buffers::Buffers;
use super::ingest::{Batch, Done, Evidence, Job, Reconfigure};
use super::writer::{aggregate_context, Group, Part, WriterMsg};
use crate::compliance::{Assessment, Evaluator};
use crate::ledger::Evaluated;
use crate::metrics::Metrics;
use crate::model::{Quarantined, Reading, Received, Timestamp};

pub(super) struct Processor {
    pub rx: mpsc::Receiver<Job>,
    pub writer: mpsc::Sender<WriterMsg>,
    pub evaluator: Evaluator,
    pub future_skew: Duration,
    /// Readings older than this are quarantined: retention would delete them at its next pass.
    pub retention: Duration,
    pub max_transaction: usize,
    pub metrics: Arc<Metrics>,
    /// Emptied reading vectors (given back by the writer, or by the last live follower of a batch), to fill again.
    pub buffers: Buffers,
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
        self.retention = config.ledger.retention;
        self.writer
            .send(WriterMsg::Settings(ctx, config.ledger.retention))
            .await
            .map_err(|_| ())
    }

    /// Judge `batch` and every batch already queued behind it, up to the transaction size. A reload met on the way
    /// is left in `held`.
    fn group(&mut self, batch: Batch, done: Done, held: &mut Option<Job>) -> Group {
        let now = Timestamp::now();
        let mut out = Group {
            readings: self.buffers.take(),
            ..Group::default()
        };
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
        let (start, qstart) = (out.readings.len(), out.quarantined.len());
        out.quarantined.extend(batch.quarantined);
        let mut evidence = batch.evidence.iter().peekable();
        for (i, mut r) in batch.readings.into_iter().enumerate() {
            match self.judge_one(&mut r, now) {
                Ok((assessment, received)) => out.readings.push(Evaluated {
                    reading: r,
                    assessment,
                    source: batch.source,
                    received,
                }),
                Err(reason) => {
                    while evidence.next_if(|(range, _)| range.end <= i).is_some() {}
                    let from = evidence
                        .peek()
                        .filter(|(range, _)| range.contains(&i))
                        .map(|(_, e)| &**e);
                    out.quarantined
                        .push(refused(batch.source, &r, reason, from));
                }
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

impl Processor {
    /// Time check, then evaluation in the parameter's unit. A refused reading is left as it was received, so the
    /// quarantine row quotes what the station sent.
    fn judge_one(
        &mut self,
        r: &mut Reading,
        now: Timestamp,
    ) -> Result<(Assessment, Option<Received>), String> {
        check_time(r.ts, now, self.future_skew, self.retention)?;
        self.evaluator
            .evaluate_in_unit(r, now)
            .map_err(|e| e.to_string())
    }
}

/// A reading's time must be one the ledger can keep: not in the future beyond the allowed clock skew, not before
/// 2000 (a datalogger whose clock was reset), not older than retention keeps (it would vanish at the next retention
/// pass without a trace).
fn check_time(
    ts: Timestamp,
    now: Timestamp,
    future_skew: Duration,
    retention: Duration,
) -> Result<(), String> {
    let latest = now.millis().saturating_add(future_skew.as_millis() as i64);
    if ts.millis() > latest {
        return Err(format!(
            "timestamp {ts} is more than {} in the future (station clock fault?)",
            humantime::format_duration(future_skew)
        ));
    }
    if ts.millis() < YEAR_2000_MS {
        return Err(format!(
            "timestamp {ts} is before 2000-01-01 (station clock reset?)"
        ));
    }
    let horizon = now.millis().saturating_sub(retention.as_millis() as i64);
    if ts.millis() < horizon {
        return Err(format!(
                "timestamp {ts} is older than the retention horizon {} (ledger.retention): retention would delete it \
                 at its next pass",
                Timestamp(horizon)
            ));
    }
    Ok(())
}

/// 2000-01-01T00:00:00Z: no monitoring station reports earlier data.
const YEAR_2000_MS: i64 = 946_684_800_000;

/// The quarantine row of a refused reading: the input it was read from, as received, when the source kept it
/// (the reason names the parameter); otherwise the reading as text under `STATION/PARAMETER`.
fn refused(
    source: crate::model::SourceKind,
    r: &Reading,
    reason: String,
    from: Option<&Evidence>,
) -> Quarantined {
    let q = match from {
        Some(e) => Quarantined {
            received: e.received,
            ..Quarantined::new(
                source,
                e.origin.clone(),
                if reason.contains(r.parameter.as_str()) {
                    reason
                } else {
                    format!("{}: {reason}", r.parameter)
                },
                e.raw.clone(),
            )
        },
        None => Quarantined::new(
            source,
            format!("{}/{}", r.station, r.parameter),
            reason,
            describe(r),
        ),
    };
    q.with_station(r.station.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

    #[test]
    fn times_the_ledger_cannot_keep_are_refused_with_what_was_received() {
        let now = Timestamp(1_764_892_800_000); // 2025-12-05T00:00:00Z
        let (skew, retention) = (Duration::from_secs(300), 5 * YEAR);
        let check = |ts: i64| check_time(Timestamp(ts), now, skew, retention);
        assert_eq!(check(now.0), Ok(()));
        assert_eq!(check(now.0 + 300_000), Ok(()));
        assert_eq!(check(now.0 - 4 * 365 * 86_400_000), Ok(()));
        let future = check(now.0 + 300_001).unwrap_err();
        assert!(
            future.contains("2025-12-05T00:05:00.001Z is more than 5m in the future"),
            "{future}"
        );
        let max = check(i64::MAX).unwrap_err();
        assert!(
            max.starts_with(
                "timestamp 9223372036854775807 ms from 1970-01-01T00:00:00Z is more than"
            ),
            "{max}"
        );
        for (ts, shown) in [
            (0, "1970-01-01T00:00:00Z"),
            (-62_135_596_800_000, "0001-01-01T00:00:00Z"),
        ] {
            let old = check(ts).unwrap_err();
            assert_eq!(
                old,
                format!("timestamp {shown} is before 2000-01-01 (station clock reset?)")
            );
        }
        let ten = check(now.0 - 10 * 365 * 86_400_000).unwrap_err();
        assert!(
            ten.contains(
                "2015-12-08T00:00:00Z is older than the retention horizon 2020-12-06T00:00:00Z"
            ),
            "{ten}"
        );
        let min = check(i64::MIN).unwrap_err();
        assert!(min.contains("before 2000-01-01"), "{min}");
    }
}
