//! What the server logs at every level, TRACE included, contains no secret: not the Twilio API
//! secret, not a token it returned, not an API key, not an `Authorization` header. The login
//! providers are exercised too: OpenID Connect tokens from a real provider (and its client
//! secret), session cookies forwarded to an app, and proxy headers from an untrusted address.
//!
//! This binary installs a global subscriber, so it contains a single test: every request the test
//! sends, and any other test's, would land in the same buffer.

mod common;
#[path = "common/oidc_provider.rs"]
mod oidc_provider;

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use common::{ALLOWED_ORIGIN, SECRET, TestServer};
use serde_json::{Value, json};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

/// A writer that appends every log line to a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn buffer(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer()).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs a TRACE subscriber for the whole process that writes spans (with their fields, on
/// open and close) and events into `capture`, and forwards `log` records to it.
fn install(capture: &Capture) {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(capture.clone())
        .try_init()
        .expect("no other subscriber is installed in this binary");
}

/// Returns the token of a successful token response.
async fn token_of(response: reqwest::Response) -> Option<String> {
    let body: Value = response.json().await.ok()?;
    body["token"].as_str().map(str::to_owned)
}

/// Sends one request of every outcome and returns the secrets the client handled: tokens
/// received and `Authorization` values sent.
async fn exercise(server: &TestServer) -> Vec<String> {
    let keys = &server.keys;
    let (unknown_key, _) = twilio_token_server::auth::api_key::generate_key();
    let mut seen = Vec::new();

    let posts = [
        (&keys.actor, json!({"identity": "user-7"})),
        (
            &keys.actor,
            json!({"identity": "user-meet-7", "room": "standup-1"}),
        ),
        (&keys.backend, json!({})),
        (&keys.ops, json!({})),
        (&keys.actor, json!({"identity": "user-7", "ttl": 99999})),
        (
            &keys.actor,
            json!({"identity": "user-7", "grants": ["voice"]}),
        ),
        (
            &keys.actor,
            json!({"identity": "user-7", "grants": ["fax"]}),
        ),
        (&keys.actor, json!({"identity": "user-7", "colour": "red"})),
        (&keys.actor, json!({"identity": "user-7", "room": "board"})),
        (&keys.actor, json!({"identity": "admin"})),
        (&keys.actor, json!({})),
        (&keys.backend, json!({"identity": "user-7"})),
        (&keys.stranger, json!({})),
        (&unknown_key, json!({})),
    ];
    for (key, body) in posts {
        let response = server.post_token(key, body).await;
        seen.push(format!("Bearer {key}"));
        seen.extend(token_of(response).await);
    }

    let queries = [
        (&keys.actor, "identity=user-9&grants=chat"),
        (&keys.actor, "identity=user-9&colour=red"),
        (&keys.backend, "ttl=soon"),
    ];
    for (key, query) in queries {
        let response = server.get_token(key, query).await;
        seen.extend(token_of(response).await);
    }

    let client = &server.client;
    let token_url = server.url("/token");
    let other_requests = [
        client.post(&token_url).json(&json!({})),
        client.get(&token_url).basic_auth("backend", Some(SECRET)),
        client.get(&token_url).bearer_auth("ttk_not-a-real-key"),
        client
            .post(&token_url)
            .bearer_auth(&keys.actor)
            .header("content-type", "text/plain")
            .body("{}"),
        client
            .post(&token_url)
            .bearer_auth(&keys.actor)
            .header("content-type", "application/json")
            .body("{\"identity\": "),
        client
            .post(&token_url)
            .bearer_auth(&keys.actor)
            .json(&json!({"identity": "user-7", "device_id": "x".repeat(20_000)})),
        client.delete(&token_url).bearer_auth(&keys.actor),
        client.get(server.url("/nope")).bearer_auth(&keys.actor),
        client
            .request(reqwest::Method::OPTIONS, &token_url)
            .header("origin", ALLOWED_ORIGIN)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization"),
        client.get(server.url("/healthz")),
        client.get(server.url("/readyz")),
        client.get(server.url("/openapi.json")),
    ];
    for request in other_requests {
        request.send().await.expect("response");
    }
    seen.push("ttk_not-a-real-key".to_owned());
    seen.push(unknown_key);
    seen
}

/// A session cookie the forward provider sends to the app. Distinctive, for the log search.
const SESSION_COOKIE: &str = "app_session=cookie-value-DoNotLog-777";
/// A spoofed proxy header value sent from an untrusted address.
const SPOOFED_USER: &str = "spoofed-user-DoNotLog";

/// Starts an app whose who-am-I endpoint knows [`SESSION_COOKIE`], and returns its URL.
async fn start_app() -> String {
    async fn me(headers: axum::http::HeaderMap) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        let cookie = headers.get("cookie").and_then(|value| value.to_str().ok());
        if cookie == Some(SESSION_COOKIE) {
            axum::Json(json!({"id": "user-42"})).into_response()
        } else {
            axum::http::StatusCode::UNAUTHORIZED.into_response()
        }
    }
    let router = axum::Router::new().route("/me", axum::routing::get(me));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}/me")
}

/// Runs the oidc, forward and trusted_header providers through success and failure, and
/// returns the secrets the client handled.
async fn exercise_login_providers() -> Vec<String> {
    use oidc_provider::{AUDIENCE, CLIENT_SECRET, OidcServer, standard_clients};

    let mut idp = OidcServer::start(standard_clients());
    let app_url = start_app().await;
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[auth]
order = ["oidc", "forward", "trusted_header"]

[auth.oidc]
jwks_refresh_interval_secs = 1
verified_cache_secs = 0

[[auth.oidc.issuers]]
issuer = "{issuer}"
audiences = ["{AUDIENCE}"]

[auth.forward]
url = "{app_url}"

[auth.trusted_header]
trusted_proxies = ["127.0.0.1/32"]

[[profiles]]
name = "default"
account_sid = "{account}"
chat_service_sid = "{chat}"

[[profiles.api_keys]]
sid = "{key_sid}"
secret_env = "{secret_env}"

[[policy.rules]]
identities = ["*"]
[policy.rules.grants.chat]
"#,
        issuer = idp.issuer,
        account = common::ACCOUNT_SID,
        chat = common::CHAT_SERVICE_SID,
        key_sid = common::API_KEY_SID,
        secret_env = common::SECRET_ENV,
    );
    let keys = common::GeneratedKeys::new().keys;
    let server = TestServer::start_state(keys, common::state_from(&text)).await;
    let client = &server.client;
    let url = server.url("/token");
    let mut seen = vec![CLIENT_SECRET.to_owned(), SESSION_COOKIE.to_owned()];

    let good = idp.token("svc-rs256", AUDIENCE).await;
    let wrong_audience = idp.token("svc-rs256", "urn:other").await;
    seen.push(good.clone());
    seen.push(wrong_audience.clone());
    for bearer in [&good, &wrong_audience] {
        let response = server.post_token(bearer, json!({})).await;
        seen.extend(token_of(response).await);
    }
    // The provider goes away; an unknown kid makes the server try to refresh and fail.
    idp.stop();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut parts = good.splitn(2, '.');
    let _ = parts.next();
    let rest = parts.next().expect("payload and signature");
    let header = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        r#"{"alg":"RS256","kid":"rotated-while-down"}"#,
    );
    let unknown_kid = format!("{header}.{rest}");
    seen.push(unknown_kid.clone());
    let response = server.post_token(&unknown_kid, json!({})).await;
    assert_eq!(response.status(), 401);
    let response = server.post_token(&good, json!({})).await;
    seen.extend(token_of(response).await);

    for cookie in [SESSION_COOKIE, "app_session=unknown-DoNotLog-888"] {
        seen.push(cookie.to_owned());
        let response = client
            .post(&url)
            .header("cookie", cookie)
            .json(&json!({}))
            .send()
            .await
            .expect("POST with cookie");
        seen.extend(token_of(response).await);
    }

    let outsider = reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    outsider
        .post(&url)
        .header("x-forwarded-user", SPOOFED_USER)
        .json(&json!({}))
        .send()
        .await
        .expect("POST from 127.0.0.2");
    seen.push(SPOOFED_USER.to_owned());
    server.stop().await;
    seen
}

#[tokio::test]
async fn logs_hold_no_secret() {
    let capture = Capture::default();
    install(&capture);
    let server = TestServer::start().await;
    let keys = server.keys.clone();

    let mut seen = exercise(&server).await;
    server.stop().await;
    let login_seen = exercise_login_providers().await;
    let tokens_from_login = login_seen
        .iter()
        .filter(|value| value.starts_with("eyJ"))
        .count();
    seen.extend(login_seen);

    let logs = capture.text();
    assert!(
        logs.contains("token issued"),
        "the capture contains the per-request DEBUG events:\n{logs}"
    );
    assert!(logs.contains("token request refused"), "refusals logged");
    assert!(logs.contains("TRACE"), "TRACE events are captured too");
    let tokens = seen.iter().filter(|value| value.starts_with("eyJ")).count();
    // Five API key requests and two OIDC ones got an Access Token, one forward request too; the
    // client also handled three OIDC bearer tokens.
    assert_eq!(
        tokens - tokens_from_login,
        5,
        "five API key requests got a token"
    );
    assert_eq!(
        tokens_from_login, 6,
        "three OIDC bearers and three minted tokens"
    );
    assert!(
        logs.contains("could not refresh the issuer's signing keys; the cached keys stay in use"),
        "the failed JWKS refresh is logged as a warning"
    );
    assert!(
        logs.contains("suspicious request: proxy identity headers from an address outside"),
        "headers from an untrusted address are logged"
    );
    assert!(!logs.contains(SECRET), "the Twilio API secret is logged");
    for key in [&keys.backend, &keys.actor, &keys.ops, &keys.stranger] {
        assert!(!logs.contains(key.as_str()), "an API key is logged");
    }
    assert!(
        !logs.contains("ttk_"),
        "something like an API key is logged"
    );
    assert!(
        !logs.contains("Bearer "),
        "an Authorization header is logged"
    );
    assert!(
        !logs.contains("Basic "),
        "an Authorization header is logged"
    );
    for value in &seen {
        assert!(
            !logs.contains(value.as_str()),
            "a token or Authorization value the client handled is logged: {}…",
            &value[..12]
        );
    }
    // Every JWT starts with the base64url of `{"`, so no token of any kind is logged.
    assert!(!logs.contains("eyJ"), "something like a JWT is logged");
}
