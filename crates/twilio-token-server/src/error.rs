//! The one place where errors become HTTP responses.

use axum::Json;
use axum::http::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error returned to a client, with a stable machine-readable code.
///
/// Messages are written for the client: they never contain a token, a secret, a password, a
/// cookie or internal details. Internal causes are logged where they happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: the request is malformed or names an unknown field or grant.
    BadRequest {
        /// Stable code, such as `unknown_field`.
        code: &'static str,
        /// The problem, for the client.
        message: String,
    },
    /// 401: no credentials, or credentials that are not valid.
    Unauthorized {
        /// Stable code, such as `missing_credentials`.
        code: &'static str,
        /// The problem, for the client.
        message: String,
    },
    /// 403: authenticated, but policy does not allow the request.
    Forbidden {
        /// Stable code, such as `no_matching_rule`.
        code: &'static str,
        /// The refused request, for the client.
        message: String,
    },
    /// 404: no such route.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 413: the body is over the limit.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 408: the request body did not arrive within the request timeout.
    RequestTimeout {
        /// The timeout in seconds.
        seconds: u64,
    },
    /// 415: a JSON body is expected.
    UnsupportedMediaType,
    /// 429: too many requests; retry after the given seconds.
    TooManyRequests {
        /// Stable code, such as `too_many_attempts`.
        code: &'static str,
        /// The limited action, for the client.
        message: String,
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// 500: a bug or an unexpected failure; details are in the log.
    Internal,
    /// 503: the audit record of the request could not be written, so no token was returned.
    AuditUnavailable,
    /// 503: a dependency is unavailable; details are in the log.
    Unavailable {
        /// The unavailable service, in client terms.
        message: String,
    },
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

/// Maximum length of a client-supplied value echoed in an error message, in characters.
const MAX_ECHO_CHARS: usize = 120;

/// Shortens client-supplied text echoed in messages and drops control characters.
pub(crate) fn echo(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_ECHO_CHARS)
        .collect();
    if text.chars().count() > MAX_ECHO_CHARS {
        out.push('…');
    }
    out
}

impl ApiError {
    /// Returns the HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable { .. } | ApiError::AuditUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Returns the stable code written in the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::TooManyRequests { code, .. } => code,
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::RequestTimeout { .. } => "request_timeout",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Internal => "internal_error",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::AuditUnavailable => "audit_unavailable",
        }
    }

    /// Returns the message written in the body.
    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest { message, .. }
            | ApiError::Unauthorized { message, .. }
            | ApiError::Forbidden { message, .. }
            | ApiError::TooManyRequests { message, .. }
            | ApiError::Unavailable { message } => message.clone(),
            ApiError::NotFound => "no such route: see /openapi.json for the routes".into(),
            ApiError::MethodNotAllowed => "this route does not accept that method".into(),
            ApiError::RequestTimeout { seconds } => format!(
                "the request body did not arrive within {seconds} seconds: send the whole body \
                 right after the headers"
            ),
            ApiError::PayloadTooLarge { limit } => {
                format!("the request body is over {limit} bytes")
            }
            ApiError::UnsupportedMediaType => {
                "the request body must be JSON with Content-Type: application/json".into()
            }
            ApiError::Internal => "internal error: the server log has the details".into(),
            ApiError::AuditUnavailable => {
                "the audit log cannot be written, so no token is issued: try again later".into()
            }
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.message();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: &message,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            ApiError::Unauthorized { .. } => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"twilio-token\""),
                );
            }
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}
