//! `POST /login` and `POST /logout`: password sign-in for the built-in user store.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderValue, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroize as _;

use crate::auth::users::UsersProvider;
use crate::error::ApiError;
use crate::routes::token::read_json_body;
use crate::state::AppState;

/// A sign-in request. The password is accepted only in this body, never in the query string.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user name: 1 to 64 ASCII letters, digits and `._@-`, compared without regard to
    /// case.
    pub username: String,
    /// The password.
    #[schema(format = Password)]
    pub password: String,
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Drop for LoginRequest {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

/// A successful sign-in. The session itself is in the `Set-Cookie` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// The user name as stored, which is the identity tokens are minted for.
    pub identity: String,
    /// When the session expires, in Unix seconds.
    pub session_expires_at: u64,
}

/// The result of signing out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogoutResponse {
    /// Always true: the session, if there was one, is deleted and the cookie cleared.
    pub signed_out: bool,
}

/// Signs in with a user name and password and sets the session cookie.
///
/// The cookie is `HttpOnly; SameSite=Lax; Path=/` and lasts `auth.users.session_ttl_secs`. It
/// is `Secure` when `server.trust_forwarded_proto` is on and the proxy sends
/// `X-Forwarded-Proto: https`.
#[utoipa::path(post, path = "/login", tag = "users", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = LoginResponse,
            headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 400, description = "Malformed body, or a query string, which sign-in rejects", body = crate::error_schema::ErrorResponse),
        (status = 401, description = "The user name or password is not correct", body = crate::error_schema::ErrorResponse),
        (status = 403, description = "Sent from an origin that is not allowed, or user sign-in is not enabled", body = crate::error_schema::ErrorResponse),
        (status = 413, description = "Body too large", body = crate::error_schema::ErrorResponse),
        (status = 415, description = "Body not JSON", body = crate::error_schema::ErrorResponse),
        (status = 429, description = "Too many failed attempts for this user name or client", body = crate::error_schema::ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds to wait before the next attempt"))),
        (status = 503, description = "The user database is unavailable", body = crate::error_schema::ErrorResponse)))]
pub async fn post_login(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match login(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Deletes the session, if any, and clears the session cookie.
///
/// Succeeds without a session too, so a client can always call it.
#[utoipa::path(post, path = "/logout", tag = "users",
    responses(
        (status = 200, description = "Signed out; the cookie is cleared", body = LogoutResponse,
            headers(("Set-Cookie" = String, description = "The cleared session cookie"))),
        (status = 403, description = "Sent from an origin that is not allowed, or user sign-in is not enabled", body = crate::error_schema::ErrorResponse),
        (status = 503, description = "The user database is unavailable", body = crate::error_schema::ErrorResponse)))]
pub async fn post_logout(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match logout(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn login(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let users = enabled_users(state)?;
    let (parts, body) = request.into_parts();
    if parts.uri.query().is_some() {
        return Err(ApiError::bad_request(
            "credentials_in_query",
            "sign-in does not accept a query string: send the user name and password only in \
             the JSON body",
        ));
    }
    users.check_origin(&parts.headers)?;
    // The parser's message could quote a password sent with the wrong JSON type.
    let login: LoginRequest =
        read_json_body(&parts, body, &state.server)
            .await
            .map_err(|error| match error {
                ApiError::BadRequest { code, .. } => ApiError::bad_request(
                    code,
                    "the request body must be {\"username\": string, \"password\": string}",
                ),
                other => other,
            })?;

    let session = users
        .sign_in(&login.username, &login.password, peer_ip(&parts))
        .await
        .inspect_err(|error| {
            if matches!(
                error,
                ApiError::Unauthorized { .. } | ApiError::TooManyRequests { .. }
            ) {
                state.metrics.auth_failure("users", error.code());
            }
        })?;

    let cookie = users.session_cookie(&session, &parts.headers);
    let body = LoginResponse {
        identity: session.user.clone(),
        session_expires_at: session.expires_at,
    };
    with_cookie(Json(body).into_response(), &cookie)
}

async fn logout(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let users = enabled_users(state)?;
    let (parts, _) = request.into_parts();
    users.check_origin(&parts.headers)?;

    users.sign_out(&parts.headers).await?;

    let cookie = users.cleared_cookie(&parts.headers);
    with_cookie(
        Json(LogoutResponse { signed_out: true }).into_response(),
        &cookie,
    )
}

fn enabled_users(state: &AppState) -> Result<&UsersProvider, ApiError> {
    state.users.as_deref().ok_or_else(|| {
        ApiError::forbidden(
            "users_disabled",
            "sign-in with a user name and password is not enabled on this server",
        )
    })
}

/// Returns the client's IP address, with IPv4-mapped IPv6 addresses as IPv4.
///
/// NOTE: behind a reverse proxy this is the proxy's address, so all clients share one failed
/// sign-in limit per address. `X-Forwarded-For` is not read, because a client can forge it
/// unless a trusted proxy overwrites it. `rate_limit.trusted_proxies` marks proxies as trusted
/// for the rate limits only, not for this throttle.
fn peer_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_canonical())
}

fn with_cookie(mut response: Response, cookie: &str) -> Result<Response, ApiError> {
    let mut value = HeaderValue::from_str(cookie).map_err(|_| {
        tracing::error!("the Set-Cookie value is not a valid header value");
        ApiError::Internal
    })?;
    value.set_sensitive(true);
    response.headers_mut().insert(SET_COOKIE, value);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_request_debug_hides_password() {
        let request: LoginRequest =
            serde_json::from_str(r#"{"username": "bob", "password": "hunter2hunter2"}"#)
                .expect("parses");

        let debug = format!("{request:?}");

        assert!(debug.contains("bob"));
        assert!(!debug.contains("hunter2"));
    }

    #[test]
    fn login_request_unknown_field_rejected() {
        let error = serde_json::from_str::<LoginRequest>(
            r#"{"username": "bob", "password": "x", "remember": true}"#,
        )
        .expect_err("unknown field");

        assert!(error.to_string().starts_with("unknown field `remember`"));
    }
}
