//! Verification benchmark: `Verifier::verify_at` on a typical Chat token.
//!
//! Run with `cargo bench -p twilio-access-token --bench verify -- --noplot`. The target is at
//! least 1,000,000 verifications per second on one core, so under 1 µs per token.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twilio_access_token::{
    AccessToken, ApiSecret, ChatGrant, DiagnoseContext, Verifier, dangerous, diagnose,
};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const API_SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
const SERVICE_SID: &str = "IS00000000000000000000000000000001";
/// Issue time of the token, in Unix seconds. The benchmark verifies it 100 seconds later.
const ISSUED_AT: u64 = 1_700_000_000;

/// Mints the typical Chat token: identity "alice", a Chat grant with a service SID, the
/// default one-hour TTL.
fn chat_jwt() -> String {
    AccessToken::builder()
        .account_sid(ACCOUNT_SID)
        .api_key_sid(API_KEY_SID)
        .api_secret(ApiSecret::new(API_SECRET))
        .identity("alice")
        .grant(ChatGrant::new().service_sid(SERVICE_SID))
        .build()
        .expect("the Chat token's fields are valid")
        .to_jwt_at(ISSUED_AT)
        .expect("the issue time is in range")
}

fn verify(c: &mut Criterion) {
    let jwt = chat_jwt();
    let verifier = Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, ApiSecret::new(API_SECRET))
        .build()
        .expect("the verifier's SIDs are valid");
    let now = ISSUED_AT + 100;
    verifier
        .verify_at(&jwt, now)
        .expect("the benchmark token verifies");

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("chat_token", |b| {
        b.iter(|| verifier.verify_at(black_box(&jwt), black_box(now)))
    });
    // The decoding step alone, to show how much of a verification is base64 and JSON.
    group.bench_function("decode_unverified", |b| {
        b.iter(|| dangerous::decode_unverified(black_box(&jwt)))
    });
    let context = DiagnoseContext::new(now)
        .key(API_KEY_SID, ApiSecret::new(API_SECRET))
        .account_sid(ACCOUNT_SID);
    group.bench_function("diagnose", |b| {
        b.iter(|| diagnose(black_box(&jwt), black_box(&context)))
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
