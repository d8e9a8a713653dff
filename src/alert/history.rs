//! Re-deriving an alert key's history against the ledger (see [`super::rederive`] for the pure part): find the
//! key's last quiet point before the out-of-order observation, replay the series from there in observation order,
//! and store the outcome in one transaction — alerts rewritten, added or withdrawn, a revision row, the key's new
//! state — announcing every change in the station's late-data summary.

use std::collections::HashSet;

use serde_json::json;

use super::engine::{severity_name, AlertKey, Detail, KeyState, Kind, Observation, Phase, Rules};
use super::message::{Context, LateAlert};
use super::observe::{self, ReadingObs, WindowObs};
use super::rederive::{self, Episode, Replay, Stored};
use super::store::{apply_catch_ups, detail_json, key_state_row, StagedCatchUps, Store};
use crate::ledger::alert_history::{AlertRevision, KeyRef, Rewrite, Span};
use crate::ledger::alerts::{AlertTx, AlertUpdate, NewAlert, StoredAlert};
use crate::ledger::withdrawn::WithdrawnPoint;
use crate::ledger::LedgerError;

/// The observations of a key that arrived out of order: their span, and whether any was bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LateSpan {
    pub from: i64,
    pub until: i64,
    pub bad: bool,
}

impl LateSpan {
    pub fn new(at: i64, bad: bool) -> Self {
        LateSpan {
            from: at,
            until: at,
            bad,
        }
    }

    pub fn add(&mut self, other: LateSpan) {
        self.from = self.from.min(other.from);
        self.until = self.until.max(other.until);
        self.bad |= other.bad;
    }
}

/// One key to re-derive, with what the runner knows of it.
pub struct Rederivation<'a> {
    pub ctx: &'a Context,
    pub rules: &'a Rules,
    pub key: &'a AlertKey,
    /// What arrived out of order.
    pub late: LateSpan,
    /// The key's state in the engine now.
    pub current: Option<&'a KeyState>,
    /// Where the key's notifications go.
    pub channels: &'a [String],
    pub judging_ms: i64,
    /// The series' latest limit and unit (window messages).
    pub limit: (Option<f64>, Option<f64>, String),
    pub now: i64,
}

/// The key's state afterwards, and the alerts as they now stand.
pub struct Rederived {
    pub state: KeyState,
    pub changed: Vec<StoredAlert>,
}

/// What in-order arrival makes of a key: its quiet point, its state after the replay, the alerts it gives, and the
/// stored alerts they replace.
struct Plan {
    quiet: Option<i64>,
    state: KeyState,
    episodes: Vec<Episode>,
    old: Vec<StoredAlert>,
    /// The replay met the stored history before its end: `state` is the engine's, unchanged.
    met: bool,
}

/// Where a key's observations come from.
enum Source<'a> {
    Readings(&'a str),
    Violation(&'a str),
    Completeness(&'a str),
}

impl<'a> Source<'a> {
    fn of(key: &'a AlertKey) -> Option<Source<'a>> {
        match key.kind {
            Kind::Violation => Some(Source::Violation(&key.subject)),
            Kind::Quality => Some(
                observe::completeness_parameter(&key.subject)
                    .map_or(Source::Readings(&key.subject), Source::Completeness),
            ),
            Kind::Exceedance | Kind::Fault | Kind::Calibration => {
                Some(Source::Readings(&key.subject))
            }
            Kind::Silent | Kind::Backlog => None,
        }
    }
}

/// An observation with its time, and the end of what it observed (its lateness counts from there).
struct Timed {
    at: i64,
    ends: i64,
    bad: bool,
    detail: Detail,
}

/// Rows read by the first page when looking back for the quiet point (the good observation is usually just before
/// the late one); each further page is twice as long.
const FIRST_PAGE: i64 = 4;

/// Rows read by the first page when replaying (the replay usually meets the stored history within a few
/// observations after the late ones); each further page is twice as long.
const FIRST_REPLAY_PAGE: i64 = 8;

impl Store {
    /// Re-derive the keys' histories, stored in one transaction (one sync to disk however many keys a backlog
    /// touched). For each key, `None` when nothing can have changed (see [`Store::unchanged`]) and for kinds about
    /// now (silence, backlog), which have no history.
    pub fn rederive(
        &mut self,
        rs: &[Rederivation<'_>],
    ) -> Result<Vec<Option<Rederived>>, LedgerError> {
        // Planning only reads: one read transaction for all of it.
        self.ledger.begin_read()?;
        let plans: Result<Vec<_>, _> = rs.iter().map(|r| self.plan(r)).collect();
        self.ledger.end_read()?;
        let plans = plans?;
        let tx = self.ledger.transaction()?;
        let mut out = Vec::with_capacity(rs.len());
        let mut catch_ups = StagedCatchUps::new(&self.catch_ups);
        for (r, plan) in rs.iter().zip(plans) {
            let Some(plan) = plan else {
                out.push(None);
                continue;
            };
            let (done, late) = store_rederived(&tx, r, plan)?;
            self.extents.remove(&r.key.id());
            // The station's catch-up names what changed; stored with the rows, kept in memory once committed.
            if !late.is_empty() {
                let c = catch_ups.entry(&r.key.station);
                let ids: Vec<i64> = late.iter().map(|a| a.alert_id).collect();
                for a in late {
                    c.note(a, r.channels);
                }
                c.save(&tx, &r.key.station, ids)?;
            }
            out.push(Some(done));
        }
        let changes = catch_ups.into_changes();
        tx.commit()?;
        apply_catch_ups(&mut self.catch_ups, changes);
        Ok(out)
    }

    /// What in-order arrival makes of one key after its last quiet point (read only). The replay ends where it
    /// meets the stored history again (see [`Replay::meets`]): past the late observations, idle at a good one
    /// outside every stored alert with the same recent raises. What follows is left as it is.
    fn plan(&mut self, r: &Rederivation<'_>) -> Result<Option<Plan>, LedgerError> {
        let Some(source) = Source::of(r.key) else {
            return Ok(None);
        };
        if self.unchanged(r)? {
            return Ok(None);
        }
        let key = key_ref(r.key);
        let quiet = self.quiet_point(r, &source, r.late.from)?;
        let raises = match quiet {
            Some(g) => {
                self.ledger
                    .raised_between(key, g.saturating_sub(r.rules.flap_window_ms), g)?
            }
            None => Vec::new(),
        };
        let mut old = self.ledger.key_alerts_after(key, quiet)?;
        let mut stored_raises: Vec<i64> = raises
            .iter()
            .copied()
            .chain(old.iter().map(|a| a.raised))
            .collect();
        stored_raises.sort_unstable();
        let start = KeyState {
            clock: quiet,
            raises,
            ..KeyState::default()
        };
        let mut replay = Replay::new(r.rules, r.key, start, r.now);
        let met = self.replay_until_met(r, &source, quiet, &mut replay, (&old, &stored_raises))?;
        let (state, episodes) = match met {
            // The rest of the history stands, and so does the engine's state but for the raises before `at`.
            Some(at) => {
                old.retain(|a| a.since < at);
                let mut current = r.current.cloned().unwrap_or_default();
                let mut raises = replay.raises_until(at);
                raises.extend(current.raises.iter().filter(|t| **t > at));
                current.raises = raises;
                (current, replay.finish().1)
            }
            None => replay.finish(),
        };
        Ok(Some(Plan {
            quiet,
            state,
            episodes,
            old,
            met: met.is_some(),
        }))
    }

    /// Feed `replay` the key's observations after `quiet`, page by page, until it meets the stored history (whose
    /// alerts after `quiet` and raises are given): the time it met it, or `None` at the end of the series.
    fn replay_until_met(
        &self,
        r: &Rederivation<'_>,
        source: &Source<'_>,
        quiet: Option<i64>,
        replay: &mut Replay<'_>,
        (old, stored_raises): (&[StoredAlert], &[i64]),
    ) -> Result<Option<i64>, LedgerError> {
        let (mut after, mut limit) = (quiet, FIRST_REPLAY_PAGE);
        loop {
            let (page, more) = self.observations(r, source, Span::After { ts: after, limit })?;
            limit = (limit * 2).min(4096);
            for t in page {
                let (at, good) = (t.at, !t.bad);
                replay.feed(Observation {
                    bad: t.bad,
                    at,
                    late: r.now - t.ends > r.rules.late_after_ms,
                    detail: t.detail,
                });
                let meets = good
                    && at > r.late.until
                    && r.current.is_some()
                    && !r.rules.in_maintenance(&r.key.station, at)
                    && old.iter().all(|a| !a.covers(at))
                    && replay.meets(at, stored_raises);
                if meets {
                    return Ok(Some(at));
                }
            }
            match more {
                Some(last) => after = Some(last),
                None => return Ok(None),
            }
        }
    }

    /// Good observations that land outside every alert of the key and outside its pending run change nothing: good
    /// observations only end runs, and there is none to end. The common case of a backlog (good data) stops here.
    fn unchanged(&mut self, r: &Rederivation<'_>) -> Result<bool, LedgerError> {
        if r.late.bad {
            return Ok(false);
        }
        let pending = r.current.is_some_and(|s| {
            s.phase == Phase::Pending && s.bad_since.is_some_and(|b| b <= r.late.until)
        });
        if pending {
            return Ok(false);
        }
        // Known to lie clear of every alert of the key (the common case: a backlog older than them): no query.
        let id = r.key.id();
        let extent = match self.extents.get(&id) {
            Some(e) => *e,
            None => {
                let e = self.ledger.key_extent(key_ref(r.key))?;
                self.extents.insert(id, e);
                e
            }
        };
        if extent.is_none_or(|e| e.clear_of(r.late.from, r.late.until)) {
            return Ok(true);
        }
        Ok(!self
            .ledger
            .alert_within(key_ref(r.key), r.late.from, r.late.until)?)
    }

    /// The key's last quiet point before `until`: its latest good observation outside any of its alerts (the
    /// engine is idle there, whatever came before). `None`: the whole stored history is replayed.
    fn quiet_point(
        &self,
        r: &Rederivation<'_>,
        source: &Source<'_>,
        mut until: i64,
    ) -> Result<Option<i64>, LedgerError> {
        loop {
            let Some(good) = self.last_good_before(r, source, until)? else {
                return Ok(None);
            };
            match self.ledger.open_at(key_ref(r.key), good)? {
                // Good, but inside an alert that had not cleared yet: go back to where that alert began.
                Some(since) if since < until => until = since,
                _ => return Ok(Some(good)),
            }
        }
    }

    fn last_good_before(
        &self,
        r: &Rederivation<'_>,
        source: &Source<'_>,
        until: i64,
    ) -> Result<Option<i64>, LedgerError> {
        let (mut before, mut limit) = (until, FIRST_PAGE);
        loop {
            let (page, oldest) =
                self.observations(r, source, Span::Before { ts: before, limit })?;
            limit = (limit * 2).min(4096);
            let good = page
                .iter()
                .find(|t| !t.bad && !r.rules.in_maintenance(&r.key.station, t.at));
            if let Some(t) = good {
                return Ok(Some(t.at));
            }
            match oldest {
                Some(ts) => before = ts,
                None => return Ok(None),
            }
        }
    }

    /// The key's observations in `span`, and where a full page ended, to read on from.
    fn observations(
        &self,
        r: &Rederivation<'_>,
        source: &Source<'_>,
        span: Span,
    ) -> Result<(Vec<Timed>, Option<i64>), LedgerError> {
        let station = r.key.station.as_str();
        let parameter = match source {
            Source::Readings(p) | Source::Violation(p) | Source::Completeness(p) => *p,
        };
        if let Source::Readings(_) = source {
            let rows = self.ledger.series_readings(station, parameter, span)?;
            let more = match span {
                Span::Before { limit, .. } | Span::After { limit, .. } => {
                    rows.len() as i64 == limit
                }
            };
            let last = rows.last().filter(|_| more).map(|x| x.ts);
            // Looking back for the quiet point needs only whether each one was bad.
            let looking_back = matches!(span, Span::Before { .. });
            let timed = rows
                .iter()
                .filter_map(|row| {
                    let obs = ReadingObs::from(row);
                    let (bad, detail) = if looking_back {
                        (observe::reading_bad(&obs, r.key.kind)?, Detail::default())
                    } else {
                        observe::reading_kind(r.ctx, &obs, r.key.kind)?
                    };
                    Some(Timed {
                        at: row.ts,
                        ends: row.ts,
                        bad,
                        detail,
                    })
                })
                .collect();
            return Ok((timed, last));
        }
        let windows = self
            .ledger
            .series_windows(station, parameter, r.judging_ms)?;
        let n = windows.len();
        let below = r.rules.completeness_below;
        let all = windows.iter().enumerate().filter_map(|(i, w)| {
            let ends = w.window_start + r.judging_ms;
            match source {
                Source::Violation(_) => {
                    observe::violation(r.ctx, &WindowObs::from(w), r.limit.clone())
                }
                // Judged once closed (a later window exists), never the series' first (it may begin mid-window).
                _ if below > 0.0 && i > 0 && i + 1 < n => Some(observe::completeness(
                    r.ctx,
                    w.window_start,
                    w.completeness,
                    below,
                )),
                _ => None,
            }
            .map(|(bad, detail)| Timed {
                at: w.window_start,
                ends,
                bad,
                detail,
            })
        });
        // Windows are few (one an hour): the whole series is read, so one page always suffices.
        let timed = match span {
            Span::Before { ts, .. } => {
                let mut v: Vec<Timed> = all.filter(|t| t.at < ts).collect();
                v.reverse();
                v
            }
            Span::After { ts, .. } => all.filter(|t| ts.is_none_or(|a| t.at > a)).collect(),
        };
        Ok((timed, None))
    }
}

/// Store what in-order arrival makes of the key after its quiet point in `tx`; the changes for the late-data
/// summary.
fn store_rederived(
    tx: &AlertTx<'_>,
    r: &Rederivation<'_>,
    plan: Plan,
) -> Result<(Rederived, Vec<LateAlert>), LedgerError> {
    let Plan {
        quiet,
        mut state,
        episodes,
        old,
        met,
    } = plan;
    let (episodes, old) = (&episodes[..], &old[..]);
    let stored: Vec<Stored> = old
        .iter()
        .map(|a| Stored {
            id: a.id,
            since: a.since,
            cleared: a.cleared,
        })
        .collect();
    let matching = rederive::reconcile(&stored, episodes);
    let key = key_ref(r.key);
    let mut touched = Vec::new();
    let mut late = Vec::new();
    let mut open_id = None;
    // The `alert` points the key's rows hold afterwards: (state tag, time).
    let mut held: HashSet<(&str, i64)> = HashSet::new();
    for (e, continues) in episodes.iter().zip(&matching.continues) {
        held.insert(("raised", e.raised));
        held.extend(e.cleared.map(|c| ("cleared", c)));
        let peak = serde_json::to_string(&e.peak).unwrap_or_default();
        let id = match continues.and_then(|id| old.iter().find(|a| a.id == id)) {
            Some(a) => {
                held.extend(a.acked_at.map(|t| ("acknowledged", t)));
                let detail = detail_json(&e.detail, raised_late(a));
                let state_name = match (e.cleared, a.state.as_str()) {
                    (Some(_), _) => "cleared",
                    (None, "acknowledged") => "acknowledged",
                    (None, _) => "raised",
                };
                let unchanged = (a.since, a.raised, a.updated, a.cleared)
                    == (e.since, e.raised, e.last_bad, e.cleared)
                    && (a.detail.as_str(), a.peak.as_str(), a.state.as_str())
                        == (detail.as_str(), peak.as_str(), state_name);
                if !unchanged {
                    tx.rewrite_alert(
                        a.id,
                        &Rewrite {
                            state: state_name,
                            since: e.since,
                            raised: e.raised,
                            last_bad: e.last_bad,
                            cleared: e.cleared,
                            detail: &detail,
                            peak: &peak,
                        },
                    )?;
                    touched.push(a.id);
                    late.push(late_alert(r.key, a.id, e, false));
                }
                a.id
            }
            None => {
                let detail = detail_json(&e.detail, true);
                let id = tx.insert_alert(&NewAlert {
                    station: key.station,
                    subject: key.subject,
                    kind: key.kind,
                    severity: severity_name(r.key.kind.severity()),
                    since: e.since,
                    at: e.raised,
                    last_bad: e.last_bad,
                    detail: &detail,
                    peak: &peak,
                    notifications: 1,
                })?;
                if let Some(at) = e.cleared {
                    let cleared = AlertUpdate::Cleared {
                        at,
                        last_bad: e.last_bad,
                        detail: &detail,
                        peak: &peak,
                        notifications: 0,
                    };
                    tx.update_alert(id, &cleared)?;
                }
                touched.push(id);
                late.push(late_alert(r.key, id, e, false));
                id
            }
        };
        if e.cleared.is_none() {
            open_id = Some(id);
        }
    }
    for id in &matching.withdrawn {
        tx.withdraw_alert(*id)?;
        touched.push(*id);
        if let Some(a) = old.iter().find(|a| a.id == *id) {
            late.push(withdrawn_alert(r.key, a));
        }
    }
    // Points written for the old rows that no row holds now: the forwarders withdraw them.
    for (state, ts) in old.iter().flat_map(alert_points) {
        if !held.contains(&(state, ts)) {
            let point = WithdrawnPoint {
                measurement: "alert",
                station: key.station.to_string(),
                parameter: key.subject.to_string(),
                series: key.kind.to_string(),
                state: state.to_string(),
                ts,
            };
            tx.withdraw_point(&point, r.now)?;
        }
    }
    if !touched.is_empty() {
        let old_json = json!(old.iter().map(alert_span).collect::<Vec<_>>()).to_string();
        let new_json = json!(episodes.iter().map(episode_span).collect::<Vec<_>>()).to_string();
        let reason = format!(
            "observations from {} arrived after newer ones",
            observe::local(r.ctx, r.late.from)
        );
        tx.record_alert_revision(&AlertRevision {
            key,
            span_after: quiet,
            old_alerts: &old_json,
            new_alerts: &new_json,
            reason: &reason,
            changed: r.now,
        })?;
    }
    if !met {
        carry_over(&mut state, r.current, open_id, r.now);
    }
    tx.save_key_state(&key_state_row(r.key, &state), r.now)?;
    let mut changed = Vec::new();
    for id in &touched {
        changed.extend(tx.alert(*id)?);
    }
    Ok((Rederived { state, changed }, late))
}

/// The re-derived state keeps what the engine knew of its open alert: the id, the acknowledgement, and when
/// recipients were last told (so a re-derivation re-notifies nobody).
fn carry_over(state: &mut KeyState, current: Option<&KeyState>, open_id: Option<i64>, now: i64) {
    let open = matches!(state.phase, Phase::Raised | Phase::Acknowledged);
    state.alert_id = open_id.filter(|_| open);
    if let Some(cur) =
        current.filter(|c| open && c.alert_id.is_some() && c.alert_id == state.alert_id)
    {
        if cur.phase == Phase::Acknowledged {
            state.phase = Phase::Acknowledged;
        }
        state.last_notified = cur.last_notified;
        state.notified_at = cur.notified_at.max(state.notified_at);
        state.notified_severity = cur.notified_severity.max(state.notified_severity);
    }
    state.published = Some(now);
    state.unpublished = false;
}

fn key_ref(key: &AlertKey) -> KeyRef<'_> {
    KeyRef {
        station: &key.station,
        subject: &key.subject,
        kind: key.kind.as_str(),
    }
}

fn raised_late(a: &StoredAlert) -> bool {
    serde_json::from_str::<serde_json::Value>(&a.detail)
        .ok()
        .and_then(|v| v["raised_late"].as_bool())
        .unwrap_or(false)
}

fn late_alert(key: &AlertKey, id: i64, e: &Episode, withdrawn: bool) -> LateAlert {
    LateAlert {
        alert_id: id,
        kind: key.kind.as_str().into(),
        parameter: key.subject.clone(),
        since: e.since,
        raised: Some(e.raised),
        cleared: e.cleared,
        peak_value: e.peak.value,
        unit: e.peak.unit.clone(),
        peak_multiple: e.peak.ratio,
        peak_band: e.peak.band.clone(),
        withdrawn,
    }
}

fn withdrawn_alert(key: &AlertKey, a: &StoredAlert) -> LateAlert {
    let peak: Detail = serde_json::from_str(&a.peak).unwrap_or_default();
    let e = Episode {
        since: a.since,
        raised: a.raised,
        last_bad: a.updated,
        cleared: a.cleared,
        detail: Detail::default(),
        peak,
    };
    late_alert(key, a.id, &e, true)
}

/// The `alert` points a stored alert holds: (state tag, time).
fn alert_points(a: &StoredAlert) -> Vec<(&'static str, i64)> {
    let mut out = vec![("raised", a.raised)];
    out.extend(a.acked_at.map(|t| ("acknowledged", t)));
    out.extend(a.cleared.map(|t| ("cleared", t)));
    out
}

fn alert_span(a: &StoredAlert) -> serde_json::Value {
    json!({ "id": a.id, "state": a.state, "since": a.since, "raised": a.raised, "last_bad": a.updated,
        "cleared": a.cleared })
}

fn episode_span(e: &Episode) -> serde_json::Value {
    json!({ "since": e.since, "raised": e.raised, "last_bad": e.last_bad, "cleared": e.cleared,
        "peak_multiple": e.peak.ratio, "peak_band": e.peak.band })
}
