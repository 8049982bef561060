//! Each check of `Verifier::verify_at`, one defect at a time.
//!
//! Every case starts from a valid hand-signed token (see `forge`), applies exactly one defect,
//! and asserts the exact `VerifyError` and its Twilio error code.

mod forge;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use forge::{
    ACCOUNT_SID, API_KEY_SID, NOW, OTHER_ACCOUNT_SID, SECOND_KEY_SID, SECOND_SECRET, SECRET,
    encode, header, payload, sign, sign_text, sign_with, valid_token, verifier, verifier_builder,
};
use serde_json::{Value, json};
use twilio_access_token::{
    ApiSecret, Claims, DecodeError, FixedClock, GrantJsonError, MAX_ISSUE_TIME, MAX_LIFETIME_SECS,
    MAX_TOKEN_BYTES, RevocationCheck, Segment, Verifier, VerifyError,
};

/// Expiry of the standard token: one hour after [`NOW`].
const EXP: u64 = NOW + 3600;

/// One defective token and what verifying it at `now` must return.
struct Case {
    name: &'static str,
    token: String,
    now: u64,
    error: VerifyError,
    code: u32,
}

fn case(name: &'static str, token: String, error: VerifyError, code: u32) -> Case {
    Case {
        name,
        token,
        now: NOW,
        error,
        code,
    }
}

fn case_at(name: &'static str, token: String, now: u64, error: VerifyError, code: u32) -> Case {
    Case {
        name,
        token,
        now,
        error,
        code,
    }
}

fn assert_cases(verifier: &Verifier, cases: Vec<Case>) {
    for case in cases {
        let error = verifier
            .verify_at(&case.token, case.now)
            .expect_err(case.name);
        assert_eq!(error, case.error, "{}", case.name);
        assert_eq!(error.twilio_code(), case.code, "{} code", case.name);
    }
}

/// Returns the standard payload with `claim` set to `value`, or removed when `value` is `None`.
fn payload_with(claim: &str, value: Option<Value>) -> Value {
    let mut claims = payload();
    let object = claims.as_object_mut().expect("payload is an object");
    match value {
        Some(value) => object.insert(claim.to_owned(), value),
        None => object.shift_remove(claim),
    };
    claims
}

/// Returns the standard header with `field` set to `value`, or removed when `value` is `None`.
fn header_with(field: &str, value: Option<Value>) -> Value {
    let mut fields = header();
    let object = fields.as_object_mut().expect("header is an object");
    match value {
        Some(value) => object.insert(field.to_owned(), value),
        None => object.shift_remove(field),
    };
    fields
}

/// Signs a token whose payload differs from the standard one in `claim`.
fn token_with_claim(claim: &str, value: Option<Value>) -> String {
    sign(&header(), &payload_with(claim, value))
}

/// Signs a token whose header differs from the standard one in `field`.
fn token_with_header(field: &str, value: Option<Value>) -> String {
    sign(&header_with(field, value), &payload())
}

/// Signs the standard token with its time claims replaced by the given ones.
fn token_with_times(nbf: Option<u64>, iat: Option<u64>, exp: u64) -> String {
    let mut claims = payload_with("iat", iat.map(Value::from));
    claims["exp"] = Value::from(exp);
    if let Some(nbf) = nbf {
        claims["nbf"] = Value::from(nbf);
    }
    sign(&header(), &claims)
}

fn malformed(error: DecodeError) -> VerifyError {
    VerifyError::Malformed(error)
}

fn invalid_time(claim: &'static str, value: &str) -> VerifyError {
    VerifyError::InvalidTime {
        claim,
        value: value.to_owned(),
    }
}

fn alg(value: &str) -> VerifyError {
    VerifyError::UnsupportedAlgorithm {
        alg: Some(value.to_owned()),
    }
}

/// Moves the last character of a base64url part to the next one in the alphabet, which
/// changes only the unused low bits when the part's bit length is not a multiple of 6.
fn set_trailing_bit(part: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (head, last) = part.split_at(part.len() - 1);
    let index = ALPHABET
        .iter()
        .position(|&c| c == last.as_bytes()[0])
        .expect("base64url character");
    format!("{head}{}", ALPHABET[index + 1] as char)
}

#[test]
fn standard_token_valid() {
    let claims = verifier()
        .verify_at(&valid_token(), NOW)
        .expect("the standard token verifies");
    assert_eq!(claims.identity, "alice");
    assert_eq!(claims.api_key_sid, API_KEY_SID);
    assert_eq!(claims.account_sid, ACCOUNT_SID);
    assert_eq!(claims.expires_at, EXP);
    assert_eq!(claims.issued_at, Some(NOW));
    assert_eq!(claims.not_before, None);
    assert_eq!(
        claims.jti.as_deref(),
        Some(&*format!("{API_KEY_SID}-{NOW}"))
    );
    assert_eq!(claims.region, None);
    assert_eq!(claims.grants.len(), 1);
    assert!(claims.unknown_grants.is_empty());
}

#[test]
fn size_limit_checked_before_decoding() {
    let garbage = "!".repeat(MAX_TOKEN_BYTES + 1);
    let just_under = "!".repeat(MAX_TOKEN_BYTES);
    // Two bytes per character, so the limit counts bytes, not characters.
    let wide = "é".repeat(MAX_TOKEN_BYTES / 2 + 1);
    assert_cases(
        &verifier(),
        vec![
            case(
                "16385 bytes of garbage",
                garbage,
                malformed(DecodeError::TooLarge {
                    len: MAX_TOKEN_BYTES + 1,
                }),
                20101,
            ),
            case(
                "16384 bytes of garbage",
                just_under,
                malformed(DecodeError::SegmentCount { found: 1 }),
                20101,
            ),
            case(
                "8193 two-byte characters",
                wide,
                malformed(DecodeError::TooLarge {
                    len: MAX_TOKEN_BYTES + 2,
                }),
                20101,
            ),
        ],
    );
}

/// Returns the shortest valid token of at least `len` bytes, padded with a filler claim.
fn token_of_length(len: usize) -> String {
    // Base64 turns 3 bytes into 4 characters, and the rest of the token is under 600 bytes, so
    // the search can start well below the result.
    let start = (len * 3 / 4).saturating_sub(600);
    for filler in start..len {
        let claims = payload_with("filler", Some(Value::from("x".repeat(filler))));
        let token = sign(&header(), &claims);
        if token.len() >= len {
            return token;
        }
    }
    unreachable!("a filler of {len} characters makes the token longer than {len}")
}

#[test]
fn size_limit_exact_boundary() {
    let at_limit = token_of_length(MAX_TOKEN_BYTES);
    assert_eq!(at_limit.len(), MAX_TOKEN_BYTES, "base64 length steps");
    assert!(verifier().verify_at(&at_limit, NOW).is_ok());

    let over = token_of_length(MAX_TOKEN_BYTES + 1);
    assert!(over.len() > MAX_TOKEN_BYTES);
    assert_eq!(
        verifier().verify_at(&over, NOW),
        Err(malformed(DecodeError::TooLarge { len: over.len() }))
    );
}

#[test]
fn structure_defects_rejected() {
    let token = valid_token();
    let (signing_input, signature) = token.rsplit_once('.').expect("three parts");
    let header_len = token.find('.').expect("a dot");
    let signature_offset = signing_input.len() + 1;
    let payload_offset = header_len + 1;

    let padded = format!("{token}=");
    let plus = format!("{signing_input}.+{}", &signature[1..]);
    let slash = format!("{signing_input}./{}", &signature[1..]);
    let plus_in_header = format!("+{}", &token[1..]);
    let slash_in_payload = format!("{}./{}", &token[..header_len], &token[payload_offset + 1..]);
    let trailing_bits = format!("{signing_input}.{}", set_trailing_bit(signature));
    let newline = format!("{token}\n");
    let space_before = format!(" {token}");

    let bad_base64 = |segment, offset| {
        malformed(DecodeError::InvalidBase64 {
            segment,
            offset: Some(offset),
        })
    };
    assert_cases(
        &verifier(),
        vec![
            case("empty", String::new(), malformed(DecodeError::Empty), 20101),
            case(
                "two parts",
                signing_input.to_owned(),
                malformed(DecodeError::SegmentCount { found: 2 }),
                20101,
            ),
            case(
                "four parts",
                format!("{token}.e30"),
                malformed(DecodeError::SegmentCount { found: 4 }),
                20101,
            ),
            case(
                "padding",
                padded,
                bad_base64(Segment::Signature, token.len()),
                20101,
            ),
            case(
                "plus in signature",
                plus,
                bad_base64(Segment::Signature, signature_offset),
                20101,
            ),
            case(
                "slash in signature",
                slash,
                bad_base64(Segment::Signature, signature_offset),
                20101,
            ),
            case(
                "plus in header",
                plus_in_header,
                bad_base64(Segment::Header, 0),
                20101,
            ),
            case(
                "slash in payload",
                slash_in_payload,
                bad_base64(Segment::Payload, payload_offset),
                20101,
            ),
            case(
                "non-canonical trailing bits",
                trailing_bits,
                malformed(DecodeError::TrailingBits {
                    segment: Segment::Signature,
                }),
                20101,
            ),
            case(
                "trailing newline",
                newline,
                bad_base64(Segment::Signature, token.len()),
                20101,
            ),
            case(
                "leading space",
                space_before,
                bad_base64(Segment::Header, 0),
                20101,
            ),
        ],
    );
}

#[test]
fn header_json_defects_rejected() {
    let standard = payload().to_string();
    let duplicate_alg = r#"{"alg":"HS256","alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}"#;
    // `\u0061` is `a`, so this repeats `alg` in another spelling.
    let escaped_alg = r#"{"alg":"HS256","\u0061lg":"none","typ":"JWT","cty":"twilio-fpa;v=1"}"#;
    let not_utf8 = format!(
        "{}.{}.e30",
        encode([0xff, 0xfe, 0xfd]),
        encode(standard.as_bytes())
    );
    assert_cases(
        &verifier(),
        vec![
            case(
                "header not JSON",
                sign_text("not json", &standard, SECRET.as_bytes()),
                malformed(DecodeError::InvalidJson {
                    segment: Segment::Header,
                    message: "expected ident at line 1 column 2".into(),
                }),
                20102,
            ),
            case(
                "header an array",
                sign_text(r#"["HS256"]"#, &standard, SECRET.as_bytes()),
                malformed(DecodeError::NotAnObject {
                    segment: Segment::Header,
                }),
                20102,
            ),
            case(
                "header not UTF-8",
                not_utf8,
                malformed(DecodeError::InvalidUtf8 {
                    segment: Segment::Header,
                }),
                20102,
            ),
            case(
                "duplicate alg",
                sign_text(duplicate_alg, &standard, SECRET.as_bytes()),
                malformed(DecodeError::DuplicateKey {
                    segment: Segment::Header,
                    key: "alg".into(),
                }),
                20102,
            ),
            case(
                "duplicate alg through an escape",
                sign_text(escaped_alg, &standard, SECRET.as_bytes()),
                malformed(DecodeError::DuplicateKey {
                    segment: Segment::Header,
                    key: "alg".into(),
                }),
                20102,
            ),
        ],
    );
}

#[test]
fn payload_json_defects_rejected() {
    let header = header().to_string();
    let duplicate_sub = format!(
        r#"{{"sub":"{OTHER_ACCOUNT_SID}","iss":"{API_KEY_SID}","exp":{EXP},"sub":"{ACCOUNT_SID}","grants":{{"identity":"alice"}}}}"#
    );
    let duplicate_identity = format!(
        r#"{{"iss":"{API_KEY_SID}","sub":"{ACCOUNT_SID}","exp":{EXP},"grants":{{"identity":"alice","identity":"admin"}}}}"#
    );
    assert_cases(
        &verifier(),
        vec![
            case(
                "payload not JSON",
                sign_text(&header, "{", SECRET.as_bytes()),
                malformed(DecodeError::InvalidJson {
                    segment: Segment::Payload,
                    message: "EOF while parsing an object at line 1 column 1".into(),
                }),
                20101,
            ),
            case(
                "payload a string",
                sign_text(&header, r#""claims""#, SECRET.as_bytes()),
                malformed(DecodeError::NotAnObject {
                    segment: Segment::Payload,
                }),
                20101,
            ),
            case(
                "duplicate sub",
                sign_text(&header, &duplicate_sub, SECRET.as_bytes()),
                malformed(DecodeError::DuplicateKey {
                    segment: Segment::Payload,
                    key: "sub".into(),
                }),
                20101,
            ),
            case(
                "duplicate identity inside grants",
                sign_text(&header, &duplicate_identity, SECRET.as_bytes()),
                malformed(DecodeError::DuplicateKey {
                    segment: Segment::Payload,
                    key: "identity".into(),
                }),
                20101,
            ),
        ],
    );
}

#[test]
fn algorithm_other_than_hs256_rejected() {
    let unsigned = {
        let header = header_with("alg", Some(json!("none")));
        format!(
            "{}.{}.",
            encode(header.to_string()),
            encode(payload().to_string())
        )
    };
    let mut cases = vec![
        case(
            "alg none, empty signature",
            unsigned,
            alg("\"none\""),
            20102,
        ),
        case(
            "alg missing",
            token_with_header("alg", None),
            VerifyError::UnsupportedAlgorithm { alg: None },
            20102,
        ),
        case(
            "alg a number",
            token_with_header("alg", Some(json!(256))),
            alg("256"),
            20102,
        ),
        case(
            "alg null",
            token_with_header("alg", Some(Value::Null)),
            alg("null"),
            20102,
        ),
    ];
    for name in ["none", "HS384", "HS512", "RS256", "ES256", "PS256", "hs256"] {
        cases.push(case(
            name,
            token_with_header("alg", Some(json!(name))),
            alg(&format!("\"{name}\"")),
            20102,
        ));
    }
    assert_cases(&verifier(), cases);
}

#[test]
fn header_fields_checked() {
    assert_cases(
        &verifier(),
        vec![
            case(
                "typ missing",
                token_with_header("typ", None),
                VerifyError::WrongType { typ: None },
                20102,
            ),
            case(
                "typ lowercase",
                token_with_header("typ", Some(json!("jwt"))),
                VerifyError::WrongType {
                    typ: Some("\"jwt\"".into()),
                },
                20102,
            ),
            case(
                "cty missing",
                token_with_header("cty", None),
                VerifyError::WrongContentType { cty: None },
                20102,
            ),
            case(
                "cty of another version",
                token_with_header("cty", Some(json!("twilio-fpa;v=2"))),
                VerifyError::WrongContentType {
                    cty: Some("\"twilio-fpa;v=2\"".into()),
                },
                20102,
            ),
            case(
                "twr a number",
                token_with_header("twr", Some(json!(1))),
                VerifyError::InvalidRegion,
                20102,
            ),
            case(
                "crit naming an extension",
                token_with_header("crit", Some(json!(["exp"]))),
                VerifyError::UnsupportedCritical {
                    crit: "[\"exp\"]".into(),
                },
                20102,
            ),
            case(
                "crit empty",
                token_with_header("crit", Some(json!([]))),
                VerifyError::UnsupportedCritical { crit: "[]".into() },
                20102,
            ),
        ],
    );
}

#[test]
fn region_header_returned() {
    let token = token_with_header("twr", Some(json!("ie1")));
    let claims = verifier().verify_at(&token, NOW).expect("verifies");
    assert_eq!(claims.region.as_deref(), Some("ie1"));
}

#[test]
fn issuer_and_signature_checked() {
    let unknown_key = "SK11111111111111111111111111111111";
    assert_cases(
        &verifier(),
        vec![
            case(
                "iss missing",
                token_with_claim("iss", None),
                VerifyError::MissingIssuer,
                20103,
            ),
            case(
                "iss a number",
                token_with_claim("iss", Some(json!(1))),
                VerifyError::MissingIssuer,
                20103,
            ),
            case(
                "iss not in the key set",
                token_with_claim("iss", Some(json!(unknown_key))),
                VerifyError::UnknownApiKey {
                    iss: unknown_key.into(),
                },
                20103,
            ),
            case(
                "wrong secret",
                sign_with(&header(), &payload(), b"notTheSecret"),
                VerifyError::BadSignature {
                    api_key_sid: API_KEY_SID.into(),
                },
                20107,
            ),
            case(
                "secret with a trailing newline",
                sign_with(&header(), &payload(), format!("{SECRET}\n").as_bytes()),
                VerifyError::BadSignature {
                    api_key_sid: API_KEY_SID.into(),
                },
                20107,
            ),
            case(
                "empty signature",
                format!(
                    "{}.",
                    valid_token().rsplit_once('.').expect("three parts").0
                ),
                VerifyError::BadSignature {
                    api_key_sid: API_KEY_SID.into(),
                },
                20107,
            ),
        ],
    );
}

#[test]
fn subject_checked() {
    assert_cases(
        &verifier(),
        vec![
            case(
                "sub missing",
                token_with_claim("sub", None),
                VerifyError::WrongAccount {
                    expected: ACCOUNT_SID.into(),
                    found: None,
                },
                20103,
            ),
            case(
                "sub another account",
                token_with_claim("sub", Some(json!(OTHER_ACCOUNT_SID))),
                VerifyError::WrongAccount {
                    expected: ACCOUNT_SID.into(),
                    found: Some(format!("\"{OTHER_ACCOUNT_SID}\"")),
                },
                20103,
            ),
            case(
                "sub a number",
                token_with_claim("sub", Some(json!(7))),
                VerifyError::WrongAccount {
                    expected: ACCOUNT_SID.into(),
                    found: Some("7".into()),
                },
                20103,
            ),
        ],
    );
}

/// Writes the claims of the standard token with `exp` as the given JSON text, because
/// serde_json cannot hold some of these numbers.
fn claims_with_exp(exp: &str) -> String {
    format!(
        r#"{{"grants":{{"identity":"alice"}},"iat":{NOW},"exp":{exp},"iss":"{API_KEY_SID}","sub":"{ACCOUNT_SID}"}}"#
    )
}

#[test]
fn expiry_format_checked() {
    let with_exp = |exp: &str| {
        sign_text(
            &header().to_string(),
            &claims_with_exp(exp),
            SECRET.as_bytes(),
        )
    };
    // serde_json reports the column of the number's last character.
    let exp_column = claims_with_exp("")
        .find(",\"iss\"")
        .expect("iss follows exp")
        + 5;
    assert_cases(
        &verifier(),
        vec![
            case(
                "exp missing",
                token_with_claim("exp", None),
                VerifyError::MissingExpiry,
                20104,
            ),
            case(
                "exp a float",
                with_exp("1700003600.5"),
                invalid_time("exp", "1700003600.5"),
                20104,
            ),
            case(
                "exp a whole float",
                with_exp("1700003600.0"),
                invalid_time("exp", "1700003600.0"),
                20104,
            ),
            case(
                "exp in exponent notation",
                with_exp("1.7000036e9"),
                invalid_time("exp", "1700003600.0"),
                20104,
            ),
            case(
                "exp negative",
                with_exp("-1"),
                invalid_time("exp", "-1"),
                20104,
            ),
            case(
                "exp a string",
                with_exp(&format!("\"{EXP}\"")),
                invalid_time("exp", &format!("\"{EXP}\"")),
                20104,
            ),
            case(
                "exp null",
                with_exp("null"),
                invalid_time("exp", "null"),
                20104,
            ),
            case(
                "exp 2^53",
                with_exp("9007199254740992"),
                invalid_time("exp", "9007199254740992"),
                20104,
            ),
            case(
                "exp u64::MAX + 1",
                with_exp("18446744073709551616"),
                invalid_time("exp", "1.8446744073709552e+19"),
                20104,
            ),
            case(
                "exp 23 nines",
                with_exp("99999999999999999999999"),
                invalid_time("exp", "1e+23"),
                20104,
            ),
            // serde_json cannot hold 1e400 as an f64, so the payload counts as invalid JSON.
            case(
                "exp 1e400",
                with_exp("1e400"),
                malformed(DecodeError::InvalidJson {
                    segment: Segment::Payload,
                    message: format!("number out of range at line 1 column {exp_column}"),
                }),
                20101,
            ),
        ],
    );
}

#[test]
fn expiry_boundaries_with_leeway() {
    let token = valid_token();
    let verifier = verifier();
    assert!(verifier.verify_at(&token, EXP).is_ok(), "exp == now");
    assert!(
        verifier.verify_at(&token, EXP + 60).is_ok(),
        "now == exp + leeway"
    );
    assert_cases(
        &verifier,
        vec![case_at(
            "one second past the leeway",
            token,
            EXP + 61,
            VerifyError::Expired {
                exp: EXP,
                now: EXP + 61,
                leeway: 60,
            },
            20104,
        )],
    );
}

#[test]
fn time_claims_largest_value_accepted() {
    // The latest issue time the library mints plus the maximum lifetime.
    let max = MAX_ISSUE_TIME + MAX_LIFETIME_SECS;
    let token = token_with_times(None, Some(max - 3600), max);
    let claims = verifier()
        .verify_at(&token, max - 10)
        .expect("the largest time claim is valid");
    assert_eq!(claims.expires_at, max);

    let past_max = (max + 1).to_string();
    assert_cases(
        &verifier(),
        vec![
            case_at(
                "exp one past the largest time",
                token_with_times(None, Some(max - 3600), max + 1),
                max - 10,
                invalid_time("exp", &past_max),
                20104,
            ),
            case_at(
                "nbf one past the largest time",
                token_with_times(Some(max + 1), Some(max - 3600), max),
                max - 10,
                invalid_time("nbf", &past_max),
                20105,
            ),
        ],
    );
}

#[test]
fn milliseconds_time_message_says_so() {
    let token = token_with_claim("exp", Some(json!(EXP * 1000)));
    let error = verifier().verify_at(&token, NOW).expect_err("milliseconds");
    assert_eq!(error, invalid_time("exp", &(EXP * 1000).to_string()));
    assert_eq!(
        error.to_string(),
        format!(
            "the exp claim {} looks like milliseconds: Unix times in tokens are in seconds",
            EXP * 1000
        )
    );
}

#[test]
fn not_before_boundaries_with_leeway() {
    let nbf = NOW + 600;
    let token = token_with_times(Some(nbf), Some(NOW), EXP);
    let verifier = verifier();
    assert!(verifier.verify_at(&token, nbf).is_ok(), "nbf == now");
    assert!(
        verifier.verify_at(&token, nbf - 60).is_ok(),
        "nbf exactly at the leeway"
    );
    assert_cases(
        &verifier,
        vec![case_at(
            "nbf one second past the leeway",
            token,
            nbf - 61,
            VerifyError::NotYetValid {
                nbf,
                now: nbf - 61,
                leeway: 60,
            },
            20105,
        )],
    );
}

#[test]
fn other_time_claims_format_checked() {
    assert_cases(
        &verifier(),
        vec![
            case(
                "nbf a string",
                token_with_claim("nbf", Some(json!("soon"))),
                invalid_time("nbf", "\"soon\""),
                20105,
            ),
            case(
                "nbf negative",
                token_with_claim("nbf", Some(json!(-5))),
                invalid_time("nbf", "-5"),
                20105,
            ),
            case(
                "iat a float",
                token_with_claim("iat", Some(json!(1_700_000_000.5))),
                invalid_time("iat", "1700000000.5"),
                20101,
            ),
            case(
                "iat 2^53",
                token_with_claim("iat", Some(json!(1u64 << 53))),
                invalid_time("iat", "9007199254740992"),
                20101,
            ),
        ],
    );
}

#[test]
fn lifetime_limit_exact_boundary() {
    let verifier = verifier();
    let from_nbf_ok = token_with_times(Some(NOW), Some(NOW - 1000), NOW + 86_400);
    let from_iat_ok = token_with_times(None, Some(NOW), NOW + 86_400);
    let from_now_ok = token_with_times(None, None, NOW + 86_400);
    for (name, token) in [
        ("86400 from nbf", &from_nbf_ok),
        ("86400 from iat", &from_iat_ok),
        ("86400 from now", &from_now_ok),
    ] {
        assert!(verifier.verify_at(token, NOW).is_ok(), "{name}");
    }

    let too_long = |lifetime, from| VerifyError::LifetimeTooLong {
        lifetime,
        from,
        max: 86_400,
    };
    assert_cases(
        &verifier,
        vec![
            case(
                "86401 from nbf",
                token_with_times(Some(NOW), Some(NOW - 1000), NOW + 86_401),
                too_long(86_401, "nbf"),
                20157,
            ),
            case(
                "86401 from iat",
                token_with_times(None, Some(NOW), NOW + 86_401),
                too_long(86_401, "iat"),
                20157,
            ),
            case(
                "86401 from now",
                token_with_times(None, None, NOW + 86_401),
                too_long(86_401, "now"),
                20157,
            ),
        ],
    );
}

#[test]
fn grants_checked() {
    let grants = |value: Value| token_with_claim("grants", Some(value));
    assert_cases(
        &verifier(),
        vec![
            case(
                "grants missing",
                token_with_claim("grants", None),
                VerifyError::GrantsNotObject,
                20106,
            ),
            case(
                "grants an array",
                grants(json!([{"identity": "alice"}])),
                VerifyError::GrantsNotObject,
                20106,
            ),
            case(
                "identity missing",
                grants(json!({"chat": {}})),
                VerifyError::MissingIdentity,
                20106,
            ),
            case(
                "identity a number",
                grants(json!({"identity": 42})),
                VerifyError::IdentityNotString { value: "42".into() },
                20106,
            ),
            case(
                "identity null",
                grants(json!({"identity": null})),
                VerifyError::IdentityNotString {
                    value: "null".into(),
                },
                20106,
            ),
            case(
                "video a string",
                grants(json!({"identity": "alice", "video": "room"})),
                VerifyError::InvalidGrant(GrantJsonError::NotAnObject {
                    path: "video".into(),
                }),
                20106,
            ),
            case(
                "chat service_sid a number",
                grants(json!({"identity": "alice", "chat": {"service_sid": 1}})),
                VerifyError::InvalidGrant(GrantJsonError::WrongType {
                    path: "chat.service_sid".into(),
                    expected: "a string",
                }),
                20106,
            ),
        ],
    );
}

#[test]
fn unknown_grant_kept_raw() {
    let rtc = json!({"configuration_profile_sid": "VS00000000000000000000000000000001"});
    let token = token_with_claim(
        "grants",
        Some(json!({"identity": "alice", "rtc": rtc, "video": {"room": "standup"}})),
    );
    let claims = verifier().verify_at(&token, NOW).expect("verifies");
    assert_eq!(claims.unknown_grants.len(), 1);
    assert_eq!(claims.unknown_grants["rtc"], rtc);
    assert_eq!(claims.grants.len(), 1);
    assert_eq!(claims.grants[0].key(), "video");
}

/// Rejects tokens of one identity, and counts its calls.
struct DenyIdentity {
    identity: &'static str,
    calls: Arc<AtomicUsize>,
}

impl RevocationCheck for DenyIdentity {
    fn check(&self, claims: &Claims) -> Option<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        (claims.identity == self.identity).then(|| format!("{} is banned", claims.identity))
    }
}

#[test]
fn revocation_hook_rejects_valid_token() {
    let calls = Arc::new(AtomicUsize::new(0));
    let verifier = verifier_builder()
        .revocation_check(DenyIdentity {
            identity: "alice",
            calls: Arc::clone(&calls),
        })
        .build()
        .expect("builds");
    assert_cases(
        &verifier,
        vec![case(
            "revoked identity",
            valid_token(),
            VerifyError::Revoked {
                reason: "alice is banned".into(),
            },
            20101,
        )],
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let bob = token_with_claim("grants", Some(json!({"identity": "bob"})));
    assert!(verifier.verify_at(&bob, NOW).is_ok());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn revocation_hook_skipped_for_invalid_token() {
    let calls = Arc::new(AtomicUsize::new(0));
    let verifier = verifier_builder()
        .revocation_check(DenyIdentity {
            identity: "alice",
            calls: Arc::clone(&calls),
        })
        .build()
        .expect("builds");
    let expired = verifier.verify_at(&valid_token(), EXP + 61);
    assert!(matches!(expired, Err(VerifyError::Expired { .. })));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn zero_leeway_exact_boundaries() {
    let verifier = verifier_builder().leeway_secs(0).build().expect("builds");
    assert_eq!(verifier.leeway_secs(), 0);
    let nbf = NOW + 10;
    let token = token_with_times(Some(nbf), Some(NOW), EXP);
    assert!(verifier.verify_at(&token, nbf).is_ok(), "nbf == now");
    assert!(verifier.verify_at(&token, EXP).is_ok(), "exp == now");
    assert_cases(
        &verifier,
        vec![
            case_at(
                "one second after exp",
                token.clone(),
                EXP + 1,
                VerifyError::Expired {
                    exp: EXP,
                    now: EXP + 1,
                    leeway: 0,
                },
                20104,
            ),
            case_at(
                "one second before nbf",
                token,
                nbf - 1,
                VerifyError::NotYetValid {
                    nbf,
                    now: nbf - 1,
                    leeway: 0,
                },
                20105,
            ),
        ],
    );
}

#[test]
fn second_key_selected_by_iss() {
    let verifier = verifier_builder()
        .key(SECOND_KEY_SID, ApiSecret::new(SECOND_SECRET))
        .build()
        .expect("builds");
    assert_eq!(
        verifier.api_key_sids().collect::<Vec<_>>(),
        [API_KEY_SID, SECOND_KEY_SID]
    );
    let claims = payload_with("iss", Some(json!(SECOND_KEY_SID)));
    let token = sign_with(&header(), &claims, SECOND_SECRET.as_bytes());
    let verified = verifier.verify_at(&token, NOW).expect("verifies");
    assert_eq!(verified.api_key_sid, SECOND_KEY_SID);

    // Signed by the first key's secret but naming the second key.
    let crossed = sign(&header(), &claims);
    assert_cases(
        &verifier,
        vec![case(
            "iss names the second key, first key's secret signs",
            crossed,
            VerifyError::BadSignature {
                api_key_sid: SECOND_KEY_SID.into(),
            },
            20107,
        )],
    );
}

#[test]
fn verify_reads_builder_clock() {
    let token = valid_token();
    let fresh = verifier_builder()
        .clock(FixedClock(EXP + 60))
        .build()
        .expect("builds");
    assert!(fresh.verify(&token).is_ok());

    let late = verifier_builder()
        .clock(FixedClock(EXP + 61))
        .build()
        .expect("builds");
    assert_eq!(
        late.verify(&token),
        Err(VerifyError::Expired {
            exp: EXP,
            now: EXP + 61,
            leeway: 60,
        })
    );
}

#[test]
fn checks_run_in_documented_order() {
    let verifier = verifier();
    let unknown_iss = payload_with("iss", Some(json!("SK11111111111111111111111111111111")));
    let cases = vec![
        case(
            "alg checked before the payload is read",
            sign(&header_with("alg", Some(json!("HS512"))), &unknown_iss),
            alg("\"HS512\""),
            20102,
        ),
        case(
            "iss checked before the signature",
            sign_with(&header(), &unknown_iss, b"wrong"),
            VerifyError::UnknownApiKey {
                iss: "SK11111111111111111111111111111111".into(),
            },
            20103,
        ),
        case_at(
            "signature checked before exp",
            sign_with(&header(), &payload(), b"wrong"),
            EXP + 1000,
            VerifyError::BadSignature {
                api_key_sid: API_KEY_SID.into(),
            },
            20107,
        ),
        case_at(
            "sub checked before exp",
            token_with_claim("sub", Some(json!(OTHER_ACCOUNT_SID))),
            EXP + 1000,
            VerifyError::WrongAccount {
                expected: ACCOUNT_SID.into(),
                found: Some(format!("\"{OTHER_ACCOUNT_SID}\"")),
            },
            20103,
        ),
        case_at(
            "exp checked before grants",
            token_with_claim("grants", None),
            EXP + 1000,
            VerifyError::Expired {
                exp: EXP,
                now: EXP + 1000,
                leeway: 60,
            },
            20104,
        ),
    ];
    assert_cases(&verifier, cases);
}

#[test]
fn expired_display_says_how_long_ago() {
    let cases = [
        (3660, "1h 1m"),
        (61, "1m 1s"),
        (90_061, "1d 1h 1m 1s"),
        (0, "0s"),
    ];
    for (ago, text) in cases {
        let error = VerifyError::Expired {
            exp: EXP,
            now: EXP + ago,
            leeway: 60,
        };
        assert_eq!(
            error.to_string(),
            format!(
                "the token expired {text} ago (exp {EXP}, now {}, leeway 60s): mint a new one",
                EXP + ago
            )
        );
    }

    let verified = verifier().verify_at(&valid_token(), EXP + 3660);
    let message = verified.expect_err("expired").to_string();
    assert!(message.contains("expired 1h 1m ago"), "{message}");
}

#[test]
fn duplicate_key_name_kept_whole() {
    let header = r#"{"alg":"HS256","x at line 1":1,"x at line 1":2}"#;
    let token = sign_text(header, &payload().to_string(), SECRET.as_bytes());
    assert_eq!(
        verifier().verify_at(&token, NOW),
        Err(malformed(DecodeError::DuplicateKey {
            segment: Segment::Header,
            key: "x at line 1".into(),
        }))
    );
}

#[test]
fn trailing_bits_message_not_length() {
    let token = valid_token();
    let (signing_input, signature) = token.rsplit_once('.').expect("three parts");
    // 43 characters is a possible length for a 32-byte signature, and only the last bits differ.
    let changed = format!("{signing_input}.{}", set_trailing_bit(signature));
    let message = verifier()
        .verify_at(&changed, NOW)
        .expect_err("non-canonical base64")
        .to_string();
    assert!(!message.contains("length is impossible"), "{message}");
    assert!(!message.contains("cut short"), "{message}");
}
