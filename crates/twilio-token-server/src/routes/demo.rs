//! The demo page: `GET /` and the files it loads, embedded in the binary from the repository's
//! `web/` folder.
//!
//! The router serves these only when `server.demo_page` is true, which `serve --demo` sets
//! unless the configuration sets it to false. They are not part of the API, so the OpenAPI
//! document leaves them out; [`DEMO_ROUTES`] lists them instead.
//!
//! Every response carries a Content-Security-Policy that allows scripts, styles and requests
//! only from the server's own origin and no inline script, plus `X-Content-Type-Options:
//! nosniff`, `Referrer-Policy: no-referrer`, framing protection and `Cache-Control: no-store`.

use std::sync::Arc;

use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;
use crate::state::AppState;

/// The routes of the demo page, as (method, path). They are served only when the demo page is
/// enabled, and are not in the OpenAPI document.
pub const DEMO_ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/demo.js"),
    ("GET", "/demo.css"),
    ("GET", "/token-client.js"),
];

/// The Content-Security-Policy of every demo response. `form-action 'self'` lets the sign-in
/// form fall back to a same-origin POST, which `/login` rejects as not JSON, when scripts do
/// not run.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

// NOTE: these paths leave the crate's folder, so `cargo package` would not find them. The files
// have to move into the crate before it is published.
const INDEX_HTML: &str = include_str!("../../../../web/index.html");
const DEMO_JS: &str = include_str!("../../../../web/demo.js");
const DEMO_CSS: &str = include_str!("../../../../web/demo.css");
const TOKEN_CLIENT_JS: &str = include_str!("../../../../web/token-client.js");

const CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");
const CROSS_ORIGIN_RESOURCE_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-resource-policy");

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Returns the router of the demo page, to merge into the main router.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { page(HTML, INDEX_HTML) }))
        .route("/demo.js", get(|| async { page(JAVASCRIPT, DEMO_JS) }))
        .route("/demo.css", get(|| async { page(CSS, DEMO_CSS) }))
        .route(
            "/token-client.js",
            get(|| async { page(JAVASCRIPT, TOKEN_CLIENT_JS) }),
        )
        // The main router's 405 handler covers only the routes it had when it was set.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed.into_response() })
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
        ),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            CROSS_ORIGIN_OPENER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (
            CROSS_ORIGIN_RESOURCE_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        // The page is small, and a cached copy could outlive an upgrade of the binary.
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_no_inline_script() {
        // The policy blocks inline scripts and styles, so the page must not need them.
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains(" style="));
        assert!(
            !has_event_handler_attribute(INDEX_HTML),
            "no inline event handler attributes"
        );
    }

    /// True when `html` has an attribute such as `onclick=`.
    fn has_event_handler_attribute(html: &str) -> bool {
        html.match_indices(" on").any(|(index, _)| {
            let rest = &html[index + 3..];
            let name_length = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name_length > 0 && rest[name_length..].starts_with('=')
        })
    }

    #[test]
    fn event_handler_check_finds_onclick() {
        assert!(has_event_handler_attribute("<a onclick=\"x()\">"));
        assert!(!has_event_handler_attribute("<p>for display only</p>"));
    }

    #[test]
    fn page_loads_only_served_files() {
        for path in ["/demo.css", "/demo.js"] {
            assert!(INDEX_HTML.contains(&format!("\"{path}\"")), "{path}");
        }
        assert!(DEMO_JS.contains("from '/token-client.js'"));
    }
}
