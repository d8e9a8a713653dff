//! The per-station polling task: on every tick, read the planned blocks, decode them, submit the batch and wait
//! for its commit (backpressure). Owns the station's connection and its `Health` entry (`modbus <station id>`).
//!
//! Every connect and every request has a deadline (tokio-modbus has none: <https://github.com/slowtec/tokio-modbus/issues/113>).
//! A transport or protocol error or a timeout drops the connection and reconnects with capped, jittered backoff:
//! reusing it would let a late reply be read as the answer to the next request
//! (<https://github.com/slowtec/tokio-modbus/issues/324>; RTU framing has no transaction id at all). A Modbus
//! exception is a register-map problem: it is logged and the connection is kept.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::decode::{assemble, hex_words, PollWords, StationMap};
use super::plan::{plan, Block, Field};
use super::transport::{Connect, Connector, Link, TransportError};
use crate::config::modbus::Modbus;
use crate::config::Station;
use crate::health::{Backoff, ConnectionState, Health};
use crate::model::{Quarantined, SourceKind, StationId, Timestamp, Unit};
use crate::pipeline::{Batch, Ingest, PipelineError};

/// Polls one station.
pub struct Poller<C: Connect> {
    station: StationId,
    modbus: Modbus,
    units: Vec<Unit>,
    blocks: Vec<Block>,
    connector: C,
    interval: Duration,
    ingest: Ingest,
    health: Health,
    key: String,
    backoff: Backoff,
    /// Blocks whose last read raised an exception: warn when a block enters this state, not on every poll.
    excepted: HashSet<usize>,
    /// The status register's value when `status_map` does not name it: logged and kept (a quarantine row with the
    /// raw word) when it first appears, not on every poll.
    unmapped: Option<u16>,
}

/// The `Health` key of a station's Modbus connection.
pub fn health_key(station: &StationId) -> String {
    format!("modbus {station}")
}

impl Poller<Connector> {
    /// A poller for a station with a `[station.modbus]` section, over its configured transport.
    pub fn new(station: &Station, ingest: Ingest, health: Health) -> Option<Self> {
        let m = station.modbus.as_ref()?;
        Some(Self::with_connector(
            station,
            m.clone(),
            Connector::new(m),
            ingest,
            health,
        ))
    }
}

impl<C: Connect> Poller<C> {
    /// A poller that opens its links with `connector` (tests use an in-memory device).
    pub fn with_connector(
        station: &Station,
        modbus: Modbus,
        connector: C,
        ingest: Ingest,
        health: Health,
    ) -> Self {
        let units = modbus
            .registers
            .iter()
            .map(|r| {
                station
                    .parameter(r.parameter.as_str())
                    .map_or_else(|| Unit::new(""), |p| p.unit.clone())
            })
            .collect();
        let key = health_key(&station.id);
        health.register(
            &key,
            ConnectionState::new(SourceKind::Modbus, vec![station.id.to_string()]),
        );
        Self {
            station: station.id.clone(),
            blocks: plan(&modbus),
            interval: modbus.poll_interval.unwrap_or(station.interval),
            modbus,
            units,
            connector,
            ingest,
            health,
            key,
            // A device back after an outage is polled again within 10 s; the backoff restarts at the first success.
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(10)),
            excepted: HashSet::new(),
            unmapped: None,
        }
    }

    /// Replace the reconnect backoff (default 1 s doubling to 10 s).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The planned read requests.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Poll until `shutdown`. A batch already submitted is waited for, so it commits before this returns.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(self.interval);
        // A poll that overruns its tick skips the missed ticks rather than firing them back to back.
        every.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut link: Option<C::Link> = None;
        let mut retry_now = false;
        info!(station = %self.station, endpoint = %self.connector.endpoint(), requests = self.blocks.len(),
              interval = %humantime::format_duration(self.interval), "Modbus polling started.");
        loop {
            if !retry_now {
                let due = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    t = every.tick() => t,
                };
                // `Skip` still fires the first missed tick as soon as it is polled; drop it too, so a device that
                // just answered a slow poll is not asked again at once. The next tick is back on the grid.
                if due.elapsed() > self.interval / 2 {
                    debug!(station = %self.station, late = ?due.elapsed(), "Poll skipped: the previous one overran its interval.");
                    continue;
                }
            }
            retry_now = false;
            let polled = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.poll(&mut link) => r,
            };
            match polled {
                Ok(batch) => {
                    self.backoff.reset();
                    if !self.submit(batch).await {
                        break;
                    }
                }
                Err(e) => {
                    // Never reuse a link after a transport error or a timeout (see the module doc).
                    link = None;
                    let delay = self.backoff.next_delay();
                    let was_up = self
                        .health
                        .get(&self.key)
                        .is_none_or(|s| s.up || s.last_error.is_none());
                    self.health.failure(&self.key, e.to_string());
                    if was_up {
                        warn!(station = %self.station, endpoint = %self.connector.endpoint(), error = %e,
                              retry_in = %humantime::format_duration(delay), "Modbus read failed, reconnecting.");
                    } else {
                        debug!(station = %self.station, error = %e,
                               retry_in = %humantime::format_duration(delay), "Modbus station still unreachable.");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    self.health.reconnecting(&self.key);
                    retry_now = true;
                }
            }
        }
        debug!(station = %self.station, "Modbus polling stopped.");
    }

    /// One poll: connect if needed, read every block, decode. `Err` means the link must be dropped.
    async fn poll(&mut self, link: &mut Option<C::Link>) -> Result<Batch, TransportError> {
        // The link is taken out for the poll and put back only if the poll succeeds: any error drops it.
        let mut l = match link.take() {
            Some(l) => l,
            None => {
                let fresh = self.connector.connect().await?;
                if self
                    .health
                    .get(&self.key)
                    .is_some_and(|s| s.last_error.is_some())
                {
                    info!(station = %self.station, endpoint = %self.connector.endpoint(), "Modbus station reconnected.");
                }
                fresh
            }
        };
        let poll_time = Timestamp::now();
        let mut words = PollWords {
            registers: vec![None; self.modbus.registers.len()],
            status: None,
            timestamp: None,
        };
        let mut answered = 0usize;
        let mut exceptions = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            if i > 0 && !self.modbus.request_pause.is_zero() {
                tokio::time::sleep(self.modbus.request_pause).await;
            }
            l.set_unit(b.unit_id);
            let read = tokio::time::timeout(self.modbus.timeout, l.read(b.kind, b.start, b.count));
            let data = match read.await {
                Err(_) => {
                    return Err(TransportError::Timeout {
                        kind: b.kind.as_str(),
                        start: b.start,
                        last: b.last(),
                        timeout: self.modbus.timeout,
                    })
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Err(code))) => {
                    if self.excepted.insert(i) {
                        warn!(station = %self.station, unit = b.unit_id, kind = b.kind.as_str(), start = b.start,
                              last = b.last(), exception = ?code, fields = %field_names(&self.modbus, b),
                              "Modbus device answered with an exception; check the register map. The connection is kept.");
                    }
                    exceptions.push(format!(
                        "{:?} on {} {}..={}",
                        code,
                        b.kind.as_str(),
                        b.start,
                        b.last()
                    ));
                    continue;
                }
                Ok(Ok(Ok(data))) => data,
            };
            if self.excepted.remove(&i) {
                info!(station = %self.station, kind = b.kind.as_str(), start = b.start, last = b.last(),
                      "Modbus block readable again.");
            }
            answered += 1;
            for &(field, offset, len) in &b.fields {
                let slice = data
                    .get(offset as usize..(offset + len) as usize)
                    .map(<[u16]>::to_vec);
                match field {
                    Field::Register(r) => {
                        if let Some(slot) = words.registers.get_mut(r) {
                            *slot = slice;
                        }
                    }
                    Field::Status => words.status = slice,
                    Field::Timestamp => words.timestamp = slice,
                }
            }
        }
        if answered == 0 && !exceptions.is_empty() {
            // The link works but yields nothing: down for the dashboard, without reconnecting.
            self.health.failure(
                &self.key,
                format!(
                    "every request answered with an exception: {}",
                    exceptions.join("; ")
                ),
            );
        }
        *link = Some(l);
        let map = StationMap {
            station: &self.station,
            modbus: &self.modbus,
            units: &self.units,
            endpoint: self.connector.endpoint(),
        };
        let mut batch = assemble(&map, &words, poll_time);
        if let Some(q) = self.unmapped_status(&words, poll_time) {
            batch.quarantined.push(q);
        }
        Ok(batch)
    }

    /// A status value `status_map` does not name makes the poll's readings `fault`: say so once per value, with
    /// the raw word kept as a quarantine row (the readings themselves are stored).
    fn unmapped_status(&mut self, words: &PollWords, at: Timestamp) -> Option<Quarantined> {
        let s = self.modbus.status.as_ref()?;
        let raw = *words.status.as_ref()?.first()?;
        if s.map.contains_key(&raw) {
            self.unmapped = None;
            return None;
        }
        if self.unmapped == Some(raw) {
            return None;
        }
        self.unmapped = Some(raw);
        let origin = format!(
            "{}/unit {}/{} {}",
            self.connector.endpoint(),
            s.unit_id,
            s.kind.as_str(),
            s.address
        );
        let reason = format!(
            "status register {} held {raw}, which status_map does not name; this station's readings are stored as \
             fault (02) while it does",
            s.address
        );
        warn!(station = %self.station, origin = %origin, raw, "Modbus status value not in status_map; readings stored as fault.");
        Some(
            Quarantined {
                received: at,
                ..Quarantined::new(SourceKind::Modbus, origin, reason, hex_words(&[raw]))
            }
            .with_station(self.station.as_str()),
        )
    }

    /// Submit and wait for the commit. False when the pipeline is gone.
    async fn submit(&mut self, batch: Batch) -> bool {
        if batch.is_empty() {
            return true;
        }
        let readings = batch.readings.len() as u64;
        match self.ingest.submit(batch).await {
            Ok(_) => {
                self.health.success(&self.key, readings);
                true
            }
            Err(PipelineError::Closed) => false,
            Err(e) => {
                // A poll cannot be replayed later; the next one carries fresh values.
                error!(station = %self.station, error = %e, readings, "Modbus readings of this poll were not stored.");
                true
            }
        }
    }
}

/// The parameters (and status/timestamp) a block carries, for messages.
fn field_names(m: &Modbus, b: &Block) -> String {
    b.fields
        .iter()
        .map(|(f, _, _)| match f {
            Field::Register(i) => m
                .registers
                .get(*i)
                .map_or_else(|| "?".to_string(), |r| r.parameter.to_string()),
            Field::Status => "status".to_string(),
            Field::Timestamp => "timestamp".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    //! The poller against an in-memory device, in paused time: interval and deadline logic without real I/O.
    use super::*;
    use crate::config::modbus::RegisterKind;
    use crate::config::{Config, Synchronous};
    use crate::ledger::Ledger;
    use crate::metrics::Metrics;
    use crate::pipeline::Pipeline;
    use crate::source::modbus::transport::ReadResult;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    #[derive(Default)]
    struct Device {
        reads: Vec<Instant>,
        connects: u32,
        /// Read number → how long that read takes.
        stall: HashMap<usize, Duration>,
        /// Never answer.
        silent: bool,
        /// A read is in its stall.
        stalling: bool,
    }

    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<Device>>);
    struct FakeLink(Arc<Mutex<Device>>);

    impl Link for FakeLink {
        fn set_unit(&mut self, _: u8) {}
        async fn read(&mut self, _: RegisterKind, _: u16, count: u16) -> ReadResult {
            let (stall, silent) = {
                let mut d = self.0.lock().unwrap();
                let n = d.reads.len();
                d.reads.push(Instant::now());
                (d.stall.get(&n).copied(), d.silent)
            };
            if silent {
                std::future::pending::<()>().await;
            }
            if let Some(s) = stall {
                self.0.lock().unwrap().stalling = true;
                tokio::time::sleep(s).await;
                self.0.lock().unwrap().stalling = false;
            }
            Ok(Ok(vec![100; count as usize]))
        }
    }

    impl Connect for Fake {
        type Link = FakeLink;
        fn endpoint(&self) -> &str {
            "fake"
        }
        async fn connect(&self) -> Result<FakeLink, TransportError> {
            self.0.lock().unwrap().connects += 1;
            Ok(FakeLink(self.0.clone()))
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        pipeline: Pipeline,
        health: Health,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    /// One COD station polled over Modbus, `modbus` lines added to its `[station.modbus]`.
    fn config(dir: &std::path::Path, modbus: &str) -> Config {
        crate::testing::cod_station_config(
            dir,
            &format!(
                "[station.modbus]\naddress = \"127.0.0.1:1\"\n\
                 registers = [{{ parameter = \"COD\", address = 0, type = \"u16\" }}]\n{modbus}"
            ),
        )
    }

    fn start(fake: &Fake) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "poll_interval = \"1s\"\ntimeout = \"3s\"");
        let ledger = Ledger::open(&dir.path().join("ledger.db"), Synchronous::Normal).unwrap();
        let limits = crate::compliance::resolve_limits(&config).unwrap();
        let pipeline = Pipeline::start(&config, limits, ledger, Arc::new(Metrics::default()));
        let health = Health::default();
        let station = &config.stations[0];
        let poller = Poller::with_connector(
            station,
            station.modbus.clone().unwrap(),
            fake.clone(),
            pipeline.ingest(),
            health.clone(),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(poller.run(shutdown.clone()));
        Setup {
            _dir: dir,
            pipeline,
            health,
            shutdown,
            task,
        }
    }

    impl Setup {
        async fn stop(self) {
            self.shutdown.cancel();
            self.task.await.unwrap();
            self.pipeline.finish().await;
        }
    }

    #[tokio::test]
    async fn an_unmapped_status_is_told_and_kept_once_per_value() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(
            dir.path(),
            r#"status = { kind = "holding", address = 20, map = { "0" = "measuring" } }"#,
        );
        let ledger = Ledger::open(&dir.path().join("ledger.db"), Synchronous::Normal).unwrap();
        let limits = crate::compliance::resolve_limits(&config).unwrap();
        let pipeline = Pipeline::start(&config, limits, ledger, Arc::new(Metrics::default()));
        let station = &config.stations[0];
        let mut poller = Poller::with_connector(
            station,
            station.modbus.clone().unwrap(),
            Fake::default(),
            pipeline.ingest(),
            Health::default(),
        );
        let words = |raw: u16| PollWords {
            registers: vec![Some(vec![1])],
            status: Some(vec![raw]),
            timestamp: None,
        };
        let at = Timestamp(1_800_000_000_000);
        let q = poller
            .unmapped_status(&words(7), at)
            .expect("a quarantine row");
        assert_eq!(q.origin, "fake/unit 1/holding 20");
        assert!(
            q.reason
                .starts_with("status register 20 held 7, which status_map does not name"),
            "{}",
            q.reason
        );
        assert_eq!(q.raw, b"0x0007");
        assert_eq!(q.station.as_deref(), Some("BN_KCNQV_NUOC01"));
        // The same value again: nothing new. A mapped value, then 7 again: told again.
        assert!(poller.unmapped_status(&words(7), at).is_none());
        assert!(poller.unmapped_status(&words(0), at).is_none());
        assert!(poller.unmapped_status(&words(7), at).is_some());
        drop(poller);
        pipeline.finish().await;
    }

    /// Wait in (paused) time until `cond` holds; panics after 10 virtual minutes.
    /// Wait in paused time for `cond`, bounded by wall time: the ledger writer is a real thread, and while it
    /// commits, paused time races ahead, so a deadline in paused time could pass before the commit lands.
    async fn until(mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "condition not reached"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_poll_skips_missed_ticks_instead_of_bunching_them() {
        let fake = Fake::default();
        // The third read takes 2.5 s (inside the 3 s deadline): the ticks at 3 s and 4 s are missed.
        fake.0
            .lock()
            .unwrap()
            .stall
            .insert(2, Duration::from_millis(2500));
        let s = start(&fake);
        // Time moves only by `advance` here: each commit happens on the ledger thread in real time, and an
        // auto-advancing clock would jump ahead while the poller waits for it.
        let key = health_key(&StationId::parse("BN_KCNQV_NUOC01").unwrap());
        loop {
            // Settle: every read so far is committed (one reading each), or the device is in its stall.
            let real = std::time::Instant::now();
            loop {
                let (reads, stalling) = {
                    let d = fake.0.lock().unwrap();
                    (d.reads.len() as u64, d.stalling)
                };
                let committed = s.health.get(&key).map_or(0, |h| h.readings);
                if committed == reads || stalling {
                    break;
                }
                assert!(
                    real.elapsed() < std::time::Duration::from_secs(10),
                    "commit never came"
                );
                tokio::task::yield_now().await;
            }
            if fake.0.lock().unwrap().reads.len() >= 8 {
                break;
            }
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        let reads = fake.0.lock().unwrap().reads.clone();
        let t0 = reads[0];
        for (i, r) in reads.iter().enumerate().skip(1) {
            let since = r.duration_since(t0);
            // Every poll starts on a tick of the 1 s grid (not 4.5 s, as `Delay` would)...
            assert_eq!(since.subsec_nanos(), 0, "read {i} at {since:?}");
            // ...and never right behind another (as `Burst` would fire the missed ticks).
            assert!(
                r.duration_since(reads[i - 1]) >= Duration::from_secs(1),
                "read {i}"
            );
        }
        // After the stall, the next poll waits for the 5 s tick.
        assert!(reads[3].duration_since(reads[2]) >= Duration::from_secs(3));
        assert_eq!(fake.0.lock().unwrap().connects, 1);
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_device_times_out_reconnects_with_backoff_and_recovers() {
        let fake = Fake::default();
        fake.0.lock().unwrap().silent = true;
        let s = start(&fake);
        let key = health_key(&StationId::parse("BN_KCNQV_NUOC01").unwrap());
        until(|| s.health.get(&key).is_some_and(|h| h.reconnects >= 4)).await;
        let state = s.health.get(&key).unwrap();
        assert!(!state.up);
        assert!(state.consecutive_failures >= 4);
        assert!(state.last_error.unwrap().1.contains("no reply"));
        let (reads, connects) = {
            let d = fake.0.lock().unwrap();
            (d.reads.clone(), d.connects)
        };
        // One connection per attempt: a timed-out link is never reused.
        assert_eq!(connects as usize, reads.len());
        // Each attempt waits out the 3 s deadline, then a backoff of at least half its 1 s, 2 s, 4 s… ceiling.
        for (i, w) in reads.windows(2).enumerate() {
            let min = Duration::from_secs(3) + Duration::from_millis(500) * (1 << i.min(6));
            assert!(w[1].duration_since(w[0]) >= min, "attempt {i}");
        }
        fake.0.lock().unwrap().silent = false;
        until(|| s.health.get(&key).is_some_and(|h| h.up && h.readings > 0)).await;
        assert_eq!(s.health.get(&key).unwrap().consecutive_failures, 0);
        s.stop().await;
    }
}
