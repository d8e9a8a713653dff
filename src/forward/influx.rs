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

use super::encode::{aggregate_line, alert_line, event_line, withdrawn_line, ReadingEncoder};
use super::lines::Lines;
use crate::config::forward::Influx;
use crate::health::{Backoff, ConnectionState, Health};
use crate::ledger::forward::ForwardStore;
use crate::ledger::{Held, LedgerError, Stream};
use crate::model::SourceKind;
use crate::redact::Redactor;

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

impl Reply {
    /// The same reply with its message fit for the log, the health state and the dead letters.
    fn redacted(self, r: &Redactor) -> Reply {
        match self {
            Reply::Ok => Reply::Ok,
            Reply::Retry(m, after) => Reply::Retry(r.text(&m), after),
            Reply::Fault(m) => Reply::Fault(r.text(&m)),
            Reply::Refused(status, m) => Reply::Refused(status, r.text(&m)),
        }
    }
}

/// What to cut from a target's errors: URLs, its token, its URL's password and credential query values.
fn redactor(target: &Influx) -> Redactor {
    Redactor::new(target.token.iter().map(|t| t.expose())).with_url_credentials(&target.url)
}

/// A delivered position left unsaved (the ledger was busy, or a position was stored less than a second before) is
/// stored after this long without another batch.
const CURSOR_SAVE_RETRY: Duration = Duration::from_millis(200);

/// Health key of a target.
pub fn health_key(name: &str) -> String {
    format!("influx {name}")
}

/// A batch read from the ledger and encoded, ready to post.
struct Prepared {
    lines: Lines,
    /// The whole batch, gzipped (when enabled), for the first attempt.
    body: Vec<u8>,
    /// Which cursor to move, and where to, once delivered.
    stream: Stream,
    position: i64,
}

/// Readings read and encoded into a batch short of its size, kept while the producer waits once for more: the rows
/// after them are appended, so no row is read, encoded or compressed twice.
struct Partial {
    lines: Lines,
    last: i64,
    n: usize,
}

/// What one read of the ledger gave.
enum Read {
    Ready(Prepared),
    Partial(Partial),
}

/// Forward until `shutdown`. Stops between requests; what was not sent stays in the ledger for next time.
/// A producer reads and encodes the next batch while the current one is being posted.
pub async fn run(
    target: Influx,
    ledger: PathBuf,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), ForwardError> {
    let key = health_key(&target.name);
    health.register(&key, ConnectionState::new(SourceKind::Api, Vec::new()));
    let client = build_client(&target)?;
    let store = Held::new(ForwardStore::open(&ledger, &target.name)?);
    store.call(|s| s.ensure_cursors()).await?;
    info!(target = %target.name, url = %crate::redact::url(&target.url), "InfluxDB forwarder started.");
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let producer = tokio::spawn(produce(
        target.clone(),
        store.clone(),
        health.clone(),
        key.clone(),
        tx,
        shutdown.clone(),
    ));
    let mut backoff = Backoff::new(Duration::from_millis(500), target.max_backoff);
    let mut result = Ok(());
    // Whether a delivered position waits to be stored (the ledger was busy when it moved).
    let mut unsaved = false;
    loop {
        let p = tokio::select! {
            p = rx.recv() => match p {
                Some(p) => p,
                None => break,
            },
            _ = tokio::time::sleep(CURSOR_SAVE_RETRY), if unsaved => {
                match store.call(|s| s.save_cursors(false)).await {
                    Ok(saved) => unsaved = !saved,
                    Err(e) => {
                        result = Err(e.into());
                        break;
                    }
                }
                continue;
            }
        };
        let Prepared {
            lines,
            body,
            stream,
            position,
        } = p;
        let n = lines.len() as u64;
        // A batch can hold nothing to send (only withdrawn alerts, or points held again): just move the cursor.
        let sent = if lines.is_empty() {
            Ok(true)
        } else {
            send_all(
                &client,
                &target,
                &store,
                &health,
                &key,
                &mut backoff,
                lines,
                Some(body),
                &shutdown,
            )
            .await
        };
        match sent {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        match store.call(move |s| s.move_cursor(stream, position)).await {
            Ok(saved) => unsaved = !saved,
            Err(e) => {
                result = Err(e.into());
                break;
            }
        }
        health.success(&key, n);
        update_backlog(&store, &health, &key).await;
    }
    drop(rx);
    // What was delivered is stored before stopping, waiting for the lock if need be.
    if let Err(e) = store.call(|s| s.save_cursors(true)).await {
        result = result.and(Err(e.into()));
    }
    let produced = producer
        .await
        .map_err(|e| ForwardError::Join(e.to_string()))?;
    // How many were taken from the writer's memory rather than read back: most of them, unless it fell far behind.
    let from_memory = store
        .call(|s| Ok::<_, crate::ledger::LedgerError>(s.rows_from_feed))
        .await
        .unwrap_or(0);
    info!(target = %target.name, readings_from_memory = from_memory,
        "InfluxDB forwarder stopped; unsent rows stay in the ledger.");
    result.and(produced)
}

/// Read and encode batches after the cursors until shutdown or until the sender is gone.
async fn produce(
    target: Influx,
    store: Held<ForwardStore>,
    health: Health,
    key: String,
    tx: tokio::sync::mpsc::Sender<Prepared>,
    shutdown: CancellationToken,
) -> Result<(), ForwardError> {
    let (mut readings_pos, mut aggregates_pos, mut events_pos, mut alerts_pos, mut withdrawn_pos) =
        store
            .call::<_, LedgerError>(|s| {
                Ok((
                    s.cursor(&s.readings_cursor)?,
                    s.cursor(&s.aggregates_cursor)?,
                    s.cursor(&s.events_cursor)?,
                    s.cursor(&s.alerts_cursor)?,
                    s.cursor(&s.withdrawn_cursor)?,
                ))
            })
            .await?;
    let mut partial: Option<Partial> = None;
    let encoder = Arc::new(Mutex::new(ReadingEncoder::default()));
    while !shutdown.is_cancelled() {
        let (limit, gz, aggregates) = (target.batch_lines, target.gzip, target.aggregates);
        // A batch short of `limit` waits once for more rows, unless it already has.
        let held = partial.take();
        let may_wait = held.is_none() && !target.batch_wait.is_zero();
        let (pos, apos, epos, alpos, wpos) = (
            readings_pos,
            aggregates_pos,
            events_pos,
            alerts_pos,
            withdrawn_pos,
        );
        let enc = encoder.clone();
        let read = store
            .call::<_, LedgerError>(move |s| {
                // Encoded as they are read: no vector of rows in between.
                let mut enc = enc.lock().unwrap_or_else(|e| e.into_inner());
                let (mut lines, mut last, mut n) = match held {
                    Some(p) => (p.lines, Some(p.last), p.n),
                    None => (Lines::with_capacity(limit.min(10_000)), None, 0),
                };
                n += s.each_reading_after(last.unwrap_or(pos), limit.saturating_sub(n), |r| {
                    lines.push(r.seq, |l| enc.line(r, l));
                    last = Some(r.seq);
                })?;
                if let Some(last) = last {
                    if n < limit && may_wait {
                        return Ok(Some(Read::Partial(Partial { lines, last, n })));
                    }
                    return Ok(Some(ready(lines, gz, Stream::Readings, last)));
                }
                // Compliance events are few and matter to the dashboards: always forwarded.
                let events = s.events_after(epos, limit)?;
                if let Some(last) = events.last() {
                    let lines = Lines::encode(&events, |e| e.change_seq, |e, l| event_line(e, l));
                    return Ok(Some(ready(lines, gz, Stream::Events, last.change_seq)));
                }
                // Alert states likewise (the ledger of a daemon with alerts off has none).
                let alerts = s.alerts_after(alpos, limit)?;
                if let Some(last) = alerts.last() {
                    let shown = alerts.iter().filter(|a| a.state != "withdrawn");
                    let lines = Lines::encode(shown, |a| a.change_seq, |a, l| alert_line(a, l));
                    return Ok(Some(ready(lines, gz, Stream::Alerts, last.change_seq)));
                }
                // Points a re-derivation left without a row: marked withdrawn, after the rows that replaced them.
                let withdrawn = s.withdrawn_after(wpos, limit)?;
                if let Some(last) = withdrawn.last() {
                    let due = withdrawn.iter().filter(|w| !w.held);
                    let lines = Lines::encode(due, |w| w.seq, |w, l| withdrawn_line(w, l));
                    return Ok(Some(ready(lines, gz, Stream::Withdrawn, last.seq)));
                }
                if aggregates {
                    let aggs = s.aggregates_after(apos, limit)?;
                    if let Some(last) = aggs.last() {
                        let lines =
                            Lines::encode(&aggs, |a| a.change_seq, |a, l| aggregate_line(a, l));
                        return Ok(Some(ready(lines, gz, Stream::Aggregates, last.change_seq)));
                    }
                }
                Ok(None)
            })
            .await?;
        match read {
            Some(Read::Partial(p)) => {
                partial = Some(p);
                if sleep_or_stop(target.batch_wait, &shutdown).await {
                    break;
                }
            }
            Some(Read::Ready(p)) => {
                match p.stream {
                    Stream::Readings => readings_pos = p.position,
                    Stream::Aggregates => aggregates_pos = p.position,
                    Stream::Events => events_pos = p.position,
                    Stream::Alerts => alerts_pos = p.position,
                    Stream::Withdrawn => withdrawn_pos = p.position,
                }
                if tx.send(p).await.is_err() {
                    break;
                }
            }
            None => {
                update_backlog(&store, &health, &key).await;
                if sleep_or_stop(target.batch_wait.max(Duration::from_millis(200)), &shutdown).await
                {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// A batch ready to post: its lines and the request body for them.
fn ready(lines: Lines, gzip_on: bool, stream: Stream, position: i64) -> Read {
    Read::Ready(Prepared {
        body: body(&lines, gzip_on),
        lines,
        stream,
        position,
    })
}

/// The request body: the lines' text, gzipped when enabled.
fn body(lines: &Lines, gzip_on: bool) -> Vec<u8> {
    let text = lines.text().as_bytes();
    if gzip_on {
        gzip(text).unwrap_or_else(|_| text.to_vec())
    } else {
        text.to_vec()
    }
}

/// Deliver every line (splitting and dead-lettering as needed). `false` when stopped by shutdown first.
#[allow(clippy::too_many_arguments)]
async fn send_all(
    client: &reqwest::Client,
    target: &Influx,
    store: &Held<ForwardStore>,
    health: &Health,
    key: &str,
    backoff: &mut Backoff,
    lines: Lines,
    mut body: Option<Vec<u8>>,
    shutdown: &CancellationToken,
) -> Result<bool, ForwardError> {
    let redactor = redactor(target);
    let mut work = vec![lines];
    while let Some(chunk) = work.pop() {
        if chunk.is_empty() {
            continue;
        }
        loop {
            // The prepared body serves the first attempt of the whole batch; splits and retries rebuild it.
            let payload = body
                .take()
                .unwrap_or_else(|| self::body(&chunk, target.gzip));
            let delay = match post(client, target, payload).await.redacted(&redactor) {
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
                    error!(target = %target.name, status, answer = %msg, line = %chunk.get(0), "InfluxDB refused a line; moved to dead_letters.");
                    let name = target.name.clone();
                    let lines: Vec<String> = chunk.iter().map(str::to_string).collect();
                    store
                        .call(move |s| s.dead_letter(&name, &lines, status, &msg))
                        .await?;
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

async fn post(client: &reqwest::Client, target: &Influx, body: Vec<u8>) -> Reply {
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
    // A gzip body starts with the magic bytes 1f 8b; line protocol text never does.
    if body.starts_with(&[0x1f, 0x8b]) {
        req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
    }
    req = req.body(body);
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

async fn update_backlog(store: &Held<ForwardStore>, health: &Health, key: &str) {
    if let Ok(b) = store.call(|s| s.backlog()).await {
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
