//! A series' history for the dashboard's history view: `GET /api/history?station&parameter&from&to[&resolution]`
//! answers the range's min, max and mean of measuring readings against the limit, and points to draw (the readings,
//! time buckets of them when there are more than a chart needs, or the stored hourly / daily aggregates), never more
//! than [`MAX_POINTS`]; `GET /api/history/download?…&format=csv|xlsx` streams the range's readings with the same
//! columns in both formats. Viewers may read both: it is the data the chart shows.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Json;
use chrono::FixedOffset;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::api::check_known;
use super::auth::{RequireRole, Viewer};
use super::export::ChannelWriter;
use super::scope::require_station;
use super::{ApiError, AppState};
use crate::config::scope::StationScope;
use crate::export::table::{Cell, TableWriter};
use crate::ledger::export::ReadingRow;
use crate::ledger::history::{BucketPoint, RangeStats, Series};
use crate::ledger::{LedgerError, Reader};
use crate::model::{Status, Timestamp};

/// The most points one answer carries (a chart 2,000 px wide needs far fewer).
pub const MAX_POINTS: usize = 10_000;
/// Raw readings are drawn as they are up to this many; past it, in time buckets with their min and max.
const MAX_RAW: usize = 5_000;
/// The longest range one request may cover.
const MAX_RANGE_MS: i64 = 10 * 366 * DAY_MS;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Ranges up to this long are drawn from the readings by default, up to [`AUTO_HOUR_UP_TO`] from hourly means,
/// longer ones from daily means.
const AUTO_RAW_UP_TO: i64 = 3 * DAY_MS;
const AUTO_HOUR_UP_TO: i64 = 93 * DAY_MS;
/// Bucket lengths a raw range is drawn in when it holds more readings than [`MAX_RAW`].
const BUCKETS: [i64; 14] = [
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    HOUR_MS,
    2 * HOUR_MS,
    3 * HOUR_MS,
    6 * HOUR_MS,
    12 * HOUR_MS,
    DAY_MS,
    2 * DAY_MS,
    7 * DAY_MS,
];
/// The most rows a spreadsheet holds, header included.
const XLSX_MAX_ROWS: i64 = 1_048_576;

/// The download's columns, the same in CSV and XLSX.
pub const COLUMNS: &[&str] = &[
    "station",
    "parameter",
    "time_local",
    "time_utc",
    "value",
    "unit",
    "status",
    "flags",
    "limit_low",
    "limit_high",
    "ratio",
    "band",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    Raw,
    Hour,
    Day,
}

impl Resolution {
    fn as_str(self) -> &'static str {
        match self {
            Resolution::Raw => "raw",
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }
    fn window_ms(self) -> Option<i64> {
        match self {
            Resolution::Raw => None,
            Resolution::Hour => Some(HOUR_MS),
            Resolution::Day => Some(DAY_MS),
        }
    }
    /// What `resolution=auto` (or none) picks for a range.
    fn auto(range_ms: i64) -> Self {
        if range_ms <= AUTO_RAW_UP_TO {
            Resolution::Raw
        } else if range_ms <= AUTO_HOUR_UP_TO {
            Resolution::Hour
        } else {
            Resolution::Day
        }
    }
}

/// The series and range a request names, checked.
struct Range {
    station: String,
    parameter: String,
    unit: Option<String>,
    from: i64,
    to: i64,
}

fn required<'q>(
    q: &'q HashMap<String, String>,
    key: &str,
    what: &str,
) -> Result<&'q str, ApiError> {
    q.get(key)
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{key} is required ({what})")))
}

/// A bound given as Unix milliseconds, RFC 3339 or a local date and time (`2026-10-01T08:00`).
fn bound(q: &HashMap<String, String>, key: &str, tz: FixedOffset) -> Result<i64, ApiError> {
    let v = required(
        q,
        key,
        "Unix milliseconds, RFC 3339, or a local time such as 2026-10-01T08:00",
    )?;
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    crate::export::parse_time(v, tz)
        .map(Timestamp::millis)
        .map_err(|e| ApiError::bad_request(format!("{key}: {e}")))
}

/// The station, parameter and range of `q`: a station in `scope` (403 otherwise), known, one of its parameters,
/// `from` before `to`, at most ten years apart.
fn range(
    s: &AppState,
    scope: &StationScope,
    q: &HashMap<String, String>,
) -> Result<Range, ApiError> {
    let config = s.config();
    let station = required(q, "station", "a station id such as BN_KCNTS_NUOC01")?;
    require_station(scope, station)?;
    let parameter = required(q, "parameter", "a parameter symbol such as COD")?;
    let configured = config.station(station);
    if configured.is_none() && s.live.station(station).is_none() {
        return Err(ApiError::bad_request(format!(
            "unknown station {station:?}"
        )));
    }
    let unit = match configured {
        Some(c) => {
            let p = c
                .parameters
                .iter()
                .find(|p| p.parameter.as_str() == parameter);
            if p.is_none() {
                let names: Vec<&str> = c.parameters.iter().map(|p| p.parameter.as_str()).collect();
                return Err(ApiError::bad_request(format!(
                    "station {station} has no parameter {parameter:?}; expected one of {}",
                    names.join(", ")
                )));
            }
            p.map(|p| p.unit.to_string())
        }
        None => None,
    };
    let tz = config.timezone;
    let (from, to) = (bound(q, "from", tz)?, bound(q, "to", tz)?);
    if to <= from {
        return Err(ApiError::bad_request(
            "the range is empty: to must be after from",
        ));
    }
    if to - from > MAX_RANGE_MS {
        return Err(ApiError::bad_request(
            "the range is longer than ten years; choose a shorter one",
        ));
    }
    Ok(Range {
        station: station.to_string(),
        parameter: parameter.to_string(),
        unit,
        from,
        to,
    })
}

fn resolution(q: &HashMap<String, String>, range_ms: i64) -> Result<(Resolution, bool), ApiError> {
    let picked = match q.get("resolution").map(String::as_str) {
        None | Some("auto") => return Ok((Resolution::auto(range_ms), true)),
        Some("raw") => Resolution::Raw,
        Some("hour") => Resolution::Hour,
        Some("day") => Resolution::Day,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "resolution={v:?}; expected auto, raw, hour or day"
            )))
        }
    };
    if let Some(w) = picked.window_ms() {
        if range_ms / w > MAX_POINTS as i64 {
            return Err(ApiError::bad_request(format!(
                "resolution={} over this range gives more than {MAX_POINTS} points; choose {} or a shorter range",
                picked.as_str(),
                if picked == Resolution::Hour { "day" } else { "at most 27 years" }
            )));
        }
    }
    Ok((picked, false))
}

/// The points of a range as columns (what the chart library takes), and how they were made.
struct Points {
    columns: Value,
    bucket_ms: Option<i64>,
    source: &'static str,
}

fn raw_or_buckets(
    r: &Reader,
    s: Series,
    range: &Range,
    offset_ms: i64,
) -> Result<Points, LedgerError> {
    let raw = r.raw_points(s, range.from, range.to, MAX_RAW + 1)?;
    if raw.len() <= MAX_RAW {
        let columns = json!({
            "ts": raw.iter().map(|p| p.ts).collect::<Vec<_>>(),
            "value": raw.iter().map(|p| p.value).collect::<Vec<_>>(),
            "status": raw.iter().map(|p| Status::from_u8(p.status).unwrap_or(Status::Fault).as_str()).collect::<Vec<_>>(),
            "band": raw.iter().map(|p| p.band.as_str()).collect::<Vec<_>>(),
            "limit_low": raw.iter().map(|p| p.limit_low).collect::<Vec<_>>(),
            "limit_high": raw.iter().map(|p| p.limit_high).collect::<Vec<_>>(),
        });
        return Ok(Points {
            columns,
            bucket_ms: None,
            source: "readings",
        });
    }
    let span = range.to - range.from;
    let bucket = BUCKETS
        .into_iter()
        .find(|b| span / b < MAX_RAW as i64)
        .unwrap_or(30 * DAY_MS);
    let points = r.bucket_points(s, range.from, range.to, bucket, offset_ms)?;
    Ok(Points {
        columns: bucket_columns(&points),
        bucket_ms: Some(bucket),
        source: "readings",
    })
}

fn windows(
    r: &Reader,
    s: Series,
    range: &Range,
    window_ms: i64,
    offset_ms: i64,
) -> Result<Points, LedgerError> {
    let (points, source) = if r.has_windows(s, window_ms)? {
        (
            r.window_points(s, window_ms, range.from, range.to)?,
            "aggregates",
        )
    } else {
        (
            r.bucket_points(s, range.from, range.to, window_ms, offset_ms)?,
            "readings",
        )
    };
    Ok(Points {
        columns: bucket_columns(&points),
        bucket_ms: Some(window_ms),
        source,
    })
}

fn bucket_columns(points: &[BucketPoint]) -> Value {
    json!({
        "ts": points.iter().map(|p| p.start).collect::<Vec<_>>(),
        "mean": points.iter().map(|p| p.mean).collect::<Vec<_>>(),
        "min": points.iter().map(|p| p.min).collect::<Vec<_>>(),
        "max": points.iter().map(|p| p.max).collect::<Vec<_>>(),
        "valid": points.iter().map(|p| p.valid).collect::<Vec<_>>(),
        "limit_low": points.iter().map(|p| p.limit_low).collect::<Vec<_>>(),
        "limit_high": points.iter().map(|p| p.limit_high).collect::<Vec<_>>(),
    })
}

fn stats_json(st: &RangeStats) -> Value {
    let multiple = match (st.max, st.limit_high, st.limit_low) {
        (Some(max), Some(high), None) if high > 0.0 => Some(max / high),
        _ => None,
    };
    json!({ "readings": st.readings, "valid": st.valid, "min": st.min, "max": st.max, "mean": st.mean,
        "exceeding": st.exceeding, "max_multiple": multiple, "first": st.first, "last": st.last })
}

/// `GET /api/history`.
pub async fn history(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Viewer>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    check_known(&q, &["station", "parameter", "from", "to", "resolution"])?;
    let range = range(&s, &caller.scope, &q)?;
    let (res, auto) = resolution(&q, range.to - range.from)?;
    let offset_ms = i64::from(s.config().timezone.local_minus_utc()) * 1000;
    let (station, parameter) = (range.station.clone(), range.parameter.clone());
    let answer = s
        .ledger
        .read(move |r| -> Result<_, LedgerError> {
            let Some(series) = r.series(&station, &parameter)? else {
                return Ok(None);
            };
            let _snapshot = r.snapshot()?;
            let stats = r.range_stats(series, range.from, range.to)?;
            let points = match res.window_ms() {
                None => raw_or_buckets(r, series, &range, offset_ms)?,
                Some(w) => windows(r, series, &range, w, offset_ms)?,
            };
            Ok(Some((stats, points, range)))
        })
        .await?;
    let (stats, points, unit, from, to) = match answer {
        Some((stats, points, range)) => {
            let unit = stats.unit.clone().or(range.unit);
            (stats, points, unit, range.from, range.to)
        }
        // Nothing stored yet for the series: an empty history, not an error.
        None => {
            let r = self::range(&s, &caller.scope, &q)?;
            let empty = Points {
                columns: bucket_columns(&[]),
                bucket_ms: res.window_ms(),
                source: "readings",
            };
            (RangeStats::default(), empty, r.unit, r.from, r.to)
        }
    };
    Ok(Json(json!({
        "station": q.get("station"), "parameter": q.get("parameter"), "unit": unit, "from": from, "to": to,
        "resolution": res.as_str(), "auto": auto, "bucket_ms": points.bucket_ms, "source": points.source,
        "max_points": MAX_POINTS, "limit_low": stats.limit_low, "limit_high": stats.limit_high,
        "limit_changed": stats.limit_changed, "stats": stats_json(&stats), "points": points.columns,
    })))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Download {
    Csv,
    Xlsx,
}

/// `GET /api/history/download`: the range's readings as CSV (streamed as read) or XLSX (written row by row to a
/// temporary file, then streamed): memory stays flat for a year of readings.
pub async fn download(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Viewer>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    check_known(&q, &["station", "parameter", "from", "to", "format"])?;
    let range = range(&s, &caller.scope, &q)?;
    let format = match q.get("format").map(String::as_str) {
        None | Some("csv") => Download::Csv,
        Some("xlsx") => Download::Xlsx,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "format={v:?}; expected csv or xlsx"
            )))
        }
    };
    let tz = s.config().timezone;
    if format == Download::Xlsx {
        let (station, parameter, from, to) = (
            range.station.clone(),
            range.parameter.clone(),
            range.from,
            range.to,
        );
        let n = s
            .ledger
            .read(move |r| -> Result<i64, LedgerError> {
                Ok(match r.series(&station, &parameter)? {
                    Some(series) => r.count_range(series, from, to)?,
                    None => 0,
                })
            })
            .await?;
        if n + 1 > XLSX_MAX_ROWS {
            return Err(ApiError::bad_request(format!(
                "the range holds {n} readings, more than a spreadsheet's {} rows; download CSV or choose a shorter range",
                XLSX_MAX_ROWS - 1
            )));
        }
    }
    let label = format!(
        "quantrac-history-{}-{}-{}-{}",
        range.station,
        range.parameter,
        Timestamp(range.from).to_local(tz).format("%Y%m%d%H%M"),
        Timestamp(range.to).to_local(tz).format("%Y%m%d%H%M"),
    );
    let (content_type, file) = match format {
        Download::Csv => ("text/csv; charset=utf-8", format!("{label}.csv")),
        Download::Xlsx => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            format!("{label}.xlsx"),
        ),
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(8);
    let path = s.ledger.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter::new(tx.clone());
        let result = match format {
            Download::Csv => write_csv(&path, &range, tz, &mut w),
            Download::Xlsx => write_xlsx(&path, &range, tz, &mut w),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "History download stopped; the response is cut short.");
            let _ = tx.blocking_send(Err(io::Error::other(e)));
        }
    });
    let mut resp = Response::new(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Why a download stopped.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("reading the ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("writing the download: {0}")]
    Io(#[from] io::Error),
    #[error("writing the spreadsheet: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}

/// Hand every reading of the range to `f` as the download's cells, from one read transaction.
fn each_row(
    path: &std::path::Path,
    range: &Range,
    tz: FixedOffset,
    mut f: impl FnMut(&[Cell<'_>]) -> Result<(), DownloadError>,
) -> Result<(), DownloadError> {
    let reader = Reader::open(path)?;
    let Some(series) = reader.series(&range.station, &range.parameter)? else {
        return Ok(());
    };
    let _snapshot = reader.snapshot()?;
    let parameter: Arc<str> = Arc::from(range.parameter.as_str());
    reader.for_each_series_reading(
        series,
        &parameter,
        range.from,
        range.to,
        |r: &ReadingRow| {
            let (local, utc) = times(r.ts, tz);
            let status = Status::from_u8(r.status).unwrap_or(Status::Fault);
            let flags = crate::compliance::Flags(r.flags).names();
            f(&[
                Cell::S(&range.station),
                Cell::S(&r.parameter),
                Cell::S(&local),
                Cell::S(&utc),
                Cell::F(r.value),
                Cell::S(&r.unit),
                Cell::S(status.as_str()),
                Cell::S(&flags),
                r.limit_low.into(),
                r.limit_high.into(),
                r.ratio.into(),
                Cell::S(&r.band),
            ])
        },
    )
}

/// A reading's time as local wall-clock text (`2026-12-05 14:05:00`) and as UTC (`2026-12-05T07:05:00Z`).
fn times(ts: i64, tz: FixedOffset) -> (String, String) {
    let t = Timestamp(ts);
    (
        t.to_local(tz).format("%Y-%m-%d %H:%M:%S").to_string(),
        t.to_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}

fn write_csv(
    path: &std::path::Path,
    range: &Range,
    tz: FixedOffset,
    w: &mut ChannelWriter,
) -> Result<(), DownloadError> {
    let mut table = TableWriter::new(COLUMNS, Some(&mut *w), None)?;
    each_row(path, range, tz, |cells| Ok(table.row(cells)?))?;
    table.finish()?;
    Ok(w.flush()?)
}

fn write_xlsx(
    path: &std::path::Path,
    range: &Range,
    tz: FixedOffset,
    w: &mut ChannelWriter,
) -> Result<(), DownloadError> {
    use rust_xlsxwriter::Workbook;
    let temp = tempfile::Builder::new()
        .prefix("quantrac-history-")
        .tempdir()?;
    let mut book = Workbook::new();
    book.set_tempdir(temp.path())?;
    let sheet = book.add_worksheet_with_constant_memory()?;
    sheet.set_name(
        format!("{} {}", range.station, range.parameter)
            .chars()
            .take(31)
            .collect::<String>(),
    )?;
    for (c, name) in COLUMNS.iter().enumerate() {
        sheet.set_column_width(c as u16, if c < 4 { 20 } else { 11 })?;
        sheet.write_string(0, c as u16, *name)?;
    }
    let mut row = 0u32;
    each_row(path, range, tz, |cells| {
        row += 1;
        for (c, cell) in cells.iter().enumerate() {
            match *cell {
                Cell::S(s) => sheet.write_string(row, c as u16, s).map(|_| ())?,
                Cell::F(x) => sheet.write_number(row, c as u16, x).map(|_| ())?,
                Cell::I(x) => sheet.write_number(row, c as u16, x as f64).map(|_| ())?,
                Cell::Null => {}
            }
        }
        Ok(())
    })?;
    let file = temp.path().join("history.xlsx");
    book.save(&file)?;
    let mut f = std::fs::File::open(&file)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n])?;
    }
    Ok(w.flush()?)
}
