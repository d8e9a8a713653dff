//! `[http]`: the API and dashboard listener, roles and bearer tokens (stored only as SHA-256 hashes).

use std::net::SocketAddr;

use std::time::Duration;

use serde::Deserialize;

use super::{DurationText, Problems};

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
    /// Serve HTTPS: `{ cert_file = "server.crt", key_file = "server.key" }` (PEM; the certificate chain, then the
    /// key). SIGHUP reads the files again (a renewed certificate), keeping the old ones if the new do not load.
    pub tls: Option<TlsSection>,
    /// Let anyone read (viewer role) without a token, e.g. for a kiosk screen in the department's office.
    #[serde(default)]
    pub anonymous_read: bool,
    /// Address officers use to reach the dashboard, for links in alerts (default `http://<listen>`).
    pub public_url: Option<String>,
    /// Bearer tokens: `{ name = "officer-1", role = "operator", sha256 = "<hex>" }`. Make one with
    /// `quantrac token new --role operator`.
    #[serde(default)]
    pub token: Vec<TokenSection>,
    /// A client must send a request's whole header within this time, and an idle kept-alive connection is closed
    /// after it (slow-header "slowloris" connections cannot hold a descriptor for longer).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: DurationText,
    /// A connection that neither sends nor receives a byte for this long is closed (a stalled body upload, a client
    /// that stopped reading). Server-sent event streams send a keep-alive every 15 s, so keep this above that.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: DurationText,
    /// Open connections at most; more are answered 503 and closed at once. Keep well below the process's
    /// descriptor limit (`ulimit -n`), which the ledger, sources and alert channels share.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections at most from one client address.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Open `/api/stream` (server-sent events) streams at most; more are answered 503.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
    /// Largest request header (request line and all header fields), bytes; a larger one is answered 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
}

fn default_true() -> bool {
    true
}
fn default_header_read_timeout() -> DurationText {
    DurationText::new("10s")
}
fn default_idle_timeout() -> DurationText {
    DurationText::new("60s")
}
fn default_max_connections() -> usize {
    512
}
fn default_max_connections_per_client() -> usize {
    64
}
fn default_max_streams() -> usize {
    128
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            tls: None,
            enabled: true,
            listen: default_listen(),
            anonymous_read: false,
            public_url: None,
            token: Vec::new(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_connections_per_client(),
            max_streams: default_max_streams(),
            max_header_bytes: default_max_header_bytes(),
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

/// `[http.tls]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert_file: String,
    pub key_file: String,
}

/// The listener's certificate chain and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
}

/// Checked `[http]`.
#[derive(Debug, Clone)]
pub struct Http {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// HTTPS when set.
    pub tls: Option<TlsFiles>,
    pub anonymous_read: bool,
    pub public_url: String,
    pub tokens: Vec<Token>,
    pub limits: Limits,
}

/// Checked listener limits (see [`HttpSection`] for each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub max_streams: usize,
    pub max_header_bytes: usize,
}

/// The smallest header limit accepted (a browser's request with a session cookie needs more than this).
pub const MIN_HEADER_BYTES: usize = 1024;

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
        let tls = self.tls.as_ref().map(|t| {
            for (key, v) in [("cert_file", &t.cert_file), ("key_file", &t.key_file)] {
                if v.trim().is_empty() {
                    p.push(format!("http.tls.{key}"), "must name a PEM file");
                }
            }
            TlsFiles {
                cert_file: t.cert_file.clone().into(),
                key_file: t.key_file.clone().into(),
            }
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        Http {
            enabled: self.enabled,
            listen,
            tls,
            anonymous_read: self.anonymous_read,
            public_url: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{listen}")),
            tokens,
            limits: self.limits(p),
        }
    }

    fn limits(&self, p: &mut Problems) -> Limits {
        let header_read_timeout = self
            .header_read_timeout
            .check_positive(p, "http.header_read_timeout");
        let idle_timeout = self.idle_timeout.check_positive(p, "http.idle_timeout");
        for (key, value) in [
            ("max_connections", self.max_connections),
            (
                "max_connections_per_client",
                self.max_connections_per_client,
            ),
            ("max_streams", self.max_streams),
        ] {
            if value == 0 {
                p.push(format!("http.{key}"), "must be at least 1");
            }
        }
        if self.max_connections_per_client > self.max_connections {
            p.push(
                "http.max_connections_per_client",
                format!(
                    "{} is more than http.max_connections ({})",
                    self.max_connections_per_client, self.max_connections
                ),
            );
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            p.push(
                "http.max_header_bytes",
                format!(
                    "{} is below the smallest supported value, {MIN_HEADER_BYTES}",
                    self.max_header_bytes
                ),
            );
        }
        Limits {
            header_read_timeout,
            idle_timeout,
            max_connections: self.max_connections.max(1),
            max_connections_per_client: self.max_connections_per_client.max(1),
            max_streams: self.max_streams.max(1),
            max_header_bytes: self.max_header_bytes.max(MIN_HEADER_BYTES),
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
