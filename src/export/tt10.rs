//! Readings as Circular 10 TXT files, one per station and timestamp (second), named by the standard and laid out
//! as dataloggers do: `tt10/<station>/yyyy/MM/dd/<Province>_<Facility>_<Station>_<yyyyMMddHHmmss>.txt`. Ready to
//! re-send to another authority, or to drop into a quantrac landing folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::FixedOffset;
use sha2::{Digest, Sha256};

use crate::circular10::{format_tt10_time, write_line_as, Line, MaintenanceAs};
use crate::ledger::export::ReadingRow;
use crate::model::{Status, Timestamp};

/// Writes the files of one station as its readings arrive in time order.
pub struct Tt10Files<'a> {
    root: &'a Path,
    station: String,
    tz: FixedOffset,
    maintenance: MaintenanceAs,
    /// The second (yyyyMMddHHmmss) of the file being filled, and its content.
    current: Option<(String, Timestamp)>,
    buf: String,
    /// MANIFEST lines (`<sha256>  <path>`) of the files written, in path order (they are written in that order:
    /// stations by code, then time), kept on disk rather than in memory.
    lines: &'a mut dyn Write,
    /// Files written.
    pub count: u64,
}

impl<'a> Tt10Files<'a> {
    /// `root` is the export folder; maintenance readings are written as `maintenance` says.
    pub fn new(
        root: &'a Path,
        station: &str,
        tz: FixedOffset,
        maintenance: MaintenanceAs,
        lines: &'a mut dyn Write,
    ) -> Self {
        Self {
            root,
            station: station.to_string(),
            tz,
            maintenance,
            current: None,
            buf: String::new(),
            lines,
            count: 0,
        }
    }

    pub fn push(&mut self, r: &ReadingRow) -> std::io::Result<()> {
        let ts = Timestamp(r.ts);
        let second = format_tt10_time(ts, self.tz);
        if self.current.as_ref().is_some_and(|(s, _)| *s != second) {
            self.flush()?;
        }
        if self.current.is_none() {
            self.current = Some((second, ts));
        }
        let status = Status::from_u8(r.status).unwrap_or(Status::Fault);
        let line = Line {
            parameter: &r.parameter,
            value: r.value,
            unit: &r.unit,
            ts,
            status,
        };
        write_line_as(&mut self.buf, line, self.tz, self.maintenance);
        Ok(())
    }

    /// Write the file being filled.
    pub fn flush(&mut self) -> std::io::Result<()> {
        let Some((second, _)) = self.current.take() else {
            return Ok(());
        };
        if self.buf.is_empty() {
            // Every reading of this second was in maintenance, left out (`maintenance_as = "omit"`): no file.
            return Ok(());
        }
        let rel = format!(
            "tt10/{st}/{}/{}/{}/{st}_{second}.txt",
            &second[0..4],
            &second[4..6],
            &second[6..8],
            st = self.station
        );
        let path: PathBuf = self.root.join(&rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, self.buf.as_bytes())?;
        let digest: [u8; 32] = Sha256::digest(self.buf.as_bytes()).into();
        writeln!(self.lines, "{}  {rel}", crate::hex::encode(&digest))?;
        self.count += 1;
        self.buf.clear();
        Ok(())
    }
}
