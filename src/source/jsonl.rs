//! JSON-lines input: one reading per line, e.g. from a script or another system, used by `quantrac ingest`.
//!
//! `{"station": "BN_KCNQV_NUOC01", "parameter": "COD", "ts": "2026-11-27T10:00:00+07:00", "value": 82.5,
//! "unit": "mg/L", "status": "00"}` — `ts` is RFC 3339 or Unix milliseconds; `unit` defaults to the parameter's
//! standard unit; `status` defaults to `00`. A line that does not parse goes to quarantine with the reason.

use serde::Deserialize;

use crate::model::{
    Parameter, Quarantined, Reading, SourceKind, StationId, Status, Timestamp, Unit,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    station: String,
    parameter: String,
    ts: TsField,
    value: f64,
    unit: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TsField {
    Millis(i64),
    Text(String),
}

/// Parse one line into a reading, or a quarantine entry naming what is wrong.
pub fn parse_line(line: &[u8], origin: &str) -> Result<Reading, Quarantined> {
    let q = |reason: String| Quarantined::new(SourceKind::Api, origin, reason, line.to_vec());
    let l: Line =
        serde_json::from_slice(line).map_err(|e| q(format!("invalid JSON reading: {e}")))?;
    let station = StationId::parse(&l.station).map_err(|e| q(e.to_string()))?;
    let parameter = Parameter::new(&l.parameter).map_err(|e| q(e.to_string()))?;
    let ts = match l.ts {
        TsField::Millis(ms) => Timestamp(ms),
        TsField::Text(t) => chrono::DateTime::parse_from_rfc3339(&t)
            .map(|d| Timestamp::from_datetime(&d))
            .map_err(|e| {
                q(format!(
                    "invalid timestamp {t:?}: {e}; expected RFC 3339 or Unix milliseconds"
                ))
            })?,
    };
    if !l.value.is_finite() {
        return Err(q(format!("value {} is not a finite number", l.value)));
    }
    let status =
        Status::parse(l.status.as_deref().unwrap_or("00")).map_err(|e| q(e.to_string()))?;
    let unit = match (l.unit, parameter.standard_unit()) {
        (Some(u), _) => Unit::new(&u),
        (None, Some(u)) => Unit::new(u),
        (None, None) => Unit::new(""),
    };
    Ok(Reading {
        station,
        parameter,
        ts,
        value: l.value,
        unit,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_line() {
        let r = parse_line(br#"{"station":"BN_A_B","parameter":"COD","ts":"2026-11-27T10:00:00+07:00","value":82.5,"status":"01"}"#, "stdin:1").unwrap();
        assert_eq!(r.ts, Timestamp(1_795_748_400_000));
        assert_eq!(
            (r.value, r.status, r.unit.as_str()),
            (82.5, Status::Calibrating, "mg/L")
        );
    }

    #[test]
    fn bad_lines_are_quarantined_with_reason_and_bytes() {
        let q = parse_line(b"{not json", "stdin:7").unwrap_err();
        assert!(q.reason.starts_with("invalid JSON reading"), "{}", q.reason);
        assert_eq!(q.raw, b"{not json");
        assert_eq!(q.origin, "stdin:7");
        let q = parse_line(
            br#"{"station":"BN","parameter":"COD","ts":1,"value":1}"#,
            "x",
        )
        .unwrap_err();
        assert!(q.reason.contains("Circular 10 form"), "{}", q.reason);
    }
}
