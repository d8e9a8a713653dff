//! The MQTT source against real brokers: a Mosquitto started by the test and the embedded broker. The daemon runs
//! as a process (`quantrac run`); tests publish at QoS 1 with rumqttc or `mosquitto_pub` and count what the ledger
//! holds. Every wait polls with a deadline.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use chrono::FixedOffset;
use quantrac::config::mqtt::JsonMappingSection;
use quantrac::ledger::query::{ReadingFilter, Table};
use quantrac::ledger::Reader;
use quantrac::model::{Parameter, Reading, StationId, Status, Timestamp, Unit};
use quantrac::source::mqtt::payload;
use support::mosquitto::{free_port, Mosquitto};
use support::stream::{count, stored_keys, Publisher, Quantrac};
use support::wait_until;

const BIN: &str = env!("CARGO_BIN_EXE_quantrac");
const STATIONS: [&str; 2] = ["BN_KCNQV_NUOC01", "BN_KCNTS_NUOC01"];
const PARAMS: [&str; 10] = [
    "Flow", "Temp", "pH", "TSS", "COD", "NH4", "TN", "TP", "TOC", "Cl",
];

fn tz() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).unwrap()
}

/// A config with the two test stations (ten parameters each) and the given `[mqtt]` tables.
fn write_config(dir: &Path, mqtt: &str) -> PathBuf {
    let params = PARAMS
        .iter()
        .map(|p| format!("{p} = {{}}"))
        .collect::<Vec<_>>()
        .join(", ");
    let stations: String = STATIONS
        .iter()
        .map(|id| {
            format!(
                "[[station]]\nid = \"{id}\"\nname = \"{id}\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 5000\n\
                 receiving_water = {{ type = \"river\", flow_m3_s = 120 }}\nparameters = {{ {params} }}\n\n"
            )
        })
        .collect();
    let text =
        format!("[ledger]\npath = \"ledger.db\"\n[http]\nenabled = false\n\n{mqtt}\n\n{stations}");
    let path = dir.join("quantrac.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn broker_table(port: u16) -> String {
    format!(
        "[[mqtt.broker]]\nname = \"test\"\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"quantrac-test\"\nkeep_alive = \"5s\"\n"
    )
}

/// Message `i`: ten readings of one station at one minute, as flat JSON on `stations/<id>/data`.
fn message(i: u64) -> (String, Vec<u8>) {
    let station = STATIONS[(i % 2) as usize];
    let ts = Timestamp(
        Timestamp::now().millis() / 86_400_000 * 86_400_000 - 20 * 86_400_000
            + (i / 2) as i64 * 60_000,
    );
    let readings: Vec<Reading> = PARAMS
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let parameter = Parameter::new(p).unwrap();
            Reading {
                station: StationId::parse(station).unwrap(),
                unit: Unit::new(parameter.standard_unit().unwrap_or("")),
                parameter,
                ts,
                // Within the range checks: pH 6.0–7.9, other parameters 0–109.9.
                value: if *p == "pH" {
                    6.0 + (i % 20) as f64 / 10.0
                } else {
                    (i % 1000) as f64 / 10.0 + k as f64
                },
                status: Status::Measuring,
            }
        })
        .collect();
    let mut msgs = payload::encode_json(&JsonMappingSection::default(), &readings, tz());
    (format!("stations/{station}/data"), msgs.remove(0))
}

/// Every key the first `n` messages carry.
fn expected_keys(n: u64) -> HashSet<(String, String, i64)> {
    (0..n)
        .flat_map(|i| {
            let station = STATIONS[(i % 2) as usize].to_string();
            let ts = Timestamp::now().millis() / 86_400_000 * 86_400_000 - 20 * 86_400_000
                + (i / 2) as i64 * 60_000;
            PARAMS
                .iter()
                .map(move |p| (station.clone(), p.to_string(), ts))
        })
        .collect()
}

/// The daemon as a child process, its log in the test directory.
/// Publish messages 0..n from a background thread, `pause` apart.
fn publish_stream(publisher: &Publisher, n: u64, pause: Duration) -> std::thread::JoinHandle<u64> {
    let never = Arc::new(AtomicBool::new(false));
    publisher.stream(message, pause, n, never, Arc::new(AtomicU64::new(0)))
}

/// Assert the ledger holds exactly the readings of messages 0..n, each once.
fn assert_exactly(db: &Path, n: u64, quantrac: &Quantrac) {
    let want = n as i64 * PARAMS.len() as i64;
    let ok = wait_until(Duration::from_secs(60), || count(db) >= want);
    assert!(
        ok,
        "{} of {want} readings in the ledger; log tail:\n{}",
        count(db),
        quantrac
            .log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stored = stored_keys(db);
    let unique: HashSet<_> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), unique.len(), "a key is stored twice");
    assert_eq!(
        unique,
        expected_keys(n),
        "stored keys differ from published keys"
    );
    let r = Reader::open(db).unwrap();
    assert_eq!(r.count(Table::Conflicts).unwrap(), 0);
}

#[test]
fn mosquitto_readings_arrive_and_bad_input_is_quarantined() {
    let mosq = Mosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker_table(mosq.port));
    let db = dir.path().join("ledger.db");
    let mut q = Quantrac::start(&config);
    assert!(
        wait_until(Duration::from_secs(30), || q
            .log()
            .contains("MQTT connected.")),
        "no connection:\n{}",
        q.log()
    );
    let publisher = Publisher::connect(mosq.port, "test-publisher-1");
    publisher.publish(message(0));
    assert!(
        wait_until(Duration::from_secs(30), || count(&db) == 10),
        "first message not committed:\n{}",
        q.log()
    );

    let topic0 = format!("stations/{}/data", STATIONS[0]);
    publisher.publish((
        topic0.clone(),
        br#"{"ts": "2026-11-27T10:00:00+07:00", "COD": "#.to_vec(),
    ));
    let ts = Timestamp(Timestamp::now().millis() - 3_600_000);
    publisher.publish((
        topic0.clone(),
        format!(r#"{{"ts": "{ts}", "COD": "abc", "TSS": true, "pH": 7.1}}"#).into_bytes(),
    ));
    let (_, good) = message(2);
    publisher.publish(("stations/BN_NOPE_X/data".into(), good));
    let mut big = br#"{"ts": "2026-11-27T10:00:00+07:00", "note": ""#.to_vec();
    big.resize(1_000_000, b'x');
    big.extend_from_slice(br#"", "COD": 1}"#);
    mosq.publish_file(&topic0, &big);
    mosq.publish_file(
        &topic0,
        b"{\"ts\": \"2026-11-27T10:00:00+07:00\", \"COD\": \"\xff\xfe\"}",
    );
    publisher.publish(message(1));
    publisher.wait_acked(5, Duration::from_secs(30));

    // Good: messages 0 and 1, and pH of the wrong-types message. Quarantined: malformed JSON, COD, TSS, unknown
    // station, oversized, invalid UTF-8.
    let done = wait_until(Duration::from_secs(30), || {
        let r = Reader::open(&db).unwrap();
        r.count_readings().unwrap() == 21 && r.count(Table::Quarantine).unwrap() == 6
    });
    let r = Reader::open(&db).unwrap();
    let quarantined = r.quarantine(100).unwrap();
    let reasons: Vec<&str> = quarantined.iter().map(|x| x.reason.as_str()).collect();
    assert!(
        done,
        "{} readings, quarantine {reasons:#?}",
        r.count_readings().unwrap()
    );
    for want in [
        "invalid JSON: EOF while parsing a value at line 1 column 43",
        "parameter COD: value \"abc\" is not a number",
        "parameter TSS: value a boolean is not a number",
        "topic \"stations/BN_NOPE_X/data\" names station \"BN_NOPE_X\", which is not configured",
        "payload of 1000012 bytes exceeds the 262144-byte limit (max_payload_bytes); the first 65536 bytes are kept",
        "payload is not valid UTF-8 (invalid byte at offset 44)",
    ] {
        assert!(reasons.contains(&want), "{want:?} not in {reasons:#?}");
    }
    for x in &quarantined {
        assert_eq!(x.source, "mqtt");
        assert!(
            x.origin.starts_with("mqtt://test/stations/"),
            "{}",
            x.origin
        );
        assert!(!x.raw.is_empty());
    }
    let big_q = quarantined
        .iter()
        .find(|x| x.reason.contains("exceeds"))
        .unwrap();
    assert_eq!(big_q.raw.len(), 65_536);
    q.stop();
}

/// Issue 19: a value the evaluator refuses (impossible, or a station clock in the future) and a value the payload
/// parser refuses are quarantined with the message as sent (topic, payload bytes, its timestamp); the message's other
/// values are committed.
#[test]
fn refused_values_are_quarantined_with_the_message_as_sent() {
    let mosq = Mosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker_table(mosq.port));
    let db = dir.path().join("ledger.db");
    let mut q = Quantrac::start(&config);
    assert!(
        wait_until(Duration::from_secs(30), || q
            .log()
            .contains("MQTT connected.")),
        "no connection:\n{}",
        q.log()
    );
    let publisher = Publisher::connect(mosq.port, "test-publisher-q");
    let topic = format!("stations/{}/data", STATIONS[0]);
    let hour_ago = Timestamp(Timestamp::now().millis() - 3_600_000);
    let tomorrow = Timestamp(Timestamp::now().millis() + 86_400_000);
    let sent = [
        format!(r#"{{"ts": "{hour_ago}", "COD": -5, "pH": 7.1}}"#),
        format!(r#"{{"ts": "{tomorrow}", "TSS": 12}}"#),
        format!(r#"{{"ts": "{hour_ago}", "NH4": "n/a", "Temp": 25}}"#),
    ];
    for payload in &sent {
        publisher.publish((topic.clone(), payload.clone().into_bytes()));
    }
    publisher.wait_acked(3, Duration::from_secs(30));
    let done = wait_until(Duration::from_secs(30), || {
        let r = Reader::open(&db).unwrap();
        r.count(Table::Quarantine).unwrap() == 3
    });
    let r = Reader::open(&db).unwrap();
    let rows = r.quarantine(100).unwrap();
    assert!(done, "quarantine: {rows:#?}\n{}", q.log());
    // pH and Temp arrive.
    assert_eq!(r.count_readings().unwrap(), 2);
    for (payload, why) in sent
        .iter()
        .zip(["impossible", "in the future", "not a number"])
    {
        let row = rows
            .iter()
            .find(|x| x.reason.contains(why))
            .unwrap_or_else(|| panic!("no row for {why:?}: {rows:#?}"));
        assert_eq!(String::from_utf8_lossy(&row.raw), *payload, "{why}");
        assert_eq!(row.origin, format!("mqtt://test/{topic}"), "{why}");
        assert_eq!(row.station.as_deref(), Some(STATIONS[0]), "{why}");
    }
    q.stop();
}

#[test]
fn mosquitto_restart_mid_stream_loses_nothing() {
    let mut mosq = Mosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker_table(mosq.port));
    let db = dir.path().join("ledger.db");
    let q = Quantrac::start(&config);
    assert!(
        wait_until(Duration::from_secs(30), || q
            .log()
            .contains("MQTT connected.")),
        "no connection:\n{}",
        q.log()
    );
    let n = 2000;
    let publisher = Publisher::connect(mosq.port, "test-publisher-2");
    let stream = publish_stream(&publisher, n, Duration::from_millis(2));
    assert!(
        wait_until(Duration::from_secs(30), || count(&db) >= 2000),
        "stream did not start:\n{}",
        q.log()
    );
    let before = count(&db);
    mosq.restart();
    stream.join().unwrap();
    publisher.wait_acked(n, Duration::from_secs(60));
    assert_exactly(&db, n, &q);
    assert!(
        before < n as i64 * 10,
        "the broker restarted after the stream ended; the test proves nothing"
    );
    let log = q.log();
    assert!(
        log.matches("MQTT connected.").count() >= 2,
        "quantrac did not reconnect:\n{log}"
    );
}

#[test]
fn sigkill_mid_stream_then_restart_loses_nothing() {
    let mosq = Mosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker_table(mosq.port));
    let db = dir.path().join("ledger.db");
    let mut q = Quantrac::start(&config);
    assert!(
        wait_until(Duration::from_secs(30), || q
            .log()
            .contains("MQTT connected.")),
        "no connection:\n{}",
        q.log()
    );
    // A burst, so that many messages are between delivery and commit when the process dies.
    let n = 20_000;
    let publisher = Publisher::connect(mosq.port, "test-publisher-3");
    let stream = publish_stream(&publisher, n, Duration::ZERO);
    assert!(
        wait_until(Duration::from_secs(30), || count(&db) >= 20_000),
        "stream did not start:\n{}",
        q.log()
    );
    q.sigkill();
    let at_kill = count(&db);
    assert!(
        at_kill < n as i64 * 10,
        "the stream ended before the kill; the test proves nothing"
    );
    // Committed before the kill stays committed.
    let q = Quantrac::start(&config);
    stream.join().unwrap();
    publisher.wait_acked(n, Duration::from_secs(60));
    assert_exactly(&db, n, &q);
    assert!(count(&db) >= at_kill);
}

#[test]
fn embedded_broker_carries_tt10_payloads_on_a_station_topic() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mqtt = format!(
        "[mqtt.embedded]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n\n[[mqtt.broker]]\nname = \"embedded\"\nclient_id = \"quantrac-test\"\nformat = \"tt10\"\n"
    );
    let config = write_config(dir.path(), &mqtt);
    // The first station reports on its own topic, the second on the template.
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "parameters =",
        "mqtt = { topic = \"plants/quevo/tt10\" }\nparameters =",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let db = dir.path().join("ledger.db");
    let q = Quantrac::start(&config);
    assert!(
        wait_until(Duration::from_secs(30), || q
            .log()
            .contains("MQTT connected.")),
        "no connection:\n{}",
        q.log()
    );
    let publisher = Publisher::connect(port, "test-publisher-4");
    let n = 200u64;
    for i in 0..n {
        let (topic, json) = message(i);
        // Same readings, TT10 content.
        let s = StationId::parse(STATIONS[(i % 2) as usize]).unwrap();
        let units = |p: &Parameter| Unit::new(p.standard_unit().unwrap_or(""));
        let cx = payload::Context {
            station: &s,
            tz: tz(),
            unit_of: &units,
            configured: None,
        };
        let readings = payload::decode_json(&JsonMappingSection::default(), &json, &cx).readings;
        let topic = if i % 2 == 0 {
            "plants/quevo/tt10".to_string()
        } else {
            topic
        };
        publisher.publish((topic, payload::encode_tt10(&readings, tz())));
    }
    publisher.wait_acked(n, Duration::from_secs(30));
    assert_exactly(&db, n, &q);
}

#[test]
fn demo_last_four_stations_arrive_through_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--ledger",
            "demo.db",
            "--http",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = dir.path().join("demo.db");
    let mqtt_stations = [
        "BN_KCNDDHS_NUOC01",
        "BN_KCNTT2_NUOC01",
        "BN_KCNNSHL_NUOC01",
        "BN_KCNGB_NUOC01",
    ];
    let arrived = wait_until(Duration::from_secs(60), || {
        let Ok(r) = Reader::open(&db) else {
            return false;
        };
        mqtt_stations.iter().all(|s| {
            r.readings(&ReadingFilter {
                station: Some(s.to_string()),
                limit: 1,
                ..Default::default()
            })
            .is_ok_and(|v| v.first().is_some_and(|x| x.source == "mqtt"))
        })
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(arrived, "the demo's MQTT stations did not reach the ledger");
}

#[test]
fn mosquitto_over_tls_with_a_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    support::certs::make_certs(certs.path());
    let c = |f: &str| certs.path().join(f).display().to_string();
    let tls_port = free_port();
    let mosq = Mosquitto::start(&format!(
        "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        c("ca.crt"),
        c("server.crt"),
        c("server.key")
    ));
    let dir = tempfile::tempdir().unwrap();
    let broker = format!(
        "{}tls = {{ ca_file = \"{}\", cert_file = \"{}\", key_file = \"{}\" }}\n",
        broker_table(tls_port),
        c("ca.crt"),
        c("client.crt"),
        c("client.key")
    );
    let config = write_config(dir.path(), &broker);
    let db = dir.path().join("ledger.db");
    let q = Quantrac::start(&config);
    assert!(
        wait_until(Duration::from_secs(30), || q
            .log()
            .contains("MQTT connected.")),
        "no TLS connection:\n{}\nmosquitto:\n{}",
        q.log(),
        mosq.log()
    );
    // Published on the plain listener, delivered over TLS.
    let publisher = Publisher::connect(mosq.port, "test-publisher-5");
    let n = 20;
    for i in 0..n {
        publisher.publish(message(i));
    }
    publisher.wait_acked(n, Duration::from_secs(30));
    assert_exactly(&db, n, &q);
}

#[test]
fn a_wrong_password_is_reported_and_a_reload_with_the_right_one_connects() {
    // Mosquitto with a password file and no anonymous access, as deploy/mosquitto configures it.
    let auth = tempfile::tempdir().unwrap();
    let passwd = auth.path().join("passwd");
    for (i, (user, password)) in [("quantrac", "right horse"), ("publisher", "pub-pass")]
        .iter()
        .enumerate()
    {
        let mut cmd = std::process::Command::new("mosquitto_passwd");
        if i == 0 {
            cmd.arg("-c");
        }
        let ok = cmd
            .arg("-b")
            .arg(&passwd)
            .args([user, password])
            .status()
            .unwrap();
        assert!(ok.success(), "mosquitto_passwd failed");
    }
    let mosq = Mosquitto::start(&format!(
        "allow_anonymous false\npassword_file {}\n",
        passwd.display()
    ));
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("mqtt-password");
    std::fs::write(&secret, "wrong horse\n").unwrap();
    let broker = format!(
        "{}username = \"quantrac\"\npassword_file = \"{}\"\n",
        broker_table(mosq.port),
        secret.display()
    );
    let config = write_config(dir.path(), &broker);
    let db = dir.path().join("ledger.db");
    let q = Quantrac::start(&config);
    // Refused and said so once (repeats are quiet: one logging policy for every connection), retried with backoff
    // (the broker refuses a second login); the daemon keeps running.
    q.wait_log(
        "MQTT connection failed, reconnecting.",
        1,
        Duration::from_secs(30),
    );
    let retried = wait_until(Duration::from_secs(30), || {
        mosq.log().matches("not authorised").count() >= 2
    });
    assert!(retried, "no second login attempt:\n{}", mosq.log());
    assert_eq!(
        q.log()
            .matches("MQTT connection failed, reconnecting.")
            .count(),
        1,
        "a repeated failure is logged again:\n{}",
        q.tail(20)
    );
    assert!(!q.log().contains("MQTT connected."), "{}", q.tail(20));
    assert!(
        q.log()
            .contains("the broker refused the login (NotAuthorized): check username and password"),
        "{}",
        q.tail(20)
    );
    assert!(
        mosq.log().contains("not authorised"),
        "mosquitto did not refuse the login:\n{}",
        mosq.log()
    );

    // The operator fixes the password file and reloads.
    std::fs::write(&secret, "right horse\n").unwrap();
    q.sighup();
    q.wait_log("MQTT connected.", 1, Duration::from_secs(60));
    let publisher = Publisher::connect_as(
        mosq.port,
        "test-publisher-auth",
        Some(("publisher", "pub-pass")),
    );
    let n = 20;
    for i in 0..n {
        publisher.publish(message(i));
    }
    publisher.wait_acked(n, Duration::from_secs(30));
    assert_exactly(&db, n, &q);
    assert!(
        !q.log().contains("right horse") && !q.log().contains("wrong horse"),
        "a password reached the log"
    );
}
