//! What the server logs at every level, TRACE included, contains no secret: not the Twilio API
//! secret, not a token it returned, not an API key, not an `Authorization` header.
//!
//! This binary installs a global subscriber, so it contains a single test: every request the test
//! sends, and any other test's, would land in the same buffer.

mod common;

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

#[tokio::test]
async fn logs_hold_no_secret() {
    let capture = Capture::default();
    install(&capture);
    let server = TestServer::start().await;
    let keys = server.keys.clone();

    let seen = exercise(&server).await;
    server.stop().await;

    let logs = capture.text();
    assert!(
        logs.contains("token issued"),
        "the capture contains the per-request DEBUG events:\n{logs}"
    );
    assert!(logs.contains("token request refused"), "refusals logged");
    assert!(logs.contains("TRACE"), "TRACE events are captured too");
    let tokens = seen.iter().filter(|value| value.starts_with("eyJ")).count();
    assert_eq!(tokens, 5, "five requests got a token");
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
