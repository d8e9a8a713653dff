//! Simulated stations for the demo, training and tests: realistic values (diurnal pattern, noise, calibration
//! periods, one plant drifting over its limit) generated purely from (station, parameter, time), plus the
//! transports that carry them to quantrac.
//!
//! [`plan`] is the one place that decides which simulators a configuration runs (one per transport in use); the
//! daemon starts them as components like the sources.

mod clock;
pub mod direct;
mod generator;
pub mod modbus;
pub mod mqtt;
pub mod tt10;

pub use clock::LiveClock;
pub use generator::StationSim;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use chrono::FixedOffset;
use tracing::warn;

use crate::compliance::StationLimits;
use crate::config::{Config, Sim, SimVia, Station};
use crate::model::StationId;
use crate::source::SourceContext;

/// History the simulators fill in at start, so the dashboard's 24 h charts are full for every plant.
pub const HISTORY: Duration = Duration::from_secs(24 * 3600);

/// The simulated stations of one transport and where they send. Its `Debug` text is what a reload compares.
#[derive(Debug)]
pub struct Simulator {
    pub via: SimVia,
    /// The simulated stations with their limits (the values are drawn relative to the limits).
    stations: Vec<(Station, StationLimits)>,
    sim: Sim,
    /// Shortest reporting interval: the simulators' step.
    interval: Duration,
    target: Target,
}

/// Where a simulator's readings go.
#[derive(Debug)]
enum Target {
    /// Straight into the pipeline.
    Pipeline,
    /// Modbus devices on the stations' own addresses (their history goes straight into the pipeline).
    Modbus,
    Mqtt {
        target: Box<mqtt::Target>,
        /// Each station's topic, in station order.
        topics: Vec<String>,
    },
    Tt10 {
        folder: PathBuf,
        tz: FixedOffset,
    },
}

/// The simulators `config` runs: none unless `[sim] enabled`; otherwise one per transport some station uses.
pub fn plan(config: &Config, limits: &HashMap<StationId, StationLimits>) -> Vec<Simulator> {
    if !config.sim.enabled {
        return Vec::new();
    }
    // The direct and Modbus simulators step at the shortest interval of all stations, as the demo always has.
    let shortest = |stations: &[&Station]| {
        stations
            .iter()
            .map(|s| s.interval)
            .min()
            .unwrap_or(Duration::from_secs(300))
    };
    let all: Vec<&Station> = config.stations.iter().collect();
    let mut out = Vec::new();
    for via in [SimVia::Modbus, SimVia::Direct, SimVia::Mqtt, SimVia::Tt10] {
        let stations: Vec<&Station> = config
            .stations
            .iter()
            .filter(|s| s.sim.as_ref().is_some_and(|x| x.via == via))
            .collect();
        if stations.is_empty() {
            continue;
        }
        let (target, interval) = match via {
            SimVia::Direct => (Target::Pipeline, shortest(&all)),
            SimVia::Modbus => (Target::Modbus, shortest(&all)),
            SimVia::Mqtt => match mqtt_target(config, &stations) {
                Some(t) => (t, shortest(&stations)),
                None => continue,
            },
            SimVia::Tt10 => match config.tt10.landing.first() {
                Some(folder) => (
                    Target::Tt10 {
                        folder: folder.clone(),
                        tz: config.timezone,
                    },
                    shortest(&stations),
                ),
                None => {
                    warn!("Stations with sim.via = \"tt10\" need a landing folder: add [tt10] landing = [\"…\"].");
                    continue;
                }
            },
        };
        out.push(Simulator {
            via,
            stations: stations
                .into_iter()
                .map(|s| (s.clone(), limits.get(&s.id).cloned().unwrap_or_default()))
                .collect(),
            sim: config.sim.clone(),
            interval,
            target,
        });
    }
    out
}

/// The embedded broker if there is one, else the first broker; topics from each station's `[station.mqtt]`, or
/// the broker's first per-station topic template.
fn mqtt_target(config: &Config, stations: &[&Station]) -> Option<Target> {
    let Some(broker) = config
        .mqtt
        .brokers
        .iter()
        .find(|b| b.name == "embedded" && config.mqtt.embedded.is_some())
        .or(config.mqtt.brokers.first())
    else {
        warn!("Stations with sim.via = \"mqtt\" need a broker: add [mqtt.embedded] or an [[mqtt.broker]].");
        return None;
    };
    let template = broker
        .topics
        .iter()
        .find(|t| t.contains("{station}") && !t.contains(['+', '#']))
        .cloned()
        .unwrap_or_else(|| "stations/{station}/data".into());
    let topics = stations
        .iter()
        .map(|s| {
            s.mqtt
                .as_ref()
                .map(|m| m.topic.clone())
                .unwrap_or_else(|| template.replace("{station}", s.id.as_str()))
        })
        .collect();
    Some(Target::Mqtt {
        target: Box::new(mqtt::Target {
            broker: broker.clone(),
            tz: config.timezone,
        }),
        topics,
    })
}

/// What a started simulator runs until its stop signal.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Simulator {
    /// A name for logs and for telling simulators apart on reload.
    pub fn name(&self) -> String {
        format!("sim {}", self.via)
    }

    fn station_sims(&self) -> Vec<StationSim> {
        self.stations
            .iter()
            .map(|(s, l)| StationSim::new(s, l, self.sim.seed))
            .collect()
    }

    /// Start the simulator: Modbus devices bind their addresses here (so the pollers find them on their first
    /// connect); the returned task sends readings until the context's stop signal.
    pub async fn start(self, ctx: SourceContext<()>) -> Task {
        let sims = self.station_sims();
        let (interval, speed) = (self.interval, self.sim.speed);
        let SourceContext {
            ingest, shutdown, ..
        } = ctx;
        match self.target {
            Target::Pipeline => Box::pin(direct::run(
                sims, interval, speed, HISTORY, ingest, shutdown,
            )),
            Target::Modbus => {
                let stations: Vec<Station> = self.stations.iter().map(|(s, _)| s.clone()).collect();
                let limits: HashMap<StationId, StationLimits> =
                    self.stations.into_iter().map(|(s, l)| (s.id, l)).collect();
                let serve =
                    match modbus::start_demo(&stations, &limits, &self.sim, shutdown.clone()).await
                    {
                        Ok(serve) => Some(serve),
                        Err(e) => {
                            warn!(error = %e, "Simulated Modbus stations not started.");
                            None
                        }
                    };
                // The stations' history, as their dataloggers would hand it over.
                Box::pin(async move {
                    let history = direct::history(&sims, interval, HISTORY, &ingest, &shutdown);
                    match serve {
                        Some(serve) => {
                            tokio::join!(serve, history);
                        }
                        None => {
                            history.await;
                        }
                    }
                })
            }
            Target::Mqtt { target, topics } => Box::pin(mqtt::run(
                sims.into_iter().zip(topics).collect(),
                *target,
                interval,
                speed,
                HISTORY,
                shutdown,
            )),
            Target::Tt10 { folder, tz } => Box::pin(tt10::run(
                sims, folder, tz, interval, speed, HISTORY, shutdown,
            )),
        }
    }
}
