//! quantrac: automatic wastewater monitoring for Vietnamese environment departments.
//! See `DESIGN.md`-style overview in the README; each module's doc says what it owns.

pub mod alert;
pub mod bench;
pub mod circular10;
pub mod compliance;
pub mod config;
pub mod daemon;
pub mod export;
pub mod forward;
pub mod health;
pub mod hex;
pub mod http;
pub mod ledger;
pub mod live;
pub mod metrics;
pub mod model;
pub mod mqtt;
pub mod pipeline;
pub mod redact;
pub mod reload;
pub mod signals;
pub mod sim;
pub mod source;
