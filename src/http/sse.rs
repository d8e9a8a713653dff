//! `GET /api/stream`: server-sent events — `readings` (each committed batch), `windows` (aggregates), `events`
//! (compliance events), `alerts` (alerts as they change) and `status` (every plant's state, every 5 s). A slow client that falls behind gets a
//! `lagged` event and should reload its view.
//!
//! What waits for a slow reader is bounded: the hub, when it is more than [`HUB_MAX_BEHIND`] pipeline events behind,
//! drops what is queued without serialising it and sends `lagged` (it never holds the ledger writer back for long:
//! the writer waits while its followers hold too many readings); a client more than [`CLIENT_MAX_BEHIND`] bytes
//! behind the hub skips to the newest message and gets `lagged`, so the messages it has not read are freed.
//!
//! A caller with a station scope gets only its stations: each list message keeps where every station's item lies in
//! the serialised text, so a scoped client's copy is cut from it (no second serialisation) and a message with none
//! of its items is not sent; `status` lists only its stations. A caller who may see every station gets the text as
//! serialised.

use std::borrow::Cow;
use std::convert::Infallible;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::auth::{self, RequireRole, Viewer};
use super::{ApiError, AppState};
use crate::config::scope::StationScope;
use crate::model::Timestamp;
use crate::pipeline::LiveEvent;

/// One prepared SSE message, serialised once for every client.
pub type Message = Arc<Prepared>;

/// An SSE message: its event name, its JSON data, and for a list of station items, where each lies in the data.
#[derive(Debug)]
pub struct Prepared {
    pub name: &'static str,
    /// What a caller who may see every station gets.
    pub data: String,
    /// For a list: each item's station (empty for none, as a daemon-wide alert) and its bytes in `data`.
    items: Option<Vec<(String, Range<usize>)>>,
    /// Bytes of data the hub had sent once this message was sent, and what it has sent by now.
    end: u64,
    sent: Arc<AtomicU64>,
}

/// Pipeline events the hub may have queued before it drops them unserialised and tells clients they lagged.
pub const HUB_MAX_BEHIND: usize = 256;
/// Bytes of messages a client may have left unread before it skips them and is told it lagged.
pub const CLIENT_MAX_BEHIND: u64 = 16 << 20;

impl Prepared {
    /// A message that belongs to no station (`lagged`): every client gets it.
    fn plain(name: &'static str, data: String) -> Self {
        Self {
            name,
            data,
            items: None,
            end: 0,
            sent: Arc::default(),
        }
    }

    /// A JSON array of `(station, item)`s.
    fn list(
        name: &'static str,
        items: impl IntoIterator<Item = (String, serde_json::Value)>,
    ) -> Self {
        let mut data = String::from("[");
        let mut spans = Vec::new();
        for (station, item) in items {
            if !spans.is_empty() {
                data.push(',');
            }
            let start = data.len();
            data.push_str(&item.to_string());
            spans.push((station, start..data.len()));
        }
        data.push(']');
        Self {
            name,
            data,
            items: Some(spans),
            end: 0,
            sent: Arc::default(),
        }
    }

    /// Bytes the hub has sent after this message.
    fn behind(&self) -> u64 {
        self.sent.load(Relaxed).saturating_sub(self.end)
    }

    /// The data a client of `scope` gets: all of it for every station; otherwise its stations' items, or `None`
    /// when the list holds none of them.
    pub fn data_for(&self, scope: &StationScope) -> Option<Cow<'_, str>> {
        let items = match &self.items {
            Some(items) if !scope.is_all() => items,
            _ => return Some(Cow::Borrowed(&self.data)),
        };
        let mut kept = items
            .iter()
            .filter(|(station, _)| !station.is_empty() && scope.allows(station))
            .peekable();
        kept.peek()?;
        let mut out = String::from("[");
        for (i, (_, span)) in kept.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&self.data[span.clone()]);
        }
        out.push(']');
        Some(Cow::Owned(out))
    }
}

/// Turns pipeline events into SSE messages once, for all clients (fan-out costs a copy, not a serialisation).
pub fn start_hub(
    events: &broadcast::Sender<LiveEvent>,
    capacity: usize,
    shutdown: CancellationToken,
) -> broadcast::Sender<Message> {
    let (tx, _) = broadcast::channel(capacity);
    let mut rx = events.subscribe();
    let out = tx.clone();
    let sent = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let mut msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = rx.recv() => match r {
                    // No dashboard is open: nothing to serialise (it was most of the hub's cost under load).
                    Ok(_) if out.receiver_count() == 0 => continue,
                    Ok(_) if rx.len() > HUB_MAX_BEHIND => lagged(1 + skip_queued(&mut rx)),
                    Ok(ev) => to_message(&ev),
                    Err(RecvError::Lagged(n)) => lagged(n),
                    Err(RecvError::Closed) => return,
                },
            };
            msg.end = sent.fetch_add(msg.data.len() as u64, Relaxed) + msg.data.len() as u64;
            msg.sent = sent.clone();
            let _ = out.send(Arc::new(msg));
        }
    });
    tx
}

fn lagged(missed: u64) -> Prepared {
    Prepared::plain("lagged", missed.to_string())
}

/// Take every event queued for `rx` without looking at it; returns how many there were.
fn skip_queued<T: Clone>(rx: &mut broadcast::Receiver<T>) -> u64 {
    use broadcast::error::TryRecvError;
    let mut n = 0;
    loop {
        match rx.try_recv() {
            Ok(_) => n += 1,
            Err(TryRecvError::Lagged(k)) => n += k,
            Err(TryRecvError::Empty | TryRecvError::Closed) => return n,
        }
    }
}

/// A client more than [`CLIENT_MAX_BEHIND`] bytes behind after taking `m` starts again at the newest message (the
/// ones it skips are freed once the other clients have read them); returns how many it skipped.
fn skip_if_far_behind(
    rx: &mut broadcast::Receiver<Message>,
    m: &Prepared,
    max: u64,
) -> Option<u64> {
    if m.behind() <= max {
        return None;
    }
    let skipped = rx.len() as u64;
    *rx = rx.resubscribe();
    Some(skipped)
}

/// The stream for a viewer, of the stations in its scope; `parts` keeps the caller's token (header or
/// `?access_token=`) to check it again.
pub async fn stream(
    State(s): State<AppState>,
    RequireRole { caller, .. }: RequireRole<Viewer>,
    parts: Parts,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Held by the stream: the place is given back when the client goes.
    let Ok(place) = s.streams.clone().try_acquire_owned() else {
        s.listener.streams_refused.fetch_add(1, Relaxed);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many open streams (http.max_streams); try again later",
        ));
    };
    let rx = s.sse.subscribe();
    let mut every = tokio::time::interval(Duration::from_secs(5));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = futures_util::stream::unfold(
        (rx, every, s, parts, place, caller),
        |(mut rx, mut every, s, parts, place, caller)| async move {
            loop {
                let event = tokio::select! {
                    _ = s.shutdown.cancelled() => return None,
                    r = rx.recv() => match r {
                        Ok(m) => match skip_if_far_behind(&mut rx, &m, CLIENT_MAX_BEHIND) {
                            Some(n) => Some(Event::default().event("lagged").data(n.to_string())),
                            None => m.data_for(&caller.scope).map(|d| Event::default().event(m.name).data(d)),
                        },
                        Err(RecvError::Lagged(n)) => Some(Event::default().event("lagged").data(n.to_string())),
                        Err(RecvError::Closed) => return None,
                    },
                    _ = every.tick() => {
                        // A token revoked by a reload, or a session ended (logout, disabled account), ends its
                        // streams here, within one tick.
                        if !auth::still(&s, &parts, &caller).await {
                            return None;
                        }
                        s.live.refresh_states(Timestamp::now());
                        let states: Vec<_> = s.live.stations().into_iter().filter(|st| caller.scope.allows(&st.id))
                            .map(|st| json!({"id": st.id, "state": st.state, "last_reading": st.last_reading})).collect();
                        Some(Event::default().event("status").data(json!(states).to_string()))
                    }
                };
                if let Some(e) = event {
                    return Some((Ok(e), (rx, every, s, parts, place, caller)));
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn to_message(ev: &LiveEvent) -> Prepared {
    match ev {
        LiveEvent::Readings(batch) => Prepared::list(
            "readings",
            batch.iter().map(|c| {
                let r = &c.evaluated.reading;
                let a = &c.evaluated.assessment;
                let (low, high) = crate::compliance::LimitBound::bounds(a.limit);
                (
                    r.station.to_string(),
                    json!({ "seq": c.seq, "station": r.station.as_str(), "parameter": r.parameter.as_str(), "ts": r.ts.millis(),
                        "value": r.value, "unit": r.unit.as_str(), "status": r.status.as_str(), "band": a.band.as_str(),
                        "ratio": a.ratio, "limit_low": low, "limit_high": high }),
                )
            }),
        ),
        LiveEvent::Windows(updates) => Prepared::list(
            "windows",
            updates.iter().map(|u| {
                (
                    u.station.to_string(),
                    json!({ "station": u.station, "parameter": u.parameter, "window_ms": u.window_ms,
                        "window_start": u.window_start.millis(), "mean": u.aggregate.mean, "band": u.aggregate.band.as_str(),
                        "completeness": u.aggregate.completeness }),
                )
            }),
        ),
        LiveEvent::Events(changes) => Prepared::list("events", event_items(changes)),
        LiveEvent::FlagsRevised(revised) => Prepared::list(
            "flags",
            revised.iter().map(|f| {
                (
                    f.station.to_string(),
                    json!({ "station": f.station, "parameter": f.parameter, "ts": f.ts.millis(),
                        "old": f.old.names(), "new": f.new.names() }),
                )
            }),
        ),
        LiveEvent::Alerts(alerts) => Prepared::list(
            "alerts",
            alerts
                .iter()
                .map(|a| (a.station.clone(), crate::alert::store::alert_json(a))),
        ),
    }
}

/// The compliance event changes as `(station, item)`s.
fn event_items(changes: &[crate::compliance::EventChange]) -> Vec<(String, serde_json::Value)> {
    use crate::compliance::EventChange;
    let item = |kind: &str,
                k: &crate::compliance::EventKey,
                e: &crate::compliance::OpenEvent,
                end: Option<i64>| {
        (
            k.station.to_string(),
            json!({ "change": kind, "station": k.station.as_str(), "parameter": k.parameter.as_str(),
                "scope": k.scope.as_string(), "start": e.start.millis(), "end": end, "last": e.last.millis(),
                "band": e.band.as_str(), "peak_band": e.peak_band.as_str(), "peak_ratio": e.peak_ratio }),
        )
    };
    let mut items = Vec::new();
    for c in changes.iter() {
        let k = c.key();
        match c {
            EventChange::Opened { event, .. } => items.push(item("opened", k, event, None)),
            EventChange::Escalated { event, .. } => items.push(item("escalated", k, event, None)),
            EventChange::PeakUpdated { event, .. } => items.push(item("peak", k, event, None)),
            EventChange::Extended { event, .. } => items.push(item("extended", k, event, None)),
            EventChange::Closed { event, end, .. } => {
                items.push(item("closed", k, event, Some(end.millis())))
            }
            // A re-derived span: what it holds now ("rederived"), after what it held ("replaced").
            EventChange::Rederived {
                replaced, events, ..
            } => {
                for (kind, list) in [("replaced", replaced), ("rederived", events)] {
                    items.extend(
                        list.iter()
                            .map(|e| item(kind, k, &e.state, e.end.map(|t| t.millis()))),
                    );
                }
            }
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{skip_if_far_behind, start_hub, Prepared, HUB_MAX_BEHIND};
    use crate::config::scope::StationScope;
    use crate::pipeline::LiveEvent;
    use serde_json::json;
    use tokio::sync::broadcast;
    use tokio_util::sync::CancellationToken;

    /// The next message a client receives, within 10 s.
    async fn next<T: Clone>(rx: &mut broadcast::Receiver<T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a message within 10 s")
            .expect("the hub is running")
    }

    /// A hub that finds more pipeline events queued than it may hold drops them unserialised and tells every
    /// client it lagged (the dashboard reloads its view); what comes after is delivered again.
    #[tokio::test]
    async fn a_hub_far_behind_drops_what_is_queued_and_tells_clients_to_reload() {
        let (events, _) = broadcast::channel(4096);
        let shutdown = CancellationToken::new();
        let out = start_hub(&events, 4096, shutdown.clone());
        let mut client = out.subscribe();
        // The hub task has not run yet (one thread): all of these wait in its queue.
        let queued = HUB_MAX_BEHIND + 44;
        for _ in 0..queued {
            events
                .send(LiveEvent::Events(Arc::new(Vec::new())))
                .unwrap();
        }
        let m = next(&mut client).await;
        assert_eq!(
            (m.name, m.data.as_str()),
            ("lagged", queued.to_string().as_str())
        );
        events
            .send(LiveEvent::Alerts(Arc::new(Vec::new())))
            .unwrap();
        let m = next(&mut client).await;
        assert_eq!((m.name, m.data.as_str()), ("alerts", "[]"));
        shutdown.cancel();
    }

    /// A client too far behind the hub skips to the newest message (freeing what it had not read) and is told
    /// how many it missed; a client within the bound reads on.
    #[tokio::test]
    async fn a_client_far_behind_skips_to_the_newest_and_is_told_it_lagged() {
        let (events, _) = broadcast::channel(4096);
        let shutdown = CancellationToken::new();
        let out = start_hub(&events, 4096, shutdown.clone());
        let mut slow = out.subscribe();
        let mut other = out.subscribe();
        for _ in 0..20 {
            events
                .send(LiveEvent::Alerts(Arc::new(Vec::new())))
                .unwrap();
        }
        // Each message is "[]" (2 bytes): the first one taken is 38 bytes behind the hub.
        for _ in 0..20 {
            let m = next(&mut other).await;
            assert_eq!(skip_if_far_behind(&mut other, &m, 40), None);
        }
        let m = next(&mut slow).await;
        assert_eq!(skip_if_far_behind(&mut slow, &m, 10), Some(19));
        assert_eq!(
            slow.len(),
            0,
            "the skipped messages are no longer held for it"
        );
        events
            .send(LiveEvent::Alerts(Arc::new(Vec::new())))
            .unwrap();
        let m = next(&mut slow).await;
        assert_eq!(skip_if_far_behind(&mut slow, &m, 10), None);
        shutdown.cancel();
    }

    #[test]
    fn a_scoped_client_gets_its_stations_items_cut_from_the_one_text() {
        let m = Prepared::list(
            "readings",
            [
                ("A1".to_string(), json!({"station": "A1", "v": 1})),
                ("B1".to_string(), json!({"station": "B1", "v": 2})),
                ("".to_string(), json!({"station": "", "v": 3})),
                ("A2".to_string(), json!({"station": "A2", "v": 4})),
            ],
        );
        let all: serde_json::Value = serde_json::from_str(&m.data).unwrap();
        assert_eq!(all.as_array().unwrap().len(), 4);
        assert_eq!(m.data_for(&StationScope::all()).unwrap(), m.data.as_str());
        let a = m.data_for(&StationScope::parse(&["A*"]).unwrap()).unwrap();
        let a: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(
            a,
            json!([{"station": "A1", "v": 1}, {"station": "A2", "v": 4}])
        );
        assert!(m.data_for(&StationScope::parse(&["C*"]).unwrap()).is_none());
        let lagged = Prepared::plain("lagged", "7".into());
        assert_eq!(
            lagged
                .data_for(&StationScope::parse(&["C*"]).unwrap())
                .unwrap(),
            "7"
        );
    }
}
