//! Config reload on SIGHUP: read and check the new file fully (config and limit profiles) before anything running
//! is touched, say what changes, and keep what cannot change live from the running config.
//!
//! Pure apart from reading the file and the profiles (as at start) and writing the audit row. Stopping and
//! restarting the sources is the daemon's (`daemon::run_with_reload`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::compliance::resolve_limits;
use crate::compliance::StationLimits;
use crate::config::{Config, ConfigError};
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

/// Stations' limits by station.
pub type Limits = HashMap<StationId, StationLimits>;

/// Read a config file and resolve its stations' limits. `Err` lists every problem at once: the limit profiles are
/// resolved for the stations that validated as far as a profile needs (a bad value elsewhere, even in the same
/// station, does not hide an unknown profile); a problem already listed at a key path is not repeated.
pub fn load_checked(path: &Path) -> Result<(Config, Limits), ConfigError> {
    checked(crate::config::Partial::load(path)?)
}

/// As [`load_checked`], from text (`file` names it in messages; relative paths resolve against `base`).
pub fn checked_from_str(
    text: &str,
    file: &Path,
    base: &Path,
) -> Result<(Config, Limits), ConfigError> {
    checked(crate::config::Partial::from_str(text, file, base)?)
}

fn checked(partial: crate::config::Partial) -> Result<(Config, Limits), ConfigError> {
    let crate::config::Partial {
        config,
        mut problems,
    } = partial;
    let limits = match resolve_limits(&config) {
        Ok(l) => l,
        Err(e) => {
            problems.extend_new(e);
            HashMap::new()
        }
    };
    problems.finish()?;
    Ok((config, limits))
}

/// Read and check the config at `path` against the running one. `Err` carries every problem (nothing is applied).
pub fn prepare(running: &Config, path: &Path) -> Result<Prepared, ConfigError> {
    let (mut next, limits) = load_checked(path)?;
    let changes = compare(running, &next);
    for fixed in FIXED {
        (fixed.keep)(&mut next, running);
    }
    Ok(Prepared {
        config: next,
        limits,
        changes,
    })
}

/// A setting fixed for the life of the process: a reload that changes it says so and keeps the running value.
struct Fixed {
    name: &'static str,
    differs: fn(&Config, &Config) -> bool,
    /// Copy the running value into the new config.
    keep: fn(&mut Config, &Config),
}

/// `fixed!("name", a.b, c.d)`: one restart-only setting made of the given config fields.
macro_rules! fixed {
    ($name:literal, $($($field:ident).+),+) => {
        Fixed {
            name: $name,
            differs: |old, new| $(format!("{:?}", old.$($field).+) != format!("{:?}", new.$($field).+))||+,
            keep: |new, running| { $(new.$($field).+ = running.$($field).+.clone();)+ },
        }
    };
}

/// Fixed for the life of the process: the open ledger file and its writer, the listening socket (and the address
/// derived from it), the queues, the embedded broker thread, and the alert engine's delivery tasks (one per
/// channel) and whether it runs at all. Who may call the API (tokens, anonymous reading) follows the file, so a
/// leaked token is revoked by a reload; the alert engine follows stations, routes and rules.
const FIXED: &[Fixed] = &[
    fixed!("ledger.path", ledger.path),
    fixed!("ledger.synchronous", ledger.synchronous),
    fixed!(
        "ledger.max_transaction_readings",
        ledger.max_transaction_readings
    ),
    fixed!(
        "http.enabled, http.listen, http.public_url",
        http.enabled,
        http.listen,
        http.public_url
    ),
    // HTTPS on or off, and where its files are; their contents are read again at each reload.
    fixed!("http.tls", http.tls),
    fixed!("pipeline", pipeline),
    fixed!("mqtt.embedded", mqtt.embedded),
    fixed!("alert.enabled", alert.enabled),
    fixed!("alert.channel", alert.channels),
    fixed!(
        "alert delivery retries",
        alert.retry_max_backoff,
        alert.give_up_after
    ),
];

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
    if differs(&old.http.tokens, &new.http.tokens) {
        c.settings.push("http.token");
    }
    if old.http.anonymous_read != new.http.anonymous_read {
        c.settings.push("http.anonymous_read");
    }
    if old.http.map != new.http.map {
        c.settings.push("http.map_tiles");
    }
    if old.http.metrics_public != new.http.metrics_public {
        c.settings.push("http.metrics_public");
    }
    c.need_restart = FIXED
        .iter()
        .filter(|f| (f.differs)(old, new))
        .map(|f| f.name)
        .collect();
    c
}

/// Record a reload in the ledger's `audit` table (who = `sighup`).
pub fn record(
    ledger: &mut crate::ledger::SideWriter,
    config: &Path,
    changes: &Changes,
) -> Result<(), crate::ledger::LedgerError> {
    ledger.record_audit(&crate::ledger::audit::AuditEntry {
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
        // The overview's map follows a reload, and the audit line names it.
        let map = config(
            "[http]\nmap_tiles = \"https://tiles.example.org/{z}/{x}/{y}.png\"\n",
            100,
        );
        let c = compare(&old, &map);
        assert_eq!(c.settings, ["http.map_tiles"]);
        assert!(c.need_restart.is_empty(), "{c:?}");
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
