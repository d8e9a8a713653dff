//! `[tt10]`: Circular 10 TXT landing folders (where the FTP server drops the stations' files).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::duration::DurationText;
use super::Problems;
use crate::circular10::MaintenanceAs;

/// `[tt10]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tt10Section {
    /// Folders to watch, relative to this config file. Scanned recursively (also `<station>/yyyy/MM/dd` layouts).
    /// Empty (the default): no TT10 source.
    #[serde(default)]
    pub landing: Vec<String>,
    /// A file is read only once it has not changed for this long (and its size did not change between two scans):
    /// the FTP server may still be writing it.
    #[serde(default = "default_settle")]
    pub settle: DurationText,
    /// Pause between two scans of a folder.
    #[serde(default = "default_scan_interval")]
    pub scan_interval: DurationText,
    /// Where files go after their readings commit: a folder name inside each landing folder, or an absolute path.
    /// The file keeps its path relative to the landing folder.
    #[serde(default = "default_processed")]
    pub processed: String,
    /// Where files that cannot be read go, each with a `<name>.reason` file beside it (same rules as `processed`).
    #[serde(default = "default_rejected")]
    pub rejected: String,
    /// Most files in one pipeline batch (one ledger transaction).
    #[serde(default = "default_batch_files")]
    pub batch_files: usize,
    /// Larger files are rejected unread (a station file holds a few hundred bytes).
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// How maintenance readings (status `03`, not in the Circular) are written in the TT10 files of `quantrac export`:
    /// `"01"` (the default), `"02"` or `"omit"`. Each `[[forward.tt10]]` target has its own.
    #[serde(default = "default_maintenance_as")]
    pub maintenance_as: String,
}

fn default_settle() -> DurationText {
    DurationText::new("5s")
}
fn default_scan_interval() -> DurationText {
    DurationText::new("2s")
}
fn default_processed() -> String {
    "processed".into()
}
fn default_rejected() -> String {
    "rejected".into()
}
fn default_batch_files() -> usize {
    500
}
fn default_max_file_bytes() -> u64 {
    1024 * 1024
}
fn default_maintenance_as() -> String {
    MaintenanceAs::default().as_str().into()
}

impl Default for Tt10Section {
    fn default() -> Self {
        Self {
            landing: Vec::new(),
            settle: default_settle(),
            scan_interval: default_scan_interval(),
            processed: default_processed(),
            rejected: default_rejected(),
            batch_files: default_batch_files(),
            max_file_bytes: default_max_file_bytes(),
            maintenance_as: default_maintenance_as(),
        }
    }
}

/// Checked `[tt10]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tt10 {
    pub landing: Vec<PathBuf>,
    pub settle: Duration,
    pub scan_interval: Duration,
    pub processed: PathBuf,
    pub rejected: PathBuf,
    pub batch_files: usize,
    pub max_file_bytes: u64,
    /// How exports write maintenance readings.
    pub maintenance_as: MaintenanceAs,
}

impl Tt10 {
    /// The processed folder of a landing folder.
    pub fn processed_dir(&self, landing: &Path) -> PathBuf {
        landing.join(&self.processed)
    }
    /// The rejected folder of a landing folder.
    pub fn rejected_dir(&self, landing: &Path) -> PathBuf {
        landing.join(&self.rejected)
    }
}

impl Tt10Section {
    pub(super) fn validate(&self, p: &mut Problems, base: &Path) -> Tt10 {
        let mut landing: Vec<PathBuf> = Vec::new();
        for (i, l) in self.landing.iter().enumerate() {
            let key = format!("tt10.landing[{i}]");
            if l.trim().is_empty() {
                p.push(
                    key,
                    "must not be empty; give the folder where the FTP server drops the station files",
                );
                continue;
            }
            let path = base.join(l.trim());
            if landing.contains(&path) {
                p.push(key, format!("{l:?} is listed twice"));
                continue;
            }
            landing.push(path);
        }
        let settle = self.settle.check(p, "tt10.settle");
        let scan_interval = self.scan_interval.check_positive(p, "tt10.scan_interval");
        for (key, v) in [
            ("tt10.processed", &self.processed),
            ("tt10.rejected", &self.rejected),
        ] {
            if v.trim().is_empty() {
                p.push(
                    key,
                    "must not be empty; give a folder name inside the landing folder or an absolute path",
                );
            }
        }
        if self.processed.trim() == self.rejected.trim() && !self.processed.trim().is_empty() {
            p.push(
                "tt10.rejected",
                format!(
                    "{:?} is also tt10.processed; rejected files must be kept apart",
                    self.rejected
                ),
            );
        }
        if !(1..=10_000).contains(&self.batch_files) {
            p.push(
                "tt10.batch_files",
                format!("{} is not from 1 to 10000", self.batch_files),
            );
        }
        if self.max_file_bytes == 0 {
            p.push("tt10.max_file_bytes", "must be greater than 0");
        }
        Tt10 {
            landing,
            settle,
            scan_interval,
            processed: PathBuf::from(self.processed.trim()),
            rejected: PathBuf::from(self.rejected.trim()),
            batch_files: self.batch_files.max(1),
            max_file_bytes: self.max_file_bytes,
            maintenance_as: super::transmit::maintenance_as(
                &self.maintenance_as,
                p,
                "tt10.maintenance_as",
            ),
        }
    }
}
