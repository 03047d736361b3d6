//! One inbound WhatsApp message in, one reply out: every effect of the message and its
//! reply are committed in ONE transaction before the reply leaves, so a redelivery of the
//! same `MessageSid` answers exactly as the first delivery did and changes nothing.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::domain::command::{parse_command, Command, HELP_TEXT};
use crate::domain::model::{InboundMessage, InteractionId, MaskedPhone, MemoryKind, User};
use crate::domain::ports::{
    Clock, InboundInsert, InboundTransaction, InboundWork, NewJob, NewMemory, Repository, RepositoryError,
};
use crate::domain::reply::{format_memory_list, truncate_chars, MEMORY_SAVED};
use crate::domain::time_range::{parse_time_range, KNOWN_PHRASES};

/// How many memories a chat search or list fetches; the reply shows what fits.
const CHAT_RESULT_LIMIT: u32 = 50;
/// The job kind the media pipeline consumes.
pub const MEDIA_JOB_KIND: &str = "media.ingest";
/// How often a media job is tried before it is dead-lettered.
const MEDIA_JOB_MAX_ATTEMPTS: i32 = 8;

/// Why a message could not be handled. The message is then NOT stored, so the webhook
/// must answer with an error and let Twilio deliver it again.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Handles inbound messages.
pub struct IngestService {
    repository: Arc<dyn Repository>,
    clock: Arc<dyn Clock>,
    default_timezone: Tz,
}

impl IngestService {
    /// Wires the use case to its ports.
    pub fn new(repository: Arc<dyn Repository>, clock: Arc<dyn Clock>, default_timezone: Tz) -> Self {
        Self { repository, clock, default_timezone }
    }

    /// Stores the message and everything it causes, and returns the reply text (empty
    /// for "no reply now", e.g. media that is processed later).
    ///
    /// # Errors
    /// [`IngestError::Repository`] when nothing could be committed.
    #[tracing::instrument(skip_all, fields(sid = %message.sid, from = %MaskedPhone(&message.phone_number)))]
    pub async fn ingest_message(&self, message: InboundMessage) -> Result<String, IngestError> {
        let now = self.clock.now();
        let default_timezone = self.default_timezone;
        let work: InboundWork = Box::new(move |tx| {
            Box::pin(async move { handle_in_transaction(tx, message, now, default_timezone).await })
        });
        Ok(self.repository.run_inbound(work).await?)
    }
}

async fn handle_in_transaction(
    tx: &mut dyn InboundTransaction,
    message: InboundMessage,
    now: DateTime<Utc>,
    default_timezone: Tz,
) -> Result<String, RepositoryError> {
    let user = tx.find_or_create_user(&message.wa_id, &message.phone_number, message.profile_name.clone(), now).await?;
    let inbound = match tx.insert_inbound(user.id, &message).await? {
        InboundInsert::AlreadyHandled { reply } => {
            tracing::info!("redelivery of a message already handled; answering as before");
            return Ok(reply.unwrap_or_default());
        }
        InboundInsert::New(id) => id,
    };
    if let Some(name) = message.profile_name.as_deref() {
        if user.display_name.as_deref() != Some(name) {
            tx.update_display_name(user.id, name, now).await?;
        }
    }
    let reply = respond(tx, &user, inbound, &message, now, user.zone_or(default_timezone)).await?;
    tx.record_reply(user.id, inbound, &reply, now).await?;
    Ok(reply)
}

/// Decides what the message means and does it.
async fn respond(
    tx: &mut dyn InboundTransaction,
    user: &User,
    inbound: InteractionId,
    message: &InboundMessage,
    now: DateTime<Utc>,
    zone: Tz,
) -> Result<String, RepositoryError> {
    if !message.media.is_empty() {
        // Media is fetched off the request path; the user hears back when it is saved.
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
                }),
                max_attempts: MEDIA_JOB_MAX_ATTEMPTS,
                due_at: now,
            })
            .await?;
        }
        return Ok(String::new());
    }
    if let Some(location) = &message.location {
        let mut text = location.describe();
        if !message.body.trim().is_empty() && message.body.trim() != location.address.as_deref().unwrap_or_default() {
            text = format!("{text} {}", message.body.trim());
        }
        save(tx, user, inbound, MemoryKind::Location, text, now).await?;
        return Ok("📍 Location saved ✅".to_string());
    }

    Ok(match parse_command(&message.body) {
        Command::Save(text) => {
            save(tx, user, inbound, MemoryKind::Text, text, now).await?;
            MEMORY_SAVED.to_string()
        }
        Command::Search(query) if query.is_empty() => "What should I look for? For example: /search milk".to_string(),
        Command::Search(query) => {
            let hits = tx.search_memories(user.id, &query, CHAT_RESULT_LIMIT).await?;
            let memories: Vec<_> = hits.into_iter().map(|hit| hit.memory).collect();
            format_memory_list(&memories, memories.len() as u64, zone)
        }
        Command::List(None) => {
            let page = tx.list_memories(user.id, None, CHAT_RESULT_LIMIT).await?;
            format_memory_list(&page.memories, page.total, zone)
        }
        Command::List(Some(phrase)) => match parse_time_range(&phrase, now, zone) {
            Ok(range) => {
                let page = tx.list_memories(user.id, Some(range), CHAT_RESULT_LIMIT).await?;
                format_memory_list(&page.memories, page.total, zone)
            }
            Err(error) => format!("{error} Try one of these:\n{KNOWN_PHRASES}"),
        },
        Command::Help | Command::Empty => HELP_TEXT.to_string(),
        Command::Unknown(word) => format!("I don't know the command /{word}.\n\n{HELP_TEXT}"),
        Command::ShowTimezone => {
            let origin = if user.timezone.is_some() { "" } else { " (the default)" };
            format!("Your time zone is {}{origin}. Change it with /tz Area/City, e.g. /tz Europe/Berlin", zone.name())
        }
        Command::SetTimezone(name) => match Tz::from_str_insensitive(&name) {
            Ok(new_zone) => {
                tx.set_timezone(user.id, new_zone.name(), now).await?;
                let local = now.with_timezone(&new_zone).format("%H:%M");
                format!("Time zone set to {} ✅ (it is {local} there now)", new_zone.name())
            }
            Err(_) => format!(
                "\"{}\" is not a time zone I know. Use an IANA name such as Europe/Berlin or America/New_York.",
                truncate_chars(&name, 60)
            ),
        },
        Command::Undo => match tx.delete_last_memory(user.id).await? {
            Some(memory) => format!("Deleted your last memory: “{}”", truncate_chars(&memory.text, 200)),
            None => "There is no memory to undo.".to_string(),
        },
    })
}

async fn save(
    tx: &mut dyn InboundTransaction,
    user: &User,
    inbound: InteractionId,
    kind: MemoryKind,
    text: String,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    tx.save_memory(NewMemory { user_id: user.id, interaction_id: Some(inbound), kind, text, created_at: now }).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{MediaItem, Memory, MemoryId, MemoryPage, MessageSid, SharedLocation, UserId};
    use crate::domain::ports::{MemoryHit, MockClock, MockInboundTransaction, MockRepository};
    use chrono::TimeZone;
    use mockall::predicate::eq;
    use std::sync::Mutex;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
    }

    fn user(timezone: Option<Tz>) -> User {
        User {
            id: UserId(7),
            wa_id: "15551234567".into(),
            phone_number: "+15551234567".into(),
            display_name: Some("Ada".into()),
            timezone,
        }
    }

    fn message(body: &str) -> InboundMessage {
        InboundMessage {
            sid: MessageSid("SM00000000000000000000000000000001".into()),
            wa_id: "15551234567".into(),
            phone_number: "+15551234567".into(),
            profile_name: Some("Ada".into()),
            body: body.into(),
            message_type: "text".into(),
            media: vec![],
            location: None,
            raw_form: serde_json::json!({}),
            received_at: now(),
        }
    }

    /// A transaction that knows the user and accepts the message as new.
    fn new_message_tx(user: User) -> MockInboundTransaction {
        let mut tx = MockInboundTransaction::new();
        tx.expect_find_or_create_user().returning(move |_, _, _, _| Ok(user.clone()));
        tx.expect_insert_inbound().returning(|_, _| Ok(InboundInsert::New(InteractionId(100))));
        tx
    }

    /// Runs the use case against `tx` through a repository that hands the work to it,
    /// as both real repositories do inside their transaction.
    async fn ingest(tx: MockInboundTransaction, message: InboundMessage) -> Result<String, IngestError> {
        let tx = Mutex::new(Some(tx));
        let mut repository = MockRepository::new();
        repository.expect_run_inbound().times(1).returning(move |work| {
            let mut tx = tx.lock().unwrap().take().expect("one transaction per message");
            futures::executor::block_on(work(&mut tx))
        });
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now());
        IngestService::new(Arc::new(repository), Arc::new(clock), chrono_tz::UTC).ingest_message(message).await
    }

    fn expect_reply(tx: &mut MockInboundTransaction, expected: &'static str) {
        tx.expect_record_reply()
            .withf(move |user, inbound, reply, _| {
                *user == UserId(7) && *inbound == InteractionId(100) && reply == expected
            })
            .times(1)
            .returning(|_, _, _, _| Ok(()));
    }

    #[tokio::test]
    async fn a_text_becomes_a_memory_and_the_reply_is_recorded() {
        let mut tx = new_message_tx(user(None));
        tx.expect_save_memory()
            .withf(|m| {
                m.text == "buy milk" && m.kind == MemoryKind::Text && m.interaction_id == Some(InteractionId(100))
            })
            .times(1)
            .returning(|_| Ok(MemoryId(1)));
        expect_reply(&mut tx, MEMORY_SAVED);
        assert_eq!(ingest(tx, message("buy milk")).await.unwrap(), MEMORY_SAVED);
    }

    #[tokio::test]
    async fn a_redelivery_answers_as_before_and_changes_nothing() {
        let mut tx = MockInboundTransaction::new();
        tx.expect_find_or_create_user().returning(|_, _, _, _| Ok(user(None)));
        tx.expect_insert_inbound()
            .returning(|_, _| Ok(InboundInsert::AlreadyHandled { reply: Some(MEMORY_SAVED.into()) }));
        tx.expect_save_memory().never();
        tx.expect_record_reply().never();
        tx.expect_update_display_name().never();
        assert_eq!(ingest(tx, message("buy milk")).await.unwrap(), MEMORY_SAVED);
    }

    #[tokio::test]
    async fn a_changed_profile_name_is_kept() {
        let mut tx = new_message_tx(user(None));
        tx.expect_update_display_name()
            .with(eq(UserId(7)), eq("Ada L."), eq(now()))
            .times(1)
            .returning(|_, _, _| Ok(()));
        tx.expect_save_memory().returning(|_| Ok(MemoryId(1)));
        tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        let mut msg = message("note");
        msg.profile_name = Some("Ada L.".into());
        ingest(tx, msg).await.unwrap();
    }

    #[tokio::test]
    async fn a_question_searches_and_lists_results_in_the_users_zone() {
        let mut tx = new_message_tx(user(Some(chrono_tz::Asia::Tokyo)));
        tx.expect_search_memories().with(eq(UserId(7)), eq("milk"), eq(CHAT_RESULT_LIMIT)).times(1).returning(
            |_, _, _| {
                Ok(vec![MemoryHit {
                    memory: Memory {
                        id: MemoryId(1),
                        user_id: UserId(7),
                        kind: MemoryKind::Text,
                        text: "buy milk".into(),
                        created_at: Utc.with_ymd_and_hms(2026, 11, 25, 20, 0, 0).unwrap(),
                    },
                    score: 1.0,
                }])
            },
        );
        tx.expect_save_memory().never();
        expect_reply(&mut tx, "1. 2026-11-26 05:00 · buy milk");
        ingest(tx, message("milk?")).await.unwrap();
    }

    #[tokio::test]
    async fn an_empty_search_says_so() {
        let mut tx = new_message_tx(user(None));
        tx.expect_search_memories().returning(|_, _, _| Ok(vec![]));
        expect_reply(&mut tx, "No matching memories found.");
        ingest(tx, message("/search unicorns")).await.unwrap();
    }

    #[tokio::test]
    async fn list_last_week_asks_for_the_previous_calendar_week_in_the_users_zone() {
        let berlin = chrono_tz::Europe::Berlin;
        let mut tx = new_message_tx(user(Some(berlin)));
        tx.expect_list_memories()
            .withf(move |_, range, _| {
                let range = range.expect("a range");
                range.start == berlin.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap()
                    && range.end == berlin.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
            })
            .times(1)
            .returning(|_, _, _| Ok(MemoryPage::default()));
        tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        assert_eq!(ingest(tx, message("/list last week")).await.unwrap(), "No matching memories found.");
    }

    #[tokio::test]
    async fn an_unknown_range_lists_the_known_phrases_and_reads_nothing() {
        let mut tx = new_message_tx(user(None));
        tx.expect_list_memories().never();
        tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        let reply = ingest(tx, message("/list sometime soonish")).await.unwrap();
        assert!(reply.contains("sometime soonish"));
        assert!(reply.contains(KNOWN_PHRASES));
    }

    #[tokio::test]
    async fn an_unknown_command_gets_help_and_is_not_saved() {
        let mut tx = new_message_tx(user(None));
        tx.expect_save_memory().never();
        tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        let reply = ingest(tx, message("/frobnicate now")).await.unwrap();
        assert!(reply.starts_with("I don't know the command /frobnicate."));
        assert!(reply.contains(HELP_TEXT));
    }

    #[tokio::test]
    async fn tz_sets_a_valid_zone_by_its_canonical_name() {
        let mut tx = new_message_tx(user(None));
        tx.expect_set_timezone()
            .with(eq(UserId(7)), eq("Europe/Berlin"), eq(now()))
            .times(1)
            .returning(|_, _, _| Ok(()));
        tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        let reply = ingest(tx, message("/tz europe/berlin")).await.unwrap();
        assert_eq!(reply, "Time zone set to Europe/Berlin ✅ (it is 13:00 there now)");
    }

    #[tokio::test]
    async fn tz_refuses_an_invalid_zone_clearly() {
        let mut tx = new_message_tx(user(None));
        tx.expect_set_timezone().never();
        tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        let reply = ingest(tx, message("/tz Mars/Olympus")).await.unwrap();
        assert!(reply.starts_with("\"Mars/Olympus\" is not a time zone I know."));
    }

    #[tokio::test]
    async fn tz_without_a_zone_shows_the_current_one() {
        let mut tx = new_message_tx(user(None));
        tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        assert!(ingest(tx, message("/tz")).await.unwrap().starts_with("Your time zone is UTC (the default)."));
    }

    #[tokio::test]
    async fn undo_deletes_the_last_memory_and_quotes_it() {
        let mut tx = new_message_tx(user(None));
        tx.expect_delete_last_memory().with(eq(UserId(7))).times(1).returning(|_| {
            Ok(Some(Memory {
                id: MemoryId(3),
                user_id: UserId(7),
                kind: MemoryKind::Text,
                text: "buy milk".into(),
                created_at: now(),
            }))
        });
        expect_reply(&mut tx, "Deleted your last memory: “buy milk”");
        ingest(tx, message("/undo")).await.unwrap();
    }

    #[tokio::test]
    async fn media_is_queued_one_job_per_item_and_answered_later() {
        let mut tx = new_message_tx(user(None));
        tx.expect_enqueue_job()
            .withf(|job| job.kind == MEDIA_JOB_KIND && job.payload["interaction_id"] == 100)
            .times(2)
            .returning(|_| Ok(()));
        tx.expect_save_memory().never();
        expect_reply(&mut tx, "");
        let mut msg = message("my photos");
        msg.media = vec![
            MediaItem { url: "https://api.twilio.com/a".into(), content_type: "image/jpeg".into() },
            MediaItem { url: "https://api.twilio.com/b".into(), content_type: "image/png".into() },
        ];
        assert_eq!(ingest(tx, msg).await.unwrap(), "");
    }

    #[tokio::test]
    async fn a_shared_location_is_saved_as_a_location_memory() {
        let mut tx = new_message_tx(user(None));
        tx.expect_save_memory()
            .withf(|m| m.kind == MemoryKind::Location && m.text.contains("Brandenburger Tor"))
            .times(1)
            .returning(|_| Ok(MemoryId(1)));
        expect_reply(&mut tx, "📍 Location saved ✅");
        let mut msg = message("");
        msg.location = Some(SharedLocation {
            latitude: 52.5163,
            longitude: 13.3777,
            address: None,
            label: Some("Brandenburger Tor".into()),
        });
        ingest(tx, msg).await.unwrap();
    }

    #[tokio::test]
    async fn a_failing_database_is_an_error_not_a_reply() {
        let mut tx = MockInboundTransaction::new();
        tx.expect_find_or_create_user()
            .returning(|_, _, _, _| Err(RepositoryError::Unavailable("disk I/O error".into())));
        let err = ingest(tx, message("buy milk")).await.unwrap_err();
        let IngestError::Repository(inner) = err;
        assert!(inner.is_retryable());
    }
}
