//! Configuration: the TOML schema (serde, `deny_unknown_fields`) and its validation into a checked [`Config`].
//!
//! Loading has two steps, as in Vector: `parse` turns text into the raw schema (a syntax or type error stops here,
//! with the key path), then `validate` checks everything purely — no network, no disk beyond `*_file` secrets and
//! profile files — and reports every problem at once, each naming the file, the key path and what was expected.

pub mod alert;
pub mod compliance;
mod daemon;
pub mod demo;
mod duration;
mod errors;
pub mod forward;
pub mod http;
pub mod mandatory;
pub mod modbus;
pub mod mqtt;
pub mod regime;
pub mod scope;
mod secret;
mod station;
pub mod transmit;
pub mod tt10;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use daemon::{DaemonSection, LedgerSection, PipelineSection, Sim, SimSection, Synchronous};
pub use demo::DEMO_TOML;
pub use duration::{parse_duration, DurationText};
pub use errors::{tidy_toml_message, ConfigError, Problems};
pub use regime::LimitText;
pub use secret::{fingerprint, Secret};
pub use station::{
    CheckedParameter, Facility, FacilitySection, Location, LocationSection, ParameterSection,
    ReceivingWater, Salinity, SimVia, Station, StationSection, StationSimSection,
};

use chrono::FixedOffset;
use serde::Deserialize;

/// The whole configuration file as written (raw schema). Every field is documented in
/// `config/quantrac.example.toml`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Time zone, clock-skew limit, profile folder.
    #[serde(default)]
    pub daemon: DaemonSection,
    /// The SQLite compliance ledger.
    #[serde(default)]
    pub ledger: LedgerSection,
    /// Channel sizes between sources, processor and ledger.
    #[serde(default)]
    pub pipeline: PipelineSection,
    /// The built-in station simulator (demo, training, tests).
    #[serde(default)]
    pub sim: SimSection,
    /// MQTT broker connections (external brokers, or the embedded one).
    #[serde(default)]
    pub mqtt: mqtt::MqttSection,
    /// Averaging window and data-quality checks.
    #[serde(default)]
    pub compliance: compliance::ComplianceSection,
    /// The API and dashboard.
    #[serde(default)]
    pub http: http::HttpSection,
    /// Where committed data is forwarded (InfluxDB; Circular 10 files to FTP/FTPS/SFTP).
    #[serde(default)]
    pub forward: forward::ForwardSection,
    /// Circular 10 TXT landing folders.
    #[serde(default)]
    pub tt10: tt10::Tt10Section,
    /// The alert engine: timing, channels (recipients), routes, maintenance windows.
    #[serde(default)]
    pub alert: alert::AlertSection,
    /// Monitoring stations, one `[[station]]` table each.
    #[serde(default)]
    pub station: Vec<StationSection>,
}

/// A validated configuration: every value checked, every reference resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from (for messages), or `<embedded demo>`.
    pub source: PathBuf,
    pub timezone: FixedOffset,
    pub timezone_name: String,
    pub future_skew: std::time::Duration,
    pub profiles_dir: PathBuf,
    pub ledger: daemon::Ledger,
    pub pipeline: PipelineSection,
    pub sim: daemon::Sim,
    pub mqtt: mqtt::Mqtt,
    pub influx: Vec<forward::Influx>,
    /// `[[forward.tt10]]`: Circular 10 transmission targets.
    pub transmit: Vec<transmit::Target>,
    pub http: http::Http,
    pub compliance: compliance::Compliance,
    pub tt10: tt10::Tt10,
    pub alert: alert::Alert,
    pub stations: Vec<Station>,
}

impl Config {
    /// Why links in the alerts this config sends would not open for their recipients (see [`http::Http::link_warning`]);
    /// `None` when it sends none.
    pub fn alert_link_warning(&self) -> Option<String> {
        if self.alert.channels.is_empty() {
            return None;
        }
        self.http.link_warning()
    }

    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::from_str(&text, path, &base)
    }

    /// Parse and validate config text. `file` names it in messages; relative paths resolve against `base`.
    pub fn from_str(text: &str, file: &Path, base: &Path) -> Result<Config, ConfigError> {
        let raw = parse(text, file)?;
        validate(raw, file, base)
    }

    pub fn station(&self, id: &str) -> Option<&Station> {
        self.stations.iter().find(|s| s.id.as_str() == id)
    }
}

/// Text → raw schema. Stops at the first syntax or type error (serde cannot go on), naming its key path.
pub fn parse(text: &str, file: &Path) -> Result<RawConfig, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ConfigError::Syntax {
            file: file.to_path_buf(),
            path,
            message: errors::tidy_toml_message(&inner, text),
        }
    })
}

/// Raw schema → checked config, collecting every problem.
pub fn validate(raw: RawConfig, file: &Path, base: &Path) -> Result<Config, ConfigError> {
    let Partial { config, problems } = validate_partial(raw, file, base);
    problems.finish()?;
    Ok(config)
}

/// A config as far as it validated, with every problem found. Its stations are those usable for later checks (see
/// `StationSection::validate_partial`) even when they have problems; with no problems it is the valid config.
pub struct Partial {
    pub config: Config,
    pub problems: Problems,
}

impl Partial {
    /// Read and parse a config file (a read or syntax error stops here), then validate as far as possible.
    pub fn load(path: &Path) -> Result<Partial, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::from_str(&text, path, &base)
    }

    /// As [`Partial::load`], from text.
    pub fn from_str(text: &str, file: &Path, base: &Path) -> Result<Partial, ConfigError> {
        Ok(validate_partial(parse(text, file)?, file, base))
    }
}

/// Raw schema → the config as far as it validated, and every problem.
pub fn validate_partial(raw: RawConfig, file: &Path, base: &Path) -> Partial {
    let mut p = Problems::new(file);
    let (timezone, timezone_name) = raw.daemon.timezone(&mut p);
    let future_skew = raw.daemon.future_skew.check(&mut p, "daemon.future_skew");
    let profiles_dir = base.join(&raw.daemon.profiles_dir);
    let ledger = raw.ledger.validate(&mut p, base);
    raw.pipeline.validate(&mut p);
    let sim = raw.sim.validate(&mut p);
    let mqtt = raw.mqtt.validate(&mut p);
    let influx = raw.forward.validate(&mut p, base);
    let http = raw.http.validate(&mut p);
    let compliance = raw.compliance.validate(&mut p);
    let tt10 = raw.tt10.validate(&mut p, base);

    let mut stations = Vec::new();
    let mut seen = HashSet::new();
    for (i, s) in raw.station.iter().enumerate() {
        let key = format!("station[{i}]");
        if !seen.insert(s.id.clone()) {
            p.push(
                format!("{key}.id"),
                format!(
                    "duplicate station id {:?}; each station must appear once",
                    s.id
                ),
            );
        }
        if let Some(st) = s.validate_partial(&mut p, &key, &mqtt, timezone) {
            stations.push(st);
        }
    }
    if raw.station.is_empty() {
        p.push(
            "station",
            "no stations configured; add at least one [[station]] table",
        );
    }
    let station_ids: Vec<String> = raw.station.iter().map(|s| s.id.clone()).collect();
    let alert = raw.alert.validate(&mut p, base, &station_ids, &mqtt);
    let transmit = transmit::validate(&raw.forward.tt10, &mut p, base, &station_ids, timezone);
    let config = Config {
        source: file.to_path_buf(),
        timezone,
        timezone_name,
        future_skew,
        profiles_dir,
        ledger,
        pipeline: raw.pipeline,
        sim,
        mqtt,
        influx,
        transmit,
        http,
        compliance,
        tt10,
        alert,
        stations,
    };
    Partial {
        config,
        problems: p,
    }
}

#[cfg(test)]
mod parser_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::testing::cases(64)))]

        /// Any file, or one that is nearly a config: a clear error or a config, never a panic.
        #[test]
        fn config_files_never_panic(
            junk in "\\PC{0,300}",
            near in r#"(\[(ledger|http|alert|tt10|mqtt)\]\n|\[\[(station|alert\.route|forward\.influx)\]\]\n|(id|name|path|profile|listen|interval|design_flow_m3_day|parameters|url|raise_after) = ("[A-Za-z0-9_:./ ]{0,12}"|-?[0-9]{1,6}|\{ ?[A-Za-z]{0,4} ?= ?\{\} ?\}|true)\n){0,12}"#,
        ) {
            let dir = std::env::temp_dir();
            for text in [&junk, &near] {
                let _ = parse(text, Path::new("fuzz.toml"));
                let _ = Config::from_str(text, Path::new("fuzz.toml"), &dir);
            }
        }
    }
}
