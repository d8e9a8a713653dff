//! The alert state machine: pure, no I/O, times passed in by the caller.
//!
//! Two clocks. **Observation time** (each [`Observation`]'s `at`: the reading's time, the window's start) decides
//! what the data says: raise and clear counts, `raise_min_duration`, fault and calibration durations, flap windows,
//! re-notification eligibility, and the times an alert carries (`since` = first bad observation, raised, last bad,
//! cleared). A day of history replayed in a second is judged as the day it was. **Wall time** (`now`, from a
//! [`Clock`]; tests drive it with `tokio::time::pause()`) only paces what is about now: re-notifications, how often
//! an open alert's latest value is published, and the kinds that are about now (silence, forwarder backlog, whose
//! observations the runner stamps with the wall time).
//!
//! One state per (station, subject, kind) — the subject is the parameter, the forwarder for backlog alerts, or empty
//! for station-wide kinds. Lifecycle: idle → pending (bad observations counted) → raised (→ acknowledged) → cleared
//! (back to idle). What it decides, and nothing else:
//! - **raise** after `raise_after` bad observations in a row lasting `raise_min_duration` (value kinds), or once a
//!   condition has lasted its kind's time (fault, calibration), or at once (silent, backlog: the runner reports them
//!   once their time has passed);
//! - **clear** with hysteresis: `clear_after` good observations in a row, or one at or below `clear_below` × limit;
//! - **re-notify** while raised and not acknowledged, once the data shows the condition lasting another `renotify`
//!   and at most every `renotify` of wall time; **escalate** when the Decree 45 band worsens;
//! - **update** an open alert's latest value, peak and last bad observation (published at most every
//!   `update_every` of wall time, so a reading every few minutes per series does not flood);
//! - **flap suppression**: after `flap_max` raises within `flap_window`, clear only after a whole quiet window;
//! - **maintenance** windows mute a station: its observations are ignored and nothing is re-sent;
//! - **late data**: a transition decided on an observation the runner marks late carries `late`, so the runner
//!   announces it in a catch-up summary rather than on its own.
//!
//! The caller stores alerts and the outbox, and persists [`KeyState`]s so a restart resumes mid-incident.

use std::hash::{Hash, Hasher};

use rustc_hash::{FxBuildHasher, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::config::alert::{Alert as AlertConfig, Maintenance};

/// What an alert is about; its severity ranks routes. Defined in the config, whose `[[alert.route]]` names them.
pub use crate::config::alert::{AlertKind as Kind, Severity};

impl Kind {
    /// Kinds judged on values (counted observations, hysteresis); the others are judged on how long a condition
    /// lasts and clear at the first good observation.
    fn counted(self) -> bool {
        matches!(self, Kind::Exceedance | Kind::Violation | Kind::Quality)
    }
    /// Kinds about now (the runner observes them at wall time): their quiet windows pass on the wall clock.
    pub fn about_now(self) -> bool {
        matches!(self, Kind::Silent | Kind::Backlog)
    }
}

pub fn severity_name(s: Severity) -> &'static str {
    s.as_str()
}

/// (station, subject, kind).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlertKey {
    pub station: String,
    /// Parameter, forwarder name, or empty.
    pub subject: String,
    pub kind: Kind,
}

impl AlertKey {
    pub fn new(station: &str, subject: &str, kind: Kind) -> Self {
        Self {
            station: station.to_string(),
            subject: subject.to_string(),
            kind,
        }
    }
    /// Stable text form, the primary key of the persisted state.
    pub fn id(&self) -> String {
        format!("{}|{}|{}", self.station, self.subject, self.kind.as_str())
    }
}

/// An [`AlertKey`] made of borrowed parts, to look a key up without allocating it (a burst looks up every key of
/// every reading). Hashes as the key does: the same fields in the same order.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    pub station: &'a str,
    pub subject: &'a str,
    pub kind: Kind,
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.station.hash(state);
        self.subject.hash(state);
        self.kind.hash(state);
    }
}

impl hashbrown::Equivalent<AlertKey> for KeyRef<'_> {
    fn equivalent(&self, key: &AlertKey) -> bool {
        self.kind == key.kind && self.station == key.station && self.subject == key.subject
    }
}

/// What was observed, for the message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    /// Sample time of the observation (data time, UTC ms).
    pub ts: i64,
    pub value: Option<f64>,
    pub unit: String,
    pub limit_low: Option<f64>,
    pub limit_high: Option<f64>,
    /// Multiple of the limit.
    pub ratio: Option<f64>,
    /// Decree 45 band name (`1_1_to_1_5`, …), or empty.
    pub band: String,
    /// Band severity 0–6.
    pub band_severity: u8,
    /// A short note: "no data since …", "flat_line", "status 02 since …".
    pub note: String,
}

/// One observation of a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub bad: bool,
    /// Observation time (UTC ms): the reading's time, the window's start; the wall time for silence and backlog.
    pub at: i64,
    /// Processed long after it was observed (`alert.late_after`): a backlog or a replay.
    pub late: bool,
    pub detail: Detail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Idle,
    Pending,
    Raised,
    Acknowledged,
}

/// Persisted per key. Times are observation times unless named wall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyState {
    pub phase: Phase,
    /// Ledger id of the raised alert.
    pub alert_id: Option<i64>,
    pub bad_count: u32,
    /// First bad observation of the current run (the alert's `since`).
    pub bad_since: Option<i64>,
    pub good_count: u32,
    pub good_since: Option<i64>,
    pub raised_at: Option<i64>,
    /// Wall time of the last notification (re-notify pacing).
    pub last_notified: Option<i64>,
    /// Band severity of the last notification (escalation when it grows).
    pub notified_severity: u8,
    /// Raise times within the flap window.
    pub raises: Vec<i64>,
    /// The latest observation (bad while pending; good or bad while raised).
    pub detail: Detail,
    /// The worst observation while raised (band, then multiple).
    pub peak: Detail,
    /// Newest observation time seen: the key's observation clock (it never runs backwards).
    #[serde(default)]
    pub clock: Option<i64>,
    /// Latest bad observation.
    #[serde(default)]
    pub last_bad: Option<i64>,
    /// Observation time covered by the last notification (re-notify eligibility).
    #[serde(default)]
    pub notified_at: Option<i64>,
    /// The alert was raised on late data.
    #[serde(default)]
    pub late: bool,
    /// Wall time the alert row was last written, and whether its latest value, peak or last bad observation have
    /// changed since (published by [`Engine::tick`] at most every `update_every`).
    #[serde(default)]
    pub published: Option<i64>,
    #[serde(default)]
    pub unpublished: bool,
}

impl Default for KeyState {
    fn default() -> Self {
        Self {
            phase: Phase::Idle,
            alert_id: None,
            bad_count: 0,
            bad_since: None,
            good_count: 0,
            good_since: None,
            raised_at: None,
            last_notified: None,
            notified_severity: 0,
            raises: Vec::new(),
            detail: Detail::default(),
            peak: Detail::default(),
            clock: None,
            last_bad: None,
            notified_at: None,
            late: false,
            published: None,
            unpublished: false,
        }
    }
}

impl KeyState {
    /// Back to idle after a clear or an abandoned pending run; the flap history and the key's clock stay.
    fn reset(&mut self) {
        *self = KeyState {
            raises: std::mem::take(&mut self.raises),
            clock: self.clock,
            ..KeyState::default()
        };
    }
}

/// What changed, for the caller to store and notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Raised,
    Escalated,
    Renotify,
    Cleared,
    /// The open alert's latest value, peak or last bad observation changed (stored and shown, not notified).
    Updated,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Raised => "raised",
            Change::Escalated => "escalated",
            Change::Renotify => "renotify",
            Change::Cleared => "cleared",
            Change::Updated => "updated",
        }
    }
    /// Whether recipients are told.
    pub fn notifies(self) -> bool {
        self != Change::Updated
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub key: AlertKey,
    pub change: Change,
    /// `None` for `Raised` (the caller creates the alert and calls [`Engine::set_alert_id`]).
    pub alert_id: Option<i64>,
    /// Observation time of the change (wall time for re-notifications and updates of kinds about now).
    pub at: i64,
    /// When the condition began: the first bad observation.
    pub since: i64,
    /// The latest bad observation.
    pub last_bad: i64,
    pub detail: Detail,
    pub peak: Detail,
    /// Decided on late data: announced in the station's catch-up summary, not on its own.
    pub late: bool,
    /// The alert was raised on late data.
    pub raised_late: bool,
}

/// Timing rules in milliseconds.
#[derive(Debug, Clone)]
pub struct Rules {
    pub raise_after: u32,
    pub raise_min_ms: i64,
    pub clear_after: u32,
    pub clear_below: f64,
    pub renotify_ms: i64,
    pub flap_window_ms: i64,
    pub flap_max: u32,
    pub silent_after_ms: i64,
    pub fault_after_ms: i64,
    pub calibration_after_ms: i64,
    pub backlog_after_ms: i64,
    pub completeness_below: f64,
    pub maintenance: Vec<Maintenance>,
    /// Observations older than this when processed are late (the runner marks them).
    pub late_after_ms: i64,
    /// Least wall time between two stored updates of an open alert's latest value.
    pub update_every_ms: i64,
}

/// How often an open alert's latest value, peak and last bad observation are stored and published, at most.
pub const PUBLISH_EVERY_MS: i64 = 15_000;

impl Rules {
    pub fn from_config(c: &AlertConfig) -> Rules {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Rules {
            raise_after: c.raise_after.max(1),
            raise_min_ms: ms(c.raise_min_duration),
            clear_after: c.clear_after.max(1),
            clear_below: c.clear_below,
            renotify_ms: ms(c.renotify),
            flap_window_ms: ms(c.flap_window),
            flap_max: c.flap_max.max(1),
            silent_after_ms: ms(c.silent_after),
            fault_after_ms: ms(c.fault_after),
            calibration_after_ms: ms(c.calibration_after),
            backlog_after_ms: ms(c.backlog_after),
            completeness_below: c.completeness_below,
            maintenance: c.maintenance.clone(),
            late_after_ms: ms(c.late_after),
            update_every_ms: PUBLISH_EVERY_MS,
        }
    }

    /// How long a condition must last before raising.
    fn raise_ms(&self, kind: Kind) -> i64 {
        match kind {
            Kind::Fault => self.fault_after_ms,
            Kind::Calibration => self.calibration_after_ms,
            // Silent and backlog observations are only bad once their threshold has passed.
            Kind::Silent | Kind::Backlog => 0,
            Kind::Exceedance | Kind::Violation | Kind::Quality => self.raise_min_ms,
        }
    }

    /// Bad observations in a row before raising. A violation is a judged window, already the mean of a window's
    /// readings: one is conclusive.
    fn required_count(&self, kind: Kind) -> u32 {
        if kind.counted() && kind != Kind::Violation {
            self.raise_after
        } else {
            1
        }
    }

    pub fn in_maintenance(&self, station: &str, now: i64) -> bool {
        self.maintenance
            .iter()
            .any(|m| m.station == station && m.from_ms <= now && now < m.to_ms)
    }
}

/// Wall-clock milliseconds. The daemon uses [`SystemClock`]; tests use [`TokioClock`] under `tokio::time::pause()`.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::model::Timestamp::now().millis()
    }
}

/// A wall clock that advances with tokio's (pausable) clock from a fixed start.
pub struct TokioClock {
    base_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new(base_ms: i64) -> Self {
        Self {
            base_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.base_ms + self.start.elapsed().as_millis() as i64
    }
}

/// Every key's state. Keys are hashed (looked up at every observation); what iterates them sorts, so transitions
/// come out in a stable order.
#[derive(Debug, Clone)]
pub struct Engine {
    pub rules: Rules,
    keys: hashbrown::HashMap<AlertKey, KeyState, FxBuildHasher>,
    /// Keys changed since the last [`Engine::take_dirty`] (to persist).
    dirty: FxHashSet<AlertKey>,
}

impl Engine {
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            keys: hashbrown::HashMap::default(),
            dirty: FxHashSet::default(),
        }
    }

    /// New timing rules (a config reload); every key keeps its state.
    pub fn set_rules(&mut self, rules: Rules) {
        self.rules = rules;
    }

    /// Load a persisted state.
    pub fn restore(&mut self, key: AlertKey, state: KeyState) {
        self.keys.insert(key, state);
    }

    /// The state a re-derivation of the key's history arrived at (already stored with it, so not dirty; a state
    /// taken earlier and not yet saved is stale: see the runner's `rederive`).
    pub fn rederived(&mut self, key: AlertKey, state: KeyState) {
        self.keys.insert(key, state);
    }

    pub fn state(&self, key: &AlertKey) -> Option<&KeyState> {
        self.keys.get(key)
    }

    /// True when a good observation cannot change the key: it has no state, or is idle (see [`Engine::observe`]).
    pub fn is_idle(&self, key: KeyRef<'_>) -> bool {
        self.keys.get(&key).is_none_or(|s| s.phase == Phase::Idle)
    }

    /// The keys of the open alerts (raised or acknowledged), sorted.
    fn open_keys(&self) -> Vec<AlertKey> {
        let mut open: Vec<AlertKey> = self
            .keys
            .iter()
            .filter(|(_, s)| matches!(s.phase, Phase::Raised | Phase::Acknowledged))
            .map(|(k, _)| k.clone())
            .collect();
        open.sort_unstable();
        open
    }

    /// Keys changed since the last call, with their state, to persist.
    pub fn take_dirty(&mut self) -> Vec<(AlertKey, KeyState)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|k| {
                let s = self.keys.get(&k).cloned().unwrap_or_default();
                (k, s)
            })
            .collect()
    }

    pub fn set_alert_id(&mut self, key: &AlertKey, id: i64) {
        if let Some(s) = self.keys.get_mut(key) {
            s.alert_id = Some(id);
            self.dirty.insert(key.clone());
        }
    }

    /// An operator acknowledged the alert: no more re-notifications (an escalation is still sent). Returns its key
    /// when the alert is raised.
    pub fn acknowledge(&mut self, alert_id: i64) -> Option<AlertKey> {
        let (key, s) = self
            .keys
            .iter_mut()
            .find(|(_, s)| s.alert_id == Some(alert_id) && s.phase == Phase::Raised)?;
        s.phase = Phase::Acknowledged;
        let key = key.clone();
        self.dirty.insert(key.clone());
        Some(key)
    }

    /// Feed one observation; `now` is the wall time it is processed at.
    pub fn observe(&mut self, key: &AlertKey, now: i64, obs: Observation) -> Option<Transition> {
        if self.rules.in_maintenance(&key.station, obs.at) {
            return None;
        }
        // The common case — good, nothing pending — changes nothing but the key's clock, which only matters once
        // something is pending.
        if !obs.bad && self.keys.get(key).is_none_or(|s| s.phase == Phase::Idle) {
            return None;
        }
        let rules = &self.rules;
        let s = self.keys.entry(key.clone()).or_default();
        self.dirty.insert(key.clone());
        // The key's observation clock: an out-of-order observation counts at the newest time seen (the runner
        // re-derives a key's history instead of feeding it out of order).
        let t = s.clock.map_or(obs.at, |c| c.max(obs.at));
        // The same observation again (a window judged anew: early, then when it closes) updates, it is not counted
        // twice, so the outcome does not depend on how often a window was judged.
        let again = s.clock == Some(obs.at);
        s.clock = Some(t);
        if obs.bad {
            observe_bad(rules, key, s, now, t, again, obs)
        } else {
            observe_good(rules, key, s, now, t, again, obs)
        }
    }

    /// At shutdown: publish every open alert's latest observation now, whatever `update_every` says, so what is
    /// stored is what the engine knows.
    pub fn publish_unpublished(&mut self, now: i64) -> Vec<Transition> {
        let mut out = Vec::new();
        for key in self.open_keys() {
            let Some(s) = self.keys.get_mut(&key) else {
                continue;
            };
            if s.unpublished {
                out.push(updated(&key, s, now));
                self.dirty.insert(key);
            }
        }
        out
    }

    /// Wall-clock decisions: re-notifications, publishing open alerts' latest values, and the quiet window of a
    /// flapping alert about now (silence, backlog).
    pub fn tick(&mut self, now: i64) -> Vec<Transition> {
        let mut out = Vec::new();
        let rules = &self.rules;
        for key in self.open_keys() {
            let Some(s) = self.keys.get_mut(&key) else {
                continue;
            };
            let key = &key;
            let muted = rules.in_maintenance(&key.station, now);
            let before = out.len();
            if s.phase == Phase::Raised && !muted {
                if let Some(t) = quiet_clear(rules, key, s, now) {
                    self.dirty.insert(key.clone());
                    out.push(t);
                    continue;
                }
                if renotify_due(rules, key, s, now) {
                    s.last_notified = Some(now);
                    s.notified_at = Some(if key.kind.about_now() {
                        now
                    } else {
                        s.last_bad.unwrap_or(now)
                    });
                    let at = s.notified_at.unwrap_or(now);
                    out.push(transition(key, s, Change::Renotify, at, false, now));
                }
            }
            if out.len() == before
                && s.unpublished
                && s.published.is_none_or(|p| now - p >= rules.update_every_ms)
            {
                out.push(updated(key, s, now));
            }
            if out.len() > before {
                self.dirty.insert(key.clone());
            }
        }
        out
    }
}

/// An open alert's latest observation, value, peak and last bad observation, published.
fn updated(key: &AlertKey, s: &mut KeyState, now: i64) -> Transition {
    let at = s.clock.unwrap_or(now);
    transition(key, s, Change::Updated, at, false, now)
}

fn observe_bad(
    rules: &Rules,
    key: &AlertKey,
    s: &mut KeyState,
    now: i64,
    t: i64,
    again: bool,
    obs: Observation,
) -> Option<Transition> {
    s.good_count = 0;
    s.good_since = None;
    if !(again && s.bad_count > 0) {
        s.bad_count = s.bad_count.saturating_add(1);
    }
    let since = s.bad_since.map_or(obs.at, |b| b.min(obs.at));
    s.bad_since = Some(since);
    s.last_bad = Some(s.last_bad.map_or(obs.at, |b| b.max(obs.at)));
    s.detail = obs.detail;
    match s.phase {
        Phase::Idle | Phase::Pending => {
            s.phase = Phase::Pending;
            if s.bad_count >= rules.required_count(key.kind)
                && t - since >= rules.raise_ms(key.kind)
            {
                return Some(raise(key, s, now, t, obs.late));
            }
            None
        }
        Phase::Raised | Phase::Acknowledged => {
            s.unpublished = true;
            if worse(&s.detail, &s.peak) {
                s.peak = s.detail.clone();
            }
            if s.detail.band_severity > s.notified_severity {
                s.notified_severity = s.detail.band_severity;
                s.last_notified = Some(now);
                s.notified_at = Some(t);
                return Some(transition(key, s, Change::Escalated, t, obs.late, now));
            }
            None
        }
    }
}

fn observe_good(
    rules: &Rules,
    key: &AlertKey,
    s: &mut KeyState,
    now: i64,
    t: i64,
    again: bool,
    obs: Observation,
) -> Option<Transition> {
    match s.phase {
        Phase::Idle => None,
        Phase::Pending => {
            s.reset();
            None
        }
        Phase::Raised | Phase::Acknowledged => {
            if !(again && s.good_count > 0) {
                s.good_count = s.good_count.saturating_add(1);
            }
            let good_since = *s.good_since.get_or_insert(obs.at);
            s.bad_count = 0;
            let far_below = key.kind.counted()
                && rules.clear_below > 0.0
                && obs.detail.ratio.is_some_and(|r| r <= rules.clear_below);
            let enough = !key.kind.counted() || s.good_count >= rules.clear_after || far_below;
            s.detail = obs.detail;
            s.unpublished = true;
            if enough && (!flapping(rules, s, t) || t - good_since >= rules.flap_window_ms) {
                let tr = transition(key, s, Change::Cleared, t, obs.late, now);
                s.reset();
                return Some(tr);
            }
            None
        }
    }
}

/// Whether `flap_max` raises fall within the flap window before `t` (forgetting older ones).
fn flapping(rules: &Rules, s: &mut KeyState, t: i64) -> bool {
    s.raises.retain(|r| t - r < rules.flap_window_ms);
    s.raises.len() as u32 >= rules.flap_max
}

/// A flapping alert about now (silence, backlog) clears once it has been good for a whole flap window of wall
/// time. Alerts on observations clear only on observations: their quiet window is one of observation time.
fn quiet_clear(rules: &Rules, key: &AlertKey, s: &mut KeyState, now: i64) -> Option<Transition> {
    let good_since = s.good_since?;
    if !key.kind.about_now() || now - good_since < rules.flap_window_ms {
        return None;
    }
    let t = transition(key, s, Change::Cleared, now, false, now);
    s.reset();
    Some(t)
}

/// Re-notify a raised alert when `renotify` of wall time has passed since its last notification and (for alerts
/// on observations) the data shows the condition lasting another `renotify` since then.
fn renotify_due(rules: &Rules, key: &AlertKey, s: &KeyState, now: i64) -> bool {
    if rules.renotify_ms <= 0 || s.good_since.is_some() {
        return false;
    }
    let paced = s
        .last_notified
        .is_some_and(|t| now - t >= rules.renotify_ms);
    let eligible = key.kind.about_now()
        || match (s.last_bad, s.notified_at) {
            (Some(bad), Some(notified)) => bad - notified >= rules.renotify_ms,
            _ => false,
        };
    paced && eligible
}

/// Whether observation `a` is worse than `b`: a higher band, or the same band at a higher multiple.
fn worse(a: &Detail, b: &Detail) -> bool {
    match a.band_severity.cmp(&b.band_severity) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => a.ratio.unwrap_or(f64::MIN) > b.ratio.unwrap_or(f64::MIN),
    }
}

fn raise(key: &AlertKey, s: &mut KeyState, now: i64, t: i64, late: bool) -> Transition {
    s.phase = Phase::Raised;
    s.alert_id = None;
    s.raised_at = Some(t);
    s.last_notified = Some(now);
    s.notified_at = Some(t);
    s.notified_severity = s.detail.band_severity;
    s.peak = s.detail.clone();
    s.raises.push(t);
    s.late = late;
    transition(key, s, Change::Raised, t, late, now)
}

/// The transition of `key` as its state now stands; marks the alert row as written at wall time `now`.
fn transition(
    key: &AlertKey,
    s: &mut KeyState,
    change: Change,
    at: i64,
    late: bool,
    now: i64,
) -> Transition {
    s.published = Some(now);
    s.unpublished = false;
    Transition {
        key: key.clone(),
        change,
        alert_id: s.alert_id,
        at,
        since: s.bad_since.unwrap_or(at),
        last_bad: s.last_bad.unwrap_or(at),
        detail: s.detail.clone(),
        peak: s.peak.clone(),
        late,
        raised_late: s.late,
    }
}

#[cfg(test)]
mod tests;
