//! `quantrac bench mqtt`: readings/s committed to the ledger from a real Mosquitto (QoS 1, 10 readings per message),
//! printed beside the rate at which `mosquitto_sub` receives the same stream in the same run.
//!
//! Both subscribers first create a persistent session, then the whole stream is published while they are away, then
//! both connect at the same moment and drain the backlog: the rates measure the subscribers, not the publisher.
//! Needs `mosquitto` and `mosquitto_sub` on the PATH (Debian: `mosquitto`, `mosquitto-clients`).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;

use crate::compliance::resolve_limits;
use crate::config::mqtt::JsonMappingSection;
use crate::config::Config;
use crate::health::Health;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::model::{Reading, Timestamp};
use crate::pipeline::Pipeline;
use crate::sim::StationSim;
use crate::source::mqtt::payload;
use crate::source::mqtt::subscriber::{run as subscribe, Subscriber};

use super::support::{since, thread_times, ThreadTime};

type BoxError = Box<dyn std::error::Error>;

const STATIONS: usize = 100;
/// Runs per broker setting: the two subscribers share two cores with the broker, so single runs scatter.
const RUNS: usize = 5;
const FILTER: &str = "stations/+/data";

/// Run the benchmark with `readings` readings (a tenth as many messages) for two broker in-flight windows.
pub async fn run(readings: usize) -> Result<(), BoxError> {
    for tool in ["mosquitto", "mosquitto_sub"] {
        if Command::new(tool).arg("--help").output().is_err() {
            return Err(format!(
                "{tool} not found; install the mosquitto and mosquitto-clients packages"
            )
            .into());
        }
    }
    let messages = (readings / 10).max(1);
    println!(
        "quantrac bench mqtt: {messages} messages x 10 readings, QoS 1, {STATIONS} stations, ledger synchronous=full"
    );
    println!(
        "{:<28} {:>16} {:>22} {:>8} {:>10}",
        "broker max_inflight", "quantrac rdg/s", "mosquitto_sub rdg/s", "ratio", "lost"
    );
    let decode = decode_rate(messages)?;
    for inflight in [20u32, 1000] {
        let label = if inflight == 20 {
            format!("{inflight} (Mosquitto default)")
        } else {
            inflight.to_string()
        };
        let mut ratios = Vec::new();
        for _ in 0..RUNS {
            let r = once(messages, inflight).await?;
            let ratio = 100.0 * r.quantrac / r.mosquitto_sub;
            ratios.push(ratio);
            println!(
                "{label:<28} {:>16.0} {:>22.0} {ratio:>7.0}% {:>10}",
                r.quantrac, r.mosquitto_sub, r.lost
            );
            println!("    {}", r.drain);
        }
        ratios.sort_by(f64::total_cmp);
        println!("{label:<28} median ratio {:.0}%", ratios[ratios.len() / 2]);
    }
    println!("decode only (topic → station, JSON → readings, no ledger): {decode:.0} readings/s");
    println!("the ledger alone: see `quantrac bench ledger`");
    Ok(())
}

/// Readings/s the subscriber's decoding turns messages into batches, without broker or ledger.
fn decode_rate(messages: usize) -> Result<f64, BoxError> {
    let config = bench_config(&std::env::temp_dir(), 1883)?;
    let sub = Subscriber::new(&config, &config.mqtt.brokers[0]);
    let mapping = JsonMappingSection::default();
    let publishes: Vec<rumqttc::Publish> = (0..messages)
        .map(|i| {
            let st = &config.stations[i % config.stations.len()];
            let sim = StationSim::new(st, &Default::default(), 7);
            let ts = Timestamp(1_700_000_000_000 + (i / STATIONS) as i64 * 60_000);
            let mut readings = sim.sample(ts, ts);
            readings
                .iter_mut()
                .for_each(|r| r.status = crate::model::Status::Measuring);
            let payload = payload::encode_json(&mapping, &readings, config.timezone).concat();
            rumqttc::Publish::new(
                format!("stations/{}/data", st.id),
                QoS::AtLeastOnce,
                payload,
            )
        })
        .collect();
    let started = Instant::now();
    let mut readings = 0;
    for chunk in publishes.chunks(256) {
        readings += sub.batch(chunk).readings.len();
    }
    Ok(readings as f64 / started.elapsed().as_secs_f64())
}

struct Rates {
    quantrac: f64,
    mosquitto_sub: f64,
    lost: i64,
    drain: Drain,
}

/// Where the CPU went while quantrac drained the stream (from its start until quantrac had committed everything).
struct Drain {
    secs: f64,
    quantrac: BTreeMap<String, ThreadTime>,
    mosquitto: f64,
    mosquitto_sub: f64,
    commits: u64,
    readings: u64,
}

impl std::fmt::Display for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = |name: &str| self.quantrac.get(name).copied().unwrap_or_default();
        let others: f64 = self
            .quantrac
            .iter()
            .filter(|(k, _)| !["ledger-writer", "tokio-rt-worker"].contains(&k.as_str()))
            .map(|(_, v)| v.run)
            .sum();
        let writer = t("ledger-writer");
        write!(
            f,
            "CPU s in quantrac's {:.2} s: ledger writer {:.2} (+{:.2} waiting for a core), tokio {:.2}, other {:.2}; \
             mosquitto {:.2}, mosquitto_sub {:.2}; {} commits of {:.0} readings",
            self.secs,
            writer.run,
            writer.wait,
            t("tokio-rt-worker").run,
            others,
            self.mosquitto,
            self.mosquitto_sub,
            self.commits,
            self.readings as f64 / self.commits.max(1) as f64
        )
    }
}

/// A Mosquitto of its own, stopped when dropped.
pub(super) struct Broker(pub(super) Child);

impl Broker {
    /// Start Mosquitto on a free loopback port with `max_inflight_messages` = `inflight` (`None`: Mosquitto's default,
    /// 20), its config in `dir`; once it accepts connections, the broker and its port.
    pub(super) async fn start(
        dir: &Path,
        inflight: Option<u32>,
    ) -> Result<(Broker, u16), Box<dyn std::error::Error + Send + Sync>> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        std::fs::write(
            dir.join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n{}max_queued_messages 0\nlog_dest none\n",
                inflight.map(|n| format!("max_inflight_messages {n}\n")).unwrap_or_default()
            ),
        )?;
        let broker = Broker(
            Command::new("mosquitto")
                .arg("-c")
                .arg(dir.join("mosquitto.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("mosquitto did not start".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok((broker, port))
    }
}

/// `mosquitto_sub` as the persistent subscriber `bench-sub` of [`FILTER`] at QoS 1 on the broker at `port`.
fn mosquitto_sub(port: u16) -> Command {
    let mut c = Command::new("mosquitto_sub");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()]).args([
        "-c",
        "-i",
        "bench-sub",
        "-q",
        "1",
        "-t",
        FILTER,
    ]);
    c
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn once(messages: usize, inflight: u32) -> Result<Rates, BoxError> {
    let dir = std::env::temp_dir().join(format!(
        "quantrac-bench-mqtt-{}-{inflight}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (broker, port) = Broker::start(&dir, Some(inflight))
        .await
        .map_err(|e| e.to_string())?;
    let config = bench_config(&dir, port)?;
    let sub_id = config.mqtt.brokers[0].client_id.clone();
    // 1. Persistent sessions for both subscribers.
    prime_session(port, &sub_id, FILTER)
        .await
        .map_err(|e| e.to_string())?;
    let ok = mosquitto_sub(port).arg("-E").status()?.success();
    if !ok {
        return Err("mosquitto_sub could not subscribe".into());
    }
    // 2. The stream, published while both are away.
    publish(port, &config, messages).await?;
    // 3. Both drain it at once.
    let limits = resolve_limits(&config)?;
    let ledger = Ledger::open(&config.ledger.path, config.ledger.synchronous)?;
    let metrics = Arc::new(Metrics::default());
    let pipeline = Pipeline::start(&config, limits, ledger, metrics.clone());
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let mut mosq_sub = mosquitto_sub(port)
        .args(["-C", &messages.to_string()])
        .stdout(Stdio::null())
        .spawn()?;
    let task = tokio::spawn(subscribe(
        Subscriber::new(&config, &config.mqtt.brokers[0]),
        pipeline.ingest(),
        Health::default(),
        shutdown.clone(),
    ));
    let want = messages as u64 * 10;
    let (broker_pid, sub_pid) = (broker.0.id().to_string(), mosq_sub.id().to_string());
    let run_of = |pid: &str| thread_times(pid).values().map(|t| t.run).sum::<f64>();
    let (self0, broker0) = (thread_times("self"), run_of(&broker_pid));
    let mut sub_cpu = 0.0;
    let mut at_end = None;
    let mut quantrac_secs = None;
    let mut sub_secs = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while (quantrac_secs.is_none() || sub_secs.is_none()) && Instant::now() < deadline {
        if quantrac_secs.is_none() && metrics.totals().accepted >= want {
            quantrac_secs = Some(started.elapsed().as_secs_f64());
            at_end = Some((thread_times("self"), run_of(&broker_pid), sub_cpu));
        }
        if sub_secs.is_none() {
            // Read before its exit is reaped, which removes its /proc entry.
            sub_cpu = run_of(&sub_pid).max(sub_cpu);
            if mosq_sub.try_wait()?.is_some() {
                sub_secs = Some(started.elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    shutdown.cancel();
    let _ = task.await;
    pipeline.finish().await;
    let _ = mosq_sub.kill();
    let stored = crate::ledger::Reader::open(&config.ledger.path)?.count_readings()?;
    let _ = std::fs::remove_dir_all(&dir);
    let (Some(q), Some(s)) = (quantrac_secs, sub_secs) else {
        return Err(
            format!("did not finish within 600 s ({stored} of {want} readings committed)").into(),
        );
    };
    let (self1, broker1, sub1) = at_end.unwrap_or_default();
    let drain = Drain {
        secs: q,
        quantrac: since(&self0, self1),
        mosquitto: broker1 - broker0,
        mosquitto_sub: sub1,
        commits: metrics.commits.load(std::sync::atomic::Ordering::Relaxed),
        readings: want,
    };
    Ok(Rates {
        quantrac: want as f64 / q,
        mosquitto_sub: want as f64 / s,
        lost: want as i64 - stored,
        drain,
    })
}

fn bench_config(dir: &Path, port: u16) -> Result<Config, BoxError> {
    let text = format!(
        "[ledger]\npath = \"bench.db\"\n\n[[mqtt.broker]]\nname = \"bench\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         client_id = \"quantrac-bench\"\ntopics = [\"stations/{{station}}/data\"]\n\n{}",
        super::support::bench_config(STATIONS)
    );
    let mut config = Config::from_str(&text, Path::new("<bench mqtt>"), dir)?;
    config.future_skew = Duration::from_secs(365 * 86_400);
    Ok(config)
}

/// Connect with the subscriber's client id, subscribe to `filter`, wait for the SubAck and leave: the broker keeps the
/// session.
pub(super) async fn prime_session(
    port: u16,
    id: &str,
    filter: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_clean_session(false);
    let (client, mut eventloop) = AsyncClient::new(o, 10);
    client.subscribe(filter, QoS::AtLeastOnce).await?;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
                return Ok::<_, rumqttc::ConnectionError>(());
            }
        }
    })
    .await??;
    client.disconnect().await?;
    let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
    Ok(())
}

/// Publish `messages` messages of ten simulated readings and wait for every PubAck.
async fn publish(port: u16, config: &Config, messages: usize) -> Result<(), BoxError> {
    let mut o = MqttOptions::new("bench-publisher", "127.0.0.1", port);
    // A persistent session, so a dropped connection retransmits instead of losing publishes.
    o.set_inflight(200)
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false);
    let (client, mut eventloop) = AsyncClient::new(o, 10_000);
    let sims: Vec<StationSim> = config
        .stations
        .iter()
        .map(|s| StationSim::new(s, &Default::default(), 7))
        .collect();
    let tz = config.timezone;
    let mapping = JsonMappingSection::default();
    let producer = tokio::spawn(async move {
        let start = Timestamp::now().millis() - 400 * 86_400_000;
        for i in 0..messages {
            let sim = &sims[i % sims.len()];
            let ts = Timestamp(start + (i / sims.len()) as i64 * 60_000);
            let readings: Vec<Reading> = sim
                .sample(ts, ts)
                .into_iter()
                .map(|mut r| {
                    r.status = crate::model::Status::Measuring;
                    r
                })
                .collect();
            let topic = format!("stations/{}/data", sim.station);
            for m in payload::encode_json(&mapping, &readings, tz) {
                client
                    .publish(topic.clone(), QoS::AtLeastOnce, false, m)
                    .await?;
            }
        }
        Ok::<_, rumqttc::ClientError>(client)
    });
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while acked < messages && Instant::now() < deadline {
        // Pings every keep-alive wake this up, so the deadline is checked even when nothing arrives.
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => {
                eprintln!("bench publisher: {e}; reconnecting");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    if acked < messages {
        producer.abort();
        return Err(format!("only {acked} of {messages} publishes were acked within 600 s").into());
    }
    let client = producer.await??;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
    Ok(())
}
