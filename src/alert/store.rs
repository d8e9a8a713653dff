//! The alert engine's side of its ledger tables: turns the engine's transitions into alert, outbox and key-state
//! rows (through [`crate::ledger::alerts`], which owns the SQL) and the stored alerts into the API's JSON. The
//! runner holds one [`Store`] (one write connection); only the ledger writer writes readings. Blocking calls: run
//! them through [`crate::ledger::Held`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde_json::{json, Value};

use super::engine::{severity_name, AlertKey, Change, KeyState, Kind, Transition};
use super::message::{Context, LateAlert, Notification};
use crate::config::Synchronous;
use crate::ledger::alert_history::KeyExtent;
use crate::ledger::alerts::{
    AckOutcome, Acknowledgement, AlertStore, AlertTx, AlertUpdate, AlertWithDeliveries, CatchUpRow,
    JudgingWindow, KeyStateRow, NewAlert, QueuedNotification, ReplayReading, StoredAlert,
};
use crate::ledger::quality::FlagRevision;
use crate::ledger::LedgerError;
use crate::model::Timestamp;

pub use crate::ledger::alerts::READINGS_CURSOR;

pub struct Store {
    pub(super) ledger: AlertStore,
    /// Per station, the alerts late data raised or cleared that await their summary (kept in the ledger too, so a
    /// restart in the middle of a catch-up still sends its summary).
    pub(super) catch_ups: BTreeMap<String, CatchUp>,
    /// Per key (`AlertKey::id`), the span its alerts cover, as last read (`None`: no alert); forgotten when the key's
    /// alerts change here. Lets a re-derivation see without a query that late data lies clear of every alert.
    pub(super) extents: HashMap<String, Option<KeyExtent>>,
}

/// A transition and the channels its notification goes to.
pub type Routed = (Transition, Vec<String>);

/// What a commit stored.
#[derive(Debug, Default)]
pub struct Committed {
    /// The alert of each transition, in order (0: skipped).
    pub ids: Vec<i64>,
    /// The alerts as they now stand.
    pub changed: Vec<StoredAlert>,
    /// Channels with new outbox rows.
    pub woken: BTreeSet<String>,
    /// Stations whose catch-up is still open.
    pub catching_up: BTreeSet<String>,
}

/// The catch-ups a transaction changes: copied from the committed ones when first touched, written back once it
/// commits (a failed transaction leaves them as they were, and no commit copies them all).
pub(super) struct StagedCatchUps<'a> {
    committed: &'a BTreeMap<String, CatchUp>,
    changed: BTreeMap<String, Option<CatchUp>>,
}

impl<'a> StagedCatchUps<'a> {
    pub(super) fn new(committed: &'a BTreeMap<String, CatchUp>) -> Self {
        StagedCatchUps {
            committed,
            changed: BTreeMap::new(),
        }
    }

    pub(super) fn entry(&mut self, station: &str) -> &mut CatchUp {
        let committed = self.committed;
        self.changed
            .entry(station.to_string())
            .or_insert_with(|| committed.get(station).cloned())
            .get_or_insert_with(CatchUp::default)
    }

    pub(super) fn get(&self, station: &str) -> Option<&CatchUp> {
        match self.changed.get(station) {
            Some(staged) => staged.as_ref(),
            None => self.committed.get(station),
        }
    }

    pub(super) fn remove(&mut self, station: &str) -> Option<CatchUp> {
        let removed = match self.changed.get_mut(station) {
            Some(staged) => staged.take(),
            None => self.committed.get(station).cloned(),
        };
        self.changed.insert(station.to_string(), None);
        removed
    }

    /// The changes, to apply once the transaction has committed.
    pub(super) fn into_changes(self) -> BTreeMap<String, Option<CatchUp>> {
        self.changed
    }
}

/// Apply a committed transaction's catch-up changes.
pub(super) fn apply_catch_ups(
    committed: &mut BTreeMap<String, CatchUp>,
    changes: BTreeMap<String, Option<CatchUp>>,
) {
    for (station, c) in changes {
        match c {
            Some(c) => committed.insert(station, c),
            None => committed.remove(&station),
        };
    }
}

/// The alerts late data touched at one station, with the channels each is routed to.
#[derive(Debug, Clone, Default)]
pub(super) struct CatchUp {
    alerts: BTreeMap<i64, (LateAlert, BTreeSet<String>)>,
}

impl CatchUp {
    fn add(&mut self, id: i64, t: &Transition, channels: &[String]) {
        let (a, ch) = self.alerts.entry(id).or_insert_with(|| {
            (
                LateAlert {
                    alert_id: id,
                    kind: t.key.kind.as_str().into(),
                    parameter: t.key.subject.clone(),
                    since: t.since,
                    raised: None,
                    cleared: None,
                    peak_value: None,
                    unit: String::new(),
                    peak_multiple: None,
                    peak_band: String::new(),
                    withdrawn: false,
                },
                BTreeSet::new(),
            )
        });
        match t.change {
            Change::Raised => a.raised = Some(t.at),
            Change::Cleared => a.cleared = Some(t.at),
            _ => {}
        }
        a.since = t.since;
        a.peak_value = t.peak.value;
        a.unit = t.peak.unit.clone();
        a.peak_multiple = t.peak.ratio;
        a.peak_band = t.peak.band.clone();
        ch.extend(channels.iter().cloned());
    }

    /// An alert a re-derivation added, moved or withdrew (it replaces what the catch-up held of it).
    pub(super) fn note(&mut self, a: LateAlert, channels: &[String]) {
        let entry = self
            .alerts
            .entry(a.alert_id)
            .or_insert_with(|| (a.clone(), BTreeSet::new()));
        entry.0 = a;
        entry.1.extend(channels.iter().cloned());
    }

    /// Store the entries of alerts `ids` of `station`'s catch-up in `tx`.
    pub(super) fn save(
        &self,
        tx: &AlertTx<'_>,
        station: &str,
        ids: impl IntoIterator<Item = i64>,
    ) -> Result<(), LedgerError> {
        let rows: Vec<CatchUpRow> = ids
            .into_iter()
            .filter_map(|id| self.alerts.get(&id).map(|e| (id, e)))
            .map(|(id, (a, channels))| CatchUpRow {
                station: station.to_string(),
                alert_id: id,
                entry: serde_json::to_string(a).unwrap_or_default(),
                channels: serde_json::to_string(channels).unwrap_or_default(),
            })
            .collect();
        tx.save_catch_up(&rows)
    }

    /// Per channel, the alerts routed to it.
    fn by_channel(self) -> BTreeMap<String, Vec<LateAlert>> {
        let mut out: BTreeMap<String, Vec<LateAlert>> = BTreeMap::new();
        for (a, channels) in self.alerts.into_values() {
            for c in channels {
                out.entry(c).or_default().push(a.clone());
            }
        }
        out
    }
}

/// Why an acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("no alert has id {0}")]
    NotFound(i64),
    #[error("alert {id} is {state}; only a raised alert can be acknowledged")]
    NotRaised { id: i64, state: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the alert engine is not running")]
    Stopped,
}

/// The engine's state to save with a commit: keys changed, series fed in order (their newest reading time), and
/// the position in the ledger's readings it has processed up to.
#[derive(Debug, Default)]
pub struct Saved {
    pub dirty: Vec<(AlertKey, KeyState)>,
    pub series: Vec<((String, String), i64)>,
    pub readings_pos: Option<i64>,
}

impl Store {
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Store, LedgerError> {
        let ledger = AlertStore::open(path, synchronous)?;
        let mut catch_ups: BTreeMap<String, CatchUp> = BTreeMap::new();
        for row in ledger.catch_ups()? {
            let (Ok(a), Ok(channels)) = (
                serde_json::from_str::<LateAlert>(&row.entry),
                serde_json::from_str::<BTreeSet<String>>(&row.channels),
            ) else {
                tracing::warn!(station = %row.station, alert = row.alert_id, "A stored catch-up entry was not understood; left out of the summary.");
                continue;
            };
            let c = catch_ups.entry(row.station).or_default();
            c.alerts.insert(row.alert_id, (a, channels));
        }
        Ok(Store {
            ledger,
            catch_ups,
            extents: HashMap::new(),
        })
    }

    /// The newest reading time each series has fed its keys.
    pub fn load_series_newest(&self) -> Result<HashMap<(String, String), i64>, LedgerError> {
        Ok(self
            .ledger
            .series_newest()?
            .into_iter()
            .map(|(s, p, t)| ((s, p), t))
            .collect())
    }

    /// Every persisted key state.
    pub fn load_states(&self) -> Result<Vec<(AlertKey, KeyState)>, LedgerError> {
        let mut out = Vec::new();
        for KeyStateRow { key, state } in self.ledger.key_states()? {
            let mut parts = key.splitn(3, '|');
            let (Some(station), Some(subject), Some(kind)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Some(kind), Ok(state)) = (Kind::parse(kind), serde_json::from_str(&state)) else {
                tracing::warn!(key = %key, "Stored alert state not understood; the key starts afresh.");
                continue;
            };
            out.push((AlertKey::new(station, subject, kind), state));
        }
        Ok(out)
    }

    /// The readings cursor, registering it at the newest reading on the first start (history is not replayed).
    pub fn readings_cursor(&self) -> Result<i64, LedgerError> {
        self.ledger.readings_cursor()
    }

    /// Drop the engine's readings cursor (alerts switched off), so retention does not wait for it.
    pub fn forget_cursor(&self) -> Result<(), LedgerError> {
        self.ledger.forget_cursor()
    }

    /// Committed readings after `after`, in commit order, at most `limit` (catching up after a restart).
    pub fn replay_readings(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ReplayReading>, LedgerError> {
        self.ledger.replay_readings(after, limit)
    }

    /// Stored readings re-flagged by the arrival of readings committed in `(after, until]`.
    pub fn flag_revisions(&self, after: i64, until: i64) -> Result<Vec<FlagRevision>, LedgerError> {
        self.ledger.flag_revisions(after, until)
    }

    /// The newest judging window of every series.
    pub fn current_windows(&self, window_ms: i64) -> Result<Vec<JudgingWindow>, LedgerError> {
        self.ledger.current_windows(window_ms)
    }

    /// Store transitions (alert rows and outbox rows), the engine's state (dirty keys, series clocks, the cursor) in
    /// one transaction.
    ///
    /// A transition decided on late data queues nothing: it joins its station's catch-up, whose one summary per
    /// channel is queued when `close` names the station (its late data has stopped). Live transitions are notified
    /// at once meanwhile: a catch-up never holds up a live alert. Returns the ids of the alerts the transitions
    /// belong to, in order, the alerts as they now stand, and the channels that got new rows.
    pub fn commit(
        &mut self,
        ctx: &Context,
        routed: &[Routed],
        close: &[String],
        saved: Saved,
    ) -> Result<Committed, LedgerError> {
        let Saved {
            mut dirty,
            series,
            readings_pos,
        } = saved;
        let tx = self.ledger.transaction()?;
        let mut catch_ups = StagedCatchUps::new(&self.catch_ups);
        let mut out = Committed {
            ids: vec![0; routed.len()],
            ..Committed::default()
        };
        // Delivery runs on the wall clock (the engine's clock is injected and may be a test's).
        let queued = Timestamp::now().millis();
        // A key can be raised and then escalated or cleared within one batch, before the engine knows the new id.
        let mut assigned: HashMap<AlertKey, i64> = HashMap::new();
        let late = |t: &Transition| t.late && t.change.notifies();
        // Late transitions first (they are older), then the summaries due, then the rest in order.
        for (i, (t, channels)) in routed.iter().enumerate().filter(|(_, (t, _))| late(t)) {
            let Some(id) = store_one(&tx, t, &mut assigned)? else {
                continue;
            };
            out.ids[i] = id;
            catch_ups.entry(&t.key.station).add(id, t, channels);
        }
        for station in close {
            if let Some(c) = catch_ups.remove(station.as_str()) {
                for (channel, alerts) in c.by_channel() {
                    let n = Notification::late_summary(ctx, station, alerts, queued);
                    let payload = serde_json::to_string(&n).unwrap_or_default();
                    tx.queue(&QueuedNotification {
                        alert_id: n.alert_id,
                        channel: &channel,
                        change: "late",
                        payload: &payload,
                        queued,
                    })?;
                    out.woken.insert(channel);
                }
            }
        }
        for (i, (t, channels)) in routed.iter().enumerate().filter(|(_, (t, _))| !late(t)) {
            let Some(id) = store_one(&tx, t, &mut assigned)? else {
                continue;
            };
            out.ids[i] = id;
            if !t.change.notifies() {
                continue;
            }
            let n = Notification::build(ctx, id, t);
            let payload = serde_json::to_string(&n).unwrap_or_default();
            for ch in channels {
                tx.queue(&QueuedNotification {
                    alert_id: id,
                    channel: ch,
                    change: t.change.as_str(),
                    payload: &payload,
                    queued,
                })?;
                out.woken.insert(ch.clone());
            }
        }
        // The catch-ups as they now stand, in the ledger too: entries of late transitions, none for a summarised one.
        for (i, (t, _)) in routed.iter().enumerate().filter(|(_, (t, _))| late(t)) {
            if let Some(c) = catch_ups.get(&t.key.station) {
                c.save(&tx, &t.key.station, [out.ids[i]])?;
            }
        }
        for station in close {
            tx.clear_catch_up(station)?;
        }
        for (k, s) in dirty.iter_mut() {
            if let Some(id) = assigned.get(k) {
                s.alert_id = Some(*id);
            }
        }
        let now = Timestamp::now().millis();
        for (k, s) in &dirty {
            tx.save_key_state(&key_state_row(k, s), now)?;
        }
        for ((station, parameter), newest) in &series {
            tx.save_series_newest(station, parameter, *newest)?;
        }
        if let Some(pos) = readings_pos {
            tx.set_readings_cursor(pos)?;
        }
        let mut seen = HashSet::new();
        for id in &out.ids {
            if *id != 0 && seen.insert(*id) {
                if let Some(a) = tx.alert(*id)? {
                    out.changed.push(a);
                }
            }
        }
        let changes = catch_ups.into_changes();
        tx.commit()?;
        for (t, _) in routed {
            self.extents.remove(&t.key.id());
        }
        apply_catch_ups(&mut self.catch_ups, changes);
        out.catching_up = self.catch_ups.keys().cloned().collect();
        Ok(out)
    }

    /// Acknowledge a raised alert with a comment, and write the audit row, in one transaction.
    pub fn acknowledge(
        &mut self,
        id: i64,
        who: &str,
        role: &str,
        comment: &str,
        state: Option<(AlertKey, KeyState)>,
    ) -> Result<StoredAlert, AckError> {
        let ack = Acknowledgement {
            id,
            who,
            role,
            comment,
            key_state: state.map(|(k, s)| key_state_row(&k, &s)),
        };
        match self.ledger.acknowledge(&ack)? {
            AckOutcome::Acknowledged(a) => Ok(*a),
            AckOutcome::NotFound => Err(AckError::NotFound(id)),
            AckOutcome::NotRaised(state) => Err(AckError::NotRaised { id, state }),
        }
    }
}

pub(super) fn key_state_row(k: &AlertKey, s: &KeyState) -> KeyStateRow {
    KeyStateRow {
        key: k.id(),
        state: serde_json::to_string(s).unwrap_or_default(),
    }
}

/// Store one transition; the id of its alert, or `None` for a change of an alert that is not open (skipped).
fn store_one(
    tx: &AlertTx<'_>,
    t: &Transition,
    assigned: &mut HashMap<AlertKey, i64>,
) -> Result<Option<i64>, LedgerError> {
    let known = match t.change {
        Change::Raised => None,
        _ => match t.alert_id.or_else(|| assigned.get(&t.key).copied()) {
            Some(id) => Some(id),
            None => tx.open_alert(&t.key.station, &t.key.subject, t.key.kind.as_str())?,
        },
    };
    if t.change != Change::Raised && known.is_none() {
        tracing::warn!(key = %t.key.id(), change = t.change.as_str(), "Alert change without an open alert; skipped.");
        return Ok(None);
    }
    let id = store_transition(tx, t, known)?;
    if t.change == Change::Raised {
        assigned.insert(t.key.clone(), id);
    }
    Ok(Some(id))
}

/// The `detail` column: the latest observation, and whether the alert was raised on late data.
#[derive(serde::Serialize)]
struct StoredDetail<'a> {
    #[serde(flatten)]
    latest: &'a super::engine::Detail,
    raised_late: bool,
}

/// The `detail` column's text.
pub(super) fn detail_json(latest: &super::engine::Detail, raised_late: bool) -> String {
    serde_json::to_string(&StoredDetail {
        latest,
        raised_late,
    })
    .unwrap_or_default()
}

fn store_transition(tx: &AlertTx<'_>, t: &Transition, id: Option<i64>) -> Result<i64, LedgerError> {
    let detail = detail_json(&t.detail, t.raised_late);
    let peak = serde_json::to_string(&t.peak).unwrap_or_default();
    let notifications = i64::from(t.change.notifies());
    match (t.change, id) {
        (Change::Raised, _) | (_, None) => tx.insert_alert(&NewAlert {
            station: &t.key.station,
            subject: &t.key.subject,
            kind: t.key.kind.as_str(),
            severity: severity_name(t.key.kind.severity()),
            since: t.since,
            at: t.at,
            last_bad: t.last_bad,
            detail: &detail,
            peak: &peak,
            notifications,
        }),
        (Change::Cleared, Some(id)) => {
            tx.update_alert(
                id,
                &AlertUpdate::Cleared {
                    at: t.at,
                    last_bad: t.last_bad,
                    detail: &detail,
                    peak: &peak,
                    notifications,
                },
            )?;
            Ok(id)
        }
        (_, Some(id)) => {
            tx.update_alert(
                id,
                &AlertUpdate::Changed {
                    last_bad: t.last_bad,
                    detail: &detail,
                    peak: &peak,
                    notifications,
                },
            )?;
            Ok(id)
        }
    }
}

/// One alert as the API and the dashboard show it. Times are observation times (Unix ms): `since` the first bad
/// observation, `raised` and `cleared` the observations that decided them, `last_bad` (= `updated`) the latest bad
/// one; `detail` is the latest observation, `peak` the worst; `late`: raised on late data.
pub fn alert_json(a: &StoredAlert) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let detail = parse(&a.detail);
    json!({
        "id": a.id, "station": a.station, "parameter": a.subject,
        "kind": a.kind, "severity": a.severity, "state": a.state,
        "since": a.since, "raised": a.raised, "updated": a.updated, "last_bad": a.updated,
        "cleared": a.cleared, "late": detail["raised_late"].as_bool().unwrap_or(false),
        "detail": detail, "peak": parse(&a.peak),
        "notifications": a.notifications, "acked_at": a.acked_at,
        "acked_by": a.acked_by, "ack_comment": a.ack_comment,
        "words": words_json(&a.subject, detail["note"].as_str().unwrap_or_default()),
    })
}

/// What people read of an alert, per language: its subject (`COD (độ đầy đủ dữ liệu)` for `COD:completeness`) and
/// its note in words (the stored note is English).
fn words_json(subject: &str, note: &str) -> Value {
    use super::words::{self, Lang};
    let one =
        |lang| json!({ "subject": words::subject(subject, lang), "note": words::note(note, lang) });
    json!({ "vi": one(Lang::Vi), "en": one(Lang::En) })
}

/// An alert with its deliveries, as `GET /api/alerts` lists it.
pub fn alert_with_deliveries_json(a: &AlertWithDeliveries) -> Value {
    let mut v = alert_json(&a.alert);
    let deliveries = a
        .deliveries
        .iter()
        .map(|x| {
            json!({ "id": x.id, "channel": x.channel, "change": x.change,
                "status": x.status, "attempts": x.attempts, "created": x.created,
                "delivered": x.delivered, "last_error": x.last_error })
        })
        .collect();
    v["deliveries"] = Value::Array(deliveries);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::engine::Detail;

    fn pos(readings_pos: i64) -> Saved {
        Saved {
            readings_pos: Some(readings_pos),
            ..Saved::default()
        }
    }

    fn transition(change: Change, at: i64) -> Transition {
        Transition {
            key: AlertKey::new("BN_A_B", "COD", Kind::Exceedance),
            change,
            alert_id: None,
            at,
            since: 1,
            last_bad: at,
            detail: Detail::default(),
            peak: Detail::default(),
            late: false,
            raised_late: false,
        }
    }

    fn context() -> Context {
        Context {
            public_url: "http://x".into(),
            timezone: chrono::FixedOffset::east_opt(7 * 3600).unwrap(),
            stations: Default::default(),
        }
    }

    /// A fresh ledger in `dir` and its path.
    fn ledger(dir: &tempfile::TempDir) -> std::path::PathBuf {
        let path = dir.path().join("l.db");
        drop(crate::ledger::Ledger::open(&path, crate::config::Synchronous::Normal).unwrap());
        path
    }

    #[test]
    fn late_transitions_queue_one_summary_per_channel_when_the_catch_up_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = ledger(&dir);
        let mut s = Store::open(&path, Synchronous::Full).unwrap();
        let ctx = context();
        let late = |change, at, subject: &str| Transition {
            key: AlertKey::new("BN_A_B", subject, Kind::Exceedance),
            late: true,
            raised_late: true,
            ..transition(change, at)
        };
        let (both, officers) = (
            vec!["log".to_string(), "officers".to_string()],
            vec!["officers".to_string()],
        );
        // COD raised and cleared, TSS raised, all on old data: stored, nothing queued yet.
        let routed = vec![
            (late(Change::Raised, 10, "COD"), both.clone()),
            (late(Change::Cleared, 20, "COD"), both.clone()),
            (late(Change::Raised, 30, "TSS"), officers.clone()),
        ];
        let c = s.commit(&ctx, &routed, &[], pos(5)).unwrap();
        assert_eq!(c.ids, [1, 1, 2]);
        assert!(c.woken.is_empty());
        assert_eq!(c.catching_up.len(), 1);
        let outbox = |path: &std::path::Path| crate::ledger::alerts::outbox_rows(path).unwrap();
        assert!(outbox(&path).is_empty());
        // The catch-up closes: one summary per channel, naming the alerts routed to it.
        let c = s
            .commit(&ctx, &[], &["BN_A_B".to_string()], pos(5))
            .unwrap();
        assert!(c.catching_up.is_empty());
        let rows = outbox(&path);
        assert_eq!(rows.len(), 2, "{rows:?}");
        let named = |payload: &str| -> Vec<(i64, Option<i64>, Option<i64>)> {
            let n: Notification = serde_json::from_str(payload).unwrap();
            assert_eq!((n.change.as_str(), n.kind.as_str()), ("late", "late"));
            n.late
                .iter()
                .map(|a| (a.alert_id, a.raised, a.cleared))
                .collect()
        };
        assert_eq!((rows[0].1.as_str(), rows[0].2.as_str()), ("log", "late"));
        assert_eq!(named(&rows[0].3), [(1, Some(10), Some(20))]);
        assert_eq!(rows[1].1, "officers");
        assert_eq!(
            named(&rows[1].3),
            [(1, Some(10), Some(20)), (2, Some(30), None)]
        );
        // The API shows them as raised on late data.
        let reader = crate::ledger::Reader::open(&path).unwrap();
        let all = crate::ledger::alert_list::AlertFilter {
            limit: 100,
            ..Default::default()
        };
        let listed = reader.alerts(&all).unwrap();
        assert!(listed.iter().all(|a| alert_json(&a.alert)["late"] == true));
    }

    #[test]
    fn a_restart_in_the_middle_of_a_catch_up_still_sends_its_summary() {
        let dir = tempfile::tempdir().unwrap();
        let path = ledger(&dir);
        let ctx = context();
        let late = |change, at| Transition {
            key: AlertKey::new("BN_A_B", "COD", Kind::Exceedance),
            late: true,
            raised_late: true,
            ..transition(change, at)
        };
        let log = vec!["log".to_string()];
        // Late data raises COD; the runner stops before the catch-up closes.
        let mut s = Store::open(&path, Synchronous::Full).unwrap();
        s.commit(
            &ctx,
            &[(late(Change::Raised, 10), log.clone())],
            &[],
            pos(5),
        )
        .unwrap();
        drop(s);
        // After the restart, more late data clears it, then the catch-up closes: one summary with both.
        let mut s = Store::open(&path, Synchronous::Full).unwrap();
        let c = s
            .commit(
                &ctx,
                &[(late(Change::Cleared, 20), log.clone())],
                &[],
                pos(6),
            )
            .unwrap();
        assert_eq!(c.catching_up.len(), 1);
        s.commit(&ctx, &[], &["BN_A_B".to_string()], pos(6))
            .unwrap();
        let rows = crate::ledger::alerts::outbox_rows(&path).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let n: Notification = serde_json::from_str(&rows[0].3).unwrap();
        let named: Vec<_> = n
            .late
            .iter()
            .map(|a| (a.alert_id, a.raised, a.cleared))
            .collect();
        assert_eq!(named, [(1, Some(10), Some(20))]);
        // Summarised: nothing waits after another restart.
        drop(s);
        let s = Store::open(&path, Synchronous::Full).unwrap();
        assert!(s.catch_ups.is_empty());
    }

    #[test]
    fn raise_and_clear_in_one_batch_make_one_cleared_alert() {
        let dir = tempfile::tempdir().unwrap();
        let path = ledger(&dir);
        let mut s = Store::open(&path, Synchronous::Full).unwrap();
        let ctx = context();
        let routed = vec![
            (transition(Change::Raised, 10), vec!["log".to_string()]),
            (transition(Change::Escalated, 11), vec!["log".to_string()]),
            (transition(Change::Cleared, 12), vec!["log".to_string()]),
            (transition(Change::Raised, 13), vec!["log".to_string()]),
        ];
        let c = s.commit(&ctx, &routed, &[], pos(5)).unwrap();
        let (ids, changed) = (c.ids, c.changed);
        assert_eq!(ids, [1, 1, 1, 2]);
        assert_eq!(changed.len(), 2);
        assert_eq!(changed[0].state, "cleared");
        assert_eq!(changed[1].state, "raised");
        let reader = crate::ledger::Reader::open(&path).unwrap();
        let all = crate::ledger::alert_list::AlertFilter {
            limit: 100,
            ..Default::default()
        };
        let n: usize = reader
            .alerts(&all)
            .unwrap()
            .iter()
            .map(|a| a.deliveries.len())
            .sum();
        assert_eq!(n, 4);
        assert_eq!(reader.cursor(READINGS_CURSOR).unwrap(), 5);
    }
}
