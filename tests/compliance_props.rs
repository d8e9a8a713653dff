//! Properties of the compliance maths: bands rise with the value and match exact rational arithmetic; hourly means
//! ignore non-measuring readings; recomputing a window after a late reading equals computing it from scratch.

use std::path::Path;

use proptest::prelude::*;
use quantrac::compliance::hourly::{aggregate, Sample};
use quantrac::compliance::{Band, Evaluator, Judge, LimitBound, Profiles};
use quantrac::config::Config;
use quantrac::model::{Parameter, Reading, StationId, Status, Timestamp, Unit};

/// A decimal with up to three places, as an f64 (shortest string = the decimal), and its value in thousandths.
fn thousandths(max: u64) -> impl Strategy<Value = (f64, i128)> {
    (0..=max).prop_map(|n| (n as f64 / 1000.0, n as i128))
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        4 => Just(Status::Measuring),
        1 => Just(Status::Calibrating),
        1 => Just(Status::Fault),
        1 => Just(Status::Maintenance),
    ]
}

fn samples(max_len: usize) -> impl Strategy<Value = Vec<Sample>> {
    proptest::collection::vec((thousandths(1_000_000), status()), 0..max_len).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, ((value, _), status))| Sample {
                ts: Timestamp(i as i64 * 300_000),
                value,
                status,
            })
            .collect()
    })
}

/// The band by exact rational arithmetic on thousandths: v/c compared with the bounds 11/10, 15/10, 3, 5, 10.
fn reference_band(v: i128, c: i128) -> Band {
    if v <= c {
        Band::Compliant
    } else if 10 * v < 11 * c {
        Band::Lt1_1
    } else if 10 * v < 15 * c {
        Band::From1_1To1_5
    } else if v < 3 * c {
        Band::From1_5To3
    } else if v < 5 * c {
        Band::From3To5
    } else if v < 10 * c {
        Band::From5To10
    } else {
        Band::Ge10
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn band_is_monotonic_in_value((c, _) in thousandths(10_000_000), (a, _) in thousandths(100_000_000), (b, _) in thousandths(100_000_000)) {
        prop_assume!(c > 0.0);
        let j = Judge::new(LimitBound::Max(c)).expect("positive limit");
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let (blo, bhi) = (j.value(lo).band, j.value(hi).band);
        prop_assert!(blo.severity() <= bhi.severity(), "{lo} → {blo:?}, {hi} → {bhi:?} against {c}");
        prop_assert!(blo <= bhi);
    }

    #[test]
    fn band_matches_exact_rationals((c, ci) in thousandths(10_000_000), (v, vi) in thousandths(200_000_000)) {
        prop_assume!(ci > 0);
        let j = Judge::new(LimitBound::Max(c)).expect("positive limit");
        prop_assert_eq!(j.value(v).band, reference_band(vi, ci));
    }

    #[test]
    fn evaluator_band_is_monotonic(a in 0.0f64..2_000.0, b in 0.0f64..2_000.0) {
        let text = "[[station]]\nid = \"BN_P_N1\"\nname = \"p\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 13000\n\
                    receiving_water = { type = \"river\", flow_m3_s = 120 }\ninterval = \"5m\"\nparameters = { COD = {} }\n";
        let config = Config::from_str(text, Path::new("test.toml"), Path::new(".")).expect("config");
        let limits = Profiles::builtin().resolve(&config).expect("limits");
        let mut e = Evaluator::new(&config, limits);
        let band = |e: &mut Evaluator, v: f64| {
            let r = Reading {
                station: StationId::parse("BN_P_N1").expect("id"),
                parameter: Parameter::new("COD").expect("symbol"),
                ts: Timestamp(0),
                value: v,
                unit: Unit::new("mg/L"),
                status: Status::Measuring,
            };
            e.assess(&r, Timestamp(0)).expect("accepted").band
        };
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(band(&mut e, lo) <= band(&mut e, hi));
    }

    #[test]
    fn hourly_mean_never_includes_non_measuring(samples in samples(40), replacement in 0.0f64..1e6) {
        let limit = Some(LimitBound::Max(135.0));
        let a = aggregate(&samples, limit, 12);
        let measuring: Vec<Sample> = samples.iter().copied().filter(|s| s.status == Status::Measuring).collect();
        prop_assert_eq!(a.valid as usize, measuring.len());
        prop_assert_eq!(&a, &aggregate(&measuring, limit, 12));
        // Whatever the non-measuring readings say, nothing changes.
        let changed: Vec<Sample> = samples
            .iter()
            .map(|s| if s.status == Status::Measuring { *s } else { Sample { value: replacement, ..*s } })
            .collect();
        prop_assert_eq!(&a, &aggregate(&changed, limit, 12));
        if let Some(mean) = a.mean {
            let min = measuring.iter().map(|s| s.value).fold(f64::INFINITY, f64::min);
            let max = measuring.iter().map(|s| s.value).fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(min <= mean && mean <= max, "{min} ≤ {mean} ≤ {max}");
        }
    }

    #[test]
    fn recompute_after_late_reading_equals_from_scratch(samples in samples(40), late_pick in any::<prop::sample::Index>(), limit in 1u32..500) {
        prop_assume!(!samples.is_empty());
        let limit = Some(LimitBound::Max(f64::from(limit)));
        let k = late_pick.index(samples.len());
        let mut arrived: Vec<Sample> = samples.clone();
        let late = arrived.remove(k);
        let _before = aggregate(&arrived, limit, 12);
        arrived.push(late);
        prop_assert_eq!(aggregate(&arrived, limit, 12), aggregate(&samples, limit, 12));
        // Any arrival order gives the same window.
        let mut reversed = samples.clone();
        reversed.reverse();
        prop_assert_eq!(aggregate(&reversed, limit, 12), aggregate(&samples, limit, 12));
    }
}
