//! One landing folder: scan (recursive), wait for files to settle, read them in batches, commit, then move each file
//! to `processed/` (or `rejected/` with a `.reason` file). Files are moved only after their batch's commit, so a
//! crash leaves them in place and the next start reads them again: the ledger's key makes the readings no-ops, and
//! quarantine rows of files already quarantined before the restart are not written twice.
//!
//! A file is taken when it has not been modified for `settle` and its size did not change since the previous scan
//! (an FTP upload still in progress keeps touching it). Only `*.txt` files are read; hidden files and folders
//! (`.name`, as FTP servers use for uploads in progress) and the processed/rejected folders are skipped.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::FixedOffset;
use tracing::{debug, error, info, warn};

use crate::circular10::{self as format, parse_file_name};
use crate::config::tt10::Tt10;
use crate::config::Config;
use crate::health::ConnectionState;
use crate::model::{Parameter, Quarantined, SourceKind, StationId, Timestamp, Unit};
use crate::pipeline::{Batch, Evidence};
use crate::source::SourceContext;

/// Bytes of an oversized file kept in quarantine.
const KEEP_OVERSIZED: usize = 64 * 1024;

/// What the scanner knows about a configured station.
#[derive(Debug, Clone)]
struct StationInfo {
    id: StationId,
    units: HashMap<Parameter, Unit>,
}

/// One landing folder and its settings. Immutable; the scan state lives in [`ScanState`].
#[derive(Debug, Clone)]
pub struct Landing {
    pub root: PathBuf,
    pub processed: PathBuf,
    pub rejected: PathBuf,
    settle: Duration,
    pub scan_interval: Duration,
    batch_files: usize,
    max_file_bytes: u64,
    tz: FixedOffset,
    /// Configured stations by upper-case id (file names are matched without regard to case).
    stations: Arc<HashMap<String, StationInfo>>,
    /// The ledger, read once at start to find files quarantined before a restart.
    ledger: PathBuf,
    /// Stations with no other source are fed by TT10 files only: the folder's health is theirs.
    tt10_only: Vec<String>,
}

/// What the scanner remembers between scans.
#[derive(Debug, Default)]
pub struct ScanState {
    /// Size and modification time of every file seen in the previous scan.
    seen: HashMap<PathBuf, (u64, SystemTime)>,
    /// Files whose batch committed but whose move failed: moved again, never read again.
    pending_moves: Vec<(PathBuf, PathBuf, Option<String>)>,
    /// Origins of TT10 quarantine rows from before this start (loaded on the first scan that finds files).
    quarantined_before: Option<HashSet<String>>,
}

/// A file ready to be read: its path and its path relative to the landing folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candidate {
    pub path: PathBuf,
    pub rel: PathBuf,
}

/// A read file: what goes into the batch, and where the file goes after the commit.
#[derive(Debug)]
pub struct ReadFile {
    pub candidate: Candidate,
    /// `None`: processed. `Some(reason)`: rejected whole.
    pub rejected: Option<String>,
    pub readings: Vec<crate::model::Reading>,
    pub quarantined: Vec<Quarantined>,
    /// The file as received, for a reading the processor refuses (a processed file).
    pub evidence: Option<Evidence>,
}

/// Why a landing folder cannot be scanned.
#[derive(Debug, thiserror::Error)]
pub enum LandingError {
    #[error("cannot read landing folder {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl Landing {
    pub fn new(config: &Config, root: &Path) -> Landing {
        let t: &Tt10 = &config.tt10;
        let stations = config
            .stations
            .iter()
            .map(|s| {
                let units = s
                    .parameters
                    .iter()
                    .map(|p| (p.parameter.clone(), p.unit.clone()))
                    .collect();
                (
                    s.id.as_str().to_ascii_uppercase(),
                    StationInfo {
                        id: s.id.clone(),
                        units,
                    },
                )
            })
            .collect();
        Landing {
            root: root.to_path_buf(),
            processed: t.processed_dir(root),
            rejected: t.rejected_dir(root),
            settle: t.settle,
            scan_interval: t.scan_interval,
            batch_files: t.batch_files,
            max_file_bytes: t.max_file_bytes,
            tz: config.timezone,
            stations: Arc::new(stations),
            ledger: config.ledger.path.clone(),
            tt10_only: config
                .stations
                .iter()
                .filter(|s| s.modbus.is_none() && s.mqtt.is_none() && s.sim.is_none())
                .map(|s| s.id.to_string())
                .collect(),
        }
    }

    /// The `Health` key of this folder.
    pub fn health_key(&self) -> String {
        format!("tt10 {}", self.root.display())
    }

    /// Settled `*.txt` files under the landing folder, sorted by path. Updates the sizes remembered in `state`.
    pub fn scan(
        &self,
        state: &mut ScanState,
        now: SystemTime,
    ) -> Result<Vec<Candidate>, LandingError> {
        let mut found = Vec::new();
        self.walk(&self.root, &mut found)?;
        let pending: HashSet<&PathBuf> = state.pending_moves.iter().map(|(p, _, _)| p).collect();
        let mut seen = HashMap::with_capacity(found.len());
        let mut ready = Vec::new();
        for (path, size, modified) in found {
            if pending.contains(&path) {
                continue;
            }
            let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
            let steady = state
                .seen
                .get(&path)
                .is_none_or(|&(s, m)| s == size && m == modified);
            if age >= self.settle && steady {
                let rel = path.strip_prefix(&self.root).unwrap_or(&path).to_path_buf();
                ready.push(Candidate {
                    path: path.clone(),
                    rel,
                });
            }
            seen.insert(path, (size, modified));
        }
        state.seen = seen;
        ready.sort();
        Ok(ready)
    }

    fn walk(
        &self,
        dir: &Path,
        out: &mut Vec<(PathBuf, u64, SystemTime)>,
    ) -> Result<(), LandingError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            // A sub-folder removed while scanning is not an error; the landing folder itself missing is.
            Err(e) if dir != self.root && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => {
                return Err(LandingError::Read {
                    path: dir.to_path_buf(),
                    error,
                })
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                if path != self.processed && path != self.rejected {
                    self.walk(&path, out)?;
                }
            } else if name.len() > 4
                && name.is_char_boundary(name.len() - 4)
                && name[name.len() - 4..].eq_ignore_ascii_case(".txt")
            {
                // Follows a symlink to a file; a vanished file is simply not there any more.
                if let Ok(md) = std::fs::metadata(&path) {
                    if md.is_file() {
                        let modified = md.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                        out.push((path, md.len(), modified));
                    }
                }
            }
        }
        Ok(())
    }

    /// Read and parse files into what their batch carries. Never fails: an unreadable file is rejected with the
    /// reason (and left in place if it vanished meanwhile).
    pub fn read(&self, files: &[Candidate], state: &mut ScanState) -> Vec<ReadFile> {
        if state.quarantined_before.is_none() && !files.is_empty() {
            state.quarantined_before = Some(self.load_quarantined_origins());
        }
        let before = state.quarantined_before.as_ref();
        files
            .iter()
            .filter_map(|c| {
                let mut f = self.read_one(c)?;
                let origin = c.path.display().to_string();
                // Quarantined before a restart (crash between commit and move): do not record it twice.
                if before.is_some_and(|b| b.contains(&origin)) {
                    f.quarantined.clear();
                }
                Some(f)
            })
            .collect()
    }

    fn load_quarantined_origins(&self) -> HashSet<String> {
        crate::ledger::Reader::open(&self.ledger)
            .and_then(|r| r.quarantined_origins(SourceKind::Tt10))
            .unwrap_or_else(|e| {
            warn!(error = %e, "Cannot read earlier TT10 quarantine rows; a file re-read after a crash may be quarantined twice.");
            HashSet::new()
        })
    }

    fn read_one(&self, c: &Candidate) -> Option<ReadFile> {
        let origin = c.path.display().to_string();
        let file_name = c
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let reject = |reason: String, raw: Vec<u8>, station: Option<&StationId>| {
            let mut q = Quarantined::new(SourceKind::Tt10, origin.clone(), reason.clone(), raw);
            if let Some(s) = station {
                q = q.with_station(s.as_str());
            }
            ReadFile {
                candidate: c.clone(),
                rejected: Some(reason),
                readings: Vec::new(),
                quarantined: vec![q],
                evidence: None,
            }
        };
        let size = std::fs::metadata(&c.path).ok()?.len();
        if size > self.max_file_bytes {
            let mut raw = Vec::new();
            use std::io::Read;
            if let Ok(f) = std::fs::File::open(&c.path) {
                let _ = f.take(KEEP_OVERSIZED as u64).read_to_end(&mut raw);
            }
            return Some(reject(
                format!(
                    "file of {size} bytes exceeds the {}-byte limit (tt10.max_file_bytes); the first {} bytes are kept",
                    self.max_file_bytes,
                    raw.len()
                ),
                raw,
                None,
            ));
        }
        let bytes = match std::fs::read(&c.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                return Some(reject(
                    format!("cannot read the file: {e}"),
                    Vec::new(),
                    None,
                ))
            }
        };
        let name = match parse_file_name(&file_name) {
            Ok(n) => n,
            Err(e) => return Some(reject(e.to_string(), bytes, None)),
        };
        let info = match name
            .station_id()
            .ok()
            .and_then(|id| self.stations.get(&id.as_str().to_ascii_uppercase()))
        {
            Some(i) => i,
            None => {
                let id = format!("{}_{}_{}", name.province, name.facility, name.station);
                return Some(reject(
                    format!(
                        "unknown station {id} (from the file name): it is not in the configuration"
                    ),
                    bytes,
                    None,
                ));
            }
        };
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t,
            Err(e) => {
                return Some(reject(
                    format!(
                        "file is not valid UTF-8 (invalid byte at offset {})",
                        e.valid_up_to()
                    ),
                    bytes,
                    Some(&info.id),
                ))
            }
        };
        let unit_of = |p: &Parameter| {
            info.units
                .get(p)
                .cloned()
                .or_else(|| p.standard_unit().map(Unit::new))
                .unwrap_or_else(|| Unit::new(""))
        };
        let parsed = format::parse_text(text, &info.id, self.tz, &unit_of);
        let q = |reason: String, raw: Vec<u8>| {
            Quarantined::new(SourceKind::Tt10, origin.clone(), reason, raw)
                .with_station(info.id.as_str())
        };
        let mut quarantined: Vec<Quarantined> = parsed
            .rejected
            .into_iter()
            .map(|r| q(r.error.to_string(), r.raw))
            .collect();
        // A symbol the station does not monitor is named here with the file as its origin.
        let mut readings = Vec::with_capacity(parsed.readings.len());
        for r in parsed.readings {
            if info.units.contains_key(&r.parameter) {
                readings.push(r);
            } else {
                quarantined.push(q(
                    format!(
                        "parameter {} is not monitored at station {}; add it to the station's parameters to accept it",
                        r.parameter, info.id
                    ),
                    format::write_content(std::slice::from_ref(&r), self.tz),
                ));
            }
        }
        if readings.is_empty() {
            let reason = match quarantined.first() {
                None => "the file holds no readings".to_string(),
                Some(first) if quarantined.len() == 1 => first.reason.clone(),
                Some(first) => format!(
                    "no line could be read ({} problems; first: {})",
                    quarantined.len(),
                    first.reason
                ),
            };
            return Some(reject(reason, bytes, Some(&info.id)));
        }
        Some(ReadFile {
            candidate: c.clone(),
            rejected: None,
            readings,
            quarantined,
            evidence: Some(Evidence {
                origin,
                raw: bytes,
                received: Timestamp::now(),
            }),
        })
    }

    /// Move a file after its batch committed: to processed (or rejected, with the reason beside it), keeping its
    /// path relative to the landing folder; an existing file of that name is not overwritten (`.1`, `.2`, … added).
    pub fn move_file(
        &self,
        from: &Path,
        rel: &Path,
        rejected: Option<&str>,
    ) -> std::io::Result<PathBuf> {
        let dir = if rejected.is_some() {
            &self.rejected
        } else {
            &self.processed
        };
        let mut to = dir.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut n = 0;
        while to.exists() {
            n += 1;
            let mut name = dir.join(rel).into_os_string();
            name.push(format!(".{n}"));
            to = PathBuf::from(name);
        }
        if let Some(reason) = rejected {
            let mut r = to.clone().into_os_string();
            r.push(".reason");
            std::fs::write(PathBuf::from(r), format!("{reason}\n"))?;
        }
        match std::fs::rename(from, &to) {
            Ok(()) => Ok(to),
            // Another file system (absolute processed folder elsewhere): copy, then remove.
            Err(e) if e.raw_os_error() == Some(18) => {
                std::fs::copy(from, &to)?;
                std::fs::remove_file(from)?;
                Ok(to)
            }
            Err(e) => Err(e),
        }
    }

    /// Move every file of a committed batch; a failed move is kept in `state` and retried after the next scan.
    pub fn move_all(&self, files: Vec<(PathBuf, PathBuf, Option<String>)>, state: &mut ScanState) {
        for (from, rel, rejected) in files {
            match self.move_file(&from, &rel, rejected.as_deref()) {
                Ok(to) => debug!(from = %from.display(), to = %to.display(), "TT10 file moved."),
                Err(e) if !from.exists() => {
                    warn!(file = %from.display(), error = %e, "TT10 file vanished after its commit; nothing to move.")
                }
                Err(e) => {
                    error!(file = %from.display(), error = %e, "Cannot move a committed TT10 file; retrying after the next scan (it will not be read again).");
                    state.pending_moves.push((from, rel, rejected));
                }
            }
        }
    }

    fn retry_moves(&self, state: &mut ScanState) {
        let pending = std::mem::take(&mut state.pending_moves);
        if !pending.is_empty() {
            self.move_all(pending, state);
        }
    }
}

/// One landing folder per `[tt10] landing` entry. (The simulated stations that write files are the simulator's.)
pub fn landings(config: &Config) -> Vec<Landing> {
    config
        .tt10
        .landing
        .iter()
        .map(|root| Landing::new(config, root))
        .collect()
}

/// Scan and ingest until `shutdown`. A batch in flight at shutdown still commits and its files are moved.
pub async fn run(ctx: SourceContext<Landing>) {
    let SourceContext {
        config: landing,
        ingest,
        health,
        metrics,
        shutdown,
    } = ctx;
    let key = landing.health_key();
    health.register(
        &key,
        ConnectionState::new(SourceKind::Tt10, landing.tt10_only.clone()),
    );
    let landing = Arc::new(landing);
    if let Err(e) = std::fs::create_dir_all(&landing.root) {
        warn!(folder = %landing.root.display(), error = %e, "Cannot create the TT10 landing folder.");
    }
    info!(folder = %landing.root.display(), "Watching TT10 landing folder.");
    let mut state = ScanState::default();
    let mut every = tokio::time::interval(landing.scan_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let l = landing.clone();
        let scanned = tokio::task::spawn_blocking(move || {
            l.retry_moves(&mut state);
            let r = l.scan(&mut state, SystemTime::now());
            (state, r)
        })
        .await;
        let Ok((s, result)) = scanned else {
            error!(folder = %landing.root.display(), "TT10 scan task failed; the folder is no longer watched.");
            return;
        };
        state = s;
        let files = match result {
            Ok(f) => {
                if last_error.take().is_some() {
                    info!(folder = %landing.root.display(), "TT10 landing folder readable again.");
                }
                health.success(&key, 0);
                f
            }
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_ref() != Some(&msg) {
                    warn!(folder = %landing.root.display(), error = %msg, "TT10 landing folder cannot be scanned; retrying.");
                }
                health.failure(&key, msg.clone());
                last_error = Some(msg);
                continue;
            }
        };
        for chunk in files.chunks(landing.batch_files) {
            if shutdown.is_cancelled() {
                return;
            }
            let (l, chunk) = (landing.clone(), chunk.to_vec());
            let Ok((s, read)) = tokio::task::spawn_blocking(move || {
                let read = l.read(&chunk, &mut state);
                (state, read)
            })
            .await
            else {
                error!(folder = %landing.root.display(), "TT10 read task failed; the folder is no longer watched.");
                return;
            };
            state = s;
            let mut batch = Batch::new(SourceKind::Tt10);
            let mut moves = Vec::with_capacity(read.len());
            let (mut processed, mut rejected) = (0u64, 0u64);
            for f in read {
                let from = batch.readings.len();
                batch.readings.extend(f.readings);
                if let Some(e) = f.evidence {
                    batch.read_from(from, e);
                }
                batch.quarantined.extend(f.quarantined);
                if f.rejected.is_some() {
                    rejected += 1;
                } else {
                    processed += 1;
                }
                moves.push((f.candidate.path, f.candidate.rel, f.rejected));
            }
            let n = batch.readings.len() as u64;
            if !batch.is_empty() {
                if let Err(e) = ingest.submit(batch).await {
                    // Not committed: the files stay where they are and are read again after the next scan.
                    warn!(folder = %landing.root.display(), error = %e, "TT10 batch not committed; its files stay in the landing folder.");
                    health.failure(&key, e.to_string());
                    break;
                }
            }
            health.success(&key, n);
            metrics.tt10_files_processed.fetch_add(processed, Relaxed);
            metrics.tt10_files_rejected.fetch_add(rejected, Relaxed);
            let l = landing.clone();
            let Ok(s) = tokio::task::spawn_blocking(move || {
                l.move_all(moves, &mut state);
                state
            })
            .await
            else {
                error!(folder = %landing.root.display(), "TT10 move task failed; the folder is no longer watched.");
                return;
            };
            state = s;
        }
        if !files.is_empty() {
            // Only files present at start can have been committed before a crash: stop checking afterwards.
            state.quarantined_before = Some(HashSet::new());
        }
    }
}
