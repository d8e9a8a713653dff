//! `quantrac bench http`: the dashboard API under concurrent keep-alive clients (requests/s, p50/p99 latency of
//! `/healthz` and `/api/stations` with 100 stations live), and what the connection caps do with one client holding
//! more connections than it may.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::compliance::resolve_limits;
use crate::config::{Config, Synchronous};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::model::{Reading, SourceKind, Status, Timestamp};
use crate::pipeline::{Batch, Pipeline};

use super::support::{bench_config, percentile, plausible, tempfile_dir};

type BoxError = Box<dyn std::error::Error>;

/// Each path with 1, 16 and 64 clients for `seconds` each, then the per-client cap.
pub async fn run(seconds: u64) -> Result<(), BoxError> {
    let dir = tempfile_dir()?;
    let text = format!(
        "[http]\nanonymous_read = true\n[ledger]\nsynchronous = \"normal\"\n{}",
        bench_config(100)
    );
    let mut config = Config::from_str(&text, Path::new("<bench>"), &dir)?;
    config.ledger.path = dir.join("http.db");
    let limits = resolve_limits(&config)?;
    let ledger = Ledger::open(&config.ledger.path, Synchronous::Normal)?;
    let live = crate::live::LiveState::load(&config, &ledger.reader()?)?;
    let pipeline = Pipeline::start(&config, limits, ledger, Arc::new(Metrics::default()));
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = crate::http::AppState::new(
        Arc::new(config.clone()),
        live.clone(),
        crate::health::Health::default(),
        Default::default(),
        config.ledger.path.clone(),
        pipeline.live.clone(),
        Arc::new(AtomicBool::new(true)),
        shutdown.clone(),
    );
    let server = tokio::spawn(crate::http::serve(listener, state, shutdown.clone()));
    // Every station has a value of every parameter, so `/api/stations` is as large as in operation.
    let ingest = pipeline.ingest();
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
    let held = config.http.limits.max_connections_per_client + 16;
    let (served, refused, closed) = hold(addr, held).await;
    println!(
        "one client holding {held} connections (cap {} per client): {served} served, {refused} refused with 503, {closed} closed",
        config.http.limits.max_connections_per_client
    );
    shutdown.cancel();
    let _ = server.await;
    drop(ingest);
    pipeline.finish().await;
    let _ = std::fs::remove_dir_all(&dir);
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
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let url = url.to_string();
        tasks.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client");
            let (mut micros, mut errors) = (Vec::new(), 0u64);
            while started.elapsed() < time {
                let t = Instant::now();
                let ok = match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                };
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
    out.secs = started.elapsed().as_secs_f64();
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
