//! What a consumer follows: after each commit the pipeline publishes [`LiveEvent`]s on a broadcast channel (live
//! view, SSE, alert engine). The writer waits before publishing while the consumers hold too many committed readings
//! (`writer::Followers`), so a consumer that reads sees every reading. One that stops reading for 10 s is passed:
//! past the channel's capacity it is told it lagged, and the alert engine catches up from the ledger.

use std::sync::Arc;

use super::buffers::Buffers;
use crate::compliance::EventChange;
use crate::ledger::aggregates::WindowUpdate;
use crate::ledger::alerts::StoredAlert;
use crate::ledger::quality::FlagRevision;
use crate::ledger::Evaluated;

/// The accepted readings of one commit, as live consumers (dashboard, alerts) receive them. They are the writer's own
/// vector, not a copy (a copy per reading was a twentieth of the writer's time in a burst, most of it page faults on
/// the new vector); when the last consumer lets the batch go, the vector goes back to the processor to fill again.
pub struct CommittedBatch {
    readings: Vec<Evaluated>,
    /// The ledger's `seq` of each reading, by its place in `readings`.
    seqs: Vec<i64>,
    recycle: Option<Buffers>,
}

/// One committed reading of a [`CommittedBatch`].
#[derive(Debug, Clone, Copy)]
pub struct Committed<'a> {
    pub seq: i64,
    pub evaluated: &'a Evaluated,
}

impl CommittedBatch {
    /// `readings` with their `seqs`, one each.
    pub fn new(readings: Vec<Evaluated>, seqs: Vec<i64>) -> Self {
        assert_eq!(readings.len(), seqs.len(), "one seq per reading");
        CommittedBatch {
            readings,
            seqs,
            recycle: None,
        }
    }

    /// As [`CommittedBatch::new`]; the readings' vector goes back to `buffers` when the batch is dropped.
    pub(super) fn recycled(readings: Vec<Evaluated>, seqs: Vec<i64>, buffers: Buffers) -> Self {
        let mut batch = Self::new(readings, seqs);
        batch.recycle = Some(buffers);
        batch
    }

    pub fn len(&self) -> usize {
        self.readings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    /// The readings, in the order committed.
    pub fn readings(&self) -> &[Evaluated] {
        &self.readings
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Committed<'_>> {
        self.seqs
            .iter()
            .zip(&self.readings)
            .map(|(&seq, evaluated)| Committed { seq, evaluated })
    }
}

impl Drop for CommittedBatch {
    fn drop(&mut self) {
        if let Some(buffers) = self.recycle.take() {
            buffers.give(std::mem::take(&mut self.readings));
        }
    }
}

impl std::fmt::Debug for CommittedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Events the pipeline publishes after each commit.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    Readings(Arc<CommittedBatch>),
    Windows(Arc<Vec<WindowUpdate>>),
    /// Stored readings whose quality flags changed when an older reading arrived (flat line, spike and gap are
    /// judged in observation order).
    FlagsRevised(Arc<Vec<FlagRevision>>),
    /// Compliance events opened, escalated or closed (they feed the alert engine).
    Events(Arc<Vec<EventChange>>),
    /// Alerts raised, escalated, acknowledged or cleared, as they now stand (sent by the alert engine).
    Alerts(Arc<Vec<StoredAlert>>),
}
