//! The error body's schema, for the OpenAPI document.

use serde::Serialize;
use utoipa::ToSchema;

/// `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's stable code and message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, such as `no_matching_rule`.
    pub code: String,
    /// The problem and what to do.
    pub message: String,
}
