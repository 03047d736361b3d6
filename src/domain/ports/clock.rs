//! The current time, as a port.

use chrono::{DateTime, Utc};

/// The current time. A port so that every date rule can be tested at a fixed instant.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}
