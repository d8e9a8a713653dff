//! Ledger rows → line protocol, following the schema in DESIGN.md.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use super::line_protocol::{encode, push_float, push_int, Field, LineError};
use crate::ledger::forward::{AggregateRow, AlertRow, EventRow, ReadingRow, WithdrawnRow};
use crate::model::Status;

/// Encodes readings, keeping the escaped `measurement,tags` prefix of every series it has seen: most of a line's
/// cost is its tags, and a forwarder sees the same few hundred series again and again.
#[derive(Default)]
pub struct ReadingEncoder {
    prefixes: FxHashMap<(i64, i64, Status), String>,
}

impl ReadingEncoder {
    pub fn line(&mut self, r: &ReadingRow, out: &mut String) -> Result<(), LineError> {
        if !r.value.is_finite() {
            return Err(LineError::NotFinite {
                field: "value".into(),
                value: r.value,
            });
        }
        let prefix = self
            .prefixes
            .entry((r.station_id, r.parameter_id, r.status))
            .or_insert_with(|| {
                // The tag part of a full line, cut before the first field.
                let mut full = String::new();
                let probe = ReadingRow {
                    value: 0.0,
                    limit_low: None,
                    limit_high: None,
                    ratio: None,
                    ts: 0,
                    ..r.clone()
                };
                let _ = reading_line(&probe, &mut full);
                full.truncate(full.rfind(" value=").unwrap_or(full.len()));
                full
            });
        out.push_str(prefix);
        out.push_str(" value=");
        push_float(r.value, out);
        let mut field = |name: &str, x: f64| {
            if !x.is_finite() {
                return Err(LineError::NotFinite {
                    field: name.into(),
                    value: x,
                });
            }
            out.push(',');
            out.push_str(name);
            out.push('=');
            push_float(x, out);
            Ok(())
        };
        match (r.limit_low, r.limit_high) {
            (Some(lo), Some(hi)) => {
                field("low", lo)?;
                field("high", hi)?;
            }
            (None, Some(max)) => {
                field("limit", max)?;
                if let Some(ratio) = r.ratio {
                    field("ratio", ratio)?;
                }
            }
            _ => {}
        }
        out.push(' ');
        push_int(r.ts, out);
        Ok(())
    }
}

/// `reading,station=…,facility=…,province=…,parameter=…,status=… value=…[,limit=…,ratio=…|,low=…,high=…] <ts>`
pub fn reading_line(r: &ReadingRow, out: &mut String) -> Result<(), LineError> {
    let mut parts = r.station.splitn(3, '_');
    let province = parts.next().unwrap_or_default();
    let facility = parts.next().unwrap_or_default();
    let tags = [
        ("station", &*r.station),
        ("facility", facility),
        ("province", province),
        ("parameter", &*r.parameter),
        ("status", r.status.as_str()),
    ];
    let mut fields = vec![("value", Field::Float(r.value))];
    match (r.limit_low, r.limit_high) {
        (Some(lo), Some(hi)) => {
            fields.push(("low", Field::Float(lo)));
            fields.push(("high", Field::Float(hi)));
        }
        (None, Some(max)) => {
            fields.push(("limit", Field::Float(max)));
            if let Some(ratio) = r.ratio {
                fields.push(("ratio", Field::Float(ratio)));
            }
        }
        _ => {}
    }
    encode("reading", &tags, &fields, r.ts, out)
}

/// `hourly,station=…,parameter=… mean=…,min=…,max=…,valid=<i>,expected=<i>,completeness=…,ratio=…,band="…" <start>`
/// (measurement `daily` for day windows).
pub fn aggregate_line(a: &AggregateRow, out: &mut String) -> Result<(), LineError> {
    let measurement = if a.window_ms == 86_400_000 {
        "daily"
    } else {
        "hourly"
    };
    let tags = [
        ("station", a.station.as_str()),
        ("parameter", a.parameter.as_str()),
    ];
    let mut fields = Vec::with_capacity(8);
    for (k, v) in [("mean", a.mean), ("min", a.min), ("max", a.max)] {
        if let Some(x) = v {
            fields.push((k, Field::Float(x)));
        }
    }
    fields.push(("valid", Field::Int(a.valid)));
    fields.push(("expected", Field::Int(a.expected)));
    fields.push(("completeness", Field::Float(a.completeness)));
    if let Some(r) = a.ratio {
        fields.push(("ratio", Field::Float(r)));
    }
    fields.push(("band", Field::Str(&a.band)));
    encode(measurement, &tags, &fields, a.window_start, out)
}

/// `event,station=…,parameter=…,scope=… state="open|closed",band="…",peak_band="…",peak_ratio=…,last=<i>[,end=<i>,duration_s=<i>] <start>`:
/// one point per event, rewritten as it evolves. `state` is a field, not a tag, so the closing write lands on the
/// same series and time and replaces the open point instead of starting a second series beside it.
pub fn event_line(e: &EventRow, out: &mut String) -> Result<(), LineError> {
    let state = if e.end.is_some() { "closed" } else { "open" };
    let tags = [
        ("station", e.station.as_str()),
        ("parameter", e.parameter.as_str()),
        ("scope", e.scope.as_str()),
    ];
    let mut fields = vec![
        ("state", Field::Str(state)),
        ("band", Field::Str(&e.band)),
        ("peak_band", Field::Str(&e.peak_band)),
    ];
    if let Some(r) = e.peak_ratio {
        fields.push(("peak_ratio", Field::Float(r)));
    }
    fields.push(("last", Field::Int(e.last)));
    if let Some(end) = e.end {
        fields.push(("end", Field::Int(end)));
        fields.push(("duration_s", Field::Int((end - e.start) / 1000)));
    }
    fields.push(("withdrawn", Field::Int(0)));
    encode("event", &tags, &fields, e.start, out)
}

/// `alert,station=…,parameter=…,kind=…,state=raised|acknowledged|cleared severity="…",message="…"[,value=…][,multiple=…][,peak_multiple=…][,band="…"],since=<ms>i,last_bad=<ms>i,late=0|1i,alert_id=<i> <ts>`
/// (DESIGN.md): one point per change of state, at the time of the change — the observation that decided a raise or
/// a clear (late data lands at its true time), the wall time of an acknowledgement. `parameter` is the alert's
/// subject (a parameter, `COD:completeness`, or a forwarder's name); daemon-wide alerts have no `station` tag.
///
/// Value updates of an open alert are not points of their own: the alert's row is sent again and rewrites its
/// state's point (same series and time, so InfluxDB keeps the last write), so the `raised` point carries the latest
/// value, multiple, peak and last bad observation while the alert is open, and keeps the last of them after.
pub fn alert_line(a: &AlertRow, out: &mut String) -> Result<(), LineError> {
    let tags = [
        ("station", a.station.as_str()),
        ("parameter", a.subject.as_str()),
        ("kind", a.kind.as_str()),
        ("state", a.state.as_str()),
    ];
    let message = if a.note.is_empty() {
        format!("{} {} {}", a.kind, a.subject, a.state)
    } else {
        a.note.clone()
    };
    let mut fields = vec![
        ("severity", Field::Str(&a.severity)),
        ("message", Field::Str(&message)),
    ];
    if let Some(v) = a.value {
        fields.push(("value", Field::Float(v)));
    }
    if let Some(m) = a.multiple {
        fields.push(("multiple", Field::Float(m)));
    }
    if let Some(m) = a.peak_multiple {
        fields.push(("peak_multiple", Field::Float(m)));
    }
    if !a.band.is_empty() {
        fields.push(("band", Field::Str(&a.band)));
    }
    fields.push(("since", Field::Int(a.since)));
    fields.push(("last_bad", Field::Int(a.last_bad)));
    fields.push(("late", Field::Int(i64::from(a.late))));
    fields.push(("alert_id", Field::Int(a.id)));
    fields.push(("withdrawn", Field::Int(0)));
    encode("alert", &tags, &fields, a.at, out)
}

/// `event,station=…,parameter=…,scope=… withdrawn=1i <start>` or `alert,station=…,parameter=…,kind=…,state=…
/// withdrawn=1i <ts>`: a point an earlier write made that no row holds any more (an event merged away when late data
/// re-derived its span, an alert whose raise moved or that the complete data no longer shows). InfluxDB's write API
/// cannot delete a point, so it is marked: a query keeps `withdrawn = 0`. Every event and alert write carries
/// `withdrawn=0i`, so a point written again stands again.
pub fn withdrawn_line(w: &WithdrawnRow, out: &mut String) -> Result<(), LineError> {
    let fields = [("withdrawn", Field::Int(1))];
    if w.measurement == "event" {
        let tags = [
            ("station", w.station.as_str()),
            ("parameter", w.parameter.as_str()),
            ("scope", w.series.as_str()),
        ];
        return encode("event", &tags, &fields, w.ts, out);
    }
    let tags = [
        ("station", w.station.as_str()),
        ("parameter", w.parameter.as_str()),
        ("kind", w.series.as_str()),
        ("state", w.state.as_str()),
    ];
    encode("alert", &tags, &fields, w.ts, out)
}

/// Tag keys and field keys of one measurement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeasurementKeys {
    pub tags: BTreeSet<String>,
    pub fields: BTreeSet<String>,
}

/// Every measurement, tag key and field key the encoders write, by measurement. Found by encoding a sample of each
/// line shape (a reading with a maximum, with a range and without a limit; hour and day windows; open and closed
/// events) and reading the keys back, so it cannot drift from the encoders. Dashboards are checked against it
/// (`tests/deploy.rs`): a new measurement or line shape (e.g. DESIGN.md's `alert`) adds its samples here.
pub fn schema() -> BTreeMap<String, MeasurementKeys> {
    let reading = |limit_low, limit_high, ratio| ReadingRow {
        seq: 1,
        station_id: 1,
        parameter_id: 1,
        station: "BN_KCNQV_NUOC01".into(),
        parameter: "COD".into(),
        ts: 0,
        value: 1.0,
        status: Status::Measuring,
        limit_low,
        limit_high,
        ratio,
    };
    let aggregate = |window_ms, some: Option<f64>| AggregateRow {
        change_seq: 1,
        station: "BN_KCNQV_NUOC01".into(),
        parameter: "COD".into(),
        window_ms,
        window_start: 0,
        mean: some,
        min: some,
        max: some,
        valid: 1,
        expected: 12,
        completeness: 1.0 / 12.0,
        ratio: some,
        band: "compliant".into(),
    };
    let event = |end: Option<i64>, peak_ratio| EventRow {
        change_seq: 1,
        station: "BN_KCNQV_NUOC01".into(),
        parameter: "COD".into(),
        scope: "instant".into(),
        start: 0,
        end,
        last: 0,
        band: "1_1_to_1_5".into(),
        peak_band: "1_1_to_1_5".into(),
        peak_ratio,
    };
    let alert = |station: &str, multiple: Option<f64>, band: &str| AlertRow {
        change_seq: 1,
        id: 1,
        station: station.into(),
        subject: "COD".into(),
        kind: "violation".into(),
        severity: "violation".into(),
        state: "raised".into(),
        at: 0,
        since: 0,
        last_bad: 0,
        value: multiple.map(|m| m * 150.0),
        multiple,
        peak_multiple: multiple,
        band: band.into(),
        note: String::new(),
        late: false,
    };
    let mut lines = Vec::new();
    let mut push = |f: &dyn Fn(&mut String) -> Result<(), LineError>| {
        let mut line = String::new();
        if f(&mut line).is_ok() {
            lines.push(line);
        }
    };
    for r in [
        reading(None, Some(100.0), Some(0.5)),
        reading(Some(5.5), Some(9.0), None),
        reading(None, None, None),
    ] {
        push(&|out| reading_line(&r, out));
    }
    for a in [
        aggregate(3_600_000, Some(1.0)),
        aggregate(3_600_000, None),
        aggregate(86_400_000, Some(1.0)),
    ] {
        push(&|out| aggregate_line(&a, out));
    }
    for e in [event(None, Some(1.2)), event(Some(60_000), Some(1.2))] {
        push(&|out| event_line(&e, out));
    }
    for a in [
        alert("BN_KCNQV_NUOC01", Some(1.2), "1_1_to_1_5"),
        alert("", None, ""),
    ] {
        push(&|out| alert_line(&a, out));
    }
    let mut schema: BTreeMap<String, MeasurementKeys> = BTreeMap::new();
    for line in &lines {
        if let Some(k) = super::line_protocol::keys(line) {
            let m = schema.entry(k.measurement).or_default();
            m.tags.extend(k.tags);
            m.fields.extend(k.fields);
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    #[test]
    fn schema_lists_what_the_encoders_write() {
        let s = schema();
        let names = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(",");
        assert_eq!(
            s.keys().cloned().collect::<Vec<_>>(),
            ["alert", "daily", "event", "hourly", "reading"]
        );
        assert_eq!(
            names(&s["reading"].tags),
            "facility,parameter,province,station,status"
        );
        assert_eq!(names(&s["reading"].fields), "high,limit,low,ratio,value");
        assert_eq!(names(&s["hourly"].tags), "parameter,station");
        assert_eq!(
            names(&s["hourly"].fields),
            "band,completeness,expected,max,mean,min,ratio,valid"
        );
        assert_eq!(names(&s["event"].tags), "parameter,scope,station");
        assert_eq!(
            names(&s["event"].fields),
            "band,duration_s,end,last,peak_band,peak_ratio,state,withdrawn"
        );
    }

    #[test]
    fn keys_of_escaped_lines() {
        let k = crate::forward::line_protocol::keys(r#"m\ x,t\,a=v\ 1,u=2 f\=g="a b,c=d",h=1i 5"#)
            .unwrap();
        assert_eq!(k.measurement, "m x");
        assert_eq!(k.tags, ["t,a", "u"]);
        assert_eq!(k.fields, ["f=g", "h"]);
    }

    #[test]
    fn reading_with_max_limit() {
        let r = ReadingRow {
            seq: 1,
            station_id: 1,
            parameter_id: 1,
            station: "BN_KCNQV_NUOC01".into(),
            parameter: "COD".into(),
            ts: 1_795_748_400_000,
            value: 140.0,
            status: Status::Measuring,
            limit_low: None,
            limit_high: Some(135.0),
            ratio: Some(1.037),
        };
        let mut s = String::new();
        reading_line(&r, &mut s).unwrap();
        assert_eq!(
            s,
            "reading,facility=KCNQV,parameter=COD,province=BN,station=BN_KCNQV_NUOC01,status=measuring value=140,limit=135,ratio=1.037 1795748400000"
        );
        // The cached-prefix encoder writes the same bytes, twice over.
        let mut enc = ReadingEncoder::default();
        for _ in 0..2 {
            let mut t = String::new();
            enc.line(&r, &mut t).unwrap();
            assert_eq!(t, s);
        }
    }

    #[test]
    fn ph_carries_low_and_high() {
        let r = ReadingRow {
            seq: 1,
            station_id: 1,
            parameter_id: 2,
            station: "BN_A_B".into(),
            parameter: "pH".into(),
            ts: 0,
            value: 7.2,
            status: Status::Calibrating,
            limit_low: Some(5.5),
            limit_high: Some(9.0),
            ratio: None,
        };
        let mut s = String::new();
        reading_line(&r, &mut s).unwrap();
        assert_eq!(s, "reading,facility=A,parameter=pH,province=BN,station=BN_A_B,status=calibrating value=7.2,low=5.5,high=9 0");
        let mut t = String::new();
        ReadingEncoder::default().line(&r, &mut t).unwrap();
        assert_eq!(t, s);
    }

    #[test]
    fn withdrawn_points_carry_only_the_mark() {
        let w = |measurement: &str, state: &str| WithdrawnRow {
            seq: 1,
            measurement: measurement.into(),
            station: "BN_A_B".into(),
            parameter: "COD".into(),
            series: if measurement == "event" {
                "instant"
            } else {
                "exceedance"
            }
            .into(),
            state: state.into(),
            ts: 5,
            held: false,
        };
        let mut s = String::new();
        withdrawn_line(&w("event", ""), &mut s).unwrap();
        assert_eq!(
            s,
            "event,parameter=COD,scope=instant,station=BN_A_B withdrawn=1i 5"
        );
        s.clear();
        withdrawn_line(&w("alert", "raised"), &mut s).unwrap();
        assert_eq!(
            s,
            "alert,kind=exceedance,parameter=COD,state=raised,station=BN_A_B withdrawn=1i 5"
        );
    }

    #[test]
    fn closed_event() {
        let e = EventRow {
            change_seq: 3,
            station: "BN_A_B".into(),
            parameter: "COD".into(),
            scope: "window_3600000".into(),
            start: 1_000_000,
            end: Some(4_600_000),
            last: 1_000_000,
            band: "1_1_to_1_5".into(),
            peak_band: "1_5_to_3".into(),
            peak_ratio: Some(1.6),
        };
        let mut s = String::new();
        event_line(&e, &mut s).unwrap();
        assert_eq!(
            s,
            "event,parameter=COD,scope=window_3600000,station=BN_A_B state=\"closed\",band=\"1_1_to_1_5\",peak_band=\"1_5_to_3\",peak_ratio=1.6,last=1000000i,end=4600000i,duration_s=3600i,withdrawn=0i 1000000"
        );
    }

    #[test]
    fn hourly_aggregate() {
        let a = AggregateRow {
            change_seq: 1,
            station: "BN_A_B".into(),
            parameter: "COD".into(),
            window_ms: 3_600_000,
            window_start: 1_795_748_400_000,
            mean: Some(130.0),
            min: Some(128.0),
            max: Some(133.5),
            valid: 11,
            expected: 12,
            completeness: 0.9166666666666666,
            ratio: Some(0.962962962962963),
            band: "compliant".into(),
        };
        let mut s = String::new();
        aggregate_line(&a, &mut s).unwrap();
        assert_eq!(
            s,
            "hourly,parameter=COD,station=BN_A_B mean=130,min=128,max=133.5,valid=11i,expected=12i,completeness=0.9166666666666666,ratio=0.962962962962963,band=\"compliant\" 1795748400000"
        );
    }
}
