//! `GET /report?station&month` for auditors: the official monthly report of one plant as a printable HTML page
//! (`month` = `yyyy-MM`, default the current local month). The export the report cites is made in a private
//! temporary folder and removed; the page tells how to download the identical export
//! (`/api/export?…&format=all&exported_at=…`) and check it against the printed MANIFEST SHA-256.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};

use super::auth::{Auditor, RequireRole};
use super::{ApiError, AppState};
use crate::export::{report, ExportError};
use crate::model::Timestamp;

/// The report is one self-contained page with its own inline style and no script: its policy allows exactly that.
const REPORT_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

pub async fn report(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Auditor>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    const ALLOWED: [&str; 2] = ["station", "month"];
    if let Some(k) = q
        .keys()
        .find(|k| !ALLOWED.contains(&k.as_str()) && k.as_str() != "access_token")
    {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {k:?}; expected {}",
            ALLOWED.join(", ")
        )));
    }
    let config = s.config();
    let station = q
        .get("station")
        .ok_or_else(|| ApiError::bad_request("station is required"))?
        .clone();
    super::scope::require_station(&caller.scope, &station)?;
    if config.station(&station).is_none() && s.live.station(&station).is_none() {
        return Err(ApiError::bad_request(format!(
            "unknown station {station:?}"
        )));
    }
    let now = Timestamp::now();
    let month = q
        .get("month")
        .cloned()
        .unwrap_or_else(|| now.to_local(config.timezone).format("%Y-%m").to_string());
    tracing::info!(who = %caller.name, %station, %month, "Monthly report requested.");
    let html = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        // A private (0700) folder with an unpredictable name, removed when dropped.
        let temp = tempfile::Builder::new()
            .prefix("quantrac-report-")
            .tempdir()
            .map_err(|e| {
                tracing::warn!(error = %e, "Report stopped: cannot create a temporary folder.");
                ApiError::internal("cannot create a temporary folder; see the daemon's log")
            })?;
        let request = report::Request {
            station: &station,
            month: &month,
            now,
        };
        let label = format!("quantrac-export-{station}-{month}");
        let data = temp.path().join(&label);
        report::make(&config, request, &data, &label, None)
            .map(|m| m.html)
            .map_err(|e| match e {
                ExportError::Query(m) => ApiError::bad_request(m),
                e => {
                    tracing::warn!(error = %e, "Report failed.");
                    ApiError::internal("the report could not be made; see the daemon's log")
                }
            })
    })
    .await
    .map_err(|_| ApiError::internal("the report task stopped"))??;
    let mut resp = Html(html).into_response();
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(REPORT_POLICY),
    );
    Ok(resp)
}
