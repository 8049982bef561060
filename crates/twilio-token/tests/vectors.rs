//! Every case minted by the official helper libraries, replayed through the built binary.
//!
//! Each case's grants go to `--grants-json -` in Twilio's wire format, the secret goes in
//! `TWILIO_API_SECRET`, and everything else is a flag. Where the library accepts the input, the
//! printed token must equal twilio-node's byte for byte. Where it rejects it, stderr must be
//! `error: ` followed by the library's message for the expected error.

mod common;

use assert_cmd::Command;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use twilio_access_token::{IdentityError, MintError, SidError, SidKind, SidProblem, TtlError};

use common::{stderr, stdout, twilio_token};

const VECTORS: &str = include_str!("../../twilio-access-token/tests/fixtures/vectors-shared.json");

/// What the binary must do with a case that twilio-node signed. The table is the same as in the
/// library's own vector test.
enum Expected {
    /// Print the same bytes as twilio-node.
    NodeBytes,
    /// Print the same header bytes and the same payload as parsed JSON: twilio-node moves
    /// integer-like keys first inside objects, and the library keeps insertion order.
    NodeJsonWithKeyOrder,
    /// Exit with status 2 and this error.
    Rejected(MintError),
    /// twilio-node was asked for an algorithm other than HS256, which the library never signs.
    OtherAlgorithm,
}

fn expected(id: &str) -> Expected {
    match id {
        "no_identity_no_grants" | "region_au1_no_identity" => {
            Expected::Rejected(MintError::MissingIdentity)
        }
        // twilio-node silently drops a non-integer identity, which leaves none.
        "identity_float" => Expected::Rejected(MintError::MissingIdentity),
        "identity_control_chars" => Expected::Rejected(MintError::InvalidIdentity(
            IdentityError::ControlCharacter {
                character: '\n',
                index: 5,
            },
        )),
        "ttl_86401" => {
            Expected::Rejected(MintError::InvalidTtl(TtlError::TooLong { secs: 86_401 }))
        }
        "ttl_negative" => Expected::Rejected(MintError::InvalidTtl(TtlError::Negative {
            value: "-60".into(),
        })),
        "ttl_float" => Expected::Rejected(MintError::InvalidTtl(TtlError::NotWholeSeconds {
            value: "1.5".into(),
        })),
        "voice_params_without_app" => Expected::Rejected(MintError::VoiceParamsWithoutApplication),
        "voice_params_value_types" => Expected::Rejected(MintError::UnsafeInteger {
            path: "voice.outgoing.params.big".into(),
            value: "9007199254740993".into(),
        }),
        "sids_unusual_values" => Expected::Rejected(MintError::InvalidSid {
            field: "sub",
            error: SidError {
                expected: SidKind::Account,
                value: "AC-not-a-real-sid".into(),
                problem: SidProblem::WrongLength { found: 15 },
            },
        }),
        "voice_params_numeric_keys" => Expected::NodeJsonWithKeyOrder,
        "alg_hs512" => Expected::OtherAlgorithm,
        _ => Expected::NodeBytes,
    }
}

fn cases() -> Vec<Value> {
    let document: Value = serde_json::from_str(VECTORS).expect("fixture is JSON");
    document["vectors"]
        .as_array()
        .expect("vectors is a list")
        .clone()
}

/// Copies the named string fields of a fixture grant into a wire-format object.
fn copy_strings(input: &Value, fields: &[&str]) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|field| {
            let value = input[*field].as_str()?;
            Some(((*field).to_owned(), json!(value)))
        })
        .collect()
}

/// Converts one fixture grant (python keyword names) to its key and wire-format value.
fn wire_grant(input: &Value) -> (&'static str, Value) {
    match input["type"].as_str().expect("grant type") {
        "chat" => {
            let fields = [
                "service_sid",
                "endpoint_id",
                "deployment_role_sid",
                "push_credential_sid",
            ];
            ("chat", Value::Object(copy_strings(input, &fields)))
        }
        "video" => ("video", Value::Object(copy_strings(input, &["room"]))),
        "sync" => {
            let fields = ["service_sid", "endpoint_id"];
            ("data_sync", Value::Object(copy_strings(input, &fields)))
        }
        "task_router" => {
            let fields = ["workspace_sid", "worker_sid", "role"];
            ("task_router", Value::Object(copy_strings(input, &fields)))
        }
        "voice" => ("voice", wire_voice(input)),
        "playback" => {
            let grant = input["grant"].as_object().cloned().unwrap_or_default();
            ("player", Value::Object(grant))
        }
        other => panic!("unknown grant type {other}"),
    }
}

fn wire_voice(input: &Value) -> Value {
    let mut voice = Map::new();
    if let Some(allow) = input["incoming_allow"].as_bool() {
        voice.insert("incoming".into(), json!({ "allow": allow }));
    }

    let mut outgoing = Map::new();
    if let Some(sid) = input["outgoing_application_sid"].as_str() {
        outgoing.insert("application_sid".into(), json!(sid));
    }
    if let Some(params) = input["outgoing_application_params"].as_object() {
        outgoing.insert("params".into(), Value::Object(params.clone()));
    }
    if !outgoing.is_empty() {
        voice.insert("outgoing".into(), Value::Object(outgoing));
    }

    voice.extend(copy_strings(input, &["push_credential_sid", "endpoint_id"]));
    Value::Object(voice)
}

/// Writes the grants object member by member, so a grant type listed twice appears twice, as
/// it does when a caller adds it twice.
fn grants_document(grants: &[Value]) -> String {
    let members: Vec<String> = grants
        .iter()
        .map(|grant| {
            let (key, value) = wire_grant(grant);
            format!("{}:{value}", json!(key))
        })
        .collect();
    format!("{{{}}}", members.join(","))
}

/// Builds the command that passes a case's input the way a caller would pass it to
/// twilio-node.
fn command_for(input: &Value) -> Command {
    let mut command = twilio_token();
    command
        .arg("mint")
        .arg("--account-sid")
        .arg(input["account_sid"].as_str().expect("account_sid"))
        .arg("--api-key-sid")
        .arg(input["api_key_sid"].as_str().expect("api_key_sid"))
        .env(
            "TWILIO_API_SECRET",
            input["api_secret"].as_str().expect("api_secret"),
        );

    // twilio-node turns an integer identity into a string and drops other numbers. An
    // argument cannot hold U+0000, so the identity is cut there; the one case with a NUL
    // fails on an earlier control character anyway.
    match &input["identity"] {
        Value::String(identity) => {
            let before_nul = identity.split('\0').next().unwrap_or_default();
            command.arg("--identity").arg(before_nul);
        }
        Value::Number(number) if number.is_i64() || number.is_u64() => {
            command.arg("--identity").arg(number.to_string());
        }
        _ => {}
    }
    if let Value::Number(ttl) = &input["ttl"] {
        command.arg(format!("--ttl={ttl}"));
    }
    if let Some(nbf) = input["nbf"].as_u64() {
        command.arg("--nbf").arg(nbf.to_string());
    }
    if let Some(region) = input["region"].as_str() {
        command.arg("--region").arg(region);
    }

    let issued_at = input["fixed_now_ms"].as_u64().expect("fixed_now_ms") / 1000;
    command.arg("--issued-at").arg(issued_at.to_string());

    let grants = input["grants"].as_array().expect("grants list");
    command.arg("--grants-json").arg("-");
    command.write_stdin(grants_document(grants));
    command
}

fn segment_json(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).expect("segment");
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// Runs the case and returns the printed token, failing when the binary did not succeed.
fn minted_token(id: &str, input: &Value) -> String {
    let output = command_for(input).output().expect("binary runs");
    assert_eq!(output.status.code(), Some(0), "{id}: {}", stderr(&output));
    assert_eq!(stderr(&output), "", "{id}");
    let printed = stdout(&output);
    let token = printed.strip_suffix('\n').expect("one trailing newline");
    assert!(!token.contains('\n'), "{id}: one line");
    token.to_owned()
}

fn check_case(case: &Value) {
    let id = case["id"].as_str().expect("id");
    let input = &case["input"];
    let node_jwt = case["node"]["jwt"].as_str();
    match expected(id) {
        Expected::NodeBytes => {
            assert_eq!(case["node"]["ok"], true, "{id}: node refused the case");
            let token = minted_token(id, input);
            assert_eq!(Some(token.as_str()), node_jwt, "{id}");
        }
        Expected::NodeJsonWithKeyOrder => {
            let token = minted_token(id, input);
            let node_jwt = node_jwt.expect("node jwt");
            assert_eq!(
                token.split('.').next(),
                node_jwt.split('.').next(),
                "{id} header"
            );
            assert_eq!(
                segment_json(&token, 1),
                segment_json(node_jwt, 1),
                "{id} payload"
            );
            assert_ne!(token, node_jwt, "{id}: key order was expected to differ");
        }
        Expected::Rejected(error) => {
            let output = command_for(input).output().expect("binary runs");
            assert_eq!(output.status.code(), Some(2), "{id}");
            assert_eq!(stderr(&output), format!("error: {error}\n"), "{id}");
            assert_eq!(stdout(&output), "", "{id}");
        }
        Expected::OtherAlgorithm => {
            assert_ne!(input["algorithm"], "HS256", "{id}");
            let token = minted_token(id, input);
            assert_eq!(segment_json(&token, 0)["alg"], "HS256", "{id}");
            let node_jwt = node_jwt.expect("node jwt");
            assert_eq!(
                segment_json(&token, 1),
                segment_json(node_jwt, 1),
                "{id} payload"
            );
        }
    }
}

#[test]
fn vectors_match_node_or_error() {
    let cases = cases();
    assert!(cases.len() >= 51, "only {} cases", cases.len());
    for case in &cases {
        check_case(case);
    }
}

#[test]
fn grants_document_keeps_duplicate_keys() {
    let case = cases()
        .into_iter()
        .find(|case| case["id"] == "multi_duplicate_type")
        .expect("case exists");
    let document = grants_document(case["input"]["grants"].as_array().expect("grants"));
    assert_eq!(document.matches("\"video\":").count(), 2, "{document}");
}
