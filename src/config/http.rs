//! `[http]`: the API and dashboard listener, roles and bearer tokens (stored only as SHA-256 hashes).

use std::net::SocketAddr;

use serde::Deserialize;

use super::Problems;

/// `[http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Serve the API and dashboard.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Listen address.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Let anyone read (viewer role) without a token, e.g. for a kiosk screen in the department's office.
    #[serde(default)]
    pub anonymous_read: bool,
    /// Address officers use to reach the dashboard, for links in alerts (default `http://<listen>`).
    pub public_url: Option<String>,
    /// Bearer tokens: `{ name = "officer-1", role = "operator", sha256 = "<hex>" }`. Make one with
    /// `quantrac token new --role operator`.
    #[serde(default)]
    pub token: Vec<TokenSection>,
}

fn default_true() -> bool {
    true
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: default_listen(),
            anonymous_read: false,
            public_url: None,
            token: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    /// Who holds the token (recorded in the audit table).
    pub name: String,
    /// `viewer` < `operator` < `auditor` < `admin`.
    pub role: String,
    /// SHA-256 of the token, hex.
    pub sha256: String,
}

/// Roles, each allowed what the ones before it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Operator,
    Auditor,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "auditor" => Some(Role::Auditor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

/// A checked token.
#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub sha256: [u8; 32],
}

/// Checked `[http]`.
#[derive(Debug, Clone)]
pub struct Http {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub anonymous_read: bool,
    pub public_url: String,
    pub tokens: Vec<Token>,
}

impl HttpSection {
    pub(super) fn validate(&self, p: &mut Problems) -> Http {
        let listen = self.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            p.push(
                "http.listen",
                format!(
                    "{:?} is not an ip:port address, e.g. \"127.0.0.1:8080\"",
                    self.listen
                ),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let mut tokens = Vec::new();
        for (i, t) in self.token.iter().enumerate() {
            let k = format!("http.token[{i}]");
            let role = Role::parse(&t.role);
            if role.is_none() {
                p.push(
                    format!("{k}.role"),
                    format!(
                        "unknown role {:?}; expected one of viewer, operator, auditor, admin",
                        t.role
                    ),
                );
            }
            let hash = parse_hex32(&t.sha256);
            if hash.is_none() {
                p.push(format!("{k}.sha256"), "is not a SHA-256 hash (64 hex digits); make one with `quantrac token new --role <role>`");
            }
            if let (Some(role), Some(sha256)) = (role, hash) {
                tokens.push(Token {
                    name: t.name.clone(),
                    role,
                    sha256,
                });
            }
        }
        Http {
            enabled: self.enabled,
            listen,
            anonymous_read: self.anonymous_read,
            public_url: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{listen}")),
            tokens,
        }
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
