//! `type = "mqtt"`: each notification on `<prefix>/<station>/alert` (QoS 1) and the alert as it stands, retained, on
//! `<prefix>/<station>/state/<kind>[/<parameter>]`, so a subscriber that connects later sees what is open. The
//! channel names an `[[mqtt.broker]]` and connects with that broker's host, credentials and TLS
//! ([`crate::mqtt`]).
//!
//! One short connection per delivery: alerts are rare, and waiting for both PUBACKs on a connection of its own is
//! the only way to know the broker has them (`publish().await` only means queued). The event loop is polled by its
//! own task; this task only publishes (never publish from the task that polls).

use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde::Deserialize;

use super::{BoxError, CheckContext, Deliver, Failure};
use crate::alert::message::Notification;
use crate::config::mqtt::Broker;
use crate::config::{DurationText, Problems};
use crate::mqtt::{describe_error, MqttError, Session};

/// The table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub name: String,
    /// `[[mqtt.broker]]` name (default: the only broker).
    pub broker: Option<String>,
    /// Topics are `<topic_prefix>/<station>/alert` and `<topic_prefix>/<station>/state/<kind>[/<parameter>]`.
    pub topic_prefix: Option<String>,
    #[serde(default = "super::default_timeout")]
    pub timeout: DurationText,
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The named broker's checked settings (host, port, credentials, TLS, keep-alive); boxed, being large.
    pub broker: Box<Broker>,
    pub topic_prefix: String,
}

/// Why a delivery did not reach the broker.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("MQTT client set-up failed: {0}")]
    Setup(#[source] MqttError),
    #[error("MQTT connection failed: {described}")]
    Connection {
        /// [`describe_error`]'s words for the operator.
        described: String,
        #[source]
        error: rumqttc::ConnectionError,
    },
    #[error(transparent)]
    Request(#[from] rumqttc::ClientError),
    #[error("MQTT connection closed")]
    Closed,
}

impl super::Section for Section {
    type Settings = Settings;

    fn name(&self) -> &str {
        &self.name
    }

    fn timeout(&self) -> &DurationText {
        &self.timeout
    }

    fn check(&self, cx: &CheckContext<'_>, p: &mut Problems, k: &str) -> Option<Settings> {
        let broker = cx
            .mqtt
            .broker_named(self.broker.as_deref(), p, &format!("{k}.broker"))
            .map(|b| Box::new(b.clone()));
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
        Some(Settings {
            broker: broker?,
            topic_prefix,
        })
    }
}

impl Settings {
    pub fn topics(&self, n: &Notification) -> (String, String) {
        let station = if n.station.is_empty() {
            "_daemon"
        } else {
            n.station.as_str()
        };
        let mut state = format!("{}/{station}/state/{}", self.topic_prefix, n.kind);
        if !n.parameter.is_empty() {
            state.push('/');
            state.push_str(&n.parameter);
        }
        (format!("{}/{station}/alert", self.topic_prefix), state)
    }
}

pub struct Sender(Settings);

impl super::Settings for Settings {
    type Sender = Sender;

    fn build(&self, _timeout: Duration) -> Result<Sender, BoxError> {
        Ok(Sender(self.clone()))
    }
}

impl Deliver for Sender {
    async fn send(&self, delivery: i64, n: &Notification, payload: &str) -> Result<(), Failure> {
        self.publish(delivery, n, payload)
            .await
            .map_err(Failure::transient)
    }
}

impl Sender {
    async fn publish(
        &self,
        delivery: i64,
        n: &Notification,
        payload: &str,
    ) -> Result<(), PublishError> {
        let client_id = format!("quantrac-alert-{}-{delivery}", std::process::id());
        let options = crate::mqtt::Client {
            broker: &self.0.broker,
            client_id: &client_id,
            session: Session::Clean,
            inflight: None,
        }
        .options()
        .map_err(PublishError::Setup)?;
        let (client, mut eventloop) = AsyncClient::new(options, 8);
        let (acks_tx, mut acks) = tokio::sync::mpsc::channel::<Result<(), PublishError>>(4);
        let poller = tokio::spawn(async move {
            loop {
                let r = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => Ok(()),
                    Ok(_) => continue,
                    Err(error) => Err(PublishError::Connection {
                        described: describe_error(&error),
                        error,
                    }),
                };
                let stop = r.is_err();
                if acks_tx.send(r).await.is_err() || stop {
                    return;
                }
            }
        });
        let (alert_topic, state_topic) = self.0.topics(n);
        let result = async {
            client
                .publish(
                    alert_topic,
                    QoS::AtLeastOnce,
                    false,
                    payload.as_bytes().to_vec(),
                )
                .await?;
            client
                .publish(
                    state_topic,
                    QoS::AtLeastOnce,
                    true,
                    payload.as_bytes().to_vec(),
                )
                .await?;
            for _ in 0..2 {
                match acks.recv().await {
                    Some(Ok(())) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Err(PublishError::Closed),
                }
            }
            Ok(())
        }
        .await;
        let _ = client.try_disconnect();
        // The poller ends on the disconnect; it must not outlive this attempt either way.
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while acks.recv().await.is_some() {}
        })
        .await;
        poller.abort();
        result
    }
}
