//! Signing in and out of the dashboard: `POST /api/login` (name and password, or an access token) sets the session
//! cookie (`HttpOnly; SameSite=Strict; Path=/`, `Secure` behind TLS); `POST /api/logout` ends the session;
//! `GET /api/session` says who the caller is, with the CSRF token the page sends on state-changing calls.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Caller, Via};
use super::{ApiError, AppState};
use crate::accounts::throttle::Throttled;
use crate::accounts::{self, session, Refused};

/// The body of `POST /api/login`: `{"name", "password"}` or `{"token"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    name: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

/// `POST /api/login`. A refusal is 401 with one sentence whatever the reason (unknown name, wrong password, locked
/// or disabled account); the audit trail records which.
///
/// Throttled first (see `accounts::throttle`): 429 with `Retry-After` once the client's address has had too many
/// refusals, 503 when too many sign-ins wait for the one password check that runs at a time.
pub async fn login(
    State(s): State<AppState>,
    extensions: Extensions,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"name\": …, \"password\": …}}: {}",
            e.body_text()
        ))
    })?;
    let config = s.config();
    let per_minute = config.http.accounts.refused_sign_ins_per_minute;
    // The listener gives each request its peer; a router served otherwise (tests) counts as one client.
    let client = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |c| c.0.ip());
    let gate = s.sign_in.clone();
    // Given back when dropped unless refused below: only refusals use the address's allowance up.
    let attempt = gate
        .attempt(client, per_minute, Instant::now())
        .map_err(throttled)?;
    // A password check waits for its turn; a token is only hashed (SHA-256).
    let _turn = match body.token {
        None => Some(gate.check_turn().await.map_err(throttled)?),
        Some(_) => None,
    };
    let result = s
        .ledger
        .write(move |w| {
            let policy = &config.http.accounts;
            let opened = match (body.token, body.name, body.password) {
                (Some(token), None, None) => {
                    accounts::login_with_token(w, policy, &config.http.tokens, &token)
                }
                (None, Some(name), Some(password)) => accounts::login(w, policy, &name, &password),
                _ => {
                    return Err(ApiError::bad_request(
                        "give \"name\" and \"password\", or \"token\" alone",
                    ))
                }
            };
            opened.map_err(refused)
        })
        .await;
    if matches!(&result, Err(e) if e.status == StatusCode::UNAUTHORIZED) {
        attempt.refused();
    }
    let opened = result?;
    let secure = s.config().http.tls.is_some();
    let csrf = opened.id.csrf();
    let cookie = session::set_cookie(&opened.id, secure);
    let who = opened.identity;
    let mut resp = Json(json!({
        "name": who.name, "role": who.role.as_str(), "stations": who.scope.patterns(), "csrf": csrf,
        "signed_in": true,
    }))
    .into_response();
    set_cookie(resp.headers_mut(), &cookie);
    Ok(resp)
}

fn throttled(t: Throttled) -> ApiError {
    match t {
        Throttled::TooMany { retry_after } => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, t.to_string()).retry_after(retry_after)
        }
        Throttled::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, t.to_string())
            .retry_after(Duration::from_secs(5)),
    }
}

fn refused(r: Refused) -> ApiError {
    match r {
        Refused::Credentials | Refused::Token => ApiError::unauthorized(r.to_string()),
        Refused::Failed(e) => auth::account_error(e),
    }
}

/// `POST /api/logout`: ends the caller's session (CSRF token required) and clears the cookie. Without a live
/// session it only clears the cookie.
pub async fn logout(State(s): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    if let Some(id) = auth::session_cookie(&parts) {
        if let Some(who) = auth::resume(&s, &id).await? {
            let via = Via::Session(id.clone());
            auth::require_csrf(&parts, &via)?;
            s.ledger
                .write(move |w| accounts::logout(w, &id, &who).map_err(auth::account_error))
                .await?;
        }
    }
    let secure = s.config().http.tls.is_some();
    let mut resp = Json(json!({ "signed_in": false })).into_response();
    set_cookie(resp.headers_mut(), &session::clear_cookie(secure));
    Ok(resp)
}

/// `GET /api/session`: who the caller is (name, role, stations), whether signed in, the session's CSRF token, and
/// whether anonymous reading is allowed (the page then shows the plants before anyone signs in). Never 401.
pub async fn whoami(
    State(s): State<AppState>,
    parts: Parts,
) -> Result<Json<serde_json::Value>, ApiError> {
    let anonymous_read = s.config().http.anonymous_read;
    let found = match auth::authenticate(&s, &parts).await {
        Ok(found) => Some(found),
        Err(e) if e.status == axum::http::StatusCode::UNAUTHORIZED => None,
        Err(e) => return Err(e),
    };
    let body = match found {
        Some((c, via)) => {
            let (signed_in, csrf) = match &via {
                Via::Session(id) => (true, Some(id.csrf())),
                Via::Token => (true, None),
                Via::Anonymous => (false, None),
            };
            caller_json(&c, signed_in, csrf, anonymous_read)
        }
        None => json!({ "signed_in": false, "anonymous_read": anonymous_read }),
    };
    Ok(Json(body))
}

fn caller_json(
    c: &Caller,
    signed_in: bool,
    csrf: Option<String>,
    anonymous_read: bool,
) -> serde_json::Value {
    json!({ "name": c.name, "role": c.role.as_str(), "stations": c.scope.patterns(), "signed_in": signed_in,
        "csrf": csrf, "anonymous_read": anonymous_read })
}

fn set_cookie(headers: &mut HeaderMap, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        headers.insert(header::SET_COOKIE, v);
    }
    // Answers that set or clear a session are never cached.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
