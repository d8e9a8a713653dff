//! `quantrac bench backlog`: re-deriving compliance events for a 6 h backlog that arrives newest first.
//!
//! 100 stations × 10 parameters at 5-minute cadence: 1 h arrives live (in order), then the 6 h before it (72
//! readings per series, 72,000 readings) one timestamp per commit, newest first, so every reading is older than the
//! newest of its series and goes through the re-derivation. Each series holds two short exceedance episodes and
//! every tenth a violating hour. Measured through the ledger (commits, then the aggregate refresh that judges the
//! windows), beside the same readings in order, and the two ledgers' events compared. Then the alert engine's side:
//! after each commit, the keys the runner would re-derive (every series' keys observed out of order, as the runner
//! schedules them) through the alert store, and the violation keys once the windows are judged; the alerts are
//! compared with those an in-order engine raises. The total is what the backlog costs: its commits, the windows
//! it changed, and the alert side after each of its commits.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::FixedOffset;

use crate::alert::engine::{AlertKey, Engine, Kind, Observation, Rules};
use crate::alert::history::{LateSpan, Rederivation};
use crate::alert::message::Context;
use crate::alert::observe::{self, ReadingObs};
use crate::alert::store::{Saved, Store};
use crate::ledger::alert_list::AlertFilter;
use crate::ledger::LedgerError;

use crate::compliance::hourly::window_start;
use crate::compliance::limits::Dated;
use crate::compliance::quality::SeriesRules;
use crate::compliance::{Assessment, Flags, Judge, LimitBound, QualitySettings};
use crate::config::Synchronous;
use crate::ledger::aggregates::{AggregateContext, HOUR_MS};
use crate::ledger::quality::FlagRevision;
use crate::ledger::{Evaluated, Ledger};
use crate::model::{Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit};

use super::support::tempfile_dir;

const STATIONS: usize = 100;
const PARAMETERS: [&str; 10] = [
    "COD", "TSS", "NH4", "TN", "TP", "Color", "Temp", "TOC", "Cl", "BOD5",
];
const STEP: i64 = 300_000;
const LIVE: usize = 12;
const BACKLOG: usize = 72;
const LIMIT: f64 = 100.0;
const OFFSET: i32 = 7 * 3600;

pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tokio::task::spawn_blocking(measure)
        .await?
        .map_err(|e| e as Box<dyn std::error::Error>)
}

fn measure() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile_dir().map_err(|e| e.to_string())?;
    let data = timestamps();
    println!(
        "quantrac bench backlog: {STATIONS} stations x {} parameters, 5-minute data: {LIVE} live timestamps, then a backlog of {BACKLOG} ({} readings)",
        PARAMETERS.len(),
        BACKLOG * STATIONS * PARAMETERS.len()
    );
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>8} {:>11} {:>7} {:>10} {:>7} {:>13} {:>16}",
        "arrival",
        "commits s",
        "windows s",
        "alerts s",
        "total s",
        "readings/s",
        "events",
        "revisions",
        "alerts",
        "re-deriving s",
        "keys replayed"
    );
    let (backlog, live) = data.split_at(BACKLOG);
    let mut newest_first: Vec<&Vec<Evaluated>> = live.iter().collect();
    newest_first.extend(backlog.iter().rev());
    let mut in_order: Vec<&Vec<Evaluated>> = backlog.iter().collect();
    in_order.extend(live.iter());
    let a = run_once(&dir.join("newest-first.db"), &newest_first, LIVE, &[])?;
    a.print("backlog newest first");
    let b = run_once(&dir.join("in-order.db"), &in_order, 0, &[])?;
    b.print("same readings in order");
    println!(
        "events equal: {}   alerts equal: {}   (target: < 2 s in total for the backlog: its commits, the windows it \
         changed, and the alert side's scheduling and re-derivation)",
        a.events == b.events,
        a.alerts == b.alerts
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// station id, parameter id, scope, start, end, last, peak band.
use crate::ledger::query::{EventOutline as EventRow, Table};

struct Outcome {
    commits: Duration,
    windows: Duration,
    readings: usize,
    events: Vec<EventRow>,
    revisions: i64,
    /// Time spent by the alert engine's side on the timed batches (not the live hour), and the alerts that stand.
    alert_time: Duration,
    alerts: Vec<Standing>,
    /// Alert keys looked into, and replayed, and the time it took.
    rederived: (usize, usize),
    rederiving: Duration,
}

/// An alert that stands: (key, since, raised, cleared).
type Standing = (String, i64, i64, Option<i64>);

impl Outcome {
    fn print(&self, name: &str) {
        let total = self.commits + self.windows + self.alert_time;
        println!(
            "{:<22} {:>10.3} {:>10.3} {:>10.3} {:>8.3} {:>11.0} {:>7} {:>10} {:>7} {:>13.3} {:>16}",
            name,
            self.commits.as_secs_f64(),
            self.windows.as_secs_f64(),
            self.alert_time.as_secs_f64(),
            total.as_secs_f64(),
            self.readings as f64 / self.commits.as_secs_f64(),
            self.events.len(),
            self.revisions,
            self.alerts.len(),
            self.rederiving.as_secs_f64(),
            format!("{}/{}", self.rederived.1, self.rederived.0)
        );
    }
}

/// Commit `batches` one by one; time those after the first `skip` (the live hour), then the refresh that judges
/// their windows. The alert engine's side follows each commit: the live hour fed in order, then every batch older
/// than what its series saw re-derived, and the violation keys once the windows are judged. The alert side
/// restarts (its engine restored from the store) after each batch whose index is in `restarts`.
fn run_once(
    path: &Path,
    batches: &[&Vec<Evaluated>],
    skip: usize,
    restarts: &[usize],
) -> Result<Outcome, Box<dyn std::error::Error + Send + Sync>> {
    let _ = std::fs::remove_file(path);
    let mut ledger = Ledger::open(path, Synchronous::Normal)?;
    // As the pipeline's writer does.
    ledger.checkpoint_in_background()?;
    let mut alerts = AlertSide::open(path)?;
    let ctx = context();
    let mut alert_time = Duration::ZERO;
    for b in &batches[..skip] {
        ledger.commit(b, &[])?;
        let (b, revised) = as_stored(&mut ledger, b);
        alerts.follow(&b, &revised)?;
    }
    ledger.refresh_aggregates(&ctx, 1_000_000)?;
    let mut commits = Duration::ZERO;
    let mut readings = 0;
    for (i, b) in batches.iter().enumerate().skip(skip) {
        let started = Instant::now();
        ledger.commit(b, &[])?;
        commits += started.elapsed();
        readings += b.len();
        let (b, revised) = as_stored(&mut ledger, b);
        let started = Instant::now();
        alerts.follow(&b, &revised)?;
        alert_time += started.elapsed();
        if restarts.contains(&i) {
            alerts.restart()?;
        }
    }
    let started = Instant::now();
    ledger.refresh_aggregates(&ctx, 1_000_000)?;
    let windows = started.elapsed();
    let started = Instant::now();
    alerts.windows()?;
    alert_time += started.elapsed();
    let reader = ledger.reader()?;
    let events = reader.event_outlines()?;
    let revisions = reader.count(Table::EventRevisions)?;
    Ok(Outcome {
        commits,
        windows,
        readings,
        events,
        revisions,
        alert_time,
        alerts: alerts.standing()?,
        rederived: (alerts.looked, alerts.replayed),
        rederiving: alerts.rederiving,
    })
}

/// A committed batch as the writer publishes it (with the flags it was stored with), and the stored readings an
/// older one re-flagged.
fn as_stored(ledger: &mut Ledger, batch: &[Evaluated]) -> (Vec<Evaluated>, Vec<FlagRevision>) {
    let mut b = batch.to_vec();
    for (e, f) in b.iter_mut().zip(ledger.judged_flags()) {
        e.assessment.flags = *f;
    }
    (b, ledger.take_flag_revisions())
}

/// The alert engine's side of the bench: an engine fed in order, and the alert store's re-derivation for what
/// arrives out of order (what the runner does, without its broadcast and timers).
struct AlertSide {
    path: std::path::PathBuf,
    store: Store,
    engine: Engine,
    ctx: Context,
    newest: HashMap<(String, String), i64>,
    /// Series fed in order since the last commit (saved with it, as the runner does).
    unsaved_series: Vec<((String, String), i64)>,
    /// Every series seen.
    series: std::collections::BTreeSet<(String, String)>,
    /// The oldest reading seen: the windows are judged from its window on.
    oldest: Option<i64>,
    /// Keys looked into, and those whose history was replayed (the others changed nothing).
    looked: usize,
    replayed: usize,
    /// Time spent re-deriving (the rest of the alert side is feeding in-order data and storing it).
    rederiving: Duration,
}

impl AlertSide {
    fn open(path: &Path) -> Result<AlertSide, LedgerError> {
        let config = crate::config::alert::Alert::default();
        Ok(AlertSide {
            path: path.to_path_buf(),
            store: Store::open(path, Synchronous::Normal)?,
            engine: Engine::new(Rules::from_config(&config)),
            ctx: Context {
                public_url: String::new(),
                timezone: FixedOffset::east_opt(OFFSET).expect("a valid offset"),
                stations: HashMap::new(),
            },
            newest: HashMap::new(),
            unsaved_series: Vec::new(),
            series: Default::default(),
            oldest: None,
            looked: 0,
            replayed: 0,
            rederiving: Duration::ZERO,
        })
    }

    /// Feed a committed batch: in order, or (older than its series' newest) re-derived key by key.
    fn follow(&mut self, batch: &[Evaluated], revised: &[FlagRevision]) -> Result<(), LedgerError> {
        let now = Timestamp::now().millis();
        let mut late: BTreeMap<AlertKey, LateSpan> = BTreeMap::new();
        let mut fed = Vec::new();
        for e in batch {
            let obs = ReadingObs::from(e);
            let series = (obs.station.to_string(), obs.parameter.to_string());
            let older = self.newest.get(&series).is_some_and(|n| obs.ts < *n);
            if older {
                for (kind, bad) in observe::reading_verdicts(&obs) {
                    let key = AlertKey::new(obs.station, obs.parameter, kind);
                    // As the runner schedules: a good observation of a key that never left idle changes nothing.
                    if bad || self.engine.state(&key).is_some() {
                        let span = LateSpan::new(obs.ts, bad);
                        late.entry(key).and_modify(|s| s.add(span)).or_insert(span);
                    }
                }
            } else {
                for (kind, bad, detail) in observe::reading(&self.ctx, &obs) {
                    let key = AlertKey::new(obs.station, obs.parameter, kind);
                    let o = Observation {
                        bad,
                        at: obs.ts,
                        late: true,
                        detail,
                    };
                    fed.extend(self.engine.observe(&key, now, o).map(|t| (t, Vec::new())));
                }
            }
            if !older {
                self.newest.insert(series.clone(), obs.ts);
                self.unsaved_series.push((series.clone(), obs.ts));
            }
            self.series.insert(series);
            self.oldest = Some(self.oldest.map_or(obs.ts, |o| o.min(obs.ts)));
        }
        // As the runner: a re-flagged reading re-derives its series' flat-line and spike key.
        for f in revised.iter().filter(|f| f.changes_alerts()) {
            let key = AlertKey::new(&f.station, &f.parameter, Kind::Quality);
            let span = LateSpan::new(f.ts.millis(), true);
            late.entry(key).and_modify(|s| s.add(span)).or_insert(span);
        }
        let saved = Saved {
            dirty: self.engine.take_dirty(),
            series: std::mem::take(&mut self.unsaved_series),
            readings_pos: None,
        };
        self.store.commit(&self.ctx, &fed, &[], saved)?;
        self.rederive(late.into_iter().collect())
    }

    /// A restart: the engine and each series' newest reading restored from the store (as the runner does).
    fn restart(&mut self) -> Result<(), LedgerError> {
        let mut engine = Engine::new(self.engine.rules.clone());
        for (key, state) in self.store.load_states()? {
            engine.restore(key, state);
        }
        self.engine = engine;
        self.newest = self.store.load_series_newest()?;
        Ok(())
    }

    /// The windows judged at last: every series' violation key, from the oldest reading's window on (in order, as
    /// the runner sees them when they close).
    fn windows(&mut self) -> Result<(), LedgerError> {
        let Some(from) = self.oldest else {
            return Ok(());
        };
        let from = window_start(Timestamp(from), OFFSET, HOUR_MS).millis();
        let keys = self
            .series
            .iter()
            .map(|(s, p)| {
                let key = AlertKey::new(s, p, Kind::Violation);
                (key, LateSpan::new(from, true))
            })
            .collect();
        self.rederive(keys)
    }

    /// Re-derive the keys, in one call (as the runner does with what one batch scheduled).
    fn rederive(&mut self, keys: Vec<(AlertKey, LateSpan)>) -> Result<(), LedgerError> {
        let rules = self.engine.rules.clone();
        let now = Timestamp::now().millis();
        let rs: Vec<Rederivation<'_>> = keys
            .iter()
            .map(|(key, late)| Rederivation {
                ctx: &self.ctx,
                rules: &rules,
                key,
                late: *late,
                current: self.engine.state(key),
                channels: &[],
                judging_ms: HOUR_MS,
                limit: (None, Some(LIMIT), "mg/L".into()),
                now,
            })
            .collect();
        let started = Instant::now();
        let done = self.store.rederive(&rs)?;
        self.rederiving += started.elapsed();
        self.looked += keys.len();
        for ((key, _), done) in keys.into_iter().zip(done) {
            if let Some(done) = done {
                self.replayed += 1;
                self.engine.rederived(key, done.state);
            }
        }
        Ok(())
    }

    /// Every alert that stands: (key, since, raised, cleared).
    fn standing(&self) -> Result<Vec<Standing>, LedgerError> {
        let all = AlertFilter {
            limit: i64::MAX,
            ..AlertFilter::default()
        };
        let mut out: Vec<_> = crate::ledger::Reader::open(&self.path)?
            .alerts(&all)?
            .into_iter()
            .map(|a| a.alert)
            .filter(|a| a.state != "withdrawn")
            .map(|a| {
                (
                    format!("{}|{}|{}", a.station, a.subject, a.kind),
                    a.since,
                    a.raised,
                    a.cleared,
                )
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

fn context() -> AggregateContext {
    let limits: HashMap<String, Dated<Option<LimitBound>>> = PARAMETERS
        .iter()
        .map(|p| (p.to_string(), Some(LimitBound::Max(LIMIT)).into()))
        .collect();
    AggregateContext {
        offset_secs: OFFSET,
        windows: vec![HOUR_MS],
        judging_window_ms: HOUR_MS,
        stations: (0..STATIONS)
            .map(|s| (station(s).as_str().to_string(), (STEP, limits.clone())))
            .collect(),
    }
}

fn station(s: usize) -> StationId {
    StationId::parse(&format!("BN_B{s:03}_NUOC01")).expect("a valid station id")
}

/// One batch per timestamp, oldest first: 6 h of backlog then the live hour, ending a day before the current hour.
fn timestamps() -> Vec<Vec<Evaluated>> {
    let parameters: Vec<Parameter> = PARAMETERS
        .iter()
        .map(|p| Parameter::new(p).expect("a valid symbol"))
        .collect();
    (0..LIVE + BACKLOG)
        .map(|i| {
            let mut batch = Vec::with_capacity(STATIONS * parameters.len());
            for s in 0..STATIONS {
                let id = station(s);
                for (k, p) in parameters.iter().enumerate() {
                    let value = value(s * parameters.len() + k, i);
                    batch.push(evaluated(&id, p, i, value));
                }
            }
            batch
        })
        .collect()
}

/// The reading of a series at step `i` (of `LIVE + BACKLOG`, ending a day before the current hour), judged
/// against the bench's limit.
fn evaluated(station: &StationId, parameter: &Parameter, i: usize, value: f64) -> Evaluated {
    let end = window_start(Timestamp::now(), OFFSET, HOUR_MS).millis() - 24 * HOUR_MS;
    let start = end - (LIVE + BACKLOG) as i64 * STEP;
    let rules = SeriesRules::new(
        &QualitySettings::default(),
        Duration::from_secs(300),
        Some(LIMIT),
    );
    let v = Judge::new(LimitBound::Max(LIMIT))
        .expect("a positive limit")
        .value(value);
    Evaluated {
        reading: Reading {
            station: station.clone(),
            parameter: parameter.clone(),
            ts: Timestamp(start + i as i64 * STEP),
            value,
            unit: Unit::new("mg/L"),
            status: Status::Measuring,
        },
        assessment: Assessment {
            rules,
            limit: Some(LimitBound::Max(LIMIT)),
            ratio: v.ratio,
            band: v.band,
            flags: Flags::default(),
        },
        source: SourceKind::Sim,
        received: None,
    }
}

/// Series `n` at step `i`: compliant, with two three-reading exceedances and, every tenth series, an hour above.
fn value(n: usize, i: usize) -> f64 {
    let first = 5 + n % 20;
    let second = 40 + n % 25;
    let hour = if n.is_multiple_of(10) {
        Some(24..36)
    } else {
        None
    };
    if (first..first + 3).contains(&i) || (second..second + 3).contains(&i) {
        120.0 + (i % 3) as f64 * 15.0
    } else if hour.is_some_and(|h| h.contains(&i)) {
        130.0
    } else {
        60.0 + (n + i) as f64 % 20.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Two series of one station over `steps` 5-minute steps: each reading compliant or above the limit.
    fn readings(bad: &[(bool, bool)]) -> Vec<Vec<Evaluated>> {
        let id = station(0);
        let (cod, tss) = (
            Parameter::new("COD").unwrap(),
            Parameter::new("TSS").unwrap(),
        );
        let value = |bad: bool, i: usize| {
            if bad {
                120.0 + (i % 4) as f64
            } else {
                50.0 + (i % 7) as f64
            }
        };
        bad.iter()
            .enumerate()
            .map(|(i, (c, t))| {
                vec![
                    evaluated(&id, &cod, i, value(*c, i)),
                    evaluated(&id, &tss, i, value(*t, i + 3)),
                ]
            })
            .collect()
    }

    /// Per step whether COD and TSS are bad; how many steps arrive live; the order of the others; batch sizes;
    /// the batches after which the alert side restarts.
    type Arrival = (Vec<(bool, bool)>, usize, Vec<usize>, Vec<usize>, Vec<usize>);

    /// An arrival: some steps live in order, then the rest in any order, in batches of one to three steps, the
    /// alert side restarting after some batches.
    fn arrival() -> impl Strategy<Value = Arrival> {
        (12usize..40).prop_flat_map(|n| {
            let order: Vec<usize> = (0..n).collect();
            (
                proptest::collection::vec((any::<u8>(), any::<u8>()), n).prop_map(|v| {
                    v.into_iter()
                        .map(|(a, b)| (a % 3 == 0, b % 4 == 0))
                        .collect()
                }),
                0..n / 2,
                Just(order).prop_shuffle(),
                proptest::collection::vec(1usize..4, n),
                proptest::collection::vec(0usize..n, 0..3),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever order the readings arrive in, in whatever batches, with restarts of the alert engine between
        /// them, the alerts (and events) are those of in-order arrival: the re-derivation that meets the stored
        /// history early leaves what follows as in-order arrival made it.
        #[test]
        fn any_arrival_alerts_as_in_order_arrival_does(
            (bad, live, order, sizes, restarts) in arrival()
        ) {
            let data = readings(&bad);
            let dir = tempfile_dir().unwrap().join(format!("prop-{}", rand_suffix()));
            std::fs::create_dir_all(&dir).unwrap();
            let in_order: Vec<&Vec<Evaluated>> = data.iter().collect();
            // The live steps first, then the others in the shuffled order, batched.
            let rest: Vec<usize> = order.into_iter().filter(|i| *i >= live).collect();
            let mut batches: Vec<Vec<Evaluated>> = (0..live).map(|i| data[i].clone()).collect();
            let mut sizes = sizes.into_iter().cycle();
            let mut at = 0;
            while at < rest.len() {
                let n = sizes.next().unwrap_or(1).min(rest.len() - at);
                batches.push(rest[at..at + n].iter().flat_map(|i| data[*i].clone()).collect());
                at += n;
            }
            let arrived: Vec<&Vec<Evaluated>> = batches.iter().collect();
            let a = run_once(&dir.join("arrived.db"), &arrived, 0, &restarts).unwrap();
            let b = run_once(&dir.join("in-order.db"), &in_order, 0, &[]).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            prop_assert_eq!(a.alerts, b.alerts);
            prop_assert_eq!(a.events, b.events);
        }
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }
}
