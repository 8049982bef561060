//! Properties of verification that hold for every input.
//!
//! Any token the library mints verifies at its issue time and returns what was minted. Any
//! single-byte change makes it fail. No input, however broken, makes `verify_at`, `diagnose`
//! or `dangerous::decode_unverified` panic.

mod forge;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value};
use twilio_access_token::dangerous::decode_unverified;
use twilio_access_token::{
    AccessToken, ApiSecret, ChatGrant, DiagnoseContext, Grant, IpMessagingGrant, MAX_ISSUE_TIME,
    SyncGrant, TaskRouterGrant, Verifier, VideoGrant, VoiceGrant, diagnose,
};

/// The largest input the no-panic properties generate: 20 KiB, past the 16 KiB token limit.
const MAX_INPUT_BYTES: usize = 20 * 1024;

fn sid(prefix: &'static str) -> impl Strategy<Value = String> {
    "[0-9a-f]{32}".prop_map(move |hex| format!("{prefix}{hex}"))
}

/// Generates an unset or non-empty field. Empty strings are left out of the token, so they
/// would come back as unset and make the round trip unequal for no reason.
fn field(value: impl Strategy<Value = String>) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(value)
}

/// Generates an identity of 1 to 64 characters: printable ASCII, quotes and backslashes,
/// non-ASCII letters, emoji and the separators JSON writers treat specially.
fn identity() -> impl Strategy<Value = String> {
    let character = prop_oneof![
        4 => proptest::char::range(' ', '~'),
        1 => any::<char>(),
        1 => select(vec!['"', '\\', '/', 'é', '中', '🎉', '\u{2028}', '\u{feff}']),
    ]
    .prop_filter("identities reject control characters", |c| !c.is_control());
    vec(character, 1..=64).prop_map(String::from_iter)
}

/// Generates a secret without whitespace at either end, because the builder rejects that.
fn secret() -> impl Strategy<Value = String> {
    prop_oneof!["[!-~]{1,64}", "[!-~][ -~]{0,30}[!-~]", "[a-zé中🎉]{1,16}"]
}

fn chat_fields() -> impl Strategy<Value = ChatGrant> {
    (
        field(sid("IS")),
        field("[ -~]{1,30}"),
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

/// Generates Voice outgoing parameters: strings, booleans and safe integers, which read back
/// as written.
fn voice_params() -> impl Strategy<Value = Map<String, Value>> {
    let value = prop_oneof![
        "[ -~]{0,12}".prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        (-1_000_000i64..1_000_000).prop_map(Value::from),
    ];
    vec(("[a-zA-Z]{1,8}", value), 0..4).prop_map(|members| members.into_iter().collect())
}

fn voice() -> impl Strategy<Value = VoiceGrant> {
    let outgoing = prop_oneof![
        Just((None, None)),
        (sid("AP"), proptest::option::of(voice_params()))
            .prop_map(|(application, params)| (Some(application), params)),
    ];
    (any::<bool>(), outgoing, field(sid("CR"))).prop_map(
        |(incoming, (application, params), credential)| {
            let mut voice = VoiceGrant::new();
            voice.incoming_allow = incoming;
            voice.outgoing_application_sid = application;
            voice.outgoing_application_params = params;
            voice.push_credential_sid = credential;
            voice
        },
    )
}

fn grant() -> impl Strategy<Value = Grant> {
    prop_oneof![
        chat_fields().prop_map(Grant::from),
        chat_fields().prop_map(|chat| IpMessagingGrant::new(chat).into()),
        field("[ -~]{1,30}").prop_map(|room| {
            let mut video = VideoGrant::new();
            video.room = room;
            video.into()
        }),
        voice().prop_map(Grant::from),
        (field(sid("IS")), field("[a-z0-9]{1,20}")).prop_map(|(service, endpoint)| {
            let mut sync = SyncGrant::new();
            sync.service_sid = service;
            sync.endpoint_id = endpoint;
            sync.into()
        }),
        (field(sid("WS")), field(sid("WK")), field("[a-z]{1,10}")).prop_map(
            |(workspace, worker, role)| {
                let mut task_router = TaskRouterGrant::new();
                task_router.workspace_sid = workspace;
                task_router.worker_sid = worker;
                task_router.role = role;
                task_router.into()
            }
        ),
    ]
}

/// One valid set of builder arguments and the time to mint and verify at.
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

/// Generates valid inputs. `nbf`, when set, lies where verifying at the issue time succeeds:
/// at most the 60-second leeway after it, and at most 24 hours before `exp`.
fn input() -> impl Strategy<Value = Input> {
    let issued_at = prop_oneof![
        4 => 0..=MAX_ISSUE_TIME,
        1 => select(vec![0, 1, 1_700_000_000, MAX_ISSUE_TIME - 86_400, MAX_ISSUE_TIME]),
    ];
    let ttl = prop_oneof![4 => 1..=86_400u64, 1 => select(vec![1, 3600, 86_400])];
    let times = (issued_at, ttl).prop_flat_map(|(issued_at, ttl)| {
        let earliest_nbf = (issued_at + ttl).saturating_sub(86_400);
        let nbf = proptest::option::of(earliest_nbf..=(issued_at + 60).min(issued_at + ttl - 1));
        (Just(issued_at), Just(ttl), nbf)
    });
    (
        (sid("AC"), sid("SK"), secret(), identity()),
        times,
        proptest::option::of(select(vec!["us1", "ie1", "au1"])),
        vec(grant(), 0..4),
    )
        .prop_map(
            |(
                (account_sid, api_key_sid, secret, identity),
                (issued_at, ttl, nbf),
                region,
                grants,
            )| {
                Input {
                    account_sid,
                    api_key_sid,
                    secret,
                    identity,
                    ttl,
                    nbf,
                    region: region.map(str::to_owned),
                    grants,
                    issued_at,
                }
            },
        )
}

impl Input {
    fn token(&self) -> AccessToken {
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
        builder.build().expect("generated inputs are valid")
    }

    fn verifier(&self) -> Verifier {
        Verifier::builder(self.account_sid.as_str())
            .key(
                self.api_key_sid.as_str(),
                ApiSecret::new(self.secret.as_str()),
            )
            .build()
            .expect("generated SIDs are valid")
    }

    fn jwt(&self) -> String {
        self.token()
            .to_jwt_at(self.issued_at)
            .expect("issue time in range")
    }
}

/// A change to one byte of a token.
#[derive(Debug, Clone)]
enum ByteChange {
    /// XOR with a non-zero mask.
    Flip(u8),
    /// Replace with this byte, unless it is the byte already there.
    Replace(u8),
}

fn byte_change() -> impl Strategy<Value = ByteChange> {
    prop_oneof![
        (1..=255u8).prop_map(ByteChange::Flip),
        any::<u8>().prop_map(ByteChange::Replace),
        // Bytes that keep the token looking like base64url, so the change reaches the parser
        // and the signature check rather than failing on the first bad character.
        select(b"AQgw-_.09az".to_vec()).prop_map(ByteChange::Replace),
    ]
}

/// Returns `jwt` with the byte at `position` changed, or `None` when the change leaves it as
/// it was.
fn change_byte(jwt: &str, position: usize, change: &ByteChange) -> Option<String> {
    let mut bytes = jwt.as_bytes().to_vec();
    let index = position % bytes.len();
    let new = match change {
        ByteChange::Flip(mask) => bytes[index] ^ mask,
        ByteChange::Replace(byte) => *byte,
    };
    if new == bytes[index] {
        return None;
    }
    bytes[index] = new;
    // A byte that breaks UTF-8 becomes U+FFFD here, which is still a different token.
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Generates text shaped like a token: three or so base64url parts joined by dots, each
/// either random characters or the encoding of random JSON.
fn token_like() -> impl Strategy<Value = String> {
    let json_text = prop_oneof![
        Just("{}".to_owned()),
        r#"\{"(alg|typ|cty|twr|iss|sub|exp|nbf|iat|jti|grants)":("[ -~]{0,8}"|-?[0-9]{1,22}(\.[0-9])?|\[\]|\{\}|null|true)\}"#,
        "[ -~]{0,40}",
    ];
    let part = prop_oneof![json_text.prop_map(forge::encode), "[A-Za-z0-9_-]{0,60}",];
    vec(part, 1..5).prop_map(|parts| parts.join("."))
}

fn diagnose_context(now: u64) -> DiagnoseContext {
    DiagnoseContext::new(now)
        .key(forge::API_KEY_SID, forge::SECRET)
        .account_sid(forge::ACCOUNT_SID)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn minted_token_verifies_at_issue_time(input in input()) {
        let token = input.token();
        let claims = input
            .verifier()
            .verify_at(&input.jwt(), input.issued_at)
            .expect("a minted token verifies at its issue time");
        prop_assert_eq!(&claims.identity, &input.identity);
        prop_assert_eq!(claims.grants.as_slice(), token.grants());
        prop_assert!(claims.unknown_grants.is_empty());
        prop_assert_eq!(claims.expires_at, input.issued_at + input.ttl);
        prop_assert_eq!(claims.issued_at, Some(input.issued_at));
        prop_assert_eq!(claims.not_before, input.nbf);
        prop_assert_eq!(&claims.region, &input.region);
        prop_assert_eq!(&claims.api_key_sid, &input.api_key_sid);
        prop_assert_eq!(&claims.account_sid, &input.account_sid);
        let jti = format!("{}-{}", input.api_key_sid, input.issued_at);
        prop_assert_eq!(claims.jti, Some(jti));
    }

    #[test]
    fn minted_token_diagnosed_without_errors(input in input()) {
        // NOTE: diagnose takes times above 10^11 for milliseconds, so a token minted within a
        // day of MAX_ISSUE_TIME gets spurious errors until the ignored test
        // max_issue_time_diagnosed_clean in diagnose.rs passes.
        prop_assume!(input.issued_at + input.ttl <= MAX_ISSUE_TIME);
        // NOTE: the builder accepts nbf after exp, which diagnose reports as an error although
        // Verifier accepts it within the leeway (diagnose.rs, nbf_after_exp_verdicts_agree).
        prop_assume!(input.nbf.is_none_or(|nbf| nbf <= input.issued_at + input.ttl));
        let context = DiagnoseContext::new(input.issued_at)
            .key(input.api_key_sid.as_str(), input.secret.as_str())
            .account_sid(input.account_sid.as_str());
        let diagnosis = diagnose(&input.jwt(), &context);
        let errors: Vec<_> = diagnosis
            .findings
            .iter()
            .filter(|finding| finding.severity == twilio_access_token::Severity::Error)
            .collect();
        prop_assert!(errors.is_empty(), "{:#?}", errors);
    }

    #[test]
    fn changed_byte_never_verifies(
        input in input(),
        position in any::<usize>(),
        change in byte_change(),
    ) {
        let jwt = input.jwt();
        let Some(changed) = change_byte(&jwt, position, &change) else {
            return Ok(());
        };
        let outcome = input.verifier().verify_at(&changed, input.issued_at);
        prop_assert!(outcome.is_err(), "{} verified as {:?}", changed, outcome);
        // Diagnosis of the same text must not panic either.
        let _ = diagnose(&changed, &diagnose_context(input.issued_at));
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..=MAX_INPUT_BYTES),
        now in any::<u64>(),
    ) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_unverified(&text);
        let _ = forge::verifier().verify_at(&text, now);
        let _ = diagnose(&text, &diagnose_context(now));
    }

    #[test]
    fn token_like_text_never_panics(text in token_like(), now in any::<u64>()) {
        let _ = decode_unverified(&text);
        let _ = forge::verifier().verify_at(&text, now);
        let _ = diagnose(&text, &diagnose_context(now));
    }

    #[test]
    fn signed_random_claims_never_panic(
        header in r#"\{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"(,"twr":[a-z0-9"]{0,6})?\}"#,
        claims in r#"\{"iss":"SKfedcba9876543210fedcba9876543210","sub":"AC0123456789abcdef0123456789abcdef"(,"(exp|nbf|iat|jti|grants)":(-?[0-9]{1,24}(\.[0-9]{1,3})?(e[0-9]{1,3})?|"[ -~]{0,8}"|\{"identity":("[a-z ]{0,4}"|[0-9]{1,3})(,"(chat|video|voice|rtc|player)":(\{\}|\[\]|"x"))?\}|null)){0,6}\}"#,
        now in any::<u64>(),
    ) {
        // Correctly signed, so every claim check past the signature runs.
        let token = forge::sign_text(&header, &claims, forge::SECRET.as_bytes());
        let _ = forge::verifier().verify_at(&token, now);
        let _ = diagnose(&token, &diagnose_context(now));
    }
}
