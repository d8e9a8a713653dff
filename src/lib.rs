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

    /// A COD reading of 50 mg/L at `BN_KCNQV_NUOC01`, at `ts` (Unix ms), judged against no limit.
    pub fn cod_reading(ts: i64) -> crate::ledger::Evaluated {
        use crate::compliance::{Assessment, Band, Flags};
        use crate::model::{Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit};
        crate::ledger::Evaluated {
            reading: Reading {
                station: StationId::parse("BN_KCNQV_NUOC01").unwrap(),
                parameter: Parameter::new("COD").unwrap(),
                ts: Timestamp(ts),
                value: 50.0,
                unit: Unit::new("mg/L"),
                status: Status::Measuring,
            },
            assessment: Assessment {
                rules: Default::default(),
                limit: None,
                ratio: None,
                band: Band::NoLimit,
                flags: Flags::default(),
            },
            source: SourceKind::Sim,
            received: None,
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
