//! `quantrac bench sse`: SSE fan-out to dashboard clients while readings are ingested.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::model::{Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit};
use crate::pipeline::{Batch, Ingest};

use super::support::{latency_summary, ApiUnderTest};

type BoxError = Box<dyn std::error::Error>;

/// SSE fan-out: `clients` dashboard streams while readings are ingested; readings/s committed and the latency from
/// submission to a client receiving the reading (an upper bound of commit → client).
pub async fn run(clients: usize, seconds: u64) -> Result<(), BoxError> {
    // All clients come from loopback: the per-address and stream caps are raised to let them in.
    let caps = format!(
        "max_connections = {n}\nmax_connections_per_client = {n}\nmax_streams = {n}",
        n = clients + 64
    );
    let api = ApiUnderTest::start("sse.db", &caps).await?;
    let (config, metrics, shutdown) = (&api.config, api.metrics.clone(), api.shutdown.clone());
    let url = format!("http://{}/api/stream", api.addr);

    let mut followers = Followers::start(clients, &url, &shutdown);
    followers.wait_connected(clients).await;
    // Ingest: every 10 ms, one reading of each of 10 stations' COD, stamped now.
    let ingest = api.pipeline.ingest();
    let ids: Vec<StationId> = config
        .stations
        .iter()
        .take(10)
        .map(|s| s.id.clone())
        .collect();
    let secs = ingest_cod(&ingest, &ids, seconds).await?;
    let committed = metrics.totals().accepted;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    shutdown.cancel();
    let lat = followers.finish().await;
    drop(ingest);
    api.finish().await;
    let (connected, received) = (followers.connected(), followers.received());
    println!("quantrac bench sse: {clients} clients connected ({connected} did), {seconds} s");
    println!(
        "readings committed:        {:>10.0} /s",
        committed as f64 / secs
    );
    println!(
        "readings delivered (all clients): {:>10.0} /s",
        received as f64 / secs
    );
    println!("latency submit → client:   {}", latency_summary(&lat));
    Ok(())
}

/// The dashboard clients: they count readings received and sample the latency of the first reading of every event.
struct Followers {
    tasks: Vec<JoinHandle<()>>,
    received: Arc<AtomicU64>,
    connected: Arc<AtomicU64>,
    latencies: UnboundedReceiver<i64>,
}

impl Followers {
    /// `clients` clients following `url` until `shutdown`.
    fn start(clients: usize, url: &str, shutdown: &CancellationToken) -> Followers {
        let received = Arc::new(AtomicU64::new(0));
        let connected = Arc::new(AtomicU64::new(0));
        let (lat_tx, latencies) = tokio::sync::mpsc::unbounded_channel::<i64>();
        let client = reqwest::Client::new();
        let tasks = (0..clients)
            .map(|_| {
                tokio::spawn(follow_stream(
                    client.clone(),
                    url.to_string(),
                    received.clone(),
                    connected.clone(),
                    lat_tx.clone(),
                    shutdown.clone(),
                ))
            })
            .collect();
        Followers {
            tasks,
            received,
            connected,
            latencies,
        }
    }

    /// Wait (at most 30 s) until `clients` clients have connected.
    async fn wait_connected(&mut self, clients: usize) {
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while (self.connected() as usize) < clients && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    fn connected(&self) -> u64 {
        self.connected.load(Ordering::Relaxed)
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Wait for every client to stop (after the shutdown); the latencies sampled, sorted.
    async fn finish(&mut self) -> Vec<i64> {
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        let mut lat = Vec::new();
        while let Ok(l) = self.latencies.try_recv() {
            lat.push(l);
        }
        lat.sort_unstable();
        lat
    }
}

/// One dashboard client: follow the stream until `stop`, counting readings received and sampling the latency of the
/// first reading of every event.
async fn follow_stream(
    client: reqwest::Client,
    url: String,
    received: Arc<AtomicU64>,
    connected: Arc<AtomicU64>,
    lat_tx: UnboundedSender<i64>,
    stop: CancellationToken,
) {
    let Ok(mut resp) = client.get(&url).send().await else {
        return;
    };
    connected.fetch_add(1, Ordering::Relaxed);
    let mut buf = String::new();
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return,
            c = resp.chunk() => c,
        };
        let Ok(Some(bytes)) = chunk else { return };
        let now = Timestamp::now().0;
        buf.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if !block.contains("event: readings") {
                continue;
            }
            let data = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect::<String>();
            if let Ok(serde_json::Value::Array(items)) =
                serde_json::from_str::<serde_json::Value>(&data)
            {
                received.fetch_add(items.len() as u64, Ordering::Relaxed);
                if let Some(ts) = items.first().and_then(|i| i["ts"].as_i64()) {
                    let _ = lat_tx.send(now - ts);
                }
            }
        }
    }
}

/// Ingest for `seconds`: every 10 ms, one reading of each station's COD, stamped now; seconds taken.
async fn ingest_cod(ingest: &Ingest, ids: &[StationId], seconds: u64) -> Result<f64, BoxError> {
    let cod = Parameter::new("COD")?;
    let unit = Unit::new("mg/L");
    let started = Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(10));
    let mut last_ts = 0;
    while started.elapsed().as_secs() < seconds {
        tick.tick().await;
        let ts = Timestamp::now().0.max(last_ts + 1);
        last_ts = ts;
        let readings = ids
            .iter()
            .map(|id| Reading {
                station: id.clone(),
                parameter: cod.clone(),
                ts: Timestamp(ts),
                value: 80.0,
                unit: unit.clone(),
                status: Status::Measuring,
            })
            .collect();
        ingest
            .submit(Batch {
                source: SourceKind::Sim,
                readings,
                quarantined: Vec::new(),
                evidence: Vec::new(),
            })
            .await?;
    }
    Ok(started.elapsed().as_secs_f64())
}
