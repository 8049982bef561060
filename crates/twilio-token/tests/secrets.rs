//! The API secret: where it is read from, how a trailing newline is handled, and that it never
//! appears in any output.

mod common;

use std::path::PathBuf;

use twilio_access_token::{MintError, SidError, SidKind, SidProblem};

use common::{ACCOUNT_SID, API_KEY_SID, SECRET, mint, stderr, stdout, twilio_token};

const ISSUED_AT: &str = "1700000000";

/// A secret with inner spaces and punctuation, to find it in output however it is split.
const SPACED_SECRET: &str = "FAKE secret: do not use 0123";

/// Writes a secret file into Cargo's scratch folder for integration tests.
fn secret_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, contents).expect("secret file written");
    path
}

/// Mints a fixed token with the secret in `TWILIO_API_SECRET`, for comparison.
fn token_signed_with(secret: &str) -> String {
    let output = mint()
        .env("TWILIO_API_SECRET", secret)
        .args(["--identity", "alice", "--issued-at", ISSUED_AT])
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    stdout(&output)
}

/// Returns `mint` with the SIDs as flags and no secret in the environment.
fn mint_without_secret() -> assert_cmd::Command {
    let mut command = twilio_token();
    command.args([
        "mint",
        "--account-sid",
        ACCOUNT_SID,
        "--api-key-sid",
        API_KEY_SID,
        "--identity",
        "alice",
        "--issued-at",
        ISSUED_AT,
    ]);
    command
}

fn assert_secret_absent(text: &str, secret: &str) {
    assert!(!text.contains(secret), "secret found in {text:?}");
    for word in secret.split_whitespace().filter(|word| word.len() > 4) {
        assert!(
            !text.contains(word),
            "part {word:?} of the secret found in {text:?}"
        );
    }
}

#[test]
fn secret_absent_from_sid_error() {
    let output = twilio_token()
        .args(["mint", "--account-sid", "AC-not-a-real-sid"])
        .args(["--api-key-sid", API_KEY_SID, "--identity", "alice"])
        .env("TWILIO_API_SECRET", SPACED_SECRET)
        .output()
        .expect("binary runs");

    let expected = MintError::InvalidSid {
        field: "sub",
        error: SidError {
            expected: SidKind::Account,
            value: "AC-not-a-real-sid".into(),
            problem: SidProblem::WrongLength { found: 15 },
        },
    };
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stderr(&output), format!("error: {expected}\n"));
    assert_secret_absent(&stderr(&output), SPACED_SECRET);
    assert_eq!(stdout(&output), "");
}

#[test]
fn secret_whitespace_rejected_without_echo() {
    let padded = format!(" {SPACED_SECRET} ");
    let output = mint()
        .env("TWILIO_API_SECRET", &padded)
        .args(["--identity", "alice"])
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!("error: {}\n", MintError::ApiSecretWhitespace)
    );
    assert_secret_absent(&stderr(&output), SPACED_SECRET);
}

#[test]
fn secret_absent_from_json_output() {
    let output = mint()
        .env("TWILIO_API_SECRET", SPACED_SECRET)
        .args(["--identity", "alice", "--json", "--chat"])
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_secret_absent(&stdout(&output), SPACED_SECRET);
    assert_eq!(stderr(&output), "");
}

#[test]
fn secret_variables_differ_rejected() {
    let output = mint()
        .env("TWILIO_API_SECRET", SPACED_SECRET)
        .env("TWILIO_API_KEY_SECRET", "FAKE another secret 4567")
        .args(["--identity", "alice"])
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: TWILIO_API_SECRET and TWILIO_API_KEY_SECRET are set to different values: unset \
         one of them\n"
    );
    assert_secret_absent(&stderr(&output), SPACED_SECRET);
    assert_secret_absent(&stderr(&output), "FAKE another secret 4567");
}

#[test]
fn secret_key_secret_variable_accepted() {
    let output = mint_without_secret()
        .env("TWILIO_API_KEY_SECRET", SECRET)
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), token_signed_with(SECRET));
}

#[test]
fn secret_file_trailing_newline_removed() {
    let path = secret_file("secret-newline", format!("{SECRET}\n").as_bytes());
    let output = mint_without_secret()
        .arg("--api-secret-file")
        .arg(&path)
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), token_signed_with(SECRET));
}

#[test]
fn secret_file_crlf_removed() {
    let path = secret_file("secret-crlf", format!("{SECRET}\r\n").as_bytes());
    let output = mint_without_secret()
        .arg("--api-secret-file")
        .arg(&path)
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), token_signed_with(SECRET));
}

#[test]
fn secret_file_without_newline_used_as_is() {
    let path = secret_file("secret-bare", SECRET.as_bytes());
    let output = mint_without_secret()
        .arg("--api-secret-file")
        .arg(&path)
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), token_signed_with(SECRET));
}

#[test]
fn secret_file_second_newline_kept_and_rejected() {
    let path = secret_file("secret-two-newlines", format!("{SECRET}\n\n").as_bytes());
    let output = mint_without_secret()
        .arg("--api-secret-file")
        .arg(&path)
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!("error: {}\n", MintError::ApiSecretWhitespace)
    );
    assert_secret_absent(&stderr(&output), SECRET);
}

#[test]
fn secret_file_only_newline_is_empty() {
    let path = secret_file("secret-only-newline", b"\n");
    let output = mint_without_secret()
        .arg("--api-secret-file")
        .arg(&path)
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!("error: {}\n", MintError::EmptyApiSecret)
    );
}

#[test]
fn secret_file_not_utf8_rejected() {
    let path = secret_file("secret-latin1", b"FAKE\xe9secret\n");
    let output = mint_without_secret()
        .arg("--api-secret-file")
        .arg(&path)
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!(
            "error: the API secret from the file {:?} is not UTF-8 text\n",
            path.display().to_string()
        )
    );
}

#[test]
fn secret_file_flag_wins_over_environment() {
    let path = secret_file("secret-over-env", format!("{SECRET}\n").as_bytes());
    let output = mint_without_secret()
        .env("TWILIO_API_SECRET", "FAKE environment secret")
        .arg("--api-secret-file")
        .arg(&path)
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), token_signed_with(SECRET));
}

#[test]
fn secret_stdin_trailing_newline_removed() {
    let output = mint_without_secret()
        .args(["--api-secret-file", "-"])
        .write_stdin(format!("{SECRET}\n"))
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), token_signed_with(SECRET));
}

#[test]
fn secret_stdin_second_newline_rejected() {
    let output = mint_without_secret()
        .args(["--api-secret-file", "-"])
        .write_stdin(format!("{SECRET}\r\n\r\n"))
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!("error: {}\n", MintError::ApiSecretWhitespace)
    );
}
