//! `GET /metrics`: the Prometheus metrics.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;
use crate::metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, Metrics};
use crate::state::AppState;

/// Returns the server's metrics as OpenMetrics text, which Prometheus scrapes.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Metrics in the OpenMetrics text format",
        content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    render(&state.metrics)
}

fn render(metrics: &Metrics) -> Response {
    let mut response = metrics.render().into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A router that serves only `GET /metrics`, for the separate listener of `[metrics] listen`.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move { render(&metrics) }
            }),
        )
        .fallback(|| async { ApiError::NotFound.into_response() })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed.into_response() })
}
