//! Minting benchmarks, with a bare HMAC-SHA256 over the same bytes as the floor.
//!
//! Run with `cargo bench -p twilio-access-token --bench mint`. `scripts/bench/compare-mint.sh`
//! runs it next to the official Python and Node libraries and reports the ratios.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, json};
use sha2::Sha256;
use twilio_access_token::{
    AccessToken, ApiSecret, ChatGrant, IpMessagingGrant, PlaybackGrant, SyncGrant, TaskRouterGrant,
    VideoGrant, VoiceGrant,
};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const API_SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
const SERVICE_SID: &str = "IS00000000000000000000000000000001";
/// Issue time for every minted token, in Unix seconds, so each run signs the same bytes.
const ISSUED_AT: u64 = 1_700_000_000;

type HmacSha256 = Hmac<Sha256>;

/// Builds the typical Chat token: identity "alice", a Chat grant with a service SID, default TTL.
fn chat_token() -> AccessToken {
    AccessToken::builder()
        .account_sid(ACCOUNT_SID)
        .api_key_sid(API_KEY_SID)
        .api_secret(ApiSecret::new(API_SECRET))
        .identity("alice")
        .grant(ChatGrant::new().service_sid(SERVICE_SID))
        .build()
        .expect("the Chat token's fields are valid")
}

/// Builds a token that carries every grant type, each with all of its fields set.
fn all_grants_token() -> AccessToken {
    let chat = ChatGrant::new()
        .service_sid(SERVICE_SID)
        .endpoint_id("alice:chat:device-1")
        .deployment_role_sid("RL00000000000000000000000000000002")
        .push_credential_sid("CR00000000000000000000000000000003");
    let voice = VoiceGrant::new()
        .incoming_allow(true)
        .outgoing_application_sid("AP00000000000000000000000000000004")
        .outgoing_param("to", "+15551234567")
        .outgoing_param("priority", 2)
        .push_credential_sid("CR00000000000000000000000000000003")
        .endpoint_id("alice:voice:device-1");
    let task_router = TaskRouterGrant::new()
        .workspace_sid("WS00000000000000000000000000000005")
        .worker_sid("WK00000000000000000000000000000006")
        .role("worker");
    let mut playback = Map::new();
    playback.insert("requestCredentials".into(), json!(null));
    playback.insert(
        "playbackUrl".into(),
        json!("https://example.invalid/live/stream.m3u8"),
    );
    playback.insert("playerStreamerSid".into(), json!("VJ0000000000000007"));

    AccessToken::builder()
        .account_sid(ACCOUNT_SID)
        .api_key_sid(API_KEY_SID)
        .api_secret(ApiSecret::new(API_SECRET))
        .identity("alice")
        .grant(chat.clone())
        .grant(IpMessagingGrant::new(chat))
        .grant(VideoGrant::new().room("standup"))
        .grant(voice)
        .grant(
            SyncGrant::new()
                .service_sid(SERVICE_SID)
                .endpoint_id("alice:sync:device-1"),
        )
        .grant(task_router)
        .grant(PlaybackGrant::new(playback))
        .build()
        .expect("the all-grants token's fields are valid")
}

fn mint(c: &mut Criterion) {
    let chat = chat_token();
    let chat_jwt = chat.to_jwt_at(ISSUED_AT).expect("ISSUED_AT is in range");
    // The JWS signing input is `base64url(header).base64url(payload)`, all before the last dot.
    let (signing_input, _signature) = chat_jwt
        .rsplit_once('.')
        .expect("a compact JWT has three segments");
    let signing_input = signing_input.as_bytes().to_vec();
    let all_grants = all_grants_token();

    let mut group = c.benchmark_group("mint");
    group.throughput(Throughput::Elements(1));

    group.bench_function("chat_to_jwt_at", |b| {
        b.iter(|| black_box(&chat).to_jwt_at(black_box(ISSUED_AT)))
    });

    group.bench_function("hmac_sha256_new_from_slice", |b| {
        b.iter(|| {
            let mut mac = <HmacSha256 as KeyInit>::new_from_slice(black_box(API_SECRET.as_bytes()))
                .expect("HMAC takes keys of any length");
            mac.update(black_box(&signing_input));
            mac.finalize().into_bytes()
        })
    });

    let keyed = <HmacSha256 as KeyInit>::new_from_slice(API_SECRET.as_bytes())
        .expect("HMAC takes keys of any length");
    group.bench_function("hmac_sha256_cloned_key", |b| {
        b.iter(|| {
            let mut mac = black_box(&keyed).clone();
            mac.update(black_box(&signing_input));
            mac.finalize().into_bytes()
        })
    });

    group.bench_function("chat_build_and_mint", |b| {
        b.iter(|| {
            AccessToken::builder()
                .account_sid(ACCOUNT_SID)
                .api_key_sid(API_KEY_SID)
                .api_secret(ApiSecret::new(API_SECRET))
                .identity(black_box("alice"))
                .grant(ChatGrant::new().service_sid(SERVICE_SID))
                .build()
                .expect("the Chat token's fields are valid")
                .to_jwt_at(black_box(ISSUED_AT))
        })
    });

    group.bench_function("all_grants_to_jwt_at", |b| {
        b.iter(|| black_box(&all_grants).to_jwt_at(black_box(ISSUED_AT)))
    });

    group.finish();
}

criterion_group!(benches, mint);
criterion_main!(benches);
