//! Exact judgement of a value (or a window sum) against one limit: the multiple and the Decree 45 band.
//!
//! A [`Judge`] is prepared once per limit: Cmax and the band thresholds (1.1, 1.5, 3, 5, 10 × Cmax) become decimals,
//! so judging a reading is one f64 → decimal conversion and a few exact comparisons; the division only produces the
//! multiple shown to people. Values too large for a decimal (garbage, not data) fall back to f64 comparison.

use rust_decimal::Decimal;

use super::band::{thresholds, Band, EXCEEDANCE};
use super::decimal;
use super::limits::LimitBound;

/// The outcome of one judgement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// value ÷ Cmax, computed exactly then rounded to the nearest f64; `None` for ranges.
    pub ratio: Option<f64>,
    pub band: Band,
}

/// A limit prepared for exact judgement.
#[derive(Debug, Clone, PartialEq)]
pub struct Judge {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Max {
        cmax: Decimal,
        cmax_f: f64,
        /// 1.1, 1.5, 3, 5, 10 × Cmax.
        steps: [Decimal; 5],
    },
    Range {
        lo: Decimal,
        hi: Decimal,
        lo_f: f64,
        hi_f: f64,
    },
}

impl Judge {
    /// Prepare `bound`. The f64s are read through their shortest decimal strings (so 3.3 is exactly 3.3).
    /// `None` if a bound is not a finite number representable as a decimal, or a maximum is not positive.
    pub fn new(bound: LimitBound) -> Option<Judge> {
        match bound {
            LimitBound::Max(m) => {
                let cmax = decimal::from_f64(m)?;
                if cmax <= Decimal::ZERO {
                    return None;
                }
                let mut steps = thresholds();
                for s in &mut steps {
                    *s = s.checked_mul(cmax)?;
                }
                Some(Judge {
                    kind: Kind::Max {
                        cmax,
                        cmax_f: m,
                        steps,
                    },
                })
            }
            LimitBound::Range(lo_f, hi_f) => {
                let (lo, hi) = (decimal::from_f64(lo_f)?, decimal::from_f64(hi_f)?);
                (lo <= hi).then_some(Judge {
                    kind: Kind::Range { lo, hi, lo_f, hi_f },
                })
            }
        }
    }

    /// Judge one value.
    pub fn value(&self, v: f64) -> Verdict {
        match (&self.kind, decimal::from_f64(v)) {
            (Kind::Max { cmax, steps, .. }, Some(d)) => Verdict {
                ratio: d.checked_div(*cmax).map(decimal::to_f64),
                band: band_of(d, *cmax, steps),
            },
            (Kind::Range { lo, hi, .. }, Some(d)) => range_verdict(*lo <= d && d <= *hi),
            (Kind::Max { cmax_f, .. }, None) => float_max(v, *cmax_f),
            (Kind::Range { lo_f, hi_f, .. }, None) => range_verdict(*lo_f <= v && v <= *hi_f),
        }
    }

    /// Judge the mean `sum ÷ n` without rounding it: compares `sum` with `n ×` each threshold. `n` must be > 0.
    pub fn mean(&self, sum: Decimal, n: u32) -> Verdict {
        let nd = Decimal::from(n.max(1));
        let exact = match &self.kind {
            Kind::Max { cmax, steps, .. } => (|| {
                let scaled_cmax = cmax.checked_mul(nd)?;
                let mut scaled = *steps;
                for s in &mut scaled {
                    *s = s.checked_mul(nd)?;
                }
                Some(Verdict {
                    ratio: sum.checked_div(scaled_cmax).map(decimal::to_f64),
                    band: band_of(sum, scaled_cmax, &scaled),
                })
            })(),
            Kind::Range { lo, hi, .. } => (|| {
                let (lo, hi) = (lo.checked_mul(nd)?, hi.checked_mul(nd)?);
                Some(range_verdict(lo <= sum && sum <= hi))
            })(),
        };
        exact.unwrap_or_else(|| self.value(decimal::to_f64(sum) / f64::from(n.max(1))))
    }

    /// The bound this judge was prepared from.
    pub fn bound(&self) -> LimitBound {
        match &self.kind {
            Kind::Max { cmax_f, .. } => LimitBound::Max(*cmax_f),
            Kind::Range { lo_f, hi_f, .. } => LimitBound::Range(*lo_f, *hi_f),
        }
    }
}

fn band_of(v: Decimal, cmax: Decimal, steps: &[Decimal; 5]) -> Band {
    if v <= cmax {
        return Band::Compliant;
    }
    EXCEEDANCE[steps.iter().filter(|s| v >= **s).count()]
}

fn range_verdict(inside: bool) -> Verdict {
    Verdict {
        ratio: None,
        band: if inside {
            Band::Compliant
        } else {
            Band::OutOfRange
        },
    }
}

/// Only for values beyond the decimal range (about 10^28) or too small to print in 64 characters.
fn float_max(v: f64, cmax: f64) -> Verdict {
    let ratio = v / cmax;
    let band = if ratio <= 1.0 {
        Band::Compliant
    } else {
        let steps = [1.1, 1.5, 3.0, 5.0, 10.0];
        EXCEEDANCE[steps.iter().filter(|s| ratio >= **s).count()]
    };
    Verdict {
        ratio: Some(ratio),
        band,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn float_traps_are_decided_exactly() {
        let j = Judge::new(LimitBound::Max(3.3)).unwrap();
        assert_eq!(
            j.value(3.63),
            Verdict {
                ratio: Some(1.1),
                band: Band::From1_1To1_5
            }
        );
        let j = Judge::new(LimitBound::Max(181.5)).unwrap();
        assert_eq!(j.value(272.25).band, Band::From1_5To3);
        assert_eq!(j.value(272.25).ratio, Some(1.5));
    }

    #[test]
    fn mean_is_judged_without_rounding() {
        let j = Judge::new(LimitBound::Max(3.3)).unwrap();
        // 3 × 3.63 = 10.89; 10.89 / 3 = 3.63 = 1.1 × 3.3 exactly.
        let v = j.mean(Decimal::from_str("10.89").unwrap(), 3);
        assert_eq!(v.band, Band::From1_1To1_5);
        assert_eq!(v.ratio, Some(1.1));
        // 1630 / 12 = 135.8333… against 135: lt_1_1.
        let j = Judge::new(LimitBound::Max(135.0)).unwrap();
        assert_eq!(j.mean(Decimal::from(1630), 12).band, Band::Lt1_1);
    }

    #[test]
    fn ranges_are_inclusive() {
        let j = Judge::new(LimitBound::Range(5.5, 9.0)).unwrap();
        assert_eq!(j.value(5.5).band, Band::Compliant);
        assert_eq!(j.value(9.0).band, Band::Compliant);
        assert_eq!(j.value(9.2).band, Band::OutOfRange);
        assert_eq!(j.value(5.49).band, Band::OutOfRange);
        assert_eq!(j.value(9.2).ratio, None);
    }

    #[test]
    fn huge_values_fall_back_to_floats() {
        let j = Judge::new(LimitBound::Max(135.0)).unwrap();
        assert_eq!(j.value(1e300).band, Band::Ge10);
        assert_eq!(j.value(1e-300).band, Band::Compliant);
    }

    #[test]
    fn rejects_unusable_bounds() {
        assert!(Judge::new(LimitBound::Max(0.0)).is_none());
        assert!(Judge::new(LimitBound::Max(f64::NAN)).is_none());
        assert!(Judge::new(LimitBound::Range(9.0, 5.5)).is_none());
    }
}
