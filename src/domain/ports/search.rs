//! Searching one user's memories: the local full-text index and Mem0 answer the same
//! question, so the core can fuse their answers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

use crate::domain::model::{Memory, MemoryId, User};

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

/// Finds one user's memories matching a query: the local full-text index (in the
/// database, indexed in the transaction that saves a memory) and Mem0 (over HTTP,
/// indexed through an outbox) both answer it. Always scoped to one user.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MemoryFinder: Send + Sync {
    /// One user's memories that match `query`, best first, at most `limit`.
    ///
    /// # Errors
    /// [`MemoryStoreError`]; an empty result is not an error.
    async fn search(&self, user: &User, query: &str, limit: u32) -> Result<Vec<MemoryHit>, MemoryStoreError>;
}
