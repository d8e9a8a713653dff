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

use super::decode::{assemble, PollWords, StationMap};
use super::plan::{plan, Block, Field};
use super::transport::{Connect, Connector, Link, TransportError};
use crate::config::modbus::Modbus;
use crate::config::Station;
use crate::health::{Backoff, ConnectionState, Health};
use crate::model::{SourceKind, StationId, Timestamp, Unit};
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
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            excepted: HashSet::new(),
        }
    }

    /// Replace the reconnect backoff (default 1 s doubling to 60 s).
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
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = every.tick() => {}
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
        Ok(assemble(&map, &words, poll_time))
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
