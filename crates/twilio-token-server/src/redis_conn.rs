//! A Redis connection shared by the rate limits and the revocation list, and the bookkeeping of
//! outages: one log line when Redis stops answering, one when it answers again.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::ConfigError;
use crate::metrics::Metrics;

/// How long one Redis call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// How long the server waits after a failed call before it tries Redis again. Requests in
/// between take the fallback path at once instead of each waiting for a timeout.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Checks a Redis URL without connecting. The message never repeats the URL, because it can
/// contain a password.
pub(crate) fn parse_url(key: &str, url: &str) -> Result<redis::Client, ConfigError> {
    if !(url.starts_with("redis://")
        || url.starts_with("redis+unix://")
        || url.starts_with("unix://"))
    {
        return Err(ConfigError::new(
            key,
            "is not a Redis URL: write redis://HOST:PORT/DB, such as redis://127.0.0.1:6379/0 \
             (TLS, rediss://, is not supported)",
        ));
    }
    redis::Client::open(url).map_err(|error| {
        ConfigError::new(
            key,
            format!("is not a valid Redis URL ({error}): write redis://HOST:PORT/DB"),
        )
    })
}

/// A lazily opened Redis connection that reconnects by itself, with outage tracking.
pub(crate) struct RedisConn {
    client: redis::Client,
    manager: OnceLock<Result<ConnectionManager, String>>,
    /// What the connection is used for, in logs and metrics: `rate_limit` or `revocation`.
    used_for: &'static str,
    /// What happens while Redis is down, for the log line.
    fallback: String,
    metrics: Arc<Metrics>,
    down: AtomicBool,
    /// Milliseconds since `started` before which no call is tried after a failure.
    retry_at_ms: AtomicU64,
    started: Instant,
}

impl fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConn")
            .field("used_for", &self.used_for)
            .field("down", &self.down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisConn {
    pub(crate) fn new(
        client: redis::Client,
        used_for: &'static str,
        fallback: impl Into<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        RedisConn {
            client,
            manager: OnceLock::new(),
            used_for,
            fallback: fallback.into(),
            metrics,
            down: AtomicBool::new(false),
            retry_at_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Returns a connection to call, or `None` while Redis is down and no retry is due. After a
    /// failure, one caller per second gets a connection to probe Redis with.
    pub(crate) fn connection(&self) -> Option<ConnectionManager> {
        if self.down.load(Ordering::Acquire) {
            let now = self.now_ms();
            let due = self.retry_at_ms.load(Ordering::Acquire);
            if now < due {
                return None;
            }
            let next = now + millis(RETRY_AFTER_FAILURE);
            if self
                .retry_at_ms
                .compare_exchange(due, next, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return None;
            }
        }
        let manager = self.manager.get_or_init(|| {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CALL_TIMEOUT))
                .set_response_timeout(Some(CALL_TIMEOUT))
                .set_number_of_retries(0);
            ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                .map_err(|error| error.to_string())
        });
        match manager {
            Ok(manager) => Some(manager.clone()),
            Err(error) => {
                self.failed(error);
                None
            }
        }
    }

    /// Runs `op` on a connection, within [`CALL_TIMEOUT`], recording the outcome. A call that
    /// fails on a broken connection is tried once more, because the first failure is what
    /// makes the connection reconnect, such as after Redis restarted.
    ///
    /// Returns `None` when Redis is down and no retry is due, or when the call failed.
    pub(crate) async fn call<T, F, Fut>(&self, op: F) -> Option<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection()?;
        let mut result = attempt(op(connection.clone())).await;
        if let Err(CallError::Redis(error)) = &result
            && (error.is_io_error()
                || error.is_connection_dropped()
                || error.is_connection_refusal())
        {
            result = attempt(op(connection)).await;
        }
        match result {
            Ok(value) => {
                self.succeeded();
                Some(value)
            }
            Err(error) => {
                self.failed(&error);
                None
            }
        }
    }

    /// Records a failed call: counts it, and logs it when it starts an outage.
    pub(crate) fn failed(&self, error: &dyn fmt::Display) {
        self.metrics.redis_error(self.used_for);
        self.retry_at_ms.store(
            self.now_ms() + millis(RETRY_AFTER_FAILURE),
            Ordering::Release,
        );
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::error!(
                used_for = self.used_for,
                %error,
                "redis is unreachable, {}, until it responds again",
                self.fallback
            );
        }
    }

    /// Records a successful call, and logs the end of an outage.
    pub(crate) fn succeeded(&self) {
        if self.down.load(Ordering::Acquire) && self.down.swap(false, Ordering::AcqRel) {
            tracing::info!(used_for = self.used_for, "redis responds again");
        }
    }

    /// True while Redis is considered down.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }
}

enum CallError {
    Redis(redis::RedisError),
    Timeout,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Redis(error) => error.fmt(f),
            CallError::Timeout => write!(f, "no response within {} ms", CALL_TIMEOUT.as_millis()),
        }
    }
}

async fn attempt<T>(call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, CallError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(CallError::Redis),
        Err(_) => Err(CallError::Timeout),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
