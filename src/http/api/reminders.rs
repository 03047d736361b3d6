//! `/reminders`: take, list, read and cancel a user's reminders; delivered on WhatsApp
//! like the ones asked for in the chat.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::{Example, ParseResult};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::strict_json::optional_string;
use super::ApiTags;
use crate::app::reminder_api::ReminderInput;
use crate::domain::ports::{Reminder, ReminderStatus};
use crate::http::auth::ApiKeyAuth;
use crate::http::problem::{BodyErrorResponse, ErrorResponse};
use crate::http::AppState;

/// Where a reminder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ReminderState {
    /// Waiting for `next_at` (a repeating reminder stays pending).
    Pending,
    /// Sent (a one-off).
    Done,
    /// Cancelled.
    Cancelled,
    /// Could not be sent: outside WhatsApp's 24-hour window without a template, or too late.
    Undeliverable,
}

impl From<ReminderStatus> for ReminderState {
    fn from(status: ReminderStatus) -> Self {
        match status {
            ReminderStatus::Pending => ReminderState::Pending,
            ReminderStatus::Done => ReminderState::Done,
            ReminderStatus::Cancelled => ReminderState::Cancelled,
            ReminderStatus::Undeliverable => ReminderState::Undeliverable,
        }
    }
}

/// A reminder.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReminderRead {
    pub id: i64,
    /// What to be reminded of.
    pub text: String,
    /// The pending occurrence (the last one once it is no longer pending), UTC.
    pub next_at: DateTime<Utc>,
    /// The local time of day every occurrence keeps, `HH:MM`.
    pub local_time: String,
    /// The IANA zone its times are read in.
    pub timezone: String,
    /// How it repeats: `daily`, `weekly:mon`, `monthly:1`; absent for once.
    pub repeat: Option<String>,
    pub status: ReminderState,
    /// The memory (type `reminder`) that makes it searchable.
    pub memory_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl From<Reminder> for ReminderRead {
    fn from(reminder: Reminder) -> Self {
        Self {
            id: reminder.id.0,
            text: reminder.what,
            next_at: reminder.next_at,
            local_time: reminder.time.format("%H:%M").to_string(),
            timezone: reminder.timezone,
            repeat: reminder.repeat.map(|r| r.to_stored()),
            status: reminder.status.into(),
            memory_id: reminder.memory_id.map(|m| m.0),
            created_at: reminder.created_at,
        }
    }
}

/// A user's upcoming reminders.
#[derive(Debug, Clone, Object)]
pub struct ReminderList {
    /// Soonest first.
    pub reminders: Vec<ReminderRead>,
}

fn text_field(value: Option<serde_json::Value>) -> ParseResult<Option<String>> {
    optional_string("text", value)
}
fn at_field(value: Option<serde_json::Value>) -> ParseResult<Option<String>> {
    optional_string("at", value)
}
fn when_field(value: Option<serde_json::Value>) -> ParseResult<Option<String>> {
    optional_string("when", value)
}
fn repeat_field(value: Option<serde_json::Value>) -> ParseResult<Option<String>> {
    optional_string("repeat", value)
}

/// A reminder to take: `text` and exactly one of `at` (ISO 8601 with an offset) and
/// `when` (in words, read in the user's zone: `tomorrow at 9`, `every monday at 8`).
/// `repeat` (`daily`, `weekly`, `monthly`) goes with `at`.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct ReminderCreate {
    /// What to be reminded of.
    #[oai(validator(max_length = 1000), deserialize_with = "text_field")]
    pub text: Option<String>,
    /// When, ISO 8601 with an offset: `2026-12-12T09:00:00+01:00`.
    #[oai(validator(max_length = 64), deserialize_with = "at_field")]
    pub at: Option<String>,
    /// When, in words as in the chat: `tomorrow at 9`, `on 3 march`, `every day at 21:00`.
    #[oai(validator(max_length = 200), deserialize_with = "when_field")]
    pub when: Option<String>,
    /// With `at`: `daily`, `weekly` or `monthly`.
    #[oai(validator(max_length = 16), deserialize_with = "repeat_field")]
    pub repeat: Option<String>,
}

impl Example for ReminderCreate {
    fn example() -> Self {
        ReminderCreate { text: Some("call mom".into()), at: None, when: Some("friday at 9".into()), repeat: None }
    }
}

/// A reminder taken.
#[derive(ApiResponse)]
pub enum CreatedReminder {
    /// Taken; its first occurrence is queued.
    #[oai(status = 201)]
    Created(Json<ReminderRead>, #[oai(header = "Location")] String),
}

/// A reminder.
#[derive(ApiResponse)]
pub enum OneReminder {
    /// The reminder.
    #[oai(status = 200)]
    Ok(Json<ReminderRead>),
}

/// Reminders.
#[derive(ApiResponse)]
pub enum ListedReminders {
    /// Soonest first.
    #[oai(status = 200)]
    Ok(Json<ReminderList>),
}

/// A cancelled reminder.
#[derive(ApiResponse)]
pub enum CancelledReminder {
    /// Cancelled: it will not fire again.
    #[oai(status = 204)]
    Cancelled,
}

/// Reminder operations.
pub struct RemindersApi;

#[OpenApi(tag = "ApiTags::Reminders")]
impl RemindersApi {
    /// Take a reminder
    ///
    /// Takes a reminder for the user (created if they have never written), delivered on
    /// WhatsApp at its time, in the user's time zone: exactly as "remind me …" in the chat.
    /// Outside WhatsApp's 24-hour window it is sent as the configured template, or marked
    /// `undeliverable`.
    #[oai(path = "/reminders", method = "post", operation_id = "createReminder")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The user's WhatsApp id: `15551234567`, `+15551234567` or `whatsapp:+15551234567`.
        #[oai(validator(pattern = r"^(whatsapp:)?\+?[0-9]{6,15}$"))]
        user_id: Query<String>,
        body: Json<ReminderCreate>,
    ) -> Result<CreatedReminder, BodyErrorResponse> {
        let body = body.0;
        let input =
            ReminderInput { text: body.text.unwrap_or_default(), at: body.at, when: body.when, repeat: body.repeat };
        let reminder = state.reminders.create(&user_id.0, input).await?;
        let location = format!("/reminders/{}", reminder.id.0);
        Ok(CreatedReminder::Created(Json(reminder.into()), location))
    }

    /// List a user's reminders
    ///
    /// The upcoming ones (pending), soonest first, as `/reminders` in the chat numbers them.
    #[oai(path = "/reminders", method = "get", operation_id = "listReminders")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The user's WhatsApp id: `15551234567`, `+15551234567` or `whatsapp:+15551234567`.
        #[oai(validator(pattern = r"^(whatsapp:)?\+?[0-9]{6,15}$"))]
        user_id: Query<String>,
    ) -> Result<ListedReminders, ErrorResponse> {
        let reminders = state.reminders.list(&user_id.0).await?;
        Ok(ListedReminders::Ok(Json(ReminderList { reminders: reminders.into_iter().map(Into::into).collect() })))
    }

    /// Get a reminder
    ///
    /// One reminder by its id, whatever its status: its text, next (or last) occurrence,
    /// local time, zone and repeat.
    #[oai(path = "/reminders/:id", method = "get", operation_id = "getReminder")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The reminder's id.
        id: Path<i64>,
    ) -> Result<OneReminder, ErrorResponse> {
        Ok(OneReminder::Ok(Json(state.reminders.get(id.0).await?.into())))
    }

    /// Cancel a reminder
    ///
    /// It will not fire again; it stays listed by id with status `cancelled`.
    #[oai(path = "/reminders/:id", method = "delete", operation_id = "cancelReminder")]
    async fn cancel(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The reminder's id.
        id: Path<i64>,
    ) -> Result<CancelledReminder, ErrorResponse> {
        state.reminders.cancel(id.0).await?;
        Ok(CancelledReminder::Cancelled)
    }
}
