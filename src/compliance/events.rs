//! Compliance events: a pure state machine per (station, parameter, scope). An exceedance opens an event, a worse
//! multiple updates its peak (a higher Decree 45 band escalates it), and a compliant value closes it.
//!
//! No I/O and no notifications: the alert engine turns [`EventChange`]s into messages and the ledger stores open
//! events, which [`EventTracker::restore`] loads back at restart.
//!
//! What does not move an event: `not_evaluated` (calibrating, fault — the plant is not shown compliant) and
//! `no_limit`; and observations older than the newest already seen for the key (late readings are judged through
//! their window aggregates instead). An observation at the same instant as the newest is accepted: a window is
//! re-observed each time a reading recomputes it.

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
    /// Back within the limit at `end`.
    Closed {
        key: EventKey,
        event: OpenEvent,
        end: Timestamp,
    },
}

impl EventChange {
    pub fn key(&self) -> &EventKey {
        match self {
            EventChange::Opened { key, .. }
            | EventChange::Escalated { key, .. }
            | EventChange::PeakUpdated { key, .. }
            | EventChange::Closed { key, .. } => key,
        }
    }
    pub fn event(&self) -> &OpenEvent {
        match self {
            EventChange::Opened { event, .. }
            | EventChange::Escalated { event, .. }
            | EventChange::PeakUpdated { event, .. }
            | EventChange::Closed { event, .. } => event,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct KeyState {
    newest: Option<Timestamp>,
    open: Option<OpenEvent>,
}

/// Open events and the newest observation of every key.
#[derive(Debug, Clone, Default)]
pub struct EventTracker {
    keys: FxHashMap<EventKey, KeyState>,
}

impl EventTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Load an event that was open when the daemon stopped.
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

    /// Feed one verdict. `ratio` is the multiple (`None` for ranges).
    pub fn observe(
        &mut self,
        key: &EventKey,
        ts: Timestamp,
        band: Band,
        ratio: Option<f64>,
    ) -> Option<EventChange> {
        if matches!(band, Band::NotEvaluated | Band::NoLimit) {
            return None;
        }
        let exceedance = band.is_exceedance();
        // One lookup for the common case: a known key, compliant, nothing open.
        let state = match self.keys.get_mut(key) {
            Some(s) => s,
            // Compliant with nothing ever open: nothing to remember.
            None if !exceedance => return None,
            None => self.keys.entry(key.clone()).or_default(),
        };
        if state.newest.is_some_and(|n| ts < n) {
            return None;
        }
        state.newest = Some(ts);
        match (state.open.as_mut(), exceedance) {
            (None, true) => {
                let event = OpenEvent {
                    start: ts,
                    last: ts,
                    band,
                    peak_band: band,
                    peak_ratio: ratio,
                    peak_at: ts,
                };
                state.open = Some(event.clone());
                Some(EventChange::Opened {
                    key: key.clone(),
                    event,
                })
            }
            (Some(_), false) => {
                let event = state.open.take()?;
                Some(EventChange::Closed {
                    key: key.clone(),
                    event,
                    end: ts,
                })
            }
            (Some(e), true) => {
                e.last = ts;
                e.band = band;
                let from = e.peak_band;
                if band.severity() > from.severity() {
                    e.peak_band = band;
                    e.peak_ratio = ratio.or(e.peak_ratio);
                    e.peak_at = ts;
                    Some(EventChange::Escalated {
                        key: key.clone(),
                        from,
                        event: e.clone(),
                    })
                } else if ratio.zip(e.peak_ratio).is_some_and(|(r, p)| r > p)
                    || (ratio.is_some() && e.peak_ratio.is_none())
                {
                    e.peak_ratio = ratio;
                    e.peak_at = ts;
                    Some(EventChange::PeakUpdated {
                        key: key.clone(),
                        event: e.clone(),
                    })
                } else {
                    None
                }
            }
            (None, false) => None,
        }
    }
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

    #[test]
    fn open_peak_escalate_close() {
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
        assert_eq!(c.event().start, Timestamp(1));
        let c = t
            .observe(&k, Timestamp(2), Band::Lt1_1, Some(1.05))
            .unwrap();
        assert!(matches!(c, EventChange::PeakUpdated { .. }));
        assert_eq!(t.observe(&k, Timestamp(3), Band::Lt1_1, Some(1.01)), None);
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
        // A late compliant reading does not close it either.
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
        assert_eq!(t.observe(&k, Timestamp(2), Band::OutOfRange, None), None);
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
        // Older than the restored event: ignored.
        assert_eq!(
            t.observe(&k, Timestamp(15), Band::Compliant, Some(0.5)),
            None
        );
        assert_eq!(
            t.observe(&k, Timestamp(25), Band::From1_1To1_5, Some(1.1)),
            None
        );
        assert!(matches!(
            t.observe(&k, Timestamp(30), Band::Compliant, Some(0.5)),
            Some(EventChange::Closed {
                end: Timestamp(30),
                ..
            })
        ));
    }

    #[test]
    fn windows_are_reobserved_at_the_same_instant() {
        let k = EventKey {
            scope: Scope::Window {
                window_ms: 3_600_000,
            },
            ..key()
        };
        let mut t = EventTracker::new();
        let w = Timestamp(3_600_000);
        assert!(matches!(
            t.observe(&k, w, Band::Lt1_1, Some(1.02)),
            Some(EventChange::Opened { .. })
        ));
        assert!(matches!(
            t.observe(&k, w, Band::Lt1_1, Some(1.04)),
            Some(EventChange::PeakUpdated { .. })
        ));
        assert_eq!(
            Scope::Window {
                window_ms: 3_600_000
            }
            .as_string(),
            "window_3600000"
        );
    }
}
