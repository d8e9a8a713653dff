//! The history of one series (a station's parameter) over any range, for the dashboard's history view and its
//! downloads: the range's min, max and mean of measuring readings with the limit in force, the readings themselves
//! (or time buckets of them when there are too many to draw), the stored hourly and daily aggregates, and the
//! readings one at a time for a download. Every query walks one range of the `(station, ts, parameter)` key, or of
//! the aggregates' primary key; none sorts or scans a table.

use rusqlite::{params, OptionalExtension};

use super::export::ReadingRow;
use super::{LedgerError, Reader};

/// A series as the ledger keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    pub station: i64,
    pub parameter: i64,
}

/// What the measuring readings of a range come to, and the limit they were judged against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RangeStats {
    /// Readings of any status in the range.
    pub readings: i64,
    /// Measuring readings (the ones min, max and mean are of).
    pub valid: i64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// Measuring readings whose band is beyond the limit.
    pub exceeding: i64,
    /// The unit and limits of the newest reading in the range.
    pub unit: Option<String>,
    pub limit_low: Option<f64>,
    pub limit_high: Option<f64>,
    /// True when the upper limit was not the same for every reading of the range (a dated regime changed it).
    pub limit_changed: bool,
    pub first: Option<i64>,
    pub last: Option<i64>,
}

/// One stored reading as the chart draws it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPoint {
    pub ts: i64,
    pub value: f64,
    pub status: u8,
    pub band: String,
    pub limit_low: Option<f64>,
    pub limit_high: Option<f64>,
}

/// A time bucket (a stored window, or a group of readings): mean, min and max of its measuring readings.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketPoint {
    pub start: i64,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub valid: i64,
    pub limit_low: Option<f64>,
    pub limit_high: Option<f64>,
}

/// Bands that are not beyond a limit.
const WITHIN: &str = "('compliant', 'no_limit', 'not_evaluated')";

impl Reader {
    /// The ledger's keys of `station`'s `parameter`; `None` when the ledger has no reading of either.
    pub fn series(&self, station: &str, parameter: &str) -> Result<Option<Series>, LedgerError> {
        Ok(self
            .connection()
            .query_row(
                "SELECT s.id, p.id FROM stations s, parameters p WHERE s.code = ?1 AND p.symbol = ?2",
                params![station, parameter],
                |r| {
                    Ok(Series {
                        station: r.get(0)?,
                        parameter: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Min, max and mean of the measuring readings with `from <= ts < to`, with the limit of the newest reading.
    pub fn range_stats(&self, s: Series, from: i64, to: i64) -> Result<RangeStats, LedgerError> {
        let sql = format!(
            "SELECT COUNT(*), IFNULL(SUM(status = 0), 0), MIN(CASE WHEN status = 0 THEN value END), \
             MAX(CASE WHEN status = 0 THEN value END), AVG(CASE WHEN status = 0 THEN value END), \
             IFNULL(SUM(status = 0 AND band NOT IN {WITHIN}), 0), \
             COUNT(DISTINCT limit_high) > 1, MIN(ts), MAX(ts) \
             FROM readings WHERE station_id = ?1 AND ts >= ?2 AND ts < ?3 AND parameter_id = ?4"
        );
        let conn = self.connection();
        let mut stats = conn.prepare_cached(&sql)?.query_row(
            params![s.station, from, to, s.parameter],
            |r| {
                Ok(RangeStats {
                    readings: r.get(0)?,
                    valid: r.get(1)?,
                    min: r.get(2)?,
                    max: r.get(3)?,
                    mean: r.get(4)?,
                    exceeding: r.get(5)?,
                    limit_changed: r.get(6)?,
                    first: r.get(7)?,
                    last: r.get(8)?,
                    ..RangeStats::default()
                })
            },
        )?;
        if let Some(last) = stats.last {
            let (unit, low, high) = conn
                .prepare_cached(
                    "SELECT unit, limit_low, limit_high FROM readings \
                     WHERE station_id = ?1 AND ts = ?2 AND parameter_id = ?3",
                )?
                .query_row(params![s.station, last, s.parameter], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            (stats.unit, stats.limit_low, stats.limit_high) = (Some(unit), low, high);
        }
        Ok(stats)
    }

    /// The readings with `from <= ts < to`, in time order, at most `limit`.
    pub fn raw_points(
        &self,
        s: Series,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<RawPoint>, LedgerError> {
        let mut st = self.connection().prepare_cached(
            "SELECT ts, value, status, band, limit_low, limit_high FROM readings \
             WHERE station_id = ?1 AND ts >= ?2 AND ts < ?3 AND parameter_id = ?4 ORDER BY ts LIMIT ?5",
        )?;
        let rows = st.query_map(
            params![s.station, from, to, s.parameter, limit as i64],
            |r| {
                Ok(RawPoint {
                    ts: r.get(0)?,
                    value: r.get(1)?,
                    status: r.get(2)?,
                    band: r.get(3)?,
                    limit_low: r.get(4)?,
                    limit_high: r.get(5)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The measuring readings with `from <= ts < to` grouped in buckets of `bucket_ms` that start at local
    /// boundaries (`offset_ms`: local time minus UTC); empty buckets are left out.
    pub fn bucket_points(
        &self,
        s: Series,
        from: i64,
        to: i64,
        bucket_ms: i64,
        offset_ms: i64,
    ) -> Result<Vec<BucketPoint>, LedgerError> {
        let mut st = self.connection().prepare_cached(
            "SELECT (ts + ?5) - ((ts + ?5) % ?6) - ?5 AS start, AVG(value), MIN(value), MAX(value), COUNT(*), \
             MIN(limit_low), MAX(limit_high) FROM readings \
             WHERE station_id = ?1 AND ts >= ?2 AND ts < ?3 AND parameter_id = ?4 AND status = 0 \
             GROUP BY start ORDER BY start",
        )?;
        let rows = st.query_map(
            params![s.station, from, to, s.parameter, offset_ms, bucket_ms],
            bucket,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether the aggregator keeps windows of `window_ms` for the series.
    pub fn has_windows(&self, s: Series, window_ms: i64) -> Result<bool, LedgerError> {
        Ok(self
            .connection()
            .prepare_cached(
                "SELECT 1 FROM aggregates WHERE station_id = ?1 AND parameter_id = ?2 AND window_ms = ?3 LIMIT 1",
            )?
            .query_row(params![s.station, s.parameter, window_ms], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The stored windows of `window_ms` starting in `[from, to)`, in time order.
    pub fn window_points(
        &self,
        s: Series,
        window_ms: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<BucketPoint>, LedgerError> {
        let mut st = self.connection().prepare_cached(
            "SELECT window_start, mean, min, max, valid, limit_low, limit_high FROM aggregates \
             WHERE station_id = ?1 AND parameter_id = ?2 AND window_ms = ?3 AND window_start >= ?4 \
             AND window_start < ?5 ORDER BY window_start",
        )?;
        let rows = st.query_map(params![s.station, s.parameter, window_ms, from, to], bucket)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many readings the series has with `from <= ts < to`.
    pub fn count_range(&self, s: Series, from: i64, to: i64) -> Result<i64, LedgerError> {
        Ok(self.connection().prepare_cached(
            "SELECT COUNT(*) FROM readings WHERE station_id = ?1 AND ts >= ?2 AND ts < ?3 AND parameter_id = ?4",
        )?
        .query_row(params![s.station, from, to, s.parameter], |r| r.get(0))?)
    }
}

fn bucket(r: &rusqlite::Row<'_>) -> rusqlite::Result<BucketPoint> {
    Ok(BucketPoint {
        start: r.get(0)?,
        mean: r.get(1)?,
        min: r.get(2)?,
        max: r.get(3)?,
        valid: r.get(4)?,
        limit_low: r.get(5)?,
        limit_high: r.get(6)?,
    })
}

impl Reader {
    /// Every reading of the series with `from <= ts < to`, in time order, handed to `f` one at a time (a download
    /// of a year holds one row at a time). Read inside a [`Reader::snapshot`] for one consistent view.
    pub fn for_each_series_reading<E: From<LedgerError>>(
        &self,
        s: Series,
        parameter: &std::sync::Arc<str>,
        from: i64,
        to: i64,
        mut f: impl FnMut(&ReadingRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut st = self
            .connection()
            .prepare(
                "SELECT seq, ts, value, unit, status, source, received, limit_low, limit_high, ratio, band, flags \
                 FROM readings WHERE station_id = ?1 AND ts >= ?2 AND ts < ?3 AND parameter_id = ?4 ORDER BY ts",
            )
            .map_err(LedgerError::from)?;
        let mut rows = st
            .query(params![s.station, from, to, s.parameter])
            .map_err(LedgerError::from)?;
        while let Some(r) = rows.next().map_err(LedgerError::from)? {
            f(&super::export::reading(r, parameter)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::{Assessment, Band, Flags, LimitBound};
    use crate::config::Synchronous;
    use crate::ledger::{Evaluated, Ledger};
    use crate::model::{Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit};

    fn reading(p: &str, ts: i64, value: f64, status: Status) -> Evaluated {
        Evaluated {
            reading: Reading {
                station: StationId::parse("BN_A_B").unwrap(),
                parameter: Parameter::new(p).unwrap(),
                ts: Timestamp(ts),
                value,
                unit: Unit::new("mg/L"),
                status,
            },
            assessment: Assessment {
                rules: Default::default(),
                limit: Some(LimitBound::Max(100.0)),
                ratio: Some(value / 100.0),
                band: if value > 100.0 {
                    Band::Lt1_1
                } else {
                    Band::Compliant
                },
                flags: Flags::default(),
            },
            source: SourceKind::Sim,
            received: None,
        }
    }

    /// COD every minute for two hours (values 50, 51, … and one calibrating 500 at minute 10), TSS beside it.
    fn filled() -> (tempfile::TempDir, Reader, Series) {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&dir.path().join("l.db"), Synchronous::Normal).unwrap();
        let mut batch = Vec::new();
        for m in 0..120 {
            let status = if m == 10 {
                Status::Calibrating
            } else {
                Status::Measuring
            };
            let v = if m == 10 { 500.0 } else { 50.0 + m as f64 };
            batch.push(reading("COD", m * 60_000, v, status));
            batch.push(reading("TSS", m * 60_000, 1.0, Status::Measuring));
        }
        l.commit(&batch, &[]).unwrap();
        let r = l.reader().unwrap();
        let s = r.series("BN_A_B", "COD").unwrap().unwrap();
        (dir, r, s)
    }

    #[test]
    fn stats_are_of_measuring_readings_of_the_range() {
        let (_d, r, s) = filled();
        let st = r.range_stats(s, 0, 60 * 60_000).unwrap();
        assert_eq!((st.readings, st.valid), (60, 59));
        assert_eq!((st.min, st.max), (Some(50.0), Some(109.0)));
        let mean = (0..60)
            .filter(|m| *m != 10)
            .map(|m| 50.0 + m as f64)
            .sum::<f64>()
            / 59.0;
        assert!((st.mean.unwrap() - mean).abs() < 1e-9);
        // 101 … 109: nine readings over the limit.
        assert_eq!(st.exceeding, 9);
        assert_eq!(
            (st.limit_high, st.unit.as_deref(), st.limit_changed),
            (Some(100.0), Some("mg/L"), false)
        );
        assert_eq!((st.first, st.last), (Some(0), Some(59 * 60_000)));
        assert_eq!(
            r.range_stats(s, 10_000_000, 20_000_000).unwrap().readings,
            0
        );
    }

    #[test]
    fn raw_points_buckets_and_rows_follow_the_range() {
        let (_d, r, s) = filled();
        let raw = r.raw_points(s, 30 * 60_000, 40 * 60_000, 1000).unwrap();
        assert_eq!(raw.len(), 10);
        assert_eq!(raw[0].ts, 30 * 60_000);
        assert_eq!(r.raw_points(s, 0, 120 * 60_000, 7).unwrap().len(), 7);
        // Buckets of 30 minutes aligned to local half hours (UTC+7 is whole hours): 4, the calibrating one left out.
        let b = r
            .bucket_points(s, 0, 120 * 60_000, 1_800_000, 7 * 3_600_000)
            .unwrap();
        assert_eq!(
            b.iter().map(|p| p.start).collect::<Vec<_>>(),
            [0, 1_800_000, 3_600_000, 5_400_000]
        );
        assert_eq!(b[0].valid, 29);
        assert_eq!((b[0].min, b[0].max), (Some(50.0), Some(79.0)));
        assert_eq!(r.count_range(s, 0, 120 * 60_000).unwrap(), 120);
        let mut ts = Vec::new();
        let name: std::sync::Arc<str> = "COD".into();
        r.for_each_series_reading::<LedgerError>(s, &name, 60_000, 4 * 60_000, |row| {
            ts.push((row.ts, row.value));
            Ok(())
        })
        .unwrap();
        assert_eq!(ts, [(60_000, 51.0), (120_000, 52.0), (180_000, 53.0)]);
        assert!(r.series("BN_A_B", "Hg").unwrap().is_none());
    }
}
