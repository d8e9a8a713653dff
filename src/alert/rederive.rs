//! Re-deriving one alert key's history when its observations arrived out of order (a station's backlog after live
//! data, a window judged again). Pure: the store finds the key's last quiet point (a good observation outside any
//! alert, where the engine's state is idle but for its flap history), replays every later observation in
//! observation order through a fresh engine, and reconciles the alerts this gives with the stored ones.

use super::engine::{AlertKey, Change, Detail, Engine, KeyState, Observation, Phase, Rules};

/// One alert as in-order arrival makes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub since: i64,
    pub raised: i64,
    pub last_bad: i64,
    pub cleared: Option<i64>,
    /// The latest observation (the clearing one once cleared).
    pub detail: Detail,
    /// The worst observation while raised.
    pub peak: Detail,
}

impl Episode {
    fn follow(&mut self, since: i64, last_bad: i64, detail: &Detail, peak: &Detail) {
        self.since = since;
        self.last_bad = last_bad;
        self.detail = detail.clone();
        self.peak = peak.clone();
    }
}

/// A fresh engine replaying one key's observations (in observation order, all after the quiet point its start
/// state stands at), and the alerts they give.
pub struct Replay<'a> {
    key: &'a AlertKey,
    engine: Engine,
    episodes: Vec<Episode>,
    now: i64,
}

impl<'a> Replay<'a> {
    pub fn new(rules: &Rules, key: &'a AlertKey, start: KeyState, now: i64) -> Self {
        let mut engine = Engine::new(rules.clone());
        engine.restore(key.clone(), start);
        Replay {
            key,
            engine,
            episodes: Vec::new(),
            now,
        }
    }

    pub fn feed(&mut self, o: Observation) {
        let Some(t) = self.engine.observe(self.key, self.now, o) else {
            return;
        };
        if t.change == Change::Raised {
            self.episodes.push(Episode {
                since: t.since,
                raised: t.at,
                last_bad: t.last_bad,
                cleared: None,
                detail: t.detail.clone(),
                peak: t.peak.clone(),
            });
        } else if let Some(e) = self.episodes.last_mut() {
            e.follow(t.since, t.last_bad, &t.detail, &t.peak);
            if t.change == Change::Cleared {
                e.cleared = Some(t.at);
            }
        }
    }

    /// Whether the replay stands where a stored history whose raises are `stored_raises` (sorted) stands after a
    /// good observation at `at` outside its alerts: idle, with raises that count the same from there on. From there
    /// on, the two histories are the same.
    ///
    /// Raises count only when an alert clears (flap suppression looks at those in the flap window before the
    /// clear), and the next clear comes after the next raise. So the recent raises may differ (a backlog moves a
    /// raise earlier) as long as every one of them is a whole flap window older than the next stored raise after
    /// `at`; with no later stored raise, the key's state takes the replay's raises (see [`Replay::raises_until`]).
    pub fn meets(&self, at: i64, stored_raises: &[i64]) -> bool {
        let state = self.engine.state(self.key);
        if state.is_some_and(|s| s.phase != Phase::Idle) {
            return false;
        }
        let window = self.engine.rules.flap_window_ms;
        let recent = |r: &&i64| at - **r < window && **r <= at;
        let ours = state.map_or(&[][..], |s| &s.raises[..]);
        if ours
            .iter()
            .filter(recent)
            .eq(stored_raises.iter().filter(recent))
        {
            return true;
        }
        let newest = ours.iter().chain(stored_raises).filter(recent).max();
        let next = stored_raises.iter().find(|r| **r > at);
        match (newest, next) {
            (Some(newest), Some(next)) => next - newest >= window,
            _ => true,
        }
    }

    /// The replay's raises up to `at` (where it met the stored history), for the key's state from there on.
    pub fn raises_until(&self, at: i64) -> Vec<i64> {
        self.engine
            .state(self.key)
            .map(|s| s.raises.iter().copied().filter(|r| *r <= at).collect())
            .unwrap_or_default()
    }

    /// The key's state afterwards, and its alerts.
    pub fn finish(mut self) -> (KeyState, Vec<Episode>) {
        let state = self.engine.state(self.key).cloned().unwrap_or_default();
        if matches!(state.phase, Phase::Raised | Phase::Acknowledged) {
            if let Some(e) = self.episodes.last_mut() {
                let since = state.bad_since.unwrap_or(e.since);
                e.follow(
                    since,
                    state.last_bad.unwrap_or(e.last_bad),
                    &state.detail,
                    &state.peak,
                );
            }
        }
        (state, self.episodes)
    }
}

/// A stored alert's span: id, first bad observation, clear (`None` while open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    pub since: i64,
    pub cleared: Option<i64>,
}

/// What becomes of the stored alerts: for each new episode the stored alert it continues (`None`: a new alert),
/// and the stored alerts no episode continues (withdrawn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matching {
    pub continues: Vec<Option<i64>>,
    pub withdrawn: Vec<i64>,
}

/// Pair episodes with stored alerts whose spans overlap, both in the order they began: an alert whose span moved
/// (an earlier `since`, a later clear) keeps its id, acknowledgement and notifications.
pub fn reconcile(stored: &[Stored], episodes: &[Episode]) -> Matching {
    let end = |c: Option<i64>| c.unwrap_or(i64::MAX);
    let mut taken = vec![false; stored.len()];
    let mut next = 0;
    let continues = episodes
        .iter()
        .map(|e| {
            let found = (next..stored.len()).find(|&i| {
                !taken[i] && stored[i].since <= end(e.cleared) && e.since <= end(stored[i].cleared)
            });
            found.map(|i| {
                taken[i] = true;
                next = i + 1;
                stored[i].id
            })
        })
        .collect();
    let withdrawn = stored
        .iter()
        .zip(&taken)
        .filter(|(_, t)| !**t)
        .map(|(s, _)| s.id)
        .collect();
    Matching {
        continues,
        withdrawn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(since: i64, cleared: Option<i64>) -> Episode {
        Episode {
            since,
            raised: since,
            last_bad: since,
            cleared,
            detail: Detail::default(),
            peak: Detail::default(),
        }
    }

    fn st(id: i64, since: i64, cleared: Option<i64>) -> Stored {
        Stored { id, since, cleared }
    }

    #[test]
    fn overlapping_spans_keep_their_alert_others_are_added_or_withdrawn() {
        // Stored: 1 [10, 20], 2 [40, 50], 3 [70, open]. In order: [5, 25] (continues 1), [30, 35] (new),
        // [60, 80] (continues 3); 2 is no longer there.
        let stored = [st(1, 10, Some(20)), st(2, 40, Some(50)), st(3, 70, None)];
        let eps = [ep(5, Some(25)), ep(30, Some(35)), ep(60, Some(80))];
        let m = reconcile(&stored, &eps);
        assert_eq!(m.continues, [Some(1), None, Some(3)]);
        assert_eq!(m.withdrawn, [2]);
    }

    #[test]
    fn two_alerts_merged_into_one_keep_the_first() {
        let stored = [st(1, 10, Some(20)), st(2, 30, Some(40))];
        let m = reconcile(&stored, &[ep(10, Some(40))]);
        assert_eq!(m.continues, [Some(1)]);
        assert_eq!(m.withdrawn, [2]);
    }

    #[test]
    fn one_alert_split_in_two_keeps_the_first_and_adds_the_second() {
        let stored = [st(1, 10, Some(40))];
        let m = reconcile(&stored, &[ep(10, Some(20)), ep(30, Some(40))]);
        assert_eq!(m.continues, [Some(1), None]);
        assert!(m.withdrawn.is_empty());
    }

    const MIN: i64 = 60_000;

    /// A replay that raised at 5 min (two bad readings) and cleared at 20 min (three good), idle at 25 min.
    fn raised_at_five(key: &AlertKey) -> Replay<'_> {
        let rules = Rules::from_config(&crate::config::alert::Alert::default());
        let mut replay = Replay::new(&rules, key, KeyState::default(), 0);
        for (minute, bad) in [
            (0, true),
            (5, true),
            (10, false),
            (15, false),
            (20, false),
            (25, false),
        ] {
            replay.feed(Observation {
                bad,
                at: minute * MIN,
                late: true,
                detail: Detail::default(),
            });
        }
        replay
    }

    #[test]
    fn raises_that_moved_meet_when_they_cannot_count_again() {
        let key = AlertKey::new("BN_A_NUOC01", "COD", super::super::engine::Kind::Exceedance);
        let replay = raised_at_five(&key);
        assert_eq!(replay.raises_until(25 * MIN), [5 * MIN]);
        // Stored the same raise: met.
        assert!(replay.meets(25 * MIN, &[5 * MIN]));
        // Stored it at 10 min (the backlog moved it), and nothing raised later: met, the state takes the replay's.
        assert!(replay.meets(25 * MIN, &[10 * MIN]));
        // A later stored raise within the flap window (1 h) of the moved one counts it when it clears: not met.
        assert!(!replay.meets(25 * MIN, &[10 * MIN, 50 * MIN]));
        // A later stored raise a whole window after every moved one: met.
        assert!(replay.meets(25 * MIN, &[10 * MIN, 70 * MIN]));
    }

    #[test]
    fn a_replay_that_is_not_idle_never_meets() {
        let key = AlertKey::new("BN_A_NUOC01", "COD", super::super::engine::Kind::Exceedance);
        let mut replay = raised_at_five(&key);
        replay.feed(Observation {
            bad: true,
            at: 30 * MIN,
            late: true,
            detail: Detail::default(),
        });
        assert!(!replay.meets(30 * MIN, &[5 * MIN]));
    }
}
