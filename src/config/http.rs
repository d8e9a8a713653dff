//! `[http]`: the API and dashboard listener, roles and bearer tokens (stored only as SHA-256 hashes).

use std::net::SocketAddr;

use std::time::Duration;

use serde::Deserialize;

use super::scope::StationScope;
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
    /// Tile server for the overview's map of stations: an `http(s)` URL template with `{z}`, `{x}` and `{y}` (or
    /// `{-y}`), optionally `{s}` as the host's first label and `{r}`, e.g.
    /// `https://tile.openstreetmap.org/{z}/{x}/{y}.png`. Left out: no map, and the dashboard asks nothing of any
    /// other server. The dashboard's content security policy lets images come from this server's origin.
    pub map_tiles: Option<String>,
    /// The attribution the tile server asks for, shown as plain text in the map's corner (default
    /// `© OpenStreetMap contributors`, right for tiles drawn from OpenStreetMap data).
    pub map_attribution: Option<String>,
    /// `[http.accounts]`: dashboard sign-in (sessions and lockout).
    #[serde(default)]
    pub accounts: AccountsSection,
    /// Serve `/metrics` without a token (for a Prometheus scraper on a trusted network). Its samples name every
    /// station (`quantrac_plant_state{station}`, connections), so where tokens or users are scoped to some stations
    /// set this to `false`: `/metrics` then needs a token that sees every station (give Prometheus one).
    #[serde(default = "default_true")]
    pub metrics_public: bool,
}

/// `[http.accounts]`: how long a dashboard session lasts and when repeated failed sign-ins lock an account. Accounts
/// themselves live in the ledger (`quantrac user add`, the admin page).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsSection {
    /// A session unused for this long ends (the open dashboard's event stream counts as use).
    #[serde(default = "default_session_idle")]
    pub session_idle: DurationText,
    /// A session ends this long after its sign-in, used or not.
    #[serde(default = "default_session_lifetime")]
    pub session_lifetime: DurationText,
    /// Failed sign-ins in a row that lock an account.
    #[serde(default = "default_max_failed_logins")]
    pub max_failed_logins: u32,
    /// How long a locked account refuses every sign-in, even with the right password.
    #[serde(default = "default_lockout")]
    pub lockout: DurationText,
    /// Refused sign-ins one client address may have per minute: this many at once, then one every 60/N s.
    #[serde(default = "default_refused_sign_ins_per_minute")]
    pub refused_sign_ins_per_minute: u32,
}

impl Default for AccountsSection {
    fn default() -> Self {
        Self {
            session_idle: default_session_idle(),
            session_lifetime: default_session_lifetime(),
            max_failed_logins: default_max_failed_logins(),
            lockout: default_lockout(),
            refused_sign_ins_per_minute: default_refused_sign_ins_per_minute(),
        }
    }
}

fn default_session_idle() -> DurationText {
    DurationText::new("1h")
}
fn default_session_lifetime() -> DurationText {
    DurationText::new("12h")
}
fn default_max_failed_logins() -> u32 {
    5
}
fn default_lockout() -> DurationText {
    DurationText::new("15m")
}
fn default_refused_sign_ins_per_minute() -> u32 {
    10
}

/// Checked `[http.accounts]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    pub session_idle: Duration,
    pub session_lifetime: Duration,
    pub max_failed_logins: u32,
    pub lockout: Duration,
    pub refused_sign_ins_per_minute: u32,
}

impl Default for Accounts {
    fn default() -> Self {
        Self {
            session_idle: Duration::from_secs(3600),
            session_lifetime: Duration::from_secs(12 * 3600),
            max_failed_logins: 5,
            lockout: Duration::from_secs(15 * 60),
            refused_sign_ins_per_minute: 10,
        }
    }
}

impl AccountsSection {
    fn validate(&self, p: &mut Problems) -> Accounts {
        let key = |k: &str| format!("http.accounts.{k}");
        let session_idle = self.session_idle.check_positive(p, &key("session_idle"));
        let session_lifetime = self
            .session_lifetime
            .check_positive(p, &key("session_lifetime"));
        if session_idle > session_lifetime && !session_lifetime.is_zero() {
            p.push(
                key("session_idle"),
                format!(
                    "{:?} is longer than http.accounts.session_lifetime ({:?}); a session never idles that long",
                    self.session_idle.0, self.session_lifetime.0
                ),
            );
        }
        if !(1..=100).contains(&self.max_failed_logins) {
            p.push(
                key("max_failed_logins"),
                format!("{} is not between 1 and 100", self.max_failed_logins),
            );
        }
        let lockout = self.lockout.check_positive(p, &key("lockout"));
        if !(1..=1000).contains(&self.refused_sign_ins_per_minute) {
            p.push(
                key("refused_sign_ins_per_minute"),
                format!(
                    "{} is not between 1 and 1000",
                    self.refused_sign_ins_per_minute
                ),
            );
        }
        Accounts {
            session_idle,
            session_lifetime,
            max_failed_logins: self.max_failed_logins.clamp(1, 100),
            lockout,
            refused_sign_ins_per_minute: self.refused_sign_ins_per_minute.clamp(1, 1000),
        }
    }
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
            map_tiles: None,
            map_attribution: None,
            accounts: AccountsSection::default(),
            metrics_public: true,
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
    /// The stations the token may see: station ids or prefixes with `*` (`["BN_KCNTS_*"]`); default every station.
    #[serde(default)]
    pub stations: Vec<String>,
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
    /// The stations the token may see.
    pub scope: StationScope,
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
    /// The overview's map (`map_tiles`); `None`: no map.
    pub map: Option<MapTiles>,
    /// Sessions and lockout of dashboard accounts.
    pub accounts: Accounts,
    /// `/metrics` without a token.
    pub metrics_public: bool,
}

impl Http {
    /// Why links in alerts would not open for the people who get them: `public_url` left to its default
    /// (`http://<listen>`) while the dashboard listens where only this machine (loopback) or no fixed address (any
    /// address, port 0) is named. `None` when the links are usable or there are none.
    pub fn link_warning(&self) -> Option<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        if !self.enabled || self.public_url != format!("{scheme}://{}", self.listen) {
            return None;
        }
        let ip = self.listen.ip();
        let why = if self.listen.port() == 0 {
            "port 0 is whatever port the system hands out"
        } else if ip.is_unspecified() {
            "an address that names no machine"
        } else if ip.is_loopback() {
            "an address that only opens on this machine"
        } else {
            return None;
        };
        Some(format!(
            "http.public_url is not set: links in alerts point to {} ({why}); set http.public_url to the address \
             officers open the dashboard at",
            self.public_url
        ))
    }
}

/// A checked tile server for the overview's map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapTiles {
    /// The URL template as Leaflet takes it.
    pub url: String,
    /// Plain text shown in the map's corner.
    pub attribution: String,
    /// The server's origin as a content-security-policy source (`https://*.tile.example.org` for `{s}`).
    pub origin: String,
}

/// Shown when `map_attribution` is left out.
pub const DEFAULT_MAP_ATTRIBUTION: &str = "© OpenStreetMap contributors";

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
            let scope = StationScope::parse(&t.stations)
                .map_err(|e| p.push(format!("{k}.stations"), e))
                .ok();
            if let (Some(role), Some(sha256), Some(scope)) = (role, hash, scope) {
                tokens.push(Token {
                    name: t.name.clone(),
                    role,
                    sha256,
                    scope,
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
            map: self.map(p),
            accounts: self.accounts.validate(p),
            metrics_public: self.metrics_public,
        }
    }

    fn map(&self, p: &mut Problems) -> Option<MapTiles> {
        let Some(url) = &self.map_tiles else {
            if self.map_attribution.is_some() {
                p.push(
                    "http.map_attribution",
                    "is set but http.map_tiles is not; give the tile server too, or leave both out",
                );
            }
            return None;
        };
        let origin = tile_origin(url.trim())
            .map_err(|e| p.push("http.map_tiles", format!("{url:?} {e}")))
            .ok();
        let attribution = self
            .map_attribution
            .as_deref()
            .unwrap_or(DEFAULT_MAP_ATTRIBUTION)
            .trim();
        if attribution.is_empty()
            || attribution.chars().count() > 200
            || attribution.chars().any(char::is_control)
        {
            p.push(
                "http.map_attribution",
                "must be one line of 1 to 200 characters, e.g. \"© OpenStreetMap contributors\"",
            );
        }
        Some(MapTiles {
            url: url.trim().to_string(),
            attribution: attribution.to_string(),
            origin: origin?,
        })
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

/// The placeholders Leaflet fills in a tile URL without further options.
const TILE_PLACEHOLDERS: [&str; 6] = ["{z}", "{x}", "{y}", "{-y}", "{s}", "{r}"];

/// The origin of a tile URL template as a content-security-policy source, or what is wrong with the template (a
/// sentence after the quoted URL). Only characters that cannot end a policy directive or a header are accepted.
fn tile_origin(url: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "http" | "https"))
        .ok_or("is not an http:// or https:// URL, e.g. \"https://tile.openstreetmap.org/{z}/{x}/{y}.png\"")?;
    if let Some(c) = url
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\"'<>\\;,`".contains(*c))
    {
        return Err(format!("contains {c:?}, which a URL template may not"));
    }
    let mut unknown = url.match_indices('{').filter_map(|(i, _)| {
        let end = url[i..].find('}').map_or(url.len(), |e| i + e + 1);
        let p = &url[i..end];
        (!TILE_PLACEHOLDERS.contains(&p)).then_some(p)
    });
    if let Some(p) = unknown.next() {
        return Err(format!(
            "has the placeholder {p}; expected only {}",
            TILE_PLACEHOLDERS.join(", ")
        ));
    }
    let missing: Vec<&str> = [
        ("{z}", url.contains("{z}")),
        ("{x}", url.contains("{x}")),
        ("{y}", url.contains("{y}") || url.contains("{-y}")),
    ]
    .into_iter()
    .filter(|(_, found)| !found)
    .map(|(p, _)| p)
    .collect();
    if !missing.is_empty() {
        return Err(format!("lacks {}; a tile URL needs {{z}}, {{x}} and {{y}}, e.g. \"https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png\"", missing.join(", ")));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (wildcard, bare) = match host.strip_prefix("{s}.") {
        Some(h) => ("*.", h),
        None => ("", host),
    };
    let host_chars = |c: char| c.is_ascii_alphanumeric() || ".-:[]".contains(c);
    if bare.is_empty() || !bare.chars().all(host_chars) || bare.starts_with(['.', ':']) {
        return Err(format!(
            "has no usable host ({host:?}); only {{s}} may stand in it, as its first label"
        ));
    }
    Ok(format!("{scheme}://{wildcard}{bare}"))
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

#[cfg(test)]
mod tests {
    use super::tile_origin;

    /// Alert links are warned about when they name this machine only or no address, not when `public_url` is set
    /// or the dashboard listens on a reachable address.
    #[test]
    fn alert_links_that_recipients_cannot_open_are_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let warning = |http: &str| {
            crate::testing::cod_station_config(dir.path(), &format!("[http]\n{http}\n"))
                .http
                .link_warning()
        };
        for (http, why) in [
            ("", "only opens on this machine"),
            ("listen = \"0.0.0.0:8080\"", "names no machine"),
            ("listen = \"[::]:8080\"", "names no machine"),
            ("listen = \"10.0.0.5:0\"", "port 0"),
        ] {
            let w = warning(http).unwrap_or_else(|| panic!("no warning for {http:?}"));
            assert!(
                w.contains(why) && w.contains("set http.public_url"),
                "{http:?}: {w}"
            );
        }
        assert!(warning("listen = \"0.0.0.0:8080\"")
            .unwrap()
            .contains("http://0.0.0.0:8080"));
        for http in [
            "listen = \"10.0.0.5:8080\"",
            "public_url = \"https://quantrac.example.vn\"",
            "enabled = false",
        ] {
            assert_eq!(warning(http), None, "{http:?}");
        }
        // Only a config that sends alerts is warned about.
        let config = |extra: &str| crate::testing::cod_station_config(dir.path(), extra);
        assert_eq!(config("").alert_link_warning(), None);
        let sends = config(
            "[[alert.channel]]\nname = \"bridge\"\ntype = \"webhook\"\nurl = \"http://10.0.0.9/hook\"\n\
             secret = \"webhook-secret-for-tests\"\n",
        );
        assert!(sends
            .alert_link_warning()
            .is_some_and(|w| w.contains("http://127.0.0.1:8080")));
    }

    #[test]
    fn tile_urls_give_their_origin_or_say_what_is_wrong() {
        for (url, origin) in [
            (
                "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                "https://tile.openstreetmap.org",
            ),
            (
                "https://{s}.tile.example.org/{z}/{x}/{y}{r}.png",
                "https://*.tile.example.org",
            ),
            (
                "http://127.0.0.1:8081/tiles/{z}/{x}/{-y}.png",
                "http://127.0.0.1:8081",
            ),
            ("http://[::1]:9000/t?z={z}&x={x}&y={y}", "http://[::1]:9000"),
        ] {
            assert_eq!(tile_origin(url).as_deref(), Ok(origin), "{url}");
        }
        for (url, problem) in [
            (
                "tile.openstreetmap.org/{z}/{x}/{y}.png",
                "is not an http:// or https:// URL",
            ),
            (
                "ftp://tiles.example.org/{z}/{x}/{y}.png",
                "is not an http:// or https:// URL",
            ),
            ("https://tiles.example.org/{z}/{x}.png", "lacks {y}"),
            (
                "https://tiles.example.org/{z}/{y}/{x}/{q}.png",
                "has the placeholder {q}",
            ),
            (
                "https://tiles.example.org/{z}/{x}/{y}.png script-src *",
                "contains ' '",
            ),
            ("https://tiles.example.org/{z}/{x}/{y}.png;", "contains ';'"),
            (
                "https://a{s}.example.org/{z}/{x}/{y}.png",
                "has no usable host",
            ),
            ("https:///{z}/{x}/{y}.png", "has no usable host"),
            (
                "https://user@tiles.example.org/{z}/{x}/{y}.png",
                "has no usable host",
            ),
        ] {
            let e = tile_origin(url).unwrap_err();
            assert!(e.starts_with(problem), "{url}: {e}");
        }
    }
}
