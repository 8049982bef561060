//! Rate limits kept in Redis, so that every replica draws from one budget.
//!
//! Each key holds its GCRA "theoretical arrival time" in microseconds of the Redis server's
//! clock. One Lua script, called with EVALSHA, reads it, decides and writes it back, so two
//! replicas cannot both take the last request of a budget. The key expires once its budget is
//! full again, so idle callers cost no memory.

use std::time::Duration;

use redis::Script;

use super::{Decision, LimitRule};
use crate::redis_conn::RedisConn;

/// KEYS[1]: the limit's key. ARGV[1]: microseconds between two requests at the sustained rate.
/// ARGV[2]: the burst. Returns {1, 0} when allowed, {0, wait in microseconds} when not.
const GCRA: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - now - tolerance
if wait > 0 then
  return {0, math.ceil(wait)}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return {1, 0}
";

/// The Redis side of the rate limits.
pub(crate) struct RedisLimiter {
    pub(crate) conn: RedisConn,
    script: Script,
    prefix: String,
}

impl RedisLimiter {
    pub(crate) fn new(conn: RedisConn, prefix: &str) -> Self {
        RedisLimiter {
            conn,
            script: Script::new(GCRA),
            prefix: prefix.to_owned(),
        }
    }

    /// Takes one request from the budget of `key` in `scope`, or returns `None` when Redis
    /// cannot decide.
    pub(crate) async fn check(&self, scope: &str, key: &str, rule: LimitRule) -> Option<Decision> {
        let interval_us = u64::try_from(rule.interval().as_micros()).unwrap_or(u64::MAX);
        let redis_key = format!("{}:rl:{scope}:{key}", self.prefix);
        let mut invocation = self.script.key(redis_key);
        invocation.arg(interval_us).arg(rule.burst);
        let invocation = &invocation;
        let (allowed, wait_us) = self
            .conn
            .call(|mut connection| async move {
                invocation.invoke_async::<(i64, i64)>(&mut connection).await
            })
            .await?;
        if allowed == 1 {
            Some(Decision::Allow)
        } else {
            Some(Decision::Deny {
                retry_after: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
            })
        }
    }
}
