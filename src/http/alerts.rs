//! The alarm list of every plant (`GET /api/alerts`), one alert's history (`GET /api/alerts/{id}/history`) and
//! acknowledgement (`POST /api/alerts/{id}/ack`). Parameters are checked here; a bad one answers 400 with what was
//! expected.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{check_known, json_body, number_param, short_text, station_param, time_param};
use super::auth::{Operator, RequireRole, Viewer};
use super::scope::{globs, require_item};
use super::{ApiError, AppState};
use crate::config::alert::{AlertKind, Severity};
use crate::config::scope::StationScope;
use crate::ledger::alert_list::{AlertFilter, AlertHistory};

/// What `state=` takes.
const STATES: [&str; 5] = ["raised", "acknowledged", "cleared", "withdrawn", "open"];

/// One of `allowed`, or a 400 naming them.
fn one_of(
    q: &HashMap<String, String>,
    key: &str,
    ok: impl Fn(&str) -> bool,
    expected: &str,
) -> Result<Option<String>, ApiError> {
    match q.get(key) {
        Some(v) if !ok(v) => Err(ApiError::bad_request(format!(
            "{key}={v:?}; expected {expected}"
        ))),
        other => Ok(other.cloned()),
    }
}

/// The list's filter from the query string (paging aside).
fn alert_filter(
    s: &AppState,
    scope: &StationScope,
    q: &HashMap<String, String>,
) -> Result<AlertFilter, ApiError> {
    let parameter = match q.get("parameter") {
        Some(p) if p.trim().is_empty() || p.len() > 100 => {
            return Err(ApiError::bad_request(format!(
                "parameter={p:?}; expected a parameter symbol such as COD (1 to 100 characters)"
            )))
        }
        other => other.cloned(),
    };
    let f = AlertFilter {
        station: station_param(s, scope, q)?,
        station_globs: globs(scope),
        subject: parameter,
        kind: one_of(
            q,
            "kind",
            |k| AlertKind::parse(k).is_some(),
            &AlertKind::names(),
        )?,
        severity: one_of(
            q,
            "severity",
            |v| Severity::parse(v).is_some(),
            "technical, warning or violation",
        )?,
        state: one_of(
            q,
            "state",
            |v| STATES.contains(&v),
            "raised, acknowledged, cleared, withdrawn or open",
        )?,
        from: time_param(q, "from")?.map(|t| t.millis()),
        to: time_param(q, "to")?.map(|t| t.millis()),
        before: None,
        limit: 0,
    };
    if let (Some(a), Some(b)) = (f.from, f.to) {
        if a >= b {
            return Err(ApiError::bad_request("from must be before to"));
        }
    }
    Ok(f)
}

/// Alerts of every plant in the caller's scope (a scoped caller does not see alerts of no station), newest first; filter by station, parameter, kind, severity, state (`open` for raised or
/// acknowledged) and the time they were active (`from`, `to`); `total` is how many match; page with `before` (the
/// `next_before` of the previous page).
pub async fn alerts(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Viewer>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    check_known(
        &q,
        &[
            "station",
            "parameter",
            "kind",
            "severity",
            "state",
            "from",
            "to",
            "before",
            "limit",
        ],
    )?;
    let mut f = alert_filter(&s, &caller.scope, &q)?;
    f.before = match q.get("before") {
        Some(_) => Some(number_param(&q, "before", 0, i64::MAX)?),
        None => None,
    };
    f.limit = number_param(&q, "limit", 100, 1000)?.max(1);
    let limit = f.limit;
    let (rows, total) = s
        .ledger
        .read(move |r| Ok::<_, crate::ledger::LedgerError>((r.alerts(&f)?, r.alert_count(&f)?)))
        .await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(crate::alert::store::alert_with_deliveries_json)
        .map(redact_deliveries)
        .collect();
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().and_then(|a| a["id"].as_i64()))
        .flatten();
    Ok(Json(
        json!({ "alerts": rows, "total": total, "next_before": next }),
    ))
}

/// A delivery's `last_error` with URLs cut to scheme and host: a channel's error may quote its URL and the URL's
/// credentials, and viewers read this (rows written before the channels redacted their errors included).
fn redact_deliveries(mut alert: Value) -> Value {
    if let Some(list) = alert["deliveries"].as_array_mut() {
        for d in list {
            redact_field(d, "last_error");
            if let Some(attempts) = d["attempts_made"].as_array_mut() {
                attempts.iter_mut().for_each(|a| redact_field(a, "error"));
            }
        }
    }
    alert
}

fn redact_field(v: &mut Value, key: &str) {
    if let Some(e) = v[key].as_str() {
        v[key] = Value::String(crate::redact::url(e));
    }
}

/// One alert with every notification and delivery attempt, and the re-derivations that rewrote, added or withdrew
/// it (late observations), oldest first.
pub async fn history(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RequireRole { caller, .. }: RequireRole<Viewer>,
) -> Result<Json<Value>, ApiError> {
    let id = alert_id(&id)?;
    let Some(h) = s.ledger.read(move |r| r.alert_history(id)).await? else {
        return Err(ApiError::not_found(format!("no alert {id}")));
    };
    require_item(&caller.scope, station_of(&h.alert))?;
    Ok(Json(redact_deliveries(history_json(&h))))
}

fn history_json(h: &AlertHistory) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let mut v = crate::alert::store::alert_json(&h.alert);
    v["deliveries"] = h
        .deliveries
        .iter()
        .map(|d| {
            let x = &d.delivery;
            json!({ "id": x.id, "channel": x.channel, "change": x.change, "status": x.status,
                "attempts": x.attempts, "created": x.created, "delivered": x.delivered, "last_error": x.last_error,
                "attempts_made": d.attempts.iter().map(|a| json!({ "at": a.at, "duration_ms": a.duration_ms,
                    "ok": a.ok, "error": a.error })).collect::<Vec<_>>() })
        })
        .collect();
    v["revisions"] = h
        .revisions
        .iter()
        .map(|r| {
            json!({ "id": r.id, "changed": r.changed, "reason": r.reason, "span_after": r.span_after,
                "old_alerts": parse(&r.old_alerts), "new_alerts": parse(&r.new_alerts) })
        })
        .collect();
    v
}

fn alert_id(id: &str) -> Result<i64, ApiError> {
    id.parse().ok().filter(|n: &i64| *n > 0).ok_or_else(|| {
        ApiError::bad_request(format!("{id:?} is not an alert id (a whole number from 1)"))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    comment: String,
}

/// Acknowledge a raised alert with a comment (operator, for an alert in the caller's scope): no more
/// re-notifications; recorded in the audit table.
pub async fn ack(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RequireRole { caller, .. }: RequireRole<Operator>,
    body: Result<Json<AckBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = alert_id(&id)?;
    let body = json_body(body, "comment")?;
    let comment = short_text("comment", &body.comment)?;
    alert_in_scope(&s, &caller.scope, id).await?;
    let Some(alerts) = &s.alerts else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the alert engine is disabled (alert.enabled = false)",
        ));
    };
    use crate::alert::AckError;
    match alerts
        .acknowledge(id, &caller.name, caller.role.as_str(), &comment)
        .await
    {
        Ok(a) => Ok(Json(crate::alert::store::alert_json(&a))),
        Err(e @ AckError::NotFound(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ AckError::NotRaised { .. }) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(AckError::Stopped) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the alert engine is not running",
        )),
        Err(AckError::Ledger(e)) => Err(ApiError::from(e)),
    }
}

/// 403 when alert `id` is of a station outside `scope` (or of none, for a scoped caller); a missing alert is left
/// to the acknowledgement's own 404. Every station: no read.
async fn alert_in_scope(s: &AppState, scope: &StationScope, id: i64) -> Result<(), ApiError> {
    if scope.is_all() {
        return Ok(());
    }
    match s.ledger.read(move |r| r.alert_history(id)).await? {
        Some(h) => require_item(scope, station_of(&h.alert)),
        None => Ok(()),
    }
}

/// The alert's station; `None` for a daemon-wide alert (stored with an empty station).
fn station_of(a: &crate::ledger::alerts::StoredAlert) -> Option<&str> {
    Some(a.station.as_str()).filter(|s| !s.is_empty())
}
