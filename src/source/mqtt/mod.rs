//! MQTT source (issue 5): subscribes to brokers, turns messages into readings and acks each message only after
//! its readings are committed to the ledger (or, for bad input, to quarantine).
//!
//! - [`subscriber`]: connection (options from [`crate::mqtt`]), event loop, in-order acks after commit.
//! - [`payload`]: pure payload formats (one file per format: JSON, TT10), parsing and encoding.
//! - [`topic`]: topic templates → subscription filters and topic → station.
//! - [`broker`]: the embedded broker (rumqttd), off by default.

mod acks;
pub mod broker;
pub mod payload;
pub mod subscriber;
pub mod topic;

pub use subscriber::Subscriber;

use super::SourceContext;
use crate::config::Config;

/// Start the embedded broker if `[mqtt.embedded]` asks for it. It runs for the life of the process (a reload
/// does not restart it).
pub fn start_embedded(config: &Config) -> Result<(), broker::BrokerError> {
    if let Some(listen) = &config.mqtt.embedded {
        broker::start(listen)?;
    }
    Ok(())
}

/// One subscriber per `[[mqtt.broker]]`. After a reload, `previous` is the configuration the sources ran on:
/// filters a broker's subscriber subscribed to that this one drops are unsubscribed (a persistent session keeps
/// them otherwise). The simulated stations that publish over MQTT are the simulator's (`sim`).
pub fn subscribers(config: &Config, previous: Option<&Config>) -> Vec<Subscriber> {
    config
        .mqtt
        .brokers
        .iter()
        .map(|b| {
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
            sub
        })
        .collect()
}

/// Subscribe to one broker until stopped; returns once every committed message is acked.
pub async fn run(ctx: SourceContext<Subscriber>) {
    subscriber::run(ctx.config, ctx.ingest, ctx.health, ctx.shutdown).await
}
