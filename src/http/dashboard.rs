//! The officers' dashboard: one page and its assets, compiled into the binary (departments run it offline).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");
const HISTORY_JS: &str = include_str!("assets/history.js");
/// uPlot 1.6.32 (MIT, `assets/uplot.LICENSE`), vendored from the npm registry's `uplot` package (`dist/`).
const UPLOT_JS: &str = include_str!("assets/uplot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uplot.min.css");

pub async fn index() -> Html<&'static str> {
    Html(INDEX)
}

pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, mime) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "history.js" => (HISTORY_JS, "text/javascript; charset=utf-8"),
        "uplot.iife.min.js" => (UPLOT_JS, "text/javascript; charset=utf-8"),
        "uplot.min.css" => (UPLOT_CSS, "text/css; charset=utf-8"),
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
