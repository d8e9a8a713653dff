//! Limit profile files: the TOML schema (serde, `deny_unknown_fields`), its validation into a checked [`Profile`]
//! with exact decimals, and the two built-in QCVN 40:2011 profiles embedded from `config/profiles/`.
//!
//! Every regulatory number (C per parameter, the Kq and Kf tables, which parameters take no coefficients) is data
//! here, so an officer can correct a value by dropping a file of the same name in `daemon.profiles_dir` — no
//! rebuild. This module reads files only in [`load_file`]; everything else is pure.

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::decimal;
use crate::model::Parameter;

/// Built-in profiles: (name, file text). The same files ship in `config/profiles/` for officers to copy and edit.
pub const BUILTIN: [(&str, &str); 2] = [
    (
        "qcvn40-2011-a",
        include_str!("../../config/profiles/qcvn40-2011-a.toml"),
    ),
    (
        "qcvn40-2011-b",
        include_str!("../../config/profiles/qcvn40-2011-b.toml"),
    ),
];

/// Why a profile file cannot be used. Each names the file, the key path inside it and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("{file}: cannot read the profile file: {error}")]
    Read { file: String, error: String },
    #[error("{dir}: cannot list the profiles folder: {error}")]
    Dir { dir: String, error: String },
    #[error("{file}: {key}: {message}")]
    Syntax {
        file: String,
        key: String,
        message: String,
    },
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

impl ProfileError {
    /// `(file, "key: message")`, the pair [`super::Profiles::load_dir`] reports.
    pub fn into_pair(self) -> (String, String) {
        match self {
            ProfileError::Read { file, error } => {
                (file, format!("cannot read the profile file: {error}"))
            }
            ProfileError::Dir { dir, error } => (dir, format!("cannot list the folder: {error}")),
            ProfileError::Syntax { file, key, message }
            | ProfileError::Invalid { file, key, message } => {
                let key = if key.is_empty() { "(top level)" } else { &key };
                (file, format!("{key}: {message}"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Schema as written.
// ---------------------------------------------------------------------------------------------------------------

/// A limit profile file, e.g. `qcvn40-2011-b.toml`. The profile's name is the file name without `.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// Title shown to officers, e.g. `QCVN 40:2011/BTNMT column B`.
    pub title: String,
    /// Where the numbers come from and how sure they are (free text).
    #[serde(default)]
    pub source: String,
    /// Receiving-water coefficient Kq. Required when any parameter takes coefficients.
    pub kq: Option<KqSection>,
    /// Discharge-flow coefficient Kf, by the permitted/design flow F in m³/day. Required when any parameter takes
    /// coefficients.
    pub kf: Option<StepsSection>,
    /// Parameters by symbol (Circular 10 symbol where one exists: `COD`, `NH4`, …).
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterEntry>,
}

/// `[kq]`: one table per kind of receiving water.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KqSection {
    /// River, stream, canal, channel: by Q, the mean flow of the three driest months, m³/s.
    pub river: StepsWithNoData,
    /// Lake, pond, marsh: by volume V, m³.
    pub lake: StepsWithNoData,
    /// Coastal water.
    pub coastal: CoastalSection,
}

/// A step table: `steps = [{ up_to = 50, k = 0.9 }, …, { k = 1.2 }]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepsSection {
    /// Steps in rising order. A step applies to values up to and including its `up_to` (and above the previous
    /// step's); the last step has no `up_to` and covers everything above.
    pub steps: Vec<StepEntry>,
}

/// A step table plus the coefficient used when the station gives no figure.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepsWithNoData {
    /// As in [`StepsSection::steps`].
    pub steps: Vec<StepEntry>,
    /// Coefficient when the station's receiving water has no flow/volume figure.
    pub no_data: f64,
}

/// One step of a coefficient table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepEntry {
    /// Upper bound, inclusive. Leave it out on the last step.
    pub up_to: Option<f64>,
    /// The coefficient.
    pub k: f64,
}

/// `[kq.coastal]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoastalSection {
    /// Coastal water used for aquatic protection, water sports or recreation (`use = "aquatic"`).
    pub aquatic: f64,
    /// Other coastal water (`use = "other"`).
    pub other: f64,
}

/// `[parameters.<symbol>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterEntry {
    /// Readable name, e.g. `ammonium as N`.
    #[serde(default)]
    pub name: String,
    /// Unit of the limit; a station must measure in the same unit to use it.
    pub unit: String,
    /// C, the maximum value of the column. Leave out both `c` and `range` for a parameter without a limit (Flow).
    pub c: Option<f64>,
    /// A two-sided range `[low, high]`, bounds inclusive (pH). Ranges take no coefficients.
    pub range: Option<[f64; 2]>,
    /// Whether Cmax = C × Kq × Kf (true, the default for `c`) or Cmax = C (false: temperature, colour, coliform, …).
    pub coefficients: Option<bool>,
    /// Receiving water where this limit does not apply, by type (`river`, `lake`, `coastal`, `drainage`) or
    /// salinity (`brackish`, `saline`), e.g. chloride in brackish and saline water.
    #[serde(default)]
    pub not_for: Vec<String>,
}

// ---------------------------------------------------------------------------------------------------------------
// Checked profile.
// ---------------------------------------------------------------------------------------------------------------

/// A validated profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub title: String,
    pub source: String,
    pub kq: Option<KqTables>,
    pub kf: Option<Steps>,
    pub parameters: BTreeMap<String, ProfileParameter>,
    /// Built in (true) or read from a file (false).
    pub builtin: bool,
}

/// Checked Kq tables.
#[derive(Debug, Clone, PartialEq)]
pub struct KqTables {
    pub river: Steps,
    pub river_no_data: Decimal,
    pub lake: Steps,
    pub lake_no_data: Decimal,
    pub coastal_aquatic: Decimal,
    pub coastal_other: Decimal,
}

/// A checked step table: rising upper bounds, the last one open.
#[derive(Debug, Clone, PartialEq)]
pub struct Steps(Vec<(Option<Decimal>, Decimal)>);

impl Steps {
    /// The coefficient for `x` (the first step whose `up_to` ≥ x).
    pub fn lookup(&self, x: Decimal) -> Decimal {
        self.0
            .iter()
            .find(|(up_to, _)| up_to.is_none_or(|u| x <= u))
            .or(self.0.last())
            .map_or(Decimal::ONE, |(_, k)| *k)
    }
}

/// Receiving water as `not_for` names it: its type (`river`, `lake`, `coastal`, `drainage`) or its salinity
/// (`brackish`, `saline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaterKind {
    River,
    Lake,
    Coastal,
    Drainage,
    Brackish,
    Saline,
}

impl WaterKind {
    pub const ALL: [WaterKind; 6] = [
        WaterKind::River,
        WaterKind::Lake,
        WaterKind::Coastal,
        WaterKind::Drainage,
        WaterKind::Brackish,
        WaterKind::Saline,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            WaterKind::River => "river",
            WaterKind::Lake => "lake",
            WaterKind::Coastal => "coastal",
            WaterKind::Drainage => "drainage",
            WaterKind::Brackish => "brackish",
            WaterKind::Saline => "saline",
        }
    }
}

/// The limit a profile gives one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProfileLimit {
    Max(Decimal),
    Range(Decimal, Decimal),
}

/// One parameter of a checked profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileParameter {
    pub name: String,
    pub unit: String,
    pub limit: Option<ProfileLimit>,
    /// Cmax = C × Kq × Kf when true.
    pub coefficients: bool,
    pub not_for: Vec<WaterKind>,
}

/// Read and check one profile file; its name is the file stem.
pub fn load_file(path: &Path) -> Result<Profile, Vec<ProfileError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ProfileError::Read {
            file: file.clone(),
            error: e.to_string(),
        }]
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&name, &file, &text, false)
}

/// Parse and check profile text. `file` names it in messages.
pub fn parse(
    name: &str,
    file: &str,
    text: &str,
    builtin: bool,
) -> Result<Profile, Vec<ProfileError>> {
    let de = toml::Deserializer::new(text);
    let raw: ProfileFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        vec![ProfileError::Syntax {
            file: file.to_string(),
            key: if key == "." { String::new() } else { key },
            message: crate::config::tidy_toml_message(&inner, text),
        }]
    })?;
    let mut c = Checker {
        file,
        errors: Vec::new(),
    };
    let profile = c.profile(name, raw, builtin);
    if c.errors.is_empty() {
        Ok(profile)
    } else {
        Err(c.errors)
    }
}

/// Collects every problem of one file.
struct Checker<'a> {
    file: &'a str,
    errors: Vec<ProfileError>,
}

impl Checker<'_> {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ProfileError::Invalid {
            file: self.file.to_string(),
            key: key.into(),
            message: message.into(),
        });
    }

    /// A decimal from a TOML number, or a problem at `key`.
    fn number(&mut self, key: &str, x: f64, positive: bool) -> Decimal {
        match decimal::from_f64(x) {
            Some(d) if !positive || d > Decimal::ZERO => d,
            Some(_) => {
                self.push(
                    key,
                    format!("{x} is not positive; expected a number above 0"),
                );
                Decimal::ONE
            }
            None => {
                self.push(
                    key,
                    format!("{x} cannot be used as an exact decimal; expected a plain number between 1e-20 and 1e20"),
                );
                Decimal::ONE
            }
        }
    }

    fn steps(&mut self, key: &str, steps: &[StepEntry]) -> Steps {
        if steps.is_empty() {
            self.push(
                key,
                "no steps; expected e.g. [{ up_to = 50, k = 0.9 }, { k = 1.0 }]",
            );
        }
        let mut out = Vec::with_capacity(steps.len());
        let mut previous: Option<Decimal> = None;
        for (i, s) in steps.iter().enumerate() {
            let k_key = format!("{key}[{i}]");
            let last = i + 1 == steps.len();
            let up_to = match (s.up_to, last) {
                (Some(u), false) => {
                    let d = self.number(&format!("{k_key}.up_to"), u, false);
                    if let Some(p) = previous.filter(|p| d <= *p) {
                        self.push(
                            format!("{k_key}.up_to"),
                            format!("{u} is not above the previous step's {p}; steps must rise"),
                        );
                    }
                    previous = Some(d);
                    Some(d)
                }
                (None, false) => {
                    self.push(
                        format!("{k_key}.up_to"),
                        "missing; every step but the last needs an upper bound",
                    );
                    None
                }
                (Some(u), true) => {
                    self.push(
                        format!("{k_key}.up_to"),
                        format!("the last step must have no upper bound (it covers everything above the previous step), found {u}"),
                    );
                    None
                }
                (None, true) => None,
            };
            let k = self.number(&format!("{k_key}.k"), s.k, true);
            out.push((up_to, k));
        }
        Steps(out)
    }

    fn profile(&mut self, name: &str, raw: ProfileFile, builtin: bool) -> Profile {
        if raw.title.trim().is_empty() {
            self.push(
                "title",
                "must not be empty; e.g. \"QCVN 40:2011/BTNMT column B\"",
            );
        }
        let kq = raw.kq.as_ref().map(|k| KqTables {
            river: self.steps("kq.river.steps", &k.river.steps),
            river_no_data: self.number("kq.river.no_data", k.river.no_data, true),
            lake: self.steps("kq.lake.steps", &k.lake.steps),
            lake_no_data: self.number("kq.lake.no_data", k.lake.no_data, true),
            coastal_aquatic: self.number("kq.coastal.aquatic", k.coastal.aquatic, true),
            coastal_other: self.number("kq.coastal.other", k.coastal.other, true),
        });
        let kf = raw.kf.as_ref().map(|k| self.steps("kf.steps", &k.steps));
        let mut parameters = BTreeMap::new();
        let mut need_coefficients = Vec::new();
        for (symbol, entry) in &raw.parameters {
            let key = format!("parameters.{symbol}");
            if let Some(p) = self.parameter(&key, symbol, entry) {
                if p.coefficients {
                    need_coefficients.push(symbol.as_str());
                }
                parameters.insert(symbol.clone(), p);
            }
        }
        if !need_coefficients.is_empty() {
            let which = need_coefficients.join(", ");
            if kq.is_none() {
                self.push(
                    "kq",
                    format!("missing: parameters {which} take coefficients; add [kq.river], [kq.lake] and [kq.coastal] tables or set coefficients = false"),
                );
            }
            if kf.is_none() {
                self.push(
                    "kf",
                    format!("missing: parameters {which} take coefficients; add a [kf] table or set coefficients = false"),
                );
            }
        }
        Profile {
            name: name.to_string(),
            title: raw.title,
            source: raw.source,
            kq,
            kf,
            parameters,
            builtin,
        }
    }

    fn parameter(
        &mut self,
        key: &str,
        symbol: &str,
        e: &ParameterEntry,
    ) -> Option<ProfileParameter> {
        if let Err(err) = Parameter::new(symbol) {
            self.push(key, err.to_string());
            return None;
        }
        if e.unit.trim().is_empty() {
            self.push(
                format!("{key}.unit"),
                "must not be empty; e.g. \"mg/L\" (\"-\" for pH)",
            );
        }
        let limit = match (e.c, e.range) {
            (Some(_), Some(_)) => {
                self.push(
                    key,
                    "has both c and range; expected one of them (c for a maximum, range for pH-like limits)",
                );
                None
            }
            (Some(c), None) => Some(ProfileLimit::Max(self.number(&format!("{key}.c"), c, true))),
            (None, Some([lo, hi])) => {
                let (l, h) = (
                    self.number(&format!("{key}.range"), lo, false),
                    self.number(&format!("{key}.range"), hi, false),
                );
                if l >= h {
                    self.push(
                        format!("{key}.range"),
                        format!(
                            "[{lo}, {hi}] is not a range; expected [low, high] with low < high"
                        ),
                    );
                }
                Some(ProfileLimit::Range(l, h))
            }
            (None, None) => None,
        };
        let coefficients = match (limit, e.coefficients) {
            (Some(ProfileLimit::Range(..)), Some(true)) => {
                self.push(
                    format!("{key}.coefficients"),
                    "a range takes no coefficients; remove the key or set coefficients = false",
                );
                false
            }
            (None, Some(true)) => {
                self.push(
                    format!("{key}.coefficients"),
                    "there is no c to apply coefficients to; give c or remove the key",
                );
                false
            }
            (Some(ProfileLimit::Max(_)), c) => c.unwrap_or(true),
            _ => false,
        };
        let mut not_for = Vec::new();
        for (i, w) in e.not_for.iter().enumerate() {
            match WaterKind::ALL.into_iter().find(|k| k.as_str() == w) {
                Some(k) => not_for.push(k),
                None => self.push(
                    format!("{key}.not_for[{i}]"),
                    format!("unknown receiving water {w:?}; expected one of river, lake, coastal"),
                ),
            }
        }
        Some(ProfileParameter {
            name: e.name.clone(),
            unit: e.unit.trim().to_string(),
            limit,
            coefficients,
            not_for,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
title = "test"
[kq.river]
steps = [{ up_to = 50, k = 0.9 }, { k = 1.0 }]
no_data = 0.9
[kq.lake]
steps = [{ k = 0.6 }]
no_data = 0.6
[kq.coastal]
aquatic = 1.0
other = 1.3
[kf]
steps = [{ up_to = 500, k = 1.1 }, { k = 1.0 }]
[parameters.COD]
unit = "mg/L"
c = 150
[parameters.pH]
unit = "-"
range = [5.5, 9]
"#;

    fn errors(text: &str) -> Vec<(String, String)> {
        parse("t", "t.toml", text, false)
            .expect_err("should fail")
            .into_iter()
            .map(ProfileError::into_pair)
            .collect()
    }

    fn messages(text: &str) -> String {
        errors(text)
            .into_iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn builtins_parse() {
        for (name, text) in BUILTIN {
            let p = parse(name, name, text, true).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(
                p.parameters.len(),
                34,
                "{name}: 33 QCVN 40 parameters plus Flow"
            );
            assert!(p.kq.is_some() && p.kf.is_some());
        }
    }

    #[test]
    fn good_profile_parses() {
        let p = parse("t", "t.toml", GOOD, false).unwrap();
        assert!(p.parameters["COD"].coefficients);
        assert!(!p.parameters["pH"].coefficients);
        let kf = p.kf.unwrap();
        assert_eq!(kf.lookup(Decimal::from(500)), Decimal::new(11, 1));
        assert_eq!(kf.lookup(Decimal::from(501)), Decimal::ONE);
    }

    #[test]
    fn unknown_key_names_file_key_and_line() {
        let text = GOOD.replace("c = 150", "c = 150\nlimit = 3");
        let m = messages(&text);
        assert!(m.starts_with("t.toml: parameters.COD"), "{m}");
        assert!(m.contains("unknown field `limit`"), "{m}");
        assert!(m.contains("expected one of"), "{m}");
        assert!(m.contains("(line "), "{m}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let m = messages(&GOOD.replace("c = 150", "c = \"150\""));
        assert!(m.contains("parameters.COD.c"), "{m}");
        assert!(
            m.contains("expected f64") || m.contains("invalid type"),
            "{m}"
        );
    }

    #[test]
    fn missing_title() {
        let m = messages(&GOOD.replace("title = \"test\"", ""));
        assert!(m.contains("missing field `title`"), "{m}");
    }

    #[test]
    fn steps_must_rise_and_end_open() {
        let m = messages(&GOOD.replace(
            "steps = [{ up_to = 50, k = 0.9 }, { k = 1.0 }]",
            "steps = [{ up_to = 50, k = 0.9 }, { up_to = 40, k = 1.0 }, { k = 1.1 }]",
        ));
        assert!(
            m.contains("t.toml: kq.river.steps[1].up_to: 40 is not above the previous step's 50"),
            "{m}"
        );
        let m = messages(&GOOD.replace("[{ k = 0.6 }]", "[{ up_to = 5, k = 0.6 }]"));
        assert!(
            m.contains("kq.lake.steps[0].up_to: the last step must have no upper bound"),
            "{m}"
        );
        let m = messages(&GOOD.replace("[{ k = 0.6 }]", "[]"));
        assert!(m.contains("kq.lake.steps: no steps"), "{m}");
        let m = messages(&GOOD.replace("{ up_to = 500, k = 1.1 }", "{ k = 1.1 }"));
        assert!(m.contains("kf.steps[0].up_to: missing"), "{m}");
    }

    #[test]
    fn coefficient_must_be_positive() {
        let m = messages(&GOOD.replace("other = 1.3", "other = 0"));
        assert!(m.contains("kq.coastal.other: 0 is not positive"), "{m}");
    }

    #[test]
    fn limit_shapes() {
        let m = messages(&GOOD.replace("range = [5.5, 9]", "range = [9, 5.5]"));
        assert!(
            m.contains("parameters.pH.range: [9, 5.5] is not a range"),
            "{m}"
        );
        let m = messages(&GOOD.replace("range = [5.5, 9]", "range = [5.5, 9]\nc = 3"));
        assert!(m.contains("parameters.pH: has both c and range"), "{m}");
        let m =
            messages(&GOOD.replace("range = [5.5, 9]", "range = [5.5, 9]\ncoefficients = true"));
        assert!(
            m.contains("parameters.pH.coefficients: a range takes no coefficients"),
            "{m}"
        );
        let m = messages(&GOOD.replace("c = 150", "c = -1"));
        assert!(m.contains("parameters.COD.c: -1 is not positive"), "{m}");
        let m = messages(&GOOD.replace("unit = \"mg/L\"", "unit = \" \""));
        assert!(m.contains("parameters.COD.unit: must not be empty"), "{m}");
    }

    #[test]
    fn bad_symbol_and_water_kind() {
        let m = messages(&format!("{GOOD}\n[parameters.\"a b\"]\nunit = \"mg/L\"\n"));
        assert!(m.contains("parameters.a b: parameter symbol"), "{m}");
        let m = messages(&GOOD.replace("c = 150", "c = 150\nnot_for = [\"sea\"]"));
        assert!(
            m.contains("parameters.COD.not_for[0]: unknown receiving water \"sea\""),
            "{m}"
        );
    }

    #[test]
    fn coefficients_need_tables() {
        let text = "title = \"permit\"\n[parameters.COD]\nunit = \"mg/L\"\nc = 100\n";
        let m = messages(text);
        assert!(
            m.contains("t.toml: kq: missing: parameters COD take coefficients"),
            "{m}"
        );
        assert!(m.contains("t.toml: kf: missing"), "{m}");
        // Without coefficients no table is needed.
        let ok = "title = \"permit\"\n[parameters.COD]\nunit = \"mg/L\"\nc = 100\ncoefficients = false\n";
        assert!(parse("t", "t.toml", ok, false).is_ok());
    }

    #[test]
    fn every_problem_is_reported() {
        let text = GOOD
            .replace("other = 1.3", "other = 0")
            .replace("c = 150", "c = -1");
        assert_eq!(errors(&text).len(), 2);
    }
}
