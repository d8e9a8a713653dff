//! Pure value generator: the same seed and time always give the same reading.

use crate::compliance::{LimitBound, StationLimits};
use crate::config::Station;
use crate::model::{Parameter, Reading, StationId, Status, Timestamp, Unit};

const HOUR_MS: i64 = 3_600_000;

/// One simulated station.
#[derive(Debug, Clone)]
pub struct StationSim {
    pub station: StationId,
    params: Vec<ParamSim>,
    seed: u64,
    /// Calibration: every `calibration_every_ms` the analysers calibrate for 30 minutes.
    calibration_every_ms: i64,
    calibration_phase_ms: i64,
}

#[derive(Debug, Clone)]
struct ParamSim {
    parameter: Parameter,
    unit: Unit,
    /// Typical level.
    base: f64,
    /// Relative day/night swing.
    diurnal: f64,
    /// Relative noise.
    noise: f64,
    /// Upper limit when the parameter drifts (level ramps from `base` to 1.45 × this over a 3-hour cycle).
    drift_to: Option<f64>,
    decimals: i32,
}

impl StationSim {
    pub fn new(station: &Station, limits: &StationLimits, seed: u64) -> Self {
        let sim = station.sim.clone().unwrap_or_default();
        let load = sim.load.unwrap_or(0.6);
        let station_seed = seed ^ fnv(station.id.as_str());
        let params = station
            .parameters
            .iter()
            .map(|p| {
                let bound = limits.get(&p.parameter).and_then(|l| l.bound);
                let sym = p.parameter.as_str();
                let (base, diurnal, noise, decimals) = match (sym, bound) {
                    ("pH", _) => (7.2, 0.02, 0.01, 2),
                    ("Temp", _) => (29.0, 0.05, 0.01, 1),
                    ("Flow", _) => (station.design_flow_m3_day / 24.0 * 0.8, 0.3, 0.04, 1),
                    (_, Some(LimitBound::Max(m))) => (m * load, 0.15, 0.05, 2),
                    (_, Some(LimitBound::Range(lo, hi))) => ((lo + hi) / 2.0, 0.02, 0.01, 2),
                    (_, None) => (10.0, 0.1, 0.05, 2),
                };
                let drift_to = match (&sim.drift, bound) {
                    (Some(d), Some(LimitBound::Max(m))) if d == sym => Some(m),
                    _ => None,
                };
                ParamSim {
                    parameter: p.parameter.clone(),
                    unit: p.unit.clone(),
                    base,
                    diurnal,
                    noise,
                    drift_to,
                    decimals,
                }
            })
            .collect();
        StationSim {
            station: station.id.clone(),
            params,
            seed: station_seed,
            calibration_every_ms: 20 * HOUR_MS + (station_seed % 7) as i64 * HOUR_MS,
            calibration_phase_ms: (station_seed % 20) as i64 * HOUR_MS,
        }
    }

    /// Readings for simulated time `sim_t`, stamped `stamp`.
    pub fn sample(&self, sim_t: Timestamp, stamp: Timestamp) -> Vec<Reading> {
        let calibrating = (sim_t.0 + self.calibration_phase_ms)
            .rem_euclid(self.calibration_every_ms)
            < HOUR_MS / 2;
        self.params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let hour = (sim_t.0 + 7 * HOUR_MS).rem_euclid(24 * HOUR_MS) as f64 / HOUR_MS as f64;
                // Plants load up during the working day: peak mid-afternoon, trough before dawn.
                let day = 1.0 + p.diurnal * ((hour - 9.0) / 24.0 * std::f64::consts::TAU).sin();
                let noise = 1.0 + p.noise * gaussian(self.seed, i as u64, stamp.0);
                let mut v = match p.drift_to {
                    Some(limit) => {
                        // 3-hour sawtooth: from the base level up to 1.45 × the limit, then the plant recovers.
                        let phase = (sim_t.0.rem_euclid(3 * HOUR_MS)) as f64 / (3 * HOUR_MS) as f64;
                        (p.base + (1.45 * limit - p.base) * phase) * noise
                    }
                    None => p.base * day * noise,
                };
                if calibrating && !matches!(p.parameter.as_str(), "Flow" | "Temp") {
                    // During calibration the analyser reads its standard solution, not the effluent
                    // (a pH 4.01 buffer for pH probes).
                    v = if p.parameter.as_str() == "pH" {
                        4.01
                    } else {
                        p.base * 2.5
                    };
                }
                let scale = 10f64.powi(p.decimals);
                Reading {
                    station: self.station.clone(),
                    parameter: p.parameter.clone(),
                    ts: stamp,
                    value: ((v.max(0.0)) * scale).round() / scale,
                    unit: p.unit.clone(),
                    status: if calibrating && !matches!(p.parameter.as_str(), "Flow" | "Temp") {
                        Status::Calibrating
                    } else {
                        Status::Measuring
                    },
                }
            })
            .collect()
    }
}

/// Deterministic standard-normal-ish noise from (seed, stream, time): sum of uniforms.
fn gaussian(seed: u64, stream: u64, t: i64) -> f64 {
    let mut rng = fastrand::Rng::with_seed(
        seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (t as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9),
    );
    (0..6).map(|_| rng.f64()).sum::<f64>() - 3.0
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}
