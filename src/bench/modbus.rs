//! `quantrac bench modbus`: quantrac polling N simulated stations (20 registers each, 1 s interval) over loopback,
//! against a bare tokio-modbus read loop on the same simulator. Prints polls/s, CPU and RSS; asserts nothing.
//!
//! The simulator runs in a child process (`quantrac bench modbus-sim`, [`super::modbus_sim`]) so its CPU and memory
//! are not counted.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_modbus::client::{tcp, Reader};
use tokio_modbus::Slave;
use tokio_util::sync::CancellationToken;

use crate::compliance::resolve_limits;
use crate::config::{Config, Synchronous};
use crate::health::Health;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::model::WATER_PARAMETERS;
use crate::pipeline::Pipeline;

use super::modbus_sim::{BenchResult, SimChild};
use super::support::thread_times;

/// Ten parameters, one f32 each: 20 registers, read in one request.
fn parameters() -> Vec<&'static str> {
    WATER_PARAMETERS
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| *s != "Color")
        .collect()
}

fn config(stations: usize, address: &str) -> String {
    let params = parameters();
    let list = params
        .iter()
        .map(|p| format!("{p} = {{}}"))
        .collect::<Vec<_>>()
        .join(", ");
    let regs = params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{{ parameter = \"{p}\", address = {}, type = \"f32\" }}",
                i * 2
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    (0..stations)
        .map(|i| {
            format!(
                "[[station]]\nid = \"BN_BENCH{i}_NUOC01\"\nname = \"Bench {i}\"\nprofile = \"qcvn40-2011-b\"\n\
                 design_flow_m3_day = 5000\nreceiving_water = {{ type = \"river\", flow_m3_s = 120 }}\n\
                 parameters = {{ {list} }}\n[station.modbus]\naddress = \"{address}\"\npoll_interval = \"1s\"\n\
                 timeout = \"3s\"\nregisters = [{regs}]\n\n"
            )
        })
        .collect()
}

/// CPU seconds of this process so far (its live threads, which last the whole measurement).
fn cpu_seconds() -> f64 {
    thread_times("self").values().map(|t| t.run).sum()
}

/// Resident memory in MB (`VmRSS` in /proc/self/status).
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Measured {
    polls_per_s: f64,
    cpu_percent: f64,
    rss_mb: f64,
}

/// Let `count()` settle for `warmup`, then measure its rate, CPU and RSS over `window`.
async fn measure(warmup: Duration, window: Duration, count: impl Fn() -> u64) -> Measured {
    tokio::time::sleep(warmup).await;
    let (c0, cpu0, t0) = (count(), cpu_seconds(), Instant::now());
    tokio::time::sleep(window).await;
    let (c1, cpu1, secs) = (count(), cpu_seconds(), t0.elapsed().as_secs_f64());
    Measured {
        polls_per_s: (c1 - c0) as f64 / secs,
        cpu_percent: (cpu1 - cpu0) / secs * 100.0,
        rss_mb: rss_mb(),
    }
}

/// quantrac's pollers, through the full pipeline into a ledger.
async fn quantrac(
    n: usize,
    address: &str,
    dir: &Path,
    warmup: Duration,
    window: Duration,
) -> BenchResult<Measured> {
    let db = dir.join(format!("bench-modbus-{n}.db"));
    let _ = std::fs::remove_file(&db);
    let config = Config::from_str(&config(n, address), Path::new("<bench>"), Path::new("."))?;
    let limits = resolve_limits(&config)?;
    let ledger = Ledger::open(&db, Synchronous::Normal)?;
    let pipeline = Pipeline::start(&config, limits, ledger, Arc::new(Metrics::default()));
    let health = Health::default();
    let shutdown = CancellationToken::new();
    let mut pollers = tokio::task::JoinSet::new();
    for s in &config.stations {
        pollers.spawn(crate::source::modbus::run(crate::source::SourceContext {
            config: s.clone(),
            ingest: pipeline.ingest(),
            health: health.clone(),
            metrics: pipeline.metrics.clone(),
            shutdown: shutdown.clone(),
        }));
    }
    let per_poll = parameters().len() as u64;
    let m = measure(warmup, window, || {
        health.snapshot().values().map(|s| s.readings).sum::<u64>() / per_poll
    })
    .await;
    shutdown.cancel();
    while pollers.join_next().await.is_some() {}
    pipeline.finish().await;
    let _ = std::fs::remove_file(&db);
    Ok(m)
}

/// The baseline: one task per station, connect, read 20 holding registers every second.
async fn bare(
    n: usize,
    address: &str,
    warmup: Duration,
    window: Duration,
) -> BenchResult<Measured> {
    let addr: std::net::SocketAddr = address.parse()?;
    let polls = Arc::new(AtomicU64::new(0));
    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (polls, shutdown) = (polls.clone(), shutdown.clone());
        tasks.spawn(async move {
            let Ok(mut ctx) = tcp::connect_slave(addr, Slave(1)).await else {
                return;
            };
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = every.tick() => {}
                }
                if let Ok(Ok(Ok(_))) =
                    tokio::time::timeout(Duration::from_secs(3), ctx.read_holding_registers(0, 20))
                        .await
                {
                    polls.fetch_add(1, Relaxed);
                }
            }
        });
    }
    let m = measure(warmup, window, || polls.load(Relaxed)).await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(m)
}

/// Run the benchmark for N = 100 and 1,000 stations, `seconds` of measurement each, and print the numbers.
pub async fn run(seconds: u64) -> BenchResult<()> {
    // Dropped on every return path: closes its stdin, then ends the child if it has not stopped.
    let (_sim, address) = SimChild::start()?;
    let dir = std::env::temp_dir().join(format!("quantrac-bench-modbus-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (warmup, window) = (Duration::from_secs(3), Duration::from_secs(seconds.max(1)));
    println!(
        "quantrac bench modbus: stations of 10 f32 values (20 registers, one request) polled every 1 s over loopback \
         from a simulator in a child process; {}s measured after {}s warm-up",
        window.as_secs(),
        warmup.as_secs()
    );
    println!(
        "{:<10} {:>8} {:>10} {:>12} {:>10}",
        "what", "stations", "polls/s", "CPU % core", "RSS MB"
    );
    for n in [100usize, 1000] {
        let b = bare(n, &address, warmup, window).await?;
        println!(
            "{:<10} {:>8} {:>10.1} {:>12.1} {:>10.1}",
            "bare", n, b.polls_per_s, b.cpu_percent, b.rss_mb
        );
        let q = quantrac(n, &address, &dir, warmup, window).await?;
        println!(
            "{:<10} {:>8} {:>10.1} {:>12.1} {:>10.1}",
            "quantrac", n, q.polls_per_s, q.cpu_percent, q.rss_mb
        );
        println!(
            "ratio      {:>8} {:>10.2}   (quantrac polls/s ÷ bare polls/s; quantrac includes decoding, pipeline and ledger commits)",
            n,
            q.polls_per_s / b.polls_per_s.max(f64::MIN_POSITIVE)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
