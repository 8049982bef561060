//! Liveness and readiness.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// A health status.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `not_ready`.
    pub status: &'static str,
    /// Checks that failed, when not ready.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<String>,
    /// Dependencies that are degraded while tokens are still issued, such as an OpenID Connect
    /// provider that cannot be reached while its cached keys are in use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
}

/// Reports that the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        failing: Vec::new(),
        degraded: Vec::new(),
    })
}

/// Reports whether the configuration is loaded and the stores are reachable.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to issue tokens", body = Health),
        (status = 503, description = "A store is unreachable", body = Health)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Health>) {
    let failing = state.readiness_failures().await;
    let degraded = state.readiness_warnings().await;
    if failing.is_empty() {
        (
            StatusCode::OK,
            Json(Health {
                status: "ready",
                failing,
                degraded,
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "not_ready",
                failing,
                degraded,
            }),
        )
    }
}
