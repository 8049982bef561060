//! Rate limits, revocation and metrics over real HTTP on loopback, with a real `redis-server`
//! where Redis is used.

mod common;
mod redis_server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use twilio_access_token::{AccessToken, ApiSecret, SyncGrant, Verifier, VerifyError};

use common::{
    ACCOUNT_SID, API_KEY_SID, GeneratedKeys, SECRET, TestServer, config_text, expect_error, header,
    state_from, unix_now,
};
use redis_server::RedisServer;

/// Starts the standard test server with `sections` appended to its configuration.
async fn start(sections: &str) -> (TestServer, Arc<twilio_token_server::AppState>) {
    start_keeping_state(sections).await
}

/// Starts a server and returns it with the state it serves.
async fn start_keeping_state(sections: &str) -> (TestServer, Arc<twilio_token_server::AppState>) {
    let keys = GeneratedKeys::new();
    let text = format!("{}\n{sections}", config_text(&keys, ""));
    let state = Arc::new(state_from(&text));
    let server = start_shared(keys.keys, Arc::clone(&state)).await;
    (server, state)
}

/// Starts a server for a state that the test keeps a handle on.
async fn start_shared(
    keys: common::ApiKeys,
    state: Arc<twilio_token_server::AppState>,
) -> TestServer {
    // `AppState` is `Clone` and shares its limits, lists and metrics between clones.
    TestServer::start_state(keys, (*state).clone()).await
}

async fn status_of(response: reqwest::Response) -> u16 {
    response.status().as_u16()
}

fn scratch(name: &str) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("limits")
        .join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("scratch folder");
    folder
}

#[tokio::test]
async fn identity_burst_then_429_with_retry_after() {
    let (server, _) = start("[rate_limit]\nper_identity = { burst = 3, per_minute = 30 }\n").await;
    let actor = server.keys.actor.clone();

    for _ in 0..3 {
        let response = server
            .post_token(&actor, json!({"identity": "user-1"}))
            .await;
        assert_eq!(status_of(response).await, 200);
    }
    let refused = server
        .post_token(&actor, json!({"identity": "user-1"}))
        .await;
    let other = server
        .post_token(&actor, json!({"identity": "user-2"}))
        .await;

    let reply = expect_error(refused, 429, "rate_limited").await;
    assert_eq!(header(&reply.headers, "retry-after"), "2");
    assert_eq!(
        reply.message,
        "too many token requests for this identity: retry after 2 seconds"
    );
    assert_eq!(status_of(other).await, 200);
}

#[tokio::test]
async fn sustained_rate_refills_budget() {
    let (server, _) = start("[rate_limit]\nper_identity = { burst = 1, per_minute = 120 }\n").await;
    let backend = server.keys.backend.clone();

    let first = server.post_token(&backend, json!({})).await;
    let second = server.post_token(&backend, json!({})).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let third = server.post_token(&backend, json!({})).await;

    assert_eq!(status_of(first).await, 200);
    let reply = expect_error(second, 429, "rate_limited").await;
    assert_eq!(header(&reply.headers, "retry-after"), "1");
    assert_eq!(status_of(third).await, 200);
}

#[tokio::test]
async fn client_limit_applies_before_authentication() {
    let (server, _) = start("[rate_limit]\nper_client = { burst = 2, per_minute = 60 }\n").await;

    let first = server.post_token("ttk_wrong", json!({})).await;
    let second = server.post_token("ttk_wrong", json!({})).await;
    let third = server.post_token(&server.keys.backend, json!({})).await;

    expect_error(first, 401, "invalid_api_key").await;
    expect_error(second, 401, "invalid_api_key").await;
    let reply = expect_error(third, 429, "rate_limited").await;
    assert_eq!(header(&reply.headers, "retry-after"), "1");
    assert_eq!(
        reply.message,
        "too many token requests for this client address: retry after 1 second"
    );
}

#[tokio::test]
async fn redis_budget_shared_by_two_servers() {
    let redis = RedisServer::start("shared");
    let sections = format!(
        "[rate_limit]\nstore = \"redis\"\nredis_url = \"{}\"\n\
         per_identity = {{ burst = 5, per_minute = 6 }}\n",
        redis.url()
    );
    let keys = GeneratedKeys::new();
    let text = format!("{}\n{sections}", config_text(&keys, ""));
    let first = TestServer::start_state(keys.keys.clone(), state_from(&text)).await;
    let second = TestServer::start_state(keys.keys.clone(), state_from(&text)).await;

    let mut statuses = Vec::new();
    for index in 0..12 {
        let server = if index % 2 == 0 { &first } else { &second };
        let response = server.post_token(&keys.keys.backend, json!({})).await;
        statuses.push(status_of(response).await);
    }

    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        7,
        "{statuses:?}"
    );
    let retry = second.post_token(&keys.keys.backend, json!({})).await;
    let reply = expect_error(retry, 429, "rate_limited").await;
    let wait: u64 = header(&reply.headers, "retry-after")
        .parse()
        .expect("seconds");
    assert!((1..=10).contains(&wait), "Retry-After {wait}");
}

#[tokio::test]
async fn redis_outage_falls_back_to_local_limits() {
    let mut redis = RedisServer::start("fallback");
    let sections = format!(
        "[rate_limit]\nstore = \"redis\"\nredis_url = \"{}\"\non_redis_error = \"local\"\n\
         per_identity = {{ burst = 2, per_minute = 6 }}\n",
        redis.url()
    );
    let (server, state) = start_keeping_state(&sections).await;
    let backend = server.keys.backend.clone();
    assert_eq!(
        status_of(server.post_token(&backend, json!({})).await).await,
        200
    );

    redis.stop();
    let mut during = Vec::new();
    for _ in 0..4 {
        during.push(status_of(server.post_token(&backend, json!({})).await).await);
    }
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = status_of(server.post_token(&backend, json!({})).await).await;

    // The local budget is separate from the one in Redis: two requests, then 429.
    assert_eq!(during, [200, 200, 429, 429]);
    // The restarted Redis has no data, so its budget is full again.
    assert_eq!(after, 200);
    let metrics = state.metrics.render();
    assert!(
        sample(
            &metrics,
            "twilio_token_redis_errors_total",
            &[("use", "rate_limit")]
        ) >= 1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "twilio_token_rate_limit_fallbacks_total",
            &[("policy", "local")]
        ),
        4.0
    );
}

#[tokio::test]
async fn redis_outage_with_deny_policy_answers_503() {
    let mut redis = RedisServer::start("deny");
    let sections = format!(
        "[rate_limit]\nstore = \"redis\"\nredis_url = \"{}\"\non_redis_error = \"deny\"\n\
         per_identity = {{ burst = 2, per_minute = 6 }}\n",
        redis.url()
    );
    let (server, _) = start(&sections).await;
    redis.stop();

    let response = server.post_token(&server.keys.backend, json!({})).await;

    let reply = expect_error(response, 503, "unavailable").await;
    assert_eq!(
        reply.message,
        "rate limits cannot be checked right now: try again in a few seconds"
    );
}

/// Returns the value of the series `name` whose labels include `labels`, or 0 when absent.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((series_name, rest)) => (series_name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let found: Vec<(&str, &str)> = series_labels
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key, value.trim_matches('"')))
            .collect();
        if labels.iter().all(|label| found.contains(label)) {
            total += value.parse::<f64>().expect("sample value is a number");
        }
    }
    total
}

#[tokio::test]
async fn metrics_count_tokens_refusals_and_auth_failures() {
    let (server, _) = start("").await;
    for _ in 0..2 {
        let response = server.post_token(&server.keys.backend, json!({})).await;
        assert_eq!(status_of(response).await, 200);
    }
    expect_error(
        server.post_token(&server.keys.stranger, json!({})).await,
        403,
        "no_matching_rule",
    )
    .await;
    expect_error(
        server.post_token("ttk_wrong", json!({})).await,
        401,
        "invalid_api_key",
    )
    .await;

    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        header(response.headers(), "content-type"),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = response.text().await.expect("body");

    assert_eq!(
        sample(
            &text,
            "twilio_token_tokens_issued_total",
            &[("profile", "default")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "twilio_token_grants_issued_total",
            &[("profile", "default"), ("grant", "sync")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "twilio_token_token_refusals_total",
            &[("reason", "no_matching_rule")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "twilio_token_auth_failures_total",
            &[("provider", "api_key"), ("reason", "invalid_api_key")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "twilio_token_request_duration_seconds_count",
            &[("route", "token"), ("status", "200")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "twilio_token_request_duration_seconds_bucket",
            &[("route", "token"), ("status", "200"), ("le", "+Inf")]
        ),
        2.0
    );
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn metrics_counters_fed_by_other_modules_move() {
    let (server, state) = start("").await;

    state.metrics.audit_error("sqlite");
    state.metrics.audit_error("sqlite");
    state.metrics.jwks_refresh("oidc", "ok");
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");

    assert_eq!(
        sample(
            &text,
            "twilio_token_audit_errors_total",
            &[("sink", "sqlite")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "twilio_token_jwks_refreshes_total",
            &[("provider", "oidc"), ("outcome", "ok")]
        ),
        1.0
    );
}

#[tokio::test]
async fn metrics_disabled_or_moved_leave_main_router() {
    let (disabled, _) = start("[metrics]\nenabled = false\n").await;
    let (moved, _) = start("[metrics]\nlisten = \"127.0.0.1:0\"\n").await;

    for server in [&disabled, &moved] {
        let response = server
            .client
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        expect_error(response, 404, "not_found").await;
    }
}

fn verifier_with(hook: twilio_token_server::revocation::RevocationHook) -> Verifier {
    Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, ApiSecret::new(SECRET))
        .revocation_check(hook)
        .build()
        .expect("verifier builds")
}

async fn token_for(server: &TestServer, identity: &str) -> String {
    let response = server
        .post_token(&server.keys.actor, json!({"identity": identity}))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("JSON");
    body["token"].as_str().expect("token").to_owned()
}

async fn revoked_identity_case(sections: String, test: &str) {
    let (server, state) = start_keeping_state(&sections).await;
    let revocations = state.revocations.clone().expect("revocations configured");
    let old_token = token_for(&server, "user-1").await;
    let verifier = verifier_with(revocations.hook());
    assert!(
        verifier.verify(&old_token).is_ok(),
        "{test}: valid before revocation"
    );

    revocations
        .store()
        .revoke_identity("user-1", None, unix_now())
        .await
        .expect("entry written");
    revocations.refresh().await.expect("list read");
    let refused = server
        .post_token(&server.keys.actor, json!({"identity": "user-1"}))
        .await;
    let other = token_for(&server, "user-2").await;

    let reply = expect_error(refused, 403, "identity_revoked").await;
    assert_eq!(
        reply.message,
        "tokens for the identity \"user-1\" are revoked: ask the operator to lift the revocation"
    );
    assert_eq!(
        verifier.verify(&old_token),
        Err(VerifyError::Revoked {
            reason: "every token of the identity \"user-1\" is revoked".into()
        }),
        "{test}"
    );
    assert!(
        verifier.verify(&other).is_ok(),
        "{test}: other identities pass"
    );

    assert!(
        revocations
            .store()
            .remove_identity("user-1")
            .await
            .expect("removed")
    );
    revocations.refresh().await.expect("list read");
    token_for(&server, "user-1").await;
}

#[tokio::test]
async fn sqlite_revoked_identity_refused_and_rejected_by_verifier() {
    let folder = scratch("sqlite-identity");
    let sections = format!(
        "[revocation]\ndatabase = \"{}\"\n",
        folder.join("revocations.sqlite3").display()
    );
    revoked_identity_case(sections, "sqlite").await;
}

#[tokio::test]
async fn redis_revoked_identity_refused_and_rejected_by_verifier() {
    let redis = RedisServer::start("revocation");
    let sections = format!(
        "[revocation]\nstore = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    );
    revoked_identity_case(sections, "redis").await;
}

#[tokio::test]
async fn identity_revoked_before_time_keeps_newer_tokens() {
    let folder = scratch("before");
    let sections = format!(
        "[revocation]\ndatabase = \"{}\"\n",
        folder.join("revocations.sqlite3").display()
    );
    let (server, state) = start_keeping_state(&sections).await;
    let revocations = state.revocations.clone().expect("revocations configured");
    let verifier = verifier_with(revocations.hook());
    let now = unix_now();
    let older = mint_at("user-1", now - 100);
    let newer = mint_at("user-1", now - 10);

    revocations
        .store()
        .revoke_identity("user-1", Some(now - 50), now)
        .await
        .expect("entry written");
    revocations.refresh().await.expect("list read");

    assert!(matches!(
        verifier.verify(&older),
        Err(VerifyError::Revoked { .. })
    ));
    assert!(verifier.verify(&newer).is_ok());
    token_for(&server, "user-1").await;

    revocations
        .store()
        .revoke_identity("user-1", Some(now + 3600), now)
        .await
        .expect("entry replaced");
    revocations.refresh().await.expect("list read");
    let refused = server
        .post_token(&server.keys.actor, json!({"identity": "user-1"}))
        .await;
    let reply = expect_error(refused, 403, "identity_revoked").await;
    assert_eq!(
        reply.message,
        format!(
            "tokens for the identity \"user-1\" are revoked until {} (Unix time): try again \
             after that or ask the operator",
            now + 3600
        )
    );
}

fn mint_at(identity: &str, issued_at: u64) -> String {
    AccessToken::builder()
        .account_sid(ACCOUNT_SID)
        .api_key_sid(API_KEY_SID)
        .api_secret(SECRET)
        .identity(identity)
        .grant(SyncGrant::new().service_sid(common::SYNC_SERVICE_SID))
        .build()
        .expect("token builds")
        .to_jwt_at(issued_at)
        .expect("token mints")
}

#[tokio::test]
async fn revoked_jti_rejected_by_verifier_hook() {
    let folder = scratch("jti");
    let sections = format!(
        "[revocation]\ndatabase = \"{}\"\n",
        folder.join("revocations.sqlite3").display()
    );
    let (_server, state) = start_keeping_state(&sections).await;
    let revocations = state.revocations.clone().expect("revocations configured");
    let verifier = verifier_with(revocations.hook());
    let now = unix_now();
    let revoked = mint_at("user-1", now - 20);
    let kept = mint_at("user-1", now - 10);
    let jti = format!("{API_KEY_SID}-{}", now - 20);

    revocations
        .store()
        .revoke_jti(&jti, now)
        .await
        .expect("written");
    revocations.refresh().await.expect("list read");

    assert_eq!(
        verifier.verify(&revoked),
        Err(VerifyError::Revoked {
            reason: format!("the token {jti} is revoked")
        })
    );
    assert!(verifier.verify(&kept).is_ok());
    assert_eq!(
        sample(
            &state.metrics.render(),
            "twilio_token_revocations",
            &[("kind", "jti")]
        ),
        1.0
    );
}

/// Writes jti entries 25 hours and one second, and 25 hours, before `now`, then a new one, and
/// checks that the new write deleted only the first.
async fn old_jti_entries_pruned_case(sections: String, store: &str) {
    let (_server, state) = start_keeping_state(&sections).await;
    let revocations = state.revocations.clone().expect("revocations configured");
    let now = unix_now();
    let kept_for = twilio_token_server::revocation::JTI_ENTRY_SECS;
    assert_eq!(kept_for, 25 * 3600);
    let expired = format!("{API_KEY_SID}-{}", now - kept_for - 1 - 3600);
    let last_second = format!("{API_KEY_SID}-{}", now - kept_for - 3600);
    let fresh = format!("{API_KEY_SID}-{}", now - 60);

    let writes = [
        (&expired, now - kept_for - 1),
        (&last_second, now - kept_for),
        (&fresh, now),
    ];
    for (jti, revoked_at) in writes {
        revocations
            .store()
            .revoke_jti(jti, revoked_at)
            .await
            .expect("written");
    }
    let list = revocations.store().load().await.expect("list read");

    let mut jtis: Vec<(&str, u64)> = list
        .jtis
        .iter()
        .map(|(jti, revoked_at)| (jti.as_str(), *revoked_at))
        .collect();
    jtis.sort_by_key(|(_, revoked_at)| *revoked_at);
    assert_eq!(
        jtis,
        [
            (last_second.as_str(), now - kept_for),
            (fresh.as_str(), now)
        ],
        "{store}"
    );
}

#[tokio::test]
async fn sqlite_old_jti_entries_pruned() {
    let folder = scratch("jti-prune");
    let sections = format!(
        "[revocation]\ndatabase = \"{}\"\n",
        folder.join("revocations.sqlite3").display()
    );
    old_jti_entries_pruned_case(sections, "sqlite").await;
}

#[tokio::test]
async fn redis_old_jti_entries_pruned() {
    let redis = RedisServer::start("jti-prune");
    let sections = format!(
        "[revocation]\nstore = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    );
    old_jti_entries_pruned_case(sections, "redis").await;
}

async fn old_identity_entries_pruned_case(sections: String, store: &str) {
    let (_server, state) = start_keeping_state(&sections).await;
    let revocations = state.revocations.clone().expect("revocations configured");
    let now = unix_now();
    let kept_for = twilio_token_server::revocation::JTI_ENTRY_SECS;
    let long_ago = now - 10 * 24 * 3600;

    // (identity, before, time of the write), oldest write first.
    let writes = [
        ("forever", None, long_ago),
        ("expired", Some(now - kept_for - 1), now - kept_for - 1),
        ("last-second", Some(now - kept_for), now - kept_for),
        ("fresh", Some(now), now),
    ];
    for (identity, before, revoked_at) in writes {
        revocations
            .store()
            .revoke_identity(identity, before, revoked_at)
            .await
            .expect("written");
    }
    let list = revocations.store().load().await.expect("list read");

    let mut identities: Vec<&str> = list.identities.keys().map(String::as_str).collect();
    identities.sort_unstable();
    assert_eq!(identities, ["forever", "fresh", "last-second"], "{store}");
}

#[tokio::test]
async fn sqlite_old_identity_entries_pruned() {
    let folder = scratch("identity-prune");
    let sections = format!(
        "[revocation]\ndatabase = \"{}\"\n",
        folder.join("revocations.sqlite3").display()
    );
    old_identity_entries_pruned_case(sections, "sqlite").await;
}

#[tokio::test]
async fn redis_old_identity_entries_pruned() {
    let redis = RedisServer::start("identity-prune");
    let sections = format!(
        "[revocation]\nstore = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    );
    old_identity_entries_pruned_case(sections, "redis").await;
}

#[tokio::test]
async fn invalid_sections_name_their_key() {
    let keys = GeneratedKeys::new();
    let cases = [
        (
            "[rate_limit]\nper_identity = { burst = 10, per_minute = 0 }\n",
            "rate_limit.per_identity.per_minute",
        ),
        (
            "[revocation]\nrefresh_secs = 0\n",
            "revocation.refresh_secs",
        ),
        ("[revocation]\nstore = \"redis\"\n", "revocation.redis_url"),
        ("[metrics]\nlisten = \"localhost:9090\"\n", "metrics.listen"),
    ];
    for (sections, key) in cases {
        let text = format!("{}\n{sections}", config_text(&keys, ""));
        let file = twilio_token_server::config::parse(&text).expect("TOML parses");
        let error = twilio_token_server::AppState::from_config(
            &file,
            &common::environment(),
            std::path::Path::new("."),
        )
        .expect_err(sections);
        assert_eq!(error.key, key, "{sections}");
    }
}

#[tokio::test]
async fn metrics_count_failed_sign_ins() {
    let folder = scratch("sign-in");
    let text = format!(
        "[server]\ndata_dir = \"{}\"\n\n[auth]\norder = [\"users\"]\n[auth.users]\n\n\
         [[profiles]]\naccount_sid = \"{ACCOUNT_SID}\"\n\
         api_keys = [{{ sid = \"{API_KEY_SID}\", secret_env = \"{}\" }}]\n",
        folder.display(),
        common::SECRET_ENV
    );
    let state = Arc::new(state_from(&text));
    let keys = GeneratedKeys::new();
    let server = start_shared(keys.keys, Arc::clone(&state)).await;

    let response = server
        .client
        .post(server.url("/login"))
        .json(&json!({"username": "nobody", "password": "not-the-password"}))
        .send()
        .await
        .expect("POST /login");

    expect_error(response, 401, "invalid_credentials").await;
    assert_eq!(
        sample(
            &state.metrics.render(),
            "twilio_token_auth_failures_total",
            &[("provider", "users"), ("reason", "invalid_credentials")]
        ),
        1.0
    );
}
