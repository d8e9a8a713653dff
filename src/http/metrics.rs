//! `GET /metrics` in the Prometheus text format: the process's one [`Registry`], into which the pipeline and the
//! alerts register their counters at start; [`register_views`] adds what the HTTP layer reads at scrape time (the
//! connections' health, each plant's state, the build). Label values come from small fixed sets (sources, states)
//! or the configured stations and connections.

use axum::extract::State;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::auth;
use super::server::ListenerStats;
use super::{ApiError, AppState};
use crate::config::http::Role;
use crate::health::Health;
use crate::live::LiveState;
use crate::metrics::{counter, gauge, Registry, CONTENT_TYPE};
use crate::model::Timestamp;

/// The samples; with `http.metrics_public = false` only for a caller who may see every station (the samples name
/// every station).
pub async fn metrics(State(s): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    if !s.config().http.metrics_public {
        let caller = auth::check(&s, &parts, Role::Viewer).await?;
        if !caller.scope.is_all() {
            return Err(ApiError::forbidden(format!(
                "/metrics names every station; {} may see only {}",
                caller.name, caller.scope
            )));
        }
    }
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], s.registry.encode()).into_response())
}

/// Register the connections, the plants' states and the build info.
pub fn register_views(registry: &Registry, health: &Health, live: &LiveState) {
    registry.register(Connections(health.clone()));
    registry.register(Plants(live.clone()));
    registry.register(BuildInfo);
}

/// Register the listener's counts (open and refused connections, refused streams).
pub fn register_listener(registry: &Registry, stats: &Arc<ListenerStats>) {
    registry.register(Listener(stats.clone()));
}

#[derive(Debug)]
struct Listener(Arc<ListenerStats>);

impl Collector for Listener {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        gauge(
            &mut e,
            "quantrac_http_connections_open",
            "HTTP connections open now.",
            [(crate::metrics::NO_LABELS, s.open.load(Relaxed))],
        )?;
        counter(
            &mut e,
            "quantrac_http_connections_refused",
            "HTTP connections answered 503 at a connection limit, by limit.",
            [
                ("total", &s.refused_total),
                ("per_client", &s.refused_per_client),
            ]
            .map(|(limit, c)| ([("limit", limit)], c.load(Relaxed))),
        )?;
        counter(
            &mut e,
            "quantrac_http_streams_refused",
            "/api/stream requests answered 503 at http.max_streams.",
            [(crate::metrics::NO_LABELS, s.streams_refused.load(Relaxed))],
        )
    }
}

/// Source and forwarder connections (`Health`), one sample per connection.
#[derive(Debug)]
struct Connections(Health);

impl Collector for Connections {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let health = self.0.snapshot();
        let by_connection = |k: &String| [("connection", k.clone())];
        gauge(
            &mut e,
            "quantrac_connection_up",
            "1 when a source or forwarder connection works.",
            health.iter().map(|(k, c)| {
                (
                    [("connection", k.clone()), ("kind", c.kind.as_str().into())],
                    c.up as u64,
                )
            }),
        )?;
        gauge(
            &mut e,
            "quantrac_connection_failures_total",
            "Consecutive failures of a connection.",
            health
                .iter()
                .map(|(k, c)| (by_connection(k), c.consecutive_failures)),
        )?;
        counter(
            &mut e,
            "quantrac_connection_reconnects",
            "Reconnects of a connection.",
            health.iter().map(|(k, c)| (by_connection(k), c.reconnects)),
        )?;
        let backlogs = || health.iter().filter_map(|(k, c)| c.backlog.map(|b| (k, b)));
        gauge(
            &mut e,
            "quantrac_forwarder_backlog_rows",
            "Readings a forwarder has not sent yet.",
            backlogs().map(|(k, b)| (by_connection(k), b.rows_behind)),
        )?;
        gauge(
            &mut e,
            "quantrac_forwarder_oldest_unsent_seconds",
            "Age of the oldest reading a forwarder has not sent.",
            backlogs().map(|(k, b)| {
                (
                    by_connection(k),
                    b.oldest_unsent_ms.unwrap_or(0) as f64 / 1e3,
                )
            }),
        )
    }
}

/// Every plant's state, refreshed at each scrape.
struct Plants(LiveState);

impl std::fmt::Debug for Plants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plants")
    }
}

impl Collector for Plants {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        self.0.refresh_states(Timestamp::now());
        let samples = self.0.stations().into_iter().map(|st| {
            let state = serde_json::to_value(st.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            ([("station", st.id), ("state", state)], 1u64)
        });
        gauge(
            &mut e,
            "quantrac_plant_state",
            "1 for the state each plant is in.",
            samples,
        )
    }
}

/// The running version.
#[derive(Debug)]
struct BuildInfo;

impl Collector for BuildInfo {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        gauge(
            &mut e,
            "quantrac_build_info",
            "Version of the running quantrac.",
            [([("version", env!("CARGO_PKG_VERSION"))], 1u64)],
        )
    }
}
