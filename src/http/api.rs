//! JSON API handlers. Every query parameter is checked and a bad one answers 400 with what was expected.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Auditor, Operator, RequireRole, Viewer};
use super::scope::{globs, require_station, shows};
use super::{ApiError, AppState};
use crate::config::scope::StationScope;
use crate::ledger::audit::{NoteFilter, StationNote};
use crate::ledger::query::{AggregateFilter, EventFilter, ReadingFilter};
use crate::model::Timestamp;

type Params = Query<HashMap<String, String>>;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the ledger answers, every source has been started and the ledger writer's last commit succeeded;
/// otherwise 503 with the reason (`reasons`).
pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let ledger = s.ledger.read(|r| r.last_seq()).await;
    let sources = s.sources_started.load(Relaxed);
    let failure = s.writer.as_ref().and_then(|m| m.last_commit_failure());
    let mut reasons = Vec::new();
    if let Err(e) = &ledger {
        reasons.push(format!("the ledger cannot be read: {e}"));
    }
    if !sources {
        reasons.push("the sources are still starting".to_string());
    }
    if let Some(f) = &failure {
        reasons.push(format!(
            "the last ledger commit failed at {}: {}",
            f.at, f.error
        ));
    }
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({ "ledger": ledger.is_ok(), "sources_started": sources,
            "last_commit_ok": failure.is_none(), "reasons": reasons }),
        ),
    )
}

/// Stations with their live state, latest values against limits, completeness, and source connections.
pub async fn stations(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Viewer>,
) -> Result<Json<Value>, ApiError> {
    s.live.refresh_states(Timestamp::now());
    let health = s.health.snapshot();
    let open_alerts = s.ledger.read(|r| r.open_alerts_by_station()).await?;
    let config = s.config();
    let stations: Vec<Value> = s
        .live
        .stations()
        .into_iter()
        .filter(|st| caller.scope.allows(&st.id))
        .map(|st| {
            let connections: Vec<Value> = health
                .iter()
                .filter(|(_, c)| c.stations.contains(&st.id))
                .map(|(k, c)| json!({ "name": k, "up": c.up, "last_success": c.last_success.map(|t| t.millis()),
                    "last_error": c.last_error.as_ref().map(|(t, e)| json!({"at": t.millis(), "error": crate::redact::urls(e)})),
                    "consecutive_failures": c.consecutive_failures,
                    "backlog": c.backlog.map(|b| json!({"rows_behind": b.rows_behind, "oldest_unsent_ms": b.oldest_unsent_ms})),
                    "transmission": c.transmission.as_ref().map(|t| json!({"files": t.files, "corrections": t.corrections,
                        "late": t.late, "deadline_ms": t.deadline_ms, "last_delay_ms": t.last_delay_ms})) }))
                .collect();
            let mut v = serde_json::to_value(&st).unwrap_or(Value::Null);
            v["connections"] = Value::Array(connections);
            let open = open_alerts.get(&st.id);
            v["open_alerts"] = json!(open.map_or(0, |o| o.count));
            v["open_since"] = json!(open.map(|o| o.since));
            v["location"] = json!(config
                .station(&st.id)
                .and_then(|c| c.location)
                .map(|l| json!({ "lat": l.lat, "lon": l.lon })));
            v
        })
        .collect();
    let map = config
        .http
        .map
        .as_ref()
        .map(|m| json!({ "tiles": m.url, "attribution": m.attribution }));
    Ok(Json(
        json!({ "timezone": config.timezone_name, "utc_offset_s": config.timezone.local_minus_utc(),
        "averaging_window_ms": s.live.window_ms(), "map": map, "stations": stations }),
    ))
}

/// A time given as Unix milliseconds or RFC 3339.
pub(super) fn time_param(
    q: &HashMap<String, String>,
    key: &str,
) -> Result<Option<Timestamp>, ApiError> {
    let Some(v) = q.get(key) else { return Ok(None) };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Some(Timestamp(ms)));
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|d| Some(Timestamp::from_datetime(&d)))
        .map_err(|_| ApiError::bad_request(format!("{key}={v:?} is not a time; expected Unix milliseconds or RFC 3339 such as 2026-11-27T10:00:00+07:00")))
}

pub(super) fn number_param(
    q: &HashMap<String, String>,
    key: &str,
    default: i64,
    max: i64,
) -> Result<i64, ApiError> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (0..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "{key}={v:?} is not a whole number from 0 to {max}"
            ))),
        },
    }
}

pub(super) fn check_known(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match q
        .keys()
        .find(|k| !allowed.contains(&k.as_str()) && k.as_str() != "access_token")
    {
        Some(k) => Err(ApiError::bad_request(format!(
            "unknown parameter {k:?}; expected {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The `station` a list is narrowed to: 403 outside the caller's scope (asked first, so the answer does not tell
/// whether the station exists), 400 when unknown.
pub(super) fn station_param(
    s: &AppState,
    scope: &StationScope,
    q: &HashMap<String, String>,
) -> Result<Option<String>, ApiError> {
    let Some(id) = q.get("station") else {
        return Ok(None);
    };
    require_station(scope, id)?;
    known_station(s, id)?;
    Ok(Some(id.clone()))
}

/// 400 unless `id` is configured or live.
pub(super) fn known_station(s: &AppState, id: &str) -> Result<(), ApiError> {
    if s.config().station(id).is_none() && s.live.station(id).is_none() {
        return Err(ApiError::bad_request(format!("unknown station {id:?}")));
    }
    Ok(())
}

/// Readings by station, parameter and time range, in commit order; page with `after` (the `next_after` of the
/// previous page).
pub async fn readings(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Viewer>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    check_known(
        &q,
        &["station", "parameter", "from", "to", "after", "limit"],
    )?;
    let f = ReadingFilter {
        station: station_param(&s, &caller.scope, &q)?,
        station_globs: globs(&caller.scope),
        parameter: q.get("parameter").cloned(),
        from: time_param(&q, "from")?,
        to: time_param(&q, "to")?,
        after_seq: number_param(&q, "after", 0, i64::MAX)?,
        limit: number_param(&q, "limit", 1000, 10_000)? as usize,
    };
    if let (Some(a), Some(b)) = (f.from, f.to) {
        if a > b {
            return Err(ApiError::bad_request("from is after to"));
        }
    }
    let limit = f.limit.max(1);
    let rows = s
        .ledger
        .read(move |r| r.readings(&ReadingFilter { limit, ..f }))
        .await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let readings: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({ "seq": r.seq, "station": r.station, "parameter": r.parameter, "ts": r.ts.millis(), "time": r.ts.to_string(),
                "value": r.value, "unit": r.unit, "status": r.status.as_str(), "source": r.source, "limit_low": r.limit_low,
                "limit_high": r.limit_high, "ratio": r.ratio, "band": r.band, "flags": crate::compliance::Flags(r.flags).names() })
        })
        .collect();
    Ok(Json(json!({ "readings": readings, "next_after": next })))
}

/// Aggregates of the averaging window (default), of clock hours or of local days.
pub async fn aggregates(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Viewer>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    check_known(
        &q,
        &["station", "parameter", "from", "to", "window", "limit"],
    )?;
    // `averaging` (default) is the configured averaging window that judges violations (1 h unless changed).
    let window_ms = match q.get("window").map(String::as_str) {
        None | Some("averaging") => s.live.window_ms(),
        Some("hour") => 3_600_000i64,
        Some("day") => 86_400_000,
        Some(w) => {
            return Err(ApiError::bad_request(format!(
                "window={w:?}; expected averaging, hour or day"
            )))
        }
    };
    let station = station_param(&s, &caller.scope, &q)?;
    let parameter = q.get("parameter").cloned();
    let from = time_param(&q, "from")?.map(|t| t.millis());
    let to = time_param(&q, "to")?.map(|t| t.millis());
    let limit = number_param(&q, "limit", 1000, 10_000)?;
    let f = AggregateFilter {
        window_ms,
        station,
        station_globs: globs(&caller.scope),
        parameter,
        from,
        to,
        limit,
    };
    let rows = s.ledger.read(move |r| r.aggregates(&f)).await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|x| {
            json!({ "station": x.station, "parameter": x.parameter, "window_start": x.window_start,
                "mean": x.mean, "min": x.min, "max": x.max,
                "valid": x.valid, "expected": x.expected, "completeness": x.completeness,
                "limit_low": x.limit_low, "limit_high": x.limit_high, "ratio": x.ratio,
                "band": x.band, "revision": x.revision })
        })
        .collect();
    Ok(Json(json!({ "window_ms": window_ms, "aggregates": rows })))
}

/// Compliance events, newest first; `open=true` for the ones still open.
pub async fn events(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Viewer>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    check_known(&q, &["station", "open", "limit"])?;
    let station = station_param(&s, &caller.scope, &q)?;
    let open_only = match q.get("open").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "open={v:?}; expected true or false"
            )))
        }
    };
    let limit = number_param(&q, "limit", 200, 10_000)?;
    let f = EventFilter {
        station,
        station_globs: globs(&caller.scope),
        open_only,
        limit,
    };
    let rows = s.ledger.read(move |r| r.events(&f)).await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|x| {
            json!({ "id": x.id, "station": x.station, "parameter": x.parameter,
                "scope": x.scope, "start": x.start, "end": x.end,
                "last": x.last, "band": x.band, "peak_band": x.peak_band,
                "peak_ratio": x.peak_ratio })
        })
        .collect();
    Ok(Json(json!({ "events": rows })))
}

/// Quarantined inputs, newest first, with the raw payload (text where it is UTF-8, and hex). A scoped caller sees
/// the inputs of its stations only: an input no station could be told from is for callers who see every station.
pub async fn quarantine(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Operator>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    check_known(&q, &["source", "limit"])?;
    let source = q.get("source").cloned();
    if let Some(src) = &source {
        if crate::model::SourceKind::parse(src).is_none() {
            return Err(ApiError::bad_request(format!(
                "source={src:?}; expected one of modbus, mqtt, tt10, sim, api"
            )));
        }
    }
    let limit = number_param(&q, "limit", 100, 1000)? as usize;
    let rows = s.ledger.read(move |r| r.quarantine(limit * 10)).await?;
    let items: Vec<Value> = rows
        .into_iter()
        .filter(|x| source.as_deref().is_none_or(|src| x.source == src))
        .filter(|x| shows(&caller.scope, x.station.as_deref()))
        .take(limit)
        .map(|x| {
            json!({ "id": x.id, "received": x.received.millis(), "source": x.source, "origin": x.origin, "station": x.station,
                "reason": x.reason, "raw_bytes": x.raw.len(), "raw_text": String::from_utf8(x.raw.clone()).ok(),
                "raw_hex": crate::hex::encode(&x.raw[..x.raw.len().min(4096)]) })
        })
        .collect();
    Ok(Json(json!({ "quarantine": items })))
}

/// The audit trail of state-changing calls.
pub async fn audit(
    State(s): State<AppState>,
    _: RequireRole<Auditor>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    check_known(&q, &["limit"])?;
    let limit = number_param(&q, "limit", 200, 10_000)?;
    let rows = s.ledger.read(move |r| r.audit(limit)).await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|x| {
            json!({ "id": x.id, "at": x.at, "who": x.who,
                "role": x.role, "action": x.action, "detail": x.detail })
        })
        .collect();
    Ok(Json(json!({ "audit": rows })))
}

/// A JSON body of one text field, or a 4xx naming the shape expected.
pub(super) fn json_body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
    field: &str,
) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(|e| {
        ApiError::new(
            e.status(),
            format!(
                "expected a JSON body {{\"{field}\": \"…\"}}: {}",
                e.body_text()
            ),
        )
    })
}

/// An operator's free text (a note, an acknowledgement comment): trimmed, 1 to 2,000 characters, no control
/// characters but line breaks and tabs (a NUL or an escape sequence would end up in the ledger, in exports and on
/// terminals reading the log).
pub(super) fn short_text(field: &str, text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 2000 {
        return Err(ApiError::bad_request(format!(
            "{field} must be 1 to 2,000 characters"
        )));
    }
    if let Some((at, c)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ApiError::bad_request(format!(
            "{field} contains the control character U+{:04X} at character {}; only text, line breaks and tabs are allowed",
            c as u32,
            at + 1
        )));
    }
    Ok(text.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    text: String,
}

/// An operator's note in a station's log (e.g. "analyser cleaned"), recorded with who wrote it.
pub async fn station_note(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RequireRole { caller, .. }: RequireRole<Operator>,
    body: Result<Json<NoteBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_station(&caller.scope, &id)?;
    let body = json_body(body, "text")?;
    if s.config().station(&id).is_none() {
        return Err(ApiError::not_found(format!("unknown station {id:?}")));
    }
    let text = short_text("text", &body.text)?;
    let action = format!("POST /api/stations/{id}/note");
    let note_id = s
        .ledger
        .write(move |w| {
            w.add_station_note(&StationNote {
                station: &id,
                who: &caller.name,
                role: caller.role.as_str(),
                action: &action,
                text: &text,
            })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": note_id }))))
}

/// The station log: operators' notes, newest first; filter by station and time written (`from`, `to`); page with
/// `before` (the `next_before` of the previous page).
pub async fn notes(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Viewer>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    check_known(&q, &["station", "from", "to", "before", "limit"])?;
    let limit = number_param(&q, "limit", 200, 10_000)?.max(1);
    let f = NoteFilter {
        station: station_param(&s, &caller.scope, &q)?,
        station_globs: globs(&caller.scope),
        from: time_param(&q, "from")?.map(|t| t.millis()),
        to: time_param(&q, "to")?.map(|t| t.millis()),
        before: match q.get("before") {
            Some(_) => Some(number_param(&q, "before", 0, i64::MAX)?),
            None => None,
        },
        limit,
    };
    let rows = s.ledger.read(move |r| r.station_notes(&f)).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|n| n.id))
        .flatten();
    let tz = s.config().timezone;
    let notes: Vec<Value> = rows
        .iter()
        .map(|n| {
            json!({ "id": n.id, "station": n.station, "at": n.at, "time": Timestamp(n.at).to_local(tz).to_rfc3339(),
                "who": n.who, "text": n.text })
        })
        .collect();
    Ok(Json(json!({ "notes": notes, "next_before": next })))
}
