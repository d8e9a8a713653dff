//! A forwarder's view of the ledger: rows after its cursors, cursor moves, dead letters, backlog.
//! Blocking calls: the forwarder holds its store in a [`super::Held`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior,
};
use rustc_hash::FxHashMap;

use super::feed::{self, FeedReader};
use super::{cursor, open_write, set_cursor, LedgerError, Stream, BUSY_TIMEOUT};
use crate::health::Backlog;
use crate::model::{Status, Timestamp};

/// How often a forwarder stores its cursors while it is sending.
pub const CURSOR_SAVE_EVERY: Duration = Duration::from_secs(1);

/// How long a delivered position may stay unsaved before a move waits for the ledger's write lock to store it.
pub const CURSOR_SAVE_MAX: Duration = Duration::from_secs(2);

/// A committed reading with what the line protocol needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingRow {
    pub seq: i64,
    pub station_id: i64,
    pub parameter_id: i64,
    pub station: Arc<str>,
    pub parameter: Arc<str>,
    pub ts: i64,
    pub value: f64,
    pub status: Status,
    pub limit_low: Option<f64>,
    pub limit_high: Option<f64>,
    pub ratio: Option<f64>,
}

/// A compliance event as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub change_seq: i64,
    pub station: String,
    pub parameter: String,
    pub scope: String,
    pub start: i64,
    pub end: Option<i64>,
    pub last: i64,
    pub band: String,
    pub peak_band: String,
    pub peak_ratio: Option<f64>,
}

/// One state of an alert (raised, acknowledged or cleared), for the `alert` measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub change_seq: i64,
    pub id: i64,
    /// Empty for daemon-wide alerts (forwarder backlog).
    pub station: String,
    /// Parameter (e.g. `COD`, `COD:completeness`), forwarder name, or empty.
    pub subject: String,
    pub kind: String,
    pub severity: String,
    pub state: String,
    /// When the state began (raised, acknowledged or cleared), Unix ms: the observation that decided a raise or a
    /// clear, the wall time of an acknowledgement.
    pub at: i64,
    /// The first bad observation and the latest bad observation.
    pub since: i64,
    pub last_bad: i64,
    /// The latest observation's value and multiple, and the worst multiple while raised.
    pub value: Option<f64>,
    pub multiple: Option<f64>,
    pub peak_multiple: Option<f64>,
    pub band: String,
    pub note: String,
    /// Raised on late data (announced in a catch-up summary).
    pub late: bool,
}

/// A window aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    pub change_seq: i64,
    pub station: String,
    pub parameter: String,
    pub window_ms: i64,
    pub window_start: i64,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub valid: i64,
    pub expected: i64,
    pub completeness: f64,
    pub ratio: Option<f64>,
    pub band: String,
}

/// A point listed as withdrawn (`withdrawn_points`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawnRow {
    pub seq: i64,
    /// `event` or `alert`.
    pub measurement: String,
    pub station: String,
    pub parameter: String,
    /// The event's scope, the alert's kind.
    pub series: String,
    /// The alert point's state tag; empty for events.
    pub state: String,
    pub ts: i64,
    /// A row holds the point again: leave it.
    pub held: bool,
}

/// Names by id (station codes, parameter symbols).
type Names = FxHashMap<i64, Arc<str>>;

/// Station codes and parameter symbols by id, read again when a row names an id not seen yet.
fn load_names(
    conn: &Connection,
    stations: &mut Names,
    parameters: &mut Names,
) -> Result<(), LedgerError> {
    for (sql, map) in [
        ("SELECT id, code FROM stations", stations),
        ("SELECT id, symbol FROM parameters", parameters),
    ] {
        let mut st = conn.prepare_cached(sql)?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (id, name) = row?;
            map.insert(id, Arc::from(name));
        }
    }
    Ok(())
}

/// Give `row` the names of station `s` and parameter `p` (names change only with the series: looked up then).
fn name_row(
    conn: &Connection,
    (stations, parameters): (&mut Names, &mut Names),
    row: &mut ReadingRow,
    s: i64,
    p: i64,
) -> Result<(), LedgerError> {
    if s == row.station_id && p == row.parameter_id {
        return Ok(());
    }
    if !stations.contains_key(&s) || !parameters.contains_key(&p) {
        load_names(conn, stations, parameters)?;
    }
    let name = |map: &Names, id| map.get(&id).cloned().unwrap_or_else(|| Arc::from(""));
    if s != row.station_id {
        row.station = name(stations, s);
    }
    if p != row.parameter_id {
        row.parameter = name(parameters, p);
    }
    (row.station_id, row.parameter_id) = (s, p);
    Ok(())
}

/// One forwarder's connection, its cursor names and the id → name caches.
pub struct ForwardStore {
    conn: Connection,
    /// Station and parameter names by id: rows are read without joins.
    stations: Names,
    parameters: Names,
    pub readings_cursor: String,
    pub aggregates_cursor: String,
    pub events_cursor: String,
    pub alerts_cursor: String,
    pub withdrawn_cursor: String,
    /// Positions delivered but not stored yet (see [`ForwardStore::move_cursor`]), and since when.
    unsaved: Vec<(Stream, i64)>,
    unsaved_since: Option<Instant>,
    saved_at: Option<Instant>,
    /// The ledger file, to find its writer's feed.
    path: PathBuf,
    feed: Option<FeedReader>,
    /// Readings taken from the feed rather than read from the ledger, since open.
    pub rows_from_feed: u64,
}

impl ForwardStore {
    /// The store of the forwarder `name` (its cursors are `influx:<name>:…`).
    pub fn open(path: &Path, name: &str) -> Result<ForwardStore, LedgerError> {
        let conn = open_write(path)?;
        Ok(ForwardStore {
            conn,
            stations: FxHashMap::default(),
            parameters: FxHashMap::default(),
            readings_cursor: format!("influx:{name}:readings"),
            aggregates_cursor: format!("influx:{name}:aggregates"),
            events_cursor: format!("influx:{name}:events"),
            alerts_cursor: format!("influx:{name}:alerts"),
            withdrawn_cursor: format!("influx:{name}:withdrawn"),
            unsaved: Vec::new(),
            unsaved_since: None,
            saved_at: None,
            path: path.to_path_buf(),
            feed: None,
            rows_from_feed: 0,
        })
    }

    /// Register the cursors at 0 if new, so retention waits for this forwarder from its first start.
    pub fn ensure_cursors(&self) -> Result<(), LedgerError> {
        for stream in [
            Stream::Readings,
            Stream::Aggregates,
            Stream::Events,
            Stream::Alerts,
            Stream::Withdrawn,
        ] {
            let name = self.cursor_name(stream);
            let exists: Option<i64> = self
                .conn
                .query_row(
                    "SELECT position FROM cursors WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                set_cursor(&self.conn, name, stream, 0)?;
            }
        }
        Ok(())
    }

    pub fn cursor(&self, name: &str) -> Result<i64, LedgerError> {
        cursor(&self.conn, name)
    }

    /// The name of this forwarder's cursor over `stream`.
    fn cursor_name(&self, stream: Stream) -> &str {
        match stream {
            Stream::Readings => &self.readings_cursor,
            Stream::Aggregates => &self.aggregates_cursor,
            Stream::Events => &self.events_cursor,
            Stream::Alerts => &self.alerts_cursor,
            Stream::Withdrawn => &self.withdrawn_cursor,
        }
    }

    /// `stream` is delivered up to `position`: store it, at most once per [`CURSOR_SAVE_EVERY`] and unless another
    /// connection holds the ledger's write lock. During a burst the pipeline's writer commits back to back: waiting
    /// for the lock between its commits stalled forwarding for seconds at a time, and each commit of another
    /// connection makes the writer drop its page cache. A position not stored yet is stored by a later move or
    /// [`ForwardStore::save_cursors`], and waits for the lock once it has waited [`CURSOR_SAVE_MAX`]. A position
    /// lost to a crash only means the points after the stored one are sent again, to the same series and times.
    /// Whether every position is stored now.
    pub fn move_cursor(&mut self, stream: Stream, position: i64) -> Result<bool, LedgerError> {
        match self.unsaved.iter_mut().find(|(s, _)| *s == stream) {
            Some(u) => u.1 = position,
            None => self.unsaved.push((stream, position)),
        }
        self.unsaved_since.get_or_insert_with(Instant::now);
        if self
            .saved_at
            .is_some_and(|t| t.elapsed() < CURSOR_SAVE_EVERY)
        {
            return Ok(false);
        }
        self.save_cursors(false)
    }

    /// Store the positions moved but not stored yet; `wait` (or positions unsaved for [`CURSOR_SAVE_MAX`]) waits for
    /// the write lock under the busy timeout. Whether every position is stored now.
    pub fn save_cursors(&mut self, wait: bool) -> Result<bool, LedgerError> {
        let Some(since) = self.unsaved_since else {
            return Ok(true);
        };
        let wait = wait || since.elapsed() >= CURSOR_SAVE_MAX;
        if !wait {
            self.conn.busy_timeout(Duration::ZERO)?;
        }
        let saved = (|| {
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            for &(stream, position) in &self.unsaved {
                set_cursor(&tx, self.cursor_name(stream), stream, position)?;
            }
            tx.commit()?;
            Ok::<_, LedgerError>(())
        })();
        if !wait {
            self.conn.busy_timeout(BUSY_TIMEOUT)?;
        }
        match saved {
            Ok(()) => {
                self.unsaved.clear();
                self.unsaved_since = None;
                self.saved_at = Some(Instant::now());
                Ok(true)
            }
            Err(LedgerError::Sqlite(e))
                if !wait && e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Where `stream` has been delivered to: the position moved to last, stored or not.
    fn delivered(&self, stream: Stream) -> Result<i64, LedgerError> {
        match self.unsaved.iter().find(|(s, _)| *s == stream) {
            Some(&(_, position)) => Ok(position),
            None => self.cursor(self.cursor_name(stream)),
        }
    }

    /// The readings after `after` (at most `limit`), collected; see [`ForwardStore::each_reading_after`].
    pub fn readings_after(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ReadingRow>, LedgerError> {
        let mut rows = Vec::with_capacity(limit.min(10_000));
        self.each_reading_after(after, limit, |r| rows.push(r.clone()))?;
        Ok(rows)
    }

    /// Hand each reading after `after` (at most `limit`, in seq order) to `f`; how many there were. One pass over
    /// the rows with one row value reused: the forwarder encodes as it reads, without a vector of rows between.
    /// Rows this process's writer has just committed come from its [`feed::Feed`], the others from the ledger.
    pub fn each_reading_after(
        &mut self,
        after: i64,
        limit: usize,
        mut f: impl FnMut(&ReadingRow),
    ) -> Result<usize, LedgerError> {
        let mut row = ReadingRow {
            seq: 0,
            station_id: -1,
            parameter_id: -1,
            station: Arc::from(""),
            parameter: Arc::from(""),
            ts: 0,
            value: 0.0,
            status: Status::Measuring,
            limit_low: None,
            limit_high: None,
            ratio: None,
        };
        if let Some(taken) = self.fed().and_then(|feed| feed.after(after, limit)) {
            let mut n = 0;
            for (seq, r) in taken.rows() {
                let names = (&mut self.stations, &mut self.parameters);
                name_row(&self.conn, names, &mut row, r.station_id, r.parameter_id)?;
                (row.seq, row.ts, row.value, row.status) = (seq, r.ts, r.value, r.status);
                (row.limit_low, row.limit_high, row.ratio) = r.limits();
                f(&row);
                n += 1;
            }
            self.rows_from_feed += n as u64;
            return Ok(n);
        }
        let mut st = self.conn.prepare_cached(
            "SELECT seq, station_id, parameter_id, ts, value, status, limit_low, limit_high, ratio \
             FROM readings WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut rows = st.query(params![after, limit as i64])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            let (s, p): (i64, i64) = (r.get(1)?, r.get(2)?);
            let names = (&mut self.stations, &mut self.parameters);
            name_row(&self.conn, names, &mut row, s, p)?;
            row.seq = r.get(0)?;
            row.ts = r.get(3)?;
            row.value = r.get(4)?;
            row.status = Status::from_u8(r.get(5)?).unwrap_or(Status::Fault);
            row.limit_low = r.get(6)?;
            row.limit_high = r.get(7)?;
            row.ratio = r.get(8)?;
            f(&row);
            n += 1;
        }
        Ok(n)
    }

    /// This process's writer's feed of the ledger, found again when the writer that filled it is gone.
    fn fed(&mut self) -> Option<&FeedReader> {
        if self.feed.as_ref().is_none_or(FeedReader::is_closed) {
            self.feed = feed::find(&self.path).map(|f| f.reader());
        }
        self.feed.as_ref()
    }

    pub fn aggregates_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AggregateRow>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT a.change_seq, s.code, p.symbol, a.window_ms, a.window_start, a.mean, a.min, a.max, a.valid, a.expected, \
             a.completeness, a.ratio, a.band FROM aggregates a JOIN stations s ON s.id = a.station_id \
             JOIN parameters p ON p.id = a.parameter_id WHERE a.change_seq > ?1 ORDER BY a.change_seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![after, limit as i64], |r| {
            Ok(AggregateRow {
                change_seq: r.get(0)?,
                station: r.get(1)?,
                parameter: r.get(2)?,
                window_ms: r.get(3)?,
                window_start: r.get(4)?,
                mean: r.get(5)?,
                min: r.get(6)?,
                max: r.get(7)?,
                valid: r.get(8)?,
                expected: r.get(9)?,
                completeness: r.get(10)?,
                ratio: r.get(11)?,
                band: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Alerts whose state changed after `after` (their `change_seq`), in order: one row per point the alert holds
    /// (raised; acknowledged and cleared once they happened), each at the time of its change, so the points are the
    /// same however often the alert was read on its way. A withdrawn alert holds none (its points are withdrawn).
    pub fn alerts_after(&self, after: i64, limit: usize) -> Result<Vec<AlertRow>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT change_seq, id, station, subject, kind, severity, state, raised, acked_at, cleared, \
             json_extract(detail, '$.ratio'), json_extract(detail, '$.band'), json_extract(detail, '$.note'), \
             since, updated, json_extract(detail, '$.value'), json_extract(peak, '$.ratio'), \
             json_extract(detail, '$.raised_late') \
             FROM alerts WHERE change_seq > ?1 ORDER BY change_seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![after, limit as i64], |r| {
            let (raised, acked, cleared): (i64, Option<i64>, Option<i64>) =
                (r.get(7)?, r.get(8)?, r.get(9)?);
            let state: String = r.get(6)?;
            let row = AlertRow {
                change_seq: r.get(0)?,
                id: r.get(1)?,
                station: r.get(2)?,
                subject: r.get(3)?,
                kind: r.get(4)?,
                severity: r.get(5)?,
                state: "raised".into(),
                at: raised,
                since: r.get(13)?,
                last_bad: r.get(14)?,
                value: r.get(15)?,
                multiple: r.get(10)?,
                peak_multiple: r.get(16)?,
                band: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
                note: r.get::<_, Option<String>>(12)?.unwrap_or_default(),
                late: r.get::<_, Option<i64>>(17)?.unwrap_or(0) != 0,
            };
            if state == "withdrawn" {
                // Still returned (a row without points) so the cursor moves past it.
                return Ok(vec![AlertRow { state, ..row }]);
            }
            let mut points = Vec::with_capacity(3);
            for (name, at) in [("acknowledged", acked), ("cleared", cleared)] {
                if let Some(at) = at {
                    points.push(AlertRow {
                        state: name.into(),
                        at,
                        ..row.clone()
                    });
                }
            }
            points.insert(0, row);
            Ok(points)
        })?;
        let mut out = Vec::new();
        for r in rows {
            out.extend(r?);
        }
        Ok(out)
    }

    /// Points listed as withdrawn after `after`, in order; `held` when a row holds the point again (an alert's raise
    /// moved back), so it must not be withdrawn.
    pub fn withdrawn_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<WithdrawnRow>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT w.seq, w.measurement, w.station, w.parameter, w.series, w.state, w.ts, \
             CASE w.measurement WHEN 'event' THEN EXISTS (SELECT 1 FROM events e \
               JOIN stations s ON s.id = e.station_id JOIN parameters p ON p.id = e.parameter_id \
               WHERE s.code = w.station AND p.symbol = w.parameter AND e.scope = w.series AND e.start = w.ts) \
             ELSE EXISTS (SELECT 1 FROM alerts a WHERE a.station = w.station AND a.subject = w.parameter \
               AND a.kind = w.series AND a.state != 'withdrawn' AND CASE w.state WHEN 'raised' THEN a.raised = w.ts \
               WHEN 'cleared' THEN a.cleared = w.ts ELSE a.acked_at = w.ts END) END \
             FROM withdrawn_points w WHERE w.seq > ?1 ORDER BY w.seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![after, limit as i64], |r| {
            Ok(WithdrawnRow {
                seq: r.get(0)?,
                measurement: r.get(1)?,
                station: r.get(2)?,
                parameter: r.get(3)?,
                series: r.get(4)?,
                state: r.get(5)?,
                ts: r.get(6)?,
                held: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventRow>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT e.change_seq, s.code, p.symbol, e.scope, e.start, e.end, e.last, e.band, e.peak_band, e.peak_ratio \
             FROM events e JOIN stations s ON s.id = e.station_id JOIN parameters p ON p.id = e.parameter_id \
             WHERE e.change_seq > ?1 ORDER BY e.change_seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![after, limit as i64], |r| {
            Ok(EventRow {
                change_seq: r.get(0)?,
                station: r.get(1)?,
                parameter: r.get(2)?,
                scope: r.get(3)?,
                start: r.get(4)?,
                end: r.get(5)?,
                last: r.get(6)?,
                band: r.get(7)?,
                peak_band: r.get(8)?,
                peak_ratio: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Keep lines the server refused, with its answer, so one bad line never blocks the stream.
    pub fn dead_letter(
        &self,
        forwarder: &str,
        lines: &[String],
        status: u16,
        response: &str,
    ) -> Result<(), LedgerError> {
        let now = Timestamp::now().millis();
        let mut st = self.conn.prepare_cached(
            "INSERT INTO dead_letters (forwarder, line, status, response, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for l in lines {
            st.execute(params![forwarder, l, status, response, now])?;
        }
        Ok(())
    }

    pub fn backlog(&self) -> Result<Backlog, LedgerError> {
        let cur = self.delivered(Stream::Readings)?;
        // Sequence numbers have no gaps above a cursor (retention deletes only below every cursor): a difference
        // counts the rows behind without scanning them.
        let (behind, oldest): (i64, Option<i64>) = self
            .conn
            .prepare_cached(
                "SELECT COALESCE(MAX(seq), ?1) - ?1, (SELECT received FROM readings WHERE seq > ?1 ORDER BY seq LIMIT 1) \
                 FROM readings",
            )?
            .query_row([cur], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(Backlog {
            rows_behind: behind,
            oldest_unsent_ms: oldest.map(|t| Timestamp::now().millis() - t),
        })
    }
}
