//! The live picture of the province for the dashboard and the API: per station, the latest value of every
//! parameter against its limit, the current window means (a forecast while the window runs), and the plant's state
//! (compliant, warning, violation, silent, fault). Built from the ledger at start, then kept current from the
//! pipeline's broadcast. A plant is in violation while one of its window-scope events is open: a judged window
//! (closed, or already certain) exceeds, never the running mean of an unfinished one.

mod transmission;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::compliance::{EventChange, Scope};
use crate::config::Config;
use crate::ledger::aggregates::DAY_MS;
use crate::ledger::query::Latest;
use crate::ledger::{Evaluated, LedgerError, Reader};
use crate::model::{Status, Timestamp};
use crate::pipeline::LiveEvent;
pub use transmission::{OnTime, Transmissions};

impl ParamLive {
    /// A parameter not seen yet: no value (ts 0), no window figures.
    fn new(parameter: &str) -> ParamLive {
        ParamLive {
            parameter: parameter.to_string(),
            ts: 0,
            value: 0.0,
            unit: String::new(),
            status: "",
            band: String::new(),
            limit_low: None,
            limit_high: None,
            ratio: None,
            hour_start: None,
            hour_mean: None,
            hour_band: None,
            hour_completeness: None,
            day_completeness: None,
            day_start: None,
        }
    }
}

/// A plant's state, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlantState {
    /// A judged window mean breaks a limit (Decree 45 violation): a window-scope event is open.
    Violation,
    /// An analyser reports a device fault.
    Fault,
    /// No data for three reporting intervals.
    Silent,
    /// A single reading breaks a limit while the window mean still complies.
    Warning,
    Compliant,
}

/// Latest value of one parameter.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ParamLive {
    pub parameter: String,
    pub ts: i64,
    pub value: f64,
    pub unit: String,
    pub status: &'static str,
    pub band: String,
    pub limit_low: Option<f64>,
    pub limit_high: Option<f64>,
    pub ratio: Option<f64>,
    /// The current local hour's mean and its verdict.
    pub hour_start: Option<i64>,
    pub hour_mean: Option<f64>,
    pub hour_band: Option<String>,
    pub hour_completeness: Option<f64>,
    /// Today's (local day) completeness.
    pub day_completeness: Option<f64>,
    /// Start of the day `day_completeness` belongs to.
    pub day_start: Option<i64>,
}

/// One station as the dashboard shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StationLive {
    pub id: String,
    pub name: String,
    pub zone: String,
    pub interval_ms: i64,
    pub last_reading: Option<i64>,
    pub state: PlantState,
    pub parameters: Vec<ParamLive>,
    /// On-time transmission over the last 24 hours (as of the last refresh).
    pub transmission: OnTime,
    #[serde(skip)]
    transmissions: Transmissions,
    /// Where the next reading's parameter is looked for first: a station sends its parameters in the same order.
    #[serde(skip)]
    next_parameter: usize,
}

impl StationLive {
    /// Take one committed reading of this station: its latest value, unless a newer one is shown.
    fn follow(&mut self, e: &Evaluated, now: i64) {
        let r = &e.reading;
        let late = e.assessment.flags.contains(crate::compliance::Flags::LATE);
        self.transmissions.count(r.ts.millis(), !late, now);
        let (low, high) = crate::compliance::LimitBound::bounds(e.assessment.limit);
        let name = r.parameter.as_str();
        let idx = match self.parameters.get(self.next_parameter) {
            Some(p) if p.parameter == name => self.next_parameter,
            _ => match self.parameters.iter().position(|p| p.parameter == name) {
                Some(i) => i,
                None => {
                    self.parameters.push(ParamLive::new(name));
                    self.parameters.len() - 1
                }
            },
        };
        self.next_parameter = idx + 1;
        // Updated in place: a burst passes here once per reading, so no clone and no new strings unless the unit
        // or band changed.
        let pl = &mut self.parameters[idx];
        if pl.ts > r.ts.millis() {
            return; // a late reading does not replace a newer value
        }
        pl.ts = r.ts.millis();
        pl.value = r.value;
        if pl.unit != r.unit.as_str() {
            pl.unit = r.unit.to_string();
        }
        pl.status = r.status.as_str();
        let band = e.assessment.band.as_str();
        if pl.band != band {
            pl.band = band.to_string();
        }
        pl.limit_low = low;
        pl.limit_high = high;
        pl.ratio = e.assessment.ratio;
        self.last_reading = self.last_reading.max(Some(r.ts.millis()));
    }
}

#[derive(Default)]
struct Inner {
    stations: BTreeMap<String, StationLive>,
    /// The averaging window whose means the `hour_*` fields show (1 h unless configured otherwise).
    window_ms: i64,
    /// (station, parameter) with an open window-scope event.
    violations: BTreeSet<(String, String)>,
}

/// Shared live state. Cheap to clone.
#[derive(Clone, Default)]
pub struct LiveState {
    inner: Arc<RwLock<Inner>>,
}

impl LiveState {
    /// Build from the configured stations and what the ledger already holds.
    pub fn load(config: &Config, reader: &Reader) -> Result<LiveState, LedgerError> {
        let live = LiveState::default();
        live.reconfigure(config, reader)?;
        Ok(live)
    }

    /// Follow a (re)loaded configuration: new stations are loaded from the ledger, removed ones leave the picture,
    /// the others keep their values and take the new name, zone and interval.
    pub fn reconfigure(&self, config: &Config, reader: &Reader) -> Result<(), LedgerError> {
        let window_ms = config.compliance.averaging_window.as_millis() as i64;
        let mut fresh = BTreeMap::new();
        let known: Vec<String> = self.read().stations.keys().cloned().collect();
        for s in &config.stations {
            let id = s.id.to_string();
            if known.contains(&id) {
                continue;
            }
            let mut st = StationLive {
                id: id.clone(),
                name: s.name.clone(),
                zone: s.zone.clone(),
                interval_ms: s.interval.as_millis() as i64,
                last_reading: None,
                state: PlantState::Silent,
                parameters: Vec::new(),
                transmission: OnTime::default(),
                transmissions: Transmissions::seed(reader.transmissions_by_hour(
                    s.id.as_str(),
                    transmission::first_hour(Timestamp::now().millis()),
                )?),
                next_parameter: 0,
            };
            for p in &s.parameters {
                if let Some(pl) = latest(reader, s.id.as_str(), p.parameter.as_str(), window_ms)? {
                    st.last_reading = st.last_reading.max(Some(pl.ts));
                    st.parameters.push(pl);
                }
            }
            fresh.insert(id, st);
        }
        let violations: BTreeSet<(String, String)> =
            crate::ledger::events::open_window_events(reader.connection())?
                .into_iter()
                .collect();
        {
            let mut inner = self.write();
            inner.window_ms = window_ms;
            inner.violations = violations;
            inner.stations.retain(|id, _| config.station(id).is_some());
            for (id, st) in inner.stations.iter_mut() {
                if let Some(s) = config.station(id) {
                    st.name = s.name.clone();
                    st.zone = s.zone.clone();
                    st.interval_ms = s.interval.as_millis() as i64;
                    st.parameters
                        .retain(|p| s.parameter(&p.parameter).is_some());
                }
            }
            inner.stations.extend(fresh);
        }
        self.refresh_states(Timestamp::now());
        Ok(())
    }

    /// Apply a pipeline event.
    pub fn apply(&self, event: &LiveEvent) {
        let mut inner = self.write();
        match event {
            LiveEvent::Readings(batch) => {
                let now = Timestamp::now().millis();
                // A message's readings sit together: one station lookup for each run of them.
                for run in batch
                    .readings()
                    .chunk_by(|a, b| a.reading.station == b.reading.station)
                {
                    if let Some(st) = inner.stations.get_mut(run[0].reading.station.as_str()) {
                        for e in run {
                            st.follow(e, now);
                        }
                    }
                }
            }
            LiveEvent::Events(changes) => {
                for c in changes.iter() {
                    follow_violation(&mut inner.violations, c);
                }
            }
            LiveEvent::Alerts(_) | LiveEvent::FlagsRevised(_) => {}
            LiveEvent::Windows(updates) => {
                let window_ms = inner.window_ms;
                for u in updates.iter() {
                    let Some(st) = inner.stations.get_mut(&u.station) else {
                        continue;
                    };
                    let Some(p) = st
                        .parameters
                        .iter_mut()
                        .find(|p| p.parameter == u.parameter)
                    else {
                        continue;
                    };
                    if u.window_ms == window_ms {
                        if p.hour_start.is_some_and(|h| h > u.window_start.millis()) {
                            continue;
                        }
                        p.hour_start = Some(u.window_start.millis());
                        p.hour_mean = u.aggregate.mean;
                        p.hour_band = Some(u.aggregate.band.as_str().to_string());
                        p.hour_completeness = Some(u.aggregate.completeness);
                    } else if u.window_ms == DAY_MS {
                        // A late recompute of an earlier day must not replace today's figure.
                        if p.day_start.is_some_and(|d| d > u.window_start.millis()) {
                            continue;
                        }
                        p.day_start = Some(u.window_start.millis());
                        p.day_completeness = Some(u.aggregate.completeness);
                    }
                }
            }
        }
        drop(inner);
        self.refresh_states(Timestamp::now());
    }

    /// Recompute every plant's state at `now` (silence depends on the clock, not only on data).
    pub fn refresh_states(&self, now: Timestamp) {
        let mut inner = self.write();
        let Inner {
            stations,
            violations,
            ..
        } = &mut *inner;
        for st in stations.values_mut() {
            let violating = violations
                .range((st.id.clone(), String::new())..)
                .next()
                .is_some_and(|(s, _)| *s == st.id);
            st.state = plant_state(st, violating, now);
            st.transmission = st.transmissions.rate(now.millis());
        }
    }

    pub fn stations(&self) -> Vec<StationLive> {
        self.read().stations.values().cloned().collect()
    }

    /// The averaging window shown as the `hour_*` fields.
    pub fn window_ms(&self) -> i64 {
        self.read().window_ms
    }

    pub fn station(&self, id: &str) -> Option<StationLive> {
        self.read().stations.get(id).cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keep the set of open window-scope events current.
fn follow_violation(violations: &mut BTreeSet<(String, String)>, c: &EventChange) {
    let k = c.key();
    if !matches!(k.scope, Scope::Window { .. }) {
        return;
    }
    let id = (k.station.to_string(), k.parameter.to_string());
    let open = match c {
        EventChange::Closed { .. } => false,
        // A span holding an open event (before or after) is the series' latest: it tells the state. Any other
        // span lies before the open event, if there is one, and leaves it as it was.
        EventChange::Rederived {
            events, replaced, ..
        } => {
            if events.iter().any(|e| e.end.is_none()) {
                true
            } else if replaced.iter().any(|e| e.end.is_none()) {
                false
            } else {
                return;
            }
        }
        _ => true,
    };
    if open {
        violations.insert(id);
    } else {
        violations.remove(&id);
    }
}

fn plant_state(st: &StationLive, violating: bool, now: Timestamp) -> PlantState {
    let silent_after = 3 * st.interval_ms;
    match st.last_reading {
        None => return PlantState::Silent,
        Some(t) if now.millis() - t > silent_after => return PlantState::Silent,
        _ => {}
    }
    let exceeds = |b: &str| !matches!(b, "compliant" | "no_limit" | "not_evaluated" | "");
    if violating {
        PlantState::Violation
    } else if st
        .parameters
        .iter()
        .any(|p| p.status == Status::Fault.as_str())
    {
        PlantState::Fault
    } else if st.parameters.iter().any(|p| exceeds(&p.band)) {
        PlantState::Warning
    } else {
        PlantState::Compliant
    }
}

/// The latest reading and averaging-window/daily aggregates of one parameter, from the ledger.
fn latest(
    reader: &Reader,
    station: &str,
    parameter: &str,
    window_ms: i64,
) -> Result<Option<ParamLive>, LedgerError> {
    let Some(Latest {
        reading,
        window,
        day,
    }) = reader.latest(station, parameter, window_ms)?
    else {
        return Ok(None);
    };
    Ok(Some(ParamLive {
        parameter: parameter.to_string(),
        ts: reading.ts,
        value: reading.value,
        unit: reading.unit,
        status: reading.status.as_str(),
        band: reading.band,
        limit_low: reading.limit_low,
        limit_high: reading.limit_high,
        ratio: reading.ratio,
        hour_start: window.as_ref().map(|h| h.window_start),
        hour_mean: window.as_ref().and_then(|h| h.mean),
        hour_band: window.as_ref().map(|h| h.band.clone()),
        hour_completeness: window.as_ref().map(|h| h.completeness),
        day_completeness: day.as_ref().map(|d| d.completeness),
        day_start: day.map(|d| d.window_start),
    }))
}
