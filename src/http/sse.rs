//! `GET /api/stream`: server-sent events — `readings` (each committed batch), `windows` (aggregates), `events`
//! (compliance events), `alerts` (alerts as they change) and `status` (every plant's state, every 5 s). A slow client that falls behind gets a
//! `lagged` event and should reload its view.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering::Relaxed;

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
use crate::model::Timestamp;
use crate::pipeline::LiveEvent;

/// One prepared SSE message: event name and JSON data, serialised once for every client.
pub type Message = Arc<(&'static str, String)>;

/// Turns pipeline events into SSE messages once, for all clients (fan-out costs a copy, not a serialisation).
pub fn start_hub(
    events: &broadcast::Sender<LiveEvent>,
    capacity: usize,
    shutdown: CancellationToken,
) -> broadcast::Sender<Message> {
    let (tx, _) = broadcast::channel(capacity);
    let mut rx = events.subscribe();
    let out = tx.clone();
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = rx.recv() => match r {
                    Ok(ev) => to_message(&ev),
                    Err(RecvError::Lagged(n)) => Arc::new(("lagged", n.to_string())),
                    Err(RecvError::Closed) => return,
                },
            };
            let _ = out.send(msg);
        }
    });
    tx
}

/// The stream for a viewer; `parts` keeps the caller's token (header or `?access_token=`) to check it again.
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
                        Ok(m) => Some(Event::default().event(m.0).data(&m.1)),
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
                        let states: Vec<_> = s.live.stations().into_iter().map(|st| json!({"id": st.id, "state": st.state, "last_reading": st.last_reading})).collect();
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

fn to_message(ev: &LiveEvent) -> Message {
    let (name, data) = match ev {
        LiveEvent::Readings(batch) => {
            let items: Vec<_> = batch
                .iter()
                .map(|c| {
                    let r = &c.evaluated.reading;
                    let a = &c.evaluated.assessment;
                    let (low, high) = crate::compliance::LimitBound::bounds(a.limit);
                    json!({ "seq": c.seq, "station": r.station.as_str(), "parameter": r.parameter.as_str(), "ts": r.ts.millis(),
                        "value": r.value, "unit": r.unit.as_str(), "status": r.status.as_str(), "band": a.band.as_str(),
                        "ratio": a.ratio, "limit_low": low, "limit_high": high })
                })
                .collect();
            ("readings", json!(items))
        }
        LiveEvent::Windows(updates) => {
            let items: Vec<_> = updates
                .iter()
                .map(|u| json!({ "station": u.station, "parameter": u.parameter, "window_ms": u.window_ms,
                    "window_start": u.window_start.millis(), "mean": u.aggregate.mean, "band": u.aggregate.band.as_str(),
                    "completeness": u.aggregate.completeness }))
                .collect();
            ("windows", json!(items))
        }
        LiveEvent::Events(changes) => {
            use crate::compliance::EventChange;
            let item = |kind: &str,
                        k: &crate::compliance::EventKey,
                        e: &crate::compliance::OpenEvent,
                        end: Option<i64>| {
                json!({ "change": kind, "station": k.station.as_str(), "parameter": k.parameter.as_str(),
                    "scope": k.scope.as_string(), "start": e.start.millis(), "end": end, "last": e.last.millis(),
                    "band": e.band.as_str(), "peak_band": e.peak_band.as_str(), "peak_ratio": e.peak_ratio })
            };
            let mut items = Vec::new();
            for c in changes.iter() {
                let k = c.key();
                match c {
                    EventChange::Opened { event, .. } => items.push(item("opened", k, event, None)),
                    EventChange::Escalated { event, .. } => {
                        items.push(item("escalated", k, event, None))
                    }
                    EventChange::PeakUpdated { event, .. } => {
                        items.push(item("peak", k, event, None))
                    }
                    EventChange::Extended { event, .. } => {
                        items.push(item("extended", k, event, None))
                    }
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
            ("events", json!(items))
        }
        LiveEvent::FlagsRevised(revised) => {
            let items: Vec<_> = revised
                .iter()
                .map(|f| {
                    json!({ "station": f.station, "parameter": f.parameter, "ts": f.ts.millis(),
                    "old": f.old.names(), "new": f.new.names() })
                })
                .collect();
            ("flags", json!(items))
        }
        LiveEvent::Alerts(alerts) => (
            "alerts",
            serde_json::Value::Array(alerts.iter().map(crate::alert::store::alert_json).collect()),
        ),
    };
    Arc::new((name, data.to_string()))
}
