//! Snapshots of every error message the library can return, one line per variant.
//!
//! Each error is produced through the public API where a caller can reach it, compared with the
//! exact variant, and then listed as `label: message`. Every message must start in lowercase,
//! end without a period, and never contain the API secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use twilio_access_token::dangerous::decode_unverified;
use twilio_access_token::{
    AccessToken, AccessTokenBuilder, ApiSecret, ChatGrant, Claims, Clock, DecodeError,
    EndpointIdError, EndpointIdPart, Grant, GrantJsonError, IdentityError, MAX_TOKEN_BYTES,
    MintError, RegionError, RevocationCheck, Segment, SidError, SidKind, SidProblem, Ttl, TtlError,
    Verifier, VerifierError, VerifyError, VoiceGrant, endpoint_id, validate_identity,
    validate_region, validate_sid,
};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const OTHER_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const OTHER_API_KEY_SID: &str = "SK11111111111111111111111111111111";
const SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
const WRONG_SECRET: &str = "FAKEwrongSecretDoNotUse456789abc";
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
const NOW: u64 = 1_700_000_000;

/// Error messages with labels, each checked against its exact variant when added.
#[derive(Default)]
struct Messages(Vec<(String, String)>);

impl Messages {
    fn add<E>(&mut self, label: &str, actual: Result<impl Sized, E>, expected: E)
    where
        E: std::fmt::Display + std::fmt::Debug + PartialEq,
    {
        let Err(actual) = actual else {
            panic!("{label}: expected {expected:?}, got a success");
        };
        assert_eq!(actual, expected, "{label}");
        self.0.push((label.to_owned(), expected.to_string()));
    }

    fn check_grammar(&self) {
        for (label, message) in &self.0 {
            let first = message.chars().next().expect("message is not empty");
            assert!(!first.is_uppercase(), "{label} starts uppercase: {message}");
            assert!(
                !message.ends_with('.'),
                "{label} ends with a period: {message}"
            );
            assert!(
                !message.contains(SECRET),
                "{label} shows the secret: {message}"
            );
            assert!(
                !message.contains(WRONG_SECRET),
                "{label} shows a secret: {message}"
            );
            assert!(
                !message.contains("FAKE"),
                "{label} shows part of a secret: {message}"
            );
        }
    }

    fn joined(&self) -> String {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|(label, message)| format!("{label}: {message}"))
            .collect();
        lines.join("\n")
    }
}

fn builder() -> AccessTokenBuilder {
    AccessToken::builder()
        .account_sid(ACCOUNT_SID)
        .api_key_sid(API_KEY_SID)
        .api_secret(SECRET)
        .identity("alice")
}

fn sid_error(expected: SidKind, value: &str, problem: SidProblem) -> SidError {
    SidError {
        expected,
        value: value.to_owned(),
        problem,
    }
}

/// A clock set before 1970.
struct BeforeEpoch;

impl Clock for BeforeEpoch {
    fn now(&self) -> Option<u64> {
        None
    }
}

fn add_mint_errors(messages: &mut Messages) {
    let missing = AccessToken::builder();
    messages.add(
        "MintError::MissingAccountSid",
        missing
            .clone()
            .api_key_sid(API_KEY_SID)
            .api_secret(SECRET)
            .identity("alice")
            .build(),
        MintError::MissingAccountSid,
    );
    messages.add(
        "MintError::MissingApiKeySid",
        missing
            .clone()
            .account_sid(ACCOUNT_SID)
            .api_secret(SECRET)
            .identity("alice")
            .build(),
        MintError::MissingApiKeySid,
    );
    messages.add(
        "MintError::MissingApiSecret",
        missing
            .clone()
            .account_sid(ACCOUNT_SID)
            .api_key_sid(API_KEY_SID)
            .identity("alice")
            .build(),
        MintError::MissingApiSecret,
    );
    messages.add(
        "MintError::MissingIdentity",
        missing
            .account_sid(ACCOUNT_SID)
            .api_key_sid(API_KEY_SID)
            .api_secret(SECRET)
            .build(),
        MintError::MissingIdentity,
    );

    messages.add(
        "MintError::EmptyApiSecret",
        builder().api_secret("").build(),
        MintError::EmptyApiSecret,
    );
    messages.add(
        "MintError::ApiSecretWhitespace",
        builder().api_secret(format!("{SECRET}\n")).build(),
        MintError::ApiSecretWhitespace,
    );

    messages.add(
        "MintError::InvalidSid (account SID is an API key SID)",
        builder().account_sid(API_KEY_SID).build(),
        MintError::InvalidSid {
            field: "sub",
            error: sid_error(
                SidKind::Account,
                API_KEY_SID,
                SidProblem::OtherKind(SidKind::ApiKey),
            ),
        },
    );
    messages.add(
        "MintError::InvalidSid (API key SID is an account SID)",
        builder().api_key_sid(ACCOUNT_SID).build(),
        MintError::InvalidSid {
            field: "iss",
            error: sid_error(
                SidKind::ApiKey,
                ACCOUNT_SID,
                SidProblem::OtherKind(SidKind::Account),
            ),
        },
    );
    messages.add(
        "MintError::InvalidSid (grant field)",
        builder()
            .grant(ChatGrant::new().service_sid("IS123"))
            .build(),
        MintError::InvalidSid {
            field: "chat.service_sid",
            error: sid_error(
                SidKind::Service,
                "IS123",
                SidProblem::WrongLength { found: 3 },
            ),
        },
    );
    messages.add(
        "MintError::InvalidIdentity",
        builder().identity("alice\tsmith").build(),
        MintError::InvalidIdentity(IdentityError::ControlCharacter {
            character: '\t',
            index: 5,
        }),
    );

    messages.add(
        "MintError::InvalidTtl",
        builder().ttl_secs(90_000).build(),
        MintError::InvalidTtl(TtlError::TooLong { secs: 90_000 }),
    );
    messages.add(
        "MintError::InvalidRegion",
        builder().region("US1").build(),
        MintError::InvalidRegion(RegionError {
            value: "US1".into(),
        }),
    );
    messages.add(
        "MintError::VoiceParamsWithoutApplication",
        builder()
            .grant(VoiceGrant::new().outgoing_param("To", "+15005550006"))
            .build(),
        MintError::VoiceParamsWithoutApplication,
    );
    messages.add(
        "MintError::UnsafeInteger",
        builder()
            .grant(
                VoiceGrant::new()
                    .outgoing_application_sid("AP00000000000000000000000000000005")
                    .outgoing_param("customer_id", 9_007_199_254_740_993_u64),
            )
            .build(),
        MintError::UnsafeInteger {
            path: "voice.outgoing.params.customer_id".into(),
            value: "9007199254740993".into(),
        },
    );

    messages.add(
        "MintError::TimeOutOfRange (nbf)",
        builder().nbf(MAX_SAFE_INTEGER + 1).build(),
        MintError::TimeOutOfRange {
            claim: "nbf",
            value: MAX_SAFE_INTEGER + 1,
        },
    );
    let token = builder().build().expect("valid builder");
    messages.add(
        "MintError::IssueTimeOutOfRange",
        token.to_jwt_at(1_700_000_000_000),
        MintError::IssueTimeOutOfRange {
            issued_at: 1_700_000_000_000,
        },
    );
    messages.add(
        "MintError::ClockBeforeEpoch",
        token.to_jwt_with(&BeforeEpoch),
        MintError::ClockBeforeEpoch,
    );
}

fn add_sid_errors(messages: &mut Messages) {
    let cases = [
        ("Empty", SidKind::Account, "", SidProblem::Empty),
        (
            "Whitespace",
            SidKind::Account,
            "AC0123456789abcdef0123456789abcdef\n",
            SidProblem::Whitespace,
        ),
        (
            "OtherKind (account SID expected, API key SID given)",
            SidKind::Account,
            API_KEY_SID,
            SidProblem::OtherKind(SidKind::ApiKey),
        ),
        (
            "OtherKind (API key SID expected, account SID given)",
            SidKind::ApiKey,
            ACCOUNT_SID,
            SidProblem::OtherKind(SidKind::Account),
        ),
        (
            "OtherKind (any other pair)",
            SidKind::Service,
            "CR00000000000000000000000000000004",
            SidProblem::OtherKind(SidKind::Credential),
        ),
        (
            "WrongPrefix",
            SidKind::Application,
            "XY00000000000000000000000000000005",
            SidProblem::WrongPrefix,
        ),
        (
            "WrongLength",
            SidKind::Workspace,
            "WS0123",
            SidProblem::WrongLength { found: 4 },
        ),
        (
            "UppercaseHex",
            SidKind::Worker,
            "WK0123456789ABCDEF0123456789abcdef",
            SidProblem::UppercaseHex,
        ),
        (
            "NotHex",
            SidKind::Role,
            "RL0123456789abcdef0123456789abcdeg",
            SidProblem::NotHex,
        ),
    ];
    for (label, kind, value, problem) in cases {
        messages.add(
            &format!("SidProblem::{label}"),
            validate_sid(kind, value),
            sid_error(kind, value, problem),
        );
    }
}

fn add_identity_ttl_region_errors(messages: &mut Messages) {
    messages.add(
        "IdentityError::Empty",
        validate_identity(""),
        IdentityError::Empty,
    );
    messages.add(
        "IdentityError::TooLong",
        validate_identity(&"a".repeat(257)),
        IdentityError::TooLong { chars: 257 },
    );
    messages.add(
        "IdentityError::ControlCharacter",
        validate_identity("ab\ncd"),
        IdentityError::ControlCharacter {
            character: '\n',
            index: 2,
        },
    );

    messages.add("TtlError::Zero", Ttl::from_secs(0), TtlError::Zero);
    messages.add(
        "TtlError::TooLong",
        Ttl::from_secs(90_000),
        TtlError::TooLong { secs: 90_000 },
    );
    messages.add(
        "TtlError::Negative",
        "-60".parse::<Ttl>(),
        TtlError::Negative {
            value: "-60".into(),
        },
    );
    messages.add(
        "TtlError::NotWholeSeconds",
        "1.5".parse::<Ttl>(),
        TtlError::NotWholeSeconds {
            value: "1.5".into(),
        },
    );
    messages.add(
        "TtlError::Invalid",
        "2 hours".parse::<Ttl>(),
        TtlError::Invalid {
            value: "2 hours".into(),
        },
    );

    messages.add(
        "RegionError",
        validate_region("US1"),
        RegionError {
            value: "US1".into(),
        },
    );

    messages.add(
        "EndpointIdError::Empty",
        endpoint_id("", "alice", "phone"),
        EndpointIdError::Empty(EndpointIdPart::App),
    );
    messages.add(
        "EndpointIdError::Colon",
        endpoint_id("chat", "alice", "phone:1"),
        EndpointIdError::Colon {
            part: EndpointIdPart::Device,
            value: "phone:1".into(),
        },
    );
    messages.add(
        "EndpointIdError::ControlCharacter",
        endpoint_id("chat", "alice\n", "phone"),
        EndpointIdError::ControlCharacter {
            part: EndpointIdPart::Identity,
        },
    );
}

fn add_grant_json_errors(messages: &mut Messages) {
    messages.add(
        "GrantJsonError::UnknownGrant",
        Grant::from_json("rtc", &json!({})),
        GrantJsonError::UnknownGrant { key: "rtc".into() },
    );
    messages.add(
        "GrantJsonError::IdentityInGrants",
        Grant::from_json("identity", &json!("alice")),
        GrantJsonError::IdentityInGrants,
    );
    messages.add(
        "GrantJsonError::NotAnObject",
        Grant::from_json("voice", &json!({"outgoing": "AP1"})),
        GrantJsonError::NotAnObject {
            path: "voice.outgoing".into(),
        },
    );
    messages.add(
        "GrantJsonError::UnknownField",
        Grant::from_json("video", &json!({"rooms": "standup"})),
        GrantJsonError::UnknownField {
            path: "video".into(),
            field: "rooms".into(),
            known: &["room"],
        },
    );
    messages.add(
        "GrantJsonError::WrongType",
        Grant::from_json("voice", &json!({"incoming": {"allow": "yes"}})),
        GrantJsonError::WrongType {
            path: "voice.incoming.allow".into(),
            expected: "true or false",
        },
    );
}

fn encode(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

fn add_decode_errors(messages: &mut Messages) {
    messages.add(
        "DecodeError::Empty",
        decode_unverified(""),
        DecodeError::Empty,
    );
    let long = "a".repeat(MAX_TOKEN_BYTES + 1);
    messages.add(
        "DecodeError::TooLarge",
        decode_unverified(&long),
        DecodeError::TooLarge {
            len: MAX_TOKEN_BYTES + 1,
        },
    );
    messages.add(
        "DecodeError::SegmentCount",
        decode_unverified("e30.e30"),
        DecodeError::SegmentCount { found: 2 },
    );
    messages.add(
        "DecodeError::InvalidBase64 (bad character)",
        decode_unverified("e30.e30=.c2ln"),
        DecodeError::InvalidBase64 {
            segment: Segment::Payload,
            offset: Some(7),
        },
    );
    messages.add(
        "DecodeError::InvalidBase64 (impossible length)",
        decode_unverified("e30.e30.a"),
        DecodeError::InvalidBase64 {
            segment: Segment::Signature,
            offset: None,
        },
    );
    let not_utf8 = format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode([0xff, 0xfe]));
    messages.add(
        "DecodeError::InvalidUtf8",
        decode_unverified(&not_utf8),
        DecodeError::InvalidUtf8 {
            segment: Segment::Header,
        },
    );
    messages.add(
        "DecodeError::InvalidJson",
        decode_unverified(&format!("e30.{}.c2ln", encode("{"))),
        DecodeError::InvalidJson {
            segment: Segment::Payload,
            message: "EOF while parsing an object at line 1 column 1".into(),
        },
    );
    messages.add(
        "DecodeError::NotAnObject",
        decode_unverified(&format!("{}.e30.c2ln", encode("[]"))),
        DecodeError::NotAnObject {
            segment: Segment::Header,
        },
    );
    messages.add(
        "DecodeError::DuplicateKey",
        decode_unverified(&format!("e30.{}.c2ln", encode(r#"{"sub":"a","sub":"b"}"#))),
        DecodeError::DuplicateKey {
            segment: Segment::Payload,
            key: "sub".into(),
        },
    );
}

/// Signs `header` and `claims` as given, so tests can build tokens that the minting API would
/// reject.
fn sign(header: &Value, claims: &Value, secret: &str) -> String {
    let signing_input = format!(
        "{}.{}",
        encode(&header.to_string()),
        encode(&claims.to_string())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn header() -> Value {
    json!({"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"})
}

fn claims() -> Value {
    json!({
        "jti": format!("{API_KEY_SID}-{NOW}"),
        "grants": {"identity": "alice"},
        "iat": NOW,
        "exp": NOW + 3600,
        "iss": API_KEY_SID,
        "sub": ACCOUNT_SID,
    })
}

/// Returns the default claims with `changes` applied. A `null` change removes the claim.
fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
    let object = claims.as_object_mut().expect("object");
    for (key, value) in changes.as_object().expect("object") {
        if value.is_null() {
            object.remove(key);
        } else {
            object.insert(key.clone(), value.clone());
        }
    }
    claims
}

fn header_with(key: &str, value: Value) -> Value {
    let mut header = header();
    let object = header.as_object_mut().expect("object");
    if value.is_null() {
        object.remove(key);
    } else {
        object.insert(key.to_owned(), value);
    }
    header
}

/// Rejects every token, for the revocation message.
struct DenyAll;

impl RevocationCheck for DenyAll {
    fn check(&self, claims: &Claims) -> Option<String> {
        Some(format!("identity {} is on the deny list", claims.identity))
    }
}

fn verifier() -> Verifier {
    Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, ApiSecret::new(SECRET))
        .build()
        .expect("valid verifier")
}

fn add_verify_errors(messages: &mut Messages) {
    let verifier = verifier();
    let verify = |header: Value, claims: Value| {
        verifier.verify_at(&sign(&header, &claims, SECRET), NOW + 10)
    };

    messages.add(
        "VerifyError::Malformed",
        verifier.verify_at("", NOW),
        VerifyError::Malformed(DecodeError::Empty),
    );
    messages.add(
        "VerifyError::UnsupportedAlgorithm",
        verify(header_with("alg", json!("none")), claims()),
        VerifyError::UnsupportedAlgorithm {
            alg: Some("\"none\"".into()),
        },
    );
    messages.add(
        "VerifyError::UnsupportedAlgorithm (missing)",
        verify(header_with("alg", Value::Null), claims()),
        VerifyError::UnsupportedAlgorithm { alg: None },
    );
    messages.add(
        "VerifyError::WrongType",
        verify(header_with("typ", json!("at+jwt")), claims()),
        VerifyError::WrongType {
            typ: Some("\"at+jwt\"".into()),
        },
    );
    messages.add(
        "VerifyError::WrongContentType",
        verify(header_with("cty", Value::Null), claims()),
        VerifyError::WrongContentType { cty: None },
    );
    messages.add(
        "VerifyError::UnsupportedCritical",
        verify(header_with("crit", json!(["b64"])), claims()),
        VerifyError::UnsupportedCritical {
            crit: "[\"b64\"]".into(),
        },
    );
    messages.add(
        "VerifyError::InvalidRegion",
        verify(header_with("twr", json!(1)), claims()),
        VerifyError::InvalidRegion,
    );
    messages.add(
        "VerifyError::MissingIssuer",
        verify(header(), claims_with(json!({"iss": null}))),
        VerifyError::MissingIssuer,
    );
    messages.add(
        "VerifyError::UnknownApiKey",
        verify(header(), claims_with(json!({"iss": OTHER_API_KEY_SID}))),
        VerifyError::UnknownApiKey {
            iss: OTHER_API_KEY_SID.into(),
        },
    );
    messages.add(
        "VerifyError::BadSignature",
        verifier.verify_at(&sign(&header(), &claims(), WRONG_SECRET), NOW),
        VerifyError::BadSignature {
            api_key_sid: API_KEY_SID.into(),
        },
    );
    messages.add(
        "VerifyError::WrongAccount",
        verify(header(), claims_with(json!({"sub": OTHER_ACCOUNT_SID}))),
        VerifyError::WrongAccount {
            expected: ACCOUNT_SID.into(),
            found: Some(format!("\"{OTHER_ACCOUNT_SID}\"")),
        },
    );
    messages.add(
        "VerifyError::MissingExpiry",
        verify(header(), claims_with(json!({"exp": null}))),
        VerifyError::MissingExpiry,
    );
    messages.add(
        "VerifyError::InvalidTime",
        verify(header(), claims_with(json!({"exp": 1_700_003_600.5}))),
        VerifyError::InvalidTime {
            claim: "exp",
            value: "1700003600.5".into(),
        },
    );
    let token = sign(&header(), &claims(), SECRET);
    messages.add(
        "VerifyError::Expired",
        verifier.verify_at(&token, NOW + 3600 + 61),
        VerifyError::Expired {
            exp: NOW + 3600,
            now: NOW + 3661,
            leeway: 60,
        },
    );
    messages.add(
        "VerifyError::NotYetValid",
        verify(header(), claims_with(json!({"nbf": NOW + 600}))),
        VerifyError::NotYetValid {
            nbf: NOW + 600,
            now: NOW + 10,
            leeway: 60,
        },
    );
    messages.add(
        "VerifyError::LifetimeTooLong",
        verify(header(), claims_with(json!({"exp": NOW + 90_000}))),
        VerifyError::LifetimeTooLong {
            lifetime: 90_000,
            from: "iat",
            max: 86_400,
        },
    );
    let one_hour = Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, ApiSecret::new(SECRET))
        .max_lifetime_secs(3600)
        .build()
        .expect("valid verifier");
    messages.add(
        "VerifyError::LifetimeTooLong (maximum set to 1h)",
        one_hour.verify_at(
            &sign(&header(), &claims_with(json!({"exp": NOW + 7200})), SECRET),
            NOW + 10,
        ),
        VerifyError::LifetimeTooLong {
            lifetime: 7200,
            from: "iat",
            max: 3600,
        },
    );
    messages.add(
        "VerifyError::GrantsNotObject",
        verify(header(), claims_with(json!({"grants": []}))),
        VerifyError::GrantsNotObject,
    );
    messages.add(
        "VerifyError::MissingIdentity",
        verify(header(), claims_with(json!({"grants": {"video": {}}}))),
        VerifyError::MissingIdentity,
    );
    messages.add(
        "VerifyError::IdentityNotString",
        verify(header(), claims_with(json!({"grants": {"identity": 42}}))),
        VerifyError::IdentityNotString { value: "42".into() },
    );
    messages.add(
        "VerifyError::InvalidGrant",
        verify(
            header(),
            claims_with(json!({"grants": {"identity": "alice", "video": {"room": 7}}})),
        ),
        VerifyError::InvalidGrant(GrantJsonError::WrongType {
            path: "video.room".into(),
            expected: "a string",
        }),
    );
    let revoking = Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, ApiSecret::new(SECRET))
        .revocation_check(DenyAll)
        .build()
        .expect("valid verifier");
    messages.add(
        "VerifyError::Revoked",
        revoking.verify_at(&token, NOW + 10),
        VerifyError::Revoked {
            reason: "identity alice is on the deny list".into(),
        },
    );
}

fn add_verifier_errors(messages: &mut Messages) {
    messages.add(
        "VerifierError::NoKeys",
        Verifier::builder(ACCOUNT_SID).build(),
        VerifierError::NoKeys,
    );
    messages.add(
        "VerifierError::MissingAccountSid",
        Verifier::builder("").key(API_KEY_SID, SECRET).build(),
        VerifierError::MissingAccountSid,
    );
    messages.add(
        "VerifierError::InvalidSid",
        Verifier::builder(ACCOUNT_SID)
            .key(ACCOUNT_SID, SECRET)
            .build(),
        VerifierError::InvalidSid(sid_error(
            SidKind::ApiKey,
            ACCOUNT_SID,
            SidProblem::OtherKind(SidKind::Account),
        )),
    );
    messages.add(
        "VerifierError::DuplicateKey",
        Verifier::builder(ACCOUNT_SID)
            .key(API_KEY_SID, SECRET)
            .key(API_KEY_SID, WRONG_SECRET)
            .build(),
        VerifierError::DuplicateKey {
            sid: API_KEY_SID.into(),
        },
    );
    messages.add(
        "VerifierError::EmptySecret",
        Verifier::builder(ACCOUNT_SID).key(API_KEY_SID, "").build(),
        VerifierError::EmptySecret {
            sid: API_KEY_SID.into(),
        },
    );
}

#[test]
fn mint_and_parse_errors_match_snapshot() {
    let mut messages = Messages::default();
    add_mint_errors(&mut messages);
    add_sid_errors(&mut messages);
    add_identity_ttl_region_errors(&mut messages);
    add_grant_json_errors(&mut messages);
    add_decode_errors(&mut messages);

    messages.check_grammar();
    insta::assert_snapshot!("mint_and_parse_errors", messages.joined());
}

#[test]
fn verify_errors_match_snapshot() {
    let mut messages = Messages::default();
    add_verify_errors(&mut messages);
    add_verifier_errors(&mut messages);

    messages.check_grammar();
    insta::assert_snapshot!("verify_errors", messages.joined());
}
