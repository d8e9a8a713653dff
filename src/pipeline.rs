//! Wiring between stages: sources → processor (quality checks, compliance) → ledger writer → broadcast.
//!
//! Sources hold an [`Ingest`] handle. Each batch they submit carries a completion that resolves only after its
//! ledger transaction commits, so a source acknowledges upstream (MQTT ack, TT10 file move) only then. Queues are
//! bounded and block: a slow ledger slows the sources, nothing is dropped. The pipeline ends when every `Ingest`
//! handle is dropped: the processor drains its queue, the writer commits what it holds and checkpoints.
//! A config reload ([`Pipeline::reconfigure`]) travels through the same queue as the batches, so it takes effect at an
//! exact point in the stream.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, error, warn};

use crate::compliance::{Evaluator, StationLimits};
use crate::config::Config;
use crate::ledger::aggregates::{AggregateContext, WindowUpdate, DAY_MS};
use crate::ledger::{CommitCounts, Evaluated, Ledger, Outcome};
use crate::metrics::Metrics;
use crate::model::{Quarantined, Reading, SourceKind, StationId, Timestamp};

/// What a source submits: readings and the inputs it could not turn into readings.
#[derive(Debug, Clone)]
pub struct Batch {
    pub source: SourceKind,
    pub readings: Vec<Reading>,
    pub quarantined: Vec<Quarantined>,
}

impl Batch {
    pub fn new(source: SourceKind) -> Self {
        Self {
            source,
            readings: Vec::new(),
            quarantined: Vec::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.readings.len() + self.quarantined.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The result of a committed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitReport {
    pub counts: CommitCounts,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PipelineError {
    #[error("the pipeline is shut down; the batch was not committed")]
    Closed,
    #[error("the ledger could not commit the batch (it was not stored; resend it): {0}")]
    Ledger(String),
}

type Done = oneshot::Sender<Result<CommitReport, PipelineError>>;

/// What the processor receives, in order: batches, and new settings after a reload. Sending a reload through the
/// same queue orders it exactly: every batch queued before it is judged by the old limits, every one after by the new.
enum Job {
    Batch { batch: Batch, done: Done },
    Reconfigure(Box<Reconfigure>, oneshot::Sender<()>),
}

/// Settings a reload replaces in the running pipeline.
struct Reconfigure {
    config: Config,
    limits: HashMap<StationId, StationLimits>,
}

/// A source's handle into the pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Job>,
}

/// Resolves when the batch's transaction has committed (or failed).
pub struct Completion(oneshot::Receiver<Result<CommitReport, PipelineError>>);

impl Future for Completion {
    type Output = Result<CommitReport, PipelineError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(PipelineError::Closed)))
    }
}

impl Ingest {
    /// Queue a batch (waiting while the queue is full) and return its completion.
    pub async fn enqueue(&self, batch: Batch) -> Result<Completion, PipelineError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Job::Batch { batch, done })
            .await
            .map_err(|_| PipelineError::Closed)?;
        Ok(Completion(rx))
    }
    /// Queue a batch and wait until it is committed.
    pub async fn submit(&self, batch: Batch) -> Result<CommitReport, PipelineError> {
        self.enqueue(batch).await?.await
    }
}

/// A committed reading, as live consumers (dashboard, alerts) receive it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub seq: i64,
    pub evaluated: Evaluated,
}

/// Events the pipeline publishes after each commit.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    Readings(Arc<Vec<Committed>>),
    Windows(Arc<Vec<WindowUpdate>>),
    /// Compliance events opened, escalated or closed (they feed the alert engine).
    Events(Arc<Vec<crate::compliance::EventChange>>),
    /// Alerts raised, escalated, acknowledged or cleared, as the API shows them (sent by the alert engine).
    Alerts(Arc<Vec<serde_json::Value>>),
}

/// A running pipeline.
pub struct Pipeline {
    ingest: Ingest,
    pub live: broadcast::Sender<LiveEvent>,
    pub metrics: Arc<Metrics>,
    processor: tokio::task::JoinHandle<()>,
    writer: oneshot::Receiver<()>,
}

/// Evaluated batches on their way to one transaction.
#[derive(Default)]
struct Group {
    readings: Vec<Evaluated>,
    quarantined: Vec<Quarantined>,
    parts: Vec<Part>,
}

/// One source batch inside a group: where its readings sit and whom to tell.
struct Part {
    readings: std::ops::Range<usize>,
    quarantined: u64,
    source: SourceKind,
    done: Done,
}

enum WriterMsg {
    Batch(Group),
    Tick,
    /// A reload: stations, intervals and limits for the aggregates, and the retention period.
    Settings(AggregateContext, Duration),
}

/// Everything the writer thread needs besides the ledger.
struct WriterSettings {
    max_transaction: usize,
    aggregates: AggregateContext,
    retention: Duration,
}

impl Pipeline {
    /// Start the processor task and the ledger writer thread.
    pub fn start(
        config: &Config,
        limits: HashMap<StationId, StationLimits>,
        ledger: Ledger,
        metrics: Arc<Metrics>,
    ) -> Pipeline {
        let (tx, rx) = mpsc::channel(config.pipeline.queue_capacity);
        let (wtx, wrx) = mpsc::channel(4);
        let (live, _) = broadcast::channel(config.pipeline.broadcast_capacity);
        let evaluator =
            Evaluator::new(config, limits.clone()).with_quality(config.compliance.quality.clone());
        let settings = WriterSettings {
            max_transaction: config.ledger.max_transaction_readings,
            aggregates: aggregate_context(config, &limits),
            retention: config.ledger.retention,
        };
        let processor = tokio::spawn(process(
            rx,
            wtx.clone(),
            evaluator,
            config.future_skew,
            config.ledger.max_transaction_readings,
            metrics.clone(),
        ));
        tokio::spawn(tick(wtx.downgrade()));
        drop(wtx);
        let (writer_done, writer) = oneshot::channel();
        let (m, l) = (metrics.clone(), live.clone());
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                write_loop(ledger, wrx, settings, m, l);
                let _ = writer_done.send(());
            })
            .expect("spawning the ledger writer thread");
        Pipeline {
            ingest: Ingest { tx },
            live,
            metrics,
            processor,
            writer,
        }
    }

    pub fn ingest(&self) -> Ingest {
        self.ingest.clone()
    }

    /// Apply a reloaded configuration: stations, limits, quality checks and the clock-skew limit for the processor,
    /// intervals, limits and retention for the writer. Batches queued before this call are judged by the old
    /// settings, batches queued after by the new. Returns once the processor has switched. Settings fixed at start
    /// (queue sizes, ledger file, transaction size) are not changed.
    pub async fn reconfigure(
        &self,
        config: &Config,
        limits: HashMap<StationId, StationLimits>,
    ) -> Result<(), PipelineError> {
        let (done, applied) = oneshot::channel();
        let r = Reconfigure {
            config: config.clone(),
            limits,
        };
        self.ingest
            .tx
            .send(Job::Reconfigure(Box::new(r), done))
            .await
            .map_err(|_| PipelineError::Closed)?;
        applied.await.map_err(|_| PipelineError::Closed)
    }

    /// Wait until every other `Ingest` handle is gone and everything queued is committed.
    pub async fn finish(self) {
        drop(self.ingest);
        let _ = self.processor.await;
        let _ = self.writer.await;
    }
}

fn aggregate_context(
    config: &Config,
    limits: &HashMap<StationId, StationLimits>,
) -> AggregateContext {
    let stations = config
        .stations
        .iter()
        .map(|s| {
            let lim = limits
                .get(&s.id)
                .map(|l| {
                    l.limits
                        .iter()
                        .map(|x| (x.parameter.as_str().to_string(), x.bound))
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
async fn tick(tx: mpsc::WeakSender<WriterMsg>) {
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

/// The processor: clock check, quality checks and compliance evaluation of every reading. It takes every batch
/// already queued (up to the transaction size) so the writer can commit them together.
async fn process(
    mut rx: mpsc::Receiver<Job>,
    wtx: mpsc::Sender<WriterMsg>,
    mut evaluator: Evaluator,
    mut future_skew: Duration,
    max_transaction: usize,
    metrics: Arc<Metrics>,
) {
    // A reload met while grouping batches waits here until the group is on its way to the writer.
    let mut held: Option<Job> = None;
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let (batch, done) = match first {
            Job::Batch { batch, done } => (batch, done),
            Job::Reconfigure(r, applied) => {
                let Reconfigure { config, limits } = *r;
                let ctx = aggregate_context(&config, &limits);
                evaluator =
                    evaluator.reconfigured(&config, limits, config.compliance.quality.clone());
                future_skew = config.future_skew;
                if wtx
                    .send(WriterMsg::Settings(ctx, config.ledger.retention))
                    .await
                    .is_err()
                {
                    error!("Ledger writer stopped; batches can no longer be committed.");
                    return;
                }
                let _ = applied.send(());
                continue;
            }
        };
        metrics.queue_depth.store(rx.len() as u64, Relaxed);
        let now = Timestamp::now();
        let limit = now.millis() + future_skew.as_millis() as i64;
        let mut out = Group::default();
        let mut next = Some((batch, done));
        while let Some((batch, done)) = next.take() {
            let (start, qstart) = (out.readings.len(), out.quarantined.len());
            out.quarantined.extend(batch.quarantined);
            for r in batch.readings {
                let verdict = if r.ts.millis() > limit {
                    Err(format!(
                        "timestamp {} is more than {} in the future (station clock fault?)",
                        r.ts,
                        humantime::format_duration(future_skew)
                    ))
                } else {
                    evaluator.assess(&r, now)
                };
                match verdict {
                    Ok(assessment) => out.readings.push(Evaluated {
                        reading: r,
                        assessment,
                        source: batch.source,
                    }),
                    Err(reason) => out.quarantined.push(
                        Quarantined::new(
                            batch.source,
                            format!("{}/{}", r.station, r.parameter),
                            reason,
                            describe(&r),
                        )
                        .with_station(r.station.as_str()),
                    ),
                }
            }
            out.parts.push(Part {
                readings: start..out.readings.len(),
                quarantined: (out.quarantined.len() - qstart) as u64,
                source: batch.source,
                done,
            });
            if out.readings.len() + out.quarantined.len() < max_transaction {
                match rx.try_recv() {
                    Ok(Job::Batch { batch, done }) => next = Some((batch, done)),
                    Ok(reload) => held = Some(reload),
                    Err(_) => {}
                }
            }
        }
        if wtx.send(WriterMsg::Batch(out)).await.is_err() {
            error!("Ledger writer stopped; batches can no longer be committed.");
            return;
        }
    }
}

/// A reading as text, kept as the raw bytes of a quarantined reading.
fn describe(r: &Reading) -> Vec<u8> {
    format!(
        "station={} parameter={} ts={} value={} unit={} status={}",
        r.station,
        r.parameter,
        r.ts,
        r.value,
        r.unit,
        r.status.code()
    )
    .into_bytes()
}

fn write_loop(
    mut ledger: Ledger,
    mut rx: mpsc::Receiver<WriterMsg>,
    mut settings: WriterSettings,
    metrics: Arc<Metrics>,
    live: broadcast::Sender<LiveEvent>,
) {
    let mut last_retention: Option<Instant> = None;
    let mut refresh_duty = DutyCycle::default();
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
                WriterMsg::Batch(g) => group.append(g),
                WriterMsg::Tick => tick = true,
                WriterMsg::Settings(aggregates, retention) => {
                    // Readings before the reload were judged by the old limits: commit them and bring their
                    // aggregates up to date under the old settings before switching.
                    if !group.parts.is_empty() {
                        commit(&mut ledger, std::mem::take(&mut group), &metrics, &live);
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
        if !group.parts.is_empty() {
            commit(&mut ledger, group, &metrics, &live);
        }
        // Aggregates follow about once a second, off the commit path; during a backlog, less often (see DutyCycle).
        if tick && refresh_duty.due() {
            let started = Instant::now();
            refresh_aggregates(&mut ledger, &settings.aggregates, &live);
            refresh_duty.ran(started);
        }
        publish_events(&mut ledger, &live);
        if last_retention.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
            last_retention = Some(Instant::now());
            let cutoff =
                Timestamp(Timestamp::now().millis() - settings.retention.as_millis() as i64);
            match ledger.apply_retention(cutoff) {
                Ok(0) => {}
                Ok(n) => debug!(rows = n, "Retention removed old readings."),
                Err(e) => warn!(error = %e, "Retention pass failed; will retry."),
            }
        }
    }
    // Bring the aggregates up to date before exiting (a bulk `ingest` may leave millions of readings behind them),
    // within a bound so shutdown stays quick; what is left is computed from the cursor at the next start.
    let started = Instant::now();
    while refresh_aggregates(&mut ledger, &settings.aggregates, &live) == REFRESH_ROWS
        && started.elapsed() < SHUTDOWN_REFRESH
    {}
    publish_events(&mut ledger, &live);
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
    fn append(&mut self, g: Group) {
        let offset = self.readings.len();
        self.readings.extend(g.readings);
        self.quarantined.extend(g.quarantined);
        self.parts.extend(g.parts.into_iter().map(|mut p| {
            p.readings = p.readings.start + offset..p.readings.end + offset;
            p
        }));
    }
}

fn commit(
    ledger: &mut Ledger,
    group: Group,
    metrics: &Metrics,
    live: &broadcast::Sender<LiveEvent>,
) {
    let Group {
        readings,
        quarantined,
        parts,
    } = group;
    let started = Instant::now();
    match ledger.commit(&readings, &quarantined) {
        Ok((outcomes, _)) => {
            metrics.commits.fetch_add(1, Relaxed);
            metrics
                .commit_micros
                .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
            for p in parts {
                let mut c = CommitCounts {
                    quarantined: p.quarantined,
                    ..Default::default()
                };
                for o in &outcomes[p.readings] {
                    match o {
                        Outcome::Accepted(_) => c.accepted += 1,
                        Outcome::Duplicate => c.duplicates += 1,
                        Outcome::Conflict => c.conflicts += 1,
                    }
                }
                metrics.record(p.source, c);
                let _ = p.done.send(Ok(CommitReport { counts: c }));
            }
            if live.receiver_count() > 0 {
                let committed: Vec<Committed> = readings
                    .into_iter()
                    .zip(outcomes)
                    .filter_map(|(e, o)| match o {
                        Outcome::Accepted(seq) => Some(Committed { seq, evaluated: e }),
                        _ => None,
                    })
                    .collect();
                if !committed.is_empty() {
                    let _ = live.send(LiveEvent::Readings(Arc::new(committed)));
                }
            }
        }
        Err(e) => {
            error!(error = %e, readings = readings.len(), "Ledger commit failed; the sources will resend the batch.");
            for p in parts {
                let _ = p.done.send(Err(PipelineError::Ledger(e.to_string())));
            }
        }
    }
}

fn publish_events(ledger: &mut Ledger, live: &broadcast::Sender<LiveEvent>) {
    let changes = ledger.take_event_changes();
    if !changes.is_empty() {
        let _ = live.send(LiveEvent::Events(Arc::new(changes)));
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
