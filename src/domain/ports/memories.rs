//! Memories inside a transaction: saving, changing and deleting them, and reading the
//! text a job must check before it records work done on an earlier read.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::RepositoryError;
use crate::domain::model::{InteractionId, MediaAssetId, Memory, MemoryId, MemoryKind, UserId};

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

/// Memories, inside one transaction (see [`super::UnitOfWork`]).
///
/// # Errors
/// Every method fails with [`RepositoryError`]; the caller aborts the whole unit.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MemoryTransaction: Send {
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

    /// Deletes and returns the user's most recently saved memory, if any.
    async fn delete_last_memory(&mut self, user: UserId) -> Result<Option<Memory>, RepositoryError>;

    /// The memory's text as this transaction sees it (`None`: deleted), so work done on
    /// an earlier read can tell whether it is still about the memory as it is. Holds the
    /// memory until the transaction ends: two transactions asking about one memory take
    /// turns (SQLite's single writer does that anyway).
    async fn memory_text(&mut self, memory: MemoryId) -> Result<Option<String>, RepositoryError>;
}
