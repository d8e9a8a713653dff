//! Compliance engine: limit profiles with Kq/Kf, per-reading evaluation with Decree 45 bands, data-quality flags,
//! local-hour aggregates and exceedance events. Pure code: no I/O except reading profile files; the ledger persists
//! what this module decides, the alert engine turns its events into notifications.

pub mod band;
pub mod decimal;
pub mod evaluate;
pub mod events;
pub mod hourly;
pub mod judge;
pub mod limits;
pub mod profile;
pub mod quality;
pub mod units;
pub mod verdict;

pub use band::Band;
pub use evaluate::{Assessment, Evaluator, Rejection};
pub use events::{
    Event, EventChange, EventKey, EventTracker, Follow, Observation, OpenEvent, Scope,
};
pub use hourly::{Aggregate, Revision, Sample, WindowSums};
pub use judge::{Judge, Verdict};
pub use limits::{resolve_limits, Limit, LimitBound, Profiles, StationLimits};
pub use profile::{Profile, ProfileError};
pub use quality::{Flags, QualitySettings};
pub use verdict::{judge_window, WindowVerdict};
