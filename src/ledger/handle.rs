//! The one way async code reaches the ledger. Ledger calls block (SQLite), so they run on tokio's blocking pool:
//! - [`LedgerHandle::read`] opens a read-only [`Reader`] for one call (HTTP requests);
//! - [`LedgerHandle::write`] opens a [`SideWriter`] for one call (the side tables: notes, audit);
//! - [`Held`] keeps one connection-holding store open across many calls, one call at a time (the alert runner,
//!   the outbox delivery tasks, the forwarders), so a busy task does not reopen the file on every step.
//!
//! A task that panics or is cancelled comes back as [`LedgerError::Task`], with the join error as its source.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{LedgerError, Reader, SideWriter};

/// Where the ledger is, for async callers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LedgerHandle {
    path: Arc<Path>,
}

impl LedgerHandle {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Arc::from(path.into()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the blocking pool with a read-only connection of its own.
    pub async fn read<T, E>(
        &self,
        f: impl FnOnce(&Reader) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<LedgerError> + Send + 'static,
    {
        let path = self.path.clone();
        blocking(move || f(&Reader::open(&path)?)).await
    }

    /// Run `f` on the blocking pool with a write connection of its own for the side tables.
    pub async fn write<T, E>(
        &self,
        f: impl FnOnce(&mut SideWriter) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<LedgerError> + Send + 'static,
    {
        let path = self.path.clone();
        blocking(move || f(&mut SideWriter::open(&path)?)).await
    }
}

/// A store (a connection and what it caches) kept open across async calls; one call runs at a time. Cheap to clone.
pub struct Held<S> {
    inner: Arc<Mutex<S>>,
}

impl<S> Clone for Held<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S: Send + 'static> Held<S> {
    pub fn new(store: S) -> Self {
        Self {
            inner: Arc::new(Mutex::new(store)),
        }
    }

    /// Run `f` on the blocking pool with the store.
    pub async fn call<T, E>(
        &self,
        f: impl FnOnce(&mut S) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<LedgerError> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            // A panic in an earlier call leaves the store as it was between statements: keep using it.
            let mut store = inner.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut store)
        })
        .await
    }
}

async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<LedgerError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| E::from(LedgerError::Task { source }))?
}
