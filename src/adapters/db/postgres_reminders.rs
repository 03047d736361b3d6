//! Reminders on PostgreSQL, inside the unit of work's transaction (see `postgres_transaction`).

use async_trait::async_trait;
use chrono::{DateTime, NaiveTime, Utc};
use sea_orm::QueryResult;

use super::postgres_transaction::{get, PostgresTransaction};
use crate::domain::model::{MemoryId, UserId};
use crate::domain::ports::{
    NewReminder, Reminder, ReminderId, ReminderStatus, ReminderTransaction, ReminderUpdate, RepositoryError,
};
use crate::domain::reminder::Repeat;

const COLUMNS: &str =
    "id, user_id, memory_id, what, time_of_day, repeat, timezone, next_at, status, last_fired_at, created_at";

fn corrupt(what: &str) -> RepositoryError {
    RepositoryError::Internal(format!("a corrupt reminder row: {what}"))
}

fn reminder_from_row(row: &QueryResult) -> Result<Reminder, RepositoryError> {
    let time: String = get(row, "time_of_day")?;
    let repeat: Option<String> = get(row, "repeat")?;
    let status: String = get(row, "status")?;
    Ok(Reminder {
        id: ReminderId(get(row, "id")?),
        user_id: UserId(get(row, "user_id")?),
        memory_id: get::<Option<i64>>(row, "memory_id")?.map(MemoryId),
        what: get(row, "what")?,
        time: NaiveTime::parse_from_str(&time, "%H:%M").map_err(|_| corrupt("time of day"))?,
        repeat: match repeat {
            None => None,
            Some(text) => Some(Repeat::from_stored(&text).ok_or_else(|| corrupt("repeat"))?),
        },
        timezone: get(row, "timezone")?,
        next_at: get(row, "next_at")?,
        status: ReminderStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        last_fired_at: get(row, "last_fired_at")?,
        created_at: get(row, "created_at")?,
    })
}

#[async_trait]
impl ReminderTransaction for PostgresTransaction<'_> {
    async fn insert_reminder(&mut self, reminder: NewReminder) -> Result<ReminderId, RepositoryError> {
        let row = self
            .one(
                "INSERT INTO reminders (user_id, memory_id, what, time_of_day, repeat, timezone, next_at, status, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) RETURNING id",
                vec![
                    reminder.user_id.0.into(),
                    reminder.memory_id.map(|m| m.0).into(),
                    reminder.what.into(),
                    reminder.time.format("%H:%M").to_string().into(),
                    reminder.repeat.map(Repeat::to_stored).into(),
                    reminder.timezone.into(),
                    reminder.next_at.into(),
                    reminder.created_at.into(),
                ],
            )
            .await?
            .ok_or_else(|| RepositoryError::Internal("inserting a reminder returned no id".into()))?;
        Ok(ReminderId(get(&row, "id")?))
    }

    async fn find_reminder(&mut self, id: ReminderId) -> Result<Option<Reminder>, RepositoryError> {
        let row = self.one(&format!("SELECT {COLUMNS} FROM reminders WHERE id = $1"), vec![id.0.into()]).await?;
        row.as_ref().map(reminder_from_row).transpose()
    }

    async fn pending_reminders(&mut self, user: UserId, limit: u32) -> Result<Vec<Reminder>, RepositoryError> {
        let rows = self
            .all(
                &format!(
                    "SELECT {COLUMNS} FROM reminders WHERE user_id = $1 AND status = 'pending' \
                     ORDER BY next_at, id LIMIT $2"
                ),
                vec![user.0.into(), i64::from(limit).into()],
            )
            .await?;
        rows.iter().map(reminder_from_row).collect()
    }

    async fn update_reminder(&mut self, id: ReminderId, update: ReminderUpdate) -> Result<bool, RepositoryError> {
        let changed = self
            .execute(
                "UPDATE reminders SET status = $2, next_at = $3, last_fired_at = $4, \
                 notice = CASE WHEN $5::text IS NULL THEN notice WHEN notice IS NULL THEN $5::text \
                 ELSE notice || chr(10) || $5::text END, updated_at = now() WHERE id = $1",
                vec![
                    id.0.into(),
                    update.status.as_str().into(),
                    update.next_at.into(),
                    update.last_fired_at.into(),
                    update.notice.into(),
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
        let row = self
            .one(
                &format!(
                    "SELECT {COLUMNS} FROM reminders WHERE user_id = $1 AND last_fired_at >= $2 \
                     ORDER BY last_fired_at DESC LIMIT 1"
                ),
                vec![user.0.into(), since.into()],
            )
            .await?;
        row.as_ref().map(reminder_from_row).transpose()
    }

    async fn take_reminder_notices(&mut self, user: UserId) -> Result<Vec<String>, RepositoryError> {
        let rows = self
            .all(
                "WITH taken AS (SELECT id, notice FROM reminders WHERE user_id = $1 AND notice IS NOT NULL FOR UPDATE) \
                 UPDATE reminders r SET notice = NULL FROM taken WHERE r.id = taken.id \
                 RETURNING taken.id AS id, taken.notice AS notice",
                vec![user.0.into()],
            )
            .await?;
        let mut notices = rows
            .iter()
            .map(|row| Ok((get::<i64>(row, "id")?, get::<String>(row, "notice")?)))
            .collect::<Result<Vec<_>, RepositoryError>>()?;
        notices.sort();
        Ok(notices.into_iter().map(|(_, notice)| notice).collect())
    }

    async fn last_inbound_at(&mut self, user: UserId) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        let row = self
            .one(
                "SELECT occurred_at FROM interactions WHERE user_id = $1 AND direction = 'inbound' \
                 ORDER BY occurred_at DESC LIMIT 1",
                vec![user.0.into()],
            )
            .await?;
        row.as_ref().map(|row| get(row, "occurred_at")).transpose()
    }
}
