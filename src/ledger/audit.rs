//! The audit trail of state-changing calls and the operators' station notes: written outside the writer thread,
//! through a [`SideWriter`] (or inside the alert store's acknowledgement), read through a [`Reader`].

use std::path::Path;

use rusqlite::{params, Connection};

use super::{open_write, LedgerError, Reader};
use crate::model::Timestamp;

/// One audit row to write.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// Unix ms.
    pub at: i64,
    /// Account or token name (`sighup` for a reload).
    pub who: &'a str,
    pub role: &'a str,
    /// e.g. `POST /api/alerts/12/ack`.
    pub action: &'a str,
    /// What changed, e.g. the acknowledgement comment.
    pub detail: &'a str,
}

/// One audit row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub who: String,
    pub role: String,
    pub action: String,
    pub detail: String,
}

/// An operator's note in a station's log, and who wrote it.
#[derive(Debug, Clone)]
pub struct StationNote<'a> {
    pub station: &'a str,
    pub who: &'a str,
    pub role: &'a str,
    /// The audit row's action, e.g. `POST /api/stations/<id>/note`.
    pub action: &'a str,
    pub text: &'a str,
}

/// A note in a station's log as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteRow {
    pub id: i64,
    pub station: String,
    /// Unix ms, UTC.
    pub at: i64,
    pub who: String,
    pub text: String,
}

/// Which notes to read: a station (or all), written in `[from, to)`, before the note id `before` (paging), newest
/// first, at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct NoteFilter {
    pub station: Option<String>,
    /// Only stations matching one of these patterns (see `query::in_globs`); `None`: every station.
    pub station_globs: Option<Vec<String>>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// A write connection for the side tables (notes, audit); see [`super::LedgerHandle::write`].
pub struct SideWriter {
    pub(super) conn: Connection,
}

impl SideWriter {
    pub fn open(path: &Path) -> Result<SideWriter, LedgerError> {
        Ok(SideWriter {
            conn: open_write(path)?,
        })
    }

    /// Write one audit row.
    pub fn record_audit(&self, e: &AuditEntry<'_>) -> Result<(), LedgerError> {
        insert(&self.conn, e)
    }

    /// Add a note to a station's log with its audit row, in one transaction; returns the note's id.
    pub fn add_station_note(&mut self, n: &StationNote<'_>) -> Result<i64, LedgerError> {
        let tx = self.conn.transaction()?;
        let now = Timestamp::now().millis();
        tx.execute(
            "INSERT INTO station_notes (station, at, who, text) VALUES (?1, ?2, ?3, ?4)",
            params![n.station, now, n.who, n.text],
        )?;
        let note_id = tx.last_insert_rowid();
        insert(
            &tx,
            &AuditEntry {
                at: now,
                who: n.who,
                role: n.role,
                action: n.action,
                detail: n.text,
            },
        )?;
        tx.commit()?;
        Ok(note_id)
    }
}

/// Write one audit row on `conn` (inside the caller's transaction, if any).
pub(super) fn insert(conn: &Connection, e: &AuditEntry<'_>) -> Result<(), LedgerError> {
    conn.execute(
        "INSERT INTO audit (at, who, role, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![e.at, e.who, e.role, e.action, e.detail],
    )?;
    Ok(())
}

const NOTE_COLUMNS: &str = "id, station, at, who, text";

fn note_row(x: &rusqlite::Row<'_>) -> rusqlite::Result<NoteRow> {
    Ok(NoteRow {
        id: x.get(0)?,
        station: x.get(1)?,
        at: x.get(2)?,
        who: x.get(3)?,
        text: x.get(4)?,
    })
}

/// The notes of the stations `codes` written in `[from, to)`, by station then time (for exports).
pub(super) fn notes_in(
    conn: &Connection,
    codes: &[&str],
    from: i64,
    to: i64,
) -> Result<Vec<NoteRow>, LedgerError> {
    let mut st = conn.prepare(&format!(
        "SELECT {NOTE_COLUMNS} FROM station_notes WHERE station = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, id"
    ))?;
    let mut out = Vec::new();
    for code in codes {
        let rows = st.query_map(params![code, from, to], note_row)?;
        for r in rows {
            out.push(r?);
        }
    }
    Ok(out)
}

impl Reader {
    /// Station notes, newest first (see [`NoteFilter`]).
    pub fn station_notes(&self, f: &NoteFilter) -> Result<Vec<NoteRow>, LedgerError> {
        let mut st = self.connection().prepare(&format!(
            "SELECT {NOTE_COLUMNS} FROM station_notes WHERE (?1 IS NULL OR station = ?1) \
             AND (?2 IS NULL OR at >= ?2) AND (?3 IS NULL OR at < ?3) AND (?4 IS NULL OR id < ?4) \
             AND {} ORDER BY id DESC LIMIT ?5",
            super::query::in_globs("station", 6)
        ))?;
        let rows = st.query_map(
            params![
                f.station,
                f.from,
                f.to,
                f.before,
                f.limit,
                super::query::globs_param(&f.station_globs)
            ],
            note_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The audit trail, newest first, at most `limit` rows.
    pub fn audit(&self, limit: i64) -> Result<Vec<AuditRow>, LedgerError> {
        let mut st = self.connection().prepare(
            "SELECT id, at, who, role, action, detail FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit], |x| {
            Ok(AuditRow {
                id: x.get(0)?,
                at: x.get(1)?,
                who: x.get(2)?,
                role: x.get(3)?,
                action: x.get(4)?,
                detail: x.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
