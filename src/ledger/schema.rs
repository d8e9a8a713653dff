//! Ledger schema and migrations. `PRAGMA user_version` holds the applied version; each migration runs once, in
//! order, inside a transaction. Never edit a released migration: add a new one.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::LedgerError;

/// Migrations in order; index + 1 is the schema version they bring.
const MIGRATIONS: &[&str] = &[
    // 1: readings, reference tables, quarantine, conflicts, cursors, aggregates, events.
    r#"
CREATE TABLE stations (
    id    INTEGER PRIMARY KEY,
    code  TEXT NOT NULL UNIQUE            -- Circular 10 id, e.g. BN_KCNQV_NUOC01
);
CREATE TABLE parameters (
    id      INTEGER PRIMARY KEY,
    symbol  TEXT NOT NULL UNIQUE          -- Circular 10 symbol, e.g. COD
);
CREATE TABLE readings (
    seq           INTEGER PRIMARY KEY,     -- commit order; forwarder cursors point here
    station_id    INTEGER NOT NULL REFERENCES stations(id),
    parameter_id  INTEGER NOT NULL REFERENCES parameters(id),
    ts            INTEGER NOT NULL,        -- sample time, Unix milliseconds, UTC
    value         REAL NOT NULL,
    unit          TEXT NOT NULL,
    status        INTEGER NOT NULL,        -- 0 measuring, 1 calibrating, 2 fault, 3 maintenance
    source        TEXT NOT NULL,           -- modbus, mqtt, tt10, sim, api
    received      INTEGER NOT NULL,        -- commit time, Unix milliseconds, UTC
    limit_low     REAL,                    -- lower bound of a two-sided limit (pH)
    limit_high    REAL,                    -- Cmax, or the upper bound of a range
    ratio         REAL,                    -- value / Cmax
    band          TEXT NOT NULL,           -- Decree 45 band or not_evaluated / no_limit / out_of_range
    flags         INTEGER NOT NULL,        -- quality flags: 1 above_range, 2 flat_line, 4 spike, 8 gap, 16 late
    UNIQUE (station_id, parameter_id, ts)
);
CREATE INDEX readings_ts ON readings(ts);
CREATE TABLE quarantine (
    id        INTEGER PRIMARY KEY,
    received  INTEGER NOT NULL,            -- Unix milliseconds, UTC
    source    TEXT NOT NULL,
    origin    TEXT NOT NULL,               -- topic, file name, host:port/unit/register
    station   TEXT,
    reason    TEXT NOT NULL,
    raw       BLOB NOT NULL
);
CREATE INDEX quarantine_received ON quarantine(received);
CREATE TABLE conflicts (
    id            INTEGER PRIMARY KEY,
    station_id    INTEGER NOT NULL REFERENCES stations(id),
    parameter_id  INTEGER NOT NULL REFERENCES parameters(id),
    ts            INTEGER NOT NULL,
    kept_value    REAL NOT NULL,           -- the first value, which stays in readings
    kept_status   INTEGER NOT NULL,
    new_value     REAL NOT NULL,           -- the later, different value, refused
    new_status    INTEGER NOT NULL,
    source        TEXT NOT NULL,
    received      INTEGER NOT NULL
);
CREATE TABLE cursors (
    name      TEXT PRIMARY KEY,            -- consumer, e.g. aggregates, influx:province:readings
    stream    TEXT NOT NULL,               -- what position counts: readings (readings.seq) or aggregates (change_seq)
    position  INTEGER NOT NULL,            -- last sequence number processed
    updated   INTEGER NOT NULL
);
CREATE TABLE aggregates (
    station_id    INTEGER NOT NULL REFERENCES stations(id),
    parameter_id  INTEGER NOT NULL REFERENCES parameters(id),
    window_ms     INTEGER NOT NULL,        -- 3600000 hourly, 86400000 daily
    window_start  INTEGER NOT NULL,        -- local-aligned window start, Unix milliseconds, UTC
    mean          REAL,
    min           REAL,
    max           REAL,
    valid         INTEGER NOT NULL,        -- measuring readings in the window
    expected      INTEGER NOT NULL,        -- window / reporting interval
    completeness  REAL NOT NULL,           -- valid / expected, 0..1
    limit_low     REAL,
    limit_high    REAL,
    ratio         REAL,
    band          TEXT NOT NULL,
    revision      INTEGER NOT NULL,        -- 1 when first computed, +1 at each recomputation
    computed      INTEGER NOT NULL,
    change_seq    INTEGER NOT NULL,        -- increases at every write; forwarders follow it
    PRIMARY KEY (station_id, parameter_id, window_ms, window_start)
) WITHOUT ROWID;
CREATE INDEX aggregates_change ON aggregates(change_seq);
CREATE TABLE aggregate_changes (
    id            INTEGER PRIMARY KEY,
    station_id    INTEGER NOT NULL,
    parameter_id  INTEGER NOT NULL,
    window_ms     INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,
    old_mean      REAL,
    new_mean      REAL,
    old_band      TEXT NOT NULL,
    new_band      TEXT NOT NULL,
    changed       INTEGER NOT NULL         -- when the recomputation happened
);
CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    station_id    INTEGER NOT NULL REFERENCES stations(id),
    parameter_id  INTEGER NOT NULL REFERENCES parameters(id),
    scope         TEXT NOT NULL,           -- instant (single readings) or window_<ms> (window means)
    start         INTEGER NOT NULL,        -- first exceeding observation
    end           INTEGER,                 -- back within the limit; NULL while open
    last          INTEGER NOT NULL,        -- latest exceeding observation
    band          TEXT NOT NULL,           -- band of the latest exceeding observation
    peak_band     TEXT NOT NULL,           -- worst band
    peak_ratio    REAL,                    -- highest multiple (NULL for ranges such as pH)
    peak_at       INTEGER NOT NULL,
    updated       INTEGER NOT NULL,        -- when this row last changed (wall clock)
    change_seq    INTEGER NOT NULL         -- increases at every write; forwarders follow it
);
CREATE INDEX events_change ON events(change_seq);
CREATE INDEX events_open ON events(station_id, parameter_id, scope, end);

CREATE TABLE dead_letters (
    id         INTEGER PRIMARY KEY,
    forwarder  TEXT NOT NULL,
    line       TEXT NOT NULL,              -- the line protocol the server refused
    status     INTEGER NOT NULL,           -- its HTTP status (400, 413, 422)
    response   TEXT NOT NULL,              -- its answer
    created    INTEGER NOT NULL
);

CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,             -- Unix milliseconds, UTC
    who      TEXT NOT NULL,                -- token name, or anonymous
    role     TEXT NOT NULL,
    action   TEXT NOT NULL,                -- e.g. POST /api/alerts/12/ack
    detail   TEXT NOT NULL                 -- what changed, e.g. the acknowledgement comment
);

CREATE TABLE station_notes (
    id       INTEGER PRIMARY KEY,
    station  TEXT NOT NULL,
    at       INTEGER NOT NULL,
    who      TEXT NOT NULL,
    text     TEXT NOT NULL                 -- e.g. "analyser cleaned", "plant reports bypass repaired"
);

-- Views for auditors reading the file with sqlite3: names and readable times.
CREATE VIEW readings_view AS
SELECT r.seq, s.code AS station, p.symbol AS parameter,
       strftime('%Y-%m-%dT%H:%M:%fZ', r.ts / 1000.0, 'unixepoch') AS time_utc,
       strftime('%Y-%m-%d %H:%M:%S', r.ts / 1000.0 + 7 * 3600, 'unixepoch') AS time_vn,
       r.value, r.unit,
       CASE r.status WHEN 0 THEN 'measuring' WHEN 1 THEN 'calibrating' WHEN 2 THEN 'fault' ELSE 'maintenance' END AS status,
       r.limit_low, r.limit_high, r.ratio, r.band, r.flags, r.source,
       strftime('%Y-%m-%dT%H:%M:%fZ', r.received / 1000.0, 'unixepoch') AS received_utc
FROM readings r JOIN stations s ON s.id = r.station_id JOIN parameters p ON p.id = r.parameter_id;
CREATE VIEW quarantine_view AS
SELECT id, strftime('%Y-%m-%dT%H:%M:%fZ', received / 1000.0, 'unixepoch') AS received_utc,
       source, origin, station, reason, length(raw) AS raw_bytes, raw
FROM quarantine;
"#,
    // 2: alerts, the alert engine's per-key state, the notification outbox and its delivery attempts.
    r#"
CREATE TABLE alerts (
    id            INTEGER PRIMARY KEY,
    station       TEXT NOT NULL,           -- station id; empty for daemon-wide alerts (forwarder backlog)
    subject       TEXT NOT NULL,           -- parameter, forwarder name, or empty
    kind          TEXT NOT NULL,           -- exceedance, violation, silent, fault, calibration, quality, backlog
    severity      TEXT NOT NULL,           -- technical, warning, violation
    state         TEXT NOT NULL,           -- raised, acknowledged, cleared
    since         INTEGER NOT NULL,        -- when the condition began (Unix ms, UTC)
    raised        INTEGER NOT NULL,
    updated       INTEGER NOT NULL,
    cleared       INTEGER,
    detail        TEXT NOT NULL,           -- JSON: value, unit, limit, multiple, band of the latest observation
    peak          TEXT NOT NULL,           -- JSON: the worst observation while raised
    notifications INTEGER NOT NULL,        -- notifications queued (raise, re-notify, escalation, clear)
    acked_at      INTEGER,
    acked_by      TEXT,
    ack_comment   TEXT
);
CREATE INDEX alerts_station ON alerts(station, state);
CREATE INDEX alerts_state ON alerts(state);
CREATE TABLE alert_keys (
    key      TEXT PRIMARY KEY,             -- station|subject|kind
    state    TEXT NOT NULL,                -- JSON of the engine's state for the key (pending counts, phase, …)
    updated  INTEGER NOT NULL
);
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    alert_id      INTEGER NOT NULL REFERENCES alerts(id),
    channel       TEXT NOT NULL,           -- [[alert.channel]] name
    change        TEXT NOT NULL,           -- raised, escalated, renotify, cleared
    payload       TEXT NOT NULL,           -- the notification as JSON, fixed when queued
    created       INTEGER NOT NULL,
    status        TEXT NOT NULL,           -- pending, delivered, failed (given up)
    attempts      INTEGER NOT NULL,
    next_attempt  INTEGER NOT NULL,
    delivered     INTEGER,
    last_error    TEXT
);
CREATE INDEX outbox_pending ON outbox(channel, status, id);
CREATE TABLE outbox_attempts (
    id           INTEGER PRIMARY KEY,
    outbox_id    INTEGER NOT NULL REFERENCES outbox(id),
    at           INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    ok           INTEGER NOT NULL,         -- 1 delivered, 0 failed
    error        TEXT                      -- what went wrong
);
CREATE INDEX outbox_attempts_row ON outbox_attempts(outbox_id);
"#,
    // 3: drop the time index on readings. It cost a third B-tree insert per reading; retention and every query
    // walk the (station, parameter, ts) key index instead.
    r#"
DROP INDEX readings_ts;
"#,
    // 4: a change sequence on alerts, so forwarders can follow every change of state (raised, acknowledged,
    // cleared). Triggers bump it on every write, whoever writes.
    r#"
ALTER TABLE alerts ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE alerts SET change_seq = id;
CREATE INDEX alerts_change ON alerts(change_seq);
CREATE TRIGGER alerts_change_insert AFTER INSERT ON alerts BEGIN
    UPDATE alerts SET change_seq = (SELECT IFNULL(MAX(change_seq), 0) + 1 FROM alerts) WHERE id = NEW.id;
END;
CREATE TRIGGER alerts_change_update AFTER UPDATE OF state, updated, cleared, acked_at, detail ON alerts BEGIN
    UPDATE alerts SET change_seq = (SELECT IFNULL(MAX(change_seq), 0) + 1 FROM alerts) WHERE id = NEW.id;
END;
"#,
    // 5: the readings key index in (station, time, parameter) order. A station reports all its parameters at one
    // time, so a commit's new keys fill one tail page per station instead of one per station and parameter: ten
    // times fewer pages written per commit (and fewer again checkpointed). Queries for one parameter skip the others
    // inside the index. SQLite cannot change a table's UNIQUE constraint in place, so the table is rebuilt, `seq`
    // and every row unchanged; on a large ledger this takes a while (about 30 s per 10 million readings).
    r#"
DROP VIEW readings_view;
CREATE TABLE readings_rekeyed (
    seq           INTEGER PRIMARY KEY,
    station_id    INTEGER NOT NULL REFERENCES stations(id),
    parameter_id  INTEGER NOT NULL REFERENCES parameters(id),
    ts            INTEGER NOT NULL,
    value         REAL NOT NULL,
    unit          TEXT NOT NULL,
    status        INTEGER NOT NULL,
    source        TEXT NOT NULL,
    received      INTEGER NOT NULL,
    limit_low     REAL,
    limit_high    REAL,
    ratio         REAL,
    band          TEXT NOT NULL,
    flags         INTEGER NOT NULL,
    UNIQUE (station_id, ts, parameter_id)
);
INSERT INTO readings_rekeyed SELECT seq, station_id, parameter_id, ts, value, unit, status, source, received,
    limit_low, limit_high, ratio, band, flags FROM readings ORDER BY seq;
DROP TABLE readings;
ALTER TABLE readings_rekeyed RENAME TO readings;
CREATE VIEW readings_view AS
SELECT r.seq, s.code AS station, p.symbol AS parameter,
       strftime('%Y-%m-%dT%H:%M:%fZ', r.ts / 1000.0, 'unixepoch') AS time_utc,
       strftime('%Y-%m-%d %H:%M:%S', r.ts / 1000.0 + 7 * 3600, 'unixepoch') AS time_vn,
       r.value, r.unit,
       CASE r.status WHEN 0 THEN 'measuring' WHEN 1 THEN 'calibrating' WHEN 2 THEN 'fault' ELSE 'maintenance' END AS status,
       r.limit_low, r.limit_high, r.ratio, r.band, r.flags, r.source,
       strftime('%Y-%m-%dT%H:%M:%fZ', r.received / 1000.0, 'unixepoch') AS received_utc
FROM readings r JOIN stations s ON s.id = r.station_id JOIN parameters p ON p.id = r.parameter_id;
"#,
    // 6: what a station sent beside what is stored, when its unit was converted to the parameter's unit or spelt
    // another way (`g/L` stored as mg/L, `oC` as °C). NULL when the reading arrived as stored. Adding columns
    // rewrites nothing, so the migration is instant on any ledger.
    r#"
ALTER TABLE readings ADD COLUMN received_value REAL;
ALTER TABLE readings ADD COLUMN received_unit TEXT;
DROP VIEW readings_view;
CREATE VIEW readings_view AS
SELECT r.seq, s.code AS station, p.symbol AS parameter,
       strftime('%Y-%m-%dT%H:%M:%fZ', r.ts / 1000.0, 'unixepoch') AS time_utc,
       strftime('%Y-%m-%d %H:%M:%S', r.ts / 1000.0 + 7 * 3600, 'unixepoch') AS time_vn,
       r.value, r.unit,
       CASE r.status WHEN 0 THEN 'measuring' WHEN 1 THEN 'calibrating' WHEN 2 THEN 'fault' ELSE 'maintenance' END AS status,
       r.limit_low, r.limit_high, r.ratio, r.band, r.flags, r.source,
       strftime('%Y-%m-%dT%H:%M:%fZ', r.received / 1000.0, 'unixepoch') AS received_utc,
       r.received_value, r.received_unit
FROM readings r JOIN stations s ON s.id = r.station_id JOIN parameters p ON p.id = r.parameter_id;
"#,
    // 7: one time axis for compliance events. A window is judged when it closes (or holds its expected count, or is
    // already certain to exceed): `verdict` is the band that judges it, NULL while the running mean is only a
    // forecast; `pending` marks windows not yet closed, so the writer can judge them when their end passes. Rows
    // written before this version count as closed with their band as the verdict (no rewrite: instant on any
    // ledger). Events are re-derived when observations arrive out of order; `event_revisions` records each one.
    r#"
ALTER TABLE aggregates ADD COLUMN verdict TEXT;            -- judged band (final, or early when already certain)
ALTER TABLE aggregates ADD COLUMN verdict_ratio REAL;      -- its multiple
ALTER TABLE aggregates ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;  -- 1 until the window has closed
CREATE INDEX aggregates_pending ON aggregates(window_start) WHERE pending = 1;
CREATE INDEX events_start ON events(station_id, parameter_id, scope, start);
CREATE TABLE event_revisions (
    id            INTEGER PRIMARY KEY,
    station_id    INTEGER NOT NULL,
    parameter_id  INTEGER NOT NULL,
    scope         TEXT NOT NULL,
    span_after    INTEGER,                 -- the span re-derived: observations after this one (NULL: from the first)
    span_until    INTEGER,                 -- up to this compliant one (NULL: to the newest)
    old_events    TEXT NOT NULL,           -- JSON: the events the span held before
    new_events    TEXT NOT NULL,           -- JSON: the events in-order arrival makes of it
    reason        TEXT NOT NULL,           -- what arrived out of order
    changed       INTEGER NOT NULL         -- when (wall clock, Unix ms)
);
"#,
    // 8: alerts follow observation time too. Observations that arrive out of order re-derive an alert key's history
    // from its last quiet point: alerts are rewritten in place, added, or withdrawn (state `withdrawn`: the complete
    // data no longer shows them), and `alert_revisions` records each re-derivation. `withdrawn_points` lists the
    // `event` and `alert` points a re-derivation left without a row (an event merged away, an alert whose raise
    // moved), so forwarders can mark them `withdrawn=1` in InfluxDB, whose write API cannot delete a point.
    r#"
CREATE TABLE withdrawn_points (
    seq           INTEGER PRIMARY KEY,     -- forwarders follow it
    measurement   TEXT NOT NULL,           -- event or alert
    station       TEXT NOT NULL,
    parameter     TEXT NOT NULL,           -- the event's parameter, the alert's subject
    series        TEXT NOT NULL,           -- the event's scope, the alert's kind
    state         TEXT NOT NULL,           -- the alert point's state tag; empty for events
    ts            INTEGER NOT NULL,        -- the point's time (Unix ms)
    recorded      INTEGER NOT NULL
);
-- The last change_seq given to an event: a re-derivation deletes events, and a sequence taken as MAX + 1 would then
-- hand out a number a forwarder has already passed.
CREATE TABLE counters (
    name          TEXT PRIMARY KEY,
    value         INTEGER NOT NULL
);
INSERT INTO counters SELECT 'events.change_seq', COALESCE(MAX(change_seq), 0) FROM events;
-- Late-data catch-ups not yet summarised, per station: a restart in the middle of one still sends its summary.
CREATE TABLE catch_ups (
    station       TEXT NOT NULL,
    alert_id      INTEGER NOT NULL,
    entry         TEXT NOT NULL,           -- JSON: what the late data did to the alert
    channels      TEXT NOT NULL,           -- JSON: the channels it is routed to
    PRIMARY KEY (station, alert_id)
);
CREATE INDEX alerts_key ON alerts(station, subject, kind, since);
CREATE TABLE alert_revisions (
    id            INTEGER PRIMARY KEY,
    station       TEXT NOT NULL,
    subject       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    span_after    INTEGER,                 -- the history re-derived: observations after this quiet one (NULL: all)
    old_alerts    TEXT NOT NULL,           -- JSON: the alerts the span held before
    new_alerts    TEXT NOT NULL,           -- JSON: the alerts in-order arrival makes of it
    reason        TEXT NOT NULL,           -- what arrived out of order
    changed       INTEGER NOT NULL         -- when (wall clock, Unix ms)
);
"#,
    // 9: the flags judged against a series' history (flat line, spike, gap) follow observation order: a reading
    // that arrives older than its series' newest re-judges the readings after it, and each flag it changes on a
    // stored reading is recorded here.
    r#"
CREATE TABLE flag_revisions (
    id            INTEGER PRIMARY KEY,
    reading_seq   INTEGER NOT NULL,        -- the reading whose flags changed
    cause_seq     INTEGER NOT NULL,        -- the late reading whose arrival changed them
    old_flags     INTEGER NOT NULL,
    new_flags     INTEGER NOT NULL,
    revised       INTEGER NOT NULL         -- when (wall clock, Unix ms)
);
CREATE INDEX flag_revisions_cause ON flag_revisions(cause_seq);
"#,
    // 10: the newest reading time each series has fed its alert keys in order. A reading older than it is
    // re-derived, not fed; the keys' own clocks cannot tell (a good observation of an idle key is not kept), so
    // after a restart a late reading newer than those clocks was fed as if it were the newest.
    r#"
CREATE TABLE alert_series (
    station    TEXT NOT NULL,
    parameter  TEXT NOT NULL,
    newest     INTEGER NOT NULL,           -- observation time, Unix ms, UTC
    PRIMARY KEY (station, parameter)
) WITHOUT ROWID;
"#,
    // 11: dashboard accounts and their sessions. A session is stored only as the SHA-256 of its id, so a copy of the
    // ledger does not hold a live session; passwords only as argon2id PHC strings.
    r#"
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,           -- viewer, operator, auditor or admin
    stations      TEXT NOT NULL,           -- station patterns, comma-separated (* every station)
    password      TEXT NOT NULL,           -- argon2id PHC string
    disabled      INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,  -- failed logins since the last success or lockout
    locked_until  INTEGER,                 -- Unix ms; no login before it
    created       INTEGER NOT NULL,        -- Unix ms
    changed       INTEGER NOT NULL         -- Unix ms: role, scope, password or state
);
CREATE TABLE sessions (
    id_sha256     BLOB PRIMARY KEY,        -- SHA-256 of the session id the browser holds
    user          TEXT NOT NULL,           -- a user's name, or an API token's name
    token_sha256  BLOB,                    -- a session opened with an API token: the token's hash (ends with it)
    created       INTEGER NOT NULL,        -- Unix ms
    last_seen     INTEGER NOT NULL         -- Unix ms
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions(user);
"#,
    // 12: each window's running totals, so a reading adds to its windows instead of re-reading every reading they
    // hold (a day of a busy series is hundreds of thousands of rows, read again at every refresh step while the
    // write lock was held). Rows from before it (NULL `non_negative`) and windows past the decimal range (NULL
    // `sum_exact`) are counted from the readings.
    r#"
ALTER TABLE aggregates ADD COLUMN sum_exact BLOB;       -- exact decimal sum of the valid readings (rust_decimal, 16 bytes); NULL past its range
ALTER TABLE aggregates ADD COLUMN non_negative INTEGER; -- 1 when no valid reading was negative
"#,
    // 13: an open event's row is updated by its start (`events_start`), so the index on (key, end) only cost an
    // index entry at each event written and two at each one closed.
    r#"
DROP INDEX events_open;
"#,
];

/// The schema version this build brings a ledger to.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Bring the database at `path` to the latest schema version.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), LedgerError> {
    migrate_to(conn, latest()).map_err(|e| match e {
        LedgerError::Sqlite(error) => LedgerError::Open {
            path: path.to_path_buf(),
            error,
        },
        LedgerError::TooNew {
            found, supported, ..
        } => LedgerError::TooNew {
            path: path.to_path_buf(),
            found,
            supported,
        },
        other => other,
    })
}

/// Apply the migrations up to schema version `target` (tests start from older versions with it).
pub(super) fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), LedgerError> {
    let current = version(conn)?;
    let latest = latest();
    if current > latest {
        return Err(LedgerError::TooNew {
            path: conn.path().map(PathBuf::from).unwrap_or_default(),
            found: current,
            supported: latest,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target as usize)
        .skip(current as usize)
    {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "Ledger schema migrated.");
    }
    Ok(())
}

pub fn version(conn: &Connection) -> Result<i64, LedgerError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Tables every quantrac ledger has had since its first schema version.
const CORE_TABLES: [&str; 4] = ["stations", "parameters", "readings", "quarantine"];

/// Refuse a database that is not a quantrac ledger (a version-0 file holding tables, or one missing the core
/// tables) or whose schema is newer than this build. A new, empty file passes. Errors name `path`.
pub(super) fn check(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let named = |error| LedgerError::Open {
        path: path.to_path_buf(),
        error,
    };
    let found = version(conn).map_err(|e| match e {
        LedgerError::Sqlite(error) => named(error),
        other => other,
    })?;
    if found > latest() {
        return Err(LedgerError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: latest(),
        });
    }
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(named)?;
    let foreign = if found == 0 {
        !tables.is_empty()
    } else {
        CORE_TABLES.iter().any(|t| !tables.iter().any(|x| x == t))
    };
    if foreign {
        let mut shown = tables
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if tables.len() > 5 {
            shown.push_str(&format!(" and {} more", tables.len() - 5));
        }
        if shown.is_empty() {
            shown = "none".into();
        }
        return Err(LedgerError::NotQuantrac {
            path: path.to_path_buf(),
            tables: shown,
        });
    }
    Ok(())
}

/// Refuse a ledger this process cannot write: opened read-only (file permissions, read-only mount), or a write
/// fails (a full disk). The probe rewrites the schema version with itself, in a transaction.
pub(super) fn check_writable(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    if conn
        .is_readonly(rusqlite::DatabaseName::Main)
        .unwrap_or(false)
    {
        return Err(LedgerError::NotWritable {
            path: path.to_path_buf(),
            why: "the file is read-only for this process".into(),
            error: None,
        });
    }
    let probe = || -> rusqlite::Result<()> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let r = conn
            .pragma_update(None, "user_version", v)
            .and_then(|_| conn.execute_batch("COMMIT"));
        if r.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        r
    };
    probe().map_err(|e| not_writable(path, e))
}

/// A write to the ledger at `path` failed at start-up.
pub(super) fn not_writable(path: &Path, error: rusqlite::Error) -> LedgerError {
    LedgerError::NotWritable {
        path: path.to_path_buf(),
        why: error.to_string(),
        error: Some(error),
    }
}
