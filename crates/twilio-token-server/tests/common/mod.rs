//! A test server on a real loopback socket, built from a TOML configuration like an operator's.
//!
//! The configuration has one profile, four API keys and four policy rules. Identities
//! `user-meet-*` get the `user-*` grants, but Video only for rooms `standup-*`.
//!
//! | key        | identity      | may act for | groups  | rule that applies                         |
//! |------------|---------------|-------------|---------|-------------------------------------------|
//! | `backend`  | `backend-svc` | -           | -       | sync, TTL 3600                            |
//! | `actor`    | -             | `user-*`    | -       | chat and video, 600 s                     |
//! | `ops`      | `ops-lead`    | -           | `ops`   | voice incoming, TTL 3600                  |
//! | `stranger` | `stranger`    | -           | -       | none                                      |
//!
//! Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use twilio_access_token::{ApiSecret, Verifier};
use twilio_token_server::auth::api_key::generate_key;
use twilio_token_server::config::{self, Environment};
use twilio_token_server::{AppState, app, run};

pub(crate) const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub(crate) const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
/// The Twilio API key secret. Distinctive, so a search of captured logs cannot miss it.
pub(crate) const SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
/// A secret that differs from [`SECRET`] in its last character.
pub(crate) const WRONG_SECRET: &str = "FAKEsecretDoNotUse0123456789abce";
pub(crate) const SECRET_ENV: &str = "TEST_SECRET";
pub(crate) const CHAT_SERVICE_SID: &str = "IS00000000000000000000000000000001";
pub(crate) const SYNC_SERVICE_SID: &str = "IS00000000000000000000000000000002";
pub(crate) const ALLOWED_ORIGIN: &str = "https://app.example.com";

/// The bearer keys of the test configuration, each `ttk_` and 43 random characters.
#[derive(Debug, Clone)]
pub(crate) struct ApiKeys {
    /// Fixed identity `backend-svc`; may not choose another.
    pub(crate) backend: String,
    /// No identity of its own; may request tokens for `user-*`.
    pub(crate) actor: String,
    /// Identity `ops-lead` in group `ops`.
    pub(crate) ops: String,
    /// Identity `stranger`, which no rule matches.
    pub(crate) stranger: String,
}

/// The configured keys with the `sha256:` hashes that go into the configuration.
#[derive(Debug, Clone)]
pub(crate) struct GeneratedKeys {
    pub(crate) keys: ApiKeys,
    hashes: [String; 4],
}

impl GeneratedKeys {
    pub(crate) fn new() -> Self {
        let (backend, backend_hash) = generate_key();
        let (actor, actor_hash) = generate_key();
        let (ops, ops_hash) = generate_key();
        let (stranger, stranger_hash) = generate_key();
        GeneratedKeys {
            keys: ApiKeys {
                backend,
                actor,
                ops,
                stranger,
            },
            hashes: [backend_hash, actor_hash, ops_hash, stranger_hash],
        }
    }
}

/// Returns the test configuration as TOML, with `server_extra` appended to `[server]`.
pub(crate) fn config_text(keys: &GeneratedKeys, server_extra: &str) -> String {
    let [backend, actor, ops, stranger] = &keys.hashes;
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{server_extra}

[auth]
order = ["api_key"]

[[auth.api_keys]]
name = "backend"
hash = "{backend}"
identity = "backend-svc"

[[auth.api_keys]]
name = "actor"
hash = "{actor}"
may_act_for = "user-*"

[[auth.api_keys]]
name = "ops"
hash = "{ops}"
identity = "ops-lead"
groups = ["ops"]

[[auth.api_keys]]
name = "stranger"
hash = "{stranger}"
identity = "stranger"

[[profiles]]
name = "default"
account_sid = "{ACCOUNT_SID}"
chat_service_sid = "{CHAT_SERVICE_SID}"
sync_service_sid = "{SYNC_SERVICE_SID}"

[[profiles.api_keys]]
sid = "{API_KEY_SID}"
secret_env = "{SECRET_ENV}"

[[policy.rules]]
identities = ["user-meet-*"]
ttl = 600
max_ttl = 3600
[policy.rules.grants.chat]
[policy.rules.grants.video]
rooms = ["standup-*"]

[[policy.rules]]
identities = ["user-*"]
ttl = 600
max_ttl = 3600
[policy.rules.grants.chat]
[policy.rules.grants.video]

[[policy.rules]]
groups = ["ops"]
[policy.rules.grants.voice]
incoming = true

[[policy.rules]]
identities = ["backend-svc"]
[policy.rules.grants.sync]
"#
    )
}

/// Returns the environment the server reads secrets from: only the Twilio API key secret.
pub(crate) fn environment() -> Environment {
    Environment::from([(SECRET_ENV.to_owned(), SECRET.to_owned())])
}

/// Builds the state from configuration text, panicking with the configuration error.
pub(crate) fn state_from(text: &str) -> AppState {
    let mut file = config::parse(text).unwrap_or_else(|error| panic!("test TOML parses: {error}"));
    // Tests that do not configure the audit log do not write one into the source tree.
    if !text.contains("[audit]") {
        file.audit.sink = twilio_token_server::audit::SinkKind::Off;
    }
    AppState::from_config(&file, &environment(), Path::new("."))
        .unwrap_or_else(|error| panic!("test configuration is valid: {error}"))
}

/// Builds the state of the standard test configuration, with `allowed_origins` set.
pub(crate) fn standard_state(keys: &GeneratedKeys) -> AppState {
    let extra = format!("allowed_origins = [\"{ALLOWED_ORIGIN}\"]");
    state_from(&config_text(keys, &extra))
}

/// A server running in a task of the test's runtime, on 127.0.0.1 and a free port.
pub(crate) struct TestServer {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub(crate) base_url: String,
    /// The bearer keys the server accepts.
    pub(crate) keys: ApiKeys,
    /// A client without TLS, proxies or redirects.
    pub(crate) client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts the standard test configuration.
    pub(crate) async fn start() -> Self {
        let keys = GeneratedKeys::new();
        let state = standard_state(&keys);
        Self::start_state(keys.keys, state).await
    }

    /// Starts a server for an already built state.
    pub(crate) async fn start_state(keys: ApiKeys, state: AppState) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("bound address");
        let (sender, receiver) = oneshot::channel::<()>();
        let shutdown = async move {
            // A dropped sender also shuts the server down.
            let _ = receiver.await;
        };
        let task = tokio::spawn(run(listener, app(Arc::new(state)), shutdown));
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds");
        TestServer {
            base_url: format!("http://{address}"),
            keys,
            client,
            shutdown: Some(sender),
            task: Some(task),
        }
    }

    /// Returns the absolute URL of `path`, which starts with `/`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends `POST /token` with `key` as the bearer and `body` as JSON.
    pub(crate) async fn post_token(&self, key: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/token"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("POST /token gets a response")
    }

    /// Sends `GET /token?query` with `key` as the bearer.
    pub(crate) async fn get_token(&self, key: &str, query: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/token?{query}")))
            .bearer_auth(key)
            .send()
            .await
            .expect("GET /token gets a response")
    }

    /// Stops the server gracefully and checks that it stopped without an I/O error.
    pub(crate) async fn stop(mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        let task = self.task.take().expect("server task is running");
        let result = tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .expect("server stops within 10 seconds")
            .expect("server task did not panic");
        result.expect("server stopped without an I/O error");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
    }
}

/// An error response: its status, headers and parsed `{"error": {"code", "message"}}` body.
#[derive(Debug)]
pub(crate) struct ErrorReply {
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) code: String,
    pub(crate) message: String,
}

/// Checks the status, the JSON content type, `Cache-Control: no-store` and the body's shape and
/// code of an error response, and returns it.
pub(crate) async fn expect_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> ErrorReply {
    let headers = response.headers().clone();
    let actual_status = response.status().as_u16();
    let text = response.text().await.expect("body is readable");
    assert_eq!(actual_status, status, "status; body: {text}");
    assert_eq!(
        header(&headers, "content-type"),
        "application/json",
        "error content type"
    );
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert!(
        headers.contains_key("x-request-id"),
        "error responses carry x-request-id"
    );
    let body: Value = serde_json::from_str(&text).expect("error body is JSON");
    let error = body["error"].as_object().expect("body has an error object");
    assert_eq!(error.len(), 2, "error has only code and message: {text}");
    assert_eq!(body["error"]["code"], code, "error code; body: {text}");
    let message = body["error"]["message"]
        .as_str()
        .expect("message is a string")
        .to_owned();
    assert!(!message.is_empty(), "message is not empty");
    ErrorReply {
        headers,
        code: code.to_owned(),
        message,
    }
}

/// Returns a header's value as text, or an empty string when it is absent.
pub(crate) fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|value| value.to_str().expect("header is ASCII").to_owned())
        .unwrap_or_default()
}

/// Returns a verifier for the test profile's key and secret.
pub(crate) fn verifier() -> Verifier {
    Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, ApiSecret::new(SECRET))
        .build()
        .expect("verifier builds")
}

/// Returns the current Unix time by the system clock.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("system clock after 1970")
        .as_secs()
}
