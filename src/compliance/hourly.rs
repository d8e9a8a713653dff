//! Window aggregates aligned to local clock hours (or days): mean/min/max of valid readings, completeness, band.

use super::band::Band;
use super::limits::LimitBound;
use crate::model::{Status, Timestamp};

/// One stored reading as the aggregation sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub ts: Timestamp,
    pub value: f64,
    pub status: Status,
}

/// Aggregate of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub valid: u32,
    pub expected: u32,
    /// valid ÷ expected, 0–1 (capped at 1).
    pub completeness: f64,
    pub ratio: Option<f64>,
    pub band: Band,
}

/// Start of the local-time window (length `window_ms`, aligned to local midnight) that holds `ts`.
pub fn window_start(ts: Timestamp, offset_secs: i32, window_ms: i64) -> Timestamp {
    let off = offset_secs as i64 * 1000;
    Timestamp((ts.0 + off).div_euclid(window_ms) * window_ms - off)
}

/// Aggregate the samples of one window.
pub fn aggregate(samples: &[Sample], _limit: Option<LimitBound>, expected: u32) -> Aggregate {
    let valid: Vec<f64> = samples
        .iter()
        .filter(|s| s.status.counts_for_compliance())
        .map(|s| s.value)
        .collect();
    let n = valid.len() as u32;
    let mean = (n > 0).then(|| valid.iter().sum::<f64>() / n as f64);
    Aggregate {
        mean,
        min: valid.iter().copied().reduce(f64::min),
        max: valid.iter().copied().reduce(f64::max),
        valid: n,
        expected,
        completeness: if expected == 0 {
            0.0
        } else {
            (n as f64 / expected as f64).min(1.0)
        },
        ratio: None,
        band: Band::NoLimit,
    }
}
