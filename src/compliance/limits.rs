//! Limit profiles and the limits that apply to each station (Cmax = C × Kq × Kf).

use std::collections::HashMap;
use std::path::Path;

use crate::config::{Config, Station};
use crate::model::{Parameter, StationId};

/// An applicable limit: a maximum or a two-sided range (bounds inclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitBound {
    Max(f64),
    Range(f64, f64),
}

/// The limit of one parameter at one station, with the working an officer can check.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub parameter: Parameter,
    pub bound: Option<LimitBound>,
    /// e.g. `C=150 × Kq 1.0 (river, Q=120 m³/s) × Kf 0.9 (F=13,000 m³/day) = 135 mg/L`.
    pub working: String,
}

/// Limits of every monitored parameter of one station.
#[derive(Debug, Clone, Default)]
pub struct StationLimits {
    pub limits: Vec<Limit>,
}

impl StationLimits {
    pub fn get(&self, p: &Parameter) -> Option<&Limit> {
        self.limits.iter().find(|l| &l.parameter == p)
    }
}

/// Loaded limit profiles.
#[derive(Debug, Clone, Default)]
pub struct Profiles {}

impl Profiles {
    /// Profiles embedded in the binary (QCVN 40:2011 columns A and B).
    pub fn builtin() -> Profiles {
        Profiles {}
    }
    /// Built-in profiles plus every `*.toml` in `dir` (a missing folder is not an error).
    /// Errors: (file, message).
    pub fn load_dir(_dir: &Path) -> Result<Profiles, Vec<(String, String)>> {
        Ok(Profiles {})
    }
    /// The limits of one station. Errors: (key path below the station, e.g. `profile`, message).
    pub fn station_limits(
        &self,
        station: &Station,
    ) -> Result<StationLimits, Vec<(String, String)>> {
        Ok(StationLimits {
            limits: station
                .parameters
                .iter()
                .map(|p| Limit {
                    parameter: p.parameter.clone(),
                    bound: None,
                    working: "no limit".into(),
                })
                .collect(),
        })
    }
    /// Limits of every station of a config. Errors: (key path, message).
    pub fn resolve(
        &self,
        config: &Config,
    ) -> Result<HashMap<StationId, StationLimits>, Vec<(String, String)>> {
        let mut out = HashMap::new();
        let mut errs = Vec::new();
        for s in &config.stations {
            match self.station_limits(s) {
                Ok(l) => {
                    out.insert(s.id.clone(), l);
                }
                Err(e) => errs.extend(
                    e.into_iter()
                        .map(|(k, m)| (format!("station[{}].{k}", s.index), m)),
                ),
            }
        }
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(errs)
        }
    }
}
