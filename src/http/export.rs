//! `GET /api/export?station&from&to&format=csv|json|tt10|all[&exported_at]` for auditors: `csv` and `json` stream the readings
//! table as it is read from the ledger; `tt10` and `all` build the export folder (with its MANIFEST) in a temporary
//! folder and stream it as a tar archive. Memory stays flat: rows go out in 64 KiB chunks as they are read.

use std::collections::HashMap;
use std::io::{self, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use tokio::sync::mpsc;

use super::auth::{Auditor, RequireRole};
use super::scope::require_station;
use super::{ApiError, AppState};
use crate::config::scope::StationScope;
use crate::export::{self, Format};
use crate::model::Timestamp;

const CHUNK: usize = 64 * 1024;

/// A blocking writer whose bytes become the response body.
pub(super) struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub(super) fn new(tx: mpsc::Sender<Result<Bytes, io::Error>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

fn time(
    q: &HashMap<String, String>,
    key: &str,
    tz: chrono::FixedOffset,
) -> Result<Timestamp, ApiError> {
    let v = q.get(key).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{key} is required (local date 2026-10-01, RFC 3339 or Unix milliseconds)"
        ))
    })?;
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Timestamp(ms));
    }
    export::parse_time(v, tz).map_err(|e| ApiError::bad_request(format!("{key}: {e}")))
}

pub async fn export(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Auditor>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    const ALLOWED: [&str; 5] = ["station", "from", "to", "format", "exported_at"];
    if let Some(k) = q
        .keys()
        .find(|k| !ALLOWED.contains(&k.as_str()) && k.as_str() != "access_token")
    {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {k:?}; expected {}",
            ALLOWED.join(", ")
        )));
    }
    let tz = s.config().timezone;
    let (from, to) = (time(&q, "from", tz)?, time(&q, "to", tz)?);
    if to <= from {
        return Err(ApiError::bad_request(
            "the period is empty: to must be after from",
        ));
    }
    let format = match q.get("format") {
        None => Format::Csv,
        Some(f) => Format::parse(f).ok_or_else(|| {
            ApiError::bad_request(format!("format={f:?}; expected one of {}", Format::NAMES))
        })?,
    };
    // The MANIFEST's time: a monthly report cites it, so the same export can be downloaded again byte for byte.
    let exported_at = match q.get("exported_at") {
        Some(_) => Some(time(&q, "exported_at", tz)?),
        None => None,
    };
    let stations = export_stations(&s, &caller.scope, q.get("station")).await?;
    tracing::info!(who = %caller.name, query = %export::describe(&export::Query { stations: stations.clone(), from, to, format }, tz), "Export requested.");
    let label = format!(
        "quantrac-export-{}-{}-{}",
        q.get("station").map_or("all", String::as_str),
        Timestamp(from.millis()).to_local(tz).format("%Y%m%d%H%M"),
        Timestamp(to.millis()).to_local(tz).format("%Y%m%d%H%M"),
    );
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(8);
    let config = s.config();
    let (content_type, file) = match format {
        Format::Csv => ("text/csv; charset=utf-8", format!("{label}.csv")),
        Format::Json => ("application/json", format!("{label}.json")),
        Format::Tt10 | Format::All => (
            "application/x-tar",
            format!("{label}-{}.tar", format.as_str()),
        ),
    };
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result: Result<(), String> = match format {
            Format::Csv => export::write_readings(&config, &stations, from, to, Some(&mut w), None)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Format::Json => {
                export::write_readings(&config, &stations, from, to, None, Some(&mut w))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Format::Tt10 | Format::All => {
                // A private (0700) folder with an unpredictable name, created anew (never an existing path or a
                // planted symlink), removed when dropped — after the tar, after an error, after a panic.
                let temp = match tempfile::Builder::new()
                    .prefix("quantrac-export-")
                    .tempdir()
                {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(error = %e, "Export stopped: cannot create a temporary folder.");
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                let dir = temp.path().to_path_buf();
                let query = export::Query {
                    stations,
                    from,
                    to,
                    format,
                };
                let opts = export::Options {
                    exported_at,
                    sign: None,
                };
                let r = export::export(&config, &query, &dir, &opts)
                    .map_err(|e| e.to_string())
                    .and_then(|_| {
                        export::tar::write_folder(&dir, &label, &mut w)
                            .and_then(|_| w.flush())
                            .map_err(|e| e.to_string())
                    });
                drop(temp);
                r
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "Export stopped; the response is cut short.");
            let _ = tx.blocking_send(Err(io::Error::other(e)));
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// The stations an export covers, as `export` takes them (empty: every station). One station asked for: in the
/// caller's scope (403 naming it otherwise) and known. None asked for: every station for an unscoped caller; for a
/// scoped one, the configured and stored stations its scope admits (403 when there is none).
async fn export_stations(
    s: &AppState,
    scope: &StationScope,
    asked: Option<&String>,
) -> Result<Vec<String>, ApiError> {
    if let Some(id) = asked {
        require_station(scope, id)?;
        super::api::known_station(s, id)?;
        return Ok(vec![id.clone()]);
    }
    if scope.is_all() {
        return Ok(Vec::new());
    }
    let stored = s.ledger.read(|r| r.snapshot()?.stations()).await?;
    let config = s.config();
    let mut ids: Vec<String> = stored
        .iter()
        .map(|n| n.name.to_string())
        .chain(config.stations.iter().map(|c| c.id.to_string()))
        .filter(|id| scope.allows(id))
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Err(ApiError::forbidden(format!(
            "none of the stations you may see ({scope}) is configured or stored"
        )));
    }
    Ok(ids)
}
