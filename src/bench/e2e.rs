//! `quantrac bench e2e`: the whole daemon at the machine's limit. Publishers → Mosquitto → `quantrac run` (a child
//! process: ledger, aggregates, events, alerts, live view, an InfluxDB forwarder) → a local VictoriaMetrics.
//!
//! Each build (this executable, and `--compare <other quantrac>`) runs the same streams in one invocation:
//! - **realistic**: diurnal values, about 2 % of readings over their limit, stamped about when they are published;
//! - **harsh**: half the readings over their limit (three over, three under, per series), stamped one to two days
//!   late (every reading is flagged late; events open and close all the time).
//!
//! Printed per run: readings/s end to end (first publish → every point counted in VictoriaMetrics), readings lost
//! (ledger count) and extra points in VictoriaMetrics (duplicates), quantrac's CPU µs per reading by thread name,
//! Mosquitto's and VictoriaMetrics' CPU, quantrac's RSS before, at peak and after an idle pause; and, as bounds in
//! the same invocation, `mosquitto_sub` receiving the same stream and a bare loop writing the same points to
//! VictoriaMetrics. Needs `mosquitto`, `mosquitto_sub` and `victoria-metrics` on the PATH.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::compliance::{resolve_limits, LimitBound};
use crate::config::Config;
use crate::model::{Reading, Status, Timestamp};
use crate::source::mqtt::payload;

use super::mqtt::{prime_session, Broker};
use super::support::{post_bodies, since, thread_times, ThreadTime};

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The topic filter quantrac subscribes to (from its `stations/{station}/data` template).
pub(super) const FILTER: &str = "stations/+/data";
/// quantrac's MQTT client id in the generated config.
pub(super) const CLIENT_ID: &str = "quantrac-e2e";
/// Publisher connections (stations are spread over them).
const PUBLISHERS: usize = 8;

/// Which stream the publishers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Realistic,
    Harsh,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Realistic => "realistic",
            Stream::Harsh => "harsh",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Readings per burst.
    pub readings: usize,
    pub bursts: usize,
    pub stations: usize,
    /// Another quantrac binary run the same way after this one.
    pub compare: Option<PathBuf>,
    pub streams: Vec<Stream>,
    /// Idle pause after the last burst before the last RSS sample.
    pub idle: Duration,
}

/// Run every stream with every build, after the bounds.
pub async fn run(opts: Options) -> Result<(), BoxError> {
    for tool in ["mosquitto", "mosquitto_sub", "victoria-metrics"] {
        if Command::new(tool)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return Err(format!("{tool} not found on the PATH (Debian: mosquitto, mosquitto-clients, victoria-metrics)").into());
        }
    }
    let mut builds = vec![("this build".to_string(), std::env::current_exe()?)];
    if let Some(other) = &opts.compare {
        builds.push((format!("compare {}", other.display()), other.clone()));
    }
    println!(
        "quantrac bench e2e: {} readings × {} burst(s), {} stations, QoS 1, 10 readings per message, {PUBLISHERS} publisher connections",
        opts.readings, opts.bursts, opts.stations
    );
    for (name, exe) in &builds {
        println!("  {name}: {}", exe.display());
    }
    for stream in &opts.streams {
        println!("\n== {} stream", stream.name());
        bounds(&opts, *stream).await?;
        for (name, exe) in &builds {
            let report = run_daemon(&opts, *stream, exe)
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            println!("-- {name}");
            report.print(opts.readings);
        }
    }
    Ok(())
}

/// A run's temp folder, removed when dropped.
pub(super) struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> std::io::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!(
            "quantrac-bench-{tag}-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed when dropped.
pub(super) struct Kid(pub Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A local VictoriaMetrics keeping its data under `dir`, answering queries on what it just took in (no latency
/// offset, no result cache).
pub(super) struct Victoria {
    pub kid: Kid,
    pub url: String,
    client: reqwest::Client,
}

impl Victoria {
    pub async fn start(dir: &Path) -> Result<Victoria, BoxError> {
        let port = free_port()?;
        let child = Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.join("vm").display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start victoria-metrics: {e}"))?;
        let vm = Victoria {
            kid: Kid(child),
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = vm
                .client
                .get(format!("{}/health", vm.url))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if up {
                return Ok(vm);
            }
            if Instant::now() > deadline {
                return Err("victoria-metrics did not answer /health within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many samples of `metric` VictoriaMetrics holds (every sample counts, duplicates too).
    pub async fn count(&self, metric: &str) -> Result<u64, BoxError> {
        let at = Timestamp::now().millis() / 1000 + 86_400;
        let resp = self
            .client
            .get(format!("{}/api/v1/query", self.url))
            .query(&[
                ("query", format!("sum(count_over_time({metric}[30d]))")),
                ("time", at.to_string()),
            ])
            .timeout(Duration::from_secs(30))
            .send()
            .await?
            .error_for_status()?
            .json::<serde_json::Value>()
            .await?;
        let v = &resp["data"]["result"][0]["value"][1];
        Ok(v.as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0) as u64)
    }

    /// Wait until `metric` has at least `want` samples; the count reached. Errors after `limit`.
    pub async fn wait_for(
        &self,
        metric: &str,
        want: u64,
        limit: Duration,
    ) -> Result<u64, BoxError> {
        let deadline = Instant::now() + limit;
        loop {
            let n = self.count(metric).await?;
            if n >= want {
                return Ok(n);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "VictoriaMetrics holds {n} of {want} {metric} points after {} s",
                    limit.as_secs()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub(super) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The daemon's config: `stations` bench stations, the MQTT source on `mqtt_port` (nested JSON), an InfluxDB
/// forwarder to `vm_url`, the API on `http_port`. Only keys the builds of December 2026 know.
pub(super) fn daemon_config(
    stations: usize,
    mqtt_port: u16,
    vm_url: &str,
    http_port: u16,
) -> String {
    format!(
        "[daemon]\nfuture_skew = \"10m\"\n\n[http]\nlisten = \"127.0.0.1:{http_port}\"\nanonymous_read = true\n\n\
         [ledger]\npath = \"e2e.db\"\n\n\
         [[mqtt.broker]]\nname = \"bench\"\nhost = \"127.0.0.1\"\nport = {mqtt_port}\nclient_id = \"{CLIENT_ID}\"\n\
         topics = [\"stations/{{station}}/data\"]\n\n\
         [mqtt.broker.json]\ntimestamp = \"time\"\nvalues = \"values\"\nvalue_key = \"v\"\nstatus_key = \"s\"\n\n\
         [[forward.influx]]\nname = \"vm\"\nurl = \"{vm_url}\"\nbucket = \"bench\"\n\n{}",
        super::support::bench_config(stations)
    )
}

/// Messages of one burst, in publish order (stations round-robin), as (topic, payload).
pub(super) struct Generator {
    config: Config,
    limits: Vec<Vec<Option<LimitBound>>>,
    stream: Stream,
    /// Messages sent so far per station (bursts continue the series).
    sent: usize,
    /// Realistic stream: the last timestamp used, so a later burst continues after it.
    last_ts: i64,
    start_ts: i64,
}

impl Generator {
    pub fn new(config_text: &str, stream: Stream) -> Result<Generator, BoxError> {
        let config = Config::from_str(config_text, Path::new("<bench e2e>"), Path::new("."))?;
        let limits = resolve_limits(&config)?;
        let limits = config
            .stations
            .iter()
            .map(|s| {
                s.parameters
                    .iter()
                    .map(|p| {
                        limits
                            .get(&s.id)
                            .and_then(|l| l.get(&p.parameter))
                            .and_then(|l| l.bound)
                    })
                    .collect()
            })
            .collect();
        Ok(Generator {
            config,
            limits,
            stream,
            sent: 0,
            last_ts: 0,
            start_ts: Timestamp::now().millis() - 2 * 86_400_000,
        })
    }

    /// The next `messages` messages (a whole number of rounds over the stations is not required).
    pub fn burst(&mut self, messages: usize) -> Vec<(String, Vec<u8>)> {
        let mapping = payload::JsonMappingSection {
            timestamp: "time".into(),
            timestamp_format: "rfc3339".into(),
            status: "status".into(),
            values: "values".into(),
            value_key: Some("v".into()),
            status_key: Some("s".into()),
        };
        let n = self.config.stations.len();
        let fresh_start = (Timestamp::now().millis() - 30_000).max(self.last_ts + 4);
        let first_round = self.sent / n;
        let mut out = Vec::with_capacity(messages);
        for i in 0..messages {
            let si = (self.sent + i) % n;
            let k = (self.sent + i) / n;
            let ts = match self.stream {
                // About as fast as the publishers go: 4 ms per message and station.
                Stream::Realistic => fresh_start + (k - first_round) as i64 * 4,
                // One message per station and second, from two days ago.
                Stream::Harsh => self.start_ts + k as i64 * 1000,
            };
            self.last_ts = self.last_ts.max(ts);
            let st = &self.config.stations[si];
            let readings: Vec<Reading> = st
                .parameters
                .iter()
                .enumerate()
                .map(|(pi, p)| Reading {
                    station: st.id.clone(),
                    parameter: p.parameter.clone(),
                    ts: Timestamp(ts),
                    value: self.value(self.limits[si][pi], k, si * 16 + pi),
                    unit: p.unit.clone(),
                    status: Status::Measuring,
                })
                .collect();
            let topic = format!("stations/{}/data", st.id);
            for m in payload::encode_json(&mapping, &readings, self.config.timezone) {
                out.push((topic.clone(), m));
            }
        }
        self.sent += messages;
        out
    }

    /// The value of reading `k` of series `series` under `limit`.
    fn value(&self, limit: Option<LimitBound>, k: usize, series: usize) -> f64 {
        let over = match self.stream {
            Stream::Realistic => (k * 10 + series * 7).is_multiple_of(50),
            Stream::Harsh => (k / 3 + series).is_multiple_of(2),
        };
        // A day's swing every 2,000 messages of a station (realistic) or a flat level (harsh), and a little noise.
        let phase = (k % 2000) as f64 / 2000.0;
        let level = match self.stream {
            Stream::Realistic => 0.55 + 0.2 * (phase * std::f64::consts::TAU).sin(),
            Stream::Harsh => 0.5,
        } + ((k * 7919 + series * 31) % 100) as f64 / 2000.0;
        let v = match limit {
            Some(LimitBound::Max(m)) if over => m * 1.4,
            Some(LimitBound::Max(m)) => m * level,
            Some(LimitBound::Range(_, hi)) if over => hi + 0.6,
            Some(LimitBound::Range(lo, hi)) => lo + (hi - lo) * level,
            None => 40.0 + 60.0 * level,
        };
        (v * 100.0).round() / 100.0
    }
}

/// Publish `messages` over [`PUBLISHERS`] connections (QoS 1, each topic on one connection) as fast as the broker takes them; returns when every
/// publish is acked. Errors after `limit`.
pub(super) async fn publish_all(
    port: u16,
    messages: Vec<(String, Vec<u8>)>,
    tag: &str,
    limit: Duration,
) -> Result<(), BoxError> {
    // A station publishes over one connection, so its messages reach the broker (and quantrac) in order.
    let mut lanes: Vec<Vec<(String, Vec<u8>)>> = (0..PUBLISHERS).map(|_| Vec::new()).collect();
    let mut lane_of = std::collections::HashMap::new();
    for m in messages {
        let next = lane_of.len() % PUBLISHERS;
        let lane = *lane_of.entry(m.0.clone()).or_insert(next);
        lanes[lane].push(m);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, lane) in lanes.into_iter().enumerate() {
        tasks.spawn(publish_lane(
            port,
            format!("bench-{tag}-pub{i}"),
            lane,
            limit,
        ));
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// One publisher connection sending `messages` and waiting for their acks.
pub(super) async fn publish_lane(
    port: u16,
    id: String,
    messages: Vec<(String, Vec<u8>)>,
    limit: Duration,
) -> Result<(), BoxError> {
    let want = messages.len();
    if want == 0 {
        return Ok(());
    }
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    // A persistent session: a dropped connection retransmits instead of losing publishes.
    o.set_inflight(100)
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 1000);
    let producer = tokio::spawn(async move {
        for (topic, payload) in messages {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await?;
        }
        Ok::<_, rumqttc::ClientError>(client)
    });
    let mut acked = 0;
    let deadline = Instant::now() + limit;
    while acked < want && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => {
                eprintln!("bench publisher: {e}; reconnecting");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    if acked < want {
        producer.abort();
        return Err(format!(
            "only {acked} of {want} publishes were acked within {} s",
            limit.as_secs()
        )
        .into());
    }
    let client = producer.await??;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
    Ok(())
}

/// A field of /proc/<pid>/status in KiB (`VmRSS`, `VmHWM`); 0 when unreadable.
pub(super) fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Samples a process's VmRSS every 20 ms on a thread of its own and keeps the highest.
pub(super) struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssPeak {
    pub fn start(pid: u32) -> RssPeak {
        let (peak, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    p.fetch_max(status_kib(pid, "VmRSS"), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
            .ok();
        RssPeak { peak, stop, thread }
    }

    /// The highest sample so far, in KiB; the sampling goes on.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Start a new peak from now.
    pub fn reset(&self) {
        self.peak.store(0, Ordering::Relaxed);
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// CPU seconds (on a core) of every thread of `pid`, summed.
pub(super) fn cpu_of(pid: u32) -> f64 {
    thread_times(&pid.to_string()).values().map(|t| t.run).sum()
}

/// `quantrac run` as a child, its API's base URL once /healthz answers.
pub(super) struct Daemon {
    pub kid: Kid,
    pub api: String,
    pub dir: PathBuf,
}

impl Daemon {
    /// Start `exe run --config <dir>/quantrac.toml` (log in `<dir>/quantrac.log`).
    pub async fn start(
        exe: &Path,
        dir: &Path,
        config: &str,
        http_port: u16,
    ) -> Result<Daemon, BoxError> {
        let path = dir.join("quantrac.toml");
        std::fs::write(&path, config)?;
        let log = std::fs::File::create(dir.join("quantrac.log"))?;
        let child = Command::new(exe)
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let mut d = Daemon {
            kid: Kid(child),
            api: format!("http://127.0.0.1:{http_port}"),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = d.kid.0.try_wait()? {
                return Err(
                    format!("quantrac exited at start ({status}): {}", d.log_tail()).into(),
                );
            }
            let up = client
                .get(format!("{}/healthz", d.api))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if up {
                return Ok(d);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "quantrac did not answer /healthz within 60 s: {}",
                    d.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.kid.0.id()
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("quantrac.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// Sum of a counter family in its /metrics (e.g. `quantrac_readings_duplicate_total`); 0 when absent.
    pub async fn metric(&self, name: &str) -> f64 {
        let Ok(resp) = reqwest::get(format!("{}/metrics", self.api)).await else {
            return 0.0;
        };
        let text = resp.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// SIGTERM, then wait up to 30 s for the orderly shutdown; its exit status or a description.
    pub fn stop(mut self) -> String {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.kid.0.try_wait() {
                return s.to_string();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        "did not stop within 30 s (killed)".into()
    }
}

/// The whole set-up of one run: a broker, a VictoriaMetrics, quantrac with the generated config, the generator.
pub(super) struct Rig {
    pub dir: TempDir,
    pub broker: Broker,
    pub mqtt_port: u16,
    pub vm: Victoria,
    pub daemon: Daemon,
    pub generator: Generator,
}

impl Rig {
    pub async fn start(exe: &Path, stations: usize, stream: Stream) -> Result<Rig, BoxError> {
        let dir = TempDir::new("e2e")?;
        let (broker, mqtt_port) = Broker::start(&dir.0, None).await?;
        let vm = Victoria::start(&dir.0).await?;
        let http_port = free_port()?;
        let config = daemon_config(stations, mqtt_port, &vm.url, http_port);
        let generator = Generator::new(&config, stream)?;
        // The broker keeps quantrac's session from now on: nothing published before it subscribes is lost.
        prime_session(mqtt_port, CLIENT_ID, FILTER).await?;
        let daemon = Daemon::start(exe, &dir.0, &config, http_port).await?;
        Ok(Rig {
            dir,
            broker,
            mqtt_port,
            vm,
            daemon,
            generator,
        })
    }

    /// One message per station, through to VictoriaMetrics, before anything is measured: VictoriaMetrics makes a
    /// new series searchable only seconds after its first point, which would be counted as quantrac's time. The
    /// readings sent.
    pub async fn warm_up(&mut self) -> Result<u64, BoxError> {
        let n = self.generator.config.stations.len();
        publish_all(
            self.mqtt_port,
            self.generator.burst(n),
            "warm",
            Duration::from_secs(60),
        )
        .await?;
        let want = (n * 10) as u64;
        self.vm
            .wait_for("reading_value", want, Duration::from_secs(60))
            .await
            .map_err(|e| format!("warm-up: {e}; {}", self.daemon.log_tail()))?;
        Ok(want)
    }

    /// Copy quantrac's log out of the run's folder (which is removed at the end); where it went.
    pub fn keep_log(&self, tag: &str) -> PathBuf {
        let to =
            std::env::temp_dir().join(format!("quantrac-bench-{tag}-{}.log", std::process::id()));
        let _ = std::fs::copy(self.dir.0.join("quantrac.log"), &to);
        to
    }

    /// Readings in quantrac's ledger (read beside the running daemon).
    pub fn ledger_count(&self) -> Result<i64, BoxError> {
        Ok(crate::ledger::Reader::open(&self.dir.0.join("e2e.db"))?.count_readings()?)
    }
}

/// One burst's figures.
struct Burst {
    secs: f64,
    publish_secs: f64,
    quantrac: BTreeMap<String, ThreadTime>,
    mosquitto: f64,
    victoria: f64,
    peak_kib: u64,
}

/// One build's run of one stream.
struct Report {
    bursts: Vec<Burst>,
    rss_before: u64,
    rss_after_idle: u64,
    /// Of the two: the process's own memory (heap, stacks) and pages mapped from files (the binary's code).
    anon_before: u64,
    anon_after_idle: u64,
    hwm: u64,
    idle_secs: u64,
    ledger: i64,
    vm_points: u64,
    want: u64,
    duplicates: f64,
    /// Ledger transactions over the whole run (warm-up included): readings per commit is the group-commit size.
    commits: f64,
    events: f64,
    alerts: f64,
    /// The alerts by kind, e.g. `exceedance 2400, violation 200 + 16 withdrawn`.
    alert_kinds: String,
    stopped: String,
}

impl Report {
    fn print(&self, per_burst: usize) {
        let mib = |k: u64| k as f64 / 1024.0;
        for (i, b) in self.bursts.iter().enumerate() {
            let total: f64 = b.quantrac.values().map(|t| t.run).sum();
            let us = |s: f64| s * 1e6 / per_burst as f64;
            println!(
                "  burst {}: {:.0} readings/s end to end ({:.2} s; publishers done at {:.2} s); quantrac {:.2} µs/reading \
                 (mosquitto {:.2}, victoria-metrics {:.2}); peak RSS {:.0} MiB",
                i + 1,
                per_burst as f64 / b.secs,
                b.secs,
                b.publish_secs,
                us(total),
                us(b.mosquitto),
                us(b.victoria),
                mib(b.peak_kib)
            );
            let mut split: Vec<(&String, &ThreadTime)> =
                b.quantrac.iter().filter(|(_, t)| t.run > 0.0005).collect();
            split.sort_by(|a, b| b.1.run.total_cmp(&a.1.run));
            let parts: Vec<String> = split
                .iter()
                .map(|(k, t)| format!("{k} {:.2} (+{:.2} waiting)", us(t.run), us(t.wait)))
                .collect();
            println!("    µs/reading by thread: {}", parts.join(", "));
        }
        println!(
            "  RSS: {:.0} MiB before, peak {:.0} MiB (VmHWM {:.0}), {:.0} MiB after {} s idle; of which anonymous \
             (heap, stacks) {:.1} MiB before, {:.1} MiB after idle, the rest file pages (the binary's code)",
            mib(self.rss_before),
            mib(self.bursts.iter().map(|b| b.peak_kib).max().unwrap_or(0)),
            mib(self.hwm),
            mib(self.rss_after_idle),
            self.idle_secs,
            mib(self.anon_before),
            mib(self.anon_after_idle)
        );
        println!(
            "  readings: {} sent, {} in the ledger (lost {}), {} reading points in VictoriaMetrics (extra {}), \
             {:.0} redelivered duplicates, {:.0} commits ({:.0} readings each); {:.0} compliance events, {:.0} alerts \
             ({}); stopped: {}",
            self.want,
            self.ledger,
            self.want as i64 - self.ledger,
            self.vm_points,
            self.vm_points as i64 - self.want as i64,
            self.duplicates,
            self.commits,
            self.ledger as f64 / self.commits.max(1.0),
            self.events,
            self.alerts,
            self.alert_kinds,
            self.stopped
        );
    }
}

/// Time allowed for one burst: generous, so only a stall fails.
pub(super) fn burst_limit(readings: usize) -> Duration {
    Duration::from_secs(120 + readings as u64 / 5_000)
}

async fn run_daemon(opts: &Options, stream: Stream, exe: &Path) -> Result<Report, BoxError> {
    let mut rig = Rig::start(exe, opts.stations, stream).await?;
    let pid = rig.daemon.pid();
    let (mosq, vm_pid) = (rig.broker.0.id(), rig.vm.kid.0.id());
    let warm = rig.warm_up().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = status_kib(pid, "VmRSS");
    let anon_before = status_kib(pid, "RssAnon");
    let sampler = RssPeak::start(pid);
    let messages = (opts.readings / 10).max(1);
    let limit = burst_limit(opts.readings);
    let mut bursts = Vec::new();
    for b in 0..opts.bursts {
        let batch = rig.generator.burst(messages);
        let want = warm + (messages * 10 * (b + 1)) as u64;
        sampler.reset();
        let (q0, m0, v0) = (thread_times(&pid.to_string()), cpu_of(mosq), cpu_of(vm_pid));
        let started = Instant::now();
        publish_all(rig.mqtt_port, batch, "e2e", limit).await?;
        let publish_secs = started.elapsed().as_secs_f64();
        rig.vm
            .wait_for("reading_value", want, limit)
            .await
            .map_err(|e| {
                format!(
                    "{e}; ledger holds {:?}; {}",
                    rig.ledger_count().ok(),
                    rig.daemon.log_tail()
                )
            })?;
        let secs = started.elapsed().as_secs_f64();
        let (q1, m1, v1) = (thread_times(&pid.to_string()), cpu_of(mosq), cpu_of(vm_pid));
        bursts.push(Burst {
            secs,
            publish_secs,
            quantrac: since(&q0, q1),
            mosquitto: m1 - m0,
            victoria: v1 - v0,
            peak_kib: sampler.peak(),
        });
    }
    tokio::time::sleep(opts.idle).await;
    let rss_after_idle = status_kib(pid, "VmRSS");
    let anon_after_idle = status_kib(pid, "RssAnon");
    let hwm = status_kib(pid, "VmHWM");
    drop(sampler);
    let want = warm + (messages * 10 * opts.bursts) as u64;
    let vm_points = rig.vm.count("reading_value").await?;
    let ledger = rig.ledger_count()?;
    let duplicates = rig.daemon.metric("quantrac_readings_duplicate_total").await;
    let commits = rig.daemon.metric("quantrac_ledger_commits_total").await;
    let (events, alerts, alert_kinds) = event_and_alert_counts(&rig.dir.0.join("e2e.db"));
    if ledger != want as i64 || vm_points != want {
        println!("  (quantrac's log kept: {})", rig.keep_log("e2e").display());
    }
    let Rig { daemon, .. } = rig;
    let stopped = daemon.stop();
    Ok(Report {
        bursts,
        rss_before,
        rss_after_idle,
        anon_before,
        anon_after_idle,
        hwm,
        idle_secs: opts.idle.as_secs(),
        ledger,
        vm_points,
        want,
        duplicates,
        commits,
        events,
        alerts,
        alert_kinds,
        stopped,
    })
}

/// Compliance events and alerts the ledger holds, and the alerts by kind (for the stream's character; -1 when
/// unreadable).
fn event_and_alert_counts(path: &Path) -> (f64, f64, String) {
    let Ok(r) = crate::ledger::Reader::open(path) else {
        return (-1.0, -1.0, String::new());
    };
    let (e, a) = r.count_events_and_alerts().unwrap_or((-1, -1));
    let kinds = r.alerts_by_kind().unwrap_or_default();
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(k, n, withdrawn)| match withdrawn {
            0 => format!("{k} {n}"),
            w => format!("{k} {n} + {w} withdrawn"),
        })
        .collect();
    (e as f64, a as f64, kinds.join(", "))
}

/// The bounds, in the same invocation: `mosquitto_sub` receiving the stream live from the same publishers, and a
/// bare loop writing the same number of reading points to VictoriaMetrics (pre-encoded, 5,000 lines a request, one
/// request at a time; not gzipped, as the daemon sends to a server on this machine).
async fn bounds(opts: &Options, stream: Stream) -> Result<(), BoxError> {
    let dir = TempDir::new("e2e-bounds")?;
    let (broker, port) = Broker::start(&dir.0, None).await?;
    let config = daemon_config(opts.stations, port, "http://127.0.0.1:1", 1);
    let mut generator = Generator::new(&config, stream)?;
    let messages = (opts.readings / 10).max(1);
    let batch = generator.burst(messages);
    // A persistent session first, so nothing is published before mosquitto_sub listens.
    prime_session(port, "bench-sub", FILTER).await?;
    let mut sub = Kid(Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            "-i",
            "bench-sub",
            "-q",
            "1",
        ])
        .args(["-t", FILTER, "-C", &messages.to_string()])
        .stdout(Stdio::null())
        .spawn()?);
    let (mosq, sub_pid) = (broker.0.id(), sub.0.id());
    let m0 = cpu_of(mosq);
    let started = Instant::now();
    let publisher = tokio::spawn(publish_all(
        port,
        batch,
        "bounds",
        burst_limit(opts.readings),
    ));
    let deadline = Instant::now() + burst_limit(opts.readings);
    let mut sub_cpu = 0.0;
    // Sampled until it exits (its /proc entry goes when it is reaped).
    while sub.0.try_wait()?.is_none() {
        sub_cpu = cpu_of(sub_pid).max(sub_cpu);
        if Instant::now() > deadline {
            return Err("mosquitto_sub did not receive the whole stream in time".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    publisher.await??;
    let mosq_cpu = cpu_of(mosq) - m0;
    let n = (messages * 10) as f64;
    println!(
        "bound: mosquitto_sub receives the stream live at {:.0} readings/s ({secs:.2} s; mosquitto {:.2} µs/reading, \
         mosquitto_sub {:.2})",
        n / secs,
        mosq_cpu * 1e6 / n,
        sub_cpu * 1e6 / n
    );
    drop(broker);
    let vm = Victoria::start(&dir.0).await?;
    let (secs, vm_cpu) = bare_vm_loop(&vm, &generator, messages * 10).await?;
    println!(
        "bound: bare VictoriaMetrics write loop {:.0} points/s ({secs:.2} s; victoria-metrics {:.2} µs/point)",
        n / secs,
        vm_cpu * 1e6 / n
    );
    Ok(())
}

/// Post `points` pre-encoded reading lines (value, limit, ratio) to `vm` in plain batches of 5,000 until it
/// counts them all; the seconds it took and VictoriaMetrics' CPU seconds.
async fn bare_vm_loop(vm: &Victoria, g: &Generator, points: usize) -> Result<(f64, f64), BoxError> {
    let stations = &g.config.stations;
    let t0 = Timestamp::now().millis() - 86_400_000;
    let mut bodies = Vec::new();
    let mut text = String::new();
    for i in 0..points {
        let st = &stations[(i / 10) % stations.len()];
        let p = &st.parameters[i % st.parameters.len()];
        let ts = t0 + (i / 10 / stations.len()) as i64 * 1000;
        text.push_str(&format!(
            "reading,station={},parameter={} value={:.2},limit=150,ratio={:.3} {ts}\n",
            st.id,
            p.parameter.as_str(),
            40.0 + (i % 89) as f64,
            (40.0 + (i % 89) as f64) / 150.0
        ));
        if (i + 1).is_multiple_of(5000) || i + 1 == points {
            bodies.push(std::mem::take(&mut text).into_bytes());
        }
    }
    let client = reqwest::Client::new();
    // Every series once, a day earlier, so that the timed loop does not wait for new series to become searchable.
    let warm: String = stations
        .iter()
        .flat_map(|st| {
            st.parameters.iter().map(move |p| {
                format!(
                    "reading,station={},parameter={} value=1 {}\n",
                    st.id,
                    p.parameter.as_str(),
                    t0 - 86_400_000
                )
            })
        })
        .collect();
    let warm_points = warm.lines().count() as u64;
    client
        .post(format!("{}/api/v2/write", vm.url))
        .query(&[("bucket", "bench"), ("precision", "ms")])
        .body(warm)
        .send()
        .await?
        .error_for_status()?;
    vm.wait_for("reading_value", warm_points, Duration::from_secs(60))
        .await?;
    let v0 = cpu_of(vm.kid.0.id());
    let started = Instant::now();
    post_bodies(&client, &vm.url, bodies).await?;
    vm.wait_for(
        "reading_value",
        warm_points + points as u64,
        Duration::from_secs(60),
    )
    .await?;
    Ok((started.elapsed().as_secs_f64(), cpu_of(vm.kid.0.id()) - v0))
}
