//! Helpers shared by the integration tests. Each test binary uses a different subset.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// A placeholder account SID, not a real account.
pub(crate) const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// A placeholder API key SID, not a real key.
pub(crate) const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
/// A placeholder secret, the one the shared vectors use.
pub(crate) const SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
/// A second placeholder API key SID, for key files.
pub(crate) const SECOND_KEY_SID: &str = "SK00000000000000000000000000000002";
/// The placeholder secret of [`SECOND_KEY_SID`].
pub(crate) const SECOND_SECRET: &str = "FAKEsecondSecretDoNotUse01234567";
/// A placeholder account SID other than [`ACCOUNT_SID`].
pub(crate) const OTHER_ACCOUNT_SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// A placeholder Chat service SID.
pub(crate) const SERVICE_SID: &str = "IS00000000000000000000000000000001";

/// The issue time of the hand-built tokens, in Unix seconds.
pub(crate) const ISSUED_AT: u64 = 1_700_000_000;

/// Every variable the command line reads, removed from each run.
const TWILIO_VARIABLES: [&str; 8] = [
    "TWILIO_ACCOUNT_SID",
    "TWILIO_API_KEY",
    "TWILIO_API_KEY_SID",
    "TWILIO_API_SECRET",
    "TWILIO_API_KEY_SECRET",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_REGION",
    "TWILIO_CHAT_SERVICE_SID",
];

/// Returns the built binary with no `TWILIO_*` variables and a fixed help width, so its output
/// does not depend on the environment of the test run.
pub(crate) fn twilio_token() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_twilio-token"));
    for name in TWILIO_VARIABLES {
        command.env_remove(name);
    }
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TWILIO_") {
            command.env_remove(name);
        }
    }
    command
        .env_remove("CLICOLOR_FORCE")
        .env("COLUMNS", "100")
        .env("LINES", "50");
    command
}

/// Returns `mint` with the placeholder account SID and API key SID as flags and the secret in
/// `TWILIO_API_SECRET`.
pub(crate) fn mint() -> Command {
    let mut command = twilio_token();
    command
        .args([
            "mint",
            "--account-sid",
            ACCOUNT_SID,
            "--api-key-sid",
            API_KEY_SID,
        ])
        .env("TWILIO_API_SECRET", SECRET);
    command
}

/// Returns stdout as text.
pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// Returns stderr as text.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// Returns `verify` or `doctor` with `--account-sid` and `--api-key-sid` for the placeholder
/// SIDs and the secret in `TWILIO_API_SECRET`.
pub(crate) fn check(command: &str) -> Command {
    let mut check = twilio_token();
    check
        .args([
            command,
            "--account-sid",
            ACCOUNT_SID,
            "--api-key-sid",
            API_KEY_SID,
        ])
        .env("TWILIO_API_SECRET", SECRET);
    check
}

/// Runs a command and returns its exit status, stdout and stderr.
pub(crate) fn run(command: &mut Command) -> (i32, String, String) {
    let output = command.output().expect("binary runs");
    let status = output.status.code().expect("exit status");
    (status, stdout(&output), stderr(&output))
}

/// Writes a file into Cargo's scratch folder for integration tests and returns its path.
pub(crate) fn scratch_path(name: &str, contents: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, contents).expect("scratch file written");
    path
}

/// Writes a key file that only its owner may read, so that no warning about its mode is
/// printed, and returns its path.
pub(crate) fn key_file(name: &str, contents: &str) -> PathBuf {
    let path = scratch_path(name, contents.as_bytes());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("key file mode set");
    }
    path
}

/// Returns the header twilio-node writes.
pub(crate) fn header() -> Value {
    json!({"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"})
}

/// Returns the claims twilio-node writes for identity "alice" with a Chat grant, issued at
/// [`ISSUED_AT`] for one hour.
pub(crate) fn claims() -> Value {
    json!({
        "jti": format!("{API_KEY_SID}-{ISSUED_AT}"),
        "grants": {"identity": "alice", "chat": {"service_sid": SERVICE_SID}},
        "iat": ISSUED_AT,
        "exp": ISSUED_AT + 3600,
        "iss": API_KEY_SID,
        "sub": ACCOUNT_SID,
    })
}

/// Encodes bytes as base64url without padding.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Serializes the header and claims (keys in insertion order) and signs them with
/// HMAC-SHA256 under `secret`, without the library under test.
pub(crate) fn sign(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        encode(header.to_string()),
        encode(claims.to_string())
    );
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", encode(mac.finalize().into_bytes()))
}

/// Signs the claims under the standard header with [`SECRET`].
pub(crate) fn token(claims: &Value) -> String {
    sign(&header(), claims, SECRET.as_bytes())
}

/// Asserts that `text` does not contain `secret`, or any part of it longer than four
/// characters between whitespace.
pub(crate) fn assert_secret_absent(text: &str, secret: &str) {
    assert!(!text.contains(secret), "secret found in {text:?}");
    for word in secret.split_whitespace().filter(|word| word.len() > 4) {
        assert!(
            !text.contains(word),
            "part {word:?} of the secret found in {text:?}"
        );
    }
}
