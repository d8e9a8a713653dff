//! `[mqtt]` broker connections and the embedded broker, and `[station.mqtt]` topic overrides.

use std::time::Duration;

use serde::Deserialize;

use super::duration::DurationText;
use super::{Problems, Secret};
pub use crate::source::mqtt::payload::{JsonMappingSection, PayloadFormat, TimestampFormat};

/// `[mqtt]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// The embedded broker (rumqttd), off by default: small sites can point stations straight at quantrac.
    #[serde(default)]
    pub embedded: EmbeddedSection,
    /// Brokers to subscribe to, one `[[mqtt.broker]]` each.
    #[serde(default)]
    pub broker: Vec<BrokerSection>,
}

/// `[mqtt.embedded]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedSection {
    #[serde(default)]
    pub enabled: bool,
    /// Listen address of the embedded broker.
    #[serde(default = "default_embedded_listen")]
    pub listen: String,
}

fn default_embedded_listen() -> String {
    "127.0.0.1:1883".into()
}

impl Default for EmbeddedSection {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: default_embedded_listen(),
        }
    }
}

/// `[[mqtt.broker]]`: one broker connection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSection {
    /// Name stations refer to (`[station.mqtt] broker = "…"`). `embedded` names the embedded broker.
    pub name: String,
    /// Broker host (default: the embedded broker's address when `name = "embedded"`).
    pub host: Option<String>,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Fixed client id: the broker keeps the persistent session under it. Must be unique per quantrac instance.
    pub client_id: String,
    pub username: Option<String>,
    /// Password, inline (`${ENV_VAR}` expands) or from `password_file`.
    pub password: Option<String>,
    pub password_file: Option<String>,
    /// TLS with rustls: `{ ca_file = "…", cert_file = "…", key_file = "…" }`. Without `ca_file` the system bundle
    /// `/etc/ssl/certs/ca-certificates.crt` is trusted; `cert_file` + `key_file` (PEM) give a client certificate.
    pub tls: Option<TlsSection>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive: DurationText,
    /// Shared subscription group: subscribe as `$share/<group>/<topic>` so several instances split the stream.
    pub share_group: Option<String>,
    /// Topic templates; `{station}` matches the station id: `stations/{station}/data`.
    #[serde(default = "default_topics")]
    pub topics: Vec<String>,
    /// Payload format: `json` or `tt10`.
    #[serde(default = "default_format")]
    pub format: String,
    /// Where values sit in JSON payloads.
    #[serde(default)]
    pub json: JsonMappingSection,
    /// Largest payload accepted, in bytes; a larger message is quarantined (its first 64 KiB kept) and acked.
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: usize,
}

fn default_port() -> u16 {
    1883
}
fn default_keep_alive() -> DurationText {
    DurationText::new("30s")
}
fn default_topics() -> Vec<String> {
    vec!["stations/{station}/data".into()]
}
fn default_format() -> String {
    "json".into()
}
fn default_max_payload() -> usize {
    256 * 1024
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

/// `[station.mqtt]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationMqttSection {
    /// Broker name (default: the only broker, or `embedded`).
    pub broker: Option<String>,
    /// Topic for this station (default: the broker's templates with `{station}` = this id).
    pub topic: Option<String>,
}

/// Largest MQTT packet the client reads. Messages above `max_payload_bytes` but below this are quarantined; a
/// larger packet makes rumqttc drop the connection, so it must stay well above any accepted payload.
pub const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;

/// Checked broker connection.
#[derive(Debug, Clone)]
pub struct Broker {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: Option<TlsSection>,
    pub keep_alive: Duration,
    pub share_group: Option<String>,
    pub topics: Vec<String>,
    pub format: PayloadFormat,
    pub json: JsonMappingSection,
    pub max_payload_bytes: usize,
}

/// Checked `[mqtt]`.
#[derive(Debug, Clone, Default)]
pub struct Mqtt {
    pub embedded: Option<String>,
    pub brokers: Vec<Broker>,
}

/// Checked `[station.mqtt]`.
#[derive(Debug, Clone)]
pub struct StationMqtt {
    pub broker: String,
    pub topic: String,
}

impl MqttSection {
    pub(super) fn validate(&self, p: &mut Problems) -> Mqtt {
        let embedded = self.embedded.enabled.then(|| {
            if self
                .embedded
                .listen
                .parse::<std::net::SocketAddr>()
                .is_err()
            {
                p.push(
                    "mqtt.embedded.listen",
                    format!("{:?} is not an ip:port address", self.embedded.listen),
                );
            }
            self.embedded.listen.clone()
        });
        let base = std::path::Path::new(".");
        let mut brokers = Vec::new();
        for (i, b) in self.broker.iter().enumerate() {
            let k = format!("mqtt.broker[{i}]");
            if b.name.trim().is_empty() {
                p.push(format!("{k}.name"), "must not be empty");
            }
            if self.broker[..i].iter().any(|o| o.name == b.name) {
                p.push(
                    format!("{k}.name"),
                    format!("duplicate broker name {:?}", b.name),
                );
            }
            if b.client_id.trim().is_empty() {
                // rumqttc panics on a persistent session with an empty client id; refuse it here.
                p.push(
                    format!("{k}.client_id"),
                    "must not be empty: the broker keeps the persistent session under it",
                );
            }
            let keep_alive = b.keep_alive.check(p, &format!("{k}.keep_alive"));
            if keep_alive < Duration::from_secs(1) && !keep_alive.is_zero() || keep_alive.is_zero()
            {
                // rumqttc panics on a keep-alive below one second.
                p.push(format!("{k}.keep_alive"), "must be at least 1s");
            }
            let host = match (&b.host, &embedded) {
                (Some(h), _) => h.clone(),
                (None, Some(listen)) if b.name == "embedded" => listen
                    .rsplit_once(':')
                    .map(|(h, _)| h.to_string())
                    .unwrap_or_default(),
                _ => {
                    p.push(
                        format!("{k}.host"),
                        "missing; give the broker's host name or address",
                    );
                    String::new()
                }
            };
            let port = match (&b.host, &embedded) {
                (None, Some(listen)) if b.name == "embedded" => listen
                    .rsplit_once(':')
                    .and_then(|(_, port)| port.parse().ok())
                    .unwrap_or(b.port),
                _ => b.port,
            };
            let format = PayloadFormat::parse(&b.format).unwrap_or_else(|| {
                p.push(
                    format!("{k}.format"),
                    format!(
                        "unknown payload format {:?}; expected one of {}",
                        b.format,
                        PayloadFormat::names()
                    ),
                );
                PayloadFormat::Json
            });
            if TimestampFormat::parse(&b.json.timestamp_format).is_none() {
                p.push(
                    format!("{k}.json.timestamp_format"),
                    format!(
                        "unknown format {:?}; expected one of {}",
                        b.json.timestamp_format,
                        TimestampFormat::NAMES
                    ),
                );
            }
            if b.json.value_key.as_deref() == Some("") || b.json.status_key.as_deref() == Some("") {
                p.push(
                    format!("{k}.json"),
                    "value_key and status_key must not be empty; leave them out instead",
                );
            }
            if b.max_payload_bytes == 0 || b.max_payload_bytes > MAX_PACKET_BYTES / 2 {
                p.push(
                    format!("{k}.max_payload_bytes"),
                    format!(
                        "{} is out of range; expected 1 to {}",
                        b.max_payload_bytes,
                        MAX_PACKET_BYTES / 2
                    ),
                );
            }
            if b.topics.is_empty() {
                p.push(
                    format!("{k}.topics"),
                    "no topics; give at least one, e.g. \"stations/{station}/data\"",
                );
            }
            for (j, t) in b.topics.iter().enumerate() {
                if t.is_empty() || t.matches("{station}").count() > 1 {
                    p.push(
                        format!("{k}.topics[{j}]"),
                        format!("{t:?} is not a topic template; use {{station}} at most once"),
                    );
                }
            }
            if let Some(t) = &b.tls {
                if t.cert_file.is_some() != t.key_file.is_some() {
                    p.push(
                        format!("{k}.tls"),
                        "a client certificate needs both cert_file and key_file",
                    );
                }
            }
            if let Some(g) = &b.share_group {
                if g.is_empty() || g.contains(['/', '+', '#']) {
                    p.push(
                        format!("{k}.share_group"),
                        format!("{g:?} is not a group name; no '/', '+' or '#'"),
                    );
                }
            }
            let password = Secret::resolve(
                b.password.as_deref(),
                b.password_file.as_deref(),
                base,
                p,
                &format!("{k}.password"),
            );
            brokers.push(Broker {
                name: b.name.clone(),
                host,
                port,
                client_id: b.client_id.clone(),
                username: b.username.clone(),
                password,
                tls: b.tls.clone(),
                keep_alive,
                share_group: b.share_group.clone(),
                topics: b.topics.clone(),
                format,
                json: b.json.clone(),
                max_payload_bytes: b.max_payload_bytes,
            });
        }
        Mqtt { embedded, brokers }
    }
}

impl Mqtt {
    /// The broker `name` names, or the only broker when `name` is not given; else a problem at `key` listing the
    /// configured brokers. Stations and the MQTT alert channel name their broker this way.
    pub fn broker_named(&self, name: Option<&str>, p: &mut Problems, key: &str) -> Option<&Broker> {
        match (name, self.brokers.as_slice()) {
            (Some(b), brokers) => {
                let found = brokers.iter().find(|x| x.name == b);
                if found.is_none() {
                    p.push(
                        key,
                        format!("unknown broker {b:?}; expected one of {}", names(brokers)),
                    );
                }
                found
            }
            (None, [only]) => Some(only),
            (None, brokers) => {
                p.push(
                    key,
                    format!(
                        "missing; {} brokers are configured, name one of {}",
                        brokers.len(),
                        names(brokers)
                    ),
                );
                None
            }
        }
    }
}

impl StationMqttSection {
    pub(super) fn validate(
        &self,
        p: &mut Problems,
        key: &str,
        mqtt: &Mqtt,
        station: &str,
    ) -> Option<StationMqtt> {
        let broker = mqtt
            .broker_named(self.broker.as_deref(), p, &format!("{key}.broker"))?
            .name
            .clone();
        let template = mqtt
            .brokers
            .iter()
            .find(|b| b.name == broker)
            .and_then(|b| b.topics.first().cloned())
            .unwrap_or_else(|| "stations/{station}/data".into());
        let topic = self
            .topic
            .clone()
            .unwrap_or_else(|| template.replace("{station}", station));
        Some(StationMqtt { broker, topic })
    }
}

fn names(brokers: &[Broker]) -> String {
    if brokers.is_empty() {
        "(none configured: add an [[mqtt.broker]])".into()
    } else {
        brokers
            .iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn problems(broker: &str) -> String {
        let text = format!(
            "{broker}\n[[station]]\nid = \"BN_A_B\"\nname = \"A\"\nprofile = \"p\"\ndesign_flow_m3_day = 1\n\
             receiving_water = {{ type = \"river\" }}\nparameters = {{ COD = {{}} }}\n"
        );
        match Config::from_str(&text, Path::new("t.toml"), Path::new(".")) {
            Ok(_) => String::new(),
            Err(e) => e.lines().join("\n"),
        }
    }

    #[test]
    fn broker_problems_name_the_key() {
        let base = "[[mqtt.broker]]\nname = \"b\"\nhost = \"h\"\nclient_id = \"q\"\n";
        assert_eq!(problems(base), "");
        let p = problems(&format!("{base}tls = {{ cert_file = \"c.pem\" }}\n"));
        assert!(
            p.contains(
                "mqtt.broker[0].tls: a client certificate needs both cert_file and key_file"
            ),
            "{p}"
        );
        let p = problems(&format!(
            "{base}max_payload_bytes = 0\njson = {{ timestamp_format = \"iso\" }}\n"
        ));
        assert!(
            p.contains("mqtt.broker[0].max_payload_bytes: 0 is out of range"),
            "{p}"
        );
        assert!(p.contains("mqtt.broker[0].json.timestamp_format: unknown format \"iso\"; expected one of rfc3339, epoch_s, epoch_ms, tt10"), "{p}");
    }
}
