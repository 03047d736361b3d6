//! Reminders inside a transaction: taking one, listing, cancelling and snoozing, and
//! recording each occurrence's outcome together with the job that delivered it.

use async_trait::async_trait;
use chrono::{DateTime, NaiveTime, Utc};

use super::RepositoryError;
use crate::domain::model::{MemoryId, UserId};
use crate::domain::reminder::Repeat;

/// Our own id of a reminder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReminderId(pub i64);

/// Where a reminder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderStatus {
    /// Waiting for `next_at` (a recurring reminder stays pending between occurrences).
    Pending,
    /// A one-off reminder that was sent.
    Done,
    /// Cancelled by the user.
    Cancelled,
    /// A one-off reminder that could not be sent: outside WhatsApp's 24-hour window with
    /// no template, or dropped for being too late.
    Undeliverable,
}

impl ReminderStatus {
    /// The stored spelling; never changes (rows outlive upgrades).
    pub fn as_str(self) -> &'static str {
        match self {
            ReminderStatus::Pending => "pending",
            ReminderStatus::Done => "done",
            ReminderStatus::Cancelled => "cancelled",
            ReminderStatus::Undeliverable => "undeliverable",
        }
    }

    /// Reads a stored spelling back; `None` for a corrupt row.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => ReminderStatus::Pending,
            "done" => ReminderStatus::Done,
            "cancelled" => ReminderStatus::Cancelled,
            "undeliverable" => ReminderStatus::Undeliverable,
            _ => return None,
        })
    }
}

/// A reminder about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReminder {
    pub user_id: UserId,
    /// The memory (type `reminder`) that makes it searchable.
    pub memory_id: Option<MemoryId>,
    pub what: String,
    /// The local time of day each occurrence keeps.
    pub time: NaiveTime,
    pub repeat: Option<Repeat>,
    /// The IANA zone its times are read in (the user's at the time it was taken).
    pub timezone: String,
    /// The first occurrence.
    pub next_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// A stored reminder.
#[derive(Debug, Clone, PartialEq)]
pub struct Reminder {
    pub id: ReminderId,
    pub user_id: UserId,
    pub memory_id: Option<MemoryId>,
    pub what: String,
    pub time: NaiveTime,
    pub repeat: Option<Repeat>,
    pub timezone: String,
    /// The pending occurrence (the last one once it is no longer pending).
    pub next_at: DateTime<Utc>,
    pub status: ReminderStatus,
    /// When an occurrence was last sent; "snooze" works for a while after it.
    pub last_fired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The state of a reminder after something happened to it, written at once.
#[derive(Debug, Clone, PartialEq)]
pub struct ReminderUpdate {
    pub status: ReminderStatus,
    pub next_at: DateTime<Utc>,
    pub last_fired_at: Option<DateTime<Utc>>,
    /// Something to tell the user the next time they write (an occurrence dropped or
    /// undeliverable), appended to what is already waiting; `None` adds nothing.
    pub notice: Option<String>,
}

/// Reminders, inside one transaction (see [`super::UnitOfWork`]).
///
/// # Errors
/// Every method fails with [`RepositoryError`]; the caller aborts the whole unit.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ReminderTransaction: Send {
    /// Stores a reminder; its first occurrence's job is queued by the caller in the same
    /// transaction.
    async fn insert_reminder(&mut self, reminder: NewReminder) -> Result<ReminderId, RepositoryError>;

    /// One reminder, whoever it belongs to (the caller checks).
    async fn find_reminder(&mut self, id: ReminderId) -> Result<Option<Reminder>, RepositoryError>;

    /// The user's pending reminders, soonest first (the numbering of `/reminders`).
    async fn pending_reminders(&mut self, user: UserId, limit: u32) -> Result<Vec<Reminder>, RepositoryError>;

    /// Writes what happened to a reminder; `false` when there is no such reminder.
    async fn update_reminder(&mut self, id: ReminderId, update: ReminderUpdate) -> Result<bool, RepositoryError>;

    /// The user's reminder sent most recently at or after `since`, for "snooze".
    async fn recently_fired_reminder(
        &mut self,
        user: UserId,
        since: DateTime<Utc>,
    ) -> Result<Option<Reminder>, RepositoryError>;

    /// Takes the notices waiting for the user (and clears them), oldest first.
    async fn take_reminder_notices(&mut self, user: UserId) -> Result<Vec<String>, RepositoryError>;

    /// When the user last wrote to us: WhatsApp delivers free-form messages only within
    /// 24 hours of it.
    async fn last_inbound_at(&mut self, user: UserId) -> Result<Option<DateTime<Utc>>, RepositoryError>;
}
