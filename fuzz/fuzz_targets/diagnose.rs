//! Diagnoses arbitrary input as a token, which must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use twilio_access_token::{ApiSecret, DiagnoseContext, diagnose};

/// The key, secret and account of `tests/fixtures/vectors-shared.json`, plus a second key, so
/// the signature checks that try other keys and whitespace variants run too.
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const API_SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
const OTHER_KEY_SID: &str = "SK00000000000000000000000000000001";
/// The fixture's frozen clock, in Unix seconds.
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let context = DiagnoseContext::new(NOW)
        .key(API_KEY_SID, ApiSecret::new(API_SECRET))
        .key(OTHER_KEY_SID, ApiSecret::new("another secret\n"))
        .account_sid(ACCOUNT_SID);
    let _ = diagnose(&text, &context);
});
