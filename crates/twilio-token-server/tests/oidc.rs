//! End-to-end tests of the `oidc` provider against a real OpenID Connect provider: the npm
//! package `oidc-provider`, started by `tests/oidc/provider.mjs` on 127.0.0.1 and a free port.
//!
//! Each test obtains real access tokens (JWTs) from it with the client_credentials grant and a
//! resource indicator, and exchanges them at `POST /token`.
//!
//! Needs `node` (Debian `nodejs`) and `npm ci` in `tests/oidc`, which `scripts/test.sh` runs.

mod common;
#[path = "common/oidc_provider.rs"]
mod oidc_provider;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    ACCOUNT_SID, API_KEY_SID, CHAT_SERVICE_SID, SECRET_ENV, TestServer, expect_error, header,
    state_from, verifier,
};
use hmac::{Hmac, KeyInit, Mac};
use oidc_provider::{AUDIENCE, OidcServer, standard_clients};
use serde_json::{Value, json};
use sha2::Sha256;
use twilio_token_server::auth::api_key::generate_key;
use twilio_token_server::auth::oidc::KeyHealth;

/// Server configuration with an API key, the `[auth.oidc]` body given, and two rules: group
/// `support` gets Chat, identities `idp:*` get Video.
fn server_config(order: &str, oidc: &str, api_key_hash: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[auth]
order = {order}

[[auth.api_keys]]
name = "backend"
hash = "{api_key_hash}"
identity = "backend-svc"

[auth.oidc]
{oidc}

[[profiles]]
name = "default"
account_sid = "{ACCOUNT_SID}"
chat_service_sid = "{CHAT_SERVICE_SID}"

[[profiles.api_keys]]
sid = "{API_KEY_SID}"
secret_env = "{SECRET_ENV}"

[[policy.rules]]
groups = ["support"]
[policy.rules.grants.chat]

[[policy.rules]]
identities = ["idp:*", "mail:*", "backend-svc"]
[policy.rules.grants.video]
"#
    )
}

fn issuer_block(issuer: &str, extra: &str) -> String {
    format!(
        r#"
[[auth.oidc.issuers]]
issuer = "{issuer}"
audiences = ["{AUDIENCE}", "other-app"]
groups_claim = "groups"
{extra}
"#
    )
}

/// Fetches the provider's JWKS document, for tests that serve it from a file.
async fn jwks_text(idp: &OidcServer) -> String {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("{}/jwks", idp.issuer))
        .send()
        .await
        .expect("GET /jwks")
        .text()
        .await
        .expect("JWKS text")
}

async fn start_server(order: &str, oidc: &str) -> (TestServer, String) {
    let (key, hash) = generate_key();
    let state = state_from(&server_config(order, oidc, &hash));
    let keys = common::ApiKeys {
        backend: key.clone(),
        actor: key.clone(),
        ops: key.clone(),
        stranger: key.clone(),
    };
    (TestServer::start_state(keys, state).await, key)
}

/// Exchanges `bearer` at `POST /token` and returns the minted token's identity and grant names.
async fn exchange(server: &TestServer, bearer: &str) -> (String, Vec<String>) {
    let response = server.post_token(bearer, json!({})).await;
    let status = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(status, 200, "POST /token: {body}");
    let token = body["token"].as_str().expect("token");
    verifier().verify(token).expect("the minted token verifies");
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).expect("payload"))
            .expect("base64"),
    )
    .expect("claims");
    let mut grants: Vec<String> = claims["grants"]
        .as_object()
        .expect("grants")
        .keys()
        .filter(|name| name.as_str() != "identity")
        .cloned()
        .collect();
    grants.sort();
    (
        claims["grants"]["identity"]
            .as_str()
            .expect("identity")
            .to_owned(),
        grants,
    )
}

/// Sends `bearer` and checks a 401 with `code`, a `WWW-Authenticate` header, and a message
/// containing `expected`.
async fn expect_refused(server: &TestServer, bearer: &str, code: &str, expected: &str) {
    let response = server.post_token(bearer, json!({})).await;
    let reply = expect_error(response, 401, code).await;
    assert_eq!(
        header(&reply.headers, "www-authenticate"),
        "Bearer realm=\"twilio-token\""
    );
    assert!(
        reply.message.contains(expected),
        "message {:?} should contain {expected:?}",
        reply.message
    );
}

fn split(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header = parts.next().expect("header");
    let payload = parts.next().expect("payload");
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64")).expect("JSON")
    };
    (decode(header), decode(payload))
}

/// Builds a token from a header and claims, signed with HMAC-SHA256 under `key`, or unsigned
/// when `key` is `None`.
fn forge(header: &Value, claims: &Value, key: Option<&[u8]>) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = match key {
        Some(key) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
            mac.update(message.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        None => String::new(),
    };
    format!("{message}.{signature}")
}

/// Runs a test body, failing it after two minutes so that a stuck request cannot hang the
/// whole test run.
async fn within(body: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(120), body)
        .await
        .expect("the test finishes within two minutes");
}

async fn readyz(server: &TestServer) -> (u16, Value) {
    let response = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let status = response.status().as_u16();
    (status, response.json().await.expect("readyz JSON"))
}

#[tokio::test]
async fn real_tokens_of_every_algorithm_exchange_for_access_tokens() {
    within(async {
        let idp = OidcServer::start(standard_clients());
        let oidc = issuer_block(&idp.issuer, r#"identity_prefix = "idp:""#);
        let (server, api_key) = start_server(r#"["api_key", "oidc"]"#, &oidc).await;

        for client in ["svc-rs256", "svc-ps256", "svc-es256", "svc-eddsa"] {
            let token = idp.token(client, AUDIENCE).await;
            let (header, _) = split(&token);
            let alg = client.trim_start_matches("svc-");
            assert!(
                header["alg"]
                    .as_str()
                    .expect("alg")
                    .eq_ignore_ascii_case(alg),
                "{header}"
            );
            let (identity, grants) = exchange(&server, &token).await;
            assert_eq!(identity, format!("idp:{client}"));
            // Group `support` from the groups claim matches the first rule: Chat only.
            assert_eq!(grants, ["chat"], "{client}");
        }

        // The API key still works next to OIDC.
        let (identity, grants) = exchange(&server, &api_key).await;
        assert_eq!(identity, "backend-svc");
        assert_eq!(grants, ["video"]);
        let (status, body) = readyz(&server).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("degraded").is_none(), "{body}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn api_keys_and_jwts_coexist_in_either_order() {
    within(async {
        let idp = OidcServer::start(standard_clients());
        let oidc = issuer_block(&idp.issuer, r#"identity_prefix = "idp:""#);
        let token = idp.token("no-email", AUDIENCE).await;
        for order in [r#"["oidc", "api_key"]"#, r#"["api_key", "oidc"]"#] {
            let (server, api_key) = start_server(order, &oidc).await;
            let (identity, _) = exchange(&server, &token).await;
            assert_eq!(identity, "idp:no-email", "{order}");
            let (identity, _) = exchange(&server, &api_key).await;
            assert_eq!(identity, "backend-svc", "{order}");
            // A wrong API key is still the API key provider's to refuse, not OIDC's.
            let (wrong, _) = generate_key();
            expect_refused(&server, &wrong, "invalid_api_key", "API key is not valid").await;
            server.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_precise_messages() {
    within(async {
        let idp = OidcServer::start(standard_clients());
        let other_idp = OidcServer::start(standard_clients());
        let mail_idp = OidcServer::start(standard_clients());
        let oidc = format!(
            "leeway_secs = 0\n{}{}",
            issuer_block(&idp.issuer, r#"identity_prefix = "idp:""#),
            issuer_block(
                &mail_idp.issuer,
                "identity_claim = \"email\"\nidentity_prefix = \"mail:\""
            )
        );
        let (server, _) = start_server(r#"["api_key", "oidc"]"#, &oidc).await;

        // Expired: a two-second token, with no leeway. It is accepted at first, which puts it in the
        // verified-token cache; the cache must not outlive its exp.
        let short = idp.token("short-lived", AUDIENCE).await;
        let (identity, _) = exchange(&server, &short).await;
        assert_eq!(identity, "idp:short-lived");
        tokio::time::sleep(Duration::from_millis(3100)).await;
        expect_refused(&server, &short, "token_expired", "the token expired at").await;

        // Wrong audience: the error names the accepted ones.
        let wrong_audience = idp.token("svc-rs256", "urn:someone-else").await;
        expect_refused(
            &server,
            &wrong_audience,
            "invalid_audience",
            &format!(
                "the token's audience [\"urn:someone-else\"] is not accepted: expected one of \
                 {AUDIENCE}, other-app for issuer {}",
                idp.issuer
            ),
        )
        .await;

        // A real token from an issuer that is not configured.
        let foreign = other_idp.token("svc-rs256", AUDIENCE).await;
        expect_refused(
            &server,
            &foreign,
            "unknown_issuer",
            &format!(
                "the token's issuer \"{}\" is not configured: accepted issuers are {}, {}",
                other_idp.issuer, idp.issuer, mail_idp.issuer
            ),
        )
        .await;

        // alg none, with the claims of a valid token.
        let valid = idp.token("svc-rs256", AUDIENCE).await;
        let (real_header, claims) = split(&valid);
        let none = forge(&json!({"alg": "none", "typ": "JWT"}), &claims, None);
        expect_refused(
            &server,
            &none,
            "unsupported_algorithm",
            "the token is unsigned (alg none)",
        )
        .await;

        // HS256 signed with the provider's public key, naming the real RSA key.
        let hs256 = forge(
            &json!({"alg": "HS256", "typ": "JWT", "kid": idp.rsa_kid}),
            &claims,
            Some(idp.rsa_public_pem.as_bytes()),
        );
        expect_refused(
            &server,
            &hs256,
            "unsupported_algorithm",
            "the token's alg \"HS256\" is not accepted; accepted algorithms are RS256, PS256, \
             ES256, EdDSA: HMAC tokens are never accepted",
        )
        .await;

        // A critical header extension, which no verifier here understands. The check comes
        // before the signature's, so the changed header does not matter.
        let mut critical = real_header.clone();
        critical["crit"] = json!(["b64"]);
        critical["b64"] = json!(false);
        let critical = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(critical.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            valid.rsplit('.').next().expect("signature")
        );
        expect_refused(
            &server,
            &critical,
            "invalid_token",
            "the token's header has crit [\"b64\"], which names extensions this server does not \
             support",
        )
        .await;

        // A kid the JWKS does not have.
        let mut unknown_kid = real_header.clone();
        unknown_kid["kid"] = json!("no-such-key");
        let signature = valid.rsplit('.').next().expect("signature");
        let message = valid.rsplit_once('.').expect("message").0;
        let (_, payload) = message.split_once('.').expect("payload");
        let unknown = format!(
            "{}.{payload}.{signature}",
            URL_SAFE_NO_PAD.encode(unknown_kid.to_string())
        );
        expect_refused(
            &server,
            &unknown,
            "unknown_key",
            &format!(
                "unknown kid: the token's signing key \"no-such-key\" is not in the JWKS of {}",
                idp.issuer
            ),
        )
        .await;

        // ES256 naming the RSA key: the algorithm does not fit the key's type.
        let mut es_header = real_header.clone();
        es_header["alg"] = json!("ES256");
        let mismatched = format!(
            "{}.{payload}.{signature}",
            URL_SAFE_NO_PAD.encode(es_header.to_string())
        );
        expect_refused(
            &server,
            &mismatched,
            "invalid_token",
            &format!(
                "the token's alg ES256 needs an EC P-256 key but key \"{}\" is an RSA key",
                idp.rsa_kid
            ),
        )
        .await;

        // A changed claim breaks the signature.
        let mut tampered_claims = claims.clone();
        tampered_claims["sub"] = json!("someone-else");
        let tampered = format!(
            "{}.{}.{signature}",
            message.split_once('.').expect("header").0,
            URL_SAFE_NO_PAD.encode(tampered_claims.to_string())
        );
        expect_refused(
            &server,
            &tampered,
            "invalid_signature",
            "the token's signature does not verify",
        )
        .await;

        // The email identity claim: missing, unverified, and verified.
        let no_email = mail_idp.token("no-email", AUDIENCE).await;
        expect_refused(
            &server,
            &no_email,
            "missing_claim",
            &format!(
                "the token has no email claim, which the server reads the identity from \
                 (identity_claim of issuer {})",
                mail_idp.issuer
            ),
        )
        .await;
        let unverified = mail_idp.token("unverified", AUDIENCE).await;
        expect_refused(
            &server,
            &unverified,
            "email_not_verified",
            "the token's email is not verified (email_verified is not true)",
        )
        .await;
        let verified = mail_idp.token("svc-es256", AUDIENCE).await;
        let (identity, _) = exchange(&server, &verified).await;
        assert_eq!(identity, "mail:svc@example.com");

        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn rotated_keys_load_without_restart_and_cached_keys_outlive_the_provider() {
    within(async {
        let mut idp = OidcServer::start(standard_clients());
        let oidc = format!(
            "jwks_refresh_interval_secs = 1\nverified_cache_secs = 0\n{}",
            issuer_block(&idp.issuer, r#"identity_prefix = "idp:""#)
        );
        let (server, _) = start_server(r#"["oidc"]"#, &oidc).await;

        let before = idp.token("svc-rs256", AUDIENCE).await;
        assert_eq!(split(&before).0["kid"], json!(idp.rsa_kid));
        exchange(&server, &before).await;
        assert_eq!(idp.jwks_requests().await, 1);

        let new_kid = idp.rotate().await;
        let after = idp.token("svc-rs256", AUDIENCE).await;
        assert_eq!(split(&after).0["kid"], json!(new_kid));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (identity, _) = exchange(&server, &after).await;
        assert_eq!(identity, "idp:svc-rs256");
        assert_eq!(idp.jwks_requests().await, 2, "one refresh for the new kid");
        exchange(&server, &before).await;

        idp.stop();
        // The verified-token cache is off, so these are checked with the cached keys.
        exchange(&server, &before).await;
        exchange(&server, &after).await;
        let (status, body) = readyz(&server).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.get("degraded").is_none(),
            "no failed refresh yet: {body}"
        );

        // An unknown kid makes the server try the provider, which is down: the cached keys stay,
        // readiness shows the issuer as degraded.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (mut header, claims) = split(&after);
        header["kid"] = json!("rotated-while-down");
        let unknown = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            after.rsplit('.').next().expect("signature")
        );
        expect_refused(&server, &unknown, "unknown_key", "unknown kid").await;
        let (status, body) = readyz(&server).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["degraded"],
            json!([format!("oidc_keys_stale {}", idp.issuer)]),
            "{body}"
        );
        exchange(&server, &after).await;

        // Two fetches worked and the one while the provider was down failed.
        let metrics = server
            .client
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        for (outcome, count) in [("ok", 2), ("error", 1)] {
            let series = format!(
                "twilio_token_jwks_refreshes_total{{provider=\"{}\",outcome=\"{outcome}\"}} \
                 {count}\n",
                idp.issuer
            );
            assert!(metrics.contains(&series), "{series} in {metrics}");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_kids_refresh_at_most_once_per_interval() {
    within(async {
        let idp = OidcServer::start(standard_clients());
        let oidc = format!(
            "jwks_refresh_interval_secs = 300\n{}",
            issuer_block(&idp.issuer, "")
        );
        let (server, _) = start_server(r#"["oidc"]"#, &oidc).await;
        let token = idp.token("svc-rs256", AUDIENCE).await;
        exchange(&server, &token).await;
        assert_eq!(idp.jwks_requests().await, 1);

        let (mut header, claims) = split(&token);
        for attempt in 0..5 {
            header["kid"] = json!(format!("unknown-{attempt}"));
            let forged = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string()),
                token.rsplit('.').next().expect("signature")
            );
            expect_refused(&server, &forged, "unknown_key", "unknown kid").await;
        }
        assert_eq!(
            idp.jwks_requests().await,
            1,
            "unknown kids within the interval fetch nothing"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn readiness_fails_until_keys_load() {
    within(async {
        // An issuer on a port where nothing listens: no keys can load.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let issuer = format!("http://{address}");
        let (server, _) = start_server(r#"["oidc"]"#, &issuer_block(&issuer, "")).await;
        let (status, body) = readyz(&server).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["failing"], json!([format!("oidc_keys {issuer}")]));

        // A well-formed token for that issuer gets 503: its keys are unavailable, not wrong.
        let claims = json!({"iss": issuer, "aud": AUDIENCE, "sub": "x", "exp": 4_000_000_000u64});
        let token = forge(&json!({"alg": "RS256", "kid": "k"}), &claims, Some(b"x"));
        let response = server.post_token(&token, json!({})).await;
        let reply = expect_error(response, 503, "unavailable").await;
        assert!(
            reply.message.contains("signing keys could not be loaded"),
            "{}",
            reply.message
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn keys_load_from_a_jwks_url_or_file() {
    within(async {
        let idp = OidcServer::start(standard_clients());
        let token = idp.token("svc-es256", AUDIENCE).await;

        let by_url = issuer_block(&idp.issuer, &format!("jwks_url = \"{}/jwks\"", idp.issuer));
        let (server, _) = start_server(r#"["oidc"]"#, &by_url).await;
        let (identity, _) = exchange(&server, &token).await;
        assert_eq!(identity, "svc-es256");
        server.stop().await;

        let jwks = jwks_text(&idp).await;
        let dir = std::env::temp_dir().join(format!("twilio-token-oidc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("jwks.json");
        std::fs::write(&file, jwks).expect("write JWKS");
        let by_file = issuer_block(&idp.issuer, &format!("jwks_file = \"{}\"", file.display()));
        let (server, _) = start_server(r#"["oidc"]"#, &by_file).await;
        let (identity, _) = exchange(&server, &token).await;
        assert_eq!(identity, "svc-es256");
        server.stop().await;
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    })
    .await;
}

#[tokio::test]
async fn discovery_must_name_the_configured_issuer() {
    within(async {
        let idp = OidcServer::start(standard_clients());
        // The provider's issuer has no trailing slash, so this one differs from what discovery
        // publishes, and no key loads.
        let configured = format!("{}/", idp.issuer);
        let (server, _) = start_server(r#"["oidc"]"#, &issuer_block(&configured, "")).await;
        let (status, body) = readyz(&server).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["failing"], json!([format!("oidc_keys {configured}")]));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn reload_keeps_cached_keys() {
    within(async {
        let idp = OidcServer::start(standard_clients());
        let (_, hash) = generate_key();
        let text = server_config(r#"["oidc"]"#, &issuer_block(&idp.issuer, ""), &hash);
        let state = state_from(&text);
        let first = state.oidc.clone().expect("oidc is configured");
        let health = first.key_health().await;
        assert_eq!(health, [(idp.issuer.clone(), KeyHealth::Fresh)]);
        // With the provider gone, keys can only come from the cache.
        drop(idp);

        let file = twilio_token_server::config::parse(&text).expect("TOML parses");
        let reloaded = state
            .reconfigure(&file, &common::environment(), std::path::Path::new("."))
            .expect("the same configuration is valid");
        let reused = reloaded.oidc.clone().expect("oidc is configured");
        assert!(std::sync::Arc::ptr_eq(&first, &reused));
        assert_eq!(reused.key_health().await[0].1, KeyHealth::Fresh);

        let changed = text.replace("groups_claim = \"groups\"", "groups_claim = \"roles\"");
        let file = twilio_token_server::config::parse(&changed).expect("TOML parses");
        let rebuilt = reloaded
            .reconfigure(&file, &common::environment(), std::path::Path::new("."))
            .expect("the changed configuration is valid");
        let rebuilt = rebuilt.oidc.clone().expect("oidc is configured");
        assert!(!std::sync::Arc::ptr_eq(&reused, &rebuilt));
    })
    .await;
}

#[tokio::test]
async fn readiness_retries_stale_keys() {
    within(async {
        let idp = OidcServer::start(standard_clients());
        let token = idp.token("svc-es256", AUDIENCE).await;
        let jwks = jwks_text(&idp).await;
        let dir =
            std::env::temp_dir().join(format!("twilio-token-oidc-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("jwks.json");
        std::fs::write(&file, &jwks).expect("write JWKS");
        let oidc = format!(
            "jwks_refresh_interval_secs = 1\njwks_max_age_secs = 1\nverified_cache_secs = 0\n{}",
            issuer_block(&idp.issuer, &format!("jwks_file = \"{}\"", file.display()))
        );
        let (server, _) = start_server(r#"["oidc"]"#, &oidc).await;
        let (status, body) = readyz(&server).await;
        assert_eq!(status, 200, "{body}");

        // The file breaks: past the maximum age, a token request fetches it, fails and keeps
        // the cached keys.
        std::fs::write(&file, "{\"keys\": [").expect("break JWKS");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        exchange(&server, &token).await;
        let (status, body) = readyz(&server).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["degraded"],
            json!([format!("oidc_keys_stale {}", idp.issuer)])
        );

        // Fixed again: the next probe after the refresh interval fetches and recovers.
        std::fs::write(&file, &jwks).expect("fix JWKS");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (status, body) = readyz(&server).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("degraded").is_none(), "{body}");
        server.stop().await;
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    })
    .await;
}
