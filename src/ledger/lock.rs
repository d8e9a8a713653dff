//! One writer per ledger (DESIGN.md contract 10). The writing process (`run`, `demo`, `ingest`) holds an exclusive
//! advisory lock on `<ledger>.lock` for as long as its [`Ledger`](super::Ledger) is open, and writes its PID there so
//! a refused second writer can say who holds the ledger. The kernel releases the lock when the process exits, even on
//! SIGKILL, so a crash never leaves the ledger locked. Readers (exports, reports, `verify`) take no lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::LedgerError;

/// Held while the ledger is open for writing; dropping it releases the lock.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

/// The lock file beside a ledger.
pub fn lock_path(ledger: &Path) -> PathBuf {
    let mut name = ledger.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl WriterLock {
    /// Take the ledger's writer lock, or say which process holds it.
    pub fn acquire(ledger: &Path) -> Result<WriterLock, LedgerError> {
        let path = lock_path(ledger);
        let io = |source| LedgerError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(LedgerError::InUse {
                    path: ledger.to_path_buf(),
                    holder: holder.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(WriterLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_naming_the_holder_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("q.db");
        let first = WriterLock::acquire(&ledger).unwrap();
        let e = WriterLock::acquire(&ledger).unwrap_err();
        assert!(
            matches!(e, LedgerError::InUse { holder: Some(pid), .. } if pid == std::process::id()),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains(&format!("PID {}", std::process::id())),
            "{e}"
        );
        drop(first);
        assert!(WriterLock::acquire(&ledger).is_ok());
    }
}
