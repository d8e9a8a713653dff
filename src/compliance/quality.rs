//! Data-quality checks on one series (one parameter of one station): flat line, spike, gap and late arrival.
//!
//! Pure and stateful: [`Track`] keeps the little history each check needs; the evaluator holds one per series.
//! The flags are advice kept with each reading — they never change a verdict or reject a reading.
//!
//! Rules (defaults in [`QualitySettings::default`]):
//! - **gap**: the reading comes more than `interval × gap_factor` after the previous one (any status). A gap also
//!   resets the flat-line and spike history: there is no evidence across it.
//! - **flat line**: a measuring value identical to the one that started the current run, for longer than
//!   `flat_line` (a stuck analyser repeats its last value exactly).
//! - **spike**: a measuring value that moved from the previous measuring value by more than `spike_fraction` of the
//!   scale per reporting interval. The scale is the limit (Cmax; the width of a range for pH), or the analyser range
//!   width when no limit applies; no scale, no spike check. Readings closer than one interval count as one interval
//!   apart, so jitter does not inflate the rate. Both edges of a one-reading spike are flagged.
//! - **late**: received more than `late_after` after its timestamp.
//!
//! Readings older than (or as old as) the newest already seen — late arrivals, redeliveries — are checked only for
//! lateness and leave the history alone, so replays cannot fake a gap or a spike.

use std::time::Duration;

pub use crate::config::compliance::QualitySettings;

/// Data-quality flags kept with a reading (bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(pub u32);

impl Flags {
    pub const ABOVE_RANGE: Flags = Flags(1);
    pub const FLAT_LINE: Flags = Flags(2);
    pub const SPIKE: Flags = Flags(4);
    pub const GAP: Flags = Flags(8);
    pub const LATE: Flags = Flags(16);
    const NAMES: [(Flags, &'static str); 5] = [
        (Flags::ABOVE_RANGE, "above_range"),
        (Flags::FLAT_LINE, "flat_line"),
        (Flags::SPIKE, "spike"),
        (Flags::GAP, "gap"),
        (Flags::LATE, "late"),
    ];
    pub fn contains(self, f: Flags) -> bool {
        self.0 & f.0 == f.0
    }
    pub fn insert(&mut self, f: Flags) {
        self.0 |= f.0;
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Comma-separated names, e.g. `above_range,spike`.
    pub fn names(self) -> String {
        Self::NAMES
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }
    /// The flags named in a comma-separated list (the inverse of [`Flags::names`]); unknown names are ignored.
    pub fn from_names(s: &str) -> Flags {
        let mut out = Flags::default();
        for n in s.split(',').map(str::trim) {
            if let Some((f, _)) = Self::NAMES.iter().find(|(_, name)| *name == n) {
                out.insert(*f);
            }
        }
        out
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

/// What a series' checks need to know, prepared once per series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesRules {
    interval_ms: i64,
    gap_ms: Option<i64>,
    flat_ms: Option<i64>,
    late_ms: Option<i64>,
    /// Largest change allowed per interval; `None`: no spike check.
    spike_step: Option<f64>,
}

impl SeriesRules {
    /// `interval`: the station's reporting interval. `spike_scale`: the limit or analyser range width (see the
    /// module docs), if any.
    pub fn new(s: &QualitySettings, interval: Duration, spike_scale: Option<f64>) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let interval_ms = ms(interval).max(1);
        Self {
            interval_ms,
            gap_ms: s
                .gap_factor
                .filter(|f| f.is_finite() && *f > 0.0)
                .map(|f| (interval_ms as f64 * f) as i64),
            flat_ms: s.flat_line.map(ms),
            late_ms: s.late_after.map(ms),
            spike_step: s
                .spike_fraction
                .zip(spike_scale)
                .map(|(f, scale)| f * scale)
                .filter(|x| x.is_finite() && *x > 0.0),
        }
    }
}

/// History of one series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Track {
    /// Newest timestamp seen (any status).
    newest: Option<i64>,
    /// Previous measuring reading (ts, value): the spike baseline.
    previous: Option<(i64, f64)>,
    /// First reading of the current run of equal measuring values.
    run_start: Option<(i64, f64)>,
}

impl Track {
    /// Check one reading (finite value) and update the history.
    pub fn observe(
        &mut self,
        rules: &SeriesRules,
        ts: i64,
        value: f64,
        measuring: bool,
        now: i64,
    ) -> Flags {
        let mut flags = Flags::default();
        if rules
            .late_ms
            .is_some_and(|late| now.saturating_sub(ts) > late)
        {
            flags.insert(Flags::LATE);
        }
        if let Some(newest) = self.newest {
            if ts <= newest {
                return flags;
            }
            if rules.gap_ms.is_some_and(|g| ts - newest > g) {
                flags.insert(Flags::GAP);
                self.previous = None;
                self.run_start = None;
            }
        }
        self.newest = Some(ts);
        if !measuring {
            return flags;
        }
        if let (Some(step), Some((pts, pv))) = (rules.spike_step, self.previous) {
            let intervals = (ts - pts).max(rules.interval_ms) as f64 / rules.interval_ms as f64;
            if (value - pv).abs() > step * intervals {
                flags.insert(Flags::SPIKE);
            }
        }
        self.previous = Some((ts, value));
        match self.run_start {
            Some((start, v)) if v == value => {
                if rules.flat_ms.is_some_and(|f| ts - start > f) {
                    flags.insert(Flags::FLAT_LINE);
                }
            }
            _ => self.run_start = Some((ts, value)),
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn rules() -> SeriesRules {
        SeriesRules::new(
            &QualitySettings::default(),
            Duration::from_secs(300),
            Some(135.0),
        )
    }

    #[test]
    fn flat_line_after_two_hours() {
        let r = rules();
        let mut t = Track::default();
        let mut flagged = Vec::new();
        for i in 0..=26 {
            let ts = i * 5 * MIN;
            if t.observe(&r, ts, 42.0, true, ts).contains(Flags::FLAT_LINE) {
                flagged.push(i);
            }
        }
        // 0 … 120 min is exactly two hours: not longer than. 125 min is.
        assert_eq!(flagged, vec![25, 26]);
        // A different value starts a new run.
        assert!(!t
            .observe(&r, 27 * 5 * MIN, 42.5, true, 0)
            .contains(Flags::FLAT_LINE));
    }

    #[test]
    fn spike_is_relative_to_limit_per_interval() {
        let r = rules();
        let mut t = Track::default();
        assert_eq!(t.observe(&r, 0, 100.0, true, 0), Flags::default());
        // 67.5 = 50 % of 135 is allowed, more is not.
        assert!(!t
            .observe(&r, 5 * MIN, 167.5, true, 0)
            .contains(Flags::SPIKE));
        assert!(t
            .observe(&r, 10 * MIN, 235.1, true, 0)
            .contains(Flags::SPIKE));
        // Ten minutes apart allow twice as much.
        assert!(!t
            .observe(&r, 20 * MIN, 101.0, true, 0)
            .contains(Flags::SPIKE));
        // Jitter: one minute counts as one interval.
        assert!(!t
            .observe(&r, 21 * MIN, 168.0, true, 0)
            .contains(Flags::SPIKE));
    }

    #[test]
    fn gap_resets_history() {
        let r = rules();
        let mut t = Track::default();
        t.observe(&r, 0, 10.0, true, 0);
        assert!(!t.observe(&r, 15 * MIN, 10.0, true, 0).contains(Flags::GAP));
        let f = t.observe(&r, 31 * MIN, 500.0, true, 0);
        assert!(f.contains(Flags::GAP) && !f.contains(Flags::SPIKE), "{f:?}");
    }

    #[test]
    fn late_means_past_the_five_minute_transmission_deadline() {
        let r = SeriesRules::new(&QualitySettings::default(), Duration::from_secs(300), None);
        let mut t = Track::default();
        assert!(!t.observe(&r, 0, 10.0, true, 5 * MIN).contains(Flags::LATE));
        assert!(t
            .observe(&r, 5 * MIN, 10.0, true, 10 * MIN + 1)
            .contains(Flags::LATE));
    }

    #[test]
    fn out_of_order_and_duplicates_leave_history() {
        let r = rules();
        let mut t = Track::default();
        t.observe(&r, 100 * MIN, 10.0, true, 100 * MIN);
        let before = t.clone();
        let f = t.observe(&r, 5 * MIN, 900.0, true, 100 * MIN);
        assert_eq!(f, Flags::LATE);
        assert_eq!(
            t.observe(&r, 100 * MIN, 10.0, true, 100 * MIN),
            Flags::default()
        );
        assert_eq!(t, before);
    }

    #[test]
    fn non_measuring_readings_only_count_for_gaps() {
        let r = rules();
        let mut t = Track::default();
        t.observe(&r, 0, 10.0, true, 0);
        for i in 1..=6 {
            assert_eq!(
                t.observe(&r, i * 5 * MIN, 999.0, false, 0),
                Flags::default()
            );
        }
        // 35 minutes after the last measuring value: 7 intervals of allowance, no spike; no gap either.
        assert_eq!(t.observe(&r, 35 * MIN, 400.0, true, 0), Flags::default());
    }

    #[test]
    fn switched_off() {
        let r = SeriesRules::new(&QualitySettings::off(), Duration::from_secs(300), Some(1.0));
        let mut t = Track::default();
        t.observe(&r, 0, 1.0, true, 0);
        assert_eq!(
            t.observe(&r, 1_000 * MIN, 1e6, true, i64::MAX),
            Flags::default()
        );
    }
}
