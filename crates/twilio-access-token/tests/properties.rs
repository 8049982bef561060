//! Properties of minting that hold for every valid builder input.
//!
//! Each minted token is read back with `dangerous::decode_unverified` and checked against the
//! input: header and claim order as twilio-node writes them, the claim values, the grants, and
//! an HMAC-SHA256 signature computed here with the `hmac` crate.

use hmac::{Hmac, KeyInit, Mac};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use twilio_access_token::dangerous::{UnverifiedToken, decode_unverified};
use twilio_access_token::{
    AccessToken, AccessTokenBuilder, ChatGrant, Grant, IpMessagingGrant, MintError, PlaybackGrant,
    SidKind, SyncGrant, TaskRouterGrant, VideoGrant, VoiceGrant, validate_sid,
};

/// 2^53 - 1, the largest integer a JavaScript number represents exactly, and so the largest time
/// in a token.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The largest issue time the library accepts (10^11 seconds, in the year 5138).
const MAX_ISSUED_AT: u64 = twilio_access_token::MAX_ISSUE_TIME;

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";

/// One valid set of builder arguments and the time to mint at.
#[derive(Debug, Clone)]
struct Input {
    account_sid: String,
    api_key_sid: String,
    secret: String,
    identity: String,
    ttl: u64,
    nbf: Option<u64>,
    region: Option<String>,
    grants: Vec<Grant>,
    issued_at: u64,
}

impl Input {
    fn builder(&self) -> AccessTokenBuilder {
        let mut builder = AccessToken::builder()
            .account_sid(self.account_sid.as_str())
            .api_key_sid(self.api_key_sid.as_str())
            .api_secret(self.secret.as_str())
            .identity(self.identity.as_str())
            .ttl_secs(self.ttl);
        if let Some(nbf) = self.nbf {
            builder = builder.nbf(nbf);
        }
        if let Some(region) = &self.region {
            builder = builder.region(region.as_str());
        }
        for grant in &self.grants {
            builder = builder.grant(grant.clone());
        }
        builder
    }
}

fn sid(prefix: &'static str) -> impl Strategy<Value = String> {
    "[0-9a-f]{32}".prop_map(move |hex| format!("{prefix}{hex}"))
}

/// Generates any string of up to `max` characters, control characters and emoji included.
fn text(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..=max).prop_map(String::from_iter)
}

/// Generates an optional grant field: unset, empty (which the token leaves out), or a value.
fn field(value: impl Strategy<Value = String>) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(String::new())),
        3 => value.prop_map(Some),
    ]
}

fn identity() -> impl Strategy<Value = String> {
    let character = prop_oneof![
        4 => proptest::char::range(' ', '~'),
        2 => any::<char>(),
        1 => proptest::char::range('\u{1F300}', '\u{1FAFF}'),
        1 => select(vec!['"', '\\', '/', 'é', '中', '\u{a0}', '\u{2028}', '\u{feff}']),
    ]
    .prop_filter("identities reject control characters", |c| !c.is_control());
    vec(character, 1..=256).prop_map(String::from_iter)
}

/// Generates a secret without whitespace at either end, because the builder rejects that.
fn secret() -> impl Strategy<Value = String> {
    prop_oneof!["[!-~]{1,64}", "[!-~][ -~]{0,62}[!-~]", "[a-zé中🎉]{1,16}"]
}

fn finite_float() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

/// Generates any JSON value that twilio-node would write unchanged: integers within ±(2^53 - 1), finite
/// floats, strings, and arrays and objects nested up to three deep.
fn json_value() -> impl Strategy<Value = Value> {
    let safe = MAX_SAFE_INTEGER as i64;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-safe..=safe).prop_map(Value::from),
        finite_float().prop_map(Value::from),
        text(12).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            json_object(inner).prop_map(Value::Object),
        ]
    })
}

fn json_object(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Map<String, Value>> {
    vec((text(8), values), 0..5).prop_map(|members| members.into_iter().collect())
}

fn chat_fields() -> impl Strategy<Value = ChatGrant> {
    (
        field(sid("IS")),
        field(text(40)),
        field(sid("RL")),
        field(sid("CR")),
    )
        .prop_map(|(service, endpoint, role, credential)| {
            let mut chat = ChatGrant::new();
            chat.service_sid = service;
            chat.endpoint_id = endpoint;
            chat.deployment_role_sid = role;
            chat.push_credential_sid = credential;
            chat
        })
}

fn voice() -> impl Strategy<Value = VoiceGrant> {
    // Parameters need an application SID, so they are only generated alongside one.
    let outgoing = prop_oneof![
        Just((None, None)),
        Just((Some(String::new()), None)),
        (sid("AP"), proptest::option::of(json_object(json_value())))
            .prop_map(|(application, params)| (Some(application), params)),
    ];
    (any::<bool>(), outgoing, field(sid("CR")), field(text(40))).prop_map(
        |(incoming, (application, params), credential, endpoint)| {
            let mut voice = VoiceGrant::new();
            voice.incoming_allow = incoming;
            voice.outgoing_application_sid = application;
            voice.outgoing_application_params = params;
            voice.push_credential_sid = credential;
            voice.endpoint_id = endpoint;
            voice
        },
    )
}

/// Generates a valid grant of the type written under `key`.
fn grant_of(key: &'static str) -> BoxedStrategy<Grant> {
    match key {
        "chat" => chat_fields().prop_map(Grant::from).boxed(),
        "ip_messaging" => chat_fields()
            .prop_map(|chat| IpMessagingGrant::new(chat).into())
            .boxed(),
        "video" => field(text(40))
            .prop_map(|room| {
                let mut video = VideoGrant::new();
                video.room = room;
                video.into()
            })
            .boxed(),
        "voice" => voice().prop_map(Grant::from).boxed(),
        "data_sync" => (
            field(prop_oneof![sid("IS"), Just("default".to_owned())]),
            field(text(40)),
        )
            .prop_map(|(service, endpoint)| {
                let mut sync = SyncGrant::new();
                sync.service_sid = service;
                sync.endpoint_id = endpoint;
                sync.into()
            })
            .boxed(),
        "task_router" => (field(sid("WS")), field(sid("WK")), field(text(20)))
            .prop_map(|(workspace, worker, role)| {
                let mut task_router = TaskRouterGrant::new();
                task_router.workspace_sid = workspace;
                task_router.worker_sid = worker;
                task_router.role = role;
                task_router.into()
            })
            .boxed(),
        "player" => json_object(json_value())
            .prop_map(|grant| PlaybackGrant::new(grant).into())
            .boxed(),
        other => panic!("no strategy for grant key {other}"),
    }
}

/// Generates grants of distinct types, in random order.
fn distinct_grants(count: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<Grant>> {
    subsequence(Grant::KEYS.to_vec(), count)
        .prop_shuffle()
        .prop_flat_map(|keys| keys.into_iter().map(grant_of).collect::<Vec<_>>())
}

fn input() -> impl Strategy<Value = Input> {
    (
        sid("AC"),
        sid("SK"),
        secret(),
        identity(),
        1..=86_400_u64,
        proptest::option::of(0..=MAX_SAFE_INTEGER),
        proptest::option::of("[a-z]{1,4}[0-9]{1,3}"),
        distinct_grants(0..=Grant::KEYS.len()),
        0..=MAX_ISSUED_AT,
    )
        .prop_map(
            |(account_sid, api_key_sid, secret, identity, ttl, nbf, region, grants, issued_at)| {
                // The library rejects an nbf at or after exp, so draw it below exp.
                let nbf = nbf.map(|nbf| nbf % (issued_at + ttl));
                Input {
                    account_sid,
                    api_key_sid,
                    secret,
                    identity,
                    ttl,
                    nbf,
                    region,
                    grants,
                    issued_at,
                }
            },
        )
}

fn keys(map: &Map<String, Value>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

/// Returns the compact JSON text of a value. `Value` equality ignores object key order, and the text does
/// not, so comparing texts also checks the order.
fn to_text(value: &Value) -> String {
    serde_json::to_string(value).expect("values serialize")
}

fn hmac_sha256(secret: &str, message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Returns the grant's JSON as the official libraries define it, built from its fields here
/// rather than by the library's writer.
fn expected_grant_json(grant: &Grant) -> Value {
    fn put(object: &mut Map<String, Value>, key: &str, value: &Option<String>) {
        if let Some(value) = value.as_deref().filter(|value| !value.is_empty()) {
            object.insert(key.to_owned(), json!(value));
        }
    }
    fn chat(fields: &ChatGrant) -> Map<String, Value> {
        let mut object = Map::new();
        put(&mut object, "service_sid", &fields.service_sid);
        put(&mut object, "endpoint_id", &fields.endpoint_id);
        put(
            &mut object,
            "deployment_role_sid",
            &fields.deployment_role_sid,
        );
        put(
            &mut object,
            "push_credential_sid",
            &fields.push_credential_sid,
        );
        object
    }

    let mut object = Map::new();
    match grant {
        Grant::Chat(fields) => object = chat(fields),
        Grant::IpMessaging(IpMessagingGrant(fields)) => object = chat(fields),
        Grant::Video(video) => put(&mut object, "room", &video.room),
        Grant::Voice(voice) => {
            if voice.incoming_allow {
                object.insert("incoming".into(), json!({"allow": true}));
            }
            let application = voice.outgoing_application_sid.as_deref();
            if let Some(application) = application.filter(|sid| !sid.is_empty()) {
                let mut outgoing = Map::new();
                outgoing.insert("application_sid".into(), json!(application));
                if let Some(params) = &voice.outgoing_application_params {
                    outgoing.insert("params".into(), Value::Object(params.clone()));
                }
                object.insert("outgoing".into(), Value::Object(outgoing));
            }
            put(
                &mut object,
                "push_credential_sid",
                &voice.push_credential_sid,
            );
            put(&mut object, "endpoint_id", &voice.endpoint_id);
        }
        Grant::Sync(sync) => {
            put(&mut object, "service_sid", &sync.service_sid);
            put(&mut object, "endpoint_id", &sync.endpoint_id);
        }
        Grant::TaskRouter(task_router) => {
            put(&mut object, "workspace_sid", &task_router.workspace_sid);
            put(&mut object, "worker_sid", &task_router.worker_sid);
            put(&mut object, "role", &task_router.role);
        }
        Grant::Playback(playback) => object = playback.grant.clone(),
        other => panic!("no model for grant {other:?}"),
    }
    Value::Object(object)
}

/// Checks that `actual` is `expected` with objects in the same key order, where numbers are
/// equal when they are the same number: JavaScript writes the float 2.0 as `2`, which parses
/// back as an integer.
fn assert_same_json(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Number(actual), Value::Number(expected)) => {
            if actual != expected {
                let (actual, expected) = (as_f64(actual), as_f64(expected));
                assert_eq!(actual, expected, "number at {path}");
            }
        }
        (Value::Array(actual), Value::Array(expected)) => {
            assert_eq!(actual.len(), expected.len(), "array length at {path}");
            for (index, (actual, expected)) in actual.iter().zip(expected).enumerate() {
                assert_same_json(actual, expected, &format!("{path}[{index}]"));
            }
        }
        (Value::Object(actual), Value::Object(expected)) => {
            assert_eq!(keys(actual), keys(expected), "key order at {path}");
            for (key, expected) in expected {
                assert_same_json(&actual[key], expected, &format!("{path}.{key}"));
            }
        }
        _ => assert_eq!(actual, expected, "value at {path}"),
    }
}

fn as_f64(number: &serde_json::Number) -> f64 {
    number.as_f64().expect("serde_json numbers convert to f64")
}

fn assert_header(decoded: &UnverifiedToken, region: Option<&str>) {
    let mut expected = vec!["alg", "typ", "cty"];
    if region.is_some() {
        expected.push("twr");
    }
    assert_eq!(keys(&decoded.header), expected, "header key order");
    assert_eq!(decoded.header["alg"], "HS256");
    assert_eq!(decoded.header["typ"], "JWT");
    assert_eq!(decoded.header["cty"], "twilio-fpa;v=1");
    if let Some(region) = region {
        assert_eq!(decoded.header["twr"], region);
    }
}

fn assert_claims(decoded: &UnverifiedToken, input: &Input) {
    let claims = &decoded.claims;
    let mut expected = vec!["jti", "grants"];
    if input.nbf.is_some() {
        expected.push("nbf");
    }
    expected.extend(["iat", "exp", "iss", "sub"]);
    assert_eq!(keys(claims), expected, "claim order");

    assert_eq!(claims["iss"], input.api_key_sid.as_str());
    assert_eq!(claims["sub"], input.account_sid.as_str());
    assert_eq!(claims["iat"], input.issued_at);
    assert_eq!(claims["exp"], input.issued_at + input.ttl);
    assert_eq!(
        claims["jti"],
        format!("{}-{}", input.api_key_sid, input.issued_at)
    );
    if let Some(nbf) = input.nbf {
        assert_eq!(claims["nbf"], nbf);
    }
}

fn assert_grants(decoded: &UnverifiedToken, identity: &str, grants: &[Grant]) {
    let written = decoded.claims["grants"]
        .as_object()
        .expect("grants is an object");
    let mut expected_keys = vec!["identity"];
    expected_keys.extend(grants.iter().map(Grant::key));
    assert_eq!(keys(written), expected_keys, "grant order");
    assert_eq!(written["identity"], identity);

    for grant in grants {
        let key = grant.key();
        assert_eq!(
            to_text(&written[key]),
            to_text(&grant.to_json()),
            "{key} differs from Grant::to_json"
        );
        assert_same_json(&written[key], &expected_grant_json(grant), key);
    }
}

fn assert_signature(jwt: &str, decoded: &UnverifiedToken, secret: &str) {
    let signing_input = &jwt[..decoded.signing_input_len];
    assert_eq!(signing_input.matches('.').count(), 1, "header.payload");
    assert!(jwt[decoded.signing_input_len..].starts_with('.'));
    assert_eq!(
        decoded.signature,
        hmac_sha256(secret, signing_input.as_bytes()),
        "signature"
    );
}

proptest! {
    // Integration tests have no lib.rs for proptest's default lookup, so failures are saved
    // beside this file instead.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn mint_any_valid_input_decodes_to_input(input in input()) {
        let token = input.builder().build().expect("valid input builds");
        let jwt = token.to_jwt_at(input.issued_at).expect("issue time is in range");
        let decoded = decode_unverified(&jwt).expect("minted token decodes");

        assert_header(&decoded, input.region.as_deref());
        assert_claims(&decoded, &input);
        assert_grants(&decoded, &input.identity, &input.grants);
        assert_signature(&jwt, &decoded, &input.secret);
        prop_assert_eq!(token.grants(), input.grants.as_slice());
    }

    #[test]
    fn grant_added_twice_keeps_first_position(
        (grants, index, replacement, split) in distinct_grants(1..=Grant::KEYS.len())
            .prop_flat_map(|grants| {
                let len = grants.len();
                (Just(grants), 0..len)
            })
            .prop_flat_map(|(grants, index)| {
                let key = grants[index].key();
                let len = grants.len();
                (Just(grants), Just(index), grant_of(key), index + 1..=len)
            })
    ) {
        // The replacement is added after `split` of the grants, somewhere after the original.
        let mut builder = AccessToken::builder()
            .account_sid(ACCOUNT_SID)
            .api_key_sid(API_KEY_SID)
            .api_secret(SECRET)
            .identity("alice");
        for grant in &grants[..split] {
            builder = builder.grant(grant.clone());
        }
        builder = builder.grant(replacement.clone());
        for grant in &grants[split..] {
            builder = builder.grant(grant.clone());
        }
        let token = builder.build().expect("valid grants build");

        let mut expected = grants.clone();
        expected[index] = replacement;
        prop_assert_eq!(token.grants(), expected.as_slice());

        let jwt = token.to_jwt_at(1_700_000_000).expect("mints");
        let decoded = decode_unverified(&jwt).expect("minted token decodes");
        assert_grants(&decoded, "alice", &expected);
    }

    #[test]
    fn invalid_sid_rejected_with_field(
        (field, kind, apply) in select(SID_TARGETS),
        value in not_a_sid(),
    ) {
        // Grant SIDs that are empty are left out of the token rather than rejected, and Sync
        // takes `default` in place of a service SID.
        let optional = !matches!(field, "sub" | "iss");
        prop_assume!(!(optional && value.is_empty()));
        prop_assume!(!(field == "data_sync.service_sid" && value == "default"));
        prop_assume!(!is_sid(kind.prefix(), &value));

        let error = validate_sid(kind, &value).expect_err("not a SID, so validation fails");
        let base = AccessToken::builder()
            .account_sid(ACCOUNT_SID)
            .api_key_sid(API_KEY_SID)
            .api_secret(SECRET)
            .identity("alice");
        let result = apply(base, value).build().map(|_| ());
        prop_assert_eq!(result, Err(MintError::InvalidSid { field, error }));
    }
}

type SidTarget = (
    &'static str,
    SidKind,
    fn(AccessTokenBuilder, String) -> AccessTokenBuilder,
);

/// Every SID the builder checks: the field name in errors, the kind, and how to set it.
const SID_TARGETS: &[SidTarget] = &[
    ("sub", SidKind::Account, |b, v| b.account_sid(v)),
    ("iss", SidKind::ApiKey, |b, v| b.api_key_sid(v)),
    ("chat.service_sid", SidKind::Service, |b, v| {
        b.grant(ChatGrant::new().service_sid(v))
    }),
    ("chat.deployment_role_sid", SidKind::Role, |b, v| {
        b.grant(ChatGrant::new().deployment_role_sid(v))
    }),
    ("chat.push_credential_sid", SidKind::Credential, |b, v| {
        b.grant(ChatGrant::new().push_credential_sid(v))
    }),
    ("ip_messaging.service_sid", SidKind::Service, |b, v| {
        b.grant(IpMessagingGrant::new(ChatGrant::new().service_sid(v)))
    }),
    (
        "voice.outgoing.application_sid",
        SidKind::Application,
        |b, v| b.grant(VoiceGrant::new().outgoing_application_sid(v)),
    ),
    ("voice.push_credential_sid", SidKind::Credential, |b, v| {
        b.grant(VoiceGrant::new().push_credential_sid(v))
    }),
    ("data_sync.service_sid", SidKind::Service, |b, v| {
        b.grant(SyncGrant::new().service_sid(v))
    }),
    ("task_router.workspace_sid", SidKind::Workspace, |b, v| {
        b.grant(TaskRouterGrant::new().workspace_sid(v))
    }),
    ("task_router.worker_sid", SidKind::Worker, |b, v| {
        b.grant(TaskRouterGrant::new().worker_sid(v))
    }),
];

/// Tells whether `value` is `prefix` followed by 32 lowercase hex digits, independently of the
/// library's check.
fn is_sid(prefix: &str, value: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 32 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Strings that are mostly near misses of a SID: any text, a known prefix with the wrong
/// length or case, another type's prefix, or whitespace around a valid SID.
fn not_a_sid() -> impl Strategy<Value = String> {
    let prefix = select(vec![
        "AC", "SK", "IS", "RL", "CR", "AP", "WS", "WK", "XX", "ac", "",
    ]);
    prop_oneof![
        text(40),
        (prefix.clone(), "[0-9a-zA-Z]{0,40}").prop_map(|(prefix, rest)| prefix.to_owned() + &rest),
        (prefix.clone(), "[0-9a-fA-F]{32}").prop_map(|(prefix, rest)| prefix.to_owned() + &rest),
        (
            prefix,
            "[0-9a-f]{32}",
            select(vec![" ", "\n", "\t"]),
            any::<bool>()
        )
            .prop_map(|(prefix, hex, space, before)| if before {
                format!("{space}{prefix}{hex}")
            } else {
                format!("{prefix}{hex}{space}")
            }),
    ]
}
