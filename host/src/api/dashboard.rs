//! The dashboard's files: plain HTML, CSS and ES modules from `api/dashboard/`, embedded in the
//! binary (no build step, nothing fetched from elsewhere: it works offline), each answered with
//! a strict Content-Security-Policy. The page reads the token from its URL's fragment, keeps it
//! in session storage and sends it as the bearer header; the files themselves need no token
//! (see `Guard::admit_page`).

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// What the page may load and reach: its own scripts, styles and API, nothing else — no inline
/// script or style, no `eval`, no frame, no form posted anywhere, no other origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    /// Where it is served.
    path: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes.
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard.
const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: HTML, body: include_str!("dashboard/index.html") },
    Asset { path: "/ui/app.css", content_type: CSS, body: include_str!("dashboard/app.css") },
    Asset { path: "/ui/app.js", content_type: JS, body: include_str!("dashboard/app.js") },
    Asset { path: "/ui/api.js", content_type: JS, body: include_str!("dashboard/api.js") },
    Asset { path: "/ui/html.js", content_type: JS, body: include_str!("dashboard/html.js") },
    Asset { path: "/ui/wit.js", content_type: JS, body: include_str!("dashboard/wit.js") },
    Asset { path: "/ui/overview.js", content_type: JS, body: include_str!("dashboard/overview.js") },
    Asset { path: "/ui/market.js", content_type: JS, body: include_str!("dashboard/market.js") },
    Asset { path: "/ui/jobs.js", content_type: JS, body: include_str!("dashboard/jobs.js") },
    Asset { path: "/ui/wallet.js", content_type: JS, body: include_str!("dashboard/wallet.js") },
    Asset { path: "/ui/log.js", content_type: JS, body: include_str!("dashboard/log.js") },
    Asset { path: "/ui/provide.js", content_type: JS, body: include_str!("dashboard/provide.js") },
    Asset { path: "/ui/submit.js", content_type: JS, body: include_str!("dashboard/submit.js") },
];

/// The paths of the dashboard's files (for the tests).
#[cfg(test)]
pub(super) fn paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|asset| asset.path)
}

/// A router that answers `GET` for each file.
pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, asset| router.route(asset.path, get(move || serve(asset))))
}

async fn serve(asset: &'static Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
