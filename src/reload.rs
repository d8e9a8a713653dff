//! Config reload on SIGHUP: read and check the new file fully (config and limit profiles) before anything running
//! is touched, say what changes, and keep what cannot change live from the running config.
//!
//! Pure apart from reading the file and the profiles (as at start) and writing the audit row. Stopping and
//! restarting the sources is the daemon's (`daemon::run`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::compliance::StationLimits;
use crate::config::{Config, ConfigError};
use crate::daemon::resolve_limits;
use crate::model::{StationId, Timestamp};

/// Where a reload reads the config from, and the requests (SIGHUP) that ask for one.
pub struct Reload {
    pub path: PathBuf,
    pub requests: tokio::sync::mpsc::Receiver<()>,
}

/// A new configuration that passed every check, ready to apply.
pub struct Prepared {
    /// The new config, with the settings that need a restart carried over from the running one.
    pub config: Config,
    pub limits: HashMap<StationId, StationLimits>,
    pub changes: Changes,
}

/// What a reload changes, for the log and the audit trail.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Stations whose settings (limits, parameters, source) differ.
    pub changed: Vec<String>,
    /// Settings that differ but only take effect after a restart (they keep their running values).
    pub need_restart: Vec<&'static str>,
    /// Other settings that changed and apply now (for the audit trail), e.g. `http.token`.
    pub settings: Vec<&'static str>,
}

impl Changes {
    /// One line for the audit table, e.g. `added BN_A_B; limits or settings changed BN_C_D`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (what, list) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            if !list.is_empty() {
                parts.push(format!("{what} {}", list.join(", ")));
            }
        }
        if !self.settings.is_empty() {
            parts.push(format!("changed {}", self.settings.join(", ")));
        }
        if !self.need_restart.is_empty() {
            parts.push(format!(
                "not applied until restart: {}",
                self.need_restart.join(", ")
            ));
        }
        if parts.is_empty() {
            "no station changes".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Read and check the config at `path` against the running one. `Err` carries every problem (nothing is applied).
pub fn prepare(running: &Config, path: &Path) -> Result<Prepared, ConfigError> {
    let mut next = Config::load(path)?;
    let limits = resolve_limits(&next)?;
    let changes = compare(running, &next);
    // Fixed for the life of the process: the open ledger file and its writer, the listening socket, the queues,
    // the embedded broker thread.
    next.ledger.path = running.ledger.path.clone();
    next.ledger.synchronous = running.ledger.synchronous;
    next.ledger.max_transaction_readings = running.ledger.max_transaction_readings;
    // The listening socket (and the address derived from it) stays; who may call (tokens, anonymous reading)
    // follows the file, so a leaked token is revoked by a reload.
    next.http.enabled = running.http.enabled;
    next.http.listen = running.http.listen;
    next.http.public_url = running.http.public_url.clone();
    next.pipeline = running.pipeline.clone();
    next.mqtt.embedded = running.mqtt.embedded.clone();
    // The alert engine follows stations, routes and rules; its delivery tasks (one per channel) run for the life
    // of the process, and whether it runs at all is decided at start.
    next.alert.enabled = running.alert.enabled;
    next.alert.channels = running.alert.channels.clone();
    next.alert.retry_max_backoff = running.alert.retry_max_backoff;
    next.alert.give_up_after = running.alert.give_up_after;
    Ok(Prepared {
        config: next,
        limits,
        changes,
    })
}

/// Station and restart-only differences between two configs.
pub fn compare(old: &Config, new: &Config) -> Changes {
    let mut c = Changes::default();
    // Debug text compares every field (the structs hold floats, so they are not `Eq`); the position in the file
    // does not count as a change.
    let text = |s: &crate::config::Station| {
        let mut s = s.clone();
        s.index = 0;
        format!("{s:?}")
    };
    for s in &new.stations {
        match old.station(s.id.as_str()) {
            None => c.added.push(s.id.to_string()),
            Some(o) if text(o) != text(s) => c.changed.push(s.id.to_string()),
            Some(_) => {}
        }
    }
    for s in &old.stations {
        if new.station(s.id.as_str()).is_none() {
            c.removed.push(s.id.to_string());
        }
    }
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    if old.ledger.path != new.ledger.path {
        c.need_restart.push("ledger.path");
    }
    if old.ledger.synchronous != new.ledger.synchronous {
        c.need_restart.push("ledger.synchronous");
    }
    if old.ledger.max_transaction_readings != new.ledger.max_transaction_readings {
        c.need_restart.push("ledger.max_transaction_readings");
    }
    if (old.http.enabled, old.http.listen, &old.http.public_url)
        != (new.http.enabled, new.http.listen, &new.http.public_url)
    {
        c.need_restart
            .push("http.enabled, http.listen, http.public_url");
    }
    if differs(&old.http.tokens, &new.http.tokens) {
        c.settings.push("http.token");
    }
    if old.http.anonymous_read != new.http.anonymous_read {
        c.settings.push("http.anonymous_read");
    }

    if differs(&old.pipeline, &new.pipeline) {
        c.need_restart.push("pipeline");
    }
    if differs(&old.mqtt.embedded, &new.mqtt.embedded) {
        c.need_restart.push("mqtt.embedded");
    }
    if old.alert.enabled != new.alert.enabled {
        c.need_restart.push("alert.enabled");
    }
    if differs(&old.alert.channels, &new.alert.channels) {
        c.need_restart.push("alert.channel");
    }
    if (old.alert.retry_max_backoff, old.alert.give_up_after)
        != (new.alert.retry_max_backoff, new.alert.give_up_after)
    {
        c.need_restart.push("alert delivery retries");
    }
    c
}

/// Record a reload in the ledger's `audit` table (who = `sighup`).
pub fn record(
    ledger: &Path,
    config: &Path,
    changes: &Changes,
) -> Result<(), crate::ledger::LedgerError> {
    crate::ledger::SideWriter::open(ledger)?.record_audit(&crate::ledger::audit::AuditEntry {
        at: Timestamp::now().millis(),
        who: "sighup",
        role: "system",
        action: "reload config",
        detail: &format!("{}: {}", config.display(), changes.describe()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str, limit: u32) -> Config {
        let text = format!(
            "[ledger]\npath = \"a.db\"\n{extra}\n[[station]]\nid = \"BN_A_N1\"\nname = \"a\"\nprofile = \"qcvn40-2011-b\"\n\
             design_flow_m3_day = 100\nreceiving_water = {{ type = \"river\" }}\nparameters = {{ COD = {{ limit = {limit} }} }}\n"
        );
        Config::from_str(&text, Path::new("q.toml"), Path::new(".")).unwrap()
    }

    #[test]
    fn changes_name_stations_and_restart_only_settings() {
        let old = config("", 100);
        assert_eq!(compare(&old, &config("", 100)), Changes::default());
        let c = compare(&old, &config("", 50));
        assert_eq!(c.changed, ["BN_A_N1"]);
        let added = config(
            "[http]\nlisten = \"127.0.0.1:9\"\n\n[[station]]\nid = \"BN_B_N1\"\nname = \"b\"\nprofile = \"qcvn40-2011-b\"\n\
             design_flow_m3_day = 100\nreceiving_water = { type = \"river\" }\nparameters = { TSS = {} }\n",
            100,
        );
        let c = compare(&old, &added);
        assert_eq!(c.added, ["BN_B_N1"]);
        assert_eq!(
            c.need_restart,
            ["http.enabled, http.listen, http.public_url"]
        );
        assert_eq!(
            c.describe(),
            "added BN_B_N1; not applied until restart: http.enabled, http.listen, http.public_url"
        );
        assert_eq!(compare(&added, &old).removed, ["BN_B_N1"]);
    }

    #[test]
    fn tokens_and_anonymous_reading_apply_at_once_the_listen_address_waits() {
        let token = |name: &str, digit: char| {
            format!(
                "[[http.token]]\nname = \"{name}\"\nrole = \"operator\"\nsha256 = \"{}\"\n",
                digit.to_string().repeat(64)
            )
        };
        let file = |http: &str| {
            format!(
                "[ledger]\npath = \"a.db\"\n[http]\n{http}\n[[station]]\nid = \"BN_A_N1\"\nname = \"a\"\n\
                 profile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 100\nreceiving_water = {{ type = \"river\" }}\n\
                 parameters = {{ COD = {{ limit = 100 }} }}\n"
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.toml");
        let running = Config::from_str(
            &file(&format!(
                "listen = \"127.0.0.1:8080\"\n{}",
                token("old", 'a')
            )),
            &path,
            dir.path(),
        )
        .unwrap();
        let next = format!(
            "listen = \"127.0.0.1:9090\"\nanonymous_read = true\n{}",
            token("new", 'b')
        );
        std::fs::write(&path, file(&next)).unwrap();
        let p = prepare(&running, &path).unwrap();
        let names: Vec<&str> = p
            .config
            .http
            .tokens
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["new"]);
        assert!(p.config.http.anonymous_read);
        assert_eq!(p.config.http.listen, running.http.listen);
        assert_eq!(p.changes.settings, ["http.token", "http.anonymous_read"]);
        assert_eq!(
            p.changes.need_restart,
            ["http.enabled, http.listen, http.public_url"]
        );
        assert_eq!(
            p.changes.describe(),
            "changed http.token, http.anonymous_read; not applied until restart: http.enabled, http.listen, http.public_url"
        );
    }

    #[test]
    fn alert_channels_need_a_restart_but_routes_and_rules_do_not() {
        let log = |name: &str, renotify: &str| {
            config(
                &format!(
                    "[alert]\nrenotify = \"{renotify}\"\n[[alert.channel]]\nname = \"{name}\"\ntype = \"log\"\n\
                     [[alert.route]]\nchannels = [\"{name}\"]\n"
                ),
                100,
            )
        };
        let old = log("officers", "2h");
        assert_eq!(compare(&old, &log("officers", "1h")), Changes::default());
        assert_eq!(
            compare(&old, &log("operators", "2h")).need_restart,
            ["alert.channel"]
        );
    }
}
