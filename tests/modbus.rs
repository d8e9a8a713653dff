//! The Modbus source against the simulated station over real TCP (Modbus TCP and RTU framed over TCP): readings
//! land in a real ledger through the pipeline. Every wait polls the ledger or the health registry with a deadline.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quantrac::compliance::resolve_limits;
use quantrac::config::modbus::RegisterKind;
use quantrac::config::{Config, Synchronous};
use quantrac::health::{Backoff, Health};
use quantrac::ledger::query::{ReadingFilter, StoredReading};
use quantrac::ledger::{Ledger, Reader};
use quantrac::metrics::Metrics;
use quantrac::model::{StationId, Status, Timestamp};
use quantrac::pipeline::Pipeline;
use quantrac::sim::modbus::{Framing, SimDevice};
use quantrac::source::modbus::transport::{Connect, TransportError};
use quantrac::source::modbus::{health_key, Poller};
use tokio::net::TcpListener;
use tokio_modbus::ExceptionCode;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(20);

/// A running pipeline, simulators and pollers over a temporary ledger.
struct Harness {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    config: Config,
    pipeline: Option<Pipeline>,
    health: Health,
    shutdown: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
}

fn station_toml(id: &str, modbus: &str) -> String {
    format!(
        r#"
[[station]]
id = "{id}"
name = "{id}"
profile = "qcvn40-2011-b"
design_flow_m3_day = 5000
receiving_water = {{ type = "river", flow_m3_s = 120 }}
parameters = {{ Flow = {{}}, Temp = {{}}, pH = {{}}, TSS = {{}}, COD = {{}}, NH4 = {{}}, TN = {{}}, TP = {{}}, TOC = {{}} }}
[station.modbus]
{modbus}
"#
    )
}

/// Bind a listener for a simulated station.
async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap().to_string();
    (l, a)
}

impl Harness {
    fn new(stations: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ledger.db");
        let text = format!("[ledger]\npath = \"ledger.db\"\nsynchronous = \"normal\"\n{stations}");
        let config = Config::from_str(&text, Path::new("<modbus test>"), dir.path()).unwrap();
        let limits = resolve_limits(&config).unwrap();
        let ledger = Ledger::open(&db, Synchronous::Normal).unwrap();
        let pipeline = Pipeline::start(&config, limits, ledger, Arc::new(Metrics::default()));
        Harness {
            _dir: dir,
            db,
            config,
            pipeline: Some(pipeline),
            health: Health::default(),
            shutdown: CancellationToken::new(),
            tasks: tokio::task::JoinSet::new(),
        }
    }

    fn serve(&mut self, l: TcpListener, device: &SimDevice, framing: Framing) {
        let (d, s) = (device.clone(), self.shutdown.clone());
        self.tasks.spawn(async move {
            let _ = quantrac::sim::modbus::run(l, d, framing, s).await;
        });
    }

    /// Start polling station `i` with a fast reconnect backoff.
    fn poll(&mut self, i: usize) {
        let station = &self.config.stations[i];
        let ingest = self.pipeline.as_ref().unwrap().ingest();
        let p = Poller::new(station, ingest, self.health.clone())
            .unwrap()
            .with_backoff(Backoff::new(
                Duration::from_millis(50),
                Duration::from_millis(200),
            ));
        self.tasks.spawn(p.run(self.shutdown.clone()));
    }

    fn readings(&self, station: &str) -> Vec<StoredReading> {
        let Ok(reader) = Reader::open(&self.db) else {
            return Vec::new();
        };
        reader
            .readings(&ReadingFilter {
                station: Some(station.into()),
                limit: 100_000,
                ..Default::default()
            })
            .unwrap_or_default()
    }

    fn of(&self, station: &str, parameter: &str) -> Vec<StoredReading> {
        self.readings(station)
            .into_iter()
            .filter(|r| r.parameter == parameter)
            .collect()
    }

    /// Wait (bounded) until `cond` holds.
    async fn until(&self, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + LIMIT;
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; health: {:?}",
                self.health.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        tokio::time::timeout(LIMIT, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .expect("pollers and simulators stop on shutdown");
        let p = self.pipeline.take().unwrap();
        tokio::time::timeout(LIMIT, p.finish())
            .await
            .expect("the pipeline drains");
    }
}

/// A station mixing every data type and byte order, scale/offset, a gateway unit id, status and sample time, and
/// one register the device fills with NaN.
fn mixed_station(id: &str, address: &str, transport: &str) -> String {
    station_toml(
        id,
        &format!(
            r#"transport = "{transport}"
address = "{address}"
poll_interval = "200ms"
timeout = "5s"
registers = [
  {{ parameter = "COD", address = 0, type = "f32", order = "CDAB" }},
  {{ parameter = "TSS", address = 2, type = "f32", order = "ABCD" }},
  {{ parameter = "pH", kind = "input", address = 10, type = "u16", scale = 0.01 }},
  {{ parameter = "Temp", kind = "input", address = 11, type = "i16", order = "BADC", scale = 0.1, offset = -40 }},
  {{ parameter = "Flow", address = 20, type = "f64", order = "DCBA" }},
  {{ parameter = "NH4", address = 30, type = "u32", order = "BADC", scale = 0.001 }},
  {{ parameter = "TN", address = 40, type = "i64", order = "CDAB", scale = 0.01 }},
  {{ parameter = "TP", address = 0, type = "f32", order = "DCBA", unit_id = 2 }},
  {{ parameter = "TOC", address = 4, type = "f32" }},
]
status = {{ kind = "holding", address = 50, map = {{ "0" = "measuring", "7" = "calibrating" }} }}
timestamp = {{ kind = "holding", address = 60, type = "u32", order = "CDAB" }}
"#
        ),
    )
}

async fn mixed_types_and_orders(framing: Framing) {
    let (l, addr) = listener().await;
    let transport = match framing {
        Framing::Tcp => "tcp",
        Framing::RtuOverTcp => "rtu-over-tcp",
    };
    let id = "BN_KCNQV_NUOC01";
    let mut h = Harness::new(&mixed_station(id, &addr, transport));
    let m = h.config.stations[0].modbus.clone().unwrap();
    let device = SimDevice::new();
    let expected = [
        ("COD", 123.5),
        ("TSS", 7.25),
        ("pH", 7.12),
        ("Temp", 25.2),
        ("Flow", 1e6),
        ("NH4", 4.321),
        ("TN", 15.37),
        ("TP", 0.5),
    ];
    for reg in &m.registers {
        if let Some((_, v)) = expected.iter().find(|(p, _)| *p == reg.parameter.as_str()) {
            device.set_value(reg, *v);
        }
    }
    device.set_words(1, RegisterKind::Holding, 4, &[0x7FC0, 0x0000]); // TOC: NaN
    device.set_status(m.status.as_ref().unwrap(), Status::Calibrating);
    let sample_secs = Timestamp::now().millis() / 1000 - 60;
    device.set_timestamp(1, m.timestamp.as_ref().unwrap(), sample_secs);
    h.serve(l, &device, framing);
    h.poll(0);

    h.until("one poll's readings", |h| {
        h.readings(id).len() >= expected.len()
    })
    .await;
    for (p, want) in expected {
        let got = h.of(id, p);
        assert!(!got.is_empty(), "{p} missing");
        let r = &got[0];
        assert!(
            (r.value - want).abs() <= want.abs() * 1e-12,
            "{p}: got {} want {want}",
            r.value
        );
        assert_eq!(r.status, Status::Calibrating, "{p}");
        assert_eq!(r.ts, Timestamp(sample_secs * 1000), "{p}");
        assert_eq!(r.source, "modbus");
    }
    assert!(h.of(id, "TOC").is_empty(), "NaN must not become a reading");
    let q = Reader::open(&h.db).unwrap().quarantine(100).unwrap();
    let toc = q
        .iter()
        .find(|q| q.origin.ends_with("TOC"))
        .expect("TOC quarantined");
    assert_eq!(toc.raw, b"0x7FC0 0x0000");
    assert!(toc.reason.contains("not a finite number"), "{}", toc.reason);
    assert_eq!(toc.station.as_deref(), Some(id));
    assert_eq!(toc.source, "modbus");

    // Read cleanly on one connection.
    let s = h
        .health
        .get(&health_key(&StationId::parse(id).unwrap()))
        .unwrap();
    assert!(s.up && s.readings >= expected.len() as u64, "{s:?}");
    assert_eq!(s.reconnects, 0);
    h.stop().await;
}

#[tokio::test]
async fn mixed_types_and_orders_decode_exactly_over_modbus_tcp() {
    mixed_types_and_orders(Framing::Tcp).await;
}

#[tokio::test]
async fn rtu_framing_over_tcp_decodes_exactly() {
    mixed_types_and_orders(Framing::RtuOverTcp).await;
}

fn simple_station(id: &str, address: &str, extra: &str) -> String {
    station_toml(
        id,
        &format!(
            r#"address = "{address}"
poll_interval = "100ms"
timeout = "300ms"
{extra}
registers = [
  {{ parameter = "COD", address = 0, type = "f32" }},
  {{ parameter = "TSS", address = 100, type = "f32" }},
]
"#
        ),
    )
}

#[tokio::test]
async fn silent_device_times_out_reconnects_recovers_and_never_blocks_another_station() {
    let (la, aa) = listener().await;
    let (lb, ab) = listener().await;
    let (a, b) = ("BN_DEAD_NUOC01", "BN_LIVE_NUOC01");
    let mut h = Harness::new(&format!(
        "{}{}",
        simple_station(a, &aa, ""),
        simple_station(b, &ab, "")
    ));
    let (da, db) = (SimDevice::new(), SimDevice::new());
    for (d, i) in [(&da, 0), (&db, 1)] {
        let m = h.config.stations[i].modbus.clone().unwrap();
        d.set_value(&m.registers[0], 40.0);
        d.set_value(&m.registers[1], 20.0);
    }
    h.serve(la, &da, Framing::Tcp);
    h.serve(lb, &db, Framing::Tcp);
    h.poll(0);
    h.poll(1);
    let key_a = health_key(&StationId::parse(a).unwrap());
    h.until("station A up", |h| {
        h.health.get(&key_a).is_some_and(|s| s.up)
    })
    .await;

    // A stops answering: every request times out; it keeps reconnecting.
    da.drop_replies(u32::MAX);
    h.until("A down after timeouts", |h| {
        h.health
            .get(&key_a)
            .is_some_and(|s| !s.up && s.consecutive_failures >= 3 && s.reconnects >= 2)
    })
    .await;
    let s = h.health.get(&key_a).unwrap();
    assert!(
        s.last_error.as_ref().unwrap().1.contains("no reply"),
        "{:?}",
        s.last_error
    );
    assert!(da.connections() >= 2, "A was not reconnected");
    // Meanwhile B is polled at its own pace: over one second of A's outage, B commits several polls.
    let before = h.of(b, "COD").len();
    let t0 = Instant::now();
    h.until("B polled during A's outage", |h| {
        h.of(b, "COD").len() >= before + 5
    })
    .await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "B slowed down: {:?} for 5 polls at 100 ms",
        t0.elapsed()
    );

    // A answers again: it recovers by itself.
    let a_before = h.of(a, "COD").len();
    da.drop_replies(0);
    h.until("A recovered", |h| {
        h.health.get(&key_a).is_some_and(|s| s.up) && h.of(a, "COD").len() > a_before
    })
    .await;
    assert!(h.of(a, "COD").iter().all(|r| r.value == 40.0));
    h.stop().await;
}

#[tokio::test]
async fn exception_on_one_block_keeps_the_connection_and_the_other_blocks() {
    let (l, addr) = listener().await;
    let id = "BN_KCNQV_NUOC01";
    let mut h = Harness::new(&simple_station(id, &addr, ""));
    let m = h.config.stations[0].modbus.clone().unwrap();
    let device = SimDevice::new();
    device.set_value(&m.registers[0], 40.0);
    device.set_value(&m.registers[1], 20.0);
    device.inject_exception(
        RegisterKind::Holding,
        100..=101,
        ExceptionCode::IllegalDataAddress,
    );
    h.serve(l, &device, Framing::Tcp);
    h.poll(0);
    h.until("COD polls despite the TSS exception", |h| {
        h.of(id, "COD").len() >= 5
    })
    .await;
    assert!(h.of(id, "TSS").is_empty());
    let key = health_key(&StationId::parse(id).unwrap());
    let s = h.health.get(&key).unwrap();
    assert_eq!(s.reconnects, 0, "an exception must not reconnect: {s:?}");
    assert_eq!(device.connections(), 1);

    device.clear_exceptions();
    h.until("TSS once the map is fixed", |h| !h.of(id, "TSS").is_empty())
        .await;
    assert_eq!(device.connections(), 1);
    h.stop().await;
}

/// Two fields read one request each; the device answers the first requests after the poller's deadline. If a
/// late answer were taken as the reply to the next request, COD's value would show up as TSS (RTU framing has
/// no transaction id to catch it).
async fn late_reply(framing: Framing) {
    let (l, addr) = listener().await;
    let id = "BN_KCNQV_NUOC01";
    let transport = match framing {
        Framing::Tcp => "tcp",
        Framing::RtuOverTcp => "rtu-over-tcp",
    };
    let mut h = Harness::new(&simple_station(
        id,
        &addr,
        &format!("transport = \"{transport}\"\none_request_per_field = true"),
    ));
    let m = h.config.stations[0].modbus.clone().unwrap();
    let device = SimDevice::new();
    device.set_value(&m.registers[0], 11.0);
    device.set_value(&m.registers[1], 22.0);
    // 450 ms > the 300 ms deadline: each reply arrives after the poller gave up on it.
    device.delay_replies(4, Duration::from_millis(450));
    h.serve(l, &device, framing);
    h.poll(0);
    h.until("polls after the late replies", |h| {
        h.of(id, "COD").len() >= 5 && h.of(id, "TSS").len() >= 5
    })
    .await;
    assert!(h.of(id, "COD").iter().all(|r| r.value == 11.0));
    assert!(h.of(id, "TSS").iter().all(|r| r.value == 22.0));
    let s = h
        .health
        .get(&health_key(&StationId::parse(id).unwrap()))
        .unwrap();
    assert!(s.reconnects >= 1, "{s:?}");
    assert!(device.connections() >= 2);
    h.stop().await;
}

#[tokio::test]
async fn late_reply_after_timeout_never_yields_a_wrong_value_tcp() {
    late_reply(Framing::Tcp).await;
}

#[tokio::test]
async fn late_reply_after_timeout_never_yields_a_wrong_value_rtu_over_tcp() {
    late_reply(Framing::RtuOverTcp).await;
}

#[tokio::test]
async fn shutdown_stops_a_poller_stuck_on_a_silent_device() {
    let (l, addr) = listener().await;
    let id = "BN_KCNQV_NUOC01";
    let mut h = Harness::new(&simple_station(id, &addr, ""));
    let device = SimDevice::new();
    device.drop_replies(u32::MAX);
    h.serve(l, &device, Framing::Tcp);
    h.poll(0);
    let key = health_key(&StationId::parse(id).unwrap());
    h.until("a failed poll", |h| {
        h.health
            .get(&key)
            .is_some_and(|s| s.consecutive_failures >= 1)
    })
    .await;
    let t0 = Instant::now();
    h.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

/// Hands the poller one end of a pseudo-terminal pair as its serial line. (Opening the terminal again by path
/// does not work here: the pair's own handle keeps a lock on it, and in a container `/dev/pts` may be another
/// instance.)
struct PtyLine(std::sync::Mutex<Option<tokio_serial::SerialStream>>);

impl Connect for PtyLine {
    type Link = tokio_modbus::client::Context;
    fn endpoint(&self) -> &str {
        "pty"
    }
    async fn connect(&self) -> Result<Self::Link, TransportError> {
        let line = self.0.lock().unwrap().take();
        match line {
            Some(l) => Ok(tokio_modbus::client::rtu::attach_slave(
                l,
                tokio_modbus::Slave(7),
            )),
            None => Err(TransportError::Connect {
                address: "pty".into(),
                source: std::io::Error::other("the line was already used"),
            }),
        }
    }
}

#[tokio::test]
async fn rtu_on_a_serial_line_decodes_exactly() {
    // A pseudo-terminal pair stands in for the RS-485 line: the simulator serves one end, the poller the other.
    let (device_end, poller_end) =
        tokio_serial::SerialStream::pair().expect("a pseudo-terminal pair");
    let id = "BN_KCNQV_NUOC01";
    let h = Harness::new(&station_toml(
        id,
        r#"transport = "rtu"
device = "/dev/ttyUSB0"
baud = 19200
parity = "even"
unit_id = 7
poll_interval = "200ms"
timeout = "1s"
registers = [
  { parameter = "COD", address = 0, type = "f32", order = "CDAB" },
  { parameter = "pH", kind = "input", address = 10, type = "u16", scale = 0.01 },
]
status = { kind = "coil", address = 3, map = { "0" = "measuring", "1" = "maintenance" } }
"#,
    ));
    let mut h = h;
    let m = h.config.stations[0].modbus.clone().unwrap();
    let device = SimDevice::new();
    device.answer_units(&[7]);
    device.set_value(&m.registers[0], 57.5);
    device.set_value(&m.registers[1], 7.05);
    device.set_status(m.status.as_ref().unwrap(), Status::Maintenance);
    let (d, s) = (device.clone(), h.shutdown.clone());
    h.tasks.spawn(async move {
        let _ = quantrac::sim::modbus::run_serial(device_end, d, s).await;
    });
    let station = &h.config.stations[0];
    let poller = Poller::with_connector(
        station,
        m.clone(),
        PtyLine(std::sync::Mutex::new(Some(poller_end))),
        h.pipeline.as_ref().unwrap().ingest(),
        h.health.clone(),
    );
    h.tasks.spawn(poller.run(h.shutdown.clone()));
    h.until("readings over the serial line", |h| {
        h.of(id, "COD").len() >= 3 && !h.of(id, "pH").is_empty()
    })
    .await;
    let (cod, ph) = (&h.of(id, "COD")[0], &h.of(id, "pH")[0]);
    assert_eq!(cod.value, 57.5);
    assert!((ph.value - 7.05).abs() < 1e-12, "{}", ph.value);
    assert_eq!(cod.status, Status::Maintenance);
    let state = h
        .health
        .get(&health_key(&StationId::parse(id).unwrap()))
        .unwrap();
    assert_eq!(state.reconnects, 0, "{state:?}");
    h.stop().await;
}
