//! Who is calling: bearer tokens (machines; compared by their SHA-256 hash, so the config never holds a usable
//! secret), session cookies (people signed in on the dashboard; see `crate::accounts`) and roles. CSRF protection of
//! cookie-authenticated calls lives here too, once for every handler.
//!
//! A handler states the role it needs in its signature with the [`RequireRole`] extractor
//! (`RequireRole<Operator>`), so the check cannot be forgotten: the request is refused (401/403) before the
//! handler runs.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AppState;
use crate::accounts::session::{self, SessionId};
use crate::accounts::{self, Identity};
use crate::config::http::Role;
use crate::config::scope::StationScope;
use crate::hex::encode as hex;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The stations the caller may see.
    pub scope: StationScope,
}

/// A role a handler can require, as a type (`RequireRole<Auditor>`).
pub trait RoleLevel: Send + Sync + 'static {
    const ROLE: Role;
}

/// Reads the live view and the ledger.
pub struct Viewer;
/// Also writes notes, acknowledges alerts and reads the quarantine.
pub struct Operator;
/// Also reads the audit trail and exports.
pub struct Auditor;
/// Everything.
pub struct Admin;

impl RoleLevel for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl RoleLevel for Operator {
    const ROLE: Role = Role::Operator;
}
impl RoleLevel for Auditor {
    const ROLE: Role = Role::Auditor;
}
impl RoleLevel for Admin {
    const ROLE: Role = Role::Admin;
}

/// A caller allowed at least `R`'s role; a request without one is answered 401 (no or unknown token) or 403 (too
/// low a role, or a cookie-authenticated state-changing call without its CSRF token) before the handler runs. Only
/// this extractor makes one.
pub struct RequireRole<R: RoleLevel> {
    pub caller: Caller,
    role: PhantomData<R>,
}

impl<R: RoleLevel> FromRequestParts<AppState> for RequireRole<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let (caller, via) = authenticate(s, parts).await?;
        require_csrf(parts, &via)?;
        Ok(Self {
            caller: allowed(caller, R::ROLE)?,
            role: PhantomData,
        })
    }
}

/// How a request was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A bearer token (header or `?access_token=`): a machine, no ambient credential.
    Token,
    /// The session cookie a browser sends by itself: state-changing calls need the session's CSRF token too.
    Session(SessionId),
    /// Nothing (`anonymous_read`).
    Anonymous,
}

/// A new random token and its SHA-256 (hex), for `quantrac token new`. The bytes come from the operating system's
/// CSPRNG (`/dev/urandom`), not from a seeded generator.
pub fn new_token() -> std::io::Result<(String, String)> {
    let bytes: [u8; 32] = accounts::random_bytes().map_err(std::io::Error::other)?;
    let token = format!("qt_{}", hex(&bytes));
    let hash = hex(&Sha256::digest(token.as_bytes()));
    Ok((token, hash))
}

/// The caller of a request, in this order: `Authorization: Bearer <token>`, `?access_token=` (machines whose
/// event-stream client cannot send headers; the dashboard never puts a token in a URL), the session cookie, and
/// with none of them the anonymous viewer when `anonymous_read` allows it. A session that has ended counts as no
/// cookie.
pub async fn authenticate(s: &AppState, parts: &Parts) -> Result<(Caller, Via), ApiError> {
    let config = s.config();
    let http = &config.http;
    if let Some(token) = bearer_token(parts) {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        return accounts::find_token(&http.tokens, &digest)
            .map(|t| {
                let caller = Caller {
                    name: t.name.clone(),
                    role: t.role,
                    scope: t.scope.clone(),
                };
                (caller, Via::Token)
            })
            .ok_or_else(|| ApiError::unauthorized("the token is not valid"));
    }
    if let Some(id) = session_cookie(parts) {
        if let Some(who) = resume(s, &id).await? {
            let caller = Caller {
                name: who.name,
                role: who.role,
                scope: who.scope,
            };
            return Ok((caller, Via::Session(id)));
        }
    }
    if http.anonymous_read {
        return Ok((anonymous(), Via::Anonymous));
    }
    Err(ApiError::unauthorized(
        "sign in on the dashboard, or send a bearer token (Authorization: Bearer <token>)",
    ))
}

/// Who the session `id` stands for now (`None`: it has ended).
pub async fn resume(s: &AppState, id: &SessionId) -> Result<Option<Identity>, ApiError> {
    let config = s.config();
    let id = id.clone();
    s.ledger
        .write(move |w| {
            accounts::resume(w, &config.http.accounts, &config.http.tokens, &id)
                .map_err(account_error)
        })
        .await
}

/// An accounts error as an answer: a person's mistake is a 400 with its sentence, the ledger's a 500.
pub fn account_error(e: accounts::AccountsError) -> ApiError {
    use accounts::AccountsError as E;
    match e {
        E::Ledger(e) => e.into(),
        E::NoSuchUser(_) => ApiError::not_found(e.to_string()),
        E::Exists(_) => ApiError::new(axum::http::StatusCode::CONFLICT, e.to_string()),
        E::Hash(_) | E::Random(_) => {
            tracing::error!(error = %e, "Account operation failed.");
            ApiError::internal("the account could not be changed; see the daemon's log")
        }
        E::Name(_) | E::Role(_) | E::Scope(_) | E::Password(_) => {
            ApiError::bad_request(e.to_string())
        }
    }
}

fn anonymous() -> Caller {
    Caller {
        name: "anonymous".into(),
        role: Role::Viewer,
        scope: StationScope::all(),
    }
}

/// The token of the `Authorization` header, else of `?access_token=`.
fn bearer_token(parts: &Parts) -> Option<&str> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    header.or_else(|| {
        parts
            .uri
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")))
    })
}

/// The session id of the request's cookie, if it carries one.
pub fn session_cookie(parts: &Parts) -> Option<SessionId> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header)
}

/// A state-changing call (anything but GET, HEAD, OPTIONS) authenticated by the session cookie must carry the
/// session's CSRF token in `X-CSRF-Token`: another site can make the browser send the cookie, not the header. Bearer
/// tokens carry no ambient credential and need none.
pub fn require_csrf(parts: &Parts, via: &Via) -> Result<(), ApiError> {
    let Via::Session(id) = via else {
        return Ok(());
    };
    if parts.method.is_safe() {
        return Ok(());
    }
    let given = parts
        .headers
        .get(session::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if id.csrf_matches(given) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "this call changes data and came with the session cookie but without the session's X-CSRF-Token header; \
             reload the dashboard (it sends the header), or call with a bearer token",
        ))
    }
}

/// The token of an `Authorization` value: the scheme is case-insensitive (RFC 9110 §11.1), so `bearer x` and
/// `BEARER x` count like `Bearer x`.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `caller`, if allowed at least `role`.
fn allowed(caller: Caller, role: Role) -> Result<Caller, ApiError> {
    if caller.role >= role {
        Ok(caller)
    } else {
        Err(ApiError::forbidden(format!(
            "this needs the {} role; {} has {}",
            role.as_str(),
            caller.name,
            caller.role.as_str()
        )))
    }
}

/// The caller, if allowed at least `role`. [`RequireRole`] runs it once per request; a long-lived response (the
/// SSE stream) runs it again to end when a reload revokes the token or the session ends.
pub async fn check(s: &AppState, parts: &Parts, role: Role) -> Result<Caller, ApiError> {
    let (caller, _) = authenticate(s, parts).await?;
    allowed(caller, role)
}

/// Whether the request still stands for `caller` (same name, role and scope): a stream opened by a session ends when
/// the session does (logout, a disabled account, a changed role or scope), even where anonymous reading is allowed.
pub async fn still(s: &AppState, parts: &Parts, caller: &Caller) -> bool {
    matches!(authenticate(s, parts).await, Ok((now, _)) if &now == caller)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER  abc ", "BeArEr abc"] {
            assert_eq!(super::bearer(v), Some("abc"), "{v:?}");
        }
        for v in ["Basic abc", "Bearer", "Bearer ", "Bearerabc"] {
            assert_eq!(super::bearer(v), None, "{v:?}");
        }
    }
}
