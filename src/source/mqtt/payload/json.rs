//! `format = "json"`: one object per message, read through the broker's [`JsonMappingSection`]. Flat
//! `{"ts": "2026-11-27T10:00:00+07:00", "status": "00", "COD": 82.5}` or nested
//! `{"time": …, "values": {"COD": {"v": 82.5, "s": "00"}}}`; timestamps in RFC 3339, Unix s/ms or TT10 local time.
//! The mapping (`[mqtt.broker.json]`) is this format's own settings table, so it lives here.

use chrono::FixedOffset;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::json_tree::{Node, Object};
use super::{utf8, Context, Decoded, Format, PayloadError, Rejected};
use crate::model::{Parameter, Reading, Status, Timestamp, Unit};
use crate::circular10::{format_tt10_time, parse_decimal, tt10_time};

/// The JSON format.
pub struct Json;

impl Format for Json {
    fn decode(mapping: &JsonMappingSection, payload: &[u8], cx: &Context<'_>) -> Decoded {
        decode_json(mapping, payload, cx)
    }
}

/// JSON payload mapping. Paths are dot-separated keys. The default reads a flat object
/// `{"ts": "2026-11-27T10:00:00+07:00", "status": "00", "COD": 82.5, …}`; the nested form
/// `{"time": …, "values": {"COD": {"v": 82.5, "s": "00"}}}` is `timestamp = "time"`, `values = "values"`,
/// `value_key = "v"`, `status_key = "s"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JsonMappingSection {
    #[serde(default = "default_ts_path")]
    pub timestamp: String,
    /// `rfc3339`, `epoch_s`, `epoch_ms` or `tt10` (`yyyyMMddHHmmss`, local time).
    #[serde(default = "default_ts_format")]
    pub timestamp_format: String,
    /// Message-wide status path (optional).
    #[serde(default = "default_status_path")]
    pub status: String,
    /// Object holding the parameters; empty = the top level.
    #[serde(default)]
    pub values: String,
    /// When each parameter is an object: key of its value and of its status.
    pub value_key: Option<String>,
    pub status_key: Option<String>,
}

fn default_ts_path() -> String {
    "ts".into()
}
fn default_ts_format() -> String {
    "rfc3339".into()
}
fn default_status_path() -> String {
    "status".into()
}

impl Default for JsonMappingSection {
    fn default() -> Self {
        Self {
            timestamp: default_ts_path(),
            timestamp_format: default_ts_format(),
            status: default_status_path(),
            values: String::new(),
            value_key: None,
            status_key: None,
        }
    }
}

/// How a JSON payload writes its timestamp (`json.timestamp_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampFormat {
    /// `2026-11-27T10:00:00+07:00`
    Rfc3339,
    /// Unix seconds (fractions allowed).
    EpochS,
    /// Unix milliseconds.
    EpochMs,
    /// Circular 10 `yyyyMMddHHmmss`, local time.
    Tt10,
}

impl TimestampFormat {
    pub const NAMES: &'static str = "rfc3339, epoch_s, epoch_ms, tt10";
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rfc3339" => Some(Self::Rfc3339),
            "epoch_s" => Some(Self::EpochS),
            "epoch_ms" => Some(Self::EpochMs),
            "tt10" => Some(Self::Tt10),
            _ => None,
        }
    }
}

impl JsonMappingSection {
    /// The checked timestamp format (validation has refused unknown names; RFC 3339 otherwise).
    pub fn timestamp_format(&self) -> TimestampFormat {
        TimestampFormat::parse(&self.timestamp_format).unwrap_or(TimestampFormat::Rfc3339)
    }
}

/// Decode a JSON message through `mapping`.
pub fn decode_json(mapping: &JsonMappingSection, payload: &[u8], cx: &Context<'_>) -> Decoded {
    match json_message(mapping, payload, cx) {
        Ok(d) => d,
        Err(e) => Decoded::whole(e, payload),
    }
}

fn json_message(
    mapping: &JsonMappingSection,
    payload: &[u8],
    cx: &Context<'_>,
) -> Result<Decoded, PayloadError> {
    let text = utf8(payload)?;
    let root = Node::parse(text).map_err(|e| PayloadError::Json(e.to_string()))?;
    if !root.is_object() {
        return Err(PayloadError::NotObject(type_name(&root)));
    }
    let ts_value = lookup(&root, &mapping.timestamp)
        .ok_or_else(|| PayloadError::MissingTimestamp(mapping.timestamp.clone()))?;
    let ts = parse_timestamp(ts_value, mapping.timestamp_format(), cx.tz)?;
    let status = match lookup(&root, &mapping.status) {
        Some(v) if !mapping.status.is_empty() => parse_status(v)?,
        _ => Status::Measuring,
    };
    let values = if mapping.values.is_empty() {
        &root
    } else {
        lookup(&root, &mapping.values)
            .ok_or_else(|| PayloadError::MissingValues(mapping.values.clone()))?
    };
    let Node::Object(entries) = values else {
        return Err(PayloadError::ValuesNotObject(mapping.values.clone()));
    };
    // In the flat form the timestamp and status keys sit beside the parameters.
    let skip = |k: &str| {
        mapping.values.is_empty()
            && (k == first_key(&mapping.timestamp) || k == first_key(&mapping.status))
    };
    let mut out = Decoded::default();
    for (key, entry) in entries.iter().filter(|(k, _)| !skip(k)) {
        match json_entry(mapping, key, entry, status, cx) {
            Ok(((parameter, unit), value, status)) => out.readings.push(Reading {
                station: cx.station.clone(),
                unit,
                parameter,
                ts,
                value,
                status,
            }),
            Err(error) => out.rejected.push(Rejected {
                error,
                raw: Object::single_to_json(key, entry).into_bytes(),
            }),
        }
    }
    if out.readings.is_empty() && out.rejected.is_empty() {
        return Err(PayloadError::NoValues);
    }
    Ok(out)
}

fn json_entry(
    mapping: &JsonMappingSection,
    key: &str,
    entry: &Node<'_>,
    status: Status,
    cx: &Context<'_>,
) -> Result<((Parameter, Unit), f64, Status), PayloadError> {
    let (parameter, unit) = match cx.configured.and_then(|c| c.get_key_value(key)) {
        Some((p, u)) => (p.clone(), u.clone()),
        None => {
            let p = Parameter::new(key)?;
            let u = (cx.unit_of)(&p);
            (p, u)
        }
    };
    let (value, status) = match (entry, &mapping.value_key) {
        (Node::Object(o), Some(vk)) => {
            let v = o.get(vk).ok_or_else(|| PayloadError::MissingValue {
                parameter: key.to_string(),
                key: vk.clone(),
            })?;
            let s = match mapping.status_key.as_ref().and_then(|sk| o.get(sk)) {
                Some(s) => parse_status(s)?,
                None => status,
            };
            (v, s)
        }
        (v, _) => (v, status),
    };
    Ok(((parameter, unit), parse_value(key, value)?, status))
}

fn first_key(path: &str) -> &str {
    path.split('.').next().unwrap_or_default()
}

/// The value at a dot-separated path; the empty path is the root.
fn lookup<'v, 'a>(root: &'v Node<'a>, path: &str) -> Option<&'v Node<'a>> {
    if path.is_empty() {
        return Some(root);
    }
    path.split('.').try_fold(root, |v, k| v.get(k))
}

fn type_name(v: &Node<'_>) -> &'static str {
    match v {
        Node::Null => "null",
        Node::Bool(_) => "a boolean",
        Node::Number(_) => "a number",
        Node::String(_) => "a string",
        Node::Array(_) => "an array",
        Node::Object(_) => "an object",
    }
}

/// A number, or a string holding one (`"82.5"`, `"7,2"`).
fn parse_value(parameter: &str, v: &Node<'_>) -> Result<f64, PayloadError> {
    let x = match v {
        Node::Number(n) => n.as_f64(),
        Node::String(s) => parse_decimal(s),
        _ => None,
    };
    x.filter(|x| x.is_finite())
        .ok_or_else(|| PayloadError::Value {
            parameter: parameter.to_string(),
            found: match v {
                Node::String(_) | Node::Number(_) => v.to_string(),
                other => type_name(other).to_string(),
            },
        })
}

fn parse_status(v: &Node<'_>) -> Result<Status, PayloadError> {
    match v {
        Node::String(s) => Status::parse(s).map_err(|_| PayloadError::Status(v.to_string())),
        Node::Number(n) => n
            .as_u64()
            .and_then(|x| u8::try_from(x).ok())
            .and_then(Status::from_u8)
            .ok_or_else(|| PayloadError::Status(v.to_string())),
        other => Err(PayloadError::Status(type_name(other).to_string())),
    }
}

/// Parse a JSON timestamp in the configured format.
fn parse_timestamp(
    v: &Node<'_>,
    format: TimestampFormat,
    tz: FixedOffset,
) -> Result<Timestamp, PayloadError> {
    let bad = |expected| PayloadError::Timestamp {
        value: v.to_string(),
        expected,
    };
    let ms = match format {
        TimestampFormat::Rfc3339 => v
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s.trim()).ok())
            .map(|d| d.timestamp_millis()),
        TimestampFormat::EpochS => number(v).map(|s| (s * 1000.0).round()).and_then(to_ms),
        TimestampFormat::EpochMs => number(v).map(f64::round).and_then(to_ms),
        TimestampFormat::Tt10 => match v {
            Node::String(s) => tt10_time(s, tz),
            Node::Number(n) => n.as_u64().and_then(|x| tt10_time(&x.to_string(), tz)),
            _ => None,
        }
        .map(Timestamp::millis),
    };
    let expected = match format {
        TimestampFormat::Rfc3339 => "an RFC 3339 time such as \"2026-11-27T10:00:00+07:00\"",
        TimestampFormat::EpochS => "Unix seconds",
        TimestampFormat::EpochMs => "Unix milliseconds",
        TimestampFormat::Tt10 => "a local time yyyyMMddHHmmss such as \"20261127100000\"",
    };
    ms.filter(|ms| chrono::DateTime::from_timestamp_millis(*ms).is_some())
        .map(Timestamp)
        .ok_or_else(|| bad(expected))
}

fn number(v: &Node<'_>) -> Option<f64> {
    match v {
        Node::Number(n) => n.as_f64(),
        Node::String(s) => parse_decimal(s),
        _ => None,
    }
}

fn to_ms(x: f64) -> Option<i64> {
    // Within ±100,000 years: also keeps the cast exact.
    (x.is_finite() && x.abs() < 3.2e18 / 1000.0).then_some(x as i64)
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder (simulator, benchmark, tests)

/// Encode readings taken at one time as JSON messages in the `mapping`'s shape. A flat mapping carries one status
/// per message, so readings with different statuses go into separate messages (or use a `status_key`).
pub fn encode_json(
    mapping: &JsonMappingSection,
    readings: &[Reading],
    tz: FixedOffset,
) -> Vec<Vec<u8>> {
    let per_value_status = mapping.value_key.is_some() && mapping.status_key.is_some();
    let mut groups: Vec<(Timestamp, Status, Vec<&Reading>)> = Vec::new();
    for r in readings {
        let status = if per_value_status {
            Status::Measuring
        } else {
            r.status
        };
        match groups
            .iter_mut()
            .find(|(t, s, _)| *t == r.ts && *s == status)
        {
            Some((_, _, g)) => g.push(r),
            None => groups.push((r.ts, status, vec![r])),
        }
    }
    groups
        .into_iter()
        .map(|(ts, status, rs)| {
            let mut root = Value::Object(Map::new());
            let ts_value = match mapping.timestamp_format() {
                TimestampFormat::Rfc3339 => Value::from(
                    ts.to_local(tz)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
                ),
                TimestampFormat::EpochS => Value::from(ts.millis() as f64 / 1000.0),
                TimestampFormat::EpochMs => Value::from(ts.millis()),
                TimestampFormat::Tt10 => Value::from(format_tt10_time(ts, tz)),
            };
            set_path(&mut root, &mapping.timestamp, ts_value);
            if !per_value_status && !mapping.status.is_empty() {
                set_path(&mut root, &mapping.status, Value::from(status.code()));
            }
            let mut values = Map::new();
            for r in rs {
                let v = Value::from(r.value);
                let entry = match (&mapping.value_key, &mapping.status_key) {
                    (Some(vk), sk) => {
                        let mut o = Map::new();
                        o.insert(vk.clone(), v);
                        if let Some(sk) = sk {
                            o.insert(sk.clone(), Value::from(r.status.code()));
                        }
                        Value::Object(o)
                    }
                    (None, _) => v,
                };
                values.insert(r.parameter.as_str().to_string(), entry);
            }
            if mapping.values.is_empty() {
                if let Value::Object(o) = &mut root {
                    o.extend(values);
                }
            } else {
                set_path(&mut root, &mapping.values, Value::Object(values));
            }
            root.to_string().into_bytes()
        })
        .collect()
}

fn set_path(root: &mut Value, path: &str, v: Value) {
    let mut keys = path.split('.').peekable();
    let mut at = root;
    while let Some(k) = keys.next() {
        let Value::Object(o) = at else { return };
        if keys.peek().is_none() {
            o.insert(k.to_string(), v);
            return;
        }
        at = o
            .entry(k.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}
