//! Rate limits on token requests, per identity and per client address.
//!
//! Each limit is a burst and a sustained rate: a caller with a full budget may send `burst`
//! requests at once, and the budget refills at `per_minute` requests a minute (the generic cell
//! rate algorithm). A refused request gets 429 `rate_limited` with `Retry-After`, the whole
//! seconds until the next request would be allowed.
//!
//! The budgets live in this process by default. With `store = "redis"` they live in Redis, so
//! every replica draws from one budget; `on_redis_error` decides what happens while Redis does
//! not answer.

mod local;
mod redis;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use serde::Deserialize;

use crate::config::ConfigError;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::redis_conn::{RedisConn, parse_url};

use self::local::LocalLimiter;
use self::redis::RedisLimiter;

/// Largest `burst` accepted.
const MAX_BURST: u32 = 1_000_000;

/// Largest `per_minute` accepted: 100,000 requests a second.
const MAX_PER_MINUTE: u32 = 6_000_000;

/// `[rate_limit]`: limits on token requests. Absent means no limit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSection {
    /// The store of the budgets: `memory` (this process, the default) or `redis` (shared).
    pub store: LimitStore,
    /// The Redis URL when `store = "redis"`, such as `redis://127.0.0.1:6379/0`.
    pub redis_url: Option<String>,
    /// The behaviour while Redis calls fail. Default `local`.
    pub on_redis_error: RedisFailurePolicy,
    /// Prefix of the Redis keys. Default `twilio-token`.
    pub key_prefix: String,
    /// Addresses or networks (`10.0.0.0/8`) of reverse proxies whose `X-Forwarded-For` names
    /// the client. Default: none, so the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// The limit per token identity.
    pub per_identity: Option<LimitRule>,
    /// The limit per client IP address.
    pub per_client: Option<LimitRule>,
}

impl Default for RateLimitSection {
    fn default() -> Self {
        RateLimitSection {
            store: LimitStore::Memory,
            redis_url: None,
            on_redis_error: RedisFailurePolicy::Local,
            key_prefix: "twilio-token".into(),
            trusted_proxies: Vec::new(),
            per_identity: None,
            per_client: None,
        }
    }
}

/// The store of the rate limit budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitStore {
    /// In this process; each replica has its own budgets.
    Memory,
    /// In Redis, shared by every replica.
    Redis,
}

/// The behaviour of the rate limits while Redis calls fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailurePolicy {
    /// Apply the same limits in this process (each replica then allows the whole budget).
    Local,
    /// Refuse token requests with 503 `unavailable`.
    Deny,
    /// Allow token requests without a limit.
    Allow,
}

impl RedisFailurePolicy {
    fn name(self) -> &'static str {
        match self {
            RedisFailurePolicy::Local => "local",
            RedisFailurePolicy::Deny => "deny",
            RedisFailurePolicy::Allow => "allow",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            RedisFailurePolicy::Local => "rate limits are applied in this process",
            RedisFailurePolicy::Deny => "token requests are refused with 503",
            RedisFailurePolicy::Allow => "token requests are not rate limited",
        }
    }
}

/// One limit: a burst and a sustained rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRule {
    /// Requests allowed at once with a full budget, 1 to 1,000,000.
    pub burst: u32,
    /// Sustained requests per minute, 1 to 6,000,000.
    pub per_minute: u32,
}

impl LimitRule {
    /// Returns the time between two requests at the sustained rate.
    pub fn interval(self) -> Duration {
        Duration::from_secs(60) / self.per_minute.max(1)
    }

    fn validate(self, key: &str) -> Result<(), ConfigError> {
        if !(1..=MAX_BURST).contains(&self.burst) {
            return Err(ConfigError::new(
                format!("{key}.burst"),
                format!(
                    "{} is out of range: use 1 to {MAX_BURST} requests",
                    self.burst
                ),
            ));
        }
        if !(1..=MAX_PER_MINUTE).contains(&self.per_minute) {
            return Err(ConfigError::new(
                format!("{key}.per_minute"),
                format!(
                    "{} is out of range: use 1 to {MAX_PER_MINUTE} requests a minute",
                    self.per_minute
                ),
            ));
        }
        Ok(())
    }
}

/// The decision on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request fits the budget.
    Allow,
    /// The budget is used up; the next request fits after `retry_after`.
    Deny {
        /// How long until a request fits the budget again.
        retry_after: Duration,
    },
}

enum Backend {
    Memory,
    Redis {
        limiter: Box<RedisLimiter>,
        on_error: RedisFailurePolicy,
    },
}

/// The rate limits of a running server, built from `[rate_limit]`.
pub struct RateLimits {
    section: RateLimitSection,
    backend: Backend,
    identity: Option<(LimitRule, LocalLimiter<String>)>,
    client: Option<(LimitRule, LocalLimiter<IpAddr>)>,
    proxies: Vec<ipnet::IpNet>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimits")
            .field("store", &self.section.store)
            .field("per_identity", &self.section.per_identity)
            .field("per_client", &self.section.per_client)
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Validates `[rate_limit]` and builds the limits. No connection is made: Redis is first
    /// called by the first request.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] naming the key, such as `rate_limit.per_identity.burst`.
    pub fn from_config(
        section: &RateLimitSection,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ConfigError> {
        if let Some(rule) = section.per_identity {
            rule.validate("rate_limit.per_identity")?;
        }
        if let Some(rule) = section.per_client {
            rule.validate("rate_limit.per_client")?;
        }
        let proxies = section
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(index, text)| {
                crate::network::parse_network(text).map_err(|message| {
                    ConfigError::new(format!("rate_limit.trusted_proxies[{index}]"), message)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if section.key_prefix.is_empty() {
            return Err(ConfigError::new(
                "rate_limit.key_prefix",
                "is empty: leave it out for the default twilio-token, or name your application",
            ));
        }

        let backend = match (section.store, &section.redis_url) {
            (LimitStore::Memory, None) => Backend::Memory,
            (LimitStore::Memory, Some(_)) => {
                return Err(ConfigError::new(
                    "rate_limit.redis_url",
                    "is set but store is \"memory\": set store = \"redis\" to share limits, or \
                     remove redis_url",
                ));
            }
            (LimitStore::Redis, None) => {
                return Err(ConfigError::new(
                    "rate_limit.redis_url",
                    "is missing: store = \"redis\" needs a URL such as redis://127.0.0.1:6379/0",
                ));
            }
            (LimitStore::Redis, Some(url)) => {
                let client = parse_url("rate_limit.redis_url", url)?;
                let conn = RedisConn::new(
                    client,
                    "rate_limit",
                    section.on_redis_error.describe(),
                    Arc::clone(&metrics),
                );
                Backend::Redis {
                    limiter: Box::new(RedisLimiter::new(conn, &section.key_prefix)),
                    on_error: section.on_redis_error,
                }
            }
        };

        Ok(RateLimits {
            section: section.clone(),
            backend,
            identity: section
                .per_identity
                .map(|rule| (rule, LocalLimiter::new(rule))),
            client: section
                .per_client
                .map(|rule| (rule, LocalLimiter::new(rule))),
            proxies,
            metrics,
        })
    }

    /// Returns the section these limits were built from.
    pub fn section(&self) -> &RateLimitSection {
        &self.section
    }

    /// Returns the client address of a request: the TCP peer, or, when the peer is a trusted
    /// proxy, the last address of `X-Forwarded-For` that is not a trusted proxy.
    pub fn client_address(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_canonical())?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let mut client = peer;
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for entry in forwarded.iter().rev() {
            let Ok(address) = entry.trim().parse::<IpAddr>() else {
                // A malformed entry ends the chain the proxies vouch for.
                break;
            };
            client = address.to_canonical();
            if !self.is_trusted(client) {
                break;
            }
        }
        Some(client)
    }

    fn is_trusted(&self, address: IpAddr) -> bool {
        crate::network::contains(&self.proxies, address)
    }

    /// Applies the per-client limit to a request.
    ///
    /// # Errors
    ///
    /// Returns 429 `rate_limited` with the seconds to wait, or 503 `unavailable` when Redis does
    /// not answer and `on_redis_error = "deny"`.
    pub async fn check_client(&self, parts: &Parts) -> Result<(), ApiError> {
        let Some((rule, local)) = &self.client else {
            return Ok(());
        };
        let Some(address) = self.client_address(parts) else {
            return Ok(());
        };
        let key = address.to_string();
        let decision = self
            .decide("client", &key, *rule, || local.check(&address))
            .await?;
        self.answer("client", decision)
    }

    /// Applies the per-identity limit to a token request for `identity`.
    ///
    /// # Errors
    ///
    /// As [`RateLimits::check_client`].
    pub async fn check_identity(&self, identity: &str) -> Result<(), ApiError> {
        let Some((rule, local)) = &self.identity else {
            return Ok(());
        };
        let decision = self
            .decide("identity", identity, *rule, || {
                local.check(&identity.to_owned())
            })
            .await?;
        self.answer("identity", decision)
    }

    async fn decide(
        &self,
        scope: &str,
        key: &str,
        rule: LimitRule,
        local: impl FnOnce() -> Decision,
    ) -> Result<Decision, ApiError> {
        let (limiter, on_error) = match &self.backend {
            Backend::Memory => return Ok(local()),
            Backend::Redis { limiter, on_error } => (limiter, *on_error),
        };
        match limiter.check(scope, key, rule).await {
            Some(decision) => Ok(decision),
            None => {
                self.metrics.rate_limit_fallback(on_error.name());
                match on_error {
                    RedisFailurePolicy::Local => Ok(local()),
                    RedisFailurePolicy::Allow => Ok(Decision::Allow),
                    RedisFailurePolicy::Deny => Err(ApiError::Unavailable {
                        message: "rate limits cannot be checked right now: try again in a few \
                                  seconds"
                            .into(),
                    }),
                }
            }
        }
    }

    fn answer(&self, scope: &'static str, decision: Decision) -> Result<(), ApiError> {
        match decision {
            Decision::Allow => Ok(()),
            Decision::Deny { retry_after } => {
                self.metrics.rate_limited(scope);
                let secs = retry_after_secs(retry_after);
                Err(ApiError::TooManyRequests {
                    code: "rate_limited",
                    message: format!(
                        "too many token requests for this {}: retry after {secs} {}",
                        if scope == "client" {
                            "client address"
                        } else {
                            "identity"
                        },
                        if secs == 1 { "second" } else { "seconds" }
                    ),
                    retry_after_secs: secs,
                })
            }
        }
    }

    /// True while the Redis store does not answer. Always false for the memory store.
    pub fn redis_down(&self) -> bool {
        match &self.backend {
            Backend::Memory => false,
            Backend::Redis { limiter, .. } => limiter.conn.is_down(),
        }
    }
}

/// Whole seconds to wait, rounded up and at least 1, as `Retry-After` needs.
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(text: &str) -> Result<RateLimits, ConfigError> {
        let section: RateLimitSection = toml::from_str(text).expect("valid TOML");
        RateLimits::from_config(&section, Arc::new(Metrics::new()))
    }

    fn parts(peer: &str, forwarded: &[&str]) -> Parts {
        let mut builder = axum::http::Request::builder();
        for value in forwarded {
            builder = builder.header("x-forwarded-for", *value);
        }
        let (mut parts, ()) = builder.body(()).expect("request").into_parts();
        let peer: SocketAddr = peer.parse().expect("address");
        parts.extensions.insert(ConnectInfo(peer));
        parts
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            (
                "per_identity = { burst = 0, per_minute = 10 }",
                "rate_limit.per_identity.burst",
                "0 is out of range: use 1 to 1000000 requests",
            ),
            (
                "per_client = { burst = 5, per_minute = 0 }",
                "rate_limit.per_client.per_minute",
                "0 is out of range: use 1 to 6000000 requests a minute",
            ),
            (
                "trusted_proxies = [\"10.0.0.0/33\"]",
                "rate_limit.trusted_proxies[0]",
                "\"10.0.0.0/33\" is not an IP address or CIDR network: write one such as 10.0.0.5, \
                 10.0.0.0/8 or fd00::/8",
            ),
            (
                "store = \"redis\"",
                "rate_limit.redis_url",
                "is missing: store = \"redis\" needs a URL such as redis://127.0.0.1:6379/0",
            ),
            (
                "redis_url = \"redis://127.0.0.1:1/\"",
                "rate_limit.redis_url",
                "is set but store is \"memory\": set store = \"redis\" to share limits, or \
                 remove redis_url",
            ),
            (
                "store = \"redis\"\nredis_url = \"http://user:hunter2@example.com/\"",
                "rate_limit.redis_url",
                "is not a Redis URL: write redis://HOST:PORT/DB, such as \
                 redis://127.0.0.1:6379/0 (TLS, rediss://, is not supported)",
            ),
        ];
        for (text, key, message) in cases {
            let error = limits(text).expect_err(text);
            assert_eq!(error.key, key, "{text}");
            assert_eq!(error.message, message, "{text}");
            assert!(!error.message.contains("hunter2"));
        }
    }

    #[test]
    fn peer_is_client_without_trusted_proxy() {
        let limits = limits("").expect("valid");

        let address = limits.client_address(&parts("10.0.0.5:4000", &["203.0.113.9"]));

        assert_eq!(address, Some("10.0.0.5".parse().expect("ip")));
    }

    #[test]
    fn trusted_proxy_forwarded_for_names_client() {
        let limits = limits("trusted_proxies = [\"10.0.0.0/8\", \"::1\"]").expect("valid");

        let through_two = parts("10.0.0.5:4000", &["198.51.100.1, 203.0.113.9, 10.1.1.1"]);
        let spoofed_only = parts("10.0.0.5:4000", &["10.2.2.2"]);
        let ipv6_proxy = parts("[::1]:4000", &["2001:db8::7"]);

        assert_eq!(
            limits.client_address(&through_two),
            Some("203.0.113.9".parse().expect("ip"))
        );
        assert_eq!(
            limits.client_address(&spoofed_only),
            Some("10.2.2.2".parse().expect("ip"))
        );
        assert_eq!(
            limits.client_address(&ipv6_proxy),
            Some("2001:db8::7".parse().expect("ip"))
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[tokio::test]
    async fn identity_limit_answers_429_with_retry_after() {
        let limits = limits("per_identity = { burst = 2, per_minute = 20 }").expect("valid");

        assert_eq!(limits.check_identity("alice").await, Ok(()));
        assert_eq!(limits.check_identity("alice").await, Ok(()));
        let error = limits.check_identity("alice").await.expect_err("third");

        assert_eq!(
            error,
            ApiError::TooManyRequests {
                code: "rate_limited",
                message: "too many token requests for this identity: retry after 3 seconds".into(),
                retry_after_secs: 3,
            }
        );
        assert_eq!(limits.check_identity("bob").await, Ok(()));
    }
}
