//! In-process rate limits with `governor`: one keyed GCRA limiter per scope.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::{Decision, LimitRule};

/// How often idle keys are dropped, so that the limiter's memory follows the number of active
/// callers instead of growing with every address ever seen.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// A keyed limiter for one scope.
pub(crate) struct LocalLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
    started: Instant,
    /// Seconds since `started` of the last prune.
    pruned_at: AtomicU64,
}

impl<K: Hash + Eq + Clone> LocalLimiter<K> {
    /// Builds the limiter for a validated rule.
    pub(crate) fn new(rule: LimitRule) -> Self {
        let clock = DefaultClock::default();
        let burst = NonZeroU32::new(rule.burst).unwrap_or(NonZeroU32::MIN);
        // `Quota::per_second(n)` would mean n cells per second; the period between two cells
        // is what a sustained rate per minute gives.
        let quota = Quota::with_period(rule.interval())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        LocalLimiter {
            limiter: DefaultKeyedRateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
            started: Instant::now(),
            pruned_at: AtomicU64::new(0),
        }
    }

    /// Takes one request from `key`'s budget, or says how long to wait.
    pub(crate) fn check(&self, key: &K) -> Decision {
        self.prune_if_due();
        match self.limiter.check_key(key) {
            Ok(()) => Decision::Allow,
            Err(not_until) => Decision::Deny {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }

    /// Number of keys held, for tests of the pruning.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.limiter.len()
    }

    fn prune_if_due(&self) {
        let now = self.started.elapsed().as_secs();
        let last = self.pruned_at.load(Ordering::Relaxed);
        if now < last + PRUNE_EVERY.as_secs() {
            return;
        }
        if self
            .pruned_at
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.prune();
        }
    }

    /// Drops keys whose budget is full again, which behave exactly like unseen keys.
    pub(crate) fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_with_wait_of_one_interval() {
        let limiter = LocalLimiter::new(LimitRule {
            burst: 3,
            per_minute: 60,
        });

        let decisions: Vec<Decision> = (0..4).map(|_| limiter.check(&"alice")).collect();

        assert_eq!(decisions[..3], [Decision::Allow; 3]);
        let Decision::Deny { retry_after } = decisions[3] else {
            panic!("fourth request allowed: {decisions:?}");
        };
        assert!(
            retry_after > Duration::from_millis(900) && retry_after <= Duration::from_secs(1),
            "{retry_after:?}"
        );
        assert_eq!(limiter.check(&"bob"), Decision::Allow);
    }

    #[test]
    fn prune_drops_idle_keys() {
        let limiter = LocalLimiter::new(LimitRule {
            burst: 1,
            per_minute: 6_000_000,
        });
        for index in 0..100 {
            assert_eq!(limiter.check(&index), Decision::Allow);
        }
        assert_eq!(limiter.len(), 100);

        std::thread::sleep(Duration::from_millis(5));
        limiter.prune();

        assert_eq!(limiter.len(), 0);
    }
}
