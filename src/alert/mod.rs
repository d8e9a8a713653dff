//! Alerts: the engine (a pure state machine per station, subject and kind), the runner that feeds it from the
//! pipeline and stores its decisions, the outbox in the ledger, and the notification channels.
//!
//! Every notification is an outbox row before anything is sent; delivery tasks, one per channel, retry with capped
//! backoff and record every attempt. The runner persists each key's state with its ledger cursors, so a restart
//! resumes mid-incident: nothing is raised twice and no clear is lost.

pub mod engine;
