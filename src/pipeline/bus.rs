//! What a consumer follows: after each commit the pipeline publishes [`LiveEvent`]s on a broadcast channel (live
//! view, SSE, alert engine). The writer waits before publishing while the consumers hold too many committed readings
//! (`writer::Followers`), so a consumer that reads sees every reading. One that stops reading for 10 s is passed:
//! past the channel's capacity it is told it lagged, and the alert engine catches up from the ledger.

use std::sync::Arc;

use crate::compliance::EventChange;
use crate::ledger::aggregates::WindowUpdate;
use crate::ledger::alerts::StoredAlert;
use crate::ledger::quality::FlagRevision;
use crate::ledger::Evaluated;

/// A committed reading, as live consumers (dashboard, alerts) receive it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub seq: i64,
    pub evaluated: Evaluated,
}

/// Events the pipeline publishes after each commit.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    Readings(Arc<Vec<Committed>>),
    Windows(Arc<Vec<WindowUpdate>>),
    /// Stored readings whose quality flags changed when an older reading arrived (flat line, spike and gap are
    /// judged in observation order).
    FlagsRevised(Arc<Vec<FlagRevision>>),
    /// Compliance events opened, escalated or closed (they feed the alert engine).
    Events(Arc<Vec<EventChange>>),
    /// Alerts raised, escalated, acknowledged or cleared, as they now stand (sent by the alert engine).
    Alerts(Arc<Vec<StoredAlert>>),
}
