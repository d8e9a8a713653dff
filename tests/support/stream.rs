//! A QoS 1 reading stream through a real broker into `quantrac run` processes: the daemon as a child process (JSON
//! log in a file, SIGHUP / SIGTERM / SIGKILL), a persistent-session publisher, message encoding and ledger key sets.
//! Used by the reload and scale-out tests. Every wait has a deadline.

#![allow(dead_code)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::FixedOffset;
use quantrac::config::mqtt::JsonMappingSection;
use quantrac::ledger::query::ReadingFilter;
use quantrac::ledger::Reader;
use quantrac::model::{Parameter, Reading, StationId, Status, Timestamp, Unit};
use quantrac::source::mqtt::payload;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use super::wait_until;

pub const BIN: &str = env!("CARGO_BIN_EXE_quantrac");

/// A ledger key: station, parameter, time (ms).
pub type Key = (String, String, i64);

/// A `[[station]]` table: river discharge under QCVN 40:2011 column B, the given parameters (TOML inline-table
/// body, e.g. `COD = { limit = 100 }, pH = {}`) and extra lines.
pub fn station(id: &str, parameters: &str, extra: &str) -> String {
    format!(
        "[[station]]\nid = \"{id}\"\nname = \"{id}\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 5000\n\
         receiving_water = {{ type = \"river\", flow_m3_s = 120 }}\nparameters = {{ {parameters} }}\n{extra}\n"
    )
}

/// A `[[mqtt.broker]]` table for a broker on loopback.
pub fn broker(port: u16, client_id: &str, extra: &str) -> String {
    format!(
        "[[mqtt.broker]]\nname = \"test\"\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"{client_id}\"\nkeep_alive = \"5s\"\n{extra}\n"
    )
}

/// A reading time: twenty days ago at midnight UTC plus `i` minutes (well inside retention, never in the future).
pub fn minute(i: u64) -> i64 {
    Timestamp::now().millis() / 86_400_000 * 86_400_000 - 20 * 86_400_000 + i as i64 * 60_000
}

/// One message: the readings of `station` at `ts`, as flat JSON on `stations/<id>/data`.
pub fn message(station: &str, ts: i64, values: &[(&str, f64)]) -> (String, Vec<u8>) {
    let readings: Vec<Reading> = values
        .iter()
        .map(|(p, v)| {
            let parameter = Parameter::new(p).unwrap();
            Reading {
                station: StationId::parse(station).unwrap(),
                unit: Unit::new(parameter.standard_unit().unwrap_or("")),
                parameter,
                ts: Timestamp(ts),
                value: *v,
                status: Status::Measuring,
            }
        })
        .collect();
    let tz = FixedOffset::east_opt(7 * 3600).unwrap();
    let mut msgs = payload::encode_json(&JsonMappingSection::default(), &readings, tz);
    (format!("stations/{station}/data"), msgs.remove(0))
}

/// Every reading in a ledger, in commit order.
pub fn stored(db: &Path) -> Vec<quantrac::ledger::query::StoredReading> {
    let Ok(reader) = Reader::open(db) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut f = ReadingFilter {
        limit: 10_000,
        ..Default::default()
    };
    loop {
        let page = reader.readings(&f).unwrap();
        let Some(last) = page.last() else { break };
        f.after_seq = last.seq;
        out.extend(page);
    }
    out
}

pub fn stored_keys(db: &Path) -> Vec<Key> {
    stored(db)
        .into_iter()
        .map(|r| (r.station, r.parameter, r.ts.millis()))
        .collect()
}

pub fn count(db: &Path) -> i64 {
    Reader::open(db)
        .and_then(|r| r.count_readings())
        .unwrap_or(0)
}

/// `quantrac run` as a child process, its JSON log in a file beside the config.
pub struct Quantrac {
    child: Child,
    config: PathBuf,
    log: PathBuf,
}

impl Quantrac {
    pub fn start(config: &Path) -> Quantrac {
        let log = config.with_file_name(format!("quantrac-{}.log", super::free_port()));
        let child = Command::new(BIN)
            .args([
                "--log-format",
                "json",
                "--log",
                "quantrac=debug,info",
                "run",
                "--config",
            ])
            .arg(config)
            .current_dir(config.parent().unwrap())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Quantrac {
            child,
            config: config.to_path_buf(),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The port of [`Quantrac::http`].
    pub fn http_port(&self) -> u16 {
        let http = self.http();
        let port = http.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
        port.unwrap_or_else(|| panic!("no port in {http}"))
    }

    /// The HTTP base URL quantrac reported in its log (it listens on port 0); waits at most 60 s for it.
    pub fn http(&self) -> String {
        super::reported_in_log(&self.log, 0, Duration::from_secs(60)).unwrap_or_else(|| {
            panic!(
                "quantrac did not report its HTTP address; tail:\n{}",
                self.tail(40)
            )
        })
    }

    /// The last `n` log lines, for assertion messages.
    pub fn tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Wait until the log holds `needle` at least `times` times.
    pub fn wait_log(&self, needle: &str, times: usize, limit: Duration) {
        assert!(
            wait_until(limit, || self.log().matches(needle).count() >= times),
            "log never held {needle:?} {times} times; tail:\n{}",
            self.tail(40)
        );
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    pub fn sighup(&self) {
        self.signal("-HUP");
    }

    pub fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        self.signal("-TERM");
        let exited = wait_until(Duration::from_secs(15), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(exited, "quantrac did not exit within 15 s of SIGTERM");
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "exit status {status}; log:\n{}",
            self.tail(40)
        );
    }

    pub fn config(&self) -> &Path {
        &self.config
    }
}

impl Drop for Quantrac {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A QoS 1 publisher with a persistent session: it retransmits what the broker has not acked after a reconnect.
pub struct Publisher {
    client: AsyncClient,
    acked: Arc<AtomicU64>,
    rt: tokio::runtime::Runtime,
}

impl Publisher {
    pub fn connect(port: u16, id: &str) -> Publisher {
        Publisher::connect_as(port, id, None)
    }

    /// Connect with a user name and password (`None`: anonymous).
    pub fn connect_as(port: u16, id: &str, credentials: Option<(&str, &str)>) -> Publisher {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_inflight(100)
            .set_max_packet_size(2 << 20, 2 << 20);
        if let Some((user, password)) = credentials {
            o.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        let acked = Arc::new(AtomicU64::new(0));
        let a = acked.clone();
        rt.spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        a.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    // Reconnect pause (rumqttc would retry at once), not synchronisation.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Publisher { client, acked, rt }
    }

    pub fn publish(&self, (topic, payload): (String, Vec<u8>)) {
        let c = self.client.clone();
        self.rt
            .block_on(async move { c.publish(topic, QoS::AtLeastOnce, false, payload).await })
            .unwrap();
    }

    /// Publish `make(i)` for i = 0, 1, … from a background thread, `pause` apart, until `stop` is set (or `max`
    /// messages). The thread returns how many it published.
    pub fn stream(
        &self,
        make: impl Fn(u64) -> (String, Vec<u8>) + Send + 'static,
        pause: Duration,
        max: u64,
        stop: Arc<AtomicBool>,
        published: Arc<AtomicU64>,
    ) -> std::thread::JoinHandle<u64> {
        let c = self.client.clone();
        let handle = self.rt.handle().clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while i < max && !stop.load(Ordering::SeqCst) {
                let (topic, m) = make(i);
                let c = c.clone();
                handle
                    .block_on(async move { c.publish(topic, QoS::AtLeastOnce, false, m).await })
                    .unwrap();
                i += 1;
                published.store(i, Ordering::SeqCst);
                if !pause.is_zero() {
                    std::thread::sleep(pause); // pacing the stream, not waiting for anything
                }
            }
            i
        })
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    pub fn wait_acked(&self, n: u64, limit: Duration) {
        assert!(
            wait_until(limit, || self.acked() >= n),
            "the broker acked {} of {n} publishes",
            self.acked()
        );
    }
}

/// Assert that `stored` holds each key of `want` exactly once and nothing else.
pub fn assert_exact(stored: &[Key], want: &HashSet<Key>) {
    let unique: HashSet<&Key> = stored.iter().collect();
    assert_eq!(
        stored.len(),
        unique.len(),
        "{} keys stored more than once",
        stored.len() - unique.len()
    );
    let missing = want.iter().filter(|k| !unique.contains(k)).count();
    let extra = unique.iter().filter(|k| !want.contains(**k)).count();
    assert!(
        missing == 0 && extra == 0,
        "{missing} keys missing, {extra} unexpected keys (of {} wanted)",
        want.len()
    );
}
