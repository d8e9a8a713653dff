//! The alert state machine: pure, no I/O, time passed in by the caller (wall-clock milliseconds from a [`Clock`],
//! so tests drive it with `tokio::time::pause()`).
//!
//! One state per (station, subject, kind) — the subject is the parameter, the forwarder for backlog alerts, or empty
//! for station-wide kinds. Lifecycle: idle → pending (bad observations counted) → raised (→ acknowledged) → cleared
//! (back to idle). What it decides, and nothing else:
//! - **raise** after `raise_after` bad observations in a row lasting `raise_min_duration` (value kinds), or once a
//!   condition has lasted its kind's time (silent, fault, calibration, backlog);
//! - **clear** with hysteresis: `clear_after` good observations in a row, or one at or below `clear_below` × limit;
//! - **re-notify** every `renotify` while raised and not acknowledged; **escalate** when the Decree 45 band worsens;
//! - **flap suppression**: after `flap_max` raises within `flap_window`, clear only after a whole quiet window;
//! - **maintenance** windows mute a station: its observations are ignored and nothing is re-sent.
//!
//! The caller stores alerts and the outbox, and persists [`KeyState`]s so a restart resumes mid-incident.

use std::collections::{BTreeMap, HashSet};

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

/// Persisted per key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyState {
    pub phase: Phase,
    /// Ledger id of the raised alert.
    pub alert_id: Option<i64>,
    pub bad_count: u32,
    pub bad_since: Option<i64>,
    pub good_count: u32,
    pub good_since: Option<i64>,
    pub raised_at: Option<i64>,
    pub last_notified: Option<i64>,
    /// Band severity of the last notification (escalation when it grows).
    pub notified_severity: u8,
    /// Raise times within the flap window.
    pub raises: Vec<i64>,
    /// The latest bad observation (the worst by band while raised).
    pub detail: Detail,
    /// Worst band while raised.
    pub peak: Detail,
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
        }
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
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Raised => "raised",
            Change::Escalated => "escalated",
            Change::Renotify => "renotify",
            Change::Cleared => "cleared",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub key: AlertKey,
    pub change: Change,
    /// `None` for `Raised` (the caller creates the alert and calls [`Engine::set_alert_id`]).
    pub alert_id: Option<i64>,
    pub at: i64,
    /// When the condition began.
    pub since: i64,
    pub detail: Detail,
    pub peak: Detail,
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
}

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
        }
    }

    /// How long a condition must last before raising.
    fn raise_ms(&self, kind: Kind) -> i64 {
        match kind {
            Kind::Fault => self.fault_after_ms,
            Kind::Calibration => self.calibration_after_ms,
            // Silent and backlog observations are only bad once their threshold has passed.
            Kind::Silent | Kind::Backlog => 0,
            _ => self.raise_min_ms,
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

/// Every key's state. Keys are ordered so transitions come out in a stable order.
#[derive(Debug, Clone)]
pub struct Engine {
    pub rules: Rules,
    keys: BTreeMap<AlertKey, KeyState>,
    /// Keys changed since the last [`Engine::take_dirty`] (to persist).
    dirty: HashSet<AlertKey>,
}

impl Engine {
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            keys: BTreeMap::new(),
            dirty: HashSet::new(),
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

    pub fn state(&self, key: &AlertKey) -> Option<&KeyState> {
        self.keys.get(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = (&AlertKey, &KeyState)> {
        self.keys.iter()
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

    /// Feed one observation at wall time `now`.
    pub fn observe(&mut self, key: &AlertKey, now: i64, obs: Observation) -> Option<Transition> {
        if self.rules.in_maintenance(&key.station, now) {
            return None;
        }
        // The common case — good, nothing pending — changes nothing.
        if !obs.bad && self.keys.get(key).is_none_or(|s| s.phase == Phase::Idle) {
            return None;
        }
        let rules = self.rules.clone();
        let s = self.keys.entry(key.clone()).or_default();
        self.dirty.insert(key.clone());
        if obs.bad {
            s.good_count = 0;
            s.good_since = None;
            s.bad_count = s.bad_count.saturating_add(1);
            let since = *s.bad_since.get_or_insert(now);
            s.detail = obs.detail;
            match s.phase {
                Phase::Idle | Phase::Pending => {
                    s.phase = Phase::Pending;
                    if s.bad_count >= required_count(&rules, key.kind)
                        && now - since >= rules.raise_ms(key.kind)
                    {
                        return Some(raise(key, s, now));
                    }
                    None
                }
                Phase::Raised | Phase::Acknowledged => {
                    if s.detail.band_severity > s.peak.band_severity {
                        s.peak = s.detail.clone();
                    }
                    if s.detail.band_severity > s.notified_severity {
                        s.notified_severity = s.detail.band_severity;
                        s.last_notified = Some(now);
                        return Some(transition(key, s, Change::Escalated, now));
                    }
                    None
                }
            }
        } else {
            match s.phase {
                Phase::Idle => None,
                Phase::Pending => {
                    *s = KeyState {
                        raises: std::mem::take(&mut s.raises),
                        ..KeyState::default()
                    };
                    None
                }
                Phase::Raised | Phase::Acknowledged => {
                    s.good_count = s.good_count.saturating_add(1);
                    let good_since = *s.good_since.get_or_insert(now);
                    s.bad_count = 0;
                    let far_below = key.kind.counted()
                        && rules.clear_below > 0.0
                        && obs.detail.ratio.is_some_and(|r| r <= rules.clear_below);
                    let enough =
                        !key.kind.counted() || s.good_count >= rules.clear_after || far_below;
                    let flapping = {
                        s.raises.retain(|t| now - t < rules.flap_window_ms);
                        s.raises.len() as u32 >= rules.flap_max
                    };
                    if enough && (!flapping || now - good_since >= rules.flap_window_ms) {
                        let mut t = transition(key, s, Change::Cleared, now);
                        t.detail = obs.detail;
                        *s = KeyState {
                            raises: std::mem::take(&mut s.raises),
                            ..KeyState::default()
                        };
                        return Some(t);
                    }
                    None
                }
            }
        }
    }

    /// Time-driven decisions: a pending condition that has now lasted long enough, re-notifications, and a
    /// flapping alert whose quiet window has passed.
    pub fn tick(&mut self, now: i64) -> Vec<Transition> {
        let mut out = Vec::new();
        let rules = self.rules.clone();
        for (key, s) in self.keys.iter_mut() {
            let muted = rules.in_maintenance(&key.station, now);
            match s.phase {
                Phase::Pending if !muted => {
                    let since = s.bad_since.unwrap_or(now);
                    if s.bad_count >= required_count(&rules, key.kind)
                        && now - since >= rules.raise_ms(key.kind)
                    {
                        self.dirty.insert(key.clone());
                        out.push(raise(key, s, now));
                    }
                }
                Phase::Raised if !muted => {
                    if let Some(good_since) = s.good_since {
                        if now - good_since >= rules.flap_window_ms
                            && (s.good_count >= rules.clear_after || !key.kind.counted())
                        {
                            self.dirty.insert(key.clone());
                            out.push(transition(key, s, Change::Cleared, now));
                            *s = KeyState {
                                raises: std::mem::take(&mut s.raises),
                                ..KeyState::default()
                            };
                            continue;
                        }
                    }
                    if rules.renotify_ms > 0
                        && s.good_since.is_none()
                        && s.last_notified
                            .is_some_and(|t| now - t >= rules.renotify_ms)
                    {
                        s.last_notified = Some(now);
                        self.dirty.insert(key.clone());
                        out.push(transition(key, s, Change::Renotify, now));
                    }
                }
                _ => {}
            }
        }
        out
    }
}

fn required_count(rules: &Rules, kind: Kind) -> u32 {
    if kind.counted() {
        rules.raise_after
    } else {
        1
    }
}

fn raise(key: &AlertKey, s: &mut KeyState, now: i64) -> Transition {
    s.phase = Phase::Raised;
    s.alert_id = None;
    s.raised_at = Some(now);
    s.last_notified = Some(now);
    s.notified_severity = s.detail.band_severity;
    s.peak = s.detail.clone();
    s.raises.push(now);
    transition(key, s, Change::Raised, now)
}

fn transition(key: &AlertKey, s: &KeyState, change: Change, now: i64) -> Transition {
    Transition {
        key: key.clone(),
        change,
        alert_id: s.alert_id,
        at: now,
        since: s.bad_since.unwrap_or(now),
        detail: s.detail.clone(),
        peak: s.peak.clone(),
    }
}

#[cfg(test)]
mod tests;
