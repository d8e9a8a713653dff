//! The quality flags judged against a series' history (flat line, spike, gap: `compliance::quality::HISTORY`), in
//! observation order. The ledger holds every stored reading, so it judges them at commit: a reading newer than its
//! series' newest against the series' [`Track`] (kept in memory, rebuilt from the ledger at first sight), an older one
//! by re-judging the series from it on ([`Rejudge`]). Stored readings whose flags that changes are updated, and each
//! change is recorded in `flag_revisions` (old and new flags, the reading whose arrival caused it, when).

use rusqlite::{params, Connection};
use rustc_hash::FxHashMap;

use super::{Evaluated, LedgerError, Outcome};
use crate::compliance::quality::{Point, Rebuild, Rejudge, SeriesRules, Track, HISTORY};
use crate::compliance::Flags;
use crate::model::{Status, Timestamp};

/// A stored reading whose history flags changed because an older reading arrived after it.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagRevision {
    pub station: String,
    pub parameter: String,
    pub ts: Timestamp,
    pub old: Flags,
    pub new: Flags,
    /// The late reading whose arrival caused it (`readings.seq`).
    pub cause: i64,
}

impl FlagRevision {
    /// Whether the flags that raise `quality` alerts (flat line, spike) changed; a gap alone alerts nothing.
    pub fn changes_alerts(&self) -> bool {
        let raises = Flags::FLAT_LINE.0 | Flags::SPIKE.0;
        self.old.0 & raises != self.new.0 & raises
    }
}

/// Each series' history, by (station id, parameter id).
#[derive(Default)]
pub(super) struct Tracks {
    series: FxHashMap<(i64, i64), Track>,
}

/// The late readings of one series in a commit.
struct LateRun {
    first: i64,
    last: i64,
    /// The earliest late reading's index in the commit.
    index: usize,
    /// Its `readings.seq`: what flag revisions name as their cause.
    cause: i64,
}

/// Readings read by the first page when walking a series (a few usually settle it), doubling up to `MAX_PAGE`.
const PAGE: i64 = 4;
const MAX_PAGE: i64 = 1024;

impl Tracks {
    pub fn clear(&mut self) {
        self.series.clear();
    }

    /// Before the insert, in key order (each series in time order): the flags of each reading with the history
    /// flags of those newer than their series' newest. Returns the flags by reading, and the readings as old as
    /// their series' newest or older (to re-judge once stored). `followed_after`: see `Ledger::followed_after` (0: a
    /// series not seen has no stored reading, no query).
    pub fn judge_newest(
        &mut self,
        tx: &Connection,
        readings: &[Evaluated],
        ids: &[(i64, i64)],
        order: &[usize],
        followed_after: i64,
    ) -> Result<(Vec<Flags>, Vec<usize>), LedgerError> {
        let mut flags: Vec<Flags> = readings
            .iter()
            .map(|e| Flags(e.assessment.flags.0 & !HISTORY.0))
            .collect();
        let mut older = Vec::new();
        for &i in order {
            let rules = readings[i].assessment.rules;
            if !rules.judges_history() {
                continue;
            }
            let track = match self.series.entry(ids[i]) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let t = match followed_after {
                        0 => Track::default(),
                        _ => rebuild(tx, ids[i], rules, i64::MAX)?,
                    };
                    v.insert(t)
                }
            };
            let p = point(&readings[i]);
            if track.newest().is_none_or(|n| p.ts > n) {
                flags[i].insert(track.observe(&rules, p));
            } else {
                older.push(i);
            }
        }
        Ok((flags, older))
    }

    /// Once stored: re-judge each series from its earliest late reading in observation order, as far as flags can
    /// change; store the flags that changed and record each change to a reading stored before this commit (`top`:
    /// the newest seq before it). `flags`: the commit's flags by reading, brought up to date.
    #[allow(clippy::too_many_arguments)]
    pub fn judge_older(
        &mut self,
        tx: &Connection,
        readings: &[Evaluated],
        ids: &[(i64, i64)],
        outcomes: &[Outcome],
        older: &[usize],
        flags: &mut [Flags],
        top: i64,
        now: i64,
    ) -> Result<Vec<FlagRevision>, LedgerError> {
        let mut runs: FxHashMap<(i64, i64), LateRun> = FxHashMap::default();
        for &i in older {
            // A duplicate or a conflict leaves the stored reading as it was.
            let Outcome::Accepted(seq) = outcomes[i] else {
                continue;
            };
            let ts = readings[i].reading.ts.millis();
            runs.entry(ids[i])
                .and_modify(|r| r.last = r.last.max(ts))
                .or_insert(LateRun {
                    first: ts,
                    last: ts,
                    index: i,
                    cause: seq,
                });
        }
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let commit_index: FxHashMap<i64, usize> = outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Outcome::Accepted(seq) => Some((*seq, i)),
                _ => None,
            })
            .collect();
        let mut pages = station_pages(tx, &runs)?;
        let mut revisions = Vec::new();
        for (g, run) in runs {
            let e = &readings[run.index];
            let series = (e.reading.station.as_str(), e.reading.parameter.as_str());
            let rules = e.assessment.rules;
            let before = rebuild(tx, g, rules, run.first)?;
            let mut again = Rejudge::new(rules, before, run.last);
            let first = pages.get_mut(&g.0).map(|p| p.take(g.1, run.first));
            let converged = rejudge_series(
                tx,
                (g, first),
                &run,
                &mut again,
                (&commit_index, &mut *flags),
                (series, top, now),
                &mut revisions,
            )?;
            if !converged {
                // Judged to the series' newest: this is its history now.
                self.series.insert(g, again.into_track());
            }
        }
        Ok(revisions)
    }
}

/// Page through series `g` from the run's first late reading, storing the flags that change, until they can no
/// longer change (`true`) or the series ends (`false`). A row of this commit gets its flags in `flags` (by its
/// place in `commit_index`); a change to a row stored before (`seq <= top`) is recorded as a revision.
fn rejudge_series(
    tx: &Connection,
    (g, first): ((i64, i64), Option<FirstPage>),
    run: &LateRun,
    again: &mut Rejudge,
    (commit_index, flags): (&FxHashMap<i64, usize>, &mut [Flags]),
    ((station, parameter), top, now): ((&str, &str), i64, i64),
    revisions: &mut Vec<FlagRevision>,
) -> Result<bool, LedgerError> {
    let (mut from, mut page) = ((run.first, true), PAGE);
    let mut first = first;
    loop {
        let (rows, full) = match first.take() {
            // Rows already read with the station's: the loop below moves `from` past them.
            Some(p) => (p.rows, !p.ended),
            None => {
                let rows = series_rows(tx, g, from, page)?;
                let full = rows.len() as i64 == page;
                page = (page * 2).min(MAX_PAGE);
                (rows, full)
            }
        };
        for row in rows {
            from = (row.point.ts, false);
            let new = Flags(row.flags.0 & !HISTORY.0) | again.next(row.point);
            if new != row.flags {
                tx.prepare_cached("UPDATE readings SET flags = ?2 WHERE seq = ?1")?
                    .execute(params![row.seq, new.0])?;
            }
            if let Some(&i) = commit_index.get(&row.seq) {
                flags[i] = new;
            } else if new != row.flags && row.seq <= top {
                record(tx, row.seq, run.cause, row.flags, new, now)?;
                revisions.push(FlagRevision {
                    station: station.to_string(),
                    parameter: parameter.to_string(),
                    ts: Timestamp(row.point.ts),
                    old: row.flags,
                    new,
                    cause: run.cause,
                });
            }
            if again.converged() {
                return Ok(true);
            }
        }
        if !full {
            return Ok(false);
        }
    }
}

/// A series' first rows from its earliest late reading, read with its station's (see [`station_pages`]).
struct FirstPage {
    rows: Vec<Row>,
    /// The station has no stored reading after these: the series ends here.
    ended: bool,
}

/// One station's rows from the earliest late reading of any of its series in a commit, by parameter id.
struct StationPage {
    rows: FxHashMap<i64, Vec<Row>>,
    /// The page holds every row of the station before this time (the last time read may be cut by the limit).
    complete_before: i64,
    ended: bool,
}

impl StationPage {
    /// Parameter `p`'s rows from `from` on that the page holds completely.
    fn take(&mut self, p: i64, from: i64) -> FirstPage {
        let mut rows = self.rows.remove(&p).unwrap_or_default();
        rows.retain(|r| r.point.ts >= from && (self.ended || r.point.ts < self.complete_before));
        FirstPage {
            rows,
            ended: self.ended,
        }
    }
}

/// The first page of every late series, read per station: the readings key is (station, ts, parameter), so a
/// series' range read walks all of its station's parameters anyway, and one read serves them all. Runs of one
/// station share a page when it holds more than one; a lone series reads its own.
fn station_pages(
    tx: &Connection,
    runs: &FxHashMap<(i64, i64), LateRun>,
) -> Result<FxHashMap<i64, StationPage>, LedgerError> {
    let mut from: FxHashMap<i64, (i64, i64)> = FxHashMap::default();
    for (&(s, _), run) in runs {
        from.entry(s)
            .and_modify(|(ts, n)| (*ts, *n) = ((*ts).min(run.first), *n + 1))
            .or_insert((run.first, 1));
    }
    let mut st = tx.prepare_cached(
        "SELECT seq, ts, value, status, flags, parameter_id FROM readings WHERE station_id = ?1 AND ts >= ?2 \
         ORDER BY ts LIMIT ?3",
    )?;
    let mut pages = FxHashMap::default();
    for (s, (ts, n)) in from.into_iter().filter(|(_, (_, n))| *n > 1) {
        let limit = PAGE * n;
        let mut rows: FxHashMap<i64, Vec<Row>> = FxHashMap::default();
        let (mut read, mut last) = (0, i64::MIN);
        let mut q = st.query(params![s, ts, limit])?;
        while let Some(r) = q.next()? {
            let row = row(r)?;
            read += 1;
            last = row.point.ts;
            rows.entry(r.get(5)?).or_default().push(row);
        }
        let page = StationPage {
            rows,
            complete_before: last,
            ended: read < limit,
        };
        pages.insert(s, page);
    }
    Ok(pages)
}

fn point(e: &Evaluated) -> Point {
    Point {
        ts: e.reading.ts.millis(),
        value: e.reading.value,
        measuring: e.reading.status.counts_for_compliance(),
    }
}

/// A series' history before `before` (exclusive), from its stored readings.
fn rebuild(
    tx: &Connection,
    (s, p): (i64, i64),
    rules: SeriesRules,
    before: i64,
) -> Result<Track, LedgerError> {
    let mut b = Rebuild::new(rules);
    let mut st = tx.prepare_cached(
        "SELECT ts, value, status FROM readings WHERE station_id = ?1 AND parameter_id = ?2 AND ts < ?3 \
         ORDER BY ts DESC LIMIT ?4",
    )?;
    let (mut until, mut page) = (before, PAGE);
    loop {
        let mut rows = st.query(params![s, p, until, page])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            n += 1;
            let q = Point {
                ts: r.get(0)?,
                value: r.get(1)?,
                measuring: r.get::<_, u8>(2)? == Status::Measuring as u8,
            };
            until = q.ts;
            if !b.push(q) {
                return Ok(b.finish());
            }
        }
        if n < page {
            return Ok(b.finish());
        }
        page = (page * 2).min(MAX_PAGE);
    }
}

struct Row {
    seq: i64,
    point: Point,
    flags: Flags,
}

/// Up to `limit` stored readings of a series in time order from `from` (`(ts, true)`: from ts on; `(ts, false)`:
/// after it).
fn series_rows(
    tx: &Connection,
    (s, p): (i64, i64),
    (ts, inclusive): (i64, bool),
    limit: i64,
) -> Result<Vec<Row>, LedgerError> {
    let from = if inclusive { ts } else { ts.saturating_add(1) };
    let mut st = tx.prepare_cached(
        "SELECT seq, ts, value, status, flags FROM readings WHERE station_id = ?1 AND parameter_id = ?2 AND ts >= ?3 \
         ORDER BY ts LIMIT ?4",
    )?;
    let rows = st.query_map(params![s, p, from, limit], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A row of `seq, ts, value, status, flags`.
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        seq: r.get(0)?,
        point: Point {
            ts: r.get(1)?,
            value: r.get(2)?,
            measuring: r.get::<_, u8>(3)? == Status::Measuring as u8,
        },
        flags: Flags(r.get(4)?),
    })
}

fn record(
    tx: &Connection,
    reading: i64,
    cause: i64,
    old: Flags,
    new: Flags,
    now: i64,
) -> Result<(), LedgerError> {
    tx.prepare_cached(
        "INSERT INTO flag_revisions (reading_seq, cause_seq, old_flags, new_flags, revised) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![reading, cause, old.0, new.0, now])?;
    Ok(())
}

/// The flag revisions caused by readings committed in `(after, until]` (`readings.seq`), for a consumer catching up
/// from the ledger (the alert engine after a restart).
pub fn revisions_caused(
    conn: &Connection,
    after: i64,
    until: i64,
) -> Result<Vec<FlagRevision>, LedgerError> {
    let mut st = conn.prepare_cached(
        "SELECT s.code, p.symbol, r.ts, f.old_flags, f.new_flags, f.cause_seq FROM flag_revisions f \
         JOIN readings r ON r.seq = f.reading_seq JOIN stations s ON s.id = r.station_id \
         JOIN parameters p ON p.id = r.parameter_id WHERE f.cause_seq > ?1 AND f.cause_seq <= ?2 ORDER BY f.id",
    )?;
    let rows = st.query_map(params![after, until], |r| {
        Ok(FlagRevision {
            station: r.get(0)?,
            parameter: r.get(1)?,
            ts: Timestamp(r.get(2)?),
            old: Flags(r.get(3)?),
            new: Flags(r.get(4)?),
            cause: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Ledger, Synchronous};
    use super::*;
    use crate::compliance::{Assessment, Band, QualitySettings};
    use crate::model::{Parameter, Reading, SourceKind, StationId, Unit};

    const MIN: i64 = 60_000;

    fn rules() -> SeriesRules {
        let s = QualitySettings {
            flat_line: Some(Duration::from_secs(20 * 60)),
            ..QualitySettings::default()
        };
        SeriesRules::new(&s, Duration::from_secs(300), Some(100.0))
    }

    /// Two series of a station over five hours: runs of equal values (flat lines), jumps (spikes), a 40-minute
    /// gap, a reading in calibration.
    fn readings() -> Vec<Evaluated> {
        let mut out = Vec::new();
        for (p, shift) in [("COD", 0usize), ("TSS", 3)] {
            let mut ts = 0;
            for i in 0..60usize {
                ts += if i == 30 { 40 * MIN } else { 5 * MIN };
                let value = [40.0, 40.0, 40.0, 95.0, 20.0][((i + shift) / 6) % 5];
                let status = if i == 17 {
                    Status::Calibrating
                } else {
                    Status::Measuring
                };
                out.push(Evaluated {
                    reading: Reading {
                        station: StationId::parse("BN_A_B").unwrap(),
                        parameter: Parameter::new(p).unwrap(),
                        ts: Timestamp(ts),
                        value,
                        unit: Unit::new("mg/L"),
                        status,
                    },
                    assessment: Assessment {
                        rules: rules(),
                        limit: None,
                        ratio: None,
                        band: Band::NoLimit,
                        flags: Flags::default(),
                    },
                    source: SourceKind::Sim,
                    received: None,
                });
            }
        }
        out
    }

    /// (parameter, ts, flags) of every stored reading.
    fn stored(l: &Ledger) -> Vec<(String, i64, u32)> {
        let conn = l.reader().unwrap();
        let mut st = conn
            .connection()
            .prepare("SELECT p.symbol, r.ts, r.flags FROM readings r JOIN parameters p ON p.id = r.parameter_id ORDER BY 1, 2")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn revisions(l: &Ledger) -> i64 {
        l.reader()
            .unwrap()
            .connection()
            .query_row("SELECT COUNT(*) FROM flag_revisions", [], |r| r.get(0))
            .unwrap()
    }

    /// Commit `batches` in turn, closing and reopening the ledger after `restart_after` of them.
    fn deliver(batches: &[Vec<Evaluated>], restart_after: usize) -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        let mut l = Ledger::open(&path, Synchronous::Normal).unwrap();
        for (n, b) in batches.iter().enumerate() {
            if n == restart_after {
                drop(l);
                l = Ledger::open(&path, Synchronous::Normal).unwrap();
            }
            let (outcomes, _) = l.commit(b, &[]).unwrap();
            // What consumers are told of a stored reading is what was stored.
            let all = stored(&l);
            for ((e, told), o) in b.iter().zip(l.judged_flags()).zip(outcomes) {
                if matches!(o, Outcome::Accepted(_)) {
                    let (p, ts) = (e.reading.parameter.as_str(), e.reading.ts.millis());
                    let kept = all.iter().find(|(q, t, _)| q == p && *t == ts).unwrap().2;
                    assert_eq!(told.0, kept, "batch {n}, {p} at {ts}");
                }
            }
        }
        (dir, l)
    }

    #[test]
    fn history_flags_follow_observation_order_whatever_the_arrival_and_restarts() {
        let all = readings();
        let one_by_one: Vec<Vec<Evaluated>> = all.iter().map(|e| vec![e.clone()]).collect();
        let (_a, in_order) = deliver(&one_by_one, usize::MAX);
        let expected = stored(&in_order);
        let flagged = |f: Flags| expected.iter().filter(|r| r.2 & f.0 != 0).count();
        assert!(
            flagged(Flags::FLAT_LINE) > 0 && flagged(Flags::SPIKE) > 0 && flagged(Flags::GAP) > 0
        );
        assert_eq!(revisions(&in_order), 0);

        // In order again, restarted halfway: the history is rebuilt from the ledger.
        let (_b, restarted) = deliver(&one_by_one, 40);
        assert_eq!(stored(&restarted), expected);

        // Newest first, in threes, restarted halfway.
        let newest_first: Vec<Vec<Evaluated>> = all
            .iter()
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .chunks(3)
            .map(<[_]>::to_vec)
            .collect();
        let (_c, backlog) = deliver(&newest_first, 20);
        assert_eq!(stored(&backlog), expected);
        assert!(
            revisions(&backlog) > 0,
            "re-flagged stored readings are recorded"
        );

        // Scattered: every seventh reading in turn, batches mixing older and newer readings, one redelivered.
        let mut scattered: Vec<Evaluated> = (0..7)
            .flat_map(|k| all.iter().skip(k).step_by(7).cloned())
            .collect();
        scattered.push(all[10].clone());
        let batches: Vec<Vec<Evaluated>> = scattered.chunks(5).map(<[_]>::to_vec).collect();
        let (_d, mixed) = deliver(&batches, 9);
        assert_eq!(stored(&mixed), expected);
    }
}
