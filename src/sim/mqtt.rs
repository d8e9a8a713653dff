//! MQTT transport for simulated stations (`sim.via = "mqtt"`): each station publishes its readings at QoS 1 to its
//! topic on a broker (the embedded one in the demo), in the broker's JSON mapping, as a real datalogger would.
//!
//! It owns one publishing client, set up by [`crate::mqtt`] from the target broker's `[[mqtt.broker]]` (so it gets
//! that broker's credentials and TLS). Like the subscriber, it never publishes from the task that polls its event
//! loop.

use std::time::Duration;

use chrono::FixedOffset;
use rumqttc::{AsyncClient, Event, QoS};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::StationSim;
use crate::config::mqtt::Broker;
use crate::model::Timestamp;
use crate::mqtt::{Reconnect, Session};
use crate::source::mqtt::payload;

/// Where simulated stations publish: a configured broker (its JSON mapping shapes the payloads), as client
/// `<client_id>-sim`.
#[derive(Debug, Clone)]
pub struct Target {
    pub broker: Broker,
    pub tz: FixedOffset,
}

/// Publish `backfill` of history, then live readings every `interval / speed` of wall time until `shutdown`.
/// `stations` pairs each simulated station with its topic.
pub async fn run(
    stations: Vec<(StationSim, String)>,
    target: Target,
    interval: Duration,
    speed: u32,
    backfill: Duration,
    shutdown: CancellationToken,
) {
    if stations.is_empty() {
        return;
    }
    let client_id = format!("{}-sim", target.broker.client_id);
    let client = crate::mqtt::Client {
        broker: &target.broker,
        client_id: &client_id,
        session: Session::Persistent,
        inflight: Some(100),
    };
    let options = match client.options() {
        Ok(o) => o,
        Err(e) => {
            error!(broker = %target.broker.name, error = %e, "Simulated MQTT stations cannot set up their client; they stay silent.");
            return;
        }
    };
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let poller = shutdown.clone();
    tokio::spawn(async move {
        let mut reconnect = Reconnect::new(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = poller.cancelled() => return,
                e = eventloop.poll() => match e {
                    Ok(Event::Incoming(rumqttc::Packet::ConnAck(_))) => reconnect.connected(),
                    Ok(_) => {}
                    Err(e) => {
                        let delay = reconnect.failed();
                        warn!(error = %e, retry_in = ?delay, "Simulated stations cannot reach the MQTT broker, reconnecting.");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
    });
    let publish = |t: Timestamp, stamp: Timestamp| {
        let client = client.clone();
        let messages: Vec<(String, Vec<u8>)> = stations
            .iter()
            .flat_map(|(sim, topic)| {
                payload::encode_json(&target.broker.json, &sim.sample(t, stamp), target.tz)
                    .into_iter()
                    .map(|m| (topic.clone(), m))
            })
            .collect();
        async move {
            for (topic, m) in messages {
                // Queued, not delivered: rumqttc retransmits unacked QoS 1 publishes after a reconnect.
                if client
                    .publish(topic, QoS::AtLeastOnce, false, m)
                    .await
                    .is_err()
                {
                    return false;
                }
            }
            true
        }
    };
    let step = interval.as_millis().max(1) as i64;
    let now = Timestamp::now().0;
    let mut t = (now - backfill.as_millis() as i64).div_euclid(step) * step;
    while t < now && !shutdown.is_cancelled() {
        if !publish(Timestamp(t), Timestamp(t)).await {
            return;
        }
        t += step;
    }
    info!(
        stations = stations.len(),
        broker = %format!("{}:{}", target.broker.host, target.broker.port),
        "Simulated MQTT stations published their history; now live."
    );
    let mut clock = super::LiveClock::new(interval, speed);
    while let Some((sim_t, stamp)) = clock.next(&shutdown).await {
        if !publish(sim_t, stamp).await {
            return;
        }
    }
}
