//! Each finding of `diagnose`, from a token with exactly the defect that triggers it.
//!
//! Every test asserts the finding's check id, severity and Twilio code, and the full list of
//! check ids reported, so a defect that starts to trigger other findings shows up too.

mod forge;

use forge::{
    ACCOUNT_SID, API_KEY_SID, NOW, OTHER_ACCOUNT_SID, SECOND_KEY_SID, SECOND_SECRET, SECRET,
    header, payload, sign, sign_text, sign_with, valid_token, verifier,
};
use serde_json::{Value, json};
use twilio_access_token::{
    AccessToken, ApiSecret, DiagnoseContext, Diagnosis, Finding, MAX_ISSUE_TIME, Severity, Verdict,
    diagnose,
};

/// Expiry of the standard token: one hour after [`NOW`].
const EXP: u64 = NOW + 3600;

/// Returns the context of a server configured with the standard key and account, at [`NOW`].
fn context() -> DiagnoseContext {
    DiagnoseContext::new(NOW)
        .key(API_KEY_SID, ApiSecret::new(SECRET))
        .account_sid(ACCOUNT_SID)
}

fn checks(diagnosis: &Diagnosis) -> Vec<&'static str> {
    diagnosis
        .findings
        .iter()
        .map(|finding| finding.check)
        .collect()
}

/// Diagnoses `token` in `context`, asserts the reported check ids are `expected` in order, and
/// returns the finding of the first one.
fn diagnose_expecting(token: &str, context: &DiagnoseContext, expected: &[&str]) -> Finding {
    let diagnosis = diagnose(token, context);
    assert_eq!(checks(&diagnosis), expected, "{:#?}", diagnosis.findings);
    diagnosis.findings[0].clone()
}

fn assert_finding(finding: &Finding, check: &str, severity: Severity, code: Option<u32>) {
    assert_eq!(finding.check, check);
    assert_eq!(finding.severity, severity, "{check} severity");
    assert_eq!(finding.twilio_code, code, "{check} code");
    assert!(!finding.message.is_empty(), "{check} message");
    assert!(!finding.fix.is_empty(), "{check} fix");
}

/// Returns the standard payload with each claim of `changes` set to its value, or removed when
/// the value is `None`.
fn payload_with(changes: &[(&str, Option<Value>)]) -> Value {
    let mut claims = payload();
    let object = claims.as_object_mut().expect("payload is an object");
    for (claim, value) in changes {
        match value {
            Some(value) => object.insert((*claim).to_owned(), value.clone()),
            None => object.shift_remove(*claim),
        };
    }
    claims
}

/// Signs with [`SECRET`] a token whose claims differ from the standard ones by `changes`.
fn token_with(changes: &[(&str, Option<Value>)]) -> String {
    sign(&header(), &payload_with(changes))
}

/// Returns the standard claims changed by `changes`, with `iss` set to `iss` and `jti` to `<iss>-<NOW>`
/// to match.
fn claims_issued_by(iss: &str, changes: &[(&str, Option<Value>)]) -> Value {
    let mut claims = payload_with(changes);
    claims["iss"] = json!(iss);
    claims["jti"] = json!(format!("{iss}-{NOW}"));
    claims
}

fn grants(value: Value) -> String {
    token_with(&[("grants", Some(value))])
}

#[test]
fn clean_token_no_findings() {
    let diagnosis = diagnose(&valid_token(), &context());
    assert_eq!(diagnosis.findings, []);
    assert_eq!(diagnosis.skipped, Vec::<String>::new());
    assert_eq!(diagnosis.verdict(), Verdict::Valid);
    let token = diagnosis.token.expect("decoded");
    assert_eq!(token.claims["grants"]["identity"], "alice");
}

#[test]
fn no_keys_verdict_unverified() {
    let diagnosis = diagnose(
        &valid_token(),
        &DiagnoseContext::new(NOW).account_sid(ACCOUNT_SID),
    );
    assert_eq!(diagnosis.findings, []);
    assert_eq!(diagnosis.verdict(), Verdict::Unverified);
    assert_eq!(diagnosis.skipped.len(), 1);
    assert!(
        diagnosis.skipped[0].contains("signature"),
        "{:?}",
        diagnosis.skipped
    );
}

#[test]
fn no_account_verdict_unverified() {
    let diagnosis = diagnose(
        &valid_token(),
        &DiagnoseContext::new(NOW).key(API_KEY_SID, SECRET),
    );
    assert_eq!(diagnosis.findings, []);
    assert_eq!(diagnosis.verdict(), Verdict::Unverified);
    assert_eq!(diagnosis.skipped.len(), 1);
    assert!(
        diagnosis.skipped[0].contains("account"),
        "{:?}",
        diagnosis.skipped
    );
}

#[test]
fn token_whitespace_warned() {
    let token = format!("{}\n", valid_token());
    let finding = diagnose_expecting(&token, &context(), &["token.whitespace"]);
    assert_finding(&finding, "token.whitespace", Severity::Warning, None);
    // NOTE: only a warning, so the verdict is Valid although Verifier rejects the same text.
    assert_eq!(diagnose(&token, &context()).verdict(), Verdict::Valid);
}

#[test]
fn token_format_error() {
    let diagnosis = diagnose("not a token", &context());
    assert_eq!(checks(&diagnosis), ["token.format"]);
    assert_finding(
        &diagnosis.findings[0],
        "token.format",
        Severity::Error,
        Some(20101),
    );
    assert_eq!(diagnosis.verdict(), Verdict::Invalid);
    assert_eq!(diagnosis.token, None);

    // The code follows the part that is broken: a header that is not JSON is a header error.
    let bad_header = sign_text("not json", &payload().to_string(), SECRET.as_bytes());
    let finding = diagnose_expecting(&bad_header, &context(), &["token.format"]);
    assert_finding(&finding, "token.format", Severity::Error, Some(20102));
}

#[test]
fn header_algorithm_error() {
    let mut fields = header();
    fields["alg"] = json!("HS512");
    let finding = diagnose_expecting(&sign(&fields, &payload()), &context(), &["header"]);
    assert_finding(&finding, "header", Severity::Error, Some(20102));
    assert!(finding.message.contains("\"HS512\""), "{}", finding.message);

    let mut fields = header();
    fields.as_object_mut().expect("object").shift_remove("typ");
    let finding = diagnose_expecting(&sign(&fields, &payload()), &context(), &["header"]);
    assert_finding(&finding, "header", Severity::Error, Some(20102));
}

#[test]
fn header_region_warned() {
    let mut fields = header();
    fields["twr"] = json!("US1");
    let finding = diagnose_expecting(&sign(&fields, &payload()), &context(), &["header.region"]);
    assert_finding(&finding, "header.region", Severity::Warning, None);
}

#[test]
fn header_extra_noted() {
    let mut fields = header();
    fields["kid"] = json!(API_KEY_SID);
    let finding = diagnose_expecting(&sign(&fields, &payload()), &context(), &["header.extra"]);
    assert_finding(&finding, "header.extra", Severity::Note, None);
    assert_eq!(
        finding.message,
        "the header has fields Twilio does not use: kid"
    );
}

#[test]
fn swapped_sids_error() {
    let claims = claims_issued_by(ACCOUNT_SID, &[("sub", Some(json!(API_KEY_SID)))]);
    let token = sign(&header(), &claims);
    // The secret of the key now in sub signed the token, so the signature check names it.
    let finding = diagnose_expecting(
        &token,
        &context(),
        &["claims.swapped-sids", "signature.other-key"],
    );
    assert_finding(
        &finding,
        "claims.swapped-sids",
        Severity::Error,
        Some(20103),
    );
}

#[test]
fn issuer_missing_or_malformed_error() {
    // Without iss, jti cannot have the form <iss>-<seconds> either.
    let missing = token_with(&[("iss", None)]);
    let finding = diagnose_expecting(
        &missing,
        &context(),
        &["claims.iss", "signature.other-key", "claims.jti-format"],
    );
    assert_finding(&finding, "claims.iss", Severity::Error, Some(20103));

    let malformed = sign(&header(), &claims_issued_by("SKshort", &[]));
    let finding = diagnose_expecting(
        &malformed,
        &context(),
        &["claims.iss", "signature.other-key"],
    );
    assert_finding(&finding, "claims.iss", Severity::Error, Some(20103));
    assert!(finding.message.starts_with("iss: "), "{}", finding.message);
}

#[test]
fn issuer_account_sid_error() {
    // Minted with the account SID as iss and the Auth Token as secret.
    let claims = claims_issued_by(ACCOUNT_SID, &[]);
    let token = sign_with(&header(), &claims, b"0123456789abcdef0123456789abcdef");
    let diagnosis = diagnose(&token, &context());
    assert_eq!(checks(&diagnosis), ["claims.iss-account"]);
    assert_finding(
        &diagnosis.findings[0],
        "claims.iss-account",
        Severity::Error,
        Some(20103),
    );
    // No API key secret applies to an account SID, so the signature is not checked.
    assert_eq!(diagnosis.skipped.len(), 1);
    assert!(
        diagnosis.skipped[0].starts_with("signature"),
        "{:?}",
        diagnosis.skipped
    );
}

#[test]
fn subject_missing_or_malformed_error() {
    let missing = token_with(&[("sub", None)]);
    let finding = diagnose_expecting(&missing, &context(), &["claims.sub"]);
    assert_finding(&finding, "claims.sub", Severity::Error, Some(20103));

    let api_key = token_with(&[("sub", Some(json!(SECOND_KEY_SID)))]);
    let finding = diagnose_expecting(&api_key, &context(), &["claims.sub"]);
    assert_finding(&finding, "claims.sub", Severity::Error, Some(20103));
    assert!(finding.message.starts_with("sub: "), "{}", finding.message);
}

#[test]
fn subject_other_account_error() {
    let token = token_with(&[("sub", Some(json!(OTHER_ACCOUNT_SID)))]);
    let finding = diagnose_expecting(&token, &context(), &["claims.sub-account"]);
    assert_finding(&finding, "claims.sub-account", Severity::Error, Some(20103));
    assert_eq!(
        finding.message,
        format!("sub is {OTHER_ACCOUNT_SID}, but the expected account is {ACCOUNT_SID}")
    );
}

#[test]
fn secret_newline_at_minting_found() {
    let token = sign_with(&header(), &payload(), format!("{SECRET}\n").as_bytes());
    let finding = diagnose_expecting(&token, &context(), &["signature.whitespace-secret"]);
    assert_finding(
        &finding,
        "signature.whitespace-secret",
        Severity::Error,
        Some(20107),
    );
    assert!(
        finding
            .message
            .ends_with("with a newline added to the end of the secret"),
        "{}",
        finding.message
    );
}

#[test]
fn secret_newline_at_checking_found() {
    let context = DiagnoseContext::new(NOW)
        .key(API_KEY_SID, format!("{SECRET}\n"))
        .account_sid(ACCOUNT_SID);
    let finding = diagnose_expecting(&valid_token(), &context, &["signature.whitespace-secret"]);
    assert_finding(
        &finding,
        "signature.whitespace-secret",
        Severity::Error,
        Some(20107),
    );
    assert!(
        finding
            .message
            .ends_with("once the whitespace around the secret is removed"),
        "{}",
        finding.message
    );
}

#[test]
fn secret_of_other_key_found() {
    let context = context().key(SECOND_KEY_SID, SECOND_SECRET);
    let token = sign_with(&header(), &payload(), SECOND_SECRET.as_bytes());
    let finding = diagnose_expecting(&token, &context, &["signature.other-key"]);
    assert_finding(
        &finding,
        "signature.other-key",
        Severity::Error,
        Some(20107),
    );
    assert!(
        finding.message.contains(SECOND_KEY_SID),
        "{}",
        finding.message
    );
}

#[test]
fn wrong_secret_signature_error() {
    let token = sign_with(&header(), &payload(), b"anotherSecretThatIsNotTheRightOne");
    let finding = diagnose_expecting(&token, &context(), &["signature"]);
    assert_finding(&finding, "signature", Severity::Error, Some(20107));
}

#[test]
fn unknown_key_signature_error() {
    let claims = claims_issued_by("SK11111111111111111111111111111111", &[]);
    let token = sign_with(&header(), &claims, b"secretOfAKeyNobodyConfigured");
    let finding = diagnose_expecting(&token, &context(), &["signature.unknown-key"]);
    assert_finding(
        &finding,
        "signature.unknown-key",
        Severity::Error,
        Some(20103),
    );
}

#[test]
fn expiry_missing_error() {
    let token = token_with(&[("exp", None)]);
    let finding = diagnose_expecting(&token, &context(), &["claims.exp"]);
    assert_finding(&finding, "claims.exp", Severity::Error, Some(20104));
}

#[test]
fn expired_error_within_leeway_none() {
    let at = |now| {
        DiagnoseContext::new(now)
            .key(API_KEY_SID, SECRET)
            .account_sid(ACCOUNT_SID)
    };
    let token = valid_token();
    assert_eq!(diagnose(&token, &at(EXP + 60)).findings, []);

    let finding = diagnose_expecting(&token, &at(EXP + 61), &["claims.expired"]);
    assert_finding(&finding, "claims.expired", Severity::Error, Some(20104));
    assert!(
        finding.message.contains("expired 1m 1s ago"),
        "{}",
        finding.message
    );
}

#[test]
fn not_yet_valid_error() {
    let token = token_with(&[("iat", None), ("nbf", Some(json!(NOW + 61)))]);
    let finding = diagnose_expecting(&token, &context(), &["claims.not-yet-valid"]);
    assert_finding(
        &finding,
        "claims.not-yet-valid",
        Severity::Error,
        Some(20105),
    );

    let at_leeway = token_with(&[("iat", None), ("nbf", Some(json!(NOW + 60)))]);
    assert_eq!(diagnose(&at_leeway, &context()).findings, []);
}

#[test]
fn nbf_after_iat_warned() {
    let token = token_with(&[("nbf", Some(json!(NOW + 30)))]);
    let finding = diagnose_expecting(&token, &context(), &["claims.nbf-after-iat"]);
    assert_finding(&finding, "claims.nbf-after-iat", Severity::Warning, None);
    assert_eq!(
        finding.message,
        format!("nbf is 30s after iat ({} > {NOW})", NOW + 30)
    );
}

#[test]
fn iat_future_warned() {
    let iat = NOW + 120;
    let token = token_with(&[
        ("iat", Some(json!(iat))),
        ("jti", Some(json!(format!("{API_KEY_SID}-{iat}")))),
    ]);
    let finding = diagnose_expecting(&token, &context(), &["claims.iat-future"]);
    assert_finding(&finding, "claims.iat-future", Severity::Warning, None);
    assert_eq!(
        finding.message,
        format!("iat is 2m in the future (iat {iat}, now {NOW})")
    );
}

#[test]
fn lifetime_over_day_error() {
    let exact = token_with(&[("exp", Some(json!(NOW + 86_400)))]);
    assert_eq!(diagnose(&exact, &context()).findings, []);

    let token = token_with(&[("exp", Some(json!(NOW + 86_401)))]);
    let finding = diagnose_expecting(&token, &context(), &["claims.lifetime"]);
    assert_finding(&finding, "claims.lifetime", Severity::Error, Some(20157));
}

#[test]
fn exp_before_start_error() {
    // With the 60-second leeway the token is neither expired nor early at NOW, but exp is more
    // than the leeway before nbf, so it is never valid.
    let token = token_with(&[
        ("nbf", Some(json!(NOW + 30))),
        ("exp", Some(json!(NOW - 40))),
    ]);
    let diagnosis = diagnose(&token, &context());
    assert_eq!(
        checks(&diagnosis),
        ["claims.nbf-after-iat", "claims.exp-before-start"],
        "{:#?}",
        diagnosis.findings
    );
    let finding = diagnosis.findings[1].clone();
    assert_finding(
        &finding,
        "claims.exp-before-start",
        Severity::Error,
        Some(20104),
    );
}

#[test]
fn time_format_error_per_claim() {
    let cases = [
        (
            "exp",
            json!(1_700_003_600.5),
            Some(20104),
            "has a fractional part",
        ),
        ("exp", json!("soon"), Some(20104), "is not a number"),
        ("nbf", json!(-5), Some(20105), "is negative"),
        ("iat", json!(1.7e9), Some(20101), "is not an integer"),
    ];
    for (claim, value, code, detail) in cases {
        let token = token_with(&[(claim, Some(value.clone()))]);
        let finding = diagnose_expecting(&token, &context(), &["claims.time-format"]);
        assert_finding(&finding, "claims.time-format", Severity::Error, code);
        assert_eq!(
            finding.message,
            format!("{claim} is {value}, which {detail}")
        );
    }
}

#[test]
fn milliseconds_error_per_claim() {
    let token = token_with(&[
        ("iat", Some(json!(NOW * 1000))),
        ("exp", Some(json!(EXP * 1000))),
    ]);
    let diagnosis = diagnose(&token, &context());
    assert_eq!(
        checks(&diagnosis),
        ["claims.time-milliseconds", "claims.time-milliseconds"]
    );
    assert_finding(
        &diagnosis.findings[0],
        "claims.time-milliseconds",
        Severity::Error,
        Some(20104),
    );
    assert!(diagnosis.findings[0].message.starts_with("exp is "));
    assert_finding(
        &diagnosis.findings[1],
        "claims.time-milliseconds",
        Severity::Error,
        Some(20101),
    );
    assert!(diagnosis.findings[1].message.starts_with("iat is "));
}

#[test]
fn jti_missing_noted() {
    let token = token_with(&[("jti", None)]);
    let finding = diagnose_expecting(&token, &context(), &["claims.jti"]);
    assert_finding(&finding, "claims.jti", Severity::Note, None);
}

#[test]
fn jti_format_warned() {
    let token = token_with(&[("jti", Some(json!("0b5e3d1c-uuid")))]);
    let finding = diagnose_expecting(&token, &context(), &["claims.jti-format"]);
    assert_finding(&finding, "claims.jti-format", Severity::Warning, None);
}

#[test]
fn jti_time_differs_noted() {
    let token = token_with(&[("jti", Some(json!(format!("{API_KEY_SID}-{}", NOW - 1))))]);
    let finding = diagnose_expecting(&token, &context(), &["claims.jti-time"]);
    assert_finding(&finding, "claims.jti-time", Severity::Note, None);
}

#[test]
fn grants_missing_error() {
    let token = token_with(&[("grants", None)]);
    let finding = diagnose_expecting(&token, &context(), &["grants.missing"]);
    assert_finding(&finding, "grants.missing", Severity::Error, Some(20106));
}

#[test]
fn grants_not_object_error() {
    let finding = diagnose_expecting(&grants(json!(["chat"])), &context(), &["grants.type"]);
    assert_finding(&finding, "grants.type", Severity::Error, Some(20106));
    assert_eq!(finding.message, "grants is an array, not a JSON object");
}

#[test]
fn identity_missing_error() {
    let token = grants(json!({"chat": {}}));
    let finding = diagnose_expecting(&token, &context(), &["grants.identity"]);
    assert_finding(&finding, "grants.identity", Severity::Error, Some(20106));
}

#[test]
fn identity_format_warned() {
    for identity in ["", "ali\nce"] {
        let token = grants(json!({"identity": identity, "chat": {}}));
        let finding = diagnose_expecting(&token, &context(), &["grants.identity-format"]);
        assert_finding(&finding, "grants.identity-format", Severity::Warning, None);
    }
}

#[test]
fn identity_not_string_error() {
    let token = grants(json!({"identity": 42, "chat": {}}));
    let finding = diagnose_expecting(&token, &context(), &["grants.identity-type"]);
    assert_finding(
        &finding,
        "grants.identity-type",
        Severity::Error,
        Some(20106),
    );
    assert_eq!(finding.message, "grants.identity is a number, not a string");
}

#[test]
fn unknown_grant_warned() {
    let token = grants(json!({"identity": "alice", "chat": {}, "rtc": {}}));
    let finding = diagnose_expecting(&token, &context(), &["grants.unknown"]);
    assert_finding(&finding, "grants.unknown", Severity::Warning, None);
}

#[test]
fn grant_wrong_type_error() {
    let token = grants(json!({"identity": "alice", "video": "room"}));
    let finding = diagnose_expecting(&token, &context(), &["grants.format"]);
    assert_finding(&finding, "grants.format", Severity::Error, Some(20106));
}

#[test]
fn identity_only_grants_empty_warned() {
    let token = grants(json!({"identity": "alice"}));
    let finding = diagnose_expecting(&token, &context(), &["grants.empty"]);
    assert_finding(&finding, "grants.empty", Severity::Warning, None);
}

#[test]
fn ip_messaging_with_chat_warned() {
    let token = grants(json!({"identity": "alice", "chat": {}, "ip_messaging": {}}));
    let finding = diagnose_expecting(&token, &context(), &["grants.legacy-ip-messaging"]);
    assert_finding(
        &finding,
        "grants.legacy-ip-messaging",
        Severity::Warning,
        None,
    );

    let legacy_only = grants(json!({"identity": "alice", "ip_messaging": {}}));
    assert_eq!(diagnose(&legacy_only, &context()).findings, []);
}

#[test]
fn voice_identity_characters_warned() {
    for identity in ["alice smith", "alice@example.com", "zoë"] {
        let token = grants(json!({"identity": identity, "voice": {}}));
        let finding = diagnose_expecting(&token, &context(), &["grants.voice-identity"]);
        assert_finding(&finding, "grants.voice-identity", Severity::Warning, None);
    }
    let fine = grants(json!({"identity": "alice_42", "voice": {}}));
    assert_eq!(diagnose(&fine, &context()).findings, []);
}

#[test]
fn voice_identity_length_warned() {
    let token = grants(json!({"identity": "a".repeat(257), "voice": {}}));
    let diagnosis = diagnose(&token, &context());
    assert_eq!(
        checks(&diagnosis),
        ["grants.identity-format", "grants.voice-identity-length"]
    );
    assert_finding(
        &diagnosis.findings[1],
        "grants.voice-identity-length",
        Severity::Warning,
        Some(31105),
    );
}

#[test]
fn video_over_four_hours_warned() {
    let video = json!({"identity": "alice", "video": {"room": "standup"}});
    let exact = token_with(&[
        ("grants", Some(video.clone())),
        ("exp", Some(json!(NOW + 14_400))),
    ]);
    assert_eq!(diagnose(&exact, &context()).findings, []);

    let token = token_with(&[("grants", Some(video)), ("exp", Some(json!(NOW + 14_401)))]);
    let finding = diagnose_expecting(&token, &context(), &["grants.video-lifetime"]);
    assert_finding(&finding, "grants.video-lifetime", Severity::Warning, None);
}

#[test]
fn several_findings_reported_together() {
    let claims = payload_with(&[
        ("sub", Some(json!(OTHER_ACCOUNT_SID))),
        (
            "grants",
            Some(json!({"identity": "alice smith", "voice": {}})),
        ),
    ]);
    let token = sign(&header(), &claims);
    let late = DiagnoseContext::new(EXP + 3600)
        .key(API_KEY_SID, SECRET)
        .account_sid(ACCOUNT_SID);
    let diagnosis = diagnose(&token, &late);
    assert_eq!(
        checks(&diagnosis),
        [
            "claims.sub-account",
            "claims.expired",
            "grants.voice-identity"
        ]
    );
    assert_eq!(diagnosis.verdict(), Verdict::Invalid);
}

/// Tokens that `Verifier` rejects, each of which `diagnose` must call invalid.
fn rejected_tokens() -> Vec<(&'static str, String)> {
    let mut wrong_alg = header();
    wrong_alg["alg"] = json!("none");
    vec![
        ("alg none", sign(&wrong_alg, &payload())),
        ("wrong secret", sign_with(&header(), &payload(), b"wrong")),
        (
            "other account",
            token_with(&[("sub", Some(json!(OTHER_ACCOUNT_SID)))]),
        ),
        ("no exp", token_with(&[("exp", None)])),
        ("float exp", token_with(&[("exp", Some(json!(1.5)))])),
        ("string iat", token_with(&[("iat", Some(json!("now")))])),
        (
            "nbf far ahead",
            token_with(&[("nbf", Some(json!(NOW + 3000)))]),
        ),
        (
            "lifetime",
            token_with(&[("exp", Some(json!(NOW + 86_401)))]),
        ),
        ("grants array", grants(json!([]))),
        ("identity number", grants(json!({"identity": 1}))),
        ("bad grant", grants(json!({"identity": "a", "chat": []}))),
        (
            "expired",
            token_with(&[
                ("exp", Some(json!(NOW - 61))),
                ("iat", Some(json!(NOW - 3661))),
            ]),
        ),
    ]
}

#[test]
fn verifier_rejections_diagnosed_invalid() {
    let verifier = verifier();
    for (name, token) in rejected_tokens() {
        assert!(verifier.verify_at(&token, NOW).is_err(), "{name} verifies");
        let diagnosis = diagnose(&token, &context());
        assert_eq!(diagnosis.verdict(), Verdict::Invalid, "{name}");
    }
}

#[test]
fn iat_format_code_matches_verifier() {
    let token = token_with(&[("iat", Some(json!("now")))]);
    let error = verifier().verify_at(&token, NOW).expect_err("string iat");
    let finding = diagnose_expecting(&token, &context(), &["claims.time-format"]);
    assert_eq!(finding.twilio_code, Some(error.twilio_code()));
}

#[test]
fn lifetime_without_start_diagnosed() {
    let token = token_with(&[("iat", None), ("exp", Some(json!(NOW + 86_401)))]);
    assert!(verifier().verify_at(&token, NOW).is_err());
    let diagnosis = diagnose(&token, &context());
    assert_eq!(checks(&diagnosis), ["claims.lifetime"]);
    assert_eq!(diagnosis.verdict(), Verdict::Invalid);
}

#[test]
fn exp_beyond_verifier_range_diagnosed() {
    let exp = 1u64 << 53;
    let token = token_with(&[
        ("iat", Some(json!(exp - 1))),
        ("exp", Some(json!(exp))),
        ("jti", Some(json!(format!("{API_KEY_SID}-{}", exp - 1)))),
    ]);
    assert!(verifier().verify_at(&token, NOW).is_err());
    let diagnosis = diagnose(&token, &context());
    assert_eq!(diagnosis.verdict(), Verdict::Invalid, "{diagnosis:#?}");
}

#[test]
fn nbf_after_exp_verdicts_agree() {
    // The library refuses to mint such a token, so it is signed by hand.
    let token = token_with(&[("nbf", Some(json!(NOW + 2))), ("exp", Some(json!(NOW + 1)))]);
    assert!(verifier().verify_at(&token, NOW).is_ok());
    let diagnosis = diagnose(&token, &context());
    assert_eq!(checks(&diagnosis), ["claims.nbf-after-iat"]);
}

#[test]
fn max_issue_time_diagnosed_clean() {
    let token = AccessToken::builder()
        .account_sid(ACCOUNT_SID)
        .api_key_sid(API_KEY_SID)
        .api_secret(SECRET)
        .identity("alice")
        .build()
        .expect("valid")
        .to_jwt_at(MAX_ISSUE_TIME)
        .expect("the largest issue time the library mints");
    let context = DiagnoseContext::new(MAX_ISSUE_TIME)
        .key(API_KEY_SID, SECRET)
        .account_sid(ACCOUNT_SID);
    assert!(
        forge::verifier().verify_at(&token, MAX_ISSUE_TIME).is_ok(),
        "Verifier accepts it"
    );
    let diagnosis = diagnose(&token, &context);
    assert_eq!(checks(&diagnosis), ["grants.empty"]);
}

/// Writes every finding of each token as it would reach a user: severity, check, code,
/// message and fix.
fn findings_text(tokens: &[(&str, String, DiagnoseContext)]) -> String {
    let mut text = String::new();
    for (name, token, context) in tokens {
        text.push_str(&format!("## {name}\n"));
        for finding in diagnose(token, context).findings {
            let code = finding
                .twilio_code
                .map_or_else(String::new, |code| format!(" {code}"));
            text.push_str(&format!(
                "{} {}{code}: {}\n  fix: {}\n",
                finding.severity, finding.check, finding.message, finding.fix
            ));
        }
        text.push('\n');
    }
    text
}

#[test]
fn findings_text_snapshot() {
    let mut none = header();
    none["alg"] = json!("none");
    let mut region = header();
    region["twr"] = json!("eu-west-1");
    let late = DiagnoseContext::new(EXP + 3661)
        .key(API_KEY_SID, SECRET)
        .account_sid(ACCOUNT_SID);
    let two_keys = context().key(SECOND_KEY_SID, SECOND_SECRET);
    let tokens = [
        (
            "trailing newline",
            format!("{}\n", valid_token()),
            context(),
        ),
        (
            "cut short",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIi".to_owned(),
            context(),
        ),
        ("alg none", sign(&none, &payload()), context()),
        ("region", sign(&region, &payload()), context()),
        (
            "swapped sids",
            sign(
                &header(),
                &claims_issued_by(ACCOUNT_SID, &[("sub", Some(json!(API_KEY_SID)))]),
            ),
            context(),
        ),
        (
            "auth token",
            sign_with(
                &header(),
                &claims_issued_by(ACCOUNT_SID, &[]),
                b"0123456789abcdef0123456789abcdef",
            ),
            context(),
        ),
        (
            "secret with newline",
            sign_with(&header(), &payload(), format!("{SECRET}\n").as_bytes()),
            context(),
        ),
        (
            "other key",
            sign_with(&header(), &payload(), SECOND_SECRET.as_bytes()),
            two_keys,
        ),
        ("expired", valid_token(), late),
        (
            "milliseconds",
            token_with(&[
                ("iat", Some(json!(NOW * 1000))),
                ("exp", Some(json!(EXP * 1000))),
            ]),
            context(),
        ),
        (
            "nbf ahead and long",
            token_with(&[
                ("nbf", Some(json!(NOW + 600))),
                ("exp", Some(json!(NOW + 600 + 90_000))),
                ("jti", Some(json!("token-1"))),
            ]),
            context(),
        ),
        (
            "grant problems",
            grants(json!({"identity": 42, "video": "room", "rtc": {}})),
            context(),
        ),
        (
            "voice and video",
            token_with(&[
                (
                    "grants",
                    Some(json!({"identity": "alice smith", "voice": {}, "video": {},
                                "chat": {}, "ip_messaging": {}})),
                ),
                ("exp", Some(json!(NOW + 20_000))),
            ]),
            context(),
        ),
    ];
    insta::assert_snapshot!(findings_text(&tokens));
}
