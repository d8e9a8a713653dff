use super::*;
use crate::compliance::{Band, Flags};
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
            limit: Some(LimitBound::Max(135.0)),
            ratio: Some(value / 135.0),
            band: Band::Compliant,
            flags: Flags::default(),
        },
        source: SourceKind::Sim,
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
    assert!(matches!(o[0], Outcome::Accepted(_)) ^ matches!(o[2], Outcome::Accepted(_)));
    assert!(matches!(o[1], Outcome::Accepted(_)));
    assert_eq!((c.accepted, c.duplicates), (2, 1));
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
    let n = l.apply_retention(Timestamp(10_000)).unwrap();
    assert_eq!(n, 1, "only the row the forwarder has sent may go");
    assert_eq!(l.reader().unwrap().count_readings().unwrap(), 1);
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
