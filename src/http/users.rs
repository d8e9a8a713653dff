//! The admin page's calls (admin role): `GET /api/users` lists the accounts, `POST /api/users` adds one,
//! `POST /api/users/{name}` changes one (role, stations, disabled, password). Every change is audited with the admin's
//! name; a password never reaches the audit trail or the log.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{self, Admin, Caller, RequireRole};
use super::{ApiError, AppState};
use crate::accounts::{self, Actor, Change, NewAccount};
use crate::config::http::Role;

/// Station patterns as a list (`["BN_KCNTS_*"]`) or one comma-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Stations {
    List(Vec<String>),
    Text(String),
}

impl Stations {
    fn patterns(&self) -> Vec<String> {
        match self {
            Stations::List(l) => l.clone(),
            Stations::Text(t) => vec![t.clone()],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    name: String,
    role: String,
    #[serde(default)]
    stations: Option<Stations>,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    role: Option<String>,
    stations: Option<Stations>,
    disabled: Option<bool>,
    password: Option<String>,
}

/// `GET /api/users`.
pub async fn list(
    State(s): State<AppState>,
    _: RequireRole<Admin>,
) -> Result<Json<Value>, ApiError> {
    let users = s
        .ledger
        .write(|w| accounts::list(w).map_err(auth::account_error))
        .await?;
    Ok(Json(json!({ "users": users })))
}

/// `POST /api/users`: `{"name", "role", "stations", "password"}`.
pub async fn add(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Admin>,
    body: Result<Json<NewUserBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) =
        body.map_err(|e| bad_json(&e, "{\"name\", \"role\", \"stations\", \"password\"}"))?;
    let role = accounts::parse_role(&b.role).map_err(auth::account_error)?;
    let scope = accounts::parse_scope(&b.stations.map(|s| s.patterns()).unwrap_or_default())
        .map_err(auth::account_error)?;
    let name = b.name.trim().to_string();
    s.ledger
        .write(move |w| {
            let a = NewAccount {
                name: &name,
                role,
                scope,
                password: &b.password,
            };
            accounts::add(w, actor(&caller, "POST /api/users"), &a).map_err(auth::account_error)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "added": true }))))
}

/// `POST /api/users/{name}`: any of `{"role", "stations", "disabled", "password"}`. An admin cannot disable their
/// own account or lower its role (another admin must), so the last admin cannot lock everyone out by a slip.
pub async fn change(
    State(s): State<AppState>,
    Path(name): Path<String>,
    RequireRole { caller, .. }: RequireRole<Admin>,
    body: Result<Json<ChangeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) =
        body.map_err(|e| bad_json(&e, "{\"role\", \"stations\", \"disabled\", \"password\"}"))?;
    let role = b
        .role
        .as_deref()
        .map(accounts::parse_role)
        .transpose()
        .map_err(auth::account_error)?;
    let scope = b
        .stations
        .map(|s| accounts::parse_scope(&s.patterns()))
        .transpose()
        .map_err(auth::account_error)?;
    if name == caller.name && (b.disabled == Some(true) || role.is_some_and(|r| r < Role::Admin)) {
        return Err(ApiError::bad_request(
            "an admin cannot disable their own account or lower its role; another admin must",
        ));
    }
    let action = format!("POST /api/users/{name}");
    s.ledger
        .write(move |w| {
            let c = Change {
                role,
                scope,
                disabled: b.disabled,
                password: b.password.as_deref(),
            };
            accounts::change(w, actor(&caller, &action), &name, &c).map_err(auth::account_error)
        })
        .await?;
    Ok(Json(json!({ "changed": true })))
}

fn actor<'a>(c: &'a Caller, action: &'a str) -> Actor<'a> {
    Actor {
        who: &c.name,
        role: c.role.as_str(),
        action,
    }
}

fn bad_json(e: &JsonRejection, shape: &str) -> ApiError {
    ApiError::bad_request(format!("the body must be JSON {shape}: {}", e.body_text()))
}
