//! Data-quality checks on one series (one parameter of one station): flat line, spike, gap and late arrival.
//!
//! Pure. Two kinds of flag:
//! - judged on the reading alone, at evaluation: `late` (see [`SeriesRules::late`]); `above_range` is the
//!   evaluator's;
//! - judged against the series' history in **observation order** ([`HISTORY`]: flat line, spike, gap): the ledger
//!   holds every stored reading, so it judges them ([`Track`] for the newest reading, [`Rebuild`] to recover a
//!   series' state after a restart, [`Rejudge`] when a reading arrives older than the newest). The flags are then
//!   the same whatever order the readings arrived in.
//!
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

/// The flags judged against a series' history in observation order (flat line, spike, gap): the ledger's.
pub const HISTORY: Flags = Flags(Flags::FLAT_LINE.0 | Flags::SPIKE.0 | Flags::GAP.0);

/// What a series' checks need to know, prepared once per series. The default checks nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesRules {
    interval_ms: i64,
    gap_ms: Option<i64>,
    flat_ms: Option<i64>,
    late_ms: Option<i64>,
    /// Largest change allowed per interval; `None`: no spike check.
    spike_step: Option<f64>,
}

impl Default for SeriesRules {
    fn default() -> Self {
        SeriesRules {
            interval_ms: 300_000,
            gap_ms: None,
            flat_ms: None,
            late_ms: None,
            spike_step: None,
        }
    }
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

    /// `late` when a reading stamped `ts` is received at `now`, past the transmission deadline.
    pub fn late(&self, ts: i64, now: i64) -> Flags {
        if self
            .late_ms
            .is_some_and(|late| now.saturating_sub(ts) > late)
        {
            Flags::LATE
        } else {
            Flags::default()
        }
    }

    /// Whether any history check is on: without one, a series needs no history.
    pub fn judges_history(&self) -> bool {
        self.gap_ms.is_some() || self.flat_ms.is_some() || self.spike_step.is_some()
    }
}

/// A stored reading as the history checks see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub ts: i64,
    pub value: f64,
    pub measuring: bool,
}

/// History of one series: what the next, newer reading is judged against.
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
    /// The newest reading seen (any status).
    pub fn newest(&self) -> Option<i64> {
        self.newest
    }

    /// The history flags of a reading newer than every one seen, and the history updated. A reading as old as the
    /// newest or older gets none and leaves the history alone: the caller re-judges it in order ([`Rejudge`]).
    pub fn observe(&mut self, rules: &SeriesRules, p: Point) -> Flags {
        let mut flags = Flags::default();
        if let Some(newest) = self.newest {
            if p.ts <= newest {
                return flags;
            }
            if rules.gap_ms.is_some_and(|g| p.ts - newest > g) {
                flags.insert(Flags::GAP);
                self.previous = None;
                self.run_start = None;
            }
        }
        self.newest = Some(p.ts);
        if !p.measuring {
            return flags;
        }
        if let (Some(step), Some((pts, pv))) = (rules.spike_step, self.previous) {
            let intervals = (p.ts - pts).max(rules.interval_ms) as f64 / rules.interval_ms as f64;
            if (p.value - pv).abs() > step * intervals {
                flags.insert(Flags::SPIKE);
            }
        }
        self.previous = Some((p.ts, p.value));
        match self.run_start {
            Some((start, v)) if v == p.value => {
                if rules.flat_ms.is_some_and(|f| p.ts - start > f) {
                    flags.insert(Flags::FLAT_LINE);
                }
            }
            _ => self.run_start = Some((p.ts, p.value)),
        }
        flags
    }
}

/// Recovers a series' [`Track`] from its stored readings, newest first, reading back no further than the state
/// needs: to a gap, the start of the last run of equal values, or `flat_line` before the last measuring reading
/// (an earlier start flags the readings to come the same way).
#[derive(Debug, Clone)]
pub struct Rebuild {
    rules: SeriesRules,
    track: Track,
    /// The reading taken last (the oldest so far).
    oldest: Option<i64>,
    done: bool,
}

impl Rebuild {
    pub fn new(rules: SeriesRules) -> Self {
        Rebuild {
            rules,
            track: Track::default(),
            oldest: None,
            done: false,
        }
    }

    /// Take the next older reading; `false` once the state is known (further readings are not needed).
    pub fn push(&mut self, p: Point) -> bool {
        if self.done {
            return false;
        }
        if let (Some(newer), Some(g)) = (self.oldest, self.rules.gap_ms) {
            if newer - p.ts > g {
                // The history was reset at the newer reading: nothing older counts.
                self.done = true;
                return false;
            }
        }
        self.oldest = Some(p.ts);
        self.track.newest.get_or_insert(p.ts);
        if !p.measuring {
            return true;
        }
        match self.track.previous {
            None => {
                self.track.previous = Some((p.ts, p.value));
                self.track.run_start = Some((p.ts, p.value));
                self.done = self.rules.flat_ms.is_none();
            }
            Some((_, v)) if v != p.value => self.done = true,
            Some((last, _)) => {
                self.track.run_start = Some((p.ts, p.value));
                self.done = self.rules.flat_ms.is_none_or(|f| p.ts < last - f);
            }
        }
        !self.done
    }

    pub fn finish(self) -> Track {
        self.track
    }
}

/// Re-judges a series' stored readings in observation order from its earliest late one, until the flags can no
/// longer differ from those judged without the late readings: at a measuring reading after the last late one that
/// starts a run of its own, whose predecessors came after the last late one too. From there on both histories
/// hold the same readings.
#[derive(Debug, Clone)]
pub struct Rejudge {
    rules: SeriesRules,
    track: Track,
    last_late: i64,
    converged: bool,
}

impl Rejudge {
    /// `before`: the series' history before its earliest late reading; `last_late`: its latest late reading.
    pub fn new(rules: SeriesRules, before: Track, last_late: i64) -> Self {
        Rejudge {
            rules,
            track: before,
            last_late,
            converged: false,
        }
    }

    /// The history flags of the next stored reading, in observation order.
    pub fn next(&mut self, p: Point) -> Flags {
        let prior = self.track.newest;
        let prior_measuring = self.track.previous;
        let flags = self.track.observe(&self.rules, p);
        let after = |t: i64| t > self.last_late;
        self.converged = after(p.ts)
            && p.measuring
            && prior.is_some_and(after)
            && self.track.run_start == Some((p.ts, p.value))
            && (flags.contains(Flags::GAP) || prior_measuring.is_some_and(|(t, _)| after(t)));
        flags
    }

    /// Whether the readings after the last one given are flagged as they were.
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// The history after the last reading given.
    pub fn into_track(self) -> Track {
        self.track
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const MIN: i64 = 60_000;

    fn rules() -> SeriesRules {
        SeriesRules::new(
            &QualitySettings::default(),
            Duration::from_secs(300),
            Some(135.0),
        )
    }

    fn at(ts: i64, value: f64) -> Point {
        Point {
            ts,
            value,
            measuring: true,
        }
    }

    #[test]
    fn flat_line_after_two_hours() {
        let r = rules();
        let mut t = Track::default();
        let mut flagged = Vec::new();
        for i in 0..=26 {
            if t.observe(&r, at(i * 5 * MIN, 42.0))
                .contains(Flags::FLAT_LINE)
            {
                flagged.push(i);
            }
        }
        // 0 … 120 min is exactly two hours: not longer than. 125 min is.
        assert_eq!(flagged, vec![25, 26]);
        // A different value starts a new run.
        assert!(!t
            .observe(&r, at(27 * 5 * MIN, 42.5))
            .contains(Flags::FLAT_LINE));
    }

    #[test]
    fn spike_is_relative_to_limit_per_interval() {
        let r = rules();
        let mut t = Track::default();
        assert_eq!(t.observe(&r, at(0, 100.0)), Flags::default());
        // 67.5 = 50 % of 135 is allowed, more is not.
        assert!(!t.observe(&r, at(5 * MIN, 167.5)).contains(Flags::SPIKE));
        assert!(t.observe(&r, at(10 * MIN, 235.1)).contains(Flags::SPIKE));
        // Ten minutes apart allow twice as much.
        assert!(!t.observe(&r, at(20 * MIN, 101.0)).contains(Flags::SPIKE));
        // Jitter: one minute counts as one interval.
        assert!(!t.observe(&r, at(21 * MIN, 168.0)).contains(Flags::SPIKE));
    }

    #[test]
    fn gap_resets_history() {
        let r = rules();
        let mut t = Track::default();
        t.observe(&r, at(0, 10.0));
        assert!(!t.observe(&r, at(15 * MIN, 10.0)).contains(Flags::GAP));
        let f = t.observe(&r, at(31 * MIN, 500.0));
        assert!(f.contains(Flags::GAP) && !f.contains(Flags::SPIKE), "{f:?}");
    }

    #[test]
    fn late_means_past_the_five_minute_transmission_deadline() {
        let r = SeriesRules::new(&QualitySettings::default(), Duration::from_secs(300), None);
        assert_eq!(r.late(0, 5 * MIN), Flags::default());
        assert_eq!(r.late(5 * MIN, 10 * MIN + 1), Flags::LATE);
    }

    #[test]
    fn older_readings_and_duplicates_leave_the_history_alone() {
        let r = rules();
        let mut t = Track::default();
        t.observe(&r, at(100 * MIN, 10.0));
        let before = t.clone();
        assert_eq!(t.observe(&r, at(5 * MIN, 900.0)), Flags::default());
        assert_eq!(t.observe(&r, at(100 * MIN, 10.0)), Flags::default());
        assert_eq!(t, before);
    }

    #[test]
    fn non_measuring_readings_only_count_for_gaps() {
        let r = rules();
        let mut t = Track::default();
        t.observe(&r, at(0, 10.0));
        for i in 1..=6 {
            let p = Point {
                measuring: false,
                ..at(i * 5 * MIN, 999.0)
            };
            assert_eq!(t.observe(&r, p), Flags::default());
        }
        // 35 minutes after the last measuring value: 7 intervals of allowance, no spike; no gap either.
        assert_eq!(t.observe(&r, at(35 * MIN, 400.0)), Flags::default());
    }

    #[test]
    fn switched_off() {
        let r = SeriesRules::new(&QualitySettings::off(), Duration::from_secs(300), Some(1.0));
        assert!(!r.judges_history());
        let mut t = Track::default();
        t.observe(&r, at(0, 1.0));
        assert_eq!(t.observe(&r, at(1_000 * MIN, 1e6)), Flags::default());
        assert_eq!(r.late(0, i64::MAX), Flags::default());
    }

    /// The ledger's way, in memory: readings stored by time with their history flags; a reading newer than the
    /// newest is judged by the series' [`Track`], an older one re-judged from its predecessors' rebuilt history.
    #[derive(Default)]
    struct Ledger {
        stored: BTreeMap<i64, (Point, Flags)>,
        track: Track,
        /// Readings a re-judgement looked at (its cost).
        rejudged: usize,
    }

    impl Ledger {
        fn arrive(&mut self, r: &SeriesRules, p: Point) {
            if self.stored.contains_key(&p.ts) {
                return; // a duplicate keeps the first
            }
            if self.track.newest().is_none_or(|n| p.ts > n) {
                let f = self.track.observe(r, p);
                self.stored.insert(p.ts, (p, f));
                return;
            }
            self.stored.insert(p.ts, (p, Flags::default()));
            let mut rebuild = Rebuild::new(*r);
            for (q, _) in self.stored.range(..p.ts).rev().map(|(_, x)| x) {
                if !rebuild.push(*q) {
                    break;
                }
            }
            let mut again = Rejudge::new(*r, rebuild.finish(), p.ts);
            for (q, f) in self.stored.range_mut(p.ts..).map(|(_, x)| x) {
                self.rejudged += 1;
                *f = again.next(*q);
                if again.converged() {
                    return;
                }
            }
            self.track = again.into_track();
        }

        fn flags(&self) -> Vec<(i64, Flags)> {
            self.stored.iter().map(|(t, (_, f))| (*t, *f)).collect()
        }
    }

    /// Readings of one series: steps of 1–3 intervals with now and then a long gap, a few values (so runs of
    /// equal ones, and spikes), some not measuring.
    fn series(steps: &[(u8, u8, bool)]) -> Vec<Point> {
        let mut ts = 0;
        steps
            .iter()
            .map(|&(step, value, measuring)| {
                ts += match step % 8 {
                    7 => 40 * MIN,
                    s => i64::from(s % 3 + 1) * 5 * MIN,
                };
                Point {
                    ts,
                    value: [10.0, 10.0, 10.0, 60.0, 150.0][usize::from(value % 5)],
                    measuring,
                }
            })
            .collect()
    }

    fn quick_rules() -> SeriesRules {
        let s = QualitySettings {
            flat_line: Some(Duration::from_secs(20 * 60)),
            ..QualitySettings::default()
        };
        SeriesRules::new(&s, Duration::from_secs(300), Some(100.0))
    }

    #[test]
    fn a_backlog_sent_newest_first_is_flagged_as_in_order_and_cheaply() {
        let r = quick_rules();
        let points = series(
            &(0..200u8)
                .map(|i| (i, i / 7, i % 11 != 0))
                .collect::<Vec<_>>(),
        );
        let mut in_order = Ledger::default();
        let mut newest_first = Ledger::default();
        for p in &points {
            in_order.arrive(&r, *p);
        }
        for p in points.iter().rev() {
            newest_first.arrive(&r, *p);
        }
        assert_eq!(newest_first.flags(), in_order.flags());
        assert!(in_order
            .flags()
            .iter()
            .any(|(_, f)| f.contains(Flags::FLAT_LINE)));
        // Each late reading re-judges itself and the readings after it to the end of their run of equal values
        // (seven here) and one more, not the rest of the series.
        assert!(
            newest_first.rejudged <= 9 * points.len(),
            "{}",
            newest_first.rejudged
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::testing::cases(256)))]
        /// Any arrival order (with redeliveries) gives the flags in-order arrival gives, and a history rebuilt from
        /// the stored readings judges what comes next as the running one does.
        #[test]
        fn flags_do_not_depend_on_arrival_order(
            steps in proptest::collection::vec((0u8..8, 0u8..5, proptest::bool::weighted(0.9)), 1..60),
            order in proptest::collection::vec(0usize..1000, 1..90),
            next in proptest::collection::vec((0u8..8, 0u8..5, proptest::bool::ANY), 1..8),
        ) {
            let r = quick_rules();
            let points = series(&steps);
            let mut in_order = Ledger::default();
            for p in &points {
                in_order.arrive(&r, *p);
            }
            let mut shuffled = Ledger::default();
            for i in &order {
                shuffled.arrive(&r, points[i % points.len()]);
            }
            for p in &points {
                shuffled.arrive(&r, *p);
            }
            proptest::prop_assert_eq!(shuffled.flags(), in_order.flags());

            let mut rebuild = Rebuild::new(r);
            for p in points.iter().rev() {
                if !rebuild.push(*p) {
                    break;
                }
            }
            let (mut rebuilt, mut running) = (rebuild.finish(), in_order.track.clone());
            let last = points.last().map_or(0, |p| p.ts);
            for p in series(&next) {
                let p = Point { ts: p.ts + last, ..p };
                proptest::prop_assert_eq!(rebuilt.observe(&r, p), running.observe(&r, p));
            }
        }
    }
}
