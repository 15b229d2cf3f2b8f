//! Slows down guessing: a source address that presented `max_failures` wrong tokens within
//! `window` is refused (429 with `Retry-After`) until the oldest of those failures leaves the
//! window. Only wrong tokens count: a request with no token at all, or from another address,
//! is never held back by someone else's guessing. Memory is bounded: at most `max_sources`
//! addresses are tracked, the stalest dropped first. Time is passed in, so tests need no clock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A refusal: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

impl Limited {
    /// Whole seconds for a `Retry-After` header (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

/// Wrong-token counts per source address.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: usize,
    window: Duration,
    max_sources: usize,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Default for FailureLimiter {
    /// 10 wrong tokens a minute per address, 10,000 addresses tracked.
    fn default() -> Self {
        Self::new(10, Duration::from_secs(60), 10_000)
    }
}

impl FailureLimiter {
    pub fn new(max_failures: usize, window: Duration, max_sources: usize) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            max_sources: max_sources.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err` when `source` is held back now.
    pub fn check(&self, source: IpAddr, now: Instant) -> Result<(), Limited> {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(times) = failures.get_mut(&source) else {
            return Ok(());
        };
        self.expire(times, now);
        if times.len() < self.max_failures {
            if times.is_empty() {
                failures.remove(&source);
            }
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        Err(Limited {
            retry_after: (oldest + self.window).saturating_duration_since(now),
        })
    }

    /// Counts one wrong token from `source`.
    pub fn record_failure(&self, source: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if !failures.contains_key(&source) && failures.len() >= self.max_sources {
            // Drop the address whose last failure is oldest.
            let stalest = failures
                .iter()
                .min_by_key(|(_, times)| times.back().copied())
                .map(|(addr, _)| *addr);
            if let Some(addr) = stalest {
                failures.remove(&addr);
            }
        }
        let times = failures.entry(source).or_default();
        self.expire(times, now);
        times.push_back(now);
        while times.len() > self.max_failures {
            times.pop_front();
        }
    }

    fn expire(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn holds_back_one_address_until_its_failures_age_out() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limiter.check(addr(1), t0), Ok(()), "failure {i}");
            limiter.record_failure(addr(1), t0 + Duration::from_secs(i));
        }
        let limited = limiter
            .check(addr(1), t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(limited.retry_after, Duration::from_secs(50));
        assert_eq!(limited.retry_after_secs(), 50);
        // Another address is never slowed by the first one's guessing.
        assert_eq!(limiter.check(addr(2), t0 + Duration::from_secs(10)), Ok(()));
        // Once the oldest failure leaves the window, one more try is allowed.
        assert_eq!(limiter.check(addr(1), t0 + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn tracks_a_bounded_number_of_addresses() {
        let limiter = FailureLimiter::new(1, Duration::from_secs(60), 2);
        let t0 = Instant::now();
        limiter.record_failure(addr(1), t0);
        limiter.record_failure(addr(2), t0 + Duration::from_secs(1));
        limiter.record_failure(addr(3), t0 + Duration::from_secs(2));
        let now = t0 + Duration::from_secs(3);
        assert_eq!(limiter.check(addr(1), now), Ok(()), "stalest dropped");
        assert!(limiter.check(addr(2), now).is_err());
        assert!(limiter.check(addr(3), now).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_a_whole_second() {
        let limited = Limited {
            retry_after: Duration::from_millis(1),
        };
        assert_eq!(limited.retry_after_secs(), 1);
    }
}
