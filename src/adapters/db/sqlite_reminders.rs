//! Reminders on SQLite, inside the writer's transaction (see `sqlite_transaction`).

use async_trait::async_trait;
use chrono::{DateTime, NaiveTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use super::sqlite_connection::{map_sqlite_err, parse_timestamp, sqlite_timestamp};
use super::sqlite_transaction::SqliteTransaction;
use crate::domain::model::{MemoryId, UserId};
use crate::domain::ports::{
    NewReminder, Reminder, ReminderId, ReminderStatus, ReminderTransaction, ReminderUpdate, RepositoryError,
};
use crate::domain::reminder::Repeat;

const COLUMNS: &str =
    "id, user_id, memory_id, what, time_of_day, repeat, timezone, next_at, status, last_fired_at, created_at";

fn corrupt(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, what.to_string().into())
}

fn reminder_from_row(row: &Row<'_>) -> rusqlite::Result<Reminder> {
    let time: String = row.get(4)?;
    let repeat: Option<String> = row.get(5)?;
    let next_at: String = row.get(7)?;
    let status: String = row.get(8)?;
    let last_fired_at: Option<String> = row.get(9)?;
    let created_at: String = row.get(10)?;
    Ok(Reminder {
        id: ReminderId(row.get(0)?),
        user_id: UserId(row.get(1)?),
        memory_id: row.get::<_, Option<i64>>(2)?.map(MemoryId),
        what: row.get(3)?,
        time: NaiveTime::parse_from_str(&time, "%H:%M").map_err(|_| corrupt(4, "a reminder's time of day"))?,
        repeat: match repeat {
            None => None,
            Some(text) => Some(Repeat::from_stored(&text).ok_or_else(|| corrupt(5, "a reminder's repeat"))?),
        },
        timezone: row.get(6)?,
        next_at: parse_timestamp(&next_at)?,
        status: ReminderStatus::parse(&status).ok_or_else(|| corrupt(8, "a reminder's status"))?,
        last_fired_at: last_fired_at.as_deref().map(parse_timestamp).transpose()?,
        created_at: parse_timestamp(&created_at)?,
    })
}

#[async_trait]
impl ReminderTransaction for SqliteTransaction<'_> {
    async fn insert_reminder(&mut self, reminder: NewReminder) -> Result<ReminderId, RepositoryError> {
        self.connection
            .prepare_cached(
                "INSERT INTO reminders (user_id, memory_id, what, time_of_day, repeat, timezone, next_at, status, \
                 created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8) RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        reminder.user_id.0,
                        reminder.memory_id.map(|m| m.0),
                        reminder.what,
                        reminder.time.format("%H:%M").to_string(),
                        reminder.repeat.map(Repeat::to_stored),
                        reminder.timezone,
                        sqlite_timestamp(reminder.next_at),
                        sqlite_timestamp(reminder.created_at),
                    ],
                    |row| row.get(0),
                )
            })
            .map(ReminderId)
            .map_err(map_sqlite_err)
    }

    async fn find_reminder(&mut self, id: ReminderId) -> Result<Option<Reminder>, RepositoryError> {
        self.connection
            .prepare_cached(&format!("SELECT {COLUMNS} FROM reminders WHERE id = ?1"))
            .and_then(|mut s| s.query_row(params![id.0], reminder_from_row).optional())
            .map_err(map_sqlite_err)
    }

    async fn pending_reminders(&mut self, user: UserId, limit: u32) -> Result<Vec<Reminder>, RepositoryError> {
        self.connection
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM reminders WHERE user_id = ?1 AND status = 'pending' \
                 ORDER BY next_at, id LIMIT ?2"
            ))
            .and_then(|mut s| s.query_map(params![user.0, limit], reminder_from_row)?.collect())
            .map_err(map_sqlite_err)
    }

    async fn update_reminder(&mut self, id: ReminderId, update: ReminderUpdate) -> Result<bool, RepositoryError> {
        // A notice is appended to any still waiting, one per line.
        self.connection
            .prepare_cached(
                "UPDATE reminders SET status = ?2, next_at = ?3, last_fired_at = ?4, \
                 notice = CASE WHEN ?5 IS NULL THEN notice WHEN notice IS NULL THEN ?5 ELSE notice || char(10) || ?5 END, \
                 updated_at = ?6 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id.0,
                    update.status.as_str(),
                    sqlite_timestamp(update.next_at),
                    update.last_fired_at.map(sqlite_timestamp),
                    update.notice,
                    sqlite_timestamp(Utc::now()),
                ])
            })
            .map(|changed| changed > 0)
            .map_err(map_sqlite_err)
    }

    async fn recently_fired_reminder(
        &mut self,
        user: UserId,
        since: DateTime<Utc>,
    ) -> Result<Option<Reminder>, RepositoryError> {
        self.connection
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM reminders WHERE user_id = ?1 AND last_fired_at >= ?2 \
                 ORDER BY last_fired_at DESC LIMIT 1"
            ))
            .and_then(|mut s| s.query_row(params![user.0, sqlite_timestamp(since)], reminder_from_row).optional())
            .map_err(map_sqlite_err)
    }

    async fn take_reminder_notices(&mut self, user: UserId) -> Result<Vec<String>, RepositoryError> {
        // RETURNING shows the new (cleared) value, so read first; the writer's
        // transaction keeps the two together.
        let notices: Vec<String> = self
            .connection
            .prepare_cached("SELECT notice FROM reminders WHERE user_id = ?1 AND notice IS NOT NULL ORDER BY id")
            .and_then(|mut s| s.query_map(params![user.0], |row| row.get(0))?.collect())
            .map_err(map_sqlite_err)?;
        if !notices.is_empty() {
            self.connection
                .prepare_cached("UPDATE reminders SET notice = NULL WHERE user_id = ?1 AND notice IS NOT NULL")
                .and_then(|mut s| s.execute(params![user.0]))
                .map_err(map_sqlite_err)?;
        }
        Ok(notices)
    }

    async fn last_inbound_at(&mut self, user: UserId) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        let at: Option<String> = self
            .connection
            .prepare_cached(
                "SELECT occurred_at FROM interactions WHERE user_id = ?1 AND direction = 'inbound' \
                 ORDER BY occurred_at DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row(params![user.0], |row| row.get(0)).optional())
            .map_err(map_sqlite_err)?;
        at.as_deref().map(parse_timestamp).transpose().map_err(map_sqlite_err)
    }
}
