//! What one message's transaction stores: the message, what it causes (a memory, media
//! jobs, a time zone, a reminder, an undo) and its reply, step by step through the
//! narrow transaction traits. (The common text from a known sender may have been stored
//! before, in one call: see `IngestService::save_text_at_once`.)

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{Change, Plan, WriteContext, MEDIA_JOB_KIND, MEDIA_JOB_MAX_ATTEMPTS};
use crate::app::notify::{queue_reply, QueuedReply};
use crate::app::outbox::Outbox;
use crate::domain::model::{Channel, InboundMessage, InteractionId, MemoryKind, User, UserId};
use crate::domain::ports::{
    InboundInsert, JobPriority, JobTransaction, NewJob, NewMemory, RepositoryError, UnitOfWork,
};
use crate::domain::reply::{echo, truncate_chars, MEMORY_SAVED};

/// Stores the message and what it causes; returns the reply and whether the message
/// was a redelivery of one already handled.
pub(super) async fn record_and_reply(
    tx: &mut dyn UnitOfWork,
    message: InboundMessage,
    plan: Plan,
    context: WriteContext,
) -> Result<(String, bool), RepositoryError> {
    let (now, pace) = (context.now, context.pace);
    let user = tx.find_or_create_user(&message.wa_id, &message.phone_number, message.profile_name.clone(), now).await?;
    let inbound = match tx.insert_inbound(user.id, &message).await? {
        InboundInsert::AlreadyHandled { reply, sender } if sender == user.id => {
            tracing::info!("redelivery of a message already handled; answering as before");
            return Ok((reply.unwrap_or_default(), true));
        }
        InboundInsert::AlreadyHandled { .. } => {
            // Never another sender's reply; the transaction rolls back, so nothing of
            // this delivery (not even its sender) is stored.
            tracing::warn!("a MessageSid already stored for another sender; refused");
            return Err(RepositoryError::Conflict(format!(
                "MessageSid {} belongs to another sender's message",
                message.sid.0
            )));
        }
        InboundInsert::New(id) => id,
    };
    if let Some(name) = message.profile_name.as_deref() {
        if user.display_name.as_deref() != Some(name) {
            tx.update_display_name(user.id, name, now).await?;
        }
    }
    let reply = match plan {
        Plan::Answer(reply) => reply,
        Plan::QueueMedia => queue_media(tx, &user, inbound, &message, pace.due).await?,
        Plan::Write(Change::Reminder(command)) => {
            let zone = user.zone_or(context.zone);
            crate::app::reminders::handle(tx, &user, inbound, command, zone, &context.reminders, now, context.outbox)
                .await?
        }
        Plan::Write(change) => write(tx, &user, inbound, &message, change, now, pace.due, context.outbox).await?,
    };
    let reply = with_pace_notice(reply, pace.notice);
    // What happened to reminders meanwhile (dropped, undeliverable) rides on the next
    // reply; media answers later, so it waits for a text.
    let reply = if reply.is_empty() { reply } else { with_reminder_notices(tx, &user, reply).await? };
    tx.record_reply(user.id, inbound, &reply, now).await?;
    queue_channel_reply(tx, &message, user.id, inbound, &reply, now).await?;
    Ok((reply, false))
}

/// `reply` with the notice that the sender is over their rate, if they are.
pub(super) fn with_pace_notice(reply: String, notice: Option<&'static str>) -> String {
    match notice {
        None => reply,
        Some(notice) if reply.is_empty() => notice.to_string(),
        Some(notice) => format!("{reply}\n\n{notice}"),
    }
}

/// Meta's webhook takes no reply in its answer: the reply leaves through the outbox,
/// committed with the message, so a redelivery cannot send it twice. Twilio's reply
/// is the webhook's answer, so nothing is queued for it.
async fn queue_channel_reply(
    tx: &mut (impl JobTransaction + ?Sized),
    message: &InboundMessage,
    user: UserId,
    inbound: InteractionId,
    reply: &str,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    if message.channel != Channel::Meta || reply.is_empty() {
        return Ok(());
    }
    let queued = QueuedReply {
        user_id: user.0,
        to: message.phone_number.clone(),
        body: reply.to_string(),
        in_reply_to: Some(inbound.0),
        channel: Channel::Meta,
    };
    queue_reply(tx, queued, now).await
}

/// `reply` followed by the notices about reminders waiting for the user, if any.
async fn with_reminder_notices(tx: &mut dyn UnitOfWork, user: &User, reply: String) -> Result<String, RepositoryError> {
    let notices = tx.take_reminder_notices(user.id).await?;
    Ok(if notices.is_empty() { reply } else { format!("{reply}\n\n{}", notices.join("\n")) })
}

/// Media is fetched off the request path, one job per item, due at `due`; the user hears
/// back when it is saved, so the webhook answers with no message now.
async fn queue_media(
    tx: &mut (impl JobTransaction + ?Sized),
    user: &User,
    inbound: InteractionId,
    message: &InboundMessage,
    due: DateTime<Utc>,
) -> Result<String, RepositoryError> {
    for (index, item) in message.media.iter().enumerate() {
        tx.enqueue_job(NewJob {
            kind: MEDIA_JOB_KIND.to_string(),
            payload: serde_json::json!({
                "user_id": user.id.0,
                "interaction_id": inbound.0,
                "index": index,
                "url": item.url,
                "content_type": item.content_type,
                "caption": message.body,
                "phone": message.phone_number,
                "channel": message.channel,
                "timezone": user.timezone.map(|zone| zone.name()),
            }),
            max_attempts: MEDIA_JOB_MAX_ATTEMPTS,
            due_at: due,
            priority: JobPriority::Background,
        })
        .await?;
    }
    Ok(String::new())
}

/// Carries out a change, and says what it did. The indexing of a saved memory is due
/// at `due` (later than `now` when the sender is over their rate).
#[allow(clippy::too_many_arguments)]
async fn write(
    tx: &mut dyn UnitOfWork,
    user: &User,
    inbound: InteractionId,
    message: &InboundMessage,
    change: Change,
    now: DateTime<Utc>,
    due: DateTime<Utc>,
    outbox: Outbox,
) -> Result<String, RepositoryError> {
    let memory = |kind: MemoryKind, text: String| NewMemory {
        user_id: user.id,
        interaction_id: Some(inbound),
        media_asset_id: None,
        kind,
        text,
        labels: Vec::new(),
        created_at: now,
    };
    Ok(match change {
        Change::Save(text) => {
            let id = tx.save_memory(memory(MemoryKind::Text, text)).await?;
            outbox.memory_saved(tx, id, user.id, due).await?;
            MEMORY_SAVED.to_string()
        }
        Change::SaveLocation => {
            let Some(location) = &message.location else {
                return Err(RepositoryError::Internal("a location change without a location".into()));
            };
            let mut text = location.describe();
            let caption = message.body.trim();
            if !caption.is_empty() && Some(caption) != location.address.as_deref() {
                text = format!("{text} {caption}");
            }
            let id = tx.save_memory(memory(MemoryKind::Location, text)).await?;
            outbox.memory_saved(tx, id, user.id, due).await?;
            "📍 Location saved ✅".to_string()
        }
        Change::SetTimezone(name) => match Tz::from_str_insensitive(&name) {
            Ok(zone) => {
                tx.set_timezone(user.id, zone.name(), now).await?;
                let local = now.with_timezone(&zone).format("%H:%M");
                format!("Time zone set to {} ✅ (it is {local} there now)", zone.name())
            }
            Err(_) => format!(
                "\"{}\" is not a time zone I know. Use an IANA name such as Europe/Berlin or America/New_York.",
                echo(&name)
            ),
        },
        Change::Reminder(_) => return Err(RepositoryError::Internal("a reminder change outside reminders".into())),
        Change::Undo => match tx.delete_last_memory(user.id).await? {
            Some(memory) => {
                outbox.memory_deleted(tx, memory.id, now).await?;
                format!("Deleted your last memory: “{}”", truncate_chars(&memory.text, 200))
            }
            None => "There is no memory to undo.".to_string(),
        },
    })
}
