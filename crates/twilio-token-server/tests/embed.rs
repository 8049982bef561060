//! The composition of `examples/embed.rs`, driven in process: an application's own session
//! middleware decides who the user is, and the token router mounted under `/twilio` mints for
//! that user through `ExtensionProvider`.

#[path = "../examples/embed.rs"]
#[allow(dead_code)]
mod embed;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;
use twilio_access_token::{ApiSecret, ChatGrant, Grant, Verifier, VideoGrant};
use twilio_token_server::config::Environment;

const SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";

fn app() -> Router {
    let environment = Environment::from([("TWILIO_API_SECRET".to_owned(), SECRET.to_owned())]);
    let state = embed::token_state(&environment).expect("example configuration is valid");
    embed::embedding_app(state)
}

fn verifier() -> Verifier {
    Verifier::builder(embed::ACCOUNT_SID)
        .key(embed::API_KEY_SID, ApiSecret::new(SECRET))
        .build()
        .expect("verifier builds")
}

/// Sends a request with an optional session and JSON body; returns status, headers and body.
async fn send(
    method: &str,
    path: &str,
    session: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(session) = session {
        request = request.header(embed::SESSION_HEADER, session);
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Body::from(body.unwrap_or("").to_owned()))
        .expect("request builds");
    let response = app().oneshot(request).await.expect("router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body is readable");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, body)
}

#[tokio::test]
async fn session_user_gets_token() {
    let (status, headers, body) =
        send("POST", "/twilio/token", Some("demo-alice"), Some("{}")).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["identity"], "user-alice");
    assert_eq!(body["ttl"], 3600);
    let token = body["token"].as_str().expect("token is a string");
    let server_time = body["server_time"].as_u64().expect("server_time");
    let claims = verifier()
        .verify_at(token, server_time)
        .expect("token verifies");
    assert_eq!(claims.identity, "user-alice");
    assert_eq!(
        claims.grants,
        vec![Grant::Chat(
            ChatGrant::new().service_sid(embed::CHAT_SERVICE_SID)
        )]
    );
}

#[tokio::test]
async fn session_groups_reach_policy() {
    let (status, _, body) = send("GET", "/twilio/token", Some("demo-bob"), None).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token is a string");
    let server_time = body["server_time"].as_u64().expect("server_time");
    let claims = verifier()
        .verify_at(token, server_time)
        .expect("token verifies");
    assert_eq!(claims.identity, "user-bob");
    assert_eq!(
        claims.grants,
        vec![
            Grant::Chat(ChatGrant::new().service_sid(embed::CHAT_SERVICE_SID)),
            Grant::Video(VideoGrant::new()),
        ],
        "the support group's rule applies"
    );
}

#[tokio::test]
async fn missing_session_is_unauthorized() {
    for session in [None, Some("demo-mallory")] {
        let (status, headers, body) = send("POST", "/twilio/token", session, Some("{}")).await;

        assert_eq!(status, StatusCode::UNAUTHORIZED, "{session:?}");
        assert_eq!(body["error"]["code"], "missing_credentials");
        assert_eq!(headers["www-authenticate"], "Bearer realm=\"twilio-token\"");
    }
}

#[tokio::test]
async fn api_keys_are_not_accepted() {
    let (key, _) = twilio_token_server::auth::api_key::generate_key();
    let request = Request::builder()
        .method("GET")
        .uri("/twilio/token")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .expect("request builds");

    let response = app().oneshot(request).await.expect("router is infallible");

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn session_user_cannot_choose_identity() {
    let (status, _, body) = send(
        "POST",
        "/twilio/token",
        Some("demo-alice"),
        Some(r#"{"identity": "user-bob"}"#),
    )
    .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "identity_not_allowed");
}

#[tokio::test]
async fn app_routes_still_served() {
    let (home, _, body) = send("GET", "/", None, None).await;
    let (health, _, _) = send("GET", "/twilio/healthz", None, None).await;
    let (missing, _, missing_body) = send("GET", "/twilio/nope", None, None).await;

    assert_eq!(home, StatusCode::OK);
    assert!(
        body.as_str()
            .is_some_and(|text| text.starts_with("demo app"))
    );
    assert_eq!(health, StatusCode::OK);
    assert_eq!(missing, StatusCode::NOT_FOUND);
    assert_eq!(missing_body["error"]["code"], "not_found");
}
