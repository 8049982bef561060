//! `twilio-token mint`: grants from flags and JSON, lifetimes, the environment and `--json`.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use twilio_access_token::{EndpointIdError, EndpointIdPart, IdentityError, MintError, TtlError};

use common::{ACCOUNT_SID, API_KEY_SID, SECRET, mint, stderr, stdout, twilio_token};

const ISSUED_AT: u64 = 1_700_000_000;

/// Runs a `mint` command that must succeed and returns the printed token's payload.
fn payload(mut command: assert_cmd::Command) -> Value {
    let output = command.output().expect("binary runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let token = stdout(&output);
    let segment = token.trim_end().split('.').nth(1).expect("payload segment");
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url");
    serde_json::from_slice(&bytes).expect("payload is JSON")
}

/// Returns the grant keys of a payload in token order.
fn grant_keys(payload: &Value) -> Vec<String> {
    payload["grants"]
        .as_object()
        .expect("grants object")
        .keys()
        .cloned()
        .collect()
}

fn mint_alice() -> assert_cmd::Command {
    let mut command = mint();
    command.args(["--identity", "alice", "--issued-at", &ISSUED_AT.to_string()]);
    command
}

#[test]
fn mint_token_alone_on_one_line() {
    let output = mint_alice().output().expect("binary runs");
    let printed = stdout(&output);
    assert_eq!(printed.matches('\n').count(), 1, "{printed}");
    assert!(printed.ends_with('\n'));
    assert_eq!(printed.trim_end().split('.').count(), 3);
}

#[test]
fn mint_flag_grants_in_fixed_order() {
    let mut command = mint_alice();
    command.args([
        "--taskrouter-role",
        "worker",
        "--sync",
        "--voice-incoming",
        "--video",
        "--chat",
    ]);
    let payload = payload(command);
    assert_eq!(
        grant_keys(&payload),
        [
            "identity",
            "chat",
            "video",
            "voice",
            "data_sync",
            "task_router"
        ]
    );
    assert_eq!(
        payload["grants"]["voice"],
        json!({"incoming": {"allow": true}})
    );
    assert_eq!(payload["grants"]["task_router"], json!({"role": "worker"}));
    assert_eq!(payload["grants"]["video"], json!({}));
}

#[test]
fn mint_json_grants_before_flag_grants() {
    let mut command = mint_alice();
    command
        .args(["--grants-json", "-", "--sync-service-sid", "default"])
        .write_stdin(r#"{"video":{"room":"standup"},"chat":{}}"#);
    let payload = payload(command);
    assert_eq!(
        grant_keys(&payload),
        ["identity", "video", "chat", "data_sync"]
    );
    assert_eq!(payload["grants"]["video"], json!({"room": "standup"}));
}

#[test]
fn mint_flag_grant_replaces_json_grant() {
    let mut command = mint_alice();
    command
        .args(["--grants-json", "-", "--video-room", "retro"])
        .write_stdin(r#"{"video":{"room":"standup"},"chat":{}}"#);
    let payload = payload(command);
    assert_eq!(grant_keys(&payload), ["identity", "video", "chat"]);
    assert_eq!(payload["grants"]["video"], json!({"room": "retro"}));
}

#[test]
fn mint_voice_params_keep_order_as_strings() {
    let mut command = mint_alice();
    command.args([
        "--voice-outgoing-app-sid",
        "AP00000000000000000000000000000005",
        "--voice-param",
        "z=1",
        "--voice-param",
        "To=+15005550006",
        "--voice-param",
        "z=2=3",
    ]);
    let payload = payload(command);
    let params = &payload["grants"]["voice"]["outgoing"]["params"];
    assert_eq!(params, &json!({"z": "2=3", "To": "+15005550006"}));
    let keys: Vec<&String> = params.as_object().expect("params").keys().collect();
    assert_eq!(keys, ["z", "To"]);
}

#[test]
fn mint_voice_params_without_app_rejected() {
    let output = mint_alice()
        .args(["--voice-param", "To=+15005550006"])
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!("error: {}\n", MintError::VoiceParamsWithoutApplication)
    );
}

#[test]
fn mint_device_id_builds_endpoint_id() {
    let mut command = mint_alice();
    command.args(["--device-id", "phone-1", "--app-name", "HipFlow"]);
    let payload = payload(command);
    assert_eq!(
        payload["grants"]["chat"],
        json!({"endpoint_id": "HipFlow:alice:phone-1"})
    );
}

#[test]
fn mint_device_id_without_identity_rejected() {
    let output = mint()
        .args(["--device-id", "phone-1", "--app-name", "HipFlow"])
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!("error: {}\n", MintError::MissingIdentity)
    );
}

#[test]
fn mint_device_id_with_bad_identity_names_identity() {
    let output = mint()
        .args([
            "--identity",
            "al\tice",
            "--device-id",
            "phone-1",
            "--app-name",
            "HipFlow",
        ])
        .output()
        .expect("binary runs");
    let expected = MintError::InvalidIdentity(IdentityError::ControlCharacter {
        character: '\t',
        index: 2,
    });
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stderr(&output), format!("error: {expected}\n"));
}

#[test]
fn mint_empty_app_name_rejected() {
    let output = mint_alice()
        .args(["--device-id", "phone-1", "--app-name", ""])
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!("error: {}\n", EndpointIdError::Empty(EndpointIdPart::App))
    );
}

#[test]
fn mint_ttl_duration_sets_exp() {
    for (ttl, secs) in [("90m", 5400), ("1h30m", 5400), ("1h", 3600), ("45", 45)] {
        let mut command = mint_alice();
        command.args(["--ttl", ttl]);
        let payload = payload(command);
        assert_eq!(payload["exp"], json!(ISSUED_AT + secs), "{ttl}");
    }
}

#[test]
fn mint_ttl_negative_reaches_library() {
    let output = mint_alice().args(["--ttl", "-60"]).output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let expected = TtlError::Negative {
        value: "-60".into(),
    };
    assert_eq!(stderr(&output), format!("error: {expected}\n"));
}

#[test]
fn mint_ttl_malformed_rejected() {
    let output = mint_alice().args(["--ttl", "1x"]).output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let expected = TtlError::Invalid { value: "1x".into() };
    assert_eq!(stderr(&output), format!("error: {expected}\n"));
}

#[test]
fn mint_credentials_from_environment() {
    let mut command = twilio_token();
    command
        .args(["mint", "--identity", "alice", "--issued-at", "1700000000"])
        .env("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
        .env("TWILIO_API_KEY_SID", API_KEY_SID)
        .env("TWILIO_API_SECRET", SECRET);
    let from_environment = command.output().expect("binary runs");
    let from_flags = mint_alice().output().expect("binary runs");
    assert_eq!(from_environment.status.code(), Some(0));
    assert_eq!(stdout(&from_environment), stdout(&from_flags));
}

#[test]
fn mint_empty_variable_counts_as_unset() {
    let mut command = twilio_token();
    command
        .args(["mint", "--identity", "alice"])
        .env("TWILIO_ACCOUNT_SID", "")
        .env("TWILIO_API_KEY", API_KEY_SID)
        .env("TWILIO_API_SECRET", SECRET);
    let output = command.output().expect("binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with("error: the account SID is missing: pass --account-sid"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn mint_region_from_environment_and_flag() {
    let mut from_environment = mint_alice();
    from_environment.env("TWILIO_REGION", "ie1");
    let output = from_environment.output().expect("binary runs");
    let header = stdout(&output)
        .split('.')
        .next()
        .expect("header")
        .to_owned();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64")).expect("JSON");
    assert_eq!(header["twr"], "ie1");

    let mut cleared = mint_alice();
    cleared.env("TWILIO_REGION", "ie1").args(["--region", ""]);
    let output = cleared.output().expect("binary runs");
    let header = stdout(&output)
        .split('.')
        .next()
        .expect("header")
        .to_owned();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64")).expect("JSON");
    assert_eq!(header.get("twr"), None);
}

#[test]
fn mint_json_output_lists_times_and_grants() {
    let output = mint_alice()
        .args([
            "--json",
            "--nbf",
            "1699999990",
            "--ttl",
            "2h",
            "--region",
            "us1",
        ])
        .args(["--video-room", "standup", "--sync"])
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let object: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let keys: Vec<&String> = object.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        [
            "token", "identity", "iat", "exp", "nbf", "ttl", "region", "grants"
        ]
    );
    assert_eq!(object["identity"], "alice");
    assert_eq!(object["iat"], json!(ISSUED_AT));
    assert_eq!(object["exp"], json!(ISSUED_AT + 7200));
    assert_eq!(object["nbf"], json!(1_699_999_990));
    assert_eq!(object["ttl"], json!(7200));
    assert_eq!(object["region"], "us1");
    assert_eq!(
        object["grants"],
        json!({"video": {"room": "standup"}, "data_sync": {}})
    );
    assert_eq!(
        object["token"].as_str().map(|t| t.split('.').count()),
        Some(3)
    );
}

#[test]
fn mint_json_output_leaves_out_unset_members() {
    let output = mint_alice().arg("--json").output().expect("binary runs");
    let object: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(object.get("nbf"), None);
    assert_eq!(object.get("region"), None);
    assert_eq!(object["ttl"], json!(3600));
    assert_eq!(object["grants"], json!({}));
}

#[test]
fn empty_video_room_rejected() {
    // A Video grant without a room allows every room, so an empty --video-room (an unset shell
    // variable, say) must not quietly widen the token.
    let output = mint_alice()
        .args(["--video-room", ""])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--video-room"),
        "{}",
        stderr(&output)
    );
}
