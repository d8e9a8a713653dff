//! The embedded MQTT broker (rumqttd), off by default (`[mqtt.embedded] enabled = true`): small sites point their
//! dataloggers straight at quantrac, and the demo's simulated stations publish through it.
//!
//! rumqttd runs its own threads and runtimes and has no shutdown: it lives as long as the process. Its config is
//! built here in code (no rumqttd config file to ship). It binds inside its own thread and only logs a bind error,
//! so `start` checks the address first and waits until the broker accepts connections.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};
use tracing::{error, info};

use crate::config::mqtt::MAX_PACKET_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded MQTT broker: {0:?} is not an ip:port address (mqtt.embedded.listen)")]
    Address(String),
    #[error("embedded MQTT broker cannot listen on {addr} (mqtt.embedded.listen): {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("embedded MQTT broker did not start listening on {0} within 5 s")]
    NotListening(SocketAddr),
    #[error("embedded MQTT broker thread could not start: {0}")]
    Thread(std::io::Error),
}

/// The rumqttd configuration: one MQTT 3.1.1 listener, persistent sessions, payloads up to the client's limit.
pub fn config(listen: SocketAddr) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PACKET_BYTES,
        // QoS 1 messages outstanding per subscriber: quantrac acks only after the commit, so the window sets the
        // throughput (one group commit covers a window).
        max_inflight_count: 1000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 1000,
            max_segment_size: 2 * MAX_PACKET_BYTES,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("v4".to_string(), server)])),
        ..Default::default()
    }
}

/// Start the embedded broker on `listen` and wait until it accepts connections.
pub fn start(listen: &str) -> Result<SocketAddr, BrokerError> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| BrokerError::Address(listen.to_string()))?;
    // rumqttd only logs a failed bind from its own thread; find out here, where it can stop the daemon.
    drop(TcpListener::bind(addr).map_err(|error| BrokerError::Bind { addr, error })?);
    let config = config(addr);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                error!(error = %e, "Embedded MQTT broker stopped; stations publishing to it cannot deliver.");
            }
        })
        .map_err(BrokerError::Thread)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if probe(addr).is_ok() {
            info!(listen = %addr, "Embedded MQTT broker listening.");
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening(addr))
}

/// One MQTT CONNECT / CONNACK / DISCONNECT exchange (a bare TCP probe makes rumqttd log an error).
fn probe(addr: SocketAddr) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let id = b"quantrac-probe";
    let mut connect = vec![
        0x10,
        (12 + id.len()) as u8,
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        0x02,
        0,
        10,
    ];
    connect.extend_from_slice(&[0, id.len() as u8]);
    connect.extend_from_slice(id);
    s.write_all(&connect)?;
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack)?;
    s.write_all(&[0xE0, 0])?;
    if connack[0] == 0x20 && connack[3] == 0 {
        Ok(())
    } else {
        Err(std::io::Error::other(
            "the broker refused the probe connection",
        ))
    }
}
