//! Snapshots of what users read: the help pages, every command-line error, and `decode` output.
//!
//! Create or update them with `INSTA_UPDATE=always cargo test -p twilio-token`, then review the
//! changed files under `tests/snapshots/`.

mod common;

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;

use common::{mint, stderr, stdout, twilio_token};

const VECTORS: &str = include_str!("../../twilio-access-token/tests/fixtures/vectors-shared.json");

/// The time `decode` is run at in the snapshots: 12m 34s after the kitchen-sink token's `iat`.
const NOW: &str = "1700000754";

/// Runs a command that must succeed and returns its stdout.
fn success(mut command: Command) -> String {
    let output = command.output().expect("binary runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    stdout(&output)
}

/// Runs a command that must fail with status 2 and returns its stderr.
fn failure(mut command: Command) -> String {
    let output = command.output().expect("binary runs");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    stderr(&output)
}

/// Writes a file for a test into Cargo's scratch folder for integration tests and returns the
/// folder, so the command can name the file by a path that does not change between machines.
fn scratch_file(name: &str, contents: &str) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(folder.join(name), contents).expect("scratch file written");
    folder
}

/// Returns the kitchen-sink token that twilio-node minted, which has a region, `nbf` and every
/// grant type.
fn kitchen_sink_token() -> String {
    let document: Value = serde_json::from_str(VECTORS).expect("fixture is JSON");
    let case = document["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .find(|case| case["id"] == "kitchen_sink")
        .expect("kitchen_sink case");
    case["node"]["jwt"].as_str().expect("jwt").to_owned()
}

#[test]
fn help_top_level_snapshot() {
    let mut command = twilio_token();
    command.arg("--help");
    insta::assert_snapshot!("help_top_level", success(command));
}

#[test]
fn help_mint_snapshot() {
    let mut command = twilio_token();
    command.args(["mint", "--help"]);
    insta::assert_snapshot!("help_mint", success(command));
}

#[test]
fn help_decode_snapshot() {
    let mut command = twilio_token();
    command.args(["decode", "--help"]);
    insta::assert_snapshot!("help_decode", success(command));
}

#[test]
fn help_verify_snapshot() {
    let mut command = twilio_token();
    command.args(["verify", "--help"]);
    insta::assert_snapshot!("help_verify", success(command));
}

#[test]
fn help_doctor_snapshot() {
    let mut command = twilio_token();
    command.args(["doctor", "--help"]);
    insta::assert_snapshot!("help_doctor", success(command));
}

#[test]
fn mint_missing_account_sid_named() {
    let mut command = twilio_token();
    command
        .args(["mint", "--identity", "alice"])
        .env("TWILIO_API_KEY", common::API_KEY_SID)
        .env("TWILIO_API_SECRET", common::SECRET);
    insta::assert_snapshot!("mint_missing_account_sid", failure(command));
}

#[test]
fn mint_missing_api_key_sid_named() {
    let mut command = twilio_token();
    command
        .args(["mint", "--identity", "alice"])
        .env("TWILIO_ACCOUNT_SID", common::ACCOUNT_SID)
        .env("TWILIO_API_SECRET", common::SECRET);
    insta::assert_snapshot!("mint_missing_api_key_sid", failure(command));
}

#[test]
fn mint_missing_secret_named() {
    let mut command = mint();
    command
        .env_remove("TWILIO_API_SECRET")
        .args(["--identity", "alice"]);
    insta::assert_snapshot!("mint_missing_secret", failure(command));
}

#[test]
fn mint_auth_token_only_explained() {
    let mut command = mint();
    command
        .env_remove("TWILIO_API_SECRET")
        .env("TWILIO_AUTH_TOKEN", "placeholder-auth-token")
        .args(["--identity", "alice"]);
    let message = failure(command);
    assert!(!message.contains("placeholder-auth-token"), "{message}");
    insta::assert_snapshot!("mint_missing_secret_with_auth_token", message);
}

#[test]
fn mint_key_variables_differ_rejected() {
    let mut command = twilio_token();
    command
        .args(["mint", "--identity", "alice"])
        .env("TWILIO_ACCOUNT_SID", common::ACCOUNT_SID)
        .env("TWILIO_API_KEY", common::API_KEY_SID)
        .env("TWILIO_API_KEY_SID", "SK00000000000000000000000000000000")
        .env("TWILIO_API_SECRET", common::SECRET);
    insta::assert_snapshot!("mint_conflicting_key_variables", failure(command));
}

#[test]
fn mint_voice_param_without_equals_rejected() {
    let mut command = mint();
    command.args(["--identity", "alice", "--voice-param", "To"]);
    insta::assert_snapshot!("mint_voice_param_without_equals", failure(command));
}

#[test]
fn mint_voice_param_without_key_rejected() {
    let mut command = mint();
    command.args(["--identity", "alice", "--voice-param", "=x"]);
    insta::assert_snapshot!("mint_voice_param_without_key", failure(command));
}

#[test]
fn mint_device_id_without_app_name_rejected() {
    let mut command = mint();
    command.args(["--identity", "alice", "--device-id", "phone"]);
    insta::assert_snapshot!("mint_device_id_without_app_name", failure(command));
}

#[test]
fn mint_device_id_with_chat_endpoint_id_rejected() {
    let mut command = mint();
    command.args([
        "--identity",
        "alice",
        "--device-id",
        "phone",
        "--app-name",
        "app",
        "--chat-endpoint-id",
        "app:alice:phone",
    ]);
    insta::assert_snapshot!("mint_device_id_with_chat_endpoint_id", failure(command));
}

#[test]
fn mint_device_id_with_colon_rejected() {
    let mut command = mint();
    command.args([
        "--identity",
        "alice",
        "--device-id",
        "a:b",
        "--app-name",
        "app",
    ]);
    insta::assert_snapshot!("mint_device_id_with_colon", failure(command));
}

#[test]
fn mint_grants_unknown_key_lists_known_keys() {
    let mut command = mint();
    command
        .args(["--identity", "alice", "--grants-json", "-"])
        .write_stdin(r#"{"chatt":{}}"#);
    insta::assert_snapshot!("mint_grants_unknown_key", failure(command));
}

#[test]
fn mint_grants_unknown_field_lists_known_fields() {
    let mut command = mint();
    command
        .args(["--identity", "alice", "--grants-json", "-"])
        .write_stdin(r#"{"video":{"rooms":"standup"}}"#);
    insta::assert_snapshot!("mint_grants_unknown_field", failure(command));
}

#[test]
fn mint_grants_file_not_json_rejected() {
    let folder = scratch_file("grants-not-json.txt", "chat=IS1\n");
    let mut command = mint();
    command.current_dir(folder).args([
        "--identity",
        "alice",
        "--grants-json",
        "grants-not-json.txt",
    ]);
    insta::assert_snapshot!("mint_grants_not_json", failure(command));
}

#[test]
fn mint_grants_array_rejected() {
    let mut command = mint();
    command
        .args(["--identity", "alice", "--grants-json", "-"])
        .write_stdin(r#"[{"video":{}}]"#);
    insta::assert_snapshot!("mint_grants_not_object", failure(command));
}

#[test]
fn mint_grants_file_missing_rejected() {
    let mut command = mint();
    command.args([
        "--identity",
        "alice",
        "--grants-json",
        "/nonexistent/grants.json",
    ]);
    insta::assert_snapshot!("mint_grants_file_missing", failure(command));
}

#[test]
fn mint_two_stdin_readers_rejected() {
    let mut command = mint();
    command.args([
        "--identity",
        "alice",
        "--api-secret-file",
        "-",
        "--grants-json",
        "-",
    ]);
    insta::assert_snapshot!("mint_both_from_stdin", failure(command));
}

#[test]
fn decode_two_segments_rejected() {
    let mut command = twilio_token();
    command.args(["decode", "eyJhbGciOiJIUzI1NiJ9.e30"]);
    insta::assert_snapshot!("decode_two_segments", failure(command));
}

#[test]
fn decode_bad_base64_names_offset() {
    let mut command = twilio_token();
    command.args(["decode", "eyJhbGciOiJIUzI1NiJ9.e30+.c2ln"]);
    insta::assert_snapshot!("decode_bad_base64", failure(command));
}

#[test]
fn decode_header_not_json_rejected() {
    // "bm90IGpzb24" is base64url for "not json".
    let mut command = twilio_token();
    command.args(["decode", "bm90IGpzb24.e30.c2ln"]);
    insta::assert_snapshot!("decode_header_not_json", failure(command));
}

#[test]
fn decode_empty_stdin_rejected() {
    let mut command = twilio_token();
    command.args(["decode", "-"]).write_stdin("  \n");
    insta::assert_snapshot!("decode_empty_stdin", failure(command));
}

#[test]
fn decode_text_shows_claims_and_times() {
    let mut command = twilio_token();
    command.args(["decode", "--now", NOW, &kitchen_sink_token()]);
    insta::assert_snapshot!("decode_text_kitchen_sink", success(command));
}

#[test]
fn decode_json_keeps_token_order() {
    let mut command = twilio_token();
    command
        .args(["decode", "--json", "-"])
        .write_stdin(format!("\n  {}\n", kitchen_sink_token()));
    insta::assert_snapshot!("decode_json_kitchen_sink", success(command));
}

#[test]
fn decode_text_escapes_terminal_sequences() {
    // A header whose `typ` contains ESC [2J, the sequence that clears a terminal.
    let header = r#"{"alg":"HS256","typ":"\u001b[2J\u009b"}"#;
    let token = format!(
        "{}.e30.c2ln",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
    );
    let mut command = twilio_token();
    command.args(["decode", "--now", NOW, &token]);
    let text = success(command);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(!text.contains('\u{9b}'), "{text}");
    insta::assert_snapshot!("decode_text_escaped", text);
}
