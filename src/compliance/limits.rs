//! The limits that apply to each station: profile lookup, Kq by receiving water, Kf by design flow,
//! Cmax = C × Kq × Kf in exact decimals, permit limits that replace the profile's, and the working an officer can
//! check. Pure except [`Profiles::load_dir`], which reads the profile folder.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::decimal::{self, fmt_coef, fmt_f64, fmt_num};
use super::profile::{self, Profile, ProfileError, ProfileLimit, WaterKind, BUILTIN};
use crate::config::{
    CheckedParameter, Config, ConfigError, LimitText, Problems, ReceivingWater, Salinity, Station,
};
use crate::model::{Parameter, StationId, Timestamp};

/// An applicable limit: a maximum or a two-sided range (bounds inclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitBound {
    Max(f64),
    Range(f64, f64),
}

impl LimitBound {
    /// (lower bound, upper bound or Cmax) of a parameter's limit, as the ledger's columns and the API show them.
    pub fn bounds(limit: Option<LimitBound>) -> (Option<f64>, Option<f64>) {
        match limit {
            Some(LimitBound::Max(m)) => (None, Some(m)),
            Some(LimitBound::Range(lo, hi)) => (Some(lo), Some(hi)),
            None => (None, None),
        }
    }
}

/// The limit of one parameter at one station, with the working an officer can check.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub parameter: Parameter,
    pub bound: Option<LimitBound>,
    /// e.g. `C=150 × Kq 1.0 (river, Q=120 m³/s) × Kf 0.9 (F=13,000 m³/day) = 135 mg/L`.
    pub working: String,
}

/// The limits of one regime of a station: the station's own (in force from the start) or a `[[station.regime]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Regime {
    /// In force from this instant (local midnight of `from_date`); `None` for the station's own limits.
    pub from: Option<Timestamp>,
    pub from_date: Option<NaiveDate>,
    /// e.g. `QCVN 40:2011/BTNMT column B`, or the regime's `name`.
    pub name: String,
    /// One per monitored parameter, in the station's order.
    pub limits: Vec<Limit>,
}

impl Regime {
    pub fn get(&self, p: &Parameter) -> Option<&Limit> {
        self.limits.iter().find(|l| &l.parameter == p)
    }
}

/// Limits of every monitored parameter of one station, as a timeline of regimes in date order (one regime unless
/// the station gives `[[station.regime]]`). A reading is judged by the regime in force at its observation time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StationLimits {
    pub regimes: Vec<Regime>,
}

impl StationLimits {
    /// One regime in force throughout (tests, tools).
    pub fn single(limits: Vec<Limit>) -> StationLimits {
        StationLimits {
            regimes: vec![Regime {
                from: None,
                from_date: None,
                name: String::new(),
                limits,
            }],
        }
    }

    /// Index of the regime in force at `ts` (binary search; 0 before the first date).
    pub fn index_at(&self, ts: Timestamp) -> usize {
        self.regimes
            .partition_point(|r| r.from.is_none_or(|f| f <= ts))
            .saturating_sub(1)
    }

    /// The regime in force at `ts`.
    pub fn at(&self, ts: Timestamp) -> Option<&Regime> {
        self.regimes.get(self.index_at(ts))
    }

    /// The regime in force now.
    pub fn now(&self) -> Option<&Regime> {
        self.at(Timestamp::now())
    }

    /// The limit of `p` in force at `ts`.
    pub fn get_at(&self, p: &Parameter, ts: Timestamp) -> Option<&Limit> {
        self.at(ts).and_then(|r| r.get(p))
    }

    /// The limit of `p` in force now.
    pub fn get(&self, p: &Parameter) -> Option<&Limit> {
        self.get_at(p, Timestamp::now())
    }

    /// When regime `i` stops being in force (the next one's start), if it does.
    pub fn until(&self, i: usize) -> Option<Timestamp> {
        self.regimes.get(i + 1).and_then(|r| r.from)
    }

    /// Indices of the regimes in force at some time in `[from, to)`.
    pub fn during(&self, from: Timestamp, to: Timestamp) -> std::ops::Range<usize> {
        if self.regimes.is_empty() {
            return 0..0;
        }
        let last = self.index_at(Timestamp(to.0.saturating_sub(1).max(from.0)));
        self.index_at(from)..last + 1
    }

    /// When regime `i` is in force, in local days: `from 01/01/2032 until 31/12/2040`, `from the start until …`,
    /// `from 01/01/2032`.
    pub fn period(&self, i: usize) -> String {
        let day = |d: NaiveDate| d.format("%d/%m/%Y").to_string();
        match self.days(i) {
            (None, None) => "throughout".to_string(),
            (None, Some(u)) => format!("from the start until {}", day(u)),
            (Some(f), None) => format!("from {}", day(f)),
            (Some(f), Some(u)) => format!("from {} until {}", day(f), day(u)),
        }
    }

    /// The first and last local day regime `i` is in force (`None`: from the start, or with no end).
    pub fn days(&self, i: usize) -> (Option<NaiveDate>, Option<NaiveDate>) {
        let from = self.regimes.get(i).and_then(|r| r.from_date);
        let until = self
            .regimes
            .get(i + 1)
            .and_then(|r| r.from_date)
            .and_then(|d| d.pred_opt());
        (from, until)
    }

    /// What `check-config` prints of a station's limits: one line per parameter with its working, and with dated
    /// regimes a heading per regime (its period and name) above its own lines.
    pub fn timeline_lines(&self, station: &Station) -> Vec<String> {
        let working = |r: &Regime, p: &Parameter| {
            r.get(p)
                .map_or_else(|| "no limit".to_string(), |l| l.working.clone())
        };
        let mut out = Vec::new();
        match self.regimes.as_slice() {
            [] => {}
            [only] => {
                for p in &station.parameters {
                    out.push(format!(
                        "  {}: {}",
                        p.parameter,
                        working(only, &p.parameter)
                    ));
                }
            }
            many => {
                out.push(format!("  limits: {} regimes", many.len()));
                for (i, r) in many.iter().enumerate() {
                    out.push(format!("  {}: {}", self.period(i), r.name));
                    for p in &station.parameters {
                        out.push(format!("    {}: {}", p.parameter, working(r, &p.parameter)));
                    }
                }
            }
        }
        out
    }

    /// The bound of `p` through time, for judging windows by the regime in force at their start.
    pub fn dated(&self, p: &Parameter) -> Dated<Option<LimitBound>> {
        Dated::new(
            self.regimes
                .iter()
                .map(|r| {
                    let from = r.from.map_or(i64::MIN, |t| t.0);
                    (from, r.get(p).and_then(|l| l.bound))
                })
                .collect(),
        )
    }
}

/// A value that changes on dates: steps of (from ms, value) in rising order, the first from the start of time.
#[derive(Debug, Clone, PartialEq)]
pub struct Dated<T> {
    steps: Vec<(i64, T)>,
}

impl<T> Dated<T> {
    /// Steps in rising order of `from`; the first applies before its `from` too. Empty steps are not allowed:
    /// `Dated::from(value)` makes one.
    pub fn new(steps: Vec<(i64, T)>) -> Self {
        Dated { steps }
    }

    /// The value in force at `ts` (ms), or `None` with no steps.
    pub fn at(&self, ts: i64) -> Option<&T> {
        let i = self
            .steps
            .partition_point(|(f, _)| *f <= ts)
            .saturating_sub(1);
        self.steps.get(i).map(|(_, v)| v)
    }
}

impl<T> From<T> for Dated<T> {
    fn from(v: T) -> Self {
        Dated {
            steps: vec![(i64::MIN, v)],
        }
    }
}

/// Loaded limit profiles, by name.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    by_name: BTreeMap<String, Profile>,
}

impl Profiles {
    /// Profiles embedded in the binary (QCVN 40:2011 columns A and B).
    pub fn builtin() -> Profiles {
        let by_name = BUILTIN
            .iter()
            .filter_map(|(name, text)| {
                // The embedded files are checked by this module's tests; a broken one would be a build defect.
                profile::parse(name, &format!("<built-in {name}.toml>"), text, true)
                    .ok()
                    .map(|p| (name.to_string(), p))
            })
            .collect();
        Profiles { by_name }
    }

    /// Built-in profiles plus every `*.toml` in `dir` (a missing folder is not an error); a file replaces the
    /// built-in of the same name. Errors: (file, `key: message`), every problem of every file.
    pub fn load_dir(dir: &Path) -> Result<Profiles, Vec<(String, String)>> {
        let mut profiles = Self::builtin();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(profiles),
            Err(e) => {
                return Err(vec![ProfileError::Dir {
                    dir: dir.display().to_string(),
                    error: e.to_string(),
                }
                .into_pair()])
            }
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        let mut errors = Vec::new();
        for path in files {
            match profile::load_file(&path) {
                Ok(p) => {
                    profiles.by_name.insert(p.name.clone(), p);
                }
                Err(es) => errors.extend(es.into_iter().map(ProfileError::into_pair)),
            }
        }
        if errors.is_empty() {
            Ok(profiles)
        } else {
            Err(errors)
        }
    }

    /// Add or replace one profile (tests, tools).
    pub fn insert(&mut self, profile: Profile) {
        self.by_name.insert(profile.name.clone(), profile);
    }

    /// The profile called `name`.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.by_name.get(name)
    }

    /// Names of every loaded profile, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// The limits of one station: its own regime, then each `[[station.regime]]`. Errors: (key path below the
    /// station, e.g. `profile` or `regime[0].limits.COD`, message), every problem of every regime.
    pub fn station_limits(
        &self,
        station: &Station,
    ) -> Result<StationLimits, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut regimes = Vec::with_capacity(1 + station.regimes.len());
        let own = Basis {
            profile: Some(self.known(&station.profile, "profile", &mut errors)),
            design_flow_m3_day: station.design_flow_m3_day,
            prefix: String::new(),
        };
        if let Some(profile) = own.profile.flatten() {
            let limits = own.limits(station, |cp| cp.permit_limit.as_ref(), &mut errors);
            regimes.push(Regime {
                from: None,
                from_date: None,
                name: profile.title.clone(),
                limits,
            });
        }
        // A regime with neither profile nor limits is already a config problem (incomplete).
        for r in station
            .regimes
            .iter()
            .filter(|r| r.profile.is_some() || !r.limits.is_empty())
        {
            let prefix = format!("regime[{}].", r.index);
            let profile = r
                .profile
                .as_ref()
                .map(|n| self.known(n, &format!("{prefix}profile"), &mut errors));
            if profile.is_some_and(|p| p.is_none()) {
                continue;
            }
            let basis = Basis {
                profile,
                design_flow_m3_day: r.design_flow_m3_day,
                prefix,
            };
            let limits = basis.limits(
                station,
                |cp| r.limits.get(cp.parameter.as_str()),
                &mut errors,
            );
            let name = r.name.clone().unwrap_or_else(|| {
                profile
                    .flatten()
                    .map_or_else(|| "permit limits".to_string(), |p| p.title.clone())
            });
            let regime = Regime {
                from: Some(r.from),
                from_date: Some(r.from_date),
                name,
                limits,
            };
            if let Some(previous) = regimes.last() {
                errors.extend(dropped_limits(previous, &regime, &basis.prefix));
            }
            regimes.push(regime);
        }
        if errors.is_empty() {
            Ok(StationLimits { regimes })
        } else {
            Err(errors)
        }
    }

    /// The profile called `name`, or a problem at `key` listing the known ones.
    fn known(&self, name: &str, key: &str, errors: &mut Vec<(String, String)>) -> Option<&Profile> {
        let p = self.get(name);
        if p.is_none() {
            errors.push((
                key.to_string(),
                format!(
                    "unknown limit profile {name:?}; known profiles: {} (built in, or a *.toml file in daemon.profiles_dir)",
                    self.names().join(", ")
                ),
            ));
        }
        p
    }

    /// Limits of every station of a config. Errors: (key path, message).
    pub fn resolve(
        &self,
        config: &Config,
    ) -> Result<HashMap<StationId, StationLimits>, Vec<(String, String)>> {
        let mut out = HashMap::new();
        let mut errs = Vec::new();
        for s in &config.stations {
            match self.station_limits(s) {
                Ok(l) => {
                    out.insert(s.id.clone(), l);
                }
                Err(e) => errs.extend(
                    e.into_iter()
                        .map(|(k, m)| (format!("station[{}].{k}", s.index), m)),
                ),
            }
        }
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(errs)
        }
    }
}

/// What one regime's limits are made of: a profile (with Kq and Kf) or none (the permit's values alone), the design
/// flow for Kf, and the key prefix of its problems (`regime[j].`, or nothing for the station's own).
struct Basis<'a> {
    /// `None`: no profile (permit values only); `Some(None)`: an unknown profile (already reported).
    profile: Option<Option<&'a Profile>>,
    design_flow_m3_day: f64,
    prefix: String,
}

impl Basis<'_> {
    /// The limit of every monitored parameter, problems pushed to `errors` with their key paths.
    fn limits<'s>(
        &self,
        station: &'s Station,
        permit: impl Fn(&'s CheckedParameter) -> Option<&'s LimitText>,
        errors: &mut Vec<(String, String)>,
    ) -> Vec<Limit> {
        let mut limits = Vec::with_capacity(station.parameters.len());
        for cp in &station.parameters {
            match parameter_limit(self, station, cp, permit(cp)) {
                Ok(l) => limits.push(l),
                Err((k, m)) => errors.push((format!("{}{k}", self.prefix), m)),
            }
        }
        limits
    }
}

/// A regime must be complete: a parameter the previous regime limits needs a limit in the next one too (its
/// permit's value or its profile's), so that no limit disappears on a date by omission.
fn dropped_limits(previous: &Regime, next: &Regime, prefix: &str) -> Vec<(String, String)> {
    previous
        .limits
        .iter()
        .filter(|l| l.bound.is_some())
        .filter(|l| next.get(&l.parameter).is_none_or(|n| n.bound.is_none()))
        .map(|l| {
            (
                format!("{prefix}limits.{}", l.parameter),
                format!(
                    "missing: {} limits {} ({}) until this regime starts; give the permit's value in force from {} \
                     (or a profile that limits it)",
                    previous.name,
                    l.parameter,
                    l.working,
                    next.from_date.map_or_else(String::new, |d| d.format("%d/%m/%Y").to_string())
                ),
            )
        })
        .collect()
}

/// A coefficient with the words that justify it, e.g. (1.0, `river, Q=120 m³/s`).
#[derive(Debug, Clone, PartialEq)]
pub struct Coefficient {
    pub k: Decimal,
    pub basis: String,
}

/// Kq for the station's receiving water. `None` if the profile has no Kq tables, or a figure is not a usable
/// number.
pub fn kq(profile: &Profile, water: &ReceivingWater) -> Option<Coefficient> {
    let t = profile.kq.as_ref()?;
    Some(match water {
        ReceivingWater::River { flow_m3_s: Some(q) } => Coefficient {
            k: t.river.lookup(decimal::from_f64(*q)?),
            basis: format!("river, Q={} m³/s", fmt_f64(*q)),
        },
        ReceivingWater::River { flow_m3_s: None } => Coefficient {
            k: t.river_no_data,
            basis: "river, no flow data".into(),
        },
        ReceivingWater::Lake { volume_m3: Some(v) } => Coefficient {
            k: t.lake.lookup(decimal::from_f64(*v)?),
            basis: format!("lake, V={} m³", fmt_f64(*v)),
        },
        ReceivingWater::Lake { volume_m3: None } => Coefficient {
            k: t.lake_no_data,
            basis: "lake, no volume data".into(),
        },
        ReceivingWater::Coastal {
            aquatic_protection: true,
        } => Coefficient {
            k: t.coastal_aquatic,
            basis: "coastal, aquatic protection".into(),
        },
        ReceivingWater::Coastal {
            aquatic_protection: false,
        } => Coefficient {
            k: t.coastal_other,
            basis: "coastal, other use".into(),
        },
        // No Kq table covers a drainage system: such a station's limits are the permit's.
        ReceivingWater::Drainage => return None,
    })
}

/// Kf for the design flow in m³/day. `None` if the profile has no Kf table or the flow is not a usable number.
pub fn kf(profile: &Profile, design_flow_m3_day: f64) -> Option<Coefficient> {
    let t = profile.kf.as_ref()?;
    Some(Coefficient {
        k: t.lookup(decimal::from_f64(design_flow_m3_day)?),
        basis: format!("F={} m³/day", fmt_f64(design_flow_m3_day)),
    })
}

fn water_kind(w: &ReceivingWater) -> Option<WaterKind> {
    Some(match w {
        ReceivingWater::River { .. } => WaterKind::River,
        ReceivingWater::Lake { .. } => WaterKind::Lake,
        ReceivingWater::Coastal { .. } => WaterKind::Coastal,
        ReceivingWater::Drainage => WaterKind::Drainage,
    })
}

fn salinity_kind(s: Salinity) -> Option<WaterKind> {
    match s {
        Salinity::Fresh => None,
        Salinity::Brackish => Some(WaterKind::Brackish),
        Salinity::Saline => Some(WaterKind::Saline),
    }
}

/// ` mg/L`, or nothing for the dimensionless `-` (pH).
fn unit_suffix(unit: &str) -> String {
    if unit.is_empty() || unit == "-" {
        String::new()
    } else {
        format!(" {unit}")
    }
}

/// Units compare without case or spaces (`mg/l` = `mg/L`, `MPN/100 mL` = `MPN/100mL`).
fn same_unit(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    norm(a) == norm(b)
}

/// The exact f64 of a decimal limit, and a problem if it is not a usable number.
fn to_f64(d: Decimal) -> f64 {
    decimal::to_f64(d)
}

/// A permit limit, if any.
fn permit_bound(permit: Option<&LimitText>) -> Option<Result<LimitBound, String>> {
    Some(Ok(match permit? {
        LimitText::Max(m) => LimitBound::Max(*m),
        LimitText::Range([lo, hi]) => LimitBound::Range(*lo, *hi),
    }))
}

fn parameter_limit(
    basis: &Basis<'_>,
    station: &Station,
    cp: &CheckedParameter,
    permit: Option<&LimitText>,
) -> Result<Limit, (String, String)> {
    let sym = cp.parameter.as_str();
    // The permit's value of a later regime is written at `regime[j].limits.<symbol>`.
    let key = format!("parameters.{sym}");
    let limit_key = if basis.prefix.is_empty() {
        format!("{key}.limit")
    } else {
        format!("limits.{sym}")
    };
    let unit = unit_suffix(cp.unit.as_str());
    let limit = |bound: Option<LimitBound>, working: String| Limit {
        parameter: cp.parameter.clone(),
        bound,
        working,
    };
    // A permit limit replaces the profile's value, with no coefficients (the permit states the final figure).
    match permit_bound(permit) {
        Some(Ok(LimitBound::Max(m))) => {
            return Ok(limit(
                Some(LimitBound::Max(m)),
                format!("permit limit {}{unit}", fmt_f64(m)),
            ))
        }
        Some(Ok(LimitBound::Range(lo, hi))) => {
            return Ok(limit(
                Some(LimitBound::Range(lo, hi)),
                format!("permit limit {}–{}{unit}", fmt_f64(lo), fmt_f64(hi)),
            ))
        }
        Some(Err(text)) => {
            return Err((
                limit_key,
                format!("cannot read the permit limit {text}; expected a number or [low, high]"),
            ))
        }
        None => {}
    }
    let Some(Some(profile)) = basis.profile else {
        return Ok(limit(
            None,
            "no limit (the regime gives the permit's values alone, and none for this parameter)"
                .to_string(),
        ));
    };
    let Some(pp) = profile.parameters.get(sym) else {
        return Ok(limit(
            None,
            format!(
                "no limit ({sym} is not in profile {} and the station gives no permit limit)",
                profile.name
            ),
        ));
    };
    let kinds = [
        water_kind(&station.receiving_water),
        salinity_kind(station.salinity),
    ];
    if let Some(kind) = kinds.into_iter().flatten().find(|k| pp.not_for.contains(k)) {
        return Ok(limit(
            None,
            format!(
                "no limit (profile {} does not apply its {sym} limit to {} receiving water)",
                profile.name,
                kind.as_str()
            ),
        ));
    }
    let Some(pl) = pp.limit else {
        return Ok(limit(
            None,
            format!(
                "no limit ({sym} has no discharge limit in profile {})",
                profile.name
            ),
        ));
    };
    if station.receiving_water == ReceivingWater::Drainage {
        return Err((
            limit_key,
            format!(
                "the station discharges into a drainage system, for which profile {} states no rule (no source read confirms column B without coefficients): give the permit's limit for {sym}",
                profile.name
            ),
        ));
    }
    if !same_unit(&pp.unit, cp.unit.as_str()) {
        return Err((
            format!("{key}.unit"),
            format!(
                "the station measures {sym} in {:?} but profile {} gives its limit in {:?}; measure in {:?} or give a permit limit in the station's unit",
                cp.unit.as_str(),
                profile.name,
                pp.unit,
                pp.unit
            ),
        ));
    }
    match pl {
        ProfileLimit::Range(lo, hi) => Ok(limit(
            Some(LimitBound::Range(to_f64(lo), to_f64(hi))),
            format!("{}–{}{unit} (no coefficients)", fmt_num(lo), fmt_num(hi)),
        )),
        ProfileLimit::Max(c) if !pp.coefficients => Ok(limit(
            Some(LimitBound::Max(to_f64(c))),
            format!("C={c}{unit} (no coefficients) = {c}{unit}", c = fmt_num(c)),
        )),
        ProfileLimit::Max(c) => {
            let kq = kq(profile, &station.receiving_water).ok_or_else(|| {
                (
                    "receiving_water".to_string(),
                    format!(
                        "cannot select Kq from profile {}: the figure is not a usable number",
                        profile.name
                    ),
                )
            })?;
            let kf = kf(profile, basis.design_flow_m3_day).ok_or_else(|| {
                (
                    "design_flow_m3_day".to_string(),
                    format!(
                        "cannot select Kf from profile {}: {} is not a usable number",
                        profile.name, basis.design_flow_m3_day
                    ),
                )
            })?;
            let cmax = c
                .checked_mul(kq.k)
                .and_then(|x| x.checked_mul(kf.k))
                .ok_or_else(|| (key.clone(), "C × Kq × Kf overflows".to_string()))?
                .normalize();
            Ok(limit(
                Some(LimitBound::Max(to_f64(cmax))),
                format!(
                    "C={} × Kq {} ({}) × Kf {} ({}) = {}{unit}",
                    fmt_num(c),
                    fmt_coef(kq.k),
                    kq.basis,
                    fmt_coef(kf.k),
                    kf.basis,
                    fmt_num(cmax)
                ),
            ))
        }
    }
}

/// Stations whose analyser range does not cover 3× the limit (Circular 10/2021 Art. 35). Advice for
/// `check-config`, not an error: (key path below the station, message).
pub fn range_advice(station: &Station, limits: &StationLimits) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for cp in &station.parameters {
        // The highest maximum of any regime: the analyser must cover each in turn.
        let highest = limits
            .regimes
            .iter()
            .filter_map(|r| match r.get(&cp.parameter)?.bound {
                Some(LimitBound::Max(m)) => Some(m),
                _ => None,
            })
            .reduce(f64::max);
        let (Some((_, hi)), Some(m)) = (cp.range, highest) else {
            continue;
        };
        let m = &m;
        if hi < 3.0 * m {
            out.push((
                format!("parameters.{}.range", cp.parameter),
                format!(
                    "analyser range up to {} is below 3 × the limit {} (Circular 10/2021 Art. 35 asks for at least {})",
                    fmt_f64(hi),
                    fmt_f64(*m),
                    fmt_f64(3.0 * m)
                ),
            ));
        }
    }
    out
}

/// Load the limit profiles and resolve every station's limits; problems are reported like config problems.
pub fn resolve_limits(config: &Config) -> Result<HashMap<StationId, StationLimits>, ConfigError> {
    let mut p = Problems::new(&config.source);
    let errors = match Profiles::load_dir(&config.profiles_dir) {
        Ok(profiles) => match profiles.resolve(config) {
            Ok(limits) => return Ok(limits),
            Err(errs) => errs,
        },
        Err(errs) => errs
            .into_iter()
            .map(|(file, msg)| (format!("daemon.profiles_dir ({file})"), msg))
            .collect(),
    };
    for (k, m) in errors {
        p.push(k, m);
    }
    p.finish()?;
    Ok(HashMap::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(station: &str) -> Config {
        let text =
            format!("[[station]]\nid = \"BN_T_N1\"\nname = \"t\"\ninterval = \"5m\"\n{station}\n");
        Config::from_str(&text, Path::new("test.toml"), Path::new(".")).unwrap()
    }

    fn limits(station: &str) -> Result<StationLimits, Vec<(String, String)>> {
        Profiles::builtin().station_limits(&config(station).stations[0])
    }

    const RIVER: &str =
        "design_flow_m3_day = 13000\nreceiving_water = { type = \"river\", flow_m3_s = 120 }";

    #[test]
    fn unknown_profile_lists_known_ones() {
        let e = limits(&format!(
            "profile = \"qcvn99\"\n{RIVER}\nparameters = {{ COD = {{}} }}"
        ))
        .unwrap_err();
        assert_eq!(e[0].0, "profile");
        assert!(
            e[0].1.contains(
                "unknown limit profile \"qcvn99\"; known profiles: qcvn40-2011-a, qcvn40-2011-b"
            ),
            "{}",
            e[0].1
        );
    }

    #[test]
    fn unit_mismatch_is_an_error_at_the_parameter() {
        let e = limits(&format!(
            "profile = \"qcvn40-2011-b\"\n{RIVER}\nparameters = {{ Zn = {{ unit = \"ug/L\" }}, COD = {{ unit = \"mg/l\" }} }}"
        ))
        .unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "parameters.Zn.unit");
        assert!(e[0].1.contains("\"ug/L\""), "{}", e[0].1);
    }

    #[test]
    fn workings() {
        let l = limits(&format!(
            "profile = \"qcvn40-2011-b\"\n{RIVER}\nparameters = {{ Flow = {{}}, TOC = {{}}, COD = {{}}, \
             TSS = {{ limit = 60 }}, pH = {{}}, Temp = {{}}, Zn = {{ unit = \"mg/L\", limit = [1, 2] }} }}"
        ))
        .unwrap();
        let w = |s: &str| l.get(&Parameter::new(s).unwrap()).unwrap().working.clone();
        assert_eq!(
            w("COD"),
            "C=150 × Kq 1.0 (river, Q=120 m³/s) × Kf 0.9 (F=13,000 m³/day) = 135 mg/L"
        );
        assert_eq!(w("TSS"), "permit limit 60 mg/L");
        assert_eq!(w("Zn"), "permit limit 1–2 mg/L");
        assert_eq!(w("pH"), "5.5–9 (no coefficients)");
        assert_eq!(w("Temp"), "C=40 °C (no coefficients) = 40 °C");
        assert_eq!(
            w("Flow"),
            "no limit (Flow has no discharge limit in profile qcvn40-2011-b)"
        );
        assert_eq!(
            w("TOC"),
            "no limit (TOC is not in profile qcvn40-2011-b and the station gives no permit limit)"
        );
    }

    #[test]
    fn chloride_does_not_apply_to_brackish_or_saline_water_whatever_its_kq_class() {
        let cl = |water: &str| {
            let l = limits(&format!(
                "profile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 40\nreceiving_water = {water}\nparameters = {{ Cl = {{}} }}"
            ))
            .unwrap();
            (
                l.regimes[0].limits[0].bound,
                l.regimes[0].limits[0].working.clone(),
            )
        };
        // A tidal river reach: river Kq, brackish water.
        let (bound, working) = cl("{ type = \"river\", flow_m3_s = 30, salinity = \"brackish\" }");
        assert_eq!(bound, None);
        assert!(working.contains("brackish receiving water"), "{working}");
        let (bound, working) = cl("{ type = \"lake\", salinity = \"saline\" }");
        assert_eq!(bound, None, "{working}");
        // Fresh (the default for a river): C 1,000 × Kq 0.9 (Q ≤ 50 m³/s) × Kf 1.2 (F ≤ 50 m³/day).
        let (bound, working) = cl("{ type = \"river\", flow_m3_s = 30 }");
        assert_eq!(bound, Some(LimitBound::Max(1080.0)), "{working}");
    }

    #[test]
    fn a_drainage_system_takes_the_permits_limits() {
        let e = limits(
            "profile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 40\nreceiving_water = { type = \"drainage\" }\n\
             parameters = { COD = {}, pH = {}, TSS = { limit = 100 }, Flow = {} }",
        )
        .unwrap_err();
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["parameters.COD.limit", "parameters.pH.limit"],
            "{e:?}"
        );
        assert!(
            e[0].1.contains("give the permit's limit for COD"),
            "{}",
            e[0].1
        );
        let l = limits(
            "profile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 40\nreceiving_water = { type = \"drainage\" }\n\
             parameters = { COD = { limit = 200 }, pH = { limit = [6, 9] }, Flow = {} }",
        )
        .unwrap();
        assert_eq!(l.regimes[0].limits[0].bound, Some(LimitBound::Max(200.0)));
    }

    #[test]
    fn chloride_does_not_apply_to_coastal_water() {
        let l = limits(
            "profile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 40\nreceiving_water = { type = \"coastal\", use = \"other\" }\n\
             parameters = { Cl = {} }",
        )
        .unwrap();
        assert_eq!(l.regimes[0].limits[0].bound, None);
        assert!(
            l.regimes[0].limits[0].working.contains("coastal"),
            "{}",
            l.regimes[0].limits[0].working
        );
    }

    #[test]
    fn load_dir_overrides_and_adds() {
        let dir = tempfile::tempdir().unwrap();
        let b = profile::BUILTIN[1].1.replace("c = 150\n", "c = 140\n");
        std::fs::write(dir.path().join("qcvn40-2011-b.toml"), b).unwrap();
        std::fs::write(
            dir.path().join("permit-only.toml"),
            "title = \"permit only\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let p = Profiles::load_dir(dir.path()).unwrap();
        assert_eq!(p.names(), ["permit-only", "qcvn40-2011-a", "qcvn40-2011-b"]);
        assert!(!p.get("qcvn40-2011-b").unwrap().builtin);
        assert_eq!(
            p.get("qcvn40-2011-b").unwrap().parameters["COD"].limit,
            Some(ProfileLimit::Max(Decimal::from(140)))
        );
    }

    #[test]
    fn load_dir_reports_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.toml"),
            "title = \"x\"\n[kf]\nsteps = [{ k = -1 }]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("worse.toml"), "title = \n").unwrap();
        let e = Profiles::load_dir(dir.path()).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].0.ends_with("bad.toml"), "{e:?}");
        assert_eq!(
            e[0].1,
            "kf.steps[0].k: -1 is not positive; expected a number above 0"
        );
        assert!(e[1].0.ends_with("worse.toml"), "{e:?}");
        assert!(e[1].1.contains("(line 1)"), "{e:?}");
    }

    #[test]
    fn missing_dir_is_fine() {
        let p = Profiles::load_dir(Path::new("/nonexistent/quantrac/profiles")).unwrap();
        assert_eq!(p.names(), ["qcvn40-2011-a", "qcvn40-2011-b"]);
    }

    #[test]
    fn demo_config_resolves_with_the_shipped_profiles() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let c = Config::from_str(crate::config::DEMO_TOML, &base.join("demo.toml"), &base).unwrap();
        let shipped = Profiles::load_dir(&c.profiles_dir).unwrap();
        // The files in config/profiles/ are the built-ins.
        for name in ["qcvn40-2011-a", "qcvn40-2011-b"] {
            let (file, builtin) = (shipped.get(name).unwrap(), Profiles::builtin());
            assert!(!file.builtin);
            assert_eq!(file.parameters, builtin.get(name).unwrap().parameters);
        }
        let limits = shipped.resolve(&c).unwrap();
        let vsip = &limits[&StationId::parse("BN_KCNVSIP_NUOC01").unwrap()];
        let get = |s: &str| vsip.get(&Parameter::new(s).unwrap()).unwrap();
        assert_eq!(get("COD").bound, Some(LimitBound::Max(60.0)));
        assert_eq!(get("COD").working, "permit limit 60 mg/L");
        assert_eq!(get("NH4").bound, Some(LimitBound::Max(4.95)));
        assert_eq!(
            get("NH4").working,
            "C=5 × Kq 1.1 (river, Q=260 m³/s) × Kf 0.9 (F=6,000 m³/day) = 4.95 mg/L"
        );
        assert_eq!(get("pH").bound, Some(LimitBound::Range(6.0, 9.0)));
    }

    #[test]
    fn range_advice_follows_article_35() {
        let c = config(&format!(
            "profile = \"qcvn40-2011-b\"\n{RIVER}\nparameters = {{ COD = {{ range = [0, 405] }}, TSS = {{ range = [0, 200] }} }}"
        ));
        let l = Profiles::builtin().station_limits(&c.stations[0]).unwrap();
        let a = range_advice(&c.stations[0], &l);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].0, "parameters.TSS.range");
    }

    /// QCVN 40:2011 column B until 31/12/2031, the permit's values from 01/01/2032 (numbers of a made-up permit).
    const CHANGING: &str = "profile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 13000\n\
        receiving_water = { type = \"river\", flow_m3_s = 120 }\n\
        parameters = { Flow = {}, COD = {}, pH = {} }\n\
        [[station.regime]]\nfrom = \"2032-01-01\"\nname = \"permit 1/GPMT\"\nlimits = { COD = 100, pH = [6, 9] }\n";

    fn utc_ms(text: &str) -> Timestamp {
        Timestamp(
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_millis(),
        )
    }

    #[test]
    fn a_regime_starts_at_local_midnight_of_its_date() {
        let l = limits(CHANGING).unwrap();
        assert_eq!(l.regimes.len(), 2);
        let cod = Parameter::new("COD").unwrap();
        let bound = |t: &str| l.get_at(&cod, utc_ms(t)).unwrap().bound;
        // Local midnight 01/01/2032 in Asia/Ho_Chi_Minh (UTC+7) is 17:00 UTC on 31/12/2031.
        assert_eq!(
            bound("2031-12-31T16:59:59.999Z"),
            Some(LimitBound::Max(135.0))
        );
        assert_eq!(
            bound("2031-12-31T17:00:00.000Z"),
            Some(LimitBound::Max(100.0))
        );
        assert_eq!(bound("1999-01-01T00:00:00Z"), Some(LimitBound::Max(135.0)));
        assert_eq!(l.regimes[0].name, "QCVN 40:2011/BTNMT column B");
        assert_eq!(l.regimes[1].name, "permit 1/GPMT");
        assert_eq!(l.period(0), "from the start until 31/12/2031");
        assert_eq!(l.period(1), "from 01/01/2032");
        let dated = l.dated(&cod);
        assert_eq!(
            dated.at(utc_ms("2031-12-31T17:00:00Z").0 - 1),
            Some(&Some(LimitBound::Max(135.0)))
        );
        assert_eq!(
            dated.at(utc_ms("2031-12-31T17:00:00Z").0),
            Some(&Some(LimitBound::Max(100.0)))
        );
        // A month crossing the change holds both regimes; one inside either holds one.
        let dec = (
            utc_ms("2031-11-30T17:00:00Z"),
            utc_ms("2031-12-31T17:00:00Z"),
        );
        assert_eq!(l.during(dec.0, dec.1), 0..1);
        let jan = (
            utc_ms("2031-12-31T17:00:00Z"),
            utc_ms("2032-01-31T17:00:00Z"),
        );
        assert_eq!(l.during(jan.0, jan.1), 1..2);
        assert_eq!(l.during(dec.0, jan.1), 0..2);
    }

    #[test]
    fn three_regimes_by_binary_search() {
        let text = format!(
            "{CHANGING}[[station.regime]]\nfrom = \"2040-07-01\"\nprofile = \"qcvn40-2011-a\"\ndesign_flow_m3_day = 400\n"
        );
        let l = limits(&text).unwrap();
        let cod = Parameter::new("COD").unwrap();
        let at = |t: &str| l.get_at(&cod, utc_ms(t)).unwrap();
        assert_eq!(
            at("2035-01-01T00:00:00Z").bound,
            Some(LimitBound::Max(100.0))
        );
        // Column A, Kq 1.0 (Q=120), Kf 1.1 (F=400 m³/day, the regime's own design flow).
        assert_eq!(
            at("2040-06-30T17:00:00Z").working,
            "C=75 × Kq 1.0 (river, Q=120 m³/s) × Kf 1.1 (F=400 m³/day) = 82.5 mg/L"
        );
        assert_eq!(l.regimes[2].name, "QCVN 40:2011/BTNMT column A");
        assert_eq!(l.period(1), "from 01/01/2032 until 30/06/2040");
        let lines = l.timeline_lines(&config(&text).stations[0]);
        assert_eq!(lines[0], "  limits: 3 regimes");
        assert_eq!(
            lines[1],
            "  from the start until 31/12/2031: QCVN 40:2011/BTNMT column B"
        );
        assert!(
            lines.contains(&"    COD: permit limit 100 mg/L".to_string()),
            "{lines:#?}"
        );
        assert!(lines.contains(&"  from 01/07/2040: QCVN 40:2011/BTNMT column A".to_string()));
    }

    #[test]
    fn a_regime_must_be_complete() {
        // The permit gives no pH: the previous regime limits it, so it would vanish on the date by omission.
        let e = limits(&CHANGING.replace(", pH = [6, 9]", "")).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "regime[0].limits.pH");
        assert!(
            e[0].1.starts_with("missing: QCVN 40:2011/BTNMT column B limits pH (5.5–9 (no coefficients)) until this regime starts; give the permit's value in force from 01/01/2032"),
            "{}",
            e[0].1
        );
        let e = limits(&CHANGING.replace("name = \"permit 1/GPMT\"", "profile = \"qcvn97\""))
            .unwrap_err();
        assert_eq!(e[0].0, "regime[0].profile");
        assert!(
            e[0].1.starts_with("unknown limit profile \"qcvn97\""),
            "{}",
            e[0].1
        );
    }

    #[test]
    fn single_regime_is_unchanged() {
        let l = limits(&format!(
            "profile = \"qcvn40-2011-b\"\n{RIVER}\nparameters = {{ COD = {{}} }}"
        ))
        .unwrap();
        assert_eq!(l.regimes.len(), 1);
        assert_eq!(l.period(0), "throughout");
        let lines = l.timeline_lines(
            &config(&format!(
                "profile = \"qcvn40-2011-b\"\n{RIVER}\nparameters = {{ COD = {{}} }}"
            ))
            .stations[0],
        );
        assert_eq!(
            lines,
            ["  COD: C=150 × Kq 1.0 (river, Q=120 m³/s) × Kf 0.9 (F=13,000 m³/day) = 135 mg/L"]
        );
    }
}
