//! The check against cross-site request forgery for credentials that a browser sends by itself:
//! the built-in session cookie, the app's cookie that `forward` passes on, and the sign-in of an
//! authenticating proxy (`trusted_header`).
//!
//! A request is rejected with 403 `csrf_rejected` when its `Origin` header is neither the
//! server's own origin nor in `server.allowed_origins`, or when its `Sec-Fetch-Site` is
//! `cross-site` without an allowed origin. Clients other than browsers send neither header, so
//! they pass.

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

use crate::config::ServerSection;
use crate::error::ApiError;

const SEC_FETCH_SITE: &str = "sec-fetch-site";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// The origins allowed to send browser credentials, and how to tell the server's own.
#[derive(Debug, Clone, Default)]
pub(crate) struct OriginCheck {
    allowed_origins: Vec<String>,
    trust_forwarded_proto: bool,
}

impl OriginCheck {
    /// Returns the check that `server.allowed_origins` and `server.trust_forwarded_proto` set.
    pub(crate) fn from_server(server: &ServerSection) -> Self {
        OriginCheck {
            allowed_origins: server.allowed_origins.clone(),
            trust_forwarded_proto: server.trust_forwarded_proto,
        }
    }

    /// Rejects a request from another site that uses `credential`, such as "the session
    /// cookie", in the messages.
    pub(crate) fn check(&self, headers: &HeaderMap, credential: &str) -> Result<(), ApiError> {
        let origin = match headers.get(ORIGIN) {
            Some(value) => Some(value.to_str().map_err(|_| {
                csrf_rejected("the Origin header is not valid text, so the request is rejected")
            })?),
            None => None,
        };
        let listed = origin.is_some_and(|origin| self.is_allowed_origin(origin));
        let foreign = origin.filter(|origin| !listed && !self.is_own_origin(origin, headers));
        if let Some(origin) = foreign {
            tracing::debug!(origin, credential, "request from a foreign origin rejected");
            return Err(csrf_rejected(format!(
                "requests from {origin} may not use {credential}: the server operator can add \
                 the origin to server.allowed_origins"
            )));
        }

        let cross_site = headers
            .get(SEC_FETCH_SITE)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        if cross_site && !listed {
            tracing::debug!(credential, "cross-site request rejected");
            return Err(csrf_rejected(format!(
                "cross-site requests may not use {credential}: the server operator can add the \
                 site's origin to server.allowed_origins"
            )));
        }
        Ok(())
    }

    fn is_allowed_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    }

    /// Compares `origin` with the scheme and `Host` header of the request. Without a `Host`
    /// header, as in HTTP/2 requests that only send `:authority`, no origin is the server's own.
    ///
    /// NOTE: `X-Forwarded-Host` is not read, so behind a proxy that rewrites `Host` the public
    /// origin must be listed in `server.allowed_origins`.
    fn is_own_origin(&self, origin: &str, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(HOST).and_then(|value| value.to_str().ok()) else {
            return false;
        };
        let scheme = if self.is_https(headers) {
            "https"
        } else {
            "http"
        };
        origin
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    }

    /// True when the browser reached the server over HTTPS, which the server can only learn
    /// from a trusted proxy's `X-Forwarded-Proto`.
    pub(crate) fn is_https(&self, headers: &HeaderMap) -> bool {
        self.trust_forwarded_proto
            && headers
                .get(X_FORWARDED_PROTO)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(',').next())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
    }
}

fn csrf_rejected(message: impl Into<String>) -> ApiError {
    ApiError::forbidden("csrf_rejected", message)
}
