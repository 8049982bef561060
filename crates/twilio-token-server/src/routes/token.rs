//! `GET /token` and `POST /token`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use twilio_access_token::validate_identity;
use utoipa::IntoParams;

use crate::audit::{AuditRecord, Outcome};
use crate::auth::{AuthRequest, Principal};
use crate::config::ServerSection;
use crate::error::{ApiError, echo};
use crate::issue::{Issued, TokenRequest, issue};
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
        (status = 429, description = "Rate limited; see Retry-After", body = crate::error_schema::ErrorResponse),
        (status = 503, description = "The audit record could not be written", body = crate::error_schema::ErrorResponse)))]
pub async fn get_token(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, _) = request.into_parts();
    let query = match parse_query(parts.uri.query().unwrap_or("")) {
        Ok(query) => query,
        Err(error) => return finish(&state, &parts, started, Err((None, error))).await,
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
    let decision = decide(&state, &parts, &token_request).await;
    finish(&state, &parts, started, decision).await
}

/// Returns 405 for every method of `/token` except `GET` and `POST`, with an `Allow` header that
/// names only those two. This includes `HEAD`: axum would otherwise run `GET` for it, minting a
/// token, writing its audit record and spending rate limit budget, and then drop the body.
pub async fn method_not_allowed() -> Response {
    let mut response = ApiError::MethodNotAllowed.into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    response
}

/// Mints a token for the authenticated caller; parameters in a JSON body.
#[utoipa::path(post, path = "/token", tag = "token", request_body = TokenRequest,
    responses(
        (status = 200, description = "A token", body = crate::issue::TokenResponse),
        (status = 400, description = "Malformed request", body = crate::error_schema::ErrorResponse),
        (status = 401, description = "Not authenticated", body = crate::error_schema::ErrorResponse),
        (status = 403, description = "Not allowed by policy, or the identity is revoked", body = crate::error_schema::ErrorResponse),
        (status = 408, description = "The body did not arrive within the request timeout", body = crate::error_schema::ErrorResponse),
        (status = 413, description = "Body too large", body = crate::error_schema::ErrorResponse),
        (status = 415, description = "Body not JSON", body = crate::error_schema::ErrorResponse),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::error_schema::ErrorResponse),
        (status = 503, description = "The audit record could not be written", body = crate::error_schema::ErrorResponse)))]
pub async fn post_token(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let token_request = match read_json_body(&parts, body, &state.server).await {
        Ok(request) => request,
        Err(error) => return finish(&state, &parts, started, Err((None, error))).await,
    };
    let decision = decide(&state, &parts, &token_request).await;
    finish(&state, &parts, started, decision).await
}

/// The result of a token request: the caller and the token, or the error with the caller when
/// authentication succeeded.
type Decision = Result<(Principal, Issued), (Option<Principal>, ApiError)>;

async fn decide(state: &AppState, parts: &Parts, token_request: &TokenRequest) -> Decision {
    if let Err(error) = crate::guard::before_authentication(state, parts).await {
        return Err((None, error));
    }
    let principal = match authenticate(state, parts).await {
        Ok(principal) => principal,
        Err(error) => return Err((None, error)),
    };
    let now = state.now();
    if let Err(error) = crate::guard::before_issue(state, &principal, token_request, now).await {
        return Err((
            Some(with_requested_identity(principal, token_request)),
            error,
        ));
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
        Ok(issued) => Ok((principal, issued)),
        Err(error) => Err((
            Some(with_requested_identity(principal, token_request)),
            error,
        )),
    }
}

/// Returns the caller with the identity the request named, when that identity is valid, so the
/// audit record of a rejected request shows whom a caller tried to act for.
fn with_requested_identity(mut principal: Principal, token_request: &TokenRequest) -> Principal {
    if let Some(requested) = token_request
        .identity
        .as_deref()
        .filter(|identity| validate_identity(identity).is_ok())
    {
        principal.identity = Some(requested.to_owned());
    }
    principal
}

/// Logs the decision, writes its audit record, and returns the response. A token is returned
/// only once its record is committed, unless the audit log is configured to fail open.
async fn finish(state: &AppState, parts: &Parts, started: Instant, decision: Decision) -> Response {
    let response = record_and_respond(state, parts, decision).await;
    let status = response.status().as_u16();
    state
        .metrics
        .observe_request("token", status, started.elapsed());
    response
}

async fn record_and_respond(state: &AppState, parts: &Parts, decision: Decision) -> Response {
    let request_id = crate::edge::request_id(&parts.headers);
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    // With the audit log off, no record is built: that saved about a tenth of the work of
    // each request in the load benchmark.
    let audited = state.audit.is_enabled();
    let (record, response) = match decision {
        Ok((principal, issued)) => {
            tracing::debug!(
                request_id,
                method = principal.method,
                subject = %principal.subject,
                identity = %issued.response.identity,
                profile = %issued.profile,
                grants = %issued.grants.join(","),
                ttl = issued.response.ttl,
                "token issued"
            );
            state.metrics.token_issued(&issued.profile, &issued.grants);
            let record = audited.then(|| issued_record(request_id, peer, &principal, &issued));
            let response = (
                [
                    (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                issued.response.to_json(),
            )
                .into_response();
            (record, response)
        }
        Err((principal, error)) => {
            tracing::debug!(
                request_id,
                method = principal.as_ref().map(|principal| principal.method),
                subject = principal
                    .as_ref()
                    .map(|principal| principal.subject.as_str()),
                code = error.code(),
                "token request refused"
            );
            state.metrics.refused(error.code());
            let record = audited.then(|| {
                let mut record = AuditRecord::new(state.now(), request_id, peer);
                record.status = error.status().as_u16();
                record.reason = Some(error.code().to_owned());
                if let Some(principal) = principal {
                    // A rejected identity or subject can come from a token or an app's response
                    // and break the identity rules. So only a valid identity is kept, and the
                    // subject is shortened, without control characters.
                    record.identity = principal
                        .identity
                        .filter(|identity| validate_identity(identity).is_ok());
                    record.subject = Some(echo(&principal.subject));
                    record.auth_method = Some(principal.method.to_owned());
                }
                record
            });
            (record, error.into_response())
        }
    };
    let Some(record) = record else {
        return response;
    };

    match state.audit.record(record).await {
        Ok(()) => response,
        Err(error) if state.audit.fail_open() => {
            state.metrics.audit_error(state.audit.sink_name());
            tracing::debug!(request_id, %error, "audit record not written, returning the response anyway");
            response
        }
        Err(error) => {
            state.metrics.audit_error(state.audit.sink_name());
            state.metrics.refused("audit_unavailable");
            tracing::debug!(request_id, %error, "audit record not written, returning 503");
            ApiError::AuditUnavailable.into_response()
        }
    }
}

fn issued_record(
    request_id: &str,
    peer: Option<SocketAddr>,
    principal: &Principal,
    issued: &Issued,
) -> AuditRecord {
    let mut record = AuditRecord::new(issued.response.server_time, request_id, peer);
    record.outcome = Outcome::Issued;
    record.status = 200;
    record.identity = Some(issued.response.identity.clone());
    record.subject = Some(principal.subject.clone());
    record.auth_method = Some(principal.method.to_owned());
    record.profile = Some(issued.profile.clone());
    record.grants = issued
        .grants
        .iter()
        .map(|&grant| grant.to_owned())
        .collect();
    record.ttl = Some(issued.response.ttl);
    record.jti = Some(issued.jti.clone());
    record
}

/// Runs the providers in order until one recognises the request's credentials.
pub(crate) async fn authenticate(state: &AppState, parts: &Parts) -> Result<Principal, ApiError> {
    // Providers read the first header only, so a second one, perhaps added by a proxy, would
    // be ignored without a word.
    if parts
        .headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        state
            .metrics
            .auth_failure("none", "duplicate_authorization");
        return Err(ApiError::bad_request(
            "duplicate_authorization",
            "the request has more than one Authorization header: send one",
        ));
    }
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
            Ok(Some(principal)) => {
                // The built-in session cookie is checked by its provider. The app's cookie and
                // a proxy's sign-in are sent by the browser as well, so a page on another site
                // could otherwise spend the user's rate limit and fill the audit log.
                let credential = match principal.method {
                    "forward" => Some("the application's session"),
                    "trusted_header" => Some("the proxy's sign-in"),
                    _ => None,
                };
                if let Some(credential) = credential
                    && let Err(error) = state.origin.check(&parts.headers, credential)
                {
                    state.metrics.auth_failure(provider.name(), error.code());
                    return Err(error);
                }
                return Ok(principal);
            }
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
        missing_credentials_message(state),
    ))
}

/// Says which credentials the configured providers accept.
fn missing_credentials_message(state: &AppState) -> String {
    let ways: Vec<&str> = state
        .providers
        .iter()
        .map(|provider| match provider.name() {
            "api_key" => "send an API key as Authorization: Bearer",
            "users" => "sign in first",
            "oidc" => "send an OpenID Connect token as Authorization: Bearer",
            "forward" => "sign in to the application first",
            "trusted_header" => "go through the authenticating proxy",
            _ => "authenticate as the application expects",
        })
        .collect();
    if ways.is_empty() {
        return "no credentials were found, and the server has no authentication provider \
                configured"
            .to_owned();
    }
    format!("no credentials were found: {}", ways.join(", or "))
}

fn parse_query(query: &str) -> Result<TokenQuery, ApiError> {
    check_query_encoding(query)?;
    let uri = format!("/?{query}")
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_query", "the query string is not valid"))?;
    axum::extract::Query::<TokenQuery>::try_from_uri(&uri)
        .map(|query| query.0)
        .map_err(|rejection| {
            let text = rejection.body_text();
            let detail = text
                .strip_prefix("Failed to deserialize query string: ")
                .unwrap_or(&text);
            ApiError::bad_request(
                "invalid_query",
                format!("the query string is not valid: {detail}"),
            )
        })
}

/// Checks that each `%` starts a two-digit hexadecimal escape and that each parameter decodes
/// to UTF-8. The query parser would otherwise keep a malformed escape as it is and replace bytes
/// that are not UTF-8 with U+FFFD, so two different requests would name the same identity.
fn check_query_encoding(query: &str) -> Result<(), ApiError> {
    for pair in query.split('&') {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        let bytes = pair.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut index = 0;
        while index < bytes.len() {
            if bytes[index] != b'%' {
                decoded.push(bytes[index]);
                index += 1;
                continue;
            }
            let escape = bytes
                .get(index + 1..index + 3)
                .filter(|digits| digits.iter().all(u8::is_ascii_hexdigit))
                .and_then(|digits| std::str::from_utf8(digits).ok())
                .and_then(|digits| u8::from_str_radix(digits, 16).ok());
            let Some(byte) = escape else {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "the query parameter {:?} has a % that is not followed by two \
                         hexadecimal digits: write a literal % as %25",
                        echo(name)
                    ),
                ));
            };
            decoded.push(byte);
            index += 3;
        }
        if String::from_utf8(decoded).is_err() {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!(
                    "the query parameter {:?} is not UTF-8 once percent-decoded: encode the \
                     text as UTF-8 before percent-encoding it",
                    echo(name)
                ),
            ));
        }
    }
    Ok(())
}

/// Returns how long a handler waits for a request body: a little less than the request timeout.
/// A body still on its way then gets 408 from the handler before the edge layer's timeout
/// returns 503, which would blame the server.
fn body_wait(request_timeout: Duration) -> Duration {
    request_timeout.saturating_sub((request_timeout / 10).min(Duration::from_millis(250)))
}

/// Reads a JSON body, with the errors a client can act on: 415 without a JSON content type,
/// 413 over `server.body_limit_bytes`, 408 when the body has not arrived shortly before
/// `server.request_timeout_secs`, 400 naming an unknown field or a malformed value.
pub(crate) async fn read_json_body<T: serde::de::DeserializeOwned>(
    parts: &Parts,
    body: Body,
    server: &ServerSection,
) -> Result<T, ApiError> {
    let limit = server.body_limit_bytes;
    let is_json = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let mut reading = std::pin::pin!(axum::body::to_bytes(body, limit));
    // A body that has arrived with the headers is read in this first poll, without a timer.
    let read = match std::future::poll_fn(|cx| Poll::Ready(reading.as_mut().poll(cx))).await {
        Poll::Ready(read) => read,
        Poll::Pending => {
            let timeout = Duration::from_secs(server.request_timeout_secs);
            tokio::time::timeout(body_wait(timeout), reading)
                .await
                .map_err(|_| ApiError::RequestTimeout {
                    seconds: timeout.as_secs(),
                })?
        }
    };
    let bytes = read.map_err(|error| {
        let over_limit = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if over_limit {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::bad_request(
                "invalid_body",
                format!("the request body could not be read: {error}"),
            )
        }
    })?;
    if bytes.is_empty() {
        return serde_json::from_slice(b"{}")
            .map_err(|error| ApiError::bad_request("invalid_body", error.to_string()));
    }
    // Checked here because serde's message for an array, such as "expected struct
    // TokenRequest with 5 elements", names the Rust type instead of the mistake.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the request body must be a JSON object, such as {}",
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_wait_ends_before_request_timeout() {
        assert_eq!(
            body_wait(Duration::from_secs(10)),
            Duration::from_millis(9_750)
        );
        assert_eq!(
            body_wait(Duration::from_secs(1)),
            Duration::from_millis(900)
        );
        assert_eq!(body_wait(Duration::ZERO), Duration::ZERO);
    }
}
