//! Splits and parses arbitrary input as a token, which must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use twilio_access_token::dangerous::decode_unverified;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = decode_unverified(&text);
});
