//! Hand-built tokens for the verification tests: header and payload JSON exactly as given,
//! signed with HMAC-SHA256 by the `hmac` crate rather than by the library under test.

#![allow(
    dead_code,
    reason = "each test file uses a different subset of these helpers"
)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use twilio_access_token::{ApiSecret, FixedClock, Verifier, VerifierBuilder};

pub(crate) const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub(crate) const OTHER_ACCOUNT_SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub(crate) const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
pub(crate) const SECOND_KEY_SID: &str = "SK00000000000000000000000000000002";
pub(crate) const SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
pub(crate) const SECOND_SECRET: &str = "secondFAKEsecretDoNotUse01234567";
pub(crate) const SERVICE_SID: &str = "IS00000000000000000000000000000001";

/// The issue time of the standard token and the verifier's frozen clock, in Unix seconds.
pub(crate) const NOW: u64 = 1_700_000_000;

/// Encodes bytes as base64url without padding.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Returns the HMAC-SHA256 of `signing_input` under `secret`, base64url-encoded.
pub(crate) fn signature(signing_input: &str, secret: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    mac.update(signing_input.as_bytes());
    encode(mac.finalize().into_bytes())
}

/// Encodes header and payload text as given and signs them with `secret`.
pub(crate) fn sign_text(header: &str, payload: &str, secret: &[u8]) -> String {
    let signing_input = format!("{}.{}", encode(header), encode(payload));
    let signature = signature(&signing_input, secret);
    format!("{signing_input}.{signature}")
}

/// Serializes header and payload (keys in insertion order) and signs them with `secret`.
pub(crate) fn sign_with(header: &Value, payload: &Value, secret: &[u8]) -> String {
    sign_text(&header.to_string(), &payload.to_string(), secret)
}

/// Serializes header and payload and signs them with [`SECRET`].
pub(crate) fn sign(header: &Value, payload: &Value) -> String {
    sign_with(header, payload, SECRET.as_bytes())
}

/// Returns the header twilio-node writes.
pub(crate) fn header() -> Value {
    json!({"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"})
}

/// Returns the claims twilio-node writes for identity "alice" with a Chat grant, issued at [`NOW`] with
/// the default one-hour TTL.
pub(crate) fn payload() -> Value {
    json!({
        "jti": format!("{API_KEY_SID}-{NOW}"),
        "grants": {"identity": "alice", "chat": {"service_sid": SERVICE_SID}},
        "iat": NOW,
        "exp": NOW + 3600,
        "iss": API_KEY_SID,
        "sub": ACCOUNT_SID,
    })
}

/// Returns the standard valid token: [`header`] and [`payload`] signed with [`SECRET`].
pub(crate) fn valid_token() -> String {
    sign(&header(), &payload())
}

/// Starts a verifier builder for [`ACCOUNT_SID`] with the key [`API_KEY_SID`] and a clock frozen at
/// [`NOW`].
pub(crate) fn verifier_builder() -> VerifierBuilder {
    Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, ApiSecret::new(SECRET))
        .clock(FixedClock(NOW))
}

/// Builds the verifier of [`verifier_builder`].
pub(crate) fn verifier() -> Verifier {
    verifier_builder().build().expect("the test SIDs are valid")
}
