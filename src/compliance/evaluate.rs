//! Per-reading evaluation: status, range checks, limit ratio and band, quality flags.

use std::collections::HashMap;

use super::band::Band;
use super::limits::{LimitBound, StationLimits};
use crate::config::Config;
use crate::model::{Reading, StationId, Timestamp};

/// Data-quality flags kept with a reading (bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(pub u32);

impl Flags {
    pub const ABOVE_RANGE: Flags = Flags(1);
    pub const FLAT_LINE: Flags = Flags(2);
    pub const SPIKE: Flags = Flags(4);
    pub const GAP: Flags = Flags(8);
    pub const LATE: Flags = Flags(16);
    const NAMES: [(Flags, &'static str); 5] = [
        (Flags::ABOVE_RANGE, "above_range"),
        (Flags::FLAT_LINE, "flat_line"),
        (Flags::SPIKE, "spike"),
        (Flags::GAP, "gap"),
        (Flags::LATE, "late"),
    ];
    pub fn contains(self, f: Flags) -> bool {
        self.0 & f.0 == f.0
    }
    pub fn insert(&mut self, f: Flags) {
        self.0 |= f.0;
    }
    /// Comma-separated names, e.g. `above_range,spike`.
    pub fn names(self) -> String {
        Self::NAMES
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What the engine decided for one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub limit: Option<LimitBound>,
    /// value ÷ Cmax for a maximum; `None` for ranges and unevaluated readings.
    pub ratio: Option<f64>,
    pub band: Band,
    pub flags: Flags,
}

/// Stateful evaluator for all stations (quality trackers keep per station/parameter history).
pub struct Evaluator {
    limits: HashMap<StationId, StationLimits>,
}

impl Evaluator {
    pub fn new(_config: &Config, limits: HashMap<StationId, StationLimits>) -> Self {
        Self { limits }
    }
    /// Evaluate one reading. `Err` is a quarantine reason (the reading is not a usable value).
    pub fn assess(&mut self, r: &Reading, _now: Timestamp) -> Result<Assessment, String> {
        let limits = self
            .limits
            .get(&r.station)
            .ok_or_else(|| format!("unknown station {}", r.station))?;
        let limit = limits.get(&r.parameter).ok_or_else(|| {
            format!(
                "parameter {} is not monitored at station {}",
                r.parameter, r.station
            )
        })?;
        Ok(Assessment {
            limit: limit.bound,
            ratio: None,
            band: Band::NoLimit,
            flags: Flags::default(),
        })
    }
}
