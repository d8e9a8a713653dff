//! `[[station]]`: one automatic monitoring station — identity, discharge context, parameters and its source.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::duration::DurationText;
use super::modbus::{Modbus, ModbusSection};
use super::mqtt::{Mqtt, StationMqtt, StationMqttSection};
use super::regime::{self, LimitText, Regime, RegimeSection};
use super::Problems;
use crate::model::{Parameter, StationId, Unit};

/// A station as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSection {
    /// Circular 10 id `Province_Facility_Station`, e.g. `BN_KCNQV_NUOC01`.
    pub id: String,
    /// Display name, e.g. `Trạm quan trắc nước thải KCN Quế Võ (Que Vo IZ wastewater station)`.
    pub name: String,
    /// Industrial zone (KCN) or facility the station belongs to.
    #[serde(default)]
    pub zone: String,
    /// Limit profile name, e.g. `qcvn40-2011-b` (see `daemon.profiles_dir`).
    pub profile: String,
    /// Design (permitted) discharge flow in m³/day: selects Kf.
    pub design_flow_m3_day: f64,
    /// Receiving water: selects Kq. `{ type = "river", flow_m3_s = 120 }`, `{ type = "lake", volume_m3 = 5e6 }`,
    /// `{ type = "coastal", use = "aquatic" | "other" }`; leave out the number where no data exists.
    pub receiving_water: ReceivingWaterSection,
    /// Expected reporting interval (Circular 10: at most 5 min).
    #[serde(default = "default_interval")]
    pub interval: DurationText,
    /// Monitored parameters by symbol: `COD = { range = [0, 400] }`. Symbols outside Circular 10 Table 34 are custom
    /// parameters and must give their `unit`.
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterSection>,
    /// The parameter that measures the inflow (influent flow), e.g. `"Flow_in"`. The rules ask for flow in and
    /// out; Circular 10 Table 34 has one symbol, `Flow`, so the inflow has no standard symbol.
    pub flow_in: Option<String>,
    /// The parameter that measures the outflow (discharge flow). Default `"Flow"`.
    pub flow_out: Option<String>,
    /// Read the station over Modbus.
    pub modbus: Option<ModbusSection>,
    /// Read the station over MQTT.
    pub mqtt: Option<StationMqttSection>,
    /// Feed the station from the built-in simulator (demo and training).
    pub sim: Option<StationSimSection>,
    /// The facility, its operator and its environmental permit, as the monthly report shows them (all optional).
    pub facility: Option<FacilitySection>,
    /// Limits that change on a date: each `[[station.regime]]` replaces the station's `profile`, design flow and
    /// permit limits from its `from` date (see `regime.rs`). Left out: the station's limits apply throughout.
    #[serde(default)]
    pub regime: Vec<RegimeSection>,
    /// Where the station is, for the dashboard's map: `location = { lat = 21.135, lon = 106.113 }`, decimal degrees
    /// (WGS 84, as GPS receivers and online maps give them). Left out: the station is not on the map.
    pub location: Option<LocationSection>,
}

/// `[station.location]` as written; both keys are needed (optional here so a missing one is reported with its path).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationSection {
    /// Latitude, decimal degrees from -90 to 90 (north positive; Bắc Ninh is about 21.1).
    pub lat: Option<f64>,
    /// Longitude, decimal degrees from -180 to 180 (east positive; Bắc Ninh is about 106.1).
    pub lon: Option<f64>,
}

/// A checked station location (WGS 84 decimal degrees).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

fn default_interval() -> DurationText {
    DurationText::new("5m")
}

/// Receiving water as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceivingWaterSection {
    /// `river` (also stream, canal, channel), `lake` (also pond, marsh) or `coastal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// River: mean flow of the three driest months, m³/s.
    pub flow_m3_s: Option<f64>,
    /// Lake: volume, m³.
    pub volume_m3: Option<f64>,
    /// Coastal: `aquatic` (aquatic protection, water sports, recreation) or `other`.
    #[serde(rename = "use")]
    pub coastal_use: Option<String>,
    /// The receiving water's name as the permit writes it, e.g. `sông Cầu` (shown on the monthly report).
    pub name: Option<String>,
    /// `fresh`, `brackish` (estuaries, lagoons, tidal river reaches) or `saline`; default `fresh`, `saline` for
    /// coastal water. Apart from the Kq class: chloride's limit does not apply to brackish or saline water.
    pub salinity: Option<String>,
}

/// `[station.facility]` as written: who discharges, and under which permit. Every key is optional; the monthly
/// report shows what is given and a blank line for the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilitySection {
    /// The facility (plant) name, e.g. `Nhà máy xử lý nước thải tập trung KCN Quế Võ`.
    pub name: Option<String>,
    /// The operator (the company that runs the plant and holds the permit).
    pub operator: Option<String>,
    /// The facility's address.
    pub address: Option<String>,
    /// The environmental permit's number, e.g. `123/GPMT-BTNMT`.
    pub permit_number: Option<String>,
    /// The permit's date of issue, `yyyy-MM-dd`.
    pub permit_date: Option<String>,
    /// Who issued the permit, e.g. `Bộ Tài nguyên và Môi trường`.
    pub permit_issuer: Option<String>,
}

/// Checked facility and permit details.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facility {
    pub name: Option<String>,
    pub operator: Option<String>,
    pub address: Option<String>,
    pub permit_number: Option<String>,
    pub permit_date: Option<chrono::NaiveDate>,
    pub permit_issuer: Option<String>,
}

/// The longest text a facility key takes (one line of a printed form).
const MAX_TEXT: usize = 200;

/// Checked receiving water.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceivingWater {
    River {
        flow_m3_s: Option<f64>,
    },
    Lake {
        volume_m3: Option<f64>,
    },
    Coastal {
        aquatic_protection: bool,
    },
    /// An urban or residential drainage system (hệ thống thoát nước đô thị, khu dân cư), which QCVN 40:2011 names
    /// as a receiving water: no source read confirms which limits apply, so the permit's are required.
    Drainage,
}

/// How salty the receiving water is, apart from its Kq class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Salinity {
    #[default]
    Fresh,
    Brackish,
    Saline,
}

impl Salinity {
    pub fn as_str(self) -> &'static str {
        match self {
            Salinity::Fresh => "fresh",
            Salinity::Brackish => "brackish",
            Salinity::Saline => "saline",
        }
    }
}

/// One monitored parameter of a station.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterSection {
    /// Unit; defaults to the Circular 10 unit for standard symbols, required for custom ones.
    pub unit: Option<String>,
    /// Analyser measuring range `[low, high]`; values above `high` are flagged `above_range`.
    pub range: Option<[f64; 2]>,
    /// Limit from the environmental permit, replacing the profile's: a maximum (`100`) or a range (`[6, 9]`).
    pub limit: Option<LimitText>,
}

/// Checked parameter of a station.
#[derive(Debug, Clone)]
pub struct CheckedParameter {
    pub parameter: Parameter,
    pub unit: Unit,
    pub range: Option<(f64, f64)>,
    pub permit_limit: Option<LimitText>,
}

/// `[station.sim]`: how the simulator behaves for this station.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StationSimSection {
    /// Parameter whose level drifts upward through the day until it breaks its limit (the demo's bad plant).
    pub drift: Option<String>,
    /// Level of each parameter relative to its limit, 0–1 (default 0.6).
    pub load: Option<f64>,
    /// How the simulated station reaches quantrac: `direct` (in-process), `modbus`, `mqtt` or `tt10` (files in the
    /// first `[tt10] landing` folder).
    #[serde(default)]
    pub via: SimVia,
}

/// How a simulated station reaches quantrac.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimVia {
    /// Batches straight into the pipeline, in-process.
    #[default]
    Direct,
    /// A simulated Modbus device on the station's `[station.modbus]` address.
    Modbus,
    /// Publishes to the embedded broker (or the first `[[mqtt.broker]]`).
    Mqtt,
    /// Circular 10 files in the first `[tt10] landing` folder.
    Tt10,
}

impl std::fmt::Display for SimVia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SimVia::Direct => "direct",
            SimVia::Modbus => "modbus",
            SimVia::Mqtt => "mqtt",
            SimVia::Tt10 => "tt10",
        })
    }
}

/// A validated station.
#[derive(Debug, Clone)]
pub struct Station {
    pub id: StationId,
    pub name: String,
    pub zone: String,
    pub profile: String,
    pub design_flow_m3_day: f64,
    pub receiving_water: ReceivingWater,
    pub salinity: Salinity,
    pub interval: Duration,
    pub parameters: Vec<CheckedParameter>,
    /// The inflow parameter, when declared.
    pub flow_in: Option<String>,
    /// The outflow parameter (`Flow` unless declared).
    pub flow_out: String,
    pub modbus: Option<Modbus>,
    pub mqtt: Option<StationMqtt>,
    pub sim: Option<StationSimSection>,
    /// Facility and permit details (empty when `[station.facility]` is left out).
    pub facility: Facility,
    /// The receiving water's name, when given.
    pub receiving_water_name: Option<String>,
    /// Later limit regimes in date order (`[[station.regime]]`); the station's own profile, design flow and permit
    /// limits are in force before the first.
    pub regimes: Vec<Regime>,
    /// Where the station is (`[station.location]`), for the dashboard's map.
    pub location: Option<Location>,
    /// Index of this station in the file (`station[i]`), for messages.
    pub index: usize,
}

impl Station {
    pub fn parameter(&self, p: &str) -> Option<&CheckedParameter> {
        self.parameters.iter().find(|c| c.parameter.as_str() == p)
    }
    /// Sources that feed this station, for display.
    pub fn sources(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(m) = &self.modbus {
            v.push(m.describe());
        }
        if let Some(m) = &self.mqtt {
            v.push(format!("mqtt topic {}", m.topic));
        }
        if let Some(s) = &self.sim {
            v.push(format!("simulator ({})", s.via));
        }
        v
    }
}

impl StationSection {
    /// The station as far as it validated (problems pushed to `p`): `None` only when its id or receiving water is
    /// unusable; parameters that did not validate are left out. What later checks (limit profiles) run on, so that
    /// one run reports every problem.
    pub(super) fn validate_partial(
        &self,
        p: &mut Problems,
        key: &str,
        mqtt: &Mqtt,
        tz: chrono::FixedOffset,
    ) -> Option<Station> {
        let id = StationId::parse(&self.id)
            .map_err(|e| p.push(format!("{key}.id"), e))
            .ok();
        if self.name.trim().is_empty() {
            p.push(
                format!("{key}.name"),
                "must not be empty; give the station's display name",
            );
        }
        if self.profile.trim().is_empty() {
            p.push(
                format!("{key}.profile"),
                "must name a limit profile, e.g. \"qcvn40-2011-b\"",
            );
        }
        if !(self.design_flow_m3_day.is_finite() && self.design_flow_m3_day > 0.0) {
            p.push(
                format!("{key}.design_flow_m3_day"),
                format!(
                    "{} is not a positive flow in m³/day",
                    self.design_flow_m3_day
                ),
            );
        }
        let receiving_water = self
            .receiving_water
            .validate(p, &format!("{key}.receiving_water"));
        let salinity = self.receiving_water.salinity(
            p,
            &format!("{key}.receiving_water"),
            receiving_water.as_ref(),
        );
        let receiving_water_name = check_text(
            p,
            &format!("{key}.receiving_water.name"),
            self.receiving_water.name.as_deref(),
        );
        let facility = self.facility.as_ref().map_or_else(Facility::default, |f| {
            f.validate(p, &format!("{key}.facility"))
        });
        let interval = self.interval.check_positive(p, &format!("{key}.interval"));
        if self.parameters.is_empty() {
            p.push(
                format!("{key}.parameters"),
                "no parameters; list the monitored ones, e.g. parameters = { COD = {}, pH = {} }",
            );
        }
        let parameters: Vec<CheckedParameter> = self
            .parameters
            .iter()
            .filter_map(|(sym, ps)| ps.validate(p, &format!("{key}.parameters.{sym}"), sym))
            .collect();
        let symbols: Vec<&str> = self.parameters.keys().map(String::as_str).collect();
        for (k, v) in [("flow_in", &self.flow_in), ("flow_out", &self.flow_out)] {
            if let Some(v) = v.as_deref().filter(|v| !self.parameters.contains_key(*v)) {
                p.push(
                    format!("{key}.{k}"),
                    format!(
                        "parameter {v:?} is not monitored by this station; expected one of {}",
                        symbols.join(", ")
                    ),
                );
            }
        }
        let modbus = self
            .modbus
            .as_ref()
            .map(|m| m.validate(p, &format!("{key}.modbus"), &symbols));
        let station_mqtt = self
            .mqtt
            .as_ref()
            .map(|m| m.validate(p, &format!("{key}.mqtt"), mqtt, &self.id));
        let regimes = regime::validate(p, key, &self.regime, self.design_flow_m3_day, &symbols, tz);
        let location = self
            .location
            .as_ref()
            .and_then(|l| l.validate(p, &format!("{key}.location")));
        if let Some(sim) = &self.sim {
            if let Some(d) = &sim.drift {
                if !self.parameters.contains_key(d) {
                    p.push(
                        format!("{key}.sim.drift"),
                        format!(
                            "parameter {d:?} is not monitored by this station; expected one of {}",
                            symbols.join(", ")
                        ),
                    );
                }
            }
            if let Some(l) = sim.load {
                if !(0.0..=2.0).contains(&l) {
                    p.push(
                        format!("{key}.sim.load"),
                        format!("{l} is out of range; expected 0 to 2"),
                    );
                }
            }
        }
        Some(Station {
            id: id?,
            name: self.name.clone(),
            zone: self.zone.clone(),
            profile: self.profile.clone(),
            design_flow_m3_day: self.design_flow_m3_day,
            receiving_water: receiving_water?,
            salinity,
            interval,
            parameters,
            flow_in: self.flow_in.clone(),
            flow_out: self.flow_out.clone().unwrap_or_else(|| "Flow".to_string()),
            modbus: modbus.flatten(),
            mqtt: station_mqtt.flatten(),
            sim: self.sim.clone(),
            facility,
            receiving_water_name,
            regimes,
            location,
            index: key
                .trim_start_matches("station[")
                .trim_end_matches(']')
                .parse()
                .unwrap_or(0),
        })
    }
}

/// A free text key: trimmed; empty, over [`MAX_TEXT`] characters or with a line break or control character is a
/// problem (the report prints it on one line of a form).
fn check_text(p: &mut Problems, key: &str, text: Option<&str>) -> Option<String> {
    let t = text?.trim();
    if t.is_empty() {
        p.push(
            key,
            "must not be empty; leave the key out when it is not known",
        );
        return None;
    }
    if t.chars().count() > MAX_TEXT {
        p.push(
            key,
            format!(
                "is {} characters long; at most {MAX_TEXT} fit on the report",
                t.chars().count()
            ),
        );
        return None;
    }
    if t.chars().any(char::is_control) {
        p.push(
            key,
            "contains a line break or control character; write it on one line",
        );
        return None;
    }
    Some(t.to_string())
}

impl LocationSection {
    fn validate(&self, p: &mut Problems, key: &str) -> Option<Location> {
        if let (Some(lat), Some(lon)) = (self.lat, self.lon) {
            if lat.abs() > 90.0 && lat.abs() <= 180.0 && lon.abs() <= 90.0 {
                p.push(
                    format!("{key}.lat"),
                    format!("{lat} is not a latitude; lat and lon look swapped (lat is the north–south coordinate, about 21 in Bắc Ninh; lon the east–west one, about 106)"),
                );
                return None;
            }
        }
        let lat = coordinate(p, &format!("{key}.lat"), self.lat, 90.0, "latitude", 21.135);
        let lon = coordinate(
            p,
            &format!("{key}.lon"),
            self.lon,
            180.0,
            "longitude",
            106.113,
        );
        Some(Location {
            lat: lat?,
            lon: lon?,
        })
    }
}

/// One coordinate in decimal degrees within `[-max, max]`; a missing or out-of-range one is a problem.
fn coordinate(
    p: &mut Problems,
    key: &str,
    value: Option<f64>,
    max: f64,
    what: &str,
    example: f64,
) -> Option<f64> {
    match value {
        None => {
            p.push(
                key,
                format!("missing; give the {what} in decimal degrees, e.g. {example}"),
            );
            None
        }
        Some(x) if !(x.is_finite() && (-max..=max).contains(&x)) => {
            p.push(
                key,
                format!("{x} is not a {what}; expected decimal degrees from -{max} to {max}"),
            );
            None
        }
        Some(x) => Some(x),
    }
}

impl FacilitySection {
    fn validate(&self, p: &mut Problems, key: &str) -> Facility {
        let text = |p: &mut Problems, name: &str, v: &Option<String>| {
            check_text(p, &format!("{key}.{name}"), v.as_deref())
        };
        let permit_date = self.permit_date.as_deref().and_then(|d| {
            chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                .map_err(|_| {
                    p.push(
                        format!("{key}.permit_date"),
                        format!("{d:?} is not a date; expected yyyy-MM-dd such as \"2023-05-12\""),
                    )
                })
                .ok()
        });
        if self.permit_date.is_some() && self.permit_number.is_none() {
            p.push(
                format!("{key}.permit_date"),
                "a permit date without permit_number; give the permit's number too",
            );
        }
        Facility {
            name: text(p, "name", &self.name),
            operator: text(p, "operator", &self.operator),
            address: text(p, "address", &self.address),
            permit_number: text(p, "permit_number", &self.permit_number),
            permit_date,
            permit_issuer: text(p, "permit_issuer", &self.permit_issuer),
        }
    }
}

impl ReceivingWaterSection {
    fn validate(&self, p: &mut Problems, key: &str) -> Option<ReceivingWater> {
        let positive = |p: &mut Problems, name: &str, v: Option<f64>| {
            if let Some(x) = v {
                if !(x.is_finite() && x >= 0.0) {
                    p.push(
                        format!("{key}.{name}"),
                        format!("{x} is not a non-negative number"),
                    );
                }
            }
        };
        let stray = |p: &mut Problems, name: &str, present: bool| {
            if present {
                p.push(
                    format!("{key}.{name}"),
                    format!("does not apply to receiving water of type {:?}", self.kind),
                );
            }
        };
        match self.kind.as_str() {
            "river" | "stream" | "canal" | "channel" => {
                positive(p, "flow_m3_s", self.flow_m3_s);
                stray(p, "volume_m3", self.volume_m3.is_some());
                stray(p, "use", self.coastal_use.is_some());
                Some(ReceivingWater::River {
                    flow_m3_s: self.flow_m3_s,
                })
            }
            "lake" | "pond" | "marsh" => {
                positive(p, "volume_m3", self.volume_m3);
                stray(p, "flow_m3_s", self.flow_m3_s.is_some());
                stray(p, "use", self.coastal_use.is_some());
                Some(ReceivingWater::Lake {
                    volume_m3: self.volume_m3,
                })
            }
            "coastal" => {
                stray(p, "flow_m3_s", self.flow_m3_s.is_some());
                stray(p, "volume_m3", self.volume_m3.is_some());
                match self.coastal_use.as_deref() {
                    Some("aquatic") => Some(ReceivingWater::Coastal {
                        aquatic_protection: true,
                    }),
                    Some("other") => Some(ReceivingWater::Coastal {
                        aquatic_protection: false,
                    }),
                    other => {
                        p.push(
                            format!("{key}.use"),
                            format!(
                                "{} for coastal water; expected one of aquatic, other",
                                other.map_or("missing".to_string(), |o| format!(
                                    "unknown use {o:?}"
                                ))
                            ),
                        );
                        None
                    }
                }
            }
            "drainage" => {
                stray(p, "flow_m3_s", self.flow_m3_s.is_some());
                stray(p, "volume_m3", self.volume_m3.is_some());
                stray(p, "use", self.coastal_use.is_some());
                Some(ReceivingWater::Drainage)
            }
            other => {
                p.push(
                    format!("{key}.type"),
                    format!("unknown receiving water {other:?}; expected one of river, stream, canal, channel, lake, pond, marsh, coastal, drainage"),
                );
                None
            }
        }
    }

    /// `salinity`, by default fresh (saline for coastal water, which cannot be fresh).
    fn salinity(&self, p: &mut Problems, key: &str, water: Option<&ReceivingWater>) -> Salinity {
        let coastal = matches!(water, Some(ReceivingWater::Coastal { .. }));
        let s = match self.salinity.as_deref() {
            None if coastal => Salinity::Saline,
            None | Some("fresh") => Salinity::Fresh,
            Some("brackish") => Salinity::Brackish,
            Some("saline") => Salinity::Saline,
            Some(other) => {
                p.push(
                    format!("{key}.salinity"),
                    format!("unknown salinity {other:?}; expected one of fresh, brackish, saline"),
                );
                return Salinity::Fresh;
            }
        };
        if coastal && s == Salinity::Fresh {
            p.push(
                format!("{key}.salinity"),
                "coastal water is not fresh; give brackish or saline (or leave it out: saline)",
            );
        }
        s
    }
}

impl ParameterSection {
    fn validate(&self, p: &mut Problems, key: &str, symbol: &str) -> Option<CheckedParameter> {
        let parameter = match Parameter::new(symbol) {
            Ok(x) => x,
            Err(e) => {
                p.push(key, e);
                return None;
            }
        };
        let unit = match (&self.unit, parameter.standard_unit()) {
            (Some(u), _) if !u.trim().is_empty() => Unit::new(u),
            (_, Some(u)) => Unit::new(u),
            _ => {
                p.push(
                    format!("{key}.unit"),
                    format!("custom parameter {symbol:?} needs a unit, e.g. unit = \"mg/L\""),
                );
                return None;
            }
        };
        let range = self.range.map(|[lo, hi]| (lo, hi));
        if let Some((lo, hi)) = range {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                p.push(
                    format!("{key}.range"),
                    format!("[{lo}, {hi}] is not a range; expected [low, high] with low < high"),
                );
            }
        }
        if let Some(problem) = self.limit.as_ref().and_then(LimitText::problem) {
            p.push(format!("{key}.limit"), problem);
        }
        Some(CheckedParameter {
            parameter,
            unit,
            range,
            permit_limit: self.limit.clone(),
        })
    }
}
