//! Scale-out with MQTT shared subscriptions: two `quantrac run` processes with their own ledgers and client ids
//! in one `$share/quantrac/…` group on a real Mosquitto split a QoS 1 stream. The union of their ledgers holds every
//! reading exactly once, also when one instance is SIGKILLed mid-stream and started again (Mosquitto keeps what
//! it had queued for the dead instance's persistent session and delivers it when the instance returns).

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quantrac::ledger::query::Table;
use quantrac::ledger::Reader;
use support::mosquitto::Mosquitto;
use support::stream::{
    self, assert_exact, broker, message, minute, station, Key, Publisher, Quantrac,
};
use support::wait_until;

const STATIONS: [&str; 2] = ["BN_KCNQV_NUOC01", "BN_KCNTS_NUOC01"];
const VALUES: [(&str, f64); 5] = [
    ("COD", 50.0),
    ("pH", 7.2),
    ("TSS", 20.0),
    ("NH4", 4.0),
    ("Flow", 120.0),
];

/// Message `i`: station `i % 2` at minute `i / 2`.
fn msg(i: u64) -> (String, Vec<u8>) {
    message(STATIONS[(i % 2) as usize], minute(i / 2), &VALUES)
}

fn keys(n: u64) -> HashSet<Key> {
    (0..n)
        .flat_map(|i| {
            VALUES.iter().map(move |(p, _)| {
                (
                    STATIONS[(i % 2) as usize].to_string(),
                    p.to_string(),
                    minute(i / 2),
                )
            })
        })
        .collect()
}

/// An instance's own directory and config: same stations and group, its own client id and ledger.
fn instance(root: &Path, name: &str, port: u16) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    let params = "COD = {}, pH = {}, TSS = {}, NH4 = {}, Flow = {}";
    let stations: String = STATIONS.iter().map(|s| station(s, params, "")).collect();
    let text = format!(
        "[ledger]\npath = \"ledger.db\"\nsynchronous = \"normal\"\n[http]\nenabled = false\n\n{}\n{stations}",
        broker(
            port,
            &format!("quantrac-{name}"),
            "share_group = \"quantrac\""
        )
    );
    let config = dir.join("quantrac.toml");
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn two_instances_share_one_stream_exactly_once_through_a_sigkill() {
    let mosq = Mosquitto::start("");
    let root = tempfile::tempdir().unwrap();
    let (c1, c2) = (
        instance(root.path(), "one", mosq.port),
        instance(root.path(), "two", mosq.port),
    );
    let (db1, db2) = (
        c1.with_file_name("ledger.db"),
        c2.with_file_name("ledger.db"),
    );
    let mut q1 = Quantrac::start(&c1);
    let q2 = Quantrac::start(&c2);
    for q in [&q1, &q2] {
        q.wait_log("MQTT subscribed.", 1, Duration::from_secs(30));
    }
    let union = || stream::count(&db1) + stream::count(&db2);

    let n = 6000u64;
    let publisher = Publisher::connect(mosq.port, "scale-publisher");
    let (stop, published) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let streaming = publisher.stream(
        msg,
        Duration::from_micros(300),
        n,
        stop.clone(),
        published.clone(),
    );
    assert!(
        wait_until(Duration::from_secs(60), || stream::count(&db1) >= 2000
            && stream::count(&db2) >= 2000),
        "both instances should be taking part: {} and {} readings",
        stream::count(&db1),
        stream::count(&db2)
    );
    q1.sigkill();
    let at_kill = published.load(Ordering::SeqCst);
    assert!(
        at_kill < n,
        "the stream ended before the kill; the test proves nothing"
    );
    // The other instance keeps consuming while the first is down.
    let two_before = stream::count(&db2);
    assert!(
        wait_until(Duration::from_secs(30), || stream::count(&db2)
            >= two_before + 500),
        "the surviving instance stopped consuming"
    );
    let q1 = Quantrac::start(&c1);
    q1.wait_log("MQTT connected.", 1, Duration::from_secs(30));
    assert_eq!(streaming.join().unwrap(), n);
    publisher.wait_acked(n, Duration::from_secs(60));

    let want = n as i64 * VALUES.len() as i64;
    assert!(
        wait_until(Duration::from_secs(90), || union() >= want),
        "{} + {} of {want} readings; instance one:\n{}\ninstance two:\n{}",
        stream::count(&db1),
        stream::count(&db2),
        q1.tail(20),
        q2.tail(20)
    );
    let (k1, k2) = (stream::stored_keys(&db1), stream::stored_keys(&db2));
    assert!(!k1.is_empty() && !k2.is_empty());
    let all: Vec<Key> = k1.into_iter().chain(k2).collect();
    // Exactly once across both ledgers: no key in both, none missing.
    assert_exact(&all, &keys(n));
    assert_eq!(union(), want);
    for db in [&db1, &db2] {
        let r = Reader::open(db).unwrap();
        assert_eq!(r.count(Table::Conflicts).unwrap(), 0);
        assert_eq!(r.count(Table::Quarantine).unwrap(), 0);
    }
    stop.store(true, Ordering::SeqCst);
    let (mut q1, mut q2) = (q1, q2);
    q1.stop();
    q2.stop();
}
