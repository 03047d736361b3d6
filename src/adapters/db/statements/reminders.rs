//! Reminders (`reminders`): the statements of
//! [`ReminderTransaction`](crate::domain::ports::ReminderTransaction) and the row of a
//! reminder.

use chrono::NaiveTime;

use super::Sql;
use crate::adapters::db::row::Row;
use crate::domain::model::{MemoryId, UserId};
use crate::domain::ports::{Reminder, ReminderId, ReminderStatus, RepositoryError};
use crate::domain::reminder::Repeat;

/// How a reminder's time of day is stored: `HH:MM` text, the same on both engines.
pub(crate) const TIME_OF_DAY_FORMAT: &str = "%H:%M";

/// The columns [`reminder_from_row`] reads, as a literal for `concat!`.
macro_rules! reminder_columns {
    () => {
        "id, user_id, memory_id, what, time_of_day, repeat, timezone, next_at, status, last_fired_at, created_at"
    };
}

fn corrupt(what: &str) -> RepositoryError {
    RepositoryError::Internal(format!("a corrupt reminder row: {what}"))
}

/// A reminder in [`REMINDER_BY_ID`]'s columns. A stored value the domain cannot read
/// (time, repeat, status) is an error someone must see, not a default.
///
/// # Errors
/// When a column is missing, of the wrong type, or holds such a value.
pub(crate) fn reminder_from_row(row: &impl Row) -> Result<Reminder, RepositoryError> {
    let time: String = row.value("time_of_day")?;
    let repeat: Option<String> = row.value("repeat")?;
    let status: String = row.value("status")?;
    Ok(Reminder {
        id: ReminderId(row.value("id")?),
        user_id: UserId(row.value("user_id")?),
        memory_id: row.value::<Option<i64>>("memory_id")?.map(MemoryId),
        what: row.value("what")?,
        time: NaiveTime::parse_from_str(&time, TIME_OF_DAY_FORMAT).map_err(|_| corrupt("time of day"))?,
        repeat: match repeat {
            None => None,
            Some(text) => Some(Repeat::from_stored(&text).ok_or_else(|| corrupt("repeat"))?),
        },
        timezone: row.value("timezone")?,
        next_at: row.timestamp("next_at")?,
        status: ReminderStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        last_fired_at: row.optional_timestamp("last_fired_at")?,
        created_at: row.timestamp("created_at")?,
    })
}

/// Stores a pending reminder and returns its id: `$1` user, `$2` memory, `$3` what,
/// `$4` time of day, `$5` repeat, `$6` time zone, `$7` first occurrence, `$8` now.
pub(crate) static REMINDER_INSERT: Sql = Sql::new(
    "INSERT INTO reminders (user_id, memory_id, what, time_of_day, repeat, timezone, next_at, status, \
     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) RETURNING id",
);

/// A reminder by id (`$1`).
pub(crate) static REMINDER_BY_ID: Sql =
    Sql::new(concat!("SELECT ", reminder_columns!(), " FROM reminders WHERE id = $1"));

/// A user's (`$1`) pending reminders, soonest first, at most `$2`.
pub(crate) static PENDING_REMINDERS: Sql = Sql::new(concat!(
    "SELECT ",
    reminder_columns!(),
    " FROM reminders WHERE user_id = $1 AND status = 'pending' ORDER BY next_at, id LIMIT $2"
));

/// Moves a reminder (`$1`) on: `$2` status, `$3` next occurrence, `$4` last fired, `$6`
/// now; a notice (`$5`) is appended to any still waiting, one per line (the literal
/// holds a newline character, which both engines take as it is).
pub(crate) static REMINDER_UPDATE: Sql = Sql::new(
    "UPDATE reminders SET status = $2, next_at = $3, last_fired_at = $4, \
     notice = CASE WHEN $5::text IS NULL THEN notice WHEN notice IS NULL THEN $5::text \
     ELSE notice || '\n' || $5::text END, updated_at = $6 WHERE id = $1",
);

/// A user's (`$1`) reminder fired at or after `$2`, the latest: what "snooze" refers to.
pub(crate) static RECENTLY_FIRED_REMINDER: Sql = Sql::new(concat!(
    "SELECT ",
    reminder_columns!(),
    " FROM reminders WHERE user_id = $1 AND last_fired_at >= $2 ORDER BY last_fired_at DESC LIMIT 1"
));

/// SQLite: a user's (`$1`) waiting notices, oldest reminder first, as `notice`; then
/// [`REMINDER_NOTICES_CLEAR`] in the same transaction. SQLite's RETURNING shows only
/// the new (cleared) value and cannot name the rows of a WITH, so it reads first; its one
/// writer keeps the two together.
pub(crate) static REMINDER_NOTICES: Sql =
    Sql::new("SELECT notice FROM reminders WHERE user_id = $1 AND notice IS NOT NULL ORDER BY id");

/// SQLite: clears a user's (`$1`) notices read by [`REMINDER_NOTICES`].
pub(crate) static REMINDER_NOTICES_CLEAR: Sql =
    Sql::new("UPDATE reminders SET notice = NULL WHERE user_id = $1 AND notice IS NOT NULL");

/// PostgreSQL: takes a user's (`$1`) notices in one statement, as `id` and `notice` in no
/// particular order. The row locks make a second server taking them at once wait and
/// then find none, so each notice is delivered once.
pub(crate) static REMINDER_NOTICES_TAKE_POSTGRES: Sql = Sql::new(
    "WITH taken AS (SELECT id, notice FROM reminders WHERE user_id = $1 AND notice IS NOT NULL FOR UPDATE) \
     UPDATE reminders r SET notice = NULL FROM taken WHERE r.id = taken.id \
     RETURNING taken.id AS id, taken.notice AS notice",
);

/// When a user (`$1`) last wrote, as `occurred_at`.
pub(crate) static LAST_INBOUND_AT: Sql = Sql::new(
    "SELECT occurred_at FROM interactions WHERE user_id = $1 AND direction = 'inbound' \
     ORDER BY occurred_at DESC LIMIT 1",
);
