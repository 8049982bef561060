//! The checks a token request passes besides authentication and policy: rate limits and the
//! revocation list. They are kept here so that the token route calls each with one line.

use axum::http::request::Parts;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::issue::{TokenRequest, resolve_identity};
use crate::state::AppState;

/// Applies the per-client rate limit, before authentication, so that a flood of bad
/// credentials is limited too.
pub(crate) async fn before_authentication(state: &AppState, parts: &Parts) -> Result<(), ApiError> {
    match &state.rate_limits {
        Some(limits) => limits.check_client(parts).await,
        None => Ok(()),
    }
}

/// Refuses a revoked identity, then applies the per-identity rate limit. A request whose
/// identity cannot be resolved passes, because `issue` reports why.
pub(crate) async fn before_issue(
    state: &AppState,
    principal: &Principal,
    request: &TokenRequest,
    now: u64,
) -> Result<(), ApiError> {
    if state.revocations.is_none() && state.rate_limits.is_none() {
        return Ok(());
    }
    let Ok(identity) = resolve_identity(principal, request.identity.as_deref()) else {
        return Ok(());
    };
    if let Some(revocations) = &state.revocations {
        revocations.check_new_token(&identity, now).await?;
    }
    if let Some(limits) = &state.rate_limits {
        limits.check_identity(&identity).await?;
    }
    Ok(())
}
