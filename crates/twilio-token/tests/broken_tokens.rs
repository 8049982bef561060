//! Snapshots of what `verify` and `doctor` print for tokens with the usual mistakes.
//!
//! Each token is built by hand and signed with the `hmac` crate, so a mistake the library
//! refuses to mint (a secret with a newline, `alg: none`, a 25-hour lifetime) can still be
//! made. Every check runs at the fixed time [`NOW`]. Create or update the snapshots with
//! `INSTA_UPDATE=always cargo test -p twilio-token`, then review the changed files under
//! `tests/snapshots/`.

mod common;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha512;

use common::{
    ACCOUNT_SID, API_KEY_SID, ISSUED_AT, SECRET, SERVICE_SID, check, claims, encode, header, run,
    sign, token, twilio_token,
};

/// The time of every check: ten minutes after [`ISSUED_AT`].
const NOW: u64 = ISSUED_AT + 600;

/// Returns the standard claims after `change`.
fn claims_with(change: impl FnOnce(&mut Value)) -> Value {
    let mut claims = claims();
    change(&mut claims);
    claims
}

/// Runs `verify` and then `doctor` on the token at [`NOW`] with the standard key and account,
/// and returns both outputs with their exit status.
fn transcript(token: &str) -> String {
    let now = NOW.to_string();
    let (verify_status, verify_out, verify_err) = run(check("verify").args(["--at", &now, token]));
    let (doctor_status, doctor_out, doctor_err) = run(check("doctor").args(["--at", &now, token]));

    assert_eq!(doctor_err, "");
    for text in [&verify_out, &verify_err, &doctor_out] {
        common::assert_secret_absent(text, SECRET);
    }
    format!(
        "$ twilio-token verify\nexit status {verify_status}\n{verify_out}{verify_err}\n\
         $ twilio-token doctor\nexit status {doctor_status}\n{doctor_out}"
    )
}

/// Runs `doctor --json` on the token at [`NOW`] with the standard key and account.
fn doctor_json(token: &str) -> String {
    let (status, out, err) = run(check("doctor").args(["--at", &NOW.to_string(), "--json", token]));
    assert_eq!(err, "");
    serde_json::from_str::<Value>(&out).expect("stdout is JSON");
    format!("exit status {status}\n{out}")
}

/// Returns claims issued two hours before [`NOW`], which expired an hour before it.
fn expired_claims() -> Value {
    claims_with(|claims| {
        claims["jti"] = json!(format!("{API_KEY_SID}-{}", NOW - 7200));
        claims["iat"] = json!(NOW - 7200);
        claims["exp"] = json!(NOW - 3600);
    })
}

#[test]
fn expired_token_snapshot() {
    let token = token(&expired_claims());
    insta::assert_snapshot!("broken_expired", transcript(&token));
}

#[test]
fn not_yet_valid_token_snapshot() {
    let token = token(&claims_with(|claims| {
        claims["nbf"] = json!(NOW + 600);
        claims["exp"] = json!(NOW + 4200);
    }));
    insta::assert_snapshot!("broken_not_yet_valid", transcript(&token));
}

#[test]
fn wrong_secret_snapshot() {
    let token = sign(&header(), &claims(), b"FAKEotherSecretDoNotUse012345678");
    insta::assert_snapshot!("broken_wrong_secret", transcript(&token));
}

#[test]
fn secret_with_newline_at_mint_snapshot() {
    // The minting side read its secret file with the trailing newline.
    let token = sign(&header(), &claims(), format!("{SECRET}\n").as_bytes());
    insta::assert_snapshot!("broken_secret_newline", transcript(&token));
    insta::assert_snapshot!("broken_secret_newline_json", doctor_json(&token));
}

#[test]
fn swapped_sids_snapshot() {
    let token = token(&claims_with(|claims| {
        claims["jti"] = json!(format!("{ACCOUNT_SID}-{ISSUED_AT}"));
        claims["iss"] = json!(ACCOUNT_SID);
        claims["sub"] = json!(API_KEY_SID);
    }));
    insta::assert_snapshot!("broken_swapped_sids", transcript(&token));
}

#[test]
fn auth_token_signed_snapshot() {
    // Signed with the account SID and its Auth Token instead of an API key.
    let claims = claims_with(|claims| {
        claims["jti"] = json!(format!("{ACCOUNT_SID}-{ISSUED_AT}"));
        claims["iss"] = json!(ACCOUNT_SID);
    });
    let token = sign(&header(), &claims, b"placeholderAuthToken0123456789ab");
    insta::assert_snapshot!("broken_auth_token", transcript(&token));
}

#[test]
fn alg_none_snapshot() {
    let header = json!({"alg": "none", "typ": "JWT", "cty": "twilio-fpa;v=1"});
    let token = format!(
        "{}.{}.",
        encode(header.to_string()),
        encode(claims().to_string())
    );
    insta::assert_snapshot!("broken_alg_none", transcript(&token));
    insta::assert_snapshot!("broken_alg_none_json", doctor_json(&token));
}

#[test]
fn hs512_snapshot() {
    let header = json!({"alg": "HS512", "typ": "JWT", "cty": "twilio-fpa;v=1"});
    let signing_input = format!(
        "{}.{}",
        encode(header.to_string()),
        encode(claims().to_string())
    );
    let mut mac =
        <Hmac<Sha512> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    let token = format!("{signing_input}.{}", encode(mac.finalize().into_bytes()));
    insta::assert_snapshot!("broken_hs512", transcript(&token));
}

#[test]
fn lifetime_25_hours_snapshot() {
    let token = token(&claims_with(|claims| {
        claims["exp"] = json!(ISSUED_AT + 25 * 3600);
    }));
    insta::assert_snapshot!("broken_lifetime_25h", transcript(&token));
}

#[test]
fn voice_identity_with_space_snapshot() {
    let token = token(&claims_with(|claims| {
        claims["grants"] =
            json!({"identity": "alice smith", "voice": {"incoming": {"allow": true}}});
    }));
    insta::assert_snapshot!("broken_voice_identity_space", transcript(&token));
}

#[test]
fn video_6_hours_snapshot() {
    let token = token(&claims_with(|claims| {
        claims["grants"] = json!({"identity": "alice", "video": {"room": "standup"}});
        claims["exp"] = json!(ISSUED_AT + 6 * 3600);
    }));
    insta::assert_snapshot!("broken_video_6h", transcript(&token));
}

#[test]
fn jti_malformed_snapshot() {
    let token = token(&claims_with(|claims| {
        claims["jti"] = json!("token-1");
    }));
    insta::assert_snapshot!("broken_jti_malformed", transcript(&token));
}

#[test]
fn nbf_after_iat_snapshot() {
    let token = token(&claims_with(|claims| {
        claims["nbf"] = json!(ISSUED_AT + 300);
    }));
    insta::assert_snapshot!("broken_nbf_after_iat", transcript(&token));
}

#[test]
fn exp_in_milliseconds_snapshot() {
    let token = token(&claims_with(|claims| {
        claims["exp"] = json!((ISSUED_AT + 3600) * 1000);
    }));
    insta::assert_snapshot!("broken_exp_milliseconds", transcript(&token));
}

#[test]
fn grants_not_object_snapshot() {
    let token = token(&claims_with(|claims| {
        claims["grants"] = json!("alice");
    }));
    insta::assert_snapshot!("broken_grants_not_object", transcript(&token));
}

#[test]
fn empty_grants_snapshot() {
    let token = token(&claims_with(|claims| {
        claims["grants"] = json!({"identity": "alice"});
    }));
    insta::assert_snapshot!("broken_empty_grants", transcript(&token));
}

#[test]
fn ip_messaging_with_chat_snapshot() {
    let token = token(&claims_with(|claims| {
        claims["grants"] = json!({
            "identity": "alice",
            "ip_messaging": {"service_sid": SERVICE_SID},
            "chat": {"service_sid": SERVICE_SID},
        });
    }));
    insta::assert_snapshot!("broken_ip_messaging_with_chat", transcript(&token));
}

#[test]
fn malformed_token_snapshot() {
    insta::assert_snapshot!(
        "broken_malformed",
        transcript("eyJhbGciOiJIUzI1NiJ9.e30+.c2ln")
    );
}

#[test]
fn doctor_without_secret_snapshot() {
    let now = NOW.to_string();
    let (status, out, err) = run(twilio_token().args(["doctor", "--at", &now, &token(&claims())]));
    assert_eq!(err, "");
    insta::assert_snapshot!(
        "broken_doctor_without_secret",
        format!("exit status {status}\n{out}")
    );

    let expired = token(&expired_claims());
    let (status, out, err) = run(twilio_token().args(["doctor", "--at", &now, "--json", &expired]));
    assert_eq!(err, "");
    insta::assert_snapshot!(
        "broken_doctor_without_secret_json",
        format!("exit status {status}\n{out}")
    );
}
