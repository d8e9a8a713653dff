//! The compliance summary of a plant (station) for a period, from the judging-window aggregates:
//! - an hour (window) is **evaluated** when at least one parameter with a limit has a verdict for it;
//! - it is **compliant** when evaluated and no parameter's window mean broke its limit;
//! - **% valid data**: valid (measuring) readings ÷ expected readings (window ÷ reporting interval, for every
//!   monitored parameter and every window of the period, also the windows with no data at all);
//! - **exceedances by band**: (window, parameter) pairs per Decree 45 band;
//! - **% on time**: readings of the period that arrived within the Circular 10 transmission deadline (not flagged
//!   `late`) ÷ readings of the period.
//!
//! A period that is not over yet (a month in progress) is counted only up to the last window that has ended
//! ([`counted_to`]): hours still to come are neither expected nor evaluated.

use std::collections::BTreeMap;

use crate::compliance::Band;
use crate::ledger::export::Snapshot;
use crate::ledger::LedgerError;

/// The exceedance bands, in order of severity.
pub const EXCEEDANCE_BANDS: [Band; 7] = [
    Band::Lt1_1,
    Band::OutOfRange,
    Band::From1_1To1_5,
    Band::From1_5To3,
    Band::From3To5,
    Band::From5To10,
    Band::Ge10,
];

/// What the summary needs to know about the station besides the ledger.
#[derive(Debug, Clone)]
pub struct SummaryInput {
    pub station_id: i64,
    /// The judging window (averaging window), ms.
    pub window_ms: i64,
    /// Reporting interval, ms.
    pub interval_ms: i64,
    /// Monitored parameters (configured; for a station no longer configured, those with aggregates).
    pub parameters: usize,
    pub from: i64,
    pub to: i64,
}

/// The numbers of one plant and period.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub windows_in_period: i64,
    pub hours_evaluated: i64,
    pub hours_compliant: i64,
    pub valid_readings: i64,
    pub expected_readings: i64,
    /// (window, parameter) pairs per exceedance band, in [`EXCEEDANCE_BANDS`] order.
    pub exceedances: [i64; 7],
    /// Readings observed in the period, and those of them that arrived within the transmission deadline.
    pub readings: i64,
    pub on_time: i64,
}

impl Summary {
    /// Compliant hours as a percentage of evaluated hours (None when nothing was evaluated).
    pub fn compliant_pct(&self) -> Option<f64> {
        (self.hours_evaluated > 0)
            .then(|| round2(100.0 * self.hours_compliant as f64 / self.hours_evaluated as f64))
    }
    /// Valid readings as a percentage of expected ones.
    pub fn valid_pct(&self) -> Option<f64> {
        (self.expected_readings > 0)
            .then(|| round2(100.0 * self.valid_readings as f64 / self.expected_readings as f64))
    }
    /// Readings that arrived within the transmission deadline, as a percentage of the period's readings.
    pub fn on_time_pct(&self) -> Option<f64> {
        (self.readings > 0).then(|| round2(100.0 * self.on_time as f64 / self.readings as f64))
    }
    pub fn exceedance_total(&self) -> i64 {
        self.exceedances.iter().sum()
    }
}

/// The end of what is counted of `[from, to)` at `now`: `to` once the period is over, else the end of the last
/// window (of `window_ms`, aligned to `from`) that has ended by `now`; `from` before the period begins.
pub fn counted_to(from: i64, to: i64, now: i64, window_ms: i64) -> i64 {
    let w = window_ms.max(1);
    if now >= to {
        to
    } else if now <= from {
        from
    } else {
        from + (now - from) / w * w
    }
}

/// Round to two decimals (shown numbers; the counts stay exact).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn compute(ledger: &Snapshot<'_>, s: &SummaryInput) -> Result<Summary, LedgerError> {
    let w = s.window_ms.max(1);
    let mut out = Summary {
        windows_in_period: ((s.to - s.from).max(0) + w - 1) / w,
        ..Default::default()
    };
    // window start → (evaluated, exceeded)
    let mut hours: BTreeMap<i64, (bool, bool)> = BTreeMap::new();
    let mut valid_in_windows = 0i64;
    ledger.for_each_aggregate::<LedgerError>(s.station_id, w, s.from, s.to, |a| {
        valid_in_windows += a.valid;
        let band = Band::parse(&a.band).unwrap_or(Band::NotEvaluated);
        let h = hours.entry(a.window_start).or_default();
        if !matches!(band, Band::NotEvaluated | Band::NoLimit) {
            h.0 = true;
        }
        if band.is_exceedance() {
            h.1 = true;
            if let Some(i) = EXCEEDANCE_BANDS.iter().position(|b| *b == band) {
                out.exceedances[i] += 1;
            }
        }
        Ok(())
    })?;
    out.hours_evaluated = hours.values().filter(|h| h.0).count() as i64;
    out.hours_compliant = hours.values().filter(|h| h.0 && !h.1).count() as i64;
    out.valid_readings = valid_in_windows;
    (out.readings, out.on_time) = ledger.transmissions(s.station_id, s.from, s.to)?;
    out.expected_readings =
        out.windows_in_period * (w / s.interval_ms.max(1)) * s.parameters as i64;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::counted_to;

    #[test]
    fn a_period_in_progress_counts_only_the_windows_that_ended() {
        const H: i64 = 3_600_000;
        let (from, to) = (10 * H, 10 * H + 720 * H);
        assert_eq!(
            counted_to(from, to, from + 5 * H + 59 * 60_000, H),
            from + 5 * H
        );
        assert_eq!(counted_to(from, to, from + 5 * H, H), from + 5 * H);
        assert_eq!(counted_to(from, to, from - 1, H), from, "not begun");
        assert_eq!(counted_to(from, to, to + 1, H), to, "over");
        assert_eq!(
            counted_to(from, to, from + 30 * H, 24 * H),
            from + 24 * H,
            "days align to the period's start"
        );
    }
}
