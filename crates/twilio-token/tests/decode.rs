//! `twilio-token decode`: round trips with `mint`, stdin input and broken pipes.

mod common;

use serde_json::{Value, json};

use common::{ACCOUNT_SID, API_KEY_SID, mint, stderr, stdout, twilio_token};

fn minted(args: &[&str]) -> String {
    let output = mint().args(args).output().expect("binary runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    stdout(&output).trim_end().to_owned()
}

fn decoded_json(token: &str) -> Value {
    let output = twilio_token()
        .args(["decode", "--json", "-"])
        .write_stdin(token)
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).expect("JSON")
}

#[test]
fn decode_minted_token_round_trips() {
    let token = minted(&[
        "--identity",
        "alice",
        "--issued-at",
        "1700000000",
        "--ttl",
        "30m",
        "--nbf",
        "1699999900",
        "--region",
        "au1",
        "--chat-service-sid",
        "IS00000000000000000000000000000001",
        "--voice-incoming",
    ]);

    let decoded = decoded_json(&token);
    assert_eq!(decoded["signature_checked"], json!(false));
    assert_eq!(
        decoded["header"],
        json!({"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1", "twr": "au1"})
    );
    let expected_claims = json!({
        "jti": format!("{API_KEY_SID}-1700000000"),
        "grants": {
            "identity": "alice",
            "chat": {"service_sid": "IS00000000000000000000000000000001"},
            "voice": {"incoming": {"allow": true}}
        },
        "nbf": 1_699_999_900,
        "iat": 1_700_000_000,
        "exp": 1_700_001_800,
        "iss": API_KEY_SID,
        "sub": ACCOUNT_SID
    });
    assert_eq!(decoded["claims"], expected_claims);
}

#[test]
fn decode_json_keeps_claim_order() {
    let token = minted(&[
        "--identity",
        "bob",
        "--issued-at",
        "1700000000",
        "--nbf",
        "5",
    ]);
    let decoded = decoded_json(&token);
    let keys: Vec<&String> = decoded["claims"]
        .as_object()
        .expect("claims")
        .keys()
        .collect();
    assert_eq!(keys, ["jti", "grants", "nbf", "iat", "exp", "iss", "sub"]);
}

#[test]
fn decode_argument_and_stdin_agree() {
    let token = minted(&["--identity", "carol", "--issued-at", "1700000000"]);
    let from_argument = twilio_token()
        .args(["decode", "--now", "1700000100", &token])
        .output()
        .expect("binary runs");
    let from_stdin = twilio_token()
        .args(["decode", "--now", "1700000100", "-"])
        .write_stdin(format!("\r\n\t{token} \n"))
        .output()
        .expect("binary runs");

    assert_eq!(from_argument.status.code(), Some(0));
    assert_eq!(stdout(&from_argument), stdout(&from_stdin));
    assert!(stdout(&from_argument).starts_with("the signature was NOT checked"));
}

#[test]
fn decode_text_reports_expired_token() {
    let token = minted(&["--identity", "dave", "--issued-at", "1700000000"]);
    let output = twilio_token()
        .args(["decode", "--now", "1700003600", &token])
        .output()
        .expect("binary runs");
    let text = stdout(&output);
    assert!(
        text.contains("  now       1700003600  2023-11-14T23:13:20Z  after exp: expired\n"),
        "{text}"
    );
    assert!(
        text.contains("  exp       1700003600  2023-11-14T23:13:20Z  (now)\n"),
        "{text}"
    );
}

#[test]
fn decode_stdin_not_utf8_rejected() {
    let output = twilio_token()
        .args(["decode", "-"])
        .write_stdin(b"e30.e30.\xff".to_vec())
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: the token from stdin is not UTF-8 text\n"
    );
}

/// Runs the binary behind a pipe whose reader exits at once. The binary writes only after a
/// delay, so its write fails with a broken pipe.
#[cfg(unix)]
#[test]
fn decode_into_closed_pipe_exits_quietly() {
    let token = minted(&["--identity", "erin", "--issued-at", "1700000000"]);
    let script =
        r#"{ sleep 0.5; "$0" decode --now 1700000000 "$1"; echo "status=$?" >&2; } | true"#;
    let output = std::process::Command::new("sh")
        .args(["-c", script, env!("CARGO_BIN_EXE_twilio-token"), &token])
        .output()
        .expect("sh runs");

    assert_eq!(stderr(&output), "status=0\n");
}
