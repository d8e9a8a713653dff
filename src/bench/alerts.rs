//! `quantrac bench alerts`: latency from a reading's commit to its notification arriving at a local webhook.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;

use crate::compliance::resolve_limits;
use crate::config::{Config, Synchronous};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::model::{Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit};
use crate::pipeline::{Batch, Ingest, Pipeline};

use super::support::{bench_config, latency_summary, tempfile_dir};

type BoxError = Box<dyn std::error::Error>;

/// Alert latency: from a reading's commit to its notification arriving at a local webhook. Each reading flips one
/// station's COD across its limit (raise, clear, raise, …), so every reading makes one notification.
pub async fn run(notifications: usize) -> Result<(), BoxError> {
    let dir = tempfile_dir()?;
    let (server, hook, arrivals) = start_webhook().await?;
    let stations = 10;
    let text = format!(
        "[http]\nenabled = false\n[ledger]\nsynchronous = \"normal\"\n\
         [alert]\nraise_after = 1\nclear_after = 1\nflap_max = 1000\nrenotify = \"0s\"\n\
         [[alert.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{hook}\"\nsecret = \"bench\"\n\
         [[alert.route]]\nkinds = [\"exceedance\"]\nchannels = [\"hook\"]\n\n{}",
        bench_config(stations)
    );
    let mut config = Config::from_str(&text, Path::new("<bench>"), &dir)?;
    config.ledger.path = dir.join("alerts.db");
    let _ = std::fs::remove_file(&config.ledger.path);
    let limits = resolve_limits(&config)?;
    let ledger = Ledger::open(&config.ledger.path, Synchronous::Normal)?;
    let metrics = Arc::new(Metrics::default());
    let pipeline = Pipeline::start(&config, limits, ledger, metrics.clone());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    crate::alert::start(
        &config,
        &pipeline.live,
        &crate::health::Health::default(),
        &Default::default(),
        Arc::new(crate::alert::SystemClock),
        &mut tasks,
        &shutdown,
    )?;
    let ids: Vec<StationId> = config.stations.iter().map(|s| s.id.clone()).collect();
    let ingest = pipeline.ingest();
    let started = Instant::now();
    let committed = flip_cod(&ingest, &ids, notifications).await?;
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while arrivals.lock().unwrap_or_else(|e| e.into_inner()).len() < notifications
        && Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    server.abort();
    drop(ingest);
    pipeline.finish().await;
    let arrived = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut lat: Vec<i64> = arrived
        .iter()
        .filter_map(|(s, ts, at)| committed.get(&(s.clone(), *ts)).map(|c| at - c))
        .collect();
    lat.sort_unstable();
    println!(
        "quantrac bench alerts: {notifications} readings, each raising or clearing an exceedance, {:.1} s",
        secs
    );
    println!(
        "notifications delivered to the local webhook: {} of {notifications}",
        arrived.len()
    );
    println!("latency commit → webhook:  {}", latency_summary(&lat));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Notifications that reached the webhook: (station, sample time, arrival time in ms).
type Arrivals = Arc<Mutex<Vec<(String, i64, i64)>>>;

/// A local webhook that notes when each notification (station, sample time) arrived; its server task and URL.
async fn start_webhook() -> Result<(JoinHandle<()>, String, Arrivals), BoxError> {
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    let a = arrivals.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let a = a.clone();
            async move {
                let now = Timestamp::now().millis();
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                    let station = v["station"].as_str().unwrap_or_default().to_string();
                    a.lock().unwrap_or_else(|e| e.into_inner()).push((
                        station,
                        v["data_time"].as_i64().unwrap_or(0),
                        now,
                    ));
                }
                "ok"
            }
        }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((server, hook, arrivals))
}

/// Submit `notifications` readings of COD, one every 20 ms, going round the stations; each flips its station across
/// the limit. Returns (station, sample time) → commit time.
async fn flip_cod(
    ingest: &Ingest,
    ids: &[StationId],
    notifications: usize,
) -> Result<HashMap<(String, i64), i64>, BoxError> {
    let cod = Parameter::new("COD")?;
    let unit = Unit::new("mg/L");
    // (station, sample time) → commit time.
    let mut committed: HashMap<(String, i64), i64> = HashMap::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    for n in 0..notifications {
        tick.tick().await;
        let station = &ids[n % ids.len()];
        let ts = Timestamp::now().millis();
        // Odd rounds of a station exceed (2×), even rounds are well below (0.3×).
        let value = if (n / ids.len()).is_multiple_of(2) {
            300.0
        } else {
            45.0
        };
        ingest
            .submit(Batch {
                source: SourceKind::Sim,
                readings: vec![Reading {
                    station: station.clone(),
                    parameter: cod.clone(),
                    ts: Timestamp(ts),
                    value,
                    unit: unit.clone(),
                    status: Status::Measuring,
                }],
                quarantined: Vec::new(),
                evidence: Vec::new(),
            })
            .await?;
        committed.insert((station.to_string(), ts), Timestamp::now().millis());
    }
    Ok(committed)
}
