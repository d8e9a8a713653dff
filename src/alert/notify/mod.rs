//! Notification channels. Each sends one notification (the outbox row's JSON) and says whether it arrived; the
//! outbox decides about retries. Every call runs under the channel's timeout.

pub mod email;
pub mod mqtt;
pub mod webhook;

use super::message::Notification;
use crate::config::alert::{Channel, ChannelKind};

/// Why a send failed. Permanent failures (a recipient refusing the message itself) are not retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub permanent: bool,
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why a channel could not be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("channel {channel}: {message}")]
    Build { channel: String, message: String },
}

/// A built channel.
pub enum Sender {
    Email(email::Email),
    Webhook(webhook::Webhook),
    Mqtt(mqtt::Mqtt),
    Log,
}

impl Sender {
    pub fn build(c: &Channel) -> Result<Sender, NotifyError> {
        let err = |message: String| NotifyError::Build {
            channel: c.name.clone(),
            message,
        };
        Ok(match &c.kind {
            ChannelKind::Email { .. } => Sender::Email(email::Email::build(c).map_err(err)?),
            ChannelKind::Webhook { url, secret } => Sender::Webhook(
                webhook::Webhook::build(url, secret.clone(), c.timeout).map_err(err)?,
            ),
            ChannelKind::Mqtt {
                host,
                port,
                credentials,
                topic_prefix,
            } => Sender::Mqtt(mqtt::Mqtt {
                host: host.clone(),
                port: *port,
                credentials: credentials.clone(),
                topic_prefix: topic_prefix.clone(),
            }),
            ChannelKind::Log => Sender::Log,
        })
    }

    /// Send one notification. `payload` is its JSON as stored; `delivery` the outbox row id (receivers can use it
    /// to drop a redelivery).
    pub async fn send(
        &self,
        delivery: i64,
        n: &Notification,
        payload: &str,
    ) -> Result<(), Failure> {
        match self {
            Sender::Email(e) => e.send(n).await,
            Sender::Webhook(w) => w.send(delivery, &n.change, payload).await,
            Sender::Mqtt(m) => m
                .send(delivery, n, payload)
                .await
                .map_err(Failure::transient),
            Sender::Log => {
                if n.change == "cleared" {
                    tracing::info!(alert = n.alert_id, station = %n.station, parameter = %n.parameter, kind = %n.kind, change = %n.change, "{} | {}", n.subject_vi, n.subject_en);
                } else {
                    tracing::warn!(alert = n.alert_id, station = %n.station, parameter = %n.parameter, kind = %n.kind, change = %n.change,
                        value = ?n.value, limit = ?n.limit_high, multiple = ?n.multiple, band = %n.band, dashboard = %n.dashboard,
                        "{} | {}", n.subject_vi, n.subject_en);
                }
                Ok(())
            }
        }
    }
}
