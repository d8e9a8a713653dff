//! The penalty basis of Decree 45/2022/NĐ-CP (Nghị định 45/2022, administrative penalties in environmental
//! protection) for a plant and period. Its fines for discharging over the limits scale with the exceedance band
//! and with the volume discharged per day, and repeated exceedances under 1.1× are punished like 1.1–1.5×
//! (regulations.md §4–5). An inspector therefore needs, per parameter and local day with a judging window over the
//! limit:
//! - the windows over the limit, of them those under 1.1×, the worst band and multiple;
//! - whether it repeats an earlier day of the period;
//! - the day's discharge volume, integrated from the outflow readings, with how much of the day they cover.

use std::collections::BTreeMap;

use crate::compliance::units::{self, Converted};
use crate::compliance::Band;
use crate::ledger::export::{AggregateRow, Snapshot};
use crate::ledger::LedgerError;
use crate::model::Unit;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: f64 = 3_600_000.0;

/// One parameter's exceedances on one local day.
#[derive(Debug, Clone, PartialEq)]
pub struct ExceedanceDay {
    pub parameter: String,
    /// Local midnight.
    pub day: i64,
    /// Judging windows over the limit that day.
    pub windows: i64,
    /// Of them, those under 1.1× (a warning alone; repeated, fined like 1.1–1.5×).
    pub under_1_1: i64,
    pub worst: Band,
    pub worst_ratio: Option<f64>,
    /// Which day of the period this is for the parameter: 1 the first, 2 and more a repeat.
    pub nth: i64,
}

/// The volume discharged in a day, and how much of the day the flow readings cover.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Volume {
    pub m3: f64,
    pub covered_ms: i64,
}

/// What the basis is computed from, besides the ledger.
#[derive(Debug, Clone, Copy)]
pub struct BasisInput<'a> {
    pub station_id: i64,
    /// The outflow's symbol (`flow_out` of the station; `Flow` by default).
    pub flow: &'a str,
    pub window_ms: i64,
    pub interval_ms: i64,
    pub from: i64,
    pub to: i64,
    /// Local time minus UTC.
    pub offset_ms: i64,
}

/// The penalty basis of a plant and period.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Basis {
    pub days: Vec<ExceedanceDay>,
    /// By local midnight, the days in `days`.
    pub volumes: BTreeMap<i64, Volume>,
}

pub fn compute(snapshot: &Snapshot<'_>, i: &BasisInput<'_>) -> Result<Basis, LedgerError> {
    let mut over = Vec::new();
    snapshot.for_each_aggregate::<LedgerError>(i.station_id, i.window_ms, i.from, i.to, |a| {
        if Band::parse(&a.band).is_some_and(Band::is_exceedance) {
            over.push(a.clone());
        }
        Ok(())
    })?;
    let days = exceedance_days(&over, i.offset_ms);
    let mut volumes = BTreeMap::new();
    for d in &days {
        if volumes.contains_key(&d.day) {
            continue;
        }
        let (from, to) = (d.day.max(i.from), (d.day + DAY_MS).min(i.to));
        let flow = snapshot.measuring_values(i.station_id, i.flow, from, to)?;
        volumes.insert(d.day, volume(&flow, to, i.interval_ms, i.flow));
    }
    Ok(Basis { days, volumes })
}

/// Windows over the limit grouped by parameter and local day, in day then parameter order, each numbered among its
/// parameter's days.
pub fn exceedance_days(over: &[AggregateRow], offset_ms: i64) -> Vec<ExceedanceDay> {
    let mut by: BTreeMap<(i64, &str), ExceedanceDay> = BTreeMap::new();
    for a in over {
        let Some(band) = Band::parse(&a.band).filter(|b| b.is_exceedance()) else {
            continue;
        };
        let local = a.window_start + offset_ms;
        let day = local - local.rem_euclid(DAY_MS) - offset_ms;
        let d = by
            .entry((day, a.parameter.as_str()))
            .or_insert_with(|| ExceedanceDay {
                parameter: a.parameter.clone(),
                day,
                windows: 0,
                under_1_1: 0,
                worst: band,
                worst_ratio: a.ratio,
                nth: 0,
            });
        d.windows += 1;
        d.under_1_1 += i64::from(band == Band::Lt1_1);
        if band.severity() > d.worst.severity()
            || (band.severity() == d.worst.severity() && a.ratio > d.worst_ratio)
        {
            (d.worst, d.worst_ratio) = (band, a.ratio);
        }
    }
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    by.into_values()
        .map(|mut d| {
            let n = seen.entry(d.parameter.clone()).or_default();
            *n += 1;
            d.nth = *n;
            d
        })
        .collect()
}

/// The volume discharged up to `to` from flow readings (time, value, unit) in time order: each reading's flow holds
/// until the next one, for at most one reporting interval. A longer gap adds nothing (the flow was not measured; the
/// coverage shows it), and a reading in a unit that is not a flow is left out.
pub fn volume(readings: &[(i64, f64, String)], to: i64, interval_ms: i64, flow: &str) -> Volume {
    let per_hour = Unit::new("m³/h");
    let mut v = Volume::default();
    // Summed as m³/h × ms and divided once, so a steady flow gives its exact product.
    let mut m3_h_ms = 0.0;
    for (k, (ts, value, unit)) in readings.iter().enumerate() {
        let m3_per_h = match units::convert(*value, &Unit::new(unit), &per_hour, flow) {
            Ok(Converted::Same) => *value,
            Ok(Converted::Value(x)) => x,
            Err(_) => continue,
        };
        let next = readings.get(k + 1).map_or(to, |n| n.0);
        let held = (next - ts).clamp(0, interval_ms.max(0));
        m3_h_ms += m3_per_h * held as f64;
        v.covered_ms += held;
    }
    v.m3 = m3_h_ms / HOUR_MS;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    /// 2026-10-01T00:00:00+07:00.
    const OCT1: i64 = 1_790_787_600_000;
    const VN: i64 = 7 * 3_600_000;

    fn flows(
        n: i64,
        skip: std::ops::Range<i64>,
        value: f64,
        unit: &str,
    ) -> Vec<(i64, f64, String)> {
        (0..n)
            .filter(|i| !skip.contains(i))
            .map(|i| (OCT1 + i * 5 * MIN, value, unit.to_string()))
            .collect()
    }

    #[test]
    fn a_day_of_steady_flow_is_its_rate_times_24_hours() {
        let day = flows(288, 0..0, 100.0, "m3/h");
        let v = volume(&day, OCT1 + DAY_MS, 5 * MIN, "Flow");
        assert_eq!((v.m3, v.covered_ms), (2400.0, DAY_MS));
        // A flow in L/s: exactly 3.6 m³/h each, so 25 L/s is 90 m³/h.
        let day = flows(288, 0..0, 25.0, "L/s");
        assert_eq!(volume(&day, OCT1 + DAY_MS, 5 * MIN, "Flow").m3, 2160.0);
    }

    #[test]
    fn a_gap_adds_nothing_and_shows_in_the_coverage() {
        // Half an hour missing (six readings): the reading before the gap holds for one interval only.
        let day = flows(288, 100..106, 120.0, "m3/h");
        let v = volume(&day, OCT1 + DAY_MS, 5 * MIN, "Flow");
        assert_eq!(v.covered_ms, DAY_MS - 30 * MIN);
        assert!((v.m3 - (2880.0 - 60.0)).abs() < 1e-9, "{}", v.m3);
        // A reading in another kind of unit is left out, not guessed.
        let mut odd = flows(12, 0..0, 100.0, "m3/h");
        odd[3].2 = "mg/L".into();
        let v = volume(&odd, OCT1 + HOUR_MS as i64, 5 * MIN, "Flow");
        assert_eq!(v.covered_ms, 55 * MIN);
    }

    fn over(parameter: &str, hour: i64, band: Band, ratio: f64) -> AggregateRow {
        AggregateRow {
            parameter: parameter.into(),
            window_start: OCT1 + hour * 3_600_000,
            mean: None,
            min: None,
            max: None,
            valid: 12,
            expected: 12,
            completeness: 1.0,
            limit_low: None,
            limit_high: Some(100.0),
            ratio: Some(ratio),
            band: band.as_str().into(),
            revision: 0,
        }
    }

    #[test]
    fn exceedances_are_grouped_by_local_day_with_repeats_numbered() {
        let rows = [
            over("COD", 1, Band::Lt1_1, 1.05),
            over("COD", 2, Band::From1_1To1_5, 1.3),
            over("COD", 3, Band::From1_1To1_5, 1.45),
            // 23:00 local on 1 October is still the first day; 00:00 on the 2nd is the next.
            over("TSS", 23, Band::Lt1_1, 1.02),
            over("COD", 24, Band::Lt1_1, 1.08),
            over("pH", 25, Band::OutOfRange, 0.0),
            over("COD", 26, Band::Compliant, 0.9),
        ];
        let days = exceedance_days(&rows, VN);
        let seen: Vec<_> = days
            .iter()
            .map(|d| {
                (
                    d.parameter.as_str(),
                    (d.day - OCT1) / DAY_MS,
                    d.windows,
                    d.under_1_1,
                    d.worst,
                    d.worst_ratio,
                    d.nth,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("COD", 0, 3, 1, Band::From1_1To1_5, Some(1.45), 1),
                ("TSS", 0, 1, 1, Band::Lt1_1, Some(1.02), 1),
                ("COD", 1, 1, 1, Band::Lt1_1, Some(1.08), 2),
                ("pH", 1, 1, 0, Band::OutOfRange, Some(0.0), 1),
            ]
        );
    }
}
