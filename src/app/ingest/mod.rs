//! One inbound WhatsApp message in, one reply out. The message, everything it changes
//! and its reply are committed in ONE transaction before the reply leaves, so a
//! redelivery of the same `MessageSid` answers exactly as the first delivery did and
//! changes nothing. Questions (search, list) are answered from reads made just before
//! that transaction, so they never hold up the writer.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::jobs::JobSignal;
use super::outbox::Outbox;
use super::rate_limit::{Admission, UserRateLimiter, DEFER_BY, SLOW_DOWN};
use super::reminders::{ReminderCommand, ReminderSettings};
use super::search::MemorySearch;
use crate::domain::command::{parse_command, Command, HELP_TEXT};
use crate::domain::model::{Channel, InboundMessage, MaskedPhone, User};
use crate::domain::ports::{transact, Clock, MemoryStoreError, ReadModel, Repository, RepositoryError, TextToSave};
use crate::domain::reply::{echo, format_memory_list, format_search_results, MEMORY_SAVED, NO_MATCHES};
use crate::domain::time_range::{parse_time_range, KNOWN_PHRASES};
use crate::telemetry::metrics;

mod record;

use record::{record_and_reply, with_pace_notice};

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
    #[error(transparent)]
    Search(#[from] MemoryStoreError),
}

impl IngestError {
    /// Whether the message names something that belongs to another sender (its
    /// `MessageSid`): refused, never answered with their reply.
    pub fn is_conflict(&self) -> bool {
        matches!(self, IngestError::Repository(RepositoryError::Conflict(_)))
    }

    /// Whether a redelivery of the same message could succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Repository(e) => e.is_retryable(),
            IngestError::Search(e) => e.is_retryable(),
        }
    }
}

/// Handles inbound messages.
pub struct IngestService {
    repository: Arc<dyn Repository>,
    /// Who wrote and what they saved, for commands that only read.
    reads: Arc<dyn ReadModel>,
    search: MemorySearch,
    clock: Arc<dyn Clock>,
    default_timezone: Tz,
    /// Wakes the job workers when media was queued, so it is handled at once.
    job_signal: Option<Arc<JobSignal>>,
    /// Queues the indexing (Mem0, embeddings) of what a message saves or deletes.
    outbox: Outbox,
    /// How reminders are read (`REMINDER_DEFAULT_TIME`, the snooze window).
    reminders: Arc<ReminderSettings>,
    /// Per-user flood control (`USER_RATE_LIMIT`); `None`: off.
    limiter: Option<Arc<UserRateLimiter>>,
}

/// When a message's work beyond saving is due, and what is added to its reply: now and
/// nothing within the user's rate; later, with a notice once a minute, over it.
#[derive(Debug, Clone, Copy)]
struct Pace {
    due: DateTime<Utc>,
    notice: Option<&'static str>,
}

/// What a message changes.
enum Change {
    Save(String),
    SaveLocation,
    SetTimezone(String),
    Undo,
    Reminder(ReminderCommand),
}

/// What the message asks for, decided before the transaction.
enum Plan {
    /// A reply that needs no write beyond recording the message and the reply.
    Answer(String),
    /// A change made inside the transaction, which also decides the reply.
    Write(Change),
    /// Media, queued for the media pipeline.
    QueueMedia,
}

impl IngestService {
    /// Wires the use case to its ports.
    pub fn new(
        repository: Arc<dyn Repository>,
        reads: Arc<dyn ReadModel>,
        search: MemorySearch,
        clock: Arc<dyn Clock>,
        default_timezone: Tz,
    ) -> Self {
        Self {
            repository,
            reads,
            search,
            clock,
            default_timezone,
            job_signal: None,
            outbox: Outbox::NONE,
            reminders: Arc::default(),
            limiter: None,
        }
    }

    /// Holds each user to `limiter`'s rate: over it, work beyond saving waits.
    pub fn with_rate_limit(mut self, limiter: Arc<UserRateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// This message's pace, counting it against its sender's rate.
    fn pace(&self, message: &InboundMessage, now: DateTime<Utc>) -> Pace {
        match self.limiter.as_ref().map(|limiter| limiter.admit(&message.wa_id)) {
            None | Some(Admission::Now) => Pace { due: now, notice: None },
            Some(Admission::Deferred { notify }) => {
                tracing::info!("over the sender's rate: work beyond saving is deferred");
                metrics::rate_limited("user");
                let delay = chrono::Duration::from_std(DEFER_BY).unwrap_or(chrono::Duration::minutes(1));
                Pace { due: now + delay, notice: notify.then_some(SLOW_DOWN) }
            }
        }
    }

    /// Queues the indexing (Mem0, embeddings) of every memory a message saves (or `/undo`
    /// deletes).
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = outbox;
        self
    }

    /// Reads reminders with `settings` (the defaults otherwise).
    pub fn with_reminders(mut self, settings: ReminderSettings) -> Self {
        self.reminders = Arc::new(settings);
        self
    }

    /// Wakes `signal`'s workers whenever a message queues media.
    pub fn with_job_signal(mut self, signal: Arc<JobSignal>) -> Self {
        self.job_signal = Some(signal);
        self
    }

    /// Stores the message and everything it causes, and returns the reply text (empty
    /// for "no reply now", e.g. media that is processed later).
    ///
    /// # Errors
    /// [`IngestError`] when nothing could be committed, or a search failed.
    #[tracing::instrument(skip_all, fields(sid = %message.sid, from = %MaskedPhone(&message.phone_number)))]
    pub async fn ingest_message(&self, message: InboundMessage) -> Result<String, IngestError> {
        let now = self.clock.now();
        let plan = match self.plan(&message, now).await {
            Ok(plan) => plan,
            Err(error) => {
                metrics::inbound_message(kind_of_message(&message), "rejected");
                return Err(error);
            }
        };
        let kind = kind_of_plan(&plan);
        let pace = self.pace(&message, now);
        let queues_jobs =
            matches!(plan, Plan::QueueMedia) || (self.outbox.queues_jobs() && matches!(plan, Plan::Write(_)));
        let context = WriteContext {
            now,
            pace,
            outbox: self.outbox,
            zone: self.default_timezone,
            reminders: self.reminders.clone(),
        };
        let recorded = match self.save_text_at_once(&message, &plan, &context).await {
            Ok(Some(reply)) => Ok((reply, false)),
            Ok(None) => {
                transact(&*self.repository, move |tx| Box::pin(record_and_reply(tx, message, plan, context))).await
            }
            Err(error) => Err(error),
        };
        let (reply, duplicate) = match recorded {
            Ok(recorded) => recorded,
            Err(error) => {
                metrics::inbound_message(kind, "rejected");
                return Err(error.into());
            }
        };
        let outcome = match (duplicate, kind) {
            (true, _) => "duplicate",
            (false, "command") => "command",
            (false, _) => "saved",
        };
        metrics::inbound_message(kind, outcome);
        if let (true, Some(signal)) = (queues_jobs, &self.job_signal) {
            signal.notify();
        }
        Ok(reply)
    }

    /// The most common message, a text to keep from a known sender, stored as data
    /// ([`Repository::save_text_at_once`]: PostgreSQL stores the texts waiting together
    /// in one statement): the reply when it was stored that way, `None` when the
    /// repository declined (a new sender, a changed profile name, a redelivery, reminder
    /// notices waiting, or an engine with no such shortcut) and nothing was stored.
    /// Saving that also queues Mem0 jobs, and a text from Meta (whose reply leaves
    /// through a job committed with the message), take the step by step path.
    async fn save_text_at_once(
        &self,
        message: &InboundMessage,
        plan: &Plan,
        context: &WriteContext,
    ) -> Result<Option<String>, RepositoryError> {
        let Plan::Write(Change::Save(text)) = plan else { return Ok(None) };
        let Some(queue_embedding) = context.outbox.queues_only_embeddings() else { return Ok(None) };
        if message.channel != Channel::Twilio {
            return Ok(None);
        }
        let reply = with_pace_notice(MEMORY_SAVED.to_string(), context.pace.notice);
        let text = TextToSave {
            message: message.clone(),
            text: text.clone(),
            reply: reply.clone(),
            queue_embedding,
            now: context.now,
        };
        Ok(self.repository.save_text_at_once(text).await?.map(|_| reply))
    }

    async fn plan(&self, message: &InboundMessage, now: DateTime<Utc>) -> Result<Plan, IngestError> {
        if !message.media.is_empty() {
            return Ok(Plan::QueueMedia);
        }
        if message.location.is_some() {
            return Ok(Plan::Write(Change::SaveLocation));
        }
        let command = match parse_command(&message.body) {
            Command::Save(text) => return Ok(Plan::Write(Change::Save(text))),
            Command::SetTimezone(zone) => return Ok(Plan::Write(Change::SetTimezone(zone))),
            Command::Undo => return Ok(Plan::Write(Change::Undo)),
            Command::Remind(text) => return Ok(Plan::Write(Change::Reminder(ReminderCommand::Create(text)))),
            Command::ListReminders => return Ok(Plan::Write(Change::Reminder(ReminderCommand::List))),
            Command::CancelReminder(n) => return Ok(Plan::Write(Change::Reminder(ReminderCommand::Cancel(n)))),
            Command::Snooze(delay) => return Ok(Plan::Write(Change::Reminder(ReminderCommand::Snooze(delay)))),
            reads_only => reads_only,
        };
        let user = self.reads.find_user(&message.wa_id).await?;
        let zone = user.as_ref().map_or(self.default_timezone, |u| u.zone_or(self.default_timezone));
        Ok(Plan::Answer(self.answer(command, user.as_ref(), zone, now).await?))
    }

    /// The reply to a command that changes nothing. A sender we have never seen has no
    /// memories, so nothing is searched for them.
    async fn answer(
        &self,
        command: Command,
        user: Option<&User>,
        zone: Tz,
        now: DateTime<Utc>,
    ) -> Result<String, IngestError> {
        Ok(match command {
            Command::Search(query) if query.is_empty() => {
                "What should I look for? For example: /search milk".to_string()
            }
            Command::Search(query) => match user {
                None => NO_MATCHES.to_string(),
                Some(user) => {
                    let hits = self.search.search(user, &query, CHAT_RESULT_LIMIT).await?;
                    let found: Vec<_> = hits.into_iter().map(|hit| hit.recalled).collect();
                    format_search_results(&found, zone)
                }
            },
            Command::List(phrase) => {
                let range = match phrase.as_deref().map(|p| parse_time_range(p, now, zone)) {
                    None => None,
                    Some(Ok(range)) => Some(range),
                    Some(Err(error)) => return Ok(format!("{error} Try one of these:\n{KNOWN_PHRASES}")),
                };
                match user {
                    None => NO_MATCHES.to_string(),
                    Some(user) => {
                        let page = self.reads.list_memories(user.id, range, CHAT_RESULT_LIMIT).await?;
                        format_memory_list(&page.memories, page.total, zone)
                    }
                }
            }
            Command::ShowTimezone => {
                let origin = if user.is_some_and(|u| u.timezone.is_some()) { "" } else { " (the default)" };
                format!(
                    "Your time zone is {}{origin}. Change it with /tz Area/City, e.g. /tz Europe/Berlin",
                    zone.name()
                )
            }
            Command::Unknown(word) => format!("I don't know the command /{}.\n\n{HELP_TEXT}", echo(&word)),
            _ => HELP_TEXT.to_string(),
        })
    }
}

/// What a message's transaction needs besides the message and its plan.
struct WriteContext {
    now: DateTime<Utc>,
    /// When work beyond saving is due, and the rate notice for the reply.
    pace: Pace,
    outbox: Outbox,
    /// The service's default zone, for a user who never set one.
    zone: Tz,
    reminders: Arc<ReminderSettings>,
}

/// The metrics' kind of a message: what it carries, commands apart.
fn kind_of_plan(plan: &Plan) -> &'static str {
    match plan {
        Plan::QueueMedia => "media",
        Plan::Write(Change::Save(_)) => "text",
        Plan::Write(Change::SaveLocation) => "location",
        Plan::Write(_) | Plan::Answer(_) => "command",
    }
}

/// The kind of a message refused before it had a plan.
fn kind_of_message(message: &InboundMessage) -> &'static str {
    if !message.media.is_empty() {
        "media"
    } else if message.location.is_some() {
        "location"
    } else if message.body.trim_start().starts_with('/') || message.body.trim_end().ends_with('?') {
        "command"
    } else {
        "text"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{
        Channel, InteractionId, MediaItem, Memory, MemoryId, MemoryKind, MemoryPage, MessageSid, SharedLocation, UserId,
    };
    use crate::domain::ports::{
        InboundInsert, MemoryHit, MockClock, MockMemoryFinder, MockReadModel, MockRepository, MockUnitOfWork, Recalled,
        SavedText,
    };
    use crate::domain::reply::MEMORY_SAVED;
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
            channel: Channel::Twilio,
        }
    }

    /// The mocked ports of one message: the transaction, the reads, search, and what the
    /// repository does with a text it is asked to save at once.
    struct Ports {
        tx: MockUnitOfWork,
        reads: MockReadModel,
        store: MockMemoryFinder,
        at_once: AtOnce,
    }

    /// What the mocked repository does when asked to save a text at once.
    #[derive(Clone, Copy)]
    enum AtOnce {
        /// Declines, as SQLite's does and PostgreSQL's does for a redelivery or a new
        /// sender, so the step by step calls are tested.
        Declines,
        /// Saves "buy milk" (and queues its embedding or not), as PostgreSQL's does for a
        /// known sender; checked to be asked exactly once, with these values.
        Saves { queue_embedding: bool },
        /// Fails as a lost connection does.
        Fails,
        /// Must not be asked.
        Never,
    }

    /// Ports for a known user whose message is new, on a repository that declines to
    /// save a text at once, so the step by step calls are tested.
    fn ports(user: User) -> Ports {
        let mut tx = MockUnitOfWork::new();
        let known = user.clone();
        tx.expect_find_or_create_user().returning(move |_, _, _, _| Ok(known.clone()));
        tx.expect_insert_inbound().returning(|_, _| Ok(InboundInsert::New(InteractionId(100))));
        tx.expect_take_reminder_notices().returning(|_| Ok(vec![]));
        let mut reads = MockReadModel::new();
        reads.expect_find_user().returning(move |_| Ok(Some(user.clone())));
        Ports { tx, reads, store: MockMemoryFinder::new(), at_once: AtOnce::Declines }
    }

    /// Ports around `tx` alone, on a repository that declines to save a text at once.
    fn ports_with(tx: MockUnitOfWork) -> Ports {
        Ports { tx, reads: MockReadModel::new(), store: MockMemoryFinder::new(), at_once: AtOnce::Declines }
    }

    /// Runs the use case; the repository hands the work to the mocked transaction, as
    /// both real repositories do inside their database transaction.
    async fn ingest(ports: Ports, message: InboundMessage) -> Result<String, IngestError> {
        ingest_with(ports, message, Outbox::NONE).await
    }

    /// As [`ingest`], with the outbox as given.
    async fn ingest_with(ports: Ports, message: InboundMessage, outbox: Outbox) -> Result<String, IngestError> {
        let Ports { tx, reads, store, at_once } = ports;
        let tx = Mutex::new(Some(tx));
        let mut repository = MockRepository::new();
        match at_once {
            AtOnce::Declines => {
                repository.expect_save_text_at_once().returning(|_| Ok(None));
            }
            AtOnce::Saves { queue_embedding } => {
                repository
                    .expect_save_text_at_once()
                    .withf(move |text| {
                        text.message.sid.0 == "SM00000000000000000000000000000001"
                            && text.text == "buy milk"
                            && text.reply == MEMORY_SAVED
                            && text.queue_embedding == queue_embedding
                            && text.now == now()
                    })
                    .times(1)
                    .returning(|_| Ok(Some(SavedText { user: UserId(7), inbound: InteractionId(100) })));
            }
            AtOnce::Fails => {
                repository
                    .expect_save_text_at_once()
                    .returning(|_| Err(RepositoryError::Unavailable("connection reset".into())));
            }
            AtOnce::Never => {
                repository.expect_save_text_at_once().never();
            }
        }
        repository.expect_run_in_transaction().times(..=1).returning(move |work| {
            let mut tx = tx.lock().unwrap().take().expect("one transaction per message");
            futures::executor::block_on(work(&mut tx))
        });
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now());
        let search = MemorySearch::local(Arc::new(store));
        IngestService::new(Arc::new(repository), Arc::new(reads), search, Arc::new(clock), chrono_tz::UTC)
            .with_outbox(outbox)
            .ingest_message(message)
            .await
    }

    fn expect_reply(tx: &mut MockUnitOfWork, expected: &'static str) {
        tx.expect_record_reply()
            .withf(move |user, inbound, reply, _| {
                *user == UserId(7) && *inbound == InteractionId(100) && reply == expected
            })
            .times(1)
            .returning(|_, _, _, _| Ok(()));
    }

    fn memory(text: &str, created_at: DateTime<Utc>) -> Memory {
        Memory { id: MemoryId(1), user_id: UserId(7), kind: MemoryKind::Text, text: text.into(), created_at }
    }

    #[tokio::test]
    async fn a_text_becomes_a_memory_and_the_reply_is_recorded() {
        let mut p = ports(user(None));
        p.tx.expect_save_memory()
            .withf(|m| {
                m.text == "buy milk" && m.kind == MemoryKind::Text && m.interaction_id == Some(InteractionId(100))
            })
            .times(1)
            .returning(|_| Ok(MemoryId(1)));
        expect_reply(&mut p.tx, MEMORY_SAVED);
        assert_eq!(ingest(p, message("buy milk")).await.unwrap(), MEMORY_SAVED);
    }

    /// A repository that saves "buy milk" at once, as PostgreSQL's does for a known
    /// sender, over a transaction where any step by step call would fail the test.
    fn saving_at_once(queue_embedding: bool) -> Ports {
        let mut p = ports_with(MockUnitOfWork::new());
        p.at_once = AtOnce::Saves { queue_embedding };
        p
    }

    #[tokio::test]
    async fn a_text_saved_at_once_is_answered_with_no_step_by_step_call() {
        assert_eq!(ingest(saving_at_once(false), message("buy milk")).await.unwrap(), MEMORY_SAVED);
        let answered = ingest_with(saving_at_once(true), message("buy milk"), Outbox::EMBEDDINGS).await;
        assert_eq!(answered.unwrap(), MEMORY_SAVED);
    }

    /// Meta's reply leaves through a job committed with the message, which the shortcut
    /// does not store: a text from Meta takes the step by step path.
    #[tokio::test]
    async fn a_text_from_meta_is_saved_step_by_step_with_its_reply_job() {
        let mut p = ports(user(None));
        p.at_once = AtOnce::Never;
        p.tx.expect_save_memory().times(1).returning(|_| Ok(MemoryId(1)));
        expect_reply(&mut p.tx, MEMORY_SAVED);
        p.tx.expect_enqueue_job()
            .withf(|job| job.payload["body"] == MEMORY_SAVED && job.payload["in_reply_to"] == 100)
            .times(1)
            .returning(|_| Ok(()));
        let mut meta = message("buy milk");
        meta.channel = Channel::Meta;
        assert_eq!(ingest(p, meta).await.unwrap(), MEMORY_SAVED);
    }

    #[tokio::test]
    async fn with_mem0_a_saved_text_queues_its_indexing_in_the_same_transaction() {
        let mut p = ports(user(None));
        p.at_once = AtOnce::Never;
        p.tx.expect_save_memory().times(1).returning(|_| Ok(MemoryId(11)));
        p.tx.expect_update_mem0_index()
            .withf(|memory, change, _| {
                *memory == MemoryId(11) && *change == crate::domain::ports::Mem0IndexChange::Pending { user: UserId(7) }
            })
            .times(1)
            .returning(|_, _, _| Ok(true));
        p.tx.expect_enqueue_job()
            .withf(|job| job.kind == crate::app::mem0::MEM0_INDEX_JOB_KIND && job.payload["memory_id"] == 11)
            .times(1)
            .returning(|_| Ok(()));
        expect_reply(&mut p.tx, MEMORY_SAVED);
        assert_eq!(ingest_with(p, message("buy milk"), Outbox::MEM0).await.unwrap(), MEMORY_SAVED);
    }

    #[tokio::test]
    async fn with_mem0_undo_queues_the_deletion_of_the_memorys_copies() {
        let mut p = ports(user(None));
        p.tx.expect_delete_last_memory().returning(|_| Ok(Some(memory("buy milk", now()))));
        p.tx.expect_mem0_copies()
            .with(eq(MemoryId(1)))
            .returning(|_| Ok(crate::domain::ports::Mem0Copies { ids: vec!["m-1".into()], event_id: None }));
        p.tx.expect_update_mem0_index().returning(|_, _, _| Ok(false));
        p.tx.expect_enqueue_job()
            .withf(|job| job.kind == crate::app::mem0::MEM0_DELETE_JOB_KIND && job.payload["mem0_ids"][0] == "m-1")
            .times(1)
            .returning(|_| Ok(()));
        expect_reply(&mut p.tx, "Deleted your last memory: “buy milk”");
        ingest_with(p, message("/undo"), Outbox::MEM0).await.unwrap();
    }

    #[tokio::test]
    async fn a_redelivery_answers_as_before_and_changes_nothing() {
        let mut tx = MockUnitOfWork::new();
        tx.expect_find_or_create_user().returning(|_, _, _, _| Ok(user(None)));
        tx.expect_insert_inbound().returning(|_, _| {
            Ok(InboundInsert::AlreadyHandled { reply: Some(MEMORY_SAVED.into()), sender: UserId(7) })
        });
        tx.expect_save_memory().never();
        tx.expect_record_reply().never();
        tx.expect_update_display_name().never();
        let p = ports_with(tx);
        assert_eq!(ingest(p, message("buy milk")).await.unwrap(), MEMORY_SAVED);
    }

    /// Before, a known sid from another sender was answered with the first sender's reply.
    #[tokio::test]
    async fn a_known_sid_from_another_sender_is_refused_not_answered() {
        let mut tx = MockUnitOfWork::new();
        tx.expect_find_or_create_user().returning(|_, _, _, _| Ok(user(None)));
        tx.expect_insert_inbound().returning(|_, _| {
            Ok(InboundInsert::AlreadyHandled { reply: Some("1. Bob's secret".into()), sender: UserId(8) })
        });
        tx.expect_save_memory().never();
        tx.expect_record_reply().never();
        let p = ports_with(tx);
        let error = ingest(p, message("buy milk")).await.unwrap_err();
        assert!(error.is_conflict(), "{error}");
        assert!(!error.to_string().contains("Bob"));
    }

    #[tokio::test]
    async fn a_changed_profile_name_is_kept() {
        let mut p = ports(user(None));
        p.tx.expect_update_display_name()
            .with(eq(UserId(7)), eq("Ada L."), eq(now()))
            .times(1)
            .returning(|_, _, _| Ok(()));
        p.tx.expect_save_memory().returning(|_| Ok(MemoryId(1)));
        p.tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        let mut msg = message("note");
        msg.profile_name = Some("Ada L.".into());
        ingest(p, msg).await.unwrap();
    }

    #[tokio::test]
    async fn a_question_searches_and_lists_results_in_the_users_zone() {
        let mut p = ports(user(Some(chrono_tz::Asia::Tokyo)));
        p.store
            .expect_search()
            .withf(|user, query, limit| user.id == UserId(7) && query == "milk" && *limit == CHAT_RESULT_LIMIT)
            .times(1)
            .returning(|_, _, _| {
                Ok(vec![MemoryHit {
                    recalled: Recalled::Memory(memory(
                        "buy milk",
                        Utc.with_ymd_and_hms(2026, 11, 25, 20, 0, 0).unwrap(),
                    )),
                    score: 1.0,
                }])
            });
        p.tx.expect_save_memory().never();
        expect_reply(&mut p.tx, "1. 2026-11-26 05:00 · buy milk");
        ingest(p, message("milk?")).await.unwrap();
    }

    #[tokio::test]
    async fn an_empty_search_says_so() {
        let mut p = ports(user(None));
        p.store.expect_search().returning(|_, _, _| Ok(vec![]));
        expect_reply(&mut p.tx, "No matching memories found.");
        ingest(p, message("/search unicorns")).await.unwrap();
    }

    #[tokio::test]
    async fn a_first_time_sender_has_nothing_to_search() {
        let mut p = ports(user(None));
        p.reads = MockReadModel::new();
        p.reads.expect_find_user().returning(|_| Ok(None));
        p.store.expect_search().never();
        expect_reply(&mut p.tx, "No matching memories found.");
        ingest(p, message("/search milk")).await.unwrap();
    }

    #[tokio::test]
    async fn a_search_that_cannot_run_stores_nothing_and_asks_for_a_redelivery() {
        let mut p = ports(user(None));
        p.store.expect_search().returning(|_, _, _| Err(MemoryStoreError::Unavailable("index locked".into())));
        p.tx.expect_record_reply().never();
        let error = ingest(p, message("/search milk")).await.unwrap_err();
        assert!(error.is_retryable());
    }

    #[tokio::test]
    async fn list_last_week_asks_for_the_previous_calendar_week_in_the_users_zone() {
        let berlin = chrono_tz::Europe::Berlin;
        let mut p = ports(user(Some(berlin)));
        p.reads
            .expect_list_memories()
            .withf(move |_, range, _| {
                let range = range.expect("a range");
                range.start == berlin.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap()
                    && range.end == berlin.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
            })
            .times(1)
            .returning(|_, _, _| Ok(MemoryPage::default()));
        p.tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        assert_eq!(ingest(p, message("/list last week")).await.unwrap(), "No matching memories found.");
    }

    #[tokio::test]
    async fn a_list_says_how_many_more_there_are_than_fetched() {
        let mut p = ports(user(None));
        p.reads
            .expect_list_memories()
            .returning(|_, _, _| Ok(MemoryPage { memories: vec![memory("a", now())], total: 3 }));
        p.tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        assert!(ingest(p, message("/list")).await.unwrap().ends_with("…and 2 more"));
    }

    #[tokio::test]
    async fn an_unknown_range_lists_the_known_phrases_and_reads_nothing() {
        let mut p = ports(user(None));
        p.reads.expect_list_memories().never();
        p.tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        let reply = ingest(p, message("/list sometime soonish")).await.unwrap();
        assert!(reply.contains("sometime soonish"));
        assert!(reply.contains(KNOWN_PHRASES));
    }

    #[tokio::test]
    async fn an_unknown_command_gets_help_and_is_not_saved() {
        let mut p = ports(user(None));
        p.tx.expect_save_memory().never();
        p.tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        let reply = ingest(p, message("/frobnicate now")).await.unwrap();
        assert!(reply.starts_with("I don't know the command /frobnicate."));
        assert!(reply.contains(HELP_TEXT));
    }

    /// Before, a 5,000-character command or range was echoed whole and the reply cut at
    /// 1,600 characters in the middle of the quote, losing the help.
    #[tokio::test]
    async fn a_very_long_unknown_command_or_range_is_quoted_short_and_the_help_kept() {
        let long = "x".repeat(5_000);
        for (text, help) in [(format!("/{long}"), HELP_TEXT), (format!("/list {long}"), KNOWN_PHRASES)] {
            let mut p = ports(user(None));
            p.reads.expect_list_memories().never();
            p.tx.expect_save_memory().never();
            p.tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
            let reply = ingest(p, message(&text)).await.unwrap();
            assert!(
                reply.chars().count() <= crate::domain::reply::MAX_MESSAGE_CHARS,
                "{} characters",
                reply.chars().count()
            );
            assert!(reply.contains(&format!("{}…", "x".repeat(59))), "{reply}");
            assert!(reply.ends_with(help), "{reply}");
        }
    }

    #[tokio::test]
    async fn tz_sets_a_valid_zone_by_its_canonical_name() {
        let mut p = ports(user(None));
        p.tx.expect_set_timezone()
            .with(eq(UserId(7)), eq("Europe/Berlin"), eq(now()))
            .times(1)
            .returning(|_, _, _| Ok(()));
        p.tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        let reply = ingest(p, message("/tz europe/berlin")).await.unwrap();
        assert_eq!(reply, "Time zone set to Europe/Berlin ✅ (it is 13:00 there now)");
    }

    #[tokio::test]
    async fn tz_refuses_an_invalid_zone_clearly() {
        let mut p = ports(user(None));
        p.tx.expect_set_timezone().never();
        p.tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        let reply = ingest(p, message("/tz Mars/Olympus")).await.unwrap();
        assert!(reply.starts_with("\"Mars/Olympus\" is not a time zone I know."));
    }

    #[tokio::test]
    async fn tz_without_a_zone_shows_the_current_one() {
        let mut p = ports(user(Some(chrono_tz::Asia::Tokyo)));
        p.tx.expect_record_reply().returning(|_, _, _, _| Ok(()));
        assert!(ingest(p, message("/tz")).await.unwrap().starts_with("Your time zone is Asia/Tokyo."));
    }

    #[tokio::test]
    async fn undo_deletes_the_last_memory_and_quotes_it() {
        let mut p = ports(user(None));
        p.tx.expect_delete_last_memory()
            .with(eq(UserId(7)))
            .times(1)
            .returning(|_| Ok(Some(memory("buy milk", now()))));
        expect_reply(&mut p.tx, "Deleted your last memory: “buy milk”");
        ingest(p, message("/undo")).await.unwrap();
    }

    #[tokio::test]
    async fn media_is_queued_one_job_per_item_and_answered_later() {
        let mut p = ports(user(None));
        p.tx.expect_enqueue_job()
            .withf(|job| job.kind == MEDIA_JOB_KIND && job.payload["interaction_id"] == 100)
            .times(2)
            .returning(|_| Ok(()));
        p.tx.expect_save_memory().never();
        expect_reply(&mut p.tx, "");
        let mut msg = message("my photos");
        msg.media = vec![
            MediaItem { url: "https://api.twilio.com/a".into(), content_type: "image/jpeg".into() },
            MediaItem { url: "https://api.twilio.com/b".into(), content_type: "image/png".into() },
        ];
        assert_eq!(ingest(p, msg).await.unwrap(), "");
    }

    #[tokio::test]
    async fn a_shared_location_is_saved_as_a_location_memory() {
        let mut p = ports(user(None));
        p.tx.expect_save_memory()
            .withf(|m| m.kind == MemoryKind::Location && m.text.contains("Brandenburger Tor"))
            .times(1)
            .returning(|_| Ok(MemoryId(1)));
        expect_reply(&mut p.tx, "📍 Location saved ✅");
        let mut msg = message("");
        msg.location = Some(SharedLocation {
            latitude: 52.5163,
            longitude: 13.3777,
            address: None,
            label: Some("Brandenburger Tor".into()),
        });
        ingest(p, msg).await.unwrap();
    }

    #[tokio::test]
    async fn a_failing_database_is_an_error_not_a_reply() {
        let mut tx = MockUnitOfWork::new();
        tx.expect_find_or_create_user()
            .returning(|_, _, _, _| Err(RepositoryError::Unavailable("disk I/O error".into())));
        let p = ports_with(tx);
        let error = ingest(p, message("buy milk")).await.unwrap_err();
        assert!(matches!(error, IngestError::Repository(_)));
        assert!(error.is_retryable());

        let mut tx = MockUnitOfWork::new();
        tx.expect_find_or_create_user().never();
        let mut p = ports_with(tx);
        p.at_once = AtOnce::Fails;
        let error = ingest(p, message("buy milk")).await.unwrap_err();
        assert!(error.is_retryable(), "{error}");
    }
}
