//! Delivers reminder occurrences: a [`REMINDER_JOB_KIND`] job comes due, is claimed
//! under the queue's lease, sent through the `MessageSender`, and completed in ONE
//! transaction with the delivery record, the reminder's new state and (when it repeats)
//! the next occurrence's job. A retry first asks Twilio whether the earlier attempt was
//! accepted (as the reply outbox does), so an occurrence is delivered once.
//!
//! WhatsApp delivers free-form messages only within 24 hours of the user's last
//! message: outside it an occurrence is sent as the configured Content template, or
//! marked undeliverable and the user told the next time they write. Twilio's error
//! 63016 on a free-form send means the same.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::jobs::{JobError, JobHandler};
use super::reminders::{queue_occurrence, Occurrence, ReminderSettings, REMINDER_JOB_KIND};
use crate::domain::model::{Job, MaskedPhone, UserId};
use crate::domain::ports::{
    transact, Clock, Delivery, JobSettlement, MessageSender, Reminder, ReminderId, ReminderStatus, ReminderUpdate,
    Repository, SendError, SentMessage, OUTSIDE_WINDOW_ERROR,
};
use crate::domain::reminder::{local_when, next_occurrence, reminder_message};

/// WhatsApp's customer-service window.
const WINDOW: TimeDelta = TimeDelta::hours(24);

/// How an occurrence ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Accepted by Twilio (the body or template as sent).
    Sent { sent: SentMessage, body: String },
    /// Not sent: too late, outside the window without a template, refused.
    NotSent { notice: String, error: Option<(Option<i64>, String)> },
}

/// Runs [`REMINDER_JOB_KIND`] jobs.
pub struct ReminderDelivery {
    repository: Arc<dyn Repository>,
    /// `None` when Twilio is not configured: occurrences are marked undeliverable.
    sender: Option<Arc<dyn MessageSender>>,
    clock: Arc<dyn Clock>,
    settings: ReminderSettings,
}

impl ReminderDelivery {
    /// Wires the handler.
    pub fn new(
        repository: Arc<dyn Repository>,
        sender: Option<Arc<dyn MessageSender>>,
        clock: Arc<dyn Clock>,
        settings: ReminderSettings,
    ) -> Self {
        Self { repository, sender, clock, settings }
    }

    /// Sends the occurrence (or decides not to), saying how it ended.
    async fn deliver(
        &self,
        job: &Job,
        occurrence: &Occurrence,
        reminder: &Reminder,
        last_inbound: Option<DateTime<Utc>>,
    ) -> Result<Outcome, JobError> {
        let now = self.clock.now();
        let tz: Tz = reminder.timezone.parse().unwrap_or(chrono_tz::UTC);
        let due = local_when(occurrence.due_at, tz, now);
        let lateness = now - occurrence.due_at;
        if lateness > self.settings.max_late {
            tracing::warn!(reminder = reminder.id.0, %lateness, "a reminder too late to send was dropped");
            return Ok(not_sent(format!("⏰ I missed a reminder while I was offline (due {due}): {}", reminder.what)));
        }
        let Some(sender) = &self.sender else {
            tracing::warn!(to = %MaskedPhone(&occurrence.to), "Twilio is not configured; reminder not sent");
            return Ok(not_sent(format!("⏰ I could not send a reminder (due {due}): {}", reminder.what)));
        };
        let on_time = reminder_message(&reminder.what, None);
        let late_time = occurrence.due_at.with_timezone(&tz).format("%H:%M").to_string();
        let late = reminder_message(&reminder.what, Some(&late_time));
        let body = if lateness > self.settings.late_after { late.clone() } else { on_time.clone() };
        let in_window = last_inbound.is_some_and(|at| now - at < WINDOW);
        if in_window {
            if job.attempts > 1 {
                // An earlier attempt may have been accepted just before a crash; it sent
                // one of these two bodies (lateness may have crossed the line since).
                for earlier in [&on_time, &late] {
                    let found = sender.find_sent(&occurrence.to, earlier, occurrence.due_at).await.map_err(retry)?;
                    if let Some(sent) = found {
                        tracing::info!(sid = %sent.sid, "an earlier attempt was delivered; not sending again");
                        return Ok(Outcome::Sent { sent, body: earlier.clone() });
                    }
                }
            }
            match sender.send(&occurrence.to, &body).await {
                Ok(sent) => return Ok(Outcome::Sent { sent, body }),
                Err(SendError::Rejected { code: Some(OUTSIDE_WINDOW_ERROR), .. }) => {
                    tracing::info!("outside WhatsApp's 24-hour window (63016)");
                }
                Err(error @ SendError::Retryable { .. }) => return Err(retry(error)),
                Err(SendError::Rejected { code, message }) => {
                    let notice = format!("⏰ I could not send a reminder (due {due}): {}", reminder.what);
                    return Ok(Outcome::NotSent { notice, error: Some((code, message)) });
                }
            }
        }
        self.outside_window(sender.as_ref(), occurrence, reminder, &due).await
    }

    /// Outside the 24-hour window: the template, or undeliverable.
    async fn outside_window(
        &self,
        sender: &dyn MessageSender,
        occurrence: &Occurrence,
        reminder: &Reminder,
        due: &str,
    ) -> Result<Outcome, JobError> {
        let undeliverable = || {
            format!(
                "⏰ A reminder could not reach you (due {due}): {}. WhatsApp lets me write only within 24 hours \
                 of your last message.",
                reminder.what
            )
        };
        let Some(content_sid) = &self.settings.template_sid else {
            return Ok(not_sent(undeliverable()));
        };
        let variables = serde_json::json!({ "1": reminder.what, "2": due });
        match sender.send_template(&occurrence.to, content_sid, &variables).await {
            Ok(sent) => Ok(Outcome::Sent { sent, body: format!("[template {content_sid}] {variables}") }),
            Err(error @ SendError::Retryable { .. }) => Err(retry(error)),
            Err(SendError::Rejected { code, message }) => {
                Ok(Outcome::NotSent { notice: undeliverable(), error: Some((code, message)) })
            }
        }
    }

    /// Records how the occurrence ended, moves the reminder on (queuing the next
    /// occurrence of a recurring one) and marks the job done, in one transaction.
    async fn complete(
        &self,
        job: &Job,
        occurrence: Occurrence,
        reminder: Reminder,
        outcome: Outcome,
    ) -> Result<(), JobError> {
        let now = self.clock.now();
        let tz: Tz = reminder.timezone.parse().unwrap_or(chrono_tz::UTC);
        // The next occurrence after now: a server down for days does not replay them all.
        let next =
            reminder.repeat.and_then(|repeat| next_occurrence(repeat, reminder.time, occurrence.due_at.max(now), tz));
        let (delivery, update) = match outcome {
            Outcome::Sent { sent, body } => (
                Some(Delivery {
                    user_id: UserId(occurrence.user_id),
                    in_reply_to: None,
                    body,
                    twilio_sid: Some(sent.sid),
                    status: sent.status,
                    error_code: None,
                    error_message: None,
                    occurred_at: now,
                }),
                ReminderUpdate {
                    status: if next.is_some() { ReminderStatus::Pending } else { ReminderStatus::Done },
                    next_at: next.unwrap_or(occurrence.due_at),
                    last_fired_at: Some(now),
                    notice: None,
                },
            ),
            Outcome::NotSent { notice, error } => (
                error.map(|(code, message)| Delivery {
                    user_id: UserId(occurrence.user_id),
                    in_reply_to: None,
                    body: reminder_message(&reminder.what, None),
                    twilio_sid: None,
                    status: "failed".to_string(),
                    error_code: code,
                    error_message: Some(message),
                    occurred_at: now,
                }),
                ReminderUpdate {
                    status: if next.is_some() { ReminderStatus::Pending } else { ReminderStatus::Undeliverable },
                    next_at: next.unwrap_or(occurrence.due_at),
                    last_fired_at: reminder.last_fired_at,
                    notice: Some(notice),
                },
            ),
        };
        let next_occurrence = next.map(|due_at| Occurrence { due_at, ..occurrence.clone() });
        let (job_id, attempt, id) = (job.id, job.attempts, reminder.id);
        transact(&*self.repository, move |tx| {
            Box::pin(async move {
                if let Some(delivery) = delivery {
                    tx.record_delivery(delivery).await?;
                }
                tx.update_reminder(id, update).await?;
                if let Some(next) = &next_occurrence {
                    queue_occurrence(tx, next).await?;
                }
                tx.settle_job(job_id, attempt, JobSettlement::Done, now).await
            })
        })
        .await?;
        Ok(())
    }

    /// The reminder this job is for, if the job is still its pending occurrence (not
    /// cancelled, snoozed away or already handled), and when its user last wrote.
    async fn current(&self, occurrence: &Occurrence) -> Result<Option<(Reminder, Option<DateTime<Utc>>)>, JobError> {
        let (id, user, due_at) = (ReminderId(occurrence.reminder_id), UserId(occurrence.user_id), occurrence.due_at);
        let found = transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let Some(reminder) = tx.find_reminder(id).await? else { return Ok(None) };
                if reminder.status != ReminderStatus::Pending || !same_instant(reminder.next_at, due_at) {
                    return Ok(None);
                }
                let last_inbound = tx.last_inbound_at(user).await?;
                Ok(Some((reminder, last_inbound)))
            })
        })
        .await?;
        Ok(found)
    }
}

/// Whether a stored instant is the job's: databases keep microseconds, a job's JSON payload
/// whatever it was given.
fn same_instant(stored: DateTime<Utc>, due_at: DateTime<Utc>) -> bool {
    (stored - due_at).abs() < TimeDelta::milliseconds(1)
}

fn not_sent(notice: String) -> Outcome {
    Outcome::NotSent { notice, error: None }
}

fn retry(error: SendError) -> JobError {
    let retry_after = match &error {
        SendError::Retryable { retry_after, .. } => *retry_after,
        SendError::Rejected { .. } => None,
    };
    JobError::Retryable { message: error.to_string(), retry_after }
}

fn parse(job: &Job) -> Result<Occurrence, JobError> {
    serde_json::from_value(job.payload.clone())
        .map_err(|e| JobError::Permanent(format!("malformed {REMINDER_JOB_KIND} job: {e}")))
}

#[async_trait]
impl JobHandler for ReminderDelivery {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let occurrence = parse(job)?;
        let Some((reminder, last_inbound)) = self.current(&occurrence).await? else {
            tracing::info!(reminder = occurrence.reminder_id, "reminder cancelled or moved; nothing to send");
            return Ok(());
        };
        let outcome = self.deliver(job, &occurrence, &reminder, last_inbound).await?;
        self.complete(job, occurrence, reminder, outcome).await
    }

    /// Given up (Twilio kept failing): the user is told the next time they write, and a
    /// recurring reminder goes on with its next occurrence.
    async fn dead_lettered(&self, job: &Job, error: &str) {
        let Ok(occurrence) = parse(job) else { return };
        let (id, due_at) = (ReminderId(occurrence.reminder_id), occurrence.due_at);
        let now = self.clock.now();
        let result = transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let Some(reminder) = tx.find_reminder(id).await? else { return Ok(()) };
                if reminder.status != ReminderStatus::Pending || !same_instant(reminder.next_at, due_at) {
                    return Ok(());
                }
                let tz: Tz = reminder.timezone.parse().unwrap_or(chrono_tz::UTC);
                let next =
                    reminder.repeat.and_then(|repeat| next_occurrence(repeat, reminder.time, due_at.max(now), tz));
                let notice =
                    format!("⏰ I could not send a reminder (due {}): {}", local_when(due_at, tz, now), reminder.what);
                let update = ReminderUpdate {
                    status: if next.is_some() { ReminderStatus::Pending } else { ReminderStatus::Undeliverable },
                    next_at: next.unwrap_or(due_at),
                    last_fired_at: reminder.last_fired_at,
                    notice: Some(notice),
                };
                tx.update_reminder(id, update).await?;
                if let Some(due_at) = next {
                    queue_occurrence(tx, &Occurrence { due_at, ..occurrence }).await?;
                }
                Ok(())
            })
        })
        .await;
        if let Err(failure) = result {
            tracing::error!(%failure, %error, "could not record a reminder that was given up");
        }
    }
}
