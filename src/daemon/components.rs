//! The components one configuration runs — simulators, sources and sinks — each built from its slice of the
//! config and started the same way. A reload restarts only the components whose slice changed (compared by
//! [`fingerprint`], which sees secrets as hashes), as Vector's config diff does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::compliance::StationLimits;
use crate::config::forward::Influx;
use crate::config::transmit::Target;
use crate::config::{fingerprint, Config, Station};
use crate::forward::SinkContext;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::model::StationId;
use crate::pipeline::Ingest;
use crate::sim::Simulator;
use crate::source::mqtt::Subscriber;
use crate::source::tt10::Landing;
use crate::source::SourceContext;

/// One component, built from its config slice.
pub(super) enum Component {
    Sim(Simulator),
    Modbus(Box<Station>),
    /// With the fingerprint of what it was built from (the built subscriber holds hash maps, whose text order varies).
    Mqtt(Box<Subscriber>, String),
    Tt10(Landing, String),
    Influx(Influx),
    /// A Circular 10 transmission target (`[[forward.tt10]]`).
    Tt10Send(Box<Target>),
}

/// Everything `config` runs, simulators first (a simulated Modbus device listens before its poller connects).
/// `previous`: the configuration that ran before a reload (MQTT drops the subscriptions it no longer needs).
pub(super) fn plan(
    config: &Config,
    previous: Option<&Config>,
    limits: &HashMap<StationId, StationLimits>,
) -> Vec<Component> {
    let sims = crate::sim::plan(config, limits)
        .into_iter()
        .map(Component::Sim);
    let modbus = config
        .stations
        .iter()
        .filter(|s| s.modbus.is_some())
        .map(|s| Component::Modbus(Box::new(s.clone())));
    let mqtt = crate::source::mqtt::subscribers(config, previous)
        .into_iter()
        .map(|s| {
            let slice = fingerprint(&(&s.broker, station_slice(config), config.timezone));
            Component::Mqtt(Box::new(s), slice)
        });
    let tt10 = crate::source::tt10::landings(config).into_iter().map(|l| {
        let slice = fingerprint(&(
            &config.tt10,
            &l.root,
            station_slice(config),
            config.timezone,
            &config.ledger.path,
        ));
        Component::Tt10(l, slice)
    });
    let sinks = config.influx.iter().cloned().map(Component::Influx);
    let transmit = config
        .transmit
        .iter()
        .map(|t| Component::Tt10Send(Box::new(t.clone())));
    sims.chain(modbus)
        .chain(mqtt)
        .chain(tt10)
        .chain(sinks)
        .chain(transmit)
        .collect()
}

/// What subscribers and landing folders read of the stations: ids, sources, parameters and units.
fn station_slice(config: &Config) -> Vec<String> {
    config
        .stations
        .iter()
        .map(|s| {
            let units: Vec<_> = s
                .parameters
                .iter()
                .map(|p| (&p.parameter, &p.unit))
                .collect();
            let other = (s.modbus.is_some(), s.sim.is_some());
            format!("{} {:?} {units:?} {other:?}", s.id, s.mqtt)
        })
        .collect()
}

impl Component {
    /// Unique among the components of one configuration.
    fn name(&self) -> String {
        match self {
            Component::Sim(s) => s.name(),
            Component::Modbus(s) => format!("modbus {}", s.id),
            Component::Mqtt(s, _) => s.health_key(),
            Component::Tt10(l, _) => l.health_key(),
            Component::Influx(t) => crate::forward::influx::health_key(&t.name),
            Component::Tt10Send(t) => crate::forward::tt10::health_key(&t.name),
        }
    }

    /// The config slice as a reload compares it.
    fn fingerprint(&self) -> String {
        match self {
            Component::Sim(s) => fingerprint(s),
            // What a poller reads: the station's Modbus settings, its parameters' units and its interval (limits are
            // the pipeline's, which a reload switches without restarting anything).
            Component::Modbus(s) => {
                let units: Vec<_> = s
                    .parameters
                    .iter()
                    .map(|p| (&p.parameter, &p.unit))
                    .collect();
                fingerprint(&(&s.id, &s.modbus, units, s.interval))
            }
            Component::Mqtt(_, slice) | Component::Tt10(_, slice) => slice.clone(),
            Component::Influx(t) => fingerprint(t),
            Component::Tt10Send(t) => fingerprint(t),
        }
    }

    /// The health entry the component keeps, removed when it stops for good.
    fn health_key(&self) -> Option<String> {
        match self {
            Component::Sim(_) => None,
            Component::Modbus(s) => Some(crate::source::modbus::health_key(&s.id)),
            _ => Some(self.name()),
        }
    }

    async fn start(self, shared: &Shared, stop: CancellationToken) -> JoinHandle<()> {
        let source = || SourceContext {
            config: (),
            ingest: shared.ingest.clone(),
            health: shared.health.clone(),
            metrics: shared.metrics.clone(),
            shutdown: stop.clone(),
        };
        match self {
            Component::Sim(s) => tokio::spawn(s.start(source()).await),
            Component::Modbus(s) => tokio::spawn(crate::source::modbus::run(source().with(*s))),
            Component::Mqtt(s, _) => tokio::spawn(crate::source::mqtt::run(source().with(*s))),
            Component::Tt10(l, _) => tokio::spawn(crate::source::tt10::run(source().with(l))),
            Component::Influx(t) => tokio::spawn(crate::forward::run_influx(SinkContext {
                config: t,
                ledger: shared.ledger.clone(),
                health: shared.health.clone(),
                shutdown: stop,
            })),
            Component::Tt10Send(t) => tokio::spawn(crate::forward::run_tt10(SinkContext {
                config: *t,
                ledger: shared.ledger.clone(),
                health: shared.health.clone(),
                shutdown: stop,
            })),
        }
    }
}

/// What every component of the daemon shares.
pub(super) struct Shared {
    pub ingest: Ingest,
    pub health: Health,
    pub metrics: Arc<Metrics>,
    pub ledger: std::path::PathBuf,
    pub shutdown: CancellationToken,
}

struct Started {
    fingerprint: String,
    health_key: Option<String>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Started {
    /// Stop and wait until what it held is committed (sources) or its cursor saved (sinks).
    async fn stop(self, health: &Health) {
        self.stop.cancel();
        let _ = self.task.await;
        if let Some(key) = self.health_key {
            health.remove(&key);
        }
    }
}

/// The running components, by name.
pub(super) struct Running {
    shared: Shared,
    started: BTreeMap<String, Started>,
}

impl Running {
    pub fn new(shared: Shared) -> Running {
        Running {
            shared,
            started: BTreeMap::new(),
        }
    }

    /// Stop the components that `next` no longer has or has with another slice. Returns how many stopped.
    pub async fn stop_changed(&mut self, next: &[Component]) -> usize {
        let wanted: HashMap<String, String> =
            next.iter().map(|c| (c.name(), c.fingerprint())).collect();
        let stale: Vec<String> = self
            .started
            .iter()
            .filter(|(name, s)| wanted.get(*name) != Some(&s.fingerprint))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &stale {
            if let Some(s) = self.started.remove(name) {
                info!(component = %name, "Stopping (its configuration changed or was removed).");
                s.stop(&self.shared.health).await;
            }
        }
        stale.len()
    }

    /// Start the components of `plan` that are not running, in order. Returns how many started.
    pub async fn start_missing(&mut self, plan: Vec<Component>) -> usize {
        let mut n = 0;
        for c in plan {
            let name = c.name();
            if self.started.contains_key(&name) {
                continue;
            }
            let (fingerprint, health_key) = (c.fingerprint(), c.health_key());
            let stop = self.shared.shutdown.child_token();
            let task = c.start(&self.shared, stop.clone()).await;
            self.started.insert(
                name,
                Started {
                    fingerprint,
                    health_key,
                    stop,
                    task,
                },
            );
            n += 1;
        }
        n
    }

    /// Stop every component and wait until each has committed what it holds.
    pub async fn stop_all(self) {
        // Cancel all first so they wind down together, then wait for each.
        for s in self.started.values() {
            s.stop.cancel();
        }
        for (_, s) in self.started {
            let _ = s.task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(cod_limit: u32, password: &str, poll: &str) -> Config {
        let station = |id: &str, port: u16, extra: &str| {
            format!(
                "[[station]]\nid = \"{id}\"\nname = \"{id}\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 100\n\
                 receiving_water = {{ type = \"river\" }}\nparameters = {{ COD = {{ {extra} }} }}\n\
                 [station.modbus]\naddress = \"127.0.0.1:{port}\"\npoll_interval = \"{poll}\"\n\
                 registers = [ {{ parameter = \"COD\", address = 0, type = \"f32\" }} ]\n"
            )
        };
        let text = format!(
            "[[mqtt.broker]]\nname = \"province\"\nhost = \"127.0.0.1\"\nclient_id = \"q\"\nusername = \"u\"\n\
             password = \"{password}\"\ntopics = [\"bn/{{station}}/data\"]\n\
             [[forward.influx]]\nname = \"vm\"\nurl = \"http://127.0.0.1:8428\"\nbucket = \"b\"\n\n{}\n{}",
            station("BN_A_N1", 15020, &format!("limit = {cod_limit}")),
            station("BN_B_N1", 15021, ""),
        );
        Config::from_str(&text, Path::new("q.toml"), Path::new(".")).unwrap()
    }

    fn fingerprints(c: &Config) -> BTreeMap<String, String> {
        plan(c, None, &HashMap::new())
            .iter()
            .map(|c| (c.name(), c.fingerprint()))
            .collect()
    }

    /// Which components a reload from `old` to `new` restarts.
    fn restarted(old: &Config, new: &Config) -> Vec<String> {
        let (a, b) = (fingerprints(old), fingerprints(new));
        b.iter()
            .filter(|(name, f)| a.get(*name) != Some(*f))
            .map(|(name, _)| name.clone())
            .collect()
    }

    #[test]
    fn a_reload_restarts_only_the_components_whose_settings_changed() {
        let old = config(100, "s3cr3t-1", "5m");
        let names: Vec<String> = fingerprints(&old).into_keys().collect();
        assert_eq!(
            names,
            [
                "influx vm",
                "modbus BN_A_N1",
                "modbus BN_B_N1",
                "mqtt province"
            ]
        );
        assert!(restarted(&old, &config(100, "s3cr3t-1", "5m")).is_empty());
        // A limit is the pipeline's: no source restarts.
        assert!(restarted(&old, &config(50, "s3cr3t-1", "5m")).is_empty());
        // A secret is compared by its hash, never shown: a new password restarts the broker's subscriber only.
        assert_eq!(
            restarted(&old, &config(100, "s3cr3t-2", "5m")),
            ["mqtt province"]
        );
        assert!(!fingerprints(&old)["mqtt province"].contains("s3cr3t"));
        // Polling settings of every station.
        assert_eq!(
            restarted(&old, &config(100, "s3cr3t-1", "1m")),
            ["modbus BN_A_N1", "modbus BN_B_N1"]
        );
    }
}
