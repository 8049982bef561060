//! Builder and minting edge cases: missing fields, boundaries of every range, empty values, and
//! secrets kept out of `Debug` output.

use serde_json::{Map, Value, json};
use twilio_access_token::dangerous::decode_unverified;
use twilio_access_token::{
    AccessToken, AccessTokenBuilder, ApiSecret, ChatGrant, FixedClock, Grant, IdentityError,
    IpMessagingGrant, MAX_ISSUE_TIME, MintError, PlaybackGrant, RegionError, SidError, SidKind,
    SidProblem, SyncGrant, TaskRouterGrant, TtlError, Verifier, VideoGrant, VoiceGrant,
};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
const APPLICATION_SID: &str = "AP00000000000000000000000000000005";
const SERVICE_SID: &str = "IS00000000000000000000000000000001";
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
const NOW: u64 = 1_700_000_000;

fn builder() -> AccessTokenBuilder {
    AccessToken::builder()
        .account_sid(ACCOUNT_SID)
        .api_key_sid(API_KEY_SID)
        .api_secret(SECRET)
        .identity("alice")
}

/// Builds and drops the token, keeping only the error.
fn build_result(builder: AccessTokenBuilder) -> Result<(), MintError> {
    builder.build().map(|_| ())
}

fn mint(builder: AccessTokenBuilder, issued_at: u64) -> String {
    builder
        .build()
        .expect("valid builder")
        .to_jwt_at(issued_at)
        .expect("issue time in range")
}

fn header(jwt: &str) -> Map<String, Value> {
    decode_unverified(jwt).expect("minted token decodes").header
}

fn claims(jwt: &str) -> Map<String, Value> {
    decode_unverified(jwt).expect("minted token decodes").claims
}

/// Returns the `grants` claim as compact JSON text, so comparisons also check key order.
fn grants_text(jwt: &str) -> String {
    serde_json::to_string(&claims(jwt)["grants"]).expect("serializes")
}

fn keys(map: &Map<String, Value>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

#[test]
fn missing_required_field_named() {
    let cases = [
        (
            AccessToken::builder()
                .api_key_sid(API_KEY_SID)
                .api_secret(SECRET)
                .identity("alice"),
            MintError::MissingAccountSid,
        ),
        (
            AccessToken::builder()
                .account_sid(ACCOUNT_SID)
                .api_secret(SECRET)
                .identity("alice"),
            MintError::MissingApiKeySid,
        ),
        (
            AccessToken::builder()
                .account_sid(ACCOUNT_SID)
                .api_key_sid(API_KEY_SID)
                .identity("alice"),
            MintError::MissingApiSecret,
        ),
        (
            AccessToken::builder()
                .account_sid(ACCOUNT_SID)
                .api_key_sid(API_KEY_SID)
                .api_secret(SECRET),
            MintError::MissingIdentity,
        ),
    ];
    for (builder, expected) in cases {
        assert_eq!(build_result(builder), Err(expected.clone()), "{expected:?}");
    }
}

#[test]
fn empty_builder_reports_account_sid_first() {
    assert_eq!(
        build_result(AccessToken::builder()),
        Err(MintError::MissingAccountSid)
    );
}

#[test]
fn empty_secret_rejected() {
    assert_eq!(
        build_result(builder().api_secret("")),
        Err(MintError::EmptyApiSecret)
    );
}

#[test]
fn secret_with_outer_whitespace_rejected() {
    for secret in [" x", "x ", "x\n", "\tx", "\r\nx"] {
        assert_eq!(
            build_result(builder().api_secret(secret)),
            Err(MintError::ApiSecretWhitespace),
            "{secret:?}"
        );
    }
}

#[test]
fn secret_with_inner_space_accepted() {
    assert_eq!(build_result(builder().api_secret("a b")), Ok(()));
}

#[test]
fn nbf_above_max_safe_integer_rejected() {
    assert_eq!(
        build_result(builder().nbf(MAX_SAFE_INTEGER + 1)),
        Err(MintError::TimeOutOfRange {
            claim: "nbf",
            value: MAX_SAFE_INTEGER + 1,
        })
    );
    assert_eq!(
        build_result(builder().nbf(u64::MAX)),
        Err(MintError::TimeOutOfRange {
            claim: "nbf",
            value: u64::MAX,
        })
    );
}

#[test]
fn nbf_latest_possible_written() {
    let nbf = MAX_ISSUE_TIME + 86_399;
    let jwt = mint(builder().ttl_secs(86_400).nbf(nbf), MAX_ISSUE_TIME);
    assert_eq!(claims(&jwt)["nbf"], nbf);
}

#[test]
fn nbf_zero_written() {
    let jwt = mint(builder().nbf(0), NOW);
    assert_eq!(claims(&jwt)["nbf"], 0);
}

#[test]
fn issue_time_above_limit_rejected() {
    let token = builder().ttl_secs(86_400).build().expect("valid builder");
    for issued_at in [MAX_ISSUE_TIME + 1, 1_700_000_000_000, u64::MAX] {
        assert_eq!(
            token.to_jwt_at(issued_at),
            Err(MintError::IssueTimeOutOfRange { issued_at }),
            "{issued_at}"
        );
    }
}

#[test]
fn issue_time_at_limit_written() {
    let jwt = mint(builder().ttl_secs(86_400), MAX_ISSUE_TIME);
    let claims = claims(&jwt);
    assert_eq!(claims["iat"], MAX_ISSUE_TIME);
    assert_eq!(claims["exp"], MAX_ISSUE_TIME + 86_400);
}

#[test]
fn ttl_bounds_accepted() {
    for ttl in [1, 86_400] {
        let jwt = mint(builder().ttl_secs(ttl), NOW);
        assert_eq!(claims(&jwt)["exp"], NOW + ttl, "ttl {ttl}");
    }
}

#[test]
fn ttl_outside_bounds_rejected() {
    assert_eq!(
        build_result(builder().ttl_secs(0)),
        Err(MintError::InvalidTtl(TtlError::Zero))
    );
    assert_eq!(
        build_result(builder().ttl_secs(86_401)),
        Err(MintError::InvalidTtl(TtlError::TooLong { secs: 86_401 }))
    );
}

#[test]
fn ttl_default_is_one_hour() {
    let jwt = mint(builder(), NOW);
    assert_eq!(claims(&jwt)["exp"], NOW + 3600);
}

#[test]
fn empty_region_writes_no_twr() {
    let token = builder().region("").build().expect("valid builder");
    assert_eq!(token.region(), None);
    let jwt = token.to_jwt_at(NOW).expect("mints");
    assert_eq!(keys(&header(&jwt)), ["alg", "typ", "cty"]);
}

#[test]
fn region_written_as_twr() {
    let jwt = mint(builder().region("ie1"), NOW);
    let header = header(&jwt);
    assert_eq!(keys(&header), ["alg", "typ", "cty", "twr"]);
    assert_eq!(header["twr"], "ie1");
}

#[test]
fn uppercase_region_rejected() {
    assert_eq!(
        build_result(builder().region("US1")),
        Err(MintError::InvalidRegion(RegionError {
            value: "US1".into()
        }))
    );
}

#[test]
fn identity_length_counted_in_characters() {
    let longest = "🎉".repeat(256);
    let jwt = mint(builder().identity(longest.as_str()), NOW);
    assert_eq!(claims(&jwt)["grants"]["identity"], longest.as_str());

    assert_eq!(
        build_result(builder().identity("🎉".repeat(257))),
        Err(MintError::InvalidIdentity(IdentityError::TooLong {
            chars: 257
        }))
    );
}

#[test]
fn empty_identity_rejected() {
    assert_eq!(
        build_result(builder().identity("")),
        Err(MintError::InvalidIdentity(IdentityError::Empty))
    );
}

#[test]
fn sync_default_service_accepted() {
    let jwt = mint(
        builder().grant(SyncGrant::new().service_sid("default")),
        NOW,
    );
    assert_eq!(
        grants_text(&jwt),
        r#"{"identity":"alice","data_sync":{"service_sid":"default"}}"#
    );
}

#[test]
fn sync_default_service_case_sensitive() {
    assert_eq!(
        build_result(builder().grant(SyncGrant::new().service_sid("Default"))),
        Err(MintError::InvalidSid {
            field: "data_sync.service_sid",
            error: SidError {
                expected: SidKind::Service,
                value: "Default".into(),
                problem: SidProblem::WrongPrefix,
            },
        })
    );
}

#[test]
fn grant_sid_errors_name_field() {
    let bad = || "123".to_owned();
    let ip_messaging = |fields: ChatGrant| Grant::from(IpMessagingGrant::new(fields));
    let cases: [(&str, SidKind, Grant); 11] = [
        (
            "chat.service_sid",
            SidKind::Service,
            ChatGrant::new().service_sid(bad()).into(),
        ),
        (
            "chat.deployment_role_sid",
            SidKind::Role,
            ChatGrant::new().deployment_role_sid(bad()).into(),
        ),
        (
            "chat.push_credential_sid",
            SidKind::Credential,
            ChatGrant::new().push_credential_sid(bad()).into(),
        ),
        (
            "ip_messaging.service_sid",
            SidKind::Service,
            ip_messaging(ChatGrant::new().service_sid(bad())),
        ),
        (
            "ip_messaging.deployment_role_sid",
            SidKind::Role,
            ip_messaging(ChatGrant::new().deployment_role_sid(bad())),
        ),
        (
            "ip_messaging.push_credential_sid",
            SidKind::Credential,
            ip_messaging(ChatGrant::new().push_credential_sid(bad())),
        ),
        (
            "voice.outgoing.application_sid",
            SidKind::Application,
            VoiceGrant::new().outgoing_application_sid(bad()).into(),
        ),
        (
            "voice.push_credential_sid",
            SidKind::Credential,
            VoiceGrant::new().push_credential_sid(bad()).into(),
        ),
        (
            "data_sync.service_sid",
            SidKind::Service,
            SyncGrant::new().service_sid(bad()).into(),
        ),
        (
            "task_router.workspace_sid",
            SidKind::Workspace,
            TaskRouterGrant::new().workspace_sid(bad()).into(),
        ),
        (
            "task_router.worker_sid",
            SidKind::Worker,
            TaskRouterGrant::new().worker_sid(bad()).into(),
        ),
    ];
    for (field, kind, grant) in cases {
        assert_eq!(
            build_result(builder().grant(grant)),
            Err(MintError::InvalidSid {
                field,
                error: SidError {
                    expected: kind,
                    value: bad(),
                    problem: SidProblem::WrongPrefix,
                },
            }),
            "{field}"
        );
    }
}

#[test]
fn empty_grant_fields_omitted() {
    let mut chat = ChatGrant::new();
    chat.service_sid = Some(String::new());
    chat.endpoint_id = Some(String::new());
    chat.deployment_role_sid = Some(String::new());
    chat.push_credential_sid = Some(String::new());
    let mut voice = VoiceGrant::new();
    voice.outgoing_application_sid = Some(String::new());
    voice.push_credential_sid = Some(String::new());
    voice.endpoint_id = Some(String::new());

    let jwt = mint(
        builder()
            .grant(chat.clone())
            .grant(IpMessagingGrant::new(chat))
            .grant(VideoGrant::new().room(""))
            .grant(voice)
            .grant(SyncGrant::new().service_sid("").endpoint_id(""))
            .grant(
                TaskRouterGrant::new()
                    .workspace_sid("")
                    .worker_sid("")
                    .role(""),
            )
            .grant(PlaybackGrant::default()),
        NOW,
    );
    assert_eq!(
        grants_text(&jwt),
        concat!(
            r#"{"identity":"alice","chat":{},"ip_messaging":{},"video":{},"voice":{},"#,
            r#""data_sync":{},"task_router":{},"player":{}}"#
        )
    );
}

#[test]
fn voice_params_with_empty_application_rejected() {
    let voice = VoiceGrant::new()
        .outgoing_application_sid("")
        .outgoing_param("To", "+15005550006");
    assert_eq!(
        build_result(builder().grant(voice)),
        Err(MintError::VoiceParamsWithoutApplication)
    );
}

#[test]
fn voice_empty_params_written() {
    let voice = VoiceGrant::new()
        .outgoing_application_sid(APPLICATION_SID)
        .outgoing_application_params(Map::new());
    let jwt = mint(builder().grant(voice), NOW);
    assert_eq!(
        grants_text(&jwt),
        format!(
            r#"{{"identity":"alice","voice":{{"outgoing":{{"application_sid":"{APPLICATION_SID}","params":{{}}}}}}}}"#
        )
    );
}

#[test]
fn voice_param_safe_integer_limits() {
    let max = MAX_SAFE_INTEGER as i64;
    let at_limits = VoiceGrant::new()
        .outgoing_application_sid(APPLICATION_SID)
        .outgoing_param("high", max)
        .outgoing_param("low", -max);
    let jwt = mint(builder().grant(at_limits), NOW);
    let params = &claims(&jwt)["grants"]["voice"]["outgoing"]["params"];
    assert_eq!(params["high"], max);
    assert_eq!(params["low"], -max);

    let below = VoiceGrant::new()
        .outgoing_application_sid(APPLICATION_SID)
        .outgoing_param("low", -max - 1);
    assert_eq!(
        build_result(builder().grant(below)),
        Err(MintError::UnsafeInteger {
            path: "voice.outgoing.params.low".into(),
            value: "-9007199254740992".into(),
        })
    );
}

#[test]
fn playback_unsafe_integer_path_named() {
    let mut grant = Map::new();
    grant.insert(
        "streams".into(),
        json!([1, {"id": 9_007_199_254_740_992_u64}]),
    );
    assert_eq!(
        build_result(builder().grant(PlaybackGrant::new(grant))),
        Err(MintError::UnsafeInteger {
            path: "player.streams[1].id".into(),
            value: "9007199254740992".into(),
        })
    );
}

#[test]
fn debug_output_hides_secret() {
    let builder = builder().grant(ChatGrant::new().service_sid(SERVICE_SID));
    let token = builder.clone().build().expect("valid builder");
    let printed = [
        format!("{builder:?}"),
        format!("{builder:#?}"),
        format!("{token:?}"),
        format!("{token:#?}"),
    ];
    for text in printed {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("FAKEsecret"), "{text}");
        assert!(text.contains(API_KEY_SID), "{text}");
    }
}

#[test]
fn verifier_debug_output_hides_secret() {
    let builder = Verifier::builder(ACCOUNT_SID).key(API_KEY_SID, ApiSecret::new(SECRET));
    let printed_builder = format!("{builder:?}");
    let verifier = builder.build().expect("valid verifier");
    for text in [printed_builder, format!("{verifier:#?}")] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains(API_KEY_SID), "{text}");
    }
}

#[test]
fn fixed_clock_matches_to_jwt_at() {
    let token = builder()
        .grant(VideoGrant::new().room("standup"))
        .build()
        .expect("valid builder");
    for time in [0, 1, NOW, MAX_SAFE_INTEGER - 3600] {
        assert_eq!(
            token.to_jwt_with(&FixedClock(time)),
            token.to_jwt_at(time),
            "{time}"
        );
    }
}

#[test]
fn ip_messaging_grant_written_under_own_key() {
    let grant = IpMessagingGrant::new(ChatGrant::new().service_sid(SERVICE_SID));
    assert_eq!(Grant::from(grant.clone()).key(), "ip_messaging");
    let jwt = mint(builder().grant(grant), NOW);
    assert_eq!(
        grants_text(&jwt),
        format!(r#"{{"identity":"alice","ip_messaging":{{"service_sid":"{SERVICE_SID}"}}}}"#)
    );
}

#[test]
fn chat_and_ip_messaging_kept_apart() {
    let jwt = mint(
        builder()
            .grant(ChatGrant::new().service_sid(SERVICE_SID))
            .grant(IpMessagingGrant::new(ChatGrant::new())),
        NOW,
    );
    assert_eq!(
        grants_text(&jwt),
        format!(
            r#"{{"identity":"alice","chat":{{"service_sid":"{SERVICE_SID}"}},"ip_messaging":{{}}}}"#
        )
    );
}

/// A float that serde_json's default parser reads one unit in the last place off.
const HARD_FLOAT: f64 = 1.7224058100956279e-180;

#[test]
fn grant_to_json_float_exact() {
    let voice = VoiceGrant::new()
        .outgoing_application_sid(APPLICATION_SID)
        .outgoing_param("x", HARD_FLOAT);
    let grant = Grant::from(voice.clone());
    assert_eq!(
        grant.to_json()["outgoing"]["params"]["x"].as_f64(),
        Some(HARD_FLOAT),
        "Grant::to_json"
    );

    let jwt = mint(builder().grant(voice), NOW);
    assert_eq!(
        claims(&jwt)["grants"]["voice"]["outgoing"]["params"]["x"].as_f64(),
        Some(HARD_FLOAT),
        "decode_unverified"
    );
}

#[test]
fn float_param_written_with_shortest_digits() {
    // The token bytes hold the exact value, whatever serde_json reads back.
    let voice = VoiceGrant::new()
        .outgoing_application_sid(APPLICATION_SID)
        .outgoing_param("x", HARD_FLOAT);
    let jwt = mint(builder().grant(voice), NOW);
    let payload = jwt.split('.').nth(1).expect("payload segment");
    let bytes = base64_decode(payload);
    let text = String::from_utf8(bytes).expect("UTF-8 payload");
    assert!(
        text.contains(r#""params":{"x":1.7224058100956279e-180}"#),
        "{text}"
    );
}

fn base64_decode(segment: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .expect("base64url")
}

#[test]
fn nbf_at_or_after_exp_rejected() {
    let token = builder()
        .ttl_secs(60)
        .nbf(NOW + 60)
        .build()
        .expect("valid builder");
    assert_eq!(
        token.to_jwt_at(NOW),
        Err(MintError::NbfNotBeforeExpiry {
            nbf: NOW + 60,
            exp: NOW + 60,
        })
    );
    let earlier = builder()
        .ttl_secs(60)
        .nbf(NOW + 59)
        .build()
        .expect("valid builder");
    assert!(earlier.to_jwt_at(NOW).is_ok());
}
