//! MQTT: each notification on `<prefix>/<station>/alert` (QoS 1) and the alert as it stands, retained, on
//! `<prefix>/<station>/state/<kind>[/<parameter>]`, so a subscriber that connects later sees what is open.
//!
//! One short connection per delivery: alerts are rare, and waiting for both PUBACKs on a connection of its own is
//! the only way to know the broker has them (`publish().await` only means queued). The event loop is polled by its
//! own task; this task only publishes (never publish from the task that polls).

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::alert::message::Notification;
use crate::config::Secret;

pub struct Mqtt {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, Secret)>,
    pub topic_prefix: String,
}

impl Mqtt {
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

    pub async fn send(&self, delivery: i64, n: &Notification, payload: &str) -> Result<(), String> {
        let mut o = MqttOptions::new(
            format!("quantrac-alert-{}-{delivery}", std::process::id()),
            self.host.clone(),
            self.port,
        );
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_session(true);
        if let Some((u, p)) = &self.credentials {
            o.set_credentials(u.clone(), p.expose().to_string());
        }
        let (client, mut eventloop) = AsyncClient::new(o, 8);
        let (acks_tx, mut acks) = tokio::sync::mpsc::channel::<Result<(), String>>(4);
        let poller = tokio::spawn(async move {
            loop {
                let r = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => Ok(()),
                    Ok(_) => continue,
                    Err(e) => Err(format!(
                        "MQTT connection failed: {}",
                        crate::mqtt::describe_error(&e)
                    )),
                };
                let stop = r.is_err();
                if acks_tx.send(r).await.is_err() || stop {
                    return;
                }
            }
        });
        let (alert_topic, state_topic) = self.topics(n);
        let result = async {
            client
                .publish(
                    alert_topic,
                    QoS::AtLeastOnce,
                    false,
                    payload.as_bytes().to_vec(),
                )
                .await
                .map_err(|e| e.to_string())?;
            client
                .publish(
                    state_topic,
                    QoS::AtLeastOnce,
                    true,
                    payload.as_bytes().to_vec(),
                )
                .await
                .map_err(|e| e.to_string())?;
            for _ in 0..2 {
                match acks.recv().await {
                    Some(Ok(())) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Err("MQTT connection closed".into()),
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
