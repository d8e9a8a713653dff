//! Per-reading evaluation: which readings are unusable (quarantine), range flags, the limit multiple and Decree 45
//! band in exact decimals, and the data-quality flags of [`super::quality`].
//!
//! Order of checks for one reading:
//! 1. known station and monitored parameter, else rejected;
//! 2. a finite value, else rejected;
//! 3. physically possible (R14): no negative value — whatever the device status — unless the station's analyser
//!    range itself starts below zero; pH within 0–14. Else rejected;
//! 4. flags: `above_range` above the analyser range (R15: still evaluated), then gap/late/flat/spike;
//! 5. a non-measuring status → `not_evaluated` (R13); no limit → `no_limit`; else the exact band.
//!
//! The evaluator allocates nothing on the accepted path: limits are prepared as [`Judge`]s at construction.

use std::collections::HashMap;
use std::time::Duration;

use super::band::Band;
use super::judge::Judge;
use super::limits::{LimitBound, StationLimits};
use super::quality::{Flags, QualitySettings, SeriesRules};
use super::units::{self, Converted};
use crate::config::Config;
use crate::model::{Parameter, Reading, Received, StationId, Timestamp, Unit};

/// What the engine decided for one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub limit: Option<LimitBound>,
    /// value ÷ Cmax for a maximum; `None` for ranges and unevaluated readings.
    pub ratio: Option<f64>,
    pub band: Band,
    /// The flags judged on the reading alone (`late`, `above_range`); the ledger adds those judged against the
    /// series' history in observation order (`quality::HISTORY`), with `rules`.
    pub flags: Flags,
    /// The series' data-quality rules, for the ledger's history checks.
    pub rules: SeriesRules,
}

/// Why a reading cannot be used: it goes to quarantine with this sentence.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("unknown station {0}: it is not in the configuration")]
    UnknownStation(StationId),
    #[error("parameter {parameter} is not monitored at station {station}; add it to the station's parameters to accept it")]
    NotMonitored {
        station: StationId,
        parameter: Parameter,
    },
    #[error("{0}")]
    Unit(#[from] super::units::UnitError),
    #[error("value {value} of {parameter} is not a finite number")]
    NotFinite { parameter: Parameter, value: f64 },
    #[error("negative value {value} of {parameter} is impossible (range check: concentrations cannot be below zero)")]
    Negative { parameter: Parameter, value: f64 },
    #[error(
        "value {value} of {parameter} is outside the possible range {low}–{high} (range check)"
    )]
    Impossible {
        parameter: Parameter,
        value: f64,
        low: f64,
        high: f64,
    },
}

/// Values no instrument can legitimately report, by parameter symbol: (low, high). Others: 0 to +∞.
/// Physics, not regulation, so not profile data.
const POSSIBLE: [(&str, f64, f64); 1] = [("pH", 0.0, 14.0)];

/// One monitored parameter of one station, prepared for evaluation.
#[derive(Debug, Clone)]
struct Series {
    parameter: Parameter,
    /// The limit through time, one per regime in date order (usually one); never empty.
    limits: Box<[SeriesLimit]>,
    /// The unit readings are judged in (the limit's); readings in another unit are converted to it.
    unit: Option<Unit>,
    /// Analyser range: above its high end the reading is flagged `above_range`.
    range: Option<(f64, f64)>,
    /// Possible values (else rejected).
    low: f64,
    high: f64,
}

/// A series' limit in one regime, prepared: its judge and the quality rules scaled to it.
#[derive(Debug, Clone)]
struct SeriesLimit {
    /// In force from (UTC ms); `i64::MIN` for the first.
    from: i64,
    bound: Option<LimitBound>,
    judge: Option<Judge>,
    rules: SeriesRules,
}

impl Series {
    /// The limit in force at `ts`: the only one, or found by binary search among the regimes.
    fn limit_at(&self, ts: i64) -> &SeriesLimit {
        let i = match self.limits.len() {
            1 => 0,
            _ => self
                .limits
                .partition_point(|l| l.from <= ts)
                .saturating_sub(1),
        };
        &self.limits[i]
    }
}

#[derive(Debug, Clone)]
struct StationState {
    series: Vec<Series>,
}

/// Evaluator for all stations: each series' limit, unit, possible values and data-quality rules.
pub struct Evaluator {
    stations: rustc_hash::FxHashMap<StationId, StationState>,
    /// Kept to rebuild the series rules when the quality settings change.
    intervals: HashMap<StationId, Duration>,
    ranges: HashMap<(StationId, Parameter), (f64, f64)>,
    units: HashMap<(StationId, Parameter), Unit>,
    quality: QualitySettings,
}

/// Circular 10/2021: stations report at least every 5 minutes; used for a station missing from the config.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

impl Evaluator {
    /// Stations and parameters come from `limits` (as [`super::Profiles::resolve`] gives them); `config` adds each
    /// station's interval and analyser ranges. Quality checks use [`QualitySettings::default`].
    pub fn new(config: &Config, limits: HashMap<StationId, StationLimits>) -> Self {
        let mut intervals = HashMap::new();
        let mut ranges = HashMap::new();
        let mut units = HashMap::new();
        for s in &config.stations {
            intervals.insert(s.id.clone(), s.interval);
            for p in &s.parameters {
                if let Some(r) = p.range {
                    ranges.insert((s.id.clone(), p.parameter.clone()), r);
                }
                units.insert((s.id.clone(), p.parameter.clone()), p.unit.clone());
            }
        }
        let mut e = Evaluator {
            stations: Default::default(),
            intervals,
            ranges,
            units,
            quality: QualitySettings::default(),
        };
        e.stations = limits
            .into_iter()
            .map(|(id, l)| {
                let state = e.station_state(&id, &l);
                (id, state)
            })
            .collect();
        e
    }

    /// Use other data-quality thresholds (history is kept).
    pub fn with_quality(mut self, quality: QualitySettings) -> Self {
        self.quality = quality;
        for (id, st) in &mut self.stations {
            let interval = self.intervals.get(id).copied().unwrap_or(DEFAULT_INTERVAL);
            for s in &mut st.series {
                for l in s.limits.iter_mut() {
                    l.rules =
                        SeriesRules::new(&self.quality, interval, spike_scale(l.bound, s.range));
                }
            }
        }
        self
    }

    /// Switch to a reloaded configuration (the evaluator keeps no history: the ledger judges readings against
    /// their series' history).
    pub fn reconfigure(
        &mut self,
        config: &Config,
        limits: HashMap<StationId, StationLimits>,
        quality: QualitySettings,
    ) {
        *self = Evaluator::new(config, limits).with_quality(quality);
    }

    fn station_state(&self, id: &StationId, limits: &StationLimits) -> StationState {
        let interval = self.intervals.get(id).copied().unwrap_or(DEFAULT_INTERVAL);
        let first = limits.regimes.first().map_or(&[][..], |r| &r.limits[..]);
        let series = first
            .iter()
            .map(|l| {
                let key = (id.clone(), l.parameter.clone());
                let range = self.ranges.get(&key).copied();
                let (mut low, high) = POSSIBLE
                    .iter()
                    .find(|(s, _, _)| *s == l.parameter.as_str())
                    .map_or((0.0, f64::INFINITY), |(_, lo, hi)| (*lo, *hi));
                // An analyser whose own range starts below zero (a temperature probe, a bidirectional flow
                // meter) can legitimately report down to it.
                if let Some((range_low, _)) = range {
                    low = low.min(range_low);
                }
                let timeline = limits
                    .regimes
                    .iter()
                    .map(|r| {
                        let bound = r.get(&l.parameter).and_then(|x| x.bound);
                        SeriesLimit {
                            from: r.from.map_or(i64::MIN, |t| t.0),
                            bound,
                            judge: bound.and_then(Judge::new),
                            rules: SeriesRules::new(
                                &self.quality,
                                interval,
                                spike_scale(bound, range),
                            ),
                        }
                    })
                    .collect();
                Series {
                    parameter: l.parameter.clone(),
                    limits: timeline,
                    unit: self.units.get(&key).cloned(),
                    range,
                    low,
                    high,
                }
            })
            .collect();
        StationState { series }
    }

    /// Evaluate one reading. `Err` is a quarantine reason (the reading is not a usable value).
    pub fn assess(&mut self, r: &Reading, now: Timestamp) -> Result<Assessment, String> {
        self.evaluate(r, now).map_err(|e| e.to_string())
    }

    /// [`Evaluator::assess`] with a typed rejection.
    pub fn evaluate(&mut self, r: &Reading, now: Timestamp) -> Result<Assessment, Rejection> {
        judge(self.series_mut(r)?, r, now)
    }

    /// [`Evaluator::evaluate`] of a reading first brought to its parameter's unit (the limit's), exactly (DESIGN.md
    /// contract 9). Returns what the station sent when the stored value or unit differs from it. A refused reading
    /// is left as it was received, so its quarantine row quotes what the station sent.
    pub fn evaluate_in_unit(
        &mut self,
        r: &mut Reading,
        now: Timestamp,
    ) -> Result<(Assessment, Option<Received>), Rejection> {
        let s = self.series_mut(r)?;
        let received = match &s.unit {
            Some(unit) if r.unit != *unit => {
                let sent = Received {
                    value: r.value,
                    unit: r.unit.clone(),
                };
                if let Converted::Value(v) =
                    units::convert(r.value, &r.unit, unit, r.parameter.as_str())?
                {
                    r.value = v;
                }
                r.unit = unit.clone();
                Some(sent)
            }
            _ => None,
        };
        match judge(s, r, now) {
            Ok(a) => Ok((a, received)),
            Err(e) => {
                if let Some(sent) = received {
                    (r.value, r.unit) = (sent.value, sent.unit);
                }
                Err(e)
            }
        }
    }

    fn series_mut(&mut self, r: &Reading) -> Result<&mut Series, Rejection> {
        let st = self
            .stations
            .get_mut(&r.station)
            .ok_or_else(|| Rejection::UnknownStation(r.station.clone()))?;
        st.series
            .iter_mut()
            .find(|s| s.parameter == r.parameter)
            .ok_or_else(|| Rejection::NotMonitored {
                station: r.station.clone(),
                parameter: r.parameter.clone(),
            })
    }
}

/// Range checks, quality flags, the multiple and the band of one reading of series `s`.
fn judge(s: &Series, r: &Reading, now: Timestamp) -> Result<Assessment, Rejection> {
    let v = r.value;
    if !v.is_finite() {
        return Err(Rejection::NotFinite {
            parameter: r.parameter.clone(),
            value: v,
        });
    }
    if v < s.low || v > s.high {
        return Err(if v < 0.0 && s.low == 0.0 && s.high.is_infinite() {
            Rejection::Negative {
                parameter: r.parameter.clone(),
                value: v,
            }
        } else {
            Rejection::Impossible {
                parameter: r.parameter.clone(),
                value: v,
                low: s.low,
                high: s.high,
            }
        });
    }
    let measuring = r.status.counts_for_compliance();
    // Judged by the regime in force at the reading's observation time, whenever it arrives.
    let l = s.limit_at(r.ts.0);
    let mut flags = l.rules.late(r.ts.0, now.0);
    if s.range.is_some_and(|(_, hi)| v > hi) {
        flags.insert(Flags::ABOVE_RANGE);
    }
    let (ratio, band) = match (&l.judge, measuring) {
        (_, false) => (None, Band::NotEvaluated),
        (None, true) => (None, Band::NoLimit),
        (Some(j), true) => {
            let verdict = j.value(v);
            (verdict.ratio, verdict.band)
        }
    };
    Ok(Assessment {
        limit: l.bound,
        ratio,
        band,
        flags,
        rules: l.rules,
    })
}

/// Scale of the spike check: the limit (width for a range), else the analyser range width.
fn spike_scale(bound: Option<LimitBound>, range: Option<(f64, f64)>) -> Option<f64> {
    match (bound, range) {
        (Some(LimitBound::Max(m)), _) => Some(m),
        (Some(LimitBound::Range(lo, hi)), _) => Some(hi - lo),
        (None, Some((lo, hi))) => Some(hi - lo),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::Profiles;
    use crate::model::{Status, Unit};
    use std::path::Path;

    fn evaluator(params: &str) -> Evaluator {
        let text = format!(
            "[[station]]\nid = \"BN_T_N1\"\nname = \"t\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 13000\n\
             receiving_water = {{ type = \"river\", flow_m3_s = 120 }}\ninterval = \"5m\"\nparameters = {{ {params} }}\n"
        );
        let c = Config::from_str(&text, Path::new("t.toml"), Path::new(".")).unwrap();
        let l = Profiles::builtin().resolve(&c).unwrap();
        Evaluator::new(&c, l)
    }

    fn reading(p: &str, value: f64, status: Status) -> Reading {
        Reading {
            station: StationId::parse("BN_T_N1").unwrap(),
            parameter: Parameter::new(p).unwrap(),
            ts: Timestamp(1_000_000),
            value,
            unit: Unit::new("mg/L"),
            status,
        }
    }

    #[test]
    fn rejections_are_sentences() {
        let mut e = evaluator("COD = {}, pH = {}, Temp = { range = [-10, 60] }");
        let now = Timestamp(1_000_000);
        let err = |e: &mut Evaluator, r: Reading| e.assess(&r, now).unwrap_err();
        let mut r = reading("COD", 1.0, Status::Measuring);
        r.station = StationId::parse("BN_X_N1").unwrap();
        assert_eq!(
            err(&mut e, r),
            "unknown station BN_X_N1: it is not in the configuration"
        );
        assert!(err(&mut e, reading("TSS", 1.0, Status::Measuring))
            .starts_with("parameter TSS is not monitored"));
        assert!(err(&mut e, reading("COD", f64::NAN, Status::Measuring))
            .contains("not a finite number"));
        assert!(err(&mut e, reading("COD", -3.0, Status::Fault))
            .starts_with("negative value -3 of COD"));
        assert_eq!(
            err(&mut e, reading("pH", 14.5, Status::Measuring)),
            "value 14.5 of pH is outside the possible range 0–14 (range check)"
        );
        // The probe's own range starts at −10 °C: a negative temperature is possible.
        assert!(e
            .assess(&reading("Temp", -1.0, Status::Measuring), now)
            .is_ok());
        assert!(e
            .assess(&reading("Temp", -11.0, Status::Measuring), now)
            .is_err());
    }

    #[test]
    fn readings_are_judged_in_the_parameters_unit() {
        // COD column B at this plant: 150 × Kq 1.0 × Kf 0.9 = 135 mg/L.
        let mut e = evaluator("COD = {}, TSS = {}, Temp = {}");
        let now = Timestamp(1_000_000);
        let mut judged = |p: &str, value: f64, unit: &str| {
            let mut r = reading(p, value, Status::Measuring);
            r.unit = Unit::new(unit);
            let result = e.evaluate_in_unit(&mut r, now);
            let received = result
                .as_ref()
                .map(|(_, x)| x.clone())
                .map_err(|e| e.to_string());
            (r, received, result.map(|(a, _)| a))
        };
        let (r, received, a) = judged("COD", 1.0, "g/L");
        assert_eq!((r.value, r.unit.as_str()), (1000.0, "mg/L"));
        assert_eq!(
            received.unwrap(),
            Some(Received {
                value: 1.0,
                unit: Unit::new("g/L")
            })
        );
        let a = a.unwrap();
        assert_eq!(a.ratio, Some(1000.0 / 135.0), "1 g/L is 1000 mg/L: {a:?}");
        assert_eq!(a.band, Band::From5To10);
        let (r, _, a) = judged("TSS", 500.0, "ug/L");
        assert_eq!((r.value, r.unit.as_str()), (0.5, "mg/L"));
        assert_eq!(a.unwrap().band, Band::Compliant);
        // Another spelling of the same unit: the value stays, the stored unit is the parameter's, the spelling kept.
        let (r, received, _) = judged("Temp", 25.0, "oC");
        assert_eq!((r.value, r.unit.as_str()), (25.0, "°C"));
        assert_eq!(received.unwrap().unwrap().unit.as_str(), "oC");
        let (_, received, _) = judged("COD", 50.0, "mg/L");
        assert_eq!(received.unwrap(), None, "already in the parameter's unit");
        let (r, received, _) = judged("COD", 5.0, "furlongs");
        assert_eq!(
            received.unwrap_err().to_string(),
            "unknown unit \"furlongs\"; COD is judged in mg/L"
        );
        assert_eq!(
            (r.value, r.unit.as_str()),
            (5.0, "furlongs"),
            "a refused reading stays as received"
        );
        let (_, received, _) = judged("COD", 5.0, "m3/h");
        assert!(received.is_err());
    }

    #[test]
    fn flow_has_no_limit() {
        let mut e = evaluator("Flow = {}");
        let a = e
            .assess(
                &reading("Flow", 500.0, Status::Measuring),
                Timestamp(1_000_000),
            )
            .unwrap();
        assert_eq!((a.limit, a.ratio, a.band), (None, None, Band::NoLimit));
    }

    #[test]
    fn flags_names_round_trip() {
        let f = Flags::ABOVE_RANGE | Flags::SPIKE | Flags::LATE;
        assert_eq!(f.names(), "above_range,spike,late");
        assert_eq!(Flags::from_names(&f.names()), f);
        assert!(Flags::default().is_empty());
    }

    #[test]
    fn reconfigured_applies_new_limits_and_stations() {
        let text = |limit: u32, extra: &str| {
            format!(
                "[[station]]\nid = \"BN_T_N1\"\nname = \"t\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 13000\n\
                 receiving_water = {{ type = \"river\", flow_m3_s = 120 }}\nparameters = {{ COD = {{ limit = {limit} }} }}\n{extra}"
            )
        };
        let load = |t: &str| {
            let c = Config::from_str(t, Path::new("t.toml"), Path::new(".")).unwrap();
            let l = Profiles::builtin().resolve(&c).unwrap();
            (c, l)
        };
        let (c, l) = load(&text(100, ""));
        let mut e = Evaluator::new(&c, l);
        let now = Timestamp(1_000_000);
        let a = e
            .assess(&reading("COD", 50.0, Status::Measuring), now)
            .unwrap();
        assert_eq!(a.ratio, Some(0.5));
        let second = "[[station]]\nid = \"BN_T_N2\"\nname = \"u\"\nprofile = \"qcvn40-2011-b\"\n\
                      design_flow_m3_day = 100\nreceiving_water = { type = \"river\" }\nparameters = { TSS = {} }\n";
        let (c, l) = load(&text(40, second));
        e.reconfigure(&c, l, QualitySettings::default());
        let a = e
            .assess(&reading("COD", 50.0, Status::Measuring), now)
            .unwrap();
        assert_eq!(
            (a.limit, a.ratio),
            (Some(LimitBound::Max(40.0)), Some(1.25))
        );
        let mut r = reading("TSS", 10.0, Status::Measuring);
        r.station = StationId::parse("BN_T_N2").unwrap();
        assert!(e.assess(&r, now).is_ok());
    }

    #[test]
    fn quality_settings_can_be_replaced() {
        let mut e = evaluator("COD = {}").with_quality(QualitySettings::off());
        let a = e
            .assess(&reading("COD", 1.0, Status::Measuring), Timestamp(i64::MAX))
            .unwrap();
        assert!(a.flags.is_empty());
    }

    /// A reading is judged by the regime in force at its observation time, whenever it is evaluated.
    #[test]
    fn readings_are_judged_by_the_regime_at_their_time() {
        let text = "[[station]]\nid = \"BN_T_N1\"\nname = \"t\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 13000\n\
             receiving_water = { type = \"river\", flow_m3_s = 120 }\nparameters = { COD = {} }\n\
             [[station.regime]]\nfrom = \"2032-01-01\"\nlimits = { COD = 100 }\n";
        let c = Config::from_str(text, Path::new("t.toml"), Path::new(".")).unwrap();
        let mut e = Evaluator::new(&c, Profiles::builtin().resolve(&c).unwrap());
        // Local midnight 01/01/2032 (UTC+7) = 1956502800000 ms.
        let change = 1_956_502_800_000;
        let at = |e: &mut Evaluator, ts: i64| {
            let mut r = reading("COD", 120.0, Status::Measuring);
            r.ts = Timestamp(ts);
            e.assess(&r, Timestamp(change + 3_600_000)).unwrap()
        };
        let before = at(&mut e, change - 1);
        assert_eq!(
            (before.limit, before.band),
            (Some(LimitBound::Max(135.0)), Band::Compliant)
        );
        let after = at(&mut e, change);
        assert_eq!(
            (after.limit, after.band),
            (Some(LimitBound::Max(100.0)), Band::From1_1To1_5)
        );
        // A late reading observed before the change, evaluated after it: the old regime.
        assert_eq!(at(&mut e, change - 60_000).band, Band::Compliant);
    }
}
