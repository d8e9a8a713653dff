//! The compliance ledger: one SQLite file (WAL) an auditor can open with `sqlite3`.
//!
//! Owns the schema, batched writes (readings, quarantine, conflicts), cursors, aggregates storage, queries and
//! retention. The key (station, parameter, timestamp) makes storage exactly-once: a redelivered duplicate is a
//! no-op; the same key with another value keeps the first and records a conflict.
//! Every SQL statement of quantrac is in this module: the writer's commits, the queries of the API, the live view,
//! exports and sources (`query.rs`, `export.rs`), and the side tables written outside the writer thread: alerts and
//! the outbox (`alerts.rs`), forwarder cursors (`forward.rs`, `transmit.rs`), audit and notes (`audit.rs`).
//! Calls here block: the pipeline runs them on a dedicated thread; async code reaches the ledger through
//! [`LedgerHandle`] or [`Held`] (`handle.rs`), which run them on the blocking pool; readers open their own connection.

pub mod aggregates;
pub mod alert_history;
pub mod alert_list;
pub mod alerts;
pub mod audit;
mod checkpointer;
pub mod events;
pub mod export;
pub mod feed;
pub mod forward;
pub mod handle;
pub mod history;
pub mod lock;
pub mod probe;
pub mod quality;
pub mod query;
mod schema;
pub mod transmit;
pub mod users;
pub mod withdrawn;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use rustc_hash::FxHashMap;

pub use aggregates::{AggregateContext, AggregateReport};
pub use audit::SideWriter;
pub use handle::{Held, LedgerHandle};
pub use query::Reader;

use crate::compliance::hourly::Sample;
use crate::compliance::{Assessment, EventChange, EventKey, EventTracker, Flags, Follow, Scope};
use crate::config::Synchronous;
use crate::model::{Parameter, Quarantined, Reading, Received, SourceKind, StationId, Timestamp};
use events::Late;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the ledger at {path}: {error}")]
    Open {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error("cannot start a ledger thread: {0}")]
    Thread(String),
    #[error("the ledger {path} has schema version {found}, newer than this quantrac supports ({supported}); upgrade quantrac")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path} is not a quantrac ledger (it holds the tables {tables}); give ledger.path a new file or a quantrac ledger")]
    NotQuantrac { path: PathBuf, tables: String },
    #[error("the ledger {path} cannot be written ({why}); fix its permissions or free disk space, then start again")]
    NotWritable {
        path: PathBuf,
        why: String,
        #[source]
        error: Option<rusqlite::Error>,
    },
    #[error("the ledger {path} is in use by another quantrac process{}; one process writes a ledger: stop it first, or backfill a running daemon through its TT10 landing folder", holder.map(|p| format!(" (PID {p})")).unwrap_or_default())]
    InUse { path: PathBuf, holder: Option<u32> },
    #[error("the ledger {path} has schema version {found}, older than the accounts tables (11); restart the running quantrac with this version first, then add users")]
    NoAccounts { path: PathBuf, found: i64 },
    #[error("cannot use the ledger's lock file {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a ledger call on the blocking pool did not finish")]
    Task {
        #[source]
        source: tokio::task::JoinError,
    },
}

/// A reading with the compliance engine's verdict, ready to store.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// In the parameter's unit.
    pub reading: Reading,
    pub assessment: Assessment,
    pub source: SourceKind,
    /// What the station sent, when the unit was converted or spelt another way.
    pub received: Option<Received>,
}

/// What happened to one reading at commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored; its commit sequence number.
    Accepted(i64),
    /// Same key, same value and status already stored: nothing to do.
    Duplicate,
    /// Same key, another value or status: the first stays, the difference is recorded in `conflicts`.
    Conflict,
}

/// Counts of one commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitCounts {
    pub accepted: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub quarantined: u64,
}

impl CommitCounts {
    pub fn add(&mut self, o: CommitCounts) {
        self.accepted += o.accepted;
        self.duplicates += o.duplicates;
        self.conflicts += o.conflicts;
        self.quarantined += o.quarantined;
    }
}

/// What one retention pass deleted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RetentionReport {
    pub readings: usize,
    /// Per station: how many readings, and the first and last deleted timestamp.
    pub stations: Vec<RetainedRange>,
    pub quarantined: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetainedRange {
    pub station: String,
    pub readings: usize,
    pub first: Timestamp,
    pub last: Timestamp,
}

impl RetentionReport {
    pub fn is_empty(&self) -> bool {
        self.readings == 0 && self.quarantined == 0
    }

    /// One line for the audit table, e.g. `before 2021-12-05T00:00:00Z: BN_A_N1 1200 readings 2021-11-01… to …`.
    pub fn describe(&self, cutoff: Timestamp) -> String {
        let mut parts: Vec<String> = self
            .stations
            .iter()
            .map(|r| {
                format!(
                    "{} {} readings {} to {}",
                    r.station, r.readings, r.first, r.last
                )
            })
            .collect();
        if self.quarantined > 0 {
            parts.push(format!("{} quarantined inputs", self.quarantined));
        }
        format!("before {cutoff}: {}", parts.join("; "))
    }
}

/// How long a connection waits for another's write lock before its statement fails.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The writer connection's page cache in KiB. 64 MiB until December 2026; `quantrac bench ledger` measures the
/// writer at both sizes on a ledger larger than either (README "Performance").
pub const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// The writing side of the ledger. One per database file.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    stations: FxHashMap<StationId, i64>,
    parameters: FxHashMap<Parameter, i64>,
    /// Open compliance events; changes are stored with the commit that causes them.
    events: EventTracker,
    /// Event changes of the commits since the last `take_event_changes`.
    event_changes: Vec<EventChange>,
    /// The newest `readings.seq` when `events` was loaded: every reading committed after it went through the
    /// tracker, so a series the tracker has not seen has no reading after it (and none at all when it is 0).
    followed_after: i64,
    /// Each series' history for the quality flags judged in observation order.
    quality: quality::Tracks,
    /// The flags each reading of the last commit was stored with.
    judged: Vec<Flags>,
    /// Stored readings whose flags later commits changed, since the last `take_flag_revisions`.
    flag_revisions: Vec<quality::FlagRevision>,
    /// Background WAL checkpoints, once started.
    checkpointer: Option<checkpointer::Checkpointer>,
    /// The window totals of the readings committed since the aggregator last caught up.
    committed: Option<aggregates::Committed>,
    /// The rows of each commit, for this process's forwarders.
    feed: Arc<feed::Feed>,
    /// Held for as long as this ledger is open: no other process writes it.
    _lock: lock::WriterLock,
}

impl Drop for Ledger {
    /// Forwarders still following this writer's feed read the ledger from now on.
    fn drop(&mut self) {
        self.feed.close();
    }
}

impl Ledger {
    /// Open (or create) the ledger, apply migrations, set WAL and the synchronous mode. Refuses, naming the file, a
    /// file that is not a quantrac ledger, one newer than this build, and one it cannot write (read-only, full
    /// disk): a daemon that starts on it would answer ready and lose every commit.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Ledger, LedgerError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let lock = lock::WriterLock::acquire(path)?;
        let mut conn = open_checked(path)?;
        let named = |error| LedgerError::Open {
            path: path.to_path_buf(),
            error,
        };
        schema::check_writable(&conn, path)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| schema::not_writable(path, e))?;
        set_synchronous(&conn, synchronous).map_err(named)?;
        // Foreign keys are declared for readers but not enforced: the writer inserts station and parameter ids in the
        // same transaction as the readings that use them, and enforcement costs two parent lookups per insert
        // (about 12 % of commit throughput).
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        // The writer touches the tail of the readings table and one tail page of the key index per station on every
        // commit, and the aggregates re-read the recent hours: keep those cached instead of re-reading pages from the
        // OS. The cache counts in the daemon's resident size once a burst has filled it (see `WRITER_CACHE_KIB`).
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        conn.set_prepared_statement_cache_capacity(64);
        schema::migrate(&mut conn, path)?;
        let events = events::load_open(&conn)?;
        let followed_after = top_seq(&conn)?;
        let mut ledger = Ledger {
            conn,
            path: path.to_path_buf(),
            stations: FxHashMap::default(),
            parameters: FxHashMap::default(),
            events,
            event_changes: Vec::new(),
            followed_after,
            quality: quality::Tracks::default(),
            judged: Vec::new(),
            flag_revisions: Vec::new(),
            checkpointer: None,
            committed: None,
            feed: feed::register(path),
            _lock: lock,
        };
        ledger.load_ids()?;
        Ok(ledger)
    }

    /// Checkpoint the WAL from a background thread from now on (the pipeline's writer does this); the writer's own
    /// automatic checkpoint stays as a safety net at a higher threshold.
    pub fn checkpoint_in_background(&mut self) -> Result<(), LedgerError> {
        if self.checkpointer.is_none() {
            self.checkpointer = Some(checkpointer::Checkpointer::start(&self.path)?);
            self.conn
                .pragma_update(None, "wal_autocheckpoint", checkpointer::SAFETY_NET_PAGES)?;
        }
        Ok(())
    }

    /// Empty the writer's page cache (after a burst; the next commits read their few pages back from the OS's file
    /// cache). Errors are ignored: the cache is only memory.
    pub fn release_memory(&self) {
        let _ = self.conn.execute_batch("PRAGMA shrink_memory");
    }

    /// Change the writer's page cache (KiB); what `bench ledger` compares.
    pub fn set_cache_kib(&self, kib: i64) -> Result<(), LedgerError> {
        Ok(self.conn.pragma_update(None, "cache_size", -kib)?)
    }

    fn mark_written(&self) {
        if let Some(c) = &self.checkpointer {
            c.mark();
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A read-only connection for queries (dashboard, API, exports), safe to use beside the writer (WAL).
    pub fn reader(&self) -> Result<Reader, LedgerError> {
        Reader::open(&self.path)
    }

    fn load_ids(&mut self) -> Result<(), LedgerError> {
        let mut st = self.conn.prepare("SELECT id, code FROM stations")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (id, code) = row?;
            if let Ok(s) = StationId::parse(&code) {
                self.stations.insert(s, id);
            }
        }
        drop(st);
        let mut st = self.conn.prepare("SELECT id, symbol FROM parameters")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (id, sym) = row?;
            if let Ok(p) = Parameter::new(&sym) {
                self.parameters.insert(p, id);
            }
        }
        Ok(())
    }

    /// Commit one transaction: readings (in key order, for index locality) and quarantined inputs.
    /// Returns the outcome of each reading, in the order given.
    pub fn commit(
        &mut self,
        readings: &[Evaluated],
        quarantine: &[Quarantined],
    ) -> Result<(Vec<Outcome>, CommitCounts), LedgerError> {
        let mark = (self.event_changes.len(), self.flag_revisions.len());
        let result = self.try_commit(readings, quarantine);
        match result {
            Ok(_) => self.mark_written(),
            Err(_) => self.reset_caches(mark),
        }
        result
    }

    /// After a rolled-back transaction: ids and event states cached inside it may not exist; start afresh.
    /// `mark`: event changes before it belong to committed transactions and are kept.
    fn reset_caches(&mut self, (mark, revisions_mark): (usize, usize)) {
        self.stations.clear();
        self.parameters.clear();
        let _ = self.load_ids();
        self.event_changes.truncate(mark);
        if let Ok(t) = events::load_open(&self.conn) {
            self.events = t;
        }
        // The new tracker has seen nothing yet: any stored reading may be a series' newest.
        self.followed_after = top_seq(&self.conn).unwrap_or(i64::MAX);
        self.quality.clear();
        self.flag_revisions.truncate(revisions_mark);
        self.committed = None;
    }

    /// Write the open events extended since the last call (`last`, `band`) in transaction `tx` and publish them: about
    /// once a second (in the aggregates' transaction) rather than at every reading of a long exceedance.
    fn store_extended(
        tx: &Connection,
        tracker: &mut EventTracker,
        ids: (&FxHashMap<StationId, i64>, &FxHashMap<Parameter, i64>),
        published: &mut Vec<EventChange>,
    ) -> Result<(), LedgerError> {
        let extended = tracker.take_extended();
        for c in &extended {
            let k = c.key();
            if let (Some(&s), Some(&p)) = (ids.0.get(&k.station), ids.1.get(&k.parameter)) {
                events::store(tx, (s, p), c)?;
            }
        }
        published.extend(extended);
        Ok(())
    }

    /// The flags each reading of the last successful commit was stored with (by its place in the commit): the
    /// evaluator's, with those judged against the series' history.
    pub fn judged_flags(&self) -> &[Flags] {
        &self.judged
    }

    /// Stored readings whose quality flags an older reading's arrival changed, since the last call.
    pub fn take_flag_revisions(&mut self) -> Vec<quality::FlagRevision> {
        std::mem::take(&mut self.flag_revisions)
    }

    /// Compliance event changes (opened, escalated, peak, extended, closed, re-derived) stored since the last call.
    pub fn take_event_changes(&mut self) -> Vec<EventChange> {
        std::mem::take(&mut self.event_changes)
    }

    /// Fold the accepted readings (in key-index order: each series in time order) into the compliance events. A
    /// reading newer than the newest of its series goes through the tracker (the hot path); a series with readings
    /// older than its newest has the span they touch re-derived from the ledger first, then takes its newer readings.
    fn follow_events(
        tracker: &mut EventTracker,
        published: &mut Vec<EventChange>,
        tx: &Connection,
        accepted: &[usize],
        readings: &[Evaluated],
        ids: &[(i64, i64)],
        followed_after: i64,
    ) -> Result<(), LedgerError> {
        let mut changes = Vec::new();
        // Series with late readings: their late span, then their in-order readings, in arrival (time) order.
        let mut late: Vec<LateSeries> = Vec::new();
        let mut late_index: FxHashMap<(i64, i64), usize> = FxHashMap::default();
        for &i in accepted {
            let e = &readings[i];
            let r = &e.reading;
            if let Some(&g) = late_index.get(&ids[i]) {
                let series = &mut late[g];
                if r.ts < series.span.newest {
                    series.span.last = r.ts;
                    series.exceeds |= e.assessment.band.is_exceedance();
                } else {
                    series.newer.push(i);
                }
                continue;
            }
            let key = EventKey {
                station: r.station.clone(),
                parameter: r.parameter.clone(),
                scope: Scope::Instant,
            };
            let (band, ratio) = (e.assessment.band, e.assessment.ratio);
            let mut follow = tracker.follow(&key, r.ts, band, ratio);
            if follow == Follow::Unseeded {
                // Not seen since the tracker was loaded: its newest reading is older than this commit and than
                // `followed_after` (a fresh ledger: none, no query).
                let n = match followed_after {
                    0 => None,
                    top => events::newest_reading(tx, ids[i], top)?,
                };
                tracker.seed(key.clone(), n);
                follow = tracker.follow(&key, r.ts, band, ratio);
            }
            match follow {
                Follow::Late { newest } => {
                    late_index.insert(ids[i], late.len());
                    late.push(LateSeries {
                        key,
                        ids: ids[i],
                        span: Late {
                            first: r.ts,
                            last: r.ts,
                            newest,
                            reason: String::new(),
                        },
                        exceeds: band.is_exceedance(),
                        newer: Vec::new(),
                    });
                }
                Follow::Followed(change) => changes.extend(change.map(|c| (ids[i], c))),
                Follow::Unseeded => {}
            }
        }
        events::store_all(tx, &changes)?;
        published.extend(changes.into_iter().map(|(_, change)| change));
        for LateSeries {
            key,
            ids: g,
            mut span,
            exceeds,
            newer,
        } in late
        {
            if exceeds || !events::late_readings_change_nothing(tx, g, span.first, span.last)? {
                // The stored event must be current before the span is compared with what it should hold.
                if let Some(c) = tracker.take_extended_of(&key) {
                    events::store(tx, g, &c)?;
                    published.push(c);
                }
                span.reason = format!(
                    "readings from {} to {} arrived after {}",
                    span.first, span.last, span.newest
                );
                let done = events::rederive(tx, g, &key, &span)?;
                if let Some(open) = done.open_after {
                    tracker.set_open(&key, open);
                }
                published.extend(done.change);
            }
            let mut changes = Vec::new();
            for i in newer {
                let e = &readings[i];
                let (ts, band, ratio) = (e.reading.ts, e.assessment.band, e.assessment.ratio);
                if let Follow::Followed(Some(change)) = tracker.follow(&key, ts, band, ratio) {
                    changes.push((ids[i], change));
                }
            }
            events::store_all(tx, &changes)?;
            published.extend(changes.into_iter().map(|(_, change)| change));
        }
        Ok(())
    }

    fn try_commit(
        &mut self,
        readings: &[Evaluated],
        quarantine: &[Quarantined],
    ) -> Result<(Vec<Outcome>, CommitCounts), LedgerError> {
        let now = Timestamp::now().millis();
        // IMMEDIATE: take the write lock up front (waiting under busy_timeout). A deferred transaction that reads
        // first fails at once with SQLITE_BUSY when another connection (alert engine, forwarder cursors) wrote
        // after its read began.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut ids = Vec::with_capacity(readings.len());
        for e in readings {
            let s = id_of(
                &tx,
                &mut self.stations,
                &e.reading.station,
                "stations",
                "code",
                e.reading.station.as_str(),
            )?;
            let p = id_of(
                &tx,
                &mut self.parameters,
                &e.reading.parameter,
                "parameters",
                "symbol",
                e.reading.parameter.as_str(),
            )?;
            ids.push((s, p));
        }
        // Key-index order (station, time, parameter) keeps index inserts together; a stable sort lets the first of
        // two same-key readings win.
        // The keys are gathered first: sorting through the readings themselves (some 200 bytes each) missed the
        // cache at every comparison. The index last keeps the sort stable.
        let mut keyed: Vec<(i64, i64, i64, usize)> = ids
            .iter()
            .zip(readings)
            .enumerate()
            .map(|(i, (&(s, p), e))| (s, e.reading.ts.millis(), p, i))
            .collect();
        keyed.sort_unstable();
        let order: Vec<usize> = keyed.into_iter().map(|k| k.3).collect();
        let (mut flags, older) =
            self.quality
                .judge_newest(&tx, readings, &ids, &order, self.followed_after)?;
        let mut outcomes = vec![Outcome::Duplicate; readings.len()];
        let mut counts = CommitCounts::default();
        // `seq` is the rowid: a new row takes the largest seq + 1, so the rows of one statement that are all
        // accepted hold consecutive numbers from `top` + 1, in the order listed.
        let mut top = top_seq(&tx)?;
        let top_before = top;
        let mut accepted = Vec::new();
        for chunk in order.chunks(ROWS_PER_INSERT) {
            let inserted = insert_rows(&tx, chunk, readings, &flags, &ids, now)?;
            let last = tx.last_insert_rowid();
            if inserted == chunk.len() && last == top + inserted as i64 {
                for (j, &i) in chunk.iter().enumerate() {
                    outcomes[i] = Outcome::Accepted(top + 1 + j as i64);
                }
                top = last;
            } else {
                // Some were stored before (a redelivery, a repeated key): look each one up.
                top = classify(&tx, chunk, readings, &ids, top, now, &mut outcomes)?;
            }
            for &i in chunk {
                match outcomes[i] {
                    Outcome::Accepted(_) => {
                        counts.accepted += 1;
                        accepted.push(i);
                    }
                    Outcome::Duplicate => counts.duplicates += 1,
                    Outcome::Conflict => counts.conflicts += 1,
                }
            }
        }
        Self::follow_events(
            &mut self.events,
            &mut self.event_changes,
            &tx,
            &accepted,
            readings,
            &ids,
            self.followed_after,
        )?;
        let revisions = self.quality.judge_older(
            &tx, readings, &ids, &outcomes, &older, &mut flags, top_before, now,
        )?;
        if !quarantine.is_empty() {
            let mut q = tx.prepare_cached(
                "INSERT INTO quarantine (received, source, origin, station, reason, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for item in quarantine {
                q.execute(params![
                    item.received.millis(),
                    item.source.as_str(),
                    item.origin,
                    item.station,
                    item.reason,
                    item.raw
                ])?;
                counts.quarantined += 1;
            }
        }
        tx.commit()?;
        self.judged = flags;
        self.flag_revisions.extend(revisions);
        if let Some(c) = &mut self.committed {
            let rows = accepted.iter().map(|&i| {
                let r = &readings[i].reading;
                let sample = Sample {
                    ts: r.ts,
                    value: r.value,
                    status: r.status,
                };
                (ids[i], sample)
            });
            if !c.add((top_before, top), rows) {
                self.committed = None;
            }
        }
        if self.feed.wanted() {
            self.feed.append(
                (top_before, top),
                fed_rows(readings, &ids, (&accepted, &outcomes), top_before),
            );
        }
        Ok((outcomes, counts))
    }

    /// Position of a named cursor (0 when new).
    pub fn cursor(&self, name: &str) -> Result<i64, LedgerError> {
        cursor(&self.conn, name)
    }

    /// Move a named cursor over `readings.seq`.
    pub fn set_cursor(&self, name: &str, position: i64) -> Result<(), LedgerError> {
        set_cursor(&self.conn, name, Stream::Readings, position)
    }

    /// Recompute the aggregates touched by readings committed since the aggregator's cursor.
    pub fn refresh_aggregates(
        &mut self,
        ctx: &AggregateContext,
        max_rows: usize,
    ) -> Result<AggregateReport, LedgerError> {
        let mark = (self.event_changes.len(), self.flag_revisions.len());
        let result = self.try_refresh(ctx, max_rows);
        match result {
            Ok(_) => self.mark_written(),
            Err(_) => self.reset_caches(mark),
        }
        result
    }

    /// One transaction (one fsync at `synchronous=full`): the open events extended since the last refresh, then the
    /// aggregates' step.
    fn try_refresh(
        &mut self,
        ctx: &AggregateContext,
        max_rows: usize,
    ) -> Result<AggregateReport, LedgerError> {
        // IMMEDIATE: this reads before it writes; see `try_commit`.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Self::store_extended(
            &tx,
            &mut self.events,
            (&self.stations, &self.parameters),
            &mut self.event_changes,
        )?;
        let report = aggregates::refresh(
            &tx,
            ctx,
            max_rows,
            &mut self.events,
            &mut self.event_changes,
            &mut self.committed,
        )?;
        tx.commit()?;
        Ok(report)
    }

    /// Delete readings older than `cutoff`, but never one a cursor has not passed. Returns rows deleted.
    pub fn apply_retention(&mut self, cutoff: Timestamp) -> Result<RetentionReport, LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let floor: Option<i64> = tx
            .query_row(
                "SELECT MIN(position) FROM cursors WHERE stream = 'readings'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        // No cursors at all: nothing waits for these rows.
        let floor = floor.unwrap_or(i64::MAX);
        // The newest row always stays: `seq` is a rowid, and deleting the top row would let SQLite hand its number
        // out again, behind the cursors that already passed it.
        let top: i64 =
            tx.query_row("SELECT IFNULL(MAX(seq), 0) FROM readings", [], |r| r.get(0))?;
        // One range delete per station walks the (station, ts, parameter) key index: no time index to maintain.
        // What goes is counted first, so the log and the audit trail say what was deleted.
        let stations: Vec<(i64, String)> = tx
            .prepare("SELECT id, code FROM stations ORDER BY code")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut report = RetentionReport::default();
        {
            let range =
                "FROM readings WHERE station_id = ?1 AND ts < ?2 AND seq <= ?3 AND seq < ?4";
            let mut measure = tx.prepare(&format!("SELECT COUNT(*), MIN(ts), MAX(ts) {range}"))?;
            let mut delete = tx.prepare(&format!("DELETE {range}"))?;
            for (id, code) in stations {
                let p = params![id, cutoff.millis(), floor, top];
                let (count, first, last): (usize, Option<i64>, Option<i64>) =
                    measure.query_row(p, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                if count == 0 {
                    continue;
                }
                delete.execute(p)?;
                report.readings += count;
                report.stations.push(RetainedRange {
                    station: code,
                    readings: count,
                    first: Timestamp(first.unwrap_or_default()),
                    last: Timestamp(last.unwrap_or_default()),
                });
            }
        }
        report.quarantined = tx.execute(
            "DELETE FROM quarantine WHERE received < ?1",
            params![cutoff.millis()],
        )?;
        // Alerts cleared before the cutoff go with their notifications and delivery attempts; open ones stay.
        tx.execute_batch(&format!(
            "CREATE TEMP TABLE expired_alerts AS SELECT id FROM alerts WHERE cleared < {cutoff};
             DELETE FROM outbox_attempts WHERE outbox_id IN
                 (SELECT id FROM outbox WHERE alert_id IN (SELECT id FROM expired_alerts));
             DELETE FROM outbox WHERE alert_id IN (SELECT id FROM expired_alerts);
             DELETE FROM alerts WHERE id IN (SELECT id FROM expired_alerts);
             DROP TABLE expired_alerts;",
            cutoff = cutoff.millis()
        ))?;
        if !report.is_empty() {
            audit::insert(
                &tx,
                &audit::AuditEntry {
                    at: Timestamp::now().millis(),
                    who: "retention",
                    role: "system",
                    action: "delete old data",
                    detail: &report.describe(cutoff),
                },
            )?;
        }
        tx.commit()?;
        Ok(report)
    }

    /// Run a WAL checkpoint (at shutdown, so the main file holds everything). Stops the background checkpoints.
    pub fn checkpoint(&mut self) -> Result<(), LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Self::store_extended(
            &tx,
            &mut self.events,
            (&self.stations, &self.parameters),
            &mut self.event_changes,
        )?;
        tx.commit()?;
        self.checkpointer = None;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// A series with readings older than its newest in one commit.
struct LateSeries {
    key: EventKey,
    ids: (i64, i64),
    span: Late,
    /// Whether any of the late readings exceeds.
    exceeds: bool,
    /// Its readings of the commit newer than its newest, for the tracker after the re-derivation.
    newer: Vec<usize>,
}

/// Readings per INSERT statement: one statement for many rows saves SQLite's per-statement work (13 or 15
/// parameters a row, far below SQLite's limit of 32,766).
const ROWS_PER_INSERT: usize = 32;

/// The INSERT for `rows` readings; conflicting keys are skipped (`classify` tells duplicates from conflicts).
/// `received`: with the columns of what the station sent (only chunks holding a converted reading bind them).
fn insert_sql(rows: usize, received: bool) -> String {
    let (extra_columns, extra_values) = if received {
        (", received_value, received_unit", ", ?, ?")
    } else {
        ("", "")
    };
    let row = format!("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?{extra_values})");
    format!(
        "INSERT OR IGNORE INTO readings \
         (station_id, parameter_id, ts, value, unit, status, source, received, limit_low, limit_high, ratio, band, flags\
         {extra_columns}) VALUES {}",
        vec![row; rows].join(", ")
    )
}

/// The four statements, by (many rows, with received columns).
static INSERTS: LazyLock<[[String; 2]; 2]> = LazyLock::new(|| {
    [
        [insert_sql(1, false), insert_sql(1, true)],
        [
            insert_sql(ROWS_PER_INSERT, false),
            insert_sql(ROWS_PER_INSERT, true),
        ],
    ]
});

/// Insert the readings `chunk` points at, in that order: a full chunk with one statement, a shorter one (the end of
/// a commit) row by row. Returns how many rows were stored.
fn insert_rows(
    conn: &Connection,
    chunk: &[usize],
    readings: &[Evaluated],
    flags: &[Flags],
    ids: &[(i64, i64)],
    now: i64,
) -> Result<usize, LedgerError> {
    if chunk.len() == ROWS_PER_INSERT {
        let received = chunk.iter().any(|&i| readings[i].received.is_some());
        let mut st = conn.prepare_cached(&INSERTS[1][received as usize])?;
        let columns = columns(received);
        for (row, &i) in chunk.iter().enumerate() {
            bind_reading(
                &mut st,
                row * columns,
                (&readings[i], flags[i]),
                ids[i],
                now,
                received,
            )?;
        }
        return Ok(st.raw_execute()?);
    }
    let mut stored = 0;
    for &i in chunk {
        let received = readings[i].received.is_some();
        let mut st = conn.prepare_cached(&INSERTS[0][received as usize])?;
        bind_reading(&mut st, 0, (&readings[i], flags[i]), ids[i], now, received)?;
        stored += st.raw_execute()?;
    }
    Ok(stored)
}

/// The rows a commit stored after seq `before`, as the forwarders read them, when `accepted` lists them in seq
/// order (as it does when every row of an insert was new); otherwise `None`.
fn fed_rows(
    readings: &[Evaluated],
    ids: &[(i64, i64)],
    (accepted, outcomes): (&[usize], &[Outcome]),
    before: i64,
) -> Option<Vec<feed::FedRow>> {
    let mut rows = Vec::with_capacity(accepted.len());
    for (&i, seq) in accepted.iter().zip(before + 1..) {
        if outcomes[i] != Outcome::Accepted(seq) {
            return None;
        }
        let (e, r) = (&readings[i], &readings[i].reading);
        let (low, high) = crate::compliance::LimitBound::bounds(e.assessment.limit);
        rows.push(feed::FedRow::new(
            ids[i],
            (r.ts.millis(), r.value, r.status),
            (low, high, e.assessment.ratio),
        ));
    }
    Some(rows)
}

/// Parameters bound per reading row.
fn columns(received: bool) -> usize {
    if received {
        15
    } else {
        13
    }
}

/// Bind one reading's row at parameter offset `at`.
fn bind_reading(
    st: &mut rusqlite::Statement<'_>,
    at: usize,
    (e, flags): (&Evaluated, Flags),
    (station, parameter): (i64, i64),
    now: i64,
    received: bool,
) -> rusqlite::Result<()> {
    let r = &e.reading;
    let (low, high) = crate::compliance::LimitBound::bounds(e.assessment.limit);
    st.raw_bind_parameter(at + 1, station)?;
    st.raw_bind_parameter(at + 2, parameter)?;
    st.raw_bind_parameter(at + 3, r.ts.millis())?;
    st.raw_bind_parameter(at + 4, r.value)?;
    st.raw_bind_parameter(at + 5, r.unit.as_str())?;
    st.raw_bind_parameter(at + 6, r.status as u8)?;
    st.raw_bind_parameter(at + 7, e.source.as_str())?;
    st.raw_bind_parameter(at + 8, now)?;
    st.raw_bind_parameter(at + 9, low)?;
    st.raw_bind_parameter(at + 10, high)?;
    st.raw_bind_parameter(at + 11, e.assessment.ratio)?;
    st.raw_bind_parameter(at + 12, e.assessment.band.as_str())?;
    st.raw_bind_parameter(at + 13, flags.0)?;
    if received {
        let x = e.received.as_ref();
        st.raw_bind_parameter(at + 14, x.map(|x| x.value))?;
        st.raw_bind_parameter(at + 15, x.map(|x| x.unit.as_str()))?;
    }
    Ok(())
}

/// After an insert that skipped rows: find each reading's stored row. One stored above `top` by this chunk is
/// accepted (the first of equal keys, which sit side by side in key order); any other is a duplicate when value and
/// status match, else a conflict, recorded. Returns the new top seq.
fn classify(
    conn: &Connection,
    chunk: &[usize],
    readings: &[Evaluated],
    ids: &[(i64, i64)],
    top: i64,
    now: i64,
    outcomes: &mut [Outcome],
) -> Result<i64, LedgerError> {
    let mut lookup = conn.prepare_cached(
        "SELECT seq, value, status FROM readings WHERE station_id = ?1 AND parameter_id = ?2 AND ts = ?3",
    )?;
    let mut new_top = top;
    for &i in chunk {
        let e = &readings[i];
        let r = &e.reading;
        let (s, p) = ids[i];
        let (seq, kept_value, kept_status): (i64, f64, u8) = lookup
            .query_row(params![s, p, r.ts.millis()], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
        outcomes[i] = if seq > new_top {
            new_top = seq;
            Outcome::Accepted(seq)
        } else if kept_value.to_bits() == r.value.to_bits() && kept_status == r.status as u8 {
            Outcome::Duplicate
        } else {
            conn.prepare_cached(
                "INSERT INTO conflicts (station_id, parameter_id, ts, kept_value, kept_status, new_value, new_status, source, received) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![s, p, r.ts.millis(), kept_value, kept_status, r.value, r.status as u8, e.source.as_str(), now])?;
            Outcome::Conflict
        };
    }
    Ok(new_top)
}

/// The newest `readings.seq` (0 when there is none).
fn top_seq(conn: &Connection) -> Result<i64, LedgerError> {
    Ok(conn
        .prepare_cached("SELECT IFNULL(MAX(seq), 0) FROM readings")?
        .query_row([], |r| r.get(0))?)
}

pub fn cursor(conn: &Connection, name: &str) -> Result<i64, LedgerError> {
    // Cached statements: forwarders, the aggregator and the alert runner read and move cursors at every batch.
    Ok(conn
        .prepare_cached("SELECT position FROM cursors WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Copy a live ledger to `to` with SQLite's online backup API: consistent as of one moment, taken while quantrac
/// keeps writing (it copies in steps and restarts a step if the writer changed a page under it).
pub fn backup(from: &Path, to: &Path) -> Result<(), LedgerError> {
    let src = query::open_read_only(from)?;
    let mut dst = Connection::open(to).map_err(|error| LedgerError::Open {
        path: to.to_path_buf(),
        error,
    })?;
    let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
    b.run_to_completion(1024, Duration::from_millis(5), None)?;
    drop(b);
    // The copy is a plain single-file database (no WAL beside it), ready to archive.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

/// What a cursor's position counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `readings.seq`: retention waits for these cursors.
    Readings,
    /// `aggregates.change_seq`.
    Aggregates,
    /// `events.change_seq`.
    Events,
    /// `alerts.change_seq`.
    Alerts,
    /// `withdrawn_points.seq`.
    Withdrawn,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Readings => "readings",
            Stream::Aggregates => "aggregates",
            Stream::Events => "events",
            Stream::Alerts => "alerts",
            Stream::Withdrawn => "withdrawn",
        }
    }
}

pub fn set_cursor(
    conn: &Connection,
    name: &str,
    stream: Stream,
    position: i64,
) -> Result<(), LedgerError> {
    conn.prepare_cached(
        "INSERT INTO cursors (name, stream, position, updated) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(name) DO UPDATE SET position = excluded.position, updated = excluded.updated",
    )?
    .execute(params![
        name,
        stream.as_str(),
        position,
        Timestamp::now().millis()
    ])?;
    Ok(())
}

/// Id of a station or parameter, inserting it on first sight.
fn id_of<K: Clone + Eq + std::hash::Hash>(
    conn: &Connection,
    cache: &mut FxHashMap<K, i64>,
    key: &K,
    table: &str,
    column: &str,
    text: &str,
) -> Result<i64, LedgerError> {
    if let Some(id) = cache.get(key) {
        return Ok(*id);
    }
    conn.execute(
        &format!("INSERT OR IGNORE INTO {table} ({column}) VALUES (?1)"),
        [text],
    )?;
    let id: i64 = conn.query_row(
        &format!("SELECT id FROM {table} WHERE {column} = ?1"),
        [text],
        |r| r.get(0),
    )?;
    cache.insert(key.clone(), id);
    Ok(id)
}

/// A read-write connection for the tables written outside the writer thread (alerts, outbox, cursors, notes,
/// audit); it waits up to 10 s for the writer's lock.
/// The durability of a commit: `FULL` syncs the WAL on each, `NORMAL` at checkpoints (a power cut may lose the
/// last commits, never consistency). Every connection that writes the ledger follows its configured mode.
pub(crate) fn set_synchronous(conn: &Connection, synchronous: Synchronous) -> rusqlite::Result<()> {
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)
}

pub(crate) fn open_write(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open(path).map_err(|error| LedgerError::Open {
        path: path.to_path_buf(),
        error,
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The alert store alone keeps more than rusqlite's default 16 statements in use.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// A read-write connection to a quantrac ledger at `path` (or a new file), checked: not another program's database,
/// not newer than this build. Errors name the file.
fn open_checked(path: &Path) -> Result<Connection, LedgerError> {
    let named = |error| LedgerError::Open {
        path: path.to_path_buf(),
        error,
    };
    let conn = Connection::open(path).map_err(named)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(named)?;
    schema::check(&conn, path)?;
    Ok(conn)
}

/// Open flags for read-only connections.
pub(crate) fn read_only_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI
}

#[cfg(test)]
mod tests;
