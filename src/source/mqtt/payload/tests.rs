//! Golden tables for each payload format and proptests: never panic on arbitrary bytes, round-trip generated messages.

use super::*;
use crate::model::{Status, Timestamp};
use proptest::prelude::*;

const ICT: i32 = 7 * 3600;

fn tz() -> FixedOffset {
    FixedOffset::east_opt(ICT).unwrap()
}

fn station() -> StationId {
    StationId::parse("BN_KCNQV_NUOC01").unwrap()
}

fn unit_of(p: &Parameter) -> Unit {
    Unit::new(p.standard_unit().unwrap_or(""))
}

fn run_json(mapping: &JsonMappingSection, payload: &[u8]) -> Decoded {
    let s = station();
    let cx = Context {
        station: &s,
        tz: tz(),
        unit_of: &unit_of,
        configured: None,
    };
    decode_json(mapping, payload, &cx)
}

fn run_tt10(payload: &[u8]) -> Decoded {
    let s = station();
    let cx = Context {
        station: &s,
        tz: tz(),
        unit_of: &unit_of,
        configured: None,
    };
    decode_tt10(payload, &cx)
}

fn nested() -> JsonMappingSection {
    JsonMappingSection {
        timestamp: "time".into(),
        values: "values".into(),
        value_key: Some("v".into()),
        status_key: Some("s".into()),
        ..Default::default()
    }
}

fn with_ts_format(f: &str) -> JsonMappingSection {
    JsonMappingSection {
        timestamp_format: f.into(),
        ..Default::default()
    }
}

/// 2026-11-27 10:00:00 +07:00.
const T0: i64 = 1_795_748_400_000;

fn summary(d: &Decoded) -> Vec<(String, i64, f64, Status)> {
    d.readings
        .iter()
        .map(|r| (r.parameter.to_string(), r.ts.millis(), r.value, r.status))
        .collect()
}

fn reasons(d: &Decoded) -> Vec<String> {
    d.rejected.iter().map(|r| r.error.to_string()).collect()
}

#[test]
fn json_flat_default_mapping() {
    let d = run_json(
        &JsonMappingSection::default(),
        br#"{"ts": "2026-11-27T10:00:00+07:00", "status": "00", "COD": 82.5, "pH": "7,2", "TSS": 31}"#,
    );
    assert!(d.rejected.is_empty(), "{:?}", reasons(&d));
    let mut got = summary(&d);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("COD".into(), T0, 82.5, Status::Measuring),
            ("TSS".into(), T0, 31.0, Status::Measuring),
            ("pH".into(), T0, 7.2, Status::Measuring),
        ]
    );
    assert_eq!(d.readings[0].station, station());
    assert_eq!(d.readings[0].unit.as_str(), "mg/L");
}

#[test]
fn json_nested_mapping_with_per_value_status() {
    let d = run_json(
        &nested(),
        br#"{"time": "2026-11-27T03:00:00Z", "values": {"COD": {"v": 82.5, "s": "01"}, "NH4": {"v": 3, "s": 3}, "Flow": 120.5}}"#,
    );
    assert!(d.rejected.is_empty(), "{:?}", reasons(&d));
    let mut got = summary(&d);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("COD".into(), T0, 82.5, Status::Calibrating),
            ("Flow".into(), T0, 120.5, Status::Measuring),
            ("NH4".into(), T0, 3.0, Status::Maintenance),
        ]
    );
}

#[test]
fn json_timestamp_formats() {
    let cases: [(&str, &[u8], i64); 6] = [
        (
            "rfc3339",
            br#"{"ts":"2026-11-27T10:00:00.250+07:00","COD":1}"#,
            T0 + 250,
        ),
        ("epoch_s", br#"{"ts":1795748400,"COD":1}"#, T0),
        ("epoch_s", br#"{"ts":1795748400.5,"COD":1}"#, T0 + 500),
        ("epoch_ms", br#"{"ts":1795748400000,"COD":1}"#, T0),
        ("tt10", br#"{"ts":"20261127100000","COD":1}"#, T0),
        ("tt10", br#"{"ts":20261127100000,"COD":1}"#, T0),
    ];
    for (format, payload, want) in cases {
        let d = run_json(&with_ts_format(format), payload);
        assert_eq!(
            d.readings.first().map(|r| r.ts.millis()),
            Some(want),
            "{format} {:?}",
            reasons(&d)
        );
    }
}

#[test]
fn json_bad_messages_are_rejected_whole_with_a_reason() {
    let m = JsonMappingSection::default();
    let cases: [(&[u8], &str); 9] = [
        (b"{not json", "invalid JSON"),
        (b"", "payload is empty"),
        (b"[1,2]", "is an array; expected an object"),
        (br#"{"COD": 1}"#, "no timestamp at \"ts\""),
        (
            br#"{"ts": "yesterday", "COD": 1}"#,
            "timestamp \"yesterday\" is not an RFC 3339 time",
        ),
        (
            br#"{"ts": "2026-11-27T10:00:00Z", "status": "09", "COD": 1}"#,
            "status \"09\" is not a device status",
        ),
        (br#"{"ts": "2026-11-27T10:00:00Z"}"#, "carries no values"),
        (
            b"{\"ts\": \"\xff\xfe\"}",
            "not valid UTF-8 (invalid byte at offset 8)",
        ),
        (br#"{"ts": 1e400, "COD": 1}"#, "invalid JSON"),
    ];
    for (payload, want) in cases {
        let d = run_json(&m, payload);
        assert!(d.readings.is_empty());
        assert_eq!(
            d.rejected.len(),
            1,
            "{:?}",
            String::from_utf8_lossy(payload)
        );
        assert!(
            d.rejected[0].error.to_string().contains(want),
            "{:?}: {}",
            String::from_utf8_lossy(payload),
            d.rejected[0].error
        );
        assert_eq!(d.rejected[0].raw, payload);
    }
}

#[test]
fn json_partial_failure_keeps_good_values() {
    let d = run_json(
        &JsonMappingSection::default(),
        br#"{"ts": "2026-11-27T10:00:00+07:00", "COD": 82.5, "TSS": true, "pH": "abc", "NH4": null, "a b": 1, "TN": {"x": 1}}"#,
    );
    assert_eq!(summary(&d), [("COD".into(), T0, 82.5, Status::Measuring)]);
    let mut r = reasons(&d);
    r.sort();
    assert_eq!(
        r,
        [
            "parameter NH4: value null is not a number",
            "parameter TN: value an object is not a number",
            "parameter TSS: value a boolean is not a number",
            "parameter pH: value \"abc\" is not a number",
            "parameter symbol \"a b\" is invalid: expected 1 to 32 characters without whitespace or control characters",
        ]
    );
    let tss = d
        .rejected
        .iter()
        .find(|x| x.error.to_string().contains("TSS"))
        .unwrap();
    assert_eq!(tss.raw, br#"{"TSS":true}"#);
    // Nested: a missing value key is named.
    let d = run_json(
        &nested(),
        br#"{"time": "2026-11-27T03:00:00Z", "values": {"COD": {"s": "00"}, "pH": {"v": 7}}}"#,
    );
    assert_eq!(d.readings.len(), 1);
    assert_eq!(
        reasons(&d),
        ["parameter COD: no value at \"v\" (json.value_key)"]
    );
}

#[test]
fn tt10_content() {
    let content = "\u{feff}COD\t82,5\tmg/L\t20261127100000\t00\r\n\
                   pH\t7.2\t-\t20261127100000\t01\tTSS\t31\tmg/L\t20261127100000\t03\t\r\n\
                   PM2,5\t12\tµg/m3\t20261127100000\t02   \r\n\r\n\r\n";
    let d = run_tt10(content.as_bytes());
    assert!(d.rejected.is_empty(), "{:?}", reasons(&d));
    assert_eq!(
        summary(&d),
        [
            ("COD".into(), T0, 82.5, Status::Measuring),
            ("pH".into(), T0, 7.2, Status::Calibrating),
            ("TSS".into(), T0, 31.0, Status::Maintenance),
            ("PM2,5".into(), T0, 12.0, Status::Fault),
        ]
    );
    assert_eq!(d.readings[3].unit.as_str(), "µg/m3");
}

#[test]
fn tt10_bad_lines_and_groups_are_rejected_alone() {
    let content = "COD\t82.5\tmg/L\t20261127100000\t00\n\
                   TSS\t31\tmg/L\n\
                   pH\tx\t-\t20261127100000\t00\tNH4\t2\tmg/L\t20261327100000\t00\n\
                   TN\t5\tmg/L\t20261127100000\t07\n";
    let d = run_tt10(content.as_bytes());
    assert_eq!(summary(&d), [("COD".into(), T0, 82.5, Status::Measuring)]);
    assert_eq!(
        reasons(&d),
        [
            "line 2: 3 fields; expected groups of 5 TAB-separated fields: symbol, value, unit, time yyyyMMddHHmmss, status",
            "parameter pH: value \"x\" is not a number",
            "timestamp \"20261327100000\" is not a local time yyyyMMddHHmmss such as \"20261127100000\"",
            "device status \"07\" is unknown: expected 00 (measuring), 01 (calibrating), 02 (fault) or 03 (maintenance)",
        ]
    );
    assert_eq!(d.rejected[0].raw, b"TSS\t31\tmg/L");
    assert_eq!(d.rejected[2].raw, b"NH4\t2\tmg/L\t20261327100000\t00");
    assert_eq!(reasons(&run_tt10(b"\r\n \r\n")), ["payload is empty"]);
    assert_eq!(
        reasons(&run_tt10(b"COD\t1\tmg/L\t20261127100000\t00\xff")),
        ["payload is not valid UTF-8 (invalid byte at offset 28)"]
    );
}

#[test]
fn tt10_time_is_local() {
    assert_eq!(tt10_time("20261127100000", tz()), Some(Timestamp(T0)));
    assert_eq!(format_tt10_time(Timestamp(T0), tz()), "20261127100000");
    for bad in [
        "2026112710000",
        "2026112710000x",
        "20260230100000",
        "20261127250000",
        "",
    ] {
        assert_eq!(tt10_time(bad, tz()), None, "{bad}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Properties

fn arb_mapping() -> impl Strategy<Value = JsonMappingSection> {
    (
        prop::sample::select(vec!["rfc3339", "epoch_s", "epoch_ms", "tt10"]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(f, nest, per_value_status)| {
            let base = if nest { nested() } else { Default::default() };
            JsonMappingSection {
                timestamp_format: f.into(),
                status_key: if nest && per_value_status {
                    base.status_key.clone()
                } else {
                    None
                },
                ..base
            }
        })
}

fn arb_readings(whole_seconds: bool) -> impl Strategy<Value = Vec<Reading>> {
    let symbols = prop::sample::subsequence(
        vec![
            "Flow", "Temp", "pH", "TSS", "COD", "NH4", "TN", "TP", "Zn", "PM2,5",
        ],
        1..10,
    );
    // 2000-01-01 .. 2100-01-01
    let ts = 946_684_800_000i64..4_102_444_800_000i64;
    (symbols, ts)
        .prop_flat_map(|(syms, ts)| {
            let n = syms.len();
            (
                Just(syms),
                Just(ts),
                // Datalogger values: up to 4 decimals. (serde_json without `float_roundtrip` may read a 17-digit
                // value 1 ULP off; deterministic, so a redelivery still matches.)
                prop::collection::vec((-1_000_000_000i64..1_000_000_000, 0i32..5), n),
                prop::collection::vec(0u8..4, n),
            )
        })
        .prop_map(move |(syms, ts, values, statuses)| {
            let ts = if whole_seconds { ts - ts % 1000 } else { ts };
            syms.iter()
                .zip(values)
                .zip(statuses)
                .map(|((s, (mantissa, decimals)), st)| {
                    let v = mantissa as f64 / 10f64.powi(decimals);
                    let parameter = Parameter::new(s).unwrap();
                    Reading {
                        station: station(),
                        unit: unit_of(&parameter),
                        parameter,
                        ts: Timestamp(ts),
                        value: v,
                        status: Status::from_u8(st).unwrap(),
                    }
                })
                .collect()
        })
}

fn sorted(mut v: Vec<Reading>) -> Vec<Reading> {
    v.sort_by(|a, b| a.parameter.cmp(&b.parameter));
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::testing::cases(256)))]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), m in arb_mapping()) {
        let d = run_json(&m, &bytes);
        prop_assert!(!d.readings.is_empty() || !d.rejected.is_empty());
        let d = run_tt10(&bytes);
        prop_assert!(!d.readings.is_empty() || !d.rejected.is_empty());
    }

    #[test]
    fn decoders_never_panic_on_near_valid_text(
        s in r#"\{("(ts|time|values|status|COD|v|s)": ?(-?[0-9]{1,20}(\.[0-9]{0,5})?|"[0-9T:+,.Z-]{0,30}"|true|null|\{\}|\[\]), ?){0,6}\}"#,
        t in "([A-Za-z0-9,.]{0,6}\t){0,12}[0-9]{0,14}(\r?\n)?",
        m in arb_mapping(),
    ) {
        let _ = run_json(&m, s.as_bytes());
        let _ = run_tt10(t.as_bytes());
    }

    #[test]
    fn json_round_trip(readings in arb_readings(false), m in arb_mapping()) {
        let whole = m.timestamp_format() == TimestampFormat::Tt10;
        let readings: Vec<Reading> = readings
            .into_iter()
            .map(|mut r| { if whole { r.ts = Timestamp(r.ts.0 - r.ts.0.rem_euclid(1000)); } r })
            .collect();
        let mut back = Vec::new();
        for msg in encode_json(&m, &readings, tz()) {
            let d = run_json(&m, &msg);
            prop_assert!(d.rejected.is_empty(), "{:?} from {}", reasons(&d), String::from_utf8_lossy(&msg));
            back.extend(d.readings);
        }
        prop_assert_eq!(sorted(back), sorted(readings));
    }

    #[test]
    fn tt10_round_trip(readings in arb_readings(true)) {
        let d = run_tt10(&encode_tt10(&readings, tz()));
        prop_assert!(d.rejected.is_empty(), "{:?}", reasons(&d));
        // Status 03 is never written: maintenance travels as 01.
        let expected: Vec<Reading> = readings
            .into_iter()
            .map(|mut r| { if r.status == Status::Maintenance { r.status = Status::Calibrating; } r })
            .collect();
        prop_assert_eq!(d.readings, expected);
    }
}

#[test]
fn configured_parameters_take_the_configured_name_and_unit() {
    let s = station();
    let configured: rustc_hash::FxHashMap<Parameter, Unit> =
        [(Parameter::new("COD").unwrap(), Unit::new("g/m3"))]
            .into_iter()
            .collect();
    let cx = Context {
        station: &s,
        tz: tz(),
        unit_of: &unit_of,
        configured: Some(&configured),
    };
    let d = decode_json(
        &JsonMappingSection::default(),
        br#"{"ts": "2026-11-27T10:00:00+07:00", "COD": 82.5, "TSS": 40}"#,
        &cx,
    );
    let units: Vec<(&str, &str)> = d
        .readings
        .iter()
        .map(|r| (r.parameter.as_str(), r.unit.as_str()))
        .collect();
    // COD is configured; TSS is not and takes its standard unit.
    assert_eq!(units, [("COD", "g/m3"), ("TSS", "mg/L")]);
}
