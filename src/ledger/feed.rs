//! The readings the writer has just committed, kept in memory for the forwarders of the same process: a forwarder
//! that keeps up takes its rows from here instead of reading back from SQLite what was written a moment ago (in
//! `perf`, a fifth of the async workers' time in `bench e2e`). The rows are copies of what the commit stored, in
//! seq order; a reader behind the oldest row kept, or ahead of the newest, reads the ledger as before.
//!
//! Bounded: rows every reader has passed are dropped, and at most [`FEED_MAX_ROWS`] are kept (a stalled forwarder
//! reads the ledger once it is behind them). With no reader, the writer keeps nothing.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::model::Status;

/// Most rows kept (64 bytes each, 16 MiB): a forwarder on a loaded machine falls some hundred thousand rows behind
/// the writer during a burst (up to 370,000 in `bench e2e` on 2 cores), and reads the ledger once it is further
/// behind than this. In that bench it then reads about 1 M of a 2.5 M burst back from SQLite (with 1 M rows kept,
/// none), yet keeping twice as many rows made no difference to the CPU a reading over four paired runs, and the
/// highest peak rose from 112 to 120 MiB.
pub const FEED_MAX_ROWS: usize = 262_144;

/// One committed reading as the forwarder reads it from `readings` (names are looked up by id; the seq is the
/// row's place in its chunk). A limit or ratio that is absent is NaN: SQLite stores a NaN as NULL, so absent and
/// NaN read back the same.
#[derive(Debug, Clone, Copy)]
pub struct FedRow {
    pub station_id: i64,
    pub parameter_id: i64,
    pub ts: i64,
    pub value: f64,
    pub status: Status,
    limit_low: f64,
    limit_high: f64,
    ratio: f64,
}

const _: () = assert!(std::mem::size_of::<FedRow>() == 64);

impl FedRow {
    pub fn new(
        (station_id, parameter_id): (i64, i64),
        (ts, value, status): (i64, f64, Status),
        (limit_low, limit_high, ratio): (Option<f64>, Option<f64>, Option<f64>),
    ) -> FedRow {
        let nan = |x: Option<f64>| x.unwrap_or(f64::NAN);
        FedRow {
            station_id,
            parameter_id,
            ts,
            value,
            status,
            limit_low: nan(limit_low),
            limit_high: nan(limit_high),
            ratio: nan(ratio),
        }
    }

    /// Low limit, high limit and ratio, as SQLite gives them back.
    pub fn limits(&self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let some = |x: f64| (!x.is_nan()).then_some(x);
        (
            some(self.limit_low),
            some(self.limit_high),
            some(self.ratio),
        )
    }
}

/// The rows of one commit: seqs `first ..= first + len - 1`.
struct Chunk {
    first: i64,
    rows: Box<[FedRow]>,
}

impl Chunk {
    fn last(&self) -> i64 {
        self.first + self.rows.len() as i64 - 1
    }
}

/// The committed readings of one ledger file, shared by its writer and its forwarders.
#[derive(Default)]
pub struct Feed {
    inner: Mutex<Inner>,
    /// Readers registered: the writer skips building rows nobody reads.
    readers: AtomicUsize,
}

#[derive(Default)]
struct Inner {
    /// One chunk per commit, each following on from the one before.
    chunks: VecDeque<Arc<Chunk>>,
    rows: usize,
    /// The newest seq the feed has followed: a commit must start right after it to be appended. None: not following
    /// (new, or closed when the writer went away).
    end: Option<i64>,
    closed: bool,
    /// Each reader's position (the seq it asked for rows after), by reader number; None for a reader gone.
    positions: Vec<Option<i64>>,
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether any forwarder reads this feed.
    pub fn wanted(&self) -> bool {
        self.readers.load(Ordering::Relaxed) > 0
    }

    /// A commit moved the newest seq from `before` to `top` and stored `rows`, in seq order. Kept when there is
    /// one row for each seq and they follow on from the last commit seen; otherwise (or when the writer could not
    /// give them in seq order: `None`) the feed starts again after `top` and readers before it read the ledger.
    pub fn append(&self, (before, top): (i64, i64), rows: Option<Vec<FedRow>>) {
        let rows = rows.filter(|r| r.len() as i64 == top - before && r.len() <= FEED_MAX_ROWS);
        let kept = rows.is_some();
        let chunk = rows.filter(|r| !r.is_empty()).map(|rows| Chunk {
            first: before + 1,
            rows: rows.into_boxed_slice(),
        });
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        if inner.end != Some(before) || !kept {
            inner.clear();
        }
        inner.end = Some(top);
        if let Some(chunk) = chunk {
            inner.rows += chunk.rows.len();
            inner.chunks.push_back(Arc::new(chunk));
        }
        while inner.rows > FEED_MAX_ROWS {
            inner.drop_oldest();
        }
    }

    /// The writer is gone: nothing more will be appended.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.clear();
        inner.end = None;
        inner.closed = true;
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Register a reader; its position holds rows until it has passed them.
    pub fn reader(self: &Arc<Self>) -> FeedReader {
        let mut inner = self.lock();
        let id = match inner.positions.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                inner.positions.push(None);
                inner.positions.len() - 1
            }
        };
        inner.positions[id] = Some(i64::MIN);
        self.readers.fetch_add(1, Ordering::Relaxed);
        FeedReader {
            feed: self.clone(),
            id,
        }
    }
}

impl Inner {
    fn clear(&mut self) {
        self.chunks.clear();
        self.rows = 0;
    }

    fn drop_oldest(&mut self) {
        if let Some(c) = self.chunks.pop_front() {
            self.rows -= c.rows.len();
        }
    }

    /// Drop the chunks every reader has passed.
    fn trim(&mut self) {
        let Some(passed) = self.positions.iter().flatten().min().copied() else {
            return self.clear();
        };
        while self.chunks.front().is_some_and(|c| c.last() <= passed) {
            self.drop_oldest();
        }
    }
}

/// One forwarder's view of a [`Feed`].
pub struct FeedReader {
    feed: Arc<Feed>,
    id: usize,
}

/// Rows handed to a reader: parts of the feed's chunks, in seq order.
pub struct Taken {
    parts: Vec<(Arc<Chunk>, usize, usize)>,
}

impl Taken {
    /// Each row with its seq.
    pub fn rows(&self) -> impl Iterator<Item = (i64, &FedRow)> {
        self.parts
            .iter()
            .flat_map(|(c, from, to)| (*from..*to).map(move |i| (c.first + i as i64, &c.rows[i])))
    }
}

impl FeedReader {
    /// The rows after `after` (at most `limit`), when the feed holds the one right after it; `None` when it does not
    /// (read the ledger). Rows at or before `after` are this reader's no more.
    pub fn after(&self, after: i64, limit: usize) -> Option<Taken> {
        let mut inner = self.feed.lock();
        if let Some(p) = inner.positions.get_mut(self.id) {
            *p = Some(after);
        }
        inner.trim();
        let first = inner.chunks.front()?.first;
        if after < first - 1 || limit == 0 {
            return None;
        }
        let mut parts = Vec::new();
        let (mut next, mut left) = (after + 1, limit);
        for c in &inner.chunks {
            let (lo, hi) = (c.first, c.last());
            if hi < next {
                continue;
            }
            let from = (next - lo) as usize;
            let to = c.rows.len().min(from + left);
            parts.push((c.clone(), from, to));
            left -= to - from;
            next = hi + 1;
            if left == 0 {
                break;
            }
        }
        (!parts.is_empty()).then_some(Taken { parts })
    }

    /// Whether the writer that filled this feed is gone.
    pub fn is_closed(&self) -> bool {
        self.feed.is_closed()
    }
}

impl Drop for FeedReader {
    fn drop(&mut self) {
        let mut inner = self.feed.lock();
        if let Some(p) = inner.positions.get_mut(self.id) {
            *p = None;
        }
        inner.trim();
        self.feed.readers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The feeds of the ledgers this process writes, by file: a forwarder opens the ledger by path and finds its
/// writer's feed here.
static FEEDS: Mutex<Vec<(PathBuf, Weak<Feed>)>> = Mutex::new(Vec::new());

/// The feed of the writer that has just opened `path` (replacing any earlier one of that file).
pub fn register(path: &Path) -> Arc<Feed> {
    let feed = Arc::new(Feed::default());
    let key = key(path);
    let mut feeds = FEEDS.lock().unwrap_or_else(|e| e.into_inner());
    feeds.retain(|(p, f)| *p != key && f.strong_count() > 0);
    feeds.push((key, Arc::downgrade(&feed)));
    feed
}

/// The feed of the writer of `path` in this process, if there is one.
pub fn find(path: &Path) -> Option<Arc<Feed>> {
    let key = key(path);
    let feeds = FEEDS.lock().unwrap_or_else(|e| e.into_inner());
    feeds
        .iter()
        .find(|(p, _)| *p == key)
        .and_then(|(_, f)| f.upgrade())
        .filter(|f| !f.is_closed())
}

/// One name per file however it is spelled.
fn key(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(seqs: std::ops::RangeInclusive<i64>) -> Option<Vec<FedRow>> {
        let row = |seq| {
            let limits = (None, Some(135.0), Some(seq as f64 / 135.0));
            FedRow::new((1, 1), (seq * 1000, seq as f64, Status::Measuring), limits)
        };
        Some(seqs.map(row).collect())
    }

    fn seqs(t: Option<Taken>) -> Option<Vec<i64>> {
        t.map(|t| {
            t.rows()
                .map(|(seq, r)| {
                    assert_eq!(r.ts, seq * 1000, "each row keeps its seq");
                    seq
                })
                .collect()
        })
    }

    #[test]
    fn a_reader_gets_the_rows_after_its_position_across_commits() {
        let feed = Arc::new(Feed::default());
        let r = feed.reader();
        feed.append((0, 3), rows(1..=3));
        feed.append((3, 5), rows(4..=5));
        assert_eq!(seqs(r.after(0, 10)), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(seqs(r.after(2, 2)), Some(vec![3, 4]));
        assert_eq!(
            seqs(r.after(5, 10)),
            None,
            "nothing after the newest: read the ledger"
        );
    }

    #[test]
    fn a_gap_starts_the_feed_again_and_a_reader_before_it_reads_the_ledger() {
        let feed = Arc::new(Feed::default());
        let r = feed.reader();
        feed.append((0, 3), rows(1..=3));
        // A commit the feed did not see (its rows are only in the ledger).
        feed.append((5, 6), rows(6..=6));
        assert_eq!(seqs(r.after(3, 10)), None);
        assert_eq!(seqs(r.after(5, 10)), Some(vec![6]));
        // Rows that are not exactly the commit's seqs are not kept, nor a commit the writer could not give.
        feed.append((6, 9), rows(7..=8));
        assert_eq!(seqs(r.after(6, 10)), None);
        feed.append((9, 10), None);
        assert_eq!(seqs(r.after(9, 10)), None);
        feed.append((10, 11), rows(11..=11));
        assert_eq!(seqs(r.after(10, 10)), Some(vec![11]));
    }

    #[test]
    fn rows_every_reader_passed_are_dropped_and_the_feed_stays_bounded() {
        let feed = Arc::new(Feed::default());
        let (a, b) = (feed.reader(), feed.reader());
        feed.append((0, 4), rows(1..=4));
        feed.append((4, 6), rows(5..=6));
        assert!(a.after(6, 10).is_none());
        assert_eq!(feed.lock().rows, 6, "b has not read yet");
        assert_eq!(seqs(b.after(4, 10)), Some(vec![5, 6]));
        assert_eq!(
            feed.lock().rows,
            2,
            "the first commit's chunk is passed by both"
        );
        drop(b);
        assert!(a.after(6, 10).is_none());
        assert_eq!(feed.lock().rows, 0);
        let big = FEED_MAX_ROWS as i64;
        feed.append((6, 6 + big), rows(7..=6 + big));
        feed.append((6 + big, 8 + big), rows(7 + big..=8 + big));
        assert!(feed.lock().rows <= FEED_MAX_ROWS);
        assert_eq!(seqs(a.after(6, 1)), None, "the oldest rows made room");
        assert_eq!(seqs(a.after(6 + big, 5)), Some(vec![7 + big, 8 + big]));
    }

    #[test]
    fn nothing_is_kept_without_a_reader_or_once_the_writer_is_gone() {
        let feed = Arc::new(Feed::default());
        assert!(!feed.wanted());
        let r = feed.reader();
        assert!(feed.wanted());
        feed.append((0, 2), rows(1..=2));
        feed.close();
        assert!(r.is_closed());
        assert_eq!(seqs(r.after(0, 10)), None);
        feed.append((2, 3), rows(3..=3));
        assert_eq!(seqs(r.after(2, 10)), None);
    }

    #[test]
    fn an_absent_or_nan_limit_is_given_back_as_sqlite_stores_it() {
        let row = FedRow::new(
            (1, 1),
            (0, 1.0, Status::Measuring),
            (None, Some(9.0), Some(f64::NAN)),
        );
        assert_eq!(row.limits(), (None, Some(9.0), None));
    }
}
