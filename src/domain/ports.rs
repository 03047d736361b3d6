//! The traits the core needs from the world. Adapters implement them; use cases hold
//! `Arc<dyn Port>`. Every error says whether trying again can help.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::embedding::QuantizedEmbedding;
use super::model::{
    Analytics, InboundMessage, Interaction, InteractionId, Job, JobId, MediaAsset, MediaAssetId, Memory, MemoryId,
    MemoryKind, MemoryPage, MemoryRecord, Page, PageCursor, User, UserData, UserId, UserRecord,
};
use super::perceptual::ImageHash;
use super::time_range::TimeRange;
use std::time::Duration;

mod text_recognition;
pub use text_recognition::*;

/// Why the system of record failed.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The database is unreachable, locked or overloaded: the same call may succeed later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A bug or a corrupt row: retrying will not help.
    #[error("database error: {0}")]
    Internal(String),
    /// The job's lease ran out and another worker claimed it: this worker's effects must
    /// not commit, the other worker's will.
    #[error("job {0} is no longer this worker's: its lease expired and it was claimed again")]
    LeaseLost(i64),
    /// A unique key the caller presented belongs to someone else's row (a `MessageSid`
    /// reused by another sender): nothing was changed, and retrying will not help.
    #[error("{0}")]
    Conflict(String),
}

impl RepositoryError {
    /// Whether the same call could succeed if made again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RepositoryError::Unavailable(_))
    }
}

/// What inserting an inbound interaction found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundInsert {
    /// A message we have not seen: go on and handle it.
    New(InteractionId),
    /// A `MessageSid` already stored; `reply` is what we answered then, `sender` whose
    /// message it was (a redelivery only when it is the same sender).
    AlreadyHandled { reply: Option<String>, sender: UserId },
}

/// A memory about to be saved.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMemory {
    pub user_id: UserId,
    pub interaction_id: Option<InteractionId>,
    pub media_asset_id: Option<MediaAssetId>,
    pub kind: MemoryKind,
    pub text: String,
    /// The client's own tags (REST); none from chat.
    pub labels: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A durable unit of work for the job queue, written in the same transaction as the
/// message that caused it, so it can never be lost between the two.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    pub max_attempts: i32,
    pub due_at: DateTime<Utc>,
    pub priority: JobPriority,
}

/// Which due jobs are claimed first: a person waiting for a reply must not wait behind a
/// backlog of photos being processed, nor a half-done voice note behind new media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPriority {
    /// A message to a person (a reply, a warning): claimed before any other job.
    Reply,
    /// The rest of work already under way that a person is waiting on (the words of a
    /// voice note already saved): claimed before new background work, so a flood of new
    /// media cannot starve it.
    FollowUp,
    /// Work nobody is watching yet (fetching media, indexing): first in, first out.
    Background,
}

impl JobPriority {
    /// Every priority, in the order claiming visits them.
    pub const IN_CLAIM_ORDER: [JobPriority; 3] = [JobPriority::Reply, JobPriority::FollowUp, JobPriority::Background];

    /// The value stored in `jobs.priority`. Stored values are identifiers that never
    /// change (rows outlive upgrades); the claim order is [`JobPriority::IN_CLAIM_ORDER`].
    pub fn as_i16(self) -> i16 {
        match self {
            JobPriority::Reply => 0,
            JobPriority::Background => 1,
            JobPriority::FollowUp => 2,
        }
    }
}

/// A stored image's hash, found through the band indexes: enough to measure the
/// distance without reading the asset's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHashCandidate {
    pub asset_id: MediaAssetId,
    pub hash: i64,
}

/// How a claimed job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobSettlement {
    /// Finished: never run again.
    Done,
    /// Failed for now: run again at `due_at`.
    Retry { due_at: DateTime<Utc>, error: String },
    /// Failed for good (or too often): kept, with its error, for a person to look at.
    Dead { error: String },
    /// Not run (shutting down): back in the queue at once, the attempt not counted.
    Release,
}

/// A media file about to be recorded for a user.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMediaAsset {
    pub user_id: UserId,
    pub interaction_id: Option<InteractionId>,
    pub sha256: String,
    pub ahash: Option<i64>,
    /// The hash's bands, for the indexed near-duplicate lookup.
    pub bands: Option<[i64; 6]>,
    pub media_url: Option<String>,
    pub local_path: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub width_px: Option<i32>,
    pub height_px: Option<i32>,
    pub duration_seconds: Option<f64>,
    pub created_at: DateTime<Utc>,
}

/// A message sent (or not) through the REST API, recorded as an outbound interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub user_id: UserId,
    pub in_reply_to: Option<InteractionId>,
    pub body: String,
    /// Twilio's sid when it accepted the message.
    pub twilio_sid: Option<String>,
    /// `queued`, … or `failed`.
    pub status: String,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// A memory found by a search, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryHit {
    pub recalled: Recalled,
    /// Higher is better; comparable only within one result list.
    pub score: f64,
}

/// What a search recalled.
#[derive(Debug, Clone, PartialEq)]
pub enum Recalled {
    /// One of our memories.
    Memory(Memory),
    /// An entry an outside store (Mem0) keeps under its own id. From a store: `source` is
    /// the memory of ours it says it came from. From a hybrid search: a fact with no
    /// single memory of ours behind it (inferred from several, or added elsewhere).
    External(ExternalMemory),
}

impl Recalled {
    /// The memory of ours, when this is one.
    pub fn memory(&self) -> Option<&Memory> {
        match self {
            Recalled::Memory(memory) => Some(memory),
            Recalled::External(_) => None,
        }
    }
}

/// An entry in an outside memory store.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalMemory {
    /// The store's id (a Mem0 memory id).
    pub id: String,
    pub text: String,
    /// Our memory it was made from, as recorded in its metadata.
    pub source: Option<MemoryId>,
    pub created_at: Option<DateTime<Utc>>,
}

/// A memory as an outside store receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryToIndex {
    pub memory: MemoryId,
    /// Whose it is, as the store names people: the WhatsApp id, stable across databases.
    pub owner: String,
    pub kind: MemoryKind,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// Where adding a memory to a store stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Indexing {
    /// Stored, as these entries of the store (none when it found nothing worth keeping).
    Indexed(Vec<String>),
    /// Accepted; the store is still working on it: ask again about this event.
    Pending(String),
    /// The store accepted it but could not process it; `String` says why.
    Failed(String),
}

/// What holds a memory's copies in Mem0, read in the transaction that deletes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mem0Copies {
    /// The Mem0 memories its adds produced.
    pub ids: Vec<String>,
    /// An add still being inferred, whose results are not known yet.
    pub event_id: Option<String>,
}

/// A change to a memory's Mem0 bookkeeping (`mem0_index`, `mem0_links`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mem0IndexChange {
    /// Queued for indexing (again, after a change of its text).
    Pending { user: UserId },
    /// Mem0 accepted the add and is inferring under this event.
    EventStarted(String),
    /// The event failed: the next attempt adds again.
    EventFailed,
    /// Mem0 holds it as these memories.
    Indexed(Vec<String>),
    /// Given up, with the reason.
    Failed(String),
    /// Its copies are being deleted: no bookkeeping is kept.
    Forgotten,
}

/// The reads and writes of one unit of work (an inbound message, a job's outcome), all
/// inside ONE database transaction: every effect is committed together, or none is.
///
/// # Errors
/// Every method fails with [`RepositoryError`]; the caller aborts the whole unit.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UnitOfWork: Send {
    /// Finds the user by WhatsApp id or creates them. Does not change an existing user.
    async fn find_or_create_user(
        &mut self,
        wa_id: &str,
        phone_number: &str,
        display_name: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<User, RepositoryError>;

    /// Keeps the WhatsApp profile name the user shows now.
    async fn update_display_name(
        &mut self,
        user: UserId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;

    /// Inserts the inbound interaction unless its `MessageSid` is already stored; the
    /// unique index decides, never a read before the write.
    async fn insert_inbound(
        &mut self,
        user: UserId,
        message: &InboundMessage,
    ) -> Result<InboundInsert, RepositoryError>;

    /// Records the answer on the inbound row (so a redelivery answers the same) and as
    /// an outbound interaction.
    async fn record_reply(
        &mut self,
        user: UserId,
        inbound: InteractionId,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;

    /// Saves a memory; the full-text index follows in the same transaction.
    async fn save_memory(&mut self, memory: NewMemory) -> Result<MemoryId, RepositoryError>;

    /// Deletes one memory (its search entry goes with it); `false` when there was none.
    async fn delete_memory(&mut self, memory: MemoryId) -> Result<bool, RepositoryError>;

    /// Changes a memory's text and labels (its search entry follows); `false` when there
    /// is no such memory.
    async fn update_memory(
        &mut self,
        memory: MemoryId,
        text: Option<String>,
        labels: Option<Vec<String>>,
    ) -> Result<bool, RepositoryError>;

    /// Keeps the text read from a media memory's file (`extracted`, empty when there was
    /// none) and, if the memory's text is still `saved_text` (no one edited it meanwhile),
    /// replaces it with `text` (the caption followed by the words read); the full-text
    /// index follows. `false` when there is no such memory (deleted meanwhile).
    async fn record_extracted_text(
        &mut self,
        memory: MemoryId,
        extracted: &str,
        saved_text: &str,
        text: &str,
    ) -> Result<bool, RepositoryError>;

    /// Erases a user and everything held about them (interactions, memories and their
    /// search entries, media records, queued jobs). Returns the stored files that no
    /// other user's media refers to, for the caller to delete once this commits.
    async fn erase_user(&mut self, user: UserId) -> Result<Vec<String>, RepositoryError>;

    /// Deletes and returns the user's most recently saved memory, if any.
    async fn delete_last_memory(&mut self, user: UserId) -> Result<Option<Memory>, RepositoryError>;

    /// Stores the user's chosen IANA zone name.
    async fn set_timezone(&mut self, user: UserId, zone: &str, now: DateTime<Utc>) -> Result<(), RepositoryError>;

    /// Queues durable work (media fetching, indexing) with the message that caused it.
    async fn enqueue_job(&mut self, job: NewJob) -> Result<(), RepositoryError>;

    /// Takes the next due job (or one whose lease has expired, its worker having died),
    /// marks it running until `lease_until` and counts the attempt. On PostgreSQL,
    /// `FOR UPDATE SKIP LOCKED` lets several processes share the queue.
    async fn claim_job(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Job>, RepositoryError>;

    /// Records how a claimed job ended, if this claim (`attempt`, the fencing token) still
    /// holds the job.
    ///
    /// # Errors
    /// [`RepositoryError::LeaseLost`] when the job is no longer running under this
    /// attempt: the caller's transaction must roll back.
    async fn settle_job(
        &mut self,
        job: JobId,
        attempt: i32,
        settlement: JobSettlement,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;

    /// Extends a running job's lease while its worker is still on it, so a long job is not
    /// claimed a second time. `false` when this claim no longer holds the job.
    async fn renew_lease(
        &mut self,
        job: JobId,
        attempt: i32,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// This user's asset with exactly these bytes, if any.
    async fn find_media_by_sha256(&mut self, user: UserId, sha256: &str)
        -> Result<Option<MediaAsset>, RepositoryError>;

    /// The hashes of this user's images sharing at least one hash band: the candidates
    /// among which every near duplicate is (the caller checks the distance). Answered
    /// from the band indexes alone; [`UnitOfWork::find_media_asset`] reads the one chosen.
    async fn find_image_hashes_sharing_a_band(
        &mut self,
        user: UserId,
        bands: [i64; 6],
    ) -> Result<Vec<ImageHashCandidate>, RepositoryError>;

    /// One stored asset by id.
    async fn find_media_asset(&mut self, id: MediaAssetId) -> Result<Option<MediaAsset>, RepositoryError>;

    /// Records a stored media file for a user.
    async fn insert_media_asset(&mut self, asset: NewMediaAsset) -> Result<MediaAssetId, RepositoryError>;

    /// Links media item `index` of an interaction to the asset it became (`saved`,
    /// `duplicate` or `near_duplicate`).
    async fn link_interaction_media(
        &mut self,
        interaction: InteractionId,
        index: i32,
        asset: MediaAssetId,
        outcome: &str,
    ) -> Result<(), RepositoryError>;

    /// Replaces an image's perceptual hash (and its bands) with `hash` and takes it off the
    /// re-hash queue: a hash made by an earlier hash function, recomputed from the file.
    async fn store_rehashed_image(&mut self, media: MediaAssetId, hash: ImageHash) -> Result<(), RepositoryError>;

    /// Takes an image off the re-hash queue without a new hash (its file is gone or no
    /// longer decodes): it keeps the hash it has.
    async fn drop_image_rehash(&mut self, media: MediaAssetId) -> Result<(), RepositoryError>;

    /// Records a message sent (or refused) through the REST API.
    async fn record_delivery(&mut self, delivery: Delivery) -> Result<(), RepositoryError>;

    /// The memory's text as this transaction sees it (`None`: deleted), so work done on
    /// an earlier read can tell whether it is still about the memory as it is. Holds the
    /// memory until the transaction ends: two transactions asking about one memory take
    /// turns (SQLite's single writer does that anyway).
    async fn memory_text(&mut self, memory: MemoryId) -> Result<Option<String>, RepositoryError>;

    /// The Mem0 copies of a memory (deleted or not: the bookkeeping outlives the row
    /// until [`Mem0IndexChange::Forgotten`]).
    async fn mem0_copies(&mut self, memory: MemoryId) -> Result<Mem0Copies, RepositoryError>;

    /// Changes a memory's Mem0 bookkeeping. Returns whether the memory still exists, so
    /// an add that finished after the memory was deleted can queue its own undoing.
    async fn update_mem0_index(
        &mut self,
        memory: MemoryId,
        change: Mem0IndexChange,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Queues `memory` for embedding (again, if its text changed); a no-op when queued.
    async fn queue_embedding(&mut self, memory: MemoryId) -> Result<(), RepositoryError>;

    /// Queues every memory without an embedding by `model`; returns how many were added.
    async fn queue_missing_embeddings(&mut self, model: &str) -> Result<u64, RepositoryError>;

    /// Takes these memories off the embedding queue (done, gone, or nothing to embed).
    async fn dequeue_embeddings(&mut self, memories: &[MemoryId]) -> Result<(), RepositoryError>;

    /// Stores `memory`'s embedding by `model`, replacing an earlier one, but only while
    /// the memory still exists and its text is still `embedded_text`: an embedding of a
    /// text since edited (or of a deleted memory) is dropped. Returns whether it was stored.
    async fn save_embedding(
        &mut self,
        memory: MemoryId,
        embedded_text: &str,
        model: &str,
        vector: &QuantizedEmbedding,
    ) -> Result<bool, RepositoryError>;
}

/// Work to run inside one transaction. It may only touch the transaction: on SQLite it
/// runs on the single writer thread, where nothing else can be awaited. Results leave
/// through [`transact`], which hands them over only once they are committed.
pub type Work = Box<dyn for<'t> FnOnce(&'t mut dyn UnitOfWork) -> BoxFuture<'t, Result<(), RepositoryError>> + Send>;

/// Runs `work` in one transaction of `repository` and returns its result once committed.
///
/// # Errors
/// The work's own error (everything is rolled back), or a failed commit.
pub async fn transact<T, F>(repository: &dyn Repository, work: F) -> Result<T, RepositoryError>
where
    T: Send + 'static,
    F: for<'t> FnOnce(&'t mut dyn UnitOfWork) -> BoxFuture<'t, Result<T, RepositoryError>> + Send + 'static,
{
    let (sender, receiver) = futures::channel::oneshot::channel();
    repository
        .run_in_transaction(Box::new(move |tx| {
            Box::pin(async move {
                let value = work(tx).await?;
                let _ = sender.send(value);
                Ok(())
            })
        }))
        .await?;
    receiver.await.map_err(|_| RepositoryError::Internal("a committed transaction returned no result".into()))
}

/// The system of record.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Repository: Send + Sync {
    /// Runs `work` in one transaction and commits it before returning, so a reply is
    /// only ever sent for a message that is durably stored.
    ///
    /// # Errors
    /// The work's own error (the transaction is rolled back), or a failed commit.
    async fn run_in_transaction(&self, work: Work) -> Result<(), RepositoryError>;

    /// The user with this WhatsApp id, if they have ever written.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn find_user(&self, wa_id: &str) -> Result<Option<User>, RepositoryError>;

    /// One user's memories in a range (all when `None`), newest first, with the total.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn list_memories(
        &self,
        user: UserId,
        range: Option<TimeRange>,
        limit: u32,
    ) -> Result<MemoryPage, RepositoryError>;

    /// Whether the database answers and every migration has been applied.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the database does not answer.
    async fn is_ready(&self) -> Result<bool, RepositoryError>;
}

/// What the REST API reads: records with every detail, paged lists and totals. Served
/// from the connection pool on both databases, never through the writer.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ReadModel: Send + Sync {
    /// One memory by id, whoever it belongs to (the REST API is an operator's tool).
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn find_memory(&self, id: MemoryId) -> Result<Option<MemoryRecord>, RepositoryError>;

    /// These memories with their details, in the order given; ids not found are left out.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn find_memories(&self, ids: &[MemoryId]) -> Result<Vec<MemoryRecord>, RepositoryError>;

    /// A page of one user's memories in `range` (all when `None`), newest first, after
    /// `after`.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn memory_page(
        &self,
        user: UserId,
        range: Option<TimeRange>,
        after: Option<PageCursor>,
        limit: u32,
    ) -> Result<Page<MemoryRecord>, RepositoryError>;

    /// These interactions, in the order given; ids not found are left out.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn find_interactions(&self, ids: &[InteractionId]) -> Result<Vec<Interaction>, RepositoryError>;

    /// A page of one user's interactions, newest first, after `after`.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn interaction_page(
        &self,
        user: UserId,
        after: Option<PageCursor>,
        limit: u32,
    ) -> Result<Page<Interaction>, RepositoryError>;

    /// A page of users, newest first, after `after`.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn user_page(&self, after: Option<PageCursor>, limit: u32) -> Result<Page<UserRecord>, RepositoryError>;

    /// One user with their counts.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn find_user_record(&self, wa_id: &str) -> Result<Option<UserRecord>, RepositoryError>;

    /// The memory made from a stored media file.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn find_memory_of_media(&self, media: MediaAssetId) -> Result<Option<MemoryRecord>, RepositoryError>;

    /// One stored media file's record.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn find_media(&self, id: MediaAssetId) -> Result<Option<MediaAsset>, RepositoryError>;

    /// Everything held about one user: their memories, messages and media records.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn export_user(&self, user: UserId) -> Result<UserData, RepositoryError>;

    /// Totals for the analytics summary, with interactions per day up to `now`.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn analytics(&self, now: DateTime<Utc>) -> Result<Analytics, RepositoryError>;

    /// The memories of ours each of these Mem0 memories was made from, as
    /// `(mem0 id, memory)` pairs: how a Mem0 search hit finds its way back.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database fails.
    async fn memories_of_mem0(&self, mem0_ids: &[String]) -> Result<Vec<(String, MemoryId)>, RepositoryError>;

    /// The user's embeddings by `model` stored after `after_seq`, in the order they were
    /// stored: what a cache of their vectors, loaded up to `after_seq`, lacks.
    async fn embeddings_since(
        &self,
        user: UserId,
        model: &str,
        after_seq: i64,
    ) -> Result<Vec<StoredEmbedding>, RepositoryError>;

    /// The sequence number of the user's latest embedding by `model` (0 when none): a
    /// cache that has loaded up to it is current.
    async fn latest_embedding_seq(&self, user: UserId, model: &str) -> Result<i64, RepositoryError>;

    /// The first `limit` images whose perceptual hash an earlier hash function made,
    /// oldest first: what the re-hash recomputes.
    async fn image_rehash_queue(&self, limit: u32) -> Result<Vec<MediaAssetId>, RepositoryError>;

    /// The first `limit` memories waiting for an embedding, oldest first.
    async fn embedding_queue(&self, limit: u32) -> Result<Vec<MemoryId>, RepositoryError>;

    /// Memories (with their owner) after `after` that have no embedding by `model`, in
    /// id order, at most `limit`: what `reindex` queues.
    async fn memories_without_embedding(
        &self,
        model: &str,
        after: MemoryId,
        limit: u32,
    ) -> Result<Vec<(MemoryId, UserId)>, RepositoryError>;

    /// Media memories after `after` whose file's text was never read (photos and PDFs
    /// saved before OCR was on, or whose reading failed), in id order, at most `limit`:
    /// what `reindex --ocr` queues.
    async fn memories_awaiting_text(&self, after: MemoryId, limit: u32) -> Result<Vec<AwaitingText>, RepositoryError>;
}

/// A media memory whose file's text was never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitingText {
    pub memory: MemoryId,
    pub user: UserId,
    /// The memory's text now (its caption or description).
    pub text: String,
    /// The kept file, relative to the storage root.
    pub local_path: String,
    pub content_type: String,
}

/// The current time. A port so that every date rule can be tested at a fixed instant.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// Why a memory store failed. The store's own message is kept; credentials never are.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MemoryStoreError {
    /// Down, slow, timed out or failing (5xx): the same call may succeed later.
    #[error("the memory store is unavailable: {0}")]
    Unavailable(String),
    /// Too many requests (429): try again, after `retry_after` when the store said so.
    #[error("the memory store is rate-limiting: {message}")]
    RateLimited { message: String, retry_after: Option<Duration> },
    /// The store refused the call as malformed (400), or failed in a way a retry will
    /// not fix.
    #[error("the memory store refused the request: {0}")]
    Rejected(String),
    /// The credentials were refused (401): nothing works until they are fixed.
    #[error("the memory store refused the credentials: {0}")]
    Unauthorized(String),
    /// What was asked for does not exist (404).
    #[error("not found in the memory store: {0}")]
    NotFound(String),
}

impl MemoryStoreError {
    /// Whether the same call could succeed if made again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MemoryStoreError::Unavailable(_) | MemoryStoreError::RateLimited { .. })
    }

    /// How long the store asked us to wait before the next call, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            MemoryStoreError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Where memories are kept for search: the local full-text index (in the database,
/// indexed in the transaction that saves a memory), and Mem0 (over HTTP, indexed through
/// an outbox). Always scoped to one user.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MemoryStore: Send + Sync {
    /// One user's memories that match `query`, best first, at most `limit`.
    ///
    /// # Errors
    /// [`MemoryStoreError`]; an empty result is not an error.
    async fn search(&self, user: &User, query: &str, limit: u32) -> Result<Vec<MemoryHit>, MemoryStoreError>;

    /// Adds a memory. A store that infers asynchronously answers
    /// [`Indexing::Pending`]; ask [`MemoryStore::indexing_status`] about the event then.
    ///
    /// # Errors
    /// [`MemoryStoreError`], saying whether a retry can help.
    async fn index(&self, memory: &MemoryToIndex) -> Result<Indexing, MemoryStoreError>;

    /// Where an earlier add's event stands; may wait a while for it to finish.
    ///
    /// # Errors
    /// [`MemoryStoreError::NotFound`] for an event the store does not know.
    async fn indexing_status(&self, event: &str) -> Result<Indexing, MemoryStoreError>;

    /// Deletes one entry by the store's id; one already gone is not an error.
    ///
    /// # Errors
    /// [`MemoryStoreError`], saying whether a retry can help.
    async fn delete(&self, id: &str) -> Result<(), MemoryStoreError>;

    /// Deletes every entry of one person (`owner` as in [`MemoryToIndex::owner`]).
    ///
    /// # Errors
    /// [`MemoryStoreError`], saying whether a retry can help.
    async fn delete_all(&self, owner: &str) -> Result<(), MemoryStoreError>;

    /// Checks that the store answers and accepts our credentials.
    ///
    /// # Errors
    /// [`MemoryStoreError::Unauthorized`] for refused credentials; others when it is down.
    async fn check(&self) -> Result<(), MemoryStoreError>;
}

/// A message Twilio accepted for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// Twilio's `SM…` sid.
    pub sid: String,
    /// Twilio's status at acceptance (`queued`, `accepted`, …).
    pub status: String,
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// 429, 5xx, a timeout or a network failure: try again later (after `retry_after`
    /// when the service said so).
    #[error("sending failed, try again later: {message}")]
    Retryable { code: Option<i64>, message: String, retry_after: Option<std::time::Duration> },
    /// Any other 4xx (a bad number, no permission): retrying will not help.
    #[error("sending was refused ({code:?}): {message}")]
    Rejected { code: Option<i64>, message: String },
}

impl SendError {
    /// Whether the same send could succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }
}

/// Sends WhatsApp messages to users outside a webhook's answer (late replies).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MessageSender: Send + Sync {
    /// Sends `body` to the user at `to` (E.164, `+15551234567`).
    ///
    /// # Errors
    /// [`SendError`], saying whether a retry can help.
    async fn send(&self, to: &str, body: &str) -> Result<SentMessage, SendError>;

    /// A message with this body already accepted for `to` at or after `since`: asked
    /// before sending again after a crash, so a reply is not delivered twice.
    ///
    /// # Errors
    /// [`SendError`] when the lookup itself fails.
    async fn find_sent(&self, to: &str, body: &str, since: DateTime<Utc>) -> Result<Option<SentMessage>, SendError>;
}

/// One downloaded media item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMedia {
    pub bytes: Vec<u8>,
    /// The `Content-Type` the server answered with (may be absent or wrong: the bytes
    /// decide what the media is).
    pub content_type: Option<String>,
}

/// Why a media item could not be downloaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not on the media host we trust; credentials are never sent there.
    #[error("media URL refused: {0}")]
    Refused(String),
    /// This deployment cannot download media at all (no Twilio credentials): the
    /// operator's setting, not the user's link, is what is missing.
    #[error("media downloads are not configured: {0}")]
    NotConfigured(String),
    /// Larger than the configured maximum.
    #[error("media larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// 404/410 or another final 4xx: the item is gone.
    #[error("media unavailable: {0}")]
    Gone(String),
    /// A timeout, 429, 5xx or a network failure: try again later.
    #[error("media download failed, try again later: {0}")]
    Retryable(String),
}

impl FetchError {
    /// Whether the same download could succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, FetchError::Retryable(_))
    }
}

/// Downloads one inbound media item, bounded in size and time.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MediaFetcher: Send + Sync {
    /// Downloads `url` (a Twilio `MediaUrlN`).
    ///
    /// # Errors
    /// [`FetchError`], saying whether a retry can help.
    async fn fetch(&self, url: &str) -> Result<FetchedMedia, FetchError>;
}

/// Where a media file was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMedia {
    /// SHA-256 of the bytes, lowercase hex: the exact-duplicate key.
    pub sha256: String,
    /// Path relative to the storage root.
    pub relative_path: String,
    pub size: u64,
}

/// Keeps media files, content-addressed: the same bytes are one file however many
/// users send them.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MediaFiles: Send + Sync {
    /// Writes `bytes` (atomically) unless the same content is already kept.
    ///
    /// # Errors
    /// When the disk fails; a retry may help.
    async fn store(&self, bytes: &[u8], content_type: &str) -> std::io::Result<StoredMedia>;

    /// The bytes of a stored file, by the path `store` gave.
    ///
    /// # Errors
    /// `NotFound` when the file is gone; other errors when the disk fails.
    async fn read(&self, relative_path: &str) -> std::io::Result<Vec<u8>>;

    /// Deletes a stored file no one refers to any more; a file already gone is fine.
    ///
    /// # Errors
    /// When the disk fails.
    async fn remove(&self, relative_path: &str) -> std::io::Result<()>;
}

/// What the bytes of an image say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFacts {
    pub width: u32,
    pub height: u32,
    pub hash: ImageHash,
}

/// Reads media bytes: what they really are, and an image's size and perceptual hash.
#[cfg_attr(test, mockall::automock)]
pub trait MediaInspector: Send + Sync {
    /// The content type the bytes show (magic numbers), if recognised.
    fn sniff(&self, bytes: &[u8]) -> Option<&'static str>;

    /// Decodes an image. CPU-heavy: call it on the blocking pool.
    ///
    /// # Errors
    /// A message saying why the bytes are not an image we can read.
    fn inspect_image(&self, bytes: &[u8]) -> Result<ImageFacts, String>;

    /// Decodes audio of `content_type` (the sniffed type) for a speech model, giving up
    /// as soon as it runs past `max_seconds`. CPU-heavy: call it on the blocking pool.
    ///
    /// # Errors
    /// [`AudioError`]: a format we cannot decode, a damaged or silent file, one too long.
    fn decode_audio(&self, bytes: &[u8], content_type: &str, max_seconds: f64) -> Result<DecodedAudio, AudioError>;
}

/// The sample rate speech models take, and the rate of [`SpeechAudio::samples`].
pub const SPEECH_SAMPLE_RATE: u32 = 16_000;

/// Why audio could not be decoded. The file itself is kept whatever the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AudioError {
    /// A format or codec we have no decoder for.
    #[error("its format is not one I can play ({0})")]
    Unsupported(String),
    /// The bytes are not a well-formed file of their type.
    #[error("the file is damaged ({0})")]
    Corrupt(String),
    /// A well-formed file without a single sample.
    #[error("it contains no sound")]
    Empty,
    /// Longer than the configured maximum; decoding stopped there.
    #[error("it is longer than {}", spoken_length(*max_seconds))]
    TooLong { max_seconds: f64 },
}

/// "10 minutes", "90 seconds": a limit as a person says it.
fn spoken_length(seconds: f64) -> String {
    if seconds >= 120.0 && (seconds % 60.0).abs() < f64::EPSILON {
        format!("{} minutes", (seconds / 60.0).round())
    } else {
        format!("{} seconds", seconds.round())
    }
}

/// Audio decoded for a speech model: mono, [`SPEECH_SAMPLE_RATE`], in -1.0..=1.0.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    pub samples: Vec<f32>,
}

impl DecodedAudio {
    /// How long the recording plays.
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(SPEECH_SAMPLE_RATE)
    }
}

/// One recording to transcribe, in the two forms transcribers take: a local model reads
/// the decoded samples, a hosted one the original file.
#[derive(Debug, Clone)]
pub struct SpeechAudio {
    pub bytes: Vec<u8>,
    pub content_type: String,
    pub decoded: DecodedAudio,
}

/// What was said in a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The words, trimmed; empty when nothing was said.
    pub text: String,
    /// The spoken language (ISO 639-1) when the transcriber tells it.
    pub language: Option<String>,
}

/// Why a transcription failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    /// Transcription is turned off or has no model: the user is told, nothing retried.
    #[error("transcription is not available here: {0}")]
    NotAvailable(String),
    /// A timeout, a busy or unreachable server: another attempt may succeed.
    #[error("the transcriber is unavailable: {message}")]
    Unavailable { message: String, retry_after: Option<std::time::Duration> },
    /// The transcriber refused or failed on this recording; it will again.
    #[error("the transcriber failed: {0}")]
    Failed(String),
}

impl TranscribeError {
    /// Whether the same call could succeed if made again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TranscribeError::Unavailable { .. })
    }
}

/// Speech to text: a local model or a hosted service.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Transcriber: Send + Sync {
    /// The words spoken in `audio`.
    ///
    /// # Errors
    /// [`TranscribeError`], saying whether another attempt can help.
    async fn transcribe(&self, audio: &SpeechAudio) -> Result<Transcript, TranscribeError>;
}

/// One stored embedding, as a cache of a user's vectors loads it. `seq` grows with every
/// embedding stored for the user, so "what is new since" is one indexed range.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEmbedding {
    pub memory: MemoryId,
    pub seq: i64,
    pub vector: QuantizedEmbedding,
}

/// Why text could not be embedded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbedError {
    /// The model is not there (not provisioned, unreadable): nothing to retry until an
    /// operator provides it.
    #[error("the embedding model is not available: {0}")]
    NotAvailable(String),
    /// The model failed on this input.
    #[error("embedding failed: {0}")]
    Failed(String),
}

/// Who is waiting for an embedding, so indexing never holds up a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedPurpose {
    /// A search's query: a person is waiting.
    Query,
    /// A memory being indexed in the background.
    Index,
}

/// Turns text into a unit-length vector whose cosine with another text's says how close
/// their meanings are. CPU-bound: adapters run it off the async threads.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TextEmbedder: Send + Sync {
    /// Names the model and its version: stored with each vector, so vectors of another
    /// model are never compared with this one's.
    fn model_id(&self) -> String;

    /// How many values each vector has.
    fn dimension(&self) -> usize;

    /// One unit-length vector per text, in order.
    ///
    /// # Errors
    /// [`EmbedError`]: the model is missing or failed.
    async fn embed(&self, texts: Vec<String>, purpose: EmbedPurpose) -> Result<Vec<Vec<f32>>, EmbedError>;
}
