//! quantrac: automatic wastewater monitoring for Vietnamese environment departments.
//! See `DESIGN.md`-style overview in the README; each module's doc says what it owns.

pub mod accounts;
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

/// Test support shared by the unit tests.
#[cfg(test)]
pub(crate) mod testing {
    /// Cases for a parser's property tests: `short` in the everyday run (`scripts/test`), a million with
    /// `QUANTRAC_PROPTEST_LONG=1`.
    pub fn cases(short: u32) -> u32 {
        if std::env::var_os("QUANTRAC_PROPTEST_LONG").is_some_and(|v| v == "1") {
            1_000_000
        } else {
            short
        }
    }
}
