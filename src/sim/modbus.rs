//! A simulated Modbus station served with tokio-modbus's server, over Modbus TCP, RTU framed over TCP, or RTU on a
//! serial line (tests use a pseudo-terminal pair): register
//! values (any type and byte order, from a station's register map), device status, several unit ids behind one
//! listener (a gateway), and faults for tests — exceptions on address ranges, delayed and dropped replies.
//!
//! [`run`] serves an injected listener until the shutdown token fires (mini-redis style). [`start_demo`] serves the
//! demo's `sim.via = "modbus"` stations on their configured loopback addresses with values from [`StationSim`].

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::StationSim;
use crate::compliance::StationLimits;
use crate::config::modbus::{
    Modbus, Register, RegisterKind, StatusRegister, TimestampRegister, Transport,
};
use crate::config::{Sim, SimVia, Station};
use crate::model::{StationId, Status, Timestamp};
use crate::source::modbus::decode::{encode_raw, encode_status, encode_value};

/// How requests and replies are framed on the TCP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Modbus TCP (MBAP header with transaction ids).
    Tcp,
    /// RTU frames (unit id, PDU, CRC) over TCP, as a serial-to-Ethernet converter passes them.
    RtuOverTcp,
}

/// An exception the device raises for requests touching an address range.
#[derive(Debug, Clone)]
struct Injected {
    kind: RegisterKind,
    range: RangeInclusive<u16>,
    code: ExceptionCode,
}

#[derive(Debug, Default)]
struct State {
    /// (unit id, kind, address) → word; bits are 0 or 1. Unset addresses read as 0.
    words: HashMap<(u8, RegisterKind, u16), u16>,
    /// Unit ids that answer; empty means every unit id answers.
    units: HashSet<u8>,
    exceptions: Vec<Injected>,
    /// The next `n` replies wait this long before they are sent.
    delay: Option<(u32, Duration)>,
    /// The next `n` requests get no reply at all.
    drop: u32,
}

/// A simulated device: cheap to clone, all clones share the registers. Change it while it is served.
#[derive(Debug, Clone, Default)]
pub struct SimDevice {
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl SimDevice {
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while holding the lock only happens in a failing test; keep serving.
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write raw words (or bits as 0/1) from `address` on.
    pub fn set_words(&self, unit: u8, kind: RegisterKind, address: u16, words: &[u16]) {
        let mut s = self.state();
        for (i, w) in words.iter().enumerate() {
            s.words
                .insert((unit, kind, address.wrapping_add(i as u16)), *w);
        }
    }

    /// Store `value` (engineering units) where `reg` says, in its type and byte order.
    pub fn set_value(&self, reg: &Register, value: f64) {
        self.set_words(
            reg.unit_id,
            reg.kind,
            reg.address,
            &encode_value(value, reg),
        );
    }

    /// Store the raw status value that `status`'s map gives for `st` (fault's code, or 2, if unmapped).
    pub fn set_status(&self, status: &StatusRegister, st: Status) {
        let raw = encode_status(st, status).unwrap_or(Status::Fault as u16);
        self.set_words(status.unit_id, status.kind, status.address, &[raw]);
    }

    /// Store a sample time (Unix seconds).
    pub fn set_timestamp(&self, unit: u8, ts: &TimestampRegister, seconds: i64) {
        let words = encode_raw(seconds as f64, ts.data_type, ts.order);
        self.set_words(unit, ts.kind, ts.address, &words);
    }

    /// Answer only these unit ids (a gateway whose other targets are absent get no reply).
    pub fn answer_units(&self, units: &[u8]) {
        self.state().units = units.iter().copied().collect();
    }

    /// Raise `code` for every request of `kind` that touches `range`.
    pub fn inject_exception(
        &self,
        kind: RegisterKind,
        range: RangeInclusive<u16>,
        code: ExceptionCode,
    ) {
        self.state().exceptions.push(Injected { kind, range, code });
    }

    pub fn clear_exceptions(&self) {
        self.state().exceptions.clear();
    }

    /// Hold the next `n` replies back for `delay` each (past the poller's timeout: a late reply).
    pub fn delay_replies(&self, n: u32, delay: Duration) {
        self.state().delay = Some((n, delay));
    }

    /// Send no reply to the next `n` requests (a device that stops answering; `u32::MAX` for good).
    pub fn drop_replies(&self, n: u32) {
        self.state().drop = n;
    }

    /// Requests received so far, answered or not.
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Relaxed)
    }

    /// The reply to `req` now, and how long to hold it back; `Ok(None)` means no reply.
    fn answer(
        &self,
        unit: u8,
        req: &Request<'_>,
    ) -> (Result<Option<Response>, ExceptionCode>, Option<Duration>) {
        self.requests.fetch_add(1, Relaxed);
        let mut s = self.state();
        if !s.units.is_empty() && !s.units.contains(&unit) {
            return (Ok(None), None);
        }
        if s.drop > 0 {
            s.drop -= 1;
            return (Ok(None), None);
        }
        let delay = match &mut s.delay {
            Some((n, d)) if *n > 0 => {
                *n -= 1;
                Some(*d)
            }
            _ => None,
        };
        let (kind, start, count) = match *req {
            Request::ReadHoldingRegisters(a, c) => (RegisterKind::Holding, a, c),
            Request::ReadInputRegisters(a, c) => (RegisterKind::Input, a, c),
            Request::ReadCoils(a, c) => (RegisterKind::Coil, a, c),
            Request::ReadDiscreteInputs(a, c) => (RegisterKind::Discrete, a, c),
            _ => return (Err(ExceptionCode::IllegalFunction), delay),
        };
        let last = start as u32 + count as u32;
        if count == 0 || last > 65_536 {
            return (Err(ExceptionCode::IllegalDataAddress), delay);
        }
        let touches = |e: &Injected| {
            e.kind == kind
                && (*e.range.start() as u32) < last
                && (start as u32) <= *e.range.end() as u32
        };
        if let Some(e) = s.exceptions.iter().find(|e| touches(e)) {
            return (Err(e.code), delay);
        }
        let words: Vec<u16> = (start as u32..last)
            .map(|a| s.words.get(&(unit, kind, a as u16)).copied().unwrap_or(0))
            .collect();
        let bits = || words.iter().map(|w| *w != 0).collect();
        let response = match kind {
            RegisterKind::Holding => Response::ReadHoldingRegisters(words.clone()),
            RegisterKind::Input => Response::ReadInputRegisters(words.clone()),
            RegisterKind::Coil => Response::ReadCoils(bits()),
            RegisterKind::Discrete => Response::ReadDiscreteInputs(bits()),
        };
        (Ok(Some(response)), delay)
    }
}

type Reply = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

impl Service for SimDevice {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Reply;

    fn call(&self, req: Self::Request) -> Self::Future {
        let (reply, delay) = self.answer(req.slave, &req.request);
        Box::pin(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            reply
        })
    }
}

/// Serve `device` on `listener` until `shutdown`; open connections close with it.
pub async fn run(
    listener: TcpListener,
    device: SimDevice,
    framing: Framing,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let on_connected = move |stream: TcpStream, _peer: SocketAddr| {
        let device = device.clone();
        device.connections.fetch_add(1, Relaxed);
        async move {
            let _ = stream.set_nodelay(true);
            Ok(Some((device, stream)))
        }
    };
    let on_error = |e: io::Error| debug!(error = %e, "Simulated Modbus connection ended.");
    // Dropping `serve` (on shutdown) cancels every connection task it spawned.
    match framing {
        Framing::Tcp => {
            let server = tokio_modbus::server::tcp::Server::new(listener);
            tokio::select! {
                r = server.serve(&on_connected, on_error) => r,
                _ = shutdown.cancelled() => Ok(()),
            }
        }
        Framing::RtuOverTcp => {
            let server = tokio_modbus::server::rtu_over_tcp::Server::new(listener);
            tokio::select! {
                r = server.serve(&on_connected, on_error) => r,
                _ = shutdown.cancelled() => Ok(()),
            }
        }
    }
}

/// Serve `device` as an RTU slave on a serial line (one end of a pseudo-terminal pair in tests) until `shutdown`.
pub async fn run_serial(
    serial: tokio_serial::SerialStream,
    device: SimDevice,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let server = tokio_modbus::server::rtu::Server::new(serial);
    tokio::select! {
        r = server.serve_forever(device) => r,
        _ = shutdown.cancelled() => Ok(()),
    }
}

/// Write one simulated sample into the device: every mapped parameter, the status and the sample time.
pub fn write_sample(
    device: &SimDevice,
    modbus: &Modbus,
    sim: &StationSim,
    sim_t: Timestamp,
    stamp: Timestamp,
) {
    let readings = sim.sample(sim_t, stamp);
    for reg in &modbus.registers {
        if let Some(r) = readings.iter().find(|r| r.parameter == reg.parameter) {
            device.set_value(reg, r.value);
        }
    }
    if let Some(s) = &modbus.status {
        // The station's status is its analysers': calibrating while any of them calibrates.
        let st = readings
            .iter()
            .map(|r| r.status)
            .find(|s| *s != Status::Measuring)
            .unwrap_or(Status::Measuring);
        device.set_status(s, st);
    }
    if let Some(t) = &modbus.timestamp {
        device.set_timestamp(modbus.unit_id, t, stamp.millis().div_euclid(1000));
    }
}

/// Bind every demo station with `sim.via = "modbus"` on its configured address and return the task that serves
/// them and refreshes their values (every station interval of simulated time, `speed` times faster than the wall
/// clock) until `shutdown`. Binding first means the pollers find the stations on their first connect.
pub async fn start_demo(
    simulated: &[Station],
    limits: &HashMap<StationId, StationLimits>,
    settings: &Sim,
    shutdown: CancellationToken,
) -> io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut stations = Vec::new();
    let mut servers = tokio::task::JoinSet::new();
    for s in simulated {
        let Some(sim) = s.sim.as_ref().filter(|x| x.via == SimVia::Modbus) else {
            continue;
        };
        let Some(m) = &s.modbus else {
            warn!(station = %s.id, drift = sim.drift.as_deref().unwrap_or("none"), "sim.via = \"modbus\" needs a [station.modbus] section with the address to serve; the station is not simulated.");
            continue;
        };
        let (address, framing) = match &m.transport {
            Transport::Tcp { address } => (address, Framing::Tcp),
            Transport::RtuOverTcp { address } => (address, Framing::RtuOverTcp),
            Transport::Rtu { device, .. } => {
                warn!(station = %s.id, device = %device, "A simulated station cannot serve a serial line; use tcp or rtu-over-tcp.");
                continue;
            }
        };
        let listener = TcpListener::bind(address.as_str()).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "simulated Modbus station {} cannot listen on {address}: {e}",
                    s.id
                ),
            )
        })?;
        info!(station = %s.id, address = %address, "Simulated Modbus station listening.");
        let device = SimDevice::new();
        let station_sim = StationSim::new(
            s,
            limits.get(&s.id).unwrap_or(&StationLimits::default()),
            settings.seed,
        );
        let now = Timestamp::now();
        write_sample(&device, m, &station_sim, now, now);
        servers.spawn(run(listener, device.clone(), framing, shutdown.clone()));
        stations.push((device, m.clone(), station_sim, s.interval));
    }
    let speed = settings.speed.max(1);
    Ok(async move {
        let Some(interval) = stations.iter().map(|s| s.3).min() else {
            return;
        };
        let wall_step = (interval / speed).max(Duration::from_millis(100));
        let mut every = tokio::time::interval(wall_step);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let start = Timestamp::now().millis();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = every.tick() => {}
            }
            let wall = Timestamp::now().millis();
            let stamp = Timestamp(wall - wall.rem_euclid(1000));
            let sim_t = Timestamp(start + (wall - start) * speed as i64);
            for (device, m, sim, _) in &stations {
                write_sample(device, m, sim, sim_t, stamp);
            }
        }
        while let Some(r) = servers.join_next().await {
            if let Ok(Err(e)) = r {
                warn!(error = %e, "Simulated Modbus station stopped on an error.");
            }
        }
    })
}
