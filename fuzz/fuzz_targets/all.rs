//! Runs decoding, verification and diagnosis on the same arbitrary input and checks that they
//! agree where they must.

#![no_main]

use libfuzzer_sys::fuzz_target;
use twilio_access_token::dangerous::decode_unverified;
use twilio_access_token::{ApiSecret, DiagnoseContext, Verdict, Verifier, diagnose};

/// The key, secret and account of `tests/fixtures/vectors-shared.json`, so seeds taken from it
/// get past the signature check.
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const API_SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
/// The fixture's frozen clock, in Unix seconds.
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let decoded = decode_unverified(&text);

    let verifier = Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, ApiSecret::new(API_SECRET))
        .build()
        .expect("the fixture's SIDs are valid");
    let verified = verifier.verify_at(&text, NOW);

    let context = DiagnoseContext::new(NOW)
        .key(API_KEY_SID, ApiSecret::new(API_SECRET))
        .account_sid(ACCOUNT_SID);
    let diagnosis = diagnose(&text, &context);

    // A token that verifies was decodable, and diagnosis decodes it too.
    if let Ok(claims) = &verified {
        let token = decoded.as_ref().expect("a verified token decodes");
        assert_eq!(token.claims["sub"], ACCOUNT_SID);
        assert_eq!(claims.api_key_sid, API_KEY_SID);
        assert!(
            diagnosis.token.is_some(),
            "diagnose could not decode a verified token"
        );
    }
    // A token that does not decode is always an invalid diagnosis, unless only whitespace
    // around it kept it from decoding.
    if decoded.is_err() && text.trim().len() == text.len() {
        assert!(verified.is_err());
        assert_eq!(diagnosis.verdict(), Verdict::Invalid);
    }
});
