//! Helpers shared by the integration tests. Each test binary uses a different subset.
#![allow(dead_code)]

use std::process::Output;

use assert_cmd::Command;

/// A placeholder account SID, not a real account.
pub(crate) const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// A placeholder API key SID, not a real key.
pub(crate) const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
/// A placeholder secret, the one the shared vectors use.
pub(crate) const SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";

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
