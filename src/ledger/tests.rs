use super::*;
use crate::compliance::{Band, Flags, LimitBound};
use crate::model::{Status, Unit};

fn reading(station: &str, p: &str, ts: i64, value: f64) -> Evaluated {
    Evaluated {
        reading: Reading {
            station: StationId::parse(station).unwrap(),
            parameter: Parameter::new(p).unwrap(),
            ts: Timestamp(ts),
            value,
            unit: Unit::new("mg/L"),
            status: Status::Measuring,
        },
        assessment: Assessment {
            rules: Default::default(),
            limit: Some(LimitBound::Max(135.0)),
            ratio: Some(value / 135.0),
            band: Band::Compliant,
            flags: Flags::default(),
        },
        source: SourceKind::Sim,
        received: None,
    }
}

fn open() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.db"), Synchronous::Normal).unwrap();
    (dir, l)
}

#[test]
fn duplicate_is_a_no_op() {
    let (_d, mut l) = open();
    let (o, c) = l
        .commit(&[reading("BN_A_B", "COD", 1000, 80.0)], &[])
        .unwrap();
    assert!(matches!(o[0], Outcome::Accepted(_)));
    assert_eq!(c.accepted, 1);
    let (o, c) = l
        .commit(&[reading("BN_A_B", "COD", 1000, 80.0)], &[])
        .unwrap();
    assert_eq!(o[0], Outcome::Duplicate);
    assert_eq!((c.accepted, c.duplicates, c.conflicts), (0, 1, 0));
    let r = l.reader().unwrap();
    assert_eq!(r.count_readings().unwrap(), 1);
    assert_eq!(r.count(query::Table::Conflicts).unwrap(), 0);
}

#[test]
fn same_key_other_value_keeps_first_and_records_conflict() {
    let (_d, mut l) = open();
    l.commit(&[reading("BN_A_B", "COD", 1000, 80.0)], &[])
        .unwrap();
    let (o, c) = l
        .commit(&[reading("BN_A_B", "COD", 1000, 95.5)], &[])
        .unwrap();
    assert_eq!(o[0], Outcome::Conflict);
    assert_eq!(c.conflicts, 1);
    let r = l.reader().unwrap();
    let rows = r.readings(&query::ReadingFilter::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].value, 80.0);
    let (kept, new): (f64, f64) = r
        .connection()
        .query_row("SELECT kept_value, new_value FROM conflicts", [], |x| {
            Ok((x.get(0)?, x.get(1)?))
        })
        .unwrap();
    assert_eq!((kept, new), (80.0, 95.5));
}

#[test]
fn outcomes_follow_input_order_within_a_batch() {
    let (_d, mut l) = open();
    let batch = [
        reading("BN_A_B", "COD", 3000, 1.0),
        reading("BN_A_B", "COD", 1000, 2.0),
        reading("BN_A_B", "COD", 3000, 1.0),
    ];
    let (o, c) = l.commit(&batch, &[]).unwrap();
    // The first of two same-key readings is the one kept.
    assert!(matches!(o[0], Outcome::Accepted(_)));
    assert!(matches!(o[1], Outcome::Accepted(_)));
    assert_eq!(o[2], Outcome::Duplicate);
    assert_eq!((c.accepted, c.duplicates), (2, 1));
}

#[test]
fn a_large_batch_mixing_new_redelivered_and_changed_readings_gets_each_outcome_right() {
    let (_d, mut l) = open();
    // 100 readings stored first: every tenth time step of stations A and B.
    let old: Vec<Evaluated> = (0..50)
        .flat_map(|t| ["BN_A_B", "BN_C_D"].map(|s| reading(s, "COD", t * 10 * 60_000, t as f64)))
        .collect();
    l.commit(&old, &[]).unwrap();
    // 991 readings, so many-row statements run: 890 new, 90 redelivered as they were, 10 with another value, and
    // one new key sent again in the same batch with another value.
    let mut batch = Vec::new();
    for t in 0..495 {
        for s in ["BN_A_B", "BN_C_D"] {
            let stored = t % 10 == 0;
            let value = if stored && t % 100 == 0 {
                -1.0
            } else {
                (t / 10) as f64
            };
            batch.push(reading(
                s,
                "COD",
                t * 60_000,
                if stored { value } else { t as f64 },
            ));
        }
    }
    batch.push(reading("BN_A_B", "COD", 7 * 60_000, 99.0));
    let (o, c) = l.commit(&batch, &[]).unwrap();
    assert_eq!((c.accepted, c.duplicates, c.conflicts), (890, 90, 11));
    for (e, outcome) in batch.iter().zip(&o).take(990) {
        let t = e.reading.ts.millis() / 60_000;
        let want = match (t % 10 == 0, t % 100 == 0) {
            (false, _) => "accepted",
            (true, false) => "duplicate",
            (true, true) => "conflict",
        };
        let got = match outcome {
            Outcome::Accepted(_) => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Conflict => "conflict",
        };
        assert_eq!(got, want, "reading at minute {t}");
    }
    assert_eq!(
        o[990],
        Outcome::Conflict,
        "the repeat of minute 7 with another value"
    );
    // Accepted readings hold distinct seqs above the old ones, which the ledger confirms.
    let seqs: std::collections::BTreeSet<i64> = o
        .iter()
        .filter_map(|x| match x {
            Outcome::Accepted(seq) => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs.len(), 890);
    assert_eq!((*seqs.first().unwrap(), *seqs.last().unwrap()), (101, 990));
    let r = l.reader().unwrap();
    for (e, outcome) in batch.iter().zip(&o) {
        if let Outcome::Accepted(seq) = outcome {
            let (ts, value): (i64, f64) = r
                .connection()
                .query_row(
                    "SELECT ts, value FROM readings WHERE seq = ?1",
                    [seq],
                    |x| Ok((x.get(0)?, x.get(1)?)),
                )
                .unwrap();
            assert_eq!((ts, value), (e.reading.ts.millis(), e.reading.value));
        }
    }
    assert_eq!(r.count_readings().unwrap(), 990);
    assert_eq!(r.count(query::Table::Conflicts).unwrap(), 11);
}

#[test]
fn migration_5_rekeys_readings_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        schema::migrate_to(&mut conn, 4).unwrap();
        conn.execute_batch(
            "INSERT INTO stations (id, code) VALUES (1, 'BN_A_B');
             INSERT INTO parameters (id, symbol) VALUES (1, 'COD'), (2, 'pH');
             INSERT INTO readings VALUES (3, 1, 1, 60000, 80.5, 'mg/L', 0, 'mqtt', 5, NULL, 135, 0.6, 'compliant', 0);
             INSERT INTO readings VALUES (7, 1, 2, 60000, 7.1, 'pH', 0, 'mqtt', 5, 5.5, 9, NULL, 'compliant', 0);",
        )
        .unwrap();
    }
    let mut l = Ledger::open(&path, Synchronous::Full).unwrap();
    assert_eq!(schema::version(&l.conn).unwrap(), schema::latest());
    let key: Vec<String> = l
        .conn
        .prepare(
            "SELECT ii.name FROM pragma_index_list('readings') il, pragma_index_info(il.name) ii \
             WHERE il.origin = 'u' ORDER BY ii.seqno",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(key, ["station_id", "ts", "parameter_id"]);
    let rows: Vec<(i64, String, f64)> = l
        .conn
        .prepare("SELECT seq, parameter, value FROM readings_view ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [(3, "COD".into(), 80.5), (7, "pH".into(), 7.1)]);
    let (o, _) = l
        .commit(
            &[
                reading("BN_A_B", "COD", 60_000, 80.5),
                reading("BN_A_B", "COD", 120_000, 81.0),
            ],
            &[],
        )
        .unwrap();
    assert_eq!(o, [Outcome::Duplicate, Outcome::Accepted(8)]);
    assert_eq!(l.reader().unwrap().integrity_check().unwrap(), "ok");
}

#[test]
fn quarantine_keeps_raw_bytes_and_reason() {
    let (_d, mut l) = open();
    let q = Quarantined::new(
        SourceKind::Mqtt,
        "stations/x/data",
        "invalid JSON: expected value at line 1",
        vec![0xff, 0x00, b'{'],
    );
    l.commit(&[], &[q]).unwrap();
    let rows = l.reader().unwrap().quarantine(10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].raw, vec![0xff, 0x00, b'{']);
    assert_eq!(rows[0].reason, "invalid JSON: expected value at line 1");
    assert_eq!(rows[0].source, "mqtt");
}

#[test]
fn retention_never_deletes_what_a_cursor_has_not_passed() {
    let (_d, mut l) = open();
    l.commit(
        &[
            reading("BN_A_B", "COD", 1000, 1.0),
            reading("BN_A_B", "COD", 2000, 2.0),
        ],
        &[],
    )
    .unwrap();
    l.set_cursor("influx", 1).unwrap();
    let n = l.apply_retention(Timestamp(10_000)).unwrap().readings;
    assert_eq!(n, 1, "only the row the forwarder has sent may go");
    assert_eq!(l.reader().unwrap().count_readings().unwrap(), 1);
}

#[test]
fn retention_says_what_it_deleted_per_station_and_audits_it() {
    let (_d, mut l) = open();
    l.commit(
        &[
            reading("BN_A_B", "COD", 1000, 1.0),
            reading("BN_A_B", "TSS", 3000, 1.0),
            reading("BN_C_D", "COD", 2000, 1.0),
            reading("BN_C_D", "COD", 20_000, 1.0),
        ],
        &[],
    )
    .unwrap();
    let report = l.apply_retention(Timestamp(10_000)).unwrap();
    assert_eq!(report.readings, 3);
    let ranges: Vec<(&str, usize, i64, i64)> = report
        .stations
        .iter()
        .map(|r| (r.station.as_str(), r.readings, r.first.0, r.last.0))
        .collect();
    assert_eq!(
        ranges,
        [("BN_A_B", 2, 1000, 3000), ("BN_C_D", 1, 2000, 2000)]
    );
    let audit = l.reader().unwrap().audit(10).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "delete old data");
    assert_eq!(
        audit[0].detail,
        "before 1970-01-01T00:00:10Z: BN_A_B 2 readings 1970-01-01T00:00:01Z to 1970-01-01T00:00:03Z; \
         BN_C_D 1 readings 1970-01-01T00:00:02Z to 1970-01-01T00:00:02Z"
    );
    assert!(l.apply_retention(Timestamp(10_000)).unwrap().is_empty());
    assert_eq!(
        l.reader().unwrap().audit(10).unwrap().len(),
        1,
        "an empty pass is not audited"
    );
}

#[test]
fn retention_removes_alerts_cleared_before_the_cutoff_with_their_deliveries() {
    let (_d, mut l) = open();
    l.conn
        .execute_batch(
            "INSERT INTO alerts (id, station, subject, kind, severity, state, since, raised, updated, cleared, detail, peak, notifications)
             VALUES (1, 'BN_A_B', 'COD', 'violation', 'violation', 'cleared', 1000, 1000, 2000, 2000, '{}', '{}', 2),
                    (2, 'BN_A_B', 'COD', 'violation', 'violation', 'raised', 3000, 3000, 3000, NULL, '{}', '{}', 1),
                    (3, 'BN_A_B', 'TSS', 'violation', 'violation', 'cleared', 1000, 1000, 20000, 20000, '{}', '{}', 2);
             INSERT INTO outbox (id, alert_id, channel, change, payload, created, status, attempts, next_attempt)
             VALUES (1, 1, 'log', 'raised', '{}', 1000, 'delivered', 1, 0), (2, 2, 'log', 'raised', '{}', 3000, 'delivered', 1, 0);
             INSERT INTO outbox_attempts (outbox_id, at, duration_ms, ok) VALUES (1, 1000, 1, 1), (2, 3000, 1, 1);",
        )
        .unwrap();
    l.apply_retention(Timestamp(10_000)).unwrap();
    let ids = |table: &str| -> Vec<i64> {
        let mut st = l
            .conn
            .prepare(&format!("SELECT id FROM {table} ORDER BY id"))
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        ids("alerts"),
        [2, 3],
        "open, and cleared after the cutoff, stay"
    );
    assert_eq!(ids("outbox"), [2]);
    assert_eq!(ids("outbox_attempts"), [2]);
}

#[test]
fn reopening_keeps_ids_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    {
        let mut l = Ledger::open(&path, Synchronous::Full).unwrap();
        l.commit(&[reading("BN_A_B", "COD", 1000, 1.0)], &[])
            .unwrap();
    }
    let mut l = Ledger::open(&path, Synchronous::Full).unwrap();
    let (o, _) = l
        .commit(
            &[
                reading("BN_A_B", "COD", 1000, 1.0),
                reading("BN_A_B", "pH", 1000, 7.0),
            ],
            &[],
        )
        .unwrap();
    assert_eq!(o[0], Outcome::Duplicate);
    assert_eq!(schema::version(&l.conn).unwrap(), schema::latest());
    assert_eq!(l.reader().unwrap().integrity_check().unwrap(), "ok");
}

fn with_band(mut e: Evaluated, band: Band, ratio: f64) -> Evaluated {
    e.assessment.band = band;
    e.assessment.ratio = Some(ratio);
    e
}

#[test]
fn exceedances_open_and_close_events_that_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    {
        let mut l = Ledger::open(&path, Synchronous::Normal).unwrap();
        l.commit(
            &[with_band(
                reading("BN_A_B", "COD", 1000, 140.0),
                Band::Lt1_1,
                1.037,
            )],
            &[],
        )
        .unwrap();
        l.commit(
            &[with_band(
                reading("BN_A_B", "COD", 2000, 160.0),
                Band::From1_1To1_5,
                1.185,
            )],
            &[],
        )
        .unwrap();
        let changes = l.take_event_changes();
        assert_eq!(changes.len(), 2);
        assert!(matches!(changes[0], EventChange::Opened { .. }));
        assert!(matches!(changes[1], EventChange::Escalated { .. }));
    }
    // After a restart the open event is restored: a further exceedance does not open a second one.
    let mut l = Ledger::open(&path, Synchronous::Normal).unwrap();
    l.commit(
        &[with_band(
            reading("BN_A_B", "COD", 3000, 150.0),
            Band::From1_1To1_5,
            1.11,
        )],
        &[],
    )
    .unwrap();
    assert!(l
        .take_event_changes()
        .iter()
        .all(|c| !matches!(c, EventChange::Opened { .. })));
    l.commit(
        &[with_band(
            reading("BN_A_B", "COD", 4000, 100.0),
            Band::Compliant,
            0.74,
        )],
        &[],
    )
    .unwrap();
    assert!(matches!(
        l.take_event_changes()[..],
        [EventChange::Closed { .. }]
    ));
    let r = l.reader().unwrap();
    let (n, start, end, peak_band, peak_ratio): (i64, i64, Option<i64>, String, f64) = r
        .connection()
        .query_row(
            "SELECT COUNT(*), MIN(start), MAX(end), MAX(peak_band), MAX(peak_ratio) FROM events",
            [],
            |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?, x.get(3)?, x.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (n, start, end, peak_band.as_str(), peak_ratio),
        (1, 1000, Some(4000), "1_1_to_1_5", 1.185)
    );
}

/// The open row is updated by its start; a row whose start the tracker does not know is still the key's open row.
#[test]
fn an_open_event_closes_even_when_its_stored_start_differs_from_the_trackers() {
    let (_d, mut l) = open();
    let r = |ts, band, ratio| with_band(reading("BN_A_B", "COD", ts, ratio * 135.0), band, ratio);
    l.commit(&[r(1000, Band::Lt1_1, 1.05)], &[]).unwrap();
    l.conn.execute("UPDATE events SET start = 500", []).unwrap();
    l.commit(&[r(2000, Band::Compliant, 0.5)], &[]).unwrap();
    let rows: Vec<(i64, Option<i64>)> = l
        .conn
        .prepare("SELECT start, end FROM events")
        .unwrap()
        .query_map([], |x| Ok((x.get(0)?, x.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, vec![(500, Some(2000))]);
}

#[test]
fn one_commit_writes_each_event_once_with_its_final_state() {
    let (_d, mut l) = open();
    let r = |ts, band, ratio| with_band(reading("BN_A_B", "COD", ts, ratio * 135.0), band, ratio);
    // Commit 1: an event opens, rises and closes; a second one opens.
    l.commit(
        &[
            r(1000, Band::Lt1_1, 1.05),
            r(2000, Band::From1_1To1_5, 1.2),
            r(3000, Band::Compliant, 0.9),
            r(4000, Band::Lt1_1, 1.02),
        ],
        &[],
    )
    .unwrap();
    // Commit 2: the second one peaks and closes.
    l.commit(
        &[r(5000, Band::Lt1_1, 1.08), r(6000, Band::Compliant, 0.8)],
        &[],
    )
    .unwrap();
    let kinds: Vec<&str> = l
        .take_event_changes()
        .iter()
        .map(|c| match c {
            EventChange::Opened { .. } => "opened",
            EventChange::Escalated { .. } => "escalated",
            EventChange::PeakUpdated { .. } => "peak",
            EventChange::Extended { .. } => "extended",
            EventChange::Closed { .. } => "closed",
            EventChange::Rederived { .. } => "rederived",
        })
        .collect();
    // Every change is still reported to the live view and the alert engine.
    assert_eq!(
        kinds,
        ["opened", "escalated", "closed", "opened", "peak", "closed"]
    );
    let rows: Vec<(i64, Option<i64>, i64, String, f64)> = l
        .conn
        .prepare("SELECT start, end, last, peak_band, peak_ratio FROM events ORDER BY start")
        .unwrap()
        .query_map([], |x| {
            Ok((x.get(0)?, x.get(1)?, x.get(2)?, x.get(3)?, x.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (
                1000,
                Some(3000),
                2000,
                Band::From1_1To1_5.as_str().to_string(),
                1.2
            ),
            (
                4000,
                Some(6000),
                5000,
                Band::Lt1_1.as_str().to_string(),
                1.08
            ),
        ]
    );
}

#[test]
fn background_checkpoints_move_committed_pages_into_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let mut l = Ledger::open(&path, Synchronous::Full).unwrap();
    l.checkpoint_in_background().unwrap();
    let empty = std::fs::metadata(&path).unwrap().len();
    let batch: Vec<Evaluated> = (0..5_000)
        .map(|i| reading("BN_A_B", "COD", i * 60_000, 80.0))
        .collect();
    l.commit(&batch, &[]).unwrap();
    // About 0.5 MB of WAL: far below the writer's own automatic checkpoint, so only the thread can move it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&path).unwrap().len() < empty + 200_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the main file did not grow within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    l.checkpoint().unwrap();
    assert_eq!(
        std::fs::metadata(path.with_extension("db-wal"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn what_the_station_sent_is_kept_beside_the_converted_reading() {
    let (_d, mut l) = open();
    let mut converted = reading("BN_A_B", "COD", 1000, 1000.0);
    converted.received = Some(Received {
        value: 1.0,
        unit: Unit::new("g/L"),
    });
    l.commit(&[converted, reading("BN_A_B", "COD", 2000, 50.0)], &[])
        .unwrap();
    let rows: Vec<(f64, String, Option<f64>, Option<String>)> = l
        .conn
        .prepare(
            "SELECT value, unit, received_value, received_unit FROM readings_view ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            (1000.0, "mg/L".into(), Some(1.0), Some("g/L".into())),
            (50.0, "mg/L".into(), None, None)
        ]
    );
}

#[test]
fn a_full_insert_chunk_keeps_what_one_of_its_readings_was_sent_as() {
    let (_d, mut l) = open();
    let mut batch: Vec<Evaluated> = (0..40)
        .map(|i| reading("BN_A_B", "COD", 1000 * (i + 1), 50.0))
        .collect();
    batch[5].received = Some(Received {
        value: 0.05,
        unit: Unit::new("g/L"),
    });
    l.commit(&batch, &[]).unwrap();
    let received: Vec<(i64, Option<f64>, Option<String>)> = l
        .conn
        .prepare("SELECT ts, received_value, received_unit FROM readings WHERE received_unit IS NOT NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(received, [(6000, Some(0.05), Some("g/L".into()))]);
    assert_eq!(l.reader().unwrap().count_readings().unwrap(), 40);
}

/// `change_seq` of every event row, in row order.
fn change_seqs(l: &Ledger) -> Vec<i64> {
    l.conn
        .prepare("SELECT change_seq FROM events ORDER BY id")
        .unwrap()
        .query_map([], |x| x.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_series_first_seen_after_a_restart_is_compared_with_its_stored_readings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let r = |p, ts, band, ratio| with_band(reading("BN_A_B", p, ts, ratio * 135.0), band, ratio);
    {
        // A new ledger: no series has a stored reading, none is looked up. COD first, TSS first seen in a later
        // commit of the same run.
        let mut l = Ledger::open(&path, Synchronous::Normal).unwrap();
        l.commit(
            &[
                r("COD", 1000, Band::Compliant, 0.5),
                r("COD", 3000, Band::Compliant, 0.5),
            ],
            &[],
        )
        .unwrap();
        l.commit(
            &[
                r("TSS", 1000, Band::Lt1_1, 1.05),
                r("TSS", 2000, Band::Compliant, 0.5),
            ],
            &[],
        )
        .unwrap();
        let kinds: Vec<bool> = l
            .take_event_changes()
            .iter()
            .map(|c| matches!(c, EventChange::Opened { .. } | EventChange::Closed { .. }))
            .collect();
        assert_eq!(kinds, [true, true]);
    }
    // After a restart, COD's newest stored reading (3000) is asked of the ledger: an exceedance at 2000 is late and
    // re-derives the span (an event from 2000 closed at 3000), it does not open an event left open.
    let mut l = Ledger::open(&path, Synchronous::Normal).unwrap();
    l.commit(&[r("COD", 2000, Band::Lt1_1, 1.05)], &[]).unwrap();
    assert!(matches!(
        l.take_event_changes()[..],
        [EventChange::Rederived { .. }]
    ));
    let cod: (i64, Option<i64>) = l
        .conn
        .query_row(
            "SELECT start, end FROM events e JOIN parameters p ON p.id = e.parameter_id WHERE p.symbol = 'COD'",
            [],
            |x| Ok((x.get(0)?, x.get(1)?)),
        )
        .unwrap();
    assert_eq!(cod, (2000, Some(3000)));
    // Every write of an event row took the next change number.
    let seqs = change_seqs(&l);
    assert_eq!(seqs.len(), 2);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[test]
fn an_open_events_last_is_written_with_the_aggregates_refresh() {
    let (_d, mut l) = open();
    let r = |ts, band, ratio| with_band(reading("BN_A_B", "COD", ts, ratio * 135.0), band, ratio);
    l.commit(
        &[r(1000, Band::Lt1_1, 1.05), r(2000, Band::Lt1_1, 1.02)],
        &[],
    )
    .unwrap();
    l.commit(&[r(3000, Band::Lt1_1, 1.01)], &[]).unwrap();
    let last = |l: &Ledger| -> i64 {
        l.conn
            .query_row("SELECT last FROM events", [], |x| x.get(0))
            .unwrap()
    };
    // Extensions wait for the refresh: the row still says where the event was opened.
    assert_eq!(last(&l), 1000);
    assert!(matches!(
        l.take_event_changes()[..],
        [EventChange::Opened { .. }]
    ));
    let seq_before = change_seqs(&l)[0];
    l.refresh_aggregates(&AggregateContext::default(), 100_000)
        .unwrap();
    assert_eq!(last(&l), 3000);
    assert!(change_seqs(&l)[0] > seq_before);
    match &l.take_event_changes()[..] {
        [EventChange::Extended { event, .. }] => assert_eq!(event.last, Timestamp(3000)),
        other => panic!("{other:?}"),
    }
    // Nothing more to write: a refresh after it changes nothing.
    l.refresh_aggregates(&AggregateContext::default(), 100_000)
        .unwrap();
    assert!(l.take_event_changes().is_empty());
}

/// Every stored window with running totals as the refresh left it, and as computed afresh from all its stored
/// readings: (key, stored aggregate and verdict, recomputed aggregate and verdict).
type WindowPair = ((i64, i64, i64, i64), String, String);

fn stored_and_recomputed(l: &Ledger, ctx: &AggregateContext) -> Vec<WindowPair> {
    use crate::compliance::hourly::{aggregate, Sample, WindowSums};
    let rows: Vec<((i64, i64, i64, i64), String)> = l
        .conn
        .prepare(
            "SELECT station_id, parameter_id, window_ms, window_start, mean, min, max, valid, completeness, ratio, band, \
             verdict, verdict_ratio FROM aggregates WHERE non_negative IS NOT NULL ORDER BY 1, 2, 3, 4",
        )
        .unwrap()
        .query_map([], |r| {
            let stored = format!(
                "{:?} {:?} {:?} {} {} {:?} {} {:?} {:?}",
                r.get::<_, Option<f64>>(4)?,
                r.get::<_, Option<f64>>(5)?,
                r.get::<_, Option<f64>>(6)?,
                r.get::<_, u32>(7)?,
                r.get::<_, f64>(8)?,
                r.get::<_, Option<f64>>(9)?,
                r.get::<_, String>(10)?,
                r.get::<_, Option<String>>(11)?,
                r.get::<_, Option<f64>>(12)?,
            );
            Ok(((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?), stored))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let (interval, limits) = &ctx.stations["BN_A_B"];
    let now = Timestamp::now().millis();
    rows.into_iter()
        .map(|((s, p, w, start), stored)| {
            let samples: Vec<Sample> = l
                .conn
                .prepare("SELECT ts, value, status FROM readings WHERE station_id=?1 AND parameter_id=?2 AND ts >= ?3 AND ts < ?4 ORDER BY ts")
                .unwrap()
                .query_map(params![s, p, start, start + w], |r| {
                    Ok(Sample {
                        ts: Timestamp(r.get(0)?),
                        value: r.get(1)?,
                        status: Status::from_u8(r.get(2)?).unwrap(),
                    })
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let symbol: String = l
                .conn
                .query_row("SELECT symbol FROM parameters WHERE id = ?1", [p], |r| r.get(0))
                .unwrap();
            let limit = limits.get(&symbol).and_then(|d| d.at(start)).copied().flatten();
            let agg = aggregate(&samples, limit, (w / interval) as u32);
            let verdict = crate::compliance::judge_window(&WindowSums::of(&samples), &agg, limit, now >= start + w)
                .judged();
            let fresh = format!(
                "{:?} {:?} {:?} {} {} {:?} {} {:?} {:?}",
                agg.mean, agg.min, agg.max, agg.valid, agg.completeness, agg.ratio, agg.band.as_str(),
                verdict.map(|v| v.0.as_str().to_string()), verdict.and_then(|v| v.1),
            );
            ((s, p, w, start), stored, fresh)
        })
        .collect()
}

/// Hourly and daily windows at UTC+7 for station BN_A_B (a reading every 15 min; COD under 135, pH 5.5 to 9).
fn hour_and_day() -> AggregateContext {
    use crate::compliance::hourly::{DAY_MS, HOUR_MS};
    AggregateContext {
        offset_secs: 7 * 3600,
        windows: vec![HOUR_MS, DAY_MS],
        judging_window_ms: HOUR_MS,
        stations: std::collections::HashMap::from([(
            "BN_A_B".to_string(),
            (
                900_000,
                std::collections::HashMap::from([
                    ("COD".to_string(), Some(LimitBound::Max(135.0)).into()),
                    ("pH".to_string(), Some(LimitBound::Range(5.5, 9.0)).into()),
                ]),
            ),
        )]),
    }
}

/// 2026-11-27 10:00 local; quarter hours from here cover several hours and, after 14 h, the next local day.
const T0: i64 = 1_795_748_400_000;

/// Once a step has caught up with the writer, the next one takes the totals the writer counted as it committed
/// (all of them, whatever its row limit) and they equal what the readings give; a step that stops short of the
/// newest row leaves the next one to read the rows back.
#[test]
fn a_step_after_catching_up_takes_the_totals_counted_at_commit() {
    let (dir, mut l) = open();
    let ctx = hour_and_day();
    let at = |slot: i64| T0 + slot * 900_000;
    let cod = |slot, value| reading("BN_A_B", "COD", at(slot), value);
    let ph = |slot, value| reading("BN_A_B", "pH", at(slot), value);
    assert_eq!(l.refresh_aggregates(&ctx, 2).unwrap().readings_seen, 0);
    l.commit(&[cod(8, 120.0), cod(9, 150.0), ph(9, 9.5)], &[])
        .unwrap();
    // A late reading into an hour already judged, a resend (stored once) and a conflicting resend (kept as the
    // first value).
    l.commit(&[cod(1, 80.0), cod(8, 120.0), cod(9, 10.0)], &[])
        .unwrap();
    // Four rows stored: a step reading rows would stop at two.
    assert_eq!(l.refresh_aggregates(&ctx, 2).unwrap().readings_seen, 4);
    // After a restart nothing is counted: the three rows behind the aggregator are read back two a step, and so is
    // the row committed between those steps.
    l.commit(&[cod(60, 130.0)], &[]).unwrap();
    drop(l);
    let mut l = Ledger::open(&dir.path().join("l.db"), Synchronous::Normal).unwrap();
    l.commit(&[cod(61, 131.0), ph(61, 7.0)], &[]).unwrap();
    assert_eq!(l.refresh_aggregates(&ctx, 2).unwrap().readings_seen, 2);
    l.commit(&[cod(62, 90.0)], &[]).unwrap();
    assert_eq!(l.refresh_aggregates(&ctx, 2).unwrap().readings_seen, 2);
    // Caught up again: counted at commit.
    l.commit(&[ph(3, 6.0), cod(63, 95.0)], &[]).unwrap();
    assert_eq!(l.refresh_aggregates(&ctx, 1).unwrap().readings_seen, 2);
    let pairs = stored_and_recomputed(&l, &ctx);
    assert!(pairs.len() >= 6, "{pairs:?}");
    for (key, stored, fresh) in pairs {
        assert_eq!(stored, fresh, "window {key:?}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Running window totals equal a recomputation from every stored reading, whatever order and batches the
    /// readings arrive in, however the refresh steps cut them, with duplicates, conflicting resends, negative and
    /// non-measuring values, rows from before running totals were stored, and the hourly length paused for some
    /// steps (an averaging window changed in the config and back).
    #[test]
    fn running_window_totals_equal_a_recomputation_from_the_readings(
        readings in proptest::collection::vec((0i64..3, 0i64..40, 0u32..6, 0u8..4), 1..120),
        cuts in proptest::collection::vec(1usize..30, 1..12),
        step in 1usize..50,
        forget_at in proptest::option::of(0usize..12),
        paused in proptest::option::of((0usize..12, 1usize..4)),
    ) {
        use crate::compliance::hourly::DAY_MS;
        let (_d, mut l) = open();
        let ctx = hour_and_day();
        let t0 = T0;
        let evaluated: Vec<Evaluated> = readings
            .iter()
            .map(|&(p, slot, value, status)| {
                let symbol = ["COD", "pH", "TSS"][p as usize];
                let value = [100.0, 200.0, 7.25, -3.5, 0.1, 1e30][value as usize];
                let mut e = reading("BN_A_B", symbol, t0 + slot * 900_000, value);
                e.reading.status = [Status::Measuring, Status::Measuring, Status::Calibrating, Status::Fault][status as usize];
                e
            })
            .collect();
        let day_only = AggregateContext { windows: vec![DAY_MS], ..ctx.clone() };
        let mut rest = &evaluated[..];
        for (i, cut) in cuts.iter().cycle().enumerate() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at((*cut).min(rest.len()));
            rest = tail;
            l.commit(batch, &[]).unwrap();
            let pause = paused.is_some_and(|(from, steps)| (from..from + steps).contains(&i));
            l.refresh_aggregates(if pause { &day_only } else { &ctx }, step).unwrap();
            if forget_at == Some(i) {
                // A ledger from before running totals: its rows are counted once from the readings.
                l.conn.execute("UPDATE aggregates SET non_negative = NULL, sum_exact = NULL", []).unwrap();
            }
        }
        while l.refresh_aggregates(&ctx, step).unwrap().readings_seen > 0 {}
        // Rows whose totals were dropped and that no reading touched since are as stale as before running totals.
        let without: usize = l
            .conn
            .query_row("SELECT COUNT(*) FROM aggregates WHERE non_negative IS NULL", [], |r| r.get(0))
            .unwrap();
        if forget_at.is_none() && paused.is_none() {
            proptest::prop_assert_eq!(without, 0);
        }
        let pairs = stored_and_recomputed(&l, &ctx);
        proptest::prop_assert!(pairs.len() + without > 0);
        for (key, stored, fresh) in pairs {
            proptest::prop_assert_eq!(stored, fresh, "window {:?}", key);
        }
    }
}

#[test]
fn a_forwarders_cursor_move_does_not_wait_for_a_busy_ledger_and_is_stored_later() {
    let (d, mut l) = open();
    let batch: Vec<_> = (1..=3)
        .map(|i| reading("BN_A_B", "COD", i * 1000, 1.0))
        .collect();
    l.commit(&batch, &[]).unwrap();
    let path = d.path().join("l.db");
    let mut f = forward::ForwardStore::open(&path, "t").unwrap();
    f.ensure_cursors().unwrap();
    // Another connection holds the write lock, as the writer does through a burst.
    let holder = open_write(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    assert!(
        !f.move_cursor(Stream::Readings, 2).unwrap(),
        "not stored while the lock is held"
    );
    assert!(
        started.elapsed() < BUSY_TIMEOUT / 2,
        "the move gave up at once instead of waiting for the lock"
    );
    assert_eq!(f.cursor(&f.readings_cursor.clone()).unwrap(), 0);
    assert_eq!(
        f.backlog().unwrap().rows_behind,
        1,
        "the backlog counts from the delivered position"
    );
    assert!(!f.save_cursors(false).unwrap());
    holder.execute_batch("COMMIT").unwrap();
    assert!(f.save_cursors(false).unwrap());
    assert_eq!(f.cursor(&f.readings_cursor.clone()).unwrap(), 2);
    assert!(f.save_cursors(false).unwrap(), "nothing left to store");
    // Stored a moment ago: the next move is stored later, even with the lock free.
    assert!(!f.move_cursor(Stream::Readings, 3).unwrap());
    assert_eq!(f.cursor(&f.readings_cursor.clone()).unwrap(), 2);
    assert!(f.save_cursors(false).unwrap());
    assert_eq!(f.cursor(&f.readings_cursor.clone()).unwrap(), 3);
}

#[test]
fn a_forwarder_takes_the_rows_just_committed_from_memory_exactly_as_the_ledger_holds_them() {
    let (d, mut l) = open();
    let path = d.path().join("l.db");
    let mut f = forward::ForwardStore::open(&path, "t").unwrap();
    assert_eq!(f.readings_after(0, 100).unwrap(), vec![]);
    let ph = |ts, v| {
        let mut e = reading("BN_A_B", "pH", ts, v);
        e.assessment.limit = Some(LimitBound::Range(5.5, 9.0));
        e.assessment.ratio = None;
        e
    };
    let mut odd = reading("BN_C_D", "TSS", 3000, 7.0);
    odd.reading.status = Status::Calibrating;
    odd.assessment.ratio = Some(f64::NAN);
    l.commit(
        &[
            reading("BN_A_B", "COD", 2000, 80.0),
            ph(1000, 7.1),
            reading("BN_A_B", "COD", 1000, 60.0),
        ],
        &[],
    )
    .unwrap();
    let first = f.readings_after(0, 2).unwrap();
    // A redelivery, a conflict, a new station and parameter.
    l.commit(
        &[
            reading("BN_A_B", "COD", 2000, 80.0),
            ph(1000, 7.4),
            odd,
            ph(4000, 6.8),
        ],
        &[],
    )
    .unwrap();
    let rest = f.readings_after(first.last().unwrap().seq, 100).unwrap();
    let fed: Vec<_> = first.into_iter().chain(rest).collect();
    assert_eq!(fed.len(), 5);
    assert_eq!(f.rows_from_feed, 5, "every row came from memory");
    // The writer gone, the same rows are read from the ledger.
    drop(l);
    assert_eq!(f.readings_after(0, 100).unwrap(), fed);
    assert_eq!(f.rows_from_feed, 5);
}
