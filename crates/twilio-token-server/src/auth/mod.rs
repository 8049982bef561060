//! Authentication providers: each turns a request's credentials into a [`Principal`].
//!
//! Providers are tried in the configured order. A provider returns:
//!
//! - `Ok(None)` when the request carries no credentials of its kind, so the next one can try;
//! - `Ok(Some(_))` when it authenticated the caller;
//! - an error when it recognised its credentials but they are not valid, which ends the search
//!   with 401.

pub mod api_key;
pub mod extension;
pub mod forward;
pub mod oidc;
pub(crate) mod origin;
pub mod trusted_header;
pub mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::http::{HeaderMap, Method};

use crate::error::ApiError;
use crate::pattern::Pattern;

/// The caller, as a provider established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The identity tokens are minted for, unless the caller may act for others and names one.
    /// `None` when the caller has no identity of its own and must name one.
    pub identity: Option<String>,
    /// Groups for policy rules.
    pub groups: Vec<String>,
    /// The provider that authenticated the caller, such as `api_key` or `users`.
    pub method: &'static str,
    /// The authenticated party for logs: an API key's name or a user name.
    pub subject: String,
    /// Identities the caller may request tokens for, when it may act for others.
    pub may_act_for: Option<Pattern>,
}

/// The parts of a request providers look at.
#[derive(Debug)]
pub struct AuthRequest<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The TCP peer, when known.
    pub peer: Option<SocketAddr>,
    /// The request's extensions, where an embedding app can put its own [`Principal`].
    pub extensions: &'a axum::http::Extensions,
}

/// A boxed future returned by [`AuthProvider::authenticate`].
pub type AuthFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Principal>, ApiError>> + Send + 'a>>;

/// One way of authenticating callers.
pub trait AuthProvider: Send + Sync {
    /// Returns the provider's name in configuration and logs.
    fn name(&self) -> &'static str;

    /// Authenticates the request, or returns `Ok(None)` when it carries no credentials of this
    /// provider's kind.
    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> AuthFuture<'a>;
}

/// Returns the bearer token of the `Authorization` header, if there is one.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}
