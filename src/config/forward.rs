//! `[[forward.influx]]`: InfluxDB targets. Each forwards from the ledger with its own cursor. `[[forward.tt10]]`
//! (Circular 10 transmission) is checked in `transmit.rs`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::duration::DurationText;
use super::{Problems, Secret};

/// `[forward]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSection {
    /// InfluxDB targets (2.x, 1.8+ compatibility API, 3.x): one table each.
    #[serde(default)]
    pub influx: Vec<InfluxSection>,
    /// Circular 10 file transmission targets (FTP, FTPS, SFTP): one table each.
    #[serde(default)]
    pub tt10: Vec<super::transmit::TargetSection>,
}

/// One InfluxDB target as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxSection {
    /// Name of this target; its cursors are `influx:<name>:…` in the ledger.
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:8086` (the client posts to `<url>/api/v2/write`).
    pub url: String,
    /// Organisation (InfluxDB 2.x); ignored by 1.8 and 3.x.
    #[serde(default)]
    pub org: String,
    /// Bucket (2.x), `database/retention-policy` (1.8), or database (3.x).
    pub bucket: String,
    /// API token (2.x, 3.x) or `user:password` (1.8). `${ENV_VAR}` expands; or give `token_file`.
    pub token: Option<String>,
    pub token_file: Option<String>,
    /// Compress request bodies with gzip. Unset: compress unless the server is on this machine (the URL's host is
    /// `localhost` or a loopback address), where compression only spends CPU on both ends.
    #[serde(default)]
    pub gzip: Option<bool>,
    /// Most lines per request.
    #[serde(default = "default_batch_lines")]
    pub batch_lines: usize,
    /// Longest wait to fill a batch.
    #[serde(default = "default_batch_wait")]
    pub batch_wait: DurationText,
    /// Deadline of every request.
    #[serde(default = "default_timeout")]
    pub timeout: DurationText,
    /// Longest wait between retries.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: DurationText,
    /// Also forward hourly and daily aggregates.
    #[serde(default = "default_true")]
    pub aggregates: bool,
    /// Extra CA certificate (PEM) for a private TLS deployment.
    pub ca_file: Option<String>,
}

fn default_true() -> bool {
    true
}
fn default_batch_lines() -> usize {
    5000
}
fn default_batch_wait() -> DurationText {
    DurationText::new("1s")
}
fn default_timeout() -> DurationText {
    DurationText::new("10s")
}
fn default_max_backoff() -> DurationText {
    DurationText::new("5m")
}

/// A checked InfluxDB target.
#[derive(Debug, Clone)]
pub struct Influx {
    pub name: String,
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub token: Option<Secret>,
    pub gzip: bool,
    pub batch_lines: usize,
    pub batch_wait: Duration,
    pub timeout: Duration,
    pub max_backoff: Duration,
    pub aggregates: bool,
    pub ca_file: Option<std::path::PathBuf>,
}

impl ForwardSection {
    pub(super) fn validate(&self, p: &mut Problems, base: &Path) -> Vec<Influx> {
        let mut out = Vec::new();
        for (i, t) in self.influx.iter().enumerate() {
            let k = format!("forward.influx[{i}]");
            if t.name.trim().is_empty() || t.name.contains(':') {
                p.push(
                    format!("{k}.name"),
                    format!(
                        "{:?} is not a usable name; give a non-empty name without ':'",
                        t.name
                    ),
                );
            }
            if self.influx[..i].iter().any(|o| o.name == t.name) {
                p.push(
                    format!("{k}.name"),
                    format!(
                        "duplicate target name {:?}; each target keeps its own cursor",
                        t.name
                    ),
                );
            }
            // `${ENV_VAR}` expands, so a deployment can keep its server addresses (and any credential in them) out
            // of the file.
            let url = match super::secret::expand_env(&t.url) {
                Ok(u) => u,
                Err(e) => {
                    p.push(format!("{k}.url"), e);
                    String::new()
                }
            };
            // The influxdb2 crate panics on a bad URL; quantrac checks it here instead.
            match reqwest::Url::parse(&url) {
                _ if url.is_empty() && !t.url.is_empty() => {}
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                Ok(u) => p.push(
                    format!("{k}.url"),
                    format!(
                        "{:?} is not an http(s) URL with a host (scheme {:?})",
                        t.url,
                        u.scheme()
                    ),
                ),
                Err(e) => p.push(
                    format!("{k}.url"),
                    format!(
                        "{:?} is not a URL ({e}); expected e.g. \"http://127.0.0.1:8086\"",
                        t.url
                    ),
                ),
            }
            if t.bucket.trim().is_empty() {
                p.push(
                    format!("{k}.bucket"),
                    "must name the bucket (2.x), database/retention-policy (1.8) or database (3.x)",
                );
            }
            if !(1..=100_000).contains(&t.batch_lines) {
                p.push(
                    format!("{k}.batch_lines"),
                    format!("{} is out of range; expected 1 to 100000", t.batch_lines),
                );
            }
            let token = Secret::resolve(
                t.token.as_deref(),
                t.token_file.as_deref(),
                base,
                p,
                &format!("{k}.token"),
            );
            out.push(Influx {
                name: t.name.clone(),
                url: url.trim_end_matches('/').to_string(),
                org: t.org.clone(),
                bucket: t.bucket.clone(),
                token,
                gzip: t.gzip.unwrap_or_else(|| !is_loopback(&url)),
                batch_lines: t.batch_lines.clamp(1, 100_000),
                batch_wait: t.batch_wait.check(p, &format!("{k}.batch_wait")),
                timeout: t.timeout.check_positive(p, &format!("{k}.timeout")),
                max_backoff: t.max_backoff.check_positive(p, &format!("{k}.max_backoff")),
                aggregates: t.aggregates,
                ca_file: t.ca_file.as_ref().map(|f| base.join(f)),
            });
        }
        out
    }
}

/// Whether `url`'s host is this machine: `localhost` or a loopback address.
fn is_loopback(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    match u.host_str() {
        Some(h) if h.eq_ignore_ascii_case("localhost") => true,
        // An IPv6 host keeps its brackets here.
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{is_loopback, ForwardSection};
    use crate::config::Problems;
    use std::path::Path;

    /// `gzip` as resolved for a target at `url`, written as `setting` (a TOML line, or nothing).
    fn gzip(url: &str, setting: &str) -> bool {
        let text =
            format!("[[influx]]\nname = \"t\"\nurl = \"{url}\"\nbucket = \"b\"\n{setting}\n");
        let section: ForwardSection = toml::from_str(&text).unwrap();
        let mut problems = Problems::new(Path::new("q.toml"));
        section.validate(&mut problems, Path::new("."))[0].gzip
    }

    #[test]
    fn gzip_is_on_unless_the_server_is_this_machine_or_the_setting_says() {
        assert!(gzip("http://10.0.0.5:8086", ""));
        assert!(!gzip("http://127.0.0.1:8428", ""));
        assert!(gzip("http://127.0.0.1:8428", "gzip = true"));
        assert!(!gzip("http://10.0.0.5:8086", "gzip = false"));
    }

    #[test]
    fn only_this_machine_is_loopback() {
        for url in [
            "http://127.0.0.1:8428",
            "http://localhost:8086/",
            "https://[::1]:8086",
            "http://127.1.2.3",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "http://10.0.0.5:8086",
            "https://influx.example.vn",
            "http://[2001:db8::1]:8086",
            "not a url",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
