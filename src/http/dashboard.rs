//! The officers' dashboard: one page and its assets, compiled into the binary (departments run it offline).

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");
const HISTORY_JS: &str = include_str!("assets/history.js");
const ACCOUNTS_JS: &str = include_str!("assets/accounts.js");
/// uPlot 1.6.32 (MIT, `assets/uplot.LICENSE`), vendored from the npm registry's `uplot` package (`dist/`).
const UPLOT_JS: &str = include_str!("assets/uplot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uplot.min.css");
const MAP_JS: &str = include_str!("assets/map.js");
/// Leaflet 1.9.4 (BSD-2-Clause, `assets/leaflet.LICENSE`), vendored from the npm registry's `leaflet` package
/// (`dist/`); the page loads it only when `[http] map_tiles` is set.
const LEAFLET_JS: &str = include_str!("assets/leaflet.js");
const LEAFLET_CSS: &str = include_str!("assets/leaflet.css");

/// The page; with a map tile server configured its content security policy also lets images come from that server.
pub async fn index(State(s): State<AppState>) -> Response {
    let policy = s
        .config()
        .http
        .map
        .as_ref()
        .and_then(|m| HeaderValue::from_str(&super::policy_with_images_from(&m.origin)).ok());
    match policy {
        Some(p) => ([(header::CONTENT_SECURITY_POLICY, p)], Html(INDEX)).into_response(),
        None => Html(INDEX).into_response(),
    }
}

pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, mime) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "history.js" => (HISTORY_JS, "text/javascript; charset=utf-8"),
        "accounts.js" => (ACCOUNTS_JS, "text/javascript; charset=utf-8"),
        "uplot.iife.min.js" => (UPLOT_JS, "text/javascript; charset=utf-8"),
        "uplot.min.css" => (UPLOT_CSS, "text/css; charset=utf-8"),
        "map.js" => (MAP_JS, "text/javascript; charset=utf-8"),
        "leaflet.js" => (LEAFLET_JS, "text/javascript; charset=utf-8"),
        "leaflet.css" => (LEAFLET_CSS, "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
