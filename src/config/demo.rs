//! The demo's configuration: the embedded `config/demo.toml` with the ledger and the ports a command line gives.
//! Shared by `quantrac demo` and the commands that read its ledger (`export --demo`, `report --demo`), so both
//! resolve the same ledger path: relative to the current folder, where the demo writes it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::modbus::Transport;
use super::{Config, ConfigError};

/// The demo configuration, embedded so `quantrac demo` runs from anywhere.
pub const DEMO_TOML: &str = include_str!("../../config/demo.toml");

/// The demo's ledger file when none is given, in the current folder.
pub const DEMO_LEDGER: &str = "quantrac-demo.db";

/// Where the demo listens; `None` keeps the port written in `config/demo.toml`.
#[derive(Debug, Clone, Default)]
pub struct DemoPorts {
    /// Dashboard and API.
    pub http: Option<SocketAddr>,
    /// The embedded MQTT broker (the four MQTT stations publish to it, quantrac subscribes to it).
    pub mqtt: Option<u16>,
    /// The first of the simulated Modbus devices' ports; the others follow it in the file's order.
    pub modbus: Option<u16>,
}

/// The embedded demo config with its ledger at `ledger` (relative paths against `base`, the current folder) and the
/// given ports.
pub fn demo_config(ledger: &Path, base: &Path, ports: &DemoPorts) -> Result<Config, ConfigError> {
    let mut c = Config::from_str(DEMO_TOML, Path::new("<embedded config/demo.toml>"), base)?;
    c.ledger.path = base.join(ledger);
    if let Some(http) = ports.http {
        c.http.listen = http;
        c.http.public_url = format!("http://{http}");
    }
    if let Some(port) = ports.mqtt {
        move_broker(&mut c, port);
    }
    if let Some(first) = ports.modbus {
        move_modbus(&mut c, first);
    }
    Ok(c)
}

/// The demo's ledger path for `--ledger` (default [`DEMO_LEDGER`]) against the current folder.
pub fn demo_ledger(ledger: Option<&Path>, base: &Path) -> PathBuf {
    base.join(ledger.unwrap_or(Path::new(DEMO_LEDGER)))
}

fn with_port(address: &str, port: u16) -> String {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    format!("{host}:{port}")
}

/// The embedded broker listens on `port`, and the `embedded` broker entry connects there.
fn move_broker(c: &mut Config, port: u16) {
    if let Some(listen) = &mut c.mqtt.embedded {
        *listen = with_port(listen, port);
    }
    for b in c.mqtt.brokers.iter_mut().filter(|b| b.name == "embedded") {
        b.port = port;
    }
}

/// The Modbus stations' devices (simulated on loopback) on `first`, `first + 1`, … in the file's order.
fn move_modbus(c: &mut Config, first: u16) {
    let addresses = c.stations.iter_mut().filter_map(|s| {
        s.modbus.as_mut().and_then(|m| match &mut m.transport {
            Transport::Tcp { address } | Transport::RtuOverTcp { address } => Some(address),
            Transport::Rtu { .. } => None,
        })
    });
    for (i, address) in addresses.enumerate() {
        *address = with_port(address, first.saturating_add(i as u16));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_ports_reach_every_listener_and_client() {
        let base = Path::new("/tmp/demo-b");
        let ports = DemoPorts {
            http: Some("127.0.0.1:9090".parse().unwrap()),
            mqtt: Some(28830),
            modbus: Some(25020),
        };
        let c = demo_config(Path::new("b.db"), base, &ports).unwrap();
        assert_eq!(c.ledger.path, base.join("b.db"));
        assert_eq!(c.http.listen.port(), 9090);
        assert_eq!(c.http.public_url, "http://127.0.0.1:9090");
        assert_eq!(c.mqtt.embedded.as_deref(), Some("127.0.0.1:28830"));
        let embedded = c.mqtt.brokers.iter().find(|b| b.name == "embedded");
        assert_eq!(embedded.map(|b| b.port), Some(28830));
        let modbus: Vec<String> = c
            .stations
            .iter()
            .filter_map(|s| s.modbus.as_ref())
            .map(|m| m.describe())
            .collect();
        assert_eq!(modbus.len(), 4);
        for (i, m) in modbus.iter().enumerate() {
            assert!(m.contains(&format!("127.0.0.1:{}", 25020 + i)), "{m}");
        }
    }

    #[test]
    fn the_default_ledger_is_in_the_current_folder() {
        let base = Path::new("/srv/x");
        assert_eq!(demo_ledger(None, base), base.join(DEMO_LEDGER));
        let c = demo_config(&demo_ledger(None, base), base, &DemoPorts::default()).unwrap();
        assert_eq!(c.ledger.path, base.join(DEMO_LEDGER));
        assert_eq!(c.mqtt.embedded.as_deref(), Some("127.0.0.1:18830"));
    }
}
