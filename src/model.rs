//! Domain types that cross pipeline stages: station ids, parameters, units, device status, readings.
//!
//! Everything here is plain data with validation; no I/O.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};

/// A model value that failed validation. The message names what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("station id {0:?} is not in Circular 10 form Province_Facility_Station (three non-empty parts of letters, digits or '-', joined by '_')")]
    StationId(String),
    #[error("parameter symbol {0:?} is invalid: expected 1 to 32 characters without whitespace or control characters")]
    Parameter(String),
    #[error("device status {0:?} is unknown: expected 00 (measuring), 01 (calibrating), 02 (fault) or 03 (maintenance)")]
    Status(String),
}

/// Station id in Circular 10/2021 form `Province_Facility_Station`, e.g. `BN_KCNQV_NUOC01`.
/// Cheap to clone: readings carry it by reference count.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StationId(Arc<str>);

impl StationId {
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        let parts: Vec<&str> = s.split('_').collect();
        let part_ok =
            |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if parts.len() == 3 && parts.iter().all(part_ok) {
            Ok(Self(Arc::from(s)))
        } else {
            Err(ModelError::StationId(s.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn part(&self, i: usize) -> &str {
        self.0.split('_').nth(i).unwrap_or_default()
    }
    /// Province code (first part), e.g. `BN`.
    pub fn province(&self) -> &str {
        self.part(0)
    }
    /// Facility code (second part), e.g. `KCNQV`.
    pub fn facility(&self) -> &str {
        self.part(1)
    }
    /// Station code within the facility (third part), e.g. `NUOC01`.
    pub fn station(&self) -> &str {
        self.part(2)
    }
}

impl fmt::Display for StationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for StationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StationId({})", self.0)
    }
}

/// The Circular 10/2021 Table 34 water parameters with their usual units.
pub const WATER_PARAMETERS: [(&str, &str); 11] = [
    ("Flow", "m3/h"),
    ("Temp", "°C"),
    ("Color", "Pt/Co"),
    ("pH", "-"),
    ("TSS", "mg/L"),
    ("COD", "mg/L"),
    ("NH4", "mg/L"),
    ("TP", "mg/L"),
    ("TN", "mg/L"),
    ("TOC", "mg/L"),
    ("Cl", "mg/L"),
];

/// A monitored parameter, named by its Circular 10 symbol (`COD`, `pH`, …) or a custom symbol declared in config.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Parameter(Arc<str>);

impl Parameter {
    pub fn new(symbol: &str) -> Result<Self, ModelError> {
        let ok = !symbol.is_empty()
            && symbol.chars().count() <= 32
            && !symbol.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(Self(Arc::from(symbol)))
        } else {
            Err(ModelError::Parameter(symbol.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The usual unit of a standard water parameter, if this is one.
    pub fn standard_unit(&self) -> Option<&'static str> {
        WATER_PARAMETERS
            .iter()
            .find(|(s, _)| *s == &*self.0)
            .map(|(_, u)| *u)
    }
}

/// Look a configured parameter up by its symbol (the hash and equality are those of the symbol).
impl std::borrow::Borrow<str> for Parameter {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Parameter({})", self.0)
    }
}

/// A unit of measure as written by the station (`mg/L`, `°C`, `m3/h`, `-`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Unit(Arc<str>);

impl Unit {
    pub fn new(s: &str) -> Self {
        Self(Arc::from(s.trim()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Device status that travels with every reading (Circular 10/2021 codes).
/// Only `Measuring` readings count for compliance; all are stored and exported.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Status {
    Measuring = 0,
    Calibrating = 1,
    Fault = 2,
    /// `03`: seen in some dataloggers, not in the Circular. Accepted on input, never emitted in TT10 files.
    Maintenance = 3,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Measuring,
        Status::Calibrating,
        Status::Fault,
        Status::Maintenance,
    ];
    /// Parse a Circular 10 status code (`00`, `01`, `02`, `03`; a single digit is accepted too).
    pub fn from_code(code: &str) -> Result<Self, ModelError> {
        match code.trim() {
            "00" | "0" => Ok(Status::Measuring),
            "01" | "1" => Ok(Status::Calibrating),
            "02" | "2" => Ok(Status::Fault),
            "03" | "3" => Ok(Status::Maintenance),
            other => Err(ModelError::Status(other.to_string())),
        }
    }
    /// Parse a status written as a code or a name (`measuring`, `calibrating`, `fault`, `maintenance`).
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        let t = s.trim();
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(t))
            .map_or_else(|| Self::from_code(t), Ok)
    }
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }
    pub fn code(self) -> &'static str {
        ["00", "01", "02", "03"][self as usize]
    }
    pub fn as_str(self) -> &'static str {
        ["measuring", "calibrating", "fault", "maintenance"][self as usize]
    }
    pub fn counts_for_compliance(self) -> bool {
        self == Status::Measuring
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// UTC instant in milliseconds since the Unix epoch: what the ledger stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }
    pub fn from_datetime<Tz: TimeZone>(dt: &DateTime<Tz>) -> Self {
        Self(dt.timestamp_millis())
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn to_utc(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }
    pub fn to_local(self, tz: FixedOffset) -> DateTime<FixedOffset> {
        self.to_utc().with_timezone(&tz)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::from_timestamp_millis(self.0) {
            Some(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
            // Beyond what a calendar date can show (a corrupt clock or field): say what it is.
            None => write!(f, "{} ms from 1970-01-01T00:00:00Z", self.0),
        }
    }
}

/// Where a reading or a quarantined input came from. A small fixed set, used as a metric label.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SourceKind {
    Modbus,
    Mqtt,
    Tt10,
    Sim,
    Api,
}

impl SourceKind {
    pub const ALL: [SourceKind; 5] = [
        SourceKind::Modbus,
        SourceKind::Mqtt,
        SourceKind::Tt10,
        SourceKind::Sim,
        SourceKind::Api,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Modbus => "modbus",
            SourceKind::Mqtt => "mqtt",
            SourceKind::Tt10 => "tt10",
            SourceKind::Sim => "sim",
            SourceKind::Api => "api",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One measured value as a source delivers it, before quality checks and compliance evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub station: StationId,
    pub parameter: Parameter,
    pub ts: Timestamp,
    pub value: f64,
    pub unit: Unit,
    pub status: Status,
}

/// A reading's value and unit as the station sent them, kept beside the stored ones when the unit was converted
/// to the parameter's unit or spelt another way (DESIGN.md contract 9).
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub value: f64,
    pub unit: Unit,
}

/// Input that could not become a reading: kept with its raw bytes and the reason, never dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct Quarantined {
    pub source: SourceKind,
    /// Where exactly it came from: a topic, a file name, `host:port/unit/register`.
    pub origin: String,
    /// The station, when the source could tell.
    pub station: Option<String>,
    pub reason: String,
    pub raw: Vec<u8>,
    pub received: Timestamp,
}

impl Quarantined {
    pub fn new(
        source: SourceKind,
        origin: impl Into<String>,
        reason: impl Into<String>,
        raw: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            source,
            origin: origin.into(),
            station: None,
            reason: reason.into(),
            raw: raw.into(),
            received: Timestamp::now(),
        }
    }
    pub fn with_station(mut self, station: impl Into<String>) -> Self {
        self.station = Some(station.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn station_id_has_three_parts() {
        let id = StationId::parse("BN_KCNQV_NUOC01").unwrap();
        assert_eq!(
            (id.province(), id.facility(), id.station()),
            ("BN", "KCNQV", "NUOC01")
        );
        for bad in ["", "BN_KCNQV", "BN__NUOC01", "BN_KCN QV_N1", "BN_A_B_C"] {
            assert!(StationId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn status_codes_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Ok(s));
            assert_eq!(Status::parse(s.as_str()), Ok(s));
            assert_eq!(Status::from_u8(s as u8), Some(s));
        }
        assert!(Status::from_code("04").is_err());
    }

    #[test]
    fn standard_units() {
        assert_eq!(Parameter::new("COD").unwrap().standard_unit(), Some("mg/L"));
        assert_eq!(Parameter::new("Zn").unwrap().standard_unit(), None);
        assert!(Parameter::new("a b").is_err());
    }
}
