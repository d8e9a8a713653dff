//! `[[forward.tt10]]`: targets that receive the ledger's readings as Circular 10 files over FTP, explicit FTPS or
//! SFTP (a plant → the provincial department, a department → the Ministry). Each keeps its own cursor in the ledger.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{FixedOffset, NaiveDate, TimeZone};
use serde::Deserialize;

use super::alert::glob_match;
use super::duration::DurationText;
use super::{Problems, Secret};
use crate::circular10::MaintenanceAs;
use crate::model::Timestamp;

/// One target as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// Name of this target; its cursor is `tt10:<name>:readings` in the ledger.
    pub name: String,
    /// `ftp`, `ftps` (explicit TLS, `AUTH TLS`, passive mode) or `sftp`.
    pub protocol: String,
    pub host: String,
    /// Default 21 (FTP, FTPS) or 22 (SFTP).
    pub port: Option<u16>,
    pub username: String,
    /// `${ENV_VAR}` expands; or give `password_file`. SFTP may use `private_key_file` instead.
    pub password: Option<String>,
    pub password_file: Option<String>,
    /// SFTP: an OpenSSH private key file (not passphrase-protected); tried before the password.
    pub private_key_file: Option<String>,
    /// SFTP: the server's host key fingerprint as `ssh-keygen -lf` prints it (`SHA256:…`). Required: a transmission
    /// to the authorities never trusts an unknown server.
    pub host_key: Option<String>,
    /// FTPS: an extra CA certificate (PEM) for a private server; the public web roots are trusted as well.
    pub ca_file: Option<String>,
    /// Remote folder the files go into (`""`: the login folder).
    #[serde(default)]
    pub path: String,
    /// `flat` (every file in `path`) or `station_date` (`path/<station>/yyyy/MM/dd/`).
    #[serde(default = "default_layout")]
    pub layout: String,
    /// Station ids (or patterns with `*`) this target receives. Empty: every station.
    #[serde(default)]
    pub stations: Vec<String>,
    /// Where a new target starts: `now` (readings committed from its first start on) or a date `yyyy-mm-dd` (local
    /// time) to backfill every reading observed since then.
    #[serde(default = "default_start")]
    pub start: String,
    /// Most files sent per second (0: no limit).
    #[serde(default)]
    pub rate_limit: f64,
    /// Deadline of every network call (connect, login, each command, each upload).
    #[serde(default = "default_timeout")]
    pub timeout: DurationText,
    /// Longest wait between reconnects.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: DurationText,
    /// How long to wait for the rest of a station's readings of one time before sending its file, once the first
    /// has committed (sources that commit parameters separately).
    #[serde(default = "default_batch_wait")]
    pub batch_wait: DurationText,
    /// Most readings read from the ledger per round (the cursor moves after each round's files are sent).
    #[serde(default = "default_batch_readings")]
    pub batch_readings: usize,
    /// The regulatory transmission deadline (observation → upload) the delay is measured against.
    #[serde(default = "default_deadline")]
    pub deadline: DurationText,
    /// How maintenance readings (status `03`, not in the Circular) are sent: `"01"` (the default, as calibration),
    /// `"02"` (as device error) or `"omit"` (left out of the file).
    #[serde(default = "default_maintenance_as")]
    pub maintenance_as: String,
}

fn default_layout() -> String {
    "flat".into()
}
fn default_start() -> String {
    "now".into()
}
fn default_timeout() -> DurationText {
    DurationText::new("30s")
}
fn default_max_backoff() -> DurationText {
    DurationText::new("5m")
}
fn default_batch_wait() -> DurationText {
    DurationText::new("2s")
}
fn default_batch_readings() -> usize {
    5000
}
fn default_deadline() -> DurationText {
    DurationText::new("5m")
}
fn default_maintenance_as() -> String {
    MaintenanceAs::default().as_str().into()
}

/// `maintenance_as` checked at `key`.
pub(super) fn maintenance_as(s: &str, p: &mut Problems, key: &str) -> MaintenanceAs {
    MaintenanceAs::parse(s).unwrap_or_else(|| {
        p.push(
            key.to_string(),
            format!(
                "{s:?} is not a way to send maintenance readings (the Circular has no status 03); expected {}",
                MaintenanceAs::NAMES
            ),
        );
        MaintenanceAs::default()
    })
}

/// How the files are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Ftp,
    /// Explicit FTPS (`AUTH TLS` on the FTP port), data connections protected too.
    Ftps,
    Sftp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ftp => "ftp",
            Protocol::Ftps => "ftps",
            Protocol::Sftp => "sftp",
        }
    }
}

/// Where files go on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Flat,
    /// `<station>/yyyy/MM/dd/`, as dataloggers lay them out.
    StationDate,
}

/// Where a new target's cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the ledger's newest reading when the target first starts.
    Now,
    /// At the beginning, sending readings observed from this time on.
    From(Timestamp),
}

/// A checked target.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Option<Secret>,
    pub private_key_file: Option<PathBuf>,
    pub host_key: Option<String>,
    pub ca_file: Option<PathBuf>,
    /// Without a trailing `/`; empty for the login folder.
    pub path: String,
    pub layout: Layout,
    /// Station patterns; empty: all.
    pub stations: Vec<String>,
    /// The configured stations this target receives.
    pub receives: Vec<String>,
    pub start: Start,
    /// Files per second; 0: no limit.
    pub rate_limit: f64,
    pub timeout: Duration,
    pub max_backoff: Duration,
    pub batch_wait: Duration,
    pub batch_readings: usize,
    pub deadline: Duration,
    /// How maintenance readings are written (`01`, `02` or left out).
    pub maintenance_as: MaintenanceAs,
    /// The daemon's time zone: file names and times are local.
    pub timezone: FixedOffset,
}

impl Target {
    /// Whether this target receives the station `id`.
    pub fn sends(&self, id: &str) -> bool {
        self.stations.is_empty() || self.stations.iter().any(|p| glob_match(p, id))
    }
}

/// Check every `[[forward.tt10]]` table. `stations`: the configured station ids (a plain id in `stations` must name
/// one of them).
pub(super) fn validate(
    sections: &[TargetSection],
    p: &mut Problems,
    base: &Path,
    stations: &[String],
    timezone: FixedOffset,
) -> Vec<Target> {
    let mut out = Vec::new();
    for (i, t) in sections.iter().enumerate() {
        let k = format!("forward.tt10[{i}]");
        check_name(t, &sections[..i], p, &k);
        let protocol = protocol(t, p, &k);
        if t.host.trim().is_empty() {
            p.push(
                format!("{k}.host"),
                "must name the server, e.g. \"ftp.monre.gov.vn\"",
            );
        }
        if t.username.trim().is_empty() {
            p.push(format!("{k}.username"), "must not be empty");
        }
        let password = Secret::resolve(
            t.password.as_deref(),
            t.password_file.as_deref(),
            base,
            p,
            &format!("{k}.password"),
        );
        let private_key_file = t.private_key_file.as_ref().map(|f| base.join(f));
        let host_key = check_credentials(t, protocol, &password, p, &k);
        let layout = match t.layout.as_str() {
            "flat" => Layout::Flat,
            "station_date" => Layout::StationDate,
            other => {
                p.push(
                    format!("{k}.layout"),
                    format!("unknown layout {other:?}; expected \"flat\" or \"station_date\""),
                );
                Layout::Flat
            }
        };
        for (j, pat) in t.stations.iter().enumerate() {
            if !pat.contains('*') && !stations.iter().any(|s| s == pat) {
                p.push(
                    format!("{k}.stations[{j}]"),
                    format!("no station has id {pat:?}; use a configured station id or a pattern with *"),
                );
            } else if pat.contains('*') && !stations.iter().any(|s| glob_match(pat, s)) {
                p.push(
                    format!("{k}.stations[{j}]"),
                    format!("the pattern {pat:?} matches no configured station"),
                );
            }
        }
        let start = start(&t.start, timezone).unwrap_or_else(|| {
            p.push(
                format!("{k}.start"),
                format!("{:?} is not \"now\" or a date yyyy-mm-dd", t.start),
            );
            Start::Now
        });
        if !t.rate_limit.is_finite() || t.rate_limit < 0.0 {
            p.push(
                format!("{k}.rate_limit"),
                format!(
                    "{} is not a number of files per second (0 for no limit)",
                    t.rate_limit
                ),
            );
        }
        if !(1..=100_000).contains(&t.batch_readings) {
            p.push(
                format!("{k}.batch_readings"),
                format!("{} is out of range; expected 1 to 100000", t.batch_readings),
            );
        }
        if t.path.contains(['\r', '\n']) {
            p.push(format!("{k}.path"), "must not contain line breaks");
        }
        out.push(Target {
            name: t.name.clone(),
            protocol,
            host: t.host.trim().to_string(),
            port: t.port.unwrap_or(match protocol {
                Protocol::Sftp => 22,
                _ => 21,
            }),
            username: t.username.clone(),
            password,
            private_key_file,
            host_key,
            ca_file: t.ca_file.as_ref().map(|f| base.join(f)),
            path: t.path.trim_end_matches('/').to_string(),
            layout,
            stations: t.stations.clone(),
            receives: stations
                .iter()
                .filter(|s| t.stations.is_empty() || t.stations.iter().any(|p| glob_match(p, s)))
                .cloned()
                .collect(),
            start,
            rate_limit: if t.rate_limit.is_finite() {
                t.rate_limit.max(0.0)
            } else {
                0.0
            },
            timeout: t.timeout.check_positive(p, &format!("{k}.timeout")),
            max_backoff: t.max_backoff.check_positive(p, &format!("{k}.max_backoff")),
            batch_wait: t.batch_wait.check(p, &format!("{k}.batch_wait")),
            batch_readings: t.batch_readings.clamp(1, 100_000),
            deadline: t.deadline.check_positive(p, &format!("{k}.deadline")),
            maintenance_as: maintenance_as(&t.maintenance_as, p, &format!("{k}.maintenance_as")),
            timezone,
        });
    }
    out
}

fn check_name(t: &TargetSection, before: &[TargetSection], p: &mut Problems, k: &str) {
    if t.name.trim().is_empty() || t.name.contains(':') {
        p.push(
            format!("{k}.name"),
            format!(
                "{:?} is not a usable name; give a non-empty name without ':'",
                t.name
            ),
        );
    }
    if before.iter().any(|o| o.name == t.name) {
        p.push(
            format!("{k}.name"),
            format!(
                "duplicate target name {:?}; each target keeps its own cursor",
                t.name
            ),
        );
    }
}

fn protocol(t: &TargetSection, p: &mut Problems, k: &str) -> Protocol {
    match t.protocol.as_str() {
        "ftp" => Protocol::Ftp,
        "ftps" => Protocol::Ftps,
        "sftp" => Protocol::Sftp,
        other => {
            p.push(
                format!("{k}.protocol"),
                format!("unknown protocol {other:?}; expected \"ftp\", \"ftps\" or \"sftp\""),
            );
            Protocol::Ftp
        }
    }
}

/// What each protocol needs to log in; returns the SFTP host key fingerprint.
fn check_credentials(
    t: &TargetSection,
    protocol: Protocol,
    password: &Option<Secret>,
    p: &mut Problems,
    k: &str,
) -> Option<String> {
    // A password given but unreadable is reported once, by `Secret::resolve`.
    let password_given = password.is_some() || t.password.is_some() || t.password_file.is_some();
    match protocol {
        Protocol::Sftp => {
            if !password_given && t.private_key_file.is_none() {
                p.push(
                    format!("{k}.private_key_file"),
                    "SFTP needs a private_key_file or a password",
                );
            }
            if t.ca_file.is_some() {
                p.push(
                    format!("{k}.ca_file"),
                    "is for FTPS; SFTP checks the server by host_key",
                );
            }
            match t.host_key.as_deref().map(str::trim) {
                Some(f) if f.starts_with("SHA256:") && f.len() > 7 => Some(f.to_string()),
                Some(f) => {
                    p.push(
                        format!("{k}.host_key"),
                        format!("{f:?} is not a SHA256 fingerprint; expected \"SHA256:…\" as `ssh-keygen -lf <host key>.pub` prints it"),
                    );
                    None
                }
                None => {
                    p.push(
                        format!("{k}.host_key"),
                        "SFTP needs the server's host key fingerprint (\"SHA256:…\", from `ssh-keygen -lf`); quantrac never trusts an unknown server",
                    );
                    None
                }
            }
        }
        Protocol::Ftp | Protocol::Ftps => {
            if !password_given {
                p.push(
                    format!("{k}.password"),
                    "FTP needs a password (or password_file)",
                );
            }
            for (key, set) in [
                ("private_key_file", t.private_key_file.is_some()),
                ("host_key", t.host_key.is_some()),
            ] {
                if set {
                    p.push(format!("{k}.{key}"), "is for SFTP only");
                }
            }
            if protocol == Protocol::Ftp && t.ca_file.is_some() {
                p.push(format!("{k}.ca_file"), "is for FTPS; plain FTP has no TLS");
            }
            None
        }
    }
}

/// `now` or `yyyy-mm-dd` (local midnight).
fn start(s: &str, tz: FixedOffset) -> Option<Start> {
    let s = s.trim();
    if s == "now" {
        return Some(Start::Now);
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let local = date.and_hms_opt(0, 0, 0)?;
    tz.from_local_datetime(&local)
        .single()
        .map(|d| Start::From(Timestamp::from_datetime(&d)))
}
