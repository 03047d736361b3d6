//! Reminders taken and managed from chat ("remind me …", `/reminders`, `/cancel 2`,
//! "snooze") and through the REST API. A reminder is stored with its memory (type
//! `reminder`, so search finds it) and the job of its first occurrence, in the caller's
//! transaction: it exists with its delivery queued, or not at all.

use chrono::{DateTime, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

use super::outbox::Outbox;
use crate::domain::model::{InteractionId, MemoryKind, User, UserId};
use crate::domain::ports::{
    JobPriority, JobTransaction, NewJob, NewMemory, NewReminder, Reminder, ReminderId, ReminderStatus, ReminderUpdate,
    RepositoryError, UnitOfWork,
};
use crate::domain::reminder::{
    confirmation, listing, local_when, parse_reminder, refusal, ReminderContext, ReminderLine, Schedule,
};
use crate::domain::reply::{echo, truncate_chars};

/// The job kind that delivers one occurrence of a reminder.
pub const REMINDER_JOB_KIND: &str = "reminder.fire";
/// Twilio asks to slow down now and then; an occurrence is worth several tries.
const REMINDER_MAX_ATTEMPTS: i32 = 8;
/// How many upcoming reminders `/reminders` shows (and `/cancel N` counts).
pub const LIST_LIMIT: u32 = 50;
/// The longest "what" kept: a reminder is one WhatsApp message.
const MAX_WHAT_CHARS: usize = 1000;

/// How reminders behave, from the configuration.
#[derive(Debug, Clone)]
pub struct ReminderSettings {
    /// The time a date alone means (`REMINDER_DEFAULT_TIME`).
    pub default_time: NaiveTime,
    /// Later than this, an occurrence says when it was due (`REMINDER_LATE_AFTER`).
    pub late_after: TimeDelta,
    /// Later than this, an occurrence is dropped and the user told (`REMINDER_MAX_LATE`).
    pub max_late: TimeDelta,
    /// How long after a reminder fires "snooze" applies to it.
    pub snooze_window: TimeDelta,
    /// The approved Content template for reminders outside WhatsApp's 24-hour window
    /// (`TWILIO_REMINDER_CONTENT_SID`); without it they are marked undeliverable.
    pub template_sid: Option<String>,
}

impl Default for ReminderSettings {
    fn default() -> Self {
        Self {
            default_time: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
            late_after: TimeDelta::minutes(10),
            max_late: TimeDelta::hours(24),
            snooze_window: TimeDelta::minutes(15),
            template_sid: None,
        }
    }
}

/// One occurrence to deliver: the payload of a [`REMINDER_JOB_KIND`] job. `user_id` lets
/// erasing a user drop their queued occurrences with their other jobs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Occurrence {
    pub reminder_id: i64,
    pub user_id: i64,
    /// E.164.
    pub to: String,
    pub due_at: DateTime<Utc>,
}

/// Queues the delivery of `occurrence` at its due time, inside the caller's transaction.
/// Claimed before background work, like a reply: someone is waiting for it.
///
/// # Errors
/// When the job cannot be written.
pub async fn queue_occurrence(
    tx: &mut (impl JobTransaction + ?Sized),
    occurrence: &Occurrence,
) -> Result<(), RepositoryError> {
    tx.enqueue_job(NewJob {
        kind: REMINDER_JOB_KIND.to_string(),
        payload: serde_json::to_value(occurrence).unwrap_or_default(),
        max_attempts: REMINDER_MAX_ATTEMPTS,
        due_at: occurrence.due_at,
        priority: JobPriority::Reply,
    })
    .await
}

/// What a chat message asks of reminders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReminderCommand {
    /// "remind me …" / `/remind …`: the words after it.
    Create(String),
    /// `/reminders`.
    List,
    /// `/reminders cancel N` or `/cancel N`: the argument as written.
    Cancel(String),
    /// "snooze [30m]".
    Snooze(TimeDelta),
}

/// Carries out a reminder command inside the message's transaction and says what it did.
///
/// # Errors
/// When the database fails; the whole message rolls back.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    tx: &mut dyn UnitOfWork,
    user: &User,
    inbound: InteractionId,
    command: ReminderCommand,
    zone: Tz,
    settings: &ReminderSettings,
    now: DateTime<Utc>,
    outbox: Outbox,
) -> Result<String, RepositoryError> {
    match command {
        ReminderCommand::Create(text) => {
            let context = ReminderContext { now, tz: zone, default_time: settings.default_time };
            match parse_reminder(&text, &context) {
                Err(error) => Ok(refusal(&error)),
                Ok(request) => {
                    let what = truncate_chars(&request.what, MAX_WHAT_CHARS);
                    create(tx, user, Some(inbound), &what, &request.schedule, zone, now, outbox).await?;
                    Ok(confirmation(&what, &request.schedule, zone, now))
                }
            }
        }
        ReminderCommand::List => {
            let pending = tx.pending_reminders(user.id, LIST_LIMIT).await?;
            let lines: Vec<ReminderLine> = pending
                .into_iter()
                .map(|r| ReminderLine { next_at: r.next_at, time: r.time, repeat: r.repeat, what: r.what })
                .collect();
            Ok(listing(&lines, zone, now))
        }
        ReminderCommand::Cancel(argument) => cancel_numbered(tx, user.id, &argument, zone, now).await,
        ReminderCommand::Snooze(delay) => snooze(tx, user, delay, zone, settings, now).await,
    }
}

/// Stores a reminder, its memory and its first occurrence's job, in `tx`.
///
/// # Errors
/// When the database fails.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    tx: &mut dyn UnitOfWork,
    user: &User,
    interaction: Option<InteractionId>,
    what: &str,
    schedule: &Schedule,
    zone: Tz,
    now: DateTime<Utc>,
    outbox: Outbox,
) -> Result<ReminderId, RepositoryError> {
    let memory = tx
        .save_memory(NewMemory {
            user_id: user.id,
            interaction_id: interaction,
            media_asset_id: None,
            kind: MemoryKind::Reminder,
            text: what.to_string(),
            labels: Vec::new(),
            created_at: now,
        })
        .await?;
    outbox.memory_saved(tx, memory, user.id, now).await?;
    let id = tx
        .insert_reminder(NewReminder {
            user_id: user.id,
            memory_id: Some(memory),
            what: what.to_string(),
            time: schedule.time,
            repeat: schedule.repeat,
            timezone: zone.name().to_string(),
            next_at: schedule.first,
            created_at: now,
        })
        .await?;
    let occurrence =
        Occurrence { reminder_id: id.0, user_id: user.id.0, to: user.phone_number.clone(), due_at: schedule.first };
    queue_occurrence(tx, &occurrence).await?;
    Ok(id)
}

/// Cancels a reminder: it stays (as cancelled) and its queued occurrence, when it comes
/// due, finds it cancelled and sends nothing. `false` when it was not pending.
///
/// # Errors
/// When the database fails.
pub async fn cancel(tx: &mut dyn UnitOfWork, reminder: &Reminder) -> Result<bool, RepositoryError> {
    if reminder.status != ReminderStatus::Pending {
        return Ok(false);
    }
    let update = ReminderUpdate {
        status: ReminderStatus::Cancelled,
        next_at: reminder.next_at,
        last_fired_at: reminder.last_fired_at,
        notice: None,
    };
    tx.update_reminder(reminder.id, update).await
}

/// `/cancel N`: N counts as `/reminders` numbers them.
async fn cancel_numbered(
    tx: &mut dyn UnitOfWork,
    user: UserId,
    argument: &str,
    zone: Tz,
    now: DateTime<Utc>,
) -> Result<String, RepositoryError> {
    let number = argument.trim().trim_start_matches('#').parse::<usize>().ok().filter(|n| *n >= 1);
    let Some(number) = number else {
        return Ok(format!(
            "Which reminder? Send /reminders to see them numbered, then e.g. /cancel 2 (not \"{}\").",
            echo(argument.trim())
        ));
    };
    let pending = tx.pending_reminders(user, LIST_LIMIT).await?;
    let Some(reminder) = pending.get(number - 1) else {
        return Ok(format!("There is no reminder {number}. Send /reminders to see them numbered."));
    };
    cancel(tx, reminder).await?;
    Ok(format!("⏰ Cancelled: {} (was {})", reminder.what, local_when(reminder.next_at, zone, now)))
}

/// "snooze": the reminder sent within the last few minutes comes again after `delay`,
/// as a one-off of its own (a recurring reminder keeps its schedule).
async fn snooze(
    tx: &mut dyn UnitOfWork,
    user: &User,
    delay: TimeDelta,
    zone: Tz,
    settings: &ReminderSettings,
    now: DateTime<Utc>,
) -> Result<String, RepositoryError> {
    let Some(fired) = tx.recently_fired_reminder(user.id, now - settings.snooze_window).await? else {
        return Ok(format!(
            "There is no reminder to snooze: snooze works for {} minutes after a reminder arrives.",
            settings.snooze_window.num_minutes()
        ));
    };
    // Snoozed once: a second "snooze" does not bring it back twice.
    let update = ReminderUpdate { status: fired.status, next_at: fired.next_at, last_fired_at: None, notice: None };
    tx.update_reminder(fired.id, update).await?;
    // Whole seconds: the stored instant and the job's must be the same.
    let at = (now + delay).with_nanosecond(0).unwrap_or(now + delay);
    let local = at.with_timezone(&zone).time();
    let id = tx
        .insert_reminder(NewReminder {
            user_id: user.id,
            memory_id: None,
            what: fired.what.clone(),
            time: NaiveTime::from_hms_opt(local.hour(), local.minute(), 0).unwrap_or(local),
            repeat: None,
            timezone: fired.timezone.clone(),
            next_at: at,
            created_at: now,
        })
        .await?;
    let occurrence = Occurrence { reminder_id: id.0, user_id: user.id.0, to: user.phone_number.clone(), due_at: at };
    queue_occurrence(tx, &occurrence).await?;
    Ok(format!("⏰ Snoozed until {}: {}", local_when(at, zone, now), fired.what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::MemoryId;
    use crate::domain::ports::MockUnitOfWork;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 9, 9, 0, 0).unwrap() // Wed 10:00 in Berlin
    }

    fn user() -> User {
        User {
            id: UserId(7),
            wa_id: "15551234567".into(),
            phone_number: "+15551234567".into(),
            display_name: None,
            timezone: Some(chrono_tz::Europe::Berlin),
        }
    }

    async fn run(tx: &mut MockUnitOfWork, command: ReminderCommand) -> String {
        let settings = ReminderSettings::default();
        handle(tx, &user(), InteractionId(100), command, chrono_tz::Europe::Berlin, &settings, now(), Outbox::NONE)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_reminder_is_stored_with_its_memory_and_first_occurrence_in_the_same_transaction() {
        let mut tx = MockUnitOfWork::new();
        tx.expect_save_memory()
            .withf(|m| {
                m.kind == MemoryKind::Reminder && m.text == "call mom" && m.interaction_id == Some(InteractionId(100))
            })
            .times(1)
            .returning(|_| Ok(MemoryId(3)));
        let due = Utc.with_ymd_and_hms(2026, 12, 10, 8, 0, 0).unwrap();
        tx.expect_insert_reminder()
            .withf(move |r| {
                r.memory_id == Some(MemoryId(3))
                    && r.next_at == due
                    && r.timezone == "Europe/Berlin"
                    && r.repeat.is_none()
            })
            .times(1)
            .returning(|_| Ok(ReminderId(5)));
        tx.expect_enqueue_job()
            .withf(move |job| {
                job.kind == REMINDER_JOB_KIND
                    && job.due_at == due
                    && job.priority == JobPriority::Reply
                    && job.payload["reminder_id"] == 5
                    && job.payload["user_id"] == 7
                    && job.payload["to"] == "+15551234567"
            })
            .times(1)
            .returning(|_| Ok(()));
        let reply = run(&mut tx, ReminderCommand::Create("tomorrow at 9 to call mom".into())).await;
        assert_eq!(reply, "⏰ I'll remind you Thu 10 Dec 09:00: call mom");
    }

    #[tokio::test]
    async fn a_request_not_understood_stores_nothing() {
        // No expectations: any write would panic.
        let mut tx = MockUnitOfWork::new();
        let reply = run(&mut tx, ReminderCommand::Create("whenever to call mom".into())).await;
        assert!(reply.starts_with("⏰ I couldn't tell when to remind you"), "{reply}");
    }

    fn stored(id: i64, what: &str, next_at: DateTime<Utc>, last_fired_at: Option<DateTime<Utc>>) -> Reminder {
        Reminder {
            id: ReminderId(id),
            user_id: UserId(7),
            memory_id: None,
            what: what.into(),
            time: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            repeat: None,
            timezone: "Europe/Berlin".into(),
            next_at,
            status: ReminderStatus::Pending,
            last_fired_at,
            created_at: now(),
        }
    }

    #[tokio::test]
    async fn cancel_n_cancels_the_nth_upcoming_reminder() {
        let mut tx = MockUnitOfWork::new();
        let (first, second) = (now() + TimeDelta::hours(1), now() + TimeDelta::hours(2));
        tx.expect_pending_reminders()
            .returning(move |_, _| Ok(vec![stored(1, "a", first, None), stored(2, "b", second, None)]));
        tx.expect_update_reminder()
            .withf(|id, update| *id == ReminderId(2) && update.status == ReminderStatus::Cancelled)
            .times(1)
            .returning(|_, _| Ok(true));
        assert_eq!(run(&mut tx, ReminderCommand::Cancel("2".into())).await, "⏰ Cancelled: b (was Wed 9 Dec 12:00)");
        assert!(run(&mut tx, ReminderCommand::Cancel("3".into())).await.contains("There is no reminder 3"));
        assert!(run(&mut tx, ReminderCommand::Cancel("two".into())).await.contains("/cancel 2"));
    }

    #[tokio::test]
    async fn snooze_brings_the_reminder_just_sent_back_once() {
        let mut tx = MockUnitOfWork::new();
        let fired = now() - TimeDelta::minutes(5);
        tx.expect_recently_fired_reminder()
            .withf(move |_, since| *since == now() - TimeDelta::minutes(15))
            .returning(move |_, _| Ok(Some(stored(4, "stretch", fired, Some(fired)))));
        tx.expect_update_reminder()
            .withf(|id, update| *id == ReminderId(4) && update.last_fired_at.is_none())
            .times(1)
            .returning(|_, _| Ok(true));
        let at = now() + TimeDelta::minutes(30);
        tx.expect_insert_reminder()
            .withf(move |r| r.next_at == at && r.what == "stretch" && r.repeat.is_none())
            .times(1)
            .returning(|_| Ok(ReminderId(9)));
        tx.expect_enqueue_job().withf(move |job| job.due_at == at).times(1).returning(|_| Ok(()));
        let reply = run(&mut tx, ReminderCommand::Snooze(TimeDelta::minutes(30))).await;
        assert_eq!(reply, "⏰ Snoozed until Wed 9 Dec 10:30: stretch");
    }
}
