//! Reminders on SQLite, inside the writer's transaction (see `sqlite_transaction`); the
//! SQL and the row mapping are shared with PostgreSQL (see `statements::reminders`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::row::Row as _;
use super::sqlite_connection::sqlite_timestamp;
use super::sqlite_transaction::SqliteTransaction;
use super::statements::reminders::*;
use crate::domain::model::UserId;
use crate::domain::ports::{NewReminder, Reminder, ReminderId, ReminderTransaction, ReminderUpdate, RepositoryError};
use crate::domain::reminder::Repeat;

#[async_trait]
impl ReminderTransaction for SqliteTransaction<'_> {
    async fn insert_reminder(&mut self, reminder: NewReminder) -> Result<ReminderId, RepositoryError> {
        self.returned(
            REMINDER_INSERT.sqlite(),
            params![
                reminder.user_id.0,
                reminder.memory_id.map(|m| m.0),
                reminder.what,
                reminder.time.format(TIME_OF_DAY_FORMAT).to_string(),
                reminder.repeat.map(Repeat::to_stored),
                reminder.timezone,
                sqlite_timestamp(reminder.next_at),
                sqlite_timestamp(reminder.created_at),
            ],
            |row| row.value("id").map(ReminderId),
        )
    }

    async fn find_reminder(&mut self, id: ReminderId) -> Result<Option<Reminder>, RepositoryError> {
        self.one(REMINDER_BY_ID.sqlite(), params![id.0], |row| reminder_from_row(row))
    }

    async fn pending_reminders(&mut self, user: UserId, limit: u32) -> Result<Vec<Reminder>, RepositoryError> {
        self.all(PENDING_REMINDERS.sqlite(), params![user.0, limit], |row| reminder_from_row(row))
    }

    async fn update_reminder(&mut self, id: ReminderId, update: ReminderUpdate) -> Result<bool, RepositoryError> {
        self.execute(
            REMINDER_UPDATE.sqlite(),
            params![
                id.0,
                update.status.as_str(),
                sqlite_timestamp(update.next_at),
                update.last_fired_at.map(sqlite_timestamp),
                update.notice,
                sqlite_timestamp(Utc::now()),
            ],
        )
        .map(|changed| changed > 0)
    }

    async fn recently_fired_reminder(
        &mut self,
        user: UserId,
        since: DateTime<Utc>,
    ) -> Result<Option<Reminder>, RepositoryError> {
        self.one(RECENTLY_FIRED_REMINDER.sqlite(), params![user.0, sqlite_timestamp(since)], |row| {
            reminder_from_row(row)
        })
    }

    async fn take_reminder_notices(&mut self, user: UserId) -> Result<Vec<String>, RepositoryError> {
        let notices: Vec<String> = self.all(REMINDER_NOTICES.sqlite(), params![user.0], |row| row.value("notice"))?;
        if !notices.is_empty() {
            self.execute(REMINDER_NOTICES_CLEAR.sqlite(), params![user.0])?;
        }
        Ok(notices)
    }

    async fn last_inbound_at(&mut self, user: UserId) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        self.one(LAST_INBOUND_AT.sqlite(), params![user.0], |row| row.timestamp("occurred_at"))
    }
}
