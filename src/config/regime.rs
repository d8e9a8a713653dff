//! `[[station.regime]]`: limits that change on a date. The station's own `profile`, `design_flow_m3_day` and
//! permit limits (`parameters.X.limit`) are the regime in force from the start; each `[[station.regime]]` replaces
//! them from local midnight of its `from` date (the config's time zone), e.g. QCVN 40:2011 column B until
//! 31/12/2031, then the permit's QCVN 40:2025 values from 01/01/2032.

use std::collections::BTreeMap;

use chrono::{FixedOffset, NaiveDate, NaiveTime, TimeZone};
use serde::Deserialize;

use super::Problems;
use crate::model::Timestamp;

/// A permit limit: one maximum or a two-sided range.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum LimitText {
    Max(f64),
    Range([f64; 2]),
}

impl LimitText {
    /// Why this limit cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        match self {
            LimitText::Max(m) if !(m.is_finite() && *m > 0.0) => {
                Some(format!("{m} is not a positive limit"))
            }
            LimitText::Range([lo, hi]) if !(lo.is_finite() && hi.is_finite() && lo < hi) => Some(
                format!("[{lo}, {hi}] is not a range; expected [low, high] with low < high"),
            ),
            _ => None,
        }
    }
}

/// A regime as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegimeSection {
    /// First local day the regime is in force, `yyyy-MM-dd`: it applies from local midnight of that day (the
    /// config's `daemon.timezone`) until the next regime's `from`.
    pub from: String,
    /// What the regime is called in `check-config`, the report and the API, e.g.
    /// `"QCVN 40:2025/BTNMT (permit 123/GPMT-BTNMT)"`. Default: the profile's title, or `permit limits`.
    pub name: Option<String>,
    /// Limit profile of this regime (its C values with Kq and Kf). Not inherited from the station: a regime without
    /// a profile is the permit's values alone (`limits`), as QCVN 40:2025 is expressed.
    pub profile: Option<String>,
    /// Design (permitted) discharge flow in m³/day for Kf in this regime; default the station's.
    pub design_flow_m3_day: Option<f64>,
    /// The permit's limits in this regime by parameter symbol, replacing the profile's: `{ COD = 75, pH = [6, 9] }`.
    #[serde(default)]
    pub limits: BTreeMap<String, LimitText>,
}

/// A checked regime (a later one; the station's own keys are the first).
#[derive(Debug, Clone, PartialEq)]
pub struct Regime {
    /// First local day in force.
    pub from_date: NaiveDate,
    /// Local midnight of `from_date`, UTC.
    pub from: Timestamp,
    pub name: Option<String>,
    pub profile: Option<String>,
    pub design_flow_m3_day: f64,
    pub limits: BTreeMap<String, LimitText>,
    /// Index in the station's `regime` list, for messages (`station[i].regime[j]`).
    pub index: usize,
}

/// UTC time of local midnight starting `date` in `tz`.
pub fn local_midnight(date: NaiveDate, tz: FixedOffset) -> Timestamp {
    let local = date.and_time(NaiveTime::MIN);
    // A fixed offset has exactly one UTC time for every local time.
    let utc = tz
        .from_local_datetime(&local)
        .single()
        .map_or_else(|| local.and_utc(), |t| t.to_utc());
    Timestamp(utc.timestamp_millis())
}

/// Check a station's regimes (`key` is the station's key path): dates in `yyyy-MM-dd`, strictly increasing, each
/// regime with a profile or limits, limits of monitored parameters only and of a usable shape.
pub(super) fn validate(
    p: &mut Problems,
    key: &str,
    sections: &[RegimeSection],
    station_flow: f64,
    symbols: &[&str],
    tz: FixedOffset,
) -> Vec<Regime> {
    let mut out: Vec<Regime> = Vec::with_capacity(sections.len());
    for (j, r) in sections.iter().enumerate() {
        let key = format!("{key}.regime[{j}]");
        let from_date = match NaiveDate::parse_from_str(r.from.trim(), "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                p.push(
                    format!("{key}.from"),
                    format!(
                        "{:?} is not a date; expected yyyy-MM-dd, e.g. \"2032-01-01\" (in force from local midnight)",
                        r.from
                    ),
                );
                None
            }
        };
        if let (Some(d), Some(prev)) = (from_date, out.last()) {
            if d == prev.from_date {
                p.push(
                    format!("{key}.from"),
                    format!(
                        "{d} is also regime[{}]'s date; each date starts one regime",
                        prev.index
                    ),
                );
            } else if d < prev.from_date {
                p.push(
                    format!("{key}.from"),
                    format!(
                        "{d} is before regime[{}]'s {}; list regimes in date order",
                        prev.index, prev.from_date
                    ),
                );
            }
        }
        check_regime(p, &key, r, symbols);
        let flow = r.design_flow_m3_day.unwrap_or(station_flow);
        if let Some(from_date) = from_date {
            out.push(Regime {
                from_date,
                from: local_midnight(from_date, tz),
                name: r.name.as_ref().map(|n| n.trim().to_string()),
                profile: r.profile.as_ref().map(|n| n.trim().to_string()),
                design_flow_m3_day: flow,
                limits: r.limits.clone(),
                index: j,
            });
        }
    }
    out
}

/// The keys of one regime other than its date.
fn check_regime(p: &mut Problems, key: &str, r: &RegimeSection, symbols: &[&str]) {
    if r.name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        p.push(
            format!("{key}.name"),
            "must not be empty; leave the key out to use the profile's title",
        );
    }
    match &r.profile {
        Some(n) if n.trim().is_empty() => p.push(
            format!("{key}.profile"),
            "must name a limit profile, e.g. \"qcvn40-2011-b\", or be left out for permit limits alone",
        ),
        None if r.limits.is_empty() => p.push(
            key,
            "incomplete: give the limits in force from this date (limits = { COD = 75, … }, the permit's values) \
             or a profile",
        ),
        _ => {}
    }
    if let Some(f) = r.design_flow_m3_day {
        if !(f.is_finite() && f > 0.0) {
            p.push(
                format!("{key}.design_flow_m3_day"),
                format!("{f} is not a positive flow in m³/day"),
            );
        }
    }
    for (sym, limit) in &r.limits {
        let k = format!("{key}.limits.{sym}");
        if !symbols.contains(&sym.as_str()) {
            p.push(
                &k,
                format!(
                    "parameter {sym:?} is not monitored by this station; expected one of {}",
                    symbols.join(", ")
                ),
            );
        }
        if let Some(problem) = limit.problem() {
            p.push(k, problem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_in_vietnam_is_17_utc_the_day_before() {
        let tz = FixedOffset::east_opt(7 * 3600).unwrap();
        let d = NaiveDate::from_ymd_opt(2032, 1, 1).unwrap();
        let t = local_midnight(d, tz);
        let utc = chrono::DateTime::from_timestamp_millis(t.0).unwrap();
        assert_eq!(utc.to_rfc3339(), "2031-12-31T17:00:00+00:00");
    }
}
