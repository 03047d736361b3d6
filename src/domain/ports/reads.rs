//! The read side: what use cases and the REST API read from the connection pool, never
//! through the writer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{RepositoryError, StoredEmbedding};
use crate::domain::model::{
    Analytics, Interaction, InteractionId, MediaAsset, MediaAssetId, MemoryId, MemoryPage, MemoryRecord, Page,
    PageCursor, User, UserData, UserId, UserRecord,
};
use crate::domain::time_range::TimeRange;

/// What the REST API reads: records with every detail, paged lists and totals. Served
/// from the connection pool on both databases, never through the writer.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ReadModel: Send + Sync {
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
