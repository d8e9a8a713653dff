//! Compliance engine measurements for `quantrac bench`: numbers only, printed by the CLI, never asserted.
//!
//! (a) evaluation cost per reading over 1 M assessments of one station's ten parameters;
//! (b) hourly aggregation of one year of 5-minute data for ten parameters of one station.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use crate::compliance::evaluate::Evaluator;
use crate::compliance::hourly::{aggregate, window_start, Sample, HOUR_MS};
use crate::compliance::limits::Profiles;
use crate::compliance::{LimitBound, StationLimits};
use crate::config::Config;
use crate::model::{Parameter, Reading, StationId, Status, Timestamp, Unit};

const STATION: &str = r#"
[[station]]
id = "BN_BENCH_NUOC01"
name = "Bench"
profile = "qcvn40-2011-b"
design_flow_m3_day = 5000
receiving_water = { type = "river", flow_m3_s = 120 }
interval = "5m"
parameters = { Flow = {}, Temp = {}, pH = {}, TSS = { range = [0, 300] }, COD = { range = [0, 400] }, NH4 = { range = [0, 50] }, TP = {}, TN = {}, TOC = { unit = "mg/L" }, Cl = {} }
"#;

const STEP_MS: i64 = 300_000;

type Limits = std::collections::HashMap<StationId, StationLimits>;

/// Typical level of a parameter (the config lists parameters in symbol order).
fn base(symbol: &str) -> f64 {
    match symbol {
        "Flow" => 300.0,
        "Temp" => 29.0,
        "pH" => 7.2,
        "TSS" => 60.0,
        "COD" => 90.0,
        "NH4" => 6.0,
        "TP" => 3.0,
        "TN" => 25.0,
        "TOC" => 20.0,
        "Cl" => 400.0,
        _ => 10.0,
    }
}

/// Plausible value of parameter number `param` at step `i`, wandering ±30 % around its typical level (two decimals,
/// like analysers report).
fn value(base: f64, param: usize, i: usize) -> f64 {
    let wiggle = ((i * 7 + param * 13) % 41) as f64 / 40.0 - 0.5; // −0.5 … 0.5
    (base * (1.0 + 0.6 * wiggle) * 100.0).round() / 100.0
}

/// `(name, number)` pairs: `evaluate_ns_per_reading`, `hourly_year_seconds`, and counts for context.
pub fn run() -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let Ok(config) = Config::from_str(STATION, Path::new("<bench>"), Path::new(".")) else {
        return out;
    };
    let Ok(limits) = Profiles::builtin().resolve(&config) else {
        return out;
    };
    let Some(station) = config.stations.first() else {
        return out;
    };
    let params: Vec<Parameter> = station
        .parameters
        .iter()
        .map(|p| p.parameter.clone())
        .collect();
    let bases: Vec<f64> = params.iter().map(|p| base(p.as_str())).collect();

    let id = StationId::parse("BN_BENCH_NUOC01").ok();
    let Some(id) = id else { return out };
    let t0 = 1_767_200_400_000_i64; // 2026-01-01 local midnight
    evaluation(&mut out, &config, &limits, &params, &bases, &id, t0);
    hourly_year(&mut out, &config, &limits, &params, &bases, &id, t0);
    out
}

/// (a) Evaluation cost: readings prepared up front so only `assess` is timed.
fn evaluation(
    out: &mut Vec<(String, f64)>,
    config: &Config,
    limits: &Limits,
    params: &[Parameter],
    bases: &[f64],
    id: &StationId,
    t0: i64,
) {
    let total = 1_000_000;
    let unit = Unit::new("mg/L");
    let readings: Vec<Reading> = (0..total)
        .map(|n| {
            let (step, p) = (n / params.len(), n % params.len());
            Reading {
                station: id.clone(),
                parameter: params[p].clone(),
                ts: Timestamp(t0 + step as i64 * STEP_MS),
                value: value(bases[p], p, step),
                unit: unit.clone(),
                status: if step % 97 == 0 {
                    Status::Calibrating
                } else {
                    Status::Measuring
                },
            }
        })
        .collect();
    let mut evaluator = Evaluator::new(config, limits.clone());
    let start = Instant::now();
    let mut accepted = 0usize;
    for r in &readings {
        if black_box(evaluator.assess(black_box(r), r.ts)).is_ok() {
            accepted += 1;
        }
    }
    let elapsed = start.elapsed();
    out.push((
        "evaluate_ns_per_reading".into(),
        elapsed.as_nanos() as f64 / total as f64,
    ));
    out.push(("evaluate_readings".into(), total as f64));
    out.push(("evaluate_accepted".into(), accepted as f64));
}

/// (b) Hourly aggregation of one year: samples per parameter in time order, grouped by local hour.
fn hourly_year(
    out: &mut Vec<(String, f64)>,
    config: &Config,
    limits: &Limits,
    params: &[Parameter],
    bases: &[f64],
    id: &StationId,
    t0: i64,
) {
    let steps = 365 * 24 * 12;
    let series: Vec<(Option<LimitBound>, Vec<Sample>)> = params
        .iter()
        .enumerate()
        .map(|(p, param)| {
            let bound = limits
                .get(id)
                .and_then(|l| l.get(param))
                .and_then(|l| l.bound);
            let samples = (0..steps)
                .map(|i| Sample {
                    ts: Timestamp(t0 + i as i64 * STEP_MS),
                    value: value(bases[p], p, i),
                    status: if i % 97 == 0 {
                        Status::Calibrating
                    } else {
                        Status::Measuring
                    },
                })
                .collect();
            (bound, samples)
        })
        .collect();
    let offset = config.timezone.local_minus_utc();
    let start = Instant::now();
    let mut windows = 0usize;
    for (bound, samples) in &series {
        for hour in samples.chunk_by(|a, b| {
            window_start(a.ts, offset, HOUR_MS) == window_start(b.ts, offset, HOUR_MS)
        }) {
            black_box(aggregate(black_box(hour), *bound, 12));
            windows += 1;
        }
    }
    out.push(("hourly_year_seconds".into(), start.elapsed().as_secs_f64()));
    out.push(("hourly_year_windows".into(), windows as f64));
    out.push(("hourly_year_samples".into(), (steps * params.len()) as f64));
}

#[cfg(test)]
mod tests {
    /// `cargo test --release --lib bench::compliance -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn print_numbers() {
        for (name, v) in super::run() {
            println!("{name} = {v}");
        }
    }
}
