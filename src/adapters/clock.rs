//! The real clock.

use chrono::{DateTime, Utc};

use crate::domain::ports::Clock;

/// Reads the system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
