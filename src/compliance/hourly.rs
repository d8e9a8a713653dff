//! Window aggregates aligned to local clock hours (or days): mean/min/max of valid readings, completeness, and the
//! band of the mean; plus the helper that tells whether a recomputed window changed its verdict (late readings, H6).
//!
//! Pure: the ledger keeps each window's running totals ([`WindowSums`]), adds the readings that arrive, late or on
//! time alike, and stores the result. Only measuring readings are valid. The mean is summed in exact decimals, so
//! it does not depend on the order readings arrived in and its band is decided exactly (three readings of 3.63
//! against 3.3 are 1.1×, not 1.0999…×).

use std::time::Duration;

use rust_decimal::Decimal;

use super::band::Band;
use super::decimal;
use super::judge::Judge;
use super::limits::LimitBound;
use crate::model::{Status, Timestamp};

/// One hour in milliseconds: the default averaging window.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// Below this completeness a window's verdict carries a completeness warning (H3: 75 % warns, H2: 91.7 % does not).
pub const MIN_COMPLETENESS: f64 = 0.8;

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

impl Aggregate {
    /// True when fewer readings than `min_completeness` of the expected ones were valid (see [`MIN_COMPLETENESS`]).
    pub fn is_incomplete(&self, min_completeness: f64) -> bool {
        self.completeness < min_completeness
    }
}

/// Start of the local-time window (length `window_ms`, aligned to local midnight) that holds `ts`.
/// A non-positive `window_ms` is treated as 1 ms.
pub fn window_start(ts: Timestamp, offset_secs: i32, window_ms: i64) -> Timestamp {
    let window_ms = window_ms.max(1);
    let off = offset_secs as i64 * 1000;
    Timestamp((ts.0 + off).div_euclid(window_ms) * window_ms - off)
}

/// How many readings a window of `window` should hold at one reading per `interval` (12 for 1 h at 5 min).
/// 0 for a zero interval.
pub fn expected_count(window: Duration, interval: Duration) -> u32 {
    if interval.is_zero() {
        return 0;
    }
    u32::try_from(window.as_nanos() / interval.as_nanos()).unwrap_or(u32::MAX)
}

/// The running totals of a window's valid readings: all its aggregate and verdict need. A stored reading never
/// changes, so a window is kept current by adding the readings that arrive, not by re-reading all it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowSums {
    /// Measuring, finite readings.
    pub valid: u32,
    pub min: f64,
    pub max: f64,
    /// Exact sum; `None` once a value had no exact decimal form or the sum left the decimal range (garbage values).
    pub sum: Option<Decimal>,
    /// Float sum: the mean only when `sum` is `None`.
    pub float_sum: f64,
    /// No valid reading was negative, so sum ÷ expected count bounds the final mean from below.
    pub non_negative: bool,
}

impl Default for WindowSums {
    fn default() -> Self {
        Self {
            valid: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: Some(Decimal::ZERO),
            float_sum: 0.0,
            non_negative: true,
        }
    }
}

impl WindowSums {
    pub fn of(samples: &[Sample]) -> Self {
        let mut sums = Self::default();
        for s in samples {
            sums.add(s);
        }
        sums
    }

    /// Count one reading; only measuring, finite values count.
    pub fn add(&mut self, s: &Sample) {
        if !(s.status.counts_for_compliance() && s.value.is_finite()) {
            return;
        }
        self.valid = self.valid.saturating_add(1);
        self.min = self.min.min(s.value);
        self.max = self.max.max(s.value);
        self.float_sum += s.value;
        match decimal::from_f64(s.value) {
            Some(v) => {
                self.non_negative &= !v.is_sign_negative();
                self.sum = self.sum.and_then(|acc| acc.checked_add(v));
            }
            None => self.sum = None,
        }
    }

    /// The totals of both windows' readings together. Exact sums add exactly, so the order readings arrived in
    /// does not matter.
    pub fn merged(&self, other: &Self) -> Self {
        Self {
            valid: self.valid.saturating_add(other.valid),
            min: self.min.min(other.min),
            max: self.max.max(other.max),
            sum: self.sum.zip(other.sum).and_then(|(a, b)| a.checked_add(b)),
            float_sum: self.float_sum + other.float_sum,
            non_negative: self.non_negative && other.non_negative,
        }
    }

    /// The aggregate of the window these totals count.
    pub fn aggregate(&self, limit: Option<LimitBound>, expected: u32) -> Aggregate {
        let n = self.valid;
        let completeness = match (expected, n) {
            (0, 0) => 0.0,
            (0, _) => 1.0,
            (e, n) => (f64::from(n) / f64::from(e)).min(1.0),
        };
        let (mean, ratio, band) = if n == 0 {
            (None, None, Band::NotEvaluated)
        } else {
            // Exact unless a sum overflowed the decimal range (garbage values): then floats.
            let mean = match self.sum.and_then(|s| s.checked_div(Decimal::from(n))) {
                Some(m) => decimal::to_f64(m),
                None => self.float_sum / f64::from(n),
            };
            let verdict = limit.and_then(Judge::new).map(|j| match self.sum {
                Some(s) => j.mean(s, n),
                None => j.value(mean),
            });
            match verdict {
                Some(v) => (Some(mean), v.ratio, v.band),
                None => (Some(mean), None, Band::NoLimit),
            }
        };
        Aggregate {
            mean,
            min: (n > 0).then_some(self.min),
            max: (n > 0).then_some(self.max),
            valid: n,
            expected,
            completeness,
            ratio,
            band,
        }
    }
}

/// Aggregate the samples of one window. Only measuring, finite values count.
pub fn aggregate(samples: &[Sample], limit: Option<LimitBound>, expected: u32) -> Aggregate {
    WindowSums::of(samples).aggregate(limit, expected)
}

/// How a recomputed window differs from what was stored before.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Revision {
    /// Nothing changed (a redelivered duplicate, a non-measuring reading outside the mean…).
    Unchanged,
    /// Numbers changed (mean, completeness, …), the verdict did not.
    Revised,
    /// The band changed: record it (a late reading turned a compliant hour into an exceedance, or back).
    VerdictChanged { from: Band, to: Band },
}

impl Revision {
    /// True when anything changed.
    pub fn changed(self) -> bool {
        self != Revision::Unchanged
    }
}

/// Compare the stored aggregate of a window with a fresh recomputation.
pub fn revision(previous: &Aggregate, current: &Aggregate) -> Revision {
    if previous.band != current.band {
        Revision::VerdictChanged {
            from: previous.band,
            to: current.band,
        }
    } else if previous != current {
        Revision::Revised
    } else {
        Revision::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(min: i64, value: f64, status: Status) -> Sample {
        Sample {
            ts: Timestamp(min * 60_000),
            value,
            status,
        }
    }

    #[test]
    fn windows_align_to_local_time() {
        let vn = 7 * 3600;
        // 2026-11-27T03:00:00Z = 10:00 local.
        let t = Timestamp(1_795_748_400_000);
        assert_eq!(window_start(t, vn, HOUR_MS), t);
        assert_eq!(
            window_start(Timestamp(t.0 - 1), vn, HOUR_MS),
            Timestamp(t.0 - HOUR_MS)
        );
        // Local midnight 2026-11-27 is 2026-11-26T17:00Z.
        assert_eq!(window_start(t, vn, DAY_MS), Timestamp(t.0 - 10 * HOUR_MS));
        assert_eq!(window_start(t, vn, 0), t);
    }

    #[test]
    fn expected_counts() {
        let m = |x: u64| Duration::from_secs(60 * x);
        assert_eq!(expected_count(m(60), m(5)), 12);
        assert_eq!(expected_count(m(24 * 60), m(5)), 288);
        assert_eq!(expected_count(m(60), m(7)), 8);
        assert_eq!(expected_count(m(60), Duration::ZERO), 0);
    }

    #[test]
    fn empty_and_unlimited_windows() {
        let a = aggregate(&[], Some(LimitBound::Max(135.0)), 12);
        assert_eq!(
            (a.mean, a.valid, a.completeness, a.band),
            (None, 0, 0.0, Band::NotEvaluated)
        );
        let a = aggregate(&[s(0, 2.0, Status::Measuring)], None, 12);
        assert_eq!((a.mean, a.band, a.ratio), (Some(2.0), Band::NoLimit, None));
        let a = aggregate(
            &[s(0, 7.0, Status::Measuring)],
            Some(LimitBound::Range(5.5, 9.0)),
            12,
        );
        assert_eq!((a.ratio, a.band), (None, Band::Compliant));
    }

    #[test]
    fn mean_band_is_exact() {
        let samples: Vec<_> = (0..3).map(|i| s(i, 3.63, Status::Measuring)).collect();
        let a = aggregate(&samples, Some(LimitBound::Max(3.3)), 12);
        assert_eq!(a.mean, Some(3.63));
        assert_eq!(a.ratio, Some(1.1));
        assert_eq!(a.band, Band::From1_1To1_5);
        assert!(a.is_incomplete(MIN_COMPLETENESS));
    }

    #[test]
    fn revisions() {
        let base = aggregate(
            &[s(0, 130.0, Status::Measuring)],
            Some(LimitBound::Max(135.0)),
            12,
        );
        assert_eq!(revision(&base, &base.clone()), Revision::Unchanged);
        let more = aggregate(
            &[
                s(0, 130.0, Status::Measuring),
                s(5, 131.0, Status::Measuring),
            ],
            Some(LimitBound::Max(135.0)),
            12,
        );
        assert_eq!(revision(&base, &more), Revision::Revised);
        let worse = aggregate(
            &[
                s(0, 130.0, Status::Measuring),
                s(5, 200.0, Status::Measuring),
            ],
            Some(LimitBound::Max(135.0)),
            12,
        );
        assert_eq!(
            revision(&base, &worse),
            Revision::VerdictChanged {
                from: Band::Compliant,
                to: Band::From1_1To1_5
            }
        );
        assert!(revision(&base, &worse).changed());
    }
}
