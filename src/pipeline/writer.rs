//! The ledger writer: the one blocking thread of the pipeline, and the only writer of readings. It commits groups
//! of evaluated batches (group commit), resolves each batch's completion, publishes what committed on the bus, keeps
//! the hourly and daily aggregates up to date and applies retention.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};
use tracing::{debug, error, info, warn};

use super::buffers::Buffers;
use super::bus::{CommittedBatch, LiveEvent};
use super::ingest::{CommitReport, Done, PipelineError};
use crate::compliance::StationLimits;
use crate::config::Config;
use crate::ledger::aggregates::{AggregateContext, DAY_MS};
use crate::ledger::{CommitCounts, Evaluated, Ledger, Outcome};
use crate::metrics::Metrics;
use crate::model::{Quarantined, SourceKind, StationId, Timestamp};

/// Evaluated batches on their way to one transaction.
#[derive(Default)]
pub(super) struct Group {
    pub readings: Vec<Evaluated>,
    pub quarantined: Vec<Quarantined>,
    pub parts: Vec<Part>,
}

/// One source batch inside a group: where its readings sit and whom to tell.
pub(super) struct Part {
    pub readings: std::ops::Range<usize>,
    pub quarantined: u64,
    pub source: SourceKind,
    pub done: Done,
}

pub(super) enum WriterMsg {
    Batch(Group),
    Tick,
    /// A reload: stations, intervals and limits for the aggregates, and the retention period.
    Settings(AggregateContext, Duration),
}

/// Everything the writer thread needs besides the ledger.
pub(super) struct WriterSettings {
    /// Where emptied reading vectors go back to the processor.
    pub buffers: Buffers,
    pub max_transaction: usize,
    pub aggregates: AggregateContext,
    pub retention: Duration,
    /// Most committed readings the live followers may hold before the writer waits (see [`Followers`]).
    pub followers_max: usize,
}

/// Stations, their intervals and limits, and the windows the aggregates keep.
pub(super) fn aggregate_context(
    config: &Config,
    limits: &HashMap<StationId, StationLimits>,
) -> AggregateContext {
    let stations = config
        .stations
        .iter()
        .map(|s| {
            // Each window is judged by the regime in force at its start.
            let lim = limits
                .get(&s.id)
                .map(|l| {
                    s.parameters
                        .iter()
                        .map(|p| (p.parameter.as_str().to_string(), l.dated(&p.parameter)))
                        .collect()
                })
                .unwrap_or_default();
            (
                s.id.as_str().to_string(),
                (s.interval.as_millis() as i64, lim),
            )
        })
        .collect();
    let judging = config.compliance.averaging_window.as_millis() as i64;
    let mut windows = vec![judging, DAY_MS];
    windows.dedup();
    AggregateContext {
        offset_secs: config.timezone.local_minus_utc(),
        windows,
        judging_window_ms: judging,
        stations,
    }
}

/// Wakes the writer once a second for aggregates and retention; stops when the writer's inputs are gone.
pub(super) async fn tick(tx: mpsc::WeakSender<WriterMsg>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(tx) = tx.upgrade() else { return };
        if tx.send(WriterMsg::Tick).await.is_err() {
            return;
        }
    }
}

/// The writer thread's loop: runs until the processor and the ticker are gone, then catches up and checkpoints.
pub(super) fn write_loop(
    mut ledger: Ledger,
    mut rx: mpsc::Receiver<WriterMsg>,
    mut settings: WriterSettings,
    metrics: Arc<Metrics>,
    live: broadcast::Sender<LiveEvent>,
) {
    let mut last_retention: Option<Instant> = None;
    let mut refresh_duty = DutyCycle::default();
    let mut trim = Trim::default();
    let mut aggregates_behind = false;
    crate::allocator::tune();
    let mut followers = Followers::new(settings.followers_max);
    if let Err(e) = ledger.checkpoint_in_background() {
        warn!(error = %e, "Background WAL checkpoints unavailable; the writer checkpoints itself.");
    }
    while let Some(first) = rx.blocking_recv() {
        let mut tick = false;
        let mut group = Group::default();
        let mut next = Some(first);
        // Group commit: take what is queued, up to the transaction size.
        while let Some(msg) = next.take() {
            match msg {
                WriterMsg::Batch(g) => group.append(g, &settings.buffers),
                WriterMsg::Tick => tick = true,
                WriterMsg::Settings(aggregates, retention) => {
                    // Readings before the reload were judged by the old limits: commit them and bring their
                    // aggregates up to date under the old settings before switching.
                    if !group.parts.is_empty() {
                        commit(
                            &mut ledger,
                            std::mem::take(&mut group),
                            &metrics,
                            &live,
                            &mut followers,
                            &settings.buffers,
                        );
                    }
                    refresh_aggregates(&mut ledger, &settings.aggregates, &live);
                    settings.aggregates = aggregates;
                    settings.retention = retention;
                }
            }
            if group.readings.len() + group.quarantined.len() < settings.max_transaction {
                next = rx.try_recv().ok();
            }
        }
        let quiet = group.parts.is_empty();
        if !quiet {
            trim.committed(group.readings.len());
            commit(
                &mut ledger,
                group,
                &metrics,
                &live,
                &mut followers,
                &settings.buffers,
            );
        }
        // Aggregates follow about once a second, off the commit path; during a backlog, less often (see DutyCycle).
        if tick && refresh_duty.due() {
            let started = Instant::now();
            aggregates_behind =
                refresh_aggregates(&mut ledger, &settings.aggregates, &live) == REFRESH_ROWS;
            refresh_duty.ran(started);
        }
        // A tick with nothing to commit after a burst: give the memory the burst freed back to the system.
        if tick && quiet && trim.quiet_second(!aggregates_behind) {
            ledger.release_memory();
            settings.buffers.release();
            crate::allocator::release_free_memory();
        }
        publish_events(&mut ledger, &live);
        if last_retention.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
            last_retention = Some(Instant::now());
            apply_retention(&mut ledger, settings.retention);
        }
    }
    finish(&mut ledger, &settings, &live);
}

fn apply_retention(ledger: &mut Ledger, retention: Duration) {
    let cutoff = Timestamp(Timestamp::now().millis() - retention.as_millis() as i64);
    match ledger.apply_retention(cutoff) {
        Ok(report) => {
            for r in &report.stations {
                info!(station = %r.station, readings = r.readings, first = %r.first, last = %r.last,
                    "Retention deleted readings older than the retention period (recorded in the audit table).");
            }
            if report.quarantined > 0 {
                info!(
                    inputs = report.quarantined,
                    "Retention deleted old quarantined inputs."
                );
            }
        }
        Err(e) => warn!(error = %e, "Retention pass failed; will retry."),
    }
}

/// At shutdown: bring the aggregates up to date (a bulk `ingest` may leave millions of readings behind them),
/// within a bound so shutdown stays quick; what is left is computed from the cursor at the next start.
fn finish(ledger: &mut Ledger, settings: &WriterSettings, live: &broadcast::Sender<LiveEvent>) {
    let started = Instant::now();
    while refresh_aggregates(ledger, &settings.aggregates, live) == REFRESH_ROWS
        && started.elapsed() < SHUTDOWN_REFRESH
    {}
    publish_events(ledger, live);
    if let Err(e) = ledger.checkpoint() {
        warn!(error = %e, "WAL checkpoint at shutdown failed; the WAL file still holds the data.");
    }
}

/// Keeps aggregate refreshes to about a tenth of the writer's time. At a normal rate a refresh takes milliseconds
/// and runs every tick; while a backlog drains (say 200k readings a second after a broker outage) each refresh
/// re-reads every touched hour and day, and running it every second would take a third of the writer's time.
#[derive(Default)]
struct DutyCycle {
    last: Option<(Instant, Duration)>,
}

impl DutyCycle {
    fn due(&self) -> bool {
        self.last
            .is_none_or(|(at, took)| at.elapsed() >= took.saturating_mul(9))
    }

    fn ran(&mut self, started: Instant) {
        self.last = Some((started, started.elapsed()));
    }
}

impl Group {
    /// Add `g` after what the group holds; `g`'s emptied vector goes back to `buffers`.
    fn append(&mut self, mut g: Group, buffers: &Buffers) {
        // The first group is taken whole: its readings (megabytes in a burst) are not copied.
        if self.parts.is_empty() && self.quarantined.is_empty() {
            *self = g;
            return;
        }
        let offset = self.readings.len();
        self.readings.append(&mut g.readings);
        buffers.give(g.readings);
        self.quarantined.extend(g.quarantined);
        self.parts.extend(g.parts.into_iter().map(|mut p| {
            p.readings = p.readings.start + offset..p.readings.end + offset;
            p
        }));
    }
}

/// Commit one group, tell each batch's source, and publish the accepted readings.
fn commit(
    ledger: &mut Ledger,
    group: Group,
    metrics: &Metrics,
    live: &broadcast::Sender<LiveEvent>,
    followers: &mut Followers,
    buffers: &Buffers,
) {
    let Group {
        mut readings,
        quarantined,
        parts,
    } = group;
    let started = Instant::now();
    match ledger.commit(&readings, &quarantined) {
        Ok((outcomes, _)) => {
            metrics.commits.fetch_add(1, Relaxed);
            metrics.commit_succeeded();
            metrics
                .commit_micros
                .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
            for p in parts {
                let c = count(&outcomes[p.readings.clone()], p.quarantined);
                metrics.record(p.source, c);
                let _ = p.done.send(Ok(CommitReport { counts: c }));
            }
            if live.receiver_count() > 0 {
                // Consumers see the flags as stored: with those judged against the series' history.
                for (e, f) in readings.iter_mut().zip(ledger.judged_flags()) {
                    e.assessment.flags = *f;
                }
                publish_readings(readings, &outcomes, live, followers, buffers);
                let revised = ledger.take_flag_revisions();
                if !revised.is_empty() {
                    let _ = live.send(LiveEvent::FlagsRevised(Arc::new(revised)));
                }
            } else {
                ledger.take_flag_revisions();
                buffers.give(readings);
            }
            log_quarantined(&quarantined);
        }
        Err(e) => {
            error!(ledger = %ledger.path().display(), error = %e, readings = readings.len(), "Ledger commit failed; the sources will resend the batch.");
            metrics.commit_failed(format!("commit to {} failed: {e}", ledger.path().display()));
            let e = Arc::new(e);
            for p in parts {
                let _ = p.done.send(Err(PipelineError::Ledger(e.clone())));
            }
            buffers.give(readings);
        }
    }
}

/// Say what was quarantined (from any source: a rejected TT10 file, a bad payload, an out-of-range value): the
/// latest one's origin and reason, at most one line every 10 s with how many came since the last line.
fn log_quarantined(quarantined: &[Quarantined]) {
    use std::sync::atomic::{AtomicI64, AtomicU64};
    static LAST_LINE_MS: AtomicI64 = AtomicI64::new(i64::MIN);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    let Some(latest) = quarantined.last() else {
        return;
    };
    let since = SINCE.fetch_add(quarantined.len() as u64, Relaxed) + quarantined.len() as u64;
    let now = crate::model::Timestamp::now().millis();
    if now.saturating_sub(LAST_LINE_MS.load(Relaxed)) < 10_000 {
        return;
    }
    LAST_LINE_MS.store(now, Relaxed);
    SINCE.store(0, Relaxed);
    warn!(inputs = since, origin = %latest.origin, station = latest.station.as_deref().unwrap_or("-"),
          reason = %latest.reason, "Input quarantined (see /api/quarantine); at most one line every 10 s.");
}

fn count(outcomes: &[Outcome], quarantined: u64) -> CommitCounts {
    let mut c = CommitCounts {
        quarantined,
        ..Default::default()
    };
    for o in outcomes {
        match o {
            Outcome::Accepted(_) => c.accepted += 1,
            Outcome::Duplicate => c.duplicates += 1,
            Outcome::Conflict => c.conflicts += 1,
        }
    }
    c
}

/// Publish the accepted readings: `readings` itself, without the duplicates and conflicts. Its memory goes back to
/// `buffers` once every follower has let the batch go.
fn publish_readings(
    mut readings: Vec<Evaluated>,
    outcomes: &[Outcome],
    live: &broadcast::Sender<LiveEvent>,
    followers: &mut Followers,
    buffers: &Buffers,
) {
    let seqs: Vec<i64> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Accepted(seq) => Some(*seq),
            _ => None,
        })
        .collect();
    if seqs.len() < readings.len() {
        let mut accepted = outcomes.iter().map(|o| matches!(o, Outcome::Accepted(_)));
        readings.retain(|_| accepted.next().unwrap_or(false));
    }
    if readings.is_empty() {
        buffers.give(readings);
        return;
    }
    followers.wait_for_room(readings.len());
    let batch = Arc::new(CommittedBatch::recycled(readings, seqs, buffers.clone()));
    followers.track(&batch);
    let _ = live.send(LiveEvent::Readings(batch));
}

/// Committed readings published on the bus and not yet taken by every follower, at most this many before the
/// writer waits (about 260 bytes each in memory: some 17 MiB).
pub(super) const FOLLOWERS_MAX_READINGS: usize = 65_536;
/// Longest the writer waits for the followers before it publishes anyway (a follower that stopped reading must
/// not stop the ledger; past the bus's capacity it is told it lagged and catches up from the ledger).
const FOLLOWERS_MAX_WAIT: Duration = Duration::from_secs(10);

/// Back-pressure from the live followers (alert runner, live view, SSE hub) to the writer. A published batch stays
/// in memory until every follower has taken it from the bus and let it go; without a bound a burst committed faster
/// than the slowest follower reads piles up there (it was most of the daemon's peak memory). The writer waits
/// before publishing while the followers hold too many readings, so every follower still sees every reading and
/// the sources slow down instead (their batches are committed and acked; the next commits wait).
///
/// The batches are watched through weak references: a batch is released when no follower holds it any more. The
/// writer looks again every millisecond while it waits (a commit takes longer than that under such a load).
pub(super) struct Followers {
    published: VecDeque<(Weak<CommittedBatch>, usize)>,
    held: usize,
    max: usize,
}

impl Followers {
    pub(super) fn new(max: usize) -> Self {
        Self {
            published: VecDeque::new(),
            held: 0,
            max,
        }
    }

    /// Readings still held by a follower.
    pub(super) fn held(&mut self) -> usize {
        let before = self.published.len();
        self.published.retain(|(b, _)| b.strong_count() > 0);
        if self.published.len() != before {
            self.held = self.published.iter().map(|(_, n)| n).sum();
        }
        self.held
    }

    /// Wait until `n` more readings fit (a batch larger than the bound waits for the followers to hold none), or
    /// `FOLLOWERS_MAX_WAIT` has passed.
    fn wait_for_room(&mut self, n: usize) {
        let started = Instant::now();
        while self.held() > 0 && self.held + n > self.max {
            if started.elapsed() >= FOLLOWERS_MAX_WAIT {
                warn!(held = self.held, "A live follower (alert engine, live view or dashboard stream) has not taken committed readings for 10 s; publishing anyway.");
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub(super) fn track(&mut self, batch: &Arc<CommittedBatch>) {
        self.published
            .push_back((Arc::downgrade(batch), batch.len()));
        self.held += batch.len();
    }
}

fn publish_events(ledger: &mut Ledger, live: &broadcast::Sender<LiveEvent>) {
    let changes = ledger.take_event_changes();
    if !changes.is_empty() {
        let _ = live.send(LiveEvent::Events(Arc::new(changes)));
    }
}

/// Readings committed since the last trim before a quiet second trims the heap.
const TRIM_AFTER_READINGS: usize = 50_000;
/// Quiet seconds after a burst at which the heap is trimmed: at once (what the writer freed), and again once the
/// followers and forwarders have caught up and freed what they held (they finish after the writer).
const TRIM_AT_QUIET_SECONDS: [u32; 2] = [1, 10];

/// When to trim the heap after a burst of at least [`TRIM_AFTER_READINGS`]: at each of [`TRIM_AT_QUIET_SECONDS`],
/// and, if the aggregates were still catching up with the burst then (they read it back through the writer's page
/// cache, a few seconds per million readings), once more when they have.
#[derive(Default)]
struct Trim {
    since: usize,
    quiet: u32,
}

impl Trim {
    fn committed(&mut self, readings: usize) {
        self.since += readings;
        self.quiet = 0;
    }

    /// A second with nothing committed (`caught_up`: the aggregates are up to date): whether to trim now.
    fn quiet_second(&mut self, caught_up: bool) -> bool {
        if self.since < TRIM_AFTER_READINGS {
            return false;
        }
        self.quiet += 1;
        let last = TRIM_AT_QUIET_SECONDS[TRIM_AT_QUIET_SECONDS.len() - 1];
        let done = self.quiet >= last && caught_up;
        if done {
            self.since = 0;
        }
        TRIM_AT_QUIET_SECONDS.contains(&self.quiet) || done
    }
}

/// Most readings one aggregate refresh takes from its cursor.
const REFRESH_ROWS: usize = 100_000;
/// How long shutdown may spend catching the aggregates up.
const SHUTDOWN_REFRESH: Duration = Duration::from_secs(3);

/// One aggregate refresh step; returns how many readings it took from the cursor.
fn refresh_aggregates(
    ledger: &mut Ledger,
    ctx: &AggregateContext,
    live: &broadcast::Sender<LiveEvent>,
) -> usize {
    match ledger.refresh_aggregates(ctx, REFRESH_ROWS) {
        Ok(report) => {
            let seen = report.readings_seen;
            if report.updates.is_empty() {
                return seen;
            }
            for u in report
                .updates
                .iter()
                .filter(|u| u.late_change_from.is_some())
            {
                debug!(station = %u.station, parameter = %u.parameter, window_start = %u.window_start, "Closed window recomputed after a late reading.");
            }
            let _ = live.send(LiveEvent::Windows(Arc::new(report.updates)));
            seen
        }
        Err(e) => {
            warn!(error = %e, "Aggregate refresh failed; will retry.");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast;

    use super::{publish_readings, Buffers, Followers, LiveEvent, Trim, TRIM_AFTER_READINGS};
    use crate::ledger::Outcome;
    use crate::testing::cod_reading;

    /// Followers get the accepted readings with their seqs (no duplicate or conflict), and the vector they were
    /// committed in comes back for the processor once the last follower lets the batch go.
    #[test]
    fn published_readings_are_the_accepted_ones_and_their_vector_comes_back() {
        let (live, mut rx) = broadcast::channel(4);
        let (buffers, mut followers) = (Buffers::default(), Followers::new(1000));
        let mut readings = Vec::with_capacity(100);
        readings.extend((1..=4).map(cod_reading));
        let outcomes = [
            Outcome::Accepted(7),
            Outcome::Duplicate,
            Outcome::Accepted(8),
            Outcome::Conflict,
        ];
        publish_readings(readings, &outcomes, &live, &mut followers, &buffers);
        let Ok(LiveEvent::Readings(batch)) = rx.try_recv() else {
            panic!("a batch of readings is published");
        };
        let got: Vec<(i64, i64)> = batch
            .iter()
            .map(|c| (c.seq, c.evaluated.reading.ts.millis()))
            .collect();
        assert_eq!(got, [(7, 1), (8, 3)]);
        assert_eq!(followers.held(), 2);
        assert_eq!(buffers.take().capacity(), 0, "held by the follower");
        drop(batch);
        assert_eq!(followers.held(), 0);
        let back = buffers.take();
        assert!(back.is_empty() && back.capacity() >= 100);
        // Nothing accepted: nothing published, the vector goes straight back.
        let mut all_duplicates = Vec::with_capacity(50);
        all_duplicates.push(cod_reading(1));
        publish_readings(
            all_duplicates,
            &[Outcome::Duplicate],
            &live,
            &mut followers,
            &buffers,
        );
        assert!(rx.try_recv().is_err());
        assert!(buffers.take().capacity() >= 50);
    }

    /// After a burst the heap is trimmed at the first quiet second and again at the tenth, then not until the next
    /// burst; a trickle below the burst size never trims.
    #[test]
    fn the_heap_is_trimmed_twice_after_a_burst_and_never_for_a_trickle() {
        let mut t = Trim::default();
        let trims = |t: &mut Trim, seconds: u32| {
            (1..=seconds)
                .filter(|_| t.quiet_second(true))
                .collect::<Vec<_>>()
        };
        t.committed(TRIM_AFTER_READINGS - 1);
        assert!(trims(&mut t, 30).is_empty());
        t.committed(1);
        assert_eq!(trims(&mut t, 30), vec![1, 10]);
        t.committed(TRIM_AFTER_READINGS);
        assert_eq!(trims(&mut t, 3), vec![1]);
        // Commits again before the tenth quiet second: the burst goes on; both trims follow its end.
        t.committed(10);
        assert_eq!(trims(&mut t, 12), vec![1, 10]);
    }

    /// Aggregates still catching up at the tenth quiet second: one more trim once they have.
    #[test]
    fn a_last_trim_follows_the_aggregates_catching_up() {
        let mut t = Trim::default();
        t.committed(TRIM_AFTER_READINGS);
        let trimmed: Vec<u32> = (1..=40).filter(|s| t.quiet_second(*s >= 25)).collect();
        assert_eq!(trimmed, vec![1, 10, 25]);
    }
}
