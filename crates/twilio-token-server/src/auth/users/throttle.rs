//! Slows down password guessing: failed sign-ins are counted per user name and per client
//! address, in memory.
//!
//! After [`FREE_FAILURES`] failures of one key, each further attempt must wait 1, 2, 4 … up to
//! [`MAX_DELAY_SECS`] seconds after the key's last failure, and is rejected before its password
//! is checked. A key is forgotten [`WINDOW_SECS`] after its last failure. The user name is the
//! key whether or not the user exists, so a throttled unknown name looks like a throttled real
//! one.
//!
//! Times are durations on a monotonic clock, such as the time since the server started, so a
//! change of the system clock neither lifts nor extends a delay.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Failures allowed before attempts are delayed.
pub const FREE_FAILURES: u32 = 5;

/// Seconds after a key's last failure when its count is forgotten: 15 minutes.
pub const WINDOW_SECS: u64 = 15 * 60;

/// The maximum delay between attempts, in seconds.
pub const MAX_DELAY_SECS: u64 = 300;

/// The maximum number of keys of each kind. When full, the key with the oldest failure is
/// dropped.
pub const MAX_KEYS: usize = 10_000;

/// An attempt that [`LoginThrottle::begin`] admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Attempt {
    /// True when this attempt used the last free failure of the user name or the address, so
    /// its failure starts the delays. Callers log that once instead of every rejection.
    pub reaches_limit: bool,
    /// When the attempt began, and the address's last failure before it. A success takes the
    /// attempt back and, unless a later attempt has begun, restores that last failure, so that
    /// it does not restart the address's delay.
    started: Duration,
    address_last_failure: Option<Duration>,
}

/// Failed sign-in counts per user name and per client address.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    state: Mutex<Keys>,
}

#[derive(Debug, Default)]
struct Keys {
    users: Failures<String>,
    addresses: Failures<IpAddr>,
}

impl LoginThrottle {
    /// Creates a throttle with no failures.
    pub fn new() -> LoginThrottle {
        LoginThrottle::default()
    }

    /// Admits an attempt for this user name and address at monotonic time `now`, or returns
    /// `Err(seconds)` with the longer wait of the two, rounded up to whole seconds.
    ///
    /// An admitted attempt counts as a failure at once, so parallel attempts cannot get past
    /// the limit while their passwords are being checked. [`LoginThrottle::record_success`]
    /// takes it back.
    pub fn begin(
        &self,
        user: &str,
        address: Option<IpAddr>,
        now: Duration,
    ) -> Result<Attempt, u64> {
        let mut keys = self.lock();
        let user = user_key(user);
        let user_wait = keys.users.wait(&user, now);
        let address_wait = address.and_then(|address| keys.addresses.wait(&address, now));
        if let Some(wait) = user_wait.max(address_wait) {
            return Err(whole_seconds(wait));
        }

        let user_limit = keys.users.record(user, now);
        let address_last_failure = address
            .and_then(|address| keys.addresses.entries.get(&address))
            .filter(|record| !is_stale(record, now))
            .map(|record| record.last_failure);
        let address_limit = address.is_some_and(|address| keys.addresses.record(address, now));
        Ok(Attempt {
            reaches_limit: user_limit || address_limit,
            started: now,
            address_last_failure,
        })
    }

    /// Forgets the user name's failures after a successful sign-in, and takes the attempt back
    /// from the address's count. The address keeps its earlier failures, so one valid account
    /// cannot reset the limit on guessing others.
    pub fn record_success(&self, user: &str, address: Option<IpAddr>, attempt: &Attempt) {
        let mut keys = self.lock();
        keys.users.entries.remove(&user_key(user));
        if let Some(address) = address {
            // Only this attempt is taken back: attempts that began meanwhile keep their count.
            keys.addresses.take_back(&address, attempt);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        // The counters stay consistent even if a holder panicked, because each update is one
        // map operation.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// User names are compared without regard to ASCII case, as the store compares them.
fn user_key(user: &str) -> String {
    user.to_ascii_lowercase()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    failures: u32,
    last_failure: Duration,
}

#[derive(Debug)]
struct Failures<K> {
    entries: HashMap<K, Record>,
}

impl<K> Default for Failures<K> {
    fn default() -> Self {
        Failures {
            entries: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Clone> Failures<K> {
    /// Returns how long an attempt must still wait, if at all.
    fn wait(&self, key: &K, now: Duration) -> Option<Duration> {
        let record = self.entries.get(key)?;
        if is_stale(record, now) {
            return None;
        }
        let delay = Duration::from_secs(delay_secs(record.failures)?);
        let allowed_at = record.last_failure + delay;
        (allowed_at > now).then(|| allowed_at - now)
    }

    /// Counts a failure and returns true when the key has just reached the limit.
    fn record(&mut self, key: K, now: Duration) -> bool {
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_KEYS {
            self.evict(now);
        }
        let record = self.entries.entry(key).or_insert(Record {
            failures: 0,
            last_failure: now,
        });
        if is_stale(record, now) {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        record.failures == FREE_FAILURES
    }

    /// Takes back the failure counted for `attempt`, and removes the key when none are left.
    fn take_back(&mut self, key: &K, attempt: &Attempt) {
        let Some(record) = self.entries.get_mut(key) else {
            return;
        };
        record.failures = record.failures.saturating_sub(1);
        if record.failures == 0 {
            self.entries.remove(key);
            return;
        }
        if record.last_failure == attempt.started
            && let Some(last_failure) = attempt.address_last_failure
        {
            record.last_failure = last_failure;
        }
    }

    /// Drops the keys past the window, or when none are, the key with the oldest failure.
    fn evict(&mut self, now: Duration) {
        let before = self.entries.len();
        self.entries.retain(|_, record| !is_stale(record, now));
        if self.entries.len() < before {
            return;
        }
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, record)| record.last_failure)
            .map(|(key, _)| key.clone());
        if let Some(oldest) = oldest {
            self.entries.remove(&oldest);
        }
    }
}

/// True when the window has passed since the record's last failure.
fn is_stale(record: &Record, now: Duration) -> bool {
    now.saturating_sub(record.last_failure) >= Duration::from_secs(WINDOW_SECS)
}

/// Rounds a wait up to whole seconds, at least 1, for `Retry-After`.
fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Returns the delay after `failures` failures: none up to [`FREE_FAILURES`], then 1 s doubling
/// up to [`MAX_DELAY_SECS`].
fn delay_secs(failures: u32) -> Option<u64> {
    let excess = failures.checked_sub(FREE_FAILURES)?;
    let delay = 1u64.checked_shl(excess).unwrap_or(u64::MAX);
    Some(delay.min(MAX_DELAY_SECS))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn secs(value: u64) -> Duration {
        Duration::from_secs(value)
    }

    const ADDRESS: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));

    #[test]
    fn delay_doubles_up_to_cap() {
        let delays: Vec<Option<u64>> = (4..=15).map(delay_secs).collect();
        assert_eq!(
            delays,
            [
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(64),
                Some(128),
                Some(256),
                Some(300),
                Some(300)
            ]
        );
        assert_eq!(delay_secs(u32::MAX), Some(300));
    }

    #[test]
    fn sixth_attempt_waits() {
        let throttle = LoginThrottle::new();
        for attempt in 1..=5 {
            let admitted = throttle.begin("bob", ADDRESS, secs(100));
            assert_eq!(
                admitted.map(|admitted| admitted.reaches_limit),
                Ok(attempt == 5),
                "attempt {attempt}"
            );
        }

        assert_eq!(throttle.begin("bob", ADDRESS, secs(100)), Err(1));
        assert_eq!(throttle.begin("BOB", None, secs(100)), Err(1));
        assert_eq!(throttle.begin("carol", ADDRESS, secs(100)), Err(1));
        assert!(throttle.begin("carol", None, secs(100)).is_ok());
        assert!(throttle.begin("bob", ADDRESS, secs(101)).is_ok());
    }

    #[test]
    fn wait_rounds_up_to_seconds() {
        let throttle = LoginThrottle::new();
        for _ in 0..5 {
            let _ = throttle.begin("bob", None, Duration::from_millis(100_900));
        }

        assert_eq!(
            throttle.begin("bob", None, Duration::from_millis(101_800)),
            Err(1)
        );
        assert!(
            throttle
                .begin("bob", None, Duration::from_millis(101_900))
                .is_ok()
        );
    }

    #[test]
    fn further_failures_double_wait() {
        let throttle = LoginThrottle::new();
        for time in [100, 100, 100, 100, 100, 101, 103] {
            assert!(throttle.begin("bob", None, secs(time)).is_ok(), "at {time}");
        }

        assert_eq!(throttle.begin("bob", None, secs(103)), Err(4));
        assert_eq!(throttle.begin("bob", None, secs(106)), Err(1));
        assert!(throttle.begin("bob", None, secs(107)).is_ok());
    }

    #[test]
    fn success_resets_user_not_address() {
        let throttle = LoginThrottle::new();
        for _ in 0..4 {
            let _ = throttle.begin("bob", ADDRESS, secs(100));
        }
        let last = throttle
            .begin("bob", ADDRESS, secs(100))
            .expect("fifth attempt admitted");
        assert!(throttle.begin("alice", None, secs(101)).is_ok());

        throttle.record_success("Bob", ADDRESS, &last);

        assert!(throttle.begin("bob", None, secs(101)).is_ok());
        assert_eq!(
            throttle
                .begin("carol", ADDRESS, secs(101))
                .map(|attempt| attempt.reaches_limit),
            Ok(true)
        );
    }

    #[test]
    fn success_takes_back_address_attempt() {
        let throttle = LoginThrottle::new();
        for user in ["a", "b", "c", "d", "e", "f"] {
            let attempt = throttle.begin(user, ADDRESS, secs(100)).expect("admitted");
            throttle.record_success(user, ADDRESS, &attempt);
        }

        assert!(throttle.begin("g", ADDRESS, secs(100)).is_ok());
    }

    #[test]
    fn success_keeps_concurrent_attempts() {
        let throttle = LoginThrottle::new();
        let _ = throttle.begin("x", ADDRESS, secs(50));
        let valid = throttle
            .begin("valid", ADDRESS, secs(100))
            .expect("admitted");
        for guess in ["g1", "g2", "g3"] {
            let _ = throttle.begin(guess, ADDRESS, secs(100)).expect("admitted");
        }

        throttle.record_success("valid", ADDRESS, &valid);

        // Four failures stay counted (x and the three guesses), so one more attempt is free.
        let admitted = ["h1", "h2", "h3", "h4"]
            .iter()
            .filter(|user| throttle.begin(user, ADDRESS, secs(100)).is_ok())
            .count();
        assert_eq!(admitted, 1);
    }

    #[test]
    fn failures_forgotten_after_window() {
        let throttle = LoginThrottle::new();
        for _ in 0..5 {
            let _ = throttle.begin("bob", None, secs(100));
        }
        let later = secs(100 + WINDOW_SECS);

        assert_eq!(
            throttle
                .begin("bob", None, later)
                .map(|attempt| attempt.reaches_limit),
            Ok(false)
        );
        assert!(throttle.begin("bob", None, later).is_ok());
    }

    #[test]
    fn full_table_evicts_oldest() {
        let mut failures = Failures::<u32>::default();
        failures.record(0, secs(999));
        for key in 1..MAX_KEYS as u32 {
            failures.record(key, secs(1_000));
        }

        failures.record(u32::MAX, secs(1_001));

        assert_eq!(failures.entries.len(), MAX_KEYS);
        assert!(!failures.entries.contains_key(&0));
        assert!(failures.entries.contains_key(&1));
        assert!(failures.entries.contains_key(&u32::MAX));
    }

    #[test]
    fn full_table_drops_stale_keys_first() {
        let mut failures = Failures::<u32>::default();
        for key in 0..MAX_KEYS as u32 {
            let time = if key % 2 == 0 { 0 } else { WINDOW_SECS };
            failures.record(key, secs(time));
        }

        failures.record(u32::MAX, secs(WINDOW_SECS + 1));

        assert_eq!(failures.entries.len(), MAX_KEYS / 2 + 1);
        assert!(failures.entries.contains_key(&1));
    }

    #[test]
    fn success_keeps_address_delay_start() {
        let throttle = LoginThrottle::new();
        for _ in 0..5 {
            let _ = throttle.begin("ghost", ADDRESS, secs(100));
        }
        // The first delay after five failures is one second.
        let attempt = throttle
            .begin("alice", ADDRESS, secs(101))
            .expect("delay over");
        throttle.record_success("alice", ADDRESS, &attempt);

        assert_eq!(
            throttle.begin("bob", ADDRESS, secs(101)).map(|_| ()),
            Ok(())
        );
    }
}
