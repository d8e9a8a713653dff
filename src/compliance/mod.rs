//! Compliance engine: limit profiles with Kq/Kf, per-reading evaluation with Decree 45 bands, data-quality flags,
//! local-hour aggregates and exceedance events. Pure code: no I/O except reading profile files; the ledger persists
//! what this module decides.

pub mod band;
pub mod evaluate;
pub mod hourly;
pub mod limits;

pub use band::Band;
pub use evaluate::{Assessment, Evaluator, Flags};
pub use hourly::{Aggregate, Sample};
pub use limits::{LimitBound, Profiles, StationLimits};
