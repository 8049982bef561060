//! The `forward` provider against a small real app on loopback: an axum app with a
//! password-less session-cookie login and a "who am I" endpoint that counts its calls, can be
//! made slow, and can be made to fail.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{
    ACCOUNT_SID, API_KEY_SID, CHAT_SERVICE_SID, SECRET_ENV, TestServer, expect_error, state_from,
    verifier,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The app's state: sessions by cookie value, and knobs the tests turn.
#[derive(Default)]
struct AppData {
    sessions: Mutex<HashMap<String, (String, Vec<String>)>>,
    me_calls: AtomicU64,
    delay_ms: AtomicU64,
    /// When not zero, `/me` answers with this status.
    fail_status: AtomicU16,
    /// Header names of the last `/me` request.
    last_headers: Mutex<Vec<String>>,
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    user: String,
    #[serde(default)]
    groups: String,
}

async fn login(State(app): State<Arc<AppData>>, Query(query): Query<LoginQuery>) -> Response {
    let session = format!("s-{}-{}", query.user, rand_suffix());
    let groups = query
        .groups
        .split(',')
        .filter(|group| !group.is_empty())
        .map(str::to_owned)
        .collect();
    app.sessions
        .lock()
        .expect("lock")
        .insert(session.clone(), (query.user, groups));
    (
        [(
            header::SET_COOKIE,
            format!("app_session={session}; HttpOnly; Path=/"),
        )],
        "signed in",
    )
        .into_response()
}

fn rand_suffix() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

async fn me(State(app): State<Arc<AppData>>, headers: HeaderMap) -> Response {
    app.me_calls.fetch_add(1, Ordering::SeqCst);
    *app.last_headers.lock().expect("lock") = headers
        .keys()
        .map(|name| name.as_str().to_owned())
        .collect();
    let delay = app.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let fail = app.fail_status.load(Ordering::SeqCst);
    if fail != 0 {
        return StatusCode::from_u16(fail).expect("status").into_response();
    }
    let session = headers
        .get(header::COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(|cookies| {
            cookies
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(name, _)| *name == "app_session")
                .map(|(_, value)| value.to_owned())
        });
    let sessions = app.sessions.lock().expect("lock");
    match session.and_then(|session| sessions.get(&session).cloned()) {
        Some((user, groups)) => axum::Json(json!({
            "user": {"id": user, "name": "Test User"},
            "groups": groups,
        }))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// Starts the app on 127.0.0.1 and returns its base URL and state.
async fn start_app() -> (String, Arc<AppData>) {
    let data = Arc::new(AppData::default());
    let router = Router::new()
        .route("/login", post(login))
        .route("/api/me", get(me))
        .with_state(Arc::clone(&data));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{address}"), data)
}

fn config(url: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[auth]
order = ["forward"]

[auth.forward]
url = "{url}"
timeout_ms = 300
identity_field = "user.id"
groups_field = "groups"
identity_prefix = "app:"
cache_secs = 30

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
identities = ["app:*"]
[policy.rules.grants.video]
"#
    )
}

async fn start_server(url: &str) -> TestServer {
    let keys = common::GeneratedKeys::new().keys;
    TestServer::start_state(keys, state_from(&config(url))).await
}

/// Signs in at the app and returns the `Cookie` header value.
async fn sign_in(app_url: &str, user: &str, groups: &str) -> String {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("{app_url}/login?user={user}&groups={groups}"))
        .send()
        .await
        .expect("login");
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .expect("the app sets a cookie")
        .to_str()
        .expect("ASCII")
        .to_owned();
    set_cookie.split(';').next().expect("name=value").to_owned()
}

async fn post_with_cookie(server: &TestServer, cookie: &str) -> reqwest::Response {
    server
        .client
        .post(server.url("/token"))
        .header("cookie", cookie)
        .header("x-unrelated-secret", "must-not-be-forwarded")
        .json(&json!({}))
        .send()
        .await
        .expect("POST /token")
}

async fn identity_and_grants(response: reqwest::Response) -> (String, Vec<String>) {
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
    let mut grants: Vec<String> = claims["grants"]
        .as_object()
        .expect("grants")
        .keys()
        .filter(|name| name.as_str() != "identity")
        .cloned()
        .collect();
    grants.sort();
    (
        claims["grants"]["identity"]
            .as_str()
            .expect("identity")
            .to_owned(),
        grants,
    )
}

#[tokio::test]
async fn session_cookie_gives_identity_and_groups_and_is_cached() {
    let (app_url, app) = start_app().await;
    let server = start_server(&format!("{app_url}/api/me")).await;

    // No cookie and no Authorization: not this provider's request.
    let response = server
        .client
        .post(server.url("/token"))
        .json(&json!({}))
        .send()
        .await
        .expect("POST");
    expect_error(response, 401, "missing_credentials").await;
    assert_eq!(app.me_calls.load(Ordering::SeqCst), 0);

    let alice = sign_in(&app_url, "alice", "support").await;
    let (identity, grants) = identity_and_grants(post_with_cookie(&server, &alice).await).await;
    assert_eq!(identity, "app:alice");
    assert_eq!(grants, ["chat"]);
    assert_eq!(app.me_calls.load(Ordering::SeqCst), 1);
    let forwarded = app.last_headers.lock().expect("lock").clone();
    assert!(forwarded.contains(&"cookie".to_owned()), "{forwarded:?}");
    assert!(
        !forwarded.iter().any(|name| name == "x-unrelated-secret"),
        "only Cookie and Authorization are forwarded: {forwarded:?}"
    );
    assert!(
        !forwarded.iter().any(|name| name == "content-type"),
        "{forwarded:?}"
    );

    // The same cookie again: answered from the cache.
    for _ in 0..3 {
        let (identity, _) = identity_and_grants(post_with_cookie(&server, &alice).await).await;
        assert_eq!(identity, "app:alice");
    }
    assert_eq!(app.me_calls.load(Ordering::SeqCst), 1, "cached");

    // Another user's cookie is another cache entry.
    let bob = sign_in(&app_url, "bob", "").await;
    let (identity, grants) = identity_and_grants(post_with_cookie(&server, &bob).await).await;
    assert_eq!(identity, "app:bob");
    assert_eq!(grants, ["video"]);
    assert_eq!(app.me_calls.load(Ordering::SeqCst), 2);

    // An unknown session: the app answers 401, and so does the server.
    let response = post_with_cookie(&server, "app_session=forged").await;
    let reply = expect_error(response, 401, "not_signed_in").await;
    assert_eq!(
        reply.message,
        "the app does not recognise this session (its who-am-I endpoint answered 401): sign in \
         to the app first"
    );
    assert!(reply.headers.contains_key("www-authenticate"));
    server.stop().await;
}

#[tokio::test]
async fn slow_or_failing_app_gives_503() {
    let (app_url, app) = start_app().await;
    let server = start_server(&format!("{app_url}/api/me")).await;
    let carol = sign_in(&app_url, "carol", "").await;

    // Slower than the 300 ms timeout.
    app.delay_ms.store(1500, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let reply = expect_error(post_with_cookie(&server, &carol).await, 503, "unavailable").await;
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "the timeout applies"
    );
    assert_eq!(
        reply.message,
        "the app's sign-in check is unavailable: try again later"
    );
    app.delay_ms.store(0, Ordering::SeqCst);

    // A 500 from the app.
    app.fail_status.store(500, Ordering::SeqCst);
    expect_error(post_with_cookie(&server, &carol).await, 503, "unavailable").await;
    // 403 means not signed in.
    app.fail_status.store(403, Ordering::SeqCst);
    let reply = expect_error(
        post_with_cookie(&server, &carol).await,
        401,
        "not_signed_in",
    )
    .await;
    assert!(reply.message.contains("answered 403"), "{}", reply.message);
    app.fail_status.store(0, Ordering::SeqCst);

    // Failures were not cached: the app answers again now.
    let (identity, _) = identity_and_grants(post_with_cookie(&server, &carol).await).await;
    assert_eq!(identity, "app:carol");
    server.stop().await;
}

#[tokio::test]
async fn app_down_gives_503() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let server = start_server(&format!("http://{address}/api/me")).await;
    let reply = expect_error(
        post_with_cookie(&server, "app_session=anything").await,
        503,
        "unavailable",
    )
    .await;
    assert_eq!(
        reply.message,
        "the app's sign-in check is unavailable: try again later"
    );
    server.stop().await;
}

#[tokio::test]
async fn cross_site_cookie_request_rejected() {
    let (app_url, _app) = start_app().await;
    let server = start_server(&format!("{app_url}/api/me")).await;
    let alice = sign_in(&app_url, "alice", "support").await;
    let send = |origin: Option<&str>, fetch_site: Option<&str>| {
        let mut request = server
            .client
            .post(server.url("/token"))
            .header("cookie", &alice)
            .json(&json!({}));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(fetch_site) = fetch_site {
            request = request.header("sec-fetch-site", fetch_site);
        }
        request.send()
    };

    let foreign = send(Some("https://evil.example"), None)
        .await
        .expect("POST");
    let error = expect_error(foreign, 403, "csrf_rejected").await;
    assert!(
        error.message.contains("the application's session"),
        "{}",
        error.message
    );
    let cross_site = send(None, Some("cross-site")).await.expect("POST");
    expect_error(cross_site, 403, "csrf_rejected").await;

    // The server's own origin, and clients that send neither header, pass.
    let own = format!("http://{}", server.base_url.trim_start_matches("http://"));
    let (identity, _) =
        identity_and_grants(send(Some(&own), Some("same-origin")).await.expect("POST")).await;
    assert_eq!(identity, "app:alice");
    let (identity, _) = identity_and_grants(send(None, None).await.expect("POST")).await;
    assert_eq!(identity, "app:alice");
    server.stop().await;
}
