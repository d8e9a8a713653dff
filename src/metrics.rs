//! Process-wide counters, read by `/metrics`, logs and tests. Counted per batch, labelled by a small fixed set.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::ledger::CommitCounts;
use crate::model::SourceKind;

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
    /// Alerts raised and cleared, notifications delivered and failed.
    pub alerts: crate::alert::AlertMetrics,
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
}
