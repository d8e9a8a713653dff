//! Bearer tokens and roles. Tokens are compared by their SHA-256 hash: the config never holds a usable secret.
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
use crate::config::http::{Http, Role};
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
/// low a role) before the handler runs. Only this extractor makes one.
pub struct RequireRole<R: RoleLevel> {
    pub caller: Caller,
    role: PhantomData<R>,
}

impl<R: RoleLevel> FromRequestParts<AppState> for RequireRole<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let caller = check(&s.config().http, parts, R::ROLE)?;
        Ok(Self {
            caller,
            role: PhantomData,
        })
    }
}

/// A new random token and its SHA-256 (hex), for `quantrac token new`. The bytes come from the operating system's
/// CSPRNG (`/dev/urandom`), not from a seeded generator.
pub fn new_token() -> std::io::Result<(String, String)> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let token = format!("qt_{}", hex(&bytes));
    let hash = hex(&Sha256::digest(token.as_bytes()));
    Ok((token, hash))
}

/// The caller of a request: `Authorization: Bearer <token>` or `?access_token=` (browsers' EventSource cannot send
/// headers). No token: anonymous viewer when allowed.
pub fn identify(http: &Http, parts: &Parts) -> Result<Caller, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let query = parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")));
    match header.or(query) {
        Some(token) => {
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            // Compare every configured hash fully (no early exit on the first differing byte).
            let found = http.tokens.iter().find(|t| {
                t.sha256
                    .iter()
                    .zip(digest.iter())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
            });
            found
                .map(|t| Caller {
                    name: t.name.clone(),
                    role: t.role,
                    scope: t.scope.clone(),
                })
                .ok_or_else(|| ApiError::unauthorized("the token is not valid"))
        }
        None if http.anonymous_read => Ok(Caller {
            name: "anonymous".into(),
            role: Role::Viewer,
            scope: StationScope::all(),
        }),
        None => Err(ApiError::unauthorized(
            "a bearer token is required (Authorization: Bearer <token>)",
        )),
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

/// The caller, if allowed at least `role`. [`RequireRole`] runs it once per request; a long-lived response (the
/// SSE stream) runs it again to end when a reload revokes the token.
pub fn check(http: &Http, parts: &Parts, role: Role) -> Result<Caller, ApiError> {
    let caller = identify(http, parts)?;
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
