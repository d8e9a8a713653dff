//! quantrac: automatic wastewater monitoring for Vietnamese environment departments.
//! See `DESIGN.md`-style overview in the README; each module's doc says what it owns.

pub mod accounts;
pub mod alert;
pub mod allocator;
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

    /// One COD station (`BN_KCNQV_NUOC01`, QCVN 40 column B) on a ledger `ledger.db` in `dir` at `normal`, with
    /// `extra` TOML appended (say, its `[station.modbus]` table).
    pub fn cod_station_config(dir: &std::path::Path, extra: &str) -> crate::config::Config {
        let text = format!(
            r#"
[ledger]
path = "ledger.db"
synchronous = "normal"
[[station]]
id = "BN_KCNQV_NUOC01"
name = "QV"
profile = "qcvn40-2011-b"
design_flow_m3_day = 5000
receiving_water = {{ type = "river" }}
parameters = {{ COD = {{}} }}
{extra}
"#
        );
        crate::config::Config::from_str(&text, std::path::Path::new("t.toml"), dir).unwrap()
    }
}
