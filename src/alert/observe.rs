//! What one reading or one judged window tells each alert key of its series. Pure: shared by the runner (live and
//! replayed data) and by re-derivation (a series' history read back in observation order), so both judge alike.

use super::engine::{Detail, Kind};
use super::message::Context;
use crate::compliance::{Band, Flags, LimitBound};
use crate::model::{Status, Timestamp};

/// A reading as the alert engine sees it (from the broadcast or read back from the ledger).
pub struct ReadingObs<'a> {
    pub station: &'a str,
    pub parameter: &'a str,
    pub ts: i64,
    pub value: f64,
    pub unit: &'a str,
    pub status: Status,
    pub band: Band,
    pub ratio: Option<f64>,
    /// (lower bound, upper bound or Cmax).
    pub limit: (Option<f64>, Option<f64>),
    pub flags: Flags,
}

impl<'a> From<&'a crate::ledger::alerts::ReplayReading> for ReadingObs<'a> {
    fn from(r: &'a crate::ledger::alerts::ReplayReading) -> Self {
        ReadingObs {
            station: &r.station,
            parameter: &r.parameter,
            ts: r.ts,
            value: r.value,
            unit: &r.unit,
            status: r.status,
            band: r.band,
            ratio: r.ratio,
            limit: r.limit,
            flags: r.flags,
        }
    }
}

impl<'a> From<&'a crate::ledger::Evaluated> for ReadingObs<'a> {
    fn from(e: &'a crate::ledger::Evaluated) -> Self {
        let (r, a) = (&e.reading, &e.assessment);
        ReadingObs {
            station: r.station.as_str(),
            parameter: r.parameter.as_str(),
            ts: r.ts.millis(),
            value: r.value,
            unit: r.unit.as_str(),
            status: r.status,
            band: a.band,
            ratio: a.ratio,
            limit: LimitBound::bounds(a.limit),
            flags: a.flags,
        }
    }
}

/// The kinds a reading is observed by (its series' keys); the others come from windows or the wall clock.
pub const READING_KINDS: [Kind; 4] = [
    Kind::Exceedance,
    Kind::Quality,
    Kind::Fault,
    Kind::Calibration,
];

/// What a reading says to each key of its series — (kind, bad, detail) — in the order the runner feeds them. A
/// kind the reading says nothing about (an exceedance without a limit) is absent.
pub fn reading(ctx: &Context, r: &ReadingObs<'_>) -> Vec<(Kind, bool, Detail)> {
    kinds(r.status)
        .iter()
        .filter_map(|k| reading_kind(ctx, r, *k).map(|(bad, detail)| (*k, bad, detail)))
        .collect()
}

/// Whether a reading is bad for each key of its series it speaks to, without the details (what scheduling a
/// re-derivation needs).
pub fn reading_verdicts<'a>(r: &'a ReadingObs<'_>) -> impl Iterator<Item = (Kind, bool)> + 'a {
    kinds(r.status)
        .iter()
        .filter_map(|k| reading_bad(r, *k).map(|bad| (*k, bad)))
}

/// The keys a reading of this status speaks to, in the order they are told.
fn kinds(status: Status) -> &'static [Kind] {
    match status {
        Status::Measuring => &[
            Kind::Fault,
            Kind::Calibration,
            Kind::Exceedance,
            Kind::Quality,
        ],
        Status::Calibrating => &[Kind::Calibration, Kind::Fault],
        Status::Fault | Status::Maintenance => &[Kind::Fault, Kind::Calibration],
    }
}

/// What a reading says to one key of its series (re-deriving one key reads only what it needs).
pub fn reading_kind(ctx: &Context, r: &ReadingObs<'_>, kind: Kind) -> Option<(bool, Detail)> {
    let bad = reading_bad(r, kind)?;
    let note = match kind {
        Kind::Fault | Kind::Calibration if bad => format!(
            "status {} ({}) at {}",
            r.status.code(),
            r.status.as_str(),
            local(ctx, r.ts)
        ),
        Kind::Quality => quality_flags(r).names(),
        _ => String::new(),
    };
    let detail = Detail {
        ts: r.ts,
        value: Some(r.value),
        unit: r.unit.to_string(),
        limit_low: r.limit.0,
        limit_high: r.limit.1,
        ratio: r.ratio,
        band: r.band.as_str().to_string(),
        band_severity: r.band.severity(),
        note,
    };
    Some((bad, detail))
}

/// Whether a reading is bad for one key of its series; `None`: it says nothing to that key.
pub fn reading_bad(r: &ReadingObs<'_>, kind: Kind) -> Option<bool> {
    match (r.status, kind) {
        (Status::Fault, Kind::Fault) | (Status::Calibrating, Kind::Calibration) => Some(true),
        (_, Kind::Fault | Kind::Calibration) => Some(false),
        (Status::Measuring, Kind::Exceedance) => {
            (!matches!(r.band, Band::NoLimit | Band::NotEvaluated)).then(|| r.band.is_exceedance())
        }
        (Status::Measuring, Kind::Quality) => Some(!quality_flags(r).is_empty()),
        _ => None,
    }
}

/// The flags that raise `quality` alerts.
fn quality_flags(r: &ReadingObs<'_>) -> Flags {
    Flags(r.flags.0 & (Flags::FLAT_LINE.0 | Flags::SPIKE.0))
}

/// A judging window as the alert engine sees it: its verdict (`NotEvaluated` while only a forecast).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowObs {
    pub window_start: i64,
    pub mean: Option<f64>,
    pub completeness: f64,
    pub ratio: Option<f64>,
    pub band: Band,
    /// The limit the window was judged against (the one in force at its start), when known.
    pub limit: (Option<f64>, Option<f64>),
}

impl From<&crate::ledger::alerts::JudgingWindow> for WindowObs {
    fn from(w: &crate::ledger::alerts::JudgingWindow) -> Self {
        WindowObs {
            window_start: w.window_start,
            mean: w.mean,
            completeness: w.completeness,
            ratio: w.ratio,
            band: w.band,
            limit: w.limit,
        }
    }
}

/// The violation observation of a judged window; `None` while it is a forecast or has no limit. `limit` is the
/// series' latest (lower, upper, unit); without a bound, the upper one follows from the mean and its multiple.
pub fn violation(
    ctx: &Context,
    w: &WindowObs,
    limit: (Option<f64>, Option<f64>, String),
) -> Option<(bool, Detail)> {
    if matches!(w.band, Band::NoLimit | Band::NotEvaluated) {
        return None;
    }
    let (mut lo, mut hi, unit) = limit;
    if w.limit != (None, None) {
        (lo, hi) = w.limit;
    }
    if lo.is_none() && hi.is_none() {
        hi = w
            .mean
            .zip(w.ratio)
            .filter(|(_, r)| *r > 0.0)
            .map(|(m, r)| m / r);
    }
    let detail = Detail {
        ts: w.window_start,
        value: w.mean,
        unit,
        limit_low: lo,
        limit_high: hi,
        ratio: w.ratio,
        band: w.band.as_str().to_string(),
        band_severity: w.band.severity(),
        note: format!("mean of the window from {}", local(ctx, w.window_start)),
    };
    Some((w.band.is_exceedance(), detail))
}

/// The subject of a series' completeness alerts (a quality kind beside the parameter's own).
pub fn completeness_subject(parameter: &str) -> String {
    format!("{parameter}:completeness")
}

/// The parameter of a completeness subject.
pub fn completeness_parameter(subject: &str) -> Option<&str> {
    subject.strip_suffix(":completeness")
}

/// The completeness observation of a closed window: bad at or below `below`.
pub fn completeness(
    ctx: &Context,
    window_start: i64,
    completeness: f64,
    below: f64,
) -> (bool, Detail) {
    let detail = Detail {
        ts: window_start,
        note: format!(
            "completeness {:.0} % in the window from {}",
            completeness * 100.0,
            local(ctx, window_start)
        ),
        ..Detail::default()
    };
    (completeness <= below, detail)
}

pub fn local(ctx: &Context, ms: i64) -> String {
    Timestamp(ms)
        .to_local(ctx.timezone)
        .format("%d/%m/%Y %H:%M")
        .to_string()
}
