//! Time sources. Minting reads the clock once per token, in whole Unix seconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time in whole seconds since the Unix epoch.
pub trait Clock {
    /// Returns the current Unix time in seconds, or `None` when the clock is before the epoch.
    fn now(&self) -> Option<u64>;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Option<u64> {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|elapsed| elapsed.as_secs())
    }
}

/// A clock frozen at one Unix time, for tests and reproducible tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now(&self) -> Option<u64> {
        Some(self.0)
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Option<u64> {
        (**self).now()
    }
}
