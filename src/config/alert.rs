//! `[alert]`: when the alert engine raises, clears and re-notifies; `[[alert.channel]]` recipients (e-mail, webhook,
//! MQTT, log); `[[alert.route]]` rules from stations/kinds/severities to channels; `[[alert.maintenance]]` windows
//! that mute a station.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::duration::DurationText;
use super::{Problems, Secret};

/// `[alert]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSection {
    /// Run the alert engine (alerts are stored in the ledger and shown on the dashboard even with no channel).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Exceeding observations in a row before an exceedance, violation or data-quality alert is raised.
    #[serde(default = "default_raise_after")]
    pub raise_after: u32,
    /// And the condition must have lasted at least this long (0 s: the count alone decides).
    #[serde(default = "default_zero")]
    pub raise_min_duration: DurationText,
    /// Good observations in a row before a raised alert clears (hysteresis).
    #[serde(default = "default_clear_after")]
    pub clear_after: u32,
    /// One observation at or below this fraction of the limit clears at once (hysteresis: below the limit, not at
    /// it). 0 switches this off.
    #[serde(default = "default_clear_below")]
    pub clear_below: f64,
    /// Send the alert again while it stays raised and unacknowledged, this often. "0s" never re-sends.
    #[serde(default = "default_renotify")]
    pub renotify: DurationText,
    /// Flap suppression: after `flap_max` raises within `flap_window`, the alert only clears once the condition has
    /// stayed good for a whole `flap_window`.
    #[serde(default = "default_flap_window")]
    pub flap_window: DurationText,
    #[serde(default = "default_flap_max")]
    pub flap_max: u32,
    /// A station with no reading for this long is silent.
    #[serde(default = "default_silent_after")]
    pub silent_after: DurationText,
    /// An analyser reporting fault (status 02) for this long raises a device-fault alert.
    #[serde(default = "default_fault_after")]
    pub fault_after: DurationText,
    /// An analyser calibrating (status 01) for longer than this raises a calibration alert.
    #[serde(default = "default_calibration_after")]
    pub calibration_after: DurationText,
    /// A closed averaging window whose valid readings are at most this fraction of the expected ones is a
    /// data-quality problem (flat lines and spikes are the others; case H3: 9 of 12 is a warning at 0.75).
    /// 0 switches the completeness check off.
    #[serde(default = "default_completeness_below")]
    pub completeness_below: f64,
    /// An InfluxDB forwarder whose oldest unsent reading is older than this raises a backlog alert.
    #[serde(default = "default_backlog_after")]
    pub backlog_after: DurationText,
    /// Longest wait between delivery retries (capped exponential backoff with jitter from 1 s).
    #[serde(default = "default_retry_max_backoff")]
    pub retry_max_backoff: DurationText,
    /// A notification still undelivered after this long is given up and recorded as failed.
    #[serde(default = "default_give_up_after")]
    pub give_up_after: DurationText,
    /// Recipients: one table each.
    #[serde(default)]
    pub channel: Vec<ChannelSection>,
    /// Routing rules: which alerts go to which channels. An alert matching no route is stored and shown only.
    #[serde(default)]
    pub route: Vec<RouteSection>,
    /// Maintenance windows: no alert is raised or re-sent for the station between `from` and `to`.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceSection>,
}

fn default_true() -> bool {
    true
}
fn default_raise_after() -> u32 {
    2
}
fn default_zero() -> DurationText {
    DurationText::new("0s")
}
fn default_clear_after() -> u32 {
    3
}
fn default_clear_below() -> f64 {
    0.9
}
fn default_renotify() -> DurationText {
    DurationText::new("2h")
}
fn default_flap_window() -> DurationText {
    DurationText::new("1h")
}
fn default_flap_max() -> u32 {
    3
}
fn default_silent_after() -> DurationText {
    DurationText::new("15m")
}
fn default_fault_after() -> DurationText {
    DurationText::new("15m")
}
fn default_calibration_after() -> DurationText {
    DurationText::new("2h")
}
fn default_completeness_below() -> f64 {
    0.75
}
fn default_backlog_after() -> DurationText {
    DurationText::new("30m")
}
fn default_retry_max_backoff() -> DurationText {
    DurationText::new("5m")
}
fn default_give_up_after() -> DurationText {
    DurationText::new("24h")
}

impl Default for AlertSection {
    fn default() -> Self {
        Self {
            enabled: true,
            raise_after: default_raise_after(),
            raise_min_duration: default_zero(),
            clear_after: default_clear_after(),
            clear_below: default_clear_below(),
            renotify: default_renotify(),
            flap_window: default_flap_window(),
            flap_max: default_flap_max(),
            silent_after: default_silent_after(),
            fault_after: default_fault_after(),
            calibration_after: default_calibration_after(),
            completeness_below: default_completeness_below(),
            backlog_after: default_backlog_after(),
            retry_max_backoff: default_retry_max_backoff(),
            give_up_after: default_give_up_after(),
            channel: Vec::new(),
            route: Vec::new(),
            maintenance: Vec::new(),
        }
    }
}

/// One recipient as written. Which keys apply depends on `type`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSection {
    /// Name routes refer to; outbox rows and metrics carry it.
    pub name: String,
    /// `email`, `webhook`, `mqtt` or `log`.
    #[serde(rename = "type")]
    pub kind: String,
    /// email: SMTP server host name.
    pub server: Option<String>,
    /// email: SMTP port (default 587 for starttls, 465 for tls, 25 for plain). mqtt: broker port (default 1883).
    pub port: Option<u16>,
    /// email: `starttls` (default), `tls` (implicit TLS) or `plain` (no encryption: loopback relays only).
    pub tls: Option<String>,
    /// email, mqtt: user name; the password as `password` (`${ENV_VAR}` expands) or `password_file`.
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    /// email: extra CA certificate (PEM) trusted for the SMTP server's TLS certificate (a private CA); the public
    /// web roots are trusted otherwise.
    pub ca_file: Option<String>,
    /// email: sender, e.g. `quantrac <canhbao@stnmt.bacninh.gov.vn>`.
    pub from: Option<String>,
    /// email: recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// webhook: URL the JSON is POSTed to.
    pub url: Option<String>,
    /// webhook: HMAC-SHA256 key; the body's signature is sent as `X-Quantrac-Signature: sha256=<hex>`.
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    /// mqtt: broker host.
    pub host: Option<String>,
    /// mqtt: topics are `<topic_prefix>/<station>/alert` (each notification) and
    /// `<topic_prefix>/<station>/state/<kind>[/<parameter>]` (retained: the alert as it stands).
    pub topic_prefix: Option<String>,
    /// Deadline of one delivery attempt.
    #[serde(default = "default_timeout")]
    pub timeout: DurationText,
}

fn default_timeout() -> DurationText {
    DurationText::new("10s")
}

/// `[[alert.route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Station ids; `*` matches any run of characters (`BN_KCNTS_*`). Empty: every station.
    #[serde(default)]
    pub stations: Vec<String>,
    /// Alert kinds (`exceedance`, `violation`, `silent`, `fault`, `calibration`, `quality`, `backlog`). Empty: all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Least severity sent: `technical` (default) < `warning` < `violation`.
    #[serde(default = "default_min_severity")]
    pub min_severity: String,
    /// Channel names.
    pub channels: Vec<String>,
}

fn default_min_severity() -> String {
    "technical".into()
}

/// `[[alert.maintenance]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSection {
    /// Station id.
    pub station: String,
    /// RFC 3339 times, e.g. `2026-12-01T08:00:00+07:00`.
    pub from: String,
    pub to: String,
}

/// E-mail transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Tls,
    Plain,
}

/// A checked channel.
#[derive(Debug, Clone)]
pub enum ChannelKind {
    Email {
        server: String,
        port: u16,
        tls: SmtpTls,
        /// PEM of an extra trusted CA.
        ca_pem: Option<Vec<u8>>,
        credentials: Option<(String, Secret)>,
        from: String,
        to: Vec<String>,
    },
    Webhook {
        url: String,
        secret: Option<Secret>,
    },
    Mqtt {
        host: String,
        port: u16,
        credentials: Option<(String, Secret)>,
        topic_prefix: String,
    },
    Log,
}

impl ChannelKind {
    /// `email`, `webhook`, `mqtt`, `log` (metrics label).
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Email { .. } => "email",
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Mqtt { .. } => "mqtt",
            ChannelKind::Log => "log",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub stations: Vec<String>,
    pub kinds: Vec<String>,
    /// 0 technical, 1 warning, 2 violation.
    pub min_severity: u8,
    pub channels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Maintenance {
    pub station: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Checked `[alert]`.
#[derive(Debug, Clone)]
pub struct Alert {
    pub enabled: bool,
    pub raise_after: u32,
    pub raise_min_duration: Duration,
    pub clear_after: u32,
    pub clear_below: f64,
    pub renotify: Duration,
    pub flap_window: Duration,
    pub flap_max: u32,
    pub silent_after: Duration,
    pub fault_after: Duration,
    pub calibration_after: Duration,
    pub completeness_below: f64,
    pub backlog_after: Duration,
    pub retry_max_backoff: Duration,
    pub give_up_after: Duration,
    pub channels: Vec<Channel>,
    pub routes: Vec<Route>,
    pub maintenance: Vec<Maintenance>,
}

impl Default for Alert {
    fn default() -> Self {
        let mut p = Problems::new(Path::new("<defaults>"));
        AlertSection::default().validate(&mut p, Path::new("."), &[])
    }
}

pub const KINDS: [&str; 7] = [
    "exceedance",
    "violation",
    "silent",
    "fault",
    "calibration",
    "quality",
    "backlog",
];
pub const SEVERITIES: [&str; 3] = ["technical", "warning", "violation"];

impl AlertSection {
    pub(super) fn validate(&self, p: &mut Problems, base: &Path, stations: &[String]) -> Alert {
        let k = "alert";
        for (key, v) in [
            ("raise_after", self.raise_after),
            ("clear_after", self.clear_after),
            ("flap_max", self.flap_max),
        ] {
            if !(1..=1000).contains(&v) {
                p.push(
                    format!("{k}.{key}"),
                    format!("{v} is out of range; expected 1 to 1000"),
                );
            }
        }
        for (key, v) in [
            ("clear_below", self.clear_below),
            ("completeness_below", self.completeness_below),
        ] {
            if !(0.0..1.0).contains(&v) {
                p.push(
                    format!("{k}.{key}"),
                    format!(
                        "{v} is out of range; expected a fraction from 0 up to (not including) 1"
                    ),
                );
            }
        }
        let mut channels = Vec::new();
        for (i, c) in self.channel.iter().enumerate() {
            let ck = format!("{k}.channel[{i}]");
            if c.name.trim().is_empty() || self.channel[..i].iter().any(|o| o.name == c.name) {
                p.push(
                    format!("{ck}.name"),
                    format!(
                        "{:?} is empty or used twice; each channel needs its own name",
                        c.name
                    ),
                );
            }
            let timeout = c.timeout.check_positive(p, &format!("{ck}.timeout"));
            if let Some(kind) = c.validate(p, &ck, base) {
                channels.push(Channel {
                    name: c.name.clone(),
                    kind,
                    timeout,
                });
            }
        }
        let mut routes = Vec::new();
        for (i, r) in self.route.iter().enumerate() {
            let rk = format!("{k}.route[{i}]");
            for (j, name) in r.channels.iter().enumerate() {
                if !self.channel.iter().any(|c| &c.name == name) {
                    p.push(
                        format!("{rk}.channels[{j}]"),
                        format!(
                            "no channel is named {name:?}; define it in an [[alert.channel]] table (known: {})",
                            names(self.channel.iter().map(|c| c.name.as_str()))
                        ),
                    );
                }
            }
            if r.channels.is_empty() {
                p.push(format!("{rk}.channels"), "name at least one channel");
            }
            for (j, kind) in r.kinds.iter().enumerate() {
                if !KINDS.contains(&kind.as_str()) {
                    p.push(
                        format!("{rk}.kinds[{j}]"),
                        format!(
                            "unknown alert kind {kind:?}; expected one of {}",
                            KINDS.join(", ")
                        ),
                    );
                }
            }
            for (j, pat) in r.stations.iter().enumerate() {
                if !pat.contains('*') && !stations.iter().any(|s| s == pat) {
                    p.push(
                        format!("{rk}.stations[{j}]"),
                        format!("no station has id {pat:?}; use a configured station id or a pattern with *"),
                    );
                }
            }
            let min_severity = SEVERITIES
                .iter()
                .position(|s| *s == r.min_severity)
                .unwrap_or_else(|| {
                    p.push(
                        format!("{rk}.min_severity"),
                        format!(
                            "unknown severity {:?}; expected one of {}",
                            r.min_severity,
                            SEVERITIES.join(", ")
                        ),
                    );
                    0
                }) as u8;
            routes.push(Route {
                stations: r.stations.clone(),
                kinds: r.kinds.clone(),
                min_severity,
                channels: r.channels.clone(),
            });
        }
        let mut maintenance = Vec::new();
        for (i, m) in self.maintenance.iter().enumerate() {
            let mk = format!("{k}.maintenance[{i}]");
            if !stations.iter().any(|s| s == &m.station) {
                p.push(
                    format!("{mk}.station"),
                    format!("no station has id {:?}", m.station),
                );
            }
            let time = |p: &mut Problems, key: &str, v: &str| {
                chrono::DateTime::parse_from_rfc3339(v.trim())
                    .map(|d| d.timestamp_millis())
                    .map_err(|_| {
                        p.push(
                            format!("{mk}.{key}"),
                            format!("{v:?} is not a time; expected RFC 3339 such as \"2026-12-01T08:00:00+07:00\""),
                        )
                    })
                    .ok()
            };
            let (from, to) = (time(p, "from", &m.from), time(p, "to", &m.to));
            if let (Some(from_ms), Some(to_ms)) = (from, to) {
                if to_ms <= from_ms {
                    p.push(format!("{mk}.to"), "must be after from");
                }
                maintenance.push(Maintenance {
                    station: m.station.clone(),
                    from_ms,
                    to_ms,
                });
            }
        }
        Alert {
            enabled: self.enabled,
            raise_after: self.raise_after.clamp(1, 1000),
            raise_min_duration: self.raise_min_duration.check(p, "alert.raise_min_duration"),
            clear_after: self.clear_after.clamp(1, 1000),
            clear_below: self.clear_below,
            renotify: self.renotify.check(p, "alert.renotify"),
            flap_window: self.flap_window.check(p, "alert.flap_window"),
            flap_max: self.flap_max.clamp(1, 1000),
            silent_after: self.silent_after.check_positive(p, "alert.silent_after"),
            fault_after: self.fault_after.check(p, "alert.fault_after"),
            calibration_after: self.calibration_after.check(p, "alert.calibration_after"),
            completeness_below: self.completeness_below,
            backlog_after: self.backlog_after.check_positive(p, "alert.backlog_after"),
            retry_max_backoff: self
                .retry_max_backoff
                .check_positive(p, "alert.retry_max_backoff"),
            give_up_after: self.give_up_after.check_positive(p, "alert.give_up_after"),
            channels,
            routes,
            maintenance,
        }
    }
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<_> = it.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl ChannelSection {
    fn validate(&self, p: &mut Problems, k: &str, base: &Path) -> Option<ChannelKind> {
        let required = |p: &mut Problems, key: &str, v: &Option<String>| -> Option<String> {
            match v.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() => Some(s.to_string()),
                _ => {
                    p.push(
                        format!("{k}.{key}"),
                        format!("{} channels need {key}", self.kind),
                    );
                    None
                }
            }
        };
        let password = |p: &mut Problems| {
            Secret::resolve(
                self.password.as_deref(),
                self.password_file.as_deref(),
                base,
                p,
                &format!("{k}.password"),
            )
        };
        match self.kind.as_str() {
            "email" => {
                let server = required(p, "server", &self.server);
                let from = required(p, "from", &self.from);
                let tls = match self.tls.as_deref().unwrap_or("starttls") {
                    "starttls" => SmtpTls::StartTls,
                    "tls" => SmtpTls::Tls,
                    "plain" => SmtpTls::Plain,
                    other => {
                        p.push(
                            format!("{k}.tls"),
                            format!("unknown {other:?}; expected starttls, tls or plain"),
                        );
                        SmtpTls::StartTls
                    }
                };
                if let Some(f) = &from {
                    if f.parse::<lettre::message::Mailbox>().is_err() {
                        p.push(
                            format!("{k}.from"),
                            format!("{f:?} is not an e-mail address such as \"quantrac <canhbao@example.vn>\""),
                        );
                    }
                }
                if self.to.is_empty() {
                    p.push(format!("{k}.to"), "list at least one recipient address");
                }
                for (j, t) in self.to.iter().enumerate() {
                    if t.parse::<lettre::message::Mailbox>().is_err() {
                        p.push(
                            format!("{k}.to[{j}]"),
                            format!("{t:?} is not an e-mail address"),
                        );
                    }
                }
                let secret = password(p);
                let credentials = match (&self.username, secret) {
                    (Some(u), Some(s)) => Some((u.clone(), s)),
                    (Some(_), None) => {
                        p.push(
                            format!("{k}.password"),
                            "username is set: give password or password_file",
                        );
                        None
                    }
                    (None, Some(_)) => {
                        p.push(
                            format!("{k}.username"),
                            "password is set: give username too",
                        );
                        None
                    }
                    (None, None) => None,
                };
                let ca_pem = self.ca_file.as_ref().and_then(|f| {
                    let path = base.join(f);
                    std::fs::read(&path)
                        .map_err(|e| {
                            p.push(
                                format!("{k}.ca_file"),
                                format!("cannot read {}: {e}", path.display()),
                            )
                        })
                        .ok()
                });
                let port = self.port.unwrap_or(match tls {
                    SmtpTls::StartTls => 587,
                    SmtpTls::Tls => 465,
                    SmtpTls::Plain => 25,
                });
                Some(ChannelKind::Email {
                    server: server?,
                    port,
                    tls,
                    ca_pem,
                    credentials,
                    from: from?,
                    to: self.to.clone(),
                })
            }
            "webhook" => {
                let url = required(p, "url", &self.url)?;
                match reqwest::Url::parse(&url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                    _ => {
                        p.push(
                            format!("{k}.url"),
                            format!("{url:?} is not an http(s) URL, e.g. \"https://bridge.example.vn/quantrac\""),
                        );
                        return None;
                    }
                }
                let secret = Secret::resolve(
                    self.secret.as_deref(),
                    self.secret_file.as_deref(),
                    base,
                    p,
                    &format!("{k}.secret"),
                );
                Some(ChannelKind::Webhook { url, secret })
            }
            "mqtt" => {
                let host = required(p, "host", &self.host)?;
                let credentials = match (&self.username, password(p)) {
                    (Some(u), Some(s)) => Some((u.clone(), s)),
                    _ => None,
                };
                let topic_prefix = self
                    .topic_prefix
                    .clone()
                    .unwrap_or_else(|| "quantrac/alerts".into())
                    .trim_end_matches('/')
                    .to_string();
                if topic_prefix.is_empty() || topic_prefix.contains(['+', '#']) {
                    p.push(
                        format!("{k}.topic_prefix"),
                        format!("{topic_prefix:?} is not a topic prefix (no wildcards, not empty)"),
                    );
                }
                Some(ChannelKind::Mqtt {
                    host,
                    port: self.port.unwrap_or(1883),
                    credentials,
                    topic_prefix,
                })
            }
            "log" => Some(ChannelKind::Log),
            other => {
                p.push(
                    format!("{k}.type"),
                    format!("unknown channel type {other:?}; expected email, webhook, mqtt or log"),
                );
                None
            }
        }
    }
}

/// `*` matches any run of characters.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            let Some(tail) = s.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| glob_match(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("BN_*", "BN_KCNQV_NUOC01"));
        assert!(glob_match("*NUOC01", "BN_KCNQV_NUOC01"));
        assert!(glob_match("BN_*_NUOC*", "BN_KCNQV_NUOC01"));
        assert!(!glob_match("BN_KCNTS_*", "BN_KCNQV_NUOC01"));
        assert!(glob_match("BN_KCNQV_NUOC01", "BN_KCNQV_NUOC01"));
    }
}
