//! Bearer JWTs (ID tokens or access tokens) from OpenID Connect providers.
//!
//! Each configured issuer has its own audiences, key source and claim mapping. A bearer token
//! is this provider's when it has the shape of a JWT (three base64url parts whose first is a
//! JSON header); anything else, such as an `api_key` key, is left to the next provider.
//!
//! Verification, in order: the `iss` claim must name a configured issuer; the header's `alg`
//! must be one of RS256, PS256, ES256 or EdDSA and allowed for that issuer (so `none` and the
//! HMAC algorithms never reach a key); the key named by `kid` must be in the issuer's JWKS and
//! of the type the algorithm needs; the signature must verify; then `exp`, `nbf` and `iat`
//! (with leeway) and `aud` (one of the configured audiences) are checked, and the identity and
//! groups are read from the configured claims.
//!
//! The JWKS is fetched on first use and cached. A token whose `kid` is not cached triggers a
//! refresh, at most once per `jwks_refresh_interval_secs`; the keys are also refreshed after
//! `jwks_max_age_secs`. When a refresh fails the cached keys stay in use, a warning is logged,
//! and `/readyz` lists the issuer under `degraded`.
//!
//! Verified tokens are remembered by the SHA-256 of the token (never the token itself) for at
//! most `verified_cache_secs` and never past their `exp`, so a client that sends the same token
//! again does not pay for another signature check.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use twilio_access_token::Clock;

use super::{AuthFuture, AuthProvider, AuthRequest, Principal, bearer_token};
use crate::config::ConfigError;
use crate::error::{ApiError, echo};

/// The algorithms this provider can accept. HMAC algorithms and `none` are never accepted.
pub const SUPPORTED_ALGORITHMS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// Largest JWKS or discovery document read, in bytes.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// `[auth.oidc]`: settings shared by all issuers, and the issuers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcSection {
    /// Seconds of clock skew allowed for `exp`, `nbf` and `iat`. Default 60.
    pub leeway_secs: u64,
    /// Least number of seconds between two JWKS fetches of one issuer caused by an unknown
    /// `kid`. Default 60.
    pub jwks_refresh_interval_secs: u64,
    /// Seconds after which cached keys are fetched again on the next request. Default 3600.
    pub jwks_max_age_secs: u64,
    /// Timeout of one discovery or JWKS request, in seconds. Default 5.
    pub http_timeout_secs: u64,
    /// Seconds a verified token is remembered (by its hash), never past its `exp`. 0 turns the
    /// cache off. Default 60.
    pub verified_cache_secs: u64,
    /// Most verified tokens remembered at once. Default 10000.
    pub verified_cache_entries: usize,
    /// `[[auth.oidc.issuers]]`.
    pub issuers: Vec<IssuerSection>,
}

impl Default for OidcSection {
    fn default() -> Self {
        OidcSection {
            leeway_secs: 60,
            jwks_refresh_interval_secs: 60,
            jwks_max_age_secs: 3600,
            http_timeout_secs: 5,
            verified_cache_secs: 60,
            verified_cache_entries: 10_000,
            issuers: Vec::new(),
        }
    }
}

/// `[[auth.oidc.issuers]]`: one OpenID Connect provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSection {
    /// The issuer exactly as tokens carry it in `iss`, such as
    /// `https://id.example.com/realms/app`.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// URL of the JWKS. Default: `jwks_uri` from `<issuer>/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// File holding the JWKS, read again on each refresh. Excludes `jwks_url`.
    pub jwks_file: Option<PathBuf>,
    /// The claim that gives the identity: `sub` (default), `email` (only when
    /// `email_verified` is true) or `preferred_username`.
    #[serde(default = "default_identity_claim")]
    pub identity_claim: String,
    /// Text put before every identity from this issuer, such as `kc:`. Default none.
    #[serde(default)]
    pub identity_prefix: String,
    /// The claim holding the caller's groups: an array of strings or one space-separated
    /// string. A name with dots that is not itself a claim is read as a path, such as
    /// `realm_access.roles`. Default: no groups.
    pub groups_claim: Option<String>,
    /// Text put before every group from this issuer. Default none.
    #[serde(default)]
    pub groups_prefix: String,
    /// Algorithms accepted from this issuer, a subset of RS256, PS256, ES256 and EdDSA.
    /// Default all four.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
}

fn default_identity_claim() -> String {
    "sub".into()
}

fn default_algorithms() -> Vec<String> {
    SUPPORTED_ALGORITHMS.iter().map(|&alg| alg.into()).collect()
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
enum KeySource {
    Discovery(String),
    Url(String),
    File(PathBuf),
}

/// The claim an identity is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdentityClaim {
    Sub,
    Email,
    PreferredUsername,
}

impl IdentityClaim {
    fn name(self) -> &'static str {
        match self {
            IdentityClaim::Sub => "sub",
            IdentityClaim::Email => "email",
            IdentityClaim::PreferredUsername => "preferred_username",
        }
    }
}

/// The kind of public key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
    Ed25519,
}

impl KeyKind {
    fn describe(self) -> &'static str {
        match self {
            KeyKind::Rsa => "an RSA key",
            KeyKind::EcP256 => "an EC P-256 key",
            KeyKind::Ed25519 => "an Ed25519 key",
        }
    }
}

fn parse_algorithm(name: &str) -> Option<(Algorithm, KeyKind)> {
    match name {
        "RS256" => Some((Algorithm::RS256, KeyKind::Rsa)),
        "PS256" => Some((Algorithm::PS256, KeyKind::Rsa)),
        "ES256" => Some((Algorithm::ES256, KeyKind::EcP256)),
        "EdDSA" => Some((Algorithm::EdDSA, KeyKind::Ed25519)),
        _ => None,
    }
}

/// One usable key of a JWKS.
struct CachedKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The JWK's `alg`, when it names one.
    alg: Option<String>,
    key: DecodingKey,
}

/// An issuer's cached keys and the state of the last fetch.
#[derive(Default)]
struct KeyCache {
    keys: Vec<CachedKey>,
    /// When keys were last fetched successfully.
    fetched_at: Option<Instant>,
    /// When a fetch was last attempted, successful or not.
    attempted_at: Option<Instant>,
    /// Why the last fetch failed; `None` after a success.
    last_error: Option<String>,
    /// The JWKS URL found by discovery.
    discovered_url: Option<String>,
}

/// A validated issuer.
struct Issuer {
    issuer: String,
    audiences: Vec<String>,
    source: KeySource,
    identity_claim: IdentityClaim,
    identity_prefix: String,
    groups_claim: Option<String>,
    groups_prefix: String,
    algorithms: Vec<String>,
    cache: RwLock<KeyCache>,
    /// Held while fetching, so concurrent requests with an unknown `kid` cause one fetch.
    fetching: tokio::sync::Mutex<()>,
}

/// A remembered verification result.
struct Verified {
    principal: Arc<Principal>,
    /// Unix time after which the entry is not used: the token's `exp` plus leeway, or the
    /// cache lifetime, whichever comes first.
    until: u64,
}

/// The readiness of one issuer's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHealth {
    /// Keys are loaded and the last fetch succeeded.
    Fresh,
    /// Keys are loaded, but the last fetch failed; the cached keys are in use.
    Stale,
    /// No keys could be loaded yet.
    Missing,
}

/// The `oidc` provider.
pub struct OidcProvider {
    /// The section and base folder it was built from, so that a reload can keep it, with its
    /// cached keys, when neither changed.
    built_from: (serde_json::Value, std::path::PathBuf),
    issuers: Vec<Issuer>,
    client: reqwest::Client,
    clock: Arc<dyn Clock + Send + Sync>,
    leeway: u64,
    refresh_interval: Duration,
    max_age: Duration,
    verified_secs: u64,
    verified_entries: usize,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    /// Counts key fetches, when the server's metrics are attached.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self
            .issuers
            .iter()
            .map(|issuer| issuer.issuer.as_str())
            .collect();
        f.debug_struct("OidcProvider")
            .field("issuers", &issuers)
            .finish_non_exhaustive()
    }
}

impl OidcProvider {
    /// Validates `[auth.oidc]`. Relative `jwks_file` paths are resolved against `base_dir`.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] naming the key for an issuer without audiences, an issuer
    /// listed twice, an unknown identity claim or algorithm, both `jwks_url` and `jwks_file`,
    /// a URL that is not http or https, or zero intervals.
    pub fn from_config(
        section: &OidcSection,
        base_dir: &std::path::Path,
        clock: Arc<dyn Clock + Send + Sync>,
    ) -> Result<Self, ConfigError> {
        if section.issuers.is_empty() {
            return Err(ConfigError::new(
                "auth.oidc.issuers",
                "no issuer is configured: add an [[auth.oidc.issuers]] section with issuer and \
                 audiences",
            ));
        }
        for (key, value) in [
            (
                "auth.oidc.jwks_refresh_interval_secs",
                section.jwks_refresh_interval_secs,
            ),
            ("auth.oidc.jwks_max_age_secs", section.jwks_max_age_secs),
            ("auth.oidc.http_timeout_secs", section.http_timeout_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be at least 1 second"));
            }
        }
        if section.verified_cache_secs > 0 && section.verified_cache_entries == 0 {
            return Err(ConfigError::new(
                "auth.oidc.verified_cache_entries",
                "must be at least 1 while verified_cache_secs is above 0; set \
                 verified_cache_secs = 0 to turn the cache off",
            ));
        }
        let mut issuers: Vec<Issuer> = Vec::with_capacity(section.issuers.len());
        for (index, issuer) in section.issuers.iter().enumerate() {
            let built = build_issuer(index, issuer, base_dir)?;
            if issuers.iter().any(|other| other.issuer == built.issuer) {
                return Err(ConfigError::new(
                    format!("auth.oidc.issuers[{index}].issuer"),
                    format!("{:?} is listed twice: list each issuer once", built.issuer),
                ));
            }
            issuers.push(built);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(section.http_timeout_secs))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|error| {
                ConfigError::new(
                    "auth.oidc",
                    format!("cannot build the HTTP client: {error}"),
                )
            })?;
        Ok(OidcProvider {
            built_from: (section_value(section), base_dir.to_owned()),
            issuers,
            client,
            clock,
            leeway: section.leeway_secs,
            refresh_interval: Duration::from_secs(section.jwks_refresh_interval_secs),
            max_age: Duration::from_secs(section.jwks_max_age_secs),
            verified_secs: section.verified_cache_secs,
            verified_entries: section.verified_cache_entries,
            verified: Mutex::new(HashMap::new()),
            metrics: None,
        })
    }

    /// Returns true when this provider was built from `section` and `base_dir`, so that a
    /// reloaded configuration can keep it with its cached keys and verified tokens.
    pub fn is_for(&self, section: &OidcSection, base_dir: &std::path::Path) -> bool {
        self.built_from.1 == base_dir && self.built_from.0 == section_value(section)
    }

    /// Returns each issuer with the state of its keys. An issuer whose keys were never loaded
    /// is fetched first, so a readiness probe also warms the cache.
    pub async fn key_health(&self) -> Vec<(String, KeyHealth)> {
        // Issuers are checked at once, so one slow provider delays the probe by its timeout
        // only once.
        let checks = self.issuers.iter().map(|issuer| async move {
            let needs_fetch = {
                let cache = read_cache(issuer);
                cache.fetched_at.is_none() || cache.last_error.is_some()
            };
            if needs_fetch {
                // Forced past the maximum age but not the refresh interval, so a probe retries
                // a failed issuer at most once per interval.
                self.refresh(issuer, true).await;
            }
            let cache = read_cache(issuer);
            let state = match (cache.fetched_at.is_some(), cache.last_error.is_some()) {
                (false, _) => KeyHealth::Missing,
                (true, true) => KeyHealth::Stale,
                (true, false) => KeyHealth::Fresh,
            };
            (issuer.issuer.clone(), state)
        });
        futures_util::future::join_all(checks).await
    }

    fn now(&self) -> u64 {
        self.clock.now().unwrap_or(0)
    }

    /// Attaches the server's metrics, which then count each fetch of an issuer's keys by
    /// issuer and outcome (`ok` or `error`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Fetches the issuer's keys unless a fetch happened less than the refresh interval ago,
    /// or, without `force`, unless the keys are younger than the maximum age. On failure the
    /// cached keys are kept and a warning is logged.
    async fn refresh(&self, issuer: &Issuer, force: bool) {
        let _guard = issuer.fetching.lock().await;
        {
            let cache = read_cache(issuer);
            if let Some(attempted) = cache.attempted_at
                && attempted.elapsed() < self.refresh_interval
            {
                return;
            }
            if !force
                && let Some(fetched) = cache.fetched_at
                && fetched.elapsed() < self.max_age
            {
                return;
            }
        }
        let discovered = read_cache(issuer).discovered_url.clone();
        let result = self.fetch_keys(issuer, discovered).await;
        if let Some(metrics) = &self.metrics {
            let outcome = if result.is_ok() { "ok" } else { "error" };
            metrics.jwks_refresh(&issuer.issuer, outcome);
        }
        let mut cache = write_cache(issuer);
        cache.attempted_at = Some(Instant::now());
        match result {
            Ok((keys, url)) => {
                tracing::info!(
                    issuer = %issuer.issuer,
                    keys = keys.len(),
                    "loaded the issuer's signing keys"
                );
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
                cache.last_error = None;
                if url.is_some() {
                    cache.discovered_url = url;
                }
            }
            Err(error) => {
                if cache.fetched_at.is_some() {
                    tracing::warn!(
                        issuer = %issuer.issuer,
                        %error,
                        cached_keys = cache.keys.len(),
                        "could not refresh the issuer's signing keys; the cached keys stay in use"
                    );
                } else {
                    tracing::error!(
                        issuer = %issuer.issuer,
                        %error,
                        "could not load the issuer's signing keys; its tokens are refused until \
                         they load"
                    );
                }
                cache.last_error = Some(error);
            }
        }
    }

    /// Reads the JWKS from its source, returning the usable keys and the JWKS URL found by
    /// discovery.
    async fn fetch_keys(
        &self,
        issuer: &Issuer,
        discovered: Option<String>,
    ) -> Result<(Vec<CachedKey>, Option<String>), String> {
        let (text, url) = match &issuer.source {
            KeySource::File(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
                (text, None)
            }
            KeySource::Url(url) => (self.get_text(url).await?, None),
            KeySource::Discovery(discovery_url) => {
                let jwks_url = match discovered {
                    Some(url) => url,
                    None => {
                        let text = self.get_text(discovery_url).await?;
                        jwks_uri_from_discovery(&text, &issuer.issuer, discovery_url)?
                    }
                };
                (self.get_text(&jwks_url).await?, Some(jwks_url))
            }
        };
        let keys = parse_jwks(&text)?;
        if keys.is_empty() {
            return Err("the JWKS has no RSA, EC P-256 or Ed25519 signing key".into());
        }
        Ok((keys, url))
    }

    async fn get_text(&self, url: &str) -> Result<String, String> {
        let mut response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| describe_request_error(url, &error))?;
        if !response.status().is_success() {
            return Err(format!("GET {url} answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| describe_request_error(url, &error))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "GET {url} returned more than {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| format!("GET {url} returned a body that is not UTF-8"))
    }

    /// Finds a key for the token, refreshing the JWKS once when the `kid` is unknown.
    async fn find_key(
        &self,
        issuer: &Issuer,
        kid: Option<&str>,
        kind: KeyKind,
        alg: &str,
    ) -> Result<DecodingKey, ApiError> {
        let due = read_cache(issuer)
            .fetched_at
            .is_none_or(|fetched| fetched.elapsed() >= self.max_age);
        if due {
            self.refresh(issuer, false).await;
        }
        match self.lookup(issuer, kid, kind, alg) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Mismatch(message) => {
                return Err(ApiError::unauthorized("invalid_token", message));
            }
            Lookup::Unknown => {}
        }
        self.refresh(issuer, true).await;
        match self.lookup(issuer, kid, kind, alg) {
            Lookup::Found(key) => Ok(key),
            Lookup::Mismatch(message) => Err(ApiError::unauthorized("invalid_token", message)),
            Lookup::Unknown => {
                let cache = read_cache(issuer);
                if cache.fetched_at.is_none() {
                    return Err(ApiError::Unavailable {
                        message: "the identity provider's signing keys could not be loaded: try \
                                  again later"
                            .into(),
                    });
                }
                let message = match kid {
                    Some(kid) => format!(
                        "unknown kid: the token's signing key {:?} is not in the JWKS of {}",
                        echo(kid),
                        issuer.issuer
                    ),
                    None => format!(
                        "the token has no kid and no {} in the JWKS of {} can check it",
                        kind.describe()
                            .trim_start_matches("an ")
                            .trim_start_matches("a "),
                        issuer.issuer
                    ),
                };
                Err(ApiError::unauthorized("unknown_key", message))
            }
        }
    }

    fn lookup(&self, issuer: &Issuer, kid: Option<&str>, kind: KeyKind, alg: &str) -> Lookup {
        let cache = read_cache(issuer);
        let candidate = match kid {
            Some(kid) => cache
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid)),
            None => cache.keys.iter().find(|key| {
                key.kind == kind && key.alg.as_deref().is_none_or(|key_alg| key_alg == alg)
            }),
        };
        let Some(key) = candidate else {
            return Lookup::Unknown;
        };
        if key.kind != kind {
            return Lookup::Mismatch(format!(
                "the token's alg {alg} needs {} but key {:?} is {}",
                kind.describe(),
                echo(key.kid.as_deref().unwrap_or("")),
                key.kind.describe()
            ));
        }
        if let Some(key_alg) = &key.alg
            && key_alg != alg
        {
            return Lookup::Mismatch(format!(
                "the token's alg {alg} differs from the alg {key_alg} of key {:?}",
                echo(key.kid.as_deref().unwrap_or(""))
            ));
        }
        Lookup::Found(key.key.clone())
    }

    async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let Some((message, signature)) = token.rsplit_once('.') else {
            return Err(malformed());
        };
        let Some((header_b64, payload_b64)) = message.split_once('.') else {
            return Err(malformed());
        };
        let header = decode_part(header_b64).ok_or_else(malformed)?;
        let claims = decode_part(payload_b64).ok_or_else(malformed)?;

        let iss = claims
            .get("iss")
            .ok_or_else(|| missing_claim("iss"))?
            .as_str()
            .ok_or_else(|| wrong_type("iss", "a string"))?;
        let Some(issuer) = self.issuers.iter().find(|issuer| issuer.issuer == iss) else {
            let configured: Vec<&str> = self
                .issuers
                .iter()
                .map(|issuer| issuer.issuer.as_str())
                .collect();
            return Err(ApiError::unauthorized(
                "unknown_issuer",
                format!(
                    "the token's issuer {:?} is not configured: accepted issuers are {}",
                    echo(iss),
                    configured.join(", ")
                ),
            ));
        };

        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if alg.eq_ignore_ascii_case("none") {
            return Err(ApiError::unauthorized(
                "unsupported_algorithm",
                "the token is unsigned (alg none): tokens must be signed with the identity \
                 provider's key",
            ));
        }
        let Some((algorithm, kind)) = parse_algorithm(alg) else {
            let hint = if alg.starts_with("HS") {
                ": HMAC tokens are never accepted, because the identity provider's keys are \
                 public"
            } else {
                ""
            };
            return Err(ApiError::unauthorized(
                "unsupported_algorithm",
                format!(
                    "the token's alg {:?} is not accepted; accepted algorithms are {}{hint}",
                    echo(alg),
                    SUPPORTED_ALGORITHMS.join(", ")
                ),
            ));
        };
        if !issuer.algorithms.iter().any(|allowed| allowed == alg) {
            return Err(ApiError::unauthorized(
                "unsupported_algorithm",
                format!(
                    "the token's alg {alg} is not accepted from {}; accepted algorithms are {}",
                    issuer.issuer,
                    issuer.algorithms.join(", ")
                ),
            ));
        }
        // RFC 7515 section 4.1.11: a verifier must reject a token whose crit names an
        // extension it does not understand, and this one understands none.
        if let Some(crit) = header.get("crit") {
            return Err(ApiError::unauthorized(
                "invalid_token",
                format!(
                    "the token's header has crit {}, which names extensions this server does not \
                     support: configure the identity provider to issue tokens without crit",
                    echo(&crit.to_string())
                ),
            ));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => {
                return Err(ApiError::unauthorized(
                    "invalid_token",
                    "the token header's kid is not a string",
                ));
            }
        };

        let key = self.find_key(issuer, kid, kind, alg).await?;
        let valid = jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, algorithm)
            .map_err(|_| {
                ApiError::unauthorized(
                    "invalid_token",
                    "the token's signature is not valid base64url",
                )
            })?;
        if !valid {
            return Err(ApiError::unauthorized(
                "invalid_signature",
                format!(
                    "the token's signature does not verify with key {:?} of {}",
                    echo(kid.unwrap_or("")),
                    issuer.issuer
                ),
            ));
        }

        let now = self.now();
        let exp = self.check_times(&claims, now)?;
        check_audience(issuer, &claims)?;
        let principal = map_principal(issuer, &claims)?;
        self.remember(token, &principal, exp, now);
        Ok(principal)
    }

    /// Checks `exp` (required), `nbf` and `iat`; returns `exp`.
    fn check_times(&self, claims: &Value, now: u64) -> Result<u64, ApiError> {
        let exp = numeric_date(claims, "exp")?.ok_or_else(|| missing_claim("exp"))?;
        if now > exp.saturating_add(self.leeway) {
            return Err(ApiError::unauthorized(
                "token_expired",
                format!(
                    "the token expired at {exp} (Unix time), {} seconds ago: get a new token from \
                     the identity provider",
                    now - exp
                ),
            ));
        }
        if let Some(nbf) = numeric_date(claims, "nbf")?
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(ApiError::unauthorized(
                "token_not_yet_valid",
                format!(
                    "the token is not valid before {nbf} (Unix time), {} seconds from now: \
                     check the clocks",
                    nbf - now
                ),
            ));
        }
        if let Some(iat) = numeric_date(claims, "iat")?
            && iat > now.saturating_add(self.leeway)
        {
            return Err(ApiError::unauthorized(
                "token_not_yet_valid",
                format!(
                    "the token was issued at {iat} (Unix time), {} seconds in the future: \
                     check the clocks",
                    iat - now
                ),
            ));
        }
        Ok(exp)
    }

    fn remember(&self, token: &str, principal: &Principal, exp: u64, now: u64) {
        if self.verified_secs == 0 {
            return;
        }
        let until = exp
            .saturating_add(self.leeway)
            .min(now.saturating_add(self.verified_secs));
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= self.verified_entries {
            verified.retain(|_, entry| entry.until >= now);
            if verified.len() >= self.verified_entries {
                verified.clear();
            }
        }
        verified.insert(
            token_digest(token),
            Verified {
                principal: Arc::new(principal.clone()),
                until,
            },
        );
    }

    fn recall(&self, token: &str) -> Option<Principal> {
        if self.verified_secs == 0 {
            return None;
        }
        let digest = token_digest(token);
        let now = self.now();
        let principal = {
            let verified = self
                .verified
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            verified
                .get(&digest)
                .filter(|entry| entry.until >= now)
                .map(|entry| Arc::clone(&entry.principal))?
        };
        // Copied outside the lock, which every request with a token takes.
        Some(Principal::clone(&principal))
    }
}

enum Lookup {
    Found(DecodingKey),
    Mismatch(String),
    Unknown,
}

impl AuthProvider for OidcProvider {
    fn name(&self) -> &'static str {
        "oidc"
    }

    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> AuthFuture<'a> {
        Box::pin(async move {
            let Some(token) = bearer_token(request.headers) else {
                return Ok(None);
            };
            // A remembered token was a JWT when it was verified, so the cache comes first and
            // a hit skips decoding the header.
            if let Some(principal) = self.recall(token) {
                return Ok(Some(principal));
            }
            if !looks_like_jwt(token) {
                return Ok(None);
            }
            self.verify(token).await.map(Some)
        })
    }
}

/// Returns true when `token` has three dot-separated parts and the first decodes to a JSON
/// object: the shape of a JWS. Other bearer tokens belong to other providers.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    decode_part(header).is_some()
}

fn decode_part(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.is_object().then_some(value)
}

fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn malformed() -> ApiError {
    ApiError::unauthorized(
        "invalid_token",
        "the bearer token is not a well-formed JWT: expected three base64url parts, the first \
         two JSON objects",
    )
}

fn missing_claim(claim: &str) -> ApiError {
    ApiError::unauthorized("missing_claim", format!("the token has no {claim} claim"))
}

fn wrong_type(claim: &str, expected: &str) -> ApiError {
    ApiError::unauthorized(
        "invalid_claim",
        format!("the token's {claim} claim is not {expected}"),
    )
}

/// Returns the section as a JSON value, for comparing two configurations.
fn section_value(section: &OidcSection) -> serde_json::Value {
    serde_json::to_value(section).unwrap_or(serde_json::Value::Null)
}

/// Reads a NumericDate claim: absent is `None`; anything but a non-negative number is an error.
fn numeric_date(claims: &Value, claim: &str) -> Result<Option<u64>, ApiError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::Number(number)) => {
            if let Some(value) = number.as_u64() {
                return Ok(Some(value));
            }
            match number.as_f64() {
                // Whole seconds are enough; fractions are allowed by RFC 7519.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Some(value) if value >= 0.0 && value.is_finite() => Ok(Some(value as u64)),
                _ => Err(wrong_type(claim, "a non-negative number of seconds")),
            }
        }
        Some(_) => Err(wrong_type(claim, "a number of seconds")),
    }
}

fn check_audience(issuer: &Issuer, claims: &Value) -> Result<(), ApiError> {
    let audiences: Vec<&str> = match claims.get("aud") {
        None => return Err(missing_claim("aud")),
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(wrong_type("aud", "a string or an array of strings")),
    };
    if audiences
        .iter()
        .any(|aud| issuer.audiences.iter().any(|expected| expected == aud))
    {
        return Ok(());
    }
    let presented: Vec<String> = audiences
        .iter()
        .take(5)
        .map(|aud| format!("{:?}", echo(aud)))
        .collect();
    Err(ApiError::unauthorized(
        "invalid_audience",
        format!(
            "the token's audience [{}] is not accepted: expected one of {} for issuer {}",
            presented.join(", "),
            issuer.audiences.join(", "),
            issuer.issuer
        ),
    ))
}

/// Looks a claim up by its exact name, then as a dotted path into nested objects.
pub(crate) fn lookup_path<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    if let Some(found) = value.get(name) {
        return Some(found);
    }
    if !name.contains('.') {
        return None;
    }
    name.split('.')
        .try_fold(value, |current, part| current.get(part))
}

fn map_principal(issuer: &Issuer, claims: &Value) -> Result<Principal, ApiError> {
    let claim = issuer.identity_claim.name();
    let value = claims.get(claim).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_claim",
            format!(
                "the token has no {claim} claim, which the server reads the identity from \
                 (identity_claim of issuer {}): ask the identity provider to include it",
                issuer.issuer
            ),
        )
    })?;
    let value = value
        .as_str()
        .filter(|value| !value.is_empty())
        .ok_or_else(|| wrong_type(claim, "a non-empty string"))?;
    if issuer.identity_claim == IdentityClaim::Email {
        let verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
            || claims.get("email_verified").and_then(Value::as_str) == Some("true");
        if !verified {
            return Err(ApiError::unauthorized(
                "email_not_verified",
                "the token's email is not verified (email_verified is not true), so it cannot \
                 be the identity: verify the address at the identity provider",
            ));
        }
    }
    let identity = format!("{}{value}", issuer.identity_prefix);
    let groups = match &issuer.groups_claim {
        None => Vec::new(),
        Some(name) => match lookup_path(claims, name) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(values)) => values
                .iter()
                .filter_map(Value::as_str)
                .map(|group| format!("{}{group}", issuer.groups_prefix))
                .collect(),
            Some(Value::String(text)) => text
                .split_whitespace()
                .map(|group| format!("{}{group}", issuer.groups_prefix))
                .collect(),
            Some(_) => {
                return Err(wrong_type(
                    name,
                    "an array of strings or a space-separated string",
                ));
            }
        },
    };
    Ok(Principal {
        identity: Some(identity.clone()),
        groups,
        method: "oidc",
        subject: identity,
        may_act_for: None,
    })
}

fn build_issuer(
    index: usize,
    section: &IssuerSection,
    base_dir: &std::path::Path,
) -> Result<Issuer, ConfigError> {
    let key = format!("auth.oidc.issuers[{index}]");
    let issuer = section.issuer.clone();
    if !is_http_url(&issuer) {
        return Err(ConfigError::new(
            format!("{key}.issuer"),
            format!(
                "{issuer:?} is not an http or https URL: write the issuer exactly as its tokens \
                 carry it in iss, such as https://id.example.com/realms/app"
            ),
        ));
    }
    if section.audiences.is_empty() || section.audiences.iter().any(String::is_empty) {
        return Err(ConfigError::new(
            format!("{key}.audiences"),
            "list at least one non-empty audience, such as the client id the tokens are issued \
             for; tokens whose aud names none of them are refused",
        ));
    }
    let source = match (&section.jwks_url, &section.jwks_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                format!("{key}.jwks_file"),
                "set jwks_url or jwks_file, not both",
            ));
        }
        (Some(url), None) => {
            if !is_http_url(url) {
                return Err(ConfigError::new(
                    format!("{key}.jwks_url"),
                    format!("{url:?} is not an http or https URL"),
                ));
            }
            KeySource::Url(url.clone())
        }
        (None, Some(path)) => KeySource::File(base_dir.join(path)),
        (None, None) => KeySource::Discovery(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        )),
    };
    let identity_claim = match section.identity_claim.as_str() {
        "sub" => IdentityClaim::Sub,
        "email" => IdentityClaim::Email,
        "preferred_username" => IdentityClaim::PreferredUsername,
        other => {
            return Err(ConfigError::new(
                format!("{key}.identity_claim"),
                format!("{other:?} is not supported: use sub, email or preferred_username"),
            ));
        }
    };
    if section.algorithms.is_empty() {
        return Err(ConfigError::new(
            format!("{key}.algorithms"),
            format!("list at least one of {}", SUPPORTED_ALGORITHMS.join(", ")),
        ));
    }
    for (alg_index, alg) in section.algorithms.iter().enumerate() {
        if parse_algorithm(alg).is_none() {
            return Err(ConfigError::new(
                format!("{key}.algorithms[{alg_index}]"),
                format!(
                    "{alg:?} is not supported: use {}; HMAC algorithms and none are never \
                     accepted",
                    SUPPORTED_ALGORITHMS.join(", ")
                ),
            ));
        }
    }
    if section.groups_claim.as_deref() == Some("") {
        return Err(ConfigError::new(
            format!("{key}.groups_claim"),
            "is empty: name the claim that lists groups, or leave groups_claim out",
        ));
    }
    Ok(Issuer {
        issuer,
        audiences: section.audiences.clone(),
        source,
        identity_claim,
        identity_prefix: section.identity_prefix.clone(),
        groups_claim: section.groups_claim.clone(),
        groups_prefix: section.groups_prefix.clone(),
        algorithms: section.algorithms.clone(),
        cache: RwLock::new(KeyCache::default()),
        fetching: tokio::sync::Mutex::new(()),
    })
}

fn is_http_url(text: &str) -> bool {
    match reqwest::Url::parse(text) {
        Ok(url) => matches!(url.scheme(), "http" | "https") && url.host().is_some(),
        Err(_) => false,
    }
}

fn read_cache(issuer: &Issuer) -> std::sync::RwLockReadGuard<'_, KeyCache> {
    issuer
        .cache
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_cache(issuer: &Issuer) -> std::sync::RwLockWriteGuard<'_, KeyCache> {
    issuer
        .cache
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn describe_request_error(url: &str, error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("GET {url} timed out")
    } else if error.is_connect() {
        format!("GET {url} could not connect")
    } else {
        format!("GET {url} failed: {error}")
    }
}

fn jwks_uri_from_discovery(text: &str, issuer: &str, url: &str) -> Result<String, String> {
    let document: Value = serde_json::from_str(text)
        .map_err(|error| format!("the discovery document at {url} is not JSON: {error}"))?;
    let found = document.get("issuer").and_then(Value::as_str).unwrap_or("");
    if found != issuer {
        return Err(format!(
            "the discovery document at {url} names issuer {found:?}, not {issuer:?}: set issuer \
             to the value the provider publishes"
        ));
    }
    let jwks_uri = document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the discovery document at {url} has no jwks_uri"))?;
    if !is_http_url(jwks_uri) {
        return Err(format!(
            "the discovery document at {url} has a jwks_uri that is not http(s)"
        ));
    }
    Ok(jwks_uri.to_owned())
}

/// Parses a JWKS, keeping the public signing keys of supported types and skipping the rest
/// (encryption keys, symmetric keys, other curves).
fn parse_jwks(text: &str) -> Result<Vec<CachedKey>, String> {
    let document: Value =
        serde_json::from_str(text).map_err(|error| format!("the JWKS is not JSON: {error}"))?;
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWKS has no keys array")?;
    let mut usable = Vec::new();
    for value in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
                KeyKind::EcP256
            }
            AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {
                KeyKind::Ed25519
            }
            _ => continue,
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let alg = value.get("alg").and_then(Value::as_str).map(str::to_owned);
        usable.push(CachedKey {
            kid: jwk.common.key_id.clone(),
            kind,
            alg,
            key,
        });
    }
    Ok(usable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jwt_shape_is_recognised() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        assert!(looks_like_jwt(&format!("{header}.e30.sig")));
        assert!(!looks_like_jwt("ttk_abcdef"));
        assert!(!looks_like_jwt(&format!("{header}.e30")));
        assert!(!looks_like_jwt(&format!("{header}.e30.sig.more")));
        assert!(!looks_like_jwt("abc.def.ghi"));
    }

    #[test]
    fn claim_paths_prefer_exact_names() {
        let claims = json!({
            "https://app.example.com/roles": ["a"],
            "realm_access": {"roles": ["b"]},
        });
        assert_eq!(
            lookup_path(&claims, "https://app.example.com/roles"),
            Some(&json!(["a"]))
        );
        assert_eq!(
            lookup_path(&claims, "realm_access.roles"),
            Some(&json!(["b"]))
        );
        assert_eq!(lookup_path(&claims, "realm_access.none"), None);
    }

    #[test]
    fn numeric_dates_must_be_numbers() {
        let claims = json!({"exp": "1700000000", "nbf": 1.5, "iat": -1});
        let error = numeric_date(&claims, "exp").expect_err("string exp");
        assert_eq!(error.code(), "invalid_claim");
        assert_eq!(numeric_date(&claims, "nbf").expect("float"), Some(1));
        assert!(numeric_date(&claims, "iat").is_err());
        assert_eq!(numeric_date(&claims, "missing").expect("absent"), None);
    }

    #[test]
    fn jwks_skips_symmetric_and_encryption_keys() {
        let text = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": "sXch", "e": "AQAB"},
            {"kty": "EC", "crv": "P-384", "kid": "p384",
             "x": "AAAA", "y": "AAAA"},
            {"kty": "weird", "kid": "odd"},
            {"kty": "RSA", "kid": "sig", "alg": "RS256", "n": "sXch", "e": "AQAB"},
        ]})
        .to_string();
        let keys = parse_jwks(&text).expect("parses");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("sig"));
        assert_eq!(keys[0].kind, KeyKind::Rsa);
    }

    fn provider_at(now: u64, section: OidcSection) -> OidcProvider {
        let clock: Arc<dyn Clock + Send + Sync> = Arc::new(twilio_access_token::FixedClock(now));
        OidcProvider::from_config(&section, std::path::Path::new("."), clock).expect("valid")
    }

    fn one_issuer(leeway_secs: u64) -> OidcSection {
        OidcSection {
            leeway_secs,
            issuers: vec![IssuerSection {
                issuer: "https://id.example.com".into(),
                audiences: vec!["app".into()],
                jwks_url: None,
                jwks_file: None,
                identity_claim: default_identity_claim(),
                identity_prefix: String::new(),
                groups_claim: None,
                groups_prefix: String::new(),
                algorithms: default_algorithms(),
            }],
            ..OidcSection::default()
        }
    }

    #[test]
    fn times_are_checked_with_leeway() {
        let provider = provider_at(1_000, one_issuer(10));
        let check = |claims: Value| provider.check_times(&claims, 1_000);

        assert_eq!(check(json!({"exp": 990})).expect("within leeway"), 990);
        let error = check(json!({"exp": 989})).expect_err("expired");
        assert_eq!(error.code(), "token_expired");
        assert_eq!(
            error.message(),
            "the token expired at 989 (Unix time), 11 seconds ago: get a new token from the \
             identity provider"
        );
        assert_eq!(
            check(json!({})).expect_err("no exp").code(),
            "missing_claim"
        );

        assert!(check(json!({"exp": 2_000, "nbf": 1_010, "iat": 1_010})).is_ok());
        let error = check(json!({"exp": 2_000, "nbf": 1_011})).expect_err("nbf");
        assert_eq!(error.code(), "token_not_yet_valid");
        assert!(
            error.message().contains("not valid before 1011"),
            "{}",
            error.message()
        );
        let error = check(json!({"exp": 2_000, "iat": 1_500})).expect_err("iat");
        assert_eq!(error.code(), "token_not_yet_valid");
        assert!(
            error.message().contains("500 seconds in the future"),
            "{}",
            error.message()
        );
    }

    fn principal(name: &str) -> Principal {
        Principal {
            identity: Some(name.into()),
            groups: Vec::new(),
            method: "oidc",
            subject: name.into(),
            may_act_for: None,
        }
    }

    #[test]
    fn verified_cache_is_bounded_and_honours_exp() {
        let mut section = one_issuer(0);
        section.verified_cache_entries = 2;
        let provider = provider_at(1_000, section);

        provider.remember("token-a", &principal("a"), 2_000, 1_000);
        provider.remember("token-b", &principal("b"), 2_000, 1_000);
        assert_eq!(provider.recall("token-a"), Some(principal("a")));
        // Full, and nothing has expired: the cache starts over.
        provider.remember("token-c", &principal("c"), 2_000, 1_000);
        assert_eq!(provider.recall("token-a"), None);
        assert_eq!(provider.recall("token-c"), Some(principal("c")));

        // An entry whose token expired before now is not used.
        provider.remember("token-old", &principal("old"), 999, 1_000);
        assert_eq!(provider.recall("token-old"), None);
    }

    #[test]
    fn config_errors_name_the_key() {
        let clock: Arc<dyn Clock + Send + Sync> = Arc::new(twilio_access_token::SystemClock);
        let issuer = IssuerSection {
            issuer: "https://id.example.com".into(),
            audiences: vec!["app".into()],
            jwks_url: None,
            jwks_file: None,
            identity_claim: "nickname".into(),
            identity_prefix: String::new(),
            groups_claim: None,
            groups_prefix: String::new(),
            algorithms: default_algorithms(),
        };
        let mut section = OidcSection {
            issuers: vec![issuer.clone()],
            ..OidcSection::default()
        };
        let error = OidcProvider::from_config(&section, std::path::Path::new("."), clock.clone())
            .expect_err("unknown claim");
        assert_eq!(error.key, "auth.oidc.issuers[0].identity_claim");

        section.issuers[0].identity_claim = "sub".into();
        section.issuers[0].algorithms = vec!["HS256".into()];
        let error = OidcProvider::from_config(&section, std::path::Path::new("."), clock.clone())
            .expect_err("HS256");
        assert_eq!(error.key, "auth.oidc.issuers[0].algorithms[0]");

        section.issuers[0].algorithms = default_algorithms();
        section.issuers[0].audiences.clear();
        let error = OidcProvider::from_config(&section, std::path::Path::new("."), clock.clone())
            .expect_err("no audience");
        assert_eq!(error.key, "auth.oidc.issuers[0].audiences");

        section.issuers = vec![issuer.clone(), issuer];
        section.issuers[0].identity_claim = "sub".into();
        section.issuers[1].identity_claim = "sub".into();
        let error = OidcProvider::from_config(&section, std::path::Path::new("."), clock)
            .expect_err("twice");
        assert_eq!(error.key, "auth.oidc.issuers[1].issuer");
    }
}
