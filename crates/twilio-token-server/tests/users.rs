//! The built-in user store over HTTP: sign-in, the session cookie on `/token`, sign-out, session
//! expiry, the origin check, the `Secure` flag and the failed sign-in throttle. Each test runs
//! its own server on 127.0.0.1 with a fresh data folder.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER, SET_COOKIE};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use twilio_access_token::{ApiSecret, Verifier};
use twilio_token_server::config::{self, Environment};
use twilio_token_server::{AppState, app, run};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const API_SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
const ALLOWED_ORIGIN: &str = "https://app.example.com";
const COOKIE_NAME: &str = "twilio_token_session";
const USER: &str = "alice";
const PASSWORD: &str = "FAKEpasswordDoNotUse-0123";

/// Settings that differ between tests.
#[derive(Debug, Clone, Copy)]
struct Options {
    session_ttl_secs: u64,
    trust_forwarded_proto: bool,
    users_enabled: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            session_ttl_secs: 3600,
            trust_forwarded_proto: false,
            users_enabled: true,
        }
    }
}

/// A server on a loopback port with the user `alice` in group `staff`.
struct TestServer {
    base_url: String,
    client: reqwest::Client,
    data_dir: PathBuf,
    _shutdown: oneshot::Sender<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

impl TestServer {
    async fn start(options: Options) -> TestServer {
        let data_dir = std::env::temp_dir().join(format!(
            "twilio-token-users-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let file = config::parse(&config_text(&data_dir, options))
            .unwrap_or_else(|error| panic!("test TOML parses: {error}"));
        let environment = Environment::from([("TEST_SECRET".to_owned(), API_SECRET.to_owned())]);
        let state = AppState::from_config(&file, &environment, &data_dir)
            .unwrap_or_else(|error| panic!("test configuration is valid: {error}"));
        if let Some(users) = &state.users {
            users
                .store()
                .add_user(USER, PASSWORD, &["staff".to_owned()])
                .await
                .expect("alice is added");
        }

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("bound address");
        let (sender, receiver) = oneshot::channel::<()>();
        tokio::spawn(run(listener, app(Arc::new(state)), async move {
            let _ = receiver.await;
        }));
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds");
        TestServer {
            base_url: format!("http://{address}"),
            client,
            data_dir,
            _shutdown: sender,
        }
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(format!("{}{path}", self.base_url))
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.base_url))
    }

    fn login(&self, username: &str, password: &str) -> RequestBuilder {
        self.post("/login")
            .json(&json!({"username": username, "password": password}))
    }

    /// Signs in as alice and returns the `Cookie` header value.
    async fn sign_in(&self) -> String {
        let response = self.login(USER, PASSWORD).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
        cookie_header(response.headers())
    }

    fn token(&self, cookie: &str) -> RequestBuilder {
        self.post("/token")
            .header("cookie", cookie)
            .json(&json!({}))
    }
}

fn config_text(data_dir: &std::path::Path, options: Options) -> String {
    let users = if options.users_enabled {
        format!(
            "[auth.users]\nsession_ttl_secs = {}\n",
            options.session_ttl_secs
        )
    } else {
        String::new()
    };
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = '{data_dir}'
allowed_origins = ["{ALLOWED_ORIGIN}"]
trust_forwarded_proto = {trust}

[auth]
order = ["api_key", "users"]

{users}

[[profiles]]
name = "default"
account_sid = "{ACCOUNT_SID}"

[[profiles.api_keys]]
sid = "{API_KEY_SID}"
secret_env = "TEST_SECRET"

[[policy.rules]]
identities = ["*"]
[policy.rules.grants.video]
"#,
        data_dir = data_dir.display(),
        trust = options.trust_forwarded_proto,
    )
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Returns the single `Set-Cookie` header of a response.
fn set_cookie(headers: &HeaderMap) -> String {
    let values: Vec<&str> = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| value.to_str().expect("Set-Cookie is text"))
        .collect();
    assert_eq!(values.len(), 1, "one Set-Cookie header: {values:?}");
    values[0].to_owned()
}

/// Turns a response's `Set-Cookie` into the `Cookie` header a browser would send.
fn cookie_header(headers: &HeaderMap) -> String {
    let set_cookie = set_cookie(headers);
    let pair = set_cookie.split(';').next().expect("a name=value pair");
    assert!(pair.starts_with(&format!("{COOKIE_NAME}=")), "{set_cookie}");
    pair.to_owned()
}

async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.expect("JSON error body");
    body["error"]["code"]
        .as_str()
        .expect("error.code is a string")
        .to_owned()
}

fn verifier() -> Verifier {
    Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, ApiSecret::new(API_SECRET))
        .build()
        .expect("verifier builds")
}

#[tokio::test]
async fn login_then_token_for_user() {
    let server = TestServer::start(Options::default()).await;

    let response = server.login(USER, PASSWORD).send().await.expect("sent");

    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = set_cookie(response.headers());
    assert!(
        set_cookie.ends_with("; HttpOnly; SameSite=Lax; Path=/; Max-Age=3600"),
        "{set_cookie}"
    );
    let cookie = cookie_header(response.headers());
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["identity"], USER);
    assert!(body["session_expires_at"].as_u64().is_some(), "{body}");

    let response = server.token(&cookie).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["identity"], USER);
    let token = body["token"].as_str().expect("token is a string");
    let claims = verifier().verify(token).expect("token verifies");
    assert_eq!(claims.identity, USER);

    let response = server
        .get("/token")
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn login_name_ignores_case() {
    let server = TestServer::start(Options::default()).await;

    let response = server.login("ALICE", PASSWORD).send().await.expect("sent");

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["identity"], USER, "the stored name is the identity");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_alike() {
    let server = TestServer::start(Options::default()).await;

    let wrong = server
        .login(USER, "FAKEwrongPassword-0123")
        .send()
        .await
        .expect("sent");
    let unknown = server.login("nobody", PASSWORD).send().await.expect("sent");

    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    let wrong: Value = wrong.json().await.expect("JSON body");
    let unknown: Value = unknown.json().await.expect("JSON body");
    assert_eq!(wrong, unknown);
    assert_eq!(
        wrong,
        json!({"error": {
            "code": "invalid_credentials",
            "message": "the user name or password is not correct"
        }})
    );
}

#[tokio::test]
async fn logout_clears_cookie_and_session() {
    let server = TestServer::start(Options::default()).await;
    let cookie = server.sign_in().await;

    let response = server
        .post("/logout")
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        set_cookie(response.headers()),
        format!("{COOKIE_NAME}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0")
    );
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body, json!({"signed_out": true}));

    let response = server.token(&cookie).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "invalid_session");
}

#[tokio::test]
async fn logout_without_session_succeeds() {
    let server = TestServer::start(Options::default()).await;

    let response = server.post("/logout").send().await.expect("sent");

    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookie(response.headers()).contains("Max-Age=0"));
}

#[tokio::test]
async fn expired_session_rejected() {
    let options = Options {
        session_ttl_secs: 1,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let cookie = server.sign_in().await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    let response = server.token(&cookie).send().await.expect("sent");

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(
        body,
        json!({"error": {
            "code": "invalid_session",
            "message": "your session has expired or is not valid: sign in again"
        }})
    );
}

#[tokio::test]
async fn tampered_cookie_rejected() {
    let server = TestServer::start(Options::default()).await;
    let cookie = server.sign_in().await;
    let (id, signature) = cookie.rsplit_once('.').expect("signed value");
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{id}.{flipped}{}", &signature[1..]);

    let response = server.token(&tampered).send().await.expect("sent");

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "invalid_session");
}

#[tokio::test]
async fn foreign_origin_rejected() {
    let server = TestServer::start(Options::default()).await;
    let cookie = server.sign_in().await;

    let post = server
        .token(&cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("sent");
    let get = server
        .get("/token")
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("sent");
    let navigation = server
        .get("/token")
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("sent");
    let login = server
        .login(USER, PASSWORD)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("sent");

    for (name, response) in [
        ("POST /token", post),
        ("GET /token", get),
        ("cross-site GET /token", navigation),
        ("POST /login", login),
    ] {
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}");
        assert_eq!(error_code(response).await, "csrf_rejected", "{name}");
    }
}

#[tokio::test]
async fn allowed_and_own_origins_accepted() {
    let server = TestServer::start(Options::default()).await;
    let cookie = server.sign_in().await;

    let allowed = server
        .token(&cookie)
        .header("origin", ALLOWED_ORIGIN)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("sent");
    let own = server
        .token(&cookie)
        .header("origin", &server.base_url)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .expect("sent");

    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(own.status(), StatusCode::OK);
}

#[tokio::test]
async fn secure_flag_needs_trusted_forwarded_proto() {
    let untrusting = TestServer::start(Options::default()).await;
    let trusting = TestServer::start(Options {
        trust_forwarded_proto: true,
        ..Options::default()
    })
    .await;

    let forwarded_untrusted = untrusting
        .login(USER, PASSWORD)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("sent");
    let forwarded_trusted = trusting
        .login(USER, PASSWORD)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("sent");
    let plain_trusted = trusting.login(USER, PASSWORD).send().await.expect("sent");

    let forwarded_untrusted = set_cookie(forwarded_untrusted.headers());
    let forwarded_trusted = set_cookie(forwarded_trusted.headers());
    let plain_trusted = set_cookie(plain_trusted.headers());
    assert!(
        !forwarded_untrusted.contains("Secure"),
        "{forwarded_untrusted}"
    );
    assert!(
        forwarded_trusted.ends_with("; Secure"),
        "{forwarded_trusted}"
    );
    assert!(!plain_trusted.contains("Secure"), "{plain_trusted}");
}

#[tokio::test]
async fn login_query_string_rejected() {
    let server = TestServer::start(Options::default()).await;

    let with_credentials = server
        .post(&format!("/login?username={USER}&password={PASSWORD}"))
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    let with_body_too = server
        .post("/login?remember=1")
        .json(&json!({"username": USER, "password": PASSWORD}))
        .send()
        .await
        .expect("sent");

    for response in [with_credentials, with_body_too] {
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(SET_COOKIE).is_none());
        assert_eq!(error_code(response).await, "credentials_in_query");
    }
}

#[tokio::test]
async fn login_body_checked() {
    let server = TestServer::start(Options::default()).await;

    let unknown_field = server
        .post("/login")
        .json(&json!({"username": USER, "password": PASSWORD, "remember": true}))
        .send()
        .await
        .expect("sent");
    let form = server
        .post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("username={USER}&password={PASSWORD}"))
        .send()
        .await
        .expect("sent");

    let numeric_password = server
        .post("/login")
        .json(&json!({"username": USER, "password": 12345678901_u64}))
        .send()
        .await
        .expect("sent");

    assert_eq!(unknown_field.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(unknown_field).await, "unknown_field");
    assert_eq!(numeric_password.status(), StatusCode::BAD_REQUEST);
    let text = numeric_password.text().await.expect("body");
    assert!(
        !text.contains("12345678901"),
        "the password is echoed: {text}"
    );
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// Fails five times with `username`, then returns the sixth attempt's response.
async fn sixth_attempt(server: &TestServer, username: &str) -> Response {
    for attempt in 1..=5 {
        let response = server
            .login(username, "FAKEwrongPassword-0123")
            .send()
            .await
            .expect("sent");
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    server.login(username, PASSWORD).send().await.expect("sent")
}

#[tokio::test]
async fn sixth_failed_login_throttled() {
    let known = TestServer::start(Options::default()).await;
    let unknown = TestServer::start(Options::default()).await;

    let known = sixth_attempt(&known, USER).await;
    let unknown = sixth_attempt(&unknown, "nobody").await;

    assert_eq!(known.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(unknown.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        known.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert_eq!(
        known.headers().get(RETRY_AFTER),
        unknown.headers().get(RETRY_AFTER)
    );
    assert!(
        known.headers().get(SET_COOKIE).is_none(),
        "even the right password is refused"
    );
    let known: Value = known.json().await.expect("JSON body");
    let unknown: Value = unknown.json().await.expect("JSON body");
    assert_eq!(known, unknown);
    assert_eq!(known["error"]["code"], "too_many_attempts");
}

#[tokio::test]
async fn throttle_lifts_after_retry_after() {
    let server = TestServer::start(Options::default()).await;
    let throttled = sixth_attempt(&server, USER).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = server.login(USER, PASSWORD).send().await.expect("sent");

    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn parallel_failures_share_limit() {
    let server = TestServer::start(Options::default()).await;
    let requests: Vec<RequestBuilder> = (0..10)
        .map(|_| server.login(USER, "FAKEwrongPassword-0123"))
        .collect();

    let statuses = send_at_once(requests).await;

    let unauthorized = statuses
        .iter()
        .filter(|status| **status == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(unauthorized, 5, "{statuses:?}");
    assert_eq!(throttled, 5, "{statuses:?}");
}

/// Sends every request at once and returns the statuses in order.
async fn send_at_once(requests: Vec<RequestBuilder>) -> Vec<StatusCode> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| tokio::spawn(request.send()))
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let response = task.await.expect("task ran").expect("sent");
        statuses.push(response.status());
    }
    statuses
}

#[tokio::test]
async fn repeated_successes_not_throttled() {
    let server = TestServer::start(Options::default()).await;

    for attempt in 1..=8 {
        let response = server.login(USER, PASSWORD).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::OK, "sign-in {attempt}");
    }
}

#[tokio::test]
async fn login_disabled_without_users_section() {
    let server = TestServer::start(Options {
        users_enabled: false,
        ..Options::default()
    })
    .await;

    let response = server.login(USER, PASSWORD).send().await.expect("sent");

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(response).await, "users_disabled");
}

#[tokio::test]
async fn readiness_checks_user_database() {
    let server = TestServer::start(Options::default()).await;

    let response = server.get("/readyz").send().await.expect("sent");

    assert_eq!(response.status(), StatusCode::OK);
}

/// A `tracing` writer that keeps everything written to it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_omit_password_and_session() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime has one thread, so the server's tasks log through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = TestServer::start(Options::default()).await;

    let cookie = server.sign_in().await;
    let wrong = server
        .login(USER, "FAKEwrongPassword-0123")
        .send()
        .await
        .expect("sent");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let token = server.token(&cookie).send().await.expect("sent");
    assert_eq!(token.status(), StatusCode::OK);
    server
        .post("/logout")
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sent");

    let logs = String::from_utf8_lossy(
        &captured
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_owned();
    assert!(logs.contains("signed in"), "the capture works: {logs}");
    let session_value = cookie.split_once('=').expect("name=value").1;
    let session_id = session_value.split_once('.').expect("id.signature").0;
    for secret in [PASSWORD, "FAKEwrongPassword", session_value, session_id] {
        assert!(
            !logs.contains(secret),
            "the logs contain {secret:?}: {logs}"
        );
    }
}
