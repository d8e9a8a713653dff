//! `quantrac bench http`: the dashboard API under concurrent keep-alive clients (requests/s, p50/p99 latency of
//! `/healthz` and `/api/stations` with 100 stations live), what the connection caps do with one client holding
//! more connections than it may, and the API and ingest while 3,000 slow-header connections and 2,000 event streams
//! are attempted from many addresses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::model::{Reading, SourceKind, Status, Timestamp};
use crate::pipeline::Batch;

use super::support::{percentile, plausible, ApiUnderTest};

type BoxError = Box<dyn std::error::Error>;

/// Each path with 1, 16 and 64 clients for `seconds` each, then the per-client cap.
pub async fn run(seconds: u64) -> Result<(), BoxError> {
    let api = ApiUnderTest::start("http.db", "").await?;
    let (config, addr) = (&api.config, api.addr);
    // Every station has a value of every parameter, so `/api/stations` is as large as in operation.
    let ingest = api.pipeline.ingest();
    let now = Timestamp::now();
    let mut batch = Batch::new(SourceKind::Sim);
    for s in &config.stations {
        for p in &s.parameters {
            batch.readings.push(Reading {
                station: s.id.clone(),
                parameter: p.parameter.clone(),
                ts: now,
                value: plausible(&p.parameter, batch.readings.len()),
                unit: p.unit.clone(),
                status: Status::Measuring,
            });
        }
    }
    let readings = batch.readings.len();
    ingest.enqueue(batch).await?.await?;
    println!(
        "quantrac bench http: 100 stations live ({readings} readings), keep-alive clients on loopback, {seconds} s per row"
    );
    println!(
        "{:<16} {:>8} {:>14} {:>12} {:>12} {:>8}",
        "path", "clients", "requests/s", "p50 µs", "p99 µs", "errors"
    );
    for path in ["/healthz", "/api/stations"] {
        for clients in [1usize, 16, 64] {
            let url = format!("http://{addr}{path}");
            let r = load(&url, clients, Duration::from_secs(seconds)).await;
            println!(
                "{:<16} {:>8} {:>14.0} {:>12} {:>12} {:>8}",
                path,
                clients,
                r.requests as f64 / r.secs,
                percentile(&r.micros, 0.5),
                percentile(&r.micros, 0.99),
                r.errors
            );
        }
    }
    attack(addr, &ingest, config, seconds).await?;
    let held = config.http.limits.max_connections_per_client + 16;
    let (served, refused, closed) = hold(addr, held).await;
    println!(
        "one client holding {held} connections (cap {} per client): {served} served, {refused} refused with 503, {closed} closed",
        config.http.limits.max_connections_per_client
    );
    drop(ingest);
    api.finish().await;
    Ok(())
}

struct Load {
    requests: u64,
    errors: u64,
    secs: f64,
    /// Latencies, sorted.
    micros: Vec<i64>,
}

/// `clients` keep-alive clients requesting `url` in a loop for `time`.
async fn load(url: &str, clients: usize, time: Duration) -> Load {
    let now = Instant::now();
    load_between(url.to_string(), clients, now, now + time).await
}

/// `clients` keep-alive clients requesting `url` in a loop until `until`; requests sent before `from` warm the
/// connections up and are not counted.
async fn load_between(url: String, clients: usize, from: Instant, until: Instant) -> Load {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let url = url.clone();
        tasks.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client");
            let (mut micros, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < until {
                let t = Instant::now();
                let ok = match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                };
                if t < from {
                    continue;
                }
                if ok {
                    micros.push(t.elapsed().as_micros() as i64);
                } else {
                    errors += 1;
                }
            }
            (micros, errors)
        });
    }
    let mut out = Load {
        requests: 0,
        errors: 0,
        secs: 0.0,
        micros: Vec::new(),
    };
    while let Some(Ok((micros, errors))) = tasks.join_next().await {
        out.requests += micros.len() as u64;
        out.errors += errors;
        out.micros.extend(micros);
    }
    out.secs = until.saturating_duration_since(from).as_secs_f64();
    out.micros.sort_unstable();
    out
}

/// Open `n` connections from one address, then ask `/healthz` on each: (served, refused with 503, closed).
async fn hold(addr: std::net::SocketAddr, n: usize) -> (usize, usize, usize) {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        if let Ok(Ok(c)) =
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await
        {
            conns.push(c);
        }
    }
    let (mut served, mut refused, mut closed) = (0, 0, n - conns.len());
    for mut c in conns {
        let asked = c
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
            .await
            .is_ok();
        let mut head = [0u8; 12];
        let read = tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut head)).await;
        match (asked, read) {
            (true, Ok(Ok(_))) if head.starts_with(b"HTTP/1.1 2") => served += 1,
            (true, Ok(Ok(_))) if head.starts_with(b"HTTP/1.1 503") => refused += 1,
            _ => closed += 1,
        }
    }
    (served, refused, closed)
}

/// Slow-header connections and event streams attempted, from 127.0.1.x and 127.0.2.x (50 per address, under the
/// per-client cap), while 16 keep-alive clients measure the API and readings are ingested.
const SLOW: usize = 3_000;
const STREAMS: usize = 2_000;

/// The API and ingest without, then with, the attack: p99 of both paths, readings/s, descriptors and RSS.
async fn attack(
    addr: std::net::SocketAddr,
    ingest: &crate::pipeline::Ingest,
    config: &Config,
    seconds: u64,
) -> Result<(), BoxError> {
    let time = Duration::from_secs(seconds);
    println!(
        "under attack: {SLOW} slow-header connections and {STREAMS} event streams attempted (caps: {} connections, {} streams); \
         attackers: connections open on their side; fds and RSS: this process, attackers' sockets included",
        config.http.limits.max_connections, config.http.limits.max_streams
    );
    println!(
        "{:<10} {:>14} {:>14} {:>14} {:>10} {:>10} {:>10}",
        "phase", "healthz p99", "stations p99", "readings/s", "attackers", "fds", "RSS MiB"
    );
    let stop = CancellationToken::new();
    let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for attacked in [false, true] {
        // Under attack the measuring clients connect first (the caps then keep their places), and only what they
        // ask once the attack has filled the caps is counted.
        let warm = if attacked {
            Duration::from_secs(4)
        } else {
            Duration::ZERO
        };
        let from = Instant::now() + warm;
        let until = from + time;
        let healthz = tokio::spawn(load_between(
            format!("http://{addr}/healthz"),
            8,
            from,
            until,
        ));
        let stations = tokio::spawn(load_between(
            format!("http://{addr}/api/stations"),
            8,
            from,
            until,
        ));
        if attacked {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for i in 0..SLOW {
                tokio::spawn(slow_header(addr, source(1, i), held.clone(), stop.clone()));
            }
            for i in 0..STREAMS {
                tokio::spawn(stream(addr, source(2, i), held.clone(), stop.clone()));
            }
        }
        tokio::time::sleep_until(from.into()).await;
        let committed = feed(ingest.clone(), config.clone(), time).await?;
        let (h, st) = (healthz.await?, stations.await?);
        println!(
            "{:<10} {:>11} µs {:>11} µs {:>14.0} {:>10} {:>10} {:>10}",
            if attacked { "attacked" } else { "quiet" },
            percentile(&h.micros, 0.99),
            percentile(&st.micros, 0.99),
            committed as f64 / time.as_secs_f64(),
            held.load(std::sync::atomic::Ordering::Relaxed),
            descriptors(),
            rss_mib()
        );
        if h.errors + st.errors > 0 {
            println!(
                "           errors: {} healthz, {} stations",
                h.errors, st.errors
            );
        }
        if attacked {
            let (served, refused, closed) = hold(addr, 20).await;
            println!(
                "           a new client meanwhile, 20 connections: {served} served, {refused} refused with 503, {closed} closed"
            );
        }
    }
    stop.cancel();
    Ok(())
}

/// `127.0.<net>.<1 + i / 50>`: 50 connections per address.
fn source(net: u8, i: usize) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, net, 1 + (i / 50) as u8))
}

async fn connect_from(
    addr: std::net::SocketAddr,
    from: std::net::IpAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(from, 0))?;
    tokio::time::timeout(Duration::from_secs(2), socket.connect(addr))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// A slowloris client: a request line, then one header line every 5 s, reconnecting whenever closed.
async fn slow_header(
    addr: std::net::SocketAddr,
    from: std::net::IpAddr,
    held: Arc<std::sync::atomic::AtomicUsize>,
    stop: CancellationToken,
) {
    use std::sync::atomic::Ordering::Relaxed;
    while !stop.is_cancelled() {
        let Ok(mut c) = connect_from(addr, from).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        held.fetch_add(1, Relaxed);
        let mut line: &[u8] = b"GET /api/stations HTTP/1.1\r\n";
        loop {
            if c.write_all(line).await.is_err() {
                break;
            }
            line = b"X-Slow: 1\r\n";
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
        held.fetch_sub(1, Relaxed);
    }
}

/// An event-stream client holding `/api/stream` open, reconnecting whenever refused or closed.
async fn stream(
    addr: std::net::SocketAddr,
    from: std::net::IpAddr,
    held: Arc<std::sync::atomic::AtomicUsize>,
    stop: CancellationToken,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut buf = vec![0u8; 4096];
    while !stop.is_cancelled() {
        let Ok(mut c) = connect_from(addr, from).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        if c.write_all(b"GET /api/stream HTTP/1.1\r\nHost: bench\r\n\r\n")
            .await
            .is_err()
        {
            continue;
        }
        held.fetch_add(1, Relaxed);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                n = c.read(&mut buf) => if !matches!(n, Ok(n) if n > 0) { break },
            }
        }
        held.fetch_sub(1, Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Ingest one COD reading of each station every 10 ms for `time`, stamped now; the readings committed.
async fn feed(
    ingest: crate::pipeline::Ingest,
    config: Config,
    time: Duration,
) -> Result<u64, crate::pipeline::PipelineError> {
    let started = Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(10));
    let mut pending = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < time {
        every.tick().await;
        let ts = Timestamp::now();
        let mut batch = Batch::new(SourceKind::Sim);
        for s in &config.stations {
            let Some(p) = s.parameters.first() else {
                continue;
            };
            batch.readings.push(Reading {
                station: s.id.clone(),
                parameter: p.parameter.clone(),
                ts,
                value: plausible(&p.parameter, n as usize),
                unit: p.unit.clone(),
                status: Status::Measuring,
            });
        }
        n += 1;
        pending.push(ingest.enqueue(batch).await?);
    }
    let mut committed = 0;
    for c in pending {
        committed += c.await?.counts.accepted;
    }
    Ok(committed)
}

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
