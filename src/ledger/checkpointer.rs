//! Background WAL checkpoints, so the ledger writer spends its time on commits. SQLite's automatic checkpoint runs
//! inside the commit that crosses the threshold (about a tenth of the writer's time while a backlog drains); this
//! thread copies committed WAL frames into the main file instead, in PASSIVE mode, which never blocks the writer or
//! the readers. The writer keeps a higher automatic checkpoint as a safety net.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tracing::{info, warn};

use super::LedgerError;

/// How often the thread looks for new commits. Frames rewritten by several commits in between are copied once.
const INTERVAL: Duration = Duration::from_millis(200);
/// The writer's own automatic checkpoint while this thread runs, in pages (40 MB of WAL at 4 KiB pages).
pub const SAFETY_NET_PAGES: i64 = 10_000;

pub struct Checkpointer {
    dirty: Arc<AtomicBool>,
    stop: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(path: &Path) -> Result<Checkpointer, LedgerError> {
        let conn = Connection::open(path).map_err(|error| LedgerError::Open {
            path: path.to_path_buf(),
            error,
        })?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let dirty = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = sync_channel::<()>(1);
        let flag = dirty.clone();
        let thread = std::thread::Builder::new()
            .name("ledger-checkpoint".into())
            .spawn(move || {
                // Logged when checkpoints start failing and when they work again, not every 200 ms.
                let mut failing = false;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    if !flag.swap(false, Ordering::AcqRel) {
                        continue;
                    }
                    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        Err(e) if !failing => {
                            failing = true;
                            warn!(error = %e, "Background WAL checkpoints fail; the writer's own checkpoint takes over.");
                        }
                        Ok(()) if failing => {
                            failing = false;
                            info!("Background WAL checkpoints work again.");
                        }
                        _ => {}
                    }
                }
            })
            .map_err(|e| LedgerError::Thread(e.to_string()))?;
        Ok(Checkpointer {
            dirty,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// New frames were committed.
    pub fn mark(&self) {
        self.dirty.store(true, Ordering::Release);
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
