//! The one HTTP listener: JSON API, SSE stream, Prometheus metrics, health checks and the dashboard (assets
//! embedded in the binary, no CDN). Reads the ledger through its own read-only connections; never writes readings.

mod alerts;
mod api;
pub mod auth;
mod dashboard;
mod error;
mod export;
mod history;
mod metrics;
mod report;
mod scope;
pub mod server;
mod session;
pub mod sse;
pub mod tls;
mod users;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, Semaphore};
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::ApiError;

use crate::config::http::Http;
use crate::config::Config;
use crate::health::Health;
use crate::live::LiveState;
use crate::metrics::Registry;
use crate::pipeline::LiveEvent;

/// The running config, replaced by a reload (stations, tokens); the listening socket needs a restart.
pub type SharedConfig = Arc<std::sync::RwLock<Arc<Config>>>;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    config: SharedConfig,
    pub live: LiveState,
    pub health: Health,
    /// What `/metrics` encodes.
    pub registry: Registry,
    /// Ledger reads and side-table writes (notes, audit), on the blocking pool.
    pub ledger: crate::ledger::LedgerHandle,
    pub events: broadcast::Sender<LiveEvent>,
    /// Set once every source has been started (for `/readyz`).
    pub sources_started: Arc<AtomicBool>,
    /// Ends SSE streams at shutdown (graceful shutdown waits for open connections).
    pub shutdown: CancellationToken,
    /// Prepared SSE messages (see `sse::start_hub`).
    pub sse: broadcast::Sender<sse::Message>,
    /// The alert engine, for acknowledgements (`None` when `alert.enabled = false`).
    pub alerts: Option<crate::alert::AlertHandle>,
    /// One permit per open `/api/stream` (`http.max_streams`, fixed at start like the listening socket).
    pub streams: Arc<Semaphore>,
    /// What the listener counts (open and refused connections, refused streams).
    pub listener: Arc<server::ListenerStats>,
    /// The pipeline's counters, for the ledger writer's last outcome (`/readyz`); `None` until given.
    pub writer: Option<Arc<crate::metrics::Metrics>>,
    /// Sign-in bounds: refusals per client address, one password check at a time.
    pub sign_in: Arc<crate::accounts::throttle::SignInGate>,
}

impl AppState {
    /// The config as of the last reload.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Where a reload puts the new config.
    pub fn config_handle(&self) -> SharedConfig {
        self.config.clone()
    }

    /// State for the HTTP layer; starts the SSE hub that serialises each pipeline event once and registers the
    /// connections, plant states and build info into `registry` (the components registered their counters).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Arc<Config>,
        live: LiveState,
        health: Health,
        registry: Registry,
        ledger: PathBuf,
        events: broadcast::Sender<LiveEvent>,
        sources_started: Arc<AtomicBool>,
        shutdown: CancellationToken,
    ) -> Self {
        let sse = sse::start_hub(
            &events,
            config.pipeline.broadcast_capacity,
            shutdown.clone(),
        );
        let listener = Arc::new(server::ListenerStats::default());
        metrics::register_views(&registry, &health, &live);
        metrics::register_listener(&registry, &listener);
        let streams = Arc::new(Semaphore::new(config.http.limits.max_streams));
        Self {
            config: Arc::new(std::sync::RwLock::new(config)),
            live,
            health,
            registry,
            ledger: crate::ledger::LedgerHandle::new(ledger),
            events,
            sources_started,
            shutdown,
            sse,
            alerts: None,
            streams,
            listener,
            writer: None,
            sign_in: Arc::default(),
        }
    }

    /// Let `/readyz` report the ledger writer's last commit.
    pub fn with_writer(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.writer = Some(metrics);
        self
    }

    /// Let `POST /api/alerts/{id}/ack` reach the alert engine.
    pub fn with_alerts(mut self, alerts: Option<crate::alert::AlertHandle>) -> Self {
        self.alerts = alerts;
        self
    }
}

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/stations", get(api::stations))
        .route("/api/readings", get(api::readings))
        .route("/api/aggregates", get(api::aggregates))
        .route("/api/events", get(api::events))
        .route("/api/alerts", get(alerts::alerts))
        .route("/api/alerts/{id}/history", get(alerts::history))
        .route("/api/alerts/{id}/ack", post(alerts::ack))
        .route("/api/quarantine", get(api::quarantine))
        .route("/api/export", get(export::export))
        .route("/api/history", get(history::history))
        .route("/api/history/download", get(history::download))
        .route("/report", get(report::report))
        .route("/api/audit", get(api::audit))
        .route("/api/stations/{id}/note", post(api::station_note))
        .route("/api/notes", get(api::notes))
        .route("/api/stream", get(sse::stream))
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/session", get(session::whoami))
        .route("/api/users", get(users::list).post(users::add))
        .route("/api/users/{name}", post(users::change))
        // No endpoint takes more than a short JSON body.
        .layer(DefaultBodyLimit::max(64 * 1024));
    with_security_headers(routes).with_state(state)
}

/// The dashboard loads only its own script, style and API (no inline code, no CDN): a policy that allows nothing
/// else, no framing (clickjacking), no content sniffing, no referrer (machines' URLs may carry `?access_token=`).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The policy with images also allowed from `origin` (the map's tile server, checked by the config to hold no
/// character that could end a directive).
fn policy_with_images_from(origin: &str) -> String {
    CONTENT_SECURITY_POLICY.replacen(
        "img-src 'self' data:",
        &format!("img-src 'self' data: {origin}"),
        1,
    )
}

/// Security headers on every answer (a handler that sets one keeps its own).
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
];

fn with_security_headers(router: Router<AppState>) -> Router<AppState> {
    SECURITY_HEADERS
        .into_iter()
        .fold(router, |r, (name, value)| {
            r.layer(SetResponseHeaderLayer::if_not_present(
                name,
                HeaderValue::from_static(value),
            ))
        })
}

/// Bind `http.listen` (port 0 takes a free port) and log the address it got: people read where the dashboard is,
/// and tests that start quantrac on port 0 read the port from this line (`listening on http://ADDR`, or https).
pub async fn bind(http: &Http) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(http.listen).await?;
    let address = listener.local_addr()?;
    let scheme = if http.tls.is_some() { "https" } else { "http" };
    tracing::info!(%address, url = %http.public_url, "Dashboard and API listening on {scheme}://{address}");
    Ok(listener)
}

/// Serve until `shutdown` within the `[http]` limits (see [`server`]); in-flight requests finish, SSE streams end.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let tls = tls::Tls::start(state.config_handle()).map_err(std::io::Error::other)?;
    serve_with(listener, state, tls, shutdown).await
}

/// [`serve`] with the listener's TLS already loaded (the daemon loads it first, so a bad certificate stops the start).
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    tls: Option<Arc<tls::Tls>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = state.config().http.limits.clone();
    let stats = state.listener.clone();
    let app = router(state);
    server::serve(listener, app, limits, stats, tls, shutdown).await
}
