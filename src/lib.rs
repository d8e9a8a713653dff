//! quantrac: automatic wastewater monitoring for Vietnamese environment departments.
//! See `DESIGN.md`-style overview in the README; each module's doc says what it owns.

pub mod compliance;
pub mod config;
pub mod model;
pub mod ledger;
pub mod metrics;
pub mod pipeline;
pub mod sim;
pub mod daemon;
pub mod bench;
