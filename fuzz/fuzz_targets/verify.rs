//! Verifies arbitrary input as a token, which must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use twilio_access_token::{ApiSecret, Verifier};

/// The key, secret and account of `tests/fixtures/vectors-shared.json`, so seeds taken from it
/// get past the signature check.
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const API_SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
/// The fixture's frozen clock, in Unix seconds.
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let verifier = Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, ApiSecret::new(API_SECRET))
        .build()
        .expect("the fixture's SIDs are valid");
    let _ = verifier.verify_at(&text, NOW);
});
