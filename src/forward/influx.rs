//! The InfluxDB forwarder task: batches from the ledger, gzip, the v2 write API, retries, dead letters.
//!
//! Error policy: 2xx → move the cursor. 429, 408, 5xx, network errors and timeouts → retry with capped
//! exponential backoff and jitter, honouring `Retry-After`. 401/403 (and other 4xx such as a missing bucket) are
//! configuration faults: keep the data, retry slowly, log ERROR and mark the target down. 413 → split the batch.
//! 400/422 → split until the refused lines are alone, then move them to `dead_letters` with the server's answer.
//!
//! The v2 write API is called with reqwest rather than the `influxdb2` crate: its `write_line_protocol` cannot send
//! a gzip body (no way to set `Content-Encoding`), hides `Retry-After`, and its constructor panics on a bad URL.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::encode::{aggregate_line, reading_line};
use super::store::Store;
use crate::config::forward::Influx;
use crate::health::{Backoff, ConnectionState, Health};
use crate::ledger::LedgerError;
use crate::model::SourceKind;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot build the HTTP client for {target}: {error}")]
    Client { target: String, error: String },
    #[error("the ledger task failed: {0}")]
    Join(String),
}

/// What one request came back with.
enum Reply {
    Ok,
    /// Retry the same lines later (after this long, when the server said).
    Retry(String, Option<Duration>),
    /// Configuration fault: retry slowly, report loudly.
    Fault(String),
    /// The server refused some lines (400, 422; 413 for a single line): split to find them.
    Refused(u16, String),
}

/// Health key of a target.
pub fn health_key(name: &str) -> String {
    format!("influx {name}")
}

/// Forward until `shutdown`. Stops between requests; what was not sent stays in the ledger for next time.
pub async fn run(
    target: Influx,
    ledger: PathBuf,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), ForwardError> {
    let key = health_key(&target.name);
    health.register(&key, ConnectionState::new(SourceKind::Api, Vec::new()));
    let client = build_client(&target)?;
    let store = Arc::new(Mutex::new(Store::open(&ledger, &target.name)?));
    blocking(&store, |s| s.ensure_cursors()).await?;
    let mut backoff = Backoff::new(Duration::from_millis(500), target.max_backoff);
    info!(target = %target.name, url = %target.url, "InfluxDB forwarder started.");
    let mut waited = false;
    while !shutdown.is_cancelled() {
        let limit = target.batch_lines;
        let cur = blocking(&store, |s| s.cursor(&s.readings_cursor.clone())).await?;
        let rows = blocking(&store, move |s| s.readings_after(cur, limit)).await?;
        let (lines, next_readings) = if !rows.is_empty() {
            // Fill the batch: wait once for more unless it is already full.
            if rows.len() < limit && !waited && !target.batch_wait.is_zero() {
                waited = true;
                if sleep_or_stop(target.batch_wait, &shutdown).await {
                    break;
                }
                continue;
            }
            let mut lines = Vec::with_capacity(rows.len());
            for r in &rows {
                let mut l = String::with_capacity(160);
                match reading_line(r, &mut l) {
                    Ok(()) => lines.push(l),
                    Err(e) => {
                        warn!(target = %target.name, seq = r.seq, error = %e, "Reading cannot be encoded; skipped.")
                    }
                }
            }
            (lines, Some(rows.last().map_or(cur, |r| r.seq)))
        } else if target.aggregates {
            let acur = blocking(&store, |s| s.cursor(&s.aggregates_cursor.clone())).await?;
            let aggs = blocking(&store, move |s| s.aggregates_after(acur, limit)).await?;
            if aggs.is_empty() {
                update_backlog(&store, &health, &key).await;
                if sleep_or_stop(target.batch_wait.max(Duration::from_millis(200)), &shutdown).await
                {
                    break;
                }
                continue;
            }
            let lines = aggs
                .iter()
                .filter_map(|a| {
                    let mut l = String::with_capacity(200);
                    aggregate_line(a, &mut l).ok().map(|_| l)
                })
                .collect();
            let last = aggs.last().map_or(acur, |a| a.change_seq);
            if !send_all(
                &client,
                &target,
                &store,
                &health,
                &key,
                &mut backoff,
                lines,
                &shutdown,
            )
            .await?
            {
                break;
            }
            blocking(&store, move |s| s.set_aggregates_cursor(last)).await?;
            continue;
        } else {
            update_backlog(&store, &health, &key).await;
            if sleep_or_stop(target.batch_wait.max(Duration::from_millis(200)), &shutdown).await {
                break;
            }
            continue;
        };
        waited = false;
        let n = lines.len() as u64;
        if !send_all(
            &client,
            &target,
            &store,
            &health,
            &key,
            &mut backoff,
            lines,
            &shutdown,
        )
        .await?
        {
            break;
        }
        if let Some(last) = next_readings {
            blocking(&store, move |s| s.set_readings_cursor(last)).await?;
        }
        health.success(&key, n);
        update_backlog(&store, &health, &key).await;
    }
    info!(target = %target.name, "InfluxDB forwarder stopped; unsent rows stay in the ledger.");
    Ok(())
}

/// Deliver every line (splitting and dead-lettering as needed). `false` when stopped by shutdown first.
#[allow(clippy::too_many_arguments)]
async fn send_all(
    client: &reqwest::Client,
    target: &Influx,
    store: &Arc<Mutex<Store>>,
    health: &Health,
    key: &str,
    backoff: &mut Backoff,
    lines: Vec<String>,
    shutdown: &CancellationToken,
) -> Result<bool, ForwardError> {
    let mut work = vec![lines];
    while let Some(chunk) = work.pop() {
        if chunk.is_empty() {
            continue;
        }
        loop {
            let delay = match post(client, target, &chunk).await {
                Reply::Ok => {
                    backoff.reset();
                    break;
                }
                Reply::Refused(_, msg) if chunk.len() > 1 => {
                    warn!(target = %target.name, lines = chunk.len(), answer = %msg, "InfluxDB refused a batch; splitting it.");
                    let mut a = chunk;
                    let b = a.split_off(a.len() / 2);
                    work.push(b);
                    work.push(a);
                    break;
                }
                Reply::Refused(status, msg) => {
                    error!(target = %target.name, status, answer = %msg, line = %chunk[0], "InfluxDB refused a line; moved to dead_letters.");
                    let (name, lines) = (target.name.clone(), chunk.clone());
                    blocking(store, move |s| s.dead_letter(&name, &lines, status, &msg)).await?;
                    break;
                }
                Reply::Fault(msg) => {
                    error!(target = %target.name, answer = %msg, "InfluxDB rejects quantrac's credentials or configuration; data is kept and will be resent once fixed.");
                    health.failure(key, format!("configuration fault: {msg}"));
                    target.max_backoff
                }
                Reply::Retry(msg, after) => {
                    warn!(target = %target.name, error = %msg, "InfluxDB write failed; retrying.");
                    health.failure(key, msg);
                    after
                        .unwrap_or_else(|| backoff.next_delay())
                        .min(target.max_backoff)
                }
            };
            update_backlog(store, health, key).await;
            if sleep_or_stop(delay, shutdown).await {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

async fn post(client: &reqwest::Client, target: &Influx, lines: &[String]) -> Reply {
    let body = lines.join("\n");
    let mut req = client
        .post(format!("{}/api/v2/write", target.url))
        .query(&[
            ("org", target.org.as_str()),
            ("bucket", target.bucket.as_str()),
            ("precision", "ms"),
        ])
        .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8");
    if let Some(t) = &target.token {
        req = req.header(
            reqwest::header::AUTHORIZATION,
            format!("Token {}", t.expose()),
        );
    }
    req = if target.gzip {
        match gzip(body.as_bytes()) {
            Ok(z) => req
                .header(reqwest::header::CONTENT_ENCODING, "gzip")
                .body(z),
            Err(_) => req.body(body),
        }
    } else {
        req.body(body)
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Reply::Retry(describe(&e), None),
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    if resp.status().is_success() {
        return Reply::Ok;
    }
    let text = resp.text().await.unwrap_or_default();
    let msg = answer(status, &text);
    match status {
        // A body too large (413) is split like refused lines; a single line that is still too large is dead-lettered.
        400 | 413 | 422 => Reply::Refused(status, msg),
        408 | 429 | 500..=599 => Reply::Retry(msg, retry_after),
        _ => Reply::Fault(msg),
    }
}

/// `HTTP 400: <message>` from InfluxDB's JSON error body (`{"code": …, "message": …}`), or the raw text.
fn answer(status: u16, text: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.chars().take(500).collect());
    format!("HTTP {status}: {message}")
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("request timed out: {e}")
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    }
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(data)?;
    enc.finish()
}

fn build_client(target: &Influx) -> Result<reqwest::Client, ForwardError> {
    let fail = |error: String| ForwardError::Client {
        target: target.name.clone(),
        error,
    };
    let mut b = reqwest::Client::builder()
        .timeout(target.timeout)
        .connect_timeout(target.timeout.min(Duration::from_secs(10)));
    if let Some(ca) = &target.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| fail(format!("cannot read CA file {}: {e}", ca.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| fail(format!("CA file {} is not PEM: {e}", ca.display())))?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| fail(e.to_string()))
}

async fn update_backlog(store: &Arc<Mutex<Store>>, health: &Health, key: &str) {
    if let Ok(b) = blocking(store, |s| s.backlog()).await {
        health.set_backlog(key, b);
    }
}

/// Sleep, or return `true` at once when shutdown comes first.
async fn sleep_or_stop(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// Run a ledger call on the blocking pool.
async fn blocking<T: Send + 'static>(
    store: &Arc<Mutex<Store>>,
    f: impl FnOnce(&Store) -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, ForwardError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let s = store.lock().unwrap_or_else(|e| e.into_inner());
        f(&s)
    })
    .await
    .map_err(|e| ForwardError::Join(e.to_string()))?
    .map_err(ForwardError::from)
}
