//! Indexes beside the database: a memory's copy in an outside store (Mem0's add,
//! status, delete and delete-all), and the bookkeeping of those copies and of the
//! embedding queue inside a transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStoreError, RepositoryError};
use crate::domain::embedding::QuantizedEmbedding;
use crate::domain::model::{MemoryId, MemoryKind, UserId};

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

/// What the indexes beside the database need recorded, inside one transaction (see
/// [`super::UnitOfWork`]): Mem0's copies, and the embedding queue and vectors.
///
/// # Errors
/// Every method fails with [`RepositoryError`]; the caller aborts the whole unit.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait IndexTransaction: Send {
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

/// An outside store that keeps copies of memories under its own ids (Mem0): they are
/// added, followed, deleted one by one or all of a person's at once, through the job
/// queue. The local index needs none of this: it follows the rows in the same
/// transaction.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ExternalIndex: Send + Sync {
    /// Adds a memory. A store that infers asynchronously answers
    /// [`Indexing::Pending`]; ask [`ExternalIndex::indexing_status`] about the event then.
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
