//! Prometheus metrics: the counters and histograms of one server, rendered as text at
//! `GET /metrics`.
//!
//! A [`Metrics`] lives in [`AppState::metrics`](crate::AppState::metrics) and survives a
//! configuration reload, so counters never go back to zero while the process runs. Modules that
//! have the state call its methods, such as [`Metrics::audit_error`] or
//! [`Metrics::jwks_refresh`]. The series and their labels are listed in
//! `docs/OPERATIONS-limits.md`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// `[metrics]`: where `GET /metrics` is served.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Serve `GET /metrics`. Default true.
    pub enabled: bool,
    /// A separate address for `GET /metrics`, such as `127.0.0.1:9090`. When set, the main
    /// listener does not serve it. Default: none, so the main listener serves it.
    pub listen: Option<String>,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            enabled: true,
            listen: None,
        }
    }
}

/// The `Content-Type` of [`Metrics::render`]'s output: OpenMetrics text, which Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency buckets in nanoseconds: 100 µs to 10 s, each about 2.5 times the
/// one before. Minting takes a few microseconds, a sign-in with Argon2 tens of milliseconds, and
/// a request that waits on Redis up to its timeout.
const LATENCY_BUCKETS_NANOS: [u64; 13] = [
    100_000,
    250_000,
    625_000,
    1_600_000,
    4_000_000,
    10_000_000,
    25_000_000,
    62_500_000,
    160_000_000,
    400_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

type Labels1 = [(&'static str, String); 1];
type Labels2 = [(&'static str, String); 2];

/// A latency histogram with the buckets of [`LATENCY_BUCKETS_NANOS`] and a `+Inf` bucket,
/// updated with atomic additions and no lock.
///
/// It replaces `prometheus_client`'s `Histogram`, whose mutex every request took. A scrape
/// that runs during an update may see an observation in its bucket before it is in the sum.
#[derive(Clone, Debug, Default)]
struct LatencyHistogram(Arc<LatencyCounts>);

#[derive(Debug, Default)]
struct LatencyCounts {
    buckets: [AtomicU64; LATENCY_BUCKETS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let index = LATENCY_BUCKETS_NANOS
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(LATENCY_BUCKETS_NANOS.len());
        self.0.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        let bounds = LATENCY_BUCKETS_NANOS
            .iter()
            .map(|&nanos| nanos as f64 / 1e9)
            .chain(std::iter::once(f64::INFINITY));
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.0.buckets)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        // The count is the buckets' total, so the two always agree.
        let count = buckets.iter().map(|(_, count)| count).sum();
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The server's metrics. Cheap to update from many threads at once.
pub struct Metrics {
    registry: Registry,
    tokens_issued: Family<Labels1, Counter>,
    grants_issued: Family<Labels2, Counter>,
    refusals: Family<Labels1, Counter>,
    auth_failures: Family<Labels2, Counter>,
    rate_limited: Family<Labels1, Counter>,
    rate_limit_fallbacks: Family<Labels1, Counter>,
    request_duration: Family<Labels2, LatencyHistogram>,
    redis_errors: Family<Labels1, Counter>,
    audit_errors: Family<Labels1, Counter>,
    jwks_refreshes: Family<Labels2, Counter>,
    config_reloads: Family<Labels1, Counter>,
    revocations: Family<Labels1, Gauge>,
    /// Handles of the series every issued token updates, so the hot path neither allocates
    /// label strings nor searches the families: that cost about 5k instructions per request.
    hot: HotSeries,
}

/// Series handles taken from the families on first use. A handle shares its value with the
/// family's series.
#[derive(Default)]
struct HotSeries {
    token_ok_latency: OnceLock<LatencyHistogram>,
    /// Per profile: its `tokens_issued` counter and its `grants_issued` counters by grant.
    /// Read without a lock. A writer replaces the whole list.
    issued: ArcSwap<Vec<ProfileCounters>>,
    /// Held by the writer of `issued`, so that two writers cannot lose each other's series.
    adding: Mutex<()>,
}

/// A profile's name, its `tokens_issued` counter and its `grants_issued` counters by grant.
#[derive(Clone)]
struct ProfileCounters {
    profile: String,
    tokens: Counter,
    by_grant: Vec<(&'static str, Counter)>,
}

impl ProfileCounters {
    fn grant(&self, grant: &str) -> Option<&Counter> {
        self.by_grant
            .iter()
            .find(|(name, _)| *name == grant)
            .map(|(_, counter)| counter)
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the metrics with every series registered and no sample yet.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("twilio_token");
        let tokens_issued = Family::<Labels1, Counter>::default();
        registry.register(
            "tokens_issued",
            "Access Tokens issued, by profile",
            tokens_issued.clone(),
        );
        let grants_issued = Family::<Labels2, Counter>::default();
        registry.register(
            "grants_issued",
            "Grants written into issued tokens, by profile and grant",
            grants_issued.clone(),
        );
        let refusals = Family::<Labels1, Counter>::default();
        registry.register(
            "token_refusals",
            "Token requests answered without a token, by error code",
            refusals.clone(),
        );
        let auth_failures = Family::<Labels2, Counter>::default();
        registry.register(
            "auth_failures",
            "Failed authentications, by provider and error code",
            auth_failures.clone(),
        );
        let rate_limited = Family::<Labels1, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429 by a rate limit, by scope (identity or client)",
            rate_limited.clone(),
        );
        let rate_limit_fallbacks = Family::<Labels1, Counter>::default();
        registry.register(
            "rate_limit_fallbacks",
            "Rate limit decisions made without Redis, by the on_redis_error policy applied",
            rate_limit_fallbacks.clone(),
        );
        let request_duration = Family::<Labels2, LatencyHistogram>::default();
        registry.register(
            "request_duration_seconds",
            "Time from reading a request to its answer, by route and status",
            request_duration.clone(),
        );
        let redis_errors = Family::<Labels1, Counter>::default();
        registry.register(
            "redis_errors",
            "Failed Redis calls, by use (rate_limit or revocation)",
            redis_errors.clone(),
        );
        let audit_errors = Family::<Labels1, Counter>::default();
        registry.register(
            "audit_errors",
            "Audit records that could not be written, by sink",
            audit_errors.clone(),
        );
        let jwks_refreshes = Family::<Labels2, Counter>::default();
        registry.register(
            "jwks_refreshes",
            "Fetches of an identity provider's signing keys, by provider and outcome",
            jwks_refreshes.clone(),
        );
        let config_reloads = Family::<Labels1, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads, by outcome (applied or rejected)",
            config_reloads.clone(),
        );
        let revocations = Family::<Labels1, Gauge>::default();
        registry.register(
            "revocations",
            "Entries in the revocation list the server holds, by kind (identity or jti)",
            revocations.clone(),
        );
        Metrics {
            registry,
            tokens_issued,
            grants_issued,
            refusals,
            auth_failures,
            rate_limited,
            rate_limit_fallbacks,
            request_duration,
            redis_errors,
            audit_errors,
            jwks_refreshes,
            config_reloads,
            revocations,
            hot: HotSeries::default(),
        }
    }

    /// Counts one token issued by `profile` with `grants`.
    pub fn token_issued(&self, profile: &str, grants: &[&'static str]) {
        let issued = self.hot.issued.load();
        if let Some(counters) = issued.iter().find(|counters| counters.profile == profile)
            && grants.iter().all(|grant| counters.grant(grant).is_some())
        {
            counters.tokens.inc();
            for counter in grants.iter().filter_map(|grant| counters.grant(grant)) {
                counter.inc();
            }
            return;
        }
        // The profile or one of the grants is seen for the first time.
        drop(issued);
        self.add_issued_series(profile, grants);
    }

    /// Counts one token like [`Metrics::token_issued`], after adding the series it lacks to the
    /// hot list.
    fn add_issued_series(&self, profile: &str, grants: &[&'static str]) {
        let _adding = self
            .hot
            .adding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut issued = Vec::clone(&self.hot.issued.load());
        let position = match issued
            .iter()
            .position(|counters| counters.profile == profile)
        {
            Some(position) => position,
            None => {
                let tokens = self
                    .tokens_issued
                    .get_or_create(&[("profile", profile.to_owned())])
                    .clone();
                issued.push(ProfileCounters {
                    profile: profile.to_owned(),
                    tokens,
                    by_grant: Vec::new(),
                });
                issued.len() - 1
            }
        };
        let counters = &mut issued[position];
        counters.tokens.inc();
        for &grant in grants {
            let counter = match counters.grant(grant) {
                Some(counter) => counter.clone(),
                None => {
                    let counter = self
                        .grants_issued
                        .get_or_create(&[
                            ("profile", profile.to_owned()),
                            ("grant", grant.to_owned()),
                        ])
                        .clone();
                    counters.by_grant.push((grant, counter.clone()));
                    counter
                }
            };
            counter.inc();
        }
        self.hot.issued.store(Arc::new(issued));
    }

    /// Counts one token request refused with the error code `reason`.
    pub fn refused(&self, reason: &str) {
        self.refusals
            .get_or_create(&[("reason", reason.to_owned())])
            .inc();
    }

    /// Counts one failed authentication by `provider` (such as `api_key`, or `none` when no
    /// provider found credentials) with the error code `reason`.
    pub fn auth_failure(&self, provider: &str, reason: &str) {
        self.auth_failures
            .get_or_create(&[
                ("provider", provider.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc();
    }

    /// Counts one request refused by the rate limit of `scope` (`identity` or `client`).
    pub fn rate_limited(&self, scope: &str) {
        self.rate_limited
            .get_or_create(&[("scope", scope.to_owned())])
            .inc();
    }

    /// Counts one rate limit decision made without Redis under `policy` (`local`, `deny` or
    /// `allow`).
    pub fn rate_limit_fallback(&self, policy: &str) {
        self.rate_limit_fallbacks
            .get_or_create(&[("policy", policy.to_owned())])
            .inc();
    }

    /// Records how long a request to `route` took and the status it got.
    pub fn observe_request(&self, route: &str, status: u16, elapsed: Duration) {
        if route == "token" && status == 200 {
            self.hot
                .token_ok_latency
                .get_or_init(|| {
                    self.request_duration
                        .get_or_create(&[
                            ("route", "token".to_owned()),
                            ("status", "200".to_owned()),
                        ])
                        .clone()
                })
                .observe(elapsed);
            return;
        }
        self.request_duration
            .get_or_create(&[("route", route.to_owned()), ("status", status.to_string())])
            .observe(elapsed);
    }

    /// Counts one failed Redis call made for `used_for` (`rate_limit` or `revocation`).
    pub fn redis_error(&self, used_for: &str) {
        self.redis_errors
            .get_or_create(&[("use", used_for.to_owned())])
            .inc();
    }

    /// Counts one audit record that the sink `sink` (such as `sqlite`) failed to write.
    pub fn audit_error(&self, sink: &str) {
        self.audit_errors
            .get_or_create(&[("sink", sink.to_owned())])
            .inc();
    }

    /// Counts one fetch of the signing keys (JWKS) of the identity provider `provider`, with
    /// `outcome` such as `ok` or `error`.
    pub fn jwks_refresh(&self, provider: &str, outcome: &str) {
        self.jwks_refreshes
            .get_or_create(&[
                ("provider", provider.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// Counts one configuration reload with `outcome` `applied` or `rejected`.
    pub fn config_reload(&self, outcome: &str) {
        self.config_reloads
            .get_or_create(&[("outcome", outcome.to_owned())])
            .inc();
    }

    /// Sets the number of revocation entries of `kind` (`identity` or `jti`).
    pub fn set_revocations(&self, kind: &str, entries: usize) {
        self.revocations
            .get_or_create(&[("kind", kind.to_owned())])
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// Renders every series as OpenMetrics text, ending with `# EOF`.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts_tokens_by_profile_and_grant() {
        let metrics = Metrics::new();

        metrics.token_issued("default", &["chat", "video"]);
        metrics.token_issued("default", &["chat"]);
        // A grant the cached profile has not issued yet, then the cached path again.
        metrics.token_issued("default", &["chat", "voice"]);
        metrics.token_issued("default", &["voice", "video"]);
        metrics.token_issued("other", &["sync"]);
        let text = metrics.render();

        for (series, count) in [
            ("tokens_issued_total{profile=\"default\"}", 4),
            ("tokens_issued_total{profile=\"other\"}", 1),
            ("grants_issued_total{profile=\"default\",grant=\"chat\"}", 3),
            (
                "grants_issued_total{profile=\"default\",grant=\"video\"}",
                2,
            ),
            (
                "grants_issued_total{profile=\"default\",grant=\"voice\"}",
                2,
            ),
            ("grants_issued_total{profile=\"other\",grant=\"sync\"}", 1),
        ] {
            assert!(
                text.contains(&format!("twilio_token_{series} {count}\n")),
                "{series} {count}: {text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn histogram_has_buckets_not_quantiles() {
        let metrics = Metrics::new();

        metrics.observe_request("token", 200, Duration::from_micros(300));
        let text = metrics.render();

        assert!(text.contains("# TYPE twilio_token_request_duration_seconds histogram"));
        assert!(text.contains(
            "twilio_token_request_duration_seconds_bucket{le=\"0.000625\",route=\"token\",status=\"200\"} 1"
        ) || text.contains(
            "twilio_token_request_duration_seconds_bucket{route=\"token\",status=\"200\",le=\"0.000625\"} 1"
        ), "{text}");
        assert!(!text.contains("quantile"), "{text}");
    }

    #[test]
    fn latency_histogram_encodes_like_prometheus_client() {
        use prometheus_client::metrics::histogram::Histogram;

        let bounds = LATENCY_BUCKETS_NANOS.map(|nanos| nanos as f64 / 1e9);
        assert_eq!(
            bounds,
            [
                0.0001, 0.00025, 0.000625, 0.0016, 0.004, 0.01, 0.025, 0.0625, 0.16, 0.4, 1.0, 2.5,
                10.0
            ]
        );
        let ours = LatencyHistogram::default();
        let theirs = Histogram::new(bounds);
        // A bucket bound itself, values in the middle, and one above the last bound.
        for millis in [0, 100, 250, 500, 2_000, 10_000, 20_000] {
            let elapsed = Duration::from_millis(millis);
            ours.observe(elapsed);
            theirs.observe(elapsed.as_secs_f64());
        }
        ours.observe(Duration::from_micros(100));
        theirs.observe(0.0001);

        let render = |register: &dyn Fn(&mut Registry)| {
            let mut registry = Registry::default();
            register(&mut registry);
            let mut text = String::new();
            encode(&mut text, &registry).expect("encoded");
            text
        };
        let text = render(&|registry| registry.register("latency", "Latency", ours.clone()));
        let expected = render(&|registry| registry.register("latency", "Latency", theirs.clone()));
        // The same text, except that a sum of nanoseconds has no rounding error, while
        // prometheus_client's sum of seconds as f64 has (32.850100000000008 here).
        let without_sum = |text: &str| {
            text.lines()
                .filter(|line| !line.starts_with("latency_sum "))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(without_sum(&text), without_sum(&expected));
        assert!(text.contains("latency_count 8\n"), "{text}");
        assert!(text.contains("latency_sum 32.8501\n"), "{text}");
        assert!(text.contains("latency_bucket{le=\"0.0001\"} 2\n"), "{text}");
        assert!(text.contains("latency_bucket{le=\"10.0\"} 7\n"), "{text}");
        assert!(text.contains("latency_bucket{le=\"+Inf\"} 8\n"), "{text}");
    }

    #[test]
    fn tokens_counted_from_many_threads() {
        let metrics = Metrics::new();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let metrics = &metrics;
                scope.spawn(move || {
                    // Each thread adds a profile of its own and shares one with the others, so
                    // writers of the hot list race.
                    let own = format!("p{thread}");
                    for _ in 0..1000 {
                        metrics.token_issued(&own, &["chat"]);
                        metrics.token_issued("shared", &["chat", "video"]);
                    }
                });
            }
        });
        let text = metrics.render();

        for thread in 0..4 {
            let series =
                format!("twilio_token_tokens_issued_total{{profile=\"p{thread}\"}} 1000\n");
            assert!(text.contains(&series), "{series} in {text}");
        }
        assert!(
            text.contains("twilio_token_tokens_issued_total{profile=\"shared\"} 4000\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "twilio_token_grants_issued_total{profile=\"shared\",grant=\"video\"} 4000\n"
            ),
            "{text}"
        );
    }
}
