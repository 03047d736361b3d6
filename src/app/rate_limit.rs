//! Per-user flood control on the webhook. A user over `USER_RATE_LIMIT` loses nothing:
//! the message is stored and answered as usual, but the work beyond saving it (fetching
//! media, and after it transcription and OCR; the Mem0 copy) is queued for later, and
//! the user hears once a minute that the service is catching up. GCRA (the `governor`
//! crate): a steady rate with a burst allowance, no timers, one small state per user.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};

/// A rate: `count` per `period`, with bursts of up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub period: Duration,
    pub burst: u32,
}

impl RateLimit {
    /// Parses `30/min:10` (30 a minute, bursts of 10), `20/s:40`, `100/h`; the burst
    /// defaults to the count. Periods: `s`, `min`, `h` (and their long names).
    ///
    /// # Errors
    /// A message saying what the value should look like.
    pub fn parse(text: &str) -> Result<Self, String> {
        let wrong = || format!("{text:?} is not a rate such as 30/min:10 (30 a minute, bursts of 10), or off");
        let (rate, burst) = match text.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (text, None),
        };
        let (count, period) = rate.split_once('/').ok_or_else(wrong)?;
        let count: u32 = count.trim().parse().ok().filter(|n| *n > 0).ok_or_else(wrong)?;
        let period = match period.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(wrong()),
        };
        let burst = match burst {
            None => count,
            Some(burst) => burst.trim().parse().ok().filter(|n| *n > 0).ok_or_else(wrong)?,
        };
        Ok(Self { count, period, burst })
    }

    /// The limit as governor's quota: one cell every `period / count`, `burst` at most.
    pub fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(self.period / self.count.max(1))
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst)
    }
}

/// What the service does with one user's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the limit: everything at once.
    Now,
    /// Over it: stored now, the rest later; `notify` once a minute.
    Deferred { notify: bool },
}

/// How long deferred work waits.
pub const DEFER_BY: Duration = Duration::from_secs(60);

/// What a user over the limit hears, at most once a minute.
pub const SLOW_DOWN: &str =
    "You're sending a lot at once 🙂 Everything is saved; I'll finish processing it over the next minutes.";

/// Checks between two sweeps of users whose state is back at the start.
const SWEEP_EVERY: u64 = 4096;

/// Every user's rate, and when each last heard [`SLOW_DOWN`].
pub struct UserRateLimiter {
    messages: DefaultKeyedRateLimiter<String>,
    notices: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl UserRateLimiter {
    /// A limiter allowing `limit` per user.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            messages: DefaultKeyedRateLimiter::keyed(limit.quota()),
            notices: DefaultKeyedRateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one message of `wa_id` and says what to do with it.
    pub fn admit(&self, wa_id: &str) -> Admission {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Users idle long enough to be back at a full burst need no state.
            self.messages.retain_recent();
            self.notices.retain_recent();
        }
        let key = wa_id.to_string();
        if self.messages.check_key(&key).is_ok() {
            return Admission::Now;
        }
        Admission::Deferred { notify: self.notices.check_key(&key).is_ok() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_and_without_a_burst() {
        let limit = RateLimit::parse("30/min:10").unwrap();
        assert_eq!(limit, RateLimit { count: 30, period: Duration::from_secs(60), burst: 10 });
        assert_eq!(RateLimit::parse("20/s:40").unwrap().burst, 40);
        assert_eq!(
            RateLimit::parse("100/hour").unwrap(),
            RateLimit { count: 100, period: Duration::from_secs(3600), burst: 100 }
        );
        for wrong in ["", "30", "0/min", "30/week", "30/min:0", "x/min"] {
            assert!(RateLimit::parse(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn a_burst_passes_then_the_rest_is_deferred_with_one_notice() {
        let limiter = UserRateLimiter::new(RateLimit::parse("30/h:30").unwrap());
        let admissions: Vec<_> = (0..50).map(|_| limiter.admit("15551234567")).collect();
        assert!(admissions[..30].iter().all(|a| *a == Admission::Now));
        assert_eq!(admissions[30], Admission::Deferred { notify: true });
        assert!(admissions[31..].iter().all(|a| *a == Admission::Deferred { notify: false }));
        // Another user is not held back by the first.
        assert_eq!(limiter.admit("4915112345678"), Admission::Now);
    }
}
