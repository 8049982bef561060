//! Inputs the fuzz targets in `fuzz/` found to fail, kept as tests.
//!
//! The `mutate` target minted a Video token whose room name was about 2,000 control
//! characters. Each one is written as a six-byte `\u001c` escape, so the token grew past the
//! 16 KiB that `Verifier` accepts, and the library rejected a token it had just minted.

use twilio_access_token::{
    AccessToken, ApiSecret, MAX_TOKEN_BYTES, MintError, Verifier, VideoGrant,
};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const API_SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";

/// The issue time and TTL of the fuzz input, in seconds.
const ISSUED_AT: u64 = 471_597_231;
const TTL: u64 = 16_620;

fn video_token(room: &str) -> AccessToken {
    AccessToken::builder()
        .account_sid(ACCOUNT_SID)
        .api_key_sid(API_KEY_SID)
        .api_secret(ApiSecret::new(API_SECRET))
        .identity("T")
        .ttl_secs(TTL)
        .grant(VideoGrant::new().room(room))
        .build()
        .expect("the builder accepts any room name")
}

fn verifier() -> Verifier {
    Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, ApiSecret::new(API_SECRET))
        .build()
        .expect("valid SIDs")
}

#[test]
fn escaped_room_name_fits_limit() {
    // 1,900 escaped characters stay under 16 KiB, so the token verifies.
    let jwt = video_token(&"\u{1c}".repeat(1_900))
        .to_jwt_at(ISSUED_AT)
        .expect("mints");
    assert!(jwt.len() <= MAX_TOKEN_BYTES, "{} bytes", jwt.len());
    assert!(verifier().verify_at(&jwt, ISSUED_AT).is_ok());
}

#[test]
fn oversized_token_rejected_at_build() {
    let room = "\u{1c}".repeat(2_100);
    let result = AccessToken::builder()
        .account_sid(ACCOUNT_SID)
        .api_key_sid(API_KEY_SID)
        .api_secret(ApiSecret::new(API_SECRET))
        .identity("T")
        .ttl_secs(TTL)
        .grant(VideoGrant::new().room(room))
        .build();
    assert_eq!(
        result.map(|_| ()),
        Err(MintError::TokenTooLarge { bytes: 17_262 })
    );
}
