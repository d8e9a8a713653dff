//! Daemon-wide sections: `[daemon]`, `[ledger]`, `[pipeline]`, `[sim]`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;
use serde::Deserialize;

use super::duration::DurationText;
use super::Problems;

/// `[daemon]`: time and reference data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    /// Local time zone of the stations and TT10 files: an IANA name of a zone without DST
    /// (`Asia/Ho_Chi_Minh`, the default) or a fixed offset such as `+07:00`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Readings stamped further than this in the future are quarantined (clock fault).
    #[serde(default = "default_future_skew")]
    pub future_skew: DurationText,
    /// Folder of limit profile files (`*.toml`), relative to this config file.
    #[serde(default = "default_profiles_dir")]
    pub profiles_dir: String,
}

fn default_timezone() -> String {
    "Asia/Ho_Chi_Minh".into()
}
fn default_future_skew() -> DurationText {
    DurationText::new("5m")
}
fn default_profiles_dir() -> String {
    "profiles".into()
}

impl Default for DaemonSection {
    fn default() -> Self {
        Self {
            timezone: default_timezone(),
            future_skew: default_future_skew(),
            profiles_dir: default_profiles_dir(),
        }
    }
}

/// IANA zones quantrac knows by name; all have kept one offset without DST for decades.
const NAMED_ZONES: [(&str, i32); 6] = [
    ("Asia/Ho_Chi_Minh", 7 * 3600),
    ("Asia/Saigon", 7 * 3600),
    ("Asia/Bangkok", 7 * 3600),
    ("Asia/Jakarta", 7 * 3600),
    ("Asia/Vientiane", 7 * 3600),
    ("UTC", 0),
];

impl DaemonSection {
    pub(super) fn timezone(&self, p: &mut Problems) -> (FixedOffset, String) {
        let name = self.timezone.trim();
        let named = NAMED_ZONES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s);
        let secs = named.or_else(|| parse_offset(name));
        match secs.and_then(FixedOffset::east_opt) {
            Some(tz) => (tz, name.to_string()),
            None => {
                p.push(
                    "daemon.timezone",
                    format!(
                        "unknown time zone {name:?}; expected one of {} or a fixed offset such as \"+07:00\"",
                        NAMED_ZONES.map(|(n, _)| n).join(", ")
                    ),
                );
                (
                    FixedOffset::east_opt(7 * 3600).expect("valid offset"),
                    name.to_string(),
                )
            }
        }
    }
}

/// `+07:00`, `-03:30`, `+0700` → seconds east of UTC.
fn parse_offset(s: &str) -> Option<i32> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// SQLite `synchronous` mode for the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync on every commit: a committed reading survives power loss (default).
    Full,
    /// fsync at checkpoints only: survives a crash of quantrac, may lose the last commits on power loss.
    Normal,
}

/// `[ledger]`: the SQLite compliance ledger.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSection {
    /// Path of the SQLite database file, relative to this config file.
    #[serde(default = "default_ledger_path")]
    pub path: String,
    /// How long readings, quarantined input and cleared alerts are kept. Rows a forwarder or the alert engine has not
    /// processed yet are never deleted.
    #[serde(default = "default_retention")]
    pub retention: DurationText,
    /// `full` (default: every commit fsynced) or `normal` (faster, may lose the last commits on power loss).
    #[serde(default = "default_synchronous")]
    pub synchronous: String,
    /// Most readings the writer puts in one transaction (group commit across source batches).
    #[serde(default = "default_max_transaction")]
    pub max_transaction_readings: usize,
}

fn default_ledger_path() -> String {
    "quantrac.db".into()
}
fn default_retention() -> DurationText {
    DurationText::new("5y")
}
fn default_synchronous() -> String {
    "full".into()
}
fn default_max_transaction() -> usize {
    20_000
}

impl Default for LedgerSection {
    fn default() -> Self {
        Self {
            path: default_ledger_path(),
            retention: default_retention(),
            synchronous: default_synchronous(),
            max_transaction_readings: default_max_transaction(),
        }
    }
}

/// Checked `[ledger]`.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub path: PathBuf,
    pub retention: Duration,
    pub synchronous: Synchronous,
    pub max_transaction_readings: usize,
}

impl LedgerSection {
    pub(super) fn validate(&self, p: &mut Problems, base: &Path) -> Ledger {
        let synchronous = match self.synchronous.as_str() {
            "full" => Synchronous::Full,
            "normal" => Synchronous::Normal,
            other => {
                p.push(
                    "ledger.synchronous",
                    format!("unknown mode {other:?}; expected one of full, normal"),
                );
                Synchronous::Full
            }
        };
        if self.max_transaction_readings == 0 {
            p.push("ledger.max_transaction_readings", "must be at least 1");
        }
        if self.path.trim().is_empty() {
            p.push("ledger.path", "must name a file");
        }
        Ledger {
            path: base.join(&self.path),
            retention: self.retention.check_positive(p, "ledger.retention"),
            synchronous,
            max_transaction_readings: self.max_transaction_readings.max(1),
        }
    }
}

/// `[pipeline]`: bounded queues. Full queues block the sources (backpressure); nothing is dropped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Batches waiting between sources and the processor.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// Events (committed batches, windows, compliance events, alerts) kept for slow live subscribers (dashboard,
    /// alerts) before they are told they lagged. The committed readings they hold are bounded apart (65,536: the
    /// ledger writer waits for them).
    #[serde(default = "default_broadcast")]
    pub broadcast_capacity: usize,
}

fn default_queue() -> usize {
    1024
}
fn default_broadcast() -> usize {
    16_384
}

impl Default for PipelineSection {
    fn default() -> Self {
        Self {
            queue_capacity: default_queue(),
            broadcast_capacity: default_broadcast(),
        }
    }
}

impl PipelineSection {
    pub(super) fn validate(&self, p: &mut Problems) {
        if self.queue_capacity == 0 {
            p.push("pipeline.queue_capacity", "must be at least 1");
        }
        if self.broadcast_capacity == 0 {
            p.push("pipeline.broadcast_capacity", "must be at least 1");
        }
    }
}

/// `[sim]`: the built-in simulator feeding stations that have a `[station.sim]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSection {
    /// Run the simulator (on in `quantrac demo`).
    #[serde(default)]
    pub enabled: bool,
    /// Seed for the noise, so a demo run can be repeated.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulated time runs this many times faster than the wall clock (1 = real time).
    #[serde(default = "default_speed")]
    pub speed: u32,
}

fn default_seed() -> u64 {
    2026
}
fn default_speed() -> u32 {
    1
}

impl Default for SimSection {
    fn default() -> Self {
        Self {
            enabled: false,
            seed: default_seed(),
            speed: default_speed(),
        }
    }
}

/// Checked `[sim]`.
#[derive(Debug, Clone)]
pub struct Sim {
    pub enabled: bool,
    pub seed: u64,
    pub speed: u32,
}

impl SimSection {
    pub(super) fn validate(&self, p: &mut Problems) -> Sim {
        if self.speed == 0 || self.speed > 3600 {
            p.push(
                "sim.speed",
                format!("{} is out of range; expected 1 to 3600", self.speed),
            );
        }
        Sim {
            enabled: self.enabled,
            seed: self.seed,
            speed: self.speed.clamp(1, 3600),
        }
    }
}
