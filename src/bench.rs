//! `quantrac bench`: throughput measurements that print numbers (never asserted in tests).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{Config, Synchronous};
use crate::daemon::resolve_limits;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::model::{
    Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit, WATER_PARAMETERS,
};
use crate::pipeline::{Batch, Pipeline};

/// A config with `stations` stations monitoring the ten Circular 10 water parameters.
pub fn bench_config(stations: usize) -> String {
    let params = WATER_PARAMETERS
        .iter()
        .filter(|(s, _)| *s != "Color")
        .map(|(s, _)| format!("{s} = {{}}"))
        .collect::<Vec<_>>()
        .join(", ");
    (0..stations)
        .map(|i| {
            format!(
                "[[station]]\nid = \"BN_BENCH{i}_NUOC01\"\nname = \"Bench {i}\"\nprofile = \"qcvn40-2011-b\"\n\
                 design_flow_m3_day = 5000\nreceiving_water = {{ type = \"river\", flow_m3_s = 120 }}\nparameters = {{ {params} }}\n\n"
            )
        })
        .collect()
}

/// Readings/s committed through processor + ledger for batches of 1, 100 and 1,000, in both synchronous modes, and the
/// rate of SQLite alone inserting the same rows (the floor under the writer).
pub async fn ledger(total: usize) -> Result<(), Box<dyn std::error::Error>> {
    let stations = 100;
    let dir = tempfile_dir()?;
    println!("quantrac bench ledger: {total} readings per run, {stations} stations x 10 parameters, 5-minute data");
    println!(
        "{:<10} {:>8} {:>14} {:>12}",
        "sync", "batch", "readings/s", "seconds"
    );
    for sync in [Synchronous::Normal, Synchronous::Full] {
        for batch in [1usize, 100, 1000] {
            let n = if batch == 1 { total.min(50_000) } else { total };
            let path = dir.join(format!("bench-{sync:?}-{batch}.db"));
            let (rate, secs) = run_once(&path, sync, stations, batch, n).await?;
            println!(
                "{:<10} {:>8} {:>14.0} {:>12.2}",
                format!("{sync:?}").to_lowercase(),
                batch,
                rate,
                secs
            );
        }
    }
    let (rate, secs) = sqlite_alone(&dir.join("bench-sqlite.db"), stations, total)?;
    println!(
        "{:<10} {:>8} {:>14.0} {:>12.2}   SQLite alone: the same rows by INSERT … SELECT in one transaction",
        "full", total, rate, secs
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The floor under the ledger writer: SQLite inserting `total` readings of the same shape into the same schema in one
/// transaction, from a table in memory (no binding, no quantrac code, WAL commit and checkpoint included).
fn sqlite_alone(
    path: &Path,
    stations: usize,
    total: usize,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let _ = std::fs::remove_file(path);
    drop(Ledger::open(path, Synchronous::Full)?);
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // As the ledger writer: foreign keys declared, not enforced (there are no station rows here).
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let start_ts = Timestamp::now().0 - 400 * 86_400_000;
    conn.execute(
        &format!(
            "CREATE TEMP TABLE source AS WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
             SELECT 1 + (i / 10) % {stations} AS station_id, 1 + i % 10 AS parameter_id, \
             {start_ts} + (i / (10 * {stations})) * 300000 AS ts, 40.0 + i % 89 AS value, 'mg/L' AS unit, 0 AS status, \
             'sim' AS source, {start_ts} AS received, NULL AS limit_low, 135.0 AS limit_high, (40.0 + i % 89) / 135.0 AS ratio, \
             'compliant' AS band, 0 AS flags FROM n",
            last = total - 1
        ),
        [],
    )?;
    let started = Instant::now();
    conn.execute_batch(
        "BEGIN IMMEDIATE; \
         INSERT OR IGNORE INTO readings (station_id, parameter_id, ts, value, unit, status, source, received, \
         limit_low, limit_high, ratio, band, flags) SELECT * FROM source; \
         COMMIT;",
    )?;
    let secs = started.elapsed().as_secs_f64();
    Ok((total as f64 / secs, secs))
}

async fn run_once(
    path: &Path,
    sync: Synchronous,
    stations: usize,
    batch: usize,
    total: usize,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let _ = std::fs::remove_file(path);
    let mut config = Config::from_str(
        &bench_config(stations),
        Path::new("<bench>"),
        Path::new("."),
    )?;
    config.ledger.synchronous = sync;
    config.future_skew = std::time::Duration::from_secs(365 * 86400);
    let limits = resolve_limits(&config)?;
    let ledger = Ledger::open(path, sync)?;
    let pipeline = Pipeline::start(&config, limits, ledger, Arc::new(Metrics::default()));
    let ingest = pipeline.ingest();
    let ids: Vec<StationId> = config.stations.iter().map(|s| s.id.clone()).collect();
    let params: Vec<(Parameter, Unit)> = config.stations[0]
        .parameters
        .iter()
        .map(|p| (p.parameter.clone(), p.unit.clone()))
        .collect();
    let start_ts = Timestamp::now().0 - 400 * 86_400_000;
    // Readings come as stations report them: every station, every parameter, one timestamp after another.
    let mut all = Vec::with_capacity(total);
    'outer: for step in 0.. {
        for id in &ids {
            for (p, u) in &params {
                if all.len() == total {
                    break 'outer;
                }
                all.push(Reading {
                    station: id.clone(),
                    parameter: p.clone(),
                    ts: Timestamp(start_ts + step * 300_000),
                    value: plausible(p, all.len()),
                    unit: u.clone(),
                    status: Status::Measuring,
                });
            }
        }
    }
    let started = Instant::now();
    let mut in_flight = VecDeque::new();
    let mut committed = 0u64;
    for chunk in all.chunks(batch) {
        let b = Batch {
            source: SourceKind::Sim,
            readings: chunk.to_vec(),
            quarantined: Vec::new(),
        };
        in_flight.push_back(ingest.enqueue(b).await?);
        // Many sources in flight at once, as in a real province; each still waits for its own commit.
        if in_flight.len() >= 256 {
            if let Some(c) = in_flight.pop_front() {
                committed += c.await?.counts.accepted;
            }
        }
    }
    for c in in_flight {
        committed += c.await?.counts.accepted;
    }
    let secs = started.elapsed().as_secs_f64();
    drop(ingest);
    pipeline.finish().await;
    if committed != total as u64 {
        return Err(format!("committed {committed} of {total} readings").into());
    }
    Ok((total as f64 / secs, secs))
}

/// Time a thread spent on a CPU, and runnable but waiting for one, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ThreadTime {
    pub run: f64,
    pub wait: f64,
}

/// [`ThreadTime`] so far of each thread of process `pid` (`self` for this one), summed by thread name.
/// Read from /proc/<pid>/task/*/schedstat (nanoseconds); empty where /proc is not available.
pub fn thread_times(pid: &str) -> std::collections::BTreeMap<String, ThreadTime> {
    let mut out = std::collections::BTreeMap::<String, ThreadTime>::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
        let mut ns = stat
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0) / 1e9);
        let t = out.entry(name.trim().to_string()).or_default();
        t.run += ns.next().unwrap_or(0.0);
        t.wait += ns.next().unwrap_or(0.0);
    }
    out
}

/// A value the range checks accept: pH within 6.5–8.4, other parameters 40–128.
fn plausible(p: &Parameter, n: usize) -> f64 {
    if p.as_str() == "pH" {
        6.5 + (n % 20) as f64 / 10.0
    } else {
        40.0 + (n % 89) as f64
    }
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("quantrac-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Lines/s forwarded from a prepared ledger to an InfluxDB v2 write API (VictoriaMetrics by default, started here),
/// beside a bare HTTP client posting the same batches.
pub async fn influx(total: usize, url: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    use crate::forward::{encode::reading_line, store::Store};
    use crate::ledger::Evaluated;

    let dir = tempfile_dir()?;
    let mut vm = None;
    let url = match url {
        Some(u) => u,
        None => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let child = std::process::Command::new("victoria-metrics")
                .arg(format!("-storageDataPath={}", dir.join("vm").display()))
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg("-retentionPeriod=100y")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| {
                    format!("cannot start victoria-metrics ({e}); install it or pass --url")
                })?;
            vm = Some(child);
            let url = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + std::time::Duration::from_secs(30);
            while reqwest::get(format!("{url}/health"))
                .await
                .map(|r| !r.status().is_success())
                .unwrap_or(true)
            {
                if Instant::now() > deadline {
                    return Err("victoria-metrics did not start".into());
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            url
        }
    };
    // A ledger holding `total` readings of 100 stations × 10 parameters.
    let path = dir.join("forward.db");
    let config = Config::from_str(&bench_config(100), Path::new("<bench>"), Path::new("."))?;
    let limits = resolve_limits(&config)?;
    let mut ledger = Ledger::open(&path, Synchronous::Normal)?;
    let mut eval = crate::compliance::Evaluator::new(&config, limits);
    let start_ts = Timestamp::now().0 - 30 * 86_400_000;
    let mut batch = Vec::with_capacity(10_000);
    let mut n = 0;
    'outer: for step in 0.. {
        for s in &config.stations {
            for p in &s.parameters {
                if n == total {
                    break 'outer;
                }
                let r = Reading {
                    station: s.id.clone(),
                    parameter: p.parameter.clone(),
                    ts: Timestamp(start_ts + step * 60_000),
                    value: plausible(&p.parameter, n),
                    unit: p.unit.clone(),
                    status: Status::Measuring,
                };
                let assessment = eval
                    .assess(&r, Timestamp::now())
                    .map_err(|e| e.to_string())?;
                batch.push(Evaluated {
                    reading: r,
                    assessment,
                    source: SourceKind::Sim,
                });
                n += 1;
                if batch.len() == 10_000 {
                    ledger.commit(&batch, &[])?;
                    batch.clear();
                }
            }
        }
    }
    ledger.commit(&batch, &[])?;
    let last = ledger.reader()?.last_seq()?;
    drop(ledger);

    // Bare loop: the same rows, encoded and gzipped ahead of time, posted one batch after another.
    let mut store = Store::open(&path, "bare")?;
    let mut bodies = Vec::new();
    let mut cursor = 0;
    loop {
        let rows = store.readings_after(cursor, 5000)?;
        let Some(lastrow) = rows.last() else { break };
        cursor = lastrow.seq;
        let mut text = String::new();
        for r in &rows {
            reading_line(r, &mut text)?;
            text.push('\n');
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, text.as_bytes())?;
        bodies.push(enc.finish()?);
    }
    let client = reqwest::Client::new();
    let started = Instant::now();
    for b in bodies {
        let resp = client
            .post(format!("{url}/api/v2/write"))
            .query(&[("bucket", "bench"), ("precision", "ms")])
            .header("Content-Encoding", "gzip")
            .body(b)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(format!("bare post failed: {}", resp.status()).into());
        }
    }
    let bare = total as f64 / started.elapsed().as_secs_f64();

    // quantrac's forwarder over the same ledger, timed until its cursor reaches the last row.
    let target = crate::config::forward::Influx {
        name: "bench".into(),
        url: url.clone(),
        org: String::new(),
        bucket: "bench".into(),
        token: None,
        gzip: std::env::var("QUANTRAC_BENCH_NOGZIP").is_err(),
        batch_lines: 5000,
        batch_wait: std::time::Duration::ZERO,
        timeout: std::time::Duration::from_secs(30),
        max_backoff: std::time::Duration::from_secs(5),
        aggregates: false,
        ca_file: None,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(crate::forward::influx::run(
        target,
        path.clone(),
        crate::health::Health::default(),
        stop.clone(),
    ));
    while store.cursor("influx:bench:readings")? < last {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let forwarded = total as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    task.await??;
    println!("quantrac bench influx: {total} readings, batches of 5,000 lines, gzip, {url}");
    println!("bare HTTP loop (pre-encoded): {bare:>10.0} lines/s");
    println!("quantrac forwarder:           {forwarded:>10.0} lines/s");
    println!("ratio:                        {:>10.2}", forwarded / bare);
    if let Some(mut c) = vm {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// SSE fan-out: `clients` dashboard streams while readings are ingested; readings/s committed and the latency from
/// submission to a client receiving the reading (an upper bound of commit → client).
pub async fn sse(clients: usize, seconds: u64) -> Result<(), Box<dyn std::error::Error>> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let dir = tempfile_dir()?;
    let text = format!(
        "[http]\nanonymous_read = true\n[ledger]\nsynchronous = \"normal\"\n{}",
        bench_config(100)
    );
    let mut config = Config::from_str(&text, Path::new("<bench>"), &dir)?;
    config.ledger.path = dir.join("sse.db");
    let limits = resolve_limits(&config)?;
    let ledger = Ledger::open(&config.ledger.path, Synchronous::Normal)?;
    let metrics = Arc::new(Metrics::default());
    let live = crate::live::LiveState::load(&config, &ledger.reader()?)?;
    let pipeline = Pipeline::start(&config, limits, ledger, metrics.clone());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/stream", listener.local_addr()?);
    let state = crate::http::AppState::new(
        Arc::new(config.clone()),
        live,
        crate::health::Health::default(),
        Default::default(),
        config.ledger.path.clone(),
        pipeline.live.clone(),
        Arc::new(AtomicBool::new(true)),
        shutdown.clone(),
    );
    let server = tokio::spawn(crate::http::serve(listener, state, shutdown.clone()));

    // Clients: count readings received and sample the latency of the first reading of every event.
    let received = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let (lat_tx, mut lat_rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, received, connected, lat_tx, stop) = (
            client.clone(),
            url.clone(),
            received.clone(),
            connected.clone(),
            lat_tx.clone(),
            shutdown.clone(),
        );
        tasks.push(tokio::spawn(async move {
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
                        .filter_map(|l| {
                            l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:"))
                        })
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
        }));
    }
    drop(lat_tx);
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while (connected.load(Ordering::Relaxed) as usize) < clients && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Ingest: every 10 ms, one reading of each of 10 stations' COD, stamped now.
    let ingest = pipeline.ingest();
    let ids: Vec<StationId> = config
        .stations
        .iter()
        .take(10)
        .map(|s| s.id.clone())
        .collect();
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
            })
            .await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let committed = metrics.totals().accepted;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    shutdown.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let _ = server.await;
    drop(ingest);
    pipeline.finish().await;
    let mut lat = Vec::new();
    while let Ok(l) = lat_rx.try_recv() {
        lat.push(l);
    }
    lat.sort_unstable();
    let pct = |p: f64| percentile(&lat, p);
    println!(
        "quantrac bench sse: {clients} clients connected ({} did), {seconds} s",
        connected.load(Ordering::Relaxed)
    );
    println!(
        "readings committed:        {:>10.0} /s",
        committed as f64 / secs
    );
    println!(
        "readings delivered (all clients): {:>10.0} /s",
        received.load(Ordering::Relaxed) as f64 / secs
    );
    println!(
        "latency submit → client:   p50 {} ms, p99 {} ms, max {} ms ({} samples)",
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0),
        lat.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Alert latency: from a reading's commit to its notification arriving at a local webhook. Each reading flips one
/// station's COD across its limit (raise, clear, raise, …), so every reading makes one notification.
pub async fn alerts(notifications: usize) -> Result<(), Box<dyn std::error::Error>> {
    use std::collections::HashMap;
    use std::sync::Mutex;

    let dir = tempfile_dir()?;
    // A local webhook that notes when each notification (station, sample time) arrived.
    let arrivals: Arc<Mutex<Vec<(String, i64, i64)>>> = Arc::default();
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
    let cod = Parameter::new("COD")?;
    let unit = Unit::new("mg/L");
    let ingest = pipeline.ingest();
    // (station, sample time) → commit time.
    let mut committed: HashMap<(String, i64), i64> = HashMap::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    let started = Instant::now();
    for n in 0..notifications {
        tick.tick().await;
        let station = &ids[n % stations];
        let ts = Timestamp::now().millis();
        // Odd rounds of a station exceed (2×), even rounds are well below (0.3×).
        let value = if (n / stations) % 2 == 0 { 300.0 } else { 45.0 };
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
            })
            .await?;
        committed.insert((station.to_string(), ts), Timestamp::now().millis());
    }
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
    let pct = |p: f64| percentile(&lat, p);
    println!(
        "quantrac bench alerts: {notifications} readings, each raising or clearing an exceedance, {:.1} s",
        secs
    );
    println!(
        "notifications delivered to the local webhook: {} of {notifications}",
        arrived.len()
    );
    println!(
        "latency commit → webhook:  p50 {} ms, p99 {} ms, max {} ms ({} samples)",
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0),
        lat.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The `p` quantile (0–1) of sorted samples; zero when there are none.
fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}
