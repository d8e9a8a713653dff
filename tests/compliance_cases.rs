//! Every hand-computed case of `reference/compliance-cases.md`, one test per case, named after it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use quantrac::compliance::hourly::{
    aggregate, expected_count, revision, window_start, Aggregate, Revision, Sample, HOUR_MS,
    MIN_COMPLETENESS,
};
use quantrac::compliance::limits::{kf, kq};
use quantrac::compliance::{
    Assessment, Band, Evaluator, Flags, LimitBound, Profiles, StationLimits,
};
use quantrac::config::{Config, Station};
use quantrac::model::{Parameter, Reading, StationId, Status, Timestamp, Unit};
use rust_decimal::Decimal;

/// One `[[station]]` table.
fn station(id: &str, profile: &str, flow: &str, water: &str, params: &str) -> String {
    format!(
        "[[station]]\nid = \"{id}\"\nname = \"{id}\"\nprofile = \"{profile}\"\ndesign_flow_m3_day = {flow}\n\
         receiving_water = {water}\ninterval = \"5m\"\nparameters = {{ {params} }}\n\n"
    )
}

const B: &str = "qcvn40-2011-b";
const A: &str = "qcvn40-2011-a";

/// The stations of the cases: the K cases' coefficients, columns A and B, and the R12/R15 variants.
fn config() -> Config {
    let text = [
        station(
            "BN_K1_B",
            B,
            "13000",
            "{ type = \"river\", flow_m3_s = 120 }",
            "COD = {}, TSS = {}, Temp = {}, pH = {}",
        ),
        station(
            "BN_K1_A",
            A,
            "13000",
            "{ type = \"river\", flow_m3_s = 120 }",
            "Color = {}",
        ),
        station(
            "BN_K2_B",
            B,
            "50",
            "{ type = \"river\", flow_m3_s = 50 }",
            "COD = {}",
        ),
        station(
            "BN_K3_B",
            B,
            "50.01",
            "{ type = \"river\", flow_m3_s = 50.01 }",
            "COD = {}, TN = {}",
        ),
        station(
            "BN_K4_A",
            A,
            "300",
            "{ type = \"lake\", volume_m3 = 5000000 }",
            "NH4 = {}",
        ),
        station(
            "BN_K5_B",
            B,
            "5000",
            "{ type = \"lake\", volume_m3 = 10000001 }",
            "COD = {}",
        ),
        station(
            "BN_K6_B",
            B,
            "40",
            "{ type = \"coastal\", use = \"other\" }",
            "COD = {}",
        ),
        station("BN_K7_B", B, "5000.1", "{ type = \"river\" }", "COD = {}"),
        station(
            "BN_K8_B",
            B,
            "501",
            "{ type = \"coastal\", use = \"aquatic\" }",
            "COD = {}",
        ),
        // R12: Kq 1.1 (river, 200 < Q ≤ 500) and Kf 1.1 (50 < F ≤ 500): 150 × 1.1 × 1.1 = 181.5.
        station(
            "BN_R12_B",
            B,
            "300",
            "{ type = \"river\", flow_m3_s = 300 }",
            "COD = {}",
        ),
        // R15: the K1 station with the COD analyser range configured 0–400.
        station(
            "BN_R15_B",
            B,
            "13000",
            "{ type = \"river\", flow_m3_s = 120 }",
            "COD = { range = [0, 400] }",
        ),
    ]
    .concat();
    Config::from_str(&text, Path::new("test.toml"), Path::new(".")).expect("case config is valid")
}

fn limits(c: &Config) -> HashMap<StationId, StationLimits> {
    Profiles::builtin().resolve(c).expect("case limits resolve")
}

fn st<'a>(c: &'a Config, id: &str) -> &'a Station {
    c.station(id).expect("station in case config")
}

fn d(s: &str) -> Decimal {
    s.parse().expect("decimal literal")
}

/// Kq and Kf of a station, with the bases quoted in the working.
fn coefficients(id: &str) -> (Decimal, Decimal) {
    let c = config();
    let s = st(&c, id);
    let profiles = Profiles::builtin();
    let p = profiles.get(&s.profile).expect("profile");
    let kq = kq(p, &s.receiving_water).expect("Kq");
    let kf = kf(p, s.design_flow_m3_day).expect("Kf");
    (kq.k, kf.k)
}

fn k_case(id: &str, kq: &str, kf: &str, working_part: &str) {
    assert_eq!(coefficients(id), (d(kq), d(kf)), "{id}");
    let c = config();
    let l = limits(&c);
    let cod = l[&st(&c, id).id].get(&p("COD")).expect("COD limit");
    assert!(cod.working.contains(working_part), "{id}: {}", cod.working);
}

fn p(s: &str) -> Parameter {
    Parameter::new(s).expect("symbol")
}

#[test]
fn k1() {
    k_case(
        "BN_K1_B",
        "1.0",
        "0.9",
        "× Kq 1.0 (river, Q=120 m³/s) × Kf 0.9 (F=13,000 m³/day)",
    );
}
#[test]
fn k2() {
    k_case(
        "BN_K2_B",
        "0.9",
        "1.2",
        "× Kq 0.9 (river, Q=50 m³/s) × Kf 1.2 (F=50 m³/day)",
    );
}
#[test]
fn k3() {
    k_case(
        "BN_K3_B",
        "1.0",
        "1.1",
        "× Kq 1.0 (river, Q=50.01 m³/s) × Kf 1.1 (F=50.01 m³/day)",
    );
}
#[test]
fn k4() {
    assert_eq!(coefficients("BN_K4_A"), (d("0.6"), d("1.1")));
    let c = config();
    let nh4 = &limits(&c)[&st(&c, "BN_K4_A").id];
    let w = &nh4.get(&p("NH4")).expect("NH4").working;
    assert!(
        w.contains("× Kq 0.6 (lake, V=5,000,000 m³) × Kf 1.1 (F=300 m³/day)"),
        "{w}"
    );
}
#[test]
fn k5() {
    k_case(
        "BN_K5_B",
        "0.8",
        "1.0",
        "× Kq 0.8 (lake, V=10,000,001 m³) × Kf 1.0 (F=5,000 m³/day)",
    );
}
#[test]
fn k6() {
    k_case(
        "BN_K6_B",
        "1.3",
        "1.2",
        "× Kq 1.3 (coastal, other use) × Kf 1.2 (F=40 m³/day)",
    );
}
#[test]
fn k7() {
    k_case(
        "BN_K7_B",
        "0.9",
        "0.9",
        "× Kq 0.9 (river, no flow data) × Kf 0.9 (F=5,000.1 m³/day)",
    );
}
#[test]
fn k8() {
    k_case(
        "BN_K8_B",
        "1.0",
        "1.0",
        "× Kq 1.0 (coastal, aquatic protection) × Kf 1.0 (F=501 m³/day)",
    );
}

/// The limit of `param` at station `id`: (bound, working).
fn limit_of(id: &str, param: &str) -> (Option<LimitBound>, String) {
    let c = config();
    let l = limits(&c);
    let lim = l[&st(&c, id).id].get(&p(param)).expect("limit").clone();
    (lim.bound, lim.working)
}

#[test]
fn l1() {
    assert_eq!(
        limit_of("BN_K1_B", "COD"),
        (
            Some(LimitBound::Max(135.0)),
            "C=150 × Kq 1.0 (river, Q=120 m³/s) × Kf 0.9 (F=13,000 m³/day) = 135 mg/L".into()
        )
    );
}
#[test]
fn l2() {
    assert_eq!(
        limit_of("BN_K1_B", "TSS"),
        (
            Some(LimitBound::Max(90.0)),
            "C=100 × Kq 1.0 (river, Q=120 m³/s) × Kf 0.9 (F=13,000 m³/day) = 90 mg/L".into()
        )
    );
}
#[test]
fn l3() {
    assert_eq!(
        limit_of("BN_K1_B", "Temp"),
        (
            Some(LimitBound::Max(40.0)),
            "C=40 °C (no coefficients) = 40 °C".into()
        )
    );
}
#[test]
fn l4() {
    assert_eq!(
        limit_of("BN_K1_B", "pH"),
        (
            Some(LimitBound::Range(5.5, 9.0)),
            "5.5–9 (no coefficients)".into()
        )
    );
}
#[test]
fn l5() {
    assert_eq!(
        limit_of("BN_K4_A", "NH4"),
        (
            Some(LimitBound::Max(3.3)),
            "C=5 × Kq 0.6 (lake, V=5,000,000 m³) × Kf 1.1 (F=300 m³/day) = 3.3 mg/L".into()
        )
    );
}
#[test]
fn l6() {
    assert_eq!(
        limit_of("BN_K6_B", "COD"),
        (
            Some(LimitBound::Max(234.0)),
            "C=150 × Kq 1.3 (coastal, other use) × Kf 1.2 (F=40 m³/day) = 234 mg/L".into()
        )
    );
}
#[test]
fn l7() {
    assert_eq!(
        limit_of("BN_K1_A", "Color"),
        (
            Some(LimitBound::Max(50.0)),
            "C=50 Pt/Co (no coefficients) = 50 Pt/Co".into()
        )
    );
}
#[test]
fn l8() {
    assert_eq!(
        limit_of("BN_K3_B", "TN"),
        (
            Some(LimitBound::Max(44.0)),
            "C=40 × Kq 1.0 (river, Q=50.01 m³/s) × Kf 1.1 (F=50.01 m³/day) = 44 mg/L".into()
        )
    );
}

const T0: Timestamp = Timestamp(1_795_748_400_000); // 2026-11-27T03:00:00Z, 10:00 local

fn reading(id: &str, param: &str, value: f64, status: Status, ts: Timestamp) -> Reading {
    Reading {
        station: StationId::parse(id).expect("station id"),
        parameter: p(param),
        ts,
        value,
        unit: Unit::new(p(param).standard_unit().unwrap_or("mg/L")),
        status,
    }
}

/// Assess one on-time reading at a fresh evaluator.
fn assess(id: &str, param: &str, value: f64, status: Status) -> Result<Assessment, String> {
    let c = config();
    let mut e = Evaluator::new(&c, limits(&c));
    e.assess(&reading(id, param, value, status, T0), T0)
}

fn r_case(id: &str, param: &str, value: f64, ratio: Option<f64>, band: Band) {
    let a = assess(id, param, value, Status::Measuring).expect("accepted");
    assert_eq!(
        (a.ratio, a.band, a.flags),
        (ratio, band, Flags::default()),
        "{id} {param} {value}"
    );
}

/// A multiple the table shows as `1.037…`: the exact quotient, to f64 precision.
fn about(a: Assessment, expected: f64, shown: &str) {
    let r = a.ratio.expect("ratio");
    assert!((r - expected).abs() < 1e-12, "{r} vs {expected}");
    assert!(format!("{r}").starts_with(shown), "{r} shown as {shown}…");
}

#[test]
fn r1() {
    let a = assess("BN_K1_B", "COD", 140.0, Status::Measuring).expect("accepted");
    assert_eq!(
        (a.limit, a.band, a.flags),
        (Some(LimitBound::Max(135.0)), Band::Lt1_1, Flags::default())
    );
    about(a, 140.0 / 135.0, "1.037");
}
#[test]
fn r2() {
    r_case("BN_K1_B", "TSS", 99.0, Some(1.1), Band::From1_1To1_5);
}
#[test]
fn r3() {
    let a = assess("BN_K1_B", "pH", 9.2, Status::Measuring).expect("accepted");
    assert_eq!(
        (a.limit, a.ratio, a.band),
        (Some(LimitBound::Range(5.5, 9.0)), None, Band::OutOfRange)
    );
}
#[test]
fn r4() {
    r_case("BN_K1_B", "pH", 5.5, None, Band::Compliant);
}
#[test]
fn r5() {
    r_case("BN_K1_B", "Temp", 41.0, Some(1.025), Band::Lt1_1);
}
#[test]
fn r6() {
    let a = assess("BN_K4_A", "NH4", 10.0, Status::Measuring).expect("accepted");
    assert_eq!(a.band, Band::From3To5);
    about(a, 10.0 / 3.3, "3.0303");
}
#[test]
fn r7() {
    // The float trap: 3.63 / 3.3 is 1.0999999999999999 in binary floating point.
    r_case("BN_K4_A", "NH4", 3.63, Some(1.1), Band::From1_1To1_5);
}
#[test]
fn r8() {
    r_case("BN_K4_A", "NH4", 4.95, Some(1.5), Band::From1_5To3);
}
#[test]
fn r9() {
    r_case("BN_K4_A", "NH4", 16.5, Some(5.0), Band::From5To10);
}
#[test]
fn r10() {
    r_case("BN_K4_A", "NH4", 33.0, Some(10.0), Band::Ge10);
}
#[test]
fn r11() {
    r_case("BN_K4_A", "NH4", 3.3, Some(1.0), Band::Compliant);
}
#[test]
fn r12() {
    assert_eq!(limit_of("BN_R12_B", "COD").0, Some(LimitBound::Max(181.5)));
    // Float gives 1.4999999999999998.
    r_case("BN_R12_B", "COD", 272.25, Some(1.5), Band::From1_5To3);
}
#[test]
fn r13() {
    let a = assess("BN_K1_B", "COD", 500.0, Status::Calibrating).expect("accepted, not evaluated");
    assert_eq!(
        (a.ratio, a.band, a.flags),
        (None, Band::NotEvaluated, Flags::default())
    );
}
#[test]
fn r14() {
    let reason =
        assess("BN_K1_B", "COD", -3.0, Status::Measuring).expect_err("rejected to quarantine");
    assert!(reason.contains("negative"), "{reason}");
    assert!(reason.contains("range check"), "{reason}");
    // Whatever the status.
    assert!(assess("BN_K1_B", "COD", -3.0, Status::Calibrating).is_err());
}
#[test]
fn r15() {
    let a = assess("BN_R15_B", "COD", 410.0, Status::Measuring).expect("kept and evaluated");
    assert_eq!((a.band, a.flags), (Band::From3To5, Flags::ABOVE_RANGE));
    assert_eq!(a.flags.names(), "above_range");
    about(a, 410.0 / 135.0, "3.037");
}

// Hourly means: local time UTC+7, 5-minute interval → 12 readings in the local hour 10:00–11:00.

const VN: i32 = 7 * 3600;
const FIVE_MIN: i64 = 300_000;
const L1: Option<LimitBound> = Some(LimitBound::Max(135.0));

fn expected() -> u32 {
    expected_count(Duration::from_secs(3600), Duration::from_secs(300))
}

fn sample(i: i64, value: f64, status: Status) -> Sample {
    Sample {
        ts: Timestamp(T0.0 + i * FIVE_MIN),
        value,
        status,
    }
}

fn pct(a: &Aggregate) -> f64 {
    (a.completeness * 1000.0).round() / 10.0
}

#[test]
fn h1() {
    let samples: Vec<_> = (0..12)
        .map(|i| sample(i, 130.0, Status::Measuring))
        .collect();
    let a = aggregate(&samples, L1, expected());
    assert_eq!(
        (a.mean, a.valid, a.expected, a.completeness),
        (Some(130.0), 12, 12, 1.0)
    );
    assert_eq!(a.band, Band::Compliant);
    assert!(!a.is_incomplete(MIN_COMPLETENESS));
}

#[test]
fn h2() {
    let mut samples: Vec<_> = (0..11)
        .map(|i| sample(i, 130.0, Status::Measuring))
        .collect();
    samples.push(sample(11, 200.0, Status::Calibrating));
    let a = aggregate(&samples, L1, expected());
    assert_eq!(
        (a.mean, a.valid, a.band),
        (Some(130.0), 11, Band::Compliant)
    );
    assert_eq!(pct(&a), 91.7);
    assert!(!a.is_incomplete(MIN_COMPLETENESS));
    // Counting the calibration reading would give 135.83 and a false exceedance.
    samples[11].status = Status::Measuring;
    let wrong = aggregate(&samples, L1, expected());
    assert_eq!(
        wrong.mean.map(|m| (m * 100.0).round() / 100.0),
        Some(135.83)
    );
    assert_eq!(wrong.band, Band::Lt1_1);
}

#[test]
fn h3() {
    let samples: Vec<_> = (0..9)
        .map(|i| sample(i, 140.0, Status::Measuring))
        .collect();
    let a = aggregate(&samples, L1, expected());
    assert_eq!((a.mean, a.valid, a.expected), (Some(140.0), 9, 12));
    assert_eq!(pct(&a), 75.0);
    assert_eq!(a.band, Band::Lt1_1);
    assert!(a.is_incomplete(MIN_COMPLETENESS), "completeness warning");
}

#[test]
fn h4() {
    let ts = Timestamp::from_datetime(
        &"2026-11-27T03:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("time"),
    );
    let start = window_start(ts, VN, HOUR_MS);
    let tz = chrono::FixedOffset::east_opt(VN).expect("offset");
    assert_eq!(start.to_local(tz).to_rfc3339(), "2026-11-27T10:00:00+07:00");
}

#[test]
fn h5() {
    let ts = Timestamp::from_datetime(
        &"2026-11-27T02:59:59Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("time"),
    );
    let start = window_start(ts, VN, HOUR_MS);
    let tz = chrono::FixedOffset::east_opt(VN).expect("offset");
    assert_eq!(start.to_local(tz).to_rfc3339(), "2026-11-27T09:00:00+07:00");
}

#[test]
fn h6() {
    let c = config();
    let mut e = Evaluator::new(&c, limits(&c));
    let id = "BN_K1_B";
    // The 10:00 hour without its 10:05 reading (outage), evaluated as it arrived, aggregated when the hour closed.
    let mut stored_samples = Vec::new();
    for i in (0..12).filter(|i| *i != 1) {
        let r = reading(
            id,
            "COD",
            130.0,
            Status::Measuring,
            Timestamp(T0.0 + i * FIVE_MIN),
        );
        e.assess(&r, r.ts).expect("accepted");
        stored_samples.push(sample(i, 130.0, Status::Measuring));
    }
    let stored = aggregate(&stored_samples, L1, expected());
    assert_eq!(
        (stored.mean, stored.valid, stored.band),
        (Some(130.0), 11, Band::Compliant)
    );

    // The 10:05 reading arrives at 13:00 local (06:00Z): accepted, flagged late, and it belongs to the 10:00 hour.
    let late_ts = Timestamp(T0.0 + FIVE_MIN);
    let arrival = Timestamp(T0.0 + 3 * HOUR_MS);
    let late = reading(id, "COD", 200.0, Status::Measuring, late_ts);
    let a = e
        .assess(&late, arrival)
        .expect("late readings are accepted");
    assert!(a.flags.contains(Flags::LATE), "{}", a.flags.names());
    assert!(
        !a.flags.contains(Flags::GAP),
        "a late reading does not fake a gap"
    );
    assert_eq!(window_start(late_ts, VN, HOUR_MS), T0);

    // Recompute the hour with the late reading: the same as computing it from scratch in time order.
    let mut recomputed_samples = stored_samples.clone();
    recomputed_samples.push(sample(1, 200.0, Status::Measuring));
    let recomputed = aggregate(&recomputed_samples, L1, expected());
    let mut in_order = recomputed_samples.clone();
    in_order.sort_by_key(|s| s.ts);
    assert_eq!(recomputed, aggregate(&in_order, L1, expected()));
    assert_eq!((recomputed.valid, recomputed.completeness), (12, 1.0));
    assert_eq!(
        recomputed.mean.map(|m| (m * 100.0).round() / 100.0),
        Some(135.83)
    );
    assert_eq!(recomputed.band, Band::Lt1_1);

    // The change detector records the change of verdict.
    assert_eq!(
        revision(&stored, &recomputed),
        Revision::VerdictChanged {
            from: Band::Compliant,
            to: Band::Lt1_1
        }
    );
    assert!(revision(&stored, &recomputed).changed());
}
