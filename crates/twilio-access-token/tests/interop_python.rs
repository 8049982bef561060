//! Tokens minted here and verified by peers this project did not write: PyJWT and twilio-python.
//!
//! The test mints a set of tokens at the current system time and pipes them, with their secret
//! and the claims expected, to `scripts/interop/verify_tokens.py`. For each token the script
//! verifies the signature and times with `jwt.decode` (PyJWT) and `Jwt.from_jwt`
//! (twilio-python), checks that a wrong secret is rejected by both, and returns what each
//! decoded. The test then compares those claims with the ones expected here.
//!
//! Run it with the packages pinned in `scripts/interop/requirements.txt` installed:
//!
//! ```text
//! python3 -m venv target/venv && target/venv/bin/pip install -r scripts/interop/requirements.txt
//! TWILIO_TOKEN_PYTHON=target/venv/bin/python \
//!     cargo test -p twilio-access-token --test interop_python -- --include-ignored
//! ```

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use twilio_access_token::{
    AccessToken, AccessTokenBuilder, ChatGrant, Clock, IpMessagingGrant, PlaybackGrant, SyncGrant,
    SystemClock, TaskRouterGrant, VideoGrant, VoiceGrant, endpoint_id,
};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
const WRONG_SECRET: &str = "FAKEsecretDoNotUse0123456789abce";
const SERVICE_SID: &str = "IS00000000000000000000000000000001";
const ROLE_SID: &str = "RL00000000000000000000000000000002";
const CREDENTIAL_SID: &str = "CR00000000000000000000000000000004";
const APPLICATION_SID: &str = "AP00000000000000000000000000000005";
const WORKSPACE_SID: &str = "WS00000000000000000000000000000007";
const WORKER_SID: &str = "WK00000000000000000000000000000008";

/// A float whose shortest decimal form has 17 digits, which Python parses exactly and serde_json
/// (without `float_roundtrip`) does not.
const HARD_FLOAT: f64 = 1.7224058100956279e-180;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/interop/verify_tokens.py"
);

/// One token to verify, with the header and claims it must contain.
struct Case {
    name: &'static str,
    builder: AccessTokenBuilder,
    secret: &'static str,
    wrong_secret: &'static str,
    region: Option<&'static str>,
    nbf: Option<u64>,
    ttl: u64,
    /// The `grants` claim, identity first, written out here rather than by the library.
    grants: Value,
}

fn builder(identity: &str, secret: &str) -> AccessTokenBuilder {
    AccessToken::builder()
        .account_sid(ACCOUNT_SID)
        .api_key_sid(API_KEY_SID)
        .api_secret(secret)
        .identity(identity)
}

fn typical_chat() -> Case {
    let endpoint = endpoint_id("HipFlowSlackDockRC", "alice", "device-8f3a").expect("valid parts");
    let chat = ChatGrant::new()
        .service_sid(SERVICE_SID)
        .endpoint_id(endpoint.as_str())
        .push_credential_sid(CREDENTIAL_SID);
    Case {
        name: "typical_chat",
        builder: builder("alice", SECRET).grant(chat),
        secret: SECRET,
        wrong_secret: WRONG_SECRET,
        region: None,
        nbf: None,
        ttl: 3600,
        grants: json!({
            "identity": "alice",
            "chat": {
                "service_sid": SERVICE_SID,
                "endpoint_id": endpoint,
                "push_credential_sid": CREDENTIAL_SID,
            },
        }),
    }
}

fn all_grants() -> Case {
    let params = json!({
        "To": "+15005550006",
        "retries": 3,
        "ratio": 0.1,
        "whole": 2.0,
        "tiny": HARD_FLOAT,
        "lowest": -9_007_199_254_740_991_i64,
        "flags": [true, false, null],
        "nested": {"b": 1, "a": {"deep": "x"}},
    });
    let voice = VoiceGrant::new()
        .incoming_allow(true)
        .outgoing_application_sid(APPLICATION_SID)
        .outgoing_application_params(params.as_object().expect("object").clone())
        .push_credential_sid(CREDENTIAL_SID)
        .endpoint_id("voice-endpoint");
    let playback = json!({
        "requestCredentials": null,
        "playbackUrl": "https://example.invalid/live/stream.m3u8",
        "playerStreamerSid": "VJ00000000000000000000000000000009",
    });
    let builder = builder("alice", SECRET)
        .grant(
            ChatGrant::new()
                .service_sid(SERVICE_SID)
                .deployment_role_sid(ROLE_SID),
        )
        .grant(IpMessagingGrant::new(
            ChatGrant::new().service_sid(SERVICE_SID),
        ))
        .grant(VideoGrant::new().room("standup"))
        .grant(voice)
        .grant(
            SyncGrant::new()
                .service_sid("default")
                .endpoint_id("sync-endpoint"),
        )
        .grant(
            TaskRouterGrant::new()
                .workspace_sid(WORKSPACE_SID)
                .worker_sid(WORKER_SID)
                .role("worker"),
        )
        .grant(PlaybackGrant::new(
            playback.as_object().expect("object").clone(),
        ));
    Case {
        name: "all_grants",
        builder,
        secret: SECRET,
        wrong_secret: WRONG_SECRET,
        region: None,
        nbf: None,
        ttl: 3600,
        grants: json!({
            "identity": "alice",
            "chat": {"service_sid": SERVICE_SID, "deployment_role_sid": ROLE_SID},
            "ip_messaging": {"service_sid": SERVICE_SID},
            "video": {"room": "standup"},
            "voice": {
                "incoming": {"allow": true},
                "outgoing": {
                    "application_sid": APPLICATION_SID,
                    "params": {
                        "To": "+15005550006",
                        "retries": 3,
                        "ratio": 0.1,
                        // JavaScript, and so twilio-node and this library, write 2.0 as 2.
                        "whole": 2,
                        "tiny": HARD_FLOAT,
                        "lowest": -9_007_199_254_740_991_i64,
                        "flags": [true, false, null],
                        "nested": {"b": 1, "a": {"deep": "x"}},
                    },
                },
                "push_credential_sid": CREDENTIAL_SID,
                "endpoint_id": "voice-endpoint",
            },
            "data_sync": {"service_sid": "default", "endpoint_id": "sync-endpoint"},
            "task_router": {
                "workspace_sid": WORKSPACE_SID,
                "worker_sid": WORKER_SID,
                "role": "worker",
            },
            "player": playback,
        }),
    }
}

fn region() -> Case {
    Case {
        name: "region_ie1",
        builder: builder("alice", SECRET)
            .region("ie1")
            .grant(VideoGrant::new().room("standup")),
        secret: SECRET,
        wrong_secret: WRONG_SECRET,
        region: Some("ie1"),
        nbf: None,
        ttl: 3600,
        grants: json!({"identity": "alice", "video": {"room": "standup"}}),
    }
}

fn not_before(now: u64) -> Case {
    // PyJWT rejects a token whose nbf is in the future, so nbf is slightly in the past.
    let nbf = now - 30;
    Case {
        name: "nbf",
        builder: builder("bob", SECRET)
            .nbf(nbf)
            .grant(SyncGrant::new().service_sid(SERVICE_SID)),
        secret: SECRET,
        wrong_secret: WRONG_SECRET,
        region: None,
        nbf: Some(nbf),
        ttl: 3600,
        grants: json!({"identity": "bob", "data_sync": {"service_sid": SERVICE_SID}}),
    }
}

fn unicode_identity() -> Case {
    // The secret is non-ASCII too: both libraries must use its UTF-8 bytes as the HMAC key.
    const IDENTITY: &str = "Zoë 🎉 中文 \"quoted\" \\ / \u{2028} end";
    const UNICODE_SECRET: &str = "FAKEsécretDoNotUse0123456789abcd";
    Case {
        name: "unicode_identity",
        builder: builder(IDENTITY, UNICODE_SECRET).grant(ChatGrant::new().service_sid(SERVICE_SID)),
        secret: UNICODE_SECRET,
        wrong_secret: "FAKEsécretDoNotUse0123456789abce",
        region: None,
        nbf: None,
        ttl: 3600,
        grants: json!({"identity": IDENTITY, "chat": {"service_sid": SERVICE_SID}}),
    }
}

fn short_ttl() -> Case {
    Case {
        name: "short_ttl",
        builder: builder("carol", SECRET)
            .ttl_secs(30)
            .grant(VideoGrant::new()),
        secret: SECRET,
        wrong_secret: WRONG_SECRET,
        region: None,
        nbf: None,
        ttl: 30,
        grants: json!({"identity": "carol", "video": {}}),
    }
}

fn expected_header(case: &Case) -> Value {
    let mut header = json!({"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"});
    if let Some(region) = case.region {
        header["twr"] = json!(region);
    }
    header
}

fn expected_claims(case: &Case, now: u64) -> Value {
    let mut claims = json!({
        "jti": format!("{API_KEY_SID}-{now}"),
        "grants": case.grants,
    });
    if let Some(nbf) = case.nbf {
        claims["nbf"] = json!(nbf);
    }
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + case.ttl);
    claims["iss"] = json!(API_KEY_SID);
    claims["sub"] = json!(ACCOUNT_SID);
    claims
}

/// Returns `value` as it reads back from JSON text.
///
/// The script already compared the claims exactly, with Python's float parser. Here both sides
/// go through serde_json's parser, which can read a 17-digit float a unit in the last place off.
fn reparsed(value: &Value) -> Value {
    serde_json::from_str(&value.to_string()).expect("JSON text parses")
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

/// Runs the script on `input` and returns its output lines and exit status.
fn run_script(input: String) -> (Vec<Value>, std::process::ExitStatus, String) {
    let python = python();
    let mut child = Command::new(&python)
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot run {python} (set TWILIO_TOKEN_PYTHON to a python with PyJWT and twilio): {error}")
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

#[test]
#[ignore = "needs PyJWT and twilio from PyPI; scripts/test.sh installs them"]
fn python_libraries_accept_minted_tokens() {
    let now = SystemClock.now().expect("system clock after 1970");
    let cases = vec![
        typical_chat(),
        all_grants(),
        region(),
        not_before(now),
        unicode_identity(),
        short_ttl(),
    ];

    let mut input = String::new();
    let mut expected = Vec::new();
    for case in &cases {
        let token = case.builder.clone().build().expect("valid case");
        let jwt = token.to_jwt_at(now).expect("mints");
        let header = expected_header(case);
        let claims = expected_claims(case, now);
        let line = json!({
            "name": case.name,
            "token": jwt,
            "secret": case.secret,
            "wrong_secret": case.wrong_secret,
            "expected_header": header,
            "expected_claims": claims,
        });
        input.push_str(&line.to_string());
        input.push('\n');
        expected.push((case.name, header, claims));
    }

    let (results, status, stderr) = run_script(input);
    assert_eq!(
        results.len(),
        cases.len(),
        "one result per token; script stderr:\n{stderr}"
    );
    for ((name, header, claims), result) in expected.iter().zip(&results) {
        assert_eq!(result["name"], *name);
        assert_eq!(result["ok"], true, "{name}: {}", result["failures"]);
        for library in ["pyjwt", "twilio"] {
            let decoded = &result[library];
            assert_eq!(decoded["header"], *header, "{name}: {library} header");
            assert_eq!(
                keys(&decoded["header"]),
                keys(header),
                "{name}: {library} header order"
            );
            assert_eq!(
                decoded["claims"],
                reparsed(claims),
                "{name}: {library} claims"
            );
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
