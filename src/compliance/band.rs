//! Decree 45/2022 exceedance bands: the names, their order of severity, and the band of an exact multiple.
//!
//! Boundaries (compliance-cases.md): ≤ 1.0 compliant; (1.0, 1.1) `lt_1_1`; [1.1, 1.5); [1.5, 3); [3, 5); [5, 10);
//! ≥ 10. Deciding them needs exact decimals: see [`super::judge`].

use rust_decimal::Decimal;

/// Verdict for one value (or one window mean) against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Band {
    /// Status was not measuring (or the window held no valid reading): stored, not evaluated.
    NotEvaluated,
    /// No limit applies (e.g. Flow).
    NoLimit,
    Compliant,
    Lt1_1,
    From1_1To1_5,
    From1_5To3,
    From3To5,
    From5To10,
    Ge10,
    /// Outside a two-sided range (pH): no multiple.
    OutOfRange,
}

impl Band {
    /// Every band, in declaration order.
    pub const ALL: [Band; 10] = [
        Band::NotEvaluated,
        Band::NoLimit,
        Band::Compliant,
        Band::Lt1_1,
        Band::From1_1To1_5,
        Band::From1_5To3,
        Band::From3To5,
        Band::From5To10,
        Band::Ge10,
        Band::OutOfRange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Band::NotEvaluated => "not_evaluated",
            Band::NoLimit => "no_limit",
            Band::Compliant => "compliant",
            Band::Lt1_1 => "lt_1_1",
            Band::From1_1To1_5 => "1_1_to_1_5",
            Band::From1_5To3 => "1_5_to_3",
            Band::From3To5 => "3_to_5",
            Band::From5To10 => "5_to_10",
            Band::Ge10 => "ge_10",
            Band::OutOfRange => "out_of_range",
        }
    }

    /// The band named by [`Band::as_str`] (as the ledger stores it).
    pub fn parse(s: &str) -> Option<Band> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// True for every band that breaks the limit.
    pub fn is_exceedance(self) -> bool {
        !matches!(self, Band::NotEvaluated | Band::NoLimit | Band::Compliant)
    }

    /// How serious the band is: 0 for no exceedance, 1 (`lt_1_1`, `out_of_range`) up to 6 (`ge_10`).
    /// Monotonic in the multiple, so events can tell an escalation.
    pub fn severity(self) -> u8 {
        match self {
            Band::NotEvaluated | Band::NoLimit | Band::Compliant => 0,
            Band::Lt1_1 | Band::OutOfRange => 1,
            Band::From1_1To1_5 => 2,
            Band::From1_5To3 => 3,
            Band::From3To5 => 4,
            Band::From5To10 => 5,
            Band::Ge10 => 6,
        }
    }

    /// The band of an exact multiple (value ÷ Cmax).
    pub fn for_ratio(ratio: Decimal) -> Band {
        let lower_bounds = thresholds();
        if ratio <= Decimal::ONE {
            return Band::Compliant;
        }
        let above = lower_bounds.iter().filter(|t| ratio >= **t).count();
        EXCEEDANCE[above]
    }
}

impl std::fmt::Display for Band {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Exceedance bands above 1.0×, in order; `EXCEEDANCE[i]` holds multiples that reach `i` of the [`thresholds`].
pub(crate) const EXCEEDANCE: [Band; 6] = [
    Band::Lt1_1,
    Band::From1_1To1_5,
    Band::From1_5To3,
    Band::From3To5,
    Band::From5To10,
    Band::Ge10,
];

/// Lower bounds (inclusive) of the bands above `lt_1_1`: 1.1, 1.5, 3, 5, 10.
pub(crate) fn thresholds() -> [Decimal; 5] {
    [
        Decimal::new(11, 1),
        Decimal::new(15, 1),
        Decimal::new(3, 0),
        Decimal::new(5, 0),
        Decimal::new(10, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn ratio_boundaries() {
        let b = |s: &str| Band::for_ratio(Decimal::from_str(s).unwrap());
        assert_eq!(b("0"), Band::Compliant);
        assert_eq!(b("1.0"), Band::Compliant);
        assert_eq!(b("1.0000001"), Band::Lt1_1);
        assert_eq!(b("1.0999999"), Band::Lt1_1);
        assert_eq!(b("1.1"), Band::From1_1To1_5);
        assert_eq!(b("1.5"), Band::From1_5To3);
        assert_eq!(b("2.9999"), Band::From1_5To3);
        assert_eq!(b("3"), Band::From3To5);
        assert_eq!(b("5"), Band::From5To10);
        assert_eq!(b("10"), Band::Ge10);
        assert_eq!(b("1000"), Band::Ge10);
    }

    #[test]
    fn names_round_trip() {
        for band in Band::ALL {
            assert_eq!(Band::parse(band.as_str()), Some(band));
        }
        assert_eq!(Band::parse("bad"), None);
    }
}
