//! Auditor exports (issue 9): the compliance history of one or all stations for a period, as a folder an auditor can
//! check was not altered.
//!
//! - readings (CSV/JSON): every reading with status, quality flags, limit, ratio, band, source, commit time;
//! - aggregates per stored window (`aggregates_1h`, `aggregates_1d`, …) with completeness;
//! - compliance events (start, end, duration, peak multiple, band);
//! - the station log (`notes`): operators' notes written during the period;
//! - the compliance summary per plant ([`summary`]);
//! - TT10: the readings as Circular 10 TXT files ([`tt10`]);
//! - `MANIFEST` with the SHA-256 of every file, the query, the quantrac version and the time; optional
//!   `MANIFEST.sig` (Ed25519) — see [`manifest`].
//!
//! Everything is read in one read transaction of a read-only connection (a consistent snapshot beside the
//! running daemon) and streamed row by row. Times are local (`daemon.timezone`); periods are `[from, to)`. No
//! wall-clock time goes into the data files, so re-exporting a closed period gives byte-identical files; the
//! MANIFEST's `exported-at` is the only varying line, fixed with `--exported-at`.

pub mod alerts;
pub mod manifest;
pub mod penalty;
pub mod report;
pub mod summary;
pub mod table;
pub mod tar;
pub mod tt10;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use ed25519_dalek::SigningKey;

use crate::circular10::MaintenanceAs;
use crate::compliance::Flags;
use crate::config::Config;
use crate::ledger::export::{EventRow, Named, ReadingRow, Snapshot};
use crate::ledger::{LedgerError, Reader};
use crate::model::{Status, Timestamp};
use manifest::{Header, ManifestError};
use table::{Cell, Hashing, TableWriter};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}")]
    Query(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Tt10,
    All,
}

impl Format {
    pub const NAMES: &'static str = "csv, json, tt10, all";
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "tt10" => Some(Format::Tt10),
            "all" => Some(Format::All),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Tt10 => "tt10",
            Format::All => "all",
        }
    }
    fn csv(self) -> bool {
        matches!(self, Format::Csv | Format::All)
    }
    fn json(self) -> bool {
        matches!(self, Format::Json | Format::All)
    }
    fn tt10(self) -> bool {
        matches!(self, Format::Tt10 | Format::All)
    }
}

/// The query: stations (empty = every station in the ledger), period `[from, to)`, format.
#[derive(Debug, Clone)]
pub struct Query {
    pub stations: Vec<String>,
    pub from: Timestamp,
    pub to: Timestamp,
    pub format: Format,
}

/// How to export.
#[derive(Debug, Default)]
pub struct Options {
    /// The MANIFEST's time; `None`: now. Give the same value to re-export a closed period byte for byte.
    pub exported_at: Option<Timestamp>,
    /// Sign the MANIFEST.
    pub sign: Option<SigningKey>,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub files: usize,
    pub readings: u64,
    pub tt10_files: usize,
    /// SHA-256 of the MANIFEST (hex): one value that pins the whole export, e.g. for a letter or a court record.
    pub manifest_sha256: String,
}

/// A time as local RFC 3339 (`2026-11-27T10:00:00+07:00`; milliseconds only when not zero).
pub fn local_time(ms: i64, tz: FixedOffset) -> String {
    Timestamp(ms)
        .to_local(tz)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// Parse a period bound: RFC 3339, or local `2026-10-01`, `2026-10-01T08:00`, `2026-10-01T08:00:00`, `2026-10`
/// (the first of the month).
pub fn parse_time(s: &str, tz: FixedOffset) -> Result<Timestamp, String> {
    let s = s.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(Timestamp::from_datetime(&d));
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .or_else(|_| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_time(Default::default()))
        })
        .or_else(|_| {
            NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
                .map(|d| d.and_time(Default::default()))
        });
    naive
        .ok()
        .and_then(|n| tz.from_local_datetime(&n).single())
        .map(|d| Timestamp::from_datetime(&d))
        .ok_or_else(|| {
            format!("{s:?} is not a time; expected a local date 2026-10-01, 2026-10-01T08:00, a month 2026-10, or RFC 3339 such as 2026-10-01T00:00:00+07:00")
        })
}

/// `[first of month, first of next month)` in local time for `2026-10`.
pub fn month(s: &str, tz: FixedOffset) -> Result<(Timestamp, Timestamp), String> {
    let bad = || format!("{s:?} is not a month; expected yyyy-MM such as 2026-10");
    let d =
        NaiveDate::parse_from_str(&format!("{}-01", s.trim()), "%Y-%m-%d").map_err(|_| bad())?;
    let next = d
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(bad)?;
    let at = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_time(Default::default()))
            .single()
            .map(|x| Timestamp::from_datetime(&x))
            .ok_or_else(bad)
    };
    Ok((at(d)?, at(next)?))
}

/// `3600000` → `1h`, `86400000` → `1d`, `900000` → `15m`.
pub fn window_name(ms: i64) -> String {
    if ms % 86_400_000 == 0 {
        format!("{}d", ms / 86_400_000)
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else {
        format!("{}m", ms / 60_000)
    }
}

pub const READING_COLUMNS: &[&str] = &[
    "station",
    "parameter",
    "time",
    "value",
    "unit",
    "status",
    "status_code",
    "flags",
    "limit_low",
    "limit_high",
    "ratio",
    "band",
    "source",
    "received",
    "seq",
];

const AGGREGATE_COLUMNS: &[&str] = &[
    "station",
    "parameter",
    "window",
    "start",
    "end",
    "mean",
    "min",
    "max",
    "valid",
    "expected",
    "completeness",
    "limit_low",
    "limit_high",
    "ratio",
    "band",
    "revision",
];

const EVENT_COLUMNS: &[&str] = &[
    "station",
    "parameter",
    "scope",
    "start",
    "end",
    "duration_s",
    "last",
    "band",
    "peak_band",
    "peak_ratio",
    "peak_at",
];

const SUMMARY_COLUMNS: &[&str] = &[
    "station",
    "name",
    "zone",
    "from",
    "to",
    "window",
    "windows_in_period",
    "hours_evaluated",
    "hours_compliant",
    "compliant_pct",
    "valid_readings",
    "expected_readings",
    "valid_data_pct",
    "exceedances",
    "exceedances_lt_1_1",
    "exceedances_out_of_range",
    "exceedances_1_1_to_1_5",
    "exceedances_1_5_to_3",
    "exceedances_3_to_5",
    "exceedances_5_to_10",
    "exceedances_ge_10",
    "events",
    "readings",
    "on_time_readings",
    "on_time_pct",
    "counted_to",
];

/// Local-time strings of the last instants formatted: readings of one time (all parameters) and of one commit come
/// together, so most rows reuse the text instead of formatting it again.
pub struct TimeText {
    tz: FixedOffset,
    last: [(i64, String); 2],
}

impl TimeText {
    pub fn new(tz: FixedOffset) -> Self {
        Self {
            tz,
            last: [(i64::MIN, String::new()), (i64::MIN, String::new())],
        }
    }
    /// The texts of a reading's time and commit time.
    fn pair(&mut self, ts: i64, received: i64) -> (&str, &str) {
        let tz = self.tz;
        let [a, b] = &mut self.last;
        for (slot, ms) in [(&mut *a, ts), (&mut *b, received)] {
            if slot.0 != ms {
                *slot = (ms, local_time(ms, tz));
            }
        }
        (&a.1, &b.1)
    }
}

/// Write one reading row.
pub fn reading_row<W: Write>(
    t: &mut TableWriter<W>,
    station: &str,
    r: &ReadingRow,
    times: &mut TimeText,
) -> std::io::Result<()> {
    let status = Status::from_u8(r.status).unwrap_or(Status::Fault);
    let flags = if r.flags == 0 {
        String::new()
    } else {
        Flags(r.flags).names()
    };
    let (time, received) = times.pair(r.ts, r.received);
    t.row(&[
        Cell::S(station),
        Cell::S(&r.parameter),
        Cell::S(time),
        Cell::F(r.value),
        Cell::S(&r.unit),
        Cell::S(status.as_str()),
        Cell::S(status.code()),
        Cell::S(&flags),
        r.limit_low.into(),
        r.limit_high.into(),
        r.ratio.into(),
        Cell::S(&r.band),
        Cell::S(&r.source),
        Cell::S(received),
        Cell::I(r.seq),
    ])
}

/// The stations of the query, as the ledger names them. A station that is configured but has no data yet is
/// exported empty; one that is neither configured nor in the ledger is an error.
pub fn select_stations(
    ledger: &Snapshot<'_>,
    config: &Config,
    wanted: &[String],
) -> Result<Vec<Named>, ExportError> {
    let all = ledger.stations()?;
    if wanted.is_empty() {
        return Ok(all);
    }
    let mut out = Vec::new();
    for w in wanted {
        match all.iter().find(|s| &*s.name == w.as_str()) {
            Some(s) => out.push(s.clone()),
            None if config.station(w).is_some() => out.push(Named {
                id: -1,
                name: w.as_str().into(),
            }),
            None => {
                return Err(ExportError::Query(format!(
                    "unknown station {w:?}: it is neither configured nor in the ledger"
                )))
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

/// Stream the readings of `stations` (empty: all) in `[from, to)` as CSV and/or JSON (the `readings` table of an
/// export) to any writer, from one read transaction. Returns the number of readings.
pub fn write_readings<W: Write>(
    config: &Config,
    stations: &[String],
    from: Timestamp,
    to: Timestamp,
    csv: Option<W>,
    json: Option<W>,
) -> Result<u64, ExportError> {
    let reader = Reader::open(&config.ledger.path)?;
    let ledger = reader.snapshot()?;
    let selected = select_stations(&ledger, config, stations)?;
    let parameters = ledger.parameters()?;
    let io = |error| ExportError::Write {
        path: PathBuf::from("readings"),
        error,
    };
    let mut t = TableWriter::new(READING_COLUMNS, csv, json).map_err(io)?;
    let mut n = 0;
    let mut times = TimeText::new(config.timezone);
    for s in selected.iter().filter(|s| s.id >= 0) {
        ledger.for_each_reading::<ExportError>(
            s.id,
            &parameters,
            from.millis(),
            to.millis(),
            |r| {
                n += 1;
                reading_row(&mut t, &s.name, r, &mut times).map_err(io)
            },
        )?;
    }
    let (csv, json) = t.finish().map_err(io)?;
    for mut w in [csv, json].into_iter().flatten() {
        w.flush().map_err(io)?;
    }
    Ok(n)
}

/// The TT10 files' MANIFEST lines while the export runs (removed before it ends).
const TT10_PART: &str = ".MANIFEST.tt10.part";

/// A file of the export, hashed as it is written.
struct OutFile {
    rel: String,
    path: PathBuf,
}

impl OutFile {
    fn create(dir: &Path, rel: &str) -> Result<(OutFile, Hashing<BufWriter<File>>), ExportError> {
        let path = dir.join(rel);
        let f = File::create(&path).map_err(|error| ExportError::Write {
            path: path.clone(),
            error,
        })?;
        Ok((
            OutFile {
                rel: rel.to_string(),
                path,
            },
            Hashing::new(BufWriter::with_capacity(256 * 1024, f)),
        ))
    }
}

/// A table written as `<name>.csv` and/or `<name>.json` in the export folder.
struct FileTable {
    files: Vec<OutFile>,
    table: TableWriter<Hashing<BufWriter<File>>>,
}

impl FileTable {
    fn create(
        dir: &Path,
        name: &str,
        columns: &'static [&'static str],
        format: Format,
    ) -> Result<Self, ExportError> {
        let mut files = Vec::new();
        let mut open =
            |ext: &str, on: bool| -> Result<Option<Hashing<BufWriter<File>>>, ExportError> {
                if !on {
                    return Ok(None);
                }
                let (f, w) = OutFile::create(dir, &format!("{name}.{ext}"))?;
                files.push(f);
                Ok(Some(w))
            };
        let csv = open("csv", format.csv())?;
        let json = open("json", format.json())?;
        let table = TableWriter::new(columns, csv, json).map_err(|error| ExportError::Write {
            path: dir.join(name),
            error,
        })?;
        Ok(Self { files, table })
    }

    fn err(&self, error: std::io::Error) -> ExportError {
        ExportError::Write {
            path: self
                .files
                .first()
                .map(|f| f.path.clone())
                .unwrap_or_default(),
            error,
        }
    }

    fn finish(self, hashes: &mut BTreeMap<String, [u8; 32]>) -> Result<(), ExportError> {
        let path = self
            .files
            .first()
            .map(|f| f.path.clone())
            .unwrap_or_default();
        let (csv, json) = self.table.finish().map_err(|error| ExportError::Write {
            path: path.clone(),
            error,
        })?;
        let mut files = self.files.into_iter();
        for w in [csv, json].into_iter().flatten() {
            let (_, digest, _) = w.finish().map_err(|error| ExportError::Write {
                path: path.clone(),
                error,
            })?;
            if let Some(f) = files.next() {
                hashes.insert(f.rel, digest);
            }
        }
        Ok(())
    }
}

/// Export into `out` (created; must not exist or be empty). Returns what was written.
pub fn export(
    config: &Config,
    query: &Query,
    out: &Path,
    opts: &Options,
) -> Result<Report, ExportError> {
    prepare(config, query, out)?;
    let reader = Reader::open(&config.ledger.path)?;
    // One read transaction: every file shows the ledger as of the same moment.
    let ledger = reader.snapshot()?;
    export_in(&ledger, config, query, out, opts)
}

/// Check the query's period and create `out` (it must not exist or be empty).
pub(crate) fn prepare(config: &Config, query: &Query, out: &Path) -> Result<(), ExportError> {
    if query.to <= query.from {
        return Err(ExportError::Query(format!(
            "the period is empty: to ({}) is not after from ({})",
            local_time(query.to.millis(), config.timezone),
            local_time(query.from.millis(), config.timezone)
        )));
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error| ExportError::Write { path, error }
    };
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(write_err(out))?
            .next()
            .is_some()
    {
        return Err(ExportError::Query(format!(
            "{} exists and is not empty; choose a new folder for the export",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(write_err(out))?;
    Ok(())
}

/// What the parts of one export share.
struct Run<'a> {
    ledger: &'a Snapshot<'a>,
    config: &'a Config,
    query: &'a Query,
    out: &'a Path,
    stations: Vec<Named>,
    from: i64,
    to: i64,
    /// The export's time: a period not over yet is summarised up to it.
    now: i64,
    /// SHA-256 of every file written so far but the TT10 files, by path in the export.
    hashes: BTreeMap<String, [u8; 32]>,
}

/// Export inside the read transaction `ledger` into the prepared folder `out`.
pub(crate) fn export_in(
    ledger: &Snapshot<'_>,
    config: &Config,
    query: &Query,
    out: &Path,
    opts: &Options,
) -> Result<Report, ExportError> {
    let mut run = Run {
        ledger,
        config,
        query,
        out,
        stations: select_stations(ledger, config, &query.stations)?,
        from: query.from.millis(),
        to: query.to.millis(),
        now: exported_at(opts).millis(),
        hashes: BTreeMap::new(),
    };
    let mut notes = Vec::new();
    // TT10 files' MANIFEST lines go to a part file (a year of files is a million lines), appended at the end.
    let part_path = out.join(TT10_PART);
    let (readings, tt10_count) = write_readings_and_tt10(&mut run, &part_path)?;
    if query.format.csv() || query.format.json() {
        write_aggregates(&mut run)?;
        write_events_and_summary(&mut run)?;
        write_penalty_basis(&mut run)?;
        write_notes(&mut run)?;
        if ledger.has_alert_tables() {
            write_alerts(&mut run)?;
        } else {
            notes.push("alerts: this ledger has no alert tables; no alert files".to_string());
        }
    }
    let maintenance = config.tt10.maintenance_as;
    if query.format.tt10() && maintenance != MaintenanceAs::default() {
        notes.push(format!(
            "tt10: maintenance readings (status 03, not in Circular 10) written as maintenance_as = \"{}\"",
            maintenance.as_str()
        ));
    }
    let (files, manifest_sha256) = write_manifest(&run, opts, notes, &part_path, tt10_count)?;
    Ok(Report {
        files,
        readings,
        tt10_files: tt10_count as usize,
        manifest_sha256,
    })
}

/// Readings (`readings` table) and TT10 files in one pass per station. Returns the number of readings and of TT10
/// files (whose MANIFEST lines are in `part_path`).
fn write_readings_and_tt10(run: &mut Run<'_>, part_path: &Path) -> Result<(u64, u64), ExportError> {
    let (out, tz, format) = (run.out, run.config.timezone, run.query.format);
    let maintenance = run.config.tt10.maintenance_as;
    let parameters = run.ledger.parameters()?;
    let mut readings = if format.csv() || format.json() {
        Some(FileTable::create(out, "readings", READING_COLUMNS, format)?)
    } else {
        None
    };
    let mut times = TimeText::new(tz);
    let mut part = BufWriter::new(File::create(part_path).map_err(write_err_at(part_path))?);
    let (mut count, mut tt10_count) = (0u64, 0u64);
    for s in &run.stations {
        if s.id < 0 {
            continue;
        }
        let mut tt10 = format
            .tt10()
            .then(|| tt10::Tt10Files::new(out, &s.name, tz, maintenance, &mut part));
        run.ledger
            .for_each_reading::<ExportError>(s.id, &parameters, run.from, run.to, |r| {
                count += 1;
                if let Some(t) = &mut readings {
                    reading_row(&mut t.table, &s.name, r, &mut times).map_err(|e| t.err(e))?;
                }
                if let Some(t) = &mut tt10 {
                    t.push(r).map_err(write_err_tt10(out))?;
                }
                Ok(())
            })?;
        if let Some(mut t) = tt10 {
            t.flush().map_err(write_err_tt10(out))?;
            tt10_count += t.count;
        }
    }
    part.flush().map_err(write_err_at(part_path))?;
    drop(part);
    if let Some(t) = readings {
        t.finish(&mut run.hashes)?;
    }
    Ok((count, tt10_count))
}

/// Aggregates, one table per stored window length (`aggregates_1h`, `aggregates_1d`, …).
fn write_aggregates(run: &mut Run<'_>) -> Result<(), ExportError> {
    let tz = run.config.timezone;
    let mut windows: Vec<i64> = Vec::new();
    for s in run.stations.iter().filter(|s| s.id >= 0) {
        windows.extend(run.ledger.windows(s.id)?);
    }
    windows.sort_unstable();
    windows.dedup();
    for w in windows {
        let wname = window_name(w);
        let mut t = FileTable::create(
            run.out,
            &format!("aggregates_{wname}"),
            AGGREGATE_COLUMNS,
            run.query.format,
        )?;
        for s in run.stations.iter().filter(|s| s.id >= 0) {
            run.ledger
                .for_each_aggregate::<ExportError>(s.id, w, run.from, run.to, |a| {
                    t.table
                        .row(&[
                            Cell::S(&s.name),
                            Cell::S(&a.parameter),
                            Cell::S(&wname),
                            Cell::S(&local_time(a.window_start, tz)),
                            Cell::S(&local_time(a.window_start + w, tz)),
                            a.mean.into(),
                            a.min.into(),
                            a.max.into(),
                            Cell::I(a.valid),
                            Cell::I(a.expected),
                            Cell::F(a.completeness),
                            a.limit_low.into(),
                            a.limit_high.into(),
                            a.ratio.into(),
                            Cell::S(&a.band),
                            Cell::I(a.revision),
                        ])
                        .map_err(|e| t.err(e))
                })?;
        }
        t.finish(&mut run.hashes)?;
    }
    Ok(())
}

/// Compliance events (`events`) and the summary per plant (`summary`).
fn write_events_and_summary(run: &mut Run<'_>) -> Result<(), ExportError> {
    let mut events = FileTable::create(run.out, "events", EVENT_COLUMNS, run.query.format)?;
    let mut summary = FileTable::create(run.out, "summary", SUMMARY_COLUMNS, run.query.format)?;
    for s in &run.stations {
        let evs = if s.id >= 0 {
            run.ledger.events(s.id, run.from, run.to)?
        } else {
            Vec::new()
        };
        for e in &evs {
            event_row(&mut events.table, &s.name, e, run.config.timezone)
                .map_err(|err| events.err(err))?;
        }
        let sm = station_summary(run, s)?;
        summary_row(&mut summary.table, run, s, &sm, evs.len()).map_err(|e| summary.err(e))?;
    }
    events.finish(&mut run.hashes)?;
    summary.finish(&mut run.hashes)
}

fn event_row<W: Write>(
    t: &mut TableWriter<W>,
    station: &str,
    e: &EventRow,
    tz: FixedOffset,
) -> std::io::Result<()> {
    let duration = e.end.map(|end| (end - e.start) / 1000);
    let end = e.end.map(|x| local_time(x, tz));
    t.row(&[
        Cell::S(station),
        Cell::S(&e.parameter),
        Cell::S(&e.scope),
        Cell::S(&local_time(e.start, tz)),
        end.as_deref().map_or(Cell::Null, Cell::S),
        duration.map_or(Cell::Null, Cell::I),
        Cell::S(&local_time(e.last, tz)),
        Cell::S(&e.band),
        Cell::S(&e.peak_band),
        e.peak_ratio.into(),
        Cell::S(&local_time(e.peak_at, tz)),
    ])
}

/// The summary of one plant; a station configured but not in the ledger yet has every expected reading missing.
fn station_summary(run: &Run<'_>, s: &Named) -> Result<summary::Summary, ExportError> {
    let window_ms = run.config.compliance.averaging_window.as_millis() as i64;
    let (from, to) = (
        run.from,
        summary::counted_to(run.from, run.to, run.now, window_ms),
    );
    let cfg = run.config.station(&s.name);
    let params = match cfg {
        Some(c) => c.parameters.len(),
        None => run.ledger.count_parameters(s.id)?,
    };
    let input = summary::SummaryInput {
        station_id: s.id,
        window_ms,
        interval_ms: cfg.map_or(300_000, |c| c.interval.as_millis() as i64),
        parameters: params,
        from,
        to,
    };
    if s.id >= 0 {
        return Ok(summary::compute(run.ledger, &input)?);
    }
    Ok(summary::Summary {
        windows_in_period: (to - from + window_ms - 1) / window_ms.max(1),
        expected_readings: (to - from + window_ms - 1) / window_ms.max(1)
            * (window_ms / input.interval_ms.max(1))
            * params as i64,
        ..Default::default()
    })
}

fn summary_row<W: Write>(
    t: &mut TableWriter<W>,
    run: &Run<'_>,
    s: &Named,
    sm: &summary::Summary,
    events: usize,
) -> std::io::Result<()> {
    let tz = run.config.timezone;
    let cfg = run.config.station(&s.name);
    let ex = sm.exceedances;
    let (f, to) = (local_time(run.from, tz), local_time(run.to, tz));
    let window_ms = run.config.compliance.averaging_window.as_millis() as i64;
    let wname = window_name(window_ms);
    let counted = local_time(
        summary::counted_to(run.from, run.to, run.now, window_ms),
        tz,
    );
    t.row(&[
        Cell::S(&s.name),
        Cell::S(cfg.map_or("", |c| c.name.as_str())),
        Cell::S(cfg.map_or("", |c| c.zone.as_str())),
        Cell::S(&f),
        Cell::S(&to),
        Cell::S(&wname),
        Cell::I(sm.windows_in_period),
        Cell::I(sm.hours_evaluated),
        Cell::I(sm.hours_compliant),
        sm.compliant_pct().into(),
        Cell::I(sm.valid_readings),
        Cell::I(sm.expected_readings),
        sm.valid_pct().into(),
        Cell::I(sm.exceedance_total()),
        Cell::I(ex[0]),
        Cell::I(ex[1]),
        Cell::I(ex[2]),
        Cell::I(ex[3]),
        Cell::I(ex[4]),
        Cell::I(ex[5]),
        Cell::I(ex[6]),
        Cell::I(events as i64),
        Cell::I(sm.readings),
        Cell::I(sm.on_time),
        sm.on_time_pct().into(),
        Cell::S(&counted),
    ])
}

const PENALTY_COLUMNS: &[&str] = &[
    "station",
    "parameter",
    "date",
    "window",
    "exceedance_windows",
    "windows_under_1_1",
    "worst_band",
    "worst_ratio",
    "exceedance_day",
    "repeat",
    "flow_parameter",
    "discharge_m3",
    "flow_measured_hours",
];

/// The penalty basis of Decree 45/2022 (`penalty_basis`, see [`penalty`]): per station, parameter and local day
/// with a judging window over the limit, the windows, the worst band, whether it repeats, and the day's discharge.
fn write_penalty_basis(run: &mut Run<'_>) -> Result<(), ExportError> {
    let mut t = FileTable::create(run.out, "penalty_basis", PENALTY_COLUMNS, run.query.format)?;
    let tz = run.config.timezone;
    let window_ms = run.config.compliance.averaging_window.as_millis() as i64;
    let wname = window_name(window_ms);
    for s in run.stations.iter().filter(|s| s.id >= 0) {
        let cfg = run.config.station(&s.name);
        let flow = cfg.map_or("Flow", |c| c.flow_out.as_str());
        let input = penalty::BasisInput {
            station_id: s.id,
            flow,
            window_ms,
            interval_ms: cfg.map_or(300_000, |c| c.interval.as_millis() as i64),
            from: run.from,
            to: summary::counted_to(run.from, run.to, run.now, window_ms),
            offset_ms: i64::from(tz.local_minus_utc()) * 1000,
        };
        let basis = penalty::compute(run.ledger, &input)?;
        for d in &basis.days {
            let v = basis.volumes.get(&d.day).copied().unwrap_or_default();
            let date = Timestamp(d.day).to_local(tz).format("%Y-%m-%d").to_string();
            t.table
                .row(&[
                    Cell::S(&s.name),
                    Cell::S(&d.parameter),
                    Cell::S(&date),
                    Cell::S(&wname),
                    Cell::I(d.windows),
                    Cell::I(d.under_1_1),
                    Cell::S(d.worst.as_str()),
                    d.worst_ratio.into(),
                    Cell::I(d.nth),
                    Cell::S(if d.nth > 1 { "yes" } else { "no" }),
                    Cell::S(flow),
                    Some(summary::round2(v.m3)).into(),
                    Some(summary::round2(v.covered_ms as f64 / 3_600_000.0)).into(),
                ])
                .map_err(|e| t.err(e))?;
        }
    }
    t.finish(&mut run.hashes)
}

const NOTE_COLUMNS: &[&str] = &["id", "station", "time", "who", "text"];

/// The station log (`notes`): the operators' notes on the exported stations written during the period.
fn write_notes(run: &mut Run<'_>) -> Result<(), ExportError> {
    let mut t = FileTable::create(run.out, "notes", NOTE_COLUMNS, run.query.format)?;
    let codes: Vec<&str> = run.stations.iter().map(|s| &*s.name).collect();
    let tz = run.config.timezone;
    for n in run.ledger.notes(&codes, run.from, run.to)? {
        let time = local_time(n.at, tz);
        t.table
            .row(&[
                Cell::I(n.id),
                Cell::S(&n.station),
                Cell::S(&time),
                Cell::S(&n.who),
                Cell::S(&n.text),
            ])
            .map_err(|e| t.err(e))?;
    }
    t.finish(&mut run.hashes)
}

/// Alerts and their deliveries (`alerts`, `alert_deliveries`).
fn write_alerts(run: &mut Run<'_>) -> Result<(), ExportError> {
    let format = run.query.format;
    let mut a = FileTable::create(run.out, "alerts", alerts::ALERT_COLUMNS, format)?;
    let mut d = FileTable::create(
        run.out,
        "alert_deliveries",
        alerts::DELIVERY_COLUMNS,
        format,
    )?;
    let known: Vec<Named> = run.stations.iter().filter(|s| s.id >= 0).cloned().collect();
    alerts::write(
        run.ledger,
        &known,
        run.query.stations.is_empty(),
        run.from,
        run.to,
        run.config.timezone,
        &mut a.table,
        &mut d.table,
    )
    .map_err(|e| match e {
        alerts::WriteError::Ledger(l) => ExportError::Ledger(l),
        alerts::WriteError::Io(io) => a.err(io),
    })?;
    a.finish(&mut run.hashes)?;
    d.finish(&mut run.hashes)
}

/// The MANIFEST (every file's SHA-256, the TT10 lines from `part_path` last) and its signature. Returns the number
/// of files listed and the MANIFEST's SHA-256 (hex).
fn write_manifest(
    run: &Run<'_>,
    opts: &Options,
    notes: Vec<String>,
    part_path: &Path,
    tt10_count: u64,
) -> Result<(usize, String), ExportError> {
    let tz = run.config.timezone;
    let exported_at = exported_at(opts);
    let header = Header {
        query: describe(run.query, tz),
        timezone: format!("{} ({})", run.config.timezone_name, tz),
        exported_at: local_time(exported_at.millis() - exported_at.millis() % 1000, tz),
        notes,
    };
    // Every other file name sorts before `tt10/`, so the TT10 lines come last, already in order.
    debug_assert!(run.hashes.keys().all(|k| k.as_str() < "tt10/"));
    let mpath = run.out.join(manifest::MANIFEST);
    let digest = (|| -> std::io::Result<[u8; 32]> {
        let mut m = Hashing::new(BufWriter::new(File::create(&mpath)?));
        m.write_all(manifest::head(&header, run.hashes.len() as u64 + tt10_count).as_bytes())?;
        for (path, digest) in &run.hashes {
            writeln!(m, "{}  {path}", crate::hex::encode(digest))?;
        }
        std::io::copy(&mut File::open(part_path)?, &mut m)?;
        let (_, digest, _) = m.finish()?;
        Ok(digest)
    })()
    .map_err(write_err_at(&mpath))?;
    std::fs::remove_file(part_path).map_err(write_err_at(part_path))?;
    if let Some(key) = &opts.sign {
        let spath = run.out.join(manifest::SIGNATURE);
        std::fs::write(&spath, manifest::sign(&digest, key)).map_err(write_err_at(&spath))?;
    }
    Ok((
        run.hashes.len() + tt10_count as usize,
        crate::hex::encode(&digest),
    ))
}

/// The export's time to the second (as the MANIFEST records it): `--exported-at`, or now.
fn exported_at(opts: &Options) -> Timestamp {
    let t = opts.exported_at.unwrap_or_else(Timestamp::now).millis();
    Timestamp(t - t.rem_euclid(1000))
}

fn write_err_at(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.to_path_buf();
    move |error| ExportError::Write { path, error }
}

fn write_err_tt10(out: &Path) -> impl Fn(std::io::Error) -> ExportError {
    let path = out.join("tt10");
    move |error| ExportError::Write {
        path: path.clone(),
        error,
    }
}

/// The query as the MANIFEST records it.
pub fn describe(q: &Query, tz: FixedOffset) -> String {
    format!(
        "stations={} from={} to={} format={}",
        if q.stations.is_empty() {
            "all".to_string()
        } else {
            q.stations.join(",")
        },
        local_time(q.from.millis(), tz),
        local_time(q.to.millis(), tz),
        q.format.as_str()
    )
}
