//! Broken configs: each must fail with the exact operator-readable message (file, key path, what was expected).

use std::path::Path;

use quantrac::config::Config;

const GOOD_STATION: &str = r#"
[[station]]
id = "BN_KCNQV_NUOC01"
name = "Que Vo"
profile = "qcvn40-2011-b"
design_flow_m3_day = 13000
receiving_water = { type = "river", flow_m3_s = 120 }
parameters = { COD = {}, pH = {} }
"#;

fn errors(text: &str) -> Vec<String> {
    match Config::from_str(text, Path::new("config/demo.toml"), Path::new(".")) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.lines(),
    }
}

fn station_with(extra: &str) -> String {
    format!("{GOOD_STATION}{extra}")
}

#[test]
fn good_config_is_accepted() {
    let c = Config::from_str(GOOD_STATION, Path::new("t.toml"), Path::new(".")).unwrap();
    assert_eq!(c.stations.len(), 1);
    assert_eq!(c.timezone.local_minus_utc(), 7 * 3600);
}

#[test]
fn misspelled_modbus_type() {
    let text = format!(
        "{GOOD_STATION}{GOOD_STATION}{}",
        r#"
[[station]]
id = "BN_KCNTS_NUOC01"
name = "Tien Son"
profile = "qcvn40-2011-b"
design_flow_m3_day = 7000
receiving_water = { type = "river" }
parameters = { COD = {} }
[station.modbus]
address = "127.0.0.1:5020"
registers = [{ parameter = "COD", address = 0, type = "flaot32" }]
"#
    )
    .replacen("BN_KCNQV_NUOC01", "BN_KCNYP_NUOC01", 1);
    assert_eq!(
        errors(&text),
        ["config/demo.toml: station[2].modbus.registers[0].type: unknown type \"flaot32\"; expected one of u16, i16, u32, i32, u64, i64, f32, f64"]
    );
}

#[test]
fn unknown_key_names_its_path() {
    let text = station_with("").replace("design_flow_m3_day", "design_flow");
    assert_eq!(
        errors(&text),
        ["config/demo.toml: station[0].design_flow: unknown field `design_flow`, expected one of `id`, `name`, `zone`, `profile`, `design_flow_m3_day`, `receiving_water`, `interval`, `parameters`, `flow_in`, `flow_out`, `modbus`, `mqtt`, `sim`, `facility`, `regime`, `location` (line 6)"]
    );
}

#[test]
fn wrong_value_type_names_its_path() {
    let text = GOOD_STATION.replace(
        "design_flow_m3_day = 13000",
        "design_flow_m3_day = \"lots\"",
    );
    assert_eq!(
        errors(&text),
        ["config/demo.toml: station[0].design_flow_m3_day: invalid type: string \"lots\", expected f64 (line 6)"]
    );
}

#[test]
fn bad_station_id() {
    let text = GOOD_STATION.replace("BN_KCNQV_NUOC01", "BN-KCNQV-NUOC01");
    assert_eq!(
        errors(&text),
        ["config/demo.toml: station[0].id: station id \"BN-KCNQV-NUOC01\" is not in Circular 10 form Province_Facility_Station (three non-empty parts of letters, digits or '-', joined by '_')"]
    );
}

#[test]
fn duplicate_station_id() {
    let text = format!("{GOOD_STATION}{GOOD_STATION}");
    assert_eq!(
        errors(&text),
        ["config/demo.toml: station[1].id: duplicate station id \"BN_KCNQV_NUOC01\"; each station must appear once"]
    );
}

#[test]
fn bad_duration() {
    let text = station_with("interval = \"5 minutes please\"\n");
    assert_eq!(
        errors(&text),
        ["config/demo.toml: station[0].interval: invalid duration \"5 minutes please\" (expected number at 10); expected a number with a unit such as \"30s\", \"5m\", \"1h\", \"5y\""]
    );
}

#[test]
fn unknown_receiving_water() {
    let text = GOOD_STATION.replace("type = \"river\", flow_m3_s = 120", "type = \"sea\"");
    assert_eq!(
        errors(&text),
        ["config/demo.toml: station[0].receiving_water.type: unknown receiving water \"sea\"; expected one of river, stream, canal, channel, lake, pond, marsh, coastal, drainage"]
    );
}

#[test]
fn salinity_and_drainage_are_checked_with_their_key_paths() {
    let water = |w: &str| GOOD_STATION.replace("type = \"river\", flow_m3_s = 120", w);
    assert_eq!(
        errors(&water("type = \"river\", flow_m3_s = 120, salinity = \"salty\"")),
        ["config/demo.toml: station[0].receiving_water.salinity: unknown salinity \"salty\"; expected one of fresh, brackish, saline"]
    );
    assert_eq!(
        errors(&water("type = \"coastal\", use = \"other\", salinity = \"fresh\"")),
        ["config/demo.toml: station[0].receiving_water.salinity: coastal water is not fresh; give brackish or saline (or leave it out: saline)"]
    );
    assert_eq!(
        errors(&water("type = \"drainage\", flow_m3_s = 3")),
        ["config/demo.toml: station[0].receiving_water.flow_m3_s: does not apply to receiving water of type \"drainage\""]
    );
    let c = Config::from_str(
        &water("type = \"river\", flow_m3_s = 120, salinity = \"brackish\""),
        Path::new("config/demo.toml"),
        Path::new("."),
    )
    .unwrap();
    assert_eq!(c.stations[0].salinity, quantrac::config::Salinity::Brackish);
}

#[test]
fn coastal_without_use() {
    let text = GOOD_STATION.replace("type = \"river\", flow_m3_s = 120", "type = \"coastal\"");
    assert_eq!(
        errors(&text),
        ["config/demo.toml: station[0].receiving_water.use: missing for coastal water; expected one of aquatic, other"]
    );
}

#[test]
fn custom_parameter_without_unit() {
    let text = GOOD_STATION.replace("COD = {}, pH = {}", "COD = {}, Zn = { limit = 3 }");
    assert_eq!(
        errors(&text),
        ["config/demo.toml: station[0].parameters.Zn.unit: custom parameter \"Zn\" needs a unit, e.g. unit = \"mg/L\""]
    );
}

#[test]
fn inverted_analyser_range() {
    let text = GOOD_STATION.replace("COD = {}", "COD = { range = [400, 0] }");
    assert_eq!(
        errors(&text),
        ["config/demo.toml: station[0].parameters.COD.range: [400, 0] is not a range; expected [low, high] with low < high"]
    );
}

#[test]
fn unknown_time_zone() {
    let text = format!("[daemon]\ntimezone = \"Asia/Hanoi\"\n{GOOD_STATION}");
    assert_eq!(
        errors(&text),
        ["config/demo.toml: daemon.timezone: unknown time zone \"Asia/Hanoi\"; expected one of Asia/Ho_Chi_Minh, Asia/Saigon, Asia/Bangkok, Asia/Jakarta, Asia/Vientiane, UTC or a fixed offset such as \"+07:00\""]
    );
}

#[test]
fn bad_ledger_synchronous() {
    let text = format!("[ledger]\nsynchronous = \"sometimes\"\n{GOOD_STATION}");
    assert_eq!(errors(&text), ["config/demo.toml: ledger.synchronous: unknown mode \"sometimes\"; expected one of full, normal"]);
}

#[test]
fn secret_from_missing_env_var_is_named_not_printed() {
    let text = format!(
        "[[mqtt.broker]]\nname = \"province\"\nhost = \"127.0.0.1\"\nclient_id = \"q1\"\npassword = \"${{QUANTRAC_TEST_UNSET_VAR}}\"\n{GOOD_STATION}"
    );
    assert_eq!(errors(&text), ["config/demo.toml: mqtt.broker[0].password: environment variable QUANTRAC_TEST_UNSET_VAR is not set"]);
}

#[test]
fn influx_url_expands_environment_variables() {
    let target = |url: &str| {
        format!(
            "[[forward.influx]]\nname = \"vm\"\nurl = \"{url}\"\nbucket = \"q\"\n{GOOD_STATION}"
        )
    };
    // A missing variable is named, as for any secret; a set one expands (and the result is checked as a URL).
    assert_eq!(
        errors(&target("http://${QUANTRAC_TEST_UNSET_VAR}:8086")),
        ["config/demo.toml: forward.influx[0].url: environment variable QUANTRAC_TEST_UNSET_VAR is not set"]
    );
    std::env::set_var("QUANTRAC_TEST_INFLUX_HOST", "127.0.0.1");
    let c = Config::from_str(
        &target("http://${QUANTRAC_TEST_INFLUX_HOST}:8086/"),
        std::path::Path::new("config/demo.toml"),
        std::path::Path::new("config"),
    )
    .unwrap();
    assert_eq!(c.influx[0].url, "http://127.0.0.1:8086");
}

#[test]
fn modbus_station_register_for_unmonitored_parameter_and_bad_order() {
    let text = station_with(
        r#"[station.modbus]
address = "127.0.0.1:5020"
registers = [{ parameter = "TSS", address = 0, type = "f32", order = "ABDC" }]
"#,
    );
    assert_eq!(
        errors(&text),
        [
            "config/demo.toml: station[0].modbus.registers[0].parameter: \"TSS\" is not a parameter of this station; expected one of COD, pH",
            "config/demo.toml: station[0].modbus.registers[0].order: unknown order \"ABDC\"; expected one of ABCD, CDAB, BADC, DCBA",
        ]
    );
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let text = GOOD_STATION
        .replace("BN_KCNQV_NUOC01", "KCNQV")
        .replace("design_flow_m3_day = 13000", "design_flow_m3_day = -5")
        .replace("COD = {}", "COD = { limit = 0 }");
    assert_eq!(
        errors(&text),
        [
            "config/demo.toml: station[0].id: station id \"KCNQV\" is not in Circular 10 form Province_Facility_Station (three non-empty parts of letters, digits or '-', joined by '_')",
            "config/demo.toml: station[0].design_flow_m3_day: -5 is not a positive flow in m³/day",
            "config/demo.toml: station[0].parameters.COD.limit: 0 is not a positive limit",
        ]
    );
}

#[test]
fn no_stations() {
    assert_eq!(
        errors(""),
        ["config/demo.toml: station: no stations configured; add at least one [[station]] table"]
    );
}

#[test]
fn secrets_never_print() {
    std::env::set_var("QUANTRAC_TEST_PW", "hunter2");
    let text = format!(
        "[[mqtt.broker]]\nname = \"province\"\nhost = \"127.0.0.1\"\nclient_id = \"q1\"\npassword = \"${{QUANTRAC_TEST_PW}}\"\n{GOOD_STATION}"
    );
    let c = Config::from_str(&text, Path::new("t.toml"), Path::new(".")).unwrap();
    let shown = format!("{:?}", c.mqtt);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(
        c.mqtt.brokers[0].password.as_ref().map(|p| p.expose()),
        Some("hunter2")
    );
}

#[test]
fn demo_config_is_valid() {
    let c = Config::from_str(
        quantrac::config::DEMO_TOML,
        Path::new("config/demo.toml"),
        Path::new("."),
    )
    .unwrap();
    assert_eq!(c.stations.len(), 8);
}

#[test]
fn example_config_is_valid() {
    std::env::set_var("QUANTRAC_MQTT_PASSWORD", "example");
    std::env::set_var("QUANTRAC_INFLUX_TOKEN", "example");
    let c = Config::load(Path::new("config/quantrac.example.toml")).unwrap();
    assert_eq!(c.stations.len(), 2);
    assert_eq!(c.stations[0].modbus.as_ref().unwrap().registers.len(), 3);
}

#[test]
fn averaging_window_must_divide_a_day() {
    let text =
        format!("[compliance]\naveraging_window = \"7m\"\nspike_fraction = -1\n{GOOD_STATION}");
    assert_eq!(
        errors(&text),
        [
            "config/demo.toml: compliance.averaging_window: \"7m\" does not divide a day into whole windows of at least a minute; use e.g. \"15m\", \"1h\", \"2h\"",
            "config/demo.toml: compliance.spike_fraction: -1 is not a number of at least 0 (0 disables the check)",
        ]
    );
    let ok =
        format!("[compliance]\naveraging_window = \"30m\"\nflat_line = \"off\"\n{GOOD_STATION}");
    let c = Config::from_str(&ok, Path::new("t.toml"), Path::new(".")).unwrap();
    assert_eq!(c.compliance.averaging_window.as_secs(), 1800);
    assert_eq!(c.compliance.quality.flat_line, None);
}

#[test]
fn tt10_section_problems_name_their_keys() {
    let text = format!(
        "[tt10]\nlanding = [\"ftp\", \"\", \"ftp\"]\nsettle = \"soon\"\nscan_interval = \"0s\"\nprocessed = \"done\"\nrejected = \"done\"\nbatch_files = 0\n{GOOD_STATION}"
    );
    assert_eq!(
        errors(&text),
        [
            "config/demo.toml: tt10.landing[1]: must not be empty; give the folder where the FTP server drops the station files",
            "config/demo.toml: tt10.landing[2]: \"ftp\" is listed twice",
            "config/demo.toml: tt10.settle: invalid duration \"soon\" (expected number at 0); expected a number with a unit such as \"30s\", \"5m\", \"1h\", \"5y\"",
            "config/demo.toml: tt10.scan_interval: duration \"0s\" must be greater than zero",
            "config/demo.toml: tt10.rejected: \"done\" is also tt10.processed; rejected files must be kept apart",
            "config/demo.toml: tt10.batch_files: 0 is not from 1 to 10000",
        ]
    );
    let text = station_with("[tt10]\nlanding = [\"ftp\"]\nsettel = \"5s\"\n");
    assert_eq!(
        errors(&text),
        ["config/demo.toml: tt10.settel: unknown field `settel`, expected one of `landing`, `settle`, `scan_interval`, `processed`, `rejected`, `batch_files`, `max_file_bytes`, `maintenance_as` (line 11)"]
    );
    let ok = station_with("[tt10]\nlanding = [\"ftp\"]\n");
    let c = Config::from_str(
        &ok,
        Path::new("/etc/quantrac/q.toml"),
        Path::new("/etc/quantrac"),
    )
    .unwrap();
    assert_eq!(
        c.tt10.landing,
        [std::path::PathBuf::from("/etc/quantrac/ftp")]
    );
    assert_eq!(
        c.tt10.processed_dir(&c.tt10.landing[0]),
        std::path::PathBuf::from("/etc/quantrac/ftp/processed")
    );
}

#[test]
fn alert_route_to_an_unknown_channel_and_kind() {
    let text = station_with(
        r#"
[[alert.channel]]
name = "officers"
type = "log"

[[alert.route]]
stations = ["BN_KCNTS_NUOC01"]
kinds = ["violation", "flood"]
channels = ["officers", "operators"]
"#,
    );
    assert_eq!(
        errors(&text),
        [
            "config/demo.toml: alert.route[0].channels[1]: no channel is named \"operators\"; define it in an [[alert.channel]] table (known: officers)",
            "config/demo.toml: alert.route[0].kinds[1]: unknown alert kind \"flood\"; expected one of exceedance, violation, silent, fault, calibration, quality, backlog",
            "config/demo.toml: alert.route[0].stations[0]: no station has id \"BN_KCNTS_NUOC01\"; use a configured station id or a pattern with *",
        ]
    );
}

#[test]
fn alert_channels_missing_what_they_need() {
    let text = station_with(
        r#"
[[alert.channel]]
name = "mail"
type = "email"
tls = "ssl"
to = ["not an address"]

[[alert.channel]]
name = "hook"
type = "webhook"
url = "ftp://example.vn/x"

[[alert.channel]]
name = "pager"
type = "sms"
"#,
    );
    assert_eq!(
        errors(&text),
        [
            "config/demo.toml: alert.channel[0].server: email channels need server",
            "config/demo.toml: alert.channel[0].from: email channels need from",
            "config/demo.toml: alert.channel[0].tls: unknown \"ssl\"; expected starttls, tls or plain",
            "config/demo.toml: alert.channel[0].to[0]: \"not an address\" is not an e-mail address",
            "config/demo.toml: alert.channel[1].url: \"ftp://example.vn/x\" is not an http(s) URL, e.g. \"https://bridge.example.vn/quantrac\"",
            "config/demo.toml: alert.channel[2].type: unknown channel type \"sms\"; expected email, webhook, mqtt or log",
        ]
    );
}

#[test]
fn http_tls_files_are_named() {
    let text =
        format!("[http]\ntls = {{ cert_file = \"\", key_file = \"k.pem\" }}\n{GOOD_STATION}");
    assert_eq!(
        errors(&text),
        ["config/demo.toml: http.tls.cert_file: must name a PEM file"]
    );
    let text = format!("[http]\ntls = {{ cert_file = \"c.pem\" }}\n{GOOD_STATION}");
    assert!(errors(&text)[0].contains("key_file"), "{:?}", errors(&text));
}

#[test]
fn http_limits_are_checked_with_their_key_paths() {
    let text = format!(
        "[http]\nmax_connections = 0\nmax_connections_per_client = 10\nmax_streams = 0\nmax_header_bytes = 100\nheader_read_timeout = \"0s\"\nidle_timeout = \"soon\"\n{GOOD_STATION}"
    );
    let e = errors(&text);
    for key in [
        "http.max_connections:",
        "http.max_connections_per_client:",
        "http.max_streams:",
        "http.max_header_bytes:",
        "http.header_read_timeout:",
        "http.idle_timeout:",
    ] {
        assert!(e.iter().any(|l| l.contains(key)), "{key} missing in {e:#?}");
    }
}

#[test]
fn webhook_url_from_the_environment_or_a_file_is_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hook"), "ftp://user:pw@bridge.vn/T0KEN\n").unwrap();
    let text = station_with(
        r#"
[[alert.channel]]
name = "both"
type = "webhook"
url = "https://bridge.vn/x"
url_file = "hook"

[[alert.channel]]
name = "file"
type = "webhook"
url_file = "hook"

[[alert.channel]]
name = "env"
type = "webhook"
url = "${QT_CONFIG_TEST_UNSET_HOOK}"
"#,
    );
    let e = match Config::from_str(&text, Path::new("config/demo.toml"), dir.path()) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.lines(),
    };
    assert_eq!(
        e,
        [
            "config/demo.toml: alert.channel[0].url: give either alert.channel[0].url or alert.channel[0].url_file, not both",
            "config/demo.toml: alert.channel[1].url: \"ftp://bridge.vn/…\" is not an http(s) URL, e.g. \"https://bridge.example.vn/quantrac\"",
            "config/demo.toml: alert.channel[2].url: environment variable QT_CONFIG_TEST_UNSET_HOOK is not set",
        ]
    );
    std::fs::write(dir.path().join("hook"), "https://bridge.vn/T0KEN\n").unwrap();
    let text = station_with(
        "[[alert.channel]]\nname = \"file\"\ntype = \"webhook\"\nurl_file = \"hook\"\n",
    );
    let c = Config::from_str(&text, Path::new("t.toml"), dir.path()).unwrap();
    let shown = format!("{:?}", c.alert.channels);
    assert!(!shown.contains("T0KEN"), "{shown}");
}

// `[[forward.tt10]]`: every option's problem names its key path.

#[test]
fn tt10_targets_every_problem_names_its_key() {
    let text = format!(
        r#"
[[forward.tt10]]
name = "a:b"
protocol = "ftpx"
host = ""
username = ""
layout = "by_day"
stations = ["BN_NOPE_NUOC01", "HN_*"]
start = "yesterday"
rate_limit = -1
batch_readings = 0
timeout = "0s"
max_backoff = "soon"
batch_wait = "x"
deadline = "0s"
private_key_file = "id"
host_key = "abc"

[[forward.tt10]]
name = "ministry"
protocol = "sftp"
host = "sftp.monre.gov.vn"
username = "so"
host_key = "MD5:aa"
ca_file = "ca.pem"

[[forward.tt10]]
name = "ministry"
protocol = "sftp"
host = "sftp.monre.gov.vn"
username = "so"
password_file = "/nonexistent/secret"
{GOOD_STATION}"#
    );
    assert_eq!(
        errors(&text),
        [
            "config/demo.toml: forward.tt10[0].name: \"a:b\" is not a usable name; give a non-empty name without ':'",
            "config/demo.toml: forward.tt10[0].protocol: unknown protocol \"ftpx\"; expected \"ftp\", \"ftps\" or \"sftp\"",
            "config/demo.toml: forward.tt10[0].host: must name the server, e.g. \"ftp.monre.gov.vn\"",
            "config/demo.toml: forward.tt10[0].username: must not be empty",
            "config/demo.toml: forward.tt10[0].password: FTP needs a password (or password_file)",
            "config/demo.toml: forward.tt10[0].private_key_file: is for SFTP only",
            "config/demo.toml: forward.tt10[0].host_key: is for SFTP only",
            "config/demo.toml: forward.tt10[0].layout: unknown layout \"by_day\"; expected \"flat\" or \"station_date\"",
            "config/demo.toml: forward.tt10[0].stations[0]: no station has id \"BN_NOPE_NUOC01\"; use a configured station id or a pattern with *",
            "config/demo.toml: forward.tt10[0].stations[1]: the pattern \"HN_*\" matches no configured station",
            "config/demo.toml: forward.tt10[0].start: \"yesterday\" is not \"now\" or a date yyyy-mm-dd",
            "config/demo.toml: forward.tt10[0].rate_limit: -1 is not a number of files per second (0 for no limit)",
            "config/demo.toml: forward.tt10[0].batch_readings: 0 is out of range; expected 1 to 100000",
            "config/demo.toml: forward.tt10[0].timeout: duration \"0s\" must be greater than zero",
            "config/demo.toml: forward.tt10[0].max_backoff: invalid duration \"soon\" (expected number at 0); expected a number with a unit such as \"30s\", \"5m\", \"1h\", \"5y\"",
            "config/demo.toml: forward.tt10[0].batch_wait: invalid duration \"x\" (expected number at 0); expected a number with a unit such as \"30s\", \"5m\", \"1h\", \"5y\"",
            "config/demo.toml: forward.tt10[0].deadline: duration \"0s\" must be greater than zero",
            "config/demo.toml: forward.tt10[1].private_key_file: SFTP needs a private_key_file or a password",
            "config/demo.toml: forward.tt10[1].ca_file: is for FTPS; SFTP checks the server by host_key",
            "config/demo.toml: forward.tt10[1].host_key: \"MD5:aa\" is not a SHA256 fingerprint; expected \"SHA256:…\" as `ssh-keygen -lf <host key>.pub` prints it",
            "config/demo.toml: forward.tt10[2].name: duplicate target name \"ministry\"; each target keeps its own cursor",
            "config/demo.toml: forward.tt10[2].password_file: cannot read secret file /nonexistent/secret: No such file or directory (os error 2)",
            "config/demo.toml: forward.tt10[2].host_key: SFTP needs the server's host key fingerprint (\"SHA256:…\", from `ssh-keygen -lf`); quantrac never trusts an unknown server",
        ]
    );
}

#[test]
fn a_tt10_target_is_accepted_with_its_defaults() {
    let text = format!(
        "[[forward.tt10]]\nname = \"so-tnmt\"\nprotocol = \"ftps\"\nhost = \"ftp.bacninh.gov.vn\"\nusername = \"kcnqv\"\n\
         password = \"p\"\nstations = [\"BN_KCNQV_*\"]\nstart = \"2026-01-01\"\n{GOOD_STATION}"
    );
    let c = Config::from_str(&text, Path::new("t.toml"), Path::new(".")).unwrap();
    let t = &c.transmit[0];
    assert_eq!(
        (t.port, t.receives.clone()),
        (21, vec!["BN_KCNQV_NUOC01".to_string()])
    );
    assert_eq!(
        t.start,
        quantrac::config::transmit::Start::From(quantrac::model::Timestamp(1_767_200_400_000))
    );
    assert_eq!(t.deadline, std::time::Duration::from_secs(300));
}

// `maintenance_as`: how maintenance readings (no status 03 in the Circular) leave quantrac, per target and for
// exports; a wrong value names its key path, the default is "01" (the former fixed mapping).
#[test]
fn maintenance_as_is_checked_with_its_key_path() {
    let target = |m: &str| {
        format!(
            "[[forward.tt10]]\nname = \"so\"\nprotocol = \"ftp\"\nhost = \"ftp.bacninh.gov.vn\"\nusername = \"kcnqv\"\n\
             password = \"p\"\nmaintenance_as = \"{m}\"\n"
        )
    };
    let text = format!(
        "[tt10]\nmaintenance_as = \"maintenance\"\n\n{}\n{GOOD_STATION}",
        target("03")
    );
    assert_eq!(
        errors(&text),
        [
            "config/demo.toml: tt10.maintenance_as: \"maintenance\" is not a way to send maintenance readings (the Circular has no status 03); expected \"01\", \"02\" or \"omit\"",
            "config/demo.toml: forward.tt10[0].maintenance_as: \"03\" is not a way to send maintenance readings (the Circular has no status 03); expected \"01\", \"02\" or \"omit\"",
        ]
    );
    use quantrac::circular10::MaintenanceAs;
    for (m, want) in [
        ("01", MaintenanceAs::Calibrating),
        ("02", MaintenanceAs::Fault),
        ("omit", MaintenanceAs::Omit),
    ] {
        let text = format!(
            "[tt10]\nmaintenance_as = \"{m}\"\n\n{}\n{GOOD_STATION}",
            target(m)
        );
        let c = Config::from_str(&text, Path::new("t.toml"), Path::new(".")).unwrap();
        assert_eq!(
            (c.tt10.maintenance_as, c.transmit[0].maintenance_as),
            (want, want)
        );
    }
    let c = Config::from_str(GOOD_STATION, Path::new("t.toml"), Path::new(".")).unwrap();
    assert_eq!(c.tt10.maintenance_as, MaintenanceAs::Calibrating);
}

// flow_in / flow_out (which parameters measure the inflow and the outflow) must name monitored parameters.
#[test]
fn flow_in_and_flow_out_name_monitored_parameters() {
    assert_eq!(
        errors(&station_with("flow_in = \"Flow_in\"\nflow_out = \"Q\"\n")),
        [
            "config/demo.toml: station[0].flow_in: parameter \"Flow_in\" is not monitored by this station; expected one of COD, pH",
            "config/demo.toml: station[0].flow_out: parameter \"Q\" is not monitored by this station; expected one of COD, pH",
        ]
    );
}

#[test]
fn facility_and_permit_keys_name_their_path() {
    let long = "x".repeat(201);
    let text = station_with(&format!(
        r#"[station.facility]
name = "  "
operator = "{long}"
address = "line one\nline two"
permit_number = ""
permit_date = "12/05/2023"
permit_issuer = "Bộ Tài nguyên và Môi trường"
"#
    ))
    .replace("flow_m3_s = 120 }", "flow_m3_s = 120, name = \"\" }");
    assert_eq!(
        errors(&text),
        [
            "config/demo.toml: station[0].receiving_water.name: must not be empty; leave the key out when it is not known",
            "config/demo.toml: station[0].facility.permit_date: \"12/05/2023\" is not a date; expected yyyy-MM-dd such as \"2023-05-12\"",
            "config/demo.toml: station[0].facility.name: must not be empty; leave the key out when it is not known",
            "config/demo.toml: station[0].facility.operator: is 201 characters long; at most 200 fit on the report",
            "config/demo.toml: station[0].facility.address: contains a line break or control character; write it on one line",
            "config/demo.toml: station[0].facility.permit_number: must not be empty; leave the key out when it is not known",
        ]
    );
}

#[test]
fn a_permit_date_needs_its_number_and_unknown_facility_keys_are_named() {
    let text = station_with("[station.facility]\npermit_date = \"2023-05-12\"\n");
    assert_eq!(
        errors(&text),
        ["config/demo.toml: station[0].facility.permit_date: a permit date without permit_number; give the permit's number too"]
    );
    let text = station_with("[station.facility]\npermit = \"123\"\n");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("config/demo.toml: station[0].facility.permit: unknown field `permit`, expected one of `name`, `operator`, `address`, `permit_number`, `permit_date`, `permit_issuer`"),
        "{}",
        e[0]
    );
    let text = station_with("").replace("flow_m3_s = 120 }", "flow_m3_s = 120, label = \"x\" }");
    let e = errors(&text);
    assert!(
        e[0].contains("station[0].receiving_water.label: unknown field `label`"),
        "{}",
        e[0]
    );
}

#[test]
fn facility_keys_are_optional_and_checked_values_are_kept() {
    let text = station_with(
        "[station.facility]\nname = \" Nhà máy XLNT \"\npermit_number = \"123/GPMT-BTNMT\"\npermit_date = \"2023-05-12\"\n",
    )
    .replace("flow_m3_s = 120 }", "flow_m3_s = 120, name = \"sông Cầu\" }");
    let c = Config::from_str(&text, Path::new("t.toml"), Path::new(".")).unwrap();
    let s = &c.stations[0];
    assert_eq!(s.facility.name.as_deref(), Some("Nhà máy XLNT"));
    assert_eq!(
        s.facility.permit_date.map(|d| d.to_string()).as_deref(),
        Some("2023-05-12")
    );
    assert_eq!(s.facility.operator, None);
    assert_eq!(s.receiving_water_name.as_deref(), Some("sông Cầu"));
    let bare = Config::from_str(GOOD_STATION, Path::new("t.toml"), Path::new(".")).unwrap();
    assert_eq!(
        bare.stations[0].facility,
        quantrac::config::Facility::default()
    );
}

/// Issue 19: a bad value and an unknown limit profile — in other stations or in the same one — are reported by one
/// run, by the library and by `quantrac check-config` (exit 2), each once.
#[test]
fn check_config_reports_a_bad_value_and_an_unknown_profile_at_once() {
    let other = GOOD_STATION
        .replace("BN_KCNQV_NUOC01", "BN_KCNTS_NUOC01")
        .replace("qcvn40-2011-b", "qcvn99");
    let same = GOOD_STATION
        .replace("BN_KCNQV_NUOC01", "BN_KCNYP_NUOC01")
        .replace("qcvn40-2011-b", "qcvn98")
        .replace("design_flow_m3_day = 13000", "design_flow_m3_day = -5");
    let text = format!(
        "{}{other}{same}",
        GOOD_STATION.replace("design_flow_m3_day = 13000", "design_flow_m3_day = 0")
    );
    let want = [
        "config/demo.toml: station[0].design_flow_m3_day: 0 is not a positive flow in m³/day",
        "config/demo.toml: station[2].design_flow_m3_day: -5 is not a positive flow in m³/day",
        "config/demo.toml: station[1].profile: unknown limit profile \"qcvn99\"; known profiles: qcvn40-2011-a, qcvn40-2011-b (built in, or a *.toml file in daemon.profiles_dir)",
        "config/demo.toml: station[2].profile: unknown limit profile \"qcvn98\"; known profiles: qcvn40-2011-a, qcvn40-2011-b (built in, or a *.toml file in daemon.profiles_dir)",
    ];
    let e =
        quantrac::reload::checked_from_str(&text, Path::new("config/demo.toml"), Path::new("."))
            .map(|_| ())
            .expect_err("the config was accepted");
    assert_eq!(e.lines(), want);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.toml");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quantrac"))
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let shown = String::from_utf8_lossy(&out.stderr);
    let shown: Vec<&str> = shown.lines().collect();
    let prefix = format!("{}: ", file.display());
    let want: Vec<String> = want
        .iter()
        .map(|w| w.replacen("config/demo.toml: ", &prefix, 1))
        .collect();
    assert_eq!(shown, want, "{}", out.stderr.len());
}

#[test]
fn station_locations_and_the_map_tile_server_are_checked_with_key_paths() {
    let station = |id: &str, location: &str| {
        GOOD_STATION.replace("BN_KCNQV_NUOC01", id) + &format!("location = {location}\n")
    };
    let text = format!(
        "[http]\nmap_tiles = \"https://tile.example.org/{{z}}/{{x}}.png\"\nmap_attribution = \" \"\n{}{}{}{}",
        station("BN_KCNQV_NUOC01", "{ lat = 95, lon = 106.1 }"),
        station("BN_KCNYP_NUOC01", "{ lat = 106.1, lon = 21.2 }"),
        station("BN_KCNTS_NUOC01", "{ lon = 181 }"),
        station("BN_KCNGB_NUOC01", "{ lat = 21.07, lon = 106.17 }"),
    );
    assert_eq!(
        errors(&text),
        [
            "config/demo.toml: http.map_tiles: \"https://tile.example.org/{z}/{x}.png\" lacks {y}; a tile URL needs {z}, {x} and {y}, e.g. \"https://tile.openstreetmap.org/{z}/{x}/{y}.png\"",
            "config/demo.toml: http.map_attribution: must be one line of 1 to 200 characters, e.g. \"© OpenStreetMap contributors\"",
            "config/demo.toml: station[0].location.lat: 95 is not a latitude; expected decimal degrees from -90 to 90",
            "config/demo.toml: station[1].location.lat: 106.1 is not a latitude; lat and lon look swapped (lat is the north–south coordinate, about 21 in Bắc Ninh; lon the east–west one, about 106)",
            "config/demo.toml: station[2].location.lat: missing; give the latitude in decimal degrees, e.g. 21.135",
            "config/demo.toml: station[2].location.lon: 181 is not a longitude; expected decimal degrees from -180 to 180",
        ]
    );
    // A misspelt coordinate stops at its key path; an attribution without a tile server is named.
    assert_eq!(
        errors(&station("BN_KCNQV_NUOC01", "{ lat = 21.1, lng = 106.1 }")),
        ["config/demo.toml: station[0].location.lng: unknown field `lng`, expected `lat` or `lon` (line 9)"]
    );
    assert_eq!(
        errors(&format!("[http]\nmap_attribution = \"© OpenStreetMap contributors\"\n{GOOD_STATION}")),
        ["config/demo.toml: http.map_attribution: is set but http.map_tiles is not; give the tile server too, or leave both out"]
    );
    // The good ones: a table or inline, the tile server's origin for the page's policy, the default attribution.
    let text = format!(
        "[http]\nmap_tiles = \"https://{{s}}.tile.example.org/{{z}}/{{x}}/{{y}}.png\"\n{}[station.location]\nlat = -8.5\nlon = 179.9\n",
        GOOD_STATION
    );
    let c = Config::from_str(&text, Path::new("t.toml"), Path::new(".")).unwrap();
    let map = c.http.map.unwrap();
    assert_eq!(map.origin, "https://*.tile.example.org");
    assert_eq!(map.attribution, "© OpenStreetMap contributors");
    let at = c.stations[0].location.unwrap();
    assert_eq!((at.lat, at.lon), (-8.5, 179.9));
    // The demo places all eight plants and sets no tile server (it runs offline).
    let demo = Config::from_str(
        quantrac::config::DEMO_TOML,
        Path::new("demo.toml"),
        Path::new("config"),
    )
    .unwrap();
    assert!(demo.stations.iter().all(|s| s.location.is_some()));
    assert!(demo.http.map.is_none());
}

#[test]
fn bad_station_scopes_of_a_token_name_the_pattern() {
    let token = |stations: &str| {
        station_with(&format!(
            "\n[[http.token]]\nname = \"officer\"\nrole = \"viewer\"\nsha256 = \"{}\"\nstations = {stations}\n",
            "ab".repeat(32)
        ))
    };
    assert_eq!(
        errors(&token(r#"["BN_KCNTS_*", "BN KCN"]"#)),
        ["config/demo.toml: http.token[0].stations: station pattern \"BN KCN\" holds ' '; use station-id characters and * only"]
    );
    assert_eq!(
        errors(&token(r#"[""]"#)),
        ["config/demo.toml: http.token[0].stations: a station pattern is empty; write a station id or a prefix with *, e.g. \"BN_KCNTS_*\""]
    );
    assert_eq!(
        errors(&token(r#""BN_KCNTS_*""#)),
        ["config/demo.toml: http.token[0].stations: invalid type: string \"BN_KCNTS_*\", expected a sequence (line 14)"]
    );
    assert_eq!(
        errors(&station_with("\n[http]\nmetrics_public = \"no\"\n")),
        ["config/demo.toml: http.metrics_public: invalid type: string \"no\", expected a boolean (line 11)"]
    );
}
