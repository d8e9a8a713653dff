//! Transmission of Circular 10 files to the authorities (`[[forward.tt10]]`): a plant to the provincial department,
//! a department to the Ministry. Each target follows the ledger from its own cursor, like the InfluxDB forwarder.
//!
//! - one file per station and second, the standard name, written by [`crate::circular10`]'s writer, holding every
//!   reading the ledger has for it; a late reading re-sends its file complete under the same name (a correction);
//! - uploaded under a hidden temporary name, then renamed, so a receiver never reads half a file; re-sending a name
//!   sends the same bytes;
//! - the cursor moves only after the files before it are uploaded: an outage or a restart delays, never loses, and
//!   retention waits for the cursor;
//! - every call has the target's timeout; a failed connection is dropped and reopened with capped jittered backoff;
//!   a refused login or host key marks the target down and retries slowly, keeping the data.
//!
//! Files: [`remote`] (one connection, whatever the protocol), `ftp.rs`, `sftp.rs`, [`transfer`] (errors, deadlines,
//! remote paths), [`metrics`], and the sending loop here.

mod ftp;
pub mod metrics;
pub mod remote;
mod sftp;
pub mod transfer;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::circular10::{file_name, format_tt10_time, write_line_as, Line, MaintenanceAs};
use crate::config::transmit::{Start, Target};
use crate::health::{Backoff, ConnectionState, Health};
use crate::ledger::transmit::{CursorStart, PendingFile, TransmitStore};
use crate::ledger::{Held, LedgerError};
use crate::model::{SourceKind, StationId, Timestamp};
use crate::redact::Redactor;
use remote::Connection;
use transfer::{remote_dir, TransmitError};

/// A connection unused this long is closed (servers drop idle control connections; a plant sends every 5 minutes).
const IDLE_CLOSE: Duration = Duration::from_secs(30);
/// How often an idle target looks for new readings.
const POLL: Duration = Duration::from_millis(500);
/// Files whose last uploaded content this process remembers (not sent again when unchanged).
const REMEMBERED: usize = 100_000;

/// Health key of a target.
pub fn health_key(name: &str) -> String {
    format!("tt10-send {name}")
}

/// Where a new target's cursor starts: after the newest reading (`start = "now"`), or before the first (a date to
/// backfill from; older readings are skipped by their observation time).
pub fn cursor_start(t: &Target) -> CursorStart {
    match t.start {
        Start::Now => CursorStart::Newest,
        Start::From(_) => CursorStart::Beginning,
    }
}

/// Why a target stopped.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Whether a file went out, or shutdown came first.
enum Sent {
    Done,
    Stopped,
}

/// Send to one target until `shutdown`. Stops between uploads; what was not sent stays in the ledger.
pub async fn run(
    target: Target,
    ledger: PathBuf,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    let key = health_key(&target.name);
    health.register(
        &key,
        ConnectionState::new(SourceKind::Api, target.receives.clone()),
    );
    let name = target.name.clone();
    let store = Held::new(TransmitStore::open(&ledger, &name)?);
    let start = cursor_start(&target);
    let (cursor, origin) = store.call(move |s| s.start(start)).await?;
    info!(target = %name, protocol = target.protocol.as_str(), host = %target.host, cursor, "Circular 10 transmission started.");
    let mut sender = Sender {
        backoff: Backoff::new(Duration::from_millis(500), target.max_backoff),
        target,
        store,
        health,
        key,
        shutdown,
        conn: None,
        last_use: Instant::now(),
        next_slot: None,
        remembered: HashMap::new(),
    };
    let result = sender.follow(cursor, origin).await;
    if let Some(c) = sender.conn.take() {
        c.close(&sender.target).await;
    }
    info!(target = %name, "Circular 10 transmission stopped; unsent readings stay in the ledger.");
    result
}

struct Sender {
    target: Target,
    store: Held<TransmitStore>,
    health: Health,
    key: String,
    shutdown: CancellationToken,
    conn: Option<Connection>,
    last_use: Instant,
    backoff: Backoff,
    /// Rate limit: the earliest time of the next upload.
    next_slot: Option<Instant>,
    /// (station, second) → hash of the content last uploaded by this process.
    remembered: HashMap<(String, i64), u64>,
}

impl Sender {
    /// Rounds from the cursor until shutdown.
    async fn follow(&mut self, mut cursor: i64, origin: i64) -> Result<(), SinkError> {
        let since = match self.target.start {
            Start::From(ts) => Some(ts.millis()),
            Start::Now => None,
        };
        let mut waited = false;
        while !self.shutdown.is_cancelled() {
            let (limit, target) = (self.target.batch_readings, self.target.clone());
            let round = self
                .store
                .call(move |s| s.round(cursor, origin, limit, since, &|id| target.sends(id)))
                .await?;
            let Some(last) = round.last_seq else {
                self.idle().await?;
                if self.pause(POLL).await {
                    break;
                }
                continue;
            };
            // Let the rest of a station's readings of one time commit before its file goes out.
            if round.readings < limit && !waited && !self.target.batch_wait.is_zero() {
                waited = true;
                if self.pause(self.target.batch_wait).await {
                    break;
                }
                continue;
            }
            waited = false;
            let mut done = 0u64;
            for file in &round.files {
                if let Sent::Stopped = self.send(file).await {
                    // Everything before this file is out: keep that much.
                    let safe = file.first_new_seq - 1;
                    if safe > cursor {
                        self.store.call(move |s| s.set_cursor(safe)).await?;
                    }
                    return Ok(());
                }
                done += 1;
            }
            self.store.call(move |s| s.set_cursor(last)).await?;
            cursor = last;
            if done > 0 {
                self.health.success(&self.key, 0);
            }
            self.update_backlog().await;
        }
        Ok(())
    }

    /// Nothing to send: report the backlog, close a connection left unused.
    async fn idle(&mut self) -> Result<(), SinkError> {
        self.update_backlog().await;
        if self.conn.is_some() && self.last_use.elapsed() >= IDLE_CLOSE {
            if let Some(c) = self.conn.take() {
                c.close(&self.target).await;
            }
        }
        Ok(())
    }

    /// Upload one file, retrying until it is out or shutdown comes.
    async fn send(&mut self, file: &PendingFile) -> Sent {
        let Ok(station) = StationId::parse(&file.station) else {
            warn!(target = %self.target.name, station = %file.station, "A station code in the ledger is not a Circular 10 id; its file is skipped.");
            return Sent::Done;
        };
        let tz = self.target.timezone;
        let ts = Timestamp(file.second);
        let name = file_name(&station, ts, tz);
        let dir = remote_dir(
            &self.target.path,
            self.target.layout,
            station.as_str(),
            &format_tt10_time(ts, tz),
        );
        let bytes = content(file, tz, self.target.maintenance_as);
        if bytes.is_empty() {
            // Every reading of this second is in maintenance and `maintenance_as = "omit"`: no file.
            return Sent::Done;
        }
        let id = (file.station.clone(), file.second);
        let hash = digest(&bytes);
        if self.remembered.get(&id) == Some(&hash) {
            // This process uploaded these very bytes under this name already (a round cut between two commits).
            return Sent::Done;
        }
        loop {
            if self.pace().await {
                return Sent::Stopped;
            }
            let delay = match self.try_upload(&dir, &name, &bytes).await {
                Ok(()) => break,
                Err(e) => self.failed(&e),
            };
            // While the target is down its backlog still grows: keep it current for /metrics, the API and alerts.
            self.update_backlog().await;
            if self.pause(delay).await {
                return Sent::Stopped;
            }
        }
        self.backoff.reset();
        self.last_use = Instant::now();
        let delay_ms = Timestamp::now().millis() - file.second;
        let deadline_ms = self.target.deadline.as_millis() as i64;
        self.health.transmission(&self.key, deadline_ms, |t| {
            t.record(delay_ms, file.correction)
        });
        self.health.success(&self.key, 1);
        if self.remembered.len() >= REMEMBERED {
            self.remembered.clear();
        }
        self.remembered.insert(id, hash);
        Sent::Done
    }

    async fn try_upload(
        &mut self,
        dir: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), TransmitError> {
        if self.conn.is_none() {
            self.health.reconnecting(&self.key);
            self.conn = Some(Connection::open(&self.target).await?);
            info!(target = %self.target.name, host = %self.target.host, "Connected to the Circular 10 receiver.");
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let result = conn.upload(&self.target, dir, name, bytes).await;
        if result.is_err() {
            // A failed or timed-out call leaves the session in an unknown state: start afresh.
            self.conn = None;
        }
        result
    }

    /// Record a failure; how long to wait before the next attempt.
    /// The error's text has URLs cut and the target's password masked (a server may echo what it was sent).
    fn failed(&mut self, e: &TransmitError) -> Duration {
        let text =
            Redactor::new(self.target.password.iter().map(|p| p.expose())).text(&e.to_string());
        self.health.failure(&self.key, text.clone());
        if e.is_fault() {
            error!(target = %self.target.name, error = %text, "Circular 10 transmission refused; data is kept and sent once fixed.");
            self.target.max_backoff
        } else {
            warn!(target = %self.target.name, error = %text, "Circular 10 upload failed; retrying.");
            self.backoff.next_delay()
        }
    }

    /// Wait for the rate limit's next slot. `true` when shutdown came first.
    async fn pace(&mut self) -> bool {
        if self.target.rate_limit <= 0.0 {
            return self.shutdown.is_cancelled();
        }
        let now = Instant::now();
        let slot = self.next_slot.map_or(now, |s| s.max(now));
        self.next_slot = Some(slot + Duration::from_secs_f64(1.0 / self.target.rate_limit));
        tokio::select! {
            _ = self.shutdown.cancelled() => true,
            _ = tokio::time::sleep_until(slot) => false,
        }
    }

    /// Sleep, or return `true` at once when shutdown comes first.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => true,
            _ = tokio::time::sleep(d) => false,
        }
    }

    async fn update_backlog(&self) {
        if let Ok(b) = self.store.call(|s| s.backlog()).await {
            self.health.set_backlog(&self.key, b);
        }
    }
}

/// The file's content: one CRLF line per reading, in the order the ledger gave (parameter, then time); maintenance
/// readings as the target's `maintenance_as` says. Empty when every reading is left out.
fn content(file: &PendingFile, tz: chrono::FixedOffset, maintenance: MaintenanceAs) -> Vec<u8> {
    let mut s = String::with_capacity(file.readings.len() * 40);
    for r in &file.readings {
        let line = Line {
            parameter: &r.parameter,
            value: r.value,
            unit: &r.unit,
            ts: Timestamp(r.ts),
            status: r.status,
        };
        write_line_as(&mut s, line, tz, maintenance);
    }
    s.into_bytes()
}

fn digest(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}
