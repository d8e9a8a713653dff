//! MQTT source (issue 5): subscribes to brokers, turns messages into readings and acks each message only after
//! its readings are committed to the ledger (or, for bad input, to quarantine).
//!
//! - [`subscriber`]: connection, event loop, reconnect backoff, in-order acks after commit.
//! - [`payload`]: pure JSON / TT10 payload parsing and encoding.
//! - [`topic`]: topic templates → subscription filters and topic → station.
//! - [`broker`]: the embedded broker (rumqttd), off by default.

pub mod broker;
pub mod payload;
pub mod subscriber;
pub mod topic;

pub use subscriber::{SubscribeError, Subscriber};

use super::SourceContext;
use crate::config::Config;

/// A broker connection error as an operator needs it: a refused login or client id says what to check. Used by the
/// subscriber (log and health) and the alert channel (delivery attempts).
pub fn describe_error(e: &rumqttc::ConnectionError) -> String {
    use rumqttc::ConnectReturnCode::{BadClientId, BadUserNamePassword, NotAuthorized};
    match e {
        rumqttc::ConnectionError::ConnectionRefused(code @ (BadUserNamePassword | NotAuthorized)) => format!(
            "the broker refused the login ({code:?}): check username and password (or password_file), and the \
             broker's password file and ACL"
        ),
        rumqttc::ConnectionError::ConnectionRefused(code @ BadClientId) => {
            format!("the broker refused the client id ({code:?}): check client_id")
        }
        other => other.to_string(),
    }
}

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

#[cfg(test)]
mod tests {
    use rumqttc::{ConnectReturnCode, ConnectionError};

    #[test]
    fn refused_logins_say_what_to_check() {
        for code in [
            ConnectReturnCode::NotAuthorized,
            ConnectReturnCode::BadUserNamePassword,
        ] {
            let text = super::describe_error(&ConnectionError::ConnectionRefused(code));
            assert!(text.starts_with("the broker refused the login"), "{text}");
            assert!(text.contains("check username and password"), "{text}");
        }
        let text = super::describe_error(&ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadClientId,
        ));
        assert!(text.contains("check client_id"), "{text}");
        let other = ConnectionError::ConnectionRefused(ConnectReturnCode::ServiceUnavailable);
        assert_eq!(super::describe_error(&other), other.to_string());
    }
}
