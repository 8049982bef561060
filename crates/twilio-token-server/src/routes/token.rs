//! `GET /token` and `POST /token`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{AuthRequest, Principal};
use crate::error::ApiError;
use crate::issue::{TokenRequest, issue};
use crate::state::AppState;

/// Query parameters of `GET /token`, for clients written against Twilio's quickstart servers.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Comma-separated subset of the allowed grants, such as `chat,video`.
    pub grants: Option<String>,
    /// Lifetime in seconds, at most the policy's maximum.
    pub ttl: Option<u64>,
    /// Device id for the legacy Chat endpoint id.
    pub device_id: Option<String>,
    /// The Video room.
    pub room: Option<String>,
    /// The identity to mint for; only for API keys allowed to act for others.
    pub identity: Option<String>,
}

/// Mints a token for the authenticated caller; parameters in the query string.
#[utoipa::path(get, path = "/token", tag = "token", params(TokenQuery),
    responses(
        (status = 200, description = "A token", body = crate::issue::TokenResponse),
        (status = 400, description = "Malformed request", body = crate::error_schema::ErrorResponse),
        (status = 401, description = "Not authenticated", body = crate::error_schema::ErrorResponse),
        (status = 403, description = "Not allowed by policy, or the identity is revoked", body = crate::error_schema::ErrorResponse),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::error_schema::ErrorResponse)))]
pub async fn get_token(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let query = match parse_query(parts.uri.query().unwrap_or("")) {
        Ok(query) => query,
        Err(error) => return error.into_response(),
    };
    let grants = query.grants.map(|grants| {
        grants
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let token_request = TokenRequest {
        grants,
        ttl: query.ttl,
        device_id: query.device_id,
        room: query.room,
        identity: query.identity,
    };
    respond(&state, &parts, &token_request).await
}

/// Mints a token for the authenticated caller; parameters in a JSON body.
#[utoipa::path(post, path = "/token", tag = "token", request_body = TokenRequest,
    responses(
        (status = 200, description = "A token", body = crate::issue::TokenResponse),
        (status = 400, description = "Malformed request", body = crate::error_schema::ErrorResponse),
        (status = 401, description = "Not authenticated", body = crate::error_schema::ErrorResponse),
        (status = 403, description = "Not allowed by policy, or the identity is revoked", body = crate::error_schema::ErrorResponse),
        (status = 413, description = "Body too large", body = crate::error_schema::ErrorResponse),
        (status = 415, description = "Body not JSON", body = crate::error_schema::ErrorResponse),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::error_schema::ErrorResponse)))]
pub async fn post_token(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let token_request = match read_json_body(&parts, body, state.server.body_limit_bytes).await {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    respond(&state, &parts, &token_request).await
}

async fn respond(state: &AppState, parts: &Parts, token_request: &TokenRequest) -> Response {
    let started = std::time::Instant::now();
    let response = respond_checked(state, parts, token_request).await;
    let status = response.status().as_u16();
    state
        .metrics
        .observe_request("token", status, started.elapsed());
    response
}

async fn respond_checked(
    state: &AppState,
    parts: &Parts,
    token_request: &TokenRequest,
) -> Response {
    if let Err(error) = crate::guard::before_authentication(state, parts).await {
        state.metrics.refused(error.code());
        return error.into_response();
    }
    let principal = match authenticate(state, parts).await {
        Ok(principal) => principal,
        Err(error) => {
            tracing::debug!(
                request_id = crate::app::request_id(&parts.headers),
                code = error.code(),
                "token request not authenticated"
            );
            return error.into_response();
        }
    };
    let now = state.now();
    if let Err(error) = crate::guard::before_issue(state, &principal, token_request, now).await {
        tracing::debug!(
            request_id = crate::app::request_id(&parts.headers),
            method = principal.method,
            subject = %principal.subject,
            code = error.code(),
            "token request refused"
        );
        state.metrics.refused(error.code());
        return error.into_response();
    }
    let issued = issue(
        &principal,
        token_request,
        &state.policy,
        &state.profiles,
        &state.tokens,
        state.server.refresh_before_expiry,
        now,
    );
    match issued {
        Ok(issued) => {
            tracing::debug!(
                request_id = crate::app::request_id(&parts.headers),
                method = principal.method,
                subject = %principal.subject,
                identity = %issued.response.identity,
                profile = %issued.profile,
                grants = ?issued.grants,
                ttl = issued.response.ttl,
                "token issued"
            );
            state.metrics.token_issued(&issued.profile, &issued.grants);
            let mut response = Json(issued.response).into_response();
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => {
            tracing::debug!(
                request_id = crate::app::request_id(&parts.headers),
                method = principal.method,
                subject = %principal.subject,
                code = error.code(),
                "token request refused"
            );
            state.metrics.refused(error.code());
            error.into_response()
        }
    }
}

/// Runs the providers in order until one recognises the request's credentials.
pub(crate) async fn authenticate(state: &AppState, parts: &Parts) -> Result<Principal, ApiError> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let auth_request = AuthRequest {
        method: &parts.method,
        headers: &parts.headers,
        peer,
        extensions: &parts.extensions,
    };
    for provider in &state.providers {
        match provider.authenticate(&auth_request).await {
            Ok(Some(principal)) => return Ok(principal),
            Ok(None) => {}
            Err(error) => {
                state.metrics.auth_failure(provider.name(), error.code());
                return Err(error);
            }
        }
    }
    state.metrics.auth_failure("none", "missing_credentials");
    Err(ApiError::unauthorized(
        "missing_credentials",
        "no credentials were found: send an API key as Authorization: Bearer, or sign in first",
    ))
}

fn parse_query(query: &str) -> Result<TokenQuery, ApiError> {
    serde_urlencoded_query(query)
}

fn serde_urlencoded_query(query: &str) -> Result<TokenQuery, ApiError> {
    axum::extract::Query::<TokenQuery>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_query", "the query string is not valid"))?,
    )
    .map(|query| query.0)
    .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
}

/// Reads a JSON body, with the errors a client can act on: 415 without a JSON content type,
/// 413 over the limit, 400 naming an unknown field or a malformed value.
pub(crate) async fn read_json_body<T: serde::de::DeserializeOwned>(
    parts: &Parts,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let is_json = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })?;
    if bytes.is_empty() {
        return serde_json::from_slice(b"{}")
            .map_err(|error| ApiError::bad_request("invalid_body", error.to_string()));
    }
    serde_json::from_slice(&bytes).map_err(|error| {
        let message = error.to_string();
        let code = if message.starts_with("unknown field") {
            "unknown_field"
        } else {
            "invalid_body"
        };
        ApiError::bad_request(code, format!("the request body is not valid: {message}"))
    })
}
