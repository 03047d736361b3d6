//! How busy the service is, from the requests it receives, so that work which can wait
//! (embedding memories) waits while people are sending it messages in a burst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Above this many requests in a second the service counts as busy. Embedding a note
/// takes ~10 ms of a core, so beyond ~100 messages a second it could not keep up anyway;
/// below, it runs as messages arrive.
pub const BUSY_REQUESTS_PER_SECOND: u64 = 100;

/// Requests counted per second, this second and the one before (lock-free: every request
/// records itself).
#[derive(Debug)]
pub struct RequestRate {
    started: Instant,
    threshold: u64,
    /// The second (since `started`) that `current` counts.
    second: AtomicU64,
    current: AtomicU64,
    previous: AtomicU64,
}

impl Default for RequestRate {
    fn default() -> Self {
        Self::with_threshold(BUSY_REQUESTS_PER_SECOND)
    }
}

impl RequestRate {
    /// A meter that says busy above `threshold` requests a second.
    pub fn with_threshold(threshold: u64) -> Self {
        Self {
            started: Instant::now(),
            threshold,
            second: AtomicU64::new(0),
            current: AtomicU64::new(0),
            previous: AtomicU64::new(0),
        }
    }

    fn now_second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Moves the counters on to `now` if a second (or more) has passed.
    fn roll(&self, now: u64) {
        let seen = self.second.load(Ordering::Acquire);
        if now > seen && self.second.compare_exchange(seen, now, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            let last = self.current.swap(0, Ordering::AcqRel);
            self.previous.store(if now == seen + 1 { last } else { 0 }, Ordering::Release);
        }
    }

    /// Counts one request.
    pub fn record(&self) {
        self.roll(self.now_second());
        self.current.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the last full second, or this one so far, had more requests than the
    /// threshold.
    pub fn is_busy(&self) -> bool {
        self.roll(self.now_second());
        self.previous.load(Ordering::Acquire).max(self.current.load(Ordering::Acquire)) > self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_makes_it_busy_and_a_quiet_second_after_it_ends_that() {
        let rate = RequestRate::with_threshold(5);
        assert!(!rate.is_busy());
        for _ in 0..5 {
            rate.record();
        }
        assert!(!rate.is_busy(), "at the threshold is not above it");
        rate.record();
        assert!(rate.is_busy());
        // Two seconds later, with nothing since, both counters have rolled away.
        rate.roll(rate.now_second() + 2);
        assert_eq!(rate.previous.load(Ordering::Acquire), 0);
        assert_eq!(rate.current.load(Ordering::Acquire), 0);
        assert!(!rate.is_busy());
    }

    #[test]
    fn the_last_full_second_counts_until_the_next_one_ends() {
        let rate = RequestRate::with_threshold(1);
        rate.record();
        rate.record();
        rate.roll(rate.now_second() + 1);
        assert_eq!(rate.previous.load(Ordering::Acquire), 2);
        assert_eq!(rate.current.load(Ordering::Acquire), 0);
    }
}
