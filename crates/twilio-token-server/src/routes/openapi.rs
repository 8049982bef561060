//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;

use crate::error_schema::ErrorResponse;
use crate::issue::{TokenRequest, TokenResponse};
use crate::routes::health::Health;
use crate::routes::login::{LoginRequest, LoginResponse, LogoutResponse};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "twilio-token server",
        description = "Hands Twilio Access Tokens to signed-in users."
    ),
    paths(
        crate::routes::token::get_token,
        crate::routes::token::post_token,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        openapi_json,
        crate::routes::login::post_login,
        crate::routes::login::post_logout,
        crate::routes::metrics::metrics,
    ),
    components(schemas(
        TokenRequest,
        TokenResponse,
        Health,
        ErrorResponse,
        LoginRequest,
        LoginResponse,
        LogoutResponse
    ))
)]
pub struct ApiDoc;

/// Returns this OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
