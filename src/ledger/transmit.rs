//! A Circular 10 transmission target's view of the ledger (`forward::tt10`): its cursor over `readings.seq` (stream
//! `readings`, so retention never deletes what it has not sent), the files to send after it, which of them were sent
//! before (corrections), and its backlog. Blocking calls: the target holds its store in a [`super::Held`].
//!
//! A file is one station at one second (the Circular's file name has second resolution). A round reads the readings
//! committed after the cursor, groups them by file, and reads each file's *whole* content — every reading of that
//! station and second, including ones sent before — in the same read transaction, so a late reading re-sends its
//! file complete under the same name.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{cursor, open_write, set_cursor, LedgerError, Stream};
use crate::health::Backlog;
use crate::model::{Status, Timestamp};

/// One reading of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReading {
    pub seq: i64,
    pub parameter: String,
    pub value: f64,
    pub unit: String,
    pub ts: i64,
    pub status: Status,
}

/// A file to send: one station at one second, with every reading the ledger holds for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingFile {
    pub station: String,
    /// The second the file covers (its first millisecond, Unix ms).
    pub second: i64,
    /// The lowest sequence number of this file's readings after the cursor: files come in this order, and once
    /// every file before it is sent the cursor may move to just below it.
    pub first_new_seq: i64,
    /// Ordered by parameter symbol, then time: the same readings always give the same bytes.
    pub readings: Vec<FileReading>,
    /// Some of its readings were already passed by the cursor: the file was sent before and goes again complete.
    pub correction: bool,
}

/// What one round found after the cursor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    pub files: Vec<PendingFile>,
    /// The last sequence number read (the cursor's place once every file is sent); `None`: nothing new.
    pub last_seq: Option<i64>,
    /// Readings read (also those of stations this target does not receive).
    pub readings: usize,
}

/// One target's connection and cursor names.
pub struct TransmitStore {
    conn: Connection,
    stations: HashMap<i64, String>,
    cursor_name: String,
    /// Where the cursor was created (stream `origin`, which retention ignores): readings at or below it were never
    /// this target's to send, so a file holding them is not a correction.
    origin_name: String,
}

/// Where a new cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorStart {
    /// After the newest reading.
    Newest,
    /// Before the first reading.
    Beginning,
}

impl TransmitStore {
    /// The store of the target `name` (its cursor is `tt10:<name>:readings`).
    pub fn open(path: &Path, name: &str) -> Result<TransmitStore, LedgerError> {
        Ok(TransmitStore {
            conn: open_write(path)?,
            stations: HashMap::new(),
            cursor_name: cursor_name(name),
            origin_name: format!("tt10:{name}:origin"),
        })
    }

    /// The cursor and the origin, creating both on the first start (at `start`), so retention waits for this target
    /// from then on.
    pub fn start(&self, start: CursorStart) -> Result<(i64, i64), LedgerError> {
        let existing: Option<i64> = self
            .conn
            .query_row(
                "SELECT position FROM cursors WHERE name = ?1",
                [&self.cursor_name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(position) = existing {
            return Ok((position, cursor(&self.conn, &self.origin_name)?));
        }
        let position = match start {
            CursorStart::Beginning => 0,
            CursorStart::Newest => {
                self.conn
                    .query_row("SELECT IFNULL(MAX(seq), 0) FROM readings", [], |r| r.get(0))?
            }
        };
        self.conn.execute(
            "INSERT INTO cursors (name, stream, position, updated) VALUES (?1, 'origin', ?2, ?3) \
             ON CONFLICT(name) DO UPDATE SET position = excluded.position, updated = excluded.updated",
            params![self.origin_name, position, Timestamp::now().millis()],
        )?;
        set_cursor(&self.conn, &self.cursor_name, Stream::Readings, position)?;
        Ok((position, position))
    }

    pub fn set_cursor(&self, position: i64) -> Result<(), LedgerError> {
        set_cursor(&self.conn, &self.cursor_name, Stream::Readings, position)
    }

    /// The files of up to `limit` readings after `after`: of the stations `sends` accepts, observed at or after
    /// `since`. `origin`: the cursor's first position.
    pub fn round(
        &mut self,
        after: i64,
        origin: i64,
        limit: usize,
        since: Option<i64>,
        sends: &dyn Fn(&str) -> bool,
    ) -> Result<Round, LedgerError> {
        // One read transaction: the readings after the cursor and each file's content come from one snapshot.
        let tx = self.conn.unchecked_transaction()?;
        let new = new_readings(&tx, after, limit)?;
        if new.iter().any(|r| !self.stations.contains_key(&r.1)) {
            load_stations(&tx, &mut self.stations)?;
        }
        let mut order: Vec<(i64, i64)> = Vec::new();
        let mut first: HashMap<(i64, i64), i64> = HashMap::new();
        for &(seq, station_id, ts) in &new {
            if since.is_some_and(|s| ts < s) {
                continue;
            }
            let Some(code) = self.stations.get(&station_id) else {
                continue;
            };
            if !sends(code) {
                continue;
            }
            let key = (station_id, ts.div_euclid(1000) * 1000);
            first.entry(key).or_insert_with(|| {
                order.push(key);
                seq
            });
        }
        let mut files = Vec::with_capacity(order.len());
        for key in order {
            let readings = file_readings(&tx, key.0, key.1)?;
            let correction = readings.iter().any(|r| r.seq <= after && r.seq > origin);
            files.push(PendingFile {
                station: self.stations.get(&key.0).cloned().unwrap_or_default(),
                second: key.1,
                first_new_seq: first[&key],
                readings,
                correction,
            });
        }
        tx.finish()?;
        Ok(Round {
            files,
            last_seq: new.last().map(|r| r.0),
            readings: new.len(),
        })
    }

    /// How far the target is behind: readings after its cursor, and the age of the oldest since its commit.
    pub fn backlog(&self) -> Result<Backlog, LedgerError> {
        let cur = cursor(&self.conn, &self.cursor_name)?;
        // No gaps above a cursor (retention deletes only below every cursor): a difference counts without a scan.
        let (behind, oldest): (i64, Option<i64>) = self.conn.query_row(
            "SELECT COALESCE(MAX(seq), ?1) - ?1, (SELECT received FROM readings WHERE seq > ?1 ORDER BY seq LIMIT 1) FROM readings",
            [cur],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Backlog {
            rows_behind: behind.max(0),
            oldest_unsent_ms: oldest.map(|t| (Timestamp::now().millis() - t).max(0)),
        })
    }
}

/// The cursor of the target `name`.
pub fn cursor_name(name: &str) -> String {
    format!("tt10:{name}:readings")
}

fn new_readings(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, i64, i64)>, LedgerError> {
    let mut st = conn.prepare_cached(
        "SELECT seq, station_id, ts FROM readings WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = st.query_map(params![after, limit as i64], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn load_stations(conn: &Connection, map: &mut HashMap<i64, String>) -> Result<(), LedgerError> {
    let mut st = conn.prepare_cached("SELECT id, code FROM stations")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (id, code) = row?;
        map.insert(id, code);
    }
    Ok(())
}

/// Every reading of a station within the second starting at `second` (the key index's range).
fn file_readings(
    conn: &Connection,
    station_id: i64,
    second: i64,
) -> Result<Vec<FileReading>, LedgerError> {
    let mut st = conn.prepare_cached(
        "SELECT r.seq, p.symbol, r.value, r.unit, r.ts, r.status FROM readings r \
         JOIN parameters p ON p.id = r.parameter_id \
         WHERE r.station_id = ?1 AND r.ts >= ?2 AND r.ts < ?3 ORDER BY p.symbol, r.ts, r.seq",
    )?;
    let rows = st.query_map(params![station_id, second, second + 1000], |r| {
        Ok(FileReading {
            seq: r.get(0)?,
            parameter: r.get(1)?,
            value: r.get(2)?,
            unit: r.get(3)?,
            ts: r.get(4)?,
            status: Status::from_u8(r.get(5)?).unwrap_or(Status::Fault),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::{Assessment, Band, Flags};
    use crate::config::Synchronous;
    use crate::ledger::{Evaluated, Ledger};
    use crate::model::{Parameter, Reading, SourceKind, StationId, Unit};

    fn reading(station: &str, p: &str, ts: i64) -> Evaluated {
        Evaluated {
            reading: Reading {
                station: StationId::parse(station).unwrap(),
                parameter: Parameter::new(p).unwrap(),
                ts: Timestamp(ts),
                value: 1.5,
                unit: Unit::new("mg/L"),
                status: Status::Measuring,
            },
            assessment: Assessment {
                rules: Default::default(),
                limit: None,
                ratio: None,
                band: Band::Compliant,
                flags: Flags::default(),
            },
            source: SourceKind::Sim,
            received: None,
        }
    }

    #[test]
    fn retention_waits_for_a_target_and_a_late_reading_makes_a_correction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        let mut l = Ledger::open(&path, Synchronous::Normal).unwrap();
        l.commit(
            &[
                reading("BN_A_B", "COD", 1000),
                reading("BN_A_B", "TSS", 1000),
                reading("BN_A_C", "COD", 2000),
            ],
            &[],
        )
        .unwrap();
        let mut s = TransmitStore::open(&path, "ministry").unwrap();
        assert_eq!(s.start(CursorStart::Beginning).unwrap(), (0, 0));
        // Nothing sent yet: retention deletes nothing (the newest row always stays; the others wait for the target).
        assert_eq!(l.apply_retention(Timestamp(10_000)).unwrap().readings, 0);

        let only_a = |id: &str| id == "BN_A_B";
        let r = s.round(0, 0, 100, None, &only_a).unwrap();
        assert_eq!((r.last_seq, r.readings, r.files.len()), (Some(3), 3, 1));
        assert_eq!(r.files[0].readings.len(), 2);
        assert!(!r.files[0].correction);
        s.set_cursor(3).unwrap();

        // A late NH4 for the same second re-sends that file complete, as a correction.
        l.commit(&[reading("BN_A_B", "NH4", 1500)], &[]).unwrap();
        let r = s.round(3, 0, 100, None, &only_a).unwrap();
        let symbols: Vec<&str> = r.files[0]
            .readings
            .iter()
            .map(|x| x.parameter.as_str())
            .collect();
        assert_eq!(symbols, ["COD", "NH4", "TSS"]);
        assert!(r.files[0].correction);
        // Readings before the target's origin were never its to send: not a correction.
        let r = s.round(3, 3, 100, None, &only_a).unwrap();
        assert!(!r.files[0].correction);
        s.set_cursor(4).unwrap();
        assert_eq!(l.apply_retention(Timestamp(10_000)).unwrap().readings, 3);
        // A second start keeps the cursor where it was.
        assert_eq!(s.start(CursorStart::Newest).unwrap(), (4, 0));
    }
}
