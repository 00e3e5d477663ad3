//! The agents' web console: a page and its script and styles, embedded in the binary
//! (`src/console/`), nothing fetched from elsewhere. The script reads and acts through
//! `/api/v1` with the session cookie, so the console shows exactly what the API lets the
//! agent see.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const PAGE: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/app.js");
const STYLES: &str = include_str!("../console/app.css");

/// Only this origin's script and styles run; no frame may hold the console (clickjacking);
/// nothing leaves for another site, not even a `Referer` carrying a sign-in link.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> super::Routes {
    super::Routes::new()
        .route("/", get(page))
        .route("/sign-in", get(page))
        .route("/setup", get(page))
        .route(
            "/console/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset(STYLES, "text/css; charset=utf-8") }),
        )
}

async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            // Always asked again: a new binary's console replaces the old one at once.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}
