//! `[alert]`: when the alert engine raises, clears and re-notifies; `[[alert.channel]]` recipients (e-mail, webhook,
//! MQTT, log); `[[alert.route]]` rules from stations/kinds/severities to channels; `[[alert.maintenance]]` windows
//! that mute a station.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::DurationText;
use super::mqtt::Mqtt;
use super::Problems;
/// The checked `[[alert.channel]]`, defined with the channel types in [`crate::alert::channels`].
pub use crate::alert::channels::{Channel, ChannelKind};
use crate::alert::channels::{ChannelSection, CheckContext};

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
    /// Observations older than this behind the wall clock when they are processed are late data (a station's
    /// buffered backlog, a start-up replay): what they raise or clear is recorded at its true time and announced
    /// in one summary per station per catch-up instead of one notification per change.
    #[serde(default = "default_late_after")]
    pub late_after: DurationText,
    /// Longest wait between delivery retries (capped exponential backoff with jitter from 1 s).
    #[serde(default = "default_retry_max_backoff")]
    pub retry_max_backoff: DurationText,
    /// A notification still undelivered after this long is given up and recorded as failed.
    #[serde(default = "default_give_up_after")]
    pub give_up_after: DurationText,
    /// Recipients: one table each, decoded by its `type` (see [`ChannelSection::decode`]).
    #[serde(default)]
    pub channel: Vec<toml::Table>,
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
fn default_late_after() -> DurationText {
    DurationText::new("1h")
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
            late_after: default_late_after(),
            retry_max_backoff: default_retry_max_backoff(),
            give_up_after: default_give_up_after(),
            channel: Vec::new(),
            route: Vec::new(),
            maintenance: Vec::new(),
        }
    }
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

#[derive(Debug, Clone)]
pub struct Route {
    pub stations: Vec<String>,
    /// Empty: every kind.
    pub kinds: Vec<AlertKind>,
    pub min_severity: Severity,
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
    /// Observations older than this when processed are late data (announced in a catch-up summary).
    pub late_after: Duration,
    pub retry_max_backoff: Duration,
    pub give_up_after: Duration,
    pub channels: Vec<Channel>,
    pub routes: Vec<Route>,
    pub maintenance: Vec<Maintenance>,
}

impl Default for Alert {
    fn default() -> Self {
        let mut p = Problems::new(Path::new("<defaults>"));
        AlertSection::default().validate(&mut p, Path::new("."), &[], &Mqtt::default())
    }
}

/// What an alert is about (`[[alert.route]] kinds`; the engine's `Kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A single reading above its limit (a warning).
    Exceedance,
    /// The averaging-window mean above its limit (Decree 45 violation).
    Violation,
    /// No reading from the station.
    Silent,
    /// An analyser reports fault (02) for too long.
    Fault,
    /// An analyser calibrates (01) for too long.
    Calibration,
    /// Flat line, spike or low completeness.
    Quality,
    /// A forwarder cannot deliver.
    Backlog,
}

impl AlertKind {
    pub const ALL: [AlertKind; 7] = [
        AlertKind::Exceedance,
        AlertKind::Violation,
        AlertKind::Silent,
        AlertKind::Fault,
        AlertKind::Calibration,
        AlertKind::Quality,
        AlertKind::Backlog,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Exceedance => "exceedance",
            AlertKind::Violation => "violation",
            AlertKind::Silent => "silent",
            AlertKind::Fault => "fault",
            AlertKind::Calibration => "calibration",
            AlertKind::Quality => "quality",
            AlertKind::Backlog => "backlog",
        }
    }
    pub fn parse(s: &str) -> Option<AlertKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::Violation => Severity::Violation,
            AlertKind::Exceedance => Severity::Warning,
            _ => Severity::Technical,
        }
    }
    /// `exceedance, violation, …, backlog` (for error messages).
    pub fn names() -> String {
        Self::ALL.map(AlertKind::as_str).join(", ")
    }
}

/// How much an alert matters, least first (`[[alert.route]] min_severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Technical,
    Warning,
    Violation,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Technical, Severity::Warning, Severity::Violation];
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Technical => "technical",
            Severity::Warning => "warning",
            Severity::Violation => "violation",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl AlertSection {
    pub(super) fn validate(
        &self,
        p: &mut Problems,
        base: &Path,
        stations: &[String],
        mqtt: &Mqtt,
    ) -> Alert {
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
        let cx = CheckContext { base, mqtt };
        let channels = self.channels(p, &cx);
        let mut routes = Vec::new();
        for (i, r) in self.route.iter().enumerate() {
            let rk = format!("{k}.route[{i}]");
            for (j, name) in r.channels.iter().enumerate() {
                if !self.channel_names().any(|c| c == name) {
                    p.push(
                        format!("{rk}.channels[{j}]"),
                        format!(
                            "no channel is named {name:?}; define it in an [[alert.channel]] table (known: {})",
                            names(self.channel_names())
                        ),
                    );
                }
            }
            if r.channels.is_empty() {
                p.push(format!("{rk}.channels"), "name at least one channel");
            }
            let kinds = r
                .kinds
                .iter()
                .enumerate()
                .filter_map(|(j, kind)| {
                    let parsed = AlertKind::parse(kind);
                    if parsed.is_none() {
                        p.push(
                            format!("{rk}.kinds[{j}]"),
                            format!(
                                "unknown alert kind {kind:?}; expected one of {}",
                                AlertKind::names()
                            ),
                        );
                    }
                    parsed
                })
                .collect();
            for (j, pat) in r.stations.iter().enumerate() {
                if !pat.contains('*') && !stations.iter().any(|s| s == pat) {
                    p.push(
                        format!("{rk}.stations[{j}]"),
                        format!("no station has id {pat:?}; use a configured station id or a pattern with *"),
                    );
                }
            }
            let min_severity = Severity::parse(&r.min_severity).unwrap_or_else(|| {
                p.push(
                    format!("{rk}.min_severity"),
                    format!(
                        "unknown severity {:?}; expected one of {}",
                        r.min_severity,
                        Severity::ALL.map(Severity::as_str).join(", ")
                    ),
                );
                Severity::Technical
            });
            routes.push(Route {
                stations: r.stations.clone(),
                kinds,
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
            late_after: self.late_after.check_positive(p, "alert.late_after"),
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

impl AlertSection {
    /// The `name` of every `[[alert.channel]]` table as written (also of tables with problems, so routes naming
    /// them are not reported twice).
    fn channel_names(&self) -> impl Iterator<Item = &str> {
        self.channel.iter().filter_map(table_name)
    }

    fn channels(&self, p: &mut Problems, cx: &CheckContext<'_>) -> Vec<Channel> {
        let mut channels = Vec::new();
        for (i, table) in self.channel.iter().enumerate() {
            let ck = format!("alert.channel[{i}]");
            let Some(section) = ChannelSection::decode(table, p, &ck) else {
                continue;
            };
            let name = section.name();
            if name.trim().is_empty()
                || self.channel[..i]
                    .iter()
                    .any(|t| table_name(t) == Some(name))
            {
                p.push(
                    format!("{ck}.name"),
                    format!("{name:?} is empty or used twice; each channel needs its own name"),
                );
            }
            let timeout = section
                .timeout()
                .check_positive(p, &format!("{ck}.timeout"));
            if let Some(kind) = section.check(cx, p, &ck) {
                channels.push(Channel {
                    name: name.to_string(),
                    kind,
                    timeout,
                });
            }
        }
        channels
    }
}

fn table_name(table: &toml::Table) -> Option<&str> {
    table.get("name").and_then(toml::Value::as_str)
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
    use super::{glob_match, AlertKind, Severity};
    use crate::alert::channels::ChannelKind;
    use crate::config::Config;
    use std::path::Path;

    const STATION: &str =
        "[[station]]\nid = \"BN_A_B\"\nname = \"A\"\nprofile = \"p\"\ndesign_flow_m3_day = 1\n\
                           receiving_water = { type = \"river\" }\nparameters = { COD = {} }\n";
    const BROKER: &str = "[[mqtt.broker]]\nname = \"province\"\nhost = \"h\"\nclient_id = \"q\"\n\
                          tls = { ca_file = \"ca.pem\" }\n";

    fn check(text: &str) -> Result<Config, Vec<String>> {
        Config::from_str(
            &format!("{text}\n{STATION}"),
            Path::new("t.toml"),
            Path::new("."),
        )
        .map_err(|e| e.lines())
    }

    #[test]
    fn an_mqtt_channel_uses_the_broker_it_names() {
        let c = check(&format!(
            "{BROKER}[[alert.channel]]\nname = \"scada\"\ntype = \"mqtt\"\nbroker = \"province\"\n"
        ))
        .unwrap();
        let ChannelKind::Mqtt(m) = &c.alert.channels[0].kind else {
            panic!("{:?}", c.alert.channels)
        };
        assert_eq!(m.broker.host, "h");
        assert!(m.broker.tls.is_some());
        assert_eq!(m.topic_prefix, "quantrac/alerts");
        assert_eq!(c.alert.channels[0].kind.as_str(), "mqtt");
    }

    #[test]
    fn channel_problems_name_their_key() {
        let e = check(&format!(
            "{BROKER}[[alert.channel]]\nname = \"a\"\ntype = \"mqtt\"\nbroker = \"city\"\n\
             [[alert.channel]]\nname = \"b\"\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\n\
             [[alert.channel]]\nname = \"c\"\n\
             [[alert.channel]]\nname = \"d\"\ntype = \"webhook\"\nurl = \"https://x.vn\"\ntimeout = 5\n"
        ))
        .unwrap_err();
        assert_eq!(
            e,
            [
                "t.toml: alert.channel[0].broker: unknown broker \"city\"; expected one of province",
                "t.toml: alert.channel[1].host: unknown field `host`, expected one of `name`, `broker`, `topic_prefix`, `timeout`",
                "t.toml: alert.channel[2].type: missing; expected email, webhook, mqtt or log",
                "t.toml: alert.channel[3].timeout: invalid type: integer `5`, expected a string",
            ]
        );
    }

    #[test]
    fn routes_hold_kinds_and_severities() {
        let c = check(
            "[[alert.channel]]\nname = \"log\"\ntype = \"log\"\n\
             [[alert.route]]\nkinds = [\"violation\", \"silent\"]\nmin_severity = \"warning\"\nchannels = [\"log\"]\n",
        )
        .unwrap();
        let r = &c.alert.routes[0];
        assert_eq!(r.kinds, [AlertKind::Violation, AlertKind::Silent]);
        assert_eq!(r.min_severity, Severity::Warning);
        assert!(AlertKind::Exceedance.severity() >= r.min_severity);
        assert!(AlertKind::Silent.severity() < r.min_severity);
    }

    #[test]
    fn late_after_defaults_to_an_hour_and_must_be_positive() {
        let c = check("").unwrap();
        assert_eq!(c.alert.late_after, std::time::Duration::from_secs(3600));
        let c = check("[alert]\nlate_after = \"20m\"\n").unwrap();
        assert_eq!(c.alert.late_after, std::time::Duration::from_secs(1200));
        let e = check("[alert]\nlate_after = \"0s\"\n").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.toml: alert.late_after: "), "{e:?}");
        let e = check("[alert]\nlate_after = \"soon\"\n").unwrap_err();
        assert!(e[0].starts_with("t.toml: alert.late_after: "), "{e:?}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("BN_*", "BN_KCNQV_NUOC01"));
        assert!(glob_match("*NUOC01", "BN_KCNQV_NUOC01"));
        assert!(glob_match("BN_*_NUOC*", "BN_KCNQV_NUOC01"));
        assert!(!glob_match("BN_KCNTS_*", "BN_KCNQV_NUOC01"));
        assert!(glob_match("BN_KCNQV_NUOC01", "BN_KCNQV_NUOC01"));
    }
}
