//! Reminders through the REST API: create one (an ISO 8601 `at` or a `when` in words,
//! optionally repeating), list a user's upcoming ones, read and cancel one. The same
//! storage and delivery as reminders taken in the chat (see [`super::reminders`]).

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;

use super::memories::{wa_id, ApiError};
use super::outbox::Outbox;
use super::reminders::{self, ReminderSettings, LIST_LIMIT};
use crate::domain::ports::{transact, Clock, ReadModel, Reminder, ReminderId, Repository};
use crate::domain::reminder::{parse_when, ReminderContext, Repeat, Schedule};

/// The longest "what" taken, as in the chat.
const MAX_TEXT_CHARS: usize = 1000;

/// A reminder asked for through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderInput {
    pub text: String,
    /// ISO 8601 with an offset, e.g. `2026-12-12T09:00:00+01:00`.
    pub at: Option<String>,
    /// In words, as in the chat: `tomorrow at 9`, `every monday at 8`.
    pub when: Option<String>,
    /// With `at`: `daily`, `weekly` or `monthly`.
    pub repeat: Option<String>,
}

/// The reminder use cases of the REST API.
pub struct ReminderService {
    repository: Arc<dyn Repository>,
    reads: Arc<dyn ReadModel>,
    clock: Arc<dyn Clock>,
    default_timezone: Tz,
    settings: ReminderSettings,
    outbox: Outbox,
}

impl ReminderService {
    /// Wires the use cases.
    pub fn new(
        repository: Arc<dyn Repository>,
        reads: Arc<dyn ReadModel>,
        clock: Arc<dyn Clock>,
        default_timezone: Tz,
        settings: ReminderSettings,
        outbox: Outbox,
    ) -> Self {
        Self { repository, reads, clock, default_timezone, settings, outbox }
    }

    /// Takes a reminder for the user (created if they have never written).
    ///
    /// # Errors
    /// [`ApiError::Invalid`] for a time not understood, in the past, or a bad field.
    pub async fn create(&self, user_id: &str, input: ReminderInput) -> Result<Reminder, ApiError> {
        let wa_id = wa_id(user_id)?;
        let text = input.text.trim().to_string();
        if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
            return Err(ApiError::Invalid(format!("`text` must have 1 to {MAX_TEXT_CHARS} characters")));
        }
        let now = self.clock.now();
        let known = self.reads.find_user(&wa_id).await?;
        let zone = known.as_ref().map_or(self.default_timezone, |u| u.zone_or(self.default_timezone));
        let schedule = self.schedule(&input, zone, now)?;
        let outbox = self.outbox;
        let reminder = transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let user = tx.find_or_create_user(&wa_id, &format!("+{wa_id}"), None, now).await?;
                let id = reminders::create(tx, &user, None, &text, &schedule, zone, now, outbox).await?;
                tx.find_reminder(id).await
            })
        })
        .await?;
        reminder.ok_or(ApiError::Internal)
    }

    /// When the input asks for the reminder to fire.
    fn schedule(&self, input: &ReminderInput, zone: Tz, now: DateTime<Utc>) -> Result<Schedule, ApiError> {
        match (&input.at, &input.when) {
            (Some(at), None) => {
                let at = DateTime::<FixedOffset>::parse_from_rfc3339(at.trim()).map_err(|_| {
                    ApiError::Invalid(format!(
                        "`at` {at:?} is not ISO 8601 with an offset, e.g. 2026-12-12T09:00:00+01:00"
                    ))
                })?;
                let first = at.with_timezone(&Utc);
                if first <= now {
                    return Err(ApiError::Invalid("`at` has already passed".into()));
                }
                let local = first.with_timezone(&zone);
                let time = NaiveTime::from_hms_opt(local.hour(), local.minute(), 0).unwrap_or_default();
                let repeat = match &input.repeat {
                    None => None,
                    Some(word) => Some(Repeat::from_word(word, local.date_naive()).ok_or_else(|| {
                        ApiError::Invalid(format!("`repeat` {word:?} is not daily, weekly or monthly"))
                    })?),
                };
                Ok(Schedule { first, time, repeat })
            }
            (None, Some(when)) if input.repeat.is_none() => {
                let context = ReminderContext { now, tz: zone, default_time: self.settings.default_time };
                parse_when(when, &context).map_err(|error| ApiError::Invalid(format!("`when`: {error}")))
            }
            (None, Some(_)) => {
                Err(ApiError::Invalid("with `when`, say the repeat in it (\"every monday at 8\")".into()))
            }
            _ => Err(ApiError::Invalid("give exactly one of `at` and `when`".into())),
        }
    }

    /// The user's upcoming reminders, soonest first (none for a user never seen).
    ///
    /// # Errors
    /// [`ApiError`] when the user id is malformed or the database fails.
    pub async fn list(&self, user_id: &str) -> Result<Vec<Reminder>, ApiError> {
        let Some(user) = self.reads.find_user(&wa_id(user_id)?).await? else {
            return Ok(Vec::new());
        };
        Ok(transact(&*self.repository, move |tx| Box::pin(tx.pending_reminders(user.id, LIST_LIMIT))).await?)
    }

    /// One reminder.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] when there is none with this id.
    pub async fn get(&self, id: i64) -> Result<Reminder, ApiError> {
        let found = transact(&*self.repository, move |tx| Box::pin(tx.find_reminder(ReminderId(id)))).await?;
        found.ok_or_else(|| ApiError::NotFound(format!("there is no reminder {id}")))
    }

    /// Cancels a reminder (one no longer pending stays as it is).
    ///
    /// # Errors
    /// [`ApiError::NotFound`] when there is none with this id.
    pub async fn cancel(&self, id: i64) -> Result<(), ApiError> {
        let found = transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let Some(reminder) = tx.find_reminder(ReminderId(id)).await? else { return Ok(false) };
                reminders::cancel(tx, &reminder).await?;
                Ok(true)
            })
        })
        .await?;
        found.then_some(()).ok_or_else(|| ApiError::NotFound(format!("there is no reminder {id}")))
    }
}
