//! A station's on-time transmission rate over the last 24 hours: of the readings observed in that time, the share
//! that arrived within the transmission deadline (Circular 10/2021: 5 minutes; a reading flagged `late` missed it).
//! Counted per observation hour, so the rate follows the clock and a restart picks it up from the ledger.

use std::collections::BTreeMap;

use serde::Serialize;

const HOUR_MS: i64 = 3_600_000;
/// The span the rate covers.
pub const SPAN_MS: i64 = 24 * HOUR_MS;

/// Per observation hour: (readings, readings on time).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transmissions {
    hours: BTreeMap<i64, (u64, u64)>,
}

/// The rate as the API shows it.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct OnTime {
    pub readings_24h: u64,
    pub on_time_24h: u64,
    /// `None` without readings.
    pub on_time_pct_24h: Option<f64>,
}

impl Transmissions {
    /// Count hours read back from the ledger: (hour start, readings, on time).
    pub fn seed(rows: impl IntoIterator<Item = (i64, u64, u64)>) -> Self {
        Transmissions {
            hours: rows.into_iter().map(|(h, n, ok)| (h, (n, ok))).collect(),
        }
    }

    /// Count one reading observed at `ts` (ignored when its hour has left the span at `now`).
    pub fn count(&mut self, ts: i64, on_time: bool, now: i64) {
        let hour = hour_of(ts);
        if hour < first_hour(now) {
            return;
        }
        let e = self.hours.entry(hour).or_default();
        e.0 += 1;
        e.1 += u64::from(on_time);
    }

    /// The rate at `now`; hours that left the span are forgotten.
    pub fn rate(&mut self, now: i64) -> OnTime {
        self.hours = self.hours.split_off(&first_hour(now));
        let (n, ok) = self
            .hours
            .values()
            .fold((0, 0), |(n, ok), (a, b)| (n + a, ok + b));
        OnTime {
            readings_24h: n,
            on_time_24h: ok,
            on_time_pct_24h: (n > 0).then(|| (10_000.0 * ok as f64 / n as f64).round() / 100.0),
        }
    }
}

fn hour_of(ts: i64) -> i64 {
    ts - ts.rem_euclid(HOUR_MS)
}

/// The oldest hour the span holds at `now` (the hour `now - 24 h` falls in).
pub fn first_hour(now: i64) -> i64 {
    hour_of(now - SPAN_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_counts_the_last_24_hours_and_forgets_older_ones() {
        let now = 100 * HOUR_MS + 1_000;
        let mut t = Transmissions::seed([(now - 30 * HOUR_MS, 10, 0), (now - 2 * HOUR_MS, 3, 2)]);
        t.count(now - 60_000, true, now);
        t.count(now - 25 * HOUR_MS, false, now); // its hour left the span: not counted
        let r = t.rate(now);
        assert_eq!((r.readings_24h, r.on_time_24h), (4, 3));
        assert_eq!(r.on_time_pct_24h, Some(75.0));
        assert_eq!(Transmissions::default().rate(now).on_time_pct_24h, None);
    }
}
