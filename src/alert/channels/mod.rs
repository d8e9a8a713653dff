//! Alert channels: one file per channel type, each holding its `[[alert.channel]]` table as written (a struct of
//! its own keys, `deny_unknown_fields`), the checks that turn it into settings, and its sender. This file only
//! dispatches between them; the outbox decides about retries. Every send runs under the channel's timeout.
//!
//! Adding a channel type: a new file here with a `Section`, `Settings` and `Sender` implementing the three traits
//! below, plus one line in the `channel_types!` list. The enums, the `type` names in config errors, the metrics
//! labels and every dispatch come from that list, so nothing else can be forgotten.
//!
//! A table is decoded by its `type` here rather than by serde's internally tagged enums: those buffer the table,
//! which loses the key path of a bad key and stops at the first problem, while the config reports every problem
//! with its path (`alert.channel[2].type: unknown channel type "sms"; …` beside the others).

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::message::Notification;
use crate::config::mqtt::Mqtt;
use crate::config::{DurationText, Problems};

/// What a table's checks may consult besides the table.
pub struct CheckContext<'a> {
    /// Folder relative `*_file` paths start from.
    pub base: &'a Path,
    /// The checked `[mqtt]` (brokers the MQTT channel names).
    pub mqtt: &'a Mqtt,
}

/// A channel type's `[[alert.channel]]` table as written: `name`, `timeout` and its own keys.
pub trait Section: DeserializeOwned {
    type Settings: Settings;
    fn name(&self) -> &str;
    fn timeout(&self) -> &DurationText;
    /// Check the type's own keys; every problem goes to `p` under `key` (`alert.channel[i]`).
    fn check(&self, cx: &CheckContext<'_>, p: &mut Problems, key: &str) -> Option<Self::Settings>;
}

/// A channel type's checked settings; the sender is built from them when the daemon starts.
pub trait Settings: Clone + fmt::Debug {
    type Sender: Deliver;
    fn build(&self, timeout: Duration) -> Result<Self::Sender, BoxError>;
}

/// Sends one notification: `payload` is its JSON as stored, `delivery` the outbox row id (receivers can use it to
/// drop a redelivery).
pub trait Deliver: Send + Sync {
    fn send(
        &self,
        delivery: i64,
        n: &Notification,
        payload: &str,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// A channel's own error, kept whole as the source of a [`Failure`] or [`BuildError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a send failed: the channel's error (its text is what the outbox records) and whether trying again can
/// help. Permanent failures (a recipient refusing the message itself) are not retried.
#[derive(Debug)]
pub struct Failure {
    pub error: BoxError,
    pub permanent: bool,
}

impl Failure {
    pub fn transient(error: impl Into<BoxError>) -> Self {
        Self {
            error: error.into(),
            permanent: false,
        }
    }
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self {
            error: error.into(),
            permanent: true,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

/// Transparent: the failure reads as its error, and the chain goes on with that error's source.
impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Why a channel could not be built from its settings.
#[derive(Debug, thiserror::Error)]
#[error("channel {channel}: {error}")]
pub struct BuildError {
    pub channel: String,
    #[source]
    pub error: BoxError,
}

/// A checked `[[alert.channel]]`.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Name routes refer to; outbox rows and the log carry it.
    pub name: String,
    pub kind: ChannelKind,
    /// Deadline of one delivery attempt.
    pub timeout: Duration,
}

/// The channel types: `"type" => Variant(module)`. Generates `pub mod module;` and a variant of [`ChannelSection`]
/// (the table), [`ChannelKind`] (checked settings) and [`Sender`], with their dispatch.
macro_rules! channel_types {
    ($($name:literal => $variant:ident($module:ident)),+ $(,)?) => {
        $(pub mod $module;)+

        /// One `[[alert.channel]]` table, decoded by its `type`.
        #[derive(Debug)]
        pub enum ChannelSection {
            $($variant($module::Section),)+
        }

        impl ChannelSection {
            /// Decode `table` as the struct its `type` names; problems go to `p` with their key path.
            pub fn decode(table: &toml::Table, p: &mut Problems, key: &str) -> Option<ChannelSection> {
                match table.get("type") {
                    $(Some(toml::Value::String(t)) if t == $name => {
                        decode_as::<$module::Section>(table, p, key).map(ChannelSection::$variant)
                    })+
                    Some(toml::Value::String(t)) => unknown_type(p, key, t),
                    Some(other) => unknown_type(p, key, other),
                    None => {
                        p.push(format!("{key}.type"), format!("missing; expected {}", ChannelKind::names()));
                        None
                    }
                }
            }
            pub fn name(&self) -> &str {
                match self {
                    $(ChannelSection::$variant(s) => Section::name(s),)+
                }
            }
            pub fn timeout(&self) -> &DurationText {
                match self {
                    $(ChannelSection::$variant(s) => Section::timeout(s),)+
                }
            }
            /// The type's own checks.
            pub fn check(&self, cx: &CheckContext<'_>, p: &mut Problems, key: &str) -> Option<ChannelKind> {
                match self {
                    $(ChannelSection::$variant(s) => s.check(cx, p, key).map(ChannelKind::$variant),)+
                }
            }
        }

        /// A checked channel's type and settings.
        #[derive(Debug, Clone)]
        pub enum ChannelKind {
            $($variant(<$module::Section as Section>::Settings),)+
        }

        impl ChannelKind {
            /// Every type's name, in declaration order (metrics labels).
            pub const TYPES: &'static [&'static str] = &[$($name),+];

            /// The `type` name (metrics label).
            pub fn as_str(&self) -> &'static str {
                Self::TYPES[self.index()]
            }

            /// Position in [`ChannelKind::TYPES`].
            pub fn index(&self) -> usize {
                // The variants' positions, as a fieldless enum's discriminants.
                enum Position {
                    $($variant,)+
                }
                match self {
                    $(ChannelKind::$variant(_) => Position::$variant as usize,)+
                }
            }
        }

        /// A built channel.
        // One per channel, built once at start: the size of the largest sender does not matter.
        #[allow(clippy::large_enum_variant)]
        pub enum Sender {
            $($variant(<<$module::Section as Section>::Settings as Settings>::Sender),)+
        }

        impl Sender {
            pub fn build(c: &Channel) -> Result<Sender, BuildError> {
                let built = match &c.kind {
                    $(ChannelKind::$variant(s) => s.build(c.timeout).map(Sender::$variant),)+
                };
                built.map_err(|error| BuildError {
                    channel: c.name.clone(),
                    error,
                })
            }

            /// Send one notification (see [`Deliver::send`]).
            pub async fn send(&self, delivery: i64, n: &Notification, payload: &str) -> Result<(), Failure> {
                match self {
                    $(Sender::$variant(s) => s.send(delivery, n, payload).await,)+
                }
            }
        }
    };
}

channel_types! {
    "email" => Email(email),
    "webhook" => Webhook(webhook),
    "mqtt" => Mqtt(mqtt),
    "log" => Log(log),
}

impl ChannelKind {
    /// Number of channel types.
    pub const COUNT: usize = Self::TYPES.len();

    /// `email, webhook, mqtt or log`.
    pub fn names() -> String {
        match Self::TYPES.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// Decode `table` (less its `type`) as `S`, naming the key of a problem.
fn decode_as<S: DeserializeOwned>(table: &toml::Table, p: &mut Problems, key: &str) -> Option<S> {
    let mut table = table.clone();
    table.remove("type");
    serde_path_to_error::deserialize(table)
        .map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                key.to_string()
            } else {
                format!("{key}.{path}")
            };
            p.push(at, e.into_inner().message());
        })
        .ok()
}

fn unknown_type(p: &mut Problems, key: &str, found: impl fmt::Debug) -> Option<ChannelSection> {
    p.push(
        format!("{key}.type"),
        format!(
            "unknown channel type {found:?}; expected {}",
            ChannelKind::names()
        ),
    );
    None
}

/// Default `timeout` of every channel type.
pub fn default_timeout() -> DurationText {
    DurationText::new("10s")
}

/// A required text key: present and not blank.
pub fn required(
    p: &mut Problems,
    key: &str,
    channel_type: &str,
    name: &str,
    v: &Option<String>,
) -> Option<String> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Some(s.to_string()),
        _ => {
            p.push(
                format!("{key}.{name}"),
                format!("{channel_type} channels need {name}"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::mqtt::PublishError;
    use super::{ChannelKind, Failure};

    #[test]
    fn a_failure_reads_as_its_error_and_keeps_the_chain() {
        let f = Failure::transient(PublishError::Connection {
            described: "the broker refused the client id".into(),
            error: rumqttc::ConnectionError::RequestsDone,
        });
        // The sentence the outbox records as last_error.
        assert_eq!(
            f.to_string(),
            "MQTT connection failed: the broker refused the client id"
        );
        let source = f.source().expect("the connection error");
        assert_eq!(
            source.to_string(),
            rumqttc::ConnectionError::RequestsDone.to_string()
        );
        let f = Failure::permanent(format!("payload not understood: {}", "eof"));
        assert!(f.permanent);
        assert_eq!(f.to_string(), "payload not understood: eof");
    }

    #[test]
    fn every_listed_type_decodes_by_its_name() {
        for t in ChannelKind::TYPES {
            let mut table = toml::Table::new();
            table.insert("name".into(), "x".into());
            table.insert("type".into(), (*t).into());
            let mut p = crate::config::Problems::new(std::path::Path::new("t.toml"));
            let section = super::ChannelSection::decode(&table, &mut p, "alert.channel[0]");
            assert!(section.is_some() && p.is_empty(), "{t}");
            assert!(ChannelKind::names().contains(t));
        }
    }
}
