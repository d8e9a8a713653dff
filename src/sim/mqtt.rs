//! MQTT transport for simulated stations (`sim.via = "mqtt"`): each station publishes its readings at QoS 1 to its
//! topic on a broker (the embedded one in the demo), in the broker's JSON mapping, as a real datalogger would.
//!
//! It owns one publishing client. Like the subscriber, it never publishes from the task that polls its event loop.

use std::time::Duration;

use chrono::FixedOffset;
use rumqttc::{AsyncClient, Event, MqttOptions, QoS};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::StationSim;
use crate::config::mqtt::JsonMappingSection;
use crate::health::Backoff;
use crate::model::Timestamp;
use crate::source::mqtt::payload;

/// Where simulated stations publish.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub mapping: JsonMappingSection,
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
    let mut options = MqttOptions::new(target.client_id.clone(), target.host.clone(), target.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let poller = shutdown.clone();
    tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = poller.cancelled() => return,
                e = eventloop.poll() => match e {
                    Ok(Event::Incoming(rumqttc::Packet::ConnAck(_))) => backoff.reset(),
                    Ok(_) => {}
                    Err(e) => {
                        let delay = backoff.next_delay();
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
                payload::encode_json(&target.mapping, &sim.sample(t, stamp), target.tz)
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
        broker = %format!("{}:{}", target.host, target.port),
        "Simulated MQTT stations published their history; now live."
    );
    let mut clock = super::LiveClock::new(interval, speed);
    while let Some((sim_t, stamp)) = clock.next(&shutdown).await {
        if !publish(sim_t, stamp).await {
            return;
        }
    }
}
