//! MQTT source (issue 5): subscribes to brokers, turns messages into readings and acks each message only after
//! its readings are committed to the ledger (or, for bad input, to quarantine).
//!
//! - [`subscriber`]: connection (options from [`crate::mqtt`]), event loop, in-order acks after commit.
//! - [`payload`]: pure payload formats (one file per format: JSON, TT10), parsing and encoding.
//! - [`topic`]: topic templates → subscription filters and topic → station.
//! - [`broker`]: the embedded broker (rumqttd), off by default.
//! - [`bench`]: `quantrac bench mqtt`.

pub mod bench;
pub mod broker;
pub mod payload;
pub mod subscriber;
pub mod topic;

pub use subscriber::{run, Subscriber};

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::compliance::StationLimits;
use crate::config::Config;
use crate::health::Health;
use crate::model::StationId;
use crate::pipeline::Ingest;

/// Start the embedded broker if `[mqtt.embedded]` asks for it. It runs for the life of the process (a reload
/// does not restart it).
pub fn start_embedded(config: &Config) -> Result<(), broker::BrokerError> {
    if let Some(listen) = &config.mqtt.embedded {
        broker::start(listen)?;
    }
    Ok(())
}

/// Start the MQTT sources `[mqtt]` asks for: one subscriber per `[[mqtt.broker]]`, and (with the simulator on) the
/// stations with `sim.via = "mqtt"` publishing to the embedded broker, or else the first broker. The embedded broker
/// itself is [`start_embedded`]'s. After a reload, `previous` is the configuration the sources ran on: filters it
/// subscribed to that this one drops are unsubscribed (a persistent session keeps them otherwise).
pub fn spawn(
    config: &Config,
    previous: Option<&Config>,
    limits: &HashMap<StationId, StationLimits>,
    ingest: &Ingest,
    health: &Health,
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) {
    for b in &config.mqtt.brokers {
        let mut sub = Subscriber::new(config, b);
        if let Some((prev, old)) = previous.and_then(|p| {
            p.mqtt
                .brokers
                .iter()
                .find(|o| o.name == b.name)
                .map(|o| (p, o))
        }) {
            let new = sub.router.filters(b.share_group.as_deref());
            sub.stale_filters = Subscriber::new(prev, old)
                .router
                .filters(old.share_group.as_deref())
                .into_iter()
                .filter(|f| !new.contains(f))
                .collect();
        }
        tasks.spawn(run(sub, ingest.clone(), health.clone(), shutdown.clone()));
    }
    let via_mqtt: Vec<_> = config
        .stations
        .iter()
        .filter(|s| s.sim.as_ref().is_some_and(|x| x.via == "mqtt"))
        .collect();
    if !config.sim.enabled || via_mqtt.is_empty() {
        return;
    }
    let target_broker = config
        .mqtt
        .brokers
        .iter()
        .find(|b| b.name == "embedded" && config.mqtt.embedded.is_some())
        .or(config.mqtt.brokers.first());
    let Some(target) = target_broker else {
        tracing::warn!(
            "Stations with sim.via = \"mqtt\" need a broker: add [mqtt.embedded] or an [[mqtt.broker]]."
        );
        return;
    };
    let template = target
        .topics
        .iter()
        .find(|t| t.contains("{station}") && !t.contains(['+', '#']))
        .cloned()
        .unwrap_or_else(|| "stations/{station}/data".into());
    let sims = via_mqtt
        .iter()
        .map(|s| {
            let topic = s
                .mqtt
                .as_ref()
                .map(|m| m.topic.clone())
                .unwrap_or_else(|| template.replace("{station}", s.id.as_str()));
            let sim = crate::sim::StationSim::new(
                s,
                limits.get(&s.id).unwrap_or(&StationLimits::default()),
                config.sim.seed,
            );
            (sim, topic)
        })
        .collect();
    let interval = via_mqtt
        .iter()
        .map(|s| s.interval)
        .min()
        .unwrap_or(Duration::from_secs(300));
    tasks.spawn(crate::sim::mqtt::run(
        sims,
        crate::sim::mqtt::Target {
            broker: target.clone(),
            tz: config.timezone,
        },
        interval,
        config.sim.speed,
        Duration::from_secs(24 * 3600),
        shutdown.clone(),
    ));
}
