//! The runner: feeds the engine from the pipeline's broadcast (readings, window means) and a 1-second tick (silence,
//! durations, re-notification, forwarder backlog), stores what the engine decides with the outbox rows for the
//! routed channels, then wakes those channels' delivery tasks and tells the dashboard.
//!
//! It keeps a readings cursor in the ledger, saved with the engine's state in one transaction: at start (and after
//! falling behind the broadcast) it replays the committed readings past the cursor, so a restart — even after
//! SIGKILL — neither raises twice nor loses a clear.

use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::engine::{
    AlertKey, Change, Clock, Detail, Engine, KeyRef, KeyState, Kind, Observation, Phase, Rules,
    Transition,
};
use super::history::{LateSpan, Rederivation};
use super::message::Context;
use super::observe::{self, local, ReadingObs, WindowObs};
use super::store::{Routed, Saved, Store};
use super::AlertMetrics;
use super::{AckError, Command};
use crate::compliance::Band;
use crate::config::alert::{glob_match, Route};
use crate::config::Config;
use crate::health::Health;
use crate::ledger::quality::FlagRevision;
use crate::ledger::{Held, LedgerError};
use crate::pipeline::LiveEvent;

/// (lower bound, upper bound or Cmax, unit).
type LimitAndUnit = (Option<f64>, Option<f64>, String);

pub struct Runner {
    engine: Engine,
    ctx: Context,
    routes: Vec<Route>,
    wake: HashMap<String, Arc<Notify>>,
    store: Held<Store>,
    live: broadcast::Sender<LiveEvent>,
    health: Health,
    metrics: Arc<AlertMetrics>,
    clock: Arc<dyn Clock>,
    stations: Vec<String>,
    judging_ms: i64,
    /// Wall time of each station's latest reading (silence).
    last_seen: FxHashMap<String, i64>,
    /// What the runner keeps per (station, parameter): one lookup a reading.
    series: SeriesMap<SeriesState>,
    /// Some series fed in order since the last commit (see [`SeriesState::unsaved`]).
    series_unsaved: bool,
    /// Configured unit per (station, parameter).
    units: HashMap<(String, String), String>,
    /// Newest judging window per (station, parameter): its start, completeness so far, and whether its
    /// completeness is judged when it closes (not for a series' first window, which may begin mid-window).
    windows: HashMap<(String, String), (i64, f64, bool)>,
    /// Highest reading seq fed to the engine, and the one saved with its state.
    fed_seq: i64,
    saved_seq: i64,
    /// When the cursor was last saved without a transition (it is saved at most every 5 s on its own, to keep
    /// out of the ledger writer's way).
    saved_at: std::time::Instant,
    /// Decided but not yet stored (kept across a failed commit).
    pending: Vec<Transition>,
    unsaved: HashMap<AlertKey, KeyState>,
    /// Wall time of each station's latest late observation (its catch-up closes once that is a while ago).
    late_seen: FxHashMap<String, i64>,
    /// Stations whose catch-up summary is waiting, and those due to close at the next flush.
    catching_up: BTreeSet<String>,
    close: Vec<String>,
    /// Keys to re-derive once what is pending is stored, with what arrived out of order.
    rederive: BTreeMap<AlertKey, LateSpan>,
}

/// A series' latest limit and unit (for window messages), and the newest reading time it has fed its keys: an older
/// reading re-derives them instead.
#[derive(Debug, Default)]
struct SeriesState {
    limit: Option<LimitAndUnit>,
    clock: Option<i64>,
    /// Fed in order since the last commit: its clock is saved with the key states.
    unsaved: bool,
}

/// One key to re-derive, as the blocking call takes it.
struct KeyInput {
    key: AlertKey,
    late: LateSpan,
    current: Option<KeyState>,
    channels: Vec<String>,
    limit: LimitAndUnit,
}

/// A catch-up closes (its summary is queued) once no late observation came from the station for this long.
const CATCH_UP_QUIET_MS: i64 = 5_000;

pub struct Parts {
    pub config: Config,
    pub ledger: PathBuf,
    pub live: broadcast::Sender<LiveEvent>,
    pub health: Health,
    pub metrics: Arc<AlertMetrics>,
    pub clock: Arc<dyn Clock>,
    pub wake: HashMap<String, Arc<Notify>>,
}

impl Runner {
    /// Open the store and restore the engine's state.
    pub fn open(p: Parts) -> Result<Runner, LedgerError> {
        let store = Store::open(&p.ledger, p.config.ledger.synchronous)?;
        let mut engine = Engine::new(Rules::from_config(&p.config.alert));
        for (k, s) in store.load_states()? {
            engine.restore(k, s);
        }
        let cursor = store.readings_cursor()?;
        let series_clock = store.load_series_newest()?;
        let now = p.clock.now_ms();
        let stations = station_ids(&p.config);
        Ok(Runner {
            engine,
            ctx: Context::from_config(&p.config),
            routes: p.config.alert.routes.clone(),
            wake: p.wake,
            store: Held::new(store),
            live: p.live,
            health: p.health,
            metrics: p.metrics,
            clock: p.clock,
            last_seen: stations.iter().map(|s| (s.clone(), now)).collect(),
            stations,
            judging_ms: p.config.compliance.averaging_window.as_millis() as i64,
            series: series_clock
                .into_iter()
                .map(|(k, t)| {
                    let state = SeriesState {
                        clock: Some(t),
                        ..SeriesState::default()
                    };
                    (k, state)
                })
                .collect(),
            series_unsaved: false,
            units: units(&p.config),
            windows: HashMap::new(),
            fed_seq: cursor,
            saved_seq: cursor,
            saved_at: std::time::Instant::now(),
            pending: Vec::new(),
            unsaved: HashMap::new(),
            late_seen: FxHashMap::default(),
            catching_up: BTreeSet::new(),
            close: Vec::new(),
            rederive: BTreeMap::new(),
        })
    }

    /// Run until `shutdown`: replay what the ledger holds past the cursor, then follow the broadcast.
    pub async fn run(
        mut self,
        mut rx: broadcast::Receiver<LiveEvent>,
        mut commands: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
    ) {
        self.replay().await;
        self.settle().await;
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        use broadcast::error::RecvError;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = rx.recv() => match r {
                    Ok(ev) => {
                        self.apply(&ev);
                        // Under a flood (a backlog), take what is already queued before storing, so the
                        // re-derivations of many batches are done once.
                        for _ in 0..256 {
                            match rx.try_recv() {
                                Ok(ev) => self.apply(&ev),
                                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                    warn!(missed = n, "Alert engine fell behind the pipeline; catching up from the ledger.");
                                    self.replay().await;
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        if !self.pending.is_empty() || !self.rederive.is_empty() {
                            self.settle().await;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        warn!(missed = n, "Alert engine fell behind the pipeline; catching up from the ledger.");
                        self.replay().await;
                        self.settle().await;
                    }
                    Err(RecvError::Closed) => break,
                },
                Some(cmd) = commands.recv() => self.command(cmd).await,
                _ = every.tick() => {
                    self.tick();
                    if !self.pending.is_empty() || !self.close.is_empty() || !self.rederive.is_empty() || self.saved_at.elapsed() >= Duration::from_secs(5) {
                        self.settle().await;
                    }
                }
            }
        }
        self.settle().await;
        let now = self.clock.now_ms();
        self.pending.extend(self.engine.publish_unpublished(now));
        self.settle().await;
    }

    fn apply(&mut self, ev: &LiveEvent) {
        let now = self.clock.now_ms();
        match ev {
            LiveEvent::Readings(batch) => {
                // A batch comes in observation order; its sequence numbers follow the ledger's key order
                // (station, time, parameter), so they are compared with where the batch began.
                let fed = self.fed_seq;
                for c in batch.iter() {
                    if c.seq <= fed {
                        continue; // already replayed from the ledger
                    }
                    self.fed_seq = self.fed_seq.max(c.seq);
                    self.observe_reading(ReadingObs::from(c.evaluated), now);
                }
            }
            LiveEvent::Windows(updates) => {
                let judging = self.judging_ms;
                // Oldest first: a refresh that completes one window and starts the next reports both, and the
                // completed one must be seen complete before the next one closes it.
                let mut updates: Vec<_> =
                    updates.iter().filter(|u| u.window_ms == judging).collect();
                updates.sort_by_key(|u| u.window_start.millis());
                for u in updates {
                    // A violation is the judged window (closed, or already certain), never the running mean.
                    let (band, ratio) = u.verdict.judged().unwrap_or((Band::NotEvaluated, None));
                    let w = WindowObs {
                        window_start: u.window_start.millis(),
                        mean: u.aggregate.mean,
                        completeness: u.aggregate.completeness,
                        ratio,
                        band,
                        limit: u.limit,
                    };
                    // A window that had closed when it was last computed, computed again: late readings revised it.
                    let revised = u.late_change_from.is_some();
                    self.observe_window(&u.station, &u.parameter, w, revised, now);
                }
            }
            LiveEvent::FlagsRevised(revised) => self.revised(revised),
            LiveEvent::Events(_) | LiveEvent::Alerts(_) => {}
        }
    }

    /// Stored readings re-flagged when an older reading arrived: their series' flat-line and spike key is
    /// re-derived over them (a change of the gap flag alone alerts nothing).
    fn revised(&mut self, revised: &[FlagRevision]) {
        for f in revised.iter().filter(|f| f.changes_alerts()) {
            let key = AlertKey::new(&f.station, &f.parameter, Kind::Quality);
            self.schedule_rederive(key, LateSpan::new(f.ts.millis(), true));
        }
    }

    /// Feed the engine one observation made at `at` (late: processed more than `late_after` after `ends`, the end
    /// of what was observed).
    #[allow(clippy::too_many_arguments)]
    fn observe(&mut self, key: AlertKey, now: i64, at: i64, ends: i64, bad: bool, detail: Detail) {
        let late = self.note_late(&key.station, now, ends);
        let obs = Observation {
            bad,
            at,
            late,
            detail,
        };
        if let Some(t) = self.engine.observe(&key, now, obs) {
            self.pending.push(t);
        }
    }

    /// An observation about now (silence, backlog): made at wall time `now`.
    fn observe_now(&mut self, key: AlertKey, now: i64, bad: bool, detail: Detail) {
        self.observe(key, now, now, now, bad, detail);
    }

    /// Whether an observation made at `now` of data ending at `ends` is late; the station is then catching up.
    fn note_late(&mut self, station: &str, now: i64, ends: i64) -> bool {
        let late = now - ends > self.engine.rules.late_after_ms;
        if late {
            stamp(&mut self.late_seen, station, now);
        }
        late
    }

    fn observe_reading(&mut self, r: ReadingObs<'_>, now: i64) {
        stamp(&mut self.last_seen, r.station, now);
        // A good observation of an idle key changes nothing (see `Engine::observe`): most readings of a burst are
        // good, so they are checked before any key or detail is built.
        let idle = |engine: &Engine, subject, kind| {
            engine.is_idle(KeyRef {
                station: r.station,
                subject,
                kind,
            })
        };
        if !idle(&self.engine, "", Kind::Silent) {
            let silent = AlertKey::new(r.station, "", Kind::Silent);
            self.observe_now(silent, now, false, Detail::default());
        }
        let series = SeriesRef(r.station, r.parameter);
        let state = match self.series.get_mut(&series) {
            Some(state) => state,
            None => self.series.entry(series.owned()).or_default(),
        };
        match &mut state.limit {
            Some(l) if l.2 == r.unit => (l.0, l.1) = (r.limit.0, r.limit.1),
            _ => state.limit = Some((r.limit.0, r.limit.1, r.unit.to_string())),
        }
        // For a ledger from before series clocks were saved: the newest observation of its keys' restored states.
        if state.clock.is_none() {
            state.clock = restored_clock(&self.engine, series);
        }
        // Older than what the series already told its keys: their history is re-derived in observation order.
        if state.clock.is_some_and(|n| r.ts < n) {
            for (kind, bad) in observe::reading_verdicts(&r) {
                let key = AlertKey::new(r.station, r.parameter, kind);
                self.schedule_rederive(key, LateSpan::new(r.ts, bad));
            }
            return;
        }
        (state.clock, state.unsaved) = (Some(r.ts), true);
        self.series_unsaved = true;
        for (kind, bad) in observe::reading_verdicts(&r) {
            if !bad && idle(&self.engine, r.parameter, kind) {
                self.note_late(r.station, now, r.ts);
                continue;
            }
            if let Some((bad, detail)) = observe::reading_kind(&self.ctx, &r, kind) {
                let key = AlertKey::new(r.station, r.parameter, kind);
                self.observe(key, now, r.ts, r.ts, bad, detail);
            }
        }
    }

    /// Re-derive `key` once the current batch is stored. A good observation of a key that has never left idle (it
    /// has no state: no alert, nothing pending, ever) cannot change anything, and is not looked into.
    fn schedule_rederive(&mut self, key: AlertKey, late: LateSpan) {
        if !late.bad && self.engine.state(&key).is_none() && !self.rederive.contains_key(&key) {
            return;
        }
        self.rederive
            .entry(key)
            .and_modify(|s| s.add(late))
            .or_insert(late);
    }

    /// `revised`: the window had closed when it was last computed (late readings changed it), so its judgment is a
    /// revision of history, not a new observation.
    fn observe_window(
        &mut self,
        station: &str,
        parameter: &str,
        w: WindowObs,
        revised: bool,
        now: i64,
    ) {
        let k = (station.to_string(), parameter.to_string());
        let violation = AlertKey::new(station, parameter, Kind::Violation);
        let completeness_key = AlertKey::new(
            station,
            &observe::completeness_subject(parameter),
            Kind::Quality,
        );
        let judge = match self.windows.get(&k).copied() {
            Some((ws, _, _)) if w.window_start < ws => {
                // A window older than the series' newest judged again (late data in a closed window): the
                // series' window keys are re-derived in window order.
                let bad = w.band.is_exceedance();
                self.schedule_rederive(violation, LateSpan::new(w.window_start, bad));
                let incomplete = w.completeness <= self.engine.rules.completeness_below;
                let late = LateSpan::new(w.window_start, incomplete);
                self.schedule_rederive(completeness_key, late);
                return;
            }
            Some((ws, _, judge)) if w.window_start == ws && revised => {
                // The series' newest window, closed and judged already, revised by late readings: its violation
                // key is re-derived, as for an older window, so the alerts do not depend on where the aggregator's
                // steps cut the late readings (a live observation would clear and raise again at the same time).
                // Its completeness is judged when the next window begins, from the revised value.
                let bad = w.band.is_exceedance();
                self.schedule_rederive(violation, LateSpan::new(w.window_start, bad));
                self.windows.insert(k, (ws, w.completeness, judge));
                return;
            }
            Some((ws, previous, judge_previous)) if w.window_start > ws => {
                let below = self.engine.rules.completeness_below;
                if below > 0.0 && judge_previous {
                    let (bad, detail) = observe::completeness(&self.ctx, ws, previous, below);
                    let ends = ws + self.judging_ms;
                    self.observe(completeness_key, now, ws, ends, bad, detail);
                }
                true
            }
            Some((_, _, judge)) => judge,
            // The series' first window: the station (or its history) may have begun in the middle of it.
            None => false,
        };
        self.windows
            .insert(k.clone(), (w.window_start, w.completeness, judge));
        let limit = self
            .series
            .get(&k)
            .and_then(|s| s.limit.clone())
            .unwrap_or_else(|| (None, None, self.units.get(&k).cloned().unwrap_or_default()));
        if let Some((bad, detail)) = observe::violation(&self.ctx, &w, limit) {
            // A window is observed at its start (the alert's `since` is the window's); it is late when its end is.
            let ends = w.window_start + self.judging_ms;
            self.observe(violation, now, w.window_start, ends, bad, detail);
        }
    }

    fn tick(&mut self) {
        let now = self.clock.now_ms();
        let silent_after = self.engine.rules.silent_after_ms;
        for station in self.stations.clone() {
            let key = AlertKey::new(&station, "", Kind::Silent);
            let last = self.last_seen.get(&station).copied().unwrap_or(now);
            let raised = self
                .engine
                .state(&key)
                .is_some_and(|s| matches!(s.phase, Phase::Raised | Phase::Acknowledged));
            if now - last >= silent_after && !raised {
                let note = format!("no data since {}", local(&self.ctx, last));
                self.observe_now(
                    key,
                    now,
                    true,
                    Detail {
                        ts: last,
                        note,
                        ..Detail::default()
                    },
                );
            }
        }
        let backlog_after = self.engine.rules.backlog_after_ms;
        for (name, c) in self.health.snapshot() {
            let Some(b) = c.backlog else { continue };
            let key = AlertKey::new("", &name, Kind::Backlog);
            let bad = b.oldest_unsent_ms.is_some_and(|a| a >= backlog_after);
            let phase = self.engine.state(&key).map_or(Phase::Idle, |s| s.phase);
            let open = matches!(phase, Phase::Raised | Phase::Acknowledged);
            if bad != open {
                let note = format!(
                    "{} readings not forwarded; oldest waiting {}",
                    b.rows_behind,
                    humantime::format_duration(Duration::from_secs(
                        (b.oldest_unsent_ms.unwrap_or(0) / 1000).max(0) as u64
                    ))
                );
                self.observe_now(
                    key,
                    now,
                    bad,
                    Detail {
                        note,
                        ..Detail::default()
                    },
                );
            }
        }
        self.pending.extend(self.engine.tick(now));
        // Catch-ups whose station sent no late data for a while are over: their summaries go out.
        for station in &self.catching_up {
            let quiet = self
                .late_seen
                .get(station)
                .is_none_or(|t| now - t >= CATCH_UP_QUIET_MS);
            if quiet && !self.close.contains(station) {
                self.close.push(station.clone());
            }
        }
    }

    /// Replay committed readings past the fed position, and the current judging window of every series.
    async fn replay(&mut self) {
        let judging = self.judging_ms;
        loop {
            let after = self.fed_seq;
            let rows = match self
                .store
                .call(move |s| s.replay_readings(after, 5000))
                .await
            {
                Ok(r) => r,
                Err(LedgerError::Task { .. }) => return,
                Err(e) => {
                    warn!(error = %e, "Alert engine could not read the ledger to catch up.");
                    return;
                }
            };
            let now = self.clock.now_ms();
            let n = rows.len();
            for r in &rows {
                self.fed_seq = r.seq;
                self.observe_reading(ReadingObs::from(r), now);
            }
            // Readings these re-flagged when they arrived (the live event may have been lost with the process).
            let until = self.fed_seq;
            if until > after {
                match self
                    .store
                    .call(move |s| s.flag_revisions(after, until))
                    .await
                {
                    Ok(revised) => self.revised(&revised),
                    Err(e) => {
                        warn!(error = %e, "Alert engine could not read the flag revisions to catch up.")
                    }
                }
            }
            if !self.pending.is_empty() || n > 0 {
                self.flush().await;
            }
            if n < 5000 {
                break;
            }
        }
        let windows = self.store.call(move |s| s.current_windows(judging)).await;
        if let Ok(windows) = windows {
            let now = self.clock.now_ms();
            for w in windows {
                // Restored at start: the window in progress is judged when it closes, like any other.
                self.windows.insert(
                    (w.station.clone(), w.parameter.clone()),
                    (w.window_start, w.completeness, true),
                );
                self.observe_window(&w.station, &w.parameter, WindowObs::from(&w), false, now);
            }
        }
    }

    /// Store what is pending, then re-derive the keys whose observations arrived out of order (on top of what is
    /// stored, so only once nothing is pending), and store their new state.
    async fn settle(&mut self) {
        self.flush().await;
        if self.rederive.is_empty() || !self.pending.is_empty() {
            return;
        }
        self.rederive_all().await;
        self.flush().await;
    }

    async fn rederive_all(&mut self) {
        let now = self.clock.now_ms();
        let keys: Vec<(AlertKey, LateSpan)> =
            std::mem::take(&mut self.rederive).into_iter().collect();
        // What each key needs, owned, for the blocking call.
        let inputs: Vec<KeyInput> = keys
            .iter()
            .map(|(key, late)| {
                let series = (
                    key.station.clone(),
                    observe::completeness_parameter(&key.subject)
                        .unwrap_or(&key.subject)
                        .to_string(),
                );
                let limit = self.series.get(&series).and_then(|s| s.limit.clone());
                let limit = limit.unwrap_or_else(|| {
                    (
                        None,
                        None,
                        self.units.get(&series).cloned().unwrap_or_default(),
                    )
                });
                KeyInput {
                    key: key.clone(),
                    late: *late,
                    current: self.engine.state(key).cloned(),
                    channels: channels_for(&self.routes, key),
                    limit,
                }
            })
            .collect();
        let (ctx, rules, judging_ms) =
            (self.ctx.clone(), self.engine.rules.clone(), self.judging_ms);
        let result = self
            .store
            .call(move |s| {
                let rs: Vec<Rederivation<'_>> = inputs
                    .iter()
                    .map(|i| Rederivation {
                        ctx: &ctx,
                        rules: &rules,
                        key: &i.key,
                        late: i.late,
                        current: i.current.as_ref(),
                        channels: &i.channels,
                        judging_ms,
                        limit: i.limit.clone(),
                        now,
                    })
                    .collect();
                s.rederive(&rs)
            })
            .await;
        let done = match result {
            Ok(done) => done,
            Err(e) => {
                error!(error = %e, keys = keys.len(), "Re-deriving alert histories failed; will retry within a second.");
                for (key, late) in keys {
                    self.schedule_rederive(key, late);
                }
                return;
            }
        };
        let mut changed = Vec::new();
        for ((key, _), done) in keys.into_iter().zip(done) {
            let Some(done) = done else { continue };
            if !done.changed.is_empty() {
                info!(key = %key.id(), alerts = done.changed.len(), "Out-of-order data re-derived an alert history.");
                self.late_seen.insert(key.station.clone(), now);
                self.catching_up.insert(key.station.clone());
            }
            // Stored with the re-derivation: a state taken before it and not yet saved would overwrite it.
            self.unsaved.remove(&key);
            self.engine.rederived(key, done.state);
            changed.extend(done.changed);
        }
        if !changed.is_empty() {
            let _ = self.live.send(LiveEvent::Alerts(Arc::new(changed)));
        }
    }

    /// Route, store and announce what the engine decided, and save its state and the cursor.
    async fn flush(&mut self) {
        for (k, s) in self.engine.take_dirty() {
            self.unsaved.insert(k, s);
        }
        if self.pending.is_empty()
            && self.unsaved.is_empty()
            && !self.series_unsaved
            && self.close.is_empty()
            && self.fed_seq == self.saved_seq
        {
            return;
        }
        let routed: Vec<Routed> = self
            .pending
            .iter()
            .map(|t| (t.clone(), route(&self.routes, t)))
            .collect();
        let dirty: Vec<(AlertKey, KeyState)> = self
            .unsaved
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        let saved = Saved {
            dirty,
            series: self
                .series
                .iter()
                .filter_map(|(k, s)| Some((k.clone(), s.clock.filter(|_| s.unsaved)?)))
                .collect(),
            readings_pos: Some(self.fed_seq),
        };
        let (ctx, seq, close) = (self.ctx.clone(), self.fed_seq, self.close.clone());
        let routed2 = routed.clone();
        let result = self
            .store
            .call(move |s| s.commit(&ctx, &routed2, &close, saved))
            .await;
        let committed = match result {
            Ok(x) => x,
            Err(e @ LedgerError::Task { .. }) => {
                error!(error = %e, "Storing alerts failed; will retry within a second.");
                return;
            }
            Err(e) => {
                error!(error = %e, pending = self.pending.len(), "Storing alerts failed; will retry within a second.");
                return;
            }
        };
        self.saved_seq = seq;
        self.saved_at = std::time::Instant::now();
        self.unsaved.clear();
        if std::mem::take(&mut self.series_unsaved) {
            self.series.values_mut().for_each(|s| s.unsaved = false);
        }
        for ((t, _), id) in routed.iter().zip(&committed.ids) {
            if t.change == Change::Raised && *id != 0 {
                self.engine.set_alert_id(&t.key, *id);
                self.metrics.raised(t.key.kind);
            }
            if t.change == Change::Cleared {
                self.metrics.cleared(t.key.kind);
            }
        }
        for station in self.close.drain(..) {
            if !committed.catching_up.contains(&station) {
                info!(station = %station, "Late data caught up; its alerts are announced in one summary.");
            }
        }
        self.catching_up = committed.catching_up;
        // set_alert_id marked keys dirty again; they are saved with the next flush (the ids are already stored).
        for (k, s) in self.engine.take_dirty() {
            self.unsaved.insert(k, s);
        }
        for ch in &committed.woken {
            if let Some(w) = self.wake.get(ch) {
                w.notify_one();
            }
        }
        self.pending.clear();
        if !committed.changed.is_empty() {
            let _ = self
                .live
                .send(LiveEvent::Alerts(Arc::new(committed.changed)));
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Ack {
                id,
                who,
                role,
                comment,
                reply,
            } => {
                let state = self
                    .engine
                    .acknowledge(id)
                    .and_then(|k| self.engine.state(&k).cloned().map(|s| (k, s)));
                let r = match self
                    .store
                    .call(move |s| s.acknowledge(id, &who, &role, &comment, state))
                    .await
                {
                    // The blocking task did not finish: answer as before, the engine could not do it.
                    Err(AckError::Ledger(LedgerError::Task { .. })) => Err(AckError::Stopped),
                    r => r,
                };
                if let Ok(a) = &r {
                    let _ = self.live.send(LiveEvent::Alerts(Arc::new(vec![a.clone()])));
                }
                let _ = reply.send(r);
            }
            Command::Reconfigure(config) => {
                let now = self.clock.now_ms();
                self.engine.set_rules(Rules::from_config(&config.alert));
                self.ctx = Context::from_config(&config);
                self.routes = config.alert.routes.clone();
                self.stations = station_ids(&config);
                // A station added by the reload is silent from now on only if nothing arrives from it.
                self.last_seen.retain(|s, _| self.stations.contains(s));
                for s in &self.stations {
                    self.last_seen.entry(s.clone()).or_insert(now);
                }
                self.units = units(&config);
                self.judging_ms = config.compliance.averaging_window.as_millis() as i64;
                info!(
                    stations = self.stations.len(),
                    "Alert engine follows the reloaded config."
                );
            }
        }
    }
}

/// The channels of every route that matches the alert (none for an update, which is stored and shown only).
fn route(routes: &[Route], t: &Transition) -> Vec<String> {
    if !t.change.notifies() {
        return Vec::new();
    }
    channels_for(routes, &t.key)
}

/// The channels of every route that matches a key.
fn channels_for(routes: &[Route], key: &AlertKey) -> Vec<String> {
    let mut out = BTreeSet::new();
    for r in routes {
        let station_ok =
            r.stations.is_empty() || r.stations.iter().any(|p| glob_match(p, &key.station));
        let kind_ok = r.kinds.is_empty() || r.kinds.contains(&key.kind);
        if station_ok && kind_ok && key.kind.severity() >= r.min_severity {
            out.extend(r.channels.iter().cloned());
        }
    }
    out.into_iter().collect()
}

fn station_ids(config: &Config) -> Vec<String> {
    config.stations.iter().map(|s| s.id.to_string()).collect()
}

/// Set a station's time, in place where it is known: a burst passes here once per reading, and a lookup by `&str`
/// allocates nothing.
fn stamp(times: &mut FxHashMap<String, i64>, station: &str, now: i64) {
    match times.get_mut(station) {
        Some(t) => *t = now,
        None => {
            times.insert(station.to_string(), now);
        }
    }
}

/// Maps keyed by (station, parameter), looked up by [`SeriesRef`] without building the key.
type SeriesMap<V> = hashbrown::HashMap<(String, String), V, rustc_hash::FxBuildHasher>;

/// A (station, parameter) key of borrowed parts: every reading of a burst looks its series up in three maps, and
/// building the owned key was two allocations each time. Hashes as the tuple of `String`s does.
#[derive(Debug, Clone, Copy)]
struct SeriesRef<'a>(&'a str, &'a str);

impl SeriesRef<'_> {
    fn owned(self) -> (String, String) {
        (self.0.to_string(), self.1.to_string())
    }
}

impl std::hash::Hash for SeriesRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl hashbrown::Equivalent<(String, String)> for SeriesRef<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// The newest observation of a series' restored key states (a ledger from before series clocks were saved).
fn restored_clock(engine: &Engine, series: SeriesRef<'_>) -> Option<i64> {
    observe::READING_KINDS
        .iter()
        .filter_map(|k| {
            let key = AlertKey::new(series.0, series.1, *k);
            engine.state(&key).and_then(|s| s.clock)
        })
        .max()
}

/// Configured unit per (station, parameter).
fn units(config: &Config) -> HashMap<(String, String), String> {
    config
        .stations
        .iter()
        .flat_map(|s| {
            s.parameters.iter().map(|x| {
                (
                    (s.id.to_string(), x.parameter.to_string()),
                    x.unit.to_string(),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The runner with paused time: silence and forwarder backlog come from the tick, readings from the broadcast.

    use std::time::Duration;

    use super::*;
    use crate::alert::engine::TokioClock;
    use crate::compliance::{Flags, LimitBound};
    use crate::health::{Backlog, ConnectionState};
    use crate::ledger::Evaluated;
    use crate::model::{Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit};
    use crate::pipeline::CommittedBatch;

    const T0: i64 = 1_800_000_000_000;

    /// A borrowed series finds the entry its owned key made, and only that one (names that run together differ).
    #[test]
    fn a_series_is_found_by_its_borrowed_parts() {
        let mut times = SeriesMap::default();
        for (series, t) in [
            (SeriesRef("BN_KCN_01", "COD"), 1),
            (SeriesRef("BN_KCN_0", "1COD"), 2),
            (SeriesRef("BN_KCN_01", "COD"), 3),
        ] {
            match times.get_mut(&series) {
                Some(at) => *at = t,
                None => {
                    times.insert(series.owned(), t);
                }
            }
        }
        assert_eq!(times.len(), 2);
        assert_eq!(times.get(&SeriesRef("BN_KCN_01", "COD")), Some(&3));
        assert_eq!(
            times.get(&("BN_KCN_0".to_string(), "1COD".to_string())),
            Some(&2)
        );
        assert_eq!(times.get(&SeriesRef("BN_KCN_01", "BOD5")), None);
    }

    /// Every alert with its deliveries, oldest first.
    fn stored(db: &std::path::Path) -> Vec<crate::ledger::alerts::AlertWithDeliveries> {
        let all = crate::ledger::alert_list::AlertFilter {
            limit: i64::MAX,
            ..Default::default()
        };
        let mut a = crate::ledger::Reader::open(db)
            .unwrap()
            .alerts(&all)
            .unwrap();
        a.reverse();
        a
    }

    /// (kind, subject, state) of every alert, oldest first.
    fn alerts(db: &std::path::Path) -> Vec<(String, String, String)> {
        stored(db)
            .into_iter()
            .map(|a| (a.alert.kind, a.alert.subject, a.alert.state))
            .collect()
    }

    fn reading(seq: i64, ts: i64) -> LiveEvent {
        LiveEvent::Readings(Arc::new(CommittedBatch::new(
            vec![Evaluated {
                reading: Reading {
                    station: StationId::parse("BN_KCNTS_NUOC01").unwrap(),
                    parameter: Parameter::new("pH").unwrap(),
                    ts: Timestamp(ts),
                    value: 7.0,
                    unit: Unit::new("-"),
                    status: Status::Measuring,
                },
                assessment: crate::compliance::Assessment {
                    rules: Default::default(),
                    limit: Some(LimitBound::Range(5.5, 9.0)),
                    ratio: None,
                    band: Band::Compliant,
                    flags: Flags::default(),
                },
                source: SourceKind::Sim,
                received: None,
            }],
            vec![seq],
        )))
    }

    /// Wait (in paused time, so the runner's ticks run) until `cond` holds on the alerts, for at most `limit`.
    async fn until(
        db: &std::path::Path,
        limit: Duration,
        cond: impl Fn(&[(String, String, String)]) -> bool,
    ) -> Vec<(String, String, String)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let a = alerts(db);
            if cond(&a) || tokio::time::Instant::now() > deadline {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The alert engine of one station (Tiên Sơn, pH) with a log channel, `alert` lines added to `[alert]`.
    struct Started {
        db: std::path::PathBuf,
        live: broadcast::Sender<LiveEvent>,
        health: Health,
        metrics: Arc<AlertMetrics>,
        shutdown: CancellationToken,
        tasks: tokio::task::JoinSet<()>,
        _keep: broadcast::Receiver<LiveEvent>,
    }

    fn start(dir: &std::path::Path, alert: &str) -> Started {
        let text = format!(
            r#"
[ledger]
path = "l.db"
[alert]
{alert}
[[alert.channel]]
name = "log"
type = "log"
[[alert.route]]
channels = ["log"]
[[station]]
id = "BN_KCNTS_NUOC01"
name = "Tiên Sơn"
profile = "qcvn40-2011-b"
design_flow_m3_day = 5000
receiving_water = {{ type = "river", flow_m3_s = 120 }}
parameters = {{ pH = {{}} }}
"#
        );
        let config = Config::from_str(&text, std::path::Path::new("t.toml"), dir).unwrap();
        let db = config.ledger.path.clone();
        drop(crate::ledger::Ledger::open(&db, crate::config::Synchronous::Normal).unwrap());
        let (live, _keep) = broadcast::channel(16);
        let (health, metrics) = (Health::default(), Arc::new(AlertMetrics::default()));
        let shutdown = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        crate::alert::start(
            &config,
            &live,
            &health,
            &metrics,
            Arc::new(TokioClock::new(T0)),
            &mut tasks,
            &shutdown,
        )
        .unwrap();
        Started {
            db,
            live,
            health,
            metrics,
            shutdown,
            tasks,
            _keep,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silent_station_and_forwarder_backlog_raise_from_the_tick_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let Started {
            db,
            live,
            health,
            metrics,
            shutdown,
            mut tasks,
            _keep,
        } = start(
            dir.path(),
            "silent_after = \"10m\"\nbacklog_after = \"30m\"",
        );
        // A reading now; nine minutes later still quiet.
        live.send(reading(1, T0)).unwrap();
        tokio::time::sleep(Duration::from_secs(9 * 60)).await;
        assert!(alerts(&db).is_empty());
        // Past ten minutes without data: silent, once.
        let a = until(&db, Duration::from_secs(120), |a| !a.is_empty()).await;
        assert_eq!(a, [("silent".into(), "".into(), "raised".into())]);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(alerts(&db).len(), 1, "raised once");
        // Data again: cleared.
        live.send(reading(2, T0 + 1_300_000)).unwrap();
        let a = until(&db, Duration::from_secs(10), |a| a[0].2 == "cleared").await;
        assert_eq!(a[0].2, "cleared");

        // A forwarder 40 minutes behind: backlog raised; caught up: cleared.
        let mut c = ConnectionState::new(SourceKind::Api, Vec::new());
        c.backlog = Some(Backlog {
            rows_behind: 5000,
            oldest_unsent_ms: Some(40 * 60_000),
        });
        health.register("influx province", c);
        let a = until(&db, Duration::from_secs(10), |a| a.len() == 2).await;
        assert_eq!(
            a[1],
            ("backlog".into(), "influx province".into(), "raised".into())
        );
        health.set_backlog(
            "influx province",
            Backlog {
                rows_behind: 0,
                oldest_unsent_ms: None,
            },
        );
        let a = until(&db, Duration::from_secs(10), |a| a[1].2 == "cleared").await;
        assert_eq!(a[1].2, "cleared");
        let by_kind = metrics.by_kind();
        assert!(by_kind
            .iter()
            .any(|(k, r, c)| *k == "silent" && *r == 1 && *c == 1));
        // The log channel delivered all four notifications.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while support_delivered(&db) < 4 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(support_delivered(&db), 4);
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
    }

    /// Window updates for pH of the test station, with the given (window index, completeness), hours after T0.
    fn windows(list: &[(i64, f64)]) -> LiveEvent {
        LiveEvent::Windows(Arc::new(
            list.iter()
                .map(
                    |&(i, completeness)| crate::ledger::aggregates::WindowUpdate {
                        station: "BN_KCNTS_NUOC01".into(),
                        parameter: "pH".into(),
                        window_ms: 3_600_000,
                        window_start: Timestamp(T0 + i * 3_600_000),
                        aggregate: crate::compliance::hourly::Aggregate {
                            mean: Some(7.0),
                            min: Some(7.0),
                            max: Some(7.0),
                            valid: (completeness * 12.0) as u32,
                            expected: 12,
                            completeness,
                            ratio: None,
                            band: Band::Compliant,
                        },
                        verdict: crate::compliance::verdict::WindowVerdict::Final {
                            band: Band::Compliant,
                            ratio: None,
                        },
                        late_change_from: None,
                        limit: (Some(6.0), Some(9.0)),
                    },
                )
                .collect(),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn completeness_is_judged_on_closed_windows_but_not_a_series_first() {
        let dir = tempfile::tempdir().unwrap();
        let Started {
            db,
            live,
            shutdown,
            mut tasks,
            _keep,
            ..
        } = start(dir.path(), "completeness_below = 0.75\nraise_after = 1");
        // The series' first window (the station started mid-hour) closes at 30 %: not judged.
        live.send(windows(&[(0, 0.3)])).unwrap();
        live.send(windows(&[(1, 0.4)])).unwrap();
        // One refresh completes window 1 and starts window 2, reported newest first: window 1 closes complete.
        live.send(windows(&[(2, 0.2), (1, 1.0)])).unwrap();
        // Window 2 closes at 20 %: one quality alert.
        live.send(windows(&[(3, 1.0)])).unwrap();
        let a = until(&db, Duration::from_secs(10), |a| !a.is_empty()).await;
        assert_eq!(
            a,
            [("quality".into(), "pH:completeness".into(), "raised".into())]
        );
        let detail: serde_json::Value = serde_json::from_str(&stored(&db)[0].alert.detail).unwrap();
        let note = detail["note"].as_str().unwrap().to_string();
        assert!(note.starts_with("completeness 20 %"), "{note}");
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
    }

    /// pH of the test station every 5 minutes from `from`, each value given (out of range above 9.0).
    fn ph_at(from: i64, values: &[f64]) -> Vec<Evaluated> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let LiveEvent::Readings(batch) = reading(0, from + i as i64 * 300_000) else {
                    unreachable!()
                };
                let mut e = batch.readings()[0].clone();
                e.reading.value = v;
                if v > 9.0 {
                    e.assessment.band = Band::OutOfRange;
                }
                e
            })
            .collect()
    }

    /// Standing (not withdrawn) violation alerts as (state, since), oldest first.
    fn violations(db: &std::path::Path) -> Vec<(String, i64)> {
        stored(db)
            .into_iter()
            .map(|a| a.alert)
            .filter(|a| a.kind == "violation" && a.state != "withdrawn")
            .map(|a| (a.state, a.since))
            .collect()
    }

    /// Readings committed and aggregated in `steps` (each followed by an aggregate refresh whose window updates go to
    /// the engine): the standing violation alerts once they are `want`, or after 30 s (paused time) of waiting.
    async fn violations_after(
        steps: &[Vec<Evaluated>],
        want: &[(String, i64)],
    ) -> Vec<(String, i64)> {
        let dir = tempfile::tempdir().unwrap();
        let Started {
            db,
            live,
            shutdown,
            tasks,
            _keep,
            ..
        } = start(dir.path(), "");
        let ctx = crate::ledger::aggregates::AggregateContext {
            offset_secs: 7 * 3600,
            windows: vec![3_600_000],
            judging_window_ms: 3_600_000,
            stations: HashMap::from([(
                "BN_KCNTS_NUOC01".to_string(),
                (
                    300_000,
                    HashMap::from([("pH".to_string(), Some(LimitBound::Range(5.5, 9.0)).into())]),
                ),
            )]),
        };
        let mut ledger =
            crate::ledger::Ledger::open(&db, crate::config::Synchronous::Normal).unwrap();
        // A reading two hours earlier first, so the engine has replayed the ledger and follows the broadcast when
        // the steps come.
        let earlier = ph_at(steps[0][0].reading.ts.millis() - 7_200_000, &[7.0]);
        let steps = [vec![earlier], steps.to_vec()].concat();
        for (i, step) in steps.iter().enumerate() {
            // As the writer does: the committed readings, then the refresh's window updates.
            let (outcomes, _) = ledger.commit(step, &[]).unwrap();
            let seqs = outcomes
                .iter()
                .map(|o| match o {
                    crate::ledger::Outcome::Accepted(seq) => *seq,
                    other => panic!("{other:?}"),
                })
                .collect();
            let batch = CommittedBatch::new(step.clone(), seqs);
            live.send(LiveEvent::Readings(Arc::new(batch))).unwrap();
            let report = ledger.refresh_aggregates(&ctx, 100_000).unwrap();
            if i > 0 {
                live.send(LiveEvent::Windows(Arc::new(report.updates)))
                    .unwrap();
            }
            caught_up(&db).await;
        }
        // A re-derivation lands after the live observations of the same step.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut found = violations(&db);
        while found != want && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            found = violations(&db);
        }
        stop(shutdown, tasks).await;
        found
    }

    /// An hour that had closed when the aggregator first counted part of it (a backlog cut by the aggregator's
    /// step) and is revised by the rest is re-derived, not observed again: the first part alone breaches the range
    /// (mean 10), the whole hour does not (mean 8.5). The engine ends with the alerts of the hour counted at once
    /// (one violation, since the second hour), wherever the step cut it. Observed again instead, the first part's
    /// verdict raised a violation since the first hour, which the whole hour does not support.
    #[tokio::test(start_paused = true)]
    async fn a_closed_window_revised_by_late_readings_gives_the_alerts_of_the_whole_window() {
        // Local hours a day ago (UTC+7): closed for the aggregator, which judges on the wall clock.
        let hour = 3_600_000;
        let now = Timestamp::now().millis();
        let h0 = (now - 86_400_000 + 7 * hour).div_euclid(hour) * hour - 7 * hour;
        let (first, second) = (ph_at(h0, &[10.0; 6]), ph_at(h0 + 1_800_000, &[7.0; 6]));
        let next = ph_at(h0 + hour, &[10.0; 12]);
        let whole = [first.clone(), second.clone(), next.clone()].concat();
        let want = [("raised".to_string(), h0 + hour)];
        assert_eq!(violations_after(&[whole], &want).await, want);
        let cut = [first, [second, next].concat()];
        assert_eq!(violations_after(&cut, &want).await, want);
        // A breach in both halves stays one violation since the first hour, however many steps revise the hour
        // each ends in.
        let half = |i: i64| ph_at(h0 + i * 1_800_000, &[10.0; 6]);
        let want = [("raised".to_string(), h0)];
        let whole: Vec<Evaluated> = (0..8).flat_map(half).collect();
        assert_eq!(violations_after(&[whole], &want).await, want);
        let cut = [
            half(0),
            [half(1), half(2)].concat(),
            [half(3), half(4)].concat(),
            [half(5), half(6), half(7)].concat(),
        ];
        assert_eq!(violations_after(&cut, &want).await, want);
    }

    fn support_delivered(db: &std::path::Path) -> i64 {
        stored(db)
            .iter()
            .flat_map(|a| &a.deliveries)
            .filter(|d| d.status == "delivered")
            .count() as i64
    }

    /// pH at 7.0 every 5 minutes for 2.5 hours before T0, reading `i` at T0 − 2.5 h + 5 min × i, judged with the
    /// default quality rules: the ledger flags a flat line after two hours without a gap.
    fn flat_ph(indexes: impl Iterator<Item = i64>) -> Vec<Evaluated> {
        let rules = crate::compliance::quality::SeriesRules::new(
            &crate::compliance::QualitySettings::default(),
            Duration::from_secs(300),
            Some(3.5),
        );
        indexes
            .map(|i| {
                let LiveEvent::Readings(batch) = reading(0, T0 - 9_000_000 + i * 300_000) else {
                    unreachable!()
                };
                let mut e = batch.readings()[0].clone();
                e.assessment.rules = rules;
                e
            })
            .collect()
    }

    fn commit(db: &std::path::Path, readings: &[Evaluated]) {
        let mut l = crate::ledger::Ledger::open(db, crate::config::Synchronous::Normal).unwrap();
        for e in readings {
            l.commit(std::slice::from_ref(e), &[]).unwrap();
        }
    }

    /// Wait (paused time) until the engine has taken every committed reading.
    async fn caught_up(db: &std::path::Path) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let done = || {
            let r = crate::ledger::Reader::open(db).unwrap();
            // Readings are only added here, so their count is the newest seq.
            crate::ledger::cursor(r.connection(), "alerts:readings").unwrap()
                == r.count_readings().unwrap()
        };
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the engine did not catch up"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// (kind, subject, state, since, raised, last bad, cleared) of an alert.
    type Line = (String, String, String, i64, i64, i64, Option<i64>);

    /// Every alert's [`Line`].
    fn timeline(db: &std::path::Path) -> Vec<Line> {
        stored(db)
            .into_iter()
            .map(|a| {
                let a = a.alert;
                (
                    a.kind, a.subject, a.state, a.since, a.raised, a.updated, a.cleared,
                )
            })
            .collect()
    }

    /// An engine started on an empty ledger follows it from its first reading (one started on a ledger with
    /// readings begins at its newest).
    async fn from_the_start(dir: &std::path::Path) {
        let Started {
            shutdown, tasks, ..
        } = start(dir, "");
        stop(shutdown, tasks).await;
    }

    async fn stop(shutdown: CancellationToken, mut tasks: tokio::task::JoinSet<()>) {
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
    }

    #[tokio::test(start_paused = true)]
    async fn readings_reflagged_while_the_engine_was_down_are_rederived_at_restart() {
        // In order: the flat line raises a quality alert.
        let b = tempfile::tempdir().unwrap();
        let db_b = b.path().join("l.db");
        from_the_start(b.path()).await;
        commit(&db_b, &flat_ph(0..=30));
        let Started {
            shutdown, tasks, ..
        } = start(b.path(), "raise_after = 2");
        caught_up(&db_b).await;
        let expected = until(&db_b, Duration::from_secs(30), |a| !a.is_empty()).await;
        assert_eq!(expected, [("quality".into(), "pH".into(), "raised".into())]);
        stop(shutdown, tasks).await;
        let expected = timeline(&db_b);

        // Without four readings (a gap), no flat line; the engine takes it all and stops.
        let a = tempfile::tempdir().unwrap();
        let db_a = a.path().join("l.db");
        from_the_start(a.path()).await;
        commit(&db_a, &flat_ph((0..=30).filter(|i| !(10..=13).contains(i))));
        let Started {
            shutdown, tasks, ..
        } = start(a.path(), "raise_after = 2");
        caught_up(&db_a).await;
        stop(shutdown, tasks).await;
        assert!(timeline(&db_a).is_empty());
        // The missing readings arrive while it is down: each is good, and re-flags the readings after it.
        commit(&db_a, &flat_ph(10..=13));
        let r = crate::ledger::Reader::open(&db_a).unwrap();
        let revisions =
            crate::ledger::quality::revisions_caused(r.connection(), 0, i64::MAX).unwrap();
        assert!(!revisions.is_empty());
        // At restart the engine reads the revisions those readings caused, and has the in-order alert.
        let Started {
            shutdown, tasks, ..
        } = start(a.path(), "raise_after = 2");
        caught_up(&db_a).await;
        until(&db_a, Duration::from_secs(30), |a| !a.is_empty()).await;
        stop(shutdown, tasks).await;
        assert_eq!(timeline(&db_a), expected);
    }
}
