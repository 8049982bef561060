//! Every case minted by the official helper libraries, replayed through this library.
//!
//! Where the library accepts a case's input, the token must equal twilio-node's byte for byte.
//! Where it rejects the input, the test names the exact error.

use serde_json::{Map, Value};
use twilio_access_token::{
    AccessToken, ChatGrant, Grant, IdentityError, MintError, PlaybackGrant, SidError, SidKind,
    SidProblem, SyncGrant, TaskRouterGrant, Ttl, TtlError, VideoGrant, VoiceGrant,
};

const VECTORS: &str = include_str!("fixtures/vectors-shared.json");

/// What this library must do with a case that twilio-node signed.
enum Expected {
    /// The same bytes as twilio-node.
    NodeBytes,
    /// The same header bytes and the same payload as parsed JSON: twilio-node moves integer-like
    /// keys first inside objects, and this library keeps insertion order.
    NodeJsonWithKeyOrder,
    /// This error.
    Rejected(MintError),
    /// twilio-node was asked for an algorithm other than HS256, which this library never signs.
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

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn grant_from_input(input: &Value) -> Grant {
    let field = |name: &str| text(&input[name]);
    let mut chat = ChatGrant::new();
    chat.service_sid = field("service_sid");
    chat.endpoint_id = field("endpoint_id");
    chat.deployment_role_sid = field("deployment_role_sid");
    chat.push_credential_sid = field("push_credential_sid");
    match input["type"].as_str().expect("grant type") {
        "chat" => chat.into(),
        "video" => {
            let mut video = VideoGrant::new();
            video.room = field("room");
            video.into()
        }
        "sync" => {
            let mut sync = SyncGrant::new();
            sync.service_sid = field("service_sid");
            sync.endpoint_id = field("endpoint_id");
            sync.into()
        }
        "task_router" => {
            let mut task_router = TaskRouterGrant::new();
            task_router.workspace_sid = field("workspace_sid");
            task_router.worker_sid = field("worker_sid");
            task_router.role = field("role");
            task_router.into()
        }
        "voice" => {
            let mut voice = VoiceGrant::new();
            voice.incoming_allow = input["incoming_allow"] == Value::Bool(true);
            voice.outgoing_application_sid = field("outgoing_application_sid");
            voice.outgoing_application_params =
                input["outgoing_application_params"].as_object().cloned();
            voice.push_credential_sid = field("push_credential_sid");
            voice.endpoint_id = field("endpoint_id");
            voice.into()
        }
        "playback" => {
            let grant = input["grant"].as_object().cloned().unwrap_or_else(Map::new);
            PlaybackGrant::new(grant).into()
        }
        other => panic!("unknown grant type {other}"),
    }
}

/// Builds and mints a case the way a caller would pass the same values to twilio-node.
fn mint(input: &Value) -> Result<String, MintError> {
    let mut builder = AccessToken::builder()
        .account_sid(input["account_sid"].as_str().expect("account_sid"))
        .api_key_sid(input["api_key_sid"].as_str().expect("api_key_sid"))
        .api_secret(input["api_secret"].as_str().expect("api_secret"));

    // twilio-node turns an integer identity into a string and drops other numbers.
    match &input["identity"] {
        Value::String(identity) => builder = builder.identity(identity.as_str()),
        Value::Number(number) if number.is_i64() || number.is_u64() => {
            builder = builder.identity(number.to_string());
        }
        _ => {}
    }
    if let Value::Number(ttl) = &input["ttl"] {
        builder = builder.ttl(ttl.to_string().parse::<Ttl>()?);
    }
    if let Some(nbf) = input["nbf"].as_u64() {
        builder = builder.nbf(nbf);
    }
    if let Some(region) = input["region"].as_str() {
        builder = builder.region(region);
    }
    for grant in input["grants"].as_array().expect("grants list") {
        builder = builder.grant(grant_from_input(grant));
    }

    let issued_at = input["fixed_now_ms"].as_u64().expect("fixed_now_ms") / 1000;
    builder.build()?.to_jwt_at(issued_at)
}

fn segment_json(token: &str, index: usize) -> Value {
    use base64::Engine as _;
    let segment = token.split('.').nth(index).expect("segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[test]
fn vectors_match_node_or_named_error() {
    let cases = cases();
    assert!(cases.len() >= 51, "only {} cases", cases.len());
    for case in &cases {
        let id = case["id"].as_str().expect("id");
        let input = &case["input"];
        let node = &case["node"];
        let result = mint(input);
        match expected(id) {
            Expected::NodeBytes => {
                assert_eq!(
                    node["ok"], true,
                    "{id}: node refused a case expected to match"
                );
                let token = result.unwrap_or_else(|error| panic!("{id}: {error}"));
                assert_eq!(token, node["jwt"].as_str().expect("node jwt"), "{id}");
            }
            Expected::NodeJsonWithKeyOrder => {
                let token = result.unwrap_or_else(|error| panic!("{id}: {error}"));
                let node_jwt = node["jwt"].as_str().expect("node jwt");
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
            Expected::Rejected(error) => assert_eq!(result, Err(error), "{id}"),
            Expected::OtherAlgorithm => {
                assert_ne!(input["algorithm"], "HS256", "{id}");
                let token = result.unwrap_or_else(|error| panic!("{id}: {error}"));
                assert_eq!(segment_json(&token, 0)["alg"], "HS256", "{id}");
                let node_jwt = node["jwt"].as_str().expect("node jwt");
                assert_eq!(
                    segment_json(&token, 1),
                    segment_json(node_jwt, 1),
                    "{id} payload"
                );
            }
        }
    }
}

#[test]
fn vectors_with_hs256_all_checked() {
    let accepted = cases()
        .iter()
        .filter(|case| {
            matches!(
                expected(case["id"].as_str().expect("id")),
                Expected::NodeBytes
            )
        })
        .count();
    assert!(accepted >= 38, "only {accepted} byte-for-byte cases");
}
