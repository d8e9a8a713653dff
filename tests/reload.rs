//! SIGHUP reload of `quantrac run` (the real binary) fed by a real Mosquitto: a station added on reload gets its
//! readings in, a changed limit judges the readings after the reload, broken configs are refused with every
//! problem logged and the running config kept, and a stream that runs through all of it arrives exactly once.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quantrac::ledger::query::Table;
use quantrac::ledger::Reader;
use support::config::ConfigBuilder;
use support::mosquitto::Mosquitto;
use support::stream::{
    self, assert_exact, broker, message, minute, station, Key, Publisher, Quantrac,
};
use support::wait_until;

const A: &str = "BN_KCNQV_NUOC01";
const B: &str = "BN_KCNTS_NUOC01";
/// The stream's values: COD 50 mg/L is half of limit 100 and 1.25 times limit 40.
const VALUES: [(&str, f64); 3] = [("COD", 50.0), ("pH", 7.2), ("TSS", 20.0)];

/// The operator's bearer token in these configs.
const OPERATOR_TOKEN: &str = "reload-test-operator";

/// The `[http]` lines of these configs: anonymous reading on or off, one operator token.
fn http_lines(anonymous: bool, name: &str, token: &str) -> String {
    format!(
        "anonymous_read = {anonymous}\n[[http.token]]\nname = \"{name}\"\nrole = \"operator\"\nsha256 = \"{}\"\n",
        sha256_hex(token)
    )
}

fn write(config: &Path, mqtt_port: u16, rest: &str) {
    ConfigBuilder::new()
        .http(&http_lines(true, "operator-1", OPERATOR_TOKEN))
        .section(&broker(mqtt_port, "quantrac-reload", ""))
        .section(rest)
        .write(config);
}

fn a_keys(n: u64) -> HashSet<Key> {
    (0..n)
        .flat_map(|i| {
            VALUES
                .iter()
                .map(move |(p, _)| (A.to_string(), p.to_string(), minute(i)))
        })
        .collect()
}

/// Stored (limit_high, ratio) of COD at station `st`, by time.
fn cod(db: &Path, st: &str) -> Vec<(i64, Option<f64>, Option<f64>)> {
    stream::stored(db)
        .into_iter()
        .filter(|r| r.station == st && r.parameter == "COD")
        .map(|r| (r.ts.millis(), r.limit_high, r.ratio))
        .collect()
}

/// Every API call here gives up after 10 s (a stream only while it connects and sends headers).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A request that must answer within 10 s.
async fn within_10s<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("no answer within 10 s")
}

fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// POST an operator's note to `station`'s log; the HTTP status.
fn post_note(port: u16, station: &str) -> u16 {
    post_note_as(port, station, OPERATOR_TOKEN)
}

/// POST a note with bearer `token`; the HTTP status.
fn post_note_as(port: u16, station: &str, token: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        within_10s(
            client()
                .post(format!(
                    "http://127.0.0.1:{port}/api/stations/{station}/note"
                ))
                .bearer_auth(token)
                .json(&serde_json::json!({ "text": "analyser cleaned" }))
                .send(),
        )
        .await
        .unwrap()
        .status()
        .as_u16()
    })
}

/// Station ids in the dashboard's `/api/stations`.
fn api_stations(port: u16) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let v: serde_json::Value = within_10s(async {
            client()
                .get(format!("http://127.0.0.1:{port}/api/stations"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
        .await;
        v["stations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    })
}

#[test]
fn sighup_adds_a_station_changes_a_limit_refuses_broken_configs_and_loses_nothing() {
    let mosq = Mosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quantrac.toml");
    let db = dir.path().join("ledger.db");
    let a = station(A, "COD = { limit = 100 }, pH = {}, TSS = {}", "");
    write(&config, mosq.port, &a);
    let q = Quantrac::start(&config);
    q.wait_log("MQTT connected.", 1, Duration::from_secs(30));
    q.wait_log("Sources started.", 1, Duration::from_secs(30));
    let http = q.http_port();
    assert_eq!(api_stations(http), [A]);

    // A stream for station A that runs through every reload below.
    let publisher = Publisher::connect(mosq.port, "reload-publisher");
    let (stop, published) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let streaming = publisher.stream(
        |i| message(A, minute(i), &VALUES),
        Duration::from_millis(1),
        50_000,
        stop.clone(),
        published.clone(),
    );
    assert!(
        wait_until(Duration::from_secs(30), || stream::count(&db) >= 300),
        "the stream did not start:\n{}",
        q.tail(30)
    );
    let before = cod(&db, A);
    assert!(before
        .iter()
        .all(|(_, l, r)| *l == Some(100.0) && *r == Some(0.5)));

    // Reload 1: add station B, lower A's COD limit to 40.
    let b = station(B, "COD = {}, NH4 = {}", "");
    let a40 = station(A, "COD = { limit = 40 }, pH = {}, TSS = {}", "");
    write(&config, mosq.port, &format!("{a40}\n{b}"));
    q.sighup();
    q.wait_log("Config reloaded.", 1, Duration::from_secs(30));
    let after_reload = published.load(Ordering::SeqCst);
    for i in 0..20 {
        publisher.publish(message(B, minute(i), &[("COD", 30.0), ("NH4", 4.0)]));
    }
    assert!(
        wait_until(Duration::from_secs(30), || stream::stored(&db)
            .iter()
            .filter(|r| r.station == B && r.source == "mqtt")
            .count()
            == 40),
        "the added station's readings did not arrive:\n{}",
        q.tail(30)
    );
    assert!(api_stations(http).contains(&B.to_string()));
    // Readings published after the reload are judged against the new limit.
    let t = minute(after_reload);
    assert!(
        wait_until(Duration::from_secs(30), || cod(&db, A)
            .iter()
            .filter(|x| x.0 >= t)
            .count()
            >= 50),
        "no readings after the reload:\n{}",
        q.tail(30)
    );
    let later: Vec<_> = cod(&db, A).into_iter().filter(|x| x.0 >= t).collect();
    for (ts, limit, ratio) in &later {
        assert_eq!((*limit, *ratio), (Some(40.0), Some(1.25)), "COD at {ts}");
    }
    // Readings committed before the reload keep the limit they were judged by.
    let still = cod(&db, A);
    assert!(before.iter().all(|x| still.contains(x)));

    // Five more reloads of the same file while the stream runs: each restarts the subscriber with messages in
    // flight.
    for k in 2..=6 {
        q.sighup();
        q.wait_log("Config reloaded.", k, Duration::from_secs(30));
    }

    // Reload 7: config errors (two at once) are refused, each logged.
    ConfigBuilder::new()
        .http("")
        .section("[daemon]\ntimezone = \"Mars/Olympus\"")
        .section(&broker(mosq.port, "quantrac-reload", ""))
        .section(&format!("{a}\n{a}"))
        .write(&config);
    q.sighup();
    q.wait_log("Config reload refused;", 1, Duration::from_secs(30));
    let log = q.log();
    assert!(log.contains("daemon.timezone"), "{}", q.tail(20));
    assert!(log.contains("duplicate station id"), "{}", q.tail(20));
    // Reload 8: a valid file whose limit profile does not exist (found only when the profiles are resolved).
    write(
        &config,
        mosq.port,
        &format!("{}\n{b}", a40.replace("qcvn40-2011-b", "qcvn40-2011-z")),
    );
    q.sighup();
    q.wait_log("Config reload refused;", 2, Duration::from_secs(30));
    assert!(q.log().contains("qcvn40-2011-z"), "{}", q.tail(20));
    assert_eq!(q.log().matches("Config reloaded.").count(), 6);

    // The running config is kept: B still accepted, A still judged against 40.
    publisher.publish(message(B, minute(100), &[("COD", 30.0), ("NH4", 4.0)]));
    let after_refusal = published.load(Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(30), || stream::stored(&db)
            .iter()
            .any(|r| r.station == B && r.ts.millis() == minute(100))),
        "station B stopped being accepted after a refused reload:\n{}",
        q.tail(30)
    );
    let t = minute(after_refusal);
    assert!(wait_until(Duration::from_secs(30), || cod(&db, A)
        .iter()
        .any(|x| x.0 >= t)));
    assert!(cod(&db, A)
        .iter()
        .filter(|x| x.0 >= t)
        .all(|(_, l, r)| *l == Some(40.0) && *r == Some(1.25)));

    // Nothing lost: every published reading of A exactly once, B's 42, no conflicts, nothing quarantined.
    stop.store(true, Ordering::SeqCst);
    let n = streaming.join().unwrap();
    assert!(n > after_reload, "the stream ended before the reload");
    publisher.wait_acked(n + 21, Duration::from_secs(60));
    let want = n as i64 * 3 + 42;
    assert!(
        wait_until(Duration::from_secs(60), || stream::count(&db) >= want),
        "{} of {want} readings; log:\n{}",
        stream::count(&db),
        q.tail(30)
    );
    let keys: Vec<Key> = stream::stored_keys(&db)
        .into_iter()
        .filter(|k| k.0 == A)
        .collect();
    assert_exact(&keys, &a_keys(n));
    let r = Reader::open(&db).unwrap();
    assert_eq!(r.count_readings().unwrap(), want);
    assert_eq!(r.count(Table::Conflicts).unwrap(), 0);
    assert_eq!(r.count(Table::Quarantine).unwrap(), 0);
    let audit: Vec<(String, String)> = r
        .connection()
        .prepare("SELECT who, detail FROM audit")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(audit.len(), 6, "{audit:?}");
    assert!(audit.iter().all(|(who, _)| who == "sighup"));
    assert!(audit[5].1.ends_with("no station changes"), "{audit:?}");
    assert!(
        audit[0].1.contains(&format!("added {B}; changed {A}")),
        "{audit:?}"
    );
    let mut q = q;
    q.stop();
}

#[test]
fn sighup_into_a_share_group_drops_the_old_subscription() {
    // Instance one starts with a plain subscription, instance two in the group `quantrac`. Moving one into the
    // group on reload: its persistent session still holds the plain subscription, which would go on delivering every
    // message to it beside the group's share (each reading then in both ledgers), unless the new subscriber drops it.
    let mosq = Mosquitto::start("");
    let root = tempfile::tempdir().unwrap();
    let a = station(A, "COD = {}, pH = {}, TSS = {}", "");
    let start = |name: &str, share: bool| {
        let dir = root.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let config = dir.join("quantrac.toml");
        let group = if share {
            "share_group = \"quantrac\"\n"
        } else {
            ""
        };
        std::fs::write(
            &config,
            format!(
                "[ledger]\npath = \"ledger.db\"\n[http]\nenabled = false\n\n{}\n{a}",
                broker(mosq.port, &format!("quantrac-{name}"), group)
            ),
        )
        .unwrap();
        (Quantrac::start(&config), config, dir.join("ledger.db"))
    };
    let (one, config, db1) = start("one", false);
    let (two, _, db2) = start("two", true);
    for q in [&one, &two] {
        q.wait_log("MQTT subscribed.", 1, Duration::from_secs(30));
    }
    let publisher = Publisher::connect(mosq.port, "share-publisher");
    for i in 0..20 {
        publisher.publish(message(A, minute(i), &VALUES));
    }
    // Before: one gets everything (plain), two everything (the group's only member).
    assert!(wait_until(Duration::from_secs(30), || stream::count(&db1)
        == 60
        && stream::count(&db2) == 60));

    let text = std::fs::read_to_string(&config).unwrap().replace(
        "keep_alive = \"5s\"\n",
        "keep_alive = \"5s\"\nshare_group = \"quantrac\"\n",
    );
    std::fs::write(&config, text).unwrap();
    one.sighup();
    one.wait_log("Config reloaded.", 1, Duration::from_secs(30));
    one.wait_log(
        "MQTT unsubscribed from a filter the new configuration dropped.",
        1,
        Duration::from_secs(30),
    );
    one.wait_log("MQTT subscribed.", 2, Duration::from_secs(30));
    let n = 200;
    for i in 20..20 + n {
        publisher.publish(message(A, minute(i), &VALUES));
    }
    publisher.wait_acked(20 + n, Duration::from_secs(30));
    let after = |db: &Path| -> Vec<Key> {
        stream::stored_keys(db)
            .into_iter()
            .filter(|k| k.2 >= minute(20))
            .collect()
    };
    let want = n as usize * 3;
    assert!(
        wait_until(Duration::from_secs(30), || after(&db1).len()
            + after(&db2).len()
            >= want),
        "{} + {} of {want} readings:\n{}",
        after(&db1).len(),
        after(&db2).len(),
        one.tail(30)
    );
    let (k1, k2) = (after(&db1), after(&db2));
    assert!(
        !k1.is_empty() && !k2.is_empty(),
        "the group does not share: {} and {}",
        k1.len(),
        k2.len()
    );
    let all: Vec<Key> = k1.into_iter().chain(k2).collect();
    let want: HashSet<Key> = a_keys(20 + n)
        .into_iter()
        .filter(|k| k.2 >= minute(20))
        .collect();
    assert_exact(&all, &want);
    let (mut one, mut two) = (one, two);
    one.stop();
    two.stop();
}

#[test]
fn sighup_starts_and_stops_modbus_pollers() {
    // A station added on reload is polled over Modbus TCP (the built-in simulated device serves it); removed
    // again, its poller stops and the dashboard forgets it, while the MQTT station goes on.
    let mosq = Mosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quantrac.toml");
    let db = dir.path().join("ledger.db");
    let a = station(A, "COD = {}, pH = {}, TSS = {}", "");
    let sim = "[sim]\nenabled = true\n";
    write(&config, mosq.port, &format!("{sim}\n{a}"));
    let q = Quantrac::start(&config);
    let http = q.http_port();
    q.wait_log("MQTT subscribed.", 1, Duration::from_secs(30));
    let publisher = Publisher::connect(mosq.port, "modbus-reload-publisher");
    publisher.publish(message(A, minute(0), &VALUES));
    assert!(wait_until(Duration::from_secs(30), || stream::count(&db) == 3));

    const C: &str = "BN_KCNYP_NUOC01";
    let modbus_port = support::free_port();
    let c = station(
        C,
        "COD = {}, pH = {}",
        &format!(
            "sim = {{ via = \"modbus\" }}\n[station.modbus]\naddress = \"127.0.0.1:{modbus_port}\"\npoll_interval = \"1s\"\n\
             timeout = \"2s\"\nregisters = [\n  {{ parameter = \"COD\", address = 0, type = \"f32\" }},\n  \
             {{ parameter = \"pH\", address = 2, type = \"f32\" }},\n]\n"
        ),
    );
    write(&config, mosq.port, &format!("{sim}\n{a}\n{c}"));
    q.sighup();
    q.wait_log("Config reloaded.", 1, Duration::from_secs(30));
    let from_modbus = || {
        stream::stored(&db)
            .iter()
            .filter(|r| r.station == C && r.source == "modbus")
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(30), || from_modbus() >= 4),
        "the added Modbus station was not polled:\n{}",
        q.tail(30)
    );
    assert!(api_stations(http).contains(&C.to_string()));
    assert_eq!(
        post_note(http, C),
        201,
        "a station added by the reload takes notes"
    );

    write(&config, mosq.port, &format!("{sim}\n{a}"));
    q.sighup();
    q.wait_log("Config reloaded.", 2, Duration::from_secs(30));
    let at_removal = from_modbus();
    // The poller committed its last poll before the reload finished; MQTT data still flows after it.
    publisher.publish(message(A, minute(1), &VALUES));
    // The simulator's backfilled history (source `sim`) is not polled data: leave it out of the count.
    let polled_or_published = || {
        stream::stored(&db)
            .iter()
            .filter(|r| r.source != "sim")
            .count()
    };
    assert!(wait_until(Duration::from_secs(30), || polled_or_published(
    ) == 3
        + 3
        + at_removal));
    assert_eq!(
        from_modbus(),
        at_removal,
        "the removed station was still polled"
    );
    assert_eq!(api_stations(http), [A]);
    assert_eq!(post_note(http, C), 404, "a removed station takes no notes");
    let mut q = q;
    q.stop();
}

#[test]
fn sighup_applies_new_tokens_and_revokes_removed_ones() {
    // An administrator revokes a leaked token and issues a new one without restarting the daemon.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quantrac.toml");
    let a = station(A, "COD = {}", "");
    let write_http = |anonymous: bool, name: &str, token: &str| {
        ConfigBuilder::new()
            .http(&http_lines(anonymous, name, token))
            .section(&a)
            .write(&config);
    };
    const NEW_TOKEN: &str = "reload-test-operator-2";
    write_http(false, "operator-1", OPERATOR_TOKEN);
    let q = Quantrac::start(&config);
    q.wait_log("Sources started.", 1, Duration::from_secs(30));
    let http = q.http_port();
    assert_eq!(post_note_as(http, A, OPERATOR_TOKEN), 201);
    assert_eq!(post_note_as(http, A, NEW_TOKEN), 401);
    let anonymous = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            within_10s(
                client()
                    .get(format!("http://127.0.0.1:{http}/api/stations"))
                    .send(),
            )
            .await
            .unwrap()
            .status()
            .as_u16()
        })
    };
    assert_eq!(anonymous(), 401);
    // A live stream opened with the token that is about to be revoked.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let open_stream = |token: &str| {
        rt.block_on(async {
            let mut r = within_10s(
                client()
                    .get(format!("http://127.0.0.1:{http}/api/stream"))
                    .bearer_auth(token)
                    .send(),
            )
            .await
            .unwrap();
            assert_eq!(r.status(), 200);
            // The first status event arrives at once.
            let first = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await;
            assert!(matches!(first, Ok(Ok(Some(_)))), "no first event");
            r
        })
    };
    let mut old_stream = open_stream(OPERATOR_TOKEN);

    write_http(true, "operator-2", NEW_TOKEN);
    q.sighup();
    q.wait_log("Config reloaded.", 1, Duration::from_secs(30));
    // The revoked token's stream ends at its next status tick (every 5 s); one with the new token goes on.
    let mut new_stream = open_stream(NEW_TOKEN);
    let ended = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(_)) = old_stream.chunk().await {}
        })
        .await
        .is_ok()
    });
    assert!(ended, "the stream of the revoked token is still open");
    let next = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), new_stream.chunk()).await
    });
    assert!(
        matches!(next, Ok(Ok(Some(_)))),
        "the new token's stream ended"
    );
    assert_eq!(
        post_note_as(http, A, OPERATOR_TOKEN),
        401,
        "the removed token still works"
    );
    assert_eq!(
        post_note_as(http, A, NEW_TOKEN),
        201,
        "the new token is refused"
    );
    assert_eq!(anonymous(), 200, "anonymous reading was not turned on");
    assert!(
        !q.log().contains("only takes effect after a restart"),
        "{}",
        q.tail(20)
    );
    let audit: String = Reader::open(&dir.path().join("ledger.db"))
        .unwrap()
        .connection()
        .query_row("SELECT detail FROM audit WHERE who = 'sighup'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        audit.ends_with("changed http.token, http.anonymous_read"),
        "{audit}"
    );
    let mut q = q;
    q.stop();
}
