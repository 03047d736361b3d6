//! Reminders on PostgreSQL, inside the unit of work's transaction (see
//! `postgres_transaction`); the SQL and the row mapping are shared with SQLite (see
//! `statements::reminders`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::postgres_transaction::PostgresTransaction;
use super::row::Row;
use super::statements::reminders::*;
use crate::domain::model::UserId;
use crate::domain::ports::{NewReminder, Reminder, ReminderId, ReminderTransaction, ReminderUpdate, RepositoryError};
use crate::domain::reminder::Repeat;

#[async_trait]
impl ReminderTransaction for PostgresTransaction<'_> {
    async fn insert_reminder(&mut self, reminder: NewReminder) -> Result<ReminderId, RepositoryError> {
        let row = self
            .returned(
                REMINDER_INSERT.postgres(),
                vec![
                    reminder.user_id.0.into(),
                    reminder.memory_id.map(|m| m.0).into(),
                    reminder.what.into(),
                    reminder.time.format(TIME_OF_DAY_FORMAT).to_string().into(),
                    reminder.repeat.map(Repeat::to_stored).into(),
                    reminder.timezone.into(),
                    reminder.next_at.into(),
                    reminder.created_at.into(),
                ],
            )
            .await?;
        row.value("id").map(ReminderId)
    }

    async fn find_reminder(&mut self, id: ReminderId) -> Result<Option<Reminder>, RepositoryError> {
        let row = self.one(REMINDER_BY_ID.postgres(), vec![id.0.into()]).await?;
        row.as_ref().map(reminder_from_row).transpose()
    }

    async fn pending_reminders(&mut self, user: UserId, limit: u32) -> Result<Vec<Reminder>, RepositoryError> {
        let rows = self.all(PENDING_REMINDERS.postgres(), vec![user.0.into(), i64::from(limit).into()]).await?;
        rows.iter().map(reminder_from_row).collect()
    }

    async fn update_reminder(&mut self, id: ReminderId, update: ReminderUpdate) -> Result<bool, RepositoryError> {
        let changed = self
            .execute(
                REMINDER_UPDATE.postgres(),
                vec![
                    id.0.into(),
                    update.status.as_str().into(),
                    update.next_at.into(),
                    update.last_fired_at.into(),
                    update.notice.into(),
                    Utc::now().into(),
                ],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn recently_fired_reminder(
        &mut self,
        user: UserId,
        since: DateTime<Utc>,
    ) -> Result<Option<Reminder>, RepositoryError> {
        let row = self.one(RECENTLY_FIRED_REMINDER.postgres(), vec![user.0.into(), since.into()]).await?;
        row.as_ref().map(reminder_from_row).transpose()
    }

    async fn take_reminder_notices(&mut self, user: UserId) -> Result<Vec<String>, RepositoryError> {
        let rows = self.all(REMINDER_NOTICES_TAKE_POSTGRES.postgres(), vec![user.0.into()]).await?;
        let mut notices = rows
            .iter()
            .map(|row| Ok((row.value::<i64>("id")?, row.value::<String>("notice")?)))
            .collect::<Result<Vec<_>, RepositoryError>>()?;
        // Oldest reminder first, as SQLite reads them.
        notices.sort();
        Ok(notices.into_iter().map(|(_, notice)| notice).collect())
    }

    async fn last_inbound_at(&mut self, user: UserId) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        let row = self.one(LAST_INBOUND_AT.postgres(), vec![user.0.into()]).await?;
        row.as_ref().map(|row| row.timestamp("occurred_at")).transpose()
    }
}
