//! The token server over a real loopback socket: status, `error.code` and headers of every
//! outcome of `/token`, plus health, routing, request ids and CORS.

mod common;

use common::{
    ACCOUNT_SID, ALLOWED_ORIGIN, API_KEY_SID, CHAT_SERVICE_SID, SECRET, SYNC_SERVICE_SID,
    TestServer, expect_error, header, unix_now, verifier,
};
use serde_json::{Value, json};
use twilio_access_token::{
    AccessToken, ChatGrant, Grant, SyncGrant, VerifyError, VideoGrant, VoiceGrant,
};
use twilio_token_server::issue::TokenResponse;

/// Checks a 200 token response's headers and body shape, and returns the body.
async fn expect_token(response: reqwest::Response) -> TokenResponse {
    let headers = response.headers().clone();
    let status = response.status().as_u16();
    let text = response.text().await.expect("body is readable");
    assert_eq!(status, 200, "status; body: {text}");
    assert_eq!(header(&headers, "content-type"), "application/json");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert!(headers.contains_key("x-request-id"), "x-request-id is set");

    let body: Value = serde_json::from_str(&text).expect("body is JSON");
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("body is an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "expires_at",
            "identity",
            "refresh_after",
            "server_time",
            "token",
            "ttl"
        ]
    );
    serde_json::from_value(body).expect("body is a TokenResponse")
}

/// Checks the response's times against its TTL and the refresh share of 0.2.
fn assert_times(response: &TokenResponse, ttl: u64) {
    assert_eq!(response.ttl, ttl, "ttl");
    assert_eq!(
        response.expires_at - response.server_time,
        ttl,
        "expires_at"
    );
    let margin = ((ttl as f64) * 0.2).round().max(1.0) as u64;
    assert_eq!(
        response.refresh_after,
        response.expires_at - margin,
        "refresh_after for ttl {ttl}"
    );
    let now = unix_now();
    assert!(
        response.server_time.abs_diff(now) <= 5,
        "server_time {} is near now {now}",
        response.server_time
    );
}

fn chat() -> Grant {
    Grant::Chat(ChatGrant::new().service_sid(CHAT_SERVICE_SID))
}

fn video() -> Grant {
    Grant::Video(VideoGrant::new())
}

#[tokio::test]
async fn post_token_mints_verifiable_token() {
    let server = TestServer::start().await;

    let response = server
        .post_token(&server.keys.actor, json!({"identity": "user-7"}))
        .await;

    let body = expect_token(response).await;
    assert_eq!(body.identity, "user-7");
    assert_times(&body, 600);
    let claims = verifier()
        .verify_at(&body.token, body.server_time)
        .expect("token verifies with the profile's secret");
    assert_eq!(claims.identity, "user-7");
    assert_eq!(claims.grants, vec![chat(), video()]);
    assert_eq!(claims.account_sid, ACCOUNT_SID);
    assert_eq!(claims.api_key_sid, API_KEY_SID);
    assert_eq!(claims.issued_at, Some(body.server_time));
    assert_eq!(claims.expires_at, body.expires_at);
    assert_eq!(claims.region, None);
    server.stop().await;
}

#[tokio::test]
async fn get_token_mints_verifiable_token() {
    let server = TestServer::start().await;

    let response = server
        .get_token(&server.keys.actor, "identity=user-7")
        .await;

    let body = expect_token(response).await;
    assert_eq!(body.identity, "user-7");
    assert_times(&body, 600);
    let claims = verifier()
        .verify_at(&body.token, body.server_time)
        .expect("token verifies");
    assert_eq!(claims.identity, "user-7");
    assert_eq!(claims.grants, vec![chat(), video()]);
    server.stop().await;
}

#[tokio::test]
async fn token_equals_library_mint() {
    let server = TestServer::start().await;

    let response = server
        .post_token(&server.keys.actor, json!({"identity": "user-7"}))
        .await;

    let body = expect_token(response).await;
    let expected = AccessToken::builder()
        .account_sid(ACCOUNT_SID)
        .api_key_sid(API_KEY_SID)
        .api_secret(SECRET)
        .identity("user-7")
        .ttl_secs(600)
        .grant(ChatGrant::new().service_sid(CHAT_SERVICE_SID))
        .grant(VideoGrant::new())
        .build()
        .expect("reference token builds")
        .to_jwt_at(body.server_time)
        .expect("reference token mints");
    assert_eq!(body.token, expected, "same bytes as the library mints");
    server.stop().await;
}

#[tokio::test]
async fn token_fails_verification_with_other_secret() {
    let server = TestServer::start().await;
    let body = expect_token(server.post_token(&server.keys.backend, json!({})).await).await;

    let other = twilio_access_token::Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, common::WRONG_SECRET)
        .build()
        .expect("verifier builds");
    let error = other
        .verify_at(&body.token, body.server_time)
        .expect_err("another secret rejects the token");

    assert_eq!(
        error,
        VerifyError::BadSignature {
            api_key_sid: API_KEY_SID.to_owned()
        }
    );
    server.stop().await;
}

#[tokio::test]
async fn fixed_identity_key_gets_its_rule() {
    let server = TestServer::start().await;

    let backend = expect_token(server.post_token(&server.keys.backend, json!({})).await).await;
    let ops = expect_token(server.get_token(&server.keys.ops, "").await).await;

    assert_eq!(backend.identity, "backend-svc");
    assert_times(&backend, 3600);
    let claims = verifier()
        .verify_at(&backend.token, backend.server_time)
        .expect("backend token verifies");
    assert_eq!(
        claims.grants,
        vec![Grant::Sync(SyncGrant::new().service_sid(SYNC_SERVICE_SID))]
    );
    assert_eq!(ops.identity, "ops-lead");
    let claims = verifier()
        .verify_at(&ops.token, ops.server_time)
        .expect("ops token verifies");
    assert_eq!(
        claims.grants,
        vec![Grant::Voice(VoiceGrant::new().incoming_allow(true))],
        "the group rule applies"
    );
    server.stop().await;
}

#[tokio::test]
async fn empty_json_body_means_defaults() {
    let server = TestServer::start().await;

    let response = server
        .client
        .post(server.url("/token"))
        .bearer_auth(&server.keys.backend)
        .header("content-type", "application/json")
        .send()
        .await
        .expect("response");

    let body = expect_token(response).await;
    assert_eq!(body.identity, "backend-svc");
    assert_times(&body, 3600);
    server.stop().await;
}

#[tokio::test]
async fn grant_subset_issues_only_those() {
    let server = TestServer::start().await;

    let posted = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-7", "grants": ["video"]}),
        )
        .await;
    let got = server
        .get_token(&server.keys.actor, "identity=user-7&grants=video")
        .await;

    for body in [expect_token(posted).await, expect_token(got).await] {
        let claims = verifier()
            .verify_at(&body.token, body.server_time)
            .expect("token verifies");
        assert_eq!(claims.grants, vec![video()]);
    }
    server.stop().await;
}

#[tokio::test]
async fn grant_order_follows_request() {
    let server = TestServer::start().await;

    let response = server
        .get_token(
            &server.keys.actor,
            "identity=user-7&grants=video,%20chat,video",
        )
        .await;

    let body = expect_token(response).await;
    let claims = verifier()
        .verify_at(&body.token, body.server_time)
        .expect("token verifies");
    assert_eq!(claims.grants, vec![video(), chat()], "duplicates dropped");
    server.stop().await;
}

#[tokio::test]
async fn shorter_ttl_is_honoured() {
    let server = TestServer::start().await;

    for ttl in [1_u64, 3, 13, 120, 3599, 3600] {
        let response = server
            .post_token(
                &server.keys.actor,
                json!({"identity": "user-7", "ttl": ttl}),
            )
            .await;
        let body = expect_token(response).await;
        assert_times(&body, ttl);
        let claims = verifier()
            .verify_at(&body.token, body.server_time)
            .expect("token verifies");
        assert_eq!(claims.expires_at, body.server_time + ttl);
    }

    let response = server
        .get_token(&server.keys.actor, "identity=user-7&ttl=120")
        .await;
    assert_times(&expect_token(response).await, 120);
    server.stop().await;
}

#[tokio::test]
async fn ttl_above_max_is_forbidden() {
    let server = TestServer::start().await;

    let over = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-7", "ttl": 3601}),
        )
        .await;
    let zero = server
        .post_token(&server.keys.actor, json!({"identity": "user-7", "ttl": 0}))
        .await;
    let over_default = server
        .post_token(&server.keys.backend, json!({"ttl": 3601}))
        .await;
    let query = server
        .get_token(&server.keys.actor, "identity=user-7&ttl=86400")
        .await;

    let error = expect_error(over, 403, "ttl_not_allowed").await;
    assert!(error.message.contains("3601"), "{}", error.message);
    assert!(error.message.contains("3600"), "{}", error.message);
    expect_error(zero, 403, "ttl_not_allowed").await;
    expect_error(over_default, 403, "ttl_not_allowed").await;
    expect_error(query, 403, "ttl_not_allowed").await;
    server.stop().await;
}

#[tokio::test]
async fn grant_outside_policy_is_forbidden() {
    let server = TestServer::start().await;

    let voice = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-7", "grants": ["chat", "voice"]}),
        )
        .await;
    let sync = server.get_token(&server.keys.ops, "grants=sync").await;

    let error = expect_error(voice, 403, "grant_not_allowed").await;
    assert!(error.message.contains("voice"), "{}", error.message);
    expect_error(sync, 403, "grant_not_allowed").await;
    server.stop().await;
}

#[tokio::test]
async fn unknown_grant_is_bad_request() {
    let server = TestServer::start().await;

    let posted = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-7", "grants": ["fax"]}),
        )
        .await;
    let got = server
        .get_token(&server.keys.actor, "identity=user-7&grants=chat,fax")
        .await;

    for response in [posted, got] {
        let error = expect_error(response, 400, "unknown_grant").await;
        assert!(error.message.contains("\"fax\""), "{}", error.message);
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_json_field_is_named() {
    let server = TestServer::start().await;

    let response = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-7", "colour": "red"}),
        )
        .await;

    let error = expect_error(response, 400, "unknown_field").await;
    assert!(error.message.contains("colour"), "{}", error.message);
    server.stop().await;
}

#[tokio::test]
async fn unknown_query_field_is_named() {
    let server = TestServer::start().await;

    let response = server
        .get_token(&server.keys.actor, "identity=user-7&colour=red")
        .await;

    // The JSON route returns `unknown_field` for the same mistake; the query route returns
    // `invalid_query` with the parser's description, which names the field.
    let error = expect_error(response, 400, "invalid_query").await;
    assert!(error.message.contains("colour"), "{}", error.message);
    server.stop().await;
}

#[tokio::test]
async fn invalid_query_value_is_bad_request() {
    let server = TestServer::start().await;

    let response = server
        .get_token(&server.keys.actor, "identity=user-7&ttl=soon")
        .await;

    let error = expect_error(response, 400, "invalid_query").await;
    assert!(error.message.contains("ttl"), "{}", error.message);
    server.stop().await;
}

#[tokio::test]
async fn query_escape_not_utf8_rejected() {
    let server = TestServer::start().await;

    // %FF and %FE would both decode to U+FFFD, so two requests would name one identity.
    let response = server
        .get_token(&server.keys.actor, "identity=user-%FF")
        .await;

    let error = expect_error(response, 400, "invalid_query").await;
    assert!(error.message.contains("\"identity\""), "{}", error.message);
    assert!(error.message.contains("UTF-8"), "{}", error.message);
    server.stop().await;
}

#[tokio::test]
async fn query_malformed_escape_rejected() {
    let server = TestServer::start().await;

    for query in ["identity=user-%ZZ", "identity=user-%4", "identity=user-%+f"] {
        let response = server.get_token(&server.keys.actor, query).await;

        let error = expect_error(response, 400, "invalid_query").await;
        assert!(error.message.contains("%25"), "{query}: {}", error.message);
    }
    server.stop().await;
}

#[tokio::test]
async fn query_error_in_own_words() {
    let server = TestServer::start().await;

    let response = server
        .get_token(&server.keys.actor, "identity=user-7&identity=user-8")
        .await;

    let error = expect_error(response, 400, "invalid_query").await;
    assert!(
        error
            .message
            .starts_with("the query string is not valid: duplicate field `identity`"),
        "{}",
        error.message
    );
    server.stop().await;
}

#[tokio::test]
async fn requested_identity_checked_before_pattern() {
    let server = TestServer::start().await;

    let empty = server
        .post_token(&server.keys.actor, json!({"identity": ""}))
        .await;
    expect_error(empty, 400, "invalid_identity").await;

    let overlong = server
        .post_token(&server.keys.actor, json!({"identity": "x".repeat(3000)}))
        .await;
    let error = expect_error(overlong, 400, "invalid_identity").await;
    assert!(error.message.len() < 300, "{}", error.message);

    // A valid identity outside the pattern is echoed shortened.
    let outside = server
        .post_token(&server.keys.actor, json!({"identity": "y".repeat(250)}))
        .await;
    let error = expect_error(outside, 403, "identity_not_allowed").await;
    assert!(error.message.contains('…'), "{}", error.message);
    assert!(
        !error.message.contains(&"y".repeat(121)),
        "{}",
        error.message
    );
    server.stop().await;
}

#[tokio::test]
async fn room_matching_pattern_is_granted() {
    let server = TestServer::start().await;

    let posted = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-meet-7", "room": "standup-mon"}),
        )
        .await;
    let got = server
        .get_token(
            &server.keys.actor,
            "identity=user-meet-7&grants=video&room=standup-tue",
        )
        .await;

    let body = expect_token(posted).await;
    let claims = verifier()
        .verify_at(&body.token, body.server_time)
        .expect("token verifies");
    assert_eq!(
        claims.grants,
        vec![chat(), Grant::Video(VideoGrant::new().room("standup-mon"))]
    );
    let body = expect_token(got).await;
    let claims = verifier()
        .verify_at(&body.token, body.server_time)
        .expect("token verifies");
    assert_eq!(
        claims.grants,
        vec![Grant::Video(VideoGrant::new().room("standup-tue"))]
    );
    server.stop().await;
}

#[tokio::test]
async fn room_outside_pattern_is_forbidden() {
    let server = TestServer::start().await;

    let response = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-meet-7", "room": "board-meeting"}),
        )
        .await;
    let prefix_only = server
        .get_token(&server.keys.actor, "identity=user-meet-7&room=standup")
        .await;

    let error = expect_error(response, 403, "room_not_allowed").await;
    assert!(error.message.contains("board-meeting"), "{}", error.message);
    assert!(error.message.contains("standup-*"), "{}", error.message);
    expect_error(prefix_only, 403, "room_not_allowed").await;
    server.stop().await;
}

#[tokio::test]
async fn room_required_when_policy_limits_rooms() {
    let server = TestServer::start().await;

    let missing = server
        .post_token(&server.keys.actor, json!({"identity": "user-meet-7"}))
        .await;
    let empty = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-meet-7", "room": ""}),
        )
        .await;
    let chat_only = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-meet-7", "grants": ["chat"]}),
        )
        .await;

    expect_error(missing, 400, "room_required").await;
    expect_error(empty, 400, "invalid_room").await;
    assert_eq!(chat_only.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn empty_grant_list_is_bad_request() {
    let server = TestServer::start().await;

    let body = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-7", "grants": []}),
        )
        .await;
    let query = server
        .get_token(&server.keys.actor, "identity=user-7&grants=")
        .await;

    expect_error(body, 400, "no_grants").await;
    expect_error(query, 400, "no_grants").await;
    server.stop().await;
}

#[tokio::test]
async fn room_without_video_is_bad_request() {
    let server = TestServer::start().await;

    let response = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-meet-7", "grants": ["chat"], "room": "standup-mon"}),
        )
        .await;

    expect_error(response, 400, "room_without_video").await;
    server.stop().await;
}

#[tokio::test]
async fn device_id_needs_app_name_and_chat() {
    let server = TestServer::start().await;

    let without_app_name = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-7", "device_id": "phone-1"}),
        )
        .await;
    let without_chat = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-7", "grants": ["video"], "device_id": "phone-1"}),
        )
        .await;

    expect_error(without_app_name, 400, "device_id_not_used").await;
    expect_error(without_chat, 400, "device_without_chat").await;
    server.stop().await;
}

#[tokio::test]
async fn fixed_identity_key_cannot_choose_identity() {
    let server = TestServer::start().await;

    let posted = server
        .post_token(&server.keys.backend, json!({"identity": "user-7"}))
        .await;
    let got = server
        .get_token(&server.keys.backend, "identity=backend-svc")
        .await;

    let error = expect_error(posted, 403, "identity_not_allowed").await;
    assert!(
        error.message.contains("remove identity"),
        "{}",
        error.message
    );
    expect_error(got, 403, "identity_not_allowed").await;
    server.stop().await;
}

#[tokio::test]
async fn acting_key_limited_to_pattern() {
    let server = TestServer::start().await;

    let allowed = server
        .post_token(&server.keys.actor, json!({"identity": "user-42"}))
        .await;
    let admin = server
        .post_token(&server.keys.actor, json!({"identity": "admin"}))
        .await;
    let query_admin = server.get_token(&server.keys.actor, "identity=admin").await;
    let missing = server.post_token(&server.keys.actor, json!({})).await;

    assert_eq!(expect_token(allowed).await.identity, "user-42");
    let error = expect_error(admin, 403, "identity_not_allowed").await;
    assert!(error.message.contains("user-*"), "{}", error.message);
    expect_error(query_admin, 403, "identity_not_allowed").await;
    expect_error(missing, 400, "identity_required").await;
    server.stop().await;
}

#[tokio::test]
async fn invalid_identity_is_bad_request() {
    let server = TestServer::start().await;

    let long = format!("user-{}", "x".repeat(300));

    for identity in [long.as_str(), "user-\n7"] {
        let response = server
            .post_token(&server.keys.actor, json!({"identity": identity}))
            .await;
        expect_error(response, 400, "invalid_identity").await;
    }
    server.stop().await;
}

#[tokio::test]
async fn missing_credentials_are_unauthorized() {
    let server = TestServer::start().await;

    let posted = server
        .client
        .post(server.url("/token"))
        .json(&json!({}))
        .send()
        .await
        .expect("response");
    let got = server
        .client
        .get(server.url("/token"))
        .send()
        .await
        .expect("response");
    let other_scheme = server
        .client
        .get(server.url("/token"))
        .basic_auth("backend", Some("password"))
        .send()
        .await
        .expect("response");
    let foreign_bearer = server.get_token("eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "").await;

    for response in [posted, got, other_scheme, foreign_bearer] {
        let error = expect_error(response, 401, "missing_credentials").await;
        assert_eq!(
            header(&error.headers, "www-authenticate"),
            "Bearer realm=\"twilio-token\""
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn wrong_api_key_is_unauthorized() {
    let server = TestServer::start().await;
    let (unknown, _) = twilio_token_server::auth::api_key::generate_key();

    let posted = server.post_token(&unknown, json!({})).await;
    let got = server.get_token("ttk_short", "").await;

    for response in [posted, got] {
        let error = expect_error(response, 401, "invalid_api_key").await;
        assert_eq!(
            header(&error.headers, "www-authenticate"),
            "Bearer realm=\"twilio-token\""
        );
        assert!(!error.message.contains("ttk_"), "{}", error.message);
    }
    server.stop().await;
}

#[tokio::test]
async fn identity_without_rule_is_forbidden() {
    let server = TestServer::start().await;

    let response = server.post_token(&server.keys.stranger, json!({})).await;

    let error = expect_error(response, 403, "no_matching_rule").await;
    assert!(error.message.contains("stranger"), "{}", error.message);
    server.stop().await;
}

#[tokio::test]
async fn unknown_route_is_not_found() {
    let server = TestServer::start().await;

    let plain = server
        .client
        .get(server.url("/nope"))
        .send()
        .await
        .expect("response");
    let authenticated = server
        .client
        .post(server.url("/tokens"))
        .bearer_auth(&server.keys.backend)
        .json(&json!({}))
        .send()
        .await
        .expect("response");

    expect_error(plain, 404, "not_found").await;
    expect_error(authenticated, 404, "not_found").await;
    server.stop().await;
}

#[tokio::test]
async fn wrong_method_is_not_allowed() {
    let server = TestServer::start().await;

    let delete = server
        .client
        .delete(server.url("/token"))
        .bearer_auth(&server.keys.backend)
        .send()
        .await
        .expect("response");
    let post_health = server
        .client
        .post(server.url("/healthz"))
        .send()
        .await
        .expect("response");

    expect_error(delete, 405, "method_not_allowed").await;
    expect_error(post_health, 405, "method_not_allowed").await;
    server.stop().await;
}

#[tokio::test]
async fn wrong_method_lists_allowed_methods() {
    let server = TestServer::start().await;

    let response = server
        .client
        .delete(server.url("/token"))
        .send()
        .await
        .expect("response");

    let error = expect_error(response, 405, "method_not_allowed").await;
    assert_eq!(header(&error.headers, "allow"), "GET, POST");
    server.stop().await;
}

#[tokio::test]
async fn two_authorization_headers_rejected() {
    let server = TestServer::start().await;
    let mut headers = reqwest::header::HeaderMap::new();
    for key in [&server.keys.backend, &"ttk_wrong".to_owned()] {
        let value = format!("Bearer {key}").parse().expect("header value");
        headers.append(reqwest::header::AUTHORIZATION, value);
    }

    let response = server
        .client
        .post(server.url("/token"))
        .headers(headers)
        .json(&json!({}))
        .send()
        .await
        .expect("response");

    expect_error(response, 400, "duplicate_authorization").await;
    server.stop().await;
}

#[tokio::test]
async fn head_token_mints_nothing() {
    let server = TestServer::start().await;

    let response = server
        .client
        .head(server.url("/token"))
        .bearer_auth(&server.keys.backend)
        .send()
        .await
        .expect("response");

    // A response to HEAD has no body, so only the status and headers can be checked.
    assert_eq!(response.status(), 405);
    assert_eq!(header(response.headers(), "allow"), "GET, POST");
    server.stop().await;
}

#[tokio::test]
async fn body_over_limit_is_rejected() {
    let server = TestServer::start().await;
    let padding = "x".repeat(20 * 1024);

    let response = server
        .post_token(
            &server.keys.actor,
            json!({"identity": "user-7", "device_id": padding}),
        )
        .await;

    let error = expect_error(response, 413, "payload_too_large").await;
    assert!(error.message.contains("16384"), "{}", error.message);
    server.stop().await;
}

#[tokio::test]
async fn body_at_limit_is_read() {
    let server = TestServer::start().await;
    // 16384 bytes in all: the JSON object padded with spaces.
    let mut body = String::from("{}");
    body.insert_str(1, &" ".repeat(16 * 1024 - 2));

    let response = server
        .client
        .post(server.url("/token"))
        .bearer_auth(&server.keys.backend)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("response");

    expect_token(response).await;
    server.stop().await;
}

#[tokio::test]
async fn non_json_body_is_unsupported() {
    let server = TestServer::start().await;

    let text = server
        .client
        .post(server.url("/token"))
        .bearer_auth(&server.keys.backend)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("response");
    let form = server
        .client
        .post(server.url("/token"))
        .bearer_auth(&server.keys.backend)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("ttl=60")
        .send()
        .await
        .expect("response");
    let none = server
        .client
        .post(server.url("/token"))
        .bearer_auth(&server.keys.backend)
        .body("{}")
        .send()
        .await
        .expect("response");
    let with_charset = server
        .client
        .post(server.url("/token"))
        .bearer_auth(&server.keys.backend)
        .header("content-type", "Application/JSON; charset=utf-8")
        .body("{}")
        .send()
        .await
        .expect("response");

    for response in [text, form, none] {
        expect_error(response, 415, "unsupported_media_type").await;
    }
    expect_token(with_charset).await;
    server.stop().await;
}

#[tokio::test]
async fn malformed_json_is_bad_request() {
    let server = TestServer::start().await;
    const INVALID: &str = "the request body is not valid";
    const NOT_OBJECT: &str = "the request body must be a JSON object, such as {}";
    let cases = [
        ("{\"identity\": \"user-7\"", INVALID),
        ("{\"ttl\": \"soon\"}", INVALID),
        ("{\"ttl\": -5}", INVALID),
        ("{\"grants\": \"chat\"}", INVALID),
        ("[]", NOT_OBJECT),
        (" \n[{}]", NOT_OBJECT),
        ("\"text\"", NOT_OBJECT),
        ("not json", NOT_OBJECT),
    ];

    for (case, expected) in cases {
        let response = server
            .client
            .post(server.url("/token"))
            .bearer_auth(&server.keys.actor)
            .header("content-type", "application/json")
            .body(case)
            .send()
            .await
            .expect("response");
        let error = expect_error(response, 400, "invalid_body").await;
        assert!(
            error.message.starts_with(expected),
            "{case}: {}",
            error.message
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn health_routes_return_ok() {
    let server = TestServer::start().await;

    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let response = server
            .client
            .get(server.url(path))
            .send()
            .await
            .expect("response");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(
            header(response.headers(), "content-type"),
            "application/json"
        );
        assert!(response.headers().contains_key("x-request-id"), "{path}");
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(body, json!({"status": status}), "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn request_ids_are_unique_or_echoed() {
    let server = TestServer::start().await;

    let first = server.post_token(&server.keys.backend, json!({})).await;
    let second = server.post_token(&server.keys.backend, json!({})).await;
    let chosen = server
        .client
        .get(server.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .expect("response");
    let hostile = server
        .client
        .get(server.url("/healthz"))
        .header("x-request-id", "1 path=/admin status=200")
        .send()
        .await
        .expect("response");

    let first_id = header(first.headers(), "x-request-id");
    let second_id = header(second.headers(), "x-request-id");
    assert!(!first_id.is_empty());
    assert_ne!(first_id, second_id);
    assert_eq!(header(chosen.headers(), "x-request-id"), "trace-abc-123");
    let replaced = header(hostile.headers(), "x-request-id");
    assert!(!replaced.contains(' '), "{replaced}");
    server.stop().await;
}

#[tokio::test]
async fn cors_preflight_allows_configured_origin() {
    let server = TestServer::start().await;

    let response = server
        .client
        .request(reqwest::Method::OPTIONS, server.url("/token"))
        .header("origin", ALLOWED_ORIGIN)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("response");

    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers();
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        ALLOWED_ORIGIN
    );
    assert_eq!(header(headers, "access-control-allow-credentials"), "true");
    let methods = header(headers, "access-control-allow-methods");
    assert!(methods.contains("POST"), "{methods}");
    let allowed_headers = header(headers, "access-control-allow-headers").to_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    assert!(
        allowed_headers.contains("content-type"),
        "{allowed_headers}"
    );
    assert!(
        header(headers, "vary").to_lowercase().contains("origin"),
        "Vary names Origin so caches keep one response per origin"
    );
    server.stop().await;
}

#[tokio::test]
async fn cors_preflight_ignores_other_origin() {
    let server = TestServer::start().await;

    for origin in [
        "https://evil.example.com",
        "https://app.example.com.evil.test",
        "http://app.example.com",
        "null",
    ] {
        let response = server
            .client
            .request(reqwest::Method::OPTIONS, server.url("/token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .expect("response");

        let headers = response.headers();
        assert!(
            !headers.contains_key("access-control-allow-origin"),
            "{origin} got {:?}",
            headers.get("access-control-allow-origin")
        );
        // tower-http sends `access-control-allow-credentials: true` to every origin; without
        // an allow-origin header browsers still withhold the response.
    }
    server.stop().await;
}

#[tokio::test]
async fn cors_simple_request_echoes_origin() {
    let server = TestServer::start().await;

    let allowed = server
        .client
        .post(server.url("/token"))
        .header("origin", ALLOWED_ORIGIN)
        .bearer_auth(&server.keys.backend)
        .json(&json!({}))
        .send()
        .await
        .expect("response");
    let other = server
        .client
        .post(server.url("/token"))
        .header("origin", "https://evil.example.com")
        .bearer_auth(&server.keys.backend)
        .json(&json!({}))
        .send()
        .await
        .expect("response");
    let refused = server
        .client
        .post(server.url("/token"))
        .header("origin", ALLOWED_ORIGIN)
        .json(&json!({}))
        .send()
        .await
        .expect("response");

    assert_eq!(
        header(allowed.headers(), "access-control-allow-origin"),
        ALLOWED_ORIGIN
    );
    assert_eq!(
        header(allowed.headers(), "access-control-allow-credentials"),
        "true"
    );
    expect_token(allowed).await;
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    assert_eq!(
        header(refused.headers(), "access-control-allow-origin"),
        ALLOWED_ORIGIN,
        "error responses carry CORS headers, so the browser can read the error"
    );
    expect_error(refused, 401, "missing_credentials").await;
    server.stop().await;
}

#[tokio::test]
async fn cors_never_allows_wildcard() {
    let server = TestServer::start().await;

    for origin in [ALLOWED_ORIGIN, "https://evil.example.com", "*"] {
        for method in [reqwest::Method::OPTIONS, reqwest::Method::GET] {
            let response = server
                .client
                .request(method.clone(), server.url("/token"))
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .send()
                .await
                .expect("response");
            for name in [
                "access-control-allow-origin",
                "access-control-allow-headers",
                "access-control-allow-methods",
            ] {
                assert_ne!(
                    header(response.headers(), name),
                    "*",
                    "{method} from {origin}: {name}"
                );
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn cors_absent_without_allowed_origins() {
    let keys = common::GeneratedKeys::new();
    let state = common::state_from(&common::config_text(&keys, ""));
    let server = TestServer::start_state(keys.keys, state).await;

    let response = server
        .client
        .request(reqwest::Method::OPTIONS, server.url("/token"))
        .header("origin", ALLOWED_ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("response");

    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    server.stop().await;
}

#[tokio::test]
async fn server_stops_on_shutdown_signal() {
    let server = TestServer::start().await;
    let url = server.url("/healthz");
    let client = server.client.clone();

    server.stop().await;

    let result = client.get(url).send().await;
    assert!(result.is_err(), "nothing listens after shutdown");
}

/// Opens a raw connection and sends a `POST /token` whose body never arrives in full.
async fn send_stalled_post(server: &TestServer) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;

    let address = server.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        server.keys.backend
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream
}

#[tokio::test]
async fn stalled_body_gets_408_json_error() {
    use tokio::io::AsyncReadExt as _;

    let keys = common::GeneratedKeys::new();
    let state = common::state_from(&common::config_text(&keys, "request_timeout_secs = 1"));
    let server = TestServer::start_state(keys.keys, state).await;
    let mut stream = send_stalled_post(&server).await;

    let mut reply = vec![0; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut reply))
        .await
        .expect("a response within 5 seconds")
        .expect("read");
    let reply = String::from_utf8_lossy(&reply[..read]).to_lowercase();

    let (head, body) = reply
        .split_once("\r\n\r\n")
        .expect("a complete response head");
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    let body: Value = serde_json::from_str(body).expect("a JSON error body");
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    server.stop().await;
}
