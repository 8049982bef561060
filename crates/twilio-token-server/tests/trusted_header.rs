//! The `trusted_header` provider from an allowed and a disallowed source address. The server
//! listens on 127.0.0.1; one client connects from 127.0.0.1 (a trusted proxy), the other binds
//! 127.0.0.2 as its local address, which Linux routes over loopback too.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{
    ACCOUNT_SID, API_KEY_SID, CHAT_SERVICE_SID, SECRET_ENV, TestServer, expect_error, state_from,
    verifier,
};
use serde_json::{Value, json};
use twilio_token_server::auth::api_key::generate_key;

fn config(api_key_hash: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[auth]
order = ["trusted_header", "api_key"]

[auth.trusted_header]
trusted_proxies = ["127.0.0.1/32", "::1"]
identity_header = "X-Forwarded-User"
groups_header = "X-Forwarded-Groups"

[[auth.api_keys]]
name = "backend"
hash = "{api_key_hash}"
identity = "backend-svc"

[[profiles]]
name = "default"
account_sid = "{ACCOUNT_SID}"
chat_service_sid = "{CHAT_SERVICE_SID}"

[[profiles.api_keys]]
sid = "{API_KEY_SID}"
secret_env = "{SECRET_ENV}"

[[policy.rules]]
groups = ["support"]
[policy.rules.grants.chat]

[[policy.rules]]
identities = ["*"]
[policy.rules.grants.video]
"#
    )
}

fn client_from(address: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(address))
        .build()
        .expect("client builds")
}

async fn identity_of(response: reqwest::Response) -> (String, Value) {
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token");
    verifier().verify(token).expect("the minted token verifies");
    let payload = token.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64"),
    )
    .expect("claims");
    (
        claims["grants"]["identity"]
            .as_str()
            .expect("identity")
            .to_owned(),
        claims["grants"].clone(),
    )
}

#[tokio::test]
async fn headers_count_only_from_trusted_proxies() {
    let (api_key, hash) = generate_key();
    let keys = common::GeneratedKeys::new().keys;
    let server = TestServer::start_state(keys, state_from(&config(&hash))).await;
    let url = server.url("/token");

    // From 127.0.0.1, a trusted proxy address.
    let proxy = client_from(Ipv4Addr::new(127, 0, 0, 1));
    let response = proxy
        .post(&url)
        .header("x-forwarded-user", "alice@example.com")
        .header("x-forwarded-groups", "staff, support")
        .json(&json!({}))
        .send()
        .await
        .expect("POST");
    let (identity, grants) = identity_of(response).await;
    assert_eq!(identity, "alice@example.com");
    assert!(
        grants.get("chat").is_some(),
        "group support matched: {grants}"
    );

    // From 127.0.0.2 the same headers are ignored: no other credentials means 401.
    let outsider = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let response = outsider
        .post(&url)
        .header("x-forwarded-user", "alice@example.com")
        .header("x-forwarded-groups", "support")
        .json(&json!({}))
        .send()
        .await
        .expect("POST from 127.0.0.2");
    let error = expect_error(response, 401, "missing_credentials").await;
    assert_eq!(
        error.message,
        "no credentials were found: go through the authenticating proxy, or send an API key as \
         Authorization: Bearer"
    );

    // From 127.0.0.2 with an API key as well: the key decides, the headers change nothing.
    let response = outsider
        .post(&url)
        .bearer_auth(&api_key)
        .header("x-forwarded-user", "alice@example.com")
        .header("x-forwarded-groups", "support")
        .json(&json!({}))
        .send()
        .await
        .expect("POST with key");
    let (identity, grants) = identity_of(response).await;
    assert_eq!(identity, "backend-svc");
    assert!(
        grants.get("chat").is_none(),
        "no group from the ignored header: {grants}"
    );

    // From the trusted proxy, a repeated identity header is refused.
    let response = proxy
        .post(&url)
        .header("x-forwarded-user", "alice")
        .header("x-forwarded-user", "mallory")
        .json(&json!({}))
        .send()
        .await
        .expect("POST");
    let reply = expect_error(response, 401, "invalid_proxy_header").await;
    assert!(
        reply.message.contains("appears more than once"),
        "{}",
        reply.message
    );
    server.stop().await;
}

#[tokio::test]
async fn proxy_headers_once_each_in_utf8() {
    let (_, hash) = generate_key();
    let keys = common::GeneratedKeys::new().keys;
    let server = TestServer::start_state(keys, state_from(&config(&hash))).await;
    let url = server.url("/token");
    let proxy = client_from(Ipv4Addr::new(127, 0, 0, 1));
    let opaque = reqwest::header::HeaderValue::from_bytes(b"\xffmallory").expect("opaque value");

    // A client's group survives a proxy that appends its own header instead of replacing it.
    let repeated_groups = proxy
        .post(&url)
        .header("x-forwarded-user", "mallory")
        .header("x-forwarded-groups", "admins")
        .header("x-forwarded-groups", "support")
        .json(&json!({}))
        .send()
        .await
        .expect("POST");
    let reply = expect_error(repeated_groups, 401, "invalid_proxy_header").await;
    assert!(
        reply
            .message
            .contains("x-forwarded-groups appears more than once"),
        "{}",
        reply.message
    );

    // A second copy that is not text still counts.
    let repeated_opaque = proxy
        .post(&url)
        .header("x-forwarded-user", "alice")
        .header("x-forwarded-user", opaque.clone())
        .json(&json!({}))
        .send()
        .await
        .expect("POST");
    let reply = expect_error(repeated_opaque, 401, "invalid_proxy_header").await;
    assert!(
        reply.message.contains("appears more than once"),
        "{}",
        reply.message
    );

    let not_utf8 = proxy
        .post(&url)
        .header("x-forwarded-user", opaque)
        .json(&json!({}))
        .send()
        .await
        .expect("POST");
    let reply = expect_error(not_utf8, 401, "invalid_proxy_header").await;
    assert!(reply.message.contains("not UTF-8"), "{}", reply.message);

    // UTF-8 identities are allowed, as the identity rules allow them.
    let utf8 = proxy
        .post(&url)
        .header(
            "x-forwarded-user",
            reqwest::header::HeaderValue::from_bytes("josé".as_bytes()).expect("value"),
        )
        .header("x-forwarded-groups", "support")
        .json(&json!({}))
        .send()
        .await
        .expect("POST");
    let (identity, _) = identity_of(utf8).await;
    assert_eq!(identity, "josé");
    server.stop().await;
}

#[tokio::test]
async fn cross_site_proxy_request_rejected() {
    let (_, hash) = generate_key();
    let keys = common::GeneratedKeys::new().keys;
    let server = TestServer::start_state(keys, state_from(&config(&hash))).await;
    let proxy = client_from(Ipv4Addr::new(127, 0, 0, 1));

    let response = proxy
        .post(server.url("/token"))
        .header("x-forwarded-user", "alice")
        .header("x-forwarded-groups", "support")
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .expect("POST");

    let error = expect_error(response, 403, "csrf_rejected").await;
    assert!(
        error.message.contains("the proxy's sign-in"),
        "{}",
        error.message
    );
    server.stop().await;
}
