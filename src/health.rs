//! Connection health of every source (Modbus device, MQTT broker, landing folder), shared with the rest of the
//! daemon: the dashboard, `/metrics` and silent-station alerts read it. Sources write it; nothing here does I/O.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::model::{SourceKind, Timestamp};

/// State of one source connection, e.g. `modbus BN_KCNQV_NUOC01` or `mqtt province`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionState {
    pub kind: SourceKind,
    /// Station ids this connection feeds.
    pub stations: Vec<String>,
    pub up: bool,
    pub last_success: Option<Timestamp>,
    pub last_error: Option<(Timestamp, String)>,
    pub consecutive_failures: u64,
    pub reconnects: u64,
    /// Readings this connection submitted that committed (for forwarders: lines delivered).
    pub readings: u64,
    /// For forwarders: how far behind the ledger they are.
    pub backlog: Option<Backlog>,
    /// For Circular 10 transmission targets: files sent, corrections, and the transmission delay.
    pub transmission: Option<Transmission>,
}

/// Upper bounds (seconds) of the transmission delay histogram: around the Circular's 5-minute deadline.
pub const DELAY_BUCKETS_S: [f64; 10] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 86400.0,
];

/// What a Circular 10 transmission target has sent since it started.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmission {
    /// Files uploaded the first time.
    pub files: u64,
    /// Files uploaded again, complete, because readings arrived for them after they were sent.
    pub corrections: u64,
    /// First uploads whose delay (observation → upload) passed the deadline.
    pub late: u64,
    pub deadline_ms: i64,
    /// The last first upload's delay, ms.
    pub last_delay_ms: Option<i64>,
    /// Delay histogram of first uploads: counts at or under each of [`DELAY_BUCKETS_S`] (not cumulative), then the
    /// count above the last.
    pub delay_counts: [u64; DELAY_BUCKETS_S.len() + 1],
    pub delay_sum_ms: i64,
}

impl Transmission {
    pub fn new(deadline_ms: i64) -> Self {
        Self {
            files: 0,
            corrections: 0,
            late: 0,
            deadline_ms,
            last_delay_ms: None,
            delay_counts: [0; DELAY_BUCKETS_S.len() + 1],
            delay_sum_ms: 0,
        }
    }

    /// One file uploaded, `delay_ms` after its observation time.
    pub fn record(&mut self, delay_ms: i64, correction: bool) {
        if correction {
            self.corrections += 1;
            return;
        }
        self.files += 1;
        let delay_ms = delay_ms.max(0);
        if delay_ms > self.deadline_ms {
            self.late += 1;
        }
        self.last_delay_ms = Some(delay_ms);
        self.delay_sum_ms += delay_ms;
        let s = delay_ms as f64 / 1e3;
        let i = DELAY_BUCKETS_S
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(DELAY_BUCKETS_S.len());
        self.delay_counts[i] += 1;
    }
}

/// How far a forwarder is behind the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub rows_behind: i64,
    /// Age of the oldest unsent reading (since its commit), ms.
    pub oldest_unsent_ms: Option<i64>,
}

impl ConnectionState {
    pub fn new(kind: SourceKind, stations: Vec<String>) -> Self {
        Self {
            kind,
            stations,
            up: false,
            last_success: None,
            last_error: None,
            consecutive_failures: 0,
            reconnects: 0,
            readings: 0,
            backlog: None,
            transmission: None,
        }
    }
}

/// Registry of connection states, keyed by a stable name. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<RwLock<BTreeMap<String, ConnectionState>>>,
}

impl Health {
    /// Register a connection (or reset it) before it starts.
    pub fn register(&self, key: &str, state: ConnectionState) {
        self.write().insert(key.to_string(), state);
    }

    /// Record a successful exchange that delivered `readings` readings.
    pub fn success(&self, key: &str, readings: u64) {
        if let Some(s) = self.write().get_mut(key) {
            s.up = true;
            s.last_success = Some(Timestamp::now());
            s.consecutive_failures = 0;
            s.readings += readings;
        }
    }

    /// Record a failure; the connection is down until the next success. URLs in `error` are cut to scheme and host
    /// ([`crate::redact::urls`]): the text reaches the API and the dashboard.
    pub fn failure(&self, key: &str, error: impl Into<String>) {
        let error = error.into();
        let error = crate::redact::urls(&error).into_owned();
        if let Some(s) = self.write().get_mut(key) {
            s.up = false;
            s.last_error = Some((Timestamp::now(), error));
            s.consecutive_failures += 1;
        }
    }

    /// Record a reconnect attempt.
    pub fn reconnecting(&self, key: &str) {
        if let Some(s) = self.write().get_mut(key) {
            s.reconnects += 1;
        }
    }

    /// Record a forwarder's backlog.
    pub fn set_backlog(&self, key: &str, backlog: Backlog) {
        if let Some(s) = self.write().get_mut(key) {
            s.backlog = Some(backlog);
        }
    }

    /// Record a Circular 10 target's uploads (`f` updates its counts, created at `deadline_ms` on first use).
    pub fn transmission(&self, key: &str, deadline_ms: i64, f: impl FnOnce(&mut Transmission)) {
        if let Some(s) = self.write().get_mut(key) {
            f(s.transmission
                .get_or_insert_with(|| Transmission::new(deadline_ms)));
        }
    }

    /// Forget a connection (its component stopped for good, or restarts and registers again).
    pub fn remove(&self, key: &str) {
        self.write().remove(key);
    }

    pub fn get(&self, key: &str) -> Option<ConnectionState> {
        self.read().get(key).cloned()
    }

    /// Every connection, by key.
    pub fn snapshot(&self) -> BTreeMap<String, ConnectionState> {
        self.read().clone()
    }

    // A poisoned lock only means a writer panicked mid-update of plain counters: keep serving the data.
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, ConnectionState>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ConnectionState>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Capped exponential backoff with full jitter, for every reconnect loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: std::time::Duration,
    cap: std::time::Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: std::time::Duration, cap: std::time::Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }
    /// The next delay: random in [ceiling/2, ceiling], ceiling = min(cap, base × 2^attempt).
    pub fn next_delay(&mut self) -> std::time::Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        assert!(b.next_delay() >= Duration::from_secs(1));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn health_tracks_failures_and_recovery() {
        let h = Health::default();
        h.register(
            "modbus BN_A_B",
            ConnectionState::new(SourceKind::Modbus, vec!["BN_A_B".into()]),
        );
        h.failure("modbus BN_A_B", "timeout");
        h.failure("modbus BN_A_B", "timeout");
        let s = h.get("modbus BN_A_B").unwrap();
        assert_eq!((s.up, s.consecutive_failures), (false, 2));
        h.success("modbus BN_A_B", 5);
        let s = h.get("modbus BN_A_B").unwrap();
        assert_eq!((s.up, s.consecutive_failures, s.readings), (true, 0, 5));
    }
}
