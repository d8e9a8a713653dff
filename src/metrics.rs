//! Process-wide metrics: the one [`Registry`] that components register their collectors into and that `/metrics`
//! encodes, the small helpers collectors write their families with, and the pipeline's own counters ([`Metrics`]).
//!
//! Counting stays on plain atomics (per batch, labelled by a small fixed set); a collector reads them at scrape
//! time. Counters a component owns live with the component (e.g. `alert::AlertMetrics`); this module imports none
//! of them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

use crate::ledger::CommitCounts;
use crate::model::{SourceKind, Timestamp};

/// The `Content-Type` of what [`Registry::encode`] writes (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The one registry of the process. Cheap to clone; components register at start, `/metrics` encodes it.
#[derive(Clone, Debug, Default)]
pub struct Registry(Arc<RwLock<prometheus_client::registry::Registry>>);

impl Registry {
    /// Add a collector; its families follow those registered before it.
    pub fn register(&self, collector: impl Collector) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .register_collector(Box::new(collector));
    }

    /// Every registered family in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        let registry = self.0.read().unwrap_or_else(|e| e.into_inner());
        // Writing to a String cannot fail; a collector's own error would only cut the text short.
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
            tracing::warn!(error = %e, "A metrics collector failed; /metrics is incomplete.");
        }
        out
    }
}

/// A counter family: `# HELP`/`# TYPE` and one sample per label set. `name` is without `_total` (the encoder adds it).
pub fn counter<L: EncodeLabelSet, V: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        family
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

/// A gauge family: `# HELP`/`# TYPE` and one sample per label set.
pub fn gauge<L: EncodeLabelSet, V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// No labels, for a family of one sample.
pub const NO_LABELS: [(&str, &str); 0] = [];

/// Counters by source: readings accepted, duplicates, conflicts, quarantined.
#[derive(Debug, Default)]
pub struct Metrics {
    by_source: [SourceCounters; SourceKind::ALL.len()],
    /// Transactions committed by the ledger writer.
    pub commits: AtomicU64,
    /// Sum of commit durations, microseconds.
    pub commit_micros: AtomicU64,
    /// Batches waiting for the processor (sampled when the processor takes one).
    pub queue_depth: AtomicU64,
    /// TT10 files whose readings committed (moved to `processed/`).
    pub tt10_files_processed: AtomicU64,
    /// TT10 files rejected whole (moved to `rejected/` with a reason).
    pub tt10_files_rejected: AtomicU64,
    /// Ledger transactions that failed (nothing of them stored; the sources resend).
    pub commit_failures: AtomicU64,
    /// Set while the last commit failed (read without the lock on the per-commit path).
    failing: std::sync::atomic::AtomicBool,
    /// The last commit's failure, cleared by the next commit that succeeds: what `/readyz` reports.
    last_failure: std::sync::Mutex<Option<CommitFailure>>,
}

/// Why the ledger writer's last commit failed, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitFailure {
    pub at: Timestamp,
    pub error: String,
}

#[derive(Debug, Default)]
pub struct SourceCounters {
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub conflicts: AtomicU64,
    pub quarantined: AtomicU64,
}

impl Metrics {
    pub fn source(&self, s: SourceKind) -> &SourceCounters {
        &self.by_source[SourceKind::ALL.iter().position(|k| *k == s).unwrap_or(0)]
    }
    pub fn record(&self, s: SourceKind, c: CommitCounts) {
        let k = self.source(s);
        k.accepted.fetch_add(c.accepted, Relaxed);
        k.duplicates.fetch_add(c.duplicates, Relaxed);
        k.conflicts.fetch_add(c.conflicts, Relaxed);
        k.quarantined.fetch_add(c.quarantined, Relaxed);
    }
    /// The writer committed a transaction.
    pub fn commit_succeeded(&self) {
        if self.failing.load(Relaxed) {
            *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
            self.failing.store(false, Relaxed);
        }
    }
    /// The writer's commit failed with `error` (a sentence naming the ledger file).
    pub fn commit_failed(&self, error: String) {
        self.commit_failures.fetch_add(1, Relaxed);
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(CommitFailure {
            at: Timestamp::now(),
            error,
        });
        self.failing.store(true, Relaxed);
    }
    /// The last commit's failure, if the last commit failed.
    pub fn last_commit_failure(&self) -> Option<CommitFailure> {
        if !self.failing.load(Relaxed) {
            return None;
        }
        self.last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Totals over all sources.
    pub fn totals(&self) -> CommitCounts {
        let mut t = CommitCounts::default();
        for k in &self.by_source {
            t.add(CommitCounts {
                accepted: k.accepted.load(Relaxed),
                duplicates: k.duplicates.load(Relaxed),
                conflicts: k.conflicts.load(Relaxed),
                quarantined: k.quarantined.load(Relaxed),
            });
        }
        t
    }

    /// Let `/metrics` read these counters at each scrape.
    pub fn register(self: &Arc<Self>, registry: &Registry) {
        registry.register(PipelineCollector(self.clone()));
    }

    /// The families of the readings, the ledger writer, the queue and the TT10 landing.
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        type Pick = fn(&SourceCounters) -> &AtomicU64;
        let by_source: [(&str, &str, Pick); 4] = [
            (
                "quantrac_readings_accepted",
                "Readings committed to the ledger.",
                |c| &c.accepted,
            ),
            (
                "quantrac_readings_duplicate",
                "Redelivered readings already in the ledger (no-ops).",
                |c| &c.duplicates,
            ),
            (
                "quantrac_readings_conflict",
                "Readings whose key was stored with another value (kept first, recorded).",
                |c| &c.conflicts,
            ),
            (
                "quantrac_inputs_quarantined",
                "Inputs kept in quarantine with their reason.",
                |c| &c.quarantined,
            ),
        ];
        for (name, help, pick) in by_source {
            let samples = SourceKind::ALL.iter().map(|k| {
                (
                    [("source", k.as_str())],
                    pick(self.source(*k)).load(Relaxed),
                )
            });
            counter(&mut e, name, help, samples)?;
        }
        let one = |v| [(NO_LABELS, v)];
        counter(
            &mut e,
            "quantrac_ledger_commits",
            "Ledger transactions committed.",
            one(self.commits.load(Relaxed)),
        )?;
        counter(
            &mut e,
            "quantrac_ledger_commit_seconds",
            "Time spent committing ledger transactions.",
            [(NO_LABELS, self.commit_micros.load(Relaxed) as f64 / 1e6)],
        )?;
        counter(
            &mut e,
            "quantrac_ledger_commit_failures",
            "Ledger transactions that failed (the sources resend them).",
            one(self.commit_failures.load(Relaxed)),
        )?;
        gauge(
            &mut e,
            "quantrac_ledger_last_commit_ok",
            "1 unless the ledger writer's last commit failed (then /readyz answers 503).",
            one(u64::from(!self.failing.load(Relaxed))),
        )?;
        gauge(
            &mut e,
            "quantrac_pipeline_queue_depth",
            "Batches waiting for the processor.",
            one(self.queue_depth.load(Relaxed)),
        )?;
        counter(
            &mut e,
            "quantrac_tt10_files",
            "Circular 10 TXT files taken from the landing folders, by outcome.",
            [
                ("processed", &self.tt10_files_processed),
                ("rejected", &self.tt10_files_rejected),
            ]
            .map(|(outcome, c)| ([("outcome", outcome)], c.load(Relaxed))),
        )
    }
}

/// [`Metrics`] as a collector (a newtype: the registry owns its collectors).
#[derive(Debug)]
struct PipelineCollector(Arc<Metrics>);

impl Collector for PipelineCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        self.0.encode(encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_keep_their_names_types_and_help() {
        let m = Arc::new(Metrics::default());
        m.record(
            SourceKind::Sim,
            CommitCounts {
                accepted: 3,
                ..Default::default()
            },
        );
        m.commit_micros.store(1_500_000, Relaxed);
        let registry = Registry::default();
        m.register(&registry);
        let text = registry.encode();
        for line in [
            "# HELP quantrac_readings_accepted_total Readings committed to the ledger.",
            "# TYPE quantrac_readings_accepted_total counter",
            "quantrac_readings_accepted_total{source=\"sim\"} 3",
            "# TYPE quantrac_ledger_commit_seconds_total counter",
            "quantrac_ledger_commit_seconds_total 1.5",
            "# TYPE quantrac_pipeline_queue_depth gauge",
            "quantrac_pipeline_queue_depth 0",
            "quantrac_tt10_files_total{outcome=\"rejected\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
    }
}
