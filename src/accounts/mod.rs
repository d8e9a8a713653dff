//! Dashboard accounts: people sign in with a name and a password (argon2id) and get a session; each account has a
//! role and a station scope. The same operations serve the admin API and `quantrac user …`, each audited with who
//! made it (never the password). Machines keep using bearer tokens (`[[http.token]]`).
//!
//! Owns the rules (names, password policy, lockout, session expiry); the rows live in `ledger::users`. No HTTP here.

pub mod password;
pub mod session;
pub mod throttle;

use crate::config::http::{Accounts, Role, Token};
use crate::config::scope::StationScope;
use crate::ledger::audit::AuditEntry;
use crate::ledger::users::{NewUser, UserChange, UserRow};
use crate::ledger::{LedgerError, SideWriter};
use session::SessionId;

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("user name {0:?} is not allowed; use 1 to 64 letters, digits, '.', '_', '-' or '@'")]
    Name(String),
    #[error("unknown role {0:?}; expected one of viewer, operator, auditor, admin")]
    Role(String),
    #[error("{0}")]
    Scope(String),
    #[error("{0}")]
    Password(String),
    #[error("a user named {0:?} exists already")]
    Exists(String),
    #[error("there is no user named {0:?}")]
    NoSuchUser(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("cannot read random bytes from the operating system")]
    Random(#[source] std::io::Error),
}

/// `N` random bytes from the operating system's CSPRNG (`/dev/urandom`).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AccountsError> {
    use std::io::Read;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(AccountsError::Random)?;
    Ok(bytes)
}

/// Who a session or an account stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    pub scope: StationScope,
}

/// An account as listed (admin page, `quantrac user list`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Account {
    pub name: String,
    pub role: &'static str,
    pub stations: Vec<String>,
    pub disabled: bool,
    /// Unix ms; set while the account is locked after failed sign-ins.
    pub locked_until: Option<i64>,
    pub created: i64,
    pub changed: i64,
}

/// Who makes a change, for its audit row: an admin's name and role and the call (`POST /api/users`), or the
/// operating-system user running `quantrac user add`.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub who: &'a str,
    pub role: &'a str,
    pub action: &'a str,
}

/// A checked user name.
pub fn check_name(name: &str) -> Result<&str, AccountsError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    ok.then_some(name)
        .ok_or_else(|| AccountsError::Name(name.chars().take(80).collect()))
}

/// A role from its name.
pub fn parse_role(role: &str) -> Result<Role, AccountsError> {
    Role::parse(role).ok_or_else(|| AccountsError::Role(role.to_string()))
}

/// A station scope from patterns as given (`BN_KCNTS_*`, comma- or list-separated; empty or `*`: every station).
pub fn parse_scope<S: AsRef<str>>(patterns: &[S]) -> Result<StationScope, AccountsError> {
    let split: Vec<&str> = patterns
        .iter()
        .flat_map(|p| p.as_ref().split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    StationScope::parse(&split).map_err(AccountsError::Scope)
}

/// A new account.
#[derive(Debug)]
pub struct NewAccount<'a> {
    pub name: &'a str,
    pub role: Role,
    pub scope: StationScope,
    pub password: &'a str,
}

/// Store a new account (the password hashed), audited.
pub fn add(w: &mut SideWriter, by: Actor<'_>, a: &NewAccount<'_>) -> Result<(), AccountsError> {
    check_name(a.name)?;
    password::check_policy(a.password)?;
    let hash = password::hash(a.password)?;
    let at = now();
    let detail = format!(
        "added user {} with role {} and stations {}",
        a.name,
        a.role.as_str(),
        a.scope
    );
    let stations = a.scope.to_string();
    let added = w.add_user(
        &NewUser {
            name: a.name,
            role: a.role.as_str(),
            stations: &stations,
            password: &hash,
            at,
        },
        &audit(by, at, &detail),
    )?;
    if added {
        tracing::info!(user = a.name, by = by.who, "User added.");
        Ok(())
    } else {
        Err(AccountsError::Exists(a.name.to_string()))
    }
}

/// A change to an account; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct Change<'a> {
    pub role: Option<Role>,
    pub scope: Option<StationScope>,
    pub disabled: Option<bool>,
    pub password: Option<&'a str>,
}

/// Change an account, audited (the audit row names what changed, never the password). Disabling an account or
/// setting its password ends its sessions.
pub fn change(
    w: &mut SideWriter,
    by: Actor<'_>,
    name: &str,
    c: &Change<'_>,
) -> Result<(), AccountsError> {
    let hash = match c.password {
        Some(p) => {
            password::check_policy(p)?;
            Some(password::hash(p)?)
        }
        None => None,
    };
    let stations = c.scope.as_ref().map(ToString::to_string);
    let mut what = Vec::new();
    if let Some(r) = c.role {
        what.push(format!("role {}", r.as_str()));
    }
    if let Some(s) = &stations {
        what.push(format!("stations {s}"));
    }
    match c.disabled {
        Some(true) => what.push("disabled (sessions ended)".to_string()),
        Some(false) => what.push("enabled".to_string()),
        None => {}
    }
    if hash.is_some() {
        what.push("password reset (sessions ended)".to_string());
    }
    if what.is_empty() {
        return Ok(());
    }
    let at = now();
    let detail = format!("user {name}: {}", what.join("; "));
    let change = UserChange {
        role: c.role.map(Role::as_str),
        stations: stations.as_deref(),
        disabled: c.disabled,
        password: hash.as_deref(),
    };
    if w.change_user(name, &change, &audit(by, at, &detail))? {
        tracing::info!(user = name, by = by.who, change = %what.join("; "), "User changed.");
        Ok(())
    } else {
        Err(AccountsError::NoSuchUser(name.to_string()))
    }
}

/// Every account, by name.
pub fn list(w: &SideWriter) -> Result<Vec<Account>, AccountsError> {
    Ok(w.users()?.into_iter().map(account).collect())
}

fn account(u: UserRow) -> Account {
    let locked_until = u.locked_until.filter(|t| *t > now());
    Account {
        role: Role::parse(&u.role).map_or("viewer", Role::as_str),
        stations: u.stations.split(',').map(str::to_string).collect(),
        name: u.name,
        disabled: u.disabled,
        locked_until,
        created: u.created,
        changed: u.changed,
    }
}

/// A session just opened: the id for the cookie and who it stands for.
#[derive(Debug)]
pub struct Opened {
    pub id: SessionId,
    pub identity: Identity,
}

/// Why a sign-in was refused. The answer to the browser is the same for every reason (it must not tell whether an
/// account exists); the audit row says which.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the name or password is not right (an account is locked for a while after repeated failures)")]
    Credentials,
    #[error("the access token is not valid")]
    Token,
    #[error(transparent)]
    Failed(#[from] AccountsError),
}

impl From<LedgerError> for Refused {
    fn from(e: LedgerError) -> Self {
        Refused::Failed(e.into())
    }
}

/// The audit action of sign-ins.
const LOGIN: &str = "POST /api/login";

/// Sign in with a name and a password: a session, or a refusal (counted against the account, which is locked after
/// `max_failed_logins` in a row). Every refusal and every lockout is audited.
pub fn login(
    w: &mut SideWriter,
    policy: &Accounts,
    name: &str,
    password: &str,
) -> Result<Opened, Refused> {
    let name: String = name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let found = w.user_with_password(&name)?;
    let matches = match &found {
        Some((_, phc)) => password::verify(password, phc),
        None => {
            password::verify_nothing(password);
            false
        }
    };
    let at = now();
    let refuse = |w: &mut SideWriter, role: &str, why: &str| -> Result<Opened, Refused> {
        w.audit(&AuditEntry {
            at,
            who: &name,
            role,
            action: LOGIN,
            detail: &format!("sign-in refused: {why}"),
        })?;
        Err(Refused::Credentials)
    };
    let Some((user, _)) = found else {
        return refuse(w, "", "no such user");
    };
    if user.disabled {
        return refuse(w, &user.role, "the account is disabled");
    }
    if user.locked_until.is_some_and(|t| t > at) {
        return refuse(w, &user.role, "the account is locked");
    }
    if !matches {
        return Err(failed(w, policy, &user, at));
    }
    let identity = identity_of(&user)?;
    let id = SessionId::new()?;
    w.open_session(
        &id.sha256(),
        &user.name,
        None,
        expired_before(policy, at),
        &AuditEntry {
            at,
            who: &user.name,
            role: &user.role,
            action: LOGIN,
            detail: "signed in",
        },
    )?;
    tracing::info!(user = %user.name, "User signed in.");
    Ok(Opened { id, identity })
}

/// Count a wrong password; lock the account at the limit. Both are audited.
fn failed(w: &mut SideWriter, policy: &Accounts, user: &UserRow, at: i64) -> Refused {
    let max = i64::from(policy.max_failed_logins);
    let detail = format!(
        "sign-in refused: wrong password ({} of {max})",
        user.failed + 1
    );
    let entry = AuditEntry {
        at,
        who: &user.name,
        role: &user.role,
        action: LOGIN,
        detail: &detail,
    };
    let lockout_ms = policy.lockout.as_millis() as i64;
    let outcome = match w.record_failed_login(&user.name, max, lockout_ms, &entry) {
        Ok(o) => o,
        Err(e) => return e.into(),
    };
    if outcome.locked_until.is_some() {
        let detail = format!(
            "account locked for {} after {max} failed sign-ins",
            humantime::format_duration(policy.lockout)
        );
        tracing::warn!(user = %user.name, "Account locked after repeated failed sign-ins.");
        if let Err(e) = w.audit(&AuditEntry {
            detail: &detail,
            ..entry
        }) {
            return e.into();
        }
    }
    Refused::Credentials
}

/// Sign in with an API token (a kiosk screen, or an operator pasting the token the dashboard asks for): a session
/// that lasts while the token is in the config.
pub fn login_with_token(
    w: &mut SideWriter,
    policy: &Accounts,
    tokens: &[Token],
    token: &str,
) -> Result<Opened, Refused> {
    use sha2::Digest as _;
    let digest: [u8; 32] = sha2::Sha256::digest(token.trim().as_bytes()).into();
    let at = now();
    let Some(t) = find_token(tokens, &digest) else {
        w.audit(&AuditEntry {
            at,
            who: "unknown token",
            role: "",
            action: LOGIN,
            detail: "sign-in refused: the access token is not valid",
        })?;
        return Err(Refused::Token);
    };
    let id = SessionId::new()?;
    w.open_session(
        &id.sha256(),
        &t.name,
        Some(&digest),
        expired_before(policy, at),
        &AuditEntry {
            at,
            who: &t.name,
            role: t.role.as_str(),
            action: LOGIN,
            detail: "signed in with an access token",
        },
    )?;
    Ok(Opened {
        id,
        identity: Identity {
            name: t.name.clone(),
            role: t.role,
            scope: t.scope.clone(),
        },
    })
}

/// The configured token with SHA-256 `digest`; every hash is compared fully (no early exit on a differing byte).
pub fn find_token<'a>(tokens: &'a [Token], digest: &[u8; 32]) -> Option<&'a Token> {
    tokens.iter().find(|t| {
        t.sha256
            .iter()
            .zip(digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    })
}

/// How often a session's last use is written (a request in between counts, but is not written).
const TOUCH_EVERY_MS: i64 = 30_000;

/// Who the session `id` stands for now, or `None` when it has ended (expired, logged out, its account disabled,
/// its token removed from the config). An expired session is removed.
pub fn resume(
    w: &mut SideWriter,
    policy: &Accounts,
    tokens: &[Token],
    id: &SessionId,
) -> Result<Option<Identity>, AccountsError> {
    let key = id.sha256();
    let Some(s) = w.session(&key)? else {
        return Ok(None);
    };
    let at = now();
    let (idle, created) = expired_before(policy, at);
    let identity = if s.last_seen < idle || s.created < created {
        None
    } else {
        match (&s.token_sha256, &s.account) {
            (Some(t), _) => find_token(tokens, t).map(|t| Identity {
                name: t.name.clone(),
                role: t.role,
                scope: t.scope.clone(),
            }),
            (None, Some(u)) if !u.disabled => identity_of(u).ok(),
            (None, _) => None,
        }
    };
    match &identity {
        None => w.end_session(&key, None)?,
        Some(_) if at - s.last_seen >= TOUCH_EVERY_MS => w.touch_session(&key, at)?,
        Some(_) => {}
    }
    Ok(identity)
}

/// End a session (logout), audited.
pub fn logout(w: &mut SideWriter, id: &SessionId, who: &Identity) -> Result<(), AccountsError> {
    w.end_session(
        &id.sha256(),
        Some(&AuditEntry {
            at: now(),
            who: &who.name,
            role: who.role.as_str(),
            action: "POST /api/logout",
            detail: "signed out",
        }),
    )?;
    Ok(())
}

fn identity_of(u: &UserRow) -> Result<Identity, AccountsError> {
    let stations: Vec<&str> = u.stations.split(',').collect();
    Ok(Identity {
        name: u.name.clone(),
        role: parse_role(&u.role)?,
        scope: parse_scope(&stations)?,
    })
}

/// Sessions last used before the first time, or opened before the second, have ended.
fn expired_before(policy: &Accounts, at: i64) -> (i64, i64) {
    (
        at - policy.session_idle.as_millis() as i64,
        at - policy.session_lifetime.as_millis() as i64,
    )
}

fn audit<'a>(by: Actor<'a>, at: i64, detail: &'a str) -> AuditEntry<'a> {
    AuditEntry {
        at,
        who: by.who,
        role: by.role,
        action: by.action,
        detail,
    }
}

fn now() -> i64 {
    crate::model::Timestamp::now().millis()
}
