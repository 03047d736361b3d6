//! Text embeddings for search by meaning: the model port and the stored vectors.

use async_trait::async_trait;

use crate::domain::embedding::QuantizedEmbedding;
use crate::domain::model::MemoryId;

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
