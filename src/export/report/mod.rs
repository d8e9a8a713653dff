//! The official monthly report of one plant: one self-contained, printable HTML file (A4, no CDN, no script) with a
//! Vietnamese page and its English translation. It shows the facility and its permit, the legal basis, the
//! regulation's name with Kq, Kf and each limit's working (the same text `quantrac check-config` prints), the
//! summary, the daily on-time transmission rate, each parameter's window means against its limit, the legal
//! exceedance events (window means) in local time, and a signature block.
//!
//! **What an inspector can verify.** The report is made together with an export of the station's data for the
//! period it counts (`[month start, counted to)`), from the same read transaction, and cites that export's MANIFEST
//! SHA-256: `sha256sum MANIFEST` gives the printed value, and `quantrac verify <folder>` checks every file against
//! the MANIFEST. The export is written with the report's time as its `exported-at`, so `quantrac export …
//! --exported-at <that time>` (or `GET /api/export?…&exported_at=`) re-creates it byte for byte while the ledger
//! holds the same data for the period; late data arriving afterwards changes the hash, and shows.
//!
//! A month in progress is counted up to the last window that has ended ([`super::summary::counted_to`]).
//! Elements carry ids (`hours-evaluated`, `param-COD`, `manifest-sha256`, …; `vi-…` on the Vietnamese page) so
//! tests and scripts can read the numbers.

mod chart;
mod html;
mod legal;
pub mod text;

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::SigningKey;

use super::penalty;
use super::summary::{self, Summary, SummaryInput};
use super::{local_time, ExportError, Format, Options, Query};
use crate::compliance::limits::{kf, kq, Coefficient};
use crate::compliance::{LimitBound, Profiles, StationLimits};
use crate::config::{Config, Station};
use crate::ledger::export::{AggregateRow, EventRow, Snapshot};
use crate::ledger::{LedgerError, Reader};
use crate::model::Timestamp;

/// Which report.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub station: &'a str,
    /// `yyyy-MM`, local time.
    pub month: &'a str,
    /// The report's time: hours after it are not counted; also its export's `exported-at`.
    pub now: Timestamp,
}

/// What was made.
#[derive(Debug, Clone)]
pub struct Made {
    pub html: String,
    /// The export the report cites (`None` for a month that has not begun: nothing to export).
    pub export: Option<super::Report>,
    /// The export's query.
    pub query: Option<Query>,
}

/// Write the report of a station's month to `out` and the export it cites into `data` (new or empty folder).
pub fn write(
    config: &Config,
    req: Request<'_>,
    out: &Path,
    data: &Path,
    sign: Option<SigningKey>,
) -> Result<Made, ExportError> {
    let made = make(config, req, data, &data.display().to_string(), sign)?;
    std::fs::write(out, &made.html).map_err(|error| ExportError::Write {
        path: out.to_path_buf(),
        error,
    })?;
    Ok(made)
}

/// Make the report with its export written into `data` (e.g. a temporary folder, for the dashboard); `label` is how
/// the report names the export folder.
pub fn make(
    config: &Config,
    req: Request<'_>,
    data: &Path,
    label: &str,
    sign: Option<SigningKey>,
) -> Result<Made, ExportError> {
    let tz = config.timezone;
    let now = req.now.millis() - req.now.millis().rem_euclid(1000);
    let (from, to) = super::month(req.month, tz).map_err(ExportError::Query)?;
    let (from, to) = (from.millis(), to.millis());
    let window_ms = config.compliance.averaging_window.as_millis() as i64;
    let counted = summary::counted_to(from, to, now, window_ms);
    let reader = Reader::open(&config.ledger.path)?;
    let snapshot = reader.snapshot()?;
    let sid = station_id(&snapshot, config, req.station)?;
    let query = (counted > from).then(|| Query {
        stations: vec![req.station.to_string()],
        from: Timestamp(from),
        to: Timestamp(counted),
        format: Format::All,
    });
    let export = match &query {
        Some(q) => {
            super::prepare(config, q, data)?;
            let opts = Options {
                exported_at: Some(Timestamp(now)),
                sign,
            };
            Some(super::export_in(&snapshot, config, q, data, &opts)?)
        }
        None => None,
    };
    let period = Period {
        from,
        to,
        counted,
        now,
        window_ms,
        tz,
    };
    let data_view = gather(&snapshot, config, req.station, sid, period)?;
    let cited = export.as_ref().zip(query.as_ref()).map(|(r, q)| Cited {
        label: label.to_string(),
        manifest_sha256: r.manifest_sha256.clone(),
        files: r.files,
        query: q.clone(),
        exported_at: local_time(now, tz),
    });
    let html = html::render(&html::View {
        config,
        station: req.station,
        month: req.month,
        period,
        data: &data_view,
        cited: cited.as_ref(),
    });
    Ok(Made {
        html,
        export,
        query,
    })
}

/// The period and how its times are shown.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Period {
    pub from: i64,
    pub to: i64,
    /// The end of what is counted: `to`, or the end of the last window that has ended (a month in progress).
    pub counted: i64,
    pub now: i64,
    pub window_ms: i64,
    pub tz: chrono::FixedOffset,
}

impl Period {
    pub fn in_progress(&self) -> bool {
        self.counted < self.to
    }
}

/// The export the report cites.
pub(crate) struct Cited {
    pub label: String,
    pub manifest_sha256: String,
    pub files: usize,
    pub query: Query,
    /// The MANIFEST's `exported-at` (local RFC 3339).
    pub exported_at: String,
}

/// The regulation behind a station's limits.
pub(crate) struct Regulation {
    /// The limit profile's title, e.g. `QCVN 40:2011/BTNMT column B`.
    pub title: String,
    pub source: String,
    pub kq: Option<Coefficient>,
    pub kf: Option<Coefficient>,
    /// With dated limits (`[[station.regime]]`): each regime in force during the month, (first day, last day, name);
    /// the title, Kq, Kf and limits above are those in force at the month's end. Empty with one regime throughout.
    pub regimes: Vec<RegimeDays>,
}

/// A regime's first and last local day in force (`None`: from the start, or with no end) and its name.
pub(crate) type RegimeDays = (Option<chrono::NaiveDate>, Option<chrono::NaiveDate>, String);

/// (lower bound, upper bound or Cmax) of a limit.
pub(crate) type Bounds = (Option<f64>, Option<f64>);

/// One monitored parameter: its limit (from the config, so a month without data shows it too) and its windows.
pub(crate) struct ParamView {
    pub unit: String,
    pub bounds: (Option<f64>, Option<f64>),
    /// The working as `check-config` prints it, e.g. `C=150 × Kq 0.9 (…) × Kf 0.9 (…) = 121.5 mg/L`.
    pub working: Option<String>,
    /// When the limits changed during the month: the earlier regimes' (days, bounds, working), oldest first; the
    /// fields above are the regime in force at the month's end.
    pub earlier: Vec<(RegimeDays, Bounds, String)>,
    pub aggs: Vec<AggregateRow>,
}

/// What the report shows of one station, read in the report's read transaction.
pub(crate) struct ReportData<'a> {
    pub cfg: Option<&'a Station>,
    pub regulation: Option<Regulation>,
    pub params: BTreeMap<String, ParamView>,
    pub summary: Summary,
    pub events: Vec<EventRow>,
    /// Per local day: (day start, readings, on time).
    pub days: Vec<(i64, i64, i64)>,
    pub penalty: penalty::Basis,
}

/// The station's ledger id (`-1`: configured, no data yet); neither configured nor in the ledger is an error.
fn station_id(snapshot: &Snapshot<'_>, config: &Config, station: &str) -> Result<i64, ExportError> {
    let in_ledger = snapshot
        .stations()?
        .into_iter()
        .find(|s| &*s.name == station);
    match (in_ledger, config.station(station)) {
        (Some(s), _) => Ok(s.id),
        (None, Some(_)) => Ok(-1),
        (None, None) => Err(ExportError::Query(format!(
            "unknown station {station:?}: it is neither configured nor in the ledger"
        ))),
    }
}

/// The regulation of a configured station in the month `p`: the regimes in force during it, the profile's title,
/// Kq and Kf of the one in force at its end, and each parameter's limit in each.
fn regulation(
    config: &Config,
    cfg: &Station,
    p: &Period,
) -> (Option<Regulation>, BTreeMap<String, ParamView>) {
    // The daemon refuses to start with a broken profile folder; the report then shows the limits it stored.
    let profiles = Profiles::load_dir(&config.profiles_dir).ok();
    let limits = profiles.as_ref().and_then(|x| x.station_limits(cfg).ok());
    let during = limits.as_ref().map_or(0..1, |l| {
        l.during(Timestamp(p.from), Timestamp(p.to.max(p.from + 1)))
    });
    let last = during.end.saturating_sub(1);
    // Regime 0 is the station's own keys; regime i > 0 is `[[station.regime]]` i − 1.
    let (profile_name, flow) = match last.checked_sub(1).and_then(|j| cfg.regimes.get(j)) {
        Some(r) => (r.profile.as_deref(), r.design_flow_m3_day),
        None => (Some(cfg.profile.as_str()), cfg.design_flow_m3_day),
    };
    let profile = profiles
        .as_ref()
        .zip(profile_name)
        .and_then(|(x, n)| x.get(n));
    let name = |l: &StationLimits, i: usize| l.regimes.get(i).map(|r| r.name.clone());
    let days = |l: &StationLimits, i: usize| {
        let (from, until) = l.days(i);
        (from, until, name(l, i).unwrap_or_default())
    };
    let regimes: Vec<RegimeDays> = limits
        .as_ref()
        .filter(|l| l.regimes.len() > 1)
        .map(|l| during.clone().map(|i| days(l, i)).collect())
        .unwrap_or_default();
    let regulation = match (profile, limits.as_ref()) {
        (Some(x), _) => Some(Regulation {
            title: x.title.clone(),
            source: x.source.clone(),
            kq: kq(x, &cfg.receiving_water),
            kf: kf(x, flow),
            regimes,
        }),
        // A regime of permit values alone: its name, no coefficients.
        (None, Some(l)) => Some(Regulation {
            title: name(l, last).unwrap_or_default(),
            source: String::new(),
            kq: None,
            kf: None,
            regimes,
        }),
        (None, None) => None,
    };
    let params = cfg
        .parameters
        .iter()
        .map(|cp| {
            let at = |i: usize| {
                let limit = limits
                    .as_ref()
                    .and_then(|l| l.regimes.get(i))
                    .and_then(|r| r.get(&cp.parameter));
                (
                    LimitBound::bounds(limit.and_then(|l| l.bound)),
                    limit.map(|l| l.working.clone()),
                )
            };
            let (bounds, working) = at(last);
            let earlier = limits.as_ref().map_or_else(Vec::new, |l| {
                (during.start..last)
                    .map(|i| {
                        let (b, w) = at(i);
                        (days(l, i), b, w.unwrap_or_default())
                    })
                    .collect()
            });
            let view = ParamView {
                unit: cp.unit.to_string(),
                bounds,
                working,
                earlier,
                aggs: Vec::new(),
            };
            (cp.parameter.to_string(), view)
        })
        .collect();
    (regulation, params)
}

fn gather<'a>(
    snapshot: &Snapshot<'_>,
    config: &'a Config,
    station: &str,
    sid: i64,
    p: Period,
) -> Result<ReportData<'a>, ExportError> {
    let cfg = config.station(station);
    let (regulation, mut params) = cfg.map_or_else(
        || (None, BTreeMap::new()),
        |c| self::regulation(config, c, &p),
    );
    if sid < 0 {
        return Ok(ReportData {
            cfg,
            regulation,
            params,
            summary: empty_summary(cfg, p),
            events: Vec::new(),
            days: Vec::new(),
            penalty: penalty::Basis::default(),
        });
    }
    snapshot.for_each_aggregate::<LedgerError>(sid, p.window_ms, p.from, p.counted, |a| {
        let view = params
            .entry(a.parameter.clone())
            .or_insert_with(|| ParamView {
                unit: String::new(),
                bounds: (None, None),
                working: None,
                earlier: Vec::new(),
                aggs: Vec::new(),
            });
        view.aggs.push(a.clone());
        Ok(())
    })?;
    // A parameter no longer configured: the limit its windows were judged against.
    for v in params.values_mut().filter(|v| v.working.is_none()) {
        if let Some(a) = v
            .aggs
            .iter()
            .rev()
            .find(|a| a.limit_high.is_some() || a.limit_low.is_some())
        {
            v.bounds = (a.limit_low, a.limit_high);
        }
    }
    let summary = summary::compute(
        snapshot,
        &SummaryInput {
            station_id: sid,
            window_ms: p.window_ms,
            interval_ms: cfg.map_or(300_000, |c| c.interval.as_millis() as i64),
            parameters: cfg.map_or(params.len(), |c| c.parameters.len()),
            from: p.from,
            to: p.counted,
        },
    )?;
    let offset_ms = i64::from(p.tz.local_minus_utc()) * 1000;
    Ok(ReportData {
        cfg,
        regulation,
        params,
        summary,
        events: if p.counted > p.from {
            snapshot.events(sid, p.from, p.counted)?
        } else {
            Vec::new()
        },
        days: snapshot.transmissions_by_day(sid, p.from, p.counted, offset_ms)?,
        penalty: penalty::compute(
            snapshot,
            &penalty::BasisInput {
                station_id: sid,
                flow: cfg.map_or("Flow", |c| c.flow_out.as_str()),
                window_ms: p.window_ms,
                interval_ms: cfg.map_or(300_000, |c| c.interval.as_millis() as i64),
                from: p.from,
                to: p.counted,
                offset_ms,
            },
        )?,
    })
}

/// The summary of a station with no data yet: every expected reading of the counted windows is missing.
fn empty_summary(cfg: Option<&Station>, p: Period) -> Summary {
    let w = p.window_ms.max(1);
    let windows = (p.counted - p.from + w - 1) / w;
    let interval = cfg
        .map_or(300_000, |c| c.interval.as_millis() as i64)
        .max(1);
    Summary {
        windows_in_period: windows,
        expected_readings: windows * (w / interval) * cfg.map_or(0, |c| c.parameters.len()) as i64,
        ..Default::default()
    }
}
