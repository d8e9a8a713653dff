//! Engine tests. The first ones feed live data (observed when processed: `live`) under `tokio::time::pause()`, so
//! the wall clock only moves when the test advances it; the later ones feed history (observation times far behind
//! the wall clock, which does not move) and check that the outcome is the one the data implies.

use std::time::Duration;

use super::*;
use crate::config::alert::Maintenance;

const T0: i64 = 1_800_000_000_000;

fn rules() -> Rules {
    Rules {
        raise_after: 2,
        raise_min_ms: 0,
        clear_after: 3,
        clear_below: 0.9,
        renotify_ms: 3_600_000,
        flap_window_ms: 3_600_000,
        flap_max: 3,
        silent_after_ms: 900_000,
        fault_after_ms: 900_000,
        calibration_after_ms: 7_200_000,
        backlog_after_ms: 1_800_000,
        completeness_below: 0.75,
        maintenance: Vec::new(),
        late_after_ms: 3_600_000,
        update_every_ms: 15_000,
    }
}

/// Feeding live data: observed at the wall time it is processed.
trait Live {
    fn live(&mut self, k: &AlertKey, now: i64, o: Observation) -> Option<Transition>;
}

impl Live for Engine {
    fn live(&mut self, k: &AlertKey, now: i64, o: Observation) -> Option<Transition> {
        self.observe(k, now, Observation { at: now, ..o })
    }
}

fn cod(kind: Kind) -> AlertKey {
    AlertKey::new("BN_KCNTS_NUOC01", "COD", kind)
}

fn value(ratio: f64) -> Observation {
    let band = if ratio <= 1.0 {
        crate::compliance::Band::Compliant
    } else {
        crate::compliance::Band::for_ratio(rust_decimal::Decimal::try_from(ratio).unwrap())
    };
    Observation {
        bad: band.is_exceedance(),
        at: 0,
        late: false,
        detail: Detail {
            value: Some(150.0 * ratio),
            unit: "mg/L".into(),
            limit_high: Some(150.0),
            ratio: Some(ratio),
            band: band.as_str().into(),
            band_severity: band.severity(),
            ..Detail::default()
        },
    }
}

fn flag(bad: bool) -> Observation {
    Observation {
        bad,
        at: 0,
        late: false,
        detail: Detail::default(),
    }
}

async fn step(clock: &TokioClock, d: Duration) -> i64 {
    tokio::time::advance(d).await;
    clock.now_ms()
}

/// The changes recipients are told of (not the updates of an open alert's latest value).
fn changes(ts: &[Transition]) -> Vec<Change> {
    ts.iter()
        .map(|t| t.change)
        .filter(|c| c.notifies())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_counted_alert_raises_once_renotifies_escalates_and_clears_with_hysteresis() {
    let clock = TokioClock::new(T0);
    let mut e = Engine::new(rules());
    let k = cod(Kind::Exceedance);
    let minute = Duration::from_secs(60);
    // One bad observation is only pending.
    assert_eq!(e.live(&k, clock.now_ms(), value(1.05)), None);
    assert_eq!(e.state(&k).unwrap().phase, Phase::Pending);
    let now = step(&clock, minute).await;
    let t = e.live(&k, now, value(1.06)).expect("raised at the second");
    assert_eq!((t.change, t.since), (Change::Raised, T0));
    e.set_alert_id(&k, 7);
    // Still bad: no second raise.
    for _ in 0..10 {
        let now = step(&clock, minute).await;
        assert_eq!(e.live(&k, now, value(1.07)), None);
        assert!(changes(&e.tick(now)).is_empty());
    }
    // Re-notify once the interval has passed since the raise and the data shows it still exceeding, then not
    // again until the next interval.
    let now = step(&clock, Duration::from_secs(50 * 60)).await;
    assert!(changes(&e.tick(now)).is_empty(), "no data since minute 11");
    assert_eq!(e.live(&k, now, value(1.07)), None);
    assert_eq!(changes(&e.tick(now)), [Change::Renotify]);
    assert!(changes(&e.tick(step(&clock, minute).await)).is_empty());
    // Band worsens (lt_1_1 → 1_1_to_1_5): escalation, with the alert id.
    let t = e.live(&k, step(&clock, minute).await, value(1.3)).unwrap();
    assert_eq!((t.change, t.alert_id), (Change::Escalated, Some(7)));
    assert_eq!(t.peak.band, "1_1_to_1_5");
    // Back to the same band: no second escalation.
    assert_eq!(e.live(&k, step(&clock, minute).await, value(1.2)), None);
    // Hysteresis: just under the limit (0.95) counts, but needs three in a row; a bad one resets the count.
    assert_eq!(e.live(&k, step(&clock, minute).await, value(0.95)), None);
    assert_eq!(e.live(&k, step(&clock, minute).await, value(0.98)), None);
    assert_eq!(e.live(&k, step(&clock, minute).await, value(1.01)), None);
    assert_eq!(e.live(&k, step(&clock, minute).await, value(0.95)), None);
    assert_eq!(e.live(&k, step(&clock, minute).await, value(0.96)), None);
    let t = e.live(&k, step(&clock, minute).await, value(0.97)).unwrap();
    assert_eq!((t.change, t.alert_id), (Change::Cleared, Some(7)));
    assert_eq!(e.state(&k).unwrap().phase, Phase::Idle);
}

#[tokio::test(start_paused = true)]
async fn one_value_well_below_the_limit_clears_at_once() {
    let clock = TokioClock::new(T0);
    let mut e = Engine::new(rules());
    let k = cod(Kind::Exceedance);
    e.live(&k, clock.now_ms(), value(1.2));
    let now = step(&clock, Duration::from_secs(300)).await;
    assert_eq!(e.live(&k, now, value(1.2)).unwrap().change, Change::Raised);
    let now = step(&clock, Duration::from_secs(300)).await;
    assert_eq!(e.live(&k, now, value(0.5)).unwrap().change, Change::Cleared);
}

#[tokio::test(start_paused = true)]
async fn readings_hovering_at_the_limit_do_not_flap() {
    let clock = TokioClock::new(T0);
    let mut e = Engine::new(rules());
    let k = cod(Kind::Exceedance);
    let mut all = Vec::new();
    // A running mean hovering around the limit: bad, good, bad, good… every minute for three hours.
    for i in 0..180 {
        let now = step(&clock, Duration::from_secs(60)).await;
        let r = if i % 2 == 0 { 1.02 } else { 0.99 };
        all.extend(e.live(&k, now, value(r)));
        all.extend(e.tick(now));
        if let Some(t) = all.last() {
            if t.change == Change::Raised && t.alert_id.is_none() {
                e.set_alert_id(&k, 1);
            }
        }
    }
    // Two bad in a row never happen: it never raises.
    assert!(all.is_empty(), "{all:?}");
    // Two bad, one good, repeated: raises once and stays raised (never three good in a row).
    for i in 0..180 {
        let now = step(&clock, Duration::from_secs(60)).await;
        let r = if i % 3 == 2 { 0.99 } else { 1.02 };
        all.extend(e.live(&k, now, value(r)));
    }
    let raised = all.iter().filter(|t| t.change == Change::Raised).count();
    let cleared = all.iter().filter(|t| t.change == Change::Cleared).count();
    assert_eq!((raised, cleared), (1, 0), "{all:?}");
}

#[tokio::test(start_paused = true)]
async fn flapping_alert_is_held_until_a_quiet_window() {
    let clock = TokioClock::new(T0);
    let mut r = rules();
    r.raise_after = 1;
    r.clear_after = 1;
    let mut e = Engine::new(r);
    let k = cod(Kind::Quality);
    let mut all = Vec::new();
    // Bad, good, bad, good… every 2 minutes: without suppression 15 raises in 30 minutes.
    for i in 0..30 {
        let now = step(&clock, Duration::from_secs(60)).await;
        all.extend(e.live(&k, now, flag(i % 2 == 0)));
    }
    let raised = all.iter().filter(|t| t.change == Change::Raised).count();
    assert_eq!(raised, 3, "flap_max raises, then held: {all:?}");
    assert_eq!(e.state(&k).unwrap().phase, Phase::Raised);
    // Quiet (good) for a whole flap window of observations: it clears once, on the observation that completes it
    // (the wall clock alone clears nothing: without data, nobody knows it stayed quiet).
    let quiet_from = step(&clock, Duration::from_secs(60)).await;
    assert_eq!(e.live(&k, quiet_from, flag(false)), None);
    let now = step(&clock, Duration::from_secs(7200)).await;
    assert!(changes(&e.tick(now)).is_empty());
    let mut cleared = Vec::new();
    for i in 1..=12 {
        let at = quiet_from + i * 300_000;
        let o = Observation { at, ..flag(false) };
        cleared.extend(e.observe(&k, now, o).map(|t| (t.change, t.at)));
    }
    // Held until the first raise leaves the flap window (observation time): then only two raises are in it.
    let first_raise = all[0].at;
    let expected = (1..=12)
        .map(|i| quiet_from + i * 300_000)
        .find(|at| at - first_raise >= 3_600_000)
        .unwrap();
    assert_eq!(cleared, [(Change::Cleared, expected)]);
}

#[tokio::test(start_paused = true)]
async fn fault_and_calibration_raise_after_their_time_and_clear_at_once() {
    let clock = TokioClock::new(T0);
    let mut e = Engine::new(rules());
    let fault = cod(Kind::Fault);
    let calib = cod(Kind::Calibration);
    // Fault readings every 5 minutes: raised when 15 minutes have passed, once.
    let mut all = Vec::new();
    for _ in 0..6 {
        all.extend(e.live(&fault, clock.now_ms(), flag(true)));
        all.extend(e.tick(clock.now_ms()));
        step(&clock, Duration::from_secs(300)).await;
    }
    assert_eq!(changes(&all), [Change::Raised]);
    assert_eq!(all[0].at - all[0].since, 900_000);
    // One measuring reading clears it.
    let t = e.live(&fault, clock.now_ms(), flag(false)).unwrap();
    assert_eq!(t.change, Change::Cleared);
    // Calibration for 1 h 55 min is fine; a calibrating reading at 2 h raises (durations are the data's: the
    // tick alone raises nothing).
    assert_eq!(e.live(&calib, clock.now_ms(), flag(true)), None);
    let now = step(&clock, Duration::from_secs(115 * 60)).await;
    assert_eq!(e.live(&calib, now, flag(true)), None);
    assert!(changes(&e.tick(step(&clock, Duration::from_secs(5 * 60)).await)).is_empty());
    let t = e.live(&calib, clock.now_ms(), flag(true)).unwrap();
    assert_eq!((t.change, t.at - t.since), (Change::Raised, 7_200_000));
}

#[tokio::test(start_paused = true)]
async fn silent_and_backlog_raise_on_their_first_bad_observation() {
    // The runner only reports silence once `silent_after` has passed (and backlog once it is old enough).
    let clock = TokioClock::new(T0);
    let mut e = Engine::new(rules());
    for kind in [Kind::Silent, Kind::Backlog] {
        let k = AlertKey::new("BN_KCNTS_NUOC01", "", kind);
        assert_eq!(
            e.live(&k, clock.now_ms(), flag(true)).unwrap().change,
            Change::Raised
        );
        assert_eq!(
            e.live(&k, step(&clock, Duration::from_secs(1)).await, flag(true)),
            None
        );
        assert_eq!(
            e.live(&k, clock.now_ms(), flag(false)).unwrap().change,
            Change::Cleared
        );
    }
}

#[tokio::test(start_paused = true)]
async fn maintenance_mutes_the_station() {
    let clock = TokioClock::new(T0);
    let mut r = rules();
    r.maintenance = vec![Maintenance {
        station: "BN_KCNTS_NUOC01".into(),
        from_ms: T0,
        to_ms: T0 + 3_600_000,
    }];
    let mut e = Engine::new(r);
    let k = cod(Kind::Exceedance);
    for _ in 0..10 {
        let now = step(&clock, Duration::from_secs(300)).await;
        assert_eq!(e.live(&k, now, value(2.0)), None);
        assert!(changes(&e.tick(now)).is_empty());
    }
    // Another station is not muted.
    let other = AlertKey::new("BN_KCNQV_NUOC01", "COD", Kind::Exceedance);
    e.live(&other, clock.now_ms(), value(2.0));
    assert!(e.live(&other, clock.now_ms() + 1, value(2.0)).is_some());
    // After the window, it raises normally.
    step(&clock, Duration::from_secs(3600)).await;
    e.live(&k, clock.now_ms(), value(2.0));
    assert_eq!(
        e.live(&k, clock.now_ms() + 1, value(2.0)).unwrap().change,
        Change::Raised
    );
}

#[tokio::test(start_paused = true)]
async fn acknowledged_alerts_are_not_renotified_but_escalate() {
    let clock = TokioClock::new(T0);
    let mut e = Engine::new(rules());
    let k = cod(Kind::Exceedance);
    e.live(&k, clock.now_ms(), value(1.05));
    e.live(&k, clock.now_ms() + 1, value(1.05)).unwrap();
    e.set_alert_id(&k, 3);
    assert_eq!(e.acknowledge(3), Some(k.clone()));
    assert_eq!(e.acknowledge(3), None, "already acknowledged");
    for _ in 0..5 {
        let now = step(&clock, Duration::from_secs(3600)).await;
        assert!(changes(&e.tick(now)).is_empty());
    }
    let t = e.live(&k, clock.now_ms(), value(4.0)).unwrap();
    assert_eq!(t.change, Change::Escalated);
}

#[tokio::test(start_paused = true)]
async fn restored_state_continues_without_a_second_raise() {
    let clock = TokioClock::new(T0);
    let mut e = Engine::new(rules());
    let k = cod(Kind::Exceedance);
    e.live(&k, clock.now_ms(), value(1.05));
    e.live(&k, clock.now_ms() + 1, value(1.05)).unwrap();
    e.set_alert_id(&k, 9);
    let saved = e.take_dirty();
    assert_eq!(saved.len(), 1);
    // A new engine (restart) from the saved state.
    let mut e2 = Engine::new(rules());
    for (k, s) in saved {
        e2.restore(k, s);
    }
    let now = step(&clock, Duration::from_secs(60)).await;
    assert_eq!(e2.live(&k, now, value(1.05)), None);
    let t = e2.live(&k, now, value(0.5)).unwrap();
    assert_eq!((t.change, t.alert_id), (Change::Cleared, Some(9)));
}

// ---- Observation time: history fed in a burst is judged as the data says. ----

const MIN: i64 = 60_000;

/// A COD observation at `at` with multiple `ratio`, processed at wall time `now`.
fn seen(at: i64, ratio: f64, now: i64) -> Observation {
    Observation {
        at,
        late: now - at > rules().late_after_ms,
        detail: Detail {
            ts: at,
            ..value(ratio).detail
        },
        ..value(ratio)
    }
}

/// A day of readings every 5 minutes: three-hour cycles that ramp from 0.6× to 1.45× the limit, then fall back.
fn day_of_sawtooth(start: i64) -> Vec<(i64, f64)> {
    (0..288)
        .map(|i| {
            let phase = (i % 36) as f64 / 36.0;
            (start + i * 5 * MIN, 0.6 + 0.85 * phase)
        })
        .collect()
}

/// Feed `data` to a fresh engine, each observation processed at `wall(at)`, ticking after each; the transitions
/// recipients are told of, as (change, since, at).
fn run(rules: Rules, data: &[(i64, f64)], wall: impl Fn(i64) -> i64) -> Vec<(Change, i64, i64)> {
    let mut e = Engine::new(rules);
    let k = cod(Kind::Exceedance);
    let mut out = Vec::new();
    for (n, &(at, ratio)) in data.iter().enumerate() {
        let now = wall(at);
        out.extend(e.observe(&k, now, seen(at, ratio, now)));
        out.extend(e.tick(now));
        if let Some(t) = out.last() {
            if t.change == Change::Raised && t.alert_id.is_none() {
                e.set_alert_id(&k, n as i64 + 1);
            }
        }
    }
    out.iter()
        .filter(|t| t.change.notifies())
        .map(|t| (t.change, t.since, t.at))
        .collect()
}

#[test]
fn a_day_replayed_in_a_second_alerts_as_the_day_did_live() {
    let start = T0 - 24 * 3_600_000;
    let data = day_of_sawtooth(start);
    // Live: each reading processed when it was made. Replayed: the whole day processed within one second.
    // Re-notifications are paced by the wall clock (live: one an hour into each episode; replayed: none, the day
    // took a second); everything the data decides is the same.
    let decided = |v: Vec<(Change, i64, i64)>| -> Vec<(Change, i64, i64)> {
        v.into_iter().filter(|t| t.0 != Change::Renotify).collect()
    };
    let live = decided(run(rules(), &data, |at| at));
    let replayed = decided(run(rules(), &data, |at| T0 + (at - start) / 86_400));
    assert_eq!(replayed, live);
    // Hand-computed: 0.6 + 0.85 × n/36 first exceeds 1 at step 17 (1.001): raised at the second bad reading
    // (step 18), escalated when 1.1× is passed, cleared when it falls back to 0.6× (at or below 0.9×: at once) at
    // the next cycle's step 0. Eight cycles three hours apart: no flap suppression.
    let raised: Vec<_> = live.iter().filter(|t| t.0 == Change::Raised).collect();
    let cleared: Vec<_> = live.iter().filter(|t| t.0 == Change::Cleared).collect();
    assert_eq!((raised.len(), cleared.len()), (8, 7), "{live:?}");
    for (c, r) in raised.iter().enumerate() {
        let cycle = start + c as i64 * 180 * MIN;
        assert_eq!((r.1, r.2), (cycle + 17 * 5 * MIN, cycle + 18 * 5 * MIN));
    }
    for (c, cl) in cleared.iter().enumerate() {
        let cycle = start + c as i64 * 180 * MIN;
        assert_eq!((cl.1, cl.2), (cycle + 17 * 5 * MIN, cycle + 180 * MIN));
    }
}

#[test]
fn flap_windows_are_observation_time() {
    let mut r = rules();
    r.raise_after = 1;
    r.clear_after = 1;
    // Four episodes an hour and a half apart in the data, replayed within a second: none is a flap.
    let spread: Vec<(i64, f64)> = (0..8)
        .map(|i| (T0 + i * 45 * MIN, if i % 2 == 0 { 2.0 } else { 0.5 }))
        .collect();
    let out = run(r.clone(), &spread, |at| {
        T0 + 10 * 3_600_000 + (at - T0) / 10_000
    });
    assert_eq!(
        out.iter().filter(|t| t.0 == Change::Raised).count(),
        4,
        "{out:?}"
    );
    assert_eq!(
        out.iter().filter(|t| t.0 == Change::Cleared).count(),
        4,
        "{out:?}"
    );
    // Four episodes two minutes apart in the data, processed a day apart each: flapping after three raises.
    let dense: Vec<(i64, f64)> = (0..8)
        .map(|i| (T0 + i * 2 * MIN, if i % 2 == 0 { 2.0 } else { 0.5 }))
        .collect();
    let out = run(r, &dense, |at| T0 + (at - T0) / (2 * MIN) * 86_400_000);
    let changes: Vec<Change> = out.iter().map(|t| t.0).collect();
    assert_eq!(
        changes,
        [
            Change::Raised,
            Change::Cleared,
            Change::Raised,
            Change::Cleared,
            Change::Raised
        ]
    );
}

#[test]
fn raise_min_duration_and_counts_are_observation_time() {
    let mut r = rules();
    r.raise_min_ms = 10 * MIN;
    let k = cod(Kind::Exceedance);
    // Three bad readings a minute apart in the data, processed an hour apart: 2 minutes is too short.
    let mut e = Engine::new(r.clone());
    for i in 0..3 {
        let now = T0 + i * 3_600_000;
        assert_eq!(e.observe(&k, now, seen(T0 + i * MIN, 1.3, now)), None);
        assert!(changes(&e.tick(now)).is_empty());
    }
    // Bad readings every 5 minutes in the data, all processed at one instant: raised at the one 10 minutes in.
    let mut e = Engine::new(r);
    let now = T0 + 86_400_000;
    let raised: Vec<_> = (0..4)
        .filter_map(|i| e.observe(&k, now, seen(T0 + i * 5 * MIN, 1.3, now)))
        .collect();
    assert_eq!(raised.len(), 1);
    assert_eq!(
        (
            raised[0].change,
            raised[0].since,
            raised[0].at,
            raised[0].late
        ),
        (Change::Raised, T0, T0 + 10 * MIN, true)
    );
}

#[test]
fn an_open_alert_carries_since_latest_value_peak_and_last_bad() {
    let k = cod(Kind::Exceedance);
    let mut e = Engine::new(rules());
    let t = |e: &mut Engine, at: i64, ratio: f64| e.observe(&k, at, seen(at, ratio, at));
    assert_eq!(t(&mut e, T0, 1.2), None);
    let raised = t(&mut e, T0 + 5 * MIN, 1.25).unwrap();
    assert_eq!(
        (raised.since, raised.at, raised.last_bad),
        (T0, T0 + 5 * MIN, T0 + 5 * MIN)
    );
    e.set_alert_id(&k, 4);
    let _ = e.tick(T0 + 5 * MIN);
    // Worse within the same band (1_1_to_1_5): a new peak, no escalation; the update is published at once (the
    // last write was a while ago), then at most every 15 s.
    assert_eq!(t(&mut e, T0 + 10 * MIN, 1.4), None);
    let up = e.tick(T0 + 10 * MIN);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].change, Change::Updated);
    assert_eq!(
        (up[0].alert_id, up[0].since, up[0].last_bad),
        (Some(4), T0, T0 + 10 * MIN)
    );
    assert_eq!(
        (up[0].detail.ratio, up[0].peak.ratio),
        (Some(1.4), Some(1.4))
    );
    assert_eq!(t(&mut e, T0 + 10 * MIN + 5_000, 1.3), None);
    assert!(e.tick(T0 + 10 * MIN + 5_000).is_empty(), "throttled");
    // At shutdown what is throttled is published anyway, once.
    let mut stopping = e.clone();
    let last = stopping.publish_unpublished(T0 + 10 * MIN + 6_000);
    assert_eq!(
        (last.len(), last[0].change, last[0].last_bad),
        (1, Change::Updated, T0 + 10 * MIN + 5_000)
    );
    assert!(stopping
        .publish_unpublished(T0 + 10 * MIN + 7_000)
        .is_empty());
    let up = e.tick(T0 + 10 * MIN + 15_000);
    assert_eq!(
        (up[0].detail.ratio, up[0].peak.ratio),
        (Some(1.3), Some(1.4))
    );
    // A good reading (not enough to clear): the latest value follows, the last bad observation stays.
    assert_eq!(t(&mut e, T0 + 20 * MIN, 0.95), None);
    let up = e.tick(T0 + 21 * MIN);
    assert_eq!(up[0].detail.ratio, Some(0.95));
    assert_eq!((up[0].since, up[0].last_bad), (T0, T0 + 10 * MIN + 5_000));
    // Nothing changed: nothing published.
    assert!(e.tick(T0 + 30 * MIN).is_empty());
}

#[test]
fn transitions_on_late_data_are_marked_late_and_the_alert_remembers_it() {
    let k = cod(Kind::Exceedance);
    let mut e = Engine::new(rules());
    let now = T0 + 6 * 3_600_000;
    assert_eq!(e.observe(&k, now, seen(T0, 2.0, now)), None);
    let raised = e.observe(&k, now, seen(T0 + 5 * MIN, 2.0, now)).unwrap();
    assert!(raised.late && raised.raised_late);
    e.set_alert_id(&k, 1);
    // The station is live again and still exceeding: nothing new; it clears live, and the clear is not late.
    let live = T0 + 6 * 3_600_000 + 5 * MIN;
    assert_eq!(e.observe(&k, live, seen(live, 2.0, live)), None);
    let cleared = e.observe(
        &k,
        live + 5 * MIN,
        seen(live + 5 * MIN, 0.5, live + 5 * MIN),
    );
    let cleared = cleared.unwrap();
    assert_eq!(cleared.change, Change::Cleared);
    assert!(!cleared.late && cleared.raised_late);
    assert_eq!((cleared.since, cleared.last_bad), (T0, live));
}

#[test]
fn one_judged_window_raises_a_violation_and_judging_it_again_counts_once() {
    let mut e = Engine::new(rules());
    let k = cod(Kind::Violation);
    let hour = 3_600_000;
    // The window from T0 judged early (already certain), then again when it closes: one raise.
    let t = e.observe(&k, T0 + hour, seen(T0, 1.2, T0 + hour)).unwrap();
    assert_eq!((t.change, t.since), (Change::Raised, T0));
    assert_eq!(
        e.observe(&k, T0 + hour, seen(T0, 1.3, T0 + hour))
            .map(|t| t.change),
        None
    );
    // Clearing needs three good windows (none far below the limit), and a window judged twice counts once.
    for (w, times) in [(1, 2), (2, 1)] {
        for _ in 0..times {
            assert_eq!(
                e.observe(&k, T0 + 4 * hour, seen(T0 + w * hour, 0.95, T0 + 4 * hour)),
                None
            );
        }
    }
    let t = e
        .observe(&k, T0 + 4 * hour, seen(T0 + 3 * hour, 0.95, T0 + 4 * hour))
        .unwrap();
    assert_eq!((t.change, t.at), (Change::Cleared, T0 + 3 * hour));
}

/// A key is found from borrowed parts, and a pending one is not idle.
#[test]
fn a_key_is_looked_up_by_its_borrowed_parts() {
    let mut e = Engine::new(rules());
    let key = cod(Kind::Exceedance);
    let parts = KeyRef {
        station: &key.station,
        subject: &key.subject,
        kind: key.kind,
    };
    assert!(e.is_idle(parts));
    e.live(&key, T0, value(2.0));
    assert!(!e.is_idle(parts));
    assert!(e.is_idle(KeyRef {
        kind: Kind::Quality,
        ..parts
    }));
    assert!(e.is_idle(KeyRef {
        subject: "BOD5",
        ..parts
    }));
}
