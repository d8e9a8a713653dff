//! Compliance events: a pure function of a series' judged observations in observation-time order. An exceedance opens
//! an event, a worse multiple updates its peak (a higher Decree 45 band escalates it), a later exceedance extends
//! it (`last`), and a compliant observation closes it.
//!
//! Two ways to the same result. [`EventTracker`] follows each series as observations arrive in order (the hot path:
//! one map lookup per reading). An observation older than the newest of its series (a backlog, a late reading, a
//! window judged again) cannot be folded in: the ledger re-derives the span it touches with [`Deriver`], from the
//! last compliant observation before it, and replaces the events of that span. Both use [`step`], so the events of
//! a series are the same whatever order its observations arrived in.
//!
//! Observations are single readings (instant scope) or judged windows (window scope, at the window start: see
//! [`super::verdict`]). `not_evaluated` (calibrating, fault; a window with no valid reading, or one not judged yet)
//! and `no_limit` move nothing. An instant event ends at the compliant reading that closed it; a window event spans
//! its windows, from the first exceeding window's start to the last exceeding window's end. Either way `end` is
//! after `start`: no event has zero length.
//!
//! No I/O and no notifications: the alert engine and the live view follow [`EventChange`]s, the ledger stores them.

use rustc_hash::FxHashMap;

use super::band::Band;
use crate::model::{Parameter, StationId, Timestamp};

/// What an event judges: single readings, or window means of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Instant,
    Window { window_ms: i64 },
}

impl Scope {
    /// `instant`, `window_3600000`.
    pub fn as_string(self) -> String {
        match self {
            Scope::Instant => "instant".into(),
            Scope::Window { window_ms } => format!("window_{window_ms}"),
        }
    }

    /// When an event whose latest exceeding observation is `last` ends, closed by an observation at `closing`: at
    /// the closing reading (instant), or at the end of the last exceeding window (window).
    fn end(self, last: Timestamp, closing: Timestamp) -> Timestamp {
        match self {
            Scope::Instant => closing,
            Scope::Window { window_ms } => Timestamp(last.0.saturating_add(window_ms.max(1))),
        }
    }
}

/// Which series an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKey {
    pub station: StationId,
    pub parameter: Parameter,
    pub scope: Scope,
}

/// An open exceedance event (plain data: the ledger stores and restores it).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenEvent {
    /// First exceeding observation.
    pub start: Timestamp,
    /// Latest exceeding observation.
    pub last: Timestamp,
    /// Band of the latest exceeding observation.
    pub band: Band,
    /// Worst band so far.
    pub peak_band: Band,
    /// Highest multiple so far (`None` for ranges such as pH).
    pub peak_ratio: Option<f64>,
    /// When the peak was seen.
    pub peak_at: Timestamp,
}

/// An event with its end: `None` while open.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub state: OpenEvent,
    pub end: Option<Timestamp>,
}

/// One judged observation of a series: a reading, or a window's verdict at the window start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub ts: Timestamp,
    pub band: Band,
    /// The multiple (`None` for ranges).
    pub ratio: Option<f64>,
}

impl Observation {
    /// Judged and within the limit: after it, no event is open, whatever came before.
    pub fn settles(&self) -> bool {
        self.band == Band::Compliant
    }

    fn moves(&self) -> bool {
        !matches!(self.band, Band::NotEvaluated | Band::NoLimit)
    }
}

/// What one observation changed.
#[derive(Debug, Clone, PartialEq)]
pub enum EventChange {
    Opened {
        key: EventKey,
        event: OpenEvent,
    },
    /// The peak reached a more severe band (`from` was the previous peak band).
    Escalated {
        key: EventKey,
        from: Band,
        event: OpenEvent,
    },
    /// A higher multiple within the same peak band.
    PeakUpdated {
        key: EventKey,
        event: OpenEvent,
    },
    /// A later exceeding observation, no new peak: `last` and `band` moved.
    Extended {
        key: EventKey,
        event: OpenEvent,
    },
    /// Back within the limit; the event ended at `end`.
    Closed {
        key: EventKey,
        event: OpenEvent,
        end: Timestamp,
    },
    /// Observations arrived out of order: the events of a span were re-derived. `replaced` held the span before,
    /// `events` is what in-order arrival makes of it (opened, closed, split or merged). Already stored.
    Rederived {
        key: EventKey,
        replaced: Vec<Event>,
        events: Vec<Event>,
    },
}

impl EventChange {
    pub fn key(&self) -> &EventKey {
        match self {
            EventChange::Opened { key, .. }
            | EventChange::Escalated { key, .. }
            | EventChange::PeakUpdated { key, .. }
            | EventChange::Extended { key, .. }
            | EventChange::Closed { key, .. }
            | EventChange::Rederived { key, .. } => key,
        }
    }

    /// The event one observation changed (`None` for a re-derivation, which may change several).
    pub fn event(&self) -> Option<&OpenEvent> {
        match self {
            EventChange::Opened { event, .. }
            | EventChange::Escalated { event, .. }
            | EventChange::PeakUpdated { event, .. }
            | EventChange::Extended { event, .. }
            | EventChange::Closed { event, .. } => Some(event),
            EventChange::Rederived { .. } => None,
        }
    }
}

/// What [`step`] did to a series' open event.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Nothing,
    Opened,
    Escalated {
        from: Band,
    },
    PeakUpdated,
    Extended,
    /// The event that was open ended at `end`.
    Closed {
        event: OpenEvent,
        end: Timestamp,
    },
}

/// Fold one observation, later than every one before, into a series' open event. The one rule both the tracker and
/// the re-derivation use.
pub fn step(open: &mut Option<OpenEvent>, scope: Scope, o: Observation) -> Step {
    if !o.moves() {
        return Step::Nothing;
    }
    let exceedance = o.band.is_exceedance();
    match (open.as_mut(), exceedance) {
        (None, true) => {
            *open = Some(OpenEvent {
                start: o.ts,
                last: o.ts,
                band: o.band,
                peak_band: o.band,
                peak_ratio: o.ratio,
                peak_at: o.ts,
            });
            Step::Opened
        }
        (Some(e), false) => {
            let end = scope.end(e.last, o.ts);
            match open.take() {
                Some(event) => Step::Closed { event, end },
                None => Step::Nothing,
            }
        }
        (Some(e), true) => {
            e.last = o.ts;
            e.band = o.band;
            let from = e.peak_band;
            if o.band.severity() > from.severity() {
                e.peak_band = o.band;
                e.peak_ratio = o.ratio.or(e.peak_ratio);
                e.peak_at = o.ts;
                Step::Escalated { from }
            } else if o.ratio.zip(e.peak_ratio).is_some_and(|(r, p)| r > p)
                || (o.ratio.is_some() && e.peak_ratio.is_none())
            {
                e.peak_ratio = o.ratio;
                e.peak_at = o.ts;
                Step::PeakUpdated
            } else {
                Step::Extended
            }
        }
        (None, false) => Step::Nothing,
    }
}

/// Re-derives the events of a span of one series: fed the observations after a point where no event is open (the
/// last compliant observation before the earliest late one, or the series' beginning), in observation-time order.
#[derive(Debug, Clone)]
pub struct Deriver {
    scope: Scope,
    /// The latest late observation: once a compliant observation after it is folded in, the rest of the series is
    /// as it was and the span ends there.
    settle_after: Timestamp,
    open: Option<OpenEvent>,
    events: Vec<Event>,
    until: Option<Timestamp>,
}

/// The re-derived span: its events and where it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// Every event that starts in the span, in order; the last one may be open.
    pub events: Vec<Event>,
    /// The compliant observation that ended the span (`None`: the span runs to the newest observation, and the
    /// series' open event, if any, is the last of `events`).
    pub until: Option<Timestamp>,
}

impl Deriver {
    pub fn new(scope: Scope, settle_after: Timestamp) -> Self {
        Self {
            scope,
            settle_after,
            open: None,
            events: Vec::new(),
            until: None,
        }
    }

    /// Fold the next observation in. Returns false once the span has ended (feed no more).
    pub fn push(&mut self, o: Observation) -> bool {
        if self.until.is_some() {
            return false;
        }
        if let Step::Closed { event, end } = step(&mut self.open, self.scope, o) {
            self.events.push(Event {
                state: event,
                end: Some(end),
            });
        }
        if o.settles() && o.ts > self.settle_after {
            self.until = Some(o.ts);
            return false;
        }
        true
    }

    pub fn finish(mut self) -> Derived {
        if let Some(open) = self.open.take() {
            self.events.push(Event {
                state: open,
                end: None,
            });
        }
        Derived {
            events: self.events,
            until: self.until,
        }
    }
}

/// The events of a whole series from its observations in time order (a closed state before the first).
pub fn derive_all(scope: Scope, observations: &[Observation]) -> Vec<Event> {
    let mut d = Deriver::new(scope, Timestamp(i64::MAX));
    for o in observations {
        d.push(*o);
    }
    d.finish().events
}

/// Whether an event starting at `start` belongs to the span after `after` (exclusive) and before `until`.
pub fn in_span(start: Timestamp, after: Option<Timestamp>, until: Option<Timestamp>) -> bool {
    after.is_none_or(|a| start > a) && until.is_none_or(|u| start < u)
}

#[derive(Debug, Clone, Default)]
struct KeyState {
    /// The newest observation folded in, or seeded from the ledger (an upper bound of the newest judged one).
    newest: Option<Timestamp>,
    /// False for a series restored at start and not yet compared with the ledger.
    seeded: bool,
    open: Option<OpenEvent>,
    /// The open event moved (`last`, `band`) since it was last handed out.
    dirty: bool,
}

/// What [`EventTracker::follow`] did with an observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Follow {
    /// The tracker does not know the series' newest observation: [`seed`](EventTracker::seed) it, then follow.
    Unseeded,
    /// Not newer than the series' newest (`newest`): re-derive its span instead.
    Late { newest: Timestamp },
    /// Folded in. A change to store and publish, except an extension (a later exceedance, no new peak), which is
    /// kept until [`EventTracker::take_extended`] so that a long exceedance costs no write per reading.
    Followed(Option<EventChange>),
}

/// Open events and the newest observation of every series seen.
#[derive(Debug, Clone, Default)]
pub struct EventTracker {
    keys: FxHashMap<EventKey, KeyState>,
}

impl EventTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Load an event that was open when the daemon stopped. Its series' newest observation is asked of the ledger
    /// before the next one is followed (the stored `last` may lag by the extensions not yet written).
    pub fn restore(&mut self, key: EventKey, event: OpenEvent) {
        let state = self.keys.entry(key).or_default();
        state.newest = Some(state.newest.map_or(event.last, |n| n.max(event.last)));
        state.open = Some(event);
    }

    /// A tracker seeded with the events open at the last stop.
    pub fn from_open(open: impl IntoIterator<Item = (EventKey, OpenEvent)>) -> Self {
        let mut t = Self::new();
        for (k, e) in open {
            t.restore(k, e);
        }
        t
    }

    /// The newest observation of `key`: `None` when the tracker has not compared the series with the ledger (ask
    /// it and [`seed`](Self::seed)), `Some(None)` when the series has no observation yet.
    pub fn newest(&self, key: &EventKey) -> Option<Option<Timestamp>> {
        self.keys.get(key).filter(|s| s.seeded).map(|s| s.newest)
    }

    /// Set the newest stored observation of a series (its open event, if restored, stays).
    pub fn seed(&mut self, key: EventKey, newest: Option<Timestamp>) {
        let s = self.keys.entry(key).or_default();
        s.newest = s.newest.max(newest);
        s.seeded = true;
    }

    /// After a re-derivation that reached the newest observation: the series' open event is now `open`.
    pub fn set_open(&mut self, key: &EventKey, open: Option<OpenEvent>) {
        let s = self.keys.entry(key.clone()).or_default();
        s.open = open;
        s.dirty = false;
    }

    /// The event open for `key`, if any.
    pub fn open_event(&self, key: &EventKey) -> Option<&OpenEvent> {
        self.keys.get(key)?.open.as_ref()
    }

    /// Every open event.
    pub fn open(&self) -> impl Iterator<Item = (&EventKey, &OpenEvent)> {
        self.keys
            .iter()
            .filter_map(|(k, s)| s.open.as_ref().map(|e| (k, e)))
    }

    /// Open events extended since they were last handed out (to store and publish), now marked clean.
    pub fn take_extended(&mut self) -> Vec<EventChange> {
        self.keys
            .iter_mut()
            .filter(|(_, s)| s.dirty)
            .filter_map(|(k, s)| {
                s.dirty = false;
                Some(EventChange::Extended {
                    key: k.clone(),
                    event: s.open.clone()?,
                })
            })
            .collect()
    }

    /// The extension of one series not yet handed out (before its span is re-derived from the ledger).
    pub fn take_extended_of(&mut self, key: &EventKey) -> Option<EventChange> {
        let s = self.keys.get_mut(key).filter(|s| s.dirty)?;
        s.dirty = false;
        Some(EventChange::Extended {
            key: key.clone(),
            event: s.open.clone()?,
        })
    }

    /// The hot path: fold one verdict into a seeded series if it is newer than the series' newest.
    pub fn follow(
        &mut self,
        key: &EventKey,
        ts: Timestamp,
        band: Band,
        ratio: Option<f64>,
    ) -> Follow {
        let Some(state) = self.keys.get_mut(key).filter(|s| s.seeded) else {
            return Follow::Unseeded;
        };
        if let Some(newest) = state.newest.filter(|n| ts <= *n) {
            return Follow::Late { newest };
        }
        Follow::Followed(fold(state, key, Observation { ts, band, ratio }, true))
    }

    /// Feed one verdict newer than every one before for `key`, with no ledger behind (tests, tools): an unknown
    /// series starts empty, an extension is returned at once. One not newer changes nothing.
    pub fn observe(
        &mut self,
        key: &EventKey,
        ts: Timestamp,
        band: Band,
        ratio: Option<f64>,
    ) -> Option<EventChange> {
        let state = self.keys.entry(key.clone()).or_default();
        state.seeded = true;
        if state.newest.is_some_and(|n| ts <= n) {
            return None;
        }
        fold(state, key, Observation { ts, band, ratio }, false)
    }
}

/// Fold a newer observation into a series' state; `defer`: keep an extension for [`EventTracker::take_extended`].
fn fold(state: &mut KeyState, key: &EventKey, o: Observation, defer: bool) -> Option<EventChange> {
    if !o.moves() {
        return None;
    }
    state.newest = Some(o.ts);
    let step = step(&mut state.open, key.scope, o);
    if step == Step::Nothing {
        return None;
    }
    if step == Step::Extended && defer {
        state.dirty = true;
        return None;
    }
    state.dirty = false;
    let key = key.clone();
    Some(match step {
        Step::Closed { event, end } => EventChange::Closed { key, event, end },
        other => {
            let event = state.open.clone()?;
            match other {
                Step::Opened => EventChange::Opened { key, event },
                Step::Escalated { from } => EventChange::Escalated { key, from, event },
                Step::PeakUpdated => EventChange::PeakUpdated { key, event },
                _ => EventChange::Extended { key, event },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EventKey {
        EventKey {
            station: StationId::parse("BN_T_N1").unwrap(),
            parameter: Parameter::new("COD").unwrap(),
            scope: Scope::Instant,
        }
    }

    const HOUR: Scope = Scope::Window {
        window_ms: 3_600_000,
    };

    #[test]
    fn open_peak_extend_escalate_close() {
        let k = key();
        let mut t = EventTracker::new();
        assert_eq!(
            t.observe(&k, Timestamp(0), Band::Compliant, Some(0.9)),
            None
        );
        let c = t
            .observe(&k, Timestamp(1), Band::Lt1_1, Some(1.03))
            .unwrap();
        assert!(matches!(c, EventChange::Opened { .. }));
        assert_eq!(c.event().unwrap().start, Timestamp(1));
        let c = t
            .observe(&k, Timestamp(2), Band::Lt1_1, Some(1.05))
            .unwrap();
        assert!(matches!(c, EventChange::PeakUpdated { .. }));
        // A later exceedance below the peak moves `last`.
        match t.observe(&k, Timestamp(3), Band::Lt1_1, Some(1.01)) {
            Some(EventChange::Extended { event, .. }) => {
                assert_eq!((event.last, event.peak_at), (Timestamp(3), Timestamp(2)))
            }
            other => panic!("{other:?}"),
        }
        let c = t
            .observe(&k, Timestamp(4), Band::From3To5, Some(3.2))
            .unwrap();
        match c {
            EventChange::Escalated { from, event, .. } => {
                assert_eq!(from, Band::Lt1_1);
                assert_eq!(
                    (event.peak_band, event.peak_ratio, event.peak_at),
                    (Band::From3To5, Some(3.2), Timestamp(4))
                );
            }
            other => panic!("{other:?}"),
        }
        // Calibration does not close the event.
        assert_eq!(t.observe(&k, Timestamp(5), Band::NotEvaluated, None), None);
        assert!(t.open_event(&k).is_some());
        // An older observation is not folded in here (the ledger re-derives its span).
        assert_eq!(
            t.observe(&k, Timestamp(3), Band::Compliant, Some(0.5)),
            None
        );
        let c = t
            .observe(&k, Timestamp(6), Band::Compliant, Some(0.8))
            .unwrap();
        match c {
            EventChange::Closed { event, end, .. } => {
                assert_eq!(
                    (event.start, event.last, end),
                    (Timestamp(1), Timestamp(4), Timestamp(6))
                );
                assert_eq!(event.band, Band::From3To5);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.open().count(), 0);
    }

    #[test]
    fn ranges_open_and_close_without_multiples() {
        let k = EventKey {
            parameter: Parameter::new("pH").unwrap(),
            ..key()
        };
        let mut t = EventTracker::new();
        assert!(matches!(
            t.observe(&k, Timestamp(1), Band::OutOfRange, None),
            Some(EventChange::Opened { .. })
        ));
        assert!(matches!(
            t.observe(&k, Timestamp(2), Band::OutOfRange, None),
            Some(EventChange::Extended { .. })
        ));
        assert!(matches!(
            t.observe(&k, Timestamp(3), Band::Compliant, None),
            Some(EventChange::Closed { .. })
        ));
    }

    #[test]
    fn restored_events_continue() {
        let k = key();
        let open = OpenEvent {
            start: Timestamp(10),
            last: Timestamp(20),
            band: Band::From1_1To1_5,
            peak_band: Band::From1_1To1_5,
            peak_ratio: Some(1.2),
            peak_at: Timestamp(20),
        };
        let mut t = EventTracker::from_open([(k.clone(), open.clone())]);
        assert_eq!(t.open_event(&k), Some(&open));
        // Restored, not yet compared with the ledger: the caller seeds it.
        assert_eq!(t.newest(&k), None);
        assert_eq!(
            t.follow(&k, Timestamp(25), Band::Compliant, None),
            Follow::Unseeded
        );
        t.seed(k.clone(), Some(Timestamp(22)));
        assert_eq!(t.newest(&k), Some(Some(Timestamp(22))));
        assert_eq!(
            t.follow(&k, Timestamp(21), Band::Compliant, None),
            Follow::Late {
                newest: Timestamp(22)
            }
        );
        // The hot path keeps an extension until it is taken.
        assert_eq!(
            t.follow(&k, Timestamp(23), Band::From1_1To1_5, Some(1.1)),
            Follow::Followed(None)
        );
        match &t.take_extended()[..] {
            [EventChange::Extended { event, .. }] => assert_eq!(event.last, Timestamp(23)),
            other => panic!("{other:?}"),
        }
        assert!(t.take_extended().is_empty());
        assert_eq!(
            t.observe(&k, Timestamp(15), Band::Compliant, Some(0.5)),
            None
        );
        assert!(matches!(
            t.observe(&k, Timestamp(25), Band::From1_1To1_5, Some(1.1)),
            Some(EventChange::Extended { .. })
        ));
        assert!(matches!(
            t.observe(&k, Timestamp(30), Band::Compliant, Some(0.5)),
            Some(EventChange::Closed {
                end: Timestamp(30),
                ..
            })
        ));
    }

    #[test]
    fn window_events_span_their_windows() {
        let k = EventKey {
            scope: HOUR,
            ..key()
        };
        let h = |i: i64| Timestamp(i * 3_600_000);
        let mut t = EventTracker::new();
        assert!(matches!(
            t.observe(&k, h(1), Band::Lt1_1, Some(1.02)),
            Some(EventChange::Opened { .. })
        ));
        // A window judged again at the same start is not folded in here: the ledger re-derives it.
        assert_eq!(t.observe(&k, h(1), Band::Lt1_1, Some(1.04)), None);
        // An hour with no valid reading moves nothing; the compliant one closes the event at the end of hour 1.
        assert_eq!(t.observe(&k, h(2), Band::NotEvaluated, None), None);
        match t.observe(&k, h(3), Band::Compliant, Some(0.9)) {
            Some(EventChange::Closed { event, end, .. }) => {
                assert_eq!((event.start, event.last, end), (h(1), h(1), h(2)))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(HOUR.as_string(), "window_3600000");
    }

    fn obs(ts: i64, band: Band, ratio: f64) -> Observation {
        Observation {
            ts: Timestamp(ts),
            band,
            ratio: Some(ratio),
        }
    }

    #[test]
    fn a_span_ends_at_the_first_compliant_observation_after_the_late_ones() {
        let series = [
            obs(10, Band::Lt1_1, 1.05),
            obs(20, Band::Compliant, 0.9),
            obs(30, Band::From1_1To1_5, 1.2),
            obs(40, Band::Compliant, 0.8),
            obs(50, Band::Compliant, 0.8),
        ];
        // A late reading at 20 (the compliant one) re-derives 10..=40: two events, the second closed at 40.
        let mut d = Deriver::new(Scope::Instant, Timestamp(20));
        for o in series {
            if !d.push(o) {
                break;
            }
        }
        let got = d.finish();
        assert_eq!(got.until, Some(Timestamp(40)));
        assert_eq!(
            got.events
                .iter()
                .map(|e| (e.state.start.0, e.end.map(|x| x.0)))
                .collect::<Vec<_>>(),
            [(10, Some(20)), (30, Some(40))]
        );
        assert!(in_span(Timestamp(30), Some(Timestamp(5)), got.until));
        assert!(!in_span(Timestamp(40), Some(Timestamp(5)), got.until));
        assert!(!in_span(Timestamp(5), Some(Timestamp(5)), None));
    }

    /// What the ledger does, on a vector: observations stored by time (a later verdict for a time replaces the
    /// earlier one, as a window judged again does), events kept in order, and each arrival either folded in by the
    /// tracker (newer than the series' newest) or re-derived from the last compliant observation before it.
    struct Model {
        scope: Scope,
        stored: std::collections::BTreeMap<i64, Observation>,
        events: Vec<Event>,
        tracker: EventTracker,
    }

    impl Model {
        fn new(scope: Scope) -> Self {
            Self {
                scope,
                stored: Default::default(),
                events: Vec::new(),
                tracker: EventTracker::new(),
            }
        }

        fn arrive(&mut self, o: Observation) {
            let k = EventKey {
                scope: self.scope,
                ..key()
            };
            let newest = self.stored.keys().next_back().copied();
            self.stored.insert(o.ts.0, o);
            if newest.is_none_or(|n| o.ts.0 > n) {
                match self.tracker.observe(&k, o.ts, o.band, o.ratio) {
                    Some(EventChange::Opened { event, .. }) => self.events.push(Event {
                        state: event,
                        end: None,
                    }),
                    Some(EventChange::Closed { event, end, .. }) => {
                        let e = self.events.last_mut().unwrap();
                        *e = Event {
                            state: event,
                            end: Some(end),
                        };
                    }
                    Some(c) => self.events.last_mut().unwrap().state = c.event().unwrap().clone(),
                    None => {}
                }
                return;
            }
            let after = self
                .stored
                .range(..o.ts.0)
                .rev()
                .find(|(_, x)| x.settles())
                .map(|(t, _)| Timestamp(*t));
            let mut d = Deriver::new(self.scope, o.ts);
            for x in self
                .stored
                .range(after.map_or(i64::MIN, |a| a.0 + 1)..)
                .map(|(_, x)| *x)
            {
                if !d.push(x) {
                    break;
                }
            }
            let derived = d.finish();
            self.events
                .retain(|e| !in_span(e.state.start, after, derived.until));
            if derived.until.is_none() {
                let open = derived.events.last().filter(|e| e.end.is_none());
                self.tracker.set_open(&k, open.map(|e| e.state.clone()));
            }
            self.events.extend(derived.events);
            self.events.sort_by_key(|e| e.state.start);
        }
    }

    fn band_of(code: u8) -> (Band, f64) {
        match code % 6 {
            0 | 1 => (Band::Compliant, 0.8),
            2 => (Band::Lt1_1, 1.05),
            3 => (Band::From1_1To1_5, 1.2 + f64::from(code) / 100.0),
            4 => (Band::From3To5, 3.5),
            _ => (Band::NotEvaluated, 0.0),
        }
    }

    proptest::proptest! {
        #[test]
        fn any_arrival_order_gives_the_events_of_in_order_arrival(
            codes in proptest::collection::vec(0u8..60, 1..40),
            order in proptest::collection::vec(proptest::num::usize::ANY, 0..40),
            rejudged in proptest::collection::vec((0usize..40, 0u8..60), 0..6),
            window in proptest::bool::ANY,
        ) {
            let scope = if window { HOUR } else { Scope::Instant };
            let step_ms = if window { 3_600_000 } else { 300_000 };
            let series: Vec<Observation> = codes
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let (band, ratio) = band_of(*c);
                    obs(i as i64 * step_ms, band, ratio)
                })
                .collect();
            // Arrival: a permutation of the series, then (windows only) some windows judged again.
            let mut arrival = series.clone();
            for (i, j) in order.iter().enumerate() {
                let n = arrival.len();
                arrival.swap(i % n, j % n);
            }
            let mut truth: std::collections::BTreeMap<i64, Observation> =
                series.iter().map(|o| (o.ts.0, *o)).collect();
            if window {
                for (i, c) in &rejudged {
                    let (band, ratio) = band_of(*c);
                    let o = obs((*i % series.len()) as i64 * step_ms, band, ratio);
                    arrival.push(o);
                    truth.insert(o.ts.0, o);
                }
            }
            let mut m = Model::new(scope);
            for o in arrival {
                m.arrive(o);
            }
            let expected = derive_all(scope, &truth.values().copied().collect::<Vec<_>>());
            proptest::prop_assert_eq!(&m.events, &expected);
            for e in &expected {
                proptest::prop_assert!(e.end.is_none_or(|end| end > e.state.start), "zero-length {e:?}");
            }
        }
    }
}
