//! The deployment files under `deploy/`: Grafana dashboards parse and query only the measurements, tags and fields
//! quantrac's forwarder writes (from `forward::encode::schema()`) and only the metrics and labels its `/metrics`
//! serves (read from a running daemon); the container file, compose stack, Prometheus, Mosquitto and Grafana
//! provisioning agree on ports and paths; the compose file validates with docker-compose; the systemd unit keeps its
//! hardening. No container engine runs here, so the image itself is not built by any test.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use quantrac::forward::encode::{schema, MeasurementKeys};
use serde_json::Value;
use support::daemon::{stations, Daemon};

const BIN: &str = env!("CARGO_BIN_EXE_quantrac");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Lines of a file without comments, trimmed.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn assert_has(file: &str, text: &str, wanted: &[&str]) {
    let ls = lines(text);
    for w in wanted {
        assert!(
            ls.iter().any(|l| l.contains(w)),
            "{file} lacks a line with {w:?}"
        );
    }
}

// ---- Flux -------------------------------------------------------------------------------------------------------

/// Columns every Flux table has.
const SYSTEM_COLUMNS: [&str; 6] = [
    "_measurement",
    "_field",
    "_value",
    "_time",
    "_start",
    "_stop",
];

/// The quoted string at the start of `s` (after blanks).
fn quoted(s: &str) -> Option<&str> {
    let rest = s.trim_start().strip_prefix('"')?;
    rest.find('"').map(|end| &rest[..end])
}

/// Every string right after each `pattern` in `q` (`tag: "station"`).
fn strings_after<'a>(q: &'a str, pattern: &str) -> Vec<&'a str> {
    q.match_indices(pattern)
        .filter_map(|(i, _)| quoted(&q[i + pattern.len()..]))
        .collect()
}

/// Every string `column` is compared with (`r._field == "ratio"`).
fn compared<'a>(q: &'a str, column: &str) -> Vec<&'a str> {
    q.match_indices(column)
        .filter_map(|(i, _)| {
            let rest = q[i + column.len()..].trim_start().strip_prefix("==")?;
            quoted(rest)
        })
        .collect()
}

/// Every string inside the `[...]` list after each `pattern`.
fn lists_after(q: &str, pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in q.match_indices(pattern) {
        let rest = q[i + pattern.len()..].trim_start();
        let Some(body) = rest.strip_prefix('[') else {
            continue;
        };
        let body = &body[..body.find(']').unwrap_or(body.len())];
        out.extend(
            body.split(',')
                .filter_map(|x| quoted(x))
                .map(str::to_string),
        );
    }
    out
}

/// Identifiers read as `r.<name>` or `r["<name>"]` (the row of a filter or map function).
fn row_columns(q: &str) -> Vec<String> {
    let bytes = q.as_bytes();
    let mut out = Vec::new();
    for (i, _) in q.match_indices("r.") {
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
            continue;
        }
        let name: String = q[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    for (i, _) in q.match_indices("r[") {
        if let Some(n) = quoted(&q[i + 2..]) {
            out.push(n.to_string());
        }
    }
    out
}

/// Names a query creates itself: `map(fn: (r) => ({r with name: …}))`.
fn created_columns(q: &str) -> BTreeSet<String> {
    q.match_indices(" with ")
        .map(|(i, _)| {
            q[i + 6..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// Check one Flux query against what quantrac writes; returns its problems.
fn check_flux(q: &str, schema: &BTreeMap<String, MeasurementKeys>) -> Vec<String> {
    let mut problems = Vec::new();
    let measurements = compared(q, "_measurement");
    if measurements.is_empty() {
        problems.push("names no _measurement".to_string());
    }
    let mut tags = BTreeSet::new();
    let mut fields = BTreeSet::new();
    for m in &measurements {
        match schema.get(*m) {
            Some(k) => {
                tags.extend(k.tags.iter().cloned());
                fields.extend(k.fields.iter().cloned());
            }
            None => problems.push(format!("measurement {m:?} is not written by quantrac")),
        }
    }
    for f in compared(q, "_field") {
        if !fields.contains(f) {
            problems.push(format!("field {f:?} is not a field of {measurements:?}"));
        }
    }
    for t in strings_after(q, "tag:") {
        if !tags.contains(t) {
            problems.push(format!("tag {t:?} is not a tag of {measurements:?}"));
        }
    }
    let created = created_columns(q);
    let known = |c: &str| {
        SYSTEM_COLUMNS.contains(&c) || tags.contains(c) || fields.contains(c) || created.contains(c)
    };
    let mut columns: Vec<String> = row_columns(q);
    columns.extend(lists_after(q, "columns:"));
    columns.extend(lists_after(q, "rowKey:"));
    columns.extend(lists_after(q, "columnKey:"));
    columns.extend(strings_after(q, "column:").into_iter().map(str::to_string));
    columns.extend(
        strings_after(q, "valueColumn:")
            .into_iter()
            .map(str::to_string),
    );
    for c in columns {
        if !known(&c) {
            problems.push(format!(
                "column {c:?} is neither a tag nor a field of {measurements:?}"
            ));
        }
    }
    problems
}

#[test]
fn the_flux_check_catches_unknown_names() {
    let s = schema();
    let good = r#"from(bucket: v.defaultBucket) |> range(start: -1h)
        |> filter(fn: (r) => r._measurement == "reading" and r._field == "ratio" and r.station == "x")
        |> group(columns: ["station", "parameter"]) |> map(fn: (r) => ({r with twice: r._value * 2.0}))
        |> keep(columns: ["twice", "_time"])"#;
    assert_eq!(check_flux(good, &s), Vec::<String>::new());
    let bad = r#"from(bucket: v.defaultBucket) |> range(start: -1h)
        |> filter(fn: (r) => r._measurement == "readings" and r._field == "val" and r.plant == "x")
        |> group(columns: ["site"])"#;
    let p = check_flux(bad, &s);
    assert_eq!(p.len(), 4, "{p:?}");
    let p = check_flux(
        r#"filter(fn: (r) => r._measurement == "hourly" and r._field == "value") |> pivot(rowKey: ["_time"], columnKey: ["status"], valueColumn: "_value")"#,
        &s,
    );
    assert_eq!(p.len(), 2, "{p:?}");
}

// ---- dashboards -------------------------------------------------------------------------------------------------

const DASHBOARDS: [&str; 5] = [
    "province-overview.json",
    "plant-detail.json",
    "data-completeness.json",
    "alerts.json",
    "quantrac-health.json",
];

fn dashboards() -> Vec<(String, Value)> {
    let dir = repo("deploy/grafana/dashboards");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            (name, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Data source uids the provisioning file declares, by type.
fn provisioned_datasources() -> BTreeMap<String, String> {
    let text = read("deploy/grafana/provisioning/datasources/quantrac.yaml");
    let mut out = BTreeMap::new();
    let mut uid = None;
    for l in lines(&text) {
        if let Some(u) = l.strip_prefix("uid:") {
            uid = Some(u.trim().to_string());
        }
        if let Some(t) = l.strip_prefix("type:") {
            if let Some(u) = uid.take() {
                out.insert(u, t.trim().to_string());
            }
        }
    }
    out
}

/// (dashboard, where, data source type, query) for every query of every dashboard, variables included.
fn queries() -> Vec<(String, String, String, String)> {
    let sources = provisioned_datasources();
    let mut out = Vec::new();
    for (name, d) in dashboards() {
        let kind = |ds: &Value, at: &str| -> String {
            let uid = ds["uid"].as_str().unwrap_or_default();
            sources
                .get(uid)
                .unwrap_or_else(|| {
                    panic!("{name} {at}: data source uid {uid:?} is not provisioned")
                })
                .clone()
        };
        for v in d["templating"]["list"].as_array().unwrap() {
            let at = format!("variable {}", v["name"]);
            let k = kind(&v["datasource"], &at);
            out.push((
                name.clone(),
                at,
                k,
                v["query"].as_str().unwrap().to_string(),
            ));
        }
        for p in d["panels"].as_array().unwrap() {
            let at = format!("panel {:?}", p["title"].as_str().unwrap_or_default());
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name} {at} has no query");
            for t in targets {
                let ds = if t["datasource"].is_object() {
                    &t["datasource"]
                } else {
                    &p["datasource"]
                };
                let k = kind(ds, &at);
                let q = t["query"].as_str().or(t["expr"].as_str()).unwrap_or("");
                assert!(!q.trim().is_empty(), "{name} {at}: empty query");
                out.push((name.clone(), at.clone(), k, q.to_string()));
            }
        }
    }
    out
}

#[test]
fn dashboards_parse_and_flux_names_only_what_quantrac_writes() {
    let found: Vec<String> = dashboards().into_iter().map(|(n, _)| n).collect();
    for d in DASHBOARDS {
        assert!(found.contains(&d.to_string()), "missing dashboard {d}");
    }
    let mut uids = BTreeSet::new();
    for (name, d) in dashboards() {
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: no title"
        );
        let uid = d["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no uid"));
        assert!(uids.insert(uid.to_string()), "{name}: uid {uid} used twice");
        assert!(
            !d["panels"].as_array().unwrap().is_empty(),
            "{name}: no panels"
        );
    }
    let schema = schema();
    let mut problems = Vec::new();
    let mut flux = 0;
    for (name, at, kind, q) in queries() {
        if kind != "influxdb" {
            continue;
        }
        flux += 1;
        for p in check_flux(&q, &schema) {
            problems.push(format!("{name} {at}: {p}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(flux >= 20, "only {flux} Flux queries were checked");
    // The plant page shows each parameter against its limit: a maximum, or pH's low/high range.
    let plant: String = queries()
        .into_iter()
        .filter(|q| q.0 == "plant-detail.json")
        .map(|q| q.3)
        .collect();
    for f in ["\"limit\"", "\"low\"", "\"high\"", "\"value\""] {
        assert!(plant.contains(f), "plant-detail.json does not chart {f}");
    }
}

/// Metric families (`# TYPE`) and label names in a `/metrics` text.
fn exposition(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut families = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            families.insert(rest.split(' ').next().unwrap().to_string());
        } else if !l.starts_with('#') {
            if let (Some(a), Some(b)) = (l.find('{'), l.find('}')) {
                for pair in l[a + 1..b].split(',') {
                    if let Some((k, _)) = pair.split_once('=') {
                        labels.insert(k.trim().to_string());
                    }
                }
            }
        }
    }
    (families, labels)
}

/// `quantrac_…` names, `by (…)` labels and `{label=…}` selector labels of a PromQL expression.
fn promql_names(q: &str) -> (Vec<String>, Vec<String>) {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let metrics = q
        .match_indices("quantrac_")
        .map(|(i, _)| ident(&q[i..]))
        .collect();
    let mut labels = Vec::new();
    for (i, _) in q.match_indices("by (") {
        let body = &q[i + 4..];
        labels.extend(
            body[..body.find(')').unwrap_or(0)]
                .split(',')
                .map(|l| l.trim().to_string()),
        );
    }
    for (i, _) in q.match_indices('{') {
        let body = &q[i + 1..];
        for sel in body[..body.find('}').unwrap_or(0)].split(',') {
            labels.push(ident(sel.trim()));
        }
    }
    (metrics, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_dashboard_uses_only_metrics_quantrac_serves_and_healthcheck_probes() {
    // A forwarder and an MQTT broker that cannot be reached still register their connections, so every label
    // family shows up.
    let rest = format!(
        "[[forward.influx]]\nname = \"nowhere\"\nurl = \"http://127.0.0.1:{}\"\nbucket = \"b\"\n\n\
         [[mqtt.broker]]\nname = \"nowhere\"\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"quantrac-deploy-test\"\n\n{}",
        support::free_port(),
        support::free_port(),
        stations(60, &[])
    );
    let d = Daemon::start("", &rest).await;
    let url = format!("{}/metrics", d.http);
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let complete = support::eventually(Duration::from_secs(30), || {
        let (url, text) = (url.clone(), text.clone());
        async move {
            let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
            let done = body.contains("quantrac_forwarder_backlog_rows{")
                && body.contains("quantrac_connection_up{")
                && body.contains("quantrac_plant_state{");
            *text.lock().unwrap() = body;
            done
        }
    })
    .await;
    let text = text.lock().unwrap().clone();
    assert!(
        complete,
        "/metrics lacks connection or forwarder samples:\n{text}"
    );
    let (families, labels) = exposition(&text);
    let mut problems = Vec::new();
    let mut n = 0;
    for (name, at, kind, q) in queries() {
        if kind != "prometheus" {
            continue;
        }
        n += 1;
        let (metrics, used) = promql_names(&q);
        for m in metrics {
            if !families.contains(&m) {
                problems.push(format!("{name} {at}: metric {m} is not served by /metrics"));
            }
        }
        for l in used {
            // job and instance are added by Prometheus to every scraped sample.
            if !labels.contains(&l) && l != "job" && l != "instance" {
                problems.push(format!(
                    "{name} {at}: label {l:?} is not on any quantrac metric"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(n >= 10, "only {n} PromQL queries were checked");

    // The container's HEALTHCHECK command: 0 while quantrac answers, 1 when nothing listens.
    let ok = Command::new(BIN)
        .args(["healthcheck", "--url", &format!("{}/healthz", d.http)])
        .status()
        .unwrap();
    assert!(ok.success());
    let down = Command::new(BIN)
        .args([
            "healthcheck",
            "--timeout",
            "2",
            "--url",
            &format!("http://127.0.0.1:{}/healthz", support::free_port()),
        ])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
}

// ---- container image, compose, systemd --------------------------------------------------------------------------

#[test]
fn containerfile_builds_in_stages_runs_unprivileged_and_checks_its_health() {
    let f = read("deploy/Containerfile");
    assert_has(
        "deploy/Containerfile",
        &f,
        &[
            "FROM docker.io/library/rust:1-bookworm AS builder",
            "--mount=type=cache,target=/usr/local/cargo/registry",
            "--mount=type=cache,target=/src/target",
            "cargo build --release --locked",
            "FROM docker.io/library/debian:bookworm-slim",
            "ca-certificates",
            "rm -rf /var/lib/apt/lists/*",
            "useradd --system",
            "COPY --from=builder /out/quantrac /usr/local/bin/quantrac",
            "USER quantrac:quantrac",
            "VOLUME [\"/var/lib/quantrac\"]",
            "EXPOSE 8080",
            "HEALTHCHECK",
            "\"healthcheck\", \"--url\", \"http://127.0.0.1:8080/healthz\"",
            "CMD [\"run\", \"--config\", \"/etc/quantrac/quantrac.toml\"]",
        ],
    );
    // What the build copies exists and is not excluded from the build context.
    let ignore = lines(&read(".dockerignore"));
    for l in lines(&f) {
        let Some(rest) = l.strip_prefix("COPY ").filter(|r| !r.starts_with("--from")) else {
            continue;
        };
        let parts: Vec<&str> = rest.split_whitespace().collect();
        for src in &parts[..parts.len() - 1] {
            assert!(
                repo(src).exists(),
                "Containerfile copies {src}, which does not exist"
            );
            let top = src.split('/').next().unwrap();
            assert!(
                !ignore.iter().any(|i| i.trim_end_matches('/') == top),
                ".dockerignore excludes {src}, which the Containerfile copies"
            );
        }
    }
    for i in ["target/", ".git/", "**/*.db"] {
        assert!(ignore.contains(&i.to_string()), ".dockerignore lacks {i}");
    }
}

#[test]
fn compose_stack_validates_and_its_parts_agree() {
    let c = read("deploy/compose.yaml");
    assert_has(
        "deploy/compose.yaml",
        &c,
        &[
            "quantrac:",
            "dockerfile: deploy/Containerfile",
            "quantrac-data:/var/lib/quantrac",
            "./quantrac.compose.toml:/etc/quantrac/quantrac.toml:ro",
            "\"8080:8080\"",
            "image: docker.io/library/influxdb:2",
            "DOCKER_INFLUXDB_INIT_MODE: setup",
            "DOCKER_INFLUXDB_INIT_ORG:",
            "DOCKER_INFLUXDB_INIT_BUCKET:",
            "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN:",
            "image: docker.io/library/eclipse-mosquitto:2",
            "image: docker.io/prom/prometheus",
            "image: docker.io/grafana/grafana-oss",
            "./grafana/provisioning:/etc/grafana/provisioning:ro",
            "./grafana/dashboards:/var/lib/grafana/dashboards:ro",
        ],
    );
    // Every bind-mounted file or folder is in the repository.
    for l in lines(&c) {
        if let Some(m) = l.strip_prefix("- ./") {
            let src = m.split(':').next().unwrap();
            assert!(
                repo(&format!("deploy/{src}")).exists(),
                "compose mounts ./{src}, which does not exist"
            );
        }
    }
    // docker-compose parses and interpolates it (Debian's docker-compose; no engine is contacted).
    let out = Command::new("docker-compose")
        .args([
            "--env-file",
            "deploy/env.example",
            "-f",
            "deploy/compose.yaml",
            "config",
            "-q",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect(
            "cannot run docker-compose: install the docker-compose package (scripts/test does)",
        );
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // quantrac's config for the stack: valid, ledger on the volume, listening where compose and Prometheus look,
    // pointing at the compose services.
    let check = Command::new(BIN)
        .args(["check-config", "--config", "deploy/quantrac.compose.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("QUANTRAC_INFLUX_TOKEN", "t")
        .env("QUANTRAC_MQTT_PASSWORD", "p")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let toml: toml::Value = read("deploy/quantrac.compose.toml").parse().unwrap();
    assert_eq!(
        toml["ledger"]["path"].as_str(),
        Some("/var/lib/quantrac/quantrac.db")
    );
    assert_eq!(toml["http"]["listen"].as_str(), Some("0.0.0.0:8080"));
    assert_eq!(
        toml["forward"]["influx"][0]["url"].as_str(),
        Some("http://influxdb:8086")
    );
    assert_eq!(
        toml["mqtt"]["broker"][0]["host"].as_str(),
        Some("mosquitto")
    );
    assert_eq!(
        toml["mqtt"]["broker"][0]["username"].as_str(),
        Some("quantrac")
    );
    assert_eq!(
        toml["mqtt"]["broker"][0]["share_group"].as_str(),
        Some("quantrac")
    );

    assert_has(
        "deploy/prometheus/prometheus.yml",
        &read("deploy/prometheus/prometheus.yml"),
        &["metrics_path: /metrics", "targets: [\"quantrac:8080\"]"],
    );
    let mosq = read("deploy/mosquitto/mosquitto.conf");
    assert_has(
        "deploy/mosquitto/mosquitto.conf",
        &mosq,
        &[
            "listener 1883",
            "allow_anonymous false",
            "password_file /mosquitto/data/passwd",
            "persistence true",
            "max_queued_messages 0",
        ],
    );
    assert_has(
        "deploy/mosquitto/entrypoint.sh",
        &read("deploy/mosquitto/entrypoint.sh"),
        &[
            "mosquitto_passwd -b \"$passwd\" quantrac",
            "exec /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf",
        ],
    );
    let ds = read("deploy/grafana/provisioning/datasources/quantrac.yaml");
    assert_has(
        "datasources/quantrac.yaml",
        &ds,
        &[
            "url: http://influxdb:8086",
            "version: Flux",
            "token: ${INFLUX_TOKEN}",
            "url: http://prometheus:9090",
        ],
    );
    assert_eq!(
        provisioned_datasources(),
        BTreeMap::from([
            ("quantrac-influx".to_string(), "influxdb".to_string()),
            ("quantrac-prometheus".to_string(), "prometheus".to_string())
        ])
    );
    assert_has(
        "dashboards/quantrac.yaml",
        &read("deploy/grafana/provisioning/dashboards/quantrac.yaml"),
        &["path: /var/lib/grafana/dashboards"],
    );
}

#[test]
fn systemd_unit_is_hardened_and_reloads_with_sighup() {
    let u = read("deploy/quantrac.service");
    assert_has(
        "deploy/quantrac.service",
        &u,
        &[
            "DynamicUser=yes",
            "StateDirectory=quantrac",
            "Restart=on-failure",
            "EnvironmentFile=-/etc/quantrac/quantrac.env",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "SystemCallFilter=@system-service",
            "MemoryDenyWriteExecute=yes",
        ],
    );
    // An empty bounding set: no line gives a capability back.
    for l in lines(&u) {
        if let Some(v) = l
            .strip_prefix("CapabilityBoundingSet=")
            .or(l.strip_prefix("AmbientCapabilities="))
        {
            assert!(v.is_empty(), "{l}");
        }
    }
}
