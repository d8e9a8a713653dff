//! `quantrac bench influx`: lines/s forwarded from a prepared ledger to an InfluxDB v2 write API, beside a bare HTTP
//! client posting the same batches.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::compliance::resolve_limits;
use crate::config::{Config, Synchronous};
use crate::forward::encode::reading_line;
use crate::ledger::forward::ForwardStore as Store;
use crate::ledger::{Evaluated, Ledger};
use crate::model::{Reading, SourceKind, Status, Timestamp};

use super::support::{bench_config, plausible, post_bodies, tempfile_dir};

type BoxError = Box<dyn std::error::Error>;

/// Lines/s forwarded from a prepared ledger to an InfluxDB v2 write API (VictoriaMetrics by default, started here),
/// beside a bare HTTP client posting the same batches.
pub async fn run(total: usize, url: Option<String>) -> Result<(), BoxError> {
    let dir = tempfile_dir()?;
    let mut vm = None;
    let url = match url {
        Some(u) => u,
        None => {
            let (child, url) = start_victoria_metrics(&dir).await?;
            vm = Some(child);
            url
        }
    };
    let path = dir.join("forward.db");
    let last = fill_ledger(&path, total)?;
    let mut store = Store::open(&path, "bare")?;
    let bare = total as f64 / bare_post_seconds(&mut store, &url).await?;
    let forwarded = total as f64 / forwarder_seconds(&store, &path, &url, last).await?;
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

/// A local victoria-metrics keeping its data under `dir`, once it answers its health check; its base URL.
async fn start_victoria_metrics(dir: &Path) -> Result<(Child, String), BoxError> {
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
        .map_err(|e| format!("cannot start victoria-metrics ({e}); install it or pass --url"))?;
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{url}/health"))
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        if Instant::now() > deadline {
            return Err("victoria-metrics did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((child, url))
}

/// A ledger at `path` holding `total` readings of 100 stations × 10 parameters; the sequence number of its last row.
fn fill_ledger(path: &Path, total: usize) -> Result<i64, BoxError> {
    let config = Config::from_str(&bench_config(100), Path::new("<bench>"), Path::new("."))?;
    let limits = resolve_limits(&config)?;
    let mut ledger = Ledger::open(path, Synchronous::Normal)?;
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
                    received: None,
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
    Ok(last)
}

/// Bare loop: the same rows, encoded and gzipped ahead of time, posted one batch after another; seconds posting.
async fn bare_post_seconds(store: &mut Store, url: &str) -> Result<f64, BoxError> {
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
    post_bodies(&client, url, bodies)
        .await
        .map_err(|e| e as BoxError)?;
    Ok(started.elapsed().as_secs_f64())
}

/// quantrac's forwarder over the ledger at `path`, timed until its cursor reaches row `last`; seconds.
async fn forwarder_seconds(
    store: &Store,
    path: &Path,
    url: &str,
    last: i64,
) -> Result<f64, BoxError> {
    let target = crate::config::forward::Influx {
        name: "bench".into(),
        url: url.to_string(),
        org: String::new(),
        bucket: "bench".into(),
        token: None,
        gzip: std::env::var("QUANTRAC_BENCH_NOGZIP").is_err(),
        batch_lines: 5000,
        batch_wait: Duration::ZERO,
        timeout: Duration::from_secs(30),
        max_backoff: Duration::from_secs(5),
        aggregates: false,
        ca_file: None,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(crate::forward::influx::run(
        target,
        path.to_path_buf(),
        crate::health::Health::default(),
        stop.clone(),
    ));
    while store.cursor("influx:bench:readings")? < last {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.cancel();
    task.await??;
    Ok(secs)
}
