//! Tokens the running server returns, verified by PyJWT and twilio-python.
//!
//! The test requests one token per policy rule from the server on a loopback socket and pipes
//! each, with the secret and the header and claims expected, to `scripts/interop/verify_tokens.py`.
//! That script verifies each token with `jwt.decode` (PyJWT) and `Jwt.from_jwt`
//! (twilio-python), checks claim order, and checks that both reject a wrong secret.
//!
//! Run it with the packages pinned in `scripts/interop/requirements.txt` installed:
//!
//! ```text
//! python3 -m venv target/venv && target/venv/bin/pip install -r scripts/interop/requirements.txt
//! TWILIO_TOKEN_PYTHON="$PWD/target/venv/bin/python" \
//!     cargo test -p twilio-token-server --test interop -- --include-ignored
//! ```
//!
//! The path must be absolute, because cargo runs the test in the crate's folder.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{
    ACCOUNT_SID, API_KEY_SID, CHAT_SERVICE_SID, SECRET, SYNC_SERVICE_SID, TestServer, WRONG_SECRET,
};
use serde_json::{Value, json};
use twilio_token_server::issue::TokenResponse;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/interop/verify_tokens.py"
);

/// One token request and the `grants` claim its token must carry, identity first.
struct Case {
    name: &'static str,
    key: String,
    body: Value,
    grants: Value,
}

fn cases(server: &TestServer) -> Vec<Case> {
    let keys = &server.keys;
    vec![
        Case {
            name: "acting_key_chat_video",
            key: keys.actor.clone(),
            body: json!({"identity": "user-7"}),
            grants: json!({
                "identity": "user-7",
                "chat": {"service_sid": CHAT_SERVICE_SID},
                "video": {},
            }),
        },
        Case {
            name: "room_short_ttl",
            key: keys.actor.clone(),
            body: json!({"identity": "user-meet-8", "grants": ["video"], "room": "standup-mon", "ttl": 120}),
            grants: json!({"identity": "user-meet-8", "video": {"room": "standup-mon"}}),
        },
        Case {
            name: "backend_sync",
            key: keys.backend.clone(),
            body: json!({}),
            grants: json!({
                "identity": "backend-svc",
                "data_sync": {"service_sid": SYNC_SERVICE_SID},
            }),
        },
        Case {
            name: "group_voice",
            key: keys.ops.clone(),
            body: json!({}),
            grants: json!({"identity": "ops-lead", "voice": {"incoming": {"allow": true}}}),
        },
    ]
}

fn expected_claims(response: &TokenResponse, grants: &Value) -> Value {
    json!({
        "jti": format!("{API_KEY_SID}-{}", response.server_time),
        "grants": grants,
        "iat": response.server_time,
        "exp": response.expires_at,
        "iss": API_KEY_SID,
        "sub": ACCOUNT_SID,
    })
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .map(|object| object.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn python() -> String {
    std::env::var("TWILIO_TOKEN_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Runs the script on `input` and returns its output lines, exit status and stderr.
fn run_script(input: String) -> (Vec<Value>, std::process::ExitStatus, String) {
    let python = python();
    let mut child = Command::new(&python)
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {python} (set TWILIO_TOKEN_PYTHON to a python with PyJWT and \
                 twilio): {error}"
            )
        });
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("script runs");
    writer
        .join()
        .expect("writer thread")
        .expect("script reads stdin");

    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let results = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each output line is JSON"))
        .collect();
    (results, output.status, stderr)
}

#[tokio::test]
#[ignore = "needs PyJWT and twilio from PyPI; scripts/test.sh installs them"]
async fn python_libraries_accept_server_tokens() {
    let server = TestServer::start().await;
    let header = json!({"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"});

    let mut input = String::new();
    let mut expected = Vec::new();
    for case in cases(&server) {
        let response = server.post_token(&case.key, case.body.clone()).await;
        assert_eq!(response.status().as_u16(), 200, "{}", case.name);
        let body: TokenResponse = response.json().await.expect("token response");
        let claims = expected_claims(&body, &case.grants);
        let line = json!({
            "name": case.name,
            "token": body.token,
            "secret": SECRET,
            "wrong_secret": WRONG_SECRET,
            "expected_header": header,
            "expected_claims": claims,
        });
        input.push_str(&line.to_string());
        input.push('\n');
        expected.push((case.name, claims));
    }
    server.stop().await;

    let (results, status, stderr) = tokio::task::spawn_blocking(move || run_script(input))
        .await
        .expect("script thread");
    assert_eq!(
        results.len(),
        expected.len(),
        "one result per token; script stderr:\n{stderr}"
    );
    for ((name, claims), result) in expected.iter().zip(&results) {
        assert_eq!(result["name"], *name);
        assert_eq!(result["ok"], true, "{name}: {}", result["failures"]);
        for library in ["pyjwt", "twilio"] {
            let decoded = &result[library];
            assert_eq!(decoded["header"], header, "{name}: {library} header");
            assert_eq!(decoded["claims"], *claims, "{name}: {library} claims");
            assert_eq!(
                keys(&decoded["claims"]),
                keys(claims),
                "{name}: {library} claim order"
            );
            assert_eq!(
                keys(&decoded["claims"]["grants"]),
                keys(&claims["grants"]),
                "{name}: {library} grant order"
            );
        }
    }
    assert!(status.success(), "script exit {status}; stderr:\n{stderr}");
}
