//! When a window is judged. The mean of the complete legal averaging window decides a violation: a window is judged
//! once it has closed (its end has passed) or holds its expected count of readings. Before that the running mean is
//! a forecast, shown in the aggregates and the live view, never an event, with one exception: concentrations cannot
//! be negative, so once the sum so far divided by the expected count already exceeds the limit, no reading still to
//! come can bring the mean back within it, and the window is judged early on that lower bound.
//!
//! Pure: the ledger passes the window's running totals, its aggregate and whether its end has passed.

use super::band::Band;
use super::hourly::{Aggregate, WindowSums};
use super::judge::Judge;
use super::limits::LimitBound;

/// How far a window's judgement has got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowVerdict {
    /// Still running and not yet decided: the running mean is only a forecast.
    Forecast,
    /// Still running, but already certain to exceed: the band and multiple of sum so far ÷ expected count, a lower
    /// bound of the final mean's.
    Early { band: Band, ratio: Option<f64> },
    /// Closed (or complete): the band and multiple of the window's mean.
    Final { band: Band, ratio: Option<f64> },
}

impl WindowVerdict {
    /// The band and multiple that judge the window, when it is judged.
    pub fn judged(self) -> Option<(Band, Option<f64>)> {
        match self {
            WindowVerdict::Forecast => None,
            WindowVerdict::Early { band, ratio } | WindowVerdict::Final { band, ratio } => {
                Some((band, ratio))
            }
        }
    }

    /// True once the window will not be judged again (unless a late reading lands in it).
    pub fn is_final(self) -> bool {
        matches!(self, WindowVerdict::Final { .. })
    }
}

/// Judge a window from its running totals and aggregate (computed from the same totals). `ended`: the window's end
/// has passed on the wall clock.
pub fn judge_window(
    sums: &WindowSums,
    aggregate: &Aggregate,
    limit: Option<LimitBound>,
    ended: bool,
) -> WindowVerdict {
    let complete = aggregate.expected > 0 && aggregate.valid >= aggregate.expected;
    if ended || complete {
        return WindowVerdict::Final {
            band: aggregate.band,
            ratio: aggregate.ratio,
        };
    }
    match certain_lower_bound(sums, limit, aggregate.expected) {
        Some(v) if v.band.is_exceedance() => WindowVerdict::Early {
            band: v.band,
            ratio: v.ratio,
        },
        _ => WindowVerdict::Forecast,
    }
}

/// The verdict of sum so far ÷ expected count, for a maximum limit (a range such as pH can come back within it).
/// `None` when it cannot be decided: no maximum, no expected count, a negative or unrepresentable value.
fn certain_lower_bound(
    sums: &WindowSums,
    limit: Option<LimitBound>,
    expected: u32,
) -> Option<super::judge::Verdict> {
    let (Some(bound @ LimitBound::Max(_)), true, true) = (limit, expected > 0, sums.non_negative)
    else {
        return None;
    };
    Some(Judge::new(bound)?.mean(sums.sum?, expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::hourly::Sample;
    use crate::model::{Status, Timestamp};

    fn samples(values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample {
                ts: Timestamp(i as i64 * 300_000),
                value: *v,
                status: Status::Measuring,
            })
            .collect()
    }

    fn judge(values: &[f64], limit: LimitBound, ended: bool) -> WindowVerdict {
        let s = WindowSums::of(&samples(values));
        let a = s.aggregate(Some(limit), 12);
        judge_window(&s, &a, Some(limit), ended)
    }

    const COD: LimitBound = LimitBound::Max(135.0);

    #[test]
    fn a_running_window_is_a_forecast_until_it_closes() {
        // One reading at 2× the limit: the running mean says 1_5_to_3, but eleven low readings could follow.
        assert_eq!(judge(&[270.0], COD, false), WindowVerdict::Forecast);
        // Once the hour has ended, the mean of what came decides.
        assert_eq!(
            judge(&[270.0], COD, true),
            WindowVerdict::Final {
                band: Band::From1_5To3,
                ratio: Some(2.0)
            }
        );
    }

    #[test]
    fn the_expected_count_closes_a_window_early() {
        assert_eq!(
            judge(&[130.0; 12], COD, false),
            WindowVerdict::Final {
                band: Band::Compliant,
                ratio: Some(130.0 / 135.0)
            }
        );
    }

    #[test]
    fn a_certain_exceedance_is_judged_before_the_window_closes() {
        // 7 × 270 = 1890 > 12 × 135 = 1620: whatever the last five readings are, the mean exceeds.
        match judge(&[270.0; 7], COD, false) {
            WindowVerdict::Early { band, ratio } => {
                assert_eq!(band, Band::From1_1To1_5);
                assert_eq!(ratio, Some(1890.0 / 1620.0));
            }
            other => panic!("{other:?}"),
        }
        // 6 × 270 = 1620 is exactly the limit × 12: not above it, not yet decided.
        assert_eq!(judge(&[270.0; 6], COD, false), WindowVerdict::Forecast);
    }

    #[test]
    fn ranges_are_never_judged_early() {
        let ph = LimitBound::Range(5.5, 9.0);
        assert_eq!(judge(&[12.0; 11], ph, false), WindowVerdict::Forecast);
        assert!(judge(&[12.0; 11], ph, true).is_final());
    }
}
