//! Decree 45/2022 exceedance bands.

/// Verdict for one value (or one window mean) against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Band {
    /// Status was not measuring: stored, not evaluated.
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
    /// True for every band that breaks the limit.
    pub fn is_exceedance(self) -> bool {
        !matches!(self, Band::NotEvaluated | Band::NoLimit | Band::Compliant)
    }
}
