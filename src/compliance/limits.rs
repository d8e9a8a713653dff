//! The limits that apply to each station: profile lookup, Kq by receiving water, Kf by design flow,
//! Cmax = C × Kq × Kf in exact decimals, permit limits that replace the profile's, and the working an officer can
//! check. Pure except [`Profiles::load_dir`], which reads the profile folder.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rust_decimal::Decimal;

use super::decimal::{self, fmt_coef, fmt_f64, fmt_num};
use super::profile::{self, Profile, ProfileError, ProfileLimit, WaterKind, BUILTIN};
use crate::config::{
    CheckedParameter, Config, ConfigError, LimitText, Problems, ReceivingWater, Salinity, Station,
};
use crate::model::{Parameter, StationId};

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

/// Limits of every monitored parameter of one station.
#[derive(Debug, Clone, Default)]
pub struct StationLimits {
    pub limits: Vec<Limit>,
}

impl StationLimits {
    pub fn get(&self, p: &Parameter) -> Option<&Limit> {
        self.limits.iter().find(|l| &l.parameter == p)
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

    /// The limits of one station. Errors: (key path below the station, e.g. `profile`, message).
    pub fn station_limits(
        &self,
        station: &Station,
    ) -> Result<StationLimits, Vec<(String, String)>> {
        let Some(profile) = self.get(&station.profile) else {
            return Err(vec![(
                "profile".into(),
                format!(
                    "unknown limit profile {:?}; known profiles: {} (built in, or a *.toml file in daemon.profiles_dir)",
                    station.profile,
                    self.names().join(", ")
                ),
            )]);
        };
        let mut errors = Vec::new();
        let mut limits = Vec::with_capacity(station.parameters.len());
        for cp in &station.parameters {
            match parameter_limit(profile, station, cp) {
                Ok(l) => limits.push(l),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(StationLimits { limits })
        } else {
            Err(errors)
        }
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

/// The station's permit limit, if any.
fn permit_bound(cp: &CheckedParameter) -> Option<Result<LimitBound, String>> {
    Some(Ok(match cp.permit_limit.as_ref()? {
        LimitText::Max(m) => LimitBound::Max(*m),
        LimitText::Range([lo, hi]) => LimitBound::Range(*lo, *hi),
    }))
}

fn parameter_limit(
    profile: &Profile,
    station: &Station,
    cp: &CheckedParameter,
) -> Result<Limit, (String, String)> {
    let sym = cp.parameter.as_str();
    let key = format!("parameters.{sym}");
    let unit = unit_suffix(cp.unit.as_str());
    let limit = |bound: Option<LimitBound>, working: String| Limit {
        parameter: cp.parameter.clone(),
        bound,
        working,
    };
    // A permit limit replaces the profile's value, with no coefficients (the permit states the final figure).
    match permit_bound(cp) {
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
                format!("{key}.limit"),
                format!("cannot read the permit limit {text}; expected a number or [low, high]"),
            ))
        }
        None => {}
    }
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
            format!("{key}.limit"),
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
            let kf = kf(profile, station.design_flow_m3_day).ok_or_else(|| {
                (
                    "design_flow_m3_day".to_string(),
                    format!(
                        "cannot select Kf from profile {}: {} is not a usable number",
                        profile.name, station.design_flow_m3_day
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
        let (
            Some((_, hi)),
            Some(Limit {
                bound: Some(LimitBound::Max(m)),
                ..
            }),
        ) = (cp.range, limits.get(&cp.parameter))
        else {
            continue;
        };
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
            (l.limits[0].bound, l.limits[0].working.clone())
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
        assert_eq!(l.limits[0].bound, Some(LimitBound::Max(200.0)));
    }

    #[test]
    fn chloride_does_not_apply_to_coastal_water() {
        let l = limits(
            "profile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 40\nreceiving_water = { type = \"coastal\", use = \"other\" }\n\
             parameters = { Cl = {} }",
        )
        .unwrap();
        assert_eq!(l.limits[0].bound, None);
        assert!(
            l.limits[0].working.contains("coastal"),
            "{}",
            l.limits[0].working
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
}
