//! The parameters an automatic wastewater station must monitor, checked as warnings (a station may be configured
//! before all its analysers are connected): `check-config` prints them and the daemon logs them at start-up.
//!
//! Source: the core automatically monitored parameters — flow in and out, temperature, pH, TSS, COD, ammonium —
//! from the former Decree 40/2019/ND-CP, kept in practice (docs: regulations reference §1). Sector parameters named
//! in the environmental permit (colour, total N, total P, …) are the permit's business and not checked here.

use std::fmt;

use super::station::Station;

/// Where the list comes from, cited in every warning.
pub const SOURCE: &str = "Decree 40/2019/ND-CP core automatic parameters, kept in practice";

/// The measured parameters required besides the flows, by Circular 10 symbol.
pub const REQUIRED: [(&str, &str); 5] = [
    ("Temp", "temperature"),
    ("pH", "pH"),
    ("TSS", "suspended solids"),
    ("COD", "COD"),
    ("NH4", "ammonium"),
];

/// One station's gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `station[i]`, the key path of the station.
    pub key: String,
    pub station: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.key, self.station, self.message)
    }
}

/// What `station` lacks of the mandatory parameters, and an inflow that is the outflow.
pub fn check(station: &Station) -> Vec<Warning> {
    let has = |sym: &str| station.parameter(sym).is_some();
    let warn = |message: String| Warning {
        key: format!("station[{}]", station.index),
        station: station.id.as_str().to_string(),
        message,
    };
    let mut out = Vec::new();
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|(sym, _)| !has(sym))
        .map(|(sym, name)| format!("{sym} ({name})"))
        .collect();
    if !missing.is_empty() {
        out.push(warn(format!(
            "does not monitor {}, required of an automatic wastewater station ({SOURCE})",
            missing.join(", ")
        )));
    }
    if !has(&station.flow_out) {
        out.push(warn(format!(
            "no outflow: parameter {:?} is not monitored; add it or name the discharge flow's parameter with flow_out ({SOURCE})",
            station.flow_out
        )));
    }
    match &station.flow_in {
        None => out.push(warn(format!(
            "no inflow declared: name the inflow's parameter with flow_in, e.g. flow_in = \"Flow_in\" ({SOURCE})"
        ))),
        Some(f) if *f == station.flow_out => out.push(warn(format!(
            "flow_in and flow_out are the same parameter {f:?}; inflow and outflow must be measured apart ({SOURCE})"
        ))),
        Some(_) => {}
    }
    out
}

/// The warnings of every station, in file order.
pub fn check_all(stations: &[Station]) -> Vec<Warning> {
    stations.iter().flat_map(check).collect()
}
